//! The Prometheus API's series and metadata endpoints, over the query engine's source:
//!
//! - `GET|POST /api/v1/series` — series matching `match[]` (at least one) between `start`
//!   and `end`
//! - `GET|POST /api/v1/labels` — label names (optional `match[]`, `start`, `end`)
//! - `GET /api/v1/label/{name}/values` — values of one label (same parameters)
//! - `GET /api/v1/metadata` — TYPE/HELP/UNIT per family with `limit`, `limit_per_metric`
//!   and `metric`
//!
//! The routes are set up by [`super::query::router`], which owns the engine they read from.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;

use super::json::{error_response, string_list, success, write_labels};
use super::params::{limit_param, matcher_sets, time_param, Params, MAX_TIME_MS, MIN_TIME_MS};
use super::query::{run_blocking, QueryEngine};
use crate::query::{QueryError, SeriesSource};
use crate::storage::matcher::Matcher;

pub(super) async fn series(State(engine): State<Arc<QueryEngine>>, p: Params) -> Response {
    let r = async {
        let sets = matcher_sets(&p)?;
        if sets.is_empty() {
            return Err(QueryError::BadData("no match[] parameter provided".into()));
        }
        let start = time_param(&p, "start", MIN_TIME_MS)?;
        let end = time_param(&p, "end", MAX_TIME_MS)?;
        let source = engine.source().clone();
        run_blocking(move || {
            let mut all = BTreeSet::new();
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

/// The sorted union of what `list` finds for each `match[]` selector between `start` and
/// `end` (what it finds for no matchers when there is no selector), as a JSON string list.
async fn string_union(
    engine: &QueryEngine,
    p: &Params,
    list: impl Fn(&dyn SeriesSource, &[Matcher], i64, i64) -> Result<Vec<String>, QueryError>
        + Send
        + 'static,
) -> Response {
    let r = async {
        let sets = matcher_sets(p)?;
        let start = time_param(p, "start", MIN_TIME_MS)?;
        let end = time_param(p, "end", MAX_TIME_MS)?;
        let source = engine.source().clone();
        run_blocking(move || {
            if sets.is_empty() {
                return list(source.as_ref(), &[], start, end);
            }
            let mut all = BTreeSet::new();
            for m in &sets {
                all.extend(list(source.as_ref(), m, start, end)?);
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

pub(super) async fn labels(State(engine): State<Arc<QueryEngine>>, p: Params) -> Response {
    string_union(&engine, &p, |source, m, start, end| {
        source.label_names(m, start, end)
    })
    .await
}

pub(super) async fn label_values(
    State(engine): State<Arc<QueryEngine>>,
    Path(name): Path<String>,
    p: Params,
) -> Response {
    if !crate::query::aggregate::valid_label_name(&name) {
        return error_response(&QueryError::BadData(format!(
            "invalid label name: {name:?}"
        )));
    }
    string_union(&engine, &p, move |source, m, start, end| {
        source.label_values(&name, m, start, end)
    })
    .await
}

/// `/api/v1/metadata?limit=…&limit_per_metric=…&metric=…`: TYPE/HELP/UNIT per family, from
/// agents' scrapes and host metrics and from remote_write.
pub(super) async fn metadata(State(engine): State<Arc<QueryEngine>>, p: Params) -> Response {
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
