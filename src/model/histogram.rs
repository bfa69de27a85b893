//! Native histograms, as Prometheus defines them: one sample that carries a whole
//! distribution in sparse exponential buckets (or in custom buckets, schema `-53`).
//!
//! Quiver keeps every histogram in the float form (Prometheus's `FloatHistogram`): bucket
//! counts are absolute, not the deltas the wire format sends. Integer histograms convert
//! exactly (counts up to 2^53), and PromQL computes on float histograms anyway. Storage
//! codes whole-number counts as integers again (see `storage::histogram_codec`).
//!
//! No crate of the Rust ecosystem implements Prometheus's histogram model (the client
//! libraries only observe into it), so the model, its checks and its bucket bounds are
//! written here, following `model/histogram` of Prometheus.

use std::fmt;

/// The schema of histograms whose bucket bounds are listed in `custom_values` (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;
/// The lowest and highest exponential schema.
pub const EXPONENTIAL_SCHEMA_MIN: i32 = -4;
pub const EXPONENTIAL_SCHEMA_MAX: i32 = 8;
/// Prometheus's default zero threshold, 2^-128.
pub const DEFAULT_ZERO_THRESHOLD: f64 = 2.938_735_877_055_719e-39;

/// A run of `length` consecutive buckets, `offset` buckets after the previous run (or
/// starting at bucket index `offset`, for the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// What the sender knows about a counter reset before this sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CounterResetHint {
    /// Nothing: readers compare with the previous sample.
    #[default]
    Unknown,
    /// The first histogram after a reset.
    CounterReset,
    /// Known not to follow a reset.
    NotCounterReset,
    /// A gauge histogram, which has no resets.
    Gauge,
}

impl CounterResetHint {
    /// The protobuf enum's number.
    pub fn code(self) -> u8 {
        match self {
            CounterResetHint::Unknown => 0,
            CounterResetHint::CounterReset => 1,
            CounterResetHint::NotCounterReset => 2,
            CounterResetHint::Gauge => 3,
        }
    }

    /// The hint with this number; an unknown number is `Unknown`, as protobuf readers treat
    /// unknown enum values.
    pub fn from_code(code: u64) -> Self {
        match code {
            1 => CounterResetHint::CounterReset,
            2 => CounterResetHint::NotCounterReset,
            3 => CounterResetHint::Gauge,
            _ => CounterResetHint::Unknown,
        }
    }
}

/// One native histogram sample's value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    pub counter_reset_hint: CounterResetHint,
    pub schema: i32,
    /// Observations with an absolute value up to this fall in the zero bucket.
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    /// Absolute counts, one per bucket the spans cover.
    pub positive_buckets: Vec<f64>,
    pub negative_spans: Vec<Span>,
    pub negative_buckets: Vec<f64>,
    /// The upper bounds of the custom buckets (schema `-53`), +Inf implied after the last.
    pub custom_values: Vec<f64>,
}

/// Why a histogram was refused, worded as Prometheus words it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistogramError {
    #[error(
        "histogram has an invalid schema, which must be between {EXPONENTIAL_SCHEMA_MIN} and \
         {EXPONENTIAL_SCHEMA_MAX} for exponential buckets, or {CUSTOM_BUCKETS_SCHEMA} for custom buckets"
    )]
    InvalidSchema(i32),
    #[error(
        "{side} side: span number {number} with offset {offset}: histogram has a span whose offset is negative"
    )]
    NegativeSpanOffset {
        side: &'static str,
        number: usize,
        offset: i32,
    },
    #[error(
        "{side} side: spans need {spans} buckets, have {buckets} buckets: histogram spans specify different number of buckets than provided"
    )]
    SpansBucketsMismatch {
        side: &'static str,
        spans: usize,
        buckets: usize,
    },
    #[error(
        "{side} side: bucket number {number} has observation count of {count}: histogram has a bucket whose observation count is negative"
    )]
    NegativeBucketCount {
        side: &'static str,
        number: usize,
        count: f64,
    },
    #[error("observation count is {0}: histogram has a negative observation count")]
    NegativeCount(f64),
    #[error(
        "{buckets} observations found in buckets, but the Count field is {count}: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)"
    )]
    CountMismatch { buckets: f64, count: f64 },
    #[error(
        "{buckets} observations found in buckets, but the Count field is {count}: histogram's observation count should be at least the number of observations found in the buckets"
    )]
    CountNotBigEnough { buckets: f64, count: f64 },
    #[error("histogram with exponential schema must not have custom bounds")]
    ExponentialWithCustomBounds,
    #[error("custom buckets: {0}")]
    CustomBuckets(&'static str),
}

