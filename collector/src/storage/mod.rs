//! Durable time-series storage: a checksummed, segmented WAL with group commit; the
//! in-memory head of Gorilla-compressed chunks with a postings index; immutable on-disk
//! blocks; checkpoints that let old WAL segments be deleted; retention; and exactly-once
//! bookkeeping of agent batches.
//!
//! Writes go through one writer thread fed by a bounded queue: it takes everything queued,
//! appends one WAL record per request, `fdatasync`s once for the whole group (on a helper
//! thread while it applies the group to the head) and then answers every caller, so an `Ok`
//! means durable. When the queue is full, `append_*` callers wait: backpressure reaches the
//! ingest path. An agent batch's record holds the agent, stream, sequence and the payload
//! bytes exactly as received, so the dedupe state and the data commit atomically and replay
//! rebuilds both.
//!
//! Head chunks are cut at block boundaries. Head data older than the compaction cutoff (wall
//! clock minus half a block duration, aligned to the block duration) is moved into block
//! files, and finished windows of small blocks are merged (12 block durations, a day by
//! default). Each compaction is followed by a checkpoint, the commit point that lists the
//! live blocks. Retention drops head chunks and whole blocks older than the retention period,
//! and reads never return samples older than it.
//!
//! Layout of the data directory: `LOCK` (held while open), `wal/<segment>` (WAL segments),
//! `checkpoint.<segment>` (snapshot covering all segments before `<segment>`),
//! `blocks/<n>.blk` (blocks).

pub mod chunk;
pub mod event_series;
pub mod matcher;
pub mod metadata;
pub mod metrics;

mod block;
mod checkpoint;
mod compact;
mod dense;
mod encoding;
mod head;
mod intern;
mod payload;
mod postings;
mod replay;
mod streams;
#[cfg(test)]
pub(crate) mod testutil;
mod wal;
mod writer;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use vigil_shared::codec::encode_batch;
use vigil_shared::model::{Batch, Event, Labels, Point, Series};
use vigil_shared::seq::SeenSequences;

pub use head::{AppendStats, HeadStatus};
pub use matcher::{matches_all, MatchOp, Matcher, MatcherError};
pub use metrics::StorageMetrics;
pub use postings::PostingsStats;

use crate::clock::now_ms;
use block::Block;
use checkpoint::StreamRecord;
use head::Head;
use payload::ParsedBatch;
use streams::{Delivery, StreamKey, StreamState};
use wal::{Wal, WalRecord};
use writer::{AppendOp, AppendReply, Reply, Request, WalStats, Writer, MAX_PAYLOAD_BYTES};

/// Settings of the store. Construct with `..Default::default()` for the tuning knobs.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// How long samples are kept. Default 15 days; zero keeps them forever.
    pub retention: Duration,
    /// Most series the head may hold; a new series beyond it is rejected. 0 = unlimited.
    pub max_series: usize,
    /// Most head series one tenant may own (0 = unlimited); see [`StorageOptions::tenant_limit`].
    pub max_series_per_tenant: usize,
    /// Per-tenant overrides of `max_series_per_tenant` (0 = unlimited for that tenant).
    pub tenant_max_series: HashMap<String, usize>,
    /// Tenant of each agent (by certificate name); agents not listed belong to
    /// [`DEFAULT_TENANT`].
    pub agent_tenants: HashMap<String, String>,
    /// How far behind a series' newest sample an older sample is still accepted.
    /// Default 0: out-of-order samples are rejected.
    pub out_of_order_window: Duration,
    /// A WAL segment is closed once it reaches this size. Default 64 MiB.
    pub wal_segment_bytes: u64,
    /// A checkpoint is written once this much WAL has accumulated since the last one.
    /// Default 256 MiB.
    pub checkpoint_wal_bytes: u64,
    /// Time span of one on-disk block; head data is compacted into blocks once it is older
    /// than half this much past a block boundary. Default 2 h (as in Prometheus).
    pub block_duration: Duration,
    /// A checkpoint is written at least this often when anything was written. Default 30 min.
    pub checkpoint_interval: Duration,
    /// Events kept for `recent_events`. Default 10 000.
    pub max_events: usize,
    /// Append requests that may wait for the writer before callers block. Default 4096.
    pub queue_depth: usize,
    /// Payload bytes that may be queued or in the writer at once; further appends wait.
    /// Default 256 MiB.
    pub queue_bytes: usize,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            retention: Duration::from_secs(15 * 24 * 3600),
            max_series: 0,
            max_series_per_tenant: 0,
            tenant_max_series: HashMap::new(),
            agent_tenants: HashMap::new(),
            out_of_order_window: Duration::ZERO,
            wal_segment_bytes: 64 << 20,
            checkpoint_wal_bytes: 256 << 20,
            block_duration: Duration::from_secs(2 * 3600),
            checkpoint_interval: Duration::from_secs(30 * 60),
            max_events: 10_000,
            queue_depth: 4096,
            queue_bytes: 256 << 20,
        }
    }
}

