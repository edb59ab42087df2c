//! Runs rule groups on their intervals against the real storage: each group is evaluated at
//! multiples of its interval, every rule's samples (recorded series, `ALERTS`,
//! `ALERTS_FOR_STATE`, stale markers) are written with `Storage::append_series` before the
//! next rule runs, and after the first evaluation following a start the `for` state of
//! pending and firing alerts is restored from `ALERTS_FOR_STATE` as Prometheus does
//! (`--rules.alert.for-outage-tolerance` 1h, `--rules.alert.for-grace-period` 10m).
//!
//! Besides the schedule, groups made only of alerting rules are evaluated as soon as new
//! samples are stored: ingest (QUIC batches and remote_write) signals [`SamplesArrived`],
//! and every such group that has seen no evaluation since the signal is evaluated at the
//! current time, at most once per [`ManagerOptions::eager_min_gap`] (a burst of batches
//! within the gap is one evaluation, run when the gap has passed). Each evaluation is a
//! normal one through Prometheus's state machine at a later timestamp, so `for`,
//! `keep_firing_for`, resolved retention and resend all keep their time-based meaning;
//! groups with recording rules keep exactly their interval, so recorded series have the
//! density their interval promises.
//!
//! [`RuleManager::reload`] re-reads the files, keeping the old rules when any file is bad and
//! carrying alert state over for groups that still exist. [`RuleManager::rules_json`] and
//! [`RuleManager::alerts_json`] give `/api/v1/rules` and `/api/v1/alerts` bodies in
//! Prometheus's shapes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use vigil_shared::model::Labels;

use super::eval::{AlertState, Group, GroupContext, Rule};
use super::file::{load_file, RuleFileErrors};
use crate::gocompat::rfc3339;
use crate::query::source::SeriesSource;
use crate::query::{Engine, QueryOptions};
use crate::storage::matcher::Matcher;
use crate::storage::Storage;

/// Rule manager settings.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    pub files: Vec<PathBuf>,
    /// Interval for groups without one (Prometheus's `global.evaluation_interval`, 1m).
    pub default_interval: Duration,
    pub context: GroupContext,
    /// How far back `ALERTS_FOR_STATE` is looked for on restore (Prometheus: 1h).
    pub for_outage_tolerance: Duration,
    /// Least time an alert keeps pending after a restore (Prometheus: 10m).
    pub for_grace_period: Duration,
    /// How often a still-firing alert is sent again (Prometheus: 1m).
    pub resend_delay: Duration,
    /// Where alerts to notify about go (firing and resolved, with Prometheus's end times).
    /// Bounded: when full, the batch is dropped with a warning and sent again on the next
    /// resend.
    pub notify: Option<tokio::sync::mpsc::Sender<Vec<crate::notify::alert::Alert>>>,
    /// Least time between two evaluations of an alerting-only group that new samples
    /// trigger; zero evaluates on the schedule only.
    pub eager_min_gap: Duration,
    /// Signalled by ingest whenever samples are stored.
    pub samples_arrived: SamplesArrived,
    /// Counts group evaluations by trigger (`schedule`, `samples`), when set.
    pub evaluations: Option<prometheus::IntCounterVec>,
    /// Limits and lookback of the rules' PromQL engine (the collector's `[query]`).
    pub query: QueryOptions,
}

/// Default of [`ManagerOptions::eager_min_gap`]: alerting-only groups are evaluated at most
/// five times a second however fast samples arrive.
pub const DEFAULT_EAGER_MIN_GAP: Duration = Duration::from_millis(200);

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            files: Vec::new(),
            default_interval: Duration::from_secs(60),
            context: GroupContext::default(),
            for_outage_tolerance: Duration::from_secs(3600),
            for_grace_period: Duration::from_secs(600),
            resend_delay: Duration::from_secs(60),
            notify: None,
            eager_min_gap: DEFAULT_EAGER_MIN_GAP,
            samples_arrived: SamplesArrived::default(),
            evaluations: None,
            query: QueryOptions::default(),
        }
    }
}

/// One group with its scheduling state.
#[derive(Debug)]
struct Slot {
    group: Group,
    /// True until the first evaluation (and the `for` restore after it) has run.
    needs_restore: bool,
    /// Timestamp of the last evaluation, ms.
    last_eval_ms: Option<i64>,
    /// How long the last evaluation took.
    last_duration: Duration,
    /// Only alerting rules: may be evaluated early when samples arrive.
    eager: bool,
    /// [`SamplesArrived`]'s sequence number when the last evaluation started.
    seen_seq: u64,
}

