//! Arithmetic on native histograms, as PromQL needs it for `rate`, `sum_over_time` and the
//! like: adding and subtracting histograms of different schemas and zero thresholds,
//! scaling, and detecting counter resets. The semantics follow Prometheus's
//! `FloatHistogram`: the result has the coarser schema (the finer one's buckets merged)
//! and the wider zero bucket (the buckets it covers merged into it); custom-bucket
//! histograms with different bounds are added on the bounds they share.

use std::collections::BTreeMap;

use super::kahan::kahan_add;

use super::histogram::{
    CounterResetHint, Histogram, Span, bucket_bound, bucket_indexes, is_custom_buckets_schema,
    spans_from_buckets,
};

/// Why two histograms cannot be combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HistogramOpError {
    #[error(
        "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas"
    )]
    MixedSchemas,
}

/// A histogram's buckets by index, for combining.
#[derive(Debug, Clone)]
struct Dense {
    schema: i32,
    zero_threshold: f64,
    zero_count: f64,
    count: f64,
    sum: f64,
    positive: BTreeMap<i32, f64>,
    negative: BTreeMap<i32, f64>,
    custom_values: Vec<f64>,
}

fn side(spans: &[Span], counts: &[f64]) -> BTreeMap<i32, f64> {
    let mut out = BTreeMap::new();
    for (index, count) in bucket_indexes(spans).zip(counts) {
        *out.entry(index).or_insert(0.0) += count;
    }
    out
}

/// Spans and counts of the buckets, a new span at each gap.
fn spans_of(buckets: &BTreeMap<i32, f64>) -> (Vec<Span>, Vec<f64>) {
    spans_from_buckets(buckets.iter().map(|(i, c)| (*i, *c)), 0)
}

impl Dense {
    fn of(h: &Histogram) -> Dense {
        Dense {
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count: h.zero_count,
            count: h.count,
            sum: h.sum,
            positive: side(&h.positive_spans, &h.positive_buckets),
            negative: side(&h.negative_spans, &h.negative_buckets),
            custom_values: h.custom_values.clone(),
        }
    }

    fn into_histogram(self, hint: CounterResetHint) -> Histogram {
        let (positive_spans, positive_buckets) = spans_of(&self.positive);
        let (negative_spans, negative_buckets) = spans_of(&self.negative);
        Histogram {
            counter_reset_hint: hint,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero_count,
            count: self.count,
            sum: self.sum,
            positive_spans,
            positive_buckets,
            negative_spans,
            negative_buckets,
            custom_values: self.custom_values,
        }
    }

    fn custom(&self) -> bool {
        is_custom_buckets_schema(self.schema)
    }

    /// The buckets at a coarser exponential schema: bucket `i` becomes
    /// `((i - 1) >> (schema - target)) + 1`.
    fn reduce_to(&mut self, target: i32) {
        if self.custom() || target >= self.schema {
            return;
        }
        let shift = (self.schema - target) as u32;
        let reduce = |m: &BTreeMap<i32, f64>| {
            let mut out = BTreeMap::new();
            for (&i, &c) in m {
                *out.entry(((i - 1) >> shift) + 1).or_insert(0.0) += c;
            }
            out
        };
        self.positive = reduce(&self.positive);
        self.negative = reduce(&self.negative);
        self.schema = target;
    }

