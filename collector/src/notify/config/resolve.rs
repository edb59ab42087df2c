//! Turns the raw YAML shapes into a [`Config`]: Alertmanager's defaults, global settings
//! inherited into every integration, the routing tree and inhibit rules built, and every
//! problem met on the way added to [`Problems`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::raw::*;
use super::validate::{
    check_host_port, check_http_config, check_route_references, check_url, parse_duration, Problems,
};
use super::Config;
use crate::gocompat::{canonical_mime_header_key, go_quote};
use crate::notify::inhibit::InhibitRule;
use crate::notify::route::Route;

pub(super) fn resolve(raw: RawConfig, file: &str, p: &mut Problems) -> Option<Config> {
    let global = resolve_global(raw.global.unwrap_or_default(), p);

    let mut names = BTreeSet::new();
    let mut receivers = Vec::with_capacity(raw.receivers.len());
    for (i, mut rcv) in raw.receivers.into_iter().enumerate() {
        let path = if rcv.name.0.is_empty() {
            format!("receivers[{i}]")
        } else {
            format!("receivers[{i}] {}", go_quote(rcv.name.as_str()))
        };
        if rcv.name.0.is_empty() {
            p.add(&path, "missing name in receiver");
        } else if !names.insert(rcv.name.0.clone()) {
            p.add(
                &path,
                format!(
                    "notification config name {} is not unique",
                    go_quote(rcv.name.as_str())
                ),
            );
        }
        resolve_receiver(&mut rcv, &global, &path, p);
        receivers.push(rcv);
    }

    let mut interval_names = BTreeSet::new();
    for (section, list) in [
        ("mute_time_intervals", &raw.mute_time_intervals),
        ("time_intervals", &raw.time_intervals),
    ] {
        for (i, ti) in list.iter().enumerate() {
            let path = format!("{section}[{i}]");
            if ti.name.0.is_empty() {
                p.add(&path, "missing name in time interval");
            } else if !interval_names.insert(ti.name.0.clone()) {
                p.add(
                    &path,
                    format!("time interval {} is not unique", go_quote(ti.name.as_str())),
                );
            }
        }
    }

    let route = match raw.route {
        None => {
            p.add(
                "route",
                "no route provided in config; add `route: { receiver: NAME }`",
            );
            None
        }
        Some(rc) => {
            if rc.receiver.0.is_empty() {
                p.add("route", "root route must specify a default receiver");
            }
            if !rc.match_eq.is_empty() || !rc.match_re.is_empty() || !rc.matchers.is_empty() {
                p.add(
                    "route",
                    "root route must not have any matchers (it is the fallback for all alerts)",
                );
            }
            if rc.continue_matching {
                p.add("route.continue", "cannot have continue in root route");
            }
            if !rc.mute_time_intervals.is_empty() {
                p.add(
                    "route.mute_time_intervals",
                    "root route must not have any mute time intervals",
                );
            }
            if !rc.active_time_intervals.is_empty() {
                p.add(
                    "route.active_time_intervals",
                    "root route must not have any active time intervals",
                );
            }
            check_route_references(&rc, "route", &names, &interval_names, p);
            Some(Route::build(&rc, None, Vec::new(), "route", p))
        }
    };

    let inhibit_rules = raw
        .inhibit_rules
        .iter()
        .enumerate()
        .map(|(i, r)| InhibitRule::build(r, &format!("inhibit_rules[{i}]"), p))
        .collect();

    let templates = raw.templates.into_iter().map(|s| s.0).collect();
    Some(Config {
        file: file.to_string(),
        global,
        route: route?,
        inhibit_rules,
        receivers,
        templates,
    })
}

