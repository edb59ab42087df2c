//! The read interface the query engine needs from the storage, and [`MemSource`], an
//! in-memory implementation used by tests and by anything that wants to query a fixed set of
//! series.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use crate::storage::metadata::MetricMetadata;
use crate::storage::SharedSeries;

use vigil_shared::model::{Labels, Point, Series};

use super::QueryError;

use crate::storage::matcher::{matches_all, Matcher};

/// Prometheus's message when a query would hold more samples than allowed.
pub const TOO_MANY_SAMPLES: &str =
    "query processing would load too many samples into memory in query execution";

/// The `execution` error of a query that would hold more samples than allowed.
pub fn too_many_samples() -> QueryError {
    QueryError::Execution(TOO_MANY_SAMPLES.into())
}

/// [`too_many_samples`] when `n` samples exceed `max_samples`.
pub fn check_samples(n: usize, max_samples: usize) -> Result<(), QueryError> {
    if n > max_samples {
        return Err(too_many_samples());
    }
    Ok(())
}

/// Read access to stored series. Implemented by the storage; the engine calls it once per
/// selector per query.
pub trait SeriesSource: Send + Sync {
    /// The series matching every matcher that have at least one point in
    /// `[start_ms, end_ms]` (both inclusive), sorted by labels, each with its points in that
    /// range sorted by time. Stale markers are returned as stored (NaN with the stale payload).
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Series>, QueryError>;

    /// [`select`](Self::select) that gives up with an `execution` error once more than
    /// `max_samples` points would be returned. The default selects everything and then
    /// counts; a storage should override it to stop reading as soon as the budget is spent,
    /// so an oversized query cannot exhaust memory before the engine sees it.
    fn select_limited(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        max_samples: usize,
    ) -> Result<Vec<Series>, QueryError> {
        let series = self.select(matchers, start_ms, end_ms)?;
        check_samples(series.iter().map(|s| s.points.len()).sum(), max_samples)?;
        Ok(series)
    }

    /// [`select_limited`](Self::select_limited) with each label set in an `Arc`, which is
    /// what the engine reads through; a storage that keeps label sets in `Arc`s should
    /// override it to share them instead of copying.
    fn select_shared(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        max_samples: usize,
    ) -> Result<Vec<SharedSeries>, QueryError> {
        Ok(self
            .select_limited(matchers, start_ms, end_ms, max_samples)?
            .into_iter()
            .map(|s| (Arc::new(s.labels), s.points))
            .collect())
    }

    /// Sorted, de-duplicated label names of the series matching every matcher with data in
    /// the range; with no matchers, of all series with data in the range.
    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, QueryError>;

    /// Metric metadata as `/api/v1/metadata` returns it: every family (or only `metric`), at
    /// most `limit` families when `limit >= 0`, at most `limit_per_metric` entries each when
    /// it is positive. A source without metadata returns nothing (the default).
    fn metadata(
        &self,
        metric: Option<&str>,
        limit: i64,
        limit_per_metric: i64,
    ) -> BTreeMap<String, Vec<MetricMetadata>> {
        let _ = (metric, limit, limit_per_metric);
        BTreeMap::new()
    }

    /// Sorted, de-duplicated values of label `name` over the series matching every matcher
    /// with data in the range; with no matchers, over all series with data in the range.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, QueryError>;

    /// Sorted, de-duplicated label sets of the series matching every matcher with data in
    /// the range, for `/api/v1/series`. The default selects the samples; a storage should
    /// answer from its index without reading them.
    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, QueryError> {
        Ok(self
            .select(matchers, start_ms, end_ms)?
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }
}

/// Series held in memory, sorted by labels. Points must be sorted by time within a series;
/// [`MemSource::new`] sorts them and merges series that share a label set, and
/// [`MemSource::append`] adds more the same way (promtool's test storage, which the rules
/// write back into).
#[derive(Debug, Default)]
pub struct MemSource {
    series: RwLock<Vec<Series>>,
}

impl Clone for MemSource {
    fn clone(&self) -> Self {
        MemSource {
            series: RwLock::new(self.held().clone()),
        }
    }
}

/// `input` with series that share a label set merged, sorted by labels and points by time;
/// when two points of one series share a timestamp, the later one in the input wins.
fn merge(input: Vec<Series>) -> Vec<Series> {
    let mut map: BTreeMap<Labels, Vec<Point>> = Default::default();
    for s in input {
        map.entry(s.labels).or_default().extend(s.points);
    }
    map.into_iter()
        .map(|(labels, mut points)| {
            // Stable sort keeps input order for equal timestamps; keep the last of each.
            points.sort_by_key(|p| p.timestamp_ms);
            let mut out: Vec<Point> = Vec::with_capacity(points.len());
            for p in points {
                match out.last_mut() {
                    Some(last) if last.timestamp_ms == p.timestamp_ms => *last = p,
                    _ => out.push(p),
                }
            }
            Series {
                labels,
                points: out,
            }
        })
        .collect()
}

/// The series of `series` matching every matcher, each cut to its points in
/// `[start_ms, end_ms]`, those with none left out.
fn matching<'a>(
    series: &'a [Series],
    matchers: &'a [Matcher],
    start_ms: i64,
    end_ms: i64,
) -> impl Iterator<Item = (&'a Labels, &'a [Point])> + 'a {
    series.iter().filter_map(move |s| {
        if !matches_all(matchers, &s.labels) {
            return None;
        }
        let lo = s.points.partition_point(|p| p.timestamp_ms < start_ms);
        let hi = s.points.partition_point(|p| p.timestamp_ms <= end_ms);
        (lo < hi).then(|| (&s.labels, &s.points[lo..hi]))
    })
}

