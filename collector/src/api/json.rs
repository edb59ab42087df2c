//! JSON answers of the HTTP API, in one place: the `application/json` response, Prometheus's
//! envelope (`{"status":"success","data":…}` and `{"status":"error","errorType":…,"error":…}`
//! with the status code of each [`QueryError`]), and the encoding of query results as
//! Prometheus writes them: values in Go's shortest form (`NaN`, `+Inf`, `-Inf`, exponent
//! form for very small or large magnitudes), timestamps as seconds with up to three
//! decimals, label sets as objects.

use std::fmt::Write as _;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use vigil_shared::model::Labels;

use crate::query::functions::{format_float, shortest_digits};
use crate::query::{QueryError, QueryValue};

/// The content type of the Prometheus text exposition format (`/metrics`, `/federate`).
pub(crate) const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// An `application/json` response with `body` as it is.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Prometheus's success envelope around the JSON text `data`, with status 200.
pub(crate) fn success(data: &str) -> Response {
    json_response(
        StatusCode::OK,
        format!("{{\"status\":\"success\",\"data\":{data}}}"),
    )
}

/// Prometheus's error envelope with `status`, `errorType` `error_type` and the text `msg`.
pub(crate) fn error(status: StatusCode, error_type: &str, msg: impl std::fmt::Display) -> Response {
    let body = format!(
        "{{\"status\":\"error\",\"errorType\":{},\"error\":{}}}",
        json_string(error_type),
        json_string(&msg.to_string())
    );
    json_response(status, body)
}

/// The Prometheus API error document and status code for `e`.
pub fn error_response(e: &QueryError) -> Response {
    let status = match e {
        QueryError::BadData(_) => StatusCode::BAD_REQUEST,
        QueryError::Execution(_) => StatusCode::UNPROCESSABLE_ENTITY,
        QueryError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
        QueryError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.error_type(), e)
}

/// `s` as a JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// A JSON array of strings.
pub(crate) fn string_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| json_string(s)).collect();
    format!("[{}]", items.join(","))
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
        let (negative, digits, exp) = shortest_digits(v);
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
    format_float(v)
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

/// Appends a label set as a JSON object.
pub(crate) fn write_labels(out: &mut String, l: &Labels) {
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
