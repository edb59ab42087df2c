//! The `[remediation]` and `[[actions]]` config schema, its validation (every problem at
//! once), and the `user` lookup in `/etc/passwd`.

use crate::checks::threshold::CheckConfig;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vigil_shared::duration::PromDuration;

/// Default per-action timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default per-action cooldown.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(300);
/// Default flap guard: at most this many runs per [`DEFAULT_FLAP_WINDOW`].
pub const DEFAULT_FLAP_MAX_RUNS: u32 = 3;
/// Default flap guard window.
pub const DEFAULT_FLAP_WINDOW: Duration = Duration::from_secs(3600);
/// Default global limit on actions running at once.
pub const DEFAULT_MAX_CONCURRENT: usize = 2;
/// `PATH` given to actions (their environment is otherwise cleared).
pub const ACTION_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The `[remediation]` table: settings shared by all actions.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemediationSettings {
    /// Never execute anything; every triggered run is reported and audited as a dry run.
    #[serde(default)]
    pub dry_run: bool,
    /// Actions running at once, over all actions. Default 2. Further runs wait for a slot.
    pub max_concurrent: Option<usize>,
    /// JSON-lines audit log of every run and refusal (fsync'd per record).
    /// Default `<data_dir>/remediation-audit.jsonl`.
    pub audit_log: Option<PathBuf>,
}

/// The flags set only `dry_run`: when any flag differs from the default, the flags'
/// table replaces the file's.
impl vigil_shared::config::Overlay for RemediationSettings {
    fn overlay_with(&mut self, flag: Self) {
        if flag != RemediationSettings::default() {
            *self = flag;
        }
    }
}

/// One `[[actions]]` table: a local command that may be run when a check fires.
///
/// ```toml
/// [[actions]]
/// name = "clean_tmp"
/// command = "/etc/vigil/actions/clean-tmp.sh"
/// args = ["--older-than", "7d"]
/// timeout = "30s"
/// cooldown = "10m"
/// user = "vigil-remediate"
/// ```
///
/// The command is executed directly (never through a shell) in a new process group, with a
/// cleared environment plus `PATH`, `env`, and the trigger description: `VIGIL_ACTION`,
/// `VIGIL_TRIGGER` (`check`, `remote` or `cli`), `VIGIL_CHECK`, `VIGIL_STATE`, `VIGIL_VALUE`,
/// `VIGIL_SERIES` (labels as `{a="b",...}`), `VIGIL_LABEL_<NAME>` per label, and
/// `VIGIL_REQUESTED_BY`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// Unique name, referenced by a check's `action` and by remote/CLI requests.
    pub name: String,
    /// Absolute path of the executable (a script with a `#!` line is fine).
    pub command: PathBuf,
    /// Arguments, passed as-is (no shell expansion).
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Kill the whole process group after this long. Default 60s; must not be zero.
    pub timeout: Option<PromDuration>,
    /// Minimum time between two runs. Default 5m; `0` disables.
    pub cooldown: Option<PromDuration>,
    /// Flap guard: at most this many runs within `flap_window`; the next trigger suspends the
    /// action for `flap_window` and raises a `flap_guard` event. Default 3.
    pub flap_max_runs: Option<u32>,
    /// Flap guard window. Default 1h.
    pub flap_window: Option<PromDuration>,
    /// Run as this user (name or numeric uid, from `/etc/passwd`) with its primary group and
    /// no supplementary groups. Switching user requires the agent to run as root.
    pub user: Option<String>,
    /// May the collector request this action? Default false: only local checks and the CLI.
    #[serde(default)]
    pub allow_remote: bool,
    /// Never execute this action; report and audit what would have run.
    #[serde(default)]
    pub dry_run: bool,
}

