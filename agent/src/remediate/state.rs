//! Persistent guard state: each action's last run, its runs inside the flap window and the
//! end of a flap-guard suspension, kept in `<data_dir>/remediation-state.json` so that a
//! restarted (or crash-looping) agent still honours cooldowns and the flap guard. The file is
//! rewritten whole on every change that admits a run or trips the guard, before the action is
//! executed: written to a temporary file, fsynced, renamed over the old one and the directory
//! fsynced, so a crash leaves either the old or the new state, never a torn one.
//!
//! Times are Unix milliseconds. Inside one process they come from a [`GuardClock`], the wall
//! clock read once at start and advanced by the monotonic clock, so a wall-clock step does
//! not shorten a cooldown while the agent runs; across a restart the wall clock is all there
//! is, and a stored time in the future (the clock went back) is clamped to now, which keeps
//! the guard on the safe side. A file that cannot be parsed is moved aside
//! (`remediation-state.json.corrupt-<ms>`), logged, and replaced by an empty state.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// The state file's name under the data directory.
pub const STATE_FILE: &str = "remediation-state.json";
/// The version written into the file; a file with another version is treated as corrupt.
pub const STATE_VERSION: u32 = 1;

/// The wall clock anchored at start and advanced monotonically: Unix milliseconds that never
/// go backwards within one process.
#[derive(Debug, Clone, Copy)]
pub struct GuardClock {
    wall_ms: i64,
    at: Instant,
}

impl GuardClock {
    /// Anchors the clock at the current wall-clock time.
    pub fn start() -> GuardClock {
        GuardClock {
            wall_ms: crate::clock::now_ms(),
            at: Instant::now(),
        }
    }

    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.wall_ms + self.at.elapsed().as_millis() as i64
    }
}

/// One action's guard state as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredGuard {
    /// When the last admitted run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_ms: Option<i64>,
    /// Start times of the runs inside the flap window, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs_ms: Vec<i64>,
    /// The end of a flap-guard suspension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_until_ms: Option<i64>,
}

impl StoredGuard {
    /// True when nothing is worth storing.
    pub fn is_empty(&self) -> bool {
        self.last_run_ms.is_none() && self.runs_ms.is_empty() && self.suspended_until_ms.is_none()
    }

    /// Clamps every time to at most `now_ms` (a stored time in the future means the wall
    /// clock went back; treating it as now keeps cooldowns and suspensions in force).
    pub fn clamped(mut self, now_ms: i64) -> StoredGuard {
        self.last_run_ms = self.last_run_ms.map(|t| t.min(now_ms));
        for t in &mut self.runs_ms {
            *t = (*t).min(now_ms);
        }
        // A suspension legitimately ends in the future; it cannot be further out than one
        // window from a run, which the caller does not know here, so it is kept as stored.
        self
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    pub version: u32,
    /// Guard state by action name.
    pub actions: BTreeMap<String, StoredGuard>,
}

/// The state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading, writing, syncing or renaming failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// How opening the state went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadOutcome {
    /// No file yet: every action starts fresh.
    Fresh,
    /// The file was read.
    Loaded,
    /// The file could not be parsed and was moved to `moved_to`.
    MovedAside { moved_to: PathBuf, error: String },
}

/// The state file, serialising writers within the process.
#[derive(Debug)]
pub struct GuardStore {
    path: PathBuf,
    write: Mutex<()>,
}

