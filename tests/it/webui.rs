//! The web UI in a real headless Chromium (Debian's chromium and chromedriver, driven by
//! Selenium from tests/it/webui.py): the query page (completion, table, graph, explain,
//! Prometheus's URL parameters), the SQL page (completion, rows, graph, CSV download,
//! errors), targets and service discovery with an up, a down and a dropped target, a firing
//! alert, the status pages and the cardinality explorer, and the UI under an external URL's
//! path. Every page must load with no console error and no failed request; screenshots go
//! to `target/tmp/ui-screenshots`. Plus the HTTP side (pages, redirects, assets, the
//! authentication gate) and a check that the committed bundle is what its source builds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{
    Process, Quiver, eventually, free_port, now_ms, series, start_node_exporter, write_request,
};

const METRIC: &str = "ui_test_metric";

/// Quiver and the peers the pages show: a node exporter (up), a port nothing listens on
/// (down), a target relabeling drops, rules with an alert that fires for instance `b`, and
/// an hour of `ui_test_metric` for instances `a` (1.5) and `b` (2.5).
struct Fixture {
    quiver: Quiver,
    _exporter: (Process, u16, tempfile::TempDir),
    up_url: String,
    down_url: String,
}

async fn fixture(extra_args: &[&str]) -> Fixture {
    fixture_with(extra_args, "").await
}

/// The fixture with `storage_yaml` under `storage:` in the configuration.
async fn fixture_with(extra_args: &[&str], storage_yaml: &str) -> Fixture {
    let exporter = start_node_exporter();
    let up = format!("127.0.0.1:{}", exporter.1);
    let down = format!("127.0.0.1:{}", free_port());
    let rules_dir = tempfile::tempdir().expect("temp dir");
    let rules = rules_dir.path().join("ui-rules.yml");
    std::fs::write(
        &rules,
        format!(
            "groups:\n  - name: ui\n    interval: 1s\n    rules:\n      - record: job:{METRIC}:sum\n        expr: sum by (job) ({METRIC})\n      - alert: UiTestHigh\n        expr: {METRIC} > 2\n        labels:\n          severity: page\n        annotations:\n          summary: '{{{{ $labels.instance }}}} is high'\n"
        ),
    )
    .expect("writing rules");
    let storage = match storage_yaml {
        "" => String::new(),
        yaml => format!("storage:\n{yaml}\n"),
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n{storage}rule_files: ['{}']\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['{up}', '{down}', '127.0.0.1:1']\n    relabel_configs:\n      - source_labels: [__address__]\n        regex: '127\\.0\\.0\\.1:1'\n        action: drop\n",
        rules.display()
    );
    let quiver = Quiver::start_with_args(&config, extra_args).await;
    // Keep the rules file for the server's lifetime (it is read at start and on reload).
    std::mem::forget(rules_dir);
    let now = now_ms();
    let points = |v: f64| -> Vec<(i64, f64)> {
        (0..60)
            .map(|i| (now - 3_600_000 + i * 60_000 + 55_000, v))
            .collect()
    };
    let (status, body) = quiver
        .remote_write(&write_request(vec![
            series(
                &[("__name__", METRIC), ("job", "ui"), ("instance", "a")],
                &points(1.5),
            ),
            series(
                &[("__name__", METRIC), ("job", "ui"), ("instance", "b")],
                &points(2.5),
            ),
        ]))
        .await;
    assert_eq!(status, 204, "remote write: {body}");
    Fixture {
        quiver,
        up_url: format!("http://{up}/metrics"),
        down_url: format!("http://{down}/metrics"),
        _exporter: exporter,
    }
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots")
}

/// Runs one scenario of tests/it/webui.py against `base`; panics with its output on failure.
fn browse(scenario: &str, base: &str, expected: Value, quiver: &Quiver) {
    for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: scripts/test.sh installs Debian's chromium and chromium-driver"
        );
    }
    let python = std::env::var("QUIVER_TOOLS_VENV")
        .map(|venv| format!("{venv}/bin/python"))
        .unwrap_or_else(|_| "python3".to_owned());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/webui.py");
    let shots = screenshots().join(scenario);
    // Only this run's pictures, so a stale failure's screenshot cannot mislead.
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new("timeout")
        .arg("300")
        .arg(&python)
        .arg(&script)
        .args([scenario, base])
        .arg(&shots)
        .arg(expected.to_string())
        // Selenium must use Debian's driver and browser, never download its own.
        .env("SE_OFFLINE", "true")
        .output()
        .expect("running the browser test");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(
        out.status.success(),
        "browser scenario {scenario} failed (screenshots in {}):\n{text}\n{}",
        shots.display(),
        quiver.log()
    );
}

