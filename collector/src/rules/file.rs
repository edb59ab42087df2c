//! Rule files in Prometheus's YAML format (`groups` of `alert`/`record` rules) and their
//! validation, as strict as `promtool check rules`: unknown fields are rejected, and every
//! problem is collected and reported with the file, group, rule index and name
//! (`f.yml: group "g", rule 2, "X": invalid label name: 0bad`), with the YAML line and column
//! where the rule's `expr` or `record` node is.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::gotemplate::Template;

/// A rule file: a list of groups.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub groups: Vec<RuleGroup>,
}

/// One group of rules evaluated together, in order, at one interval.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    #[serde(default)]
    pub name: String,
    /// Evaluation interval (`30s`); the global one when absent.
    #[serde(default, deserialize_with = "de_duration")]
    pub interval: Option<i64>,
    /// Most alerts or series one rule may produce; 0 is unlimited.
    #[serde(default)]
    pub limit: u64,
    #[serde(default)]
    pub rules: Vec<RuleDef>,
}

/// One rule as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    #[serde(default)]
    pub record: Option<String>,
    #[serde(default)]
    pub alert: Option<String>,
    #[serde(default)]
    pub expr: String,
    /// How long the condition must hold before the alert fires, in ms.
    #[serde(default, rename = "for", deserialize_with = "de_duration")]
    pub for_ms: Option<i64>,
    /// How long the alert keeps firing after the condition clears, in ms.
    #[serde(default, deserialize_with = "de_duration")]
    pub keep_firing_for: Option<i64>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl RuleDef {
    /// The rule's name: the alert name or the recorded metric name.
    pub fn name(&self) -> &str {
        self.alert
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.record.as_deref())
            .unwrap_or("")
    }

    /// True for an alerting rule.
    pub fn is_alert(&self) -> bool {
        self.alert.as_deref().is_some_and(|a| !a.is_empty())
    }
}

/// Reads an optional Prometheus duration field (`for`, `interval`) as milliseconds, with
/// promtool's error wording.
pub(crate) fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s {
        None => Ok(None),
        Some(s) => vigil_shared::duration::parse_ms(&s)
            .map(|ms| Some(ms as i64))
            .map_err(|_| serde::de::Error::custom(format!("not a valid duration string: {s:?}"))),
    }
}

/// Why a rule file was rejected: every problem found, each a full line as promtool prints it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct RuleFileErrors(pub Vec<String>);

/// Prometheus's metric and label name rules (`[a-zA-Z_:][a-zA-Z0-9_:]*`, `[a-zA-Z_][a-zA-Z0-9_]*`).
pub use vigil_shared::exposition::{
    is_label_name as is_valid_label_name, is_metric_name as is_valid_metric_name,
};

/// Reads and validates a rule file.
pub fn load_file(path: &Path) -> Result<RuleFile, RuleFileErrors> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| RuleFileErrors(vec![format!("{shown}: {e}")]))?;
    load_str(&text, &shown)
}

/// Parses and validates rule-file text; `file` names it in errors.
pub fn load_str(text: &str, file: &str) -> Result<RuleFile, RuleFileErrors> {
    let rf: RuleFile = if text.trim().is_empty() {
        RuleFile::default()
    } else {
        serde_yaml_ng::from_str(text)
            .map_err(|e| RuleFileErrors(vec![format!("{file}: {}", yaml_error(&e))]))?
    };
    let errs = validate(&rf, text, file);
    if errs.is_empty() {
        Ok(rf)
    } else {
        Err(RuleFileErrors(errs))
    }
}

/// Words a YAML error like Go's yaml.v3 where we can (unknown fields), else serde's text.
fn yaml_error(e: &serde_yaml_ng::Error) -> String {
    let msg = e.to_string();
    if let (Some(start), Some(loc)) = (msg.find("unknown field `"), e.location()) {
        let rest = &msg[start + "unknown field `".len()..];
        let field = rest.split('`').next().unwrap_or("");
        let path = &msg[..start];
        let ty = if path.contains(".rules[") {
            "rulefmt.RuleNode"
        } else if path.contains("groups[") {
            "rulefmt.RuleGroup"
        } else {
            "rulefmt.RuleGroups"
        };
        return format!(
            "yaml: unmarshal errors:\n  line {}: field {field} not found in type {ty}",
            loc.line()
        );
    }
    format!("yaml: {msg}")
}