    /// Widens the zero bucket to at least `threshold`: buckets reaching into it are
    /// merged into it, and a populated bucket it cuts through widens it to that bucket's
    /// edge.
    fn widen_zero_bucket(&mut self, mut threshold: f64) {
        'outer: loop {
            let schema = self.schema;
            let bound = |i: i32| bucket_bound(i, schema, &[]);
            let mut merged = 0.0;
            let mut gone = Vec::new();
            for (&i, &c) in &self.positive {
                if bound(i - 1) >= threshold {
                    break;
                }
                merged += c;
                gone.push((true, i));
                if bound(i) > threshold {
                    if c != 0.0 {
                        threshold = bound(i);
                    }
                    break;
                }
            }
            for (&i, &c) in &self.negative {
                // Negative bucket i is [-bound(i), -bound(i - 1)).
                if -bound(i - 1) <= -threshold {
                    break;
                }
                merged += c;
                gone.push((false, i));
                if -bound(i) < -threshold {
                    if c != 0.0 {
                        threshold = bound(i);
                        continue 'outer;
                    }
                    break;
                }
            }
            for (positive, i) in gone {
                match positive {
                    true => self.positive.remove(&i),
                    false => self.negative.remove(&i),
                };
            }
            self.zero_count += merged;
            self.zero_threshold = threshold;
            return;
        }
    }

    /// The custom buckets at a subset of the bounds: each bucket goes to the first bucket
    /// of `bounds` whose upper bound is at least its own.
    fn map_to_bounds(&mut self, bounds: &[f64]) {
        let mut out = BTreeMap::new();
        for (&i, &c) in &self.positive {
            let upper = bucket_bound(i, self.schema, &self.custom_values);
            let target = bounds.partition_point(|b| *b < upper) as i32;
            *out.entry(target).or_insert(0.0) += c;
        }
        self.positive = out;
        self.custom_values = bounds.to_vec();
    }
}

/// The custom bucket bounds two histograms share.
fn shared_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().filter(|v| b.contains(v)).copied().collect()
}

/// Both histograms brought to one layout: the coarser schema, the wider zero bucket, or
/// the custom bounds both have.
fn reconcile(a: &Histogram, b: &Histogram) -> Result<(Dense, Dense), HistogramOpError> {
    let (mut x, mut y) = (Dense::of(a), Dense::of(b));
    if x.custom() != y.custom() {
        return Err(HistogramOpError::MixedSchemas);
    }
    if x.custom() {
        if x.custom_values != y.custom_values {
            let shared = shared_bounds(&x.custom_values, &y.custom_values);
            x.map_to_bounds(&shared);
            y.map_to_bounds(&shared);
        }
        return Ok((x, y));
    }
    let schema = x.schema.min(y.schema);
    x.reduce_to(schema);
    y.reduce_to(schema);
    while x.zero_threshold != y.zero_threshold {
        if x.zero_threshold > y.zero_threshold {
            y.widen_zero_bucket(x.zero_threshold);
        } else {
            x.widen_zero_bucket(y.zero_threshold);
        }
    }
    Ok((x, y))
}

/// Whether two histograms have their buckets at the same indexes in the same layout: then
/// they combine bucket by bucket, without reconciling (the common case of one series'
/// consecutive samples, and of series from one instrumentation).
fn same_layout(a: &Histogram, b: &Histogram) -> bool {
    a.schema == b.schema
        && a.zero_threshold == b.zero_threshold
        && a.positive_spans == b.positive_spans
        && a.negative_spans == b.negative_spans
        && a.custom_values == b.custom_values
        && a.positive_buckets.len() == b.positive_buckets.len()
        && a.negative_buckets.len() == b.negative_buckets.len()
}

/// The counter reset hint of a sum or difference of two histograms (Prometheus's
/// `adjustCounterReset`), and whether the two collide: one says a counter reset, the other
/// says none. A gauge makes a gauge; otherwise an unknown hint makes the result unknown.
pub fn combined_hint(a: CounterResetHint, b: CounterResetHint) -> (CounterResetHint, bool) {
    use CounterResetHint::*;
    match (a, b) {
        _ if a == b => (a, false),
        (Gauge, _) | (_, Gauge) => (Gauge, false),
        (Unknown, _) | (_, Unknown) => (Unknown, false),
        _ => (Unknown, true),
    }
}

fn combine(a: &Histogram, b: &Histogram, sign: f64) -> Result<Histogram, HistogramOpError> {
    let hint = combined_hint(a.counter_reset_hint, b.counter_reset_hint).0;
    if same_layout(a, b) {
        let mut x = a.clone();
        x.counter_reset_hint = hint;
        x.count += sign * b.count;
        x.sum += sign * b.sum;
        x.zero_count += sign * b.zero_count;
        for (mine, theirs) in [
            (&mut x.positive_buckets, &b.positive_buckets),
            (&mut x.negative_buckets, &b.negative_buckets),
        ] {
            for (c, d) in mine.iter_mut().zip(theirs) {
                *c += sign * d;
            }
        }
        return Ok(x);
    }
    let (mut x, y) = reconcile(a, b)?;
    x.count += sign * y.count;
    x.sum += sign * y.sum;
    x.zero_count += sign * y.zero_count;
    for (side, other) in [
        (&mut x.positive, &y.positive),
        (&mut x.negative, &y.negative),
    ] {
        for (&i, &c) in other {
            *side.entry(i).or_insert(0.0) += sign * c;
        }
    }
    Ok(x.into_histogram(hint))
}

