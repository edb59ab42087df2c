//! The in-memory head: every active series with its recent samples in Gorilla chunks (sealed
//! chunks plus one open chunk), a small sorted buffer for accepted out-of-order samples, and
//! the postings index over the series' labels. Only the storage's writer thread mutates the
//! head; readers take short read locks and copy chunk references out before decoding.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Arc;

use vigil_shared::model::{Labels, Point};

use super::block::{encode_samples, RawChunk, SeriesChunks};
use super::chunk::{ChunkAppender, ChunkError, SAMPLES_PER_CHUNK};
use super::intern::Interner;
use super::matcher::Matcher;
use super::payload::ParsedBatch;
use super::postings::Postings;

/// Hasher for `u32` series ids (already unique; a multiply spreads them over buckets).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;
/// A series id; its key is checked against the series' own labels.
type KeyedId = u32;
/// Keys are already uniformly distributed hashes.
type IdMap64<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// True when `key` is the series key of `labels`, compared in place (no copy of the key is
/// kept per series: that would duplicate every series' label bytes in memory).
fn key_matches(labels: &Labels, key: &[u8]) -> bool {
    let mut rest = key;
    for (n, v) in pair_bytes(labels) {
        for part in [n, v] {
            let Some((head, tail)) = rest.split_at_checked(part.len()) else {
                return false;
            };
            if head != part || tail.first() != Some(&0xff) {
                return false;
            }
            rest = &tail[1..];
        }
    }
    rest.is_empty()
}

/// Label pairs of a label set as bytes.
fn pair_bytes(l: &Labels) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
    l.as_slice()
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
}

/// Writes the series key of `pairs` into `out` (cleared first).
fn series_key<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>, out: &mut Vec<u8>) {
    out.clear();
    for (n, v) in pairs {
        out.extend_from_slice(n);
        out.push(0xff);
        out.extend_from_slice(v);
        out.push(0xff);
    }
}

/// An immutable compressed chunk.
#[derive(Debug, Clone)]
pub(crate) struct SealedChunk {
    pub data: Arc<[u8]>,
    pub mint: i64,
    pub maxt: i64,
    pub count: u16,
}

/// One series in the head.
#[derive(Debug)]
pub(crate) struct MemSeries {
    pub labels: Arc<Labels>,
    pub sealed: Vec<SealedChunk>,
    pub open: Option<ChunkAppender>,
    /// Accepted out-of-order samples, older than `max_t`.
    pub ooo: BTreeMap<i64, u64>,
    /// Highest in-order timestamp ever appended (`i64::MIN` when none).
    pub max_t: i64,
    /// Value bits of the sample at `max_t`.
    pub last_bits: u64,
    /// The tenant the series counts toward ([`NO_TENANT`] until a tenant writes to it).
    pub tenant: u16,
}

/// Tenant of a series restored from a checkpoint or the WAL and not written to since.
pub(crate) const NO_TENANT: u16 = u16::MAX;

impl MemSeries {
    fn new(labels: Arc<Labels>) -> Self {
        MemSeries {
            labels,
            sealed: Vec::new(),
            open: None,
            ooo: BTreeMap::new(),
            max_t: i64::MIN,
            last_bits: 0,
            tenant: NO_TENANT,
        }
    }

