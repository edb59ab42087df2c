//! Alertmanager's label matchers: the `match`, `match_re` and `matchers` forms of routes and
//! inhibition rules, the classic string syntax (`foo="bar"`, `foo=~"a|b"`, `foo!=x`, quoted or
//! not, comma-separated lists in optional braces) exactly as Alertmanager 0.25 parses it, and the
//! ordering and printing Alertmanager uses for route keys and `amtool config routes`.
//!
//! A missing label is the empty string. Regexes are anchored as `^(?:…)$`.

use std::cmp::Ordering;
use std::fmt;

use regex::Regex;

/// Which comparison a matcher makes. The order is Alertmanager's (`=` < `!=` < `=~` < `!~`),
/// which it uses as the last sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchType {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchType {
    /// The operator as written in the matcher syntax.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regex => "=~",
            MatchType::NotRegex => "!~",
        }
    }
}

impl fmt::Display for MatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A matcher could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    /// The text is not `name op value` with a valid label name and operator.
    #[error("bad matcher format: {0}")]
    BadFormat(String),
    /// A double quote inside the value is not escaped, or the closing quote is missing.
    #[error("matcher value contains unescaped double quote: {0}")]
    UnescapedQuote(String),
    /// The regular expression of a `=~` or `!~` matcher does not compile.
    #[error("invalid regular expression {pattern:?} for label {name:?}: {message}")]
    BadRegex {
        /// The label name.
        name: String,
        /// The pattern as written.
        pattern: String,
        /// The regex compiler's message.
        message: String,
    },
}

/// One Alertmanager label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub kind: MatchType,
    /// The value or (unanchored) regular expression.
    pub value: String,
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.kind == other.kind && self.value == other.value
    }
}

impl Eq for Matcher {}

impl Matcher {
    /// Builds a matcher, compiling the regex anchored as `^(?:value)$` for `=~` and `!~`.
    pub fn new(kind: MatchType, name: &str, value: &str) -> Result<Self, MatcherError> {
        let re = match kind {
            MatchType::Regex | MatchType::NotRegex => {
                let bad = |message: String| MatcherError::BadRegex {
                    name: name.to_string(),
                    pattern: value.to_string(),
                    message,
                };
                let translated = translate_go_regex(value).map_err(bad)?;
                Some(
                    Regex::new(&format!("^(?:{translated})$"))
                        .map_err(|e| bad(regex_error_message(&e)))?,
                )
            }
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            kind,
            value: value.to_string(),
            re,
        })
    }

    /// True when `value` (the empty string for a missing label) satisfies the matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        match self.kind {
            MatchType::Equal => value == self.value,
            MatchType::NotEqual => value != self.value,
            MatchType::Regex => self.re.as_ref().is_some_and(|r| r.is_match(value)),
            MatchType::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// True when the label set satisfies the matcher.
    pub fn matches<L: LabelLookup + ?Sized>(&self, labels: &L) -> bool {
        self.matches_value(labels.label(&self.name).unwrap_or(""))
    }

    /// Alertmanager's sort order: name, then value, then type.
    pub fn cmp_alertmanager(&self, other: &Self) -> Ordering {
        self.name
            .cmp(&other.name)
            .then_with(|| self.value.cmp(&other.value))
            .then_with(|| self.kind.cmp(&other.kind))
    }
}

impl fmt::Display for Matcher {
    /// `name op "value"` with OpenMetrics escaping of the value, as Alertmanager prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}\"{}\"",
            self.name,
            self.kind,
            openmetrics_escape(&self.value)
        )
    }
}

/// Something labels can be looked up in: a slice of pairs or a map.
pub trait LabelLookup {
    /// The value of label `name`, if present.
    fn label(&self, name: &str) -> Option<&str>;
}

