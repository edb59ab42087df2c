//! Helpers for the end-to-end tests: scratch directories, certificates, starting and killing
//! the real `vigil-collector` and `vigil-agent` binaries, a scrape target whose counter
//! increments on every scrape (so "every sample" can be counted), an HTTP GET helper, a
//! fault-injecting UDP proxy (the kernel here has no netem), and the real Prometheus.
#![allow(dead_code, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The directory holding the workspace's built binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// Path to a workspace binary, failing with a hint when it has not been built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test does)",
        p.display()
    );
    p
}

/// A scratch directory removed on drop (kept when VIGIL_KEEP_TEST_DIRS is set).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!(
            "vigil-e2e-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p).expect("create scratch dir");
        Scratch(p)
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("VIGIL_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs a command to completion, returning (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("spawn command");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Creates a CA + collector certificate in `dir/certs` and agent certificates for `agents`
/// in `dir/agent-<name>`.
pub fn make_certs(dir: &Scratch, agents: &[&str]) -> PathBuf {
    let certs = dir.path("certs");
    let (code, _, err) = run(Command::new(bin("vigil-collector"))
        .args(["certs", "init", "--dir"])
        .arg(&certs));
    assert_eq!(code, 0, "certs init failed: {err}");
    for a in agents {
        let (code, _, err) = run(Command::new(bin("vigil-collector"))
            .args(["certs", "issue-agent", "--dir"])
            .arg(&certs)
            .args(["--name", a, "--out"])
            .arg(dir.path(&format!("agent-{a}"))));
        assert_eq!(code, 0, "issue-agent failed: {err}");
    }
    certs
}

/// A free UDP port on 127.0.0.1 (for QUIC), never handed out twice in this process.
pub fn free_udp_port() -> u16 {
    vigil_testkit::free_port()
}

/// A free TCP port on 127.0.0.1, never handed out twice in this process.
pub fn free_tcp_port() -> u16 {
    vigil_testkit::free_port()
}

/// Collects a child's stderr lines in the background so tests can search the log.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn capture(&self, r: impl Read + Send + 'static, echo: &'static str) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                if std::env::var_os("VIGIL_TEST_ECHO").is_some() {
                    eprintln!("[{echo}] {line}");
                }
                lines.lock().unwrap().push(line);
            }
        });
    }
    pub fn contains(&self, needle: &str) -> bool {
        self.0.lock().unwrap().iter().any(|l| l.contains(needle))
    }
    pub fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

/// A running collector.
pub struct Collector {
    pub child: Child,
    pub quic: SocketAddr,
    pub http: SocketAddr,
    pub log: Log,
    pub data_dir: PathBuf,
    pub certs: PathBuf,
}

impl Collector {
    /// Starts a collector on the given ports (0 = any) and waits until it is ready.
    pub fn start(data_dir: &Path, certs: &Path, quic_port: u16, http_port: u16) -> Collector {
        Collector::start_with_args(data_dir, certs, quic_port, http_port, &[] as &[&str])
    }

