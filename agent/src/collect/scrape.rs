//! Scraping one Prometheus or OpenMetrics text endpoint, the way Prometheus does.
//!
//! [`scrape`] GETs the target over HTTP/1.1 (pooled connections, `http://` only) with the
//! `Accept` header Prometheus sends, a timeout covering connect, headers and body, and a
//! cap on the body size. The page is parsed by [`vigil_shared::exposition`] under
//! [`ScrapeOptions::limits`]. Every sample gets the target's `job` and `instance` labels
//! with `honor_labels: false` semantics: a scraped label that collides is kept as
//! `exported_<name>`. The synthetic series `up`, `scrape_duration_seconds`,
//! `scrape_samples_scraped`, `scrape_samples_post_metric_relabeling` and
//! `scrape_series_added` (series absent from the target's previous successful scrape)
//! are always added. A target that is down, slow, or serves garbage
//! gives `up 0`, zero sample counts and an error in the result, and no scraped samples.

use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vigil_shared::exposition::{self, ExpositionError, Format, Limits, MetricMeta};
use vigil_shared::model::{Labels, Point, Series};

/// The `Accept` header Prometheus 2.x sends when protobuf scraping is off.
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// Prefix Prometheus puts on a scraped label that collides with a target label.
pub const EXPORTED_PREFIX: &str = "exported_";

/// One endpoint to scrape and the target labels its samples get.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScrapeTarget {
    /// Full URL, path and query included, e.g. `http://127.0.0.1:9100/metrics`.
    pub url: String,
    /// The `job` label.
    pub job: String,
    /// The `instance` label.
    pub instance: String,
}

impl ScrapeTarget {
    /// A target for `url` in `job`, with `instance` defaulting, as in Prometheus 2, to the
    /// URL's `host:port` (port 80 or 443 when the URL names none). Checks the URL.
    pub fn new(url: &str, job: &str, instance: Option<&str>) -> Result<Self, ScrapeError> {
        let uri = parse_url(url)?;
        let instance = match instance {
            Some(i) => i.to_string(),
            None => default_instance(&uri)?,
        };
        Ok(ScrapeTarget {
            url: url.to_string(),
            job: job.to_string(),
            instance,
        })
    }
}

