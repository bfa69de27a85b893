//! The native histogram message remote write 1.0 (`prometheus.Histogram`, a `TimeSeries`'
//! field 4) and 2.0 (`io.prometheus.write.v2.Histogram`, field 3) share: the same fields,
//! 2.0 adding `start_timestamp` (17). A histogram allocates its buckets anyway, so it is
//! decoded with prost's derive rather than read in place.
//!
//! The wire form's `oneof count` and `oneof zero_count` are declared as optional fields with
//! the same numbers: a oneof is only a rule that one of them is set, and encodes alike.

use std::sync::Arc;

use crate::model::HistogramSample;
use crate::model::histogram::{CounterResetHint, Histogram as ModelHistogram, Span};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(uint64, optional, tag = "1")]
    pub count_int: Option<u64>,
    #[prost(double, optional, tag = "2")]
    pub count_float: Option<f64>,
    #[prost(double, tag = "3")]
    pub sum: f64,
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    #[prost(uint64, optional, tag = "6")]
    pub zero_count_int: Option<u64>,
    #[prost(double, optional, tag = "7")]
    pub zero_count_float: Option<f64>,
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    #[prost(int32, tag = "14")]
    pub reset_hint: i32,
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    #[prost(double, repeated, tag = "16")]
    pub custom_values: Vec<f64>,
    /// 2.0 only: when the histogram's counter started (ms), 0 when unknown.
    #[prost(int64, tag = "17")]
    pub start_timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// One histogram sample of a series, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedHistogram {
    pub sample: HistogramSample,
    /// Sent as an integer histogram (counts as integers), whose count must match its
    /// buckets exactly.
    pub integer: bool,
}

impl Histogram {
    /// The sample this message carries. Integer histograms send bucket counts as deltas
    /// from the previous bucket; float ones as absolute counts.
    pub fn to_sample(&self) -> DecodedHistogram {
        let integer = self.count_float.is_none();
        let (count, zero_count, positive, negative) = if integer {
            (
                self.count_int.unwrap_or(0) as f64,
                self.zero_count_int.unwrap_or(0) as f64,
                cumulate(&self.positive_deltas),
                cumulate(&self.negative_deltas),
            )
        } else {
            (
                self.count_float.unwrap_or(0.0),
                self.zero_count_float.unwrap_or(0.0),
                self.positive_counts.clone(),
                self.negative_counts.clone(),
            )
        };
        let histogram = ModelHistogram {
            counter_reset_hint: CounterResetHint::from_code(self.reset_hint as u64),
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count,
            count,
            sum: self.sum,
            positive_spans: spans(&self.positive_spans),
            positive_buckets: positive,
            negative_spans: spans(&self.negative_spans),
            negative_buckets: negative,
            custom_values: self.custom_values.clone(),
        };
        DecodedHistogram {
            integer,
            sample: HistogramSample {
                timestamp_ms: self.timestamp,
                start_timestamp_ms: self.start_timestamp,
                histogram: Arc::new(histogram),
            },
        }
    }

    /// The message for a float histogram (absolute counts), as a sender writes it.
    pub fn from_float(h: &ModelHistogram, timestamp: i64) -> Histogram {
        Histogram {
            count_float: Some(h.count),
            sum: h.sum,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count_float: Some(h.zero_count),
            negative_spans: wire_spans(&h.negative_spans),
            negative_counts: h.negative_buckets.clone(),
            positive_spans: wire_spans(&h.positive_spans),
            positive_counts: h.positive_buckets.clone(),
            reset_hint: i32::from(h.counter_reset_hint.code()),
            timestamp,
            custom_values: h.custom_values.clone(),
            ..Default::default()
        }
    }

    /// The message for an integer histogram (whole counts, sent as deltas).
    pub fn from_integer(h: &ModelHistogram, timestamp: i64) -> Histogram {
        Histogram {
            count_int: Some(h.count as u64),
            sum: h.sum,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count_int: Some(h.zero_count as u64),
            negative_spans: wire_spans(&h.negative_spans),
            negative_deltas: deltas(&h.negative_buckets),
            positive_spans: wire_spans(&h.positive_spans),
            positive_deltas: deltas(&h.positive_buckets),
            reset_hint: i32::from(h.counter_reset_hint.code()),
            timestamp,
            custom_values: h.custom_values.clone(),
            ..Default::default()
        }
    }
}

/// Absolute counts from deltas; a running total that overflows wraps and is then refused
/// by validation as a negative count.
pub(crate) fn cumulate(deltas: &[i64]) -> Vec<f64> {
    let mut total = 0i64;
    deltas
        .iter()
        .map(|d| {
            total = total.wrapping_add(*d);
            total as f64
        })
        .collect()
}

fn deltas(counts: &[f64]) -> Vec<i64> {
    let mut previous = 0i64;
    counts
        .iter()
        .map(|&c| {
            let c = c as i64;
            let d = c - previous;
            previous = c;
            d
        })
        .collect()
}

fn spans(wire: &[BucketSpan]) -> Vec<Span> {
    wire.iter()
        .map(|s| Span {
            offset: s.offset,
            length: s.length,
        })
        .collect()
}

fn wire_spans(spans: &[Span]) -> Vec<BucketSpan> {
    spans
        .iter()
        .map(|s| BucketSpan {
            offset: s.offset,
            length: s.length,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn integer_and_float_forms_decode_to_the_same_histogram() {
        let h = ModelHistogram {
            schema: 1,
            zero_threshold: 0.001,
            zero_count: 2.0,
            count: 12.0,
            sum: 30.5,
            positive_spans: vec![
                Span {
                    offset: -1,
                    length: 2,
                },
                Span {
                    offset: 3,
                    length: 1,
                },
            ],
            positive_buckets: vec![3.0, 1.0, 4.0],
            negative_spans: vec![Span {
                offset: 0,
                length: 1,
            }],
            negative_buckets: vec![2.0],
            counter_reset_hint: CounterResetHint::NotCounterReset,
            ..Default::default()
        };
        for (message, integer) in [
            (Histogram::from_integer(&h, 5), true),
            (Histogram::from_float(&h, 5), false),
        ] {
            let decoded = Histogram::decode(message.encode_to_vec().as_slice()).unwrap();
            let decoded = decoded.to_sample();
            assert_eq!(*decoded.sample.histogram, h);
            assert_eq!((decoded.sample.timestamp_ms, decoded.integer), (5, integer));
            decoded.sample.histogram.validate(integer).unwrap();
        }
    }
}
