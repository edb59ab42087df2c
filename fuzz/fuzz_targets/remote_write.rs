//! Fuzzes the remote_write body decoder the HTTP handler calls on every POST
//! (`api::remote_write::decode_request`: snappy, then protobuf `WriteRequest`, then
//! validation). Any body must decode or fail, never panic or allocate beyond the 64 MiB limit.
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
    if let Ok(d) = remote_write::decode_request(data) {
        assert!(d.series.iter().all(|s| !s.labels.name().is_empty()));
    }
});
