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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::inhibit::InhibitRule;
use super::matcher::is_valid_label_name;
use super::route::Route;
use crate::gocompat::{canonical_mime_header_key, go_quote};
use vigil_shared::duration::DurationError;

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

/// Collects validation errors with their paths.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub(crate) Vec<ValidationError>);

impl Problems {
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ValidationError {
            path: path.into(),
            line: None,
            message: message.into(),
        });
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
        let cfg = resolve(raw, file, &mut problems);
        match cfg {
            Some(cfg) if problems.0.is_empty() => Ok(cfg),
            _ => {
                let mut errors = problems.0;
                for e in &mut errors {
                    e.line = super::locate::locate(text, &e.path).map(|(line, _)| line);
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
) -> Result<(RawConfig, Vec<super::unknown::UnknownField>), ConfigError> {
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
            let unknown = super::unknown::remove_unknown_fields(&mut value);
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

// ---------------------------------------------------------------------------------------------
// Raw YAML shapes
// ---------------------------------------------------------------------------------------------

/// Deserializes `null` as the type's default, as Go's YAML decoder does.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A YAML scalar read as text, as Go's decoder reads `500` or `true` into a string field.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

impl Scalar {
    fn as_str(&self) -> &str {
        &self.0
    }
}

/// A `match` map: label name to value.
pub type ScalarMap = BTreeMap<Scalar, Scalar>;

/// A `match_re` map: label name to regex; a null regex is an error, as in Alertmanager.
pub type RegexMap = BTreeMap<Scalar, Option<Scalar>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    global: Option<RawGlobal>,
    #[serde(default)]
    route: Option<RouteConfig>,
    #[serde(default, deserialize_with = "nullable")]
    inhibit_rules: Vec<InhibitRuleConfig>,
    #[serde(default, deserialize_with = "nullable")]
    receivers: Vec<Receiver>,
    #[serde(default, deserialize_with = "nullable")]
    templates: Vec<Scalar>,
    #[serde(default, deserialize_with = "nullable")]
    mute_time_intervals: Vec<TimeIntervalConfig>,
    #[serde(default, deserialize_with = "nullable")]
    time_intervals: Vec<TimeIntervalConfig>,
}

/// A named time interval. Parsed so that configs using them load far enough to say that
/// time-based muting is not supported.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimeIntervalConfig {
    #[serde(default, deserialize_with = "nullable")]
    name: Scalar,
    #[serde(default)]
    #[allow(dead_code)]
    time_intervals: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGlobal {
    #[serde(default)]
    resolve_timeout: Option<Scalar>,
    #[serde(default)]
    http_config: Option<HttpConfig>,
    #[serde(default)]
    smtp_from: Option<Scalar>,
    #[serde(default)]
    smtp_hello: Option<Scalar>,
    #[serde(default)]
    smtp_smarthost: Option<Scalar>,
    #[serde(default)]
    smtp_auth_username: Option<Scalar>,
    #[serde(default)]
    smtp_auth_password: Option<Scalar>,
    #[serde(default)]
    smtp_auth_password_file: Option<Scalar>,
    #[serde(default)]
    smtp_auth_secret: Option<Scalar>,
    #[serde(default)]
    smtp_auth_identity: Option<Scalar>,
    #[serde(default)]
    smtp_require_tls: Option<bool>,
    #[serde(default)]
    smtp_tls_config: Option<TlsConfig>,
    #[serde(default)]
    slack_api_url: Option<Scalar>,
    #[serde(default)]
    slack_api_url_file: Option<Scalar>,
    #[serde(default)]
    pagerduty_url: Option<Scalar>,
    // Settings of integrations Vigil does not send to. Accepted so that configs written for
    // Alertmanager load; their URLs are still checked as Alertmanager does.
    #[serde(default)]
    opsgenie_api_url: Option<Scalar>,
    #[serde(default)]
    #[allow(dead_code)]
    opsgenie_api_key: Option<Scalar>,
    #[serde(default)]
    #[allow(dead_code)]
    opsgenie_api_key_file: Option<Scalar>,
    #[serde(default)]
    wechat_api_url: Option<Scalar>,
    #[serde(default)]
    #[allow(dead_code)]
    wechat_api_secret: Option<Scalar>,
    #[serde(default)]
    #[allow(dead_code)]
    wechat_api_corp_id: Option<Scalar>,
    #[serde(default)]
    victorops_api_url: Option<Scalar>,
    #[serde(default)]
    #[allow(dead_code)]
    victorops_api_key: Option<Scalar>,
    #[serde(default)]
    #[allow(dead_code)]
    victorops_api_key_file: Option<Scalar>,
    #[serde(default)]
    telegram_api_url: Option<Scalar>,
    #[serde(default)]
    webex_api_url: Option<Scalar>,
}

/// Global settings after defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalConfig {
    /// Time after which an alert without updates is declared resolved (default 5m).
    pub resolve_timeout: Duration,
    /// HTTP client settings inherited by every HTTP integration that sets none.
    pub http_config: HttpConfig,
    /// Default sender address for email.
    pub smtp_from: String,
    /// SMTP HELO name (default `localhost`).
    pub smtp_hello: String,
    /// Default SMTP `host:port`.
    pub smtp_smarthost: String,
    /// Default SMTP auth user.
    pub smtp_auth_username: String,
    /// Default SMTP auth password.
    pub smtp_auth_password: String,
    /// Default SMTP auth password file.
    pub smtp_auth_password_file: String,
    /// Default SMTP CRAM-MD5 secret.
    pub smtp_auth_secret: String,
    /// Default SMTP auth identity.
    pub smtp_auth_identity: String,
    /// Whether SMTP requires STARTTLS (default true).
    pub smtp_require_tls: bool,
    /// Default SMTP TLS settings.
    pub smtp_tls_config: TlsConfig,
    /// Default Slack webhook URL.
    pub slack_api_url: Option<String>,
    /// Default file holding the Slack webhook URL.
    pub slack_api_url_file: Option<String>,
    /// Default PagerDuty events URL.
    pub pagerduty_url: String,
}

/// Alertmanager's default PagerDuty events endpoint.
pub const DEFAULT_PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// HTTP client settings (`http_config`), Prometheus common's field names.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization` header credentials.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// Bearer token (legacy form of `authorization`).
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// File holding a bearer token.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// OAuth2 settings: parsed, not supported.
    #[serde(default, skip_serializing)]
    pub oauth2: Option<serde_yaml_ng::Value>,
    /// TLS settings.
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    /// Proxy URL.
    #[serde(default)]
    pub proxy_url: Option<String>,
    /// Follow HTTP redirects (default true).
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    /// Allow HTTP/2 (default true).
    #[serde(default = "yes")]
    pub enable_http2: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            basic_auth: None,
            authorization: None,
            bearer_token: None,
            bearer_token_file: None,
            oauth2: None,
            tls_config: None,
            proxy_url: None,
            follow_redirects: true,
            enable_http2: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// HTTP basic authentication.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
    /// File holding the password.
    #[serde(default)]
    pub password_file: Option<String>,
}

/// `Authorization` header credentials.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// Scheme (default `Bearer`).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Credentials.
    #[serde(default)]
    pub credentials: Option<String>,
    /// File holding the credentials.
    #[serde(default)]
    pub credentials_file: Option<String>,
}

/// TLS client settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate file.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Client certificate file.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// Client key file.
    #[serde(default)]
    pub key_file: Option<String>,
    /// Server name to verify.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Skip certificate verification.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Minimum TLS version (`TLS12`, `TLS13`).
    #[serde(default)]
    pub min_version: Option<String>,
}

