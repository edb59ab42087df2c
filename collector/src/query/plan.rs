//! Lowers `promql-parser`'s AST into the plan the engine evaluates: selectors get their
//! metric-name matcher and compiled regexes and a number that keys their loaded data,
//! `@ start()`/`@ end()` become absolute times, durations become milliseconds, functions and
//! operators are checked against what the engine implements.

use std::time::{SystemTime, UNIX_EPOCH};

use promql_parser::label::MatchOp as ParserMatchOp;
use promql_parser::parser::{
    self as pp, token, AtModifier, Expr, LabelModifier, Offset, VectorMatchCardinality,
};

use super::{duration_ms, QueryError};
use crate::storage::matcher::{MatchOp, Matcher};

/// A vector or matrix selector.
#[derive(Debug, Clone)]
pub struct Selector {
    /// Index into the engine's loaded data.
    pub id: usize,
    pub matchers: Vec<Matcher>,
    pub offset_ms: i64,
    /// Absolute evaluation time from `@`, in milliseconds.
    pub at_ms: Option<i64>,
    /// Range in milliseconds; 0 for an instant vector selector.
    pub range_ms: i64,
}

/// A subquery `expr[range:step]`.
#[derive(Debug, Clone)]
pub struct Subquery {
    /// Index of the subquery's result cache.
    pub id: usize,
    pub expr: Box<Node>,
    pub range_ms: i64,
    pub step_ms: i64,
    pub offset_ms: i64,
    pub at_ms: Option<i64>,
}

/// Aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Quantile,
    CountValues,
    Group,
}

/// `by (...)` or `without (...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    By(Vec<String>),
    Without(Vec<String>),
}

/// An aggregation.
#[derive(Debug, Clone)]
pub struct Aggregate {
    pub op: AggOp,
    pub expr: Box<Node>,
    pub param: Option<Box<Node>>,
    pub grouping: Grouping,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    /// `==`, `!=`, `>`, `<`, `>=`, `<=`.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
        )
    }

    /// `and`, `or`, `unless`.
    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }
}

/// Which side is the "one" side, and the extra labels it contributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cardinality {
    OneToOne,
    /// `group_left(labels)`
    ManyToOne(Vec<String>),
    /// `group_right(labels)`
    OneToMany(Vec<String>),
    /// Set operators.
    ManyToMany,
}

/// Vector matching for a binary operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorMatching {
    pub card: Cardinality,
    /// `on(...)` when true, `ignoring(...)` (or no modifier) when false.
    pub on: bool,
    pub labels: Vec<String>,
}

/// A binary expression.
#[derive(Debug, Clone)]
pub struct Binary {
    pub op: BinOp,
    pub lhs: Box<Node>,
    pub rhs: Box<Node>,
    pub return_bool: bool,
    pub matching: VectorMatching,
}

/// A function call.
#[derive(Debug, Clone)]
pub struct Call {
    pub name: &'static str,
    pub args: Vec<Node>,
}

/// One node of the plan.
#[derive(Debug, Clone)]
pub enum Node {
    Number(f64),
    Str(String),
    /// Unary minus.
    Neg(Box<Node>),
    Selector(Selector),
    Subquery(Subquery),
    Call(Call),
    Aggregate(Aggregate),
    Binary(Binary),
}

/// PromQL result types, known before evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Scalar,
    Str,
    Vector,
    Matrix,
}

impl Node {
    /// The type the node evaluates to.
    pub fn kind(&self) -> ValueKind {
        match self {
            Node::Number(_) => ValueKind::Scalar,
            Node::Str(_) => ValueKind::Str,
            Node::Neg(e) => e.kind(),
            Node::Selector(s) if s.range_ms > 0 => ValueKind::Matrix,
            Node::Selector(_) => ValueKind::Vector,
            Node::Subquery(_) => ValueKind::Matrix,
            Node::Call(c) => match c.name {
                "time" | "scalar" | "pi" => ValueKind::Scalar,
                _ => ValueKind::Vector,
            },
            Node::Aggregate(_) => ValueKind::Vector,
            Node::Binary(b) => {
                if b.lhs.kind() == ValueKind::Scalar && b.rhs.kind() == ValueKind::Scalar {
                    ValueKind::Scalar
                } else {
                    ValueKind::Vector
                }
            }
        }
    }
}

