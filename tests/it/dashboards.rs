//! The Grafana files in `provisioning/`: the committed dashboards are what the generator
//! makes, and every query of every dashboard runs against Quiver as Grafana sends it
//! (template variables and macros expanded as Grafana expands them). The panels of the
//! exporters running here (Quiver itself, node_exporter, and the exporters of a Redis, a
//! MariaDB and a PostgreSQL the test starts, and kube-state-metrics and cAdvisor expositions
//! served from tests/it/data) must return data: an empty panel is a broken panel.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A program of the tools venv the test command installs (`QUIVER_TOOLS_VENV`), or the one
/// on the PATH.
pub fn tool(name: &str) -> String {
    match std::env::var("QUIVER_TOOLS_VENV") {
        Ok(venv) => format!("{venv}/bin/{name}"),
        Err(_) => name.to_string(),
    }
}

/// Every dashboard JSON under `provisioning/dashboards/`, with its path.
fn dashboards() -> Vec<(PathBuf, Value)> {
    let root = repo().join("provisioning/dashboards");
    let mut out = Vec::new();
    for folder in std::fs::read_dir(&root).expect("provisioning/dashboards") {
        let folder = folder.unwrap().path();
        if !folder.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&folder).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap();
                let json = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.push((path, json));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Panels, rows' panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        if panel["type"] == "row" {
            out.extend(panel["panels"].as_array().into_iter().flatten());
        } else {
            out.push(panel);
        }
    }
    out
}

#[test]
fn committed_dashboards_are_what_the_generator_makes() {
    let python = tool("python");
    let out = Command::new(&python)
        .arg(repo().join("provisioning/generator/generate.py"))
        .arg("--check")
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    assert!(
        out.status.success(),
        "the dashboards differ from the generator's (run it without --check): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dashboards_refer_to_datasources_by_variable_and_have_the_current_schema() {
    let all = dashboards();
    let folders: Vec<String> = all
        .iter()
        .map(|(p, _)| {
            let folder = p.parent().unwrap().file_name().unwrap();
            folder.to_string_lossy().into_owned()
        })
        .collect();
    for folder in ["infrastructure", "databases", "kubernetes", "quiver"] {
        assert!(
            folders.iter().any(|f| f == folder),
            "no dashboard in {folder}/"
        );
    }
    let mut sql_panels = 0;
    for (path, d) in &all {
        assert_eq!(d["schemaVersion"], 41, "{}", path.display());
        assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()));
        for panel in panels(d) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let uid = target["datasource"]["uid"].as_str().unwrap_or_default();
                assert!(
                    uid == "${datasource}" || uid == "${sql_datasource}",
                    "{}: panel {} uses datasource {uid:?}",
                    path.display(),
                    panel["title"]
                );
                sql_panels += usize::from(target["rawSql"].is_string());
            }
        }
    }
    assert!(sql_panels >= 3, "SQL panels: {sql_panels}");
}

/// What Grafana puts in place of `$__interval`, `$__rate_interval` and `$__range` for a
/// panel over the last `RANGE_SECS` at a 15 s step (the datasource's `timeInterval`):
/// `$__rate_interval` is max(interval + scrape interval, 4 × scrape interval).
const STEP_SECS: i64 = 15;
const RANGE_SECS: i64 = 3600;

fn expand_promql(expr: &str, variables: &[(String, String)]) -> String {
    let mut out = expr
        .replace("$__rate_interval", "60s")
        .replace("$__interval", &format!("{STEP_SECS}s"))
        .replace("$__range", &format!("{RANGE_SECS}s"));
    // Longest names first, so `$instance` is not taken for `$inst` + "ance".
    let mut sorted = variables.to_vec();
    sorted.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    for (name, value) in &sorted {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

/// An interval such as `5m` or `'5m'` in seconds.
fn interval_secs(text: &str) -> i64 {
    let text = text.trim().trim_matches('\'');
    let (number, unit) = text.split_at(text.len() - 1);
    let n: i64 = number.parse().unwrap_or_else(|_| panic!("interval {text}"));
    n * match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        other => panic!("unit {other}"),
    }
}

/// Grafana's PostgreSQL macros, as its SQL datasource expands them.
fn expand_sql(sql: &str, from_ms: i64, to_ms: i64) -> String {
    let rfc3339 = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    };
    let mut out = sql.to_string();
    while let Some(start) = out.find("$__") {
        let open = out[start..].find('(').map(|i| start + i).expect("macro (");
        let close = out[open..].find(')').map(|i| open + i).expect("macro )");
        let name = &out[start + 3..open];
        let args: Vec<&str> = out[open + 1..close].split(',').map(str::trim).collect();
        let expansion = match name {
            "timeFilter" => format!(
                "{} BETWEEN '{}' AND '{}'",
                args[0],
                rfc3339(from_ms),
                rfc3339(to_ms)
            ),
            "timeGroup" | "timeGroupAlias" => {
                let secs = interval_secs(args[1]);
                let group = format!("floor(extract(epoch from {})/{secs})*{secs}", args[0]);
                match name {
                    "timeGroupAlias" => format!("{group} AS \"time\""),
                    _ => group,
                }
            }
            other => panic!("macro $__{other} is not expanded by this test"),
        };
        out.replace_range(start..=close, &expansion);
    }
    out
}

