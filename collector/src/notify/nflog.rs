//! The notification log (Alertmanager's nflog): per (group key, receiver, integration) the
//! firing and resolved alert fingerprints last delivered and when. The dispatcher's dedup
//! stage reads it to decide whether a flush has news or `repeat_interval` has passed.
//!
//! It survives restarts: [`Nflog::open`] loads `nflog.json` from the collector's data dir,
//! and every change is written back as a whole snapshot — temp file, `fsync`, `rename`,
//! `fsync` of the directory — so a crash leaves either the old or the new log, never a torn
//! one. Snapshot writes run on a blocking thread fed through a `watch` channel (one slot,
//! latest snapshot wins), so the dispatcher never waits on the disk and a slow disk
//! coalesces writes instead of queueing them. Only successful deliveries are logged, so a
//! notification that failed, or was still in flight at a crash, is sent again after a
//! restart, while an unchanged group already notified is not re-sent before
//! `repeat_interval`. Entries older than the retention (default 120h, as Alertmanager's
//! `--data.retention`) are dropped at load.

use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// (group key, receiver name, integration such as `slack[0]`)
pub type NflogKey = (String, String, String);

/// What the log remembers of the last successful notification of one integration for one
/// group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NflogEntry {
    /// Fingerprints of the firing alerts notified.
    pub firing: BTreeSet<u64>,
    /// Fingerprints of the resolved alerts notified.
    pub resolved: BTreeSet<u64>,
    /// When.
    pub at: SystemTime,
}

/// The log file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NflogError {
    /// I/O on the log file.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a notification log.
    #[error("{path} is not a valid notification log: {source}")]
    Corrupt {
        /// The file.
        path: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    group_key: String,
    receiver: String,
    integration: String,
    firing: Vec<u64>,
    resolved: Vec<u64>,
    at_unix_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLog {
    version: u32,
    entries: Vec<FileEntry>,
}

const FILE_VERSION: u32 = 1;

/// The log file's name in the data dir.
pub const FILE_NAME: &str = "nflog.json";

/// The notification log, in memory, optionally persisted.
#[derive(Debug)]
pub struct Nflog {
    entries: HashMap<NflogKey, NflogEntry>,
    /// Where snapshots go; `None` keeps the log in memory only.
    snapshots: Option<watch::Sender<Option<Vec<u8>>>>,
    /// The snapshot writer task.
    writer: Option<tokio::task::JoinHandle<()>>,
    path: Option<PathBuf>,
}

impl Default for Nflog {
    fn default() -> Self {
        Nflog::in_memory()
    }
}

impl Nflog {
    /// A log that is not persisted.
    pub fn in_memory() -> Nflog {
        Nflog {
            entries: HashMap::new(),
            snapshots: None,
            writer: None,
            path: None,
        }
    }

    /// Loads `dir/nflog.json` (a missing file is an empty log), drops entries older than
    /// `retention`, and starts the snapshot writer on the current tokio runtime.
    pub fn open(dir: &Path, retention: Duration) -> Result<Nflog, NflogError> {
        Nflog::open_with(dir, retention, None)
    }

    /// [`Nflog::open`], counting failed snapshot writes in `write_failures`.
    pub fn open_with(
        dir: &Path,
        retention: Duration,
        write_failures: Option<prometheus::IntCounter>,
    ) -> Result<Nflog, NflogError> {
        let path = dir.join(FILE_NAME);
        let entries = load(&path, retention)?;
        let (tx, rx) = watch::channel(None);
        let writer = tokio::spawn(write_loop(path.clone(), rx, write_failures));
        Ok(Nflog {
            entries,
            snapshots: Some(tx),
            writer: Some(writer),
            path: Some(path),
        })
    }

    /// The entry for a key.
    pub fn get(&self, key: &NflogKey) -> Option<&NflogEntry> {
        self.entries.get(key)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records a successful notification. Call [`Nflog::persist`] after a batch of changes.
    pub fn insert(&mut self, key: NflogKey, entry: NflogEntry) {
        self.entries.insert(key, entry);
    }

    /// Forgets every entry of a group key (the group went away).
    pub fn remove_group(&mut self, group_key: &str) {
        self.entries.retain(|(k, _, _), _| k != group_key);
    }

    /// Hands the current state to the snapshot writer (no-op when in memory).
    /// Returns the snapshot's size in bytes (0 when in memory).
    pub fn persist(&self) -> usize {
        match &self.snapshots {
            Some(tx) => {
                let bytes = self.encode();
                let n = bytes.len();
                tx.send_replace(Some(bytes));
                n
            }
            None => 0,
        }
    }

    /// Hands the final state to the snapshot writer and waits until it is on disk
    /// (at shutdown).
    pub async fn close(mut self) {
        self.persist();
        // Dropping the sender ends the writer after it has written the last snapshot.
        self.snapshots = None;
        if let Some(w) = self.writer.take() {
            if let Err(e) = w.await {
                tracing::error!(error = %e, "notification log writer failed");
            }
        }
    }

    /// Writes the current state synchronously, bypassing the snapshot writer; only for a log
    /// nothing else persists concurrently (benchmarks, tests).
    pub fn persist_now(&self) -> Result<(), NflogError> {
        match &self.path {
            Some(p) => write_atomic(p, &self.encode()),
            None => Ok(()),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut entries: Vec<FileEntry> = self
            .entries
            .iter()
            .map(|((g, r, i), e)| FileEntry {
                group_key: g.clone(),
                receiver: r.clone(),
                integration: i.clone(),
                firing: e.firing.iter().copied().collect(),
                resolved: e.resolved.iter().copied().collect(),
                at_unix_ms: e
                    .at
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
            })
            .collect();
        entries.sort_by(|a, b| {
            (&a.group_key, &a.receiver, &a.integration).cmp(&(
                &b.group_key,
                &b.receiver,
                &b.integration,
            ))
        });
        serde_json::to_vec(&FileLog {
            version: FILE_VERSION,
            entries,
        })
        .unwrap_or_default()
    }
}

fn load(path: &Path, retention: Duration) -> Result<HashMap<NflogKey, NflogEntry>, NflogError> {
    let shown = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(source) => {
            return Err(NflogError::Io {
                op: "reading",
                path: shown,
                source,
            })
        }
    };
    let file: FileLog = serde_json::from_slice(&bytes).map_err(|source| NflogError::Corrupt {
        path: shown.clone(),
        source,
    })?;
    let cutoff = SystemTime::now()
        .checked_sub(retention)
        .unwrap_or(UNIX_EPOCH);
    Ok(file
        .entries
        .into_iter()
        .map(|e| {
            (
                (e.group_key, e.receiver, e.integration),
                NflogEntry {
                    firing: e.firing.into_iter().collect(),
                    resolved: e.resolved.into_iter().collect(),
                    at: UNIX_EPOCH + Duration::from_millis(e.at_unix_ms),
                },
            )
        })
        .filter(|(_, e)| e.at >= cutoff)
        .collect())
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new content: a temp file
/// beside it, fsync'd, renamed over, then the directory fsync'd.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NflogError> {
    let io = |op: &'static str, p: &Path| {
        let p = p.display().to_string();
        move |source| NflogError::Io {
            op,
            path: p,
            source,
        }
    };
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io("creating", &tmp))?;
    f.write_all(bytes).map_err(io("writing", &tmp))?;
    f.sync_all().map_err(io("syncing", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io("renaming to", path))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing directory", dir))?;
    }
    Ok(())
}