impl LabelLookup for [(String, String)] {
    fn label(&self, name: &str) -> Option<&str> {
        // Later pairs win, like repeated `label=value` arguments to amtool.
        self.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl LabelLookup for Vec<(String, String)> {
    fn label(&self, name: &str) -> Option<&str> {
        self.as_slice().label(name)
    }
}

impl LabelLookup for std::collections::BTreeMap<String, String> {
    fn label(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl LabelLookup for std::collections::HashMap<String, String> {
    fn label(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// A list of matchers that must all hold, kept in Alertmanager's sort order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    /// Sorts the matchers as Alertmanager does (name, value, type).
    pub fn sort(&mut self) {
        self.0.sort_by(Matcher::cmp_alertmanager);
    }

    /// True when every matcher holds (vacuously true when empty).
    pub fn matches<L: LabelLookup + ?Sized>(&self, labels: &L) -> bool {
        self.0.iter().all(|m| m.matches(labels))
    }

    /// Number of matchers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no matchers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Matchers {
    /// `{a="b",c=~"d"}`, as in Alertmanager route keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

/// True for a valid Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub use vigil_shared::exposition::is_label_name as is_valid_label_name;

/// Parses a comma-separated list of matchers, optionally in braces:
/// `{foo = "bar", dings != "bums", }`, `foo=bar,dings!=bums`, `statuscode=~"5.."`.
/// Commas inside double quotes do not separate.
pub fn parse_matchers(s: &str) -> Result<Vec<Matcher>, MatcherError> {
    let s = s.strip_prefix('{').unwrap_or(s);
    let s = s.strip_suffix('}').unwrap_or(s);
    let mut tokens = Vec::new();
    let mut token = String::new();
    let mut inside_quotes = false;
    let mut escaped = false;
    for c in s.chars() {
        match c {
            ',' if !inside_quotes => {
                tokens.push(std::mem::take(&mut token));
                continue;
            }
            ',' => {}
            '"' => {
                if !escaped {
                    inside_quotes = !inside_quotes;
                } else {
                    escaped = false;
                }
            }
            '\\' => escaped = !escaped,
            _ => escaped = false,
        }
        token.push(c);
    }
    let last = token.trim();
    if !last.is_empty() {
        tokens.push(last.to_string());
    }
    tokens.iter().map(|t| parse_matcher(t)).collect()
}

/// Parses one matcher: a label name, one of `=`, `!=`, `=~`, `!~`, and a value that may be
/// double-quoted. Whitespace around each part is ignored. In the value `\"`, `\n` and `\\` are
/// escapes; any other backslash is literal.
pub fn parse_matcher(s: &str) -> Result<Matcher, MatcherError> {
    let bad = || MatcherError::BadFormat(s.to_string());
    let rest = trim_go_space_start(s);
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| {
            let ok = if i == 0 {
                c.is_ascii_alphabetic() || c == '_' || c == ':'
            } else {
                c.is_ascii_alphanumeric() || c == '_' || c == ':'
            };
            !ok
        })
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return Err(bad());
    }
    let name = &rest[..name_len];
    let rest = trim_go_space_start(&rest[name_len..]);
    let (kind, rest) = if let Some(r) = rest.strip_prefix("=~") {
        (MatchType::Regex, r)
    } else if let Some(r) = rest.strip_prefix("!=") {
        (MatchType::NotEqual, r)
    } else if let Some(r) = rest.strip_prefix("!~") {
        (MatchType::NotRegex, r)
    } else if let Some(r) = rest.strip_prefix('=') {
        (MatchType::Equal, r)
    } else {
        return Err(bad());
    };
    let raw = trim_go_space_end(trim_go_space_start(rest));

    let (body, mut expect_trailing_quote) = match raw.strip_prefix('"') {
        Some(b) => (b, true),
        None => (raw, false),
    };
    let mut value = String::with_capacity(body.len());
    let mut escaped = false;
    let last = body.len().saturating_sub(1);
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
            match c {
                'n' => value.push('\n'),
                '"' | '\\' => value.push(c),
                _ => {
                    value.push('\\');
                    value.push(c);
                }
            }
            continue;
        }
        match c {
            '\\' => {
                if i < last {
                    escaped = true;
                } else {
                    value.push('\\');
                }
            }
            '"' => {
                if !expect_trailing_quote || i < last {
                    return Err(MatcherError::UnescapedQuote(raw.to_string()));
                }
                expect_trailing_quote = false;
            }
            _ => value.push(c),
        }
    }
    if expect_trailing_quote {
        return Err(MatcherError::UnescapedQuote(raw.to_string()));
    }
    Matcher::new(kind, name, &value)
}

/// Go's `\s` in RE2: ASCII space, tab, newline, form feed, carriage return (not vertical tab).
fn is_go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r')
}

fn trim_go_space_start(s: &str) -> &str {
    s.trim_start_matches(is_go_space)
}

fn trim_go_space_end(s: &str) -> &str {
    s.trim_end_matches(is_go_space)
}

/// OpenMetrics escaping: `\` → `\\`, newline → `\n`, `"` → `\"`.
pub fn openmetrics_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            _ => out.push(c),
        }
    }
    out
}

