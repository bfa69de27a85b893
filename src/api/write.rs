//! `POST /api/v1/write`: the Prometheus remote-write receiver, 1.0 and 2.0 (told apart by the
//! Content-Type's `proto` parameter, as the 2.0 specification says).
//!
//! 2.0's `created_timestamp` becomes the samples' start timestamp (a histogram's own
//! `start_timestamp` wins). Native histograms (1.0 and 2.0) are checked as Prometheus checks
//! them and stored with the floats. Exemplars (1.0 and 2.0) go to storage's exemplar store
//! once the samples are stored. A 2.0 answer's `X-Prometheus-Remote-Write-*-Written`
//! headers say how many of each kind were written.
//!
//! Headers, size, snappy and protobuf are checked before anything is appended: a request
//! that fails them stores nothing. Within a readable request every valid sample is stored
//! and durable before the answer, and the invalid ones (bad label sets, out of order, out
//! of bounds) are dropped and counted (`quiver_tsdb_samples_rejected_total{reason}`); the answer
//! is then 400 naming what was dropped, as the remote-write specification asks, since a
//! sender does not retry a 4xx and a refusal of the whole request would lose its good
//! samples too.

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use crate::model::{HistogramSample, Labels, Sample, SeriesSamples};
use crate::prompb::view::{ViewError, WriteRequestView, utf8};
use crate::storage::exemplars::Exemplar;
use crate::storage::{Skipped, Storage};

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
    let version = check_headers(&headers);
    let version_label = version.as_ref().map_or("", |v| v.name());
    let (result, written) = receive(&state, version, body).await;
    let mut response = match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    };
    if let Some(written) = written {
        let headers = response.headers_mut();
        for (name, n) in [
            ("x-prometheus-remote-write-samples-written", written.samples),
            (
                "x-prometheus-remote-write-histograms-written",
                written.histograms,
            ),
            (
                "x-prometheus-remote-write-exemplars-written",
                written.exemplars,
            ),
        ] {
            headers.insert(name, axum::http::HeaderValue::from(n));
        }
    }
    state
        .metrics
        .ingest
        .remote_write_requests
        .with_label_values(&[response.status().as_str(), version_label])
        .inc();
    response
}

/// What a 2.0 request wrote, for its answer's headers.
struct Written {
    samples: usize,
    histograms: usize,
    exemplars: usize,
}

/// Stores a request; for 2.0, also what it wrote (once the request could be read).
async fn receive(
    state: &AppState,
    version: Result<Version, ApiError>,
    body: Body,
) -> (Result<(), ApiError>, Option<Written>) {
    let version = match super::writable(state).and(version) {
        Ok(version) => version,
        Err(e) => return (Err(e), None),
    };
    match store(state, version, body).await {
        Ok((stored, histograms, exemplars, refusal)) => {
            let written = (version == Version::V2).then_some(Written {
                samples: stored,
                histograms,
                exemplars,
            });
            (refusal.map_or(Ok(()), Err), written)
        }
        Err(e) => (Err(e), None),
    }
}

/// The protocol version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

impl Version {
    fn name(self) -> &'static str {
        match self {
            Version::V1 => "1.0",
            Version::V2 => "2.0",
        }
    }
}

