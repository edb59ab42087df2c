//! `vigil-alert-latency`: measures the time from a sample arriving at a system to the
//! alert notification it causes reaching a webhook, for Vigil and for Prometheus +
//! Alertmanager alike.
//!
//! It listens for webhook POSTs (Alertmanager's version-4 payload) and, for each of
//! `--cycles` cycles, pushes `bench_flip{cycle="N"} 1` with remote_write, notes when the
//! write was acknowledged (2xx: the sample is stored), and waits for a `firing`
//! notification naming that cycle; then pushes `0` and (with `--wait-resolved`) waits for the
//! `resolved` one. Every `--heartbeat-ms` the current value is pushed again, as a scraping
//! agent would, so the series never goes stale. Each cycle uses its own series, so with
//! `group_by: [alertname, cycle]` every firing starts a new aggregation group and
//! `group_wait` applies to it. A random pause between cycles keeps their phase independent
//! of the systems' evaluation ticks. Prints percentiles of both latencies in milliseconds.

#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use vigil_shared::model::{Labels, Point, Series};

#[derive(Parser)]
#[command(about = "Sample-to-notification latency for Vigil and Prometheus + Alertmanager")]
struct Args {
    /// remote_write `host:port`.
    #[arg(long)]
    write: String,
    /// remote_write path.
    #[arg(long, default_value = "/api/v1/write")]
    path: String,
    /// Address to receive webhooks on.
    #[arg(long)]
    listen: String,
    /// Firing/resolving cycles.
    #[arg(long, default_value_t = 200)]
    cycles: u32,
    /// Also wait for (and time) each resolved notification.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    wait_resolved: bool,
    /// How often the current value is pushed again while waiting.
    #[arg(long, default_value_t = 1000)]
    heartbeat_ms: u64,
    /// Least pause between cycles; a random 0..pause-jitter-ms is added.
    #[arg(long, default_value_t = 300)]
    pause_ms: u64,
    #[arg(long, default_value_t = 700)]
    pause_jitter_ms: u64,
    /// Give up on one notification after this long.
    #[arg(long, default_value_t = 900)]
    timeout_s: u64,
    /// Name printed with the results.
    #[arg(long, default_value = "system")]
    name: String,
}

/// One webhook POST: when it arrived and its parsed body.
struct Notification {
    at: Instant,
    body: serde_json::Value,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Accepts webhook connections and forwards every POST body. Answers 200 to each.
async fn webhook_server(
    listener: tokio::net::TcpListener,
    tx: mpsc::Sender<Notification>,
) -> anyhow::Result<()> {
    loop {
        let (conn, _) = listener.accept().await?;
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut conn = BufReader::new(conn);
            loop {
                let mut line = String::new();
                if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if conn.read_line(&mut h).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if h == "\r\n" || h == "\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                if conn.read_exact(&mut body).await.is_err() {
                    return;
                }
                let at = Instant::now();
                let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                // Bounded; a full queue means the measuring loop is stuck, so wait.
                if tx.send(Notification { at, body }).await.is_err() {
                    return;
                }
                if conn
                    .get_mut()
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}

/// Sends remote_write requests over one keep-alive connection.
struct Writer {
    conn: BufReader<tokio::net::TcpStream>,
    host: String,
    path: String,
    last_ts: i64,
}

impl Writer {
    /// Pushes `bench_flip{cycle}` = `value` at the current time; returns when acknowledged.
    async fn push(&mut self, cycle: u32, value: f64) -> anyhow::Result<Instant> {
        let ts = now_ms().max(self.last_ts + 1);
        self.last_ts = ts;
        let series = vec![Series {
            labels: Labels::metric(
                "bench_flip",
                &[("cycle", &cycle.to_string()), ("job", "bench")],
            ),
            points: vec![Point {
                timestamp_ms: ts,
                value,
            }],
        }];
        let body = vigil_collector::api::remote_write::encode(&series);
        let (code, text) =
            vigil_bench::post_remote_write(&mut self.conn, &self.host, &self.path, &body).await?;
        let acked = Instant::now();
        anyhow::ensure!(
            (200..300).contains(&code),
            "remote_write answered {code}: {text}"
        );
        Ok(acked)
    }
}

/// True when `m` is a notification with `status` whose alerts include cycle `cycle`.
fn matches(m: &serde_json::Value, status: &str, cycle: u32) -> bool {
    let c = cycle.to_string();
    m["status"] == status
        && m["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["labels"]["cycle"] == c.as_str()))
}

/// Pushes `value` for `cycle`, then waits for the matching notification, pushing the value
/// again every heartbeat. Returns the time from the acknowledgement to the notification.
async fn flip_and_wait(
    w: &mut Writer,
    rx: &mut mpsc::Receiver<Notification>,
    args: &Args,
    cycle: u32,
    value: f64,
    status: &str,
) -> anyhow::Result<Duration> {
    let acked = w.push(cycle, value).await?;
    let deadline = tokio::time::Instant::from_std(acked + Duration::from_secs(args.timeout_s));
    let mut beat = tokio::time::interval_at(
        tokio::time::Instant::from_std(acked + Duration::from_millis(args.heartbeat_ms)),
        Duration::from_millis(args.heartbeat_ms),
    );
    loop {
        tokio::select! {
            n = rx.recv() => {
                let n = n.context("webhook server stopped")?;
                if matches(&n.body, status, cycle) {
                    return Ok(n.at.saturating_duration_since(acked));
                }
            }
            _ = beat.tick() => { w.push(cycle, value).await?; }
            _ = tokio::time::sleep_until(deadline) => {
                anyhow::bail!("no {status} notification for cycle {cycle} within {}s", args.timeout_s)
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

fn summary(name: &str, kind: &str, mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "{name} {kind} n={} p50_ms={:.0} p90_ms={:.0} p99_ms={:.0} max_ms={:.0}",
        v.len(),
        percentile(&v, 50.0),
        percentile(&v, 90.0),
        percentile(&v, 99.0),
        percentile(&v, 100.0)
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let (tx, mut rx) = mpsc::channel(1024);
    tokio::spawn(webhook_server(listener, tx));
    let conn = tokio::net::TcpStream::connect(&args.write)
        .await
        .with_context(|| format!("connecting to {}", args.write))?;
    let mut w = Writer {
        conn: BufReader::new(conn),
        host: args.write.clone(),
        path: args.path.clone(),
        last_ts: 0,
    };
    let mut seed = (now_ms() as u64) | 1;
    let mut jitter = move |max: u64| {
        // xorshift64: a fresh phase per cycle, no dependency needed.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if max == 0 {
            0
        } else {
            seed % max
        }
    };
    let mut lat: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for cycle in 0..args.cycles {
        let f = flip_and_wait(&mut w, &mut rx, &args, cycle, 1.0, "firing").await?;
        lat.entry("firing").or_default().push(f);
        if args.wait_resolved {
            let r = flip_and_wait(&mut w, &mut rx, &args, cycle, 0.0, "resolved").await?;
            lat.entry("resolved").or_default().push(r);
        } else {
            w.push(cycle, 0.0).await?;
        }
        eprintln!(
            "cycle {cycle}: firing {:.0} ms{}",
            f.as_secs_f64() * 1000.0,
            lat.get("resolved")
                .and_then(|v| v.last())
                .filter(|_| args.wait_resolved)
                .map(|r| format!(", resolved {:.0} ms", r.as_secs_f64() * 1000.0))
                .unwrap_or_default()
        );
        let pause = args.pause_ms + jitter(args.pause_jitter_ms);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    for (kind, v) in lat {
        println!("{}", summary(&args.name, kind, v));
    }
    Ok(())
}
