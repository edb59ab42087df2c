//! Evaluation of rule groups at a timestamp, with Prometheus's semantics: a recording rule
//! renames its result and adds its labels; an alerting rule keeps one alert per label set
//! and moves it inactive → pending → firing (after `for`) → resolved (kept 15 minutes so it
//! can be sent as resolved), holding it firing for `keep_firing_for` after the condition
//! clears. Every evaluation yields the samples to write back: recorded series, `ALERTS` and
//! `ALERTS_FOR_STATE` for every pending or firing alert, and stale markers for series a rule
//! produced last time but not this time. Nothing here touches storage or clocks: the caller
//! passes an [`Engine`] and a timestamp and writes what comes back.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use vigil_shared::model::{Labels, Point, Series, METRIC_NAME};

use super::file::{RuleDef, RuleGroup};
use crate::gotemplate::{expand, TemplateData};
use crate::query::value::STALE_NAN_BITS;
use crate::query::{Engine, QueryValue};

/// How long a resolved alert is kept so it is still reported as resolved (Prometheus: 15m).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Why one rule's evaluation failed. The rule keeps its previous alert state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The query failed.
    #[error("{0}")]
    Query(String),
    /// The query returned a string or a range vector.
    #[error("rule result is not a vector or scalar")]
    NotVector,
    /// Two samples mapped to one alert label set.
    #[error("vector contains metrics with the same labelset after applying alert labels")]
    DuplicateAlertLabels,
    /// Two samples mapped to one recorded series.
    #[error("vector contains metrics with the same labelset after applying rule labels")]
    DuplicateRuleLabels,
    /// The rule produced more alerts than the group's `limit`.
    #[error("exceeded limit of {limit} with {n} alerts")]
    AlertLimit { limit: u64, n: usize },
    /// The rule produced more series than the group's `limit`.
    #[error("exceeded limit of {limit} with {n} series")]
    SeriesLimit { limit: u64, n: usize },
}

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    /// Prometheus's name for the state (`alertstate` label, API `state`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of an alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveAlert {
    /// Labels: the sample's (without `__name__`), the rule's (expanded) and `alertname`.
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    /// The sample value at the last evaluation.
    pub value: f64,
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub keep_firing_since_ms: Option<i64>,
    /// When the alert was last handed out for sending.
    pub last_sent_ms: Option<i64>,
    /// The end time sent with a firing alert (four resend periods ahead).
    pub valid_until_ms: i64,
}

/// An alerting rule and its alerts.
#[derive(Debug, Clone)]
pub struct AlertingRule {
    pub name: String,
    pub expr: String,
    pub for_ms: i64,
    pub keep_firing_for_ms: i64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// When false (after a restart, before `for` state is restored), no `ALERTS` series are
    /// written, as in Prometheus.
    pub restored: bool,
    active: BTreeMap<Labels, ActiveAlert>,
}

/// A recording rule.
#[derive(Debug, Clone)]
pub struct RecordingRule {
    pub name: String,
    pub expr: String,
    pub labels: BTreeMap<String, String>,
}

/// A rule of either kind.
#[derive(Debug, Clone)]
pub enum Rule {
    Alerting(AlertingRule),
    Recording(RecordingRule),
}

impl Rule {
    /// The alert name or recorded metric name.
    pub fn name(&self) -> &str {
        match self {
            Rule::Alerting(r) => &r.name,
            Rule::Recording(r) => &r.name,
        }
    }

    /// The rule's PromQL expression.
    pub fn expr(&self) -> &str {
        match self {
            Rule::Alerting(r) => &r.expr,
            Rule::Recording(r) => &r.expr,
        }
    }
}

/// Health of a rule after its last evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleHealth {
    /// `None` before the first evaluation.
    pub last_eval_ms: Option<i64>,
    /// The last evaluation's error, if it failed.
    pub last_error: Option<String>,
}

