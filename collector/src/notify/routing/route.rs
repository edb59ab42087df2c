//! The routing tree: which routes (and so which receivers) an alert goes to, with each route's
//! effective grouping and timers, and the group keys Alertmanager derives from them.
//!
//! Semantics are Alertmanager's `dispatch.Route`: a route inherits receiver, `group_by` and
//! timers from its parent (the root from Alertmanager's defaults: group_wait 30s,
//! group_interval 5m, repeat_interval 4h, no grouping); matching is depth-first and
//! left-to-right; a node whose children do not match is itself the match; after a matching
//! child, later siblings are only tried when that child has `continue: true`.
//!
//! Also here: [`routes_test`], which prints what `amtool config routes test` prints, and
//! [`routes_show`], which prints `amtool config routes`' tree.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use crate::gocompat::go_quote;
use crate::notify::config::{check_label_names, parse_duration, Config, Problems, RouteConfig};
use crate::notify::matcher::{
    is_valid_label_name, parse_matcher, parse_matchers, LabelLookup, MatchType, Matcher,
    MatcherError, Matchers,
};

/// A route's effective options after inheritance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOpts {
    /// Receiver name.
    pub receiver: String,
    /// Labels to group by (ignored when `group_by_all`).
    pub group_by: BTreeSet<String>,
    /// `group_by: ['...']`: group by every label.
    pub group_by_all: bool,
    /// Wait before the first notification for a new group.
    pub group_wait: Duration,
    /// Wait between notifications about a changing group.
    pub group_interval: Duration,
    /// Wait before repeating an unchanged notification.
    pub repeat_interval: Duration,
}

impl Default for RouteOpts {
    /// Alertmanager's `DefaultRouteOpts`, which the root route starts from.
    fn default() -> Self {
        RouteOpts {
            receiver: String::new(),
            group_by: BTreeSet::new(),
            group_by_all: false,
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(5 * 60),
            repeat_interval: Duration::from_secs(4 * 3600),
        }
    }
}

/// A node of the resolved routing tree.
#[derive(Debug, Clone)]
pub struct Route {
    /// Matchers an alert must satisfy, in Alertmanager's order.
    pub matchers: Matchers,
    /// Keep trying later siblings after this route matched.
    pub continue_matching: bool,
    /// Effective options.
    pub opts: RouteOpts,
    /// Children.
    pub routes: Vec<Route>,
    /// Alertmanager's route key: the parent's key, `/`, and this route's matchers.
    pub key: String,
    /// Position path from the root, e.g. `[1, 0]` for `route.routes[1].routes[0]`.
    pub position: Vec<usize>,
}

