//! Allow-listed remediation: commands declared in the agent's local config (`[[actions]]`)
//! that run when a check fires, when the collector asks (only for `allow_remote` actions), or
//! from the CLI. Owns the safety rules, applied in this order: unknown actions and remote
//! requests for non-remote actions are refused; a dry run (global, per action, or per
//! request) reports without executing; an action already running, suspended by its flap
//! guard, or inside its cooldown is refused; the flap guard allows at most N runs per window,
//! then suspends the action for one window and raises a `flap_guard` event; a global
//! semaphore bounds concurrent runs. Every run and every refusal is appended to the audit log
//! ([`audit`]) and becomes an [`Event`] of kind `remediation`, queued for the next batch
//! ([`Remediator::drain_events`]). Cooldown and flap-guard state is persisted in the data
//! directory before an admitted run starts, so restarts do not reset it ([`state`]).
//! Execution details are in [`exec`]; config in [`config`].

pub mod audit;
pub mod cli;
pub mod config;
pub mod exec;
pub mod state;

use crate::checks::threshold::{CheckState, CheckTransition};
use crate::clock::now_ms;
use audit::{AuditLog, AuditRecord};
use config::{ActionConfig, RemediationSettings, RunAs};
use exec::Finished;
use state::{GuardClock, GuardStore, LoadOutcome, StateFile, StoredGuard};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use vigil_shared::model::{Event, Labels};

pub use config::validate_all;

/// Events waiting for the next batch; when full the oldest is dropped (the audit log keeps
/// the full record) and counted in [`Remediator::dropped_events`].
pub const MAX_PENDING_EVENTS: usize = 1_024;
/// Bytes of stdout/stderr copied into a shipped event (the audit log keeps up to 64 KiB).
pub const EVENT_OUTPUT_BYTES: usize = 1_024;
/// Audit log file name under the data directory when `audit_log` is unset.
pub const DEFAULT_AUDIT_FILE: &str = "remediation-audit.jsonl";

/// Who or what asked for a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// A local check fired.
    Check {
        check: String,
        state: CheckState,
        value: f64,
        labels: Labels,
    },
    /// The collector asked.
    Remote { requested_by: String },
    /// An operator ran `vigil-agent actions run`.
    Cli { requested_by: String },
}

impl Trigger {
    fn kind(&self) -> &'static str {
        match self {
            Trigger::Check { .. } => "check",
            Trigger::Remote { .. } => "remote",
            Trigger::Cli { .. } => "cli",
        }
    }
    fn check(&self) -> Option<String> {
        match self {
            Trigger::Check { check, .. } => Some(check.clone()),
            _ => None,
        }
    }
    fn requested_by(&self) -> Option<String> {
        match self {
            Trigger::Remote { requested_by } | Trigger::Cli { requested_by } => {
                Some(requested_by.clone())
            }
            Trigger::Check { .. } => None,
        }
    }
    fn labels(&self) -> Option<&Labels> {
        match self {
            Trigger::Check { labels, .. } => Some(labels),
            _ => None,
        }
    }
}

/// Formats labels as `{a="b",c="d"}`.
pub fn format_labels(labels: &Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// A request to run one action.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    /// The action's name.
    pub action: String,
    /// Why.
    pub trigger: Trigger,
    /// Report what would run without running it.
    pub dry_run: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Not executed: a dry run.
    DryRun,
    /// Exited with status 0.
    Ok,
    /// Exited non-zero or was killed by a signal.
    Failed,
    /// Killed (with its process group) at the timeout.
    Timeout,
    /// Could not be started.
    SpawnError(String),
}

impl Outcome {
    /// `dry_run`, `ok`, `failed`, `timeout` or `spawn_error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::DryRun => "dry_run",
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Timeout => "timeout",
            Outcome::SpawnError(_) => "spawn_error",
        }
    }
}

