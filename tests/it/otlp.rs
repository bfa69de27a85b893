//! OpenTelemetry metrics over OTLP/HTTP: the official Python SDK (tests/it/otlp_sender.py)
//! sends counters, up-down counters, gauges, explicit and exponential histograms to Quiver,
//! and PromQL, SQL and the exemplar API answer what was sent, named as Prometheus 3.x names
//! it (the exponential histogram as a native histogram, read by SQL). OTLP/JSON, the `otlp:` configuration, delta temporality, the receiver flag and bad
//! payloads (400/415, nothing stored) are checked directly.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Quiver, eventually, now_ms};

const FLAG: &str = "--web.enable-otlp-receiver";

async fn start(config: &str) -> Quiver {
    Quiver::start_with_args(config, &[FLAG]).await
}

/// The one value of an instant query, if it has exactly one series.
async fn value(q: &Quiver, query: &str) -> Option<f64> {
    let body = q.get_json("/api/v1/query", &[("query", query)]).await;
    let result = body["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str()?.parse().ok()
}

fn send(q: &Quiver, mode: &str) -> String {
    let python = std::env::var("QUIVER_TOOLS_VENV")
        .map(|venv| format!("{venv}/bin/python"))
        .unwrap_or_else(|_| "python3".to_owned());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/otlp_sender.py");
    let out = Command::new("timeout")
        .arg("120")
        .arg(python)
        .arg(script)
        .arg(q.url("/api/v1/otlp/v1/metrics"))
        .arg(mode)
        .output()
        .expect("running the OpenTelemetry sender");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sender failed:\n{text}\n{}", q.log());
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opentelemetry_python_sdk_sends_and_promql_and_sql_answer() {
    let q = start("global:\n  scrape_interval: 15s\n").await;
    let printed = send(&q, "cumulative");
    let trace_id = printed
        .lines()
        .find_map(|l| l.strip_prefix("trace_id="))
        .expect("the sender prints the exemplar's trace id")
        .trim()
        .to_owned();
    let sel = r#"job="shop/checkout",instance="pod-1""#;
    let expect = [
        (format!("orders_placed_total{{{sel},region=\"eu\"}}"), 5.0),
        (format!("orders_placed_total{{{sel},region=\"us\"}}"), 3.0),
        (format!("queue_items{{{sel}}}"), 6.0),
        (
            format!("room_temperature_celsius{{{sel},room=\"lab\"}}"),
            21.5,
        ),
        (format!("cpu_utilization_ratio{{{sel}}}"), 0.25),
        (
            format!("http_server_duration_seconds_bucket{{{sel},route=\"/pay\",le=\"0.1\"}}"),
            1.0,
        ),
        (
            format!("http_server_duration_seconds_bucket{{{sel},route=\"/pay\",le=\"1\"}}"),
            2.0,
        ),
        (
            format!("http_server_duration_seconds_bucket{{{sel},route=\"/pay\",le=\"10\"}}"),
            3.0,
        ),
        (
            format!("http_server_duration_seconds_bucket{{{sel},route=\"/pay\",le=\"+Inf\"}}"),
            3.0,
        ),
        (
            format!("http_server_duration_seconds_sum{{{sel},route=\"/pay\"}}"),
            5.55,
        ),
        (
            format!("http_server_duration_seconds_count{{{sel},route=\"/pay\"}}"),
            3.0,
        ),
        (format!("target_info{{{sel},host_name=\"node-7\"}}"), 1.0),
    ];
    for (query, want) in &expect {
        let got = value(&q, query).await;
        assert!(
            got.is_some_and(|v| (v - want).abs() < 1e-9),
            "{query}: {got:?}, want {want}\n{}",
            q.log()
        );
    }
    // The resource's other attributes are on target_info only.
    assert_eq!(
        value(&q, "count(orders_placed_total{host_name!=\"\"})").await,
        None
    );
    // The exponential histogram (scale 20 for its one value) is a native histogram of
    // schema 8, whose one bucket holds the 12 ms recorded.
    let rows = q
        .rows(
            "SELECT histogram['count'], histogram['sum'], histogram['schema'], \
             histogram['positive_spans'][1]['offset'], cardinality(histogram['positive_buckets']) \
             FROM samples WHERE metric = 'rpc_latency_milliseconds'",
        )
        .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0][..3],
        [json!(1.0), json!(12.0), json!(8)],
        "{rows:?}"
    );
    let index = rows[0][3].as_i64().unwrap() as i32;
    let bound = |i| quiver::model::histogram::bucket_bound(i, 8, &[]);
    assert!(bound(index - 1) < 12.0 && 12.0 <= bound(index), "{rows:?}");
    assert_eq!(rows[0][4], json!(1));
    let metrics = q.metrics_text().await;
    assert!(
        !metrics.contains("quiver_otlp_rejected_data_points_total{reason=\"translation\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("quiver_otlp_requests_total{code=\"200\"} 1"));
    // A quantile from the classic buckets, and SQL over the same table.
    let median = value(
        &q,
        "histogram_quantile(0.5, sum by (le) (http_server_duration_seconds_bucket))",
    )
    .await
    .expect("a quantile");
    assert!((0.1..=1.0).contains(&median), "{median}");
    let rows = q
        .rows("SELECT region, value FROM orders_placed_total ORDER BY region")
        .await;
    assert_eq!(
        rows,
        vec![vec![json!("eu"), json!(5.0)], vec![json!("us"), json!(3.0)]]
    );
    // The value recorded inside a span carries its trace id as an exemplar, in the bucket
    // that holds it.
    let exemplars = q
        .get_json(
            "/api/v1/query_exemplars",
            &[
                ("query", "http_server_duration_seconds_bucket"),
                ("start", &(now_ms() / 1000 - 600).to_string()),
                ("end", &(now_ms() / 1000 + 60).to_string()),
            ],
        )
        .await;
    let data = exemplars["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(data.len(), 1, "{exemplars}");
    assert_eq!(data[0]["seriesLabels"]["le"], "1", "{exemplars}");
    assert_eq!(
        data[0]["exemplars"][0]["labels"]["trace_id"],
        trace_id.as_str()
    );
    assert_eq!(data[0]["exemplars"][0]["value"], "0.5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_temporality_is_refused_and_reported() {
    let q = start("global:\n  scrape_interval: 15s\n").await;
    send(&q, "delta");
    eventually("the refusal counted", Duration::from_secs(10), || async {
        q.metrics_text()
            .await
            .contains("quiver_otlp_rejected_data_points_total{reason=\"translation\"} 1")
            .then_some(())
    })
    .await;
    assert_eq!(value(&q, "count({__name__=~\"orders.*\"})").await, None);
}

/// An OTLP/JSON request, as the spec writes it (hex ids, 64-bit integers as strings).
fn json_request(time_ns: i64) -> Value {
    json!({"resourceMetrics": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "api"}},
            {"key": "deployment.environment", "value": {"stringValue": "prod"}},
            {"key": "cloud.region", "value": {"stringValue": "eu-west-1"}}
        ]},
        "scopeMetrics": [{
            "scope": {"name": "manual", "version": "0.1"},
            "metrics": [
                {"name": "jobs.done", "unit": "1", "sum": {
                    "aggregationTemporality": 2, "isMonotonic": true,
                    "dataPoints": [{"asInt": "17", "timeUnixNano": time_ns.to_string(),
                        "startTimeUnixNano": (time_ns - 60_000_000_000i64).to_string(),
                        "attributes": [{"key": "queue.name", "value": {"stringValue": "mail"}}],
                        "exemplars": [{"asDouble": 1.0, "timeUnixNano": time_ns.to_string(),
                            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}]}]}},
                {"name": "api.latency", "unit": "ms", "summary": {"dataPoints": [{
                    "timeUnixNano": time_ns.to_string(), "count": "4", "sum": 10.0,
                    "quantileValues": [{"quantile": 0.5, "value": 2.0}, {"quantile": 0.99, "value": 4.0}]}]}}
            ]
        }]
    }]})
}

