//! Check state as metrics: for every label set a check watches, the agent exports
//!
//! - `vigil_check_firing` (gauge): 1 while the check fires for that label set, else 0;
//! - `vigil_anomaly_score` (gauge, anomaly checks): the highest detector score of the latest
//!   collection cycle, in [0, 1];
//! - `vigil_anomalies_total` (counter, anomaly checks): samples that scored at or above
//!   [`super::anomaly::DEFAULT_ANOMALY_THRESHOLD`] since the agent began tracking the label set (resets when
//!   the agent restarts, which `rate`/`increase` handle).
//!
//! **Label scheme.** The watched series' labels are kept, with its metric name moved into
//! `metric` and the check's name added as `check`; a watched label that is itself called
//! `metric` or `check` becomes `exported_metric` / `exported_check` (Prometheus's rule for
//! clashing scraped labels). So the score of `node_load1{host="a",instance="a"}` under the
//! default check is `vigil_anomaly_score{check="host_anomaly",host="a",instance="a",metric="node_load1"}`.
//! The agent's identity labels (`host`, `instance`, `pod`) are those of the watched series,
//! which the agent stamped before the checks saw it.
//!
//! The series go out twice: in every batch, as ordinary samples stored by the collector
//! (PromQL and rules see them), and on the agent's own `/metrics` through
//! [`CheckSeriesExport`], a `prometheus` collector registered with the agent's telemetry.
//! At most [`MAX_EXPORTED_PER_CHECK`] label sets per check are exported (the first ones a
//! check tracks; a slot frees when a label set goes stale), so the exported set stays
//! bounded whatever the selectors match. A label set that goes stale gets a Prometheus stale
//! marker in the next batch, so the collector stops returning it at once.

use super::CheckKind;
use prometheus::core::{Collector, Desc};
use prometheus::proto;
use std::sync::{Arc, Mutex};
use vigil_shared::model::{Labels, Point, Series, METRIC_NAME};

/// Name of the per-label-set firing gauge.
pub const FIRING_METRIC: &str = "vigil_check_firing";
/// Name of the per-series anomaly score gauge.
pub const SCORE_METRIC: &str = "vigil_anomaly_score";
/// Name of the per-series anomalous-sample counter.
pub const ANOMALIES_METRIC: &str = "vigil_anomalies_total";
/// Label carrying the watched series' metric name.
pub const METRIC_LABEL: &str = "metric";
/// Label carrying the check's name.
pub const CHECK_LABEL: &str = "check";
/// Label sets exported per check, at most.
pub const MAX_EXPORTED_PER_CHECK: usize = 1_000;
/// Prometheus's stale marker: a NaN with this exact bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The exported state of one label set of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSeries {
    /// Threshold or anomaly.
    pub kind: CheckKind,
    /// The export label set ([`export_labels`]), without `__name__`.
    pub labels: Labels,
    /// Whether the check fires for this label set.
    pub firing: bool,
    /// The latest cycle's highest anomaly score (anomaly checks, once scored).
    pub score: Option<f64>,
    /// Anomalous samples so far (anomaly checks).
    pub anomalies: u64,
}

/// The label set a watched series is exported under (see the module documentation).
pub fn export_labels(check: &str, watched: &Labels) -> Labels {
    let reserved = |n: &str| n == METRIC_LABEL || n == CHECK_LABEL;
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(watched.len() + 1);
    for (name, value) in watched.iter() {
        if name == METRIC_NAME {
            pairs.push((METRIC_LABEL.to_string(), value.to_string()));
            continue;
        }
        if !reserved(name) {
            pairs.push((name.to_string(), value.to_string()));
            continue;
        }
        // `exported_<name>`, prefixed again while that is taken too.
        let mut renamed = format!("exported_{name}");
        while watched.get(&renamed).is_some() {
            renamed = format!("exported_{renamed}");
        }
        pairs.push((renamed, value.to_string()));
    }
    pairs.push((CHECK_LABEL.to_string(), check.to_string()));
    Labels::new(pairs)
}

fn named(name: &str, labels: &Labels) -> Labels {
    let mut l = labels.clone();
    l.set(METRIC_NAME, name);
    l
}

