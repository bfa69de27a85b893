//! The byte form of one native histogram, used by the WAL and the head's histogram samples.
//!
//! ```text
//! [flags u8][hint u8][schema zigzag varint]
//! [zero_threshold]   only with FLAG_THRESHOLD (else Prometheus's default, or 0 for NHCB)
//! [count][zero_count]                     varint with FLAG_INTEGER, else f64
//! [sum f64]
//! [positive spans][positive buckets]
//! [negative spans][negative buckets]      only with FLAG_NEGATIVE
//! [custom values: varint n, n x f64]      only with FLAG_CUSTOM
//! ```
//! Spans are a varint count, then per span a zigzag varint offset and a varint length.
//! Buckets: with FLAG_INTEGER (every count a whole number below 2^53, what integer
//! histograms are) the zigzag varint delta of each count from the previous one, as
//! Prometheus's wire format sends them: one or two bytes a bucket for a steady layout;
//! otherwise each count as f64. Floats are little-endian bit patterns, so NaN sums and
//! the staleness marker survive.

use crate::model::histogram::{
    CounterResetHint, DEFAULT_ZERO_THRESHOLD, Histogram, Span, is_custom_buckets_schema,
};

const FLAG_INTEGER: u8 = 1;
const FLAG_NEGATIVE: u8 = 2;
const FLAG_CUSTOM: u8 = 4;
const FLAG_THRESHOLD: u8 = 8;

