//! Fuzzes WAL replay through the collector's own start-up path: the input becomes segment
//! `wal/0000000000` of a fresh data directory and `Storage::open` replays it (frame checks,
//! `WalRecord::decode`, `ParsedBatch::decode`, applying to the head), then every series is
//! read back. Record CRCs are recomputed by the harness so that mutations reach the record
//! decoders instead of stopping at the checksum; lengths are left as the fuzzer wrote them,
//! so torn and oversized frames are exercised too.
#![no_main]
mod common;

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vigil_collector::storage::{MatchOp, Matcher, Storage, StorageOptions};
use vigil_shared::codec::encode_batch;
use vigil_shared::model::{Batch, Labels, Point, Series};

fn opts() -> StorageOptions {
    StorageOptions {
        // No retention: replayed samples of any age stay, so they are read back.
        retention: Duration::ZERO,
        ..StorageOptions::default()
    }
}

/// Recomputes the CRC of every complete frame, in place.
fn fix_crcs(seg: &mut [u8]) {
    let mut off = 0usize;
    while seg.len() - off >= 8 {
        let len = u32::from_le_bytes(seg[off..off + 4].try_into().unwrap()) as usize;
        if len == 0 || seg.len() - off - 8 < len {
            break;
        }
        let crc = crc32fast::hash(&seg[off + 8..off + 8 + len]);
        seg[off + 4..off + 8].copy_from_slice(&crc.to_le_bytes());
        off += 8 + len;
    }
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = common::Scratch::new("wal-seeds");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let series = |name: &str, host: &str, n: i64| Series {
        labels: Labels::metric(name, &[("host", host)]),
        points: (0..n)
            .map(|i| Point {
                timestamp_ms: 1_700_000_000_000 + i * 15_000,
                value: i as f64,
            })
            .collect(),
    };
    {
        let s = Storage::open(&dir.0, opts()).unwrap();
        rt.block_on(async {
            let b = Batch {
                series: vec![series("cpu", "a", 3), series("up", "a", 1)],
                events: vec![],
            };
            s.append_agent_batch("web-01", 7, 1, encode_batch(&b).unwrap())
                .await
                .unwrap();
            s.append_series(vec![series("rule:cpu:rate5m", "a", 2)])
                .await
                .unwrap();
            let b = Batch {
                series: vec![series("cpu", "a", 2)],
                events: vec![],
            };
            s.append_agent_batch("web-01", 7, 2, encode_batch(&b).unwrap())
                .await
                .unwrap();
        });
        // Dropped without `close`, which would checkpoint and retire the segment.
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.0.join("wal")).unwrap() {
        let e = e.unwrap();
        let bytes = std::fs::read(e.path()).unwrap();
        if !bytes.is_empty() {
            out.push((format!("segment_{}", e.file_name().to_string_lossy()), bytes));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    common::write_seeds_if_asked(seeds);
    let dir = common::Scratch::new("wal");
    let wal = dir.0.join("wal");
    std::fs::create_dir_all(&wal).unwrap();
    let mut seg = data.to_vec();
    fix_crcs(&mut seg);
    std::fs::write(wal.join("0000000000"), &seg).unwrap();
    let storage = match Storage::open(&dir.0, opts()) {
        Ok(s) => s,
        Err(e) => panic!("a WAL segment of any content must not stop start-up: {e}"),
    };
    let all = Matcher::new("__name__", MatchOp::NotEqual, "\u{0}").unwrap(); // every series
    let _ = storage.select(&[all], i64::MIN, i64::MAX);
    let _ = storage.agent_streams();
    drop(storage);
});