/// A routing tree node as written in the file. [`Route`] is the resolved form.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Receiver for alerts that end here; inherited from the parent when empty.
    #[serde(default, deserialize_with = "nullable")]
    pub receiver: Scalar,
    /// Labels to group by; `...` groups by all labels. `None` inherits the parent's.
    #[serde(default)]
    pub group_by: Option<Vec<Scalar>>,
    /// Deprecated equality matchers.
    #[serde(default, rename = "match", deserialize_with = "nullable")]
    pub match_eq: ScalarMap,
    /// Deprecated regex matchers.
    #[serde(default, deserialize_with = "nullable")]
    pub match_re: RegexMap,
    /// Matchers in the string syntax, e.g. `severity=~"critical|page"`.
    #[serde(default, deserialize_with = "nullable")]
    pub matchers: Vec<Scalar>,
    /// Keep matching later siblings after this route matched.
    #[serde(default, rename = "continue", deserialize_with = "nullable")]
    pub continue_matching: bool,
    /// Child routes.
    #[serde(default, deserialize_with = "nullable")]
    pub routes: Vec<RouteConfig>,
    /// How long to wait before the first notification of a new group.
    #[serde(default)]
    pub group_wait: Option<Scalar>,
    /// How long to wait before notifying about changes in a group.
    #[serde(default)]
    pub group_interval: Option<Scalar>,
    /// How long to wait before re-sending an unchanged notification.
    #[serde(default)]
    pub repeat_interval: Option<Scalar>,
    /// Named time intervals during which the route is muted (not supported).
    #[serde(default, deserialize_with = "nullable")]
    pub mute_time_intervals: Vec<Scalar>,
    /// Named time intervals outside which the route is muted (not supported).
    #[serde(default, deserialize_with = "nullable")]
    pub active_time_intervals: Vec<Scalar>,
}

/// An inhibition rule as written in the file. [`InhibitRule`] is the compiled form.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    /// Deprecated equality matchers for the inhibiting (source) alert.
    #[serde(default, deserialize_with = "nullable")]
    pub source_match: ScalarMap,
    /// Deprecated regex matchers for the source alert.
    #[serde(default, deserialize_with = "nullable")]
    pub source_match_re: RegexMap,
    /// Matchers for the source alert.
    #[serde(default, deserialize_with = "nullable")]
    pub source_matchers: Vec<Scalar>,
    /// Deprecated equality matchers for the inhibited (target) alert.
    #[serde(default, deserialize_with = "nullable")]
    pub target_match: ScalarMap,
    /// Deprecated regex matchers for the target alert.
    #[serde(default, deserialize_with = "nullable")]
    pub target_match_re: RegexMap,
    /// Matchers for the target alert.
    #[serde(default, deserialize_with = "nullable")]
    pub target_matchers: Vec<Scalar>,
    /// Labels whose values must be equal in source and target.
    #[serde(default, deserialize_with = "nullable")]
    pub equal: Vec<Scalar>,
}

/// A named set of notification integrations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    /// Unique name, referenced by routes.
    #[serde(default, deserialize_with = "nullable")]
    pub name: Scalar,
    /// Generic webhooks (Alertmanager's version-4 JSON payload).
    #[serde(default, deserialize_with = "nullable")]
    pub webhook_configs: Vec<WebhookConfig>,
    /// Slack incoming webhooks.
    #[serde(default, deserialize_with = "nullable")]
    pub slack_configs: Vec<SlackConfig>,
    /// PagerDuty events.
    #[serde(default, deserialize_with = "nullable")]
    pub pagerduty_configs: Vec<PagerdutyConfig>,
    /// Email via SMTP.
    #[serde(default, deserialize_with = "nullable")]
    pub email_configs: Vec<EmailConfig>,
    #[serde(default)]
    opsgenie_configs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    wechat_configs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pushover_configs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    victorops_configs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    sns_configs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    telegram_configs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    discord_configs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    webex_configs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    msteams_configs: Option<serde_yaml_ng::Value>,
}

impl Receiver {
    /// The receiver's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// True when the receiver has no integrations (a "blackhole").
    pub fn is_empty(&self) -> bool {
        self.webhook_configs.is_empty()
            && self.slack_configs.is_empty()
            && self.pagerduty_configs.is_empty()
            && self.email_configs.is_empty()
    }
}

/// A generic webhook integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Notify about resolved alerts (default true).
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// HTTP client settings; the global `http_config` when not set.
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
    /// Endpoint to POST to.
    #[serde(default)]
    pub url: Option<String>,
    /// Most alerts per message; 0 means no limit.
    #[serde(default)]
    pub max_alerts: u64,
}

/// A Slack action button.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackAction {
    /// Action type, e.g. `button`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Label.
    #[serde(default)]
    pub text: String,
    /// Link.
    #[serde(default)]
    pub url: String,
    /// Style.
    #[serde(default)]
    pub style: String,
    /// Name (message actions).
    #[serde(default)]
    pub name: String,
    /// Value (message actions).
    #[serde(default)]
    pub value: String,
    /// Confirmation dialog.
    #[serde(default)]
    pub confirm: Option<SlackConfirm>,
}

/// A Slack confirmation dialog.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfirm {
    /// Text.
    #[serde(default)]
    pub text: String,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// OK button text.
    #[serde(default)]
    pub ok_text: String,
    /// Dismiss button text.
    #[serde(default)]
    pub dismiss_text: String,
}

/// A Slack attachment field.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackField {
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Value.
    #[serde(default)]
    pub value: String,
    /// Whether the field is short.
    #[serde(default)]
    pub short: Option<bool>,
}

fn d_slack_color() -> String {
    r#"{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}"#.into()
}
fn d_slack_username() -> String {
    r#"{{ template "slack.default.username" . }}"#.into()
}
fn d_slack_title() -> String {
    r#"{{ template "slack.default.title" . }}"#.into()
}
fn d_slack_titlelink() -> String {
    r#"{{ template "slack.default.titlelink" . }}"#.into()
}
fn d_slack_iconemoji() -> String {
    r#"{{ template "slack.default.iconemoji" . }}"#.into()
}
fn d_slack_iconurl() -> String {
    r#"{{ template "slack.default.iconurl" . }}"#.into()
}
fn d_slack_pretext() -> String {
    r#"{{ template "slack.default.pretext" . }}"#.into()
}
fn d_slack_text() -> String {
    r#"{{ template "slack.default.text" . }}"#.into()
}
fn d_slack_fallback() -> String {
    r#"{{ template "slack.default.fallback" . }}"#.into()
}
fn d_slack_callbackid() -> String {
    r#"{{ template "slack.default.callbackid" . }}"#.into()
}
fn d_slack_footer() -> String {
    r#"{{ template "slack.default.footer" . }}"#.into()
}

