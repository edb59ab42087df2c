//! Host metrics under node_exporter's names, labels and units, read straight from `/proc`,
//! `/sys`, `statfs(2)` and `uname(2)`.
//!
//! [`HostCollector`] covers node_exporter's `cpu`, `loadavg`, `meminfo`, `stat`,
//! `filesystem`, `netdev`, `netclass` (up, mtu, carrier, info), `diskstats`, `time` and
//! `uname` collectors with node_exporter 1.5's default exclusions, and reports each one
//! under `node_scrape_collector_success{collector}`. The proc, sys and root filesystem
//! roots are configurable like node_exporter's `--path.*` flags, so a DaemonSet can read
//! the host's `/proc` mounted at `/host/proc`. A collection cycle reuses one read buffer and
//! its per-CPU state; it never scans processes. `statfs` runs on a helper thread with a
//! timeout, so a hung network mount is reported as `node_filesystem_device_error` and
//! skipped until it answers instead of stalling the agent. sysinfo is not used here: each
//! figure it offers is cheaper and exact from these files, and its disk and network lists
//! ignore the configurable roots.

use regex::Regex;
use serde::Deserialize;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use vigil_shared::model::{Labels, Point, Series};

/// The kernel's `USER_HZ`: `/proc/stat` counts CPU time in these ticks on every Linux
/// architecture node_exporter supports.
const USER_HZ: f64 = 100.0;
/// `/proc/diskstats` counts sectors of 512 bytes regardless of the device's sector size.
const SECTOR_BYTES: f64 = 512.0;
/// If a CPU's idle time jumps back by this much, it was hot-plugged: start it over
/// (node_exporter's rule).
const CPU_JUMP_BACK_SECONDS: f64 = 3.0;
/// Highest CPU index accepted from `/proc/stat`, to bound per-CPU state.
const MAX_CPUS: usize = 16384;

/// Where to read from and what to leave out. Defaults are upstream node_exporter 1.5.0's.
/// Debian's packaged node_exporter patches two of them: its mount-point exclusion also
/// covers `/run`, `/mnt` and `/media`, and its netdev exclusion is `^lo$`; set the options
/// below to match a Debian fleet.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostOptions {
    /// procfs mount point (node_exporter `--path.procfs`).
    pub procfs_root: PathBuf,
    /// sysfs mount point (node_exporter `--path.sysfs`).
    pub sysfs_root: PathBuf,
    /// Root filesystem mount point (node_exporter `--path.rootfs`); mount points are
    /// resolved under it and reported with it stripped.
    pub rootfs_root: PathBuf,
    /// Mount points to leave out (`--collector.filesystem.mount-points-exclude`).
    pub filesystem_mount_points_exclude: String,
    /// Filesystem types to leave out (`--collector.filesystem.fs-types-exclude`).
    pub filesystem_fs_types_exclude: String,
    /// How long one `statfs` may take before its mount is reported stuck, in milliseconds
    /// (`--collector.filesystem.mount-timeout`).
    pub filesystem_mount_timeout_ms: u64,
    /// Network devices to leave out of `node_network_*_total`
    /// (`--collector.netdev.device-exclude`).
    pub netdev_device_exclude: String,
    /// Network devices to leave out of the `/sys/class/net` metrics
    /// (`--collector.netclass.ignored-devices`).
    pub netclass_ignored_devices: String,
    /// Block devices to leave out (`--collector.diskstats.device-exclude`).
    pub diskstats_device_exclude: String,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            procfs_root: PathBuf::from("/proc"),
            sysfs_root: PathBuf::from("/sys"),
            rootfs_root: PathBuf::from("/"),
            filesystem_mount_points_exclude:
                "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
                    .to_string(),
            filesystem_fs_types_exclude: "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$".to_string(),
            filesystem_mount_timeout_ms: 5000,
            netdev_device_exclude: String::new(),
            netclass_ignored_devices: "^$".to_string(),
            diskstats_device_exclude: r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"
                .to_string(),
        }
    }
}

/// Why a [`HostCollector`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// One of the exclusion patterns is not a valid regular expression.
    #[error("invalid regular expression in {option}: {source}")]
    InvalidPattern {
        option: &'static str,
        source: regex::Error,
    },
    /// The mount timeout is zero.
    #[error("filesystem_mount_timeout_ms must be greater than zero")]
    ZeroMountTimeout,
}

/// Why one of the collectors failed in a cycle; the rest of the cycle still runs.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    /// A file did not have the expected shape.
    #[error("parsing {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
}

/// Collects host metrics; keep one and call [`HostCollector::collect`] every cycle.
#[derive(Debug)]
pub struct HostCollector {
    paths: Paths,
    exclude: Exclusions,
    buf: String,
    cpu: CpuState,
    statfs: StatfsProbe,
    last_len: usize,
    errors: Vec<(&'static str, CollectError)>,
}

#[derive(Debug)]
struct Paths {
    stat: PathBuf,
    loadavg: PathBuf,
    meminfo: PathBuf,
    net_dev: PathBuf,
    diskstats: PathBuf,
    mounts_pid1: PathBuf,
    mounts: PathBuf,
    class_net: PathBuf,
    rootfs: PathBuf,
}

#[derive(Debug)]
struct Exclusions {
    mount_points: Regex,
    fs_types: Regex,
    netdev: Option<Regex>,
    netclass: Regex,
    diskstats: Regex,
}

impl HostCollector {
    /// Builds a collector, checking the exclusion patterns. Nothing is read yet.
    pub fn new(opts: HostOptions) -> Result<Self, HostError> {
        let compile = |option: &'static str, pattern: &str| {
            Regex::new(pattern).map_err(|source| HostError::InvalidPattern { option, source })
        };
        if opts.filesystem_mount_timeout_ms == 0 {
            return Err(HostError::ZeroMountTimeout);
        }
        let exclude = Exclusions {
            mount_points: compile(
                "filesystem_mount_points_exclude",
                &opts.filesystem_mount_points_exclude,
            )?,
            fs_types: compile(
                "filesystem_fs_types_exclude",
                &opts.filesystem_fs_types_exclude,
            )?,
            netdev: if opts.netdev_device_exclude.is_empty() {
                None
            } else {
                Some(compile(
                    "netdev_device_exclude",
                    &opts.netdev_device_exclude,
                )?)
            },
            netclass: compile("netclass_ignored_devices", &opts.netclass_ignored_devices)?,
            diskstats: compile("diskstats_device_exclude", &opts.diskstats_device_exclude)?,
        };
        let proc = &opts.procfs_root;
        let paths = Paths {
            stat: proc.join("stat"),
            loadavg: proc.join("loadavg"),
            meminfo: proc.join("meminfo"),
            net_dev: proc.join("net/dev"),
            diskstats: proc.join("diskstats"),
            mounts_pid1: proc.join("1/mounts"),
            mounts: proc.join("mounts"),
            class_net: opts.sysfs_root.join("class/net"),
            rootfs: opts.rootfs_root.clone(),
        };
        Ok(HostCollector {
            paths,
            exclude,
            buf: String::with_capacity(16 * 1024),
            cpu: CpuState::default(),
            statfs: StatfsProbe::new(Duration::from_millis(opts.filesystem_mount_timeout_ms)),
            last_len: 256,
            errors: Vec::new(),
        })
    }