/// The metric names exported for a check of `kind`.
fn names(kind: CheckKind) -> &'static [&'static str] {
    match kind {
        CheckKind::Threshold => &[FIRING_METRIC],
        CheckKind::Anomaly => &[FIRING_METRIC, SCORE_METRIC, ANOMALIES_METRIC],
    }
}

/// The samples to ship for one cycle at `at_ms`: the current value of every exported series,
/// and a stale marker for every series of a `retired` label set.
pub fn to_series(rows: &[CheckSeries], retired: &[(CheckKind, Labels)], at_ms: i64) -> Vec<Series> {
    let point = |value: f64| {
        vec![Point {
            timestamp_ms: at_ms,
            value,
        }]
    };
    let mut out = Vec::with_capacity(rows.len() * 3 + retired.len() * 3);
    for r in rows {
        out.push(Series {
            labels: named(FIRING_METRIC, &r.labels),
            points: point(if r.firing { 1.0 } else { 0.0 }),
        });
        if r.kind == CheckKind::Anomaly {
            if let Some(score) = r.score {
                out.push(Series {
                    labels: named(SCORE_METRIC, &r.labels),
                    points: point(score),
                });
            }
            out.push(Series {
                labels: named(ANOMALIES_METRIC, &r.labels),
                points: point(r.anomalies as f64),
            });
        }
    }
    for (kind, labels) in retired {
        for name in names(*kind) {
            out.push(Series {
                labels: named(name, labels),
                points: point(f64::from_bits(STALE_NAN_BITS)),
            });
        }
    }
    out
}

/// The exported series on the agent's `/metrics`: a `prometheus` collector over the latest
/// snapshot, replaced once per collection cycle with [`CheckSeriesExport::set`].
#[derive(Debug, Clone)]
pub struct CheckSeriesExport {
    rows: Arc<Mutex<Arc<Vec<CheckSeries>>>>,
    descs: Arc<Vec<Desc>>,
}

impl Default for CheckSeriesExport {
    fn default() -> Self {
        let desc = |name: &str, help: &str| {
            Desc::new(name.into(), help.into(), vec![], Default::default())
                .expect("valid metric description")
        };
        CheckSeriesExport {
            rows: Arc::default(),
            descs: Arc::new(vec![
                desc(FIRING_METRIC, FIRING_HELP),
                desc(SCORE_METRIC, SCORE_HELP),
                desc(ANOMALIES_METRIC, ANOMALIES_HELP),
            ]),
        }
    }
}

const FIRING_HELP: &str = "1 while the check fires for this label set, else 0.";
const SCORE_HELP: &str =
    "Highest anomaly score in [0, 1] of the watched series in the latest collection cycle.";
const ANOMALIES_HELP: &str =
    "Samples of the watched series that scored at or above the anomaly threshold.";

impl CheckSeriesExport {
    /// Replaces the exported snapshot.
    pub fn set(&self, rows: Vec<CheckSeries>) {
        *self.rows.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(rows);
    }

