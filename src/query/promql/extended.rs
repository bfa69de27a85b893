//! Anchored and smoothed windows: Prometheus's extended range selectors.
//!
//! A plain window `(T - range, T]` extrapolates `rate` and friends towards its edges. An
//! *anchored* window instead starts at the last sample at or before `T - range` (looking
//! back at most the lookback delta), so increases between windows add up exactly. A
//! *smoothed* window interpolates the value at both edges from the samples around them
//! (looking the lookback delta past each edge), and a smoothed instant selector
//! interpolates the value at `T` the same way.

use super::functions::RangeFunc;
use super::syntax::SelectorMode;
use crate::model::Histogram;
use crate::model::histogram::CounterResetHint;

/// Functions a mode may be used with, sorted as Prometheus lists them in its error.
fn allowed(mode: SelectorMode) -> &'static [&'static str] {
    match mode {
        SelectorMode::Plain => &[],
        SelectorMode::Anchored => &["changes", "delta", "increase", "rate", "resets"],
        SelectorMode::Smoothed => &["delta", "increase", "rate"],
    }
}

/// Prometheus's error when `function` cannot take a window of this mode.
pub fn check(mode: SelectorMode, function: &str) -> Result<(), String> {
    let allowed = allowed(mode);
    if mode == SelectorMode::Plain || allowed.contains(&function) {
        return Ok(());
    }
    let keyword = if mode == SelectorMode::Anchored {
        "anchored"
    } else {
        "smoothed"
    };
    Err(format!(
        "{keyword} modifier can only be used with: {} - not with {function}",
        allowed.join(", ")
    ))
}

/// What an extended window computes with: floats, or native histograms (of one kind: a
/// window mixing them has no result).
pub trait Value: Clone {
    /// `self - other`; None when the two cannot be combined (histograms of exponential and
    /// custom buckets).
    fn minus(&self, other: &Self) -> Option<Self>;
    fn plus(&self, other: &Self) -> Option<Self>;
    /// `self + (next - self) * num / den`: the line from this value to `next`.
    fn towards(&self, next: &Self, num: f64, den: f64) -> Option<Self>;
    /// Whether a counter reset happened between `previous` and this value.
    fn reset_since(&self, previous: &Self) -> bool;
    /// A counter restarted from nothing.
    fn zero(&self) -> Self;
}

impl Value for f64 {
    fn minus(&self, other: &f64) -> Option<f64> {
        Some(self - other)
    }
    fn plus(&self, other: &f64) -> Option<f64> {
        Some(self + other)
    }
    fn towards(&self, next: &f64, num: f64, den: f64) -> Option<f64> {
        Some(self + (next - self) * num / den)
    }
    fn reset_since(&self, previous: &f64) -> bool {
        self < previous
    }
    fn zero(&self) -> f64 {
        0.0
    }
}

impl Value for Histogram {
    fn minus(&self, other: &Histogram) -> Option<Histogram> {
        self.sub(other).ok()
    }
    fn plus(&self, other: &Histogram) -> Option<Histogram> {
        self.add(other).ok()
    }
    fn towards(&self, next: &Histogram, num: f64, den: f64) -> Option<Histogram> {
        self.plus(&next.minus(self)?.scale(num / den))
    }
    fn reset_since(&self, previous: &Histogram) -> bool {
        self.detect_reset(previous)
    }
    fn zero(&self) -> Histogram {
        self.scale(0.0)
    }
}

/// `func` over an extended window ending at `end` (ms). `ts`/`vs` hold the samples in
/// `(end - range - lookback, end]`, plus `(end, end + lookback]` when smoothed, in time
/// order without staleness markers.
pub fn apply(
    func: RangeFunc,
    ts: &[i64],
    vs: &[f64],
    end: i64,
    range: i64,
    mode: SelectorMode,
) -> Option<f64> {
    if ts.is_empty() {
        return None;
    }
    let start = end - range;
    let smoothed = mode == SelectorMode::Smoothed;
    match func {
        RangeFunc::Rate => {
            boundary_change(ts, vs, start, end, smoothed, true).map(|v| v / (range as f64 / 1000.0))
        }
        RangeFunc::Increase => boundary_change(ts, vs, start, end, smoothed, true),
        RangeFunc::Delta => boundary_change(ts, vs, start, end, smoothed, false),
        RangeFunc::Changes | RangeFunc::Resets => {
            let first = anchor_index(ts, start)?;
            func.apply(&ts[first..], &vs[first..], end, range, &[])
        }
        _ => None,
    }
}

/// What an extended window of native histograms gives: a histogram (`rate`, `increase`,
/// `delta`) or a count (`changes`, `resets`).
#[derive(Debug, Clone, PartialEq)]
pub enum HistogramResult {
    Histogram(Histogram),
    Count(f64),
}

