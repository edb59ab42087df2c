//! The email integration: a message built from the integration's templates (`headers`
//! including `Subject`, default `email.default.subject`; `html` body, default
//! `email.default.html`; optional `text` body) sent over SMTP with `lettre` (tokio, rustls on
//! ring).
//!
//! Transport, as Alertmanager: port 465 is implicit TLS; any other port upgrades with
//! STARTTLS, which `require_tls` (default true) makes mandatory and otherwise is used when
//! the server offers it. `tls_config` supplies the CA, client certificate, server name and
//! `insecure_skip_verify`. With `auth_username` set, the password (`auth_password` or
//! `auth_password_file`) is sent with PLAIN or LOGIN, whichever the server offers.
//! Not done: CRAM-MD5 (`auth_secret`) and a PLAIN `auth_identity` other than the user — such
//! configs fail with an error naming the field rather than silently authenticating
//! differently.

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Identity, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use crate::notify::config::EmailConfig;
use crate::notify::templates::{NotifyData, TemplateSet};
use crate::notify::webhook::{read_secret, SendError};

/// Alertmanager's default subject header.
const DEFAULT_SUBJECT: &str = r#"{{ template "email.default.subject" . }}"#;

/// A rendered email, ready to send.
#[derive(Debug, Clone)]
pub struct Email {
    conf: EmailConfig,
    message: Message,
}

fn template_err(field: &str, e: impl std::fmt::Display) -> SendError {
    SendError::Template(format!("email {field}: {e}"))
}

/// Renders the message for this notification.
pub fn build(
    conf: &EmailConfig,
    tmpl: &TemplateSet,
    data: &NotifyData,
) -> Result<Email, SendError> {
    let t = |field: &str, s: &str| {
        tmpl.render_text(s, data)
            .map_err(|e| template_err(field, e))
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for (k, v) in &conf.headers {
        headers.push((k.clone(), t(&format!("header {k}"), &v.0)?));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let subject = match header("Subject") {
        Some(s) => s,
        None => t("subject", DEFAULT_SUBJECT)?,
    };
    let to_text = match header("To") {
        Some(s) => s,
        None => t("to", &conf.to)?,
    };
    let from_text = match header("From") {
        Some(s) => s,
        None => t("from", &conf.from)?,
    };
    let to: Mailboxes = to_text
        .parse()
        .map_err(|e| SendError::Unsupported(format!("email to address {to_text:?}: {e}")))?;
    let from: Mailbox = from_text
        .parse()
        .map_err(|e| SendError::Unsupported(format!("email from address {from_text:?}: {e}")))?;
    let mut b = Message::builder().from(from).subject(subject);
    for m in to {
        b = b.to(m);
    }
    for (k, v) in &headers {
        if matches!(k.as_str(), "Subject" | "To" | "From") {
            continue;
        }
        let name = HeaderName::new_from_ascii(k.clone())
            .map_err(|_| SendError::Unsupported(format!("email header name {k:?}")))?;
        b = b.raw_header(HeaderValue::new(name, v.clone()));
    }
    let html = if conf.html.is_empty() {
        None
    } else {
        Some(
            tmpl.render_html(&conf.html, data)
                .map_err(|e| template_err("html", e))?,
        )
    };
    let text = if conf.text.is_empty() {
        None
    } else {
        Some(t("text", &conf.text)?)
    };
    let mut parts = MultiPart::alternative().build();
    if let Some(text) = text {
        parts = parts.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text),
        );
    }
    if let Some(html) = html {
        parts = parts.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(html),
        );
    }
    let message = b
        .multipart(parts)
        .map_err(|e| SendError::Unsupported(format!("building email: {e}")))?;
    Ok(Email {
        conf: conf.clone(),
        message,
    })
}

impl Email {
    /// The message as it goes over the wire (for tests and debugging).
    pub fn formatted(&self) -> Vec<u8> {
        self.message.formatted()
    }
}

fn split_host_port(smarthost: &str) -> Result<(String, u16), SendError> {
    let (host, port) = smarthost
        .rsplit_once(':')
        .ok_or_else(|| SendError::Unsupported(format!("smarthost {smarthost:?} has no port")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| SendError::Unsupported(format!("smarthost {smarthost:?}: bad port")))?;
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    ))
}

