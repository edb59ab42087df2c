//! Values the engine passes between operators and returns: scalars, strings, instant
//! vectors and range vectors, with Prometheus's stale-marker test.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use vigil_shared::model::{Labels, Point, METRIC_NAME};

/// The NaN payload Prometheus writes to end a series.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// True when `v` is a Prometheus stale marker (a NaN with the stale payload).
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// A label set shared between steps and operators; cloning is a reference-count bump.
pub type SharedLabels = Arc<Labels>;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: SharedLabels,
    pub value: f64,
}

/// A sample of metric `name` with the labels `pairs`, for tests.
#[cfg(test)]
pub(crate) fn sample(name: &str, pairs: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        labels: Arc::new(Labels::metric(name, pairs)),
        value,
    }
}

/// One series of a range vector (or of a range query's result).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: SharedLabels,
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
    if labels.get(METRIC_NAME).is_none() {
        return labels.clone();
    }
    let mut l = labels.clone();
    l.set(METRIC_NAME, "");
    l
}

/// 64-bit FNV-1a, a fast non-cryptographic hash for label sets inside one query.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Hash-map builder using [`Fnv`].
pub type FnvBuild = BuildHasherDefault<Fnv>;

/// Hashes label pairs (name and value, with separators) for grouping and matching.
pub fn hash_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = Fnv::default();
    for (n, v) in pairs {
        h.write(n.as_bytes());
        h.write(&[0xff]);
        h.write(v.as_bytes());
        h.write(&[0xfe]);
    }
    h.finish()
}

/// True when two samples of the vector share a label set.
pub fn has_duplicate_labelsets(v: &[Sample]) -> bool {
    if v.len() < 2 {
        return false;
    }
    let mut seen: HashSet<&Labels, FnvBuild> =
        HashSet::with_capacity_and_hasher(v.len(), FnvBuild::default());
    v.iter().any(|s| !seen.insert(&*s.labels))
}

/// Remembers, per shared label set, its copy without `__name__`, so operators that drop the
/// name do not allocate a new label set for every series at every step. The original is kept
/// alive alongside, so a cached address cannot be reused by another label set.
#[derive(Debug, Default)]
pub struct LabelCache {
    dropped: HashMap<usize, (SharedLabels, SharedLabels), FnvBuild>,
}

/// Entries after which the cache starts over, bounding its memory.
const LABEL_CACHE_LIMIT: usize = 200_000;

impl LabelCache {
    /// `labels` without `__name__`, shared.
    pub fn drop_name(&mut self, labels: &SharedLabels) -> SharedLabels {
        if labels.get(METRIC_NAME).is_none() {
            return labels.clone();
        }
        let key = Arc::as_ptr(labels) as usize;
        if let Some((orig, dropped)) = self.dropped.get(&key) {
            if Arc::ptr_eq(orig, labels) {
                return dropped.clone();
            }
        }
        if self.dropped.len() >= LABEL_CACHE_LIMIT {
            self.dropped.clear();
        }
        let dropped = Arc::new(drop_metric_name(labels));
        self.dropped.insert(key, (labels.clone(), dropped.clone()));
        dropped
    }
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
            labels: Arc::new(Labels::metric(n, &[])),
            value: 1.0,
        };
        assert!(!has_duplicate_labelsets(&[s("a"), s("b")]));
        assert!(has_duplicate_labelsets(&[s("a"), s("b"), s("a")]));
        assert_eq!(
            drop_metric_name(&Labels::metric("a", &[("x", "1")])).len(),
            1
        );
    }

    #[test]
    fn label_cache_reuses_the_dropped_copy() {
        let mut c = LabelCache::default();
        let a = Arc::new(Labels::metric("a", &[("x", "1")]));
        let d1 = c.drop_name(&a);
        let d2 = c.drop_name(&a);
        assert!(Arc::ptr_eq(&d1, &d2));
        assert_eq!(d1.get("__name__"), None);
        let plain = Arc::new(Labels::new(vec![("x".into(), "1".into())]));
        assert!(Arc::ptr_eq(&c.drop_name(&plain), &plain));
    }
}
