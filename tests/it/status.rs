//! Status of the stored data: `/api/v1/status/tsdb` with `limit`, and Quiver's own
//! `/api/v1/status/cardinality` (top-N tables over the selected head series) and
//! `/api/v1/status/blocks` (the manifest's blocks).

use std::time::Duration;

use serde_json::{Value, json};

use crate::blocks::manifest_blocks;
use crate::common::*;

/// GETs `path` with `query`; returns the status code and the JSON body.
async fn get(q: &Quiver, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let r = q
        .client
        .get(q.url(path))
        .query(query)
        .send()
        .await
        .expect("GET request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON body"))
}

/// `data` of a successful answer.
async fn data(q: &Quiver, path: &str, query: &[(&str, &str)]) -> Value {
    let (status, body) = get(q, path, query).await;
    assert_eq!(status, 200, "{path} {query:?}: {body}");
    assert_eq!(body["status"], "success", "{body}");
    body["data"].clone()
}

/// `[{"name", "value"}]` from name/count pairs.
fn entries(pairs: &[(&str, u64)]) -> Value {
    pairs
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect()
}

/// Six series of three metrics; `job="a"` on four of them, `instance` on three.
async fn write_series(q: &Quiver) {
    let t = now_ms();
    let labels: [&[(&str, &str)]; 6] = [
        &[("__name__", "up"), ("job", "a"), ("instance", "1")],
        &[("__name__", "up"), ("job", "a"), ("instance", "2")],
        &[("__name__", "up"), ("job", "b"), ("instance", "1")],
        &[("__name__", "errors"), ("job", "a"), ("code", "500")],
        &[("__name__", "errors"), ("job", "a"), ("code", "404")],
        &[("__name__", "temp"), ("room", "x")],
    ];
    let batch = labels.iter().map(|l| series(l, &[(t, 1.0)])).collect();
    let (status, body) = q.remote_write(&write_request(batch)).await;
    assert_eq!(status, 204, "{body}");
}

async fn assert_bad_limit(q: &Quiver, path: &str) {
    for limit in ["0", "-1", "1.5", "ten"] {
        let (status, body) = get(q, path, &[("limit", limit)]).await;
        assert_eq!(status, 400, "{path} limit={limit}: {body}");
        assert_eq!(
            body,
            json!({"status": "error", "errorType": "bad_data", "error": "limit must be a positive number"})
        );
    }
}