    /// Reads everything once and returns one series per metric, each with one point at
    /// `now_ms`. A collector that fails is reported with
    /// `node_scrape_collector_success{collector="..."} 0` and in [`Self::last_errors`].
    pub fn collect(&mut self, now_ms: i64) -> Vec<Series> {
        let mut out = Out {
            series: Vec::with_capacity(self.last_len + 16),
            ts: now_ms,
        };
        self.errors.clear();

        let stat = read_into(&self.paths.stat, &mut self.buf).and_then(|()| {
            let cpus = parse_cpu_lines(&self.buf, &self.paths.stat)?;
            let counters = parse_stat_counters(&self.buf);
            Ok((cpus, counters))
        });
        match stat {
            Ok((cpus, counters)) => {
                self.cpu.update(&cpus);
                self.cpu.emit(&mut out);
                emit_stat_counters(&counters, &mut out);
                out.success("cpu", true);
                out.success("stat", true);
            }
            Err(e) => {
                self.errors.push(("cpu", e));
                out.success("cpu", false);
                out.success("stat", false);
            }
        }

        let ok = self.run(
            "loadavg",
            |c, out| {
                read_into(&c.paths.loadavg, &mut c.buf)?;
                let [l1, l5, l15] = parse_loadavg(&c.buf).ok_or_else(|| CollectError::Parse {
                    path: c.paths.loadavg.clone(),
                    reason: "expected three load averages".into(),
                })?;
                out.push("node_load1", &[], l1);
                out.push("node_load5", &[], l5);
                out.push("node_load15", &[], l15);
                Ok(())
            },
            &mut out,
        );
        out.success("loadavg", ok);

        let ok = self.run(
            "meminfo",
            |c, out| {
                read_into(&c.paths.meminfo, &mut c.buf)?;
                parse_meminfo(&c.buf, |name, value| out.push(name, &[], value)).map_err(|reason| {
                    CollectError::Parse {
                        path: c.paths.meminfo.clone(),
                        reason,
                    }
                })
            },
            &mut out,
        );
        out.success("meminfo", ok);

        let ok = self.run("filesystem", |c, out| c.collect_filesystems(out), &mut out);
        out.success("filesystem", ok);

        let ok = self.run(
            "netdev",
            |c, out| {
                read_into(&c.paths.net_dev, &mut c.buf)?;
                let exclude = c.exclude.netdev.as_ref();
                parse_net_dev(&c.buf, |device, fields| {
                    if exclude.is_some_and(|re| re.is_match(device)) {
                        return;
                    }
                    for (name, value) in NET_DEV_METRICS.iter().zip(fields) {
                        out.push(name, &[("device", device)], *value as f64);
                    }
                })
                .map_err(|reason| CollectError::Parse {
                    path: c.paths.net_dev.clone(),
                    reason,
                })
            },
            &mut out,
        );
        out.success("netdev", ok);

        let ok = self.run("netclass", |c, out| c.collect_netclass(out), &mut out);
        out.success("netclass", ok);

        let ok = self.run(
            "diskstats",
            |c, out| {
                read_into(&c.paths.diskstats, &mut c.buf)?;
                let exclude = &c.exclude.diskstats;
                parse_diskstats(&c.buf, |device, fields| {
                    if !exclude.is_match(device) {
                        emit_disk(device, fields, out);
                    }
                })
                .map_err(|reason| CollectError::Parse {
                    path: c.paths.diskstats.clone(),
                    reason,
                })
            },
            &mut out,
        );
        out.success("diskstats", ok);

        out.push("node_time_seconds", &[], now_ms as f64 / 1000.0);
        out.success("time", true);

        let u = rustix::system::uname();
        let text = |c: &std::ffi::CStr| c.to_string_lossy().into_owned();
        let (sysname, release, version) = (text(u.sysname()), text(u.release()), text(u.version()));
        let (machine, nodename, domainname) =
            (text(u.machine()), text(u.nodename()), text(u.domainname()));
        out.push(
            "node_uname_info",
            &[
                ("sysname", &sysname),
                ("release", &release),
                ("version", &version),
                ("machine", &machine),
                ("nodename", &nodename),
                ("domainname", &domainname),
            ],
            1.0,
        );
        out.success("uname", true);

        self.last_len = out.series.len();
        out.series
    }

    /// What failed in the last [`Self::collect`], by collector name.
    pub fn last_errors(&self) -> &[(&'static str, CollectError)] {
        &self.errors
    }

    fn run(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut Self, &mut Out) -> Result<(), CollectError>,
        out: &mut Out,
    ) -> bool {
        // A collector that fails halfway must not leave half its series behind.
        let mark = out.series.len();
        match f(self, out) {
            Ok(()) => true,
            Err(e) => {
                out.series.truncate(mark);
                self.errors.push((name, e));
                false
            }
        }
    }

