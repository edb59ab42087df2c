//! The v2 handlers in-process. The expected bodies and status codes are what the real
//! Alertmanager 0.25 answers to the same requests (checked with curl against
//! `/usr/bin/prometheus-alertmanager`); `collector/tests/silences_parity.rs` compares the
//! two live through amtool.

use super::*;
use crate::notify::silence::DEFAULT_RETENTION;
use axum::body::Body;
use axum::http::{Method, Request};
use std::time::Duration;
use tower::ServiceExt as _;

fn api(config: Option<&str>) -> AlertmanagerApi {
    AlertmanagerApi {
        silences: Arc::new(Silences::in_memory(DEFAULT_RETENTION)),
        alerts: AlertStore::default(),
        config: config
            .map(|c| Arc::new(Config::load_str(c, "am.yml").unwrap_or_else(|e| panic!("{e}")))),
        config_text: config.unwrap_or("").to_string(),
        started: SystemTime::now(),
        metrics: None,
        dispatcher: None,
    }
}

async fn call(api: &AlertmanagerApi, method: Method, uri: &str, body: &str) -> (u16, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = router(api.clone()).oneshot(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (code, String::from_utf8(bytes.to_vec()).unwrap())
}

fn in_hours(h: i64) -> String {
    let now = SystemTime::now();
    let t = if h >= 0 {
        now + Duration::from_secs(h as u64 * 3600)
    } else {
        now - Duration::from_secs((-h) as u64 * 3600)
    };
    format_time(t)
}

fn body(matchers: &str, starts: &str, ends: &str) -> String {
    format!(
        r#"{{"matchers":{matchers},"startsAt":"{starts}","endsAt":"{ends}","createdBy":"me","comment":"c"}}"#
    )
}

const AX: &str = r#"[{"name":"a","value":"x","isRegex":false,"isEqual":true}]"#;

#[tokio::test]
async fn create_get_list_expire() {
    let api = api(None);
    let (code, out) = call(
        &api,
        Method::POST,
        "/api/v2/silences",
        &body(AX, &in_hours(-1), &in_hours(1)),
    )
    .await;
    assert_eq!(code, 200, "{out}");
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["silenceID"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, out) = call(&api, Method::GET, &format!("/api/v2/silence/{id}"), "").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["status"]["state"], "active");
    assert_eq!(
        v["matchers"],
        serde_json::json!([{"isEqual": true, "isRegex": false, "name": "a", "value": "x"}])
    );
    assert_eq!(
        (v["createdBy"].as_str(), v["comment"].as_str()),
        (Some("me"), Some("c"))
    );
    // The start in the past was clamped to the creation time; times have milliseconds.
    assert_eq!(v["startsAt"], v["updatedAt"]);
    assert_eq!(v["startsAt"].as_str().unwrap().len(), 24);
    // go-swagger's field order.
    assert!(
        out.starts_with(&format!(
            "{{\"id\":\"{id}\",\"status\":{{\"state\":\"active\"}},\"updatedAt\":"
        )),
        "{out}"
    );

    let (code, out) = call(&api, Method::GET, "/api/v2/silences?filter=a%3Dx", "").await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (_, out) = call(&api, Method::GET, "/api/v2/silences?filter=a%3D~x", "").await;
    assert_eq!(out, "[]");

    let (code, out) = call(&api, Method::DELETE, &format!("/api/v2/silence/{id}"), "").await;
    assert_eq!((code, out.as_str()), (200, ""));
    tokio::time::sleep(Duration::from_millis(2)).await;
    let (_, out) = call(&api, Method::GET, &format!("/api/v2/silence/{id}"), "").await;
    assert!(out.contains("\"state\":\"expired\""), "{out}");
}

