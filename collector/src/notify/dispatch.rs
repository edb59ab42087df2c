//! The notification pipeline: alerts in, webhook notifications out, with Alertmanager's
//! aggregation, timers, inhibition, deduplication and retries.
//!
//! - Alerts arrive on a bounded channel ([`DispatcherHandle::send`] waits when it is full, so
//!   backpressure reaches the rules engine; [`DispatcherHandle::try_send`] fails with
//!   [`DispatchError::Full`] and counts the drop).
//! - Each alert is routed ([`super::route::Route::match_routes`]) into one aggregation group per matching
//!   route, keyed by Alertmanager's group key. A new group waits `group_wait` (or flushes at
//!   once when its first alert started more than `group_wait` ago), then flushes every
//!   `group_interval`.
//! - A flush drops inhibited alerts, then silenced ones (alerts matching a silence active
//!   at flush time, see [`Dispatcher::with_silences`]), then, per integration, notifies only when the notification
//!   log says something changed (new firing alerts, all resolved, newly resolved with
//!   `send_resolved`) or `repeat_interval` has passed, exactly as Alertmanager's dedup stage.
//! - Every integration of the receiver — webhook ([`super::webhook`]), Slack
//!   ([`super::slack`]), PagerDuty ([`super::pagerduty`]) and email ([`super::email`]) — is
//!   rendered with the notification templates ([`super::templates`]) and delivered in
//!   parallel, with retries and exponential backoff until success, a permanent failure, or
//!   the flush deadline (`group_interval`, at least `min_notify_timeout`), as Alertmanager
//!   retries until the next tick. Without `send_resolved`, resolved alerts are left out of
//!   the message.
//! - Successful deliveries are recorded in the notification log ([`super::nflog`]), which is
//!   persisted in the data dir when [`DispatchOptions::data_dir`] is set, so a restart
//!   neither re-sends an unchanged group before `repeat_interval` nor forgets one whose
//!   delivery failed.
//! - After a fully successful flush, resolved alerts that did not change meanwhile leave the
//!   group; an empty group is removed.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::alert::Alert;
use super::config::{Config, HttpConfig};
use super::email::Email;
use super::inhibit::InhibitRule;
use super::nflog::{Nflog, NflogEntry};
use super::route::RouteOpts;
use super::silence::Silences;
use super::templates::{notify_data, TemplateSet};
use super::webhook::{post_json, SendError, WebhookMessage};
use super::AlertStore;
use crate::telemetry::NotifyMetrics;

/// Settings of the pipeline that are not in the Alertmanager config.
#[derive(Debug, Clone)]
pub struct DispatchOptions {
    /// Capacity of the incoming alert queue.
    pub queue_capacity: usize,
    /// URL put in messages as `externalURL`.
    pub external_url: String,
    /// First retry delay; doubles per retry.
    pub retry_initial: Duration,
    /// Largest retry delay.
    pub retry_max: Duration,
    /// Least time a flush may spend delivering (Alertmanager's 10s minimum notify timeout).
    pub min_notify_timeout: Duration,
    /// Time limit of one HTTP attempt.
    pub attempt_timeout: Duration,
    /// How often resolved alerts are dropped from the inhibition cache.
    pub maintenance_interval: Duration,
    /// How long shutdown waits for notifications in flight.
    pub shutdown_grace: Duration,
    /// Directory the notification log is persisted in (`nflog.json`); `None` keeps it in
    /// memory only.
    pub data_dir: Option<PathBuf>,
    /// Notification log entries older than this are dropped at startup.
    pub nflog_retention: Duration,
    /// Where PagerDuty `service_key` (v1) events go; Alertmanager's fixed endpoint except in
    /// tests.
    pub pagerduty_v1_url: String,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions {
            queue_capacity: 1024,
            external_url: String::new(),
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            min_notify_timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(10),
            maintenance_interval: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            data_dir: None,
            nflog_retention: Duration::from_secs(120 * 3600),
            pagerduty_v1_url: super::pagerduty::V1_URL.to_string(),
        }
    }
}

/// Counters of the pipeline, for the collector's `/metrics`.
#[derive(Debug, Default)]
pub struct DispatchStats {
    /// Alerts taken off the queue.
    pub alerts_received: AtomicU64,
    /// Alerts refused by `try_send` because the queue was full.
    pub alerts_dropped_full: AtomicU64,
    /// Notifications delivered.
    pub notifications_sent: AtomicU64,
    /// Notifications given up on.
    pub notifications_failed: AtomicU64,
    /// Retried delivery attempts.
    pub notification_retries: AtomicU64,
    /// Alerts left out of a flush because they were inhibited.
    pub alerts_inhibited: AtomicU64,
    /// Alerts left out of a flush because an active silence matched them.
    pub alerts_silenced: AtomicU64,
    /// Aggregation groups created.
    pub groups_created: AtomicU64,
    /// Aggregation groups removed after all their alerts resolved.
    pub groups_removed: AtomicU64,
    /// Per-integration counters and latencies for `/metrics`.
    pub metrics: NotifyMetrics,
}

impl DispatchStats {
    fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// An alert could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// The queue is full (only from `try_send`).
    #[error("notification queue is full")]
    Full,
    /// The dispatcher has stopped.
    #[error("notification dispatcher has stopped")]
    Closed,
}

/// The sending side of the pipeline; cheap to clone.
#[derive(Debug, Clone)]
pub struct DispatcherHandle {
    tx: mpsc::Sender<Alert>,
    stats: Arc<DispatchStats>,
}

impl DispatcherHandle {
    /// Queues an alert, waiting while the queue is full.
    pub async fn send(&self, alert: Alert) -> Result<(), DispatchError> {
        self.tx.send(alert).await.map_err(|_| DispatchError::Closed)
    }

    /// Queues an alert without waiting; a full queue drops it and counts the drop.
    pub fn try_send(&self, alert: Alert) -> Result<(), DispatchError> {
        self.tx.try_send(alert).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                DispatchStats::inc(&self.stats.alerts_dropped_full);
                DispatchError::Full
            }
            mpsc::error::TrySendError::Closed(_) => DispatchError::Closed,
        })
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> &Arc<DispatchStats> {
        &self.stats
    }

    /// A handle whose alerts go to the returned receiver instead of a dispatcher.
    #[cfg(test)]
    pub(crate) fn channel_for_tests(capacity: usize) -> (DispatcherHandle, mpsc::Receiver<Alert>) {
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(DispatchStats::default());
        (DispatcherHandle { tx, stats }, rx)
    }
}

/// Identifies an aggregation group: the route's position in the tree and the group key.
type GroupId = (Vec<usize>, String);

struct Group {
    key: String,
    labels: Vec<(String, String)>,
    opts: RouteOpts,
    alerts: HashMap<u64, Alert>,
    next_flush: Instant,
    has_flushed: bool,
    in_flight: bool,
}

