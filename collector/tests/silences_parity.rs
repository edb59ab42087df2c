//! Silences and alerts API parity with the real Alertmanager 0.25, through the real `amtool`
//! and through raw `POST /api/v2/alerts` requests.
//!
//! One test starts `/usr/bin/prometheus-alertmanager` (127.0.0.1, temporary storage, a
//! loopback config) and a `vigil-collector` (127.0.0.1, temporary data directory, rule
//! files raising two alerts, the same Alertmanager config), raises the same two alerts in
//! Alertmanager with `amtool alert add` (same labels and generator URL), then runs one sequence of `amtool silence add /
//! query / update / expire` and `amtool alert query` commands against both and compares
//! every command's exit status, stdout and stderr, with silence ids (numbered in order of
//! first appearance) and timestamps masked. It then restarts the collector and checks that
//! `amtool silence query --expired -o json` prints exactly what it printed before.
//!
//! A second test posts the same alert lists, valid, partly valid and malformed, to both
//! servers' `POST /api/v2/alerts` and compares status codes and bodies, then adds an alert
//! with `amtool alert add` to both and compares what `amtool alert query` and
//! `GET /api/v2/alerts` show, and `GET /api/v2/receivers`.
//!
//! amtool or Alertmanager missing is a failure, not a skip: CI installs them.

// A synchronous test driving child processes: blocking sleeps are what it needs.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AMTOOL: &str = "/usr/bin/amtool";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const COLLECTOR: &str = env!("CARGO_BIN_EXE_vigil-collector");

const AM_CONFIG: &str = "route:
  receiver: default
  group_wait: 1s
  routes:
    - matchers: [team=db]
      receiver: db
receivers:
  - name: default
  - name: db
";

const RULES: &str = "groups:
  - name: parity
    interval: 1s
    rules:
      - alert: DiskFull
        expr: vector(1)
        labels: {severity: warning, team: db, instance: web-1}
      - alert: NodeDown
        expr: vector(1)
        labels: {severity: critical, team: web, instance: web-2}
";

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "vigil-silences-parity-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("creating scratch dir");
    d
}

/// A plain HTTP/1.0 GET on loopback: status code and body.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_alertmanager(dir: &Path) -> (Proc, String) {
    assert!(
        Path::new(ALERTMANAGER).exists(),
        "{ALERTMANAGER} is missing: install Debian's prometheus-alertmanager package"
    );
    let config = dir.join("am.yml");
    std::fs::write(&config, AM_CONFIG).expect("writing am.yml");
    let (proc, port) = vigil_testkit::start_on_free_port("alertmanager", |port| {
        let log = std::fs::File::create(dir.join("alertmanager.log")).expect("log file");
        let mut child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting prometheus-alertmanager: {e}"))?;
        vigil_testkit::wait_listening(&mut child, port, Duration::from_secs(30))?;
        Ok((Proc(child), port))
    });
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_until("alertmanager to be ready", || {
        http_get(addr, "/-/ready").is_some_and(|(c, _)| c == 200)
    });
    (proc, format!("http://{addr}"))
}

