//! The collector's settings: a TOML file whose every field can also be given as a flag
//! (flags win), validated as a whole so that `check-config` names every problem at once.

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use vigil_shared::config::{ConfigFile, Overlay};
use vigil_shared::duration::{NonZeroDuration, PromDuration};

pub use vigil_shared::config::ConfigError;

/// The collector's configuration file.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Directory for the WAL and blocks. Default `/var/lib/vigil-collector`.
    pub data_dir: Option<PathBuf>,
    /// Directory made by `vigil-collector certs init`.
    pub certs_dir: Option<PathBuf>,
    /// UDP address for QUIC ingest. Default `0.0.0.0:4433`.
    pub quic_listen: Option<SocketAddr>,
    /// TCP address for the HTTP API. Default `0.0.0.0:9090`.
    pub http_listen: Option<SocketAddr>,
    /// How long samples are kept. Default 15d.
    pub retention: Option<NonZeroDuration>,
    /// Active-series limit; 0 means unlimited. Default 0.
    pub max_series: Option<usize>,
    /// How far behind a series' newest sample a sample may arrive and still be stored.
    /// Default: the retention period, so an agent's backlog is stored however long the
    /// outage was, even though live data overtakes it. Set it lower (Prometheus uses 0) to
    /// refuse late remote_write samples.
    pub out_of_order_window: Option<PromDuration>,
    /// Grace period for draining on shutdown. Default 10s.
    pub shutdown_grace: Option<NonZeroDuration>,
    /// Prometheus-format rule files, evaluated against the local store.
    #[serde(default)]
    pub rule_files: Vec<PathBuf>,
    /// Interval for rule groups that set none. Default 1m.
    pub evaluation_interval: Option<NonZeroDuration>,
    /// Groups of alerting rules only are also evaluated as soon as new samples are stored,
    /// at most once per this gap, so a new alert does not wait for the next interval.
    /// Default 200ms; `0s` turns early evaluation off (Prometheus's behaviour).
    pub early_evaluation_gap: Option<PromDuration>,
    /// Alertmanager-format configuration that routes the alerts the rules raise.
    pub alertmanager_config: Option<PathBuf>,
    /// Per-tenant active-series limits (`[limits]`).
    #[serde(default)]
    pub limits: LimitsConfig,
    /// External Alertmanagers (base URLs, e.g. `http://alertmanager:9093`) that every
    /// firing and resolved alert is also sent to with `POST /api/v2/alerts`, like
    /// Prometheus's `alerting.alertmanagers`.
    #[serde(default)]
    pub alertmanager_urls: Vec<String>,
    /// How long expired silences are kept (Alertmanager's `--data.retention`). Default 120h.
    pub silence_retention: Option<NonZeroDuration>,
    /// PromQL engine limits (`[query]`), for the HTTP API and the rules.
    #[serde(default)]
    pub query: QueryConfig,
}

/// `[query]`: the PromQL engine's limits, named after Prometheus's `--query.*` flags. A
/// query that would pass one is stopped with an error naming it.
///
/// ```toml
/// [query]
/// max_samples = 50000000
/// max_series = 1000000
/// timeout = "2m"
/// max_concurrency = 20
/// lookback_delta = "5m"
/// ```
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// Most samples one query may load and hold (`--query.max-samples`). Default 50 000 000.
    pub max_samples: Option<usize>,
    /// Most series one selector may match (`--query.max-series`). Default 1 000 000.
    pub max_series: Option<usize>,
    /// Longest a query may run (`--query.timeout`). Default 2m.
    pub timeout: Option<NonZeroDuration>,
    /// Most queries evaluated at once (`--query.max-concurrency`); more wait. Default 20.
    pub max_concurrency: Option<usize>,
    /// How far back an instant selector looks (`--query.lookback-delta`). Default 5m.
    pub lookback_delta: Option<NonZeroDuration>,
}

/// Each `--query.*` flag overrides its field of the file's `[query]`.
impl Overlay for QueryConfig {
    fn overlay_with(&mut self, flags: QueryConfig) {
        vigil_shared::overlay_fields!(self, flags;
            max_samples,
            max_series,
            timeout,
            max_concurrency,
            lookback_delta,
        );
    }
}

