//! Scraping with real peers: node_exporter scraped by Quiver and by a real Prometheus,
//! file_sd and configuration reloads, staleness and limits, `quiver check config`.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// `metric{a="1", b="2"}` strings of a Prometheus series response.
fn prometheus_series_set(body: &Value) -> BTreeSet<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let object = s.as_object().unwrap();
            let name = object["__name__"].as_str().unwrap();
            let mut labels: Vec<String> = object
                .iter()
                .filter(|(k, _)| k.as_str() != "__name__")
                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap()))
                .collect();
            labels.sort();
            format!("{name}{{{}}}", labels.join(", "))
        })
        .collect()
}

async fn quiver_series_set(q: &Quiver, job: &str) -> BTreeSet<String> {
    q.rows(&format!(
        "SELECT metric, labels FROM series WHERE labels['job'] = '{job}'"
    ))
    .await
    .iter()
    .map(|r| format!("{}{}", r[0].as_str().unwrap(), r[1].as_str().unwrap()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_exporter_scraped_like_prometheus_does() {
    let (_exporter, exporter_port, _dir) = start_node_exporter();
    let job = format!(
        "scrape_configs:\n  - job_name: node\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n"
    );
    let q = Quiver::start(&format!("global:\n  scrape_interval: 1s\n{job}")).await;
    let prometheus =
        Prometheus::start(&format!("global:\n  scrape_interval: 1s\n{job}"), &[]).await;
    let prom_port = prometheus.port;
    tokio::time::sleep(Duration::from_secs(6)).await;

    let client = reqwest::Client::new();
    let body: Value = eventually("Prometheus series", Duration::from_secs(30), || {
        let client = client.clone();
        async move {
            let r = client
                .get(format!("http://127.0.0.1:{prom_port}/api/v1/series"))
                .query(&[("match[]", "{job=\"node\"}")])
                .send()
                .await
                .ok()?;
            let body: Value = r.json().await.ok()?;
            (body["data"].as_array().map(Vec::len).unwrap_or(0) > 100).then_some(body)
        }
    })
    .await;
    let expected = prometheus_series_set(&body);
    let got = quiver_series_set(&q, "node").await;
    let missing: Vec<&String> = expected.difference(&got).collect();
    let extra: Vec<&String> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} series in Prometheus, {} in Quiver\nmissing in Quiver: {missing:#?}\nonly in Quiver: {extra:#?}",
        expected.len(),
        got.len()
    );

    // Values agree: constants exactly, counters within what a scrape apart can change.
    for (metric, tolerance) in [
        ("node_memory_MemTotal_bytes", 0.0),
        ("node_boot_time_seconds", 0.0),
        ("node_cpu_seconds_total", 5.0),
    ] {
        let query = format!("max(last_over_time({metric}{{job=\"node\"}}[1m]))");
        let r: Value = client
            .get(format!("http://127.0.0.1:{prom_port}/api/v1/query"))
            .query(&[("query", query.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let theirs: f64 = r["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let ours = q
            .scalar(&format!(
                "SELECT max(value) FROM {metric} WHERE timestamp = (SELECT max(timestamp) FROM {metric})"
            ))
            .await;
        assert!(
            (ours - theirs).abs() <= tolerance * theirs.abs().max(1.0) / 100.0 + tolerance,
            "{metric}: {ours} vs {theirs}"
        );
    }
    let targets = q.targets().await;
    let target = &targets["data"]["activeTargets"][0];
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["scrapePool"], "node");
    assert_eq!(
        target["labels"]["instance"],
        format!("127.0.0.1:{exporter_port}")
    );
    assert_eq!(
        target["discoveredLabels"]["__address__"],
        format!("127.0.0.1:{exporter_port}")
    );
}

fn file_sd_config(dir: &std::path::Path, extra: &str) -> String {
    format!(
        "scrape_configs:\n  - job_name: self\n    scrape_interval: 1s\n    scrape_timeout: 1s\n{extra}    file_sd_configs:\n      - files: ['{}/targets/*.yml']\n        refresh_interval: 1m\n",
        dir.display()
    )
}

async fn active_targets(q: &Quiver) -> Vec<Value> {
    q.targets().await["data"]["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sd_follows_file_changes_and_staleness_marks_removed_targets() {
    let sd = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(sd.path().join("targets")).unwrap();
    let mut q = Quiver::start(&file_sd_config(sd.path(), "")).await;
    let self_target = format!("127.0.0.1:{}", q.port);
    let file = sd.path().join("targets/a.yml");
    std::fs::write(
        &file,
        format!("- targets: ['{self_target}']\n  labels: {{env: a}}\n"),
    )
    .unwrap();
    eventually("target from file_sd", Duration::from_secs(10), || async {
        let t = active_targets(&q).await;
        (t.len() == 1 && t[0]["labels"]["env"] == "a" && t[0]["health"] == "up").then_some(())
    })
    .await;
    // Replace the file the way tools do: write elsewhere, rename over it.
    let tmp = sd.path().join("a.yml.tmp");
    std::fs::write(
        &tmp,
        format!("- targets: ['{self_target}']\n  labels: {{env: b}}\n"),
    )
    .unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    eventually("relabeled target", Duration::from_secs(10), || async {
        let t = active_targets(&q).await;
        (t.len() == 1 && t[0]["labels"]["env"] == "b").then_some(())
    })
    .await;
    // A broken file keeps the last good targets.
    std::fs::write(&file, "- targets: [unclosed\n").unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = active_targets(&q).await;
    assert_eq!(t.len(), 1);
    assert_eq!(t[0]["labels"]["env"], "b");
    // A new file adds a target (nothing listens there: it is down with an error).
    std::fs::write(
        sd.path().join("targets/b.yml"),
        "- targets: ['127.0.0.1:1']\n",
    )
    .unwrap();
    let down = eventually("second target scraped", Duration::from_secs(10), || async {
        active_targets(&q)
            .await
            .into_iter()
            .find(|t| t["labels"]["instance"] == "127.0.0.1:1" && t["health"] == "down")
    })
    .await;
    assert!(!down["lastError"].as_str().unwrap().is_empty());
    // Removing the first target's file stale-marks its series.
    std::fs::remove_file(&file).unwrap();
    eventually("target removed", Duration::from_secs(10), || async {
        (active_targets(&q).await.len() == 1).then_some(())
    })
    .await;
    let last_up = q
        .rows(&format!(
            "SELECT value FROM up WHERE instance = '{self_target}' ORDER BY timestamp DESC LIMIT 1"
        ))
        .await;
    assert_eq!(
        last_up[0][0],
        Value::from("NaN"),
        "the last sample of a removed target is a staleness marker"
    );
    let stale_series = q
        .scalar(&format!(
            "SELECT count(*) FROM samples WHERE labels['instance'] = '{self_target}' AND isnan(value)"
        ))
        .await;
    assert!(
        stale_series > 10.0,
        "every series of the removed target got a marker: {stale_series}"
    );
    q.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_http_reload_apply_good_configs_and_refuse_bad_ones() {
    let sd = tempfile::tempdir().unwrap();
    let base = "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: one\n    static_configs:\n      - targets: ['127.0.0.1:1']\n";
    let q = Quiver::start_with_args(base, &["--web.enable-lifecycle"]).await;
    let pools = |t: Vec<Value>| -> BTreeSet<String> {
        t.iter()
            .map(|x| x["scrapePool"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        pools(active_targets(&q).await),
        BTreeSet::from(["one".to_string()])
    );

    q.write_config(&format!(
        "{base}  - job_name: two\n    static_configs:\n      - targets: ['127.0.0.1:2']\n"
    ));
    q.signal("HUP");
    eventually("job two after SIGHUP", Duration::from_secs(10), || async {
        (pools(active_targets(&q).await).len() == 2).then_some(())
    })
    .await;

    q.write_config("scrape_configs:\n  - job_name: broken\n    scrape_intervall: 1s\n");
    let r = q.client.post(q.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let text = r.text().await.unwrap();
    assert!(text.contains("scrape_intervall"), "{text}");
    assert_eq!(
        pools(active_targets(&q).await).len(),
        2,
        "the running configuration is kept"
    );

    q.write_config(base);
    let r = q.client.post(q.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        pools(active_targets(&q).await),
        BTreeSet::from(["one".to_string()])
    );
    let _ = sd;

    let plain = Quiver::start(base).await;
    let r = plain
        .client
        .post(plain.url("/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        403,
        "reload over HTTP needs --web.enable-lifecycle"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_fail_the_scrape_and_store_nothing_of_it() {
    let port = free_port();
    let config = format!(
        "scrape_configs:\n  - job_name: limited\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    sample_limit: 10\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n  - job_name: tiny_body\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    body_size_limit: 100B\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n        labels: {{variant: body}}\n"
    );
    // Scrape Quiver's own /metrics, which has far more than 10 samples and 100 bytes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.yml");
    std::fs::write(&path, &config).unwrap();
    let _server = Process::spawn(
        "quiver",
        Command::new(env!("CARGO_BIN_EXE_quiver"))
            .arg(format!("--config.file={}", path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}")),
        &dir.path().join("q.log"),
    );
    let client = reqwest::Client::new();
    let targets = eventually("both targets scraped", Duration::from_secs(15), || {
        let client = client.clone();
        async move {
            let body: Value = client
                .get(format!("http://127.0.0.1:{port}/api/v1/targets"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let t = body["data"]["activeTargets"].as_array()?.clone();
            (t.len() == 2 && t.iter().all(|x| x["health"] == "down")).then_some(t)
        }
    })
    .await;
    let errors: Vec<&str> = targets
        .iter()
        .map(|t| t["lastError"].as_str().unwrap())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("sample limit exceeded")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("body size limit")),
        "{errors:?}"
    );
    let body: Value = client
        .get(format!("http://127.0.0.1:{port}/api/v1/sql"))
        .query(&[(
            "query",
            "SELECT DISTINCT metric FROM samples ORDER BY metric",
        )])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let metrics: Vec<&str> = body["data"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect();
    assert_eq!(
        metrics,
        vec![
            "scrape_duration_seconds",
            "scrape_samples_post_metric_relabeling",
            "scrape_samples_scraped",
            "scrape_series_added",
            "up"
        ],
        "only the report series are stored for failed scrapes"
    );
}

#[test]
fn check_config_validates_shipped_examples_and_names_errors() {
    let root = env!("CARGO_MANIFEST_DIR");
    let ok = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["check", "config", &format!("{root}/deploy/prometheus.yml")])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("SUCCESS"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "scrape_configs:\n  - job_name: x\n    relabel_configs:\n      - action: hashmod\n        modulus: 4\n        source_labels: [a]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["check", "config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAILED")
            && text.contains("relabel_configs[0]")
            && text.contains("target_label"),
        "{text}"
    );

    let missing_sd = dir.path().join("sd.yml");
    std::fs::write(&missing_sd, "scrape_configs:\n  - job_name: x\n    file_sd_configs:\n      - files: ['targets/*.txt']\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["check", "config"])
        .arg(&missing_sd)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A Prometheus configuration with remote_write/remote_read loads, and each section
    // Quiver does not act on is named: nothing is silently left undone.
    let remote = dir.path().join("remote.yml");
    std::fs::write(
        &remote,
        "remote_write:\n  - url: http://127.0.0.1:1/write\nremote_read:\n  - url: http://127.0.0.1:1/read\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["check", "config"])
        .arg(&remote)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for needle in [
        "WARNING: remote_write: 1 endpoint(s) configured (http://127.0.0.1:1/write)",
        "nothing is sent to them",
        "WARNING: remote_read: 1 endpoint(s) configured (http://127.0.0.1:1/read)",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

/// A target that answers only with the right Authorization header.
async fn start_auth_target(expected: &'static [&'static str]) -> u16 {
    use axum::http::{HeaderMap, StatusCode};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: HeaderMap| async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if expected.contains(&auth) {
                (
                    StatusCode::OK,
                    "# TYPE secret_metric gauge\nsecret_metric 42\n",
                )
            } else {
                (StatusCode::UNAUTHORIZED, "no")
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_send_basic_auth_and_bearer_credentials() {
    // "user:pass" in base64, and a bearer token read from a file.
    let port = start_auth_target(&["Basic dXNlcjpwYXNz", "Bearer s3cr3t"]).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cr3t\n").unwrap();
    let config = format!(
        "scrape_configs:\n  - job_name: basic\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    basic_auth:\n      username: user\n      password: pass\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n  - job_name: bearer\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    authorization:\n      credentials_file: {}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n  - job_name: anonymous\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n",
        token.display()
    );
    let q = Quiver::start(&config).await;
    let targets = eventually("all three scraped", Duration::from_secs(15), || async {
        let t = active_targets(&q).await;
        (t.len() == 3 && t.iter().all(|x| x["health"] != "unknown")).then_some(t)
    })
    .await;
    let health = |job: &str| {
        targets
            .iter()
            .find(|t| t["scrapePool"] == job)
            .map(|t| t["health"].clone())
            .unwrap()
    };
    assert_eq!(health("basic"), "up");
    assert_eq!(health("bearer"), "up");
    assert_eq!(health("anonymous"), "down");
    let jobs = q
        .rows("SELECT DISTINCT job FROM secret_metric ORDER BY job")
        .await;
    assert_eq!(
        jobs,
        vec![vec![Value::from("basic")], vec![Value::from("bearer")]]
    );
}

/// The official Python client as an exporter: a counter that goes up 10 per scrape, with an
/// exemplar naming the scrape (`trace_id="scrape-N"`), and restarts (a new `Counter` of the
/// same name) when `/restart` is fetched, then at once counts past its old value, so only
/// its `_created` time shows the restart.
const PYTHON_EXPORTER: &str = r#"
import sys, time
from http.server import HTTPServer, BaseHTTPRequestHandler
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.openmetrics.exposition import generate_latest

state = {}
def restart(start=0):
    state["registry"] = CollectorRegistry()
    state["jobs"] = Counter("jobs", "Jobs done.", registry=state["registry"])
    state["jobs"].inc(start)
restart()

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/restart":
            restart(start=100000)
            body = b"restarted\n"
            kind = "text/plain"
        else:
            state["n"] = state.get("n", 0) + 1
            state["jobs"].inc(10, exemplar={"trace_id": "scrape-%d" % state["n"]})
            body = generate_latest(state["registry"])
            kind = "application/openmetrics-text; version=1.0.0; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

/// [`PYTHON_EXPORTER`] running (its folder, port and process) and a Quiver scraping it
/// every second as job `py`.
async fn python_exporter_scraped() -> (tempfile::TempDir, u16, Process, Quiver) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let exporter = Process::spawn(
        "python exporter",
        Command::new("python3").args(["-c", PYTHON_EXPORTER, &port.to_string()]),
        &dir.path().join("exporter.log"),
    );
    let q = Quiver::start(&format!(
        "scrape_configs:\n  - job_name: py\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    ))
    .await;
    (dir, port, exporter, q)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_created_times_become_start_timestamps() {
    let (_dir, port, _exporter, q) = python_exporter_scraped().await;
    let client = reqwest::Client::new();
    let instant = |query: &'static str| {
        let q = &q;
        async move {
            let body = q.get_json("/api/v1/query", &[("query", query)]).await;
            body["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
        }
    };
    // The first counter's start, as the exporter's own process recorded it.
    let first_start = eventually(
        "a scrape with a start time",
        Duration::from_secs(20),
        || instant("start_timestamp(jobs_total)"),
    )
    .await;
    let now = now_ms() as f64 / 1000.0;
    assert!(
        first_start > now - 120.0 && first_start < now,
        "start {first_start} is not a recent time (now {now})"
    );
    let created = q
        .get_json("/api/v1/series", &[("match[]", "jobs_created")])
        .await;
    assert_eq!(
        created["data"],
        serde_json::json!([]),
        "_created is not stored as a series of its own"
    );
    eventually("three scrapes", Duration::from_secs(20), || async {
        instant("count_over_time(jobs_total[1m])")
            .await
            .filter(|n| *n >= 3.0)
    })
    .await;
    // The restarted counter is already past the old value: without start times the
    // restart would be invisible.
    client
        .get(format!("http://127.0.0.1:{port}/restart"))
        .send()
        .await
        .unwrap();
    let second_start = eventually(
        "the restart's start time",
        Duration::from_secs(20),
        || async {
            instant("start_timestamp(jobs_total)")
                .await
                .filter(|s| *s > first_start)
        },
    )
    .await;
    assert!(second_start > first_start);
    let resets = eventually(
        "the restart seen by resets()",
        Duration::from_secs(20),
        || async {
            instant("resets(jobs_total[1m])")
                .await
                .filter(|n| *n >= 1.0)
        },
    )
    .await;
    assert_eq!(resets, 1.0);
}

/// OpenMetrics exemplars scraped from the official Python client are kept and served by
/// `/api/v1/query_exemplars` with the series' final labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_openmetrics_exemplars_are_queried() {
    let (_dir, _port, _exporter, q) = python_exporter_scraped().await;
    let exemplars = eventually("two scraped exemplars", Duration::from_secs(20), || async {
        let body = q
            .get_json(
                "/api/v1/query_exemplars",
                &[("query", "rate(jobs_total{job=\"py\"}[1m])")],
            )
            .await;
        let series = body["data"].as_array()?.first()?.clone();
        (series["exemplars"].as_array()?.len() >= 2).then_some(series)
    })
    .await;
    assert_eq!(exemplars["seriesLabels"]["__name__"], "jobs_total");
    assert_eq!(exemplars["seriesLabels"]["job"], "py");
    let first = &exemplars["exemplars"][0];
    let trace = first["labels"]["trace_id"].as_str().unwrap_or_default();
    assert!(trace.starts_with("scrape-"), "{first}");
    assert_eq!(first["value"], "10");
    let at = first["timestamp"].as_f64().unwrap_or_default();
    let now = now_ms() as f64 / 1000.0;
    assert!(
        at > now - 60.0 && at <= now,
        "exemplar time {at}, now {now}"
    );
}
