//! The collector's own metrics, in one place as typed fields rather than metric-name
//! strings scattered through the code. Served on `/metrics`.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric the collector exports about itself.
#[derive(Debug, Clone)]
pub struct CollectorMetrics {
    pub registry: Registry,
    pub connections: IntCounterVec,
    pub connected_agents: IntGauge,
    pub batches: IntCounterVec,
    pub samples_ingested: IntCounter,
    pub ingest_bytes: IntCounter,
    pub ingest_seconds: Histogram,
    pub frames_rejected: IntCounterVec,
    pub remote_write_requests: IntCounterVec,
    pub remote_write_samples: IntCounter,
    pub http_requests: IntCounterVec,
    pub rule_group_evaluations: IntCounterVec,
}

impl Default for CollectorMetrics {
    fn default() -> Self {
        let r = Registry::new();
        let cv = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            r.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let c = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            r.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let connections = cv(
            "vigil_collector_quic_connections_total",
            "QUIC connection attempts, by result.",
            &["result"],
        );
        let connected_agents =
            IntGauge::new("vigil_collector_connected_agents", "Agents connected now.")
                .expect("valid metric");
        r.register(Box::new(connected_agents.clone()))
            .expect("unique metric");
        let batches = cv(
            "vigil_collector_batches_total",
            "Agent batches received, by outcome (stored, duplicate, malformed, failed).",
            &["outcome"],
        );
        let samples_ingested = c(
            "vigil_collector_samples_ingested_total",
            "Samples stored from agents.",
        );
        let ingest_bytes = c(
            "vigil_collector_ingest_bytes_total",
            "Compressed batch bytes received from agents.",
        );
        let ingest_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "vigil_collector_ingest_duration_seconds",
                "Time from receiving a batch to acknowledging it durable.",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 18).expect("valid buckets")),
        )
        .expect("valid metric");
        r.register(Box::new(ingest_seconds.clone()))
            .expect("unique metric");
        let frames_rejected = cv(
            "vigil_collector_frames_rejected_total",
            "Frames refused before storage, by reason (oversized, malformed, timeout).",
            &["reason"],
        );
        let remote_write_requests = cv(
            "vigil_collector_remote_write_requests_total",
            "remote_write requests, by HTTP status code.",
            &["code"],
        );
        let remote_write_samples = c(
            "vigil_collector_remote_write_samples_total",
            "Samples stored from remote_write.",
        );
        let http_requests = cv(
            "vigil_collector_http_requests_total",
            "HTTP requests, by handler.",
            &["handler"],
        );
        let rule_group_evaluations = cv(
            "vigil_collector_rule_group_evaluations_total",
            "Rule group evaluations, by trigger (schedule, or samples for early evaluations of alerting-only groups when new samples arrive).",
            &["trigger"],
        );
        CollectorMetrics {
            registry: r,
            connections,
            connected_agents,
            batches,
            samples_ingested,
            ingest_bytes,
            ingest_seconds,
            frames_rejected,
            remote_write_requests,
            remote_write_samples,
            http_requests,
            rule_group_evaluations,
        }
    }
}

/// Metrics of the silence store (`notify::silence`), named after Alertmanager's
/// `alertmanager_silences_*`. The per-state gauge (`vigil_collector_silences{state}`) is
/// computed at scrape time by `notify::silence::SilenceStateGauge`.
#[derive(Debug, Clone)]
pub struct SilenceMetrics {
    /// Silence queries: one per alert label set checked for muting.
    pub queries: IntCounter,
    /// Requests to the silences API that failed (bad filter, invalid silence, not found,
    /// snapshot error).
    pub query_errors: IntCounter,
    /// Time to check one label set against the silences.
    pub query_duration: Histogram,
    /// Time to write and fsync one snapshot.
    pub snapshot_duration: Histogram,
    /// Size of the last snapshot written.
    pub snapshot_size: IntGauge,
    /// Snapshots that could not be written (the change was refused).
    pub snapshot_errors: IntCounter,
    /// Expired silences removed after the retention.
    pub gc_removed: IntCounter,
}

impl SilenceMetrics {
    /// Creates the metrics and registers them with `r`.
    pub fn register(r: &Registry) -> Result<SilenceMetrics, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            r.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let histogram =
            |name: &str, help: &str, start: f64| -> Result<Histogram, prometheus::Error> {
                let h = Histogram::with_opts(
                    HistogramOpts::new(name, help)
                        .buckets(prometheus::exponential_buckets(start, 4.0, 10)?),
                )?;
                r.register(Box::new(h.clone()))?;
                Ok(h)
            };
        let snapshot_size = IntGauge::new(
            "vigil_collector_silences_snapshot_size_bytes",
            "Size of the last silences snapshot written.",
        )?;
        r.register(Box::new(snapshot_size.clone()))?;
        Ok(SilenceMetrics {
            queries: counter(
                "vigil_collector_silences_queries_total",
                "Alert label sets checked against the silences.",
            )?,
            query_errors: counter(
                "vigil_collector_silences_query_errors_total",
                "Silences API requests that failed.",
            )?,
            query_duration: histogram(
                "vigil_collector_silences_query_duration_seconds",
                "Time to check one alert label set against the silences.",
                0.000_001,
            )?,
            snapshot_duration: histogram(
                "vigil_collector_silences_snapshot_duration_seconds",
                "Time to write and fsync one silences snapshot.",
                0.000_1,
            )?,
            snapshot_size,
            snapshot_errors: counter(
                "vigil_collector_silences_snapshot_errors_total",
                "Silences snapshots that could not be written (the change was refused).",
            )?,
            gc_removed: counter(
                "vigil_collector_silences_gc_removed_total",
                "Expired silences removed after the retention period.",
            )?,
        })
    }
}