/// Validates a parsed rule file like Prometheus's `rulefmt`, returning every problem.
pub fn validate(rf: &RuleFile, text: &str, file: &str) -> Vec<String> {
    crate::query::plan::register_prometheus2_functions();
    let positions = NodePositions::scan(text);
    let mut errs = Vec::new();
    let mut seen = HashSet::new();
    for (gi, g) in rf.groups.iter().enumerate() {
        if g.name.is_empty() {
            errs.push(at(file, positions.group(gi), "Groupname must not be empty"));
        } else if !seen.insert(g.name.as_str()) {
            errs.push(at(
                file,
                positions.group(gi),
                &format!("groupname: \"{}\" is repeated in the same file", g.name),
            ));
        }
        for (ri, r) in g.rules.iter().enumerate() {
            for (pos, msg) in rule_errors(r) {
                // Prometheus prints the YAML node's position, 0:0 for an absent node.
                let find = |k: &str| Some(positions.field(gi, ri, k).unwrap_or((0, 0)));
                let (p, prefix) = match pos {
                    Pos::Expr => (find("expr"), String::new()),
                    Pos::Record => (find("record"), String::new()),
                    Pos::RecordAndAlert => {
                        let (l, c) = find("alert").unwrap_or((0, 0));
                        (find("record"), format!("{l}:{c}: "))
                    }
                    Pos::None => (None, String::new()),
                };
                errs.push(at(
                    file,
                    p,
                    &format!(
                        "{prefix}group \"{}\", rule {}, \"{}\": {msg}",
                        g.name,
                        ri + 1,
                        r.name()
                    ),
                ));
            }
        }
    }
    errs
}

fn at(file: &str, pos: Option<(usize, usize)>, msg: &str) -> String {
    match pos {
        Some((l, c)) => format!("{file}: {l}:{c}: {msg}"),
        None => format!("{file}: {msg}"),
    }
}

enum Pos {
    Expr,
    Record,
    /// Both the record and the alert node (`rec:col: alert:col:`).
    RecordAndAlert,
    None,
}

fn rule_errors(r: &RuleDef) -> Vec<(Pos, String)> {
    let mut errs = Vec::new();
    let record = r.record.as_deref().unwrap_or("");
    let alert = r.alert.as_deref().unwrap_or("");
    if !record.is_empty() && !alert.is_empty() {
        errs.push((
            Pos::RecordAndAlert,
            "only one of 'record' and 'alert' must be set".to_string(),
        ));
    }
    if record.is_empty() && alert.is_empty() {
        errs.push((
            Pos::Record,
            "one of 'record' or 'alert' must be set".to_string(),
        ));
    }
    if r.expr.is_empty() {
        errs.push((Pos::Expr, "field 'expr' must be set in rule".to_string()));
    } else if let Err(e) = crate::query::plan::plan(&r.expr, 0, 0, 60_000) {
        errs.push((Pos::Expr, format!("could not parse expression: {e}")));
    }
    if !record.is_empty() {
        if !r.annotations.is_empty() {
            errs.push((
                Pos::Record,
                "invalid field 'annotations' in recording rule".to_string(),
            ));
        }
        if r.for_ms.is_some_and(|f| f != 0) {
            errs.push((
                Pos::Record,
                "invalid field 'for' in recording rule".to_string(),
            ));
        }
        if r.keep_firing_for.is_some_and(|f| f != 0) {
            errs.push((
                Pos::Record,
                "invalid field 'keep_firing_for' in recording rule".to_string(),
            ));
        }
        if !is_valid_metric_name(record) {
            errs.push((
                Pos::Record,
                format!("invalid recording rule name: {record}"),
            ));
        }
    }
    for k in r.labels.keys() {
        if !is_valid_label_name(k) {
            errs.push((Pos::None, format!("invalid label name: {k}")));
        }
    }
    for k in r.annotations.keys() {
        if !is_valid_label_name(k) {
            errs.push((Pos::None, format!("invalid annotation name: {k}")));
        }
    }
    if !alert.is_empty() {
        let name = format!("__alert_{alert}");
        for (k, v) in &r.labels {
            if let Err(e) = Template::parse(&name, v) {
                errs.push((Pos::None, format!("label \"{k}\": {e}")));
            }
        }
        for (k, v) in &r.annotations {
            if let Err(e) = Template::parse(&name, v) {
                errs.push((Pos::None, format!("annotation \"{k}\": {e}")));
            }
        }
    }
    errs
}

/// A group's position and, per rule, the positions of its `expr` and `record` values.
type GroupPositions = (
    Option<(usize, usize)>,
    Vec<BTreeMap<String, (usize, usize)>>,
);

/// Line and column of group and rule nodes, found by walking the YAML events. Used only to
/// decorate error messages, so a failure to find a node just leaves the position out.
struct NodePositions {
    groups: Vec<GroupPositions>,
}

impl NodePositions {
    fn group(&self, gi: usize) -> Option<(usize, usize)> {
        self.groups.get(gi).and_then(|g| g.0)
    }

    fn field(&self, gi: usize, ri: usize, key: &str) -> Option<(usize, usize)> {
        self.groups
            .get(gi)
            .and_then(|g| g.1.get(ri))
            .and_then(|r| r.get(key).copied())
    }

