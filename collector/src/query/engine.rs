//! The PromQL evaluator. A query is planned ([`super::plan`]), the data for every selector is
//! read from the [`SeriesSource`] once for the whole query window, and the plan is then
//! evaluated at each step with Prometheus 2.x semantics: instant selectors take the newest
//! sample within the lookback delta (inclusive) unless it is a stale marker, range selectors
//! take the samples in the closed window `[t - range, t]` without stale markers, `offset` and
//! `@` move the reference time, subqueries evaluate their inner expression at step-aligned
//! times (cached across outer steps). Limits on series, loaded samples and time are checked
//! as the query runs and turn into `execution`/`timeout` errors instead of exhausting memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;
use vigil_shared::model::{Labels, Point, METRIC_NAME};

use super::aggregate::{
    aggregate_cached, group_hash, group_key, same_group, valid_label_name, AggParam, GroupKeyCache,
    SimpleAcc,
};
use super::binary::{scalar_binop, vector_scalar_binop, vector_set_binop, vector_vector_binop};
use super::functions as f;
use super::plan::{self, Call, Node, Selector, Subquery, ValueKind};
use super::source::{check_samples, SeriesSource};
use super::value::{
    has_duplicate_labelsets, is_stale_marker, FnvBuild, LabelCache, QueryValue, RangeSeries,
    Sample, SharedLabels, StepValue, Window,
};
use super::QueryError;
use crate::storage::matcher::MatchOp;

/// Engine settings. Defaults follow Prometheus's.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// How far back an instant selector looks for a sample (Prometheus: 5m).
    pub lookback_delta: Duration,
    /// Most samples a query may load from storage plus hold in results (Prometheus's
    /// `--query.max-samples`, 50,000,000). Past it the query fails with `execution`.
    pub max_samples: usize,
    /// Most series one selector may match. Past it the query fails with `execution`.
    pub max_series: usize,
    /// Longest a query may run (Prometheus: 2m); a shorter `timeout` parameter wins.
    pub timeout: Duration,
    /// Subquery step when none is given (Prometheus: the global evaluation interval, 1m).
    pub default_subquery_step: Duration,
    /// Most points per series a range query may return (Prometheus: 11,000).
    pub max_points_per_series: i64,
    /// Most queries the HTTP API evaluates at once (Prometheus's
    /// `--query.max-concurrency`, 20); further queries wait, within their timeout.
    pub max_concurrency: usize,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            max_series: 1_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step: Duration::from_secs(60),
            max_points_per_series: 11_000,
            max_concurrency: 20,
        }
    }
}

/// Evaluates PromQL against a [`SeriesSource`].
#[derive(Clone)]
pub struct Engine {
    source: Arc<dyn SeriesSource>,
    opts: QueryOptions,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("opts", &self.opts).finish()
    }
}

impl Engine {
    /// An engine over `source`.
    pub fn new(source: Arc<dyn SeriesSource>, opts: QueryOptions) -> Self {
        Engine { source, opts }
    }

    /// The engine's settings.
    pub fn options(&self) -> &QueryOptions {
        &self.opts
    }

    /// The source queries read from.
    pub fn source(&self) -> &Arc<dyn SeriesSource> {
        &self.source
    }

    fn timeout(&self, requested: Option<Duration>) -> Duration {
        match requested {
            Some(t) if t < self.opts.timeout => t,
            _ => self.opts.timeout,
        }
    }

    /// Evaluates `query` at `t_ms`.
    pub fn instant(
        &self,
        query: &str,
        t_ms: i64,
        timeout: Option<Duration>,
    ) -> Result<QueryValue, QueryError> {
        let step_default = super::duration_ms(self.opts.default_subquery_step);
        let node = plan::plan(query, t_ms, t_ms, step_default)?;
        let mut ev = Evaluator::new(self, &node, t_ms, t_ms, self.timeout(timeout))?;
        ev.grid = Some((t_ms, 1, 1));
        collect_batchable(&node, &mut ev.batchable);
        let v = ev.eval(&node, t_ms)?;
        Ok(match v {
            StepValue::Scalar(value) => QueryValue::Scalar { t_ms, value },
            StepValue::Str(value) => QueryValue::Str { t_ms, value },
            StepValue::Vector(samples) => QueryValue::Vector { t_ms, samples },
            StepValue::Matrix(w) => QueryValue::Matrix(w.series),
        })
    }

    /// Evaluates `query` at every `step_ms` from `start_ms` to `end_ms`, giving a matrix
    /// sorted by labels.
    pub fn range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        timeout: Option<Duration>,
    ) -> Result<QueryValue, QueryError> {
        if end_ms < start_ms {
            return Err(QueryError::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        if step_ms <= 0 {
            return Err(QueryError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if (end_ms - start_ms) / step_ms > self.opts.max_points_per_series {
            return Err(QueryError::BadData(format!(
                "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
                thousands(self.opts.max_points_per_series)
            )));
        }
        let step_default = super::duration_ms(self.opts.default_subquery_step);
        let node = plan::plan(query, start_ms, end_ms, step_default)?;
        match node.kind() {
            ValueKind::Scalar | ValueKind::Vector => {}
            ValueKind::Matrix => {
                return Err(QueryError::BadData(
                    "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
                ))
            }
            ValueKind::Str => {
                return Err(QueryError::BadData(
                    "invalid expression type \"string\" for range query, must be Scalar or instant Vector".into(),
                ))
            }
        }
        let mut ev = Evaluator::new(self, &node, start_ms, end_ms, self.timeout(timeout))?;
        let steps = usize::try_from((end_ms - start_ms) / step_ms + 1).unwrap_or(0);
        ev.grid = Some((start_ms, step_ms, steps));
        collect_batchable(&node, &mut ev.batchable);
        let mut out = SeriesBuilder::default();
        let mut t = start_ms;
        while t <= end_ms {
            ev.check_deadline()?;
            match ev.eval(&node, t)? {
                StepValue::Scalar(value) => {
                    out.push(&ev.empty_labels, t, value);
                }
                StepValue::Vector(samples) => {
                    ev.account(samples.len())?;
                    for s in samples {
                        out.push(&s.labels, t, s.value);
                    }
                }
                other => {
                    return Err(QueryError::Execution(format!(
                        "range query evaluated to a {}",
                        other.type_name()
                    )))
                }
            }
            t += step_ms;
        }
        Ok(QueryValue::Matrix(out.finish()))
    }
}

/// `11000` as `11,000`, as Prometheus writes the resolution limit.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).unwrap_or(""))
        .collect();
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", groups.join(","))
}

/// Collects points per label set across steps, then sorts the series by labels.
#[derive(Default)]
struct SeriesBuilder {
    index: HashMap<SharedLabels, usize, FnvBuild>,
    series: Vec<RangeSeries>,
}

impl SeriesBuilder {
    fn push(&mut self, labels: &SharedLabels, t: i64, value: f64) {
        let point = Point {
            timestamp_ms: t,
            value,
        };
        match self.index.get(labels) {
            Some(&i) => self.series[i].points.push(point),
            None => {
                self.index.insert(labels.clone(), self.series.len());
                self.series.push(RangeSeries {
                    labels: labels.clone(),
                    points: vec![point],
                });
            }
        }
    }

    fn finish(mut self) -> Vec<RangeSeries> {
        self.series.sort_by(|a, b| a.labels.cmp(&b.labels));
        self.series
    }
}

/// A selected series, loaded once per query.
struct LoadedSeries {
    labels: SharedLabels,
    points: Vec<Point>,
    /// `labels` without the metric name, made on first use and reused at every step.
    dropped: Option<SharedLabels>,
    /// Whether any point is a stale marker; without one, windows are used as they are.
    has_stale: bool,
}

struct Evaluator<'a> {
    opts: &'a QueryOptions,
    lookback_ms: i64,
    data: Vec<Vec<LoadedSeries>>,
    /// Per selector and series, where the last window started and ended.
    hints: Vec<Vec<(usize, usize)>>,
    sub_cache: Vec<HashMap<i64, Vec<Sample>>>,
    deadline: Instant,
    samples: usize,
    cache: LabelCache,
    empty_labels: SharedLabels,
    /// `label_replace` regexes, compiled once per query rather than once per step.
    regexes: HashMap<String, Regex>,
    /// First evaluation time of the query.
    query_start: i64,
    /// Per aggregation node (by address, stable for the query), its series' group keys.
    group_keys: HashMap<usize, GroupKeyCache, FnvBuild>,
    /// A range query's steps: first time, step, count.
    grid: Option<(i64, i64, usize)>,
    /// Aggregation nodes that a range query evaluates series by series.
    batchable: std::collections::HashSet<usize, FnvBuild>,
    /// Their results, per step; `None` when the node turned out too large to batch.
    batched: HashMap<usize, Option<Vec<Vec<Sample>>>, FnvBuild>,
}

/// Computes, for every selector, the time range its data must cover when the node is
/// evaluated at reference times in `[lo, hi]`.
fn collect_ranges(node: &Node, lo: i64, hi: i64, lookback: i64, out: &mut [(i64, i64)]) {
    match node {
        Node::Number(_) | Node::Str(_) => {}
        Node::Neg(e) => collect_ranges(e, lo, hi, lookback, out),
        Node::Selector(s) => {
            let (rlo, rhi) = match s.at_ms {
                Some(at) => (at - s.offset_ms, at - s.offset_ms),
                None => (lo - s.offset_ms, hi - s.offset_ms),
            };
            let back = if s.range_ms > 0 { s.range_ms } else { lookback };
            let r = &mut out[s.id];
            r.0 = r.0.min(rlo - back);
            r.1 = r.1.max(rhi);
        }
        Node::Subquery(s) => {
            let (rlo, rhi) = match s.at_ms {
                Some(at) => (at - s.offset_ms, at - s.offset_ms),
                None => (lo - s.offset_ms, hi - s.offset_ms),
            };
            collect_ranges(&s.expr, rlo - s.range_ms, rhi, lookback, out);
        }
        Node::Call(c) => c
            .args
            .iter()
            .for_each(|a| collect_ranges(a, lo, hi, lookback, out)),
        Node::Aggregate(a) => {
            collect_ranges(&a.expr, lo, hi, lookback, out);
            if let Some(p) = &a.param {
                collect_ranges(p, lo, hi, lookback, out);
            }
        }
        Node::Binary(b) => {
            collect_ranges(&b.lhs, lo, hi, lookback, out);
            collect_ranges(&b.rhs, lo, hi, lookback, out);
        }
    }
}

fn collect_selectors<'n>(node: &'n Node, out: &mut Vec<&'n Selector>) {
    match node {
        Node::Number(_) | Node::Str(_) => {}
        Node::Neg(e) => collect_selectors(e, out),
        Node::Selector(s) => out.push(s),
        Node::Subquery(s) => collect_selectors(&s.expr, out),
        Node::Call(c) => c.args.iter().for_each(|a| collect_selectors(a, out)),
        Node::Aggregate(a) => {
            collect_selectors(&a.expr, out);
            if let Some(p) = &a.param {
                collect_selectors(p, out);
            }
        }
        Node::Binary(b) => {
            collect_selectors(&b.lhs, out);
            collect_selectors(&b.rhs, out);
        }
    }
}

