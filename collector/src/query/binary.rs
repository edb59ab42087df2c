//! PromQL binary operators: arithmetic, comparison (filtering or `bool`) and set operators
//! between scalars and vectors, with `on`/`ignoring` matching, `group_left`/`group_right`,
//! and Prometheus's rules for when the metric name is dropped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use vigil_shared::model::{Labels, METRIC_NAME};

use super::plan::{BinOp, Cardinality, VectorMatching};
use super::value::{hash_pairs, FnvBuild, LabelCache, Sample, SharedLabels};
use super::QueryError;

/// Applies an arithmetic or comparison operator to two values. For comparisons the result is
/// `(lhs, keep)`; for arithmetic `keep` is always true.
pub fn elem_binop(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Mod => (go_mod(l, r), true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eq => (l, l == r),
        BinOp::Ne => (l, l != r),
        BinOp::Gt => (l, l > r),
        BinOp::Lt => (l, l < r),
        BinOp::Ge => (l, l >= r),
        BinOp::Le => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (f64::NAN, false),
    }
}

/// Go's `math.Mod`: result has the sign of `l`; NaN for infinite `l` or zero `r`.
fn go_mod(l: f64, r: f64) -> f64 {
    if r == 0.0 || l.is_infinite() || l.is_nan() || r.is_nan() {
        return f64::NAN;
    }
    l % r
}

/// Whether an operator drops `__name__` from its result. Prometheus 2.x keeps the name for
/// `atan2`, so we do too.
pub fn drops_metric_name(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow
    )
}

/// scalar OP scalar. Comparisons need `bool` (the parser enforces it) and give 1 or 0.
pub fn scalar_binop(op: BinOp, l: f64, r: f64) -> f64 {
    let (v, keep) = elem_binop(op, l, r);
    if op.is_comparison() {
        if keep {
            1.0
        } else {
            0.0
        }
    } else {
        v
    }
}

/// vector OP scalar (or scalar OP vector when `scalar_on_left`).
pub fn vector_scalar_binop(
    op: BinOp,
    vector: Vec<Sample>,
    scalar: f64,
    scalar_on_left: bool,
    return_bool: bool,
    cache: &mut LabelCache,
) -> Vec<Sample> {
    let mut out = Vec::with_capacity(vector.len());
    for mut s in vector {
        let (l, r) = if scalar_on_left {
            (scalar, s.value)
        } else {
            (s.value, scalar)
        };
        let (mut value, mut keep) = elem_binop(op, l, r);
        if op.is_comparison() && scalar_on_left {
            value = r;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            s.value = value;
            if drops_metric_name(op) || return_bool {
                s.labels = cache.drop_name(&s.labels);
            }
            out.push(s);
        }
    }
    out
}

/// The matching signature of a label set: a hash of the `on` labels, or of all labels except
/// the `ignoring` labels and `__name__` (Prometheus also matches on 64-bit hashes).
fn signature(labels: &Labels, matching: &VectorMatching) -> u64 {
    if matching.on {
        let mut names: Vec<&str> = matching.labels.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        hash_pairs(names.into_iter().map(|n| (n, labels.get(n).unwrap_or(""))))
    } else {
        hash_pairs(
            labels
                .iter()
                .filter(|(n, _)| *n != METRIC_NAME && !matching.labels.iter().any(|m| m == n)),
        )
    }
}

/// The labels of a signature, for error messages.
fn signature_labels(labels: &Labels, matching: &VectorMatching) -> String {
    let pairs: Vec<String> = if matching.on {
        let mut names = matching.labels.clone();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|n| labels.get(&n).map(|v| format!("{n}={v:?}")))
            .collect()
    } else {
        labels
            .iter()
            .filter(|(n, _)| *n != METRIC_NAME && !matching.labels.iter().any(|m| m == n))
            .map(|(n, v)| format!("{n}={v:?}"))
            .collect()
    };
    format!("{{{}}}", pairs.join(", "))
}

fn labels_string(l: &Labels) -> String {
    let inner: Vec<String> = l.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// vector OP vector for `and`, `or`, `unless`.
pub fn vector_set_binop(
    op: BinOp,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    matching: &VectorMatching,
) -> Vec<Sample> {
    match op {
        BinOp::And => {
            let right: HashSet<u64, FnvBuild> =
                rhs.iter().map(|s| signature(&s.labels, matching)).collect();
            lhs.into_iter()
                .filter(|s| right.contains(&signature(&s.labels, matching)))
                .collect()
        }
        BinOp::Or => {
            let left: HashSet<u64, FnvBuild> =
                lhs.iter().map(|s| signature(&s.labels, matching)).collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|s| !left.contains(&signature(&s.labels, matching))),
            );
            out
        }
        _ => {
            let right: HashSet<u64, FnvBuild> =
                rhs.iter().map(|s| signature(&s.labels, matching)).collect();
            lhs.into_iter()
                .filter(|s| !right.contains(&signature(&s.labels, matching)))
                .collect()
        }
    }
}

fn result_labels(lhs: &Labels, rhs: &Labels, op: BinOp, matching: &VectorMatching) -> Labels {
    let mut out = lhs.clone();
    if drops_metric_name(op) {
        out.set(METRIC_NAME, "");
    }
    let include: &[String] = match &matching.card {
        Cardinality::OneToOne => {
            if matching.on {
                out = Labels::new(
                    out.iter()
                        .filter(|(n, _)| matching.labels.iter().any(|m| m == n))
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect(),
                );
            } else {
                for n in &matching.labels {
                    out.set(n, "");
                }
            }
            &[]
        }
        Cardinality::ManyToOne(l) | Cardinality::OneToMany(l) => l,
        Cardinality::ManyToMany => &[],
    };
    for n in include {
        out.set(n, rhs.get(n).unwrap_or(""));
    }
    out
}

