//! The subset of Go's `text/template` that Prometheus alert labels and annotations use:
//! `{{ $labels.x }}`, `{{ $value }}`, `{{ $externalLabels.x }}`, `{{ $externalURL }}`,
//! `{{ .Labels.x }}`, `{{ .Value }}`, pipelines, `if`/`else if`/`else`/`end`, `range`, `with`,
//! variables, trim markers, and Prometheus's template functions (`humanize*`, `printf`,
//! `title`, `toUpper`, `toLower`, `reReplaceAll`, `match`, comparison and logic functions).
//! `query` (with `first`, `label`, `value`, `sortByLabel`) runs PromQL through the
//! [`TemplateData::query`] function at the evaluation time. Parse errors are reported like
//! Go's (`template: NAME:LINE: message`); [`expand`] never panics and turns an execution error
//! into Prometheus's `<error expanding template: …>` text.
//!
//! The same engine runs Alertmanager's notification templates ([`TemplateSet`]): there the
//! data is a [`NotifyData`] (`.Receiver`, `.Status`, `.Alerts` with `.Firing`/`.Resolved`,
//! `.GroupLabels`, `.CommonLabels`, `.CommonAnnotations`, `.ExternalURL`), label maps have
//! Alertmanager's `SortedPairs`/`Names`/`Values`/`Remove` methods, `define`/`template`/`block`
//! work, and the function set is Alertmanager's (`join`, `safeHtml`, `stringSlice`, …) instead
//! of Prometheus's. HTML bodies escape action output as Go's `html/template` does for element
//! text (attribute and script contexts are not distinguished).
//!
//! [`lexer`] splits the text into actions and tokens, [`parser`] builds the node tree,
//! [`exec`] runs it against the data, and [`format`] prints values as Go does.

use std::collections::BTreeMap;

mod exec;
mod format;
mod lexer;
mod parser;

use exec::*;
use format::*;
use lexer::*;
use parser::*;

pub use format::{go_float_e, go_float_v, go_fmt_g};

/// Why a template could not be parsed or executed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// The template text is malformed (Go's parse errors).
    #[error("template: {name}:{line}: {msg}")]
    Parse {
        /// Template name (`__alert_NAME`).
        name: String,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// The template failed while running.
    #[error("template: {name}: executing \"{name}\": {msg}")]
    Exec {
        /// Template name.
        name: String,
        /// What went wrong.
        msg: String,
    },
}

/// Runs a PromQL query for the template `query` function: the samples' labels and values.
pub type QueryFn = std::sync::Arc<
    dyn Fn(&str) -> Result<Vec<(BTreeMap<String, String>, f64)>, String> + Send + Sync,
>;

/// The data an alert template sees: `.Labels`, `.ExternalLabels`, `.ExternalURL`, `.Value`,
/// and the query function behind `query` (without one, `query` is an execution error).
#[derive(Clone, Default)]
pub struct TemplateData {
    pub labels: BTreeMap<String, String>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub value: f64,
    pub query: Option<QueryFn>,
}

impl std::fmt::Debug for TemplateData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateData")
            .field("labels", &self.labels)
            .field("external_labels", &self.external_labels)
            .field("external_url", &self.external_url)
            .field("value", &self.value)
            .field("query", &self.query.is_some())
            .finish()
    }
}

/// Go's `text/template` builtins that both Prometheus and Alertmanager templates have.
const GO_BUILTINS: &[&str] = &[
    "and", "or", "not", "len", "index", "print", "printf", "println", "eq", "ne", "lt", "le", "gt",
    "ge", "html", "js", "urlquery", "slice",
];

/// The functions Prometheus defines for templates besides [`GO_BUILTINS`] (Go's `call`
/// among them).
const PROMETHEUS_FUNCS: &[&str] = &[
    "call",
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "safeHtml",
    "match",
    "title",
    "toUpper",
    "toLower",
    "graphLink",
    "tableLink",
    "sortByLabel",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "pathPrefix",
    "externalURL",
    "parseDuration",
    "stripPort",
    "stripDomain",
    "toTime",
];

/// The functions Alertmanager 0.25 defines for notification templates besides
/// [`GO_BUILTINS`] (its `template.DefaultFuncs`).
const ALERTMANAGER_FUNCS: &[&str] = &[
    "toUpper",
    "toLower",
    "title",
    "trimSpace",
    "join",
    "match",
    "safeHtml",
    "reReplaceAll",
    "stringSlice",
];

