//! The whole pipeline on the real binaries: an agent scrapes a target and collects host
//! metrics, ships them over QUIC with mutual TLS, and the collector serves them through
//! `/api/v1/export`, `/federate`, `/api/v1/agents`, `/metrics` and remote_write; the
//! `--query.*` limits stop queries with Prometheus's errors.
#![allow(clippy::disallowed_methods)]

mod util;

use std::process::Command;
use std::time::Duration;
use util::*;
use vigil_shared::model::{Labels, Point, Series};

#[test]
fn samples_flow_from_agent_to_collector_and_out_through_every_api() {
    let dir = Scratch::new("pipeline");
    let certs = make_certs(&dir, &["a1"]);
    let c = Collector::start(&dir.path("collector"), &certs, 0, 0);
    let target = CounterTarget::start();
    let agent = Agent::start(
        &dir,
        "a1",
        &c.quic.to_string(),
        &["--interval", "200ms", "--scrape", &target.url()],
    );

    wait_for(
        Duration::from_secs(30),
        || stored_counter_values(&c, "a1").len() >= 5,
        "scraped samples stored",
    );

    // Host metrics arrive under node_exporter's names, stamped with the agent's identity.
    for name in [
        "node_load1",
        "node_memory_MemAvailable_bytes",
        "node_cpu_seconds_total",
        "node_boot_time_seconds",
    ] {
        let found = c.export(&format!("{name}{{host=\"a1\"}}"));
        assert!(!found.is_empty(), "{name} missing");
        assert_eq!(found[0].0["instance"], "a1", "{name}: {:?}", found[0].0);
    }
    // The scrape follows Prometheus's conventions.
    let up = c.export(&format!("up{{instance=\"{}\"}}", target.addr));
    assert!(!up.is_empty(), "up series missing");
    assert!(up[0].1.iter().all(|(_, v)| *v == 1.0));
    assert!(!c.export("scrape_duration_seconds{host=\"a1\"}").is_empty());

    // Stored values are exactly what the target served, in order, once each.
    let stored = stored_counter_values(&c, "a1");
    assert!(
        stored.windows(2).all(|w| w[0] < w[1]),
        "values out of order: {stored:?}"
    );

    // /federate: latest samples in text format with timestamps.
    let (code, body) = c.get(&format!(
        "/federate?match[]={}",
        urlencode("test_scrapes_total")
    ));
    assert_eq!(code, 200, "{body}");
    let line = body
        .lines()
        .find(|l| l.starts_with("test_scrapes_total{"))
        .unwrap_or_else(|| panic!("no sample in {body}"));
    assert!(line.contains("host=\"a1\""), "{line}");
    assert_eq!(
        line.split_whitespace().count(),
        3,
        "expected value and timestamp: {line}"
    );
    let (code, body) = c.get("/federate");
    assert_eq!(code, 400, "{body}");
    let (code, body) = c.get(&format!("/api/v1/export?match[]={}", urlencode("sum(up)")));
    assert_eq!(code, 400);
    assert!(body.contains("bad_data"), "{body}");

    // /api/v1/agents lists the agent, connected, with its lag.
    let (code, body) = c.get("/api/v1/agents");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let a = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "a1")
        .expect("agent a1 listed");
    assert_eq!(a["connected"], true);
    assert!(a["batches"].as_u64().unwrap() >= 5);
    assert!(a["lag_seconds"].as_f64().unwrap() < 30.0);

    // The collector's own metrics.
    let (_, body) = c.get("/metrics");
    assert!(
        body.contains("vigil_collector_batches_total{outcome=\"stored\"}"),
        "{body}"
    );

    // remote_write in, export out.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let series = vec![Series {
        labels: Labels::metric("rw_test", &[("job", "rw")]),
        points: vec![
            Point {
                timestamp_ms: now - 2000,
                value: 1.5,
            },
            Point {
                timestamp_ms: now - 1000,
                value: 2.5,
            },
        ],
    }];
    let (code, text) = c.remote_write(&series);
    assert_eq!(code, 204, "{text}");
    let got = c.export("rw_test");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, vec![(now - 2000, 1.5), (now - 1000, 2.5)]);
    let (code, text) = http_request(
        c.http,
        "POST",
        "/api/v1/write",
        &[("Content-Encoding", "snappy")],
        b"garbage",
    )
    .unwrap();
    assert_eq!(code, 400, "{text}");

    // The agent's status, for a person and for a script.
    let (code, st) = agent.status();
    assert_eq!(code, 0, "{st}");
    assert_eq!(st["collector"]["connected"], true);
    assert!(st["collector"]["last_ack_ms"].as_i64().is_some());
    assert_eq!(st["targets"][0]["up"], true, "{st}");
    let (code, text, _) = run(Command::new(bin("vigil-agent"))
        .args(["status", "--status-socket"])
        .arg(&agent.socket));
    assert_eq!(code, 0);
    assert!(
        text.contains("connected to") && text.contains("UP"),
        "{text}"
    );
}