/// Runs `sql` over the PostgreSQL wire protocol with psql, as Grafana's datasource would
/// (user grafana with the development configuration's password, over TLS with its
/// self-signed certificate); returns the rows.
fn psql_rows(pg_port: u16, sql: &str) -> Result<Vec<String>, String> {
    let password = std::fs::read_to_string(repo().join("deploy/dev/grafana.pw")).unwrap();
    let out = Command::new("psql")
        .env("PGPASSWORD", password.trim())
        .arg("-X")
        .arg(format!(
            "host=127.0.0.1 port={pg_port} user=grafana dbname=quiver sslmode=require"
        ))
        .args(["-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// The values a template variable offers, from its `label_values(<selector>, <label>)`
/// query; All becomes `(a|b|…)` as Grafana sends a multi-value variable without `allValue`.
async fn resolve_variable(q: &Quiver, query: &str, known: &[(String, String)]) -> String {
    let query = expand_promql(query, known);
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("variable query {query}"));
    let (selector, label) = inner
        .rsplit_once(',')
        .expect("label_values(selector, label)");
    let body = q
        .get_json(
            &format!("/api/v1/label/{}/values", label.trim()),
            &[("match[]", selector.trim())],
        )
        .await;
    let values: Vec<String> = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(regex_escape))
        .collect();
    format!("({})", values.join("|"))
}

/// A value as a regex inside a PromQL string, as Grafana escapes it: `.` becomes `\\.`
/// (a backslash for the regex, doubled for the string literal).
fn regex_escape(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push_str("\\\\");
        }
        out.push(c);
    }
    out
}

/// Writes history a few minutes old (cut into blocks at once, for the block panels) and
/// one out-of-order sample (for the rejected-samples panel).
async fn remote_write_history(q: &Quiver) {
    let end = now_ms();
    let samples: Vec<(i64, f64)> = (0..60)
        .map(|i| (end - 10 * 60_000 + i * 10_000, i as f64))
        .collect();
    let history = series(
        &[("__name__", "dashboard_test"), ("job", "history")],
        &samples,
    );
    assert_eq!(q.remote_write(&write_request(vec![history])).await.0, 204);
    let late = series(
        &[("__name__", "dashboard_test"), ("job", "history")],
        &[(end - 10 * 60_000 + 5_000, 1.0)],
    );
    let (status, body) = q.remote_write(&write_request(vec![late])).await;
    assert_eq!(status, 400, "an out-of-order sample is refused: {body}");
}

