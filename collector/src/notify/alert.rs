//! The alert as the notification pipeline sees it: labels, annotations, start and end time,
//! plus Prometheus's label-set fingerprint, which shows up
//! in Alertmanager's webhook payload (times there use [`crate::gocompat::rfc3339`]).

use std::collections::BTreeMap;
use std::time::SystemTime;

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
}
