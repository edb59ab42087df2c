//! The Prometheus text exposition format: parsing scraped pages and rendering series.
//!
//! [`parse`] reads format 0.0.4 (`text/plain; version=0.0.4`) and tolerates OpenMetrics
//! text 1.0: `# EOF` ends the page, `# UNIT` is kept (and, as in Prometheus, must be a
//! `_`-separated suffix of its family's name), exemplars after ` # ` are dropped, timestamps are read as seconds, and `_created` samples of counters, histograms
//! and summaries are skipped as Prometheus does by default. Every sample becomes a
//! [`Series`] with one [`Point`]; `# TYPE`/`# HELP`/`# UNIT` lines become [`MetricMeta`]. Errors name
//! the 1-based line. Pages are bounded by [`Limits`]: size, samples, line length and labels
//! per series are all checked before anything grows. [`render`] writes series back out in
//! text format 0.0.4, grouped by metric name, as `/federate` serves them.

use crate::model::{Labels, Point, Series, METRIC_NAME};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Bounds applied while parsing; a page that breaks one is refused as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest page accepted, in bytes.
    pub max_bytes: usize,
    /// Largest number of samples accepted.
    pub max_samples: usize,
    /// Longest line accepted, in bytes.
    pub max_line_bytes: usize,
    /// Most labels accepted on one series, `__name__` included.
    pub max_labels: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 32 * 1024 * 1024,
            max_samples: 1_000_000,
            max_line_bytes: 1024 * 1024,
            max_labels: 256,
        }
    }
}

/// Which dialect a page is written in; it decides how timestamps and `_created` are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4: timestamps are integer milliseconds.
    PrometheusText,
    /// OpenMetrics text 1.0: timestamps are (possibly fractional) seconds.
    OpenMetrics,
}

impl Format {
    /// Picks the format from an HTTP `Content-Type` header value.
    pub fn from_content_type(content_type: &str) -> Format {
        if content_type
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/openmetrics-text")
        {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }

    /// Guesses the format from the page itself: OpenMetrics pages end with `# EOF`.
    pub fn sniff(text: &str) -> Format {
        if text.trim_end().ends_with("# EOF") {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }
}

/// The declared type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
    /// OpenMetrics `unknown`, the same as `untyped`.
    Unknown,
    /// OpenMetrics `gaugehistogram`.
    GaugeHistogram,
    /// OpenMetrics `stateset`.
    StateSet,
    /// OpenMetrics `info`.
    Info,
}

impl MetricKind {
    /// Parses a `# TYPE` word.
    pub fn parse(word: &str) -> Option<MetricKind> {
        Some(match word {
            "counter" => MetricKind::Counter,
            "gauge" => MetricKind::Gauge,
            "histogram" => MetricKind::Histogram,
            "summary" => MetricKind::Summary,
            "untyped" => MetricKind::Untyped,
            "unknown" => MetricKind::Unknown,
            "gaugehistogram" => MetricKind::GaugeHistogram,
            "stateset" => MetricKind::StateSet,
            "info" => MetricKind::Info,
            _ => return None,
        })
    }

    /// The `# TYPE` word for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::Summary => "summary",
            MetricKind::Untyped => "untyped",
            MetricKind::Unknown => "unknown",
            MetricKind::GaugeHistogram => "gaugehistogram",
            MetricKind::StateSet => "stateset",
            MetricKind::Info => "info",
        }
    }

    /// True for the kinds whose OpenMetrics `_created` samples Prometheus skips.
    fn has_created(self) -> bool {
        matches!(
            self,
            MetricKind::Counter
                | MetricKind::Histogram
                | MetricKind::Summary
                | MetricKind::GaugeHistogram
        )
    }
}

/// `# TYPE`, `# HELP` and (OpenMetrics only) `# UNIT` of one metric family. A missing line
/// leaves `Untyped`, an empty help or an empty unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricMeta {
    /// The family name as written on the `# TYPE`/`# HELP` line.
    pub family: String,
    /// The declared type.
    pub kind: MetricKind,
    /// The unescaped help text.
    pub help: String,
    /// The OpenMetrics unit (`seconds` for `# UNIT request_seconds seconds`), or empty.
    pub unit: String,
}

/// A parsed page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    /// One series per sample, in page order, each with exactly one point.
    pub series: Vec<Series>,
    /// Metadata per family, in order of first appearance.
    pub metadata: Vec<MetricMeta>,
}

