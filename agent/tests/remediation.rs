//! End-to-end tests of local checks driving allow-listed remediation: real scripts written
//! into a scratch directory and executed (directly, never through a shell) by the
//! [`Remediator`], with the audit log read back.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use vigil_agent::checks::threshold::{CheckConfig, CheckState, ThresholdChecks};
use vigil_agent::remediate::config::{ActionConfig, RemediationSettings};
use vigil_agent::remediate::{validate_all, Outcome, RefusalReason, RemediateError, Remediator};
use vigil_shared::model::{Labels, Point, Series};

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "vigil-remediation-{name}-{}-{}",
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
    /// Writes an executable `#!/bin/sh` script.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
    fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn action(name: &str, command: &Path, extra: &str) -> ActionConfig {
    toml::from_str(&format!(
        "name = {name:?}\ncommand = {:?}\n{extra}",
        command.display().to_string()
    ))
    .unwrap()
}

fn remediator(dir: &Scratch, actions: Vec<ActionConfig>, global: &str) -> Remediator {
    let mut settings: RemediationSettings = toml::from_str(global).unwrap();
    settings.audit_log = Some(dir.path("audit.jsonl"));
    Remediator::new(settings, actions, &dir.0).unwrap()
}

fn load(t: i64, v: f64) -> Vec<Series> {
    vec![Series {
        labels: Labels::metric("node_load1", &[("instance", "web-1")]),
        points: vec![Point {
            timestamp_ms: t,
            value: v,
        }],
    }]
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn breach_held_for_fires_once_runs_the_action_then_resolves() {
    let dir = Scratch::new("breach");
    let marker = dir.path("marker");
    let script = dir.script(
        "mark.sh",
        &format!(
            "echo \"$VIGIL_CHECK $VIGIL_STATE $VIGIL_VALUE $VIGIL_LABEL_INSTANCE $VIGIL_SERIES\" >> {}",
            marker.display()
        ),
    );
    let r = remediator(&dir, vec![action("shed_load", &script, "")], "");
    let mut checks = ThresholdChecks::new(&[CheckConfig {
        name: "load_high".into(),
        select: vec![r#"node_load1{instance=~"web-.*"}"#.into()],
        condition: "value > 4".into(),
        for_: Some("20s".parse().unwrap()),
        action: Some("shed_load".into()),
    }])
    .unwrap();
    let mut fired = 0;
    let mut resolved = 0;
    for (i, v) in [5.0, 6.0, 7.0, 8.0, 1.0, 1.0].into_iter().enumerate() {
        let t = i as i64 * 10_000;
        for tr in checks.observe(&load(t, v), t) {
            match tr.state {
                CheckState::Firing => {
                    fired += 1;
                    assert_eq!(tr.at_ms, 20_000, "fires once `for` has elapsed");
                    let report = r.on_transition(&tr).await.unwrap().unwrap();
                    assert_eq!(report.outcome, Outcome::Ok);
                    assert_eq!(report.event.kind, "remediation");
                    assert_eq!(report.event.labels.get("action"), Some("shed_load"));
                    assert_eq!(report.event.labels.get("instance"), Some("web-1"));
                }
                CheckState::Resolved => {
                    resolved += 1;
                    assert!(
                        r.on_transition(&tr).await.is_none(),
                        "resolving runs nothing"
                    );
                }
            }
        }
    }
    assert_eq!((fired, resolved), (1, 1));
    assert_eq!(
        lines(&marker),
        vec![r#"load_high firing 7 web-1 {__name__="node_load1",instance="web-1"}"#]
    );
    let audit = dir.audit();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["outcome"], "ok");
    assert_eq!(audit[0]["check"], "load_high");
    assert_eq!(audit[0]["exit_code"], 0);
    let events = r.drain_events();
    assert_eq!(events.len(), 1);
    assert!(r.drain_events().is_empty(), "drained");
}

#[tokio::test]
async fn arguments_are_passed_without_a_shell() {
    let dir = Scratch::new("noshell");
    let marker = dir.path("marker");
    let script = dir.script(
        "args.sh",
        &format!("printf '%s\\n' \"$@\" > {}", marker.display()),
    );
    let r = remediator(
        &dir,
        vec![action(
            "a",
            &script,
            "args = ['$HOME; touch /tmp/pwned', '*', '`id`']",
        )],
        "",
    );
    let (out, ok) = vigil_agent::remediate::cli::run_action(&r, "a", false)
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert_eq!(lines(&marker), vec!["$HOME; touch /tmp/pwned", "*", "`id`"]);
}

#[tokio::test]
async fn cooldown_holds_a_second_trigger() {
    let dir = Scratch::new("cooldown");
    let marker = dir.path("marker");
    let script = dir.script("m.sh", &format!("echo run >> {}", marker.display()));
    let r = remediator(&dir, vec![action("a", &script, "cooldown = '1h'")], "");
    let run = || vigil_agent::remediate::cli::run_action(&r, "a", false);
    assert!(run().await.unwrap().1);
    let err = run().await.unwrap_err();
    assert!(err.contains("cooling down"), "{err}");
    assert_eq!(lines(&marker).len(), 1);
    let audit = dir.audit();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[1]["outcome"], "refused");
    assert!(audit[1]["reason"]
        .as_str()
        .unwrap()
        .contains("cooling down"));
}

#[tokio::test]
async fn flap_guard_suspends_after_n_runs_and_raises_an_event() {
    let dir = Scratch::new("flap");
    let marker = dir.path("marker");
    let script = dir.script("m.sh", &format!("echo run >> {}", marker.display()));
    let r = remediator(
        &dir,
        vec![action(
            "a",
            &script,
            "cooldown = '0'\nflap_max_runs = 2\nflap_window = '1h'\nallow_remote = true",
        )],
        "",
    );
    assert_eq!(
        r.handle_remote("a", "ops").await.unwrap().outcome,
        Outcome::Ok
    );
    assert_eq!(
        r.handle_remote("a", "ops").await.unwrap().outcome,
        Outcome::Ok
    );
    let tripped = r.handle_remote("a", "ops").await.unwrap_err();
    assert!(
        matches!(
            tripped.reason,
            RefusalReason::FlapGuardTripped { runs: 2, .. }
        ),
        "{tripped}"
    );
    assert!(tripped.events.iter().any(|e| e.kind == "flap_guard"));
    let again = r.handle_remote("a", "ops").await.unwrap_err();
    assert!(
        matches!(again.reason, RefusalReason::Suspended(_)),
        "{again}"
    );
    assert_eq!(lines(&marker).len(), 2, "no run after the guard tripped");
    let events = r.drain_events();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "remediation",
            "remediation",
            "remediation",
            "flap_guard",
            "remediation"
        ]
    );
    assert_eq!(
        dir.audit()
            .iter()
            .filter(|a| a["outcome"] == "refused")
            .count(),
        2
    );
}

