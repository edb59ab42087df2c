//! The webhook integration: Alertmanager's version-4 JSON message and an HTTP/1.1 POST with
//! the integration's `http_config` credentials.
//!
//! A 2xx answer is success; 5xx answers and connection failures are worth retrying; anything
//! else is a permanent failure, as in Alertmanager's webhook notifier. `https://` URLs use
//! rustls (ring) with the integration's `tls_config`; `proxy_url` is not supported yet and
//! fails with [`SendError::Unsupported`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;

use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

use crate::gocompat::rfc3339;
use crate::notify::alert::Alert;
use crate::notify::config::{HttpConfig, TlsConfig};

/// One alert in the webhook message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 start.
    pub starts_at: String,
    /// RFC 3339 end; Go's zero time for firing alerts.
    pub ends_at: String,
    /// Link to the alert's source.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// Label-set fingerprint, 16 hex digits.
    pub fingerprint: String,
}

/// Alertmanager's webhook message, version 4, fields in Alertmanager's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessage {
    /// Receiver name, regex-quoted as Alertmanager's template data does.
    pub receiver: String,
    /// `firing` when any alert fires, else `resolved`.
    pub status: String,
    /// The alerts, after `max_alerts` truncation.
    pub alerts: Vec<WebhookAlert>,
    /// The group's labels.
    pub group_labels: BTreeMap<String, String>,
    /// Labels shared, with equal values, by every alert.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations shared, with equal values, by every alert.
    pub common_annotations: BTreeMap<String, String>,
    /// The collector's external URL.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// Always `"4"`.
    pub version: String,
    /// The aggregation group's key.
    pub group_key: String,
    /// How many alerts `max_alerts` cut off.
    pub truncated_alerts: u64,
}

impl WebhookMessage {
    /// Builds the message for a group's alerts. Alerts resolved at `now` are `resolved`;
    /// firing alerts carry a zero end time, as Alertmanager sends them.
    pub fn new(
        receiver: &str,
        group_key: &str,
        group_labels: &[(String, String)],
        alerts: &[Alert],
        max_alerts: u64,
        external_url: &str,
        now: SystemTime,
    ) -> WebhookMessage {
        let keep = if max_alerts > 0 {
            alerts
                .len()
                .min(usize::try_from(max_alerts).unwrap_or(usize::MAX))
        } else {
            alerts.len()
        };
        let truncated = (alerts.len() - keep) as u64;
        let alerts = &alerts[..keep];
        let (common_labels, common_annotations) =
            crate::notify::alert::common_labels_and_annotations(alerts);
        let items: Vec<WebhookAlert> = alerts
            .iter()
            .map(|a| {
                let resolved = a.is_resolved_at(now);
                WebhookAlert {
                    status: if resolved { "resolved" } else { "firing" }.to_string(),
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    starts_at: rfc3339(Some(a.starts_at)),
                    ends_at: rfc3339(if resolved { a.ends_at } else { None }),
                    generator_url: a.generator_url.clone(),
                    fingerprint: format!("{:016x}", a.fingerprint()),
                }
            })
            .collect();
        let status = if items.iter().any(|a| a.status == "firing") {
            "firing"
        } else {
            "resolved"
        };
        WebhookMessage {
            receiver: quote_meta(receiver),
            status: status.to_string(),
            alerts: items,
            group_labels: group_labels.iter().cloned().collect(),
            common_labels,
            common_annotations,
            external_url: external_url.to_string(),
            version: "4".to_string(),
            group_key: group_key.to_string(),
            truncated_alerts: truncated,
        }
    }
}

/// Go's `regexp.QuoteMeta`.
pub fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A notification could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The URL or integration cannot be used by this sender.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A credentials file could not be read.
    #[error("reading {path}: {source}")]
    Credentials {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Connecting or talking to the endpoint failed.
    #[error("{0}")]
    Transport(String),
    /// No answer within the attempt's time limit.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The endpoint answered with a non-2xx status.
    #[error("unexpected status code {code}")]
    Status {
        /// HTTP status.
        code: u16,
    },
    /// A notification template failed; retrying would fail the same way.
    #[error("{0}")]
    Template(String),
}

