//! Silences, kept the way Alertmanager 0.25 keeps them (`silence/silence.go`): the model
//! (matchers with all four match types, start, end, author, comment, update time), its
//! validation with Alertmanager's error messages, the rules for creating, updating and
//! expiring (an update that changes an active silence's matchers expires it and creates a
//! new id; a start in the past is clamped to now), the `filter=` matching of the v2 API and
//! its sort order, muting of alert label sets, and garbage collection once a silence has
//! been expired for longer than the retention (Alertmanager's `--data.retention`, 120h).
//!
//! The store is persisted to `<data dir>/silences.json` on every change, crash-safely: the
//! whole snapshot is written to a temporary file, fsynced, renamed over the old one, and the
//! directory is fsynced. A change whose snapshot cannot be written is not made. A snapshot
//! that cannot be read at startup is an error naming the file, as in Alertmanager.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use vigil_shared::calendar::{civil_from_days, days_from_civil};

use super::matcher::{is_valid_label_name, LabelLookup, MatchType, Matcher, MatcherError};
use crate::gocompat::go_quote;
use crate::gocompat::rfc3339;
use crate::telemetry::SilenceMetrics;

/// How long an expired silence is kept before it is garbage-collected (Alertmanager's
/// default `--data.retention`).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(120 * 3600);
/// The snapshot's file name inside the data directory.
pub const SNAPSHOT_FILE: &str = "silences.json";
/// How often expired silences are garbage-collected (Alertmanager's maintenance interval).
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// One matcher of a silence, as the v2 API spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceMatcher {
    /// Label name.
    pub name: String,
    /// Value, or regular expression when `is_regex`.
    pub value: String,
    /// `=~`/`!~` rather than `=`/`!=`.
    #[serde(rename = "isRegex")]
    pub is_regex: bool,
    /// `=`/`=~` rather than `!=`/`!~`.
    #[serde(rename = "isEqual")]
    pub is_equal: bool,
}

impl SilenceMatcher {
    /// A matcher from its operator.
    pub fn new(name: &str, kind: MatchType, value: &str) -> SilenceMatcher {
        SilenceMatcher {
            name: name.to_string(),
            value: value.to_string(),
            is_regex: matches!(kind, MatchType::Regex | MatchType::NotRegex),
            is_equal: matches!(kind, MatchType::Equal | MatchType::Regex),
        }
    }

    /// The operator.
    pub fn kind(&self) -> MatchType {
        match (self.is_regex, self.is_equal) {
            (false, true) => MatchType::Equal,
            (false, false) => MatchType::NotEqual,
            (true, true) => MatchType::Regex,
            (true, false) => MatchType::NotRegex,
        }
    }

    /// Alertmanager's `validateMatcher`, then compiles the matcher (regexes anchored).
    fn compile(&self) -> Result<Matcher, String> {
        if !is_valid_label_name(&self.name) {
            return Err(format!("invalid label name {}", go_quote(&self.name)));
        }
        // Label values are UTF-8 by construction here, so Alertmanager's value check holds.
        Matcher::new(self.kind(), &self.name, &self.value).map_err(|e| match e {
            MatcherError::BadRegex { message, .. } => format!(
                "invalid regular expression {}: {}",
                go_quote(&self.value),
                go_regex_message(&self.value, &message)
            ),
            other => other.to_string(),
        })
    }
}

/// Go's `regexp.Compile` text for the commonest mistakes (unbalanced parentheses, which Go
/// reports with the whole expression); other errors keep the translator's or the regex
/// crate's text, prefixed like Go's.
fn go_regex_message(pattern: &str, message: &str) -> String {
    if message.starts_with("error parsing regexp:") {
        return message.to_string();
    }
    let what = if message.contains("unclosed group") {
        "missing closing )"
    } else if message.contains("unopened group") {
        "unexpected )"
    } else {
        return format!("error parsing regexp: {message}");
    };
    format!("error parsing regexp: {what}: `{pattern}`")
}

