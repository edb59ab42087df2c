//! The agent's durable, bounded batch buffer in sled. Every collected batch is written here
//! (and flushed) before it is shipped, and leaves only when the collector acknowledges it.
//! The buffer is bounded in bytes: when a new batch does not fit, the oldest batches are
//! dropped and counted. A database sled cannot open is moved aside and replaced by a fresh
//! one with a new stream id, so the agent keeps running and the collector's duplicate
//! detection is never confused by reused sequence numbers.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// sled's page cache; its default of 1 GB is far beyond what an edge agent may use.
const CACHE_BYTES: u64 = 1024 * 1024;
const META_TREE: &str = "meta";
const STREAM_ID_KEY: &[u8] = b"stream_id";
const NEXT_SEQ_KEY: &[u8] = b"next_seq";
const DROPPED_KEY: &[u8] = b"dropped_batches";
/// Bytes of per-entry header: priority flag and creation time.
const ENTRY_HEADER: usize = 9;

/// Errors from the buffer.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// sled reported an I/O or consistency error.
    #[error("buffer database: {0}")]
    Sled(#[from] sled::Error),
    /// A transaction could not commit.
    #[error("buffer transaction: {0}")]
    Transaction(String),
    /// The corrupt database could not be moved aside.
    #[error("moving corrupt buffer {path} aside: {source}")]
    MoveAside {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A single batch is larger than the whole buffer.
    /// Another process (or a just-dropped handle's flusher thread) still holds the lock.
    #[error("buffer {path} is locked by another process: {error}")]
    Locked { path: PathBuf, error: String },
    #[error("batch of {size} bytes exceeds the buffer limit of {limit} bytes")]
    BatchTooLarge { size: u64, limit: u64 },
}

/// One buffered batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferedBatch {
    pub seq: u64,
    pub priority: bool,
    pub created_ms: i64,
    /// The compressed batch exactly as it goes on the wire.
    pub payload: Vec<u8>,
}

/// Depth and loss figures for status and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BufferStats {
    pub batches: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub oldest_created_ms: Option<i64>,
    pub dropped_batches: u64,
    pub corruptions: u64,
    pub stream_id: u64,
}

/// What happened when the buffer was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenOutcome {
    /// The existing database opened cleanly.
    Opened,
    /// A new database was created.
    Created,
    /// The existing database was corrupt and moved to `moved_to`; a fresh one replaced it.
    RecoveredFromCorruption { moved_to: PathBuf, error: String },
}

/// The durable batch buffer.
#[derive(Debug)]
pub struct Buffer {
    db: sled::Db,
    batches: sled::Tree,
    meta: sled::Tree,
    max_bytes: u64,
    stream_id: u64,
    /// Serialises pushes so sequence allocation and eviction stay consistent.
    push_lock: Mutex<()>,
    bytes: AtomicU64,
    count: AtomicU64,
    dropped: AtomicU64,
    corruptions: AtomicU64,
}

fn u64_of(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_be_bytes)
}

fn encode_entry(priority: bool, created_ms: i64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(ENTRY_HEADER + payload.len());
    v.push(priority as u8);
    v.extend_from_slice(&created_ms.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn decode_entry(seq: u64, v: &[u8]) -> Option<BufferedBatch> {
    if v.len() < ENTRY_HEADER || v[0] > 1 {
        return None;
    }
    Some(BufferedBatch {
        seq,
        priority: v[0] == 1,
        created_ms: i64::from_be_bytes(v[1..9].try_into().ok()?),
        payload: v[ENTRY_HEADER..].to_vec(),
    })
}

/// Why [`open_db`] failed: the database is locked (never a reason to move it aside), or
/// it could not be read.
enum OpenDbError {
    Locked(String),
    Unreadable(String),
}

/// How long [`open_db`] waits for a lock held by a handle that was just dropped: sled's
/// flusher thread releases it within milliseconds of the drop.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn open_db(path: &Path) -> Result<sled::Db, OpenDbError> {
    let cfg = sled::Config::new()
        .path(path)
        .cache_capacity(CACHE_BYTES)
        .flush_every_ms(Some(1000));
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        // sled 0.34 can panic instead of returning an error on some corrupt files.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cfg.open())) {
            Ok(Ok(db)) => return Ok(db),
            Ok(Err(sled::Error::Io(e))) if is_lock_error(&e) => {
                if std::time::Instant::now() >= deadline {
                    return Err(OpenDbError::Locked(e.to_string()));
                }
                // Start-up only, before any runtime work depends on this thread.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Ok(Err(e)) => return Err(OpenDbError::Unreadable(e.to_string())),
            Err(_) => {
                return Err(OpenDbError::Unreadable(
                    "sled panicked while opening the database".into(),
                ))
            }
        }
    }
}

/// Whether sled refused to open because another handle holds the database's file lock.
/// sled 0.34.7 reports a failed `try_lock_exclusive` as an `ErrorKind::Other` error whose
/// message starts with "could not acquire lock", not as `WouldBlock`.
fn is_lock_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
        || e.to_string().starts_with("could not acquire lock")
}

