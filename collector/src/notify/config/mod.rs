//! Loading and validating Alertmanager-format notification configs (`alertmanager.yml`).
//!
//! The format is Alertmanager 0.25's: `global`, `route`, `inhibit_rules`, `receivers`
//! (webhook, Slack, PagerDuty and email), `templates`, and the time-interval sections. Loading
//! applies Alertmanager's defaults and inheritance: global settings flow into receivers
//! (`http_config`, `smtp_*`, `slack_api_url`, `pagerduty_url`), and each route inherits its
//! parent's receiver, grouping and timers (see [`super::route`]).
//!
//! Errors come in two kinds. A YAML syntax or type problem stops the parse and is reported
//! as `FILE:LINE:COLUMN: path: message`. Everything else, unknown fields included, is
//! collected and *all* problems are reported together, each naming its line, its place in
//! the file and the field (`line 132: receivers[5] "email-finance".email_configs[0].subject:
//! …`; lines are found by re-reading the text with a probe, see `locate.rs`). Validation
//! follows Alertmanager: the root route needs a receiver and no matchers, referenced receivers
//! must exist, receiver names are unique, URLs are absolute `http`/`https` URLs, and so on.
//! Mute and active time intervals are parsed but not supported: a route that uses one is an
//! error saying so.
//!
//! The module is split by stage: `raw` holds the YAML shapes serde reads, `resolve`
//! applies defaults and inheritance, `validate` holds the checks both use, and `unknown`
//! and `locate` find unknown fields and the line of each problem.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

mod locate;
mod raw;
mod resolve;
mod unknown;
mod validate;

#[cfg(test)]
mod tests;

pub use raw::*;
pub use validate::check_url_str;
pub(crate) use validate::{check_label_names, parse_duration, Problems};

use super::inhibit::InhibitRule;
use super::route::Route;

/// A notification config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file name as given.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown field or a value of the wrong type.
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        /// The file name as given.
        file: String,
        /// 1-based line of the problem (0 when the parser gave no location).
        line: usize,
        /// 1-based column of the problem (0 when the parser gave no location).
        column: usize,
        /// The parser's message, which names the field and its path.
        message: String,
    },
    /// The YAML parsed but breaks one or more of Alertmanager's rules; all are listed.
    #[error("{file}: invalid notification config ({} error{}):{}", errors.len(), if errors.len() == 1 { "" } else { "s" }, list_errors(errors))]
    Invalid {
        /// The file name as given.
        file: String,
        /// Every problem found.
        errors: Vec<ValidationError>,
    },
}

fn list_errors(errors: &[ValidationError]) -> String {
    errors.iter().map(|e| format!("\n  - {e}")).collect()
}

/// One problem found while validating a parsed config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Where in the file: `route.routes[1].matchers[0]`, `receivers[2] "ops".webhook_configs[0].url`.
    pub path: String,
    /// 1-based line of the node at `path`, when it is in the file.
    pub line: Option<usize>,
    /// What is wrong, and where useful how to fix it.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A loaded, validated notification config with defaults and inheritance applied.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (or the name given to [`Config::load_str`]).
    pub file: String,
    /// Global settings, defaults filled in.
    pub global: GlobalConfig,
    /// The routing tree with each node's effective receiver, grouping and timers.
    pub route: Route,
    /// Inhibition rules, matchers compiled.
    pub inhibit_rules: Vec<InhibitRule>,
    /// Receivers, with global settings inherited into each integration.
    pub receivers: Vec<Receiver>,
    /// Template file globs, relative ones resolved against the config file's directory.
    pub templates: Vec<String>,
}

impl Config {
    /// Reads and validates an Alertmanager config file.
    pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let mut cfg = Config::load_str(&text, &file)?;
        if let Some(dir) = path.parent() {
            for t in &mut cfg.templates {
                if !t.is_empty() && !Path::new(t.as_str()).is_absolute() {
                    *t = dir.join(t.as_str()).display().to_string();
                }
            }
        }
        Ok(cfg)
    }

    /// Parses and validates config text; `file` is used in error messages.
    pub fn load_str(text: &str, file: &str) -> Result<Config, ConfigError> {
        let (raw, unknown) = parse_raw(text, file)?;
        let mut problems = Problems::default();
        for u in unknown {
            problems.add(u.path(), u.message());
        }
        let cfg = resolve::resolve(raw, file, &mut problems);
        match cfg {
            Some(cfg) if problems.0.is_empty() => Ok(cfg),
            _ => {
                let mut errors = problems.0;
                for e in &mut errors {
                    e.line = locate::locate(text, &e.path).map(|(line, _)| line);
                }
                // In file order; problems without a line (a missing section) last.
                errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
                Err(ConfigError::Invalid {
                    file: file.to_string(),
                    errors,
                })
            }
        }
    }

    /// The receiver with this name.
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name.0 == name)
    }
}

/// Parses the YAML into the raw config shapes. When the strict parse stops at an unknown
/// field, every unknown field is collected and removed and the rest parsed, so they are all
/// reported together with the validation errors; any other parse error is reported as is.
fn parse_raw(
    text: &str,
    file: &str,
) -> Result<(RawConfig, Vec<unknown::UnknownField>), ConfigError> {
    let to_parse_error = |e: serde_yaml_ng::Error| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let mut message = e.to_string();
        // The library appends " at line L column C"; we print the location up front instead.
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        ConfigError::Parse {
            file: file.to_string(),
            line,
            column,
            message,
        }
    };
    // An empty document (or only comments) is an empty config, as in Alertmanager.
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(to_parse_error)?;
    if value.is_null() {
        return Ok((RawConfig::default(), Vec::new()));
    }
    match serde_yaml_ng::from_str(text) {
        Ok(raw) => Ok((raw, Vec::new())),
        Err(e) => {
            let original = to_parse_error(e);
            let unknown = unknown::remove_unknown_fields(&mut value);
            if unknown.is_empty() {
                return Err(original);
            }
            match RawConfig::deserialize(value) {
                Ok(raw) => Ok((raw, unknown)),
                Err(_) => Err(original),
            }
        }
    }
}
