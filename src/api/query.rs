//! `/api/v1/query`, `/api/v1/query_range` and `/api/v1/explain`: PromQL over HTTP with
//! Prometheus's parameters and JSON.

use std::fmt::Write as _;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::model::now_ms;
use crate::query::promql::aggregates::PromFloat;
use crate::query::promql::{
    DEFAULT_LOOKBACK, Evaluation, PromValue, PromqlError, Series, SourceResolution,
};

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
    respond_text(run_instant(&state, query, &headers, body).await)
}

pub async fn range(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond_text(run_range(&state, query, &headers, body).await)
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
        if params
            .get("analyze")
            .is_some_and(|v| v == "true" || v == "1")
        {
            let span = analyze_span(&params, time)?;
            let timeout = timeout(&params, &state)?;
            let resolution = source_resolution(&params)?;
            let analysis = state.promql.analyze(expr, span, resolution);
            let analyzed = limited(&state, "explain", timeout, analysis).await?;
            data["analyzed"] = json!(analyzed);
        }
        Ok(json!({"status": "success", "data": data}))
    }
    .await;
    respond(result)
}

/// `(start, end, step)` of an analyzed query: the range query's when `step` is given, else
/// the instant query at `time`.
fn analyze_span(params: &Params, time: i64) -> Result<(i64, i64, i64), ApiError> {
    match params.get("step") {
        Some(_) => range_span(params),
        None => Ok((time, time, 0)),
    }
}