/// A Slack integration. Text fields are Alertmanager templates, with its defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Notify about resolved alerts (default false).
    #[serde(default)]
    pub send_resolved: bool,
    /// HTTP client settings; the global `http_config` when not set.
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
    /// Webhook URL; the global `slack_api_url` when neither this nor `api_url_file` is set.
    #[serde(default)]
    pub api_url: Option<String>,
    /// File holding the webhook URL.
    #[serde(default)]
    pub api_url_file: Option<String>,
    /// Channel or user override.
    #[serde(default)]
    pub channel: String,
    /// Bot user name.
    #[serde(default = "d_slack_username")]
    pub username: String,
    /// Attachment colour.
    #[serde(default = "d_slack_color")]
    pub color: String,
    /// Title.
    #[serde(default = "d_slack_title")]
    pub title: String,
    /// Title link.
    #[serde(default = "d_slack_titlelink")]
    pub title_link: String,
    /// Pretext.
    #[serde(default = "d_slack_pretext")]
    pub pretext: String,
    /// Text.
    #[serde(default = "d_slack_text")]
    pub text: String,
    /// Attachment fields.
    #[serde(default, deserialize_with = "nullable")]
    pub fields: Vec<SlackField>,
    /// Show fields side by side.
    #[serde(default)]
    pub short_fields: bool,
    /// Footer.
    #[serde(default = "d_slack_footer")]
    pub footer: String,
    /// Fallback text.
    #[serde(default = "d_slack_fallback")]
    pub fallback: String,
    /// Callback id.
    #[serde(default = "d_slack_callbackid")]
    pub callback_id: String,
    /// Icon emoji.
    #[serde(default = "d_slack_iconemoji")]
    pub icon_emoji: String,
    /// Icon URL.
    #[serde(default = "d_slack_iconurl")]
    pub icon_url: String,
    /// Image URL.
    #[serde(default)]
    pub image_url: String,
    /// Thumbnail URL.
    #[serde(default)]
    pub thumb_url: String,
    /// Link channel and user names.
    #[serde(default)]
    pub link_names: bool,
    /// Fields rendered as mrkdwn.
    #[serde(default, deserialize_with = "nullable")]
    pub mrkdwn_in: Vec<String>,
    /// Action buttons.
    #[serde(default, deserialize_with = "nullable")]
    pub actions: Vec<SlackAction>,
}

/// A PagerDuty link.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyLink {
    /// Target.
    #[serde(default)]
    pub href: String,
    /// Text.
    #[serde(default)]
    pub text: String,
}

/// A PagerDuty image.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyImage {
    /// Image source.
    #[serde(default)]
    pub src: String,
    /// Alt text.
    #[serde(default)]
    pub alt: String,
    /// Link.
    #[serde(default)]
    pub href: String,
}

fn d_pd_description() -> String {
    r#"{{ template "pagerduty.default.description" .}}"#.into()
}
fn d_pd_client() -> String {
    r#"{{ template "pagerduty.default.client" . }}"#.into()
}
fn d_pd_client_url() -> String {
    r#"{{ template "pagerduty.default.clientURL" . }}"#.into()
}

/// Alertmanager's default PagerDuty `details`, added for keys the config does not set.
pub const DEFAULT_PAGERDUTY_DETAILS: [(&str, &str); 4] = [
    (
        "firing",
        r#"{{ template "pagerduty.default.instances" .Alerts.Firing }}"#,
    ),
    (
        "resolved",
        r#"{{ template "pagerduty.default.instances" .Alerts.Resolved }}"#,
    ),
    ("num_firing", r#"{{ .Alerts.Firing | len }}"#),
    ("num_resolved", r#"{{ .Alerts.Resolved | len }}"#),
];

/// A PagerDuty integration (Events API v1 with `service_key`, v2 with `routing_key`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyConfig {
    /// Notify about resolved alerts (default true).
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// HTTP client settings; the global `http_config` when not set.
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
    /// Events API v1 integration key.
    #[serde(default)]
    pub service_key: Option<String>,
    /// File holding the v1 integration key.
    #[serde(default)]
    pub service_key_file: Option<String>,
    /// Events API v2 integration key.
    #[serde(default)]
    pub routing_key: Option<String>,
    /// File holding the v2 integration key.
    #[serde(default)]
    pub routing_key_file: Option<String>,
    /// Events endpoint; the global `pagerduty_url` when not set.
    #[serde(default)]
    pub url: Option<String>,
    /// Client name.
    #[serde(default = "d_pd_client")]
    pub client: String,
    /// Client URL.
    #[serde(default = "d_pd_client_url")]
    pub client_url: String,
    /// Incident description.
    #[serde(default = "d_pd_description")]
    pub description: String,
    /// Custom details; Alertmanager's defaults fill missing keys.
    #[serde(default, deserialize_with = "nullable")]
    pub details: BTreeMap<String, Scalar>,
    /// Images.
    #[serde(default, deserialize_with = "nullable")]
    pub images: Vec<PagerdutyImage>,
    /// Links.
    #[serde(default, deserialize_with = "nullable")]
    pub links: Vec<PagerdutyLink>,
    /// Source (defaults to `client`).
    #[serde(default)]
    pub source: String,
    /// Severity.
    #[serde(default)]
    pub severity: String,
    /// Class.
    #[serde(default)]
    pub class: String,
    /// Component.
    #[serde(default)]
    pub component: String,
    /// Group.
    #[serde(default)]
    pub group: String,
}

fn d_email_html() -> String {
    r#"{{ template "email.default.html" . }}"#.into()
}

/// An email integration. Fields left empty inherit the global `smtp_*` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Notify about resolved alerts (default false).
    #[serde(default)]
    pub send_resolved: bool,
    /// Recipient address(es).
    #[serde(default)]
    pub to: String,
    /// Sender; the global `smtp_from` when empty.
    #[serde(default)]
    pub from: String,
    /// HELO name; the global `smtp_hello` when empty.
    #[serde(default)]
    pub hello: String,
    /// `host:port`; the global `smtp_smarthost` when empty.
    #[serde(default)]
    pub smarthost: String,
    /// Auth user; the global one when empty.
    #[serde(default)]
    pub auth_username: String,
    /// Auth password; the global one when neither it nor the file is set.
    #[serde(default)]
    pub auth_password: String,
    /// File holding the auth password.
    #[serde(default)]
    pub auth_password_file: String,
    /// CRAM-MD5 secret; the global one when empty.
    #[serde(default)]
    pub auth_secret: String,
    /// Auth identity; the global one when empty.
    #[serde(default)]
    pub auth_identity: String,
    /// Message headers, names canonicalised (`subject` → `Subject`). Set the subject here.
    #[serde(default, deserialize_with = "nullable")]
    pub headers: BTreeMap<String, Scalar>,
    /// HTML body template.
    #[serde(default = "d_email_html")]
    pub html: String,
    /// Text body template.
    #[serde(default)]
    pub text: String,
    /// Require STARTTLS; the global `smtp_require_tls` when not set.
    #[serde(default)]
    pub require_tls: Option<bool>,
    /// TLS settings; the global `smtp_tls_config` when not set.
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    /// Not an Alertmanager field: read only to point at `headers: { Subject: … }`.
    #[serde(default)]
    subject: Option<serde_yaml_ng::Value>,
}

// ---------------------------------------------------------------------------------------------
// Validation and resolution
// ---------------------------------------------------------------------------------------------

