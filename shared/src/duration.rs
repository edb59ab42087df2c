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
    /// The duration is zero where zero is not allowed.
    #[error("duration must be greater than zero")]
    Zero,
}

/// Parses a Prometheus-style duration: one or more `<integer><unit>` terms with units
/// `ms`, `s`, `m`, `h`, `d`, `w`, `y`, largest first. `0` alone is accepted.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError::Invalid(text.to_string());
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total_ms: u128 = 0;
    let mut rest = s;
    let mut last_unit_ms = u128::MAX;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u128 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: u128 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return Err(bad()),
        };
        if unit_ms >= last_unit_ms {
            return Err(bad());
        }
        last_unit_ms = unit_ms;
        total_ms = total_ms
            .checked_add(n.checked_mul(unit_ms).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    u64::try_from(total_ms)
        .map(Duration::from_millis)
        .map_err(|_| bad())
}

/// Formats a duration the way Prometheus prints one (`1h30m`, `15s`, `0s`).
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [
        ("y", 365 * 86_400_000u128),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
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
            "99999999999999999999999y",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
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
