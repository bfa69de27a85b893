//! Range-vector functions: each takes the samples of one series inside one window
//! `(T - range, T]` and returns at most one value, with Prometheus's semantics.

use crate::model::kahan::kahan_add;

/// A PromQL function over a range vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum RangeFunc {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    /// `predict_linear(v, t)`: parameter 0 is t in seconds.
    PredictLinear,
    Changes,
    Resets,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    SumOverTime,
    CountOverTime,
    LastOverTime,
    FirstOverTime,
    PresentOverTime,
    StddevOverTime,
    StdvarOverTime,
    /// Parameter 0 is φ.
    QuantileOverTime,
    MadOverTime,
    TsOfLastOverTime,
    TsOfFirstOverTime,
    TsOfMinOverTime,
    TsOfMaxOverTime,
    /// Parameters: smoothing factor, trend factor.
    DoubleExponentialSmoothing,
}

impl RangeFunc {
    pub fn from_name(name: &str) -> Option<RangeFunc> {
        Self::ALL.iter().find(|f| f.name() == name).copied()
    }

    pub const ALL: [RangeFunc; 26] = {
        use RangeFunc::*;
        [
            Rate,
            Increase,
            Delta,
            Irate,
            Idelta,
            Deriv,
            PredictLinear,
            Changes,
            Resets,
            AvgOverTime,
            MinOverTime,
            MaxOverTime,
            SumOverTime,
            CountOverTime,
            LastOverTime,
            FirstOverTime,
            PresentOverTime,
            StddevOverTime,
            StdvarOverTime,
            QuantileOverTime,
            MadOverTime,
            TsOfLastOverTime,
            TsOfFirstOverTime,
            TsOfMinOverTime,
            TsOfMaxOverTime,
            DoubleExponentialSmoothing,
        ]
    };