fn resolve(raw: RawConfig, file: &str, p: &mut Problems) -> Option<Config> {
    let global = resolve_global(raw.global.unwrap_or_default(), p);

    let mut names = BTreeSet::new();
    let mut receivers = Vec::with_capacity(raw.receivers.len());
    for (i, mut rcv) in raw.receivers.into_iter().enumerate() {
        let path = if rcv.name.0.is_empty() {
            format!("receivers[{i}]")
        } else {
            format!("receivers[{i}] {}", go_quote(rcv.name.as_str()))
        };
        if rcv.name.0.is_empty() {
            p.add(&path, "missing name in receiver");
        } else if !names.insert(rcv.name.0.clone()) {
            p.add(
                &path,
                format!(
                    "notification config name {} is not unique",
                    go_quote(rcv.name.as_str())
                ),
            );
        }
        resolve_receiver(&mut rcv, &global, &path, p);
        receivers.push(rcv);
    }

    let mut interval_names = BTreeSet::new();
    for (section, list) in [
        ("mute_time_intervals", &raw.mute_time_intervals),
        ("time_intervals", &raw.time_intervals),
    ] {
        for (i, ti) in list.iter().enumerate() {
            let path = format!("{section}[{i}]");
            if ti.name.0.is_empty() {
                p.add(&path, "missing name in time interval");
            } else if !interval_names.insert(ti.name.0.clone()) {
                p.add(
                    &path,
                    format!("time interval {} is not unique", go_quote(ti.name.as_str())),
                );
            }
        }
    }

    let route = match raw.route {
        None => {
            p.add(
                "route",
                "no route provided in config; add `route: { receiver: NAME }`",
            );
            None
        }
        Some(rc) => {
            if rc.receiver.0.is_empty() {
                p.add("route", "root route must specify a default receiver");
            }
            if !rc.match_eq.is_empty() || !rc.match_re.is_empty() || !rc.matchers.is_empty() {
                p.add(
                    "route",
                    "root route must not have any matchers (it is the fallback for all alerts)",
                );
            }
            if rc.continue_matching {
                p.add("route.continue", "cannot have continue in root route");
            }
            if !rc.mute_time_intervals.is_empty() {
                p.add(
                    "route.mute_time_intervals",
                    "root route must not have any mute time intervals",
                );
            }
            if !rc.active_time_intervals.is_empty() {
                p.add(
                    "route.active_time_intervals",
                    "root route must not have any active time intervals",
                );
            }
            check_route_references(&rc, "route", &names, &interval_names, p);
            Some(Route::build(&rc, None, Vec::new(), "route", p))
        }
    };

    let inhibit_rules = raw
        .inhibit_rules
        .iter()
        .enumerate()
        .map(|(i, r)| InhibitRule::build(r, &format!("inhibit_rules[{i}]"), p))
        .collect();

    let templates = raw.templates.into_iter().map(|s| s.0).collect();
    Some(Config {
        file: file.to_string(),
        global,
        route: route?,
        inhibit_rules,
        receivers,
        templates,
    })
}

fn check_route_references(
    r: &RouteConfig,
    path: &str,
    receivers: &BTreeSet<String>,
    intervals: &BTreeSet<String>,
    p: &mut Problems,
) {
    if !r.receiver.0.is_empty() && !receivers.contains(&r.receiver.0) {
        p.add(
            format!("{path}.receiver"),
            format!(
                "undefined receiver {} used in route; define it under `receivers:`",
                go_quote(r.receiver.as_str())
            ),
        );
    }
    for (field, list) in [
        ("mute_time_intervals", &r.mute_time_intervals),
        ("active_time_intervals", &r.active_time_intervals),
    ] {
        for name in list {
            if !intervals.contains(&name.0) {
                p.add(
                    format!("{path}.{field}"),
                    format!(
                        "undefined time interval {} used in route",
                        go_quote(name.as_str())
                    ),
                );
            } else if path != "route" {
                p.add(
                    format!("{path}.{field}"),
                    "time-based muting is not supported by Vigil yet; remove \
                     mute_time_intervals/active_time_intervals from the route",
                );
            }
        }
    }
    for (i, child) in r.routes.iter().enumerate() {
        check_route_references(
            child,
            &format!("{path}.routes[{i}]"),
            receivers,
            intervals,
            p,
        );
    }
}

fn resolve_global(g: RawGlobal, p: &mut Problems) -> GlobalConfig {
    let resolve_timeout = match &g.resolve_timeout {
        None => Duration::from_secs(300),
        Some(s) => parse_duration(s.as_str()).unwrap_or_else(|e| {
            p.add("global.resolve_timeout", e);
            Duration::from_secs(300)
        }),
    };
    let http_config = g.http_config.unwrap_or_default();
    check_http_config(&http_config, "global.http_config", p);
    let smtp_smarthost = g.smtp_smarthost.map(|s| s.0).unwrap_or_default();
    check_host_port(&smtp_smarthost, "global.smtp_smarthost", p);
    if g.smtp_auth_password
        .as_ref()
        .is_some_and(|s| !s.0.is_empty())
        && g.smtp_auth_password_file
            .as_ref()
            .is_some_and(|s| !s.0.is_empty())
    {
        p.add(
            "global",
            "at most one of smtp_auth_password & smtp_auth_password_file must be configured",
        );
    }
    if g.slack_api_url.is_some()
        && g.slack_api_url_file
            .as_ref()
            .is_some_and(|s| !s.0.is_empty())
    {
        p.add(
            "global",
            "at most one of slack_api_url & slack_api_url_file must be configured",
        );
    }
    if let Some(u) = &g.slack_api_url {
        check_url(u.as_str(), "global.slack_api_url", p);
    }
    let pagerduty_url = match g.pagerduty_url {
        Some(u) => {
            check_url(u.as_str(), "global.pagerduty_url", p);
            u.0
        }
        None => DEFAULT_PAGERDUTY_URL.to_string(),
    };
    for (field, url) in [
        ("opsgenie_api_url", &g.opsgenie_api_url),
        ("wechat_api_url", &g.wechat_api_url),
        ("victorops_api_url", &g.victorops_api_url),
        ("telegram_api_url", &g.telegram_api_url),
        ("webex_api_url", &g.webex_api_url),
    ] {
        if let Some(u) = url {
            check_url(u.as_str(), &format!("global.{field}"), p);
        }
    }
    let smtp_tls_config = g.smtp_tls_config.unwrap_or_default();
    GlobalConfig {
        resolve_timeout,
        http_config,
        smtp_from: g.smtp_from.map(|s| s.0).unwrap_or_default(),
        smtp_hello: g
            .smtp_hello
            .map(|s| s.0)
            .unwrap_or_else(|| "localhost".to_string()),
        smtp_smarthost,
        smtp_auth_username: g.smtp_auth_username.map(|s| s.0).unwrap_or_default(),
        smtp_auth_password: g.smtp_auth_password.map(|s| s.0).unwrap_or_default(),
        smtp_auth_password_file: g.smtp_auth_password_file.map(|s| s.0).unwrap_or_default(),
        smtp_auth_secret: g.smtp_auth_secret.map(|s| s.0).unwrap_or_default(),
        smtp_auth_identity: g.smtp_auth_identity.map(|s| s.0).unwrap_or_default(),
        smtp_require_tls: g.smtp_require_tls.unwrap_or(true),
        smtp_tls_config,
        slack_api_url: g.slack_api_url.map(|s| s.0),
        slack_api_url_file: g.slack_api_url_file.map(|s| s.0).filter(|s| !s.is_empty()),
        pagerduty_url,
    }
}