/// Settings shared by every group: external labels and URL for templates.
#[derive(Debug, Clone, Default)]
pub struct GroupContext {
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
}

/// A group of rules, evaluated in order.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    /// The file the group came from.
    pub file: String,
    pub interval_ms: i64,
    pub limit: u64,
    pub rules: Vec<Rule>,
    pub health: Vec<RuleHealth>,
    ctx: GroupContext,
    previous: Vec<HashSet<Labels>>,
}

/// What one rule's evaluation produced.
#[derive(Debug, Clone, Default)]
pub struct RuleOutput {
    /// Samples to write, one point each at the evaluation time (including stale markers).
    pub samples: Vec<Series>,
    pub error: Option<EvalError>,
}

impl Group {
    /// Builds a group from its definition. `default_interval_ms` applies when the group has no
    /// `interval`.
    pub fn new(def: &RuleGroup, file: &str, default_interval_ms: i64, ctx: GroupContext) -> Group {
        let rules: Vec<Rule> = def.rules.iter().map(rule_from_def).collect();
        Group {
            name: def.name.clone(),
            file: file.to_string(),
            interval_ms: def
                .interval
                .filter(|i| *i > 0)
                .unwrap_or(default_interval_ms),
            limit: def.limit,
            health: vec![RuleHealth::default(); rules.len()],
            previous: vec![HashSet::new(); rules.len()],
            rules,
            ctx,
        }
    }

    /// Evaluates rule `i` at `t_ms`. The caller writes `samples` before evaluating the next
    /// rule, so later rules of the group see earlier rules' output (as in Prometheus).
    pub fn eval_rule(&mut self, i: usize, engine: &Engine, t_ms: i64) -> RuleOutput {
        let Some(rule) = self.rules.get_mut(i) else {
            return RuleOutput::default();
        };
        let result = match rule {
            Rule::Alerting(r) => r.eval(engine, t_ms, self.limit, &self.ctx),
            Rule::Recording(r) => r.eval(engine, t_ms, self.limit),
        };
        self.health[i].last_eval_ms = Some(t_ms);
        match result {
            Err(e) => {
                self.health[i].last_error = Some(e.to_string());
                RuleOutput {
                    samples: Vec::new(),
                    error: Some(e),
                }
            }
            Ok(mut samples) => {
                self.health[i].last_error = None;
                let now: HashSet<Labels> = samples.iter().map(|s| s.labels.clone()).collect();
                for gone in self.previous[i].difference(&now) {
                    samples.push(Series {
                        labels: gone.clone(),
                        points: vec![Point {
                            timestamp_ms: t_ms,
                            value: f64::from_bits(STALE_NAN_BITS),
                        }],
                    });
                }
                self.previous[i] = now;
                RuleOutput {
                    samples,
                    error: None,
                }
            }
        }
    }

    /// Evaluates every rule in order at `t_ms`, handing each rule's samples to `write` before
    /// the next rule runs. Returns the errors by rule index.
    pub fn eval(
        &mut self,
        engine: &Engine,
        t_ms: i64,
        write: &mut dyn FnMut(Vec<Series>),
    ) -> Vec<(usize, EvalError)> {
        let mut errs = Vec::new();
        for i in 0..self.rules.len() {
            let out = self.eval_rule(i, engine, t_ms);
            if !out.samples.is_empty() {
                write(out.samples);
            }
            if let Some(e) = out.error {
                errs.push((i, e));
            }
        }
        errs
    }

    /// Takes over alert state, health and last-evaluation series from `old` (the same group
    /// before a reload) for rules with the same name and kind, as Prometheus's `CopyState`.
    pub fn carry_state_from(&mut self, old: &Group) {
        let mut used = vec![false; old.rules.len()];
        for (i, r) in self.rules.iter_mut().enumerate() {
            let found = old.rules.iter().enumerate().position(|(j, o)| {
                !used[j]
                    && o.name() == r.name()
                    && matches!(
                        (o, &*r),
                        (Rule::Alerting(_), Rule::Alerting(_))
                            | (Rule::Recording(_), Rule::Recording(_))
                    )
            });
            let Some(j) = found else { continue };
            used[j] = true;
            self.previous[i] = old.previous[j].clone();
            self.health[i] = old.health[j].clone();
            if let (Rule::Alerting(a), Rule::Alerting(b)) = (r, &old.rules[j]) {
                a.active = b.active.clone();
            }
        }
    }