impl ActionConfig {
    /// The timeout, defaulted.
    pub fn timeout(&self) -> Duration {
        self.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT)
    }
    /// The cooldown, defaulted.
    pub fn cooldown(&self) -> Duration {
        self.cooldown.map(|d| d.0).unwrap_or(DEFAULT_COOLDOWN)
    }
    /// The flap guard's run limit, defaulted.
    pub fn flap_max_runs(&self) -> u32 {
        self.flap_max_runs.unwrap_or(DEFAULT_FLAP_MAX_RUNS)
    }
    /// The flap guard's window, defaulted.
    pub fn flap_window(&self) -> Duration {
        self.flap_window.map(|d| d.0).unwrap_or(DEFAULT_FLAP_WINDOW)
    }

    /// Every problem with this action (empty when valid), each naming the action and field.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let who = format!("actions[{}]", self.name);
        if self.name.trim().is_empty() {
            problems.push("actions: an action has an empty name".into());
        }
        problems.extend(
            check_executable(&self.command)
                .err()
                .map(|e| format!("{who}.command: {e}")),
        );
        if self.timeout.is_some_and(|d| d.0.is_zero()) {
            problems.push(format!(
                "{who}.timeout: must be greater than zero (e.g. \"30s\")"
            ));
        }
        if self.flap_max_runs == Some(0) {
            problems.push(format!("{who}.flap_max_runs: must be at least 1 (e.g. 3)"));
        }
        if self.flap_window.is_some_and(|d| d.0.is_zero()) {
            problems.push(format!(
                "{who}.flap_window: must be greater than zero (e.g. \"1h\")"
            ));
        }
        for k in self.env.keys() {
            if k.is_empty() || k.contains(['=', '\0']) || k.starts_with("VIGIL_") {
                problems.push(format!(
                    "{who}.env: {k:?} is not allowed (empty, contains '=' or NUL, or uses the reserved VIGIL_ prefix)"
                ));
            }
        }
        if let Some(u) = &self.user {
            if let Err(e) = lookup_user(u, Path::new("/etc/passwd")) {
                problems.push(format!("{who}.user: {e}"));
            }
        }
        problems
    }
}

/// Why an action's command cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The path is relative.
    #[error("{0}: must be an absolute path")]
    Relative(String),
    /// The file does not exist or cannot be read.
    #[error("{0}: {1}")]
    Missing(String, std::io::Error),
    /// The path is not a regular file.
    #[error("{0}: not a regular file")]
    NotAFile(String),
    /// No execute bit is set.
    #[error("{0}: not executable (chmod +x)")]
    NotExecutable(String),
    /// Anyone may modify it, so anyone could run code as the agent.
    #[error("{0}: world-writable; refusing to run it (chmod o-w)")]
    WorldWritable(String),
}

/// Checks that `path` is an absolute, existing, executable, not world-writable regular file.
pub fn check_executable(path: &Path) -> Result<(), CommandError> {
    let p = path.display().to_string();
    if !path.is_absolute() {
        return Err(CommandError::Relative(p));
    }
    let meta = std::fs::metadata(path).map_err(|e| CommandError::Missing(p.clone(), e))?;
    if !meta.is_file() {
        return Err(CommandError::NotAFile(p));
    }
    let mode = meta.permissions().mode();
    if mode & 0o111 == 0 {
        return Err(CommandError::NotExecutable(p));
    }
    if mode & 0o002 != 0 {
        return Err(CommandError::WorldWritable(p));
    }
    Ok(())
}

/// A user to run an action as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// A `user` setting could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The passwd file could not be read.
    #[error("reading {0}: {1}")]
    Read(String, std::io::Error),
    /// No such user.
    #[error("no user {0:?} in {1}")]
    NotFound(String, String),
    /// The matching line is malformed.
    #[error("{path}: line {line}: malformed entry for {user:?}")]
    Malformed {
        path: String,
        line: usize,
        user: String,
    },
}

/// Resolves `user` (a name, or a numeric uid) to uid and primary gid using `passwd` (normally
/// `/etc/passwd`). Users that exist only in NSS sources (LDAP, sssd) are not found.
pub fn lookup_user(user: &str, passwd: &Path) -> Result<RunAs, UserError> {
    let pd = passwd.display().to_string();
    let text = std::fs::read_to_string(passwd).map_err(|e| UserError::Read(pd.clone(), e))?;
    let numeric = user.parse::<u32>().ok();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        let uid = f[2].parse::<u32>();
        let hit = f[0] == user || (numeric.is_some() && uid.as_ref().ok() == numeric.as_ref());
        if !hit {
            continue;
        }
        return match (uid, f[3].parse::<u32>()) {
            (Ok(uid), Ok(gid)) => Ok(RunAs { uid, gid }),
            _ => Err(UserError::Malformed {
                path: pd,
                line: i + 1,
                user: user.into(),
            }),
        };
    }
    Err(UserError::NotFound(user.into(), pd))
}