impl Histogram {
    /// `self + other`.
    pub fn add(&self, other: &Histogram) -> Result<Histogram, HistogramOpError> {
        combine(self, other, 1.0)
    }

    /// `self - other`.
    pub fn sub(&self, other: &Histogram) -> Result<Histogram, HistogramOpError> {
        combine(self, other, -1.0)
    }

    /// Every count and the sum multiplied by `factor`.
    pub fn scale(&self, factor: f64) -> Histogram {
        let mut h = self.clone();
        h.count *= factor;
        h.sum *= factor;
        h.zero_count *= factor;
        for c in h
            .positive_buckets
            .iter_mut()
            .chain(h.negative_buckets.iter_mut())
        {
            *c *= factor;
        }
        h
    }

    /// Every count and the sum divided by `divisor`; dividing by zero leaves no buckets (the
    /// count, sum and zero bucket become infinite or NaN), as in Prometheus.
    pub fn div(&self, divisor: f64) -> Histogram {
        let mut h = self.clone();
        h.count /= divisor;
        h.sum /= divisor;
        h.zero_count /= divisor;
        if divisor == 0.0 {
            h.positive_spans.clear();
            h.positive_buckets.clear();
            h.negative_spans.clear();
            h.negative_buckets.clear();
            return h;
        }
        for c in h
            .positive_buckets
            .iter_mut()
            .chain(h.negative_buckets.iter_mut())
        {
            *c /= divisor;
        }
        h
    }

    /// Whether a counter reset happened between `previous` and this histogram: the hint
    /// says so, or the count, the zero bucket or a bucket went down, or the layout got
    /// finer (a higher schema, a narrower zero bucket, other custom bounds).
    pub fn detect_reset(&self, previous: &Histogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::CounterReset => true,
            CounterResetHint::NotCounterReset => false,
            _ => self.counts_reset(previous),
        }
    }

    /// Whether the counts say a counter reset happened between `previous` and this
    /// histogram, whatever the hints say.
    pub fn counts_reset(&self, previous: &Histogram) -> bool {
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() != previous.uses_custom_buckets() {
            return true;
        }
        if self.uses_custom_buckets() && self.custom_values != previous.custom_values {
            // Compared on the bounds both have.
            let shared = shared_bounds(&self.custom_values, &previous.custom_values);
            let (mut now, mut before) = (Dense::of(self), Dense::of(previous));
            now.map_to_bounds(&shared);
            before.map_to_bounds(&shared);
            return before
                .positive
                .iter()
                .any(|(i, c)| now.positive.get(i).copied().unwrap_or(0.0) < *c);
        }
        if self.schema > previous.schema || self.zero_threshold < previous.zero_threshold {
            return true;
        }
        if same_layout(self, previous) {
            let went_down =
                |now: &[f64], before: &[f64]| now.iter().zip(before).any(|(n, b)| n < b);
            return self.zero_count < previous.zero_count
                || went_down(&self.positive_buckets, &previous.positive_buckets)
                || went_down(&self.negative_buckets, &previous.negative_buckets);
        }
        let (now, mut before) = (Dense::of(self), Dense::of(previous));
        before.reduce_to(now.schema);
        if !self.uses_custom_buckets() {
            before.widen_zero_bucket(now.zero_threshold);
            if before.zero_threshold != now.zero_threshold {
                return true;
            }
        }
        if now.zero_count < before.zero_count {
            return true;
        }
        let went_down = |now: &BTreeMap<i32, f64>, before: &BTreeMap<i32, f64>| {
            before
                .iter()
                .any(|(i, c)| now.get(i).copied().unwrap_or(0.0) < *c)
        };
        went_down(&now.positive, &before.positive) || went_down(&now.negative, &before.negative)
    }

    /// Whether this counter histogram continues `previous` in one of Prometheus's chunks:
    /// both counters, no reset hinted or counted, and the same schema and zero bucket.
    /// Prometheus reads such a histogram back with the hint `NotCounterReset`, and the
    /// first of a chunk with `Unknown` (see [`read_hint`]).
    fn continues(&self, previous: &Histogram) -> bool {
        use CounterResetHint::{CounterReset, Gauge};
        self.counter_reset_hint != Gauge
            && previous.counter_reset_hint != Gauge
            && self.counter_reset_hint != CounterReset
            && self.schema == previous.schema
            && self.zero_threshold == previous.zero_threshold
            && self.custom_values == previous.custom_values
            && !self.counts_reset(previous)
    }
}

