//! Alerting end to end on the real binaries: an agent scrapes a test application and a
//! cAdvisor-like target, the collector evaluates the seed rule file
//! (`tests/fixtures/alerting-rules-advanced.yaml`, unchanged but for its `for:` durations,
//! shortened to 2 s in a rewritten copy so the test takes seconds instead of up to 15
//! minutes) and routes the alerts with a configuration derived from the seed
//! `alertmanager.loopback.yml` (same routing tree, grouping and inhibition rules; every
//! receiver becomes a webhook on a local receiver, `group_wait` 1 s, `group_interval` 2 s).
//!
//! The application goes down, `BrainAICompleteOutage` (critical) fires and reaches
//! `pagerduty-critical` as Alertmanager's version-4 payload; while it fires, the
//! `HighMemoryUsage` warning for the same pod fires too but is inhibited (the seed's
//! critical-inhibits-warning rule, `equal: [namespace, pod]`) and is not delivered; the
//! application recovers, the resolved notification arrives, and only then is the warning
//! delivered; finally the warning resolves too.
//!
//! A second test points a real Prometheus's `alerting.alertmanagers` at the collector: the
//! alert its rule raises goes through the collector's `POST /api/v2/alerts` into the same
//! routing and reaches the webhook, firing and then resolved, with Prometheus's labels,
//! annotations and generator URL.
#![allow(clippy::disallowed_methods)]

mod util;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use util::*;

