//! Alerting rules: Prometheus's inactive → pending → firing state machine with `for` and
//! `keep_firing_for`, templated labels and annotations, the `ALERTS`/`ALERTS_FOR_STATE`
//! series, restoring `for` state after a restart, and deciding when to (re)send.

use std::collections::HashMap;
use std::time::Duration;

use crate::model::{Labels, METRIC_NAME_LABEL};

use super::RuleSample;
use super::file::RuleSpec;
use super::template::{self, QuerySample, TemplateContext};

/// How long a resolved alert is kept (and re-sent as resolved), as in Prometheus.
const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert instance of a rule (one label set).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Includes `alertname` and the rule's labels.
    pub labels: Labels,
    pub annotations: Vec<(String, String)>,
    pub state: AlertState,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    pub valid_until: i64,
    pub keep_firing_since: Option<i64>,
}

impl Alert {
    /// Prometheus's `needsSending`: firing alerts every `resend_delay`, resolved ones once more.
    fn needs_sending(&self, ts: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        if let Some(resolved) = self.resolved_at
            && self.last_sent_at.is_none_or(|sent| resolved > sent)
        {
            return true;
        }
        self.last_sent_at
            .is_none_or(|sent| sent + resend_delay_ms < ts)
    }
}

/// Runs a template's `query` call.
pub type TemplateQuery<'q> = dyn Fn(&str) -> Result<Vec<QuerySample>, String> + Sync + 'q;

/// What a template sees besides the alert itself.
pub struct TemplateEnv<'a> {
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
    /// Runs `query` calls in templates; `None` where queries are not available.
    pub query: Option<&'a TemplateQuery<'a>>,
}

/// The mutable side of an alerting rule.
#[derive(Debug, Default)]
pub struct AlertingState {
    pub active: HashMap<Labels, Alert>,
}

impl AlertingState {
    /// Applies one evaluation's alert instances at `ts` and returns the `ALERTS` and
    /// `ALERTS_FOR_STATE` samples to write.
    pub fn apply(
        &mut self,
        rule: &RuleSpec,
        seen: Instances,
        ts: i64,
        limit: usize,
    ) -> Result<Vec<RuleSample>, String> {
        for (labels, fresh) in seen.iter() {
            match self.active.get_mut(labels) {
                Some(existing) if existing.state != AlertState::Inactive => {
                    existing.value = fresh.value;
                    existing.annotations = fresh.annotations.clone();
                }
                _ => {
                    self.active.insert(labels.clone(), fresh.clone());
                }
            }
        }
        self.advance(rule, &seen, ts);
        let pending_or_firing = self
            .active
            .values()
            .filter(|a| a.state != AlertState::Inactive)
            .count();
        if limit > 0 && pending_or_firing > limit {
            self.active.clear();
            return Err(format!(
                "exceeded limit of {limit} with {pending_or_firing} alerts"
            ));
        }
        Ok(self.series())
    }

    /// Moves every alert along the state machine, given the label sets present at `ts`.
    fn advance(&mut self, rule: &RuleSpec, present: &Instances, ts: i64) {
        let hold = duration_ms(rule.hold);
        let keep_firing_for = duration_ms(rule.keep_firing_for);
        self.active.retain(|labels, alert| {
            if present.contains_key(labels) {
                alert.keep_firing_since = None;
            } else {
                let mut keep_firing = false;
                if alert.state == AlertState::Firing && keep_firing_for > 0 {
                    let since = *alert.keep_firing_since.get_or_insert(ts);
                    keep_firing = ts - since < keep_firing_for;
                }
                let expired = alert
                    .resolved_at
                    .is_some_and(|at| ts - at > RESOLVED_RETENTION_MS);
                if alert.state == AlertState::Pending || expired {
                    return false;
                }
                if !keep_firing {
                    if alert.state != AlertState::Inactive {
                        alert.state = AlertState::Inactive;
                        alert.resolved_at = Some(ts);
                    }
                    return true;
                }
            }
            if alert.state == AlertState::Pending && ts - alert.active_at >= hold {
                alert.state = AlertState::Firing;
                alert.fired_at = Some(ts);
            }
            true
        });
    }

    /// `ALERTS{alertstate=...} 1` and `ALERTS_FOR_STATE = activeAt seconds` per live alert.
    fn series(&self) -> Vec<RuleSample> {
        let mut out = Vec::new();
        for alert in self.active.values() {
            if alert.state == AlertState::Inactive {
                continue;
            }
            let mut alerts = alert.labels.builder();
            alerts
                .set(METRIC_NAME_LABEL, "ALERTS".to_string())
                .set("alertstate", alert.state.as_str().to_string());
            out.push(RuleSample {
                labels: alerts.labels(),
                value: 1.0,
            });
            out.push(RuleSample {
                labels: alert.labels.with(METRIC_NAME_LABEL, "ALERTS_FOR_STATE"),
                value: (alert.active_at / 1000) as f64,
            });
        }
        out
    }

