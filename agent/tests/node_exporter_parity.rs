//! Parity with the real node_exporter: starts `/usr/bin/prometheus-node-exporter` on a free
//! loopback port with the same exclusions as `HostOptions::default()`, scrapes it with
//! Vigil's scraper, runs `HostCollector` once and compares metric names, label names,
//! label value sets and values. A missing node_exporter is a failure, not a skip: CI
//! installs the Debian package. Every mismatch is listed in the failure message.
//!
//! The ignored `bench_collect_vs_node_exporter_cpu` measures CPU and RSS; run it with
//! `cargo test --release -p vigil-agent --test node_exporter_parity -- --ignored --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vigil_agent::collect::{
    scrape, HostCollector, HostOptions, ScrapeClient, ScrapeOptions, ScrapeTarget,
};
use vigil_shared::model::{Labels, Series};

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// The metrics the agent promises under node_exporter's names.
const REQUIRED: &[&str] = &[
    "node_cpu_seconds_total",
    "node_load1",
    "node_load5",
    "node_load15",
    "node_memory_MemTotal_bytes",
    "node_memory_MemFree_bytes",
    "node_memory_MemAvailable_bytes",
    "node_memory_Buffers_bytes",
    "node_memory_Cached_bytes",
    "node_memory_SwapTotal_bytes",
    "node_memory_SwapFree_bytes",
    "node_filesystem_size_bytes",
    "node_filesystem_free_bytes",
    "node_filesystem_avail_bytes",
    "node_network_receive_bytes_total",
    "node_network_receive_packets_total",
    "node_network_receive_errs_total",
    "node_network_receive_drop_total",
    "node_network_transmit_bytes_total",
    "node_network_transmit_packets_total",
    "node_network_transmit_errs_total",
    "node_network_transmit_drop_total",
    "node_disk_read_bytes_total",
    "node_disk_written_bytes_total",
    "node_disk_io_time_seconds_total",
    "node_boot_time_seconds",
    "node_time_seconds",
    "node_context_switches_total",
    "node_procs_running",
    "node_uname_info",
];

/// Further metrics the collector emits that must also line up with node_exporter.
const ALSO_COMPARED: &[&str] = &[
    "node_cpu_guest_seconds_total",
    "node_forks_total",
    "node_intr_total",
    "node_procs_blocked",
    "node_filesystem_files",
    "node_filesystem_files_free",
    "node_filesystem_readonly",
    "node_filesystem_device_error",
    "node_disk_reads_completed_total",
    "node_disk_writes_completed_total",
    "node_disk_io_now",
    "node_network_up",
    "node_network_mtu_bytes",
    "node_network_info",
];