/// Loads rule files and evaluates them on schedule.
#[derive(Debug)]
pub struct RuleManager {
    storage: Storage,
    engine: Engine,
    opts: ManagerOptions,
    slots: Mutex<Vec<Arc<tokio::sync::Mutex<Slot>>>>,
}

use crate::clock::now_ms;
pub use crate::signals::SamplesArrived;

fn load_groups(opts: &ManagerOptions) -> Result<Vec<Group>, RuleFileErrors> {
    let mut groups = Vec::new();
    let mut errs = Vec::new();
    let default_ms = crate::query::duration_ms(opts.default_interval).max(1);
    for f in &opts.files {
        match load_file(f) {
            Ok(rf) => groups.extend(rf.groups.iter().map(|g| {
                Group::new(
                    g,
                    &f.display().to_string(),
                    default_ms,
                    opts.context.clone(),
                )
            })),
            Err(e) => errs.extend(e.0),
        }
    }
    if errs.is_empty() {
        Ok(groups)
    } else {
        Err(RuleFileErrors(errs))
    }
}

impl RuleManager {
    /// Loads `opts.files`; fails with every problem found if any file is bad.
    pub fn new(storage: Storage, opts: ManagerOptions) -> Result<RuleManager, RuleFileErrors> {
        let groups = load_groups(&opts)?;
        let engine = Engine::new(
            Arc::new(storage.clone()) as Arc<dyn SeriesSource>,
            opts.query.clone(),
        );
        let m = RuleManager {
            storage,
            engine,
            opts,
            slots: Mutex::new(Vec::new()),
        };
        m.install(groups, Vec::new());
        Ok(m)
    }

    fn install(&self, groups: Vec<Group>, old: Vec<Slot>) {
        let mut old = old;
        let slots: Vec<Arc<tokio::sync::Mutex<Slot>>> = groups
            .into_iter()
            .map(|mut g| {
                let mut needs_restore = true;
                let mut last_eval_ms = None;
                // Same file and group name: carry alert state over for rules that still match.
                if let Some(pos) = old
                    .iter()
                    .position(|s| s.group.file == g.file && s.group.name == g.name)
                {
                    let prev = old.swap_remove(pos);
                    needs_restore = prev.needs_restore;
                    last_eval_ms = prev.last_eval_ms;
                    g.carry_state_from(&prev.group);
                }
                for r in g.rules.iter_mut() {
                    if let Rule::Alerting(a) = r {
                        a.restored = !needs_restore;
                    }
                }
                let eager =
                    !g.rules.is_empty() && g.rules.iter().all(|r| matches!(r, Rule::Alerting(_)));
                Arc::new(tokio::sync::Mutex::new(Slot {
                    group: g,
                    needs_restore,
                    last_eval_ms,
                    last_duration: Duration::ZERO,
                    eager,
                    seen_seq: 0,
                }))
            })
            .collect();
        if let Ok(mut s) = self.slots.lock() {
            *s = slots;
        }
    }

    /// Re-reads the rule files. On any error the running rules are kept and the errors are
    /// returned.
    pub async fn reload(&self) -> Result<(), RuleFileErrors> {
        let groups = load_groups(&self.opts)?;
        let current: Vec<Arc<tokio::sync::Mutex<Slot>>> =
            self.slots.lock().map(|s| s.clone()).unwrap_or_default();
        let mut old = Vec::with_capacity(current.len());
        for s in current {
            let slot = s.lock().await;
            old.push(Slot {
                group: slot.group.clone(),
                needs_restore: slot.needs_restore,
                last_eval_ms: slot.last_eval_ms,
                last_duration: slot.last_duration,
                eager: slot.eager,
                seen_seq: slot.seen_seq,
            });
        }
        self.install(groups, old);
        Ok(())
    }