/// True when `name` is a function of notification templates (`notify`) or of Prometheus's
/// alert templates.
fn is_func(name: &str, notify: bool) -> bool {
    let own = if notify {
        ALERTMANAGER_FUNCS
    } else {
        PROMETHEUS_FUNCS
    };
    GO_BUILTINS.contains(&name) || own.contains(&name)
}

/// The variable definitions Prometheus puts before every alert template.
const PREAMBLE_VARS: &[&str] = &["$labels", "$externalLabels", "$externalURL", "$value"];

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    nodes: Vec<Node>,
    /// Templates it `define`s (notification templates only).
    defs: BTreeMap<String, Vec<Node>>,
}

impl Template {
    /// Parses `text` as an alert template named `name`, with Prometheus's variables
    /// (`$labels`, `$externalLabels`, `$externalURL`, `$value`) defined.
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        let vars = PREAMBLE_VARS
            .iter()
            .map(|s| s.to_string())
            .chain(["$".into()])
            .collect();
        // Prometheus's alert templates keep no `define`d templates.
        let t = Self::parse_with(name, text, vars, false)?;
        Ok(Template {
            defs: BTreeMap::new(),
            ..t
        })
    }

    /// Parses `text` in Alertmanager's notification dialect.
    fn parse_notify(name: &str, text: &str) -> Result<Template, TemplateError> {
        Self::parse_with(name, text, vec!["$".into()], true)
    }

    /// Parses the whole of `text` with `vars` defined, in the notification dialect when
    /// `notify`, with the templates it `define`s.
    fn parse_with(
        name: &str,
        text: &str,
        vars: Vec<String>,
        notify: bool,
    ) -> Result<Template, TemplateError> {
        let pieces = split(name, text)?;
        let mut p = Parser {
            name,
            pieces,
            pos: 0,
            vars,
            notify,
            defs: BTreeMap::new(),
        };
        let (nodes, end) = p.list()?;
        match end {
            Stop::Eof => {}
            Stop::End => return Err(perr(name, p.line(), "unexpected {{end}}")),
            Stop::Else(_) => return Err(perr(name, p.line(), "unexpected {{else}}")),
        }
        Ok(Template {
            name: name.to_string(),
            nodes,
            defs: p.defs,
        })
    }

    /// Runs the template over `data`.
    pub fn execute(&self, data: &TemplateData) -> Result<String, TemplateError> {
        let mut ex = Exec {
            name: &self.name,
            vars: vec![
                ("$".into(), Val::Root),
                ("$labels".into(), Val::Map(data.labels.clone())),
                (
                    "$externalLabels".into(),
                    Val::Map(data.external_labels.clone()),
                ),
                ("$externalURL".into(), Val::Str(data.external_url.clone())),
                ("$value".into(), Val::F64(data.value)),
            ],
            data,
            out: String::new(),
            defs: &self.defs,
            depth: 0,
            escape_html: false,
            notify: false,
        };
        ex.nodes(&self.nodes, &Val::Root)?;
        Ok(ex.out)
    }
}

/// Expands `text` for an alert the way Prometheus does: on any error the result is
/// `<error expanding template: …>`.
pub fn expand(name: &str, text: &str, data: &TemplateData) -> String {
    match Template::parse(name, text).and_then(|t| t.execute(data)) {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: {e}>"),
    }
}

// ---------------------------------------------------------------------------------------------
// Notification templates (Alertmanager's dialect)
// ---------------------------------------------------------------------------------------------

/// One alert as a notification template sees it (Alertmanager's `template.Alert`).
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Start time.
    pub starts_at: std::time::SystemTime,
    /// End time; `None` (Go's zero time) while firing.
    pub ends_at: Option<std::time::SystemTime>,
    /// Link to the rule.
    pub generator_url: String,
    /// Label-set fingerprint, 16 hex digits.
    pub fingerprint: String,
}

/// The data of one notification (Alertmanager's `template.Data`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NotifyData {
    /// Receiver name, regex-quoted as Alertmanager does.
    pub receiver: String,
    /// `firing` when any alert fires, else `resolved`.
    pub status: String,
    /// The alerts.
    pub alerts: Vec<NotifyAlert>,
    /// The group's labels.
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert shares.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert shares.
    pub common_annotations: BTreeMap<String, String>,
    /// The external URL.
    pub external_url: String,
}

