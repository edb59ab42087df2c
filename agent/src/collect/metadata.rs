//! Metric metadata (TYPE, HELP, UNIT) that the agent ships to the collector, so the
//! collector's `/api/v1/metadata` answers like a Prometheus that scraped the same targets.
//!
//! Metadata rides in ordinary batches as [`Event`]s of kind [`METADATA_EVENT_KIND`], one per
//! metric family: labels `__name__` (the family) plus the source's `job`/`instance` (for a
//! scrape) or nothing else (host metrics), fields `type`, `help` and `unit`. That keeps the
//! batch wire format unchanged: a collector that predates this stores them as plain events.
//! [`MetadataTracker`] sends a family when it is first seen or its metadata changes, and
//! everything again every [`RESEND_INTERVAL_MS`], so a collector that lost its copy gets it
//! back; it remembers at most [`MAX_TRACKED`] families and sends nothing new past that.
//! [`host_metadata`] gives node_exporter 1.5's HELP and TYPE for the host metrics.

use std::collections::HashMap;

use vigil_shared::exposition::{MetricKind, MetricMeta};
use vigil_shared::model::{Event, Labels, METRIC_NAME};

/// The event kind that carries one family's metadata.
pub const METADATA_EVENT_KIND: &str = "metric_metadata";

/// How often everything is sent again even when nothing changed.
pub const RESEND_INTERVAL_MS: i64 = 10 * 60 * 1000;

/// Most (source, family) pairs remembered.
pub const MAX_TRACKED: usize = 50_000;

