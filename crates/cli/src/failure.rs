//! The error that ends a command, the exit status it ends with, and how it is told: the
//! message for people, the kind for scripts (docs/design.md §3).

use muster_client::{ClientError, ExitStatus};

/// An error that ends the command, with the exit status it ends with.
#[derive(Debug)]
pub struct Failure {
    /// The exit status the command ends with.
    pub status: ExitStatus,
    /// What went wrong.
    pub error: anyhow::Error,
}

impl Failure {
    /// A usage, configuration or input error (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            status: ExitStatus::Usage,
            error: error.into(),
        }
    }

    /// Stdout could not be written (a full disk, a closed file): exit 2, saying so. A reader
    /// that closed the pipe ends the command before this, by SIGPIPE (see `main`).
    pub fn stdout(error: std::io::Error) -> Self {
        Failure::usage(anyhow::Error::new(error).context("cannot write to stdout"))
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure {
            status: e.exit_status(),
            error: e.into(),
        }
    }
}

/// What kind of failure it was, for scripts: `{"error": {"kind": …}}` with `--json`
/// (docs/design.md §3). Read from the error's type, so no call site has to say it.
pub fn kind(failure: &Failure) -> &'static str {
    let error = &failure.error;
    if error
        .downcast_ref::<muster_client::config::ConfigError>()
        .is_some()
        || error.downcast_ref::<muster_server::ConfigError>().is_some()
    {
        return "config";
    }
    if let Some(e) = error.downcast_ref::<ClientError>() {
        match e {
            ClientError::Invalid(_)
            | ClientError::NodeList { .. }
            | ClientError::NoRegistry(_)
            | ClientError::Registry(_) => return "invalid_input",
            ClientError::BrokerUrl { .. }
            | ClientError::Uncollected(_)
            | ClientError::UnknownRequest(_) => return "usage",
            ClientError::BrokerUnreachable { .. } | ClientError::Broker(_) => {}
        }
    }
    // Exit 4 prints the report (or answer) with zero nodes, never an error object.
    match failure.status {
        ExitStatus::BrokerUnreachable => "broker_unreachable",
        _ => "usage",
    }
}

/// The error and its causes for people, each once: a cause whose text the message already
/// contains (a `thiserror` message that embeds its source) is not repeated.
pub fn message(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_the_message_contains_is_said_once() {
        let inner = anyhow::anyhow!("connection refused");
        let error = inner.context("cannot reach nats://x: connection refused");
        assert_eq!(message(&error), "cannot reach nats://x: connection refused");
        let error = anyhow::anyhow!("refused").context("cannot reach");
        assert_eq!(message(&error), "cannot reach: refused");
    }

    #[test]
    fn kinds_come_from_the_error() {
        let failure = Failure::usage(anyhow::anyhow!("bad flag"));
        assert_eq!(kind(&failure), "usage");
        let failure = Failure::from(ClientError::Invalid("x".into()));
        assert_eq!(kind(&failure), "invalid_input");
        let failure = Failure {
            status: ExitStatus::BrokerUnreachable,
            error: anyhow::anyhow!("down"),
        };
        assert_eq!(kind(&failure), "broker_unreachable");
    }
}
