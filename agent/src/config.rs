//! The agent's settings: a TOML file whose every field can also be given as a flag (flags
//! win), validated as a whole so that `check-config` names every problem at once.

use crate::checks::threshold::CheckConfig;
use crate::remediate::config::{ActionConfig, RemediationSettings};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use vigil_shared::config::ConfigFile;
use vigil_shared::duration::NonZeroDuration;

pub use vigil_shared::config::ConfigError;

/// The `job` of a scrape target that names none (every `--scrape` flag).
pub const DEFAULT_JOB: &str = "app";

/// One application endpoint to scrape.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// `http://host:port/path` of a Prometheus or OpenMetrics text endpoint.
    pub url: String,
    /// The `job` label. Default `app`.
    #[serde(default)]
    pub job: Option<String>,
    /// Per-scrape timeout; defaults to the collection interval, capped at 10s.
    #[serde(default)]
    pub timeout: Option<NonZeroDuration>,
}

/// The agent's configuration file.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Directory for the durable buffer. Default `/var/lib/vigil-agent`.
    pub data_dir: Option<PathBuf>,
    /// Directory holding `ca.pem`, `agent.pem` and `agent.key` (`certs issue-agent` output).
    pub certs_dir: Option<PathBuf>,
    /// Collector addresses, `host:port`, in failover order.
    #[serde(default)]
    pub collectors: Vec<String>,
    /// TLS name to verify on the collector certificate; default: each address's host.
    pub server_name: Option<String>,
    /// Collection interval. Default 10s.
    pub interval: Option<NonZeroDuration>,
    /// Unix socket for `vigil-agent status`. Default `/run/vigil-agent/status.sock`.
    pub status_socket: Option<PathBuf>,
    /// Address for the agent's own `/metrics`; off when unset.
    pub metrics_listen: Option<SocketAddr>,
    /// Bound on the buffer in bytes. Default 256 MiB.
    pub buffer_max_bytes: Option<u64>,
    /// Batches outstanding at once. Default 32.
    pub max_in_flight: Option<usize>,
    /// Host identity for the `host`/`instance` labels. Default: `$NODE_NAME`, else the hostname.
    pub host: Option<String>,
    /// Where the host's /proc is mounted (a DaemonSet mounts it at /host/proc). Default /proc.
    pub procfs: Option<PathBuf>,
    /// Where the host's /sys is mounted. Default /sys.
    pub sysfs: Option<PathBuf>,
    /// Where the host's root filesystem is mounted, for filesystem metrics. Default /.
    pub rootfs: Option<PathBuf>,
    /// Application endpoints to scrape.
    #[serde(default)]
    pub scrape: Vec<ScrapeConfig>,
    /// Local threshold and anomaly checks; default: one anomaly check over key host metrics.
    #[serde(default)]
    pub checks: Vec<CheckConfig>,
    /// Allow-listed remediation actions that checks (or, if allowed, the collector) may run.
    #[serde(default)]
    pub actions: Vec<ActionConfig>,
    /// Settings shared by all actions.
    #[serde(default)]
    pub remediation: RemediationSettings,
}

impl ConfigFile for AgentConfig {
    type Settings = Settings;

    fn overlay(mut self, flags: AgentConfig) -> AgentConfig {
        vigil_shared::overlay_fields!(self, flags;
            data_dir,
            certs_dir,
            collectors,
            server_name,
            interval,
            status_socket,
            metrics_listen,
            buffer_max_bytes,
            max_in_flight,
            host,
            procfs,
            sysfs,
            rootfs,
            scrape,
            remediation,
        );
        self
    }

