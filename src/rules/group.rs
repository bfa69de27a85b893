//! A rule group: its rules evaluated in order at one timestamp, results written to storage
//! (with staleness markers for series a rule stopped producing), alerts handed to the
//! notifier, and the health shown by `/api/v1/rules`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::runtime::RuntimeFlavor;

use super::alerting::{self, Alert, AlertingState, TemplateEnv};
use super::file::{GroupSpec, RuleKind, RuleQuery, RuleSpec};
use super::query::{RuleQuerier, RuleSample};
use super::template::QuerySample;
use crate::metrics::RuleMetrics;
use crate::model::{Labels, METRIC_NAME_LABEL, Sample, SeriesSamples, stale_nan};
use crate::notifier::{Notification, Notifier};
use crate::storage::Storage;

/// What an evaluation reads from and writes to.
pub struct EvalEnv<'a> {
    pub querier: &'a dyn RuleQuerier,
    pub storage: &'a Arc<Storage>,
    pub external_labels: &'a Labels,
    /// Base of alerts' generator URLs.
    pub external_url: &'a str,
    pub resend_delay: Duration,
    pub notifier: Option<&'a Notifier>,
    pub metrics: Option<&'a RuleMetrics>,
    /// Set on the first evaluation after start-up: restore alerts' `for` state.
    pub restore: Option<RestoreSettings>,
}