#[test]
fn status_fails_when_the_agent_is_not_running_or_cannot_reach_a_collector() {
    let dir = Scratch::new("status");
    let (code, _, err) = run(Command::new(bin("vigil-agent"))
        .args(["status", "--status-socket"])
        .arg(dir.path("none.sock")));
    assert_eq!(code, 1);
    assert!(err.contains("not running"), "{err}");

    make_certs(&dir, &["lonely"]);
    let dead = format!("127.0.0.1:{}", free_udp_port());
    let agent = Agent::start(&dir, "lonely", &dead, &["--interval", "200ms"]);
    wait_for(
        Duration::from_secs(10),
        || agent.socket.exists(),
        "status socket",
    );
    std::thread::sleep(Duration::from_secs(3));
    let (code, out, err) = run(Command::new(bin("vigil-agent"))
        .args(["status", "--max-ack-age", "1s", "--status-socket"])
        .arg(&agent.socket));
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("no collector acknowledgement"), "{err}");
    assert!(out.contains("NOT connected"), "{out}");
    let (_, st) = agent.status();
    assert!(st["buffer"]["batches"].as_u64().unwrap() >= 5, "{st}");
    assert_eq!(st["collector"]["collector"], dead.as_str(), "{st}");
    wait_for(
        Duration::from_secs(20),
        || agent.status().1["collector"]["last_error"].is_string(),
        "the connect failure in status",
    );
}

#[test]
fn query_flags_set_the_engine_limits_and_lookback() {
    let dir = Scratch::new("query-flags");
    let certs = make_certs(&dir, &[]);
    let c = Collector::start_with_args(
        &dir.path("collector"),
        &certs,
        0,
        0,
        &["--query.max-samples", "5", "--query.lookback-delta", "1m"],
    );
    let t0 = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 600)
        * 1000;
    let series = vec![Series {
        labels: Labels::metric("limited", &[("job", "q")]),
        points: (0..10)
            .map(|i| Point {
                timestamp_ms: t0 + i * 10_000,
                value: i as f64,
            })
            .collect(),
    }];
    let (code, text) = c.remote_write(&series);
    assert_eq!(code, 204, "{text}");
    let last = t0 / 1000 + 90;
    let query = |q: &str, t: i64| {
        let (code, body) = c.get(&format!("/api/v1/query?query={}&time={t}", urlencode(q)));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        (code, v)
    };
    // Ten samples in the window, five allowed: Prometheus's error, status and type.
    let (code, v) = query("count_over_time(limited[5m])", last);
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["errorType"], "execution");
    assert_eq!(
        v["error"],
        "query processing would load too many samples into memory in query execution"
    );
    let (code, v) = query("count_over_time(limited[30s])", last);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["result"][0]["value"][1], "4");
    // The lookback is one minute: 50 s after the last sample it is found, 70 s after not.
    let (_, v) = query("limited", last + 50);
    assert_eq!(v["data"]["result"][0]["value"][1], "9", "{v}");
    let (_, v) = query("limited", last + 70);
    assert_eq!(v["data"]["result"], serde_json::json!([]), "{v}");
}

#[test]
fn bad_configuration_exits_64_naming_every_problem() {
    let dir = Scratch::new("config");
    let cfg = dir.path("agent.toml");
    std::fs::write(
        &cfg,
        "collectors = [\"nope\"]\ncerts_dir = \"/nonexistent\"\n",
    )
    .unwrap();
    let (code, _, err) = run(Command::new(bin("vigil-agent"))
        .args(["check-config", "--config"])
        .arg(&cfg));
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("Invalid configuration") && err.contains("nope") && err.contains("ca.pem"),
        "{err}"
    );

    std::fs::write(&cfg, "collectors = [\"a:1\"]\nintervall = \"1s\"\n").unwrap();
    let (code, _, err) = run(Command::new(bin("vigil-agent"))
        .args(["check-config", "--config"])
        .arg(&cfg));
    assert_eq!(code, 64);
    assert!(
        err.contains("line 2") && err.contains("intervall") && err.contains("agent.toml"),
        "{err}"
    );

    let ccfg = dir.path("collector.toml");
    std::fs::write(&ccfg, "retention = \"forever\"\n").unwrap();
    let (code, _, err) = run(Command::new(bin("vigil-collector"))
        .args(["check-config", "--config"])
        .arg(&ccfg));
    assert_eq!(code, 64);
    assert!(
        err.contains("collector.toml") && err.contains("forever"),
        "{err}"
    );

    let certs = make_certs(&dir, &[]);
    std::fs::write(
        &ccfg,
        format!("certs_dir = \"{}\"\nretention = \"30d\"\n", certs.display()),
    )
    .unwrap();
    let (code, out, err) = run(Command::new(bin("vigil-collector"))
        .args(["check-config", "--config"])
        .arg(&ccfg));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("OK"));

    let (code, _, _) = run(Command::new(bin("vigil-agent")).args(["run", "--bogus-flag"]));
    assert_eq!(code, 64);
}