impl GuardStore {
    /// Opens `path`, reading the stored state. A missing file is an empty state; an
    /// unparsable one is moved aside and reported in the [`LoadOutcome`].
    pub fn open(path: &Path) -> Result<(GuardStore, StateFile, LoadOutcome), StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io("creating the directory of", path))?;
        }
        let store = GuardStore {
            path: path.to_path_buf(),
            write: Mutex::new(()),
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((store, StateFile::default(), LoadOutcome::Fresh))
            }
            Err(e) => return Err(io("reading", path)(e)),
        };
        let parsed = serde_json::from_slice::<StateFile>(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                if f.version == STATE_VERSION {
                    Ok(f)
                } else {
                    Err(format!(
                        "version {} is not the supported version {STATE_VERSION}",
                        f.version
                    ))
                }
            });
        match parsed {
            Ok(f) => Ok((store, f, LoadOutcome::Loaded)),
            Err(error) => {
                let mut moved = path.as_os_str().to_owned();
                moved.push(format!(".corrupt-{}", crate::clock::now_ms()));
                let moved_to = PathBuf::from(moved);
                std::fs::rename(path, &moved_to).map_err(io("moving aside", path))?;
                Ok((
                    store,
                    StateFile::default(),
                    LoadOutcome::MovedAside { moved_to, error },
                ))
            }
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file with `snapshot()`, taken under the writer lock so that the last
    /// write always carries the newest state. Blocking: call it off the async threads.
    pub fn save(&self, snapshot: impl FnOnce() -> StateFile) -> Result<(), StateError> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let state = snapshot();
        let body = serde_json::to_vec_pretty(&state).map_err(|e| StateError::Io {
            op: "encoding",
            path: self.path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io("creating", &tmp))?;
            f.write_all(&body).map_err(io("writing", &tmp))?;
            f.sync_all().map_err(io("syncing", &tmp))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io("renaming over", &self.path))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("syncing the directory of", &self.path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("vigil-guard-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn state_round_trips_through_the_file() {
        let dir = scratch("roundtrip");
        let path = dir.join(STATE_FILE);
        let (store, empty, outcome) = GuardStore::open(&path).unwrap();
        assert_eq!(outcome, LoadOutcome::Fresh);
        assert!(empty.actions.is_empty());
        let mut state = StateFile {
            version: STATE_VERSION,
            ..Default::default()
        };
        state.actions.insert(
            "clean_tmp".into(),
            StoredGuard {
                last_run_ms: Some(1_700_000_000_000),
                runs_ms: vec![1_699_999_000_000, 1_700_000_000_000],
                suspended_until_ms: Some(1_700_003_600_000),
            },
        );
        store.save(|| state.clone()).unwrap();
        assert!(!dir.join(format!("{STATE_FILE}.tmp")).exists());
        let (_, back, outcome) = GuardStore::open(&path).unwrap();
        assert_eq!(outcome, LoadOutcome::Loaded);
        assert_eq!(back, state);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_and_the_state_starts_empty() {
        let dir = scratch("corrupt");
        let path = dir.join(STATE_FILE);
        std::fs::write(
            &path,
            b"{\"version\":1,\"actions\":{\"a\":{\"last_run_ms\":",
        )
        .unwrap();
        let (_, state, outcome) = GuardStore::open(&path).unwrap();
        assert!(state.actions.is_empty());
        let LoadOutcome::MovedAside { moved_to, error } = outcome else {
            panic!("expected the file to be moved aside, got {outcome:?}")
        };
        assert!(moved_to.exists() && !path.exists());
        assert!(error.contains("EOF"), "{error}");
        // An unknown version is not silently reinterpreted.
        std::fs::write(&path, b"{\"version\":99,\"actions\":{}}").unwrap();
        let (_, _, outcome) = GuardStore::open(&path).unwrap();
        assert!(
            matches!(&outcome, LoadOutcome::MovedAside { error, .. } if error.contains("version 99")),
            "{outcome:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn future_times_are_clamped_to_now() {
        let g = StoredGuard {
            last_run_ms: Some(5_000),
            runs_ms: vec![1_000, 5_000],
            suspended_until_ms: Some(9_000),
        }
        .clamped(2_000);
        assert_eq!(g.last_run_ms, Some(2_000));
        assert_eq!(g.runs_ms, vec![1_000, 2_000]);
        assert_eq!(g.suspended_until_ms, Some(9_000));
    }

    #[test]
    fn the_guard_clock_does_not_go_backwards() {
        let c = GuardClock::start();
        let a = c.now_ms();
        let b = c.now_ms();
        assert!(b >= a);
        assert!((a - crate::clock::now_ms()).abs() < 5_000);
    }
}