/// The counter reset hint Prometheus reads a histogram back with from its chunks, given
/// the sample before it in its series (`None` when there is none or it is a float): a
/// gauge stays a gauge; a counter histogram that continues the one before it is
/// `NotCounterReset`, and one that starts a chunk (the series' first, after a float or a
/// gauge, after a reset, or with a new schema or zero bucket) is `Unknown`, even when it
/// was written with `CounterReset`: PromQL then detects the reset from the counts.
pub fn read_hint(h: &Histogram, previous: Option<&Histogram>) -> CounterResetHint {
    match previous {
        _ if h.counter_reset_hint == CounterResetHint::Gauge => CounterResetHint::Gauge,
        Some(p) if h.continues(p) => CounterResetHint::NotCounterReset,
        _ => CounterResetHint::Unknown,
    }
}

/// A running sum of histograms with Kahan compensation, as Prometheus's `sum`, `avg`,
/// `sum_over_time` and `avg_over_time` add them (`KahanAdd`): each count, the sum and
/// each bucket keep a compensation term, held in a histogram of the sum's layout. When
/// the sum's own layout coarsens (a lower schema, a wider zero bucket, fewer custom
/// bounds) the compensation is folded into it first.
#[derive(Debug, Clone)]
pub struct HistogramSum {
    value: Histogram,
    compensation: Histogram,
    /// Hints seen among the added histograms: Prometheus warns when a sum holds both.
    counter_reset_seen: bool,
    not_reset_seen: bool,
    /// Custom-bucket histograms with different bounds were added on the bounds they share.
    bounds_reconciled: bool,
}

impl HistogramSum {
    pub fn new(first: &Histogram) -> HistogramSum {
        let mut sum = HistogramSum {
            value: first.clone(),
            compensation: zeroed(first),
            counter_reset_seen: false,
            not_reset_seen: false,
            bounds_reconciled: false,
        };
        sum.note_hint(first.counter_reset_hint);
        sum
    }

    fn note_hint(&mut self, hint: CounterResetHint) {
        match hint {
            CounterResetHint::CounterReset => self.counter_reset_seen = true,
            CounterResetHint::NotCounterReset => self.not_reset_seen = true,
            _ => {}
        }
    }

    /// Adds `h`; exponential and custom buckets do not mix (the sum is then unchanged).
    pub fn add(&mut self, h: &Histogram) -> Result<(), HistogramOpError> {
        if self.value.uses_custom_buckets() != h.uses_custom_buckets() {
            return Err(HistogramOpError::MixedSchemas);
        }
        self.note_hint(h.counter_reset_hint);
        let hint = combined_hint(self.value.counter_reset_hint, h.counter_reset_hint).0;
        if same_layout(&self.value, h) {
            let (v, c) = (&mut self.value, &mut self.compensation);
            add_compensated([
                (&mut v.count, &mut c.count, h.count),
                (&mut v.sum, &mut c.sum, h.sum),
                (&mut v.zero_count, &mut c.zero_count, h.zero_count),
            ]);
            for (xs, ks, ys) in [
                (
                    &mut v.positive_buckets,
                    &mut c.positive_buckets,
                    &h.positive_buckets,
                ),
                (
                    &mut v.negative_buckets,
                    &mut c.negative_buckets,
                    &h.negative_buckets,
                ),
            ] {
                for ((x, k), y) in xs.iter_mut().zip(ks.iter_mut()).zip(ys) {
                    (*x, *k) = kahan_add(*y, *x, *k);
                }
            }
        } else {
            self.add_reconciled(h)?;
        }
        self.value.counter_reset_hint = hint;
        Ok(())
    }

