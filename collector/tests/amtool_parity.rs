//! Parity with the real Alertmanager tooling (`/usr/bin/amtool`, Debian's prometheus-alertmanager).
//!
//! - `amtool check-config FILE` and `Config::load_file` accept and reject the same fixtures
//!   (every `*.yml` in `tests/notify/`).
//! - `amtool config routes test --tree --config.file=FILE label=value…` prints exactly what
//!   `routes_test_tree` + `routes_test` print, over hundreds of label sets on the loopback seed
//!   config and on fixtures with nested routes, `continue` and regex matchers.
//! - `amtool config routes --config.file=FILE` prints exactly what `routes_show` prints.
//!
//! amtool missing is a failure, not a skip: CI installs it.

use std::path::{Path, PathBuf};
use std::process::Command;

use vigil_collector::notify::matcher::openmetrics_escape;
use vigil_collector::notify::{
    parse_label_arg, routes_show, routes_test, routes_test_tree, Config,
};

const AMTOOL: &str = "/usr/bin/amtool";

fn amtool() -> Command {
    assert!(
        Path::new(AMTOOL).exists(),
        "{AMTOOL} is missing: install Debian's prometheus-alertmanager package"
    );
    Command::new(AMTOOL)
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/notify")
}

fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

fn all_fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("reading tests/notify")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    v.sort();
    v
}

/// One label argument as a user would type it for amtool: `name="escaped value"`.
fn label_arg(name: &str, value: &str) -> String {
    format!("{name}=\"{}\"", openmetrics_escape(value))
}

