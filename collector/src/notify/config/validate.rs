//! The checks of a notification config that Alertmanager makes: references between routes,
//! receivers and time intervals, URLs, `host:port` addresses, HTTP client settings,
//! durations and label names. Each adds what it finds to [`Problems`], so all are reported
//! together.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::raw::{HttpConfig, RouteConfig, Scalar};
use super::ValidationError;
use crate::gocompat::go_quote;
use crate::notify::matcher::is_valid_label_name;
use vigil_shared::duration::DurationError;

/// Collects validation errors with their paths.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub(crate) Vec<ValidationError>);

impl Problems {
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ValidationError {
            path: path.into(),
            line: None,
            message: message.into(),
        });
    }
}

pub(super) fn check_route_references(
    r: &RouteConfig,
    path: &str,
    receivers: &BTreeSet<String>,
    intervals: &BTreeSet<String>,
    p: &mut Problems,
) {
    if !r.receiver.0.is_empty() && !receivers.contains(&r.receiver.0) {
        p.add(
            format!("{path}.receiver"),
            format!(
                "undefined receiver {} used in route; define it under `receivers:`",
                go_quote(r.receiver.as_str())
            ),
        );
    }
    for (field, list) in [
        ("mute_time_intervals", &r.mute_time_intervals),
        ("active_time_intervals", &r.active_time_intervals),
    ] {
        for name in list {
            if !intervals.contains(&name.0) {
                p.add(
                    format!("{path}.{field}"),
                    format!(
                        "undefined time interval {} used in route",
                        go_quote(name.as_str())
                    ),
                );
            } else if path != "route" {
                p.add(
                    format!("{path}.{field}"),
                    "time-based muting is not supported by Vigil yet; remove \
                     mute_time_intervals/active_time_intervals from the route",
                );
            }
        }
    }
    for (i, child) in r.routes.iter().enumerate() {
        check_route_references(
            child,
            &format!("{path}.routes[{i}]"),
            receivers,
            intervals,
            p,
        );
    }
}

pub(super) fn check_http_config(h: &HttpConfig, path: &str, p: &mut Problems) {
    let set = |o: &Option<String>| o.as_ref().is_some_and(|s| !s.is_empty());
    let bearer = set(&h.bearer_token) || set(&h.bearer_token_file);
    let n = [
        h.basic_auth.is_some(),
        h.oauth2.is_some(),
        set(&h.bearer_token),
        set(&h.bearer_token_file),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if n > 1 {
        p.add(
            path,
            "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
        );
    }
    if let Some(b) = &h.basic_auth {
        if set(&b.password) && set(&b.password_file) {
            p.add(
                format!("{path}.basic_auth"),
                "at most one of basic_auth password & password_file must be configured",
            );
        }
    }
    if let Some(a) = &h.authorization {
        if bearer {
            p.add(
                path,
                "authorization is not compatible with bearer_token & bearer_token_file",
            );
        }
        if set(&a.credentials) && set(&a.credentials_file) {
            p.add(
                format!("{path}.authorization"),
                "at most one of authorization credentials & credentials_file must be configured",
            );
        }
        if a.kind
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("basic"))
        {
            p.add(
                format!("{path}.authorization.type"),
                "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
            );
        }
        if h.basic_auth.is_some() || h.oauth2.is_some() {
            p.add(
                path,
                "at most one of basic_auth, oauth2 & authorization must be configured",
            );
        }
    }
    if h.oauth2.is_some() {
        p.add(
            format!("{path}.oauth2"),
            "oauth2 is not supported by Vigil; use authorization or basic_auth",
        );
    }
    if let Some(u) = &h.proxy_url {
        if !u.is_empty() {
            check_url(u, &format!("{path}.proxy_url"), p);
        }
    }
}

/// Checks a `host:port` address as Go's `net.SplitHostPort` does; empty means unset.
pub(super) fn check_host_port(s: &str, path: &str, p: &mut Problems) {
    if s.is_empty() {
        return;
    }
    if let Err(why) = split_host_port(s) {
        p.add(path, format!("address {s}: {why}"));
        return;
    }
    if s.ends_with(':') {
        p.add(
            path,
            format!("address {}: port cannot be empty", go_quote(s)),
        );
    }
}

