//! The Slack integration: Alertmanager 0.25's incoming-webhook message (`channel`,
//! `username`, `icon_emoji`/`icon_url`, one attachment with `title`, `title_link`, `text`,
//! `fallback`, `fields`, `actions`, `footer`, `color`, `mrkdwn_in`), every text field rendered
//! as a notification template. The JSON field order and `omitempty` choices are
//! Alertmanager's, so the bytes match what it sends for the same alerts.

use serde::Serialize;

use crate::notify::config::SlackConfig;
use crate::notify::templates::{truncate_runes, NotifyData, TemplateError, TemplateSet};

/// Slack cuts titles longer than this many characters (Alertmanager's `maxTitleLenRunes`).
const MAX_TITLE_RUNES: usize = 1024;

#[derive(Debug, Serialize)]
struct Request {
    #[serde(skip_serializing_if = "String::is_empty")]
    channel: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    icon_emoji: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    icon_url: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    link_names: bool,
    attachments: Vec<Attachment>,
}

#[derive(Debug, Serialize)]
struct Attachment {
    #[serde(skip_serializing_if = "String::is_empty")]
    title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    title_link: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pretext: String,
    text: String,
    fallback: String,
    callback_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<Field>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actions: Vec<Action>,
    #[serde(skip_serializing_if = "String::is_empty")]
    image_url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    thumb_url: String,
    footer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    color: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mrkdwn_in: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Field {
    title: String,
    value: String,
    short: bool,
}

#[derive(Debug, Serialize)]
struct Action {
    #[serde(rename = "type")]
    kind: String,
    text: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    style: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirm: Option<Confirm>,
}

#[derive(Debug, Serialize)]
struct Confirm {
    text: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    ok_text: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    dismiss_text: String,
}

/// The JSON body Alertmanager would POST to the Slack webhook for this notification.
pub fn message(
    conf: &SlackConfig,
    tmpl: &TemplateSet,
    data: &NotifyData,
) -> Result<Vec<u8>, TemplateError> {
    let t = |s: &str| tmpl.render_text(s, data);
    let fields = conf
        .fields
        .iter()
        .map(|f| {
            Ok(Field {
                title: t(&f.title)?,
                value: t(&f.value)?,
                short: f.short.unwrap_or(conf.short_fields),
            })
        })
        .collect::<Result<Vec<_>, TemplateError>>()?;
    let actions = conf
        .actions
        .iter()
        .map(|a| {
            Ok(Action {
                kind: t(&a.kind)?,
                text: t(&a.text)?,
                url: t(&a.url)?,
                style: t(&a.style)?,
                name: t(&a.name)?,
                value: t(&a.value)?,
                confirm: match &a.confirm {
                    None => None,
                    Some(c) => Some(Confirm {
                        text: t(&c.text)?,
                        title: t(&c.title)?,
                        ok_text: t(&c.ok_text)?,
                        dismiss_text: t(&c.dismiss_text)?,
                    }),
                },
            })
        })
        .collect::<Result<Vec<_>, TemplateError>>()?;
    let mrkdwn_in = if conf.mrkdwn_in.is_empty() {
        vec!["fallback".into(), "pretext".into(), "text".into()]
    } else {
        conf.mrkdwn_in.clone()
    };
    let attachment = Attachment {
        title: truncate_runes(t(&conf.title)?, MAX_TITLE_RUNES),
        title_link: t(&conf.title_link)?,
        pretext: t(&conf.pretext)?,
        text: t(&conf.text)?,
        fallback: t(&conf.fallback)?,
        callback_id: t(&conf.callback_id)?,
        fields,
        actions,
        image_url: t(&conf.image_url)?,
        thumb_url: t(&conf.thumb_url)?,
        footer: t(&conf.footer)?,
        color: t(&conf.color)?,
        mrkdwn_in,
    };
    let req = Request {
        channel: t(&conf.channel)?,
        username: t(&conf.username)?,
        icon_emoji: t(&conf.icon_emoji)?,
        icon_url: t(&conf.icon_url)?,
        link_names: conf.link_names,
        attachments: vec![attachment],
    };
    // Go's json.Encoder ends the document with a newline; Alertmanager's body has it.
    let mut body = serde_json::to_vec(&req).unwrap_or_default();
    body.push(b'\n');
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::alert::Alert;
    use crate::notify::templates::{default_set, notify_data};
    use crate::notify::Config;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn alerts(resolved: bool) -> Vec<Alert> {
        let mut a = Alert::firing(&[
            ("alertname", "HighCPU"),
            ("instance", "a:9100"),
            ("severity", "page"),
        ]);
        a.annotations.insert("summary".into(), "cpu high".into());
        a.generator_url = "http://prom/graph".into();
        a.starts_at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        if resolved {
            a.ends_at = Some(SystemTime::now() - Duration::from_secs(5));
        }
        let mut b = a.clone();
        b.labels.insert("instance".into(), "b:9100".into());
        vec![a, b]
    }

    /// The same config, alerts and external URL as the Alertmanager 0.25 run whose output
    /// is pasted below (Alertmanager started with `--web.external-url=http://am.example:9093`).
    #[test]
    fn matches_alertmanager_bytes() {
        let cfg = Config::load_str(
            r#"
route: {receiver: all, group_by: [alertname]}
receivers:
- name: all
  slack_configs:
  - api_url: http://127.0.0.1:1/slack
    channel: '#ops'
    send_resolved: true
    fields:
    - title: Sev
      value: '{{ .CommonLabels.severity }}'
    actions:
    - type: button
      text: Runbook
      url: 'http://rb/{{ .GroupLabels.alertname }}'
"#,
            "t.yml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let sc = &cfg.receivers[0].slack_configs[0];
        let set = default_set();
        let gl = [("alertname".to_string(), "HighCPU".to_string())];
        let now = SystemTime::now();
        let firing = notify_data("all", &gl, &alerts(false), "http://am.example:9093", now);
        let got = String::from_utf8(message(sc, &set, &firing).unwrap()).unwrap();
        assert_eq!(
            got,
            r##"{"channel":"#ops","username":"Alertmanager","attachments":[{"title":"[FIRING:2] HighCPU (page)","title_link":"http://am.example:9093/#/alerts?receiver=all","text":"","fallback":"[FIRING:2] HighCPU (page) | http://am.example:9093/#/alerts?receiver=all","callback_id":"","fields":[{"title":"Sev","value":"page","short":false}],"actions":[{"type":"button","text":"Runbook","url":"http://rb/HighCPU"}],"footer":"","color":"danger","mrkdwn_in":["fallback","pretext","text"]}]}
"##
        );
        let resolved = notify_data("all", &gl, &alerts(true), "http://am.example:9093", now);
        let got = String::from_utf8(message(sc, &set, &resolved).unwrap()).unwrap();
        assert_eq!(
            got,
            r##"{"channel":"#ops","username":"Alertmanager","attachments":[{"title":"[RESOLVED] HighCPU (page)","title_link":"http://am.example:9093/#/alerts?receiver=all","text":"","fallback":"[RESOLVED] HighCPU (page) | http://am.example:9093/#/alerts?receiver=all","callback_id":"","fields":[{"title":"Sev","value":"page","short":false}],"actions":[{"type":"button","text":"Runbook","url":"http://rb/HighCPU"}],"footer":"","color":"good","mrkdwn_in":["fallback","pretext","text"]}]}
"##
        );
    }

    #[test]
    fn template_errors_are_reported() {
        let cfg = Config::load_str(
            "route: {receiver: a}\nreceivers: [{name: a, slack_configs: [{api_url: 'http://x/', title: '{{ template \"nope\" . }}'}]}]",
            "t.yml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let d = notify_data("a", &[], &alerts(false), "", SystemTime::now());
        assert!(message(&cfg.receivers[0].slack_configs[0], &default_set(), &d).is_err());
    }
}
