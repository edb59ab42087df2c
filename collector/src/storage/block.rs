//! Immutable on-disk blocks: head chunks older than the compaction cutoff, written once and
//! then only read or deleted whole (by retention). One file per block in `<data>/blocks/`:
//!
//! ```text
//! "VGBLK002"
//! chunk bytes, series after series (sorted by labels), chunks in time order
//! index (zstd-compressed; see below)
//! footer: index offset u64 LE, index length u64 LE, index CRC-32 u32 LE, "VGBLKEND"
//! ```
//!
//! The index holds mint, maxt, series count, then per series its labels and per chunk
//! (mint, maxt, offset, length, CRC-32 of the chunk). Format 2 stores the index as
//! `uvarint raw length` followed by a zstd frame, and its chunks are [`super::dense`] chunks:
//! every series' samples re-encoded at compaction time into dense, zstd-compressed columns
//! of up to 8192 samples. Format 1 (`"VGBLK001"`, written before) has a plain index and the
//! head's Gorilla chunks; such blocks stay readable and are rewritten in format 2 when they
//! are merged.
//!
//! Opening a block reads and verifies only the index; chunks are read with positioned reads
//! when queried and verified against their CRC. Files are written to a temporary name,
//! fsynced and renamed; a block only counts once a checkpoint lists it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vigil_shared::model::Labels;

use super::chunk::{self, ChunkAppender, ChunkIter, SAMPLES_PER_CHUNK};
use super::dense::{self, DenseEncoder};
use super::encoding::{Dec, DecodeError, Enc};
use super::intern::Interner;
use super::matcher::Matcher;
use super::postings::Postings;
use super::wal::sync_dir;
use super::StorageError;

const MAGIC_V1: &[u8; 8] = b"VGBLK001";
const MAGIC: &[u8; 8] = b"VGBLK002";
/// Largest decompressed index accepted (a corrupt length must not allocate without bound).
const MAX_INDEX_BYTES: u64 = 4 << 30;
/// zstd level for the index: labels repeat a lot, and it is written once.
const INDEX_ZSTD_LEVEL: i32 = 9;
const END_MAGIC: &[u8; 8] = b"VGBLKEND";
const FOOTER_BYTES: usize = 8 + 8 + 4 + 8;
const SUFFIX: &str = ".blk";

/// Where one chunk lives in a block file.
#[derive(Debug, Clone, Copy)]
struct ChunkMeta {
    mint: i64,
    maxt: i64,
    offset: u64,
    len: u32,
    crc: u32,
}

#[derive(Debug)]
struct BlockSeries {
    labels: Arc<Labels>,
    chunks: Vec<ChunkMeta>,
    /// True when chunks overlap in time (out-of-order data), so reads must sort.
    overlapping: bool,
}

/// A chunk ready for a block: `(mint, maxt, bytes)`.
pub(crate) type RawChunk = (i64, i64, Arc<[u8]>);

/// One series' samples read from a block: `(timestamp, value bits)`, sorted.
pub(crate) type SeriesSamples = (Arc<Labels>, Vec<(i64, u64)>);

/// One series' data handed to [`write`]: head (Gorilla) chunks in any order.
#[derive(Debug)]
pub(crate) struct SeriesChunks {
    pub labels: Arc<Labels>,
    pub chunks: Vec<RawChunk>,
}

/// One series' samples handed to [`write_sorted`]: sorted by time, no duplicate timestamps.
#[derive(Debug)]
pub(crate) struct SeriesData {
    pub labels: Arc<Labels>,
    pub samples: Vec<(i64, u64)>,
}

/// Sorts samples gathered from several chunks or blocks by time; of samples with the same
/// timestamp the first one gathered is kept.
pub(crate) fn sort_dedup(samples: &mut Vec<(i64, u64)>) {
    if samples.windows(2).any(|w| w[0].0 >= w[1].0) {
        samples.sort_by_key(|x| x.0);
        samples.dedup_by_key(|x| x.0);
    }
}

