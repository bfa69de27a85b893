//! Remote-write ingest: values round-trip, and every kind of bad request is refused with a
//! 4xx and stores nothing.

use crate::common::*;

async fn count(q: &Quiver) -> f64 {
    q.scalar("SELECT count(*) FROM samples").await
}

#[tokio::test]
async fn samples_round_trip_with_labels_and_special_values() {
    let q = Quiver::start(&config_without_scrapes("  backend: local")).await;
    let t = now_ms();
    let request = write_request(vec![
        series(
            &[
                ("__name__", "http_requests_total"),
                ("job", "api"),
                ("code", "200"),
            ],
            &[(t, 1.0), (t + 15_000, 2.5)],
        ),
        series(
            &[
                ("__name__", "http_requests_total"),
                ("job", "api"),
                ("code", "500"),
            ],
            &[(t, f64::INFINITY)],
        ),
        series(
            &[("__name__", "temperature"), ("room", "a")],
            &[(t, f64::NAN), (t + 1, -3.25)],
        ),
    ]);
    let (status, body) = q.remote_write(&request).await;
    assert_eq!(status, 204, "{body}");
    let rows = q
        .rows("SELECT code, job, value FROM http_requests_total ORDER BY code, timestamp")
        .await;
    assert_eq!(
        rows,
        vec![
            vec!["200".into(), "api".into(), serde_json::json!(1.0)],
            vec!["200".into(), "api".into(), serde_json::json!(2.5)],
            vec!["500".into(), "api".into(), serde_json::json!("+Inf")],
        ]
    );
    let temps = q
        .rows("SELECT value FROM temperature ORDER BY timestamp")
        .await;
    assert_eq!(
        temps,
        vec![
            vec![serde_json::json!("NaN")],
            vec![serde_json::json!(-3.25)]
        ]
    );
}