/// A silence's state at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SilenceState {
    /// In force now.
    Active,
    /// Starts in the future.
    Pending,
    /// Ended.
    Expired,
}

impl SilenceState {
    /// The v2 API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Active => "active",
            SilenceState::Pending => "pending",
            SilenceState::Expired => "expired",
        }
    }

    /// Every state, in the API's sort order.
    pub const ALL: [SilenceState; 3] = [
        SilenceState::Active,
        SilenceState::Pending,
        SilenceState::Expired,
    ];
}

/// One silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    /// UUID; empty for a silence not created yet.
    pub id: String,
    /// What the silenced alerts must match, in the order given.
    pub matchers: Vec<SilenceMatcher>,
    /// Start of the silence.
    pub starts_at: SystemTime,
    /// End of the silence.
    pub ends_at: SystemTime,
    /// Last change.
    pub updated_at: SystemTime,
    /// Author.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// Alertmanager's `getState`: pending before the start, expired after the end (the end
    /// instant itself is still active).
    pub fn state_at(&self, now: SystemTime) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now > self.ends_at {
            SilenceState::Expired
        } else {
            SilenceState::Active
        }
    }
}

/// A silence operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    /// No silence has this id.
    #[error("silence not found")]
    NotFound,
    /// The silence breaks one of Alertmanager's rules; the text is Alertmanager's.
    #[error("silence invalid: {0}")]
    Invalid(String),
    /// The snapshot could not be written, so the change was not made.
    #[error("writing silences snapshot {path}: {source}")]
    Snapshot {
        /// The snapshot file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The snapshot could not be read or parsed at startup.
    #[error("reading silences snapshot {path}: {message}")]
    Load {
        /// The snapshot file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Alertmanager's `matchesEmpty`: only `=` and `=~` matchers can match the empty string
/// for the "at least one matcher must not match the empty string" rule.
fn matches_empty(m: &SilenceMatcher, compiled: &Matcher) -> bool {
    match m.kind() {
        MatchType::Equal => m.value.is_empty(),
        MatchType::Regex => compiled.matches_value(""),
        _ => false,
    }
}

/// Alertmanager's `validateSilence`; returns the compiled matchers.
pub fn validate(s: &Silence) -> Result<Vec<Matcher>, SilenceError> {
    let invalid = |m: String| SilenceError::Invalid(m);
    if s.id.is_empty() {
        return Err(invalid("ID missing".into()));
    }
    if s.matchers.is_empty() {
        return Err(invalid("at least one matcher required".into()));
    }
    let mut compiled = Vec::with_capacity(s.matchers.len());
    let mut all_match_empty = true;
    for (i, m) in s.matchers.iter().enumerate() {
        let c = m
            .compile()
            .map_err(|e| invalid(format!("invalid label matcher {i}: {e}")))?;
        all_match_empty &= matches_empty(m, &c);
        compiled.push(c);
    }
    if all_match_empty {
        return Err(invalid(
            "at least one matcher must not match the empty string".into(),
        ));
    }
    if s.ends_at < s.starts_at {
        return Err(invalid("end time must not be before start time".into()));
    }
    Ok(compiled)
}

/// Alertmanager's `canUpdate`: whether `new` may replace `old` in place at `now`.
fn can_update(old: &Silence, new: &Silence, now: SystemTime) -> bool {
    if old.matchers != new.matchers {
        return false;
    }
    match old.state_at(now) {
        SilenceState::Active => {
            unix_secs(new.starts_at) == unix_secs(old.starts_at) && new.ends_at >= now
        }
        SilenceState::Pending => new.starts_at >= now,
        SilenceState::Expired => false,
    }
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    }
}

/// True when the silence has, for every filter matcher, a matcher with the same name,
/// operator and value (Alertmanager's `CheckSilenceMatchesFilterLabels`).
pub fn matches_filter(s: &Silence, filter: &[Matcher]) -> bool {
    filter.iter().all(|f| {
        s.matchers
            .iter()
            .any(|m| m.name == f.name && m.kind() == f.kind && m.value == f.value)
    })
}

/// Alertmanager's `SortSilences`: active, pending, expired; active by end ascending,
/// pending by start ascending, expired by end descending.
pub fn sort_for_api(v: &mut [Silence], now: SystemTime) {
    v.sort_by(|a, b| {
        let (sa, sb) = (a.state_at(now), b.state_at(now));
        sa.cmp(&sb).then_with(|| match sa {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
}

#[derive(Debug, Clone)]
struct Entry {
    silence: Silence,
    compiled: Vec<Matcher>,
}

/// The silence store; share it as `Arc<Silences>`.
pub struct Silences {
    entries: Mutex<HashMap<String, Entry>>,
    snapshot: Option<PathBuf>,
    retention: Duration,
    metrics: Option<SilenceMetrics>,
}

impl std::fmt::Debug for Silences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Silences")
            .field("snapshot", &self.snapshot)
            .field("retention", &self.retention)
            .finish()
    }
}

/// The snapshot file's schema.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotFile {
    version: u32,
    silences: Vec<StoredSilence>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StoredSilence {
    id: String,
    matchers: Vec<SilenceMatcher>,
    starts_at: String,
    ends_at: String,
    updated_at: String,
    created_by: String,
    comment: String,
}

const SNAPSHOT_VERSION: u32 = 1;

impl Silences {
    /// A store that is not persisted (tests, and collectors without a data directory).
    pub fn in_memory(retention: Duration) -> Silences {
        Silences {
            entries: Mutex::new(HashMap::new()),
            snapshot: None,
            retention,
            metrics: None,
        }
    }

    /// Opens the store persisted in `dir`, loading the snapshot if there is one and
    /// dropping silences past their retention.
    pub fn open(
        dir: &Path,
        retention: Duration,
        metrics: Option<SilenceMetrics>,
    ) -> Result<Silences, SilenceError> {
        let path = dir.join(SNAPSHOT_FILE);
        let load_err = |message: String| SilenceError::Load {
            path: path.display().to_string(),
            message,
        };
        let mut entries = HashMap::new();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: SnapshotFile =
                    serde_json::from_slice(&bytes).map_err(|e| load_err(e.to_string()))?;
                if file.version != SNAPSHOT_VERSION {
                    return Err(load_err(format!(
                        "unsupported version {} (expected {SNAPSHOT_VERSION})",
                        file.version
                    )));
                }
                for s in file.silences {
                    let time = |field: &str, v: &str| {
                        parse_time(v)
                            .map_err(|e| load_err(format!("silence {}: {field}: {e}", s.id)))
                    };
                    let silence = Silence {
                        starts_at: time("startsAt", &s.starts_at)?,
                        ends_at: time("endsAt", &s.ends_at)?,
                        updated_at: time("updatedAt", &s.updated_at)?,
                        id: s.id,
                        matchers: s.matchers,
                        created_by: s.created_by,
                        comment: s.comment,
                    };
                    let compiled = validate(&silence)
                        .map_err(|e| load_err(format!("silence {}: {e}", silence.id)))?;
                    entries.insert(silence.id.clone(), Entry { silence, compiled });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(load_err(e.to_string())),
        }
        let store = Silences {
            entries: Mutex::new(entries),
            snapshot: Some(path),
            retention,
            metrics,
        };
        store.gc(SystemTime::now())?;
        Ok(store)
    }

    /// The retention of expired silences.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave the map half-changed: every change
        // is built on a copy and swapped in whole.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change` to a copy of the silences, persists the copy, and swaps it in.
    fn commit(
        &self,
        map: &mut MutexGuard<'_, HashMap<String, Entry>>,
        next: HashMap<String, Entry>,
    ) -> Result<(), SilenceError> {
        if let Some(path) = &self.snapshot {
            let started = Instant::now();
            match write_snapshot(path, &next) {
                Ok(size) => {
                    if let Some(m) = &self.metrics {
                        m.snapshot_duration.observe(started.elapsed().as_secs_f64());
                        m.snapshot_size.set(size as i64);
                    }
                }
                Err(source) => {
                    if let Some(m) = &self.metrics {
                        m.snapshot_errors.inc();
                    }
                    tracing::error!(path = %path.display(), error = %source, "writing silences snapshot failed; change refused");
                    return Err(SilenceError::Snapshot {
                        path: path.display().to_string(),
                        source,
                    });
                }
            }
        }
        **map = next;
        Ok(())
    }

    /// Creates or updates a silence as Alertmanager's `Silences.Set` does, and returns its
    /// id. With an id: `NotFound` when there is no such silence; updated in place when the
    /// matchers are the same and the times may change (see [`can_update`]); otherwise the
    /// old silence is expired (unless it already is) and a new one with a new id is made.
    /// A new silence's start in the past becomes `now`.
    pub fn set(&self, mut sil: Silence, now: SystemTime) -> Result<String, SilenceError> {
        let mut map = self.lock();
        let mut next = map.clone();
        let prev = if sil.id.is_empty() {
            None
        } else {
            Some(
                map.get(&sil.id)
                    .map(|e| e.silence.clone())
                    .ok_or(SilenceError::NotFound)?,
            )
        };
        if let Some(prev) = &prev {
            if can_update(prev, &sil, now) {
                sil.updated_at = now;
                let compiled = validate(&sil)?;
                next.insert(
                    sil.id.clone(),
                    Entry {
                        silence: sil.clone(),
                        compiled,
                    },
                );
                self.commit(&mut map, next)?;
                return Ok(sil.id);
            }
        }
        sil.id = new_uuid();
        if sil.starts_at < now {
            sil.starts_at = now;
        }
        sil.updated_at = now;
        let compiled = validate(&sil)?;
        if let Some(prev) = prev {
            if prev.state_at(now) != SilenceState::Expired {
                let old = expired(prev, now);
                let old_compiled = next
                    .get(&old.id)
                    .map(|e| e.compiled.clone())
                    .unwrap_or_default();
                next.insert(
                    old.id.clone(),
                    Entry {
                        silence: old,
                        compiled: old_compiled,
                    },
                );
            }
        }
        next.insert(
            sil.id.clone(),
            Entry {
                silence: sil.clone(),
                compiled,
            },
        );
        self.commit(&mut map, next)?;
        Ok(sil.id)
    }

    /// Expires a silence now: an active one ends now, a pending one starts and ends now,
    /// an expired one is left as it is.
    pub fn expire(&self, id: &str, now: SystemTime) -> Result<(), SilenceError> {
        let mut map = self.lock();
        let entry = map.get(id).cloned().ok_or(SilenceError::NotFound)?;
        if entry.silence.state_at(now) == SilenceState::Expired {
            return Ok(());
        }
        let mut next = map.clone();
        next.insert(
            id.to_string(),
            Entry {
                silence: expired(entry.silence, now),
                compiled: entry.compiled,
            },
        );
        self.commit(&mut map, next)
    }

    /// The silence with this id.
    pub fn get(&self, id: &str) -> Option<Silence> {
        self.lock().get(id).map(|e| e.silence.clone())
    }

    /// Every silence that matches `filter` (see [`matches_filter`]), in no particular order.
    pub fn list(&self, filter: &[Matcher]) -> Vec<Silence> {
        self.lock()
            .values()
            .filter(|e| matches_filter(&e.silence, filter))
            .map(|e| e.silence.clone())
            .collect()
    }

    /// The ids, sorted, of the silences active at `now` that match the label set: the
    /// alert is muted when this is not empty.
    pub fn mutes<L: LabelLookup + ?Sized>(&self, labels: &L, now: SystemTime) -> Vec<String> {
        let started = Instant::now();
        let mut ids: Vec<String> = self
            .lock()
            .values()
            .filter(|e| e.silence.state_at(now) == SilenceState::Active)
            .filter(|e| e.compiled.iter().all(|m| m.matches(labels)))
            .map(|e| e.silence.id.clone())
            .collect();
        ids.sort();
        if let Some(m) = &self.metrics {
            m.queries.inc();
            m.query_duration.observe(started.elapsed().as_secs_f64());
        }
        ids
    }

    /// Number of silences per state at `now`, in [`SilenceState::ALL`]'s order.
    pub fn counts(&self, now: SystemTime) -> [usize; 3] {
        let mut out = [0; 3];
        for e in self.lock().values() {
            let i = SilenceState::ALL
                .iter()
                .position(|s| *s == e.silence.state_at(now))
                .unwrap_or(2);
            out[i] += 1;
        }
        out
    }

    /// Removes silences that ended more than the retention before `now`; returns how many.
    pub fn gc(&self, now: SystemTime) -> Result<usize, SilenceError> {
        let mut map = self.lock();
        let keep = |e: &Entry| e.silence.ends_at + self.retention >= now;
        let removed = map.values().filter(|e| !keep(e)).count();
        if removed == 0 {
            return Ok(0);
        }
        let next: HashMap<String, Entry> = map
            .iter()
            .filter(|(_, e)| keep(e))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        self.commit(&mut map, next)?;
        if let Some(m) = &self.metrics {
            m.gc_removed.inc_by(removed as u64);
        }
        Ok(removed)
    }

    /// Garbage-collects every `interval` until `cancel` fires.
    pub async fn maintain(
        self: Arc<Self>,
        interval: Duration,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {
                    let s = self.clone();
                    match tokio::task::spawn_blocking(move || s.gc(SystemTime::now())).await {
                        Ok(Ok(0)) => {}
                        Ok(Ok(n)) => tracing::info!(removed = n, "expired silences garbage-collected"),
                        Ok(Err(e)) => tracing::error!(error = %e, "silence garbage collection failed"),
                        Err(e) => tracing::error!(error = %e, "silence garbage collection panicked"),
                    }
                }
            }
        }
    }
}

fn expired(mut s: Silence, now: SystemTime) -> Silence {
    match s.state_at(now) {
        SilenceState::Active => s.ends_at = now,
        SilenceState::Pending => {
            s.starts_at = now;
            s.ends_at = now;
        }
        SilenceState::Expired => return s,
    }
    s.updated_at = now;
    s
}

fn write_snapshot(path: &Path, entries: &HashMap<String, Entry>) -> std::io::Result<usize> {
    let mut silences: Vec<StoredSilence> = entries
        .values()
        .map(|e| StoredSilence {
            id: e.silence.id.clone(),
            matchers: e.silence.matchers.clone(),
            starts_at: rfc3339(Some(e.silence.starts_at)),
            ends_at: rfc3339(Some(e.silence.ends_at)),
            updated_at: rfc3339(Some(e.silence.updated_at)),
            created_by: e.silence.created_by.clone(),
            comment: e.silence.comment.clone(),
        })
        .collect();
    silences.sort_by(|a, b| a.id.cmp(&b.id));
    let body = serde_json::to_vec_pretty(&SnapshotFile {
        version: SNAPSHOT_VERSION,
        silences,
    })
    .map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(body.len())
}

/// A random (version 4) UUID in its canonical lowercase form.
pub fn new_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// go-openapi's `uuid` format: 8-4-4-4-12 hex digits (any case), or 32 without hyphens.
pub fn is_uuid(s: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|c| c.is_ascii_hexdigit());
    if hex(s, 32) {
        return true;
    }
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && hex(parts[0], 8)
        && hex(parts[1], 4)
        && hex(parts[2], 4)
        && hex(parts[3], 4)
        && hex(parts[4], 12)
}

