//! The local audit log: one JSON object per line for every remediation run and refusal,
//! appended and fsync'd before the run is reported, so the record survives a crash.

use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One audit record (one line of the log).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditRecord {
    /// Unix time in milliseconds when the run started or the request was refused.
    pub timestamp_ms: i64,
    /// The action requested.
    pub action: String,
    /// `ok`, `failed`, `timeout`, `dry_run`, `refused` or `spawn_error`.
    pub outcome: String,
    /// Why it was refused or could not start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `check`, `remote` or `cli`.
    pub trigger: String,
    /// The check that fired, for check triggers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// Who asked, for remote and CLI triggers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Labels of the series that fired, as `{a="b",...}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    /// The command and arguments as executed (or as they would have been).
    pub argv: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stdout_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stderr_truncated: bool,
}

/// The audit log could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Opening (or creating the directory of) the log failed.
    #[error("opening audit log {0}: {1}")]
    Open(String, std::io::Error),
    /// Appending or syncing a record failed.
    #[error("writing audit log {0}: {1}")]
    Write(String, std::io::Error),
}

/// An append-only, fsync-per-record JSON-lines file.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    file: Arc<Mutex<std::fs::File>>,
}

impl AuditLog {
    /// Opens (creating it and its directory, mode 0600) the log at `path` for appending.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let p = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| AuditError::Open(p.clone(), e))?;
        }
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| AuditError::Open(p, e))?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record` as one line and fsyncs, off the async threads.
    pub async fn append(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(record).unwrap_or_else(|e| {
            format!(
                "{{\"action\":{:?},\"outcome\":\"unserializable\",\"reason\":{:?}}}",
                record.action,
                e.to_string()
            )
            .into_bytes()
        });
        line.push(b'\n');
        let file = Arc::clone(&self.file);
        let p = self.path.display().to_string();
        let r = tokio::task::spawn_blocking(move || {
            let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
            // One write of the whole line, so concurrent appenders (the CLI) do not interleave.
            f.write_all(&line)?;
            f.sync_data()
        })
        .await;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AuditError::Write(p, e)),
            Err(e) => Err(AuditError::Write(p, std::io::Error::other(e.to_string()))),
        }
    }
}
