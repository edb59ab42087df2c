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
mod dense;
mod encoding;
mod head;
mod intern;
mod payload;
mod postings;
#[cfg(test)]
pub(crate) mod testutil;
mod wal;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use vigil_shared::codec::encode_batch;
use vigil_shared::model::{Batch, Event, Labels, Point, Series};
use vigil_shared::seq::SeenSequences;

pub use head::{AppendStats, HeadStatus};
pub use matcher::{matches_all, MatchOp, Matcher, MatcherError};
pub use metrics::StorageMetrics;
pub use postings::PostingsStats;

use block::Block;
use checkpoint::StreamRecord;
use head::Head;
use payload::ParsedBatch;
use wal::{Wal, WalRecord};

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

/// Dedupe state and counters of one (agent, stream).
#[derive(Debug, Default)]
struct StreamState {
    seen: SeenSequences,
    /// Mirror of the sequences `seen` holds above its watermark, for checkpoints.
    sparse: BTreeSet<u64>,
    last_append_ms: i64,
    batches: u64,
    samples: u64,
}

impl StreamState {
    fn insert(&mut self, seq: u64) -> bool {
        if !self.seen.insert(seq) {
            return false;
        }
        self.sparse.insert(seq);
        let below = self.seen.contiguous_up_to();
        if self.sparse.first().is_some_and(|&f| f < below) {
            self.sparse = self.sparse.split_off(&below);
        }
        true
    }

    fn from_record(r: &StreamRecord) -> Self {
        let mut s = StreamState {
            last_append_ms: r.last_append_ms,
            batches: r.batches,
            samples: r.samples,
            ..Default::default()
        };
        for seq in 0..r.below {
            s.seen.insert(seq);
        }
        for &seq in &r.above {
            s.insert(seq);
        }
        s
    }
}

type StreamKey = (String, u64);

/// Who delivered a batch, and when: the identity used for exactly-once delivery.
#[derive(Debug, Clone, Copy)]
struct Delivery<'a> {
    agent: &'a str,
    stream_id: u64,
    seq: u64,
    append_ms: i64,
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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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

    fn is_seen(&self, agent: &str, stream_id: u64, seq: u64) -> bool {
        lock(&self.streams)
            .get(&(agent.to_string(), stream_id))
            .is_some_and(|s| s.seen.contains(seq))
    }

    /// Applies a batch's samples to the head.
    fn apply_series(
        &self,
        head: &mut Head,
        series: &[Series],
        now: i64,
        tenant: Option<u16>,
    ) -> AppendStats {
        let window = self.ooo_window_ms();
        let min_valid = self.min_valid_t(now);
        let mut counts = AppendStats::default();
        for s in series {
            head.append_points(&s.labels, &s.points, window, min_valid, tenant, &mut counts);
        }
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

    /// Marks a batch as stored in its stream's dedupe state. Only ever called for durable
    /// batches: from then on a resend is acknowledged as a duplicate.
    fn record_delivery(&self, d: Delivery<'_>, appended: u64) {
        let mut streams = lock(&self.streams);
        let st = streams
            .entry((d.agent.to_string(), d.stream_id))
            .or_default();
        st.insert(d.seq);
        st.last_append_ms = st.last_append_ms.max(d.append_ms);
        st.batches += 1;
        st.samples += appended;
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

    /// Applies one decoded WAL record.
    fn replay_record(&self, head: &mut Head, rec: Replayed, now: i64) {
        match rec {
            Replayed::Agent {
                agent,
                stream_id,
                seq,
                append_ms,
                batch,
            } => {
                // Replayed series stay unowned until a tenant writes to them again.
                let (c, _) = self.apply_agent_batch(head, &agent, stream_id, &batch, now, None);
                let d = Delivery {
                    agent: &agent,
                    stream_id,
                    seq,
                    append_ms,
                };
                self.record_delivery(d, c.appended);
            }
            Replayed::Series(batch) => {
                let mut counts = AppendStats::default();
                head.append_parsed(
                    &batch,
                    None,
                    self.ooo_window_ms(),
                    self.min_valid_t(now),
                    None,
                    &mut counts,
                );
            }
        }
    }

    fn stream_records(&self) -> Vec<StreamRecord> {
        let streams = lock(&self.streams);
        let mut out: Vec<StreamRecord> = streams
            .iter()
            .map(|((agent, stream_id), st)| StreamRecord {
                agent: agent.clone(),
                stream_id: *stream_id,
                below: st.seen.contiguous_up_to(),
                above: st.sparse.iter().copied().collect(),
                last_append_ms: st.last_append_ms,
                batches: st.batches,
                samples: st.samples,
            })
            .collect();
        out.sort_by(|a, b| (&a.agent, a.stream_id).cmp(&(&b.agent, b.stream_id)));
        out
    }
}

/// A WAL record decoded for replay (on the reader thread).
#[derive(Debug)]
enum Replayed {
    Agent {
        agent: String,
        stream_id: u64,
        seq: u64,
        append_ms: i64,
        batch: ParsedBatch,
    },
    Series(ParsedBatch),
}

impl Replayed {
    /// Decodes a record body; `None` (logged) when it cannot be used at all.
    fn decode(body: &[u8]) -> Option<Replayed> {
        let rec = match WalRecord::decode(body) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "skipping undecodable WAL record");
                return None;
            }
        };
        match rec {
            WalRecord::AgentBatch {
                agent,
                stream_id,
                seq,
                append_ms,
                payload,
            } => {
                let batch = ParsedBatch::decode(payload).unwrap_or_else(|e| {
                    // Validated before it was written, so this means a codec change: keep the
                    // dedupe state so the agent is not asked to resend data we cannot read.
                    tracing::warn!(agent, stream_id, seq, error = %e, "WAL batch payload is undecodable");
                    ParsedBatch::default()
                });
                Some(Replayed::Agent {
                    agent: agent.to_string(),
                    stream_id,
                    seq,
                    append_ms,
                    batch,
                })
            }
            WalRecord::Series { payload } => match ParsedBatch::decode(payload) {
                Ok(batch) => Some(Replayed::Series(batch)),
                Err(e) => {
                    tracing::warn!(error = %e, "WAL series payload is undecodable");
                    None
                }
            },
        }
    }
}

