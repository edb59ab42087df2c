//! `GET /api/v1/status/tsdb[?limit=N]`: the head's cardinality in the shape of Prometheus's
//! TSDB status page (`headStats`, `seriesCountByMetricName`, `labelValueCountByLabelName`,
//! `memoryInBytesByLabelName`, `seriesCountByLabelValuePair`, the `limit` largest of each,
//! 10 by default), so an operator who hits a series limit can see which metric and label
//! grew. Vigil adds `seriesCountByTenant`: head series owned by each tenant, against which
//! `--max-series-per-tenant` is counted.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::json::{error_response, json_response};
use super::params::Params;
use super::ApiState;
use crate::query::QueryError;

/// Entries per table when `limit` is absent, as in Prometheus.
const DEFAULT_LIMIT: usize = 10;

pub(super) async fn tsdb_status(State(state): State<ApiState>, p: Params) -> Response {
    let limit = match p.get("limit") {
        None | Some("") => DEFAULT_LIMIT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return error_response(&QueryError::BadData(
                    "limit must be a positive number".into(),
                ))
            }
        },
    };
    let storage = state.storage.clone();
    let Ok(st) = tokio::task::spawn_blocking(move || storage.head_status(limit)).await else {
        return error_response(&QueryError::Execution("tsdb status task failed".into()));
    };
    let table = |t: &[(String, u64)]| -> Value {
        t.iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect()
    };
    let body = json!({
        "status": "success",
        "data": {
            "headStats": {
                "numSeries": st.num_series,
                "numLabelPairs": st.postings.num_label_pairs,
                "chunkCount": st.chunk_count,
                "minTime": st.min_time,
                "maxTime": st.max_time,
            },
            "seriesCountByMetricName": table(&st.postings.series_count_by_metric_name),
            "labelValueCountByLabelName": table(&st.postings.label_value_count_by_label_name),
            "memoryInBytesByLabelName": table(&st.postings.memory_in_bytes_by_label_name),
            "seriesCountByLabelValuePair": table(&st.postings.series_count_by_label_value_pair),
            "seriesCountByTenant": table(&st.tenants),
        }
    });
    json_response(StatusCode::OK, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testutil::TempDir;
    use crate::storage::{Storage, StorageOptions};
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    use vigil_shared::model::{Labels, Point, Series};

    fn series(name: &str, labels: &[(&str, &str)], t: i64) -> Series {
        Series {
            labels: Labels::metric(name, labels),
            points: vec![Point {
                timestamp_ms: t,
                value: 1.0,
            }],
        }
    }

    async fn get(state: &ApiState, uri: &str) -> (StatusCode, Value) {
        let resp = super::super::router(state.clone())
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn tsdb_status_reports_head_cardinality_per_metric_label_and_tenant() {
        let tmp = TempDir::new("tsdb-status");
        let storage = Storage::open(tmp.path(), StorageOptions::default()).unwrap();
        let state = ApiState {
            storage: storage.clone(),
            agents: Default::default(),
            metrics: Default::default(),
            ready: Default::default(),
            now_ms: || 0,
            samples_arrived: Default::default(),
        };
        let (status, empty) = get(&state, "/api/v1/status/tsdb").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(empty["data"]["headStats"]["numSeries"], 0);
        assert_eq!(empty["data"]["headStats"]["minTime"], i64::MAX);
        assert_eq!(empty["data"]["headStats"]["maxTime"], i64::MIN);

        let t = crate::storage::testutil::now_ms();
        let disks: Vec<Series> = (0..5)
            .map(|i| {
                series(
                    "node_filesystem_avail_bytes",
                    &[("device", &format!("sd{i}"))],
                    t + i,
                )
            })
            .collect();
        storage.append_series_for("team-a", disks).await.unwrap();
        storage
            .append_series_for("team-b", vec![series("up", &[("job", "node")], t)])
            .await
            .unwrap();

        let (status, v) = get(&state, "/api/v1/status/tsdb?limit=2").await;
        assert_eq!(status, StatusCode::OK);
        let d = &v["data"];
        assert_eq!(d["headStats"]["numSeries"], 6);
        assert_eq!(d["headStats"]["chunkCount"], 6);
        assert_eq!(d["headStats"]["minTime"], t);
        assert_eq!(d["headStats"]["maxTime"], t + 4);
        // __name__ 2 values, device 5, job 1.
        assert_eq!(d["headStats"]["numLabelPairs"], 8);
        assert_eq!(
            d["seriesCountByMetricName"],
            json!([{"name": "node_filesystem_avail_bytes", "value": 5}, {"name": "up", "value": 1}])
        );
        assert_eq!(
            d["labelValueCountByLabelName"],
            json!([{"name": "device", "value": 5}, {"name": "__name__", "value": 2}])
        );
        assert_eq!(
            d["seriesCountByLabelValuePair"][0],
            json!({"name": "__name__=node_filesystem_avail_bytes", "value": 5})
        );
        assert_eq!(
            d["memoryInBytesByLabelName"][0],
            json!({"name": "__name__", "value": 29})
        );
        assert_eq!(
            d["seriesCountByTenant"],
            json!([{"name": "team-a", "value": 5}, {"name": "team-b", "value": 1}])
        );

        for bad in ["0", "-1", "x"] {
            let (status, v) = get(&state, &format!("/api/v1/status/tsdb?limit={bad}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "limit={bad}");
            assert_eq!(v["errorType"], "bad_data");
            assert_eq!(v["error"], "limit must be a positive number");
        }
    }
}
