//! The data model that travels from agent to collector: labelled series with points, and
//! events (anomalies, remediation runs) that ride in the same batches.

use serde::{Deserialize, Serialize};

/// Name of the label that carries the metric name, as in Prometheus.
pub const METRIC_NAME: &str = "__name__";

/// A label set, kept sorted by name with no duplicate names. `__name__` sorts first
/// because `_` precedes lowercase letters in ASCII.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Builds a label set from pairs, sorting them and keeping the last value of a
    /// repeated name. Empty values are dropped, as Prometheus treats them as absent.
    pub fn new(mut pairs: Vec<(String, String)>) -> Self {
        pairs.retain(|(_, v)| !v.is_empty());
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            match out.last_mut() {
                Some(last) if last.0 == name => last.1 = value,
                _ => out.push((name, value)),
            }
        }
        Labels(out)
    }

    /// Builds a label set for `metric` with the given extra labels.
    pub fn metric(metric: &str, pairs: &[(&str, &str)]) -> Self {
        let mut v = Vec::with_capacity(pairs.len() + 1);
        v.push((METRIC_NAME.to_string(), metric.to_string()));
        v.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Labels::new(v)
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// The metric name (`__name__`), or the empty string.
    pub fn name(&self) -> &str {
        self.get(METRIC_NAME).unwrap_or("")
    }

    /// Sets `name` to `value`, replacing an existing value. An empty value removes the label.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (name.to_string(), value.to_string())),
        }
    }

    /// Sets `name` only when it is not already present (Prometheus's `honor_labels` style).
    pub fn set_if_absent(&mut self, name: &str, value: &str) {
        if self.get(name).is_none() {
            self.set(name, value);
        }
    }

    /// Iterates the pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sorted pairs.
    pub fn as_slice(&self) -> &[(String, String)] {
        &self.0
    }

    /// Consumes the set, returning its sorted pairs.
    pub fn into_inner(self) -> Vec<(String, String)> {
        self.0
    }
}

/// One timestamped value. Timestamps are Unix milliseconds, as in Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Unix time in milliseconds.
    pub timestamp_ms: i64,
    /// The value; NaN and ±Inf are allowed, and a Prometheus stale marker is a NaN payload.
    pub value: f64,
}

/// A series and the points collected for it in one batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<Point>,
}

/// Something that happened on the agent that is not a sample: an anomaly, a threshold
/// breach, a remediation run. Events are stored by the collector and listed by its API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unix time in milliseconds.
    pub timestamp_ms: i64,
    /// What kind of event: `anomaly`, `threshold`, `remediation`, `flap_guard`, ...
    pub kind: String,
    /// Labels that identify the subject (series labels, action name, ...).
    pub labels: Labels,
    /// Free-form key/value details (score, exit code, duration, output excerpt, ...).
    pub fields: Vec<(String, String)>,
}

/// What one collection cycle produced. A batch is the unit that is buffered, numbered,
/// shipped and acknowledged.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Batch {
    pub series: Vec<Series>,
    pub events: Vec<Event>,
}

impl Batch {
    /// Total number of points in the batch.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_deduplicated_and_drop_empty_values() {
        let l = Labels::new(vec![
            ("job".into(), "a".into()),
            ("__name__".into(), "up".into()),
            ("job".into(), "b".into()),
            ("empty".into(), "".into()),
        ]);
        assert_eq!(
            l.as_slice(),
            &[("__name__".into(), "up".into()), ("job".into(), "b".into())]
        );
        assert_eq!(l.name(), "up");
    }

    #[test]
    fn set_replaces_inserts_and_removes() {
        let mut l = Labels::metric("m", &[("b", "1")]);
        l.set("a", "x");
        l.set("b", "2");
        l.set_if_absent("b", "3");
        assert_eq!(l.get("a"), Some("x"));
        assert_eq!(l.get("b"), Some("2"));
        l.set("a", "");
        assert_eq!(l.get("a"), None);
        assert_eq!(l.len(), 2);
    }
}
