//! The subset of Go's `text/template` that Prometheus alert labels and annotations use:
//! `{{ $labels.x }}`, `{{ $value }}`, `{{ $externalLabels.x }}`, `{{ $externalURL }}`,
//! `{{ .Labels.x }}`, `{{ .Value }}`, pipelines, `if`/`else if`/`else`/`end`, `range`, `with`,
//! variables, trim markers, and Prometheus's template functions (`humanize*`, `printf`,
//! `title`, `toUpper`, `toLower`, `reReplaceAll`, `match`, comparison and logic functions).
//! `query` (with `first`, `label`, `value`, `sortByLabel`) runs PromQL through the
//! [`TemplateData::query`] function at the evaluation time. Parse errors are reported like
//! Go's (`template: NAME:LINE: message`); [`expand`] never panics and turns an execution error
//! into Prometheus's `<error expanding template: …>` text.
//!
//! The same engine runs Alertmanager's notification templates ([`TemplateSet`]): there the
//! data is a [`NotifyData`] (`.Receiver`, `.Status`, `.Alerts` with `.Firing`/`.Resolved`,
//! `.GroupLabels`, `.CommonLabels`, `.CommonAnnotations`, `.ExternalURL`), label maps have
//! Alertmanager's `SortedPairs`/`Names`/`Values`/`Remove` methods, `define`/`template`/`block`
//! work, and the function set is Alertmanager's (`join`, `safeHtml`, `stringSlice`, …) instead
//! of Prometheus's. HTML bodies escape action output as Go's `html/template` does for element
//! text (attribute and script contexts are not distinguished).

use std::collections::BTreeMap;

use crate::gocompat::url_query_escape;

/// Why a template could not be parsed or executed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// The template text is malformed (Go's parse errors).
    #[error("template: {name}:{line}: {msg}")]
    Parse {
        /// Template name (`__alert_NAME`).
        name: String,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// The template failed while running.
    #[error("template: {name}: executing \"{name}\": {msg}")]
    Exec {
        /// Template name.
        name: String,
        /// What went wrong.
        msg: String,
    },
}

/// Runs a PromQL query for the template `query` function: the samples' labels and values.
pub type QueryFn = std::sync::Arc<
    dyn Fn(&str) -> Result<Vec<(BTreeMap<String, String>, f64)>, String> + Send + Sync,
>;

/// The data an alert template sees: `.Labels`, `.ExternalLabels`, `.ExternalURL`, `.Value`,
/// and the query function behind `query` (without one, `query` is an execution error).
#[derive(Clone, Default)]
pub struct TemplateData {
    pub labels: BTreeMap<String, String>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub value: f64,
    pub query: Option<QueryFn>,
}

impl std::fmt::Debug for TemplateData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateData")
            .field("labels", &self.labels)
            .field("external_labels", &self.external_labels)
            .field("external_url", &self.external_url)
            .field("value", &self.value)
            .field("query", &self.query.is_some())
            .finish()
    }
}

/// The functions Prometheus defines for templates (Go's builtins plus Prometheus's).
const FUNCS: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    "call",
    "slice",
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "safeHtml",
    "match",
    "title",
    "toUpper",
    "toLower",
    "graphLink",
    "tableLink",
    "sortByLabel",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "pathPrefix",
    "externalURL",
    "parseDuration",
    "stripPort",
    "stripDomain",
    "toTime",
];

/// The functions Alertmanager 0.25 defines for notification templates (Go's builtins plus
/// Alertmanager's `template.DefaultFuncs`).
const NOTIFY_FUNCS: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    "slice",
    "toUpper",
    "toLower",
    "title",
    "trimSpace",
    "join",
    "match",
    "safeHtml",
    "reReplaceAll",
    "stringSlice",
];

/// The variable definitions Prometheus puts before every alert template.
const PREAMBLE_VARS: &[&str] = &["$labels", "$externalLabels", "$externalURL", "$value"];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Var(String, Vec<String>),
    Field(Vec<String>),
    /// Fields right after a `)`: `(index .Alerts 0).Labels`.
    Chain(Vec<String>),
    Dot,
    Ident(String),
    Str(String),
    /// A number constant and whether Go would make it a float64 (it has `.`, `e` or `E`).
    Num(f64, bool),
    Bool(bool),
    Nil,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

#[derive(Debug, Clone)]
enum Arg {
    Var(String, Vec<String>),
    Field(Vec<String>),
    /// A parenthesized pipeline followed by fields.
    Chain(Box<Pipeline>, Vec<String>),
    Dot,
    Func(String),
    Str(String),
    /// A number constant and whether Go would make it a float64 (it has `.`, `e` or `E`).
    Num(f64, bool),
    Bool(bool),
    Nil,
    Sub(Box<Pipeline>),
}

#[derive(Debug, Clone)]
struct Pipeline {
    decl: Vec<String>,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    /// `{{ template "name" pipeline }}`.
    Call(String, Option<Pipeline>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    nodes: Vec<Node>,
    /// Templates it `define`s (notification templates only).
    defs: BTreeMap<String, Vec<Node>>,
}

/// One `{{ }}` action or a run of text, with the line it starts on.
enum Piece {
    Text(String),
    Action(Vec<Tok>, usize),
}

fn perr(name: &str, line: usize, msg: impl Into<String>) -> TemplateError {
    TemplateError::Parse {
        name: name.to_string(),
        line,
        msg: msg.into(),
    }
}

fn split(name: &str, text: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut line = 1usize;
    let mut pending_trim = false;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            let mut t = rest.to_string();
            if pending_trim {
                t = t.trim_start().to_string();
            }
            out.push(Piece::Text(t));
            break;
        };
        let mut t = rest[..open].to_string();
        line += t.matches('\n').count();
        let after = &rest[open + 2..];
        let trim_left =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if pending_trim {
            t = t.trim_start().to_string();
        }
        if trim_left {
            t = t.trim_end().to_string();
        }
        if !t.is_empty() {
            out.push(Piece::Text(t));
        }
        let body_start = if trim_left { &after[1..] } else { after };
        // Comments.
        let trimmed = body_start.trim_start();
        if let Some(c) = trimmed.strip_prefix("/*") {
            let Some(end) = c.find("*/") else {
                return Err(perr(name, line, "unclosed comment"));
            };
            let tail = c[end + 2..].trim_start();
            let (tail, trim_right) = if let Some(t) = tail.strip_prefix("-}}") {
                (t, true)
            } else if let Some(t) = tail.strip_prefix("}}") {
                (t, false)
            } else {
                return Err(perr(name, line, "comment ends before closing delimiter"));
            };
            line += c[..end].matches('\n').count();
            pending_trim = trim_right;
            rest = tail;
            continue;
        }
        let (toks, consumed, trim_right) = lex_action(name, body_start, line)?;
        line += body_start[..consumed].matches('\n').count();
        out.push(Piece::Action(toks, line));
        pending_trim = trim_right;
        rest = &body_start[consumed..];
    }
    Ok(out)
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Lexes one action body, returning its tokens, the bytes consumed (through `}}`) and
/// whether it ended with a trim marker.
fn lex_action(name: &str, s: &str, line: usize) -> Result<(Vec<Tok>, usize, bool), TemplateError> {
    let b: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0usize;
    let byte_len = |upto: usize| -> usize { b[..upto].iter().map(|c| c.len_utf8()).sum() };
    let mut paren_depth = 0i32;
    loop {
        if i >= b.len() {
            return Err(perr(name, line, "unclosed action"));
        }
        let c = b[i];
        if c == '\n' && paren_depth == 0 {
            return Err(perr(name, line, "unclosed action"));
        }
        if c.is_whitespace() {
            // " -}}"
            if b.get(i + 1) == Some(&'-')
                && b.get(i + 2) == Some(&'}')
                && b.get(i + 3) == Some(&'}')
            {
                return Ok((toks, byte_len(i + 4), true));
            }
            i += 1;
            continue;
        }
        if c == '}' && b.get(i + 1) == Some(&'}') {
            if paren_depth > 0 {
                return Err(perr(name, line, "unclosed left paren"));
            }
            return Ok((toks, byte_len(i + 2), false));
        }
        match c {
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                paren_depth += 1;
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                paren_depth -= 1;
                if paren_depth < 0 {
                    return Err(perr(name, line, "unexpected right paren U+0029 ')'"));
                }
                toks.push(Tok::RParen);
                i += 1;
                let mut fields = Vec::new();
                while b.get(i) == Some(&'.') && b.get(i + 1).is_some_and(|&c| is_ident_char(c)) {
                    i += 1;
                    let mut f = String::new();
                    while i < b.len() && is_ident_char(b[i]) {
                        f.push(b[i]);
                        i += 1;
                    }
                    fields.push(f);
                }
                if !fields.is_empty() {
                    toks.push(Tok::Chain(fields));
                }
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            ':' if b.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            '"' => {
                let mut j = i + 1;
                let mut v = String::new();
                loop {
                    match b.get(j) {
                        None | Some('\n') => {
                            return Err(perr(name, line, "unterminated quoted string"))
                        }
                        Some('"') => break,
                        Some('\\') => {
                            let e = b.get(j + 1).copied().unwrap_or(' ');
                            v.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '\\' => '\\',
                                '"' => '"',
                                '\'' => '\'',
                                other => {
                                    return Err(perr(
                                        name,
                                        line,
                                        format!("invalid syntax: unknown escape \\{other}"),
                                    ))
                                }
                            });
                            j += 2;
                        }
                        Some(&ch) => {
                            v.push(ch);
                            j += 1;
                        }
                    }
                }
                toks.push(Tok::Str(v));
                i = j + 1;
            }
            '`' => {
                let mut j = i + 1;
                let mut v = String::new();
                loop {
                    match b.get(j) {
                        None => return Err(perr(name, line, "unterminated raw quoted string")),
                        Some('`') => break,
                        Some(&ch) => {
                            v.push(ch);
                            j += 1;
                        }
                    }
                }
                toks.push(Tok::Str(v));
                i = j + 1;
            }
            '$' | '.' => {
                let mut j = i + 1;
                let mut head = String::new();
                if c == '$' {
                    head.push('$');
                    while j < b.len() && is_ident_char(b[j]) {
                        head.push(b[j]);
                        j += 1;
                    }
                } else if j >= b.len() || !is_ident_char(b[j]) || b[j].is_ascii_digit() {
                    if j < b.len() && b[j].is_ascii_digit() {
                        // A number like .5
                        let mut k = j;
                        while k < b.len() && (b[k].is_ascii_alphanumeric() || b[k] == '.') {
                            k += 1;
                        }
                        let text: String = b[i..k].iter().collect();
                        let v: f64 = text.parse().map_err(|_| {
                            perr(name, line, format!("bad number syntax: {text:?}"))
                        })?;
                        toks.push(Tok::Num(v, true));
                        i = k;
                        continue;
                    }
                    toks.push(Tok::Dot);
                    i = j;
                    continue;
                }
                let mut fields = Vec::new();
                if c == '.' {
                    j -= 1;
                }
                while j < b.len() && b[j] == '.' && j + 1 < b.len() && is_ident_char(b[j + 1]) {
                    j += 1;
                    let mut f = String::new();
                    while j < b.len() && is_ident_char(b[j]) {
                        f.push(b[j]);
                        j += 1;
                    }
                    fields.push(f);
                }
                if c == '$' {
                    toks.push(Tok::Var(head, fields));
                } else {
                    toks.push(Tok::Field(fields));
                }
                i = j;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+')
                    && b.get(i + 1)
                        .is_some_and(|d| d.is_ascii_digit() || *d == '.')) =>
            {
                let mut k = i + 1;
                while k < b.len()
                    && (b[k].is_ascii_alphanumeric()
                        || b[k] == '.'
                        || ((b[k] == '-' || b[k] == '+') && matches!(b[k - 1], 'e' | 'E')))
                {
                    k += 1;
                }
                let text: String = b[i..k].iter().collect();
                let v = parse_go_number(&text)
                    .ok_or_else(|| perr(name, line, format!("bad number syntax: {text:?}")))?;
                let hex = text.trim_start_matches(['-', '+']).starts_with("0x");
                toks.push(Tok::Num(v, !hex && text.contains(['.', 'e', 'E'])));
                i = k;
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut k = i;
                let mut w = String::new();
                while k < b.len() && is_ident_char(b[k]) {
                    w.push(b[k]);
                    k += 1;
                }
                toks.push(match w.as_str() {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    "nil" => Tok::Nil,
                    _ => Tok::Ident(w),
                });
                i = k;
            }
            other => return Err(perr(name, line, format!("unexpected {other:?} in command"))),
        }
    }
}

