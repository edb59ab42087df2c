//! Cooldown and flap-guard state survive a restart: a new [`Remediator`] over the same data
//! directory (what a restarted or crash-looping agent builds) restores what the previous one
//! stored before each run, so neither guard can be bypassed by restarting.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use vigil_agent::remediate::config::{ActionConfig, RemediationSettings};
use vigil_agent::remediate::{Outcome, RefusalReason, Remediator};

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "vigil-guard-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch(p)
    }
    fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn script(dir: &Scratch, marker: &Path) -> PathBuf {
    let p = dir.path("m.sh");
    std::fs::write(&p, format!("#!/bin/sh\necho run >> {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn remediator(dir: &Scratch, command: &Path, extra: &str) -> Remediator {
    let a: ActionConfig = toml::from_str(&format!(
        "name = \"a\"\ncommand = {:?}\nallow_remote = true\n{extra}",
        command.display().to_string()
    ))
    .unwrap();
    Remediator::new(RemediationSettings::default(), vec![a], &dir.0).unwrap()
}

fn runs(marker: &Path) -> usize {
    std::fs::read_to_string(marker)
        .unwrap_or_default()
        .lines()
        .count()
}

#[tokio::test]
async fn cooldown_survives_a_restart() {
    let dir = Scratch::new("cooldown");
    let marker = dir.path("marker");
    let cmd = script(&dir, &marker);
    let first = remediator(&dir, &cmd, "cooldown = '1h'");
    assert_eq!(
        first.handle_remote("a", "ops").await.unwrap().outcome,
        Outcome::Ok
    );
    drop(first);
    let restarted = remediator(&dir, &cmd, "cooldown = '1h'");
    let refused = restarted.handle_remote("a", "ops").await.unwrap_err();
    let RefusalReason::CoolingDown(left) = refused.reason else {
        panic!("expected a cooldown refusal, got {refused}")
    };
    assert!(left.as_secs() > 3500, "{left:?}");
    assert_eq!(runs(&marker), 1);
    // A shorter cooldown in the new config applies to the stored last run.
    let reconfigured = remediator(&dir, &cmd, "cooldown = '0s'");
    assert_eq!(
        reconfigured
            .handle_remote("a", "ops")
            .await
            .unwrap()
            .outcome,
        Outcome::Ok
    );
    assert_eq!(runs(&marker), 2);
    assert_eq!(reconfigured.state_errors(), 0);
}

#[tokio::test]
async fn a_crash_looping_agent_cannot_bypass_the_flap_guard() {
    let dir = Scratch::new("flap");
    let marker = dir.path("marker");
    let cmd = script(&dir, &marker);
    let guard = "cooldown = '0s'\nflap_max_runs = 2\nflap_window = '1h'";
    // Each "agent process" runs the action once and then dies.
    for _ in 0..2 {
        let r = remediator(&dir, &cmd, guard);
        assert_eq!(
            r.handle_remote("a", "ops").await.unwrap().outcome,
            Outcome::Ok
        );
    }
    let third = remediator(&dir, &cmd, guard);
    let tripped = third.handle_remote("a", "ops").await.unwrap_err();
    assert!(
        matches!(
            tripped.reason,
            RefusalReason::FlapGuardTripped { runs: 2, .. }
        ),
        "{tripped}"
    );
    drop(third);
    // The suspension itself is stored too.
    let fourth = remediator(&dir, &cmd, guard);
    let suspended = fourth.handle_remote("a", "ops").await.unwrap_err();
    let RefusalReason::Suspended(left) = suspended.reason else {
        panic!("expected the suspension to survive, got {suspended}")
    };
    assert!(left.as_secs() > 3500, "{left:?}");
    assert_eq!(runs(&marker), 2);
}

#[tokio::test]
async fn an_unreadable_state_file_is_moved_aside_not_fatal() {
    let dir = Scratch::new("corrupt");
    let marker = dir.path("marker");
    let cmd = script(&dir, &marker);
    std::fs::write(dir.path("remediation-state.json"), b"not json").unwrap();
    let r = remediator(&dir, &cmd, "cooldown = '1h'");
    assert_eq!(
        r.handle_remote("a", "ops").await.unwrap().outcome,
        Outcome::Ok
    );
    let aside: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("remediation-state.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.state_path()).unwrap()).unwrap();
    assert!(v["actions"]["a"]["last_run_ms"].is_i64(), "{v}");
}
