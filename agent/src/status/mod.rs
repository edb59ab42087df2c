//! The agent's local status: a Unix socket that answers every connection with one JSON
//! document describing the running agent, and the `vigil-agent status` client that reads
//! it, prints it for a person or a script, and decides liveness for probes.

use crate::buffer::BufferStats;
use crate::ship::ConnectionStatus;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Health of one scrape target, as of its last scrape.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TargetHealth {
    pub url: String,
    pub job: String,
    pub instance: String,
    pub up: bool,
    pub last_scrape_ms: Option<i64>,
    pub last_duration_seconds: f64,
    pub samples: usize,
    pub last_error: Option<String>,
}

/// Everything `vigil-agent status` shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AgentStatus {
    pub version: String,
    pub host: String,
    pub pid: u32,
    pub started_ms: i64,
    pub now_ms: i64,
    pub last_collection_ms: Option<i64>,
    pub collector: ConnectionStatus,
    pub buffer: BufferStats,
    pub oldest_unsent_age_seconds: Option<f64>,
    pub targets: Vec<TargetHealth>,
    /// The latest check transitions (anomalies, threshold breaches) and remediation runs.
    #[serde(default)]
    pub recent_events: Vec<vigil_shared::model::Event>,
    /// Check label sets firing now or with an anomaly in the last 5 minutes.
    #[serde(default)]
    pub active_checks: Vec<crate::checks::threshold::ActiveCheck>,
}

/// Errors from the status client.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Nothing listens on the socket: the agent is not running.
    #[error("agent is not running (cannot connect to {path}: {source})")]
    NotRunning {
        path: String,
        source: std::io::Error,
    },
    /// The agent did not answer in time.
    #[error("agent did not answer on {0} within 5s")]
    Timeout(String),
    /// The answer was not a status document.
    #[error("unreadable status from {path}: {detail}")]
    Unreadable { path: String, detail: String },
}

/// Largest status document the client reads.
const MAX_STATUS_BYTES: u64 = 4 * 1024 * 1024;

/// Reads the status document from a running agent.
pub async fn fetch(path: &Path) -> Result<AgentStatus, StatusError> {
    let p = path.display().to_string();
    let read = async {
        let mut s = tokio::net::UnixStream::connect(path)
            .await
            .map_err(|source| StatusError::NotRunning {
                path: p.clone(),
                source,
            })?;
        let mut buf = Vec::new();
        (&mut s)
            .take(MAX_STATUS_BYTES)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| StatusError::Unreadable {
                path: p.clone(),
                detail: e.to_string(),
            })?;
        serde_json::from_slice(&buf).map_err(|e| StatusError::Unreadable {
            path: p.clone(),
            detail: e.to_string(),
        })
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .map_err(|_| StatusError::Timeout(p.clone()))?
}

/// Serves `snapshot()` as JSON to every connection on `listener` until cancelled.
pub async fn serve(
    listener: tokio::net::UnixListener,
    snapshot: impl Fn() -> AgentStatus + Send + Sync + 'static,
    cancel: tokio_util::sync::CancellationToken,
) {
    loop {
        let conn = tokio::select! {
            _ = cancel.cancelled() => return,
            c = listener.accept() => c,
        };
        match conn {
            Ok((mut stream, _)) => {
                let body = serde_json::to_vec_pretty(&snapshot()).unwrap_or_default();
                // One small write; a client that does not read is dropped by the timeout.
                let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(&body)).await;
            }
            Err(e) => tracing::warn!(error = %e, "status socket accept failed"),
        }
    }
}

fn age(now_ms: i64, then_ms: Option<i64>) -> String {
    match then_ms {
        Some(t) => format!("{:.1}s ago", (now_ms - t).max(0) as f64 / 1000.0),
        None => "never".into(),
    }
}

