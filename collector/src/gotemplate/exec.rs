//! The template executor: walks the node tree against the data, with Go's truthiness,
//! field and method lookup, variables, nested template calls, HTML escaping for
//! notification bodies, and the built-in and Prometheus/Alertmanager functions.

use super::*;
use crate::gocompat::url_query_escape;

/// A value during execution.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val {
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
pub(super) struct Obj {
    pub(super) ty: &'static str,
    pub(super) fields: Vec<(&'static str, Val)>,
}

impl Val {
    pub(super) fn truthy(&self) -> bool {
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

    pub(super) fn type_name(&self) -> &'static str {
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

    pub(super) fn print(&self) -> String {
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
pub(super) fn go_time_string(t: Option<std::time::SystemTime>) -> String {
    let s = crate::gocompat::rfc3339(t);
    let s = s.trim_end_matches('Z').replacen('T', " ", 1);
    format!("{s} +0000 UTC")
}

pub(super) struct Exec<'a> {
    pub(super) name: &'a str,
    pub(super) vars: Vec<(String, Val)>,
    pub(super) data: &'a TemplateData,
    pub(super) out: String,
    /// Named templates `{{ template }}` can call.
    pub(super) defs: &'a BTreeMap<String, Vec<Node>>,
    /// Nesting of `{{ template }}` calls, bounded like Go's `maxExecDepth`.
    pub(super) depth: usize,
    /// Escape action output for HTML element text (`html/template`).
    pub(super) escape_html: bool,
    /// Alertmanager's data model (label-map methods) instead of Prometheus's.
    pub(super) notify: bool,
}

/// Go's text/template gives up beyond this many nested template calls.
pub(super) const MAX_EXEC_DEPTH: usize = 100_000 / 100;

pub(super) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

impl Exec<'_> {
    pub(super) fn err(&self, msg: impl Into<String>) -> TemplateError {
        TemplateError::Exec {
            name: self.name.to_string(),
            msg: msg.into(),
        }
    }

    pub(super) fn nodes(&mut self, nodes: &[Node], dot: &Val) -> Result<(), TemplateError> {
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
                                self.range_step(a, &decl, Val::Str(k), Val::Str(val))?;
                            }
                        }
                        Val::Int(n) if n > 0 => {
                            // Only one variable is bound over an integer.
                            let first = &decl[..decl.len().min(1)];
                            for i in 0..n {
                                self.range_step(a, first, Val::Nil, Val::Int(i))?;
                            }
                        }
                        Val::Samples(list) if !list.is_empty() => {
                            for (i, (l, x)) in list.into_iter().enumerate() {
                                self.range_step(a, &decl, Val::Int(i as i64), Val::Sample(l, x))?;
                            }
                        }
                        Val::List(list) if !list.is_empty() => {
                            for (i, el) in list.into_iter().enumerate() {
                                self.range_step(a, &decl, Val::Int(i as i64), el)?;
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

    /// One element of a `range`: binds `$el` (one declared variable) or `$key, $el` (two)
    /// for this element only and runs `body` with the element as dot.
    fn range_step(
        &mut self,
        body: &[Node],
        decl: &[String],
        key: Val,
        el: Val,
    ) -> Result<(), TemplateError> {
        let mark = self.vars.len();
        match decl.len() {
            1 => self.vars.push((decl[0].clone(), el.clone())),
            2 => {
                self.vars.push((decl[0].clone(), key));
                self.vars.push((decl[1].clone(), el.clone()));
            }
            _ => {}
        }
        self.nodes(body, &el)?;
        self.vars.truncate(mark);
        Ok(())
    }

    pub(super) fn lookup_var(&self, name: &str) -> Val {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or(Val::Missing)
    }

    pub(super) fn field(&self, base: Val, fields: &[String]) -> Result<Val, TemplateError> {
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

    pub(super) fn pipeline(&mut self, p: &Pipeline, dot: &Val) -> Result<Val, TemplateError> {
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

    pub(super) fn operand(&mut self, a: &Arg, dot: &Val) -> Result<Val, TemplateError> {
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

    pub(super) fn command(
        &mut self,
        cmd: &[Arg],
        dot: &Val,
        prev: Option<Val>,
    ) -> Result<Val, TemplateError> {
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
    pub(super) fn defs_mode(&self) -> bool {
        self.notify
    }

    pub(super) fn float_arg(&self, v: &Val) -> Result<f64, TemplateError> {
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

    pub(super) fn str_arg(&self, v: &Val) -> String {
        match v {
            Val::Missing => String::new(),
            other => other.print(),
        }
    }

    pub(super) fn want(&self, f: &str, args: &[Val], n: usize) -> Result<(), TemplateError> {
        if args.len() != n {
            return Err(self.err(format!(
                "error calling {f}: wrong number of args for {f}: want {n} got {}",
                args.len()
            )));
        }
        Ok(())
    }

    pub(super) fn call(&mut self, f: &str, args: Vec<Val>) -> Result<Val, TemplateError> {
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
                let ms = vigil_shared::duration::parse_ms(&s).map_err(|_| {
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
