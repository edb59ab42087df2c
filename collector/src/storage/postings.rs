//! The inverted label index ("postings"): for every label name and value, the sorted list
//! of series ids that carry it. Matchers are resolved against it as in Prometheus's
//! `PostingsForMatchers`: matchers that reject the empty string intersect the unions of
//! their matching values, and matchers that accept it subtract the series whose value they
//! reject, so `{env!="prod"}` also selects series without an `env` label.

use std::collections::HashMap;

use vigil_shared::model::Labels;

use super::matcher::{MatchOp, Matcher};

/// Sorted series-id lists by label name and value.
#[derive(Debug, Default)]
pub(crate) struct Postings {
    by_name: HashMap<String, HashMap<String, Vec<u32>>>,
    all: Vec<u32>,
}

impl Postings {
    /// Adds a series; ids must be added in increasing order.
    pub fn add(&mut self, id: u32, labels: &Labels) {
        self.all.push(id);
        for (n, v) in labels.iter() {
            self.by_name
                .entry(n.to_string())
                .or_default()
                .entry(v.to_string())
                .or_default()
                .push(id);
        }
    }

    /// Removes series (with their labels) from the index.
    pub fn remove(&mut self, removed: &[(u32, &Labels)]) {
        if removed.is_empty() {
            return;
        }
        let mut ids: Vec<u32> = removed.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        self.all = difference(&self.all, &ids);
        let mut touched: HashMap<(&str, &str), Vec<u32>> = HashMap::new();
        for (id, labels) in removed {
            for (n, v) in labels.iter() {
                touched.entry((n, v)).or_default().push(*id);
            }
        }
        for ((n, v), mut gone) in touched {
            gone.sort_unstable();
            let Some(values) = self.by_name.get_mut(n) else {
                continue;
            };
            if let Some(list) = values.get_mut(v) {
                *list = difference(list, &gone);
                if list.is_empty() {
                    values.remove(v);
                }
            }
            if values.is_empty() {
                self.by_name.remove(n);
            }
        }
    }

    fn union_where(&self, name: &str, keep: impl Fn(&str) -> bool) -> Vec<u32> {
        let Some(values) = self.by_name.get(name) else {
            return Vec::new();
        };
        let lists: Vec<&[u32]> = values
            .iter()
            .filter(|(v, _)| keep(v))
            .map(|(_, ids)| ids.as_slice())
            .collect();
        union(&lists)
    }

    /// Sorted ids of the series that satisfy every matcher.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<u32> {
        let mut result: Option<Vec<u32>> = None;
        let mut subtract: Vec<Vec<u32>> = Vec::new();
        for m in matchers {
            if m.matches_empty() {
                let excl = self.union_where(&m.name, |v| !m.matches_value(v));
                if !excl.is_empty() {
                    subtract.push(excl);
                }
                continue;
            }
            let incl = if m.op == MatchOp::Equal {
                self.by_name
                    .get(&m.name)
                    .and_then(|vals| vals.get(&m.value))
                    .cloned()
                    .unwrap_or_default()
            } else {
                self.union_where(&m.name, |v| m.matches_value(v))
            };
            result = Some(match result {
                None => incl,
                Some(r) => intersect(&r, &incl),
            });
            if result.as_ref().is_some_and(Vec::is_empty) {
                return Vec::new();
            }
        }
        let mut ids = result.unwrap_or_else(|| self.all.clone());
        for s in subtract {
            ids = difference(&ids, &s);
        }
        ids
    }
}

impl Postings {
    /// Cardinality of the index as Prometheus's `/api/v1/status/tsdb` reports it: the
    /// number of label pairs and the `limit` largest entries of each table, largest first
    /// (ties by name). `metric_label` is the label whose values count series per metric.
    pub fn stats(&self, metric_label: &str, limit: usize) -> PostingsStats {
        let mut st = PostingsStats::default();
        for (name, values) in &self.by_name {
            st.num_label_pairs += values.len();
            st.label_value_count_by_label_name
                .push((name.clone(), values.len() as u64));
            let mut bytes = 0u64;
            for (value, ids) in values {
                bytes += value.len() as u64;
                if name == metric_label {
                    st.series_count_by_metric_name
                        .push((value.clone(), ids.len() as u64));
                }
                st.series_count_by_label_value_pair
                    .push((format!("{name}={value}"), ids.len() as u64));
            }
            st.memory_in_bytes_by_label_name.push((name.clone(), bytes));
        }
        for table in [
            &mut st.series_count_by_metric_name,
            &mut st.label_value_count_by_label_name,
            &mut st.memory_in_bytes_by_label_name,
            &mut st.series_count_by_label_value_pair,
        ] {
            top(table, limit);
        }
        st
    }
}

/// What [`Postings::stats`] returns: `(name, count)` tables, largest first.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PostingsStats {
    pub num_label_pairs: usize,
    pub series_count_by_metric_name: Vec<(String, u64)>,
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
}