    fn add_reconciled(&mut self, h: &Histogram) -> Result<(), HistogramOpError> {
        let (mut x, mut y) = reconcile(&self.value, h)?;
        let keeps_layout = x.schema == self.value.schema
            && x.zero_threshold == self.value.zero_threshold
            && x.custom_values == self.value.custom_values;
        if self.value.uses_custom_buckets() && self.value.custom_values != h.custom_values {
            self.bounds_reconciled = true;
        }
        let mut k = if keeps_layout {
            Dense::of(&self.compensation)
        } else {
            let folded = self.folded();
            (x, y) = reconcile(&folded, h)?;
            Dense::of(&zeroed(&folded))
        };
        add_compensated([
            (&mut x.count, &mut k.count, y.count),
            (&mut x.sum, &mut k.sum, y.sum),
            (&mut x.zero_count, &mut k.zero_count, y.zero_count),
        ]);
        for (xs, ks, ys) in [
            (&mut x.positive, &mut k.positive, &y.positive),
            (&mut x.negative, &mut k.negative, &y.negative),
        ] {
            for (&i, &v) in ys {
                let (sum, c) = (xs.entry(i).or_insert(0.0), ks.entry(i).or_insert(0.0));
                (*sum, *c) = kahan_add(v, *sum, *c);
            }
        }
        // The compensation takes the sum's layout: the same indexes, in the same spans.
        let aligned = |sums: &BTreeMap<i32, f64>, comps: &BTreeMap<i32, f64>| {
            sums.keys()
                .map(|i| (*i, comps.get(i).copied().unwrap_or(0.0)))
                .collect::<BTreeMap<i32, f64>>()
        };
        k.positive = aligned(&x.positive, &k.positive);
        k.negative = aligned(&x.negative, &k.negative);
        k.schema = x.schema;
        k.zero_threshold = x.zero_threshold;
        k.custom_values = x.custom_values.clone();
        let hint = self.value.counter_reset_hint;
        self.value = x.into_histogram(hint);
        self.compensation = k.into_histogram(hint);
        Ok(())
    }

    /// The sum and its compensation added up.
    fn folded(&self) -> Histogram {
        let mut h = self.value.clone();
        let c = &self.compensation;
        h.count += c.count;
        h.sum += c.sum;
        h.zero_count += c.zero_count;
        for (xs, ks) in [
            (&mut h.positive_buckets, &c.positive_buckets),
            (&mut h.negative_buckets, &c.negative_buckets),
        ] {
            for (x, k) in xs.iter_mut().zip(ks) {
                *x += k;
            }
        }
        h
    }

    /// Sum and compensation divided by `divisor`, or multiplied by `factor`.
    fn divide(&mut self, divisor: f64) {
        self.value = self.value.div(divisor);
        self.compensation = self.compensation.div(divisor);
    }

    fn multiply(&mut self, factor: f64) {
        self.value = self.value.scale(factor);
        self.compensation = self.compensation.scale(factor);
    }

    /// Whether the added histograms' hints collide: one a counter reset, another none.
    pub fn hints_collide(&self) -> bool {
        self.counter_reset_seen && self.not_reset_seen
    }

    /// Whether custom-bucket histograms with different bounds were added.
    pub fn bounds_reconciled(&self) -> bool {
        self.bounds_reconciled
    }

    /// The sum, empty buckets removed (Prometheus's `Compact(0)` of an aggregation).
    pub fn finish(&self) -> Histogram {
        let mut h = self.folded();
        h.compact();
        h
    }

    /// The largest magnitude of any count, bucket or the sum: adding two histograms whose
    /// largest magnitudes add up to a finite number cannot overflow.
    fn magnitude(h: &Histogram) -> f64 {
        [h.count, h.sum, h.zero_count]
            .into_iter()
            .chain(h.positive_buckets.iter().copied())
            .chain(h.negative_buckets.iter().copied())
            .fold(0.0, |m, v| f64::max(m, v.abs()))
    }
}

