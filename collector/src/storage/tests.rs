//! Tests of the storage through its public API: durability across reopen, dedupe, torn
//! tails, out-of-order handling, series limits, retention, checkpoints, events, and a
//! SIGKILL crash test that re-executes this test binary as the writer.

use super::testutil::TempDir;
use super::*;
use vigil_shared::codec::encode_batch;

const STALE: u64 = 0x7ff0_0000_0000_0002;

fn opts() -> StorageOptions {
    StorageOptions::default()
}

fn series(name: &str, extra: &[(&str, &str)], points: &[(i64, f64)]) -> Series {
    Series {
        labels: Labels::metric(name, extra),
        points: points
            .iter()
            .map(|&(t, v)| Point {
                timestamp_ms: t,
                value: v,
            })
            .collect(),
    }
}

fn payload(series: Vec<Series>, events: Vec<Event>) -> Vec<u8> {
    encode_batch(&Batch { series, events }).unwrap()
}

fn all(st: &Storage) -> Vec<Series> {
    st.select(&[], i64::MIN, i64::MAX).unwrap()
}

fn bits(s: &[Series]) -> Vec<(Labels, Vec<(i64, u64)>)> {
    s.iter()
        .map(|s| {
            (
                s.labels.clone(),
                s.points
                    .iter()
                    .map(|p| (p.timestamp_ms, p.value.to_bits()))
                    .collect(),
            )
        })
        .collect()
}

fn now() -> i64 {
    now_ms()
}

#[tokio::test]
async fn agent_batch_is_durable_and_deduplicated_across_reopen() {
    let tmp = TempDir::new("dedupe");
    let t0 = now();
    let p = payload(
        vec![series("node_load1", &[("instance", "h1")], &[(t0, 0.5)])],
        vec![],
    );
    {
        let st = Storage::open(tmp.path(), opts()).unwrap();
        assert_eq!(
            st.append_agent_batch("h1", 1, 5, p.clone()).await.unwrap(),
            AppendOutcome::Stored { samples: 1 }
        );
        assert_eq!(
            st.append_agent_batch("h1", 1, 5, p.clone()).await.unwrap(),
            AppendOutcome::Duplicate
        );
        // Same seq on another stream or agent is new.
        let p2 = payload(
            vec![series(
                "node_load1",
                &[("instance", "h1")],
                &[(t0 + 1, 0.6)],
            )],
            vec![],
        );
        assert_eq!(
            st.append_agent_batch("h1", 2, 5, p2).await.unwrap(),
            AppendOutcome::Stored { samples: 1 }
        );
        // Dropped without close: only the WAL carries the state.
    }
    let st = Storage::open(tmp.path(), opts()).unwrap();
    assert_eq!(
        st.append_agent_batch("h1", 1, 5, p.clone()).await.unwrap(),
        AppendOutcome::Duplicate
    );
    assert_eq!(
        st.append_agent_batch("h1", 2, 5, p.clone()).await.unwrap(),
        AppendOutcome::Duplicate
    );
    let got = all(&st);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].points.len(), 2);
    let streams = st.agent_streams();
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0].highest_seq, 5);
    assert_eq!(streams[0].contiguous_up_to, 0);
    assert_eq!(streams[0].batches, 1);
    assert_eq!(streams[0].samples, 1);
    assert!(streams[0].last_append_ms >= t0);
    // After a checkpoint the WAL that held seq 5 is gone; dedupe must survive.
    st.checkpoint().await.unwrap();
    st.close().await.unwrap();
    assert!(matches!(
        st.append_agent_batch("h1", 1, 6, p.clone()).await,
        Err(StorageError::Closed)
    ));
    drop(st);
    let st = Storage::open(tmp.path(), opts()).unwrap();
    assert_eq!(
        st.append_agent_batch("h1", 1, 5, p).await.unwrap(),
        AppendOutcome::Duplicate
    );
    assert_eq!(all(&st)[0].points.len(), 2);
    assert_eq!(st.stats().wal_segments, 1);
}

#[tokio::test]
async fn malformed_payload_is_rejected_and_nothing_is_written() {
    let tmp = TempDir::new("malformed");
    let st = Storage::open(tmp.path(), opts()).unwrap();
    let before = st.stats().wal_bytes;
    let err = st
        .append_agent_batch("h1", 1, 0, vec![1, 2, 3, 4, 5])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Malformed(_)), "{err}");
    let empty_labels = payload(
        vec![Series {
            labels: Labels::default(),
            points: vec![Point {
                timestamp_ms: now(),
                value: 1.0,
            }],
        }],
        vec![],
    );
    assert!(matches!(
        st.append_agent_batch("h1", 1, 0, empty_labels).await,
        Err(StorageError::Malformed(_))
    ));
    assert_eq!(st.stats().wal_bytes, before);
    assert!(st.agent_streams().is_empty());
    // The sequence was not consumed.
    let ok = payload(vec![series("m", &[], &[(now(), 1.0)])], vec![]);
    assert_eq!(
        st.append_agent_batch("h1", 1, 0, ok).await.unwrap(),
        AppendOutcome::Stored { samples: 1 }
    );
}

