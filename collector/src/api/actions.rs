//! Remote action triggers over HTTP, and the client behind `vigil-collector actions run`.
//!
//! `POST /api/v1/agents/{agent}/actions/{name}[?timeout=30s]` asks the connected agent whose
//! certificate names `{agent}` to run its locally configured action `{name}`
//! ([`AgentCommands::run_action`]) and answers with the agent's verdict:
//!
//! - `200 {"status":"success","data":{…}}` with `accepted`, `outcome` (`ok`, `failed`,
//!   `timeout`, `spawn_error`, `dry_run` or `refused`), `reason` (for refusals), `detail`,
//!   `exit_code`, `signal`, `duration_ms`, `stdout`, `stderr` (the first KiB of each),
//!   `request_id` and `round_trip_ms`. A refusal by the agent is a 200 with
//!   `accepted: false`: the agent answered.
//! - `400` for an empty or over-long name or a bad `timeout`, `404` when the agent is not
//!   connected, `429` when its request queue is full, `502` when the stream broke or the
//!   answer was invalid, `504` when no answer arrived in time (default 60 s).
//!
//! Errors use the Prometheus API's shape, `{"status":"error","errorType":…,"error":…}`.

use super::json::{error as failure, json_response};
use crate::ingest::commands::{ActionAnswer, CommandError};
use crate::ingest::AgentCommands;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::time::Duration;

/// The route, in axum's syntax.
pub const ROUTE: &str = "/api/v1/agents/{agent}/actions/{name}";

/// The remote-trigger router.
pub fn router(commands: AgentCommands) -> Router {
    Router::new()
        .route(ROUTE, post(run_action))
        .with_state(commands)
}

/// The HTTP status for a failed request.
pub fn status_for(e: &CommandError) -> StatusCode {
    match e {
        CommandError::BadRequest(_) => StatusCode::BAD_REQUEST,
        CommandError::NotConnected(_) => StatusCode::NOT_FOUND,
        CommandError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
        CommandError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        CommandError::Transport { .. } | CommandError::Protocol { .. } => StatusCode::BAD_GATEWAY,
    }
}

fn json(code: StatusCode, body: serde_json::Value) -> Response {
    json_response(code, body.to_string())
}

async fn run_action(
    State(commands): State<AgentCommands>,
    Path((agent, name)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    commands
        .metrics()
        .http_requests
        .with_label_values(&["remote_action"])
        .inc();
    let timeout = match params
        .get("timeout")
        .map(|t| vigil_shared::duration::parse(t))
    {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            return failure(
                StatusCode::BAD_REQUEST,
                "bad_data",
                format!("timeout: {e} (for example timeout=30s)"),
            )
        }
    };
    if let Some(unknown) = params.keys().find(|k| k.as_str() != "timeout") {
        return failure(
            StatusCode::BAD_REQUEST,
            "bad_data",
            format!("unknown parameter {unknown:?}; only timeout is accepted"),
        );
    }
    match commands.run_action(&agent, &name, timeout).await {
        Ok(answer) => json(
            StatusCode::OK,
            serde_json::json!({"status": "success", "data": answer}),
        ),
        Err(e) => {
            let kind = match &e {
                CommandError::BadRequest(_) => "bad_data",
                CommandError::NotConnected(_) => "not_found",
                CommandError::Busy(_) => "unavailable",
                CommandError::Timeout { .. } => "timeout",
                _ => "execution",
            };
            failure(status_for(&e), kind, e)
        }
    }
}

/// `vigil-collector actions run` could not get an answer from the collector.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The collector address is not `host:port`.
    #[error("bad collector address {0:?}: {1}")]
    Address(String, String),
    /// Connecting or talking HTTP failed.
    #[error("talking to the collector at {0}: {1}")]
    Http(String, String),
    /// The collector's answer is not the API's JSON.
    #[error("the collector at {0} answered HTTP {1} with an unexpected body: {2}")]
    Body(String, u16, String),
}