/// Renders the status for a person.
pub fn render(s: &AgentStatus) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let c = &s.collector;
    let _ = writeln!(
        o,
        "vigil-agent {} on {} (pid {}), up {:.0}s",
        s.version,
        s.host,
        s.pid,
        (s.now_ms - s.started_ms) as f64 / 1000.0
    );
    let _ = writeln!(
        o,
        "collector:  {} {}  last ack {}  acked {}  in flight {}",
        if c.connected {
            "connected to"
        } else {
            "NOT connected; last tried"
        },
        c.collector.as_deref().unwrap_or("-"),
        age(s.now_ms, c.last_ack_ms),
        c.acked_batches,
        c.in_flight
    );
    if let Some(e) = &c.last_error {
        let _ = writeln!(o, "            last error: {e}");
    }
    let b = &s.buffer;
    let _ = writeln!(
        o,
        "buffer:     {} batches, {} / {} bytes, oldest unsent {}, dropped {}, corruptions {}",
        b.batches,
        b.bytes,
        b.max_bytes,
        s.oldest_unsent_age_seconds
            .map_or("-".into(), |a| format!("{a:.1}s")),
        b.dropped_batches,
        b.corruptions
    );
    let _ = writeln!(
        o,
        "collection: last {}",
        age(s.now_ms, s.last_collection_ms)
    );
    if s.targets.is_empty() {
        let _ = writeln!(o, "targets:    none");
    }
    for t in &s.targets {
        let _ = writeln!(
            o,
            "target:     {:4} {} (job {}, instance {}) {} samples, {:.3}s, scraped {}{}",
            if t.up { "UP" } else { "DOWN" },
            t.url,
            t.job,
            t.instance,
            t.samples,
            t.last_duration_seconds,
            age(s.now_ms, t.last_scrape_ms),
            t.last_error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    if s.active_checks.is_empty() {
        let _ = writeln!(o, "active:     no check firing, no anomaly in the last 5m");
    }
    for a in &s.active_checks {
        let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        let mut line = format!(
            "active:     {} {} {} {{{}}} value={}",
            if a.firing { "FIRING" } else { "recent" },
            a.kind,
            a.check,
            labels.join(","),
            a.value.map_or("-".to_string(), |v| v.to_string())
        );
        if let Some(t) = a.since_ms.filter(|_| a.firing) {
            let _ = write!(line, " since {}", age(s.now_ms, Some(t)));
        }
        if let (Some(t), Some(score)) = (a.last_anomaly_ms, a.last_anomaly_score) {
            let _ = write!(line, " anomaly score={score:.6} {}", age(s.now_ms, Some(t)));
        }
        let _ = writeln!(o, "{line}");
    }
    for e in &s.recent_events {
        let fields: Vec<String> = e.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let labels: Vec<String> = e.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        let _ = writeln!(
            o,
            "event:      {} {} {{{}}} {}",
            age(s.now_ms, Some(e.timestamp_ms)),
            e.kind,
            labels.join(","),
            fields.join(" ")
        );
    }
    o
}

/// Liveness: the agent has been acknowledged by a collector within `threshold`, or it
/// started less than `threshold` ago. Returns the reason when not live.
pub fn liveness(s: &AgentStatus, threshold: Duration) -> Result<(), String> {
    let reference = s.collector.last_ack_ms.unwrap_or(s.started_ms);
    let age_ms = s.now_ms - reference;
    if age_ms > threshold.as_millis() as i64 {
        return Err(format!(
            "no collector acknowledgement for {:.0}s (threshold {:.0}s)",
            age_ms as f64 / 1000.0,
            threshold.as_secs_f64()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_uses_last_ack_or_start_time() {
        let mut s = AgentStatus {
            started_ms: 0,
            now_ms: 30_000,
            ..Default::default()
        };
        assert!(liveness(&s, Duration::from_secs(60)).is_ok());
        s.now_ms = 90_000;
        assert!(liveness(&s, Duration::from_secs(60)).is_err());
        s.collector.last_ack_ms = Some(80_000);
        assert!(liveness(&s, Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn active_checks_are_rendered_with_their_labels_and_score() {
        let mut s = AgentStatus {
            now_ms: 10_000,
            ..Default::default()
        };
        assert!(render(&s).contains("no check firing, no anomaly"));
        s.active_checks = vec![crate::checks::threshold::ActiveCheck {
            check: "host_anomaly".into(),
            kind: "anomaly".into(),
            labels: vigil_shared::model::Labels::metric("node_load1", &[("host", "a")]),
            firing: false,
            since_ms: None,
            value: Some(7.5),
            last_anomaly_ms: Some(8_000),
            last_anomaly_score: Some(0.9995),
        }];
        let text = render(&s);
        assert!(
            text.contains(
                r#"active:     recent anomaly host_anomaly {__name__="node_load1",host="a"} value=7.5 anomaly score=0.999500 2.0s ago"#
            ),
            "{text}"
        );
        // Regression guard: a value that is not a number must not make the status document
        // unreadable (JSON has no NaN), so it travels as null.
        s.active_checks[0].value = None;
        let back: AgentStatus = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(back.active_checks, s.active_checks);
        assert!(render(&back).contains("value=- anomaly"));
    }

    #[tokio::test]
    async fn status_round_trips_over_the_socket_and_a_missing_agent_is_reported() {
        let dir = std::env::temp_dir().join(format!("vigil-status-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        assert!(matches!(
            fetch(&path).await,
            Err(StatusError::NotRunning { .. })
        ));
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let cancel = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(serve(
            listener,
            || AgentStatus {
                host: "h1".into(),
                ..Default::default()
            },
            cancel.clone(),
        ));
        let s = fetch(&path).await.unwrap();
        assert_eq!(s.host, "h1");
        assert!(render(&s).contains("NOT connected"));
        cancel.cancel();
        task.await.unwrap();
    }
}