    /// After a successful evaluation of rule `i` at `t_ms`, the alerts to send to the
    /// notification pipeline, as Prometheus's `sendAlerts`: firing alerts not sent within
    /// `resend_delay_ms` and alerts resolved since they were last sent. A firing alert ends
    /// four times max(resend delay, group interval) ahead; a resolved one at its resolve time.
    /// External labels are added where the alert lacks them, and the generator URL points at
    /// the rule's expression.
    pub fn alerts_to_send(
        &mut self,
        i: usize,
        t_ms: i64,
        resend_delay_ms: i64,
    ) -> Vec<crate::notify::alert::Alert> {
        let delta = resend_delay_ms.max(self.interval_ms);
        let Some(Rule::Alerting(rule)) = self.rules.get_mut(i) else {
            return Vec::new();
        };
        let url = format!(
            "{}/graph?g0.expr={}&g0.tab=1",
            self.ctx.external_url,
            crate::gocompat::url_query_escape(&rule.expr)
        );
        let at =
            |ms: i64| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
        let mut out = Vec::new();
        for a in rule.active.values_mut() {
            if a.state == AlertState::Pending {
                continue;
            }
            let resolved_since_sent = match (a.resolved_at_ms, a.last_sent_ms) {
                (Some(r), Some(s)) => r > s,
                (Some(_), None) => true,
                _ => false,
            };
            let due = a.last_sent_ms.is_none_or(|s| s + resend_delay_ms < t_ms);
            if !resolved_since_sent && !due {
                continue;
            }
            a.last_sent_ms = Some(t_ms);
            a.valid_until_ms = t_ms + 4 * delta;
            let mut labels: BTreeMap<String, String> = a
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            for (k, v) in &self.ctx.external_labels {
                labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
            out.push(crate::notify::alert::Alert {
                labels,
                annotations: a.annotations.clone(),
                starts_at: at(a.fired_at_ms.unwrap_or(a.active_at_ms)),
                ends_at: Some(at(a.resolved_at_ms.unwrap_or(a.valid_until_ms))),
                generator_url: url.clone(),
            });
        }
        out
    }

    /// The alerting rules' alerts that are pending or firing, with their rule names.
    pub fn active_alerts(&self) -> Vec<(&str, &ActiveAlert)> {
        let mut out = Vec::new();
        for r in &self.rules {
            if let Rule::Alerting(a) = r {
                out.extend(
                    a.active_alerts()
                        .into_iter()
                        .map(|al| (a.name.as_str(), al)),
                );
            }
        }
        out
    }
}

fn rule_from_def(d: &RuleDef) -> Rule {
    if d.is_alert() {
        Rule::Alerting(AlertingRule {
            name: d.name().to_string(),
            expr: d.expr.clone(),
            for_ms: d.for_ms.unwrap_or(0),
            keep_firing_for_ms: d.keep_firing_for.unwrap_or(0),
            labels: d.labels.clone(),
            annotations: d.annotations.clone(),
            restored: true,
            active: BTreeMap::new(),
        })
    } else {
        Rule::Recording(RecordingRule {
            name: d.name().to_string(),
            expr: d.expr.clone(),
            labels: d.labels.clone(),
        })
    }
}

/// Runs `expr` at `t_ms` as Prometheus's rule query function does: a scalar becomes one
/// sample without labels; strings and matrices are errors.
pub fn query_vector(
    engine: &Engine,
    expr: &str,
    t_ms: i64,
) -> Result<Vec<(Labels, f64)>, EvalError> {
    match engine.instant(expr, t_ms, None) {
        Ok(QueryValue::Vector { samples, .. }) => Ok(samples
            .into_iter()
            .map(|s| (Arc::unwrap_or_clone(s.labels), s.value))
            .collect()),
        Ok(QueryValue::Scalar { value, .. }) => Ok(vec![(Labels::default(), value)]),
        Ok(_) => Err(EvalError::NotVector),
        Err(e) => Err(EvalError::Query(e.to_string())),
    }
}

/// The template `query` function: evaluates at the rule's evaluation time.
fn query_fn(engine: &Engine, t_ms: i64) -> crate::gotemplate::QueryFn {
    let engine = engine.clone();
    Arc::new(move |q: &str| {
        query_vector(&engine, q, t_ms)
            .map(|v| {
                v.into_iter()
                    .map(|(l, x)| {
                        (
                            l.iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect(),
                            x,
                        )
                    })
                    .collect()
            })
            .map_err(|e| e.to_string())
    })
}

fn one_point(labels: Labels, t_ms: i64, value: f64) -> Series {
    Series {
        labels,
        points: vec![Point {
            timestamp_ms: t_ms,
            value,
        }],
    }
}

impl RecordingRule {
    fn eval(&self, engine: &Engine, t_ms: i64, limit: u64) -> Result<Vec<Series>, EvalError> {
        let v = query_vector(engine, &self.expr, t_ms)?;
        let mut out = Vec::with_capacity(v.len());
        let mut seen = HashSet::with_capacity(v.len());
        for (labels, value) in v {
            let mut l = labels;
            l.set(METRIC_NAME, &self.name);
            for (k, val) in &self.labels {
                l.set(k, val);
            }
            if !seen.insert(l.clone()) {
                return Err(EvalError::DuplicateRuleLabels);
            }
            out.push(one_point(l, t_ms, value));
        }
        if limit > 0 && out.len() as u64 > limit {
            return Err(EvalError::SeriesLimit {
                limit,
                n: out.len(),
            });
        }
        Ok(out)
    }
}

impl AlertingRule {
    /// Alerts that are pending or firing (not resolved), sorted by labels.
    pub fn active_alerts(&self) -> Vec<&ActiveAlert> {
        self.active
            .values()
            .filter(|a| a.resolved_at_ms.is_none())
            .collect()
    }

