//! The template parser: builds the node tree (`if`, `range`, `with`, `define`, `block`,
//! `template`, pipelines and their arguments) from the lexer's pieces, checking variables
//! and function names against the dialect (Prometheus's or Alertmanager's).

use super::*;

#[derive(Debug, Clone)]
pub(super) enum Arg {
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
pub(super) struct Pipeline {
    pub(super) decl: Vec<String>,
    pub(super) cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
pub(super) enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    /// `{{ template "name" pipeline }}`.
    Call(String, Option<Pipeline>),
}

pub(super) struct Parser<'a> {
    pub(super) name: &'a str,
    pub(super) pieces: Vec<Piece>,
    pub(super) pos: usize,
    pub(super) vars: Vec<String>,
    /// Alertmanager's dialect: its functions, `define`/`template`/`block`.
    pub(super) notify: bool,
    pub(super) defs: BTreeMap<String, Vec<Node>>,
}

pub(super) enum Stop {
    Eof,
    End,
    Else(Vec<Tok>),
}

impl Parser<'_> {
    pub(super) fn line(&self) -> usize {
        self.pieces[..self.pos.min(self.pieces.len())]
            .iter()
            .rev()
            .find_map(|p| match p {
                Piece::Action(_, l) => Some(*l),
                _ => None,
            })
            .unwrap_or(1)
    }

    pub(super) fn list(&mut self) -> Result<(Vec<Node>, Stop), TemplateError> {
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

    pub(super) fn control(
        &mut self,
        kind: &str,
        toks: &[Tok],
        line: usize,
    ) -> Result<Node, TemplateError> {
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

    pub(super) fn pipeline(
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
                    if !is_func(id, self.notify) {
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