/// Runs amtool's routing test with `--tree` and returns its stdout.
fn amtool_routes_test(file: &Path, args: &[String]) -> String {
    let out = amtool()
        .args(["config", "routes", "test", "--tree"])
        .arg(format!("--config.file={}", file.display()))
        .args(args)
        .output()
        .expect("running amtool");
    assert!(
        out.status.success(),
        "amtool routes test failed for {} {args:?}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("amtool output is UTF-8")
}

/// Every combination of the given label values (`None` = label absent).
fn combinations(dims: &[(&str, &[Option<&str>])]) -> Vec<Vec<(String, String)>> {
    let mut sets: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (name, values) in dims {
        let mut next = Vec::new();
        for set in &sets {
            for v in *values {
                let mut s = set.clone();
                if let Some(v) = v {
                    s.push((name.to_string(), v.to_string()));
                }
                next.push(s);
            }
        }
        sets = next;
    }
    sets
}

/// Compares amtool and Vigil on every label set; returns how many were compared.
fn assert_routing_parity(file: &str, label_sets: &[Vec<(String, String)>]) -> usize {
    let path = fixture(file);
    let config = Config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut mismatches = Vec::new();
    for labels in label_sets {
        let args: Vec<String> = labels.iter().map(|(n, v)| label_arg(n, v)).collect();
        // Parse the arguments the way the CLI will, so that path is covered too.
        let parsed: Vec<(String, String)> = args
            .iter()
            .map(|a| parse_label_arg(a).unwrap_or_else(|e| panic!("{a}: {e}")))
            .collect();
        assert_eq!(&parsed, labels, "label arguments round-trip");
        let ours = format!(
            "{}{}",
            routes_test_tree(&config, &parsed),
            routes_test(&config, &parsed)
        );
        let theirs = amtool_routes_test(&path, &args);
        if ours != theirs {
            mismatches.push(format!(
                "{file} {args:?}\n--- amtool\n{theirs}--- vigil\n{ours}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} label sets differ:\n{}",
        mismatches.len(),
        label_sets.len(),
        mismatches.join("\n")
    );
    label_sets.len()
}

#[test]
fn check_config_accepts_and_rejects_like_amtool() {
    let fixtures = all_fixtures();
    assert!(
        fixtures.len() >= 20,
        "expected the fixture set, found {fixtures:?}"
    );
    let mut differences = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    for path in &fixtures {
        let out = amtool()
            .arg("check-config")
            .arg(path)
            .output()
            .expect("running amtool check-config");
        let amtool_ok = out.status.success();
        let ours = Config::load_file(path);
        if amtool_ok != ours.is_ok() {
            differences.push(format!(
                "{}: amtool {} / vigil {}\n  amtool: {}\n  vigil: {}",
                path.display(),
                if amtool_ok { "accepts" } else { "rejects" },
                if ours.is_ok() { "accepts" } else { "rejects" },
                String::from_utf8_lossy(&out.stdout).trim(),
                ours.err().map(|e| e.to_string()).unwrap_or_default()
            ));
        }
        if amtool_ok {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    assert!(
        accepted >= 5 && rejected >= 15,
        "{accepted} accepted, {rejected} rejected"
    );
}

#[test]
fn seed_configs_match_amtool() {
    let seed = Config::load_file(&fixture("seed.alertmanager.yml"));
    let msg = seed
        .expect_err("the seed config must be rejected")
        .to_string();
    assert!(
        msg.contains("global.slack_api_url: unsupported scheme"),
        "{msg}"
    );
    assert!(msg.contains("email_configs[0].subject"), "{msg}");
    assert!(msg.contains("headers: { Subject:"), "{msg}");
    Config::load_file(&fixture("seed.alertmanager.loopback.yml"))
        .unwrap_or_else(|e| panic!("loopback seed must load: {e}"));
}

#[test]
fn routes_show_matches_amtool() {
    for path in all_fixtures() {
        let Ok(config) = Config::load_file(&path) else {
            continue;
        };
        let out = amtool()
            .args(["config", "routes"])
            .arg(format!("--config.file={}", path.display()))
            .output()
            .expect("running amtool config routes");
        assert!(out.status.success(), "{}", path.display());
        assert_eq!(
            routes_show(&config),
            String::from_utf8_lossy(&out.stdout),
            "{}",
            path.display()
        );
    }
}

#[test]
fn routing_parity_loopback_seed() {
    let sets = combinations(&[
        (
            "severity",
            &[
                Some("critical"),
                Some("warning"),
                Some("info"),
                Some("debug"),
                None,
            ],
        ),
        ("escalate", &[Some("pagerduty"), Some("slack"), None]),
        ("team", &[Some("database"), Some("finance"), None]),
        ("alertname", &[Some("BrainAICompleteOutage")]),
    ]);
    assert!(assert_routing_parity("seed.alertmanager.loopback.yml", &sets) >= 45);
}

#[test]
fn routing_parity_nested() {
    let sets = combinations(&[
        (
            "team",
            &[Some("platform"), Some("data"), Some("other"), None],
        ),
        ("service", &[Some("db"), Some("web"), Some("kafka"), None]),
        ("severity", &[Some("critical"), Some("warning"), None]),
        ("env", &[Some("prod"), Some("dev"), None]),
    ]);
    assert!(assert_routing_parity("routing-nested.yml", &sets) >= 144);
}

#[test]
fn routing_parity_continue() {
    let sets = combinations(&[
        (
            "severity",
            &[Some("critical"), Some("warning"), Some("info"), None],
        ),
        ("team", &[Some("db"), Some("web"), None]),
        ("env", &[Some("prod"), None]),
        ("region", &[Some("eu"), Some("us")]),
        ("alertname", &[Some("Watchdog"), Some("HighLatency")]),
    ]);
    assert!(assert_routing_parity("routing-continue.yml", &sets) >= 96);
}

#[test]
fn routing_parity_regex() {
    let l = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let mut sets = vec![
        l(&[]),
        l(&[("service", "foo1")]),
        l(&[("service", "foo2"), ("severity", "critical")]),
        l(&[("service", "baz"), ("severity", "crit")]),
        l(&[("service", "foo3"), ("severity", "critical")]),
        l(&[("service", "xfoo1")]),
        l(&[("service", "foo1"), ("severity", "warning")]),
        l(&[("alertname", "DiskFull"), ("mountpoint", "/")]),
        l(&[("alertname", "DiskFull"), ("mountpoint", "/boot")]),
        l(&[("alertname", "DiskFull"), ("mountpoint", "/run/user/1000")]),
        l(&[("alertname", "Disk")]),
        l(&[("alertname", "FilesystemReadOnly"), ("mountpoint", "/data")]),
        l(&[("alertname", "Filesystem")]),
        l(&[("instance", "host:9100"), ("job", "custom")]),
        l(&[("instance", "host:9100"), ("job", "node")]),
        l(&[("instance", "host:91000"), ("job", "custom")]),
        l(&[("env", "")]),
        l(&[("env", "prod")]),
        l(&[("env", "prod"), ("msg", "a, b")]),
        l(&[("env", "prod"), ("msg", "a,b")]),
        l(&[("env", "prod"), ("cluster", "eu-west"), ("tier", "stable")]),
        l(&[("env", "prod"), ("cluster", "eu-west"), ("tier", "canary")]),
        l(&[("env", "prod"), ("cluster", "us-east")]),
        l(&[("env", "prod"), ("cluster", "eu-")]),
        l(&[("env", "prod"), ("path", "/api/v1/query"), ("code", "503")]),
        l(&[("env", "prod"), ("path", "/api/v12/x"), ("code", "500")]),
        l(&[("env", "prod"), ("path", "/api/v1/x"), ("code", "404")]),
        l(&[("env", "prod"), ("path", "/api/vX/x"), ("code", "500")]),
        l(&[("env", "prod"), ("team", "Ops")]),
        l(&[("env", "prod"), ("team", "SRE"), ("zone", "a")]),
        l(&[("env", "prod"), ("team", "ops")]),
        l(&[("env", "prod"), ("team", "OpsSRE")]),
        l(&[("env", "prod"), ("msg", "quote \" and \\ backslash")]),
        l(&[("env", "prod"), ("msg", "unicode é ✓")]),
        l(&[("env", "prod"), ("msg", "two\nlines")]),
    ];
    // Repeated labels: the last one wins in both.
    sets.push(l(&[("service", "foo1"), ("service", "nope")]));
    assert!(assert_routing_parity("routing-regex.yml", &sets) >= 30);
}
