//! A real Prometheus remote-writes what it scrapes to Quiver, with remote write 1.0 and 2.0;
//! the values Quiver stores equal the ones Prometheus stored itself.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// Prometheus scraping itself every second and remote-writing to Quiver, with `message`
/// (`protobuf_message`) when given.
async fn start_prometheus(quiver_port: u16, message: Option<&str>) -> Prometheus {
    let message = message
        .map(|m| format!("    protobuf_message: {m}\n"))
        .unwrap_or_default();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: prom\n    static_configs:\n      - targets: ['127.0.0.1:PROMETHEUS_PORT']\nremote_write:\n  - url: http://127.0.0.1:{quiver_port}/api/v1/write\n{message}    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n"
    );
    Prometheus::start(&config, &[]).await
}

/// Raw samples of `selector` over the last minute, from Prometheus's own storage:
/// (label set without __name__ as Arrow prints a map, timestamp ms) -> value.
async fn prometheus_samples(p: &Prometheus, selector: &str) -> BTreeMap<(String, i64), f64> {
    let url = format!("http://127.0.0.1:{}/api/v1/query", p.port);
    let body: Value = reqwest::Client::new()
        .get(url)
        .query(&[("query", format!("{selector}[1m]"))])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for series in body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        // The label set as Arrow prints a map: `{name: value, ...}`, names sorted.
        let mut labels: Vec<(String, String)> = series["metric"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.as_str() != "__name__")
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        labels.sort();
        let rendered: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let label_set = format!("{{{}}}", rendered.join(", "));
        for v in series["values"].as_array().unwrap() {
            let ts = (v[0].as_f64().unwrap() * 1000.0).round() as i64;
            let value: f64 = v[1].as_str().unwrap().parse().unwrap();
            out.insert((label_set.clone(), ts), value);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_write_arrives_intact() {
    let q = Quiver::start(&config_without_scrapes("  backend: local")).await;
    let prom = start_prometheus(q.port, None).await;
    arrives_intact(&q, &prom).await;
}

/// Remote write 2.0 (`io.prometheus.write.v2.Request`, which Prometheus 3.x sends when told
/// to): the same samples arrive, Prometheus sees every one acknowledged as written (the
/// answer's `X-Prometheus-Remote-Write-Samples-Written`), and none failed or was retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_write_2_0_arrives_intact() {
    let q = Quiver::start(&config_without_scrapes("  backend: local")).await;
    let prom = start_prometheus(q.port, Some("io.prometheus.write.v2.Request")).await;
    let version = prom.version().await;
    assert!(
        version.starts_with("3."),
        "remote write 2.0 needs Prometheus 3.x as the sender; the test command fetches 3.5, this is {version}"
    );
    arrives_intact(&q, &prom).await;
    let metric = |text: &str, name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let prom_metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", prom.port))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sent = metric(&prom_metrics, "prometheus_remote_storage_samples_total");
    assert!(sent > 0.0, "Prometheus sent no samples");
    for failed in [
        "prometheus_remote_storage_samples_failed_total",
        "prometheus_remote_storage_samples_retried_total",
        "prometheus_remote_storage_samples_dropped_total",
    ] {
        assert_eq!(metric(&prom_metrics, failed), 0.0, "{failed}");
    }
    // Quiver counted 2.0 requests, all accepted.
    let ours = q.metrics_text().await;
    let counted: Vec<&str> = ours
        .lines()
        .filter(|l| l.starts_with("quiver_remote_write_requests_total"))
        .collect();
    assert!(!counted.is_empty(), "{ours}");
    for line in counted {
        assert!(line.contains("code=\"204\",version=\"2.0\""), "{line}");
    }
}

async fn arrives_intact(q: &Quiver, prom: &Prometheus) {
    // Wait until a handful of scrapes went through the remote-write queue.
    eventually(
        "samples from Prometheus",
        Duration::from_secs(60),
        || async {
            let (status, body) = q
                .sql_raw("SELECT count(*) FROM scrape_duration_seconds WHERE job = 'prom'")
                .await;
            (status == 200 && body["data"]["rows"][0][0].as_f64().unwrap_or(0.0) >= 5.0)
                .then_some(())
        },
    )
    .await;
    for metric in [
        "scrape_duration_seconds",
        "up",
        "prometheus_tsdb_head_samples_appended_total",
    ] {
        let expected = prometheus_samples(prom, &format!("{metric}{{job=\"prom\"}}")).await;
        assert!(!expected.is_empty(), "Prometheus has no {metric}");
        let rows = q
            .rows(&format!(
                "SELECT labels, CAST(timestamp AS BIGINT), value FROM samples WHERE metric = '{metric}' AND labels['job'] = 'prom' ORDER BY 2"
            ))
            .await;
        let stored: BTreeMap<(String, i64), f64> = rows
            .iter()
            .map(|r| {
                let v = match &r[2] {
                    Value::String(s) if s == "NaN" => f64::NAN,
                    other => other.as_f64().unwrap(),
                };
                (
                    (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap()),
                    v,
                )
            })
            .collect();
        let newest_stored = stored.keys().map(|k| k.1).max().unwrap();
        let mut compared = 0;
        for (key, value) in expected.iter().filter(|(k, _)| k.1 <= newest_stored) {
            let got = stored
                .get(key)
                .unwrap_or_else(|| panic!("{metric} {key:?} missing in Quiver"));
            assert_eq!(got.to_bits(), value.to_bits(), "{metric} {key:?}");
            compared += 1;
        }
        assert!(compared >= 3, "{metric}: only {compared} samples compared");
    }
    // Label sets arrive whole (Prometheus adds job and instance).
    let labels = q.rows("SELECT DISTINCT job, instance FROM up").await;
    assert_eq!(labels.len(), 1);
    assert_eq!(labels[0][0], Value::from("prom"));
}