impl Route {
    /// Builds a route from its config, inheriting from `parent`; problems go to `p`.
    pub(crate) fn build(
        cfg: &RouteConfig,
        parent: Option<&Route>,
        position: Vec<usize>,
        path: &str,
        p: &mut Problems,
    ) -> Route {
        let mut opts = parent.map(|r| r.opts.clone()).unwrap_or_default();
        if !cfg.receiver.0.is_empty() {
            opts.receiver = cfg.receiver.0.clone();
        }

        // group_by: a non-empty list of names replaces the parent's; `...` alone sets
        // group-by-all and keeps the parent's list; an empty list inherits everything.
        if let Some(list) = &cfg.group_by {
            let mut names = Vec::new();
            let mut all = false;
            for l in list {
                if l.0 == "..." {
                    all = true;
                } else if !is_valid_label_name(&l.0) {
                    p.add(
                        format!("{path}.group_by"),
                        format!("invalid label name {} in group_by list", go_quote(&l.0)),
                    );
                } else {
                    names.push(l.0.clone());
                }
            }
            if all && !names.is_empty() {
                p.add(
                    format!("{path}.group_by"),
                    "cannot have wildcard group_by (`...`) and other labels at the same time",
                );
            }
            let mut seen = BTreeSet::new();
            for n in &names {
                if !seen.insert(n.clone()) {
                    p.add(
                        format!("{path}.group_by"),
                        format!("duplicated label {} in group_by", go_quote(n)),
                    );
                }
            }
            if !names.is_empty() {
                opts.group_by = seen;
                opts.group_by_all = false;
            } else if all {
                opts.group_by_all = true;
            }
        }

        for (field, value, target, nonzero) in [
            ("group_wait", &cfg.group_wait, &mut opts.group_wait, false),
            (
                "group_interval",
                &cfg.group_interval,
                &mut opts.group_interval,
                true,
            ),
            (
                "repeat_interval",
                &cfg.repeat_interval,
                &mut opts.repeat_interval,
                true,
            ),
        ] {
            if let Some(v) = value {
                match parse_duration(&v.0) {
                    Ok(d) if nonzero && d.is_zero() => {
                        p.add(format!("{path}.{field}"), format!("{field} cannot be zero"))
                    }
                    Ok(d) => *target = d,
                    Err(e) => p.add(format!("{path}.{field}"), e),
                }
            }
        }

        let mut matchers = Vec::new();
        check_label_names(&cfg.match_eq, &format!("{path}.match"), p);
        for (k, v) in &cfg.match_eq {
            if let Ok(m) = Matcher::new(MatchType::Equal, &k.0, &v.0) {
                matchers.push(m);
            }
        }
        check_label_names(&cfg.match_re, &format!("{path}.match_re"), p);
        for (k, v) in &cfg.match_re {
            let Some(v) = v else {
                p.add(
                    format!("{path}.match_re"),
                    format!("invalid regexp value for {}", go_quote(&k.0)),
                );
                continue;
            };
            // Alertmanager 0.25 keeps the anchored form of `match_re` values in the matcher,
            // which shows in route keys and `amtool config routes`.
            match Matcher::new(MatchType::Regex, &k.0, &format!("^(?:{})$", v.0)) {
                Ok(m) => matchers.push(m),
                Err(e) => p.add(format!("{path}.match_re"), regex_message(e)),
            }
        }
        for (i, line) in cfg.matchers.iter().enumerate() {
            match parse_matchers(&line.0) {
                Ok(ms) => matchers.extend(ms),
                Err(e) => p.add(format!("{path}.matchers[{i}]"), e.to_string()),
            }
        }
        let mut matchers = Matchers(matchers);
        matchers.sort();

        let key = match parent {
            Some(parent) => format!("{}/{}", parent.key, matchers),
            None => matchers.to_string(),
        };
        let mut route = Route {
            matchers,
            continue_matching: cfg.continue_matching,
            opts,
            routes: Vec::with_capacity(cfg.routes.len()),
            key,
            position,
        };
        for (i, child) in cfg.routes.iter().enumerate() {
            let mut pos = route.position.clone();
            pos.push(i);
            let c = Route::build(child, Some(&route), pos, &format!("{path}.routes[{i}]"), p);
            route.routes.push(c);
        }
        route
    }

    /// The routes an alert with these labels goes to, depth-first, left to right, honouring
    /// `continue`. Empty only when this route's own matchers fail (never for the root).
    pub fn match_routes<'a, L: LabelLookup + ?Sized>(&'a self, labels: &L) -> Vec<&'a Route> {
        if !self.matchers.matches(labels) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for child in &self.routes {
            let matches = child.match_routes(labels);
            let matched = !matches.is_empty();
            all.extend(matches);
            if matched && !child.continue_matching {
                break;
            }
        }
        if all.is_empty() {
            all.push(self);
        }
        all
    }

    /// The labels of an alert that form its group under this route.
    pub fn group_labels(&self, labels: &[(String, String)]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (n, v) in labels {
            if self.opts.group_by_all || self.opts.group_by.contains(n) {
                match out.iter_mut().find(|(on, _)| on == n) {
                    Some(slot) => slot.1 = v.clone(),
                    None => out.push((n.clone(), v.clone())),
                }
            }
        }
        out.sort();
        out
    }

    /// Alertmanager's group key for an alert routed here: `route key:{label="value", …}`.
    pub fn group_key(&self, labels: &[(String, String)]) -> String {
        format!(
            "{}:{}",
            self.key,
            label_set_string(&self.group_labels(labels))
        )
    }

    /// Visits the tree depth-first.
    pub fn walk<'a>(&'a self, visit: &mut dyn FnMut(&'a Route)) {
        visit(self);
        for r in &self.routes {
            r.walk(visit);
        }
    }
}