    /// Smallest timestamp held (for range checks), if any sample is held.
    pub fn min_time(&self) -> Option<i64> {
        let chunk_min = self.sealed.first().map(|c| c.mint).or_else(|| {
            self.open
                .as_ref()
                .filter(|o| o.count() > 0)
                .map(|o| o.mint())
        });
        let ooo_min = self.ooo.keys().next().copied();
        match (chunk_min, ooo_min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Largest timestamp held, if any.
    pub fn max_time(&self) -> Option<i64> {
        let chunk_max = self
            .open
            .as_ref()
            .filter(|o| o.count() > 0)
            .map(|o| o.maxt())
            .or_else(|| self.sealed.last().map(|c| c.maxt));
        let ooo_max = self.ooo.keys().next_back().copied();
        match (chunk_max, ooo_max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    fn overlaps(&self, start: i64, end: i64) -> bool {
        match (self.min_time(), self.max_time()) {
            (Some(lo), Some(hi)) => lo <= end && hi >= start,
            _ => false,
        }
    }

    /// Number of samples held.
    pub fn sample_count(&self) -> u64 {
        self.sealed.iter().map(|c| u64::from(c.count)).sum::<u64>()
            + self.open.as_ref().map_or(0, |o| u64::from(o.count()))
            + self.ooo.len() as u64
    }

    /// The value bits stored at `t` in the in-order chunks, if any.
    fn in_order_value_at(&self, t: i64) -> Result<Option<u64>, ChunkError> {
        let find = |bytes: &[u8]| -> Result<Option<u64>, ChunkError> {
            for s in super::chunk::ChunkIter::new(bytes)? {
                let (st, v) = s?;
                if st == t {
                    return Ok(Some(v));
                }
                if st > t {
                    break;
                }
            }
            Ok(None)
        };
        if let Some(o) = self.open.as_ref().filter(|o| o.count() > 0) {
            if o.mint() <= t && t <= o.maxt() {
                return find(o.bytes());
            }
        }
        for c in &self.sealed {
            if c.mint <= t && t <= c.maxt {
                return find(&c.data);
            }
        }
        Ok(None)
    }

    fn seal_open(&mut self) {
        if let Some(open) = self.open.take() {
            if open.count() > 0 {
                let (mint, maxt, count) = (open.mint(), open.maxt(), open.count());
                self.sealed.push(SealedChunk {
                    data: Arc::from(open.into_bytes()),
                    mint,
                    maxt,
                    count,
                });
            }
        }
    }
}

/// Appends one sample to a series; see [`Head::append`].
fn append_to(s: &mut MemSeries, t: i64, bits: u64, lim: Limits) -> SampleOutcome {
    if t < lim.min_valid_t {
        return SampleOutcome::TooOld;
    }
    if s.max_t == i64::MIN || t > s.max_t {
        // Chunks never cross a block boundary, so compaction moves whole chunks.
        let full = s.open.as_ref().is_some_and(|o| {
            o.count() >= SAMPLES_PER_CHUNK
                || (o.count() > 0
                    && o.mint().div_euclid(lim.chunk_range_ms) != t.div_euclid(lim.chunk_range_ms))
        });
        if full {
            s.seal_open();
        }
        s.open
            .get_or_insert_with(ChunkAppender::new)
            .append(t, bits);
        s.max_t = t;
        s.last_bits = bits;
        return SampleOutcome::Appended;
    }
    if t == s.max_t {
        return if bits == s.last_bits {
            SampleOutcome::Duplicate
        } else {
            SampleOutcome::DuplicateTimestamp
        };
    }
    if lim.ooo_window_ms <= 0 || t < s.max_t.saturating_sub(lim.ooo_window_ms) {
        return SampleOutcome::OutOfOrder;
    }
    let existing = match s.ooo.get(&t) {
        Some(&v) => Some(v),
        // A chunk that fails to decode cannot hold a usable sample at `t`.
        None => s.in_order_value_at(t).ok().flatten(),
    };
    match existing {
        Some(v) if v == bits => SampleOutcome::Duplicate,
        Some(_) => SampleOutcome::DuplicateTimestamp,
        None => {
            s.ooo.insert(t, bits);
            SampleOutcome::Appended
        }
    }
}

/// What an append may accept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Samples this far behind a series' newest one are still accepted out of order.
    pub ooo_window_ms: i64,
    /// Samples older than this are too old (retention).
    pub min_valid_t: i64,
    /// Open chunks are cut when a sample crosses a multiple of this (the block duration).
    pub chunk_range_ms: i64,
}

/// What happened to one appended sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SampleOutcome {
    /// Stored.
    Appended,
    /// An identical sample (same timestamp, same value bits) was already stored: ignored.
    Duplicate,
    /// A different value was already stored at that timestamp: rejected.
    DuplicateTimestamp,
    /// Older than the series' newest sample by more than the out-of-order window: rejected.
    OutOfOrder,
    /// Older than the retention period: rejected.
    TooOld,
}

/// What happened to the samples of an append.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendStats {
    /// Samples stored.
    pub appended: u64,
    /// Identical samples ignored.
    pub duplicate: u64,
    /// Samples rejected because another value exists at the same timestamp.
    pub duplicate_timestamp: u64,
    /// Samples rejected as out of order.
    pub out_of_order: u64,
    /// Samples rejected as older than retention.
    pub too_old: u64,
}

impl AppendStats {
    pub(crate) fn add(&mut self, o: SampleOutcome) {
        match o {
            SampleOutcome::Appended => self.appended += 1,
            SampleOutcome::Duplicate => self.duplicate += 1,
            SampleOutcome::DuplicateTimestamp => self.duplicate_timestamp += 1,
            SampleOutcome::OutOfOrder => self.out_of_order += 1,
            SampleOutcome::TooOld => self.too_old += 1,
        }
    }
}

/// A consistent copy of one series' head data, decoded outside the lock.
#[derive(Debug)]
pub(crate) struct SeriesSnapshot {
    pub labels: Arc<Labels>,
    pub chunks: Vec<Arc<[u8]>>,
    pub open: Option<Vec<u8>>,
    pub ooo: Vec<(i64, u64)>,
}

/// What [`Head::status`] reports.
#[derive(Debug, Clone)]
pub struct HeadStatus {
    pub num_series: usize,
    pub chunk_count: usize,
    pub min_time: i64,
    pub max_time: i64,
    pub postings: super::postings::PostingsStats,
    /// Head series owned by each tenant, the `limit` largest.
    pub tenants: Vec<(String, u64)>,
}

/// The head: series by id, by label hash, and the postings index.
///
/// Series are found by their series key — label names and values each followed by `0xff`,
/// which UTF-8 never contains — hashed with a keyed SipHash, and a batch's labels need no
/// `Labels` to be looked up. Only the id is kept next to the hash; a hit is confirmed by
/// comparing the key with the series' interned labels in place, which keeps a second copy
/// of every series' label bytes out of memory (RAM per active series is a target).
#[derive(Debug, Default)]
pub(crate) struct Head {
    series: IdMap<MemSeries>,
    /// Series id and series key by hash of the key.
    by_hash: IdMap64<KeyedId>,
    /// Further series whose hash is already taken in `by_hash` (practically never used).
    collisions: HashMap<u64, Vec<KeyedId>>,
    hasher: RandomState,
    /// Reused buffer for building series keys.
    scratch: Vec<u8>,
    /// Tests force every key onto one hash to exercise collision handling.
    #[cfg(test)]
    constant_hash: bool,
    /// Block duration: head chunks are cut at multiples of it.
    chunk_range_ms: i64,
    /// Label sets shared with the blocks.
    interner: Arc<Interner>,
    postings: Postings,
    next_id: u32,
    samples: u64,
    /// Tenant names by id, and how many head series each one owns.
    tenants: Vec<(Arc<str>, usize)>,
    /// The last batch of each agent stream, by position (see [`RecentBatch`]); emptied whenever
    /// series are removed.
    recent: HashMap<u64, RecentBatch>,
    /// Key bytes held in `recent`.
    recent_bytes: usize,
}

/// The series of a source's last batch in order, with their series keys in one buffer.
/// An agent sends the same series in the same order batch after batch, so series `i` of
/// its next batch is found by comparing its key with key `i` here, bytes that sit next to
/// each other, instead of probing the index and walking the stored label strings (which
/// took most of the ingest time).
#[derive(Debug, Default)]
struct RecentBatch {
    keys: Vec<u8>,
    /// End of each key in `keys`, and the series it named (`u32::MAX`: none).
    entries: Vec<(u32, u32)>,
}

/// Sources whose last batch is remembered; past it all are forgotten.
const MAX_RECENT_SOURCES: usize = 4096;
/// Largest batch remembered, in key bytes.
const MAX_RECENT_KEY_BYTES: usize = 8 << 20;
/// Key bytes remembered over all sources; past it all are forgotten.
const MAX_RECENT_TOTAL_BYTES: usize = 64 << 20;

impl RecentBatch {
    /// The series remembered at position `i` if its key is `key`.
    fn get(&self, i: usize, key: &[u8]) -> Option<u32> {
        let (end, id) = *self.entries.get(i)?;
        let start = match i {
            0 => 0,
            _ => self.entries[i - 1].0,
        };
        (id != u32::MAX && self.keys.get(start as usize..end as usize) == Some(key)).then_some(id)
    }

