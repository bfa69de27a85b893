//! `POST /api/v1/write`: the Prometheus remote-write 1.0 receiver.
//!
//! The request is checked whole (headers, size, snappy, protobuf, every label set) before
//! anything is appended, and the append itself is all or nothing, so a refused request
//! stores nothing.

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use crate::model::{Labels, Sample, SeriesSamples};
use crate::prompb::view::{ViewError, WriteRequestView, utf8};
use crate::storage::{AppendError, Storage};

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
    let max_decoded = limit.saturating_mul(MAX_EXPANSION);
    let storage = state.storage.clone();
    // Decompressing, decoding and storing are CPU work: off the async workers.
    let outcome = tokio::task::spawn_blocking(move || {
        let raw = decompress(&compressed, max_decoded)?;
        let request = WriteRequestView::decode(&raw)
            .map_err(|e| ApiError::bad_data(format!("malformed protobuf WriteRequest: {e}")))?;
        let batch = to_series(&storage, &request)?;
        let mut appender = storage.appender();
        appender.extend(batch);
        Ok::<_, ApiError>(appender.commit())
    })
    .await
    .map_err(|e| ApiError::internal(format!("append task failed: {e}")))??;
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

fn decompress(compressed: &[u8], max_decoded: usize) -> Result<Vec<u8>, ApiError> {
    let len = snap::raw::decompress_len(compressed)
        .map_err(|e| ApiError::bad_data(format!("corrupt snappy body: {e}")))?;
    if len > max_decoded {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bad_data",
            format!("decompressed body of {len} bytes exceeds the limit of {max_decoded} bytes"),
        ));
    }
    snap::raw::Decoder::new()
        .decompress_vec(compressed)
        .map_err(|e| ApiError::bad_data(format!("corrupt snappy body: {e}")))
}

/// The request's series with their label sets: the head's own copy where it has the series
/// (nothing built or validated again), a new validated set otherwise.
fn to_series(
    storage: &Storage,
    request: &WriteRequestView<'_>,
) -> Result<Vec<SeriesSamples>, ApiError> {
    // Each series' pairs as a label set holds them: sorted by name, empty values dropped.
    let mut pairs: Vec<(&[u8], &[u8])> = Vec::with_capacity(request.labels.len());
    let mut ranges = Vec::with_capacity(request.series.len());
    for series in &request.series {
        let start = pairs.len();
        pairs.extend(
            request
                .labels_of(series)
                .iter()
                .filter(|(_, value)| !value.is_empty()),
        );
        let own = &mut pairs[start..];
        if !own.is_sorted_by(|a, b| a.0 <= b.0) {
            own.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        ranges.push(start..pairs.len());
    }
    let pair_sets: Vec<&[(&[u8], &[u8])]> = ranges.iter().map(|r| &pairs[r.clone()]).collect();
    let known = storage.known_label_sets(&pair_sets);
    request
        .series
        .iter()
        .zip(known)
        .enumerate()
        .map(|(i, (series, known))| {
            let labels = match known {
                Some(labels) => labels,
                None => {
                    let bad = |e: &dyn std::fmt::Display| {
                        ApiError::bad_data(format!("timeseries[{i}]: {e}"))
                    };
                    let owned = request
                        .labels_of(series)
                        .iter()
                        .map(|(n, v)| Ok((utf8(n)?.to_string(), utf8(v)?.to_string())))
                        .collect::<Result<_, ViewError>>()
                        .map_err(|e| bad(&e))?;
                    Arc::new(Labels::new(owned).map_err(|e| bad(&e))?)
                }
            };
            let samples = request
                .samples_of(series)
                .iter()
                .map(|&(timestamp_ms, value)| Sample::new(timestamp_ms, value))
                .collect();
            Ok(SeriesSamples { labels, samples })
        })
        .collect()
}
