//! Local checks evaluated on every collected batch, before it is shipped: threshold
//! conditions on selected series (`value > X`, `value < X`, a ratio against a sibling series,
//! a per-second rate over a window) held for a `for` duration, and the streaming anomaly
//! detector ([`super::anomaly::Detector`]) applied to selected series. Each check reports
//! firing/resolved transitions per label set; a transition becomes an [`Event`] of kind
//! `threshold` or `anomaly`. Owns the `[[checks]]` config schema, the selector and condition
//! parsers, and the bounded per-series state.
//!
//! Semantics follow Prometheus alerting rules where they apply: a condition must hold on
//! every evaluation for `for` before the check fires (pending → firing); a firing label set
//! whose condition stops holding, or whose series disappears for [`STALE_AFTER_MS`], resolves.

use super::anomaly::{Detector, DetectorParams, DEFAULT_ANOMALY_THRESHOLD};
use super::export::{self, CheckSeries, MAX_EXPORTED_PER_CHECK};
pub use super::CheckKind;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use vigil_shared::duration::PromDuration;
use vigil_shared::model::{Event, Labels, Series, METRIC_NAME};

/// Label sets tracked per check; further new label sets are ignored (and counted) until
/// old ones go stale.
pub const MAX_SERIES_PER_CHECK: usize = 10_000;
/// Samples remembered per series for `rate over WINDOW`.
pub const MAX_RATE_SAMPLES: usize = 1_024;
/// A label set not seen for this long is forgotten; if it was firing it resolves.
pub const STALE_AFTER_MS: i64 = 5 * 60_000;

/// Series the anomaly check watches when it selects nothing itself: CPU (per-second rate of
/// idle time per CPU), available memory, root filesystem space, 1-minute load, and network
/// bytes in/out per device (per-second rates).
pub const DEFAULT_ANOMALY_SELECTORS: &[&str] = &[
    r#"node_cpu_seconds_total{mode="idle"}"#,
    "node_memory_MemAvailable_bytes",
    r#"node_filesystem_avail_bytes{mountpoint="/"}"#,
    "node_load1",
    r#"node_network_receive_bytes_total{device!="lo"}"#,
    r#"node_network_transmit_bytes_total{device!="lo"}"#,
];

/// One `[[checks]]` table.
///
/// ```toml
/// [[checks]]
/// name = "root_disk_low"
/// select = ['node_filesystem_avail_bytes{mountpoint="/"}']
/// condition = "value / node_filesystem_size_bytes < 0.10"
/// for = "2m"
/// action = "clean_tmp"
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Unique name; appears in events as `check` and is what an action trigger refers to.
    pub name: String,
    /// Series selectors, PromQL style: `metric{label="v", other!="x", re=~"sd.*", nre!~"lo|tun.*"}`.
    /// Regexes are anchored. The metric name is required, except that an `anomaly` check
    /// with no selectors watches [`DEFAULT_ANOMALY_SELECTORS`].
    #[serde(default)]
    pub select: Vec<String>,
    /// One of: `value > X`, `value < X` (also `>=`, `<=`); `value / OTHER_METRIC < X` (ratio
    /// to the series of OTHER_METRIC with the same labels apart from the name);
    /// `rate over 5m > X` (per-second increase over the window, counter resets handled);
    /// `anomaly` (detector score ≥ 0.998). Counters (`*_total`) are fed to the anomaly
    /// detector as per-second rates, everything else as values.
    pub condition: String,
    /// How long the condition must hold before the check fires. Default 0 (fire at once).
    #[serde(default, rename = "for")]
    pub for_: Option<PromDuration>,
    /// Name of the `[[actions]]` entry to run when this check fires (optional).
    #[serde(default)]
    pub action: Option<String>,
}

impl CheckConfig {
    /// Every problem with this check (empty when valid), each naming the check and field.
    /// Unknown action references are checked by [`crate::remediate::validate_all`].
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let who = format!("checks[{}]", self.name);
        if self.name.trim().is_empty() {
            problems.push("checks: a check has an empty name".to_string());
        }
        let cond = match Condition::parse(&self.condition) {
            Ok(c) => Some(c),
            Err(e) => {
                problems.push(format!("{who}.condition: {e}"));
                None
            }
        };
        if self.select.is_empty() && !matches!(cond, Some(Condition::Anomaly) | None) {
            problems.push(format!(
                "{who}.select: at least one selector is required (e.g. 'node_load1{{instance=\"a\"}}')"
            ));
        }
        for s in &self.select {
            if let Err(e) = Selector::parse(s) {
                problems.push(format!("{who}.select: {s:?}: {e}"));
            }
        }
        problems
    }
}

/// A selector or condition could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The selector does not start with a metric name.
    #[error("expected a metric name, e.g. node_load1{{mode=\"idle\"}}")]
    MissingName,
    /// The text after the metric name is not a `{...}` matcher list.
    #[error("bad matcher list at byte {0}: expected label=\"value\" with =, !=, =~ or !~")]
    BadMatcher(usize),
    /// A quoted value is not terminated.
    #[error("unterminated string")]
    Unterminated,
    /// A `=~`/`!~` matcher has an invalid regex.
    #[error("invalid regex {0:?}: {1}")]
    BadRegex(String, String),
    /// The condition is not one of the supported forms.
    #[error("unsupported condition {0:?}: expected `value > X`, `value < X`, `value / other_metric < X`, `rate over 5m > X` or `anomaly`")]
    BadCondition(String),
}

