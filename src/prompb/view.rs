//! A remote-write 1.0 `WriteRequest` (or a 2.0 `Request`, see [`super::view_v2`]) read in
//! place: label names and values borrow the
//! decompressed body, and every series' labels and samples sit in two flat vectors, so
//! decoding a request allocates a handful of vectors however many series it carries.
//!
//! Label names and values stay bytes here: a reader that finds them equal to a stored
//! label set's strings knows them to be UTF-8 without checking; [`utf8`] checks the rest.
//!
//! prost's derived decoder (see [`super::WriteRequest`]) allocates two `String`s per label
//! and two vectors per series, which at one sample per series (what a Prometheus that keeps
//! up sends) costs more than storing the sample. prost has no borrowing decoder, so this one
//! walks the wire format with prost's own primitives (`decode_key`, `decode_varint`,
//! `skip_field`); fields it does not read (metadata) are skipped as any protobuf reader
//! skips unknown fields. Native histograms, which allocate their buckets anyway, are
//! decoded by prost ([`super::histogram`]).

use std::ops::Range;

use prost::DecodeError;
use prost::bytes::Buf;
use prost::encoding::{DecodeContext, WireType, decode_varint, skip_field};

use super::histogram::{DecodedHistogram, Histogram};

/// Why a body is not a `WriteRequest`.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(transparent)]
    Wire(#[from] DecodeError),
    #[error("a field runs past the end of its message")]
    Truncated,
    #[error("a label name or value is not UTF-8")]
    NotUtf8,
    #[error("a field key is out of range")]
    BadKey,
    #[error("a symbol reference is out of range: {0}")]
    BadSymbolRef(u32),
    #[error("a series has an odd number of label references")]
    OddLabelRefs,
}

/// One series of a request: ranges into [`WriteRequestView::labels`] and `samples`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesView {
    pub labels: Range<usize>,
    pub samples: Range<usize>,
    /// When the series' counter started (2.0's `created_timestamp`), ms; 0 when not sent.
    pub start_ms: i64,
    /// Range into [`WriteRequestView::histograms`].
    pub histograms: Range<usize>,
    /// Range into [`WriteRequestView::exemplars`].
    pub exemplars: Range<usize>,
}

/// An exemplar of a series: its labels (a range into
/// [`WriteRequestView::exemplar_labels`]), value and time.
#[derive(Debug, Clone, PartialEq)]
pub struct ExemplarView {
    pub labels: Range<usize>,
    pub value: f64,
    pub timestamp_ms: i64,
}

/// A decoded request. Samples are `(timestamp_ms, value)`.
#[derive(Debug, Default, PartialEq)]
pub struct WriteRequestView<'a> {
    pub series: Vec<SeriesView>,
    pub labels: Vec<(&'a [u8], &'a [u8])>,
    pub samples: Vec<(i64, f64)>,
    pub histograms: Vec<DecodedHistogram>,
    pub exemplars: Vec<ExemplarView>,
    pub exemplar_labels: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> WriteRequestView<'a> {
    /// Decodes `body`, an uncompressed protobuf `prometheus.WriteRequest`.
    pub fn decode(body: &'a [u8]) -> Result<Self, ViewError> {
        let mut view = WriteRequestView::default();
        let mut buf = body;
        while buf.has_remaining() {
            let (tag, wire_type) = decode_key(&mut buf)?;
            if tag == 1 && wire_type == WireType::LengthDelimited {
                let series = length_delimited(&mut buf)?;
                view.read_series(series)?;
            } else {
                skip_field(wire_type, tag, &mut buf, DecodeContext::default())?;
            }
        }
        Ok(view)
    }

    /// The label pairs of `series`, as sent (unsorted, empty values included).
    pub fn labels_of(&self, series: &SeriesView) -> &[(&'a [u8], &'a [u8])] {
        &self.labels[series.labels.clone()]
    }

    pub fn samples_of(&self, series: &SeriesView) -> &[(i64, f64)] {
        &self.samples[series.samples.clone()]
    }

    pub fn histograms_of(&self, series: &SeriesView) -> &[DecodedHistogram] {
        &self.histograms[series.histograms.clone()]
    }

    pub fn exemplars_of(&self, series: &SeriesView) -> &[ExemplarView] {
        &self.exemplars[series.exemplars.clone()]
    }

    pub fn exemplar_labels_of(&self, exemplar: &ExemplarView) -> &[(&'a [u8], &'a [u8])] {
        &self.exemplar_labels[exemplar.labels.clone()]
    }

    /// One `TimeSeries`: labels (1), samples (2), exemplars (3) and histograms (4).
    fn read_series(&mut self, mut buf: &'a [u8]) -> Result<(), ViewError> {
        let (labels_start, samples_start) = (self.labels.len(), self.samples.len());
        let (exemplars_start, histograms_start) = (self.exemplars.len(), self.histograms.len());
        while buf.has_remaining() {
            let (tag, wire_type) = decode_key(&mut buf)?;
            match (tag, wire_type) {
                (1, WireType::LengthDelimited) => {
                    let label = length_delimited(&mut buf)?;
                    self.labels.push(read_label(label)?);
                }
                (2, WireType::LengthDelimited) => {
                    let sample = length_delimited(&mut buf)?;
                    self.samples.push(read_sample(sample)?);
                }
                (3, WireType::LengthDelimited) => {
                    let exemplar = length_delimited(&mut buf)?;
                    self.read_exemplar(exemplar)?;
                }
                (4, WireType::LengthDelimited) => {
                    let histogram = length_delimited(&mut buf)?;
                    self.histograms.push(read_histogram(histogram)?);
                }
                _ => skip_field(wire_type, tag, &mut buf, DecodeContext::default())?,
            }
        }
        self.series.push(SeriesView {
            labels: labels_start..self.labels.len(),
            samples: samples_start..self.samples.len(),
            start_ms: 0,
            histograms: histograms_start..self.histograms.len(),
            exemplars: exemplars_start..self.exemplars.len(),
        });
        Ok(())
    }
}

