//! Go's `time.Time.Format` for the times templates see (`.StartsAt.Format "15:04"` in
//! Alertmanager templates): Go's reference-time layouts (`2006-01-02 15:04:05.000 MST`,
//! `Jan _2`, `Monday`, `3:04PM`, `-07:00`, `Z07:00`, fractions `.000`/`.999`, …), read
//! chunk by chunk as Go's `nextStdChunk` does. Times are UTC, as the collector's are.
//! Also Go's `time.RFC3339Nano` output ([`rfc3339`]) and its parser ([`parse_rfc3339`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vigil_shared::calendar::{civil_from_days, days_from_civil};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The broken-down UTC time.
struct Parts {
    year: i64,
    month: u32,
    day: u32,
    yday: u32,
    weekday: usize,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: u32,
}

/// Seconds and nanoseconds since the Unix epoch; `None` is Go's zero time
/// (0001-01-01T00:00:00Z).
pub fn unix_parts(t: Option<SystemTime>) -> (i64, u32) {
    match t {
        None => (-62_135_596_800, 0),
        Some(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => {
                let d = e.duration();
                let (s, n) = (-(d.as_secs() as i64), d.subsec_nanos());
                if n > 0 {
                    (s - 1, 1_000_000_000 - n)
                } else {
                    (s, 0)
                }
            }
        },
    }
}

fn parts(secs: i64, nanos: u32) -> Parts {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let jan1 = days_from_civil(year, 1, 1);
    Parts {
        year,
        month,
        day,
        yday: (days - jan1 + 1) as u32,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as usize,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
        nanos,
    }
}

/// Go's `time.RFC3339Nano` layout.
pub const RFC3339_NANO: &str = "2006-01-02T15:04:05.999999999Z07:00";

/// The layout of Go's `time.Time.String()`.
pub const TIME_STRING: &str = "2006-01-02 15:04:05.999999999 -0700 MST";

/// Formats `t` (UTC; `None` is Go's zero time) with Go layout `layout`.
pub fn format(t: Option<SystemTime>, layout: &str) -> String {
    let (secs, nanos) = unix_parts(t);
    format_unix(secs, nanos, layout)
}

/// Formats the UTC time `secs` seconds and `nanos` nanoseconds after the Unix epoch with Go
/// layout `layout`.
pub fn format_unix(secs: i64, nanos: u32, layout: &str) -> String {
    let p = parts(secs, nanos);
    let mut out = String::with_capacity(layout.len() + 8);
    let mut rest = layout;
    while !rest.is_empty() {
        let (text, used) = chunk(rest, &p);
        out.push_str(&text);
        rest = &rest[used..];
    }
    out
}

/// The text of the layout element at the start of `s` and its length in bytes; a byte
/// that starts no element is copied.
fn chunk(s: &str, p: &Parts) -> (String, usize) {
    let starts = |pre: &str| s.starts_with(pre);
    let hour12 = || match p.hour % 12 {
        0 => 12,
        h => h,
    };
    let month = MONTHS[(p.month - 1) as usize];
    let day = DAYS[p.weekday];
    let elem = |text: String, n: usize| Some((text, n));
    let found = match s.as_bytes()[0] {
        b'J' if starts("January") => elem(month.to_string(), 7),
        b'J' if starts("Jan") => elem(month[..3].to_string(), 3),
        b'M' if starts("Monday") => elem(day.to_string(), 6),
        b'M' if starts("Mon") => elem(day[..3].to_string(), 3),
        b'M' if starts("MST") => elem("UTC".to_string(), 3),
        b'0' if starts("002") => elem(format!("{:03}", p.yday), 3),
        b'0' => match s.as_bytes().get(1) {
            Some(b'1') => elem(format!("{:02}", p.month), 2),
            Some(b'2') => elem(format!("{:02}", p.day), 2),
            Some(b'3') => elem(format!("{:02}", hour12()), 2),
            Some(b'4') => elem(format!("{:02}", p.minute), 2),
            Some(b'5') => elem(format!("{:02}", p.second), 2),
            Some(b'6') => elem(format!("{:02}", p.year.rem_euclid(100)), 2),
            _ => None,
        },
        b'1' if starts("15") => elem(format!("{:02}", p.hour), 2),
        b'1' => elem(p.month.to_string(), 1),
        b'2' if starts("2006") => elem(format!("{:04}", p.year), 4),
        b'2' => elem(p.day.to_string(), 1),
        b'_' if starts("_2006") => elem(format!("_{:04}", p.year), 5),
        b'_' if starts("__2") => elem(format!("{:>3}", p.yday), 3),
        b'_' if starts("_2") => elem(format!("{:>2}", p.day), 2),
        b'3' => elem(hour12().to_string(), 1),
        b'4' => elem(p.minute.to_string(), 1),
        b'5' => elem(p.second.to_string(), 1),
        b'P' if starts("PM") => elem(if p.hour >= 12 { "PM" } else { "AM" }.into(), 2),
        b'p' if starts("pm") => elem(if p.hour >= 12 { "pm" } else { "am" }.into(), 2),
        b'-' | b'Z' => {
            let z = s.as_bytes()[0] == b'Z';
            [
                ("07:00:00", "+00:00:00"),
                ("070000", "+000000"),
                ("07:00", "+00:00"),
                ("0700", "+0000"),
                ("07", "+00"),
            ]
            .iter()
            .find(|(pat, _)| s[1..].starts_with(pat))
            .and_then(|(pat, utc)| elem(if z { "Z" } else { utc }.to_string(), 1 + pat.len()))
        }
        b'.' | b',' => fraction(s, p.nanos),
        _ => None,
    };
    found.unwrap_or_else(|| {
        let c = s.chars().next().unwrap_or_default();
        (c.to_string(), c.len_utf8())
    })
}

