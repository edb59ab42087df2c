//! The Prometheus HTTP query API, served by axum:
//!
//! - `GET|POST /api/v1/query` — instant query (`query`, `time`, `timeout`)
//! - `GET|POST /api/v1/query_range` — range query (`query`, `start`, `end`, `step`, `timeout`)
//! - `GET|POST /api/v1/series` — series matching `match[]` between `start` and `end`
//! - `GET|POST /api/v1/labels` — label names (optional `match[]`)
//! - `GET /api/v1/label/{name}/values` — values of one label (optional `match[]`)
//! - `GET /api/v1/metadata` — metric metadata (TYPE/HELP/UNIT) with `limit`,
//!   `limit_per_metric` and `metric`
//! - `GET /api/v1/status/buildinfo` — version information
//! - `GET|POST /api/v1/query_exemplars` — the query is checked like Prometheus does, and the
//!   answer is empty: Vigil stores no exemplars (Grafana asks for them by default)
//!
//! Responses use Prometheus's JSON envelope; errors carry `errorType` `bad_data` (400),
//! `execution` (422), `timeout` (503) or `internal` (500). Queries run on the blocking pool so
//! a long evaluation does not stall the runtime.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use tokio::sync::Semaphore;
use vigil_shared::model::Labels;

use super::engine::{Engine, QueryOptions};
use super::plan::parse_series_selector;
use super::source::SeriesSource;
use super::timeparse::{parse_duration, parse_time};
use super::value::QueryValue;
use super::QueryError;
use crate::storage::matcher::Matcher;

/// Builds the query API router over `source`.
pub fn router(source: Arc<dyn SeriesSource>, opts: QueryOptions) -> Router {
    let permits = Arc::new(Semaphore::new(opts.max_concurrency.max(1)));
    let engine = Arc::new(QueryEngine {
        engine: Engine::new(source, opts),
        permits,
    });
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route(
            "/api/v1/query_exemplars",
            get(query_exemplars).post(query_exemplars),
        )
        .with_state(engine)
}

/// The router's state: the engine and the permits that bound concurrent evaluations.
struct QueryEngine {
    engine: Engine,
    permits: Arc<Semaphore>,
}

impl std::ops::Deref for QueryEngine {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl QueryEngine {
    /// Runs `f` on the blocking pool once one of `max_concurrency` slots is free. Waiting
    /// counts against the query's timeout, as in Prometheus's query queue.
    async fn evaluate<T: Send + 'static>(
        self: &Arc<Self>,
        timeout: Option<Duration>,
        f: impl FnOnce(&Engine) -> Result<T, QueryError> + Send + 'static,
    ) -> Result<T, QueryError> {
        let wait = match timeout {
            Some(t) if t < self.engine.options().timeout => t,
            _ => self.engine.options().timeout,
        };
        let permit = tokio::time::timeout(wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| QueryError::Timeout("query queue".into()))?
            .map_err(|_| QueryError::Execution("query engine is shutting down".into()))?;
        let this = self.clone();
        run_blocking(move || {
            let _permit = permit;
            f(&this.engine)
        })
        .await
    }
}

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

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The Prometheus API error document and status code for `e`.
pub fn error_response(e: &QueryError) -> Response {
    let status = match e {
        QueryError::BadData(_) => StatusCode::BAD_REQUEST,
        QueryError::Execution(_) => StatusCode::UNPROCESSABLE_ENTITY,
        QueryError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
        QueryError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = format!(
        "{{\"status\":\"error\",\"errorType\":\"{}\",\"error\":{}}}",
        e.error_type(),
        json_string(&e.to_string())
    );
    json_response(status, body)
}

fn success(data: &str) -> Response {
    json_response(
        StatusCode::OK,
        format!("{{\"status\":\"success\",\"data\":{data}}}"),
    )
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

use crate::clock::now_ms;

fn param_error(name: &str, e: QueryError) -> QueryError {
    QueryError::BadData(format!("invalid parameter {name:?}: {e}"))
}

fn time_param(p: &Params, name: &str, default: i64) -> Result<i64, QueryError> {
    match p.get(name) {
        None | Some("") => Ok(default),
        Some(v) => parse_time(v).map_err(|e| param_error(name, e)),
    }
}

fn timeout_param(p: &Params) -> Result<Option<Duration>, QueryError> {
    match p.get("timeout") {
        None | Some("") => Ok(None),
        Some(v) => {
            let ms = parse_duration(v).map_err(|e| param_error("timeout", e))?;
            Ok(Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
        }
    }
}

/// Writes a sample value as Prometheus does: shortest representation, exponent form for
/// very small or large magnitudes, `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (negative, digits, exp) = super::functions::shortest_digits(v);
        let mut s = String::from(if negative { "-" } else { "" });
        s.push(digits[0] as char);
        if digits.len() > 1 {
            s.push('.');
            s.extend(digits[1..].iter().map(|d| *d as char));
        }
        // Go writes the exponent with a sign and at least two digits.
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{s}e{sign}{:02}", exp.unsigned_abs());
    }
    super::functions::format_float(v)
}

/// Writes a millisecond timestamp as Prometheus does: seconds with up to three decimals.
pub fn format_timestamp(t_ms: i64) -> String {
    let mut s = String::new();
    let mut t = t_ms;
    if t < 0 {
        s.push('-');
        t = t.saturating_neg();
    }
    let _ = write!(s, "{}", t / 1000);
    let frac = t % 1000;
    if frac != 0 {
        let _ = write!(s, ".{frac:03}");
    }
    s
}

fn write_labels(out: &mut String, l: &Labels) {
    out.push('{');
    for (i, (n, v)) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_string(n));
        out.push(':');
        out.push_str(&json_string(v));
    }
    out.push('}');
}

