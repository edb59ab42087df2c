//! Test support shared by every Vigil test crate: loopback ports that no other test of
//! this process holds, and starting a child process on such a port with a retry when it
//! loses the race for that port anyway.
//!
//! A "free" port found by binding `127.0.0.1:0` and closing the socket is only free at
//! that moment: two tests of one binary can be handed the same number, and another process
//! can take it before the child binds it. [`free_port`] rules out the first race (every
//! port is handed out once per process, and it is checked free for TCP and UDP alike), and
//! [`start_on_free_port`] with [`wait_listening`] handles the second: a child that exits
//! before it listens is started again on a new port.
//!
//! [`xorshift64`] gives tests deterministic pseudo-random inputs without a dependency.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::Child;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How many times [`start_on_free_port`] tries before it gives up.
pub const START_ATTEMPTS: usize = 5;

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(Default::default)
}

/// A port on 127.0.0.1 that is free for both TCP and UDP right now and that this process
/// has not handed out before.
pub fn free_port() -> u16 {
    let mut ports = handed_out().lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let port = tcp.local_addr().expect("a bound socket's address").port();
        if ports.contains(&port) || UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        ports.insert(port);
        return port;
    }
    panic!("no free loopback port found in 1000 tries");
}

/// Calls `start` with a fresh [`free_port`] until it succeeds, at most [`START_ATTEMPTS`]
/// times; `start` returns `Err` with the reason when its child did not come up (typically
/// because another process took the port first). Panics naming `what` and every reason.
pub fn start_on_free_port<T>(what: &str, mut start: impl FnMut(u16) -> Result<T, String>) -> T {
    let mut errors = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let port = free_port();
        match start(port) {
            Ok(started) => return started,
            Err(e) => errors.push(format!("port {port}: {e}")),
        }
    }
    panic!(
        "{what} did not start in {START_ATTEMPTS} attempts: {}",
        errors.join("; ")
    )
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`. Fails, killing and
/// reaping `child`, when the child exits first (it could not bind, for example) or when
/// `timeout` passes.
pub fn wait_listening(child: &mut Child, port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status} before listening"));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("not listening after {timeout:?}"));
        }
        // Test code waiting for a child process: blocking here is deliberate, and a child
        // comes up in well under a second.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A xorshift64 generator from `seed` (which must not be 0): the same numbers on every run,
/// for tests that want varied inputs without a dependency.
pub fn xorshift64(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }

    #[test]
    fn concurrent_callers_get_distinct_ports() {
        let threads: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(|| (0..50).map(|_| free_port()).collect::<Vec<_>>()))
            .collect();
        let all: Vec<u16> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let distinct: HashSet<u16> = all.iter().copied().collect();
        assert_eq!(distinct.len(), all.len());
    }

    #[test]
    fn a_child_that_exits_is_reported_and_retried_on_a_new_port() {
        let mut tried = Vec::new();
        let port = start_on_free_port("flaky child", |port| {
            tried.push(port);
            if tried.len() < 3 {
                let mut child = Command::new("true").spawn().map_err(|e| e.to_string())?;
                wait_listening(&mut child, port, Duration::from_secs(5))?;
                unreachable!("`true` never listens");
            }
            Ok(port)
        });
        assert_eq!(tried.len(), 3);
        assert_eq!(port, tried[2]);
        assert_ne!(tried[0], tried[1]);
    }

    #[test]
    fn a_listening_child_is_ready() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        assert_eq!(
            wait_listening(&mut child, port, Duration::from_secs(5)),
            Ok(())
        );
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    #[should_panic(expected = "never up did not start in 5 attempts")]
    fn giving_up_names_what_failed() {
        start_on_free_port::<()>("never up", |_| Err("refused".into()));
    }
}