/// What happened when an action ran (or would have, for a dry run).
#[derive(Debug, Clone)]
pub struct RunReport {
    pub action: String,
    pub trigger: Trigger,
    pub outcome: Outcome,
    /// Command and arguments.
    pub argv: Vec<String>,
    /// The environment given to the command.
    pub env: Vec<(String, String)>,
    /// `user` setting, if any.
    pub user: Option<String>,
    /// Unix ms when the run started.
    pub started_ms: i64,
    /// Exit status, timing and output; None for dry runs and spawn errors.
    pub finished: Option<Finished>,
    /// The `remediation` event for this run.
    pub event: Event,
}

impl RunReport {
    /// Human-readable summary for the CLI.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let argv = self.argv.join(" ");
        match &self.outcome {
            Outcome::DryRun => {
                s.push_str(&format!("dry run: would execute {argv}"));
                if let Some(u) = &self.user {
                    s.push_str(&format!(" as user {u}"));
                }
                s.push_str("\nenvironment:\n");
                for (k, v) in &self.env {
                    s.push_str(&format!("  {k}={v}\n"));
                }
            }
            Outcome::SpawnError(e) => {
                s.push_str(&format!("{}: could not start: {e}\n", self.action))
            }
            o => {
                if let Some(f) = &self.finished {
                    s.push_str(&format!(
                        "{}: {} (exit code {}, signal {}, {} ms, pid {})\n",
                        self.action,
                        o.as_str(),
                        f.exit_code.map_or("-".into(), |c| c.to_string()),
                        f.signal.map_or("-".into(), |c| c.to_string()),
                        f.duration.as_millis(),
                        f.pid
                    ));
                    for (name, c) in [("stdout", &f.stdout), ("stderr", &f.stderr)] {
                        if !c.text.is_empty() || c.truncated {
                            s.push_str(&format!(
                                "--- {name}{} ---\n{}\n",
                                if c.truncated { " (truncated)" } else { "" },
                                c.text.trim_end()
                            ));
                        }
                    }
                }
            }
        }
        s
    }
}

/// The `(accepted, detail)` pair for the protocol's `AgentMessage::ActionResult`
/// answering a `CollectorMessage::RunAction`: accepted when the action ran (or was a dry
/// run), with its outcome, exit code and duration; otherwise the refusal.
pub fn action_result(result: &Result<RunReport, Refusal>) -> (bool, String) {
    match result {
        Ok(r) => {
            let mut detail = r.outcome.as_str().to_string();
            if let Outcome::SpawnError(e) = &r.outcome {
                detail.push_str(&format!(": {e}"));
            }
            if let Some(f) = &r.finished {
                if let Some(c) = f.exit_code {
                    detail.push_str(&format!(", exit code {c}"));
                }
                if let Some(s) = f.signal {
                    detail.push_str(&format!(", signal {s}"));
                }
                detail.push_str(&format!(", {} ms", f.duration.as_millis()));
            }
            (true, detail)
        }
        Err(e) => (false, e.to_string()),
    }
}

/// The protocol's `AgentMessage::ActionResult` answering the `CollectorMessage::RunAction`
/// numbered `request_id`: [`action_result`]'s summary plus the outcome, exit code, signal,
/// duration and the first [`EVENT_OUTPUT_BYTES`] of stdout and stderr.
pub fn action_result_message(
    request_id: u64,
    result: &Result<RunReport, Refusal>,
) -> vigil_shared::codec::AgentMessage {
    let (accepted, detail) = action_result(result);
    let (outcome, f) = match result {
        Ok(r) => (r.outcome.as_str(), r.finished.as_ref()),
        Err(_) => ("refused", None),
    };
    vigil_shared::codec::AgentMessage::ActionResult {
        request_id,
        accepted,
        detail,
        outcome: outcome.to_string(),
        exit_code: f.and_then(|f| f.exit_code),
        signal: f.and_then(|f| f.signal),
        duration_ms: f.map(|f| f.duration.as_millis() as u64),
        stdout: f.map(|f| excerpt(&f.stdout.text)).unwrap_or_default(),
        stderr: f.map(|f| excerpt(&f.stderr.text)).unwrap_or_default(),
    }
}