    /// Alerts to notify about now; marks them sent. Prometheus's `sendAlerts`.
    pub fn due_notifications(
        &mut self,
        ts: i64,
        resend_delay: Duration,
        interval: Duration,
    ) -> Vec<Alert> {
        let resend_ms = duration_ms(resend_delay);
        let delta = resend_ms.max(duration_ms(interval));
        let mut out = Vec::new();
        for alert in self.active.values_mut() {
            if alert.needs_sending(ts, resend_ms) {
                alert.last_sent_at = Some(ts);
                // Valid for two missed evaluations or sends, as Prometheus allows.
                alert.valid_until = ts + 4 * delta;
                out.push(alert.clone());
            }
        }
        out
    }

    /// Restores `active_at` of each active alert from the newest `ALERTS_FOR_STATE` sample
    /// written before the restart (`down_at`, value = old activeAt in seconds).
    pub fn restore_one(
        alert: &mut Alert,
        hold: Duration,
        down_at_ms: i64,
        old_active_at_secs: f64,
        ts: i64,
        grace: Duration,
    ) {
        let hold_ms = duration_ms(hold);
        let restored = (old_active_at_secs * 1000.0) as i64;
        let spent_pending = down_at_ms - restored;
        let remaining = hold_ms - spent_pending;
        alert.active_at = if remaining <= 0 {
            restored
        } else if remaining < duration_ms(grace) {
            ts + duration_ms(grace) - hold_ms
        } else {
            restored + (ts - down_at_ms)
        };
    }
}

/// Alert instances of one evaluation, by label set.
pub type Instances = HashMap<Labels, Alert>;

/// Turns a query result into alert instances, labels and annotations expanded. Runs before
/// the rule's state is locked, because templates may run queries.
pub fn instantiate_all(
    rule: &RuleSpec,
    result: &[RuleSample],
    ts: i64,
    env: &TemplateEnv<'_>,
) -> Result<Instances, String> {
    let mut seen = Instances::new();
    for sample in result {
        let alert = instantiate(rule, sample, ts, env);
        if seen.insert(alert.labels.clone(), alert).is_some() {
            return Err(
                "vector contains metrics with the same labelset after applying alert labels"
                    .to_string(),
            );
        }
    }
    Ok(seen)
}