impl QueryConfig {
    fn options(&self, problems: &mut Vec<String>) -> crate::query::QueryOptions {
        let d = crate::query::QueryOptions::default();
        for (name, v) in [
            ("max_samples", self.max_samples),
            ("max_series", self.max_series),
            ("max_concurrency", self.max_concurrency),
        ] {
            if v == Some(0) {
                problems.push(format!("query.{name}: must be at least 1"));
            }
        }
        crate::query::QueryOptions {
            max_samples: self.max_samples.unwrap_or(d.max_samples),
            max_series: self.max_series.unwrap_or(d.max_series),
            timeout: self.timeout.map_or(d.timeout, |t| t.get()),
            max_concurrency: self.max_concurrency.unwrap_or(d.max_concurrency),
            lookback_delta: self.lookback_delta.map_or(d.lookback_delta, |t| t.get()),
            ..d
        }
    }
}

/// `[limits]`: cardinality protection per tenant. A tenant is named by remote_write's
/// `X-Scope-OrgID` header, or for agents by `agent_tenants`; data naming none belongs to
/// the tenant `default`.
///
/// ```toml
/// [limits]
/// max_series_per_tenant = 100000
/// agent_tenants = { "web-1" = "team-a", "web-2" = "team-a" }
/// [limits.tenants.team-a]
/// max_series = 20000
/// ```
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most active (head) series one tenant may own; 0 means unlimited. Default 0.
    pub max_series_per_tenant: Option<usize>,
    /// Overrides per tenant name.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantLimits>,
    /// Tenant of each agent, by the name in its certificate. Default: `default`.
    #[serde(default)]
    pub agent_tenants: BTreeMap<String, String>,
}

/// `[limits.tenants.NAME]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    /// Most active series this tenant may own; 0 means unlimited.
    pub max_series: usize,
}

/// The flags set only `--max-series-per-tenant`; the per-tenant tables come from the file.
impl Overlay for LimitsConfig {
    fn overlay_with(&mut self, flags: LimitsConfig) {
        self.max_series_per_tenant
            .overlay_with(flags.max_series_per_tenant);
    }
}

/// Validated settings with defaults resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub certs_dir: PathBuf,
    pub quic_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub retention: Duration,
    pub max_series: usize,
    pub out_of_order_window: Duration,
    pub shutdown_grace: Duration,
    pub rule_files: Vec<PathBuf>,
    pub evaluation_interval: Duration,
    pub early_evaluation_gap: Duration,
    pub alertmanager_config: Option<PathBuf>,
    /// Default per-tenant active-series limit (0 = unlimited).
    pub max_series_per_tenant: usize,
    /// Per-tenant overrides of it.
    pub tenant_max_series: HashMap<String, usize>,
    /// Tenant of each agent by certificate name.
    pub agent_tenants: HashMap<String, String>,
    /// `POST /api/v2/alerts` endpoints of external Alertmanagers.
    pub alertmanager_urls: Vec<String>,
    pub silence_retention: Duration,
    /// PromQL engine limits.
    pub query: crate::query::QueryOptions,
}

impl ConfigFile for CollectorConfig {
    type Settings = Settings;

    fn overlay(mut self, flags: CollectorConfig) -> CollectorConfig {
        vigil_shared::overlay_fields!(self, flags;
            data_dir,
            certs_dir,
            quic_listen,
            http_listen,
            retention,
            max_series,
            out_of_order_window,
            shutdown_grace,
            evaluation_interval,
            early_evaluation_gap,
            alertmanager_config,
            silence_retention,
            rule_files,
            limits,
            alertmanager_urls,
            query,
        );
        self
    }