/// Waits until the alert fires and both targets have been scraped, so pages show them.
async fn settled(f: &Fixture) {
    let q = &f.quiver;
    eventually("the alert to fire", Duration::from_secs(30), || async {
        let body = q.get_json("/api/v1/alerts", &[]).await;
        let firing = body["data"]["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["state"] == "firing"));
        firing.then_some(())
    })
    .await;
    eventually("both targets scraped", Duration::from_secs(30), || async {
        let body = q.targets().await;
        let healths: Vec<String> = body["data"]["activeTargets"]
            .as_array()
            .map(|a| a.iter().map(|t| t["health"].to_string()).collect())
            .unwrap_or_default();
        (healths.len() == 2 && !healths.iter().any(|h| h.contains("unknown"))).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_page_completes_runs_graphs_and_explains() {
    let f = fixture(&[]).await;
    let table = json!({
        format!("{METRIC}{{instance=\"a\", job=\"ui\"}}"): "1.5",
        format!("{METRIC}{{instance=\"b\", job=\"ui\"}}"): "2.5",
    });
    browse(
        "query",
        &f.quiver.url(""),
        json!({"metric": METRIC, "table": table}),
        &f.quiver,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_page_completes_runs_graphs_and_downloads_csv() {
    let f = fixture(&[]).await;
    browse(
        "sql",
        &f.quiver.url(""),
        json!({
            "table": METRIC,
            "statement": format!("SELECT instance, avg(value) AS a FROM {METRIC} GROUP BY instance ORDER BY instance"),
            "rows": [["a", "1.5"], ["b", "2.5"]],
            "graph_statement": format!("SELECT timestamp, instance, value FROM {METRIC} ORDER BY timestamp"),
        }),
        &f.quiver,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_pages_show_up_down_and_dropped_targets() {
    let f = fixture(&[]).await;
    settled(&f).await;
    browse(
        "targets",
        &f.quiver.url(""),
        json!({"up": f.up_url, "down": f.down_url}),
        &f.quiver,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_rules_pages_show_a_firing_alert() {
    let f = fixture(&[]).await;
    settled(&f).await;
    browse(
        "alerts",
        &f.quiver.url(""),
        json!({"alert": "UiTestHigh", "label": "instance=\"b\"", "annotation": "b is high"}),
        &f.quiver,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_pages_and_cardinality_explorer() {
    // Ten-minute blocks, so the hour of samples written is cut into blocks the TSDB page lists.
    let f = fixture_with(&[], "  block_duration: 10m").await;
    settled(&f).await;
    eventually("blocks cut", Duration::from_secs(40), || async {
        let body = f.quiver.get_json("/api/v1/status/blocks", &[]).await;
        body["data"]["blocks"]
            .as_array()
            .is_some_and(|b| !b.is_empty())
            .then_some(())
    })
    .await;
    browse(
        "pages",
        &f.quiver.url(""),
        json!({
            "config_fragment": "job_name: node",
            "selector": "{job=\"ui\"}",
            "metric": METRIC,
            "metric_series": 2,
            "instances": ["a", "b"],
        }),
        &f.quiver,
    );
}

/// Behind a proxy that keeps the path: every route (UI and API) under `/prom`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_and_api_under_the_external_url_path() {
    let f = fixture(&["--web.external-url=http://quiver.example:9090/prom/"]).await;
    let q = &f.quiver;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let at = |path: &str| format!("http://127.0.0.1:{}{path}", q.port);
    let root = client.get(at("/")).send().await.unwrap();
    assert!(root.status().is_redirection(), "{}", root.status());
    assert_eq!(root.headers()["location"], "/prom");
    let api = client
        .get(at("/prom/api/v1/query"))
        .query(&[("query", format!("count({METRIC})"))])
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    let page = client.get(at("/prom/query")).send().await.unwrap();
    assert!(
        page.text().await.unwrap().contains("content=\"/prom\""),
        "the page does not carry the prefix"
    );
    assert_eq!(client.get(at("/query")).send().await.unwrap().status(), 404);
    browse(
        "prefixed",
        &at("/prom"),
        json!({"expr": format!("sum({METRIC})")}),
        q,
    );
}

/// Behind a proxy that strips the path: routes at the root (`--web.route-prefix=/`), links
/// and API calls in the page under the external URL's path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_prefix_apart_from_the_external_url() {
    let q = Quiver::start_with_args(
        "global:\n  scrape_interval: 15s\n",
        &[
            "--web.external-url=https://example.org/metrics/",
            "--web.route-prefix=/",
        ],
    )
    .await;
    let page = q.client.get(q.url("/query")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("content=\"/metrics\""), "{html}");
    assert!(html.contains("src=\"/metrics/assets/app.js\""), "{html}");
    let asset = q.client.get(q.url("/assets/app.js")).send().await.unwrap();
    assert_eq!(asset.status(), 200);
    let flags = q.get_json("/api/v1/status/flags", &[]).await;
    assert_eq!(flags["data"]["web.route-prefix"], "/");
    assert_eq!(
        flags["data"]["web.external-url"],
        "https://example.org/metrics/"
    );
}

/// Pages, Prometheus's redirects, assets with types and revalidation, and the gate of
/// `--web.config.file` in front of the UI as in front of the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_redirects_assets_and_authentication() {
    let q = Quiver::start("global:\n  scrape_interval: 15s\n").await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for page in [
        "/query",
        "/sql",
        "/alerts",
        "/targets",
        "/service-discovery",
        "/rules",
        "/tsdb-status",
        "/cardinality",
        "/config",
        "/flags",
        "/status",
    ] {
        let r = client.get(q.url(page)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{page}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(r.text().await.unwrap().contains("/assets/app.js"), "{page}");
    }
    let graph = client
        .get(q.url("/graph?g0.expr=up&g0.tab=0"))
        .send()
        .await
        .unwrap();
    assert!(graph.status().is_redirection());
    assert_eq!(graph.headers()["location"], "/query?g0.expr=up&g0.tab=0");
    let root = client.get(q.url("/")).send().await.unwrap();
    assert_eq!(root.headers()["location"], "/query");
    let js = client.get(q.url("/assets/app.js")).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let etag = js.headers()["etag"].clone();
    let again = client
        .get(q.url("/assets/app.js"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let css = client.get(q.url("/assets/app.css")).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(
        client
            .get(q.url("/assets/nope.js"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        client
            .get(q.url("/assets/../Cargo.toml"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    drop(q);

    // Behind basic authentication, the UI asks for credentials like the API.
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  admin: {hash}\n")).unwrap();
    let flag = format!("--web.config.file={}", web.display());
    let authed = reqwest::Client::builder()
        .default_headers({
            let mut h = reqwest::header::HeaderMap::new();
            let token =
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "admin:s3cret");
            h.insert("authorization", format!("Basic {token}").parse().unwrap());
            h
        })
        .build()
        .unwrap();
    let q = Quiver::start_with_client(
        "global:\n  scrape_interval: 15s\n",
        &[&flag],
        "http",
        authed.clone(),
    )
    .await;
    for path in ["/query", "/assets/app.js"] {
        assert_eq!(
            client.get(q.url(path)).send().await.unwrap().status(),
            401,
            "{path}"
        );
        assert_eq!(
            authed.get(q.url(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
}

/// The UI's own unit tests (URL state with Prometheus's parameters, durations, times), run
/// by Node.js's test runner.
#[test]
fn ui_unit_tests_pass() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/ui");
    let out = Command::new("node")
        .args(["--test", "test/"])
        .current_dir(&ui)
        .output()
        .expect("running node (scripts/test.sh installs Node.js)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node --test failed:\n{text}");
    assert!(text.contains("# fail 0"), "{text}");
}

/// The committed bundle (web/ui/dist, embedded in the binary) is exactly what its source
/// and lockfile build: `npm ci` and the build script into a temporary folder, then compare.
#[test]
fn committed_bundle_matches_its_source() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/ui");
    let npm = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&ui)
        .output()
        .expect("running npm (scripts/test.sh installs Node.js)");
    assert!(
        npm.status.success(),
        "npm ci: {}",
        String::from_utf8_lossy(&npm.stderr)
    );
    let out = tempfile::tempdir().unwrap();
    let build = Command::new("node")
        .arg("build.mjs")
        .arg(out.path())
        .current_dir(&ui)
        .output()
        .expect("running node");
    assert!(
        build.status.success(),
        "build: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let committed = files(&ui.join("dist"));
    let built = files(out.path());
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        built.keys().collect::<Vec<_>>(),
        "the files differ: run scripts/build-ui.sh and commit web/ui/dist"
    );
    for (name, bytes) in &built {
        assert!(
            committed[name] == *bytes,
            "{name} differs from what its source builds: run scripts/build-ui.sh and commit web/ui/dist"
        );
    }
}

fn files(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("reading a folder") {
            let path = entry.expect("folder entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(name, std::fs::read(&path).expect("reading a file"));
            }
        }
    }
    out
}