/// What the writer is asked to append.
#[derive(Debug)]
enum AppendOp {
    Agent {
        agent: String,
        stream_id: u64,
        seq: u64,
        payload: Vec<u8>,
        batch: ParsedBatch,
        tenant: String,
    },
    Series {
        payload: Vec<u8>,
        series: Vec<Series>,
        tenant: String,
    },
}

/// A series an append would create, or claim for its tenant.
#[derive(Debug)]
struct Unowned {
    labels: Labels,
    /// The series is in the head already (restored, not owned by any tenant yet).
    exists: bool,
    /// An agent event series (`vigil_agent_event`): counted toward the global limit only.
    event: bool,
}

impl AppendOp {
    fn tenant(&self) -> &str {
        match self {
            AppendOp::Agent { tenant, .. } | AppendOp::Series { tenant, .. } => tenant,
        }
    }

    /// Series this append would create or claim for its tenant (deduplicated by labels): new
    /// series, and existing ones no tenant owns yet.
    fn unowned_series(&self, head: &Head) -> Vec<Unowned> {
        let mut out: Vec<Unowned> = Vec::new();
        let mut seen: HashSet<Labels> = HashSet::new();
        let mut consider = |owner: Option<u16>, event: bool, labels: &dyn Fn() -> Labels| {
            if owner.is_some_and(|t| t != head::NO_TENANT) {
                return;
            }
            let labels = labels();
            if seen.insert(labels.clone()) {
                out.push(Unowned {
                    labels,
                    event,
                    exists: owner.is_some(),
                });
            }
        };
        match self {
            AppendOp::Agent { agent, batch, .. } => {
                for i in 0..batch.series_len() {
                    consider(head.parsed_series_tenant(batch, i), false, &|| {
                        batch.labels(i)
                    });
                }
                for s in event_series::event_series(agent, &batch.events) {
                    consider(head.series_tenant(&s.labels), true, &|| s.labels.clone());
                }
            }
            AppendOp::Series { series, .. } => {
                for s in series {
                    consider(head.series_tenant(&s.labels), false, &|| s.labels.clone());
                }
            }
        }
        out
    }

    /// Removes series (by position) from an agent batch, re-encoding its payload, so the WAL
    /// holds exactly what was stored.
    fn drop_agent_series(&mut self, drop: &HashSet<usize>) -> Result<(), StorageError> {
        let AppendOp::Agent { payload, batch, .. } = self else {
            return Ok(());
        };
        let mut full = vigil_shared::codec::decode_batch(payload)
            .map_err(|e| StorageError::Malformed(e.to_string()))?;
        let mut i = 0;
        full.series.retain(|_| {
            i += 1;
            !drop.contains(&(i - 1))
        });
        *payload = encode_batch(&full).map_err(|e| StorageError::Malformed(e.to_string()))?;
        *batch =
            ParsedBatch::decode(payload).map_err(|e| StorageError::Malformed(e.to_string()))?;
        Ok(())
    }
}

#[derive(Debug)]
enum AppendReply {
    Agent(AppendOutcome),
    Series(AppendStats),
}

type Reply<T> = oneshot::Sender<Result<T, StorageError>>;

