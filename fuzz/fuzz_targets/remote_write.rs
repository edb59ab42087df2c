//! Fuzzes the remote_write body decoder the HTTP handler calls on every POST
//! (`api::remote_write::decode_for_storage`: snappy, then protobuf `WriteRequest` read
//! straight into the storage batch encoding, then validation), differentially against the
//! prost reference (`decode_request`): both accept with the same series and metadata or
//! both refuse with the same message. Any body must decode or fail, never panic or allocate
//! beyond the 64 MiB limit.
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;
use vigil_collector::api::remote_write::{self, Label, MetricMetadata, Sample, TimeSeries, WriteRequest};

fn seeds() -> Vec<(String, Vec<u8>)> {
    let snappy = |req: &WriteRequest| {
        snap::raw::Encoder::new()
            .compress_vec(&prost::Message::encode_to_vec(req))
            .unwrap()
    };
    let label = |n: &str, v: &str| Label {
        name: n.into(),
        value: v.into(),
    };
    let one = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![label("__name__", "up"), label("job", "node")],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 1_700_000_000_000,
            }],
        }],
        metadata: vec![],
    };
    let many = WriteRequest {
        timeseries: (0..4)
            .map(|i| TimeSeries {
                labels: vec![
                    label("__name__", "http_requests_total"),
                    label("code", &format!("{}", 200 + i)),
                    label("instance", "a:9100"),
                ],
                samples: (0..5)
                    .map(|j| Sample {
                        value: f64::from(i * j),
                        timestamp: 1_700_000_000_000 + i64::from(j) * 15_000,
                    })
                    .collect(),
            })
            .collect(),
        metadata: vec![MetricMetadata {
            r#type: 1,
            metric_family_name: "http_requests_total".into(),
            help: "Requests.".into(),
            unit: String::new(),
        }],
    };
    vec![
        ("one".into(), snappy(&one)),
        ("many_with_metadata".into(), snappy(&many)),
        ("empty".into(), snappy(&WriteRequest::default())),
    ]
}

fuzz_target!(|data: &[u8]| {
    common::write_seeds_if_asked(seeds);
    match (remote_write::decode_for_storage(data), remote_write::decode_request(data)) {
        (Ok(fast), Ok(reference)) => {
            assert_eq!(fast.metadata, reference.metadata);
            let stored = vigil_collector::storage::bench_parse_raw(&fast.raw);
            assert_eq!(stored.len(), reference.series.len());
            for (s, r) in stored.iter().zip(&reference.series) {
                assert!(!s.labels.name().is_empty());
                assert_eq!(s.labels, vigil_shared::model::Labels::new(r.labels.clone().into_inner()));
                let bits = |p: &[vigil_shared::model::Point]| {
                    p.iter().map(|p| (p.timestamp_ms, p.value.to_bits())).collect::<Vec<_>>()
                };
                assert_eq!(bits(&s.points), bits(&r.points));
            }
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (Err(remote_write::RemoteWriteError::SeriesTooLarge(_)), Ok(_)) => {}
        (a, b) => panic!("fast decoder {a:?}, prost {b:?}"),
    }
});