/// Why a page was refused. Tokens quoted from the page are cut to 64 characters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExpositionError {
    /// The page is larger than [`Limits::max_bytes`].
    #[error("page of {bytes} bytes exceeds the limit of {limit} bytes")]
    TooLarge { bytes: usize, limit: usize },
    /// The page has more samples than [`Limits::max_samples`].
    #[error("line {line}: more than {limit} samples")]
    TooManySamples { line: usize, limit: usize },
    /// A line is longer than [`Limits::max_line_bytes`].
    #[error("line {line}: line of {bytes} bytes exceeds the limit of {limit} bytes")]
    LineTooLong {
        line: usize,
        bytes: usize,
        limit: usize,
    },
    /// A series has more labels than [`Limits::max_labels`].
    #[error("line {line}: more than {limit} labels")]
    TooManyLabels { line: usize, limit: usize },
    /// A metric name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("line {line}: invalid metric name {name:?}")]
    InvalidMetricName { line: usize, name: String },
    /// A label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("line {line}: invalid label name {name:?}")]
    InvalidLabelName { line: usize, name: String },
    /// The same label name appears twice in one series.
    #[error("line {line}: duplicate label name {name:?}")]
    DuplicateLabel { line: usize, name: String },
    /// A label value has no closing quote, or ends in a lone backslash.
    #[error("line {line}: unterminated label value")]
    UnterminatedLabelValue { line: usize },
    /// The sample value is not a float (`NaN`, `+Inf` and `-Inf` are accepted).
    #[error("line {line}: invalid sample value {value:?}")]
    InvalidValue { line: usize, value: String },
    /// The timestamp is not an integer (text format) or a finite number (OpenMetrics).
    #[error("line {line}: invalid timestamp {value:?}")]
    InvalidTimestamp { line: usize, value: String },
    /// An OpenMetrics `# UNIT` is not the end of its family's name after a `_`, which
    /// Prometheus refuses too.
    #[error("line {line}: unit {unit:?} is not a suffix of metric {family:?}")]
    UnitNotSuffix {
        line: usize,
        unit: String,
        family: String,
    },
    /// `# TYPE` names an unknown type.
    #[error("line {line}: unknown metric type {kind:?}")]
    UnknownType { line: usize, kind: String },
    /// The same series appears twice on the page.
    #[error("line {line}: duplicate series {series} (first on line {first_line})")]
    DuplicateSeries {
        line: usize,
        first_line: usize,
        series: String,
    },
    /// Anything else that is not valid syntax.
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: &'static str },
}

/// Parses a page with [`Limits::default`], sniffing the format from a trailing `# EOF`.
/// Samples without a timestamp get `default_ts_ms`.
pub fn parse(text: &str, default_ts_ms: i64) -> Result<Parsed, ExpositionError> {
    parse_with(text, default_ts_ms, Format::sniff(text), &Limits::default())
}

/// Parses a page in the given format under the given limits.
pub fn parse_with(
    text: &str,
    default_ts_ms: i64,
    format: Format,
    limits: &Limits,
) -> Result<Parsed, ExpositionError> {
    if text.len() > limits.max_bytes {
        return Err(ExpositionError::TooLarge {
            bytes: text.len(),
            limit: limits.max_bytes,
        });
    }
    let mut out = Parsed::default();
    let mut lines_of_series: Vec<usize> = Vec::new();
    let mut meta_index: HashMap<String, usize> = HashMap::new();
    let mut pairs: Vec<(String, String)> = Vec::new();

    for (idx, raw) in text.split('\n').enumerate() {
        let line_no = idx + 1;
        if raw.len() > limits.max_line_bytes {
            return Err(ExpositionError::LineTooLong {
                line: line_no,
                bytes: raw.len(),
                limit: limits.max_line_bytes,
            });
        }
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let line = line.trim_start_matches([' ', '\t']);
        if line.trim_end_matches([' ', '\t']).is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            match parse_comment(comment, line_no, format)? {
                Comment::Eof => {
                    ensure_nothing_after_eof(text, idx)?;
                    break;
                }
                Comment::Ignored => {}
                Comment::Type(family, kind) => {
                    meta_entry(&mut out.metadata, &mut meta_index, family).kind = kind;
                }
                Comment::Help(family, help) => {
                    meta_entry(&mut out.metadata, &mut meta_index, family).help = help;
                }
                Comment::Unit(family, unit) => {
                    meta_entry(&mut out.metadata, &mut meta_index, family).unit = unit.to_string();
                }
            }
            continue;
        }

        pairs.clear();
        let sample = parse_sample(line, line_no, format, limits, &mut pairs)?;
        if format == Format::OpenMetrics && is_skipped_created(sample.name, &out, &meta_index) {
            continue;
        }
        if out.series.len() >= limits.max_samples {
            return Err(ExpositionError::TooManySamples {
                line: line_no,
                limit: limits.max_samples,
            });
        }
        let mut all = Vec::with_capacity(pairs.len() + 1);
        all.push((METRIC_NAME.to_string(), sample.name.to_string()));
        all.append(&mut pairs);
        out.series.push(Series {
            labels: Labels::new(all),
            points: vec![Point {
                timestamp_ms: sample.timestamp_ms.unwrap_or(default_ts_ms),
                value: sample.value,
            }],
        });
        lines_of_series.push(line_no);
    }

    check_duplicates(&out.series, &lines_of_series)?;
    Ok(out)
}