/// Rewrites a Go (RE2) regular expression into the `regex` crate's dialect with the same
/// meaning, or gives Go's error for it:
///
/// - `\d`, `\w`, `\s`, `\b` are ASCII-only in Go (Unicode in `regex`);
/// - a `{` that does not start a repetition is a literal in Go;
/// - repetition counts above 1000 and nested repetitions (`a**`) are errors in Go;
/// - `\Q…\E` quotes literal text and `\0`, `\101` are octal escapes in Go;
/// - inside a character class, `[` and doubled `&&`, `--`, `~~` are literals in Go;
/// - `(?<name>…)` is not supported by the Go of Alertmanager 0.25.
pub fn translate_go_regex(re: &str) -> Result<String, String> {
    let chars: Vec<char> = re.chars().collect();
    let mut out = String::with_capacity(re.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    // After a repetition operator: whether a lazy `?` was already taken.
    let mut after_repeat: Option<bool> = None;
    let err = |what: &str, from: usize, to: usize, chars: &[char]| -> String {
        let frag: String = chars[from..to.min(chars.len())].iter().collect();
        format!("error parsing regexp: {what}: `{frag}`")
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let Some(&n) = chars.get(i + 1) else {
                return Err(
                    "error parsing regexp: trailing backslash at end of expression: ``".to_string(),
                );
            };
            match n {
                'Q' if !in_class => {
                    let mut j = i + 2;
                    while j < chars.len() && !(chars[j] == '\\' && chars.get(j + 1) == Some(&'E')) {
                        out.push_str(&regex::escape(&chars[j].to_string()));
                        j += 1;
                    }
                    i = if j < chars.len() { j + 2 } else { j };
                    after_repeat = None;
                    continue;
                }
                'd' | 'D' | 'w' | 'W' | 's' | 'S' => {
                    let set = match n.to_ascii_lowercase() {
                        'd' => "0-9",
                        'w' => "0-9A-Za-z_",
                        _ => "\\t\\n\\x0C\\r ",
                    };
                    if in_class {
                        if n.is_ascii_lowercase() {
                            out.push_str(set);
                        } else {
                            out.push('\\');
                            out.push(n);
                        }
                    } else if n.is_ascii_lowercase() {
                        out.push_str(&format!("[{set}]"));
                    } else {
                        out.push_str(&format!("[^{set}]"));
                    }
                    i += 2;
                }
                'b' | 'B' if !in_class => {
                    out.push_str(&format!("(?-u:\\{n})"));
                    i += 2;
                }
                '0'..='7' => {
                    // Octal: `\0`, or two or three octal digits; a lone `\1`-`\7` would be a
                    // backreference, which Go rejects.
                    let next_is_octal = chars.get(i + 2).is_some_and(|d| ('0'..='7').contains(d));
                    if n != '0' && !next_is_octal {
                        return Err(err("invalid escape sequence", i, i + 2, &chars));
                    }
                    let mut j = i + 1;
                    let mut v: u32 = 0;
                    while j < chars.len() && j < i + 4 && ('0'..='7').contains(&chars[j]) {
                        v = v * 8 + (chars[j] as u32 - '0' as u32);
                        j += 1;
                    }
                    out.push_str(&format!("\\x{{{v:X}}}"));
                    i = j;
                }
                'C' => return Err(err("invalid escape sequence", i, i + 2, &chars)),
                'p' | 'P' | 'x' if chars.get(i + 2) == Some(&'{') => {
                    let end = chars[i + 2..]
                        .iter()
                        .position(|&d| d == '}')
                        .map_or(chars.len(), |p| i + 2 + p + 1);
                    out.extend(&chars[i..end]);
                    i = end;
                }
                _ => {
                    out.push('\\');
                    out.push(n);
                    i += 2;
                }
            }
            if !in_class {
                after_repeat = None;
            }
            continue;
        }
        if in_class {
            match c {
                ']' => {
                    in_class = false;
                    out.push(']');
                }
                '[' => {
                    // `[:alpha:]` is a named class; any other `[` is a literal.
                    let named = chars.get(i + 1) == Some(&':')
                        && chars[i + 2..]
                            .windows(2)
                            .position(|w| w == [':', ']'])
                            .is_some();
                    if named {
                        let end = i
                            + 2
                            + chars[i + 2..]
                                .windows(2)
                                .position(|w| w == [':', ']'])
                                .unwrap_or(0)
                            + 2;
                        out.extend(&chars[i..end]);
                        i = end;
                        continue;
                    }
                    out.push_str("\\[");
                }
                '&' | '~' | '-' if chars.get(i + 1) == Some(&c) => {
                    out.push('\\');
                    out.push(c);
                    if c == '-' {
                        // `a--` is a range ending in `-`; keep the second `-` as the range end.
                        out.push('-');
                        i += 2;
                        continue;
                    }
                }
                '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                }
                _ => out.push(c),
            }
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                after_repeat = None;
                continue;
            }
            '{' => {
                // A repetition `{n}`, `{n,}` or `{n,m}`; anything else is a literal brace.
                let close = chars[i..].iter().position(|&d| d == '}').map(|p| i + p);
                let counts = close.and_then(|end| {
                    let body: String = chars[i + 1..end].iter().collect();
                    let (lo, hi) = match body.split_once(',') {
                        Some((lo, hi)) => (lo.to_string(), Some(hi.to_string())),
                        None => (body.clone(), None),
                    };
                    let digits = |s: &str| !s.is_empty() && s.chars().all(|d| d.is_ascii_digit());
                    let ok = digits(&lo) && hi.as_deref().is_none_or(|h| h.is_empty() || digits(h));
                    ok.then(|| {
                        let lo: u64 = lo.parse().unwrap_or(u64::MAX);
                        let hi: Option<u64> = hi
                            .filter(|h| !h.is_empty())
                            .map(|h| h.parse().unwrap_or(u64::MAX));
                        (end, lo, hi)
                    })
                });
                match counts {
                    Some((end, lo, hi)) => {
                        if lo > 1000 || hi.is_some_and(|h| h > 1000 || h < lo) {
                            return Err(err("invalid repeat count", i, end + 1, &chars));
                        }
                        if after_repeat.is_some() {
                            return Err(err(
                                "invalid nested repetition operator",
                                i.saturating_sub(1),
                                end + 1,
                                &chars,
                            ));
                        }
                        out.extend(&chars[i..=end]);
                        after_repeat = Some(false);
                        i = end + 1;
                    }
                    None => {
                        out.push_str("\\{");
                        after_repeat = None;
                        i += 1;
                    }
                }
                continue;
            }
            '*' | '+' | '?' => {
                match after_repeat {
                    Some(false) if c == '?' => after_repeat = Some(true),
                    Some(_) => {
                        return Err(err(
                            "invalid nested repetition operator",
                            i.saturating_sub(1),
                            i + 1,
                            &chars,
                        ))
                    }
                    None => after_repeat = Some(false),
                }
                out.push(c);
            }
            '(' => {
                if chars.get(i + 1) == Some(&'?') && chars.get(i + 2) == Some(&'<') {
                    return Err(err("invalid or unsupported Perl syntax", i, i + 3, &chars));
                }
                out.push('(');
                after_repeat = None;
            }
            _ => {
                out.push(c);
                after_repeat = None;
            }
        }
        i += 1;
    }
    Ok(out)
}

