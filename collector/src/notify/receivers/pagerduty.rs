//! The PagerDuty integration: Events API v2 (`routing_key`) and, as Alertmanager does for
//! `service_key`, the v1 generic events API. The dedup key (v2) / incident key (v1) is
//! Alertmanager's group key hash (SHA-256 of the group key, hex), so a trigger and its
//! resolve land on the same incident, also across Vigil and Alertmanager. Field order and
//! `omitempty` choices follow Alertmanager 0.25.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::notify::config::PagerdutyConfig;
use crate::notify::templates::{truncate_runes, NotifyData, TemplateSet};
use crate::notify::webhook::{read_secret, SendError};

/// Alertmanager's fixed v1 endpoint (`url` applies to v2 only).
pub const V1_URL: &str = "https://events.pagerduty.com/generic/2010-04-15/create_event.json";

const MAX_V1_DESCRIPTION_RUNES: usize = 1024;
const MAX_V2_SUMMARY_RUNES: usize = 1024;

#[derive(Debug, Serialize)]
struct Message {
    #[serde(skip_serializing_if = "String::is_empty")]
    routing_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    service_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    dedup_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    incident_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    event_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    event_action: String,
    payload: Option<Payload>,
    #[serde(skip_serializing_if = "String::is_empty")]
    client: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    client_url: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    details: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    images: Vec<Image>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<Link>,
}