fn parse_go_number(s: &str) -> Option<f64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return i64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    s.parse::<f64>().ok()
}

struct Parser<'a> {
    name: &'a str,
    pieces: Vec<Piece>,
    pos: usize,
    vars: Vec<String>,
    /// Alertmanager's dialect: its functions, `define`/`template`/`block`.
    notify: bool,
    defs: BTreeMap<String, Vec<Node>>,
}

enum Stop {
    Eof,
    End,
    Else(Vec<Tok>),
}

impl Template {
    /// Parses `text` as an alert template named `name`, with Prometheus's variables
    /// (`$labels`, `$externalLabels`, `$externalURL`, `$value`) defined.
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        let pieces = split(name, text)?;
        let mut p = Parser {
            name,
            pieces,
            pos: 0,
            vars: PREAMBLE_VARS
                .iter()
                .map(|s| s.to_string())
                .chain(["$".into()])
                .collect(),
            notify: false,
            defs: BTreeMap::new(),
        };
        let (nodes, end) = p.list()?;
        match end {
            Stop::Eof => {}
            Stop::End => return Err(perr(name, p.line(), "unexpected {{end}}")),
            Stop::Else(_) => return Err(perr(name, p.line(), "unexpected {{else}}")),
        }
        Ok(Template {
            name: name.to_string(),
            nodes,
            defs: BTreeMap::new(),
        })
    }

    /// Parses `text` in Alertmanager's notification dialect.
    fn parse_notify(name: &str, text: &str) -> Result<Template, TemplateError> {
        let pieces = split(name, text)?;
        let mut p = Parser {
            name,
            pieces,
            pos: 0,
            vars: vec!["$".into()],
            notify: true,
            defs: BTreeMap::new(),
        };
        let (nodes, end) = p.list()?;
        match end {
            Stop::Eof => {}
            Stop::End => return Err(perr(name, p.line(), "unexpected {{end}}")),
            Stop::Else(_) => return Err(perr(name, p.line(), "unexpected {{else}}")),
        }
        Ok(Template {
            name: name.to_string(),
            nodes,
            defs: p.defs,
        })
    }

    /// Runs the template over `data`.
    pub fn execute(&self, data: &TemplateData) -> Result<String, TemplateError> {
        let mut ex = Exec {
            name: &self.name,
            vars: vec![
                ("$".into(), Val::Root),
                ("$labels".into(), Val::Map(data.labels.clone())),
                (
                    "$externalLabels".into(),
                    Val::Map(data.external_labels.clone()),
                ),
                ("$externalURL".into(), Val::Str(data.external_url.clone())),
                ("$value".into(), Val::F64(data.value)),
            ],
            data,
            out: String::new(),
            defs: &self.defs,
            depth: 0,
            escape_html: false,
            notify: false,
        };
        ex.nodes(&self.nodes, &Val::Root)?;
        Ok(ex.out)
    }
}

/// Expands `text` for an alert the way Prometheus does: on any error the result is
/// `<error expanding template: …>`.
pub fn expand(name: &str, text: &str, data: &TemplateData) -> String {
    match Template::parse(name, text).and_then(|t| t.execute(data)) {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: {e}>"),
    }
}