/// node_exporter 1.5.0's TYPE and HELP for the fixed-name host metrics the agent collects
/// (taken from `prometheus-node-exporter --web.listen-address` output).
const HOST_METADATA: &[(&str, MetricKind, &str)] = &[
    (
        "node_boot_time_seconds",
        MetricKind::Gauge,
        "Node boot time, in unixtime.",
    ),
    (
        "node_context_switches_total",
        MetricKind::Counter,
        "Total number of context switches.",
    ),
    (
        "node_cpu_guest_seconds_total",
        MetricKind::Counter,
        "Seconds the CPUs spent in guests (VMs) for each mode.",
    ),
    (
        "node_cpu_seconds_total",
        MetricKind::Counter,
        "Seconds the CPUs spent in each mode.",
    ),
    (
        "node_disk_discard_time_seconds_total",
        MetricKind::Counter,
        "This is the total number of seconds spent by all discards.",
    ),
    (
        "node_disk_discarded_sectors_total",
        MetricKind::Counter,
        "The total number of sectors discarded successfully.",
    ),
    (
        "node_disk_discards_completed_total",
        MetricKind::Counter,
        "The total number of discards completed successfully.",
    ),
    (
        "node_disk_discards_merged_total",
        MetricKind::Counter,
        "The total number of discards merged.",
    ),
    (
        "node_disk_flush_requests_time_seconds_total",
        MetricKind::Counter,
        "This is the total number of seconds spent by all flush requests.",
    ),
    (
        "node_disk_flush_requests_total",
        MetricKind::Counter,
        "The total number of flush requests completed successfully",
    ),
    (
        "node_disk_io_now",
        MetricKind::Gauge,
        "The number of I/Os currently in progress.",
    ),
    (
        "node_disk_io_time_seconds_total",
        MetricKind::Counter,
        "Total seconds spent doing I/Os.",
    ),
    (
        "node_disk_io_time_weighted_seconds_total",
        MetricKind::Counter,
        "The weighted # of seconds spent doing I/Os.",
    ),
    (
        "node_disk_read_bytes_total",
        MetricKind::Counter,
        "The total number of bytes read successfully.",
    ),
    (
        "node_disk_read_time_seconds_total",
        MetricKind::Counter,
        "The total number of seconds spent by all reads.",
    ),
    (
        "node_disk_reads_completed_total",
        MetricKind::Counter,
        "The total number of reads completed successfully.",
    ),
    (
        "node_disk_reads_merged_total",
        MetricKind::Counter,
        "The total number of reads merged.",
    ),
    (
        "node_disk_write_time_seconds_total",
        MetricKind::Counter,
        "This is the total number of seconds spent by all writes.",
    ),
    (
        "node_disk_writes_completed_total",
        MetricKind::Counter,
        "The total number of writes completed successfully.",
    ),
    (
        "node_disk_writes_merged_total",
        MetricKind::Counter,
        "The number of writes merged.",
    ),
    (
        "node_disk_written_bytes_total",
        MetricKind::Counter,
        "The total number of bytes written successfully.",
    ),
    (
        "node_filesystem_avail_bytes",
        MetricKind::Gauge,
        "Filesystem space available to non-root users in bytes.",
    ),
    (
        "node_filesystem_device_error",
        MetricKind::Gauge,
        "Whether an error occurred while getting statistics for the given device.",
    ),
    (
        "node_filesystem_files",
        MetricKind::Gauge,
        "Filesystem total file nodes.",
    ),
    (
        "node_filesystem_files_free",
        MetricKind::Gauge,
        "Filesystem total free file nodes.",
    ),
    (
        "node_filesystem_free_bytes",
        MetricKind::Gauge,
        "Filesystem free space in bytes.",
    ),
    (
        "node_filesystem_readonly",
        MetricKind::Gauge,
        "Filesystem read-only status.",
    ),
    (
        "node_filesystem_size_bytes",
        MetricKind::Gauge,
        "Filesystem size in bytes.",
    ),
    (
        "node_forks_total",
        MetricKind::Counter,
        "Total number of forks.",
    ),
    (
        "node_intr_total",
        MetricKind::Counter,
        "Total number of interrupts serviced.",
    ),
    ("node_load1", MetricKind::Gauge, "1m load average."),
    ("node_load15", MetricKind::Gauge, "15m load average."),
    ("node_load5", MetricKind::Gauge, "5m load average."),
    (
        "node_network_carrier",
        MetricKind::Gauge,
        "Network device property: carrier",
    ),
    (
        "node_network_info",
        MetricKind::Gauge,
        "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
    ),
    (
        "node_network_mtu_bytes",
        MetricKind::Gauge,
        "Network device property: mtu_bytes",
    ),
    (
        "node_network_receive_bytes_total",
        MetricKind::Counter,
        "Network device statistic receive_bytes.",
    ),
    (
        "node_network_receive_compressed_total",
        MetricKind::Counter,
        "Network device statistic receive_compressed.",
    ),
    (
        "node_network_receive_drop_total",
        MetricKind::Counter,
        "Network device statistic receive_drop.",
    ),
    (
        "node_network_receive_errs_total",
        MetricKind::Counter,
        "Network device statistic receive_errs.",
    ),
    (
        "node_network_receive_fifo_total",
        MetricKind::Counter,
        "Network device statistic receive_fifo.",
    ),
    (
        "node_network_receive_frame_total",
        MetricKind::Counter,
        "Network device statistic receive_frame.",
    ),
    (
        "node_network_receive_multicast_total",
        MetricKind::Counter,
        "Network device statistic receive_multicast.",
    ),
    (
        "node_network_receive_packets_total",
        MetricKind::Counter,
        "Network device statistic receive_packets.",
    ),
    (
        "node_network_transmit_bytes_total",
        MetricKind::Counter,
        "Network device statistic transmit_bytes.",
    ),
    (
        "node_network_transmit_carrier_total",
        MetricKind::Counter,
        "Network device statistic transmit_carrier.",
    ),
    (
        "node_network_transmit_colls_total",
        MetricKind::Counter,
        "Network device statistic transmit_colls.",
    ),
    (
        "node_network_transmit_compressed_total",
        MetricKind::Counter,
        "Network device statistic transmit_compressed.",
    ),
    (
        "node_network_transmit_drop_total",
        MetricKind::Counter,
        "Network device statistic transmit_drop.",
    ),
    (
        "node_network_transmit_errs_total",
        MetricKind::Counter,
        "Network device statistic transmit_errs.",
    ),
    (
        "node_network_transmit_fifo_total",
        MetricKind::Counter,
        "Network device statistic transmit_fifo.",
    ),
    (
        "node_network_transmit_packets_total",
        MetricKind::Counter,
        "Network device statistic transmit_packets.",
    ),
    (
        "node_network_up",
        MetricKind::Gauge,
        "Value is 1 if operstate is 'up', 0 otherwise.",
    ),
    (
        "node_procs_blocked",
        MetricKind::Gauge,
        "Number of processes blocked waiting for I/O to complete.",
    ),
    (
        "node_procs_running",
        MetricKind::Gauge,
        "Number of processes in runnable state.",
    ),
    (
        "node_scrape_collector_success",
        MetricKind::Gauge,
        "node_exporter: Whether a collector succeeded.",
    ),
    (
        "node_time_seconds",
        MetricKind::Gauge,
        "System time in seconds since epoch (1970).",
    ),
    (
        "node_uname_info",
        MetricKind::Gauge,
        "Labeled system information as provided by the uname system call.",
    ),
];

/// The metadata node_exporter 1.5 exposes for host metric `family`, or `None` for a name it
/// does not produce. `node_memory_*` and `node_network_*_total` families are named after
/// kernel fields, and their HELP follows node_exporter's patterns.
pub fn host_metadata(family: &str) -> Option<MetricMeta> {
    if let Ok(i) = HOST_METADATA.binary_search_by(|(n, _, _)| (*n).cmp(family)) {
        let (_, kind, help) = HOST_METADATA[i];
        return Some(MetricMeta {
            family: family.to_string(),
            kind,
            help: help.to_string(),
            unit: String::new(),
        });
    }
    if let Some(field) = family.strip_prefix("node_memory_") {
        return Some(MetricMeta {
            family: family.to_string(),
            kind: MetricKind::Gauge,
            help: format!("Memory information field {field}."),
            unit: String::new(),
        });
    }
    if let Some(stat) = family
        .strip_prefix("node_network_")
        .and_then(|s| s.strip_suffix("_total"))
    {
        return Some(MetricMeta {
            family: family.to_string(),
            kind: MetricKind::Counter,
            help: format!("Network device statistic {stat}."),
            unit: String::new(),
        });
    }
    None
}