/// [`apply`] over native histograms (`hs` parallel to `ts`).
pub fn apply_histograms(
    func: RangeFunc,
    ts: &[i64],
    hs: &[Histogram],
    end: i64,
    range: i64,
    mode: SelectorMode,
) -> Option<HistogramResult> {
    if ts.is_empty() {
        return None;
    }
    let start = end - range;
    let smoothed = mode == SelectorMode::Smoothed;
    let change = |counter: bool| boundary_change(ts, hs, start, end, smoothed, counter);
    match func {
        RangeFunc::Rate => {
            let mut h = change(true)?.div(range as f64 / 1000.0);
            h.counter_reset_hint = CounterResetHint::Gauge;
            Some(HistogramResult::Histogram(h))
        }
        RangeFunc::Increase | RangeFunc::Delta => {
            let mut h = change(func == RangeFunc::Increase)?;
            h.counter_reset_hint = CounterResetHint::Gauge;
            Some(HistogramResult::Histogram(h))
        }
        RangeFunc::Changes | RangeFunc::Resets => {
            let first = anchor_index(ts, start)?;
            let window = &hs[first..];
            let counted = window.windows(2).filter(|w| match func {
                RangeFunc::Resets => w[1].reset_since(&w[0]),
                _ => !w[1].same_as(&w[0]),
            });
            Some(HistogramResult::Count(counted.count() as f64))
        }
        _ => None,
    }
}

/// The index of the sample anchoring a window starting at `start`: the last one at or
/// before it, else the first. None when no sample lies after `start`.
pub fn anchor_index(ts: &[i64], start: i64) -> Option<usize> {
    let after = ts.partition_point(|&t| t <= start);
    (after < ts.len()).then(|| after.saturating_sub(1))
}

/// The value at the window's right edge minus the value at its left edge (picked or
/// interpolated), corrected for counter resets inside when `counter`.
fn boundary_change<V: Value>(
    ts: &[i64],
    vs: &[V],
    start: i64,
    end: i64,
    smoothed: bool,
    counter: bool,
) -> Option<V> {
    let mut last = ts.len() - 1;
    let first = ts[..last]
        .partition_point(|&t| t <= start)
        .saturating_sub(1);
    if smoothed {
        last = ts[..last].partition_point(|&t| t < end);
    }
    if ts[last] <= start || (smoothed && ts[first] > end) {
        return None;
    }
    let left = if smoothed && ts[first] < start {
        interpolate(ts, vs, first, start, counter)?
    } else {
        vs[first].clone()
    };
    let right = if smoothed && last > 0 && ts[last] > end {
        interpolate(ts, vs, last - 1, end, counter)?
    } else {
        vs[last].clone()
    };
    let mut change = right.minus(&left)?;
    if counter {
        // Only samples strictly inside the window: the edges handled their own resets.
        let inner_first = first + usize::from(ts[first] <= start);
        let inner_end = if ts[last] >= end { last } else { last + 1 };
        let inner = vs
            .get(inner_first..inner_end.max(inner_first))
            .unwrap_or(&[]);
        let correction = reset_correction(&left, &right, inner).unwrap_or_else(|| left.zero());
        change = change.plus(&correction)?;
    }
    Some(change)
}

/// The value at `t` on the line between samples `i` and `i + 1`; a counter that reset
/// between them is taken to have restarted from zero.
fn interpolate<V: Value>(ts: &[i64], vs: &[V], i: usize, t: i64, counter: bool) -> Option<V> {
    let (t1, t2) = (ts[i], ts[i + 1]);
    let (y1, y2) = (&vs[i], &vs[i + 1]);
    let from = if counter && y2.reset_since(y1) {
        y1.zero()
    } else {
        y1.clone()
    };
    from.towards(y2, (t - t1) as f64, (t2 - t1) as f64)
}

/// What counter resets between `left`, the inner samples and `right` took away (None when
/// nothing was reset).
fn reset_correction<V: Value>(left: &V, right: &V, inner: &[V]) -> Option<V> {
    let mut correction: Option<V> = None;
    let mut prev = left;
    for v in inner.iter().chain(std::iter::once(right)) {
        if v.reset_since(prev) {
            correction = Some(match correction {
                Some(c) => c.plus(prev)?,
                None => prev.clone(),
            });
        }
        prev = v;
    }
    correction
}