/// True when `pid` no longer runs (gone, or a zombie awaiting its new parent's reaping).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn timeout_kills_the_process_group_including_a_backgrounded_child() {
    let dir = Scratch::new("timeout");
    let pidfile = dir.path("child.pid");
    let script = dir.script(
        "hang.sh",
        &format!(
            "sleep 300 &\necho $! > {}\necho started\nsleep 300",
            pidfile.display()
        ),
    );
    let r = remediator(&dir, vec![action("hang", &script, "timeout = '1s'")], "");
    let t0 = Instant::now();
    let (out, ok) = vigil_agent::remediate::cli::run_action(&r, "hang", false)
        .await
        .unwrap();
    let took = t0.elapsed();
    assert!(!ok, "{out}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(out.contains("timeout"), "{out}");
    assert!(
        out.contains("started"),
        "output before the kill is kept: {out}"
    );
    let child: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !dead(child) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        dead(child),
        "backgrounded child {child} survived the timeout"
    );
    let audit = dir.audit();
    assert_eq!(audit[0]["outcome"], "timeout");
    assert_eq!(audit[0]["signal"], 9);
}

#[tokio::test]
async fn a_child_left_holding_stdout_does_not_hold_the_report() {
    let dir = Scratch::new("daemon");
    let pidfile = dir.path("child.pid");
    let script = dir.script(
        "daemon.sh",
        &format!("sleep 30 &\necho $! > {}\necho done", pidfile.display()),
    );
    let r = remediator(&dir, vec![action("d", &script, "timeout = '20s'")], "");
    let t0 = Instant::now();
    let report = r.handle_remote("d", "x").await;
    // Not allow-listed: refused. Run it locally instead.
    assert!(report.is_err());
    let (out, ok) = vigil_agent::remediate::cli::run_action(&r, "d", false)
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(out.contains("done"), "{out}");
    // Clean up the child the script left running.
    let child: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !dead(child),
        "a normal exit leaves the command's children alone"
    );
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
}