/// vector OP vector for arithmetic and comparison operators.
pub fn vector_vector_binop(
    op: BinOp,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    matching: &VectorMatching,
    return_bool: bool,
) -> Result<Vec<Sample>, QueryError> {
    let one_to_many = matches!(matching.card, Cardinality::OneToMany(_));
    // The "one" side goes on the right.
    let (lhs, rhs) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut right: HashMap<u64, Sample, FnvBuild> =
        HashMap::with_capacity_and_hasher(rhs.len(), FnvBuild::default());
    for s in rhs {
        let sig = signature(&s.labels, matching);
        if let Some(dup) = right.get(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(QueryError::Execution(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                signature_labels(&s.labels, matching),
                labels_string(&s.labels),
                labels_string(&dup.labels)
            )));
        }
        right.insert(sig, s);
    }
    let mut matched: HashMap<u64, HashSet<SharedLabels, FnvBuild>, FnvBuild> = HashMap::default();
    let mut out = Vec::new();
    for ls in lhs {
        let sig = signature(&ls.labels, matching);
        let Some(rs) = right.get(&sig) else {
            continue;
        };
        let (vl, vr) = if one_to_many {
            (rs.value, ls.value)
        } else {
            (ls.value, rs.value)
        };
        let (mut value, keep) = elem_binop(op, vl, vr);
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let mut metric = result_labels(&ls.labels, &rs.labels, op, matching);
        if return_bool {
            metric.set(METRIC_NAME, "");
        }
        let metric = Arc::new(metric);
        match matched.get_mut(&sig) {
            Some(inserted) => {
                if matching.card == Cardinality::OneToOne {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
                if !inserted.insert(metric.clone()) {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                            .into(),
                    ));
                }
            }
            None => {
                let mut set = HashSet::default();
                set.insert(metric.clone());
                matched.insert(sig, set);
            }
        }
        out.push(Sample {
            labels: metric,
            value,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::query::value::sample as s;

    fn ignoring(labels: &[&str]) -> VectorMatching {
        VectorMatching {
            card: Cardinality::OneToOne,
            on: false,
            labels: labels.iter().map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn arithmetic_drops_name_comparison_keeps_it() {
        let l = vec![s("a", &[("x", "1")], 2.0), s("a", &[("x", "2")], 5.0)];
        let r = vec![s("b", &[("x", "1")], 3.0), s("b", &[("x", "2")], 1.0)];
        let sum =
            vector_vector_binop(BinOp::Add, l.clone(), r.clone(), &ignoring(&[]), false).unwrap();
        assert_eq!(sum[0].labels.get("__name__"), None);
        assert_eq!(sum[0].value, 5.0);
        let gt =
            vector_vector_binop(BinOp::Gt, l.clone(), r.clone(), &ignoring(&[]), false).unwrap();
        assert_eq!(gt.len(), 1);
        assert_eq!(gt[0].labels.name(), "a");
        let gtb = vector_vector_binop(BinOp::Gt, l, r, &ignoring(&[]), true).unwrap();
        assert_eq!(
            gtb.iter().map(|s| s.value).collect::<Vec<_>>(),
            vec![0.0, 1.0]
        );
        assert_eq!(gtb[0].labels.get("__name__"), None);
    }

    #[test]
    fn group_left_copies_included_labels_and_rejects_many_to_many() {
        let many = vec![
            s("a", &[("job", "j"), ("i", "1")], 2.0),
            s("a", &[("job", "j"), ("i", "2")], 4.0),
        ];
        let one = vec![s("info", &[("job", "j"), ("version", "v1")], 1.0)];
        let m = VectorMatching {
            card: Cardinality::ManyToOne(vec!["version".into()]),
            on: true,
            labels: vec!["job".into()],
        };
        let out = vector_vector_binop(BinOp::Mul, many.clone(), one, &m, false).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].labels.get("version"), Some("v1"));
        assert_eq!(out[1].labels.get("i"), Some("2"));
        let on_job = VectorMatching {
            card: Cardinality::OneToOne,
            on: true,
            labels: vec!["job".into()],
        };
        let err = vector_vector_binop(BinOp::Add, many.clone(), many, &on_job, false).unwrap_err();
        assert!(err.to_string().contains("many-to-many"), "{err}");
    }

    #[test]
    fn set_operators_and_scalar_comparisons() {
        let l = vec![s("a", &[("x", "1")], 1.0), s("a", &[("x", "2")], 2.0)];
        let r = vec![s("b", &[("x", "2")], 9.0), s("b", &[("x", "3")], 9.0)];
        let m = VectorMatching {
            card: Cardinality::ManyToMany,
            on: false,
            labels: vec![],
        };
        assert_eq!(
            vector_set_binop(BinOp::And, l.clone(), r.clone(), &m).len(),
            1
        );
        assert_eq!(
            vector_set_binop(BinOp::Or, l.clone(), r.clone(), &m).len(),
            3
        );
        assert_eq!(
            vector_set_binop(BinOp::Unless, l.clone(), r, &m)[0].value,
            1.0
        );
        // 1.5 < vector keeps the vector's value.
        let f = vector_scalar_binop(BinOp::Lt, l, 1.5, true, false, &mut LabelCache::default());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].value, 2.0);
        assert_eq!(f[0].labels.name(), "a");
        assert_eq!(scalar_binop(BinOp::Ge, 1.0, 1.0), 1.0);
        assert!(go_mod(1.0, 0.0).is_nan());
        assert_eq!(go_mod(-7.0, 3.0), -1.0);
    }
}