/// Stores what a readable request holds: the float samples, histograms and exemplars
/// stored, and the 400 that names what was not (for a request that could not be read at
/// all, the error).
async fn store(
    state: &AppState,
    version: Version,
    body: Body,
) -> Result<(usize, usize, usize, Option<ApiError>), ApiError> {
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
    let metrics = state.metrics.storage.clone();
    let (outcome, offered, exemplars, invalid) = tokio::task::spawn_blocking(move || {
        let raw = decompress(&compressed, max_decoded)?;
        let request = match version {
            Version::V1 => WriteRequestView::decode(&raw)
                .map_err(|e| ApiError::bad_data(format!("malformed protobuf WriteRequest: {e}")))?,
            Version::V2 => crate::prompb::view_v2::decode(&raw).map_err(|e| {
                ApiError::bad_data(format!(
                    "malformed protobuf io.prometheus.write.v2.Request: {e}"
                ))
            })?,
        };
        let (batch, from, invalid) = to_series(&storage, &request);
        // The series that carry exemplars, kept for after the commit.
        let with_exemplars: Vec<(Arc<Labels>, usize)> = batch
            .iter()
            .zip(&from)
            .filter(|(_, i)| !request.series[**i].exemplars.is_empty())
            .map(|(s, i)| (s.labels.clone(), *i))
            .collect();
        if invalid.samples > 0 {
            metrics
                .samples_rejected
                .with_label_values(&["invalid_labels"])
                .inc_by(invalid.samples as u64);
        }
        if invalid.histograms > 0 {
            metrics
                .samples_rejected
                .with_label_values(&["invalid_histogram"])
                .inc_by(invalid.histograms as u64);
        }
        let offered: usize = batch.iter().map(|s| s.samples.len()).sum();
        let offered_histograms: usize = batch.iter().map(|s| s.histograms.len()).sum();
        let mut appender = storage.partial_appender();
        appender.extend(batch);
        let outcome = appender.commit();
        let exemplars = match &outcome {
            Ok(_) => store_exemplars(&storage, &request, &with_exemplars),
            Err(_) => 0,
        };
        Ok::<_, ApiError>((outcome, (offered, offered_histograms), exemplars, invalid))
    })
    .await
    .map_err(|e| ApiError::internal(format!("append task failed: {e}")))??;
    let outcome = outcome.map_err(|e| ApiError::internal(e.to_string()))?;
    // Stored: every valid sample (a repeat of a stored one included).
    let skipped = &outcome.skipped;
    let histograms = offered.1 - skipped.histograms;
    let stored = offered.0 - (skipped.total() - skipped.histograms);
    let refused = refusal(skipped, &invalid).map(|message| {
        ApiError::bad_data(format!(
            "stored {stored} samples and {histograms} histograms; {message}"
        ))
    });
    Ok((stored, histograms, exemplars, refused))
}

/// Adds the exemplars of `series` (label set, index in the request) to the store; returns
/// how many it took (out-of-order ones, repeats excepted, and ones with labels that are not
/// UTF-8 or too long are not).
fn store_exemplars(
    storage: &Storage,
    request: &WriteRequestView<'_>,
    series: &[(Arc<Labels>, usize)],
) -> usize {
    let mut taken = 0;
    for (labels, i) in series {
        for e in request.exemplars_of(&request.series[*i]) {
            let Ok(pairs) = request
                .exemplar_labels_of(e)
                .iter()
                .map(|(n, v)| Ok((utf8(n)?.to_string(), utf8(v)?.to_string())))
                .collect::<Result<Vec<_>, ViewError>>()
            else {
                continue;
            };
            let exemplar = Exemplar {
                labels: pairs.into_iter().collect(),
                value: e.value,
                timestamp_ms: e.timestamp_ms,
            };
            if storage.exemplars().add(labels, exemplar).is_ok() {
                taken += 1;
            }
        }
    }
    taken
}