    /// The PromQL name.
    pub fn name(self) -> &'static str {
        use RangeFunc::*;
        match self {
            Rate => "rate",
            Increase => "increase",
            Delta => "delta",
            Irate => "irate",
            Idelta => "idelta",
            Deriv => "deriv",
            PredictLinear => "predict_linear",
            Changes => "changes",
            Resets => "resets",
            AvgOverTime => "avg_over_time",
            MinOverTime => "min_over_time",
            MaxOverTime => "max_over_time",
            SumOverTime => "sum_over_time",
            CountOverTime => "count_over_time",
            LastOverTime => "last_over_time",
            FirstOverTime => "first_over_time",
            PresentOverTime => "present_over_time",
            StddevOverTime => "stddev_over_time",
            StdvarOverTime => "stdvar_over_time",
            QuantileOverTime => "quantile_over_time",
            MadOverTime => "mad_over_time",
            TsOfLastOverTime => "ts_of_last_over_time",
            TsOfFirstOverTime => "ts_of_first_over_time",
            TsOfMinOverTime => "ts_of_min_over_time",
            TsOfMaxOverTime => "ts_of_max_over_time",
            DoubleExponentialSmoothing => "double_exponential_smoothing",
        }
    }

    /// Whether the result keeps the metric name (Prometheus keeps it only for these).
    pub fn keeps_name(self) -> bool {
        matches!(self, RangeFunc::LastOverTime | RangeFunc::FirstOverTime)
    }

    /// Whether the function reads the samples' start timestamps (Prometheus's start-time
    /// aware `rate`, `increase`, `irate` and `resets`).
    pub fn uses_start_timestamps(self) -> bool {
        matches!(
            self,
            RangeFunc::Rate | RangeFunc::Increase | RangeFunc::Irate | RangeFunc::Resets
        )
    }

    /// Computes the function over one window. `ts` (ms) and `vs` are the window's samples in
    /// time order (staleness markers already removed); `eval_ms` is the window's end, and
    /// `range_ms` its length.
    pub fn apply(
        self,
        ts: &[i64],
        vs: &[f64],
        eval_ms: i64,
        range_ms: i64,
        params: &[f64],
    ) -> Option<f64> {
        self.apply_with_starts(ts, vs, &[], eval_ms, range_ms, params)
    }

    /// [`RangeFunc::apply`] for samples whose start timestamps are known: `starts` is
    /// parallel to `ts` (0 where unknown) or empty when none is known.
    pub fn apply_with_starts(
        self,
        ts: &[i64],
        vs: &[f64],
        starts: &[i64],
        eval_ms: i64,
        range_ms: i64,
        params: &[f64],
    ) -> Option<f64> {
        use RangeFunc::*;
        if vs.is_empty() {
            return None;
        }
        let param = |i: usize| params.get(i).copied().unwrap_or(f64::NAN);
        let counter = Counter { ts, vs, starts };
        match self {
            Rate => extrapolated_rate(counter, eval_ms, range_ms, true, true),
            Increase => extrapolated_rate(counter, eval_ms, range_ms, true, false),
            Delta => extrapolated_rate(counter.without_starts(), eval_ms, range_ms, false, false),
            Irate => instant_delta(counter, true),
            Idelta => instant_delta(counter.without_starts(), false),
            Deriv => (vs.len() >= 2).then(|| linear_regression(ts, vs, ts[0]).0),
            PredictLinear => (vs.len() >= 2).then(|| {
                let (slope, intercept) = linear_regression(ts, vs, eval_ms);
                intercept + slope * param(0)
            }),
            Changes => Some(count_pairs(vs, |prev, cur| {
                !(cur == prev || (cur.is_nan() && prev.is_nan()))
            })),
            Resets => Some((1..vs.len()).filter(|i| counter.reset_at(*i)).count() as f64),
            AvgOverTime => Some(average(vs)),
            MinOverTime => Some(
                vs.iter()
                    .copied()
                    .fold(f64::NAN, |m, v| if v < m || m.is_nan() { v } else { m }),
            ),
            MaxOverTime => Some(
                vs.iter()
                    .copied()
                    .fold(f64::NAN, |m, v| if v > m || m.is_nan() { v } else { m }),
            ),
            SumOverTime => Some(kahan_sum(vs.iter().copied())),
            CountOverTime => Some(vs.len() as f64),
            LastOverTime => vs.last().copied(),
            FirstOverTime => vs.first().copied(),
            PresentOverTime => Some(1.0),
            StddevOverTime => Some(variance(vs).sqrt()),
            StdvarOverTime => Some(variance(vs)),
            QuantileOverTime => Some(quantile(param(0), vs.to_vec())),
            MadOverTime if vs.iter().any(|v| v.is_nan()) => Some(f64::NAN),
            MadOverTime => {
                let median = quantile(0.5, vs.to_vec());
                Some(quantile(
                    0.5,
                    vs.iter().map(|v| (v - median).abs()).collect(),
                ))
            }
            TsOfLastOverTime => ts.last().map(|t| *t as f64 / 1000.0),
            TsOfFirstOverTime => ts.first().map(|t| *t as f64 / 1000.0),
            TsOfMinOverTime => extreme_timestamp(ts, vs, |v, m| v <= m),
            TsOfMaxOverTime => extreme_timestamp(ts, vs, |v, m| v >= m),
            DoubleExponentialSmoothing => double_exponential_smoothing(vs, param(0), param(1)),
        }
    }
}

/// A window's samples seen as a counter: values, times and start timestamps (`starts`
/// parallel to `ts`, 0 where unknown, or empty when none is known).
#[derive(Clone, Copy)]
struct Counter<'a> {
    ts: &'a [i64],
    vs: &'a [f64],
    starts: &'a [i64],
}

impl Counter<'_> {
    fn without_starts(self) -> Self {
        Counter {
            starts: &[],
            ..self
        }
    }

    fn start(&self, i: usize) -> i64 {
        self.starts.get(i).copied().unwrap_or(0)
    }

    /// Whether the counter restarted between samples `i - 1` and `i`: its value fell, or
    /// its start time says so (see [`started_anew`]).
    fn reset_at(&self, i: usize) -> bool {
        self.vs[i] < self.vs[i - 1]
            || !self.starts.is_empty()
                && started_anew(
                    (self.ts[i - 1], self.start(i - 1)),
                    (self.ts[i], self.start(i)),
                )
    }

    fn start_inside(&self, range_start: i64) -> Option<i64> {
        start_inside((self.ts[0], self.start(0)), range_start)
    }
}