/// Redis on a loopback port with some keys read and missed, and redis_exporter watching it.
fn start_redis(dir: &Path) -> (Vec<Process>, u16) {
    let (redis_port, exporter_port) = (free_port(), free_port());
    let redis = Process::spawn(
        "redis-server",
        Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &redis_port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir),
        &dir.join("redis.log"),
    );
    let cli = |args: &[&str]| {
        Command::new("redis-cli")
            .args(["-p", &redis_port.to_string()])
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cli(&["ping"]) {
        assert!(std::time::Instant::now() < deadline, "redis did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    for args in [
        &["set", "session:1", "a"][..],
        &["set", "session:2", "b"],
        &["get", "session:1"],
        &["get", "session:missing"],
    ] {
        assert!(cli(args), "redis-cli {args:?}");
    }
    let exporter = Process::spawn(
        "redis_exporter",
        Command::new("prometheus-redis-exporter")
            .arg(format!("-redis.addr=redis://127.0.0.1:{redis_port}"))
            .arg(format!("-web.listen-address=127.0.0.1:{exporter_port}")),
        &dir.join("redis_exporter.log"),
    );
    (vec![exporter, redis], exporter_port)
}

/// Waits until `ready` holds, or panics naming `what` and its log.
fn wait_for(what: &str, log: &Path, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// MariaDB in a fresh data directory (on its socket and a loopback port), with
/// mysqld_exporter watching it.
fn start_mariadb(dir: &Path) -> (Vec<Process>, u16) {
    let data = dir.join("mariadb");
    let socket = dir.join("mariadb.sock");
    let install = Command::new("mariadb-install-db")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ])
        .output()
        .expect("mariadb-install-db");
    assert!(install.status.success(), "{install:?}");
    let log = dir.join("mariadb.log");
    let server = Process::spawn(
        "mariadbd",
        Command::new("mariadbd")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.join("mariadb.pid").display()))
            .arg(format!("--port={}", free_port()))
            .args(["--bind-address=127.0.0.1", "--user=root", "--skip-log-bin"])
            .arg("--innodb-buffer-pool-size=16M"),
        &log,
    );
    let sql = |statement: &str| {
        Command::new("mariadb")
            .arg(format!("--socket={}", socket.display()))
            .args(["-uroot", "-e", statement])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    wait_for("mariadbd", &log, || sql("SELECT 1"));
    assert!(sql(
        "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY); INSERT INTO shop.orders VALUES (1), (2); SELECT count(*) FROM shop.orders"
    ));
    let exporter_port = free_port();
    let exporter = Process::spawn(
        "mysqld_exporter",
        Command::new("prometheus-mysqld-exporter")
            .env(
                "DATA_SOURCE_NAME",
                format!("root@unix({})/", socket.display()),
            )
            .arg(format!("--web.listen-address=127.0.0.1:{exporter_port}")),
        &dir.join("mysqld_exporter.log"),
    );
    (vec![exporter, server], exporter_port)
}

/// The uid and gid of a system user.
fn user_ids(name: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, name]).output().expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a numeric id")
    };
    (id("-u"), id("-g"))
}

