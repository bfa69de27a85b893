//! The protobuf exposition format (`application/vnd.google.protobuf;
//! proto=io.prometheus.client.MetricFamily; encoding=delimited`): a stream of
//! `io.prometheus.client.MetricFamily` messages, each preceded by its length as a varint.
//! Scrapes read it (`scrape::protobuf`) and federation writes it (`api::federate`); it is
//! the format that carries native histograms.
//!
//! The messages are the client model's `metrics.proto` (proto2) declared with prost's derive:
//! optional scalars are `Option`s; repeated numbers are written unpacked, as proto2 does, and
//! read either way.

use prost::Message;

use crate::model::histogram::{Histogram, Span};

#[derive(Clone, PartialEq, Message)]
pub struct MetricFamily {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub help: Option<String>,
    #[prost(int32, optional, tag = "3")]
    pub r#type: Option<i32>,
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
    #[prost(string, optional, tag = "5")]
    pub unit: Option<String>,
}

/// `MetricFamily.type`.
pub const COUNTER: i32 = 0;
pub const GAUGE: i32 = 1;
pub const SUMMARY: i32 = 2;
pub const UNTYPED: i32 = 3;
pub const HISTOGRAM: i32 = 4;
pub const GAUGE_HISTOGRAM: i32 = 5;

#[derive(Clone, PartialEq, Message)]
pub struct Metric {
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    #[prost(message, optional, tag = "2")]
    pub gauge: Option<Gauge>,
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Counter>,
    #[prost(message, optional, tag = "4")]
    pub summary: Option<Summary>,
    #[prost(message, optional, tag = "5")]
    pub untyped: Option<Gauge>,
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<HistogramMessage>,
    #[prost(int64, optional, tag = "6")]
    pub timestamp_ms: Option<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LabelPair {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// `Gauge` and `Untyped` (the same single field).
#[derive(Clone, PartialEq, Message)]
pub struct Gauge {
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Counter {
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
    #[prost(message, optional, tag = "2")]
    pub exemplar: Option<Exemplar>,
    #[prost(message, optional, tag = "3")]
    pub created_timestamp: Option<Timestamp>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Quantile {
    #[prost(double, optional, tag = "1")]
    pub quantile: Option<f64>,
    #[prost(double, optional, tag = "2")]
    pub value: Option<f64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(uint64, optional, tag = "1")]
    pub sample_count: Option<u64>,
    #[prost(double, optional, tag = "2")]
    pub sample_sum: Option<f64>,
    #[prost(message, repeated, tag = "3")]
    pub quantile: Vec<Quantile>,
    #[prost(message, optional, tag = "4")]
    pub created_timestamp: Option<Timestamp>,
}

#[derive(Clone, PartialEq, Message)]
pub struct HistogramMessage {
    #[prost(uint64, optional, tag = "1")]
    pub sample_count: Option<u64>,
    #[prost(double, optional, tag = "4")]
    pub sample_count_float: Option<f64>,
    #[prost(double, optional, tag = "2")]
    pub sample_sum: Option<f64>,
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
    #[prost(message, optional, tag = "15")]
    pub created_timestamp: Option<Timestamp>,
    #[prost(sint32, optional, tag = "5")]
    pub schema: Option<i32>,
    #[prost(double, optional, tag = "6")]
    pub zero_threshold: Option<f64>,
    #[prost(uint64, optional, tag = "7")]
    pub zero_count: Option<u64>,
    #[prost(double, optional, tag = "8")]
    pub zero_count_float: Option<f64>,
    #[prost(message, repeated, tag = "9")]
    pub negative_span: Vec<BucketSpan>,
    #[prost(sint64, repeated, packed = "false", tag = "10")]
    pub negative_delta: Vec<i64>,
    #[prost(double, repeated, packed = "false", tag = "11")]
    pub negative_count: Vec<f64>,
    #[prost(message, repeated, tag = "12")]
    pub positive_span: Vec<BucketSpan>,
    #[prost(sint64, repeated, packed = "false", tag = "13")]
    pub positive_delta: Vec<i64>,
    #[prost(double, repeated, packed = "false", tag = "14")]
    pub positive_count: Vec<f64>,
    #[prost(message, repeated, tag = "16")]
    pub exemplars: Vec<Exemplar>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Bucket {
    #[prost(uint64, optional, tag = "1")]
    pub cumulative_count: Option<u64>,
    #[prost(double, optional, tag = "4")]
    pub cumulative_count_float: Option<f64>,
    #[prost(double, optional, tag = "2")]
    pub upper_bound: Option<f64>,
    #[prost(message, optional, tag = "3")]
    pub exemplar: Option<Exemplar>,
}

#[derive(Clone, PartialEq, Message)]
pub struct BucketSpan {
    #[prost(sint32, optional, tag = "1")]
    pub offset: Option<i32>,
    #[prost(uint32, optional, tag = "2")]
    pub length: Option<u32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    #[prost(double, optional, tag = "2")]
    pub value: Option<f64>,
    #[prost(message, optional, tag = "3")]
    pub timestamp: Option<Timestamp>,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    pub fn millis(&self) -> i64 {
        self.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(self.nanos) / 1_000_000)
    }
}

/// Why a body is not a stream of metric families.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid length prefix at byte {0}")]
    Length(usize),
    #[error("message at byte {at} is cut short")]
    Truncated { at: usize },
    #[error("invalid message at byte {at}: {source}")]
    Message {
        at: usize,
        source: prost::DecodeError,
    },
}

/// Whether a response's Content-Type names this format.
pub fn is_content_type(content_type: &str) -> bool {
    let mut parts = content_type.split(';').map(str::trim);
    parts
        .next()
        .is_some_and(|media| media.eq_ignore_ascii_case("application/vnd.google.protobuf"))
        && parts.any(|p| p.eq_ignore_ascii_case("proto=io.prometheus.client.MetricFamily"))
}

/// The families of a whole response.
pub fn decode(body: &[u8]) -> Result<Vec<MetricFamily>, DecodeError> {
    let mut families = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let at = body.len() - rest.len();
        let length = prost::encoding::decode_varint(&mut rest)
            .map_err(|_| DecodeError::Length(at))? as usize;
        if length > rest.len() {
            return Err(DecodeError::Truncated { at });
        }
        let (message, after) = rest.split_at(length);
        families.push(
            MetricFamily::decode(message).map_err(|source| DecodeError::Message { at, source })?,
        );
        rest = after;
    }
    Ok(families)
}

impl HistogramMessage {
    /// A native histogram in the float form (counts as floats), as federation writes one.
    pub fn from_histogram(h: &Histogram) -> HistogramMessage {
        let spans = |spans: &[Span]| -> Vec<BucketSpan> {
            spans
                .iter()
                .map(|s| BucketSpan {
                    offset: Some(s.offset),
                    length: Some(s.length),
                })
                .collect()
        };
        if h.uses_custom_buckets() {
            return HistogramMessage::classic_of(h);
        }
        let mut message = HistogramMessage {
            sample_count_float: Some(h.count),
            sample_sum: Some(h.sum),
            schema: Some(h.schema),
            zero_threshold: Some(h.zero_threshold),
            zero_count_float: Some(h.zero_count),
            negative_span: spans(&h.negative_spans),
            negative_count: h.negative_buckets.clone(),
            positive_span: spans(&h.positive_spans),
            positive_count: h.positive_buckets.clone(),
            ..Default::default()
        };
        // A histogram without buckets or zero bucket still reads as native: a no-op span.
        let native = !message.positive_span.is_empty()
            || !message.negative_span.is_empty()
            || h.zero_threshold > 0.0
            || h.zero_count > 0.0;
        if !native {
            message.positive_span.push(BucketSpan {
                offset: Some(0),
                length: Some(0),
            });
        }
        message
    }

