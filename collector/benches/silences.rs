//! Silences benchmark (plain binary, no harness). For each store size N it reports:
//!
//! - the silencing stage's cost per alert: one `Silences::mutes` call (the check each
//!   flushed alert and each `/api/v2/alerts` entry goes through) against N active
//!   silences, half of the alerts matched by one of them;
//! - the cost of one persisted change (`Silences::set`: snapshot serialised, written,
//!   fsynced, renamed, directory fsynced) with N silences stored.
//!
//! `cargo bench --profile quick -p vigil-collector --bench silences -- [N]...`
//! (default sizes 10 100 1000)

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use vigil_collector::notify::matcher::MatchType;
use vigil_collector::notify::silence::DEFAULT_RETENTION;
use vigil_collector::notify::{Silence, SilenceMatcher, Silences};

fn silence(i: usize, now: SystemTime) -> Silence {
    Silence {
        id: String::new(),
        matchers: vec![
            SilenceMatcher::new("alertname", MatchType::Equal, &format!("Alert{i}")),
            SilenceMatcher::new("instance", MatchType::Regex, &format!("web-{i}(:[0-9]+)?")),
            SilenceMatcher::new("env", MatchType::NotEqual, "dev"),
        ],
        starts_at: now,
        ends_at: now + Duration::from_secs(3600),
        updated_at: now,
        created_by: "bench".into(),
        comment: "maintenance window for the benchmark".into(),
    }
}

/// Alert label sets: even ones are matched by silence `i / 2`, odd ones by none.
fn alert(i: usize, n: usize) -> BTreeMap<String, String> {
    let k = (i / 2) % n;
    let name = if i.is_multiple_of(2) {
        format!("Alert{k}")
    } else {
        format!("Other{k}")
    };
    [
        ("alertname", name),
        ("instance", format!("web-{k}:9100")),
        ("job", "node".to_string()),
        ("env", "prod".to_string()),
        ("severity", "warning".to_string()),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b))
    .collect()
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 100, 1000]
    } else {
        sizes
    };
    println!("| silences | mutes() per alert | muted | persisted set() (write+fsync+rename) | snapshot bytes |");
    println!("| --- | --- | --- | --- | --- |");
    for n in sizes {
        let now = SystemTime::now();
        // Matching: an in-memory store of n active silences.
        let mem = Silences::in_memory(DEFAULT_RETENTION);
        for i in 0..n {
            mem.set(silence(i, now), now).expect("valid silence");
        }
        let alerts: Vec<BTreeMap<String, String>> = (0..1000).map(|i| alert(i, n)).collect();
        let calls = (2_000_000 / n).clamp(2_000, 200_000);
        let mut muted = 0usize;
        let t = Instant::now();
        for c in 0..calls {
            if !mem.mutes(&alerts[c % alerts.len()], now).is_empty() {
                muted += 1;
            }
        }
        let per_call = t.elapsed() / calls as u32;

        // Persistence: n silences in a store on disk, then time further changes.
        let dir =
            std::env::temp_dir().join(format!("vigil-silences-bench-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench dir");
        let disk = Silences::open(&dir, DEFAULT_RETENTION, None).expect("open store");
        for i in 0..n {
            disk.set(silence(i, now), now).expect("persisted set");
        }
        let changes = 20;
        let t = Instant::now();
        for i in 0..changes {
            disk.set(silence(n + i, now), now).expect("persisted set");
        }
        let per_set = t.elapsed() / changes as u32;
        let bytes = std::fs::metadata(dir.join("silences.json"))
            .map(|m| m.len())
            .unwrap_or(0);
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "| {n} | {:.2} µs | {:.0} % | {:.2} ms | {bytes} |",
            per_call.as_secs_f64() * 1e6,
            100.0 * muted as f64 / calls as f64,
            per_set.as_secs_f64() * 1e3
        );
    }
}