/// Samples of a series in `[lo, hi]` (inclusive), without stale markers.
/// `points.partition_point(pred)` for a monotone `pred`, searched outward from `hint` (the
/// previous answer). Evaluation times mostly increase step by step, so this is amortised
/// O(1) instead of a cache-missing binary search over the whole series.
fn seek(points: &[Point], hint: usize, pred: impl Fn(&Point) -> bool) -> usize {
    let n = points.len();
    let h = hint.min(n);
    let (lo, hi);
    if h < n && pred(&points[h]) {
        // The answer is after `h`: gallop forward.
        let mut l = h + 1;
        let mut step = 1;
        loop {
            let probe = l + step - 1;
            if probe >= n {
                hi = n;
                break;
            }
            if pred(&points[probe]) {
                l = probe + 1;
                step *= 2;
            } else {
                hi = probe;
                break;
            }
        }
        lo = l;
    } else {
        // The answer is at or before `h`: gallop backward.
        let mut r = h;
        let mut step = 1;
        loop {
            if r == 0 {
                lo = 0;
                break;
            }
            let probe = r - step.min(r);
            if pred(&points[probe]) {
                lo = probe + 1;
                break;
            }
            r = probe;
            step *= 2;
        }
        hi = r;
    }
    lo + points[lo..hi].partition_point(pred)
}

/// The samples of a series in `[lo, hi]` (inclusive), stale markers included; `hints`
/// carries the previous window's bounds.
fn window_slice<'p>(
    points: &'p [Point],
    lo: i64,
    hi: i64,
    hints: &mut (usize, usize),
) -> &'p [Point] {
    let a = seek(points, hints.0, |p| p.timestamp_ms < lo);
    let b = seek(points, hints.1, |p| p.timestamp_ms <= hi);
    *hints = (a, b);
    &points[a..b.max(a)]
}

/// `points` without stale markers, borrowing when there are none.
fn without_stale<'p>(points: &'p [Point], buf: &'p mut Vec<Point>) -> &'p [Point] {
    if points.iter().any(|p| is_stale_marker(p.value)) {
        buf.clear();
        buf.extend(points.iter().filter(|p| !is_stale_marker(p.value)).copied());
        buf
    } else {
        points
    }
}

/// The error for an argument of `what` that has the wrong type.
fn wrong_type(expected: &str, what: &str, got: &StepValue) -> QueryError {
    QueryError::Execution(format!(
        "expected {expected} for {what}, got {}",
        got.type_name()
    ))
}

fn expect_scalar(v: StepValue, what: &str) -> Result<f64, QueryError> {
    match v {
        StepValue::Scalar(x) => Ok(x),
        other => Err(wrong_type("scalar", what, &other)),
    }
}

fn expect_vector(v: StepValue, what: &str) -> Result<Vec<Sample>, QueryError> {
    match v {
        StepValue::Vector(x) => Ok(x),
        other => Err(wrong_type("instant vector", what, &other)),
    }
}

fn expect_matrix(v: StepValue, what: &str) -> Result<Window, QueryError> {
    match v {
        StepValue::Matrix(x) => Ok(x),
        other => Err(wrong_type("range vector", what, &other)),
    }
}

fn expect_str(v: StepValue, what: &str) -> Result<String, QueryError> {
    match v {
        StepValue::Str(x) => Ok(x),
        other => Err(wrong_type("string", what, &other)),
    }
}

/// The error for an invalid `role` (source or destination) label name given to `func`.
fn check_label_name(name: &str, role: &str, func: &str) -> Result<(), QueryError> {
    if valid_label_name(name) {
        return Ok(());
    }
    Err(QueryError::Execution(format!(
        "invalid {role} label name in {func}(): {name}"
    )))
}

/// Labels `absent`/`absent_over_time` give their result: the equality matchers of a plain
/// selector argument, except names matched more than once or by other operators.
fn absent_labels(arg: &Node) -> Labels {
    let Node::Selector(s) = arg else {
        return Labels::default();
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut empty: Vec<&str> = Vec::new();
    for m in &s.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if m.op == MatchOp::Equal && !pairs.iter().any(|(n, _)| *n == m.name) {
            pairs.push((m.name.clone(), m.value.clone()));
        } else {
            empty.push(&m.name);
        }
    }
    pairs.retain(|(n, _)| !empty.contains(&n.as_str()));
    Labels::new(pairs)
}

impl<'a> Evaluator<'a> {
    fn new(
        engine: &'a Engine,
        node: &Node,
        start_ms: i64,
        end_ms: i64,
        timeout: Duration,
    ) -> Result<Self, QueryError> {
        let deadline = Instant::now() + timeout;
        let lookback_ms = super::duration_ms(engine.opts.lookback_delta);
        let (nsel, nsub) = plan::count_ids(node);
        let mut ranges = vec![(i64::MAX, i64::MIN); nsel];
        collect_ranges(node, start_ms, end_ms, lookback_ms, &mut ranges);
        let mut selectors = Vec::new();
        collect_selectors(node, &mut selectors);
        let mut data: Vec<Vec<LoadedSeries>> = (0..nsel).map(|_| Vec::new()).collect();
        let mut ev = Evaluator {
            opts: &engine.opts,
            lookback_ms,
            data: Vec::new(),
            hints: Vec::new(),
            sub_cache: vec![HashMap::new(); nsub],
            deadline,
            samples: 0,
            cache: LabelCache::default(),
            empty_labels: Arc::new(Labels::default()),
            regexes: HashMap::new(),
            query_start: start_ms,
            group_keys: HashMap::default(),
            grid: None,
            batchable: Default::default(),
            batched: HashMap::default(),
        };
        for s in selectors {
            ev.check_deadline()?;
            let (lo, hi) = ranges[s.id];
            if lo > hi {
                continue;
            }
            let budget = engine.opts.max_samples.saturating_sub(ev.samples);
            let series = engine.source.select_shared(&s.matchers, lo, hi, budget)?;
            if series.len() > engine.opts.max_series {
                return Err(QueryError::Execution(format!(
                    "query selects {} series, more than the limit of {}",
                    series.len(),
                    engine.opts.max_series
                )));
            }
            ev.account(series.iter().map(|s| s.1.len()).sum())?;
            data[s.id] = series
                .into_iter()
                .map(|(labels, points)| LoadedSeries {
                    labels,
                    has_stale: points.iter().any(|p| is_stale_marker(p.value)),
                    points,
                    dropped: None,
                })
                .collect();
        }
        ev.hints = data.iter().map(|d| vec![(0, 0); d.len()]).collect();
        ev.data = data;
        Ok(ev)
    }