impl MemSource {
    /// Builds a source from series, merging duplicates and sorting labels and points. When
    /// two points of one series share a timestamp, the later one in the input wins.
    pub fn new(input: Vec<Series>) -> Self {
        MemSource {
            series: RwLock::new(merge(input)),
        }
    }

    /// Adds series as if they had been given to [`MemSource::new`] after those held: a
    /// point at a timestamp already held replaces the old one.
    pub fn append(&self, input: Vec<Series>) {
        let mut held = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let mut all = std::mem::take(&mut *held);
        all.extend(input);
        *held = merge(all);
    }

    fn held(&self) -> RwLockReadGuard<'_, Vec<Series>> {
        self.series.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SeriesSource for MemSource {
    fn select_limited(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        max_samples: usize,
    ) -> Result<Vec<Series>, QueryError> {
        let held = self.held();
        let mut budget = max_samples;
        let mut out = Vec::new();
        for (labels, points) in matching(&held, matchers, start_ms, end_ms) {
            budget = budget
                .checked_sub(points.len())
                .ok_or_else(too_many_samples)?;
            out.push(Series {
                labels: labels.clone(),
                points: points.to_vec(),
            });
        }
        Ok(out)
    }

    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Series>, QueryError> {
        self.select_limited(matchers, start_ms, end_ms, usize::MAX)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, QueryError> {
        let mut names = BTreeSet::new();
        for (labels, _) in matching(&self.held(), matchers, start_ms, end_ms) {
            names.extend(labels.iter().map(|(n, _)| n.to_string()));
        }
        Ok(names.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, QueryError> {
        let mut values = BTreeSet::new();
        for (labels, _) in matching(&self.held(), matchers, start_ms, end_ms) {
            if let Some(v) = labels.get(name) {
                values.insert(v.to_string());
            }
        }
        Ok(values.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: i64, v: f64) -> Point {
        Point {
            timestamp_ms: t,
            value: v,
        }
    }

    #[test]
    fn select_is_inclusive_sorted_and_merged() {
        let src = MemSource::new(vec![
            Series {
                labels: Labels::metric("b", &[]),
                points: vec![p(30, 3.0), p(10, 1.0)],
            },
            Series {
                labels: Labels::metric("a", &[("x", "1")]),
                points: vec![p(10, 1.0), p(20, 2.0)],
            },
            Series {
                labels: Labels::metric("b", &[]),
                points: vec![p(20, 2.0), p(30, 4.0)],
            },
        ]);
        let all = src.select(&[], 10, 30).unwrap();
        assert_eq!(all[0].labels.name(), "a");
        assert_eq!(
            all[1].points,
            vec![p(10, 1.0), p(20, 2.0), p(30, 4.0)],
            "points sorted, later duplicate wins"
        );
        let some = src
            .select(&[Matcher::equal("__name__", "b")], 11, 20)
            .unwrap();
        assert_eq!(some.len(), 1);
        assert_eq!(some[0].points, vec![p(20, 2.0)]);
        assert!(src.select(&[], 31, 40).unwrap().is_empty());
        assert_eq!(src.label_names(&[], 0, 100).unwrap(), vec!["__name__", "x"]);
        assert_eq!(
            src.label_values("__name__", &[], 25, 100).unwrap(),
            vec!["b"]
        );
        assert_eq!(src.select_limited(&[], 0, 100, 5).unwrap().len(), 2);
        assert!(matches!(
            src.select_limited(&[], 0, 100, 4),
            Err(QueryError::Execution(_))
        ));
    }
}
