//! Fuzzes the batch payload reader the collector runs on every agent batch and on WAL replay
//! (`ParsedBatch::decode`, reached through `storage::bench_read_payload`, which calls exactly
//! what `Storage::append_agent_batch` does), against the reference decoder
//! `codec::decode_batch`: whatever the reference accepts, the fast reader must accept with
//! the same number of series.
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;
use vigil_collector::storage::bench_read_payload;
use vigil_shared::codec::{decode_batch, encode_batch};
use vigil_shared::model::{Batch, Event, Labels, Point, Series};

fn seeds() -> Vec<(String, Vec<u8>)> {
    let series = |name: &str, n: i64| Series {
        labels: Labels::metric(name, &[("host", "web-01"), ("job", "node")]),
        points: (0..n)
            .map(|i| Point {
                timestamp_ms: 1_700_000_000_000 + i * 1000,
                value: i as f64 * 0.5,
            })
            .collect(),
    };
    let batches = [
        ("empty", Batch::default()),
        (
            "two_series",
            Batch {
                series: vec![series("cpu_seconds_total", 3), series("up", 1)],
                events: vec![],
            },
        ),
        (
            "with_event",
            Batch {
                series: vec![series("load1", 2)],
                events: vec![Event {
                    timestamp_ms: 1_700_000_000_000,
                    kind: "threshold".into(),
                    labels: Labels::metric("load1", &[("host", "web-01")]),
                    fields: vec![("value".into(), "9.5".into())],
                }],
            },
        ),
    ];
    batches
        .into_iter()
        .map(|(n, b)| (n.to_string(), encode_batch(&b).unwrap()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    common::write_seeds_if_asked(seeds);
    let fast = bench_read_payload(data);
    if let Ok(reference) = decode_batch(data) {
        match fast {
            Ok(n) => assert_eq!(n, reference.series.len()),
            Err(e) => panic!("decode_batch accepts a payload the fast reader refuses: {e}"),
        }
    }
});