    /// Counts samples held by the query against the limit.
    fn account(&mut self, n: usize) -> Result<(), QueryError> {
        self.samples = self.samples.saturating_add(n);
        check_samples(self.samples, self.opts.max_samples)
    }

    fn check_deadline(&self) -> Result<(), QueryError> {
        if Instant::now() > self.deadline {
            return Err(QueryError::Timeout("expression evaluation".into()));
        }
        Ok(())
    }

    /// The instant-vector samples of a selector at `t`, with their sample timestamps.
    fn select_instant(&mut self, s: &Selector, t: i64) -> Vec<(Sample, i64)> {
        let reft = s.at_ms.unwrap_or(t) - s.offset_ms;
        let mut out = Vec::new();
        let hints = &mut self.hints[s.id];
        for (series, hint) in self.data[s.id].iter().zip(hints.iter_mut()) {
            let idx = seek(&series.points, hint.1, |p| p.timestamp_ms <= reft);
            hint.1 = idx;
            if idx == 0 {
                continue;
            }
            let p = series.points[idx - 1];
            if p.timestamp_ms < reft - self.lookback_ms || is_stale_marker(p.value) {
                continue;
            }
            out.push((
                Sample {
                    labels: series.labels.clone(),
                    value: p.value,
                },
                p.timestamp_ms,
            ));
        }
        out
    }

    fn select_range(&mut self, s: &Selector, t: i64) -> Window {
        let reft = s.at_ms.unwrap_or(t) - s.offset_ms;
        let lo = reft - s.range_ms;
        let mut series = Vec::new();
        let hints = &mut self.hints[s.id];
        for (sr, hint) in self.data[s.id].iter().zip(hints.iter_mut()) {
            let mut buf = Vec::new();
            let points = without_stale(window_slice(&sr.points, lo, reft, hint), &mut buf).to_vec();
            if !points.is_empty() {
                series.push(RangeSeries {
                    labels: sr.labels.clone(),
                    points,
                });
            }
        }
        Window {
            series,
            start_ms: lo,
            end_ms: reft,
        }
    }

    /// The result of a batchable aggregation at grid time `t`, computing every step's on
    /// first use; `None` when `t` is off the grid or the node is not batched.
    fn batched_step(
        &mut self,
        a: &plan::Aggregate,
        t: i64,
    ) -> Result<Option<Vec<Sample>>, QueryError> {
        let addr = a as *const plan::Aggregate as usize;
        let Some((start, step, n)) = self.grid else {
            return Ok(None);
        };
        if !self.batchable.contains(&addr) || t < start || (t - start) % step != 0 {
            return Ok(None);
        }
        let k = usize::try_from((t - start) / step).unwrap_or(usize::MAX);
        if k >= n {
            return Ok(None);
        }
        if !self.batched.contains_key(&addr) {
            let r = self.batch_aggregate(a, start, step, n)?;
            self.batched.insert(addr, r);
        }
        Ok(self
            .batched
            .get(&addr)
            .and_then(|r| r.as_ref())
            .map(|steps| steps[k].clone()))
    }

    /// Evaluates `op by (…) (f(sel[r]))` at all `n` steps from `start`, series by series:
    /// each series' window slides forward through its samples once, and its value at each
    /// step goes into its group's accumulator for that step. Values reach each accumulator in
    /// series order, as step-by-step evaluation adds them, and groups come out in order of
    /// their first series with a value at that step, so results are identical.
    fn batch_aggregate(
        &mut self,
        a: &plan::Aggregate,
        start: i64,
        step: i64,
        n: usize,
    ) -> Result<Option<Vec<Vec<Sample>>>, QueryError> {
        let Node::Call(c) = &*a.expr else {
            return Ok(None);
        };
        let (Some(f), Some(Node::Selector(s))) = (simple_range_fn(c.name), c.args.first()) else {
            return Ok(None);
        };
        let op = a.op;
        // The function drops the metric name (except `last_over_time`); that changes a
        // series' group only when `by` names `__name__` (`without` never keeps it).
        let name_matters = c.name != "last_over_time"
            && matches!(&a.grouping, plan::Grouping::By(names) if names.iter().any(|n| n == METRIC_NAME));
        // Each series' group, allocating a key only for a new group.
        let mut group_of: Vec<usize> = Vec::with_capacity(self.data[s.id].len());
        let mut keys: Vec<SharedLabels> = Vec::new();
        let mut index: HashMap<u64, Vec<usize>, FnvBuild> = HashMap::default();
        for sr in self.data[s.id].iter_mut() {
            let labels = if name_matters {
                sr.dropped
                    .get_or_insert_with(|| self.cache.drop_name(&sr.labels))
                    .clone()
            } else {
                sr.labels.clone()
            };
            let hash = group_hash(&labels, &a.grouping);
            let candidates = index.entry(hash).or_default();
            let g = match candidates
                .iter()
                .copied()
                .find(|&g| same_group(&labels, &a.grouping, &keys[g]))
            {
                Some(g) => g,
                None => {
                    keys.push(group_key(&labels, &a.grouping));
                    candidates.push(keys.len() - 1);
                    keys.len() - 1
                }
            };
            group_of.push(g);
        }
        let groups = keys.len();
        if groups.saturating_mul(n) > MAX_BATCH_CELLS {
            return Ok(None);
        }
        // cells[k * groups + g]: the first series with a value and the accumulator.
        let mut cells: Vec<Option<(u32, SimpleAcc)>> = vec![None; groups * n];
        let mut add = |i: usize, k: usize, v: f64| match &mut cells[k * groups + group_of[i]] {
            Some((_, acc)) => acc.add(op, v),
            cell @ None => *cell = Some((i as u32, SimpleAcc::new(op, v))),
        };
        let steps = StepGrid {
            start,
            step,
            n,
            at_ms: s.at_ms,
            offset_ms: s.offset_ms,
            range_ms: s.range_ms,
            f,
            no_resets: counter_without_resets(c.name),
            deadline: self.deadline,
        };
        let series = &self.data[s.id];
        // With two cores and enough work, the second half of the series is computed on
        // another thread into a buffer while this one accumulates the first half; the
        // buffer is then accumulated in series order, so every accumulator receives the
        // same values in the same order as on one thread.
        let split = series.len() / 2;
        let parallel = crate::storage::has_second_core()
            && split >= PARALLEL_MIN_SERIES
            && (series.len() - split).saturating_mul(n) <= MAX_BATCH_CELLS;
        if parallel {
            let (first, second) = series.split_at(split);
            let (done, later) = std::thread::scope(|scope| {
                let other = scope.spawn(|| {
                    let mut vals = vec![0.0; second.len() * n];
                    let mut has = vec![false; second.len() * n];
                    steps.run(second, |i, k, v| {
                        vals[i * n + k] = v;
                        has[i * n + k] = true;
                    })?;
                    Ok::<_, QueryError>((vals, has))
                });
                let done = steps.run(first, &mut add);
                let later = other
                    .join()
                    .unwrap_or_else(|_| Err(QueryError::Execution("query thread failed".into())));
                (done, later)
            });
            done?;
            let (vals, has) = later?;
            for (j, (v, h)) in vals.iter().zip(&has).enumerate() {
                if *h {
                    add(split + j / n, j % n, *v);
                }
            }
        } else {
            steps.run(series, &mut add)?;
        }
        let mut out = Vec::with_capacity(n);
        for k in 0..n {
            let mut present: Vec<(u32, usize, SimpleAcc)> = cells[k * groups..(k + 1) * groups]
                .iter()
                .enumerate()
                .filter_map(|(g, c)| c.map(|(first, acc)| (first, g, acc)))
                .collect();
            present.sort_unstable_by_key(|&(first, _, _)| first);
            out.push(
                present
                    .into_iter()
                    .map(|(_, g, acc)| Sample {
                        labels: keys[g].clone(),
                        value: acc.result(op),
                    })
                    .collect(),
            );
        }
        Ok(Some(out))
    }