fn resolve_receiver(rcv: &mut Receiver, g: &GlobalConfig, path: &str, p: &mut Problems) {
    for (field, present) in [
        ("opsgenie_configs", rcv.opsgenie_configs.is_some()),
        ("wechat_configs", rcv.wechat_configs.is_some()),
        ("pushover_configs", rcv.pushover_configs.is_some()),
        ("victorops_configs", rcv.victorops_configs.is_some()),
        ("sns_configs", rcv.sns_configs.is_some()),
        ("telegram_configs", rcv.telegram_configs.is_some()),
        ("discord_configs", rcv.discord_configs.is_some()),
        ("webex_configs", rcv.webex_configs.is_some()),
        ("msteams_configs", rcv.msteams_configs.is_some()),
    ] {
        if present {
            p.add(
                format!("{path}.{field}"),
                format!(
                    "{field} are not supported by Vigil; use webhook_configs, slack_configs, \
                     pagerduty_configs or email_configs"
                ),
            );
        }
    }

    for (i, wh) in rcv.webhook_configs.iter_mut().enumerate() {
        let path = format!("{path}.webhook_configs[{i}]");
        match &wh.url {
            None => p.add(&path, "missing URL in webhook config; set `url: http://…`"),
            Some(u) => check_url(u, &format!("{path}.url"), p),
        }
        resolve_http(&mut wh.http_config, g, &path, p);
    }

    for (i, sc) in rcv.slack_configs.iter_mut().enumerate() {
        let path = format!("{path}.slack_configs[{i}]");
        resolve_http(&mut sc.http_config, g, &path, p);
        if sc.api_url.is_some() && sc.api_url_file.as_ref().is_some_and(|f| !f.is_empty()) {
            p.add(
                &path,
                "at most one of api_url & api_url_file must be configured",
            );
        }
        if let Some(u) = &sc.api_url {
            check_url(u, &format!("{path}.api_url"), p);
        }
        if sc.api_url.is_none() && sc.api_url_file.as_ref().is_none_or(|f| f.is_empty()) {
            if g.slack_api_url.is_none() && g.slack_api_url_file.is_none() {
                p.add(
                    &path,
                    "no global Slack API URL set either inline or in a file; set \
                     `api_url` here or `global.slack_api_url`",
                );
            }
            sc.api_url = g.slack_api_url.clone();
            sc.api_url_file = g.slack_api_url_file.clone();
        }
        for (j, a) in sc.actions.iter().enumerate() {
            let apath = format!("{path}.actions[{j}]");
            if a.kind.is_empty() {
                p.add(&apath, "missing type in Slack action configuration");
            }
            if a.text.is_empty() {
                p.add(&apath, "missing text in Slack action configuration");
            }
            if a.url.is_empty() && a.name.is_empty() {
                p.add(&apath, "missing name or url in Slack action configuration");
            }
            if let Some(c) = &a.confirm {
                if c.text.is_empty() {
                    p.add(
                        format!("{apath}.confirm"),
                        "missing text in Slack confirmation configuration",
                    );
                }
            }
        }
        for (j, f) in sc.fields.iter().enumerate() {
            let fpath = format!("{path}.fields[{j}]");
            if f.title.is_empty() {
                p.add(&fpath, "missing title in Slack field configuration");
            }
            if f.value.is_empty() {
                p.add(&fpath, "missing value in Slack field configuration");
            }
        }
    }

    for (i, pd) in rcv.pagerduty_configs.iter_mut().enumerate() {
        let path = format!("{path}.pagerduty_configs[{i}]");
        resolve_http(&mut pd.http_config, g, &path, p);
        let set = |o: &Option<String>| o.as_ref().is_some_and(|s| !s.is_empty());
        if !set(&pd.routing_key)
            && !set(&pd.service_key)
            && !set(&pd.routing_key_file)
            && !set(&pd.service_key_file)
        {
            p.add(&path, "missing service or routing key in PagerDuty config");
        }
        if set(&pd.routing_key) && set(&pd.routing_key_file) {
            p.add(
                &path,
                "at most one of routing_key & routing_key_file must be configured",
            );
        }
        if set(&pd.service_key) && set(&pd.service_key_file) {
            p.add(
                &path,
                "at most one of service_key & service_key_file must be configured",
            );
        }
        match &pd.url {
            Some(u) => check_url(u, &format!("{path}.url"), p),
            None => pd.url = Some(g.pagerduty_url.clone()),
        }
        if pd.source.is_empty() {
            pd.source = pd.client.clone();
        }
        for (k, v) in DEFAULT_PAGERDUTY_DETAILS {
            pd.details
                .entry(k.to_string())
                .or_insert_with(|| Scalar(v.to_string()));
        }
    }

    for (i, ec) in rcv.email_configs.iter_mut().enumerate() {
        let path = format!("{path}.email_configs[{i}]");
        if ec.subject.is_some() {
            p.add(
                format!("{path}.subject"),
                "`subject` is not a field of Alertmanager's email_configs; set the subject \
                 as a header instead: `headers: { Subject: '…' }`",
            );
        }
        if ec.to.is_empty() {
            p.add(&path, "missing to address in email config");
        }
        let mut canonical = BTreeMap::new();
        for (name, value) in std::mem::take(&mut ec.headers) {
            let c = canonical_mime_header_key(&name);
            if canonical.insert(c.clone(), value).is_some() {
                p.add(
                    format!("{path}.headers"),
                    format!("duplicate header {} in email config", go_quote(&c)),
                );
            }
        }
        ec.headers = canonical;
        if ec.tls_config.is_none() {
            ec.tls_config = Some(g.smtp_tls_config.clone());
        }
        if ec.smarthost.is_empty() {
            if g.smtp_smarthost.is_empty() {
                p.add(
                    &path,
                    "no global SMTP smarthost set; set `smarthost: host:port` here or \
                     `global.smtp_smarthost`",
                );
            }
            ec.smarthost = g.smtp_smarthost.clone();
        } else {
            check_host_port(&ec.smarthost, &format!("{path}.smarthost"), p);
        }
        if ec.from.is_empty() {
            if g.smtp_from.is_empty() {
                p.add(
                    &path,
                    "no global SMTP from set; set `from:` here or `global.smtp_from`",
                );
            }
            ec.from = g.smtp_from.clone();
        }
        if ec.hello.is_empty() {
            ec.hello = g.smtp_hello.clone();
        }
        if ec.auth_username.is_empty() {
            ec.auth_username = g.smtp_auth_username.clone();
        }
        if ec.auth_password.is_empty() && ec.auth_password_file.is_empty() {
            ec.auth_password = g.smtp_auth_password.clone();
            ec.auth_password_file = g.smtp_auth_password_file.clone();
        }
        if ec.auth_secret.is_empty() {
            ec.auth_secret = g.smtp_auth_secret.clone();
        }
        if ec.auth_identity.is_empty() {
            ec.auth_identity = g.smtp_auth_identity.clone();
        }
        if ec.require_tls.is_none() {
            ec.require_tls = Some(g.smtp_require_tls);
        }
    }
}

fn resolve_http(h: &mut Option<HttpConfig>, g: &GlobalConfig, path: &str, p: &mut Problems) {
    match h {
        Some(h) => check_http_config(h, &format!("{path}.http_config"), p),
        None => *h = Some(g.http_config.clone()),
    }
}

fn check_http_config(h: &HttpConfig, path: &str, p: &mut Problems) {
    let set = |o: &Option<String>| o.as_ref().is_some_and(|s| !s.is_empty());
    let bearer = set(&h.bearer_token) || set(&h.bearer_token_file);
    let n = [
        h.basic_auth.is_some(),
        h.oauth2.is_some(),
        set(&h.bearer_token),
        set(&h.bearer_token_file),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if n > 1 {
        p.add(
            path,
            "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
        );
    }
    if let Some(b) = &h.basic_auth {
        if set(&b.password) && set(&b.password_file) {
            p.add(
                format!("{path}.basic_auth"),
                "at most one of basic_auth password & password_file must be configured",
            );
        }
    }
    if let Some(a) = &h.authorization {
        if bearer {
            p.add(
                path,
                "authorization is not compatible with bearer_token & bearer_token_file",
            );
        }
        if set(&a.credentials) && set(&a.credentials_file) {
            p.add(
                format!("{path}.authorization"),
                "at most one of authorization credentials & credentials_file must be configured",
            );
        }
        if a.kind
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("basic"))
        {
            p.add(
                format!("{path}.authorization.type"),
                "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
            );
        }
        if h.basic_auth.is_some() || h.oauth2.is_some() {
            p.add(
                path,
                "at most one of basic_auth, oauth2 & authorization must be configured",
            );
        }
    }
    if h.oauth2.is_some() {
        p.add(
            format!("{path}.oauth2"),
            "oauth2 is not supported by Vigil; use authorization or basic_auth",
        );
    }
    if let Some(u) = &h.proxy_url {
        if !u.is_empty() {
            check_url(u, &format!("{path}.proxy_url"), p);
        }
    }
}