/// The first sample's start time (of `(t, start)`), when it lies inside the window
/// `(range_start, t)`: the counter was then zero, so the increase counts from there
/// instead of being extrapolated.
pub(super) fn start_inside((t, start): (i64, i64), range_start: i64) -> Option<i64> {
    (start != 0 && range_start < start && start < t).then_some(start)
}

/// Whether a sample at `t` with start time `start` began counting after the previous
/// sample `(prev_t, prev_start)`, as in Prometheus: its start lies in `(prev_t, t)`, or
/// equals `prev_t` while the previous sample had a valid start of its own (a delta
/// sample). An unknown (0) start, or a start equal to `prev_t` after a sample of unknown
/// or impossible start, says nothing.
pub(super) fn started_anew((prev_t, prev_start): (i64, i64), (t, start): (i64, i64)) -> bool {
    if start == 0 || start >= t {
        return false;
    }
    start > prev_t || (start == prev_t && prev_start != 0 && prev_start < prev_t)
}

/// Whether a sample's start time overlaps the previous sample, which Prometheus warns
/// about: a known start before the previous sample that is not the previous sample's own
/// start.
pub fn overlapping_start(ts: &[i64], starts: &[i64]) -> bool {
    (1..starts.len().min(ts.len()))
        .any(|i| starts[i] != 0 && starts[i] < ts[i - 1] && starts[i] != starts[i - 1])
}

/// `rate`, `increase` and `delta`: the change over the window, extrapolated towards the
/// window's edges (but not past where a counter would have been zero). A counter whose
/// first sample started inside the window counts from zero at that start instead of
/// extrapolating to the left.
fn extrapolated_rate(
    counter: Counter,
    eval_ms: i64,
    range_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let Counter { ts, vs, .. } = counter;
    let range_start = eval_ms - range_ms;
    let from_start = counter.start_inside(range_start).filter(|_| is_counter);
    if vs.len() < 2 && from_start.is_none() {
        return None;
    }
    let (first_t, last_t) = (ts[0], ts[ts.len() - 1]);
    let mut result = vs[vs.len() - 1] - vs[0];
    if is_counter {
        for i in 1..vs.len() {
            if counter.reset_at(i) {
                result += vs[i - 1];
            }
        }
    }
    let window = Extrapolation {
        first_t,
        last_t,
        samples: vs.len(),
        eval_ms,
        range_ms,
        from_start,
        is_rate,
    };
    let factor = window.factor(is_counter.then_some((vs[0], result)));
    if from_start.is_some() {
        result += vs[0];
    }
    Some(result * factor)
}

/// A window `rate`, `increase` and `delta` extrapolate over, of floats or histograms.
pub(super) struct Extrapolation {
    pub first_t: i64,
    pub last_t: i64,
    pub samples: usize,
    pub eval_ms: i64,
    pub range_ms: i64,
    /// The first sample's start time inside the window (see [`start_inside`]).
    pub from_start: Option<i64>,
    pub is_rate: bool,
}

impl Extrapolation {
    /// The factor the window's change is scaled by: extrapolated towards the window's
    /// edges (by at most half an average step beyond the samples), on the left not past
    /// where a counter would have been zero (`zero_point`: the first value and the
    /// change), or from the first sample's start time; per second for `rate`.
    pub fn factor(&self, zero_point: Option<(f64, f64)>) -> f64 {
        let seconds = |ms: i64| ms as f64 / 1000.0;
        let sampled = seconds(self.last_t - self.first_t);
        let average_step = sampled / (self.samples - 1).max(1) as f64;
        let threshold = average_step * 1.1;
        let mut to_end = seconds(self.eval_ms - self.last_t);
        if to_end >= threshold {
            to_end = average_step / 2.0;
        }
        let factor = match self.from_start {
            // A single sample gives no spacing to extrapolate with.
            Some(_) if self.samples == 1 => 1.0,
            Some(start) => {
                let counted = seconds(self.last_t - start);
                (counted + to_end) / counted
            }
            None => {
                let mut to_start = seconds(self.first_t - (self.eval_ms - self.range_ms));
                if to_start >= threshold {
                    to_start = average_step / 2.0;
                }
                if let Some((first, change)) = zero_point
                    && change > 0.0
                    && first >= 0.0
                {
                    let to_zero = sampled * (first / change);
                    if to_zero < to_start {
                        to_start = to_zero;
                    }
                }
                (sampled + to_start + to_end) / sampled
            }
        };
        match self.is_rate {
            true => factor / seconds(self.range_ms),
            false => factor,
        }
    }
}

