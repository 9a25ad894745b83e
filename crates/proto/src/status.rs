//! Reply status codes (docs/design.md §2).

use serde::{Deserialize, Serialize};

/// The status of a reply. Numbers are the wire contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum StatusCode {
    /// 0: the action ran and succeeded.
    Ok,
    /// 1: the action ran and failed.
    Aborted,
    /// 2: the agent has no such action.
    UnknownAction,
    /// 3: a required input is missing.
    MissingData,
    /// 4: an input is invalid.
    InvalidData,
    /// 5: anything else went wrong.
    UnknownError,
    /// 6: the caller is not authorized.
    NotAuthorized,
}

impl StatusCode {
    /// The wire number.
    pub fn code(self) -> u8 {
        self.into()
    }

    /// The default status message.
    pub fn message(self) -> &'static str {
        match self {
            StatusCode::Ok => "OK",
            StatusCode::Aborted => "Aborted",
            StatusCode::UnknownAction => "Unknown action",
            StatusCode::MissingData => "Missing data",
            StatusCode::InvalidData => "Invalid data",
            StatusCode::UnknownError => "Unknown error",
            StatusCode::NotAuthorized => "Not authorized",
        }
    }
}

impl From<StatusCode> for u8 {
    fn from(s: StatusCode) -> u8 {
        match s {
            StatusCode::Ok => 0,
            StatusCode::Aborted => 1,
            StatusCode::UnknownAction => 2,
            StatusCode::MissingData => 3,
            StatusCode::InvalidData => 4,
            StatusCode::UnknownError => 5,
            StatusCode::NotAuthorized => 6,
        }
    }
}

impl TryFrom<u8> for StatusCode {
    type Error = String;
    fn try_from(n: u8) -> Result<Self, String> {
        Ok(match n {
            0 => StatusCode::Ok,
            1 => StatusCode::Aborted,
            2 => StatusCode::UnknownAction,
            3 => StatusCode::MissingData,
            4 => StatusCode::InvalidData,
            5 => StatusCode::UnknownError,
            6 => StatusCode::NotAuthorized,
            other => return Err(format!("unknown status code {other}, expected 0 to 6")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for n in 0..=6u8 {
            let s = StatusCode::try_from(n).unwrap();
            assert_eq!(s.code(), n);
            assert_eq!(serde_json::to_string(&s).unwrap(), n.to_string());
        }
        assert!(StatusCode::try_from(7).is_err());
    }
}