    /// Checks everything that can be checked without starting, and resolves defaults.
    fn validate(self) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();
        if self.collectors.is_empty() {
            problems.push("collectors: at least one collector address is required (e.g. --collector 127.0.0.1:4433)".to_string());
        }
        for c in &self.collectors {
            if c.rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                problems.push(format!(
                    "collectors: {c:?} is not host:port (e.g. \"collector.example:4433\")"
                ));
            }
        }
        let certs_dir = self
            .certs_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/vigil/agent"));
        use vigil_shared::certs::files;
        for f in [files::CA_CERT, files::AGENT_CERT, files::AGENT_KEY] {
            let p = certs_dir.join(f);
            if !p.is_file() {
                problems.push(format!(
                    "certs_dir: {} is missing (create it with `vigil-collector certs issue-agent`)",
                    p.display()
                ));
            }
        }
        let mut scrapes = Vec::new();
        let interval = self
            .interval
            .map(|d| d.get())
            .unwrap_or(std::time::Duration::from_secs(10));
        for (i, s) in self.scrape.iter().enumerate() {
            match crate::collect::ScrapeTarget::new(
                &s.url,
                s.job.as_deref().unwrap_or(DEFAULT_JOB),
                None,
            ) {
                Ok(target) => scrapes.push((
                    target,
                    s.timeout
                        .map(|t| t.get())
                        .unwrap_or(interval.min(std::time::Duration::from_secs(10))),
                )),
                Err(e) => problems.push(format!("scrape[{i}].url: {e}")),
            }
        }
        let buffer_max_bytes = self.buffer_max_bytes.unwrap_or(256 << 20);
        if buffer_max_bytes < 1 << 20 {
            problems.push(format!(
                "buffer_max_bytes: {buffer_max_bytes} is below the minimum of 1048576 (1 MiB)"
            ));
        }
        let max_in_flight = self.max_in_flight.unwrap_or(32);
        if !(1..=1024).contains(&max_in_flight) {
            problems.push(format!(
                "max_in_flight: {max_in_flight} must be between 1 and 1024"
            ));
        }
        let host = self
            .host
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok().filter(|s| !s.is_empty()))
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "localhost".into());
        problems.extend(crate::remediate::config::validate_all(
            &self.remediation,
            &self.checks,
            &self.actions,
        ));
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        Ok(Settings {
            checks: if self.checks.is_empty() {
                crate::checks::threshold::ThresholdChecks::default_configs()
            } else {
                self.checks
            },
            actions: self.actions,
            remediation: self.remediation,
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from("/var/lib/vigil-agent")),
            certs_dir,
            collectors: self.collectors,
            server_name: self.server_name,
            interval,
            status_socket: self
                .status_socket
                .unwrap_or_else(|| PathBuf::from("/run/vigil-agent/status.sock")),
            metrics_listen: self.metrics_listen,
            buffer_max_bytes,
            max_in_flight,
            host,
            pod: std::env::var("POD_NAME").ok().filter(|s| !s.is_empty()),
            procfs: self.procfs.unwrap_or_else(|| PathBuf::from("/proc")),
            sysfs: self.sysfs.unwrap_or_else(|| PathBuf::from("/sys")),
            rootfs: self.rootfs.unwrap_or_else(|| PathBuf::from("/")),
            scrapes,
        })
    }
}

/// Validated settings with defaults resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub certs_dir: PathBuf,
    pub collectors: Vec<String>,
    pub server_name: Option<String>,
    pub interval: std::time::Duration,
    pub status_socket: PathBuf,
    pub metrics_listen: Option<SocketAddr>,
    pub buffer_max_bytes: u64,
    pub max_in_flight: usize,
    pub host: String,
    pub pod: Option<String>,
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
    pub scrapes: Vec<(crate::collect::ScrapeTarget, std::time::Duration)>,
    pub checks: Vec<CheckConfig>,
    pub actions: Vec<ActionConfig>,
    pub remediation: RemediationSettings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_named_with_their_line() {
        let err = toml::from_str::<AgentConfig>("collectors = [\"a:1\"]\nintervall = \"1s\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("intervall"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let cfg = AgentConfig {
            collectors: vec!["no-port".into()],
            certs_dir: Some("/nonexistent".into()),
            buffer_max_bytes: Some(10),
            max_in_flight: Some(0),
            ..Default::default()
        };
        let ConfigError::Invalid(problems) = cfg.validate().unwrap_err() else {
            panic!("expected Invalid")
        };
        let all = problems.join("\n");
        for needle in [
            "no-port",
            "ca.pem",
            "agent.key",
            "buffer_max_bytes",
            "max_in_flight",
        ] {
            assert!(all.contains(needle), "missing {needle} in:\n{all}");
        }
    }

    #[test]
    fn flags_override_the_file() {
        let file = AgentConfig {
            collectors: vec!["a:1".into()],
            host: Some("file".into()),
            ..Default::default()
        };
        let flags = AgentConfig {
            host: Some("flag".into()),
            ..Default::default()
        };
        let merged = file.overlay(flags);
        assert_eq!(merged.host.as_deref(), Some("flag"));
        assert_eq!(merged.collectors, vec!["a:1".to_string()]);
    }
}
