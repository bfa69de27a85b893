//! `quiver test rules`: rule unit tests in promtool's test-file format (`input_series`,
//! `alert_rule_test`, `promql_expr_test`), evaluated by the same rule engine the server runs,
//! over a scratch storage, with promtool's verdicts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use super::file::{GroupSpec, load_file};
use super::group::{EvalEnv, Group};
use super::query::{EngineQuerier, RuleQuerier};
use crate::config::{FsyncPolicy, PromDuration, StorageConfig};
use crate::model::{Labels, Sample, SeriesSamples, stale_nan};
use crate::query::promql::PromqlEngine;
use crate::storage::{Storage, StorageOptions};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<PromDuration>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
    #[serde(default)]
    fuzzy_compare: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    interval: Option<PromDuration>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: Labels,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    values: serde_norway::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    eval_time: PromDuration,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedAlert {
    #[serde(default)]
    exp_labels: Labels,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    eval_time: PromDuration,
    #[serde(default)]
    exp_samples: Vec<ExpectedSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedSample {
    #[serde(default)]
    labels: String,
    value: serde_norway::Value,
}

/// Runs every test file, printing promtool-style results; true when all pass.
pub async fn run_files(files: &[PathBuf]) -> bool {
    let mut all_ok = true;
    for file in files {
        println!("Unit Testing:  {}", file.display());
        match run_file(file).await {
            Ok(failures) if failures.is_empty() => println!("  SUCCESS\n"),
            Ok(failures) => {
                all_ok = false;
                println!("  FAILED:");
                for f in failures {
                    println!("{}", indent(&f, 4));
                }
                println!();
            }
            Err(e) => {
                all_ok = false;
                println!("  FAILED:\n{}\n", indent(&format!("{e:#}"), 4));
            }
        }
    }
    all_ok
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs one test file; returns the failure descriptions (empty: it passed).
pub async fn run_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: TestFile =
        serde_norway::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let eval_interval = file
        .evaluation_interval
        .map(|d| d.0)
        .unwrap_or(Duration::from_secs(60));
    let mut specs = Vec::new();
    for pattern in &file.rule_files {
        for rule_file in super::file::expand_rule_files(std::slice::from_ref(pattern), base)? {
            specs.extend(load_file(&rule_file).map_err(|e| anyhow::anyhow!("{e}"))?);
        }
    }
    let specs = order_groups(specs, &file.group_eval_order)?;
    let mut failures = Vec::new();
    for (i, test) in file.tests.iter().enumerate() {
        let label = if test.name.is_empty() {
            format!("test {i}")
        } else {
            test.name.clone()
        };
        let found = run_test(test, &specs, eval_interval, file.fuzzy_compare)
            .await
            .with_context(|| label.clone())?;
        if !found.is_empty() && !test.name.is_empty() {
            failures.push(format!("name: {},", test.name));
        }
        failures.extend(found);
    }
    Ok(failures)
}

/// Groups in `group_eval_order` first, in that order, as promtool requires.
fn order_groups(specs: Vec<GroupSpec>, order: &[String]) -> anyhow::Result<Vec<GroupSpec>> {
    if order.is_empty() {
        return Ok(specs);
    }
    let mut ordered = Vec::new();
    let mut rest = specs;
    for name in order {
        let pos = rest
            .iter()
            .position(|g| &g.name == name)
            .ok_or_else(|| anyhow::anyhow!("group name {name:?} in group_eval_order not found"))?;
        ordered.push(rest.remove(pos));
    }
    ordered.extend(rest);
    Ok(ordered)
}

async fn run_test(
    test: &TestGroup,
    specs: &[GroupSpec],
    eval_interval: Duration,
    fuzzy: bool,
) -> anyhow::Result<Vec<String>> {
    let scratch = ScratchStorage::new().await?;
    let interval = test.interval.map(|d| d.0).unwrap_or(eval_interval);
    scratch.load(&test.input_series, interval)?;
    let promql = Arc::new(PromqlEngine::new(
        scratch.storage.clone(),
        Arc::new(datafusion::execution::runtime_env::RuntimeEnv::default()),
        50_000_000,
    ));
    let querier = EngineQuerier {
        promql: promql.clone(),
        sql: None,
    };
    let groups: Vec<Group> = specs
        .iter()
        .map(|s| Group::new(s.clone(), eval_interval))
        .collect();
    let env = EvalEnv {
        querier: &querier,
        storage: &scratch.storage,
        external_labels: &test.external_labels,
        external_url: &test.external_url,
        resend_delay: Duration::from_secs(60),
        notifier: None,
        metrics: None,
        restore: None,
    };
    let mut alert_tests: Vec<&AlertTest> = test.alert_rule_test.iter().collect();
    alert_tests.sort_by_key(|t| t.eval_time.0);
    let max_time = alert_tests
        .iter()
        .map(|t| t.eval_time.0)
        .chain(test.promql_expr_test.iter().map(|t| t.eval_time.0))
        .max()
        .unwrap_or_default();
    let step = ms(eval_interval).max(1);
    let mut failures = Vec::new();
    let mut next_alert_test = 0;
    let mut ts = 0i64;
    while ts <= ms(max_time) {
        for group in &groups {
            group.evaluate(ts, &env).await;
        }
        while next_alert_test < alert_tests.len()
            && ts >= ms(alert_tests[next_alert_test].eval_time.0)
        {
            let t = alert_tests[next_alert_test];
            failures.extend(check_alerts(t, &groups));
            next_alert_test += 1;
        }
        ts += step;
    }
    for t in &test.promql_expr_test {
        failures.extend(check_expr(t, &querier, fuzzy).await);
    }
    Ok(failures)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// An alert as promtool compares it: labels and annotations.
type AlertView = (Labels, Vec<(String, String)>);

/// promtool compares the firing alerts of the named rule with the expected ones.
fn check_alerts(test: &AlertTest, groups: &[Group]) -> Option<String> {
    let mut got: Vec<AlertView> = groups
        .iter()
        .flat_map(|g| g.rules.iter())
        .filter(|r| r.spec.kind == super::RuleKind::Alerting && r.spec.name == test.alertname)
        .flat_map(|r| r.active_alerts())
        .filter(|a| a.state == super::AlertState::Firing)
        .map(|a| (a.labels, a.annotations))
        .collect();
    got.sort();
    let mut expected: Vec<AlertView> = test
        .exp_alerts
        .iter()
        .map(|e| {
            (
                e.exp_labels.with("alertname", &test.alertname),
                e.exp_annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        })
        .collect();
    expected.sort();
    if got == expected {
        return None;
    }
    Some(format!(
        "alertname: {}, time: {},\n    exp:{},\n    got:{}",
        test.alertname,
        crate::model::format_duration(test.eval_time.0),
        describe_alerts(&expected),
        describe_alerts(&got)
    ))
}

fn describe_alerts(alerts: &[AlertView]) -> String {
    let items: Vec<String> = alerts
        .iter()
        .enumerate()
        .map(|(i, (labels, annotations))| {
            format!(
                "\n        {i}:\n          Labels:{}\n          Annotations:{}",
                braces(labels.iter()),
                braces(annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            )
        })
        .collect();
    if items.is_empty() {
        "[]".to_string()
    } else {
        items.concat()
    }
}

fn braces<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let inner: Vec<String> = pairs.map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

async fn check_expr(test: &ExprTest, querier: &EngineQuerier, fuzzy: bool) -> Option<String> {
    let at = ms(test.eval_time.0);
    let header = format!(
        "expr: {:?}, time: {}",
        test.expr,
        crate::model::format_duration(test.eval_time.0)
    );
    let mut got: Vec<(Labels, f64)> = match querier.promql(&test.expr, at).await {
        Ok(samples) => samples.into_iter().map(|s| (s.labels, s.value)).collect(),
        Err(e) => return Some(format!("{header},\n    err: {e}")),
    };
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = Vec::new();
    for s in &test.exp_samples {
        let labels = match parse_series(&s.labels).and_then(|l| Ok(Labels::new(l)?)) {
            Ok(l) => l,
            Err(e) => return Some(format!("{header},\n    err: {e}")),
        };
        let value = match yaml_number(&s.value) {
            Some(v) => v,
            None => {
                return Some(format!(
                    "{header},\n    err: bad expected value {:?}",
                    s.value
                ));
            }
        };
        expected.push((labels, value));
    }
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let same = got.len() == expected.len()
        && got
            .iter()
            .zip(&expected)
            .all(|(g, e)| g.0 == e.0 && values_equal(g.1, e.1, fuzzy));
    if same {
        return None;
    }
    let show = |samples: &[(Labels, f64)]| {
        let items: Vec<String> = samples
            .iter()
            .map(|(l, v)| {
                format!(
                    "{{Labels:{} Value:{}}}",
                    l,
                    crate::query::promql::aggregates::format_float(*v)
                )
            })
            .collect();
        format!("[{}]", items.join(" "))
    };
    Some(format!(
        "{header},\n    exp: {}\n    got: {}",
        show(&expected),
        show(&got)
    ))
}

fn values_equal(got: f64, expected: f64, fuzzy: bool) -> bool {
    if got.is_nan() && expected.is_nan() {
        return true;
    }
    if fuzzy {
        let tolerance = 1e-12 * got.abs().max(expected.abs());
        (got - expected).abs() <= tolerance
    } else {
        got == expected
    }
}

fn yaml_number(value: &serde_norway::Value) -> Option<f64> {
    match value {
        serde_norway::Value::Number(n) => n.as_f64(),
        serde_norway::Value::String(s) => parse_number(s),
        _ => None,
    }
}

/// A series in PromQL notation (`name{a="b"}`) as sorted labels.
pub fn parse_series(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let expr = PromqlEngine::parse(text).map_err(|e| anyhow::anyhow!("series {text:?}: {e}"))?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        anyhow::bail!("series {text:?} is not a metric with labels");
    };
    let mut labels = Vec::new();
    if let Some(name) = &vs.name {
        labels.push(("__name__".to_string(), name.clone()));
    }
    for m in &vs.matchers.matchers {
        if m.op != promql_parser::label::MatchOp::Equal {
            anyhow::bail!("series {text:?} may only use = in its labels");
        }
        if m.name == "__name__" && vs.name.is_some() {
            continue;
        }
        labels.push((m.name.clone(), m.value.clone()));
    }
    labels.retain(|(_, v)| !v.is_empty());
    labels.sort();
    Ok(labels)
}

/// Expands promtool's value notation (`1 2 _ stale 0+10x5 _x3`) into slots.
pub fn expand_values(text: &str) -> anyhow::Result<Vec<Option<f64>>> {
    let mut slots = Vec::new();
    for item in text.split_whitespace() {
        if item == "_" {
            slots.push(None);
        } else if item == "stale" {
            slots.push(Some(stale_nan()));
        } else if let Some(k) = item.strip_prefix("_x") {
            let k: usize = k
                .parse()
                .map_err(|_| anyhow::anyhow!("bad repeat count in {item:?}"))?;
            slots.extend(std::iter::repeat_n(None, k));
        } else if let Some((start, count)) = item.rsplit_once('x') {
            let count: usize = count
                .parse()
                .map_err(|_| anyhow::anyhow!("bad repeat count in {item:?}"))?;
            let (first, delta) =
                split_delta(start).ok_or_else(|| anyhow::anyhow!("bad series value {item:?}"))?;
            slots.extend((0..=count).map(|i| Some(first + delta * i as f64)));
        } else {
            let v =
                parse_number(item).ok_or_else(|| anyhow::anyhow!("bad series value {item:?}"))?;
            slots.push(Some(v));
        }
    }
    Ok(slots)
}

/// `N`, `N+D` or `N-D` (N may carry its own sign).
fn split_delta(text: &str) -> Option<(f64, f64)> {
    let op = text
        .char_indices()
        .skip(1)
        .filter(|&(i, c)| (c == '+' || c == '-') && !matches!(text.as_bytes()[i - 1], b'e' | b'E'))
        .map(|(i, _)| i)
        .last();
    match op {
        None => Some((parse_number(text)?, 0.0)),
        Some(i) => {
            let first = parse_number(&text[..i])?;
            let delta = parse_number(&text[i + 1..])?;
            Some((first, if &text[i..=i] == "-" { -delta } else { delta }))
        }
    }
}

fn parse_number(text: &str) -> Option<f64> {
    let lower = text.to_ascii_lowercase();
    match lower.trim_start_matches(['+', '-']) {
        "inf" => Some(if lower.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }),
        "nan" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// A throwaway storage under the temp directory, removed on drop.
struct ScratchStorage {
    dir: PathBuf,
    storage: Arc<Storage>,
}

impl ScratchStorage {
    async fn new() -> anyhow::Result<ScratchStorage> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "quiver-rule-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = StorageConfig {
            // Tests load whole series first and evaluate rules from t=0 afterwards.
            out_of_order_time_window: PromDuration(Duration::from_secs(100 * 365 * 86_400)),
            ..StorageConfig::default()
        };
        config.wal.fsync = FsyncPolicy::Never;
        let storage = Storage::open(
            StorageOptions {
                data_dir: dir.clone(),
                config,
                retention: Duration::ZERO,
                retention_size: 0,
                retention_downsampled: [Duration::ZERO; 2],
            },
            crate::metrics::StorageMetrics::unregistered(),
        )
        .await
        .context("opening scratch storage")?;
        Ok(ScratchStorage { dir, storage })
    }

    fn load(&self, series: &[InputSeries], interval: Duration) -> anyhow::Result<()> {
        let step = ms(interval);
        let mut batch = Vec::new();
        for s in series {
            let labels = Labels::series(parse_series(&s.series)?)
                .map_err(|e| anyhow::anyhow!("series {:?}: {e}", s.series))?;
            let text = match &s.values {
                serde_norway::Value::String(t) => t.clone(),
                serde_norway::Value::Number(n) => n.to_string(),
                other => anyhow::bail!("series {:?}: bad values {other:?}", s.series),
            };
            let samples = expand_values(&text)
                .with_context(|| format!("series {:?}", s.series))?
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|value| Sample::new(i as i64 * step, value)))
                .collect();
            batch.push(SeriesSamples {
                labels: Arc::new(labels),
                samples,
                histograms: Vec::new(),
            });
        }
        let mut appender = self.storage.lenient_appender();
        appender.extend(batch);
        appender
            .commit()
            .map_err(|e| anyhow::anyhow!("loading input series: {e}"))?;
        Ok(())
    }
}

impl Drop for ScratchStorage {
    fn drop(&mut self) {
        let _ = self.storage.close();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_notation() {
        let v = expand_values("1 _ 0+10x2 5x1 _x2 -2-1x1 1e3 stale").unwrap();
        assert_eq!(v.len(), 1 + 1 + 3 + 2 + 2 + 2 + 1 + 1);
        assert_eq!(v[2..5], [Some(0.0), Some(10.0), Some(20.0)]);
        assert_eq!(v[9..11], [Some(-2.0), Some(-3.0)]);
        assert_eq!(v[11], Some(1000.0));
        assert!(crate::model::is_stale_nan(v[12].unwrap()));
        assert!(expand_values("1-1").is_err());
        assert!(expand_values("abc").is_err());
    }

    #[test]
    fn series_notation() {
        assert_eq!(
            parse_series(r#"up{job="a", instance="b"}"#).unwrap(),
            vec![
                ("__name__".to_string(), "up".to_string()),
                ("instance".into(), "b".into()),
                ("job".into(), "a".into())
            ]
        );
        assert!(parse_series(r#"up{job=~"a"}"#).is_err());
    }
}
