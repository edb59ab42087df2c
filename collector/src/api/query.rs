//! The Prometheus HTTP query API over the PromQL engine ([`crate::query`]):
//!
//! - `GET|POST /api/v1/query` — instant query (`query`, `time`, `timeout`)
//! - `GET|POST /api/v1/query_range` — range query (`query`, `start`, `end`, `step`, `timeout`)
//! - `GET|POST /api/v1/series`, `GET|POST /api/v1/labels`, `GET /api/v1/label/{name}/values`
//!   and `GET /api/v1/metadata` — served by [`super::series`]
//! - `GET /api/v1/status/buildinfo` — version information
//! - `GET|POST /api/v1/query_exemplars` — the query is checked like Prometheus does, and the
//!   answer is empty: Vigil stores no exemplars (Grafana asks for them by default)
//!
//! Responses use Prometheus's JSON envelope ([`super::json`]); errors carry `errorType`
//! `bad_data` (400), `execution` (422), `timeout` (503) or `internal` (500). Queries run on the
//! blocking pool, at most `max_concurrency` at once, so a long evaluation does not stall the
//! runtime.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::sync::Semaphore;

use super::json::{error_response, json_string, result_json, success};
use super::params::{
    param_error, required, required_time, time_param, timeout_param, Params, MAX_TIME_MS,
    MIN_TIME_MS,
};
use super::series::{label_values, labels, metadata, series};
use crate::clock::now_ms;
use crate::query::timeparse::parse_duration;
use crate::query::{Engine, QueryError, QueryOptions, SeriesSource};

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
pub(super) struct QueryEngine {
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

/// Runs `f` on the blocking pool.
pub(super) async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, QueryError> + Send + 'static,
) -> Result<T, QueryError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| QueryError::Execution(format!("query task failed: {e}")))?
}

async fn query(State(engine): State<Arc<QueryEngine>>, p: Params) -> Response {
    let r = async {
        let q = required(&p, "query")?.to_string();
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
        let q = required(&p, "query")?.to_string();
        let start = required_time(&p, "start")?;
        let end = required_time(&p, "end")?;
        let step = parse_duration(required(&p, "step")?).map_err(|e| param_error("step", e))?;
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
        crate::query::plan::plan(q, start, end, 60_000)?;
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
mod http_tests {
    use super::*;
    use crate::query::source::MemSource;
    use crate::storage::matcher::Matcher;
    use axum::body::Body;
    use axum::http::{Request as HttpRequest, StatusCode};
    use tower::ServiceExt;
    use vigil_shared::model::{Labels, Point, Series};

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