/// Largest count the integer coding takes: every integer up to it is an exact f64.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// Why bytes are not a histogram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable histogram: {0}")]
pub struct CodecError(&'static str);

/// Appends `h`'s byte form to `out`.
pub fn encode(h: &Histogram, out: &mut Vec<u8>) {
    let integer = [h.count, h.zero_count]
        .iter()
        .chain(&h.positive_buckets)
        .chain(&h.negative_buckets)
        .all(|&c| is_whole(c));
    let default_threshold = if is_custom_buckets_schema(h.schema) {
        0.0
    } else {
        DEFAULT_ZERO_THRESHOLD
    };
    let mut flags = 0;
    if integer {
        flags |= FLAG_INTEGER;
    }
    if !h.negative_spans.is_empty() || !h.negative_buckets.is_empty() {
        flags |= FLAG_NEGATIVE;
    }
    if !h.custom_values.is_empty() {
        flags |= FLAG_CUSTOM;
    }
    if h.zero_threshold.to_bits() != default_threshold.to_bits() {
        flags |= FLAG_THRESHOLD;
    }
    out.push(flags);
    out.push(h.counter_reset_hint.code());
    put_varint(out, zigzag(i64::from(h.schema)));
    if flags & FLAG_THRESHOLD != 0 {
        put_f64(out, h.zero_threshold);
    }
    for c in [h.count, h.zero_count] {
        if integer {
            put_varint(out, c as u64);
        } else {
            put_f64(out, c);
        }
    }
    put_f64(out, h.sum);
    put_side(out, &h.positive_spans, &h.positive_buckets, integer);
    if flags & FLAG_NEGATIVE != 0 {
        put_side(out, &h.negative_spans, &h.negative_buckets, integer);
    }
    if flags & FLAG_CUSTOM != 0 {
        put_varint(out, h.custom_values.len() as u64);
        for &v in &h.custom_values {
            put_f64(out, v);
        }
    }
}

/// Reads one histogram from the start of `buf`, advancing it past the histogram.
pub fn decode(buf: &mut &[u8]) -> Result<Histogram, CodecError> {
    let flags = take(buf, 1)?[0];
    let hint = CounterResetHint::from_code(u64::from(take(buf, 1)?[0]));
    let schema =
        i32::try_from(unzigzag(get_varint(buf)?)).map_err(|_| CodecError("schema out of range"))?;
    let integer = flags & FLAG_INTEGER != 0;
    let zero_threshold = if flags & FLAG_THRESHOLD != 0 {
        get_f64(buf)?
    } else if is_custom_buckets_schema(schema) {
        0.0
    } else {
        DEFAULT_ZERO_THRESHOLD
    };
    let mut counts = [0.0; 2];
    for c in counts.iter_mut() {
        *c = if integer {
            get_varint(buf)? as f64
        } else {
            get_f64(buf)?
        };
    }
    let sum = get_f64(buf)?;
    let (positive_spans, positive_buckets) = get_side(buf, integer)?;
    let (negative_spans, negative_buckets) = if flags & FLAG_NEGATIVE != 0 {
        get_side(buf, integer)?
    } else {
        (Vec::new(), Vec::new())
    };
    let mut custom_values = Vec::new();
    if flags & FLAG_CUSTOM != 0 {
        let n = bounded_len(get_varint(buf)?, buf.len(), 8)?;
        custom_values.reserve(n);
        for _ in 0..n {
            custom_values.push(get_f64(buf)?);
        }
    }
    Ok(Histogram {
        counter_reset_hint: hint,
        schema,
        zero_threshold,
        count: counts[0],
        zero_count: counts[1],
        sum,
        positive_spans,
        positive_buckets,
        negative_spans,
        negative_buckets,
        custom_values,
    })
}

fn is_whole(c: f64) -> bool {
    (0.0..=MAX_EXACT).contains(&c) && c.fract() == 0.0
}

fn put_side(out: &mut Vec<u8>, spans: &[Span], buckets: &[f64], integer: bool) {
    put_varint(out, spans.len() as u64);
    for s in spans {
        put_varint(out, zigzag(i64::from(s.offset)));
        put_varint(out, u64::from(s.length));
    }
    put_varint(out, buckets.len() as u64);
    let mut previous = 0i64;
    for &c in buckets {
        if integer {
            let c = c as i64;
            put_varint(out, zigzag(c - previous));
            previous = c;
        } else {
            put_f64(out, c);
        }
    }
}

fn get_side(buf: &mut &[u8], integer: bool) -> Result<(Vec<Span>, Vec<f64>), CodecError> {
    let n = bounded_len(get_varint(buf)?, buf.len(), 2)?;
    let mut spans = Vec::with_capacity(n);
    for _ in 0..n {
        let offset = i32::try_from(unzigzag(get_varint(buf)?))
            .map_err(|_| CodecError("span offset out of range"))?;
        let length =
            u32::try_from(get_varint(buf)?).map_err(|_| CodecError("span length out of range"))?;
        spans.push(Span { offset, length });
    }
    let n = bounded_len(get_varint(buf)?, buf.len(), 1)?;
    let mut buckets = Vec::with_capacity(n);
    let mut previous = 0i64;
    for _ in 0..n {
        if integer {
            previous = previous.wrapping_add(unzigzag(get_varint(buf)?));
            buckets.push(previous as f64);
        } else {
            buckets.push(get_f64(buf)?);
        }
    }
    Ok((spans, buckets))
}

/// A count read from the input, refused when the rest could not hold that many items of
/// at least `min_bytes` each (so corrupt input cannot ask for a huge allocation).
fn bounded_len(n: u64, remaining: usize, min_bytes: usize) -> Result<usize, CodecError> {
    match usize::try_from(n) {
        Ok(n) if n.saturating_mul(min_bytes) <= remaining => Ok(n),
        _ => Err(CodecError("length past the end")),
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &mut &[u8]) -> Result<u64, CodecError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = take(buf, 1)?[0];
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(CodecError("varint too long"))
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}

fn get_f64(buf: &mut &[u8]) -> Result<f64, CodecError> {
    let b = take(buf, 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(f64::from_bits(u64::from_le_bytes(a)))
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], CodecError> {
    if buf.len() < n {
        return Err(CodecError("short input"));
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::histogram::CUSTOM_BUCKETS_SCHEMA;

    fn round_trip(h: &Histogram) -> usize {
        let mut bytes = Vec::new();
        encode(h, &mut bytes);
        bytes.extend_from_slice(b"next");
        let mut rest = bytes.as_slice();
        let back = decode(&mut rest).unwrap();
        assert_eq!(rest, b"next", "decode stops at the histogram's end");
        assert_eq!(format!("{back:?}"), format!("{h:?}"));
        assert_eq!(back.sum.to_bits(), h.sum.to_bits());
        bytes.len() - 4
    }

    #[test]
    fn integer_float_and_custom_histograms_round_trip() {
        let integer = Histogram {
            schema: 3,
            count: 1000.0,
            zero_count: 2.0,
            zero_threshold: DEFAULT_ZERO_THRESHOLD,
            sum: 1234.5,
            positive_spans: vec![
                Span {
                    offset: -3,
                    length: 4,
                },
                Span {
                    offset: 2,
                    length: 2,
                },
            ],
            positive_buckets: vec![100.0, 300.0, 250.0, 200.0, 100.0, 48.0],
            counter_reset_hint: CounterResetHint::NotCounterReset,
            ..Default::default()
        };
        let size = round_trip(&integer);
        assert!(
            size < 40,
            "integer counts code as small deltas ({size} bytes)"
        );
        let float = Histogram {
            schema: -2,
            count: 2.5,
            zero_count: 0.5,
            zero_threshold: 0.01,
            sum: f64::from_bits(crate::model::STALE_NAN_BITS),
            positive_spans: vec![Span {
                offset: 0,
                length: 1,
            }],
            positive_buckets: vec![1.25],
            negative_spans: vec![Span {
                offset: 1,
                length: 1,
            }],
            negative_buckets: vec![0.75],
            counter_reset_hint: CounterResetHint::Gauge,
            ..Default::default()
        };
        round_trip(&float);
        let custom = Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3.0,
            sum: 4.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 3,
            }],
            positive_buckets: vec![1.0, 1.0, 1.0],
            custom_values: vec![0.1, 1.0],
            ..Default::default()
        };
        round_trip(&custom);
        round_trip(&Histogram::default());
    }

    #[test]
    fn truncated_or_corrupt_input_is_an_error() {
        let h = Histogram {
            schema: 1,
            count: 5.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            positive_buckets: vec![2.0, 3.0],
            ..Default::default()
        };
        let mut bytes = Vec::new();
        encode(&h, &mut bytes);
        for cut in 0..bytes.len() {
            let mut short = &bytes[..cut];
            assert!(decode(&mut short).is_err(), "cut at {cut}");
        }
        // A huge span count does not allocate.
        let mut bogus: &[u8] = &[
            FLAG_INTEGER,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0xff,
            0xff,
            0xff,
            0xff,
            0x0f,
        ];
        assert!(decode(&mut bogus).is_err());
    }
}