async fn post(q: &Quiver, content_type: &str, body: Vec<u8>) -> (u16, String) {
    let r = q
        .client
        .post(q.url("/api/v1/otlp/v1/metrics"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_payloads_the_otlp_section_and_bad_requests() {
    let config = "global:\n  scrape_interval: 15s\notlp:\n  promote_resource_attributes: [deployment.environment]\n  translation_strategy: UnderscoreEscapingWithSuffixes\n";
    let q = start(config).await;
    let time_ns = now_ms() * 1_000_000;
    let body = serde_json::to_vec(&json_request(time_ns)).unwrap();
    let (status, text) = post(&q, "application/json", body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, "{}", "everything was stored: no partial success");
    let sel = r#"job="api",deployment_environment="prod""#;
    assert_eq!(
        value(&q, &format!("jobs_done_total{{{sel},queue_name=\"mail\"}}")).await,
        Some(17.0)
    );
    assert_eq!(
        value(
            &q,
            &format!("api_latency_milliseconds{{{sel},quantile=\"0.99\"}}")
        )
        .await,
        Some(4.0)
    );
    assert_eq!(
        value(&q, &format!("api_latency_milliseconds_count{{{sel}}}")).await,
        Some(4.0)
    );
    // The promoted attribute is on every series; the rest on target_info (no instance,
    // the job identifies it).
    assert_eq!(
        value(
            &q,
            "target_info{job=\"api\",cloud_region=\"eu-west-1\",deployment_environment=\"prod\"}"
        )
        .await,
        Some(1.0)
    );
    let exemplars = q
        .get_json(
            "/api/v1/query_exemplars",
            &[
                ("query", "jobs_done_total"),
                ("start", &(now_ms() / 1000 - 600).to_string()),
                ("end", &(now_ms() / 1000 + 60).to_string()),
            ],
        )
        .await;
    assert_eq!(
        exemplars["data"][0]["exemplars"][0]["labels"]["trace_id"],
        "5b8efff798038103d269b633813fc60c",
        "{exemplars}"
    );

    // What cannot be stored is answered as OTLP's partial success, and the rest is stored.
    let mixed = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "deltas", "sum": {"aggregationTemporality": 1, "isMonotonic": true,
            "dataPoints": [{"asDouble": 1.0, "timeUnixNano": time_ns.to_string()}]}},
        {"name": "kept", "gauge": {"dataPoints": [{"asDouble": 9.0, "timeUnixNano": time_ns.to_string()}]}}
    ]}]}]});
    let (status, text) = post(&q, "application/json", serde_json::to_vec(&mixed).unwrap()).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).expect("a JSON answer");
    assert_eq!(answer["partialSuccess"]["rejectedDataPoints"], 1, "{text}");
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("\"deltas\"") && m.contains("DELTA")),
        "{text}"
    );
    assert_eq!(value(&q, "kept").await, Some(9.0));

    // Bad requests: a clear 4xx, nothing stored.
    let before = value(&q, "count({__name__!=\"\"})").await;
    for (content_type, body, want) in [
        (
            "application/x-protobuf",
            b"\xff\xff\xff not protobuf".to_vec(),
            400,
        ),
        ("application/json", b"{\"resourceMetrics\": [".to_vec(), 400),
        (
            "application/json",
            b"{\"resourceMetrics\": 7}".to_vec(),
            400,
        ),
        ("text/plain", b"hello".to_vec(), 415),
    ] {
        let (status, text) = post(&q, content_type, body).await;
        assert_eq!(status, want, "{content_type}: {text}");
        assert!(!text.trim().is_empty(), "the error says why");
    }
    let gzip_bad = q
        .client
        .post(q.url("/api/v1/otlp/v1/metrics"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body("not gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzip_bad.status(), 400);
    assert!(gzip_bad.text().await.unwrap().contains("gzip"));
    assert_eq!(value(&q, "count({__name__!=\"\"})").await, before);

    // Without the flag, Prometheus's 404 and its hint.
    let plain = Quiver::start("global:\n  scrape_interval: 15s\n").await;
    let (status, text) = post(&plain, "application/json", b"{}".to_vec()).await;
    assert_eq!(status, 404);
    assert!(text.contains("--web.enable-otlp-receiver"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_otlp_sections_are_refused_at_load() {
    for (section, why) in [
        (
            "otlp:\n  promote_all_resource_attributes: true\n  promote_resource_attributes: [a]\n",
            "mutually exclusive",
        ),
        ("otlp:\n  ignore_resource_attributes: [a]\n", "only valid"),
        (
            "otlp:\n  translation_strategy: Sideways\n",
            "translation_strategy",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yml");
        std::fs::write(&path, section).unwrap();
        let out = Command::new(crate::common::server_bin())
            .args(["check", "config"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{section} was accepted");
        assert!(text.contains(why), "{section}: {text}");
    }
}

/// A request exercising the translation: dotted and odd names, every unit form, attribute
/// keys that collide once translated, a resource with and without identifying attributes,
/// gauges, both kinds of sums, a histogram and a summary.
fn translation_request(time_ns: i64) -> Value {
    let t = time_ns.to_string();
    let start = (time_ns - 120_000_000_000i64).to_string();
    let attr = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let number = |v: f64, attrs: Value| json!({"asDouble": v, "timeUnixNano": t, "startTimeUnixNano": start, "attributes": attrs});
    json!({"resourceMetrics": [
        {
            "resource": {"attributes": [
                attr("service.name", "cart"), attr("service.namespace", "shop"),
                attr("service.instance.id", "cart-0"), attr("k8s.pod.name", "cart-0-abc"),
                attr("deployment.environment", "staging")
            ]},
            "scopeMetrics": [{"scope": {"name": "lib", "version": "2"}, "metrics": [
                {"name": "http.server.request.duration", "unit": "s", "histogram": {
                    "aggregationTemporality": 2,
                    "dataPoints": [{"timeUnixNano": t, "startTimeUnixNano": start, "count": "6",
                        "sum": 2.5, "bucketCounts": ["1", "2", "3"], "explicitBounds": [0.05, 0.5],
                        "attributes": [attr("http.route", "/cart"), attr("http.request.method", "POST")]}]}},
                {"name": "process.memory.usage", "unit": "By", "gauge": {"dataPoints": [number(1048576.0, json!([]))]}},
                {"name": "network.io", "unit": "By/s", "gauge": {"dataPoints": [number(12.5, json!([attr("direction", "rx")]))]}},
                {"name": "cpu.utilization", "unit": "1", "gauge": {"dataPoints": [number(0.75, json!([]))]}},
                {"name": "requests", "unit": "{requests}", "sum": {"aggregationTemporality": 2, "isMonotonic": true,
                    "dataPoints": [number(42.0, json!([attr("a.b", "x"), attr("a_b", "y"), attr("2xx", "yes")]))]}},
                {"name": "requests_total", "unit": "", "sum": {"aggregationTemporality": 2, "isMonotonic": true,
                    "dataPoints": [number(7.0, json!([]))]}},
                {"name": "db.connections", "unit": "{connections}", "sum": {"aggregationTemporality": 2, "isMonotonic": false,
                    "dataPoints": [number(-2.0, json!([]))]}},
                {"name": "1st.metric", "unit": "ms", "gauge": {"dataPoints": [number(3.0, json!([]))]}},
                {"name": "gc.pause", "unit": "ms", "summary": {"dataPoints": [{"timeUnixNano": t, "startTimeUnixNano": start,
                    "count": "3", "sum": 9.0, "quantileValues": [{"quantile": 0.5, "value": 2.0}, {"quantile": 1, "value": 5.0}]}]}}
            ]}]
        },
        {
            "resource": {"attributes": [attr("service.name", "solo")]},
            "scopeMetrics": [{"metrics": [
                {"name": "temperature", "unit": "Cel", "gauge": {"dataPoints": [number(21.0, json!([attr("room", "lab")]))]}}
            ]}]
        }
    ]})
}

type SeriesSet = std::collections::BTreeMap<std::collections::BTreeMap<String, String>, String>;

/// Every series at `time` (s): labels and value as text.
async fn everything(q: &Quiver, time: i64) -> SeriesSet {
    let body = q
        .get_json(
            "/api/v1/query",
            &[("query", "{__name__=~\".+\"}"), ("time", &time.to_string())],
        )
        .await;
    body["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|s| {
            let labels = serde_json::from_value(s["metric"].clone()).expect("labels");
            (labels, s["value"][1].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

fn series(
    name: &str,
    labels: &[(&str, &str)],
    value: &str,
) -> (std::collections::BTreeMap<String, String>, String) {
    let mut l: std::collections::BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.insert("__name__".into(), name.into());
    (l, value.to_owned())
}

/// The translation of every metric form under the default strategy, series by series, as
/// Prometheus's rules (otlptranslator) give them. (Debian's Prometheus 3.5 is built without
/// the OTLP receiver, so it cannot serve as the reference here; the rules' own cases are the
/// unit tests in src/otlp.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_form_translates_as_prometheus_names_it() {
    let time_ms = now_ms() - 60_000;
    let request = serde_json::to_vec(&translation_request(time_ms * 1_000_000)).unwrap();
    let config = "global:\n  scrape_interval: 15s\notlp:\n  promote_resource_attributes: [deployment.environment]\n";
    let q = start(config).await;
    let (status, text) = post(&q, "application/json", request.clone()).await;
    assert_eq!((status, text.as_str()), (200, "{}"));
    let r = [
        ("deployment_environment", "staging"),
        ("instance", "cart-0"),
        ("job", "shop/cart"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        r.iter().chain(extra).copied().collect()
    };
    let route = [("http_request_method", "POST"), ("http_route", "/cart")];
    let bucket = |le: &'static str| {
        let mut l = with(&route);
        l.push(("le", le));
        l
    };
    let want: SeriesSet = [
        series(
            "http_server_request_duration_seconds_bucket",
            &bucket("0.05"),
            "1",
        ),
        series(
            "http_server_request_duration_seconds_bucket",
            &bucket("0.5"),
            "3",
        ),
        series(
            "http_server_request_duration_seconds_bucket",
            &bucket("+Inf"),
            "6",
        ),
        series(
            "http_server_request_duration_seconds_sum",
            &with(&route),
            "2.5",
        ),
        series(
            "http_server_request_duration_seconds_count",
            &with(&route),
            "6",
        ),
        series("process_memory_usage_bytes", &with(&[]), "1048576"),
        series(
            "network_io_bytes_per_second",
            &with(&[("direction", "rx")]),
            "12.5",
        ),
        series("cpu_utilization_ratio", &with(&[]), "0.75"),
        series(
            "requests_total",
            &with(&[("a_b", "x;y"), ("key_2xx", "yes")]),
            "42",
        ),
        series("requests_total", &with(&[]), "7"),
        series("db_connections", &with(&[]), "-2"),
        series("_1st_metric_milliseconds", &with(&[]), "3"),
        series("gc_pause_milliseconds", &with(&[("quantile", "0.5")]), "2"),
        series("gc_pause_milliseconds", &with(&[("quantile", "1")]), "5"),
        series("gc_pause_milliseconds_sum", &with(&[]), "9"),
        series("gc_pause_milliseconds_count", &with(&[]), "3"),
        series("target_info", &with(&[("k8s_pod_name", "cart-0-abc")]), "1"),
        series(
            "temperature_celsius",
            &[("job", "solo"), ("room", "lab")],
            "21",
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(everything(&q, time_ms / 1000 + 1).await, want);

    // Without suffixes: the same series, plainer names.
    let config = "global:\n  scrape_interval: 15s\notlp:\n  translation_strategy: UnderscoreEscapingWithoutSuffixes\n";
    let q = start(config).await;
    let (status, text) = post(&q, "application/json", request.clone()).await;
    assert_eq!((status, text.as_str()), (200, "{}"));
    let got = everything(&q, time_ms / 1000 + 1).await;
    let names: std::collections::BTreeSet<&str> =
        got.keys().map(|l| l["__name__"].as_str()).collect();
    let want: std::collections::BTreeSet<&str> = [
        "http_server_request_duration_bucket",
        "http_server_request_duration_sum",
        "http_server_request_duration_count",
        "process_memory_usage",
        "network_io",
        "cpu_utilization",
        "requests",
        "requests_total",
        "db_connections",
        "_1st_metric",
        "gc_pause",
        "gc_pause_sum",
        "gc_pause_count",
        "target_info",
        "temperature",
    ]
    .into_iter()
    .collect();
    assert_eq!(names, want);

    // The strategies that keep UTF-8 names, which storage takes as Prometheus 3.x does.
    for (strategy, want) in [
        (
            "NoUTF8EscapingWithSuffixes",
            [
                "http.server.request.duration_seconds_count",
                "process.memory.usage_bytes",
                "requests_total",
                "1st.metric_milliseconds",
            ],
        ),
        (
            "NoTranslation",
            [
                "http.server.request.duration_count",
                "process.memory.usage",
                "requests",
                "1st.metric",
            ],
        ),
    ] {
        let config =
            format!("global:\n  scrape_interval: 15s\notlp:\n  translation_strategy: {strategy}\n");
        let q = start(&config).await;
        let (status, text) = post(&q, "application/json", request.clone()).await;
        assert_eq!((status, text.as_str()), (200, "{}"), "{strategy}");
        let got = everything(&q, time_ms / 1000 + 1).await;
        let names: std::collections::BTreeSet<&str> =
            got.keys().map(|l| l["__name__"].as_str()).collect();
        for name in want {
            assert!(names.contains(name), "{strategy}: no {name} in {names:?}");
        }
        let labelled = got
            .keys()
            .find(|l| l["__name__"] == want[0])
            .unwrap_or_else(|| panic!("{strategy}: {got:?}"));
        assert_eq!(
            labelled.get("http.route").map(String::as_str),
            Some("/cart")
        );
        let query = format!("{{\"{}\", \"http.request.method\"=\"POST\"}}", want[0]);
        assert_eq!(value(&q, &query).await, Some(6.0), "{strategy}: {query}");
    }
}