#[tokio::test]
async fn output_flood_is_truncated_and_marked() {
    let dir = Scratch::new("flood");
    let script = dir.script(
        "flood.sh",
        "head -c 1000000 /dev/zero | tr '\\0' a\nhead -c 200000 /dev/zero | tr '\\0' b >&2",
    );
    let r = remediator(&dir, vec![action("flood", &script, "")], "");
    let report = r
        .run(vigil_agent::remediate::RunRequest {
            action: "flood".into(),
            trigger: vigil_agent::remediate::Trigger::Cli {
                requested_by: "t".into(),
            },
            dry_run: false,
        })
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Ok);
    let f = report.finished.unwrap();
    assert_eq!(
        f.stdout.text.len(),
        vigil_agent::remediate::exec::MAX_CAPTURE_BYTES
    );
    assert!(f.stdout.truncated);
    assert_eq!(f.stdout.total_bytes, 1_000_000);
    assert_eq!(f.stderr.total_bytes, 200_000);
    assert!(f.stderr.truncated);
    let audit = dir.audit();
    assert_eq!(audit[0]["stdout_truncated"], true);
    assert_eq!(audit[0]["stdout"].as_str().unwrap().len(), 65_536);
    let ev_stdout = report
        .event
        .fields
        .iter()
        .find(|(k, _)| k == "stdout")
        .unwrap();
    assert_eq!(
        ev_stdout.1.len(),
        vigil_agent::remediate::EVENT_OUTPUT_BYTES
    );
}

#[test]
fn validate_names_missing_scripts_and_unknown_actions() {
    let dir = Scratch::new("validate");
    let not_exec = dir.path("plain.sh");
    std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&not_exec, std::fs::Permissions::from_mode(0o644)).unwrap();
    let world_writable = dir.script("ww.sh", "true");
    std::fs::set_permissions(&world_writable, std::fs::Permissions::from_mode(0o777)).unwrap();
    let actions = vec![
        action("missing", &dir.path("nope.sh"), ""),
        action("plain", &not_exec, ""),
        action("zero", &dir.script("ok.sh", "true"), "timeout = '0'"),
        action("ww", &world_writable, ""),
    ];
    let checks = vec![CheckConfig {
        name: "c".into(),
        select: vec!["node_load1{".into()],
        condition: "value > 1".into(),
        for_: None,
        action: Some("no_such_action".into()),
    }];
    let problems = validate_all(&RemediationSettings::default(), &checks, &actions).join("\n");
    for needle in [
        "actions[missing].command",
        "nope.sh",
        "actions[plain].command",
        "not executable",
        "actions[zero].timeout",
        "actions[ww].command",
        "world-writable",
        "checks[c].select",
        "checks[c].action: unknown action \"no_such_action\"",
    ] {
        assert!(
            problems.contains(needle),
            "missing {needle:?} in:\n{problems}"
        );
    }
    let err = Remediator::new(RemediationSettings::default(), actions, &dir.0).unwrap_err();
    assert!(matches!(err, RemediateError::Invalid(p) if p.len() == 4));
}