/// Builds the event that carries `meta` for a source identified by `source` labels
/// (`job`/`instance` of a scrape target, or none for host metrics).
pub fn metadata_event(meta: &MetricMeta, source: &[(&str, &str)], now_ms: i64) -> Event {
    let mut pairs: Vec<(String, String)> = source
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    pairs.push((METRIC_NAME.to_string(), meta.family.clone()));
    // Prometheus reports `untyped` as `unknown`.
    let kind = match meta.kind {
        MetricKind::Untyped => MetricKind::Unknown,
        k => k,
    };
    Event {
        timestamp_ms: now_ms,
        kind: METADATA_EVENT_KIND.to_string(),
        labels: Labels::new(pairs),
        fields: vec![
            ("type".to_string(), kind.as_str().to_string()),
            ("help".to_string(), meta.help.clone()),
            ("unit".to_string(), meta.unit.clone()),
        ],
    }
}

/// Remembers what was sent, so each family's metadata travels once per change (and once per
/// [`RESEND_INTERVAL_MS`]) rather than in every batch.
#[derive(Debug, Default)]
pub struct MetadataTracker {
    /// (source, family) to the metadata last sent and when.
    sent: HashMap<(String, String), (MetricMeta, i64)>,
}

impl MetadataTracker {
    /// The events to send for `metas` seen from `source` at `now_ms`: those never sent,
    /// changed, or last sent longer than [`RESEND_INTERVAL_MS`] ago.
    pub fn events(
        &mut self,
        metas: &[MetricMeta],
        source: &[(&str, &str)],
        now_ms: i64,
    ) -> Vec<Event> {
        let key_src: String = source.iter().map(|(n, v)| format!("{n}={v},")).collect();
        let mut out = Vec::new();
        let mut tracked = self.sent.len();
        for m in metas {
            let key = (key_src.clone(), m.family.clone());
            match self.sent.get_mut(&key) {
                Some((sent, at)) if sent == m && now_ms - *at < RESEND_INTERVAL_MS => {}
                Some(entry) => {
                    *entry = (m.clone(), now_ms);
                    out.push(metadata_event(m, source, now_ms));
                }
                None if tracked < MAX_TRACKED => {
                    tracked += 1;
                    self.sent.insert(key, (m.clone(), now_ms));
                    out.push(metadata_event(m, source, now_ms));
                }
                None => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_table_is_sorted_and_covers_dynamic_families() {
        assert!(HOST_METADATA.windows(2).all(|w| w[0].0 < w[1].0));
        let cpu = host_metadata("node_cpu_seconds_total").unwrap();
        assert_eq!(cpu.kind, MetricKind::Counter);
        assert_eq!(cpu.help, "Seconds the CPUs spent in each mode.");
        let mem = host_metadata("node_memory_MemAvailable_bytes").unwrap();
        assert_eq!(mem.help, "Memory information field MemAvailable_bytes.");
        assert_eq!(mem.kind, MetricKind::Gauge);
        let net = host_metadata("node_network_receive_bytes_total").unwrap();
        assert_eq!(net.help, "Network device statistic receive_bytes.");
        assert!(host_metadata("my_app_requests_total").is_none());
    }

    #[test]
    fn tracker_sends_new_changed_and_stale_entries_only() {
        let mut t = MetadataTracker::default();
        let m = |help: &str| MetricMeta {
            family: "reqs".into(),
            kind: MetricKind::Counter,
            help: help.into(),
            unit: String::new(),
        };
        let src = [("instance", "a:1"), ("job", "app")];
        let first = t.events(&[m("Requests.")], &src, 0);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].kind, METADATA_EVENT_KIND);
        assert_eq!(first[0].labels.name(), "reqs");
        assert_eq!(first[0].labels.get("job"), Some("app"));
        assert_eq!(
            first[0].fields[0],
            ("type".to_string(), "counter".to_string())
        );
        assert!(t.events(&[m("Requests.")], &src, 1000).is_empty());
        let with_unit = MetricMeta {
            unit: "seconds".into(),
            ..m("Requests.")
        };
        let sent = t.events(std::slice::from_ref(&with_unit), &src, 1500);
        assert_eq!(sent.len(), 1, "a new unit is sent again");
        assert_eq!(
            sent[0].fields[2],
            ("unit".to_string(), "seconds".to_string())
        );
        assert_eq!(t.events(&[m("Requests.")], &src, 1600).len(), 1);
        assert_eq!(t.events(&[m("Requests served.")], &src, 2000).len(), 1);
        assert_eq!(
            t.events(&[m("Requests served.")], &[("job", "other")], 2000)
                .len(),
            1,
            "another source is tracked apart"
        );
        assert_eq!(
            t.events(&[m("Requests served.")], &src, 2000 + RESEND_INTERVAL_MS)
                .len(),
            1
        );
        let untyped = MetricMeta {
            family: "x".into(),
            kind: MetricKind::Untyped,
            help: String::new(),
            unit: String::new(),
        };
        assert_eq!(
            metadata_event(&untyped, &[], 0).fields[0].1,
            "unknown",
            "Prometheus calls untyped unknown"
        );
    }
}
