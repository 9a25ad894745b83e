//! Durations as people write them, one way for every flag and config key: a bare number is
//! seconds (`10`, `1.5`), anything else a number with units (`10s`, `1m30s`, `500ms`, `7d`).
//!
//! One parser, so that `-t 10s` and `--expect-seen 90` mean what `-t 10` and `--expect-seen
//! 90s` mean: a flag that takes seconds and one that takes units differ in nothing an operator
//! should have to remember.

use std::time::Duration;

/// A duration that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {text:?}: {reason}; write seconds (10, 1.5) or a number with units \
     (10s, 1m30s, 500ms, 2h, 7d)"
)]
pub struct DurationError {
    /// What was given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses a duration: a bare number of seconds, or a number with units (humantime's forms).
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let fail = |reason: String| DurationError {
        text: text.to_string(),
        reason,
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(fail("it is empty".into()));
    }
    // Only plain decimals count as seconds: `f64::from_str` also takes "inf" and "NaN",
    // which are words here, not numbers.
    let numeric = trimmed
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && trimmed.bytes().any(|b| b.is_ascii_digit());
    if numeric {
        let secs: f64 = trimmed
            .parse()
            .map_err(|_| fail("it is not a number".into()))?;
        if secs < 0.0 {
            return Err(fail("it is negative".into()));
        }
        return Duration::try_from_secs_f64(secs).map_err(|_| fail("it is too long".into()));
    }
    humantime::parse_duration(trimmed).map_err(|e| fail(e.to_string()))
}

/// Serde support for config keys: a number is seconds, a string is parsed like a flag.
/// Use as `#[serde(with = "muster_client::duration::serde")]`.
pub mod serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Seconds(f64),
        Text(String),
    }

    /// Reads a number of seconds or a duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        match Written::deserialize(deserializer)? {
            Written::Seconds(secs) => super::parse(&secs.to_string()),
            Written::Text(text) => super::parse(&text),
        }
        .map_err(serde::de::Error::custom)
    }

    /// Writes the duration as humantime text (`1m 30s`), which [`deserialize`] reads back.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*duration).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_means_the_same() {
        let cases = [
            ("10", Duration::from_secs(10)),
            ("10s", Duration::from_secs(10)),
            (" 10s ", Duration::from_secs(10)),
            ("1.5", Duration::from_millis(1500)),
            ("0", Duration::ZERO),
            ("90", Duration::from_secs(90)),
            ("1m30s", Duration::from_secs(90)),
            ("1m 30s", Duration::from_secs(90)),
            ("500ms", Duration::from_millis(500)),
            ("2h", Duration::from_secs(7200)),
            ("7d", Duration::from_secs(7 * 86400)),
            ("1e3", Duration::from_secs(1000)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn bad_input_is_named_with_the_forms_that_work() {
        for bad in [
            "", "  ", "abc", "10x", "-1", "-5s", "inf", "NaN", "1.2.3", "1e400", "s",
        ] {
            let err = parse(bad).expect_err(bad).to_string();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains("1m30s"),
                "{bad:?}: {err}"
            );
        }
        assert!(parse("-1").unwrap_err().reason.contains("negative"));
    }

    #[test]
    fn config_keys_take_numbers_and_strings() {
        #[derive(::serde::Deserialize, ::serde::Serialize, Debug, PartialEq)]
        struct C {
            #[serde(with = "super::serde")]
            t: Duration,
        }
        for (text, want) in [
            ("t = 3", 3000),
            ("t = 1.5", 1500),
            ("t = \"3\"", 3000),
            ("t = \"500ms\"", 500),
            ("t = \"1m30s\"", 90_000),
        ] {
            let c: C = toml::from_str(text).unwrap();
            assert_eq!(c.t, Duration::from_millis(want), "{text}");
        }
        for bad in ["t = -1", "t = \"soon\"", "t = true"] {
            assert!(toml::from_str::<C>(bad).is_err(), "{bad}");
        }
        let c = C {
            t: Duration::from_secs(90),
        };
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<C>(&text).unwrap(), c);
    }
}