    fn collect_filesystems(&mut self, out: &mut Out) -> Result<(), CollectError> {
        let mut source = &self.paths.mounts_pid1;
        if read_into(source, &mut self.buf).is_err() {
            // Falls back like node_exporter when /proc/1 is hidden (hidepid).
            source = &self.paths.mounts;
            read_into(source, &mut self.buf)?;
        }
        let mounts = parse_mounts(&self.buf).map_err(|reason| CollectError::Parse {
            path: source.clone(),
            reason,
        })?;
        let mut seen: HashSet<(&str, &str, &str)> = HashSet::new();
        for m in &mounts {
            let mount_point = strip_rootfs(&self.paths.rootfs, &m.mount_point);
            if self.exclude.mount_points.is_match(&mount_point)
                || self.exclude.fs_types.is_match(m.fs_type)
            {
                continue;
            }
            if !seen.insert((m.device, m.mount_point.as_str(), m.fs_type)) {
                continue;
            }
            let labels = [
                ("device", m.device),
                ("fstype", m.fs_type),
                ("mountpoint", &*mount_point),
            ];
            let path = join_rootfs(&self.paths.rootfs, &mount_point);
            match self.statfs.probe(&path) {
                Some(Ok(fs)) => {
                    let bsize = fs.block_size as f64;
                    out.push(
                        "node_filesystem_size_bytes",
                        &labels,
                        fs.blocks as f64 * bsize,
                    );
                    out.push(
                        "node_filesystem_free_bytes",
                        &labels,
                        fs.blocks_free as f64 * bsize,
                    );
                    out.push(
                        "node_filesystem_avail_bytes",
                        &labels,
                        fs.blocks_avail as f64 * bsize,
                    );
                    out.push("node_filesystem_files", &labels, fs.files as f64);
                    out.push("node_filesystem_files_free", &labels, fs.files_free as f64);
                    let ro = m.options.split(',').any(|o| o == "ro");
                    out.push(
                        "node_filesystem_readonly",
                        &labels,
                        if ro { 1.0 } else { 0.0 },
                    );
                    out.push("node_filesystem_device_error", &labels, 0.0);
                }
                Some(Err(_)) | None => {
                    out.push("node_filesystem_device_error", &labels, 1.0);
                }
            }
        }
        Ok(())
    }

    fn collect_netclass(&mut self, out: &mut Out) -> Result<(), CollectError> {
        let read_err = |path: &Path, source| CollectError::Read {
            path: path.to_path_buf(),
            source,
        };
        let entries = std::fs::read_dir(&self.paths.class_net)
            .map_err(|e| read_err(&self.paths.class_net, e))?;
        let mut devices: Vec<String> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| read_err(&self.paths.class_net, e))?;
            // Regular files such as `bonding_masters` are not devices.
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            if let Some(name) = entry.file_name().to_str() {
                if !self.exclude.netclass.is_match(name) {
                    devices.push(name.to_string());
                }
            }
        }
        devices.sort();
        let mut dir = self.paths.class_net.clone();
        for device in &devices {
            dir.push(device);
            let mut attr = |name: &str, buf: &mut String| -> Option<String> {
                dir.push(name);
                let r = read_into(&dir, buf).ok().map(|()| buf.trim().to_string());
                dir.pop();
                r
            };
            let operstate = attr("operstate", &mut self.buf).unwrap_or_default();
            let address = attr("address", &mut self.buf).unwrap_or_default();
            let broadcast = attr("broadcast", &mut self.buf).unwrap_or_default();
            let duplex = attr("duplex", &mut self.buf).unwrap_or_default();
            let ifalias = attr("ifalias", &mut self.buf).unwrap_or_default();
            let mtu = attr("mtu", &mut self.buf).and_then(|s| s.parse::<f64>().ok());
            let carrier = attr("carrier", &mut self.buf).and_then(|s| s.parse::<f64>().ok());
            dir.pop();
            let dev = [("device", device.as_str())];
            out.push(
                "node_network_info",
                &[
                    ("address", &address),
                    ("broadcast", &broadcast),
                    ("device", device),
                    ("duplex", &duplex),
                    ("ifalias", &ifalias),
                    ("operstate", &operstate),
                ],
                1.0,
            );
            out.push(
                "node_network_up",
                &dev,
                if operstate == "up" { 1.0 } else { 0.0 },
            );
            if let Some(mtu) = mtu {
                out.push("node_network_mtu_bytes", &dev, mtu);
            }
            if let Some(carrier) = carrier {
                out.push("node_network_carrier", &dev, carrier);
            }
        }
        Ok(())
    }
}

/// The series of one cycle under construction.
struct Out {
    series: Vec<Series>,
    ts: i64,
}

impl Out {
    fn push(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.series.push(Series {
            labels: Labels::metric(name, labels),
            points: vec![Point {
                timestamp_ms: self.ts,
                value,
            }],
        });
    }

    fn success(&mut self, collector: &str, ok: bool) {
        self.push(
            "node_scrape_collector_success",
            &[("collector", collector)],
            if ok { 1.0 } else { 0.0 },
        );
    }
}

fn read_into(path: &Path, buf: &mut String) -> Result<(), CollectError> {
    buf.clear();
    File::open(path)
        .and_then(|mut f| f.read_to_string(buf))
        .map(|_| ())
        .map_err(|source| CollectError::Read {
            path: path.to_path_buf(),
            source,
        })
}

// ---------------------------------------------------------------------------------------
// /proc/stat

/// CPU modes in `/proc/stat` column order.
const CPU_MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];
/// Index of `idle` in a CPU row.
const IDLE: usize = 3;

/// One `cpuN` row of `/proc/stat` in seconds: the eight modes then guest and guest_nice.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuTimes {
    /// The CPU number from `cpuN`.
    pub cpu: usize,
    /// Seconds per column: user, nice, system, idle, iowait, irq, softirq, steal, guest,
    /// guest_nice. Columns the kernel does not report are zero.
    pub seconds: [f64; 10],
}