/// Keeps the `limit` largest entries of `table`, largest first, ties by name.
pub(crate) fn top(table: &mut Vec<(String, u64)>, limit: usize) {
    let order = |a: &(String, u64), b: &(String, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    if table.len() > limit {
        if limit == 0 {
            table.clear();
            return;
        }
        table.select_nth_unstable_by(limit - 1, order);
        table.truncate(limit);
    }
    table.sort_unstable_by(order);
}

/// Merges sorted lists into one sorted list without duplicates.
pub(crate) fn union(lists: &[&[u32]]) -> Vec<u32> {
    match lists {
        [] => Vec::new(),
        [one] => one.to_vec(),
        _ => {
            let mut out: Vec<u32> = lists.iter().flat_map(|l| l.iter().copied()).collect();
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

/// Ids present in both sorted lists.
pub(crate) fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Ids of sorted `a` not in sorted `b`.
pub(crate) fn difference(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut j = 0;
    let mut out = Vec::with_capacity(a.len());
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j >= b.len() || b[j] != x {
            out.push(x);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::matcher::matches_all;

    fn index() -> (Postings, Vec<Labels>) {
        let all = vec![
            Labels::metric("up", &[("job", "node"), ("instance", "a")]),
            Labels::metric("up", &[("job", "node"), ("instance", "b"), ("env", "prod")]),
            Labels::metric("up", &[("job", "api"), ("instance", "c"), ("env", "dev")]),
            Labels::metric("load", &[("job", "node"), ("instance", "a")]),
        ];
        let mut p = Postings::default();
        for (i, l) in all.iter().enumerate() {
            p.add(i as u32, l);
        }
        (p, all)
    }

    fn brute(all: &[Labels], ms: &[Matcher]) -> Vec<u32> {
        (0..all.len() as u32)
            .filter(|&i| matches_all(ms, &all[i as usize]))
            .collect()
    }

    #[test]
    fn postings_agree_with_brute_force_matching() {
        let (p, all) = index();
        let cases: Vec<Vec<Matcher>> = vec![
            vec![Matcher::equal("__name__", "up")],
            vec![
                Matcher::equal("__name__", "up"),
                Matcher::new("env", MatchOp::NotEqual, "prod").unwrap(),
            ],
            vec![Matcher::new("env", MatchOp::Equal, "").unwrap()],
            vec![Matcher::new("env", MatchOp::Regex, "prod|").unwrap()],
            vec![Matcher::new("job", MatchOp::Regex, "no.*").unwrap()],
            vec![Matcher::new("job", MatchOp::NotRegex, "no.*").unwrap()],
            vec![Matcher::new("instance", MatchOp::Regex, ".+").unwrap()],
            vec![
                Matcher::new("instance", MatchOp::Regex, "a|c").unwrap(),
                Matcher::equal("__name__", "up"),
            ],
            vec![Matcher::equal("missing", "x")],
            vec![],
        ];
        for ms in cases {
            assert_eq!(p.select(&ms), brute(&all, &ms), "{ms:?}");
        }
    }

    #[test]
    fn removed_series_disappear_from_every_list() {
        let (mut p, all) = index();
        p.remove(&[(1, &all[1]), (3, &all[3])]);
        assert_eq!(p.select(&[Matcher::equal("job", "node")]), vec![0]);
        assert_eq!(p.select(&[]), vec![0, 2]);
        assert_eq!(
            p.select(&[Matcher::new("env", MatchOp::Regex, ".+").unwrap()]),
            vec![2]
        );
        assert!(p.by_name.get("env").is_some_and(|v| v.len() == 1));
    }

    #[test]
    fn stats_count_like_prometheus_tsdb_status() {
        let (mut p, all) = index();
        let st = p.stats("__name__", 10);
        // __name__ 2 values, job 2, instance 3, env 2.
        assert_eq!(st.num_label_pairs, 9);
        assert_eq!(
            st.series_count_by_metric_name,
            vec![("up".to_string(), 3), ("load".to_string(), 1)]
        );
        assert_eq!(
            st.label_value_count_by_label_name,
            vec![
                ("instance".to_string(), 3),
                ("__name__".to_string(), 2),
                ("env".to_string(), 2),
                ("job".to_string(), 2),
            ]
        );
        let mem: std::collections::HashMap<_, _> =
            st.memory_in_bytes_by_label_name.iter().cloned().collect();
        assert_eq!(mem["__name__"], 6, "len(up) + len(load)");
        assert_eq!(mem["env"], 7, "len(prod) + len(dev)");
        // Ties are broken by name.
        assert_eq!(
            st.series_count_by_label_value_pair[0],
            ("__name__=up".into(), 3)
        );
        assert_eq!(
            st.series_count_by_label_value_pair[1],
            ("job=node".into(), 3)
        );

        let two = p.stats("__name__", 2);
        assert_eq!(two.label_value_count_by_label_name.len(), 2);
        assert_eq!(
            two.series_count_by_label_value_pair,
            st.series_count_by_label_value_pair[..2]
        );

        p.remove(&[(2, &all[2])]);
        let after = p.stats("__name__", 10);
        assert_eq!(after.series_count_by_metric_name[0], ("up".into(), 2));
        assert_eq!(
            after.num_label_pairs, 6,
            "job=api, instance=c and env=dev are gone"
        );
    }
}
