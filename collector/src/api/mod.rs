//! The collector's HTTP server (axum on hyper 1). Endpoints:
//!
//! - `GET /metrics`: the collector's own metrics.
//! - `GET /federate?match[]=…`: the latest sample of each matching series (5-minute
//!   lookback, stale series omitted) in the Prometheus text format, with timestamps
//!   ([`federate`]).
//! - `GET /api/v1/export?match[]=…&start=…&end=…`: raw samples as JSON lines in
//!   VictoriaMetrics' export format ([`federate`]).
//! - `POST /api/v1/write`: Prometheus remote_write 1.0 (snappy + protobuf); the tenant is
//!   the `X-Scope-OrgID` header (default `default`).
//! - `GET /api/v1/agents`: agents seen, whether connected, last seen, lag.
//! - `GET /api/v1/analytics/anomalies?limit=…`: recent anomaly events from agents, newest
//!   first; `GET /api/v1/events?kind=…&limit=…` lists events of any kind.
//! - `POST /api/v1/agents/{agent}/actions/{name}[?timeout=…]`: ask a connected agent to run
//!   an allow-listed action and return its answer ([`actions`]).
//! - `GET /api/v1/status/tsdb[?limit=N]`: head cardinality as Prometheus reports it, plus
//!   series per tenant ([`tsdb_status`]).
//! - `GET /health` (the process is up) and `GET /ready` (storage open, ingest listening).
//! - the Prometheus query API over the PromQL engine, merged from [`query`] (with
//!   [`series`]); `/federate` and `/api/v1/export` are in [`federate`].
//! - Alertmanager's v2 silences, alerts and status API, merged from [`alertmanager`].
//!
//! Every JSON answer is written by [`json`]; request parameters are read by [`params`].

pub mod actions;
pub mod alertmanager;
pub mod federate;
pub mod json;
pub mod params;
pub mod query;
pub mod remote_write;
mod series;
mod tsdb_status;

use crate::ingest::AgentRegistry;
use crate::rules::manager::RuleManager;
use crate::storage::Storage;
use crate::telemetry::CollectorMetrics;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use json::{json_response, TEXT_FORMAT};
use params::Params;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
/// Largest remote_write body accepted (compressed).
pub const MAX_WRITE_BODY: usize = 32 * 1024 * 1024;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct ApiState {
    pub storage: Storage,
    pub agents: AgentRegistry,
    pub metrics: CollectorMetrics,
    pub ready: Arc<AtomicBool>,
    pub now_ms: fn() -> i64,
    /// Raised after every stored remote_write request, so alerting rules see it at once.
    pub samples_arrived: crate::signals::SamplesArrived,
}

impl ApiState {
    /// Counts one request to `endpoint` in `vigil_collector_http_requests_total`.
    fn count(&self, endpoint: &str) {
        self.metrics
            .http_requests
            .with_label_values(&[endpoint])
            .inc();
    }
}

/// `/api/v1/rules`, `/api/v1/alerts` and `POST /-/reload` over the rule manager (empty
/// answers when no rule files are configured).
pub fn rules_router(rules: Option<Arc<RuleManager>>) -> Router {
    async fn rules_list(State(r): State<Option<Arc<RuleManager>>>) -> Response {
        json_value(match &r {
            Some(m) => m.rules_json().await,
            None => serde_json::json!({"status": "success", "data": {"groups": []}}),
        })
    }
    async fn alerts_list(State(r): State<Option<Arc<RuleManager>>>) -> Response {
        json_value(match &r {
            Some(m) => m.alerts_json().await,
            None => serde_json::json!({"status": "success", "data": {"alerts": []}}),
        })
    }
    async fn reload(State(r): State<Option<Arc<RuleManager>>>) -> Response {
        match &r {
            Some(m) => match m.reload().await {
                Ok(()) => (StatusCode::OK, "rule files reloaded\n").into_response(),
                Err(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("reload failed, old rules kept:\n{e}\n"),
                )
                    .into_response(),
            },
            None => (StatusCode::OK, "no rule files configured\n").into_response(),
        }
    }
    Router::new()
        .route("/api/v1/rules", get(rules_list))
        .route("/api/v1/alerts", get(alerts_list))
        .route("/-/reload", post(reload))
        .with_state(rules)
}

fn json_value(body: serde_json::Value) -> Response {
    json_response(StatusCode::OK, body.to_string())
}

/// The whole HTTP router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/federate", get(federate::federate))
        .route("/api/v1/export", get(federate::export))
        .route(
            "/api/v1/write",
            post(write).layer(axum::extract::DefaultBodyLimit::max(MAX_WRITE_BODY)),
        )
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/analytics/anomalies", get(anomalies))
        .route("/api/v1/events", get(events))
        .route("/api/v1/status/tsdb", get(tsdb_status::tsdb_status))
        .route("/health", get(|| async { "OK\n" }))
        .route("/ready", get(ready))
        .with_state(state)
}

async fn metrics(State(s): State<ApiState>) -> Response {
    s.count("metrics");
    let mut out = String::new();
    let _ = prometheus::TextEncoder::new().encode_utf8(&s.metrics.registry.gather(), &mut out);
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], out).into_response()
}