/// `irate` and `idelta`: from the last two samples only.
fn instant_delta(counter: Counter, is_rate: bool) -> Option<f64> {
    let Counter { ts, vs, .. } = counter;
    let n = vs.len();
    if n < 2 {
        return None;
    }
    let (prev, last) = (vs[n - 2], vs[n - 1]);
    let mut result = if is_rate && counter.reset_at(n - 1) {
        last
    } else {
        last - prev
    };
    if is_rate {
        let dt = (ts[n - 1] - ts[n - 2]) as f64 / 1000.0;
        if dt == 0.0 {
            return None;
        }
        result /= dt;
    }
    Some(result)
}

/// Least-squares slope and intercept (at `intercept_ms`), times in seconds.
fn linear_regression(ts: &[i64], vs: &[f64], intercept_ms: i64) -> (f64, f64) {
    let n = vs.len() as f64;
    let (mut sum_x, mut sum_y, mut sum_xy, mut sum_x2) = (0.0, 0.0, 0.0, 0.0);
    let constant_y = vs.iter().all(|v| *v == vs[0]);
    for (t, v) in ts.iter().zip(vs) {
        let x = (*t - intercept_ms) as f64 / 1000.0;
        sum_x += x;
        sum_y += v;
        sum_xy += x * v;
        sum_x2 += x * x;
    }
    if constant_y {
        return (0.0, vs[0]);
    }
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

fn count_pairs(vs: &[f64], counts: impl Fn(f64, f64) -> bool) -> f64 {
    vs.windows(2).filter(|p| counts(p[0], p[1])).count() as f64
}

/// Kahan-compensated sum of `values` in order, as Prometheus sums.
pub fn kahan_sum(values: impl Iterator<Item = f64>) -> f64 {
    let mut sum = KahanSum::default();
    values.for_each(|v| sum.add(v));
    sum.value()
}

/// The mean: a Kahan sum divided by the count, switching to an incremental mean once the
/// sum would overflow (as Prometheus's `avg` does).
pub fn average(vs: &[f64]) -> f64 {
    // A plain running sum until it overflows, then `Mean` takes over from that value on:
    // `avg_over_time` runs this over every window, and the plain loop is twice as fast.
    let mut sum = KahanSum::default();
    for (i, v) in vs.iter().enumerate() {
        let before = sum;
        sum.add(*v);
        if sum.sum.is_infinite() && !v.is_infinite() {
            let mut mean = Mean {
                count: i as f64,
                sum: before,
                incremental: None,
            };
            vs[i..].iter().for_each(|v| mean.add(*v));
            return mean.value();
        }
    }
    sum.value() / vs.len() as f64
}

/// A running Kahan-compensated sum, fed one value at a time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KahanSum {
    sum: f64,
    c: f64,
}

impl KahanSum {
    /// The sum and its compensation, as a partial aggregate's state.
    pub fn from_parts(sum: f64, c: f64) -> Self {
        KahanSum { sum, c }
    }

    pub fn parts(self) -> (f64, f64) {
        (self.sum, self.c)
    }

    #[inline]
    pub fn add(&mut self, v: f64) {
        (self.sum, self.c) = kahan_add(v, self.sum, self.c);
    }

    /// Adds the partial sum of values that came after this one's.
    pub fn merge(&mut self, later: KahanSum) {
        self.add(later.sum);
        self.c += later.c;
    }

