//! HTTP conventions: gzip when asked, CORS, the query helpers and status endpoints, and
//! Prometheus's error envelope and status codes for bad queries.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn gzip_cors_helpers_and_errors() {
    let q = Quiver::start(&config_without_scrapes("  backend: local")).await;
    let t = now_ms();
    let s = series(&[("__name__", "http_test"), ("job", "x")], &[(t, 1.0)]);
    assert_eq!(q.remote_write(&write_request(vec![s])).await.0, 204);

    // gzip only when the client asks for it (reqwest here has gzip decoding off).
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let r = raw
        .get(q.url("/api/v1/label/__name__/values"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    let r = raw
        .get(q.url("/api/v1/label/__name__/values"))
        .header("Accept-Encoding", "zstd, br")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers().get("content-encoding").is_none(),
        "never zstd or br"
    );

    // CORS: the default origin pattern allows any origin.
    let r = raw
        .get(q.url("/api/v1/query?query=1"))
        .header("Origin", "https://grafana.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://grafana.example"
    );

    let body: Value = q
        .client
        .get(q.url("/api/v1/format_query?query=sum(rate(x[5m]))by(job)"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"], "sum by (job) (rate(x[5m]))");
    let body: Value = q
        .client
        .get(q.url("/api/v1/parse_query?query=up%7Bjob%3D%22x%22%7D"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["type"], "vectorSelector", "{body}");

    for path in [
        "/api/v1/status/buildinfo",
        "/api/v1/status/runtimeinfo",
        "/api/v1/status/flags",
        "/api/v1/status/config",
        "/api/v1/status/tsdb",
        "/api/v1/status/walreplay",
        "/api/v1/scrape_pools",
        "/api/v1/alertmanagers",
    ] {
        let body: Value = q
            .client
            .get(q.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["status"], "success", "{path}: {body}");
    }
    let tsdb: Value = q
        .client
        .get(q.url("/api/v1/status/tsdb"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tsdb["data"]["headStats"]["numSeries"], 1);
    assert_eq!(
        tsdb["data"]["seriesCountByMetricName"][0]["name"],
        "http_test"
    );

    // Errors: Prometheus's status codes and errorTypes.
    let cases = [
        ("/api/v1/query?query=sum(", 400, "bad_data"),
        ("/api/v1/query?query=up&time=yesterday", 400, "bad_data"),
        (
            "/api/v1/query_range?query=up&start=10&end=5&step=1",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=100000&step=1",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=10&step=0",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=up[5m]&start=0&end=10&step=1",
            400,
            "bad_data",
        ),
        ("/api/v1/series", 400, "bad_data"),
        ("/api/v1/series?match[]=sum(up)", 400, "bad_data"),
    ];
    for (path, status, error_type) in cases {
        let r = q.client.get(q.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "error", "{path}");
        assert_eq!(body["errorType"], error_type, "{path}: {body}");
    }
    // Any UTF-8 label name is one in Prometheus 3.x, and a `U__` name that does not decode
    // is taken as written: no values, not an error.
    for path in [
        "/api/v1/label/in-valid/values",
        "/api/v1/label/U__a_zz_/values",
    ] {
        let body = q.get_json(path, &[]).await;
        assert_eq!(body["status"], "success", "{path}: {body}");
        assert_eq!(body["data"], serde_json::json!([]), "{path}: {body}");
    }
}

#[tokio::test]
async fn max_samples_limit_gives_prometheus_error() {
    let q = Quiver::start(
        "global:\n  scrape_interval: 15s\nquery:\n  max_samples: 5\n  max_concurrency: 1\n",
    )
    .await;
    let t = now_ms() - 60_000;
    let samples: Vec<(i64, f64)> = (0..10).map(|i| (t + i * 1000, i as f64)).collect();
    let s = series(&[("__name__", "many"), ("job", "x")], &samples);
    assert_eq!(q.remote_write(&write_request(vec![s])).await.0, 204);
    let r = q
        .client
        .get(q.url("/api/v1/query?query=sum_over_time(many[5m])"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errorType"], "execution");
    assert_eq!(
        body["error"],
        "query processing would load too many samples into memory in query execution"
    );
    // Within the limit, and one at a time with max_concurrency 1, queries still run.
    let queries = (0..4).map(|_| {
        q.client
            .get(q.url("/api/v1/query?query=count(many)"))
            .send()
    });
    for r in futures::future::join_all(queries).await {
        assert_eq!(r.unwrap().status().as_u16(), 200);
    }
}

#[tokio::test]
async fn quit_stops_the_server_only_with_the_lifecycle_flag() {
    let plain = Quiver::start(&config_without_scrapes("  backend: local")).await;
    let r = plain
        .client
        .post(plain.url("/-/quit"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let mut q = Quiver::start_with_args(
        &config_without_scrapes("  backend: local"),
        &["--web.enable-lifecycle"],
    )
    .await;
    let r = q.client.post(q.url("/-/quit")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let process = q.process.as_mut().expect("running");
    let mut exited = None;
    for _ in 0..100 {
        if let Ok(Some(status)) = process.child.try_wait() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let status = exited.expect("quiver exits after /-/quit");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn explain_shows_the_plan_over_http_and_on_the_command_line() {
    let q = Quiver::start(&config_without_scrapes("  backend: local")).await;
    let body: Value = q
        .client
        .get(q.url("/api/v1/explain"))
        .query(&[("query", "sum by (job) (rate(up[5m]))")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let plan = body["data"]["plan"].as_str().unwrap();
    assert!(plan.contains("PromStep: Rate range=300000ms"), "{plan}");
    assert!(plan.contains("Aggregate"), "{plan}");
    let url = q.url("");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
            .args(["explain", "--url", &url, "rate(up[1m])"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("PromStep: Rate range=60000ms"), "{stdout}");
    assert!(stdout.contains("Equivalent SQL:"), "{stdout}");
    assert!(stdout.contains("prom_rate(timestamp, value"), "{stdout}");
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["explain", "--url", &q.url(""), "rate(up[1m]"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[tokio::test]
async fn explain_analyze_runs_the_query_and_reports_each_operator() {
    let q = Quiver::start(&config_without_scrapes("  backend: local")).await;
    let now = now_ms();
    let samples: Vec<(i64, f64)> = (0..20)
        .map(|i| (now - 600_000 + i * 30_000, i as f64))
        .collect();
    let batch = ["a", "b"]
        .iter()
        .map(|job| series(&[("__name__", "req_total"), ("job", job)], &samples))
        .collect();
    let (status, body) = q.remote_write(&write_request(batch)).await;
    assert_eq!(status, 204, "{body}");
    let end = (now / 1000).to_string();
    let start = (now / 1000 - 300).to_string();
    let body = q
        .get_json(
            "/api/v1/explain",
            &[
                ("query", "sum by (job) (rate(req_total[5m]))"),
                ("analyze", "true"),
                ("start", &start),
                ("end", &end),
                ("step", "15s"),
            ],
        )
        .await;
    let analyzed = body["data"]["analyzed"].as_str().unwrap_or_default();
    assert!(analyzed.starts_with("planning: "), "{body}");
    // 21 steps for each of the two jobs.
    assert!(analyzed.contains("\nrows: 42\n"), "{analyzed}");
    assert!(analyzed.contains("PromStepExec: Rate"), "{analyzed}");
    assert!(analyzed.contains("output_rows=42"), "{analyzed}");
    // Without analyze nothing runs; a bad step is refused as the range API refuses it.
    let plain = q
        .get_json("/api/v1/explain", &[("query", "up"), ("analyze", "false")])
        .await;
    assert!(plain["data"].get("analyzed").is_none(), "{plain}");
    let bad = q
        .client
        .get(q.url("/api/v1/explain"))
        .query(&[("query", "up"), ("analyze", "true"), ("step", "0")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
}

/// PromQL's plan nodes account what they buffer in the query memory pool: a query over far
/// more samples than `query.memory_limit_bytes` allows fails cleanly, while a small query
/// beside it answers, and the server keeps serving.
#[tokio::test]
async fn a_query_over_the_memory_limit_fails_cleanly_beside_a_small_one() {
    let q =
        Quiver::start("global:\n  scrape_interval: 15s\nquery:\n  memory_limit_bytes: 4000000\n")
            .await;
    let t = now_ms() - 3_600_000;
    // 1 000 series x 240 samples: about 5 MB of timestamps and values alone.
    for part in 0..10 {
        let batch: Vec<_> = (0..100)
            .map(|i| {
                let instance = format!("host-{:04}", part * 100 + i);
                let samples: Vec<(i64, f64)> =
                    (0..240).map(|k| (t + k * 15_000, k as f64)).collect();
                series(
                    &[("__name__", "wide"), ("instance", instance.as_str())],
                    &samples,
                )
            })
            .collect();
        assert_eq!(q.remote_write(&write_request(batch)).await.0, 204);
    }
    let small = series(&[("__name__", "small"), ("job", "x")], &[(t, 1.0)]);
    assert_eq!(q.remote_write(&write_request(vec![small])).await.0, 204);

    let at = (t / 1000) + 3_590;
    let instant = |query: &str| {
        q.client
            .get(q.url("/api/v1/query"))
            .query(&[("query", query.to_string()), ("time", at.to_string())])
            .send()
    };
    let broad = instant("count(count_over_time(wide[1h]))");
    let narrow = instant("count_over_time(small[1h])");
    let (broad, narrow) = tokio::join!(broad, narrow);
    let broad = broad.unwrap();
    assert_eq!(broad.status().as_u16(), 422);
    let body: Value = broad.json().await.unwrap();
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("Resources exhausted") && message.contains("PromStepExec"),
        "{body}"
    );
    let narrow: Value = narrow.unwrap().json().await.unwrap();
    assert_eq!(narrow["data"]["result"][0]["value"][1], "1", "{narrow}");
    // Still serving, and a query within the limit over the same series answers.
    let r: Value = instant("count(wide)").await.unwrap().json().await.unwrap();
    assert_eq!(r["data"]["result"][0]["value"][1], "1000", "{r}");
}

#[tokio::test]
async fn max_connections_holds_further_clients_until_one_closes() {
    let mut q =
        Quiver::start_with_args(&config_without_scrapes(""), &["--web.max-connections=2"]).await;
    // Clients that keep no idle connection, so only this test's raw connections hold slots
    // (dropping the start-up client closes its pooled one).
    let no_pool = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    q.client = no_pool();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Two idle connections take both slots.
    let address = format!("127.0.0.1:{}", q.port);
    let first = tokio::net::TcpStream::connect(&address).await.unwrap();
    let _second = tokio::net::TcpStream::connect(&address).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // A third client is not served while they stay open...
    let held = (no_pool().get(q.url("/-/healthy")))
        .timeout(std::time::Duration::from_millis(700))
        .send()
        .await;
    assert!(held.is_err(), "served beyond the limit: {held:?}");
    // ... and is once one of them closes.
    drop(first);
    let served = (no_pool().get(q.url("/-/healthy")))
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    let flags = q.get_json("/api/v1/status/flags", &[]).await;
    assert_eq!(flags["data"]["web.max-connections"], "2", "{flags}");
}

#[tokio::test]
async fn status_endpoints_tell_the_running_configuration_after_reloads() {
    let config = |site: &str| {
        format!("global:\n  scrape_interval: 15s\n  external_labels:\n    site: {site}\n")
    };
    let q = Quiver::start_with_args(&config("one"), &["--web.enable-lifecycle"]).await;
    let t = now_ms();
    let (status, _) = q
        .remote_write(&write_request(vec![series(
            &[("__name__", "fed_metric")],
            &[(t, 1.0)],
        )]))
        .await;
    assert_eq!(status, 204);
    let first = runtime(&q).await;
    assert_eq!(first["reloadConfigSuccess"], true, "{first}");
    assert!(config_yaml(&q).await.contains("site: one"));
    assert!(federated(&q).await.contains("site=\"one\""));

    // A good reload: the new configuration and its load time are reported, and federation
    // uses its external labels.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    q.write_config(&config("two"));
    let r = q.client.post(q.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let second = runtime(&q).await;
    assert_eq!(second["reloadConfigSuccess"], true, "{second}");
    assert_ne!(
        second["lastConfigTime"], first["lastConfigTime"],
        "{second}"
    );
    assert_eq!(second["startTime"], first["startTime"]);
    let yaml = config_yaml(&q).await;
    assert!(
        yaml.contains("site: two") && !yaml.contains("site: one"),
        "{yaml}"
    );
    let text = federated(&q).await;
    assert!(text.contains("site=\"two\""), "{text}");

    // A failed reload: reported as failed, the running configuration and its time kept.
    q.write_config("global:\n  scrape_intervall: 1s\n");
    let r = q.client.post(q.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let third = runtime(&q).await;
    assert_eq!(third["reloadConfigSuccess"], false, "{third}");
    assert_eq!(third["lastConfigTime"], second["lastConfigTime"]);
    assert!(config_yaml(&q).await.contains("site: two"));

    // The next good reload clears the failure.
    q.write_config(&config("three"));
    let r = q.client.post(q.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(runtime(&q).await["reloadConfigSuccess"], true);
}

async fn runtime(q: &Quiver) -> Value {
    q.get_json("/api/v1/status/runtimeinfo", &[]).await["data"].clone()
}

async fn config_yaml(q: &Quiver) -> String {
    q.get_json("/api/v1/status/config", &[]).await["data"]["yaml"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn federated(q: &Quiver) -> String {
    q.client
        .get(q.url("/federate"))
        .query(&[("match[]", "fed_metric")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// PromQL queries over the API are counted by kind and outcome, with their duration, for
/// the Quiver dashboard's query panels.
#[tokio::test]
async fn promql_queries_are_counted_by_kind_and_outcome() {
    let q = Quiver::start(&config_without_scrapes("  block_duration: 2h")).await;
    let now = (now_ms() / 1000).to_string();
    let ok = q.get_json("/api/v1/query", &[("query", "vector(1)")]).await;
    assert_eq!(ok["status"], "success");
    let bad = q.get_json("/api/v1/query", &[("query", "sum(")]).await;
    assert_eq!(bad["status"], "error");
    let range = q
        .get_json(
            "/api/v1/query_range",
            &[
                ("query", "vector(2)"),
                ("start", &now),
                ("end", &now),
                ("step", "15"),
            ],
        )
        .await;
    assert_eq!(range["status"], "success");
    let text = q.metrics_text().await;
    for line in [
        "quiver_promql_queries_total{kind=\"instant\",outcome=\"success\"} 1",
        "quiver_promql_queries_total{kind=\"instant\",outcome=\"error\"} 1",
        "quiver_promql_queries_total{kind=\"range\",outcome=\"success\"} 1",
        "quiver_promql_query_duration_seconds_count 3",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}

/// Reads from `stream` until the server closes it; how long that took (None: still open
/// after `limit`).
async fn closed_after(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off_by_the_read_timeout() {
    use tokio::io::AsyncWriteExt;
    let q = Quiver::start_with_args(
        &config_without_scrapes(""),
        &["--web.read-timeout=2s", "--web.max-connections=3"],
    )
    .await;
    let address = format!("127.0.0.1:{}", q.port);
    let limit = Duration::from_secs(8);

    // Headers dripped a byte at a time (slowloris): cut once the headers took 2 s.
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: q\r\n")
        .await
        .unwrap();
    let drip = tokio::spawn(async move {
        for _ in 0..40 {
            if slow.write_all(b"X").await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    });
    // An idle keep-alive connection after one request: closed after 2 s idle.
    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: q\r\n\r\n")
        .await
        .unwrap();
    let idle_for = closed_after(&mut idle, limit).await;
    // A body that stops arriving: the request fails and the connection closes.
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    stalled
        .write_all(b"POST /api/v1/write HTTP/1.1\r\nHost: q\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: 1000\r\n\r\n0123456789")
        .await
        .unwrap();
    let stalled_for = closed_after(&mut stalled, limit).await;
    assert!(drip.await.unwrap(), "the dripping client was never cut off");
    for (what, took) in [("idle", idle_for), ("stalled body", stalled_for)] {
        let took = took.unwrap_or_else(|| panic!("{what} connection still open after {limit:?}"));
        assert!(
            took >= Duration::from_millis(1500),
            "{what} connection closed after only {took:?}"
        );
    }
    // The slots are free again: ordinary requests are served.
    let flags = q.get_json("/api/v1/status/flags", &[]).await;
    assert_eq!(flags["data"]["web.read-timeout"], "2s", "{flags}");
}
