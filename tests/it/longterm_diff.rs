//! Differential test over days of compacted blocks on S3: four days of exporter-like
//! history remote-written in time order into a Quiver on s3s-fs and into a real Prometheus
//! (an empty TSDB takes in-order history through remote write). Once Quiver has cut, merged
//! the blocks to the 2 d level and downsampled them, PromQL over the whole range, on raw
//! data, answers as Prometheus does.

use serde_json::Value;

use crate::common::*;
use crate::promql_diff::compare;

const STEP_MS: i64 = 60_000;
const DAYS: i64 = 4;
const INSTANCES: usize = 3;
/// Samples sit this far past the minute, so none lies on an evaluation's window edge.
const OFFSET_MS: i64 = 7_000;
const BUCKETS: [&str; 4] = ["0.1", "0.5", "1", "+Inf"];

/// The write requests, oldest first, one hour of every series each: a counter that resets
/// once, a slowly moving gauge, a constant and a histogram per instance.
fn history(start: i64) -> Vec<quiver::prompb::WriteRequest> {
    let steps = DAYS * 1440;
    let mut requests = Vec::new();
    for hour in 0..steps / 60 {
        let mut timeseries = Vec::new();
        for i in 0..INSTANCES {
            let instance = format!("host-{i}:9100");
            let points = |f: &dyn Fn(i64) -> f64| -> Vec<(i64, f64)> {
                (hour * 60..hour * 60 + 60)
                    .map(|s| (start + s * STEP_MS + OFFSET_MS, f(s)))
                    .collect()
            };
            let k = i as i64 + 1;
            let labels = |name: &'static str| {
                vec![
                    ("__name__", name),
                    ("instance", instance.as_str()),
                    ("job", "node"),
                ]
            };
            timeseries.push(series(
                &labels("http_requests_total"),
                // Restarts (a counter reset) on the second day.
                &points(&|s| ((s % (2 * 1440 + 17)) * k * 7 + (s * s) % 5) as f64),
            ));
            timeseries.push(series(
                &labels("temperature_celsius"),
                &points(&|s| 40.0 + 10.0 * ((s + 90 * k) as f64 / 240.0).sin()),
            ));
            timeseries.push(series(&labels("cpu_count"), &points(&|_| (4 * k) as f64)));
            for (b, le) in BUCKETS.iter().enumerate() {
                let mut labels = labels("request_seconds_bucket");
                labels.push(("le", le));
                timeseries.push(series(
                    &labels,
                    &points(&|s| (s * (b as i64 + 1) * k + s % 3) as f64),
                ));
            }
        }
        requests.push(write_request(timeseries));
    }
    requests
}

