//! Native histograms: received by remote write (1.0 and 2.0), checked as Prometheus checks
//! them, kept through the WAL, the head and Parquet blocks, and read back by SQL.

use std::time::Duration;

use quiver::model::histogram::{CounterResetHint, Histogram, Span};
use quiver::prompb::histogram::Histogram as WireHistogram;
use serde_json::json;

use crate::common::*;

/// `count` observations spread over schema 1's buckets around 1, with a zero bucket.
fn histogram(count: u64) -> Histogram {
    let c = count as f64;
    Histogram {
        schema: 1,
        zero_threshold: 0.001,
        zero_count: 1.0,
        count: c + 1.0,
        sum: c * 1.5,
        positive_spans: vec![
            Span {
                offset: -1,
                length: 2,
            },
            Span {
                offset: 1,
                length: 1,
            },
        ],
        positive_buckets: vec![c - 2.0, 1.0, 1.0],
        counter_reset_hint: CounterResetHint::NotCounterReset,
        ..Default::default()
    }
}

fn histogram_series(
    labels: &[(&str, &str)],
    histograms: Vec<WireHistogram>,
) -> quiver::prompb::TimeSeries {
    let mut s = series(labels, &[]);
    s.histograms = histograms;
    s
}

const ROWS: &str = "SELECT CAST(timestamp AS BIGINT) AS t, histogram['count'], histogram['sum'], \
     histogram['schema'], histogram['positive_buckets'][1], \
     cardinality(histogram['positive_buckets']), value \
     FROM samples WHERE metric = 'rw_hist' ORDER BY t";

#[tokio::test]
async fn native_histograms_are_checked_stored_and_kept_through_restarts_and_blocks() {
    let mut q = Quiver::start(&config_without_scrapes(
        "  block_duration: 1m\n  out_of_order_time_window: 0s",
    ))
    .await;
    // Five minutes of one histogram every 15 s, old enough to be cut into blocks; integer
    // and float forms alternate, and one float sample sits between them.
    let start = now_ms() - 6 * 60_000;
    let mut want = Vec::new();
    for step in 0..20 {
        let t = start + step * 15_000;
        let h = histogram(10 + step as u64);
        let wire = if step % 2 == 0 {
            WireHistogram::from_integer(&h, t)
        } else {
            WireHistogram::from_float(&h, t)
        };
        let mut s = histogram_series(&[("__name__", "rw_hist"), ("job", "a")], vec![wire]);
        if step == 7 {
            s.samples.push(quiver::prompb::Sample {
                value: 42.0,
                timestamp: t + 1,
            });
        }
        let (status, body) = q.remote_write(&write_request(vec![s])).await;
        assert_eq!(status, 204, "{body}");
        want.push(json!([
            t,
            h.count,
            h.sum,
            1,
            h.positive_buckets[0],
            3,
            null
        ]));
        if step == 7 {
            want.push(json!([t + 1, null, null, null, null, null, 42.0]));
        }
    }
    assert_eq!(
        q.rows(ROWS).await,
        want.iter()
            .map(|r| r.as_array().unwrap().clone())
            .collect::<Vec<_>>()
    );

    // An integer histogram whose count disagrees with its buckets is refused and named; the
    // request's valid histogram beside it is stored.
    let t = now_ms();
    let mut bad = histogram(5);
    bad.count = 99.0;
    let request = write_request(vec![
        histogram_series(
            &[("__name__", "rw_hist_bad"), ("job", "a")],
            vec![WireHistogram::from_integer(&bad, t)],
        ),
        histogram_series(
            &[("__name__", "rw_hist_bad"), ("job", "b")],
            vec![WireHistogram::from_integer(&histogram(5), t)],
        ),
    ]);
    let (status, body) = q.remote_write(&request).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("1 invalid native histogram") && body.contains("observation count"),
        "{body}"
    );
    let stored = q
        .rows("SELECT labels['job'] FROM samples WHERE metric = 'rw_hist_bad'")
        .await;
    assert_eq!(stored, vec![vec![json!("b")]]);

    // The older windows become blocks, and the histograms read back the same from them,
    // and again after a restart (blocks and the WAL's replay of the head).
    let data_dir = q.data_dir();
    eventually("blocks in the manifest", Duration::from_secs(40), || {
        let d = data_dir.clone();
        async move { crate::blocks::manifest_blocks(&d).filter(|b| b.len() >= 4) }
    })
    .await;
    let want: Vec<Vec<serde_json::Value>> =
        want.iter().map(|r| r.as_array().unwrap().clone()).collect();
    assert_eq!(q.rows(ROWS).await, want);
    q.stop();
    q.launch().await;
    assert_eq!(q.rows(ROWS).await, want);
    assert_eq!(
        q.rows("SELECT count(*) FROM samples WHERE metric = 'rw_hist_bad'")
            .await,
        vec![vec![json!(1)]]
    );
}

