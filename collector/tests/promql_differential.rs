//! Differential test of Vigil's PromQL engine against the real Prometheus.
//!
//! A deterministic dataset (counters with resets, gauges, classic histograms, NaN samples, a
//! stale marker, several jobs and instances, a few hours at 15s–60s intervals in the recent
//! past) is written to a Prometheus started in a scratch directory through remote_write
//! (snappy-compressed protobuf `WriteRequest`), and to Vigil through [`start_vigil`]. Every
//! query of `tests/promql/corpus.txt` is then run through both HTTP APIs and the results are
//! compared: same result type, same label sets, value strings identical (bit-exact floats,
//! as Go's shortest formatting spells them; corpus lines marked `~` are README.md's
//! deviations and may differ by a few ulps), order compared only for `sort`, `sort_desc`,
//! `topk` and `bottomk`.
//!
//! The Vigil side is one `async fn` taking the dataset ([`start_vigil`]); by default it starts
//! the real `vigil-collector` binary and remote-writes the dataset to it, so the comparison
//! covers remote_write, storage and the query API end to end.
//!
//! The test fails (never skips) when `/usr/bin/prometheus` is missing. It also checks that
//! `promtool query instant` can talk to the collector.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_collector::api::query::router;
use vigil_collector::query::{MemSource, QueryOptions};
use vigil_shared::model::{Labels, Point, Series};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

// ---------------------------------------------------------------- dataset

/// The generated data, and the time span it covers.
struct Dataset {
    series: Vec<Series>,
    start_ms: i64,
    end_ms: i64,
}

/// A small deterministic PRNG (SplitMix64) so every run writes the same shapes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }
}

fn labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
    Labels::metric(name, pairs)
}

/// Sample times from `start` to `end` every `interval_ms`, with a per-series phase and a
/// small jitter, as real scrapes have.
fn times(rng: &mut Rng, start: i64, end: i64, interval_ms: i64, jitter_ms: i64) -> Vec<i64> {
    let phase = rng.range(0, interval_ms - 1);
    let mut out = Vec::new();
    let mut t = start + phase;
    while t <= end {
        let j = if jitter_ms > 0 {
            rng.range(-jitter_ms, jitter_ms)
        } else {
            0
        };
        out.push(t + j);
        t += interval_ms;
    }
    out
}