/// Writes series as text format 0.0.4. Series are grouped by metric name (names in
/// ascending order, input order kept within a name), each group preceded by
/// `# TYPE <name> untyped`. Series without a name are skipped. With `with_timestamps`
/// every sample carries its millisecond timestamp.
pub fn render(series: &[(Labels, Point)], with_timestamps: bool) -> String {
    let mut order: Vec<usize> = (0..series.len())
        .filter(|&i| !series[i].0.name().is_empty())
        .collect();
    order.sort_by(|&a, &b| series[a].0.name().cmp(series[b].0.name()));
    let mut out = String::with_capacity(order.len() * 64);
    let mut current: Option<&str> = None;
    for i in order {
        let (labels, point) = &series[i];
        let name = labels.name();
        if current != Some(name) {
            let _ = writeln!(out, "# TYPE {name} untyped");
            current = Some(name);
        }
        out.push_str(name);
        let mut first = true;
        for (label, value) in labels.iter().filter(|(n, _)| *n != METRIC_NAME) {
            out.push(if first { '{' } else { ',' });
            first = false;
            out.push_str(label);
            out.push_str("=\"");
            escape_label_value(value, &mut out);
            out.push('"');
        }
        if !first {
            out.push('}');
        }
        out.push(' ');
        write_float(point.value, &mut out);
        if with_timestamps {
            let _ = write!(out, " {}", point.timestamp_ms);
        }
        out.push('\n');
    }
    out
}

/// Appends `v` the way Prometheus writes floats: `NaN`, `+Inf`, `-Inf`, otherwise the
/// shortest form that reads back to the same value.
pub fn write_float(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if v == 0.0 || (1e-4..1e15).contains(&v.abs()) {
        let _ = write!(out, "{v}");
    } else {
        let _ = write!(out, "{v:e}");
    }
}

/// Appends a label value with `\`, `"` and newline escaped.
pub fn escape_label_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

enum Comment<'a> {
    Eof,
    Ignored,
    Type(&'a str, MetricKind),
    Help(&'a str, String),
    Unit(&'a str, &'a str),
}

struct Sample<'a> {
    name: &'a str,
    value: f64,
    timestamp_ms: Option<i64>,
}

fn parse_comment(rest: &str, line: usize, format: Format) -> Result<Comment<'_>, ExpositionError> {
    let rest = rest.trim_start_matches([' ', '\t']);
    let (keyword, after) = split_word(rest);
    match keyword {
        "EOF" if format == Format::OpenMetrics && after.trim().is_empty() => Ok(Comment::Eof),
        "TYPE" => {
            let (name, after) = split_word(after);
            check_metric_name(name, line)?;
            let (kind, after) = split_word(after);
            if !after.trim().is_empty() {
                return Err(ExpositionError::Syntax {
                    line,
                    reason: "unexpected text after the type in a TYPE line",
                });
            }
            match MetricKind::parse(kind) {
                Some(k) => Ok(Comment::Type(name, k)),
                None => Err(ExpositionError::UnknownType {
                    line,
                    kind: clip(kind),
                }),
            }
        }
        "HELP" => {
            let (name, after) = split_word(after);
            check_metric_name(name, line)?;
            Ok(Comment::Help(
                name,
                unescape_help(after.trim_start_matches([' ', '\t']), format),
            ))
        }
        // Text format 0.0.4 has no units; Prometheus ignores the line there.
        "UNIT" if format == Format::OpenMetrics => {
            let (name, after) = split_word(after);
            check_metric_name(name, line)?;
            let (unit, after) = split_word(after);
            if !after.trim().is_empty() {
                return Err(ExpositionError::Syntax {
                    line,
                    reason: "unexpected text after the unit in a UNIT line",
                });
            }
            let suffix = name
                .strip_suffix(unit)
                .is_some_and(|head| head.ends_with('_'));
            if !unit.is_empty() && !suffix {
                return Err(ExpositionError::UnitNotSuffix {
                    line,
                    unit: clip(unit),
                    family: clip(name),
                });
            }
            Ok(Comment::Unit(name, unit))
        }
        _ => Ok(Comment::Ignored),
    }
}