#[derive(Debug)]
enum Request {
    Append {
        /// Boxed: an append carries far more than the other requests.
        op: Box<AppendOp>,
        reply: Reply<AppendReply>,
    },
    Checkpoint {
        reply: Reply<()>,
    },
    Compact {
        reply: Reply<()>,
    },
    Close {
        reply: Reply<()>,
    },
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

/// WAL figures published by the writer for `stats`.
#[derive(Debug, Default)]
struct WalStats {
    bytes: std::sync::atomic::AtomicU64,
    segments: std::sync::atomic::AtomicU64,
    checkpoints: std::sync::atomic::AtomicU64,
}

/// A copy of an error for a second caller waiting on the same outcome.
fn copy_error(e: &StorageError) -> StorageError {
    match e {
        StorageError::Io { context, source } => StorageError::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        StorageError::Failed(m) => StorageError::Failed(m.clone()),
        other => StorageError::Failed(other.to_string()),
    }
}

/// Enforces the global and the per-tenant active-series limits on one append, counting the
/// series it creates or claims into the group's pending tallies when it may go ahead.
///
/// Over the global limit the whole append is refused. Over its tenant's limit a remote_write
/// (or rule) append is refused whole, with an error naming the tenant and a metric (like
/// Mimir's per-tenant series limit); an agent batch is accepted without the series that do
/// not fit (they are counted in `vigil_storage_tenant_series_rejected_total` and logged),
/// and its payload is re-encoded so the WAL holds what was stored. Nothing else of the batch
/// is lost, and the agent does not resend it forever.
fn check_series_limits(
    shared: &Shared,
    head: &Head,
    op: &mut AppendOp,
    pending_new: &mut HashSet<Labels>,
    pending_created: &mut usize,
    pending_owned: &mut HashMap<String, usize>,
) -> Result<(), StorageError> {
    let global = shared.opts.max_series;
    let tenant_limit = shared.opts.tenant_limit(op.tenant());
    if global == 0 && tenant_limit == 0 {
        return Ok(());
    }
    let mut unowned = op.unowned_series(head);
    unowned.retain(|u| !pending_new.contains(&u.labels));
    if unowned.is_empty() {
        return Ok(());
    }
    let creating = unowned.iter().filter(|u| !u.exists).count();
    if global > 0 && creating > 0 && head.series_count() + *pending_created + creating > global {
        shared.metrics.series_limit_rejections.inc();
        let metric = unowned
            .iter()
            .find(|u| !u.exists)
            .map_or("", |u| u.labels.name());
        return Err(StorageError::SeriesLimit {
            metric: metric.to_string(),
            limit: global,
        });
    }
    let tenant = op.tenant().to_string();
    let (events, mut unowned): (Vec<Unowned>, Vec<Unowned>) =
        unowned.into_iter().partition(|u| u.event);
    if tenant_limit > 0 {
        let owned = head.tenant_series(&tenant) + pending_owned.get(&tenant).copied().unwrap_or(0);
        let room = tenant_limit.saturating_sub(owned);
        if unowned.len() > room {
            let refused = unowned.split_off(room);
            let err = StorageError::TenantSeriesLimit {
                tenant: tenant.clone(),
                metric: refused[0].labels.name().to_string(),
                limit: tenant_limit,
                rejected: refused.len(),
            };
            shared.metrics.series_limit_rejections.inc();
            shared
                .metrics
                .tenant_series_rejected
                .with_label_values(&[&tenant])
                .inc_by(refused.len() as u64);
            match op {
                AppendOp::Series { .. } => return Err(err),
                AppendOp::Agent { agent, batch, .. } => {
                    tracing::warn!(agent = %agent, error = %err, "agent batch stored without the series over its tenant's limit");
                    // Every occurrence of a refused series goes, should a batch repeat one.
                    let refused: HashSet<&Labels> = refused.iter().map(|u| &u.labels).collect();
                    let drop: HashSet<usize> = (0..batch.series_len())
                        .filter(|&i| refused.contains(&batch.labels(i)))
                        .collect();
                    op.drop_agent_series(&drop)?;
                }
            }
        }
    }
    *pending_created += unowned.iter().chain(&events).filter(|u| !u.exists).count();
    *pending_owned.entry(tenant).or_default() += unowned.len();
    pending_new.extend(unowned.into_iter().chain(events).map(|u| u.labels));
    Ok(())
}

/// Applies an accepted group's samples and events to the head, returning each caller's
/// answer. Dedupe state is recorded separately, once the group is durable.
fn apply_group(shared: &Shared, accepted: &[Accepted], now: i64) -> Vec<AppendReply> {
    let m = &shared.metrics;
    let mut results = Vec::with_capacity(accepted.len());
    let mut head = write(&shared.head);
    for a in accepted {
        let r = match &a.op {
            AppendOp::Agent {
                agent,
                stream_id,
                batch,
                tenant,
                ..
            } => {
                let t = head.tenant_id(tenant);
                let (c, events) =
                    shared.apply_agent_batch(&mut head, agent, *stream_id, batch, now, Some(t));
                m.batches_appended.inc();
                shared.record_counts(&c);
                m.event_samples_appended.inc_by(events.appended);
                AppendReply::Agent(AppendOutcome::Stored {
                    samples: c.appended as usize,
                })
            }
            AppendOp::Series { series, tenant, .. } => {
                let t = head.tenant_id(tenant);
                let c = shared.apply_series(&mut head, series, now, Some(t));
                shared.record_counts(&c);
                AppendReply::Series(c)
            }
        };
        results.push(r);
    }
    shared.update_head_gauges(&head);
    results
}

/// Largest payload accepted in one append (leaves room for the record header fields).
const MAX_PAYLOAD_BYTES: usize = wal::MAX_RECORD_BYTES - 64 * 1024;
/// A group stops collecting requests at this many payload bytes.
const MAX_GROUP_BYTES: usize = 32 << 20;
/// How often retention runs.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
/// The writer wakes at least this often to run maintenance.
const TICK: Duration = Duration::from_secs(1);

/// Takes an exclusive lock on `<dir>/LOCK`, so two processes (or two opens in one process)
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
fn normalize_series(series: &mut [Series]) -> Result<(), StorageError> {
    for s in series.iter_mut() {
        let l = s.labels.as_slice();
        let canonical =
            l.windows(2).all(|w| w[0].0 < w[1].0) && l.iter().all(|(_, v)| !v.is_empty());
        if !canonical {
            s.labels = Labels::new(std::mem::take(&mut s.labels).into_inner());
        }
    }
    if series.iter().any(|s| s.labels.is_empty()) {
        return Err(StorageError::Malformed("series with no labels".into()));
    }
    Ok(())
}

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
        // One thread reads and decodes records while this one applies them, in order.
        let report = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Replayed>(256);
            let reader = scope.spawn(|| {
                wal::replay(&wal_dir, from_segment, move |_, body| {
                    if let Some(rec) = Replayed::decode(body) {
                        let _ = tx.send(rec);
                    }
                })
            });
            for rec in rx {
                shared.replay_record(&mut head, rec, now);
            }
            reader
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("WAL reader thread panicked")))
        })
        .map_err(|e| StorageError::io(format!("replaying WAL in {}", wal_dir.display()), e))?;
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
        let mut series = series;
        normalize_series(&mut series)?;
        if series.iter().all(|s| s.points.is_empty()) {
            return Ok(AppendStats::default());
        }
        let batch = Batch {
            series,
            events: Vec::new(),
        };
        let payload = encode_batch(&batch).map_err(|e| StorageError::Malformed(e.to_string()))?;
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(StorageError::TooLarge(payload.len()));
        }
        let size = payload.len();
        let op = AppendOp::Series {
            payload,
            series: batch.series,
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

/// The single writer: owns the WAL and is the only mutator of the head and dedupe state.
struct Writer {
    shared: Arc<Shared>,
    wal: Wal,
    rx: mpsc::Receiver<Request>,
    dir: PathBuf,
    blocks_dir: PathBuf,
    failed: Option<String>,
    wal_stats: Arc<WalStats>,
    /// WAL segment the newest checkpoint resumes at.
    checkpoint_segment: u64,
    last_checkpoint: Instant,
    /// When retention last ran; `None` runs it at the first opportunity.
    last_retention: Option<Instant>,
    bytes_since_checkpoint: u64,
    /// Size of the last checkpoint: the WAL may grow at least this much before the next,
    /// so rewriting the head costs no more than the WAL it replaces.
    last_checkpoint_bytes: u64,
    /// Held while the writer runs: one process per data directory.
    _lock: std::fs::File,
    /// Head data before this time has been compacted.
    compacted_before: i64,
    /// Number of the next block file.
    next_block: u64,
    /// No automatic compaction before this instant (backoff after a failure).
    compaction_backoff: Option<Instant>,
    /// No automatic checkpoint before this instant (backoff after a failure).
    checkpoint_backoff: Option<Instant>,
    /// Expired block files to delete once a checkpoint no longer lists them.
    pending_delete: Vec<String>,
}

struct Accepted {
    op: AppendOp,
    reply: Reply<AppendReply>,
    append_ms: i64,
}

impl Writer {
    fn run(mut self) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "storage writer cannot start its timer runtime");
                return;
            }
        };
        loop {
            let first = rt.block_on(async { tokio::time::timeout(TICK, self.rx.recv()).await });
            let first = match first {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(_) => {
                    self.maintenance();
                    continue;
                }
            };
            let mut group = vec![first];
            let mut bytes = 0usize;
            while bytes < MAX_GROUP_BYTES {
                match self.rx.try_recv() {
                    Ok(r) => {
                        if let Request::Append { op, .. } = &r {
                            bytes += match op.as_ref() {
                                AppendOp::Agent { payload, .. }
                                | AppendOp::Series { payload, .. } => payload.len(),
                            };
                        }
                        group.push(r);
                    }
                    Err(_) => break,
                }
            }
            if self.process_group(group) {
                break;
            }
            self.maintenance();
        }
    }

    /// Writes and applies one group; returns true when asked to close.
    fn process_group(&mut self, group: Vec<Request>) -> bool {
        let shared = self.shared.clone();
        let mut buf = Vec::new();
        let mut accepted: Vec<Accepted> = Vec::new();
        let mut checkpoints = Vec::new();
        let mut compactions = Vec::new();
        let mut close = None;
        let now = now_ms();
        let mut appends = Vec::new();
        for req in group {
            match req {
                Request::Append { op, reply } => appends.push((*op, reply)),
                Request::Checkpoint { reply } => checkpoints.push(reply),
                Request::Compact { reply } => compactions.push(reply),
                Request::Close { reply } => close = Some(reply),
            }
        }
        // Sequences accepted earlier in this group, and later requests repeating them: those
        // are answered only once the first is durable, with its outcome.
        let mut pending_seqs: HashMap<(String, u64, u64), usize> = HashMap::new();
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        // Series created or claimed by earlier appends of this group, and how many of them
        // are new to the head and how many each tenant claimed.
        let mut pending_new: HashSet<Labels> = HashSet::new();
        let mut pending_created = 0usize;
        let mut pending_owned: HashMap<String, usize> = HashMap::new();
        let head = read(&shared.head);
        let mut keep = vec![false; appends.len()];
        let mut early: Vec<(usize, Result<AppendReply, StorageError>)> = Vec::new();
        for (i, (op, _)) in appends.iter_mut().enumerate() {
            if let Some(f) = &self.failed {
                early.push((i, Err(StorageError::Failed(f.clone()))));
                continue;
            }
            if let AppendOp::Agent {
                agent,
                stream_id,
                seq,
                ..
            } = op
            {
                if shared.is_seen(agent, *stream_id, *seq) {
                    shared.metrics.batches_duplicate.inc();
                    early.push((i, Ok(AppendReply::Agent(AppendOutcome::Duplicate))));
                    continue;
                }
                let key = (agent.clone(), *stream_id, *seq);
                if let Some(&first) = pending_seqs.get(&key) {
                    repeats.push((i, first));
                    continue;
                }
                pending_seqs.insert(key, i);
            }
            if let Err(e) = check_series_limits(
                &shared,
                &head,
                op,
                &mut pending_new,
                &mut pending_created,
                &mut pending_owned,
            ) {
                early.push((i, Err(e)));
                if let AppendOp::Agent {
                    agent,
                    stream_id,
                    seq,
                    ..
                } = op
                {
                    pending_seqs.remove(&(agent.clone(), *stream_id, *seq));
                }
                continue;
            }
            match op {
                AppendOp::Agent {
                    agent,
                    stream_id,
                    seq,
                    payload,
                    ..
                } => WalRecord::AgentBatch {
                    agent,
                    stream_id: *stream_id,
                    seq: *seq,
                    append_ms: now,
                    payload,
                }
                .encode_into(&mut buf),
                AppendOp::Series { payload, .. } => {
                    WalRecord::Series { payload }.encode_into(&mut buf)
                }
            }
            keep[i] = true;
        }
        drop(head);
        drop(pending_seqs);
        drop(pending_new);
        let mut replies: Vec<Option<Reply<AppendReply>>> = Vec::with_capacity(appends.len());
        let mut ops = Vec::with_capacity(appends.len());
        for (op, reply) in appends {
            ops.push(op);
            replies.push(Some(reply));
        }
        for (i, r) in early {
            if let Some(reply) = replies[i].take() {
                let _ = reply.send(r);
            }
        }
        let mut accepted_index = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            if keep[i] {
                if let Some(reply) = replies[i].take() {
                    accepted_index.push(i);
                    accepted.push(Accepted {
                        op,
                        reply,
                        append_ms: now,
                    });
                }
            }
        }
        if !accepted.is_empty() {
            let results = self.commit(&buf, &accepted, now);
            let mut outcome: HashMap<usize, Result<(), StorageError>> = HashMap::new();
            for ((a, r), i) in accepted.into_iter().zip(results).zip(accepted_index) {
                outcome.insert(
                    i,
                    match &r {
                        Ok(_) => Ok(()),
                        Err(e) => Err(copy_error(e)),
                    },
                );
                let _ = a.reply.send(r);
            }
            for (i, first) in repeats {
                let r = match outcome.get(&first) {
                    Some(Ok(())) => {
                        shared.metrics.batches_duplicate.inc();
                        Ok(AppendReply::Agent(AppendOutcome::Duplicate))
                    }
                    Some(Err(e)) => Err(copy_error(e)),
                    None => Err(StorageError::Failed(
                        "lost track of a repeated batch".into(),
                    )),
                };
                if let Some(reply) = replies[i].take() {
                    let _ = reply.send(r);
                }
            }
        }
        for reply in compactions {
            let r = self.retention().and_then(|()| self.compact(true));
            let _ = reply.send(r);
        }
        for reply in checkpoints {
            let r = self.checkpoint();
            let _ = reply.send(r);
        }
        if let Some(reply) = close {
            let r = if self.failed.is_none() && self.bytes_since_checkpoint > 0 {
                self.checkpoint()
            } else {
                Ok(())
            };
            let _ = reply.send(r);
            return true;
        }
        false
    }

    /// Writes a group to the WAL, then applies it to the head while another thread
    /// `fdatasync`s it, and answers the callers once both are done. Readers may see the group
    /// a moment before it is durable; if the sync fails the storage is poisoned (every later
    /// append fails), so nothing is ever acknowledged, as stored or as a duplicate, without
    /// being durable.
    fn commit(
        &mut self,
        buf: &[u8],
        accepted: &[Accepted],
        now: i64,
    ) -> Vec<Result<AppendReply, StorageError>> {
        let shared = self.shared.clone();
        let m = &shared.metrics;
        if let Err(e) = self.wal.write_group(buf) {
            m.wal_write_failures.inc();
            let msg = format!("writing WAL segment {}: {e}", self.wal.index());
            tracing::error!(error = %msg, "WAL write failed");
            if e.fatal {
                self.poison(msg.clone());
            }
            self.publish_wal_stats();
            return accepted
                .iter()
                .map(|_| {
                    Err(if e.fatal {
                        StorageError::Failed(msg.clone())
                    } else {
                        StorageError::io(
                            format!("writing WAL segment {}", self.wal.index()),
                            std::io::Error::new(e.source.kind(), e.source.to_string()),
                        )
                    })
                })
                .collect();
        }
        let started = Instant::now();
        let wal = &self.wal;
        let (synced, results) = std::thread::scope(|scope| {
            let sync = scope.spawn(move || wal.sync().map(|()| started.elapsed()));
            let results = apply_group(&shared, accepted, now);
            let synced = sync
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("fsync thread panicked")));
            (synced, results)
        });
        let out = match synced {
            Ok(elapsed) => {
                m.wal_fsyncs.inc();
                m.wal_fsync_seconds.observe(elapsed.as_secs_f64());
                m.wal_bytes_written.inc_by(buf.len() as u64);
                m.wal_records.inc_by(accepted.len() as u64);
                m.group_commit_records.observe(accepted.len() as f64);
                self.bytes_since_checkpoint += buf.len() as u64;
                // Durable now: only from here on may a resend be answered as a duplicate.
                for (a, r) in accepted.iter().zip(&results) {
                    if let (
                        AppendOp::Agent {
                            agent,
                            stream_id,
                            seq,
                            ..
                        },
                        AppendReply::Agent(AppendOutcome::Stored { samples }),
                    ) = (&a.op, r)
                    {
                        let d = Delivery {
                            agent,
                            stream_id: *stream_id,
                            seq: *seq,
                            append_ms: a.append_ms,
                        };
                        shared.record_delivery(d, *samples as u64);
                    }
                }
                results.into_iter().map(Ok).collect()
            }
            Err(e) => {
                m.wal_write_failures.inc();
                let msg = format!("fdatasync of WAL segment {}: {e}", self.wal.index());
                tracing::error!(error = %msg, "WAL sync failed; refusing all further writes");
                self.poison(msg.clone());
                accepted
                    .iter()
                    .map(|_| Err(StorageError::Failed(msg.clone())))
                    .collect()
            }
        };
        self.publish_wal_stats();
        out
    }

    fn poison(&mut self, msg: String) {
        *lock(&self.shared.poisoned) = Some(msg.clone());
        self.failed = Some(msg);
    }

    fn publish_wal_stats(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let bytes = self.wal.total_bytes();
        let segments = self.wal.segment_count() as u64;
        self.wal_stats.bytes.store(bytes, Relaxed);
        self.wal_stats.segments.store(segments, Relaxed);
        self.shared.metrics.wal_size_bytes.set(bytes as i64);
        self.shared.metrics.wal_segments.set(segments as i64);
    }

    /// Periodic work between groups: retention and checkpoints.
    fn maintenance(&mut self) {
        if self.failed.is_some() {
            return;
        }
        if !matches!(self.last_retention, Some(t) if t.elapsed() < RETENTION_INTERVAL) {
            if let Err(e) = self.retention() {
                tracing::error!(error = %e, "retention failed");
            }
        }
        if !matches!(self.compaction_backoff, Some(t) if Instant::now() < t)
            && self.compaction_cutoff() > self.compacted_before
        {
            match self.compact(false) {
                Ok(()) => self.compaction_backoff = None,
                Err(e) => {
                    tracing::error!(error = %e, "compaction failed; retrying in a minute");
                    self.compaction_backoff = Some(Instant::now() + RETENTION_INTERVAL);
                }
            }
        }
        let due = self.bytes_since_checkpoint
            >= self
                .shared
                .opts
                .checkpoint_wal_bytes
                .max(self.last_checkpoint_bytes)
            || (self.bytes_since_checkpoint > 0
                && self.last_checkpoint.elapsed() >= self.shared.opts.checkpoint_interval);
        let backing_off = matches!(self.checkpoint_backoff, Some(t) if Instant::now() < t);
        if due && !backing_off {
            match self.checkpoint() {
                Ok(()) => self.checkpoint_backoff = None,
                Err(e) => {
                    tracing::error!(error = %e, "checkpoint failed; WAL segments are kept, retrying in a minute");
                    self.checkpoint_backoff = Some(Instant::now() + RETENTION_INTERVAL);
                }
            }
        }
    }

    fn block_range_ms(&self) -> i64 {
        (self.shared.opts.block_duration.as_millis() as i64).max(1)
    }

    /// Head data older than this belongs in blocks: half a block duration ago, aligned down
    /// to a block boundary. Based on the wall clock, so an agent with a clock far in the future
    /// cannot push everything out of the head.
    fn compaction_cutoff(&self) -> i64 {
        let range = self.block_range_ms();
        (now_ms() - range / 2).div_euclid(range) * range
    }

    /// Drops head data and whole blocks older than the retention period.
    fn retention(&mut self) -> Result<(), StorageError> {
        self.last_retention = Some(Instant::now());
        self.shared.interner.purge();
        let cutoff = self.shared.min_valid_t(now_ms());
        let expired: Vec<Arc<Block>> = {
            let mut blocks = write(&self.shared.blocks);
            let (gone, keep): (Vec<_>, Vec<_>) = blocks.drain(..).partition(|b| b.maxt() < cutoff);
            *blocks = keep;
            let mut head = write(&self.shared.head);
            let removed = head.truncate_before(cutoff);
            self.shared.update_head_gauges(&head);
            if removed > 0 {
                tracing::debug!(removed, "retention removed expired series from the head");
            }
            gone
        };
        if expired.is_empty() {
            return Ok(());
        }
        for b in &expired {
            tracing::info!(
                block = b.name(),
                maxt = b.maxt(),
                "block expired by retention"
            );
            self.pending_delete.push(b.name().to_string());
        }
        self.publish_block_stats();
        // The files go once a checkpoint no longer lists them.
        self.checkpoint()
    }

    /// Moves head data older than the cutoff into new blocks and merges finished windows of
    /// small blocks, then checkpoints (the commit point: blocks not listed by a checkpoint are
    /// discarded on the next open).
    fn compact(&mut self, forced: bool) -> Result<(), StorageError> {
        let moved = self.compact_head(forced)?;
        let merged = self.merge_blocks().inspect_err(|_| {
            self.shared.metrics.compaction_failures.inc();
        })?;
        if moved || merged {
            self.checkpoint()?;
            self.shared.interner.purge();
        }
        Ok(())
    }

    /// How long a merged block may span: 12 block durations (a day by default), at most a
    /// tenth of the retention, as a multiple of the block duration.
    fn merge_range_ms(&self) -> i64 {
        let range = self.block_range_ms();
        let retention = self.shared.opts.retention;
        let cap = if retention.is_zero() {
            i64::MAX
        } else {
            (retention.as_millis() as i64 / 10).max(range)
        };
        (range.saturating_mul(12)).min(cap) / range * range
    }

    /// Merges the blocks of every merge window the head can no longer add to into one block,
    /// so the number of blocks (and their in-memory indexes) stays small. Returns whether
    /// anything was merged.
    fn merge_blocks(&mut self) -> Result<bool, StorageError> {
        let range = self.merge_range_ms();
        if range <= self.block_range_ms() {
            return Ok(false);
        }
        let blocks: Vec<Arc<Block>> = read(&self.shared.blocks).clone();
        let mut windows: BTreeMap<i64, Vec<Arc<Block>>> = BTreeMap::new();
        for b in blocks {
            windows
                .entry(b.mint().div_euclid(range))
                .or_default()
                .push(b);
        }
        let mut merged_any = false;
        for (w, group) in windows {
            if group.len() < 2 || (w + 1).saturating_mul(range) > self.compacted_before {
                continue;
            }
            let started = Instant::now();
            let name = format!("{:010}", self.next_block);
            self.next_block += 1;
            let mut by_labels: BTreeMap<Arc<Labels>, Vec<(usize, u32)>> = BTreeMap::new();
            for (bi, b) in group.iter().enumerate() {
                for (si, l) in b.series_labels() {
                    by_labels.entry(l.clone()).or_default().push((bi, si));
                }
            }
            let source = by_labels.into_iter().map(|(labels, refs)| {
                let mut samples = Vec::new();
                for (bi, si) in refs {
                    samples.extend(group[bi].read_samples(si)?);
                }
                block::sort_dedup(&mut samples);
                Ok(block::SeriesData { labels, samples })
            });
            block::write_sorted(&self.blocks_dir, &name, source)?;
            let merged = match Block::open(&self.blocks_dir, &name, &self.shared.interner) {
                Ok(b) => Arc::new(b),
                Err(e) => {
                    let _ = std::fs::remove_file(block::path(&self.blocks_dir, &name));
                    return Err(e);
                }
            };
            {
                let mut blocks = write(&self.shared.blocks);
                blocks.retain(|b| !group.iter().any(|g| Arc::ptr_eq(g, b)));
                blocks.push(merged);
                blocks.sort_by_key(|b| (b.mint(), b.maxt()));
            }
            for b in &group {
                self.pending_delete.push(b.name().to_string());
            }
            merged_any = true;
            tracing::info!(
                block = %name,
                merged = group.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "merged blocks"
            );
        }
        if merged_any {
            self.publish_block_stats();
        }
        Ok(merged_any)
    }

    /// Moves head data older than the cutoff into new blocks; returns whether it made any.
    fn compact_head(&mut self, forced: bool) -> Result<bool, StorageError> {
        let range = self.block_range_ms();
        let cutoff = self.compaction_cutoff();
        if !forced && cutoff <= self.compacted_before {
            return Ok(false);
        }
        let started = Instant::now();
        write(&self.shared.head).seal_before(cutoff);
        let groups = read(&self.shared.head).collect_before(cutoff, range);
        if groups.is_empty() {
            self.compacted_before = self.compacted_before.max(cutoff);
            return Ok(false);
        }
        let mut new_blocks: Vec<Arc<Block>> = Vec::new();
        let mut result = Ok(());
        for series in groups.into_values() {
            let name = format!("{:010}", self.next_block);
            self.next_block += 1;
            let written = block::write(&self.blocks_dir, &name, series)
                .and_then(|_| Block::open(&self.blocks_dir, &name, &self.shared.interner));
            match written {
                Ok(b) => new_blocks.push(Arc::new(b)),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if let Err(e) = result {
            self.shared.metrics.compaction_failures.inc();
            for b in &new_blocks {
                let _ = std::fs::remove_file(block::path(&self.blocks_dir, b.name()));
            }
            return Err(e);
        }
        let made = new_blocks.len();
        {
            let mut blocks = write(&self.shared.blocks);
            let mut head = write(&self.shared.head);
            blocks.extend(new_blocks);
            head.truncate_before(cutoff);
            self.shared.update_head_gauges(&head);
        }
        self.compacted_before = self.compacted_before.max(cutoff);
        self.shared.metrics.compactions.inc();
        self.publish_block_stats();
        tracing::info!(
            cutoff,
            blocks = made,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compacted head into blocks"
        );
        Ok(true)
    }

    fn publish_block_stats(&self) {
        let blocks = read(&self.shared.blocks);
        self.shared.metrics.blocks.set(blocks.len() as i64);
        self.shared
            .metrics
            .block_size_bytes
            .set(blocks.iter().map(|b| b.size()).sum::<u64>() as i64);
    }

    /// Rotates the WAL, snapshots everything written so far into a checkpoint, and deletes
    /// the WAL segments (and older checkpoints) it covers.
    fn checkpoint(&mut self) -> Result<(), StorageError> {
        if let Some(f) = &self.failed {
            return Err(StorageError::Failed(f.clone()));
        }
        let started = Instant::now();
        let res = self.checkpoint_inner();
        self.last_checkpoint = Instant::now();
        match &res {
            Ok(()) => {
                self.shared.metrics.checkpoints.inc();
                self.wal_stats
                    .checkpoints
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(
                    next_segment = self.checkpoint_segment,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "wrote checkpoint"
                );
            }
            Err(_) => self.shared.metrics.checkpoint_failures.inc(),
        }
        self.publish_wal_stats();
        res
    }

    fn checkpoint_inner(&mut self) -> Result<(), StorageError> {
        let next = self
            .wal
            .rotate()
            .map_err(|e| StorageError::io("rotating the WAL for a checkpoint", e))?;
        let cutoff = self.shared.min_valid_t(now_ms());
        let size = {
            let blocks_guard = read(&self.shared.blocks);
            let blocks: Vec<String> = blocks_guard.iter().map(|b| b.name().to_string()).collect();
            let mut head = write(&self.shared.head);
            head.truncate_before(cutoff);
            self.shared.update_head_gauges(&head);
            drop(head);
            let head = read(&self.shared.head);
            let streams = self.shared.stream_records();
            let events: Vec<(String, Event)> = lock(&self.shared.events).iter().cloned().collect();
            let parts = checkpoint::Parts {
                next_segment: next,
                compacted_before: self.compacted_before,
                blocks: &blocks,
                streams: &streams,
                events: &events,
                head: &head,
            };
            checkpoint::write(&self.dir, &parts).map_err(|e| {
                StorageError::io(format!("writing checkpoint in {}", self.dir.display()), e)
            })?
        };
        self.checkpoint_segment = next;
        self.bytes_since_checkpoint = 0;
        self.last_checkpoint_bytes = size;
        for name in std::mem::take(&mut self.pending_delete) {
            if let Err(e) = std::fs::remove_file(block::path(&self.blocks_dir, &name)) {
                tracing::warn!(block = %name, error = %e, "cannot delete expired block");
            }
        }
        self.wal
            .remove_before(next)
            .map_err(|e| StorageError::io("removing checkpointed WAL segments", e))?;
        Ok(())
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