/// How a matcher compares a label value.
#[derive(Debug, Clone)]
enum MatchOp {
    Eq(String),
    Ne(String),
    Re(Regex),
    Nre(Regex),
}

/// A parsed series selector: metric name plus label matchers. A missing label matches as "".
#[derive(Debug, Clone)]
pub struct Selector {
    /// The metric name.
    pub metric: String,
    matchers: Vec<(String, MatchOp)>,
}

impl Selector {
    /// Parses `metric{l="v",...}`.
    pub fn parse(text: &str) -> Result<Selector, ParseError> {
        let s = text.trim();
        let name_end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(s.len());
        let metric = &s[..name_end];
        if metric.is_empty() || metric.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(ParseError::MissingName);
        }
        let rest = s[name_end..].trim();
        let mut matchers = Vec::new();
        if !rest.is_empty() {
            let base = s.len() - rest.len();
            let inner = rest
                .strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .ok_or(ParseError::BadMatcher(base))?;
            let b = inner.as_bytes();
            let mut i = 0;
            loop {
                while i < b.len() && (b[i] == b' ' || b[i] == b',') {
                    i += 1;
                }
                if i >= b.len() {
                    break;
                }
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let label = &inner[start..i];
                if label.is_empty() {
                    return Err(ParseError::BadMatcher(base + 1 + start));
                }
                while i < b.len() && b[i] == b' ' {
                    i += 1;
                }
                let op_len = match (b.get(i), b.get(i + 1)) {
                    (Some(b'='), Some(b'~'))
                    | (Some(b'!'), Some(b'='))
                    | (Some(b'!'), Some(b'~')) => 2,
                    (Some(b'='), _) => 1,
                    _ => return Err(ParseError::BadMatcher(base + 1 + i)),
                };
                let op = &inner[i..i + op_len];
                i += op_len;
                while i < b.len() && b[i] == b' ' {
                    i += 1;
                }
                let quote = match b.get(i) {
                    Some(&q @ (b'"' | b'\'')) => q,
                    _ => return Err(ParseError::BadMatcher(base + 1 + i)),
                };
                i += 1;
                let mut value = String::new();
                let mut chars = inner[i..].char_indices();
                let mut closed = false;
                while let Some((off, c)) = chars.next() {
                    if c == '\\' {
                        match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, e)) => value.push(e),
                            None => return Err(ParseError::Unterminated),
                        }
                    } else if c as u32 == quote as u32 {
                        i += off + 1;
                        closed = true;
                        break;
                    } else {
                        value.push(c);
                    }
                }
                if !closed {
                    return Err(ParseError::Unterminated);
                }
                let anchored = |v: &str| {
                    Regex::new(&format!("^(?:{v})$"))
                        .map_err(|e| ParseError::BadRegex(v.to_string(), e.to_string()))
                };
                let m = match op {
                    "=" => MatchOp::Eq(value),
                    "!=" => MatchOp::Ne(value),
                    "=~" => MatchOp::Re(anchored(&value)?),
                    _ => MatchOp::Nre(anchored(&value)?),
                };
                matchers.push((label.to_string(), m));
            }
        }
        Ok(Selector {
            metric: metric.to_string(),
            matchers,
        })
    }

    /// True when `labels` (of a series named [`Selector::metric`]) satisfy every matcher.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|(name, op)| {
            let v = labels.get(name).unwrap_or("");
            match op {
                MatchOp::Eq(x) => v == x,
                MatchOp::Ne(x) => v != x,
                MatchOp::Re(r) => r.is_match(v),
                MatchOp::Nre(r) => !r.is_match(v),
            }
        })
    }
}

/// Comparison in a threshold condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    /// `>`
    Gt,
    /// `<`
    Lt,
    /// `>=`
    Ge,
    /// `<=`
    Le,
}

impl Cmp {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Cmp::Gt => a > b,
            Cmp::Lt => a < b,
            Cmp::Ge => a >= b,
            Cmp::Le => a <= b,
        }
    }
}

/// A parsed check condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `value OP X`: the latest sample.
    Value(Cmp, f64),
    /// `value / METRIC OP X`: latest sample divided by the latest sample of `METRIC` with the
    /// same labels apart from the name.
    Ratio(String, Cmp, f64),
    /// `rate over WINDOW OP X`: per-second increase over the window (ms), resets handled.
    Rate(i64, Cmp, f64),
    /// `anomaly`: detector score ≥ [`DEFAULT_ANOMALY_THRESHOLD`].
    Anomaly,
}

