//! A remote-write 2.0 `io.prometheus.write.v2.Request` read in place into the same
//! [`WriteRequestView`] as 1.0's: label pairs borrow the request's symbols table, so the
//! receiver treats both versions alike from there on.
//!
//! What 2.0 adds is read as far as Quiver stores it: `created_timestamp` becomes the start
//! timestamp of the series' samples (a histogram carries its own); exemplars and native
//! histograms are read like 1.0's; metadata references are checked against the symbols
//! table.

use prost::bytes::Buf;
use prost::encoding::{DecodeContext, WireType, skip_field};

use super::view::{
    ExemplarView, SeriesView, ViewError, WriteRequestView, decode_key, length_delimited, read_f64,
    read_histogram, read_sample, varint,
};

/// Decodes `body`, an uncompressed protobuf `io.prometheus.write.v2.Request`.
pub fn decode(body: &[u8]) -> Result<WriteRequestView<'_>, ViewError> {
    // Fields may come in any order: the series are read once every symbol is known.
    let mut symbols: Vec<&[u8]> = Vec::new();
    let mut series: Vec<&[u8]> = Vec::new();
    let mut buf = body;
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match (tag, wire_type) {
            (4, WireType::LengthDelimited) => symbols.push(length_delimited(&mut buf)?),
            (5, WireType::LengthDelimited) => series.push(length_delimited(&mut buf)?),
            _ => skip_field(wire_type, tag, &mut buf, DecodeContext::default())?,
        }
    }
    let mut view = WriteRequestView::default();
    let mut refs = Vec::new();
    for s in series {
        read_series(&mut view, s, &symbols, &mut refs)?;
    }
    Ok(view)
}

/// One `TimeSeries`: labels_refs (1), samples (2), histograms (3), exemplars (4),
/// metadata (5), created_timestamp (6).
fn read_series<'a>(
    view: &mut WriteRequestView<'a>,
    mut buf: &[u8],
    symbols: &[&'a [u8]],
    refs: &mut Vec<u32>,
) -> Result<(), ViewError> {
    refs.clear();
    let samples_start = view.samples.len();
    let (exemplars_start, histograms_start) = (view.exemplars.len(), view.histograms.len());
    let mut start_ms = 0;
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match (tag, wire_type) {
            (1, WireType::LengthDelimited | WireType::Varint) => {
                each_ref(wire_type, &mut buf, |r| {
                    refs.push(r);
                    Ok(())
                })?;
            }
            (2, WireType::LengthDelimited) => {
                let sample = length_delimited(&mut buf)?;
                view.samples.push(read_sample(sample)?);
            }
            (3, WireType::LengthDelimited) => {
                let histogram = length_delimited(&mut buf)?;
                view.histograms.push(read_histogram(histogram)?);
            }
            (4, WireType::LengthDelimited) => {
                let exemplar = length_delimited(&mut buf)?;
                read_exemplar(view, exemplar, symbols)?;
            }
            (5, WireType::LengthDelimited) => {
                let metadata = length_delimited(&mut buf)?;
                check_metadata(metadata, symbols)?;
            }
            (6, WireType::Varint) => start_ms = varint(&mut buf)? as i64,
            _ => skip_field(wire_type, tag, &mut buf, DecodeContext::default())?,
        }
    }
    let labels = resolve_pairs(refs, symbols, &mut view.labels)?;
    view.series.push(SeriesView {
        labels,
        samples: samples_start..view.samples.len(),
        start_ms,
        histograms: histograms_start..view.histograms.len(),
        exemplars: exemplars_start..view.exemplars.len(),
    });
    Ok(())
}

/// The references of a `repeated uint32 labels_refs` field: packed, as proto3 writes
/// repeated scalars, or one by one.
fn each_ref(
    wire_type: WireType,
    buf: &mut &[u8],
    mut each: impl FnMut(u32) -> Result<(), ViewError>,
) -> Result<(), ViewError> {
    if wire_type == WireType::Varint {
        return each(symbol_ref(buf)?);
    }
    let mut packed = length_delimited(buf)?;
    while packed.has_remaining() {
        each(symbol_ref(&mut packed)?)?;
    }
    Ok(())
}

/// Appends the label pairs `refs` name (name, value, name, value, ...) to `out`; returns
/// where they are in it.
fn resolve_pairs<'a>(
    refs: &[u32],
    symbols: &[&'a [u8]],
    out: &mut Vec<(&'a [u8], &'a [u8])>,
) -> Result<std::ops::Range<usize>, ViewError> {
    if !refs.len().is_multiple_of(2) {
        return Err(ViewError::OddLabelRefs);
    }
    let start = out.len();
    for pair in refs.chunks_exact(2) {
        out.push((symbol(symbols, pair[0])?, symbol(symbols, pair[1])?));
    }
    Ok(start..out.len())
}

fn symbol_ref(buf: &mut &[u8]) -> Result<u32, ViewError> {
    let r = varint(buf)?;
    u32::try_from(r).map_err(|_| ViewError::BadSymbolRef(u32::MAX))
}

fn symbol<'a>(symbols: &[&'a [u8]], r: u32) -> Result<&'a [u8], ViewError> {
    symbols
        .get(r as usize)
        .copied()
        .ok_or(ViewError::BadSymbolRef(r))
}

/// `Metadata`: type (1), help_ref (3), unit_ref (4); the references must resolve.
fn check_metadata(mut buf: &[u8], symbols: &[&[u8]]) -> Result<(), ViewError> {
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match (tag, wire_type) {
            (3 | 4, WireType::Varint) => {
                symbol(symbols, symbol_ref(&mut buf)?)?;
            }
            _ => skip_field(wire_type, tag, &mut buf, DecodeContext::default())?,
        }
    }
    Ok(())
}