/// A JSON body already written as text.
fn respond_text(result: Result<String, ApiError>) -> Response {
    match result {
        Ok(text) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            text,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
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
) -> Result<String, ApiError> {
    let params = Params::read(query, headers, body).await?;
    let expr = params.require("query")?;
    let time = params.time_ms("time", now_ms())?;
    let lookback = lookback(&params)?;
    let timeout = timeout(&params, state)?;
    let resolution = source_resolution(&params)?;
    let query = state
        .promql
        .instant_annotated(expr, time, lookback, resolution);
    let value = limited(state, "instant", timeout, query).await?;
    Ok(success_json(&value))
}

async fn run_range(
    state: &AppState,
    query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<String, ApiError> {
    let params = Params::read(query, headers, body).await?;
    let expr = params.require("query")?;
    let (start, end, step) = range_span(&params)?;
    let lookback = lookback(&params)?;
    let timeout = timeout(&params, state)?;
    let resolution = source_resolution(&params)?;
    let query = state
        .promql
        .range_annotated(expr, start, end, step, lookback, resolution);
    let value = limited(state, "range", timeout, query).await?;
    Ok(success_json(&value))
}

/// Thanos's `max_source_resolution` parameter; `auto` when absent.
fn source_resolution(params: &Params) -> Result<SourceResolution, ApiError> {
    SourceResolution::parse(params.get("max_source_resolution").unwrap_or_default())
        .map_err(ApiError::bad_data)
}

/// Runs a query within the concurrency limit and its timeout, failing as Prometheus does,
/// and counts it (`kind`: instant or range) with its duration.
async fn limited<T>(
    state: &AppState,
    kind: &str,
    timeout: Duration,
    query: impl Future<Output = Result<T, PromqlError>>,
) -> Result<T, ApiError> {
    let started = std::time::Instant::now();
    let result = async {
        let _slot = state
            .query_slots
            .acquire()
            .await
            .map_err(|_| ApiError::internal("query slots closed"))?;
        tokio::time::timeout(timeout, query)
            .await
            .map_err(|_| to_api_error(PromqlError::Timeout))?
            .map_err(to_api_error)
    }
    .await;
    let metrics = &state.metrics.query;
    let outcome = if result.is_ok() { "success" } else { "error" };
    metrics
        .promql_queries
        .with_label_values(&[kind, outcome])
        .inc();
    metrics
        .promql_query_seconds
        .observe(started.elapsed().as_secs_f64());
    result
}

/// A range query's `(start, end, step)`, checked as Prometheus checks them.
fn range_span(params: &Params) -> Result<(i64, i64, i64), ApiError> {
    let start = params.required_time_ms("start")?;
    let end = params.required_time_ms("end")?;
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
    Ok((start, end, step))
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

/// The success envelope, written straight to text: a range query's answer can hold hundreds
/// of thousands of points, and a JSON value tree would allocate several times per point.
fn success_json(evaluation: &Evaluation) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(r#"{"status":"success","data":"#);
    write_value(&mut out, &evaluation.value);
    for (key, list) in [
        ("warnings", &evaluation.warnings),
        ("infos", &evaluation.infos),
    ] {
        if !list.is_empty() {
            let _ = write!(out, r#","{key}":{}"#, json!(list));
        }
    }
    out.push('}');
    out
}

fn write_value(out: &mut String, value: &PromValue) {
    match value {
        PromValue::Vector(series) => {
            out.push_str(r#"{"resultType":"vector","result":["#);
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_metric(out, s);
                match (s.points.first(), s.histograms.first()) {
                    (None, Some((t, h))) => {
                        out.push_str(r#","histogram":"#);
                        write_histogram_point(out, *t, h);
                    }
                    (point, _) => {
                        let (t, v) = point.copied().unwrap_or((0, f64::NAN));
                        out.push_str(r#","value":"#);
                        write_point(out, t, v);
                    }
                }
                out.push('}');
            }
        }
        PromValue::Matrix(series) => {
            out.push_str(r#"{"resultType":"matrix","result":["#);
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_metric(out, s);
                // As Prometheus: `values` for floats, `histograms` for native histograms,
                // each only when the series has some.
                if !s.points.is_empty() || s.histograms.is_empty() {
                    out.push_str(r#","values":["#);
                    for (j, (t, v)) in s.points.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        write_point(out, *t, *v);
                    }
                    out.push(']');
                }
                if !s.histograms.is_empty() {
                    out.push_str(r#","histograms":["#);
                    for (j, (t, h)) in s.histograms.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        write_histogram_point(out, *t, h);
                    }
                    out.push(']');
                }
                out.push('}');
            }
        }
        PromValue::Scalar(t, v) => {
            out.push_str(r#"{"resultType":"scalar","result":"#);
            write_point(out, *t, *v);
            out.push('}');
            return;
        }
        PromValue::String(t, text) => {
            out.push_str(r#"{"resultType":"string","result":["#);
            write_seconds(out, *t);
            let _ = write!(out, ",{}]}}", Value::String(text.clone()));
            return;
        }
    }
    out.push_str("]}");
}

/// `{"metric":{...}` (left open for the points).
fn write_metric(out: &mut String, series: &Series) {
    out.push_str(r#"{"metric":{"#);
    for (i, (name, value)) in series.labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}:{}", json_string(name), json_string(value));
    }
    out.push('}');
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

/// `[<unix seconds>,{"count":"…","sum":"…","buckets":[[<boundary rule>,"<lower>","<upper>","<count>"],…]}]`,
/// as Prometheus writes a native histogram: buckets without observations are left out, and
/// `buckets` when none is left.
fn write_histogram_point(out: &mut String, t: i64, h: &crate::model::Histogram) {
    out.push('[');
    write_seconds(out, t);
    let _ = write!(
        out,
        r#",{{"count":"{}","sum":"{}""#,
        PromFloat(h.count),
        PromFloat(h.sum)
    );
    let mut first = true;
    for b in h.buckets().iter().filter(|b| b.count != 0.0) {
        out.push_str(if first { r#","buckets":["# } else { "," });
        first = false;
        let _ = write!(
            out,
            r#"[{},"{}","{}","{}"]"#,
            b.boundary_rule(),
            PromFloat(b.lower),
            PromFloat(b.upper),
            PromFloat(b.count)
        );
    }
    if !first {
        out.push(']');
    }
    out.push_str("}]");
}

/// `[<unix seconds>,"<value>"]`.
fn write_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    write_seconds(out, t);
    let _ = write!(out, ",\"{}\"]", PromFloat(v));
}

/// Unix seconds with millisecond precision; whole seconds without a fraction (`4`, not
/// `4.0`), as Prometheus writes them.
fn write_seconds(out: &mut String, ms: i64) {
    if ms % 1000 == 0 {
        let _ = write!(out, "{}", ms / 1000);
    } else {
        let _ = write!(out, "{}", ms as f64 / 1000.0);
    }
}