    /// Like [`Collector::start`], with extra `run` arguments (rule files, Alertmanager
    /// config, ...).
    pub fn start_with_args(
        data_dir: &Path,
        certs: &Path,
        quic_port: u16,
        http_port: u16,
        extra: &[impl AsRef<std::ffi::OsStr>],
    ) -> Collector {
        let mut child = Command::new(bin("vigil-collector"))
            .args(["run", "--data-dir"])
            .arg(data_dir)
            .arg("--certs-dir")
            .arg(certs)
            .args([
                "--quic-listen",
                &format!("127.0.0.1:{quic_port}"),
                "--http-listen",
                &format!("127.0.0.1:{http_port}"),
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vigil-collector");
        let log = Log::default();
        log.capture(child.stderr.take().unwrap(), "collector");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read collector stdout");
        let (quic, http) = parse_listening(&line).unwrap_or_else(|| {
            panic!("unexpected collector output {line:?}; log:\n{}", log.text())
        });
        std::thread::spawn(move || for _ in stdout.lines() {});
        let c = Collector {
            child,
            quic,
            http,
            log,
            data_dir: data_dir.into(),
            certs: certs.into(),
        };
        wait_for(
            Duration::from_secs(20),
            || {
                http_get(c.http, "/ready")
                    .map(|(code, _)| code == 200)
                    .unwrap_or(false)
            },
            "collector ready",
        );
        c
    }

    /// Restarts on the same ports after the process has exited or been killed.
    pub fn restart(&mut self) {
        let n = Collector::start(
            &self.data_dir,
            &self.certs,
            self.quic.port(),
            self.http.port(),
        );
        *self = n;
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Sends `series` to `/api/v1/write` as Prometheus's remote_write does: status and body.
    pub fn remote_write(&self, series: &[vigil_shared::model::Series]) -> (u16, String) {
        let body = vigil_collector::api::remote_write::encode(series);
        http_request(
            self.http,
            "POST",
            "/api/v1/write",
            &[
                ("Content-Encoding", "snappy"),
                ("Content-Type", "application/x-protobuf"),
                ("X-Prometheus-Remote-Write-Version", "0.1.0"),
            ],
            &body,
        )
        .unwrap_or_else(|e| panic!("POST /api/v1/write: {e}"))
    }

    /// Raw samples of `selector` as (timestamp, value), via /api/v1/export.
    pub fn export(&self, selector: &str) -> Vec<(serde_json::Value, Vec<(i64, f64)>)> {
        let (code, body) = self.get(&format!("/api/v1/export?match[]={}", urlencode(selector)));
        assert_eq!(code, 200, "export failed: {body}");
        body.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("export line is JSON");
                let ts = v["timestamps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_i64().unwrap());
                let vals = v["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap_or(f64::NAN));
                (v["metric"].clone(), ts.zip(vals).collect())
            })
            .collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.trim().strip_prefix("vigil-collector listening ")?;
    let mut quic = None;
    let mut http = None;
    for part in rest.split_whitespace() {
        if let Some(v) = part.strip_prefix("quic=") {
            quic = v.parse().ok();
        }
        if let Some(v) = part.strip_prefix("http=") {
            http = v.parse().ok();
        }
    }
    Some((quic?, http?))
}

/// A running agent.
pub struct Agent {
    pub child: Child,
    pub log: Log,
    pub socket: PathBuf,
    pub args: Vec<String>,
    /// Extra environment variables (e.g. `POD_NAME`).
    pub env: Vec<(String, String)>,
}

impl Agent {
    /// Starts `vigil-agent run` with the given extra arguments.
    pub fn start(dir: &Scratch, name: &str, collectors: &str, extra: &[&str]) -> Agent {
        Agent::start_with_env(dir, name, collectors, extra, &[])
    }

    /// Like [`Agent::start`], with extra environment variables for the agent process.
    pub fn start_with_env(
        dir: &Scratch,
        name: &str,
        collectors: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        let socket = dir.path(&format!("{name}.sock"));
        let mut args: Vec<String> = vec![
            "run".into(),
            "--data-dir".into(),
            dir.path(&format!("{name}-data")).display().to_string(),
            "--certs-dir".into(),
            dir.path(&format!("agent-{name}")).display().to_string(),
            "--collector".into(),
            collectors.into(),
            "--status-socket".into(),
            socket.display().to_string(),
            "--host".into(),
            name.into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Agent::spawn(args, socket, env)
    }

    fn spawn(args: Vec<String>, socket: PathBuf, env: Vec<(String, String)>) -> Agent {
        let mut child = Command::new(bin("vigil-agent"))
            .args(&args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vigil-agent");
        let log = Log::default();
        log.capture(child.stderr.take().unwrap(), "agent");
        Agent {
            child,
            log,
            socket,
            args,
            env,
        }
    }

    pub fn restart(&mut self) {
        let n = Agent::spawn(self.args.clone(), self.socket.clone(), self.env.clone());
        *self = n;
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `vigil-agent status --json`, parsed, with the exit code.
    pub fn status(&self) -> (i32, serde_json::Value) {
        let (code, out, _) = run(Command::new(bin("vigil-agent"))
            .args(["status", "--json", "--status-socket"])
            .arg(&self.socket));
        (
            code,
            serde_json::from_str(&out).unwrap_or(serde_json::Value::Null),
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A minimal blocking HTTP/1.1 request; returns status and body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((code, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, &[], b"")
}

/// Polls `cond` until it holds or `timeout` passes (then panics naming `what`).
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A scrape target whose counter increments on every scrape. Each served value is recorded,
/// so a test can check that every collected sample arrived exactly once.
pub struct CounterTarget {
    pub addr: SocketAddr,
    pub served: Arc<Mutex<Vec<u64>>>,
    pub paused: Arc<AtomicBool>,
    /// The value served as `test_gauge`.
    pub gauge: Arc<AtomicU64>,
    counter: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl CounterTarget {
    pub fn start() -> CounterTarget {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        l.set_nonblocking(true).unwrap();
        let served = Arc::new(Mutex::new(Vec::new()));
        let paused = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let gauge = Arc::new(AtomicU64::new(1));
        let (s2, p2, c2, st2, g2) = (
            served.clone(),
            paused.clone(),
            counter.clone(),
            stop.clone(),
            gauge.clone(),
        );
        std::thread::spawn(move || {
            while !st2.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).ok();
                        conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
                        let mut buf = [0u8; 4096];
                        let _ = conn.read(&mut buf);
                        if p2.load(Ordering::SeqCst) {
                            let _ = conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                            continue;
                        }
                        let n = c2.fetch_add(1, Ordering::SeqCst) + 1;
                        let g = g2.load(Ordering::SeqCst);
                        let body = format!(
                            "# TYPE test_scrapes_total counter\ntest_scrapes_total {n}\n# TYPE test_gauge gauge\ntest_gauge {g}\n"
                        );
                        let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                        if conn.write_all(resp.as_bytes()).is_ok() {
                            s2.lock().unwrap().push(n);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        CounterTarget {
            addr,
            served,
            paused,
            gauge,
            counter,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    pub fn served(&self) -> Vec<u64> {
        self.served.lock().unwrap().clone()
    }
}

impl Drop for CounterTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The values of `test_scrapes_total` stored by the collector, in timestamp order, for one
/// agent host.
pub fn stored_counter_values(c: &Collector, host: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for (_, points) in c.export(&format!("test_scrapes_total{{host=\"{host}\"}}")) {
        out.extend(points.into_iter().map(|(_, v)| v as u64));
    }
    out
}

/// Asserts that `stored` holds each served value exactly once, allowing `may_miss` values
/// to be missing (the in-flight cycle of a killed agent).
pub fn assert_exactly_once(served: &[u64], stored: &[u64], may_miss: usize) {
    let mut seen = std::collections::BTreeMap::new();
    for v in stored {
        *seen.entry(*v).or_insert(0) += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        dups.is_empty(),
        "duplicated samples (value, count): {dups:?}"
    );
    let missing: Vec<_> = served.iter().filter(|v| !seen.contains_key(v)).collect();
    assert!(
        missing.len() <= may_miss,
        "{} served samples missing (allowed {may_miss}): {missing:?}",
        missing.len()
    );
    let unknown: Vec<_> = seen.keys().filter(|v| !served.contains(v)).collect();
    assert!(
        unknown.is_empty(),
        "stored values never served: {unknown:?}"
    );
}

/// A UDP proxy between agents and a collector that drops packets with a given probability
/// in each direction, and can partition (drop everything) on demand.
pub struct FaultyProxy {
    pub addr: SocketAddr,
    pub loss_percent: Arc<AtomicU64>,
    pub partitioned: Arc<AtomicBool>,
    pub dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl FaultyProxy {
    pub fn start(upstream: SocketAddr) -> FaultyProxy {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = front.local_addr().unwrap();
        front
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        back.connect(upstream).unwrap();
        back.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let loss = Arc::new(AtomicU64::new(0));
        let part = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let drop_now = {
            let (loss, part) = (loss.clone(), part.clone());
            move || {
                part.load(Ordering::SeqCst)
                    || rand::random::<u64>() % 100 < loss.load(Ordering::SeqCst)
            }
        };
        {
            let (front, back, client, stop, dropped, drop_now) = (
                front.try_clone().unwrap(),
                back.try_clone().unwrap(),
                client.clone(),
                stop.clone(),
                dropped.clone(),
                drop_now.clone(),
            );
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::SeqCst) {
                    if let Ok((n, from)) = front.recv_from(&mut buf) {
                        *client.lock().unwrap() = Some(from);
                        if drop_now() {
                            dropped.fetch_add(1, Ordering::SeqCst);
                        } else {
                            let _ = back.send(&buf[..n]);
                        }
                    }
                }
            });
        }
        {
            let (stop, dropped) = (stop.clone(), dropped.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(n) = back.recv(&mut buf) {
                        let to = *client.lock().unwrap();
                        if drop_now() {
                            dropped.fetch_add(1, Ordering::SeqCst);
                        } else if let Some(to) = to {
                            let _ = front.send_to(&buf[..n], to);
                        }
                    }
                }
            });
        }
        FaultyProxy {
            addr,
            loss_percent: loss,
            partitioned: part,
            dropped,
            stop,
        }
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A scrape target serving whatever exposition text the test sets, or `503` while it is
/// switched down: an application whose health a test flips.
pub struct SwitchableTarget {
    pub addr: SocketAddr,
    body: Arc<Mutex<String>>,
    down: Arc<AtomicBool>,
    /// Successful scrapes served.
    pub scrapes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl SwitchableTarget {
    pub fn start(body: &str) -> SwitchableTarget {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        l.set_nonblocking(true).unwrap();
        let t = SwitchableTarget {
            addr,
            body: Arc::new(Mutex::new(body.to_string())),
            down: Arc::new(AtomicBool::new(false)),
            scrapes: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (body, down, scrapes, stop) = (
            t.body.clone(),
            t.down.clone(),
            t.scrapes.clone(),
            t.stop.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).ok();
                        conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
                        let mut buf = [0u8; 4096];
                        let _ = conn.read(&mut buf);
                        if down.load(Ordering::SeqCst) {
                            let _ = conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                            continue;
                        }
                        let b = body.lock().unwrap().clone();
                        let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len());
                        if conn.write_all(resp.as_bytes()).is_ok() {
                            scrapes.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        t
    }

    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// Replaces the exposition text served from the next scrape on.
    pub fn set_body(&self, body: &str) {
        *self.body.lock().unwrap() = body.to_string();
    }

    /// Switches the target down (every scrape gets 503) or back up.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

impl Drop for SwitchableTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One POST a [`WebhookReceiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request path, e.g. `/pagerduty-critical`.
    pub path: String,
    /// The body, parsed as JSON (`Null` when it is not JSON).
    pub body: serde_json::Value,
    /// When the whole request had arrived.
    pub at: Instant,
}

/// A local HTTP server that answers every POST with 200 and records it with its arrival
/// time, standing in for Alertmanager webhook receivers. Keep-alive connections are served.
pub struct WebhookReceiver {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl WebhookReceiver {
    pub fn start() -> WebhookReceiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        l.set_nonblocking(true).unwrap();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (rec, st) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((conn, _)) => {
                        let rec = rec.clone();
                        std::thread::spawn(move || serve_webhook_conn(conn, &rec));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        WebhookReceiver {
            addr,
            received,
            stop,
        }
    }

    /// The URL for path `/name`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    /// Everything received so far, in arrival order.
    pub fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// What arrived on `path`.
    pub fn on(&self, path: &str) -> Vec<Received> {
        self.all().into_iter().filter(|r| r.path == path).collect()
    }

    /// Waits up to `timeout` for a POST on `path` whose body satisfies `pred`; returns the
    /// first such one (it may have arrived before the call).
    pub fn wait_for(
        &self,
        path: &str,
        timeout: Duration,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self
                .all()
                .into_iter()
                .find(|r| r.path == path && pred(&r.body))
            {
                return Some(r);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve_webhook_conn(conn: TcpStream, rec: &Mutex<Vec<Received>>) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut len = 0usize;
        let mut close = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
        }
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let at = Instant::now();
        rec.lock().unwrap().push(Received {
            path,
            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            at,
        });
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
            || close
        {
            return;
        }
    }
}

/// `POST path` (empty body) to the collector's HTTP API; returns status and body.
pub fn http_post(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "POST", path, &[], b"")
}

/// Asks the collector to have `agent` run `action` (`POST
/// /api/v1/agents/{agent}/actions/{action}`, plus `query` such as `?timeout=2s`); returns the
/// status and the parsed JSON body.
pub fn remote_action(
    c: &Collector,
    agent: &str,
    action: &str,
    query: &str,
) -> (u16, serde_json::Value) {
    let path = format!(
        "/api/v1/agents/{}/actions/{}{query}",
        urlencode(agent),
        urlencode(action)
    );
    let (code, body) = http_post(c.http, &path).unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let v = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("POST {path}: {code} with a non-JSON body ({e}): {body}"));
    (code, v)
}

/// The value of one sample line of the collector's `/metrics` (exact series text, e.g.
/// `vigil_collector_remote_actions_total{result="ok"}`), if present.
pub fn collector_metric(c: &Collector, series: &str) -> Option<f64> {
    let (_, body) = c.get("/metrics");
    body.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Waits until `vigil-agent status` reports a connected collector.
pub fn wait_agent_connected(a: &Agent, timeout: Duration) {
    wait_for(
        timeout,
        || a.status().1["collector"]["connected"] == serde_json::Value::Bool(true),
        "the agent to connect to the collector",
    );
}

/// Debian's Prometheus, the oracle and peer of several tests.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A running Prometheus on 127.0.0.1, killed on drop.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML) and `extra` flags in `dir` and waits until it
    /// is ready.
    pub fn start(dir: &Scratch, config: &str, extra: &[&str]) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing: install the prometheus package"
        );
        let config_path = dir.path("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let p = vigil_testkit::start_on_free_port("prometheus", |port| {
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let mut child = Command::new(PROMETHEUS)
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path("prometheus-data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("spawning {PROMETHEUS}: {e}"))?;
            vigil_testkit::wait_listening(&mut child, port, Duration::from_secs(60))?;
            Ok(Prometheus { child, addr })
        });
        let addr = p.addr;
        wait_for(
            Duration::from_secs(60),
            || http_get(addr, "/-/ready").is_ok_and(|(c, _)| c == 200),
            "prometheus ready",
        );
        p
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