/// `.000` (always that many digits) or `.999` (trailing zeros dropped, and the separator
/// with them when nothing is left), when not followed by another digit.
fn fraction(s: &str, nanos: u32) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let digit = *b.get(1).filter(|d| matches!(d, b'0' | b'9'))?;
    let n = b[1..].iter().take_while(|&&d| d == digit).count();
    if b.get(1 + n).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let all = format!("{nanos:09}");
    let mut digits = all[..n.min(9)].to_string();
    if digit == b'9' {
        digits.truncate(digits.trim_end_matches('0').len());
        if digits.is_empty() {
            return Some((String::new(), 1 + n));
        }
    }
    Some((format!("{}{digits}", b[0] as char), 1 + n))
}

/// Go's `time.RFC3339Nano` in UTC (trailing zeros of the fraction dropped); `None` is Go's
/// zero time, `0001-01-01T00:00:00Z`, which Alertmanager sends as the end of firing alerts.
pub fn rfc3339(t: Option<SystemTime>) -> String {
    format(t, RFC3339_NANO)
}

/// Parses the subset of RFC 3339 that [`rfc3339`] writes (UTC, optional fraction). Used by
/// tests and by callers reading Alertmanager payloads.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: i64 = dp.next()?.parse().ok()?;
    let d: i64 = dp.next()?.parse().ok()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut tp = hms.split(':');
    let hh: i64 = tp.next()?.parse().ok()?;
    let mm: i64 = tp.next()?.parse().ok()?;
    let ss: i64 = tp.next()?.parse().ok()?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").get(..9)?.parse().ok()?
    };
    let days = days_from_civil(y, m, d);
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    if secs >= 0 {
        Some(UNIX_EPOCH + Duration::new(secs as u64, nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs((-secs) as u64))
            .map(|t| t + Duration::from_nanos(u64::from(nanos)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-03-05T14:07:09.120Z, a Tuesday, day 65 of a leap year.
    fn t() -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_millis(1_709_647_629_120))
    }

    #[test]
    fn layouts_render_as_go_renders_them() {
        // Expected strings are Go 1.21's output for the same instant and layouts.
        for (layout, want) in [
            ("2006-01-02 15:04:05", "2024-03-05 14:07:09"),
            ("2006-01-02T15:04:05Z07:00", "2024-03-05T14:07:09Z"),
            (
                "Mon Jan _2 15:04:05 MST 2006",
                "Tue Mar  5 14:07:09 UTC 2024",
            ),
            (
                "Monday, 02-Jan-06 15:04:05 -0700",
                "Tuesday, 05-Mar-24 14:07:09 +0000",
            ),
            ("January 2, 2006 at 3:04pm", "March 5, 2024 at 2:07pm"),
            ("03:04:05PM", "02:07:09PM"),
            ("15:04:05.000", "14:07:09.120"),
            ("15:04:05.999", "14:07:09.12"),
            ("15:04:05,000000", "14:07:09,120000"),
            ("1/2 3:4:5", "3/5 2:7:9"),
            ("002 __2", "065  65"),
            ("-07:00 -07 Z0700", "+00:00 +00 Z"),
            ("literal text!", "literal text!"),
        ] {
            assert_eq!(format(t(), layout), want, "layout {layout:?}");
        }
        let whole = Some(UNIX_EPOCH + Duration::from_secs(1_709_647_629));
        assert_eq!(
            format(whole, "05.999s"),
            "09s",
            "nothing left: no separator"
        );
        assert_eq!(format(whole, "05.000"), "09.000");
    }

    #[test]
    fn go_zero_time_and_midnight() {
        assert_eq!(
            format(None, "2006-01-02 15:04:05 Monday"),
            "0001-01-01 00:00:00 Monday"
        );
        let midnight = Some(UNIX_EPOCH + Duration::from_secs(86_400 * 365));
        assert_eq!(format(midnight, "3PM Jan 2 2006"), "12AM Jan 1 1971");
        assert_eq!(unix_parts(None).0, -62_135_596_800);
    }

    #[test]
    fn rfc3339_like_go() {
        assert_eq!(rfc3339(None), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(Some(UNIX_EPOCH)), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(rfc3339(Some(t)), "2023-11-14T22:13:20.12Z");
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.12Z"), Some(t));
        let leap = parse_rfc3339("2024-02-29T23:59:59Z").unwrap();
        assert_eq!(rfc3339(Some(leap)), "2024-02-29T23:59:59Z");
    }
}
