//! Unit tests of loading, resolving and validating `alertmanager.yml`.

use std::time::Duration;

use super::validate::{check_host_port, split_host_port};
use super::*;
use crate::gocompat::canonical_mime_header_key;
use vigil_shared::duration::format as format_duration;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::load_str(text, "test.yml")
}

fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(ConfigError::Invalid { errors, .. }) => errors.iter().map(|e| e.to_string()).collect(),
        Err(e) => vec![e.to_string()],
    }
}

fn has(errors: &[String], needle: &str) -> bool {
    errors.iter().any(|e| e.contains(needle))
}

const MIN: &str = "route: {receiver: a}\nreceivers: [{name: a}]\n";

#[test]
fn minimal_config_gets_alertmanager_defaults() {
    let c = load(MIN).unwrap();
    assert_eq!(c.global.resolve_timeout, Duration::from_secs(300));
    assert_eq!(c.global.smtp_hello, "localhost");
    assert!(c.global.smtp_require_tls);
    assert_eq!(c.global.pagerduty_url, DEFAULT_PAGERDUTY_URL);
    assert_eq!(c.route.opts.receiver, "a");
    assert_eq!(c.route.opts.group_wait, Duration::from_secs(30));
    assert_eq!(c.route.opts.group_interval, Duration::from_secs(300));
    assert_eq!(c.route.opts.repeat_interval, Duration::from_secs(4 * 3600));
}

#[test]
fn global_settings_are_inherited_by_receivers() {
    let c = load(
        "global:
  smtp_smarthost: 'mail:25'
  smtp_from: am@example.org
  smtp_require_tls: false
  slack_api_url: 'http://127.0.0.1:1/slack'
  pagerduty_url: 'http://127.0.0.1:1/pd'
  http_config: {bearer_token: tok}
route: {receiver: r}
receivers:
  - name: r
    email_configs: [{to: x@example.org, headers: {subject: hi}}]
    slack_configs: [{channel: '#c'}]
    pagerduty_configs: [{routing_key: k, client: me}]
    webhook_configs: [{url: 'http://127.0.0.1:1/hook'}]
",
    )
    .unwrap();
    let r = c.receiver("r").unwrap();
    let e = &r.email_configs[0];
    assert_eq!(e.smarthost, "mail:25");
    assert_eq!(e.from, "am@example.org");
    assert_eq!(e.require_tls, Some(false));
    assert_eq!(e.headers.get("Subject").map(|s| s.0.as_str()), Some("hi"));
    assert!(!e.send_resolved);
    let s = &r.slack_configs[0];
    assert_eq!(s.api_url.as_deref(), Some("http://127.0.0.1:1/slack"));
    assert!(!s.send_resolved);
    assert_eq!(
        s.http_config.as_ref().unwrap().bearer_token.as_deref(),
        Some("tok")
    );
    let pd = &r.pagerduty_configs[0];
    assert_eq!(pd.url.as_deref(), Some("http://127.0.0.1:1/pd"));
    assert_eq!(pd.source, "me");
    assert!(pd.details.contains_key("num_firing"));
    assert!(pd.send_resolved);
    let wh = &r.webhook_configs[0];
    assert!(wh.send_resolved);
    assert_eq!(
        wh.http_config.as_ref().unwrap().bearer_token.as_deref(),
        Some("tok")
    );
}

