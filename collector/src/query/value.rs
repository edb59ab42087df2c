//! Values the engine passes between operators and returns: scalars, strings, instant
//! vectors and range vectors, with Prometheus's stale-marker test.

use vigil_shared::model::{Labels, Point};

/// The NaN payload Prometheus writes to end a series.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// True when `v` is a Prometheus stale marker (a NaN with the stale payload).
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// One series of a range vector (or of a range query's result).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<Point>,
}

/// A range vector at one evaluation step, with the window it was cut from. The window bounds
/// are what `rate` extrapolates to.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub series: Vec<RangeSeries>,
    /// Start of the window in milliseconds (inclusive).
    pub start_ms: i64,
    /// End of the window in milliseconds (inclusive).
    pub end_ms: i64,
}

impl Window {
    /// Length of the window in milliseconds (the selector's range).
    pub fn range_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }
}

/// The value of an expression at one evaluation step.
#[derive(Debug, Clone, PartialEq)]
pub enum StepValue {
    Scalar(f64),
    Str(String),
    Vector(Vec<Sample>),
    Matrix(Window),
}

impl StepValue {
    /// The PromQL type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            StepValue::Scalar(_) => "scalar",
            StepValue::Str(_) => "string",
            StepValue::Vector(_) => "vector",
            StepValue::Matrix(_) => "matrix",
        }
    }
}

/// The result of a query, as the HTTP API returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    /// A scalar at the evaluation time (milliseconds).
    Scalar { t_ms: i64, value: f64 },
    /// A string at the evaluation time.
    Str { t_ms: i64, value: String },
    /// An instant vector at the evaluation time, in evaluation order.
    Vector { t_ms: i64, samples: Vec<Sample> },
    /// A range vector (instant query of a range selector or subquery), or a range query's
    /// result, sorted by labels.
    Matrix(Vec<RangeSeries>),
}

impl QueryValue {
    /// Prometheus's `resultType`.
    pub fn result_type(&self) -> &'static str {
        match self {
            QueryValue::Scalar { .. } => "scalar",
            QueryValue::Str { .. } => "string",
            QueryValue::Vector { .. } => "vector",
            QueryValue::Matrix(_) => "matrix",
        }
    }
}

/// Returns `labels` without `__name__`.
pub fn drop_metric_name(labels: &Labels) -> Labels {
    if labels.get(vigil_shared::model::METRIC_NAME).is_none() {
        return labels.clone();
    }
    let mut l = labels.clone();
    l.set(vigil_shared::model::METRIC_NAME, "");
    l
}

/// True when two samples of the vector share a label set.
pub fn has_duplicate_labelsets(v: &[Sample]) -> bool {
    if v.len() < 2 {
        return false;
    }
    let mut seen = std::collections::HashSet::with_capacity(v.len());
    v.iter().any(|s| !seen.insert(&s.labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_marker_is_a_specific_nan() {
        assert!(is_stale_marker(f64::from_bits(STALE_NAN_BITS)));
        assert!(!is_stale_marker(f64::NAN));
        assert!(!is_stale_marker(1.0));
    }

    #[test]
    fn duplicate_labelsets_are_detected() {
        let s = |n: &str| Sample {
            labels: Labels::metric(n, &[]),
            value: 1.0,
        };
        assert!(!has_duplicate_labelsets(&[s("a"), s("b")]));
        assert!(has_duplicate_labelsets(&[s("a"), s("b"), s("a")]));
        assert_eq!(
            drop_metric_name(&Labels::metric("a", &[("x", "1")])).len(),
            1
        );
    }
}
