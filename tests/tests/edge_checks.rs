//! Edge checks on the real binaries: a scrape target's gauge breaches a threshold while the
//! collector is down; the agent runs the allow-listed action (a script writes a marker), its
//! cooldown holds on the next breach, and the anomaly the spike causes reaches the
//! collector's `/api/v1/analytics/anomalies` ahead of the agent's backlog.
#![allow(clippy::disallowed_methods)]

mod util;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;
use util::*;

#[test]
fn threshold_action_cooldown_and_anomaly_ahead_of_backlog() {
    let dir = Scratch::new("edge");
    let certs = make_certs(&dir, &["edge"]);
    let mut c = Collector::start(&dir.path("collector"), &certs, 0, 0);
    let t = CounterTarget::start();
    let marker = dir.path("marker");
    let script = dir.path("mark.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$VIGIL_CHECK $VIGIL_VALUE\" >> \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
collectors = ["{}"]
certs_dir = "{}"

[[checks]]
name = "gauge_high"
select = ["test_gauge"]
condition = "value > 100"
action = "mark"

[[checks]]
name = "gauge_anomaly"
select = ["test_gauge"]
condition = "anomaly"

[[actions]]
name = "mark"
command = "{}"
args = ["{}"]
timeout = "5s"
cooldown = "1h"
"#,
            c.quic,
            dir.path("agent-edge").display(),
            script.display(),
            marker.display()
        ),
    )
    .unwrap();
    let (code, _, err) = run(Command::new(bin("vigil-agent"))
        .args(["check-config", "--config"])
        .arg(&config));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(Command::new(bin("vigil-agent"))
        .args(["actions", "list", "--config"])
        .arg(&config));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mark") && out.contains("mark.sh"), "{out}");
    let (code, out, err) = run(Command::new(bin("vigil-agent"))
        .args(["actions", "run", "--dry-run", "--config"])
        .arg(&config)
        .arg("mark"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(!marker.exists(), "a dry run executes nothing");
    // A missing script is a configuration error naming the action.
    let broken = dir.path("broken.toml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("mark.sh", "missing.sh"),
    )
    .unwrap();
    let (code, _, err) = run(Command::new(bin("vigil-agent"))
        .args(["check-config", "--config"])
        .arg(&broken));
    assert_eq!(code, 64);
    assert!(err.contains("missing.sh"), "{err}");

    let a = Agent::start(
        &dir,
        "edge",
        &c.quic.to_string(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--interval",
            "100ms",
            "--max-in-flight",
            "1",
            "--scrape",
            &t.url(),
        ],
    );
    // Let the detector learn the steady gauge.
    wait_for(
        Duration::from_secs(40),
        || stored_counter_values(&c, "edge").len() >= 150,
        "warm-up samples",
    );
    c.kill9();
    std::thread::sleep(Duration::from_secs(20));
    // The breach happens while the collector is down: the action still runs, once.
    t.gauge.store(1_000_000, Ordering::SeqCst);
    wait_for(
        Duration::from_secs(10),
        || marker.exists(),
        "the action's marker file",
    );
    std::thread::sleep(Duration::from_secs(1));
    t.gauge.store(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(1));
    t.gauge.store(1_000_000, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(2));
    let marks = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(
        marks.lines().count(),
        1,
        "cooldown must hold the second breach: {marks}"
    );
    assert!(marks.starts_with("gauge_high 1000000"), "{marks}");
    let audit = std::fs::read_to_string(dir.path("edge-data/remediation-audit.jsonl")).unwrap();
    assert!(
        audit.contains("\"refused\"") && audit.contains("cooling down"),
        "the refused second run is audited: {audit}"
    );
    let (_, st) = a.status();
    let backlog = st["buffer"]["batches"].as_u64().unwrap();
    assert!(backlog >= 150, "backlog during the outage: {st}");

    c.restart();
    let mut seen_with_backlog = None;
    wait_for(
        Duration::from_secs(30),
        || {
            let (_, body) = c.get("/api/v1/analytics/anomalies");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let found = v["data"]
                .as_array()
                .is_some_and(|d| d.iter().any(|e| e["labels"]["__name__"] == "test_gauge"));
            if found {
                seen_with_backlog = Some(a.status().1["buffer"]["batches"].as_u64().unwrap_or(0));
            }
            found
        },
        "the anomaly at the collector",
    );
    let left = seen_with_backlog.unwrap();
    assert!(
        left > 0,
        "the anomaly should arrive while backlog remains (left {left} of {backlog})"
    );
    let (_, body) = c.get("/api/v1/events?kind=remediation");
    assert!(
        body.contains("\"mark\""),
        "the remediation run reaches the collector: {body}"
    );
}