#[test]
fn unknown_field_names_file_line_and_field() {
    let e = load("route:\n  receiver: a\n  recevier: b\nreceivers: [{name: a}]\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("test.yml: "), "{e}");
    assert!(
        e.contains("line 3: route.recevier: unknown field `recevier`"),
        "{e}"
    );
    let e = load("route: {receiver: a}\nreceivers:\n- name: a\n  webhook_configs:\n  - url: 'http://x/'\n    timeout: 3s\n")
            .unwrap_err()
            .to_string();
    assert!(
        e.contains("line 6: receivers[0].webhook_configs[0].timeout: unknown field `timeout`"),
        "{e}"
    );
}

#[test]
fn all_unknown_fields_are_reported_with_the_other_errors() {
    let e = errors(
        "global: {slack_api_url: 'YOUR_URL'}
route:
  receiver: a
  group_wiat: 10s
  routes:
    - {receiver: missing, contnue: true}
receivers:
  - name: a
    webhook_configs: [{url: 'http://127.0.0.1/', timeout: 3s}]
",
    );
    for needle in [
        "line 1: global.slack_api_url: unsupported scheme",
        "line 4: route.group_wiat: unknown field `group_wiat`",
        "line 6: route.routes[0].contnue: unknown field `contnue`",
        "line 6: route.routes[0].receiver: undefined receiver \"missing\"",
        "line 9: receivers[0].webhook_configs[0].timeout: unknown field `timeout`",
    ] {
        assert!(has(&e, needle), "{needle}: {e:?}");
    }
    assert_eq!(e.len(), 5, "{e:?}");
}

#[test]
fn a_type_error_is_still_reported_by_the_parser() {
    let e = load("route: {receiver: a, routes: 5, typo: 1}\nreceivers: [{name: a}]").unwrap_err();
    assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
}

#[test]
fn yaml_syntax_error_has_location() {
    let e = load("route: {receiver: a\n").unwrap_err();
    assert!(
        matches!(e, ConfigError::Parse { line, .. } if line > 0),
        "{e}"
    );
}

#[test]
fn root_route_rules() {
    assert!(has(&errors("receivers: [{name: a}]"), "no route provided"));
    assert!(has(&errors(""), "no route provided"));
    let e = errors("route: {group_by: [x]}\nreceivers: [{name: a}]");
    assert!(has(&e, "root route must specify a default receiver"));
    let e = errors("route: {receiver: a, match: {x: y}}\nreceivers: [{name: a}]");
    assert!(has(&e, "root route must not have any matchers"));
    let e = errors("route: {receiver: a, matchers: ['x=y']}\nreceivers: [{name: a}]");
    assert!(has(&e, "root route must not have any matchers"));
    let e = errors("route: {receiver: a, continue: true}\nreceivers: [{name: a}]");
    assert!(has(&e, "cannot have continue in root route"));
}

#[test]
fn receivers_must_exist_and_be_unique_and_named() {
    let e = errors("route: {receiver: a, routes: [{receiver: b}, {receiver: c}]}\nreceivers: [{name: a}, {name: a}, {}]");
    assert!(has(&e, "undefined receiver \"b\""), "{e:?}");
    assert!(has(&e, "undefined receiver \"c\""), "{e:?}");
    assert!(has(&e, "name \"a\" is not unique"), "{e:?}");
    assert!(has(&e, "missing name in receiver"), "{e:?}");
}

#[test]
fn urls_must_be_absolute_http() {
    for (url, msg) in [
        ("YOUR_SLACK_WEBHOOK_URL", "unsupported scheme \"\""),
        ("ftp://x/", "unsupported scheme \"ftp\""),
        ("http://", "missing host"),
        ("/relative", "unsupported scheme \"\""),
        ("http://a b/", "invalid character \" \" in host name"),
        ("http://ab:x/", "invalid port \":x\" after host"),
        ("http://x/%zz", "invalid URL escape \"%zz\""),
    ] {
        let e = errors(&format!(
            "route: {{receiver: a}}\nreceivers: [{{name: a, webhook_configs: [{{url: '{url}'}}]}}]"
        ));
        assert!(has(&e, msg), "{url}: {e:?}");
        assert!(has(&e, "webhook_configs[0].url"), "{url}: {e:?}");
    }
    assert!(check_url_str("HTTP://x/").is_ok());
    assert!(check_url_str("https://user:pw@127.0.0.1:9093/a?b#c").is_ok());
    assert!(check_url_str("http://[::1]:9093/").is_ok());
    // Found by differential testing: Go accepts '"', '<' and '>' in host names.
    assert!(check_url_str("http://127.0.0.\":19093/slack").is_ok());
    assert!(check_url_str("http://a|b/").is_err());
}

#[test]
fn integration_requirements() {
    let e = errors(
        "route: {receiver: a}
receivers:
- name: a
  webhook_configs: [{send_resolved: true}]
  slack_configs: [{channel: x, actions: [{type: button}], fields: [{title: t}]}]
  pagerduty_configs: [{url: 'http://x/'}]
  email_configs: [{from: a@b}, {to: a@b, headers: {subject: x, Subject: y}}]
  opsgenie_configs: [{api_key: x}]
",
    );
    for needle in [
        "missing URL in webhook config",
        "no global Slack API URL set",
        "missing text in Slack action",
        "missing name or url in Slack action",
        "missing value in Slack field",
        "missing service or routing key in PagerDuty config",
        "missing to address in email config",
        "no global SMTP smarthost set",
        "no global SMTP from set",
        "duplicate header \"Subject\"",
        "opsgenie_configs are not supported",
    ] {
        assert!(has(&e, needle), "{needle}: {e:?}");
    }
}

#[test]
fn email_subject_field_points_at_headers() {
    let e = errors(
        "global: {smtp_smarthost: 'h:25', smtp_from: a@b}
route: {receiver: a}
receivers: [{name: a, email_configs: [{to: x@y, subject: 'hi'}]}]",
    );
    assert!(
        has(&e, "email_configs[0].subject") && has(&e, "headers: { Subject:"),
        "{e:?}"
    );
}

#[test]
fn route_field_errors_are_all_collected() {
    let e = errors(
        "route:
  receiver: a
  group_by: ['...', x]
  group_interval: 0s
  routes:
    - group_by: [x, x, 'a-b']
      repeat_interval: 0
      group_wait: 1.5s
      match: {'a-b': x}
      match_re: {y: '('}
      matchers: ['foo', 'x=\"unterminated']
receivers: [{name: a}]
",
    );
    for needle in [
        "cannot have wildcard group_by",
        "group_interval cannot be zero",
        "duplicated label \"x\" in group_by",
        "invalid label name \"a-b\" in group_by list",
        "repeat_interval cannot be zero",
        "not a valid duration string: \"1.5s\"",
        "invalid label name \"a-b\"",
        "route.routes[0].match_re",
        "bad matcher format: foo",
        "unescaped double quote",
    ] {
        assert!(has(&e, needle), "{needle}: {e:?}");
    }
    assert!(e.len() >= 10, "{e:?}");
}

#[test]
fn null_regex_in_match_re_is_an_error() {
    // Found by differential testing against amtool: `{ale,tname: x}` is two keys, the
    // first with a null value.
    let e = errors(
        "route: {receiver: a, routes: [{match_re: {ale,tname: 'x'}}]}\nreceivers: [{name: a}]",
    );
    assert!(has(&e, "invalid regexp value for \"ale\""), "{e:?}");
    let e = errors(
        "route: {receiver: a}\nreceivers: [{name: a}]\ninhibit_rules: [{target_match_re: {x: }}]",
    );
    assert!(has(&e, "invalid regexp value for \"x\""), "{e:?}");
}

#[test]
fn inhibit_rule_errors() {
    let e = errors(
        "route: {receiver: a}
receivers: [{name: a}]
inhibit_rules:
  - source_match: {'a-b': c}
    target_match_re: {x: '['}
    source_matchers: ['=x']
    equal: ['a-b']
",
    );
    assert!(has(&e, "inhibit_rules[0].source_match"), "{e:?}");
    assert!(has(&e, "inhibit_rules[0].target_match_re"), "{e:?}");
    assert!(has(&e, "bad matcher format: =x"), "{e:?}");
    assert!(has(&e, "\"a-b\" is not a valid label name"), "{e:?}");
}

#[test]
fn time_intervals_are_parsed_but_unsupported() {
    let e = errors(
        "route: {receiver: a, routes: [{receiver: a, mute_time_intervals: [x, y]}]}
time_intervals: [{name: x, time_intervals: [{weekdays: [monday]}]}]
receivers: [{name: a}]",
    );
    assert!(has(&e, "time-based muting is not supported"), "{e:?}");
    assert!(has(&e, "undefined time interval \"y\""), "{e:?}");
    // Defined but unused intervals load.
    load(
        "route: {receiver: a}
time_intervals: [{name: x, time_intervals: [{weekdays: [monday]}]}]
receivers: [{name: a}]",
    )
    .unwrap();
}

#[test]
fn http_config_conflicts() {
    let e = errors(
        "global: {http_config: {basic_auth: {username: u}, bearer_token: x, proxy_url: 'nope'}}
route: {receiver: a}
receivers: [{name: a}]",
    );
    assert!(
        has(&e, "at most one of basic_auth, oauth2, bearer_token"),
        "{e:?}"
    );
    assert!(has(&e, "global.http_config.proxy_url"), "{e:?}");
}

#[test]
fn globals_of_other_integrations_are_accepted_and_urls_checked() {
    load("global: {opsgenie_api_key: k, opsgenie_api_url: 'https://api.opsgenie.com/'}\nroute: {receiver: a}\nreceivers: [{name: a}]")
            .unwrap_or_else(|e| panic!("{e}"));
    let e =
        errors("global: {victorops_api_url: 'nope'}\nroute: {receiver: a}\nreceivers: [{name: a}]");
    assert!(
        has(&e, "global.victorops_api_url: unsupported scheme"),
        "{e:?}"
    );
}

#[test]
fn smarthost_needs_a_port() {
    let e = errors("global: {smtp_smarthost: 'h'}\nroute: {receiver: a}\nreceivers: [{name: a}]");
    assert!(has(&e, "missing port in address"), "{e:?}");
    let e = errors("global: {smtp_smarthost: 'h:'}\nroute: {receiver: a}\nreceivers: [{name: a}]");
    assert!(has(&e, "port cannot be empty"), "{e:?}");
    // Found by differential testing against amtool.
    for (addr, why) in [
        ("127.0.0.[:2525", "unexpected '[' in address"),
        ("a]:25", "unexpected ']' in address"),
        ("a:b:25", "too many colons in address"),
        ("[::1", "missing ']' in address"),
        ("[::1]", "missing port in address"),
        ("[::1]x:25", "missing port in address"),
    ] {
        assert_eq!(split_host_port(addr), Err(why), "{addr}");
    }
    assert_eq!(split_host_port("[::1]:25"), Ok(()));
}

#[test]
fn scalars_and_nulls_read_like_go_yaml() {
    let c = load(
        "route: {receiver: a, group_wait: 0, routes: [{match: {code: 500, ok: true}}], }
receivers: [{name: a}]
inhibit_rules:
templates:",
    )
    .unwrap();
    assert_eq!(c.route.opts.group_wait, Duration::ZERO);
    assert!(c.route.routes[0]
        .matchers
        .to_string()
        .contains("code=\"500\""));
}

#[test]
fn durations() {
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
    assert_eq!(
        parse_duration("1w").unwrap(),
        Duration::from_secs(7 * 86400)
    );
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    for bad in ["", "90", "1.5s", "1m1h", "1h1h", "5 m", "-1s", "1x"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
    assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    assert_eq!(format_duration(Duration::ZERO), "0s");
}

/// Bad input gets an error, never a panic: mutate valid configs and matcher strings at
/// random (deterministic xorshift) and load them all.
#[test]
fn random_mutations_never_panic() {
    let seed_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/notify/routing-regex.yml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let alphabet: Vec<char> = " \n\t:{}[],'\"\\=~!|.*-_/%@#é0a1".chars().collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for _ in 0..600 {
        let mut chars: Vec<char> = seed_text.chars().collect();
        for _ in 0..1 + rand(6) {
            let at = rand(chars.len() + 1);
            match rand(3) {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 if at < chars.len() => chars[at] = alphabet[rand(alphabet.len())],
                _ => chars.insert(at, alphabet[rand(alphabet.len())]),
            }
        }
        let text: String = chars.into_iter().collect();
        let _ = Config::load_str(&text, "fuzz.yml");
        let snippet: String = text
            .chars()
            .skip(rand(text.chars().count()))
            .take(rand(24))
            .collect();
        let _ = super::super::matcher::parse_matchers(&snippet);
        let _ = check_url_str(&snippet);
        let _ = parse_duration(&snippet);
        let mut p = Problems::default();
        check_host_port(&snippet, "x", &mut p);
    }
}

#[test]
fn header_canonicalisation() {
    assert_eq!(canonical_mime_header_key("subject"), "Subject");
    assert_eq!(canonical_mime_header_key("x-PRIORITY"), "X-Priority");
    assert_eq!(canonical_mime_header_key("bad key"), "bad key");
}

#[test]
fn seed_config_is_rejected_for_placeholder_url_and_email_subject() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/notify/seed.alertmanager.yml");
    let e = match Config::load_file(&path) {
        Err(ConfigError::Invalid { errors, .. }) => errors,
        other => panic!("expected validation errors, got {other:?}"),
    };
    let e: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    assert!(has(&e, "global.slack_api_url: unsupported scheme"), "{e:?}");
    assert!(has(&e, "email-finance\".email_configs[0].subject"), "{e:?}");
    assert!(has(&e, "email-team\".email_configs[0].subject"), "{e:?}");
    // Validation errors name the line too.
    assert!(
        has(&e, "line 4: global.slack_api_url: unsupported scheme"),
        "{e:?}"
    );
    assert!(
        has(
            &e,
            "line 132: receivers[5] \"email-finance\".email_configs[0].subject"
        ),
        "{e:?}"
    );
}

#[test]
fn loopback_seed_config_loads() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/notify/seed.alertmanager.loopback.yml");
    let c = Config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.receivers.len(), 7);
    assert_eq!(c.inhibit_rules.len(), 2);
    assert_eq!(c.route.routes.len(), 3);
    let finance = c.receiver("email-finance").unwrap();
    assert_eq!(finance.email_configs[0].smarthost, "127.0.0.1:2525");
    assert_eq!(finance.email_configs[0].require_tls, Some(false));
}