/// Limits and identity for a [`ScrapeClient`].
#[derive(Debug, Clone)]
pub struct ScrapeOptions {
    /// Largest response body read, in bytes; a larger one fails the scrape.
    pub max_body_bytes: usize,
    /// Parser limits (samples, line length, labels per series).
    pub limits: Limits,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for ScrapeOptions {
    fn default() -> Self {
        ScrapeOptions {
            max_body_bytes: 16 * 1024 * 1024,
            limits: Limits {
                max_bytes: 16 * 1024 * 1024,
                ..Limits::default()
            },
            user_agent: concat!("vigil-agent/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// A pooled HTTP/1.1 client shared by all scrapes; clone-free, keep one per agent.
#[derive(Debug)]
pub struct ScrapeClient {
    client: Client<HttpConnector, Empty<Bytes>>,
    opts: ScrapeOptions,
    /// Hashes of the series each target returned last time, for `scrape_series_added`.
    previous: Mutex<HashMap<ScrapeTarget, HashSet<u64>>>,
}

impl ScrapeClient {
    /// Builds the client. Must be called inside a Tokio runtime's context only when used.
    pub fn new(opts: ScrapeOptions) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        ScrapeClient {
            client,
            opts,
            previous: Mutex::new(HashMap::new()),
        }
    }

    /// Drops what is remembered about `target` (call when it leaves the configuration).
    pub fn forget(&self, target: &ScrapeTarget) {
        if let Ok(mut p) = self.previous.lock() {
            p.remove(target);
        }
    }

    /// Counts the series not returned by `target`'s previous successful scrape, and
    /// remembers this scrape's set.
    fn count_added(&self, target: &ScrapeTarget, series: &[Series]) -> usize {
        let now: HashSet<u64> = series
            .iter()
            .map(|s| {
                let mut h = DefaultHasher::new();
                s.labels.hash(&mut h);
                h.finish()
            })
            .collect();
        let Ok(mut previous) = self.previous.lock() else {
            return now.len();
        };
        let added = match previous.get(target) {
            Some(before) => now.difference(before).count(),
            None => now.len(),
        };
        previous.insert(target.clone(), now);
        added
    }

    /// The options this client was built with.
    pub fn options(&self) -> &ScrapeOptions {
        &self.opts
    }
}

/// Why a scrape failed; the target is then `up 0`.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The URL does not parse or has no host.
    #[error("invalid target url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The URL's scheme is not `http` (`https` is not supported yet).
    #[error("unsupported url scheme {0:?}: only http is supported")]
    UnsupportedScheme(String),
    /// Connecting or sending the request failed.
    #[error("request failed: {0}")]
    Request(String),
    /// The whole scrape took longer than its timeout.
    #[error("scrape timed out after {0:?}")]
    Timeout(Duration),
    /// The server answered with a status other than 200.
    #[error("server returned HTTP status {0}")]
    Status(StatusCode),
    /// The body is larger than [`ScrapeOptions::max_body_bytes`].
    #[error("response body exceeds the limit of {0} bytes")]
    BodyTooLarge(usize),
    /// Reading the body failed midway.
    #[error("reading response body: {0}")]
    Body(String),
    /// The body is not UTF-8.
    #[error("response body is not valid UTF-8")]
    NotUtf8,
    /// The body is not valid exposition format.
    #[error("parsing response: {0}")]
    Parse(#[from] ExpositionError),
}

/// What one scrape produced.
#[derive(Debug)]
pub struct ScrapeResult {
    /// Scraped samples (with `job`/`instance`) followed by the five synthetic series.
    pub series: Vec<Series>,
    /// `# TYPE`/`# HELP` of the scraped families.
    pub metadata: Vec<MetricMeta>,
    /// Whether the scrape succeeded (`up`).
    pub up: bool,
    /// Why it failed, when it did.
    pub error: Option<ScrapeError>,
    /// Wall time of the scrape.
    pub duration: Duration,
    /// Number of samples scraped.
    pub samples_scraped: usize,
}

/// Scrapes `target` once. Samples without a timestamp get `now_ms`, which should be the
/// scrape's start time; so do the synthetic series. Never fails: problems are reported
/// through `up 0` and [`ScrapeResult::error`].
pub async fn scrape(
    client: &ScrapeClient,
    target: &ScrapeTarget,
    timeout: Duration,
    now_ms: i64,
) -> ScrapeResult {
    let start = Instant::now();
    let fetched = match tokio::time::timeout(timeout, fetch(client, target, timeout)).await {
        Ok(r) => r,
        Err(_) => Err(ScrapeError::Timeout(timeout)),
    };
    let parsed = fetched.and_then(|(body, format)| {
        exposition::parse_with(&body, now_ms, format, &client.opts.limits)
            .map_err(ScrapeError::from)
    });
    let duration = start.elapsed();

    let (mut series, metadata, error) = match parsed {
        Ok(p) => (p.series, p.metadata, None),
        Err(e) => (Vec::new(), Vec::new(), Some(e)),
    };
    let up = error.is_none();
    let n = series.len();
    for s in &mut series {
        apply_target_labels(&mut s.labels, target);
    }
    let added = if up {
        client.count_added(target, &series)
    } else {
        0
    };
    let synthetic = [
        ("up", if up { 1.0 } else { 0.0 }),
        ("scrape_duration_seconds", duration.as_secs_f64()),
        ("scrape_samples_scraped", n as f64),
        ("scrape_samples_post_metric_relabeling", n as f64),
        ("scrape_series_added", added as f64),
    ];
    series.reserve(synthetic.len());
    for (name, value) in synthetic {
        series.push(Series {
            labels: Labels::metric(
                name,
                &[("instance", &target.instance), ("job", &target.job)],
            ),
            points: vec![Point {
                timestamp_ms: now_ms,
                value,
            }],
        });
    }
    ScrapeResult {
        series,
        metadata,
        up,
        error,
        duration,
        samples_scraped: n,
    }
}

async fn fetch(
    client: &ScrapeClient,
    target: &ScrapeTarget,
    timeout: Duration,
) -> Result<(String, Format), ScrapeError> {
    let uri = parse_url(&target.url)?;
    let request = Request::get(uri)
        .header(ACCEPT, ACCEPT_HEADER)
        .header(USER_AGENT, &client.opts.user_agent)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", timeout.as_secs_f64()),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| ScrapeError::Request(e.to_string()))?;
    let response = client
        .client
        .request(request)
        .await
        .map_err(|e| ScrapeError::Request(error_chain(&e)))?;
    if response.status() != StatusCode::OK {
        return Err(ScrapeError::Status(response.status()));
    }
    let limit = client.opts.max_body_bytes;
    let announced = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > limit as u64) {
        return Err(ScrapeError::BodyTooLarge(limit));
    }
    let format = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(Format::from_content_type)
        .unwrap_or(Format::PrometheusText);
    let body = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                ScrapeError::BodyTooLarge(limit)
            } else {
                ScrapeError::Body(e.to_string())
            }
        })?
        .to_bytes();
    let text = String::from_utf8(body.into()).map_err(|_| ScrapeError::NotUtf8)?;
    Ok((text, format))
}

