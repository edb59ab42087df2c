//! Alertmanager's v2 API over the collector's silences and notification pipeline, with
//! Alertmanager 0.25's JSON shapes, status codes and error texts, so that `amtool silence
//! add/query/expire/update` and `amtool alert query` work against the collector:
//!
//! - `GET /api/v2/silences?filter=…`: every silence (expired ones until the retention
//!   passes) whose matchers include each filter matcher, sorted active (by end), pending
//!   (by start), expired (latest end first). A bad filter is 400 with the parse error.
//! - `POST /api/v2/silences`: creates a silence, or updates the one named by `id` (see
//!   [`crate::notify::silence::Silences::set`]); answers `{"silenceID": …}`. A malformed
//!   body is 400, a missing required field 422 (go-swagger's `{"code":602,…}`), an invalid
//!   silence 400 with Alertmanager's message, an unknown id 404.
//! - `GET /api/v2/silence/{id}`: one silence; 404 with an empty body when unknown, 422 when
//!   the id is not a UUID.
//! - `DELETE /api/v2/silence/{id}`: expires it; 500 `"silence not found"` when unknown,
//!   as Alertmanager answers.
//! - `GET /api/v2/alerts?filter=…&receiver=…&active=…&silenced=…&inhibited=…&unprocessed=…`:
//!   the dispatcher's unresolved alerts with `status.state` (`active` or `suppressed`),
//!   `silencedBy`, `inhibitedBy`, `receivers` and `fingerprint`, sorted by fingerprint.
//! - `POST /api/v2/alerts`: alerts from a Prometheus (`alerting.alertmanagers`) or
//!   `amtool alert add`, into the same routing, inhibition and silencing as the rules'
//!   alerts. As Alertmanager: a missing `startsAt` is now (or `endsAt`), a missing `endsAt`
//!   is `resolve_timeout` from now, empty labels are dropped, the valid alerts of a request
//!   are kept and the invalid ones answered with 400 and their errors joined by `; `; a
//!   body that is not an alert list is 400, a missing `labels` or a `generatorURL` that is
//!   not a URI 422. Without `--alertmanager-config` there is nowhere to route: 503.
//! - `GET /api/v2/receivers`: the config's receiver names.
//! - `GET /api/v2/status`: cluster (disabled), the Alertmanager config text, uptime and
//!   version, which amtool asks for before every command.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::notify::alert::Alert;
use crate::notify::matcher::{parse_matcher, Matcher};
use crate::notify::silence::{
    format_time, is_uuid, parse_time, sort_for_api, Silence, SilenceError, SilenceMatcher,
};
use crate::notify::{AlertStore, Config, DispatcherHandle, Silences};
use crate::telemetry::SilenceMetrics;

use super::json::json_response as json;
use super::params::Params;

/// The Alertmanager release whose v2 API this module reproduces.
pub const ALERTMANAGER_API_VERSION: &str = "0.25.0";

/// What the v2 handlers need.
#[derive(Debug, Clone)]
pub struct AlertmanagerApi {
    /// The silence store.
    pub silences: Arc<Silences>,
    /// The dispatcher's alerts (empty when no pipeline runs).
    pub alerts: AlertStore,
    /// The routing config, for `receivers` and inhibition (none: no receivers, no rules).
    pub config: Option<Arc<Config>>,
    /// The Alertmanager config file's text, for `/api/v2/status`.
    pub config_text: String,
    /// When the collector started, for `/api/v2/status`'s `uptime`.
    pub started: SystemTime,
    /// Error counting.
    pub metrics: Option<SilenceMetrics>,
    /// Where `POST /api/v2/alerts` sends alerts (none without an Alertmanager config).
    pub dispatcher: Option<DispatcherHandle>,
}

/// The `/api/v2` routes.
pub fn router(api: AlertmanagerApi) -> Router {
    Router::new()
        .route("/api/v2/silences", get(list_silences).post(post_silence))
        .route(
            "/api/v2/silence/{id}",
            get(get_silence).delete(delete_silence),
        )
        .route("/api/v2/alerts", get(list_alerts).post(post_alerts))
        .route("/api/v2/receivers", get(receivers))
        .route("/api/v2/status", get(status))
        .with_state(api)
}

/// go-swagger's answer for a string payload: the JSON-quoted string and a newline.
fn json_string(code: StatusCode, s: &str) -> Response {
    json(
        code,
        format!("{}\n", serde_json::Value::String(s.to_string())),
    )
}

