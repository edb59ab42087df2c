//! `/api/v1/metadata` end to end: an agent scrapes a target whose page carries `# TYPE` and
//! `# HELP` lines, and an OpenMetrics target with `# UNIT` lines, while the real Prometheus
//! 2.42 scrapes the same pages, and the collector must
//! answer exactly what Prometheus answers for those families, for the same `metric`, `limit`
//! and `limit_per_metric` parameters (and the same error for a bad one). Host metrics carry
//! node_exporter's HELP; remote_write metadata is kept; everything survives a restart.
// Blocking sleeps are what these synchronous, process-driving tests want.
#![allow(clippy::disallowed_methods)]

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use util::*;
use vigil_collector::api::remote_write::{MetricMetadata, WriteRequest};

const PAGE: &str = "# HELP app_requests_total Requests served, by \"code\".\n\
# TYPE app_requests_total counter\n\
app_requests_total{code=\"200\"} 10\n\
app_requests_total{code=\"500\"} 1\n\
# HELP app_temperature_celsius Temperature \\\\ in the rack.\n\
# TYPE app_temperature_celsius gauge\n\
app_temperature_celsius 21.5\n\
# HELP app_latency_seconds Request latency.\n\
# TYPE app_latency_seconds histogram\n\
app_latency_seconds_bucket{le=\"0.1\"} 3\n\
app_latency_seconds_bucket{le=\"+Inf\"} 4\n\
app_latency_seconds_sum 0.9\n\
app_latency_seconds_count 4\n\
# TYPE app_untyped untyped\n\
app_untyped 1\n\
# HELP app_help_only Only a help line.\n\
app_help_only 2\n";

/// An OpenMetrics page: units are only read in this format.
const OM_PAGE: &str = "# TYPE app_om_latency_seconds histogram\n\
# UNIT app_om_latency_seconds seconds\n\
# HELP app_om_latency_seconds Latency, in OpenMetrics.\n\
app_om_latency_seconds_bucket{le=\"0.1\"} 3\n\
app_om_latency_seconds_bucket{le=\"+Inf\"} 4\n\
app_om_latency_seconds_sum 0.9\n\
app_om_latency_seconds_count 4\n\
# TYPE app_om_queue gauge\n\
# HELP app_om_queue Queue length.\n\
app_om_queue 2\n\
# EOF\n";

/// App families on both pages.
const FAMILIES: usize = 7;

/// Serves one page on every request until dropped.
struct PageTarget {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl PageTarget {
    fn start(content_type: &'static str, page: &'static str) -> PageTarget {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).ok();
                        conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
                        let mut buf = [0u8; 4096];
                        let _ = conn.read(&mut buf);
                        let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}", page.len());
                        let _ = conn.write_all(resp.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        PageTarget { addr, stop }
    }
}

impl Drop for PageTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn start_prometheus(dir: &Scratch, targets: &[SocketAddr]) -> Prometheus {
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    Prometheus::start(
        dir,
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
        &[],
    )
}

fn json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (code, body) = http_get(addr, path).unwrap();
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (code, v)
}