fn tls_parameters(conf: &EmailConfig, host: &str) -> Result<TlsParameters, SendError> {
    let tls = conf.tls_config.clone().unwrap_or_default();
    let domain = tls
        .server_name
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| host.to_string());
    let mut b = TlsParameters::builder(domain);
    if let Some(ca) = tls.ca_file.as_deref().filter(|s| !s.is_empty()) {
        let pem = std::fs::read(ca).map_err(|source| SendError::Credentials {
            path: ca.to_string(),
            source,
        })?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| SendError::Unsupported(format!("CA in {ca}: {e}")))?;
        b = b.add_root_certificate(cert);
    }
    if let (Some(c), Some(k)) = (
        tls.cert_file.as_deref().filter(|s| !s.is_empty()),
        tls.key_file.as_deref().filter(|s| !s.is_empty()),
    ) {
        let read = |p: &str| {
            std::fs::read(p).map_err(|source| SendError::Credentials {
                path: p.to_string(),
                source,
            })
        };
        let id = Identity::from_pem(&read(c)?, &read(k)?)
            .map_err(|e| SendError::Unsupported(format!("client certificate {c}: {e}")))?;
        b = b.identify_with(id);
    }
    if tls.insecure_skip_verify {
        b = b.dangerous_accept_invalid_certs(true);
    }
    b.build_rustls()
        .map_err(|e| SendError::Unsupported(format!("SMTP TLS settings: {e}")))
}

