//! Fuzzes block reading through the collector's own start-up and query path: the input
//! becomes `blocks/0000000001.blk` of a fresh data directory beside an unreadable checkpoint
//! (so the block is kept although no checkpoint lists it), `Storage::open` opens it
//! (`Block::open`: footer, index checksum, zstd index, index decoding) and every series is
//! then selected, which reads, verifies and decodes its chunks (dense chunks in format 2,
//! Gorilla chunks in format 1).
//!
//! To get past the checksums the harness repairs the file first. Inputs keep a format-2 index
//! *uncompressed* (seeds are written that way); the harness zstd-compresses it, and for either
//! format it recomputes the CRC of every chunk the index points at and the index CRC in the
//! footer. Inputs the harness cannot make sense of are opened as they are.
#![no_main]
mod common;

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vigil_collector::storage::{MatchOp, Matcher, Storage, StorageOptions};
use vigil_shared::model::{Labels, Point, Series};

const MAGIC_V1: &[u8; 8] = b"VGBLK001";
const MAGIC_V2: &[u8; 8] = b"VGBLK002";
const END_MAGIC: &[u8; 8] = b"VGBLKEND";
const FOOTER: usize = 28;

fn opts() -> StorageOptions {
    StorageOptions {
        retention: Duration::ZERO,
        ..StorageOptions::default()
    }
}

struct Cur<'a> {
    b: &'a mut [u8],
    pos: usize,
}

impl Cur<'_> {
    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.b.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }
    fn skip_bytes(&mut self) -> Option<()> {
        let n = usize::try_from(self.uvarint()?).ok()?;
        self.pos = self.pos.checked_add(n).filter(|&p| p <= self.b.len())?;
        Some(())
    }
}

/// Walks a raw index and rewrites each chunk CRC from `data` (the bytes before the index).
fn fix_chunk_crcs(index: &mut [u8], data: &[u8]) -> Option<()> {
    let mut c = Cur { b: index, pos: 0 };
    c.uvarint()?;
    c.uvarint()?;
    let n = c.uvarint()?;
    for _ in 0..n.min(1 << 20) {
        let nl = c.uvarint()?;
        for _ in 0..nl.min(1 << 20) {
            c.skip_bytes()?;
            c.skip_bytes()?;
        }
        let nc = c.uvarint()?;
        for _ in 0..nc.min(1 << 20) {
            c.uvarint()?;
            c.uvarint()?;
            let off = usize::try_from(c.uvarint()?).ok()?;
            let len = usize::try_from(c.uvarint()?).ok()?;
            let at = c.pos;
            if at + 4 > c.b.len() {
                return None;
            }
            if let Some(chunk) = off.checked_add(len).and_then(|end| data.get(off..end)) {
                c.b[at..at + 4].copy_from_slice(&crc32fast::hash(chunk).to_le_bytes());
            }
            c.pos += 4;
        }
    }
    Some(())
}

/// Turns a harness-format block (format-2 index stored raw) into a real block file with
/// every checksum right; `None` when the input has no usable footer.
fn repair(input: &[u8]) -> Option<Vec<u8>> {
    if input.len() < 8 + FOOTER || &input[input.len() - 8..] != END_MAGIC {
        return None;
    }
    let f = &input[input.len() - FOOTER..];
    let off = usize::try_from(u64::from_le_bytes(f[0..8].try_into().unwrap())).ok()?;
    let len = usize::try_from(u64::from_le_bytes(f[8..16].try_into().unwrap())).ok()?;
    let end = off.checked_add(len).filter(|&e| e <= input.len() - FOOTER)?;
    if off < 8 {
        return None;
    }
    let (data, mut index) = (&input[..off], input[off..end].to_vec());
    let _ = fix_chunk_crcs(&mut index, data);
    let stored = if &input[..8] == MAGIC_V2 {
        let mut s = Vec::new();
        let mut v = index.len() as u64;
        while v >= 0x80 {
            s.push((v as u8) | 0x80);
            v >>= 7;
        }
        s.push(v as u8);
        s.extend_from_slice(&zstd::bulk::compress(&index, 1).ok()?);
        s
    } else if &input[..8] == MAGIC_V1 {
        index
    } else {
        return None;
    };
    let mut out = data.to_vec();
    out.extend_from_slice(&stored);
    out.extend_from_slice(&(off as u64).to_le_bytes());
    out.extend_from_slice(&(stored.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&stored).to_le_bytes());
    out.extend_from_slice(END_MAGIC);
    Some(out)
}

/// The inverse of [`repair`] for format 2: a real block with its index decompressed.
fn to_harness_format(block: &[u8]) -> Vec<u8> {
    let f = &block[block.len() - FOOTER..];
    let off = u64::from_le_bytes(f[0..8].try_into().unwrap()) as usize;
    let len = u64::from_le_bytes(f[8..16].try_into().unwrap()) as usize;
    let stored = &block[off..off + len];
    let mut pos = 0;
    let mut raw_len = 0u64;
    for shift in (0..64).step_by(7) {
        let b = stored[pos];
        pos += 1;
        raw_len |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
    }
    let raw = zstd::bulk::decompress(&stored[pos..], raw_len as usize).unwrap();
    let mut out = block[..off].to_vec();
    out.extend_from_slice(&raw);
    out.extend_from_slice(&(off as u64).to_le_bytes());
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&raw).to_le_bytes());
    out.extend_from_slice(END_MAGIC);
    out
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = common::Scratch::new("block-seeds");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = (now - 3 * 86_400_000) / 7_200_000 * 7_200_000;
    {
        let s = Storage::open(&dir.0, opts()).unwrap();
        rt.block_on(async {
            let mut series = Vec::new();
            for (name, host, n) in [("cpu", "a", 200i64), ("cpu", "b", 3), ("up", "a", 40)] {
                series.push(Series {
                    labels: Labels::metric(name, &[("host", host)]),
                    points: (0..n)
                        .map(|i| Point {
                            timestamp_ms: start + i * 15_000,
                            value: if name == "up" { 1.0 } else { (i * i) as f64 * 0.25 },
                        })
                        .collect(),
                });
            }
            s.append_series(series).await.unwrap();
            s.compact().await.unwrap();
            s.close().await.unwrap();
        });
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.0.join("blocks")).unwrap() {
        let e = e.unwrap();
        let bytes = std::fs::read(e.path()).unwrap();
        if bytes.starts_with(MAGIC_V2) {
            out.push((
                format!("block_{}", e.file_name().to_string_lossy()),
                to_harness_format(&bytes),
            ));
        }
    }
    assert!(!out.is_empty(), "compaction wrote no block");
    out
}

fuzz_target!(|data: &[u8]| {
    common::write_seeds_if_asked(seeds);
    let dir = common::Scratch::new("block");
    let blocks = dir.0.join("blocks");
    std::fs::create_dir_all(&blocks).unwrap();
    let file = repair(data).unwrap_or_else(|| data.to_vec());
    std::fs::write(blocks.join("0000000001.blk"), &file).unwrap();
    std::fs::write(dir.0.join("checkpoint.0000000001"), b"unreadable").unwrap();
    let storage = match Storage::open(&dir.0, opts()) {
        Ok(s) => s,
        Err(e) => panic!("a damaged block must be skipped, not stop start-up: {e}"),
    };
    let all = Matcher::new("__name__", MatchOp::NotEqual, "\u{0}").unwrap(); // every series
    let _ = storage.select(&[all.clone()], i64::MIN, i64::MAX);
    let _ = storage.select(&[all], 1_000, 2_000_000_000_000);
    drop(storage);
});
