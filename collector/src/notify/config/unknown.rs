//! Finds *every* unknown field in a config, not only the first one serde stops at, so a
//! file with several misspellings is reported in one go together with the other validation
//! errors.
//!
//! The known field names come from the config structs themselves (the list serde derives
//! for `deny_unknown_fields`), captured by a tiny deserializer; only the nesting (which
//! field holds which struct) is written down here.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde_yaml_ng::Value;

use super::{
    Authorization, BasicAuth, EmailConfig, HttpConfig, PagerdutyConfig, PagerdutyImage,
    PagerdutyLink, Receiver, RouteConfig, SlackAction, SlackConfig, SlackConfirm, SlackField,
    TlsConfig, WebhookConfig,
};

/// A deserializer that records the field list serde passes to `deserialize_struct`.
struct FieldCapture<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldCapture<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("field capture"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("field capture"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The field names `T` accepts.
fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldCapture(&mut fields));
    fields
}

/// The config structs that can hold nested structs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Root,
    Global,
    Route,
    Inhibit,
    Receiver,
    Webhook,
    Slack,
    SlackField,
    SlackAction,
    SlackConfirm,
    Pagerduty,
    PagerdutyImage,
    PagerdutyLink,
    Email,
    Http,
    BasicAuth,
    Authorization,
    Tls,
    TimeInterval,
}

fn fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Root => fields_of::<super::RawConfig>(),
        Kind::Global => fields_of::<super::RawGlobal>(),
        Kind::Route => fields_of::<RouteConfig>(),
        Kind::Inhibit => fields_of::<super::InhibitRuleConfig>(),
        Kind::Receiver => fields_of::<Receiver>(),
        Kind::Webhook => fields_of::<WebhookConfig>(),
        Kind::Slack => fields_of::<SlackConfig>(),
        Kind::SlackField => fields_of::<SlackField>(),
        Kind::SlackAction => fields_of::<SlackAction>(),
        Kind::SlackConfirm => fields_of::<SlackConfirm>(),
        Kind::Pagerduty => fields_of::<PagerdutyConfig>(),
        Kind::PagerdutyImage => fields_of::<PagerdutyImage>(),
        Kind::PagerdutyLink => fields_of::<PagerdutyLink>(),
        Kind::Email => fields_of::<EmailConfig>(),
        Kind::Http => fields_of::<HttpConfig>(),
        Kind::BasicAuth => fields_of::<BasicAuth>(),
        Kind::Authorization => fields_of::<Authorization>(),
        Kind::Tls => fields_of::<TlsConfig>(),
        Kind::TimeInterval => fields_of::<super::TimeIntervalConfig>(),
    }
}

/// Which struct a field holds, and whether as a list of them.
fn child(kind: Kind, field: &str) -> Option<(Kind, bool)> {
    use Kind::*;
    Some(match (kind, field) {
        (Root, "global") => (Global, false),
        (Root, "route") => (Route, false),
        (Root, "inhibit_rules") => (Inhibit, true),
        (Root, "receivers") => (Receiver, true),
        (Root, "mute_time_intervals" | "time_intervals") => (TimeInterval, true),
        (Global, "http_config") => (Http, false),
        (Global, "smtp_tls_config") => (Tls, false),
        (Route, "routes") => (Route, true),
        (Receiver, "webhook_configs") => (Webhook, true),
        (Receiver, "slack_configs") => (Slack, true),
        (Receiver, "pagerduty_configs") => (Pagerduty, true),
        (Receiver, "email_configs") => (Email, true),
        (Webhook | Slack | Pagerduty, "http_config") => (Http, false),
        (Slack, "fields") => (SlackField, true),
        (Slack, "actions") => (SlackAction, true),
        (SlackAction, "confirm") => (SlackConfirm, false),
        (Pagerduty, "images") => (PagerdutyImage, true),
        (Pagerduty, "links") => (PagerdutyLink, true),
        (Email, "tls_config") => (Tls, false),
        (Http, "basic_auth") => (BasicAuth, false),
        (Http, "authorization") => (Authorization, false),
        (Http, "tls_config") => (Tls, false),
        _ => return None,
    })
}

