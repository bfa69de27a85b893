//! `/api/v1/rules`, `/api/v1/alerts` and `/api/v1/alertmanagers` in Prometheus's JSON shapes,
//! read from the running rule groups and the notifier.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::rules::group::RuleStatus;
use crate::rules::{Alert, Group, RuleKind};

use super::AppState;
use super::error::ApiError;
use super::meta::{respond, success};
use super::params::Params;

/// Which rules a `/api/v1/rules` request asks for.
struct RuleFilter {
    kind: Option<RuleKind>,
    names: Vec<String>,
    groups: Vec<String>,
    files: Vec<String>,
    exclude_alerts: bool,
}

impl RuleFilter {
    fn read(params: &Params) -> Result<RuleFilter, ApiError> {
        let kind = match params.get("type").unwrap_or("") {
            "" => None,
            "alert" => Some(RuleKind::Alerting),
            "record" => Some(RuleKind::Recording),
            other => {
                return Err(ApiError::bad_data(format!(
                    "invalid query parameter type='{other}'"
                )));
            }
        };
        let exclude_alerts = params.flag("exclude_alerts")?;
        Ok(RuleFilter {
            kind,
            names: params.all("rule_name[]"),
            groups: params.all("rule_group[]"),
            files: params.all("file[]"),
            exclude_alerts,
        })
    }

    fn wants_group(&self, group: &Group) -> bool {
        (self.groups.is_empty() || self.groups.contains(&group.spec.name))
            && (self.files.is_empty() || self.files.contains(&group.spec.file))
    }

    fn wants_rule(&self, kind: RuleKind, name: &str) -> bool {
        self.kind.is_none_or(|k| k == kind)
            && (self.names.is_empty() || self.names.iter().any(|n| n == name))
    }
}

pub async fn rules(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let params = Params::read(query, &headers, body).await?;
        let filter = RuleFilter::read(&params)?;
        let groups: Vec<Value> = state
            .rules
            .groups()
            .iter()
            .filter(|g| filter.wants_group(g))
            .filter_map(|g| group_json(g, &filter))
            .collect();
        Ok(json!({ "groups": groups }))
    }
    .await;
    respond(result)
}

/// A group with the rules the filter keeps; `None` when a rule filter leaves it empty.
fn group_json(group: &Group, filter: &RuleFilter) -> Option<Value> {
    let rules: Vec<Value> = group
        .rules
        .iter()
        .filter(|r| filter.wants_rule(r.spec.kind, &r.spec.name))
        .map(|r| rule_json(&r.spec, &r.status(), filter.exclude_alerts))
        .collect();
    let filtered = filter.kind.is_some() || !filter.names.is_empty();
    if rules.is_empty() && filtered {
        return None;
    }
    let status = group.status();
    Some(json!({
        "name": group.spec.name,
        "file": group.spec.file,
        "rules": rules,
        "interval": group.interval.as_secs_f64(),
        "limit": group.spec.limit,
        "evaluationTime": status.evaluation_seconds,
        "lastEvaluation": rfc3339_or_zero(status.last_evaluation_ms),
    }))
}

fn rule_json(spec: &crate::rules::RuleSpec, status: &RuleStatus, exclude_alerts: bool) -> Value {
    let mut rule = Map::new();
    rule.insert("name".into(), json!(spec.name));
    rule.insert("query".into(), json!(spec.query.text()));
    rule.insert("labels".into(), json!(spec.labels));
    rule.insert("health".into(), json!(status.health.as_str()));
    if let Some(e) = &status.last_error {
        rule.insert("lastError".into(), json!(e));
    }
    rule.insert("evaluationTime".into(), json!(status.evaluation_seconds));
    rule.insert(
        "lastEvaluation".into(),
        json!(rfc3339_or_zero(status.last_evaluation_ms)),
    );
    match spec.kind {
        RuleKind::Recording => {
            rule.insert("type".into(), json!("recording"));
        }
        RuleKind::Alerting => {
            rule.insert("type".into(), json!("alerting"));
            rule.insert("state".into(), json!(rule_state(&status.alerts)));
            rule.insert("duration".into(), json!(spec.hold.as_secs_f64()));
            rule.insert(
                "keepFiringFor".into(),
                json!(spec.keep_firing_for.as_secs_f64()),
            );
            rule.insert("annotations".into(), json!(spec.annotations));
            if !exclude_alerts {
                let alerts: Vec<Value> = status
                    .alerts
                    .iter()
                    .filter(|a| a.state != crate::rules::AlertState::Inactive)
                    .map(alert_json)
                    .collect();
                rule.insert("alerts".into(), Value::Array(alerts));
            }
        }
    }
    Value::Object(rule)
}

/// The rule's state is its most severe alert's.
fn rule_state(alerts: &[Alert]) -> &'static str {
    use crate::rules::AlertState::*;
    if alerts.iter().any(|a| a.state == Firing) {
        "firing"
    } else if alerts.iter().any(|a| a.state == Pending) {
        "pending"
    } else {
        "inactive"
    }
}

fn alert_json(alert: &Alert) -> Value {
    let labels: Map<String, Value> = alert
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let annotations: Map<String, Value> = alert
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let mut out = json!({
        "labels": labels,
        "annotations": annotations,
        "state": alert.state.as_str(),
        "activeAt": crate::gocompat::time::rfc3339(alert.active_at),
        "value": go_exponent_format(alert.value),
    });
    if let Some(since) = alert.keep_firing_since {
        out["keepFiringSince"] = json!(crate::gocompat::time::rfc3339(since));
    }
    out
}

pub async fn alerts(State(state): State<AppState>) -> Response {
    let alerts: Vec<Value> = state
        .rules
        .groups()
        .iter()
        .flat_map(|g| g.rules.iter())
        .flat_map(|r| r.active_alerts())
        .map(|a| alert_json(&a))
        .collect();
    success(json!({ "alerts": alerts }))
}

pub async fn alertmanagers(State(state): State<AppState>) -> Response {
    let active: Vec<Value> = state
        .notifier
        .alertmanager_urls()
        .into_iter()
        .map(|url| json!({ "url": url }))
        .collect();
    success(json!({"activeAlertmanagers": active, "droppedAlertmanagers": []}))
}

fn rfc3339_or_zero(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => crate::gocompat::time::rfc3339(ms),
        None => "0001-01-01T00:00:00Z".to_string(),
    }
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, which Prometheus uses for alert values:
/// `1e+00`, `2.5e-01`, `NaN`, `+Inf`.
fn go_exponent_format(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let text = format!("{v:e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_values_in_go_exponent_form() {
        assert_eq!(go_exponent_format(1.0), "1e+00");
        assert_eq!(go_exponent_format(0.25), "2.5e-01");
        assert_eq!(go_exponent_format(123456.0), "1.23456e+05");
        assert_eq!(go_exponent_format(-3e-120), "-3e-120");
        assert_eq!(go_exponent_format(f64::INFINITY), "+Inf");
    }
}
