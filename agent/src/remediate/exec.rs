//! Runs one action's command: directly (no shell), in its own process group, with a cleared
//! environment, optionally as another user, capturing at most [`MAX_CAPTURE_BYTES`] of stdout
//! and of stderr, and killing the whole process group with SIGKILL when the timeout expires.
//! A command that exits normally keeps the processes it started (a restarted daemon); a
//! process that escaped the group with `setsid` is out of reach of the timeout kill.

use super::config::RunAs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Bytes of stdout and (separately) of stderr kept per run; the rest is read and discarded.
pub const MAX_CAPTURE_BYTES: usize = 64 * 1024;
/// After the command exits, how long to wait for processes it left behind to close its
/// stdout/stderr before the captured output is taken as it is.
pub const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// Captured output of one stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Captured {
    /// The first [`MAX_CAPTURE_BYTES`], lossily decoded as UTF-8.
    pub text: String,
    /// More was written than was kept, or the stream was still open when capture stopped.
    pub truncated: bool,
    /// Total bytes read.
    pub total_bytes: u64,
}

/// How the command ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// Exit code, when it exited normally.
    pub exit_code: Option<i32>,
    /// Signal that ended it, when it was killed.
    pub signal: Option<i32>,
    /// It ran past its timeout and its process group was killed.
    pub timed_out: bool,
    /// Wall time from spawn to exit.
    pub duration: Duration,
    /// Process id of the command (also its process group id).
    pub pid: u32,
    pub stdout: Captured,
    pub stderr: Captured,
}

/// The command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// `spawn` failed (missing file, permission, `user` without root, ...).
    #[error("starting {path}: {source}")]
    Spawn {
        path: String,
        source: std::io::Error,
    },
    /// Waiting for the child failed.
    #[error("waiting for {path}: {source}")]
    Wait {
        path: String,
        source: std::io::Error,
    },
}

/// Reads `r` to EOF into `into`, keeping the first [`MAX_CAPTURE_BYTES`].
async fn capture(r: Option<impl AsyncRead + Unpin>, into: Arc<Mutex<(Vec<u8>, u64)>>) {
    let Some(mut r) = r else { return };
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut g = into.lock().unwrap_or_else(|p| p.into_inner());
                g.1 += n as u64;
                let room = MAX_CAPTURE_BYTES.saturating_sub(g.0.len());
                g.0.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

fn captured(c: &Mutex<(Vec<u8>, u64)>, complete: bool) -> Captured {
    let g = c.lock().unwrap_or_else(|p| p.into_inner());
    Captured {
        text: String::from_utf8_lossy(&g.0).into_owned(),
        truncated: !complete || g.1 > g.0.len() as u64,
        total_bytes: g.1,
    }
}

/// Sends SIGKILL to process group `pgid`. Errors (the group is already gone) are ignored.
pub fn kill_group(pgid: u32) {
    if let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Runs `command args` with exactly `env` (plus nothing inherited), as `run_as` if given,
/// and waits at most `timeout` for it to exit.
pub async fn run_command(
    command: &Path,
    args: &[String],
    env: &[(String, String)],
    run_as: Option<RunAs>,
    timeout: Duration,
) -> Result<Finished, SpawnError> {
    let path = command.display().to_string();
    let mut cmd = Command::new(command);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(u) = run_as {
        // std clears supplementary groups (setgroups(0)) when switching uid as root.
        cmd.uid(u.uid).gid(u.gid);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| SpawnError::Spawn {
        path: path.clone(),
        source,
    })?;
    let pid = child.id().unwrap_or(0);
    let (out_buf, err_buf) = (Arc::default(), Arc::default());
    let out = tokio::spawn(capture(child.stdout.take(), Arc::clone(&out_buf)));
    let err = tokio::spawn(capture(child.stderr.take(), Arc::clone(&err_buf)));
    let (status, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(r) => (r, false),
        Err(_) => {
            kill_group(pid);
            (child.wait().await, true)
        }
    };
    let duration = started.elapsed();
    let status = status.map_err(|source| SpawnError::Wait {
        path: path.clone(),
        source,
    })?;
    if timed_out {
        // Members of the group that outlived the leader's kill (none, normally) go too.
        kill_group(pid);
    }
    // A process the command left running may hold the pipes open: wait briefly, then take
    // what was read so far (marked truncated).
    let drain = |h: tokio::task::JoinHandle<()>| async move {
        let abort = h.abort_handle();
        let done = tokio::time::timeout(DRAIN_GRACE, h).await.is_ok();
        abort.abort();
        done
    };
    let (out_done, err_done) = tokio::join!(drain(out), drain(err));
    let (stdout, stderr) = (captured(&out_buf, out_done), captured(&err_buf, err_done));
    use std::os::unix::process::ExitStatusExt;
    Ok(Finished {
        exit_code: status.code(),
        signal: status.signal(),
        timed_out,
        duration,
        pid,
        stdout,
        stderr,
    })
}
