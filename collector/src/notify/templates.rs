//! Notification templates: Alertmanager's default templates (`slack.default.title`,
//! `pagerduty.default.description`, `email.default.subject`, …), the config's `templates:`
//! files, and the template data ([`NotifyData`]) built from a group's alerts.
//!
//! The default definitions produce the same text as Alertmanager 0.25's `default.tmpl` for the
//! templates Vigil's integrations use (checked against the real Alertmanager in
//! `collector/tests/notify/`), except `email.default.html`, which is Vigil's own, simpler
//! HTML layout with the same content (alert count, group labels, firing and resolved alerts
//! with labels, annotations and source links).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::alert::Alert;
use super::config::Config;
use super::webhook::quote_meta;
pub use crate::gotemplate::{NotifyAlert, NotifyData, TemplateError, TemplateSet};

/// The named templates Alertmanager ships, for the integrations Vigil sends.
pub const DEFAULT_TEMPLATES: &str = r#"{{ define "__alertmanager" }}Alertmanager{{ end }}
{{ define "__alertmanagerURL" }}{{ .ExternalURL }}/#/alerts?receiver={{ .Receiver | urlquery }}{{ end }}

{{ define "__subject" }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .GroupLabels.SortedPairs.Values | join " " }} {{ if gt (len .CommonLabels) (len .GroupLabels) }}({{ with .CommonLabels.Remove .GroupLabels.Names }}{{ .Values | join " " }}{{ end }}){{ end }}{{ end }}
{{ define "__description" }}{{ end }}