fn generate(end_ms: i64) -> Dataset {
    let hours = 3;
    let start_ms = end_ms - hours * 3_600_000;
    let mut rng = Rng(42);
    let mut series = Vec::new();
    let jobs: &[(&str, &[&str], i64)] = &[
        ("api", &["api-0:8080", "api-1:8080", "api-2:8080"], 15_000),
        ("db", &["db-0:9100", "db-1:9100"], 30_000),
        ("cache", &["cache-0:6379"], 60_000),
    ];
    for &(job, instances, interval) in jobs {
        for (idx, &inst) in instances.iter().enumerate() {
            let base = [("job", job), ("instance", inst)];
            let ts = times(&mut rng, start_ms, end_ms, interval, 150);
            // up: 1, with a short outage on one instance.
            let up = ts
                .iter()
                .map(|&t| {
                    let down = job == "api"
                        && idx == 1
                        && t > end_ms - 5_400_000
                        && t < end_ms - 5_000_000;
                    Point {
                        timestamp_ms: t,
                        value: if down { 0.0 } else { 1.0 },
                    }
                })
                .collect();
            series.push(Series {
                labels: labels("up", &base),
                points: up,
            });
            // Build info for group_left joins.
            let version = if idx % 2 == 0 { "1.2.3" } else { "1.3.0" };
            series.push(Series {
                labels: labels(
                    "build_info",
                    &[("job", job), ("instance", inst), ("version", version)],
                ),
                points: ts
                    .iter()
                    .map(|&t| Point {
                        timestamp_ms: t,
                        value: 1.0,
                    })
                    .collect(),
            });
            // Memory gauge: a random walk, with one NaN on db-0.
            let mut v = 1.0e9 + rng.f() * 1.0e9;
            let mut pts = Vec::new();
            for (k, &t) in ts.iter().enumerate() {
                v += (rng.f() - 0.5) * 5.0e7;
                let value = if job == "db" && idx == 0 && k == ts.len() / 2 {
                    f64::NAN
                } else {
                    v.round()
                };
                pts.push(Point {
                    timestamp_ms: t,
                    value,
                });
            }
            series.push(Series {
                labels: labels("node_memory_free_bytes", &base),
                points: pts,
            });
            // CPU seconds counter per mode, with a reset (restart) on instance 0.
            for mode in ["idle", "user", "system"] {
                let mut c = rng.f() * 1000.0;
                let reset_at = if idx == 0 { Some(ts.len() / 3) } else { None };
                let pts = ts
                    .iter()
                    .enumerate()
                    .map(|(k, &t)| {
                        if Some(k) == reset_at {
                            c = rng.f() * 2.0;
                        }
                        let rate = match mode {
                            "idle" => 0.8,
                            "user" => 0.15,
                            _ => 0.05,
                        };
                        c += rate * interval as f64 / 1000.0 * (0.5 + rng.f());
                        Point {
                            timestamp_ms: t,
                            value: (c * 1000.0).round() / 1000.0,
                        }
                    })
                    .collect();
                series.push(Series {
                    labels: labels(
                        "node_cpu_seconds_total",
                        &[("job", job), ("instance", inst), ("mode", mode)],
                    ),
                    points: pts,
                });
            }
            series.push(Series {
                labels: labels("process_start_time_seconds", &base),
                points: ts
                    .iter()
                    .map(|&t| Point {
                        timestamp_ms: t,
                        value: ((start_ms / 1000) - 3600 * (idx as i64 + 1)) as f64,
                    })
                    .collect(),
            });
        }
    }
    // HTTP requests: api only, by method and code, counters with resets.
    for (idx, inst) in ["api-0:8080", "api-1:8080", "api-2:8080"]
        .iter()
        .enumerate()
    {
        let ts = times(&mut rng, start_ms, end_ms, 15_000, 200);
        for method in ["GET", "POST"] {
            for code in ["200", "500"] {
                let mut c: f64 = 0.0;
                let resets: Vec<usize> = if idx == 2 {
                    vec![ts.len() / 4, (ts.len() * 3) / 4]
                } else if idx == 0 && method == "GET" {
                    vec![ts.len() / 2]
                } else {
                    vec![]
                };
                let per = match (method, code) {
                    ("GET", "200") => 40.0,
                    ("POST", "200") => 10.0,
                    ("GET", _) => 1.0,
                    _ => 0.3,
                };
                let pts = ts
                    .iter()
                    .enumerate()
                    .map(|(k, &t)| {
                        if resets.contains(&k) {
                            c = 0.0;
                        }
                        c += (per * 15.0 * (0.5 + rng.f())).floor();
                        Point {
                            timestamp_ms: t,
                            value: c,
                        }
                    })
                    .collect();
                series.push(Series {
                    labels: labels(
                        "http_requests_total",
                        &[
                            ("job", "api"),
                            ("instance", inst),
                            ("method", method),
                            ("code", code),
                        ],
                    ),
                    points: pts,
                });
            }
        }
        // Histogram of request durations.
        let bounds = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"];
        let mut counts = [0.0f64; 8];
        let mut sum = 0.0;
        let mut bucket_pts: Vec<Vec<Point>> = vec![Vec::new(); 8];
        let mut sum_pts = Vec::new();
        let mut count_pts = Vec::new();
        let reset_at = if idx == 1 { Some(ts.len() / 2) } else { None };
        for (k, &t) in ts.iter().enumerate() {
            if Some(k) == reset_at {
                counts = [0.0; 8];
                sum = 0.0;
            }
            let n = rng.range(5, 40);
            for _ in 0..n {
                // Log-uniform-ish latency between 10ms and 8s.
                let d = 0.01 * (800.0f64).powf(rng.f() * rng.f());
                sum += d;
                for (b, bound) in bounds.iter().enumerate() {
                    let ub: f64 = if *bound == "+Inf" {
                        f64::INFINITY
                    } else {
                        bound.parse().unwrap()
                    };
                    if d <= ub {
                        counts[b] += 1.0;
                    }
                }
            }
            for b in 0..8 {
                bucket_pts[b].push(Point {
                    timestamp_ms: t,
                    value: counts[b],
                });
            }
            sum_pts.push(Point {
                timestamp_ms: t,
                value: (sum * 1000.0).round() / 1000.0,
            });
            count_pts.push(Point {
                timestamp_ms: t,
                value: counts[7],
            });
        }
        for (b, bound) in bounds.iter().enumerate() {
            series.push(Series {
                labels: labels(
                    "http_request_duration_seconds_bucket",
                    &[("job", "api"), ("instance", inst), ("le", bound)],
                ),
                points: bucket_pts[b].clone(),
            });
        }
        series.push(Series {
            labels: labels(
                "http_request_duration_seconds_sum",
                &[("job", "api"), ("instance", inst)],
            ),
            points: sum_pts,
        });
        series.push(Series {
            labels: labels(
                "http_request_duration_seconds_count",
                &[("job", "api"), ("instance", inst)],
            ),
            points: count_pts,
        });
    }
    // Temperatures: gauges that go negative, with an Inf reading.
    for (i, sensor) in ["cpu", "inlet", "outlet"].iter().enumerate() {
        let ts = times(&mut rng, start_ms, end_ms, 30_000, 0);
        let mut v = -5.0 + 10.0 * i as f64;
        let pts = ts
            .iter()
            .enumerate()
            .map(|(k, &t)| {
                v += (rng.f() - 0.5) * 2.0;
                let value = if i == 2 && k == ts.len() - 40 {
                    f64::INFINITY
                } else {
                    (v * 100.0).round() / 100.0
                };
                Point {
                    timestamp_ms: t,
                    value,
                }
            })
            .collect();
        series.push(Series {
            labels: labels(
                "temperature_celsius",
                &[("job", "db"), ("instance", "db-0:9100"), ("sensor", sensor)],
            ),
            points: pts,
        });
    }
    // A queue gauge that ends with a stale marker 40 minutes before the end, and one that
    // just stops 20 minutes before the end (no marker: it lingers for the lookback delta).
    for (name, stop_ms, stale) in [
        ("queue_depth", end_ms - 2_400_000, true),
        ("queue_depth_legacy", end_ms - 1_200_000, false),
    ] {
        for shard in ["a", "b"] {
            let ts = times(&mut rng, start_ms, end_ms, 30_000, 0);
            let mut pts: Vec<Point> = ts
                .iter()
                .filter(|&&t| shard == "b" || t <= stop_ms)
                .map(|&t| Point {
                    timestamp_ms: t,
                    value: rng.range(0, 50) as f64,
                })
                .collect();
            if shard == "a" && stale {
                let last = pts.last().map(|p| p.timestamp_ms).unwrap_or(start_ms);
                pts.push(Point {
                    timestamp_ms: last + 30_000,
                    value: f64::from_bits(STALE_NAN),
                });
            }
            series.push(Series {
                labels: labels(
                    name,
                    &[
                        ("job", "cache"),
                        ("instance", "cache-0:6379"),
                        ("shard", shard),
                    ],
                ),
                points: pts,
            });
        }
    }
    // A sparse counter (every 10 minutes) and a series that only exists in the first hour.
    let ts = times(&mut rng, start_ms, end_ms, 600_000, 0);
    series.push(Series {
        labels: labels("cron_runs_total", &[("job", "cron")]),
        points: ts
            .iter()
            .enumerate()
            .map(|(k, &t)| Point {
                timestamp_ms: t,
                value: k as f64,
            })
            .collect(),
    });
    let ts = times(&mut rng, start_ms, start_ms + 3_600_000, 60_000, 0);
    series.push(Series {
        labels: labels("migration_progress_ratio", &[("job", "db")]),
        points: ts
            .iter()
            .enumerate()
            .map(|(k, &t)| Point {
                timestamp_ms: t,
                value: k as f64 / ts.len() as f64,
            })
            .collect(),
    });
    // Label values that need escaping in JSON and in PromQL strings, and extreme magnitudes.
    let ts = times(&mut rng, start_ms, end_ms, 60_000, 0);
    for (path, scale) in [
        ("/a\"b\\c", 1e-9),
        ("/héllo wörld", 1e22),
        ("/tab\there", 1.0),
    ] {
        series.push(Series {
            labels: labels("http_path_hits_total", &[("job", "api"), ("path", path)]),
            points: ts
                .iter()
                .enumerate()
                .map(|(k, &t)| Point {
                    timestamp_ms: t,
                    value: k as f64 * scale,
                })
                .collect(),
        });
    }
    Dataset {
        series,
        start_ms,
        end_ms,
    }
}