impl NotifyData {
    fn alert_val(a: &NotifyAlert) -> Val {
        Val::Obj(std::sync::Arc::new(Obj {
            ty: "template.Alert",
            fields: vec![
                ("Status", Val::Str(a.status.clone())),
                ("Labels", Val::Map(a.labels.clone())),
                ("Annotations", Val::Map(a.annotations.clone())),
                ("StartsAt", Val::Time(Some(a.starts_at))),
                ("EndsAt", Val::Time(a.ends_at)),
                ("GeneratorURL", Val::Str(a.generator_url.clone())),
                ("Fingerprint", Val::Str(a.fingerprint.clone())),
            ],
        }))
    }

    fn to_val(&self) -> Val {
        Val::Obj(std::sync::Arc::new(Obj {
            ty: "*template.Data",
            fields: vec![
                ("Receiver", Val::Str(self.receiver.clone())),
                ("Status", Val::Str(self.status.clone())),
                (
                    "Alerts",
                    Val::List(self.alerts.iter().map(Self::alert_val).collect()),
                ),
                ("GroupLabels", Val::Map(self.group_labels.clone())),
                ("CommonLabels", Val::Map(self.common_labels.clone())),
                (
                    "CommonAnnotations",
                    Val::Map(self.common_annotations.clone()),
                ),
                ("ExternalURL", Val::Str(self.external_url.clone())),
            ],
        }))
    }
}

/// A set of named notification templates (`define`d in Alertmanager's default template and
/// in the config's `templates:` files) that notification fields are rendered against.
#[derive(Debug, Clone, Default)]
pub struct TemplateSet {
    defs: BTreeMap<String, Vec<Node>>,
}

impl TemplateSet {
    /// Adds the `define`s of one template file; later definitions replace earlier ones, as
    /// in Go's `template.ParseFiles`.
    pub fn add(&mut self, name: &str, text: &str) -> Result<(), TemplateError> {
        let t = Template::parse_notify(name, text)?;
        self.defs.extend(t.defs);
        Ok(())
    }

    /// Whether a template of this name is defined.
    pub fn has(&self, name: &str) -> bool {
        self.defs.contains_key(name)
    }

    /// Checks that `text` parses in the notification dialect.
    pub fn check(&self, text: &str) -> Result<(), TemplateError> {
        Template::parse_notify("", text).map(|_| ())
    }

    /// Renders `text` (Alertmanager's `ExecuteTextString`): empty text stays empty.
    pub fn render_text(&self, text: &str, data: &NotifyData) -> Result<String, TemplateError> {
        self.render(text, data, false)
    }

    /// Renders `text` as an HTML template (Alertmanager's `ExecuteHTMLString`): action output
    /// is HTML-escaped unless it comes from `safeHtml`.
    pub fn render_html(&self, text: &str, data: &NotifyData) -> Result<String, TemplateError> {
        self.render(text, data, true)
    }