const QUERIES: &[&str] = &[
    "sum by (job) (rate(http_requests_total[1h]))",
    "increase(http_requests_total[6h])",
    "resets(http_requests_total[1d])",
    "max_over_time(temperature_celsius[2h])",
    "min_over_time(temperature_celsius[3h])",
    "avg_over_time(temperature_celsius[1h])",
    "count_over_time(temperature_celsius[90m])",
    "quantile_over_time(0.9, temperature_celsius[4h])",
    "deriv(temperature_celsius[2h])",
    "temperature_celsius",
    "sum(cpu_count)",
    "histogram_quantile(0.9, sum by (le) (rate(request_seconds_bucket[1h])))",
    "topk(2, avg_over_time(temperature_celsius[6h]))",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_of_compacted_blocks_on_s3_answer_as_prometheus_does() {
    let s3 = start_s3();
    let root = s3.root.path().join("metrics/history");
    // Default block duration and levels: 2 h blocks, merged to 8 h and 2 d, 5 m copies.
    let q = Quiver::start(&config_without_scrapes(&s3_storage_yaml(&s3, "history"))).await;
    let prometheus = Prometheus::start(
        "global:\n  scrape_interval: 1h\n",
        &["--web.enable-remote-write-receiver"],
    )
    .await;
    let start = (now_ms() - DAYS * 86_400_000) / 3_600_000 * 3_600_000;
    let requests = history(start);
    for request in &requests {
        let (status, body) = q.remote_write(request).await;
        assert_eq!(status, 204, "{body}");
        prometheus.remote_write(request).await;
    }
    // Four days hold a whole aligned 2 d window: wait for its merged block and 5 m copy.
    let r = root.clone();
    let levels = eventually(
        "2 d block and its 5 m copy",
        std::time::Duration::from_secs(180),
        || {
            let r = r.clone();
            async move {
                let text = std::fs::read_to_string(r.join("manifest.json")).ok()?;
                let manifest: Value = serde_json::from_str(&text).ok()?;
                let blocks = manifest["blocks"].as_array()?;
                let copies = manifest["downsampled"].as_array().map_or(0, |d| d.len());
                let top = blocks.iter().filter(|b| b["level"] == 3).count();
                (top >= 1 && copies >= 1).then(|| {
                    blocks
                        .iter()
                        .map(|b| b["level"].as_u64().unwrap_or(0))
                        .collect::<Vec<_>>()
                })
            }
        },
    )
    .await;

    let end = (start + DAYS * 86_400_000 - 3_600_000) / 1000;
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    let mut compared = 0;
    for query in QUERIES {
        let range = |step: &str| {
            vec![
                ("query", query.to_string()),
                ("start", (start / 1000 + 3600).to_string()),
                ("end", end.to_string()),
                ("step", step.to_string()),
            ]
        };
        let instant = |t: i64| vec![("query", query.to_string()), ("time", t.to_string())];
        for (mode, path, params) in [
            ("range 1h", "/api/v1/query_range", range("3600")),
            ("range 17m", "/api/v1/query_range", range("1020")),
            ("instant", "/api/v1/query", instant(end - 86_400 - 1234)),
        ] {
            let mut ours = params.clone();
            ours.push(("max_source_resolution", "raw".to_string()));
            let ours = post_form(&client, &q.url(path), &ours).await;
            let theirs = post_form(&client, &prometheus.url(path), &params).await;
            compared += 1;
            if let Err(e) = compare(query, mode, &ours, &theirs) {
                failures.push(e);
            }
        }
    }
    // A 1 h step reads the 5 m copies (max_source_resolution=auto): within the README's
    // accuracy of Prometheus's raw answers.
    let mut worst: f64 = 0.0;
    for query in [
        "rate(http_requests_total[1h])",
        "avg_over_time(temperature_celsius[1h])",
        "max_over_time(temperature_celsius[2h])",
        "min_over_time(temperature_celsius[2h])",
    ] {
        let params = [
            ("query", query.to_string()),
            ("start", (start / 1000 + 2 * 3600).to_string()),
            ("end", end.to_string()),
            ("step", "3600".to_string()),
        ];
        let (ours, theirs) = (
            points(&client, &q.url("/api/v1/query_range"), &params).await,
            points(&client, &prometheus.url("/api/v1/query_range"), &params).await,
        );
        assert_eq!(ours.len(), theirs.len(), "{query}");
        for ((key, a), (_, b)) in ours.iter().zip(&theirs) {
            assert_eq!(a.len(), b.len(), "{query} {key}");
            for ((ta, va), (tb, vb)) in a.iter().zip(b) {
                assert_eq!(ta, tb, "{query} {key}");
                let off = (va - vb).abs() / vb.abs().max(1e-9);
                assert!(off <= 0.05, "{query} {key} at {ta}: {va} vs {vb}");
                worst = worst.max(off);
            }
        }
    }
    println!(
        "5 m copies at a 1 h step: at most {:.3} % off Prometheus's raw answers",
        worst * 100.0
    );
    println!(
        "long-term differential PromQL over {DAYS} days of compacted blocks (levels {levels:?}): {} of {compared} evaluations agree with Prometheus",
        compared - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A range query's points by series: label set (as JSON) -> (time, value).
async fn points(
    client: &reqwest::Client,
    url: &str,
    params: &[(&str, String)],
) -> std::collections::BTreeMap<String, Vec<(f64, f64)>> {
    let body = post_form(client, url, params).await;
    assert_eq!(body["status"], "success", "{body}");
    (body["data"]["result"].as_array().unwrap().iter())
        .map(|s| {
            let values = (s["values"].as_array().unwrap().iter())
                .map(|p| {
                    (
                        p[0].as_f64().unwrap(),
                        p[1].as_str().unwrap().parse().unwrap(),
                    )
                })
                .collect();
            (s["metric"].to_string(), values)
        })
        .collect()
}
