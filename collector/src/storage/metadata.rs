//! Metric metadata (TYPE, HELP, UNIT per metric family) behind `/api/v1/metadata`.
//!
//! Entries come from agents (metadata events in their batches, see
//! `vigil_agent::collect::metadata`: one per family and scrape target or host) and from the
//! `metadata` field of remote_write requests. Like Prometheus, which keeps what each target
//! last said, the store keeps one entry per (family, source) — a source is an agent plus the
//! target's `job`/`instance`, or `remote_write` — so a changed HELP replaces the old one, and
//! lists the distinct entries of a family. It is bounded: at most [`MAX_FAMILIES`] families
//! (a new family past that is refused and counted) and [`MAX_SOURCES_PER_FAMILY`] sources per
//! family (the least recently updated is dropped); help texts are cut at [`MAX_TEXT_BYTES`].
//!
//! The store is persisted as `metadata.json` in the data directory: changes are written
//! (to a temporary file, fsynced, renamed) by a flusher thread at most once per
//! [`FLUSH_DELAY`], and once more when the store is dropped. Agent metadata is also in the
//! WAL with its batch, so a crash loses nothing the WAL still holds; a remote_write change in
//! the last second before a crash can be lost, and the sender repeats it (Prometheus sends
//! metadata every minute).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge, Opts, Registry};
use serde::{Deserialize, Serialize};
use vigil_shared::model::{Event, METRIC_NAME};

/// The event kind agents use for metadata.
pub const METADATA_EVENT_KIND: &str = "metric_metadata";
/// Most metric families kept.
pub const MAX_FAMILIES: usize = 100_000;
/// Most sources kept per family.
pub const MAX_SOURCES_PER_FAMILY: usize = 16;
/// Longest help, type or unit text kept (longer ones are cut at a character boundary).
pub const MAX_TEXT_BYTES: usize = 4096;
/// Longest a change waits before it is written to disk.
pub const FLUSH_DELAY: Duration = Duration::from_secs(1);

const FILE_NAME: &str = "metadata.json";
const FILE_VERSION: u32 = 1;

/// The metric types Prometheus reports.
const TYPES: &[&str] = &[
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "summary",
    "info",
    "stateset",
    "unknown",
];

/// One family's metadata as Prometheus's API returns it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricMetadata {
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub unit: String,
}

impl MetricMetadata {
    /// Checks and normalises an entry: the type must be one Prometheus knows (`untyped` and
    /// an empty type become `unknown`), and long texts are cut.
    pub fn new(kind: &str, help: &str, unit: &str) -> Result<Self, MetadataError> {
        let kind = match kind {
            "" | "untyped" => "unknown",
            k if TYPES.contains(&k) => k,
            other => return Err(MetadataError::UnknownType(cut(other, 64))),
        };
        Ok(MetricMetadata {
            kind: kind.to_string(),
            help: cut(help, MAX_TEXT_BYTES),
            unit: cut(unit, MAX_TEXT_BYTES),
        })
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Why a metadata entry or the metadata file was refused.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The type is not one of Prometheus's metric types.
    #[error("unknown metric type {0:?}")]
    UnknownType(String),
    /// The family name is empty.
    #[error("metadata without a metric family name")]
    NoFamily,
    /// The store already holds [`MAX_FAMILIES`] families.
    #[error("metadata store full ({MAX_FAMILIES} families): refused {0:?}")]
    Full(String),
    /// The metadata file could not be read or written.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The metadata file is not what this version writes.
    #[error("{0}: {1}")]
    Corrupt(String, String),
}

/// The store's own metrics.
#[derive(Debug, Clone)]
pub struct MetadataMetrics {
    /// Families held.
    pub families: IntGauge,
    /// Entries refused (store full, unknown type, no family name).
    pub refused: IntCounter,
    /// Writes of `metadata.json`.
    pub persists: IntCounter,
    /// Failed writes of `metadata.json`.
    pub persist_failures: IntCounter,
}

impl MetadataMetrics {
    fn new() -> Self {
        let c = |n: &str, h: &str| IntCounter::with_opts(Opts::new(n, h)).expect("valid counter");
        MetadataMetrics {
            families: IntGauge::with_opts(Opts::new(
                "vigil_collector_metadata_families",
                "Metric families with stored metadata (TYPE/HELP/UNIT).",
            ))
            .expect("valid gauge"),
            refused: c(
                "vigil_collector_metadata_refused_total",
                "Metadata entries refused: store full, unknown type or no family name.",
            ),
            persists: c(
                "vigil_collector_metadata_persists_total",
                "Writes of the metadata file.",
            ),
            persist_failures: c(
                "vigil_collector_metadata_persist_failures_total",
                "Failed writes of the metadata file.",
            ),
        }
    }