fn start_collector(dir: &Path) -> (Proc, String) {
    let certs = dir.join("certs");
    if !certs.exists() {
        let out = Command::new(COLLECTOR)
            .args(["certs", "init", "--dir"])
            .arg(&certs)
            .output()
            .expect("running vigil-collector certs init");
        assert!(
            out.status.success(),
            "certs init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::write(dir.join("am.yml"), AM_CONFIG).expect("writing am.yml");
    std::fs::write(dir.join("rules.yml"), RULES).expect("writing rules.yml");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("collector.log"))
        .expect("log file");
    let mut child = Command::new(COLLECTOR)
        .arg("run")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--certs-dir")
        .arg(&certs)
        .args([
            "--quic-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--rule-file")
        .arg(dir.join("rules.yml"))
        .arg("--alertmanager-config")
        .arg(dir.join("am.yml"))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("starting vigil-collector");
    let stdout = child.stdout.take().expect("piped stdout");
    let proc = Proc(child);
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .next()
        .and_then(Result::ok)
        .expect("the collector prints its listening line");
    // Keep draining stdout so the collector never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .unwrap_or_else(|| panic!("no http= in {line:?}"));
    let addr: SocketAddr = http.parse().expect("http address");
    wait_until("the collector to be ready", || {
        http_get(addr, "/ready").is_some_and(|(c, _)| c == 200)
    });
    (proc, format!("http://{addr}"))
}

/// What one amtool run printed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn amtool(url: &str, args: &[String]) -> Run {
    assert!(
        Path::new(AMTOOL).exists(),
        "{AMTOOL} is missing: install Debian's prometheus-alertmanager package"
    );
    let out = Command::new(AMTOOL)
        .arg(format!("--alertmanager.url={url}"))
        .args(args)
        .env("HOME", "/nonexistent") // no ~/.config/amtool/config.yml
        .env("USER", "parity")
        .output()
        .expect("running amtool");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Masks ids (numbered by first appearance, so the same silence keeps its number) and
/// timestamps, the only things that may differ between two servers.
struct Masker {
    ids: HashMap<String, usize>,
    uuid: regex::Regex,
    time: regex::Regex,
    silenced_by: regex::Regex,
}

impl Masker {
    fn new() -> Masker {
        Masker {
            ids: HashMap::new(),
            uuid: regex::Regex::new(
                r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            )
            .unwrap(),
            silenced_by: regex::Regex::new(r#""silencedBy":\[([^\]]*)\]"#).unwrap(),
            time: regex::Regex::new(
                r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?( ?UTC|Z|[+-]\d\d:\d\d)",
            )
            .unwrap(),
        }
    }

    fn mask(&mut self, s: &str) -> String {
        let mut out = String::new();
        let mut last = 0;
        for m in self.uuid.find_iter(s) {
            out.push_str(&s[last..m.start()]);
            let n = self.ids.len() + 1;
            let n = *self.ids.entry(m.as_str().to_string()).or_insert(n);
            out.push_str(&format!("<id{n}>"));
            last = m.end();
        }
        out.push_str(&s[last..]);
        // `silencedBy` lists are in the order of the (random) ids, so their masked order is
        // arbitrary on both sides: compare them as sets.
        let out = self
            .silenced_by
            .replace_all(&out, |c: &regex::Captures<'_>| {
                let mut ids: Vec<&str> = c[1].split(',').collect();
                ids.sort();
                format!("\"silencedBy\":[{}]", ids.join(","))
            })
            .into_owned();
        self.time.replace_all(&out, "<time>").into_owned()
    }

    fn run(&mut self, r: &Run) -> Run {
        Run {
            code: r.code,
            stdout: self.mask(&r.stdout),
            stderr: self.mask(&r.stderr),
        }
    }
}

/// One side of the comparison: a server, its transcript, and its silence ids by name.
struct Side {
    url: String,
    masker: Masker,
    ids: HashMap<&'static str, String>,
    transcript: Vec<(String, Run)>,
}

impl Side {
    fn new(url: String) -> Side {
        Side {
            url,
            masker: Masker::new(),
            ids: HashMap::new(),
            transcript: Vec::new(),
        }
    }

    /// Runs amtool with `args`, where `{name}` is replaced by the id saved as `name`.
    fn run(&mut self, args: &[&str]) -> Run {
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                let mut a = a.to_string();
                for (k, v) in &self.ids {
                    a = a.replace(&format!("{{{k}}}"), v);
                }
                a
            })
            .collect();
        let raw = amtool(&self.url, &args);
        let masked = self.masker.run(&raw);
        self.transcript.push((args.join(" "), masked));
        raw
    }
}

