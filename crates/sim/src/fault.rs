//! Fault injection: which virtual nodes misbehave, and how.

use std::time::Duration;

/// How one virtual node misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// It behaves.
    #[default]
    None,
    /// It is connected and subscribed, but never acknowledges or answers anything.
    Silent,
    /// It answers discovery pings, and every other request with a failure (status 1).
    Fail,
    /// It acknowledges at once but answers only after this long.
    Slow(Duration),
    /// Its connection drops every so often and comes back.
    Flap,
    /// It ignores filters: it answers every broadcast request it sees, as a node with a broken
    /// or foreign daemon would. A client shows its replies as `unexpected`.
    Stray,
}

/// A share of the fleet, `5%` or `0.5%`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Share(pub f64);

/// A fault option that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}{reason}",
    if option.is_empty() { String::new() } else { format!("invalid {option} {value:?}: ") }
)]
pub struct FaultError {
    /// The option.
    pub option: &'static str,
    /// What was given.
    pub value: String,
    /// What is expected.
    pub reason: &'static str,
}

impl Share {
    /// Parses `P%` (0 to 100, fractions allowed).
    pub fn parse(option: &'static str, text: &str) -> Result<Share, FaultError> {
        let fail = |reason| FaultError {
            option,
            value: text.to_string(),
            reason,
        };
        let number = text
            .trim()
            .strip_suffix('%')
            .ok_or_else(|| fail("write a percentage such as 5%"))?;
        let p: f64 = number
            .trim()
            .parse()
            .map_err(|_| fail("write a percentage such as 5%"))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(fail("the percentage must be between 0% and 100%"));
        }
        Ok(Share(p / 100.0))
    }
}

/// `P%`, for flags parsed into a [`Share`] (the error names no option: the flag parser names
/// it).
impl std::str::FromStr for Share {
    type Err = FaultError;

    fn from_str(text: &str) -> Result<Share, FaultError> {
        Share::parse("", text)
    }
}

/// `--slow P%:DURATION`.
pub fn parse_slow(text: &str) -> Result<(Share, Duration), FaultError> {
    let fail = |reason| FaultError {
        option: "--slow",
        value: text.to_string(),
        reason,
    };
    let (share, duration) = text
        .split_once(':')
        .ok_or_else(|| fail("write P%:DURATION, e.g. 5%:3s"))?;
    let share = Share::parse("--slow", share)?;
    let duration = humantime::parse_duration(duration.trim())
        .map_err(|_| fail("the duration after ':' must look like 3s or 500ms"))?;
    Ok((share, duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares() {
        assert_eq!(Share::parse("--fail", "5%").unwrap(), Share(0.05));
        assert_eq!(Share::parse("--fail", " 0.5 %").unwrap(), Share(0.005));
        for bad in ["5", "x%", "101%", "-1%", ""] {
            assert!(Share::parse("--fail", bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_slow("10%:2s").unwrap(),
            (Share(0.1), Duration::from_secs(2))
        );
        let err = parse_slow("10%").unwrap_err().to_string();
        assert!(err.contains("P%:DURATION"), "{err}");
        assert!(parse_slow("10%:soon").is_err());
    }
}