#[tokio::test]
async fn bad_requests_get_alertmanagers_codes_and_texts() {
    let api = api(None);
    let post = |b: String| {
        let api = api.clone();
        async move { call(&api, Method::POST, "/api/v2/silences", &b).await }
    };
    let (now, later) = (in_hours(0), in_hours(1));
    let cases: Vec<(String, u16, String)> = vec![
        (
            body("[]", &now, &later),
            422,
            r#"{"code":612,"message":"matchers in body should have at least 1 items"}"#.into(),
        ),
        (
            r#"{"matchers":[{"name":"a","value":"x","isRegex":false}]}"#.into(),
            422,
            r#"{"code":602,"message":"comment in body is required"}"#.into(),
        ),
        (
            body(r#"[{"value":"x"}]"#, &now, &later),
            422,
            r#"{"code":602,"message":"matchers.0.isRegex in body is required"}"#.into(),
        ),
        (
            body(r#"[{"name":"a","value":"","isRegex":false}]"#, &now, &later),
            400,
            "\"silence invalid: at least one matcher must not match the empty string\"\n".into(),
        ),
        (
            body(
                r#"[{"name":"a-b","value":"x","isRegex":false}]"#,
                &now,
                &later,
            ),
            400,
            "\"silence invalid: invalid label matcher 0: invalid label name \\\"a-b\\\"\"\n".into(),
        ),
        (
            body(AX, &later, &now),
            400,
            "\"Failed to create silence: start time must be before end time\"\n".into(),
        ),
        (
            body(AX, &later, &later),
            400,
            "\"Failed to create silence: start time must be before end time\"\n".into(),
        ),
        (
            body(AX, &in_hours(-2), &in_hours(-1)),
            400,
            "\"Failed to create silence: end time can't be in the past\"\n".into(),
        ),
        (
            format!(
                r#"{{"id":"nonexist","matchers":{AX},"startsAt":"{now}","endsAt":"{later}","createdBy":"a","comment":"c"}}"#
            ),
            404,
            "\"silence not found\"\n".into(),
        ),
    ];
    for (b, code, want) in cases {
        let (got_code, got) = post(b.clone()).await;
        assert_eq!((got_code, got.as_str()), (code, want.as_str()), "{b}");
    }
    let (code, out) = post("garbage".into()).await;
    assert_eq!(code, 400);
    assert!(
        out.starts_with(
            r#"{"code":400,"message":"parsing silence body from \"\" failed, because "#
        ),
        "{out}"
    );
    let (code, out) = post(body(AX, "bad", &later)).await;
    assert_eq!(code, 400);
    assert!(out.contains("parsing time \\\"bad\\\""), "{out}");

    let (code, out) = call(&api, Method::GET, "/api/v2/silence/notauuid", "").await;
    assert_eq!(
        (code, out.as_str()),
        (
            422,
            r#"{"code":601,"message":"silenceID in path must be of type uuid: \"notauuid\""}"#
        )
    );
    let nil = "/api/v2/silence/00000000-0000-0000-0000-000000000000";
    assert_eq!(call(&api, Method::GET, nil, "").await, (404, String::new()));
    assert_eq!(
        call(&api, Method::DELETE, nil, "").await,
        (500, "\"silence not found\"\n".into())
    );
    assert_eq!(
        call(&api, Method::GET, "/api/v2/silences?filter=a%3D%22", "").await,
        (
            400,
            "\"matcher value contains unescaped double quote: \\\"\"\n".into()
        )
    );
    assert_eq!(
        call(
            &api,
            Method::GET,
            "/api/v2/silences?filter=%7Ba%3D~%22.*%22%7D",
            ""
        )
        .await,
        (400, "\"bad matcher format: {a=~\\\".*\\\"}\"\n".into())
    );
}

#[tokio::test]
async fn alerts_show_silenced_inhibited_and_receivers() {
    let api = api(Some(
        "route:
  receiver: default
  routes:
    - {matchers: [team=db], receiver: db, continue: true}
    - {matchers: [team=db], receiver: db-pager}
receivers: [{name: default}, {name: db}, {name: db-pager}]
inhibit_rules:
  - source_matchers: [severity=critical]
    target_matchers: [severity=warning]
    equal: [instance]",
    ));
    let now = SystemTime::now();
    let add = |pairs: &[(&str, &str)]| {
        let mut a = Alert::firing(pairs);
        a.ends_at = Some(now + Duration::from_secs(300));
        let fp = a.fingerprint();
        api.alerts.upsert(fp, a, now);
        fp
    };
    let crit = add(&[
        ("alertname", "Down"),
        ("severity", "critical"),
        ("instance", "a"),
    ]);
    let warn = add(&[
        ("alertname", "Disk"),
        ("severity", "warning"),
        ("instance", "a"),
        ("team", "db"),
    ]);
    let quiet = add(&[("alertname", "Noisy"), ("instance", "b")]);
    let mut resolved = Alert::firing(&[("alertname", "Old")]);
    resolved.ends_at = Some(now - Duration::from_secs(1));
    api.alerts.upsert(resolved.fingerprint(), resolved, now);
    let sid = api
        .silences
        .set(
            Silence {
                id: String::new(),
                matchers: vec![SilenceMatcher::new(
                    "alertname",
                    crate::notify::MatchType::Equal,
                    "Noisy",
                )],
                starts_at: now,
                ends_at: now + Duration::from_secs(3600),
                updated_at: now,
                created_by: "me".into(),
                comment: "c".into(),
            },
            now,
        )
        .unwrap();

    let get = |q: &'static str| {
        let api = api.clone();
        async move {
            let (code, out) = call(&api, Method::GET, &format!("/api/v2/alerts{q}"), "").await;
            assert_eq!(code, 200, "{out}");
            serde_json::from_str::<serde_json::Value>(&out).unwrap()
        }
    };
    let all = get("").await;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3, "the resolved alert is left out");
    let fps: Vec<&str> = all
        .iter()
        .map(|a| a["fingerprint"].as_str().unwrap())
        .collect();
    let mut sorted = fps.clone();
    sorted.sort();
    assert_eq!(fps, sorted, "sorted by fingerprint");
    let by_fp = |fp: u64| {
        all.iter()
            .find(|a| a["fingerprint"] == format!("{fp:016x}"))
            .unwrap()
    };
    assert_eq!(
        by_fp(crit)["status"],
        serde_json::json!({"inhibitedBy": [], "silencedBy": [], "state": "active"})
    );
    assert_eq!(
        by_fp(crit)["receivers"],
        serde_json::json!([{"name": "default"}])
    );
    assert_eq!(
        by_fp(warn)["status"],
        serde_json::json!({"inhibitedBy": [format!("{crit:016x}")], "silencedBy": [], "state": "suppressed"})
    );
    assert_eq!(
        by_fp(warn)["receivers"],
        serde_json::json!([{"name": "db"}, {"name": "db-pager"}])
    );
    assert_eq!(
        by_fp(quiet)["status"],
        serde_json::json!({"inhibitedBy": [], "silencedBy": [sid], "state": "suppressed"})
    );

    // amtool alert query's parameters: only the unsuppressed alert.
    let shown = get("?active=true&inhibited=false&silenced=false&unprocessed=false").await;
    assert_eq!(shown.as_array().unwrap().len(), 1);
    assert_eq!(shown[0]["labels"]["alertname"], "Down");
    assert_eq!(get("?active=false").await.as_array().unwrap().len(), 2);
    assert_eq!(get("?receiver=db-.*").await.as_array().unwrap().len(), 1);
    let f = get("?filter=instance%3D~%22a%7Cb%22&filter=severity!%3Dcritical").await;
    assert_eq!(f.as_array().unwrap().len(), 2);
    let (code, out) = call(&api, Method::GET, "/api/v2/alerts?receiver=%28", "").await;
    assert_eq!(code, 400);
    assert!(
        out.starts_with("\"failed to parse receiver param: "),
        "{out}"
    );
}

