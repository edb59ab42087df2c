//! Storage ingest benchmark (plain binary, no harness): concurrent writers push pre-encoded
//! node_exporter-like agent batches through `append_agent_batch`, then the program reports
//! samples/s, fsyncs, and bytes per sample in the WAL, in a checkpoint and in blocks.
//!
//! `cargo bench -p vigil-collector --bench storage -- [writers] [batches per writer] [samples per batch]`

use std::time::{Duration, Instant};

use vigil_collector::storage::{AppendOutcome, Matcher, Storage, StorageOptions};
use vigil_shared::codec::encode_batch;
use vigil_shared::model::{Batch, Labels, Point, Series};

/// A small xorshift generator, so the data is reproducible without a rand dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How a series' value evolves, modelled on node_exporter on an ordinary host.
#[derive(Clone, Copy)]
enum Shape {
    /// A CPU-seconds counter advancing by about `rate` per 15 s, in 0.01 s ticks.
    CpuSeconds { rate: u64 },
    /// A byte counter advancing by a variable whole number.
    Bytes { rate: u64 },
    /// A gauge in 4 KiB pages that changes on most scrapes.
    Pages,
    /// A value that rarely changes (sizes, info metrics, idle devices).
    Steady,
}

/// One host's series, shaped like node_exporter output: CPU counters per cpu and mode,
/// network byte counters, memory gauges and mostly constant filesystem/info series.
fn host_series(host: usize, n: usize) -> Vec<(Labels, Shape)> {
    let inst = format!("host-{host}:9100");
    let mut out = Vec::with_capacity(n);
    // (mode, 15 s increase in 0.01 s ticks for one CPU)
    let modes = [
        ("idle", 1400),
        ("iowait", 2),
        ("irq", 0),
        ("nice", 0),
        ("softirq", 1),
        ("steal", 0),
        ("system", 30),
        ("user", 70),
    ];
    let mut cpu = 0;
    'outer: loop {
        for (m, rate) in modes {
            if out.len() >= n * 2 / 5 {
                break 'outer;
            }
            let shape = if rate == 0 {
                Shape::Steady
            } else {
                Shape::CpuSeconds { rate }
            };
            out.push((
                Labels::metric(
                    "node_cpu_seconds_total",
                    &[
                        ("instance", &inst),
                        ("job", "node"),
                        ("cpu", &cpu.to_string()),
                        ("mode", m),
                    ],
                ),
                shape,
            ));
        }
        cpu += 1;
    }
    let mut i = 0;
    while out.len() < n {
        let dev = format!("dev{}", i / 5);
        let (name, shape) = match i % 5 {
            0 => (
                "node_network_receive_bytes_total",
                Shape::Bytes { rate: 200_000 },
            ),
            1 => (
                "node_network_transmit_bytes_total",
                Shape::Bytes { rate: 50_000 },
            ),
            2 => ("node_memory_Active_bytes", Shape::Pages),
            3 => ("node_filesystem_size_bytes", Shape::Steady),
            _ => ("node_filesystem_avail_bytes", Shape::Steady),
        };
        out.push((
            Labels::metric(
                name,
                &[("instance", &inst), ("job", "node"), ("device", &dev)],
            ),
            shape,
        ));
        i += 1;
    }
    out
}

