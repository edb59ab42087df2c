//! Remote action triggers on the real binaries: the collector's
//! `POST /api/v1/agents/{agent}/actions/{name}` (and `vigil-collector actions run`) reaches the
//! agent over its QUIC connection. An allow-listed action runs (its script writes a marker)
//! and the answer carries its exit code and output; an action without `allow_remote` and an
//! unknown action are refused, audited by the agent and logged and counted by the collector;
//! an unknown agent is a 404 and a slow action past the request's timeout a 504; and the
//! cooldown of a remotely triggered action survives a `kill -9` of the agent.
#![allow(clippy::disallowed_methods)]

mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use util::*;

/// Writes the agent's config: `mark` (remote allowed, 1 h cooldown), `local_only` (remote
/// not allowed) and `slow` (remote allowed, sleeps 3 s). Returns (config, marker, local marker).
fn agent_config(dir: &Scratch, c: &Collector, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let marker = dir.path("marker");
    let local_marker = dir.path("local-marker");
    let script = dir.path("mark.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$VIGIL_TRIGGER $VIGIL_REQUESTED_BY\" >> \"$1\"\necho marked \"$VIGIL_ACTION\"\nexit 0\n",
    )
    .unwrap();
    let slow = dir.path("slow.sh");
    std::fs::write(&slow, "#!/bin/sh\nsleep 3\n").unwrap();
    for s in [&script, &slow] {
        std::fs::set_permissions(s, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let config = dir.path("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
collectors = ["{quic}"]
certs_dir = "{certs}"

[[actions]]
name = "mark"
command = "{script}"
args = ["{marker}"]
timeout = "5s"
cooldown = "1h"
allow_remote = true

[[actions]]
name = "local_only"
command = "{script}"
args = ["{local}"]
allow_remote = false

[[actions]]
name = "slow"
command = "{slow}"
timeout = "10s"
allow_remote = true
"#,
            quic = c.quic,
            certs = dir.path(&format!("agent-{name}")).display(),
            script = script.display(),
            marker = marker.display(),
            local = local_marker.display(),
            slow = slow.display(),
        ),
    )
    .unwrap();
    (config, marker, local_marker)
}

fn start_agent(dir: &Scratch, c: &Collector, name: &str, config: &Path) -> Agent {
    let a = Agent::start(
        dir,
        name,
        &c.quic.to_string(),
        &["--config", config.to_str().unwrap(), "--interval", "200ms"],
    );
    wait_agent_connected(&a, Duration::from_secs(30));
    a
}

fn audit(dir: &Scratch, name: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.path(&format!("{name}-data/remediation-audit.jsonl")))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Posts until the collector reaches the (re)connected agent: a 404 means its new connection
/// is not registered yet, a 502 or 504 that the request went to the connection of the agent
/// that was just killed (nothing ran there).
fn trigger(c: &Collector, agent: &str, action: &str, query: &str) -> (u16, serde_json::Value) {
    let mut last = None;
    wait_for(
        Duration::from_secs(40),
        || {
            let r = remote_action(c, agent, action, query);
            let done = !matches!(r.0, 404 | 502 | 504);
            last = Some(r);
            done
        },
        "the collector to know the agent",
    );
    last.unwrap()
}

#[test]
fn remote_trigger_runs_allow_listed_actions_and_refuses_the_rest() {
    let dir = Scratch::new("remote-trigger");
    let certs = make_certs(&dir, &["web-01"]);
    let c = Collector::start(&dir.path("collector"), &certs, 0, 0);
    let (config, marker, local_marker) = agent_config(&dir, &c, "web-01");
    let (code, _, err) = run(Command::new(bin("vigil-agent"))
        .args(["check-config", "--config"])
        .arg(&config));
    assert_eq!(code, 0, "{err}");
    let _a = start_agent(&dir, &c, "web-01", &config);

    // (a) An allow-listed action runs, and the answer carries its exit code and output.
    let (code, v) = trigger(&c, "web-01", "mark", "");
    assert_eq!(code, 200, "{v}");
    let d = &v["data"];
    assert_eq!(d["accepted"], true, "{v}");
    assert_eq!(d["outcome"], "ok", "{v}");
    assert_eq!(d["exit_code"], 0, "{v}");
    assert!(d["duration_ms"].as_u64().is_some(), "{v}");
    assert_eq!(d["stdout"], "marked mark\n", "{v}");
    assert_eq!(d["agent"], "web-01");
    let marks = lines(&marker);
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert!(
        marks[0].starts_with("remote collector:localhost@127.0.0.1:"),
        "the script sees the trigger and the collector's certificate identity: {marks:?}"
    );

    // (b) Not allow-listed, and unknown: refused with the reason, nothing runs.
    let (code, v) = remote_action(&c, "web-01", "local_only", "");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["accepted"], false, "{v}");
    assert_eq!(v["data"]["outcome"], "refused", "{v}");
    assert_eq!(
        v["data"]["reason"], "action is not allow-listed for remote requests",
        "{v}"
    );
    assert!(v["data"]["exit_code"].is_null(), "{v}");
    assert!(!local_marker.exists(), "a refused action must not run");
    let (code, v) = remote_action(&c, "web-01", "rm_rf", "");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["accepted"], false, "{v}");
    assert_eq!(v["data"]["reason"], "unknown action", "{v}");
    // The cooldown of `mark` refuses an immediate second run, through the CLI this time.
    let (code, out, err) = run(Command::new(bin("vigil-collector"))
        .args(["actions", "run", "--agent", "web-01", "--http"])
        .arg(c.http.to_string())
        .arg("mark"));
    assert_eq!(code, 1, "a refusal exits 1: {out}{err}");
    assert!(
        out.starts_with("web-01 mark: refused (cooling down for another"),
        "{out}{err}"
    );
    assert_eq!(lines(&marker).len(), 1, "the cooldown held");

    // The agent audited every refusal as a remote request from the collector.
    let records = audit(&dir, "web-01");
    let refused = |action: &str, reason: &str| {
        records.iter().any(|r| {
            r["action"] == action
                && r["outcome"] == "refused"
                && r["trigger"] == "remote"
                && r["reason"].as_str().is_some_and(|s| s.contains(reason))
                && r["requested_by"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("collector:localhost@"))
        })
    };
    assert!(refused("local_only", "not allow-listed"), "{records:?}");
    assert!(refused("rm_rf", "unknown action"), "{records:?}");
    assert!(refused("mark", "cooling down"), "{records:?}");
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "mark" && r["outcome"] == "ok" && r["exit_code"] == 0),
        "{records:?}"
    );
    // The collector logged the refusals with agent, action and reason, and counted them.
    wait_for(
        Duration::from_secs(5),
        || {
            c.log.text().lines().any(|l| {
                l.contains("remote action refused by the agent")
                    && l.contains("web-01")
                    && l.contains("local_only")
                    && l.contains("not allow-listed")
            })
        },
        "the collector's refusal log line",
    );
    assert_eq!(
        collector_metric(
            &c,
            "vigil_collector_remote_actions_total{result=\"refused\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        collector_metric(&c, "vigil_collector_remote_actions_total{result=\"ok\"}"),
        Some(1.0)
    );

    // An agent that is not connected is a 404; a run longer than the timeout is a 504.
    let (code, v) = remote_action(&c, "db-07", "mark", "");
    assert_eq!(code, 404, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("not connected"),
        "{v}"
    );
    let (code, v) = remote_action(&c, "web-01", "slow", "?timeout=1s");
    assert_eq!(code, 504, "{v}");
    assert_eq!(v["errorType"], "timeout", "{v}");

    // The runs and refusals reach the collector as remediation events.
    wait_for(
        Duration::from_secs(20),
        || {
            let (_, body) = c.get("/api/v1/events?kind=remediation");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let events = v["data"].as_array().cloned().unwrap_or_default();
            let has = |action: &str, outcome: &str| {
                events.iter().any(|e| {
                    e["agent"] == "web-01"
                        && e["labels"]["action"] == action
                        && e["fields"]["outcome"] == outcome
                        && e["fields"]["trigger"] == "remote"
                })
            };
            has("mark", "ok") && has("local_only", "refused") && has("slow", "ok")
        },
        "remote runs and refusals as remediation events",
    );
}

