//! What exporting the checks' per-series state costs a collection cycle: one cycle of an
//! anomaly check over 1 000 series, with and without building the exported series
//! (`vigil_check_firing`, `vigil_anomaly_score`, `vigil_anomalies_total`), and the encoded
//! batch size with and without them (printed once).
//!
//! Run with `cargo bench --profile quick -p vigil-agent --bench check_export`; criterion
//! reports the time per cycle.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use vigil_agent::checks::export;
use vigil_agent::checks::threshold::{CheckConfig, ThresholdChecks};
use vigil_shared::model::{Batch, Labels, Point, Series};

const SERIES: usize = 1_000;
const STEP_MS: i64 = 10_000;

fn checks() -> ThresholdChecks {
    ThresholdChecks::new(&[CheckConfig {
        name: "load_anomaly".into(),
        select: vec!["node_load1".into()],
        condition: "anomaly".into(),
        for_: None,
        action: None,
    }])
    .expect("valid check")
}

/// One cycle's batch: `node_load1` of `SERIES` hosts, a slightly noisy level per host.
fn cycle(i: i64) -> Vec<Series> {
    (0..SERIES)
        .map(|h| {
            let host = format!("host-{h:04}");
            Series {
                labels: Labels::metric("node_load1", &[("host", &host), ("instance", &host)]),
                points: vec![Point {
                    timestamp_ms: i * STEP_MS,
                    value: 1.0 + ((i as usize * 7 + h) % 13) as f64 * 0.01,
                }],
            }
        })
        .collect()
}

fn bench_cycle(c: &mut Criterion) {
    let batches: Vec<Vec<Series>> = (0..64).map(cycle).collect();
    let mut group = c.benchmark_group("check_cycle_1000_series");
    for with_export in [false, true] {
        let mut checks = checks();
        // Past the detector's warm-up, so the steady path is measured.
        for i in 0..200 {
            checks.observe(&batches[i % 64], i as i64 * STEP_MS);
        }
        if with_export {
            let rows = checks.exported();
            let extra = export::to_series(&rows, &[], 0);
            let plain = vigil_shared::codec::encode_batch(&Batch {
                series: batches[0].clone(),
                events: vec![],
            })
            .expect("encodes");
            let mut all = batches[0].clone();
            all.extend(extra.iter().cloned());
            let with = vigil_shared::codec::encode_batch(&Batch {
                series: all,
                events: vec![],
            })
            .expect("encodes");
            eprintln!(
                "batch of {SERIES} watched series: {} bytes encoded; with {} exported series: {} bytes ({:.2}x)",
                plain.len(),
                extra.len(),
                with.len(),
                with.len() as f64 / plain.len() as f64
            );
        }
        let mut i = 200usize;
        let name = if with_export {
            "observe_and_export"
        } else {
            "observe_only"
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let t = i as i64 * STEP_MS;
                let transitions = checks.observe(&batches[i % 64], t);
                i += 1;
                if with_export {
                    let rows = checks.exported();
                    let series = export::to_series(&rows, &checks.take_retired(), t);
                    black_box(series);
                }
                black_box(transitions)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_cycle);
criterion_main!(benches);
