//! Request parameters as the Prometheus HTTP API reads them: [`Params`] gathers the URL
//! query and, for a form POST, the body (the body wins), and the helpers here read the
//! parameters the query, series and metadata endpoints share (`time`/`start`/`end`,
//! `timeout`, `match[]`, `limit`), each failure a `bad_data` error that names the parameter.

use std::time::Duration;

use axum::extract::{FromRequest, Query, Request};
use axum::http::{header, Method};
use axum::response::Response;
use axum::Form;

use super::json::error_response;
use crate::query::plan::parse_series_selector;
use crate::query::timeparse::{parse_duration, parse_time};
use crate::query::QueryError;
use crate::storage::matcher::Matcher;

/// The earliest time an absent `start` stands for.
pub(crate) const MIN_TIME_MS: i64 = i64::MIN / 2;
/// The latest time an absent `end` stands for.
pub(crate) const MAX_TIME_MS: i64 = i64::MAX / 2;

/// Request parameters from the URL query and, for POST, the form body (body wins).
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The last value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of parameter `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut out: Vec<(String, String)> = match req.uri().query() {
            Some(q) => Query::<Vec<(String, String)>>::try_from_uri(req.uri())
                .map(|Query(v)| v)
                .map_err(|e| {
                    error_response(&QueryError::BadData(format!(
                        "invalid query string {q:?}: {e}"
                    )))
                })?,
            None => Vec::new(),
        };
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if req.method() == Method::POST && is_form {
            let Form(body) = Form::<Vec<(String, String)>>::from_request(req, state)
                .await
                .map_err(|e| {
                    error_response(&QueryError::BadData(format!("invalid form body: {e}")))
                })?;
            out.extend(body);
        }
        Ok(Params(out))
    }
}

/// `e`, said of parameter `name`.
pub(crate) fn param_error(name: &str, e: QueryError) -> QueryError {
    QueryError::BadData(format!("invalid parameter {name:?}: {e}"))
}

/// Parameter `name`, which must be given.
pub(crate) fn required<'a>(p: &'a Params, name: &str) -> Result<&'a str, QueryError> {
    p.get(name)
        .ok_or_else(|| QueryError::BadData(format!("invalid parameter {name:?}: missing")))
}

/// Parameter `name` as a time, `default` when absent or empty.
pub(crate) fn time_param(p: &Params, name: &str, default: i64) -> Result<i64, QueryError> {
    match p.get(name) {
        None | Some("") => Ok(default),
        Some(v) => parse_time(v).map_err(|e| param_error(name, e)),
    }
}

/// Parameter `name`, which must be given, as a time.
pub(crate) fn required_time(p: &Params, name: &str) -> Result<i64, QueryError> {
    parse_time(required(p, name)?).map_err(|e| param_error(name, e))
}

/// The `timeout` parameter, if given.
pub(crate) fn timeout_param(p: &Params) -> Result<Option<Duration>, QueryError> {
    match p.get("timeout") {
        None | Some("") => Ok(None),
        Some(v) => {
            let ms = parse_duration(v).map_err(|e| param_error("timeout", e))?;
            Ok(Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
        }
    }
}

/// Every `match[]` selector, parsed.
pub(crate) fn matcher_sets(p: &Params) -> Result<Vec<Vec<Matcher>>, QueryError> {
    p.all("match[]")
        .into_iter()
        .map(|s| parse_series_selector(s).map_err(|e| param_error("match[]", e)))
        .collect()
}

/// An integer parameter as Prometheus reads it (`strconv.Atoi`), `-1` when absent.
pub(crate) fn limit_param(p: &Params, name: &str) -> Result<i64, QueryError> {
    match p.get(name) {
        None | Some("") => Ok(-1),
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| QueryError::BadData(format!("{name} must be a number"))),
    }
}