impl Buffer {
    /// Opens (or creates) the buffer at `path`. A corrupt database is renamed to
    /// `<path>.corrupt-<unix_ms>` and replaced; the outcome says so.
    pub fn open(
        path: &Path,
        max_bytes: u64,
        now_ms: i64,
    ) -> Result<(Buffer, OpenOutcome), BufferError> {
        let existed = path.exists();
        let (db, mut outcome) = match open_db(path) {
            Ok(db) => (
                db,
                if existed {
                    OpenOutcome::Opened
                } else {
                    OpenOutcome::Created
                },
            ),
            Err(OpenDbError::Locked(error)) => {
                return Err(BufferError::Locked {
                    path: path.to_path_buf(),
                    error,
                })
            }
            Err(OpenDbError::Unreadable(error)) => {
                let moved_to = PathBuf::from(format!("{}.corrupt-{now_ms}", path.display()));
                std::fs::rename(path, &moved_to).map_err(|source| BufferError::MoveAside {
                    path: path.to_path_buf(),
                    source,
                })?;
                let db = open_db(path).map_err(|e| match e {
                    OpenDbError::Locked(e) | OpenDbError::Unreadable(e) => {
                        BufferError::Transaction(e)
                    }
                })?;
                (db, OpenOutcome::RecoveredFromCorruption { moved_to, error })
            }
        };
        let batches = db.open_tree("batches")?;
        let meta = db.open_tree(META_TREE)?;
        let stream_id = match meta.get(STREAM_ID_KEY)?.as_deref().and_then(u64_of) {
            Some(id) => id,
            None => {
                let id = rand::random::<u64>() >> 1;
                meta.insert(STREAM_ID_KEY, &id.to_be_bytes())?;
                meta.insert(NEXT_SEQ_KEY, &0u64.to_be_bytes())?;
                db.flush()?;
                if outcome == OpenOutcome::Opened {
                    outcome = OpenOutcome::Created;
                }
                id
            }
        };
        let mut bytes = 0u64;
        let mut count = 0u64;
        let mut bad = Vec::new();
        for item in batches.iter() {
            let (k, v) = item?;
            match u64_of(&k).and_then(|seq| decode_entry(seq, &v)) {
                Some(_) => {
                    bytes += v.len() as u64;
                    count += 1;
                }
                None => bad.push(k),
            }
        }
        let corruptions = bad.len() as u64
            + matches!(outcome, OpenOutcome::RecoveredFromCorruption { .. }) as u64;
        for k in bad {
            batches.remove(k)?;
        }
        let dropped = meta
            .get(DROPPED_KEY)?
            .as_deref()
            .and_then(u64_of)
            .unwrap_or(0);
        let buffer = Buffer {
            db,
            batches,
            meta,
            max_bytes,
            stream_id,
            push_lock: Mutex::new(()),
            bytes: AtomicU64::new(bytes),
            count: AtomicU64::new(count),
            dropped: AtomicU64::new(dropped),
            corruptions: AtomicU64::new(corruptions),
        };
        Ok((buffer, outcome))
    }

    /// The stream id of this buffer incarnation.
    pub fn stream_id(&self) -> u64 {
        self.stream_id
    }