    pub fn value(self) -> f64 {
        if self.c.is_finite() {
            self.sum + self.c
        } else {
            self.sum
        }
    }
}

/// A running mean as Prometheus's `avg` computes it: a Kahan sum over the count, until the
/// sum would overflow; from then on an incremental (compensated) mean.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Mean {
    count: f64,
    sum: KahanSum,
    /// `(mean, compensation)` once the sum overflowed.
    incremental: Option<(f64, f64)>,
}

impl Mean {
    /// `(count, a, b, incremental)`: the state of a partial aggregate, `a` and `b` being
    /// the sum and its compensation, or the mean and its compensation once incremental.
    pub fn parts(self) -> (f64, f64, f64, bool) {
        match self.incremental {
            Some((mean, kc)) => (self.count, mean, kc, true),
            None => (self.count, self.sum.sum, self.sum.c, false),
        }
    }

    pub fn from_parts(count: f64, a: f64, b: f64, incremental: bool) -> Self {
        match incremental {
            true => Mean {
                count,
                sum: KahanSum::default(),
                incremental: Some((a, b)),
            },
            false => Mean {
                count,
                sum: KahanSum::from_parts(a, b),
                incremental: None,
            },
        }
    }

    #[inline]
    pub fn add(&mut self, v: f64) {
        self.count += 1.0;
        let n = self.count;
        match self.incremental.as_mut() {
            None => {
                let (s, k) = kahan_add(v, self.sum.sum, self.sum.c);
                if !s.is_infinite() || v.is_infinite() {
                    self.sum = KahanSum::from_parts(s, k);
                    return;
                }
                let before = n - 1.0;
                let (mean, kc) = (self.sum.sum / before, self.sum.c / before);
                let q = before / n;
                self.incremental = Some(kahan_add(v / n, q * mean, q * kc));
            }
            Some((mean, kc)) => {
                let q = (n - 1.0) / n;
                (*mean, *kc) = kahan_add(v / n, q * *mean, q * *kc);
            }
        }
    }

    /// Adds the partial mean of values that came after this one's. While neither side
    /// overflowed, the sums add exactly as one running sum would; otherwise the two means
    /// are weighted by their counts.
    pub fn merge(&mut self, later: Mean) {
        if later.count == 0.0 {
            return;
        }
        if self.count == 0.0 {
            *self = later;
            return;
        }
        let count = self.count + later.count;
        if self.incremental.is_none() && later.incremental.is_none() {
            let mut sum = self.sum;
            sum.merge(later.sum);
            if !sum.sum.is_infinite() {
                (self.sum, self.count) = (sum, count);
                return;
            }
        }
        let mean = self.value() * (self.count / count) + later.value() * (later.count / count);
        *self = Mean {
            count,
            sum: KahanSum::default(),
            incremental: Some((mean, 0.0)),
        };
    }

    pub fn value(self) -> f64 {
        match self.incremental {
            Some((mean, kc)) => mean + kc,
            None => self.sum.value() / self.count,
        }
    }
}

/// Population variance, with Welford's running mean as Prometheus computes it.
pub fn variance(vs: &[f64]) -> f64 {
    let (mut count, mut mean, mut m2) = (0.0f64, 0.0f64, 0.0f64);
    for v in vs {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        m2 += delta * (v - mean);
    }
    m2 / count
}

/// Prometheus's quantile: linear interpolation between closest ranks; φ outside [0, 1]
/// gives ∓Inf.
pub fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // NaN sorts first, as Go's sort.Float64s does.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0) as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let weight = rank - rank.floor();
    values[lower] * (1.0 - weight) + values[upper] * weight
}

fn extreme_timestamp(ts: &[i64], vs: &[f64], better: impl Fn(f64, f64) -> bool) -> Option<f64> {
    let mut best: Option<(f64, i64)> = None;
    for (t, v) in ts.iter().zip(vs) {
        best = match best {
            None => Some((*v, *t)),
            Some((m, _)) if m.is_nan() || better(*v, m) => Some((*v, *t)),
            keep => keep,
        };
    }
    best.map(|(_, t)| t as f64 / 1000.0)
}