#[tokio::test]
async fn special_values_and_stale_markers_survive_bit_exactly() {
    let tmp = TempDir::new("special");
    let t0 = now() - 10_000;
    let vals = [
        1.25f64,
        f64::from_bits(STALE),
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -0.0,
        42.0,
        f64::from_bits(STALE),
    ];
    let pts: Vec<(i64, f64)> = vals
        .iter()
        .enumerate()
        .map(|(i, &v)| (t0 + i as i64 * 1000, v))
        .collect();
    let expected: Vec<(i64, u64)> = pts.iter().map(|&(t, v)| (t, v.to_bits())).collect();
    {
        let st = Storage::open(tmp.path(), opts()).unwrap();
        st.append_series(vec![series("m", &[], &pts)])
            .await
            .unwrap();
        assert_eq!(bits(&all(&st))[0].1, expected);
    }
    // From the WAL.
    let st = Storage::open(tmp.path(), opts()).unwrap();
    assert_eq!(bits(&all(&st))[0].1, expected);
    // From a checkpoint.
    st.close().await.unwrap();
    drop(st);
    let st = Storage::open(tmp.path(), opts()).unwrap();
    assert_eq!(bits(&all(&st))[0].1, expected);
    // A repeated stale marker at the same timestamp is an identical duplicate.
    let stats = st
        .append_series(vec![series(
            "m",
            &[],
            &[(t0 + 7000, f64::from_bits(STALE))],
        )])
        .await
        .unwrap();
    assert_eq!(stats.duplicate, 1);
    assert_eq!(stats.appended, 0);
}