impl<'a> WriteRequestView<'a> {
    /// A 1.0 `Exemplar`: labels (1, `Label` messages), value (2), timestamp (3).
    fn read_exemplar(&mut self, mut buf: &'a [u8]) -> Result<(), ViewError> {
        let start = self.exemplar_labels.len();
        let (mut value, mut timestamp_ms) = (0.0, 0);
        while buf.has_remaining() {
            let (tag, wire_type) = decode_key(&mut buf)?;
            match (tag, wire_type) {
                (1, WireType::LengthDelimited) => {
                    let label = length_delimited(&mut buf)?;
                    self.exemplar_labels.push(read_label(label)?);
                }
                (2, WireType::SixtyFourBit) => value = read_f64(&mut buf)?,
                (3, WireType::Varint) => timestamp_ms = varint(&mut buf)? as i64,
                _ => skip_field(wire_type, tag, &mut buf, DecodeContext::default())?,
            }
        }
        self.exemplars.push(ExemplarView {
            labels: start..self.exemplar_labels.len(),
            value,
            timestamp_ms,
        });
        Ok(())
    }
}

/// A `Histogram` message of either version.
pub(super) fn read_histogram(buf: &[u8]) -> Result<DecodedHistogram, ViewError> {
    Ok(<Histogram as prost::Message>::decode(buf)?.to_sample())
}

/// A little-endian double.
pub(super) fn read_f64(buf: &mut &[u8]) -> Result<f64, ViewError> {
    if buf.remaining() < 8 {
        return Err(ViewError::Truncated);
    }
    Ok(buf.get_f64_le())
}

/// A `Label`: name (1) and value (2); a missing field is the empty string.
fn read_label(mut buf: &[u8]) -> Result<(&[u8], &[u8]), ViewError> {
    let (mut name, mut value): (&[u8], &[u8]) = (b"", b"");
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match (tag, wire_type) {
            (1, WireType::LengthDelimited) => name = length_delimited(&mut buf)?,
            (2, WireType::LengthDelimited) => value = length_delimited(&mut buf)?,
            _ => skip_field(wire_type, tag, &mut buf, DecodeContext::default())?,
        }
    }
    Ok((name, value))
}

/// A `Sample`: value (1, double) and timestamp (2, int64); missing fields are zero.
pub(super) fn read_sample(mut buf: &[u8]) -> Result<(i64, f64), ViewError> {
    let (mut timestamp, mut value) = (0_i64, 0.0_f64);
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match (tag, wire_type) {
            (1, WireType::SixtyFourBit) => value = read_f64(&mut buf)?,
            // int64 is a two's-complement varint: negative timestamps take ten bytes.
            (2, WireType::Varint) => timestamp = varint(&mut buf)? as i64,
            _ => skip_field(wire_type, tag, &mut buf, DecodeContext::default())?,
        }
    }
    Ok((timestamp, value))
}

/// A varint; the one-byte case (every key and most lengths here) inline.
#[inline]
pub(super) fn varint(buf: &mut &[u8]) -> Result<u64, ViewError> {
    match buf.split_first() {
        Some((&byte, rest)) if byte < 0x80 => {
            *buf = rest;
            Ok(u64::from(byte))
        }
        _ => Ok(decode_varint(buf)?),
    }
}

