//! The agent's own metrics, in one place as typed fields rather than metric-name strings
//! scattered through the code. They are served on `--metrics-listen` and summarised by
//! `vigil-agent status`.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric the agent exports about itself.
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    pub registry: Registry,
    pub collections: IntCounter,
    pub collection_seconds: Histogram,
    pub samples_collected: IntCounter,
    pub batches_buffered: IntCounter,
    pub buffer_batches: IntGauge,
    pub buffer_bytes: IntGauge,
    pub buffer_dropped_batches: IntCounter,
    pub buffer_errors: IntCounter,
    pub batches_acked: IntCounter,
    pub batches_duplicate: IntCounter,
    pub batches_rejected: IntCounter,
    pub ship_retries: IntCounter,
    pub bytes_shipped: IntCounter,
    pub ack_seconds: Histogram,
    pub connects: IntCounterVec,
    pub scrape_errors: IntCounterVec,
    pub check_transitions: IntCounterVec,
    /// Per watched series: `vigil_check_firing`, `vigil_anomaly_score`, `vigil_anomalies_total`
    /// (see [`crate::checks::export`]).
    pub check_series: crate::checks::export::CheckSeriesExport,
    pub check_series_tracked: IntGauge,
    pub check_series_exported: IntGauge,
    pub check_series_dropped: IntCounter,
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

impl Default for AgentMetrics {
    fn default() -> Self {
        let r = Registry::new();
        let lat = prometheus::exponential_buckets(0.0005, 2.0, 16).expect("valid buckets");
        AgentMetrics {
            collections: counter(
                &r,
                "vigil_agent_collections_total",
                "Collection cycles run.",
            ),
            collection_seconds: histogram(
                &r,
                "vigil_agent_collection_duration_seconds",
                "Time spent collecting one cycle.",
                lat.clone(),
            ),
            samples_collected: counter(
                &r,
                "vigil_agent_samples_collected_total",
                "Samples collected from the host and scrape targets.",
            ),
            batches_buffered: counter(
                &r,
                "vigil_agent_batches_buffered_total",
                "Batches written to the durable buffer.",
            ),
            buffer_batches: gauge(
                &r,
                "vigil_agent_buffer_batches",
                "Batches waiting in the buffer for an acknowledgement.",
            ),
            buffer_bytes: gauge(
                &r,
                "vigil_agent_buffer_bytes",
                "Bytes waiting in the buffer for an acknowledgement.",
            ),
            buffer_dropped_batches: counter(
                &r,
                "vigil_agent_buffer_dropped_batches_total",
                "Oldest batches dropped because the buffer was full.",
            ),
            buffer_errors: counter(
                &r,
                "vigil_agent_buffer_errors_total",
                "Failed writes to the buffer (the batch was lost).",
            ),
            batches_acked: counter(
                &r,
                "vigil_agent_batches_acked_total",
                "Batches the collector acknowledged as durable.",
            ),
            batches_duplicate: counter(
                &r,
                "vigil_agent_batches_duplicate_total",
                "Batches the collector already had (resent after a lost acknowledgement).",
            ),
            batches_rejected: counter(
                &r,
                "vigil_agent_batches_rejected_total",
                "Batches the collector refused as malformed (dropped).",
            ),
            ship_retries: counter(
                &r,
                "vigil_agent_ship_retries_total",
                "Batch sends that failed and will be retried.",
            ),
            bytes_shipped: counter(
                &r,
                "vigil_agent_shipped_bytes_total",
                "Payload bytes sent to the collector.",
            ),
            ack_seconds: histogram(
                &r,
                "vigil_agent_ack_duration_seconds",
                "Time from sending a batch to its acknowledgement.",
                lat,
            ),
            connects: counter_vec(
                &r,
                "vigil_agent_connects_total",
                "Connection attempts to collectors, by result.",
                &["result"],
            ),
            scrape_errors: counter_vec(
                &r,
                "vigil_agent_scrape_errors_total",
                "Failed scrapes, by job.",
                &["job"],
            ),
            check_transitions: counter_vec(&r, "vigil_agent_check_transitions_total", "Local check transitions (anomalies and threshold breaches), by check, kind and state.", &["check", "kind", "state"]),
            check_series: {
                let e = crate::checks::export::CheckSeriesExport::default();
                r.register(Box::new(e.clone())).expect("unique metric");
                e
            },
            check_series_tracked: gauge(
                &r,
                "vigil_agent_check_series_tracked",
                "Label sets the local checks keep state for.",
            ),
            check_series_exported: gauge(
                &r,
                "vigil_agent_check_series_exported",
                "Label sets whose check state is exported as vigil_check_firing/vigil_anomaly_score/vigil_anomalies_total.",
            ),
            check_series_dropped: counter(
                &r,
                "vigil_agent_check_series_dropped_total",
                "New label sets a check ignored because it already tracked its maximum.",
            ),
            registry: r,
        }
    }
}

impl AgentMetrics {
    /// Renders the registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut out)
            .expect("text encoding into a String cannot fail");
        out
    }
}