/// Remote write 2.0 carries histograms with their own start timestamps; the answer counts
/// them in `X-Prometheus-Remote-Write-Histograms-Written`.
#[tokio::test]
async fn remote_write_2_0_histograms_are_counted_and_stored() {
    use prost::Message;
    use quiver::prompb::v2::{Request, TimeSeries};
    let q = Quiver::start(&config_without_scrapes("")).await;
    let t = now_ms() - 60_000;
    let mut with_start = WireHistogram::from_integer(&histogram(20), t);
    with_start.start_timestamp = t - 5_000;
    let request = Request {
        symbols: ["", "__name__", "rw2_hist", "job", "api"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        timeseries: vec![TimeSeries {
            labels_refs: vec![1, 2, 3, 4],
            histograms: vec![
                with_start,
                WireHistogram::from_float(&histogram(30), t + 15_000),
            ],
            ..Default::default()
        }],
    };
    let r = q
        .client
        .post(q.url("/api/v1/write"))
        .header(
            "Content-Type",
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        )
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "2.0.0")
        .body(snappy(&request.encode_to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let header = |name: &str| {
        r.headers()
            .get(format!("x-prometheus-remote-write-{name}-written"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        (header("samples"), header("histograms")),
        (Some("0".into()), Some("2".into()))
    );
    let rows = q
        .rows(
            "SELECT CAST(start_timestamp AS BIGINT), histogram['count'] FROM samples \
             WHERE metric = 'rw2_hist' ORDER BY timestamp",
        )
        .await;
    assert_eq!(
        rows,
        vec![
            vec![json!(t - 5_000), json!(21.0)],
            vec![serde_json::Value::Null, json!(31.0)]
        ]
    );
}

/// A real Prometheus 3.5 scrapes its own native histograms (protobuf exposition, native
/// histograms on) and remote-writes them to Quiver with 1.0 and 2.0: every histogram
/// Prometheus stored arrives with the same count and sum, and 2.0's answers count them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_writes_its_native_histograms() {
    let q = Quiver::start(&config_without_scrapes("")).await;
    let mut config = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: prom\n    scrape_protocols: [PrometheusProto]\n    static_configs:\n      - targets: ['127.0.0.1:PROMETHEUS_PORT']\nremote_write:\n",
    );
    for (name, message) in [
        ("v1", "prometheus.WriteRequest"),
        ("v2", "io.prometheus.write.v2.Request"),
    ] {
        config.push_str(&format!(
            "  - name: {name}\n    url: http://127.0.0.1:{}/api/v1/write\n    protobuf_message: {message}\n    send_native_histograms: true\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n",
            q.port
        ));
    }
    let prom = Prometheus::start(&config, &["--enable-feature=native-histograms"]).await;
    let metric = "prometheus_http_request_duration_seconds";
    // (handler, time) -> (count, sum), as each side stored them.
    let ours = || async {
        let rows = q
            .rows(&format!(
                "SELECT labels['handler'], CAST(timestamp AS BIGINT), histogram['count'], \
                 CAST(histogram['sum'] AS VARCHAR) FROM samples \
                 WHERE metric = '{metric}' AND histogram IS NOT NULL"
            ))
            .await;
        rows.into_iter()
            .map(|r| {
                let key = (
                    r[0].as_str().unwrap_or("").to_string(),
                    r[1].as_i64().unwrap(),
                );
                // The sum as text, parsed exactly (serde_json's number parsing may be an
                // ulp off).
                let sum: f64 = r[3].as_str().unwrap().parse().unwrap();
                (key, (r[2].as_f64().unwrap(), sum))
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let theirs = || async {
        let body = get_json_at(
            &reqwest::Client::new(),
            &prom.url("/api/v1/query"),
            &[("query", &format!("{metric}[1m]"))],
        )
        .await;
        let mut out = std::collections::BTreeMap::new();
        for series in body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let handler = series["metric"]["handler"]
                .as_str()
                .unwrap_or("")
                .to_string();
            for h in series["histograms"].as_array().cloned().unwrap_or_default() {
                let t = (h[0].as_f64().unwrap() * 1000.0).round() as i64;
                let number = |v: &serde_json::Value| v.as_str().unwrap().parse::<f64>().unwrap();
                out.insert(
                    (handler.clone(), t),
                    (number(&h[1]["count"]), number(&h[1]["sum"])),
                );
            }
        }
        out
    };
    let (ours, theirs) = eventually(
        "Prometheus's histograms in Quiver",
        Duration::from_secs(60),
        || async {
            let ours = ours().await;
            let newest = ours.keys().map(|(_, t)| *t).max()?;
            let theirs: std::collections::BTreeMap<_, _> = theirs()
                .await
                .into_iter()
                .filter(|((_, t), _)| *t <= newest)
                .collect();
            let handlers: std::collections::BTreeSet<&String> =
                theirs.keys().map(|(h, _)| h).collect();
            (theirs.len() >= 10
                && handlers.len() >= 2
                && theirs.keys().all(|k| ours.contains_key(k)))
            .then_some((ours, theirs))
        },
    )
    .await;
    for (key, want) in &theirs {
        assert_eq!(ours.get(key), Some(want), "{key:?}");
    }
    let written = q.metrics_text().await;
    assert!(
        !written.contains("quiver_tsdb_samples_rejected_total{reason=\"invalid_histogram\"}"),
        "{written}"
    );
}
