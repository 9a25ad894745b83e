//! The exit codes of docs/design.md §3, one enum for every command.

/// How a command ended. The numbers are a contract: scripts branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: every expected node replied OK.
    Ok,
    /// 1: some node replied with a failure (a denial too); or answers came and none could be
    /// verified.
    Failed,
    /// 2: usage, configuration or invalid-input error.
    Usage,
    /// 3: some expected node did not respond (wins over 1).
    Missing,
    /// 4: nothing answered at all: no node matched; nothing was sent.
    NoMatch,
    /// 5: the broker could not be reached.
    BrokerUnreachable,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Ok => 0,
            ExitStatus::Failed => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Missing => 3,
            ExitStatus::NoMatch => 4,
            ExitStatus::BrokerUnreachable => 5,
        }
    }
}