/// The `data` object restricted to the `app_*` families (the agent also reports host
/// metrics, Prometheus its own scrape of nothing else).
fn app_families(v: &Value) -> serde_json::Map<String, Value> {
    v["data"]
        .as_object()
        .unwrap_or_else(|| panic!("no data object: {v}"))
        .iter()
        .filter(|(k, _)| k.starts_with("app_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn metadata_matches_prometheus_for_the_same_scrape_and_survives_a_restart() {
    let dir = Scratch::new("metadata");
    let certs = make_certs(&dir, &["m1"]);
    let target = PageTarget::start("text/plain; version=0.0.4", PAGE);
    let om = PageTarget::start(
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        OM_PAGE,
    );
    let prom = start_prometheus(&dir, &[target.addr, om.addr]);
    let mut c = Collector::start(&dir.path("collector"), &certs, 0, 0);
    let url = format!("http://{}/metrics", target.addr);
    let om_url = format!("http://{}/metrics", om.addr);
    let agent = Agent::start(
        &dir,
        "m1",
        &c.quic.to_string(),
        &["--interval", "200ms", "--scrape", &url, "--scrape", &om_url],
    );
    wait_for(
        Duration::from_secs(60),
        || app_families(&json(prom.addr, "/api/v1/metadata").1).len() == FAMILIES,
        "prometheus has the target's metadata",
    );
    wait_for(
        Duration::from_secs(60),
        || app_families(&json(c.http, "/api/v1/metadata").1).len() == FAMILIES,
        "vigil has the target's metadata",
    );

    for path in [
        "/api/v1/metadata",
        "/api/v1/metadata?metric=app_requests_total",
        "/api/v1/metadata?metric=app_untyped",
        "/api/v1/metadata?metric=app_help_only",
        "/api/v1/metadata?metric=app_latency_seconds",
        "/api/v1/metadata?metric=app_om_latency_seconds",
        "/api/v1/metadata?metric=nope",
        "/api/v1/metadata?metric=app_temperature_celsius&limit=1",
        "/api/v1/metadata?metric=app_temperature_celsius&limit=0",
    ] {
        let (pc, pv) = json(prom.addr, path);
        let (vc, vv) = json(c.http, path);
        assert_eq!(pc, vc, "{path}: status");
        assert_eq!(pv["status"], vv["status"], "{path}");
        assert_eq!(app_families(&pv), app_families(&vv), "{path}");
    }
    let path = "/api/v1/metadata?limit=x";
    let (pc, pv) = json(prom.addr, path);
    let (vc, vv) = json(c.http, path);
    assert_eq!(
        (pc, &pv["errorType"], &pv["error"]),
        (vc, &vv["errorType"], &vv["error"]),
        "{path}"
    );
    // Prometheus 2.42 ignores `limit_per_metric` (later versions read it as Vigil does, with
    // the same error for a non-number), so it is checked on Vigil alone.
    let (vc, vv) = json(c.http, "/api/v1/metadata?limit_per_metric=1.5");
    assert_eq!(vc, 400);
    assert_eq!(vv["error"], "limit_per_metric must be a number");
    // The unit came through, from the agent's parse to the API.
    let (_, v) = json(c.http, "/api/v1/metadata?metric=app_om_latency_seconds");
    assert_eq!(
        v["data"]["app_om_latency_seconds"][0]["unit"], "seconds",
        "{v}"
    );
    // `limit` counts families: with seven app families and host ones, two come back.
    let (_, v) = json(c.http, "/api/v1/metadata?limit=2");
    assert_eq!(v["data"].as_object().unwrap().len(), 2);

    // Host metrics carry node_exporter's TYPE and HELP.
    let (_, v) = json(c.http, "/api/v1/metadata?metric=node_cpu_seconds_total");
    assert_eq!(
        v["data"]["node_cpu_seconds_total"],
        serde_json::json!([{"type": "counter", "help": "Seconds the CPUs spent in each mode.", "unit": ""}])
    );

    // remote_write metadata is kept, with its unit.
    let req = WriteRequest {
        timeseries: vec![],
        metadata: vec![MetricMetadata {
            r#type: 3,
            metric_family_name: "rw_latency_seconds".into(),
            help: "Latency from remote_write.".into(),
            unit: "seconds".into(),
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&prost::Message::encode_to_vec(&req))
        .unwrap();
    let (code, text) = http_request(
        c.http,
        "POST",
        "/api/v1/write",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
        ],
        &body,
    )
    .unwrap();
    assert_eq!(code, 204, "{text}");
    let want = serde_json::json!([{"type": "histogram", "help": "Latency from remote_write.", "unit": "seconds"}]);
    let (_, v) = json(c.http, "/api/v1/metadata?metric=rw_latency_seconds");
    assert_eq!(v["data"]["rw_latency_seconds"], want);

    // Everything survives a restart (the store is persisted within a second of a change).
    drop(agent);
    std::thread::sleep(Duration::from_millis(1500));
    c.kill9();
    c.restart();
    let (_, v) = json(c.http, "/api/v1/metadata");
    assert_eq!(v["data"]["rw_latency_seconds"], want);
    assert_eq!(app_families(&v).len(), FAMILIES, "{v}");
    let (_, m) = http_get(c.http, "/metrics").unwrap();
    assert!(m.contains("vigil_collector_metadata_families"), "{m}");
}