impl SeriesChunks {
    /// Decodes the head chunks into one sorted run of samples.
    fn into_data(mut self) -> Result<SeriesData, StorageError> {
        self.chunks.sort_by_key(|c| (c.0, c.1));
        let mut samples = Vec::new();
        for (_, _, bytes) in &self.chunks {
            for s in ChunkIter::new(bytes).map_err(|e| StorageError::Corrupt {
                what: "head chunk".into(),
                detail: e.to_string(),
            })? {
                samples.push(s.map_err(|e| StorageError::Corrupt {
                    what: "head chunk".into(),
                    detail: e.to_string(),
                })?);
            }
        }
        sort_dedup(&mut samples);
        Ok(SeriesData {
            labels: self.labels,
            samples,
        })
    }
}

/// Encodes sorted samples into chunks of at most [`SAMPLES_PER_CHUNK`].
pub(crate) fn encode_samples(samples: &[(i64, u64)]) -> Vec<RawChunk> {
    samples
        .chunks(usize::from(SAMPLES_PER_CHUNK))
        .map(|part| {
            let mut a = ChunkAppender::new();
            for &(t, v) in part {
                a.append(t, v);
            }
            let (mint, maxt) = (a.mint(), a.maxt());
            (mint, maxt, Arc::from(a.into_bytes()))
        })
        .collect()
}

/// An open block.
#[derive(Debug)]
pub(crate) struct Block {
    name: String,
    path: PathBuf,
    file: File,
    mint: i64,
    maxt: i64,
    size: u64,
    /// 1: Gorilla chunks, plain index; 2: dense chunks, compressed index.
    version: u8,
    series: Vec<BlockSeries>,
    postings: Postings,
}

fn corrupt(path: &Path, detail: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt {
        what: format!("block {}", path.display()),
        detail: detail.to_string(),
    }
}

/// Writes a block named `name` in `dir` from series in any order; returns its size.
pub(crate) fn write(
    dir: &Path,
    name: &str,
    mut series: Vec<SeriesChunks>,
) -> Result<u64, StorageError> {
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    write_sorted(dir, name, series.into_iter().map(SeriesChunks::into_data))
}