impl Parser<'_> {
    fn line(&self) -> usize {
        self.pieces[..self.pos.min(self.pieces.len())]
            .iter()
            .rev()
            .find_map(|p| match p {
                Piece::Action(_, l) => Some(*l),
                _ => None,
            })
            .unwrap_or(1)
    }

    fn list(&mut self) -> Result<(Vec<Node>, Stop), TemplateError> {
        let mut nodes = Vec::new();
        while self.pos < self.pieces.len() {
            let idx = self.pos;
            self.pos += 1;
            let (toks, line) = match &self.pieces[idx] {
                Piece::Text(t) => {
                    nodes.push(Node::Text(t.clone()));
                    continue;
                }
                Piece::Action(t, l) => (t.clone(), *l),
            };
            let name = self.name;
            match toks.first() {
                None => return Err(perr(name, line, "missing value for command")),
                Some(Tok::Ident(k)) if k == "end" => {
                    if toks.len() > 1 {
                        return Err(perr(name, line, "unexpected token in end"));
                    }
                    return Ok((nodes, Stop::End));
                }
                Some(Tok::Ident(k)) if k == "else" => {
                    return Ok((nodes, Stop::Else(toks[1..].to_vec())));
                }
                Some(Tok::Ident(k)) if k == "if" || k == "range" || k == "with" => {
                    let kind = k.clone();
                    let n = self.control(&kind, &toks[1..], line)?;
                    nodes.push(n);
                }
                Some(Tok::Ident(k)) if self.notify && (k == "define" || k == "block") => {
                    let kind = k.clone();
                    let Some(Tok::Str(def)) = toks.get(1) else {
                        return Err(perr(name, line, format!("{kind} clause: missing name")));
                    };
                    let def = def.clone();
                    let arg = if kind == "block" {
                        Some(self.pipeline(&toks[2..], line, false)?)
                    } else if toks.len() > 2 {
                        return Err(perr(name, line, "unexpected token in define clause"));
                    } else {
                        None
                    };
                    let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
                    let (body, end) = self.list()?;
                    self.vars = saved;
                    if !matches!(end, Stop::End) {
                        return Err(perr(name, line, format!("unexpected EOF in {kind}")));
                    }
                    self.defs.insert(def.clone(), body);
                    if kind == "block" {
                        nodes.push(Node::Call(def, arg));
                    }
                }
                Some(Tok::Ident(k)) if self.notify && k == "template" => {
                    let Some(Tok::Str(def)) = toks.get(1) else {
                        return Err(perr(name, line, "template clause: missing name"));
                    };
                    let arg = if toks.len() > 2 {
                        Some(self.pipeline(&toks[2..], line, false)?)
                    } else {
                        None
                    };
                    nodes.push(Node::Call(def.clone(), arg));
                }
                Some(Tok::Ident(k))
                    if matches!(
                        k.as_str(),
                        "define" | "template" | "block" | "break" | "continue"
                    ) =>
                {
                    return Err(perr(
                        name,
                        line,
                        format!("{k} is not supported in alert templates"),
                    ));
                }
                _ => {
                    let pipe = self.pipeline(&toks, line, true)?;
                    nodes.push(Node::Action(pipe));
                }
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn control(&mut self, kind: &str, toks: &[Tok], line: usize) -> Result<Node, TemplateError> {
        let saved = self.vars.len();
        let pipe = self.pipeline(toks, line, true)?;
        if pipe.cmds.is_empty() {
            return Err(perr(self.name, line, format!("missing value for {kind}")));
        }
        let (body, end) = self.list()?;
        let else_ = match end {
            Stop::Eof => return Err(perr(self.name, line, "unexpected EOF")),
            Stop::End => Vec::new(),
            Stop::Else(rest) => {
                self.vars.truncate(saved);
                if rest.is_empty() {
                    let (e, end2) = self.list()?;
                    match end2 {
                        Stop::End => e,
                        Stop::Eof => return Err(perr(self.name, line, "unexpected EOF")),
                        Stop::Else(_) => {
                            return Err(perr(self.name, line, "expected end; found {{else}}"))
                        }
                    }
                } else {
                    // `else if …` / `else with …`: a nested control sharing our `end`.
                    match rest.first() {
                        Some(Tok::Ident(k)) if (k == "if" || k == "with") && k == kind => {
                            let k = k.clone();
                            vec![self.control(&k, &rest[1..], line)?]
                        }
                        _ => return Err(perr(self.name, line, "unexpected token in else")),
                    }
                }
            }
        };
        self.vars.truncate(saved);
        Ok(match kind {
            "if" => Node::If(pipe, body, else_),
            "range" => Node::Range(pipe, body, else_),
            _ => Node::With(pipe, body, else_),
        })
    }

    fn pipeline(
        &mut self,
        toks: &[Tok],
        line: usize,
        top: bool,
    ) -> Result<Pipeline, TemplateError> {
        let name = self.name;
        let mut decl = Vec::new();
        let mut rest = toks;
        // `$x := …`, `$i, $x := …`, `$x = …`
        if top {
            let mut j = 0;
            let mut names = Vec::new();
            while let Some(Tok::Var(v, f)) = rest.get(j) {
                if !f.is_empty() {
                    break;
                }
                names.push(v.clone());
                match rest.get(j + 1) {
                    Some(Tok::Comma) => j += 2,
                    Some(Tok::Declare) | Some(Tok::Assign) => {
                        let declare = matches!(rest.get(j + 1), Some(Tok::Declare));
                        for n in &names {
                            if declare {
                                self.vars.push(n.clone());
                            } else if !self.vars.contains(n) {
                                return Err(perr(
                                    name,
                                    line,
                                    format!("undefined variable \"{n}\""),
                                ));
                            }
                        }
                        decl = names.clone();
                        rest = &rest[j + 2..];
                        break;
                    }
                    _ => break,
                }
            }
        }
        let mut cmds = Vec::new();
        let mut cur: Vec<Arg> = Vec::new();
        let mut i = 0;
        while i < rest.len() {
            match &rest[i] {
                Tok::Pipe => {
                    if cur.is_empty() {
                        return Err(perr(name, line, "missing command"));
                    }
                    cmds.push(std::mem::take(&mut cur));
                }
                Tok::LParen => {
                    let mut depth = 0;
                    let mut k = i;
                    loop {
                        match rest.get(k) {
                            Some(Tok::LParen) => depth += 1,
                            Some(Tok::RParen) => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            None => return Err(perr(name, line, "unclosed left paren")),
                            _ => {}
                        }
                        k += 1;
                    }
                    let sub = self.pipeline(&rest[i + 1..k], line, false)?;
                    if sub.cmds.is_empty() {
                        return Err(perr(name, line, "missing value for parenthesized pipeline"));
                    }
                    if let Some(Tok::Chain(fields)) = rest.get(k + 1) {
                        cur.push(Arg::Chain(Box::new(sub), fields.clone()));
                        k += 1;
                    } else {
                        cur.push(Arg::Sub(Box::new(sub)));
                    }
                    i = k;
                }
                Tok::RParen | Tok::Chain(_) => {
                    return Err(perr(name, line, "unexpected right paren"))
                }
                Tok::Var(v, f) => {
                    if !self.vars.contains(v) {
                        return Err(perr(name, line, format!("undefined variable \"{v}\"")));
                    }
                    cur.push(Arg::Var(v.clone(), f.clone()));
                }
                Tok::Field(f) => cur.push(Arg::Field(f.clone())),
                Tok::Dot => cur.push(Arg::Dot),
                Tok::Ident(id) => {
                    let funcs = if self.notify { NOTIFY_FUNCS } else { FUNCS };
                    if !funcs.contains(&id.as_str()) {
                        return Err(perr(name, line, format!("function \"{id}\" not defined")));
                    }
                    cur.push(Arg::Func(id.clone()));
                }
                Tok::Str(s) => cur.push(Arg::Str(s.clone())),
                Tok::Num(n, f) => cur.push(Arg::Num(*n, *f)),
                Tok::Bool(b) => cur.push(Arg::Bool(*b)),
                Tok::Nil => cur.push(Arg::Nil),
                Tok::Declare | Tok::Assign | Tok::Comma => {
                    return Err(perr(name, line, "unexpected token in operand"))
                }
            }
            i += 1;
        }
        if !cur.is_empty() {
            cmds.push(cur);
        } else if !cmds.is_empty() {
            return Err(perr(name, line, "missing command"));
        }
        if top && cmds.is_empty() {
            return Err(perr(name, line, "missing value for command"));
        }
        for c in &cmds[1.min(cmds.len())..] {
            if !matches!(
                c.first(),
                Some(Arg::Func(_))
                    | Some(Arg::Sub(_))
                    | Some(Arg::Chain(..))
                    | Some(Arg::Field(_))
                    | Some(Arg::Var(..))
                    | Some(Arg::Dot)
            ) {
                return Err(perr(
                    name,
                    line,
                    "non executable command in pipeline stage 2",
                ));
            }
        }
        Ok(Pipeline { decl, cmds })
    }
}

/// A value during execution.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Root,
    Str(String),
    F64(f64),
    Int(i64),
    Bool(bool),
    Map(BTreeMap<String, String>),
    Nil,
    /// A missing map key: prints `<no value>`.
    Missing,
    /// A query result.
    Samples(Vec<(BTreeMap<String, String>, f64)>),
    /// One sample of a query result.
    Sample(BTreeMap<String, String>, f64),
    /// A slice (`.Alerts`, `SortedPairs`, `Names`, `Values`, `stringSlice`).
    List(Vec<Val>),
    /// Alertmanager's `template.Pair`.
    Pair(String, String),
    /// A struct (notification data, one alert).
    Obj(std::sync::Arc<Obj>),
    /// A `time.Time`; `None` is Go's zero time.
    Time(Option<std::time::SystemTime>),
    /// `safeHtml` output: not escaped in HTML templates.
    Safe(String),
}

/// A struct value with its Go type name and fields.
#[derive(Debug, Clone, PartialEq)]
struct Obj {
    ty: &'static str,
    fields: Vec<(&'static str, Val)>,
}

impl Val {
    fn truthy(&self) -> bool {
        match self {
            Val::Root => true,
            Val::Str(s) => !s.is_empty(),
            Val::F64(f) => *f != 0.0,
            Val::Int(i) => *i != 0,
            Val::Bool(b) => *b,
            Val::Map(m) => !m.is_empty(),
            Val::Nil | Val::Missing => false,
            Val::Samples(v) => !v.is_empty(),
            Val::Sample(..) => true,
            Val::List(v) => !v.is_empty(),
            Val::Pair(..) | Val::Obj(_) => true,
            Val::Time(t) => t.is_some(),
            Val::Safe(s) => !s.is_empty(),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Val::Root => "*template.Data",
            Val::Str(_) => "string",
            Val::F64(_) => "float64",
            Val::Int(_) => "int",
            Val::Bool(_) => "bool",
            Val::Map(_) => "map[string]string",
            Val::Nil => "nil",
            Val::Missing => "<nil>",
            Val::Samples(_) => "template.queryResult",
            Val::Sample(..) => "*template.sample",
            Val::List(_) => "[]interface {}",
            Val::Pair(..) => "template.Pair",
            Val::Obj(o) => o.ty,
            Val::Time(_) => "time.Time",
            Val::Safe(_) => "template.HTML",
        }
    }

    fn print(&self) -> String {
        match self {
            Val::Root => "{...}".into(),
            Val::Str(s) => s.clone(),
            Val::F64(f) => go_float_v(*f),
            Val::Int(i) => i.to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Map(m) => {
                let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("map[{}]", inner.join(" "))
            }
            Val::Nil => "<nil>".into(),
            Val::Missing => "<no value>".into(),
            Val::Samples(v) => {
                let inner: Vec<String> = v
                    .iter()
                    .map(|(l, x)| Val::Sample(l.clone(), *x).print())
                    .collect();
                format!("[{}]", inner.join(" "))
            }
            Val::Sample(l, x) => {
                let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{map[{}] {}}}", inner.join(" "), go_float_v(*x))
            }
            Val::List(v) => {
                let inner: Vec<String> = v.iter().map(Val::print).collect();
                format!("[{}]", inner.join(" "))
            }
            Val::Pair(n, v) => format!("{{{n} {v}}}"),
            Val::Obj(o) => {
                let inner: Vec<String> = o.fields.iter().map(|(_, v)| v.print()).collect();
                format!("{{{}}}", inner.join(" "))
            }
            Val::Time(t) => go_time_string(*t),
            Val::Safe(s) => s.clone(),
        }
    }
}

/// Go's `time.Time.String()` for a UTC time: `2006-01-02 15:04:05.999999999 +0000 UTC`.
fn go_time_string(t: Option<std::time::SystemTime>) -> String {
    let s = crate::gocompat::rfc3339(t);
    let s = s.trim_end_matches('Z').replacen('T', " ", 1);
    format!("{s} +0000 UTC")
}

struct Exec<'a> {
    name: &'a str,
    vars: Vec<(String, Val)>,
    data: &'a TemplateData,
    out: String,
    /// Named templates `{{ template }}` can call.
    defs: &'a BTreeMap<String, Vec<Node>>,
    /// Nesting of `{{ template }}` calls, bounded like Go's `maxExecDepth`.
    depth: usize,
    /// Escape action output for HTML element text (`html/template`).
    escape_html: bool,
    /// Alertmanager's data model (label-map methods) instead of Prometheus's.
    notify: bool,
}