    fn slots(&self) -> Vec<Arc<tokio::sync::Mutex<Slot>>> {
        self.slots.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Evaluates every group that is due at `t_ms` (its last evaluation is at least one
    /// interval ago), writing the results. Returns how many groups ran.
    pub async fn tick(&self, t_ms: i64) -> usize {
        let mut ran = 0;
        for s in self.slots() {
            let mut slot = s.lock().await;
            let due = slot
                .last_eval_ms
                .is_none_or(|last| t_ms - last >= slot.group.interval_ms);
            if !due {
                continue;
            }
            // Align to the interval grid, as Prometheus's evaluation timestamps are.
            // Due means at least one interval since the last evaluation, so the grid point is
            // always later than it, even when that one ran early on new samples.
            let iv = slot.group.interval_ms.max(1);
            let at = t_ms - t_ms.rem_euclid(iv);
            self.eval_slot(&mut slot, at).await;
            self.count_evaluation("schedule");
            ran += 1;
        }
        ran
    }

    /// Evaluates, at `t_ms`, every alerting-only group that samples arrived for since its
    /// last evaluation began and that was last evaluated at least `eager_min_gap` ago.
    /// Returns how many groups ran and, when a group had to wait for its gap, the earliest
    /// time (ms) it may run.
    pub async fn evaluate_new_samples(&self, t_ms: i64) -> (usize, Option<i64>) {
        let gap = crate::query::duration_ms(self.opts.eager_min_gap);
        if gap <= 0 {
            return (0, None);
        }
        let seq = self.opts.samples_arrived.seq();
        let mut ran = 0;
        let mut next: Option<i64> = None;
        for s in self.slots() {
            let mut slot = s.lock().await;
            if !slot.eager || slot.seen_seq >= seq {
                continue;
            }
            match slot.last_eval_ms {
                Some(last) if t_ms - last < gap => {
                    let at = last + gap;
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
                _ => {
                    self.eval_slot(&mut slot, t_ms).await;
                    self.count_evaluation("samples");
                    ran += 1;
                }
            }
        }
        (ran, next)
    }

    fn count_evaluation(&self, trigger: &str) {
        if let Some(c) = &self.opts.evaluations {
            c.with_label_values(&[trigger]).inc();
        }
    }

    async fn eval_slot(&self, slot: &mut Slot, t_ms: i64) {
        let start = std::time::Instant::now();
        // Samples stored from here on are not certain to be seen by this evaluation.
        slot.seen_seq = self.opts.samples_arrived.seq();
        for i in 0..slot.group.rules.len() {
            let out = slot.group.eval_rule(i, &self.engine, t_ms);
            if let Some(e) = &out.error {
                tracing::warn!(group = %slot.group.name, rule = %slot.group.rules[i].name(), error = %e, "rule evaluation failed");
            } else if let Some(tx) = &self.opts.notify {
                let resend = crate::query::duration_ms(self.opts.resend_delay);
                let alerts = slot.group.alerts_to_send(i, t_ms, resend);
                if !alerts.is_empty() && tx.try_send(alerts).is_err() {
                    tracing::warn!(group = %slot.group.name, "alert notification queue full or closed; dropping batch");
                }
            }
            if !out.samples.is_empty() {
                if let Err(e) = self.storage.append_series(out.samples).await {
                    tracing::warn!(group = %slot.group.name, error = %e, "writing rule results failed");
                }
            }
        }
        if slot.needs_restore {
            self.restore_for_state(&mut slot.group, t_ms);
            slot.needs_restore = false;
        }
        slot.last_eval_ms = Some(t_ms);
        slot.last_duration = start.elapsed();
    }

    /// Prometheus's `RestoreForState`: sets each pending or firing alert's `active_at` from the
    /// last `ALERTS_FOR_STATE` sample within the outage tolerance, then lets the rules write
    /// `ALERTS` from now on.
    fn restore_for_state(&self, group: &mut Group, t_ms: i64) {
        let tolerance = crate::query::duration_ms(self.opts.for_outage_tolerance);
        let grace = crate::query::duration_ms(self.opts.for_grace_period);
        for r in group.rules.iter_mut() {
            let Rule::Alerting(a) = r else { continue };
            a.restored = true;
            if a.for_ms < grace {
                continue;
            }
            let alerts: Vec<Labels> = a
                .active_alerts()
                .iter()
                .map(|al| al.labels.clone())
                .collect();
            for labels in alerts {
                let mut matchers = vec![Matcher::equal("__name__", "ALERTS_FOR_STATE")];
                matchers.extend(labels.iter().map(|(k, v)| Matcher::equal(k, v)));
                let Ok(series) = self.storage.select(&matchers, t_ms - tolerance, t_ms - 1) else {
                    continue;
                };
                let Some(last) = series
                    .iter()
                    .filter(|s| s.labels.len() == labels.len() + 1)
                    .filter_map(|s| s.points.iter().rev().find(|p| !p.value.is_nan()))
                    .max_by_key(|p| p.timestamp_ms)
                else {
                    continue;
                };
                let down_at = last.timestamp_ms;
                let mut active_at = (last.value as i64).saturating_mul(1000);
                let remaining = a.for_ms - (down_at - active_at);
                if remaining <= 0 {
                    // Had already fired before the outage: keep the old active time.
                } else if remaining < grace {
                    active_at = t_ms - a.for_ms + grace;
                } else {
                    active_at += t_ms - down_at;
                }
                a.restore_active_at(&labels, active_at);
            }
        }
    }

    /// Until `cancel` fires: evaluates due groups once a second, and alerting-only groups as
    /// soon as new samples arrive (or when their `eager_min_gap` has passed, for samples that
    /// came sooner).
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let eager = !self.opts.eager_min_gap.is_zero();
        let arrived = self.opts.samples_arrived.clone();
        // When a group held back by its gap may run.
        let mut held: Option<tokio::time::Instant> = None;
        loop {
            let wake_held = async {
                match held {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => { self.tick(now_ms()).await; }
                _ = arrived.wait(), if eager => { held = self.eager_pass().await; }
                _ = wake_held => { held = self.eager_pass().await; }
            }
        }
    }

    async fn eager_pass(&self) -> Option<tokio::time::Instant> {
        let t = now_ms();
        let (_, next) = self.evaluate_new_samples(t).await;
        next.map(|at| tokio::time::Instant::now() + Duration::from_millis((at - t).max(1) as u64))
    }

    /// The `/api/v1/rules` response body.
    pub async fn rules_json(&self) -> Value {
        let mut groups = Vec::new();
        for s in self.slots() {
            let slot = s.lock().await;
            let g = &slot.group;
            let mut rules = Vec::new();
            for (i, r) in g.rules.iter().enumerate() {
                let h = &g.health[i];
                let health = match (&h.last_eval_ms, &h.last_error) {
                    (None, _) => "unknown",
                    (Some(_), Some(_)) => "err",
                    (Some(_), None) => "ok",
                };
                let mut v = match r {
                    Rule::Alerting(a) => {
                        let alerts: Vec<Value> =
                            a.active_alerts().into_iter().map(alert_json).collect();
                        let state = a
                            .active_alerts()
                            .iter()
                            .map(|al| al.state)
                            .max_by_key(|s| match s {
                                AlertState::Inactive => 0,
                                AlertState::Pending => 1,
                                AlertState::Firing => 2,
                            })
                            .unwrap_or(AlertState::Inactive);
                        json!({
                            "state": state.as_str(),
                            "name": a.name,
                            "query": a.expr,
                            "duration": a.for_ms as f64 / 1000.0,
                            "keepFiringFor": a.keep_firing_for_ms as f64 / 1000.0,
                            "labels": a.labels,
                            "annotations": a.annotations,
                            "alerts": alerts,
                            "type": "alerting",
                        })
                    }
                    Rule::Recording(rr) => json!({
                        "name": rr.name,
                        "query": rr.expr,
                        "labels": rr.labels,
                        "type": "recording",
                    }),
                };
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("health".into(), json!(health));
                    if let Some(e) = &h.last_error {
                        obj.insert("lastError".into(), json!(e));
                    }
                    obj.insert("lastEvaluation".into(), json!(ms_rfc3339(h.last_eval_ms)));
                    obj.insert("evaluationTime".into(), json!(0));
                }
                rules.push(v);
            }
            groups.push(json!({
                "name": g.name,
                "file": g.file,
                "rules": rules,
                "interval": g.interval_ms as f64 / 1000.0,
                "limit": g.limit,
                "evaluationTime": slot.last_duration.as_secs_f64(),
                "lastEvaluation": ms_rfc3339(slot.last_eval_ms),
            }));
        }
        json!({"status": "success", "data": {"groups": groups}})
    }

    /// The `/api/v1/alerts` response body: every pending or firing alert.
    pub async fn alerts_json(&self) -> Value {
        let mut alerts = Vec::new();
        for s in self.slots() {
            let slot = s.lock().await;
            for (_, a) in slot.group.active_alerts() {
                alerts.push(alert_json(a));
            }
        }
        json!({"status": "success", "data": {"alerts": alerts}})
    }
}

fn ms_rfc3339(ms: Option<i64>) -> String {
    rfc3339(ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)))
}

