//! `vigil-collector check rules` and `vigil-collector test rules`: promtool's commands with
//! promtool's output. `check rules` validates rule files and lints duplicate rules;
//! `test rules` runs promtool's unit-test files unchanged (`rule_files`,
//! `evaluation_interval`, `group_eval_order`, `tests[]` with `interval`, `input_series` in the
//! `a+bxN` notation, `alert_rule_test`, `promql_expr_test`, `external_labels`,
//! `external_url`), loading input series into memory and evaluating every group at every
//! evaluation interval from 0 to the last `eval_time`, exactly as promtool does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use vigil_shared::model::{Labels, Point, Series};

use super::eval::{AlertState, Group, GroupContext, Rule};
use super::file::{de_duration, load_file, RuleFile};
use crate::gocompat::go_quote;
use crate::gotemplate::go_float_e;
use crate::query::source::SeriesSource;
use crate::query::value::STALE_NAN_BITS;
use crate::query::{Engine, MemSource, QueryOptions, QueryValue};
use crate::storage::matcher::MatchOp;

fn missing_path(files: &[PathBuf]) -> Option<(String, String, i32)> {
    files.iter().find(|f| !f.exists()).map(|f| {
        (
            String::new(),
            format!(
                "promtool: error: path '{}' does not exist, try --help\n",
                f.display()
            ),
            1,
        )
    })
}

/// `check rules FILE...`: returns (stdout, stderr, exit code) as promtool prints them.
pub fn check_rules_command(files: &[PathBuf]) -> (String, String, i32) {
    if let Some(r) = missing_path(files) {
        return r;
    }
    let mut out = String::new();
    let mut err = String::new();
    let mut has_errors = false;
    for f in files {
        let _ = writeln!(out, "Checking {}", f.display());
        match load_file(f) {
            Ok(rf) => {
                let dups = duplicate_rules(&rf);
                if dups.is_empty() {
                    let n: usize = rf.groups.iter().map(|g| g.rules.len()).sum();
                    let _ = writeln!(out, "  SUCCESS: {n} rules found");
                } else {
                    err.push_str("  FAILED:\n");
                    let _ = writeln!(err, "lint error {} duplicate rule(s) found.", dups.len());
                    for (metric, labels) in dups {
                        let _ = writeln!(err, "Metric: {metric}\nLabel(s):");
                        for (k, v) in labels {
                            let _ = writeln!(err, "\t{k}: {v}");
                        }
                    }
                    err.push_str("Might cause inconsistency while recording expressions\n");
                }
            }
            Err(e) => {
                has_errors = true;
                err.push_str("  FAILED:\n");
                for line in e.0 {
                    err.push_str(&line);
                    err.push('\n');
                }
            }
        }
        out.push('\n');
    }
    (out, err, i32::from(has_errors))
}

/// Rules with the same name and labels (promtool's `duplicate-rules` lint), each reported
/// once, sorted.
fn duplicate_rules(rf: &RuleFile) -> Vec<(String, BTreeMap<String, String>)> {
    let mut all: Vec<(String, BTreeMap<String, String>)> = rf
        .groups
        .iter()
        .flat_map(|g| g.rules.iter())
        .map(|r| (r.name().to_string(), r.labels.clone()))
        .collect();
    all.sort();
    let mut dups: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for w in all.windows(2) {
        if w[0] == w[1] && dups.last() != Some(&w[1]) {
            dups.push(w[1].clone());
        }
    }
    dups
}

/// `test rules TEST.yml...`: returns (stdout, stderr, exit code) as promtool prints them.
pub fn test_rules_command(files: &[PathBuf]) -> (String, String, i32) {
    if let Some(r) = missing_path(files) {
        return r;
    }
    let mut out = String::new();
    let mut err = String::new();
    let mut failed = false;
    for f in files {
        let _ = writeln!(out, "Unit Testing:  {}", f.display());
        let errs = run_unit_test_file(f, &mut err);
        if errs.is_empty() {
            out.push_str("  SUCCESS\n");
        } else {
            failed = true;
            err.push_str("  FAILED:\n");
            for e in errs {
                err.push_str(&e);
                err.push('\n');
                out.push('\n');
            }
        }
        out.push('\n');
    }
    (out, err, i32::from(failed))
}

