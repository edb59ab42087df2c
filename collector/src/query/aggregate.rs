//! PromQL aggregation operators (`sum`, `avg`, `min`, `max`, `count`, `stddev`, `stdvar`,
//! `topk`, `bottomk`, `quantile`, `count_values`, `group`) with `by`/`without` grouping, in
//! Prometheus 2.x's order of results (groups in order of first appearance) and numerics
//! (incremental mean, Welford variance, Go heap order for topk/bottomk).

use std::collections::HashMap;
use std::sync::Arc;

use vigil_shared::model::{Labels, METRIC_NAME};

use super::functions::{format_float, quantile};
use super::plan::{AggOp, Grouping};
use super::value::{hash_pairs, FnvBuild, Sample, SharedLabels};
use super::QueryError;

/// The evaluated parameter of an aggregation at one step.
#[derive(Debug, Clone)]
pub enum AggParam {
    None,
    Scalar(f64),
    Str(String),
}

struct Group {
    labels: SharedLabels,
    /// The running value of `sum`, `avg`, `count`, `count_values`, `min`, `max`, `group`,
    /// `stddev` and `stdvar`.
    acc: SimpleAcc,
    /// The samples `topk`, `bottomk` and `quantile` keep.
    heap: Vec<Sample>,
}

/// The labels of `labels` that define its group, in order.
fn group_pairs<'a>(
    labels: &'a Labels,
    grouping: &'a Grouping,
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    labels.iter().filter(move |(n, _)| match grouping {
        Grouping::By(names) => names.iter().any(|g| g == n),
        Grouping::Without(names) => *n != METRIC_NAME && !names.iter().any(|g| g == n),
    })
}