    /// Every alert held, including resolved ones within the retention.
    pub fn all_alerts(&self) -> impl Iterator<Item = &ActiveAlert> {
        self.active.values()
    }

    /// Restores an alert's `active_at` (from `ALERTS_FOR_STATE` after a restart), as
    /// Prometheus's `RestoreForState` does for pending or firing alerts it finds.
    pub fn restore_active_at(&mut self, labels: &Labels, active_at_ms: i64) {
        if let Some(a) = self.active.get_mut(labels) {
            if a.state != AlertState::Inactive {
                a.active_at_ms = active_at_ms;
            }
        }
    }

    fn eval(
        &mut self,
        engine: &Engine,
        t_ms: i64,
        limit: u64,
        ctx: &GroupContext,
    ) -> Result<Vec<Series>, EvalError> {
        let res = query_vector(engine, &self.expr, t_ms)?;
        let tmpl_name = format!("__alert_{}", self.name);
        let mut fresh: BTreeMap<Labels, ActiveAlert> = BTreeMap::new();
        for (labels, value) in res {
            let data = TemplateData {
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                external_labels: ctx.external_labels.clone(),
                external_url: ctx.external_url.clone(),
                value,
                query: Some(query_fn(engine, t_ms)),
            };
            let mut l = labels;
            l.set(METRIC_NAME, "");
            for (k, v) in &self.labels {
                l.set(k, &expand(&tmpl_name, v, &data));
            }
            l.set("alertname", &self.name);
            let annotations = self
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), expand(&tmpl_name, v, &data)))
                .collect();
            if fresh.contains_key(&l) {
                return Err(EvalError::DuplicateAlertLabels);
            }
            fresh.insert(
                l.clone(),
                ActiveAlert {
                    labels: l,
                    annotations,
                    state: AlertState::Pending,
                    value,
                    active_at_ms: t_ms,
                    fired_at_ms: None,
                    resolved_at_ms: None,
                    keep_firing_since_ms: None,
                    last_sent_ms: None,
                    valid_until_ms: 0,
                },
            );
        }
        let result_fps: HashSet<Labels> = fresh.keys().cloned().collect();
        for (l, a) in fresh {
            match self.active.get_mut(&l) {
                Some(existing) if existing.state != AlertState::Inactive => {
                    existing.value = a.value;
                    existing.annotations = a.annotations;
                }
                _ => {
                    self.active.insert(l, a);
                }
            }
        }
        let mut out = Vec::new();
        let mut num_active = 0usize;
        let mut remove = Vec::new();
        for (l, a) in self.active.iter_mut() {
            if !result_fps.contains(l) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && self.keep_firing_for_ms > 0 {
                    let since = *a.keep_firing_since_ms.get_or_insert(t_ms);
                    if t_ms - since < self.keep_firing_for_ms {
                        keep_firing = true;
                    }
                }
                if a.state == AlertState::Pending
                    || a.resolved_at_ms
                        .is_some_and(|r| t_ms - r > RESOLVED_RETENTION_MS)
                {
                    remove.push(l.clone());
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at_ms = Some(t_ms);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since_ms = None;
            }
            num_active += 1;
            if a.state == AlertState::Pending && t_ms - a.active_at_ms >= self.for_ms {
                a.state = AlertState::Firing;
                a.fired_at_ms = Some(t_ms);
            }
            if self.restored {
                let mut al = a.labels.clone();
                al.set(METRIC_NAME, "ALERTS");
                al.set("alertstate", a.state.as_str());
                out.push(one_point(al, t_ms, 1.0));
                let mut fl = a.labels.clone();
                fl.set(METRIC_NAME, "ALERTS_FOR_STATE");
                out.push(one_point(fl, t_ms, a.active_at_ms.div_euclid(1000) as f64));
            }
        }
        for l in remove {
            self.active.remove(&l);
        }
        if limit > 0 && num_active as u64 > limit {
            self.active.clear();
            return Err(EvalError::AlertLimit {
                limit,
                n: num_active,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{MemSource, QueryOptions};

    fn engine(series: Vec<Series>) -> Engine {
        Engine::new(Arc::new(MemSource::new(series)), QueryOptions::default())
    }

    fn up(values: &[(i64, f64)]) -> Series {
        Series {
            labels: Labels::metric("up", &[("job", "a")]),
            points: values
                .iter()
                .map(|(t, v)| Point {
                    timestamp_ms: *t,
                    value: *v,
                })
                .collect(),
        }
    }

    fn group(yaml: &str) -> Group {
        let rf = super::super::file::load_str(yaml, "t.yml").unwrap();
        Group::new(&rf.groups[0], "t.yml", 60_000, GroupContext::default())
    }

    #[test]
    fn pending_then_firing_then_resolved() {
        let g_yaml =
            "groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: 2m\n";
        let mut g = group(g_yaml);
        let pts: Vec<(i64, f64)> = (0..10)
            .map(|i| (i * 60_000, if (1..5).contains(&i) { 0.0 } else { 1.0 }))
            .collect();
        let e = engine(vec![up(&pts)]);
        let mut states = Vec::new();
        for i in 0..7 {
            let out = g.eval_rule(0, &e, i * 60_000);
            assert!(out.error.is_none());
            states.push(g.active_alerts().first().map(|(_, a)| a.state));
        }
        use AlertState::*;
        assert_eq!(
            states,
            vec![
                None,
                Some(Pending),
                Some(Pending),
                Some(Firing),
                Some(Firing),
                None,
                None
            ]
        );
    }

    #[test]
    fn keep_firing_for_holds_a_resolved_condition() {
        let mut g = group("groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n    keep_firing_for: 2m\n");
        let e = engine(vec![up(&[
            (0, 0.0),
            (60_000, 1.0),
            (120_000, 1.0),
            (180_000, 1.0),
        ])]);
        let firing = |g: &Group| {
            g.active_alerts()
                .iter()
                .any(|(_, a)| a.state == AlertState::Firing)
        };
        g.eval_rule(0, &e, 0);
        assert!(firing(&g));
        g.eval_rule(0, &e, 60_000);
        assert!(firing(&g));
        g.eval_rule(0, &e, 120_000);
        assert!(firing(&g));
        g.eval_rule(0, &e, 180_000);
        assert!(!firing(&g));
    }

    #[test]
    fn firing_and_resolved_alerts_are_sent_with_prometheus_end_times() {
        let mut g = group("groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n");
        let e = engine(vec![up(&[(0, 0.0), (60_000, 0.0), (120_000, 1.0)])]);
        g.eval_rule(0, &e, 0);
        let sent = g.alerts_to_send(0, 0, 60_000);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].labels.get("alertname").map(String::as_str),
            Some("Down")
        );
        let end = sent[0]
            .ends_at
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        assert_eq!(end.as_millis(), 4 * 60_000);
        assert!(sent[0]
            .generator_url
            .ends_with("/graph?g0.expr=up+%3D%3D+0&g0.tab=1"));
        g.eval_rule(0, &e, 60_000);
        assert!(
            g.alerts_to_send(0, 60_000, 60_000).is_empty(),
            "resend delay not over"
        );
        g.eval_rule(0, &e, 120_000);
        let sent = g.alerts_to_send(0, 120_000, 60_000);
        assert_eq!(sent.len(), 1, "resolved alerts are sent at once");
        let end = sent[0]
            .ends_at
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        assert_eq!(end.as_millis(), 120_000);
    }

    #[test]
    fn duplicate_alert_labelsets_are_an_error() {
        let mut g = group(
            "groups:\n- name: g\n  rules:\n  - alert: X\n    expr: up\n    labels: {job: same}\n",
        );
        let mut other = up(&[(0, 1.0)]);
        other.labels = Labels::metric("up", &[("job", "b")]);
        let e = engine(vec![up(&[(0, 1.0)]), other]);
        let out = g.eval_rule(0, &e, 0);
        assert_eq!(out.error, Some(EvalError::DuplicateAlertLabels));
    }

    #[test]
    fn recording_rules_write_and_go_stale() {
        let mut g = group("groups:\n- name: g\n  limit: 5\n  rules:\n  - record: job:up\n    expr: up\n    labels: {x: y}\n");
        let e = engine(vec![up(&[(0, 1.0)])]);
        let out = g.eval_rule(0, &e, 0);
        assert_eq!(out.samples.len(), 1);
        assert_eq!(
            out.samples[0].labels,
            Labels::metric("job:up", &[("job", "a"), ("x", "y")])
        );
        let out = g.eval_rule(0, &e, 10 * 60_000);
        assert_eq!(out.samples.len(), 1);
        assert!(crate::query::value::is_stale_marker(
            out.samples[0].points[0].value
        ));
    }

    #[test]
    fn limit_is_enforced() {
        let mut g = group("groups:\n- name: g\n  limit: 1\n  rules:\n  - alert: X\n    expr: up\n");
        let mut other = up(&[(0, 1.0)]);
        other.labels = Labels::metric("up", &[("job", "b")]);
        let e = engine(vec![up(&[(0, 1.0)]), other]);
        let out = g.eval_rule(0, &e, 0);
        assert_eq!(out.error, Some(EvalError::AlertLimit { limit: 1, n: 2 }));
        assert!(g.active_alerts().is_empty());
    }
}
