//! Check state and events as series, on the real binaries: a scrape target's gauge jumps,
//! the agent's threshold check fires and its anomaly check flags the jump. The agent's own
//! `/metrics` shows the per-series anomaly score and count; at the collector the shipped
//! `vigil_check_firing`/`vigil_anomalies_total` series and the `vigil_agent_event` series
//! derived from the events answer `/api/v1/query`, and rules over each of them fire
//! (`/api/v1/alerts`). `vigil-agent status` lists the firing check and the recent anomaly.
#![allow(clippy::disallowed_methods)]

mod util;

use std::sync::atomic::Ordering;
use std::time::Duration;
use util::*;

/// The `data.result` array of an instant query.
fn query(c: &Collector, q: &str) -> Vec<serde_json::Value> {
    let (code, body) = c.get(&format!("/api/v1/query?query={}", urlencode(q)));
    assert_eq!(code, 200, "{q}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Names of the alerts in state `firing`.
fn firing_alerts(c: &Collector) -> Vec<String> {
    let (code, body) = c.get("/api/v1/alerts");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == "firing")
        .filter_map(|a| a["labels"]["alertname"].as_str().map(String::from))
        .collect()
}

/// The value of the sample on the agent's `/metrics` whose line starts with `name{` and
/// contains every label in `labels` (`name="value"` pairs).
fn agent_metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn anomalies_and_check_state_are_series_that_rules_alert_on() {
    let dir = Scratch::new("anomseries");
    let certs = make_certs(&dir, &["anom"]);
    let rules = dir.path("rules.yml");
    std::fs::write(
        &rules,
        r#"groups:
  - name: edge
    interval: 1s
    rules:
      - alert: GaugeHigh
        expr: vigil_check_firing{check="gauge_high"} == 1
      - alert: GaugeAnomalyEvent
        expr: sum by (agent, check, metric) (sum_over_time(vigil_agent_event{kind="anomaly", state="firing"}[5m])) > 0
      - alert: GaugeAnomalyRate
        expr: increase(vigil_anomalies_total{check="gauge_anomaly"}[5m]) > 0
"#,
    )
    .unwrap();
    let c = Collector::start_with_args(
        &dir.path("collector"),
        &certs,
        0,
        0,
        &["--rule-file", rules.to_str().unwrap()],
    );
    let t = CounterTarget::start();
    let config = dir.path("agent.toml");
    std::fs::write(
        &config,
        r#"
[[checks]]
name = "gauge_high"
select = ["test_gauge"]
condition = "value > 100"

[[checks]]
name = "gauge_anomaly"
select = ["test_gauge"]
condition = "anomaly"
"#,
    )
    .unwrap();
    let metrics_port = free_tcp_port();
    let metrics_addr: std::net::SocketAddr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    let a = Agent::start(
        &dir,
        "anom",
        &c.quic.to_string(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--interval",
            "100ms",
            "--scrape",
            &t.url(),
            "--metrics-listen",
            &metrics_addr.to_string(),
        ],
    );
    let agent_metrics = || {
        http_get(metrics_addr, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    };
    let gauge_labels = [r#"metric="test_gauge""#, r#"host="anom""#, r#"job="#];
    // The score is exported per watched series from the first cycles on (0 while learning).
    wait_for(
        Duration::from_secs(20),
        || {
            let text = agent_metrics();
            agent_metric(
                &text,
                "vigil_anomaly_score",
                &[&gauge_labels[..], &[r#"check="gauge_anomaly""#]].concat(),
            )
            .is_some_and(|s| (0.0..=1.0).contains(&s))
        },
        "vigil_anomaly_score for test_gauge on the agent's /metrics",
    );
    // Let the detector learn the steady gauge; nothing fires meanwhile.
    wait_for(
        Duration::from_secs(60),
        || stored_counter_values(&c, "anom").len() >= 150,
        "warm-up samples",
    );
    assert!(firing_alerts(&c).is_empty(), "{:?}", firing_alerts(&c));
    let quiet = query(&c, r#"vigil_check_firing{check="gauge_high"}"#);
    assert_eq!(quiet.len(), 1, "{quiet:?}");
    assert_eq!(quiet[0]["value"][1], "0", "{quiet:?}");
    assert_eq!(quiet[0]["metric"]["metric"], "test_gauge", "{quiet:?}");
    assert_eq!(quiet[0]["metric"]["host"], "anom", "{quiet:?}");

    t.gauge.store(1_000_000, Ordering::SeqCst);

    // The events are queryable as series at the collector.
    wait_for(
        Duration::from_secs(20),
        || !query(&c, r#"vigil_agent_event{kind="anomaly", state="firing"}"#).is_empty(),
        "the anomaly event as a series at the collector",
    );
    let ev = query(&c, r#"vigil_agent_event{kind="anomaly", state="firing"}"#);
    assert_eq!(ev.len(), 1, "{ev:?}");
    let m = &ev[0]["metric"];
    assert_eq!(m["agent"], "anom", "{m}");
    assert_eq!(m["check"], "gauge_anomaly", "{m}");
    assert_eq!(m["metric"], "test_gauge", "{m}");
    assert_eq!(m["host"], "anom", "{m}");
    let threshold = query(
        &c,
        r#"vigil_agent_event{kind="threshold", check="gauge_high"}"#,
    );
    assert_eq!(threshold.len(), 1, "{threshold:?}");
    assert_eq!(threshold[0]["metric"]["state"], "firing");
    let firing = query(&c, r#"vigil_check_firing{check="gauge_high"} == 1"#);
    assert_eq!(firing.len(), 1, "{firing:?}");

    // Each rule fires: on the shipped firing gauge, on the event series, on the counter.
    wait_for(
        Duration::from_secs(30),
        || {
            let f = firing_alerts(&c);
            ["GaugeHigh", "GaugeAnomalyEvent", "GaugeAnomalyRate"]
                .iter()
                .all(|n| f.iter().any(|x| x == n))
        },
        "GaugeHigh, GaugeAnomalyEvent and GaugeAnomalyRate firing",
    );

    // The agent's /metrics has the anomaly counted for the series, and the check firing.
    let text = agent_metrics();
    let anomalies = agent_metric(
        &text,
        "vigil_anomalies_total",
        &[&gauge_labels[..], &[r#"check="gauge_anomaly""#]].concat(),
    )
    .unwrap_or_else(|| panic!("no vigil_anomalies_total for test_gauge:\n{text}"));
    assert!(anomalies >= 1.0, "{text}");
    assert_eq!(
        agent_metric(
            &text,
            "vigil_check_firing",
            &[&gauge_labels[..], &[r#"check="gauge_high""#]].concat()
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE vigil_anomalies_total counter"),
        "{text}"
    );

    // Status lists the firing check and the recent anomaly.
    let (code, st) = a.status();
    assert_eq!(code, 0, "{st}");
    let active = st["active_checks"].as_array().cloned().unwrap_or_default();
    assert!(
        active
            .iter()
            .any(|x| x["check"] == "gauge_high" && x["firing"] == true),
        "{st}"
    );
    assert!(
        active.iter().any(|x| x["check"] == "gauge_anomaly"
            && x["last_anomaly_score"].as_f64().is_some_and(|s| s >= 0.999)),
        "{st}"
    );
    let (_, out, _) = run(std::process::Command::new(bin("vigil-agent"))
        .args(["status", "--status-socket"])
        .arg(&a.socket));
    assert!(
        out.contains("active:     FIRING threshold gauge_high"),
        "{out}"
    );
    assert!(out.contains("anomaly gauge_anomaly"), "{out}");

    // Exactly once: per event time, the event samples add up to the events the collector
    // lists (an event arriving between the two requests only adds a later time).
    let (_, body) = c.get("/api/v1/events?kind=anomaly&limit=10000");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut per_time = std::collections::BTreeMap::<i64, usize>::new();
    for e in listed["data"].as_array().unwrap() {
        *per_time
            .entry(e["timestamp_ms"].as_i64().unwrap())
            .or_default() += 1;
    }
    assert!(!per_time.is_empty(), "{body}");
    let mut stored = std::collections::BTreeMap::<i64, usize>::new();
    for (_, points) in c.export(r#"vigil_agent_event{kind="anomaly"}"#) {
        for (ts, v) in points {
            if per_time.contains_key(&ts) {
                *stored.entry(ts).or_default() += v as usize;
            }
        }
    }
    assert_eq!(stored, per_time, "event samples vs events listed: {body}");
}
