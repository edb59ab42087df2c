//! `vigil-loadgen`: drives an ingest endpoint as hard as it will go with node_exporter-like
//! data and reports acknowledged samples per second. The same generator feeds Vigil over
//! QUIC (durable acknowledgements) and Prometheus or VictoriaMetrics over remote_write, so
//! their figures come from one run on the same data.

#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{Parser, ValueEnum};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::BufReader;
use vigil_shared::model::{Batch, Labels, Point, Series};

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Vigil's QUIC ingest with mutual TLS.
    Quic,
    /// Prometheus remote_write 1.0 over HTTP/1.1 keep-alive.
    RemoteWrite,
}

#[derive(Parser)]
#[command(about = "Ingest load generator for Vigil and its peers")]
struct Args {
    #[arg(long, value_enum)]
    mode: Mode,
    /// QUIC `host:port`, or remote_write `host:port` (path from --path).
    #[arg(long)]
    target: String,
    /// remote_write path.
    #[arg(long, default_value = "/api/v1/write")]
    path: String,
    /// Agent certificate directory (QUIC mode).
    #[arg(long)]
    certs_dir: Option<std::path::PathBuf>,
    /// Simulated hosts, each a connection with its own series.
    #[arg(long, default_value_t = 8)]
    hosts: usize,
    /// Series per host (one sample each per batch).
    #[arg(long, default_value_t = 1000)]
    series: usize,
    /// Batches in flight per host.
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// How long to run.
    #[arg(long, default_value = "20")]
    seconds: u64,
}

/// node_exporter-like series for one host: CPU counters, memory gauges, filesystem and
/// network figures, padded with per-device series.
fn host_series(host: usize, n: usize) -> Vec<Labels> {
    let h = format!("host-{host}");
    (0..n)
        .map(|i| {
            let (name, extra): (&str, Vec<(&str, String)>) = match i % 5 {
                0 => (
                    "node_cpu_seconds_total",
                    vec![
                        ("cpu", (i / 5 % 64).to_string()),
                        (
                            "mode",
                            ["user", "system", "idle", "iowait"][i / 320 % 4].into(),
                        ),
                    ],
                ),
                1 => (
                    "node_memory_MemAvailable_bytes",
                    vec![("slot", (i / 5).to_string())],
                ),
                2 => (
                    "node_filesystem_avail_bytes",
                    vec![
                        ("mountpoint", format!("/mnt/{}", i / 5)),
                        ("fstype", "ext4".into()),
                    ],
                ),
                3 => (
                    "node_network_receive_bytes_total",
                    vec![("device", format!("eth{}", i / 5))],
                ),
                _ => (
                    "node_disk_io_time_seconds_total",
                    vec![("device", format!("sd{}", i / 5))],
                ),
            };
            let mut pairs: Vec<(&str, &str)> = vec![("instance", &h), ("job", "node")];
            pairs.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
            Labels::metric(name, &pairs)
        })
        .collect()
}

fn batch(labels: &[Labels], step: u64, base_ms: i64) -> Vec<Series> {
    labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let v = if l.name().ends_with("_total") {
                (step * (i as u64 % 7 + 1)) as f64
            } else {
                1e9 + ((step * 31 + i as u64) % 1000) as f64 * 4096.0
            };
            Series {
                labels: l.clone(),
                points: vec![Point {
                    timestamp_ms: base_ms + step as i64 * 1000,
                    value: v,
                }],
            }
        })
        .collect()
}