/// Functions the engine implements.
pub const SUPPORTED_FUNCTIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "deg",
    "delta",
    "deriv",
    "exp",
    "floor",
    "double_exponential_smoothing",
    "histogram_avg",
    "histogram_count",
    "histogram_fraction",
    "histogram_quantile",
    "histogram_stddev",
    "histogram_stdvar",
    "histogram_sum",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "vector",
    "year",
];

/// Parses `query` and lowers it. `start_ms`/`end_ms` resolve `@ start()` and `@ end()`;
/// `default_step_ms` is the subquery step when none is given.
pub fn plan(
    query: &str,
    start_ms: i64,
    end_ms: i64,
    default_step_ms: i64,
) -> Result<Node, QueryError> {
    register_prometheus2_functions();
    check_complexity(query)?;
    let expr = parse(query).map_err(|e| QueryError::BadData(parse_error_message(query, &e)))?;
    let mut lower = Lower {
        start_ms,
        end_ms,
        default_step_ms,
        next_selector: 0,
        next_subquery: 0,
    };
    lower.node(&expr)
}

/// Most nesting (brackets plus binary operators) a query may have. Parsing, planning and
/// evaluation recurse over the expression tree, so this bounds their stack use: deeper
/// queries get a `bad_data` error instead of overflowing a thread's stack.
pub const MAX_QUERY_DEPTH: usize = 128;

/// Rejects queries whose expression tree could be deeper than [`MAX_QUERY_DEPTH`]. The
/// estimate is the deepest bracket nesting plus the number of binary operators outside label
/// matchers and strings, an upper bound on the tree's depth.
pub fn check_complexity(query: &str) -> Result<(), QueryError> {
    let mut depth = 0usize;
    let mut max_depth = 0usize;
    let mut braces = 0usize;
    let mut ops = 0usize;
    let mut in_str: Option<char> = None;
    let mut escaped = false;
    let mut word = String::new();
    let flush = |word: &mut String, ops: &mut usize| {
        if matches!(
            word.to_ascii_lowercase().as_str(),
            "and" | "or" | "unless" | "atan2"
        ) {
            *ops += 1;
        }
        word.clear();
    };
    for c in query.chars() {
        if let Some(q) = in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                in_str = None;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut ops);
        match c {
            '"' | '\'' | '`' => in_str = Some(c),
            '(' | '[' => depth += 1,
            '{' => {
                depth += 1;
                braces += 1;
            }
            ')' | ']' => depth = depth.saturating_sub(1),
            '}' => {
                depth = depth.saturating_sub(1);
                braces = braces.saturating_sub(1);
            }
            '+' | '-' | '*' | '/' | '%' | '^' | '=' | '!' | '<' | '>' if braces == 0 => ops += 1,
            _ => {}
        }
        max_depth = max_depth.max(depth);
    }
    flush(&mut word, &mut ops);
    if max_depth + ops > MAX_QUERY_DEPTH {
        return Err(QueryError::BadData(format!(
            "query is too complex: {max_depth} levels of brackets and {ops} operators, more than {MAX_QUERY_DEPTH} in total"
        )));
    }
    Ok(())
}

/// Teaches the parser Prometheus 2.x's `holt_winters` (renamed
/// `double_exponential_smoothing` in 3.x, which the parser already knows), so 2.x rule files
/// keep working. Registration is process-wide and happens once.
pub fn register_prometheus2_functions() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use promql_parser::parser::value::ValueType;
        // The only possible error is a clash with a built-in, which would mean the parser
        // learnt `holt_winters` itself; then there is nothing to register.
        let _ = pp::register_extra_functions(vec![pp::Function::new(
            "holt_winters",
            vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
            0,
            ValueType::Vector,
            false,
        )]);
    });
}

