//! Forwarding the rules engine's alerts to external Alertmanagers with
//! `POST /api/v2/alerts`, as Prometheus's notifier does for `alerting.alertmanagers`.
//!
//! The rules engine already applies Prometheus's semantics: a firing alert is re-sent every
//! `resend_delay` (1m) with `endsAt` set a few resend periods ahead, so the Alertmanager keeps
//! it active only while Vigil keeps reporting it, and a resolved alert is sent with its real
//! `endsAt`. The forwarder sends each batch, in chunks of at most 64 alerts (Prometheus's
//! `maxBatchSize`), to every configured Alertmanager in parallel, once, within a time limit —
//! no retries, because the next resend repeats the state, exactly like Prometheus.
//!
//! Batches wait in a bounded queue ([`FORWARD_QUEUE`] batches). When it is full,
//! [`Forwarder::forward`] drops the batch and counts it in `dropped`; the next resend
//! carries the same alerts again.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use std::collections::BTreeMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::gocompat::rfc3339;
use crate::notify::alert::Alert;
use crate::notify::config::HttpConfig;
use crate::notify::webhook::post_json;
use crate::telemetry::ForwardMetrics;

/// Batches the forward queue holds.
pub const FORWARD_QUEUE: usize = 64;
/// Alerts per request (Prometheus's `maxBatchSize`).
pub const MAX_BATCH: usize = 64;

/// A URL given for an Alertmanager is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alertmanager URL {url:?}: {reason}; expected e.g. http://alertmanager:9093")]
pub struct ForwardUrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong.
    pub reason: String,
}

/// The `POST /api/v2/alerts` endpoint of an Alertmanager given by its base URL (a URL that
/// already ends in `/api/v2/alerts` is kept).
pub fn alerts_endpoint(base: &str) -> Result<String, ForwardUrlError> {
    let err = |reason: &str| ForwardUrlError {
        url: base.to_string(),
        reason: reason.to_string(),
    };
    let uri: hyper::Uri = base.parse().map_err(|_| err("not a valid URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(err("the scheme must be http or https")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(err("no host"));
    }
    if uri.query().is_some() {
        return Err(err("a query string is not allowed"));
    }
    let trimmed = base.trim_end_matches('/');
    if trimmed.ends_with("/api/v2/alerts") {
        Ok(trimmed.to_string())
    } else {
        Ok(format!("{trimmed}/api/v2/alerts"))
    }
}

/// One alert in Alertmanager's `postableAlert` shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert<'a> {
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
}

/// The JSON body for a chunk of alerts.
pub fn encode(alerts: &[Alert]) -> Vec<u8> {
    let items: Vec<PostableAlert<'_>> = alerts
        .iter()
        .map(|a| PostableAlert {
            labels: &a.labels,
            annotations: &a.annotations,
            starts_at: rfc3339(Some(a.starts_at)),
            ends_at: a.ends_at.map(|e| rfc3339(Some(e))),
            generator_url: &a.generator_url,
        })
        .collect();
    serde_json::to_vec(&items).unwrap_or_default()
}

/// The sending side; cheap to clone.
#[derive(Debug, Clone)]
pub struct Forwarder {
    tx: mpsc::Sender<Vec<Alert>>,
    metrics: ForwardMetrics,
}

impl Forwarder {
    /// Starts the forwarding task for these Alertmanager endpoints (from
    /// [`alerts_endpoint`]); it stops when `cancel` fires or every handle is dropped.
    pub fn start(
        endpoints: Vec<String>,
        timeout: Duration,
        cancel: CancellationToken,
        tracker: &tokio_util::task::TaskTracker,
    ) -> Forwarder {
        let (tx, mut rx) = mpsc::channel::<Vec<Alert>>(FORWARD_QUEUE);
        let metrics = ForwardMetrics::default();
        let st = metrics.clone();
        tracker.spawn(tracing::Instrument::instrument(
            async move {
                loop {
                    let batch = tokio::select! {
                        _ = cancel.cancelled() => break,
                        b = rx.recv() => match b { Some(b) => b, None => break },
                    };
                    for chunk in batch.chunks(MAX_BATCH) {
                        let body = Bytes::from(encode(chunk));
                        let sends = endpoints.iter().map(|url| {
                            let body = body.clone();
                            let url = url.clone();
                            async move {
                                let r =
                                    post_json(&url, &HttpConfig::default(), body, timeout).await;
                                (url, r)
                            }
                        });
                        for (url, r) in futures_join_all(sends).await {
                            let n = chunk.len() as u64;
                            match r {
                                Ok(()) => {
                                    st.alerts_sent.with_label_values(&[url.as_str()]).inc_by(n);
                                }
                                Err(e) => {
                                    st.alerts_failed
                                        .with_label_values(&[url.as_str()])
                                        .inc_by(n);
                                    tracing::warn!(alertmanager = %url, error = %e, count = n,
                                        "sending alerts to Alertmanager failed");
                                }
                            }
                        }
                    }
                }
            },
            tracing::info_span!("alertmanager_forwarder"),
        ));
        Forwarder { tx, metrics }
    }

    /// Queues a batch without waiting; a full queue drops it (the next resend repeats it).
    pub fn forward(&self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        if self.tx.try_send(alerts).is_err() {
            self.metrics.batches_dropped.inc();
            tracing::warn!("Alertmanager forward queue full; batch dropped until the next resend");
        }
    }

    /// The forwarder's metrics (unregistered until [`ForwardMetrics::register`]).
    pub fn metrics(&self) -> &ForwardMetrics {
        &self.metrics
    }
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn endpoints() {
        assert_eq!(
            alerts_endpoint("http://am:9093").unwrap(),
            "http://am:9093/api/v2/alerts"
        );
        assert_eq!(
            alerts_endpoint("https://am.example/prefix/").unwrap(),
            "https://am.example/prefix/api/v2/alerts"
        );
        assert_eq!(
            alerts_endpoint("http://am:9093/api/v2/alerts").unwrap(),
            "http://am:9093/api/v2/alerts"
        );
        let e = alerts_endpoint("am:9093").expect_err("no scheme");
        assert!(e.to_string().contains("http"), "{e}");
        assert!(alerts_endpoint("ftp://am").is_err());
    }

    #[test]
    fn postable_alert_shape() {
        let mut a = Alert::firing(&[("alertname", "X")]);
        a.starts_at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        a.annotations.insert("summary".into(), "s".into());
        a.generator_url = "http://vigil/graph".into();
        let mut b = a.clone();
        b.ends_at = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_060));
        assert_eq!(
            String::from_utf8(encode(&[a, b])).unwrap(),
            r#"[{"labels":{"alertname":"X"},"annotations":{"summary":"s"},"startsAt":"2023-11-14T22:13:20Z","generatorURL":"http://vigil/graph"},{"labels":{"alertname":"X"},"annotations":{"summary":"s"},"startsAt":"2023-11-14T22:13:20Z","endsAt":"2023-11-14T22:14:20Z","generatorURL":"http://vigil/graph"}]"#
        );
    }
}