/// Adds each `(sum, compensation, value)`'s value to its sum, Kahan-compensated.
fn add_compensated<const N: usize>(terms: [(&mut f64, &mut f64, f64); N]) {
    for (sum, compensation, value) in terms {
        (*sum, *compensation) = kahan_add(value, *sum, *compensation);
    }
}

/// A histogram with `h`'s layout and every count zero.
fn zeroed(h: &Histogram) -> Histogram {
    Histogram {
        counter_reset_hint: h.counter_reset_hint,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        positive_spans: h.positive_spans.clone(),
        positive_buckets: vec![0.0; h.positive_buckets.len()],
        negative_spans: h.negative_spans.clone(),
        negative_buckets: vec![0.0; h.negative_buckets.len()],
        custom_values: h.custom_values.clone(),
        ..Default::default()
    }
}

/// A running mean of histograms as Prometheus's `avg` and `avg_over_time` compute it: a
/// Kahan sum divided by the count at the end, switching to an incremental mean (the mean
/// so far scaled by `(n - 1) / n`, plus the new histogram over `n`) once the sum would
/// overflow. Made with `mean` false, it is a plain [`HistogramSum`] that also counts.
#[derive(Debug, Clone)]
pub struct HistogramMean {
    /// The sum, or once incremental, the mean so far.
    acc: HistogramSum,
    n: f64,
    mean: bool,
    incremental: bool,
}

impl HistogramMean {
    pub fn new(first: &Histogram, mean: bool) -> HistogramMean {
        HistogramMean {
            acc: HistogramSum::new(first),
            n: 1.0,
            mean,
            incremental: false,
        }
    }

    /// A partial result computed elsewhere: the sum (or, when `mean`, the mean) of `n`
    /// histograms.
    pub fn partial(h: &Histogram, n: f64, mean: bool) -> HistogramMean {
        HistogramMean {
            acc: HistogramSum::new(h),
            n,
            mean,
            incremental: mean,
        }
    }

    pub fn add(&mut self, h: &Histogram) -> Result<(), HistogramOpError> {
        self.n += 1.0;
        if !self.mean {
            return self.acc.add(h);
        }
        if !self.incremental {
            let bound = HistogramSum::magnitude(&self.acc.value)
                + HistogramSum::magnitude(&self.acc.compensation)
                + HistogramSum::magnitude(h);
            if bound.is_finite() {
                return self.acc.add(h);
            }
            // It may overflow: try on a copy.
            let mut next = self.acc.clone();
            next.add(h)?;
            if !next.value.has_overflow() {
                self.acc = next;
                return Ok(());
            }
            self.incremental = true;
            self.acc.divide(self.n - 1.0);
        }
        self.acc.multiply((self.n - 1.0) / self.n);
        self.acc.add(&h.div(self.n))
    }

    /// Takes in another partial result of the same kind.
    pub fn merge(&mut self, other: &HistogramMean) -> Result<(), HistogramOpError> {
        self.acc.counter_reset_seen |= other.acc.counter_reset_seen;
        self.acc.not_reset_seen |= other.acc.not_reset_seen;
        self.acc.bounds_reconciled |= other.acc.bounds_reconciled;
        let total = self.n + other.n;
        if !self.mean {
            self.n = total;
            return self.acc.add(&other.acc.folded());
        }
        if !self.incremental {
            self.acc.divide(self.n);
            self.incremental = true;
        }
        self.acc.multiply(self.n / total);
        self.acc.add(&other.finish().scale(other.n / total))?;
        self.n = total;
        Ok(())
    }

    pub fn hints_collide(&self) -> bool {
        self.acc.hints_collide()
    }

    pub fn bounds_reconciled(&self) -> bool {
        self.acc.bounds_reconciled()
    }

    /// How many histograms were added.
    pub fn count(&self) -> f64 {
        self.n
    }

    /// The mean (or the sum, when made with `mean` false), empty buckets removed.
    pub fn finish(&self) -> Histogram {
        if !self.mean || self.incremental {
            return self.acc.finish();
        }
        let mut acc = self.acc.clone();
        acc.divide(self.n);
        acc.finish()
    }