/// Validates checks and actions together: each one's own problems, duplicate names, checks
/// that reference an unknown action, and the global settings.
pub fn validate_all(
    settings: &RemediationSettings,
    checks: &[CheckConfig],
    actions: &[ActionConfig],
) -> Vec<String> {
    let mut problems: Vec<String> = checks.iter().flat_map(|c| c.validate()).collect();
    problems.extend(actions.iter().flat_map(|a| a.validate()));
    let mut names = HashSet::new();
    for a in actions {
        if !names.insert(a.name.as_str()) {
            problems.push(format!("actions[{}]: duplicate action name", a.name));
        }
    }
    let mut check_names = HashSet::new();
    for c in checks {
        if !check_names.insert(c.name.as_str()) {
            problems.push(format!("checks[{}]: duplicate check name", c.name));
        }
        if let Some(a) = &c.action {
            if !names.contains(a.as_str()) {
                problems.push(format!(
                    "checks[{}].action: unknown action {a:?} (declare it in an [[actions]] table)",
                    c.name
                ));
            }
        }
    }
    if settings.max_concurrent == Some(0) {
        problems.push("remediation.max_concurrent: must be at least 1".into());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_name_and_uid_and_unknown() {
        let dir = std::env::temp_dir().join(format!("vigil-passwd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("passwd");
        std::fs::write(
            &p,
            "root:x:0:0:root:/root:/bin/sh\n# comment\nsvc:x:1001:1002::/:/usr/sbin/nologin\nbad:x:abc:1::/:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(
            lookup_user("svc", &p).unwrap(),
            RunAs {
                uid: 1001,
                gid: 1002
            }
        );
        assert_eq!(
            lookup_user("1001", &p).unwrap(),
            RunAs {
                uid: 1001,
                gid: 1002
            }
        );
        assert!(matches!(
            lookup_user("nobody-here", &p),
            Err(UserError::NotFound(..))
        ));
        assert!(matches!(
            lookup_user("bad", &p),
            Err(UserError::Malformed { line: 4, .. })
        ));
        assert_eq!(
            lookup_user("root", Path::new("/etc/passwd")).unwrap().uid,
            0
        );
    }

    #[test]
    fn unknown_fields_are_rejected_and_zero_timeout_is_a_problem() {
        let err = toml::from_str::<ActionConfig>("name='a'\ncommand='/bin/true'\ntimout='1s'\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("timout"), "{err}");
        let a: ActionConfig = toml::from_str(
            "name='a'\ncommand='/bin/true'\ntimeout='0'\nflap_max_runs=0\nuser='no-such-user-x'\nenv={VIGIL_X='1'}\n",
        )
        .unwrap();
        let all = a.validate().join("\n");
        for needle in ["timeout", "flap_max_runs", "no-such-user-x", "VIGIL_X"] {
            assert!(all.contains(needle), "missing {needle} in:\n{all}");
        }
    }

    /// The shape the agent's config file embeds: `[remediation]`, `[[checks]]`, `[[actions]]`.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Embedded {
        #[serde(default)]
        remediation: RemediationSettings,
        #[serde(default)]
        checks: Vec<CheckConfig>,
        #[serde(default)]
        actions: Vec<ActionConfig>,
    }

    #[test]
    fn a_full_config_parses_and_validates() {
        let cfg: Embedded = toml::from_str(
            r#"
[remediation]
max_concurrent = 1
audit_log = "/tmp/audit.jsonl"

[[checks]]
name = "root_disk_low"
select = ['node_filesystem_avail_bytes{mountpoint="/"}']
condition = "value / node_filesystem_size_bytes < 0.10"
for = "2m"
action = "clean_tmp"

[[checks]]
name = "host_anomaly"
condition = "anomaly"

[[actions]]
name = "clean_tmp"
command = "/bin/true"
args = ["--older-than", "7d"]
timeout = "30s"
cooldown = "10m"
flap_max_runs = 2
flap_window = "6h"
allow_remote = true
env = { TMPDIR = "/tmp" }
"#,
        )
        .unwrap();
        assert_eq!(cfg.checks.len(), 2);
        assert_eq!(cfg.actions[0].timeout(), Duration::from_secs(30));
        assert_eq!(cfg.actions[0].flap_window(), Duration::from_secs(6 * 3600));
        let problems = validate_all(&cfg.remediation, &cfg.checks, &cfg.actions);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn command_checks_name_the_problem() {
        assert!(matches!(
            check_executable(Path::new("bin/true")),
            Err(CommandError::Relative(_))
        ));
        assert!(matches!(
            check_executable(Path::new("/nonexistent/x.sh")),
            Err(CommandError::Missing(..))
        ));
        assert!(matches!(
            check_executable(Path::new("/tmp")),
            Err(CommandError::NotAFile(_))
        ));
        assert!(matches!(
            check_executable(Path::new("/etc/passwd")),
            Err(CommandError::NotExecutable(_))
        ));
        assert!(check_executable(Path::new("/bin/sh")).is_ok());
    }
}
