//! The YAML shapes of `alertmanager.yml` as serde reads them, with Alertmanager's field
//! names and defaults and each field's documentation. [`RawConfig`] and [`RawGlobal`] are
//! consumed by resolution; receivers and their integrations keep this shape, with global
//! settings filled in.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

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
    pub(super) fn as_str(&self) -> &str {
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
    pub(super) global: Option<RawGlobal>,
    #[serde(default)]
    pub(super) route: Option<RouteConfig>,
    #[serde(default, deserialize_with = "nullable")]
    pub(super) inhibit_rules: Vec<InhibitRuleConfig>,
    #[serde(default, deserialize_with = "nullable")]
    pub(super) receivers: Vec<Receiver>,
    #[serde(default, deserialize_with = "nullable")]
    pub(super) templates: Vec<Scalar>,
    #[serde(default, deserialize_with = "nullable")]
    pub(super) mute_time_intervals: Vec<TimeIntervalConfig>,
    #[serde(default, deserialize_with = "nullable")]
    pub(super) time_intervals: Vec<TimeIntervalConfig>,
}

/// A named time interval. Parsed so that configs using them load far enough to say that
/// time-based muting is not supported.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimeIntervalConfig {
    #[serde(default, deserialize_with = "nullable")]
    pub(super) name: Scalar,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) time_intervals: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGlobal {
    #[serde(default)]
    pub(super) resolve_timeout: Option<Scalar>,
    #[serde(default)]
    pub(super) http_config: Option<HttpConfig>,
    #[serde(default)]
    pub(super) smtp_from: Option<Scalar>,
    #[serde(default)]
    pub(super) smtp_hello: Option<Scalar>,
    #[serde(default)]
    pub(super) smtp_smarthost: Option<Scalar>,
    #[serde(default)]
    pub(super) smtp_auth_username: Option<Scalar>,
    #[serde(default)]
    pub(super) smtp_auth_password: Option<Scalar>,
    #[serde(default)]
    pub(super) smtp_auth_password_file: Option<Scalar>,
    #[serde(default)]
    pub(super) smtp_auth_secret: Option<Scalar>,
    #[serde(default)]
    pub(super) smtp_auth_identity: Option<Scalar>,
    #[serde(default)]
    pub(super) smtp_require_tls: Option<bool>,
    #[serde(default)]
    pub(super) smtp_tls_config: Option<TlsConfig>,
    #[serde(default)]
    pub(super) slack_api_url: Option<Scalar>,
    #[serde(default)]
    pub(super) slack_api_url_file: Option<Scalar>,
    #[serde(default)]
    pub(super) pagerduty_url: Option<Scalar>,
    // Settings of integrations Vigil does not send to. Accepted so that configs written for
    // Alertmanager load; their URLs are still checked as Alertmanager does.
    #[serde(default)]
    pub(super) opsgenie_api_url: Option<Scalar>,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) opsgenie_api_key: Option<Scalar>,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) opsgenie_api_key_file: Option<Scalar>,
    #[serde(default)]
    pub(super) wechat_api_url: Option<Scalar>,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) wechat_api_secret: Option<Scalar>,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) wechat_api_corp_id: Option<Scalar>,
    #[serde(default)]
    pub(super) victorops_api_url: Option<Scalar>,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) victorops_api_key: Option<Scalar>,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) victorops_api_key_file: Option<Scalar>,
    #[serde(default)]
    pub(super) telegram_api_url: Option<Scalar>,
    #[serde(default)]
    pub(super) webex_api_url: Option<Scalar>,
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
    pub(super) opsgenie_configs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub(super) wechat_configs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub(super) pushover_configs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub(super) victorops_configs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub(super) sns_configs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub(super) telegram_configs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub(super) discord_configs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub(super) webex_configs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub(super) msteams_configs: Option<serde_yaml_ng::Value>,
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
    pub(super) subject: Option<serde_yaml_ng::Value>,
}