/// Alertmanager's `DedupStage.needsUpdate`.
fn needs_update(
    entry: Option<&NflogEntry>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    send_resolved: bool,
    repeat: Duration,
    now: SystemTime,
) -> bool {
    let Some(entry) = entry else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&entry.firing) {
        return true;
    }
    if firing.is_empty() {
        return !entry.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&entry.resolved) {
        return true;
    }
    entry.at + repeat <= now
}

/// What one integration sends.
enum Payload {
    /// A JSON POST (webhook, Slack, PagerDuty).
    Http {
        url: String,
        http: Box<HttpConfig>,
        body: Bytes,
    },
    /// An email.
    Email(Box<Email>),
}

struct Delivery {
    /// Alertmanager's integration name, e.g. `slack[0]`.
    integration: String,
    /// The kind, for metrics: `webhook`, `slack`, `pagerduty`, `email`.
    kind: &'static str,
    /// `None`: nothing to send (only resolved alerts, without `send_resolved`).
    payload: Option<Payload>,
    /// Rendering failed; counted as a failed notification.
    broken: bool,
    firing: BTreeSet<u64>,
    resolved: BTreeSet<u64>,
}

struct FlushDone {
    group: GroupId,
    receiver: String,
    /// Per integration: its log entry sets and whether delivery succeeded.
    results: Vec<(String, BTreeSet<u64>, BTreeSet<u64>, bool)>,
    /// Resolved alerts as flushed: fingerprint and the alert, to delete if unchanged.
    resolved: Vec<(u64, Alert)>,
}

/// The pipeline's state; run it with [`Dispatcher::run`].
pub struct Dispatcher {
    config: Arc<Config>,
    opts: DispatchOptions,
    rx: mpsc::Receiver<Alert>,
    stats: Arc<DispatchStats>,
    groups: HashMap<GroupId, Group>,
    /// Every alert not yet resolved-and-collected, the source side of inhibition.
    alerts: HashMap<u64, Alert>,
    nflog: Nflog,
    templates: Arc<TemplateSet>,
    done_tx: mpsc::Sender<FlushDone>,
    done_rx: mpsc::Receiver<FlushDone>,
    /// Flush times, earliest first; see [`Dispatcher::flush_due`] for stale entries.
    timers: BinaryHeap<Reverse<(Instant, GroupId)>>,
    tracker: TaskTracker,
    /// The silencing stage's silences, and the API's view of `alerts`.
    silences: Option<(Arc<Silences>, AlertStore)>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("groups", &self.groups.len())
            .field("alerts", &self.alerts.len())
            .finish()
    }
}

/// Creates the pipeline: the handle to send alerts with, and the dispatcher to run.
pub fn dispatcher(config: Arc<Config>, opts: DispatchOptions) -> (DispatcherHandle, Dispatcher) {
    let (tx, rx) = mpsc::channel(opts.queue_capacity.max(1));
    // One slot per group could be in flight; completions are small and drained first.
    let (done_tx, done_rx) = mpsc::channel(256);
    let stats = Arc::new(DispatchStats::default());
    let templates = match super::templates::load(&config) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "notification templates; using the defaults only");
            super::templates::default_set()
        }
    };
    let nflog = match &opts.data_dir {
        None => Nflog::in_memory(),
        Some(dir) => match Nflog::open_with(
            dir,
            opts.nflog_retention,
            Some(stats.metrics.nflog_write_failures.clone()),
        ) {
            Ok(log) => {
                tracing::info!(entries = log.len(), dir = %dir.display(), "notification log loaded");
                log
            }
            Err(e) => {
                // Starting empty can re-send notifications, but refusing to start would stop
                // all alerting. The bad file is kept beside it for inspection.
                let path = dir.join(super::nflog::FILE_NAME);
                let aside = path.with_extension("json.corrupt");
                tracing::error!(error = %e, moved_to = %aside.display(),
                    "notification log unreadable; starting empty");
                let _ = std::fs::rename(&path, &aside);
                Nflog::open_with(
                    dir,
                    opts.nflog_retention,
                    Some(stats.metrics.nflog_write_failures.clone()),
                )
                .unwrap_or_default()
            }
        },
    };
    stats.metrics.nflog_entries.set(nflog.len() as i64);
    (
        DispatcherHandle {
            tx,
            stats: stats.clone(),
        },
        Dispatcher {
            config,
            opts,
            rx,
            stats,
            groups: HashMap::new(),
            alerts: HashMap::new(),
            nflog,
            templates: Arc::new(templates),
            done_tx,
            done_rx,
            timers: BinaryHeap::new(),
            tracker: TaskTracker::new(),
            silences: None,
        },
    )
}

impl Dispatcher {
    /// Adds Alertmanager's silencing stage: at each flush, after inhibition, alerts that an
    /// active silence matches are left out (and so are notified at the first flush after
    /// the silence expires). Every alert received is also recorded in `store` for
    /// `GET /api/v2/alerts`.
    pub fn with_silences(mut self, silences: Arc<Silences>, store: AlertStore) -> Dispatcher {
        self.silences = Some((silences, store));
        self
    }