impl SendError {
    /// Whether Alertmanager would retry after this error: transport failures, time-outs and
    /// 5xx answers are retried; bad configuration and other statuses are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Transport(_) | SendError::Timeout(_) => true,
            SendError::Status { code } => *code / 100 == 5,
            SendError::Unsupported(_) | SendError::Credentials { .. } | SendError::Template(_) => {
                false
            }
        }
    }

    /// [`is_retryable`](Self::is_retryable) for an integration of `kind`: PagerDuty also
    /// retries 429 (rate limited), as Alertmanager's PagerDuty notifier does.
    pub fn is_retryable_for(&self, kind: &str) -> bool {
        self.is_retryable()
            || (kind == "pagerduty" && matches!(self, SendError::Status { code: 429 }))
    }
}

/// Reads a secret file, trimmed (`*_file` settings).
pub fn read_secret(path: &str) -> Result<String, SendError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| SendError::Credentials {
            path: path.to_string(),
            source,
        })
}

/// The `Authorization` header value an `http_config` asks for, if any.
pub fn authorization_header(http: &HttpConfig) -> Result<Option<String>, SendError> {
    let nonempty = |o: &Option<String>| o.clone().filter(|s| !s.is_empty());
    if let Some(b) = &http.basic_auth {
        let password = match (nonempty(&b.password), nonempty(&b.password_file)) {
            (Some(p), _) => p,
            (None, Some(f)) => read_secret(&f)?,
            (None, None) => String::new(),
        };
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", b.username));
        return Ok(Some(format!("Basic {token}")));
    }
    if let Some(a) = &http.authorization {
        let kind = a
            .kind
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "Bearer".into());
        let creds = match (nonempty(&a.credentials), nonempty(&a.credentials_file)) {
            (Some(c), _) => c,
            (None, Some(f)) => read_secret(&f)?,
            (None, None) => String::new(),
        };
        return Ok(Some(format!("{kind} {creds}")));
    }
    if let Some(t) = nonempty(&http.bearer_token) {
        return Ok(Some(format!("Bearer {t}")));
    }
    if let Some(f) = nonempty(&http.bearer_token_file) {
        return Ok(Some(format!("Bearer {}", read_secret(&f)?)));
    }
    Ok(None)
}

/// POSTs a JSON body to `url` once, within `timeout`. Success is a 2xx answer.
pub async fn post_json(
    url: &str,
    http: &HttpConfig,
    body: Bytes,
    timeout: Duration,
) -> Result<(), SendError> {
    match tokio::time::timeout(timeout, post_json_inner(url, http, body)).await {
        Ok(r) => r,
        Err(_) => Err(SendError::Timeout(timeout)),
    }
}

async fn post_json_inner(url: &str, http: &HttpConfig, body: Bytes) -> Result<(), SendError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| SendError::Unsupported(format!("URL {url:?}: {e}")))?;
    let https = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(SendError::Unsupported(format!(
                "only http:// and https:// URLs can be sent to, got {url:?}"
            )))
        }
    };
    if http.proxy_url.as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(SendError::Unsupported("proxy_url".to_string()));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| SendError::Unsupported(format!("URL {url:?} has no host")))?
        .clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let mut req = Request::post(path)
        .header(HOST, authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .header(
            USER_AGENT,
            concat!("vigil-collector/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(a) = authorization_header(http)? {
        req = req.header(AUTHORIZATION, a);
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| SendError::Unsupported(format!("building request: {e}")))?;

    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| SendError::Transport(format!("connecting to {host}:{port}: {e}")))?;
    let code = if https {
        let connector = tls_connector(http.tls_config.as_ref())?;
        let name = http
            .tls_config
            .as_ref()
            .and_then(|t| t.server_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| host.clone());
        let server_name = ServerName::try_from(name.clone())
            .map_err(|e| SendError::Unsupported(format!("TLS server name {name:?}: {e}")))?;
        let tls = connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| SendError::Transport(format!("TLS handshake with {host}:{port}: {e}")))?;
        exchange(tls, req).await?
    } else {
        exchange(tcp, req).await?
    };
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(SendError::Status { code })
    }
}

