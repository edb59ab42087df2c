//! Parsing of the HTTP API's time and duration parameters the way Prometheus does: times as
//! Unix seconds (fractions rounded to milliseconds) or RFC 3339; durations as seconds or as
//! Prometheus duration strings (`1h30m`, `15s`, `2d`).

use vigil_shared::calendar::days_from_civil;

use super::QueryError;

/// Parses a time parameter into Unix milliseconds.
pub fn parse_time(s: &str) -> Result<i64, QueryError> {
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() {
            let secs = f.trunc();
            let frac = ((f - secs) * 1000.0).round();
            return Ok(secs as i64 * 1000 + frac as i64);
        }
    }
    // Prometheus's sentinel values for "no bound".
    match s {
        "-292273086-05-16T16:47:06Z" => return Ok(i64::MIN / 1000),
        "292277025-08-18T07:12:54.999999999Z" => return Ok(i64::MAX / 1000),
        _ => {}
    }
    parse_rfc3339(s)
        .ok_or_else(|| QueryError::BadData(format!("cannot parse {s:?} to a valid timestamp")))
}

/// Parses an RFC 3339 timestamp (`2024-01-02T03:04:05.678Z`, `...+02:00`) into Unix ms.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i];
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        ms = digits.parse().ok()?;
    }
    let offset_s = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let o = oh * 3600 + om * 60;
            if *c == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    Some(secs * 1000 + ms)
}

/// Parses a duration parameter (`step`, `timeout`) into milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, QueryError> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = f * 1000.0;
        if !ms.is_finite() || ms.abs() >= 9.2e18 {
            return Err(QueryError::BadData(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            )));
        }
        return Ok(ms.round() as i64);
    }
    vigil_shared::duration::parse_ms(s)
        .map(|ms| ms as i64)
        .map_err(|_| QueryError::BadData(format!("cannot parse {s:?} to a valid duration")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_unix_seconds_or_rfc3339() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("1700000000.1234").unwrap(), 1_700_000_000_123);
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z").unwrap(), 1500);
        assert_eq!(
            parse_time("2024-02-29T13:45:00Z").unwrap(),
            1_709_214_300_000
        );
        assert_eq!(
            parse_time("2024-02-29T15:45:00+02:00").unwrap(),
            1_709_214_300_000
        );
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2024-13-01T00:00:00Z").is_err());
    }

    #[test]
    fn durations_parse_as_seconds_or_units() {
        assert_eq!(parse_duration("15").unwrap(), 15_000);
        assert_eq!(parse_duration("0.5").unwrap(), 500);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000);
        assert_eq!(parse_duration("1h").unwrap(), 3_600_000);
        assert_eq!(parse_duration("250ms").unwrap(), 250);
        assert!(parse_duration("30s1m").is_err());
        assert!(parse_duration("abc").is_err());
    }
}