/// A promtool unit-test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitTestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default, deserialize_with = "de_duration")]
    evaluation_interval: Option<i64>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default, deserialize_with = "de_duration")]
    interval: Option<i64>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTestCase>,
    #[serde(default)]
    promql_expr_test: Vec<PromqlTestCase>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    #[serde(default)]
    values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTestCase {
    #[serde(default, deserialize_with = "de_duration")]
    eval_time: Option<i64>,
    #[serde(default)]
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromqlTestCase {
    expr: String,
    #[serde(default, deserialize_with = "de_duration")]
    eval_time: Option<i64>,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: f64,
}

/// Prometheus's `model.Duration` string (`1h30m`, `0s`).
fn model_duration(ms: i64) -> String {
    vigil_shared::duration::format(std::time::Duration::from_millis(ms.max(0) as u64))
}

/// Go's `time.Duration.String()` for whole milliseconds (`4m0s`, `1h0m0s`, `1.5s`, `0s`).
fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let neg = ms < 0;
    let ms = ms.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    if ms < 1000 {
        return format!("{sign}{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, (ms / 60_000) % 60);
    let s = (ms / 1000) % 60;
    let frac = ms % 1000;
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    if h > 0 {
        format!("{sign}{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{sign}{m}m{secs}")
    } else {
        format!("{sign}{secs}")
    }
}

/// Prometheus's `labels.Labels.String()`: `{a="b", c="d"}`.
fn labels_string(pairs: &[(String, String)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// Parses the unit-test file and runs its test groups, returning the failures.
fn run_unit_test_file(path: &Path, warnings: &mut String) -> Vec<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return vec![format!("open {}: {e}", path.display())],
    };
    let utf: UnitTestFile = match serde_yaml_ng::from_str(&text) {
        Ok(u) => u,
        Err(e) => return vec![format!("yaml: {e}")],
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rule_files = Vec::new();
    for rf in &utf.rule_files {
        let p = if rf.is_empty() || Path::new(rf).is_absolute() {
            PathBuf::from(rf)
        } else {
            base.join(rf)
        };
        let matches = glob(&p);
        if matches.is_empty() {
            let _ = writeln!(warnings, "  WARNING: no file match pattern {}", p.display());
        }
        rule_files.extend(matches);
    }
    let eval_interval = utf.evaluation_interval.filter(|i| *i > 0).unwrap_or(60_000);
    let mut order = HashMap::new();
    for (i, g) in utf.group_eval_order.iter().enumerate() {
        if order.insert(g.clone(), i).is_some() {
            return vec![format!("group name repeated in evaluation order: {g}")];
        }
    }
    let mut errs = Vec::new();
    for tg in &utf.tests {
        errs.extend(run_test_group(tg, eval_interval, &order, &rule_files));
    }
    errs
}

/// Expands a `*`/`?` glob in the last path component; a path without one is returned as is
/// when it exists.
fn glob(p: &Path) -> Vec<PathBuf> {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !name.contains('*') && !name.contains('?') && !name.contains('[') {
        return if p.exists() {
            vec![p.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let dir = p.parent().unwrap_or(Path::new("."));
    let re = format!(
        "^{}$",
        regex::escape(&name)
            .replace("\\*", "[^/]*")
            .replace("\\?", "[^/]")
    );
    let Ok(re) = regex::Regex::new(&re) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| re.is_match(&e.file_name().to_string_lossy()))
                .map(|e| dir.join(e.file_name()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Parses a series as written in `input_series` (`up{job="a"}`) into labels.
pub fn parse_metric(s: &str) -> Result<Labels, String> {
    // Prometheus's ParseMetric accepts a bare `{}` (no labels), which a selector may not be.
    if s.trim()
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .is_some_and(|r| r.trim().is_empty())
    {
        return Ok(Labels::default());
    }
    let matchers = crate::query::plan::parse_series_selector(s).map_err(|e| e.to_string())?;
    let mut pairs = Vec::with_capacity(matchers.len());
    for m in matchers {
        if m.op != MatchOp::Equal {
            return Err(format!("invalid series {s:?}: only = matchers are allowed"));
        }
        pairs.push((m.name, m.value));
    }
    Ok(Labels::new(pairs))
}

/// One value of an expanded `values` string: `None` is an omitted sample (`_`).
pub fn parse_series_values(s: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        if tok == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: u64 = n
                .parse()
                .map_err(|_| format!("invalid repetition in {tok:?}"))?;
            out.extend((0..n).map(|_| None));
            continue;
        }
        if tok == "stale" {
            out.push(Some(f64::from_bits(STALE_NAN_BITS)));
            continue;
        }
        let (head, times) = match tok.rfind('x') {
            Some(i)
                if i > 0
                    && tok[i + 1..].chars().all(|c| c.is_ascii_digit())
                    && i + 1 < tok.len() =>
            {
                let n: u64 = tok[i + 1..]
                    .parse()
                    .map_err(|_| format!("invalid repetition in {tok:?}"))?;
                (&tok[..i], Some(n))
            }
            _ => (tok, None),
        };
        // Split `a+b` / `a-b`: the sign after the first character, not part of an exponent.
        let bytes = head.as_bytes();
        let split = (1..bytes.len()).find(|&i| {
            (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E')
        });
        let num = |t: &str| -> Result<f64, String> {
            crate::query::engine::parse_go_float(t)
                .ok_or_else(|| format!("invalid value {t:?} in series values {s:?}"))
        };
        match (split, times) {
            (Some(i), Some(n)) => {
                let mut a = num(&head[..i])?;
                let b = num(&head[i..])?;
                out.push(Some(a));
                for _ in 0..n {
                    a += b;
                    out.push(Some(a));
                }
            }
            (None, Some(n)) => {
                let a = num(head)?;
                out.extend((0..=n).map(|_| Some(a)));
            }
            (None, None) => out.push(Some(num(head)?)),
            (Some(_), None) => return Err(format!("invalid value {tok:?}: a+b needs xN")),
        }
    }
    Ok(out)
}

type LabelsAndAnnotations = (Vec<(String, String)>, Vec<(String, String)>);

fn alerts_string(list: &[LabelsAndAnnotations]) -> String {
    if list.is_empty() {
        return "[]".into();
    }
    let mut s = String::from("[");
    for (i, (l, a)) in list.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "\n{i}:\n  Labels:{}\n  Annotations:{}",
            labels_string(l),
            labels_string(a)
        );
    }
    s.push_str("\n]");
    s
}

fn indent_lines(s: &str, indent: &str) -> String {
    s.split('\n')
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}

fn run_test_group(
    tg: &TestGroup,
    eval_interval: i64,
    order: &HashMap<String, usize>,
    rule_files: &[PathBuf],
) -> Vec<String> {
    let interval = tg.interval.filter(|i| *i > 0).unwrap_or(eval_interval);
    // Input series.
    let mut input = Vec::new();
    for is in &tg.input_series {
        let labels = match parse_metric(&is.series) {
            Ok(l) => l,
            Err(e) => return vec![e],
        };
        let values = match parse_series_values(&is.values) {
            Ok(v) => v,
            Err(e) => return vec![e],
        };
        let points = values
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.map(|value| Point {
                    timestamp_ms: i as i64 * interval,
                    value,
                })
            })
            .collect();
        input.push(Series { labels, points });
    }
    // The input series plus everything the rules write.
    let storage = Arc::new(MemSource::new(input));
    let opts = QueryOptions {
        default_subquery_step: std::time::Duration::from_millis(eval_interval.max(1) as u64),
        ..QueryOptions::default()
    };
    let engine = Engine::new(storage.clone() as Arc<dyn SeriesSource>, opts);

    // Rules.
    let ctx = GroupContext {
        external_labels: tg.external_labels.clone(),
        external_url: tg.external_url.clone(),
    };
    let mut groups: Vec<Group> = Vec::new();
    let mut load_errs = Vec::new();
    for f in rule_files {
        match load_file(f) {
            Ok(rf) => {
                for g in &rf.groups {
                    groups.push(Group::new(
                        g,
                        &f.display().to_string(),
                        interval,
                        ctx.clone(),
                    ));
                }
            }
            Err(e) => load_errs.extend(e.0),
        }
    }
    if !load_errs.is_empty() {
        return load_errs;
    }
    groups.sort_by_key(|g| order.get(&g.name).copied().unwrap_or(0));

    // Alert tests by eval time.
    let mut alert_times: Vec<i64> = Vec::new();
    for a in &tg.alert_rule_test {
        if a.alertname.is_empty() {
            let name = if tg.name.is_empty() {
                String::new()
            } else {
                format!(" (in TestGroup {})", tg.name)
            };
            return vec![format!(
                "an item under alert_rule_test misses required attribute alertname at eval_time {}{name}",
                model_duration(a.eval_time.unwrap_or(0))
            )];
        }
        alert_times.push(a.eval_time.unwrap_or(0));
    }
    alert_times.sort_unstable();
    alert_times.dedup();
    let max_t = tg
        .alert_rule_test
        .iter()
        .map(|a| a.eval_time.unwrap_or(0))
        .chain(tg.promql_expr_test.iter().map(|p| p.eval_time.unwrap_or(0)))
        .max()
        .unwrap_or(0);

    let test_name = if tg.name.is_empty() {
        String::new()
    } else {
        format!("    name: {},\n", tg.name)
    };
    let mut errs = Vec::new();
    let mut curr = 0usize;
    let mut ts = 0i64;
    while ts <= max_t {
        let mut eval_errs = Vec::new();
        for g in groups.iter_mut() {
            let st = storage.clone();
            let failed = g.eval(&engine, ts, &mut |s| st.append(s));
            for (i, e) in failed {
                eval_errs.push(format!(
                    "    rule: {}, time: {}, err: {e}",
                    g.rules[i].name(),
                    go_duration(ts)
                ));
            }
        }
        if !eval_errs.is_empty() {
            errs.extend(eval_errs);
            return errs;
        }
        while curr < alert_times.len()
            && ts <= alert_times[curr]
            && alert_times[curr] < ts + eval_interval
        {
            let t = alert_times[curr];
            let wanted: HashSet<&str> = tg
                .alert_rule_test
                .iter()
                .filter(|a| a.eval_time.unwrap_or(0) == t)
                .map(|a| a.alertname.as_str())
                .collect();
            let mut got: HashMap<&str, Vec<LabelsAndAnnotations>> = HashMap::new();
            for g in &groups {
                for r in &g.rules {
                    let Rule::Alerting(ar) = r else { continue };
                    if !wanted.contains(ar.name.as_str()) {
                        continue;
                    }
                    let entry = got.entry(ar.name.as_str()).or_default();
                    for a in ar.active_alerts() {
                        if a.state == AlertState::Firing {
                            entry.push((
                                a.labels.as_slice().to_vec(),
                                a.annotations
                                    .iter()
                                    .map(|(k, v)| (k.clone(), v.clone()))
                                    .collect(),
                            ));
                        }
                    }
                }
            }
            for tc in tg
                .alert_rule_test
                .iter()
                .filter(|a| a.eval_time.unwrap_or(0) == t)
            {
                let mut got_alerts = got.get(tc.alertname.as_str()).cloned().unwrap_or_default();
                let mut exp_alerts: Vec<LabelsAndAnnotations> = tc
                    .exp_alerts
                    .iter()
                    .map(|a| {
                        let mut l = a.exp_labels.clone();
                        l.insert("alertname".into(), tc.alertname.clone());
                        (
                            l.into_iter().collect(),
                            a.exp_annotations.clone().into_iter().collect(),
                        )
                    })
                    .collect();
                got_alerts.sort();
                exp_alerts.sort();
                if got_alerts != exp_alerts {
                    errs.push(format!(
                        "{test_name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                        tc.alertname,
                        model_duration(t),
                        indent_lines(&alerts_string(&exp_alerts), "            "),
                        indent_lines(&alerts_string(&got_alerts), "            ")
                    ));
                }
            }
            curr += 1;
        }
        ts += eval_interval;
    }

    // PromQL expression tests.
    'outer: for tc in &tg.promql_expr_test {
        let t = tc.eval_time.unwrap_or(0);
        let got = match engine.instant(&tc.expr, t, None) {
            Ok(QueryValue::Vector { samples, .. }) => samples
                .into_iter()
                .map(|s| (s.labels.as_slice().to_vec(), s.value))
                .collect::<Vec<_>>(),
            Ok(QueryValue::Scalar { value, .. }) => vec![(Vec::new(), value)],
            Ok(_) => {
                errs.push(format!(
                    "    expr: {}, time: {}, err: rule result is not a vector or scalar",
                    go_quote(&tc.expr),
                    model_duration(t)
                ));
                continue;
            }
            Err(e) => {
                errs.push(format!(
                    "    expr: {}, time: {}, err: {e}",
                    go_quote(&tc.expr),
                    model_duration(t)
                ));
                continue;
            }
        };
        let mut exp = Vec::new();
        for s in &tc.exp_samples {
            match parse_metric(&s.labels) {
                Ok(l) => exp.push((l.into_inner(), s.value)),
                Err(e) => {
                    errs.push(format!(
                        "    expr: {}, time: {}, err: labels {}: {e}",
                        go_quote(&tc.expr),
                        model_duration(t),
                        go_quote(&s.labels)
                    ));
                    continue 'outer;
                }
            }
        }
        let mut got = got;
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let same =
            exp.len() == got.len() && exp.iter().zip(&got).all(|(a, b)| a.0 == b.0 && a.1 == b.1); // NaN != NaN, as with Go's reflect.DeepEqual
        if !same {
            errs.push(format!(
                "    expr: {}, time: {},\n        exp: {}\n        got: {}",
                go_quote(&tc.expr),
                model_duration(t),
                samples_string(&exp),
                samples_string(&got)
            ));
        }
    }
    errs
}

fn samples_string(s: &[(Vec<(String, String)>, f64)]) -> String {
    if s.is_empty() {
        return "nil".into();
    }
    s.iter()
        .map(|(l, v)| format!("{} {}", labels_string(l), go_float_e(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_values_expand_like_promql_tests() {
        let v = parse_series_values("1+2x3 _ 5x2 _x2 stale 1-1x1 -2+1x1 1e3").unwrap();
        let f: Vec<String> = v
            .iter()
            .map(|x| match x {
                None => "_".into(),
                Some(v) if crate::query::value::is_stale_marker(*v) => "stale".into(),
                Some(v) => v.to_string(),
            })
            .collect();
        assert_eq!(
            f,
            vec![
                "1", "3", "5", "7", "_", "5", "5", "5", "_", "_", "stale", "1", "0", "-2", "-1",
                "1000"
            ]
        );
        assert!(parse_series_values("1+x").is_err());
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(240_000), "4m0s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
        assert_eq!(go_duration(1500), "1.5s");
        assert_eq!(model_duration(240_000), "4m");
        assert_eq!(model_duration(90_000), "1m30s");
    }

    #[test]
    fn metrics_parse() {
        let l = parse_metric("up{job=\"a\", instance=\"x\"}").unwrap();
        assert_eq!(
            labels_string(l.as_slice()),
            "{__name__=\"up\", instance=\"x\", job=\"a\"}"
        );
        assert!(parse_metric("up{job=~\"a\"}").is_err());
    }
}