/// Checks a `host:port` address as Go's `net.SplitHostPort` does; empty means unset.
fn check_host_port(s: &str, path: &str, p: &mut Problems) {
    if s.is_empty() {
        return;
    }
    if let Err(why) = split_host_port(s) {
        p.add(path, format!("address {s}: {why}"));
        return;
    }
    if s.ends_with(':') {
        p.add(
            path,
            format!("address {}: port cannot be empty", go_quote(s)),
        );
    }
}

/// Go's `net.SplitHostPort` error rules.
fn split_host_port(s: &str) -> Result<(), &'static str> {
    let Some(i) = s.rfind(':') else {
        return Err("missing port in address");
    };
    let (j, k) = if s.starts_with('[') {
        let Some(end) = s.find(']') else {
            return Err("missing ']' in address");
        };
        if end + 1 == s.len() {
            return Err("missing port in address");
        }
        if end + 1 != i {
            return Err(if s.as_bytes()[end + 1] == b':' {
                "too many colons in address"
            } else {
                "missing port in address"
            });
        }
        (1, end + 1)
    } else {
        if s[..i].contains(':') {
            return Err("too many colons in address");
        }
        (0, 0)
    };
    if s[j..].contains('[') {
        return Err("unexpected '[' in address");
    }
    if s[k..].contains(']') {
        return Err("unexpected ']' in address");
    }
    Ok(())
}

/// Validates an absolute `http`/`https` URL the way Alertmanager does (Go's `url.Parse`, then
/// a scheme and host check). Placeholders like `YOUR_SLACK_WEBHOOK_URL` fail here.
pub fn check_url_str(s: &str) -> Result<(), String> {
    let example = "expected an absolute http(s) URL such as http://127.0.0.1:9093/hook";
    if s.chars().any(|c| c.is_ascii_control()) {
        return Err(format!(
            "parse {}: net/url: invalid control character in URL",
            go_quote(s)
        ));
    }
    // Scheme: a letter followed by letters, digits, '+', '-', '.', then ':'.
    let scheme = match s.find(':') {
        Some(i)
            if i > 0
                && s[..i].starts_with(|c: char| c.is_ascii_alphabetic())
                && s[..i]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            &s[..i]
        }
        Some(0) => return Err(format!("parse {}: missing protocol scheme", go_quote(s))),
        _ => "",
    };
    let scheme_lower = scheme.to_ascii_lowercase();
    if scheme_lower != "http" && scheme_lower != "https" {
        return Err(format!(
            "unsupported scheme {} for URL; {example}",
            go_quote(&scheme_lower)
        ));
    }
    let rest = &s[scheme.len() + 1..];
    let Some(after) = rest.strip_prefix("//") else {
        return Err(format!("missing host for URL; {example}"));
    };
    let auth_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..auth_end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        return Err(format!("missing host for URL; {example}"));
    }
    // Port, if any, must be digits.
    let (hostname, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.find(']') {
            Some(i) => (&rest[..i], rest[i + 1..].strip_prefix(':')),
            None => return Err(format!("parse {}: missing ']' in host", go_quote(s))),
        }
    } else {
        match host.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        }
    };
    if let Some(port) = port {
        if !port.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "parse {}: invalid port {} after host",
                go_quote(s),
                go_quote(&format!(":{port}"))
            ));
        }
    }
    // Go allows unreserved characters, sub-delims, ':', '[', ']', '<', '>', '"' and
    // non-ASCII in a host; '%' is an escape, checked below.
    if let Some(c) = hostname.chars().find(|c| {
        c.is_ascii() && !c.is_ascii_alphanumeric() && !"-._~!$&'()*+,;=:[]<>\"%".contains(*c)
    }) {
        return Err(format!(
            "parse {}: invalid character {} in host name",
            go_quote(s),
            go_quote(&c.to_string())
        ));
    }
    // Percent-escapes must be two hex digits.
    let bytes = after.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let ok = i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit();
            if !ok {
                let end = (i + 3).min(bytes.len());
                return Err(format!(
                    "parse {}: invalid URL escape {}",
                    go_quote(s),
                    go_quote(&String::from_utf8_lossy(&bytes[i..end]))
                ));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

fn check_url(s: &str, path: &str, p: &mut Problems) {
    if let Err(e) = check_url_str(s) {
        p.add(path, e);
    }
}

/// Parses a Prometheus duration (`1h30m`, `5m`, `10s`, `1d`, `1w`, `1y`, `250ms`, `0`) with
/// [`vigil_shared::duration::parse`], wording the error as Alertmanager does.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    vigil_shared::duration::parse(s).map_err(|e| match e {
        DurationError::TooLarge(_) => format!("duration {} is too large", go_quote(s)),
        DurationError::Invalid(_) | DurationError::Zero => format!(
            "not a valid duration string: {}; expected e.g. 30s, 5m, 1h30m, 1d",
            go_quote(s)
        ),
    })
}