/// True when `name` is a valid Prometheus label name.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Go's `container/heap` over a slice with a strict `less`, so ties resolve as in Prometheus.
fn heap_up(h: &mut [Sample], mut j: usize, less: &dyn Fn(&Sample, &Sample) -> bool) {
    while j > 0 {
        let i = (j - 1) / 2;
        if !less(&h[j], &h[i]) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

fn heap_down(h: &mut [Sample], i0: usize, n: usize, less: &dyn Fn(&Sample, &Sample) -> bool) {
    let mut i = i0;
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        let j2 = j1 + 1;
        if j2 < n && less(&h[j2], &h[j1]) {
            j = j2;
        }
        if !less(&h[j], &h[i]) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
}

fn heap_push(h: &mut Vec<Sample>, s: Sample, less: &dyn Fn(&Sample, &Sample) -> bool) {
    h.push(s);
    let n = h.len() - 1;
    heap_up(h, n, less);
}

fn heap_pop(h: &mut Vec<Sample>, less: &dyn Fn(&Sample, &Sample) -> bool) {
    let n = h.len() - 1;
    h.swap(0, n);
    heap_down(h, 0, n, less);
    h.pop();
}

/// topk's heap order: NaN is smallest.
fn topk_less(a: &Sample, b: &Sample) -> bool {
    a.value.is_nan() || a.value < b.value
}

/// bottomk's heap order: NaN is largest.
fn bottomk_less(a: &Sample, b: &Sample) -> bool {
    a.value.is_nan() || a.value > b.value
}

/// Remembers, per input label set (by address, kept alive alongside), its group's label set
/// and hash, so an aggregation evaluated at many steps over the same series computes each
/// series' group once per query instead of once per step. Equal group keys share one
/// allocation, so finding a sample's group is mostly a pointer comparison.
#[derive(Debug, Default)]
pub struct GroupKeyCache {
    by_input: HashMap<usize, (SharedLabels, SharedLabels, u64), FnvBuild>,
    keys: HashMap<u64, Vec<SharedLabels>, FnvBuild>,
}

/// Entries after which a [`GroupKeyCache`] starts over, bounding its memory.
const GROUP_CACHE_LIMIT: usize = 200_000;

impl GroupKeyCache {
    fn key(&mut self, labels: &SharedLabels, grouping: &Grouping) -> (SharedLabels, u64) {
        let addr = Arc::as_ptr(labels) as usize;
        if let Some((orig, key, hash)) = self.by_input.get(&addr) {
            if Arc::ptr_eq(orig, labels) {
                return (key.clone(), *hash);
            }
        }
        if self.by_input.len() >= GROUP_CACHE_LIMIT {
            self.by_input.clear();
            self.keys.clear();
        }
        let (key, hash) = fresh_key(labels, grouping);
        let same = self.keys.entry(hash).or_default();
        let key = match same.iter().find(|k| ***k == *key) {
            Some(k) => k.clone(),
            None => {
                same.push(key.clone());
                key
            }
        };
        self.by_input
            .insert(addr, (labels.clone(), key.clone(), hash));
        (key, hash)
    }
}

/// The hash of `labels`' group under `grouping` (the hash [`GroupKeyCache`] uses).
pub fn group_hash(labels: &Labels, grouping: &Grouping) -> u64 {
    hash_pairs(group_pairs(labels, grouping))
}

/// True when `labels` belongs to the group whose label set is `key`.
pub fn same_group(labels: &Labels, grouping: &Grouping, key: &Labels) -> bool {
    group_pairs(labels, grouping).eq(key.iter())
}

/// The group label set of `labels` under `grouping`.
pub fn group_key(labels: &Labels, grouping: &Grouping) -> SharedLabels {
    fresh_key(labels, grouping).0
}

/// The group label set of `labels` and its hash.
fn fresh_key(labels: &Labels, grouping: &Grouping) -> (SharedLabels, u64) {
    let hash = hash_pairs(group_pairs(labels, grouping));
    let key = Labels::new(
        group_pairs(labels, grouping)
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    );
    (Arc::new(key), hash)
}

/// One group's running state for the aggregations that need only the values in order
/// (`sum`, `avg`, `count`, `min`, `max`, `group`, `stddev`, `stdvar`; and the counting of
/// `count_values`). [`aggregate`] keeps one per group, and the engine uses it to aggregate
/// a range query series by series instead of step by step; a test checks both paths agree.
#[derive(Debug, Clone, Copy)]
pub struct SimpleAcc {
    value: f64,
    mean: f64,
    count: u64,
}

impl SimpleAcc {
    /// True for the operators [`SimpleAcc`] implements.
    pub fn supports(op: AggOp) -> bool {
        matches!(
            op,
            AggOp::Sum
                | AggOp::Avg
                | AggOp::Count
                | AggOp::Min
                | AggOp::Max
                | AggOp::Group
                | AggOp::Stddev
                | AggOp::Stdvar
        )
    }

    /// The state after the group's first value.
    pub fn new(op: AggOp, v: f64) -> Self {
        let value = match op {
            AggOp::Stddev | AggOp::Stdvar => 0.0,
            AggOp::Group => 1.0,
            _ => v,
        };
        SimpleAcc {
            value,
            mean: v,
            count: 1,
        }
    }

    /// Adds a later value.
    pub fn add(&mut self, op: AggOp, v: f64) {
        match op {
            AggOp::Sum => self.value += v,
            AggOp::Avg => {
                self.count += 1;
                if self.mean.is_infinite() {
                    if v.is_infinite() && (self.mean > 0.0) == (v > 0.0) {
                        return;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        return;
                    }
                }
                let n = self.count as f64;
                self.mean += v / n - self.mean / n;
            }
            AggOp::Max if self.value < v || self.value.is_nan() => self.value = v,
            AggOp::Min if self.value > v || self.value.is_nan() => self.value = v,
            AggOp::Count | AggOp::CountValues => self.count += 1,
            AggOp::Stddev | AggOp::Stdvar => {
                self.count += 1;
                let delta = v - self.mean;
                self.mean += delta / self.count as f64;
                self.value += delta * (v - self.mean);
            }
            _ => {}
        }
    }

    /// The aggregated value.
    pub fn result(&self, op: AggOp) -> f64 {
        match op {
            AggOp::Avg => self.mean,
            AggOp::Count | AggOp::CountValues => self.count as f64,
            AggOp::Stdvar => self.value / self.count as f64,
            AggOp::Stddev => (self.value / self.count as f64).sqrt(),
            _ => self.value,
        }
    }
}

/// Aggregates one step's input vector.
pub fn aggregate(
    op: AggOp,
    grouping: &Grouping,
    param: &AggParam,
    input: Vec<Sample>,
) -> Result<Vec<Sample>, QueryError> {
    aggregate_cached(op, grouping, param, input, &mut GroupKeyCache::default())
}

/// [`aggregate`] with group keys remembered across calls in `cache`, which must only ever
/// be used with the same `grouping`.
pub fn aggregate_cached(
    op: AggOp,
    grouping: &Grouping,
    param: &AggParam,
    input: Vec<Sample>,
    cache: &mut GroupKeyCache,
) -> Result<Vec<Sample>, QueryError> {
    let mut k: usize = 0;
    if matches!(op, AggOp::Topk | AggOp::Bottomk) {
        let f = match param {
            AggParam::Scalar(f) => *f,
            _ => return Err(QueryError::Execution("expected scalar parameter".into())),
        };
        if !(f > -9.223_372_036_854_775e18 && f < 9.223_372_036_854_775e18) {
            return Err(QueryError::Execution(format!(
                "Scalar value {} overflows int64",
                format_float(f)
            )));
        }
        let ki = f as i64;
        if ki < 1 {
            return Ok(Vec::new());
        }
        k = usize::try_from(ki).unwrap_or(usize::MAX);
    }
    let q = match (op, param) {
        (AggOp::Quantile, AggParam::Scalar(q)) => *q,
        _ => 0.0,
    };
    let mut with_value_label;
    let mut grouping = grouping;
    let mut value_label = String::new();
    if op == AggOp::CountValues {
        value_label = match param {
            AggParam::Str(s) => s.clone(),
            _ => return Err(QueryError::Execution("expected string parameter".into())),
        };
        if !valid_label_name(&value_label) {
            return Err(QueryError::Execution(format!(
                "invalid label name {value_label:?}"
            )));
        }
        with_value_label = grouping.clone();
        if let Grouping::By(names) = &mut with_value_label {
            names.push(value_label.clone());
        }
        grouping = &with_value_label;
    }
    let input_len = input.len();
    let mut index: HashMap<u64, Vec<usize>, FnvBuild> = HashMap::default();
    let mut groups: Vec<Group> = Vec::new();
    for mut s in input {
        if op == AggOp::CountValues {
            Arc::make_mut(&mut s.labels).set(&value_label, &format_float(s.value));
        }
        // count_values rewrites each sample's labels, so its keys cannot be remembered.
        let (key, hash) = if op == AggOp::CountValues {
            fresh_key(&s.labels, grouping)
        } else {
            cache.key(&s.labels, grouping)
        };
        let candidates = index.entry(hash).or_default();
        let found = candidates
            .iter()
            .copied()
            .find(|&gi| Arc::ptr_eq(&groups[gi].labels, &key) || groups[gi].labels == key);
        let gi = match found {
            Some(gi) => gi,
            None => {
                candidates.push(groups.len());
                let mut g = Group {
                    labels: key,
                    acc: SimpleAcc::new(op, s.value),
                    heap: Vec::new(),
                };
                match op {
                    AggOp::Topk | AggOp::Bottomk => {
                        g.heap.reserve(k.min(input_len));
                        g.heap.push(s);
                    }
                    AggOp::Quantile => g.heap.push(s),
                    _ => {}
                }
                groups.push(g);
                continue;
            }
        };
        let g = &mut groups[gi];
        let v = s.value;
        match op {
            AggOp::Topk | AggOp::Bottomk => {
                let less: &dyn Fn(&Sample, &Sample) -> bool = if op == AggOp::Topk {
                    &topk_less
                } else {
                    &bottomk_less
                };
                let top = g.heap[0].value;
                let better = if op == AggOp::Topk {
                    top < v || (top.is_nan() && !v.is_nan())
                } else {
                    top > v || (top.is_nan() && !v.is_nan())
                };
                if g.heap.len() < k || better {
                    if g.heap.len() == k {
                        if k == 1 {
                            g.heap[0] = s;
                            continue;
                        }
                        heap_pop(&mut g.heap, less);
                    }
                    heap_push(&mut g.heap, s, less);
                }
            }
            AggOp::Quantile => g.heap.push(s),
            _ => g.acc.add(op, v),
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for mut g in groups {
        let value = match op {
            AggOp::Topk | AggOp::Bottomk => {
                let less = if op == AggOp::Topk {
                    topk_less
                } else {
                    bottomk_less
                };
                // Reverse heap order: best first.
                g.heap.sort_by(|a, b| {
                    if less(b, a) {
                        std::cmp::Ordering::Less
                    } else if less(a, b) {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Equal
                    }
                });
                out.extend(g.heap);
                continue;
            }
            AggOp::Quantile => {
                let mut vals: Vec<f64> = g.heap.iter().map(|s| s.value).collect();
                quantile(q, &mut vals)
            }
            _ => g.acc.result(op),
        };
        out.push(Sample {
            labels: g.labels,
            value,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::query::value::sample as s;

    fn input() -> Vec<Sample> {
        vec![
            s("m", &[("job", "a"), ("i", "1")], 1.0),
            s("m", &[("job", "a"), ("i", "2")], 3.0),
            s("m", &[("job", "b"), ("i", "1")], 10.0),
            s("m", &[("job", "b"), ("i", "2")], f64::NAN),
        ]
    }

    #[test]
    fn simple_acc_matches_aggregate_bit_for_bit() {
        let mut next = vigil_testkit::xorshift64(0x9e37_79b9_7f4a_7c15);
        let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, 1e308];
        for round in 0..300 {
            let n = 1 + (next() % 11) as usize;
            let vals: Vec<f64> = (0..n)
                .map(|_| {
                    let r = next();
                    if r.is_multiple_of(5) {
                        specials[(r / 5 % specials.len() as u64) as usize]
                    } else {
                        (r >> 11) as f64 / (1u64 << 53) as f64 * 2e6 - 1e6
                    }
                })
                .collect();
            for op in [
                AggOp::Sum,
                AggOp::Avg,
                AggOp::Count,
                AggOp::Min,
                AggOp::Max,
                AggOp::Group,
                AggOp::Stddev,
                AggOp::Stdvar,
            ] {
                assert!(SimpleAcc::supports(op));
                let input: Vec<Sample> = vals
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| s("m", &[("i", &i.to_string())], v))
                    .collect();
                let want =
                    aggregate(op, &Grouping::By(vec![]), &AggParam::None, input).unwrap()[0].value;
                let mut acc = SimpleAcc::new(op, vals[0]);
                for &v in &vals[1..] {
                    acc.add(op, v);
                }
                let got = acc.result(op);
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "round {round} {op:?} {vals:?}: {got} != {want}"
                );
            }
        }
        assert!(!SimpleAcc::supports(AggOp::Topk));
    }

    #[test]
    fn sum_by_and_without_drop_the_right_labels() {
        let by = aggregate(
            AggOp::Sum,
            &Grouping::By(vec!["job".into()]),
            &AggParam::None,
            input(),
        )
        .unwrap();
        assert_eq!(*by[0].labels, Labels::new(vec![("job".into(), "a".into())]));
        assert_eq!(by[0].value, 4.0);
        assert!(by[1].value.is_nan());
        let without = aggregate(
            AggOp::Max,
            &Grouping::Without(vec!["i".into()]),
            &AggParam::None,
            input(),
        )
        .unwrap();
        assert_eq!(without[1].labels.get("__name__"), None);
        assert_eq!(without[1].value, 10.0, "max ignores NaN after a number");
    }

    #[test]
    fn topk_bottomk_keep_full_labels_in_order() {
        let top = aggregate(
            AggOp::Topk,
            &Grouping::By(vec![]),
            &AggParam::Scalar(2.0),
            input(),
        )
        .unwrap();
        assert_eq!(
            top.iter().map(|s| s.value).collect::<Vec<_>>(),
            vec![10.0, 3.0]
        );
        assert_eq!(top[0].labels.name(), "m");
        let bottom = aggregate(
            AggOp::Bottomk,
            &Grouping::By(vec![]),
            &AggParam::Scalar(3.0),
            input(),
        )
        .unwrap();
        assert_eq!(
            bottom.iter().map(|s| s.value).collect::<Vec<_>>(),
            vec![1.0, 3.0, 10.0]
        );
        assert!(aggregate(
            AggOp::Topk,
            &Grouping::By(vec![]),
            &AggParam::Scalar(0.0),
            input()
        )
        .unwrap()
        .is_empty());
    }

    #[test]
    fn count_values_stddev_quantile() {
        let cv = aggregate(
            AggOp::CountValues,
            &Grouping::By(vec![]),
            &AggParam::Str("v".into()),
            vec![s("m", &[], 1.0), s("n", &[], 1.0), s("o", &[], 2.5)],
        )
        .unwrap();
        assert_eq!(cv.len(), 2);
        assert_eq!(cv[0].labels.get("v"), Some("1"));
        assert_eq!(cv[0].value, 2.0);
        let sd = aggregate(
            AggOp::Stddev,
            &Grouping::By(vec![]),
            &AggParam::None,
            vec![s("m", &[], 2.0), s("n", &[], 4.0)],
        )
        .unwrap();
        assert_eq!(sd[0].value, 1.0);
        let q = aggregate(
            AggOp::Quantile,
            &Grouping::By(vec![]),
            &AggParam::Scalar(0.5),
            vec![s("m", &[], 2.0), s("n", &[], 4.0)],
        )
        .unwrap();
        assert_eq!(q[0].value, 3.0);
        assert!(aggregate(
            AggOp::CountValues,
            &Grouping::By(vec![]),
            &AggParam::Str("1x".into()),
            vec![]
        )
        .is_err());
    }
}
