//! The shared vocabulary: label sets, series identity and samples.
//!
//! Every other module speaks in these types, so they depend on nothing but std.

mod duration;
pub mod histogram;
pub mod histogram_ops;
mod histogram_trim;
pub mod kahan;
mod labels;
mod matcher;
mod metadata;
pub mod relabel;

pub use duration::{format_duration, parse_duration};
pub use histogram::Histogram;

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// `N` unpredictable bytes (salts, snapshot names), from the standard library's randomly
/// keyed hasher: no dependency for a few bytes that need not be cryptographic keys.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(8) {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        let bytes = hasher.finish().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    out
}

pub use labels::{
    LabelError, Labels, LabelsBuilder, METRIC_NAME_LABEL, escape_label_value, escape_name,
    is_valid_label_name, is_valid_utf8_label_name, stable_hash_of, stable_hash_of_bytes,
    stable_hash_of_key, write_label_key,
};
pub use matcher::{MatchKind, Matcher, Selector};
pub use metadata::{Metadata, MetricType};

/// Bit pattern of Prometheus's staleness marker, a NaN that is not the usual quiet NaN.
///
/// It must survive storage bit for bit: queries tell "stale" apart from an ordinary NaN
/// value by comparing these bits, not by `is_nan()`.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a float.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True when `v` is the staleness marker (not merely any NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Stable identity of a series inside one Quiver storage instance.
pub type SeriesId = u64;

/// One sample of one series: milliseconds since the epoch and a float value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub timestamp_ms: i64,
    pub value: f64,
    /// When the counter this sample belongs to started counting (ms), or 0 when unknown,
    /// as in Prometheus. A cumulative sample whose start time moved past the previous
    /// sample was reset in between; a delta sample covers `(start, timestamp]`.
    pub start_timestamp_ms: i64,
}

impl Sample {
    /// A sample with an unknown start time, which is what most sources send.
    pub fn new(timestamp_ms: i64, value: f64) -> Self {
        Sample {
            timestamp_ms,
            value,
            start_timestamp_ms: 0,
        }
    }
}

/// A series' label set with the samples to append to it; the unit of ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// Shared, so a scrape's series cache and the head can hold one copy.
    pub labels: std::sync::Arc<Labels>,
    pub samples: Vec<Sample>,
    /// Native histogram samples, in any order relative to `samples`: a series holds
    /// floats or histograms over time, as in Prometheus.
    pub histograms: Vec<HistogramSample>,
}

/// One native histogram sample of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSample {
    pub timestamp_ms: i64,
    /// As [`Sample::start_timestamp_ms`]: 0 when unknown.
    pub start_timestamp_ms: i64,
    /// Shared: the head, the WAL record and a query's batch hold one copy.
    pub histogram: std::sync::Arc<Histogram>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_differ_between_calls() {
        assert_ne!(random_bytes::<16>(), random_bytes::<16>());
        assert_ne!(random_bytes::<5>(), [0; 5]);
    }

    #[test]
    fn stale_marker_is_distinct_from_plain_nan() {
        assert!(is_stale_nan(stale_nan()));
        assert!(stale_nan().is_nan());
        assert!(!is_stale_nan(f64::NAN));
    }
}