#[test]
fn remote_cooldown_survives_an_agent_crash() {
    let dir = Scratch::new("remote-cooldown");
    let certs = make_certs(&dir, &["web-02"]);
    let c = Collector::start(&dir.path("collector"), &certs, 0, 0);
    let (config, marker, _) = agent_config(&dir, &c, "web-02");
    let mut a = start_agent(&dir, &c, "web-02", &config);
    let (code, v) = trigger(&c, "web-02", "mark", "");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["outcome"], "ok", "{v}");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path("web-02-data/remediation-state.json")).unwrap(),
    )
    .unwrap();
    assert!(
        state["actions"]["mark"]["last_run_ms"].as_i64().is_some(),
        "{state}"
    );

    // A crash must not reset the cooldown.
    a.kill9();
    a.restart();
    wait_agent_connected(&a, Duration::from_secs(30));
    let (code, v) = trigger(&c, "web-02", "mark", "?timeout=10s");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["accepted"], false, "{v}");
    let reason = v["data"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("cooling down for another"), "{v}");
    let left: u64 = reason
        .trim_start_matches("cooling down for another ")
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!((3000..3600).contains(&left), "{reason}");
    assert_eq!(lines(&marker).len(), 1, "the action ran once");
    assert!(
        a.log.contains("remediation guard state restored"),
        "{}",
        a.log.text()
    );
}