fn resolve_global(g: RawGlobal, p: &mut Problems) -> GlobalConfig {
    let resolve_timeout = match &g.resolve_timeout {
        None => Duration::from_secs(300),
        Some(s) => parse_duration(s.as_str()).unwrap_or_else(|e| {
            p.add("global.resolve_timeout", e);
            Duration::from_secs(300)
        }),
    };
    let http_config = g.http_config.unwrap_or_default();
    check_http_config(&http_config, "global.http_config", p);
    let smtp_smarthost = g.smtp_smarthost.map(|s| s.0).unwrap_or_default();
    check_host_port(&smtp_smarthost, "global.smtp_smarthost", p);
    if g.smtp_auth_password
        .as_ref()
        .is_some_and(|s| !s.0.is_empty())
        && g.smtp_auth_password_file
            .as_ref()
            .is_some_and(|s| !s.0.is_empty())
    {
        p.add(
            "global",
            "at most one of smtp_auth_password & smtp_auth_password_file must be configured",
        );
    }
    if g.slack_api_url.is_some()
        && g.slack_api_url_file
            .as_ref()
            .is_some_and(|s| !s.0.is_empty())
    {
        p.add(
            "global",
            "at most one of slack_api_url & slack_api_url_file must be configured",
        );
    }
    if let Some(u) = &g.slack_api_url {
        check_url(u.as_str(), "global.slack_api_url", p);
    }
    let pagerduty_url = match g.pagerduty_url {
        Some(u) => {
            check_url(u.as_str(), "global.pagerduty_url", p);
            u.0
        }
        None => DEFAULT_PAGERDUTY_URL.to_string(),
    };
    for (field, url) in [
        ("opsgenie_api_url", &g.opsgenie_api_url),
        ("wechat_api_url", &g.wechat_api_url),
        ("victorops_api_url", &g.victorops_api_url),
        ("telegram_api_url", &g.telegram_api_url),
        ("webex_api_url", &g.webex_api_url),
    ] {
        if let Some(u) = url {
            check_url(u.as_str(), &format!("global.{field}"), p);
        }
    }
    let smtp_tls_config = g.smtp_tls_config.unwrap_or_default();
    GlobalConfig {
        resolve_timeout,
        http_config,
        smtp_from: g.smtp_from.map(|s| s.0).unwrap_or_default(),
        smtp_hello: g
            .smtp_hello
            .map(|s| s.0)
            .unwrap_or_else(|| "localhost".to_string()),
        smtp_smarthost,
        smtp_auth_username: g.smtp_auth_username.map(|s| s.0).unwrap_or_default(),
        smtp_auth_password: g.smtp_auth_password.map(|s| s.0).unwrap_or_default(),
        smtp_auth_password_file: g.smtp_auth_password_file.map(|s| s.0).unwrap_or_default(),
        smtp_auth_secret: g.smtp_auth_secret.map(|s| s.0).unwrap_or_default(),
        smtp_auth_identity: g.smtp_auth_identity.map(|s| s.0).unwrap_or_default(),
        smtp_require_tls: g.smtp_require_tls.unwrap_or(true),
        smtp_tls_config,
        slack_api_url: g.slack_api_url.map(|s| s.0),
        slack_api_url_file: g.slack_api_url_file.map(|s| s.0).filter(|s| !s.is_empty()),
        pagerduty_url,
    }
}