/// Why a run was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RefusalReason {
    /// No `[[actions]]` entry has this name.
    #[error("unknown action")]
    UnknownAction,
    /// A remote request for an action without `allow_remote = true`.
    #[error("action is not allow-listed for remote requests")]
    NotAllowedRemote,
    /// The previous run of this action has not finished.
    #[error("already running")]
    AlreadyRunning,
    /// The last run was less than `cooldown` ago.
    #[error("cooling down for another {}s", .0.as_secs())]
    CoolingDown(Duration),
    /// The flap guard tripped on this request: the action is now suspended.
    #[error("flap guard: {runs} runs within {}s; suspended for {}s", .window.as_secs(), .window.as_secs())]
    FlapGuardTripped { runs: usize, window: Duration },
    /// The action is suspended by its flap guard.
    #[error("suspended by the flap guard for another {}s", .0.as_secs())]
    Suspended(Duration),
    /// The collector already has the most remote requests in progress the agent serves.
    #[error("too many remote requests in progress (at most {0})")]
    TooManyRemoteRequests(usize),
    /// The remote request itself is unacceptable (for example an over-long action name).
    #[error("bad remote request: {0}")]
    BadRequest(String),
}

/// A refused run: the reason, and the events raised (`remediation`, plus `flap_guard` when
/// the guard tripped).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{action}: refused: {reason}")]
pub struct Refusal {
    pub action: String,
    pub reason: RefusalReason,
    pub events: Vec<Event>,
}

/// The remediator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RemediateError {
    /// The configuration is invalid; each line names one problem.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// The audit log could not be opened.
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    /// The guard state file could not be read.
    #[error("guard state: {0}")]
    State(#[from] state::StateError),
}

/// One action's guard, times in [`GuardClock`] milliseconds.
#[derive(Debug, Default)]
struct Guard {
    running: bool,
    last_run: Option<i64>,
    runs: VecDeque<i64>,
    suspended_until: Option<i64>,
}

impl Guard {
    fn stored(&self) -> StoredGuard {
        StoredGuard {
            last_run_ms: self.last_run,
            runs_ms: self.runs.iter().copied().collect(),
            suspended_until_ms: self.suspended_until,
        }
    }

    /// The guard restored from the file: future times clamped to now, a suspension to at
    /// most one flap window from now, runs older than the window forgotten.
    fn restored(s: StoredGuard, now_ms: i64, window: Duration) -> Guard {
        let s = s.clamped(now_ms);
        let window_ms = window.as_millis() as i64;
        Guard {
            running: false,
            last_run: s.last_run_ms,
            runs: s
                .runs_ms
                .into_iter()
                .filter(|t| now_ms - t < window_ms)
                .collect(),
            suspended_until: s
                .suspended_until_ms
                .map(|u| u.min(now_ms + window_ms))
                .filter(|u| *u > now_ms),
        }
    }
}

fn ms(d: i64) -> Duration {
    Duration::from_millis(d.max(0) as u64)
}

#[derive(Debug)]
struct ActionEntry {
    config: ActionConfig,
    run_as: Option<RunAs>,
    guard: Mutex<Guard>,
}

#[derive(Debug)]
struct Inner {
    settings: RemediationSettings,
    actions: HashMap<String, ActionEntry>,
    order: Vec<String>,
    slots: Semaphore,
    audit: AuditLog,
    events: Mutex<VecDeque<Event>>,
    dropped_events: Mutex<u64>,
    clock: GuardClock,
    store: GuardStore,
    state_errors: Mutex<u64>,
}

impl Inner {
    /// Every action's guard as it should be stored.
    fn snapshot(&self) -> StateFile {
        let mut f = StateFile {
            version: state::STATE_VERSION,
            ..Default::default()
        };
        for (name, e) in &self.actions {
            let g = e.guard.lock().unwrap_or_else(|p| p.into_inner()).stored();
            if !g.is_empty() {
                f.actions.insert(name.clone(), g);
            }
        }
        f
    }
}

/// Runs allow-listed actions under the safety rules. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct Remediator {
    inner: Arc<Inner>,
}