    fn eval_subquery(&mut self, sq: &Subquery, t: i64) -> Result<Window, QueryError> {
        let reft = sq.at_ms.unwrap_or(t) - sq.offset_ms;
        let lo = reft - sq.range_ms;
        let step = sq.step_ms;
        // First step-aligned time at or after `lo`.
        let mut it = lo.div_euclid(step) * step;
        if it < lo {
            it += step;
        }
        let mut out = SeriesBuilder::default();
        while it <= reft {
            self.check_deadline()?;
            if !self.sub_cache[sq.id].contains_key(&it) {
                let v = self.eval(&sq.expr, it)?;
                let v = match v {
                    StepValue::Vector(v) => v,
                    StepValue::Scalar(x) => vec![Sample {
                        labels: self.empty_labels.clone(),
                        value: x,
                    }],
                    other => {
                        return Err(QueryError::Execution(format!(
                            "subquery is only allowed on instant vector, got {}",
                            other.type_name()
                        )))
                    }
                };
                self.account(v.len())?;
                self.sub_cache[sq.id].insert(it, v);
            }
            if let Some(v) = self.sub_cache[sq.id].get(&it) {
                for s in v {
                    out.push(&s.labels, it, s.value);
                }
            }
            it += step;
        }
        Ok(Window {
            series: out.finish(),
            start_ms: lo,
            end_ms: reft,
        })
    }

    fn eval(&mut self, node: &Node, t: i64) -> Result<StepValue, QueryError> {
        match node {
            Node::Number(x) => Ok(StepValue::Scalar(*x)),
            Node::Str(s) => Ok(StepValue::Str(s.clone())),
            Node::Neg(e) => match self.eval(e, t)? {
                StepValue::Scalar(x) => Ok(StepValue::Scalar(-x)),
                StepValue::Vector(v) => Ok(StepValue::Vector(
                    v.into_iter()
                        .map(|s| Sample {
                            labels: self.cache.drop_name(&s.labels),
                            value: -s.value,
                        })
                        .collect(),
                )),
                other => Err(QueryError::Execution(format!(
                    "unary minus is not allowed on a {}",
                    other.type_name()
                ))),
            },
            Node::Selector(s) if s.range_ms > 0 => Ok(StepValue::Matrix(self.select_range(s, t))),
            Node::Selector(s) => Ok(StepValue::Vector(
                self.select_instant(s, t)
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect(),
            )),
            Node::Subquery(sq) => Ok(StepValue::Matrix(self.eval_subquery(sq, t)?)),
            Node::Aggregate(a) => {
                if let Some(v) = self.batched_step(a, t)? {
                    return Ok(StepValue::Vector(v));
                }
                let param = match &a.param {
                    None => AggParam::None,
                    Some(p) => match self.eval(p, t)? {
                        StepValue::Scalar(x) => AggParam::Scalar(x),
                        StepValue::Str(s) => AggParam::Str(s),
                        other => {
                            return Err(QueryError::Execution(format!(
                                "expected scalar or string aggregation parameter, got {}",
                                other.type_name()
                            )))
                        }
                    },
                };
                let input = expect_vector(self.eval(&a.expr, t)?, "aggregation")?;
                let keys = self
                    .group_keys
                    .entry(a as *const plan::Aggregate as usize)
                    .or_default();
                Ok(StepValue::Vector(aggregate_cached(
                    a.op,
                    &a.grouping,
                    &param,
                    input,
                    keys,
                )?))
            }
            Node::Binary(b) => {
                let l = self.eval(&b.lhs, t)?;
                let r = self.eval(&b.rhs, t)?;
                let out = match (l, r) {
                    (StepValue::Scalar(l), StepValue::Scalar(r)) => {
                        return Ok(StepValue::Scalar(scalar_binop(b.op, l, r)))
                    }
                    (StepValue::Vector(l), StepValue::Scalar(r)) => {
                        vector_scalar_binop(b.op, l, r, false, b.return_bool, &mut self.cache)
                    }
                    (StepValue::Scalar(l), StepValue::Vector(r)) => {
                        vector_scalar_binop(b.op, r, l, true, b.return_bool, &mut self.cache)
                    }
                    (StepValue::Vector(l), StepValue::Vector(r)) => {
                        if b.op.is_set() {
                            vector_set_binop(b.op, l, r, &b.matching)
                        } else {
                            vector_vector_binop(b.op, l, r, &b.matching, b.return_bool)?
                        }
                    }
                    (l, r) => {
                        return Err(QueryError::Execution(format!(
                            "binary operator between {} and {} is not allowed",
                            l.type_name(),
                            r.type_name()
                        )))
                    }
                };
                if has_duplicate_labelsets(&out) {
                    return Err(QueryError::Execution(
                        "vector cannot contain metrics with the same labelset".into(),
                    ));
                }
                Ok(StepValue::Vector(out))
            }
            Node::Call(c) => {
                let v = self.eval_call(c, t)?;
                if let StepValue::Vector(out) = &v {
                    if !call_output_is_distinct(c) && has_duplicate_labelsets(out) {
                        return Err(QueryError::Execution(
                            "vector cannot contain metrics with the same labelset".into(),
                        ));
                    }
                }
                Ok(v)
            }
        }
    }

    fn arg(&mut self, c: &Call, i: usize, t: i64) -> Result<StepValue, QueryError> {
        match c.args.get(i) {
            Some(a) => self.eval(a, t),
            None => Err(QueryError::BadData(format!(
                "missing argument {} of {}",
                i + 1,
                c.name
            ))),
        }
    }

    /// Applies `op` to every value of the vector argument, dropping the metric name.
    fn map_vector(
        &mut self,
        c: &Call,
        t: i64,
        op: impl Fn(f64) -> f64,
    ) -> Result<StepValue, QueryError> {
        let v = expect_vector(self.arg(c, 0, t)?, c.name)?;
        Ok(StepValue::Vector(
            v.into_iter()
                .map(|s| Sample {
                    labels: self.cache.drop_name(&s.labels),
                    value: op(s.value),
                })
                .collect(),
        ))
    }

    /// Applies `op` to every series of the range-vector argument that has points; the result
    /// drops the metric name except for `last_over_time`.
    fn map_window(
        &mut self,
        c: &Call,
        t: i64,
        idx: usize,
        op: impl Fn(&[Point], i64, i64) -> Option<f64>,
    ) -> Result<StepValue, QueryError> {
        let keep_name = c.name == "last_over_time";
        let mut out = Vec::new();
        // Fast path: a range selector argument is read straight from the loaded series.
        if let Some(Node::Selector(s)) = c.args.get(idx) {
            if s.range_ms > 0 {
                let reft = s.at_ms.unwrap_or(t) - s.offset_ms
                    + predict_linear_window_shift(c, s, t, self.query_start);
                let lo = reft - s.range_ms;
                let mut buf = Vec::new();
                let cache = &mut self.cache;
                let deadline = self.deadline;
                for (i, (sr, hint)) in self.data[s.id]
                    .iter_mut()
                    .zip(self.hints[s.id].iter_mut())
                    .enumerate()
                {
                    if i % 4096 == 4095 && Instant::now() > deadline {
                        return Err(QueryError::Timeout("expression evaluation".into()));
                    }
                    let window = window_slice(&sr.points, lo, reft, hint);
                    let points = if sr.has_stale {
                        without_stale(window, &mut buf)
                    } else {
                        window
                    };
                    if points.is_empty() {
                        continue;
                    }
                    if let Some(value) = op(points, lo, reft) {
                        let labels = if keep_name {
                            sr.labels.clone()
                        } else {
                            sr.dropped
                                .get_or_insert_with(|| cache.drop_name(&sr.labels))
                                .clone()
                        };
                        out.push(Sample { labels, value });
                    }
                }
                return Ok(StepValue::Vector(out));
            }
        }
        let w = expect_matrix(self.arg(c, idx, t)?, c.name)?;
        for s in &w.series {
            if s.points.is_empty() {
                continue;
            }
            if let Some(value) = op(&s.points, w.start_ms, w.end_ms) {
                out.push(Sample {
                    labels: if keep_name {
                        s.labels.clone()
                    } else {
                        self.cache.drop_name(&s.labels)
                    },
                    value,
                });
            }
        }
        Ok(StepValue::Vector(out))
    }

    /// Calendar functions: apply `field` to each value (seconds) or to `time()` with no args.
    fn calendar_fn(
        &mut self,
        c: &Call,
        t: i64,
        field: impl Fn(&f::Calendar) -> i64,
    ) -> Result<StepValue, QueryError> {
        let v = if c.args.is_empty() {
            vec![Sample {
                labels: self.empty_labels.clone(),
                value: t as f64 / 1000.0,
            }]
        } else {
            expect_vector(self.arg(c, 0, t)?, c.name)?
        };
        Ok(StepValue::Vector(
            v.into_iter()
                .map(|s| Sample {
                    labels: self.cache.drop_name(&s.labels),
                    value: f::calendar(s.value).map_or(f64::NAN, |c| field(&c) as f64),
                })
                .collect(),
        ))
    }