fn regex_message(e: MatcherError) -> String {
    match e {
        MatcherError::BadRegex {
            name,
            pattern,
            message,
        } => format!(
            "invalid regular expression for label {}: {} ({})",
            go_quote(&name),
            message,
            go_quote(pattern.trim_start_matches("^(?:").trim_end_matches(")$"))
        ),
        other => other.to_string(),
    }
}

/// Prometheus's `LabelSet.String()`: `{a="1", b="2"}`, sorted by name, values Go-quoted.
pub fn label_set_string(labels: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = labels.iter().collect();
    sorted.sort();
    let mut out = String::from("{");
    for (i, (n, v)) in sorted.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(n);
        out.push('=');
        out.push_str(&go_quote(v));
    }
    out.push('}');
    out
}

/// A `label=value` argument could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelArgError {
    /// Not a matcher at all.
    #[error("Failed to parse labels: {0}")]
    Parse(#[from] MatcherError),
    /// A matcher other than `=`.
    #[error("Labels must be specified as key=value pairs")]
    NotEquality,
}

/// Parses one `label=value` argument as amtool does (the matcher syntax, `=` only; the value
/// may be double-quoted).
pub fn parse_label_arg(arg: &str) -> Result<(String, String), LabelArgError> {
    let m = parse_matcher(arg)?;
    if m.kind != MatchType::Equal {
        return Err(LabelArgError::NotEquality);
    }
    Ok((m.name, m.value))
}

/// Exactly what `amtool config routes test --config.file=FILE label=value…` prints on stdout:
/// the receivers of the matching routes, in tree order, comma-separated, with a trailing
/// newline. Repeated labels: the last one wins, as in amtool.
pub fn routes_test(config: &Config, labels: &[(String, String)]) -> String {
    let receivers: Vec<&str> = config
        .route
        .match_routes(labels)
        .iter()
        .map(|r| r.opts.receiver.as_str())
        .collect();
    format!("{}\n", receivers.join(","))
}