/// Go's text/template gives up beyond this many nested template calls.
const MAX_EXEC_DEPTH: usize = 100_000 / 100;

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

impl Exec<'_> {
    fn err(&self, msg: impl Into<String>) -> TemplateError {
        TemplateError::Exec {
            name: self.name.to_string(),
            msg: msg.into(),
        }
    }

    fn nodes(&mut self, nodes: &[Node], dot: &Val) -> Result<(), TemplateError> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        let s = v.print();
                        if self.escape_html && !matches!(v, Val::Safe(_)) {
                            self.out.push_str(&html_escape(&s));
                        } else {
                            self.out.push_str(&s);
                        }
                    }
                }
                Node::Call(name, arg) => {
                    let v = match arg {
                        Some(p) => self.pipeline(p, dot)?,
                        None => Val::Nil,
                    };
                    let Some(body) = self.defs.get(name) else {
                        return Err(self.err(format!("no such template {name:?}")));
                    };
                    if self.depth >= MAX_EXEC_DEPTH {
                        return Err(self.err("exceeded maximum template depth"));
                    }
                    let saved = std::mem::replace(&mut self.vars, vec![("$".into(), v.clone())]);
                    self.depth += 1;
                    let r = self.nodes(body, &v);
                    self.depth -= 1;
                    self.vars = saved;
                    r?;
                }
                Node::If(p, a, b) => {
                    let saved = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    if v.truthy() {
                        self.nodes(a, dot)?;
                    } else {
                        self.nodes(b, dot)?;
                    }
                    self.vars.truncate(saved);
                }
                Node::With(p, a, b) => {
                    let saved = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    if v.truthy() {
                        self.nodes(a, &v)?;
                    } else {
                        self.nodes(b, dot)?;
                    }
                    self.vars.truncate(saved);
                }
                Node::Range(p, a, b) => {
                    let saved = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    // Declared variables are re-bound per element.
                    let decl = p.decl.clone();
                    self.vars.truncate(saved);
                    match v {
                        Val::Map(m) if !m.is_empty() => {
                            for (k, val) in m {
                                let mark = self.vars.len();
                                match decl.len() {
                                    1 => self.vars.push((decl[0].clone(), Val::Str(val.clone()))),
                                    2 => {
                                        self.vars.push((decl[0].clone(), Val::Str(k.clone())));
                                        self.vars.push((decl[1].clone(), Val::Str(val.clone())));
                                    }
                                    _ => {}
                                }
                                self.nodes(a, &Val::Str(val))?;
                                self.vars.truncate(mark);
                            }
                        }
                        Val::Int(n) if n > 0 => {
                            for i in 0..n {
                                let mark = self.vars.len();
                                if let Some(d) = decl.first() {
                                    self.vars.push((d.clone(), Val::Int(i)));
                                }
                                self.nodes(a, &Val::Int(i))?;
                                self.vars.truncate(mark);
                            }
                        }
                        Val::Samples(list) if !list.is_empty() => {
                            for (i, (l, x)) in list.into_iter().enumerate() {
                                let mark = self.vars.len();
                                let el = Val::Sample(l, x);
                                match decl.len() {
                                    1 => self.vars.push((decl[0].clone(), el.clone())),
                                    2 => {
                                        self.vars.push((decl[0].clone(), Val::Int(i as i64)));
                                        self.vars.push((decl[1].clone(), el.clone()));
                                    }
                                    _ => {}
                                }
                                self.nodes(a, &el)?;
                                self.vars.truncate(mark);
                            }
                        }
                        Val::List(list) if !list.is_empty() => {
                            for (i, el) in list.into_iter().enumerate() {
                                let mark = self.vars.len();
                                match decl.len() {
                                    1 => self.vars.push((decl[0].clone(), el.clone())),
                                    2 => {
                                        self.vars.push((decl[0].clone(), Val::Int(i as i64)));
                                        self.vars.push((decl[1].clone(), el.clone()));
                                    }
                                    _ => {}
                                }
                                self.nodes(a, &el)?;
                                self.vars.truncate(mark);
                            }
                        }
                        Val::Map(_)
                        | Val::Nil
                        | Val::Missing
                        | Val::Int(_)
                        | Val::Samples(_)
                        | Val::List(_) => self.nodes(b, dot)?,
                        other => {
                            return Err(
                                self.err(format!("range can't iterate over {}", other.print()))
                            )
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn lookup_var(&self, name: &str) -> Val {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or(Val::Missing)
    }

    fn field(&self, base: Val, fields: &[String]) -> Result<Val, TemplateError> {
        let mut v = base;
        for f in fields {
            v = match v {
                Val::Root => match f.as_str() {
                    "Labels" => Val::Map(self.data.labels.clone()),
                    "ExternalLabels" => Val::Map(self.data.external_labels.clone()),
                    "ExternalURL" => Val::Str(self.data.external_url.clone()),
                    "Value" => Val::F64(self.data.value),
                    _ => {
                        return Err(
                            self.err(format!("can't evaluate field {f} in type *template.Data"))
                        )
                    }
                },
                Val::Map(m) if self.defs_mode() => match f.as_str() {
                    "SortedPairs" => Val::List(
                        m.iter()
                            .map(|(k, v)| Val::Pair(k.clone(), v.clone()))
                            .collect(),
                    ),
                    "Names" => Val::List(m.keys().map(|k| Val::Str(k.clone())).collect()),
                    "Values" => Val::List(m.values().map(|v| Val::Str(v.clone())).collect()),
                    _ => m
                        .get(f)
                        .map(|s| Val::Str(s.clone()))
                        .unwrap_or(Val::Str(String::new())),
                },
                Val::Map(m) => m
                    .get(f)
                    .map(|s| Val::Str(s.clone()))
                    .unwrap_or(Val::Str(String::new())),
                Val::Pair(n, v) => match f.as_str() {
                    "Name" => Val::Str(n),
                    "Value" => Val::Str(v),
                    _ => {
                        return Err(
                            self.err(format!("can't evaluate field {f} in type template.Pair"))
                        )
                    }
                },
                Val::Obj(o) => match o.fields.iter().find(|(n, _)| *n == f.as_str()) {
                    Some((_, v)) => v.clone(),
                    None => {
                        return Err(self.err(format!("can't evaluate field {f} in type {}", o.ty)))
                    }
                },
                Val::List(items) => match f.as_str() {
                    // template.Pairs
                    "Names" | "Values" if items.iter().all(|i| matches!(i, Val::Pair(..))) => {
                        Val::List(
                            items
                                .into_iter()
                                .map(|i| match i {
                                    Val::Pair(n, v) => Val::Str(if f == "Names" { n } else { v }),
                                    other => other,
                                })
                                .collect(),
                        )
                    }
                    // template.Alerts
                    "Firing" | "Resolved" => {
                        let want = if f == "Firing" { "firing" } else { "resolved" };
                        Val::List(
                            items
                                .into_iter()
                                .filter(|i| match i {
                                    Val::Obj(o) => o.fields.iter().any(|(n, v)| {
                                        *n == "Status" && *v == Val::Str(want.into())
                                    }),
                                    _ => false,
                                })
                                .collect(),
                        )
                    }
                    _ => {
                        return Err(
                            self.err(format!("can't evaluate field {f} in type []interface {{}}"))
                        )
                    }
                },
                Val::Sample(l, x) => match f.as_str() {
                    "Labels" => Val::Map(l),
                    "Value" => Val::F64(x),
                    _ => {
                        return Err(
                            self.err(format!("can't evaluate field {f} in type *template.sample"))
                        )
                    }
                },
                Val::Time(t) => match f.as_str() {
                    "Unix" => Val::Int(crate::gocompat::time::unix_parts(t).0),
                    "UnixMilli" => {
                        let (s, n) = crate::gocompat::time::unix_parts(t);
                        Val::Int(s * 1000 + i64::from(n / 1_000_000))
                    }
                    // The collector's times are UTC, and so is its local zone.
                    "UTC" | "Local" => Val::Time(t),
                    "IsZero" => Val::Bool(t.is_none()),
                    _ => {
                        return Err(self.err(format!("can't evaluate field {f} in type time.Time")))
                    }
                },
                Val::Nil | Val::Missing => {
                    return Err(self.err(format!("nil pointer evaluating interface {{}}.{f}")))
                }
                other => {
                    return Err(self.err(format!(
                        "can't evaluate field {f} in type {}",
                        other.type_name()
                    )))
                }
            };
        }
        Ok(v)
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Val) -> Result<Val, TemplateError> {
        let mut prev: Option<Val> = None;
        for cmd in &p.cmds {
            prev = Some(self.command(cmd, dot, prev)?);
        }
        let v = prev.unwrap_or(Val::Nil);
        if let Some(last) = p.decl.last() {
            self.vars.push((last.clone(), v.clone()));
        }
        Ok(v)
    }

    fn operand(&mut self, a: &Arg, dot: &Val) -> Result<Val, TemplateError> {
        Ok(match a {
            Arg::Var(n, f) => {
                let base = self.lookup_var(n);
                self.field(base, f)?
            }
            Arg::Field(f) => self.field(dot.clone(), f)?,
            Arg::Dot => dot.clone(),
            Arg::Func(f) => self.call(f, Vec::new())?,
            Arg::Str(s) => Val::Str(s.clone()),
            Arg::Num(n, is_float) => {
                if !is_float && n.fract() == 0.0 && n.abs() < 9e15 {
                    Val::Int(*n as i64)
                } else {
                    Val::F64(*n)
                }
            }
            Arg::Bool(b) => Val::Bool(*b),
            Arg::Nil => Val::Nil,
            Arg::Sub(p) => self.pipeline(p, dot)?,
            Arg::Chain(p, f) => {
                let base = self.pipeline(p, dot)?;
                self.field(base, f)?
            }
        })
    }

    fn command(&mut self, cmd: &[Arg], dot: &Val, prev: Option<Val>) -> Result<Val, TemplateError> {
        match cmd.first() {
            Some(Arg::Func(f)) => {
                let mut args = Vec::with_capacity(cmd.len());
                for a in &cmd[1..] {
                    args.push(self.operand(a, dot)?);
                }
                if let Some(p) = prev {
                    args.push(p);
                }
                self.call(f, args)
            }
            Some(first @ (Arg::Field(fields) | Arg::Var(_, fields) | Arg::Chain(_, fields)))
                if fields.last().is_some_and(|f| f == "Format")
                    && (cmd.len() > 1 || prev.is_some()) =>
            {
                // time.Time.Format(layout string) string
                let base = match first {
                    Arg::Var(n, _) => self.lookup_var(n),
                    Arg::Chain(p, _) => self.pipeline(p, dot)?,
                    _ => dot.clone(),
                };
                let t = self.field(base, &fields[..fields.len() - 1])?;
                let Val::Time(t) = t else {
                    return Err(self.err(format!(
                        "can't evaluate field Format in type {}",
                        t.type_name()
                    )));
                };
                let mut args = Vec::new();
                for a in &cmd[1..] {
                    args.push(self.operand(a, dot)?);
                }
                args.extend(prev);
                match args.as_slice() {
                    [Val::Str(layout)] => Ok(Val::Str(crate::gocompat::time::format(t, layout))),
                    [other] => Err(self.err(format!(
                        "wrong type for value; expected string; got {}",
                        other.type_name()
                    ))),
                    _ => Err(self.err("wrong number of args for Format: want 1")),
                }
            }
            Some(Arg::Field(fields)) | Some(Arg::Var(_, fields))
                if self.defs_mode()
                    && fields.last().is_some_and(|f| f == "Remove")
                    && (cmd.len() > 1 || prev.is_some()) =>
            {
                // KV.Remove(keys []string): the map without those keys.
                let base = match &cmd[0] {
                    Arg::Var(n, _) => self.lookup_var(n),
                    _ => dot.clone(),
                };
                let m = self.field(base, &fields[..fields.len() - 1])?;
                let mut keys = Vec::new();
                for a in &cmd[1..] {
                    keys.push(self.operand(a, dot)?);
                }
                keys.extend(prev);
                let Val::Map(mut m) = m else {
                    return Err(self.err(format!(
                        "can't evaluate field Remove in type {}",
                        m.type_name()
                    )));
                };
                if keys.len() != 1 {
                    return Err(self.err("wrong number of args for Remove: want 1"));
                }
                match &keys[0] {
                    Val::List(v) => {
                        for k in v {
                            m.remove(&self.str_arg(k));
                        }
                    }
                    other => {
                        return Err(self.err(format!(
                            "wrong type for value; expected []string; got {}",
                            other.type_name()
                        )))
                    }
                }
                Ok(Val::Map(m))
            }
            Some(a) => {
                if cmd.len() > 1 || prev.is_some() {
                    return Err(self.err(format!("can't give argument to non-function {a:?}")));
                }
                self.operand(a, dot)
            }
            None => Err(self.err("empty command")),
        }
    }

    /// Whether this is a notification template (Alertmanager's data model).
    fn defs_mode(&self) -> bool {
        self.notify
    }

    fn float_arg(&self, v: &Val) -> Result<f64, TemplateError> {
        match v {
            Val::F64(f) => Ok(*f),
            Val::Int(i) => Ok(*i as f64),
            Val::Str(s) => crate::query::engine::parse_go_float(s).ok_or_else(|| {
                self.err(format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))
            }),
            Val::Missing => Ok(0.0),
            other => Err(self.err(format!("can't convert {} to float", other.type_name()))),
        }
    }

    fn str_arg(&self, v: &Val) -> String {
        match v {
            Val::Missing => String::new(),
            other => other.print(),
        }
    }

    fn want(&self, f: &str, args: &[Val], n: usize) -> Result<(), TemplateError> {
        if args.len() != n {
            return Err(self.err(format!(
                "error calling {f}: wrong number of args for {f}: want {n} got {}",
                args.len()
            )));
        }
        Ok(())
    }

    fn call(&mut self, f: &str, args: Vec<Val>) -> Result<Val, TemplateError> {
        let s1 = |e: &Self, a: &[Val]| -> Result<String, TemplateError> {
            e.want(f, a, 1)?;
            Ok(e.str_arg(&a[0]))
        };
        Ok(match f {
            "humanize" | "humanize1024" | "humanizeDuration" | "humanizePercentage"
            | "humanizeTimestamp" => {
                self.want(f, &args, 1)?;
                let v = self.float_arg(&args[0]).map_err(|e| match e {
                    TemplateError::Exec { msg, .. } => {
                        self.err(format!("error calling {f}: {msg}"))
                    }
                    other => other,
                })?;
                Val::Str(match f {
                    "humanize" => humanize(v),
                    "humanize1024" => humanize1024(v),
                    "humanizeDuration" => humanize_duration(v),
                    "humanizePercentage" => format!("{}%", go_fmt_g(v * 100.0, 4)),
                    _ => humanize_timestamp(v),
                })
            }
            "title" => Val::Str(go_title(&s1(self, &args)?)),
            "toUpper" => Val::Str(s1(self, &args)?.to_uppercase()),
            "toLower" => Val::Str(s1(self, &args)?.to_lowercase()),
            "stripPort" => {
                let s = s1(self, &args)?;
                Val::Str(match s.rfind(':') {
                    Some(i) if !s[i + 1..].contains(']') => s[..i]
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string(),
                    _ => s,
                })
            }
            "reReplaceAll" => {
                self.want(f, &args, 3)?;
                let re = regex::Regex::new(&self.str_arg(&args[0]))
                    .map_err(|e| self.err(format!("error calling reReplaceAll: {e}")))?;
                // Go's Expand and the regex crate read `$1`, `$name` and `${name}` the same way
                // (longest name), so the replacement passes through unchanged.
                let repl = self.str_arg(&args[1]);
                Val::Str(
                    re.replace_all(&self.str_arg(&args[2]), repl.as_str())
                        .into_owned(),
                )
            }
            "match" => {
                self.want(f, &args, 2)?;
                let re = regex::Regex::new(&self.str_arg(&args[0]))
                    .map_err(|e| self.err(format!("error calling match: {e}")))?;
                Val::Bool(re.is_match(&self.str_arg(&args[1])))
            }
            "printf" => {
                if args.is_empty() {
                    return Err(self.err("wrong number of args for printf: want at least 1 got 0"));
                }
                Val::Str(go_sprintf(&self.str_arg(&args[0]), &args[1..]))
            }
            "print" => {
                // Go's Sprint: spaces between operands when neither is a string.
                let mut s = String::new();
                for (i, a) in args.iter().enumerate() {
                    if i > 0 && !matches!(a, Val::Str(_)) && !matches!(args[i - 1], Val::Str(_)) {
                        s.push(' ');
                    }
                    s.push_str(&a.print());
                }
                Val::Str(s)
            }
            "println" => Val::Str(args.iter().map(Val::print).collect::<Vec<_>>().join(" ") + "\n"),
            "len" => {
                self.want(f, &args, 1)?;
                match &args[0] {
                    Val::Str(s) => Val::Int(s.len() as i64),
                    Val::Map(m) => Val::Int(m.len() as i64),
                    Val::Samples(v) => Val::Int(v.len() as i64),
                    Val::List(v) => Val::Int(v.len() as i64),
                    Val::Safe(s) => Val::Int(s.len() as i64),
                    other => {
                        return Err(self.err(format!(
                            "error calling len: len of type {}",
                            other.type_name()
                        )))
                    }
                }
            }
            "index" => {
                self.want(f, &args, 2)?;
                match &args[0] {
                    Val::Map(m) => m
                        .get(&self.str_arg(&args[1]))
                        .map(|s| Val::Str(s.clone()))
                        .unwrap_or(Val::Str(String::new())),
                    Val::List(v) => {
                        let i = match &args[1] {
                            Val::Int(i) => *i,
                            other => {
                                return Err(self.err(format!(
                                    "error calling index: cannot index slice with type {}",
                                    other.type_name()
                                )))
                            }
                        };
                        match usize::try_from(i).ok().and_then(|i| v.get(i)) {
                            Some(x) => x.clone(),
                            None => {
                                return Err(self
                                    .err(format!("error calling index: index out of range: {i}")))
                            }
                        }
                    }
                    other => {
                        return Err(self.err(format!(
                            "error calling index: can't index item of type {}",
                            other.type_name()
                        )))
                    }
                }
            }
            "not" => {
                self.want(f, &args, 1)?;
                Val::Bool(!args[0].truthy())
            }
            "and" => {
                let mut last = Val::Nil;
                for a in args {
                    if !a.truthy() {
                        return Ok(a);
                    }
                    last = a;
                }
                last
            }
            "or" => {
                let mut last = Val::Nil;
                for a in args {
                    if a.truthy() {
                        return Ok(a);
                    }
                    last = a;
                }
                last
            }
            "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
                if args.len() < 2 {
                    return Err(self.err(format!(
                        "error calling {f}: missing argument for comparison"
                    )));
                }
                let ord = |a: &Val, b: &Val| -> Result<std::cmp::Ordering, TemplateError> {
                    match (a, b) {
                        (Val::Str(x) | Val::Safe(x), Val::Str(y) | Val::Safe(y)) => Ok(x.cmp(y)),
                        (Val::Bool(x), Val::Bool(y)) if f == "eq" || f == "ne" => Ok(x.cmp(y)),
                        (Val::Int(x), Val::Int(y)) => Ok(x.cmp(y)),
                        (Val::F64(_) | Val::Int(_), Val::F64(_) | Val::Int(_))
                            if std::mem::discriminant(a) == std::mem::discriminant(b) =>
                        {
                            let (x, y) = (self.float_arg(a)?, self.float_arg(b)?);
                            x.partial_cmp(&y).ok_or_else(|| self.err("NaN comparison"))
                        }
                        _ => Err(self.err(format!(
                            "error calling {f}: incompatible types for comparison"
                        ))),
                    }
                };
                use std::cmp::Ordering::*;
                if f == "eq" {
                    let mut any = false;
                    for b in &args[1..] {
                        if ord(&args[0], b)? == Equal {
                            any = true;
                        }
                    }
                    Val::Bool(any)
                } else {
                    self.want(f, &args, 2)?;
                    let o = ord(&args[0], &args[1])?;
                    Val::Bool(match f {
                        "ne" => o != Equal,
                        "lt" => o == Less,
                        "le" => o != Greater,
                        "gt" => o == Greater,
                        _ => o != Less,
                    })
                }
            }
            "safeHtml" => Val::Safe(s1(self, &args)?),
            "trimSpace" => Val::Str(s1(self, &args)?.trim().to_string()),
            "join" => {
                self.want(f, &args, 2)?;
                let sep = self.str_arg(&args[0]);
                match &args[1] {
                    Val::List(v) => Val::Str(
                        v.iter()
                            .map(|x| self.str_arg(x))
                            .collect::<Vec<_>>()
                            .join(&sep),
                    ),
                    other => {
                        return Err(self.err(format!(
                            "error calling join: wrong type for value; expected []string; got {}",
                            other.type_name()
                        )))
                    }
                }
            }
            "stringSlice" => Val::List(args.iter().map(|a| Val::Str(self.str_arg(a))).collect()),
            "html" => Val::Str(
                args.iter()
                    .map(|a| self.str_arg(a))
                    .collect::<String>()
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
                    .replace('"', "&#34;")
                    .replace('\'', "&#39;"),
            ),
            "urlquery" => Val::Str(url_query_escape(
                &args.iter().map(|a| self.str_arg(a)).collect::<String>(),
            )),
            "externalURL" => Val::Str(self.data.external_url.clone()),
            "pathPrefix" => Val::Str(String::new()),
            "parseDuration" => {
                let s = s1(self, &args)?;
                let ms =
                    crate::query::timeparse::parse_prometheus_duration(&s).ok_or_else(|| {
                        self.err(format!(
                            "error calling parseDuration: not a valid duration string: {s:?}"
                        ))
                    })?;
                Val::F64(ms as f64 / 1000.0)
            }
            "graphLink" | "tableLink" => {
                let expr = s1(self, &args)?;
                let tab = if f == "graphLink" { 0 } else { 1 };
                Val::Str(format!(
                    "/graph?g0.expr={}&g0.tab={tab}",
                    url_query_escape(&expr)
                ))
            }
            "query" => {
                let q = s1(self, &args)?;
                let Some(run) = self.data.query.clone() else {
                    return Err(self.err("error calling query: no query engine available"));
                };
                Val::Samples(run(&q).map_err(|e| self.err(format!("error calling query: {e}")))?)
            }
            "first" => {
                self.want(f, &args, 1)?;
                match &args[0] {
                    Val::Samples(v) => match v.first() {
                        Some((l, x)) => Val::Sample(l.clone(), *x),
                        None => {
                            return Err(self.err(
                                "error calling first: first() called on vector with no elements",
                            ))
                        }
                    },
                    other => {
                        return Err(self.err(format!(
                            "error calling first: wrong type for value; expected template.queryResult; got {}",
                            other.type_name()
                        )))
                    }
                }
            }
            "label" | "value" | "strvalue" => {
                let s = match (f, args.as_slice()) {
                    ("label", [name, Val::Sample(l, _)]) => {
                        Val::Str(l.get(&self.str_arg(name)).cloned().unwrap_or_default())
                    }
                    ("value", [Val::Sample(_, x)]) => Val::F64(*x),
                    ("strvalue", [Val::Sample(l, _)]) => {
                        Val::Str(l.get("__value__").cloned().unwrap_or_default())
                    }
                    _ => {
                        return Err(self.err(format!(
                            "error calling {f}: wrong type for value; expected *template.sample"
                        )))
                    }
                };
                s
            }
            "sortByLabel" => {
                self.want(f, &args, 2)?;
                let name = self.str_arg(&args[0]);
                match &args[1] {
                    Val::Samples(v) => {
                        let mut v = v.clone();
                        v.sort_by(|a, b| a.0.get(&name).cmp(&b.0.get(&name)));
                        Val::Samples(v)
                    }
                    other => {
                        return Err(self.err(format!(
                            "error calling sortByLabel: wrong type for value; expected template.queryResult; got {}",
                            other.type_name()
                        )))
                    }
                }
            }
            other => {
                return Err(self.err(format!(
                    "error calling {other}: not supported by vigil's rule templates"
                )))
            }
        })
    }
}