/// Run with `cargo test -p vigil-tests --test remote_actions -- --ignored --nocapture` to
/// print the HTTP round trip of a remote trigger on the real (debug) binaries: a run of
/// `/bin/true` (guard state fsynced, process spawned, audit fsynced) and a refusal of an
/// unknown action (audit fsynced only), interleaved in one run so their ratio is fair.
#[test]
#[ignore]
fn measure_remote_trigger_round_trip() {
    let dir = Scratch::new("remote-bench");
    let certs = make_certs(&dir, &["bench"]);
    let c = Collector::start(&dir.path("collector"), &certs, 0, 0);
    let config = dir.path("agent.toml");
    std::fs::write(
        &config,
        format!(
            "collectors = [\"{}\"]\ncerts_dir = \"{}\"\n\n[[actions]]\nname = \"true\"\ncommand = \"/bin/true\"\ncooldown = \"0s\"\nflap_max_runs = 1000\nflap_window = \"1s\"\nallow_remote = true\n",
            c.quic,
            dir.path("agent-bench").display()
        ),
    )
    .unwrap();
    let _a = start_agent(&dir, &c, "bench", &config);
    trigger(&c, "bench", "true", "");
    let n = 200;
    let (mut runs, mut refusals) = (Vec::new(), Vec::new());
    for _ in 0..n {
        for (action, out) in [("true", &mut runs), ("nope", &mut refusals)] {
            let t = std::time::Instant::now();
            let (code, v) = remote_action(&c, "bench", action, "");
            out.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(code, 200, "{v}");
        }
    }
    for (name, v) in [("run /bin/true", &mut runs), ("refusal", &mut refusals)] {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{name}: n={n} median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
            v[n / 2],
            v[n * 9 / 10],
            v[n * 99 / 100]
        );
    }
    println!(
        "run/refusal median ratio {:.2}",
        runs[n / 2] / refusals[n / 2]
    );
}
