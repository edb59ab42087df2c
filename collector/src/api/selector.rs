//! Parsing of `match[]` series selectors (`up`, `{job=~"node.*"}`, `{a="1" or b="2"}`) into
//! storage matchers, using promql-parser so the syntax is exactly PromQL's.

use crate::storage::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr};

/// Parses one selector into its alternatives: each inner list is ANDed, the lists are ORed.
pub fn parse(text: &str) -> Result<Vec<Vec<Matcher>>, String> {
    let expr = parser::parse(text).map_err(|e| format!("invalid series selector {text:?}: {e}"))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!(
            "invalid series selector {text:?}: expected a vector selector like up{{job=\"x\"}}"
        ));
    };
    let mut groups: Vec<Vec<promql_parser::label::Matcher>> = if vs.matchers.or_matchers.is_empty()
    {
        vec![vs.matchers.matchers.clone()]
    } else {
        vs.matchers.or_matchers.clone()
    };
    if let Some(name) = &vs.name {
        for g in &mut groups {
            g.push(promql_parser::label::Matcher::new(
                promql_parser::label::MatchOp::Equal,
                "__name__",
                name,
            ));
        }
    }
    groups
        .into_iter()
        .map(|g| {
            g.into_iter()
                .map(|m| {
                    let op = match m.op {
                        promql_parser::label::MatchOp::Equal => MatchOp::Equal,
                        promql_parser::label::MatchOp::NotEqual => MatchOp::NotEqual,
                        promql_parser::label::MatchOp::Re(_) => MatchOp::Regex,
                        promql_parser::label::MatchOp::NotRe(_) => MatchOp::NotRegex,
                    };
                    Matcher::new(&m.name, op, &m.value).map_err(|e| e.to_string())
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_shared::model::Labels;

    #[test]
    fn selectors_parse_into_matchers() {
        let g = parse(r#"up{job=~"node.*"}"#).unwrap();
        assert_eq!(g.len(), 1);
        let l = Labels::metric("up", &[("job", "node-exporter")]);
        assert!(g[0].iter().all(|m| m.matches(&l)));
        let g = parse(r#"{job="a" or job="node-exporter"}"#).unwrap();
        assert_eq!(g.len(), 2);
        assert!(parse("sum(up)").is_err());
        assert!(parse("up{").is_err());
    }
}