const POD: &str = "brain-ai-7f9c4";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The seed rule file with every `for:` set to `for_`.
fn rules_with_short_for(for_: &str) -> String {
    let text = std::fs::read_to_string(fixture("alerting-rules-advanced.yaml")).unwrap();
    let mut n = 0;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            let trimmed = l.trim_start();
            if trimmed.starts_with("for:") {
                n += 1;
                format!("{}for: {for_}", &l[..l.len() - trimmed.len()])
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_eq!(n, 14, "the seed rule file has 14 alerting rules with `for`");
    out.join("\n") + "\n"
}

/// The seed loopback Alertmanager config with each receiver replaced by a webhook (same
/// name) on `hook`, short timers, and no template files.
fn alertmanager_config(hook: &WebhookReceiver) -> String {
    use serde_yaml_ng::{Mapping, Value};
    let text = std::fs::read_to_string(fixture("alertmanager.loopback.yml")).unwrap();
    let mut cfg: Value = serde_yaml_ng::from_str(&text).unwrap();
    let root = cfg.as_mapping_mut().unwrap();
    root.remove("templates");
    let route = root.get_mut("route").unwrap().as_mapping_mut().unwrap();
    route.insert("group_wait".into(), "1s".into());
    route.insert("group_interval".into(), "2s".into());
    route.insert("repeat_interval".into(), "1h".into());
    let receivers: Vec<Value> = root["receivers"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| {
            let name = r["name"].as_str().unwrap().to_string();
            let mut webhook = Mapping::new();
            webhook.insert("url".into(), hook.url(&name).into());
            webhook.insert("send_resolved".into(), true.into());
            let mut m = Mapping::new();
            m.insert("name".into(), name.into());
            m.insert(
                "webhook_configs".into(),
                Value::Sequence(vec![Value::Mapping(webhook)]),
            );
            Value::Mapping(m)
        })
        .collect();
    assert_eq!(receivers.len(), 7);
    root.insert("receivers".into(), Value::Sequence(receivers));
    serde_yaml_ng::to_string(&cfg).unwrap()
}

/// The application's own metrics while it is up.
const APP_METRICS: &str = "# TYPE brain_ai_http_requests_total counter
brain_ai_http_requests_total{status=\"200\"} 1027
# TYPE brain_ai_active_users gauge
brain_ai_active_users 12
# TYPE brain_ai_database_connections gauge
brain_ai_database_connections{state=\"active\"} 7
";

/// cAdvisor's view of the application's container, with `used` bytes of a 1000-byte limit.
fn container_metrics(used: u64) -> String {
    format!(
        "# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{{pod=\"{POD}\",container=\"app\"}} {used}
# TYPE container_spec_memory_limit_bytes gauge
container_spec_memory_limit_bytes{{pod=\"{POD}\",container=\"app\"}} 1000
"
    )
}

fn alerts(c: &Collector) -> Vec<serde_json::Value> {
    let (code, body) = c.get("/api/v1/alerts");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["alerts"].as_array().unwrap().clone()
}

fn alert_state(c: &Collector, name: &str) -> Option<String> {
    alerts(c)
        .iter()
        .find(|a| a["labels"]["alertname"] == name)
        .map(|a| a["state"].as_str().unwrap().to_string())
}

fn is_rfc3339(s: &str) -> bool {
    s.len() >= 20 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T' && s.ends_with('Z')
}

/// Asserts the version-4 envelope and returns the single alert in it.
fn check_payload(
    m: &serde_json::Value,
    receiver: &str,
    status: &str,
    alertname: &str,
) -> serde_json::Value {
    assert_eq!(m["version"], "4", "{m:#}");
    assert_eq!(m["status"], status, "{m:#}");
    assert_eq!(m["receiver"], receiver, "{m:#}");
    // group_by: [alertname, workspace_id]; the alerts have no workspace_id.
    assert_eq!(
        m["groupLabels"],
        serde_json::json!({ "alertname": alertname }),
        "{m:#}"
    );
    assert_eq!(m["commonLabels"]["alertname"], alertname, "{m:#}");
    assert_eq!(m["commonLabels"]["pod"], POD, "{m:#}");
    assert_eq!(m["truncatedAlerts"], 0, "{m:#}");
    assert!(
        m["groupKey"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{{alertname=\"{alertname}\"}}")),
        "{m:#}"
    );
    assert!(
        m["externalURL"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{m:#}"
    );
    let list = m["alerts"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{m:#}");
    let a = list[0].clone();
    assert_eq!(a["status"], status, "{m:#}");
    assert_eq!(
        a["labels"], m["commonLabels"],
        "one alert: all labels common"
    );
    assert_eq!(a["annotations"], m["commonAnnotations"]);
    assert!(
        is_rfc3339(a["startsAt"].as_str().unwrap()),
        "startsAt: {a:#}"
    );
    assert!(is_rfc3339(a["endsAt"].as_str().unwrap()), "endsAt: {a:#}");
    let url = a["generatorURL"].as_str().unwrap();
    assert!(
        url.starts_with(m["externalURL"].as_str().unwrap()) && url.contains("/graph?g0.expr="),
        "generatorURL: {url}"
    );
    let fp = a["fingerprint"].as_str().unwrap();
    assert!(
        fp.len() == 16 && fp.bytes().all(|b| b.is_ascii_hexdigit()),
        "fingerprint: {fp}"
    );
    a
}

#[test]
fn seed_rules_fire_resolve_and_inhibit_through_webhooks() {
    let dir = Scratch::new("alerting");
    let certs = make_certs(&dir, &["edge-1"]);
    let hook = WebhookReceiver::start();
    let app = SwitchableTarget::start(APP_METRICS);
    let cadvisor = SwitchableTarget::start(&container_metrics(400));

    let rules = dir.path("rules.yml");
    std::fs::write(&rules, rules_with_short_for("2s")).unwrap();
    let am = dir.path("alertmanager.yml");
    std::fs::write(&am, alertmanager_config(&hook)).unwrap();
    let collector = Collector::start_with_args(
        &dir.path("collector"),
        &certs,
        0,
        0,
        &[
            "--rule-file".into(),
            rules.display().to_string(),
            "--alertmanager-config".into(),
            am.display().to_string(),
        ],
    );
    let agent_cfg = dir.path("agent.toml");
    std::fs::write(
        &agent_cfg,
        format!(
            "[[scrape]]\nurl = \"{}\"\njob = \"brain-ai-app\"\n\n[[scrape]]\nurl = \"{}\"\njob = \"cadvisor\"\n",
            app.url(),
            cadvisor.url()
        ),
    )
    .unwrap();
    let _agent = Agent::start_with_env(
        &dir,
        "edge-1",
        &collector.quic.to_string(),
        &[
            "--interval",
            "1s",
            "--config",
            &agent_cfg.display().to_string(),
        ],
        &[("POD_NAME", POD)],
    );

    // 1. The agent scrapes the healthy app; the rules run and nothing fires.
    wait_for(
        Duration::from_secs(30),
        || {
            collector
                .export("up{job=\"brain-ai-app\"}")
                .iter()
                .any(|(m, pts)| m["pod"] == POD && pts.iter().any(|p| p.1 == 1.0))
        },
        "up{job=\"brain-ai-app\"} 1 stored",
    );
    std::thread::sleep(Duration::from_secs(3));
    let (_, rules_body) = collector.get("/api/v1/rules");
    let rj: serde_json::Value = serde_json::from_str(&rules_body).unwrap();
    assert_eq!(rj["data"]["groups"].as_array().unwrap().len(), 4);
    for g in rj["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(r["health"], "ok", "{r:#}");
        }
    }
    assert!(alerts(&collector).is_empty(), "{:#?}", alerts(&collector));
    assert!(hook.all().is_empty(), "{:#?}", hook.all());

    // 2-3. The app goes down: BrainAICompleteOutage fires and reaches pagerduty-critical.
    let down_at = Instant::now();
    app.set_down(true);
    let fired = hook
        .wait_for("/pagerduty-critical", Duration::from_secs(30), |m| {
            m["status"] == "firing"
        })
        .unwrap_or_else(|| {
            panic!(
                "no firing notification; alerts {:#?}; received {:#?}; log:\n{}",
                alerts(&collector),
                hook.all(),
                collector.log.text()
            )
        });
    let a = check_payload(
        &fired.body,
        "pagerduty-critical",
        "firing",
        "BrainAICompleteOutage",
    );
    assert!(
        fired.at - down_at >= Duration::from_secs(2),
        "fired before `for`"
    );
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["labels"]["escalate"], "pagerduty");
    assert_eq!(a["labels"]["team"], "devops");
    assert_eq!(a["labels"]["job"], "brain-ai-app");
    assert_eq!(a["labels"]["instance"], app.addr.to_string());
    assert_eq!(a["annotations"]["summary"], "Brain AI is completely down");
    assert_eq!(
        a["annotations"]["runbook"],
        "https://docs.company.com/runbooks/brain-ai-outage"
    );
    assert!(a["generatorURL"].as_str().unwrap().contains("brain-ai-app"));
    // Routed by the seed tree: nothing to the default or Slack receivers.
    assert!(hook.all().iter().all(|r| r.path == "/pagerduty-critical"));

    // 6a. While the critical alert fires, the warning for the same pod fires but is inhibited.
    cadvisor.set_body(&container_metrics(900));
    wait_for(
        Duration::from_secs(30),
        || alert_state(&collector, "HighMemoryUsage").as_deref() == Some("firing"),
        "HighMemoryUsage firing",
    );
    // Longer than group_wait plus two group_intervals of the warning's group.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        alert_state(&collector, "HighMemoryUsage").as_deref(),
        Some("firing")
    );
    assert_eq!(
        alert_state(&collector, "BrainAICompleteOutage").as_deref(),
        Some("firing")
    );
    assert!(
        hook.on("/slack-warnings").is_empty(),
        "the warning was delivered while the critical alert fired: {:#?}",
        hook.on("/slack-warnings")
    );
    let (_, metrics) = collector.get("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l
                .starts_with("vigil_collector_rule_group_evaluations_total{trigger=\"samples\"}")),
        "early evaluations are counted"
    );

    // 4-5. The app recovers: the resolved notification arrives.
    let recovered_at = Instant::now();
    app.set_down(false);
    let resolved = hook
        .wait_for("/pagerduty-critical", Duration::from_secs(30), |m| {
            m["status"] == "resolved"
        })
        .expect("resolved notification for BrainAICompleteOutage");
    let r = check_payload(
        &resolved.body,
        "pagerduty-critical",
        "resolved",
        "BrainAICompleteOutage",
    );
    assert_eq!(r["fingerprint"], a["fingerprint"]);
    assert_eq!(r["startsAt"], a["startsAt"]);
    let ends = r["endsAt"].as_str().unwrap();
    assert!(!ends.starts_with("0001"), "endsAt set: {ends}");
    assert!(
        ends[..19] >= r["startsAt"].as_str().unwrap()[..19],
        "endsAt {ends} before startsAt {}",
        r["startsAt"]
    );

    // 6b. Now the warning is no longer inhibited, and is delivered. (Inhibition ends when
    // the critical alert resolves, not when its resolved notification is sent, so with each
    // group on its own group_interval either notification may come first.)
    let warned = hook
        .wait_for("/slack-warnings", Duration::from_secs(30), |m| {
            m["status"] == "firing"
        })
        .expect("the warning is delivered once the critical alert resolved");
    assert!(warned.at > recovered_at);
    let w = check_payload(&warned.body, "slack-warnings", "firing", "HighMemoryUsage");
    assert_eq!(w["labels"]["severity"], "warning");
    assert_eq!(w["labels"]["job"], "cadvisor");
    assert_eq!(w["labels"]["container"], "app");
    assert_eq!(w["annotations"]["summary"], "Memory usage above 85%");
    assert_eq!(
        w["annotations"]["description"],
        format!("Pod {POD} memory: 9000%")
    );

    // The warning resolves too.
    cadvisor.set_body(&container_metrics(400));
    let wr = hook
        .wait_for("/slack-warnings", Duration::from_secs(30), |m| {
            m["status"] == "resolved"
        })
        .expect("resolved warning");
    check_payload(&wr.body, "slack-warnings", "resolved", "HighMemoryUsage");
    let paths: std::collections::BTreeSet<String> =
        hook.all().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/pagerduty-critical", "/slack-warnings"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

#[test]
fn a_prometheus_can_use_the_collector_as_its_alertmanager() {
    let dir = Scratch::new("prom-to-vigil");
    let certs = make_certs(&dir, &[]);
    let hook = WebhookReceiver::start();
    let am = dir.path("alertmanager.yml");
    std::fs::write(
        &am,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n\
             receivers:\n  - name: hook\n    webhook_configs: [{{url: '{}'}}]\n",
            hook.url("prom")
        ),
    )
    .unwrap();
    let c = Collector::start_with_args(
        &dir.path("collector"),
        &certs,
        0,
        0,
        &["--alertmanager-config", am.to_str().unwrap()],
    );
    // The rule fires for about 12 s, then its expression is empty and Prometheus sends the
    // resolved alert.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 12;
    std::fs::write(
        dir.path("rules.yml"),
        format!(
            "groups:\n  - name: g\n    rules:\n      - alert: FromPrometheus\n        expr: vector(time()) < {until}\n        labels: {{severity: page}}\n        annotations: {{summary: 'raised by Prometheus'}}\n"
        ),
    )
    .unwrap();
    let _prom = Prometheus::start(
        &dir,
        &format!(
            "global:\n  evaluation_interval: 1s\nrule_files: ['{}']\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n",
            dir.path("rules.yml").display(),
            c.http
        ),
        // Prometheus drops alerts raised before it has discovered its Alertmanagers and
        // sends them again only after the resend delay (1m by default).
        &["--rules.alert.resend-delay=1s"],
    );
    let firing = hook
        .wait_for("/prom", Duration::from_secs(60), |b| {
            b["status"] == "firing"
        })
        .expect("the firing alert reaches the webhook through the collector");
    let a = &firing.body["alerts"][0];
    assert_eq!(
        a["labels"]["alertname"], "FromPrometheus",
        "{}",
        firing.body
    );
    assert_eq!(a["labels"]["severity"], "page");
    assert_eq!(a["annotations"]["summary"], "raised by Prometheus");
    let url = a["generatorURL"].as_str().unwrap();
    assert!(url.contains("/graph?g0.expr="), "Prometheus's link: {url}");
    assert_eq!(firing.body["receiver"], "hook");
    let (_, listed) = c.get("/api/v2/alerts");
    assert!(listed.contains("FromPrometheus"), "{listed}");

    let resolved = hook
        .wait_for("/prom", Duration::from_secs(60), |b| {
            b["status"] == "resolved"
        })
        .expect("the resolved alert reaches the webhook");
    assert_eq!(
        resolved.body["alerts"][0]["labels"]["alertname"],
        "FromPrometheus"
    );
}