/// PostgreSQL in a fresh cluster (as the `postgres` user: it refuses to run as root; the
/// server is our child itself, so stopping it stops the cluster), with postgres_exporter
/// watching it.
fn start_postgresql(dir: &Path) -> (Vec<Process>, u16) {
    use std::os::unix::process::CommandExt;
    let (uid, gid) = user_ids("postgres");
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .find(|p| p.join("initdb").exists())
        .expect("initdb");
    let root = dir.join("postgresql");
    std::fs::create_dir(&root).unwrap();
    let chown = Command::new("chown")
        .arg("postgres")
        .arg(&root)
        .status()
        .unwrap();
    assert!(chown.success());
    let data = root.join("data");
    let init = Command::new(bin.join("initdb"))
        .uid(uid)
        .gid(gid)
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres"])
        .output()
        .expect("initdb");
    assert!(init.status.success(), "{init:?}");
    let port = free_port();
    let log = dir.join("postgresql.log");
    let server = Process::spawn(
        "postgres",
        Command::new(bin.join("postgres"))
            .uid(uid)
            .gid(gid)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&root)
            .args(["-c", "listen_addresses=127.0.0.1"]),
        &log,
    );
    let url = format!("postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
    let sql = |statement: &str| {
        Command::new("psql")
            .args([url.as_str(), "-Atc", statement])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    wait_for("postgres", &log, || sql("SELECT 1"));
    assert!(sql(
        "CREATE TABLE orders (id int primary key); INSERT INTO orders VALUES (1), (2); SELECT count(*) FROM orders"
    ));
    let exporter_port = free_port();
    let exporter = Process::spawn(
        "postgres_exporter",
        Command::new("prometheus-postgres-exporter")
            .env("DATA_SOURCE_NAME", url)
            .arg(format!("--web.listen-address=127.0.0.1:{exporter_port}")),
        &dir.join("postgres_exporter.log"),
    );
    (vec![exporter, server], exporter_port)
}

/// A static server for the Kubernetes expositions in tests/it/data: kube-state-metrics on
/// `/metrics`, the kubelet's cAdvisor on `/metrics/cadvisor`, with the text format's type.
async fn serve_kubernetes_expositions() -> u16 {
    let read =
        |name: &str| std::fs::read_to_string(repo().join("tests/it/data").join(name)).unwrap();
    let (ksm, cadvisor) = (read("kube-state-metrics.prom"), read("cadvisor.prom"));
    let text = |body: String| {
        move || async move {
            (
                [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                body,
            )
        }
    };
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(text(ksm)))
        .route("/metrics/cadvisor", axum::routing::get(text(cadvisor)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

/// The shipped development configuration (deploy/dev/quiver.yml), pointed at this test's
/// peers: its jobs, relabeling, rule files and PostgreSQL user as they are, with the
/// file_sd target files written for the loopback ports here (same labels), scrapes and
/// rules every second, an Alertmanager that is not there, one-minute blocks, the test's
/// own rules added, and a job for the Kubernetes expositions.
fn quiver_config(dir: &Path, port: u16, ports: &Ports, rules: &Path, dead_port: u16) -> String {
    let dev = repo().join("deploy/dev");
    let mut config: Value =
        serde_norway::from_str(&std::fs::read_to_string(dev.join("quiver.yml")).unwrap()).unwrap();
    let global = &mut config["global"];
    for key in ["scrape_interval", "scrape_timeout", "evaluation_interval"] {
        global[key] = "1s".into();
    }
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] =
        serde_json::json!([format!("127.0.0.1:{dead_port}")]);
    let mut rule_files: Vec<Value> = config["rule_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            dev.join(f.as_str().unwrap())
                .to_string_lossy()
                .into_owned()
                .into()
        })
        .collect();
    rule_files.push(rules.to_string_lossy().into_owned().into());
    config["rule_files"] = rule_files.into();
    let targets = dir.join("targets");
    std::fs::create_dir_all(&targets).unwrap();
    // The shipped target files with each compose service replaced by its loopback port.
    let loopback = |target: &str| -> String {
        let port = match target.split(':').next().unwrap() {
            "node-exporter" => ports.node,
            "mysqld-exporter" => ports.mysql,
            "postgres-exporter" => ports.postgres,
            "redis-exporter" => ports.redis,
            other => panic!("no test peer for {other}"),
        };
        format!("127.0.0.1:{port}")
    };
    for job in config["scrape_configs"].as_array_mut().unwrap() {
        if job["job_name"] == "quiver" {
            job["static_configs"][0]["targets"] = serde_json::json!([format!("127.0.0.1:{port}")]);
        }
        if job["job_name"] == "alertmanager" {
            job["static_configs"][0]["targets"] =
                serde_json::json!([format!("127.0.0.1:{dead_port}")]);
        }
        let file_sd = job.get_mut("file_sd_configs").and_then(Value::as_array_mut);
        for sd in file_sd.into_iter().flatten() {
            let mut files = Vec::new();
            for file in sd["files"].as_array().unwrap() {
                let name = file.as_str().unwrap();
                let mut groups: Value =
                    serde_norway::from_str(&std::fs::read_to_string(dev.join(name)).unwrap())
                        .unwrap();
                for group in groups.as_array_mut().unwrap() {
                    let rewritten: Vec<String> = group["targets"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| loopback(t.as_str().unwrap()))
                        .collect();
                    group["targets"] = serde_json::json!(rewritten);
                }
                let path = targets.join(Path::new(name).file_name().unwrap());
                std::fs::write(&path, serde_norway::to_string(&groups).unwrap()).unwrap();
                files.push(Value::from(path.to_string_lossy().into_owned()));
            }
            sd["files"] = files.into();
        }
    }
    let jobs = config["scrape_configs"].as_array_mut().unwrap();
    for (name, path) in [
        ("kube-state-metrics", "/metrics"),
        ("kubelet-cadvisor", "/metrics/cadvisor"),
    ] {
        jobs.push(serde_json::json!({
            "job_name": name,
            "metrics_path": path,
            "static_configs": [{"targets": [format!("127.0.0.1:{}", ports.kubernetes)]}],
        }));
    }
    config["storage"]["block_duration"] = "1m".into();
    config["storage"]["out_of_order_time_window"] = "0s".into();
    // The development certificate, made by the shipped script.
    let certs = dir.join("certs");
    let made = Command::new("bash")
        .arg(repo().join("scripts/dev-certs.sh"))
        .arg(&certs)
        .output()
        .expect("scripts/dev-certs.sh");
    assert!(made.status.success(), "{made:?}");
    for key in ["cert_file", "key_file"] {
        let file = config["postgres"]["tls"][key].as_str().unwrap().to_string();
        let name = Path::new(&file).file_name().unwrap();
        config["postgres"]["tls"][key] = certs.join(name).to_string_lossy().into_owned().into();
    }
    let user = &mut config["postgres"]["users"][0];
    let password_file = dev.join(user["password_file"].as_str().unwrap());
    user["password_file"] = password_file.to_string_lossy().into_owned().into();
    serde_norway::to_string(&config).unwrap()
}

/// The loopback ports of the test's peers.
struct Ports {
    node: u16,
    redis: u16,
    mysql: u16,
    postgres: u16,
    kubernetes: u16,
}

const RULES: &str = "groups:
  - name: dashboard-test
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: AlwaysFiring
        expr: vector(1)
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_runs_and_local_panels_have_data() {
    let dir = tempfile::tempdir().unwrap();
    let (_exporter, exporter_port, _exporter_dir) = start_node_exporter();
    let (_redis, redis_exporter_port) = start_redis(dir.path());
    let (_mariadb, mysqld_exporter_port) = start_mariadb(dir.path());
    let (_postgresql, postgres_exporter_port) = start_postgresql(dir.path());
    let kubernetes_port = serve_kubernetes_expositions().await;
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let mut q = Quiver::start("global:\n  scrape_interval: 15s\n").await;
    let ports = Ports {
        node: exporter_port,
        redis: redis_exporter_port,
        mysql: mysqld_exporter_port,
        postgres: postgres_exporter_port,
        kubernetes: kubernetes_port,
    };
    q.write_config(&quiver_config(
        dir.path(),
        q.port,
        &ports,
        &rules,
        free_port(),
    ));
    q.stop();
    q.launch().await;
    remote_write_history(&q).await;
    // Both jobs scraped a few times, a block cut, rules evaluated, chunk bytes measured.
    eventually(
        "scrapes, rules and a block",
        Duration::from_secs(90),
        || {
            let q = &q;
            async move {
                let text = q.metrics_text().await;
                let ready = text.contains("quiver_bucket_bytes{")
                    && text.contains("quiver_rule_evaluations_total{")
                    && text.lines().any(|l| {
                        l.starts_with("quiver_tsdb_head_chunks_bytes ") && !l.ends_with(" 0")
                    });
                let up = q
                    .get_json("/api/v1/query", &[("query", "count(up == 1)")])
                    .await;
                let jobs = up["data"]["result"][0]["value"][1].as_str() == Some("7");
                (ready && jobs).then_some(())
            }
        },
    )
    .await;
    // A dashboard's queries read the blocks again and again: the first read misses the
    // block caches, the next ones hit (for the cache panel).
    for _ in 0..3 {
        let body = q
            .get_json(
                "/api/v1/query",
                &[("query", "count_over_time(dashboard_test[1h])")],
            )
            .await;
        assert_eq!(body["status"], "success", "{body}");
    }
    tokio::time::sleep(Duration::from_secs(5)).await;

    let end_ms = now_ms();
    let start_ms = end_ms - RANGE_SECS * 1000;
    let (start, end) = ((start_ms / 1000).to_string(), (end_ms / 1000).to_string());
    let local = [
        "quiver-server",
        "quiver-hosts",
        "quiver-sql-overview",
        "quiver-redis",
        "quiver-mysql",
        "quiver-postgresql",
        "quiver-kubernetes",
    ];
    let mut failures = Vec::new();
    let mut ran = 0;
    for (path, d) in dashboards() {
        let uid = d["uid"].as_str().unwrap().to_string();
        // Variables in order, each resolved with the ones before it.
        let mut variables: Vec<(String, String)> = Vec::new();
        for variable in d["templating"]["list"].as_array().into_iter().flatten() {
            if variable["type"] == "query" {
                let query = variable["query"].as_str().expect("variable query");
                let value = resolve_variable(&q, query, &variables).await;
                let name = variable["name"].as_str().unwrap().to_string();
                if local.contains(&uid.as_str()) && value == "()" {
                    failures.push(format!("{uid}: variable {name} has no values"));
                }
                variables.push((name, value));
            }
        }
        for panel in panels(&d) {
            let title = panel["title"].as_str().unwrap_or_default();
            let mut has_data = false;
            for target in panel["targets"].as_array().into_iter().flatten() {
                ran += 1;
                if let Some(raw) = target["rawSql"].as_str() {
                    let sql = expand_sql(raw, start_ms, end_ms);
                    match psql_rows(q.pg_port, &sql) {
                        Ok(rows) => has_data |= !rows.is_empty(),
                        Err(e) => failures.push(format!("{uid} / {title}: {sql}: {e}")),
                    }
                    continue;
                }
                let expr = expand_promql(target["expr"].as_str().expect("expr"), &variables);
                let body = post_form(
                    &q.client,
                    &q.url("/api/v1/query_range"),
                    &[
                        ("query", expr.clone()),
                        ("start", start.clone()),
                        ("end", end.clone()),
                        ("step", STEP_SECS.to_string()),
                    ],
                )
                .await;
                if body["status"] != "success" {
                    failures.push(format!("{uid} / {title}: {expr}: {body}"));
                    continue;
                }
                has_data |= body["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty());
            }
            if local.contains(&uid.as_str()) && !has_data {
                failures.push(format!("{uid} / {title}: no data ({})", path.display()));
            }
        }
    }
    assert!(ran >= 60, "only {ran} targets");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
