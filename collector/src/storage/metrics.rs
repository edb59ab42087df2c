//! The storage's own metrics, all in one place: WAL writes and fsyncs, group commit sizes,
//! sample outcomes, torn-tail repairs, checkpoints, compactions and head/block sizes. They
//! are plain `prometheus` collectors created with the storage and registered on demand with
//! [`super::Storage::register_metrics`].

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry};

/// Counters and gauges the storage updates as it works.
#[derive(Debug, Clone)]
pub struct StorageMetrics {
    pub wal_fsyncs: IntCounter,
    pub wal_fsync_seconds: Histogram,
    pub wal_bytes_written: IntCounter,
    pub wal_records: IntCounter,
    pub wal_write_failures: IntCounter,
    pub wal_torn_tail_truncations: IntCounter,
    pub group_commit_records: Histogram,
    pub batches_appended: IntCounter,
    pub batches_duplicate: IntCounter,
    pub samples_appended: IntCounter,
    pub samples_duplicate: IntCounter,
    pub samples_duplicate_timestamp: IntCounter,
    pub samples_out_of_order: IntCounter,
    pub samples_too_old: IntCounter,
    pub event_samples_appended: IntCounter,
    pub series_limit_rejections: IntCounter,
    pub checkpoints: IntCounter,
    pub checkpoint_failures: IntCounter,
    pub compactions: IntCounter,
    pub compaction_failures: IntCounter,
    pub head_series: IntGauge,
    pub head_samples: IntGauge,
    pub wal_segments: IntGauge,
    pub wal_size_bytes: IntGauge,
    pub blocks: IntGauge,
    pub block_size_bytes: IntGauge,
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::with_opts(Opts::new(name, help)).expect("valid counter options")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::with_opts(Opts::new(name, help)).expect("valid gauge options")
}

impl Default for StorageMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl StorageMetrics {
    /// Creates the collectors (unregistered).
    pub fn new() -> Self {
        StorageMetrics {
            wal_fsyncs: counter("vigil_storage_wal_fsyncs_total", "WAL fdatasync calls."),
            wal_fsync_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "vigil_storage_wal_fsync_duration_seconds",
                    "Time to write and fdatasync one group of WAL records.",
                )
                .buckets(vec![
                    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ]),
            )
            .expect("valid histogram options"),
            wal_bytes_written: counter(
                "vigil_storage_wal_bytes_written_total",
                "Bytes appended to the WAL.",
            ),
            wal_records: counter(
                "vigil_storage_wal_records_total",
                "Records appended to the WAL.",
            ),
            wal_write_failures: counter(
                "vigil_storage_wal_write_failures_total",
                "Groups of WAL records that could not be written or synced.",
            ),
            wal_torn_tail_truncations: counter(
                "vigil_storage_wal_torn_tail_truncations_total",
                "WAL segments whose torn or corrupt tail was truncated on startup.",
            ),
            group_commit_records: Histogram::with_opts(
                HistogramOpts::new(
                    "vigil_storage_group_commit_records",
                    "Records made durable by one fdatasync.",
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            )
            .expect("valid histogram options"),
            batches_appended: counter(
                "vigil_storage_batches_appended_total",
                "Agent batches stored.",
            ),
            batches_duplicate: counter(
                "vigil_storage_batches_duplicate_total",
                "Agent batches already stored earlier (acknowledged as duplicates).",
            ),
            samples_appended: counter(
                "vigil_storage_samples_appended_total",
                "Samples stored.",
            ),
            samples_duplicate: counter(
                "vigil_storage_samples_duplicate_total",
                "Samples identical to one already stored, ignored.",
            ),
            samples_duplicate_timestamp: counter(
                "vigil_storage_samples_duplicate_timestamp_total",
                "Samples rejected because a different value exists at the same timestamp.",
            ),
            samples_out_of_order: counter(
                "vigil_storage_samples_out_of_order_total",
                "Samples rejected as older than the series' newest sample minus the out-of-order window.",
            ),
            samples_too_old: counter(
                "vigil_storage_samples_too_old_total",
                "Samples rejected as older than the retention period.",
            ),
            event_samples_appended: counter(
                "vigil_storage_event_samples_appended_total",
                "Samples of vigil_agent_event derived from agent events and stored.",
            ),
            series_limit_rejections: counter(
                "vigil_storage_series_limit_rejections_total",
                "Appends rejected because they would exceed the active series limit.",
            ),
            checkpoints: counter(
                "vigil_storage_checkpoints_total",
                "Checkpoints written (after which old WAL segments are deleted).",
            ),
            checkpoint_failures: counter(
                "vigil_storage_checkpoint_failures_total",
                "Checkpoints that failed.",
            ),
            compactions: counter(
                "vigil_storage_compactions_total",
                "Head compactions into on-disk blocks.",
            ),
            compaction_failures: counter(
                "vigil_storage_compaction_failures_total",
                "Head compactions that failed.",
            ),
            head_series: gauge("vigil_storage_head_series", "Series in the in-memory head."),
            head_samples: gauge(
                "vigil_storage_head_samples",
                "Samples held in the in-memory head.",
            ),
            wal_segments: gauge("vigil_storage_wal_segments", "WAL segment files on disk."),
            wal_size_bytes: gauge("vigil_storage_wal_size_bytes", "Bytes of WAL on disk."),
            blocks: gauge("vigil_storage_blocks", "Immutable on-disk blocks."),
            block_size_bytes: gauge(
                "vigil_storage_block_size_bytes",
                "Bytes of on-disk blocks.",
            ),
        }
    }

    /// Registers every collector with `registry`.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        let counters = [
            &self.wal_fsyncs,
            &self.wal_bytes_written,
            &self.wal_records,
            &self.wal_write_failures,
            &self.wal_torn_tail_truncations,
            &self.batches_appended,
            &self.batches_duplicate,
            &self.samples_appended,
            &self.samples_duplicate,
            &self.samples_duplicate_timestamp,
            &self.samples_out_of_order,
            &self.samples_too_old,
            &self.event_samples_appended,
            &self.series_limit_rejections,
            &self.checkpoints,
            &self.checkpoint_failures,
            &self.compactions,
            &self.compaction_failures,
        ];
        for c in counters {
            registry.register(Box::new(c.clone()))?;
        }
        for g in [
            &self.head_series,
            &self.head_samples,
            &self.wal_segments,
            &self.wal_size_bytes,
            &self.blocks,
            &self.block_size_bytes,
        ] {
            registry.register(Box::new(g.clone()))?;
        }
        registry.register(Box::new(self.wal_fsync_seconds.clone()))?;
        registry.register(Box::new(self.group_commit_records.clone()))?;
        Ok(())
    }
}