/// One bucket as the JSON API shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: f64,
}

impl Bucket {
    /// The part of this bucket below `v` (within it): linear, or on a logarithmic scale for
    /// an exponential bucket (a negative one mirrored), as Prometheus interpolates.
    pub fn fraction_below(&self, v: f64, linear: bool) -> f64 {
        if linear {
            return (v - self.lower) / (self.upper - self.lower);
        }
        let (log_lower, log_upper, log_v) = (
            self.lower.abs().log2(),
            self.upper.abs().log2(),
            v.abs().log2(),
        );
        if v > 0.0 {
            (log_v - log_lower) / (log_upper - log_lower)
        } else {
            1.0 - (log_v - log_upper) / (log_lower - log_upper)
        }
    }

    /// Prometheus's JSON code for which ends are inclusive: 0 upper only (left open),
    /// 1 lower only, 2 neither, 3 both.
    pub fn boundary_rule(&self) -> u8 {
        match (self.lower_inclusive, self.upper_inclusive) {
            (false, true) => 0,
            (true, false) => 1,
            (false, false) => 2,
            (true, true) => 3,
        }
    }
}

pub fn is_custom_buckets_schema(schema: i32) -> bool {
    schema == CUSTOM_BUCKETS_SCHEMA
}

pub fn is_exponential_schema(schema: i32) -> bool {
    (EXPONENTIAL_SCHEMA_MIN..=EXPONENTIAL_SCHEMA_MAX).contains(&schema)
}

impl Histogram {
    pub fn uses_custom_buckets(&self) -> bool {
        is_custom_buckets_schema(self.schema)
    }

    /// Whether any count, the sum or a bound is infinite (an aggregation overflowed).
    pub fn has_overflow(&self) -> bool {
        [self.count, self.sum, self.zero_count]
            .iter()
            .chain(&self.positive_buckets)
            .chain(&self.negative_buckets)
            .chain(&self.custom_values)
            .any(|v| v.is_infinite())
    }

    /// Prometheus's checks of a histogram a client sent. `integer` applies the stricter
    /// rule of integer histograms: the count equals the buckets' sum unless the sum is NaN.
    pub fn validate(&self, integer: bool) -> Result<(), HistogramError> {
        let mut negative = 0.0;
        if self.uses_custom_buckets() {
            check_custom_bounds(
                &self.custom_values,
                &self.positive_spans,
                self.positive_buckets.len(),
            )?;
            if self.zero_count != 0.0 {
                return Err(HistogramError::CustomBuckets(
                    "histogram with custom buckets must not have zero count",
                ));
            }
            if self.zero_threshold != 0.0 {
                return Err(HistogramError::CustomBuckets(
                    "histogram with custom buckets must not have zero threshold",
                ));
            }
            if !self.negative_spans.is_empty() || !self.negative_buckets.is_empty() {
                return Err(HistogramError::CustomBuckets(
                    "histogram with custom buckets must not have negative buckets",
                ));
            }
        } else if is_exponential_schema(self.schema) {
            check_spans(
                "positive",
                &self.positive_spans,
                self.positive_buckets.len(),
            )?;
            check_spans(
                "negative",
                &self.negative_spans,
                self.negative_buckets.len(),
            )?;
            negative = check_buckets("negative", &self.negative_buckets)?;
            if self.zero_count < 0.0 {
                return Err(HistogramError::NegativeBucketCount {
                    side: "zero",
                    number: 1,
                    count: self.zero_count,
                });
            }
            if !self.custom_values.is_empty() {
                return Err(HistogramError::ExponentialWithCustomBounds);
            }
        } else {
            return Err(HistogramError::InvalidSchema(self.schema));
        }
        if self.count < 0.0 {
            return Err(HistogramError::NegativeCount(self.count));
        }
        let positive = check_buckets("positive", &self.positive_buckets)?;
        if integer {
            let buckets = negative + positive + self.zero_count;
            if self.sum.is_nan() {
                if buckets > self.count {
                    return Err(HistogramError::CountNotBigEnough {
                        buckets,
                        count: self.count,
                    });
                }
            } else if buckets != self.count {
                return Err(HistogramError::CountMismatch {
                    buckets,
                    count: self.count,
                });
            }
        }
        Ok(())
    }

