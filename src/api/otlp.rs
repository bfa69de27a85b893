//! `POST /api/v1/otlp/v1/metrics`: OpenTelemetry metrics over OTLP/HTTP, protobuf or JSON,
//! optionally gzip-compressed, as Prometheus 3.x receives them (`--web.enable-otlp-receiver`).
//! The request is translated by [`crate::otlp`] and stored like a remote write; what could
//! not be stored is reported in the response's `partial_success`, as the OTLP spec has it
//! (the sender does not retry it). A body that cannot be read is a 400 and stores nothing.

use std::io::Read;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;

use crate::model::{Labels, SeriesSamples};
use crate::otlp::Translated;
use crate::storage::Storage;

use super::AppState;

/// How far a gzip body may expand, relative to the body limit.
const MAX_EXPANSION: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// A refusal of the whole request: status and text.
type Refusal = (StatusCode, String);

pub async fn metrics(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let response = match receive(&state, &headers, body).await {
        Ok(response) => response,
        Err((status, message)) => (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{message}\n"),
        )
            .into_response(),
    };
    state
        .metrics
        .ingest
        .otlp_requests
        .with_label_values(&[response.status().as_str()])
        .inc();
    response
}

async fn receive(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Response, Refusal> {
    if !state.options.enable_otlp_receiver {
        return Err((
            StatusCode::NOT_FOUND,
            "otlp write receiver needs to be enabled with --web.enable-otlp-receiver".to_owned(),
        ));
    }
    super::writable(state).map_err(|e| (e.status, e.message))?;
    let encoding = content_type(headers)?;
    let gzip = content_encoding(headers)?;
    let limit = state.options.remote_write_max_body_bytes;
    let body = to_bytes(body, limit).await.map_err(|_| {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds the limit of {limit} bytes (storage.remote_write_max_body_bytes)"),
        )
    })?;
    let storage = state.storage.clone();
    let config = state.lifecycle.config_status().config.otlp.clone();
    let metrics = state.metrics.ingest.clone();
    // Decompressing, decoding, translating and storing are CPU work: off the async workers.
    tokio::task::spawn_blocking(move || {
        let raw = if gzip {
            gunzip(&body, limit.saturating_mul(MAX_EXPANSION))?
        } else {
            body.to_vec()
        };
        let request = decode(&raw, encoding)?;
        let translated = crate::otlp::translate(&request, &config);
        if translated.rejected > 0 {
            metrics
                .otlp_rejected_points
                .with_label_values(&["translation"])
                .inc_by(translated.rejected);
        }
        let (rejected, message) = store(&storage, translated)?;
        if rejected.storage > 0 {
            metrics
                .otlp_rejected_points
                .with_label_values(&["storage"])
                .inc_by(rejected.storage);
        }
        let partial_success = (!message.is_empty()).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: (rejected.translation + rejected.storage) as i64,
            error_message: message,
        });
        Ok(respond(
            encoding,
            ExportMetricsServiceResponse { partial_success },
        ))
    })
    .await
    .map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("OTLP task failed: {e}"),
        )
    })?
}

fn content_type(headers: &HeaderMap) -> Result<Encoding, Refusal> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported Content-Type {value:?}: OTLP/HTTP is application/x-protobuf or application/json"
            ),
        )),
    }
}

fn content_encoding(headers: &HeaderMap) -> Result<bool, Refusal> {
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None => Ok(false),
        Some(e) if e.eq_ignore_ascii_case("identity") => Ok(false),
        Some(e) if e.eq_ignore_ascii_case("gzip") => Ok(true),
        Some(e) => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Encoding {e:?}: send gzip or no encoding"),
        )),
    }
}

fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::new();
    let mut reader = flate2::read::GzDecoder::new(body).take(max as u64 + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("corrupt gzip body: {e}")))?;
    if out.len() > max {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("decompressed body exceeds the limit of {max} bytes"),
        ));
    }
    Ok(out)
}

