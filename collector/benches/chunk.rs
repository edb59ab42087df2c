//! Chunk decoding benchmark (plain binary, no harness): encodes 10 000 series of 120
//! samples shaped like the query benchmark's (counters scraped every 15 s, gauges with
//! jitter), then reports nanoseconds per decoded sample with `decode_range`, best of five
//! passes over all chunks.
//!
//! `cargo bench -p vigil-collector --bench chunk`

use std::time::Instant;

use vigil_collector::storage::chunk::{decode_range, ChunkAppender, SAMPLES_PER_CHUNK};

fn main() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut chunks = Vec::new();
    for s in 0..10_000u64 {
        let mut a = ChunkAppender::new();
        let (mut t, mut v) = (1_700_000_000_000i64, 0f64);
        for _ in 0..SAMPLES_PER_CHUNK {
            // Half counters, half gauges; a tenth of the series scraped with jitter.
            v = if s % 2 == 0 {
                v + (rand() % 50) as f64
            } else {
                (rand() % 10_000) as f64 / 100.0
            };
            let jitter = if s % 10 == 0 { (rand() % 20) as i64 } else { 0 };
            a.append(t + jitter, v.to_bits());
            t += 15_000;
        }
        chunks.push(a.into_bytes());
    }
    let bytes: usize = chunks.iter().map(Vec::len).sum();
    let samples = chunks.len() * usize::from(SAMPLES_PER_CHUNK);
    let mut out = Vec::with_capacity(usize::from(SAMPLES_PER_CHUNK));
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut n = 0;
        for c in &chunks {
            out.clear();
            decode_range(c, i64::MIN, i64::MAX, &mut out).expect("decodes");
            n += out.len();
        }
        assert_eq!(n, samples);
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "{samples} samples in {} chunks, {:.2} bytes/sample: decode_range {:.1} ns/sample ({:.0} M samples/s on one core)",
        chunks.len(),
        bytes as f64 / samples as f64,
        best * 1e9 / samples as f64,
        samples as f64 / best / 1e6
    );
}