/// `Exemplar`: labels_refs (1), value (2), timestamp (3).
fn read_exemplar<'a>(
    view: &mut WriteRequestView<'a>,
    mut buf: &[u8],
    symbols: &[&'a [u8]],
) -> Result<(), ViewError> {
    let mut refs = Vec::new();
    let (mut value, mut timestamp_ms) = (0.0, 0);
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match (tag, wire_type) {
            (1, WireType::LengthDelimited | WireType::Varint) => {
                each_ref(wire_type, &mut buf, |r| {
                    refs.push(r);
                    Ok(())
                })?;
            }
            (2, WireType::SixtyFourBit) => value = read_f64(&mut buf)?,
            (3, WireType::Varint) => timestamp_ms = varint(&mut buf)? as i64,
            _ => skip_field(wire_type, tag, &mut buf, DecodeContext::default())?,
        }
    }
    let labels = resolve_pairs(&refs, symbols, &mut view.exemplar_labels)?;
    view.exemplars.push(ExemplarView {
        labels,
        value,
        timestamp_ms,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    use crate::prompb::histogram::Histogram;
    use crate::prompb::v2::{Exemplar, Metadata, Request, Sample, TimeSeries};

    fn request() -> Request {
        let symbols = [
            "",
            "__name__",
            "up",
            "job",
            "a",
            "trace_id",
            "abc",
            "Help text",
        ];
        Request {
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            timeseries: vec![
                TimeSeries {
                    labels_refs: vec![1, 2, 3, 4],
                    samples: vec![
                        Sample {
                            value: 1.0,
                            timestamp: 1000,
                        },
                        Sample {
                            value: f64::NAN,
                            timestamp: -5,
                        },
                    ],
                    exemplars: vec![Exemplar {
                        labels_refs: vec![5, 6],
                        value: 1.0,
                        timestamp: 1000,
                    }],
                    metadata: Some(Metadata {
                        r#type: 2,
                        help_ref: 7,
                        unit_ref: 0,
                    }),
                    created_timestamp: 500,
                    ..Default::default()
                },
                TimeSeries {
                    labels_refs: vec![1, 2, 3, 6],
                    histograms: vec![
                        Histogram {
                            count_int: Some(1),
                            timestamp: 7,
                            start_timestamp: 3,
                            ..Default::default()
                        },
                        Histogram {
                            count_int: Some(2),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn reads_labels_through_the_symbols_table() {
        let body = request().encode_to_vec();
        let view = decode(&body).unwrap();
        assert_eq!(view.series.len(), 2);
        let (a, b) = (&view.series[0], &view.series[1]);
        assert_eq!(
            view.labels_of(a),
            &[(&b"__name__"[..], &b"up"[..]), (&b"job"[..], &b"a"[..])]
        );
        assert_eq!(view.labels_of(b)[1], (&b"job"[..], &b"abc"[..]));
        let samples = view.samples_of(a);
        assert_eq!((samples[0], samples[1].0), ((1000, 1.0), -5));
        assert!(samples[1].1.is_nan());
        assert_eq!(
            (a.start_ms, a.histograms.len(), a.exemplars.len()),
            (500, 0, 1)
        );
        assert_eq!(
            (b.start_ms, b.histograms.len(), b.exemplars.len()),
            (0, 2, 0)
        );
        let histograms = view.histograms_of(b);
        assert_eq!(
            (
                histograms[0].sample.timestamp_ms,
                histograms[0].sample.start_timestamp_ms
            ),
            (7, 3)
        );
        let counts: Vec<f64> = histograms
            .iter()
            .map(|h| h.sample.histogram.count)
            .collect();
        assert_eq!(counts, vec![1.0, 2.0]);
        let exemplar = &view.exemplars_of(a)[0];
        assert_eq!((exemplar.value, exemplar.timestamp_ms), (1.0, 1000));
        assert_eq!(
            view.exemplar_labels_of(exemplar),
            &[(&b"trace_id"[..], &b"abc"[..])]
        );
        assert!(view.samples_of(b).is_empty());
    }

    #[test]
    fn refuses_references_outside_the_table() {
        let mut bad = request();
        bad.timeseries[0].labels_refs[3] = 99;
        assert!(matches!(
            decode(&bad.encode_to_vec()),
            Err(ViewError::BadSymbolRef(99))
        ));
        let mut odd = request();
        odd.timeseries[0].labels_refs.pop();
        assert!(matches!(
            decode(&odd.encode_to_vec()),
            Err(ViewError::OddLabelRefs)
        ));
        for field in 0..2 {
            let mut bad = request();
            let metadata = bad.timeseries[0].metadata.as_mut().unwrap();
            if field == 0 {
                metadata.help_ref = 8;
            } else {
                bad.timeseries[0].exemplars[0].labels_refs[1] = 8;
            }
            assert!(decode(&bad.encode_to_vec()).is_err(), "{field}");
        }
    }

    #[test]
    fn truncated_and_mutated_bodies_fail_without_panicking() {
        let body = request().encode_to_vec();
        for cut in 0..body.len() {
            let _ = decode(&body[..cut]);
        }
        let mut next = crate::testutil::xorshift(11);
        for _ in 0..20_000 {
            let mut mutated = body.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % mutated.len();
                mutated[at] = next() as u8;
            }
            if let Ok(view) = decode(&mutated) {
                for s in &view.series {
                    assert!(s.labels.end <= view.labels.len());
                    assert!(s.samples.end <= view.samples.len());
                }
            }
        }
    }
}