#[tokio::test]
async fn status_tsdb_and_cardinality_count_the_head_series() {
    let q = Quiver::start(&config_without_scrapes("  backend: local")).await;
    write_series(&q).await;

    // tsdb: ten entries per list by default, `limit` of them when given.
    let tsdb = data(&q, "/api/v1/status/tsdb", &[]).await;
    assert_eq!(tsdb["headStats"]["numSeries"], 6, "{tsdb}");
    assert_eq!(tsdb["headStats"]["numLabelPairs"], 10, "{tsdb}");
    assert_eq!(
        tsdb["seriesCountByMetricName"],
        entries(&[("up", 3), ("errors", 2), ("temp", 1)])
    );
    assert_eq!(
        tsdb["seriesCountByLabelValuePair"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    let tsdb = data(&q, "/api/v1/status/tsdb", &[("limit", "2")]).await;
    assert_eq!(
        tsdb["seriesCountByMetricName"],
        entries(&[("up", 3), ("errors", 2)])
    );
    assert_eq!(
        tsdb["labelValueCountByLabelName"],
        entries(&[("__name__", 3), ("code", 2)])
    );
    assert_eq!(
        tsdb["memoryInBytesByLabelName"],
        entries(&[("__name__", 22), ("code", 6)])
    );
    assert_bad_limit(&q, "/api/v1/status/tsdb").await;

    // cardinality over every head series.
    let all = data(&q, "/api/v1/status/cardinality", &[]).await;
    assert_eq!(
        all,
        json!({
            "totalSeries": 6,
            "totalLabelValuePairs": 10,
            "seriesCountByMetricName": entries(&[("up", 3), ("errors", 2), ("temp", 1)]),
            "seriesCountByLabelName": entries(&[
                ("__name__", 6), ("job", 5), ("instance", 3), ("code", 2), ("room", 1),
            ]),
            "labelValueCountByLabelName": entries(&[
                ("__name__", 3), ("code", 2), ("instance", 2), ("job", 2), ("room", 1),
            ]),
            "seriesCountByLabelValuePair": entries(&[
                ("job=a", 4), ("__name__=up", 3), ("__name__=errors", 2), ("instance=1", 2),
                ("__name__=temp", 1), ("code=404", 1), ("code=500", 1), ("instance=2", 1),
                ("job=b", 1), ("room=x", 1),
            ]),
        })
    );

    // One selector and a focus label.
    let job_a = data(
        &q,
        "/api/v1/status/cardinality",
        &[("match[]", r#"{job="a"}"#), ("focusLabel", "instance")],
    )
    .await;
    assert_eq!(job_a["totalSeries"], 4, "{job_a}");
    assert_eq!(job_a["totalLabelValuePairs"], 7, "{job_a}");
    assert_eq!(
        job_a["seriesCountByMetricName"],
        entries(&[("errors", 2), ("up", 2)])
    );
    assert_eq!(
        job_a["seriesCountByFocusLabelValue"],
        entries(&[("1", 1), ("2", 1)]),
        "series without the focus label are not counted"
    );

    // A series counts when any selector picks it; `limit` cuts every list.
    let picked = data(
        &q,
        "/api/v1/status/cardinality",
        &[
            ("match[]", "up"),
            ("match[]", r#"temp{room=~"x|y"}"#),
            ("focusLabel", "job"),
            ("limit", "2"),
        ],
    )
    .await;
    assert_eq!(picked["totalSeries"], 4, "{picked}");
    assert_eq!(
        picked["seriesCountByMetricName"],
        entries(&[("up", 3), ("temp", 1)])
    );
    assert_eq!(
        picked["seriesCountByLabelName"],
        entries(&[("__name__", 4), ("instance", 3)])
    );
    assert_eq!(
        picked["seriesCountByLabelValuePair"],
        entries(&[("__name__=up", 3), ("instance=1", 2)])
    );
    assert_eq!(
        picked["seriesCountByFocusLabelValue"],
        entries(&[("a", 2), ("b", 1)])
    );

    // The same request as a form body, as Grafana and the UI may send it.
    let posted = post_form(
        &q.client,
        &q.url("/api/v1/status/cardinality"),
        &[("match[]", "errors".to_string())],
    )
    .await;
    assert_eq!(posted["data"]["totalSeries"], 2, "{posted}");

    // Nothing selected: zero counts and empty lists.
    let none = data(&q, "/api/v1/status/cardinality", &[("match[]", "absent")]).await;
    assert_eq!(none["totalSeries"], 0, "{none}");
    assert_eq!(none["seriesCountByMetricName"], json!([]));

    assert_bad_limit(&q, "/api/v1/status/cardinality").await;
    for selector in ["up{", "sum(up)", r#"{job=""}"#] {
        let (status, body) = get(&q, "/api/v1/status/cardinality", &[("match[]", selector)]).await;
        assert_eq!(status, 400, "{selector}: {body}");
        assert_eq!(body["status"], "error", "{body}");
        assert_eq!(body["errorType"], "bad_data", "{body}");
    }
}

#[tokio::test]
async fn status_blocks_lists_the_cut_blocks() {
    let config = config_without_scrapes("  block_duration: 1m\n  out_of_order_time_window: 0s");
    let q = Quiver::start(&config).await;
    assert_eq!(
        data(&q, "/api/v1/status/blocks", &[]).await,
        json!({"blocks": []})
    );

    // Six samples for each of three series in one old minute, then one sample three
    // minutes later, which makes that minute ready to cut.
    let window = (now_ms() - 10 * 60_000).div_euclid(60_000) * 60_000;
    let batch = ["a", "b", "c"]
        .iter()
        .map(|host| {
            let samples: Vec<(i64, f64)> = (0..6).map(|i| (window + i * 10_000, 1.0)).collect();
            series(&[("__name__", "load"), ("instance", host)], &samples)
        })
        .collect();
    let (status, body) = q.remote_write(&write_request(batch)).await;
    assert_eq!(status, 204, "{body}");
    let later = series(
        &[("__name__", "load"), ("instance", "a")],
        &[(window + 3 * 60_000, 1.0)],
    );
    let (status, body) = q.remote_write(&write_request(vec![later])).await;
    assert_eq!(status, 204, "{body}");

    let blocks = eventually("a block listed", Duration::from_secs(40), || async {
        let data = data(&q, "/api/v1/status/blocks", &[]).await;
        let blocks = data["blocks"].as_array().cloned().unwrap_or_default();
        (!blocks.is_empty()).then_some(blocks)
    })
    .await;
    let block = &blocks[0];
    assert_eq!(block["minTime"], window, "{block}");
    assert_eq!(block["maxTime"], window + 60_000, "{block}");
    assert_eq!(block["numSeries"], 3, "{block}");
    assert_eq!(block["numSamples"], 18, "{block}");
    assert_eq!(block["level"], 1, "{block}");
    assert_eq!(block["resolution"], 0, "{block}");
    assert!(block["bytes"].as_u64().unwrap_or(0) > 0, "{block}");
    assert!(block.get("source").is_none(), "a raw block has no source");
    let mut keys: Vec<&String> = block.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "bytes",
            "id",
            "level",
            "maxTime",
            "minTime",
            "numSamples",
            "numSeries",
            "resolution"
        ]
    );

    // The same blocks as the manifest on disk, by start time.
    let on_disk = manifest_blocks(&q.data_dir()).expect("blocks in manifest.json");
    let listed: Vec<&Value> = blocks.iter().map(|b| &b["id"]).collect();
    let stored: Vec<&Value> = on_disk.iter().map(|b| &b["id"]).collect();
    assert_eq!(listed, stored);
    let starts: Vec<i64> = blocks
        .iter()
        .filter_map(|b| b["minTime"].as_i64())
        .collect();
    assert!(starts.is_sorted(), "{starts:?}");
}