fn resolve_receiver(rcv: &mut Receiver, g: &GlobalConfig, path: &str, p: &mut Problems) {
    for (field, present) in [
        ("opsgenie_configs", rcv.opsgenie_configs.is_some()),
        ("wechat_configs", rcv.wechat_configs.is_some()),
        ("pushover_configs", rcv.pushover_configs.is_some()),
        ("victorops_configs", rcv.victorops_configs.is_some()),
        ("sns_configs", rcv.sns_configs.is_some()),
        ("telegram_configs", rcv.telegram_configs.is_some()),
        ("discord_configs", rcv.discord_configs.is_some()),
        ("webex_configs", rcv.webex_configs.is_some()),
        ("msteams_configs", rcv.msteams_configs.is_some()),
    ] {
        if present {
            p.add(
                format!("{path}.{field}"),
                format!(
                    "{field} are not supported by Vigil; use webhook_configs, slack_configs, \
                     pagerduty_configs or email_configs"
                ),
            );
        }
    }

    for (i, wh) in rcv.webhook_configs.iter_mut().enumerate() {
        let path = format!("{path}.webhook_configs[{i}]");
        match &wh.url {
            None => p.add(&path, "missing URL in webhook config; set `url: http://…`"),
            Some(u) => check_url(u, &format!("{path}.url"), p),
        }
        resolve_http(&mut wh.http_config, g, &path, p);
    }

    for (i, sc) in rcv.slack_configs.iter_mut().enumerate() {
        let path = format!("{path}.slack_configs[{i}]");
        resolve_http(&mut sc.http_config, g, &path, p);
        if sc.api_url.is_some() && sc.api_url_file.as_ref().is_some_and(|f| !f.is_empty()) {
            p.add(
                &path,
                "at most one of api_url & api_url_file must be configured",
            );
        }
        if let Some(u) = &sc.api_url {
            check_url(u, &format!("{path}.api_url"), p);
        }
        if sc.api_url.is_none() && sc.api_url_file.as_ref().is_none_or(|f| f.is_empty()) {
            if g.slack_api_url.is_none() && g.slack_api_url_file.is_none() {
                p.add(
                    &path,
                    "no global Slack API URL set either inline or in a file; set \
                     `api_url` here or `global.slack_api_url`",
                );
            }
            sc.api_url = g.slack_api_url.clone();
            sc.api_url_file = g.slack_api_url_file.clone();
        }
        for (j, a) in sc.actions.iter().enumerate() {
            let apath = format!("{path}.actions[{j}]");
            if a.kind.is_empty() {
                p.add(&apath, "missing type in Slack action configuration");
            }
            if a.text.is_empty() {
                p.add(&apath, "missing text in Slack action configuration");
            }
            if a.url.is_empty() && a.name.is_empty() {
                p.add(&apath, "missing name or url in Slack action configuration");
            }
            if let Some(c) = &a.confirm {
                if c.text.is_empty() {
                    p.add(
                        format!("{apath}.confirm"),
                        "missing text in Slack confirmation configuration",
                    );
                }
            }
        }
        for (j, f) in sc.fields.iter().enumerate() {
            let fpath = format!("{path}.fields[{j}]");
            if f.title.is_empty() {
                p.add(&fpath, "missing title in Slack field configuration");
            }
            if f.value.is_empty() {
                p.add(&fpath, "missing value in Slack field configuration");
            }
        }
    }

    for (i, pd) in rcv.pagerduty_configs.iter_mut().enumerate() {
        let path = format!("{path}.pagerduty_configs[{i}]");
        resolve_http(&mut pd.http_config, g, &path, p);
        let set = |o: &Option<String>| o.as_ref().is_some_and(|s| !s.is_empty());
        if !set(&pd.routing_key)
            && !set(&pd.service_key)
            && !set(&pd.routing_key_file)
            && !set(&pd.service_key_file)
        {
            p.add(&path, "missing service or routing key in PagerDuty config");
        }
        if set(&pd.routing_key) && set(&pd.routing_key_file) {
            p.add(
                &path,
                "at most one of routing_key & routing_key_file must be configured",
            );
        }
        if set(&pd.service_key) && set(&pd.service_key_file) {
            p.add(
                &path,
                "at most one of service_key & service_key_file must be configured",
            );
        }
        match &pd.url {
            Some(u) => check_url(u, &format!("{path}.url"), p),
            None => pd.url = Some(g.pagerduty_url.clone()),
        }
        if pd.source.is_empty() {
            pd.source = pd.client.clone();
        }
        for (k, v) in DEFAULT_PAGERDUTY_DETAILS {
            pd.details
                .entry(k.to_string())
                .or_insert_with(|| Scalar(v.to_string()));
        }
    }

    for (i, ec) in rcv.email_configs.iter_mut().enumerate() {
        let path = format!("{path}.email_configs[{i}]");
        if ec.subject.is_some() {
            p.add(
                format!("{path}.subject"),
                "`subject` is not a field of Alertmanager's email_configs; set the subject \
                 as a header instead: `headers: { Subject: '…' }`",
            );
        }
        if ec.to.is_empty() {
            p.add(&path, "missing to address in email config");
        }
        let mut canonical = BTreeMap::new();
        for (name, value) in std::mem::take(&mut ec.headers) {
            let c = canonical_mime_header_key(&name);
            if canonical.insert(c.clone(), value).is_some() {
                p.add(
                    format!("{path}.headers"),
                    format!("duplicate header {} in email config", go_quote(&c)),
                );
            }
        }
        ec.headers = canonical;
        if ec.tls_config.is_none() {
            ec.tls_config = Some(g.smtp_tls_config.clone());
        }
        if ec.smarthost.is_empty() {
            if g.smtp_smarthost.is_empty() {
                p.add(
                    &path,
                    "no global SMTP smarthost set; set `smarthost: host:port` here or \
                     `global.smtp_smarthost`",
                );
            }
            ec.smarthost = g.smtp_smarthost.clone();
        } else {
            check_host_port(&ec.smarthost, &format!("{path}.smarthost"), p);
        }
        if ec.from.is_empty() {
            if g.smtp_from.is_empty() {
                p.add(
                    &path,
                    "no global SMTP from set; set `from:` here or `global.smtp_from`",
                );
            }
            ec.from = g.smtp_from.clone();
        }
        if ec.hello.is_empty() {
            ec.hello = g.smtp_hello.clone();
        }
        if ec.auth_username.is_empty() {
            ec.auth_username = g.smtp_auth_username.clone();
        }
        if ec.auth_password.is_empty() && ec.auth_password_file.is_empty() {
            ec.auth_password = g.smtp_auth_password.clone();
            ec.auth_password_file = g.smtp_auth_password_file.clone();
        }
        if ec.auth_secret.is_empty() {
            ec.auth_secret = g.smtp_auth_secret.clone();
        }
        if ec.auth_identity.is_empty() {
            ec.auth_identity = g.smtp_auth_identity.clone();
        }
        if ec.require_tls.is_none() {
            ec.require_tls = Some(g.smtp_require_tls);
        }
    }
}

fn resolve_http(h: &mut Option<HttpConfig>, g: &GlobalConfig, path: &str, p: &mut Problems) {
    match h {
        Some(h) => check_http_config(h, &format!("{path}.http_config"), p),
        None => *h = Some(g.http_config.clone()),
    }
}