    /// Checks everything that can be checked without binding a port.
    fn validate(self) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();
        let certs_dir = self
            .certs_dir
            .unwrap_or_else(|| PathBuf::from("/etc/vigil/collector"));
        use vigil_shared::certs::files;
        for f in [files::CA_CERT, files::COLLECTOR_CERT, files::COLLECTOR_KEY] {
            let p = certs_dir.join(f);
            if !p.is_file() {
                problems.push(format!("certs_dir: {} is missing (create it with `vigil-collector certs init --dir {}`)", p.display(), certs_dir.display()));
            }
        }
        let quic_listen = self
            .quic_listen
            .unwrap_or_else(|| ([0, 0, 0, 0], 4433).into());
        let http_listen = self
            .http_listen
            .unwrap_or_else(|| ([0, 0, 0, 0], 9090).into());
        for f in &self.rule_files {
            if let Err(e) = crate::rules::file::load_file(f) {
                problems.push(format!("rule_files: {e}"));
            }
        }
        if let Some(am) = &self.alertmanager_config {
            if let Err(e) = crate::notify::Config::load_file(am) {
                problems.push(format!("alertmanager_config: {e}"));
            }
        }
        for (agent, tenant) in &self.limits.agent_tenants {
            if tenant.is_empty() {
                problems.push(format!(
                    "limits.agent_tenants: agent {agent:?} has an empty tenant name (e.g. \"team-a\")"
                ));
            }
        }
        if self.limits.tenants.keys().any(String::is_empty) {
            problems.push("limits.tenants: a tenant name is empty".to_string());
        }
        let mut alertmanager_urls = Vec::new();
        for u in &self.alertmanager_urls {
            match crate::notify::forward::alerts_endpoint(u) {
                Ok(e) => alertmanager_urls.push(e),
                Err(e) => problems.push(format!("alertmanager_urls: {e}")),
            }
        }
        let query = self.query.options(&mut problems);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        let retention = self
            .retention
            .map(|d| d.get())
            .unwrap_or(Duration::from_secs(15 * 86400));
        Ok(Settings {
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from("/var/lib/vigil-collector")),
            certs_dir,
            quic_listen,
            http_listen,
            retention,
            max_series: self.max_series.unwrap_or(0),
            out_of_order_window: self.out_of_order_window.map(|d| d.0).unwrap_or(retention),
            rule_files: self.rule_files,
            evaluation_interval: self
                .evaluation_interval
                .map(|d| d.get())
                .unwrap_or(Duration::from_secs(60)),
            early_evaluation_gap: self
                .early_evaluation_gap
                .map(|d| d.0)
                .unwrap_or(crate::rules::manager::DEFAULT_EAGER_MIN_GAP),
            alertmanager_config: self.alertmanager_config,
            max_series_per_tenant: self.limits.max_series_per_tenant.unwrap_or(0),
            tenant_max_series: self
                .limits
                .tenants
                .into_iter()
                .map(|(t, l)| (t, l.max_series))
                .collect(),
            agent_tenants: self.limits.agent_tenants.into_iter().collect(),
            alertmanager_urls,
            silence_retention: self
                .silence_retention
                .map(|d| d.get())
                .unwrap_or(crate::notify::silence::DEFAULT_RETENTION),
            shutdown_grace: self
                .shutdown_grace
                .map(|d| d.get())
                .unwrap_or(Duration::from_secs(10)),
            query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_bad_durations_name_the_line() {
        let err = toml::from_str::<CollectorConfig>("retention = \"15d\"\nretension = \"1d\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("retension"), "{err}");
        let err = toml::from_str::<CollectorConfig>("retention = \"0s\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 1") && err.contains("greater than zero"),
            "{err}"
        );
    }

    /// Regression: agents send live data ahead of their backlog, so after an outage the
    /// backlog arrives older than each series' newest sample. With Prometheus's window of 0
    /// it was acknowledged but dropped as out of order.
    #[test]
    fn out_of_order_window_defaults_to_retention_so_an_agent_backlog_is_kept() {
        let dir = std::env::temp_dir().join(format!("vigil-cfg-{}", std::process::id()));
        crate::certs_cmd::init(&dir, &[]).unwrap();
        let cfg = CollectorConfig {
            certs_dir: Some(dir.clone()),
            retention: Some("30d".parse().unwrap()),
            ..Default::default()
        };
        let s = cfg.validate().unwrap();
        assert_eq!(s.out_of_order_window, Duration::from_secs(30 * 86400));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn early_evaluation_gap_defaults_to_200ms_and_zero_turns_it_off() {
        let dir = std::env::temp_dir().join(format!("vigil-cfg-gap-{}", std::process::id()));
        crate::certs_cmd::init(&dir, &[]).unwrap();
        let cfg = |toml_text: &str| {
            let mut c: CollectorConfig = toml::from_str(toml_text).unwrap();
            c.certs_dir = Some(dir.clone());
            c.validate().unwrap().early_evaluation_gap
        };
        assert_eq!(cfg(""), Duration::from_millis(200));
        assert_eq!(cfg("early_evaluation_gap = \"0s\"\n"), Duration::ZERO);
        assert_eq!(
            cfg("early_evaluation_gap = \"1s\"\n"),
            Duration::from_secs(1)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn limits_section_parses_overrides_and_flags_win() {
        let dir = std::env::temp_dir().join(format!("vigil-cfg-limits-{}", std::process::id()));
        crate::certs_cmd::init(&dir, &[]).unwrap();
        let mut file: CollectorConfig = toml::from_str(
            "[limits]\nmax_series_per_tenant = 100\nagent_tenants = { web-1 = \"team-a\" }\n\
             [limits.tenants.team-a]\nmax_series = 5\n",
        )
        .unwrap();
        file.certs_dir = Some(dir.clone());
        let flags = CollectorConfig {
            limits: LimitsConfig {
                max_series_per_tenant: Some(7),
                ..Default::default()
            },
            ..Default::default()
        };
        let s = file.overlay(flags).validate().unwrap();
        assert_eq!(s.max_series_per_tenant, 7);
        assert_eq!(s.tenant_max_series.get("team-a"), Some(&5));
        assert_eq!(
            s.agent_tenants.get("web-1").map(String::as_str),
            Some("team-a")
        );
        let err = toml::from_str::<CollectorConfig>("[limits]\nmax_series = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_series"), "{err}");
        let mut bad: CollectorConfig =
            toml::from_str("[limits]\nagent_tenants = { web-1 = \"\" }\n").unwrap();
        bad.certs_dir = Some(dir.clone());
        let ConfigError::Invalid(p) = bad.validate().unwrap_err() else {
            panic!("expected Invalid")
        };
        assert!(p[0].contains("web-1"), "{p:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn missing_certificates_are_each_named() {
        let cfg = CollectorConfig {
            certs_dir: Some("/nonexistent".into()),
            ..Default::default()
        };
        let ConfigError::Invalid(p) = cfg.validate().unwrap_err() else {
            panic!("expected Invalid")
        };
        assert_eq!(p.len(), 3, "{p:?}");
    }

    #[test]
    fn alertmanager_urls_are_checked_and_named() {
        let cfg = CollectorConfig {
            certs_dir: Some("/nonexistent".into()),
            alertmanager_urls: vec!["am:9093".into(), "http://am:9093".into()],
            ..Default::default()
        };
        let ConfigError::Invalid(p) = cfg.validate().unwrap_err() else {
            panic!("expected Invalid")
        };
        let bad: Vec<&String> = p
            .iter()
            .filter(|l| l.starts_with("alertmanager_urls:"))
            .collect();
        assert_eq!(bad.len(), 1, "{p:?}");
        assert!(bad[0].contains("\"am:9093\""), "{p:?}");
    }

    #[test]
    fn query_limits_come_from_the_file_and_flags_and_zero_is_refused() {
        let dir = std::env::temp_dir().join(format!("vigil-cfg-query-{}", std::process::id()));
        crate::certs_cmd::init(&dir, &[]).unwrap();
        let mut file: CollectorConfig = toml::from_str(
            "[query]\nmax_samples = 1000\ntimeout = \"10s\"\nlookback_delta = \"1m\"\n",
        )
        .unwrap();
        file.certs_dir = Some(dir.clone());
        let flags = CollectorConfig {
            query: QueryConfig {
                max_samples: Some(2000),
                max_concurrency: Some(2),
                ..Default::default()
            },
            ..Default::default()
        };
        let q = file.clone().overlay(flags).validate().unwrap().query;
        assert_eq!(q.max_samples, 2000, "flags win");
        assert_eq!(q.max_concurrency, 2);
        assert_eq!(q.timeout, Duration::from_secs(10));
        assert_eq!(q.lookback_delta, Duration::from_secs(60));
        assert_eq!(
            q.max_series,
            crate::query::QueryOptions::default().max_series
        );

        file.query.max_series = Some(0);
        let ConfigError::Invalid(p) = file.validate().unwrap_err() else {
            panic!("expected Invalid")
        };
        assert_eq!(p, vec!["query.max_series: must be at least 1".to_string()]);
        let err = toml::from_str::<CollectorConfig>("[query]\nmax_sample = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_sample"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
