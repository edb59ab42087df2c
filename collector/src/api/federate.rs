//! Reading raw series out of the store over HTTP:
//!
//! - `GET /federate?match[]=…`: the latest sample of each matching series (5-minute
//!   lookback, stale series omitted) in the Prometheus text format, with timestamps.
//! - `GET /api/v1/export?match[]=…&start=…&end=…`: raw samples as JSON lines in
//!   VictoriaMetrics' export format, non-finite values written as `"NaN"`, `"+Inf"` and
//!   `"-Inf"`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use vigil_shared::model::{Labels, Point, Series};

use super::json::{error_response, TEXT_FORMAT};
use super::params::Params;
use super::ApiState;
use crate::query::plan::parse_series_selector;
use crate::query::timeparse::parse_time;
use crate::query::value::is_stale_marker;
use crate::query::QueryError;
use crate::storage::{Matcher, Storage};

/// Prometheus's default lookback for instant selection, used by `/federate`.
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

fn selectors(params: &Params) -> Result<Vec<Vec<Matcher>>, QueryError> {
    let groups: Vec<Vec<Matcher>> = params
        .all("match[]")
        .into_iter()
        .map(parse_series_selector)
        .collect::<Result<_, _>>()?;
    if groups.is_empty() {
        return Err(QueryError::BadData("no match[] parameter provided".into()));
    }
    Ok(groups)
}

fn select_union(
    storage: &Storage,
    groups: &[Vec<Matcher>],
    start: i64,
    end: i64,
) -> Result<Vec<Series>, QueryError> {
    let mut all: Vec<Series> = Vec::new();
    for g in groups {
        all.extend(storage.select(g, start, end)?);
    }
    if groups.len() > 1 {
        all.sort_by(|a, b| a.labels.cmp(&b.labels));
        all.dedup_by(|a, b| a.labels == b.labels);
    }
    Ok(all)
}

pub(super) async fn federate(State(s): State<ApiState>, params: Params) -> Response {
    s.count("federate");
    match federate_body(&s, &params) {
        Ok(body) => ([(header::CONTENT_TYPE, TEXT_FORMAT)], body).into_response(),
        Err(e) => error_response(&e),
    }
}

fn federate_body(s: &ApiState, params: &Params) -> Result<String, QueryError> {
    let groups = selectors(params)?;
    let now = (s.now_ms)();
    let series = select_union(&s.storage, &groups, now - LOOKBACK_MS, now)?;
    let latest: Vec<(Labels, Point)> = series
        .into_iter()
        .filter_map(|s| {
            let p = *s.points.last()?;
            (!is_stale_marker(p.value)).then_some((s.labels, p))
        })
        .collect();
    Ok(vigil_shared::exposition::render(&latest, true))
}

fn json_number(v: f64, out: &mut String) {
    use std::fmt::Write;
    if v.is_nan() {
        out.push_str("\"NaN\"");
    } else if v == f64::INFINITY {
        out.push_str("\"+Inf\"");
    } else if v == f64::NEG_INFINITY {
        out.push_str("\"-Inf\"");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Renders one series as a VictoriaMetrics export line. Non-finite values are written as
/// the strings `"NaN"`, `"+Inf"` and `"-Inf"`, as the Prometheus API writes them.
pub fn export_line(s: &Series, out: &mut String) {
    let metric: serde_json::Map<String, serde_json::Value> = s
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.into()))
        .collect();
    out.push_str("{\"metric\":");
    out.push_str(&serde_json::Value::Object(metric).to_string());
    out.push_str(",\"values\":[");
    for (i, p) in s.points.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_number(p.value, out);
    }
    out.push_str("],\"timestamps\":[");
    for (i, p) in s.points.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&p.timestamp_ms.to_string());
    }
    out.push_str("]}\n");
}

pub(super) async fn export(State(s): State<ApiState>, params: Params) -> Response {
    s.count("export");
    match export_body(&s, &params) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/stream+json")], body).into_response(),
        Err(e) => error_response(&e),
    }
}

fn export_body(s: &ApiState, params: &Params) -> Result<String, QueryError> {
    let groups = selectors(params)?;
    let start = params
        .get("start")
        .map(parse_time)
        .transpose()?
        .unwrap_or(0);
    let end = params
        .get("end")
        .map(parse_time)
        .transpose()?
        .unwrap_or_else(|| (s.now_ms)());
    if end < start {
        return Err(QueryError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    let mut out = String::new();
    for s in &select_union(&s.storage, &groups, start, end)? {
        export_line(s, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_lines_match_victoriametrics_shape() {
        let s = Series {
            labels: Labels::metric("up", &[("job", "a")]),
            points: vec![
                Point {
                    timestamp_ms: 1,
                    value: 1.5,
                },
                Point {
                    timestamp_ms: 2,
                    value: f64::NAN,
                },
            ],
        };
        let mut out = String::new();
        export_line(&s, &mut out);
        assert_eq!(out, "{\"metric\":{\"__name__\":\"up\",\"job\":\"a\"},\"values\":[1.5,\"NaN\"],\"timestamps\":[1,2]}\n");
    }
}
