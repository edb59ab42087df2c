//! Fuzzes the PromQL engine through its public entry points: any query text, evaluated
//! instantly and over a range against a small fixed data set (counters with resets, gauges,
//! classic histogram buckets, NaN, ±Inf and stale markers), must answer or fail with an
//! error, never panic, overflow the stack, hang past its timeout or allocate beyond the
//! engine's limits.
#![no_main]
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vigil_collector::query::{Engine, MemSource, QueryOptions};
use vigil_shared::model::{Labels, Point, Series};

/// Evaluation time: the end of the data set.
const T_MS: i64 = 3_600_000;
const STALE: u64 = 0x7ff0_0000_0000_0002;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut series = Vec::new();
        let points = |f: &dyn Fn(i64) -> f64| -> Vec<Point> {
            (0..=240)
                .map(|i| Point {
                    timestamp_ms: i * 15_000,
                    value: f(i),
                })
                .collect()
        };
        for (job, inst) in [("api", "a:1"), ("api", "b:1"), ("db", "c:1")] {
            let l = |name: &str, extra: &[(&str, &str)]| {
                let mut all = vec![("job", job), ("instance", inst)];
                all.extend_from_slice(extra);
                Labels::metric(name, &all)
            };
            series.push(Series {
                labels: l("http_requests_total", &[("code", "200")]),
                points: points(&|i| ((i * 7) % 100) as f64),
            });
            series.push(Series {
                labels: l("temperature_celsius", &[]),
                points: points(&|i| match i % 50 {
                    13 => f64::NAN,
                    17 => f64::INFINITY,
                    23 => f64::from_bits(STALE),
                    _ => 20.0 + (i as f64).sin(),
                }),
            });
            for le in ["0.1", "0.5", "1", "+Inf"] {
                let w: f64 = le.parse().unwrap_or(2.0);
                series.push(Series {
                    labels: l("http_request_duration_seconds_bucket", &[("le", le)]),
                    points: points(&|i| (i as f64) * w),
                });
            }
            series.push(Series {
                labels: l("up", &[]),
                points: points(&|i| f64::from(i % 9 != 0)),
            });
        }
        let opts = QueryOptions {
            max_samples: 200_000,
            timeout: Duration::from_millis(500),
            ..QueryOptions::default()
        };
        Engine::new(std::sync::Arc::new(MemSource::new(series)), opts)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    if query.len() > 1024 {
        return;
    }
    let e = engine();
    let _ = e.instant(query, T_MS, None);
    let _ = e.instant(query, T_MS / 2 + 7, None);
    let _ = e.range(query, T_MS - 1_800_000, T_MS + 120_000, 37_000, None);
});