    /// A custom-bucket histogram as classic buckets (the format has no custom bounds):
    /// each bound with the cumulative count up to it.
    fn classic_of(h: &Histogram) -> HistogramMessage {
        let mut per_index = std::collections::BTreeMap::new();
        for (index, count) in
            crate::model::histogram::bucket_indexes(&h.positive_spans).zip(&h.positive_buckets)
        {
            *per_index.entry(index).or_insert(0.0) += count;
        }
        let mut cumulative = 0.0;
        let bucket = h
            .custom_values
            .iter()
            .enumerate()
            .map(|(i, bound)| {
                cumulative += per_index.get(&(i as i32)).copied().unwrap_or(0.0);
                Bucket {
                    cumulative_count_float: Some(cumulative),
                    upper_bound: Some(*bound),
                    ..Default::default()
                }
            })
            .collect();
        HistogramMessage {
            sample_count_float: Some(h.count),
            sample_sum: Some(h.sum),
            bucket,
            ..Default::default()
        }
    }
}

/// The media type of the format (`Accept` and `Content-Type`).
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Encodes families as a response body (length-delimited), for tests and tools.
pub fn encode(families: &[MetricFamily]) -> Vec<u8> {
    let mut out = Vec::new();
    for family in families {
        // Writing to a Vec cannot fail.
        let _ = family.encode_length_delimited(&mut out);
    }
    out
}