/// Parses the `cpuN` rows of `/proc/stat` (the aggregate `cpu` row is skipped).
pub fn parse_cpu_lines(text: &str, path: &Path) -> Result<Vec<CpuTimes>, CollectError> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(head) = fields.next() else { continue };
        let Some(num) = head.strip_prefix("cpu") else {
            continue;
        };
        if num.is_empty() {
            continue;
        }
        let bad = |reason: String| CollectError::Parse {
            path: path.to_path_buf(),
            reason,
        };
        let cpu: usize = num
            .parse()
            .ok()
            .filter(|&n| n < MAX_CPUS)
            .ok_or_else(|| bad(format!("bad cpu name {head:?}")))?;
        let mut t = CpuTimes {
            cpu,
            ..CpuTimes::default()
        };
        for (slot, field) in t.seconds.iter_mut().zip(fields) {
            let ticks: u64 = field
                .parse()
                .map_err(|_| bad(format!("bad tick count {field:?} for {head}")))?;
            *slot = ticks as f64 / USER_HZ;
        }
        out.push(t);
    }
    if out.is_empty() {
        return Err(CollectError::Parse {
            path: path.to_path_buf(),
            reason: "no cpuN lines".into(),
        });
    }
    Ok(out)
}

/// Per-CPU state that keeps `node_cpu_seconds_total` monotonic, as node_exporter does:
/// a column that goes backwards keeps its previous value, unless idle fell by
/// [`CPU_JUMP_BACK_SECONDS`] or more, which means the CPU was replugged and starts over.
#[derive(Debug, Default)]
struct CpuState {
    cpus: Vec<Option<[f64; 10]>>,
    names: Vec<String>,
}

impl CpuState {
    fn update(&mut self, rows: &[CpuTimes]) {
        // A CPU that went offline is forgotten, so it starts over when it returns.
        let mut present = vec![false; self.cpus.len()];
        for row in rows {
            if let Some(p) = present.get_mut(row.cpu) {
                *p = true;
            }
        }
        for (slot, present) in self.cpus.iter_mut().zip(present) {
            if !present {
                *slot = None;
            }
        }
        for row in rows {
            if self.cpus.len() <= row.cpu {
                self.cpus.resize(row.cpu + 1, None);
            }
            while self.names.len() <= row.cpu {
                self.names.push(self.names.len().to_string());
            }
            let slot = &mut self.cpus[row.cpu];
            *slot = Some(match *slot {
                Some(prev) if prev[IDLE] - row.seconds[IDLE] < CPU_JUMP_BACK_SECONDS => {
                    let mut next = prev;
                    for (n, new) in next.iter_mut().zip(row.seconds) {
                        if new >= *n {
                            *n = new;
                        }
                    }
                    next
                }
                _ => row.seconds,
            });
        }
    }

    fn emit(&self, out: &mut Out) {
        for (cpu, slot) in self.cpus.iter().enumerate() {
            let (Some(secs), Some(name)) = (slot, self.names.get(cpu)) else {
                continue;
            };
            for (mode, value) in CPU_MODES.iter().zip(secs) {
                out.push(
                    "node_cpu_seconds_total",
                    &[("cpu", name), ("mode", mode)],
                    *value,
                );
            }
            for (mode, value) in ["user", "nice"].iter().zip(&secs[8..]) {
                out.push(
                    "node_cpu_guest_seconds_total",
                    &[("cpu", name), ("mode", mode)],
                    *value,
                );
            }
        }
    }
}

/// The single-value rows of `/proc/stat` that node_exporter's `stat` collector reports.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StatCounters {
    pub intr: Option<f64>,
    pub ctxt: Option<f64>,
    pub btime: Option<f64>,
    pub processes: Option<f64>,
    pub procs_running: Option<f64>,
    pub procs_blocked: Option<f64>,
}

/// Reads `intr`, `ctxt`, `btime`, `processes`, `procs_running` and `procs_blocked`.
pub fn parse_stat_counters(text: &str) -> StatCounters {
    let mut c = StatCounters::default();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(key), Some(value)) = (fields.next(), fields.next()) else {
            continue;
        };
        let slot = match key {
            "intr" => &mut c.intr,
            "ctxt" => &mut c.ctxt,
            "btime" => &mut c.btime,
            "processes" => &mut c.processes,
            "procs_running" => &mut c.procs_running,
            "procs_blocked" => &mut c.procs_blocked,
            _ => continue,
        };
        *slot = value.parse::<u64>().ok().map(|v| v as f64);
    }
    c
}

fn emit_stat_counters(c: &StatCounters, out: &mut Out) {
    for (name, value) in [
        ("node_intr_total", c.intr),
        ("node_context_switches_total", c.ctxt),
        ("node_boot_time_seconds", c.btime),
        ("node_forks_total", c.processes),
        ("node_procs_running", c.procs_running),
        ("node_procs_blocked", c.procs_blocked),
    ] {
        if let Some(v) = value {
            out.push(name, &[], v);
        }
    }
}

// ---------------------------------------------------------------------------------------
// /proc/loadavg and /proc/meminfo

/// Parses the three load averages of `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut f = text.split_ascii_whitespace().map(|s| s.parse::<f64>().ok());
    Some([f.next()??, f.next()??, f.next()??])
}

