//! Deployment artefacts stay valid: the Kubernetes manifests pass `kubernetes-validate
//! --strict`, the systemd units pass `systemd-analyze verify` with a low exposure score, and
//! the example configs pass `check-config`.
#![allow(clippy::disallowed_methods)]

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use util::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn kubernetes_manifests_validate_strictly() {
    let dir = repo().join("packaging/kubernetes");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(files.len() >= 3);
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(&files)
        .output()
        .expect("kubernetes-validate is not installed: pip install kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for kind in [
        "daemonset/vigil-agent",
        "statefulset/vigil-collector",
        "service/vigil-collector",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}")),
            "{kind} not validated:\n{text}"
        );
    }
}

#[test]
fn systemd_units_verify_and_are_hardened() {
    let dir = Scratch::new("systemd");
    for unit in ["vigil-agent.service", "vigil-collector.service"] {
        let text = std::fs::read_to_string(repo().join("systemd").join(unit)).unwrap();
        let text = text
            .replace(
                "/usr/bin/vigil-agent",
                &bin("vigil-agent").display().to_string(),
            )
            .replace(
                "/usr/bin/vigil-collector",
                &bin("vigil-collector").display().to_string(),
            );
        let path = dir.path(unit);
        std::fs::write(&path, text).unwrap();
        let (code, out, err) = run(Command::new("systemd-analyze").arg("verify").arg(&path));
        assert_eq!(code, 0, "{unit}: {out}{err}");
        assert!(!err.contains(unit), "{unit} has warnings: {err}");
        let (_, out, err) = run(Command::new("systemd-analyze")
            .args(["security", "--offline=true"])
            .arg(&path));
        let line = out
            .lines()
            .chain(err.lines())
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("no score: {out}{err}"));
        let score: f64 = line
            .split(':')
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            score <= 2.0,
            "{unit} exposure {score} (README records 1.5 / 1.2)"
        );
    }
}

#[test]
fn example_configs_pass_check_config() {
    let dir = Scratch::new("examples");
    let certs = make_certs(&dir, &["example"]);
    let agent_certs = dir.path("agent-example");
    let agent = std::fs::read_to_string(repo().join("packaging/examples/agent.toml"))
        .unwrap()
        .replace("/etc/vigil/agent", &agent_certs.display().to_string());
    let collector = std::fs::read_to_string(repo().join("packaging/examples/collector.toml"))
        .unwrap()
        .replace("/etc/vigil/collector", &certs.display().to_string());
    std::fs::write(dir.path("agent.toml"), agent).unwrap();
    std::fs::write(dir.path("collector.toml"), collector).unwrap();
    let (code, _, err) = run(Command::new(bin("vigil-agent"))
        .args(["check-config", "--config"])
        .arg(dir.path("agent.toml")));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(Command::new(bin("vigil-collector"))
        .args(["check-config", "--config"])
        .arg(dir.path("collector.toml")));
    assert_eq!(code, 0, "{err}");
}
