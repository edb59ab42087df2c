//! Cost of one `Detector::observe` call: the budget is 1 µs per sample per series.
//!
//! Run with `cargo bench -p vigil-agent --bench anomaly`; criterion reports the time per
//! iteration, and one iteration is one sample. Series shapes cover the detector's branches:
//! a noisy daily season (mostly body lookups) and a spiky series (tail fits and alarms).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use vigil_agent::checks::anomaly::{Detector, DetectorParams};

const FIVE_MIN_MS: i64 = 300_000;
const LEN: usize = 1 << 14;

fn series(spiky: bool) -> Vec<f64> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..LEN)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            let day = i as f64 / 288.0;
            let base = 100.0 + 30.0 * (std::f64::consts::TAU * day).sin() + 5.0 * (u - 0.5);
            if spiky && state % 50 == 1 {
                base * 10.0
            } else {
                base
            }
        })
        .collect()
}

fn bench_observe(c: &mut Criterion) {
    let mut group = c.benchmark_group("detector_observe");
    group.throughput(Throughput::Elements(1));
    for (name, spiky) in [("seasonal_noise", false), ("spiky", true)] {
        let values = series(spiky);
        // Start from a warmed-up detector so the steady-state path is measured.
        let mut detector = Detector::new(&DetectorParams::default());
        for (i, v) in values.iter().enumerate() {
            detector.observe(i as i64 * FIVE_MIN_MS, *v);
        }
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                let v = values[i % LEN];
                let t = (LEN + i) as i64 * FIVE_MIN_MS;
                i += 1;
                black_box(detector.observe(black_box(t), black_box(v)))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_observe);
criterion_main!(benches);