/// Numbers of selectors and subqueries in a plan, for sizing per-query state.
pub fn count_ids(node: &Node) -> (usize, usize) {
    fn walk(n: &Node, sel: &mut usize, sub: &mut usize) {
        match n {
            Node::Number(_) | Node::Str(_) => {}
            Node::Neg(e) => walk(e, sel, sub),
            Node::Selector(s) => *sel = (*sel).max(s.id + 1),
            Node::Subquery(s) => {
                *sub = (*sub).max(s.id + 1);
                walk(&s.expr, sel, sub)
            }
            Node::Call(c) => c.args.iter().for_each(|a| walk(a, sel, sub)),
            Node::Aggregate(a) => {
                walk(&a.expr, sel, sub);
                if let Some(p) = &a.param {
                    walk(p, sel, sub)
                }
            }
            Node::Binary(b) => {
                walk(&b.lhs, sel, sub);
                walk(&b.rhs, sel, sub)
            }
        }
    }
    let (mut sel, mut sub) = (0, 0);
    walk(node, &mut sel, &mut sub);
    (sel, sub)
}

/// Makes the parser's message say where the problem is, as `line:column: parse error: ...`
/// like Prometheus. `promql-parser` reports no positions, so [`error_position`] estimates one.
fn parse_error_message(query: &str, err: &str) -> String {
    let pos = error_position(query);
    let (line, col) = line_col(query, pos);
    format!(
        "{line}:{col}: parse error: {err} (near position {pos}: {near:?})",
        near = query
            .get(pos..)
            .unwrap_or("")
            .chars()
            .take(20)
            .collect::<String>()
    )
}

/// Longest query for which [`error_position`] searches for the error position.
const MAX_POSITION_SCAN: usize = 2048;

/// Finds the byte offset where the query stops making sense: the end of the longest prefix
/// that parses once the brackets it leaves open are closed (then skipping whitespace). This
/// approximates the parser's own error position, which `promql-parser` does not report.
fn error_position(query: &str) -> usize {
    // Each candidate is a full parse; bound the work for very long queries.
    if query.len() > MAX_POSITION_SCAN {
        return 0;
    }
    let mut best = 0;
    let bytes: Vec<(usize, char)> = query.char_indices().collect();
    // Candidate cut points: every char boundary.
    for &(i, _) in bytes.iter().chain(std::iter::once(&(query.len(), ' '))) {
        let prefix = &query[..i];
        if prefix.trim().is_empty() {
            continue;
        }
        if completes(prefix) {
            best = i;
        }
    }
    // Skip whitespace to point at the offending token.
    let rest = &query[best..];
    best + (rest.len() - rest.trim_start().len())
}

/// True when `prefix`, closed with the brackets it leaves open, parses.
fn completes(prefix: &str) -> bool {
    let mut stack = Vec::new();
    let mut in_str: Option<char> = None;
    let mut escaped = false;
    for c in prefix.chars() {
        if let Some(q) = in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                in_str = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => in_str = Some(c),
            '(' => stack.push(')'),
            '[' => stack.push(']'),
            '{' => stack.push('}'),
            ')' | ']' | '}' if stack.pop() != Some(c) => return false,
            _ => {}
        }
    }
    if in_str.is_some() {
        return false;
    }
    let mut s = prefix.to_string();
    while let Some(c) = stack.pop() {
        s.push(c);
    }
    parse(&s).is_ok()
}

/// `promql-parser`'s parse, with its panics turned into parse errors: fuzzing found one
/// (`rate(up[5888…8m])`, a duration too large for `Duration`), and a query must never take
/// down the thread evaluating it.
fn parse(query: &str) -> Result<Expr, String> {
    std::panic::catch_unwind(|| pp::parse(query)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the parser failed".to_string());
        Err(format!("invalid query: {why}"))
    })
}