/// A field's key: its tag and wire type.
#[inline]
pub(super) fn decode_key(buf: &mut &[u8]) -> Result<(u32, WireType), ViewError> {
    let key = u32::try_from(varint(buf)?).map_err(|_| ViewError::BadKey)?;
    let wire_type = WireType::try_from(u64::from(key & 0x07))?;
    match key >> 3 {
        0 => Err(ViewError::BadKey),
        tag => Ok((tag, wire_type)),
    }
}

/// The bytes of a length-delimited field, advancing `buf` past them.
pub(super) fn length_delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], ViewError> {
    let len = varint(buf)?;
    let len = usize::try_from(len)
        .ok()
        .filter(|len| *len <= buf.len())
        .ok_or(ViewError::Truncated)?;
    let (field, rest) = buf.split_at(len);
    *buf = rest;
    Ok(field)
}

/// A label name or value as text.
pub fn utf8(bytes: &[u8]) -> Result<&str, ViewError> {
    std::str::from_utf8(bytes).map_err(|_| ViewError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::prompb::{MetricMetadata, TimeSeries, WriteRequest};

    fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries::from_pairs(labels, samples)
    }

    #[test]
    fn agrees_with_prosts_decoder() {
        let request = WriteRequest {
            timeseries: vec![
                series(
                    &[("__name__", "up"), ("job", "a")],
                    &[(1000, 1.0), (-5, -0.0)],
                ),
                series(&[("job", "b"), ("__name__", "x"), ("e", "")], &[]),
                series(&[], &[(i64::MIN, f64::INFINITY), (i64::MAX, f64::NAN)]),
            ],
            metadata: vec![MetricMetadata {
                r#type: 1,
                metric_family_name: "up".into(),
                help: "h".into(),
                unit: String::new(),
            }],
        };
        let body = request.encode_to_vec();
        // Compared with what prost reads back (its encoder leaves out a -0.0 value, as
        // proto3 leaves out defaults).
        let request = WriteRequest::decode(body.as_slice()).unwrap();
        let view = WriteRequestView::decode(&body).unwrap();
        assert_eq!(view.series.len(), 3);
        for (ts, s) in request.timeseries.iter().zip(&view.series) {
            let labels: Vec<(&[u8], &[u8])> = ts
                .labels
                .iter()
                .map(|l| (l.name.as_bytes(), l.value.as_bytes()))
                .collect();
            assert_eq!(view.labels_of(s), labels.as_slice());
            let samples = view.samples_of(s);
            assert_eq!(samples.len(), ts.samples.len());
            for (a, b) in samples.iter().zip(&ts.samples) {
                assert_eq!(a.0, b.timestamp);
                assert_eq!(a.1.to_bits(), b.value.to_bits());
            }
        }
    }

    #[test]
    fn refuses_what_prost_refuses() {
        let body = WriteRequest {
            timeseries: vec![series(&[("__name__", "up")], &[(1, 2.0)])],
            metadata: vec![],
        }
        .encode_to_vec();
        // Every truncation of a valid body is either a valid prefix or an error, never a panic.
        for cut in 0..body.len() {
            let ours = WriteRequestView::decode(&body[..cut]).is_ok();
            let prosts = WriteRequest::decode(&body[..cut]).is_ok();
            assert_eq!(ours, prosts, "cut at {cut}");
        }
        // A label value that is not UTF-8 is read as bytes, and refused as text.
        let mut bad = body.clone();
        let at = bad.windows(2).position(|w| w == b"up").unwrap();
        bad[at] = 0xff;
        let view = WriteRequestView::decode(&bad).unwrap();
        assert!(utf8(view.labels[0].1).is_err());
        assert!(WriteRequest::decode(bad.as_slice()).is_err());
        // Garbage.
        assert!(WriteRequestView::decode(&[0xff; 16]).is_err());
    }

    #[test]
    fn mutated_bodies_decode_or_fail_without_panicking() {
        let body = WriteRequest {
            timeseries: vec![
                series(
                    &[("__name__", "up"), ("job", "a")],
                    &[(1000, 1.0), (2000, 2.0)],
                ),
                series(&[("__name__", "x")], &[(-7, f64::NAN)]),
            ],
            metadata: vec![],
        }
        .encode_to_vec();
        let mut next = crate::testutil::xorshift(7);
        for _ in 0..20_000 {
            let mut mutated = body.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % mutated.len();
                mutated[at] = next() as u8;
            }
            let cut = (next() as usize) % (mutated.len() + 1);
            if let Ok(view) = WriteRequestView::decode(&mutated[..cut]) {
                for s in &view.series {
                    assert!(s.labels.end <= view.labels.len());
                    assert!(s.samples.end <= view.samples.len());
                }
            }
        }
    }
}
