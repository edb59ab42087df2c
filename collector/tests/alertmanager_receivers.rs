//! Receivers and forwarding checked against the real Alertmanager 0.25
//! (`/usr/bin/prometheus-alertmanager`, Debian's package), all on 127.0.0.1:
//!
//! - Forwarding: [`Forwarder`] POSTs an alert to a running Alertmanager's `/api/v2/alerts`;
//!   its `GET /api/v2/alerts` then lists it with the same labels, annotations, `startsAt`
//!   and `generatorURL`, and a resolved report (`endsAt` in the past) takes it off the
//!   active list.
//! - Slack and PagerDuty: Alertmanager is started with Slack and PagerDuty integrations
//!   pointing at a local listener, is sent two alerts, and its request bodies are compared
//!   byte for byte with what Vigil renders for the same config, alerts and external URL.
//!
//! A missing Alertmanager binary is a failure, not a skip: CI installs it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vigil_collector::gocompat::parse_rfc3339;
use vigil_collector::notify::alert::Alert;
use vigil_collector::notify::forward::{alerts_endpoint, Forwarder};
use vigil_collector::notify::templates::{default_set, notify_data};
use vigil_collector::notify::{pagerduty, slack, Config};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A running Alertmanager, killed on drop.
struct Am {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Am {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start_am(name: &str, config: &str) -> Am {
    assert!(
        Path::new(ALERTMANAGER).exists(),
        "{ALERTMANAGER} is missing: install Debian's prometheus-alertmanager package"
    );
    let dir = std::env::temp_dir().join(format!("vigil-am-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let cfg = dir.join("am.yml");
    std::fs::write(&cfg, config).expect("write config");
    let am = vigil_testkit::start_on_free_port("alertmanager", |port| {
        let mut child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--web.external-url=http://am.example:9093")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawning {ALERTMANAGER}: {e}"))?;
        vigil_testkit::wait_listening(&mut child, port, Duration::from_secs(20))?;
        Ok(Am {
            child,
            port,
            dir: dir.clone(),
        })
    });
    let port = am.port;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, _)) = http_get(port, "/-/ready").await {
            return am;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alertmanager did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A minimal HTTP/1.0 GET returning status and body.
async fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

fn alert(instance: &str) -> Alert {
    let mut a = Alert::firing(&[
        ("alertname", "HighCPU"),
        ("instance", instance),
        ("severity", "page"),
    ]);
    a.annotations
        .insert("summary".into(), format!("cpu high on {instance}"));
    a.annotations.insert("runbook".into(), "http://rb".into());
    a.generator_url = "http://vigil:9090/graph?g0.expr=up".into();
    a.starts_at = parse_rfc3339("2023-11-14T22:13:20Z").expect("time");
    a
}

#[tokio::test]
async fn forwarded_alerts_reach_a_real_alertmanager() {
    let am = start_am(
        "forward",
        "route: {receiver: 'null'}\nreceivers: [{name: 'null'}]\n",
    )
    .await;
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let endpoint = alerts_endpoint(&format!("http://127.0.0.1:{}", am.port)).expect("endpoint");
    let f = Forwarder::start(
        vec![endpoint.clone()],
        Duration::from_secs(5),
        cancel.clone(),
        &tracker,
    );

    let mut a = alert("a:9100");
    a.ends_at = Some(SystemTime::now() + Duration::from_secs(240));
    f.forward(vec![a.clone()]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let (code, body) = http_get(am.port, "/api/v2/alerts")
            .await
            .expect("GET alerts");
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        if let Some(found) = v.as_array().and_then(|l| l.first()).cloned() {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "alert never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let labels: BTreeMap<String, String> =
        serde_json::from_value(listed["labels"].clone()).expect("labels");
    assert_eq!(labels, a.labels);
    let annotations: BTreeMap<String, String> =
        serde_json::from_value(listed["annotations"].clone()).expect("annotations");
    assert_eq!(annotations, a.annotations);
    // Alertmanager prints the time with milliseconds (`…20.000Z`).
    assert_eq!(
        parse_rfc3339(listed["startsAt"].as_str().unwrap_or("")),
        Some(a.starts_at),
        "{listed}"
    );
    assert_eq!(listed["generatorURL"], a.generator_url);
    assert_eq!(listed["status"]["state"], "active");
    // The counter moves once the POST's answer is read, possibly after the GET above.
    let sent = || {
        f.metrics()
            .alerts_sent
            .with_label_values(&[endpoint.as_str()])
            .get()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sent() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sent(), 1);

    // Resolved: Prometheus sends the alert with its real end time.
    let mut r = a;
    r.ends_at = Some(SystemTime::now() - Duration::from_secs(1));
    f.forward(vec![r]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = http_get(am.port, "/api/v2/alerts?active=true")
            .await
            .expect("GET alerts");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        if v.as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "resolved alert still active: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
}

/// Collects (path, body) of every POST to 127.0.0.1:PORT.
async fn listener() -> (u16, mpsc::Receiver<(String, String)>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel(32);
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
        let tx = tx.clone();
        async move {
            let _ = tx
                .send((
                    uri.path().to_string(),
                    String::from_utf8_lossy(&body).to_string(),
                ))
                .await;
            r#"{"status":"success"}"#
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (port, rx)
}

#[tokio::test]
async fn slack_and_pagerduty_bodies_match_alertmanager() {
    let (port, mut rx) = listener().await;
    let config = format!(
        r#"route:
  receiver: team-x
  group_by: [alertname]
  group_wait: 1s
receivers:
- name: team-x
  webhook_configs:
  - url: http://127.0.0.1:{port}/webhook
  slack_configs:
  - api_url: http://127.0.0.1:{port}/slack
    channel: '#alerts'
    icon_emoji: ':fire:'
    short_fields: true
    fields:
    - {{title: Severity, value: '{{{{ .CommonLabels.severity | toUpper }}}}'}}
    - {{title: Instances, value: '{{{{ range .Alerts }}}}{{{{ .Labels.instance }}}} {{{{ end }}}}', short: false}}
    text: '{{{{ range .Alerts.Firing }}}}{{{{ .Annotations.summary }}}}{{{{ "\n" }}}}{{{{ end }}}}'
  pagerduty_configs:
  - routing_key: key-1
    url: http://127.0.0.1:{port}/pd
    class: '{{{{ .GroupLabels.alertname }}}}'
    component: cpu
    details: {{runbook: '{{{{ .CommonAnnotations.runbook }}}}'}}
    images: [{{src: 'http://img/{{{{ .Status }}}}.png', alt: graph}}, {{src: ''}}]
"#
    );
    let am = start_am("receivers", &config).await;
    let alerts = vec![alert("a:9100"), alert("b:9100")];
    let body = String::from_utf8(vigil_collector::notify::forward::encode(&alerts)).expect("utf8");
    // POST the alerts to Alertmanager the way Prometheus does.
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", am.port))
            .await
            .expect("connect");
        s.write_all(
            format!(
                "POST /api/v2/alerts HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .expect("post");
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).await.expect("response");
        assert!(
            String::from_utf8_lossy(&resp).starts_with("HTTP/1.0 200"),
            "{}",
            String::from_utf8_lossy(&resp)
        );
    }
    let mut got = BTreeMap::new();
    while got.len() < 3 {
        let (path, body) = tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .expect("alertmanager notified within 15s")
            .expect("listener");
        got.insert(path, body);
    }

    let cfg = Config::load_str(&config, "am.yml").unwrap_or_else(|e| panic!("{e}"));
    let rcv = &cfg.receivers[0];
    let pairs = alerts[0].label_pairs();
    let route = &cfg.route.match_routes(&pairs)[0];
    let group_labels = route.group_labels(&pairs);
    let group_key = route.group_key(&pairs);
    let data = notify_data(
        "team-x",
        &group_labels,
        &alerts,
        "http://am.example:9093",
        SystemTime::now(),
    );
    let set = default_set();
    let ours_slack =
        String::from_utf8(slack::message(&rcv.slack_configs[0], &set, &data).expect("slack"))
            .expect("utf8");
    assert_eq!(ours_slack, got["/slack"]);
    let (_, ours_pd) = pagerduty::request(
        &rcv.pagerduty_configs[0],
        &set,
        &data,
        &group_key,
        pagerduty::V1_URL,
    )
    .expect("pagerduty");
    assert_eq!(String::from_utf8(ours_pd).expect("utf8"), got["/pd"]);
    let ours_webhook = vigil_collector::notify::webhook::WebhookMessage::new(
        "team-x",
        &group_key,
        &group_labels,
        &alerts,
        0,
        "http://am.example:9093",
        SystemTime::now(),
    );
    let mut ours_webhook = serde_json::to_string(&ours_webhook).expect("json");
    ours_webhook.push('\n');
    assert_eq!(ours_webhook, got["/webhook"]);
}