/// Writes a block named `name` in `dir` from series given in label order, streaming chunk
/// bytes to the file so only the index is held in memory; returns the block's size. The
/// file appears under its final name only once complete and synced.
pub(crate) fn write_sorted(
    dir: &Path,
    name: &str,
    series: impl Iterator<Item = Result<SeriesData, StorageError>>,
) -> Result<u64, StorageError> {
    let tmp = dir.join(format!("{name}{SUFFIX}.tmp"));
    let res = write_file(&tmp, series).and_then(|size| {
        let io = |e| StorageError::Io {
            context: format!("publishing block {}", tmp.display()),
            source: e,
        };
        fs::rename(&tmp, path(dir, name)).map_err(io)?;
        sync_dir(dir).map_err(io)?;
        Ok(size)
    });
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

fn write_file(
    tmp: &Path,
    series: impl Iterator<Item = Result<SeriesData, StorageError>>,
) -> Result<u64, StorageError> {
    let io = |e| StorageError::Io {
        context: format!("writing block {}", tmp.display()),
        source: e,
    };
    let mut w = io::BufWriter::with_capacity(1 << 20, File::create(tmp).map_err(io)?);
    w.write_all(MAGIC).map_err(io)?;
    let mut encoder = DenseEncoder::new().map_err(io)?;
    let mut offset = MAGIC.len() as u64;
    let mut mint = i64::MAX;
    let mut maxt = i64::MIN;
    let mut metas: Vec<(Arc<Labels>, Vec<ChunkMeta>)> = Vec::new();
    for s in series {
        let s = s?;
        let mut m = Vec::with_capacity(s.samples.len().div_ceil(dense::MAX_SAMPLES));
        for part in s.samples.chunks(dense::MAX_SAMPLES) {
            let (cmin, cmax) = (part[0].0, part[part.len() - 1].0);
            let bytes = encoder.encode(part).map_err(io)?;
            mint = mint.min(cmin);
            maxt = maxt.max(cmax);
            m.push(ChunkMeta {
                mint: cmin,
                maxt: cmax,
                offset,
                len: bytes.len() as u32,
                crc: crc32fast::hash(&bytes),
            });
            w.write_all(&bytes).map_err(io)?;
            offset += bytes.len() as u64;
        }
        if !m.is_empty() {
            metas.push((s.labels, m));
        }
    }
    let raw = encode_index(mint, maxt, &metas);
    let mut index = Enc::with_capacity(raw.len() / 4 + 16);
    index.uvarint(raw.len() as u64);
    index
        .buf
        .extend_from_slice(&zstd::bulk::compress(&raw, INDEX_ZSTD_LEVEL).map_err(io)?);
    finish(w, offset, &index.buf, io)
}

fn encode_index(mint: i64, maxt: i64, metas: &[(Arc<Labels>, Vec<ChunkMeta>)]) -> Vec<u8> {
    let mut index = Enc::with_capacity(1 << 16);
    index.varint(mint);
    index.varint(maxt);
    index.uvarint(metas.len() as u64);
    for (labels, chunks) in metas {
        index.labels(labels);
        index.uvarint(chunks.len() as u64);
        for c in chunks {
            index.varint(c.mint);
            index.varint(c.maxt);
            index.uvarint(c.offset);
            index.uvarint(u64::from(c.len));
            index.u32_le(c.crc);
        }
    }
    index.buf
}

/// Writes the index and footer after `offset` bytes of chunks, then syncs.
fn finish(
    mut w: io::BufWriter<File>,
    offset: u64,
    index: &[u8],
    io: impl Fn(io::Error) -> StorageError,
) -> Result<u64, StorageError> {
    let index_offset = offset;
    let index_len = index.len() as u64;
    let index_crc = crc32fast::hash(index);
    w.write_all(index).map_err(&io)?;
    w.write_all(&index_offset.to_le_bytes()).map_err(&io)?;
    w.write_all(&index_len.to_le_bytes()).map_err(&io)?;
    w.write_all(&index_crc.to_le_bytes()).map_err(&io)?;
    w.write_all(END_MAGIC).map_err(&io)?;
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(&io)?;
    Ok(index_offset + index_len + FOOTER_BYTES as u64)
}

/// Path of block `name` in `dir`.
pub(crate) fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{SUFFIX}"))
}