    /// Appends a batch durably and returns its sequence number plus how many old batches
    /// were evicted to make room.
    pub fn push(
        &self,
        priority: bool,
        created_ms: i64,
        payload: &[u8],
    ) -> Result<(u64, u64), BufferError> {
        let entry = encode_entry(priority, created_ms, payload);
        let size = entry.len() as u64;
        if size > self.max_bytes {
            return Err(BufferError::BatchTooLarge {
                size,
                limit: self.max_bytes,
            });
        }
        let _guard = self.push_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut evicted = 0;
        while self.bytes.load(Ordering::SeqCst) + size > self.max_bytes {
            let Some((_, v)) = self.batches.pop_min()? else {
                break;
            };
            self.bytes.fetch_sub(v.len() as u64, Ordering::SeqCst);
            self.count.fetch_sub(1, Ordering::SeqCst);
            evicted += 1;
        }
        if evicted > 0 {
            let total = self.dropped.fetch_add(evicted, Ordering::SeqCst) + evicted;
            self.meta.insert(DROPPED_KEY, &total.to_be_bytes())?;
        }
        let seq = self
            .meta
            .get(NEXT_SEQ_KEY)?
            .as_deref()
            .and_then(u64_of)
            .unwrap_or(0);
        // The sequence counter and the batch are committed together: after a crash either
        // both are there or neither is, so a sequence number is never reused.
        use sled::Transactional;
        (&self.batches, &self.meta)
            .transaction(|(b, m)| {
                b.insert(&seq.to_be_bytes(), entry.as_slice())?;
                m.insert(NEXT_SEQ_KEY, &(seq + 1).to_be_bytes())?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| BufferError::Transaction(format!("{e:?}")))?;
        self.db.flush()?;
        self.bytes.fetch_add(size, Ordering::SeqCst);
        self.count.fetch_add(1, Ordering::SeqCst);
        Ok((seq, evicted))
    }

    /// Removes an acknowledged batch. Not flushed: if the removal is lost in a crash, the
    /// batch is resent and the collector answers it as a duplicate.
    pub fn ack(&self, seq: u64) -> Result<bool, BufferError> {
        match self.batches.remove(seq.to_be_bytes())? {
            Some(v) => {
                self.bytes.fetch_sub(v.len() as u64, Ordering::SeqCst);
                self.count.fetch_sub(1, Ordering::SeqCst);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Reads one batch, if still buffered.
    pub fn get(&self, seq: u64) -> Result<Option<BufferedBatch>, BufferError> {
        Ok(self
            .batches
            .get(seq.to_be_bytes())?
            .and_then(|v| decode_entry(seq, &v)))
    }

    /// Up to `limit` buffered sequence numbers at or after `from`, oldest first.
    pub fn seqs_from(&self, from: u64, limit: usize) -> Result<Vec<u64>, BufferError> {
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self
            .batches
            .range((Bound::Included(from.to_be_bytes()), Bound::Unbounded))
        {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item?;
            if let Some(seq) = u64_of(&k) {
                out.push(seq);
            }
        }
        Ok(out)
    }

    /// Current depth and loss figures.
    pub fn stats(&self) -> BufferStats {
        let oldest_created_ms = self
            .batches
            .first()
            .ok()
            .flatten()
            .and_then(|(k, v)| decode_entry(u64_of(&k)?, &v))
            .map(|b| b.created_ms);
        BufferStats {
            batches: self.count.load(Ordering::SeqCst),
            bytes: self.bytes.load(Ordering::SeqCst),
            max_bytes: self.max_bytes,
            oldest_created_ms,
            dropped_batches: self.dropped.load(Ordering::SeqCst),
            corruptions: self.corruptions.load(Ordering::SeqCst),
            stream_id: self.stream_id,
        }
    }

    /// Flushes everything to disk (at shutdown).
    pub fn flush(&self) -> Result<(), BufferError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("vigil-buffer-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&d).unwrap();
        d.join("buffer")
    }

    #[test]
    fn batches_survive_reopen_and_sequences_are_never_reused() {
        let p = tmp();
        let (b, outcome) = Buffer::open(&p, 1 << 20, 0).unwrap();
        assert_eq!(outcome, OpenOutcome::Created);
        let stream = b.stream_id();
        assert_eq!(b.push(false, 1, b"one").unwrap(), (0, 0));
        assert_eq!(b.push(true, 2, b"two").unwrap(), (1, 0));
        assert!(b.ack(1).unwrap());
        drop(b);
        let (b, outcome) = Buffer::open(&p, 1 << 20, 0).unwrap();
        assert_eq!(outcome, OpenOutcome::Opened);
        assert_eq!(b.stream_id(), stream);
        assert_eq!(b.seqs_from(0, 10).unwrap(), vec![0]);
        assert_eq!(b.get(0).unwrap().unwrap().payload, b"one");
        assert_eq!(
            b.push(false, 3, b"three").unwrap().0,
            2,
            "sequence 1 must not be reused"
        );
        assert_eq!(b.stats().batches, 2);
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_and_counts_it() {
        let p = tmp();
        let (b, _) = Buffer::open(&p, 100, 0).unwrap();
        for i in 0..10 {
            b.push(false, i, &[0u8; 21]).unwrap(); // 30 bytes each with header
        }
        let s = b.stats();
        assert_eq!(s.batches, 3);
        assert_eq!(s.dropped_batches, 7);
        assert!(s.bytes <= 100);
        assert_eq!(b.seqs_from(0, 10).unwrap(), vec![7, 8, 9]);
        assert_eq!(s.oldest_created_ms, Some(7));
        assert!(matches!(
            b.push(false, 0, &[0u8; 200]),
            Err(BufferError::BatchTooLarge { .. })
        ));
    }

    #[test]
    fn a_corrupt_database_is_moved_aside_and_a_new_stream_begins() {
        let p = tmp();
        let (b, _) = Buffer::open(&p, 1 << 20, 0).unwrap();
        let old_stream = b.stream_id();
        b.push(false, 1, b"x").unwrap();
        drop(b);
        // Overwrite sled's files with garbage.
        for entry in std::fs::read_dir(&p).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::write(&path, vec![0xA5u8; 4096]).unwrap();
            }
        }
        let (b, outcome) = Buffer::open(&p, 1 << 20, 42).unwrap();
        let OpenOutcome::RecoveredFromCorruption { moved_to, .. } = outcome else {
            panic!("expected recovery, got {outcome:?}")
        };
        assert!(moved_to.exists());
        assert_ne!(b.stream_id(), old_stream);
        assert_eq!(b.stats().corruptions, 1);
        assert_eq!(b.push(false, 1, b"y").unwrap().0, 0);
    }
}