/// go-openapi's error object, `{"code":…,"message":…}`.
fn api_error(code: StatusCode, api_code: u16, message: &str) -> Response {
    json(
        code,
        serde_json::json!({"code": api_code, "message": message}).to_string(),
    )
}

impl AlertmanagerApi {
    fn failed(&self) {
        if let Some(m) = &self.metrics {
            m.query_errors.inc();
        }
    }
}

/// The v2 matcher object.
#[derive(Debug, Serialize)]
struct MatcherJson<'a> {
    #[serde(rename = "isEqual")]
    is_equal: bool,
    #[serde(rename = "isRegex")]
    is_regex: bool,
    name: &'a str,
    value: &'a str,
}

#[derive(Debug, Serialize)]
struct StatusJson {
    state: &'static str,
}

/// `GettableSilence`, fields in go-swagger's order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GettableSilence<'a> {
    id: &'a str,
    status: StatusJson,
    updated_at: String,
    comment: &'a str,
    created_by: &'a str,
    ends_at: String,
    matchers: Vec<MatcherJson<'a>>,
    starts_at: String,
}

fn gettable(s: &Silence, now: SystemTime) -> GettableSilence<'_> {
    GettableSilence {
        id: &s.id,
        status: StatusJson {
            state: s.state_at(now).as_str(),
        },
        updated_at: format_time(s.updated_at),
        comment: &s.comment,
        created_by: &s.created_by,
        ends_at: format_time(s.ends_at),
        matchers: s
            .matchers
            .iter()
            .map(|m| MatcherJson {
                is_equal: m.is_equal,
                is_regex: m.is_regex,
                name: &m.name,
                value: &m.value,
            })
            .collect(),
        starts_at: format_time(s.starts_at),
    }
}

/// Parses `filter=` values as Alertmanager does (`labels.ParseMatcher`, one matcher each).
fn filters(params: &Params) -> Result<Vec<Matcher>, String> {
    params
        .all("filter")
        .into_iter()
        .map(|f| parse_matcher(f).map_err(|e| e.to_string()))
        .collect()
}

async fn list_silences(State(api): State<AlertmanagerApi>, params: Params) -> Response {
    let filter = match filters(&params) {
        Ok(f) => f,
        Err(e) => {
            api.failed();
            return json_string(StatusCode::BAD_REQUEST, &e);
        }
    };
    let now = SystemTime::now();
    let mut list = api.silences.list(&filter);
    sort_for_api(&mut list, now);
    let out: Vec<GettableSilence<'_>> = list.iter().map(|s| gettable(s, now)).collect();
    json(
        StatusCode::OK,
        serde_json::to_string(&out).unwrap_or_default(),
    )
}

/// go-swagger's 422 for a `{id}` in the path that is not a UUID; `None` for a UUID.
fn refuse_non_uuid(api: &AlertmanagerApi, id: &str) -> Option<Response> {
    if is_uuid(id) {
        return None;
    }
    api.failed();
    Some(api_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        601,
        &format!("silenceID in path must be of type uuid: {}", quote(id)),
    ))
}