    fn push(&mut self, key: &[u8], id: u32) {
        self.keys.extend_from_slice(key);
        self.entries.push((self.keys.len() as u32, id));
    }
}

impl Head {
    /// An empty head whose chunks are cut at multiples of `chunk_range_ms`.
    pub fn new(chunk_range_ms: i64, interner: Arc<Interner>) -> Self {
        Head {
            chunk_range_ms: chunk_range_ms.max(1),
            interner,
            ..Default::default()
        }
    }

    fn limits(&self, ooo_window_ms: i64, min_valid_t: i64) -> Limits {
        Limits {
            ooo_window_ms,
            min_valid_t,
            chunk_range_ms: self.chunk_range_ms.max(1),
        }
    }

    /// Number of series.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Samples held in memory.
    pub fn sample_count(&self) -> u64 {
        self.samples
    }

    fn hash_key(&self, key: &[u8]) -> u64 {
        #[cfg(test)]
        if self.constant_hash {
            return 42;
        }
        let mut h = self.hasher.build_hasher();
        h.write(key);
        h.finish()
    }

    /// The series whose series key is `key`.
    fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        let matches = |id: &u32| {
            self.series
                .get(id)
                .is_some_and(|s| key_matches(&s.labels, key))
        };
        let id = *self.by_hash.get(&hash)?;
        if matches(&id) {
            return Some(id);
        }
        self.collisions.get(&hash)?.iter().copied().find(matches)
    }

    /// The id of the series with these labels, if it exists.
    pub fn lookup(&self, labels: &Labels) -> Option<u32> {
        let mut key = Vec::new();
        series_key(pair_bytes(labels), &mut key);
        self.find(self.hash_key(&key), &key)
    }

    /// The tenant of series `i` of a parsed batch ([`NO_TENANT`] when unowned), or `None`
    /// when the series does not exist.
    pub fn parsed_series_tenant(&self, batch: &ParsedBatch, i: usize) -> Option<u16> {
        let id = if batch.is_canonical(i) {
            let mut key = Vec::new();
            series_key(batch.label_bytes(i), &mut key);
            self.find(self.hash_key(&key), &key)
        } else {
            self.lookup(&batch.labels(i))
        }?;
        self.series.get(&id).map(|s| s.tenant)
    }

    /// The tenant of the series with these labels ([`NO_TENANT`] when unowned), or `None`
    /// when it does not exist.
    pub fn series_tenant(&self, labels: &Labels) -> Option<u16> {
        self.series.get(&self.lookup(labels)?).map(|s| s.tenant)
    }

    /// The id of tenant `name`, registering it when new. Past 65 534 tenants the last id is
    /// shared.
    pub fn tenant_id(&mut self, name: &str) -> u16 {
        if let Some(i) = self.tenants.iter().position(|(n, _)| &**n == name) {
            return i as u16;
        }
        if self.tenants.len() >= usize::from(NO_TENANT) {
            return NO_TENANT - 1;
        }
        self.tenants.push((Arc::from(name), 0));
        (self.tenants.len() - 1) as u16
    }

