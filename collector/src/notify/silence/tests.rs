use super::*;
use crate::notify::matcher::parse_matcher;
use std::collections::BTreeMap;

const HOUR: Duration = Duration::from_secs(3600);

fn t0() -> SystemTime {
    // 2023-11-14T22:13:20Z, a fixed "now" so that states are deterministic.
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn m(name: &str, kind: MatchType, value: &str) -> SilenceMatcher {
    SilenceMatcher::new(name, kind, value)
}

fn silence(matchers: Vec<SilenceMatcher>, starts: SystemTime, ends: SystemTime) -> Silence {
    Silence {
        id: String::new(),
        matchers,
        starts_at: starts,
        ends_at: ends,
        updated_at: starts,
        created_by: "me".into(),
        comment: "why".into(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn invalid(ms: Vec<SilenceMatcher>) -> String {
    let mut s = silence(ms, t0(), t0() + HOUR);
    s.id = "x".into();
    match validate(&s) {
        Err(e) => e.to_string(),
        Ok(_) => "valid".into(),
    }
}

#[test]
fn validation_gives_alertmanagers_messages() {
    use MatchType::*;
    assert_eq!(
        invalid(vec![]),
        "silence invalid: at least one matcher required"
    );
    let empty = "silence invalid: at least one matcher must not match the empty string";
    assert_eq!(invalid(vec![m("a", Equal, "")]), empty);
    assert_eq!(invalid(vec![m("a", Regex, ".*")]), empty);
    assert_eq!(invalid(vec![m("a", Regex, "x|")]), empty);
    assert_eq!(invalid(vec![m("a", Regex, ".*"), m("b", Equal, "")]), empty);
    // Negative matchers never count as matching the empty string (Alertmanager's
    // matchesEmpty), and one non-empty matcher is enough.
    assert_eq!(invalid(vec![m("a", NotEqual, "")]), "valid");
    assert_eq!(invalid(vec![m("a", NotRegex, "x")]), "valid");
    assert_eq!(
        invalid(vec![m("a", Regex, "x"), m("b", Equal, "")]),
        "valid"
    );
    // The texts the real Alertmanager 0.25 answers (checked by hand with curl).
    assert_eq!(
        invalid(vec![m("a-b", Equal, "x")]),
        "silence invalid: invalid label matcher 0: invalid label name \"a-b\""
    );
    assert_eq!(
        invalid(vec![m("a", Equal, "x"), m("", Equal, "x")]),
        "silence invalid: invalid label matcher 1: invalid label name \"\""
    );
    assert_eq!(
        invalid(vec![m("a", Regex, "(")]),
        "silence invalid: invalid label matcher 0: invalid regular expression \"(\": error parsing regexp: missing closing ): `(`"
    );
    assert_eq!(
        invalid(vec![m("a", NotRegex, "a)")]),
        "silence invalid: invalid label matcher 0: invalid regular expression \"a)\": error parsing regexp: unexpected ): `a)`"
    );
    let mut s = silence(vec![m("a", Equal, "x")], t0() + HOUR, t0());
    s.id = "x".into();
    assert_eq!(
        validate(&s).unwrap_err().to_string(),
        "silence invalid: end time must not be before start time"
    );
    s.id.clear();
    assert_eq!(
        validate(&s).unwrap_err().to_string(),
        "silence invalid: ID missing"
    );
}

#[test]
fn all_four_matcher_types_mute() {
    use MatchType::*;
    let store = Silences::in_memory(DEFAULT_RETENTION);
    let now = t0();
    let id = store
        .set(
            silence(
                vec![
                    m("alertname", Equal, "DiskFull"),
                    m("env", NotEqual, "dev"),
                    m("instance", Regex, "web-[0-9]+"),
                    m("mount", NotRegex, "/boot|/tmp"),
                ],
                now,
                now + HOUR,
            ),
            now,
        )
        .unwrap();
    let base = [
        ("alertname", "DiskFull"),
        ("env", "prod"),
        ("instance", "web-12"),
        ("mount", "/"),
    ];
    assert_eq!(store.mutes(&labels(&base), now), vec![id.clone()]);
    // Each matcher can veto on its own.
    for (i, bad) in ["CPU", "dev", "db-1", "/boot"].iter().enumerate() {
        let mut l = base;
        l[i].1 = bad;
        assert!(store.mutes(&labels(&l), now).is_empty(), "{l:?}");
    }
    // Regexes are anchored; a missing label is the empty string.
    let mut l = base;
    l[2].1 = "xweb-12";
    assert!(store.mutes(&labels(&l), now).is_empty());
    let no_env = labels(&[
        ("alertname", "DiskFull"),
        ("instance", "web-1"),
        ("mount", "/"),
    ]);
    assert_eq!(store.mutes(&no_env, now), vec![id.clone()]);
    // Only while active.
    assert!(store.mutes(&labels(&base), now + 2 * HOUR).is_empty());
}

#[test]
fn states_follow_alertmanager_boundaries() {
    let s = silence(vec![m("a", MatchType::Equal, "x")], t0(), t0() + HOUR);
    assert_eq!(
        s.state_at(t0() - Duration::from_nanos(1)),
        SilenceState::Pending
    );
    assert_eq!(s.state_at(t0()), SilenceState::Active);
    assert_eq!(s.state_at(t0() + HOUR), SilenceState::Active);
    assert_eq!(
        s.state_at(t0() + HOUR + Duration::from_nanos(1)),
        SilenceState::Expired
    );
}

#[test]
fn create_clamps_a_past_start_and_update_keeps_or_replaces_the_id() {
    use MatchType::*;
    let store = Silences::in_memory(DEFAULT_RETENTION);
    let now = t0();
    let id = store
        .set(
            silence(vec![m("a", Equal, "x")], now - HOUR, now + HOUR),
            now,
        )
        .unwrap();
    let created = store.get(&id).unwrap();
    assert_eq!(created.starts_at, now, "a start in the past becomes now");
    assert_eq!(created.updated_at, now);
    assert!(is_uuid(&id), "{id}");

    // Same matchers, same start second, later end: updated in place.
    let later = now + Duration::from_secs(10);
    let mut upd = created.clone();
    upd.ends_at = now + 3 * HOUR;
    upd.comment = "longer".into();
    upd.starts_at = now + Duration::from_millis(500); // same Unix second
    assert_eq!(store.set(upd, later).unwrap(), id);
    let got = store.get(&id).unwrap();
    assert_eq!(got.comment, "longer");
    assert_eq!(got.ends_at, now + 3 * HOUR);
    assert_eq!(got.updated_at, later);

    // Changed matchers on an active silence: the old one expires, a new id appears.
    let mut changed = got.clone();
    changed.matchers = vec![m("a", Equal, "y")];
    let new_id = store.set(changed, later).unwrap();
    assert_ne!(new_id, id);
    let old = store.get(&id).unwrap();
    assert_eq!(old.ends_at, later);
    assert_eq!(
        old.state_at(later + Duration::from_nanos(1)),
        SilenceState::Expired
    );
    assert_eq!(
        store.get(&new_id).unwrap().matchers,
        vec![m("a", Equal, "y")]
    );

    // Updating an expired silence makes a new one and leaves the old one alone.
    let much_later = later + Duration::from_secs(1);
    let mut again = old.clone();
    again.ends_at = much_later + HOUR;
    let third = store.set(again, much_later).unwrap();
    assert_ne!(third, id);
    assert_eq!(store.get(&id).unwrap(), old);

    // An unknown id is NotFound.
    let mut ghost = silence(vec![m("a", Equal, "x")], now, now + HOUR);
    ghost.id = "00000000-0000-0000-0000-000000000000".into();
    assert!(matches!(store.set(ghost, now), Err(SilenceError::NotFound)));
}

#[test]
fn pending_silences_update_only_with_a_future_start() {
    let store = Silences::in_memory(DEFAULT_RETENTION);
    let now = t0();
    let m1 = vec![m("a", MatchType::Equal, "x")];
    let id = store
        .set(silence(m1.clone(), now + HOUR, now + 2 * HOUR), now)
        .unwrap();
    let mut upd = store.get(&id).unwrap();
    upd.starts_at = now + 2 * HOUR;
    upd.ends_at = now + 3 * HOUR;
    assert_eq!(store.set(upd.clone(), now).unwrap(), id);
    // A start in the past cannot update a pending silence: it is expired (start and end
    // now) and replaced.
    upd.starts_at = now - HOUR;
    let new_id = store.set(upd, now).unwrap();
    assert_ne!(new_id, id);
    let old = store.get(&id).unwrap();
    assert_eq!((old.starts_at, old.ends_at), (now, now));
    assert_eq!(store.get(&new_id).unwrap().starts_at, now);
}

#[test]
fn expire_ends_active_and_pending_silences_and_leaves_expired_ones() {
    let store = Silences::in_memory(DEFAULT_RETENTION);
    let now = t0();
    let active = store
        .set(
            silence(vec![m("a", MatchType::Equal, "x")], now, now + HOUR),
            now,
        )
        .unwrap();
    let pending = store
        .set(
            silence(
                vec![m("a", MatchType::Equal, "y")],
                now + HOUR,
                now + 2 * HOUR,
            ),
            now,
        )
        .unwrap();
    let at = now + Duration::from_secs(5);
    store.expire(&active, at).unwrap();
    store.expire(&pending, at).unwrap();
    let a = store.get(&active).unwrap();
    assert_eq!((a.starts_at, a.ends_at, a.updated_at), (now, at, at));
    let p = store.get(&pending).unwrap();
    assert_eq!((p.starts_at, p.ends_at), (at, at));
    // Expiring again changes nothing and is not an error (Alertmanager answers 200).
    store.expire(&active, at + HOUR).unwrap();
    assert_eq!(store.get(&active).unwrap(), a);
    assert!(matches!(
        store.expire("nope", at),
        Err(SilenceError::NotFound)
    ));
    assert_eq!(store.counts(at + Duration::from_secs(1)), [0, 0, 2]);
}

#[test]
fn filters_match_silence_matchers_exactly_and_sorting_is_alertmanagers() {
    use MatchType::*;
    let store = Silences::in_memory(DEFAULT_RETENTION);
    let now = t0();
    let eq = store
        .set(
            silence(
                vec![m("a", Equal, "x"), m("b", Equal, "1")],
                now,
                now + 2 * HOUR,
            ),
            now,
        )
        .unwrap();
    let re = store
        .set(silence(vec![m("a", Regex, "x")], now, now + HOUR), now)
        .unwrap();
    let pend = store
        .set(
            silence(vec![m("a", NotEqual, "x")], now + HOUR, now + 3 * HOUR),
            now,
        )
        .unwrap();
    let f = |s: &str| vec![parse_matcher(s).unwrap()];
    let ids = |v: Vec<Silence>| {
        let mut v: Vec<String> = v.into_iter().map(|s| s.id).collect();
        v.sort();
        v
    };
    assert_eq!(ids(store.list(&f("a=x"))), vec![eq.clone()]);
    assert_eq!(ids(store.list(&f("a=~x"))), vec![re.clone()]);
    assert_eq!(ids(store.list(&f("a!=x"))), vec![pend.clone()]);
    assert!(store.list(&f("a=~\".*\"")).is_empty());
    assert_eq!(store.list(&[]).len(), 3);
    let two = vec![parse_matcher("a=x").unwrap(), parse_matcher("b=1").unwrap()];
    assert_eq!(ids(store.list(&two)), vec![eq.clone()]);

    let old = store
        .set(silence(vec![m("c", Equal, "1")], now, now + HOUR), now)
        .unwrap();
    store.expire(&old, now + Duration::from_secs(1)).unwrap();
    let older = store
        .set(silence(vec![m("c", Equal, "2")], now, now + HOUR), now)
        .unwrap();
    store.expire(&older, now).unwrap();
    let at = now + Duration::from_secs(2);
    let mut all = store.list(&[]);
    sort_for_api(&mut all, at);
    let order: Vec<String> = all.into_iter().map(|s| s.id).collect();
    // Active by end ascending, then pending, then expired by end descending.
    assert_eq!(order, vec![re, eq, pend, old, older]);
}

#[test]
fn expired_silences_are_collected_after_the_retention() {
    let store = Silences::in_memory(Duration::from_secs(120 * 3600));
    let now = t0();
    let id = store
        .set(
            silence(vec![m("a", MatchType::Equal, "x")], now, now + HOUR),
            now,
        )
        .unwrap();
    let end = now + HOUR;
    assert_eq!(store.gc(end + Duration::from_secs(120 * 3600)).unwrap(), 0);
    assert!(store.get(&id).is_some(), "kept for exactly the retention");
    assert_eq!(
        store
            .gc(end + Duration::from_secs(120 * 3600) + Duration::from_secs(1))
            .unwrap(),
        1
    );
    assert!(store.get(&id).is_none());
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "vigil-silences-{name}-{}-{}",
        std::process::id(),
        new_uuid()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn silences_survive_a_restart_and_gc_is_persisted() {
    let dir = temp_dir("restart");
    let now = SystemTime::now();
    let (keep, expired_long_ago) = {
        let store = Silences::open(&dir, Duration::from_secs(3600), None).unwrap();
        let keep = store
            .set(
                silence(
                    vec![
                        m("a", MatchType::Regex, "x|y"),
                        m("b", MatchType::NotEqual, "q\"uote"),
                    ],
                    now,
                    now + HOUR,
                ),
                now,
            )
            .unwrap();
        let gone = store
            .set(
                silence(vec![m("c", MatchType::Equal, "1")], now, now + HOUR),
                now,
            )
            .unwrap();
        (keep, gone)
    };
    let reopened = Silences::open(&dir, Duration::from_secs(3600), None).unwrap();
    let got = reopened.get(&keep).expect("silence kept across restart");
    assert_eq!(got.starts_at, now, "nanosecond times survive");
    assert_eq!(got.matchers[1].value, "q\"uote");
    assert_eq!(
        reopened.mutes(&labels(&[("a", "y")]), now),
        vec![keep.clone()]
    );
    reopened.expire(&expired_long_ago, now).unwrap();
    // Two hours later the expired one is past its one-hour retention.
    assert_eq!(reopened.gc(now + 2 * HOUR).unwrap(), 1);
    drop(reopened);
    let third = Silences::open(&dir, Duration::from_secs(3600), None).unwrap();
    assert!(third.get(&expired_long_ago).is_none());
    assert!(third.get(&keep).is_some());
    assert!(!dir.join("silences.json.tmp").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_corrupt_snapshot_is_an_error_naming_the_file() {
    let dir = temp_dir("corrupt");
    std::fs::write(dir.join(SNAPSHOT_FILE), b"{\"version\":1,\"silences\":[{").unwrap();
    let e = Silences::open(&dir, DEFAULT_RETENTION, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("silences.json") && e.contains("EOF"), "{e}");
    std::fs::write(dir.join(SNAPSHOT_FILE), b"{\"version\":7,\"silences\":[]}").unwrap();
    let e = Silences::open(&dir, DEFAULT_RETENTION, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unsupported version 7"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_change_that_cannot_be_persisted_is_refused() {
    let dir = temp_dir("unwritable");
    let store = Silences::open(&dir, DEFAULT_RETENTION, None).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let now = SystemTime::now();
    let r = store.set(
        silence(vec![m("a", MatchType::Equal, "x")], now, now + HOUR),
        now,
    );
    assert!(matches!(r, Err(SilenceError::Snapshot { .. })), "{r:?}");
    assert!(store.list(&[]).is_empty(), "the change was not made");
}

#[test]
fn times_parse_like_go_openapi_and_print_with_milliseconds() {
    let t = parse_time("2023-11-14T22:13:20.123456789Z").unwrap();
    assert_eq!(t, t0() + Duration::from_nanos(123_456_789));
    assert_eq!(format_time(t), "2023-11-14T22:13:20.123Z");
    assert_eq!(format_time(t0()), "2023-11-14T22:13:20.000Z");
    assert_eq!(parse_time("2023-11-15T00:13:20+02:00").unwrap(), t0());
    assert_eq!(
        parse_time("2023-11-14t22:13:20.5z").unwrap(),
        t0() + Duration::from_millis(500)
    );
    assert_eq!(
        format_time(parse_time("2024-02-29T23:59:59Z").unwrap()),
        "2024-02-29T23:59:59.000Z"
    );
    for bad in [
        "bad",
        "2023-11-14",
        "2023-11-14T22:13:20",
        "2023-02-30T00:00:00Z",
        "2023-11-14T25:00:00Z",
        "2023-11-14T22:13:20.Z",
    ] {
        let e = parse_time(bad).unwrap_err();
        assert!(e.starts_with(&format!("parsing time \"{bad}\"")), "{e}");
    }
}

#[test]
fn uuids_are_version_4_and_checked_like_go_openapi() {
    let id = new_uuid();
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4");
    assert!(is_uuid(&id));
    assert!(is_uuid("00000000-0000-0000-0000-000000000000"));
    assert!(is_uuid("0B1F4C4E111122223333444455556666"));
    assert!(!is_uuid("notauuid"));
    assert!(!is_uuid("0b1f4c4e-1111-2222-3333-44445555666"));
    assert_ne!(new_uuid(), new_uuid());
}

// ---------------------------------------------------------------------------------------
// The silencing stage of the dispatcher, over loopback with a recording webhook receiver.
// ---------------------------------------------------------------------------------------

mod muting {
    use super::*;
    use crate::notify::{dispatcher, Alert, AlertStore, Config, DispatchOptions};
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    async fn sink() -> (String, mpsc::Receiver<serde_json::Value>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel(64);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    let _ = tx.try_send(v);
                    "ok"
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}/hook"), rx)
    }

    async fn next(
        rx: &mut mpsc::Receiver<serde_json::Value>,
        within: Duration,
    ) -> Option<serde_json::Value> {
        tokio::time::timeout(within, rx.recv()).await.ok().flatten()
    }

    fn instances(msg: &serde_json::Value) -> Vec<String> {
        let mut v: Vec<String> = msg["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["labels"]["instance"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[tokio::test]
    async fn a_silenced_alert_is_not_delivered_until_its_silence_expires() {
        let (url, mut rx) = sink().await;
        let cfg = Config::load_str(
            &format!(
                "route: {{receiver: ops, group_by: [alertname], group_wait: 100ms, group_interval: 400ms, repeat_interval: 1h}}
receivers: [{{name: ops, webhook_configs: [{{url: '{url}'}}]}}]"
            ),
            "t.yml",
        )
        .unwrap();
        let silences = Arc::new(Silences::in_memory(DEFAULT_RETENTION));
        let now = SystemTime::now();
        let sid = silences
            .set(
                silence(vec![m("instance", MatchType::Equal, "b")], now, now + HOUR),
                now,
            )
            .unwrap();
        let store = AlertStore::default();
        let (h, d) = dispatcher(
            Arc::new(cfg),
            DispatchOptions {
                min_notify_timeout: Duration::from_secs(2),
                ..DispatchOptions::default()
            },
        );
        let d = d.with_silences(silences.clone(), store.clone());
        let cancel = CancellationToken::new();
        tokio::spawn(d.run(cancel.clone()));
        h.send(Alert::firing(&[("alertname", "Down"), ("instance", "a")]))
            .await
            .unwrap();
        h.send(Alert::firing(&[("alertname", "Down"), ("instance", "b")]))
            .await
            .unwrap();

        let first = next(&mut rx, Duration::from_secs(5))
            .await
            .expect("a notification");
        assert_eq!(
            instances(&first),
            vec!["a"],
            "the silenced alert is left out: {first}"
        );
        assert_eq!(
            store.snapshot().len(),
            2,
            "both alerts are in the API's view"
        );
        // Nothing changes while the silence holds.
        assert!(next(&mut rx, Duration::from_millis(1000)).await.is_none());
        assert!(
            h.stats()
                .alerts_silenced
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 1
        );

        // Expire it: the next group_interval flush notifies the alert.
        silences.expire(&sid, SystemTime::now()).unwrap();
        let second = next(&mut rx, Duration::from_secs(3))
            .await
            .expect("notified after expiry");
        assert_eq!(instances(&second), vec!["a", "b"]);
        cancel.cancel();
    }
}