fn double_exponential_smoothing(vs: &[f64], sf: f64, tf: f64) -> Option<f64> {
    if vs.len() < 2 || !(sf > 0.0 && sf < 1.0) || !(tf > 0.0 && tf < 1.0) {
        return None;
    }
    // Holt's linear method: s1 is the smoothed level, b the trend; the trend is first
    // updated from the previous two levels (except on the first step).
    let (mut s0, mut s1) = (0.0, vs[0]);
    let mut b = vs[1] - vs[0];
    for (i, v) in vs.iter().enumerate().skip(1) {
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let next = sf * v + (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = next;
    }
    Some(s1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_extrapolates_like_prometheus() {
        // 0, 10, 20, ... every 10 s over a 50 s window ending exactly at the last sample.
        let ts: Vec<i64> = (1..=5).map(|i| i * 10_000).collect();
        let vs: Vec<f64> = (1..=5).map(|i| (i * 10) as f64).collect();
        let r = RangeFunc::Rate
            .apply(&ts, &vs, 50_000, 50_000, &[])
            .unwrap();
        assert!((r - 1.0).abs() < 1e-9, "{r}");
        let inc = RangeFunc::Increase
            .apply(&ts, &vs, 50_000, 50_000, &[])
            .unwrap();
        assert!((inc - 50.0).abs() < 1e-9, "{inc}");
    }

    #[test]
    fn counter_resets_are_compensated() {
        let ts = [0, 10_000, 20_000];
        let vs = [5.0, 10.0, 2.0];
        assert_eq!(
            RangeFunc::Resets.apply(&ts, &vs, 20_000, 30_000, &[]),
            Some(1.0)
        );
        assert_eq!(
            RangeFunc::Irate.apply(&ts, &vs, 20_000, 30_000, &[]),
            Some(0.2)
        );
    }

    #[test]
    fn start_times_tell_restarts_apart_from_overlaps() {
        // (previous sample, this sample) as (t, start) pairs.
        let delta = ((60, 0), (120, 60));
        assert!(
            !started_anew(delta.0, delta.1),
            "unknown start before: cumulative"
        );
        assert!(
            started_anew((60, 30), (120, 60)),
            "delta sample after a valid start"
        );
        assert!(
            !started_anew((60, 90), (120, 60)),
            "previous start was impossible"
        );
        assert!(
            !started_anew((60, 60), (120, 60)),
            "same start: still counting"
        );
        assert!(
            started_anew((60, 30), (120, 61)),
            "started after the previous sample"
        );
        assert!(
            !started_anew((60, 30), (120, 120)),
            "an empty interval says nothing"
        );
        assert!(overlapping_start(&[60, 120], &[0, 30]));
        assert!(!overlapping_start(&[60, 120], &[30, 30]));
        assert!(!overlapping_start(&[60, 120], &[30, 60]));
    }

    #[test]
    fn increase_counts_from_a_start_inside_the_window() {
        // A counter that started at 90s, sampled at 120s..300s, window (60s, 360s].
        let ts = [120_000, 180_000, 240_000, 300_000];
        let vs = [1.0, 2.0, 3.0, 4.0];
        let starts = [90_000; 4];
        let increase = |starts: &[i64]| {
            RangeFunc::Increase.apply_with_starts(&ts, &vs, starts, 360_000, 300_000, &[])
        };
        // 4 since 90s, extrapolated one step to the right only: 4 × 270 / 210.
        assert_eq!(increase(&starts), Some(4.0 * 270.0 / 210.0));
        // Unknown starts fall back to extrapolating both ways.
        assert_eq!(increase(&[]), Some(5.0));
        // A lone sample whose counter started inside the window is its own increase.
        assert_eq!(
            RangeFunc::Increase.apply_with_starts(
                &[240_000],
                &[3.0],
                &[150_000],
                360_000,
                300_000,
                &[]
            ),
            Some(3.0)
        );
    }

    #[test]
    fn quantile_interpolates() {
        assert_eq!(quantile(0.5, vec![1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(quantile(2.0, vec![1.0]), f64::INFINITY);
    }
}