fn future(secs: u64) -> String {
    let t = std::time::SystemTime::now() + Duration::from_secs(secs);
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (d.div_euclid(86_400), d.rem_euclid(86_400));
    // days since epoch to civil date (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn amtool_sees_the_same_silences_and_alerts_on_both() {
    let am_dir = scratch("am");
    let vg_dir = scratch("vigil");
    let (_am, am_url) = start_alertmanager(&am_dir);
    let (collector, vg_url) = start_collector(&vg_dir);
    let mut am = Side::new(am_url);
    let mut vg = Side::new(vg_url.clone());

    // The same two alerts: raised by the collector's rules, posted to Alertmanager.
    for labels in [
        [
            "alertname=DiskFull",
            "severity=warning",
            "team=db",
            "instance=web-1",
        ],
        [
            "alertname=NodeDown",
            "severity=critical",
            "team=web",
            "instance=web-2",
        ],
    ] {
        // The collector's rules link back to its own expression browser.
        let mut args = vec![
            "alert".to_string(),
            "add".to_string(),
            format!("--generator-url={vg_url}/graph?g0.expr=vector%281%29&g0.tab=1"),
        ];
        args.extend(labels.iter().map(|s| s.to_string()));
        let r = amtool(&am.url, &args);
        assert_eq!(r.code, Some(0), "amtool alert add: {r:?}");
    }
    wait_until("the collector's rules to fire both alerts", || {
        amtool(
            &vg_url,
            &["alert".into(), "query".into(), "-o".into(), "json".into()],
        )
        .stdout
        .matches("\"alertname\"")
        .count()
            == 2
    });

    let start_later = future(7200);
    let end_later = future(4 * 3600);
    let end_latest = future(5 * 3600);
    let steps: Vec<(Option<&'static str>, Vec<&str>)> = vec![
        (None, vec!["alert", "query"]),
        (
            Some("disk"),
            vec![
                "silence",
                "add",
                "alertname=DiskFull",
                "instance=~web-.*",
                "-c",
                "disk maintenance",
                "-a",
                "alice",
                "-d",
                "2h",
            ],
        ),
        (
            Some("env"),
            vec![
                "silence",
                "add",
                "team!=web",
                "severity!~info|debug",
                "-c",
                "negative matchers",
                "-a",
                "bob",
                "-d",
                "3h",
            ],
        ),
        (
            Some("later"),
            vec![
                "silence",
                "add",
                "alertname=NodeDown",
                "-c",
                "tonight",
                "-a",
                "carol",
                "--start",
                &start_later,
                "--end",
                &end_later,
            ],
        ),
        // Refused silences: the server's error text reaches the user through amtool.
        (
            None,
            vec!["silence", "add", "alertname=~.*", "-c", "too broad"],
        ),
        (
            None,
            vec![
                "silence",
                "add",
                "alertname=x",
                "-c",
                "backwards",
                "--start",
                &end_later,
                "--end",
                &start_later,
            ],
        ),
        (
            None,
            vec![
                "silence",
                "add",
                "alertname=x",
                "-c",
                "past",
                "--end",
                "2020-01-01T00:00:00Z",
            ],
        ),
        (None, vec!["silence", "query"]),
        (None, vec!["silence", "query", "-o", "json"]),
        (
            None,
            vec!["silence", "query", "-o", "json", "alertname=DiskFull"],
        ),
        (None, vec!["silence", "query", "team!=web"]),
        (None, vec!["silence", "query", "-q", "alertname=NodeDown"]),
        (
            None,
            vec!["silence", "query", "-o", "json", "alertname=~Disk.*"],
        ),
        (None, vec!["silence", "query", "alertname=\"unclosed"]),
        (None, vec!["alert", "query"]),
        (None, vec!["alert", "query", "-s", "-o", "json"]),
        (
            None,
            vec!["alert", "query", "-i", "-o", "json", "severity=critical"],
        ),
        // Same matchers, active: updated in place, same id.
        (
            Some("disk2"),
            vec![
                "silence",
                "update",
                "{disk}",
                "-d",
                "5h",
                "-c",
                "longer maintenance",
            ],
        ),
        // Pending, start moved: updated in place.
        (
            Some("later2"),
            vec![
                "silence",
                "update",
                "{later}",
                "--start",
                &end_later,
                "--end",
                &end_latest,
            ],
        ),
        (None, vec!["silence", "query", "-o", "json"]),
        (None, vec!["silence", "expire", "{env}"]),
        (None, vec!["silence", "expire", "{later}"]),
        (None, vec!["silence", "expire", "{env}"]),
        (
            None,
            vec!["silence", "expire", "00000000-0000-0000-0000-000000000000"],
        ),
        (None, vec!["silence", "query", "--expired", "-o", "json"]),
        (None, vec!["silence", "query", "-o", "json"]),
        (None, vec!["alert", "query", "-o", "json"]),
        (None, vec!["alert", "query", "-s"]),
    ];
    for (save, args) in &steps {
        for side in [&mut am, &mut vg] {
            let r = side.run(args);
            if let Some(name) = save {
                if r.code == Some(0) {
                    side.ids.insert(name, r.stdout.trim().to_string());
                }
            }
        }
    }
    let mut differences = Vec::new();
    for ((cmd, a), (_, v)) in am.transcript.iter().zip(&vg.transcript) {
        if a != v {
            differences.push(format!(
                "amtool {cmd}\n--- alertmanager ({:?})\n{}{}\n--- vigil ({:?})\n{}{}",
                a.code, a.stdout, a.stderr, v.code, v.stdout, v.stderr
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} commands differ:\n\n{}",
        differences.len(),
        am.transcript.len(),
        differences.join("\n\n")
    );
    // The sequence really exercised something on both sides .
    let out = |cmd: &str, nth: usize| {
        vg.transcript
            .iter()
            .filter(|(c, _)| c == cmd)
            .nth(nth)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("no step {cmd} #{nth}"))
    };
    let broad = out("silence add alertname=~.* -c too broad", 0);
    assert_eq!(broad.code, Some(1));
    assert!(
        broad
            .stderr
            .contains("at least one matcher must not match the empty string"),
        "{broad:?}"
    );
    let listed = out("silence query -o json", 0);
    assert!(
        listed.stdout.contains("\"state\":\"pending\"")
            && listed.stdout.contains("disk maintenance"),
        "{listed:?}"
    );
    let shown = out("alert query", 1);
    assert!(
        shown.stdout.contains("NodeDown") && !shown.stdout.contains("DiskFull"),
        "{shown:?}"
    );
    assert!(am.ids.contains_key("disk") && vg.ids.contains_key("later2"));
    // `silence update` prints the updated silence's table row: same id as before.
    assert!(
        vg.ids["disk2"].contains(&vg.ids["disk"]),
        "an update of an active silence keeps its id: {}",
        vg.ids["disk2"]
    );

    // Restart: the silences are still there, unchanged.
    let q: Vec<String> = ["silence", "query", "--expired", "-o", "json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let q2: Vec<String> = ["silence", "query", "-o", "json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let before = (amtool(&vg_url, &q), amtool(&vg_url, &q2));
    let mut collector = collector;
    let pid = collector.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    wait_until("the collector to stop", || {
        collector.0.try_wait().ok().flatten().is_some()
    });
    drop(collector);
    let (_collector, vg_url) = start_collector(&vg_dir);
    let after = (amtool(&vg_url, &q), amtool(&vg_url, &q2));
    assert_eq!(
        before.0.stdout, after.0.stdout,
        "expired silences survive a restart"
    );
    assert_eq!(
        before.1.stdout, after.1.stdout,
        "active silences survive a restart"
    );
    assert!(
        before.1.stdout.contains("longer maintenance"),
        "{}",
        before.1.stdout
    );

    let _ = std::fs::remove_dir_all(am_dir);
    let _ = std::fs::remove_dir_all(vg_dir);
}

/// A plain HTTP/1.0 POST of a JSON body on loopback: status code and body.
fn http_post(url: &str, path: &str, body: &str) -> (u16, String) {
    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.split(' ').nth(1).unwrap().parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap();
    (code, body)
}

#[test]
fn posted_alerts_are_accepted_and_refused_like_alertmanager() {
    let am_dir = scratch("post-am");
    let vg_dir = scratch("post-vigil");
    let (_am, am_url) = start_alertmanager(&am_dir);
    let (_collector, vg_url) = start_collector(&vg_dir);

    let bodies = [
        r#"[{"labels":{"alertname":"P1","severity":"page"},"annotations":{"summary":"s"},"generatorURL":"http://prom:9090/graph"}]"#,
        r#"[{"labels":{}}]"#,
        r#"[{"annotations":{"a":"b"}}]"#,
        r#"[{"labels":{"alertname":"P2"},"startsAt":"2030-01-01T00:00:00Z","endsAt":"2020-01-01T00:00:00Z"}]"#,
        r#"[{"labels":{"alertname":"P3","0bad":"x"}}]"#,
        r#"[{"labels":{"alertname":"P4"}},{"labels":{"alertname":""}}]"#,
        r#"[{"labels":{"alertname":"P5"},"annotations":{"0x":"y"}}]"#,
        r#"[{"labels":{"alertname":"P6"},"generatorURL":"not a url"}]"#,
        r#"[{"labels":{"alertname":"P7"},"unknownField":1}]"#,
        r#"[]"#,
        r#"[{"labels":{"alertname":"P8","empty":""}}]"#,
        r#"[{"labels":{"alertname":"P9"},"endsAt":"2020-01-01T00:00:00Z"}]"#,
        r#"[{"labels":{"alertname":"P10"}},{"labels":{}},{"labels":{"alertname":"P11"},"startsAt":"2030-01-01T00:00:00Z","endsAt":"2020-01-01T00:00:00Z"}]"#,
    ];
    for body in bodies {
        let am = http_post(&am_url, "/api/v2/alerts", body);
        let vg = http_post(&vg_url, "/api/v2/alerts", body);
        assert_eq!(am, vg, "POST {body}");
    }
    // Malformed bodies: same status and error code; the message quotes Go's or serde's
    // decoder, so only its Alertmanager prefix is compared.
    for body in [
        "not json",
        r#"{"labels":{"alertname":"X"}}"#,
        r#"[{"labels":{"alertname":"X"},"startsAt":"yesterday"}]"#,
    ] {
        let (ac, ab) = http_post(&am_url, "/api/v2/alerts", body);
        let (vc, vb) = http_post(&vg_url, "/api/v2/alerts", body);
        assert_eq!((ac, vc), (400, 400), "POST {body}: {ab} / {vb}");
        let (a, v): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(&ab).unwrap(),
            serde_json::from_str(&vb).unwrap(),
        );
        assert_eq!(a["code"], v["code"], "POST {body}");
        let prefix = "parsing alerts body from \"\" failed, because ";
        assert!(a["message"].as_str().unwrap().starts_with(prefix), "{ab}");
        assert!(v["message"].as_str().unwrap().starts_with(prefix), "{vb}");
    }

    // amtool alert add, then the same alerts on both sides.
    for url in [&am_url, &vg_url] {
        let r = amtool(
            url,
            &[
                "alert".into(),
                "add".into(),
                "alertname=Amtool".into(),
                "team=db".into(),
                "--annotation=summary=added by amtool".into(),
            ],
        );
        assert_eq!(r.code, Some(0), "amtool alert add on {url}: {r:?}");
    }
    let posted = r#"alertname=~"P.*|Amtool""#;
    let query = |url: &str| {
        let mut m = Masker::new();
        m.run(&amtool(
            url,
            &["alert".into(), "query".into(), posted.into()],
        ))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while query(&vg_url).stdout.lines().count() != query(&am_url).stdout.lines().count() {
        assert!(
            Instant::now() < deadline,
            "alert query differs:\n{:?}\n{:?}",
            query(&am_url),
            query(&vg_url)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (am_q, vg_q) = (query(&am_url), query(&vg_url));
    assert_eq!(am_q, vg_q);
    for name in ["P1", "P4", "P7", "P8", "P10", "Amtool"] {
        assert!(
            vg_q.stdout.contains(name),
            "{name} missing: {}",
            vg_q.stdout
        );
    }
    assert!(
        !vg_q.stdout.contains("P9"),
        "an alert that ended is not listed"
    );

    // The API objects, with times masked: labels (empty ones dropped), annotations,
    // fingerprint, receivers, state.
    let alerts = |url: &str| {
        let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
        let path = format!(
            "/api/v2/alerts?filter={}",
            posted
                .replace('"', "%22")
                .replace(' ', "%20")
                .replace('~', "%7E")
                .replace('|', "%7C")
        );
        let (code, body) = http_get(addr, &path).unwrap();
        assert_eq!(code, 200, "{body}");
        let mut v: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        for a in &mut v {
            for t in ["startsAt", "endsAt", "updatedAt"] {
                a[t] = serde_json::Value::Null;
            }
        }
        v.sort_by_key(|a| a["fingerprint"].as_str().unwrap_or("").to_string());
        v
    };
    assert_eq!(alerts(&am_url), alerts(&vg_url));

    let receivers = |url: &str| {
        let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
        http_get(addr, "/api/v2/receivers").unwrap()
    };
    let (ac, ab) = receivers(&am_url);
    let (vc, vb) = receivers(&vg_url);
    assert_eq!(ac, vc);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&ab).unwrap(),
        serde_json::from_str::<serde_json::Value>(&vb).unwrap()
    );
}
