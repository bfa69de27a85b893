//! SQL over HTTP: tables, formats, errors, the read-only guard and the limits.

use serde_json::{Value, json};

use crate::common::*;

async fn seeded(storage_and_query: &str) -> Quiver {
    let q = Quiver::start(&format!(
        "global:\n  scrape_interval: 15s\n{storage_and_query}\n"
    ))
    .await;
    let t = now_ms() - 60_000;
    let mut batch = Vec::new();
    for (i, host) in ["web-1", "web-2", "db-1"].iter().enumerate() {
        let samples: Vec<(i64, f64)> = (0..10)
            .map(|k| (t + k * 1000, (i * 10) as f64 + k as f64))
            .collect();
        batch.push(series(
            &[
                ("__name__", "node_load1"),
                ("instance", host),
                ("job", "node"),
            ],
            &samples,
        ));
        batch.push(series(
            &[("__name__", "up"), ("instance", host), ("job", "node")],
            &[(t, 1.0)],
        ));
    }
    assert_eq!(q.remote_write(&write_request(batch)).await.0, 204);
    q
}

#[tokio::test]
async fn metric_tables_samples_series_and_information_schema() {
    let q = seeded("").await;
    let rows = q
        .rows("SELECT instance, avg(value) AS a FROM node_load1 WHERE timestamp > now() - interval '1 hour' GROUP BY instance ORDER BY instance")
        .await;
    assert_eq!(
        rows,
        vec![
            vec![json!("db-1"), json!(24.5)],
            vec![json!("web-1"), json!(4.5)],
            vec![json!("web-2"), json!(14.5)]
        ]
    );
    let by_metric = q
        .rows("SELECT metric, count(*) FROM samples WHERE labels['instance'] = 'web-2' GROUP BY metric ORDER BY metric")
        .await;
    assert_eq!(
        by_metric,
        vec![
            vec![json!("node_load1"), json!(10)],
            vec![json!("up"), json!(1)]
        ]
    );
    assert_eq!(q.scalar("SELECT count(*) FROM series").await, 6.0);
    let columns = q
        .rows("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'node_load1' ORDER BY ordinal_position")
        .await;
    assert_eq!(
        columns,
        vec![
            vec![json!("instance"), json!("text")],
            vec![json!("job"), json!("text")],
            vec![json!("timestamp"), json!("timestamp with time zone")],
            vec![json!("value"), json!("double precision")],
        ]
    );
    let tables = q.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1").await;
    assert_eq!(
        tables,
        vec![
            vec![json!("node_load1")],
            vec![json!("samples")],
            vec![json!("series")],
            vec![json!("up")]
        ]
    );
}

#[tokio::test]
async fn csv_arrow_and_accept_header() {
    let q = seeded("").await;
    let get = |params: Vec<(&'static str, &'static str)>, accept: Option<&'static str>| {
        let mut r = q.client.get(q.url("/api/v1/sql")).query(&params);
        if let Some(a) = accept {
            r = r.header("Accept", a);
        }
        r.send()
    };
    let query = "SELECT instance, value FROM node_load1 WHERE value >= 29 ORDER BY instance";
    let csv = get(vec![("query", query), ("format", "csv")], None)
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(csv.text().await.unwrap(), "instance,value\ndb-1,29.0\n");
    let via_accept = get(vec![("query", query)], Some("text/csv"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(via_accept.starts_with("instance,value\n"));
    let arrow = get(
        vec![("query", query)],
        Some("application/vnd.apache.arrow.stream"),
    )
    .await
    .unwrap();
    assert_eq!(
        arrow.headers()["content-type"],
        "application/vnd.apache.arrow.stream"
    );
    let bytes = arrow.bytes().await.unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 1);
    // Zero rows still describe the columns.
    let empty = q.sql("SELECT instance FROM node_load1 WHERE false").await;
    assert_eq!(empty["data"]["columns"][0]["name"], json!("instance"));
    assert_eq!(empty["data"]["rows"], json!([]));
    // A plain-text body is the statement.
    let text = q
        .client
        .post(q.url("/api/v1/sql"))
        .header("Content-Type", "text/plain")
        .body("SELECT count(*) FROM up")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(text["data"]["rows"][0][0], json!(3));
}

