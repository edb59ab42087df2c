//! Notification benchmark (plain binary, no harness): how long rendering a Slack, PagerDuty
//! and email message takes for groups of 1, 10 and 100 alerts with Alertmanager's default
//! templates, and how long a crash-safe notification log snapshot (temp file, fsync, rename,
//! directory fsync) takes for 1 000 and 10 000 entries.
//!
//! `cargo bench -p vigil-collector --profile quick --bench notify`

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use vigil_collector::notify::alert::Alert;
use vigil_collector::notify::nflog::{Nflog, NflogEntry};
use vigil_collector::notify::templates::{default_set, notify_data};
use vigil_collector::notify::{email, pagerduty, slack, Config};

fn alerts(n: usize) -> Vec<Alert> {
    (0..n)
        .map(|i| {
            let instance = format!("host-{i}:9100");
            let mut a = Alert::firing(&[
                ("alertname", "HighCPU"),
                ("instance", &instance),
                ("job", "node"),
                ("severity", "page"),
            ]);
            a.annotations
                .insert("summary".into(), format!("CPU above 90% on {instance}"));
            a.generator_url = "http://vigil:9090/graph?g0.expr=cpu".into();
            a
        })
        .collect()
}

/// Runs `f` repeatedly for about half a second and returns the mean time per call.
fn time(mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_millis(500) {
        f();
        n += 1;
    }
    start.elapsed() / n
}

fn main() {
    let cfg = Config::load_str(
        r#"
route: {receiver: r, group_by: [alertname]}
receivers:
- name: r
  slack_configs:
  - api_url: http://127.0.0.1:1/
    fields: [{title: Instances, value: '{{ range .Alerts }}{{ .Labels.instance }} {{ end }}'}]
  pagerduty_configs: [{routing_key: k, url: 'http://127.0.0.1:1/'}]
  email_configs: [{to: a@example.org, from: b@example.org, smarthost: '127.0.0.1:25'}]
"#,
        "bench.yml",
    )
    .expect("bench config");
    let r = &cfg.receivers[0];
    let set = default_set();
    let gl = [("alertname".to_string(), "HighCPU".to_string())];
    println!("group size | slack render | pagerduty render | email render");
    for n in [1usize, 10, 100] {
        let a = alerts(n);
        let d = notify_data("r", &gl, &a, "http://vigil:9090", SystemTime::now());
        let s = time(|| {
            slack::message(&r.slack_configs[0], &set, &d).expect("slack");
        });
        let p = time(|| {
            pagerduty::request(
                &r.pagerduty_configs[0],
                &set,
                &d,
                "{}:{}",
                pagerduty::V1_URL,
            )
            .expect("pagerduty");
        });
        let e = time(|| {
            email::build(&r.email_configs[0], &set, &d).expect("email");
        });
        println!("{n:>10} | {s:>12.1?} | {p:>16.1?} | {e:>12.1?}");
    }

    let dir = std::env::temp_dir().join(format!("vigil-bench-nflog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("nflog entries | snapshot bytes | persist (write+fsync+rename+dir fsync)");
    for n in [1_000u64, 10_000] {
        let mut log = rt
            .block_on(async { Nflog::open(&dir, Duration::from_secs(3600)) })
            .expect("nflog");
        for i in 0..n {
            log.insert(
                (
                    format!("{{}}:{{alertname=\"A{i}\"}}"),
                    "r".into(),
                    "slack[0]".into(),
                ),
                NflogEntry {
                    firing: (i..i + 5).collect::<BTreeSet<u64>>(),
                    resolved: BTreeSet::new(),
                    at: SystemTime::now(),
                },
            );
        }
        let t = time(|| log.persist_now().expect("persist"));
        let bytes = std::fs::metadata(dir.join("nflog.json"))
            .map(|m| m.len())
            .unwrap_or(0);
        println!("{n:>13} | {bytes:>14} | {t:.2?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
