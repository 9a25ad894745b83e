//! Times and durations on the wire (docs/design.md §2): Unix seconds as JSON numbers, from the
//! epoch to the last second of the year 9999 — what RFC 3339 can write, and far inside what a
//! `SystemTime` or a `Duration` holds. Every decoder checks its times with [`check`], so a
//! time from the network is in that range; the conversions here are total anyway: whatever
//! `f64` they get (negative, NaN, 1e300), they return a value and never panic. Every crate
//! converts and formats wire times with these, not with its own `UNIX_EPOCH +
//! Duration::from_secs_f64(…)` (which panics past `Duration::MAX`) or humantime's formatter
//! on an unchecked time (whose `to_string()` panics past the year 9999).
//!
//! [`UnixTime`] is the one type of a wall-clock instant in every crate, on the wire and off
//! it, and [`now`] is the one function that reads it from the clock: decoding and validation
//! never call it — they take the time as a parameter — so the clock is read where a message is
//! made or received, and every check can be tested at any time.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::envelope::DecodeError;

/// A wall-clock instant: Unix seconds, with a fraction, as the wire carries it (a JSON number,
/// docs/design.md §2). An alias rather than a wrapper so the wire types stay plain numbers
/// and the windows computed from them (a request's ttl, a clock skew) stay plain arithmetic;
/// the name says what the number is. The few wire fields that count whole seconds (a
/// registration's `started`, a credential's validity) are `u64`, made with [`whole_secs`].
pub type UnixTime = f64;

/// The wall clock now, as a [`UnixTime`] (0 should the clock be before 1970). The one place
/// anything in the workspace reads the wall clock for a time it sends, stores or compares.
pub fn now() -> UnixTime {
    unix(SystemTime::now())
}

/// A time in whole Unix seconds, rounded down; one outside 0..=[`MAX_UNIX`] is taken as the
/// nearest end.
pub fn whole_secs(unix: UnixTime) -> u64 {
    // Clamped into 0..=MAX_UNIX first, so `as` neither saturates nor meets NaN.
    clamp(unix) as u64
}

/// The latest time on the wire: 9999-12-31T23:59:59Z, in Unix seconds.
pub const MAX_UNIX: UnixTime = 253_402_300_799.0;

/// Checks a time from the network: a number of Unix seconds from 0 to [`MAX_UNIX`].
pub fn check(field: &'static str, unix: UnixTime) -> Result<(), DecodeError> {
    if (0.0..=MAX_UNIX).contains(&unix) {
        Ok(())
    } else {
        Err(DecodeError::Invalid {
            field,
            reason: format!(
                "{unix} is not a time in Unix seconds from 0 to {MAX_UNIX} (year 9999)"
            ),
        })
    }
}

/// Checks a whole number from the network against its largest allowed value.
pub fn check_at_most(field: &'static str, value: u64, max: u64) -> Result<(), DecodeError> {
    if value <= max {
        Ok(())
    } else {
        Err(DecodeError::Invalid {
            field,
            reason: format!("{value} is more than the {max} allowed"),
        })
    }
}

/// `unix` clamped into 0..=[`MAX_UNIX`] (NaN: 0).
fn clamp(unix: UnixTime) -> UnixTime {
    if unix.is_nan() {
        0.0
    } else {
        unix.clamp(0.0, MAX_UNIX)
    }
}

/// The `SystemTime` of a wire time; one outside 0..=[`MAX_UNIX`] is taken as the nearest end.
pub fn system_time(unix: UnixTime) -> SystemTime {
    let since_epoch = Duration::try_from_secs_f64(clamp(unix)).unwrap_or(Duration::ZERO);
    UNIX_EPOCH.checked_add(since_epoch).unwrap_or(UNIX_EPOCH)
}

/// A `SystemTime` as wire time: Unix seconds (0 for a time before the epoch).
pub fn unix(time: SystemTime) -> UnixTime {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A wire time in RFC 3339 to the second (`2026-11-25T10:00:00Z`); one outside
/// 0..=[`MAX_UNIX`] is written as the nearest end.
pub fn rfc3339(unix: UnixTime) -> String {
    let mut text = String::new();
    // Within the clamped range the formatter always succeeds; a `write!` that did fail would
    // leave the text empty, where `to_string()` panics.
    if write!(
        text,
        "{}",
        humantime::format_rfc3339_seconds(system_time(unix))
    )
    .is_err()
    {
        text.clear();
        text.push_str("1970-01-01T00:00:00Z");
    }
    text
}

/// A number of seconds from the network as a duration no longer than `max`: negative or NaN is
/// zero, anything past `max` (1e300, infinity) is `max`. The bound comes first, so no value
/// reaches a conversion that panics.
pub fn duration_at_most(secs: f64, max: Duration) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    if secs >= max.as_secs_f64() {
        return max;
    }
    Duration::try_from_secs_f64(secs).map_or(max, |d| d.min(max))
}

/// Whole milliseconds from wire time `from` to wire time `to`: 0 when `to` is earlier, at most
/// `u64::MAX`.
pub fn millis_between(from: UnixTime, to: UnixTime) -> u64 {
    let ms = (to - from) * 1000.0;
    // `as` saturates (and makes NaN 0); negative is 0.
    if ms > 0.0 { ms as u64 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_f64_converts_and_formats() {
        for unix in [
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            3e11,
            1e300,
            f64::MAX,
            MAX_UNIX + 1.0,
        ] {
            let text = rfc3339(unix);
            assert!(text.ends_with('Z'), "{unix}: {text}");
            let _ = system_time(unix);
            let _ = millis_between(0.0, unix);
            let _ = millis_between(unix, 0.0);
            let _ = duration_at_most(unix, Duration::from_secs(600));
            assert!(check("time", unix).is_err(), "{unix}");
        }
        assert_eq!(rfc3339(3e11), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(-5.0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_064_800.9), "2025-11-25T10:00:00Z");
        assert_eq!(unix(system_time(1_764_064_800.5)), 1_764_064_800.5);
        assert!(check("time", 0.0).is_ok() && check("time", MAX_UNIX).is_ok());
        assert_eq!(whole_secs(1_764_064_800.9), 1_764_064_800);
        assert_eq!(whole_secs(-5.0), 0);
        assert_eq!(whole_secs(f64::NAN), 0);
        assert_eq!(whole_secs(1e300), MAX_UNIX as u64);
    }

    #[test]
    fn now_is_a_wire_time() {
        let t = now();
        assert!(check("time", t).is_ok(), "{t}");
        assert!(t > 1_700_000_000.0, "{t}");
    }

    #[test]
    fn durations_are_bounded_before_they_are_made() {
        let max = Duration::from_secs(600);
        assert_eq!(duration_at_most(1e300, max), max);
        assert_eq!(duration_at_most(f64::INFINITY, max), max);
        assert_eq!(duration_at_most(-1.0, max), Duration::ZERO);
        assert_eq!(duration_at_most(f64::NAN, max), Duration::ZERO);
        assert_eq!(duration_at_most(1.5, max), Duration::from_millis(1500));
        assert_eq!(millis_between(100.0, 101.5), 1500);
        assert_eq!(millis_between(101.0, 100.0), 0);
        assert_eq!(millis_between(0.0, f64::MAX), u64::MAX);
        assert_eq!(millis_between(0.0, f64::NAN), 0);
    }
}
