//! Real Prometheus clients against Quiver's HTTP API: a Prometheus federating from it,
//! another reading through `remote_read`, and `promtool query` giving the same output as
//! against a real Prometheus with the same data.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// An instant query against Prometheus; None while it is not up yet.
async fn prom_query(port: u16, query: &str) -> Option<Value> {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// `peer_metric{job="api", instance=i}` = i * 10 + k at `base` + k * 10 s.
fn peer_batch(base: i64) -> quiver::prompb::WriteRequest {
    let batch = (0..3)
        .map(|i| {
            let instance = format!("i{i}");
            let samples: Vec<(i64, f64)> = (0..6)
                .map(|k| (base + k * 10_000, (i * 10 + k) as f64))
                .collect();
            series(
                &[
                    ("__name__", "peer_metric"),
                    ("job", "api"),
                    ("instance", &instance),
                ],
                &samples,
            )
        })
        .collect();
    write_request(batch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_federates_and_remote_reads_from_quiver() {
    let q = Quiver::start(&config_without_scrapes("  backend: local")).await;
    let base = now_ms() - 60_000;
    assert_eq!(q.remote_write(&peer_batch(base)).await.0, 204);
    // One Prometheus federates from Quiver, another reads from it; each proves one path.
    let federating = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: federate\n    honor_labels: true\n    metrics_path: /federate\n    params:\n      'match[]': ['{{job=\"api\"}}']\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        q.port
    );
    let reading = format!(
        "global:\n  scrape_interval: 1h\nremote_read:\n  - url: http://127.0.0.1:{}/api/v1/read\n    read_recent: true\n",
        q.port
    );
    let federator = Prometheus::start(&federating, &[]).await;
    let port = federator.port;
    let reader = Prometheus::start(&reading, &[]).await;
    let reader_port = reader.port;
    // Federation: Prometheus scrapes the newest sample of each series, with its timestamp.
    let federated = eventually("federated series", Duration::from_secs(30), || async move {
        let body = prom_query(port, "peer_metric{job=\"api\"}").await?;
        let result = body["data"]["result"].as_array()?.clone();
        (result.len() == 3).then_some(result)
    })
    .await;
    for s in &federated {
        let i: i64 = s["metric"]["instance"].as_str().unwrap()[1..]
            .parse()
            .unwrap();
        assert_eq!(
            s["value"][1].as_str().unwrap(),
            (i * 10 + 5).to_string(),
            "{s}"
        );
    }
    // Remote read: raw samples of a past window come back through Quiver.
    let body = eventually(
        "remote read answer",
        Duration::from_secs(30),
        || async move {
            prom_query(reader_port, "peer_metric{instance=\"i2\"}[2m]")
                .await
                .filter(|b| b["status"] == "success")
        },
    )
    .await;
    let values = body["data"]["result"][0]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let got: Vec<(i64, String)> = values
        .iter()
        .map(|v| {
            (
                (v[0].as_f64().unwrap() * 1000.0).round() as i64,
                v[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(i64, String)> = (0..6)
        .map(|k| (base + k * 10_000, (20 + k).to_string()))
        .collect();
    assert_eq!(got, want);
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new(peer_bin("promtool"))
        .args(args)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_sees_the_same_as_with_prometheus() {
    let q = Quiver::start(&config_without_scrapes("  backend: local")).await;
    let prometheus = Prometheus::start(
        "global:\n  scrape_interval: 1h\n",
        &["--web.enable-remote-write-receiver"],
    )
    .await;
    let base = (now_ms() / 1000) * 1000 - 60_000;
    assert_eq!(q.remote_write(&peer_batch(base)).await.0, 204);
    prometheus.remote_write(&peer_batch(base)).await;
    let quiver_url = q.url("");
    let prom_url = prometheus.url("");
    let at = ((base + 55_000) / 1000).to_string();
    let start = (base / 1000).to_string();
    let end = ((base + 50_000) / 1000).to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec![
            "query",
            "instant",
            "--time",
            &at,
            "URL",
            "sum by (job) (peer_metric)",
        ],
        vec!["query", "instant", "--time", &at, "URL", "peer_metric"],
        vec![
            "query",
            "range",
            "--start",
            &start,
            "--end",
            &end,
            "--step",
            "10s",
            "URL",
            "rate(peer_metric[30s])",
        ],
        vec![
            "query",
            "series",
            "--match",
            "peer_metric{instance=\"i1\"}",
            "URL",
        ],
        vec!["query", "labels", "URL", "instance"],
    ];
    for command in commands {
        let with = |url: &str| -> Vec<String> {
            command
                .iter()
                .map(|a| {
                    if *a == "URL" {
                        url.trim_end_matches('/').to_string()
                    } else {
                        a.to_string()
                    }
                })
                .collect()
        };
        let ours = with(&quiver_url);
        let theirs = with(&prom_url);
        let ours_out = promtool(&ours.iter().map(String::as_str).collect::<Vec<_>>());
        let theirs_out = promtool(&theirs.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(ours_out, theirs_out, "promtool {command:?}");
        assert!(
            !ours_out.trim().is_empty(),
            "promtool {command:?} printed nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_delete_series_removes_data_from_head_and_blocks() {
    let storage = "  block_duration: 1m\n  out_of_order_time_window: 0s";
    let mut q = Quiver::start_with_args(
        &config_without_scrapes(storage),
        &["--web.enable-admin-api"],
    )
    .await;
    let end = now_ms();
    for step in 0..60 {
        let ts = end - 10 * 60_000 + step * 10_000;
        let batch = vec![
            series(&[("__name__", "del_me"), ("job", "x")], &[(ts, 1.0)]),
            series(&[("__name__", "keep_me"), ("job", "x")], &[(ts, 2.0)]),
        ];
        assert_eq!(q.remote_write(&write_request(batch)).await.0, 204);
    }
    let data_dir = q.data_dir();
    eventually("blocks", Duration::from_secs(40), || {
        let d = data_dir.clone();
        async move {
            let text = std::fs::read_to_string(d.join("manifest.json")).ok()?;
            let m: Value = serde_json::from_str(&text).ok()?;
            (m["blocks"].as_array()?.len() >= 5).then_some(())
        }
    })
    .await;
    let before = q.scalar("SELECT count(*) FROM keep_me").await;
    let r = q
        .client
        .post(q.url("/api/v1/admin/tsdb/delete_series"))
        .form(&[("match[]", "del_me")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        204,
        "{}",
        r.text().await.unwrap_or_default()
    );
    let (status, _) = q.sql_raw("SELECT count(*) FROM del_me").await;
    assert_eq!(status, 400, "the deleted metric's table is gone");
    assert_eq!(q.scalar("SELECT count(*) FROM keep_me").await, before);
    let r = q
        .client
        .post(q.url("/api/v1/admin/tsdb/clean_tombstones"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    // Gone from storage for good: the blocks on disk no longer hold it, even after a restart.
    q.stop();
    q.launch().await;
    let (status, _) = q.sql_raw("SELECT count(*) FROM del_me").await;
    assert_eq!(status, 400);
    let plain = Quiver::start(&config_without_scrapes("  backend: local")).await;
    let r = plain
        .client
        .post(plain.url("/api/v1/admin/tsdb/delete_series"))
        .form(&[("match[]", "up")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        503,
        "admin API needs --web.enable-admin-api"
    );
}