/// Validates label names in a `match`/`match_re` map; shared by routes and inhibit rules.
pub(crate) fn check_label_names<V>(map: &BTreeMap<Scalar, V>, path: &str, p: &mut Problems) {
    for k in map.keys() {
        if !is_valid_label_name(k.as_str()) {
            p.add(path, format!("invalid label name {}", go_quote(k.as_str())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_shared::duration::format as format_duration;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::load_str(text, "test.yml")
    }

    fn errors(text: &str) -> Vec<String> {
        match load(text) {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(ConfigError::Invalid { errors, .. }) => {
                errors.iter().map(|e| e.to_string()).collect()
            }
            Err(e) => vec![e.to_string()],
        }
    }

    fn has(errors: &[String], needle: &str) -> bool {
        errors.iter().any(|e| e.contains(needle))
    }

    const MIN: &str = "route: {receiver: a}\nreceivers: [{name: a}]\n";

    #[test]
    fn minimal_config_gets_alertmanager_defaults() {
        let c = load(MIN).unwrap();
        assert_eq!(c.global.resolve_timeout, Duration::from_secs(300));
        assert_eq!(c.global.smtp_hello, "localhost");
        assert!(c.global.smtp_require_tls);
        assert_eq!(c.global.pagerduty_url, DEFAULT_PAGERDUTY_URL);
        assert_eq!(c.route.opts.receiver, "a");
        assert_eq!(c.route.opts.group_wait, Duration::from_secs(30));
        assert_eq!(c.route.opts.group_interval, Duration::from_secs(300));
        assert_eq!(c.route.opts.repeat_interval, Duration::from_secs(4 * 3600));
    }

    #[test]
    fn global_settings_are_inherited_by_receivers() {
        let c = load(
            "global:
  smtp_smarthost: 'mail:25'
  smtp_from: am@example.org
  smtp_require_tls: false
  slack_api_url: 'http://127.0.0.1:1/slack'
  pagerduty_url: 'http://127.0.0.1:1/pd'
  http_config: {bearer_token: tok}
route: {receiver: r}
receivers:
  - name: r
    email_configs: [{to: x@example.org, headers: {subject: hi}}]
    slack_configs: [{channel: '#c'}]
    pagerduty_configs: [{routing_key: k, client: me}]
    webhook_configs: [{url: 'http://127.0.0.1:1/hook'}]
",
        )
        .unwrap();
        let r = c.receiver("r").unwrap();
        let e = &r.email_configs[0];
        assert_eq!(e.smarthost, "mail:25");
        assert_eq!(e.from, "am@example.org");
        assert_eq!(e.require_tls, Some(false));
        assert_eq!(e.headers.get("Subject").map(|s| s.0.as_str()), Some("hi"));
        assert!(!e.send_resolved);
        let s = &r.slack_configs[0];
        assert_eq!(s.api_url.as_deref(), Some("http://127.0.0.1:1/slack"));
        assert!(!s.send_resolved);
        assert_eq!(
            s.http_config.as_ref().unwrap().bearer_token.as_deref(),
            Some("tok")
        );
        let pd = &r.pagerduty_configs[0];
        assert_eq!(pd.url.as_deref(), Some("http://127.0.0.1:1/pd"));
        assert_eq!(pd.source, "me");
        assert!(pd.details.contains_key("num_firing"));
        assert!(pd.send_resolved);
        let wh = &r.webhook_configs[0];
        assert!(wh.send_resolved);
        assert_eq!(
            wh.http_config.as_ref().unwrap().bearer_token.as_deref(),
            Some("tok")
        );
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let e = load("route:\n  receiver: a\n  recevier: b\nreceivers: [{name: a}]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("test.yml: "), "{e}");
        assert!(
            e.contains("line 3: route.recevier: unknown field `recevier`"),
            "{e}"
        );
        let e = load("route: {receiver: a}\nreceivers:\n- name: a\n  webhook_configs:\n  - url: 'http://x/'\n    timeout: 3s\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 6: receivers[0].webhook_configs[0].timeout: unknown field `timeout`"),
            "{e}"
        );
    }

    #[test]
    fn all_unknown_fields_are_reported_with_the_other_errors() {
        let e = errors(
            "global: {slack_api_url: 'YOUR_URL'}
route:
  receiver: a
  group_wiat: 10s
  routes:
    - {receiver: missing, contnue: true}
receivers:
  - name: a
    webhook_configs: [{url: 'http://127.0.0.1/', timeout: 3s}]
",
        );
        for needle in [
            "line 1: global.slack_api_url: unsupported scheme",
            "line 4: route.group_wiat: unknown field `group_wiat`",
            "line 6: route.routes[0].contnue: unknown field `contnue`",
            "line 6: route.routes[0].receiver: undefined receiver \"missing\"",
            "line 9: receivers[0].webhook_configs[0].timeout: unknown field `timeout`",
        ] {
            assert!(has(&e, needle), "{needle}: {e:?}");
        }
        assert_eq!(e.len(), 5, "{e:?}");
    }

    #[test]
    fn a_type_error_is_still_reported_by_the_parser() {
        let e =
            load("route: {receiver: a, routes: 5, typo: 1}\nreceivers: [{name: a}]").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
    }

    #[test]
    fn yaml_syntax_error_has_location() {
        let e = load("route: {receiver: a\n").unwrap_err();
        assert!(
            matches!(e, ConfigError::Parse { line, .. } if line > 0),
            "{e}"
        );
    }

    #[test]
    fn root_route_rules() {
        assert!(has(&errors("receivers: [{name: a}]"), "no route provided"));
        assert!(has(&errors(""), "no route provided"));
        let e = errors("route: {group_by: [x]}\nreceivers: [{name: a}]");
        assert!(has(&e, "root route must specify a default receiver"));
        let e = errors("route: {receiver: a, match: {x: y}}\nreceivers: [{name: a}]");
        assert!(has(&e, "root route must not have any matchers"));
        let e = errors("route: {receiver: a, matchers: ['x=y']}\nreceivers: [{name: a}]");
        assert!(has(&e, "root route must not have any matchers"));
        let e = errors("route: {receiver: a, continue: true}\nreceivers: [{name: a}]");
        assert!(has(&e, "cannot have continue in root route"));
    }

    #[test]
    fn receivers_must_exist_and_be_unique_and_named() {
        let e = errors("route: {receiver: a, routes: [{receiver: b}, {receiver: c}]}\nreceivers: [{name: a}, {name: a}, {}]");
        assert!(has(&e, "undefined receiver \"b\""), "{e:?}");
        assert!(has(&e, "undefined receiver \"c\""), "{e:?}");
        assert!(has(&e, "name \"a\" is not unique"), "{e:?}");
        assert!(has(&e, "missing name in receiver"), "{e:?}");
    }

    #[test]
    fn urls_must_be_absolute_http() {
        for (url, msg) in [
            ("YOUR_SLACK_WEBHOOK_URL", "unsupported scheme \"\""),
            ("ftp://x/", "unsupported scheme \"ftp\""),
            ("http://", "missing host"),
            ("/relative", "unsupported scheme \"\""),
            ("http://a b/", "invalid character \" \" in host name"),
            ("http://ab:x/", "invalid port \":x\" after host"),
            ("http://x/%zz", "invalid URL escape \"%zz\""),
        ] {
            let e = errors(&format!(
                "route: {{receiver: a}}\nreceivers: [{{name: a, webhook_configs: [{{url: '{url}'}}]}}]"
            ));
            assert!(has(&e, msg), "{url}: {e:?}");
            assert!(has(&e, "webhook_configs[0].url"), "{url}: {e:?}");
        }
        assert!(check_url_str("HTTP://x/").is_ok());
        assert!(check_url_str("https://user:pw@127.0.0.1:9093/a?b#c").is_ok());
        assert!(check_url_str("http://[::1]:9093/").is_ok());
        // Found by differential testing: Go accepts '"', '<' and '>' in host names.
        assert!(check_url_str("http://127.0.0.\":19093/slack").is_ok());
        assert!(check_url_str("http://a|b/").is_err());
    }

    #[test]
    fn integration_requirements() {
        let e = errors(
            "route: {receiver: a}
receivers:
- name: a
  webhook_configs: [{send_resolved: true}]
  slack_configs: [{channel: x, actions: [{type: button}], fields: [{title: t}]}]
  pagerduty_configs: [{url: 'http://x/'}]
  email_configs: [{from: a@b}, {to: a@b, headers: {subject: x, Subject: y}}]
  opsgenie_configs: [{api_key: x}]
",
        );
        for needle in [
            "missing URL in webhook config",
            "no global Slack API URL set",
            "missing text in Slack action",
            "missing name or url in Slack action",
            "missing value in Slack field",
            "missing service or routing key in PagerDuty config",
            "missing to address in email config",
            "no global SMTP smarthost set",
            "no global SMTP from set",
            "duplicate header \"Subject\"",
            "opsgenie_configs are not supported",
        ] {
            assert!(has(&e, needle), "{needle}: {e:?}");
        }
    }

    #[test]
    fn email_subject_field_points_at_headers() {
        let e = errors(
            "global: {smtp_smarthost: 'h:25', smtp_from: a@b}
route: {receiver: a}
receivers: [{name: a, email_configs: [{to: x@y, subject: 'hi'}]}]",
        );
        assert!(
            has(&e, "email_configs[0].subject") && has(&e, "headers: { Subject:"),
            "{e:?}"
        );
    }

    #[test]
    fn route_field_errors_are_all_collected() {
        let e = errors(
            "route:
  receiver: a
  group_by: ['...', x]
  group_interval: 0s
  routes:
    - group_by: [x, x, 'a-b']
      repeat_interval: 0
      group_wait: 1.5s
      match: {'a-b': x}
      match_re: {y: '('}
      matchers: ['foo', 'x=\"unterminated']
receivers: [{name: a}]
",
        );
        for needle in [
            "cannot have wildcard group_by",
            "group_interval cannot be zero",
            "duplicated label \"x\" in group_by",
            "invalid label name \"a-b\" in group_by list",
            "repeat_interval cannot be zero",
            "not a valid duration string: \"1.5s\"",
            "invalid label name \"a-b\"",
            "route.routes[0].match_re",
            "bad matcher format: foo",
            "unescaped double quote",
        ] {
            assert!(has(&e, needle), "{needle}: {e:?}");
        }
        assert!(e.len() >= 10, "{e:?}");
    }

    #[test]
    fn null_regex_in_match_re_is_an_error() {
        // Found by differential testing against amtool: `{ale,tname: x}` is two keys, the
        // first with a null value.
        let e = errors(
            "route: {receiver: a, routes: [{match_re: {ale,tname: 'x'}}]}\nreceivers: [{name: a}]",
        );
        assert!(has(&e, "invalid regexp value for \"ale\""), "{e:?}");
        let e = errors("route: {receiver: a}\nreceivers: [{name: a}]\ninhibit_rules: [{target_match_re: {x: }}]");
        assert!(has(&e, "invalid regexp value for \"x\""), "{e:?}");
    }

    #[test]
    fn inhibit_rule_errors() {
        let e = errors(
            "route: {receiver: a}
receivers: [{name: a}]
inhibit_rules:
  - source_match: {'a-b': c}
    target_match_re: {x: '['}
    source_matchers: ['=x']
    equal: ['a-b']
",
        );
        assert!(has(&e, "inhibit_rules[0].source_match"), "{e:?}");
        assert!(has(&e, "inhibit_rules[0].target_match_re"), "{e:?}");
        assert!(has(&e, "bad matcher format: =x"), "{e:?}");
        assert!(has(&e, "\"a-b\" is not a valid label name"), "{e:?}");
    }

    #[test]
    fn time_intervals_are_parsed_but_unsupported() {
        let e = errors(
            "route: {receiver: a, routes: [{receiver: a, mute_time_intervals: [x, y]}]}
time_intervals: [{name: x, time_intervals: [{weekdays: [monday]}]}]
receivers: [{name: a}]",
        );
        assert!(has(&e, "time-based muting is not supported"), "{e:?}");
        assert!(has(&e, "undefined time interval \"y\""), "{e:?}");
        // Defined but unused intervals load.
        load(
            "route: {receiver: a}
time_intervals: [{name: x, time_intervals: [{weekdays: [monday]}]}]
receivers: [{name: a}]",
        )
        .unwrap();
    }

    #[test]
    fn http_config_conflicts() {
        let e = errors(
            "global: {http_config: {basic_auth: {username: u}, bearer_token: x, proxy_url: 'nope'}}
route: {receiver: a}
receivers: [{name: a}]",
        );
        assert!(
            has(&e, "at most one of basic_auth, oauth2, bearer_token"),
            "{e:?}"
        );
        assert!(has(&e, "global.http_config.proxy_url"), "{e:?}");
    }

    #[test]
    fn globals_of_other_integrations_are_accepted_and_urls_checked() {
        load("global: {opsgenie_api_key: k, opsgenie_api_url: 'https://api.opsgenie.com/'}\nroute: {receiver: a}\nreceivers: [{name: a}]")
            .unwrap_or_else(|e| panic!("{e}"));
        let e = errors(
            "global: {victorops_api_url: 'nope'}\nroute: {receiver: a}\nreceivers: [{name: a}]",
        );
        assert!(
            has(&e, "global.victorops_api_url: unsupported scheme"),
            "{e:?}"
        );
    }

    #[test]
    fn smarthost_needs_a_port() {
        let e =
            errors("global: {smtp_smarthost: 'h'}\nroute: {receiver: a}\nreceivers: [{name: a}]");
        assert!(has(&e, "missing port in address"), "{e:?}");
        let e =
            errors("global: {smtp_smarthost: 'h:'}\nroute: {receiver: a}\nreceivers: [{name: a}]");
        assert!(has(&e, "port cannot be empty"), "{e:?}");
        // Found by differential testing against amtool.
        for (addr, why) in [
            ("127.0.0.[:2525", "unexpected '[' in address"),
            ("a]:25", "unexpected ']' in address"),
            ("a:b:25", "too many colons in address"),
            ("[::1", "missing ']' in address"),
            ("[::1]", "missing port in address"),
            ("[::1]x:25", "missing port in address"),
        ] {
            assert_eq!(split_host_port(addr), Err(why), "{addr}");
        }
        assert_eq!(split_host_port("[::1]:25"), Ok(()));
    }

    #[test]
    fn scalars_and_nulls_read_like_go_yaml() {
        let c = load(
            "route: {receiver: a, group_wait: 0, routes: [{match: {code: 500, ok: true}}], }
receivers: [{name: a}]
inhibit_rules:
templates:",
        )
        .unwrap();
        assert_eq!(c.route.opts.group_wait, Duration::ZERO);
        assert!(c.route.routes[0]
            .matchers
            .to_string()
            .contains("code=\"500\""));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(
            parse_duration("1w").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "90", "1.5s", "1m1h", "1h1h", "5 m", "-1s", "1x"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    /// Bad input gets an error, never a panic: mutate valid configs and matcher strings at
    /// random (deterministic xorshift) and load them all.
    #[test]
    fn random_mutations_never_panic() {
        let seed_text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/notify/routing-regex.yml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let alphabet: Vec<char> = " \n\t:{}[],'\"\\=~!|.*-_/%@#é0a1".chars().collect();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rand = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..600 {
            let mut chars: Vec<char> = seed_text.chars().collect();
            for _ in 0..1 + rand(6) {
                let at = rand(chars.len() + 1);
                match rand(3) {
                    0 if at < chars.len() => {
                        chars.remove(at);
                    }
                    1 if at < chars.len() => chars[at] = alphabet[rand(alphabet.len())],
                    _ => chars.insert(at, alphabet[rand(alphabet.len())]),
                }
            }
            let text: String = chars.into_iter().collect();
            let _ = Config::load_str(&text, "fuzz.yml");
            let snippet: String = text
                .chars()
                .skip(rand(text.chars().count()))
                .take(rand(24))
                .collect();
            let _ = super::super::matcher::parse_matchers(&snippet);
            let _ = check_url_str(&snippet);
            let _ = parse_duration(&snippet);
            let mut p = Problems::default();
            check_host_port(&snippet, "x", &mut p);
        }
    }

    #[test]
    fn header_canonicalisation() {
        assert_eq!(canonical_mime_header_key("subject"), "Subject");
        assert_eq!(canonical_mime_header_key("x-PRIORITY"), "X-Priority");
        assert_eq!(canonical_mime_header_key("bad key"), "bad key");
    }

    #[test]
    fn seed_config_is_rejected_for_placeholder_url_and_email_subject() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/notify/seed.alertmanager.yml");
        let e = match Config::load_file(&path) {
            Err(ConfigError::Invalid { errors, .. }) => errors,
            other => panic!("expected validation errors, got {other:?}"),
        };
        let e: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        assert!(has(&e, "global.slack_api_url: unsupported scheme"), "{e:?}");
        assert!(has(&e, "email-finance\".email_configs[0].subject"), "{e:?}");
        assert!(has(&e, "email-team\".email_configs[0].subject"), "{e:?}");
        // Validation errors name the line too.
        assert!(
            has(&e, "line 4: global.slack_api_url: unsupported scheme"),
            "{e:?}"
        );
        assert!(
            has(
                &e,
                "line 132: receivers[5] \"email-finance\".email_configs[0].subject"
            ),
            "{e:?}"
        );
    }

    #[test]
    fn loopback_seed_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/notify/seed.alertmanager.loopback.yml");
        let c = Config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.receivers.len(), 7);
        assert_eq!(c.inhibit_rules.len(), 2);
        assert_eq!(c.route.routes.len(), 3);
        let finance = c.receiver("email-finance").unwrap();
        assert_eq!(finance.email_configs[0].smarthost, "127.0.0.1:2525");
        assert_eq!(finance.email_configs[0].require_tls, Some(false));
    }
}