    fn eval_call(&mut self, c: &Call, t: i64) -> Result<StepValue, QueryError> {
        if let Some(f) = simple_range_fn(c.name) {
            return self.map_window(c, t, 0, f);
        }
        match c.name {
            "time" => Ok(StepValue::Scalar(t as f64 / 1000.0)),
            "pi" => Ok(StepValue::Scalar(std::f64::consts::PI)),
            "vector" => {
                let x = expect_scalar(self.arg(c, 0, t)?, "vector")?;
                Ok(StepValue::Vector(vec![Sample {
                    labels: self.empty_labels.clone(),
                    value: x,
                }]))
            }
            "scalar" => {
                let v = expect_vector(self.arg(c, 0, t)?, "scalar")?;
                Ok(StepValue::Scalar(if v.len() == 1 {
                    v[0].value
                } else {
                    f64::NAN
                }))
            }
            "abs" => self.map_vector(c, t, f64::abs),
            "ceil" => self.map_vector(c, t, f64::ceil),
            "floor" => self.map_vector(c, t, f64::floor),
            "sqrt" => self.map_vector(c, t, f64::sqrt),
            "exp" => self.map_vector(c, t, f64::exp),
            "ln" => self.map_vector(c, t, f64::ln),
            "log2" => self.map_vector(c, t, f::go_log2),
            "log10" => self.map_vector(c, t, f::go_log10),
            "sin" => self.map_vector(c, t, f64::sin),
            "cos" => self.map_vector(c, t, f64::cos),
            "tan" => self.map_vector(c, t, f64::tan),
            "asin" => self.map_vector(c, t, f64::asin),
            "acos" => self.map_vector(c, t, f64::acos),
            "atan" => self.map_vector(c, t, f64::atan),
            "sinh" => self.map_vector(c, t, f64::sinh),
            "cosh" => self.map_vector(c, t, f64::cosh),
            "tanh" => self.map_vector(c, t, f64::tanh),
            "asinh" => self.map_vector(c, t, f64::asinh),
            "acosh" => self.map_vector(c, t, f64::acosh),
            "atanh" => self.map_vector(c, t, f64::atanh),
            "deg" => self.map_vector(c, t, |v| v * 180.0 / std::f64::consts::PI),
            "rad" => self.map_vector(c, t, |v| v * std::f64::consts::PI / 180.0),
            "sgn" => self.map_vector(c, t, |x| {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    x
                }
            }),
            "round" => {
                let to_nearest = if c.args.len() > 1 {
                    expect_scalar(self.arg(c, 1, t)?, "round")?
                } else {
                    1.0
                };
                let inv = 1.0 / to_nearest;
                self.map_vector(c, t, move |x| (x * inv + 0.5).floor() / inv)
            }
            "clamp" => {
                let min = expect_scalar(self.arg(c, 1, t)?, "clamp")?;
                let max = expect_scalar(self.arg(c, 2, t)?, "clamp")?;
                if max < min {
                    let _ = self.arg(c, 0, t)?;
                    return Ok(StepValue::Vector(Vec::new()));
                }
                self.map_vector(c, t, move |x| go_max(min, go_min(max, x)))
            }
            "clamp_min" => {
                let min = expect_scalar(self.arg(c, 1, t)?, "clamp_min")?;
                self.map_vector(c, t, move |x| go_max(min, x))
            }
            "clamp_max" => {
                let max = expect_scalar(self.arg(c, 1, t)?, "clamp_max")?;
                self.map_vector(c, t, move |x| go_min(max, x))
            }
            "minute" => self.calendar_fn(c, t, |c| c.minute),
            "hour" => self.calendar_fn(c, t, |c| c.hour),
            "day_of_week" => self.calendar_fn(c, t, |c| c.weekday),
            "day_of_month" => self.calendar_fn(c, t, |c| c.day),
            "day_of_year" => self.calendar_fn(c, t, |c| c.yday),
            "days_in_month" => self.calendar_fn(c, t, |c| c.days_in_month),
            "month" => self.calendar_fn(c, t, |c| c.month),
            "year" => self.calendar_fn(c, t, |c| c.year),
            "timestamp" => {
                if let Some(Node::Selector(s)) = c.args.first() {
                    if s.range_ms == 0 {
                        let selected = self.select_instant(s, t);
                        return Ok(StepValue::Vector(
                            selected
                                .into_iter()
                                .map(|(s, ts)| Sample {
                                    labels: self.cache.drop_name(&s.labels),
                                    value: ts as f64 / 1000.0,
                                })
                                .collect(),
                        ));
                    }
                }
                self.map_vector(c, t, move |_| t as f64 / 1000.0)
            }
            "sort" | "sort_desc" => {
                let mut v = expect_vector(self.arg(c, 0, t)?, c.name)?;
                let desc = c.name == "sort_desc";
                v.sort_by(|a, b| {
                    use std::cmp::Ordering;
                    match (a.value.is_nan(), b.value.is_nan()) {
                        (true, true) => Ordering::Equal,
                        // NaN sorts to the bottom in both directions, as in Prometheus.
                        (true, false) => Ordering::Greater,
                        (false, true) => Ordering::Less,
                        _ if desc => b.value.partial_cmp(&a.value).unwrap_or(Ordering::Equal),
                        _ => a.value.partial_cmp(&b.value).unwrap_or(Ordering::Equal),
                    }
                });
                Ok(StepValue::Vector(v))
            }
            "absent" => {
                let v = expect_vector(self.arg(c, 0, t)?, "absent")?;
                if !v.is_empty() {
                    return Ok(StepValue::Vector(Vec::new()));
                }
                Ok(StepValue::Vector(vec![Sample {
                    labels: Arc::new(c.args.first().map(absent_labels).unwrap_or_default()),
                    value: 1.0,
                }]))
            }
            "absent_over_time" => {
                let w = expect_matrix(self.arg(c, 0, t)?, "absent_over_time")?;
                if w.series.iter().any(|s| !s.points.is_empty()) {
                    return Ok(StepValue::Vector(Vec::new()));
                }
                Ok(StepValue::Vector(vec![Sample {
                    labels: Arc::new(c.args.first().map(absent_labels).unwrap_or_default()),
                    value: 1.0,
                }]))
            }
            "holt_winters" | "double_exponential_smoothing" => {
                let sf = expect_scalar(self.arg(c, 1, t)?, c.name)?;
                let tf = expect_scalar(self.arg(c, 2, t)?, c.name)?;
                if !(sf > 0.0 && sf < 1.0) {
                    return Err(QueryError::Execution(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                    )));
                }
                if !(tf > 0.0 && tf < 1.0) {
                    return Err(QueryError::Execution(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                    )));
                }
                self.map_window(c, t, 0, move |p, _, _| f::holt_winters(p, sf, tf))
            }
            // Native-histogram functions: only float samples are stored, and Prometheus
            // ignores float samples in these, so the result is always empty.
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
            | "histogram_stdvar" | "histogram_fraction" => {
                for i in 0..c.args.len() {
                    self.arg(c, i, t)?;
                }
                Ok(StepValue::Vector(Vec::new()))
            }
            "label_replace" => self.label_replace(c, t),
            "label_join" => self.label_join(c, t),
            "histogram_quantile" => self.histogram_quantile(c, t),
            "predict_linear" => {
                let d = expect_scalar(self.arg(c, 1, t)?, "predict_linear")?;
                // Prometheus fits around the evaluation time, not the offset window end.
                self.map_window(c, t, 0, move |p, _, _| {
                    (p.len() >= 2).then(|| {
                        let (slope, intercept) = f::linear_regression(p, t);
                        slope * d + intercept
                    })
                })
            }
            "quantile_over_time" => {
                let q = expect_scalar(self.arg(c, 0, t)?, "quantile_over_time")?;
                self.map_window(c, t, 1, move |p, _, _| {
                    let mut vals: Vec<f64> = p.iter().map(|p| p.value).collect();
                    Some(f::quantile(q, &mut vals))
                })
            }
            other => Err(QueryError::BadData(format!(
                "function {other:?} is not supported by this engine"
            ))),
        }
    }

    fn label_replace(&mut self, c: &Call, t: i64) -> Result<StepValue, QueryError> {
        let v = expect_vector(self.arg(c, 0, t)?, "label_replace")?;
        let dst = expect_str(self.arg(c, 1, t)?, "label_replace")?;
        let repl = expect_str(self.arg(c, 2, t)?, "label_replace")?;
        let src = expect_str(self.arg(c, 3, t)?, "label_replace")?;
        let re_src = expect_str(self.arg(c, 4, t)?, "label_replace")?;
        let re = match self.regexes.get(&re_src) {
            Some(re) => re.clone(),
            None => {
                let re = Regex::new(&format!("^(?s:{re_src})$")).map_err(|e| {
                    QueryError::Execution(format!(
                        "invalid regular expression in label_replace(): {re_src}: {e}"
                    ))
                })?;
                self.regexes.insert(re_src.clone(), re.clone());
                re
            }
        };
        check_label_name(&dst, "destination", "label_replace")?;
        let mut out = Vec::with_capacity(v.len());
        for mut s in v {
            let value = s.labels.get(&src).unwrap_or("").to_string();
            if let Some(caps) = re.captures(&value) {
                let mut res = String::new();
                caps.expand(&repl, &mut res);
                Arc::make_mut(&mut s.labels).set(&dst, &res);
            }
            out.push(s);
        }
        Ok(StepValue::Vector(out))
    }

    fn label_join(&mut self, c: &Call, t: i64) -> Result<StepValue, QueryError> {
        let v = expect_vector(self.arg(c, 0, t)?, "label_join")?;
        let dst = expect_str(self.arg(c, 1, t)?, "label_join")?;
        let sep = expect_str(self.arg(c, 2, t)?, "label_join")?;
        let mut srcs = Vec::new();
        for i in 3..c.args.len() {
            let s = expect_str(self.arg(c, i, t)?, "label_join")?;
            check_label_name(&s, "source", "label_join")?;
            srcs.push(s);
        }
        check_label_name(&dst, "destination", "label_join")?;
        let mut out = Vec::with_capacity(v.len());
        for mut s in v {
            let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
            let joined = joined.join(&sep);
            Arc::make_mut(&mut s.labels).set(&dst, &joined);
            out.push(s);
        }
        Ok(StepValue::Vector(out))
    }

    fn histogram_quantile(&mut self, c: &Call, t: i64) -> Result<StepValue, QueryError> {
        let q = expect_scalar(self.arg(c, 0, t)?, "histogram_quantile")?;
        let v = expect_vector(self.arg(c, 1, t)?, "histogram_quantile")?;
        let mut groups: Vec<(Labels, Vec<f::Bucket>)> = Vec::new();
        let mut index: HashMap<Labels, usize, FnvBuild> = HashMap::default();
        for s in v {
            let Some(le) = s.labels.get("le") else {
                continue;
            };
            let Some(upper_bound) = parse_go_float(le) else {
                continue;
            };
            let mut key = (*s.labels).clone();
            key.set(METRIC_NAME, "");
            key.set("le", "");
            let i = *index.entry(key.clone()).or_insert_with(|| {
                groups.push((key, Vec::new()));
                groups.len() - 1
            });
            groups[i].1.push(f::Bucket {
                upper_bound,
                count: s.value,
            });
        }
        Ok(StepValue::Vector(
            groups
                .into_iter()
                .map(|(labels, mut buckets)| Sample {
                    labels: Arc::new(labels),
                    value: f::bucket_quantile(q, &mut buckets),
                })
                .collect(),
        ))
    }
}