    /// A classic histogram's buckets as a native histogram with custom buckets (schema
    /// `-53`, Prometheus's NHCB): `buckets` are `(upper bound, cumulative count)` in
    /// ascending order, with or without the `+Inf` one; the finite bounds become the custom
    /// values, and whatever `count` holds above the last of them the `+Inf` bucket.
    pub fn from_classic_buckets(buckets: &[(f64, f64)], count: f64, sum: f64) -> Histogram {
        let finite: Vec<(f64, f64)> = buckets
            .iter()
            .copied()
            .filter(|(bound, _)| bound.is_finite())
            .collect();
        let mut previous = 0.0;
        let mut counts: Vec<(i32, f64)> = Vec::with_capacity(finite.len() + 1);
        for (i, &(_, cumulative)) in finite.iter().enumerate() {
            counts.push((i as i32, (cumulative - previous).max(0.0)));
            previous = cumulative;
        }
        counts.push((finite.len() as i32, (count - previous).max(0.0)));
        let (positive_spans, positive_buckets) =
            spans_from_buckets(counts.into_iter().filter(|(_, c)| *c != 0.0), 0);
        Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count,
            sum,
            positive_spans,
            positive_buckets,
            custom_values: finite.iter().map(|(bound, _)| *bound).collect(),
            ..Histogram::default()
        }
    }

    /// Empty buckets removed, the spans rewritten around the others (Prometheus's
    /// `Compact(0)`).
    pub fn compact(&mut self) {
        let compacted = |spans: &[Span], counts: &[f64]| {
            spans_from_buckets(
                bucket_indexes(spans)
                    .zip(counts.iter().copied())
                    .filter(|(_, c)| *c != 0.0),
                0,
            )
        };
        (self.positive_spans, self.positive_buckets) =
            compacted(&self.positive_spans, &self.positive_buckets);
        (self.negative_spans, self.negative_buckets) =
            compacted(&self.negative_spans, &self.negative_buckets);
    }

    /// Whether two histograms hold the same observations in the same layout, as PromQL's
    /// `==` compares them: empty buckets and the counter reset hint do not count; sums
    /// that are both NaN are equal.
    pub fn same_as(&self, other: &Histogram) -> bool {
        let same_sum = self.sum == other.sum || (self.sum.is_nan() && other.sum.is_nan());
        if self.schema != other.schema
            || self.zero_threshold != other.zero_threshold
            || self.zero_count != other.zero_count
            || self.count != other.count
            || !same_sum
            || self.custom_values != other.custom_values
        {
            return false;
        }
        let (mut a, mut b) = (self.clone(), other.clone());
        a.compact();
        b.compact();
        a.positive_spans == b.positive_spans
            && a.positive_buckets == b.positive_buckets
            && a.negative_spans == b.negative_spans
            && a.negative_buckets == b.negative_buckets
    }

    /// The zero bucket, `[-threshold, threshold]`.
    pub fn zero_bucket(&self) -> Bucket {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
        }
    }

    /// Every bucket from the lowest to the highest: the negative ones (from the most
    /// negative), the zero bucket when it holds observations, the positive ones. A bound
    /// inside the zero bucket is moved to its threshold, as Prometheus shows it.
    pub fn buckets(&self) -> Vec<Bucket> {
        let mut out =
            Vec::with_capacity(self.negative_buckets.len() + self.positive_buckets.len() + 1);
        let mut negative: Vec<Bucket> = self.side_buckets(false).collect();
        negative.reverse();
        out.extend(negative);
        if self.zero_count > 0.0 {
            out.push(self.zero_bucket());
        }
        out.extend(self.side_buckets(true));
        let threshold = self.zero_threshold;
        for b in out.iter_mut() {
            if b.upper < 0.0 && b.upper > -threshold {
                b.upper = -threshold;
            } else if b.lower > 0.0 && b.lower < threshold {
                b.lower = threshold;
            }
        }
        out
    }

    /// The buckets of one side in index order, with their bounds as the spans give them (a
    /// negative bucket's bounds mirrored: `[-upper, -lower)`).
    pub fn side_buckets(&self, positive: bool) -> impl Iterator<Item = Bucket> + '_ {
        let (spans, counts) = if positive {
            (&self.positive_spans, &self.positive_buckets)
        } else {
            (&self.negative_spans, &self.negative_buckets)
        };
        bucket_indexes(spans)
            .zip(counts.iter())
            .map(move |(index, &count)| {
                let upper = bucket_bound(index, self.schema, &self.custom_values);
                let lower = bucket_bound(index - 1, self.schema, &self.custom_values);
                if positive {
                    Bucket {
                        lower,
                        upper,
                        lower_inclusive: false,
                        upper_inclusive: true,
                        count,
                    }
                } else {
                    Bucket {
                        lower: -upper,
                        upper: -lower,
                        lower_inclusive: true,
                        upper_inclusive: false,
                        count,
                    }
                }
            })
    }
}

