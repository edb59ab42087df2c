//! `vigil-querydata`: writes the query benchmark's data set over Prometheus remote_write, so
//! Vigil, Prometheus and VictoriaMetrics are queried over exactly the same samples.
//!
//! The data set: `--counters` counter series `http_requests_total{job, instance, method,
//! status}` and `--histograms` classic histograms `http_request_duration_seconds{job,
//! instance, handler}` (11 `le` buckets plus `_sum` and `_count`), one sample per series every
//! `--interval-seconds` over `--minutes`, ending at `--end-ms` (default: now rounded down to
//! the interval). Values come from a seeded generator, so every run writes the same numbers.
//! Requests are sent in time order, one timestamp's samples per request, because Prometheus
//! refuses samples older than what a series already holds. The end timestamp is printed as
//! `end_ms=…` for the query phase. Metric metadata (TYPE, HELP, UNIT) for both families is
//! sent in the first request.

#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use rand::{Rng, SeedableRng};
use tokio::io::BufReader;
use vigil_collector::api::remote_write::{Label, MetricMetadata, Sample, TimeSeries, WriteRequest};

#[derive(Parser)]
#[command(about = "Writes the PromQL benchmark's data set over remote_write")]
struct Args {
    /// remote_write `host:port`.
    #[arg(long)]
    target: String,
    /// remote_write path.
    #[arg(long, default_value = "/api/v1/write")]
    path: String,
    /// Counter series.
    #[arg(long, default_value_t = 10_000)]
    counters: usize,
    /// Classic histograms (each 11 buckets plus _sum and _count).
    #[arg(long, default_value_t = 1_000)]
    histograms: usize,
    /// Minutes of data.
    #[arg(long, default_value_t = 65)]
    minutes: i64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 15)]
    interval_seconds: i64,
    /// Timestamp of the last sample (ms); default now, rounded down to the interval.
    #[arg(long)]
    end_ms: Option<i64>,
}

const BUCKETS: [&str; 11] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf",
];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const STATUSES: [&str; 5] = ["200", "201", "404", "500", "503"];
const HANDLERS: [&str; 10] = [
    "/", "/api", "/login", "/logout", "/search", "/cart", "/item", "/user", "/admin", "/static",
];

fn labels(pairs: &[(&str, String)]) -> Vec<Label> {
    let mut v: Vec<Label> = pairs
        .iter()
        .map(|(n, v)| Label {
            name: (*n).to_string(),
            value: v.clone(),
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Every series of the data set with its per-interval increment behaviour.
struct Family {
    labels: Vec<Vec<Label>>,
    /// Mean increment per interval of each series (counters and buckets are cumulative).
    rate: Vec<f64>,
    /// Series of one group share their random factor per interval, so a histogram's
    /// buckets stay cumulative.
    group: Vec<usize>,
}

fn counters(n: usize) -> Family {
    let mut out = Family {
        labels: Vec::with_capacity(n),
        rate: Vec::with_capacity(n),
        group: Vec::with_capacity(n),
    };
    for i in 0..n {
        let job = format!("job-{}", i % 10);
        let instance = format!("10.0.{}.{}:8080", (i / 10) % 50 / 10, (i / 10) % 50);
        let method = METHODS[(i / 500) % 4].to_string();
        let status = STATUSES[(i / 2000) % 5].to_string();
        out.labels.push(labels(&[
            ("__name__", "http_requests_total".into()),
            ("job", job),
            ("instance", instance),
            ("method", method),
            ("status", status),
        ]));
        out.rate.push(1.0 + (i % 97) as f64);
        out.group.push(i);
    }
    out
}

fn histograms(n: usize) -> Family {
    let mut out = Family {
        labels: Vec::new(),
        rate: Vec::new(),
        group: Vec::new(),
    };
    for i in 0..n {
        let base = [
            ("job", format!("job-{}", i % 10)),
            (
                "instance",
                format!("10.1.{}.{}:9090", (i / 10) % 100 / 10, (i / 10) % 100),
            ),
            ("handler", HANDLERS[(i / 100) % 10].to_string()),
        ];
        let reqs = 5.0 + (i % 13) as f64;
        for (b, le) in BUCKETS.iter().enumerate() {
            let mut p: Vec<(&str, String)> = base.to_vec();
            p.push(("__name__", "http_request_duration_seconds_bucket".into()));
            p.push(("le", (*le).to_string()));
            out.labels.push(labels(&p));
            // Cumulative share of requests at or below this bound.
            let share = if b == BUCKETS.len() - 1 {
                1.0
            } else {
                1.0 - 0.8f64.powi(b as i32 + 1)
            };
            out.rate.push(reqs * share);
            out.group.push(i);
        }
        for (suffix, r) in [("_sum", reqs * 0.2), ("_count", reqs)] {
            let mut p: Vec<(&str, String)> = base.to_vec();
            p.push(("__name__", format!("http_request_duration_seconds{suffix}")));
            out.labels.push(labels(&p));
            out.rate.push(r);
            out.group.push(i);
        }
    }
    out
}

fn metadata() -> Vec<MetricMetadata> {
    vec![
        MetricMetadata {
            r#type: 1, // COUNTER
            metric_family_name: "http_requests_total".into(),
            help: "Total HTTP requests served.".into(),
            unit: String::new(),
        },
        MetricMetadata {
            r#type: 3, // HISTOGRAM
            metric_family_name: "http_request_duration_seconds".into(),
            help: "HTTP request latency.".into(),
            unit: "seconds".into(),
        },
    ]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.interval_seconds > 0,
        "--interval-seconds must be positive"
    );
    let step_ms = args.interval_seconds * 1000;
    let end_ms = match args.end_ms {
        Some(t) => t,
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64;
            now - now.rem_euclid(step_ms)
        }
    };
    let steps = args.minutes * 60 / args.interval_seconds;
    let mut fams = counters(args.counters);
    let h = histograms(args.histograms);
    fams.labels.extend(h.labels);
    fams.rate.extend(h.rate);
    let offset = args.counters;
    fams.group.extend(h.group.into_iter().map(|g| g + offset));
    let groups = offset + args.histograms;
    let mut factor = vec![1.0f64; groups];
    let mut values = vec![0.0f64; fams.labels.len()];
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut conn = BufReader::new(
        tokio::net::TcpStream::connect(&args.target)
            .await
            .with_context(|| format!("connecting to {}", args.target))?,
    );
    let mut samples = 0u64;
    for k in 0..=steps {
        let t = end_ms - (steps - k) * step_ms;
        let mut req = WriteRequest {
            timeseries: Vec::with_capacity(values.len()),
            metadata: if k == 0 { metadata() } else { Vec::new() },
        };
        factor.iter_mut().for_each(|f| *f = rng.gen_range(0.5..1.5));
        for (i, l) in fams.labels.iter().enumerate() {
            values[i] += (fams.rate[i] * factor[fams.group[i]]).round();
            req.timeseries.push(TimeSeries {
                labels: l.clone(),
                samples: vec![Sample {
                    value: values[i],
                    timestamp: t,
                }],
            });
        }
        let body = snap::raw::Encoder::new().compress_vec(&prost::Message::encode_to_vec(&req))?;
        let (code, text) =
            vigil_bench::post_remote_write(&mut conn, &args.target, &args.path, &body).await?;
        anyhow::ensure!(
            (200..300).contains(&code),
            "remote_write to {} answered {code}: {text}",
            args.target
        );
        samples += req.timeseries.len() as u64;
    }
    println!(
        "end_ms={end_ms} series={} samples={samples}",
        fams.labels.len()
    );
    Ok(())
}