/// Names of the block files in `dir` (temporary files are removed).
pub(crate) fn list(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name.strip_suffix(SUFFIX) {
            out.push(n.to_string());
        } else if name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn decode_index(
    bytes: &[u8],
    interner: &Interner,
) -> Result<(i64, i64, Vec<BlockSeries>), DecodeError> {
    let mut d = Dec::new(bytes);
    let mint = d.varint()?;
    let maxt = d.varint()?;
    let n = d.len()?;
    let mut series = Vec::with_capacity(n);
    for _ in 0..n {
        let labels = interner.intern(d.labels()?);
        let nc = d.len()?;
        let mut chunks: Vec<ChunkMeta> = Vec::with_capacity(nc);
        let mut overlapping = false;
        for _ in 0..nc {
            let c = ChunkMeta {
                mint: d.varint()?,
                maxt: d.varint()?,
                offset: d.uvarint()?,
                len: u32::try_from(d.uvarint()?)
                    .map_err(|_| DecodeError("chunk length out of range".into()))?,
                crc: d.u32_le()?,
            };
            if chunks.last().is_some_and(|p| c.mint <= p.maxt) {
                overlapping = true;
            }
            chunks.push(c);
        }
        series.push(BlockSeries {
            labels,
            chunks,
            overlapping,
        });
    }
    if !d.is_empty() {
        return Err(DecodeError("trailing bytes in index".into()));
    }
    Ok((mint, maxt, series))
}

fn decompress_index(stored: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut d = Dec::new(stored);
    let raw_len = d.uvarint()?;
    if raw_len > MAX_INDEX_BYTES {
        return Err(DecodeError(format!("index claims {raw_len} bytes")));
    }
    let raw = zstd::bulk::decompress(d.rest(), raw_len as usize)
        .map_err(|e| DecodeError(format!("index does not decompress: {e}")))?;
    if raw.len() as u64 != raw_len {
        return Err(DecodeError(format!(
            "index decompressed to {} bytes, expected {raw_len}",
            raw.len()
        )));
    }
    Ok(raw)
}

impl Block {
    /// Opens block `name` in `dir`, reading and verifying its index.
    pub fn open(dir: &Path, name: &str, interner: &Interner) -> Result<Block, StorageError> {
        let p = path(dir, name);
        let file = File::open(&p).map_err(|e| StorageError::Io {
            context: format!("opening block {}", p.display()),
            source: e,
        })?;
        let size = file
            .metadata()
            .map_err(|e| StorageError::Io {
                context: format!("reading block {}", p.display()),
                source: e,
            })?
            .len();
        if size < (MAGIC.len() + FOOTER_BYTES) as u64 {
            return Err(corrupt(&p, "file too short"));
        }
        let mut footer = [0u8; FOOTER_BYTES];
        file.read_exact_at(&mut footer, size - FOOTER_BYTES as u64)
            .map_err(|e| corrupt(&p, e))?;
        if &footer[20..] != END_MAGIC {
            return Err(corrupt(&p, "bad footer magic"));
        }
        let mut magic = [0u8; 8];
        file.read_exact_at(&mut magic, 0)
            .map_err(|e| corrupt(&p, e))?;
        let version = match &magic {
            m if m == MAGIC_V1 => 1,
            m if m == MAGIC => 2,
            _ => return Err(corrupt(&p, "unknown block format (bad header magic)")),
        };
        let mut d = Dec::new(&footer);
        let (index_offset, index_len, index_crc) = (
            d.u64_le().map_err(|e| corrupt(&p, e))?,
            d.u64_le().map_err(|e| corrupt(&p, e))?,
            d.u32_le().map_err(|e| corrupt(&p, e))?,
        );
        if index_offset
            .checked_add(index_len)
            .filter(|&end| end <= size - FOOTER_BYTES as u64)
            .is_none()
        {
            return Err(corrupt(&p, "index outside the file"));
        }
        let mut index = vec![0u8; index_len as usize];
        file.read_exact_at(&mut index, index_offset)
            .map_err(|e| corrupt(&p, e))?;
        if crc32fast::hash(&index) != index_crc {
            return Err(corrupt(&p, "index checksum mismatch"));
        }
        if version >= 2 {
            index = decompress_index(&index).map_err(|e| corrupt(&p, e))?;
        }
        let (mint, maxt, series) = decode_index(&index, interner).map_err(|e| corrupt(&p, e))?;
        if series
            .iter()
            .flat_map(|s| &s.chunks)
            .any(|c| c.offset + u64::from(c.len) > index_offset)
        {
            return Err(corrupt(&p, "chunk reference outside the data region"));
        }
        let mut postings = Postings::default();
        for (i, s) in series.iter().enumerate() {
            postings.add(i as u32, &s.labels);
        }
        Ok(Block {
            name: name.to_string(),
            path: p,
            file,
            mint,
            maxt,
            size,
            version,
            series,
            postings,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn mint(&self) -> i64 {
        self.mint
    }

    pub fn maxt(&self) -> i64 {
        self.maxt
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The block's format version (1 or 2).
    #[cfg(test)]
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Decodes one chunk of this block's format into `out`.
    fn decode_chunk(
        &self,
        bytes: &[u8],
        start: i64,
        end: i64,
        out: &mut Vec<(i64, u64)>,
    ) -> Result<(), StorageError> {
        match self.version {
            1 => chunk::decode_range(bytes, start, end, out).map_err(|e| corrupt(&self.path, e)),
            _ => dense::decode_range(bytes, start, end, out).map_err(|e| corrupt(&self.path, e)),
        }
    }

    fn overlaps(&self, start: i64, end: i64) -> bool {
        self.mint <= end && self.maxt >= start
    }

    /// Ids of matching series with a chunk overlapping `[start, end]`.
    fn ids(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<u32> {
        if !self.overlaps(start, end) {
            return Vec::new();
        }
        self.postings
            .select(matchers)
            .into_iter()
            .filter(|&id| {
                self.series[id as usize]
                    .chunks
                    .iter()
                    .any(|c| c.mint <= end && c.maxt >= start)
            })
            .collect()
    }

    /// Labels of matching series with data in the range.
    pub fn labels_in_range(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<Arc<Labels>> {
        self.ids(matchers, start, end)
            .into_iter()
            .map(|id| self.series[id as usize].labels.clone())
            .collect()
    }

    /// Every series' labels with its position, in label order.
    pub fn series_labels(&self) -> impl Iterator<Item = (u32, &Arc<Labels>)> {
        self.series
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u32, &s.labels))
    }

    /// All samples of series `id` in time order, checksums verified, for merging blocks.
    pub fn read_samples(&self, id: u32) -> Result<Vec<(i64, u64)>, StorageError> {
        let Some(s) = self.series.get(id as usize) else {
            return Ok(Vec::new());
        };
        let (Some(first), Some(end)) = (
            s.chunks.first(),
            s.chunks.iter().map(|c| c.offset + u64::from(c.len)).max(),
        ) else {
            return Ok(Vec::new());
        };
        let mut buf = vec![0u8; (end - first.offset) as usize];
        self.file
            .read_exact_at(&mut buf, first.offset)
            .map_err(|e| corrupt(&self.path, e))?;
        let mut out = Vec::new();
        for c in &s.chunks {
            let lo = (c.offset - first.offset) as usize;
            let bytes = &buf[lo..lo + c.len as usize];
            if crc32fast::hash(bytes) != c.crc {
                return Err(corrupt(
                    &self.path,
                    format!("chunk checksum mismatch at offset {}", c.offset),
                ));
            }
            self.decode_chunk(bytes, i64::MIN, i64::MAX, &mut out)?;
        }
        if s.overlapping {
            sort_dedup(&mut out);
        }
        Ok(out)
    }

    /// Samples of matching series in `[start, end]`, series in label order.
    pub fn select(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<SeriesSamples>, StorageError> {
        let mut out = Vec::new();
        let p = || self.path.clone();
        let mut buf = Vec::new();
        for id in self.ids(matchers, start, end) {
            let s = &self.series[id as usize];
            let chunks: Vec<&ChunkMeta> = s
                .chunks
                .iter()
                .filter(|c| c.mint <= end && c.maxt >= start)
                .collect();
            let (Some(first), Some(last)) = (chunks.first(), chunks.last()) else {
                continue;
            };
            // The chunks of a series are contiguous in the file: read them in one go.
            let span_start = first.offset;
            let span_end = chunks
                .iter()
                .map(|c| c.offset + u64::from(c.len))
                .max()
                .unwrap_or(last.offset + u64::from(last.len));
            buf.resize((span_end - span_start) as usize, 0);
            self.file
                .read_exact_at(&mut buf, span_start)
                .map_err(|e| corrupt(&p(), e))?;
            let mut samples = Vec::new();
            for c in chunks {
                let lo = (c.offset - span_start) as usize;
                let bytes = &buf[lo..lo + c.len as usize];
                if crc32fast::hash(bytes) != c.crc {
                    return Err(corrupt(
                        &p(),
                        format!("chunk checksum mismatch at offset {}", c.offset),
                    ));
                }
                self.decode_chunk(bytes, start, end, &mut samples)?;
            }
            if s.overlapping {
                samples.sort_by_key(|x| x.0);
                samples.dedup_by_key(|x| x.0);
            }
            if !samples.is_empty() {
                out.push((s.labels.clone(), samples));
            }
        }
        Ok(out)
    }
}

/// Writes a block in the old format 1 (Gorilla chunks, plain index), to test that such
/// blocks stay readable and are migrated by merging.
#[cfg(test)]
pub(crate) fn write_v1(
    dir: &Path,
    name: &str,
    mut series: Vec<SeriesChunks>,
) -> Result<u64, StorageError> {
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    let io = |e| StorageError::Io {
        context: "writing v1 block".into(),
        source: e,
    };
    let mut w = io::BufWriter::new(File::create(path(dir, name)).map_err(io)?);
    w.write_all(MAGIC_V1).map_err(io)?;
    let mut offset = MAGIC_V1.len() as u64;
    let (mut mint, mut maxt) = (i64::MAX, i64::MIN);
    let mut metas = Vec::new();
    for mut s in series {
        s.chunks.sort_by_key(|c| (c.0, c.1));
        let mut m = Vec::new();
        for (cmin, cmax, bytes) in &s.chunks {
            mint = mint.min(*cmin);
            maxt = maxt.max(*cmax);
            m.push(ChunkMeta {
                mint: *cmin,
                maxt: *cmax,
                offset,
                len: bytes.len() as u32,
                crc: crc32fast::hash(bytes),
            });
            w.write_all(bytes).map_err(io)?;
            offset += bytes.len() as u64;
        }
        metas.push((s.labels, m));
    }
    finish(w, offset, &encode_index(mint, maxt, &metas), io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testutil::TempDir;

    /// Two series' labels, the first one's samples, and both as head chunks.
    type TwoSeries = (Arc<Labels>, Arc<Labels>, Vec<(i64, u64)>, Vec<SeriesChunks>);

    fn two_series() -> TwoSeries {
        let a = Arc::new(Labels::metric("a", &[("x", "1")]));
        let b = Arc::new(Labels::metric("b", &[]));
        let samples: Vec<(i64, u64)> = (0..300).map(|i| (i * 10, (i as f64).to_bits())).collect();
        let mut b_chunks = encode_samples(&[(5, 1), (15, 2)]);
        // An out-of-order chunk overlapping the first one, as compaction may produce.
        b_chunks.extend(encode_samples(&[(10, 3), (15, 2)]));
        let series = vec![
            SeriesChunks {
                labels: b.clone(),
                chunks: b_chunks,
            },
            SeriesChunks {
                labels: a.clone(),
                chunks: encode_samples(&samples),
            },
        ];
        (a, b, samples, series)
    }

    fn check_contents(blk: &Block, a: &Labels, samples: &[(i64, u64)]) {
        assert_eq!((blk.mint(), blk.maxt()), (0, 2990));
        let all = blk.select(&[], i64::MIN, i64::MAX).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(*all[0].0, *a);
        assert_eq!(all[0].1, samples);
        assert_eq!(all[1].1, vec![(5, 1), (10, 3), (15, 2)]);
        let part = blk.select(&[Matcher::equal("x", "1")], 1000, 1500).unwrap();
        assert_eq!(part.len(), 1);
        assert_eq!(part[0].1.len(), 51);
        assert!(blk.select(&[], 3000, 4000).unwrap().is_empty());
        assert_eq!(blk.labels_in_range(&[], 0, 6).len(), 2);
        assert_eq!(blk.read_samples(0).unwrap(), samples);
        assert_eq!(blk.read_samples(1).unwrap(), vec![(5, 1), (10, 3), (15, 2)]);
    }

    #[test]
    fn block_round_trips_and_detects_corruption() {
        let tmp = TempDir::new("block");
        let (a, _, samples, series) = two_series();
        let size = write(tmp.path(), "0000000001", series).unwrap();
        assert_eq!(list(tmp.path()).unwrap(), vec!["0000000001".to_string()]);
        let blk = Block::open(tmp.path(), "0000000001", &Interner::default()).unwrap();
        assert_eq!(blk.size(), size);
        assert_eq!(blk.version(), 2);
        check_contents(&blk, &a, &samples);
        drop(blk);

        let p = path(tmp.path(), "0000000001");
        let mut bytes = fs::read(&p).unwrap();
        // Damage a chunk byte: the index still opens, the read fails its checksum.
        bytes[MAGIC.len() + 3] ^= 0xff;
        fs::write(&p, &bytes).unwrap();
        let blk = Block::open(tmp.path(), "0000000001", &Interner::default()).unwrap();
        assert!(blk.select(&[], i64::MIN, i64::MAX).is_err());
        // Damage the index: opening fails.
        let n = bytes.len();
        bytes[n - FOOTER_BYTES - 2] ^= 0xff;
        fs::write(&p, &bytes).unwrap();
        assert!(Block::open(tmp.path(), "0000000001", &Interner::default()).is_err());
        fs::write(&p, &bytes[..10]).unwrap();
        assert!(Block::open(tmp.path(), "0000000001", &Interner::default()).is_err());
    }

    #[test]
    fn format_1_blocks_stay_readable() {
        let tmp = TempDir::new("block-v1");
        let (a, _, samples, series) = two_series();
        write_v1(tmp.path(), "0000000001", series).unwrap();
        let blk = Block::open(tmp.path(), "0000000001", &Interner::default()).unwrap();
        assert_eq!(blk.version(), 1);
        check_contents(&blk, &a, &samples);
    }

    #[test]
    fn merging_rewrites_format_1_blocks_in_format_2() {
        // What Writer::merge_blocks does with an old block: read every series' samples and
        // write them into a new block, which gets the current format.
        let tmp = TempDir::new("block-migrate");
        let (a, _, samples, series) = two_series();
        write_v1(tmp.path(), "0000000001", series).unwrap();
        let old = Block::open(tmp.path(), "0000000001", &Interner::default()).unwrap();
        let data: Vec<SeriesData> = old
            .series_labels()
            .map(|(id, l)| SeriesData {
                labels: l.clone(),
                samples: old.read_samples(id).unwrap(),
            })
            .collect();
        write_sorted(tmp.path(), "0000000002", data.into_iter().map(Ok)).unwrap();
        let new = Block::open(tmp.path(), "0000000002", &Interner::default()).unwrap();
        assert_eq!(new.version(), 2);
        check_contents(&new, &a, &samples);
        assert!(new.size() < old.size());
    }

    #[test]
    fn an_unknown_format_is_named_in_the_error() {
        let tmp = TempDir::new("block-magic");
        let (_, _, _, series) = two_series();
        write(tmp.path(), "0000000001", series).unwrap();
        let p = path(tmp.path(), "0000000001");
        let mut bytes = fs::read(&p).unwrap();
        bytes[7] = b'9';
        fs::write(&p, &bytes).unwrap();
        let err = Block::open(tmp.path(), "0000000001", &Interner::default()).unwrap_err();
        assert!(err.to_string().contains("unknown block format"), "{err}");
    }

    #[test]
    fn dense_blocks_are_much_smaller_than_gorilla_chunks() {
        // A scrape-like series: regular 15 s timestamps, a counter with two decimals.
        let samples: Vec<(i64, u64)> = (0..480)
            .map(|i| {
                (
                    1_700_000_000_000 + i * 15_000,
                    ((100_000 + i * 1501) as f64 / 100.0).to_bits(),
                )
            })
            .collect();
        let gorilla: usize = encode_samples(&samples).iter().map(|c| c.2.len()).sum();
        let mut enc = DenseEncoder::new().unwrap();
        let dense = enc.encode(&samples).unwrap();
        assert!(
            dense.len() * 4 < gorilla,
            "dense {} gorilla {gorilla}",
            dense.len()
        );
    }
}