impl fmt::Display for Histogram {
    /// Prometheus's `String()` form: `{count:3, sum:7, [-4,-2):1, [-0.001,0.001]:1, (1,2]:1}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{count:{}, sum:{}", self.count, self.sum)?;
        for b in self.buckets() {
            let open = if b.lower_inclusive { '[' } else { '(' };
            let close = if b.upper_inclusive { ']' } else { ')' };
            write!(f, ", {open}{},{}{close}:{}", b.lower, b.upper, b.count)?;
        }
        write!(f, "}}")
    }
}

/// Spans and counts of buckets given in ascending index order: a gap of up to
/// `max_filled` indexes is written as empty buckets, a longer one starts a new span.
pub fn spans_from_buckets(
    buckets: impl IntoIterator<Item = (i32, f64)>,
    max_filled: i32,
) -> (Vec<Span>, Vec<f64>) {
    let (mut spans, mut counts) = (Vec::<Span>::new(), Vec::new());
    let mut next = 0i32;
    for (index, count) in buckets {
        match spans.last_mut() {
            Some(span) if index - next <= max_filled => {
                counts.extend(std::iter::repeat_n(0.0, (index - next) as usize));
                span.length += (index - next) as u32 + 1;
            }
            Some(_) => spans.push(Span {
                offset: index - next,
                length: 1,
            }),
            None => spans.push(Span {
                offset: index,
                length: 1,
            }),
        }
        counts.push(count);
        next = index + 1;
    }
    (spans, counts)
}

/// The bucket index of each bucket the spans cover, in order.
pub fn bucket_indexes(spans: &[Span]) -> impl Iterator<Item = i32> + '_ {
    let mut next = 0i32;
    spans.iter().flat_map(move |span| {
        let start = next.saturating_add(span.offset);
        next = start.saturating_add(span.length as i32);
        (0..span.length as i32).map(move |k| start.saturating_add(k))
    })
}

/// The upper bound of bucket `index` (the lower bound is bucket `index - 1`'s upper bound).
pub fn bucket_bound(index: i32, schema: i32, custom_values: &[f64]) -> f64 {
    if is_custom_buckets_schema(schema) {
        return match usize::try_from(index) {
            Ok(i) if i < custom_values.len() => custom_values[i],
            Ok(_) => f64::INFINITY,
            Err(_) => f64::NEG_INFINITY,
        };
    }
    exponential_bound(index, schema)
}

