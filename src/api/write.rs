//! `POST /api/v1/write`: the Prometheus remote-write 1.0 receiver.
//!
//! The request is checked whole (headers, size, snappy, protobuf, every label set) before
//! anything is appended, and the append itself is all or nothing, so a refused request
//! stores nothing.

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;

use crate::model::{Labels, Sample, SeriesSamples};
use crate::prompb::WriteRequest;
use crate::storage::AppendError;

use super::AppState;
use super::error::ApiError;

/// Snappy expands at most by this factor for real payloads; larger claims are refused
/// before any memory is allocated for them.
const MAX_EXPANSION: usize = 16;

pub async fn remote_write(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let response = match receive(&state, &headers, body).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    };
    state
        .metrics
        .ingest
        .remote_write_requests
        .with_label_values(&[response.status().as_str()])
        .inc();
    response
}

async fn receive(state: &AppState, headers: &HeaderMap, body: Body) -> Result<(), ApiError> {
    super::writable(state)?;
    check_headers(headers)?;
    let limit = state.options.remote_write_max_body_bytes;
    let compressed = to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bad_data",
            format!("request body exceeds the limit of {limit} bytes (storage.remote_write_max_body_bytes)"),
        )
    })?;
    let request = decode(&compressed, limit.saturating_mul(MAX_EXPANSION))?;
    let batch = to_series(request)?;
    let storage = state.storage.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut appender = storage.appender();
        appender.extend(batch);
        appender.commit()
    })
    .await
    .map_err(|e| ApiError::internal(format!("append task failed: {e}")))?;
    match outcome {
        Ok(_) => Ok(()),
        Err(e @ (AppendError::OutOfBounds { .. } | AppendError::OutOfOrder { .. })) => {
            Err(ApiError::bad_data(e.to_string()))
        }
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

fn check_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    let unsupported = |m: String| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_data", m);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/x-protobuf") {
        return Err(unsupported(format!(
            "unsupported Content-Type {content_type:?}: remote write needs application/x-protobuf"
        )));
    }
    if content_type.contains("io.prometheus.write.v2") {
        return Err(unsupported(
            "remote write 2.0 (io.prometheus.write.v2.Request) is not supported; send 1.0".into(),
        ));
    }
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
        let encoding = encoding.to_str().unwrap_or("");
        if !encoding.eq_ignore_ascii_case("snappy") {
            return Err(unsupported(format!(
                "unsupported Content-Encoding {encoding:?}: remote write needs snappy"
            )));
        }
    }
    Ok(())
}

fn decode(compressed: &[u8], max_decoded: usize) -> Result<WriteRequest, ApiError> {
    let len = snap::raw::decompress_len(compressed)
        .map_err(|e| ApiError::bad_data(format!("corrupt snappy body: {e}")))?;
    if len > max_decoded {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bad_data",
            format!("decompressed body of {len} bytes exceeds the limit of {max_decoded} bytes"),
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(compressed)
        .map_err(|e| ApiError::bad_data(format!("corrupt snappy body: {e}")))?;
    WriteRequest::decode(raw.as_slice())
        .map_err(|e| ApiError::bad_data(format!("malformed protobuf WriteRequest: {e}")))
}

fn to_series(request: WriteRequest) -> Result<Vec<SeriesSamples>, ApiError> {
    request
        .timeseries
        .into_iter()
        .enumerate()
        .map(|(i, ts)| {
            let pairs = ts.labels.into_iter().map(|l| (l.name, l.value)).collect();
            let labels = Labels::new(pairs)
                .map_err(|e| ApiError::bad_data(format!("timeseries[{i}]: {e}")))?;
            let samples = ts
                .samples
                .into_iter()
                .map(|s| Sample::new(s.timestamp, s.value))
                .collect();
            Ok(SeriesSamples {
                labels: std::sync::Arc::new(labels),
                samples,
            })
        })
        .collect()
}