    /// Registers the collectors.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.families.clone()))?;
        registry.register(Box::new(self.refused.clone()))?;
        registry.register(Box::new(self.persists.clone()))?;
        registry.register(Box::new(self.persist_failures.clone()))?;
        Ok(())
    }
}

/// Family name to (source, metadata), oldest update first.
type Families = BTreeMap<String, Vec<(String, MetricMetadata)>>;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBody {
    version: u32,
    families: Families,
}

struct State {
    families: Families,
    /// Changed since the last write.
    dirty: bool,
}

struct Inner {
    state: Mutex<State>,
    path: Option<PathBuf>,
    metrics: MetadataMetrics,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// Writes the file when something changed. Errors are logged and counted; the next
    /// change tries again.
    fn persist(&self) {
        let Some(path) = &self.path else { return };
        let body = {
            let mut st = lock(&self.state);
            if !st.dirty {
                return;
            }
            st.dirty = false;
            serde_json::to_vec(&FileBody {
                version: FILE_VERSION,
                families: st.families.clone(),
            })
        };
        let result = body
            .map_err(std::io::Error::other)
            .and_then(|b| write_atomically(path, &b));
        match result {
            Ok(()) => self.metrics.persists.inc(),
            Err(e) => {
                self.metrics.persist_failures.inc();
                lock(&self.state).dirty = true;
                tracing::warn!(path = %path.display(), error = %e, "could not write metric metadata");
            }
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Metric metadata, bounded and persisted. See the module documentation.
pub struct MetadataStore {
    inner: Arc<Inner>,
    /// Wakes the flusher; full means a write is already pending. Dropped with the store,
    /// which makes the flusher write once more and stop.
    flush: Option<SyncSender<()>>,
}

impl std::fmt::Debug for MetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Drop for MetadataStore {
    fn drop(&mut self) {
        // Closing the channel lets the flusher finish; write here too in case it is gone.
        self.flush.take();
        self.inner.persist();
    }
}

/// Waits for a change, lets further changes gather for [`FLUSH_DELAY`], writes, and
/// repeats; writes once more and stops when the store is dropped.
fn flusher(inner: Arc<Inner>, rx: Receiver<()>) {
    while rx.recv().is_ok() {
        let deadline = Instant::now() + FLUSH_DELAY;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        inner.persist();
    }
    inner.persist();
}

impl MetadataStore {
    /// A store that lives only in memory (tests, [`super::Storage`] without a directory).
    pub fn in_memory() -> Self {
        MetadataStore {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    families: Families::new(),
                    dirty: false,
                }),
                path: None,
                metrics: MetadataMetrics::new(),
            }),
            flush: None,
        }
    }

    /// Opens the store persisted in `dir`. A file that cannot be parsed is moved aside to
    /// `metadata.json.corrupt-<ms>` (logged) and the store starts empty; metadata is sent
    /// again by its sources.
    pub fn open(dir: &Path) -> Result<Self, MetadataError> {
        let path = dir.join(FILE_NAME);
        let families = match std::fs::read(&path) {
            Ok(bytes) => match parse_file(&bytes) {
                Ok(f) => f,
                Err(e) => {
                    let aside = path.with_extension(format!(
                        "json.corrupt-{}",
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis())
                    ));
                    tracing::warn!(path = %path.display(), error = %e, aside = %aside.display(),
                        "metric metadata file unreadable; moved aside, starting empty");
                    std::fs::rename(&path, &aside)
                        .map_err(|e| MetadataError::Io(format!("moving {}", path.display()), e))?;
                    Families::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Families::new(),
            Err(e) => return Err(MetadataError::Io(format!("reading {}", path.display()), e)),
        };
        let metrics = MetadataMetrics::new();
        metrics.families.set(families.len() as i64);
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                families,
                dirty: false,
            }),
            path: Some(path),
            metrics,
        });
        let (tx, rx) = sync_channel(1);
        let worker = inner.clone();
        std::thread::Builder::new()
            .name("metadata-flush".into())
            .spawn(move || flusher(worker, rx))
            .map_err(|e| MetadataError::Io("starting the metadata flusher".into(), e))?;
        Ok(MetadataStore {
            inner,
            flush: Some(tx),
        })
    }

    /// The store's metrics.
    pub fn metrics(&self) -> &MetadataMetrics {
        &self.inner.metrics
    }

    /// Records what `source` says about `family`. Returns whether anything changed.
    pub fn record(
        &self,
        source: &str,
        family: &str,
        meta: MetricMetadata,
    ) -> Result<bool, MetadataError> {
        if family.is_empty() {
            self.inner.metrics.refused.inc();
            return Err(MetadataError::NoFamily);
        }
        let changed = {
            let mut st = lock(&self.inner.state);
            let n = st.families.len();
            let entries = match st.families.get_mut(family) {
                Some(e) => e,
                None if n >= MAX_FAMILIES => {
                    drop(st);
                    self.inner.metrics.refused.inc();
                    return Err(MetadataError::Full(cut(family, 128)));
                }
                None => st.families.entry(family.to_string()).or_default(),
            };
            let changed = match entries.iter().position(|(s, _)| s == source) {
                Some(i) if entries[i].1 == meta => false,
                Some(i) => {
                    entries.remove(i);
                    entries.push((source.to_string(), meta));
                    true
                }
                None => {
                    if entries.len() >= MAX_SOURCES_PER_FAMILY {
                        entries.remove(0);
                    }
                    entries.push((source.to_string(), meta));
                    true
                }
            };
            if changed {
                st.dirty = true;
                self.inner.metrics.families.set(st.families.len() as i64);
            }
            changed
        };
        if changed {
            if let Some(tx) = &self.flush {
                match tx.try_send(()) {
                    Ok(()) | Err(TrySendError::Full(())) => {}
                    Err(TrySendError::Disconnected(())) => self.inner.persist(),
                }
            }
        }
        Ok(changed)
    }

    /// Records a metadata event from `agent`. Returns `false` (and does nothing) for events
    /// of other kinds; a malformed metadata event is refused, counted and logged.
    pub fn record_event(&self, agent: &str, e: &Event) -> bool {
        if e.kind != METADATA_EVENT_KIND {
            return false;
        }
        let field = |name: &str| {
            e.fields
                .iter()
                .find(|(n, _)| n == name)
                .map_or("", |(_, v)| v.as_str())
        };
        let mut source = String::from(agent);
        for (n, v) in e.labels.iter().filter(|(n, _)| *n != METRIC_NAME) {
            source.push_str(&format!(",{n}={v}"));
        }
        let result = MetricMetadata::new(field("type"), field("help"), field("unit"))
            .and_then(|m| self.record(&source, e.labels.name(), m));
        if let Err(err) = result {
            if !matches!(err, MetadataError::Full(_) | MetadataError::NoFamily) {
                self.inner.metrics.refused.inc();
            }
            tracing::debug!(agent, error = %err, "metadata event refused");
        }
        true
    }

    /// Prometheus's `/api/v1/metadata`: every family (or only `metric` when given), at most
    /// `limit` families when `limit >= 0` (the first by name), at most `limit_per_metric`
    /// distinct entries each when it is positive. Entries are distinct and sorted.
    pub fn query(
        &self,
        metric: Option<&str>,
        limit: i64,
        limit_per_metric: i64,
    ) -> BTreeMap<String, Vec<MetricMetadata>> {
        let st = lock(&self.inner.state);
        let mut out = BTreeMap::new();
        type Entries<'a> = (&'a String, &'a Vec<(String, MetricMetadata)>);
        let selected: Box<dyn Iterator<Item = Entries<'_>>> = match metric {
            Some(m) => Box::new(st.families.get_key_value(m).into_iter()),
            None => Box::new(st.families.iter()),
        };
        for (name, entries) in selected {
            if limit >= 0 && out.len() as i64 >= limit {
                break;
            }
            let mut metas: Vec<MetricMetadata> = entries.iter().map(|(_, m)| m.clone()).collect();
            metas.sort();
            metas.dedup();
            if limit_per_metric > 0 {
                metas.truncate(usize::try_from(limit_per_metric).unwrap_or(usize::MAX));
            }
            out.insert(name.clone(), metas);
        }
        out
    }
}

