//! Durations written the way Prometheus writes them (`500ms`, `15s`, `1h30m`, `7d`, `2w`,
//! `1y`), for config files, flags and query parameters alike. Zero is allowed only where a
//! setting says so; [`NonZeroDuration`] is the newtype for settings that cannot be zero.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is not of the form `<number><unit>...`.
    #[error("invalid duration {0:?}: expected e.g. \"500ms\", \"15s\", \"1h30m\"")]
    Invalid(String),
    /// The duration does not fit Go's `time.Duration` (about 292 years), the bound
    /// Prometheus's `model.ParseDuration` enforces.
    #[error("duration {0:?} is out of range")]
    TooLarge(String),
    /// The duration is zero where zero is not allowed.
    #[error("duration must be greater than zero")]
    Zero,
}

/// The units of a Prometheus duration, largest first, with their length in milliseconds.
/// A duration names each unit at most once, in this order. This is the only copy of the
/// table: every duration parser and formatter in the workspace goes through this module.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// The longest duration Prometheus accepts, in milliseconds: `i64::MAX` nanoseconds.
pub const MAX_MS: u64 = i64::MAX as u64 / 1_000_000;

/// Parses a Prometheus-style duration: one or more `<integer><unit>` terms with units
/// `ms`, `s`, `m`, `h`, `d`, `w`, `y`, largest first, each at most once. `0` alone is
/// accepted. Like Prometheus's `model.ParseDuration`, surrounding spaces are refused and
/// anything longer than about 292 years is [`DurationError::TooLarge`].
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    parse_ms(text).map(Duration::from_millis)
}

/// [`parse`], giving whole milliseconds (never more than [`MAX_MS`], so the value also
/// fits an `i64`).
pub fn parse_ms(text: &str) -> Result<u64, DurationError> {
    let bad = || DurationError::Invalid(text.to_string());
    let too_large = || DurationError::TooLarge(text.to_string());
    if text == "0" {
        return Ok(0);
    }
    if text.is_empty() {
        return Err(bad());
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.bytes().take_while(|c| !c.is_ascii_digit()).count();
        let (unit, tail) = tail.split_at(unit_len);
        rest = tail;
        let idx = UNITS[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(bad)?
            + next_unit;
        next_unit = idx + 1;
        // As in Prometheus, a malformed string is invalid even when an earlier term is
        // already too large, so the range check waits until the whole text has parsed.
        total_ms = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(UNITS[idx].1))
            .and_then(|v| total_ms.checked_add(v))
            .filter(|v| *v <= MAX_MS)
            .unwrap_or(u64::MAX);
    }
    if total_ms > MAX_MS {
        return Err(too_large());
    }
    Ok(total_ms)
}

/// Formats a duration the way Prometheus prints one (`1h30m`, `15s`, `0s`).
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in UNITS {
        let len = u128::from(len);
        if ms >= len {
            out.push_str(&format!("{}{unit}", ms / len));
            ms %= len;
        }
    }
    out
}

/// A duration in a config file or flag, serialised as a Prometheus duration string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct PromDuration(pub Duration);

impl FromStr for PromDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).map(PromDuration)
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(self.0))
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A duration that cannot be zero, for intervals and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NonZeroDuration(Duration);

impl NonZeroDuration {
    /// Wraps `d`, refusing zero.
    pub fn new(d: Duration) -> Result<Self, DurationError> {
        if d.is_zero() {
            Err(DurationError::Zero)
        } else {
            Ok(NonZeroDuration(d))
        }
    }
    /// The wrapped duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for NonZeroDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NonZeroDuration::new(parse(s)?)
    }
}

impl fmt::Display for NonZeroDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(self.0))
    }
}

impl Serialize for NonZeroDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for NonZeroDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("2w").unwrap(), Duration::from_secs(14 * 86400));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        for bad in [
            "",
            "5",
            "s",
            "1m1h",
            "1.5s",
            "-1s",
            "10x",
            "1h1h",
            "0s0s",
            " 5m",
            "5 m",
            "99999999999999999999999y1h1h",
        ] {
            assert!(
                matches!(parse(bad), Err(DurationError::Invalid(_))),
                "{bad} should be refused"
            );
        }
    }

    /// Prometheus's bound is `i64::MAX` nanoseconds; beyond it is an error, not a wrap.
    #[test]
    fn durations_past_292_years_are_too_large() {
        assert_eq!(parse_ms("292y").unwrap(), 292 * 365 * 86_400_000);
        assert_eq!(parse_ms(&format!("{MAX_MS}ms")).unwrap(), MAX_MS);
        for big in [
            "293y",
            &format!("{}ms", MAX_MS + 1),
            "99999999999999999999999y",
            "18446744073709551615y",
        ] {
            assert!(
                matches!(parse(big), Err(DurationError::TooLarge(_))),
                "{big} should be too large"
            );
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["1h30m", "15s", "500ms", "1d", "1y2w"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
        assert!("0s".parse::<NonZeroDuration>().is_err());
    }
}