fn make_payloads(
    writers: usize,
    batches: usize,
    per_batch: usize,
    t0: i64,
) -> Vec<Vec<(u64, Vec<u8>)>> {
    let mut all = Vec::with_capacity(writers);
    for w in 0..writers {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w as u64 + 1));
        let series = host_series(w, per_batch);
        // Counters in integer ticks, so CPU seconds are exact multiples of 0.01 as exported.
        let mut ticks: Vec<u64> = series.iter().map(|_| rng.below(100_000_000)).collect();
        let mut out = Vec::with_capacity(batches);
        for b in 0..batches {
            // Scrape timestamps jitter by a few milliseconds, as real scrapes do.
            let ts = t0 + b as i64 * 15_000 + rng.below(5) as i64;
            let mut s = Vec::with_capacity(per_batch);
            for (i, (labels, shape)) in series.iter().enumerate() {
                let value = match *shape {
                    Shape::CpuSeconds { rate } => {
                        ticks[i] += rate + rng.below(rate / 10 + 2);
                        ticks[i] as f64 / 100.0
                    }
                    Shape::Bytes { rate } => {
                        ticks[i] += rate / 2 + rng.below(rate);
                        ticks[i] as f64
                    }
                    Shape::Pages => {
                        if rng.below(4) != 0 {
                            ticks[i] = (ticks[i] + rng.below(2000)).saturating_sub(1000);
                        }
                        (ticks[i] * 4096) as f64
                    }
                    Shape::Steady => {
                        if rng.below(50) == 0 {
                            ticks[i] += 1;
                        }
                        (ticks[i] * 4096) as f64
                    }
                };
                s.push(Series {
                    labels: labels.clone(),
                    points: vec![Point {
                        timestamp_ms: ts,
                        value,
                    }],
                });
            }
            let payload = encode_batch(&Batch {
                series: s,
                events: vec![],
            })
            .expect("encode");
            out.push((b as u64, payload));
        }
        all.push(out);
    }
    all
}

