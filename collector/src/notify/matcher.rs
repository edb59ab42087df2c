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
            MatchType::Regex | MatchType::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$")).map_err(|e| MatcherError::BadRegex {
                    name: name.to_string(),
                    pattern: value.to_string(),
                    message: regex_error_message(&e),
                })?,
            ),
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
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

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

/// Go's `strconv.Quote`: a double-quoted string with Go escapes, printable Unicode kept as is.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
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
    fn go_quote_matches_strconv_quote() {
        assert_eq!(go_quote("a\"b\\c\n\té"), "\"a\\\"b\\\\c\\n\\té\"");
        assert_eq!(go_quote("\x01"), "\"\\x01\"");
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