/// Parses `/proc/meminfo`, calling `emit(metric_name, value)` per row with node_exporter's
/// naming: `Active(anon):  12 kB` becomes `node_memory_Active_anon_bytes` = 12288, and a
/// row without a unit (`HugePages_Total: 0`) keeps its bare name.
pub fn parse_meminfo(text: &str, mut emit: impl FnMut(&str, f64)) -> Result<(), String> {
    let mut name = String::with_capacity(64);
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else { continue };
        let key = key
            .strip_suffix(':')
            .ok_or_else(|| format!("no ':' after {key:?}"))?;
        let value: f64 = fields
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("bad value for {key}"))? as f64;
        let unit = fields.next();
        name.clear();
        name.push_str("node_memory_");
        match (key.find('('), key.ends_with(')')) {
            (Some(open), true) => {
                name.push_str(&key[..open]);
                name.push('_');
                name.push_str(&key[open + 1..key.len() - 1]);
            }
            _ => name.push_str(key),
        }
        match unit {
            Some("kB") => {
                name.push_str("_bytes");
                emit(&name, value * 1024.0);
            }
            None => emit(&name, value),
            Some(other) => return Err(format!("unknown unit {other:?} for {key}")),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// /proc/net/dev

/// node_exporter's names for the sixteen `/proc/net/dev` columns.
const NET_DEV_METRICS: [&str; 16] = [
    "node_network_receive_bytes_total",
    "node_network_receive_packets_total",
    "node_network_receive_errs_total",
    "node_network_receive_drop_total",
    "node_network_receive_fifo_total",
    "node_network_receive_frame_total",
    "node_network_receive_compressed_total",
    "node_network_receive_multicast_total",
    "node_network_transmit_bytes_total",
    "node_network_transmit_packets_total",
    "node_network_transmit_errs_total",
    "node_network_transmit_drop_total",
    "node_network_transmit_fifo_total",
    "node_network_transmit_colls_total",
    "node_network_transmit_carrier_total",
    "node_network_transmit_compressed_total",
];

/// Parses `/proc/net/dev`, calling `emit(device, columns)` per interface.
pub fn parse_net_dev(text: &str, mut emit: impl FnMut(&str, &[u64; 16])) -> Result<(), String> {
    for line in text.lines().skip(2) {
        if line.trim().is_empty() {
            continue;
        }
        let (device, rest) = line
            .split_once(':')
            .ok_or_else(|| format!("no ':' in {:?}", clip(line)))?;
        let device = device.trim();
        let mut fields = [0u64; 16];
        let mut n = 0;
        for (slot, field) in fields.iter_mut().zip(rest.split_ascii_whitespace()) {
            *slot = field
                .parse()
                .map_err(|_| format!("bad counter {field:?} for {device}"))?;
            n += 1;
        }
        if n != 16 {
            return Err(format!("{device}: expected 16 columns, found {n}"));
        }
        emit(device, &fields);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// /proc/diskstats

/// Parses `/proc/diskstats`, calling `emit(device, columns)` per device with the columns
/// after the name (11 on old kernels, 15 with discards, 17 with flushes; absent ones are
/// `None`).
pub fn parse_diskstats(
    text: &str,
    mut emit: impl FnMut(&str, &[Option<u64>; 17]),
) -> Result<(), String> {
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(_major), Some(_minor), Some(device)) =
            (fields.next(), fields.next(), fields.next())
        else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!("short line {:?}", clip(line)));
        };
        let mut cols = [None; 17];
        let mut n = 0;
        for (slot, field) in cols.iter_mut().zip(fields) {
            *slot = Some(
                field
                    .parse::<u64>()
                    .map_err(|_| format!("bad counter {field:?} for {device}"))?,
            );
            n += 1;
        }
        if n < 11 {
            return Err(format!("{device}: expected at least 11 columns, found {n}"));
        }
        emit(device, &cols);
    }
    Ok(())
}

fn emit_disk(device: &str, cols: &[Option<u64>; 17], out: &mut Out) {
    const MS: f64 = 0.001;
    // (column, metric, scale)
    const MAP: [(usize, &str, f64); 17] = [
        (0, "node_disk_reads_completed_total", 1.0),
        (1, "node_disk_reads_merged_total", 1.0),
        (2, "node_disk_read_bytes_total", SECTOR_BYTES),
        (3, "node_disk_read_time_seconds_total", MS),
        (4, "node_disk_writes_completed_total", 1.0),
        (5, "node_disk_writes_merged_total", 1.0),
        (6, "node_disk_written_bytes_total", SECTOR_BYTES),
        (7, "node_disk_write_time_seconds_total", MS),
        (8, "node_disk_io_now", 1.0),
        (9, "node_disk_io_time_seconds_total", MS),
        (10, "node_disk_io_time_weighted_seconds_total", MS),
        (11, "node_disk_discards_completed_total", 1.0),
        (12, "node_disk_discards_merged_total", 1.0),
        (13, "node_disk_discarded_sectors_total", 1.0),
        (14, "node_disk_discard_time_seconds_total", MS),
        (15, "node_disk_flush_requests_total", 1.0),
        (16, "node_disk_flush_requests_time_seconds_total", MS),
    ];
    for (col, name, scale) in MAP {
        if let Some(v) = cols[col] {
            out.push(name, &[("device", device)], v as f64 * scale);
        }
    }
}

// ---------------------------------------------------------------------------------------
// mounts and statfs

/// One row of `/proc/<pid>/mounts`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount<'a> {
    pub device: &'a str,
    /// With fstab's `\040` (space) and `\011` (tab) decoded.
    pub mount_point: String,
    pub fs_type: &'a str,
    pub options: &'a str,
}

/// Parses `/proc/<pid>/mounts`.
pub fn parse_mounts(text: &str) -> Result<Vec<Mount<'_>>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let mut f = line.split_ascii_whitespace();
        let (Some(device), Some(mount_point), Some(fs_type), Some(options)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(format!("malformed mount line {:?}", clip(line)));
        };
        out.push(Mount {
            device,
            mount_point: mount_point.replace("\\040", " ").replace("\\011", "\t"),
            fs_type,
            options,
        });
    }
    Ok(out)
}

fn strip_rootfs<'a>(rootfs: &Path, mount_point: &'a str) -> std::borrow::Cow<'a, str> {
    let root = rootfs.to_string_lossy();
    if root == "/" {
        return mount_point.into();
    }
    match mount_point.strip_prefix(root.as_ref()) {
        Some("") => "/".into(),
        Some(rest) => rest.to_string().into(),
        None => mount_point.into(),
    }
}

fn join_rootfs(rootfs: &Path, mount_point: &str) -> PathBuf {
    rootfs.join(mount_point.trim_start_matches('/'))
}

/// The `statfs(2)` figures node_exporter reports.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FsStats {
    block_size: u64,
    blocks: u64,
    blocks_free: u64,
    blocks_avail: u64,
    files: u64,
    files_free: u64,
}

type StatfsReply = io::Result<FsStats>;

/// Runs `statfs` on a helper thread so a hung mount costs one timeout, not the agent.
/// A mount that times out is "stuck": it is skipped (reported as a device error) until the
/// abandoned call returns, as node_exporter does.
#[derive(Debug)]
struct StatfsProbe {
    timeout: Duration,
    worker: Option<(mpsc::SyncSender<PathBuf>, mpsc::Receiver<StatfsReply>)>,
    stuck: Arc<Mutex<HashSet<PathBuf>>>,
    /// `statfs` itself; tests substitute one that hangs.
    stat: fn(&Path) -> StatfsReply,
}