/// A new alert for one result sample, labels and annotations expanded.
fn instantiate(rule: &RuleSpec, sample: &RuleSample, ts: i64, env: &TemplateEnv<'_>) -> Alert {
    let sample_labels = sample.labels.drop_metric_name();
    let ctx = TemplateContext {
        labels: &sample_labels,
        external_labels: env.external_labels,
        external_url: env.external_url,
        value: sample.value,
    };
    let template_name = format!("__alert_{}", rule.name);
    let expand = |text: &str| {
        let query = env
            .query
            .map(|q| q as &dyn Fn(&str) -> Result<Vec<QuerySample>, String>);
        template::expand_or_error_text(&template_name, text, &ctx, query)
    };
    let mut labels = sample_labels.builder();
    for (name, text) in &rule.labels {
        labels.set(name, expand(text));
    }
    labels.set("alertname", rule.name.clone());
    let annotations = rule
        .annotations
        .iter()
        .map(|(name, text)| (name.clone(), expand(text)))
        .collect();
    Alert {
        labels: labels.labels(),
        annotations,
        state: AlertState::Pending,
        value: sample.value,
        active_at: ts,
        fired_at: None,
        resolved_at: None,
        last_sent_at: None,
        valid_until: 0,
        keep_firing_since: None,
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::file::{RuleKind, RuleQuery};

    fn rule(hold_s: u64, keep_s: u64) -> RuleSpec {
        RuleSpec {
            kind: RuleKind::Alerting,
            name: "Down".into(),
            query: RuleQuery::PromQL("up == 0".into()),
            hold: Duration::from_secs(hold_s),
            keep_firing_for: Duration::from_secs(keep_s),
            labels: [("severity".to_string(), "page".to_string())].into(),
            annotations: [(
                "summary".to_string(),
                "{{ $labels.instance }} down ({{ $value }})".to_string(),
            )]
            .into(),
        }
    }

    fn down(instance: &str) -> RuleSample {
        RuleSample {
            labels: [("__name__", "up"), ("instance", instance)]
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            value: 0.0,
        }
    }

    fn env() -> (Labels, String) {
        (Labels::default(), String::new())
    }

    fn step(
        state: &mut AlertingState,
        rule: &RuleSpec,
        result: Vec<RuleSample>,
        ts_s: i64,
    ) -> Vec<RuleSample> {
        let (ext, url) = env();
        let env = TemplateEnv {
            external_labels: &ext,
            external_url: &url,
            query: None,
        };
        let seen = instantiate_all(rule, &result, ts_s * 1000, &env).unwrap();
        state.apply(rule, seen, ts_s * 1000, 0).unwrap()
    }

    fn only(state: &AlertingState) -> &Alert {
        assert_eq!(state.active.len(), 1);
        state.active.values().next().unwrap()
    }

    #[test]
    fn pending_then_firing_then_resolved() {
        let rule = rule(60, 0);
        let mut s = AlertingState::default();
        let series = step(&mut s, &rule, vec![down("a")], 0);
        assert_eq!(only(&s).state, AlertState::Pending);
        assert_eq!(
            only(&s).labels.to_string(),
            r#"{alertname="Down", instance="a", severity="page"}"#
        );
        assert_eq!(only(&s).annotations[0].1, "a down (0)");
        assert_eq!(series.len(), 2);
        assert!(
            series
                .iter()
                .any(|x| x.labels.get("alertstate") == Some("pending"))
        );
        step(&mut s, &rule, vec![down("a")], 30);
        assert_eq!(only(&s).state, AlertState::Pending);
        step(&mut s, &rule, vec![down("a")], 60);
        assert_eq!(only(&s).state, AlertState::Firing);
        assert_eq!(only(&s).fired_at, Some(60_000));
        let series = step(&mut s, &rule, vec![], 90);
        assert!(series.is_empty());
        assert_eq!(only(&s).state, AlertState::Inactive);
        assert_eq!(only(&s).resolved_at, Some(90_000));
        // Kept for 15 minutes after resolving, then dropped.
        step(&mut s, &rule, vec![], 90 + 15 * 60 + 1);
        assert!(s.active.is_empty());
    }

    #[test]
    fn pending_alert_that_clears_is_dropped() {
        let rule = rule(60, 0);
        let mut s = AlertingState::default();
        step(&mut s, &rule, vec![down("a")], 0);
        step(&mut s, &rule, vec![], 30);
        assert!(s.active.is_empty());
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let rule = rule(0, 60);
        let mut s = AlertingState::default();
        step(&mut s, &rule, vec![down("a")], 0);
        assert_eq!(only(&s).state, AlertState::Firing);
        step(&mut s, &rule, vec![], 30);
        assert_eq!(only(&s).state, AlertState::Firing);
        step(&mut s, &rule, vec![], 89);
        assert_eq!(only(&s).state, AlertState::Firing);
        step(&mut s, &rule, vec![], 90);
        assert_eq!(only(&s).state, AlertState::Inactive);
    }

    #[test]
    fn duplicate_label_sets_are_an_error() {
        let mut rule = rule(0, 0);
        rule.labels.insert("instance".into(), "same".into());
        let (ext, url) = env();
        let env = TemplateEnv {
            external_labels: &ext,
            external_url: &url,
            query: None,
        };
        let err = instantiate_all(&rule, &[down("a"), down("b")], 0, &env).unwrap_err();
        assert!(err.contains("same labelset"), "{err}");
    }

    #[test]
    fn sends_firing_alerts_with_resend_delay_and_resolved_once() {
        let rule = rule(0, 0);
        let mut s = AlertingState::default();
        let resend = Duration::from_secs(60);
        let interval = Duration::from_secs(15);
        step(&mut s, &rule, vec![down("a")], 0);
        let sent = s.due_notifications(0, resend, interval);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].valid_until, 240_000);
        assert!(s.due_notifications(15_000, resend, interval).is_empty());
        assert_eq!(s.due_notifications(61_000, resend, interval).len(), 1);
        step(&mut s, &rule, vec![], 75);
        let sent = s.due_notifications(75_000, resend, interval);
        assert_eq!(sent[0].resolved_at, Some(75_000));
        assert!(s.due_notifications(90_000, resend, interval).is_empty());
    }

    #[test]
    fn restoring_for_state() {
        let mut a = AlertingState::default();
        let rule = rule(600, 0);
        step(&mut a, &rule, vec![down("a")], 10_000);
        let alert = a.active.values_mut().next().unwrap();
        let grace = Duration::from_secs(60);
        // Pending for 2 of 10 minutes, down 5 minutes: the remaining 8 are kept.
        AlertingState::restore_one(alert, rule.hold, 9_700_000, 9_580.0, 10_000_000, grace);
        assert_eq!(alert.active_at, 9_580_000 + 300_000);
        // Already past `for` before going down: keeps the old activeAt and fires at once.
        AlertingState::restore_one(alert, rule.hold, 9_700_000, 9_000.0, 10_000_000, grace);
        assert_eq!(alert.active_at, 9_000_000);
        // Less than the grace period left: it gets the grace period.
        let long_grace = Duration::from_secs(600);
        AlertingState::restore_one(alert, rule.hold, 9_700_000, 9_580.0, 10_000_000, long_grace);
        assert_eq!(alert.active_at, 10_000_000);
    }
}