fn line_col(query: &str, pos: usize) -> (usize, usize) {
    let before = &query[..pos.min(query.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

struct Lower {
    start_ms: i64,
    end_ms: i64,
    default_step_ms: i64,
    next_selector: usize,
    next_subquery: usize,
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(*d),
        Some(Offset::Neg(d)) => -duration_ms(*d),
    }
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => duration_ms(d),
        Err(e) => -duration_ms(e.duration()),
    }
}

fn labels_of(l: &promql_parser::label::Labels) -> Vec<String> {
    l.labels.clone()
}

impl Lower {
    fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.start_ms),
            Some(AtModifier::End) => Some(self.end_ms),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        }
    }

    fn selector(&mut self, vs: &pp::VectorSelector, range_ms: i64) -> Result<Selector, QueryError> {
        if !vs.matchers.or_matchers.is_empty() {
            return Err(QueryError::BadData(
                "\"or\" inside label matchers is not supported".into(),
            ));
        }
        let mut matchers = Vec::with_capacity(vs.matchers.matchers.len() + 1);
        if let Some(name) = &vs.name {
            matchers.push(Matcher::equal(vigil_shared::model::METRIC_NAME, name));
        }
        for m in &vs.matchers.matchers {
            let op = match m.op {
                ParserMatchOp::Equal => MatchOp::Equal,
                ParserMatchOp::NotEqual => MatchOp::NotEqual,
                ParserMatchOp::Re(_) => MatchOp::Regex,
                ParserMatchOp::NotRe(_) => MatchOp::NotRegex,
            };
            matchers.push(
                Matcher::new(&m.name, op, &m.value)
                    .map_err(|e| QueryError::BadData(format!("parse error: {e}")))?,
            );
        }
        let id = self.next_selector;
        self.next_selector += 1;
        Ok(Selector {
            id,
            matchers,
            offset_ms: offset_ms(&vs.offset),
            at_ms: self.at_ms(&vs.at),
            range_ms,
        })
    }

    fn node(&mut self, e: &Expr) -> Result<Node, QueryError> {
        Ok(match e {
            Expr::NumberLiteral(n) => Node::Number(n.val),
            Expr::StringLiteral(s) => Node::Str(s.val.clone()),
            Expr::Paren(p) => self.node(&p.expr)?,
            Expr::Unary(u) => Node::Neg(Box::new(self.node(&u.expr)?)),
            Expr::VectorSelector(vs) => Node::Selector(self.selector(vs, 0)?),
            Expr::MatrixSelector(ms) => {
                let range = duration_ms(ms.range);
                Node::Selector(self.selector(&ms.vs, range)?)
            }
            Expr::Subquery(sq) => {
                let id = self.next_subquery;
                self.next_subquery += 1;
                let step_ms = sq
                    .step
                    .map(duration_ms)
                    .filter(|s| *s > 0)
                    .unwrap_or(self.default_step_ms)
                    .max(1);
                Node::Subquery(Subquery {
                    id,
                    expr: Box::new(self.node(&sq.expr)?),
                    range_ms: duration_ms(sq.range),
                    step_ms,
                    offset_ms: offset_ms(&sq.offset),
                    at_ms: self.at_ms(&sq.at),
                })
            }
            Expr::Call(c) => {
                let name = SUPPORTED_FUNCTIONS
                    .iter()
                    .find(|n| **n == c.func.name)
                    .ok_or_else(|| {
                        QueryError::BadData(format!(
                            "function {:?} is not supported by this engine",
                            c.func.name
                        ))
                    })?;
                let args = c
                    .args
                    .args
                    .iter()
                    .map(|a| self.node(a))
                    .collect::<Result<Vec<_>, _>>()?;
                Node::Call(Call { name, args })
            }
            Expr::Aggregate(a) => {
                let op = match a.op.id() {
                    token::T_SUM => AggOp::Sum,
                    token::T_AVG => AggOp::Avg,
                    token::T_MIN => AggOp::Min,
                    token::T_MAX => AggOp::Max,
                    token::T_COUNT => AggOp::Count,
                    token::T_STDDEV => AggOp::Stddev,
                    token::T_STDVAR => AggOp::Stdvar,
                    token::T_TOPK => AggOp::Topk,
                    token::T_BOTTOMK => AggOp::Bottomk,
                    token::T_QUANTILE => AggOp::Quantile,
                    token::T_COUNT_VALUES => AggOp::CountValues,
                    token::T_GROUP => AggOp::Group,
                    _ => {
                        return Err(QueryError::BadData(format!(
                            "aggregation {} is not supported by this engine",
                            a.op
                        )))
                    }
                };
                let grouping = match &a.modifier {
                    None => Grouping::By(Vec::new()),
                    Some(LabelModifier::Include(l)) => Grouping::By(labels_of(l)),
                    Some(LabelModifier::Exclude(l)) => Grouping::Without(labels_of(l)),
                };
                let param = match &a.param {
                    Some(p) => Some(Box::new(self.node(p)?)),
                    None => None,
                };
                Node::Aggregate(Aggregate {
                    op,
                    expr: Box::new(self.node(&a.expr)?),
                    param,
                    grouping,
                })
            }
            Expr::Binary(b) => {
                let op = match b.op.id() {
                    token::T_ADD => BinOp::Add,
                    token::T_SUB => BinOp::Sub,
                    token::T_MUL => BinOp::Mul,
                    token::T_DIV => BinOp::Div,
                    token::T_MOD => BinOp::Mod,
                    token::T_POW => BinOp::Pow,
                    token::T_ATAN2 => BinOp::Atan2,
                    token::T_EQLC => BinOp::Eq,
                    token::T_NEQ => BinOp::Ne,
                    token::T_GTR => BinOp::Gt,
                    token::T_LSS => BinOp::Lt,
                    token::T_GTE => BinOp::Ge,
                    token::T_LTE => BinOp::Le,
                    token::T_LAND => BinOp::And,
                    token::T_LOR => BinOp::Or,
                    token::T_LUNLESS => BinOp::Unless,
                    _ => {
                        return Err(QueryError::BadData(format!(
                            "binary operator {} is not supported by this engine",
                            b.op
                        )))
                    }
                };
                let (return_bool, matching) = match &b.modifier {
                    None => (
                        false,
                        VectorMatching {
                            card: if op.is_set() {
                                Cardinality::ManyToMany
                            } else {
                                Cardinality::OneToOne
                            },
                            on: false,
                            labels: Vec::new(),
                        },
                    ),
                    Some(m) => {
                        if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                            return Err(QueryError::BadData(
                                "fill modifiers are not supported by this engine".into(),
                            ));
                        }
                        let card = match &m.card {
                            VectorMatchCardinality::OneToOne => Cardinality::OneToOne,
                            VectorMatchCardinality::ManyToMany => Cardinality::ManyToMany,
                            VectorMatchCardinality::ManyToOne(l) => {
                                Cardinality::ManyToOne(labels_of(l))
                            }
                            VectorMatchCardinality::OneToMany(l) => {
                                Cardinality::OneToMany(labels_of(l))
                            }
                        };
                        let card = if op.is_set() {
                            Cardinality::ManyToMany
                        } else {
                            card
                        };
                        let (on, labels) = match &m.matching {
                            None => (false, Vec::new()),
                            Some(LabelModifier::Include(l)) => (true, labels_of(l)),
                            Some(LabelModifier::Exclude(l)) => (false, labels_of(l)),
                        };
                        (m.return_bool, VectorMatching { card, on, labels })
                    }
                };
                Node::Binary(Binary {
                    op,
                    lhs: Box::new(self.node(&b.lhs)?),
                    rhs: Box::new(self.node(&b.rhs)?),
                    return_bool,
                    matching,
                })
            }
            Expr::Extension(_) => {
                return Err(QueryError::BadData(
                    "extension expressions are not supported".into(),
                ))
            }
        })
    }
}