fn write_point(out: &mut String, t_ms: i64, v: f64) {
    let _ = write!(out, "[{},\"{}\"]", format_timestamp(t_ms), format_value(v));
}

/// Serialises a query result as Prometheus's `data` object.
pub fn result_json(v: &QueryValue) -> String {
    let mut out = String::with_capacity(256);
    let _ = write!(out, "{{\"resultType\":\"{}\",\"result\":", v.result_type());
    match v {
        QueryValue::Scalar { t_ms, value } => write_point(&mut out, *t_ms, *value),
        QueryValue::Str { t_ms, value } => {
            let _ = write!(out, "[{},{}]", format_timestamp(*t_ms), json_string(value));
        }
        QueryValue::Vector { t_ms, samples } => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(&mut out, &s.labels);
                out.push_str(",\"value\":");
                write_point(&mut out, *t_ms, s.value);
                out.push('}');
            }
            out.push(']');
        }
        QueryValue::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(&mut out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, p) in s.points.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    write_point(&mut out, p.timestamp_ms, p.value);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, QueryError> + Send + 'static,
) -> Result<T, QueryError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| QueryError::Execution(format!("query task failed: {e}")))?
}

async fn query(State(engine): State<Arc<QueryEngine>>, p: Params) -> Response {
    let r = async {
        let q = p
            .get("query")
            .ok_or_else(|| QueryError::BadData("invalid parameter \"query\": missing".into()))?
            .to_string();
        let t = time_param(&p, "time", now_ms())?;
        let timeout = timeout_param(&p)?;
        engine
            .evaluate(timeout, move |e| e.instant(&q, t, timeout))
            .await
    }
    .await;
    match r {
        Ok(v) => success(&result_json(&v)),
        Err(e) => error_response(&e),
    }
}

async fn query_range(State(engine): State<Arc<QueryEngine>>, p: Params) -> Response {
    let r = async {
        let q = p
            .get("query")
            .ok_or_else(|| QueryError::BadData("invalid parameter \"query\": missing".into()))?
            .to_string();
        let start = match p.get("start") {
            Some(v) => parse_time(v).map_err(|e| param_error("start", e))?,
            None => {
                return Err(QueryError::BadData(
                    "invalid parameter \"start\": missing".into(),
                ))
            }
        };
        let end = match p.get("end") {
            Some(v) => parse_time(v).map_err(|e| param_error("end", e))?,
            None => {
                return Err(QueryError::BadData(
                    "invalid parameter \"end\": missing".into(),
                ))
            }
        };
        let step = match p.get("step") {
            Some(v) => parse_duration(v).map_err(|e| param_error("step", e))?,
            None => {
                return Err(QueryError::BadData(
                    "invalid parameter \"step\": missing".into(),
                ))
            }
        };
        let timeout = timeout_param(&p)?;
        engine
            .evaluate(timeout, move |e| e.range(&q, start, end, step, timeout))
            .await
    }
    .await;
    match r {
        Ok(v) => success(&result_json(&v)),
        Err(e) => error_response(&e),
    }
}