/// go-openapi's `date-time` output: RFC 3339 in UTC with exactly three fraction digits
/// (`2006-01-02T15:04:05.000Z`), the time truncated to the millisecond.
pub fn format_time(t: SystemTime) -> String {
    let (secs, nanos) = crate::gocompat::unix_parts(Some(t));
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        nanos / 1_000_000
    )
}

/// Parses an RFC 3339 date-time (`2006-01-02T15:04:05[.fraction](Z|±07:00)`, `T`/`Z` in
/// either case) as go-openapi's `date-time` accepts it.
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    let bad = |why: &str| format!("parsing time {}: {why}", go_quote(s));
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Result<i64, String> {
        let part = s
            .get(from..from + len)
            .ok_or_else(|| bad("too short for RFC 3339"))?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad(&format!("{} is not a number", go_quote(part))));
        }
        part.parse::<i64>().map_err(|e| bad(&e.to_string()))
    };
    let sep = |i: usize, c: &[u8]| -> Result<(), String> {
        match b.get(i) {
            Some(x) if c.contains(x) => Ok(()),
            _ => Err(bad(&format!(
                "expected {} at offset {i}",
                c.iter().map(|&x| x as char).collect::<String>()
            ))),
        }
    };
    let y = num(0, 4)?;
    sep(4, b"-")?;
    let mo = num(5, 2)?;
    sep(7, b"-")?;
    let d = num(8, 2)?;
    sep(10, b"Tt")?;
    let hh = num(11, 2)?;
    sep(13, b":")?;
    let mi = num(14, 2)?;
    sep(16, b":")?;
    let ss = num(17, 2)?;
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut j = start;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j == start || j - start > 9 {
            return Err(bad("bad fraction of a second"));
        }
        nanos = format!("{:0<9}", &s[start..j])
            .parse()
            .map_err(|_| bad("bad fraction of a second"))?;
        i = j;
    }
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&c @ (b'+' | b'-')) if i + 6 == b.len() => {
            sep(i + 3, b":")?;
            let off = num(i + 1, 2)? * 3600 + num(i + 4, 2)? * 60;
            if c == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return Err(bad("missing or malformed time zone (want Z or ±hh:mm)")),
    };
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return Err(bad("day out of range"));
    }
    if hh > 23 || mi > 59 || ss > 59 {
        return Err(bad("time out of range"));
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + hh * 3600 + mi * 60 + ss - offset_secs;
    Ok(if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nanos as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs((-secs) as u64) + Duration::from_nanos(nanos as u64)
    })
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// The `alertmanager_silences{state}` gauge, computed at scrape time because states change
/// with the clock. Exported as `vigil_collector_silences{state}`.
#[derive(Debug, Clone)]
pub struct SilenceStateGauge {
    silences: Arc<Silences>,
    desc: prometheus::core::Desc,
}

impl SilenceStateGauge {
    /// The gauge over `silences`; register it with the collector's registry.
    pub fn new(silences: Arc<Silences>) -> SilenceStateGauge {
        SilenceStateGauge {
            silences,
            desc: prometheus::core::Desc::new(
                "vigil_collector_silences".into(),
                "How many silences there are, by state (active, pending, expired).".into(),
                vec!["state".into()],
                HashMap::new(),
            )
            .expect("valid metric description"),
        }
    }
}

impl prometheus::core::Collector for SilenceStateGauge {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let gauge = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(self.desc.fq_name.clone(), self.desc.help.clone()),
            &["state"],
        )
        .expect("valid metric");
        let counts = self.silences.counts(SystemTime::now());
        for (state, n) in SilenceState::ALL.iter().zip(counts) {
            gauge.with_label_values(&[state.as_str()]).set(n as i64);
        }
        prometheus::core::Collector::collect(&gauge)
    }
}

#[cfg(test)]
mod tests;