/// Tenant of data that names none (remote_write without `X-Scope-OrgID`, agents not mapped,
/// recording rules).
pub const DEFAULT_TENANT: &str = "default";

impl StorageOptions {
    /// The active-series limit of `tenant` (0 = unlimited).
    pub fn tenant_limit(&self, tenant: &str) -> usize {
        self.tenant_max_series
            .get(tenant)
            .copied()
            .unwrap_or(self.max_series_per_tenant)
    }

    /// The tenant of `agent`.
    pub fn agent_tenant(&self, agent: &str) -> &str {
        self.agent_tenants
            .get(agent)
            .map_or(DEFAULT_TENANT, String::as_str)
    }
}

/// Errors from the storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation in the data directory failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The payload or series could not be decoded or are invalid; nothing was written.
    #[error("malformed input: {0}")]
    Malformed(String),
    /// Storing the data would create more active series than `max_series` allows.
    #[error("active series limit of {limit} reached: new series of metric {metric:?} rejected")]
    SeriesLimit { metric: String, limit: usize },
    /// Storing the data would give a tenant more active series than its limit allows.
    #[error(
        "per-tenant series limit of {limit} reached for tenant {tenant:?}: new series of metric {metric:?} rejected ({rejected} new series refused)"
    )]
    TenantSeriesLimit {
        tenant: String,
        metric: String,
        limit: usize,
        rejected: usize,
    },
    /// One append is larger than a WAL record may be.
    #[error("append of {0} bytes exceeds the WAL record limit")]
    TooLarge(usize),
    /// The storage has been closed.
    #[error("storage is closed")]
    Closed,
    /// An earlier fsync failed, so what is durable is unknown; the process must restart.
    #[error("storage failed after an unrecoverable write error: {0}")]
    Failed(String),
    /// Another process (or another `Storage` in this one) has the data directory open.
    #[error("data directory {0} is in use by another storage instance")]
    Locked(PathBuf),
    /// Stored data could not be decoded.
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: String, detail: String },
}