fn ensure_nothing_after_eof(text: &str, eof_idx: usize) -> Result<(), ExpositionError> {
    for (idx, line) in text.split('\n').enumerate().skip(eof_idx + 1) {
        if !line.trim().is_empty() {
            return Err(ExpositionError::Syntax {
                line: idx + 1,
                reason: "content after # EOF",
            });
        }
    }
    Ok(())
}

fn meta_entry<'m>(
    metadata: &'m mut Vec<MetricMeta>,
    index: &mut HashMap<String, usize>,
    family: &str,
) -> &'m mut MetricMeta {
    let i = *index.entry(family.to_string()).or_insert_with(|| {
        metadata.push(MetricMeta {
            family: family.to_string(),
            kind: MetricKind::Untyped,
            help: String::new(),
            unit: String::new(),
        });
        metadata.len() - 1
    });
    &mut metadata[i]
}

fn is_skipped_created(name: &str, out: &Parsed, index: &HashMap<String, usize>) -> bool {
    let Some(family) = name.strip_suffix("_created") else {
        return false;
    };
    index
        .get(family)
        .is_some_and(|&i| out.metadata[i].kind.has_created())
}

fn parse_sample<'a>(
    line: &'a str,
    line_no: usize,
    format: Format,
    limits: &Limits,
    pairs: &mut Vec<(String, String)>,
) -> Result<Sample<'a>, ExpositionError> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    check_metric_name(name, line_no)?;
    let mut rest = line[name_end..].trim_start_matches([' ', '\t']);
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, line_no, limits, pairs)?;
        rest = rest.trim_start_matches([' ', '\t']);
    } else if rest.len() == line.len() - name_end {
        // No whitespace after the name and no label block: e.g. `foo-bar 1`.
        if !rest.is_empty() {
            return Err(ExpositionError::InvalidMetricName {
                line: line_no,
                name: clip(line.split([' ', '\t']).next().unwrap_or(line)),
            });
        }
    }
    let (value_text, after) = split_word(rest);
    if value_text.is_empty() {
        return Err(ExpositionError::Syntax {
            line: line_no,
            reason: "missing sample value",
        });
    }
    let value = parse_float(value_text).ok_or_else(|| ExpositionError::InvalidValue {
        line: line_no,
        value: clip(value_text),
    })?;
    let (ts_text, after) = split_word(after);
    let mut timestamp_ms = None;
    let mut trailing = after;
    if ts_text.starts_with('#') && format == Format::OpenMetrics {
        // An exemplar directly after the value.
        trailing = "";
    } else if !ts_text.is_empty() {
        timestamp_ms = Some(parse_timestamp(ts_text, format).ok_or_else(|| {
            ExpositionError::InvalidTimestamp {
                line: line_no,
                value: clip(ts_text),
            }
        })?);
    }
    let trailing = trailing.trim_start_matches([' ', '\t']);
    let exemplar = format == Format::OpenMetrics && trailing.starts_with('#');
    if !trailing.is_empty() && !exemplar {
        return Err(ExpositionError::Syntax {
            line: line_no,
            reason: "unexpected text after the sample",
        });
    }
    Ok(Sample {
        name,
        value,
        timestamp_ms,
    })
}

/// Parses `name="value",...}` (the opening brace already consumed) into `pairs`, returning
/// what follows the closing brace.
fn parse_labels<'a>(
    mut rest: &'a str,
    line: usize,
    limits: &Limits,
    pairs: &mut Vec<(String, String)>,
) -> Result<&'a str, ExpositionError> {
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        if !is_label_name(name) {
            let shown = if name.is_empty() {
                rest.chars().take(1).collect()
            } else {
                name.to_string()
            };
            return Err(ExpositionError::InvalidLabelName {
                line,
                name: clip(&shown),
            });
        }
        if name == METRIC_NAME {
            return Err(ExpositionError::InvalidLabelName {
                line,
                name: name.to_string(),
            });
        }
        rest = rest[name_end..].trim_start_matches([' ', '\t']);
        rest = rest.strip_prefix('=').ok_or(ExpositionError::Syntax {
            line,
            reason: "expected '=' after a label name",
        })?;
        rest = rest.trim_start_matches([' ', '\t']);
        rest = rest.strip_prefix('"').ok_or(ExpositionError::Syntax {
            line,
            reason: "expected '\"' to open a label value",
        })?;
        let (value, after) = read_label_value(rest, line)?;
        if pairs.iter().any(|(n, _)| n == name) {
            return Err(ExpositionError::DuplicateLabel {
                line,
                name: name.to_string(),
            });
        }
        if pairs.len() + 1 >= limits.max_labels {
            return Err(ExpositionError::TooManyLabels {
                line,
                limit: limits.max_labels,
            });
        }
        pairs.push((name.to_string(), value));
        rest = after.trim_start_matches([' ', '\t']);
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(ExpositionError::Syntax {
                line,
                reason: "expected ',' or '}' after a label value",
            });
        }
    }
}

