//! Agent events as series: every event in an agent batch (an anomaly, a threshold breach or
//! its resolution, a remediation run, a flap-guard suspension) is also stored as one sample
//! of `vigil_agent_event`, so PromQL and alerting rules see events like any other data.
//!
//! ```text
//! vigil_agent_event{agent="web-01", kind="anomaly", check="host_anomaly", state="firing",
//!                   metric="node_load1", host="web-01", instance="web-01"}  1  @ event time
//! ```
//!
//! - `agent` is the agent's certificate identity and `kind` the event kind (`anomaly`,
//!   `threshold`, `remediation`, `flap_guard`, ...).
//! - The low-cardinality fields [`LABEL_FIELDS`] (`check`, `state`, `outcome`, `trigger`)
//!   become labels when present; measurements (`value`, `score`, `exit_code`, output) do not.
//! - The event's subject labels are kept, its `__name__` moved into `metric`; a subject label
//!   that clashes with one of the names above becomes `exported_<name>` (Prometheus's rule
//!   for clashing scraped labels). Names that are not valid label names, or reserved (`__`),
//!   are dropped.
//! - The value is the number of identical events (same labels, same millisecond) in the
//!   batch, normally 1, so `sum_over_time(vigil_agent_event[5m])` counts events and an
//!   instant selector sees an event for the 5 minute lookback after it.
//!
//! The series are derived when an agent batch is applied to the head, from the batch as it
//! was written to the WAL, both live and on replay: they commit in the same durable record
//! as the batch, and a resent (duplicate) batch adds nothing. So they are stored exactly
//! once, like the batch's own samples.

use std::collections::BTreeMap;
use vigil_shared::exposition::is_label_name;
use vigil_shared::model::{Event, Labels, Point, Series, METRIC_NAME};

/// Name of the event series.
pub const EVENT_METRIC: &str = "vigil_agent_event";
/// Event fields that become labels.
pub const LABEL_FIELDS: &[&str] = &["check", "state", "outcome", "trigger"];

/// The labels of `event` from `agent` as a `vigil_agent_event` series.
pub fn event_labels(agent: &str, event: &Event) -> Labels {
    let mut pairs: Vec<(String, String)> = vec![
        (METRIC_NAME.to_string(), EVENT_METRIC.to_string()),
        ("agent".to_string(), agent.to_string()),
        ("kind".to_string(), event.kind.clone()),
    ];
    for name in LABEL_FIELDS {
        // The last value wins, as for repeated labels.
        if let Some((_, v)) = event.fields.iter().rev().find(|(k, _)| k == name) {
            pairs.push((name.to_string(), v.clone()));
        }
    }
    let taken = |n: &str| {
        n == "agent"
            || n == "kind"
            || n == "metric"
            || LABEL_FIELDS.contains(&n)
            || event.labels.get(n).is_some()
    };
    for (name, value) in event.labels.iter() {
        if name == METRIC_NAME {
            pairs.push(("metric".to_string(), value.to_string()));
            continue;
        }
        if !is_label_name(name) || name.starts_with("__") {
            continue;
        }
        if name == "agent" || name == "kind" || name == "metric" || LABEL_FIELDS.contains(&name) {
            let mut renamed = format!("exported_{name}");
            while taken(&renamed) {
                renamed = format!("exported_{renamed}");
            }
            pairs.push((renamed, value.to_string()));
        } else {
            pairs.push((name.to_string(), value.to_string()));
        }
    }
    Labels::new(pairs)
}