/// Prometheus's `--rules.alert.for-outage-tolerance` and `--rules.alert.for-grace-period`.
#[derive(Debug, Clone, Copy)]
pub struct RestoreSettings {
    pub outage_tolerance: Duration,
    pub grace_period: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    #[default]
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

#[derive(Debug, Default)]
struct RuleState {
    health: Health,
    last_error: Option<String>,
    /// Wall-clock time of the last evaluation, ms.
    last_evaluation_ms: Option<i64>,
    evaluation_seconds: f64,
    /// Series written by the previous evaluation; those missing next time go stale.
    previous_series: HashSet<Labels>,
    alerting: AlertingState,
}

pub struct Rule {
    pub spec: RuleSpec,
    state: Mutex<RuleState>,
}

/// A rule's state as the API shows it.
#[derive(Debug, Clone)]
pub struct RuleStatus {
    pub health: Health,
    pub last_error: Option<String>,
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_seconds: f64,
    pub alerts: Vec<Alert>,
}

impl Rule {
    fn new(spec: RuleSpec) -> Rule {
        Rule {
            spec,
            state: Mutex::new(RuleState::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, RuleState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn status(&self) -> RuleStatus {
        let state = self.state();
        let mut alerts: Vec<Alert> = state.alerting.active.values().cloned().collect();
        alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
        RuleStatus {
            health: state.health,
            last_error: state.last_error.clone(),
            last_evaluation_ms: state.last_evaluation_ms,
            evaluation_seconds: state.evaluation_seconds,
            alerts,
        }
    }

    /// Alerts that are pending or firing (promtool's tests look at firing ones).
    pub fn active_alerts(&self) -> Vec<Alert> {
        self.status()
            .alerts
            .into_iter()
            .filter(|a| a.state != alerting::AlertState::Inactive)
            .collect()
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct GroupStatus {
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_seconds: f64,
}

pub struct Group {
    pub spec: GroupSpec,
    pub interval: Duration,
    pub rules: Vec<Rule>,
    status: Mutex<GroupStatus>,
}

impl Group {
    /// A group whose rules carry the group's labels (the rule's own labels win).
    pub fn new(spec: GroupSpec, default_interval: Duration) -> Group {
        let interval = spec.interval.unwrap_or(default_interval);
        let rules = spec
            .rules
            .iter()
            .map(|r| {
                let mut rule = r.clone();
                for (k, v) in &spec.labels {
                    rule.labels.entry(k.clone()).or_insert_with(|| v.clone());
                }
                Rule::new(rule)
            })
            .collect();
        Group {
            spec,
            interval,
            rules,
            status: Mutex::new(GroupStatus::default()),
        }
    }

    /// `file;name`, the key Prometheus uses for a group in metrics.
    pub fn key(&self) -> String {
        format!("{};{}", self.spec.file, self.spec.name)
    }

    pub fn status(&self) -> GroupStatus {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn query_offset(&self) -> Duration {
        self.spec.query_offset.unwrap_or_default()
    }

    /// Evaluates every rule in order at `ts` (ms); later rules see earlier rules' output.
    pub async fn evaluate(&self, ts: i64, env: &EvalEnv<'_>) {
        let started = Instant::now();
        let key = self.key();
        for rule in &self.rules {
            let rule_started = Instant::now();
            let outcome = self.evaluate_rule(rule, ts, env).await;
            let seconds = rule_started.elapsed().as_secs_f64();
            if let Some(m) = env.metrics {
                m.evaluations.with_label_values(&[&key]).inc();
                m.evaluation_seconds.observe(seconds);
                if outcome.is_err() {
                    m.evaluation_failures.with_label_values(&[&key]).inc();
                }
            }
            let mut state = rule.state();
            state.last_evaluation_ms = Some(crate::model::now_ms());
            state.evaluation_seconds = seconds;
            match outcome {
                Ok(()) => {
                    state.health = Health::Ok;
                    state.last_error = None;
                }
                Err(e) => {
                    tracing::warn!(group = %self.spec.name, rule = %rule.spec.name, error = %e, "rule evaluation failed");
                    state.health = Health::Err;
                    state.last_error = Some(e);
                }
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        if let Some(m) = env.metrics {
            m.last_duration_seconds
                .with_label_values(&[&key])
                .set(seconds);
        }
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = GroupStatus {
            last_evaluation_ms: Some(crate::model::now_ms()),
            evaluation_seconds: seconds,
        };
    }

    async fn evaluate_rule(&self, rule: &Rule, ts: i64, env: &EvalEnv<'_>) -> Result<(), String> {
        let spec = &rule.spec;
        let result = match &spec.query {
            RuleQuery::PromQL(q) => env.querier.promql(q, ts).await,
            RuleQuery::Sql(q) => env.querier.sql(q).await,
        }
        .map_err(|e| e.to_string())?;
        let series = match spec.kind {
            RuleKind::Recording => record(spec, result, self.spec.limit)?,
            RuleKind::Alerting => {
                let query = template_query(env.querier, ts);
                let template_env = TemplateEnv {
                    external_labels: env.external_labels,
                    external_url: env.external_url,
                    query: Some(&query),
                };
                let mut instances = alerting::instantiate_all(spec, &result, ts, &template_env)?;
                if let Some(settings) = env.restore
                    && !spec.hold.is_zero()
                {
                    restore_for_state(spec, &mut instances, ts, env.querier, settings).await;
                }
                rule.state()
                    .alerting
                    .apply(spec, instances, ts, self.spec.limit)?
            }
        };
        self.write(rule, series, ts, env.storage).await?;
        if spec.kind == RuleKind::Alerting
            && let Some(notifier) = env.notifier
        {
            let due = rule
                .state()
                .alerting
                .due_notifications(ts, env.resend_delay, self.interval);
            if !due.is_empty() {
                notifier.send(
                    due.into_iter()
                        .map(|a| notification(a, spec, env.external_url))
                        .collect(),
                );
            }
        }
        Ok(())
    }

    /// Appends a rule's output at `ts`, plus staleness markers for its vanished series.
    /// The append (a WAL write under the head's lock) runs on the blocking pool, not on the
    /// async worker that evaluates the group.
    async fn write(
        &self,
        rule: &Rule,
        series: Vec<RuleSample>,
        ts: i64,
        storage: &Arc<Storage>,
    ) -> Result<(), String> {
        let mut batch = Vec::with_capacity(series.len());
        let mut current = HashSet::with_capacity(series.len());
        for s in series {
            let labels = (s.labels.clone().check_series())
                .map_err(|e| format!("invalid result series {}: {e}", s.labels))?;
            current.insert(s.labels);
            batch.push(SeriesSamples {
                labels: Arc::new(labels),
                samples: vec![Sample::new(ts, s.value)],
                histograms: Vec::new(),
            });
        }
        {
            let mut state = rule.state();
            for gone in state.previous_series.difference(&current) {
                batch.push(stale_marker(gone, ts));
            }
            state.previous_series = current;
        }
        if batch.is_empty() {
            return Ok(());
        }
        let storage = storage.clone();
        tokio::task::spawn_blocking(move || {
            let mut appender = storage.lenient_appender();
            appender.extend(batch);
            appender.commit()
        })
        .await
        .map_err(|e| format!("writing rule results: {e}"))?
        .map(|_| ())
        .map_err(|e| format!("writing rule results: {e}"))
    }

    /// Staleness markers for everything this group wrote last; for a group that goes away.
    pub fn mark_all_stale(&self, ts: i64, storage: &Storage) {
        let mut batch = Vec::new();
        for rule in &self.rules {
            let mut state = rule.state();
            batch.extend(state.previous_series.drain().map(|s| stale_marker(&s, ts)));
        }
        let mut appender = storage.lenient_appender();
        appender.extend(batch);
        if !appender.is_empty()
            && let Err(e) = appender.commit()
        {
            tracing::warn!(group = %self.spec.name, error = %e, "writing staleness markers");
        }
    }

    /// Takes over the state of the same rules from the group this one replaces at reload,
    /// so a reload neither resets `for` nor loses series to stale.
    pub fn take_state_from(&self, old: &Group) {
        for rule in &self.rules {
            let Some(previous) = old.rules.iter().find(|r| {
                r.spec.name == rule.spec.name
                    && r.spec.kind == rule.spec.kind
                    && r.spec.labels == rule.spec.labels
            }) else {
                continue;
            };
            let mut from = previous.state();
            let mut to = rule.state();
            *to = std::mem::take(&mut *from);
        }
    }
}

/// Restores `for` state from the `ALERTS_FOR_STATE` samples written before a restart
/// (Prometheus's `RestoreForState`), on the first evaluation's new alerts before they become
/// visible, so no reader sees an alert that restarted its `for`.
async fn restore_for_state(
    spec: &RuleSpec,
    instances: &mut alerting::Instances,
    ts: i64,
    querier: &dyn RuleQuerier,
    settings: RestoreSettings,
) {
    let min = ts - i64::try_from(settings.outage_tolerance.as_millis()).unwrap_or(i64::MAX / 2);
    for (labels, alert) in instances.iter_mut() {
        let selector = for_state_selector(labels);
        // Strictly before `ts`: nothing of this run has been written yet, but be exact.
        let found = match querier.last_raw(&selector, min, ts - 1).await {
            Ok(points) => points,
            Err(e) => {
                tracing::warn!(rule = %spec.name, error = %e, "restoring alert state");
                continue;
            }
        };
        if let Some(point) = found.into_iter().max_by_key(|p| p.timestamp_ms) {
            AlertingState::restore_one(
                alert,
                spec.hold,
                point.timestamp_ms,
                point.value,
                ts,
                settings.grace_period,
            );
            tracing::info!(rule = %spec.name, labels = ?labels, "restored alert 'for' state");
        }
    }
}

/// A recording rule's output: the result renamed, with the rule's labels.
fn record(
    spec: &RuleSpec,
    result: Vec<RuleSample>,
    limit: usize,
) -> Result<Vec<RuleSample>, String> {
    let mut seen = HashSet::with_capacity(result.len());
    let mut out = Vec::with_capacity(result.len());
    for sample in result {
        let mut labels = sample.labels.builder();
        for (name, value) in &spec.labels {
            labels.set(name, value.clone());
        }
        labels.set(METRIC_NAME_LABEL, spec.name.clone());
        let labels = labels.labels();
        if !seen.insert(labels.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels"
                    .to_string(),
            );
        }
        out.push(RuleSample {
            labels,
            value: sample.value,
        });
    }
    if limit > 0 && out.len() > limit {
        return Err(format!(
            "exceeded limit of {limit} with {} series",
            out.len()
        ));
    }
    Ok(out)
}

fn stale_marker(labels: &Labels, ts: i64) -> SeriesSamples {
    SeriesSamples {
        labels: Arc::new(labels.clone()),
        samples: vec![Sample::new(ts, stale_nan())],
        histograms: Vec::new(),
    }
}

/// `ALERTS_FOR_STATE{...}` selecting exactly one alert's series.
fn for_state_selector(labels: &Labels) -> String {
    let matchers: Vec<String> = labels
        .iter()
        .map(|(n, v)| format!("{n}=\"{}\"", crate::model::escape_label_value(v)))
        .collect();
    format!("ALERTS_FOR_STATE{{{}}}", matchers.join(","))
}

/// Templates' `query` function: runs PromQL at the evaluation time. Templates expand
/// synchronously, so the query blocks this worker thread (allowed on the multi-threaded
/// runtime the server and `quiver test rules` use).
fn template_query(
    querier: &dyn RuleQuerier,
    ts: i64,
) -> impl Fn(&str) -> Result<Vec<QuerySample>, String> + Sync + '_ {
    move |q: &str| {
        let handle = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
        if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
            return Err("query is not available in this context".to_string());
        }
        let samples = tokio::task::block_in_place(|| handle.block_on(querier.promql(q, ts)))
            .map_err(|e| e.to_string())?;
        Ok(samples
            .into_iter()
            .map(|s| QuerySample {
                labels: s.labels,
                value: s.value,
            })
            .collect())
    }
}

/// The notifier's view of an alert: `endsAt` is the resolve time, or how long the alert
/// stays valid without being re-sent.
fn notification(alert: Alert, spec: &RuleSpec, external_url: &str) -> Notification {
    Notification {
        labels: alert.labels,
        annotations: alert.annotations,
        starts_at_ms: alert.fired_at.unwrap_or(alert.active_at),
        ends_at_ms: Some(alert.resolved_at.unwrap_or(alert.valid_until)),
        generator_url: generator_url(external_url, spec.query.text()),
    }
}

/// Link to the expression in the UI, as Prometheus builds it.
pub fn generator_url(external_url: &str, expr: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    format!(
        "{}/graph?g0.expr={encoded}&g0.tab=1",
        external_url.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(labels: &[(&str, &str)]) -> RuleSpec {
        RuleSpec {
            kind: RuleKind::Recording,
            name: "job:up:sum".into(),
            query: RuleQuery::PromQL("sum by (job) (up)".into()),
            hold: Duration::ZERO,
            keep_firing_for: Duration::ZERO,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: Default::default(),
        }
    }

    fn sample(job: &str, v: f64) -> RuleSample {
        RuleSample {
            labels: Labels::new(vec![
                ("__name__".into(), "up".into()),
                ("job".into(), job.into()),
            ])
            .unwrap(),
            value: v,
        }
    }

    #[test]
    fn recording_renames_and_labels() {
        let out = record(&spec(&[("team", "db")]), vec![sample("a", 2.0)], 0).unwrap();
        assert_eq!(
            out[0].labels.to_string(),
            r#"job:up:sum{job="a", team="db"}"#
        );
        assert_eq!(out[0].value, 2.0);
    }

    #[test]
    fn recording_limits_and_duplicates() {
        let err = record(&spec(&[]), vec![sample("a", 1.0), sample("b", 1.0)], 1).unwrap_err();
        assert_eq!(err, "exceeded limit of 1 with 2 series");
        let err = record(
            &spec(&[("job", "x")]),
            vec![sample("a", 1.0), sample("b", 1.0)],
            0,
        )
        .unwrap_err();
        assert!(err.contains("same labelset"), "{err}");
    }

    #[test]
    fn selectors_and_urls_escape() {
        let sel = for_state_selector(
            &Labels::new(vec![
                ("alertname".into(), "A".into()),
                ("x".into(), "a\"b".into()),
            ])
            .unwrap(),
        );
        assert_eq!(sel, r#"ALERTS_FOR_STATE{alertname="A",x="a\"b"}"#);
        assert!(crate::query::promql::PromqlEngine::parse(&sel).is_ok());
        assert_eq!(
            generator_url("http://h:9090/", "up == 0"),
            "http://h:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
        );
    }
}