/// What a request lost, for its 400 answer: the sender does not retry a 4xx, so it names
/// every reason with its count and the first sample or series of each.
fn refusal(skipped: &Skipped, invalid: &InvalidSeries) -> Option<String> {
    let mut parts = Vec::new();
    if invalid.histograms > 0 {
        parts.push(format!(
            "dropped {} invalid native histogram samples (first: {})",
            invalid.histograms,
            invalid.first_histogram.as_deref().unwrap_or("")
        ));
    }
    if invalid.samples > 0 {
        parts.push(format!(
            "dropped {} samples of {} series with invalid labels (first: {})",
            invalid.samples,
            invalid.series,
            invalid.first.as_deref().unwrap_or("")
        ));
    }
    if skipped.total() > 0 {
        parts.push(format!(
            "dropped {} out-of-order and {} out-of-bounds samples (first: {})",
            skipped.out_of_order,
            skipped.out_of_bounds,
            skipped.first.as_deref().unwrap_or("")
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn check_headers(headers: &HeaderMap) -> Result<Version, ApiError> {
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
    let proto = content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("proto"))
        .map(|(_, value)| value.trim().trim_matches('"'));
    let version = match proto {
        None | Some("prometheus.WriteRequest") => Version::V1,
        Some("io.prometheus.write.v2.Request") => Version::V2,
        Some(other) => {
            return Err(unsupported(format!(
                "unsupported remote-write message {other:?}: send prometheus.WriteRequest (1.0) or io.prometheus.write.v2.Request (2.0)"
            )));
        }
    };
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
        let encoding = encoding.to_str().unwrap_or("");
        if !encoding.eq_ignore_ascii_case("snappy") {
            return Err(unsupported(format!(
                "unsupported Content-Encoding {encoding:?}: remote write needs snappy"
            )));
        }
    }
    Ok(version)
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

/// Series of a request that were dropped for their labels.
#[derive(Debug, Default)]
struct InvalidSeries {
    series: usize,
    samples: usize,
    /// The first of them, with why.
    first: Option<String>,
    /// Native histogram samples that failed Prometheus's checks, and the first of them.
    histograms: usize,
    first_histogram: Option<String>,
}

/// The request's series with their label sets: the head's own copy where it has the series
/// (nothing built or validated again), a new validated set otherwise, and each one's index
/// in the request. Series whose labels are invalid are left out and counted.
fn to_series(
    storage: &Storage,
    request: &WriteRequestView<'_>,
) -> (Vec<SeriesSamples>, Vec<usize>, InvalidSeries) {
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
    let mut invalid = InvalidSeries::default();
    let mut out = Vec::with_capacity(request.series.len());
    let mut from = Vec::with_capacity(request.series.len());
    for (i, (series, known)) in request.series.iter().zip(known).enumerate() {
        let labels = match known.map_or_else(|| new_label_set(request.labels_of(series)), Ok) {
            Ok(labels) => labels,
            Err(why) => {
                invalid.series += 1;
                invalid.samples += series.samples.len() + series.histograms.len();
                invalid
                    .first
                    .get_or_insert_with(|| format!("timeseries[{i}]: {why}"));
                continue;
            }
        };
        let samples = request
            .samples_of(series)
            .iter()
            .map(|&(timestamp_ms, value)| Sample {
                start_timestamp_ms: series.start_ms,
                ..Sample::new(timestamp_ms, value)
            })
            .collect();
        let histograms = valid_histograms(request, i, &mut invalid);
        out.push(SeriesSamples {
            labels,
            samples,
            histograms,
        });
        from.push(i);
    }
    (out, from, invalid)
}

/// The native histograms of the request's series `i` that pass Prometheus's checks; the
/// others are counted in `invalid`. A histogram without a start timestamp of its own takes
/// the series' (2.0's `created_timestamp`).
fn valid_histograms(
    request: &WriteRequestView<'_>,
    i: usize,
    invalid: &mut InvalidSeries,
) -> Vec<HistogramSample> {
    let series = &request.series[i];
    let mut out = Vec::with_capacity(series.histograms.len());
    for (k, decoded) in request.histograms_of(series).iter().enumerate() {
        if let Err(why) = decoded.sample.histogram.validate(decoded.integer) {
            invalid.histograms += 1;
            invalid
                .first_histogram
                .get_or_insert_with(|| format!("timeseries[{i}].histograms[{k}]: {why}"));
            continue;
        }
        let mut sample = decoded.sample.clone();
        if sample.start_timestamp_ms == 0 {
            sample.start_timestamp_ms = series.start_ms;
        }
        out.push(sample);
    }
    out
}

/// A validated label set from a request's pairs, or why they are not one.
fn new_label_set(pairs: &[(&[u8], &[u8])]) -> Result<Arc<Labels>, String> {
    let owned = pairs
        .iter()
        .map(|(n, v)| Ok((utf8(n)?.to_string(), utf8(v)?.to_string())))
        .collect::<Result<_, ViewError>>()
        .map_err(|e| e.to_string())?;
    Labels::series(owned)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}