/// Kills the node_exporter this test started when the test ends, pass or fail.
struct NodeExporter {
    child: Child,
    url: String,
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts node_exporter with the exclusions of `opts`, waiting until it listens (on a new
/// port when it lost the race for the first one).
async fn start_node_exporter(opts: &HostOptions, extra: &[&str]) -> NodeExporter {
    assert!(
        Path::new(NODE_EXPORTER).exists(),
        "{NODE_EXPORTER} is missing: install the prometheus-node-exporter package"
    );
    vigil_testkit::start_on_free_port("node_exporter", |port| {
        let mut child = Command::new(NODE_EXPORTER)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--collector.filesystem.mount-points-exclude={}",
                opts.filesystem_mount_points_exclude
            ))
            .arg(format!(
                "--collector.filesystem.fs-types-exclude={}",
                opts.filesystem_fs_types_exclude
            ))
            .arg(format!(
                "--collector.netdev.device-exclude={}",
                opts.netdev_device_exclude
            ))
            .arg(format!(
                "--collector.diskstats.device-exclude={}",
                opts.diskstats_device_exclude
            ))
            .arg(format!("--path.procfs={}", opts.procfs_root.display()))
            .arg(format!("--path.sysfs={}", opts.sysfs_root.display()))
            .arg(format!("--path.rootfs={}", opts.rootfs_root.display()))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawning {NODE_EXPORTER}: {e}"))?;
        vigil_testkit::wait_listening(&mut child, port, Duration::from_secs(15))?;
        Ok(NodeExporter {
            child,
            url: format!("http://127.0.0.1:{port}/metrics"),
        })
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Metric name -> (labels without `__name__`) -> value.
type Index = BTreeMap<String, BTreeMap<Vec<(String, String)>, f64>>;

fn index(series: &[Series], drop_labels: &[&str]) -> Index {
    let mut out = Index::new();
    for s in series {
        let rest: Vec<(String, String)> = s
            .labels
            .iter()
            .filter(|(n, _)| *n != "__name__" && !drop_labels.contains(n))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        out.entry(s.labels.name().to_string())
            .or_default()
            .insert(rest, s.points[0].value);
    }
    out
}

fn label_names(idx: &Index, metric: &str) -> BTreeSet<String> {
    idx.get(metric)
        .into_iter()
        .flat_map(|m| m.keys())
        .flat_map(|ls| ls.iter().map(|(n, _)| n.clone()))
        .collect()
}

fn label_values(idx: &Index, metric: &str, names: &[&str]) -> BTreeSet<Vec<String>> {
    idx.get(metric)
        .into_iter()
        .flat_map(|m| m.keys())
        .map(|ls| {
            names
                .iter()
                .map(|want| {
                    ls.iter()
                        .find(|(n, _)| n == want)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect()
}

/// How a value may differ between node_exporter (read first) and Vigil (read after).
#[derive(Clone, Copy)]
enum Tolerance {
    Exact,
    /// A counter: Vigil's value is not below node_exporter's, and at most this much above.
    CounterUpTo(f64),
    /// A gauge: the absolute difference is at most this.
    Abs(f64),
    /// A gauge: the difference is at most this fraction of node_exporter's value.
    Rel(f64),
}

fn tolerance(metric: &str, elapsed_s: f64) -> Tolerance {
    use Tolerance::*;
    let cpu = 0.02 + elapsed_s * 1.05;
    match metric {
        "node_memory_MemTotal_bytes" | "node_memory_SwapTotal_bytes" => Exact,
        "node_boot_time_seconds" => Abs(1.0),
        "node_time_seconds" => Abs(elapsed_s + 1.0),
        "node_filesystem_size_bytes" | "node_filesystem_files" | "node_filesystem_readonly" => {
            Exact
        }
        "node_filesystem_device_error" | "node_network_mtu_bytes" | "node_uname_info" => Exact,
        "node_network_info" | "node_network_up" => Exact,
        "node_filesystem_free_bytes" | "node_filesystem_avail_bytes" => Abs(2e9),
        "node_filesystem_files_free" => Abs(1e5),
        "node_load1" => Abs(1.0),
        "node_load5" | "node_load15" => Abs(0.5),
        "node_procs_running" | "node_procs_blocked" => Abs(64.0),
        "node_disk_io_now" => Abs(64.0),
        m if m.starts_with("node_memory_") => Rel(0.2),
        "node_cpu_seconds_total" | "node_cpu_guest_seconds_total" => CounterUpTo(cpu),
        "node_disk_io_time_seconds_total" => CounterUpTo(cpu + 1.0),
        m if m.starts_with("node_disk_") && m.ends_with("_bytes_total") => CounterUpTo(1e9),
        m if m.starts_with("node_disk_") => CounterUpTo(1e5),
        m if m.ends_with("_bytes_total") => CounterUpTo(64e6),
        m if m.starts_with("node_network_") => CounterUpTo(1e5),
        "node_context_switches_total" | "node_intr_total" => CounterUpTo(1e5 + 1e6 * elapsed_s),
        "node_forks_total" => CounterUpTo(1e3 + 1e4 * elapsed_s),
        _ => Exact,
    }
}

fn within(t: Tolerance, ne: f64, ours: f64) -> bool {
    // Counters are read by node_exporter first; one USER_HZ tick of rounding is allowed.
    match t {
        Tolerance::Exact => ne == ours,
        Tolerance::CounterUpTo(up) => ours >= ne - 0.011 && ours - ne <= up,
        Tolerance::Abs(d) => (ours - ne).abs() <= d,
        Tolerance::Rel(r) => (ours - ne).abs() <= r * ne.abs().max(1.0),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn host_collector_matches_node_exporter() {
    let opts = HostOptions::default();
    let ne = start_node_exporter(&opts, &[]).await;
    let client = ScrapeClient::new(ScrapeOptions::default());
    let target = ScrapeTarget::new(&ne.url, "node", None).expect("target");
    let mut host = HostCollector::new(opts).expect("host collector");

    let started = Instant::now();
    let scraped = scrape(&client, &target, Duration::from_secs(10), now_ms()).await;
    assert!(
        scraped.up,
        "scraping node_exporter failed: {:?}",
        scraped.error
    );
    let first = host.collect(now_ms());
    let elapsed_s = started.elapsed().as_secs_f64();
    assert!(
        host.last_errors().is_empty(),
        "collector errors: {:?}",
        host.last_errors()
    );
    let ne_idx = index(&scraped.series, &["job", "instance"]);
    let our_idx = index(&first, &[]);

    let mut problems: Vec<String> = Vec::new();
    for &metric in REQUIRED.iter().chain(ALSO_COMPARED) {
        let (in_ne, in_ours) = (ne_idx.contains_key(metric), our_idx.contains_key(metric));
        if !in_ne || !in_ours {
            if REQUIRED.contains(&metric) || in_ne != in_ours {
                problems.push(format!(
                    "{metric}: present in node_exporter={in_ne}, in vigil={in_ours}"
                ));
            }
            continue;
        }
        let (ln_ne, ln_ours) = (label_names(&ne_idx, metric), label_names(&our_idx, metric));
        if ln_ne != ln_ours {
            problems.push(format!(
                "{metric}: label names differ: node_exporter {ln_ne:?}, vigil {ln_ours:?}"
            ));
            continue;
        }
        let keys: Vec<&str> = ["cpu", "mode", "device", "mountpoint", "fstype"]
            .into_iter()
            .filter(|k| ln_ne.contains(*k))
            .collect();
        if !keys.is_empty() {
            let (a, b) = (
                label_values(&ne_idx, metric, &keys),
                label_values(&our_idx, metric, &keys),
            );
            if a != b {
                let only_ne: Vec<_> = a.difference(&b).collect();
                let only_ours: Vec<_> = b.difference(&a).collect();
                problems.push(format!(
                    "{metric}: {keys:?} values differ: only in node_exporter {only_ne:?}, only in vigil {only_ours:?}"
                ));
                continue;
            }
        }
        let tol = tolerance(metric, elapsed_s);
        let ne_series = &ne_idx[metric];
        let our_series = &our_idx[metric];
        for (labels, ne_value) in ne_series {
            match our_series.get(labels) {
                None => problems.push(format!("{metric}{labels:?}: missing in vigil")),
                Some(&ours) if !within(tol, *ne_value, ours) => problems.push(format!(
                    "{metric}{labels:?}: node_exporter {ne_value}, vigil {ours}"
                )),
                Some(_) => {}
            }
        }
        for labels in our_series.keys() {
            if !ne_series.contains_key(labels) {
                problems.push(format!("{metric}{labels:?}: only in vigil"));
            }
        }
    }

    // Counters stay monotonic across cycles.
    let second = index(&host.collect(now_ms()), &[]);
    for (metric, series) in &our_idx {
        if !metric.ends_with("_total") {
            continue;
        }
        for (labels, before) in series {
            if let Some(after) = second.get(metric).and_then(|m| m.get(labels)) {
                if after < before {
                    problems.push(format!(
                        "{metric}{labels:?}: went backwards from {before} to {after}"
                    ));
                }
            }
        }
    }

    assert!(
        problems.is_empty(),
        "{} mismatches between node_exporter and vigil (elapsed {elapsed_s:.3}s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// A DaemonSet mounts the host's /proc and /sys elsewhere: with both programs pointed at
/// other (here equivalent) roots, the figures still agree. The fake-tree unit test in
/// `host.rs` proves the roots are actually used.
#[tokio::test(flavor = "current_thread")]
async fn configured_roots_match_node_exporter_paths() {
    let opts = HostOptions {
        procfs_root: "/proc/self/root/proc".into(),
        sysfs_root: "/proc/self/root/sys".into(),
        ..HostOptions::default()
    };
    let ne = start_node_exporter(&opts, &[]).await;
    let client = ScrapeClient::new(ScrapeOptions::default());
    let target = ScrapeTarget::new(&ne.url, "node", None).expect("target");
    let scraped = scrape(&client, &target, Duration::from_secs(10), now_ms()).await;
    assert!(scraped.up, "{:?}", scraped.error);
    let mut host = HostCollector::new(opts).expect("host collector");
    let ours = host.collect(now_ms());
    assert!(host.last_errors().is_empty(), "{:?}", host.last_errors());
    let find = |series: &[Series], name: &str| {
        let want = Labels::metric(name, &[]);
        series
            .iter()
            .find(|s| {
                let mut l = s.labels.clone();
                l.set("job", "");
                l.set("instance", "");
                l == want
            })
            .map(|s| s.points[0].value)
    };
    for name in ["node_memory_MemTotal_bytes", "node_boot_time_seconds"] {
        let (a, b) = (find(&scraped.series, name), find(&ours, name));
        assert!(
            a.is_some() && a == b,
            "{name}: node_exporter {a:?}, vigil {b:?}"
        );
    }
}

fn proc_cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0);
    ticks / 100.0
}

fn rss_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read status");
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU per `collect()` must not exceed node_exporter's CPU per scrape with the same set
/// of collectors enabled. Prints the numbers for BENCHMARKS.md.
#[test]
#[ignore = "benchmark: run explicitly with --release -- --ignored --nocapture"]
fn bench_collect_vs_node_exporter_cpu() {
    let iters: usize = std::env::var("VIGIL_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let opts = HostOptions::default();

    let mut host = HostCollector::new(opts.clone()).expect("host collector");
    let rss_before = rss_kib("VmRSS:");
    let cpu_before = proc_cpu_seconds("self");
    let start = Instant::now();
    let mut n = 0usize;
    for _ in 0..iters {
        n += host.collect(now_ms()).len();
    }
    let wall = start.elapsed().as_secs_f64();
    let ours = (proc_cpu_seconds("self") - cpu_before) / iters as f64;
    let rss_after = rss_kib("VmRSS:");
    println!(
        "vigil HostCollector: {iters} collect() calls, {} series each, cpu {:.3} ms/collect, wall {:.3} ms/collect, VmRSS {} KiB -> {} KiB (VmHWM {} KiB)",
        n / iters,
        ours * 1e3,
        wall / iters as f64 * 1e3,
        rss_before,
        rss_after,
        rss_kib("VmHWM:")
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = ScrapeClient::new(ScrapeOptions::default());
    let same_collectors = [
        "--collector.disable-defaults",
        "--collector.cpu",
        "--collector.stat",
        "--collector.loadavg",
        "--collector.meminfo",
        "--collector.filesystem",
        "--collector.netdev",
        "--collector.netclass",
        "--collector.diskstats",
        "--collector.time",
        "--collector.uname",
    ];
    let mut ne_same = f64::NAN;
    for (label, extra) in [
        ("default collectors", &[][..]),
        ("same collectors", &same_collectors[..]),
    ] {
        let ne = rt.block_on(start_node_exporter(&opts, extra));
        let pid = ne.child.id().to_string();
        let target = ScrapeTarget::new(&ne.url, "node", None).expect("target");
        // Warm up: first scrapes initialise collectors.
        for _ in 0..3 {
            let r = rt.block_on(scrape(&client, &target, Duration::from_secs(10), now_ms()));
            assert!(r.up, "{:?}", r.error);
        }
        let before = proc_cpu_seconds(&pid);
        let start = Instant::now();
        for _ in 0..iters {
            let r = rt.block_on(scrape(&client, &target, Duration::from_secs(10), now_ms()));
            assert!(r.up, "{:?}", r.error);
        }
        let per = (proc_cpu_seconds(&pid) - before) / iters as f64;
        println!(
            "node_exporter ({label}): {iters} scrapes, cpu {:.3} ms/scrape, wall {:.3} ms/scrape",
            per * 1e3,
            start.elapsed().as_secs_f64() / iters as f64 * 1e3
        );
        if extra.len() > 1 {
            ne_same = per;
        }
    }
    assert!(
        ours <= ne_same,
        "collect() costs {:.3} ms CPU, node_exporter {:.3} ms per scrape",
        ours * 1e3,
        ne_same * 1e3
    );
}