/// Reads a label value up to its closing quote. `\\`, `\"` and `\n` are unescaped; any
/// other escape is kept verbatim, as Prometheus does.
fn read_label_value(s: &str, line: usize) -> Result<(String, &str), ExpositionError> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => break,
            },
            c => value.push(c),
        }
    }
    Err(ExpositionError::UnterminatedLabelValue { line })
}

fn unescape_help(s: &str, format: Format) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if format == Format::OpenMetrics => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Parses a sample value as Go's `strconv.ParseFloat` would for the forms exporters write.
fn parse_float(s: &str) -> Option<f64> {
    // Rust also accepts "infinity"/"nan" in any case, which Go does too; it rejects hex
    // floats and underscores, which no exporter writes.
    s.parse::<f64>().ok()
}

fn parse_timestamp(s: &str, format: Format) -> Option<i64> {
    match format {
        Format::PrometheusText => s.parse::<i64>().ok(),
        Format::OpenMetrics => {
            let secs = s.parse::<f64>().ok()?;
            let ms = (secs * 1000.0).round();
            (ms.is_finite() && ms.abs() < 9.2e18).then_some(ms as i64)
        }
    }
}

fn check_duplicates(series: &[Series], lines: &[usize]) -> Result<(), ExpositionError> {
    let mut order: Vec<usize> = (0..series.len()).collect();
    order.sort_by(|&a, &b| series[a].labels.cmp(&series[b].labels).then(a.cmp(&b)));
    let mut worst: Option<(usize, usize)> = None;
    for w in order.windows(2) {
        if series[w[0]].labels == series[w[1]].labels {
            let (first, dup) = (w[0], w[1]);
            let earlier = match worst {
                None => true,
                Some((_, d)) => lines[dup] < lines[d],
            };
            if earlier {
                worst = Some((first, dup));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((first, dup)) => Err(ExpositionError::DuplicateSeries {
            line: lines[dup],
            first_line: lines[first],
            series: clip(&describe(&series[dup].labels)),
        }),
    }
}

fn describe(labels: &Labels) -> String {
    let mut s = labels.name().to_string();
    let mut first = true;
    for (n, v) in labels.iter().filter(|(n, _)| *n != METRIC_NAME) {
        s.push(if first { '{' } else { ',' });
        first = false;
        s.push_str(n);
        s.push_str("=\"");
        escape_label_value(v, &mut s);
        s.push('"');
    }
    if !first {
        s.push('}');
    }
    s
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches([' ', '\t']);
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    (&s[..end], &s[end..])
}

fn check_metric_name(name: &str, line: usize) -> Result<(), ExpositionError> {
    if is_metric_name(name) {
        Ok(())
    } else {
        Err(ExpositionError::InvalidMetricName {
            line,
            name: clip(name),
        })
    }
}

/// True if `name` matches `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// True if `name` matches `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn clip(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Series {
        let p = parse(text, 1000).expect("parses");
        assert_eq!(p.series.len(), 1, "{p:?}");
        p.series.into_iter().next().expect("one series")
    }

    #[test]
    fn parses_names_labels_values_and_timestamps() {
        let text = "# HELP http_requests_total The total number of HTTP requests.\n\
                    # TYPE http_requests_total counter\n\
                    http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
                    http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n\
                    \n\
                    # A normal comment.\n\
                    metric_without_timestamp_and_labels 12.47\n\
                    something_weird{problem=\"division by zero\"} +Inf -3982045\n";
        let p = parse(text, 42).expect("parses");
        assert_eq!(p.series.len(), 4);
        let s = &p.series[0];
        assert_eq!(s.labels.name(), "http_requests_total");
        assert_eq!(s.labels.get("method"), Some("post"));
        assert_eq!(s.labels.get("code"), Some("200"));
        assert_eq!(s.points[0].value, 1027.0);
        assert_eq!(s.points[0].timestamp_ms, 1395066363000);
        assert_eq!(p.series[2].points[0].timestamp_ms, 42);
        assert_eq!(p.series[2].points[0].value, 12.47);
        assert_eq!(p.series[3].points[0].value, f64::INFINITY);
        assert_eq!(p.series[3].points[0].timestamp_ms, -3982045);
        assert_eq!(
            p.metadata,
            vec![MetricMeta {
                family: "http_requests_total".into(),
                kind: MetricKind::Counter,
                help: "The total number of HTTP requests.".into(),
                unit: String::new(),
            }]
        );
    }

    #[test]
    fn escaped_label_values_and_help() {
        let text = "# HELP m a \\\\ b\\nc \\q\n\
                    m{path=\"C:\\\\DIR\\\\\",quote=\"say \\\"hi\\\"\",nl=\"a\\nb\",odd=\"\\t\"} 1\n";
        let p = parse(text, 0).expect("parses");
        let l = &p.series[0].labels;
        assert_eq!(l.get("path"), Some("C:\\DIR\\"));
        assert_eq!(l.get("quote"), Some("say \"hi\""));
        assert_eq!(l.get("nl"), Some("a\nb"));
        assert_eq!(l.get("odd"), Some("\\t"), "unknown escapes stay verbatim");
        assert_eq!(p.metadata[0].help, "a \\ b\nc \\q");
    }

    #[test]
    fn special_floats() {
        assert!(one("m NaN").points[0].value.is_nan());
        assert_eq!(one("m +Inf").points[0].value, f64::INFINITY);
        assert_eq!(one("m -Inf").points[0].value, f64::NEG_INFINITY);
        assert_eq!(one("m Inf").points[0].value, f64::INFINITY);
        assert_eq!(one("m 1.5e3").points[0].value, 1500.0);
        assert_eq!(one("m -0.25").points[0].value, -0.25);
    }

    #[test]
    fn whitespace_trailing_comma_crlf_and_empty_labels() {
        let s = one("  m { a = \"1\" , b=\"\", } 2 \r\n");
        assert_eq!(s.labels.get("a"), Some("1"));
        assert_eq!(s.labels.get("b"), None, "empty values are absent");
        assert_eq!(one("m{} 3").labels.len(), 1);
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, &str)] = &[
            (
                "ok 1\nm{a=\"1\"} abc\n",
                "line 2: invalid sample value \"abc\"",
            ),
            ("ok 1\n\nm 1 12.5\n", "line 3: invalid timestamp \"12.5\""),
            ("m{a=\"1} 1\n", "line 1: unterminated label value"),
            ("m{a=\"1\\", "line 1: unterminated label value"),
            ("m{1a=\"x\"} 1\n", "line 1: invalid label name \"1a\""),
            ("m{-=\"x\"} 1\n", "line 1: invalid label name \"-\""),
            (
                "m{a=\"x\",a=\"y\"} 1\n",
                "line 1: duplicate label name \"a\"",
            ),
            ("m{a \"x\"} 1\n", "line 1: expected '=' after a label name"),
            ("m{a=x} 1\n", "line 1: expected '\"' to open a label value"),
            (
                "m{a=\"x\" b=\"y\"} 1\n",
                "line 1: expected ',' or '}' after a label value",
            ),
            ("m\n", "line 1: missing sample value"),
            ("m 1 2 3\n", "line 1: unexpected text after the sample"),
            ("1m 1\n", "line 1: invalid metric name \"1m\""),
            ("foo-bar 1\n", "line 1: invalid metric name \"foo-bar\""),
            ("# TYPE m histo\n", "line 1: unknown metric type \"histo\""),
            ("# TYPE 9m gauge\n", "line 1: invalid metric name \"9m\""),
            (
                "m{__name__=\"x\"} 1\n",
                "line 1: invalid label name \"__name__\"",
            ),
            ("m 1\nm 2\n", "line 2: duplicate series m (first on line 1)"),
        ];
        for (text, want) in cases {
            let err = parse(text, 0).expect_err(text).to_string();
            assert_eq!(&err, want, "input {text:?}");
        }
    }

    #[test]
    fn duplicate_series_ignores_label_order() {
        let err = parse("x 0\nm{a=\"1\",b=\"2\"} 1\nm{b=\"2\",a=\"1\"} 1\n", 0).unwrap_err();
        assert!(
            matches!(
                err,
                ExpositionError::DuplicateSeries {
                    line: 3,
                    first_line: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn malicious_bad_floats() {
        for v in ["0x10", "1_000", "1e", "--1", "", "1.2.3", "∞", "NaNx"] {
            let text = format!("m {v}x\n");
            assert!(parse(&text, 0).is_err(), "{text:?}");
            let text = format!("m{{a=\"b\"}} {v}\n");
            if !v.is_empty() {
                assert!(parse(&text, 0).is_err(), "{text:?}");
            }
        }
    }

    #[test]
    fn malicious_huge_line_is_refused_without_parsing() {
        let limits = Limits {
            max_line_bytes: 1024,
            ..Limits::default()
        };
        let text = format!("m{{a=\"{}\"}} 1\n", "x".repeat(10_000));
        let err = parse_with(&text, 0, Format::PrometheusText, &limits).unwrap_err();
        assert_eq!(
            err,
            ExpositionError::LineTooLong {
                line: 1,
                bytes: text.len() - 1,
                limit: 1024
            }
        );
    }

    #[test]
    fn malicious_long_tokens_are_clipped_in_errors() {
        let text = format!("m {}\n", "9".repeat(5000) + "z");
        let msg = parse(&text, 0).unwrap_err().to_string();
        assert!(msg.len() < 120, "{msg}");
    }

    #[test]
    fn malicious_unicode_and_control_bytes() {
        // Multibyte chars in label values are fine; in names they are errors, never panics.
        assert_eq!(one("m{a=\"日本\"} 1").labels.get("a"), Some("日本"));
        for text in [
            "日本 1",
            "m{日=\"x\"} 1",
            "m\u{0} 1",
            "m{a=\"\u{0}\"} 1 \u{7}",
            "{",
            "}",
            "m{",
        ] {
            let _ = parse(text, 0);
        }
        assert!(parse("m{", 0).is_err());
        assert!(parse("{a=\"b\"} 1", 0).is_err());
    }

    /// Random pages built from the characters that matter to the grammar must give a
    /// result or an error, never a panic.
    #[test]
    fn malicious_random_pages_never_panic() {
        const ALPHABET: &[&str] = &[
            "m", "_", ":", "a", "1", "{", "}", "\"", "\\", "=", ",", " ", "\t", "\n", "\r", "#",
            " TYPE ", " HELP ", " EOF", "counter", "NaN", "+Inf", "-", ".", "e", "日", "\u{0}",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut parsed = 0;
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let page: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            for format in [Format::PrometheusText, Format::OpenMetrics] {
                if parse_with(&page, 0, format, &Limits::default()).is_ok() {
                    parsed += 1;
                }
            }
        }
        assert!(parsed > 0, "some random pages are valid");
    }

    #[test]
    fn limits_on_size_samples_and_labels() {
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        assert!(matches!(
            parse_with("m 1\nn 2\no 3\n", 0, Format::PrometheusText, &limits),
            Err(ExpositionError::TooLarge {
                bytes: 12,
                limit: 10
            })
        ));
        let limits = Limits {
            max_samples: 2,
            ..Limits::default()
        };
        assert!(matches!(
            parse_with("m 1\nn 2\no 3\n", 0, Format::PrometheusText, &limits),
            Err(ExpositionError::TooManySamples { line: 3, limit: 2 })
        ));
        let limits = Limits {
            max_labels: 3,
            ..Limits::default()
        };
        assert!(parse_with("m{a=\"1\",b=\"2\"} 1", 0, Format::PrometheusText, &limits).is_ok());
        assert!(matches!(
            parse_with(
                "m{a=\"1\",b=\"2\",c=\"3\"} 1",
                0,
                Format::PrometheusText,
                &limits
            ),
            Err(ExpositionError::TooManyLabels { line: 1, limit: 3 })
        ));
    }

    #[test]
    fn openmetrics_eof_created_exemplars_and_second_timestamps() {
        let text = "# TYPE foo_seconds counter\n\
                    # UNIT foo_seconds seconds\n\
                    # HELP foo_seconds Some \\\"text\\\".\n\
                    foo_seconds_total 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n\
                    foo_seconds_created 1520430000.123\n\
                    # TYPE g gauge\n\
                    g_created 5\n\
                    h 1 # {a=\"b\"} 2\n\
                    # EOF\n";
        let p = parse(text, 0).expect("parses");
        let names: Vec<&str> = p.series.iter().map(|s| s.labels.name()).collect();
        assert_eq!(names, ["foo_seconds_total", "g_created", "h"]);
        assert_eq!(p.series[0].points[0].timestamp_ms, 1520879607789);
        assert_eq!(p.series[0].points[0].value, 17.0);
        assert_eq!(p.metadata[0].help, "Some \"text\".");
        assert_eq!(p.metadata[0].kind, MetricKind::Counter);
        assert_eq!(p.metadata[0].unit, "seconds");

        let err = parse("a 1\n# EOF\nb 2\n# EOF\n", 0).unwrap_err();
        assert_eq!(err.to_string(), "line 3: content after # EOF");
        // In plain text, `# EOF` is only a comment.
        let p = parse("a 1\n# EOF\nb 2\n", 0).expect("parses");
        assert_eq!(p.series.len(), 2);
    }

    #[test]
    fn exemplars_are_errors_in_plain_text() {
        assert!(parse("h 1 # {a=\"b\"} 2\n", 0).is_err());
    }

    #[test]
    fn format_from_content_type() {
        assert_eq!(
            Format::from_content_type("application/openmetrics-text; version=1.0.0"),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::from_content_type("text/plain; version=0.0.4; charset=utf-8"),
            Format::PrometheusText
        );
    }

    #[test]
    fn render_groups_by_name_escapes_and_round_trips() {
        let input = vec![
            (
                Labels::metric("b", &[("x", "q\"uo\\te\nd")]),
                Point {
                    timestamp_ms: 5,
                    value: f64::NAN,
                },
            ),
            (
                Labels::metric("a", &[("z", "1"), ("y", "2")]),
                Point {
                    timestamp_ms: 6,
                    value: 1e300,
                },
            ),
            (
                Labels::metric("b", &[("x", "2")]),
                Point {
                    timestamp_ms: 7,
                    value: f64::NEG_INFINITY,
                },
            ),
            (
                Labels::metric("c", &[]),
                Point {
                    timestamp_ms: 8,
                    value: 0.1,
                },
            ),
            (
                Labels::new(vec![("noname".into(), "x".into())]),
                Point {
                    timestamp_ms: 9,
                    value: 1.0,
                },
            ),
        ];
        let text = render(&input, true);
        assert_eq!(
            text,
            "# TYPE a untyped\n\
             a{y=\"2\",z=\"1\"} 1e300 6\n\
             # TYPE b untyped\n\
             b{x=\"q\\\"uo\\\\te\\nd\"} NaN 5\n\
             b{x=\"2\"} -Inf 7\n\
             # TYPE c untyped\n\
             c 0.1 8\n"
        );
        let back = parse(&text, 0).expect("own output parses");
        assert_eq!(back.series.len(), 4);
        assert_eq!(back.series[1].labels, input[0].0);
        assert_eq!(back.series[0].points[0].value, 1e300);
        assert!(!render(&input, false).contains(" 6\n"));
    }

    #[test]
    fn write_float_round_trips() {
        for v in [
            0.0,
            -0.0,
            1.0,
            0.1,
            123456789.125,
            1e-300,
            5e-324,
            f64::MAX,
            -2.5e17,
        ] {
            let mut s = String::new();
            write_float(v, &mut s);
            assert_eq!(s.parse::<f64>().ok(), Some(v), "{s}");
        }
    }

    #[test]
    fn openmetrics_units_are_kept_and_must_suffix_the_family() {
        let text = "# TYPE req_seconds histogram\n# UNIT req_seconds seconds\n# HELP req_seconds Latency.\n\
                    req_seconds_count 3\n# TYPE temp gauge\n# UNIT temp \ntemp 1\n# EOF\n";
        let p = parse(text, 0).expect("parses");
        assert_eq!(p.metadata[0].unit, "seconds");
        assert_eq!(p.metadata[0].help, "Latency.");
        assert_eq!(p.metadata[1].unit, "", "an empty unit is allowed");

        let bad = "# TYPE req_total counter\n# UNIT req_total seconds\nreq_total 1\n# EOF\n";
        assert_eq!(
            parse(bad, 0).unwrap_err().to_string(),
            "line 2: unit \"seconds\" is not a suffix of metric \"req_total\""
        );
        let glued = "# UNIT reqseconds seconds\n# EOF\n";
        assert!(matches!(
            parse(glued, 0),
            Err(ExpositionError::UnitNotSuffix { line: 1, .. })
        ));
        // Text format 0.0.4 has no units: the line is a comment, as in Prometheus.
        let text004 = "# UNIT req_total seconds\nreq_total 1\n";
        let p = parse(text004, 0).expect("parses");
        assert!(p.metadata.is_empty());
    }
}
