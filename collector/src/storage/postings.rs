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
}