// ---------------------------------------------------------------- HTTP client

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A minimal HTTP/1.1 client (one request per connection) so the test needs no HTTP crate.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .expect("write request");
    stream.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response has headers");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size line");
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..nl]).trim(), 16)
                .expect("chunk size");
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    (status, body)
}

async fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = http(addr, "GET", path, &[], b"").await;
    let v = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "bad JSON from {addr}{path}: {e}: {}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, v)
}

fn scratch_dir(tag: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("vigil-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

// ---------------------------------------------------------------- remote write

#[derive(Clone, PartialEq, prost::Message)]
struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<PbLabel>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<PbSample>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PbLabel {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PbSample {
    #[prost(double, tag = "1")]
    value: f64,
    #[prost(int64, tag = "2")]
    timestamp: i64,
}

/// Sends the dataset to a remote_write endpoint in one request.
async fn remote_write(addr: SocketAddr, path: &str, ds: &Dataset) {
    let req = WriteRequest {
        timeseries: ds
            .series
            .iter()
            .map(|s| TimeSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|(n, v)| PbLabel {
                        name: n.into(),
                        value: v.into(),
                    })
                    .collect(),
                samples: s
                    .points
                    .iter()
                    .map(|p| PbSample {
                        value: p.value,
                        timestamp: p.timestamp_ms,
                    })
                    .collect(),
            })
            .collect(),
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy");
    let (status, resp) = http(
        addr,
        "POST",
        path,
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        &body,
    )
    .await;
    assert!(
        (200..300).contains(&status),
        "remote write to {addr} failed: {status} {}",
        String::from_utf8_lossy(&resp)
    );
}

// ---------------------------------------------------------------- the two sides

/// A running Prometheus, killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start_prometheus(ds: &Dataset) -> Prometheus {
    assert!(
        std::path::Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: install the prometheus package"
    );
    let dir = scratch_dir("prometheus");
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  evaluation_interval: 1m\n").expect("write config");
    let (child, addr) = vigil_testkit::start_on_free_port("prometheus", |port| {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
        let mut child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawning {PROMETHEUS}: {e}"))?;
        vigil_testkit::wait_listening(&mut child, port, Duration::from_secs(60))?;
        Ok((child, addr))
    });
    let p = Prometheus { child, addr, dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await
        {
            let _ = s.shutdown().await;
            let (status, _) = http(addr, "GET", "/-/ready", &[], b"").await;
            if status == 200 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not become ready; see {}",
            p.dir.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    remote_write(addr, "/api/v1/write", ds).await;
    p
}

/// The Vigil side, kept alive for the test's duration.
enum VigilSide {
    /// The real `vigil-collector` binary, killed on drop.
    Collector(std::process::Child, PathBuf),
    /// `query::router` over a `MemSource`, in-process.
    InProcess(tokio::task::JoinHandle<()>),
    /// A collector someone else started (`VIGIL_DIFF_ADDR`).
    External,
}

impl Drop for VigilSide {
    fn drop(&mut self) {
        match self {
            VigilSide::Collector(child, dir) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_dir_all(dir);
            }
            VigilSide::InProcess(task) => task.abort(),
            VigilSide::External => {}
        }
    }
}

/// The Vigil side. By default it starts the real `vigil-collector` binary with an empty data
/// directory, remote-writes the dataset to its `/api/v1/write` exactly as to Prometheus, and
/// queries it there, so the comparison runs end to end through remote_write, the WAL, the
/// head and the query API. `VIGIL_DIFF_ADDR=127.0.0.1:PORT` uses a collector started
/// elsewhere; `VIGIL_DIFF_IN_PROCESS=1` serves `query::router` over a `MemSource` instead
/// (the engine alone, for debugging).
async fn start_vigil(ds: &Dataset) -> (SocketAddr, VigilSide) {
    if let Ok(addr) = std::env::var("VIGIL_DIFF_ADDR") {
        let addr: SocketAddr = addr
            .parse()
            .unwrap_or_else(|e| panic!("VIGIL_DIFF_ADDR={addr:?} is not host:port: {e}"));
        remote_write(addr, "/api/v1/write", ds).await;
        return (addr, VigilSide::External);
    }
    if std::env::var_os("VIGIL_DIFF_IN_PROCESS").is_some() {
        let source = Arc::new(MemSource::new(ds.series.clone()));
        let app = router(source, QueryOptions::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        return (addr, VigilSide::InProcess(task));
    }
    let bin = env!("CARGO_BIN_EXE_vigil-collector");
    let dir = scratch_dir("diff-collector");
    let certs = dir.join("certs");
    let status = std::process::Command::new(bin)
        .args(["certs", "init", "--dir"])
        .arg(&certs)
        .output()
        .expect("run vigil-collector certs init");
    assert!(status.status.success(), "certs init: {status:?}");
    let mut child = std::process::Command::new(bin)
        .args(["run", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--certs-dir")
        .arg(&certs)
        .args([
            "--quic-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn vigil-collector");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("read collector stdout");
    let addr: SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected collector output {line:?}"));
    remote_write(addr, "/api/v1/write", ds).await;
    (addr, VigilSide::Collector(child, dir))
}

// ---------------------------------------------------------------- comparison

#[derive(Debug, Clone, Copy)]
enum Kind {
    Instant,
    Range,
}

struct Case {
    line: usize,
    kind: Kind,
    /// `instant~`/`range~` lines are documented deviations, compared by [`Match::Ulps`].
    how: Match,
    query: String,
}

fn load_corpus() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/promql/corpus.txt");
    let text = std::fs::read_to_string(path).expect("read corpus");
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (kind, q) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("corpus line {}: no query", i + 1));
        let (kind, how) = match kind.strip_suffix('~') {
            Some(k) => (k, Match::Ulps),
            None => (kind, Match::Exact),
        };
        let kind = match kind {
            "instant" => Kind::Instant,
            "range" => Kind::Range,
            other => panic!("corpus line {}: unknown kind {other:?}", i + 1),
        };
        out.push(Case {
            line: i + 1,
            kind,
            how,
            query: q.trim().to_string(),
        });
    }
    out
}

/// Formats Unix milliseconds as RFC 3339 (UTC) with milliseconds.
fn rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// A sample value as the API spells it (Go's shortest round-trip formatting), checked to be
/// a number; values are compared as these strings, so only bit-identical floats match.
fn parse_value(v: &Value) -> String {
    match v.as_str() {
        Some(s @ ("NaN" | "+Inf" | "-Inf")) => s.to_string(),
        Some(s) => {
            s.parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value {s:?}"));
            s.to_string()
        }
        None => panic!("value is not a string: {v}"),
    }
}

/// How values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// The value strings must be identical: the floats are bit for bit the same.
    Exact,
    /// A deviation listed in README.md ("Deviations from Prometheus"): the floats may differ
    /// in their last bits, at most [`DEVIATION_ULPS`] units in the last place, and nothing
    /// else may differ.
    Ulps,
}

/// The most units in the last place a `~` corpus query may differ by.
const DEVIATION_ULPS: u64 = 16;

/// Compares two value strings under `how`.
fn same_value(how: Match, a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if how == Match::Exact {
        return false;
    }
    let (x, y): (f64, f64) = (a.parse().unwrap_or(f64::NAN), b.parse().unwrap_or(f64::NAN));
    if !x.is_finite() || !y.is_finite() || (x < 0.0) != (y < 0.0) {
        return false;
    }
    x.abs().to_bits().abs_diff(y.abs().to_bits()) <= DEVIATION_ULPS
}

type Metric = BTreeMap<String, String>;

fn metric(v: &Value) -> Metric {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn ts_ms(v: &Value) -> i64 {
    (v.as_f64().expect("timestamp") * 1000.0).round() as i64
}

/// Compares two API responses; returns a description of the first difference.
fn compare(how: Match, query: &str, prom: &Value, vigil: &Value) -> Result<(), String> {
    let ps = prom["status"].as_str().unwrap_or("");
    let vs = vigil["status"].as_str().unwrap_or("");
    if ps != vs {
        return Err(format!(
            "status: prometheus {ps} ({}), vigil {vs} ({})",
            prom["error"], vigil["error"]
        ));
    }
    if ps == "error" {
        if prom["errorType"] != vigil["errorType"] {
            return Err(format!(
                "errorType: prometheus {} ({}), vigil {} ({})",
                prom["errorType"], prom["error"], vigil["errorType"], vigil["error"]
            ));
        }
        return Ok(());
    }
    let (pd, vd) = (&prom["data"], &vigil["data"]);
    if pd["resultType"] != vd["resultType"] {
        return Err(format!(
            "resultType: prometheus {}, vigil {}",
            pd["resultType"], vd["resultType"]
        ));
    }
    let ordered = ["sort(", "sort_desc(", "topk(", "bottomk("]
        .iter()
        .any(|p| query.starts_with(p));
    match pd["resultType"].as_str().unwrap_or("") {
        "scalar" | "string" => {
            let (p, v) = (&pd["result"], &vd["result"]);
            if ts_ms(&p[0]) != ts_ms(&v[0]) {
                return Err(format!("time: prometheus {}, vigil {}", p[0], v[0]));
            }
            if pd["resultType"] == "string" {
                return if p[1] == v[1] {
                    Ok(())
                } else {
                    Err(format!("string: {} vs {}", p[1], v[1]))
                };
            }
            let (a, b) = (parse_value(&p[1]), parse_value(&v[1]));
            if same_value(how, &a, &b) {
                Ok(())
            } else {
                Err(format!("scalar: prometheus {a}, vigil {b}"))
            }
        }
        "vector" => {
            let empty = vec![];
            let p = pd["result"].as_array().unwrap_or(&empty);
            let v = vd["result"].as_array().unwrap_or(&empty);
            let pm: Vec<(Metric, i64, String)> = p
                .iter()
                .map(|s| {
                    (
                        metric(&s["metric"]),
                        ts_ms(&s["value"][0]),
                        parse_value(&s["value"][1]),
                    )
                })
                .collect();
            let vm: Vec<(Metric, i64, String)> = v
                .iter()
                .map(|s| {
                    (
                        metric(&s["metric"]),
                        ts_ms(&s["value"][0]),
                        parse_value(&s["value"][1]),
                    )
                })
                .collect();
            if pm.len() != vm.len() {
                return Err(format!(
                    "vector length: prometheus {} {:?}, vigil {} {:?}",
                    pm.len(),
                    pm.iter().take(4).collect::<Vec<_>>(),
                    vm.len(),
                    vm.iter().take(4).collect::<Vec<_>>()
                ));
            }
            if ordered {
                for (i, (a, b)) in pm.iter().zip(&vm).enumerate() {
                    if !same_value(how, &a.2, &b.2) {
                        return Err(format!("order/value at {i}: prometheus {a:?}, vigil {b:?}"));
                    }
                }
            }
            let pmap: BTreeMap<&Metric, (i64, &String)> =
                pm.iter().map(|(m, t, v)| (m, (*t, v))).collect();
            for (m, t, v) in &vm {
                match pmap.get(m) {
                    None => {
                        return Err(format!(
                            "vigil has {m:?} which prometheus lacks; prometheus: {:?}",
                            pm.iter().map(|x| &x.0).take(5).collect::<Vec<_>>()
                        ))
                    }
                    Some((pt, pv)) => {
                        if pt != t {
                            return Err(format!("{m:?}: time prometheus {pt}, vigil {t}"));
                        }
                        if !same_value(how, pv, v) {
                            return Err(format!("{m:?}: prometheus {pv}, vigil {v}"));
                        }
                    }
                }
            }
            Ok(())
        }
        "matrix" => {
            let empty = vec![];
            let p = pd["result"].as_array().unwrap_or(&empty);
            let v = vd["result"].as_array().unwrap_or(&empty);
            let conv = |arr: &Vec<Value>| -> BTreeMap<Metric, Vec<(i64, String)>> {
                arr.iter()
                    .map(|s| {
                        let pts = s["values"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .map(|p| (ts_ms(&p[0]), parse_value(&p[1])))
                                    .collect()
                            })
                            .unwrap_or_default();
                        (metric(&s["metric"]), pts)
                    })
                    .collect()
            };
            let (pm, vm) = (conv(p), conv(v));
            if pm.len() != p.len() || vm.len() != v.len() {
                return Err("duplicate series in a matrix".into());
            }
            let pk: Vec<_> = pm.keys().collect();
            let vk: Vec<_> = vm.keys().collect();
            if pk != vk {
                return Err(format!(
                    "series differ: prometheus {} {:?}, vigil {} {:?}",
                    pk.len(),
                    pk.iter().take(3).collect::<Vec<_>>(),
                    vk.len(),
                    vk.iter().take(3).collect::<Vec<_>>()
                ));
            }
            for (m, ppts) in &pm {
                let vpts = &vm[m];
                if ppts.len() != vpts.len() {
                    let pt: Vec<_> = ppts.iter().map(|p| p.0).collect();
                    let vt: Vec<_> = vpts.iter().map(|p| p.0).collect();
                    let only_p: Vec<_> = pt.iter().filter(|t| !vt.contains(t)).take(3).collect();
                    let only_v: Vec<_> = vt.iter().filter(|t| !pt.contains(t)).take(3).collect();
                    return Err(format!("{m:?}: prometheus {} points, vigil {}; only prometheus {only_p:?}, only vigil {only_v:?}", ppts.len(), vpts.len()));
                }
                for (a, b) in ppts.iter().zip(vpts) {
                    if a.0 != b.0 || !same_value(how, &a.1, &b.1) {
                        return Err(format!("{m:?}: prometheus {a:?}, vigil {b:?}"));
                    }
                }
            }
            Ok(())
        }
        other => Err(format!("unknown resultType {other}")),
    }
}

// ---------------------------------------------------------------- the tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promql_corpus_matches_prometheus() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Data ends on the last whole hour at least ten minutes ago, so every run sees the same
    // sample times relative to step-aligned subquery evaluations.
    let end_ms = (now - 600_000) / 3_600_000 * 3_600_000;
    let ds = generate(end_ms);
    let samples: usize = ds.series.iter().map(|s| s.points.len()).sum();
    let prom = start_prometheus(&ds).await;
    let (vigil, _vigil_side) = start_vigil(&ds).await;
    eprintln!(
        "dataset: {} series, {samples} samples, {}..{}",
        ds.series.len(),
        ds.start_ms,
        ds.end_ms
    );

    // Instant queries run inside the data (off the step grid), past its end, and just after
    // its start (where the lookback and range windows reach before the first sample).
    let instants = [
        ds.end_ms - 433_500,
        ds.end_ms + 170_000,
        ds.start_ms + 100_500,
    ];
    // Range queries run over the last 75 minutes plus 4 past the end (step 37s), and over the
    // first 40 minutes from 10 before the start (step given as a duration, 1m).
    let ranges = [
        (ds.end_ms - 4_500_000 + 500, ds.end_ms + 240_000, "37"),
        (ds.start_ms - 600_000, ds.start_ms + 2_400_000, "1m"),
    ];

    let subst = |q: &str, t: i64| {
        q.replace("$T", &secs(t))
            .replace("$START", &secs(ds.start_ms))
            .replace("$END", &secs(ds.end_ms))
    };
    let cases = load_corpus();
    let mut passed = 0;
    let mut failures = Vec::new();
    let mut runs = 0;
    let mut deviation_runs = 0;
    let (mut nonempty, mut errors) = (0, 0);
    let (mut prom_time, mut vigil_time) = (Duration::ZERO, Duration::ZERO);
    for case in &cases {
        let paths: Vec<String> = match case.kind {
            Kind::Instant => instants
                .iter()
                .map(|&t| {
                    format!(
                        "/api/v1/query?query={}&time={}",
                        url_encode(&subst(&case.query, t)),
                        secs(t)
                    )
                })
                .collect(),
            Kind::Range => ranges
                .iter()
                .map(|&(start, end, step)| {
                    format!(
                        "/api/v1/query_range?query={}&start={}&end={}&step={step}",
                        url_encode(&subst(&case.query, end)),
                        secs(start),
                        secs(end)
                    )
                })
                .collect(),
        };
        let mut ok = true;
        for path in paths {
            runs += 1;
            if case.how == Match::Ulps {
                deviation_runs += 1;
            }
            let t0 = Instant::now();
            let (_, p) = get_json(prom.addr, &path).await;
            let t1 = Instant::now();
            let (_, v) = get_json(vigil, &path).await;
            prom_time += t1 - t0;
            vigil_time += t1.elapsed();
            if p["status"] == "error" {
                errors += 1;
            } else if p["data"]["result"].as_array().is_none_or(|a| !a.is_empty()) {
                nonempty += 1;
            }
            if let Err(e) = compare(case.how, &case.query, &p, &v) {
                ok = false;
                failures.push(format!(
                    "line {} [{:?}] {}\n    {path}\n    {e}",
                    case.line, case.kind, case.query
                ));
                break;
            }
        }
        if ok {
            passed += 1;
        }
    }
    eprintln!(
        "PromQL differential: {passed}/{} corpus queries match Prometheus ({runs} evaluations: {} bit-exact, {deviation_runs} documented deviations within {DEVIATION_ULPS} ulps; {nonempty} non-empty results, {errors} errors)",
        cases.len(),
        runs - deviation_runs
    );
    eprintln!("time spent answering: prometheus {prom_time:?}, vigil {vigil_time:?}");
    for f in &failures {
        eprintln!("MISMATCH {f}");
    }

    // The metadata endpoints, over the whole data span, and the parameter spellings
    // (RFC 3339 times, float steps, POST forms) on the query endpoints.
    let (from, to) = (secs(ds.start_ms - 60_000), secs(ds.end_ms + 60_000));
    let api_paths = [
        format!("/api/v1/series?match[]=up&start={from}&end={to}"),
        format!("/api/v1/series?match[]=up%7Bjob%3D%22db%22%7D&match[]=queue_depth&start={from}&end={to}"),
        format!("/api/v1/series?match[]=%7B__name__%3D~%22http_request_duration.*%22%2Cle%3D%22%2BInf%22%7D&start={from}&end={to}"),
        format!("/api/v1/labels?start={from}&end={to}"),
        format!("/api/v1/labels?match[]=temperature_celsius&start={from}&end={to}"),
        format!("/api/v1/label/job/values?start={from}&end={to}"),
        format!("/api/v1/label/__name__/values?start={from}&end={to}"),
        format!("/api/v1/label/le/values?match[]=http_request_duration_seconds_bucket&start={from}&end={to}"),
        format!("/api/v1/label/nonexistent/values?start={from}&end={to}"),
        "/api/v1/series".to_string(),
        format!("/api/v1/query_range?query=sum(up)&start={}&end={}&step=90.5", secs(ds.end_ms - 3_600_000), secs(ds.end_ms)),
        format!("/api/v1/query?query=up&time={}", rfc3339(ds.end_ms - 61_250)),
        format!("/api/v1/query_range?query=up&start={}&end={}&step=5m", rfc3339(ds.end_ms - 3_600_000), rfc3339(ds.end_ms)),
        format!("/api/v1/query_range?query=up&start={}&end={}&step=0", secs(ds.end_ms - 3_600_000), secs(ds.end_ms)),
        format!("/api/v1/query_range?query=up&start={}&end={}&step=60", secs(ds.end_ms), secs(ds.end_ms - 3_600_000)),
        format!("/api/v1/query_range?query=up&start={}&end={}&step=1", secs(ds.end_ms - 86_400_000), secs(ds.end_ms)),
        format!(
            "/api/v1/query_range?query=sum(up)&start={}&end={}&step=1",
            secs(ds.end_ms - 11_000_000),
            secs(ds.end_ms)
        ),
        format!(
            "/api/v1/query_range?query=sum(up)&start={}&end={}&step=1",
            secs(ds.end_ms - 11_001_000),
            secs(ds.end_ms)
        ),
        "/api/v1/query?query=up&time=yesterday".to_string(),
        "/api/v1/query_range?query=up&start=1&end=2".to_string(),
    ];
    let mut api_failures = Vec::new();
    for path in &api_paths {
        let (ps, p) = get_json(prom.addr, path).await;
        let (vs, v) = get_json(vigil, path).await;
        let same = if path.contains("/query") {
            compare(Match::Exact, "", &p, &v)
        } else if p["status"] == "success" {
            if p["data"] == v["data"] {
                Ok(())
            } else {
                Err(format!(
                    "data: prometheus {}, vigil {}",
                    p["data"], v["data"]
                ))
            }
        } else if p["errorType"] == v["errorType"] {
            Ok(())
        } else {
            Err(format!(
                "errorType: prometheus {} ({}), vigil {} ({})",
                p["errorType"], p["error"], v["errorType"], v["error"]
            ))
        };
        match same {
            Ok(()) if ps == vs => {}
            Ok(()) => api_failures.push(format!("{path}: status prometheus {ps}, vigil {vs}")),
            Err(e) => api_failures.push(format!("{path}: {e}")),
        }
    }
    // POST form on both query endpoints.
    for (path, body) in [
        (
            "/api/v1/query",
            format!("query=sum%20by%20(job)%20(up)&time={}", secs(ds.end_ms)),
        ),
        (
            "/api/v1/query_range",
            format!(
                "query=rate(http_requests_total%5B5m%5D)&start={}&end={}&step=60",
                secs(ds.end_ms - 1_800_000),
                secs(ds.end_ms)
            ),
        ),
    ] {
        let hdr = [("Content-Type", "application/x-www-form-urlencoded")];
        let (_, p) = http(prom.addr, "POST", path, &hdr, body.as_bytes()).await;
        let (_, v) = http(vigil, "POST", path, &hdr, body.as_bytes()).await;
        let p: Value = serde_json::from_slice(&p).expect("prometheus JSON");
        let v: Value = serde_json::from_slice(&v).expect("vigil JSON");
        if let Err(e) = compare(Match::Exact, "", &p, &v) {
            api_failures.push(format!("POST {path} {body}: {e}"));
        }
    }
    eprintln!(
        "API endpoints: {}/{} requests match Prometheus",
        api_paths.len() + 2 - api_failures.len(),
        api_paths.len() + 2
    );
    for f in &api_failures {
        eprintln!("API MISMATCH {f}");
    }
    assert!(
        api_failures.is_empty(),
        "{} API requests differ from Prometheus",
        api_failures.len()
    );

    let deviations = cases.iter().filter(|c| c.how == Match::Ulps).count();
    assert!(
        deviations <= 12,
        "{deviations} corpus queries are marked as deviations (`~`): each must be one of \
         README.md's deviations from Prometheus"
    );
    assert!(
        cases.len() >= 200,
        "corpus has only {} queries",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} queries differ from Prometheus",
        failures.len(),
        cases.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_queries_the_router() {
    assert!(
        std::path::Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is missing: install the prometheus package"
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let ds = generate(now - 30_000);
    let (addr, _vigil_side) = start_vigil(&ds).await;
    let out = tokio::task::spawn_blocking(move || {
        Command::new(PROMTOOL)
            .args(["query", "instant", &format!("http://{addr}"), "up"])
            .output()
            .expect("run promtool")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "promtool failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("up{")).count(),
        6,
        "{stdout}"
    );
    assert!(
        stdout.contains("instance=\"api-0:8080\"") && stdout.contains("=> 1 @["),
        "{stdout}"
    );
}

/// Throughput figures for the report: run with
/// `cargo test -p vigil-collector --test promql_differential -- --ignored --nocapture`.
#[test]
#[ignore]
fn engine_throughput() {
    use vigil_collector::query::Engine;
    let series_n = 1000;
    let day_ms = 86_400_000;
    let mut rng = Rng(7);
    let series: Vec<Series> = (0..series_n)
        .map(|i| {
            let job = format!("job{}", i % 10);
            let inst = format!("inst{i}");
            let mut c = 0.0;
            Series {
                labels: labels("requests_total", &[("job", &job), ("instance", &inst)]),
                points: (0..day_ms / 15_000)
                    .map(|k| {
                        c += (rng.f() * 100.0).floor();
                        Point {
                            timestamp_ms: k * 15_000,
                            value: c,
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    let samples: usize = series.iter().map(|s| s.points.len()).sum();
    let engine = Engine::new(Arc::new(MemSource::new(series)), QueryOptions::default());
    eprintln!("{series_n} series, {samples} samples");
    let runs: [(&str, &str, i64, i64, i64); 4] = [
        (
            "instant",
            "sum(rate(requests_total[5m]))",
            day_ms,
            day_ms,
            0,
        ),
        (
            "range 24h/60s",
            "sum by (job) (rate(requests_total[5m]))",
            0,
            day_ms,
            60_000,
        ),
        (
            "range 1h/15s",
            "requests_total",
            day_ms - 3_600_000,
            day_ms,
            15_000,
        ),
        (
            "range 6h/60s subquery",
            "max_over_time(sum(rate(requests_total[5m]))[30m:1m])",
            day_ms - 21_600_000,
            day_ms,
            60_000,
        ),
    ];
    for (what, q, start, end, step) in runs {
        let t0 = Instant::now();
        let r = if step == 0 {
            engine.instant(q, start, None)
        } else {
            engine.range(q, start, end, step, None)
        };
        let took = t0.elapsed();
        assert!(r.is_ok(), "{q}: {r:?}");
        eprintln!("{what:24} {q:60} {took:?}");
    }
}
