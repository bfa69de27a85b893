//! Trimming a native histogram at a value, as PromQL's `</` and `>/` operators do (Prometheus
//! 3.x `TrimBuckets`): `h </ v` keeps the observations below `v`, `h >/ v` those above it.
//!
//! A bucket wholly on the kept side stays; one wholly on the other side is emptied; one the
//! cut goes through keeps the part of its count on the kept side, interpolated linearly in a
//! custom bucket and on a logarithmic scale in an exponential one. The zero bucket is taken
//! to reach only to the side where the histogram has buckets (both sides when it has both or
//! none) and is cut linearly. When anything was cut, the count becomes the kept counts' total
//! and the sum is estimated from each kept part's representative value (the middle of a
//! custom bucket's kept part, the geometric mean of an exponential one's); an untouched
//! histogram keeps its count and sum. Buckets of unbounded width (a custom histogram's first
//! and last) are kept or dropped whole, except where a finite positive bound lets the first
//! be read as starting at 0.

use super::histogram::{Bucket, Histogram};

impl Histogram {
    /// This histogram trimmed at `cut`: observations above it removed when `keep_below`
    /// (`</`), below it otherwise (`>/`).
    pub fn trim(&self, cut: f64, keep_below: bool) -> Histogram {
        let mut h = self.clone();
        let linear = h.uses_custom_buckets();
        let (mut count, mut sum) = (0.0, 0.0);
        let mut trimmed = false;
        let (mut has_positive, mut has_negative) = (false, false);
        for positive in [true, false] {
            let buckets: Vec<Bucket> = self.side_buckets(positive).collect();
            let counts = match positive {
                true => &mut h.positive_buckets,
                false => &mut h.negative_buckets,
            };
            for (i, b) in buckets.iter().enumerate() {
                if b.count == 0.0 {
                    continue;
                }
                match positive {
                    true => has_positive = true,
                    false => has_negative = true,
                }
                let (whole, partly) = match keep_below {
                    true => (b.upper <= cut, b.lower < cut),
                    false => (b.lower >= cut, b.upper > cut),
                };
                if whole {
                    count += b.count;
                    sum += midpoint(b.lower, b.upper, positive, linear) * b.count;
                } else if partly {
                    let (kept, middle) = cut_bucket(b, cut, keep_below, positive, linear);
                    count += kept;
                    sum += middle * kept;
                    if counts[i] != kept {
                        counts[i] = kept;
                        trimmed = true;
                    }
                } else {
                    counts[i] = 0.0;
                    trimmed = true;
                }
            }
        }
        if h.zero_count > 0.0 {
            let (kept, middle) = cut_zero_bucket(
                &self.zero_bucket(),
                cut,
                has_negative,
                has_positive,
                keep_below,
            );
            if h.zero_count != kept {
                h.zero_count = kept;
                trimmed = true;
            }
            sum += middle * kept;
            count += kept;
        }
        if trimmed {
            h.count = count;
            h.sum = sum;
            h.compact();
        }
        h
    }
}

/// The value standing for observations in `(lower, upper]`: the middle on a linear scale,
/// the geometric mean (negated for a negative bucket) on a logarithmic one; with an
/// unbounded end, the finite bound (half of it for a positive upper bound).
fn midpoint(lower: f64, upper: f64, positive: bool, linear: bool) -> f64 {
    match (lower.is_infinite(), upper.is_infinite()) {
        (true, true) => 0.0,
        (true, false) if upper > 0.0 => upper / 2.0,
        (true, false) => upper,
        (false, true) => lower,
        _ if linear => (lower + upper) / 2.0,
        _ => {
            let mean = (lower * upper).abs().sqrt();
            if positive { mean } else { -mean }
        }
    }
}

/// The count kept of a bucket the cut goes through, and the value standing for it.
fn cut_bucket(b: &Bucket, cut: f64, keep_below: bool, positive: bool, linear: bool) -> (f64, f64) {
    if b.lower == f64::NEG_INFINITY || b.upper == f64::INFINITY {
        return cut_unbounded_bucket(b, cut, keep_below);
    }
    let below = if cut <= b.lower {
        0.0
    } else if cut >= b.upper {
        b.count
    } else {
        b.count * b.fraction_below(cut, linear)
    };
    match keep_below {
        true => (below, midpoint(b.lower, cut, positive, linear)),
        false => (b.count - below, midpoint(cut, b.upper, positive, linear)),
    }
}