    /// Head series owned by tenant `name`.
    pub fn tenant_series(&self, name: &str) -> usize {
        self.tenants
            .iter()
            .find(|(n, _)| &**n == name)
            .map_or(0, |(_, c)| *c)
    }

    /// Every tenant seen with the number of head series it owns.
    pub fn tenant_counts(&self) -> impl Iterator<Item = (&str, usize)> {
        self.tenants.iter().map(|(n, c)| (&**n, *c))
    }

    /// Cardinality and extent of the head for `/api/v1/status/tsdb`; see
    /// [`Postings::stats`]. `min_time`/`max_time` are `i64::MAX`/`i64::MIN` when the head
    /// is empty, as in Prometheus.
    pub fn status(&self, limit: usize) -> HeadStatus {
        let (mut min_time, mut max_time, mut chunks) = (i64::MAX, i64::MIN, 0usize);
        for s in self.series.values() {
            chunks += s.sealed.len() + usize::from(s.open.as_ref().is_some_and(|o| o.count() > 0));
            if let (Some(lo), Some(hi)) = (s.min_time(), s.max_time()) {
                min_time = min_time.min(lo);
                max_time = max_time.max(hi);
            }
        }
        HeadStatus {
            num_series: self.series.len(),
            chunk_count: chunks,
            min_time,
            max_time,
            postings: self.postings.stats(vigil_shared::model::METRIC_NAME, limit),
            tenants: {
                let mut t: Vec<(String, u64)> = self
                    .tenants
                    .iter()
                    .map(|(n, c)| (n.to_string(), *c as u64))
                    .collect();
                super::postings::top(&mut t, limit);
                t
            },
        }
    }

    /// Makes `tenant` the owner of series `id` if nobody owns it yet.
    fn claim(&mut self, id: u32, tenant: Option<u16>) {
        let Some(t) = tenant.filter(|&t| t != NO_TENANT) else {
            return;
        };
        if let Some(s) = self.series.get_mut(&id) {
            if s.tenant == NO_TENANT {
                s.tenant = t;
                if let Some(c) = self.tenants.get_mut(usize::from(t)) {
                    c.1 += 1;
                }
            }
        }
    }