async fn get_silence(State(api): State<AlertmanagerApi>, Path(id): Path<String>) -> Response {
    if let Some(r) = refuse_non_uuid(&api, &id) {
        return r;
    }
    match api.silences.get(&id) {
        Some(s) => json(
            StatusCode::OK,
            serde_json::to_string(&gettable(&s, SystemTime::now())).unwrap_or_default(),
        ),
        None => {
            api.failed();
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

async fn delete_silence(State(api): State<AlertmanagerApi>, Path(id): Path<String>) -> Response {
    if let Some(r) = refuse_non_uuid(&api, &id) {
        return r;
    }
    let silences = api.silences.clone();
    let r = tokio::task::spawn_blocking(move || silences.expire(&id, SystemTime::now())).await;
    let failure = match r {
        Ok(Ok(())) => return StatusCode::OK.into_response(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    api.failed();
    json_string(StatusCode::INTERNAL_SERVER_ERROR, &failure)
}

fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// `PostableSilence` as sent; every field optional so that missing ones get go-swagger's
/// "required" errors rather than a parse error. Unknown fields are ignored, as there.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    id: Option<String>,
    comment: Option<String>,
    created_by: Option<String>,
    ends_at: Option<String>,
    matchers: Option<Vec<PostableMatcher>>,
    starts_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableMatcher {
    is_equal: Option<bool>,
    is_regex: Option<bool>,
    name: Option<String>,
    value: Option<String>,
}

/// Why a POST body was refused before it reached the store.
enum BodyError {
    /// Not JSON of the right shape: 400.
    Parse(String),
    /// A required field is missing or a list is empty: 422 with go-swagger's code.
    Validation(u16, String),
}

fn parse_postable(body: &[u8]) -> Result<Silence, BodyError> {
    let parse = |why: String| {
        BodyError::Parse(format!(
            "parsing silence body from \"\" failed, because {why}"
        ))
    };
    let p: PostableSilence = serde_json::from_slice(body).map_err(|e| parse(e.to_string()))?;
    let required = |field: &str| BodyError::Validation(602, format!("{field} in body is required"));
    // go-swagger validates the fields in alphabetical order and reports the first problem.
    let comment = p.comment.ok_or_else(|| required("comment"))?;
    let created_by = p.created_by.ok_or_else(|| required("createdBy"))?;
    let ends_at = p.ends_at.ok_or_else(|| required("endsAt"))?;
    let matchers = p.matchers.ok_or_else(|| required("matchers"))?;
    if matchers.is_empty() {
        return Err(BodyError::Validation(
            612,
            "matchers in body should have at least 1 items".into(),
        ));
    }
    let mut ms = Vec::with_capacity(matchers.len());
    for (i, m) in matchers.into_iter().enumerate() {
        let req = |f: &str| required(&format!("matchers.{i}.{f}"));
        let is_regex = m.is_regex.ok_or_else(|| req("isRegex"))?;
        let name = m.name.ok_or_else(|| req("name"))?;
        let value = m.value.ok_or_else(|| req("value"))?;
        ms.push(SilenceMatcher {
            name,
            value,
            is_regex,
            is_equal: m.is_equal.unwrap_or(true),
        });
    }
    let starts_at = p.starts_at.ok_or_else(|| required("startsAt"))?;
    let starts_at = parse_time(&starts_at).map_err(parse)?;
    let ends_at = parse_time(&ends_at).map_err(parse)?;
    Ok(Silence {
        id: p.id.unwrap_or_default(),
        matchers: ms,
        starts_at,
        ends_at,
        updated_at: SystemTime::now(),
        created_by,
        comment,
    })
}

async fn post_silence(State(api): State<AlertmanagerApi>, body: Bytes) -> Response {
    let sil = match parse_postable(&body) {
        Ok(s) => s,
        Err(BodyError::Parse(m)) => {
            api.failed();
            return api_error(StatusCode::BAD_REQUEST, 400, &m);
        }
        Err(BodyError::Validation(code, m)) => {
            api.failed();
            return api_error(StatusCode::UNPROCESSABLE_ENTITY, code, &m);
        }
    };
    let now = SystemTime::now();
    if sil.starts_at >= sil.ends_at {
        api.failed();
        return json_string(
            StatusCode::BAD_REQUEST,
            "Failed to create silence: start time must be before end time",
        );
    }
    if sil.ends_at < now {
        api.failed();
        return json_string(
            StatusCode::BAD_REQUEST,
            "Failed to create silence: end time can't be in the past",
        );
    }
    let silences = api.silences.clone();
    let r = tokio::task::spawn_blocking(move || silences.set(sil, now)).await;
    match r {
        Ok(Ok(id)) => json(
            StatusCode::OK,
            format!("{}\n", serde_json::json!({ "silenceID": id })),
        ),
        Ok(Err(e)) => {
            api.failed();
            let code = match e {
                SilenceError::NotFound => StatusCode::NOT_FOUND,
                SilenceError::Invalid(_) => StatusCode::BAD_REQUEST,
                SilenceError::Snapshot { .. } | SilenceError::Load { .. } => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            json_string(code, &e.to_string())
        }
        Err(e) => {
            api.failed();
            json_string(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
    }
}

/// `GettableAlert`, fields in go-swagger's order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GettableAlert<'a> {
    annotations: &'a std::collections::BTreeMap<String, String>,
    ends_at: String,
    fingerprint: String,
    receivers: Vec<ReceiverJson>,
    starts_at: String,
    status: AlertStatusJson,
    updated_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "str::is_empty")]
    generator_url: &'a str,
    labels: &'a std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct ReceiverJson {
    name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertStatusJson {
    inhibited_by: Vec<String>,
    silenced_by: Vec<String>,
    state: &'static str,
}

fn bool_param(params: &Params, name: &str) -> Result<bool, String> {
    match params.get(name) {
        None | Some("") => Ok(true),
        Some(v) => match v {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            _ => Err(format!(
                "{name} in query must be of type bool: {}",
                quote(v)
            )),
        },
    }
}

/// The fingerprint of the firing alert that inhibits `target` (Alertmanager's
/// `Inhibitor.Mutes` records one), if any.
fn inhibited_by(config: &Config, firing: &[(u64, &Alert)], target: &Alert) -> Option<u64> {
    config.inhibit_rules.iter().find_map(|r| {
        firing
            .iter()
            .find(|(_, s)| r.inhibits(&s.labels, &target.labels))
            .map(|(fp, _)| *fp)
    })
}

async fn list_alerts(State(api): State<AlertmanagerApi>, params: Params) -> Response {
    let filter = match filters(&params) {
        Ok(f) => f,
        Err(e) => {
            api.failed();
            return json_string(StatusCode::BAD_REQUEST, &e);
        }
    };
    let mut flags = [true; 4];
    for (i, name) in ["active", "silenced", "inhibited", "unprocessed"]
        .iter()
        .enumerate()
    {
        match bool_param(&params, name) {
            Ok(b) => flags[i] = b,
            Err(e) => {
                api.failed();
                return api_error(StatusCode::BAD_REQUEST, 400, &e);
            }
        }
    }
    let [active, silenced, inhibited, _unprocessed] = flags;
    let receiver_re = match params.get("receiver") {
        None | Some("") => None,
        Some(r) => match regex::Regex::new(&format!("^(?:{r})$")) {
            Ok(re) => Some(re),
            Err(e) => {
                api.failed();
                return json_string(
                    StatusCode::BAD_REQUEST,
                    &format!("failed to parse receiver param: {e}"),
                );
            }
        },
    };
    let now = SystemTime::now();
    let all = api.alerts.snapshot();
    let firing: Vec<(u64, &Alert)> = all
        .iter()
        .filter(|(_, a)| !a.alert.is_resolved_at(now))
        .map(|(fp, a)| (*fp, &a.alert))
        .collect();
    let mut out = Vec::new();
    for (fp, stored) in &all {
        let a = &stored.alert;
        let receivers: Vec<String> = match &api.config {
            Some(c) => c
                .route
                .match_routes(&a.labels)
                .into_iter()
                .map(|r| r.opts.receiver.clone())
                .collect(),
            None => Vec::new(),
        };
        if let Some(re) = &receiver_re {
            if !receivers.iter().any(|r| re.is_match(r)) {
                continue;
            }
        }
        if !filter.iter().all(|m| m.matches(&a.labels)) {
            continue;
        }
        if a.is_resolved_at(now) {
            continue;
        }
        let inhibited_by: Vec<String> = api
            .config
            .as_deref()
            .and_then(|c| inhibited_by(c, &firing, a))
            .map(|fp| format!("{fp:016x}"))
            .into_iter()
            .collect();
        let silenced_by = api.silences.mutes(&a.labels, now);
        let suppressed = !inhibited_by.is_empty() || !silenced_by.is_empty();
        if !active && !suppressed {
            continue;
        }
        if !silenced && !silenced_by.is_empty() {
            continue;
        }
        if !inhibited && !inhibited_by.is_empty() {
            continue;
        }
        out.push(GettableAlert {
            annotations: &a.annotations,
            ends_at: format_time(a.ends_at.unwrap_or(now)),
            fingerprint: format!("{fp:016x}"),
            receivers: receivers
                .into_iter()
                .map(|name| ReceiverJson { name })
                .collect(),
            starts_at: format_time(a.starts_at),
            status: AlertStatusJson {
                inhibited_by,
                silenced_by,
                state: if suppressed { "suppressed" } else { "active" },
            },
            updated_at: format_time(stored.updated_at),
            generator_url: &a.generator_url,
            labels: &a.labels,
        });
    }
    json(
        StatusCode::OK,
        serde_json::to_string(&out).unwrap_or_default(),
    )
}

/// `PostableAlert`; unknown fields are ignored, as go-swagger does.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
}

/// go-openapi's `uri` format: what Go's `url.ParseRequestURI` accepts, an absolute URI
/// (`scheme:…`) or an absolute path, without spaces or control characters.
fn is_request_uri(s: &str) -> bool {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if s.starts_with('/') {
        return true;
    }
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Alertmanager's `model.LabelSet.Validate`, names checked in sorted order.
fn validate_label_set(set: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    match set
        .keys()
        .find(|n| !crate::notify::matcher::is_valid_label_name(n))
    {
        Some(n) => Err(format!("invalid name {}", quote(n))),
        None => Ok(()),
    }
}

/// A posted alert's labels and times, read by the schema checks.
struct Decoded {
    labels: std::collections::BTreeMap<String, String>,
    starts: Option<SystemTime>,
    ends: Option<SystemTime>,
}

/// One posted alert as Alertmanager 0.25 reads it, or its validation error.
fn posted_alert(p: PostableAlert, d: Decoded, now: SystemTime) -> Result<Alert, String> {
    let Decoded {
        labels,
        starts,
        ends,
    } = d;
    let starts_at = starts.or(ends).unwrap_or(now);
    if ends.is_some_and(|e| e < starts_at) {
        return Err("start time must be before end time".into());
    }
    let labels: std::collections::BTreeMap<String, String> =
        labels.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    validate_label_set(&labels).map_err(|e| format!("invalid label set: {e}"))?;
    if labels.is_empty() {
        return Err("at least one label pair required".into());
    }
    validate_label_set(&p.annotations).map_err(|e| format!("invalid annotations: {e}"))?;
    Ok(Alert {
        labels,
        annotations: p.annotations,
        starts_at,
        // None: the dispatcher gives it `resolve_timeout`, as Alertmanager's `Timeout`.
        ends_at: ends,
        generator_url: p.generator_url,
    })
}

async fn post_alerts(State(api): State<AlertmanagerApi>, body: Bytes) -> Response {
    let mut posted: Vec<PostableAlert> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            api.failed();
            return api_error(
                StatusCode::BAD_REQUEST,
                400,
                &format!("parsing alerts body from \"\" failed, because {e}"),
            );
        }
    };
    // Decoding and go-swagger's schema checks come first and refuse the whole request.
    let mut decoded = Vec::with_capacity(posted.len());
    for (i, p) in posted.iter_mut().enumerate() {
        // Go's zero time (`0001-01-01T00:00:00Z`, what amtool sends) means unset.
        let go_zero = std::time::UNIX_EPOCH - std::time::Duration::from_secs(62_135_596_800);
        let time = |t: &Option<String>| {
            t.as_deref()
                .map(parse_time)
                .transpose()
                .map(|t| t.filter(|&t| t != go_zero))
        };
        let (starts, ends) = match (time(&p.starts_at), time(&p.ends_at)) {
            (Ok(s), Ok(e)) => (s, e),
            (Err(e), _) | (_, Err(e)) => {
                api.failed();
                return api_error(
                    StatusCode::BAD_REQUEST,
                    400,
                    &format!("parsing alerts body from \"\" failed, because {e}"),
                );
            }
        };
        let Some(labels) = p.labels.take() else {
            api.failed();
            return api_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                602,
                &format!("{i}.labels in body is required"),
            );
        };
        decoded.push(Decoded {
            labels,
            starts,
            ends,
        });
        if !p.generator_url.is_empty() && !is_request_uri(&p.generator_url) {
            api.failed();
            return api_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                601,
                &format!(
                    "{i}.generatorURL in body must be of type uri: {}",
                    quote(&p.generator_url)
                ),
            );
        }
    }
    let Some(dispatcher) = &api.dispatcher else {
        api.failed();
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            503,
            "no Alertmanager configuration is loaded (--alertmanager-config), so alerts cannot be routed",
        );
    };
    let now = SystemTime::now();
    let mut errors = Vec::new();
    for (p, d) in posted.into_iter().zip(decoded) {
        match posted_alert(p, d, now) {
            Ok(a) => {
                if dispatcher.send(a).await.is_err() {
                    return json_string(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "alert pipeline stopped",
                    );
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        StatusCode::OK.into_response()
    } else {
        api.failed();
        json_string(StatusCode::BAD_REQUEST, &errors.join("; "))
    }
}

async fn receivers(State(api): State<AlertmanagerApi>) -> Response {
    let names: Vec<serde_json::Value> = api
        .config
        .iter()
        .flat_map(|c| c.receivers.iter())
        .map(|r| serde_json::json!({"name": r.name}))
        .collect();
    json(StatusCode::OK, serde_json::Value::Array(names).to_string())
}

async fn status(State(api): State<AlertmanagerApi>) -> Response {
    let body = serde_json::json!({
        "cluster": {"peers": [], "status": "disabled"},
        "config": {"original": api.config_text},
        "uptime": format_time(api.started),
        // `version` is the Alertmanager API level served (amtool warns when it differs
        // from its own); `revision` says what is actually answering.
        "versionInfo": {
            "branch": "vigil",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": format!("vigil-collector {}", env!("CARGO_PKG_VERSION")),
            "version": ALERTMANAGER_API_VERSION,
        },
    });
    json(StatusCode::OK, body.to_string())
}

#[cfg(test)]
mod tests;