/// Names Prometheus 3.x accepts (its UTF-8 scheme) though the classic rules refuse them:
/// stored as sent, selected with PromQL's quoted names, queried by SQL as a table of that
/// name, and federated with underscores where the text format needs them.
#[tokio::test]
async fn utf8_names_are_stored_queried_and_federated() {
    let q = Quiver::start(&config_without_scrapes("  backend: local")).await;
    let t = now_ms();
    let labels = [
        ("__name__", "http.server.requests"),
        ("http.method", "GET"),
        ("9lives", "yes"),
    ];
    let (status, body) = q
        .remote_write(&write_request(vec![series(&labels, &[(t, 7.0)])]))
        .await;
    assert_eq!(status, 204, "{body}");
    let at = (t / 1000 + 1).to_string();
    let body = q
        .get_json(
            "/api/v1/query",
            &[
                (
                    "query",
                    r#"sum by ("http.method") ({"http.server.requests", "9lives"="yes"})"#,
                ),
                ("time", &at),
            ],
        )
        .await;
    let result = &body["data"]["result"];
    assert_eq!(result[0]["metric"]["http.method"], "GET", "{body}");
    assert_eq!(result[0]["value"][1], "7", "{body}");
    let names = q.get_json("/api/v1/label/__name__/values", &[]).await;
    assert!(
        names["data"]
            .as_array()
            .is_some_and(|n| n.contains(&serde_json::json!("http.server.requests"))),
        "{names}"
    );
    for path in [
        "/api/v1/label/http.method/values",
        "/api/v1/label/U__http_2e_method/values",
    ] {
        let values = q.get_json(path, &[]).await;
        assert_eq!(
            values["data"],
            serde_json::json!(["GET"]),
            "{path}: {values}"
        );
    }
    let rows = q
        .rows(r#"SELECT "http.method", value FROM "http.server.requests""#)
        .await;
    assert_eq!(rows, vec![vec!["GET".into(), serde_json::json!(7.0)]]);
    let federated = q
        .client
        .get(q.url("/federate"))
        .query(&[("match[]", r#"{"http.server.requests"}"#)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        federated.contains(r#"http_server_requests{_lives="yes",http_method="GET"} 7 "#),
        "{federated}"
    );
}

#[tokio::test]
async fn duplicates_keep_one_value_and_staleness_markers_survive() {
    let q = Quiver::start(&config_without_scrapes("  out_of_order_time_window: 10m")).await;
    let t = now_ms();
    let labels = [("__name__", "g"), ("job", "x")];
    let stale = f64::from_bits(quiver::model::STALE_NAN_BITS);
    for samples in [
        vec![(t, 1.0), (t + 2000, 3.0)],
        vec![(t, 1.0), (t + 1000, 2.0)],
        vec![(t + 3000, stale)],
    ] {
        let (status, body) = q
            .remote_write(&write_request(vec![series(&labels, &samples)]))
            .await;
        assert_eq!(status, 204, "{body}");
    }
    let rows = q.rows("SELECT value FROM g ORDER BY timestamp").await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(
        rows[1][0],
        serde_json::json!(2.0),
        "out-of-order sample inside the window is kept"
    );
    // The staleness marker's exact bits are kept: Arrow IPC gives us the raw f64.
    let r = q
        .client
        .get(q.url("/api/v1/sql"))
        .query(&[
            (
                "query",
                "SELECT value FROM g ORDER BY timestamp DESC LIMIT 1",
            ),
            ("format", "arrow"),
        ])
        .send()
        .await
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
    let batch = reader.into_iter().next().unwrap().unwrap();
    let values = batch
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap();
    assert_eq!(values.value(0).to_bits(), quiver::model::STALE_NAN_BITS);
}

#[tokio::test]
async fn a_mixed_request_stores_its_valid_samples_and_names_what_it_dropped() {
    let q = Quiver::start(&config_without_scrapes("  out_of_order_time_window: 0s")).await;
    let t = now_ms();
    let a = [("__name__", "m"), ("s", "a")];
    assert_eq!(
        q.remote_write(&write_request(vec![series(&a, &[(t, 1.0)])]))
            .await
            .0,
        204
    );
    // A good new series, a too-old sample and a good one of `a`, and a series with an
    // invalid (empty) label name: the valid samples are stored, the others dropped and
    // named.
    let b = [("__name__", "m"), ("s", "b")];
    let (status, body) = q
        .remote_write(&write_request(vec![
            series(&b, &[(t, 1.0), (t + 1000, 2.0)]),
            series(&a, &[(t - 60_000, 0.5)]),
            series(&[("__name__", "m"), ("", "x")], &[(t, 1.0), (t + 1, 2.0)]),
            series(&a, &[(t + 1000, 3.0)]),
        ]))
        .await;
    assert_eq!(status, 400, "{body}");
    for needle in [
        "stored 3 samples",
        "dropped 2 samples of 1 series with invalid labels",
        "timeseries[2]",
        "dropped 1 out-of-order and 0 out-of-bounds samples",
    ] {
        assert!(body.contains(needle), "{needle}: {body}");
    }
    assert_eq!(
        count(&q).await,
        4.0,
        "the first sample and the 3 valid ones"
    );
    let metrics = q.metrics_text().await;
    for (reason, want) in [("out_of_order", 1), ("invalid_labels", 2)] {
        let line = format!("quiver_tsdb_samples_rejected_total{{reason=\"{reason}\"}} {want}");
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
}

#[tokio::test]
async fn bad_requests_get_4xx_and_unreadable_ones_store_nothing() {
    let q = Quiver::start(&config_without_scrapes(
        "  remote_write_max_body_bytes: 4096",
    ))
    .await;
    let t = now_ms();
    let good = write_request(vec![series(&[("__name__", "ok"), ("a", "1")], &[(t, 1.0)])]);
    let proto = prost::Message::encode_to_vec(&good);
    let post = |content_type: &'static str, encoding: Option<&'static str>, body: Vec<u8>| {
        let mut r = q
            .client
            .post(q.url("/api/v1/write"))
            .header("Content-Type", content_type)
            .body(body);
        if let Some(e) = encoding {
            r = r.header("Content-Encoding", e);
        }
        r.send()
    };
    let cases: Vec<(&str, reqwest::Response, u16, &str)> = vec![
        (
            "wrong content type",
            post("application/json", Some("snappy"), snappy(&proto))
                .await
                .unwrap(),
            415,
            "Content-Type",
        ),
        (
            "wrong encoding",
            post("application/x-protobuf", Some("gzip"), snappy(&proto))
                .await
                .unwrap(),
            415,
            "Content-Encoding",
        ),
        (
            "unknown remote-write message",
            post(
                "application/x-protobuf;proto=io.prometheus.write.v3.Request",
                Some("snappy"),
                snappy(&proto),
            )
            .await
            .unwrap(),
            415,
            "io.prometheus.write.v3.Request",
        ),
        (
            "2.0 label reference outside the symbols table",
            post(
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                Some("snappy"),
                snappy(&v2_request(&["", "__name__"], &[1, 9], &[(t, 1.0)], 0)),
            )
            .await
            .unwrap(),
            400,
            "symbol reference",
        ),
        (
            "corrupt snappy",
            post(
                "application/x-protobuf",
                Some("snappy"),
                vec![0x0a, 0xff, 0xff, 0x01, 0x02],
            )
            .await
            .unwrap(),
            400,
            "snappy",
        ),
        (
            "not protobuf",
            post(
                "application/x-protobuf",
                Some("snappy"),
                snappy(b"\xff\xff\xff\xff garbage"),
            )
            .await
            .unwrap(),
            400,
            "protobuf",
        ),
        (
            "label value not UTF-8",
            post("application/x-protobuf", Some("snappy"), {
                let request =
                    write_request(vec![series(&[("__name__", "ok"), ("a", "Z")], &[(t, 1.0)])]);
                let mut raw = prost::Message::encode_to_vec(&request);
                let at = raw.iter().position(|b| *b == b'Z').unwrap();
                raw[at] = 0xff;
                snappy(&raw)
            })
            .await
            .unwrap(),
            400,
            "UTF-8",
        ),
        (
            "oversized",
            post("application/x-protobuf", Some("snappy"), vec![0u8; 10_000])
                .await
                .unwrap(),
            413,
            "limit",
        ),
    ];
    for (name, response, want, needle) in cases {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!(status, want, "{name}: {body}");
        assert!(body.contains(needle), "{name}: {body}");
        assert!(body.contains("\"status\":\"error\""), "{name}: {body}");
    }
    let label_cases = vec![
        (
            "invalid label name",
            vec![series(&[("__name__", "ok"), ("", "x")], &[(t, 1.0)])],
            "invalid label name",
        ),
        (
            "empty label set",
            vec![series(&[], &[(t, 1.0)])],
            "empty label set",
        ),
        (
            "no metric name",
            vec![series(&[("job", "x")], &[(t, 1.0)])],
            "metric name",
        ),
        (
            "empty metric name",
            vec![series(&[("__name__", ""), ("job", "x")], &[(t, 1.0)])],
            "metric name",
        ),
        (
            "duplicate label",
            vec![series(
                &[("__name__", "ok"), ("a", "1"), ("a", "2")],
                &[(t, 1.0)],
            )],
            "duplicate",
        ),
    ];
    let (status, _) = q.sql_raw("SELECT count(*) FROM ok").await;
    assert_eq!(status, 400, "table ok must not exist: nothing was stored");
    for (name, mut timeseries, needle) in label_cases {
        // A good series rides along: it is stored, the bad one named in the 400.
        timeseries.insert(0, series(&[("__name__", "ok"), ("a", "2")], &[(t, 1.0)]));
        let (status, body) = q.remote_write(&write_request(timeseries)).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.contains(needle), "{name}: {body}");
        assert!(body.contains("stored 1 samples"), "{name}: {body}");
    }
    assert_eq!(
        q.remote_write(&good).await.0,
        204,
        "the server still accepts good data"
    );
    assert_eq!(
        count(&q).await,
        2.0,
        "the good series and the one that rode along"
    );
}

/// Posts `body` as a remote-write 2.0 request, as Prometheus 3.x sends one.
pub(crate) fn post_v2(
    q: &Quiver,
    body: Vec<u8>,
) -> impl Future<Output = reqwest::Result<reqwest::Response>> {
    q.client
        .post(q.url("/api/v1/write"))
        .header(
            "Content-Type",
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        )
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "2.0.0")
        .body(snappy(&body))
        .send()
}

/// The answer's `X-Prometheus-Remote-Write-{what}-Written` count ("missing" without one).
pub(crate) fn written(r: &reqwest::Response, what: &str) -> String {
    r.headers()
        .get(format!("x-prometheus-remote-write-{what}-written"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("missing")
        .to_string()
}

/// A remote-write 2.0 request with one series, encoded field by field as the
/// specification's proto lays it out: symbols (4), then the series (5) with its label
/// references (1), samples (2) and `created_timestamp` (6).
fn v2_request(
    symbols: &[&str],
    label_refs: &[u32],
    samples: &[(i64, f64)],
    created_ms: i64,
) -> Vec<u8> {
    v2_request_with_exemplars(symbols, label_refs, samples, created_ms, &[])
}

/// [`v2_request`] with exemplars (4): label references, value, timestamp.
fn v2_request_with_exemplars(
    symbols: &[&str],
    label_refs: &[u32],
    samples: &[(i64, f64)],
    created_ms: i64,
    exemplars: &[(&[u32], f64, i64)],
) -> Vec<u8> {
    use prost::encoding::{bytes, double, int64, string, uint32};
    let mut series = Vec::new();
    uint32::encode_packed(1, label_refs, &mut series);
    for (t, v) in samples {
        let mut sample = Vec::new();
        double::encode(1, v, &mut sample);
        int64::encode(2, t, &mut sample);
        bytes::encode(2, &sample, &mut series);
    }
    for (refs, v, t) in exemplars {
        let mut exemplar = Vec::new();
        uint32::encode_packed(1, refs, &mut exemplar);
        double::encode(2, v, &mut exemplar);
        int64::encode(3, t, &mut exemplar);
        bytes::encode(4, &exemplar, &mut series);
    }
    int64::encode(6, &created_ms, &mut series);
    let mut out = Vec::new();
    let symbols: Vec<String> = symbols.iter().map(|s| s.to_string()).collect();
    string::encode_repeated(4, &symbols, &mut out);
    bytes::encode(5, &series, &mut out);
    out
}

/// Remote write 2.0: labels through the symbols table, the created timestamp as the
/// samples' start timestamp, the written-counts headers; a 1.0 body sent as 2.0 reads as an
/// empty request, as the specification intends. (Native histograms: `histograms.rs`.)
#[tokio::test]
async fn remote_write_2_0_requests() {
    let q = Quiver::start(&config_without_scrapes("")).await;
    let t = now_ms() - 60_000;
    let post = |body: Vec<u8>| post_v2(&q, body);
    let symbols = ["", "__name__", "rw2_total", "job", "api"];
    let r = post(v2_request(
        &symbols,
        &[1, 2, 3, 4],
        &[(t, 5.0), (t + 15_000, 7.0)],
        t - 30_000,
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        [
            written(&r, "samples"),
            written(&r, "histograms"),
            written(&r, "exemplars")
        ],
        ["2", "0", "0"]
    );
    let rows = q
        .rows("SELECT job, CAST(timestamp AS BIGINT), value FROM rw2_total ORDER BY 2")
        .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0][0].as_str(), rows[1][2].as_f64()),
        (Some("api"), Some(7.0))
    );
    // The created timestamp is the start timestamp the samples carry.
    let at = ((t + 15_000) / 1000).to_string();
    let start = q
        .get_json(
            "/api/v1/query",
            &[("query", "start_timestamp(rw2_total)"), ("time", &at)],
        )
        .await;
    let value = start["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or("");
    assert_eq!(
        value.parse::<f64>().ok(),
        Some((t - 30_000) as f64 / 1000.0),
        "{start}"
    );

    // A 1.0 body under the 2.0 Content-Type: its fields are reserved in 2.0, so it reads
    // as a request with nothing in it.
    let v1 = write_request(vec![series(&[("__name__", "rw1_as_2")], &[(t, 1.0)])]);
    let r = post(prost::Message::encode_to_vec(&v1)).await.unwrap();
    assert_eq!(
        (r.status().as_u16(), written(&r, "samples")),
        (204, "0".to_string())
    );
}

/// Exemplars sent with remote write 2.0 come back from `/api/v1/query_exemplars` in
/// Prometheus's shape, selected by the query's selectors and the time range; an exemplar
/// older than its series' newest is not written.
#[tokio::test]
async fn exemplars_arrive_with_remote_write_and_are_queried() {
    let q = Quiver::start(&config_without_scrapes("")).await;
    let t = now_ms() - 60_000;
    let symbols = [
        "",
        "__name__",
        "rw2_requests_total",
        "job",
        "api",
        "trace_id",
        "4bf92f3577b34da6",
    ];
    // (sample time, exemplar time, exemplar value)
    let post = |(sample, at, value): (i64, i64, f64)| {
        let body = v2_request_with_exemplars(
            &symbols,
            &[1, 2, 3, 4],
            &[(sample, 3.0)],
            0,
            &[(&[5, 6], value, at)],
        );
        post_v2(&q, body)
    };
    let exemplars_written = |r: &reqwest::Response| written(r, "exemplars");
    let r = post((t, t, 0.25)).await.unwrap();
    assert_eq!(
        (r.status().as_u16(), exemplars_written(&r)),
        (204, "1".to_string())
    );
    // Older than the series' newest exemplar: the sample is stored, the exemplar is not.
    let r = post((t + 15_000, t - 30_000, 0.5)).await.unwrap();
    assert_eq!(
        (r.status().as_u16(), exemplars_written(&r)),
        (204, "0".to_string())
    );

    let range = |query: &str| {
        let (start, end) = (
            ((t - 60_000) / 1000).to_string(),
            ((t + 60_000) / 1000).to_string(),
        );
        let query = query.to_string();
        let q = &q;
        async move {
            q.get_json(
                "/api/v1/query_exemplars",
                &[("query", query.as_str()), ("start", &start), ("end", &end)],
            )
            .await
        }
    };
    let body = range("sum(rate(rw2_requests_total{job=\"api\"}[5m]))").await;
    assert_eq!(body["status"], "success", "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{body}");
    assert_eq!(
        data[0]["seriesLabels"],
        serde_json::json!({"__name__": "rw2_requests_total", "job": "api"})
    );
    let exemplar = &data[0]["exemplars"][0];
    assert_eq!(
        exemplar["labels"],
        serde_json::json!({"trace_id": "4bf92f3577b34da6"})
    );
    assert_eq!(exemplar["value"], "0.25");
    assert_eq!(exemplar["timestamp"].as_f64(), Some(t as f64 / 1000.0));
    assert_eq!(data[0]["exemplars"].as_array().map(Vec::len), Some(1));
    // Other series, and a bad query.
    let none = range("rw2_requests_total{job=\"db\"}").await;
    assert_eq!(none["data"], serde_json::json!([]), "{none}");
    let bad = range("rate(").await;
    assert_eq!(bad["errorType"], "bad_data", "{bad}");
}