    /// Runs until `cancel` fires or every handle is dropped, then waits up to
    /// `shutdown_grace` for notifications in flight.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut maintenance = tokio::time::interval(self.opts.maintenance_interval);
        maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = self.timers.peek().map(|t| t.0 .0);
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                Some(done) = self.done_rx.recv() => self.finish(done),
                _ = sleep_until_opt(next) => self.flush_due(&cancel),
                msg = self.rx.recv() => match msg {
                    Some(alert) => self.ingest(alert),
                    None => break,
                },
                _ = maintenance.tick() => self.maintain(),
            }
        }
        self.tracker.close();
        if tokio::time::timeout(self.opts.shutdown_grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("notifications still in flight at shutdown were abandoned");
        }
        // Record what finished during the grace period.
        while let Ok(done) = self.done_rx.try_recv() {
            self.finish(done);
        }
        std::mem::take(&mut self.nflog).close().await;
    }

    fn ingest(&mut self, mut alert: Alert) {
        DispatchStats::inc(&self.stats.alerts_received);
        let now_wall = SystemTime::now();
        let now = Instant::now();
        if alert.ends_at.is_none() {
            alert.ends_at = Some(now_wall + self.config.global.resolve_timeout);
        }
        let fp = alert.fingerprint();
        if let Some(old) = self.alerts.get(&fp) {
            // A report of a still-active alert keeps its earliest start, as Alertmanager's
            // merge does; a report after the old one resolved starts a new instance.
            if !old.is_resolved_at(now_wall) && old.starts_at < alert.starts_at {
                alert.starts_at = old.starts_at;
            }
        }
        self.alerts.insert(fp, alert.clone());
        if let Some((_, store)) = &self.silences {
            store.upsert(fp, alert.clone(), now_wall);
        }

        let pairs = alert.label_pairs();
        let config = self.config.clone();
        for route in config.route.match_routes(&pairs) {
            let key = route.group_key(&pairs);
            let id = (route.position.clone(), key.clone());
            let group = self.groups.entry(id).or_insert_with(|| {
                DispatchStats::inc(&self.stats.groups_created);
                Group {
                    key,
                    labels: route.group_labels(&pairs),
                    opts: route.opts.clone(),
                    alerts: HashMap::new(),
                    next_flush: now + route.opts.group_wait,
                    has_flushed: false,
                    in_flight: false,
                }
            });
            let mut reschedule = group.alerts.is_empty();
            // An alert that started longer than group_wait ago need not wait.
            if !group.has_flushed && alert.starts_at + group.opts.group_wait < now_wall {
                group.next_flush = now;
                reschedule = true;
            }
            group.alerts.insert(fp, alert.clone());
            if reschedule {
                let at = group.next_flush;
                self.timers
                    .push(Reverse((at, (route.position.clone(), group.key.clone()))));
            }
        }
    }

    /// Flushes every group whose timer is due. Timer entries are never removed in place: an
    /// entry is stale (and skipped) when its group is gone, in flight, or was rescheduled.
    fn flush_due(&mut self, cancel: &CancellationToken) {
        let now = Instant::now();
        while self.timers.peek().is_some_and(|t| t.0 .0 <= now) {
            let Some(Reverse((at, id))) = self.timers.pop() else {
                break;
            };
            let current = self
                .groups
                .get(&id)
                .is_some_and(|g| !g.in_flight && g.next_flush == at);
            if current {
                self.flush(id, cancel);
            }
        }
    }

    fn flush(&mut self, id: GroupId, cancel: &CancellationToken) {
        let now = Instant::now();
        let now_wall = SystemTime::now();
        let rules: &[InhibitRule] = &self.config.inhibit_rules;
        let firing_sources: Vec<&std::collections::BTreeMap<String, String>> = if rules.is_empty() {
            Vec::new()
        } else {
            self.alerts
                .values()
                .filter(|a| !a.is_resolved_at(now_wall))
                .map(|a| &a.labels)
                .collect()
        };
        let Some(group) = self.groups.get_mut(&id) else {
            return;
        };
        group.next_flush = now + group.opts.group_interval;
        group.has_flushed = true;
        self.timers.push(Reverse((group.next_flush, id.clone())));

        let mut alerts: Vec<Alert> = group.alerts.values().cloned().collect();
        alerts.sort_by(alert_order);
        let resolved_snapshot: Vec<(u64, Alert)> = alerts
            .iter()
            .filter(|a| a.is_resolved_at(now_wall))
            .map(|a| (a.fingerprint(), a.clone()))
            .collect();
        let before = alerts.len();
        alerts.retain(|a| {
            !super::inhibit::is_inhibited(rules, firing_sources.iter().copied(), &a.labels)
        });
        for _ in alerts.len()..before {
            DispatchStats::inc(&self.stats.alerts_inhibited);
        }
        if let Some((silences, _)) = &self.silences {
            let before = alerts.len();
            alerts.retain(|a| silences.mutes(&a.labels, now_wall).is_empty());
            for _ in alerts.len()..before {
                DispatchStats::inc(&self.stats.alerts_silenced);
            }
        }
        let firing: BTreeSet<u64> = alerts
            .iter()
            .filter(|a| !a.is_resolved_at(now_wall))
            .map(Alert::fingerprint)
            .collect();
        let resolved: BTreeSet<u64> = alerts
            .iter()
            .filter(|a| a.is_resolved_at(now_wall))
            .map(Alert::fingerprint)
            .collect();

        let receiver_name = group.opts.receiver.clone();
        let Some(receiver) = self.config.receiver(&receiver_name) else {
            tracing::error!(receiver = %receiver_name, "route names a receiver that does not exist");
            return;
        };

        // Every integration of the receiver, as (kind, index, send_resolved).
        let integrations: Vec<(&'static str, usize, bool)> = receiver
            .webhook_configs
            .iter()
            .enumerate()
            .map(|(i, c)| ("webhook", i, c.send_resolved))
            .chain(
                receiver
                    .slack_configs
                    .iter()
                    .enumerate()
                    .map(|(i, c)| ("slack", i, c.send_resolved)),
            )
            .chain(
                receiver
                    .pagerduty_configs
                    .iter()
                    .enumerate()
                    .map(|(i, c)| ("pagerduty", i, c.send_resolved)),
            )
            .chain(
                receiver
                    .email_configs
                    .iter()
                    .enumerate()
                    .map(|(i, c)| ("email", i, c.send_resolved)),
            )
            .collect();

        let mut deliveries = Vec::new();
        for (kind, idx, send_resolved) in integrations {
            let integration = format!("{kind}[{idx}]");
            let entry = self.nflog.get(&(
                group.key.clone(),
                receiver_name.clone(),
                integration.clone(),
            ));
            if !needs_update(
                entry,
                &firing,
                &resolved,
                send_resolved,
                group.opts.repeat_interval,
                now_wall,
            ) {
                continue;
            }
            let to_send: Vec<Alert> = if send_resolved {
                alerts.clone()
            } else {
                alerts
                    .iter()
                    .filter(|a| !a.is_resolved_at(now_wall))
                    .cloned()
                    .collect()
            };
            let (payload, broken) = if to_send.is_empty() {
                (None, false)
            } else {
                let ctx = RenderContext {
                    config: &self.config,
                    opts: &self.opts,
                    templates: &self.templates,
                };
                match ctx.render(
                    receiver,
                    kind,
                    idx,
                    &group.key,
                    &group.labels,
                    &to_send,
                    now_wall,
                ) {
                    Ok(p) => (Some(p), false),
                    Err(e) => {
                        tracing::error!(receiver = %receiver_name, %integration, error = %e,
                            "cannot build notification");
                        (None, true)
                    }
                }
            };
            deliveries.push(Delivery {
                integration,
                kind,
                payload,
                broken,
                firing: firing.clone(),
                resolved: resolved.clone(),
            });
        }

        let deadline = now + group.opts.group_interval.max(self.opts.min_notify_timeout);
        if deliveries.iter().all(|d| d.payload.is_none()) {
            // Nothing to send (or only resolved alerts to integrations without
            // send_resolved): record it as notified, as Alertmanager does. Integrations whose
            // message could not be rendered count as failed.
            let results = deliveries
                .into_iter()
                .map(|d| {
                    if d.broken {
                        self.stats
                            .metrics
                            .notifications
                            .with_label_values(&[d.kind])
                            .inc();
                        self.stats
                            .metrics
                            .notifications_failed
                            .with_label_values(&[d.kind])
                            .inc();
                        DispatchStats::inc(&self.stats.notifications_failed);
                    }
                    (d.integration, d.firing, d.resolved, !d.broken)
                })
                .collect();
            self.finish(FlushDone {
                group: id,
                receiver: receiver_name,
                results,
                resolved: resolved_snapshot,
            });
            return;
        }

        group.in_flight = true;
        let done_tx = self.done_tx.clone();
        let stats = self.stats.clone();
        let opts = self.opts.clone();
        let cancel = cancel.clone();
        let span = tracing::info_span!("notify", receiver = %receiver_name, group = %group.key);
        self.tracker.spawn(
            async move {
                // Integrations are notified in parallel, as Alertmanager's fan-out stage does.
                let mut sends = tokio::task::JoinSet::new();
                for d in deliveries {
                    let stats = stats.clone();
                    let opts = opts.clone();
                    let cancel = cancel.clone();
                    let span = tracing::info_span!("integration", name = %d.integration);
                    sends.spawn(
                        async move {
                            let ok = match &d.payload {
                                None => !d.broken,
                                Some(p) => {
                                    deliver(p, d.kind, deadline, &opts, &stats, &cancel).await
                                }
                            };
                            (d.integration, d.firing, d.resolved, ok)
                        }
                        .instrument(span),
                    );
                }
                let mut results = Vec::new();
                while let Some(r) = sends.join_next().await {
                    match r {
                        Ok(r) => results.push(r),
                        Err(e) => tracing::error!(error = %e, "notification task failed"),
                    }
                }
                let _ = done_tx
                    .send(FlushDone {
                        group: id,
                        receiver: receiver_name,
                        results,
                        resolved: resolved_snapshot,
                    })
                    .await;
            }
            .instrument(span),
        );
    }

    fn finish(&mut self, done: FlushDone) {
        let now = SystemTime::now();
        let Some(group) = self.groups.get_mut(&done.group) else {
            return;
        };
        if group.in_flight {
            group.in_flight = false;
            // Its timer entry was skipped while in flight; put it back (it may be due).
            self.timers
                .push(Reverse((group.next_flush, done.group.clone())));
        }
        let mut all_ok = true;
        let mut changed = false;
        for (integration, firing, resolved, ok) in done.results {
            if ok {
                changed = true;
                self.nflog.insert(
                    (group.key.clone(), done.receiver.clone(), integration),
                    NflogEntry {
                        firing,
                        resolved,
                        at: now,
                    },
                );
            } else {
                all_ok = false;
            }
        }
        if all_ok {
            for (fp, flushed) in &done.resolved {
                if group.alerts.get(fp) == Some(flushed) {
                    group.alerts.remove(fp);
                }
            }
            if group.alerts.is_empty() {
                let key = group.key.clone();
                self.groups.remove(&done.group);
                self.nflog.remove_group(&key);
                changed = true;
                DispatchStats::inc(&self.stats.groups_removed);
            }
        }
        if changed {
            let bytes = self.nflog.persist();
            self.stats
                .metrics
                .nflog_entries
                .set(self.nflog.len() as i64);
            self.stats.metrics.nflog_snapshot_bytes.set(bytes as i64);
        }
    }
}