/// Adds the target's `instance` and `job`, renaming colliding scraped labels to
/// `exported_<name>` (again prefixed while that name is taken), shortest name first, as
/// Prometheus's `honor_labels: false` does.
pub fn apply_target_labels(labels: &mut Labels, target: &ScrapeTarget) {
    let mut conflicts: Vec<(&'static str, String)> = Vec::new();
    for (name, value) in [("instance", &target.instance), ("job", &target.job)] {
        if let Some(existing) = labels.get(name) {
            conflicts.push((name, existing.to_string()));
        }
        labels.set(name, value);
    }
    conflicts.sort_by_key(|(name, _)| name.len());
    for (name, value) in conflicts {
        let mut new_name = name.to_string();
        loop {
            new_name.insert_str(0, EXPORTED_PREFIX);
            if labels.get(&new_name).is_none() {
                labels.set(&new_name, &value);
                break;
            }
        }
    }
}

fn parse_url(url: &str) -> Result<Uri, ScrapeError> {
    let uri: Uri =
        url.parse()
            .map_err(|e: hyper::http::uri::InvalidUri| ScrapeError::InvalidUrl {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => return Err(ScrapeError::UnsupportedScheme(other.to_string())),
        None => {
            return Err(ScrapeError::InvalidUrl {
                url: url.to_string(),
                reason: "missing scheme (expected http://)".into(),
            })
        }
    }
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(uri),
        _ => Err(ScrapeError::InvalidUrl {
            url: url.to_string(),
            reason: "missing host".into(),
        }),
    }
}

fn default_instance(uri: &Uri) -> Result<String, ScrapeError> {
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    Ok(format!("{host}:{port}"))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Serves `response` (raw HTTP bytes) to every connection, recording request heads.
    async fn serve(response: Vec<u8>, delay: Duration) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let response = response.clone();
                let seen = Arc::clone(&seen2);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut head = Vec::new();
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    seen.lock()
                        .expect("lock")
                        .push(String::from_utf8_lossy(&head).into_owned());
                    tokio::time::sleep(delay).await;
                    let _ = sock.write_all(&response).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        (format!("http://{addr}/metrics"), seen)
    }

    fn http(status: &str, content_type: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn value(r: &ScrapeResult, name: &str) -> Option<f64> {
        r.series
            .iter()
            .find(|s| s.labels.name() == name)
            .map(|s| s.points[0].value)
    }

    #[tokio::test]
    async fn scrapes_labels_and_adds_synthetic_series() {
        let body = "# TYPE reqs counter\nreqs{job=\"app\",code=\"200\"} 5\nreqs{code=\"500\",instance=\"x\",exported_instance=\"y\"} 1 123\n";
        let (url, seen) = serve(
            http("200 OK", "text/plain; version=0.0.4", body),
            Duration::ZERO,
        )
        .await;
        let target = ScrapeTarget::new(&url, "node", None).expect("target");
        let client = ScrapeClient::new(ScrapeOptions::default());
        let r = scrape(&client, &target, Duration::from_secs(5), 1000).await;
        assert!(r.up, "{:?}", r.error);
        assert_eq!(r.samples_scraped, 2);
        assert_eq!(r.series.len(), 7);
        let first = &r.series[0].labels;
        assert_eq!(first.get("job"), Some("node"));
        assert_eq!(first.get("exported_job"), Some("app"));
        assert_eq!(first.get("instance"), Some(target.instance.as_str()));
        let second = &r.series[1];
        assert_eq!(second.labels.get("exported_instance"), Some("y"));
        assert_eq!(second.labels.get("exported_exported_instance"), Some("x"));
        assert_eq!(second.points[0].timestamp_ms, 123);
        assert_eq!(r.series[0].points[0].timestamp_ms, 1000);
        assert_eq!(value(&r, "up"), Some(1.0));
        assert_eq!(value(&r, "scrape_samples_scraped"), Some(2.0));
        assert_eq!(
            value(&r, "scrape_samples_post_metric_relabeling"),
            Some(2.0)
        );
        assert_eq!(value(&r, "scrape_series_added"), Some(2.0));
        let again = scrape(&client, &target, Duration::from_secs(5), 2000).await;
        assert_eq!(
            value(&again, "scrape_series_added"),
            Some(0.0),
            "same series again"
        );
        client.forget(&target);
        let fresh = scrape(&client, &target, Duration::from_secs(5), 3000).await;
        assert_eq!(value(&fresh, "scrape_series_added"), Some(2.0));
        assert!(value(&r, "scrape_duration_seconds").is_some_and(|d| d > 0.0 && d < 5.0));
        let up = r
            .series
            .iter()
            .find(|s| s.labels.name() == "up")
            .expect("up");
        assert_eq!(
            up.labels,
            Labels::metric("up", &[("instance", &target.instance), ("job", "node")])
        );
        assert_eq!(r.metadata[0].family, "reqs");
        let head = seen.lock().expect("lock")[0].to_ascii_lowercase();
        assert!(head.starts_with("get /metrics http/1.1\r\n"), "{head}");
        assert!(
            head.contains(&format!("accept: {}", ACCEPT_HEADER.to_ascii_lowercase())),
            "{head}"
        );
        assert!(
            head.contains("x-prometheus-scrape-timeout-seconds: 5"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn openmetrics_content_type_reads_seconds_timestamps() {
        let body = "# TYPE a counter\na_total 1 1700000000.5\na_created 1600000000\n# EOF\n";
        let (url, _) = serve(
            http(
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body,
            ),
            Duration::ZERO,
        )
        .await;
        let target = ScrapeTarget::new(&url, "j", Some("inst")).expect("target");
        let r = scrape(
            &ScrapeClient::new(ScrapeOptions::default()),
            &target,
            Duration::from_secs(5),
            0,
        )
        .await;
        assert!(r.up, "{:?}", r.error);
        assert_eq!(r.samples_scraped, 1);
        assert_eq!(r.series[0].points[0].timestamp_ms, 1_700_000_000_500);
        assert_eq!(r.series[0].labels.get("instance"), Some("inst"));
    }

    async fn expect_down(response: Vec<u8>, delay: Duration, opts: ScrapeOptions, want: &str) {
        let (url, _) = serve(response, delay).await;
        let target = ScrapeTarget::new(&url, "j", None).expect("target");
        let r = scrape(
            &ScrapeClient::new(opts),
            &target,
            Duration::from_millis(300),
            7,
        )
        .await;
        assert!(!r.up);
        let err = r
            .error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(err.contains(want), "{err:?} should contain {want:?}");
        assert_eq!(r.series.len(), 5, "only the synthetic series");
        assert_eq!(value(&r, "up"), Some(0.0));
        assert_eq!(value(&r, "scrape_samples_scraped"), Some(0.0));
        assert!(r.series.iter().all(|s| s.points[0].timestamp_ms == 7));
    }

    #[tokio::test]
    async fn server_error_status_is_down() {
        let resp = http("500 Internal Server Error", "text/plain", "m 1\n");
        expect_down(
            resp,
            Duration::ZERO,
            ScrapeOptions::default(),
            "HTTP status 500",
        )
        .await;
    }

    #[tokio::test]
    async fn garbage_is_down() {
        let resp = http("200 OK", "text/plain", "<html>not metrics</html>\n");
        expect_down(
            resp,
            Duration::ZERO,
            ScrapeOptions::default(),
            "line 1: invalid metric name",
        )
        .await;
        expect_down(
            b"garbage\r\n\r\n".to_vec(),
            Duration::ZERO,
            ScrapeOptions::default(),
            "request failed",
        )
        .await;
        let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n".to_vec();
        resp.extend_from_slice(&[b'm', b' ', 0xff, b'\n']);
        expect_down(
            resp,
            Duration::ZERO,
            ScrapeOptions::default(),
            "not valid UTF-8",
        )
        .await;
    }

    #[tokio::test]
    async fn slow_target_times_out() {
        let resp = http("200 OK", "text/plain", "m 1\n");
        expect_down(
            resp,
            Duration::from_secs(3),
            ScrapeOptions::default(),
            "timed out",
        )
        .await;
    }

    #[tokio::test]
    async fn oversized_body_is_refused() {
        let opts = ScrapeOptions {
            max_body_bytes: 100,
            ..ScrapeOptions::default()
        };
        let body = "m 1\n".repeat(100);
        expect_down(
            http("200 OK", "text/plain", &body),
            Duration::ZERO,
            opts.clone(),
            "exceeds the limit of 100 bytes",
        )
        .await;
        // Without Content-Length (read until close) the cap still holds.
        let raw = format!("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{body}").into_bytes();
        expect_down(raw, Duration::ZERO, opts, "exceeds the limit of 100 bytes").await;
    }

    #[tokio::test]
    async fn sample_limit_is_down() {
        let opts = ScrapeOptions {
            limits: Limits {
                max_samples: 2,
                ..Limits::default()
            },
            ..ScrapeOptions::default()
        };
        let resp = http("200 OK", "text/plain", "a 1\nb 2\nc 3\n");
        expect_down(resp, Duration::ZERO, opts, "more than 2 samples").await;
    }

    #[tokio::test]
    async fn refused_connection_is_down() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let target = ScrapeTarget::new(&format!("http://{addr}/metrics"), "j", None).expect("t");
        let r = scrape(
            &ScrapeClient::new(ScrapeOptions::default()),
            &target,
            Duration::from_secs(2),
            0,
        )
        .await;
        assert!(!r.up);
        assert!(
            matches!(r.error, Some(ScrapeError::Request(_))),
            "{:?}",
            r.error
        );
    }

    #[test]
    fn target_defaults_and_url_checks() {
        let t = ScrapeTarget::new("http://example.org/metrics?x=1", "j", None).expect("t");
        assert_eq!(t.instance, "example.org:80");
        let t = ScrapeTarget::new("http://[::1]:9100/metrics", "j", None).expect("t");
        assert_eq!(t.instance, "[::1]:9100");
        assert!(matches!(
            ScrapeTarget::new("https://a:1/", "j", None),
            Err(ScrapeError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            ScrapeTarget::new("localhost:9100/metrics", "j", None),
            Err(ScrapeError::InvalidUrl { .. }) | Err(ScrapeError::UnsupportedScheme(_))
        ));
        assert!(ScrapeTarget::new("http://", "j", None).is_err());
        assert!(ScrapeTarget::new("not a url", "j", None).is_err());
    }

    #[test]
    fn exported_prefix_resolution_matches_prometheus() {
        let target = ScrapeTarget {
            url: String::new(),
            job: "J".into(),
            instance: "I".into(),
        };
        let mut l = Labels::metric(
            "m",
            &[
                ("job", "a"),
                ("exported_job", "b"),
                ("instance", "c"),
                ("other", "d"),
            ],
        );
        apply_target_labels(&mut l, &target);
        assert_eq!(
            l,
            Labels::metric(
                "m",
                &[
                    ("job", "J"),
                    ("instance", "I"),
                    ("exported_job", "b"),
                    ("exported_exported_job", "a"),
                    ("exported_instance", "c"),
                    ("other", "d"),
                ]
            )
        );
    }
}