/// A smoothed instant selection at `at`: the sample at `at`, else the interpolation between
/// the samples around it, else the last sample before it. `ts`/`vs` hold the samples in
/// `(at - lookback, at + lookback]`. A `counter` that reset between the two samples is
/// taken to have restarted from zero (native histograms that are not gauges; floats are
/// interpolated as they are).
pub fn smoothed_instant<V: Value>(ts: &[i64], vs: &[V], at: i64, counter: bool) -> Option<V> {
    let i = ts.partition_point(|&t| t < at);
    match (ts.get(i), i) {
        (Some(&t), _) if t == at => Some(vs[i].clone()),
        (Some(_), i) if i > 0 => interpolate(ts, vs, i - 1, at, counter),
        (None, i) if i > 0 => Some(vs[i - 1].clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Samples every 15s: 1 2 3 4 5 at 0..60s, then 9 10 11 12 13 (a reset-free jump).
    fn series() -> (Vec<i64>, Vec<f64>) {
        let ts = (0..10).map(|i| i * 15_000).collect();
        let vs = vec![1.0, 2.0, 3.0, 4.0, 5.0, 9.0, 10.0, 11.0, 12.0, 13.0];
        (ts, vs)
    }

    fn window(ts: &[i64], vs: &[f64], lo: i64, hi: i64) -> (Vec<i64>, Vec<f64>) {
        ts.iter()
            .zip(vs)
            .filter(|(t, _)| **t > lo && **t <= hi)
            .map(|(t, v)| (*t, *v))
            .unzip()
    }

    fn increase_at(at: i64, mode: SelectorMode) -> Option<f64> {
        let (ts, vs) = series();
        let lookback = 300_000;
        let hi = if mode == SelectorMode::Smoothed {
            at + lookback
        } else {
            at
        };
        let (wt, wv) = window(&ts, &vs, at - 60_000 - lookback, hi);
        apply(RangeFunc::Increase, &wt, &wv, at, 60_000, mode)
    }

    #[test]
    fn anchored_increase_matches_prometheus() {
        // Values from Prometheus's extended_vectors.test.
        let expected = [
            (5, 0.0),
            (20, 1.0),
            (50, 3.0),
            (65, 4.0),
            (80, 7.0),
            (125, 7.0),
        ];
        for (s, want) in expected {
            assert_eq!(
                increase_at(s * 1000, SelectorMode::Anchored),
                Some(want),
                "at {s}s"
            );
        }
    }

    #[test]
    fn smoothed_increase_matches_prometheus() {
        let expected = [
            (5, 1.0 / 3.0),
            (20, 4.0 / 3.0),
            (65, 5.0),
            (80, 7.0),
            (125, 6.0),
        ];
        for (s, want) in expected {
            let got = increase_at(s * 1000, SelectorMode::Smoothed).unwrap();
            assert!((got - want).abs() < 1e-9, "at {s}s: {got} != {want}");
        }
    }

    #[test]
    fn counter_resets_inside_the_window_are_corrected() {
        // 5 8 2 4 at 0,10,20,30s: anchored increase over (0, 30] is 3 + 2 + 2 = 7.
        let ts = [0, 10_000, 20_000, 30_000];
        let vs = [5.0, 8.0, 2.0, 4.0];
        let got = apply(
            RangeFunc::Increase,
            &ts,
            &vs,
            30_000,
            30_000,
            SelectorMode::Anchored,
        );
        assert_eq!(got, Some(7.0));
        let delta = apply(
            RangeFunc::Delta,
            &ts,
            &vs,
            30_000,
            30_000,
            SelectorMode::Anchored,
        );
        assert_eq!(delta, Some(-1.0));
    }

    #[test]
    fn anchored_changes_count_from_the_anchor() {
        let ts = [0, 60_000, 120_000];
        let vs = [1.0, 2.0, 2.0];
        let got = apply(
            RangeFunc::Changes,
            &ts,
            &vs,
            120_000,
            60_000,
            SelectorMode::Anchored,
        );
        assert_eq!(got, Some(0.0));
        let got = apply(
            RangeFunc::Changes,
            &ts,
            &vs,
            60_000,
            60_000,
            SelectorMode::Anchored,
        );
        assert_eq!(got, Some(1.0));
    }

    #[test]
    fn only_safe_functions_take_extended_windows() {
        assert!(check(SelectorMode::Anchored, "resets").is_ok());
        assert_eq!(
            check(SelectorMode::Smoothed, "resets").unwrap_err(),
            "smoothed modifier can only be used with: delta, increase, rate - not with resets"
        );
        assert!(check(SelectorMode::Plain, "deriv").is_ok());
    }

    #[test]
    fn smoothed_instant_interpolates() {
        let ts = [0, 10_000, 20_000];
        let vs = [0.0, 10.0, 20.0];
        assert_eq!(smoothed_instant(&ts, &vs, 10_000, false), Some(10.0));
        assert_eq!(smoothed_instant(&ts, &vs, 15_000, false), Some(15.0));
        assert_eq!(smoothed_instant(&ts, &vs, 25_000, false), Some(20.0));
        assert_eq!(smoothed_instant(&ts[1..], &vs[1..], 5_000, false), None);
    }
}