/// What a range function computes from one window: the points (sorted, no stale markers)
/// and the window's bounds.
type WindowFn = fn(&[Point], i64, i64) -> Option<f64>;

/// The range functions whose only argument is the range vector.
fn simple_range_fn(name: &str) -> Option<WindowFn> {
    Some(match name {
        "rate" => |p, lo, hi| f::extrapolated_rate(p, lo, hi, true, true),
        "increase" => |p, lo, hi| f::extrapolated_rate(p, lo, hi, true, false),
        "delta" => |p, lo, hi| f::extrapolated_rate(p, lo, hi, false, false),
        "irate" => |p, _, _| f::instant_value(p, true),
        "idelta" => |p, _, _| f::instant_value(p, false),
        "deriv" => |p, _, _| (p.len() >= 2).then(|| f::linear_regression(p, p[0].timestamp_ms).0),
        "resets" => |p, _, _| Some(p.windows(2).filter(|w| w[1].value < w[0].value).count() as f64),
        "changes" => |p, _, _| {
            Some(
                p.windows(2)
                    .filter(|w| {
                        w[1].value != w[0].value && !(w[1].value.is_nan() && w[0].value.is_nan())
                    })
                    .count() as f64,
            )
        },
        "avg_over_time" => |p, _, _| Some(f::avg_over_time(p)),
        "sum_over_time" => |p, _, _| Some(f::sum_over_time(p)),
        "min_over_time" => |p, _, _| Some(f::min_over_time(p)),
        "max_over_time" => |p, _, _| Some(f::max_over_time(p)),
        "count_over_time" => |p, _, _| Some(p.len() as f64),
        "last_over_time" => |p, _, _| p.last().map(|p| p.value),
        "present_over_time" => |_, _, _| Some(1.0),
        "stddev_over_time" => |p, _, _| Some(f::stdvar_over_time(p).sqrt()),
        "stdvar_over_time" => |p, _, _| Some(f::stdvar_over_time(p)),
        _ => return None,
    })
}

/// Most accumulator cells (steps × groups) a series-by-series aggregation may hold; larger
/// ones are evaluated step by step. Also the most values (series × steps) it buffers from
/// a second thread.
const MAX_BATCH_CELLS: usize = 4_000_000;

/// Fewest series in each half before a series-by-series aggregation uses a second thread.
const PARALLEL_MIN_SERIES: usize = 256;

/// `rate` or `increase` without the search for counter resets, for series that have none.
fn counter_without_resets(name: &str) -> Option<WindowFn> {
    match name {
        "rate" => Some(|p, lo, hi| f::extrapolated_rate_scan(p, lo, hi, true, true, false)),
        "increase" => Some(|p, lo, hi| f::extrapolated_rate_scan(p, lo, hi, true, false, false)),
        _ => None,
    }
}

/// A range function over a selector's window at each step of a range query's grid.
struct StepGrid {
    start: i64,
    step: i64,
    n: usize,
    at_ms: Option<i64>,
    offset_ms: i64,
    range_ms: i64,
    f: WindowFn,
    /// The same function for series without counter resets, when cheaper.
    no_resets: Option<WindowFn>,
    deadline: Instant,
}

impl StepGrid {
    /// Calls `emit(i, k, v)` for the value `v` of series `i` of `series` at step `k`, series
    /// by series and step by step, each series' window sliding forward once.
    fn run(
        &self,
        series: &[LoadedSeries],
        mut emit: impl FnMut(usize, usize, f64),
    ) -> Result<(), QueryError> {
        let mut buf = Vec::new();
        for (i, sr) in series.iter().enumerate() {
            if i % 1024 == 1023 && Instant::now() > self.deadline {
                return Err(QueryError::Timeout("expression evaluation".into()));
            }
            // The reset search adds something only where a value is below the one before
            // it, or (starting from 0) negative.
            let f = match self.no_resets {
                Some(fast)
                    if !sr.has_stale
                        && !sr.points.iter().any(|p| p.value < 0.0)
                        && !sr.points.windows(2).any(|w| w[1].value < w[0].value) =>
                {
                    fast
                }
                _ => self.f,
            };
            let mut hint = (0, 0);
            for k in 0..self.n {
                let t = self.start + k as i64 * self.step;
                let reft = self.at_ms.unwrap_or(t) - self.offset_ms;
                let lo = reft - self.range_ms;
                let window = window_slice(&sr.points, lo, reft, &mut hint);
                let points = if sr.has_stale {
                    without_stale(window, &mut buf)
                } else {
                    window
                };
                if points.is_empty() {
                    continue;
                }
                if let Some(v) = f(points, lo, reft) {
                    emit(i, k, v);
                }
            }
        }
        Ok(())
    }
}

/// Aggregations of a simple range function over a selector, `sum by (job) (rate(x[5m]))`,
/// outside any subquery: in a range query these are evaluated series by series over all
/// steps at once ([`Evaluator::batch_aggregate`]), each series' samples read front to back.
fn collect_batchable(node: &Node, out: &mut std::collections::HashSet<usize, FnvBuild>) {
    match node {
        Node::Number(_) | Node::Str(_) | Node::Selector(_) | Node::Subquery(_) => {}
        Node::Neg(e) => collect_batchable(e, out),
        Node::Call(c) => c.args.iter().for_each(|a| collect_batchable(a, out)),
        Node::Binary(b) => {
            collect_batchable(&b.lhs, out);
            collect_batchable(&b.rhs, out);
        }
        Node::Aggregate(a) => {
            if let Node::Call(c) = &*a.expr {
                if a.param.is_none()
                    && SimpleAcc::supports(a.op)
                    && simple_range_fn(c.name).is_some()
                    && c.args.len() == 1
                    && call_output_is_distinct(c)
                {
                    out.insert(a as *const plan::Aggregate as usize);
                }
            }
            collect_batchable(&a.expr, out);
            if let Some(p) = &a.param {
                collect_batchable(p, out);
            }
        }
    }
}