impl StatfsProbe {
    fn new(timeout: Duration) -> Self {
        StatfsProbe {
            timeout,
            worker: None,
            stuck: Arc::new(Mutex::new(HashSet::new())),
            stat: statfs,
        }
    }

    /// `None` when the mount is stuck (now or from an earlier cycle).
    fn probe(&mut self, path: &Path) -> Option<StatfsReply> {
        if self.stuck.lock().map(|s| s.contains(path)).unwrap_or(false) {
            return None;
        }
        if self.worker.is_none() {
            self.worker = Some(self.spawn().ok()?);
        }
        let (tx, rx) = self.worker.as_ref()?;
        if tx.send(path.to_path_buf()).is_err() {
            self.worker = None;
            return Some(Err(io::Error::other("statfs worker exited")));
        }
        match rx.recv_timeout(self.timeout) {
            Ok(reply) => Some(reply),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(mut s) = self.stuck.lock() {
                    s.insert(path.to_path_buf());
                }
                // Abandon the blocked worker; it clears the mount when statfs returns.
                self.worker = None;
                tracing::warn!(path = %path.display(), "statfs timed out; mount marked stuck");
                None
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.worker = None;
                Some(Err(io::Error::other("statfs worker exited")))
            }
        }
    }

    fn spawn(&self) -> io::Result<(mpsc::SyncSender<PathBuf>, mpsc::Receiver<StatfsReply>)> {
        let (req_tx, req_rx) = mpsc::sync_channel::<PathBuf>(1);
        let (rep_tx, rep_rx) = mpsc::sync_channel::<StatfsReply>(1);
        let stuck = Arc::clone(&self.stuck);
        let stat = self.stat;
        std::thread::Builder::new()
            .name("vigil-statfs".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                for path in req_rx {
                    let reply = stat(&path);
                    if rep_tx.send(reply).is_err() {
                        // Abandoned after a timeout: the mount answers again.
                        if let Ok(mut s) = stuck.lock() {
                            s.remove(&path);
                        }
                        return;
                    }
                }
            })?;
        Ok((req_tx, rep_rx))
    }
}

fn statfs(path: &Path) -> StatfsReply {
    let s = rustix::fs::statfs(path).map_err(io::Error::from)?;
    Ok(FsStats {
        block_size: u64::try_from(s.f_bsize).unwrap_or(0),
        blocks: s.f_blocks,
        blocks_free: s.f_bfree,
        blocks_avail: s.f_bavail,
        files: s.f_files,
        files_free: s.f_ffree,
    })
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const STAT: &str = "cpu  27076 0 7796 58489 764 0 136 453 0 0
cpu0 13140 0 3730 30052 197 0 12 218 0 0
cpu1 13936 5 4066 28437 567 0 124 235 7 1
intr 4213813 0 9 0 0 0 0 0 0 0 0
ctxt 390254
btime 1795312376
processes 11823
procs_running 3
procs_blocked 1
softirq 1433286 0 281372 3 77016 0 0 203 622113 0 452579
";

    #[test]
    fn cpu_rows_are_seconds_in_user_hz() {
        let rows = parse_cpu_lines(STAT, Path::new("stat")).expect("parses");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].cpu, 1);
        assert_eq!(rows[1].seconds[0], 139.36);
        assert_eq!(rows[1].seconds[1], 0.05);
        assert_eq!(rows[1].seconds[3], 284.37);
        assert_eq!(rows[1].seconds[8], 0.07);
        assert_eq!(rows[1].seconds[9], 0.01);
        let c = parse_stat_counters(STAT);
        assert_eq!(c.ctxt, Some(390254.0));
        assert_eq!(c.btime, Some(1795312376.0));
        assert_eq!(c.intr, Some(4213813.0));
        assert_eq!(c.processes, Some(11823.0));
        assert_eq!(c.procs_running, Some(3.0));
        assert_eq!(c.procs_blocked, Some(1.0));
    }

    #[test]
    fn cpu_rows_reject_garbage() {
        assert!(parse_cpu_lines("cpu0 1 x 3\n", Path::new("s")).is_err());
        assert!(parse_cpu_lines("cpuX 1 2 3\n", Path::new("s")).is_err());
        assert!(parse_cpu_lines("cpu99999999 1 2\n", Path::new("s")).is_err());
        assert!(parse_cpu_lines("intr 5\n", Path::new("s")).is_err());
    }

    #[test]
    fn cpu_counters_never_go_backwards_but_hotplug_resets() {
        let mut st = CpuState::default();
        let row = |idle: f64, iowait: f64| CpuTimes {
            cpu: 0,
            seconds: [1.0, 0.0, 1.0, idle, iowait, 0.0, 0.0, 0.0, 0.0, 0.0],
        };
        st.update(&[row(100.0, 5.0)]);
        st.update(&[row(101.0, 4.0)]);
        assert_eq!(st.cpus[0].expect("cpu0")[IDLE], 101.0);
        assert_eq!(st.cpus[0].expect("cpu0")[4], 5.0, "iowait kept from before");
        st.update(&[row(10.0, 1.0)]);
        assert_eq!(st.cpus[0].expect("cpu0")[IDLE], 10.0, "hotplug starts over");
        assert_eq!(st.cpus[0].expect("cpu0")[4], 1.0);
    }

    static HANG: Mutex<()> = Mutex::new(());

    fn fake_statfs(path: &Path) -> StatfsReply {
        if path == Path::new("/hang") {
            let _wait = HANG.lock();
        }
        Ok(FsStats {
            block_size: 4096,
            blocks: 10,
            blocks_free: 5,
            blocks_avail: 4,
            files: 3,
            files_free: 2,
        })
    }

    #[test]
    fn hung_mount_is_stuck_until_statfs_returns() {
        let mut probe = StatfsProbe::new(Duration::from_millis(50));
        probe.stat = fake_statfs;
        let gate = HANG.lock().expect("gate");
        assert!(probe.probe(Path::new("/hang")).is_none(), "times out");
        let t = std::time::Instant::now();
        assert!(probe.probe(Path::new("/hang")).is_none(), "still stuck");
        assert!(t.elapsed() < Duration::from_millis(40), "no second wait");
        let ok = probe
            .probe(Path::new("/ok"))
            .expect("a fresh worker answers");
        assert_eq!(ok.expect("stats").blocks, 10);
        drop(gate);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(reply) = probe.probe(Path::new("/hang")) {
                assert_eq!(reply.expect("stats").files_free, 2);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "mount never recovered"
            );
            std::thread::yield_now();
        }
    }

    #[test]
    fn loadavg() {
        assert_eq!(
            parse_loadavg("0.76 0.74 0.39 2/345 12345\n"),
            Some([0.76, 0.74, 0.39])
        );
        assert_eq!(parse_loadavg("0.76 x 0.39"), None);
        assert_eq!(parse_loadavg(""), None);
    }

    #[test]
    fn meminfo_names_and_units() {
        let text = "MemTotal:       24684096 kB\nActive(anon):      1024 kB\n\
                    HugePages_Total:       7\nHugepagesize:       2048 kB\n";
        let mut got = BTreeMap::new();
        parse_meminfo(text, |n, v| {
            got.insert(n.to_string(), v);
        })
        .expect("parses");
        assert_eq!(got["node_memory_MemTotal_bytes"], 24684096.0 * 1024.0);
        assert_eq!(got["node_memory_Active_anon_bytes"], 1024.0 * 1024.0);
        assert_eq!(got["node_memory_HugePages_Total"], 7.0);
        assert_eq!(got["node_memory_Hugepagesize_bytes"], 2048.0 * 1024.0);
        assert!(parse_meminfo("MemTotal 5 kB\n", |_, _| {}).is_err());
        assert!(parse_meminfo("MemTotal: x kB\n", |_, _| {}).is_err());
        assert!(parse_meminfo("MemTotal: 5 MB\n", |_, _| {}).is_err());
    }

    #[test]
    fn net_dev_columns() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:   63187      67    0    0    0     0          0         0    63187      67    0    0    0     0       0          0
  eth0:186602958    6536    1    2    3     4          5         6   416899    3809    7    8    9    10     11         12