/// An unknown field: the path of its mapping, its name, and the names that are allowed there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownField {
    pub(crate) parent: String,
    pub(crate) name: String,
    pub(crate) expected: &'static [&'static str],
}

impl UnknownField {
    /// The path of the field itself, for [`super::locate`].
    pub(crate) fn path(&self) -> String {
        if self.parent.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.parent, self.name)
        }
    }

    /// serde's wording: ``unknown field `x`, expected one of `a`, `b` ``.
    pub(crate) fn message(&self) -> String {
        let expected: Vec<String> = self.expected.iter().map(|f| format!("`{f}`")).collect();
        format!(
            "unknown field `{}`, expected one of {}",
            self.name,
            expected.join(", ")
        )
    }
}

fn key_text(k: &Value) -> Option<String> {
    match k {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Removes every unknown field from `value` (a whole config document) and returns them.
pub(crate) fn remove_unknown_fields(value: &mut Value) -> Vec<UnknownField> {
    let mut out = Vec::new();
    sweep(value, Kind::Root, String::new(), &mut out);
    out
}

fn sweep(value: &mut Value, kind: Kind, path: String, out: &mut Vec<UnknownField>) {
    let Value::Mapping(map) = value else {
        return;
    };
    let known = fields(kind);
    let mut unknown_keys = Vec::new();
    for (k, v) in map.iter_mut() {
        let Some(name) = key_text(k) else {
            continue;
        };
        if !known.contains(&name.as_str()) {
            unknown_keys.push(k.clone());
            out.push(UnknownField {
                parent: path.clone(),
                name,
                expected: known,
            });
            continue;
        }
        let Some((child_kind, is_list)) = child(kind, &name) else {
            continue;
        };
        let child_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        match (is_list, v) {
            (true, Value::Sequence(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    sweep(item, child_kind, format!("{child_path}[{i}]"), out);
                }
            }
            (false, v) => sweep(v, child_kind, child_path, out),
            _ => {}
        }
    }
    for k in unknown_keys {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lists_come_from_the_structs() {
        assert!(fields(Kind::Route).contains(&"group_wait"));
        assert!(fields(Kind::Route).contains(&"match"));
        assert!(fields(Kind::Http).contains(&"basic_auth"));
        assert!(fields(Kind::Root).contains(&"inhibit_rules"));
        assert!(fields(Kind::TimeInterval).contains(&"time_intervals"));
        for kind in [
            Kind::Global,
            Kind::Inhibit,
            Kind::Receiver,
            Kind::Webhook,
            Kind::Slack,
            Kind::SlackField,
            Kind::SlackAction,
            Kind::SlackConfirm,
            Kind::Pagerduty,
            Kind::PagerdutyImage,
            Kind::PagerdutyLink,
            Kind::Email,
            Kind::BasicAuth,
            Kind::Authorization,
            Kind::Tls,
        ] {
            assert!(!fields(kind).is_empty(), "{kind:?}");
        }
    }

    #[test]
    fn finds_and_removes_every_unknown_field() {
        let mut v: Value = serde_yaml_ng::from_str(
            "route:
  receiver: a
  group_wiat: 1s
  routes: [{receiver: a, contnue: true}]
receivers:
  - name: a
    webhook_configs: [{url: 'http://x/', timeout: 1s, http_config: {bearer: x}}]
extra: 1
",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let found = remove_unknown_fields(&mut v);
        let paths: Vec<String> = found.iter().map(UnknownField::path).collect();
        assert_eq!(
            paths,
            [
                "route.group_wiat",
                "route.routes[0].contnue",
                "receivers[0].webhook_configs[0].timeout",
                "receivers[0].webhook_configs[0].http_config.bearer",
                "extra",
            ]
        );
        assert!(found[0]
            .message()
            .starts_with("unknown field `group_wiat`, expected one of"));
        // What is left parses strictly.
        assert!(remove_unknown_fields(&mut v).is_empty());
    }
}
