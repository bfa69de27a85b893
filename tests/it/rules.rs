//! Rules and alerts against real peers: a real Alertmanager receiving Quiver's alerts (also
//! across an Alertmanager restart), `for`-state restore across a Quiver restart, recording
//! rules compared with a real Prometheus running the same rule file, reloads with a broken
//! rule file, and `quiver check rules` / `quiver test rules` giving promtool's verdicts on
//! the shipped rule files and their tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    Process, Prometheus, Quiver, eventually, free_port, now_ms, peer_bin, series, write_request,
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn quiver_tool(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running quiver");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(peer_bin("promtool"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running promtool");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The rule files shipped in `rules/`.
fn shipped_rule_files() -> Vec<String> {
    [
        "rules/hosts.yml",
        "rules/databases/mysql.yml",
        "rules/databases/postgresql.yml",
        "rules/kubernetes/nodes.yml",
        "rules/kubernetes/pods.yml",
    ]
    .iter()
    .map(|f| repo(f).display().to_string())
    .collect()
}

fn test_files(dir: &Path, suffix: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("test dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(suffix))
        .collect();
    files.sort();
    files
}

#[test]
fn check_rules_agrees_with_promtool() {
    for file in shipped_rule_files() {
        let (q_ok, q_out) = quiver_tool(&["check", "rules", &file], Path::new("."));
        let (p_ok, p_out) = promtool(&["check", "rules", &file], Path::new("."));
        assert!(q_ok, "quiver check rules {file}: {q_out}");
        assert!(p_ok, "promtool check rules {file}: {p_out}");
    }
    let dir = tempfile::tempdir().unwrap();
    let broken = [
        (
            "bad_expr.yml",
            "groups:\n- name: g\n  rules:\n  - record: x\n    expr: sum(\n",
        ),
        // Prometheus 3 takes any UTF-8 name ('a b', `0bad`); an empty one is no name.
        (
            "empty_name.yml",
            "groups:\n- name: g\n  rules:\n  - record: ''\n    expr: up\n",
        ),
        (
            "both.yml",
            "groups:\n- name: g\n  rules:\n  - record: a\n    alert: b\n    expr: up\n",
        ),
        (
            "for_on_record.yml",
            "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n    for: 5m\n",
        ),
        (
            "dup_group.yml",
            "groups:\n- name: g\n  rules: []\n- name: g\n  rules: []\n",
        ),
        ("unknown_field.yml", "groups:\n- name: g\n  rulez: []\n"),
        (
            "bad_template.yml",
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      s: '{{ $labels.x '\n",
        ),
        (
            "empty_label.yml",
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels:\n      '': x\n",
        ),
        ("not_yaml.yml", "groups: [\n"),
    ];
    for (name, text) in broken {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let path = path.display().to_string();
        let (q_ok, q_out) = quiver_tool(&["check", "rules", &path], Path::new("."));
        let (p_ok, p_out) = promtool(&["check", "rules", &path], Path::new("."));
        assert!(!p_ok, "promtool accepted {name}: {p_out}");
        assert!(!q_ok, "quiver accepted {name}: {q_out}");
        assert!(q_out.contains(name), "the error names the file: {q_out}");
    }
    // The first bad expression is reported with its line.
    let (_, out) = quiver_tool(
        &[
            "check",
            "rules",
            &dir.path().join("bad_expr.yml").display().to_string(),
        ],
        Path::new("."),
    );
    assert!(out.contains("bad_expr.yml:4:"), "{out}");
}

#[test]
fn test_rules_gives_promtool_verdicts() {
    let tests = repo("rules/tests");
    let passing = test_files(&tests, ".test.yml");
    assert!(passing.len() >= 4, "{passing:?}");
    for file in &passing {
        let (p_ok, p_out) = promtool(&["test", "rules", file], &tests);
        let (q_ok, q_out) = quiver_tool(&["test", "rules", file], &tests);
        assert!(p_ok, "promtool fails {file}: {p_out}");
        assert!(q_ok, "quiver fails {file} where promtool passes:\n{q_out}");
        assert!(q_out.contains("SUCCESS"), "{q_out}");
    }
    let failing_dir = tests.join("failing");
    let failing = test_files(&failing_dir, ".yml");
    assert!(failing.len() >= 2, "{failing:?}");
    for file in &failing {
        let (p_ok, p_out) = promtool(&["test", "rules", file], &failing_dir);
        let (q_ok, q_out) = quiver_tool(&["test", "rules", file], &failing_dir);
        assert!(!p_ok, "promtool passes {file}: {p_out}");
        assert!(!q_ok, "quiver passes {file} where promtool fails:\n{q_out}");
        assert!(q_out.contains("FAILED"), "{q_out}");
    }
}

#[test]
fn example_alertmanager_config_is_valid() {
    let out = Command::new(peer_bin("amtool"))
        .args([
            "check-config",
            &repo("deploy/alertmanager.yml").display().to_string(),
        ])
        .output()
        .expect("running amtool");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real Alertmanager on a loopback port with clustering off.
struct Alertmanager {
    process: Option<Process>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start(port: u16) -> Alertmanager {
        let mut am = Alertmanager {
            process: None,
            port,
            dir: tempfile::tempdir().unwrap(),
        };
        am.launch();
        am
    }

    fn launch(&mut self) {
        let config = self.dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: \"null\"\n  group_wait: 1s\nreceivers:\n  - name: \"null\"\n",
        )
        .unwrap();
        let storage = self.dir.path().join(format!("data-{}", now_ms()));
        self.process = Some(Process::spawn(
            "alertmanager",
            Command::new(peer_bin("prometheus-alertmanager"))
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.path={}", storage.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
                .arg("--cluster.listen-address="),
            &self.dir.path().join("alertmanager.log"),
        ));
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill9();
        }
    }

    /// The alerts Alertmanager holds (active ones), or None while it is not answering.
    async fn alerts(&self) -> Option<Vec<Value>> {
        let url = format!("http://127.0.0.1:{}/api/v2/alerts", self.port);
        let r = reqwest::get(url).await.ok()?;
        let body: Value = r.json().await.ok()?;
        body.as_array().cloned()
    }
}

