//! Immutable on-disk blocks: head chunks older than the compaction cutoff, written once and
//! then only read or deleted whole (by retention). One file per block in `<data>/blocks/`:
//!
//! ```text
//! "VGBLK001"
//! chunk bytes, series after series (sorted by labels), chunks in time order
//! index: mint, maxt, series count, then per series its labels and per chunk
//!        (mint, maxt, sample count, offset, length, CRC-32 of the chunk)
//! footer: index offset u64 LE, index length u64 LE, index CRC-32 u32 LE, "VGBLKEND"
//! ```
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

use super::chunk::{self, ChunkAppender, SAMPLES_PER_CHUNK};
use super::encoding::{Dec, DecodeError, Enc};
use super::intern::Interner;
use super::matcher::Matcher;
use super::postings::Postings;
use super::wal::sync_dir;
use super::StorageError;

const MAGIC: &[u8; 8] = b"VGBLK001";
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

/// One series' data handed to [`write`]: chunks in any order.
#[derive(Debug)]
pub(crate) struct SeriesChunks {
    pub labels: Arc<Labels>,
    pub chunks: Vec<RawChunk>,
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
    write_sorted(dir, name, series.into_iter().map(Ok))
}

/// Writes a block named `name` in `dir` from series given in label order, streaming chunk
/// bytes to the file so only the index is held in memory; returns the block's size. The
/// file appears under its final name only once complete and synced.
pub(crate) fn write_sorted(
    dir: &Path,
    name: &str,
    series: impl Iterator<Item = Result<SeriesChunks, StorageError>>,
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
    series: impl Iterator<Item = Result<SeriesChunks, StorageError>>,
) -> Result<u64, StorageError> {
    let io = |e| StorageError::Io {
        context: format!("writing block {}", tmp.display()),
        source: e,
    };
    let mut w = io::BufWriter::with_capacity(1 << 20, File::create(tmp).map_err(io)?);
    w.write_all(MAGIC).map_err(io)?;
    let mut offset = MAGIC.len() as u64;
    let mut index = Enc::with_capacity(1 << 16);
    let mut mint = i64::MAX;
    let mut maxt = i64::MIN;
    let mut metas: Vec<(Arc<Labels>, Vec<ChunkMeta>)> = Vec::new();
    for s in series {
        let mut s = s?;
        s.chunks.sort_by_key(|c| (c.0, c.1));
        let mut m = Vec::with_capacity(s.chunks.len());
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
    index.varint(mint);
    index.varint(maxt);
    index.uvarint(metas.len() as u64);
    for (labels, chunks) in &metas {
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
    let index_offset = offset;
    let index_len = index.buf.len() as u64;
    let index_crc = crc32fast::hash(&index.buf);
    w.write_all(&index.buf).map_err(io)?;
    w.write_all(&index_offset.to_le_bytes()).map_err(io)?;
    w.write_all(&index_len.to_le_bytes()).map_err(io)?;
    w.write_all(&index_crc.to_le_bytes()).map_err(io)?;
    w.write_all(END_MAGIC).map_err(io)?;
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
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

    /// All chunks of series `id`, checksums verified, for merging blocks.
    pub fn read_chunks(&self, id: u32) -> Result<Vec<RawChunk>, StorageError> {
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
        let mut out = Vec::with_capacity(s.chunks.len());
        for c in &s.chunks {
            let lo = (c.offset - first.offset) as usize;
            let bytes = &buf[lo..lo + c.len as usize];
            if crc32fast::hash(bytes) != c.crc {
                return Err(corrupt(
                    &self.path,
                    format!("chunk checksum mismatch at offset {}", c.offset),
                ));
            }
            out.push((c.mint, c.maxt, Arc::from(bytes)));
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
                chunk::decode_range(bytes, start, end, &mut samples)
                    .map_err(|e| corrupt(&p(), e))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testutil::TempDir;

    #[test]
    fn block_round_trips_and_detects_corruption() {
        let tmp = TempDir::new("block");
        let a = Arc::new(Labels::metric("a", &[("x", "1")]));
        let b = Arc::new(Labels::metric("b", &[]));
        let samples: Vec<(i64, u64)> = (0..300).map(|i| (i * 10, (i as f64).to_bits())).collect();
        let mut b_chunks = encode_samples(&[(5, 1), (15, 2)]);
        // An out-of-order chunk overlapping the first one, as compaction may produce.
        b_chunks.extend(encode_samples(&[(10, 3), (15, 2)]));
        let size = write(
            tmp.path(),
            "0000000001",
            vec![
                SeriesChunks {
                    labels: b.clone(),
                    chunks: b_chunks,
                },
                SeriesChunks {
                    labels: a.clone(),
                    chunks: encode_samples(&samples),
                },
            ],
        )
        .unwrap();
        assert_eq!(list(tmp.path()).unwrap(), vec!["0000000001".to_string()]);
        let blk = Block::open(tmp.path(), "0000000001", &Interner::default()).unwrap();
        assert_eq!(blk.size(), size);
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
}
