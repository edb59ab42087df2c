//! Fuzzes the Gorilla chunk readers: `ChunkIter` and `decode_range` (head chunks and format-1
//! blocks) and `ChunkAppender::from_bytes` (a head chunk restored from a checkpoint, then
//! appended to). Any bytes must decode or fail, never panic or allocate from a count alone.
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;
use vigil_collector::storage::chunk::{decode_range, sample_count, ChunkAppender, ChunkIter};

fn seeds() -> Vec<(String, Vec<u8>)> {
    let chunk = |n: i64, t: &dyn Fn(i64) -> i64, v: &dyn Fn(i64) -> f64| {
        let mut a = ChunkAppender::new();
        for i in 0..n {
            a.append(t(i), v(i).to_bits());
        }
        a.into_bytes()
    };
    vec![
        ("one".into(), chunk(1, &|_| 1_700_000_000_000, &|_| 1.0)),
        (
            "regular_counter".into(),
            chunk(120, &|i| 1_700_000_000_000 + i * 15_000, &|i| (i * 3) as f64),
        ),
        (
            "jittered_gauge".into(),
            chunk(60, &|i| i * 1000 + (i * 7919) % 13, &|i| (i as f64).sin()),
        ),
        (
            "specials".into(),
            chunk(8, &|i| -5 + i * 1_000_000_007, &|i| match i % 4 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => -0.0,
                _ => f64::MAX,
            }),
        ),
    ]
}

fuzz_target!(|data: &[u8]| {
    common::write_seeds_if_asked(seeds);
    if let Ok(it) = ChunkIter::new(data) {
        let all: Vec<_> = it.collect();
        assert!(all.len() <= sample_count(data) + 1);
    }
    let mut out = Vec::new();
    let _ = decode_range(data, i64::MIN, i64::MAX, &mut out);
    out.clear();
    let _ = decode_range(data, 0, 1_000_000, &mut out);
    if let Ok(mut a) = ChunkAppender::from_bytes(data) {
        let t = a.maxt().saturating_add(1000);
        a.append(t, 1.5f64.to_bits());
        let _ = ChunkIter::new(a.bytes()).map(|it| it.count());
    }
});