/// Sends one request over a fresh connection and returns the status code.
async fn exchange<IO>(io: IO, req: Request<Full<Bytes>>) -> Result<u16, SendError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| SendError::Transport(format!("HTTP handshake: {e}")))?;
    let conn_task = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "webhook connection closed with an error");
        }
    });
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| SendError::Transport(format!("sending request: {e}")))?;
    let code = resp.status().as_u16();
    // Drain the body so the connection closes cleanly; its content is not used.
    let _ = resp.into_body().collect().await;
    conn_task.abort();
    Ok(code)
}

/// A TLS client for an integration's `tls_config`, with Prometheus common's semantics:
/// `ca_file` replaces the default roots (Mozilla's), `cert_file`/`key_file` add a client
/// certificate, `insecure_skip_verify` skips the certificate check (handshake signatures are
/// still verified), `min_version` is `TLS12` or `TLS13`.
pub fn tls_connector(tls: Option<&TlsConfig>) -> Result<TlsConnector, SendError> {
    let default = TlsConfig::default();
    let tls = tls.unwrap_or(&default);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version.as_deref() {
        None | Some("") | Some("TLS12") => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Some("TLS13") => &[&rustls::version::TLS13],
        Some(other) => {
            return Err(SendError::Unsupported(format!(
                "tls_config.min_version {other:?} (use TLS12 or TLS13)"
            )))
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| SendError::Unsupported(format!("TLS settings: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    match tls.ca_file.as_deref().filter(|f| !f.is_empty()) {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| pem_error(path, e))? {
                let cert = cert.map_err(|e| pem_error(path, e))?;
                roots
                    .add(cert)
                    .map_err(|e| SendError::Unsupported(format!("CA in {path}: {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipCertificateCheck(provider)))
    } else {
        builder.with_root_certificates(roots)
    };
    let config = match (
        tls.cert_file.as_deref().filter(|f| !f.is_empty()),
        tls.key_file.as_deref().filter(|f| !f.is_empty()),
    ) {
        (Some(cert_path), Some(key_path)) => {
            let certs = CertificateDer::pem_file_iter(cert_path)
                .map_err(|e| pem_error(cert_path, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem_error(cert_path, e))?;
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| pem_error(key_path, e))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| SendError::Unsupported(format!("client certificate: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(SendError::Unsupported(
                "tls_config needs both cert_file and key_file for a client certificate".into(),
            ))
        }
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

fn pem_error(path: &str, e: rustls_pki_types::pem::Error) -> SendError {
    match e {
        rustls_pki_types::pem::Error::Io(source) => SendError::Credentials {
            path: path.to_string(),
            source,
        },
        other => SendError::Unsupported(format!("reading PEM from {path}: {other}")),
    }
}

/// `insecure_skip_verify`: accepts any server certificate but still checks that the server
/// holds its key.
#[derive(Debug)]
struct SkipCertificateCheck(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for SkipCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::config::{Authorization, BasicAuth};
    use std::time::UNIX_EPOCH;

    #[test]
    fn message_matches_alertmanager_shape() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_100);
        let mut a = Alert::firing(&[("alertname", "A"), ("job", "x"), ("i", "1")]);
        a.starts_at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        a.annotations.insert("summary".into(), "s".into());
        let mut b = a.clone();
        b.labels.insert("i".into(), "2".into());
        b.ends_at = Some(UNIX_EPOCH + Duration::from_secs(1_700_000_050));
        let m = WebhookMessage::new(
            "team.ops",
            "{}:{alertname=\"A\"}",
            &[("alertname".into(), "A".into())],
            &[a, b],
            0,
            "http://vigil:9093",
            now,
        );
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.starts_with(r#"{"receiver":"team\\.ops","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"A","i":"1","job":"x"},"annotations":{"summary":"s"},"startsAt":"2023-11-14T22:13:20Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":""#), "{json}");
        assert!(json.contains(r#""status":"resolved""#), "{json}");
        assert!(
            json.contains(r#""endsAt":"2023-11-14T22:14:10Z""#),
            "{json}"
        );
        assert!(json.ends_with(r#""groupLabels":{"alertname":"A"},"commonLabels":{"alertname":"A","job":"x"},"commonAnnotations":{"summary":"s"},"externalURL":"http://vigil:9093","version":"4","groupKey":"{}:{alertname=\"A\"}","truncatedAlerts":0}"#), "{json}");
    }

    #[test]
    fn max_alerts_truncates() {
        let alerts: Vec<Alert> = (0..5)
            .map(|i| Alert::firing(&[("i", &i.to_string())]))
            .collect();
        let m = WebhookMessage::new("r", "k", &[], &alerts, 2, "", SystemTime::now());
        assert_eq!(m.alerts.len(), 2);
        assert_eq!(m.truncated_alerts, 3);
    }

    #[test]
    fn auth_headers() {
        let mut h = HttpConfig {
            basic_auth: Some(BasicAuth {
                username: "u".into(),
                password: Some("p".into()),
                password_file: None,
            }),
            ..HttpConfig::default()
        };
        assert_eq!(
            authorization_header(&h).unwrap().as_deref(),
            Some("Basic dTpw")
        );
        h.basic_auth = None;
        h.authorization = Some(Authorization {
            kind: None,
            credentials: Some("tok".into()),
            credentials_file: None,
        });
        assert_eq!(
            authorization_header(&h).unwrap().as_deref(),
            Some("Bearer tok")
        );
        h.authorization = None;
        h.bearer_token_file = Some("/nonexistent/vigil-token".into());
        assert!(matches!(
            authorization_header(&h),
            Err(SendError::Credentials { .. })
        ));
    }

    #[test]
    fn retry_classification() {
        assert!(SendError::Status { code: 503 }.is_retryable());
        assert!(!SendError::Status { code: 404 }.is_retryable());
        let limited = SendError::Status { code: 429 };
        assert!(limited.is_retryable_for("pagerduty"));
        assert!(!limited.is_retryable_for("webhook") && !limited.is_retryable_for("slack"));
        assert!(SendError::Transport("x".into()).is_retryable());
        assert!(!SendError::Unsupported("https".into()).is_retryable());
    }

    /// A TLS webhook receiver on 127.0.0.1:0 with a certificate for `localhost` issued by a
    /// fresh CA; returns the port, the CA's PEM and the bodies it receives.
    async fn tls_sink() -> (u16, String, tokio::sync::mpsc::Receiver<Bytes>) {
        use hyper::service::service_fn;
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca cert");
        let key = rcgen::KeyPair::generate().expect("server key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("server params")
            .signed_by(&key, &ca, &ca_key)
            .expect("server cert");
        let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let _ = tx.try_send(body);
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::new(),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        (port, ca.pem(), rx)
    }

    #[tokio::test]
    async fn https_webhooks_use_tls_config() {
        let (port, ca_pem, mut rx) = tls_sink().await;
        let dir = std::env::temp_dir().join(format!("vigil-webhook-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca_pem).expect("write ca");
        let url = format!("https://localhost:{port}/hook");
        let t = Duration::from_secs(5);
        let with = |tls: TlsConfig| HttpConfig {
            tls_config: Some(tls),
            ..HttpConfig::default()
        };

        // Trusted through ca_file.
        let ca = TlsConfig {
            ca_file: Some(ca_file.display().to_string()),
            ..TlsConfig::default()
        };
        post_json(&url, &with(ca.clone()), Bytes::from_static(b"{\"a\":1}"), t)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rx.recv().await.as_deref(), Some(&b"{\"a\":1}"[..]));

        // Not trusted by the default roots.
        let e = post_json(&url, &HttpConfig::default(), Bytes::new(), t)
            .await
            .expect_err("unknown CA must fail");
        assert!(e.to_string().contains("TLS handshake"), "{e}");

        // The name checked is server_name when set.
        let wrong_name = TlsConfig {
            server_name: Some("other.example".into()),
            ..ca
        };
        assert!(post_json(&url, &with(wrong_name), Bytes::new(), t)
            .await
            .is_err());

        // insecure_skip_verify accepts it.
        let skip = TlsConfig {
            insecure_skip_verify: true,
            ..TlsConfig::default()
        };
        post_json(&url, &with(skip), Bytes::from_static(b"{}"), t)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rx.recv().await.as_deref(), Some(&b"{}"[..]));

        // A missing CA file is a credentials error, not retried.
        let missing = TlsConfig {
            ca_file: Some(dir.join("nope.pem").display().to_string()),
            ..TlsConfig::default()
        };
        let e = post_json(&url, &with(missing), Bytes::new(), t)
            .await
            .expect_err("missing CA file");
        assert!(!e.is_retryable(), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
