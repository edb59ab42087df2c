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
    /// Remote action requests to agents, by result: the run's outcome (`ok`, `failed`,
    /// `timeout`, `spawn_error`, `dry_run`), `refused` by the agent, or the collector-side
    /// failure (`not_connected`, `busy`, `no_answer`, `error`, `bad_request`).
    pub remote_actions: IntCounterVec,
    /// Time from queueing a remote action request to the agent's answer.
    pub remote_action_seconds: Histogram,
    /// Remote action requests queued or waiting for an agent's answer now.
    pub remote_actions_in_flight: IntGauge,
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
        let remote_actions = cv(
            "vigil_collector_remote_actions_total",
            "Remote action requests to agents, by result (ok, failed, timeout, spawn_error, dry_run, refused, not_connected, busy, no_answer, error, bad_request).",
            &["result"],
        );
        let remote_action_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "vigil_collector_remote_action_duration_seconds",
                "Time from a remote action request to the agent's answer.",
            )
            .buckets(prometheus::exponential_buckets(0.001, 2.0, 18).expect("valid buckets")),
        )
        .expect("valid metric");
        r.register(Box::new(remote_action_seconds.clone()))
            .expect("unique metric");
        let remote_actions_in_flight = IntGauge::new(
            "vigil_collector_remote_actions_in_flight",
            "Remote action requests queued or waiting for an agent's answer.",
        )
        .expect("valid metric");
        r.register(Box::new(remote_actions_in_flight.clone()))
            .expect("unique metric");
        CollectorMetrics {
            registry: r,
            remote_actions,
            remote_action_seconds,
            remote_actions_in_flight,
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

/// Metrics of the notification pipeline (`notify::dispatch`), named like Alertmanager's
/// (`alertmanager_notifications_total` → `vigil_notifications_total`). Created unregistered
/// so the dispatcher can run without a registry (tests); [`NotifyMetrics::register`] adds
/// them to the collector's `/metrics`.
#[derive(Debug, Clone)]
pub struct NotifyMetrics {
    /// Notifications attempted (after retries), by integration kind.
    pub notifications: IntCounterVec,
    /// Notifications given up on, by integration kind.
    pub notifications_failed: IntCounterVec,
    /// Delivery attempts retried after a retryable failure, by integration kind.
    pub notification_retries: IntCounterVec,
    /// Duration of one delivery attempt, by integration kind.
    pub notification_latency: prometheus::HistogramVec,
    /// Entries in the notification log.
    pub nflog_entries: IntGauge,
    /// Size of the last notification log snapshot written.
    pub nflog_snapshot_bytes: IntGauge,
    /// Notification log snapshots that could not be written.
    pub nflog_write_failures: IntCounter,
}

impl Default for NotifyMetrics {
    fn default() -> Self {
        let cv = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["integration"]).expect("valid metric")
        };
        NotifyMetrics {
            notifications: cv(
                "vigil_notifications_total",
                "Notifications attempted, by integration (webhook, slack, pagerduty, email).",
            ),
            notifications_failed: cv(
                "vigil_notifications_failed_total",
                "Notifications that failed after retries, by integration.",
            ),
            notification_retries: cv(
                "vigil_notification_retries_total",
                "Delivery attempts retried after a retryable failure, by integration.",
            ),
            notification_latency: prometheus::HistogramVec::new(
                HistogramOpts::new(
                    "vigil_notification_latency_seconds",
                    "Duration of one notification delivery attempt, by integration.",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
                &["integration"],
            )
            .expect("valid metric"),
            nflog_entries: IntGauge::new(
                "vigil_nflog_entries",
                "Entries in the notification log (group, receiver, integration).",
            )
            .expect("valid metric"),
            nflog_snapshot_bytes: IntGauge::new(
                "vigil_nflog_snapshot_size_bytes",
                "Size of the last notification log snapshot.",
            )
            .expect("valid metric"),
            nflog_write_failures: IntCounter::new(
                "vigil_nflog_write_failures_total",
                "Notification log snapshots that could not be written.",
            )
            .expect("valid metric"),
        }
    }
}

impl NotifyMetrics {
    /// Adds the metrics to a registry (an error when they are registered twice).
    pub fn register(&self, r: &Registry) -> prometheus::Result<()> {
        r.register(Box::new(self.notifications.clone()))?;
        r.register(Box::new(self.notifications_failed.clone()))?;
        r.register(Box::new(self.notification_retries.clone()))?;
        r.register(Box::new(self.notification_latency.clone()))?;
        r.register(Box::new(self.nflog_entries.clone()))?;
        r.register(Box::new(self.nflog_snapshot_bytes.clone()))?;
        r.register(Box::new(self.nflog_write_failures.clone()))?;
        Ok(())
    }
}

/// Metrics of forwarding alerts to external Alertmanagers (`notify::forward`), like
/// Prometheus's `prometheus_notifications_*`.
#[derive(Debug, Clone)]
pub struct ForwardMetrics {
    /// Alerts delivered, by Alertmanager endpoint.
    pub alerts_sent: IntCounterVec,
    /// Alerts whose request failed, by Alertmanager endpoint.
    pub alerts_failed: IntCounterVec,
    /// Batches dropped because the forward queue was full.
    pub batches_dropped: IntCounter,
}

impl Default for ForwardMetrics {
    fn default() -> Self {
        let cv = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["alertmanager"]).expect("valid metric")
        };
        ForwardMetrics {
            alerts_sent: cv(
                "vigil_alertmanager_alerts_sent_total",
                "Alerts sent to an external Alertmanager.",
            ),
            alerts_failed: cv(
                "vigil_alertmanager_alerts_errors_total",
                "Alerts whose POST to an external Alertmanager failed.",
            ),
            batches_dropped: IntCounter::new(
                "vigil_alertmanager_batches_dropped_total",
                "Alert batches dropped because the forward queue was full.",
            )
            .expect("valid metric"),
        }
    }
}

impl ForwardMetrics {
    /// Adds the metrics to a registry.
    pub fn register(&self, r: &Registry) -> prometheus::Result<()> {
        r.register(Box::new(self.alerts_sent.clone()))?;
        r.register(Box::new(self.alerts_failed.clone()))?;
        r.register(Box::new(self.batches_dropped.clone()))?;
        Ok(())
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
