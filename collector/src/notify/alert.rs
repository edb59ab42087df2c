//! The alert as the notification pipeline sees it: labels, annotations, start and end time,
//! plus Prometheus's label-set fingerprint and Go's RFC 3339 time format, both of which show up
//! in Alertmanager's webhook payload.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One alert. An alert is resolved once `ends_at` is in the past; an alert without `ends_at`
/// is given one `resolve_timeout` after it was received, as Alertmanager does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Identifying labels.
    pub labels: BTreeMap<String, String>,
    /// Descriptive annotations.
    pub annotations: BTreeMap<String, String>,
    /// When the alert started firing.
    pub starts_at: SystemTime,
    /// When the alert ends (or ended).
    pub ends_at: Option<SystemTime>,
    /// Link back to the rule that produced it.
    pub generator_url: String,
}

/// The labels and the annotations that every alert of a group shares: Alertmanager's
/// `CommonLabels` and `CommonAnnotations`.
pub fn common_labels_and_annotations(
    alerts: &[Alert],
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut labels = alerts.first().map(|a| a.labels.clone()).unwrap_or_default();
    let mut annotations = alerts
        .first()
        .map(|a| a.annotations.clone())
        .unwrap_or_default();
    for a in alerts.iter().skip(1) {
        labels.retain(|k, v| a.labels.get(k) == Some(v));
        annotations.retain(|k, v| a.annotations.get(k) == Some(v));
    }
    (labels, annotations)
}

impl Alert {
    /// A firing alert with these labels, starting now, no end time.
    pub fn firing(labels: &[(&str, &str)]) -> Alert {
        Alert {
            labels: labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            starts_at: SystemTime::now(),
            ends_at: None,
            generator_url: String::new(),
        }
    }

    /// Prometheus's fingerprint of the label set.
    pub fn fingerprint(&self) -> u64 {
        fingerprint(&self.labels)
    }

    /// True when the alert has ended by `now`.
    pub fn is_resolved_at(&self, now: SystemTime) -> bool {
        self.ends_at.is_some_and(|e| e <= now)
    }

    /// Labels as name/value pairs, sorted by name.
    pub fn label_pairs(&self) -> Vec<(String, String)> {
        self.labels
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }
}

const FNV_OFFSET: u64 = 14695981039346656037;
const FNV_PRIME: u64 = 1099511628211;
const SEPARATOR: u8 = 0xff;

/// Prometheus's `LabelSet.Fingerprint()`: FNV-1a 64 over sorted `name 0xff value 0xff`.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> u64 {
    let mut h = FNV_OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(FNV_PRIME);
        }
    };
    for (n, v) in labels {
        add(n.as_bytes());
        add(&[SEPARATOR]);
        add(v.as_bytes());
        add(&[SEPARATOR]);
    }
    h
}

/// Go's `time.RFC3339Nano` in UTC (trailing zeros of the fraction dropped); `None` is Go's
/// zero time, `0001-01-01T00:00:00Z`, which Alertmanager sends as the end of firing alerts.
pub fn rfc3339(t: Option<SystemTime>) -> String {
    let Some(t) = t else {
        return "0001-01-01T00:00:00Z".to_string();
    };
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let mut s = -(d.as_secs() as i64);
            let mut n = d.subsec_nanos();
            if n > 0 {
                s -= 1;
                n = 1_000_000_000 - n;
            }
            (s, n)
        }
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
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
    // days_from_civil
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
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

    #[test]
    fn fingerprint_matches_prometheus() {
        // Values from prometheus/common model's signature tests.
        assert_eq!(fingerprint(&BTreeMap::new()), 14695981039346656037);
        let ls: BTreeMap<String, String> = [
            ("name".to_string(), "garland, briggs".to_string()),
            ("fear".to_string(), "love is not enough".to_string()),
        ]
        .into_iter()
        .collect();
        assert_eq!(fingerprint(&ls), 5799056148416392346);
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