impl Condition {
    /// Parses one of the supported condition forms.
    pub fn parse(text: &str) -> Result<Condition, ParseError> {
        let bad = || ParseError::BadCondition(text.to_string());
        let t: Vec<&str> = text.split_whitespace().collect();
        let cmp = |s: &str| match s {
            ">" => Some(Cmp::Gt),
            "<" => Some(Cmp::Lt),
            ">=" => Some(Cmp::Ge),
            "<=" => Some(Cmp::Le),
            _ => None,
        };
        let num = |s: &str| s.parse::<f64>().ok().filter(|x| !x.is_nan());
        match t.as_slice() {
            ["anomaly"] => Ok(Condition::Anomaly),
            ["value", op, x] => Ok(Condition::Value(
                cmp(op).ok_or_else(bad)?,
                num(x).ok_or_else(bad)?,
            )),
            ["value", "/", metric, op, x] => {
                let sel = Selector::parse(metric).map_err(|_| bad())?;
                if !sel.matchers.is_empty() {
                    return Err(bad());
                }
                Ok(Condition::Ratio(
                    sel.metric,
                    cmp(op).ok_or_else(bad)?,
                    num(x).ok_or_else(bad)?,
                ))
            }
            ["rate", "over", w, op, x] => {
                let window = vigil_shared::duration::parse(w).map_err(|_| bad())?;
                if window.is_zero() {
                    return Err(bad());
                }
                Ok(Condition::Rate(
                    window.as_millis().min(i64::MAX as u128) as i64,
                    cmp(op).ok_or_else(bad)?,
                    num(x).ok_or_else(bad)?,
                ))
            }
            _ => Err(bad()),
        }
    }
}

/// Whether a transition starts or ends an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    /// The condition has held for `for`.
    Firing,
    /// The condition stopped holding, or the series went away.
    Resolved,
}

impl CheckState {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Firing => "firing",
            CheckState::Resolved => "resolved",
        }
    }
}

/// One label set of one check changing state.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckTransition {
    /// The check's name.
    pub check: String,
    /// Threshold or anomaly.
    pub kind: CheckKind,
    /// Firing or resolved.
    pub state: CheckState,
    /// The series' labels.
    pub labels: Labels,
    /// The evaluated value (the ratio, the rate, ...), NaN when the series went away.
    pub value: f64,
    /// The anomaly score, for anomaly checks.
    pub score: Option<f64>,
    /// The action configured for the check, if any.
    pub action: Option<String>,
    /// When (Unix ms).
    pub at_ms: i64,
}

impl CheckTransition {
    /// The event shipped for this transition: kind `threshold` or `anomaly`, the series'
    /// labels, fields `check`, `state`, `value` and (anomaly) `score`.
    pub fn to_event(&self) -> Event {
        let mut fields = vec![
            ("check".to_string(), self.check.clone()),
            ("state".to_string(), self.state.as_str().to_string()),
            ("value".to_string(), self.value.to_string()),
        ];
        if let Some(s) = self.score {
            fields.push(("score".to_string(), format!("{s:.6}")));
        }
        Event {
            timestamp_ms: self.at_ms,
            kind: match self.kind {
                CheckKind::Threshold => "threshold",
                CheckKind::Anomaly => "anomaly",
            }
            .to_string(),
            labels: self.labels.clone(),
            fields,
        }
    }
}

/// A set of checks could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// One or more checks are invalid; each line names one problem.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

#[derive(Debug)]
struct SeriesState {
    /// When the condition started holding continuously (None: not holding).
    active_since: Option<i64>,
    firing: bool,
    last_seen_ms: i64,
    /// The cycle this label set was last evaluated in (overlapping selectors).
    evaluated_ms: Option<i64>,
    last_value: f64,
    /// `rate over` samples (timestamp, value), oldest first.
    samples: VecDeque<(i64, f64)>,
    /// Anomaly detector and the last raw sample for counter rates.
    detector: Option<Box<Detector>>,
    last_raw: Option<(i64, f64)>,
    /// The highest anomaly score of the latest cycle (None before the detector scored).
    score: Option<f64>,
    /// Samples that scored at or above [`DEFAULT_ANOMALY_THRESHOLD`] since tracking began.
    anomalies: u64,
    /// The latest such sample: (when, score).
    last_anomaly: Option<(i64, f64)>,
    /// The label set this series is exported under ([`export::export_labels`]), or None when
    /// the check already exported [`MAX_EXPORTED_PER_CHECK`] label sets.
    export: Option<vigil_shared::model::Labels>,
}

/// A check's label set that is firing, or that saw an anomaly within
/// [`ACTIVE_ANOMALY_MS`]: what `vigil-agent status` lists as active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveCheck {
    /// The check's name.
    pub check: String,
    /// `threshold` or `anomaly`.
    pub kind: String,
    /// The watched series' labels.
    pub labels: Labels,
    /// Whether the check is firing for this label set now.
    pub firing: bool,
    /// Since when the condition has held (firing checks).
    pub since_ms: Option<i64>,
    /// The latest evaluated value (None when not a finite number: JSON has no NaN).
    pub value: Option<f64>,
    /// When the latest anomalous sample was seen and its score (anomaly checks).
    pub last_anomaly_ms: Option<i64>,
    pub last_anomaly_score: Option<f64>,
}

/// How long after its latest anomalous sample a series stays listed as an active anomaly
/// (Prometheus's lookback, so status agrees with an instant query at the collector).
pub const ACTIVE_ANOMALY_MS: i64 = 5 * 60_000;