/// Unix time in milliseconds.
fn excerpt(s: &str) -> String {
    if s.len() <= EVENT_OUTPUT_BYTES {
        return s.to_string();
    }
    let mut end = EVENT_OUTPUT_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

impl Remediator {
    /// Validates `actions` (every problem at once, including a `user` that needs root while
    /// the agent is not root), opens the audit log (`settings.audit_log`, else
    /// `data_dir/remediation-audit.jsonl`) and restores the guard state from
    /// `data_dir/remediation-state.json`.
    pub fn new(
        settings: RemediationSettings,
        actions: Vec<ActionConfig>,
        data_dir: &Path,
    ) -> Result<Remediator, RemediateError> {
        let mut problems = validate_all(&settings, &[], &actions);
        let euid = rustix::process::geteuid().as_raw();
        let mut entries = HashMap::new();
        let mut order = Vec::new();
        for a in actions {
            let run_as = match &a.user {
                Some(u) => match config::lookup_user(u, Path::new("/etc/passwd")) {
                    Ok(r) => {
                        if euid != 0 && r.uid != euid {
                            problems.push(format!(
                                "actions[{}].user: running as {u:?} (uid {}) requires the agent to run as root (it runs as uid {euid})",
                                a.name, r.uid
                            ));
                        }
                        Some(r)
                    }
                    Err(_) => None, // already reported by validate()
                },
                None => None,
            };
            order.push(a.name.clone());
            entries.insert(
                a.name.clone(),
                ActionEntry {
                    config: a,
                    run_as,
                    guard: Mutex::new(Guard::default()),
                },
            );
        }
        if !problems.is_empty() {
            return Err(RemediateError::Invalid(problems));
        }
        let audit_path = settings
            .audit_log
            .clone()
            .unwrap_or_else(|| data_dir.join(DEFAULT_AUDIT_FILE));
        let audit = AuditLog::open(&audit_path)?;
        let (store, stored, loaded) = GuardStore::open(&data_dir.join(state::STATE_FILE))?;
        match &loaded {
            LoadOutcome::MovedAside { moved_to, error } => tracing::error!(
                moved_to = %moved_to.display(), %error,
                "remediation guard state was unreadable: moved aside, cooldowns and flap guards start over"
            ),
            LoadOutcome::Loaded => tracing::info!(
                path = %store.path().display(), actions = stored.actions.len(),
                "remediation guard state restored"
            ),
            LoadOutcome::Fresh => {}
        }
        let clock = GuardClock::start();
        let now = clock.now_ms();
        for (name, g) in stored.actions {
            // State of actions no longer configured is dropped with the next write.
            if let Some(e) = entries.get_mut(&name) {
                e.guard = Mutex::new(Guard::restored(g, now, e.config.flap_window()));
            }
        }
        let slots = settings
            .max_concurrent
            .unwrap_or(config::DEFAULT_MAX_CONCURRENT);
        Ok(Remediator {
            inner: Arc::new(Inner {
                settings,
                actions: entries,
                order,
                slots: Semaphore::new(slots),
                audit,
                events: Mutex::new(VecDeque::new()),
                dropped_events: Mutex::new(0),
                clock,
                store,
                state_errors: Mutex::new(0),
            }),
        })
    }

    /// The configured actions, in config order.
    pub fn actions(&self) -> Vec<&ActionConfig> {
        self.inner
            .order
            .iter()
            .filter_map(|n| self.inner.actions.get(n).map(|e| &e.config))
            .collect()
    }

    /// The audit log's path.
    pub fn audit_path(&self) -> &Path {
        self.inner.audit.path()
    }

    /// Takes the queued `remediation`/`flap_guard` events, for the next batch.
    pub fn drain_events(&self) -> Vec<Event> {
        let mut q = self.inner.events.lock().unwrap_or_else(|p| p.into_inner());
        q.drain(..).collect()
    }

    /// Events dropped because [`MAX_PENDING_EVENTS`] were already queued.
    pub fn dropped_events(&self) -> u64 {
        *self
            .inner
            .dropped_events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Times the guard state could not be saved (each is also logged).
    pub fn state_errors(&self) -> u64 {
        *self
            .inner
            .state_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The guard state file's path.
    pub fn state_path(&self) -> &Path {
        self.inner.store.path()
    }

    /// Writes every guard to the state file, off the async threads. A failure is logged and
    /// counted but does not stop the run: the in-memory guard still holds in this process.
    async fn save_state(&self) {
        let inner = Arc::clone(&self.inner);
        let r = tokio::task::spawn_blocking(move || {
            let i = Arc::clone(&inner);
            inner.store.save(move || i.snapshot())
        })
        .await;
        let err = match r {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        *self
            .inner
            .state_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner()) += 1;
        tracing::error!(error = %err, path = %self.inner.store.path().display(),
            "could not save the remediation guard state; a restart would forget cooldowns");
    }

    fn queue(&self, events: &[Event]) {
        let mut q = self.inner.events.lock().unwrap_or_else(|p| p.into_inner());
        for e in events {
            if q.len() >= MAX_PENDING_EVENTS {
                q.pop_front();
                *self
                    .inner
                    .dropped_events
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) += 1;
            }
            q.push_back(e.clone());
        }
    }

    /// Runs the action a firing check names, if any. Resolved transitions and checks without
    /// an action return None.
    pub async fn on_transition(&self, t: &CheckTransition) -> Option<Result<RunReport, Refusal>> {
        if t.state != CheckState::Firing {
            return None;
        }
        let action = t.action.clone()?;
        Some(
            self.run(RunRequest {
                action,
                trigger: Trigger::Check {
                    check: t.check.clone(),
                    state: t.state,
                    value: t.value,
                    labels: t.labels.clone(),
                },
                dry_run: false,
            })
            .await,
        )
    }

    /// Spawns [`Remediator::on_transition`] for every transition on `tracker`, each in a
    /// tracing span, so the collection loop never waits for a script.
    pub fn spawn_transitions(
        &self,
        transitions: &[CheckTransition],
        tracker: &tokio_util::task::TaskTracker,
    ) {
        use tracing::Instrument;
        for t in transitions {
            let Some(action) = t.action.clone().filter(|_| t.state == CheckState::Firing) else {
                continue;
            };
            let (me, t) = (self.clone(), t.clone());
            let span = tracing::info_span!("remediation", %action, check = %t.check);
            tracker.spawn(
                async move {
                    match me.on_transition(&t).await {
                        Some(Ok(r)) => {
                            tracing::info!(outcome = r.outcome.as_str(), "remediation ran")
                        }
                        Some(Err(e)) => tracing::warn!(error = %e, "remediation refused"),
                        None => {}
                    }
                }
                .instrument(span),
            );
        }
    }

    /// A request from the collector: refused (and audited) unless the action exists and has
    /// `allow_remote = true`; otherwise subject to the same rules as a local trigger.
    pub async fn handle_remote(
        &self,
        action_name: &str,
        requested_by: &str,
    ) -> Result<RunReport, Refusal> {
        self.run(RunRequest {
            action: action_name.to_string(),
            trigger: Trigger::Remote {
                requested_by: requested_by.to_string(),
            },
            dry_run: false,
        })
        .await
    }

    /// Refuses a remote request before it reaches the safety rules (too many in progress,
    /// or a malformed request): audited and raised as a `remediation` event like any other
    /// refusal. An action name longer than 256 bytes is cut in the record.
    pub async fn refuse_remote(
        &self,
        action_name: &str,
        requested_by: &str,
        reason: RefusalReason,
    ) -> Refusal {
        let mut action = action_name.to_string();
        if action.len() > 256 {
            let mut end = 256;
            while !action.is_char_boundary(end) {
                end -= 1;
            }
            action.truncate(end);
            action.push('…');
        }
        let req = RunRequest {
            action,
            trigger: Trigger::Remote {
                requested_by: requested_by.to_string(),
            },
            dry_run: false,
        };
        self.refuse(&req, reason, vec![]).await
    }

    fn base_record(&self, req: &RunRequest, outcome: &str, reason: Option<String>) -> AuditRecord {
        AuditRecord {
            timestamp_ms: now_ms(),
            action: req.action.clone(),
            outcome: outcome.into(),
            reason,
            trigger: req.trigger.kind().into(),
            check: req.trigger.check(),
            requested_by: req.trigger.requested_by(),
            series: req.trigger.labels().map(format_labels),
            argv: vec![],
            user: None,
            pid: None,
            exit_code: None,
            signal: None,
            duration_ms: None,
            stdout: None,
            stdout_truncated: false,
            stderr: None,
            stderr_truncated: false,
        }
    }

    fn event(&self, kind: &str, req: &RunRequest, rec: &AuditRecord) -> Event {
        let mut labels = req.trigger.labels().cloned().unwrap_or_default();
        labels.set("action", &req.action);
        let mut fields = vec![
            ("outcome".to_string(), rec.outcome.clone()),
            ("trigger".to_string(), rec.trigger.clone()),
        ];
        let mut opt = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                fields.push((k.to_string(), v));
            }
        };
        opt("reason", rec.reason.clone());
        opt("check", rec.check.clone());
        opt("requested_by", rec.requested_by.clone());
        opt("exit_code", rec.exit_code.map(|c| c.to_string()));
        opt("signal", rec.signal.map(|c| c.to_string()));
        opt("duration_ms", rec.duration_ms.map(|c| c.to_string()));
        opt("stdout", rec.stdout.as_deref().map(excerpt));
        opt("stderr", rec.stderr.as_deref().map(excerpt));
        if rec.stdout_truncated || rec.stderr_truncated {
            fields.push(("output_truncated".into(), "true".into()));
        }
        Event {
            timestamp_ms: rec.timestamp_ms,
            kind: kind.to_string(),
            labels,
            fields,
        }
    }

    async fn audit(&self, rec: &AuditRecord) {
        if let Err(e) = self.inner.audit.append(rec).await {
            tracing::error!(error = %e, action = %rec.action, "could not write the remediation audit log");
        }
    }

    async fn refuse(&self, req: &RunRequest, reason: RefusalReason, argv: Vec<String>) -> Refusal {
        let mut rec = self.base_record(req, "refused", Some(reason.to_string()));
        rec.argv = argv;
        self.audit(&rec).await;
        let mut events = vec![self.event("remediation", req, &rec)];
        if let RefusalReason::FlapGuardTripped { .. } = reason {
            let mut flap = self.event("flap_guard", req, &rec);
            flap.fields.retain(|(k, _)| k != "outcome");
            flap.fields.push(("outcome".into(), "suspended".into()));
            events.push(flap);
        }
        self.queue(&events);
        Refusal {
            action: req.action.clone(),
            reason,
            events,
        }
    }

    fn environment(&self, a: &ActionConfig, req: &RunRequest) -> Vec<(String, String)> {
        let mut env = vec![("PATH".to_string(), config::ACTION_PATH.to_string())];
        env.extend(a.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.push(("VIGIL_ACTION".into(), a.name.clone()));
        env.push(("VIGIL_TRIGGER".into(), req.trigger.kind().into()));
        if let Some(r) = req.trigger.requested_by() {
            env.push(("VIGIL_REQUESTED_BY".into(), r));
        }
        if let Trigger::Check {
            check,
            state,
            value,
            labels,
        } = &req.trigger
        {
            env.push(("VIGIL_CHECK".into(), check.clone()));
            env.push(("VIGIL_STATE".into(), state.as_str().into()));
            env.push(("VIGIL_VALUE".into(), value.to_string()));
            env.push(("VIGIL_SERIES".into(), format_labels(labels)));
            for (k, v) in labels.iter() {
                let name: String = k
                    .trim_start_matches('_')
                    .chars()
                    .map(|c| c.to_ascii_uppercase())
                    .collect();
                env.push((format!("VIGIL_LABEL_{name}"), v.to_string()));
            }
        }
        env
    }

    /// Applies the safety rules to `req` and runs the action (or reports the dry run).
    pub async fn run(&self, req: RunRequest) -> Result<RunReport, Refusal> {
        let Some(entry) = self.inner.actions.get(&req.action) else {
            return Err(self
                .refuse(&req, RefusalReason::UnknownAction, vec![])
                .await);
        };
        let a = &entry.config;
        let mut argv = vec![a.command.display().to_string()];
        argv.extend(a.args.iter().cloned());
        if matches!(req.trigger, Trigger::Remote { .. }) && !a.allow_remote {
            return Err(self
                .refuse(&req, RefusalReason::NotAllowedRemote, argv)
                .await);
        }
        let env = self.environment(a, &req);
        let started_ms = now_ms();
        if self.inner.settings.dry_run || a.dry_run || req.dry_run {
            let mut rec = self.base_record(&req, "dry_run", None);
            rec.argv = argv.clone();
            rec.user = a.user.clone();
            self.audit(&rec).await;
            let event = self.event("remediation", &req, &rec);
            self.queue(std::slice::from_ref(&event));
            return Ok(RunReport {
                action: a.name.clone(),
                trigger: req.trigger,
                outcome: Outcome::DryRun,
                argv,
                env,
                user: a.user.clone(),
                started_ms,
                finished: None,
                event,
            });
        }
        // Guards: decide and record the run under one lock.
        let verdict = {
            let mut g = entry.guard.lock().unwrap_or_else(|p| p.into_inner());
            let now = self.inner.clock.now_ms();
            let window = a.flap_window();
            let window_ms = window.as_millis() as i64;
            if g.running {
                Err(RefusalReason::AlreadyRunning)
            } else if let Some(until) = g.suspended_until.filter(|u| *u > now) {
                Err(RefusalReason::Suspended(ms(until - now)))
            } else if let Some(left) = g
                .last_run
                .map(|l| a.cooldown().saturating_sub(ms(now - l)))
                .filter(|d| !d.is_zero())
            {
                Err(RefusalReason::CoolingDown(left))
            } else {
                while g.runs.front().is_some_and(|t| now - *t >= window_ms) {
                    g.runs.pop_front();
                }
                if g.runs.len() >= a.flap_max_runs() as usize {
                    g.suspended_until = Some(now + window_ms);
                    Err(RefusalReason::FlapGuardTripped {
                        runs: g.runs.len(),
                        window,
                    })
                } else {
                    g.running = true;
                    g.last_run = Some(now);
                    g.runs.push_back(now);
                    Ok(())
                }
            }
        };
        match &verdict {
            // Admitted runs and a tripped guard change the state: store it before anything
            // executes, so a crash during the run cannot erase it.
            Ok(()) | Err(RefusalReason::FlapGuardTripped { .. }) => self.save_state().await,
            Err(_) => {}
        }
        if let Err(reason) = verdict {
            return Err(self.refuse(&req, reason, argv).await);
        }
        let permit = self.inner.slots.acquire().await.ok();
        let result = exec::run_command(&a.command, &a.args, &env, entry.run_as, a.timeout()).await;
        drop(permit);
        entry
            .guard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .running = false;
        let (outcome, finished) = match result {
            Ok(f) if f.timed_out => (Outcome::Timeout, Some(f)),
            Ok(f) if f.exit_code == Some(0) => (Outcome::Ok, Some(f)),
            Ok(f) => (Outcome::Failed, Some(f)),
            Err(e) => (Outcome::SpawnError(e.to_string()), None),
        };
        let mut rec = self.base_record(
            &req,
            outcome.as_str(),
            match &outcome {
                Outcome::SpawnError(e) => Some(e.clone()),
                _ => None,
            },
        );
        rec.timestamp_ms = started_ms;
        rec.argv = argv.clone();
        rec.user = a.user.clone();
        if let Some(f) = &finished {
            rec.pid = Some(f.pid);
            rec.exit_code = f.exit_code;
            rec.signal = f.signal;
            rec.duration_ms = Some(f.duration.as_millis() as u64);
            rec.stdout = Some(f.stdout.text.clone());
            rec.stdout_truncated = f.stdout.truncated;
            rec.stderr = Some(f.stderr.text.clone());
            rec.stderr_truncated = f.stderr.truncated;
        }
        self.audit(&rec).await;
        let event = self.event("remediation", &req, &rec);
        self.queue(std::slice::from_ref(&event));
        Ok(RunReport {
            action: a.name.clone(),
            trigger: req.trigger,
            outcome,
            argv,
            env,
            user: a.user.clone(),
            started_ms,
            finished,
            event,
        })
    }
}