    /// Bytes held on the heap, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        let h = |h: &Histogram| {
            8 * (h.positive_buckets.len() + h.negative_buckets.len() + h.custom_values.len())
                + 8 * (h.positive_spans.len() + h.negative_spans.len())
        };
        h(&self.acc.value) + h(&self.acc.compensation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::histogram::CUSTOM_BUCKETS_SCHEMA;

    fn h(schema: i32, zero: (f64, f64), positive: &[(i32, f64)]) -> Histogram {
        let buckets: BTreeMap<i32, f64> = positive.iter().copied().collect();
        let (positive_spans, positive_buckets) = spans_of(&buckets);
        let count = zero.1 + positive.iter().map(|p| p.1).sum::<f64>();
        Histogram {
            schema,
            zero_threshold: zero.0,
            zero_count: zero.1,
            count,
            sum: count,
            positive_spans,
            positive_buckets,
            ..Default::default()
        }
    }

    fn buckets(h: &Histogram) -> Vec<(i32, f64)> {
        side(&h.positive_spans, &h.positive_buckets)
            .into_iter()
            .filter(|(_, c)| *c != 0.0)
            .collect()
    }

    #[test]
    fn adding_merges_to_the_coarser_schema() {
        // Schema 1 buckets 1..=4 are schema 0 buckets 1, 1, 2, 2.
        let fine = h(1, (0.0, 0.0), &[(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]);
        let coarse = h(0, (0.0, 0.0), &[(1, 10.0)]);
        let sum = fine.add(&coarse).unwrap();
        assert_eq!(sum.schema, 0);
        assert_eq!(buckets(&sum), vec![(1, 13.0), (2, 7.0)]);
        assert_eq!((sum.count, sum.sum), (20.0, 20.0));
        let difference = sum.sub(&coarse).unwrap();
        assert_eq!(buckets(&difference), vec![(1, 3.0), (2, 7.0)]);
    }

    #[test]
    fn a_wider_zero_bucket_takes_the_buckets_it_covers() {
        // Threshold 0.6 covers bucket 0 (0.5,1] partly: populated, so it widens to 1.
        let narrow = h(0, (0.1, 1.0), &[(-1, 1.0), (0, 2.0), (1, 3.0)]);
        let wide = h(0, (0.6, 5.0), &[(1, 1.0)]);
        let sum = narrow.add(&wide).unwrap();
        assert_eq!(sum.zero_threshold, 1.0);
        assert_eq!(sum.zero_count, 1.0 + 1.0 + 2.0 + 5.0);
        assert_eq!(buckets(&sum), vec![(1, 4.0)]);
    }

    #[test]
    fn custom_buckets_add_on_shared_bounds_and_do_not_mix() {
        let a = Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 3,
            }],
            positive_buckets: vec![1.0, 1.0, 1.0],
            custom_values: vec![1.0, 2.0],
            ..Default::default()
        };
        let b = Histogram {
            custom_values: vec![2.0, 4.0],
            ..a.clone()
        };
        let sum = a.add(&b).unwrap();
        assert_eq!(sum.custom_values, vec![2.0]);
        // a: (-Inf,1],(1,2] -> (-Inf,2]; (2,+Inf] stays. b: (-Inf,2]; (2,4],(4,+Inf] -> +Inf.
        assert_eq!(buckets(&sum), vec![(0, 3.0), (1, 3.0)]);
        assert_eq!(
            a.add(&h(0, (0.0, 0.0), &[])),
            Err(HistogramOpError::MixedSchemas)
        );
    }

    #[test]
    fn dividing_by_zero_leaves_no_buckets() {
        let h = h(0, (0.001, 3.0), &[(1, 3.0)]);
        assert_eq!(buckets(&h.div(3.0)), vec![(1, 1.0)]);
        assert_eq!(h.div(3.0).count, 2.0);
        let by_zero = h.div(0.0);
        assert!(by_zero.positive_buckets.is_empty() && by_zero.positive_spans.is_empty());
        assert_eq!(
            (by_zero.count, by_zero.zero_count),
            (f64::INFINITY, f64::INFINITY)
        );
        assert_eq!(buckets(&h.scale(2.0)), vec![(1, 6.0)]);
    }

    #[test]
    fn resets_are_detected_from_counts_and_layout() {
        let before = h(1, (0.001, 1.0), &[(1, 2.0), (2, 2.0)]);
        let more = h(1, (0.001, 1.0), &[(1, 3.0), (2, 2.0)]);
        assert!(!more.detect_reset(&before));
        let lost_bucket = h(1, (0.001, 1.0), &[(1, 5.0), (2, 1.0)]);
        assert!(lost_bucket.detect_reset(&before), "a bucket went down");
        let finer = h(2, (0.001, 1.0), &[(1, 9.0)]);
        assert!(finer.detect_reset(&before));
        let coarser = h(0, (0.001, 1.0), &[(1, 4.0), (2, 1.0)]);
        assert!(
            !coarser.detect_reset(&before),
            "schema 1's 1, 2 are schema 0's 1"
        );
        let mut hinted = more.clone();
        hinted.counter_reset_hint = CounterResetHint::CounterReset;
        assert!(hinted.detect_reset(&before));
    }

    #[test]
    fn sums_keep_a_compensation_and_means_survive_overflow() {
        let mut parts: Vec<Histogram> = (0..4).map(|_| h(0, (0.001, 1.0), &[(1, 2.0)])).collect();
        for (part, sum) in parts.iter_mut().zip([3.1, 1e100, -1e100, 1.3]) {
            part.sum = sum;
        }
        // A finer schema in the middle: its buckets are merged, the compensation kept.
        parts[2] = Histogram {
            sum: -1e100,
            ..h(1, (0.001, 1.0), &[(1, 1.0), (2, 1.0)])
        };
        let mut sum = HistogramSum::new(&parts[0]);
        for p in &parts[1..] {
            sum.add(p).unwrap();
        }
        let total = sum.finish();
        assert_eq!(total.sum, 4.4);
        assert_eq!(buckets(&total), vec![(1, 8.0)]);

        let big = h(0, (0.001, 0.0), &[(1, f64::MAX)]);
        let mut mean = HistogramMean::new(&big, true);
        mean.add(&big).unwrap();
        mean.add(&h(0, (0.001, 0.0), &[(1, 0.0)])).unwrap();
        let avg = mean.finish();
        assert!(!avg.has_overflow(), "{avg:?}");
        let [(1, bucket)] = buckets(&avg)[..] else {
            panic!("{avg:?}")
        };
        assert!((bucket / (f64::MAX / 3.0 * 2.0) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn hints_combine_as_prometheus_adjusts_them() {
        use CounterResetHint::*;
        assert_eq!(
            combined_hint(NotCounterReset, NotCounterReset),
            (NotCounterReset, false)
        );
        assert_eq!(combined_hint(NotCounterReset, Gauge), (Gauge, false));
        assert_eq!(combined_hint(Unknown, NotCounterReset), (Unknown, false));
        assert_eq!(
            combined_hint(CounterReset, NotCounterReset),
            (Unknown, true)
        );
    }

    #[test]
    fn histograms_are_read_with_the_hints_of_prometheus_chunks() {
        use CounterResetHint::*;
        let first = h(0, (0.001, 1.0), &[(1, 2.0)]);
        let more = h(0, (0.001, 1.0), &[(1, 3.0)]);
        let less = h(0, (0.001, 1.0), &[(1, 1.0)]);
        assert_eq!(read_hint(&first, None), Unknown, "a chunk's first");
        assert_eq!(read_hint(&more, Some(&first)), NotCounterReset);
        assert_eq!(
            read_hint(&less, Some(&more)),
            Unknown,
            "a reset starts a chunk"
        );
        let hinted = Histogram {
            counter_reset_hint: CounterReset,
            ..more.clone()
        };
        assert_eq!(
            read_hint(&hinted, Some(&first)),
            Unknown,
            "so does a reset hint"
        );
        let finer = h(1, (0.001, 1.0), &[(1, 3.0)]);
        assert_eq!(read_hint(&finer, Some(&first)), Unknown, "and a new schema");
        let gauge = Histogram {
            counter_reset_hint: Gauge,
            ..less.clone()
        };
        assert_eq!(read_hint(&gauge, Some(&more)), Gauge);
        assert_eq!(read_hint(&more, Some(&gauge)), Unknown);
    }
}
