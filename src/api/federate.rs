//! `GET /federate` (the latest sample of every selected series, in the text format or, when
//! asked, the protobuf format with native histograms, so a Prometheus can scrape Quiver) and `POST /api/v1/read` (remote read 1.0, samples).

use std::fmt::Write;

use axum::body::{Body, to_bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::VectorSelector;
use prost::Message;

use crate::model::now_ms;
use crate::model::{escape_label_value, escape_name, is_stale_nan};
use crate::prompb::exposition;
use crate::prompb::{Label, QueryResult, ReadRequest, ReadResponse, Sample, TimeSeries};
use crate::query::promql::select::parse_selector;

use super::AppState;
use super::error::ApiError;
use super::params::Params;
use super::query::to_api_error;
use crate::query::promql::aggregates::format_float;

/// Federation returns a series' newest sample within this window, as Prometheus does.
const FEDERATE_LOOKBACK_MS: i64 = 5 * 60 * 1000;
const MAX_READ_BODY: usize = 32 << 20;

pub async fn federate(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The protobuf format when the scraper asks for it (it carries native histograms),
    // else the text format 0.0.4, as Prometheus negotiates.
    let protobuf = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(exposition::is_content_type);
    let latest = match newest_samples(&state, query, &headers, body).await {
        Ok(latest) => latest,
        Err(e) => return e.into_response(),
    };
    let (body, content_type) = match protobuf {
        true => (
            Body::from(protobuf_families(&latest)),
            exposition::CONTENT_TYPE,
        ),
        false => (
            Body::from(text_families(&latest)),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A series' newest sample.
enum Newest {
    Float(f64),
    Histogram(std::sync::Arc<crate::model::Histogram>),
}

/// Label set (sorted, with the external labels) -> time and newest sample of every series
/// the `match[]` selectors select.
type Latest = std::collections::BTreeMap<crate::model::Labels, (i64, Newest)>;

async fn newest_samples(
    state: &AppState,
    query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Latest, ApiError> {
    let params = Params::read(query, headers, body).await?;
    let selectors = params.all("match[]");
    if selectors.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let now = now_ms();
    // The running configuration's, so a reload that changes them applies at once.
    let running = state.lifecycle.config_status().config;
    let external_labels = &running.global.external_labels;
    let mut latest = Latest::new();
    for text in &selectors {
        let selector = parse_selector(text).map_err(to_api_error)?;
        let series = state
            .promql
            .raw_series(&selector, now - FEDERATE_LOOKBACK_MS, now)
            .await
            .map_err(to_api_error)?;
        for s in series {
            let float = s.points.last().map(|&(t, v)| (t, Newest::Float(v)));
            let histogram = s
                .histograms
                .last()
                .map(|(t, h)| (*t, Newest::Histogram(h.clone())));
            let newest = match (float, histogram) {
                (Some(f), Some(h)) => Some(if h.0 > f.0 { h } else { f }),
                (f, h) => f.or(h),
            };
            let Some(newest) = newest else {
                continue;
            };
            if matches!(newest.1, Newest::Float(v) if is_stale_nan(v)) {
                continue;
            }
            let mut labels = s.labels.builder();
            for (name, value) in external_labels.iter() {
                if s.labels.get(name).is_none() {
                    labels.set(name, value.to_string());
                }
            }
            latest.insert(labels.labels(), newest);
        }
    }
    Ok(latest)
}

/// The float samples in the text format 0.0.4 (it cannot carry native histograms). Names
/// the classic rules refuse are escaped with underscores, as Prometheus federates them to
/// a scraper that does not ask for UTF-8 names.
fn text_families(latest: &Latest) -> String {
    let mut out = String::new();
    let mut last_family = String::new();
    for (labels, (t, newest)) in latest {
        let Newest::Float(v) = newest else {
            continue;
        };
        let name = escape_name(labels.metric_name().unwrap_or(""));
        if name != last_family {
            let _ = writeln!(out, "# TYPE {name} untyped");
            last_family = name.to_string();
        }
        let rendered: Vec<String> = labels
            .without_metric_name()
            .map(|(n, v)| format!("{}=\"{}\"", escape_name(n), escape_label_value(v)))
            .collect();
        let _ = writeln!(
            out,
            "{name}{{{}}} {} {t}",
            rendered.join(","),
            format_float(*v)
        );
    }
    out
}

/// Every sample in the protobuf format: floats as untyped metrics, native histograms as
/// histograms (a family per metric name and kind, as Prometheus writes them); names
/// escaped as in the text format.
fn protobuf_families(latest: &Latest) -> Vec<u8> {
    let mut families: Vec<exposition::MetricFamily> = Vec::new();
    for (labels, (t, newest)) in latest {
        let name = escape_name(labels.metric_name().unwrap_or(""));
        let name = name.as_ref();
        let kind = match newest {
            Newest::Float(_) => exposition::UNTYPED,
            Newest::Histogram(_) => exposition::HISTOGRAM,
        };
        let mut metric = exposition::Metric {
            label: labels
                .without_metric_name()
                .map(|(n, v)| exposition::LabelPair {
                    name: Some(escape_name(n).into_owned()),
                    value: Some(v.to_string()),
                })
                .collect(),
            timestamp_ms: Some(*t),
            ..Default::default()
        };
        match newest {
            Newest::Float(v) => metric.untyped = Some(exposition::Gauge { value: Some(*v) }),
            Newest::Histogram(h) => {
                metric.histogram = Some(exposition::HistogramMessage::from_histogram(h))
            }
        }
        match families.last_mut() {
            Some(f) if f.name.as_deref() == Some(name) && f.r#type == Some(kind) => {
                f.metric.push(metric)
            }
            _ => families.push(exposition::MetricFamily {
                name: Some(name.to_string()),
                r#type: Some(kind),
                metric: vec![metric],
                ..Default::default()
            }),
        }
    }
    exposition::encode(&families)
}

pub async fn remote_read(State(state): State<AppState>, body: Body) -> Response {
    match read(&state, body).await {
        Ok(bytes) => {
            let mut response = bytes.into_response();
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            );
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
            response
        }
        Err(e) => e.into_response(),
    }
}

async fn read(state: &AppState, body: Body) -> Result<Vec<u8>, ApiError> {
    let compressed = to_bytes(body, MAX_READ_BODY).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bad_data",
            "remote read request too large",
        )
    })?;
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&compressed)
        .map_err(|e| ApiError::bad_data(format!("corrupt snappy body: {e}")))?;
    let request = ReadRequest::decode(raw.as_slice())
        .map_err(|e| ApiError::bad_data(format!("malformed ReadRequest: {e}")))?;
    let mut response = ReadResponse::default();
    for query in &request.queries {
        let selector = selector_of(query)?;
        // Remote read ranges are inclusive at both ends.
        let series = state
            .promql
            .raw_series(
                &selector,
                query.start_timestamp_ms - 1,
                query.end_timestamp_ms,
            )
            .await
            .map_err(to_api_error)?;
        let timeseries = series
            .into_iter()
            .map(|s| TimeSeries {
                labels: (s.labels.iter())
                    .map(|(name, value)| Label {
                        name: name.to_string(),
                        value: value.to_string(),
                    })
                    .collect(),
                samples: s
                    .points
                    .into_iter()
                    .map(|(timestamp, value)| Sample { value, timestamp })
                    .collect(),
                histograms: s
                    .histograms
                    .iter()
                    .map(|(t, h)| crate::prompb::histogram::Histogram::from_float(h, *t))
                    .collect(),
            })
            .collect();
        response.results.push(QueryResult { timeseries });
    }
    snap::raw::Encoder::new()
        .compress_vec(&response.encode_to_vec())
        .map_err(|e| ApiError::internal(format!("compressing the response: {e}")))
}

fn selector_of(query: &crate::prompb::Query) -> Result<VectorSelector, ApiError> {
    let mut matchers = Vec::new();
    for m in &query.matchers {
        let op = match m.r#type {
            0 => MatchOp::Equal,
            1 => MatchOp::NotEqual,
            2 | 3 => {
                let regex = crate::gocompat::regex::compile_anchored(&m.value)
                    .map_err(|e| ApiError::bad_data(format!("invalid regex {:?}: {e}", m.value)))?;
                if m.r#type == 2 {
                    MatchOp::Re(regex)
                } else {
                    MatchOp::NotRe(regex)
                }
            }
            other => return Err(ApiError::bad_data(format!("unknown matcher type {other}"))),
        };
        matchers.push(Matcher {
            op,
            name: m.name.clone(),
            value: m.value.clone(),
        });
    }
    Ok(VectorSelector::new(None, Matchers::new(matchers)))
}