    /// A line scanner for block-style rule files (the format everyone writes): finds
    /// `- name:` items under `groups:` and `- ` items under each `rules:`.
    fn scan(text: &str) -> NodePositions {
        let mut groups: Vec<GroupPositions> = Vec::new();
        let mut group_indent: Option<usize> = None;
        let mut rules_indent: Option<usize> = None;
        let mut rule_item_indent: Option<usize> = None;
        for (ln, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if trimmed.starts_with("groups:") && indent == 0 {
                group_indent = None;
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix("- ") {
                let key_col = indent + 2 + (rest.len() - rest.trim_start().len());
                let rest = rest.trim_start();
                let is_group_item = match group_indent {
                    None => rules_indent.is_none(),
                    Some(g) => indent == g,
                };
                if is_group_item && !rest.is_empty() {
                    group_indent = Some(indent);
                    rules_indent = None;
                    rule_item_indent = None;
                    groups.push((Some((ln + 1, key_col + 1)), Vec::new()));
                    Self::key(&mut groups, rest, ln, key_col, false);
                    continue;
                }
                if rules_indent.is_some_and(|ri| indent >= ri)
                    && rule_item_indent.is_none_or(|r| r == indent)
                {
                    rule_item_indent = Some(indent);
                    if let Some(g) = groups.last_mut() {
                        g.1.push(BTreeMap::new());
                    }
                    Self::key(&mut groups, rest, ln, key_col, true);
                    continue;
                }
                continue;
            }
            if group_indent.is_some_and(|g| indent <= g) {
                continue;
            }
            if trimmed.starts_with("rules:") && rule_item_indent.is_none() {
                rules_indent = Some(indent);
                continue;
            }
            if rule_item_indent.is_some_and(|r| indent > r) {
                Self::key(&mut groups, trimmed, ln, indent, true);
            }
        }
        NodePositions { groups }
    }

    fn key(groups: &mut [GroupPositions], text: &str, ln: usize, col: usize, in_rule: bool) {
        if !in_rule {
            return;
        }
        let Some((k, v)) = text.split_once(':') else {
            return;
        };
        let k = k.trim();
        if k != "expr" && k != "record" && k != "alert" {
            return;
        }
        let vstart = v.len() - v.trim_start().len();
        let mut vcol = col + k.len() + 1 + vstart;
        let v = v.trim_start();
        if v.starts_with('|') || v.starts_with('>') {
            // A block scalar starts on the next line; Prometheus reports the indicator.
            vcol = col + k.len() + 1 + vstart;
        }
        if let Some(r) = groups.last_mut().and_then(|g| g.1.last_mut()) {
            r.insert(k.to_string(), (ln + 1, vcol + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAD: &str = "groups:
- name: a
  rules:
  - record: \"bad name\"
    expr: up +
  - alert: X
    expr: up
    labels:
      \"0bad\": x
    annotations:
      s: \"{{ .Foo \"
- name: a
  rules: []
";

    #[test]
    fn collects_every_problem_like_promtool() {
        let e = load_str(BAD, "bad.yaml").unwrap_err().0;
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(
            e[0].starts_with(
                "bad.yaml: 5:11: group \"a\", rule 1, \"bad name\": could not parse expression: "
            ),
            "{}",
            e[0]
        );
        assert_eq!(e[1], "bad.yaml: 4:13: group \"a\", rule 1, \"bad name\": invalid recording rule name: bad name");
        assert_eq!(
            e[2],
            "bad.yaml: group \"a\", rule 2, \"X\": invalid label name: 0bad"
        );
        assert_eq!(
            e[3],
            "bad.yaml: group \"a\", rule 2, \"X\": annotation \"s\": template: __alert_X:1: unclosed action"
        );
        assert_eq!(
            e[4],
            "bad.yaml: 12:3: groupname: \"a\" is repeated in the same file"
        );
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_rejected() {
        let e = load_str(
            "groups:\n- name: a\n  rules:\n  - alert: X\n    expr: up\n    foo: 1\n",
            "f",
        )
        .unwrap_err();
        assert_eq!(
            e.0[0],
            "f: yaml: unmarshal errors:\n  line 6: field foo not found in type rulefmt.RuleNode"
        );
        let e = load_str(
            "groups:\n- name: a\n  rules:\n  - alert: X\n    expr: up\n    for: 5 minutes\n",
            "f",
        )
        .unwrap_err();
        assert!(e.0[0].contains("not a valid duration"), "{e}");
    }

    #[test]
    fn recording_rules_reject_alert_fields() {
        let e = load_str(
            "groups:\n- name: a\n  rules:\n  - record: x\n    expr: up\n    for: 1m\n    annotations: {a: b}\n",
            "f",
        )
        .unwrap_err()
        .0;
        assert!(e
            .iter()
            .any(|l| l.ends_with("invalid field 'for' in recording rule")));
        assert!(e
            .iter()
            .any(|l| l.ends_with("invalid field 'annotations' in recording rule")));
    }

    #[test]
    fn seed_rules_load() {
        let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/rules/seed-alerting-rules-advanced.yaml");
        let rf = load_file(&seed).unwrap();
        assert_eq!(rf.groups.iter().map(|g| g.rules.len()).sum::<usize>(), 14);
    }
}
