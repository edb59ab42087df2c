//! The template lexer: splits a template's text into text runs and `{{ }}` actions
//! (handling trim markers and comments) and turns each action into tokens.

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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

/// One `{{ }}` action or a run of text, with the line it starts on.
pub(super) enum Piece {
    Text(String),
    Action(Vec<Tok>, usize),
}

pub(super) fn perr(name: &str, line: usize, msg: impl Into<String>) -> TemplateError {
    TemplateError::Parse {
        name: name.to_string(),
        line,
        msg: msg.into(),
    }
}

pub(super) fn split(name: &str, text: &str) -> Result<Vec<Piece>, TemplateError> {
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

pub(super) fn is_ident_char(c: char) -> bool {
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