fn alert_json(a: &super::eval::ActiveAlert) -> Value {
    let labels: serde_json::Map<String, Value> = a
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut v = json!({
        "labels": labels,
        "annotations": a.annotations,
        "state": a.state.as_str(),
        "activeAt": ms_rfc3339(Some(a.active_at_ms)),
        "value": go_float_lower_e(a.value),
    });
    if a.keep_firing_since_ms.is_some() {
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "keepFiringSince".into(),
                json!(ms_rfc3339(a.keep_firing_since_ms)),
            );
        }
    }
    v
}

/// `strconv.FormatFloat(v, 'e', -1, 64)`, as Prometheus's API prints alert values.
fn go_float_lower_e(v: f64) -> String {
    let s = crate::gotemplate::go_float_e(v);
    if v.is_finite() {
        s.replace('E', "e")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageOptions;
    use vigil_shared::model::{Point, Series};

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!(
            "vigil-rules-{tag}-{}-{}",
            std::process::id(),
            now_ms()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    const RULES: &str = "groups:
- name: g
  interval: 1m
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
  - alert: Down
    expr: up == 0
    for: 20m
    labels: {severity: page}
    annotations: {summary: 'down {{ $labels.job }}'}
";

    #[tokio::test]
    async fn new_samples_evaluate_alerting_only_groups_early_within_the_gap() {
        let tmp = dir("eager");
        let rules = tmp.0.join("rules.yml");
        std::fs::write(
            &rules,
            "groups:
- name: alerts
  interval: 1m
  rules:
  - alert: Down
    expr: up == 0
- name: recorded
  interval: 1m
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
",
        )
        .unwrap();
        let storage = Storage::open(&tmp.0.join("data"), StorageOptions::default()).unwrap();
        let arrived = SamplesArrived::default();
        let evaluations =
            prometheus::IntCounterVec::new(prometheus::Opts::new("evals", "test"), &["trigger"])
                .unwrap();
        let m = RuleManager::new(
            storage.clone(),
            ManagerOptions {
                files: vec![rules],
                samples_arrived: arrived.clone(),
                evaluations: Some(evaluations.clone()),
                ..ManagerOptions::default()
            },
        )
        .unwrap();
        let t0 = now_ms() / 60_000 * 60_000;
        let up = |t: i64, v: f64| Series {
            labels: Labels::metric("up", &[("job", "a")]),
            points: vec![Point {
                timestamp_ms: t,
                value: v,
            }],
        };
        storage
            .append_series(vec![up(t0 - 1000, 1.0)])
            .await
            .unwrap();
        assert_eq!(m.tick(t0).await, 2);
        // Nothing arrived since: nothing to do early.
        assert_eq!(m.evaluate_new_samples(t0 + 500).await, (0, None));

        // A sample 100 ms after the last evaluation waits out the 200 ms gap...
        storage
            .append_series(vec![up(t0 + 100, 0.0)])
            .await
            .unwrap();
        arrived.raise();
        assert_eq!(m.evaluate_new_samples(t0 + 100).await, (0, Some(t0 + 200)));
        assert_eq!(
            m.alerts_json().await["data"]["alerts"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
        // ...then only the alerting group runs, at that time, and sees the sample.
        assert_eq!(m.evaluate_new_samples(t0 + 200).await, (1, None));
        let alerts = m.alerts_json().await;
        assert_eq!(alerts["data"]["alerts"][0]["state"], "firing", "{alerts}");
        assert_eq!(m.evaluate_new_samples(t0 + 900).await, (0, None));
        // The recording group kept its interval: one sample, from the scheduled evaluation.
        let rec = storage
            .select(
                &[Matcher::equal("__name__", "job:up:sum")],
                t0 - 1,
                t0 + 60_000,
            )
            .unwrap();
        assert_eq!(rec[0].points.len(), 1);
        // The schedule goes on from the early evaluation: not due again until a minute later.
        assert_eq!(
            m.tick(t0 + 60_000).await,
            1,
            "only the recording group is due"
        );
        assert_eq!(m.tick(t0 + 60_200).await, 1);
        assert_eq!(evaluations.with_label_values(&["samples"]).get(), 1);
        assert_eq!(evaluations.with_label_values(&["schedule"]).get(), 4);

        // A zero gap turns early evaluation off.
        let off = RuleManager::new(
            storage.clone(),
            ManagerOptions {
                files: m.opts.files.clone(),
                samples_arrived: arrived.clone(),
                eager_min_gap: Duration::ZERO,
                ..ManagerOptions::default()
            },
        )
        .unwrap();
        arrived.raise();
        assert_eq!(off.evaluate_new_samples(t0 + 70_000).await, (0, None));
        storage.close().await.unwrap();
    }

    #[tokio::test]
    async fn for_state_is_restored_after_restart_and_bad_reloads_keep_old_rules() {
        let tmp = dir("mgr");
        let rules = tmp.0.join("rules.yml");
        std::fs::write(&rules, RULES).unwrap();
        let storage = Storage::open(&tmp.0.join("data"), StorageOptions::default()).unwrap();
        let t0 = now_ms() / 60_000 * 60_000 - 30 * 60_000;
        storage
            .append_series(vec![Series {
                labels: Labels::metric("up", &[("job", "a")]),
                points: (0..30)
                    .map(|i| Point {
                        timestamp_ms: t0 + i * 60_000,
                        value: 0.0,
                    })
                    .collect(),
            }])
            .await
            .unwrap();
        let opts = ManagerOptions {
            files: vec![rules.clone()],
            ..ManagerOptions::default()
        };
        let m1 = RuleManager::new(storage.clone(), opts.clone()).unwrap();
        assert_eq!(m1.tick(t0).await, 1);
        assert_eq!(m1.tick(t0 + 30_000).await, 0, "not due yet");
        assert_eq!(m1.tick(t0 + 60_000).await, 1);
        // ALERTS_FOR_STATE holds the active time in seconds.
        let fs = storage
            .select(
                &[Matcher::equal("__name__", "ALERTS_FOR_STATE")],
                t0,
                t0 + 60_000,
            )
            .unwrap();
        assert_eq!(fs.len(), 1);
        assert_eq!(fs[0].points.last().unwrap().value, (t0 / 1000) as f64);
        let rec = storage
            .select(&[Matcher::equal("__name__", "job:up:sum")], t0, t0 + 60_000)
            .unwrap();
        assert_eq!(rec.len(), 1);

        // A restart 5 minutes later: the alert keeps its progress towards `for`, shifted by
        // the outage (Prometheus's RestoreForState).
        let m2 = RuleManager::new(storage.clone(), opts.clone()).unwrap();
        m2.tick(t0 + 5 * 60_000).await;
        let alerts = m2.alerts_json().await;
        let a = &alerts["data"]["alerts"][0];
        assert_eq!(a["state"], "pending");
        assert_eq!(a["annotations"]["summary"], "down a");
        let slot = m2.slots()[0].clone();
        let active_at = slot.lock().await.group.active_alerts()[0].1.active_at_ms;
        assert_eq!(active_at, t0 + 4 * 60_000);

        // A bad file on reload keeps the running rules.
        std::fs::write(
            &rules,
            "groups: [{name: g, rules: [{alert: X, expr: 'up +'}]}]",
        )
        .unwrap();
        let err = m2.reload().await.unwrap_err();
        assert!(
            err.to_string().contains("could not parse expression"),
            "{err}"
        );
        let rj = m2.rules_json().await;
        assert_eq!(rj["data"]["groups"][0]["rules"][1]["name"], "Down");
        assert_eq!(rj["data"]["groups"][0]["rules"][1]["state"], "pending");
        assert_eq!(rj["data"]["groups"][0]["rules"][0]["health"], "ok");
        assert_eq!(rj["data"]["groups"][0]["interval"], 60.0);

        // A good reload keeps alert state for rules that still exist.
        std::fs::write(&rules, RULES.replace("down {{", "DOWN {{")).unwrap();
        m2.reload().await.unwrap();
        let slot = m2.slots()[0].clone();
        assert_eq!(slot.lock().await.group.active_alerts().len(), 1);
        let rj = m2.rules_json().await;
        assert_eq!(
            rj["data"]["groups"][0]["rules"][1]["annotations"]["summary"],
            "DOWN {{ $labels.job }}"
        );
        storage.close().await.unwrap();
    }
}