fn decode(raw: &[u8], encoding: Encoding) -> Result<ExportMetricsServiceRequest, Refusal> {
    match encoding {
        Encoding::Protobuf => ExportMetricsServiceRequest::decode(raw).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("malformed protobuf ExportMetricsServiceRequest: {e}"),
            )
        }),
        Encoding::Json => serde_json::from_slice(raw).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("malformed JSON ExportMetricsServiceRequest: {e}"),
            )
        }),
    }
}

/// Data points or samples not stored, by where they were lost.
struct Rejected {
    translation: u64,
    storage: u64,
}

/// Stores the translated series and their exemplars; what was not stored, and why (empty
/// when everything was).
fn store(storage: &Storage, translated: Translated) -> Result<(Rejected, String), Refusal> {
    let mut messages = translated.errors;
    let mut batch = Vec::with_capacity(translated.series.len());
    let mut exemplars = Vec::new();
    let mut invalid = 0u64;
    // The head's own label sets where it has the series: nothing validated or built again.
    let known = {
        let pairs: Vec<Vec<(&[u8], &[u8])>> = translated
            .series
            .iter()
            .map(|s| {
                s.labels
                    .iter()
                    .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
                    .collect()
            })
            .collect();
        let sets: Vec<&[(&[u8], &[u8])]> = pairs.iter().map(Vec::as_slice).collect();
        storage.known_label_sets(&sets)
    };
    for (series, known) in translated.series.into_iter().zip(known) {
        match known.map_or_else(|| Labels::series(series.labels).map(Arc::new), Ok) {
            Ok(labels) => {
                if !series.exemplars.is_empty() {
                    exemplars.push((labels.clone(), series.exemplars));
                }
                // OTLP's histograms are integer histograms: their count must match their
                // buckets, as Prometheus's appender checks.
                let mut histograms = Vec::with_capacity(series.histograms.len());
                for h in series.histograms {
                    match h.histogram.validate(true) {
                        Ok(()) => histograms.push(h),
                        Err(e) => {
                            invalid += 1;
                            if messages.len() < 10 {
                                messages.push(format!("invalid histogram of {labels}: {e}"));
                            }
                        }
                    }
                }
                batch.push(SeriesSamples {
                    labels,
                    samples: series.samples,
                    histograms,
                });
            }
            Err(e) => {
                invalid += (series.samples.len() + series.histograms.len()) as u64;
                if messages.len() < 10 {
                    messages.push(format!("invalid series: {e}"));
                }
            }
        }
    }
    let offered: usize = batch
        .iter()
        .map(|s| s.samples.len() + s.histograms.len())
        .sum();
    let mut appender = storage.partial_appender();
    appender.extend(batch);
    let outcome = appender.commit().map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("storing samples: {e:#}"),
        )
    })?;
    let skipped = outcome.skipped.total() as u64;
    if skipped > 0 {
        messages.push(format!(
            "{} out-of-order and {} out-of-bounds samples not stored (first: {}); {} of {offered} stored",
            outcome.skipped.out_of_order,
            outcome.skipped.out_of_bounds,
            outcome.skipped.first.as_deref().unwrap_or(""),
            offered as u64 - skipped,
        ));
    }
    for (labels, list) in exemplars {
        for exemplar in list {
            // A repeated or out-of-order exemplar is dropped, as Prometheus does.
            let _ = storage.exemplars().add(&labels, exemplar);
        }
    }
    let rejected = Rejected {
        translation: translated.rejected,
        storage: skipped + invalid,
    };
    Ok((rejected, messages.join("; ")))
}

fn respond(encoding: Encoding, message: ExportMetricsServiceResponse) -> Response {
    let (content_type, body) = match encoding {
        Encoding::Protobuf => ("application/x-protobuf", message.encode_to_vec()),
        // OTLP/JSON leaves unset fields out.
        Encoding::Json => match &message.partial_success {
            None => ("application/json", b"{}".to_vec()),
            Some(_) => (
                "application/json",
                serde_json::to_vec(&message).unwrap_or_else(|_| b"{}".to_vec()),
            ),
        },
    };
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