const MIN_TIME_MS: i64 = i64::MIN / 2;
const MAX_TIME_MS: i64 = i64::MAX / 2;

fn matcher_sets(p: &Params) -> Result<Vec<Vec<Matcher>>, QueryError> {
    p.all("match[]")
        .into_iter()
        .map(|s| parse_series_selector(s).map_err(|e| param_error("match[]", e)))
        .collect()
}

async fn series(State(engine): State<Arc<QueryEngine>>, p: Params) -> Response {
    let r = async {
        let sets = matcher_sets(&p)?;
        if sets.is_empty() {
            return Err(QueryError::BadData("no match[] parameter provided".into()));
        }
        let start = time_param(&p, "start", MIN_TIME_MS)?;
        let end = time_param(&p, "end", MAX_TIME_MS)?;
        let source = engine.source().clone();
        run_blocking(move || {
            let mut all = std::collections::BTreeSet::new();
            for m in &sets {
                all.extend(source.series(m, start, end)?);
            }
            Ok(all)
        })
        .await
    }
    .await;
    match r {
        Ok(all) => {
            let mut out = String::from("[");
            for (i, l) in all.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_labels(&mut out, l);
            }
            out.push(']');
            success(&out)
        }
        Err(e) => error_response(&e),
    }
}

fn string_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| json_string(s)).collect();
    format!("[{}]", items.join(","))
}

async fn labels(State(engine): State<Arc<QueryEngine>>, p: Params) -> Response {
    let r = async {
        let sets = matcher_sets(&p)?;
        let start = time_param(&p, "start", MIN_TIME_MS)?;
        let end = time_param(&p, "end", MAX_TIME_MS)?;
        let source = engine.source().clone();
        run_blocking(move || {
            if sets.is_empty() {
                return source.label_names(&[], start, end);
            }
            let mut all = std::collections::BTreeSet::new();
            for m in &sets {
                all.extend(source.label_names(m, start, end)?);
            }
            Ok(all.into_iter().collect())
        })
        .await
    }
    .await;
    match r {
        Ok(v) => success(&string_list(&v)),
        Err(e) => error_response(&e),
    }
}

async fn label_values(
    State(engine): State<Arc<QueryEngine>>,
    Path(name): Path<String>,
    p: Params,
) -> Response {
    let r = async {
        if !super::aggregate::valid_label_name(&name) {
            return Err(QueryError::BadData(format!("invalid label name: {name:?}")));
        }
        let sets = matcher_sets(&p)?;
        let start = time_param(&p, "start", MIN_TIME_MS)?;
        let end = time_param(&p, "end", MAX_TIME_MS)?;
        let source = engine.source().clone();
        run_blocking(move || {
            if sets.is_empty() {
                return source.label_values(&name, &[], start, end);
            }
            let mut all = std::collections::BTreeSet::new();
            for m in &sets {
                all.extend(source.label_values(&name, m, start, end)?);
            }
            Ok(all.into_iter().collect())
        })
        .await
    }
    .await;
    match r {
        Ok(v) => success(&string_list(&v)),
        Err(e) => error_response(&e),
    }
}

/// An integer parameter as Prometheus reads it (`strconv.Atoi`), `-1` when absent.
fn limit_param(p: &Params, name: &str) -> Result<i64, QueryError> {
    match p.get(name) {
        None | Some("") => Ok(-1),
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| QueryError::BadData(format!("{name} must be a number"))),
    }
}

/// `/api/v1/metadata?limit=…&limit_per_metric=…&metric=…`: TYPE/HELP/UNIT per family, from
/// agents' scrapes and host metrics and from remote_write.
async fn metadata(State(engine): State<Arc<QueryEngine>>, p: Params) -> Response {
    let r = (|| {
        let limit = limit_param(&p, "limit")?;
        let per_metric = limit_param(&p, "limit_per_metric")?;
        let metric = p.get("metric").filter(|m| !m.is_empty());
        Ok::<_, QueryError>(engine.source().metadata(metric, limit, per_metric))
    })();
    match r {
        Ok(m) => match serde_json::to_string(&m) {
            Ok(body) => success(&body),
            Err(e) => error_response(&QueryError::Execution(format!("encoding metadata: {e}"))),
        },
        Err(e) => error_response(&e),
    }
}