/// What rendering a message needs from the dispatcher.
struct RenderContext<'a> {
    config: &'a Config,
    opts: &'a DispatchOptions,
    templates: &'a TemplateSet,
}

impl RenderContext<'_> {
    /// Renders one integration's message for these alerts.
    #[allow(clippy::too_many_arguments)]
    fn render(
        &self,
        receiver: &super::config::Receiver,
        kind: &str,
        idx: usize,
        group_key: &str,
        group_labels: &[(String, String)],
        alerts: &[Alert],
        now: SystemTime,
    ) -> Result<Payload, SendError> {
        let name = receiver.name();
        let ext = &self.opts.external_url;
        let global_http = &self.config.global.http_config;
        let data = || notify_data(name, group_labels, alerts, ext, now);
        match kind {
            "webhook" => {
                let wh = &receiver.webhook_configs[idx];
                let msg = WebhookMessage::new(
                    name,
                    group_key,
                    group_labels,
                    alerts,
                    wh.max_alerts,
                    ext,
                    now,
                );
                let mut body = serde_json::to_vec(&msg)
                    .map_err(|e| SendError::Template(format!("encoding webhook message: {e}")))?;
                // Go's json.Encoder ends the document with a newline, and so does
                // Alertmanager's body (checked in tests/alertmanager_receivers.rs).
                body.push(b'\n');
                Ok(Payload::Http {
                    url: wh.url.clone().unwrap_or_default(),
                    http: Box::new(
                        wh.http_config
                            .clone()
                            .unwrap_or_else(|| global_http.clone()),
                    ),
                    body: Bytes::from(body),
                })
            }
            "slack" => {
                let sc = &receiver.slack_configs[idx];
                let body = super::slack::message(sc, self.templates, &data())
                    .map_err(|e| SendError::Template(e.to_string()))?;
                let url = match (&sc.api_url, &sc.api_url_file) {
                    (Some(u), _) => u.clone(),
                    (None, Some(f)) => super::webhook::read_secret(f)?,
                    (None, None) => String::new(),
                };
                Ok(Payload::Http {
                    url,
                    http: Box::new(
                        sc.http_config
                            .clone()
                            .unwrap_or_else(|| global_http.clone()),
                    ),
                    body: Bytes::from(body),
                })
            }
            "pagerduty" => {
                let pd = &receiver.pagerduty_configs[idx];
                let (url, body) = super::pagerduty::request(
                    pd,
                    self.templates,
                    &data(),
                    group_key,
                    &self.opts.pagerduty_v1_url,
                )?;
                Ok(Payload::Http {
                    url,
                    http: Box::new(
                        pd.http_config
                            .clone()
                            .unwrap_or_else(|| global_http.clone()),
                    ),
                    body: Bytes::from(body),
                })
            }
            _ => {
                let ec = &receiver.email_configs[idx];
                let email = super::email::build(ec, self.templates, &data())?;
                Ok(Payload::Email(Box::new(email)))
            }
        }
    }
}

impl Dispatcher {
    fn maintain(&mut self) {
        let now = SystemTime::now();
        let in_groups: BTreeSet<u64> = self
            .groups
            .values()
            .flat_map(|g| g.alerts.keys().copied())
            .collect();
        self.alerts
            .retain(|fp, a| !a.is_resolved_at(now) || in_groups.contains(fp));
        if let Some((_, store)) = &self.silences {
            store.retain(|fp| self.alerts.contains_key(&fp));
        }
    }
}