/// `routes test` could not run.
#[derive(Debug, thiserror::Error)]
pub enum RoutesTestError {
    /// The config file did not load.
    #[error(transparent)]
    Config(#[from] crate::notify::config::ConfigError),
    /// A `label=value` argument is malformed.
    #[error("{0}")]
    Label(#[from] LabelArgError),
}

/// The whole of `vigil-collector routes test --config FILE [--tree] label=value…`: loads the
/// config, parses the label arguments as amtool does and returns what amtool prints on
/// stdout. A bad config or label is an error (exit 64 in the CLI).
pub fn routes_test_command(
    config_file: &std::path::Path,
    label_args: &[String],
    tree: bool,
) -> Result<String, RoutesTestError> {
    let config = Config::load_file(config_file)?;
    let labels = label_args
        .iter()
        .map(|a| parse_label_arg(a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = String::new();
    if tree {
        out.push_str(&routes_test_tree(&config, &labels));
    }
    out.push_str(&routes_test(&config, &labels));
    Ok(out)
}

/// amtool's `--verify.receivers=EXPECTED` check: `None` when the printed receivers (the
/// output of [`routes_test`]) equal `expected`, else the warning amtool prints to stdout
/// before exiting with status 1.
pub fn verify_receivers(routes_test_output: &str, expected: &str) -> Option<&'static str> {
    if expected.is_empty() || routes_test_output.trim_end_matches('\n') == expected {
        None
    } else {
        Some("WARNING: Expected receivers did not match resolved receivers.\n")
    }
}

/// What `amtool config routes test --tree` prints before the receivers: the matching routes
/// as a tree.
pub fn routes_test_tree(config: &Config, labels: &[(String, String)]) -> String {
    let matched: Vec<&Route> = config.route.match_routes(labels);
    let mut out = String::from("Matching routes:\n.\n");
    fn on_path(r: &Route, matched: &[&Route]) -> bool {
        matched.iter().any(|m| m.position.starts_with(&r.position))
    }
    fn render(r: &Route, matched: &[&Route], prefix: &str, last: bool, out: &mut String) {
        let is_leaf = matched.iter().any(|m| std::ptr::eq(*m, r));
        let _ = writeln!(
            out,
            "{prefix}{} {}",
            if last { "└──" } else { "├──" },
            route_slug(r, false, is_leaf)
        );
        let children: Vec<&Route> = r.routes.iter().filter(|c| on_path(c, matched)).collect();
        let child_prefix = format!("{prefix}{}", if last { "    " } else { TREE_CONTINUE });
        for (i, c) in children.iter().enumerate() {
            render(c, matched, &child_prefix, i + 1 == children.len(), out);
        }
    }
    render(&config.route, &matched, "", true, &mut out);
    out.push_str("\n\n");
    out
}

/// treeprint's continuation prefix: a vertical bar, two no-break spaces and a space.
const TREE_CONTINUE: &str = "│\u{a0}\u{a0} ";

fn route_slug(r: &Route, show_continue: bool, show_receiver: bool) -> String {
    let mut s = if r.matchers.is_empty() {
        "default-route".to_string()
    } else {
        r.matchers.to_string()
    };
    if r.continue_matching && show_continue {
        s.push_str("  continue: true");
    }
    if show_receiver {
        s.push_str("  receiver: ");
        s.push_str(&r.opts.receiver);
    }
    s
}

/// Exactly what `amtool config routes --config.file=FILE` (`routes show`) prints.
pub fn routes_show(config: &Config) -> String {
    fn render(r: &Route, prefix: &str, last: bool, out: &mut String) {
        let _ = writeln!(
            out,
            "{prefix}{} {}",
            if last { "└──" } else { "├──" },
            route_slug(r, true, true)
        );
        let child_prefix = format!("{prefix}{}", if last { "    " } else { TREE_CONTINUE });
        for (i, c) in r.routes.iter().enumerate() {
            render(c, &child_prefix, i + 1 == r.routes.len(), out);
        }
    }
    let mut out = String::from("Routing tree:\n.\n");
    render(&config.route, "", true, &mut out);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        Config::load_str(text, "t.yml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const TREE: &str = "
route:
  receiver: default
  group_by: [alertname]
  routes:
    - match: {severity: critical}
      receiver: pager
      continue: true
      group_wait: 5s
      routes:
        - match: {team: db}
          receiver: db-pager
          group_by: ['...']
        - matchers: ['team=~\"web|api\"']
          receiver: web-pager
          group_by: []
    - match_re: {severity: 'critical|warning'}
      receiver: chat
      group_by: [alertname, cluster]
      repeat_interval: 1h
    - match: {team: db}
      receiver: db
receivers: [{name: default}, {name: pager}, {name: db-pager}, {name: web-pager}, {name: chat}, {name: db}]
";

    #[test]
    fn continue_and_depth_first_semantics() {
        let c = cfg(TREE);
        let t = |l: &[(&str, &str)]| routes_test(&c, &labels(l));
        assert_eq!(t(&[("severity", "critical")]), "pager,chat\n");
        assert_eq!(
            t(&[("severity", "critical"), ("team", "db")]),
            "db-pager,chat\n"
        );
        assert_eq!(
            t(&[("severity", "critical"), ("team", "api")]),
            "web-pager,chat\n"
        );
        assert_eq!(t(&[("severity", "warning"), ("team", "db")]), "chat\n");
        assert_eq!(t(&[("team", "db")]), "db\n");
        assert_eq!(t(&[]), "default\n");
        // Regexes are anchored.
        assert_eq!(t(&[("severity", "criticalx")]), "default\n");
    }

    #[test]
    fn options_are_inherited() {
        let c = cfg(TREE);
        let pager = &c.route.routes[0];
        assert_eq!(pager.opts.group_wait, Duration::from_secs(5));
        assert_eq!(
            pager.opts.group_by,
            BTreeSet::from(["alertname".to_string()])
        );
        let db = &pager.routes[0];
        assert!(db.opts.group_by_all);
        assert_eq!(db.opts.group_wait, Duration::from_secs(5));
        // `group_by: []` inherits the parent's list.
        let web = &pager.routes[1];
        assert_eq!(web.opts.group_by, BTreeSet::from(["alertname".to_string()]));
        let chat = &c.route.routes[1];
        assert_eq!(chat.opts.repeat_interval, Duration::from_secs(3600));
        assert_eq!(chat.opts.group_wait, Duration::from_secs(30));
        assert_eq!(chat.opts.group_interval, Duration::from_secs(300));
    }

    #[test]
    fn group_keys_match_alertmanager() {
        let c = cfg(TREE);
        let l = labels(&[
            ("alertname", "HighCPU"),
            ("severity", "critical"),
            ("team", "db"),
            ("instance", "a\"b"),
        ]);
        let routes = c.route.match_routes(&l);
        assert_eq!(
            routes[0].group_key(&l),
            "{}/{severity=\"critical\"}/{team=\"db\"}:{alertname=\"HighCPU\", instance=\"a\\\"b\", severity=\"critical\", team=\"db\"}"
        );
        assert_eq!(
            routes[1].group_key(&l),
            "{}/{severity=~\"^(?:critical|warning)$\"}:{alertname=\"HighCPU\"}"
        );
        assert_eq!(c.route.group_key(&labels(&[("x", "y")])), "{}:{}");
    }

    #[test]
    fn show_prints_amtool_tree() {
        let c = cfg(TREE);
        let out = routes_show(&c);
        assert!(out.starts_with("Routing tree:\n.\n└── default-route  receiver: default\n"));
        assert!(out.contains("    ├── {severity=\"critical\"}  continue: true  receiver: pager\n"));
        assert!(out.contains("    │\u{a0}\u{a0} └── {team=~\"web|api\"}  receiver: web-pager\n"));
        assert!(out.ends_with("    └── {team=\"db\"}  receiver: db\n\n"));
    }

    #[test]
    fn label_arguments_parse_like_amtool() {
        assert_eq!(
            parse_label_arg("a=\"b,c\"").unwrap(),
            ("a".to_string(), "b,c".to_string())
        );
        assert_eq!(
            parse_label_arg(" a = b ").unwrap(),
            ("a".to_string(), "b".to_string())
        );
        assert_eq!(parse_label_arg("a=~b"), Err(LabelArgError::NotEquality));
        assert!(matches!(parse_label_arg("a"), Err(LabelArgError::Parse(_))));
    }

    #[test]
    fn command_loads_parses_and_prints() {
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/notify/seed.alertmanager.loopback.yml");
        let args = vec![
            "severity=critical".to_string(),
            "escalate=\"slack\"".to_string(),
        ];
        let out = routes_test_command(&fixture, &args, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, "slack-critical\n");
        let out = routes_test_command(&fixture, &args, true).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.starts_with("Matching routes:\n.\n└── default-route\n"),
            "{out}"
        );
        assert!(matches!(
            routes_test_command(&fixture, &["severity".to_string()], false),
            Err(RoutesTestError::Label(_))
        ));
        let seed = fixture.with_file_name("seed.alertmanager.yml");
        assert!(matches!(
            routes_test_command(&seed, &[], false),
            Err(RoutesTestError::Config(_))
        ));
    }

    #[test]
    fn verify_receivers_like_amtool() {
        assert_eq!(
            verify_receivers("audit,pager,chat\n", "audit,pager,chat"),
            None
        );
        assert_eq!(verify_receivers("audit,pager,chat\n", ""), None);
        assert_eq!(
            verify_receivers("audit,pager,chat\n", "audit,pager"),
            Some("WARNING: Expected receivers did not match resolved receivers.\n")
        );
    }

    #[test]
    fn repeated_label_last_wins() {
        let c = cfg(TREE);
        let l = labels(&[("team", "db"), ("team", "x")]);
        assert_eq!(routes_test(&c, &l), "default\n");
    }
}