{{ define "__text_alert_list" }}{{ range . }}Labels:
{{ range .Labels.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}Annotations:
{{ range .Annotations.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}Source: {{ .GeneratorURL }}
{{ end }}{{ end }}

{{ define "slack.default.title" }}{{ template "__subject" . }}{{ end }}
{{ define "slack.default.username" }}{{ template "__alertmanager" . }}{{ end }}
{{ define "slack.default.fallback" }}{{ template "slack.default.title" . }} | {{ template "slack.default.titlelink" . }}{{ end }}
{{ define "slack.default.callbackid" }}{{ end }}
{{ define "slack.default.pretext" }}{{ end }}
{{ define "slack.default.titlelink" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{ define "slack.default.iconemoji" }}{{ end }}
{{ define "slack.default.iconurl" }}{{ end }}
{{ define "slack.default.text" }}{{ end }}
{{ define "slack.default.footer" }}{{ end }}

{{ define "pagerduty.default.description" }}{{ template "__subject" . }}{{ end }}
{{ define "pagerduty.default.client" }}{{ template "__alertmanager" . }}{{ end }}
{{ define "pagerduty.default.clientURL" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{ define "pagerduty.default.instances" }}{{ template "__text_alert_list" . }}{{ end }}

{{ define "email.default.subject" }}{{ template "__subject" . }}{{ end }}
{{ define "__email_alert" }}<tr><td style="padding:0 0 16px">
<strong>Labels</strong><br />
{{ range .Labels.SortedPairs }}{{ .Name }} = {{ .Value }}<br />
{{ end }}{{ if gt (len .Annotations) 0 }}<strong>Annotations</strong><br />
{{ end }}{{ range .Annotations.SortedPairs }}{{ .Name }} = {{ .Value }}<br />
{{ end }}<a href="{{ .GeneratorURL }}">Source</a>
</td></tr>
{{ end }}
{{ define "email.default.html" }}<!DOCTYPE html>
<html>
<head><meta http-equiv="Content-Type" content="text/html; charset=UTF-8" /><title>{{ template "__subject" . }}</title></head>
<body style="font-family: Helvetica, Arial, sans-serif; font-size: 14px; background-color: #f6f6f6; margin: 0; padding: 20px;">
<table style="max-width: 600px; margin: 0 auto; background-color: #fff; border: 1px solid #e9e9e9;" cellpadding="10" cellspacing="0">
<tr><td style="background-color: {{ if eq .Status "firing" }}#E6522C{{ else }}#68B90F{{ end }}; color: #fff; font-size: 16px; text-align: center;">
{{ .Alerts | len }} alert{{ if gt (len .Alerts) 1 }}s{{ end }} for {{ range .GroupLabels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}
</td></tr>
<tr><td><a href="{{ template "__alertmanagerURL" . }}">View in {{ template "__alertmanager" . }}</a></td></tr>
{{ if gt (len .Alerts.Firing) 0 }}<tr><td><strong>[{{ .Alerts.Firing | len }}] Firing</strong></td></tr>
{{ end }}{{ range .Alerts.Firing }}{{ template "__email_alert" . }}{{ end }}
{{ if gt (len .Alerts.Resolved) 0 }}<tr><td><strong>[{{ .Alerts.Resolved | len }}] Resolved</strong></td></tr>
{{ end }}{{ range .Alerts.Resolved }}{{ template "__email_alert" . }}{{ end }}
<tr><td style="color: #999; font-size: 12px; text-align: center;"><a href="{{ .ExternalURL }}">Sent by {{ template "__alertmanager" . }}</a></td></tr>
</table>
</body>
</html>
{{ end }}
"#;

/// A `templates:` file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateLoadError {
    /// A file or directory could not be read.
    #[error("reading template {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a valid template.
    #[error("parsing template {path}: {source}")]
    Parse {
        /// The path.
        path: String,
        /// The parse error.
        #[source]
        source: TemplateError,
    },
}

/// The default templates alone.
pub fn default_set() -> TemplateSet {
    let mut set = TemplateSet::default();
    // The defaults are part of the binary and covered by tests; a failure here is a bug.
    if let Err(e) = set.add("default.tmpl", DEFAULT_TEMPLATES) {
        tracing::error!(error = %e, "built-in notification templates do not parse");
    }
    set
}

/// The default templates plus the config's `templates:` files (paths relative to the config
/// file's directory; `*` and `?` wildcards in the file name, as Alertmanager's globs mostly
/// use). Files are added in order, so their `define`s override the defaults.
pub fn load(config: &Config) -> Result<TemplateSet, TemplateLoadError> {
    let mut set = default_set();
    let base = Path::new(&config.file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for pattern in &config.templates {
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        for path in expand_glob(&full)? {
            let shown = path.display().to_string();
            let text =
                std::fs::read_to_string(&path).map_err(|source| TemplateLoadError::Read {
                    path: shown.clone(),
                    source,
                })?;
            set.add(&shown, &text)
                .map_err(|source| TemplateLoadError::Parse {
                    path: shown.clone(),
                    source,
                })?;
        }
    }
    Ok(set)
}

/// The files a pattern names: itself when its file name has no wildcard, else the sorted
/// matching files of its directory (none is not an error, as with Go's `filepath.Glob`).
fn expand_glob(pattern: &Path) -> Result<Vec<PathBuf>, TemplateLoadError> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return Ok(vec![pattern.to_path_buf()]);
    }
    let dir = pattern.parent().unwrap_or(Path::new("."));
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(TemplateLoadError::Read {
                path: dir.display().to_string(),
                source,
            })
        }
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| wildcard_match(&name, &e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

/// Shell-style `*`/`?` matching.
fn wildcard_match(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Alertmanager's `template.Data` for a notification: the receiver (regex-quoted), the
/// status, the alerts in the given order, the group labels, and the labels and annotations
/// all alerts share.
pub fn notify_data(
    receiver: &str,
    group_labels: &[(String, String)],
    alerts: &[Alert],
    external_url: &str,
    now: SystemTime,
) -> NotifyData {
    let (common_labels, common_annotations) =
        crate::notify::alert::common_labels_and_annotations(alerts);
    let items: Vec<NotifyAlert> = alerts
        .iter()
        .map(|a| {
            let resolved = a.is_resolved_at(now);
            NotifyAlert {
                status: if resolved { "resolved" } else { "firing" }.to_string(),
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: a.starts_at,
                ends_at: if resolved { a.ends_at } else { None },
                generator_url: a.generator_url.clone(),
                fingerprint: format!("{:016x}", a.fingerprint()),
            }
        })
        .collect();
    let status = if items.iter().any(|a| a.status == "firing") {
        "firing"
    } else {
        "resolved"
    };
    NotifyData {
        receiver: quote_meta(receiver),
        status: status.to_string(),
        alerts: items,
        group_labels: group_labels.iter().cloned().collect::<BTreeMap<_, _>>(),
        common_labels,
        common_annotations,
        external_url: external_url.to_string(),
    }
}

/// Truncates to `max` characters, ending with `…` when cut (Alertmanager's
/// `TruncateInRunes`).
pub fn truncate_runes(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        return s;
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn two_alerts() -> NotifyData {
        let mut a = Alert::firing(&[
            ("alertname", "HighCPU"),
            ("instance", "a:9100"),
            ("severity", "page"),
        ]);
        a.annotations.insert("summary".into(), "cpu high".into());
        a.generator_url = "http://prom/graph".into();
        a.starts_at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut b = a.clone();
        b.labels.insert("instance".into(), "b:9100".into());
        notify_data(
            "all",
            &[("alertname".into(), "HighCPU".into())],
            &[a, b],
            "http://am.example:9093",
            SystemTime::now(),
        )
    }

    #[test]
    fn defaults_render_like_alertmanager() {
        let set = default_set();
        let d = two_alerts();
        let r = |t: &str| {
            set.render_text(t, &d)
                .unwrap_or_else(|e| panic!("{t}: {e}"))
        };
        // Expected strings are what Alertmanager 0.25 sent for the same alerts.
        assert_eq!(
            r(r#"{{ template "slack.default.title" . }}"#),
            "[FIRING:2] HighCPU (page)"
        );
        assert_eq!(
            r(r#"{{ template "slack.default.fallback" . }}"#),
            "[FIRING:2] HighCPU (page) | http://am.example:9093/#/alerts?receiver=all"
        );
        assert_eq!(
            r(r#"{{ template "slack.default.username" . }}"#),
            "Alertmanager"
        );
        assert_eq!(
            r(r#"{{ template "pagerduty.default.instances" .Alerts.Firing }}"#),
            "Labels:\n - alertname = HighCPU\n - instance = a:9100\n - severity = page\nAnnotations:\n - summary = cpu high\nSource: http://prom/graph\nLabels:\n - alertname = HighCPU\n - instance = b:9100\n - severity = page\nAnnotations:\n - summary = cpu high\nSource: http://prom/graph\n"
        );
        assert_eq!(r(r#"{{ .Alerts.Resolved | len }}"#), "0");
        assert_eq!(r(""), "");
    }

    #[test]
    fn user_templates_override_and_use_functions() {
        let mut set = default_set();
        set.add(
            "mine.tmpl",
            r#"{{ define "slack.default.title" }}{{ .CommonLabels.severity | toUpper }}: {{ range $i, $a := .Alerts }}{{ if $i }}, {{ end }}{{ $a.Labels.instance }}{{ end }}{{ end }}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let d = two_alerts();
        assert_eq!(
            set.render_text(r#"{{ template "slack.default.title" . }}"#, &d)
                .unwrap_or_else(|e| panic!("{e}")),
            "PAGE: a:9100, b:9100"
        );
        assert_eq!(
            set.render_text(
                r#"{{ with index .Alerts 0 }}{{ .Fingerprint | len }}{{ end }} {{ stringSlice "a" "b" | join "+" }} {{ with index .Alerts 1 }}{{ reReplaceAll ":.*" "" .Labels.instance }}{{ end }}"#,
                &d
            )
            .unwrap_or_else(|e| panic!("{e}")),
            "16 a+b b"
        );
        let e = set
            .render_text(r#"{{ template "nope" . }}"#, &d)
            .expect_err("undefined template");
        assert!(e.to_string().contains("no such template"), "{e}");
        assert!(
            set.check("{{ humanize 1 }}").is_err(),
            "Prometheus-only function"
        );
    }

    #[test]
    fn parenthesized_fields_and_time_methods_work_as_in_go_templates() {
        let set = default_set();
        let d = two_alerts();
        let r = |t: &str| {
            set.render_text(t, &d)
                .unwrap_or_else(|e| panic!("{t}: {e}"))
        };
        // 1_700_000_000 is 2023-11-14T22:13:20Z, a Tuesday; Go renders these layouts so.
        assert_eq!(r("{{ (index .Alerts 1).Labels.instance }}"), "b:9100");
        assert_eq!(
            r(r#"{{ range .Alerts }}{{ .StartsAt.Format "2006-01-02 15:04:05 MST" }};{{ end }}"#),
            "2023-11-14 22:13:20 UTC;2023-11-14 22:13:20 UTC;"
        );
        assert_eq!(
            r(r#"{{ (index .Alerts 0).StartsAt.Format "Mon Jan _2 3:04PM" }}"#),
            "Tue Nov 14 10:13PM"
        );
        assert_eq!(
            r(
                r#"{{ with index .Alerts 0 }}{{ .StartsAt.Unix }} {{ .StartsAt.UTC.Format "15:04" }} {{ .EndsAt.IsZero }}{{ end }}"#
            ),
            "1700000000 22:13 true"
        );
        assert_eq!(
            r(
                r#"{{ $t := (index .Alerts 0).StartsAt }}{{ $t.Format "2006" }} {{ "Jan" | (index .Alerts 0).StartsAt.Format }}"#
            ),
            "2023 Nov"
        );
        let err = |t: &str| set.render_text(t, &d).expect_err(t).to_string();
        assert!(err(r#"{{ .ExternalURL.Format "x" }}"#)
            .contains("can't evaluate field Format in type string"));
        assert!(err(r#"{{ (index .Alerts 0).StartsAt.Format 1 }}"#).contains("expected string"));
        assert!(err("{{ (index .Alerts 0).Nope }}").contains("can't evaluate field Nope"));
    }

    #[test]
    fn html_escapes_action_output_except_safe_html() {
        let set = default_set();
        let mut d = two_alerts();
        d.common_labels.insert("x".into(), "<b>&".into());
        assert_eq!(
            set.render_html("<p>{{ .CommonLabels.x }}{{ safeHtml \"<i>\" }}</p>", &d)
                .unwrap_or_else(|e| panic!("{e}")),
            "<p>&lt;b&gt;&amp;<i></p>"
        );
        let html = set
            .render_html(r#"{{ template "email.default.html" . }}"#, &d)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(html.contains("2 alerts for alertname=HighCPU"), "{html}");
        assert!(html.contains("[2] Firing"), "{html}");
        assert!(!html.contains("Resolved</strong>"), "{html}");
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.tmpl", "a.tmpl"));
        assert!(!wildcard_match("*.tmpl", "a.tmpl.bak"));
        assert!(wildcard_match("a?c*", "abcdef"));
    }
}