async fn get_json(q: &Quiver, path: &str) -> Value {
    q.client
        .get(q.url(path))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

async fn quiver_alerts(q: &Quiver) -> Vec<Value> {
    get_json(q, "/api/v1/alerts").await["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn write_gauge(q: &Quiver, name: &str, labels: &[(&str, &str)], value: f64) {
    let mut all = vec![("__name__", name)];
    all.extend_from_slice(labels);
    let (status, body) = q
        .remote_write(&write_request(vec![series(&all, &[(now_ms(), value)])]))
        .await;
    assert_eq!(status, 204, "{body}");
}

const ALERT_RULES: &str = r#"
groups:
  - name: queues
    interval: 1s
    rules:
      - record: queue:length:sum
        expr: sum by (queue) (queue_length)
      - alert: QueueTooLong
        expr: queue:length:sum > 10
        for: 3s
        labels:
          severity: page
        annotations:
          summary: "Queue {{ $labels.queue }} is long"
          description: "{{ $value }} items waiting"
"#;

fn alerting_config(am_port: u16) -> String {
    format!(
        r#"
global:
  evaluation_interval: 1s
  external_labels:
    cluster: it
rule_files: [RULES_FILE]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{am_port}"]
"#
    )
}

/// Quiver with `rules` in its own file; `RULES_FILE` in `config` names that file.
async fn start_with_rules(
    config: &str,
    rules: &str,
    args: &[&str],
) -> (Quiver, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, rules).unwrap();
    let config = config.replace("RULES_FILE", &path.display().to_string());
    (Quiver::start_with_args(&config, args).await, dir, path)
}

fn alert_named<'a>(alerts: &'a [Value], name: &str) -> Option<&'a Value> {
    alerts.iter().find(|a| a["labels"]["alertname"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_a_real_alertmanager_and_resolve() {
    let am_port = free_port();
    let mut am = Alertmanager::start(am_port);
    let (q, _rules_dir, _) = start_with_rules(
        &alerting_config(am_port),
        ALERT_RULES,
        &["--rules.alert.resend-delay=1s"],
    )
    .await;
    eventually("alertmanager up", Duration::from_secs(30), || am.alerts()).await;
    write_gauge(&q, "queue_length", &[("queue", "q1")], 50.0).await;

    let pending = eventually("pending alert", Duration::from_secs(20), || async {
        let alerts = quiver_alerts(&q).await;
        alert_named(&alerts, "QueueTooLong")
            .filter(|a| a["state"] == "pending")
            .cloned()
    })
    .await;
    assert_eq!(pending["labels"]["queue"], "q1");
    assert_eq!(pending["annotations"]["summary"], "Queue q1 is long");
    assert_eq!(pending["annotations"]["description"], "50 items waiting");
    assert_eq!(pending["value"], "5e+01");
    // Pending alerts are not sent.
    assert!(am.alerts().await.unwrap_or_default().is_empty());

    eventually("firing alert", Duration::from_secs(20), || async {
        let alerts = quiver_alerts(&q).await;
        alert_named(&alerts, "QueueTooLong").filter(|a| a["state"] == "firing")?;
        Some(())
    })
    .await;
    let received = eventually("alert in alertmanager", Duration::from_secs(20), || async {
        alert_named(&am.alerts().await?, "QueueTooLong").cloned()
    })
    .await;
    assert_eq!(received["labels"]["queue"], "q1");
    assert_eq!(received["labels"]["severity"], "page");
    assert_eq!(
        received["labels"]["cluster"], "it",
        "external labels are added"
    );
    assert_eq!(received["annotations"]["summary"], "Queue q1 is long");
    assert_eq!(received["annotations"]["description"], "50 items waiting");
    let generator = received["generatorURL"].as_str().unwrap_or_default();
    assert!(
        generator.starts_with(&q.url("/graph?g0.expr=")),
        "{generator}"
    );

    // ALERTS and the recording rule are queryable, by PromQL and SQL.
    let firing = get_json(
        &q,
        "/api/v1/query?query=ALERTS%7Balertname%3D%22QueueTooLong%22%2Calertstate%3D%22firing%22%7D",
    )
    .await;
    assert_eq!(firing["data"]["result"].as_array().map(Vec::len), Some(1));
    let rows = q
        .rows(r#"SELECT queue, value FROM "queue:length:sum""#)
        .await;
    assert!(
        rows.iter().any(|r| r[0] == "q1" && r[1] == 50.0),
        "{rows:?}"
    );

    // Alertmanager goes away and comes back empty: the alert arrives again.
    am.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    am.launch();
    eventually(
        "alert re-delivered after restart",
        Duration::from_secs(30),
        || async { alert_named(&am.alerts().await?, "QueueTooLong").map(|_| ()) },
    )
    .await;

    // The condition clears: resolved in Quiver and in Alertmanager.
    write_gauge(&q, "queue_length", &[("queue", "q1")], 0.0).await;
    eventually(
        "alert resolved in quiver",
        Duration::from_secs(20),
        || async {
            let alerts = quiver_alerts(&q).await;
            alert_named(&alerts, "QueueTooLong").is_none().then_some(())
        },
    )
    .await;
    eventually(
        "alert resolved in alertmanager",
        Duration::from_secs(30),
        || async {
            let alerts = am.alerts().await?;
            match alert_named(&alerts, "QueueTooLong") {
                None => Some(()),
                Some(a) => {
                    let ends = chrono::DateTime::parse_from_rfc3339(a["endsAt"].as_str()?).ok()?;
                    (ends.timestamp_millis() <= now_ms()).then_some(())
                }
            }
        },
    )
    .await;

    let rules = get_json(&q, "/api/v1/rules").await;
    let group = &rules["data"]["groups"][0];
    assert_eq!(group["name"], "queues");
    assert_eq!(group["interval"], 1.0);
    assert_eq!(group["rules"][0]["type"], "recording");
    assert_eq!(group["rules"][0]["health"], "ok");
    assert_eq!(group["rules"][1]["type"], "alerting");
    assert_eq!(group["rules"][1]["duration"], 3.0);
    let only_alerts = get_json(&q, "/api/v1/rules?type=alert").await;
    assert_eq!(
        only_alerts["data"]["groups"][0]["rules"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let ams = get_json(&q, "/api/v1/alertmanagers").await;
    assert_eq!(
        ams["data"]["activeAlertmanagers"][0]["url"],
        format!("http://127.0.0.1:{am_port}/api/v2/alerts")
    );
    let metrics = q.metrics_text().await;
    assert!(
        metrics.contains("quiver_notifications_sent_total"),
        "{metrics}"
    );
    assert!(metrics.contains("quiver_rule_group_iterations_missed_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_state_survives_a_restart() {
    let rules = r#"
groups:
  - name: slow
    interval: 1s
    rules:
      - alert: DiskFilling
        expr: disk_used_ratio > 0.9
        for: 10m
"#;
    let (mut q, _rules_dir, _) = start_with_rules(
        "global:\n  evaluation_interval: 1s\nrule_files: [RULES_FILE]\n",
        rules,
        &["--rules.alert.for-grace-period=1s"],
    )
    .await;
    write_gauge(&q, "disk_used_ratio", &[("disk", "sda")], 0.95).await;
    let first = eventually("pending alert", Duration::from_secs(20), || async {
        let alerts = quiver_alerts(&q).await;
        alert_named(&alerts, "DiskFilling")?["activeAt"]
            .as_str()
            .map(str::to_string)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    if let Some(mut p) = q.process.take() {
        p.terminate();
    }
    let restarted_at = now_ms();
    q.launch().await;
    let restored = eventually("alert after restart", Duration::from_secs(20), || async {
        let alerts = quiver_alerts(&q).await;
        alert_named(&alerts, "DiskFilling")?["activeAt"]
            .as_str()
            .map(str::to_string)
    })
    .await;
    let parse = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .timestamp_millis()
    };
    let (first, restored) = (parse(&first), parse(&restored));
    // Without restoring, activeAt would be the first evaluation after the restart. Restored,
    // it is the old activeAt moved forward by the downtime: before the restart.
    assert!(restored >= first, "{restored} < {first}");
    assert!(
        restored < restarted_at,
        "activeAt {restored} was not restored (restart at {restarted_at}):\n{}",
        q.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_rule_file_is_refused_on_reload_and_old_rules_keep_running() {
    let (q, _rules_dir, rules_path) = start_with_rules(
        "global:\n  evaluation_interval: 1s\nrule_files: [RULES_FILE]\n",
        "groups:\n  - name: first\n    rules:\n      - record: one\n        expr: vector(1)\n",
        &["--web.enable-lifecycle"],
    )
    .await;
    std::fs::write(
        &rules_path,
        "groups:\n  - name: second\n    rules:\n      - record: two\n        expr: sum(\n",
    )
    .unwrap();
    let r = q.client.post(q.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let body = r.text().await.unwrap();
    assert!(body.contains("rules.yml:4"), "{body}");
    let groups = get_json(&q, "/api/v1/rules").await;
    assert_eq!(groups["data"]["groups"][0]["name"], "first");
    std::fs::write(
        &rules_path,
        "groups:\n  - name: second\n    rules:\n      - record: two\n        expr: vector(2)\n",
    )
    .unwrap();
    let r = q.client.post(q.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let groups = get_json(&q, "/api/v1/rules").await;
    assert_eq!(groups["data"]["groups"][0]["name"], "second");
    eventually(
        "recorded by the new rule",
        Duration::from_secs(20),
        || async {
            let v = get_json(&q, "/api/v1/query?query=two").await;
            (v["data"]["result"][0]["value"][1] == "2").then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_rules_are_evaluated_on_schedule() {
    let rules = r#"
groups:
  - name: sql
    interval: 1s
    rules:
      - record: job:requests:count_sql
        sql: SELECT job, count(*) AS value FROM requests_total GROUP BY job
"#;
    let (q, _rules_dir, _) = start_with_rules(
        "global:\n  evaluation_interval: 1s\nrule_files: [RULES_FILE]\n",
        rules,
        &[],
    )
    .await;
    write_gauge(
        &q,
        "requests_total",
        &[("job", "api"), ("code", "200")],
        1.0,
    )
    .await;
    write_gauge(
        &q,
        "requests_total",
        &[("job", "api"), ("code", "500")],
        1.0,
    )
    .await;
    eventually("sql rule result", Duration::from_secs(20), || async {
        let v = get_json(&q, "/api/v1/query?query=job%3Arequests%3Acount_sql").await;
        let r = &v["data"]["result"][0];
        (r["metric"]["job"] == "api" && r["value"][1] == "2").then_some(())
    })
    .await;
}

/// The same rule file in Prometheus and Quiver over the same remote-written data: the
/// recorded series must match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_rules_match_prometheus() {
    let rules = r#"
groups:
  - name: recorded
    interval: 1s
    rules:
      - record: job:http_requests:rate5m
        expr: sum by (job) (rate(http_requests_total[5m]))
      - record: instance:temperature:max
        expr: max by (instance) (temperature_celsius)
      - record: job:temperature:avg_scaled
        expr: avg by (job) (temperature_celsius) * 2 + 1
      - record: temperature:hot
        expr: temperature_celsius > 30
        labels:
          severity: warm
"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
    let prom_config = format!(
        "global:\n  evaluation_interval: 1s\nrule_files: [{}]\n",
        dir.path().join("rules.yml").display()
    );
    let prom = Prometheus::start(&prom_config, &["--web.enable-remote-write-receiver"]).await;
    let (q, _rules_dir, _) = start_with_rules(
        "global:\n  evaluation_interval: 1s\nrule_files: [RULES_FILE]\n",
        rules,
        &[],
    )
    .await;
    // Data from 10 minutes ago to 10 minutes ahead on a 15 s grid: any evaluation time in
    // between sees the same shape (a counter growing linearly, constant gauges).
    let start = now_ms() - 600_000;
    let mut timeseries = Vec::new();
    for (job, instance, slope) in [("api", "a:1", 2.0), ("api", "a:2", 3.0), ("db", "d:1", 0.5)] {
        let counter: Vec<(i64, f64)> = (0..80)
            .map(|i| (start + i * 15_000, slope * 15.0 * i as f64))
            .collect();
        timeseries.push(series(
            &[
                ("__name__", "http_requests_total"),
                ("job", job),
                ("instance", instance),
            ],
            &counter,
        ));
        let temp = 20.0 + slope * 5.0;
        let gauge: Vec<(i64, f64)> = (0..80).map(|i| (start + i * 15_000, temp)).collect();
        timeseries.push(series(
            &[
                ("__name__", "temperature_celsius"),
                ("job", job),
                ("instance", instance),
            ],
            &gauge,
        ));
    }
    let request = write_request(timeseries);
    prom.remote_write(&request).await;
    let (status, body) = q.remote_write(&request).await;
    assert_eq!(status, 204, "{body}");

    for metric in [
        "job:http_requests:rate5m",
        "instance:temperature:max",
        "job:temperature:avg_scaled",
        "temperature:hot",
    ] {
        let fetch = |url: String| async move {
            let v: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
            let result = v["data"]["result"].as_array()?.clone();
            (!result.is_empty()).then_some(result)
        };
        let path = format!("/api/v1/query?query={}", metric.replace(':', "%3A"));
        let expected = eventually(
            &format!("prometheus {metric}"),
            Duration::from_secs(30),
            || fetch(prom.url(&path)),
        )
        .await;
        let got = eventually(&format!("quiver {metric}"), Duration::from_secs(30), || {
            fetch(q.url(&path))
        })
        .await;
        let normalize = |result: Vec<Value>| {
            let mut out: Vec<(String, f64)> = result
                .iter()
                .map(|s| {
                    (
                        s["metric"].to_string(),
                        s["value"][1]
                            .as_str()
                            .unwrap_or("NaN")
                            .parse()
                            .unwrap_or(f64::NAN),
                    )
                })
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        };
        let (expected, got) = (normalize(expected), normalize(got));
        assert_eq!(
            expected.iter().map(|e| &e.0).collect::<Vec<_>>(),
            got.iter().map(|g| &g.0).collect::<Vec<_>>(),
            "{metric}: label sets differ"
        );
        for (e, g) in expected.iter().zip(&got) {
            assert!(
                (e.1 - g.1).abs() <= 1e-9 * e.1.abs().max(1.0),
                "{metric} {}: prometheus {} quiver {}",
                e.0,
                e.1,
                g.1
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanagers_from_file_sd_follow_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("alertmanagers.json");
    std::fs::write(&targets, r#"[{"targets": ["127.0.0.1:19001"]}]"#).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 15s\nalerting:\n  alertmanagers:\n    - file_sd_configs:\n        - files: ['{}']\n",
        targets.display()
    );
    let q = Quiver::start(&config).await;
    assert_eq!(urls(&q).await, ["http://127.0.0.1:19001/api/v2/alerts"]);
    // The file changes: the new Alertmanagers are used without a reload.
    std::fs::write(
        &targets,
        r#"[{"targets": ["127.0.0.1:19002", "127.0.0.1:19003"]}]"#,
    )
    .unwrap();
    eventually(
        "Alertmanagers from the changed file",
        Duration::from_secs(15),
        || async {
            (urls(&q).await
                == [
                    "http://127.0.0.1:19002/api/v2/alerts",
                    "http://127.0.0.1:19003/api/v2/alerts",
                ])
            .then_some(())
        },
    )
    .await;
    let metrics = q.metrics_text().await;
    assert!(
        metrics.contains("quiver_notifications_alertmanagers_discovered 2"),
        "{metrics}"
    );
}

async fn urls(q: &Quiver) -> Vec<String> {
    get_json(q, "/api/v1/alertmanagers").await["data"]["activeAlertmanagers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["url"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}