/// Alertmanager's alert order in notifications: by `job`, then `instance` (alerts with the
/// label first), then by the whole label set.
fn alert_order(a: &Alert, b: &Alert) -> std::cmp::Ordering {
    for key in ["job", "instance"] {
        match (a.labels.get(key), b.labels.get(key)) {
            (None, None) => continue,
            (None, Some(_)) => return std::cmp::Ordering::Greater,
            (Some(_), None) => return std::cmp::Ordering::Less,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    a.labels.iter().cmp(b.labels.iter())
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Delivers one integration's message with retries and exponential backoff until success,
/// a permanent failure or `deadline`; true on success.
async fn deliver(
    payload: &Payload,
    kind: &'static str,
    deadline: Instant,
    opts: &DispatchOptions,
    stats: &DispatchStats,
    cancel: &CancellationToken,
) -> bool {
    let m = &stats.metrics;
    m.notifications.with_label_values(&[kind]).inc();
    let failed = || {
        DispatchStats::inc(&stats.notifications_failed);
        m.notifications_failed.with_label_values(&[kind]).inc();
    };
    let mut backoff = opts.retry_initial;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let now = Instant::now();
        let remaining = deadline.saturating_duration_since(now);
        if remaining.is_zero() {
            failed();
            tracing::warn!(attempt, "giving up on notification: flush deadline passed");
            return false;
        }
        let limit = remaining.min(opts.attempt_timeout);
        let started = std::time::Instant::now();
        let result = match payload {
            Payload::Http { url, http, body } => post_json(url, http, body.clone(), limit).await,
            Payload::Email(email) => super::email::send(email, limit).await,
        };
        m.notification_latency
            .with_label_values(&[kind])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                DispatchStats::inc(&stats.notifications_sent);
                return true;
            }
            Err(e) if e.is_retryable_for(kind) && Instant::now() + backoff < deadline => {
                DispatchStats::inc(&stats.notification_retries);
                m.notification_retries.with_label_values(&[kind]).inc();
                tracing::warn!(attempt, error = %e, retry_in = ?backoff, "notification failed, retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = cancel.cancelled() => {
                        failed();
                        return false;
                    }
                }
                backoff = backoff.saturating_mul(2).min(opts.retry_max);
            }
            Err(e) => {
                failed();
                tracing::warn!(attempt, error = %e, "notification failed");
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    #[test]
    fn dedup_follows_alertmanager() {
        let now = SystemTime::now();
        let repeat = Duration::from_secs(3600);
        // Never notified: only when something fires.
        assert!(needs_update(None, &set(&[1]), &set(&[]), true, repeat, now));
        assert!(!needs_update(
            None,
            &set(&[]),
            &set(&[1]),
            true,
            repeat,
            now
        ));
        let e = NflogEntry {
            firing: set(&[1, 2]),
            resolved: set(&[]),
            at: now,
        };
        // New firing alert.
        assert!(needs_update(
            Some(&e),
            &set(&[1, 3]),
            &set(&[]),
            false,
            repeat,
            now
        ));
        // Fewer firing, nothing new resolved, no send_resolved: wait for repeat.
        assert!(!needs_update(
            Some(&e),
            &set(&[1]),
            &set(&[2]),
            false,
            repeat,
            now
        ));
        // ...but with send_resolved the resolution is news.
        assert!(needs_update(
            Some(&e),
            &set(&[1]),
            &set(&[2]),
            true,
            repeat,
            now
        ));
        // All resolved: always notify (clears the log), whatever send_resolved says.
        assert!(needs_update(
            Some(&e),
            &set(&[]),
            &set(&[1, 2]),
            false,
            repeat,
            now
        ));
        // Unchanged: only after the repeat interval.
        assert!(!needs_update(
            Some(&e),
            &set(&[1, 2]),
            &set(&[]),
            true,
            repeat,
            now
        ));
        assert!(needs_update(
            Some(&e),
            &set(&[1, 2]),
            &set(&[]),
            true,
            repeat,
            now + repeat
        ));
        // Nothing firing before or now: nothing to say.
        let quiet = NflogEntry {
            firing: set(&[]),
            resolved: set(&[5]),
            at: now,
        };
        assert!(!needs_update(
            Some(&quiet),
            &set(&[]),
            &set(&[6]),
            true,
            repeat,
            now
        ));
    }

    #[test]
    fn try_send_reports_a_full_queue() {
        let cfg = Config::load_str("route: {receiver: a}\nreceivers: [{name: a}]", "t.yml")
            .unwrap_or_else(|e| panic!("{e}"));
        let (handle, _dispatcher) = dispatcher(
            Arc::new(cfg),
            DispatchOptions {
                queue_capacity: 2,
                ..DispatchOptions::default()
            },
        );
        // The dispatcher is not running, so nothing drains the queue.
        assert!(handle.try_send(Alert::firing(&[("a", "1")])).is_ok());
        assert!(handle.try_send(Alert::firing(&[("a", "2")])).is_ok());
        assert_eq!(
            handle.try_send(Alert::firing(&[("a", "3")])),
            Err(DispatchError::Full)
        );
        assert_eq!(
            handle.stats().alerts_dropped_full.load(Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn alerts_are_ordered_like_alertmanager() {
        let a = Alert::firing(&[("job", "b")]);
        let b = Alert::firing(&[("job", "a"), ("x", "1")]);
        let c = Alert::firing(&[("instance", "z")]);
        let d = Alert::firing(&[("alertname", "q")]);
        let mut v = vec![d.clone(), c.clone(), a.clone(), b.clone()];
        v.sort_by(alert_order);
        assert_eq!(v, vec![b, a, c, d]);
    }

    // -----------------------------------------------------------------------------------
    // End-to-end over loopback: a local HTTP receiver records what the pipeline POSTs.
    // -----------------------------------------------------------------------------------

    use axum::extract::State;
    use axum::http::StatusCode;
    use std::sync::atomic::AtomicUsize;

    struct Sink {
        url: String,
        rx: mpsc::Receiver<serde_json::Value>,
        attempts: Arc<AtomicUsize>,
    }

    #[derive(Clone)]
    struct SinkState {
        tx: mpsc::Sender<serde_json::Value>,
        fail_first: Arc<AtomicUsize>,
        fail_status: u16,
        attempts: Arc<AtomicUsize>,
    }

    async fn hook(State(st): State<SinkState>, body: axum::body::Bytes) -> StatusCode {
        st.attempts.fetch_add(1, Ordering::SeqCst);
        let failing = st
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return StatusCode::from_u16(st.fail_status).unwrap_or(StatusCode::BAD_GATEWAY);
        }
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        let _ = st.tx.try_send(v);
        StatusCode::OK
    }

    /// A webhook receiver on 127.0.0.1:0 that answers `fail_status` to the first
    /// `fail_first` requests and 200 afterwards.
    async fn sink(fail_first: usize, fail_status: u16) -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = mpsc::channel(64);
        let attempts = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(SinkState {
                tx,
                fail_first: Arc::new(AtomicUsize::new(fail_first)),
                fail_status,
                attempts: attempts.clone(),
            });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Sink {
            url: format!("http://{addr}/hook"),
            rx,
            attempts,
        }
    }

    fn fast_opts() -> DispatchOptions {
        DispatchOptions {
            queue_capacity: 16,
            external_url: "http://vigil.test:9093".into(),
            retry_initial: Duration::from_millis(20),
            retry_max: Duration::from_millis(100),
            min_notify_timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(2),
            maintenance_interval: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(1),
            ..DispatchOptions::default()
        }
    }

    fn start(yaml: &str) -> (DispatcherHandle, CancellationToken) {
        let cfg = Config::load_str(yaml, "t.yml").unwrap_or_else(|e| panic!("{e}"));
        let (handle, d) = dispatcher(Arc::new(cfg), fast_opts());
        let cancel = CancellationToken::new();
        tokio::spawn(d.run(cancel.clone()));
        (handle, cancel)
    }

    async fn next(sink: &mut Sink, within: Duration) -> Option<serde_json::Value> {
        tokio::time::timeout(within, sink.rx.recv())
            .await
            .ok()
            .flatten()
    }

    fn alert(pairs: &[(&str, &str)]) -> Alert {
        Alert::firing(pairs)
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn groups_alerts_and_posts_a_version_4_message() {
        let mut s = sink(0, 500).await;
        let (h, cancel) = start(&format!(
            "route: {{receiver: ops, group_by: [alertname], group_wait: 200ms, group_interval: 400ms, repeat_interval: 1h}}
receivers: [{{name: ops, webhook_configs: [{{url: '{}'}}]}}]",
            s.url
        ));
        h.send(alert(&[("alertname", "HighCPU"), ("instance", "b")]))
            .await
            .unwrap();
        h.send(alert(&[("alertname", "HighCPU"), ("instance", "a")]))
            .await
            .unwrap();
        let m = next(&mut s, WAIT).await.expect("a notification");
        assert_eq!(m["version"], "4");
        assert_eq!(m["receiver"], "ops");
        assert_eq!(m["status"], "firing");
        assert_eq!(m["groupKey"], "{}:{alertname=\"HighCPU\"}");
        assert_eq!(
            m["groupLabels"],
            serde_json::json!({"alertname": "HighCPU"})
        );
        assert_eq!(
            m["commonLabels"],
            serde_json::json!({"alertname": "HighCPU"})
        );
        assert_eq!(m["externalURL"], "http://vigil.test:9093");
        assert_eq!(m["truncatedAlerts"], 0);
        let alerts = m["alerts"].as_array().expect("alerts");
        assert_eq!(alerts.len(), 2, "both alerts in one notification: {m}");
        assert_eq!(alerts[0]["labels"]["instance"], "a", "sorted by instance");
        assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(alerts[0]["fingerprint"].as_str().map(str::len), Some(16));
        // Nothing changed: later group_interval flushes stay quiet until repeat_interval.
        assert!(next(&mut s, Duration::from_millis(1200)).await.is_none());
        assert_eq!(h.stats().notifications_sent.load(Ordering::Relaxed), 1);
        cancel.cancel();
    }

    #[tokio::test]
    async fn resolved_alerts_are_sent_with_send_resolved_and_the_group_goes_away() {
        let mut s = sink(0, 500).await;
        let (h, cancel) = start(&format!(
            "route: {{receiver: ops, group_by: [alertname], group_wait: 100ms, group_interval: 300ms}}
receivers: [{{name: ops, webhook_configs: [{{url: '{}'}}]}}]",
            s.url
        ));
        let a = alert(&[("alertname", "Down")]);
        h.send(a.clone()).await.unwrap();
        assert_eq!(
            next(&mut s, WAIT).await.expect("firing")["status"],
            "firing"
        );
        let mut r = a.clone();
        r.ends_at = Some(SystemTime::now());
        h.send(r).await.unwrap();
        let m = next(&mut s, WAIT).await.expect("resolved");
        assert_eq!(m["status"], "resolved");
        assert_ne!(m["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(h.stats().groups_removed.load(Ordering::Relaxed), 1);
        cancel.cancel();
    }

    #[tokio::test]
    async fn without_send_resolved_resolutions_are_not_sent() {
        let mut s = sink(0, 500).await;
        let (h, cancel) = start(&format!(
            "route: {{receiver: ops, group_by: [alertname], group_wait: 100ms, group_interval: 300ms}}
receivers: [{{name: ops, webhook_configs: [{{url: '{}', send_resolved: false}}]}}]",
            s.url
        ));
        let a = alert(&[("alertname", "Down")]);
        h.send(a.clone()).await.unwrap();
        assert!(next(&mut s, WAIT).await.is_some());
        let mut r = a;
        r.ends_at = Some(SystemTime::now());
        h.send(r).await.unwrap();
        assert!(next(&mut s, Duration::from_millis(1000)).await.is_none());
        // The group was still flushed and cleaned up.
        assert_eq!(h.stats().groups_removed.load(Ordering::Relaxed), 1);
        cancel.cancel();
    }

    #[tokio::test]
    async fn server_errors_are_retried_with_backoff() {
        let mut s = sink(2, 503).await;
        let (h, cancel) = start(&format!(
            "route: {{receiver: ops, group_wait: 50ms}}
receivers: [{{name: ops, webhook_configs: [{{url: '{}'}}]}}]",
            s.url
        ));
        h.send(alert(&[("alertname", "X")])).await.unwrap();
        assert!(next(&mut s, WAIT).await.is_some());
        assert_eq!(s.attempts.load(Ordering::SeqCst), 3);
        assert_eq!(h.stats().notification_retries.load(Ordering::Relaxed), 2);
        assert_eq!(h.stats().notifications_failed.load(Ordering::Relaxed), 0);
        cancel.cancel();
    }

    #[tokio::test]
    async fn client_errors_are_not_retried() {
        let s = sink(usize::MAX, 400).await;
        let (h, cancel) = start(&format!(
            "route: {{receiver: ops, group_wait: 50ms, group_interval: 1h}}
receivers: [{{name: ops, webhook_configs: [{{url: '{}'}}]}}]",
            s.url
        ));
        h.send(alert(&[("alertname", "X")])).await.unwrap();
        let deadline = Instant::now() + WAIT;
        while h.stats().notifications_failed.load(Ordering::Relaxed) == 0
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(h.stats().notifications_failed.load(Ordering::Relaxed), 1);
        assert_eq!(s.attempts.load(Ordering::SeqCst), 1);
        assert_eq!(h.stats().notification_retries.load(Ordering::Relaxed), 0);
        cancel.cancel();
    }

    #[tokio::test]
    async fn unchanged_groups_repeat_after_repeat_interval() {
        let mut s = sink(0, 500).await;
        let (h, cancel) = start(&format!(
            "route: {{receiver: ops, group_wait: 50ms, group_interval: 200ms, repeat_interval: 1s}}
receivers: [{{name: ops, webhook_configs: [{{url: '{}'}}]}}]",
            s.url
        ));
        h.send(alert(&[("alertname", "X")])).await.unwrap();
        assert!(next(&mut s, WAIT).await.is_some());
        let first = Instant::now();
        assert!(next(&mut s, WAIT).await.is_some(), "repeat notification");
        let gap = first.elapsed();
        assert!(gap >= Duration::from_millis(700), "repeated after {gap:?}");
        cancel.cancel();
    }

    #[tokio::test]
    async fn inhibited_alerts_are_not_notified() {
        let mut s = sink(0, 500).await;
        let (h, cancel) = start(&format!(
            "route: {{receiver: ops, group_by: [alertname], group_wait: 200ms, group_interval: 1h}}
receivers: [{{name: ops, webhook_configs: [{{url: '{}'}}]}}]
inhibit_rules:
  - source_matchers: [severity=critical]
    target_matchers: [severity=warning]
    equal: [instance]",
            s.url
        ));
        h.send(alert(&[
            ("alertname", "NodeDown"),
            ("severity", "critical"),
            ("instance", "a"),
        ]))
        .await
        .unwrap();
        h.send(alert(&[
            ("alertname", "DiskFull"),
            ("severity", "warning"),
            ("instance", "a"),
        ]))
        .await
        .unwrap();
        h.send(alert(&[
            ("alertname", "DiskFull"),
            ("severity", "warning"),
            ("instance", "b"),
        ]))
        .await
        .unwrap();
        let mut got = Vec::new();
        while let Some(m) = next(&mut s, Duration::from_millis(1500)).await {
            got.push(m);
        }
        assert_eq!(got.len(), 2, "{got:?}");
        let disk = got
            .iter()
            .find(|m| m["groupLabels"]["alertname"] == "DiskFull")
            .expect("DiskFull group");
        let alerts = disk["alerts"].as_array().expect("alerts");
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0]["labels"]["instance"], "b");
        assert_eq!(h.stats().alerts_inhibited.load(Ordering::Relaxed), 1);
        cancel.cancel();
    }

    #[tokio::test]
    async fn continue_routes_notify_every_matching_receiver() {
        let mut a = sink(0, 500).await;
        let mut b = sink(0, 500).await;
        let (h, cancel) = start(&format!(
            "route:
  receiver: none
  group_wait: 50ms
  routes:
    - {{matchers: [team=db], receiver: first, continue: true}}
    - {{matchers: [severity=critical], receiver: second}}
receivers:
  - {{name: none}}
  - {{name: first, webhook_configs: [{{url: '{}'}}]}}
  - {{name: second, webhook_configs: [{{url: '{}', max_alerts: 1}}]}}",
            a.url, b.url
        ));
        h.send(alert(&[
            ("team", "db"),
            ("severity", "critical"),
            ("i", "1"),
        ]))
        .await
        .unwrap();
        h.send(alert(&[
            ("team", "db"),
            ("severity", "critical"),
            ("i", "2"),
        ]))
        .await
        .unwrap();
        let ma = next(&mut a, WAIT).await.expect("first receiver");
        let mb = next(&mut b, WAIT).await.expect("second receiver");
        assert_eq!(ma["receiver"], "first");
        assert_eq!(ma["groupKey"], "{}/{team=\"db\"}:{}");
        assert_eq!(mb["groupKey"], "{}/{severity=\"critical\"}:{}");
        assert_eq!(mb["alerts"].as_array().map(Vec::len), Some(1));
        assert_eq!(mb["truncatedAlerts"], 1);
        cancel.cancel();
    }

    #[tokio::test]
    async fn send_waits_while_the_queue_is_full() {
        let cfg = Config::load_str("route: {receiver: a}\nreceivers: [{name: a}]", "t.yml")
            .unwrap_or_else(|e| panic!("{e}"));
        let (h, d) = dispatcher(
            Arc::new(cfg),
            DispatchOptions {
                queue_capacity: 1,
                ..fast_opts()
            },
        );
        h.send(alert(&[("a", "1")])).await.unwrap();
        let h2 = h.clone();
        let blocked = tokio::spawn(async move { h2.send(alert(&[("a", "2")])).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !blocked.is_finished(),
            "send must wait for room in the queue"
        );
        let cancel = CancellationToken::new();
        tokio::spawn(d.run(cancel.clone()));
        let r = tokio::time::timeout(WAIT, blocked).await;
        assert!(matches!(r, Ok(Ok(Ok(())))), "{r:?}");
        assert_eq!(h.stats().alerts_received.load(Ordering::Relaxed), 2);
        cancel.cancel();
    }

    // -----------------------------------------------------------------------------------
    // Slack, PagerDuty, email and the persistent notification log, end to end.
    // -----------------------------------------------------------------------------------

    fn start_with(
        yaml: &str,
        opts: DispatchOptions,
    ) -> (
        DispatcherHandle,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let cfg = Config::load_str(yaml, "t.yml").unwrap_or_else(|e| panic!("{e}"));
        let (handle, d) = dispatcher(Arc::new(cfg), opts);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(d.run(cancel.clone()));
        (handle, cancel, task)
    }

    #[tokio::test]
    async fn slack_messages_are_rendered_and_posted() {
        let mut s = sink(0, 500).await;
        let (h, cancel) = start(&format!(
            "route: {{receiver: chat, group_by: [alertname], group_wait: 50ms, group_interval: 300ms}}
receivers: [{{name: chat, slack_configs: [{{api_url: '{}', channel: '#ops', send_resolved: true,
  text: '{{{{ range .Alerts }}}}{{{{ .Labels.instance }}}} {{{{ end }}}}'}}]}}]",
            s.url
        ));
        let a = alert(&[("alertname", "Down"), ("instance", "db1")]);
        h.send(a.clone()).await.unwrap();
        let m = next(&mut s, WAIT).await.expect("slack message");
        assert_eq!(m["channel"], "#ops");
        assert_eq!(m["username"], "Alertmanager");
        let att = &m["attachments"][0];
        assert_eq!(att["title"], "[FIRING:1] Down (db1)");
        assert_eq!(att["text"], "db1 ");
        assert_eq!(att["color"], "danger");
        assert_eq!(
            att["title_link"],
            "http://vigil.test:9093/#/alerts?receiver=chat"
        );
        let mut r = a;
        r.ends_at = Some(SystemTime::now());
        h.send(r).await.unwrap();
        let m = next(&mut s, WAIT).await.expect("resolved slack message");
        assert_eq!(m["attachments"][0]["title"], "[RESOLVED] Down (db1)");
        assert_eq!(m["attachments"][0]["color"], "good");
        assert_eq!(
            h.stats()
                .metrics
                .notifications
                .with_label_values(&["slack"])
                .get(),
            2
        );
        cancel.cancel();
    }

    #[tokio::test]
    async fn slack_resolutions_are_not_sent_by_default() {
        let mut s = sink(0, 500).await;
        let (h, cancel) = start(&format!(
            "route: {{receiver: chat, group_by: [alertname], group_wait: 50ms, group_interval: 200ms}}
receivers: [{{name: chat, slack_configs: [{{api_url: '{}'}}]}}]",
            s.url
        ));
        let a = alert(&[("alertname", "Down")]);
        h.send(a.clone()).await.unwrap();
        assert!(next(&mut s, WAIT).await.is_some(), "firing message");
        let mut r = a;
        r.ends_at = Some(SystemTime::now());
        h.send(r).await.unwrap();
        assert!(
            next(&mut s, Duration::from_millis(1000)).await.is_none(),
            "slack_configs default to send_resolved: false"
        );
        assert_eq!(h.stats().groups_removed.load(Ordering::Relaxed), 1);
        cancel.cancel();
    }

    #[tokio::test]
    async fn pagerduty_events_are_retried_after_a_429_and_resolve_by_default() {
        let mut s = sink(1, 429).await;
        let (h, cancel) = start(&format!(
            "route: {{receiver: pd, group_by: [alertname], group_wait: 50ms, group_interval: 300ms}}
receivers: [{{name: pd, pagerduty_configs: [{{routing_key: rk, url: '{}', severity: '{{{{ .CommonLabels.severity }}}}'}}]}}]",
            s.url
        ));
        let a = alert(&[("alertname", "Down"), ("severity", "critical")]);
        h.send(a.clone()).await.unwrap();
        let m = next(&mut s, WAIT).await.expect("pagerduty trigger");
        assert_eq!(
            s.attempts.load(Ordering::SeqCst),
            2,
            "one 429 (rate limited), then success"
        );
        assert_eq!(m["event_action"], "trigger");
        assert_eq!(m["routing_key"], "rk");
        assert_eq!(m["payload"]["severity"], "critical");
        assert_eq!(
            m["dedup_key"],
            super::super::pagerduty::group_key_hash("{}:{alertname=\"Down\"}")
        );
        assert_eq!(
            h.stats()
                .metrics
                .notification_retries
                .with_label_values(&["pagerduty"])
                .get(),
            1
        );
        let mut r = a;
        r.ends_at = Some(SystemTime::now());
        h.send(r).await.unwrap();
        let m = next(&mut s, WAIT).await.expect("pagerduty resolve");
        assert_eq!(m["event_action"], "resolve");
        assert_eq!(m["dedup_key"].as_str().map(str::len), Some(64));
        cancel.cancel();
    }

    #[tokio::test]
    async fn pagerduty_service_keys_go_to_the_v1_api() {
        let mut s = sink(0, 500).await;
        let opts = DispatchOptions {
            pagerduty_v1_url: s.url.clone(),
            ..fast_opts()
        };
        let (h, cancel, _task) = start_with(
            "route: {receiver: pd, group_wait: 50ms}
receivers: [{name: pd, pagerduty_configs: [{service_key: sk, url: 'http://127.0.0.1:9/not-used-by-v1'}]}]",
            opts,
        );
        h.send(alert(&[("alertname", "Down")])).await.unwrap();
        let m = next(&mut s, WAIT).await.expect("v1 event");
        assert_eq!(m["service_key"], "sk");
        assert_eq!(m["event_type"], "trigger");
        cancel.cancel();
    }

    #[tokio::test]
    async fn emails_are_sent_and_4xx_answers_retried() {
        let (port, mut rx) = super::super::email::tests::smtp_sink(1).await;
        let (h, cancel) = start(&format!(
            "route: {{receiver: mail, group_by: [alertname], group_wait: 50ms}}
receivers: [{{name: mail, email_configs: [{{to: ops@example.org, from: vigil@example.org, smarthost: '127.0.0.1:{port}', require_tls: false}}]}}]"
        ));
        h.send(alert(&[("alertname", "DiskFull"), ("instance", "db1")]))
            .await
            .unwrap();
        let session = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("an email within the deadline")
            .expect("an email");
        assert!(
            session.data.contains("Subject: [FIRING:1] DiskFull (db1)"),
            "{}",
            session.data
        );
        assert!(session.data.contains("text/html"), "{}", session.data);
        assert_eq!(
            h.stats()
                .metrics
                .notification_retries
                .with_label_values(&["email"])
                .get(),
            1
        );
        cancel.cancel();
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vigil-dispatch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    async fn stop(cancel: CancellationToken, task: tokio::task::JoinHandle<()>) {
        cancel.cancel();
        tokio::time::timeout(WAIT, task)
            .await
            .expect("dispatcher stops")
            .expect("dispatcher task");
    }

    #[tokio::test]
    async fn a_restart_does_not_repeat_an_unchanged_notification() {
        let dir = scratch("restart-quiet");
        let mut s = sink(0, 500).await;
        let yaml = format!(
            "route: {{receiver: ops, group_by: [alertname], group_wait: 50ms, group_interval: 200ms, repeat_interval: 1h}}
receivers: [{{name: ops, webhook_configs: [{{url: '{}'}}]}}]",
            s.url
        );
        let opts = || DispatchOptions {
            data_dir: Some(dir.clone()),
            ..fast_opts()
        };
        let a = alert(&[("alertname", "Down")]);
        let (h, cancel, task) = start_with(&yaml, opts());
        h.send(a.clone()).await.unwrap();
        assert!(next(&mut s, WAIT).await.is_some(), "first notification");
        stop(cancel, task).await;
        assert!(dir.join("nflog.json").exists());

        // The rules engine re-sends the still-firing alert after the restart.
        let (h, cancel, task) = start_with(&yaml, opts());
        assert_eq!(h.stats().metrics.nflog_entries.get(), 1);
        h.send(a.clone()).await.unwrap();
        assert!(
            next(&mut s, Duration::from_millis(1000)).await.is_none(),
            "already notified and unchanged: no page before repeat_interval"
        );
        // A new alert in the group is news.
        h.send(alert(&[("alertname", "Down"), ("instance", "b")]))
            .await
            .unwrap();
        let m = next(&mut s, WAIT)
            .await
            .expect("notification for the new alert");
        assert_eq!(m["alerts"].as_array().map(Vec::len), Some(2));
        stop(cancel, task).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_restart_still_sends_a_notification_that_failed() {
        let dir = scratch("restart-failed");
        let broken = sink(usize::MAX, 400).await;
        let mut good = sink(0, 500).await;
        let yaml = |url: &str| {
            format!(
                "route: {{receiver: ops, group_by: [alertname], group_wait: 50ms, group_interval: 1h, repeat_interval: 1h}}
receivers: [{{name: ops, webhook_configs: [{{url: '{url}'}}]}}]"
            )
        };
        let opts = || DispatchOptions {
            data_dir: Some(dir.clone()),
            ..fast_opts()
        };
        let a = alert(&[("alertname", "Down")]);
        let (h, cancel, task) = start_with(&yaml(&broken.url), opts());
        h.send(a.clone()).await.unwrap();
        let deadline = Instant::now() + WAIT;
        while h.stats().notifications_failed.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "delivery never failed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop(cancel, task).await;

        let (h, cancel, task) = start_with(&yaml(&good.url), opts());
        assert_eq!(h.stats().metrics.nflog_entries.get(), 0);
        h.send(a).await.unwrap();
        assert!(
            next(&mut good, WAIT).await.is_some(),
            "the page that failed before the restart is sent"
        );
        stop(cancel, task).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