/// Prometheus's `query_exemplars`: the same parameter checks, and no exemplars, since
/// neither agents nor remote_write bring any into the store.
async fn query_exemplars(p: Params) -> Response {
    let r = (|| {
        let q = p.get("query").unwrap_or_default();
        let start = time_param(&p, "start", MIN_TIME_MS)?;
        let end = time_param(&p, "end", MAX_TIME_MS)?;
        if end < start {
            return Err(QueryError::BadData(
                "end timestamp must not be before start timestamp".into(),
            ));
        }
        super::plan::plan(q, start, end, 60_000)?;
        Ok(())
    })();
    match r {
        Ok(()) => success("[]"),
        Err(e) => error_response(&e),
    }
}

async fn buildinfo() -> Response {
    success(&format!(
        "{{\"version\":{},\"revision\":\"\",\"branch\":\"\",\"buildUser\":\"\",\"buildDate\":\"\",\"goVersion\":\"\",\"application\":\"vigil-collector\"}}",
        json_string(env!("CARGO_PKG_VERSION"))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_timestamps_format_like_prometheus() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(1e-7), "1e-07");
        assert_eq!(format_value(2.5e21), "2.5e+21");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_timestamp(1_700_000_000_450), "1700000000.450");
        assert_eq!(format_timestamp(1_700_000_000_000), "1700000000");
        assert_eq!(format_timestamp(-1500), "-1.500");
    }
}

#[cfg(test)]
mod http_tests {
    use super::*;
    use crate::query::source::MemSource;
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use tower::ServiceExt;
    use vigil_shared::model::{Point, Series};

    fn app() -> Router {
        let s = |job: &str, inst: &str, v: f64| Series {
            labels: Labels::metric("up", &[("job", job), ("instance", inst)]),
            points: vec![
                Point {
                    timestamp_ms: 1_000_000,
                    value: v,
                },
                Point {
                    timestamp_ms: 1_015_000,
                    value: v,
                },
            ],
        };
        router(
            Arc::new(MemSource::new(vec![
                s("api", "a:1", 1.0),
                s("api", "b:1", 0.0),
                s("db", "c:1", 1.0),
            ])),
            QueryOptions::default(),
        )
    }

    async fn call(req: HttpRequest<Body>) -> (StatusCode, serde_json::Value) {
        let resp = app().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    async fn get(uri: &str) -> (StatusCode, serde_json::Value) {
        call(HttpRequest::get(uri).body(Body::empty()).unwrap()).await
    }

    #[tokio::test]
    async fn instant_query_returns_prometheus_vector_json() {
        let (status, v) = get("/api/v1/query?query=up%7Bjob%3D%22api%22%7D&time=1020").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["status"], "success");
        assert_eq!(v["data"]["resultType"], "vector");
        let r = &v["data"]["result"];
        assert_eq!(r[0]["metric"]["instance"], "a:1");
        assert_eq!(r[0]["value"][0], 1020);
        assert_eq!(r[0]["value"][1], "1");
        let (_, v) = get("/api/v1/query?query=1%2F0&time=1970-01-01T00:17:00.5Z").await;
        assert_eq!(v["data"]["resultType"], "scalar");
        assert_eq!(v["data"]["result"][0], 1020.5);
        assert_eq!(v["data"]["result"][1], "+Inf");
    }