#[tokio::test]
async fn remote_trigger_of_a_non_allow_listed_action_is_refused_and_audited() {
    let dir = Scratch::new("remote");
    let marker = dir.path("marker");
    let script = dir.script("m.sh", &format!("echo run >> {}", marker.display()));
    let r = remediator(
        &dir,
        vec![
            action("local_only", &script, ""),
            action("remote_ok", &script, "allow_remote = true"),
        ],
        "",
    );
    let refused = r
        .handle_remote("local_only", "alice@collector")
        .await
        .unwrap_err();
    assert_eq!(refused.reason, RefusalReason::NotAllowedRemote);
    let unknown = r.handle_remote("rm_rf", "mallory").await.unwrap_err();
    assert_eq!(unknown.reason, RefusalReason::UnknownAction);
    assert!(!marker.exists(), "nothing ran");
    assert_eq!(
        r.handle_remote("remote_ok", "alice@collector")
            .await
            .unwrap()
            .outcome,
        Outcome::Ok
    );
    assert_eq!(lines(&marker).len(), 1);
    let audit = dir.audit();
    assert_eq!(audit.len(), 3);
    assert_eq!(audit[0]["action"], "local_only");
    assert_eq!(audit[0]["outcome"], "refused");
    assert_eq!(audit[0]["trigger"], "remote");
    assert_eq!(audit[0]["requested_by"], "alice@collector");
    assert_eq!(audit[1]["action"], "rm_rf");
    assert_eq!(audit[1]["reason"], "unknown action");
    assert_eq!(audit[2]["outcome"], "ok");
    let refusal_event = &refused.events[0];
    assert_eq!(refusal_event.kind, "remediation");
    assert!(refusal_event
        .fields
        .contains(&("outcome".into(), "refused".into())));
}

#[tokio::test]
async fn dry_run_does_not_execute() {
    let dir = Scratch::new("dry");
    let marker = dir.path("marker");
    let script = dir.script("m.sh", &format!("echo run >> {}", marker.display()));
    // Per request.
    let r = remediator(&dir, vec![action("a", &script, "args = ['x']")], "");
    let (out, ok) = vigil_agent::remediate::cli::run_action(&r, "a", true)
        .await
        .unwrap();
    assert!(ok);
    assert!(
        out.contains("would execute") && out.contains("m.sh x"),
        "{out}"
    );
    assert!(out.contains("VIGIL_TRIGGER=cli"), "{out}");
    // Per action, and global.
    let r2 = remediator(&dir, vec![action("b", &script, "dry_run = true")], "");
    // The remote allow-list is checked before the dry run: still refused, and audited.
    assert_eq!(
        r2.handle_remote("b", "x").await.unwrap_err().reason,
        RefusalReason::NotAllowedRemote
    );
    let (_, ok) = vigil_agent::remediate::cli::run_action(&r2, "b", false)
        .await
        .unwrap();
    assert!(ok);
    let r3 = remediator(&dir, vec![action("c", &script, "")], "dry_run = true");
    let (out, _) = vigil_agent::remediate::cli::run_action(&r3, "c", false)
        .await
        .unwrap();
    assert!(out.contains("dry run"), "{out}");
    assert!(!marker.exists(), "a dry run executed the script");
    let outcomes: Vec<String> = dir
        .audit()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(outcomes, ["dry_run", "refused", "dry_run", "dry_run"]);
}

#[tokio::test]
async fn user_runs_the_action_as_that_user_or_needs_root() {
    let dir = Scratch::new("user");
    let script = dir.script("id.sh", "id -u; id -G");
    let a = action("as_nobody", &script, "user = 'nobody'");
    let nobody = vigil_agent::remediate::config::lookup_user("nobody", Path::new("/etc/passwd"))
        .expect("nobody exists in /etc/passwd");
    if rustix::process::geteuid().is_root() {
        let r = remediator(&dir, vec![a], "");
        let report = r
            .run(vigil_agent::remediate::RunRequest {
                action: "as_nobody".into(),
                trigger: vigil_agent::remediate::Trigger::Cli {
                    requested_by: "t".into(),
                },
                dry_run: false,
            })
            .await
            .unwrap();
        let out = report.finished.unwrap().stdout.text;
        let mut l = out.lines();
        assert_eq!(l.next(), Some(nobody.uid.to_string().as_str()), "{out}");
        assert_eq!(
            l.next(),
            Some(nobody.gid.to_string().as_str()),
            "no supplementary groups: {out}"
        );
    } else {
        let settings = RemediationSettings {
            audit_log: Some(dir.path("audit.jsonl")),
            ..Default::default()
        };
        let err = Remediator::new(settings, vec![a], &dir.0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("requires the agent to run as root"), "{err}");
    }
}