/// Go's deprecated `strings.Title`: upper-cases the first letter of each word.
fn go_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

/// Splits `v` into shortest or `prec`-significant decimal digits and a decimal exponent
/// (`0.d1d2… × 10^dp`), trailing zeros removed.
fn decimal_digits(v: f64, prec: Option<usize>) -> (String, i32) {
    let s = match prec {
        Some(p) => format!("{:.*e}", p.saturating_sub(1), v.abs()),
        None => format!("{:e}", v.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    if digits == "0" {
        return (digits, 1);
    }
    (digits, exp + 1)
}

fn fmt_exp(neg: bool, digits: &str, dp: i32, upper: bool) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    let e = if digits == "0" { 0 } else { dp - 1 };
    out.push(if upper { 'E' } else { 'e' });
    out.push(if e < 0 { '-' } else { '+' });
    out.push_str(&format!("{:02}", e.abs()));
    out
}

fn fmt_fixed(neg: bool, digits: &str, dp: i32) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if dp <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-dp) as usize));
        out.push_str(digits);
    } else if dp as usize >= digits.len() {
        out.push_str(digits);
        out.push_str(&"0".repeat(dp as usize - digits.len()));
    } else {
        out.push_str(&digits[..dp as usize]);
        out.push('.');
        out.push_str(&digits[dp as usize..]);
    }
    out
}

fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        None
    }
}

/// Go's `%.{prec}g`.
pub fn go_fmt_g(v: f64, prec: usize) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let neg = v.is_sign_negative() && v != 0.0;
    let (digits, dp) = decimal_digits(v, Some(prec.max(1)));
    let mut eprec = prec.max(1) as i32;
    if eprec > digits.len() as i32 && digits.len() as i32 >= dp {
        eprec = digits.len() as i32;
    }
    let exp = dp - 1;
    if digits != "0" && (exp < -4 || exp >= eprec) {
        fmt_exp(neg, &digits, dp, false)
    } else {
        fmt_fixed(neg, &digits, dp)
    }
}

/// Go's `%v` for a float64 (shortest `%g`: exponent form from 1e6 and below 1e-4).
pub fn go_float_v(v: f64) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let neg = v.is_sign_negative() && v != 0.0;
    let (digits, dp) = decimal_digits(v, None);
    let exp = dp - 1;
    if digits != "0" && !(-4..6).contains(&exp) {
        fmt_exp(neg, &digits, dp, false)
    } else {
        fmt_fixed(neg, &digits, dp)
    }
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`, as promtool prints sample values.
pub fn go_float_e(v: f64) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let neg = v.is_sign_negative() && v != 0.0;
    let (digits, dp) = decimal_digits(v, None);
    fmt_exp(neg, &digits, dp, true)
}

fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return go_fmt_g(v, 4);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", go_fmt_g(v, 4))
}

fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return go_fmt_g(v, 4);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", go_fmt_g(v, 4))
}

fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return go_fmt_g(v, 4);
    }
    if v == 0.0 {
        return format!("{}s", go_fmt_g(v, 4));
    }
    if v.abs() >= 1.0 {
        let mut sign = "";
        if v < 0.0 {
            sign = "-";
            v = -v;
        }
        // Go converts an out-of-range float to the minimum int64 on amd64; match it.
        let d = if v >= 9.223_372_036_854_776e18 {
            i64::MIN
        } else {
            v as i64
        };
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        if days != 0 {
            return format!("{sign}{days}d {h}h {m}m {s}s");
        }
        if h != 0 {
            return format!("{sign}{h}h {m}m {s}s");
        }
        if m != 0 {
            return format!("{sign}{m}m {s}s");
        }
        return format!("{sign}{}s", go_fmt_g(v, 4));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", go_fmt_g(v, 4))
}

/// Go's `time.Time.String()` in UTC for a Unix time in seconds.
fn humanize_timestamp(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return go_fmt_g(v, 4);
    }
    // Prometheus goes through model.Time: whole milliseconds, truncated.
    let ts = v * 1e9;
    if ts > i64::MAX as f64 || ts < i64::MIN as f64 {
        return format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            go_float_v(v)
        );
    }
    let ms = (ts as i64) / 1_000_000;
    let secs = ms.div_euclid(1000);
    let nanos = ms.rem_euclid(1000) * 1_000_000;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, mo, d) = crate::gocompat::time::civil_from_days(days);
    let mut out = format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %f %e %g %x %q %%`, with flags,
