//! Differential API test: the same data in Quiver and in a real Prometheus (remote-written
//! to both; metadata from both scraping the same node_exporter), then the same
//! series/labels/label-values/metadata requests, compared up to ordering.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// The `data` of a response, with arrays turned into sorted sets of their JSON text so
/// that order does not matter.
fn normalized(body: &Value) -> Value {
    assert_eq!(body["status"], "success", "{body}");
    match &body["data"] {
        Value::Array(items) => {
            let set: BTreeSet<String> = items.iter().map(|v| v.to_string()).collect();
            Value::Array(set.into_iter().map(Value::String).collect())
        }
        other => other.clone(),
    }
}

async fn get(client: &reqwest::Client, base: &str, path: &str, params: &[(&str, String)]) -> Value {
    client
        .get(format!("{base}{path}"))
        .query(params)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_apis_agree_with_a_real_prometheus() {
    let q = Quiver::start(&config_without_scrapes("  backend: local")).await;
    let prometheus = Prometheus::start(
        "global:\n  scrape_interval: 1h\n",
        &["--web.enable-remote-write-receiver"],
    )
    .await;
    let client = reqwest::Client::new();
    let prom = prometheus.url("");
    let base = (now_ms() / 1000) * 1000 - 120_000;
    let mut batch = Vec::new();
    for (metric, jobs) in [
        ("api_http_requests_total", ["api", "web"]),
        ("api_queue_depth", ["api", "worker"]),
    ] {
        for job in jobs {
            for instance in ["h1:80", "h2:80"] {
                let samples: Vec<(i64, f64)> =
                    (0..12).map(|k| (base + k * 10_000, k as f64)).collect();
                batch.push(series(
                    &[
                        ("__name__", metric),
                        ("job", job),
                        ("instance", instance),
                        ("env", "prod"),
                    ],
                    &samples,
                ));
            }
        }
    }
    batch.push(series(
        &[
            ("__name__", "api_build_info"),
            ("version", "1.2.3"),
            ("job", "api"),
        ],
        &[(base, 1.0)],
    ));
    assert_eq!(q.remote_write(&write_request(batch.clone())).await.0, 204);
    prometheus.remote_write(&write_request(batch)).await;

    let all = [
        ("start", (base / 1000 - 60).to_string()),
        ("end", (base / 1000 + 600).to_string()),
    ];
    let before = [
        ("start", (base / 1000 - 3600).to_string()),
        ("end", (base / 1000 - 1800).to_string()),
    ];
    let m = |s: &str| ("match[]", s.to_string());
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("/api/v1/series", vec![m("api_queue_depth")]),
        (
            "/api/v1/series",
            vec![m("{job=\"api\"}"), all[0].clone(), all[1].clone()],
        ),
        (
            "/api/v1/series",
            vec![
                m("api_http_requests_total{job=~\"a.*\"}"),
                m("api_build_info"),
            ],
        ),
        (
            "/api/v1/series",
            vec![m("{__name__=~\"api_.*\", env!=\"prod\"}")],
        ),
        (
            "/api/v1/series",
            vec![m("{job=\"api\"}"), before[0].clone(), before[1].clone()],
        ),
        ("/api/v1/labels", vec![]),
        ("/api/v1/labels", vec![m("api_build_info")]),
        (
            "/api/v1/labels",
            vec![m("{job=\"worker\"}"), all[0].clone(), all[1].clone()],
        ),
        ("/api/v1/label/job/values", vec![]),
        ("/api/v1/label/job/values", vec![m("api_queue_depth")]),
        ("/api/v1/label/__name__/values", vec![]),
        ("/api/v1/label/__name__/values", vec![m("{env=\"prod\"}")]),
        (
            "/api/v1/label/instance/values",
            vec![m("{job=\"web\"}"), all[0].clone(), all[1].clone()],
        ),
        (
            "/api/v1/label/version/values",
            vec![before[0].clone(), before[1].clone()],
        ),
        ("/api/v1/label/nonexistent/values", vec![]),
    ];
    for (path, params) in &cases {
        let ours = normalized(&get(&client, &q.url(""), path, params).await);
        let theirs = normalized(&get(&client, &prom, path, params).await);
        assert_eq!(ours, theirs, "{path} {params:?}");
    }
    // `limit` (newer than Debian's Prometheus): at most that many, from the full answer.
    let limited = get(
        &client,
        &q.url(""),
        "/api/v1/label/__name__/values",
        &[("limit", "2".to_string())],
    )
    .await;
    assert_eq!(limited["data"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_metadata_agrees_with_a_real_prometheus() {
    let (_exporter, exporter_port, _exporter_dir) = start_node_exporter();
    let job = format!(
        "scrape_configs:\n  - job_name: node\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n"
    );
    let q = Quiver::start(&job).await;
    let prometheus = Prometheus::start(&job, &[]).await;
    let client = reqwest::Client::new();
    let prom = prometheus.url("");
    for metric in [
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "go_gc_duration_seconds",
        "node_boot_time_seconds",
    ] {
        let params = [("metric", metric.to_string())];
        let theirs = eventually("prometheus metadata", Duration::from_secs(30), || {
            let client = client.clone();
            let prom = prom.clone();
            let params = params.clone();
            async move {
                let body = get(&client, &prom, "/api/v1/metadata", &params).await;
                let present = body["data"].as_object().is_some_and(|o| !o.is_empty());
                present.then_some(body)
            }
        })
        .await;
        let ours = eventually("quiver metadata", Duration::from_secs(30), || {
            let client = client.clone();
            let url = q.url("");
            let params = params.clone();
            async move {
                let body = get(&client, &url, "/api/v1/metadata", &params).await;
                let present = body["data"].as_object().is_some_and(|o| !o.is_empty());
                present.then_some(body)
            }
        })
        .await;
        assert_eq!(ours["data"], theirs["data"], "{metric}");
    }
}