    fn insert_new(&mut self, hash: u64, key: &[u8], labels: Labels) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        let labels = self.interner.intern(labels);
        self.postings.add(id, &labels);
        debug_assert!(key_matches(&labels, key));
        match self.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.entry(hash).or_default().push(id);
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(id);
            }
        }
        self.series.insert(id, MemSeries::new(labels));
        id
    }

    /// The id of the series with these labels, creating it when new.
    pub fn get_or_create(&mut self, labels: &Labels) -> u32 {
        let mut key = std::mem::take(&mut self.scratch);
        series_key(pair_bytes(labels), &mut key);
        let hash = self.hash_key(&key);
        let id = match self.find(hash, &key) {
            Some(id) => id,
            None => self.insert_new(hash, &key, labels.clone()),
        };
        self.scratch = key;
        id
    }

    /// The id of series `i` of a parsed batch, creating it when new; `None` when its labels
    /// are empty after normalization. `recent` is the source's previous batch, tried first;
    /// `next` records this one.
    fn get_or_create_parsed(
        &mut self,
        batch: &ParsedBatch,
        i: usize,
        recent: &RecentBatch,
        next: &mut RecentBatch,
    ) -> Option<u32> {
        if !batch.is_canonical(i) {
            next.push(&[], u32::MAX);
            let labels = batch.labels(i);
            return (!labels.is_empty()).then(|| self.get_or_create(&labels));
        }
        let mut key = std::mem::take(&mut self.scratch);
        series_key(batch.label_bytes(i), &mut key);
        let id = match recent.get(i, &key) {
            Some(id) => Some(id),
            None => {
                let hash = self.hash_key(&key);
                match self.find(hash, &key) {
                    Some(id) => Some(id),
                    None => {
                        let labels = batch.labels(i);
                        (!labels.is_empty()).then(|| self.insert_new(hash, &key, labels))
                    }
                }
            }
        };
        next.push(&key, id.unwrap_or(u32::MAX));
        self.scratch = key;
        id
    }

    fn forget_recent(&mut self) {
        self.recent.clear();
        self.recent_bytes = 0;
    }

    /// A key naming a source, an agent's batch stream (one per agent process), for
    /// [`append_parsed`](Self::append_parsed).
    pub fn source_key(&self, agent: &str, stream_id: u64) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write(agent.as_bytes());
        h.write_u64(stream_id);
        h.finish()
    }

    /// A key naming the sender of a batch without a stream of its own (remote_write,
    /// recording rules) for [`append_parsed`](Self::append_parsed): its tenant, its first
    /// series and its length. A sender that repeats its series in the same order (one
    /// Prometheus shard or vmagent connection, a rule group) has its series found by position
    /// in its previous batch; any other batch just misses and is looked up by hash.
    pub fn batch_source_key(&self, tenant: &str, batch: &ParsedBatch) -> Option<u64> {
        if batch.series_len() == 0 {
            return None;
        }
        let mut h = self.hasher.build_hasher();
        h.write_u8(0xff);
        h.write(tenant.as_bytes());
        h.write_u8(0xff);
        for (n, v) in batch.label_bytes(0) {
            h.write(n);
            h.write_u8(0xff);
            h.write(v);
            h.write_u8(0xff);
        }
        h.write_usize(batch.series_len());
        Some(h.finish())
    }

    /// Appends every series of a parsed batch, tallying outcomes; `tenant` becomes the owner
    /// of series nobody owns yet (`None` on replay). `source` (see
    /// [`source_key`](Self::source_key)) names where the batch came from, so that its series
    /// are looked up by position in that source's previous batch first.
    pub fn append_parsed(
        &mut self,
        batch: &ParsedBatch,
        source: Option<u64>,
        ooo_window_ms: i64,
        min_valid_t: i64,
        tenant: Option<u16>,
        counts: &mut AppendStats,
    ) {
        let lim = self.limits(ooo_window_ms, min_valid_t);
        let recent = source
            .and_then(|s| self.recent.remove(&s))
            .unwrap_or_default();
        self.recent_bytes -= recent.keys.len();
        let mut next = RecentBatch {
            keys: Vec::with_capacity(recent.keys.len()),
            entries: Vec::with_capacity(batch.series_len()),
        };
        for i in 0..batch.series_len() {
            let found = self.get_or_create_parsed(batch, i, &recent, &mut next);
            let Some(id) = found else {
                continue;
            };
            self.claim(id, tenant);
            let Some(s) = self.series.get_mut(&id) else {
                continue;
            };
            for p in batch.points(i) {
                let o = append_to(s, p.timestamp_ms, p.value.to_bits(), lim);
                if o == SampleOutcome::Appended {
                    self.samples += 1;
                }
                counts.add(o);
            }
        }
        if let Some(source) = source {
            if self.recent.len() >= MAX_RECENT_SOURCES
                || self.recent_bytes + next.keys.len() > MAX_RECENT_TOTAL_BYTES
            {
                self.forget_recent();
            }
            if next.keys.len() <= MAX_RECENT_KEY_BYTES {
                self.recent_bytes += next.keys.len();
                self.recent.insert(source, next);
            }
        }
    }

    /// Appends one sample to series `id`. Samples older than `min_valid_t` are too old; samples
    /// up to `ooo_window_ms` older than the series' newest sample are kept out of order.
    #[cfg(test)]
    pub fn append(
        &mut self,
        id: u32,
        t: i64,
        bits: u64,
        ooo_window_ms: i64,
        min_valid_t: i64,
    ) -> SampleOutcome {
        let lim = self.limits(ooo_window_ms, min_valid_t);
        let Some(s) = self.series.get_mut(&id) else {
            return SampleOutcome::OutOfOrder;
        };
        let o = append_to(s, t, bits, lim);
        if o == SampleOutcome::Appended {
            self.samples += 1;
        }
        o
    }

    /// Appends points to the series with `labels` (created when new), tallying outcomes;
    /// `tenant` becomes the owner when nobody owns the series yet (`None` on replay).
    pub fn append_points(
        &mut self,
        labels: &Labels,
        points: &[Point],
        ooo_window_ms: i64,
        min_valid_t: i64,
        tenant: Option<u16>,
        counts: &mut AppendStats,
    ) {
        let lim = self.limits(ooo_window_ms, min_valid_t);
        let id = self.get_or_create(labels);
        self.claim(id, tenant);
        let Some(s) = self.series.get_mut(&id) else {
            return;
        };
        for p in points {
            let o = append_to(s, p.timestamp_ms, p.value.to_bits(), lim);
            if o == SampleOutcome::Appended {
                self.samples += 1;
            }
            counts.add(o);
        }
    }

    /// Ids of series matching `matchers` with samples in `[start, end]`.
    pub fn ids_in_range(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<u32> {
        self.postings
            .select(matchers)
            .into_iter()
            .filter(|id| self.series.get(id).is_some_and(|s| s.overlaps(start, end)))
            .collect()
    }

    /// Labels of series `id`.
    pub fn labels(&self, id: u32) -> Option<&Arc<Labels>> {
        self.series.get(&id).map(|s| &s.labels)
    }

    /// Copies the chunk references of the matching series overlapping `[start, end]`.
    pub fn snapshot(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<SeriesSnapshot> {
        let mut out = Vec::new();
        for id in self.ids_in_range(matchers, start, end) {
            let Some(s) = self.series.get(&id) else {
                continue;
            };
            out.push(SeriesSnapshot {
                labels: s.labels.clone(),
                chunks: s
                    .sealed
                    .iter()
                    .filter(|c| c.mint <= end && c.maxt >= start)
                    .map(|c| c.data.clone())
                    .collect(),
                open: s
                    .open
                    .as_ref()
                    .filter(|o| o.count() > 0 && o.mint() <= end && o.maxt() >= start)
                    .map(|o| o.bytes().to_vec()),
                ooo: s.ooo.range(start..=end).map(|(&t, &v)| (t, v)).collect(),
            });
        }
        out
    }

    /// Iterates every series (for checkpoints).
    pub fn iter(&self) -> impl Iterator<Item = &MemSeries> {
        let mut ids: Vec<&u32> = self.series.keys().collect();
        ids.sort_unstable();
        ids.into_iter().filter_map(|id| self.series.get(id))
    }

    /// Restores a series from a checkpoint.
    pub fn restore(
        &mut self,
        labels: &Labels,
        sealed: Vec<SealedChunk>,
        open: Option<ChunkAppender>,
        ooo: BTreeMap<i64, u64>,
        max_t: i64,
        last_bits: u64,
    ) {
        let id = self.get_or_create(labels);
        if let Some(s) = self.series.get_mut(&id) {
            s.sealed = sealed;
            s.open = open;
            s.ooo = ooo;
            s.max_t = max_t;
            s.last_bits = last_bits;
            self.samples += s.sample_count();
        }
    }

    /// Seals every open chunk whose newest sample is older than `cutoff`, so compaction can
    /// move it out of the head.
    pub fn seal_before(&mut self, cutoff: i64) {
        for s in self.series.values_mut() {
            if s.open
                .as_ref()
                .is_some_and(|o| o.count() > 0 && o.maxt() < cutoff)
            {
                s.seal_open();
            }
        }
    }

    /// Copies out what [`Head::truncate_before`] would drop for `cutoff`: sealed chunks ending
    /// before it and out-of-order samples before it, grouped by `range_ms`-aligned window of
    /// their start time (one block per window).
    pub fn collect_before(&self, cutoff: i64, range_ms: i64) -> BTreeMap<i64, Vec<SeriesChunks>> {
        let range_ms = range_ms.max(1);
        let mut out: BTreeMap<i64, Vec<SeriesChunks>> = BTreeMap::new();
        for s in self.iter() {
            let mut per_window: BTreeMap<i64, Vec<RawChunk>> = BTreeMap::new();
            for c in s.sealed.iter().filter(|c| c.maxt < cutoff) {
                per_window
                    .entry(c.mint.div_euclid(range_ms))
                    .or_default()
                    .push((c.mint, c.maxt, c.data.clone()));
            }
            let old: Vec<(i64, u64)> = s.ooo.range(..cutoff).map(|(&t, &v)| (t, v)).collect();
            let mut start = 0;
            while start < old.len() {
                let w = old[start].0.div_euclid(range_ms);
                let end = old[start..]
                    .iter()
                    .position(|p| p.0.div_euclid(range_ms) != w)
                    .map_or(old.len(), |i| start + i);
                per_window
                    .entry(w)
                    .or_default()
                    .extend(encode_samples(&old[start..end]));
                start = end;
            }
            for (w, chunks) in per_window {
                out.entry(w).or_default().push(SeriesChunks {
                    labels: s.labels.clone(),
                    chunks,
                });
            }
        }
        out
    }

    /// Drops samples older than `cutoff` (whole chunks only, so a chunk straddling the cutoff
    /// is kept until all of it has expired), and series left with nothing whose newest sample
    /// is older than `cutoff`. Returns the number of series removed.
    pub fn truncate_before(&mut self, cutoff: i64) -> usize {
        let mut removed_ids = Vec::new();
        let mut dropped = 0u64;
        for (&id, s) in self.series.iter_mut() {
            s.sealed.retain(|c| {
                let keep = c.maxt >= cutoff;
                if !keep {
                    dropped += u64::from(c.count);
                }
                keep
            });
            if s.open
                .as_ref()
                .is_some_and(|o| o.count() > 0 && o.maxt() < cutoff)
            {
                dropped += s.open.as_ref().map_or(0, |o| u64::from(o.count()));
                s.open = None;
            }
            let keep_ooo = s.ooo.split_off(&cutoff);
            dropped += s.ooo.len() as u64;
            s.ooo = keep_ooo;
            if s.sample_count() == 0 && s.max_t < cutoff {
                removed_ids.push(id);
            }
        }
        self.samples = self.samples.saturating_sub(dropped);
        self.remove_series(&removed_ids);
        removed_ids.len()
    }

    fn remove_series(&mut self, ids: &[u32]) {
        if !ids.is_empty() {
            // Remembered batches may name removed series.
            self.forget_recent();
        }
        let removed: Vec<(u32, MemSeries)> = ids
            .iter()
            .filter_map(|&id| self.series.remove(&id).map(|s| (id, s)))
            .collect();
        for (id, s) in &removed {
            let id = *id;
            if let Some(c) = self.tenants.get_mut(usize::from(s.tenant)) {
                c.1 = c.1.saturating_sub(1);
            }
            let mut key = Vec::new();
            series_key(pair_bytes(&s.labels), &mut key);
            let hash = self.hash_key(&key);
            if self.by_hash.get(&hash).is_some_and(|i| *i == id) {
                self.by_hash.remove(&hash);
                if let Some(others) = self.collisions.get_mut(&hash) {
                    if let Some(next) = others.pop() {
                        self.by_hash.insert(hash, next);
                    }
                    if others.is_empty() {
                        self.collisions.remove(&hash);
                    }
                }
            } else if let Some(others) = self.collisions.get_mut(&hash) {
                others.retain(|o| *o != id);
                if others.is_empty() {
                    self.collisions.remove(&hash);
                }
            }
        }
        let pairs: Vec<(u32, &Labels)> = removed.iter().map(|(id, s)| (*id, &*s.labels)).collect();
        self.postings.remove(&pairs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALE: u64 = 0x7ff0_0000_0000_0002;

    fn points(h: &Head, labels: &Labels) -> Vec<(i64, u64)> {
        let snaps = h.snapshot(
            &[Matcher::equal("__name__", labels.name())],
            i64::MIN,
            i64::MAX,
        );
        let s = snaps.iter().find(|s| *s.labels == *labels).unwrap();
        let mut out = Vec::new();
        for c in &s.chunks {
            super::super::chunk::decode_range(c, i64::MIN, i64::MAX, &mut out).unwrap();
        }
        if let Some(o) = &s.open {
            super::super::chunk::decode_range(o, i64::MIN, i64::MAX, &mut out).unwrap();
        }
        out.extend(s.ooo.iter().copied());
        out.sort_by_key(|p| p.0);
        out
    }

    #[test]
    fn out_of_order_window_accepts_recent_and_rejects_old_samples() {
        let mut h = Head::new(i64::MAX, Default::default());
        let l = Labels::metric("m", &[]);
        let id = h.get_or_create(&l);
        let one = 1.0f64.to_bits();
        assert_eq!(h.append(id, 10_000, one, 0, 0), SampleOutcome::Appended);
        assert_eq!(h.append(id, 9_000, one, 0, 0), SampleOutcome::OutOfOrder);
        assert_eq!(h.append(id, 10_000, one, 0, 0), SampleOutcome::Duplicate);
        assert_eq!(
            h.append(id, 10_000, 2.0f64.to_bits(), 0, 0),
            SampleOutcome::DuplicateTimestamp
        );
        // With a 5s window.
        assert_eq!(h.append(id, 6_000, one, 5_000, 0), SampleOutcome::Appended);
        assert_eq!(h.append(id, 6_000, one, 5_000, 0), SampleOutcome::Duplicate);
        assert_eq!(
            h.append(id, 6_000, 3.0f64.to_bits(), 5_000, 0),
            SampleOutcome::DuplicateTimestamp
        );
        assert_eq!(
            h.append(id, 4_999, one, 5_000, 0),
            SampleOutcome::OutOfOrder
        );
        assert_eq!(h.append(id, 11_000, one, 5_000, 0), SampleOutcome::Appended);
        assert_eq!(
            h.append(id, 10_000, one, 5_000, 0),
            SampleOutcome::Duplicate
        );
        assert_eq!(
            h.append(id, 10_000, STALE, 5_000, 0),
            SampleOutcome::DuplicateTimestamp
        );
        assert_eq!(h.append(id, 100, one, 0, 1_000), SampleOutcome::TooOld);
        assert_eq!(
            points(&h, &l),
            vec![(6_000, one), (10_000, one), (11_000, one)]
        );
        assert_eq!(h.sample_count(), 3);
    }

    #[test]
    fn chunks_seal_and_truncation_drops_whole_chunks_and_empty_series() {
        let mut h = Head::new(i64::MAX, Default::default());
        let a = Labels::metric("a", &[]);
        let b = Labels::metric("b", &[]);
        let ia = h.get_or_create(&a);
        let ib = h.get_or_create(&b);
        for t in 0..300i64 {
            assert_eq!(
                h.append(ia, t * 1000, (t as f64).to_bits(), 0, 0),
                SampleOutcome::Appended
            );
        }
        h.append(ib, 5, STALE, 0, 0);
        assert_eq!(points(&h, &a).len(), 300);
        assert_eq!(points(&h, &b), vec![(5, STALE)]);
        assert_eq!(h.sample_count(), 301);
        // Chunk 0 covers 0..=119s, chunk 1 120..=239s, open 240..=299s.
        assert_eq!(h.truncate_before(150_000), 1);
        assert_eq!(h.series_count(), 1);
        assert_eq!(points(&h, &a).first().unwrap().0, 120_000);
        assert_eq!(h.sample_count(), 180);
        assert!(h.lookup(&b).is_none());
        assert_eq!(h.ids_in_range(&[], 0, i64::MAX), vec![ia]);
    }

    #[test]
    fn colliding_series_hashes_keep_series_apart() {
        let mut h = Head::new(i64::MAX, Default::default());
        h.constant_hash = true;
        let ls: Vec<Labels> = (0..5)
            .map(|i| Labels::metric("m", &[("i", &i.to_string())]))
            .collect();
        let ids: Vec<u32> = ls.iter().map(|l| h.get_or_create(l)).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4]);
        for (l, id) in ls.iter().zip(&ids) {
            assert_eq!(h.lookup(l), Some(*id));
            assert_eq!(h.get_or_create(l), *id);
        }
        // Remove the one in the primary slot and one from the overflow list.
        h.remove_series(&[0, 3]);
        assert_eq!(h.lookup(&ls[0]), None);
        assert_eq!(h.lookup(&ls[3]), None);
        for i in [1, 2, 4] {
            assert_eq!(h.lookup(&ls[i]), Some(i as u32));
        }
        assert_eq!(h.get_or_create(&ls[0]), 5);
        assert_eq!(h.series_count(), 4);
    }

    #[test]
    fn head_chunks_are_cut_at_block_boundaries() {
        let mut h = Head::new(1000, Default::default());
        let l = Labels::metric("m", &[]);
        let id = h.get_or_create(&l);
        for t in [100, 900, 999, 1000, 1500, 2001] {
            assert_eq!(h.append(id, t, 1, 0, 0), SampleOutcome::Appended);
        }
        let s = &h.series[&id];
        let sealed: Vec<(i64, i64)> = s.sealed.iter().map(|c| (c.mint, c.maxt)).collect();
        assert_eq!(sealed, vec![(100, 999), (1000, 1500)]);
        assert_eq!(s.open.as_ref().map(|o| o.mint()), Some(2001));
        assert_eq!(points(&h, &l).len(), 6);
    }

    #[test]
    fn collect_before_takes_exactly_what_truncate_before_drops() {
        let mut h = Head::new(i64::MAX, Default::default());
        let a = Labels::metric("a", &[]);
        let ia = h.get_or_create(&a);
        for t in 0..250i64 {
            h.append(ia, 10_000 + t * 1000, (t as f64).to_bits(), 1_000_000, 0);
        }
        // Out-of-order samples in two windows.
        h.append(ia, 500, 1, 1_000_000, 0);
        h.append(ia, 9_000, 3, 1_000_000, 0);
        let before = points(&h, &a);
        let cutoff = 200_000;
        h.seal_before(cutoff);
        let groups = h.collect_before(cutoff, 5_000);
        let mut moved = Vec::new();
        for series in groups.values() {
            for sc in series {
                for (_, _, c) in &sc.chunks {
                    super::super::chunk::decode_range(c, i64::MIN, i64::MAX, &mut moved).unwrap();
                }
            }
        }
        assert_eq!(groups.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
        h.truncate_before(cutoff);
        let mut kept = points(&h, &a);
        let n_moved = moved.len();
        kept.extend(moved);
        kept.sort_by_key(|p| p.0);
        assert_eq!(kept, before);
        assert_eq!(h.sample_count() as usize, before.len() - n_moved);
        assert!(points(&h, &a).iter().all(|p| p.0 >= 10_000 + 120_000));
    }

    fn parsed(series: &[(&str, &str, i64)]) -> ParsedBatch {
        let batch = vigil_shared::model::Batch {
            series: series
                .iter()
                .map(|&(name, inst, t)| vigil_shared::model::Series {
                    labels: Labels::metric(name, &[("instance", inst)]),
                    points: vec![vigil_shared::model::Point {
                        timestamp_ms: t,
                        value: t as f64,
                    }],
                })
                .collect(),
            events: vec![],
        };
        ParsedBatch::decode(&vigil_shared::codec::encode_batch(&batch).unwrap()).unwrap()
    }

    /// The by-position lookup of an agent's previous batch: the same, reordered, renamed and
    /// removed series all land in the right place, as without it.
    #[test]
    fn recent_batch_lookup_finds_the_right_series_or_falls_back() {
        let mut h = Head::new(
            7_200_000,
            Arc::new(super::super::intern::Interner::default()),
        );
        let src = Some(h.source_key("agent-1", 1));
        let mut counts = AppendStats::default();
        let mut add = |h: &mut Head, series: &[(&str, &str, i64)], src| {
            h.append_parsed(&parsed(series), src, i64::MAX, i64::MIN, None, &mut counts)
        };
        add(
            &mut h,
            &[("a", "x", 1000), ("b", "x", 1000), ("c", "x", 1000)],
            src,
        );
        // Same order, then swapped, then one renamed: 4 series, each sample where it belongs.
        add(
            &mut h,
            &[("a", "x", 2000), ("b", "x", 2000), ("c", "x", 2000)],
            src,
        );
        add(
            &mut h,
            &[("c", "x", 3000), ("a", "x", 3000), ("b", "x", 3000)],
            src,
        );
        add(
            &mut h,
            &[("a", "x", 4000), ("b", "y", 4000), ("c", "x", 4000)],
            src,
        );
        // Another agent's batch does not disturb this one's memory.
        let other = Some(h.source_key("agent-2", 1));
        add(&mut h, &[("b", "x", 4500)], other);
        add(
            &mut h,
            &[("a", "x", 5000), ("b", "y", 5000), ("c", "x", 5000)],
            src,
        );
        assert_eq!(h.series_count(), 4);
        let l = |n: &str, i: &str| Labels::metric(n, &[("instance", i)]);
        let times = |h: &Head, labels: &Labels| -> Vec<i64> {
            points(h, labels).iter().map(|p| p.0).collect()
        };
        assert_eq!(times(&h, &l("a", "x")), [1000, 2000, 3000, 4000, 5000]);
        assert_eq!(times(&h, &l("b", "x")), [1000, 2000, 3000, 4500]);
        assert_eq!(times(&h, &l("b", "y")), [4000, 5000]);
        assert_eq!(times(&h, &l("c", "x")), [1000, 2000, 3000, 4000, 5000]);

        // Series removed from the head are not found through a remembered batch.
        let removed = h.truncate_before(6000);
        assert_eq!(removed, 4);
        add(
            &mut h,
            &[("a", "x", 7000), ("b", "y", 7000), ("c", "x", 7000)],
            src,
        );
        assert_eq!(h.series_count(), 3);
        assert_eq!(times(&h, &l("a", "x")), [7000]);
        assert_eq!(times(&h, &l("b", "y")), [7000]);
    }
}