";
        let mut got = Vec::new();
        parse_net_dev(text, |d, f| got.push((d.to_string(), *f))).expect("parses");
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, "eth0");
        assert_eq!(got[1].1[0], 186602958);
        assert_eq!(got[1].1[15], 12);
        assert!(parse_net_dev("a\nb\neth0: 1 2 3\n", |_, _| {}).is_err());
        assert!(parse_net_dev("a\nb\neth0 1 2 3\n", |_, _| {}).is_err());
    }

    #[test]
    fn diskstats_old_and_new_kernels() {
        let text = " 254       0 vda 56253 6838 4078098 108969 9449 28899 5401152 25541 0 14080 135339 4952 62 431000 747 992 81
   8       0 sda 1 2 3 4 5 6 7 8 9 10 11
";
        let mut out = Out {
            series: Vec::new(),
            ts: 0,
        };
        parse_diskstats(text, |d, c| emit_disk(d, c, &mut out)).expect("parses");
        let find = |name: &str, dev: &str| {
            out.series
                .iter()
                .find(|s| s.labels.name() == name && s.labels.get("device") == Some(dev))
                .map(|s| s.points[0].value)
        };
        assert_eq!(
            find("node_disk_read_bytes_total", "vda"),
            Some(4078098.0 * 512.0)
        );
        assert_eq!(
            find("node_disk_written_bytes_total", "vda"),
            Some(5401152.0 * 512.0)
        );
        assert_eq!(find("node_disk_io_time_seconds_total", "vda"), Some(14.08));
        assert_eq!(find("node_disk_flush_requests_total", "vda"), Some(992.0));
        assert_eq!(find("node_disk_io_time_seconds_total", "sda"), Some(0.01));
        assert_eq!(find("node_disk_discards_completed_total", "sda"), None);
        assert!(parse_diskstats("8 0 sda 1 2 3\n", |_, _| {}).is_err());
        assert!(parse_diskstats("8 0 sda 1 2 3 4 5 6 7 8 9 10 x\n", |_, _| {}).is_err());
    }

    #[test]
    fn mounts_decode_spaces_and_reject_short_lines() {
        let m = parse_mounts("/dev/sda1 /mnt/my\\040disk ext4 rw,relatime 0 0\n").expect("parses");
        assert_eq!(m[0].mount_point, "/mnt/my disk");
        assert_eq!(m[0].fs_type, "ext4");
        assert!(parse_mounts("/dev/sda1 /mnt\n").is_err());
    }

    #[test]
    fn rootfs_prefix_is_stripped_and_joined() {
        assert_eq!(strip_rootfs(Path::new("/"), "/boot"), "/boot");
        assert_eq!(strip_rootfs(Path::new("/host"), "/host/boot"), "/boot");
        assert_eq!(strip_rootfs(Path::new("/host"), "/host"), "/");
        assert_eq!(
            join_rootfs(Path::new("/host"), "/boot"),
            Path::new("/host/boot")
        );
        assert_eq!(join_rootfs(Path::new("/"), "/"), Path::new("/"));
    }

    #[test]
    fn default_exclusions_match_node_exporter() {
        let c = HostCollector::new(HostOptions::default()).expect("valid defaults");
        for mp in [
            "/dev",
            "/dev/shm",
            "/proc",
            "/sys/fs/cgroup",
            "/run/credentials/x",
            "/var/lib/docker/overlay2/a",
        ] {
            assert!(c.exclude.mount_points.is_match(mp), "{mp}");
        }
        for mp in ["/", "/run", "/boot", "/home", "/var/lib/docker", "/devices"] {
            assert!(!c.exclude.mount_points.is_match(mp), "{mp}");
        }
        for fs in ["tmpfs", "ext4", "xfs", "cgroupfs"] {
            assert!(!c.exclude.fs_types.is_match(fs), "{fs}");
        }
        for fs in ["cgroup", "cgroup2", "overlay", "proc", "sysfs", "squashfs"] {
            assert!(c.exclude.fs_types.is_match(fs), "{fs}");
        }
        for d in ["sda1", "vda2", "nvme0n1p1", "loop0", "ram1"] {
            assert!(c.exclude.diskstats.is_match(d), "{d}");
        }
        for d in ["sda", "vda", "nvme0n1", "dm-0", "zram0", "md0"] {
            assert!(!c.exclude.diskstats.is_match(d), "{d}");
        }
    }

    #[test]
    fn bad_pattern_is_a_clear_error() {
        let err = HostCollector::new(HostOptions {
            netdev_device_exclude: "(".into(),
            ..HostOptions::default()
        })
        .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("invalid regular expression in netdev_device_exclude"));
    }

    /// A fake procfs/sysfs tree proves that every path honours the configured roots and
    /// that one broken file fails only its own collector.
    #[test]
    fn reads_from_configured_roots_and_isolates_failures() {
        let dir = std::env::temp_dir().join(format!("vigil-host-{}", std::process::id()));
        let proc = dir.join("proc");
        let sys = dir.join("sys");
        std::fs::create_dir_all(proc.join("net")).expect("mkdir");
        std::fs::create_dir_all(proc.join("1")).expect("mkdir");
        std::fs::create_dir_all(sys.join("class/net/eth9")).expect("mkdir");
        std::fs::write(proc.join("stat"), STAT).expect("write");
        std::fs::write(proc.join("loadavg"), "1.5 2.5 3.5 1/2 3\n").expect("write");
        std::fs::write(proc.join("meminfo"), "MemTotal: garbage kB\n").expect("write");
        std::fs::write(
            proc.join("net/dev"),
            "h1\nh2\n eth9: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
        )
        .expect("write");
        std::fs::write(
            proc.join("diskstats"),
            " 8 0 sdz 1 2 3 4 5 6 7 8 9 10 11\n 8 1 sdz1 1 2 3 4 5 6 7 8 9 10 11\n",
        )
        .expect("write");
        let root = dir.to_string_lossy().into_owned();
        std::fs::write(
            proc.join("1/mounts"),
            format!("rootdev {root} tmpfs ro 0 0\nproc {root}/proc proc rw 0 0\nnone {root}/missing ext4 rw 0 0\n"),
        )
        .expect("write");
        std::fs::write(sys.join("class/net/eth9/operstate"), "up\n").expect("write");
        std::fs::write(sys.join("class/net/eth9/mtu"), "9000\n").expect("write");
        std::fs::write(sys.join("class/net/bonding_masters"), "bond0\n").expect("write");

        let mut c = HostCollector::new(HostOptions {
            procfs_root: proc.clone(),
            sysfs_root: sys.clone(),
            rootfs_root: dir.clone(),
            netdev_device_exclude: "^lo$".into(),
            ..HostOptions::default()
        })
        .expect("collector");
        let series = c.collect(1_700_000_000_123);
        let get = |name: &str, pairs: &[(&str, &str)]| {
            let want = Labels::metric(name, pairs);
            series
                .iter()
                .find(|s| s.labels == want)
                .map(|s| s.points[0].value)
        };
        assert_eq!(get("node_load15", &[]), Some(3.5));
        assert_eq!(get("node_context_switches_total", &[]), Some(390254.0));
        assert_eq!(
            get("node_cpu_seconds_total", &[("cpu", "1"), ("mode", "idle")]),
            Some(284.37)
        );
        assert_eq!(
            get("node_network_receive_bytes_total", &[("device", "eth9")]),
            Some(1.0)
        );
        assert_eq!(
            get(
                "node_network_transmit_compressed_total",
                &[("device", "eth9")]
            ),
            Some(16.0)
        );
        assert_eq!(
            get("node_network_receive_bytes_total", &[("device", "lo")]),
            None
        );
        assert_eq!(get("node_network_up", &[("device", "eth9")]), Some(1.0));
        assert_eq!(
            get("node_network_mtu_bytes", &[("device", "eth9")]),
            Some(9000.0)
        );
        assert!(!series
            .iter()
            .any(|s| s.labels.get("device") == Some("bonding_masters")));
        assert_eq!(
            get("node_disk_io_time_seconds_total", &[("device", "sdz")]),
            Some(0.01)
        );
        assert_eq!(
            get("node_disk_io_time_seconds_total", &[("device", "sdz1")]),
            None
        );
        assert_eq!(get("node_time_seconds", &[]), Some(1_700_000_000.123));
        let fs = [
            ("device", "rootdev"),
            ("fstype", "tmpfs"),
            ("mountpoint", "/"),
        ];
        assert!(get("node_filesystem_size_bytes", &fs).is_some_and(|v| v > 0.0));
        assert_eq!(get("node_filesystem_readonly", &fs), Some(1.0));
        let missing = [
            ("device", "none"),
            ("fstype", "ext4"),
            ("mountpoint", "/missing"),
        ];
        assert_eq!(get("node_filesystem_device_error", &missing), Some(1.0));
        assert_eq!(get("node_filesystem_size_bytes", &missing), None);
        assert!(!series
            .iter()
            .any(|s| s.labels.get("mountpoint") == Some("/proc")));
        assert_eq!(
            get("node_scrape_collector_success", &[("collector", "meminfo")]),
            Some(0.0)
        );
        assert_eq!(
            get("node_scrape_collector_success", &[("collector", "cpu")]),
            Some(1.0)
        );
        assert!(!series
            .iter()
            .any(|s| s.labels.name().starts_with("node_memory_")));
        assert_eq!(c.last_errors().len(), 1);
        assert_eq!(c.last_errors()[0].0, "meminfo");
        assert!(series.iter().all(|s| s.points
            == [Point {
                timestamp_ms: 1_700_000_000_123,
                value: s.points[0].value
            }]));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn real_host_collects_without_errors() {
        let mut c = HostCollector::new(HostOptions::default()).expect("collector");
        let first = c.collect(1);
        assert!(c.last_errors().is_empty(), "{:?}", c.last_errors());
        let names: HashSet<&str> = first.iter().map(|s| s.labels.name()).collect();
        for want in [
            "node_cpu_seconds_total",
            "node_load1",
            "node_memory_MemTotal_bytes",
            "node_filesystem_avail_bytes",
            "node_network_receive_bytes_total",
            "node_boot_time_seconds",
            "node_uname_info",
        ] {
            assert!(names.contains(want), "{want} missing");
        }
        let mut sorted: Vec<&Labels> = first.iter().map(|s| &s.labels).collect();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), first.len(), "no duplicate series");
        assert_eq!(c.collect(2).len(), first.len());
    }
}