#[tokio::test]
async fn status_reports_the_config_and_api_version() {
    let api = api(Some("route: {receiver: a}\nreceivers: [{name: a}]\n"));
    let (code, out) = call(&api, Method::GET, "/api/v2/status", "").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["cluster"]["status"], "disabled");
    assert_eq!(
        v["config"]["original"],
        "route: {receiver: a}\nreceivers: [{name: a}]\n"
    );
    assert_eq!(v["versionInfo"]["version"], ALERTMANAGER_API_VERSION);
}

#[tokio::test]
async fn posted_alerts_without_an_alertmanager_config_are_refused_with_the_reason() {
    let api = api(None);
    let (code, body) = call(
        &api,
        Method::POST,
        "/api/v2/alerts",
        r#"[{"labels":{"alertname":"X"}}]"#,
    )
    .await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("--alertmanager-config"), "{body}");
    // Schema errors are still reported first, as Alertmanager's go-swagger layer does.
    let (code, body) = call(&api, Method::POST, "/api/v2/alerts", r#"[{}]"#).await;
    assert_eq!(
        (code, body.as_str()),
        (
            422,
            r#"{"code":602,"message":"0.labels in body is required"}"#
        )
    );
}

#[tokio::test]
async fn posted_alerts_reach_the_dispatcher_with_alertmanager_defaults() {
    let config = "route: {receiver: r}\nreceivers: [{name: r}]\n";
    let (handle, mut rx) = crate::notify::DispatcherHandle::channel_for_tests(4);
    let api = AlertmanagerApi {
        dispatcher: Some(handle),
        ..api(Some(config))
    };
    let before = SystemTime::now();
    let (code, body) = call(
        &api,
        Method::POST,
        "/api/v2/alerts",
        r#"[{"labels":{"alertname":"X","empty":""},"startsAt":"0001-01-01T00:00:00.000Z","endsAt":"0001-01-01T00:00:00.000Z"},
            {"labels":{"alertname":"Y"},"endsAt":"2030-01-01T00:00:00Z"}]"#,
    )
    .await;
    assert_eq!((code, body.as_str()), (200, ""));
    let x = rx.recv().await.unwrap();
    assert_eq!(
        x.labels.len(),
        1,
        "empty labels are dropped: {:?}",
        x.labels
    );
    assert!(x.starts_at >= before, "Go's zero time means now");
    assert_eq!(x.ends_at, None, "the dispatcher applies resolve_timeout");
    let y = rx.recv().await.unwrap();
    assert_eq!(
        y.starts_at,
        y.ends_at.unwrap(),
        "no start: the end is the start"
    );
    let (code, body) = call(&api, Method::GET, "/api/v2/receivers", "").await;
    assert_eq!((code, body.as_str()), (200, r#"[{"name":"r"}]"#));
}