#[tokio::test]
async fn global_concurrency_limit_serialises_runs_and_an_action_runs_once_at_a_time() {
    let dir = Scratch::new("concurrency");
    let log = dir.path("log");
    let body = format!(
        "echo \"start $VIGIL_ACTION\" >> {l}\nsleep 0.3\necho \"end $VIGIL_ACTION\" >> {l}",
        l = log.display()
    );
    let script = dir.script("slow.sh", &body);
    let r = remediator(
        &dir,
        vec![
            action("a", &script, "allow_remote = true"),
            action("b", &script, "allow_remote = true"),
        ],
        "max_concurrent = 1",
    );
    let (ra, rb, ra2) = tokio::join!(
        r.handle_remote("a", "t"),
        r.handle_remote("b", "t"),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            r.handle_remote("a", "t").await
        }
    );
    assert_eq!(ra.unwrap().outcome, Outcome::Ok);
    assert_eq!(rb.unwrap().outcome, Outcome::Ok);
    assert_eq!(ra2.unwrap_err().reason, RefusalReason::AlreadyRunning);
    let l = lines(&log);
    assert_eq!(l.len(), 4, "{l:?}");
    // With one slot the runs never overlap: start/end pairs are adjacent.
    assert!(
        l[0].starts_with("start") && l[1].starts_with("end"),
        "{l:?}"
    );
    assert_eq!(l[0][6..], l[1][4..], "{l:?}");
    assert!(
        l[2].starts_with("start") && l[3].starts_with("end"),
        "{l:?}"
    );
}

#[tokio::test]
async fn spawned_transitions_run_in_the_background_and_events_drain() {
    let dir = Scratch::new("spawned");
    let marker = dir.path("marker");
    let script = dir.script(
        "m.sh",
        &format!("echo $VIGIL_CHECK >> {}", marker.display()),
    );
    let r = remediator(&dir, vec![action("a", &script, "")], "");
    let mut checks = ThresholdChecks::new(&[CheckConfig {
        name: "hot".into(),
        select: vec!["node_load1".into()],
        condition: "value >= 2".into(),
        for_: None,
        action: Some("a".into()),
    }])
    .unwrap();
    let transitions = checks.observe(&load(0, 2.0), 0);
    assert_eq!(transitions.len(), 1);
    let tracker = tokio_util::task::TaskTracker::new();
    r.spawn_transitions(&transitions, &tracker);
    tracker.close();
    tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .unwrap();
    assert_eq!(lines(&marker), vec!["hot"]);
    let events = r.drain_events();
    assert_eq!(events.len(), 1);
    assert!(events[0].fields.contains(&("check".into(), "hot".into())));
    let refused = r.handle_remote("a", "collector").await;
    let (accepted, detail) = vigil_agent::remediate::action_result(&refused);
    assert!(!accepted);
    assert!(detail.contains("not allow-listed"), "{detail}");
}

/// Run with `--ignored --nocapture` to print the per-cycle cost of the checks.
#[test]
#[ignore]
fn measure_observe_cost() {
    let n = 20_000;
    let series: Vec<Series> = (0..n)
        .map(|i| Series {
            labels: Labels::metric(
                if i % 2 == 0 {
                    "node_filesystem_avail_bytes"
                } else {
                    "node_filesystem_size_bytes"
                },
                &[("mountpoint", &format!("/m{}", i / 2))],
            ),
            points: vec![Point {
                timestamp_ms: 0,
                value: 1.0,
            }],
        })
        .collect();
    let mut checks = ThresholdChecks::new(&[
        CheckConfig {
            name: "ratio".into(),
            select: vec![r#"node_filesystem_avail_bytes{mountpoint=~"/m.*"}"#.into()],
            condition: "value / node_filesystem_size_bytes < 0.1".into(),
            for_: None,
            action: None,
        },
        CheckConfig {
            name: "rate".into(),
            select: vec!["node_filesystem_size_bytes".into()],
            condition: "rate over 5m > 1".into(),
            for_: None,
            action: None,
        },
        CheckConfig {
            name: "anomaly".into(),
            select: vec!["node_filesystem_avail_bytes".into()],
            condition: "anomaly".into(),
            for_: None,
            action: None,
        },
    ])
    .unwrap();
    let cycles = 20;
    let t0 = Instant::now();
    for c in 0..cycles {
        let mut s = series.clone();
        for x in &mut s {
            x.points[0].timestamp_ms = c * 10_000;
        }
        checks.observe(&s, c * 10_000);
    }
    println!(
        "{n} series, 3 checks ({} label sets tracked): {:?} per cycle (incl. cloning the input)",
        checks.tracked_series(),
        t0.elapsed() / cycles as u32
    );
}