    /// Label sets currently exported.
    pub fn len(&self) -> usize {
        self.rows.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when nothing is exported.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn family(name: &str, help: &str, kind: proto::MetricType) -> proto::MetricFamily {
    let mut f = proto::MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    f
}

fn label_pairs(labels: &Labels) -> Vec<proto::LabelPair> {
    labels
        .iter()
        .map(|(n, v)| {
            let mut p = proto::LabelPair::default();
            p.set_name(n.to_string());
            p.set_value(v.to_string());
            p
        })
        .collect()
}

impl Collector for CheckSeriesExport {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut firing = family(FIRING_METRIC, FIRING_HELP, proto::MetricType::GAUGE);
        let mut score = family(SCORE_METRIC, SCORE_HELP, proto::MetricType::GAUGE);
        let mut anomalies = family(ANOMALIES_METRIC, ANOMALIES_HELP, proto::MetricType::COUNTER);
        for r in rows.iter() {
            let labels = label_pairs(&r.labels);
            let gauge = |v: f64| {
                let mut g = proto::Gauge::default();
                g.set_value(v);
                let mut m = proto::Metric::from_gauge(g);
                m.set_label(labels.clone());
                m
            };
            firing
                .mut_metric()
                .push(gauge(if r.firing { 1.0 } else { 0.0 }));
            if r.kind != CheckKind::Anomaly {
                continue;
            }
            if let Some(s) = r.score {
                score.mut_metric().push(gauge(s));
            }
            let mut c = proto::Counter::default();
            c.set_value(r.anomalies as f64);
            let mut m = proto::Metric::default();
            m.set_counter(c);
            m.set_label(labels);
            anomalies.mut_metric().push(m);
        }
        vec![firing, score, anomalies]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_moves_to_metric_and_clashing_labels_are_prefixed() {
        let watched = Labels::metric(
            "node_load1",
            &[("host", "a"), ("metric", "m"), ("exported_metric", "x")],
        );
        let l = export_labels("host_anomaly", &watched);
        assert_eq!(l.get(METRIC_NAME), None);
        assert_eq!(l.get("metric"), Some("node_load1"));
        assert_eq!(l.get("check"), Some("host_anomaly"));
        assert_eq!(l.get("exported_metric"), Some("x"));
        assert_eq!(l.get("exported_exported_metric"), Some("m"));
        assert_eq!(l.get("host"), Some("a"));
        assert_eq!(l.len(), 5);
        let l = export_labels("c", &Labels::metric("up", &[("check", "other")]));
        assert_eq!(l.get("check"), Some("c"));
        assert_eq!(l.get("exported_check"), Some("other"));
    }

    fn row(kind: CheckKind, firing: bool, score: Option<f64>, anomalies: u64) -> CheckSeries {
        CheckSeries {
            kind,
            labels: export_labels("c", &Labels::metric("node_load1", &[("host", "a")])),
            firing,
            score,
            anomalies,
        }
    }

    #[test]
    fn series_per_kind_and_stale_markers_for_retired_label_sets() {
        let rows = [
            row(CheckKind::Anomaly, true, Some(0.9995), 2),
            row(CheckKind::Threshold, false, None, 0),
        ];
        let retired = [(CheckKind::Anomaly, rows[0].labels.clone())];
        let out = to_series(&rows, &retired, 1_000);
        let names: Vec<&str> = out.iter().map(|s| s.labels.name()).collect();
        assert_eq!(
            names,
            [
                FIRING_METRIC,
                SCORE_METRIC,
                ANOMALIES_METRIC,
                FIRING_METRIC,
                FIRING_METRIC,
                SCORE_METRIC,
                ANOMALIES_METRIC
            ]
        );
        assert_eq!(out[0].points[0].value, 1.0);
        assert_eq!(out[1].points[0].value, 0.9995);
        assert_eq!(out[2].points[0].value, 2.0);
        assert_eq!(out[3].points[0].value, 0.0);
        assert!(out[4..]
            .iter()
            .all(|s| s.points[0].value.to_bits() == STALE_NAN_BITS));
        assert!(out.iter().all(|s| s.points[0].timestamp_ms == 1_000));
        // An anomaly check that has not scored yet exports no score.
        let out = to_series(&[row(CheckKind::Anomaly, false, None, 0)], &[], 0);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn metrics_endpoint_renders_typed_families_with_the_series_labels() {
        let export = CheckSeriesExport::default();
        let r = prometheus::Registry::new();
        r.register(Box::new(export.clone())).unwrap();
        let render = || {
            let mut out = String::new();
            prometheus::TextEncoder::new()
                .encode_utf8(&r.gather(), &mut out)
                .unwrap();
            out
        };
        assert_eq!(render(), "", "nothing exported yet");
        export.set(vec![row(CheckKind::Anomaly, false, Some(0.25), 3)]);
        let text = render();
        assert!(text.contains("# TYPE vigil_anomaly_score gauge"), "{text}");
        assert!(
            text.contains("# TYPE vigil_anomalies_total counter"),
            "{text}"
        );
        assert!(
            text.contains(r#"vigil_anomaly_score{check="c",host="a",metric="node_load1"} 0.25"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vigil_anomalies_total{check="c",host="a",metric="node_load1"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vigil_check_firing{check="c",host="a",metric="node_load1"} 0"#),
            "{text}"
        );
        assert_eq!(export.len(), 1);
    }
}