/// [`cut_bucket`] for a bucket with an infinite bound, whose observations' spread is
/// unknown: it is kept or dropped whole, except that a first bucket with a finite positive
/// upper bound (only custom buckets have one) is read as starting at 0.
fn cut_unbounded_bucket(b: &Bucket, cut: f64, keep_below: bool) -> (f64, f64) {
    let finite = |x: f64| if x.is_infinite() { 0.0 } else { x };
    if b.lower == f64::NEG_INFINITY {
        let bounded_above = b.upper > 0.0 && b.upper.is_finite();
        return match keep_below {
            true if cut >= b.upper => (b.count, 0.0),
            true if cut > 0.0 && bounded_above => (b.count * cut / b.upper, cut / 2.0),
            true if b.upper <= 0.0 => (b.count, cut),
            false if cut <= b.lower => (b.count, 0.0),
            false if cut >= 0.0 && b.upper > cut && b.upper.is_finite() => {
                (b.count * (1.0 - cut / b.upper), (cut + b.upper) / 2.0)
            }
            _ => (0.0, finite(b.upper)),
        };
    }
    match keep_below {
        false if cut >= b.lower => (b.count, cut),
        _ => (0.0, finite(b.lower)),
    }
}

/// The count kept of the zero bucket and the value standing for it: the bucket is read as
/// `[0, threshold]` in a histogram with only positive buckets, `[-threshold, 0]` with only
/// negative ones, and cut linearly.
fn cut_zero_bucket(
    zero: &Bucket,
    cut: f64,
    has_negative: bool,
    has_positive: bool,
    keep_below: bool,
) -> (f64, f64) {
    let (mut lower, mut upper) = (zero.lower, zero.upper);
    if has_negative && !has_positive {
        upper = 0.0;
    }
    if has_positive && !has_negative {
        lower = 0.0;
    }
    let (fraction, middle) = match keep_below {
        true if cut <= lower => return (0.0, 0.0),
        true if cut >= upper => return (zero.count, (lower + upper) / 2.0),
        true => ((cut - lower) / (upper - lower), (lower + cut) / 2.0),
        false if cut <= lower => return (zero.count, (lower + upper) / 2.0),
        false if cut >= upper => return (0.0, 0.0),
        false => ((upper - cut) / (upper - lower), (cut + upper) / 2.0),
    };
    (zero.count * fraction, middle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::histogram::Span;

    /// `{{schema:0 sum:123.75 count:34 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16]
    /// n_buckets:[1 2]}}`, the first histogram of Prometheus's trim tests.
    fn h_test() -> Histogram {
        Histogram {
            schema: 0,
            sum: 123.75,
            count: 34.0,
            zero_count: 1.0,
            zero_threshold: 0.001,
            positive_spans: vec![Span {
                offset: 0,
                length: 4,
            }],
            positive_buckets: vec![2.0, 4.0, 8.0, 16.0],
            negative_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            negative_buckets: vec![1.0, 2.0],
            ..Histogram::default()
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn trimming_at_the_ends_keeps_all_or_nothing() {
        assert_eq!(h_test().trim(f64::INFINITY, true), h_test());
        assert_eq!(h_test().trim(f64::NEG_INFINITY, false), h_test());
        let none = h_test().trim(f64::INFINITY, false);
        assert_eq!((none.count, none.sum, none.zero_count), (0.0, 0.0, 0.0));
        assert!(none.positive_buckets.is_empty() && none.negative_buckets.is_empty());
    }

    #[test]
    fn trimming_at_zero_halves_the_zero_bucket() {
        let above = h_test().trim(0.0, false);
        assert!(close(above.count, 30.5), "{above:?}");
        assert!(close(above.sum, 120.20840280171308), "{above:?}");
        assert_eq!(above.zero_count, 0.5);
        assert!(above.negative_buckets.is_empty());
        let below = h_test().trim(0.0, true);
        assert!(close(below.count, 3.5) && close(below.sum, -3.5357839059327377));
        assert!(below.positive_buckets.is_empty());
    }

    #[test]
    fn a_cut_inside_an_exponential_bucket_interpolates_logarithmically() {
        // √2 is half way through (1, 2] on a logarithmic scale.
        let below = h_test().trim(std::f64::consts::SQRT_2, true);
        assert!(close(below.count, 8.0), "{below:?}");
        assert_eq!(below.positive_buckets.len(), 2);
        assert!(close(below.positive_buckets[1], 2.0), "{below:?}");
        let above = h_test().trim(std::f64::consts::SQRT_2, false);
        assert!(close(above.count, 26.0), "{above:?}");
        assert_eq!(above.positive_spans[0].offset, 1);
        assert!(close(above.positive_buckets[0], 2.0), "{above:?}");
        assert_eq!(above.positive_buckets[1..], [8.0, 16.0]);
    }

    #[test]
    fn custom_buckets_interpolate_linearly_and_read_the_first_from_zero() {
        let h = Histogram {
            schema: -53,
            custom_values: vec![10.0, 20.0],
            count: 6.0,
            sum: 50.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 3,
            }],
            positive_buckets: vec![2.0, 2.0, 2.0],
            ..Histogram::default()
        };
        let below = h.trim(15.0, true);
        // (-Inf, 10] whole (standing at 5), half of (10, 20] (standing at 12.5), +Inf gone.
        assert!(
            close(below.count, 3.0) && close(below.sum, 2.0 * 5.0 + 12.5),
            "{below:?}"
        );
        let low = h.trim(5.0, true);
        assert!(close(low.count, 1.0) && close(low.sum, 2.5), "{low:?}");
    }
}