/// `2^(index / 2^schema)`, with the last finite bucket's bound at `f64::MAX` so that ±Inf
/// observations have a bucket of their own, as in Prometheus.
fn exponential_bound(index: i32, schema: i32) -> f64 {
    if schema < 0 {
        let exp = i64::from(index) << -schema;
        if exp == 1024 {
            return f64::MAX;
        }
        return ldexp(1.0, exp);
    }
    let per_octave = 1i64 << schema;
    let index = i64::from(index);
    let frac_index = index.rem_euclid(per_octave);
    let exp = index.div_euclid(per_octave) + 1;
    let frac = bound_fraction(frac_index, schema);
    if frac_index == 0 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

/// The fraction in [0.5, 1) of a bound, `2^(k / 2^schema - 1)`, to the nearest double.
/// Prometheus reads it from a precomputed table whose entries are not all the nearest
/// double (`2^-0.125` is two below it), so a bound shown by the JSON API can differ from
/// Prometheus's in its last one or two bits.
fn bound_fraction(k: i64, schema: i32) -> f64 {
    (k as f64 / (1i64 << schema) as f64 - 1.0).exp2()
}

/// `frac * 2^exp` without intermediate overflow or underflow for the exponents buckets use.
fn ldexp(frac: f64, exp: i64) -> f64 {
    let exp = exp.clamp(-2200, 2200) as i32;
    // Split the scaling so neither factor over- or underflows on its own.
    let half = exp / 2;
    frac * 2f64.powi(half) * 2f64.powi(exp - half)
}

fn check_spans(side: &'static str, spans: &[Span], buckets: usize) -> Result<(), HistogramError> {
    for (n, span) in spans.iter().enumerate() {
        if n > 0 && span.offset < 0 {
            return Err(HistogramError::NegativeSpanOffset {
                side,
                number: n + 1,
                offset: span.offset,
            });
        }
    }
    let spans_total: usize = spans.iter().map(|s| s.length as usize).sum();
    if spans_total != buckets {
        return Err(HistogramError::SpansBucketsMismatch {
            side,
            spans: spans_total,
            buckets,
        });
    }
    Ok(())
}

/// The buckets' total; an error for a negative count.
fn check_buckets(side: &'static str, buckets: &[f64]) -> Result<f64, HistogramError> {
    let mut total = 0.0;
    for (i, &count) in buckets.iter().enumerate() {
        if count < 0.0 {
            return Err(HistogramError::NegativeBucketCount {
                side,
                number: i + 1,
                count,
            });
        }
        total += count;
    }
    Ok(total)
}

fn check_custom_bounds(
    bounds: &[f64],
    spans: &[Span],
    buckets: usize,
) -> Result<(), HistogramError> {
    let mut previous = f64::NEG_INFINITY;
    for (i, &bound) in bounds.iter().enumerate() {
        if bound.is_nan() {
            return Err(HistogramError::CustomBuckets(
                "custom bounds must not be NaN",
            ));
        }
        if i > 0 && bound <= previous {
            return Err(HistogramError::CustomBuckets(
                "custom bounds must be in strictly increasing order",
            ));
        }
        previous = bound;
    }
    if previous == f64::INFINITY {
        return Err(HistogramError::CustomBuckets(
            "last +Inf bound must not be explicitly defined",
        ));
    }
    let mut covered = 0usize;
    for (n, span) in spans.iter().enumerate() {
        if span.offset < 0 {
            return Err(HistogramError::NegativeSpanOffset {
                side: "positive",
                number: n + 1,
                offset: span.offset,
            });
        }
        covered += span.offset as usize + span.length as usize;
    }
    let spans_total: usize = spans.iter().map(|s| s.length as usize).sum();
    if spans_total != buckets {
        return Err(HistogramError::SpansBucketsMismatch {
            side: "positive",
            spans: spans_total,
            buckets,
        });
    }
    if bounds.len() + 1 < covered {
        return Err(HistogramError::CustomBuckets(
            "custom bounds are insufficient to cover the spans",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(offset: i32, length: u32) -> Span {
        Span { offset, length }
    }

    #[test]
    fn exponential_bounds_follow_the_schema() {
        assert_eq!(bucket_bound(0, 0, &[]), 1.0);
        assert_eq!(bucket_bound(1, 0, &[]), 2.0);
        assert_eq!(bucket_bound(-1, 0, &[]), 0.5);
        assert_eq!(bucket_bound(2, 1, &[]), 2.0);
        assert!((bucket_bound(1, 1, &[]) - std::f64::consts::SQRT_2).abs() < 1e-15);
        // The nearest doubles: 2^-0.125 and 2^-0.25 are one and two bits above
        // Prometheus's table, 2^-0.5 one bit (see `bound_fraction`).
        assert_eq!(bucket_bound(-1, 3, &[]).to_string(), "0.9170040432046712");
        assert_eq!(bucket_bound(-1, 2, &[]).to_string(), "0.8408964152537145");
        assert_eq!(bucket_bound(1, -1, &[]), 4.0);
        assert_eq!(bucket_bound(1, -2, &[]), 16.0);
        // The last finite bucket ends at f64::MAX; the next holds the infinities.
        assert_eq!(bucket_bound(1024, 0, &[]), f64::MAX);
        assert_eq!(bucket_bound(1025, 0, &[]), f64::INFINITY);
        assert_eq!(bucket_bound(256, -2, &[]), f64::MAX);
        assert_eq!(bucket_bound(1024 * 8, 3, &[]), f64::MAX);
        // Tiny bounds do not underflow early.
        assert_eq!(bucket_bound(-1074, 0, &[]), f64::from_bits(1));
    }

    #[test]
    fn custom_bounds_add_infinities_at_both_ends() {
        let custom = [1.0, 5.0];
        assert_eq!(
            bucket_bound(-1, CUSTOM_BUCKETS_SCHEMA, &custom),
            f64::NEG_INFINITY
        );
        assert_eq!(bucket_bound(1, CUSTOM_BUCKETS_SCHEMA, &custom), 5.0);
        assert_eq!(
            bucket_bound(2, CUSTOM_BUCKETS_SCHEMA, &custom),
            f64::INFINITY
        );
    }

    fn example() -> Histogram {
        // Schema 0: buckets (0.5,1], (1,2], gap, (4,8]; negative [-2,-1); zero bucket 1.
        Histogram {
            schema: 0,
            zero_threshold: 0.001,
            zero_count: 1.0,
            count: 9.0,
            sum: 12.5,
            positive_spans: vec![span(0, 2), span(1, 1)],
            positive_buckets: vec![2.0, 3.0, 1.0],
            negative_spans: vec![span(1, 1)],
            negative_buckets: vec![2.0],
            ..Default::default()
        }
    }

    #[test]
    fn buckets_run_from_negative_through_zero_to_positive() {
        let h = example();
        h.validate(true).unwrap();
        let shown: Vec<(u8, f64, f64, f64)> = h
            .buckets()
            .iter()
            .map(|b| (b.boundary_rule(), b.lower, b.upper, b.count))
            .collect();
        assert_eq!(
            shown,
            vec![
                (1, -2.0, -1.0, 2.0),
                (3, -0.001, 0.001, 1.0),
                (0, 0.5, 1.0, 2.0),
                (0, 1.0, 2.0, 3.0),
                (0, 4.0, 8.0, 1.0),
            ]
        );
        assert_eq!(
            h.to_string(),
            "{count:9, sum:12.5, [-2,-1):2, [-0.001,0.001]:1, (0.5,1]:2, (1,2]:3, (4,8]:1}"
        );
    }

    #[test]
    fn bounds_inside_the_zero_bucket_move_to_its_threshold() {
        let h = Histogram {
            schema: 0,
            zero_threshold: 0.75,
            zero_count: 1.0,
            count: 4.0,
            positive_spans: vec![span(-2, 3)],
            positive_buckets: vec![1.0, 1.0, 1.0],
            ..Default::default()
        };
        let shown: Vec<(f64, f64)> = h.buckets().iter().map(|b| (b.lower, b.upper)).collect();
        // As Prometheus: (0.125,0.25] and (0.25,0.5] get the threshold as lower bound too.
        assert_eq!(
            shown,
            vec![(-0.75, 0.75), (0.75, 0.25), (0.75, 0.5), (0.75, 1.0)]
        );
    }

    #[test]
    fn validation_follows_prometheus() {
        assert!(example().validate(true).is_ok());
        let mut h = example();
        h.count = 8.0;
        assert!(matches!(
            h.validate(true),
            Err(HistogramError::CountMismatch { .. })
        ));
        assert!(
            h.validate(false).is_ok(),
            "float histograms need no exact count"
        );
        h.sum = f64::NAN;
        h.count = 10.0;
        assert!(
            h.validate(true).is_ok(),
            "with a NaN sum the count may be larger"
        );
        let mut h = example();
        h.positive_buckets.push(1.0);
        assert!(matches!(
            h.validate(false),
            Err(HistogramError::SpansBucketsMismatch {
                spans: 3,
                buckets: 4,
                ..
            })
        ));
        let mut h = example();
        h.positive_spans[1].offset = -1;
        assert!(matches!(
            h.validate(false),
            Err(HistogramError::NegativeSpanOffset { .. })
        ));
        let mut h = example();
        h.negative_buckets[0] = -1.0;
        assert!(matches!(
            h.validate(false),
            Err(HistogramError::NegativeBucketCount { .. })
        ));
        let mut h = example();
        h.schema = 9;
        assert!(matches!(
            h.validate(false),
            Err(HistogramError::InvalidSchema(9))
        ));
        let custom = Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3.0,
            sum: 4.0,
            positive_spans: vec![span(0, 3)],
            positive_buckets: vec![1.0, 1.0, 1.0],
            custom_values: vec![1.0, 2.0],
            ..Default::default()
        };
        custom.validate(true).unwrap();
        let mut bad = custom.clone();
        bad.custom_values = vec![2.0, 1.0];
        assert!(bad.validate(true).is_err());
        let mut bad = custom.clone();
        bad.custom_values = vec![1.0];
        assert!(bad.validate(true).is_err(), "three buckets need two bounds");
        let mut bad = custom;
        bad.zero_threshold = 0.1;
        assert!(bad.validate(true).is_err());
    }
}