impl StorageError {
    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result of [`Storage::append_agent_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The batch is durable; `samples` of its samples were stored (the rest were duplicates,
    /// out of order or too old, and are counted in the metrics).
    Stored { samples: usize },
    /// This (agent, stream, seq) was stored before; nothing was written.
    Duplicate,
}

/// Delivery bookkeeping of one agent stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStream {
    pub agent: String,
    pub stream_id: u64,
    /// Highest sequence stored.
    pub highest_seq: u64,
    /// Every sequence below this has been stored.
    pub contiguous_up_to: u64,
    /// Wall-clock time of the last stored batch, Unix ms.
    pub last_append_ms: i64,
    /// Batches stored.
    pub batches: u64,
    /// Samples stored from those batches.
    pub samples: u64,
}

/// A point-in-time summary of the storage.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StorageStats {
    /// Series in the head.
    pub series: usize,
    /// Samples held in the head.
    pub samples_in_head: u64,
    /// Bytes of WAL on disk.
    pub wal_bytes: u64,
    /// WAL segment files on disk.
    pub wal_segments: usize,
    /// Samples stored since start.
    pub samples_appended: u64,
    /// Samples rejected as out of order since start.
    pub samples_out_of_order: u64,
    /// WAL fsyncs since start.
    pub wal_fsyncs: u64,
    /// Torn WAL tails truncated at startup.
    pub torn_tail_truncations: u64,
    /// Agent streams tracked for dedupe.
    pub agent_streams: usize,
    /// Checkpoints written since start.
    pub checkpoints: u64,
    /// On-disk blocks.
    pub blocks: usize,
    /// Bytes of on-disk blocks.
    pub block_bytes: u64,
}

/// State shared by the writer thread and readers.
#[derive(Debug)]
struct Shared {
    /// Lock order: `blocks` before `head`.
    blocks: RwLock<Vec<Arc<Block>>>,
    head: RwLock<Head>,
    streams: Mutex<HashMap<StreamKey, StreamState>>,
    events: Mutex<VecDeque<(String, Event)>>,
    metrics: StorageMetrics,
    opts: StorageOptions,
    /// Set when a WAL sync failed: every later append fails, duplicates included.
    poisoned: Mutex<Option<String>>,
    /// Label sets shared by the head and the blocks.
    interner: Arc<intern::Interner>,
    /// Metric metadata from agents and remote_write, for `/api/v1/metadata`.
    metadata: metadata::MetadataStore,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn min_valid_t(&self, now: i64) -> i64 {
        if self.opts.retention.is_zero() {
            return i64::MIN;
        }
        now.saturating_sub(self.opts.retention.as_millis() as i64)
    }

    fn ooo_window_ms(&self) -> i64 {
        self.opts.out_of_order_window.as_millis() as i64
    }

    /// Applies a batch's samples to the head.
    fn apply_series(
        &self,
        head: &mut Head,
        tenant_name: &str,
        batch: &ParsedBatch,
        now: i64,
        tenant: Option<u16>,
    ) -> AppendStats {
        let mut counts = AppendStats::default();
        let source = head.batch_source_key(tenant_name, batch);
        head.append_parsed(
            batch,
            source,
            self.ooo_window_ms(),
            self.min_valid_t(now),
            tenant,
            &mut counts,
        );
        counts
    }

    /// Applies one decoded agent batch: samples, dedupe state and events (kept for
    /// `recent_events` and stored as `vigil_agent_event` series, see [`event_series`]).
    /// Returns the counts of the batch's samples and of the event samples.
    /// The caller records the delivery with [`Shared::record_delivery`] once it is durable.
    fn apply_agent_batch(
        &self,
        head: &mut Head,
        agent: &str,
        stream_id: u64,
        batch: &ParsedBatch,
        now: i64,
        tenant: Option<u16>,
    ) -> (AppendStats, AppendStats) {
        let mut counts = AppendStats::default();
        let source = head.source_key(agent, stream_id);
        head.append_parsed(
            batch,
            Some(source),
            self.ooo_window_ms(),
            self.min_valid_t(now),
            tenant,
            &mut counts,
        );
        let mut event_counts = AppendStats::default();
        // Event series count toward the global limit only: they stay unowned.
        for s in event_series::event_series(agent, &batch.events) {
            head.append_points(
                &s.labels,
                &s.points,
                self.ooo_window_ms(),
                self.min_valid_t(now),
                None,
                &mut event_counts,
            );
        }
        if self.opts.max_events == 0 {
            for e in &batch.events {
                self.metadata.record_event(agent, e);
            }
        }
        if !batch.events.is_empty() && self.opts.max_events > 0 {
            let mut events = lock(&self.events);
            for e in &batch.events {
                if self.metadata.record_event(agent, e) {
                    continue;
                }
                if events.len() >= self.opts.max_events {
                    events.pop_front();
                }
                events.push_back((agent.to_string(), e.clone()));
            }
        }
        (counts, event_counts)
    }

    fn record_counts(&self, c: &AppendStats) {
        let m = &self.metrics;
        m.samples_appended.inc_by(c.appended);
        m.samples_duplicate.inc_by(c.duplicate);
        m.samples_duplicate_timestamp.inc_by(c.duplicate_timestamp);
        m.samples_out_of_order.inc_by(c.out_of_order);
        m.samples_too_old.inc_by(c.too_old);
    }

    fn update_head_gauges(&self, head: &Head) {
        self.metrics.head_series.set(head.series_count() as i64);
        self.metrics.head_samples.set(head.sample_count() as i64);
        for (tenant, n) in head.tenant_counts() {
            self.metrics
                .tenant_series
                .with_label_values(&[tenant])
                .set(n as i64);
        }
    }
}

/// Handle to the store; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    /// One permit per KiB of payload queued or being written.
    queue_bytes: tokio::sync::Semaphore,
    queue_permits: u32,
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<std::thread::JoinHandle<()>>,
    wal_stats: Arc<WalStats>,
    dir: PathBuf,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue stops the writer after it has finished what is queued.
        self.tx.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// never write the same WAL.
fn lock_dir(dir: &Path) -> Result<std::fs::File, StorageError> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StorageError::io(format!("opening {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StorageError::io(format!("locking {}", path.display()), e))
        }
    }
}

/// Whether this machine has a second core for splitting large reads and evaluations in
/// two; asked once (it reads the cgroup's CPU quota).
pub(crate) fn has_second_core() -> bool {
    static TWO: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TWO.get_or_init(|| std::thread::available_parallelism().is_ok_and(|p| p.get() > 1))
}

/// One series read from storage: its labels, shared with the index, and its samples.
pub type SharedSeries = (Arc<Labels>, Vec<Point>);

/// Fewest head series in a read before their chunks are decoded on two threads.
const PARALLEL_DECODE_MIN: usize = 1024;

/// The samples of head series snapshots in `[start_ms, end_ms]`, series without any left
/// out, sorted by labels. Large reads are decoded and sorted in two halves on two threads,
/// then merged.
fn decode_snapshots(
    snaps: Vec<head::SeriesSnapshot>,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<SharedSeries>, StorageError> {
    fn decode(
        snaps: Vec<head::SeriesSnapshot>,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SharedSeries>, StorageError> {
        let corrupt = |e: chunk::ChunkError| StorageError::Corrupt {
            what: "head chunk".into(),
            detail: e.to_string(),
        };
        let mut out = Vec::with_capacity(snaps.len());
        let mut samples: Vec<(i64, u64)> = Vec::new();
        for s in snaps {
            let chunks = s.chunks.iter().map(|c| &c[..]).chain(s.open.as_deref());
            let points = if s.ooo.is_empty() {
                // In-order chunks decode straight into points, allocated once.
                let n = chunks.clone().map(chunk::sample_count).sum();
                let mut points = Vec::with_capacity(n);
                for c in chunks {
                    chunk::decode_range_as(c, start_ms, end_ms, &mut points, point)
                        .map_err(corrupt)?;
                }
                points
            } else {
                samples.clear();
                for c in chunks {
                    chunk::decode_range(c, start_ms, end_ms, &mut samples).map_err(corrupt)?;
                }
                samples.extend_from_slice(&s.ooo);
                block::sort_dedup(&mut samples);
                to_points(&samples)
            };
            if !points.is_empty() {
                out.push((s.labels, points));
            }
        }
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
    if !has_second_core() || snaps.len() < PARALLEL_DECODE_MIN {
        return decode(snaps, start_ms, end_ms);
    }
    let mut first = snaps;
    let second = first.split_off(first.len() / 2);
    let (a, b) = std::thread::scope(|scope| {
        let other = scope.spawn(move || decode(second, start_ms, end_ms));
        let a = decode(first, start_ms, end_ms);
        let b = other
            .join()
            .unwrap_or_else(|_| Err(StorageError::Failed("decoding thread failed".into())));
        (a, b)
    });
    // Each label set is one head series, so the halves never share one.
    let (a, b) = (a?, b?);
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
        out.extend(if x.0 <= y.0 { a.next() } else { b.next() });
    }
    out.extend(a);
    out.extend(b);
    Ok(out)
}

/// A sample as a point (the value from its bits).
fn point(t: i64, v: u64) -> Point {
    Point {
        timestamp_ms: t,
        value: f64::from_bits(v),
    }
}

/// Samples as points.
fn to_points(samples: &[(i64, u64)]) -> Vec<Point> {
    samples.iter().map(|&(t, v)| point(t, v)).collect()
}

/// Reads a payload the way `append_agent_batch` does and returns its number of series; for
/// the ingest benchmark, which times decoding separately from the rest.
#[doc(hidden)]
pub fn bench_read_payload(payload: &[u8]) -> Result<usize, StorageError> {
    ParsedBatch::decode(payload)
        .map(|b| b.series_len())
        .map_err(|e| StorageError::Malformed(e.to_string()))
}

/// Reads uncompressed batch bincode the way `append_raw_batch_for` does and returns its
/// series with labels normalized as the head stores them; for the remote_write decoder's
/// differential test and fuzz target.
#[doc(hidden)]
pub fn bench_parse_raw(raw: &[u8]) -> Vec<Series> {
    ParsedBatch::from_raw(raw.to_vec())
        .map(|b| {
            (0..b.series_len())
                .map(|i| Series {
                    labels: b.labels(i),
                    points: b.points(i).to_vec(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Opens the blocks a checkpoint lists. Block files it does not list are leftovers of a
/// compaction that crashed before its checkpoint (their data is still in the WAL) and are
/// deleted — unless a newer checkpoint was unreadable, in which case they may be the only
/// copy and are kept (duplicates with the head are merged away by queries).
fn open_blocks(
    blocks_dir: &Path,
    listed: &[String],
    keep_unlisted: bool,
    interner: &intern::Interner,
) -> Result<Vec<Arc<Block>>, StorageError> {
    let on_disk = block::list(blocks_dir)
        .map_err(|e| StorageError::io(format!("listing {}", blocks_dir.display()), e))?;
    let mut out = Vec::new();
    for name in &on_disk {
        if !listed.contains(name) && !keep_unlisted {
            tracing::info!(block = %name, "removing block left by an unfinished compaction");
            if let Err(e) = std::fs::remove_file(block::path(blocks_dir, name)) {
                tracing::warn!(block = %name, error = %e, "cannot remove unlisted block");
            }
            continue;
        }
        match Block::open(blocks_dir, name, interner) {
            Ok(b) => out.push(Arc::new(b)),
            Err(e) => tracing::warn!(block = %name, error = %e, "skipping unreadable block"),
        }
    }
    for name in listed {
        if !on_disk.contains(name) {
            tracing::warn!(block = %name, "block listed in the checkpoint is missing");
        }
    }
    Ok(out)
}

/// Brings label sets into canonical form (sorted by name, unique names, no empty values),
/// since a decoded payload is not guaranteed to be, and rejects series left with no labels.
/// Replay applies the same function, so the stored bytes map to the same series.
impl Storage {
    /// Opens (or creates) the store in `dir`: loads the newest checkpoint, replays the WAL
    /// written since (truncating a torn or corrupt tail, logged and counted), and starts the
    /// writer thread.
    pub fn open(dir: &Path, opts: StorageOptions) -> Result<Storage, StorageError> {
        let wal_dir = dir.join("wal");
        let blocks_dir = dir.join("blocks");
        for d in [&wal_dir, &blocks_dir] {
            std::fs::create_dir_all(d)
                .map_err(|e| StorageError::io(format!("creating {}", d.display()), e))?;
        }
        let lock_file = lock_dir(dir)?;
        let interner = Arc::new(intern::Interner::default());
        let metadata = metadata::MetadataStore::open(dir)
            .map_err(|e| StorageError::Failed(format!("opening metric metadata: {e}")))?;
        let shared = Arc::new(Shared {
            metadata,
            blocks: RwLock::new(Vec::new()),
            head: RwLock::new(Head::new(
                opts.block_duration.as_millis() as i64,
                interner.clone(),
            )),
            interner,
            streams: Mutex::new(HashMap::new()),
            events: Mutex::new(VecDeque::new()),
            metrics: StorageMetrics::new(),
            opts: opts.clone(),
            poisoned: Mutex::new(None),
        });
        let now = now_ms();
        let (ck, skipped_checkpoint) = checkpoint::load_latest(dir).map_err(|e| {
            StorageError::io(format!("reading checkpoints in {}", dir.display()), e)
        })?;
        let mut from_segment = 0;
        let mut compacted_before = i64::MIN;
        let mut listed_blocks = Vec::new();
        let mut head = write(&shared.head);
        if let Some(ck) = ck {
            from_segment = ck.next_segment;
            compacted_before = ck.compacted_before;
            listed_blocks = ck.blocks;
            for s in ck.series {
                head.restore(&s.labels, s.sealed, s.open, s.ooo, s.max_t, s.last_bits);
            }
            let mut streams = lock(&shared.streams);
            for r in &ck.streams {
                streams.insert((r.agent.clone(), r.stream_id), StreamState::from_record(r));
            }
            lock(&shared.events).extend(ck.events);
            tracing::info!(
                next_segment = from_segment,
                series = head.series_count(),
                "loaded checkpoint"
            );
        }
        let blocks = open_blocks(
            &blocks_dir,
            &listed_blocks,
            skipped_checkpoint,
            &shared.interner,
        )?;
        let started = Instant::now();
        let report = replay::replay_wal(&shared, &mut head, &wal_dir, from_segment, now)?;
        shared
            .metrics
            .wal_torn_tail_truncations
            .inc_by(report.truncations);
        head.truncate_before(shared.min_valid_t(now));
        shared.update_head_gauges(&head);
        tracing::info!(
            segments = report.segments,
            records = report.records,
            truncations = report.truncations,
            series = head.series_count(),
            samples = head.sample_count(),
            blocks = blocks.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "replayed WAL"
        );
        drop(head);
        let next_block = blocks
            .iter()
            .filter_map(|b| b.name().parse::<u64>().ok())
            .max()
            .map_or(1, |n| n + 1);
        *write(&shared.blocks) = blocks;
        let next = report
            .last_index
            .map_or(from_segment, |l| l + 1)
            .max(from_segment);
        let wal = Wal::create(&wal_dir, next, opts.wal_segment_bytes).map_err(|e| {
            StorageError::io(format!("creating WAL segment in {}", wal_dir.display()), e)
        })?;
        let wal_stats = Arc::new(WalStats::default());
        let (tx, rx) = mpsc::channel(opts.queue_depth.max(1));
        let queue_permits = u32::try_from(opts.queue_bytes / 1024)
            .unwrap_or(u32::MAX)
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS as u32);
        let writer = Writer {
            shared: shared.clone(),
            wal,
            rx,
            dir: dir.to_path_buf(),
            blocks_dir,
            failed: None,
            wal_stats: wal_stats.clone(),
            checkpoint_segment: from_segment,
            last_checkpoint: Instant::now(),
            last_retention: None,
            bytes_since_checkpoint: 0,
            last_checkpoint_bytes: 0,
            _lock: lock_file,
            compacted_before,
            next_block,
            compaction_backoff: None,
            checkpoint_backoff: None,
            pending_delete: Vec::new(),
        };
        writer.publish_wal_stats();
        writer.publish_block_stats();
        let handle = std::thread::Builder::new()
            .name("vigil-storage-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StorageError::io("spawning the storage writer thread", e))?;
        Ok(Storage {
            inner: Arc::new(Inner {
                shared,
                queue_bytes: tokio::sync::Semaphore::new(queue_permits as usize),
                queue_permits,
                tx: Some(tx),
                writer: Some(handle),
                wal_stats,
                dir: dir.to_path_buf(),
            }),
        })
    }

    async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, StorageError> {
        self.request_sized(0, make).await
    }

    /// Sends a request carrying `bytes` of payload, first waiting until the queued payload
    /// bytes allow it (the permit is held until the answer arrives).
    async fn request_sized<T>(
        &self,
        bytes: usize,
        make: impl FnOnce(Reply<T>) -> Request,
    ) -> Result<T, StorageError> {
        let tx = self.inner.tx.as_ref().ok_or(StorageError::Closed)?;
        let _permit = if bytes > 0 {
            let want = u32::try_from(bytes / 1024)
                .unwrap_or(u32::MAX)
                .clamp(1, self.inner.queue_permits);
            Some(
                self.inner
                    .queue_bytes
                    .acquire_many(want)
                    .await
                    .map_err(|_| StorageError::Closed)?,
            )
        } else {
            None
        };
        let (reply, rx) = oneshot::channel();
        tx.send(make(reply))
            .await
            .map_err(|_| StorageError::Closed)?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// Stores one agent batch exactly once. `payload` is the snappy-compressed bincode batch
    /// as the agent sent it; it is written to the WAL untouched. Returns once durable.
    pub async fn append_agent_batch(
        &self,
        agent: &str,
        stream_id: u64,
        seq: u64,
        payload: Vec<u8>,
    ) -> Result<AppendOutcome, StorageError> {
        if let Some(f) = lock(&self.inner.shared.poisoned).clone() {
            return Err(StorageError::Failed(f));
        }
        if self.inner.shared.is_seen(agent, stream_id, seq) {
            self.inner.shared.metrics.batches_duplicate.inc();
            return Ok(AppendOutcome::Duplicate);
        }
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(StorageError::TooLarge(payload.len()));
        }
        let batch =
            ParsedBatch::decode(&payload).map_err(|e| StorageError::Malformed(e.to_string()))?;
        if batch.has_empty_series() {
            return Err(StorageError::Malformed("series with no labels".into()));
        }
        let size = payload.len();
        let op = AppendOp::Agent {
            agent: agent.to_string(),
            stream_id,
            seq,
            payload,
            batch,
            tenant: self.inner.shared.opts.agent_tenant(agent).to_string(),
        };
        match self
            .request_sized(size, |reply| Request::Append {
                op: Box::new(op),
                reply,
            })
            .await?
        {
            AppendReply::Agent(o) => Ok(o),
            AppendReply::Series(_) => Err(StorageError::Failed(
                "writer answered the wrong request".into(),
            )),
        }
    }

    /// Stores series from recording rules (or anything else of the default tenant). Returns
    /// once durable.
    pub async fn append_series(&self, series: Vec<Series>) -> Result<AppendStats, StorageError> {
        self.append_series_for(DEFAULT_TENANT, series).await
    }

    /// Stores series written by `tenant` (remote_write's `X-Scope-OrgID`). New series over the
    /// tenant's active-series limit make the whole append fail with
    /// [`StorageError::TenantSeriesLimit`]. Returns once durable.
    pub async fn append_series_for(
        &self,
        tenant: &str,
        series: Vec<Series>,
    ) -> Result<AppendStats, StorageError> {
        let batch = Batch {
            series,
            events: Vec::new(),
        };
        let raw = vigil_shared::codec::encode_batch_raw(&batch)
            .map_err(|e| StorageError::Malformed(e.to_string()))?;
        self.append_raw_batch_for(tenant, raw).await
    }

    /// [`append_series_for`](Self::append_series_for) for series already in the batch
    /// encoding: `raw` is the uncompressed bincode of a `Batch` without events (what
    /// remote_write's decoder writes). It is read in place and written to the WAL as it is.
    pub async fn append_raw_batch_for(
        &self,
        tenant: &str,
        raw: Vec<u8>,
    ) -> Result<AppendStats, StorageError> {
        if raw.len() > vigil_shared::codec::MAX_BATCH_BYTES {
            return Err(StorageError::TooLarge(raw.len()));
        }
        let batch = ParsedBatch::from_raw(raw)
            .map_err(|e| StorageError::Malformed(format!("series batch: {e}")))?;
        if !batch.events.is_empty() {
            return Err(StorageError::Malformed(
                "events are accepted from agents only".into(),
            ));
        }
        if batch.has_empty_series() {
            return Err(StorageError::Malformed("series with no labels".into()));
        }
        if batch.points_len() == 0 {
            return Ok(AppendStats::default());
        }
        let payload = vigil_shared::codec::compress_batch(batch.raw())
            .map_err(|e| StorageError::Malformed(e.to_string()))?;
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(StorageError::TooLarge(payload.len()));
        }
        let size = payload.len();
        let op = AppendOp::Series {
            payload,
            batch,
            tenant: tenant.to_string(),
        };
        match self
            .request_sized(size, |reply| Request::Append {
                op: Box::new(op),
                reply,
            })
            .await?
        {
            AppendReply::Series(s) => Ok(s),
            AppendReply::Agent(_) => Err(StorageError::Failed(
                "writer answered the wrong request".into(),
            )),
        }
    }

    /// Series matching all `matchers` with points in `[start_ms, end_ms]`, sorted by labels,
    /// each with its points in that range sorted by time.
    pub fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Series>, StorageError> {
        Ok(self
            .select_shared(matchers, start_ms, end_ms)?
            .into_iter()
            .map(|(labels, points)| Series {
                labels: Arc::unwrap_or_clone(labels),
                points,
            })
            .collect())
    }

    /// [`select`](Self::select) with each label set shared with the index instead of
    /// copied (what the query engine reads through).
    pub fn select_shared(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SharedSeries>, StorageError> {
        // Data past retention is never returned, even before its block is deleted.
        let start_ms = start_ms.max(self.inner.shared.min_valid_t(now_ms()));
        if start_ms > end_ms {
            return Ok(Vec::new());
        }
        let (blocks, snaps) =
            self.consistent_view(|head| head.snapshot(matchers, start_ms, end_ms));
        let head = decode_snapshots(snaps, start_ms, end_ms)?;
        let blocks: Vec<&Arc<Block>> = blocks
            .iter()
            .filter(|b| b.mint() <= end_ms && b.maxt() >= start_ms)
            .collect();
        if blocks.is_empty() {
            // Only the head, where each label set is one series: nothing to merge.
            return Ok(head);
        }
        // Blocks first, so that of two samples with one timestamp the older copy is kept.
        let mut merged: BTreeMap<Arc<Labels>, Vec<Vec<Point>>> = BTreeMap::new();
        for b in blocks {
            for (labels, samples) in b.select(matchers, start_ms, end_ms)? {
                merged.entry(labels).or_default().push(to_points(&samples));
            }
        }
        for (labels, points) in head {
            merged.entry(labels).or_default().push(points);
        }
        Ok(merged
            .into_iter()
            .map(|(labels, mut parts)| {
                let points = if parts.len() == 1 {
                    parts.pop().unwrap_or_default()
                } else {
                    let mut all: Vec<Point> = parts.concat();
                    all.sort_by_key(|p| p.timestamp_ms);
                    all.dedup_by_key(|p| p.timestamp_ms);
                    all
                };
                (labels, points)
            })
            .collect())
    }

    /// Runs `f` on the head while holding the block list steady, so data being moved from
    /// the head into a block is seen exactly once.
    fn consistent_view<T>(&self, f: impl FnOnce(&Head) -> T) -> (Vec<Arc<Block>>, T) {
        let shared = &self.inner.shared;
        let blocks = read(&shared.blocks);
        let head = read(&shared.head);
        let t = f(&head);
        (blocks.clone(), t)
    }

    /// Labels of the series matching `matchers` with points in the range, from head and blocks.
    fn series_labels(&self, matchers: &[Matcher], start_ms: i64, end_ms: i64) -> Vec<Arc<Labels>> {
        let start_ms = start_ms.max(self.inner.shared.min_valid_t(now_ms()));
        if start_ms > end_ms {
            return Vec::new();
        }
        let (blocks, mut labels) = self.consistent_view(|head| {
            head.ids_in_range(matchers, start_ms, end_ms)
                .into_iter()
                .filter_map(|id| head.labels(id).cloned())
                .collect::<Vec<_>>()
        });
        for b in &blocks {
            labels.extend(b.labels_in_range(matchers, start_ms, end_ms));
        }
        labels
    }

    /// Label sets of the series matching `matchers` with points in `[start_ms, end_ms]`,
    /// sorted, without reading any samples (for `/api/v1/series`). A series is included
    /// when a chunk holding it overlaps the range.
    pub fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, StorageError> {
        let mut labels = self.series_labels(matchers, start_ms, end_ms);
        labels.sort();
        labels.dedup();
        Ok(labels.into_iter().map(Arc::unwrap_or_clone).collect())
    }

    /// Sorted label names of the series matching `matchers` with points in the range.
    pub fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        let mut names = BTreeSet::new();
        for l in self.series_labels(matchers, start_ms, end_ms) {
            for (n, _) in l.iter() {
                if !names.contains(n) {
                    names.insert(n.to_string());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Sorted values of label `name` among the series matching `matchers` with points in the range.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        let mut values = BTreeSet::new();
        for l in self.series_labels(matchers, start_ms, end_ms) {
            if let Some(v) = l.get(name) {
                if !values.contains(v) {
                    values.insert(v.to_string());
                }
            }
        }
        Ok(values.into_iter().collect())
    }

    /// The newest `limit` events from agent batches, newest first.
    pub fn recent_events(&self, limit: usize) -> Vec<(String, Event)> {
        lock(&self.inner.shared.events)
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }

    /// Delivery state of every agent stream, sorted by agent and stream.
    pub fn agent_streams(&self) -> Vec<AgentStream> {
        let streams = lock(&self.inner.shared.streams);
        let mut out: Vec<AgentStream> = streams
            .iter()
            .map(|((agent, stream_id), st)| AgentStream {
                agent: agent.clone(),
                stream_id: *stream_id,
                highest_seq: st.seen.highest().unwrap_or(0),
                contiguous_up_to: st.seen.contiguous_up_to(),
                last_append_ms: st.last_append_ms,
                batches: st.batches,
                samples: st.samples,
            })
            .collect();
        out.sort_by(|a, b| (&a.agent, a.stream_id).cmp(&(&b.agent, b.stream_id)));
        out
    }

    /// A summary of sizes and counters.
    pub fn stats(&self) -> StorageStats {
        use std::sync::atomic::Ordering::Relaxed;
        let shared = &self.inner.shared;
        let (series, samples_in_head) = {
            let head = read(&shared.head);
            (head.series_count(), head.sample_count())
        };
        let m = &shared.metrics;
        StorageStats {
            series,
            samples_in_head,
            wal_bytes: self.inner.wal_stats.bytes.load(Relaxed),
            wal_segments: self.inner.wal_stats.segments.load(Relaxed) as usize,
            samples_appended: m.samples_appended.get(),
            samples_out_of_order: m.samples_out_of_order.get(),
            wal_fsyncs: m.wal_fsyncs.get(),
            torn_tail_truncations: m.wal_torn_tail_truncations.get(),
            agent_streams: lock(&shared.streams).len(),
            checkpoints: self.inner.wal_stats.checkpoints.load(Relaxed),
            blocks: m.blocks.get() as usize,
            block_bytes: m.block_size_bytes.get() as u64,
        }
    }

    /// The head's cardinality and extent, top `limit` of each table (`/api/v1/status/tsdb`).
    pub fn head_status(&self, limit: usize) -> HeadStatus {
        read(&self.inner.shared.head).status(limit)
    }

    /// The storage's own metrics, for callers that export them another way.
    pub fn metrics(&self) -> &StorageMetrics {
        &self.inner.shared.metrics
    }

    /// Registers the storage's metrics with `registry`.
    pub fn register_metrics(
        &self,
        registry: &prometheus::Registry,
    ) -> Result<(), prometheus::Error> {
        self.inner.shared.metrics.register(registry)?;
        self.inner.shared.metadata.metrics().register(registry)
    }

    /// Metric metadata (TYPE/HELP/UNIT) from agents and remote_write.
    pub fn metadata(&self) -> &metadata::MetadataStore {
        &self.inner.shared.metadata
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Writes a checkpoint now and deletes the WAL segments it covers.
    pub async fn checkpoint(&self) -> Result<(), StorageError> {
        self.request(|reply| Request::Checkpoint { reply }).await
    }

    /// Compacts head data older than the cutoff into blocks now (followed by a checkpoint).
    pub async fn compact(&self) -> Result<(), StorageError> {
        self.request(|reply| Request::Compact { reply }).await
    }

    /// Finishes queued appends, writes a checkpoint so the next start is fast, and stops the
    /// writer. Later appends fail with [`StorageError::Closed`].
    pub async fn close(&self) -> Result<(), StorageError> {
        match self.request(|reply| Request::Close { reply }).await {
            Err(StorageError::Closed) => Ok(()),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests;

impl StorageError {
    /// True when the input itself is at fault (resending it unchanged will fail again), as
    /// opposed to the storage being unable to take it right now.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            StorageError::Malformed(_)
                | StorageError::SeriesLimit { .. }
                | StorageError::TenantSeriesLimit { .. }
                | StorageError::TooLarge(_)
        )
    }
}
