//! Inhibition: muting target alerts while a matching source alert fires.
//!
//! Semantics are Alertmanager's `inhibit.Inhibitor`: an alert is inhibited when, for some
//! rule, it satisfies the target matchers and some *firing* alert satisfies the source
//! matchers and has the same values for every `equal` label (a missing label counts as the
//! empty string, so "both missing" is equal). When the alert satisfies the source matchers as
//! well, source alerts that also satisfy the target matchers are ignored, so an alert never
//! inhibits itself and two alerts matching both sides never inhibit each other.

use std::collections::BTreeSet;

use crate::gocompat::go_quote;
use crate::notify::config::{check_label_names, InhibitRuleConfig, Problems};
use crate::notify::matcher::{
    is_valid_label_name, parse_matchers, LabelLookup, MatchType, Matcher, Matchers,
};

/// A compiled inhibition rule.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    /// What an inhibiting alert must satisfy.
    pub source: Matchers,
    /// What an inhibited alert must satisfy.
    pub target: Matchers,
    /// Labels whose values must be equal in source and target.
    pub equal: BTreeSet<String>,
}

impl InhibitRule {
    /// Compiles a rule from its config; problems go to `p`.
    pub(crate) fn build(cfg: &InhibitRuleConfig, path: &str, p: &mut Problems) -> InhibitRule {
        let side = |eq: &crate::notify::config::ScalarMap,
                    re: &crate::notify::config::RegexMap,
                    list: &[crate::notify::config::Scalar],
                    prefix: &str,
                    p: &mut Problems| {
            let mut ms = Vec::new();
            check_label_names(eq, &format!("{path}.{prefix}_match"), p);
            for (k, v) in eq {
                if let Ok(m) = Matcher::new(MatchType::Equal, &k.0, &v.0) {
                    ms.push(m);
                }
            }
            check_label_names(re, &format!("{path}.{prefix}_match_re"), p);
            for (k, v) in re {
                let Some(v) = v else {
                    p.add(
                        format!("{path}.{prefix}_match_re"),
                        format!("invalid regexp value for {}", go_quote(&k.0)),
                    );
                    continue;
                };
                match Matcher::new(MatchType::Regex, &k.0, &format!("^(?:{})$", v.0)) {
                    Ok(m) => ms.push(m),
                    Err(e) => p.add(format!("{path}.{prefix}_match_re"), e.to_string()),
                }
            }
            for (i, line) in list.iter().enumerate() {
                match parse_matchers(&line.0) {
                    Ok(more) => ms.extend(more),
                    Err(e) => p.add(format!("{path}.{prefix}_matchers[{i}]"), e.to_string()),
                }
            }
            let mut ms = Matchers(ms);
            ms.sort();
            ms
        };
        let source = side(
            &cfg.source_match,
            &cfg.source_match_re,
            &cfg.source_matchers,
            "source",
            p,
        );
        let target = side(
            &cfg.target_match,
            &cfg.target_match_re,
            &cfg.target_matchers,
            "target",
            p,
        );
        let mut equal = BTreeSet::new();
        for l in &cfg.equal {
            if !is_valid_label_name(&l.0) {
                p.add(
                    format!("{path}.equal"),
                    format!("{} is not a valid label name", go_quote(&l.0)),
                );
            }
            equal.insert(l.0.clone());
        }
        InhibitRule {
            source,
            target,
            equal,
        }
    }

    /// True when `source` (a firing alert's labels) inhibits `target` under this rule.
    pub fn inhibits<S, T>(&self, source: &S, target: &T) -> bool
    where
        S: LabelLookup + ?Sized,
        T: LabelLookup + ?Sized,
    {
        if !self.target.matches(target) || !self.source.matches(source) {
            return false;
        }
        let equal = self
            .equal
            .iter()
            .all(|n| source.label(n).unwrap_or("") == target.label(n).unwrap_or(""));
        if !equal {
            return false;
        }
        // Two-sided match: a target that is also a source is not inhibited by sources that are
        // also targets (which includes itself).
        let two_sided = self.source.matches(target);
        !(two_sided && self.target.matches(source))
    }
}

/// True when `target` is inhibited by any of `firing` (the label sets of the currently firing
/// alerts, which may include `target` itself) under any rule.
pub fn is_inhibited<'a, S, T>(
    rules: &[InhibitRule],
    firing: impl IntoIterator<Item = &'a S> + Clone,
    target: &T,
) -> bool
where
    S: LabelLookup + ?Sized + 'a,
    T: LabelLookup + ?Sized,
{
    rules
        .iter()
        .any(|r| firing.clone().into_iter().any(|s| r.inhibits(s, target)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::config::Config;
    use std::collections::BTreeMap;

    fn lbl(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn rules(yaml: &str) -> Vec<InhibitRule> {
        Config::load_str(
            &format!("route: {{receiver: a}}\nreceivers: [{{name: a}}]\ninhibit_rules:\n{yaml}"),
            "t.yml",
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .inhibit_rules
    }

    #[test]
    fn source_inhibits_target_with_equal_labels() {
        let r = rules(
            "  - source_match: {severity: critical}
    target_match: {severity: warning}
    equal: [cluster]",
        );
        let src = lbl(&[("severity", "critical"), ("cluster", "eu")]);
        let tgt = lbl(&[("severity", "warning"), ("cluster", "eu")]);
        let other = lbl(&[("severity", "warning"), ("cluster", "us")]);
        assert!(is_inhibited(&r, [&src], &tgt));
        assert!(!is_inhibited(&r, [&src], &other));
        assert!(!is_inhibited(
            &r,
            std::iter::empty::<&BTreeMap<_, _>>(),
            &tgt
        ));
        // Missing on both sides counts as equal.
        let src2 = lbl(&[("severity", "critical")]);
        let tgt2 = lbl(&[("severity", "warning")]);
        assert!(is_inhibited(&r, [&src2], &tgt2));
    }

    #[test]
    fn matchers_and_regex_forms() {
        let r = rules(
            "  - source_matchers: ['alertname=\"NodeDown\"']
    target_match_re: {alertname: 'Disk.*|CPU.*'}
    equal: [instance]",
        );
        let src = lbl(&[("alertname", "NodeDown"), ("instance", "a")]);
        assert!(is_inhibited(
            &r,
            [&src],
            &lbl(&[("alertname", "DiskFull"), ("instance", "a")])
        ));
        assert!(!is_inhibited(
            &r,
            [&src],
            &lbl(&[("alertname", "xDiskFull"), ("instance", "a")])
        ));
    }

    #[test]
    fn alert_matching_both_sides_does_not_inhibit_itself() {
        let r = rules(
            "  - source_matchers: ['severity=~\"critical|warning\"']
    target_matchers: ['severity=\"warning\"']",
        );
        let both = lbl(&[("severity", "warning"), ("alertname", "A")]);
        assert!(!is_inhibited(&r, [&both], &both));
        // Another alert matching both sides does not inhibit it either...
        let both2 = lbl(&[("severity", "warning"), ("alertname", "B")]);
        assert!(!is_inhibited(&r, [&both, &both2], &both));
        // ...but a source-only alert does.
        let crit = lbl(&[("severity", "critical")]);
        assert!(is_inhibited(&r, [&both, &crit], &both));
    }
}