#[tokio::test]
async fn errors_and_the_read_only_guard() {
    let q = seeded("").await;
    let refused = [
        "DROP TABLE up",
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO up VALUES ('a', 'b', now(), 1)",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "COPY (SELECT 1) TO '/tmp/quiver-should-not-exist.csv'",
        "SET datafusion.execution.batch_size = 1",
        "CREATE VIEW v AS SELECT 1",
    ];
    for statement in refused {
        let (status, body) = q.sql_raw(statement).await;
        assert_eq!(status, 400, "{statement}: {body}");
        assert_eq!(body["errorType"], json!("bad_data"), "{statement}");
        assert!(
            body["error"].as_str().unwrap().contains("read-only"),
            "{statement}: {body}"
        );
    }
    assert!(!std::path::Path::new("/tmp/quiver-should-not-exist.csv").exists());
    for (statement, needle) in [
        ("SELEKT 1", "SELEKT"),
        ("SELECT * FROM no_such_metric", "no_such_metric"),
        ("SELECT nope FROM up", "nope"),
    ] {
        let (status, body) = q.sql_raw(statement).await;
        assert_eq!(status, 400, "{statement}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{statement}: {body}"
        );
    }
    let missing = q.client.get(q.url("/api/v1/sql")).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 400);
    let bad_format = q
        .client
        .get(q.url("/api/v1/sql"))
        .query(&[("query", "SELECT 1"), ("format", "xml")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_format.status().as_u16(), 400);
}

#[tokio::test]
async fn limits_fail_cleanly_and_the_server_keeps_serving() {
    let q =
        seeded("query:\n  max_result_rows: 5\n  memory_limit_bytes: 200000\n  timeout: 2s").await;
    let (status, body) = q.sql_raw("SELECT * FROM node_load1").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("limit of 5 rows"),
        "{body}"
    );

    // A sort of a large cross join needs far more than 200 kB.
    let heavy = "SELECT a.value, b.value, c.value FROM node_load1 a, node_load1 b, node_load1 c ORDER BY 1, 2, 3 LIMIT 1";
    let (status, body) = q.sql_raw(heavy).await;
    assert!(status == 422 || status == 503, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("memory") || message.contains("timed out"),
        "{body}"
    );

    // A query that outlives the timeout.
    let slow = "SELECT count(*) FROM node_load1 a, node_load1 b, node_load1 c, node_load1 d, node_load1 e, node_load1 f";
    let (status, body) = q.sql_raw(slow).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["errorType"], json!("timeout"));

    assert_eq!(q.scalar("SELECT count(*) FROM up").await, 3.0);
}

