//! Label matchers, the selection language shared by the storage, PromQL, `/federate`,
//! `/api/v1/export` and `/api/v1/series`: `=`, `!=`, `=~` and `!~`, with regexes fully
//! anchored as in Prometheus, and a missing label treated as the empty string.

use regex::Regex;
use vigil_shared::model::Labels;

/// Which comparison a matcher makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

/// A matcher was given a regular expression that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid regular expression {pattern:?} for label {name:?}: {source}")]
pub struct MatcherError {
    pub name: String,
    pub pattern: String,
    #[source]
    pub source: regex::Error,
}

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher, compiling and anchoring the regex for `=~` and `!~`.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, MatcherError> {
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?s:{value})$")).map_err(|source| MatcherError {
                    name: name.to_string(),
                    pattern: value.to_string(),
                    source,
                })?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            re,
        })
    }

    /// Shorthand for an equality matcher, which cannot fail.
    pub fn equal(name: &str, value: &str) -> Self {
        Matcher {
            name: name.to_string(),
            op: MatchOp::Equal,
            value: value.to_string(),
            re: None,
        }
    }

    /// True when `value` (the empty string for a missing label) satisfies the matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.re.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// True when the label set satisfies the matcher.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.name).unwrap_or(""))
    }

    /// True when the matcher accepts the empty string, i.e. also selects series without the label.
    pub fn matches_empty(&self) -> bool {
        self.matches_value("")
    }
}

/// True when every matcher accepts the label set.
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_are_anchored_and_missing_labels_are_empty() {
        let l = Labels::metric("up", &[("job", "node-exporter")]);
        assert!(Matcher::new("job", MatchOp::Regex, "node.*")
            .unwrap()
            .matches(&l));
        assert!(!Matcher::new("job", MatchOp::Regex, "node")
            .unwrap()
            .matches(&l));
        assert!(Matcher::new("env", MatchOp::Equal, "").unwrap().matches(&l));
        assert!(Matcher::new("env", MatchOp::NotRegex, ".+")
            .unwrap()
            .matches(&l));
        assert!(!Matcher::new("job", MatchOp::NotEqual, "node-exporter")
            .unwrap()
            .matches(&l));
        assert!(Matcher::new("job", MatchOp::Regex, "(").is_err());
    }
}