/// Percent-encodes one path segment.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends the trigger to the collector's HTTP API at `addr` (`host:port`) and returns the HTTP
/// status and the parsed JSON body.
pub async fn request(
    addr: &str,
    agent: &str,
    action: &str,
    timeout: Option<Duration>,
) -> Result<(u16, serde_json::Value), ClientError> {
    let addr = addr
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    if !addr.contains(':') {
        return Err(ClientError::Address(
            addr,
            "expected host:port, for example 127.0.0.1:9090".into(),
        ));
    }
    let http = |e: String| ClientError::Http(addr.clone(), e);
    let mut path = format!(
        "/api/v1/agents/{}/actions/{}",
        segment(agent),
        segment(action)
    );
    if let Some(t) = timeout {
        path.push_str(&format!(
            "?timeout={}",
            segment(&vigil_shared::duration::format(t))
        ));
    }
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| http(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http(format!("HTTP handshake: {e}")))?;
    let conn_task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::post(path)
        .header(header::HOST, &addr)
        .header(header::CONTENT_LENGTH, "0")
        .body(Full::new(Bytes::new()))
        .map_err(|e| http(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| http(format!("sending the request: {e}")))?;
    let code = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| http(format!("reading the answer: {e}")))?
        .to_bytes();
    conn_task.abort();
    let v = serde_json::from_slice(&body).map_err(|_| {
        ClientError::Body(
            addr.clone(),
            code,
            String::from_utf8_lossy(&body).chars().take(200).collect(),
        )
    })?;
    Ok((code, v))
}

/// The CLI's text for an answer: one summary line, then any output.
pub fn render(answer: &ActionAnswer) -> String {
    let mut s = format!("{} {}: {}", answer.agent, answer.action, answer.outcome);
    if let Some(r) = &answer.reason {
        s.push_str(&format!(" ({r})"));
    } else {
        let mut parts = vec![];
        if let Some(c) = answer.exit_code {
            parts.push(format!("exit code {c}"));
        }
        if let Some(sig) = answer.signal {
            parts.push(format!("signal {sig}"));
        }
        if let Some(d) = answer.duration_ms {
            parts.push(format!("{d} ms"));
        }
        if !parts.is_empty() {
            s.push_str(&format!(" ({})", parts.join(", ")));
        }
    }
    s.push('\n');
    for (name, text) in [("stdout", &answer.stdout), ("stderr", &answer.stderr)] {
        if !text.is_empty() {
            s.push_str(&format!("--- {name} ---\n{}\n", text.trim_end()));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::CollectorMetrics;
    use tower::ServiceExt;

    #[tokio::test]
    async fn unknown_agents_are_404_and_bad_timeouts_400() {
        let app = router(AgentCommands::new(CollectorMetrics::default()));
        let call = |uri: &str| {
            let app = app.clone();
            let req = axum::http::Request::post(uri)
                .body(axum::body::Body::empty())
                .unwrap();
            async move {
                let resp = app.oneshot(req).await.unwrap();
                let code = resp.status();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                (
                    code,
                    serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
                )
            }
        };
        let (code, v) = call("/api/v1/agents/web-01/actions/clean_tmp").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(v["errorType"], "not_found");
        assert!(v["error"]
            .as_str()
            .unwrap()
            .contains("\"web-01\" is not connected"));
        let (code, v) = call("/api/v1/agents/web-01/actions/clean_tmp?timeout=soon").await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert!(v["error"].as_str().unwrap().starts_with("timeout:"), "{v}");
        let (code, v) = call("/api/v1/agents/web-01/actions/clean_tmp?tmeout=1s").await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert!(v["error"].as_str().unwrap().contains("\"tmeout\""), "{v}");
    }

    #[test]
    fn rendering_names_the_outcome_and_the_reason() {
        let mut a = ActionAnswer {
            agent: "web-01".into(),
            action: "clean_tmp".into(),
            request_id: 1,
            accepted: true,
            outcome: "ok".into(),
            reason: None,
            detail: "ok, exit code 0, 12 ms".into(),
            exit_code: Some(0),
            signal: None,
            duration_ms: Some(12),
            stdout: "removed 3 files\n".into(),
            stderr: String::new(),
            round_trip_ms: 15,
        };
        assert_eq!(
            render(&a),
            "web-01 clean_tmp: ok (exit code 0, 12 ms)\n--- stdout ---\nremoved 3 files\n"
        );
        a.accepted = false;
        a.outcome = "refused".into();
        a.reason = Some("action is not allow-listed for remote requests".into());
        a.stdout.clear();
        assert_eq!(
            render(&a),
            "web-01 clean_tmp: refused (action is not allow-listed for remote requests)\n"
        );
    }
}