/// The tenant of a remote_write request: its `X-Scope-OrgID` header (as in Mimir and
/// Cortex), or `default`. At most 150 characters of `[A-Za-z0-9!._*'()-]`.
fn tenant_of(headers: &axum::http::HeaderMap) -> Result<String, String> {
    let Some(v) = headers.get("x-scope-orgid") else {
        return Ok(crate::storage::DEFAULT_TENANT.to_string());
    };
    let t = v.to_str().unwrap_or("");
    let ok = !t.is_empty()
        && t.len() <= 150
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!._*'()-".contains(&b));
    if ok {
        Ok(t.to_string())
    } else {
        Err(format!(
            "invalid X-Scope-OrgID {:?}: a tenant is 1 to 150 characters of A-Z a-z 0-9 ! . _ * ' ( ) -, e.g. \"team-a\"",
            String::from_utf8_lossy(v.as_bytes())
        ))
    }
}

async fn write(State(s): State<ApiState>, headers: axum::http::HeaderMap, body: Bytes) -> Response {
    s.metrics.http_requests.with_label_values(&["write"]).inc();
    let tenant = match tenant_of(&headers) {
        Ok(t) => t,
        Err(e) => {
            s.metrics
                .remote_write_requests
                .with_label_values(&["400"])
                .inc();
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    let (raw, samples, metadata) = match remote_write::decode_for_storage(&body) {
        Ok(d) => (d.raw, d.samples, d.metadata),
        Err(e) => {
            s.metrics
                .remote_write_requests
                .with_label_values(&["400"])
                .inc();
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    // Metadata is kept apart from the samples (Prometheus sends it in requests of its own).
    for m in metadata {
        let stored = crate::storage::metadata::MetricMetadata::new(m.kind, &m.help, &m.unit)
            .and_then(|meta| s.storage.metadata().record("remote_write", &m.family, meta));
        if let Err(e) = stored {
            tracing::debug!(error = %e, family = %m.family, "remote_write metadata refused");
        }
    }
    match s.storage.append_raw_batch_for(&tenant, raw).await {
        Ok(_) => {
            s.samples_arrived.raise();
            s.metrics
                .remote_write_requests
                .with_label_values(&["204"])
                .inc();
            s.metrics.remote_write_samples.inc_by(samples as u64);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) if e.is_client_error() => {
            s.metrics
                .remote_write_requests
                .with_label_values(&["400"])
                .inc();
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
        Err(e) => {
            s.metrics
                .remote_write_requests
                .with_label_values(&["500"])
                .inc();
            tracing::error!(error = %e, "remote_write could not be stored");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
    }
}

async fn agents(State(s): State<ApiState>) -> Response {
    s.count("agents");
    json_value(serde_json::json!({"status": "success", "data": s.agents.list()}))
}

/// Events of `kind` (all kinds when `None`), newest first, as Prometheus-API-style JSON.
fn events_response(s: &ApiState, params: &Params, kind: Option<&str>) -> Response {
    let limit = match params.get("limit").map(str::parse::<usize>).transpose() {
        Ok(l) => l.unwrap_or(100).min(10_000),
        Err(e) => return json::error(StatusCode::BAD_REQUEST, "bad_data", format!("limit: {e}")),
    };
    let data: Vec<serde_json::Value> = s
        .storage
        .recent_events(usize::MAX)
        .into_iter()
        .filter(|(_, e)| kind.is_none_or(|k| e.kind == k))
        .take(limit)
        .map(|(agent, e)| {
            let labels: serde_json::Map<String, serde_json::Value> = e.labels.iter().map(|(k, v)| (k.to_string(), v.into())).collect();
            let fields: serde_json::Map<String, serde_json::Value> = e.fields.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
            serde_json::json!({"agent": agent, "kind": e.kind, "timestamp_ms": e.timestamp_ms, "labels": labels, "fields": fields})
        })
        .collect();
    json_value(serde_json::json!({"status": "success", "data": data}))
}

async fn anomalies(State(s): State<ApiState>, params: Params) -> Response {
    s.count("anomalies");
    events_response(&s, &params, Some("anomaly"))
}

async fn events(State(s): State<ApiState>, params: Params) -> Response {
    s.count("events");
    let kind = params.get("kind").map(str::to_string);
    events_response(&s, &params, kind.as_deref())
}

async fn ready(State(s): State<ApiState>) -> Response {
    if s.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_is_x_scope_orgid_or_default_and_bad_names_are_refused() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(tenant_of(&h).unwrap(), "default");
        h.insert("X-Scope-OrgID", "team-a".parse().unwrap());
        assert_eq!(tenant_of(&h).unwrap(), "team-a");
        for bad in ["", "a/b", "team a", &"x".repeat(151)] {
            h.insert("X-Scope-OrgID", bad.parse().unwrap());
            let e = tenant_of(&h).unwrap_err();
            assert!(e.contains("X-Scope-OrgID"), "{e}");
        }
    }
}