    fn render(&self, text: &str, data: &NotifyData, html: bool) -> Result<String, TemplateError> {
        if text.is_empty() {
            return Ok(String::new());
        }
        let t = Template::parse_notify("", text)?;
        // Only text that defines templates of its own needs a merged copy of the set.
        let merged;
        let defs = if t.defs.is_empty() {
            &self.defs
        } else {
            let mut d = self.defs.clone();
            d.extend(t.defs);
            merged = d;
            &merged
        };
        let dot = data.to_val();
        let td = TemplateData::default();
        let mut ex = Exec {
            name: "",
            vars: vec![("$".into(), dot.clone())],
            data: &td,
            out: String::new(),
            defs,
            depth: 0,
            escape_html: html,
            notify: true,
        };
        ex.nodes(&t.nodes, &dot)?;
        Ok(ex.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> TemplateData {
        TemplateData {
            labels: [
                ("instance".to_string(), "host:9100".to_string()),
                ("job".into(), "node".into()),
            ]
            .into_iter()
            .collect(),
            external_labels: [("cluster".to_string(), "eu1".to_string())]
                .into_iter()
                .collect(),
            external_url: "http://vigil:9090".into(),
            value: 0.123456,
            query: None,
        }
    }

    fn ex(t: &str) -> String {
        expand("__alert_T", t, &data())
    }

    #[test]
    fn variables_fields_and_pipelines() {
        assert_eq!(
            ex("{{ $labels.instance }} of {{ .Labels.job }}"),
            "host:9100 of node"
        );
        assert_eq!(ex("{{ $value }}"), "0.123456");
        assert_eq!(ex("{{ .Value | humanizePercentage }}"), "12.35%");
        assert_eq!(
            ex("{{ $externalLabels.cluster }} {{ $externalURL }}"),
            "eu1 http://vigil:9090"
        );
        assert_eq!(ex("{{ $labels.missing }}"), "");
        assert_eq!(ex("{{ $labels.instance | toUpper }}"), "HOST:9100");
        assert_eq!(ex("{{ printf \"%.2f\" $value }}"), "0.12");
        assert_eq!(ex("{{ $value | printf \"%.1f\" }}"), "0.1");
        assert_eq!(
            ex("{{ reReplaceAll \":.*\" \"\" $labels.instance }}"),
            "host"
        );
        assert_eq!(ex("{{ title \"hello world\" }}"), "Hello World");
    }

    #[test]
    fn control_flow() {
        assert_eq!(ex("{{ if gt $value 0.1 }}hi{{ else }}lo{{ end }}"), "hi");
        assert_eq!(
            ex("{{ if lt $value 0.1 }}a{{ else if eq $labels.job \"node\" }}b{{ else }}c{{ end }}"),
            "b"
        );
        assert_eq!(ex("{{ with $labels.job }}[{{ . }}]{{ end }}"), "[node]");
        assert_eq!(
            ex("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}"),
            "instance=host:9100;job=node;"
        );
        assert_eq!(ex("a  {{- \" b \" -}}  c"), "a b c");
        assert_eq!(ex("{{ $x := 3 }}{{ $x }}"), "3");
    }

    #[test]
    fn humanizers_match_prometheus() {
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(0.001234), "1.234m");
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize1024(1048576.0), "1Mi");
        assert_eq!(humanize_duration(3661.0), "1h 1m 1s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(0.0012), "1.2ms");
        assert_eq!(
            humanize_timestamp(1435065584.128),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(go_fmt_g(100000.0, 4), "1e+05");
        assert_eq!(go_fmt_g(1234.0, 4), "1234");
        assert_eq!(go_float_e(1.0), "1E+00");
        assert_eq!(go_float_e(0.0), "0E+00");
        assert_eq!(go_float_e(1234.5), "1.2345E+03");
        assert_eq!(go_float_v(1e21), "1e+21");
        assert_eq!(go_float_v(100000.0), "100000");
    }

    #[test]
    fn parse_errors_read_like_go() {
        let e = Template::parse("__alert_X", "{{ .Foo ").unwrap_err();
        assert_eq!(e.to_string(), "template: __alert_X:1: unclosed action");
        let e = Template::parse("__alert_X", "{{ nope }}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "template: __alert_X:1: function \"nope\" not defined"
        );
        let e = Template::parse("__alert_X", "a\n{{ $foo }}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "template: __alert_X:2: undefined variable \"$foo\""
        );
        assert!(Template::parse("__alert_X", "{{ if 1 }}").is_err());
        assert!(Template::parse("__alert_X", "{{ end }}").is_err());
    }

    #[test]
    fn query_without_an_engine_is_a_clear_execution_error() {
        let out = ex("{{ query \"up\" }}");
        assert!(out.starts_with("<error expanding template: "), "{out}");
        assert!(out.contains("no query engine"), "{out}");
    }

    #[test]
    fn query_results_feed_first_label_value_and_range() {
        let mut d = data();
        d.query = Some(std::sync::Arc::new(|q: &str| {
            assert_eq!(q, "up");
            Ok(vec![
                (
                    [("instance".to_string(), "b".to_string())]
                        .into_iter()
                        .collect(),
                    0.0,
                ),
                (
                    [("instance".to_string(), "a".to_string())]
                        .into_iter()
                        .collect(),
                    1.0,
                ),
            ])
        }));
        let t = |s: &str| expand("__alert_T", s, &d);
        assert_eq!(t("{{ query \"up\" | first | value }}"), "0");
        assert_eq!(
            t("{{ with query \"up\" }}{{ . | first | label \"instance\" }}{{ end }}"),
            "b"
        );
        assert_eq!(
            t("{{ range query \"up\" | sortByLabel \"instance\" }}{{ .Labels.instance }}={{ .Value }} {{ end }}"),
            "a=1 b=0 "
        );
        assert_eq!(t("{{ len (query \"up\") }}"), "2");
    }
}