/// Functions over a range vector that give at most one sample per input series.
const RANGE_FUNCTIONS: &[&str] = &[
    "rate",
    "increase",
    "delta",
    "irate",
    "idelta",
    "deriv",
    "predict_linear",
    "resets",
    "changes",
    "avg_over_time",
    "sum_over_time",
    "min_over_time",
    "max_over_time",
    "count_over_time",
    "last_over_time",
    "present_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "quantile_over_time",
    "holt_winters",
    "double_exponential_smoothing",
];

/// True when a call's result can never hold two samples with one label set, so the
/// per-step duplicate check can be skipped: `histogram_quantile` (one sample per group),
/// and a range function over a selector with `__name__="…"`, whose series differ in
/// labels other than the name (which the function drops), or `last_over_time`, which keeps
/// the series' own labels.
fn call_output_is_distinct(c: &Call) -> bool {
    if c.name == "histogram_quantile" {
        return true;
    }
    if !RANGE_FUNCTIONS.contains(&c.name) {
        return false;
    }
    let idx = usize::from(c.name == "quantile_over_time");
    match c.args.get(idx) {
        Some(Node::Selector(s)) if s.range_ms > 0 => {
            c.name == "last_over_time"
                || s.matchers
                    .iter()
                    .any(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal)
        }
        _ => false,
    }
}

/// Prometheus treats `predict_linear` as unsafe for the `@` modifier, so it is not evaluated
/// once for the whole query; but its `@` selector has already been turned into an offset
/// relative to the query start. The effect (checked against Prometheus 2.42 by the
/// differential test; the Thanos engine reproduces it too) is that at step `t` the window ends
/// at `@ - offset + (t - start)`, while the data read stays limited to what the `@` window
/// needs (`collect_ranges`), so later steps see fewer samples and eventually none.
fn predict_linear_window_shift(c: &Call, s: &Selector, t: i64, query_start: i64) -> i64 {
    if c.name == "predict_linear" && s.at_ms.is_some() {
        t - query_start
    } else {
        0
    }
}