#[derive(Debug, Serialize)]
struct Payload {
    summary: String,
    source: String,
    severity: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    class: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    component: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    group: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    custom_details: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct Image {
    src: String,
    alt: String,
    href: String,
}

#[derive(Debug, Serialize)]
struct Link {
    href: String,
    text: String,
}

/// Alertmanager's `GroupKey.Hash()`: hex SHA-256 of the group key.
pub fn group_key_hash(key: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn key(inline: &Option<String>, file: &Option<String>) -> Result<String, SendError> {
    match (
        inline.as_deref().filter(|s| !s.is_empty()),
        file.as_deref().filter(|s| !s.is_empty()),
    ) {
        (Some(k), _) => Ok(k.to_string()),
        (None, Some(f)) => read_secret(f),
        (None, None) => Ok(String::new()),
    }
}

/// The URL and JSON body Alertmanager would POST for this notification. `v1_url` is where
/// `service_key` events go ([`V1_URL`] outside tests).
pub fn request(
    conf: &PagerdutyConfig,
    tmpl: &TemplateSet,
    data: &NotifyData,
    group_key: &str,
    v1_url: &str,
) -> Result<(String, Vec<u8>), SendError> {
    let t = |s: &str| {
        tmpl.render_text(s, data)
            .map_err(|e| SendError::Template(e.to_string()))
    };
    let resolve = data.status == "resolved";
    let mut details = BTreeMap::new();
    for (k, v) in &conf.details {
        details.insert(k.clone(), t(&v.0)?);
    }
    let routing_key = key(&conf.routing_key, &conf.routing_key_file)?;
    if routing_key.is_empty() {
        let service_key = key(&conf.service_key, &conf.service_key_file)?;
        let mut msg = Message {
            routing_key: String::new(),
            service_key: t(&service_key)?,
            dedup_key: String::new(),
            incident_key: group_key_hash(group_key),
            event_type: if resolve { "resolve" } else { "trigger" }.into(),
            description: truncate_runes(t(&conf.description)?, MAX_V1_DESCRIPTION_RUNES),
            event_action: String::new(),
            payload: None,
            client: String::new(),
            client_url: String::new(),
            details,
            images: Vec::new(),
            links: Vec::new(),
        };
        if !resolve {
            msg.client = t(&conf.client)?;
            msg.client_url = t(&conf.client_url)?;
        }
        return Ok((v1_url.to_string(), json_line(&V1(&msg))));
    }
    let mut images = Vec::new();
    for i in &conf.images {
        let img = Image {
            src: t(&i.src)?,
            alt: t(&i.alt)?,
            href: t(&i.href)?,
        };
        if !img.src.is_empty() {
            images.push(img);
        }
    }
    let mut links = Vec::new();
    for l in &conf.links {
        let link = Link {
            href: t(&l.href)?,
            text: t(&l.text)?,
        };
        if !link.href.is_empty() {
            links.push(link);
        }
    }
    let severity = if conf.severity.is_empty() {
        "error".to_string()
    } else {
        t(&conf.severity)?
    };
    let msg = Message {
        routing_key: t(&routing_key)?,
        service_key: String::new(),
        dedup_key: group_key_hash(group_key),
        incident_key: String::new(),
        event_type: String::new(),
        description: String::new(),
        event_action: if resolve { "resolve" } else { "trigger" }.into(),
        payload: Some(Payload {
            summary: truncate_runes(t(&conf.description)?, MAX_V2_SUMMARY_RUNES),
            source: t(&conf.source)?,
            severity,
            class: t(&conf.class)?,
            component: t(&conf.component)?,
            group: t(&conf.group)?,
            custom_details: details,
        }),
        client: t(&conf.client)?,
        client_url: t(&conf.client_url)?,
        details: BTreeMap::new(),
        images,
        links,
    };
    let url = conf.url.clone().unwrap_or_default();
    Ok((url, json_line(&msg)))
}

/// JSON followed by a newline, as Go's `json.Encoder` writes it (Alertmanager's bodies).
fn json_line<T: Serialize>(v: &T) -> Vec<u8> {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    body
}

/// v1 messages have no `event_action`/`payload` fields at all.
struct V1<'a>(&'a Message);

impl Serialize for V1<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let m = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("service_key", &m.service_key)?;
        map.serialize_entry("incident_key", &m.incident_key)?;
        map.serialize_entry("event_type", &m.event_type)?;
        if !m.description.is_empty() {
            map.serialize_entry("description", &m.description)?;
        }
        if !m.client.is_empty() {
            map.serialize_entry("client", &m.client)?;
        }
        if !m.client_url.is_empty() {
            map.serialize_entry("client_url", &m.client_url)?;
        }
        if !m.details.is_empty() {
            map.serialize_entry("details", &m.details)?;
        }
        map.end()
    }
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

    fn conf(yaml_integration: &str) -> PagerdutyConfig {
        let cfg = Config::load_str(
            &format!(
                "route: {{receiver: all, group_by: [alertname]}}\nreceivers: [{{name: all, pagerduty_configs: [{yaml_integration}]}}]"
            ),
            "t.yml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        cfg.receivers[0].pagerduty_configs[0].clone()
    }

    /// Byte-for-byte what Alertmanager 0.25 POSTed for the same config and alerts.
    #[test]
    fn v2_matches_alertmanager_bytes() {
        let c = conf("{routing_key: rk123, url: 'http://127.0.0.1:1/pdv2', links: [{href: 'http://l/{{ .Status }}', text: L}]}");
        let gl = [("alertname".to_string(), "HighCPU".to_string())];
        let key = "{}:{alertname=\"HighCPU\"}";
        let now = SystemTime::now();
        let d = notify_data("all", &gl, &alerts(false), "http://am.example:9093", now);
        let (url, body) = request(&c, &default_set(), &d, key, V1_URL).unwrap();
        assert_eq!(url, "http://127.0.0.1:1/pdv2");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"routing_key":"rk123","dedup_key":"9f2a099adf99adbf3e1d24abbd84835468e75b8b96fca010db3f2b763340e4c1","event_action":"trigger","payload":{"summary":"[FIRING:2] HighCPU (page)","source":"Alertmanager","severity":"error","custom_details":{"firing":"Labels:\n - alertname = HighCPU\n - instance = a:9100\n - severity = page\nAnnotations:\n - summary = cpu high\nSource: http://prom/graph\nLabels:\n - alertname = HighCPU\n - instance = b:9100\n - severity = page\nAnnotations:\n - summary = cpu high\nSource: http://prom/graph\n","num_firing":"2","num_resolved":"0","resolved":""}},"client":"Alertmanager","client_url":"http://am.example:9093/#/alerts?receiver=all","links":[{"href":"http://l/firing","text":"L"}]}
"#
        );
        let d = notify_data("all", &gl, &alerts(true), "http://am.example:9093", now);
        let (_, body) = request(&c, &default_set(), &d, key, V1_URL).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"routing_key":"rk123","dedup_key":"9f2a099adf99adbf3e1d24abbd84835468e75b8b96fca010db3f2b763340e4c1","event_action":"resolve","payload":{"summary":"[RESOLVED] HighCPU (page)","source":"Alertmanager","severity":"error","custom_details":{"firing":"","num_firing":"0","num_resolved":"2","resolved":"Labels:\n - alertname = HighCPU\n - instance = a:9100\n - severity = page\nAnnotations:\n - summary = cpu high\nSource: http://prom/graph\nLabels:\n - alertname = HighCPU\n - instance = b:9100\n - severity = page\nAnnotations:\n - summary = cpu high\nSource: http://prom/graph\n"}},"client":"Alertmanager","client_url":"http://am.example:9093/#/alerts?receiver=all","links":[{"href":"http://l/resolved","text":"L"}]}
"#
        );
    }

    #[test]
    fn service_key_uses_the_v1_api() {
        let c = conf("{service_key: sk1, severity: critical}");
        let d = notify_data("all", &[], &alerts(false), "http://x", SystemTime::now());
        let (url, body) =
            request(&c, &default_set(), &d, "{}:{}", "http://127.0.0.1:9/v1").unwrap();
        assert_eq!(url, "http://127.0.0.1:9/v1");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["service_key"], "sk1");
        assert_eq!(v["event_type"], "trigger");
        assert_eq!(v["incident_key"], group_key_hash("{}:{}"));
        assert_eq!(v["client"], "Alertmanager");
        assert!(v.get("event_action").is_none() && v.get("payload").is_none());
        assert_eq!(v["details"]["num_firing"], "2");
    }

    #[test]
    fn missing_routing_key_file_is_a_credentials_error() {
        let c = conf("{routing_key_file: /nonexistent/vigil-pd-key}");
        let d = notify_data("all", &[], &alerts(false), "", SystemTime::now());
        let e = request(&c, &default_set(), &d, "k", V1_URL).expect_err("missing file");
        assert!(matches!(e, SendError::Credentials { .. }), "{e}");
        assert!(!e.is_retryable());
    }
}