fn dir_size(p: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                total += dir_size(&path);
            } else if let Ok(m) = e.metadata() {
                total += m.len();
            }
        }
    }
    total
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let writers = args.first().copied().unwrap_or(8);
    let batches = args.get(1).copied().unwrap_or(200);
    let per_batch = args.get(2).copied().unwrap_or(1000);
    let dir = std::env::temp_dir().join(format!("vigil-storage-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create bench dir");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let t0 = now - batches as i64 * 15_000;
    let prep = Instant::now();
    let payloads = make_payloads(writers, batches, per_batch, t0);
    let payload_bytes: usize = payloads.iter().flatten().map(|(_, p)| p.len()).sum();
    let total_samples = (writers * batches * per_batch) as u64;
    println!(
        "prepared {writers} writers x {batches} batches x {per_batch} samples = {total_samples} samples, \
         {:.1} MB of payload ({:.2} bytes/sample on the wire) in {:.1}s",
        payload_bytes as f64 / 1e6,
        payload_bytes as f64 / total_samples as f64,
        prep.elapsed().as_secs_f64()
    );

    let d = Instant::now();
    let mut decoded = 0usize;
    for (_, p) in payloads.iter().flatten().take(200) {
        decoded += vigil_shared::codec::decode_batch(p)
            .expect("decode")
            .sample_count();
    }
    println!(
        "decode_batch alone: {:.0} samples/s on one core",
        decoded as f64 / d.elapsed().as_secs_f64()
    );
    let d = Instant::now();
    let mut read = 0usize;
    for (_, p) in payloads.iter().flatten().take(200) {
        read += vigil_collector::storage::bench_read_payload(p).expect("read");
    }
    println!(
        "storage payload reader alone: {:.0} samples/s on one core",
        read as f64 / d.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let opts = StorageOptions {
            // Keep everything in the WAL during the timed run.
            checkpoint_wal_bytes: u64::MAX,
            checkpoint_interval: Duration::from_secs(3600),
            ..Default::default()
        };
        let st = Storage::open(&dir, opts.clone()).expect("open");
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (w, batches) in payloads.into_iter().enumerate() {
            let st = st.clone();
            tasks.push(tokio::spawn(async move {
                let agent = format!("host-{w}");
                let mut lat = Vec::with_capacity(batches.len());
                for (seq, payload) in batches {
                    let t = Instant::now();
                    let r = st
                        .append_agent_batch(&agent, 1, seq, payload)
                        .await
                        .expect("append");
                    lat.push(t.elapsed());
                    assert!(matches!(r, AppendOutcome::Stored { .. }));
                }
                lat
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.expect("writer task"));
        }
        let elapsed = started.elapsed();
        lat.sort();
        let stats = st.stats();
        println!(
            "ingest: {:.0} samples/s ({:.0} batches/s) over {:.2}s; {} fsyncs ({:.1} batches per fsync); \
             append latency p50 {:?} p99 {:?}",
            total_samples as f64 / elapsed.as_secs_f64(),
            (writers * batches) as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64(),
            stats.wal_fsyncs,
            (writers * batches) as f64 / stats.wal_fsyncs.max(1) as f64,
            lat[lat.len() / 2],
            lat[lat.len() * 99 / 100],
        );
        let m = st.metrics();
        println!(
            "writer: {:.2}s in write+fdatasync ({:.2} ms mean per group), {:.2}s elsewhere",
            m.wal_fsync_seconds.get_sample_sum(),
            1000.0 * m.wal_fsync_seconds.get_sample_sum() / stats.wal_fsyncs.max(1) as f64,
            elapsed.as_secs_f64() - m.wal_fsync_seconds.get_sample_sum(),
        );
        assert_eq!(stats.samples_appended, total_samples);
        println!(
            "wal: {:.1} MB, {:.2} bytes/sample",
            stats.wal_bytes as f64 / 1e6,
            stats.wal_bytes as f64 / total_samples as f64
        );

        let q = Instant::now();
        let res = st
            .select(
                &[Matcher::equal("__name__", "node_cpu_seconds_total")],
                i64::MIN,
                i64::MAX,
            )
            .expect("select");
        let pts: usize = res.iter().map(|s| s.points.len()).sum();
        println!(
            "select node_cpu_seconds_total: {} series, {pts} points in {:?}",
            res.len(),
            q.elapsed()
        );
        // Reopen without a checkpoint: everything is replayed from the WAL.
        drop(st);
        let r = Instant::now();
        let st = Storage::open(&dir, opts.clone()).expect("reopen from WAL");
        let replayed = st.stats().samples_in_head;
        println!(
            "reopen replaying the WAL: {:?} ({:.0} samples/s)",
            r.elapsed(),
            replayed as f64 / r.elapsed().as_secs_f64()
        );
        // Some old data may have been compacted into a block during ingest.
        let stored: usize = st
            .select(&[], i64::MIN, i64::MAX)
            .expect("select all")
            .iter()
            .map(|s| s.points.len())
            .sum();
        assert_eq!(stored as u64, total_samples);

        let c = Instant::now();
        st.checkpoint().await.expect("checkpoint");
        let ck: u64 = std::fs::read_dir(&dir)
            .expect("read dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("checkpoint."))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        println!(
            "checkpoint: {:.1} MB, {:.2} bytes/sample (head chunks + labels), written in {:?}",
            ck as f64 / 1e6,
            ck as f64 / total_samples as f64,
            c.elapsed()
        );
        st.close().await.expect("close");
        drop(st);
        let o = Instant::now();
        let st = Storage::open(&dir, opts.clone()).expect("reopen");
        println!(
            "reopen from checkpoint: {:?}, {} series, {} samples in head; data dir {:.1} MB",
            o.elapsed(),
            st.stats().series,
            st.stats().samples_in_head,
            dir_size(&dir) as f64 / 1e6
        );
        st.close().await.expect("close");
        drop(st);
        // Compact everything older than a minute into blocks to measure their density.
        let st = Storage::open(
            &dir,
            StorageOptions {
                block_duration: Duration::from_secs(60),
                ..opts
            },
        )
        .expect("reopen for compaction");
        let c = Instant::now();
        st.compact().await.expect("compact");
        let stats = st.stats();
        println!(
            "blocks: {} blocks, {:.1} MB, {:.2} bytes/sample ({} samples left in head), compacted in {:?}",
            stats.blocks,
            stats.block_bytes as f64 / 1e6,
            stats.block_bytes as f64 / (total_samples - stats.samples_in_head).max(1) as f64,
            stats.samples_in_head,
            c.elapsed()
        );
        let q = Instant::now();
        let res = st
            .select(
                &[Matcher::equal("__name__", "node_cpu_seconds_total")],
                i64::MIN,
                i64::MAX,
            )
            .expect("select");
        let pts: usize = res.iter().map(|s| s.points.len()).sum();
        println!(
            "select node_cpu_seconds_total from blocks: {} series, {pts} points in {:?}",
            res.len(),
            q.elapsed()
        );
        st.close().await.expect("close");
    });
    let _ = std::fs::remove_dir_all(&dir);
}