/// Sends the email once, within `timeout`.
pub async fn send(email: &Email, timeout: Duration) -> Result<(), SendError> {
    let conf = &email.conf;
    if !conf.auth_secret.is_empty() {
        return Err(SendError::Unsupported(
            "email auth_secret (CRAM-MD5) is not supported by Vigil; use auth_password".into(),
        ));
    }
    if !conf.auth_identity.is_empty() && conf.auth_identity != conf.auth_username {
        return Err(SendError::Unsupported(
            "email auth_identity different from auth_username is not supported by Vigil".into(),
        ));
    }
    let (host, port) = split_host_port(&conf.smarthost)?;
    let require_tls = conf.require_tls.unwrap_or(true);
    let tls = if port == 465 {
        Tls::Wrapper(tls_parameters(conf, &host)?)
    } else if require_tls {
        Tls::Required(tls_parameters(conf, &host)?)
    } else {
        Tls::Opportunistic(tls_parameters(conf, &host)?)
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
        .port(port)
        .hello_name(ClientId::Domain(conf.hello.clone()))
        .timeout(Some(timeout))
        .tls(tls);
    if !conf.auth_username.is_empty() {
        let password = if !conf.auth_password.is_empty() {
            conf.auth_password.clone()
        } else if !conf.auth_password_file.is_empty() {
            read_secret(&conf.auth_password_file)?
        } else {
            String::new()
        };
        b = b
            .credentials(Credentials::new(conf.auth_username.clone(), password))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    let transport = b.build();
    let r = tokio::time::timeout(timeout, transport.send(email.message.clone())).await;
    match r {
        Err(_) => Err(SendError::Timeout(timeout)),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.is_permanent() => Err(SendError::Unsupported(format!(
            "SMTP {host}:{port} refused the message: {e}"
        ))),
        Ok(Err(e)) => Err(SendError::Transport(format!("SMTP {host}:{port}: {e}"))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::notify::alert::Alert;
    use crate::notify::templates::{default_set, notify_data};
    use crate::notify::Config;
    use std::time::SystemTime;
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

    /// What the SMTP sink saw in one session.
    #[derive(Debug, Default, Clone)]
    pub(crate) struct Session {
        pub commands: Vec<String>,
        pub data: String,
    }

    /// A minimal SMTP server on 127.0.0.1:0 (no STARTTLS; AUTH PLAIN/LOGIN advertised) that
    /// answers `fail_first` sessions' DATA with 451 and records every accepted message.
    pub(crate) async fn smtp_sink(
        fail_first: usize,
    ) -> (u16, tokio::sync::mpsc::Receiver<Session>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let failing = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(fail_first));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                let failing = failing.clone();
                tokio::spawn(async move {
                    let (r, mut w) = tcp.into_split();
                    let mut r = BufReader::new(r);
                    let mut s = Session::default();
                    let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let cmd = line.trim_end().to_string();
                        s.commands.push(cmd.clone());
                        let upper = cmd.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") {
                            b"250-sink\r\n250 AUTH PLAIN LOGIN\r\n"
                        } else if upper.starts_with("AUTH") {
                            b"235 ok\r\n"
                        } else if upper == "DATA" {
                            let _ = w.write_all(b"354 go\r\n").await;
                            let mut data = String::new();
                            loop {
                                line.clear();
                                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == ".\r\n" {
                                    break;
                                }
                                data.push_str(&line);
                            }
                            s.data = data;
                            let fail = failing
                                .fetch_update(
                                    std::sync::atomic::Ordering::SeqCst,
                                    std::sync::atomic::Ordering::SeqCst,
                                    |n| n.checked_sub(1),
                                )
                                .is_ok();
                            if fail {
                                b"451 try later\r\n"
                            } else {
                                let _ = tx.send(s.clone()).await;
                                b"250 queued\r\n"
                            }
                        } else if upper == "QUIT" {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            b"250 ok\r\n"
                        };
                        let _ = w.write_all(reply).await;
                    }
                });
            }
        });
        (port, rx)
    }

    fn conf(port: u16, extra: &str) -> EmailConfig {
        let cfg = Config::load_str(
            &format!(
                "route: {{receiver: m}}
receivers:
- name: m
  email_configs:
  - to: 'ops@example.org, Pager <pager@example.org>'
    from: vigil@example.org
    smarthost: 127.0.0.1:{port}
    hello: vigil.test
    require_tls: false
    auth_username: bot
    auth_password: s3cret
    headers: {{X-Team: '{{{{ .CommonLabels.team }}}}'}}
{extra}"
            ),
            "t.yml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        cfg.receivers[0].email_configs[0].clone()
    }

    fn data() -> NotifyData {
        let a = Alert::firing(&[("alertname", "DiskFull"), ("team", "db")]);
        notify_data(
            "m",
            &[("alertname".into(), "DiskFull".into())],
            &[a],
            "http://vigil:9093",
            SystemTime::now(),
        )
    }

    #[tokio::test]
    async fn sends_over_smtp_with_auth_headers_and_bodies() {
        let (port, mut rx) = smtp_sink(0).await;
        let c = conf(port, "    text: 'plain {{ .Status }}'");
        let email = build(&c, &default_set(), &data()).unwrap_or_else(|e| panic!("{e}"));
        send(&email, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let s = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("session")
            .expect("session");
        assert!(
            s.commands[0].eq_ignore_ascii_case("EHLO vigil.test"),
            "{:?}",
            s.commands
        );
        // AUTH PLAIN base64("\0bot\0s3cret")
        assert!(
            s.commands
                .iter()
                .any(|c| c == "AUTH PLAIN AGJvdABzM2NyZXQ="),
            "{:?}",
            s.commands
        );
        assert!(s
            .commands
            .iter()
            .any(|c| c == "MAIL FROM:<vigil@example.org>"));
        assert!(s.commands.iter().any(|c| c == "RCPT TO:<ops@example.org>"));
        assert!(s
            .commands
            .iter()
            .any(|c| c == "RCPT TO:<pager@example.org>"));
        assert!(
            s.data.contains("Subject: [FIRING:1] DiskFull (db)\r\n"),
            "{}",
            s.data
        );
        assert!(s.data.contains("X-Team: db\r\n"), "{}", s.data);
        assert!(s.data.contains("multipart/alternative"), "{}", s.data);
        assert!(s.data.contains("plain firing"), "{}", s.data);
        assert!(s.data.contains("text/html"), "{}", s.data);
    }

    #[tokio::test]
    async fn require_tls_fails_against_a_server_without_starttls() {
        let (port, _rx) = smtp_sink(0).await;
        let mut c = conf(port, "");
        c.require_tls = Some(true);
        let email = build(&c, &default_set(), &data()).unwrap_or_else(|e| panic!("{e}"));
        assert!(send(&email, Duration::from_secs(5)).await.is_err());
    }

    #[tokio::test]
    async fn a_4xx_answer_is_retryable() {
        let (port, _rx) = smtp_sink(1).await;
        let email =
            build(&conf(port, ""), &default_set(), &data()).unwrap_or_else(|e| panic!("{e}"));
        let e = send(&email, Duration::from_secs(5))
            .await
            .expect_err("451 from the sink");
        assert!(e.is_retryable(), "{e}");
    }

    #[test]
    fn subject_header_overrides_the_default() {
        let c = conf(25, "    html: ''\n    text: body");
        let mut c2 = c.clone();
        c2.headers.insert(
            "Subject".into(),
            serde_yaml_ng::from_str("'custom {{ .Status }}'").unwrap(),
        );
        let m = build(&c2, &default_set(), &data()).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(text.contains("Subject: custom firing\r\n"), "{text}");
        assert!(!text.contains("text/html"), "{text}");
    }
}