/// Parses a series selector as given to `match[]` (`up{job="x"}`, `{__name__=~"a.*"}`) into
/// storage matchers.
pub fn parse_series_selector(s: &str) -> Result<Vec<Matcher>, QueryError> {
    register_prometheus2_functions();
    check_complexity(s)?;
    let expr = parse(s).map_err(|e| QueryError::BadData(parse_error_message(s, &e)))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(QueryError::BadData(format!(
            "invalid series selector {s:?}: expected a vector selector"
        )));
    };
    let mut lower = Lower {
        start_ms: 0,
        end_ms: 0,
        default_step_ms: 1,
        next_selector: 0,
        next_subquery: 0,
    };
    Ok(lower.selector(&vs, 0)?.matchers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_get_name_matchers_and_at_is_resolved() {
        let n = plan(
            "rate(foo{a=~\"b.*\"}[5m] @ end() offset 1m)",
            1000,
            9000,
            60_000,
        )
        .unwrap();
        let Node::Call(c) = n else {
            panic!("not a call")
        };
        let Node::Selector(s) = &c.args[0] else {
            panic!("not a selector")
        };
        assert_eq!(s.matchers.len(), 2);
        assert_eq!(s.matchers[0].name, "__name__");
        assert_eq!(s.at_ms, Some(9000));
        assert_eq!(s.offset_ms, 60_000);
        assert_eq!(s.range_ms, 300_000);
    }

    #[test]
    fn parse_errors_name_a_position() {
        let err = plan("sum(rate(foo[5m])) by", 0, 0, 60_000).unwrap_err();
        assert!(matches!(err, QueryError::BadData(_)));
        let msg = err.to_string();
        assert!(msg.contains("parse error"), "{msg}");
        assert!(msg.starts_with("1:"), "{msg}");
        let err = plan("foo +", 0, 0, 60_000).unwrap_err().to_string();
        assert!(err.starts_with("1:5:"), "{err}");
        let err = plan("sum(up", 0, 0, 60_000).unwrap_err().to_string();
        assert!(err.starts_with("1:7:"), "{err}");
        assert!(err.contains("unclosed left parenthesis"), "{err}");
    }

    /// Found by `fuzz/fuzz_targets/promql.rs`: the parser panicked converting the range.
    #[test]
    fn an_enormous_duration_is_a_parse_error_not_a_panic() {
        let huge = format!("rate(up[{}m])", "8".repeat(60));
        for q in [huge.clone(), format!("{huge} + 1h")] {
            let err = plan(&q, 0, 0, 60_000).unwrap_err();
            assert!(matches!(err, QueryError::BadData(_)), "{err:?}");
            assert!(err.to_string().contains("parse error"), "{err}");
        }
    }

    #[test]
    fn deeply_nested_queries_are_rejected_not_stack_overflow() {
        use crate::query::{Engine, MemSource, QueryOptions};
        // At the limit, planning and evaluation fit in a 2 MiB stack (tokio's default for
        // blocking threads) even in a debug build.
        let at_limit = format!("{}1{}", "(".repeat(64), " + 1)".repeat(63) + ")");
        let chain = format!("1{}", "+1".repeat(120));
        for q in [at_limit, chain] {
            let ok = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || {
                    let e = Engine::new(
                        std::sync::Arc::new(MemSource::default()),
                        QueryOptions::default(),
                    );
                    e.instant(&q, 0, None).map(|_| ())
                })
                .unwrap()
                .join()
                .unwrap();
            assert!(ok.is_ok(), "{ok:?}");
        }
        for q in [
            format!("1{}", "+1".repeat(5000)),
            format!("{}1{}", "(".repeat(5000), ")".repeat(5000)),
            format!("{}up{}", "abs(".repeat(300), ")".repeat(300)),
        ] {
            let err = plan(&q, 0, 0, 1).unwrap_err();
            assert!(err.to_string().contains("too complex"), "{err}");
        }
        // Operators inside label matchers and strings do not count.
        let many = format!("up{{job=~\"{}\"}}", "a|b-c+".repeat(200));
        assert!(plan(&many, 0, 0, 1).is_ok());
    }

    #[test]
    fn unsupported_functions_are_bad_data() {
        assert!(matches!(
            plan("info(foo)", 0, 0, 1),
            Err(QueryError::BadData(_))
        ));
        assert!(plan("holt_winters(foo[5m], 0.5, 0.5)", 0, 0, 1).is_ok());
        assert_eq!(parse_series_selector("up{job=\"x\"}").unwrap().len(), 2);
        assert!(parse_series_selector("sum(up)").is_err());
    }
}