#[tokio::test]
async fn out_of_order_samples_follow_the_window_and_survive_replay() {
    let tmp = TempDir::new("ooo");
    let t0 = now() - 60_000;
    let o = StorageOptions {
        out_of_order_window: Duration::from_secs(10),
        ..opts()
    };
    {
        let st = Storage::open(tmp.path(), o.clone()).unwrap();
        st.append_series(vec![series("m", &[], &[(t0 + 20_000, 1.0)])])
            .await
            .unwrap();
        let s = st
            .append_series(vec![series(
                "m",
                &[],
                &[
                    (t0 + 15_000, 2.0),
                    (t0 + 5_000, 3.0),
                    (t0 + 15_000, 2.0),
                    (t0 + 15_000, 9.0),
                ],
            )])
            .await
            .unwrap();
        assert_eq!(
            (
                s.appended,
                s.out_of_order,
                s.duplicate,
                s.duplicate_timestamp
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(st.stats().samples_out_of_order, 1);
    }
    let st = Storage::open(tmp.path(), o).unwrap();
    let got = bits(&all(&st));
    assert_eq!(
        got[0].1,
        vec![
            (t0 + 15_000, 2.0f64.to_bits()),
            (t0 + 20_000, 1.0f64.to_bits())
        ]
    );
    // The range filter applies to out-of-order samples too.
    let got = st.select(&[], t0 + 16_000, t0 + 30_000).unwrap();
    assert_eq!(got[0].points.len(), 1);
    // Without a window the same sample is rejected.
    let tmp2 = TempDir::new("ooo-zero");
    let st = Storage::open(tmp2.path(), opts()).unwrap();
    st.append_series(vec![series("m", &[], &[(t0 + 20_000, 1.0)])])
        .await
        .unwrap();
    let s = st
        .append_series(vec![series("m", &[], &[(t0 + 19_999, 2.0)])])
        .await
        .unwrap();
    assert_eq!((s.appended, s.out_of_order), (0, 1));
}

#[tokio::test]
async fn series_limit_rejects_new_series_naming_the_metric() {
    let tmp = TempDir::new("limit");
    let st = Storage::open(
        tmp.path(),
        StorageOptions {
            max_series: 2,
            ..opts()
        },
    )
    .unwrap();
    let t = now();
    st.append_series(vec![
        series("a", &[], &[(t, 1.0)]),
        series("b", &[], &[(t, 1.0)]),
    ])
    .await
    .unwrap();
    // Existing series keep working.
    st.append_series(vec![series("a", &[], &[(t + 1, 1.0)])])
        .await
        .unwrap();
    let err = st
        .append_series(vec![
            series("a", &[], &[(t + 2, 1.0)]),
            series("http_requests_total", &[("code", "500")], &[(t, 1.0)]),
        ])
        .await
        .unwrap_err();
    match &err {
        StorageError::SeriesLimit { metric, limit } => {
            assert_eq!(metric, "http_requests_total");
            assert_eq!(*limit, 2);
        }
        e => panic!("unexpected {e}"),
    }
    assert!(err.to_string().contains("http_requests_total"));
    // Nothing of the rejected append was stored, and an agent batch is refused the same way
    // without consuming its sequence.
    assert_eq!(all(&st)[0].points.len(), 2);
    let p = payload(vec![series("c", &[], &[(t, 1.0)])], vec![]);
    assert!(matches!(
        st.append_agent_batch("h", 1, 0, p).await,
        Err(StorageError::SeriesLimit { .. })
    ));
    assert!(st.agent_streams().is_empty());
}

#[tokio::test]
async fn select_uses_matchers_ranges_and_sorts_by_labels() {
    let tmp = TempDir::new("select");
    let st = Storage::open(tmp.path(), opts()).unwrap();
    let t = now() - 100_000;
    st.append_series(vec![
        series(
            "up",
            &[("job", "node"), ("instance", "b")],
            &[(t, 1.0), (t + 10, 1.0)],
        ),
        series("up", &[("job", "node"), ("instance", "a")], &[(t, 0.0)]),
        series(
            "up",
            &[("job", "api"), ("instance", "c"), ("env", "prod")],
            &[(t + 20, 1.0)],
        ),
        series(
            "load",
            &[("job", "node"), ("instance", "a")],
            &[(t + 5, 0.3)],
        ),
    ])
    .await
    .unwrap();
    let names = |v: Vec<Series>| -> Vec<String> {
        v.iter()
            .map(|s| {
                format!(
                    "{}:{}",
                    s.labels.name(),
                    s.labels.get("instance").unwrap_or("")
                )
            })
            .collect()
    };
    let up = [Matcher::equal("__name__", "up")];
    // Prometheus's order: label pairs compared in name order, so `env` decides before `instance`.
    assert_eq!(
        names(st.select(&up, t, t + 100).unwrap()),
        ["up:c", "up:a", "up:b"]
    );
    let ms = [
        Matcher::equal("__name__", "up"),
        Matcher::new("env", MatchOp::NotEqual, "prod").unwrap(),
    ];
    assert_eq!(names(st.select(&ms, t, t + 100).unwrap()), ["up:a", "up:b"]);
    let ms = [Matcher::new("instance", MatchOp::Regex, "a|c").unwrap()];
    assert_eq!(
        names(st.select(&ms, t, t + 100).unwrap()),
        ["load:a", "up:c", "up:a"]
    );
    // Only points inside the inclusive range, and only series with points in it.
    let got = st.select(&up, t + 10, t + 20).unwrap();
    assert_eq!(names(got.clone()), ["up:c", "up:b"]);
    assert_eq!(got[1].points.len(), 1);
    assert_eq!(got[1].points[0].timestamp_ms, t + 10);
    assert!(st.select(&up, t + 21, t + 1000).unwrap().is_empty());
    assert!(st.select(&up, t + 20, t).unwrap().is_empty());

    assert_eq!(
        st.label_names(&[], t, t + 100).unwrap(),
        ["__name__", "env", "instance", "job"]
    );
    assert_eq!(
        st.label_names(&[Matcher::equal("__name__", "load")], t, t + 100)
            .unwrap(),
        ["__name__", "instance", "job"]
    );
    assert_eq!(
        st.label_values("instance", &up, t, t + 100).unwrap(),
        ["a", "b", "c"]
    );
    assert_eq!(
        st.label_values("instance", &up, t + 15, t + 100).unwrap(),
        ["c"]
    );
    assert_eq!(
        st.label_values("job", &[], t, t + 100).unwrap(),
        ["api", "node"]
    );
    let ls = st.series(&up, t + 10, t + 100).unwrap();
    assert_eq!(
        ls,
        vec![
            Labels::metric("up", &[("job", "api"), ("instance", "c"), ("env", "prod")]),
            Labels::metric("up", &[("job", "node"), ("instance", "b")]),
        ]
    );
}

#[tokio::test]
async fn events_are_kept_newest_first_bounded_and_durable() {
    let tmp = TempDir::new("events");
    let o = StorageOptions {
        max_events: 3,
        ..opts()
    };
    let ev = |i: i64| Event {
        timestamp_ms: i,
        kind: "anomaly".into(),
        labels: Labels::metric("node_load1", &[]),
        fields: vec![("score".into(), i.to_string())],
    };
    {
        let st = Storage::open(tmp.path(), o.clone()).unwrap();
        for i in 0..5 {
            let p = payload(vec![], vec![ev(i)]);
            st.append_agent_batch(&format!("h{i}"), 1, 0, p)
                .await
                .unwrap();
        }
        let got = st.recent_events(10);
        let ts: Vec<i64> = got.iter().map(|(_, e)| e.timestamp_ms).collect();
        assert_eq!(ts, [4, 3, 2]);
        assert_eq!(got[0].0, "h4");
        assert_eq!(st.recent_events(1).len(), 1);
    }
    let st = Storage::open(tmp.path(), o.clone()).unwrap();
    let ts: Vec<i64> = st
        .recent_events(10)
        .iter()
        .map(|(_, e)| e.timestamp_ms)
        .collect();
    assert_eq!(ts, [4, 3, 2]);
    st.close().await.unwrap();
    drop(st);
    let st = Storage::open(tmp.path(), o).unwrap();
    assert_eq!(st.recent_events(10)[0].1, ev(4));
}

fn only_segment(dir: &Path) -> PathBuf {
    let segs = wal::list_segments(&dir.join("wal")).unwrap();
    segs.into_iter()
        .filter(|(_, p)| std::fs::metadata(p).unwrap().len() > 0)
        .map(|(_, p)| p)
        .next_back()
        .unwrap()
}

#[tokio::test]
async fn torn_wal_tail_is_truncated_on_open_and_the_lost_batch_can_be_resent() {
    let tmp = TempDir::new("torn");
    let t = now();
    let mk = |i: i64| payload(vec![series("m", &[], &[(t + i, i as f64)])], vec![]);
    {
        let st = Storage::open(tmp.path(), opts()).unwrap();
        for i in 0..3 {
            st.append_agent_batch("h", 1, i as u64, mk(i))
                .await
                .unwrap();
        }
    }
    let seg = only_segment(tmp.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let st = Storage::open(tmp.path(), opts()).unwrap();
    assert_eq!(st.stats().torn_tail_truncations, 1);
    assert_eq!(st.metrics().wal_torn_tail_truncations.get(), 1);
    assert_eq!(all(&st)[0].points.len(), 2);
    // Seq 2 was lost with the torn record, so the agent's resend is stored, not a duplicate.
    assert_eq!(
        st.append_agent_batch("h", 1, 2, mk(2)).await.unwrap(),
        AppendOutcome::Stored { samples: 1 }
    );
    assert_eq!(st.agent_streams()[0].contiguous_up_to, 3);
}

#[tokio::test]
async fn garbage_after_the_wal_tail_is_truncated_without_losing_records() {
    let tmp = TempDir::new("garbage");
    let t = now();
    {
        let st = Storage::open(tmp.path(), opts()).unwrap();
        st.append_series(vec![series("m", &[], &[(t, 1.0)])])
            .await
            .unwrap();
    }
    let seg = only_segment(tmp.path());
    let mut data = std::fs::read(&seg).unwrap();
    data.extend_from_slice(&[0x5a; 77]);
    std::fs::write(&seg, data).unwrap();
    let st = Storage::open(tmp.path(), opts()).unwrap();
    assert_eq!(st.stats().torn_tail_truncations, 1);
    assert_eq!(all(&st)[0].points.len(), 1);
}

#[tokio::test]
async fn retention_rejects_expired_samples_and_checkpoints_delete_wal_segments() {
    let tmp = TempDir::new("retention");
    let o = StorageOptions {
        retention: Duration::from_secs(3600),
        wal_segment_bytes: 512,
        ..opts()
    };
    let t = now();
    let st = Storage::open(tmp.path(), o.clone()).unwrap();
    let s = st
        .append_series(vec![series(
            "m",
            &[],
            &[(t - 2 * 3600 * 1000, 1.0), (t - 1000, 2.0)],
        )])
        .await
        .unwrap();
    assert_eq!((s.appended, s.too_old), (1, 1));
    for i in 0..40 {
        st.append_series(vec![series("n", &[("i", &i.to_string())], &[(t, 1.0)])])
            .await
            .unwrap();
    }
    assert!(st.stats().wal_segments > 3, "{:?}", st.stats());
    st.checkpoint().await.unwrap();
    let stats = st.stats();
    assert_eq!(stats.wal_segments, 1);
    assert_eq!(stats.checkpoints, 1);
    drop(st);
    // Data written before the checkpoint comes back from it.
    let st = Storage::open(tmp.path(), o).unwrap();
    assert_eq!(all(&st).len(), 41);
    // Expiry of head data: simulate time passing by reopening with a shorter retention.
    st.close().await.unwrap();
    drop(st);
    let short = StorageOptions {
        retention: Duration::from_millis(500),
        ..opts()
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let st = Storage::open(tmp.path(), short).unwrap();
    assert!(all(&st).is_empty());
    assert_eq!(st.stats().series, 0);
}

#[tokio::test]
async fn concurrent_appends_share_fsyncs() {
    let tmp = TempDir::new("group");
    let st = Storage::open(tmp.path(), opts()).unwrap();
    let t = now();
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let st = st.clone();
        tasks.push(tokio::spawn(async move {
            for seq in 0..50u64 {
                let p = payload(
                    vec![series(
                        "m",
                        &[("w", &w.to_string())],
                        &[(t + seq as i64, 1.0)],
                    )],
                    vec![],
                );
                let r = st.append_agent_batch("h", w, seq, p).await.unwrap();
                assert_eq!(r, AppendOutcome::Stored { samples: 1 });
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stats = st.stats();
    assert_eq!(stats.samples_appended, 400);
    assert!(stats.wal_fsyncs <= 400);
    assert_eq!(st.agent_streams().len(), 8);
    assert!(st.agent_streams().iter().all(|s| s.contiguous_up_to == 50));
    let reg = prometheus::Registry::new();
    st.register_metrics(&reg).unwrap();
    let names: Vec<String> = reg.gather().iter().map(|f| f.name().to_string()).collect();
    assert!(names.contains(&"vigil_storage_wal_fsyncs_total".to_string()));
    assert!(names.contains(&"vigil_storage_head_series".to_string()));
}

const CRASH_DIR_ENV: &str = "VIGIL_STORAGE_CRASH_DIR";
const CRASH_BASE_ENV: &str = "VIGIL_STORAGE_CRASH_BASE";
const CRASH_WRITERS: u64 = 4;

fn crash_payload(base: i64, seq: u64) -> Vec<u8> {
    let task = seq % CRASH_WRITERS;
    let mut s = vec![series(
        "crash_probe",
        &[("task", &task.to_string())],
        &[(base + seq as i64, seq as f64)],
    )];
    // Some bulk so records span pages and segments rotate.
    for k in 0..20 {
        s.push(series(
            "crash_filler",
            &[("task", &task.to_string()), ("k", &k.to_string())],
            &[(base + seq as i64, k as f64)],
        ));
    }
    payload(s, vec![])
}

fn crash_opts() -> StorageOptions {
    StorageOptions {
        block_duration: Duration::from_secs(10),
        wal_segment_bytes: 16 << 10,
        checkpoint_wal_bytes: 48 << 10,
        ..opts()
    }
}

/// The child side of the crash test: appends forever and prints each acknowledged sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by sigkill_during_appends_loses_no_acknowledged_batch"]
async fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_DIR_ENV) else {
        return;
    };
    let base: i64 = std::env::var(CRASH_BASE_ENV).unwrap().parse().unwrap();
    let st = Storage::open(Path::new(&dir), crash_opts()).unwrap();
    let start = st.agent_streams().first().map_or(0, |s| s.highest_seq + 1);
    let mut tasks = Vec::new();
    for w in 0..CRASH_WRITERS {
        let st = st.clone();
        tasks.push(tokio::spawn(async move {
            let mut seq = start + w;
            loop {
                let r = st
                    .append_agent_batch("crasher", 1, seq, crash_payload(base, seq))
                    .await
                    .unwrap();
                assert!(matches!(r, AppendOutcome::Stored { .. }));
                println!("ACK {seq}");
                seq += CRASH_WRITERS;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn sigkill_during_appends_loses_no_acknowledged_batch() {
    use std::io::{BufRead, BufReader};
    let tmp = TempDir::new("crash");
    let base = now() - 1_000_000;
    let mut acked = BTreeSet::new();
    for round in 0..3 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "storage::tests::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_DIR_ENV, tmp.path())
            .env(CRASH_BASE_ENV, base.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut this_round = 0;
        let target = 150 + round * 97;
        while this_round < target {
            let Some(Ok(line)) = lines.next() else {
                panic!("child exited early in round {round}")
            };
            if let Some(seq) = line.strip_prefix("ACK ") {
                let seq: u64 = seq.parse().unwrap();
                // Every acknowledged sequence is new: a repeat would mean a lost dedupe state.
                assert!(acked.insert(seq), "seq {seq} acknowledged twice");
                this_round += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
                               // Lines fully printed before the kill are acknowledgements too.
        for line in lines.map_while(Result::ok) {
            if let Some(seq) = line
                .strip_prefix("ACK ")
                .and_then(|s| s.parse::<u64>().ok())
            {
                assert!(acked.insert(seq), "seq {seq} acknowledged twice");
            }
        }
        child.wait().unwrap();
    }
    // The children compacted their old data into blocks while being killed at random points.
    let blocks_before_reopen = block_files(tmp.path()).len();
    assert!(blocks_before_reopen > 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let st = Storage::open(tmp.path(), crash_opts()).unwrap();
        let probes = st
            .select(
                &[Matcher::equal("__name__", "crash_probe")],
                i64::MIN,
                i64::MAX,
            )
            .unwrap();
        let mut stored: Vec<u64> = probes
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.value as u64))
            .collect();
        stored.sort_unstable();
        let n = stored.len();
        stored.dedup();
        assert_eq!(stored.len(), n, "a sample is stored twice");
        for seq in &acked {
            assert!(
                stored.binary_search(seq).is_ok(),
                "acknowledged seq {seq} lost"
            );
            let ts = base + *seq as i64;
            let s = &probes[(seq % CRASH_WRITERS) as usize];
            assert_eq!(s.points.iter().filter(|p| p.timestamp_ms == ts).count(), 1);
            assert_eq!(
                st.append_agent_batch("crasher", 1, *seq, crash_payload(base, *seq))
                    .await
                    .unwrap(),
                AppendOutcome::Duplicate
            );
        }
        let stream = &st.agent_streams()[0];
        assert_eq!(stream.batches as usize, stored.len());
        eprintln!(
            "crash test: {} acknowledged, {} stored, {} wal segments, {} blocks",
            acked.len(),
            stored.len(),
            st.stats().wal_segments,
            blocks_before_reopen
        );
    });
}

fn block_files(dir: &Path) -> Vec<String> {
    block::list(&dir.join("blocks")).unwrap()
}

#[tokio::test]
async fn compaction_moves_old_head_data_into_blocks_seen_exactly_once() {
    let tmp = TempDir::new("compact");
    let o = StorageOptions {
        block_duration: Duration::from_secs(60),
        out_of_order_window: Duration::from_secs(3600),
        ..opts()
    };
    let t = now() - 20 * 60_000;
    let mut pts: Vec<(i64, f64)> = (0..114).map(|i| (t + i * 10_000, i as f64)).collect();
    let st = Storage::open(tmp.path(), o.clone()).unwrap();
    st.append_series(vec![
        series("a", &[("k", "1")], &pts),
        series("b", &[], &[(t, f64::from_bits(STALE))]),
    ])
    .await
    .unwrap();
    // An out-of-order sample lands in an older window.
    st.append_series(vec![series("a", &[("k", "1")], &[(t - 5_000, -1.0)])])
        .await
        .unwrap();
    pts.insert(0, (t - 5_000, -1.0));
    let before = bits(&all(&st));
    let names_before = st.label_names(&[], i64::MIN, i64::MAX).unwrap();
    st.compact().await.unwrap();
    let stats = st.stats();
    assert!(stats.blocks >= 2, "{stats:?}");
    assert!(stats.samples_in_head < 116, "{stats:?}");
    assert_eq!(bits(&all(&st)), before);
    assert_eq!(
        st.label_names(&[], i64::MIN, i64::MAX).unwrap(),
        names_before
    );
    assert_eq!(
        st.label_values("k", &[], i64::MIN, i64::MAX).unwrap(),
        ["1"]
    );
    // Range reads across the block/head boundary.
    let mid = st
        .select(&[Matcher::equal("k", "1")], t + 500_000, t + 700_000)
        .unwrap();
    assert_eq!(mid[0].points.len(), 21);
    // New data keeps flowing into the head; a second compaction has nothing old to move.
    let t2 = now() - 1000;
    st.append_series(vec![series("a", &[("k", "1")], &[(t2, 7.0)])])
        .await
        .unwrap();
    st.compact().await.unwrap();
    let expected = bits(&all(&st));
    assert_eq!(expected[0].1.len(), pts.len() + 1);
    drop(st);
    // Unlisted block files (from a compaction that crashed before its checkpoint) are removed.
    std::fs::write(tmp.path().join("blocks").join("9999999999.blk"), b"junk").unwrap();
    let st = Storage::open(tmp.path(), o.clone()).unwrap();
    assert_eq!(bits(&all(&st)), expected);
    assert!(!block_files(tmp.path()).contains(&"9999999999".to_string()));
    let n_blocks = st.stats().blocks;
    assert_eq!(block_files(tmp.path()).len(), n_blocks);
    // Retention removes whole expired blocks and their files.
    st.close().await.unwrap();
    drop(st);
    let short = StorageOptions {
        retention: Duration::from_secs(60),
        ..o
    };
    let st = Storage::open(tmp.path(), short).unwrap();
    st.compact().await.unwrap();
    assert_eq!(st.stats().blocks, 0);
    assert!(block_files(tmp.path()).is_empty());
    let left = bits(&all(&st));
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1, vec![(t2, 7.0f64.to_bits())]);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[tokio::test]
async fn compaction_that_crashes_before_its_checkpoint_leaves_no_duplicates() {
    // Blocks written and renamed into place, then a crash before the checkpoint that lists
    // them: the old checkpoint and WAL still hold the data, so the unlisted blocks must go.
    let tmp = TempDir::new("compact-crash");
    let o = StorageOptions {
        block_duration: Duration::from_secs(60),
        ..opts()
    };
    let t = now() - 10 * 60_000;
    let pts: Vec<(i64, f64)> = (0..200).map(|i| (t + i * 1000, i as f64)).collect();
    let no_auto_compaction = StorageOptions {
        block_duration: Duration::from_secs(24 * 3600),
        ..opts()
    };
    {
        let st = Storage::open(tmp.path(), no_auto_compaction).unwrap();
        st.append_series(vec![series("a", &[], &pts[..100])])
            .await
            .unwrap();
        st.checkpoint().await.unwrap();
        st.append_series(vec![series("a", &[], &pts[100..])])
            .await
            .unwrap();
    }
    let backup = TempDir::new("compact-crash-backup");
    copy_dir(tmp.path(), backup.path());
    {
        let st = Storage::open(tmp.path(), o.clone()).unwrap();
        st.compact().await.unwrap();
        assert!(st.stats().blocks >= 1);
    }
    let blocks = block_files(tmp.path());
    assert!(!blocks.is_empty());
    // Put back the pre-compaction WAL and checkpoint; keep the new block files.
    std::fs::remove_dir_all(tmp.path().join("wal")).unwrap();
    for (_, p) in checkpoint::list(tmp.path()).unwrap() {
        std::fs::remove_file(p).unwrap();
    }
    copy_dir(&backup.path().join("wal"), &tmp.path().join("wal"));
    for (_, p) in checkpoint::list(backup.path()).unwrap() {
        std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
    }
    let st = Storage::open(tmp.path(), o).unwrap();
    assert!(block_files(tmp.path()).is_empty());
    assert_eq!(st.stats().blocks, 0);
    let got = bits(&all(&st));
    assert_eq!(got[0].1.len(), 200);
    // Compacting again produces the blocks for real.
    st.compact().await.unwrap();
    assert_eq!(bits(&all(&st))[0].1.len(), 200);
    assert!(st.stats().blocks >= 1);
}

/// Regression: a payload is deserialized without `Labels::new`, so an agent could send labels
/// out of order, repeated or empty; they must land on the canonical series, also on replay.
#[tokio::test]
async fn unsorted_labels_from_a_payload_are_normalized_before_storing() {
    let tmp = TempDir::new("normalize");
    let t = now();
    // Build a Labels value bypassing Labels::new via serde, as decoding does.
    let raw: Labels =
        serde_json::from_str(r#"[["job","x"],["__name__","up"],["empty",""],["job","y"]]"#)
            .unwrap();
    assert_eq!(raw.len(), 4);
    let p = payload(
        vec![Series {
            labels: raw,
            points: vec![Point {
                timestamp_ms: t,
                value: 1.0,
            }],
        }],
        vec![],
    );
    {
        let st = Storage::open(tmp.path(), opts()).unwrap();
        st.append_agent_batch("h", 1, 0, p).await.unwrap();
        st.append_series(vec![series("up", &[("job", "y")], &[(t + 1, 2.0)])])
            .await
            .unwrap();
        let got = st.select(&[Matcher::equal("job", "y")], t, t + 1).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].labels, Labels::metric("up", &[("job", "y")]));
        assert_eq!(got[0].points.len(), 2);
    }
    let st = Storage::open(tmp.path(), opts()).unwrap();
    let got = st.select(&[Matcher::equal("job", "y")], t, t + 1).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].points.len(), 2);
}

#[tokio::test]
async fn a_data_directory_can_be_open_only_once() {
    let tmp = TempDir::new("lock");
    let st = Storage::open(tmp.path(), opts()).unwrap();
    assert!(matches!(
        Storage::open(tmp.path(), opts()),
        Err(StorageError::Locked(_))
    ));
    st.close().await.unwrap();
    drop(st);
    Storage::open(tmp.path(), opts()).unwrap();
}

#[tokio::test]
// Holding the head lock across awaits is the point: it stalls the writer thread.
#[allow(clippy::await_holding_lock)]
async fn a_full_queue_makes_appenders_wait_until_the_writer_catches_up() {
    let tmp = TempDir::new("backpressure");
    let st = Storage::open(
        tmp.path(),
        StorageOptions {
            queue_depth: 2,
            ..opts()
        },
    )
    .unwrap();
    let t = now();
    // Stall the writer: it cannot apply a group while the head is locked.
    let guard = write(&st.inner.shared.head);
    let mut tasks = Vec::new();
    for i in 0..6i64 {
        let st = st.clone();
        tasks.push(tokio::spawn(async move {
            st.append_series(vec![series("m", &[("i", &i.to_string())], &[(t, 1.0)])])
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One group is stuck in the writer, the queue is full, the rest wait to enqueue.
    assert_eq!(st.inner.tx.as_ref().unwrap().capacity(), 0);
    assert!(tasks.iter().all(|t| !t.is_finished()));
    drop(guard);
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().appended, 1);
    }
    assert_eq!(all(&st).len(), 6);
}

#[tokio::test]
async fn tenant_series_limit_refuses_remote_write_naming_tenant_and_metric() {
    let tmp = TempDir::new("tenant-limit");
    let st = Storage::open(
        tmp.path(),
        StorageOptions {
            max_series_per_tenant: 2,
            tenant_max_series: [("big".to_string(), 3)].into(),
            ..opts()
        },
    )
    .unwrap();
    let t = now();
    st.append_series_for(
        "a",
        vec![series("x", &[], &[(t, 1.0)]), series("y", &[], &[(t, 1.0)])],
    )
    .await
    .unwrap();
    let err = st
        .append_series_for(
            "a",
            vec![
                series("x", &[], &[(t + 1, 2.0)]),
                series(
                    "node_filesystem_avail_bytes",
                    &[("device", "sda1")],
                    &[(t, 1.0)],
                ),
            ],
        )
        .await
        .unwrap_err();
    match &err {
        StorageError::TenantSeriesLimit {
            tenant,
            metric,
            limit,
            rejected,
        } => {
            assert_eq!(
                (tenant.as_str(), metric.as_str(), *limit, *rejected),
                ("a", "node_filesystem_avail_bytes", 2, 1)
            );
        }
        e => panic!("unexpected {e}"),
    }
    assert!(err.is_client_error());
    let msg = err.to_string();
    assert!(
        msg.contains("\"a\"") && msg.contains("node_filesystem_avail_bytes"),
        "{msg}"
    );
    // Nothing of the refused append was stored.
    assert_eq!(all(&st).iter().map(|s| s.points.len()).sum::<usize>(), 2);
    // Other tenants have limits of their own; writing to another tenant's series is free.
    st.append_series_for(
        "b",
        vec![
            series("x", &[], &[(t + 1, 2.0)]),
            series("b1", &[], &[(t, 1.0)]),
            series("b2", &[], &[(t, 1.0)]),
        ],
    )
    .await
    .unwrap();
    st.append_series_for(
        "big",
        vec![
            series("c1", &[], &[(t, 1.0)]),
            series("c2", &[], &[(t, 1.0)]),
            series("c3", &[], &[(t, 1.0)]),
        ],
    )
    .await
    .unwrap();
    assert!(matches!(
        st.append_series_for("big", vec![series("c4", &[], &[(t, 1.0)])])
            .await,
        Err(StorageError::TenantSeriesLimit { .. })
    ));
    let m = st.metrics();
    assert_eq!(m.tenant_series_rejected.with_label_values(&["a"]).get(), 1);
    assert_eq!(
        m.tenant_series_rejected.with_label_values(&["big"]).get(),
        1
    );
    assert_eq!(m.tenant_series.with_label_values(&["a"]).get(), 2);
    assert_eq!(m.tenant_series.with_label_values(&["b"]).get(), 2);
    // Series from recording rules belong to the default tenant, which has the default limit.
    st.append_series(vec![
        series("r1", &[], &[(t, 1.0)]),
        series("r2", &[], &[(t, 1.0)]),
    ])
    .await
    .unwrap();
    assert!(st
        .append_series(vec![series("r3", &[], &[(t, 1.0)])])
        .await
        .is_err());
}

#[tokio::test]
async fn agent_batch_over_its_tenant_limit_is_stored_without_the_new_series() {
    let tmp = TempDir::new("tenant-agent");
    let o = StorageOptions {
        max_series_per_tenant: 2,
        agent_tenants: [("web-1".to_string(), "team".to_string())].into(),
        ..opts()
    };
    let st = Storage::open(tmp.path(), o.clone()).unwrap();
    let t = now();
    let p = payload(
        vec![
            series("up", &[], &[(t, 1.0)]),
            series("load1", &[], &[(t, 0.5)]),
            series("too_many", &[("i", "1")], &[(t, 9.0)]),
            // A repeat of the refused series in the same batch goes too.
            series("too_many", &[("i", "1")], &[(t + 1, 9.0)]),
        ],
        vec![],
    );
    // Partial accept: the batch is durable and acknowledged; only the new series over the
    // limit is dropped (and counted).
    assert_eq!(
        st.append_agent_batch("web-1", 1, 0, p.clone())
            .await
            .unwrap(),
        AppendOutcome::Stored { samples: 2 }
    );
    assert_eq!(
        st.append_agent_batch("web-1", 1, 0, p).await.unwrap(),
        AppendOutcome::Duplicate
    );
    assert_eq!(
        st.metrics()
            .tenant_series_rejected
            .with_label_values(&["team"])
            .get(),
        1
    );
    let names = |st: &Storage| -> Vec<String> {
        all(st)
            .iter()
            .map(|s| s.labels.name().to_string())
            .collect()
    };
    assert_eq!(names(&st), ["load1", "up"]);
    // An agent of another tenant is not affected.
    let p = payload(vec![series("too_many", &[("i", "1")], &[(t, 9.0)])], vec![]);
    st.append_agent_batch("web-2", 1, 0, p).await.unwrap();
    drop(st);
    // The WAL holds what was stored: the dropped series does not come back on replay, and
    // once the agent writes again its series count toward its tenant as before.
    let st = Storage::open(tmp.path(), o).unwrap();
    assert_eq!(names(&st), ["load1", "too_many", "up"]);
    let p = payload(
        vec![
            series("up", &[], &[(t + 15_000, 1.0)]),
            series("load1", &[], &[(t + 15_000, 0.5)]),
            series("new_one", &[], &[(t + 15_000, 1.0)]),
        ],
        vec![],
    );
    assert_eq!(
        st.append_agent_batch("web-1", 1, 1, p).await.unwrap(),
        AppendOutcome::Stored { samples: 2 }
    );
    assert_eq!(
        st.metrics()
            .tenant_series
            .with_label_values(&["team"])
            .get(),
        2
    );
}

#[tokio::test]
async fn finished_windows_of_small_blocks_are_merged_into_one() {
    let tmp = TempDir::new("merge");
    let o = StorageOptions {
        block_duration: Duration::from_secs(60),
        ..opts()
    };
    let t = now() - 40 * 60_000;
    let pts: Vec<(i64, f64)> = (0..456).map(|i| (t + i * 5_000, i as f64)).collect();
    let st = Storage::open(tmp.path(), o.clone()).unwrap();
    st.append_series(vec![
        series("a", &[], &pts),
        series("b", &[], &pts[..100]),
        series("c", &[], &pts[300..]),
    ])
    .await
    .unwrap();
    let before = bits(&all(&st));
    st.compact().await.unwrap();
    let stats = st.stats();
    // 38 one-minute blocks of data; the finished 12-minute windows (at least two) are
    // merged into one block each, leaving at most 2 + 12 + 1 blocks.
    assert!(stats.blocks <= 15, "{stats:?}");
    assert_eq!(bits(&all(&st)), before);
    assert_eq!(block_files(tmp.path()).len(), stats.blocks);
    let mid = st
        .select(&[Matcher::equal("__name__", "b")], t, t + 10 * 5_000)
        .unwrap();
    assert_eq!(mid[0].points.len(), 11);
    drop(st);
    let st = Storage::open(tmp.path(), o).unwrap();
    assert_eq!(bits(&all(&st)), before);
    assert_eq!(st.stats().blocks, stats.blocks);
}

/// Every decoder of stored bytes must turn garbage into an error, never a panic.
#[test]
fn decoders_reject_random_bytes_without_panicking() {
    let mut x = 0x0123_4567_89ab_cdefu64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let tmp = TempDir::new("garbage-decoders");
    for round in 0..200 {
        let len = (rnd() % 300) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        // Give some inputs plausible headers so decoding gets past the first check.
        match round % 4 {
            0 if len >= 8 => bytes[..8].copy_from_slice(b"VGCKPT02"),
            1 if len >= 2 => bytes[0] = 0,
            2 if len >= 8 => bytes[..8].copy_from_slice(b"VGBLK002"),
            3 if len >= 1 => bytes[0] = 1,
            _ => {}
        }
        let _ = dense::decode_range(&bytes, i64::MIN, i64::MAX, &mut Vec::new());
        let _ = checkpoint::decode(&bytes);
        let _ = WalRecord::decode(&bytes);
        let _ = payload::ParsedBatch::decode(&bytes);
        if let Ok(it) = chunk::ChunkIter::new(&bytes) {
            let _ = it.collect::<Vec<_>>();
        }
        let _ = chunk::ChunkAppender::from_bytes(&bytes);
        std::fs::write(tmp.path().join("x.blk"), &bytes).unwrap();
        let _ = Block::open(tmp.path(), "x", &intern::Interner::default());
        // And a WAL segment of garbage replays to a truncation, not a panic.
        let wal_dir = tmp.path().join(format!("wal{round}"));
        std::fs::create_dir_all(&wal_dir).unwrap();
        std::fs::write(wal_dir.join("0000000001"), &bytes).unwrap();
        wal::replay(&wal_dir, 0, |_, body| {
            let _ = WalRecord::decode(body);
        })
        .unwrap();
    }
}

/// Regression: a resend arriving while the first copy was still being synced was answered
/// "duplicate" before the first copy was durable.
#[tokio::test]
#[allow(clippy::await_holding_lock)] // stalls the writer on purpose
async fn concurrent_resends_of_one_batch_are_stored_once_and_acked_after_it_is_durable() {
    let tmp = TempDir::new("resend");
    let st = Storage::open(tmp.path(), opts()).unwrap();
    let p = payload(vec![series("m", &[], &[(now(), 1.0)])], vec![]);
    let guard = write(&st.inner.shared.head);
    // Occupy the writer with another batch so the ten copies queue up as one group.
    let other = {
        let st = st.clone();
        let p = payload(vec![series("other", &[], &[(now(), 1.0)])], vec![]);
        tokio::spawn(async move { st.append_agent_batch("h", 1, 1, p).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let st = st.clone();
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            st.append_agent_batch("h", 1, 7, p).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(tasks.iter().all(|t| !t.is_finished()));
    drop(guard);
    let mut stored = 0;
    let mut dups = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            AppendOutcome::Stored { samples } => {
                assert_eq!(samples, 1);
                stored += 1;
            }
            AppendOutcome::Duplicate => dups += 1,
        }
    }
    assert_eq!((stored, dups), (1, 9));
    assert!(matches!(
        other.await.unwrap().unwrap(),
        AppendOutcome::Stored { .. }
    ));
    assert_eq!(st.agent_streams()[0].batches, 2);
    assert_eq!(st.metrics().group_commit_records.get_sample_count(), 2);
    assert_eq!(all(&st).len(), 2);
}

#[tokio::test]
async fn zero_retention_keeps_everything() {
    let tmp = TempDir::new("no-retention");
    let st = Storage::open(
        tmp.path(),
        StorageOptions {
            retention: Duration::ZERO,
            ..opts()
        },
    )
    .unwrap();
    let s = st
        .append_series(vec![series("m", &[], &[(0, 1.0), (now(), 2.0)])])
        .await
        .unwrap();
    assert_eq!((s.appended, s.too_old), (2, 0));
    st.compact().await.unwrap();
    assert_eq!(all(&st)[0].points.len(), 2);
}

#[tokio::test]
#[allow(clippy::await_holding_lock)] // stalls the writer on purpose
async fn queued_payload_bytes_are_bounded() {
    let tmp = TempDir::new("queue-bytes");
    let st = Storage::open(
        tmp.path(),
        StorageOptions {
            queue_bytes: 1024,
            ..opts()
        },
    )
    .unwrap();
    let t = now();
    // With a single KiB allowed, only one append is in flight at a time.
    let big = |i: usize| {
        let s: Vec<Series> = (0..200)
            .map(|k| series("m", &[("k", &format!("{i}-{k}"))], &[(t, 1.0)]))
            .collect();
        payload(s, vec![])
    };
    let guard = write(&st.inner.shared.head);
    let mut tasks = Vec::new();
    for i in 0..4 {
        let st = st.clone();
        let p = big(i);
        tasks.push(tokio::spawn(async move {
            st.append_agent_batch("h", 1, i as u64, p).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(st.inner.queue_bytes.available_permits(), 0);
    // Only the request holding the permits reached the queue or the writer.
    assert_eq!(
        st.inner.tx.as_ref().unwrap().capacity(),
        st.inner.tx.as_ref().unwrap().max_capacity()
    );
    drop(guard);
    for task in tasks {
        assert!(matches!(
            task.await.unwrap().unwrap(),
            AppendOutcome::Stored { samples: 200 }
        ));
    }
    assert_eq!(st.inner.queue_bytes.available_permits(), 1);
}