/// The regex crate's error text is multi-line; keep the last, most specific line.
fn regex_error_message(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid regex")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Matcher {
        parse_matcher(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn every_operator_quoted_and_unquoted() {
        let cases = [
            ("foo=\"bar\"", MatchType::Equal, "bar"),
            ("foo=bar", MatchType::Equal, "bar"),
            ("foo!=x", MatchType::NotEqual, "x"),
            ("foo!=\"x\"", MatchType::NotEqual, "x"),
            ("foo=~\"a|b\"", MatchType::Regex, "a|b"),
            ("foo=~a|b", MatchType::Regex, "a|b"),
            ("foo!~\"c.*\"", MatchType::NotRegex, "c.*"),
            ("foo!~c.*", MatchType::NotRegex, "c.*"),
            ("  foo  =   bar  ", MatchType::Equal, "bar"),
            ("foo=", MatchType::Equal, ""),
            ("foo=\"\"", MatchType::Equal, ""),
            ("a:b_c=1", MatchType::Equal, "1"),
        ];
        for (text, kind, value) in cases {
            let m = one(text);
            assert_eq!(m.name, text.trim().split(['=', '!']).next().unwrap().trim());
            assert_eq!(m.kind, kind, "{text}");
            assert_eq!(m.value, value, "{text}");
        }
    }

    #[test]
    fn escapes_in_values() {
        assert_eq!(one(r#"q="a\"b""#).value, "a\"b");
        assert_eq!(one(r#"q="a\\b""#).value, "a\\b");
        assert_eq!(one(r#"q="a\nb""#).value, "a\nb");
        // A spurious escape keeps the backslash; a trailing backslash is literal.
        assert_eq!(one(r#"q="a\xb""#).value, "a\\xb");
        assert_eq!(one(r"q=a\").value, "a\\");
    }

    #[test]
    fn bad_matchers_are_errors() {
        assert!(matches!(
            parse_matcher("foo"),
            Err(MatcherError::BadFormat(_))
        ));
        assert!(matches!(
            parse_matcher("1foo=bar"),
            Err(MatcherError::BadFormat(_))
        ));
        assert!(matches!(
            parse_matcher("foo-bar=x"),
            Err(MatcherError::BadFormat(_))
        ));
        // Like Go's lazy regex, `==x` is the operator `=` and the value `=x`.
        assert_eq!(one("foo==x").value, "=x");
        assert!(matches!(
            parse_matcher("foo=\"bar"),
            Err(MatcherError::UnescapedQuote(_))
        ));
        assert!(matches!(
            parse_matcher("foo=ba\"r"),
            Err(MatcherError::UnescapedQuote(_))
        ));
        assert!(matches!(
            parse_matcher("foo=~\"(\""),
            Err(MatcherError::BadRegex { .. })
        ));
    }

    #[test]
    fn lists_with_braces_commas_and_quoted_commas() {
        let ms = parse_matchers(r#"{foo = "bar", dings != "bums", }"#).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[1].kind, MatchType::NotEqual);
        let ms = parse_matchers(r#"quote="a, b",x=~"5..""#).unwrap();
        assert_eq!(ms[0].value, "a, b");
        assert_eq!(ms[1].value, "5..");
        assert!(parse_matchers("a=b,,c=d").is_err());
        assert!(parse_matchers("").unwrap().is_empty());
    }

    #[test]
    fn regexes_are_anchored_and_missing_labels_are_empty() {
        let labels: Vec<(String, String)> = vec![("job".into(), "node-exporter".into())];
        assert!(one("job=~node.*").matches(&labels));
        assert!(!one("job=~node").matches(&labels));
        assert!(one("env=\"\"").matches(&labels));
        assert!(one("env!~.+").matches(&labels));
        assert!(!one("job!=node-exporter").matches(&labels));
        assert!(one("job!~x|y").matches(&labels));
    }

    #[test]
    fn sorting_and_printing_follow_alertmanager() {
        let mut ms = Matchers(vec![
            one("z=~q+"),
            one("b=c"),
            one("b!=c"),
            one("a=\"x\\\"y\""),
        ]);
        ms.sort();
        assert_eq!(ms.to_string(), r#"{a="x\"y",b="c",b!="c",z=~"q+"}"#);
        assert_eq!(one("y=~\"é|\\n\"").to_string(), "y=~\"é|\\n\"");
    }

    #[test]
    fn go_regex_dialect() {
        let m = |re: &str, v: &str| {
            Matcher::new(MatchType::Regex, "x", re)
                .unwrap_or_else(|e| panic!("{re}: {e}"))
                .matches_value(v)
        };
        // ASCII classes.
        assert!(m(r"\d+", "123"));
        assert!(!m(r"\d+", "١٢٣"));
        assert!(!m(r"\w+", "é"));
        assert!(m(r"[\w.]+", "a.b"));
        assert!(!m(r"\s", "\u{a0}"));
        assert!(m(r"a\b.*", "a b"));
        // Literal braces, quoting, octal, class literals.
        assert!(m("a{", "a{"));
        assert!(m("a{1,x}", "a{1,x}"));
        assert!(m(".*{:9100", "host{:9100"));
        assert!(m("x{2}", "xx"));
        assert!(m(r"\Qa.b\E", "a.b"));
        assert!(!m(r"\Qa.b\E", "axb"));
        assert!(m(r"\101", "A"));
        assert!(m("[a&&b]", "&"));
        assert!(m("[a[b]", "["));
        assert!(m("[[:alpha:]]+", "abc"));
        assert!(m("[]a]", "]"));
        assert!(m("a*?b", "aab"));
        // Go's errors.
        for bad in [
            "a**", "a+*", "a*??", "x{2}{3}", "a{1001}", "a{2,1}", r"\1", r"\C", "(?<n>a)", "(",
            r"a\",
        ] {
            assert!(
                Matcher::new(MatchType::Regex, "x", bad).is_err(),
                "{bad} must be rejected"
            );
        }
    }

    #[test]
    fn label_names() {
        assert!(is_valid_label_name("alertname"));
        assert!(is_valid_label_name("_a1"));
        assert!(!is_valid_label_name("1a"));
        assert!(!is_valid_label_name("a-b"));
        assert!(!is_valid_label_name(""));
        assert!(!is_valid_label_name("a:b"));
    }
}