#[derive(Debug)]
struct Check {
    name: String,
    selectors: Vec<Selector>,
    condition: Condition,
    for_ms: i64,
    action: Option<String>,
    state: HashMap<Labels, SeriesState>,
    /// Label sets of `state` that are exported (at most [`MAX_EXPORTED_PER_CHECK`]).
    exported: usize,
}

impl Check {
    fn kind(&self) -> CheckKind {
        if self.condition == Condition::Anomaly {
            CheckKind::Anomaly
        } else {
            CheckKind::Threshold
        }
    }
}

impl CheckKind {
    /// `threshold` or `anomaly`, as in events.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Threshold => "threshold",
            CheckKind::Anomaly => "anomaly",
        }
    }
}

/// All configured checks and their per-series state.
#[derive(Debug)]
pub struct ThresholdChecks {
    checks: Vec<Check>,
    params: DetectorParams,
    /// New label sets ignored because a check already tracked [`MAX_SERIES_PER_CHECK`].
    pub dropped_series: u64,
    /// Exported label sets forgotten since the last [`ThresholdChecks::take_retired`]: they
    /// get a stale marker so the collector stops returning them at once.
    retired: Vec<(CheckKind, Labels)>,
}

/// The per-second increase over `samples` (oldest first), treating a decrease as a counter
/// reset (the new value is the increase since the reset), as Prometheus's `rate` does,
/// without Prometheus's extrapolation to the window edges. None with fewer than 2 samples.
pub fn rate_of(samples: impl IntoIterator<Item = (i64, f64)>) -> Option<f64> {
    let mut it = samples.into_iter();
    let (t0, mut prev) = it.next()?;
    let mut increase = 0.0;
    let mut t_last = None;
    for (t, v) in it {
        increase += if v < prev { v } else { v - prev };
        prev = v;
        t_last = Some(t);
    }
    let dt = (t_last? - t0) as f64 / 1000.0;
    (dt > 0.0).then(|| increase / dt)
}