/// The `vigil_agent_event` series for a batch's events, one point per distinct (labels,
/// timestamp) valued with the number of such events, points in time order. Deterministic:
/// replay derives exactly what the live append did.
pub fn event_series(agent: &str, events: &[Event]) -> Vec<Series> {
    if events.is_empty() {
        return Vec::new();
    }
    let mut counts: BTreeMap<Labels, BTreeMap<i64, f64>> = BTreeMap::new();
    for e in events {
        *counts
            .entry(event_labels(agent, e))
            .or_default()
            .entry(e.timestamp_ms)
            .or_default() += 1.0;
    }
    counts
        .into_iter()
        .map(|(labels, points)| Series {
            labels,
            points: points
                .into_iter()
                .map(|(timestamp_ms, value)| Point {
                    timestamp_ms,
                    value,
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, t: i64, labels: Labels, fields: &[(&str, &str)]) -> Event {
        Event {
            timestamp_ms: t,
            kind: kind.into(),
            labels,
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_check_transition_becomes_a_sample_with_its_series_labels() {
        let e = event(
            "anomaly",
            1_000,
            Labels::metric("node_load1", &[("host", "h"), ("instance", "h")]),
            &[
                ("check", "host_anomaly"),
                ("state", "firing"),
                ("value", "7.5"),
                ("score", "0.999900"),
            ],
        );
        let s = event_series("web-01", &[e]);
        assert_eq!(s.len(), 1);
        let want = Labels::metric(
            EVENT_METRIC,
            &[
                ("agent", "web-01"),
                ("kind", "anomaly"),
                ("check", "host_anomaly"),
                ("state", "firing"),
                ("metric", "node_load1"),
                ("host", "h"),
                ("instance", "h"),
            ],
        );
        assert_eq!(s[0].labels, want);
        assert_eq!(
            s[0].points,
            [Point {
                timestamp_ms: 1_000,
                value: 1.0
            }]
        );
    }

    #[test]
    fn clashing_invalid_and_reserved_subject_labels() {
        let subject = Labels::new(vec![
            ("agent".into(), "spoofed".into()),
            ("exported_agent".into(), "x".into()),
            ("state".into(), "s".into()),
            ("bad-name".into(), "v".into()),
            ("__meta".into(), "v".into()),
            ("action".into(), "clean_tmp".into()),
        ]);
        let e = event(
            "remediation",
            5,
            subject,
            &[("outcome", "ok"), ("trigger", "check"), ("exit_code", "0")],
        );
        let l = event_labels("a1", &e);
        assert_eq!(l.get("agent"), Some("a1"));
        assert_eq!(l.get("exported_agent"), Some("x"));
        assert_eq!(l.get("exported_exported_agent"), Some("spoofed"));
        assert_eq!(l.get("state"), None, "no state field");
        assert_eq!(l.get("exported_state"), Some("s"));
        assert_eq!(l.get("bad-name"), None);
        assert_eq!(l.get("__meta"), None);
        assert_eq!(l.get("action"), Some("clean_tmp"));
        assert_eq!(l.get("outcome"), Some("ok"));
        assert_eq!(l.get("trigger"), Some("check"));
        assert_eq!(l.get("exit_code"), None, "measurements are not labels");
        assert_eq!(l.get("metric"), None, "no subject metric");
    }

    #[test]
    fn identical_events_add_up_and_points_are_in_time_order() {
        let l = Labels::new(vec![("action".into(), "a".into())]);
        let events = [
            event("flap_guard", 20, l.clone(), &[]),
            event("flap_guard", 10, l.clone(), &[]),
            event("flap_guard", 20, l.clone(), &[]),
            event("remediation", 10, l, &[]),
        ];
        let s = event_series("a", &events);
        assert_eq!(s.len(), 2);
        let flap = s
            .iter()
            .find(|s| s.labels.get("kind") == Some("flap_guard"))
            .unwrap();
        let pts: Vec<(i64, f64)> = flap
            .points
            .iter()
            .map(|p| (p.timestamp_ms, p.value))
            .collect();
        assert_eq!(pts, [(10, 1.0), (20, 2.0)]);
        assert!(event_series("a", &[]).is_empty());
    }

    mod stored {
        use super::super::super::testutil::TempDir;
        use super::super::super::{AppendOutcome, Matcher, Storage, StorageError, StorageOptions};
        use super::*;
        use vigil_shared::codec::encode_batch;
        use vigil_shared::model::Batch;

        fn now() -> i64 {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64
        }

        fn transition(t: i64, state: &str) -> Event {
            event(
                "threshold",
                t,
                Labels::metric("node_load1", &[("host", "h")]),
                &[("check", "load_high"), ("state", state), ("value", "9")],
            )
        }

        fn payload(t: i64, events: Vec<Event>) -> Vec<u8> {
            encode_batch(&Batch {
                series: vec![Series {
                    labels: Labels::metric("node_load1", &[("host", "h")]),
                    points: vec![Point {
                        timestamp_ms: t,
                        value: 9.0,
                    }],
                }],
                events,
            })
            .unwrap()
        }

        fn event_points(st: &Storage) -> Vec<(Labels, Vec<(i64, f64)>)> {
            st.select(
                &[Matcher::equal(METRIC_NAME, EVENT_METRIC)],
                i64::MIN,
                i64::MAX,
            )
            .unwrap()
            .into_iter()
            .map(|s| {
                let pts = s.points.iter().map(|p| (p.timestamp_ms, p.value)).collect();
                (s.labels, pts)
            })
            .collect()
        }

        /// The event series are written with the batch, not again for a resent batch, and
        /// replay (from the WAL, and from a checkpoint plus the WAL) rebuilds exactly them.
        #[tokio::test]
        async fn event_series_are_stored_exactly_once_across_resends_and_reopen() {
            let tmp = TempDir::new("event-series");
            let t = now();
            let firing = payload(t, vec![transition(t, "firing")]);
            let resolved = payload(t + 1_000, vec![transition(t + 1_000, "resolved")]);
            let expected;
            {
                let st = Storage::open(tmp.path(), StorageOptions::default()).unwrap();
                assert_eq!(
                    st.append_agent_batch("web-01", 1, 0, firing.clone())
                        .await
                        .unwrap(),
                    AppendOutcome::Stored { samples: 1 },
                    "event samples are not counted as the batch's samples"
                );
                assert_eq!(
                    st.append_agent_batch("web-01", 1, 0, firing.clone())
                        .await
                        .unwrap(),
                    AppendOutcome::Duplicate
                );
                expected = event_points(&st);
                assert_eq!(expected.len(), 1, "{expected:?}");
                assert_eq!(expected[0].1, [(t, 1.0)]);
                assert_eq!(expected[0].0.get("agent"), Some("web-01"));
                assert_eq!(expected[0].0.get("state"), Some("firing"));
                assert_eq!(expected[0].0.get("metric"), Some("node_load1"));
            }
            let st = Storage::open(tmp.path(), StorageOptions::default()).unwrap();
            assert_eq!(event_points(&st), expected, "after WAL replay");
            assert_eq!(
                st.append_agent_batch("web-01", 1, 0, firing).await.unwrap(),
                AppendOutcome::Duplicate
            );
            st.checkpoint().await.unwrap();
            st.append_agent_batch("web-01", 1, 1, resolved.clone())
                .await
                .unwrap();
            st.close().await.unwrap();
            drop(st);
            let st = Storage::open(tmp.path(), StorageOptions::default()).unwrap();
            let got = event_points(&st);
            assert_eq!(got.len(), 2, "{got:?}");
            assert_eq!(got[0], expected[0]);
            assert_eq!(got[1].0.get("state"), Some("resolved"));
            assert_eq!(got[1].1, [(t + 1_000, 1.0)]);
            assert_eq!(
                st.append_agent_batch("web-01", 1, 1, resolved)
                    .await
                    .unwrap(),
                AppendOutcome::Duplicate
            );
            assert_eq!(event_points(&st).len(), 2);
        }

        /// `--max-series` covers the event series: a batch whose events would create a
        /// series beyond the limit is refused, naming `vigil_agent_event`.
        #[tokio::test]
        async fn event_series_count_against_the_series_limit() {
            let tmp = TempDir::new("event-series-limit");
            let o = StorageOptions {
                max_series: 1,
                ..StorageOptions::default()
            };
            let st = Storage::open(tmp.path(), o).unwrap();
            let t = now();
            st.append_agent_batch("a", 1, 0, payload(t, vec![]))
                .await
                .unwrap();
            let err = st
                .append_agent_batch("a", 1, 1, payload(t + 1, vec![transition(t + 1, "firing")]))
                .await
                .unwrap_err();
            match err {
                StorageError::SeriesLimit { metric, .. } => assert_eq!(metric, EVENT_METRIC),
                other => panic!("unexpected {other}"),
            }
            assert!(event_points(&st).is_empty());
        }
    }
}
