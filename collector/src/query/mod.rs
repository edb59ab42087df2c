//! The PromQL engine over the storage: no HTTP here (the Prometheus HTTP API that serves
//! it is [`crate::api::query`]).
//!
//! Parsing is done by the `promql-parser` crate; everything after the parse is ours:
//! [`plan`] lowers the parser's AST into a checked plan (metric-name matchers added, regexes
//! compiled, `@ start()`/`@ end()` resolved, durations in milliseconds), [`engine`] evaluates
//! the plan step by step with Prometheus 2.x semantics (closed range windows, 5-minute lookback,
//! stale markers, `extrapolatedRate`), [`functions`], [`aggregate`] and [`binary`] hold the
//! operators, [`value`] the values passed between them, [`source`] is the read interface to
//! the storage, and [`timeparse`] reads the API's time and duration parameters.
//!
//! Semantics follow Prometheus 2.x (the version Debian ships and our differential test runs
//! against): range windows and the lookback window are closed at both ends, and functions
//! drop the metric name as soon as they are applied.

pub mod aggregate;
pub mod binary;
pub mod engine;
pub mod functions;
pub mod plan;
pub mod source;
mod storage_source;
pub mod timeparse;
pub mod value;

use std::time::Duration;

pub use engine::{Engine, QueryOptions};
pub use source::{MemSource, SeriesSource};
pub use value::{QueryValue, RangeSeries, Sample};

/// Why a query could not be answered. The HTTP API maps each variant to Prometheus's
/// `errorType` and status code.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query text or a parameter is malformed (HTTP 400, `bad_data`).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed: a type error at run time, a duplicate series, a limit (HTTP 422,
    /// `execution`).
    #[error("{0}")]
    Execution(String),
    /// The query ran longer than its timeout (HTTP 503, `timeout`).
    #[error("query timed out in {0}")]
    Timeout(String),
    /// The storage failed while reading (HTTP 500, `internal`).
    #[error("storage: {0}")]
    Storage(String),
}

impl From<crate::storage::StorageError> for QueryError {
    fn from(e: crate::storage::StorageError) -> Self {
        QueryError::Storage(e.to_string())
    }
}

impl QueryError {
    /// Prometheus's `errorType` string for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) => "execution",
            QueryError::Timeout(_) => "timeout",
            QueryError::Storage(_) => "internal",
        }
    }
}

/// Converts a duration to whole milliseconds, saturating.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