/// Go's `math.Max`: NaN if either is NaN.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN if either is NaN.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Parses a float as Go's `strconv.ParseFloat` does for label values (`+Inf`, `Inf`, `NaN`,
/// case-insensitive).
pub fn parse_go_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "+inf" | "inf" | "+infinity" | "infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    s.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::source::MemSource;

    #[test]
    fn seek_agrees_with_partition_point_from_any_hint() {
        let pts: Vec<Point> = (0..50)
            .map(|i| Point {
                timestamp_ms: i * 10,
                value: 0.0,
            })
            .collect();
        for hint in [0, 1, 7, 25, 49, 50, 99] {
            for t in [-5, 0, 5, 10, 245, 250, 489, 490, 491, 1000] {
                let want = pts.partition_point(|p| p.timestamp_ms <= t);
                assert_eq!(
                    seek(&pts, hint, |p| p.timestamp_ms <= t),
                    want,
                    "hint {hint} t {t}"
                );
                let want = pts.partition_point(|p| p.timestamp_ms < t);
                assert_eq!(
                    seek(&pts, hint, |p| p.timestamp_ms < t),
                    want,
                    "hint {hint} t {t}"
                );
            }
        }
        assert_eq!(seek(&[], 3, |p: &Point| p.timestamp_ms < 1), 0);
    }

    const M: i64 = 60_000;

    use vigil_shared::model::Series;

    fn series(name: &str, pairs: &[(&str, &str)], pts: &[(i64, f64)]) -> Series {
        Series {
            labels: Labels::metric(name, pairs),
            points: pts
                .iter()
                .map(|&(t, v)| Point {
                    timestamp_ms: t,
                    value: v,
                })
                .collect(),
        }
    }

    /// `0+10x10` at 5m intervals, Prometheus test-file style.
    fn linear(start: f64, step: f64, n: usize, from_ms: i64) -> Vec<(i64, f64)> {
        (0..=n)
            .map(|i| (from_ms + i as i64 * 5 * M, start + step * i as f64))
            .collect()
    }

    fn engine(series: Vec<Series>) -> Engine {
        Engine::new(Arc::new(MemSource::new(series)), QueryOptions::default())
    }

    fn vector(e: &Engine, q: &str, t: i64) -> Vec<(Labels, f64)> {
        match e.instant(q, t, None).unwrap() {
            QueryValue::Vector { samples, .. } => samples
                .into_iter()
                .map(|s| ((*s.labels).clone(), s.value))
                .collect(),
            other => panic!("{q}: not a vector: {other:?}"),
        }
    }

    fn one(e: &Engine, q: &str, t: i64) -> f64 {
        let v = vector(e, q, t);
        assert_eq!(v.len(), 1, "{q}: {v:?}");
        v[0].1
    }

    #[test]
    fn lookback_is_inclusive_and_five_minutes() {
        let e = engine(vec![series("m", &[], &[(0, 1.0)])]);
        assert_eq!(one(&e, "m", 5 * M), 1.0);
        assert!(vector(&e, "m", 5 * M + 1).is_empty());
        assert!(vector(&e, "m", -1).is_empty());
    }

    #[test]
    fn lookback_delta_is_configurable() {
        let e = Engine::new(
            Arc::new(MemSource::new(vec![series("m", &[], &[(0, 1.0)])])),
            QueryOptions {
                lookback_delta: Duration::from_secs(60),
                ..QueryOptions::default()
            },
        );
        assert_eq!(one(&e, "m", M), 1.0);
        assert!(vector(&e, "m", M + 1).is_empty());
    }

    #[test]
    fn stale_marker_ends_a_series() {
        let stale = f64::from_bits(crate::query::value::STALE_NAN_BITS);
        let e = engine(vec![series(
            "m",
            &[],
            &[(0, 1.0), (10_000, 2.0), (20_000, stale)],
        )]);
        assert_eq!(one(&e, "m", 15_000), 2.0);
        assert!(vector(&e, "m", 20_000).is_empty());
        assert!(vector(&e, "m", 60_000).is_empty());
        assert_eq!(one(&e, "count_over_time(m[1m])", 60_000), 2.0);
    }

    #[test]
    fn increase_matches_prometheus_test_file() {
        // functions.test: http_requests{path="/foo"} 0+10x10, {path="/bar"} 0+10x5 0+10x5.
        let mut bar = linear(0.0, 10.0, 5, 0);
        bar.extend(linear(0.0, 10.0, 5, 30 * M));
        let e = engine(vec![
            series(
                "http_requests",
                &[("path", "/foo")],
                &linear(0.0, 10.0, 10, 0),
            ),
            series("http_requests", &[("path", "/bar")], &bar),
        ]);
        let v = vector(&e, "increase(http_requests[50m])", 50 * M);
        assert_eq!(v[0].0.get("path"), Some("/bar"));
        assert_eq!(v[0].1, 90.0);
        assert_eq!(v[1].1, 100.0);
        assert_eq!(
            v[1].0.get("__name__"),
            None,
            "functions drop the metric name"
        );
        // rate = increase / range.
        let r = vector(&e, "rate(http_requests{path=\"/foo\"}[50m])", 50 * M);
        assert!((r[0].1 - 100.0 / 3000.0).abs() < 1e-15);
        // resets and changes.
        assert_eq!(
            one(&e, "resets(http_requests{path=\"/bar\"}[1h])", 60 * M),
            1.0
        );
        assert_eq!(
            one(&e, "changes(http_requests{path=\"/foo\"}[1h])", 60 * M),
            10.0
        );
    }

    #[test]
    fn offset_and_at_move_the_reference_time() {
        let e = engine(vec![series("m", &[], &linear(0.0, 1.0, 12, 0))]);
        assert_eq!(one(&e, "m offset 10m", 30 * M), 4.0);
        assert_eq!(one(&e, "m @ 600", 30 * M), 2.0);
        assert_eq!(one(&e, "m @ 600 offset 5m", 30 * M), 1.0);
        assert_eq!(one(&e, "m offset -5m", 30 * M), 7.0);
        // @ end() in a range query pins every step to the end.
        match e.range("m @ end()", 0, 60 * M, 30 * M, None).unwrap() {
            QueryValue::Matrix(m) => {
                let vals: Vec<f64> = m[0].points.iter().map(|p| p.value).collect();
                assert_eq!(vals, vec![12.0, 12.0, 12.0]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn predict_linear_with_at_slides_like_prometheus() {
        let pts: Vec<(i64, f64)> = (0..=60).map(|i| (i * M, i as f64)).collect();
        let e = engine(vec![series("m", &[], &pts)]);
        // Only data inside the `@` window [5m, 10m] is read; the window slides one step per
        // step past it, so from the fifth step on fewer than two samples remain.
        match e
            .range("predict_linear(m[5m] @ 600, 0)", 0, 10 * M, M, None)
            .unwrap()
        {
            QueryValue::Matrix(m) => {
                let ts: Vec<i64> = m[0].points.iter().map(|p| p.timestamp_ms).collect();
                assert_eq!(ts, vec![0, M, 2 * M, 3 * M, 4 * M]);
                // At step 0 the line through (5m,5)..(10m,10) is evaluated at t = 0.
                assert!((m[0].points[0].value - 0.0).abs() < 1e-9);
            }
            other => panic!("{other:?}"),
        }
        // Without `@` nothing slides.
        assert!((one(&e, "predict_linear(m[5m], 60)", 10 * M) - 11.0).abs() < 1e-9);
    }

    #[test]
    fn subqueries_evaluate_at_step_aligned_times() {
        let e = engine(vec![series("m", &[], &linear(0.0, 1.0, 12, 0))]);
        // [10m:5m] at 27m: inner steps at 20m and 25m (values 4 and 5).
        assert_eq!(one(&e, "sum_over_time(m[10m:5m])", 27 * M), 9.0);
        assert_eq!(one(&e, "count_over_time(m[10m:5m])", 27 * M), 2.0);
        // At exactly 30m the window [20m, 30m] is closed: three steps.
        assert_eq!(one(&e, "count_over_time(m[10m:5m])", 30 * M), 3.0);
        assert_eq!(one(&e, "max_over_time(m[10m:5m] offset 10m)", 30 * M), 4.0);
    }

    #[test]
    fn aggregation_and_matching_errors_are_execution_errors() {
        let e = engine(vec![
            series("a", &[("job", "x"), ("i", "1")], &[(0, 1.0)]),
            series("a", &[("job", "x"), ("i", "2")], &[(0, 2.0)]),
            series("b", &[("job", "x"), ("i", "1")], &[(0, 1.0)]),
        ]);
        assert!(matches!(
            e.instant("a + on(job) a", 0, None),
            Err(QueryError::Execution(_))
        ));
        assert!(matches!(
            e.instant("abs({job=\"x\", i=\"1\"})", 0, None),
            Err(QueryError::Execution(_))
        ));
        assert_eq!(one(&e, "sum(a) / count(a)", 0), 1.5);
        let joined = vector(&e, "a * on(i) group_left b", 0);
        assert_eq!(joined.len(), 1);
    }

    #[test]
    fn range_query_shapes_and_parameter_errors() {
        let e = engine(vec![series("m", &[("x", "1")], &linear(0.0, 1.0, 4, 0))]);
        match e.range("m * 2", 0, 20 * M, 5 * M, None).unwrap() {
            QueryValue::Matrix(m) => {
                assert_eq!(m.len(), 1);
                assert_eq!(m[0].labels.get("__name__"), None);
                assert_eq!(m[0].points.len(), 5);
                assert_eq!(m[0].points[4].value, 8.0);
            }
            other => panic!("{other:?}"),
        }
        match e.range("time()", 0, 10_000, 5000, None).unwrap() {
            QueryValue::Matrix(m) => assert_eq!(m[0].points[2].value, 10.0),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            e.range("m", 10, 0, 1, None),
            Err(QueryError::BadData(_))
        ));
        assert!(matches!(
            e.range("m", 0, 10, 0, None),
            Err(QueryError::BadData(_))
        ));
        let err = e.range("m", 0, 11_001, 1, None).unwrap_err().to_string();
        assert!(err.contains("maximum resolution of 11,000 points"), "{err}");
        assert!(
            e.range("m", 0, 11_000, 1, None).is_ok(),
            "11,001 points are allowed"
        );
        assert!(matches!(
            e.range("m[5m]", 0, 10, 1, None),
            Err(QueryError::BadData(_))
        ));
        assert!(matches!(
            e.instant("m[5m]", 10 * M, None),
            Ok(QueryValue::Matrix(_))
        ));
        assert!(matches!(
            e.instant("\"s\"", 0, None),
            Ok(QueryValue::Str { .. })
        ));
    }

    #[test]
    fn sample_limit_and_timeout_fail_cleanly() {
        let pts: Vec<(i64, f64)> = (0..1000).map(|i| (i * 15_000, i as f64)).collect();
        let source = Arc::new(MemSource::new(vec![
            series("m", &[("i", "1")], &pts),
            series("m", &[("i", "2")], &pts),
        ]));
        let limited = Engine::new(
            source.clone(),
            QueryOptions {
                max_samples: 1500,
                ..QueryOptions::default()
            },
        );
        let err = limited
            .instant("sum_over_time(m[5h])", 15_000_000, None)
            .unwrap_err();
        assert!(matches!(err, QueryError::Execution(_)), "{err}");
        assert!(err.to_string().contains("too many samples"));
        let few_series = Engine::new(
            source.clone(),
            QueryOptions {
                max_series: 1,
                ..QueryOptions::default()
            },
        );
        assert!(matches!(
            few_series.instant("m", 0, None),
            Err(QueryError::Execution(_))
        ));
        let e = Engine::new(source, QueryOptions::default());
        let err = e
            .range("m", 0, 15_000_000, 15_000, Some(Duration::ZERO))
            .unwrap_err();
        assert!(matches!(err, QueryError::Timeout(_)), "{err}");
        assert_eq!(err.error_type(), "timeout");
    }

    /// The series-by-series path (two threads, reset search skipped where there is no
    /// reset) against step-by-step evaluation of the same expression (`* 1` keeps values
    /// and labels but is not batched): equal bit for bit on counters with and without
    /// resets, stale markers, NaN and negative values, over enough series for two threads.
    #[test]
    fn batched_range_aggregation_matches_step_by_step_bit_for_bit() {
        let stale = f64::from_bits(crate::query::value::STALE_NAN_BITS);
        let mut all = Vec::new();
        let mut rnd = vigil_testkit::xorshift64(0x2545_f491_4f6c_dd1d);
        for i in 0..(2 * PARALLEL_MIN_SERIES + 37) {
            let job = ["a", "b", "c"][i % 3];
            let inst = format!("i{i}");
            let mut v = 0.0;
            let pts: Vec<(i64, f64)> = (0..120)
                .map(|k| {
                    v += (rnd() % 1000) as f64 / 7.0;
                    let x = match (i % 7, rnd() % 40) {
                        (1, 0) => {
                            v = 3.0; // a counter reset
                            v
                        }
                        (2, 1) => stale,
                        (3, 2) => f64::NAN,
                        (4, _) => -v,
                        _ => v,
                    };
                    (k * 15_000 + (i as i64 % 5) * 1000, x)
                })
                .collect();
            all.push(series(
                "c_total",
                &[("job", job), ("instance", &inst)],
                &pts,
            ));
        }
        let e = engine(all);
        let bits = |q: &str| -> Vec<(Labels, Vec<(i64, u64)>)> {
            match e.range(q, 300_000, 1_800_000, 15_000, None).unwrap() {
                QueryValue::Matrix(m) => m
                    .into_iter()
                    .map(|s| {
                        let pts = s
                            .points
                            .iter()
                            .map(|p| (p.timestamp_ms, p.value.to_bits()))
                            .collect();
                        ((*s.labels).clone(), pts)
                    })
                    .collect(),
                other => panic!("{q}: {other:?}"),
            }
        };
        for f in [
            "rate",
            "increase",
            "delta",
            "max_over_time",
            "avg_over_time",
        ] {
            for agg in [
                "sum by (job)",
                "avg without (instance)",
                "max",
                "count by (job)",
                "stddev by (job)",
                "stdvar",
            ] {
                let batched = bits(&format!("{agg} ({f}(c_total[2m]))"));
                let stepwise = bits(&format!("{agg} ({f}(c_total[2m]) * 1)"));
                assert!(!batched.is_empty(), "{agg} {f}");
                assert_eq!(batched, stepwise, "{agg} ({f}(…))");
            }
        }
    }
}