/// Go's `net.SplitHostPort` error rules.
pub(super) fn split_host_port(s: &str) -> Result<(), &'static str> {
    let Some(i) = s.rfind(':') else {
        return Err("missing port in address");
    };
    let (j, k) = if s.starts_with('[') {
        let Some(end) = s.find(']') else {
            return Err("missing ']' in address");
        };
        if end + 1 == s.len() {
            return Err("missing port in address");
        }
        if end + 1 != i {
            return Err(if s.as_bytes()[end + 1] == b':' {
                "too many colons in address"
            } else {
                "missing port in address"
            });
        }
        (1, end + 1)
    } else {
        if s[..i].contains(':') {
            return Err("too many colons in address");
        }
        (0, 0)
    };
    if s[j..].contains('[') {
        return Err("unexpected '[' in address");
    }
    if s[k..].contains(']') {
        return Err("unexpected ']' in address");
    }
    Ok(())
}

/// Validates an absolute `http`/`https` URL the way Alertmanager does (Go's `url.Parse`, then
/// a scheme and host check). Placeholders like `YOUR_SLACK_WEBHOOK_URL` fail here.
pub fn check_url_str(s: &str) -> Result<(), String> {
    let example = "expected an absolute http(s) URL such as http://127.0.0.1:9093/hook";
    if s.chars().any(|c| c.is_ascii_control()) {
        return Err(format!(
            "parse {}: net/url: invalid control character in URL",
            go_quote(s)
        ));
    }
    // Scheme: a letter followed by letters, digits, '+', '-', '.', then ':'.
    let scheme = match s.find(':') {
        Some(i)
            if i > 0
                && s[..i].starts_with(|c: char| c.is_ascii_alphabetic())
                && s[..i]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            &s[..i]
        }
        Some(0) => return Err(format!("parse {}: missing protocol scheme", go_quote(s))),
        _ => "",
    };
    let scheme_lower = scheme.to_ascii_lowercase();
    if scheme_lower != "http" && scheme_lower != "https" {
        return Err(format!(
            "unsupported scheme {} for URL; {example}",
            go_quote(&scheme_lower)
        ));
    }
    let rest = &s[scheme.len() + 1..];
    let Some(after) = rest.strip_prefix("//") else {
        return Err(format!("missing host for URL; {example}"));
    };
    let auth_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..auth_end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        return Err(format!("missing host for URL; {example}"));
    }
    // Port, if any, must be digits.
    let (hostname, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.find(']') {
            Some(i) => (&rest[..i], rest[i + 1..].strip_prefix(':')),
            None => return Err(format!("parse {}: missing ']' in host", go_quote(s))),
        }
    } else {
        match host.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        }
    };
    if let Some(port) = port {
        if !port.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "parse {}: invalid port {} after host",
                go_quote(s),
                go_quote(&format!(":{port}"))
            ));
        }
    }
    // Go allows unreserved characters, sub-delims, ':', '[', ']', '<', '>', '"' and
    // non-ASCII in a host; '%' is an escape, checked below.
    if let Some(c) = hostname.chars().find(|c| {
        c.is_ascii() && !c.is_ascii_alphanumeric() && !"-._~!$&'()*+,;=:[]<>\"%".contains(*c)
    }) {
        return Err(format!(
            "parse {}: invalid character {} in host name",
            go_quote(s),
            go_quote(&c.to_string())
        ));
    }
    // Percent-escapes must be two hex digits.
    let bytes = after.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let ok = i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit();
            if !ok {
                let end = (i + 3).min(bytes.len());
                return Err(format!(
                    "parse {}: invalid URL escape {}",
                    go_quote(s),
                    go_quote(&String::from_utf8_lossy(&bytes[i..end]))
                ));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

pub(super) fn check_url(s: &str, path: &str, p: &mut Problems) {
    if let Err(e) = check_url_str(s) {
        p.add(path, e);
    }
}

/// Parses a Prometheus duration (`1h30m`, `5m`, `10s`, `1d`, `1w`, `1y`, `250ms`, `0`) with
/// [`vigil_shared::duration::parse`], wording the error as Alertmanager does.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    vigil_shared::duration::parse(s).map_err(|e| match e {
        DurationError::TooLarge(_) => format!("duration {} is too large", go_quote(s)),
        DurationError::Invalid(_) | DurationError::Zero => format!(
            "not a valid duration string: {}; expected e.g. 30s, 5m, 1h30m, 1d",
            go_quote(s)
        ),
    })
}

/// Validates label names in a `match`/`match_re` map; shared by routes and inhibit rules.
pub(crate) fn check_label_names<V>(map: &BTreeMap<Scalar, V>, path: &str, p: &mut Problems) {
    for k in map.keys() {
        if !is_valid_label_name(k.as_str()) {
            p.add(path, format!("invalid label name {}", go_quote(k.as_str())));
        }
    }
}