/// Functions that build far more than they read (a 2 GB `repeat`, a billion-element
/// `range`) fail as a query over its memory limit does, before they allocate: the server's
/// memory stays where it was and it goes on answering.
#[tokio::test]
async fn functions_that_would_build_gigabytes_fail_before_allocating() {
    let q = seeded("query:\n  memory_limit_bytes: 100000000").await;
    let before = q.rss_bytes();
    for sql in [
        "SELECT length(repeat('x', 2000000000))",
        "SELECT length(lpad(instance, 2000000000, '*')) FROM up",
        "SELECT length(replace(repeat('a', 1000000), 'a', repeat('b', 1000))) FROM up",
        "SELECT cardinality(array_repeat(value, 1000000000)) FROM node_load1",
        "SELECT cardinality(generate_series(1, 2000000000))",
        "SELECT count(*) FROM node_load1 WHERE length(repeat(instance, 100000000)) > 0",
    ] {
        let (status, body) = q.sql_raw(sql).await;
        assert_eq!(status, 422, "{sql}: {body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.contains("memory limit"), "{sql}: {body}");
    }
    let grown = q.rss_bytes().saturating_sub(before);
    assert!(grown < 200 << 20, "RSS grew by {grown} bytes");
    // Within the limit they work.
    assert_eq!(
        q.scalar("SELECT length(repeat(instance, 1000)) FROM up WHERE instance = 'db-1'")
            .await,
        4000.0
    );
}

/// Labels named like the columns a metric table uses inside its plan still work.
#[tokio::test]
async fn labels_named_series_id_timestamp_and_value() {
    let q = Quiver::start("global:\n  scrape_interval: 15s\n").await;
    let t = now_ms() - 10_000;
    let labels = [
        ("__name__", "odd_labels"),
        ("series_id", "7"),
        ("timestamp", "x"),
        ("value", "y"),
    ];
    let request = write_request(vec![series(&labels, &[(t, 3.0)])]);
    assert_eq!(q.remote_write(&request).await.0, 204);
    let rows = q.rows("SELECT * FROM odd_labels").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let columns = q
        .rows("SELECT column_name FROM information_schema.columns WHERE table_name = 'odd_labels' ORDER BY ordinal_position")
        .await;
    assert_eq!(
        columns,
        vec![
            vec![json!("series_id")],
            vec![json!("label_timestamp")],
            vec![json!("label_value")],
            vec![json!("timestamp")],
            vec![json!("value")]
        ]
    );
    assert_eq!(
        q.scalar("SELECT sum(value) FROM odd_labels WHERE series_id = '7'")
            .await,
        3.0
    );
}

/// The label set (without `__name__`) and value of each PromQL result series.
fn promql_answer(body: &Value) -> Vec<(Vec<(String, String)>, f64)> {
    let mut out: Vec<_> = body["data"]["result"]
        .as_array()
        .expect("a vector result")
        .iter()
        .map(|s| {
            let mut labels: Vec<(String, String)> = s["metric"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            labels.sort();
            let value: f64 = s["value"][1].as_str().unwrap().parse().unwrap();
            (labels, value)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The same shape from a SQL answer: every column but `value` is a label; NULL and '' are
/// absent labels, as in PromQL.
fn sql_answer(body: &Value) -> Vec<(Vec<(String, String)>, f64)> {
    let columns: Vec<String> = body["data"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    let mut out: Vec<_> = body["data"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let mut labels = Vec::new();
            let mut value = f64::NAN;
            for (name, cell) in columns.iter().zip(row.as_array().unwrap()) {
                if name == "value" {
                    value = cell.as_f64().unwrap_or(f64::NAN);
                } else if let Some(v) = cell.as_str().filter(|v| !v.is_empty()) {
                    labels.push((name.clone(), v.to_string()));
                }
            }
            labels.sort();
            (labels, value)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn explain_sql_gives_the_promql_answer() {
    let q = Quiver::start(&config_without_scrapes("  backend: local")).await;
    let t0 = now_ms() - 20 * 60_000;
    let mut batch = Vec::new();
    for (i, (instance, job)) in [("a", "api"), ("b", "api"), ("c", "db")].iter().enumerate() {
        // A counter with a reset, a gauge, and a series that ends early.
        let counter: Vec<(i64, f64)> = (0..80)
            .map(|k| {
                (
                    t0 + k * 15_000 + 7,
                    if k == 40 {
                        3.0
                    } else {
                        (k * (i as i64 + 1)) as f64
                    },
                )
            })
            .collect();
        batch.push(series(
            &[
                ("__name__", "http_requests_total"),
                ("instance", instance),
                ("job", job),
            ],
            &counter,
        ));
        let gauge: Vec<(i64, f64)> = (0..80)
            .map(|k| {
                (
                    t0 + k * 15_000 + 3,
                    ((k as f64) / 7.0 + i as f64).sin() * 10.0,
                )
            })
            .collect();
        batch.push(series(
            &[
                ("__name__", "temperature"),
                ("instance", instance),
                ("job", job),
            ],
            &gauge,
        ));
    }
    assert_eq!(q.remote_write(&write_request(batch)).await.0, 204);
    let time = ((t0 + 19 * 60_000) as f64 / 1000.0).to_string();
    let queries = [
        "http_requests_total",
        r#"temperature{job="api"}"#,
        r#"temperature{instance=~"a|c"} offset 2m"#,
        "rate(http_requests_total[5m])",
        "increase(http_requests_total[10m])",
        "sum by (job) (rate(http_requests_total[5m]))",
        "max without (instance) (temperature)",
        "avg_over_time(temperature[3m])",
        "quantile_over_time(0.9, temperature[10m])",
        "count(temperature > 0)",
        "temperature * 2 + 1",
        "abs(temperature) >= bool 5",
        "rate(http_requests_total[5m]) / rate(http_requests_total[10m])",
        "stddev(deriv(temperature[5m]))",
    ];
    for query in queries {
        let params = [("query", query), ("time", time.as_str())];
        let promql = q.get_json("/api/v1/query", &params).await;
        let explained = q.get_json("/api/v1/explain", &params).await;
        let sql = explained["data"]["sql"]
            .as_str()
            .unwrap_or_else(|| panic!("{query}: no SQL: {explained}"));
        let want = promql_answer(&promql);
        let got = sql_answer(&q.sql(sql).await);
        assert!(!want.is_empty(), "{query}: empty PromQL answer");
        assert_eq!(
            want.iter().map(|w| &w.0).collect::<Vec<_>>(),
            got.iter().map(|g| &g.0).collect::<Vec<_>>(),
            "{query}: label sets differ\nSQL: {sql}"
        );
        for ((labels, w), (_, g)) in want.iter().zip(&got) {
            assert!(
                (w - g).abs() <= 1e-9 * w.abs().max(1.0),
                "{query} {labels:?}: PromQL {w} vs SQL {g}\nSQL: {sql}"
            );
        }
    }
    let unavailable = q.get_json("/api/v1/explain", &[("query", "a and b")]).await;
    assert!(unavailable["data"]["sql"].is_null());
    assert!(
        unavailable["data"]["sqlUnavailable"]
            .as_str()
            .unwrap()
            .contains("and between vectors")
    );
}