/// width and precision.
fn go_sprintf(fmt: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let chars: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    let mut argi = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let mut minus = false;
        let mut plus = false;
        let mut zero = false;
        let mut space = false;
        while i < chars.len() && matches!(chars[i], '-' | '+' | '0' | ' ' | '#') {
            match chars[i] {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                _ => {}
            }
            i += 1;
        }
        let mut width = None;
        let mut w = 0usize;
        let mut has_w = false;
        while i < chars.len() && chars[i].is_ascii_digit() {
            w = w * 10 + chars[i].to_digit(10).unwrap_or(0) as usize;
            has_w = true;
            i += 1;
        }
        if has_w {
            width = Some(w);
        }
        let mut prec = None;
        if i < chars.len() && chars[i] == '.' {
            i += 1;
            let mut p = 0usize;
            while i < chars.len() && chars[i].is_ascii_digit() {
                p = p * 10 + chars[i].to_digit(10).unwrap_or(0) as usize;
                i += 1;
            }
            prec = Some(p);
        }
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        argi += 1;
        let num = match arg {
            Val::F64(f) => Some(*f),
            Val::Int(n) => Some(*n as f64),
            _ => None,
        };
        let mut s = match (verb, arg) {
            ('s' | 'v', Val::F64(f)) if verb == 'v' || prec.is_none() => {
                if verb == 's' {
                    format!("%!s(float64={})", go_float_v(*f))
                } else {
                    go_float_v(*f)
                }
            }
            ('s' | 'v', _) => {
                let mut s = arg.print();
                if let (Some(p), 's') = (prec, verb) {
                    s = s.chars().take(p).collect();
                }
                s
            }
            ('q', _) => format!("{:?}", arg.print()),
            ('d', Val::Int(n)) => n.to_string(),
            ('d', Val::F64(f)) => format!("%!d(float64={})", go_float_v(*f)),
            ('f' | 'F', _) if num.is_some() => {
                let f = num.unwrap_or(0.0);
                special(f).unwrap_or_else(|| format!("{:.*}", prec.unwrap_or(6), f))
            }
            ('e' | 'E', _) if num.is_some() => {
                let f = num.unwrap_or(0.0);
                special(f).unwrap_or_else(|| {
                    let neg = f.is_sign_negative() && f != 0.0;
                    let p = prec.unwrap_or(6);
                    let st = format!("{:.*e}", p, f.abs());
                    let (m, e) = st.split_once('e').unwrap_or((&st, "0"));
                    let e: i32 = e.parse().unwrap_or(0);
                    format!(
                        "{}{m}{}{}{:02}",
                        if neg { "-" } else { "" },
                        if verb == 'E' { 'E' } else { 'e' },
                        if e < 0 { '-' } else { '+' },
                        e.abs()
                    )
                })
            }
            ('g' | 'G', _) if num.is_some() => {
                let f = num.unwrap_or(0.0);
                match prec {
                    Some(p) => go_fmt_g(f, p),
                    None => {
                        let neg = f.is_sign_negative() && f != 0.0;
                        match special(f) {
                            Some(s) => s,
                            None => {
                                let (d, dp) = decimal_digits(f, None);
                                if d != "0" && !(-4..6).contains(&(dp - 1)) {
                                    fmt_exp(neg, &d, dp, false)
                                } else {
                                    fmt_fixed(neg, &d, dp)
                                }
                            }
                        }
                    }
                }
            }
            ('x', Val::Int(n)) => format!("{n:x}"),
            ('X', Val::Int(n)) => format!("{n:X}"),
            ('x', Val::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('t', Val::Bool(b)) => b.to_string(),
            (v, a) => format!("%!{v}({}={})", a.type_name(), a.print()),
        };
        if let Some(f) = num {
            if (plus || space)
                && f >= 0.0
                && matches!(verb, 'd' | 'f' | 'F' | 'e' | 'E' | 'g' | 'G' | 'v')
            {
                s.insert(0, if plus { '+' } else { ' ' });
            }
        }
        if let Some(w) = width {
            let len = s.chars().count();
            if len < w {
                let pad = w - len;
                if minus {
                    s.push_str(&" ".repeat(pad));
                } else if zero && num.is_some() {
                    let (sign, rest) = if s.starts_with('-') || s.starts_with('+') {
                        s.split_at(1)
                    } else {
                        ("", s.as_str())
                    };
                    s = format!("{sign}{}{rest}", "0".repeat(pad));
                } else {
                    s = format!("{}{s}", " ".repeat(pad));
                }
            }
        }
        out.push_str(&s);
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.print()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Notification templates (Alertmanager's dialect)
// ---------------------------------------------------------------------------------------------

/// One alert as a notification template sees it (Alertmanager's `template.Alert`).
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Start time.
    pub starts_at: std::time::SystemTime,
    /// End time; `None` (Go's zero time) while firing.
    pub ends_at: Option<std::time::SystemTime>,
    /// Link to the rule.
    pub generator_url: String,
    /// Label-set fingerprint, 16 hex digits.
    pub fingerprint: String,
}

/// The data of one notification (Alertmanager's `template.Data`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NotifyData {
    /// Receiver name, regex-quoted as Alertmanager does.
    pub receiver: String,
    /// `firing` when any alert fires, else `resolved`.
    pub status: String,
    /// The alerts.
    pub alerts: Vec<NotifyAlert>,
    /// The group's labels.
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert shares.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert shares.
    pub common_annotations: BTreeMap<String, String>,
    /// The external URL.
    pub external_url: String,
}

impl NotifyData {
    fn alert_val(a: &NotifyAlert) -> Val {
        Val::Obj(std::sync::Arc::new(Obj {
            ty: "template.Alert",
            fields: vec![
                ("Status", Val::Str(a.status.clone())),
                ("Labels", Val::Map(a.labels.clone())),
                ("Annotations", Val::Map(a.annotations.clone())),
                ("StartsAt", Val::Time(Some(a.starts_at))),
                ("EndsAt", Val::Time(a.ends_at)),
                ("GeneratorURL", Val::Str(a.generator_url.clone())),
                ("Fingerprint", Val::Str(a.fingerprint.clone())),
            ],
        }))
    }

    fn to_val(&self) -> Val {
        Val::Obj(std::sync::Arc::new(Obj {
            ty: "*template.Data",
            fields: vec![
                ("Receiver", Val::Str(self.receiver.clone())),
                ("Status", Val::Str(self.status.clone())),
                (
                    "Alerts",
                    Val::List(self.alerts.iter().map(Self::alert_val).collect()),
                ),
                ("GroupLabels", Val::Map(self.group_labels.clone())),
                ("CommonLabels", Val::Map(self.common_labels.clone())),
                (
                    "CommonAnnotations",
                    Val::Map(self.common_annotations.clone()),
                ),
                ("ExternalURL", Val::Str(self.external_url.clone())),
            ],
        }))
    }
}

/// A set of named notification templates (`define`d in Alertmanager's default template and
/// in the config's `templates:` files) that notification fields are rendered against.
#[derive(Debug, Clone, Default)]
pub struct TemplateSet {
    defs: BTreeMap<String, Vec<Node>>,
}

impl TemplateSet {
    /// Adds the `define`s of one template file; later definitions replace earlier ones, as
    /// in Go's `template.ParseFiles`.
    pub fn add(&mut self, name: &str, text: &str) -> Result<(), TemplateError> {
        let t = Template::parse_notify(name, text)?;
        self.defs.extend(t.defs);
        Ok(())
    }

    /// Whether a template of this name is defined.
    pub fn has(&self, name: &str) -> bool {
        self.defs.contains_key(name)
    }

    /// Checks that `text` parses in the notification dialect.
    pub fn check(&self, text: &str) -> Result<(), TemplateError> {
        Template::parse_notify("", text).map(|_| ())
    }

    /// Renders `text` (Alertmanager's `ExecuteTextString`): empty text stays empty.
    pub fn render_text(&self, text: &str, data: &NotifyData) -> Result<String, TemplateError> {
        self.render(text, data, false)
    }

    /// Renders `text` as an HTML template (Alertmanager's `ExecuteHTMLString`): action output
    /// is HTML-escaped unless it comes from `safeHtml`.
    pub fn render_html(&self, text: &str, data: &NotifyData) -> Result<String, TemplateError> {
        self.render(text, data, true)
    }

    fn render(&self, text: &str, data: &NotifyData, html: bool) -> Result<String, TemplateError> {
        if text.is_empty() {
            return Ok(String::new());
        }
        let t = Template::parse_notify("", text)?;
        // Only text that defines templates of its own needs a merged copy of the set.
        let merged;
        let defs = if t.defs.is_empty() {
            &self.defs
        } else {
            let mut d = self.defs.clone();
            d.extend(t.defs);
            merged = d;
            &merged
        };
        let dot = data.to_val();
        let td = TemplateData::default();
        let mut ex = Exec {
            name: "",
            vars: vec![("$".into(), dot.clone())],
            data: &td,
            out: String::new(),
            defs,
            depth: 0,
            escape_html: html,
            notify: true,
        };
        ex.nodes(&t.nodes, &dot)?;
        Ok(ex.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> TemplateData {
        TemplateData {
            labels: [
                ("instance".to_string(), "host:9100".to_string()),
                ("job".into(), "node".into()),
            ]
            .into_iter()
            .collect(),
            external_labels: [("cluster".to_string(), "eu1".to_string())]
                .into_iter()
                .collect(),
            external_url: "http://vigil:9090".into(),
            value: 0.123456,
            query: None,
        }
    }

    fn ex(t: &str) -> String {
        expand("__alert_T", t, &data())
    }

    #[test]
    fn variables_fields_and_pipelines() {
        assert_eq!(
            ex("{{ $labels.instance }} of {{ .Labels.job }}"),
            "host:9100 of node"
        );
        assert_eq!(ex("{{ $value }}"), "0.123456");
        assert_eq!(ex("{{ .Value | humanizePercentage }}"), "12.35%");
        assert_eq!(
            ex("{{ $externalLabels.cluster }} {{ $externalURL }}"),
            "eu1 http://vigil:9090"
        );
        assert_eq!(ex("{{ $labels.missing }}"), "");
        assert_eq!(ex("{{ $labels.instance | toUpper }}"), "HOST:9100");
        assert_eq!(ex("{{ printf \"%.2f\" $value }}"), "0.12");
        assert_eq!(ex("{{ $value | printf \"%.1f\" }}"), "0.1");
        assert_eq!(
            ex("{{ reReplaceAll \":.*\" \"\" $labels.instance }}"),
            "host"
        );
        assert_eq!(ex("{{ title \"hello world\" }}"), "Hello World");
    }

    #[test]
    fn control_flow() {
        assert_eq!(ex("{{ if gt $value 0.1 }}hi{{ else }}lo{{ end }}"), "hi");
        assert_eq!(
            ex("{{ if lt $value 0.1 }}a{{ else if eq $labels.job \"node\" }}b{{ else }}c{{ end }}"),
            "b"
        );
        assert_eq!(ex("{{ with $labels.job }}[{{ . }}]{{ end }}"), "[node]");
        assert_eq!(
            ex("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}"),
            "instance=host:9100;job=node;"
        );
        assert_eq!(ex("a  {{- \" b \" -}}  c"), "a b c");
        assert_eq!(ex("{{ $x := 3 }}{{ $x }}"), "3");
    }

    #[test]
    fn humanizers_match_prometheus() {
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(0.001234), "1.234m");
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize1024(1048576.0), "1Mi");
        assert_eq!(humanize_duration(3661.0), "1h 1m 1s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(0.0012), "1.2ms");
        assert_eq!(
            humanize_timestamp(1435065584.128),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(go_fmt_g(100000.0, 4), "1e+05");
        assert_eq!(go_fmt_g(1234.0, 4), "1234");
        assert_eq!(go_float_e(1.0), "1E+00");
        assert_eq!(go_float_e(0.0), "0E+00");
        assert_eq!(go_float_e(1234.5), "1.2345E+03");
        assert_eq!(go_float_v(1e21), "1e+21");
        assert_eq!(go_float_v(100000.0), "100000");
    }

    #[test]
    fn parse_errors_read_like_go() {
        let e = Template::parse("__alert_X", "{{ .Foo ").unwrap_err();
        assert_eq!(e.to_string(), "template: __alert_X:1: unclosed action");
        let e = Template::parse("__alert_X", "{{ nope }}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "template: __alert_X:1: function \"nope\" not defined"
        );
        let e = Template::parse("__alert_X", "a\n{{ $foo }}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "template: __alert_X:2: undefined variable \"$foo\""
        );
        assert!(Template::parse("__alert_X", "{{ if 1 }}").is_err());
        assert!(Template::parse("__alert_X", "{{ end }}").is_err());
    }

    #[test]
    fn query_without_an_engine_is_a_clear_execution_error() {
        let out = ex("{{ query \"up\" }}");
        assert!(out.starts_with("<error expanding template: "), "{out}");
        assert!(out.contains("no query engine"), "{out}");
    }

    #[test]
    fn query_results_feed_first_label_value_and_range() {
        let mut d = data();
        d.query = Some(std::sync::Arc::new(|q: &str| {
            assert_eq!(q, "up");
            Ok(vec![
                (
                    [("instance".to_string(), "b".to_string())]
                        .into_iter()
                        .collect(),
                    0.0,
                ),
                (
                    [("instance".to_string(), "a".to_string())]
                        .into_iter()
                        .collect(),
                    1.0,
                ),
            ])
        }));
        let t = |s: &str| expand("__alert_T", s, &d);
        assert_eq!(t("{{ query \"up\" | first | value }}"), "0");
        assert_eq!(
            t("{{ with query \"up\" }}{{ . | first | label \"instance\" }}{{ end }}"),
            "b"
        );
        assert_eq!(
            t("{{ range query \"up\" | sortByLabel \"instance\" }}{{ .Labels.instance }}={{ .Value }} {{ end }}"),
            "a=1 b=0 "
        );
        assert_eq!(t("{{ len (query \"up\") }}"), "2");
    }
}