async fn run_quic(
    args: &Args,
    done: Arc<AtomicU64>,
    deadline: Instant,
    base_ms: i64,
) -> anyhow::Result<()> {
    let dir = args
        .certs_dir
        .as_ref()
        .context("--certs-dir is required in quic mode")?;
    let read = |f: &str| {
        std::fs::read(dir.join(f)).with_context(|| format!("reading {}", dir.join(f).display()))
    };
    use vigil_shared::certs::files;
    let tls = vigil_shared::certs::client_config(
        &read(files::CA_CERT)?,
        &read(files::AGENT_CERT)?,
        &read(files::AGENT_KEY)?,
    )?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls)?,
    ));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(1024u32.into());
    cfg.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::client("0.0.0.0:0".parse()?)?;
    let addr = tokio::net::lookup_host(&args.target)
        .await?
        .next()
        .context("target does not resolve")?;
    let mut tasks = tokio::task::JoinSet::new();
    for host in 0..args.hosts {
        let conn = endpoint
            .connect_with(cfg.clone(), addr, "localhost")?
            .await?;
        let labels = Arc::new(host_series(host, args.series));
        let stream_id = (std::process::id() as u64) << 20 | host as u64 | (base_ms as u64) << 32;
        let step = Arc::new(AtomicU64::new(0));
        for _ in 0..args.in_flight {
            let (conn, labels, step, done) =
                (conn.clone(), labels.clone(), step.clone(), done.clone());
            tasks.spawn(async move {
                while Instant::now() < deadline {
                    let s = step.fetch_add(1, Ordering::SeqCst);
                    let b = Batch {
                        series: batch(&labels, s, base_ms),
                        events: vec![],
                    };
                    let payload = vigil_shared::codec::encode_batch(&b)?;
                    let frame = vigil_shared::codec::encode_frame(
                        &vigil_shared::codec::AgentMessage::Batch {
                            stream_id,
                            seq: s,
                            priority: false,
                            created_ms: base_ms,
                            payload,
                        },
                    )?;
                    let (mut send, mut recv) = conn.open_bi().await?;
                    send.write_all(&frame).await?;
                    send.finish()?;
                    let reply: vigil_shared::codec::CollectorMessage =
                        vigil_shared::codec::decode_frame(&recv.read_to_end(65536).await?)?;
                    match reply {
                        vigil_shared::codec::CollectorMessage::Ack { .. } => {
                            done.fetch_add(labels.len() as u64, Ordering::Relaxed);
                        }
                        other => anyhow::bail!("collector refused a batch: {other:?}"),
                    }
                }
                Ok::<_, anyhow::Error>(())
            });
        }
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

async fn run_remote_write(
    args: &Args,
    done: Arc<AtomicU64>,
    deadline: Instant,
    base_ms: i64,
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for host in 0..args.hosts {
        let labels = Arc::new(host_series(host, args.series));
        let step = Arc::new(AtomicU64::new(0));
        for _ in 0..args.in_flight {
            let (labels, step, done) = (labels.clone(), step.clone(), done.clone());
            let (target, path) = (args.target.clone(), args.path.clone());
            tasks.spawn(async move {
                let mut conn = BufReader::new(tokio::net::TcpStream::connect(&target).await?);
                while Instant::now() < deadline {
                    let s = step.fetch_add(1, Ordering::SeqCst);
                    let body =
                        vigil_collector::api::remote_write::encode(&batch(&labels, s, base_ms));
                    let (code, _) =
                        vigil_bench::post_remote_write(&mut conn, &target, &path, &body).await?;
                    anyhow::ensure!((200..300).contains(&code), "remote_write answered {code}");
                    done.fetch_add(labels.len() as u64, Ordering::Relaxed);
                }
                Ok::<_, anyhow::Error>(())
            });
        }
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    // Start an hour back so every sample is recent enough for every peer to accept.
    let base_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64
        - 3_600_000;
    match args.mode {
        Mode::Quic => run_quic(&args, done.clone(), deadline, base_ms).await?,
        Mode::RemoteWrite => run_remote_write(&args, done.clone(), deadline, base_ms).await?,
    }
    let secs = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::SeqCst);
    println!(
        "samples={n} seconds={secs:.2} samples_per_second={:.0}",
        n as f64 / secs
    );
    Ok(())
}