/// Labels without `__name__`, the key for matching a ratio's denominator.
fn without_name(labels: &Labels) -> Vec<(String, String)> {
    labels
        .iter()
        .filter(|(n, _)| *n != METRIC_NAME)
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

impl ThresholdChecks {
    /// Builds the checks, reporting every problem at once.
    pub fn new(configs: &[CheckConfig]) -> Result<ThresholdChecks, CheckError> {
        let mut problems: Vec<String> = configs.iter().flat_map(|c| c.validate()).collect();
        let mut seen = std::collections::HashSet::new();
        for c in configs {
            if !seen.insert(c.name.as_str()) {
                problems.push(format!("checks[{}]: duplicate check name", c.name));
            }
        }
        if !problems.is_empty() {
            return Err(CheckError::Invalid(problems));
        }
        let mut checks = Vec::new();
        for c in configs {
            let condition = Condition::parse(&c.condition)
                .map_err(|e| CheckError::Invalid(vec![e.to_string()]))?;
            let texts: Vec<&str> = if c.select.is_empty() {
                DEFAULT_ANOMALY_SELECTORS.to_vec()
            } else {
                c.select.iter().map(String::as_str).collect()
            };
            let selectors = texts
                .iter()
                .map(|s| Selector::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CheckError::Invalid(vec![e.to_string()]))?;
            checks.push(Check {
                name: c.name.clone(),
                selectors,
                condition,
                for_ms: c
                    .for_
                    .map(|d| d.0.as_millis().min(i64::MAX as u128) as i64)
                    .unwrap_or(0),
                action: c.action.clone(),
                state: HashMap::new(),
                exported: 0,
            });
        }
        Ok(ThresholdChecks {
            checks,
            params: DetectorParams::default(),
            dropped_series: 0,
            retired: Vec::new(),
        })
    }

    /// The check used when none is configured: one anomaly check named `host_anomaly` over
    /// [`DEFAULT_ANOMALY_SELECTORS`].
    pub fn default_configs() -> Vec<CheckConfig> {
        vec![CheckConfig {
            name: "host_anomaly".into(),
            select: vec![],
            condition: "anomaly".into(),
            for_: None,
            action: None,
        }]
    }

    /// Label sets currently tracked, over all checks (the state bound).
    pub fn tracked_series(&self) -> usize {
        self.checks.iter().map(|c| c.state.len()).sum()
    }

    /// The exported label sets' current state, in a stable order (check order, then labels):
    /// what [`export::to_series`] and the `/metrics` endpoint publish.
    pub fn exported(&self) -> Vec<CheckSeries> {
        let mut out = Vec::new();
        for check in &self.checks {
            let kind = check.kind();
            let start = out.len();
            for st in check.state.values() {
                let Some(labels) = &st.export else { continue };
                out.push(CheckSeries {
                    kind,
                    labels: labels.clone(),
                    firing: st.firing,
                    score: st.score,
                    anomalies: st.anomalies,
                });
            }
            out[start..].sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        out
    }

    /// Exported label sets forgotten since the last call (see [`export::to_series`]).
    pub fn take_retired(&mut self) -> Vec<(CheckKind, Labels)> {
        std::mem::take(&mut self.retired)
    }

    /// Label sets that are firing or had an anomalous sample within [`ACTIVE_ANOMALY_MS`]
    /// of `now_ms`, firing first, then the most recent anomaly; at most `limit`.
    pub fn active(&self, now_ms: i64, limit: usize) -> Vec<ActiveCheck> {
        let mut out: Vec<ActiveCheck> = Vec::new();
        for check in &self.checks {
            for (labels, st) in &check.state {
                let recent = st
                    .last_anomaly
                    .filter(|(t, _)| now_ms - *t < ACTIVE_ANOMALY_MS);
                if !st.firing && recent.is_none() {
                    continue;
                }
                out.push(ActiveCheck {
                    check: check.name.clone(),
                    kind: check.kind().as_str().to_string(),
                    labels: labels.clone(),
                    firing: st.firing,
                    since_ms: if st.firing { st.active_since } else { None },
                    value: st.last_value.is_finite().then_some(st.last_value),
                    last_anomaly_ms: recent.map(|(t, _)| t),
                    last_anomaly_score: recent.map(|(_, s)| s),
                });
            }
        }
        out.sort_by(|a, b| {
            b.firing
                .cmp(&a.firing)
                .then(b.last_anomaly_ms.cmp(&a.last_anomaly_ms))
                .then_with(|| (&a.check, &a.labels).cmp(&(&b.check, &b.labels)))
        });
        out.truncate(limit);
        out
    }

    /// Evaluates every check on one collection cycle's series and returns the transitions.
    /// Cost is O(series + matched series); each series' latest point is its value.
    pub fn observe(&mut self, series: &[Series], now_ms: i64) -> Vec<CheckTransition> {
        let mut by_name: HashMap<&str, Vec<&Series>> = HashMap::new();
        for s in series {
            by_name.entry(s.labels.name()).or_default().push(s);
        }
        let mut out = Vec::new();
        let params = &self.params;
        for check in &mut self.checks {
            let denominators: Option<HashMap<Vec<(String, String)>, f64>> = match &check.condition {
                Condition::Ratio(metric, _, _) => Some(
                    by_name
                        .get(metric.as_str())
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s.points.last().map(|p| (without_name(&s.labels), p.value)))
                        .collect(),
                ),
                _ => None,
            };
            for sel in &check.selectors {
                for s in by_name.get(sel.metric.as_str()).into_iter().flatten() {
                    if s.points.is_empty() || !sel.matches(&s.labels) {
                        continue;
                    }
                    if !check.state.contains_key(&s.labels) {
                        if check.state.len() >= MAX_SERIES_PER_CHECK {
                            self.dropped_series += 1;
                            continue;
                        }
                        check.state.insert(
                            s.labels.clone(),
                            SeriesState {
                                active_since: None,
                                firing: false,
                                last_seen_ms: now_ms,
                                evaluated_ms: None,
                                last_value: f64::NAN,
                                samples: VecDeque::new(),
                                detector: None,
                                last_raw: None,
                                score: None,
                                anomalies: 0,
                                last_anomaly: None,
                                export: None,
                            },
                        );
                    }
                    let Some(st) = check.state.get_mut(&s.labels) else {
                        continue;
                    };
                    if st.evaluated_ms == Some(now_ms) {
                        // Already selected by an earlier, overlapping selector this cycle.
                        continue;
                    }
                    st.evaluated_ms = Some(now_ms);
                    st.last_seen_ms = now_ms;
                    let (holds, value, score) =
                        evaluate(&check.condition, st, s, denominators.as_ref(), params);
                    st.last_value = value;
                    let kind = if check.condition == Condition::Anomaly {
                        CheckKind::Anomaly
                    } else {
                        CheckKind::Threshold
                    };
                    let transition = |state| CheckTransition {
                        check: check.name.clone(),
                        kind,
                        state,
                        labels: s.labels.clone(),
                        value,
                        score,
                        action: check.action.clone(),
                        at_ms: now_ms,
                    };
                    if holds {
                        let since = *st.active_since.get_or_insert(now_ms);
                        if !st.firing && now_ms - since >= check.for_ms {
                            st.firing = true;
                            out.push(transition(CheckState::Firing));
                        }
                    } else {
                        st.active_since = None;
                        if st.firing {
                            st.firing = false;
                            out.push(transition(CheckState::Resolved));
                        }
                    }
                }
            }
            // Forget stale label sets; a firing one resolves.
            let kind = if check.condition == Condition::Anomaly {
                CheckKind::Anomaly
            } else {
                CheckKind::Threshold
            };
            let retired = &mut self.retired;
            let exported = &mut check.exported;
            check.state.retain(|labels, st| {
                if now_ms - st.last_seen_ms < STALE_AFTER_MS {
                    return true;
                }
                if let Some(l) = st.export.take() {
                    *exported -= 1;
                    // Bounded even if nobody takes them: at most what one check exports.
                    if retired.len() < MAX_EXPORTED_PER_CHECK {
                        retired.push((kind, l));
                    }
                }
                if st.firing {
                    out.push(CheckTransition {
                        check: check.name.clone(),
                        kind,
                        state: CheckState::Resolved,
                        labels: labels.clone(),
                        value: f64::NAN,
                        score: None,
                        action: check.action.clone(),
                        at_ms: now_ms,
                    });
                }
                false
            });
            // Free export slots go to label sets not exported yet (new ones, or ones that
            // found the check full earlier).
            if check.exported < MAX_EXPORTED_PER_CHECK && check.exported < check.state.len() {
                for (labels, st) in check.state.iter_mut() {
                    if check.exported >= MAX_EXPORTED_PER_CHECK {
                        break;
                    }
                    if st.export.is_none() {
                        st.export = Some(export::export_labels(&check.name, labels));
                        check.exported += 1;
                    }
                }
            }
        }
        out
    }
}

/// Evaluates `cond` for series `s`: (condition holds, value, anomaly score).
fn evaluate(
    cond: &Condition,
    st: &mut SeriesState,
    s: &Series,
    denominators: Option<&HashMap<Vec<(String, String)>, f64>>,
    params: &DetectorParams,
) -> (bool, f64, Option<f64>) {
    let Some(last) = s.points.last() else {
        return (false, f64::NAN, None);
    };
    match cond {
        Condition::Value(op, x) => (op.holds(last.value, *x), last.value, None),
        Condition::Ratio(_, op, x) => {
            let d = denominators.and_then(|m| m.get(&without_name(&s.labels)).copied());
            match d {
                Some(d) if d != 0.0 && d.is_finite() => {
                    let r = last.value / d;
                    (op.holds(r, *x), r, None)
                }
                _ => (false, f64::NAN, None),
            }
        }
        Condition::Rate(window_ms, op, x) => {
            for p in &s.points {
                if !p.value.is_finite() {
                    continue;
                }
                if st.samples.back().is_some_and(|&(t, _)| p.timestamp_ms <= t) {
                    continue;
                }
                if st.samples.len() >= MAX_RATE_SAMPLES {
                    st.samples.pop_front();
                }
                st.samples.push_back((p.timestamp_ms, p.value));
            }
            let newest = st.samples.back().map(|&(t, _)| t).unwrap_or(i64::MIN);
            while st
                .samples
                .front()
                .is_some_and(|&(t, _)| t < newest.saturating_sub(*window_ms))
            {
                st.samples.pop_front();
            }
            match rate_of(st.samples.iter().copied()) {
                Some(r) => (op.holds(r, *x), r, None),
                None => (false, f64::NAN, None),
            }
        }
        Condition::Anomaly => {
            let counter = s.labels.name().ends_with("_total");
            let det = st
                .detector
                .get_or_insert_with(|| Box::new(Detector::new(params)));
            let mut best = 0.0f64;
            let mut value = f64::NAN;
            let mut scored = false;
            for p in &s.points {
                let input = if counter {
                    let prev = st.last_raw.replace((p.timestamp_ms, p.value));
                    match prev {
                        Some((t0, v0)) if p.timestamp_ms > t0 => {
                            rate_of([(t0, v0), (p.timestamp_ms, p.value)])
                        }
                        _ => None,
                    }
                } else {
                    Some(p.value)
                };
                if let Some(v) = input {
                    value = v;
                    let score = det.observe(p.timestamp_ms, v);
                    if score >= DEFAULT_ANOMALY_THRESHOLD {
                        st.anomalies += 1;
                        st.last_anomaly = Some((p.timestamp_ms, score));
                    }
                    best = best.max(score);
                    scored = true;
                }
            }
            if scored {
                st.score = Some(best);
            }
            (best >= DEFAULT_ANOMALY_THRESHOLD, value, Some(best))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_shared::model::Point;

    fn series(name: &str, labels: &[(&str, &str)], t: i64, v: f64) -> Series {
        Series {
            labels: Labels::metric(name, labels),
            points: vec![Point {
                timestamp_ms: t,
                value: v,
            }],
        }
    }

    fn check(name: &str, select: &str, cond: &str, for_: &str) -> CheckConfig {
        CheckConfig {
            name: name.into(),
            select: vec![select.into()],
            condition: cond.into(),
            for_: Some(for_.parse().unwrap()),
            action: None,
        }
    }

    #[test]
    fn selector_matchers_are_anchored_and_missing_labels_match_empty() {
        let s = Selector::parse(r#"m{a="x", b!="y", c=~"sd.", d!~"lo|tun.*", e=""}"#).unwrap();
        let l = |pairs: &[(&str, &str)]| Labels::metric("m", pairs);
        assert!(s.matches(&l(&[("a", "x"), ("c", "sda"), ("d", "eth0")])));
        assert!(
            !s.matches(&l(&[("a", "x"), ("c", "sda1")])),
            "regex is anchored"
        );
        assert!(!s.matches(&l(&[("a", "x"), ("c", "sda"), ("d", "tun0")])));
        assert!(!s.matches(&l(&[("a", "x"), ("b", "y"), ("c", "sda")])));
        assert!(!s.matches(&l(&[("a", "x"), ("c", "sda"), ("e", "z")])));
        assert!(!s.matches(&l(&[("c", "sda")])));
    }

    #[test]
    fn bad_selectors_and_conditions_are_named() {
        assert_eq!(
            Selector::parse("{a=\"b\"}").unwrap_err(),
            ParseError::MissingName
        );
        assert!(matches!(
            Selector::parse("m{a=~\"(\"}"),
            Err(ParseError::BadRegex(..))
        ));
        assert!(matches!(
            Selector::parse("m{a=\"b}"),
            Err(ParseError::Unterminated)
        ));
        assert!(matches!(
            Selector::parse("m{a~\"b\"}"),
            Err(ParseError::BadMatcher(_))
        ));
        for bad in [
            "value >",
            "value = 3",
            "rate over 0s > 1",
            "rate over x > 1",
            "foo",
        ] {
            assert!(Condition::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Condition::parse("rate over 5m >= 10").unwrap(),
            Condition::Rate(300_000, Cmp::Ge, 10.0)
        );
        let problems = check("c", "m{", "value >> 3", "0s").validate();
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn breach_held_for_fires_once_then_resolves() {
        let mut c =
            ThresholdChecks::new(&[check("load", "node_load1", "value > 4", "30s")]).unwrap();
        let at = |t: i64, v: f64| vec![series("node_load1", &[("instance", "h")], t, v)];
        assert!(c.observe(&at(0, 5.0), 0).is_empty(), "pending, not firing");
        assert!(c.observe(&at(10_000, 5.0), 10_000).is_empty());
        let fired = c.observe(&at(30_000, 6.0), 30_000);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].state, CheckState::Firing);
        assert_eq!(fired[0].value, 6.0);
        assert!(c.observe(&at(40_000, 7.0), 40_000).is_empty(), "fires once");
        let resolved = c.observe(&at(50_000, 1.0), 50_000);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].state, CheckState::Resolved);
        let ev = fired[0].to_event();
        assert_eq!(ev.kind, "threshold");
        assert_eq!(ev.labels.get("instance"), Some("h"));
        assert!(ev.fields.contains(&("check".into(), "load".into())));
    }

    #[test]
    fn a_dip_during_pending_restarts_the_for_clock() {
        let mut c =
            ThresholdChecks::new(&[check("load", "node_load1", "value > 4", "20s")]).unwrap();
        let at = |t: i64, v: f64| vec![series("node_load1", &[], t, v)];
        c.observe(&at(0, 5.0), 0);
        c.observe(&at(10_000, 1.0), 10_000);
        assert!(c.observe(&at(20_000, 5.0), 20_000).is_empty());
        assert!(c.observe(&at(30_000, 5.0), 30_000).is_empty());
        assert_eq!(c.observe(&at(40_000, 5.0), 40_000).len(), 1);
    }

    #[test]
    fn ratio_against_same_labels_only_for_root() {
        let mut c = ThresholdChecks::new(&[check(
            "root_low",
            r#"node_filesystem_avail_bytes{mountpoint="/"}"#,
            "value / node_filesystem_size_bytes < 0.10",
            "0s",
        )])
        .unwrap();
        let fs = |mp: &str, avail: f64, size: f64| {
            [
                series(
                    "node_filesystem_avail_bytes",
                    &[("mountpoint", mp)],
                    0,
                    avail,
                ),
                series("node_filesystem_size_bytes", &[("mountpoint", mp)], 0, size),
            ]
        };
        let mut batch = fs("/", 5.0, 100.0).to_vec();
        batch.extend(fs("/boot", 1.0, 100.0));
        let t = c.observe(&batch, 0);
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t[0].labels.get("mountpoint"), Some("/"));
        assert!((t[0].value - 0.05).abs() < 1e-12);
        // Denominator missing: condition does not hold, so it resolves.
        let t = c.observe(&fs("/", 5.0, 100.0)[..1], 1_000);
        assert_eq!(t[0].state, CheckState::Resolved);
    }

    #[test]
    fn rate_handles_counter_resets() {
        assert_eq!(rate_of([(0, 10.0), (10_000, 60.0)]), Some(5.0));
        // 10 → 60 (+50), reset to 20 (+20), → 30 (+10): 80 over 30 s.
        let r = rate_of([(0, 10.0), (10_000, 60.0), (20_000, 20.0), (30_000, 30.0)]).unwrap();
        assert!((r - 80.0 / 30.0).abs() < 1e-12);
        assert_eq!(rate_of([(0, 1.0)]), None);
    }

    #[test]
    fn rate_over_window_fires_and_forgets_old_samples() {
        let mut c =
            ThresholdChecks::new(&[check("rx", "net_total", "rate over 30s > 100", "0s")]).unwrap();
        let at = |t: i64, v: f64| vec![series("net_total", &[], t, v)];
        let mut fired = vec![];
        // 10/s for a minute, then 1000/s.
        let mut v = 0.0;
        for i in 0..=6 {
            v += 100.0;
            fired.extend(c.observe(&at(i * 10_000, v), i * 10_000));
        }
        assert!(fired.is_empty());
        for i in 7..=10 {
            v += 10_000.0;
            fired.extend(c.observe(&at(i * 10_000, v), i * 10_000));
        }
        assert_eq!(fired.len(), 1);
        // Window keeps only ~30s of samples.
        let st = c.checks[0].state.values().next().unwrap();
        assert!(st.samples.len() <= 4, "{}", st.samples.len());
    }

    #[test]
    fn vanished_firing_series_resolves_and_state_is_bounded() {
        let mut c = ThresholdChecks::new(&[check("hi", "m", "value > 0", "0s")]).unwrap();
        let many: Vec<Series> = (0..MAX_SERIES_PER_CHECK + 5)
            .map(|i| series("m", &[("i", &i.to_string())], 0, 1.0))
            .collect();
        assert_eq!(c.observe(&many, 0).len(), MAX_SERIES_PER_CHECK);
        assert_eq!(c.dropped_series, 5);
        assert_eq!(c.tracked_series(), MAX_SERIES_PER_CHECK);
        let t = c.observe(&[], STALE_AFTER_MS);
        assert_eq!(t.len(), MAX_SERIES_PER_CHECK);
        assert!(t.iter().all(|t| t.state == CheckState::Resolved));
        assert_eq!(c.tracked_series(), 0);
    }

    #[test]
    fn exported_state_counts_anomalies_lists_them_as_active_and_retires_stale_sets() {
        let mut c = ThresholdChecks::new(&ThresholdChecks::default_configs()).unwrap();
        let mut spike_at = None;
        for i in 0..600i64 {
            let v = if i == 550 {
                400.0
            } else {
                1.0 + 0.01 * ((i % 7) as f64)
            };
            let t = i * 10_000;
            c.observe(&[series("node_load1", &[("host", "h")], t, v)], t);
            let rows = c.exported();
            assert_eq!(rows.len(), 1);
            let score = rows[0].score.unwrap();
            assert!((0.0..=1.0).contains(&score));
            if i == 550 {
                spike_at = Some(t);
                assert!(score >= DEFAULT_ANOMALY_THRESHOLD, "{score}");
                assert!(rows[0].firing);
            }
            assert_eq!(rows[0].anomalies, u64::from(i >= 550), "sample {i}");
        }
        let rows = c.exported();
        assert_eq!(rows[0].labels.get("metric"), Some("node_load1"));
        assert_eq!(rows[0].labels.get("check"), Some("host_anomaly"));
        assert!(
            !rows[0].firing,
            "an anomaly check resolves on the next normal sample"
        );
        // Listed as active for 5 minutes after the anomalous sample, then no longer.
        let last = 599 * 10_000;
        let active = c.active(spike_at.unwrap() + 60_000, 10);
        assert_eq!(active.len(), 1, "{active:?}");
        assert_eq!(active[0].last_anomaly_ms, spike_at);
        assert!(!active[0].firing);
        let later = spike_at.unwrap() + ACTIVE_ANOMALY_MS;
        assert!(c.active(later, 10).is_empty());
        assert!(c.take_retired().is_empty());
        // The series goes away: its label set is forgotten and retired once.
        c.observe(&[], last + STALE_AFTER_MS);
        assert!(c.exported().is_empty());
        let retired = c.take_retired();
        assert_eq!(retired.len(), 1);
        assert_eq!(retired[0].0, CheckKind::Anomaly);
        assert_eq!(retired[0].1, rows[0].labels);
        assert!(c.take_retired().is_empty());
    }

    #[test]
    fn exported_label_sets_are_capped_per_check_and_slots_free_when_stale() {
        let mut c = ThresholdChecks::new(&[check("hi", "m", "value > 0", "0s")]).unwrap();
        let batch = |from: usize, n: usize, t: i64| -> Vec<Series> {
            (from..from + n)
                .map(|i| series("m", &[("i", &i.to_string())], t, 1.0))
                .collect()
        };
        c.observe(&batch(0, MAX_EXPORTED_PER_CHECK + 10, 0), 0);
        assert_eq!(c.tracked_series(), MAX_EXPORTED_PER_CHECK + 10);
        let rows = c.exported();
        assert_eq!(rows.len(), MAX_EXPORTED_PER_CHECK);
        assert!(rows
            .iter()
            .all(|r| r.firing && r.kind == CheckKind::Threshold));
        // Firing threshold checks are active.
        assert_eq!(c.active(0, 5).len(), 5);
        // All go stale; new label sets get the freed slots.
        c.observe(&batch(5_000, 3, STALE_AFTER_MS), STALE_AFTER_MS);
        assert_eq!(c.exported().len(), 3);
        assert_eq!(c.take_retired().len(), MAX_EXPORTED_PER_CHECK);
    }

    #[test]
    fn anomaly_check_fires_on_a_spike_in_a_default_host_metric() {
        let mut c = ThresholdChecks::new(&ThresholdChecks::default_configs()).unwrap();
        let mut fired = vec![];
        for i in 0..600i64 {
            let v = if i == 550 {
                400.0
            } else {
                1.0 + 0.01 * ((i % 7) as f64)
            };
            let t = i * 10_000;
            fired.extend(
                c.observe(&[series("node_load1", &[], t, v)], t)
                    .into_iter()
                    .filter(|t| t.state == CheckState::Firing),
            );
        }
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].at_ms, 5_500_000);
        let ev = fired[0].to_event();
        assert_eq!(ev.kind, "anomaly");
        assert!(ev.fields.iter().any(|(k, _)| k == "score"));
    }
}