async fn write_loop(
    path: PathBuf,
    mut rx: watch::Receiver<Option<Vec<u8>>>,
    failures: Option<prometheus::IntCounter>,
) {
    while rx.changed().await.is_ok() {
        let Some(bytes) = rx.borrow_and_update().clone() else {
            continue;
        };
        let p = path.clone();
        match tokio::task::spawn_blocking(move || write_atomic(&p, &bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failures.iter().for_each(|c| c.inc());
                tracing::error!(error = %e, "writing the notification log failed");
            }
            Err(e) => {
                failures.iter().for_each(|c| c.inc());
                tracing::error!(error = %e, "notification log writer panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(g: &str) -> NflogKey {
        (g.into(), "ops".into(), "webhook[0]".into())
    }

    #[tokio::test]
    async fn survives_reopen_and_drops_expired_entries() {
        let dir = std::env::temp_dir().join(format!("vigil-nflog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = Nflog::open(&dir, Duration::from_secs(3600)).unwrap();
        assert!(log.is_empty());
        let at = SystemTime::now();
        let fresh = NflogEntry {
            firing: [u64::MAX, 1].into_iter().collect(),
            resolved: [7].into_iter().collect(),
            at,
        };
        log.insert(key("a"), fresh.clone());
        log.insert(
            key("old"),
            NflogEntry {
                firing: [2].into_iter().collect(),
                resolved: BTreeSet::new(),
                at: at - Duration::from_secs(7200),
            },
        );
        log.persist_now().unwrap();
        let back = Nflog::open(&dir, Duration::from_secs(3600)).unwrap();
        assert_eq!(back.len(), 1, "the 2h-old entry is past the 1h retention");
        let got = back.get(&key("a")).unwrap();
        assert_eq!(
            got.firing, fresh.firing,
            "u64 fingerprints round-trip exactly"
        );
        assert_eq!(got.resolved, fresh.resolved);
        let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis();
        assert_eq!(ms(got.at), ms(at));
        assert!(!dir.join("nflog.json.tmp").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn background_writer_persists_the_latest_snapshot() {
        let dir = std::env::temp_dir().join(format!("vigil-nflog-bg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = Nflog::open(&dir, Duration::from_secs(3600)).unwrap();
        for i in 0..20 {
            log.insert(
                key(&format!("g{i}")),
                NflogEntry {
                    firing: [i].into_iter().collect(),
                    resolved: BTreeSet::new(),
                    at: SystemTime::now(),
                },
            );
            log.persist();
        }
        log.remove_group("g0");
        log.persist();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(l) = Nflog::open(&dir, Duration::from_secs(3600)) {
                if l.len() == 19 && l.get(&key("g0")).is_none() {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "snapshot never landed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("vigil-nflog-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(FILE_NAME), b"{not json").unwrap();
        let e = load(&dir.join(FILE_NAME), Duration::from_secs(60)).expect_err("corrupt");
        assert!(e.to_string().contains("nflog.json"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
