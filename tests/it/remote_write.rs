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
    // invalid label name: the valid samples are stored, the others dropped and named.
    let b = [("__name__", "m"), ("s", "b")];
    let (status, body) = q
        .remote_write(&write_request(vec![
            series(&b, &[(t, 1.0), (t + 1000, 2.0)]),
            series(&a, &[(t - 60_000, 0.5)]),
            series(
                &[("__name__", "m"), ("bad-name", "x")],
                &[(t, 1.0), (t + 1, 2.0)],
            ),
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
            "remote write 2.0",
            post(
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                Some("snappy"),
                snappy(&proto),
            )
            .await
            .unwrap(),
            415,
            "2.0",
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
            vec![series(
                &[("__name__", "ok"), ("bad-name", "x")],
                &[(t, 1.0)],
            )],
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
            "invalid metric name",
            vec![series(&[("__name__", "1abc")], &[(t, 1.0)])],
            "invalid metric name",
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
