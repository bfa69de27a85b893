//! `/api/v1/query`, `/api/v1/query_range` and `/api/v1/explain`: PromQL over HTTP with
//! Prometheus's parameters and JSON.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::query::promql::{DEFAULT_LOOKBACK, Evaluation, PromValue, PromqlError, Series};
use crate::storage::now_ms;

use super::AppState;
use super::error::ApiError;
use super::params::Params;

/// Prometheus refuses range queries with more points per series than this.
const MAX_POINTS: i64 = 11_000;

pub async fn instant(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(run_instant(&state, query, &headers, body).await)
}

pub async fn range(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(run_range(&state, query, &headers, body).await)
}

pub async fn explain(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let params = Params::read(query, &headers, body).await?;
        let expr = params.require("query")?;
        let time = params.time_ms("time", now_ms())?;
        let explanation = state
            .promql
            .explain(expr, time)
            .await
            .map_err(to_api_error)?;
        let sql = match &explanation.sql {
            Ok(sql) => json!({"sql": sql}),
            Err(why) => json!({"sql": null, "sqlUnavailable": why}),
        };
        let mut data = json!({"plan": explanation.plan});
        if let (Some(data), Some(sql)) = (data.as_object_mut(), sql.as_object()) {
            data.extend(sql.clone());
        }
        Ok(json!({"status": "success", "data": data}))
    }
    .await;
    respond(result)
}

fn respond(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn run_instant(
    state: &AppState,
    query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, ApiError> {
    let params = Params::read(query, headers, body).await?;
    let expr = params.require("query")?;
    let time = params.time_ms("time", now_ms())?;
    let lookback = lookback(&params)?;
    let timeout = timeout(&params, state)?;
    let _slot = state
        .query_slots
        .acquire()
        .await
        .map_err(|_| ApiError::internal("query slots closed"))?;
    let value = tokio::time::timeout(
        timeout,
        state.promql.instant_annotated(expr, time, lookback),
    )
    .await
    .map_err(|_| to_api_error(PromqlError::Timeout))?
    .map_err(to_api_error)?;
    Ok(success(&value))
}

async fn run_range(
    state: &AppState,
    query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, ApiError> {
    let params = Params::read(query, headers, body).await?;
    let expr = params.require("query")?;
    let start = params
        .time_ms("start", i64::MIN)
        .and_then(|t| required(t, "start"))?;
    let end = params
        .time_ms("end", i64::MIN)
        .and_then(|t| required(t, "end"))?;
    let step = params
        .duration_ms("step")?
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"step\": missing"))?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    if step <= 0 {
        return Err(ApiError::bad_data(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let lookback = lookback(&params)?;
    let timeout = timeout(&params, state)?;
    let _slot = state
        .query_slots
        .acquire()
        .await
        .map_err(|_| ApiError::internal("query slots closed"))?;
    let value = tokio::time::timeout(
        timeout,
        state
            .promql
            .range_annotated(expr, start, end, step, lookback),
    )
    .await
    .map_err(|_| to_api_error(PromqlError::Timeout))?
    .map_err(to_api_error)?;
    Ok(success(&value))
}

fn required(t: i64, name: &str) -> Result<i64, ApiError> {
    if t == i64::MIN {
        Err(ApiError::bad_data(format!(
            "invalid parameter \"{name}\": missing"
        )))
    } else {
        Ok(t)
    }
}

fn lookback(params: &Params) -> Result<Duration, ApiError> {
    Ok(params
        .duration_ms("lookback_delta")?
        .map(|ms| Duration::from_millis(ms.max(1) as u64))
        .unwrap_or(DEFAULT_LOOKBACK))
}

fn timeout(params: &Params, state: &AppState) -> Result<Duration, ApiError> {
    let configured = state.options.query_timeout;
    Ok(params
        .duration_ms("timeout")?
        .map(|ms| Duration::from_millis(ms.max(1) as u64).min(configured))
        .unwrap_or(configured))
}

pub fn to_api_error(e: PromqlError) -> ApiError {
    match e {
        PromqlError::BadData(m) => ApiError::bad_data(m),
        PromqlError::Timeout => ApiError::timeout("query timed out in expression evaluation"),
        PromqlError::Execution(m) => ApiError::execution(m),
        e @ PromqlError::Unsupported(_) => ApiError::execution(e.to_string()),
    }
}

fn success(evaluation: &Evaluation) -> Value {
    let mut body = success_value(&evaluation.value);
    if !evaluation.warnings.is_empty() {
        body["warnings"] = json!(evaluation.warnings);
    }
    if !evaluation.infos.is_empty() {
        body["infos"] = json!(evaluation.infos);
    }
    body
}

fn success_value(value: &PromValue) -> Value {
    let (kind, result) = match value {
        PromValue::Vector(series) => (
            "vector",
            Value::Array(series.iter().map(vector_item).collect()),
        ),
        PromValue::Matrix(series) => (
            "matrix",
            Value::Array(series.iter().map(matrix_item).collect()),
        ),
        PromValue::Scalar(t, v) => ("scalar", json!([seconds(*t), format_value(*v)])),
        PromValue::String(t, s) => ("string", json!([seconds(*t), s])),
    };
    json!({"status": "success", "data": {"resultType": kind, "result": result}})
}

fn metric(series: &Series) -> Value {
    Value::Object(
        series
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn vector_item(series: &Series) -> Value {
    let (t, v) = series.points.first().copied().unwrap_or((0, f64::NAN));
    json!({"metric": metric(series), "value": [seconds(t), format_value(v)]})
}

fn matrix_item(series: &Series) -> Value {
    let values: Vec<Value> = series
        .points
        .iter()
        .map(|(t, v)| json!([seconds(*t), format_value(*v)]))
        .collect();
    json!({"metric": metric(series), "values": values})
}

/// Unix seconds with millisecond precision, as a JSON number.
fn seconds(ms: i64) -> Value {
    // Whole seconds without a fraction (`4`, not `4.0`), as Prometheus writes them.
    if ms % 1000 == 0 {
        return Value::from(ms / 1000);
    }
    serde_json::Number::from_f64(ms as f64 / 1000.0)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Prometheus's sample value text: shortest round-trip decimal, `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}