fn parse_file(bytes: &[u8]) -> Result<Families, String> {
    let body: FileBody = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if body.version != FILE_VERSION {
        return Err(format!(
            "version {} (this collector reads {FILE_VERSION})",
            body.version
        ));
    }
    let mut families = body.families;
    // Apply today's bounds to a file written under other ones.
    while families.len() > MAX_FAMILIES {
        families.pop_last();
    }
    for entries in families.values_mut() {
        let extra = entries.len().saturating_sub(MAX_SOURCES_PER_FAMILY);
        entries.drain(..extra);
    }
    Ok(families)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_shared::model::Labels;

    fn meta(kind: &str, help: &str) -> MetricMetadata {
        MetricMetadata::new(kind, help, "").unwrap()
    }

    fn event(family: &str, job: &str, kind: &str, help: &str) -> Event {
        Event {
            timestamp_ms: 0,
            kind: METADATA_EVENT_KIND.into(),
            labels: Labels::metric(family, &[("job", job)]),
            fields: vec![
                ("type".into(), kind.into()),
                ("help".into(), help.into()),
                ("unit".into(), String::new()),
            ],
        }
    }

    #[test]
    fn sources_replace_their_own_entry_and_families_list_distinct_entries() {
        let s = MetadataStore::in_memory();
        assert!(s.record_event("a", &event("reqs", "x", "counter", "Requests.")));
        assert!(s.record_event("b", &event("reqs", "x", "counter", "Requests.")));
        assert!(s.record_event("a", &event("reqs", "y", "counter", "Old help.")));
        assert!(s.record_event("a", &event("reqs", "y", "counter", "New help.")));
        assert!(!s.record_event(
            "a",
            &Event {
                kind: "anomaly".into(),
                ..event("reqs", "x", "counter", "")
            }
        ));
        let all = s.query(None, -1, -1);
        assert_eq!(
            all["reqs"],
            vec![meta("counter", "New help."), meta("counter", "Requests.")]
        );
        assert_eq!(s.query(None, -1, 1)["reqs"].len(), 1);
        assert!(s.query(None, 0, -1).is_empty());
        assert!(s.query(Some("nope"), -1, -1).is_empty());
    }

    #[test]
    fn limit_takes_families_in_name_order_and_metric_filters() {
        let s = MetadataStore::in_memory();
        for f in ["c", "a", "b"] {
            s.record("remote_write", f, meta("gauge", f)).unwrap();
        }
        let two: Vec<String> = s.query(None, 2, -1).into_keys().collect();
        assert_eq!(two, vec!["a", "b"]);
        let one = s.query(Some("c"), -1, -1);
        assert_eq!(one.len(), 1);
        assert_eq!(one["c"][0].help, "c");
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        let err = MetricMetadata::new("histo", "", "").unwrap_err();
        assert_eq!(err.to_string(), "unknown metric type \"histo\"");
        assert_eq!(
            MetricMetadata::new("untyped", "", "").unwrap().kind,
            "unknown"
        );
        let s = MetadataStore::in_memory();
        assert!(matches!(
            s.record("x", "", meta("gauge", "")),
            Err(MetadataError::NoFamily)
        ));
        assert!(s.record_event("a", &event("m", "x", "bogus", "")));
        assert!(s.query(None, -1, -1).is_empty());
        assert_eq!(s.metrics().refused.get(), 2);
        let long = "é".repeat(MAX_TEXT_BYTES);
        assert!(MetricMetadata::new("gauge", &long, "").unwrap().help.len() <= MAX_TEXT_BYTES);
    }

    #[test]
    fn sources_per_family_are_bounded() {
        let s = MetadataStore::in_memory();
        for i in 0..MAX_SOURCES_PER_FAMILY + 3 {
            s.record(&format!("src{i}"), "m", meta("gauge", &format!("h{i}")))
                .unwrap();
        }
        let got = &s.query(None, -1, -1)["m"];
        assert_eq!(got.len(), MAX_SOURCES_PER_FAMILY);
        assert!(!got.iter().any(|m| m.help == "h0"), "oldest source dropped");
    }

    #[test]
    fn store_survives_a_restart_and_a_corrupt_file_is_moved_aside() {
        let dir = crate::storage::testutil::TempDir::new("metadata");
        {
            let s = MetadataStore::open(dir.path()).unwrap();
            s.record("remote_write", "up", meta("gauge", "Target up."))
                .unwrap();
        }
        let s = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(
            s.query(None, -1, -1)["up"],
            vec![meta("gauge", "Target up.")]
        );
        assert_eq!(s.metrics().families.get(), 1);
        drop(s);
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        let s = MetadataStore::open(dir.path()).unwrap();
        assert!(s.query(None, -1, -1).is_empty());
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().contains("corrupt"));
        assert!(aside, "the unreadable file is kept aside");
    }
}