    #[tokio::test]
    async fn range_query_by_post_form_returns_matrix() {
        let req = HttpRequest::post("/api/v1/query_range")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("query=sum(up)&start=1000&end=1030&step=15s"))
            .unwrap();
        let (status, v) = call(req).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["data"]["resultType"], "matrix");
        let values = v["data"]["result"][0]["values"].as_array().unwrap();
        assert_eq!(values.len(), 3);
        assert_eq!(values[2][1], "2");
    }

    #[tokio::test]
    async fn errors_have_prometheus_types_and_status_codes() {
        let (status, v) = get("/api/v1/query?query=sum(up&time=1020").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["errorType"], "bad_data");
        assert!(v["error"].as_str().unwrap().contains("1:"), "{v}");
        let (status, v) = get("/api/v1/query?query=up%20%2B%20on(job)%20up&time=1020").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["errorType"], "execution");
        let (status, v) =
            get("/api/v1/query_range?query=up&start=1000&end=2000&step=1&timeout=0s").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(v["errorType"], "timeout");
        let (status, v) = get("/api/v1/query_range?query=up&start=1000&end=2000").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(v["error"].as_str().unwrap().contains("step"));
        let (status, _) = get("/api/v1/query?query=up&time=notatime").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn series_labels_values_metadata_buildinfo() {
        let (status, v) = get("/api/v1/series?match[]=up%7Bjob%3D%22db%22%7D").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["data"].as_array().unwrap().len(), 1);
        assert_eq!(v["data"][0]["instance"], "c:1");
        let (status, v) = get("/api/v1/series").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"], "no match[] parameter provided");
        let (_, v) = get("/api/v1/labels").await;
        assert_eq!(
            v["data"],
            serde_json::json!(["__name__", "instance", "job"])
        );
        let (_, v) = get("/api/v1/label/job/values?match[]=up&start=0&end=2000").await;
        assert_eq!(v["data"], serde_json::json!(["api", "db"]));
        let (_, v) = get("/api/v1/label/job/values?start=5000").await;
        assert_eq!(v["data"], serde_json::json!([]));
        let (status, _) = get("/api/v1/label/1bad/values").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (_, v) = get("/api/v1/metadata").await;
        assert_eq!(v["data"], serde_json::json!({}));
        let (_, v) = get("/api/v1/status/buildinfo").await;
        assert_eq!(v["data"]["version"], env!("CARGO_PKG_VERSION"));
    }

    /// A source that takes a while to answer, to hold a query slot.
    struct SlowSource(MemSource, Duration);

    impl SeriesSource for SlowSource {
        fn select(&self, m: &[Matcher], a: i64, b: i64) -> Result<Vec<Series>, QueryError> {
            // `select` runs on the blocking pool, where sleeping is what a slow disk does.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(self.1);
            self.0.select(m, a, b)
        }
        fn label_names(&self, m: &[Matcher], a: i64, b: i64) -> Result<Vec<String>, QueryError> {
            self.0.label_names(m, a, b)
        }
        fn label_values(
            &self,
            n: &str,
            m: &[Matcher],
            a: i64,
            b: i64,
        ) -> Result<Vec<String>, QueryError> {
            self.0.label_values(n, m, a, b)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queries_beyond_max_concurrency_wait_within_their_timeout() {
        let app = router(
            Arc::new(SlowSource(MemSource::default(), Duration::from_millis(400))),
            QueryOptions {
                max_concurrency: 1,
                ..QueryOptions::default()
            },
        );
        let slow = tokio::spawn(
            app.clone().oneshot(
                HttpRequest::get("/api/v1/query?query=up&time=1")
                    .body(Body::empty())
                    .unwrap(),
            ),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let queued = app
            .clone()
            .oneshot(
                HttpRequest::get("/api/v1/query?query=up&time=1&timeout=0.1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(queued.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(slow.await.unwrap().unwrap().status(), StatusCode::OK);
        // Once the slot is free, queries run again.
        let again = app
            .oneshot(
                HttpRequest::get("/api/v1/query?query=1&time=1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn query_exemplars_checks_its_parameters_like_prometheus_and_finds_none() {
        let (status, v) = get("/api/v1/query_exemplars?query=up&start=0&end=100").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v, serde_json::json!({"status": "success", "data": []}));
        // Prometheus 2.42 answers these with the same type and text (its parse errors point
        // one column further, past the end of `up(`).
        for (uri, want) in [
            (
                "/api/v1/query_exemplars?query=up(",
                "parse error: unclosed left parenthesis",
            ),
            (
                "/api/v1/query_exemplars",
                "parse error: no expression found in input",
            ),
            (
                "/api/v1/query_exemplars?query=up&start=10&end=5",
                "end timestamp must not be before start timestamp",
            ),
        ] {
            let (status, v) = get(uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(v["errorType"], "bad_data");
            let msg = v["error"].as_str().unwrap();
            assert!(msg.contains(want), "{uri}: {msg}");
        }
    }
}
