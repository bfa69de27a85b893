//! PromQL's functions of native histograms (`histogram_count`, `histogram_sum`,
//! `histogram_avg`, `histogram_stddev`, `histogram_stdvar`, and `histogram_quantile` and
//! `histogram_fraction` of native histograms) as UDFs over the `histogram` column a plan
//! carries; null on a float's row, which the planner then drops, as Prometheus ignores
//! float samples in these functions.

use std::sync::Arc;

use arrow::array::{Array, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

use crate::model::Histogram;
use crate::model::histogram::CounterResetHint;
use crate::model::histogram_ops::HistogramMean;
use crate::storage::histogram_arrow::{HistogramColumn, histogram_type};

use crate::model::kahan::kahan_add;

use super::functions::{Extrapolation, RangeFunc, start_inside, started_anew};
use super::native_binary::Notes;

/// What a histogram function computes of each histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramStat {
    Count,
    Sum,
    Avg,
    StdDev,
    StdVar,
}

impl HistogramStat {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "histogram_count" => HistogramStat::Count,
            "histogram_sum" => HistogramStat::Sum,
            "histogram_avg" => HistogramStat::Avg,
            "histogram_stddev" => HistogramStat::StdDev,
            "histogram_stdvar" => HistogramStat::StdVar,
            _ => return None,
        })
    }

    fn udf_name(self) -> &'static str {
        match self {
            HistogramStat::Count => "prom_histogram_count",
            HistogramStat::Sum => "prom_histogram_sum",
            HistogramStat::Avg => "prom_histogram_avg",
            HistogramStat::StdDev => "prom_histogram_stddev",
            HistogramStat::StdVar => "prom_histogram_stdvar",
        }
    }

    pub fn apply(self, h: &Histogram) -> f64 {
        match self {
            HistogramStat::Count => h.count,
            HistogramStat::Sum => h.sum,
            HistogramStat::Avg => h.sum / h.count,
            HistogramStat::StdDev => variance(h).sqrt(),
            HistogramStat::StdVar => variance(h),
        }
    }

    /// The function as a UDF of the `histogram` column.
    pub fn udf(self) -> ScalarUDF {
        create_udf(
            self.udf_name(),
            vec![histogram_type()],
            DataType::Float64,
            Volatility::Immutable,
            Arc::new(move |args: &[ColumnarValue]| {
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let column = HistogramColumn::new(arrays[0].as_ref()).ok_or_else(|| {
                    DataFusionError::Internal("expected a histogram column".into())
                })?;
                let out: Float64Array = (0..arrays[0].len())
                    .map(|i| column.get(i).map(|h| self.apply(&h)))
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }),
        )
    }
}

/// The functions of native histograms SQL offers over the `histogram` column, as PromQL
/// computes them: `prom_histogram_count`, `_sum`, `_avg`, `_stddev`, `_stdvar(histogram)`,
/// `prom_histogram_quantile(φ, histogram)` and `prom_histogram_fraction(lower, upper,
/// histogram)`; null on a float's row.
pub fn sql_udfs() -> Vec<ScalarUDF> {
    use HistogramStat::*;
    let mut udfs: Vec<ScalarUDF> = [Count, Sum, Avg, StdDev, StdVar]
        .into_iter()
        .map(HistogramStat::udf)
        .collect();
    udfs.push(create_udf(
        "prom_histogram_quantile",
        vec![DataType::Float64, histogram_type()],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let (q, column) = (floats(&arrays[0])?, histograms(&arrays[1])?);
            let out: Float64Array = (0..q.len())
                .map(|i| {
                    let h = column.get(i).filter(|_| q.is_valid(i))?;
                    Some(quantile(q.value(i), &h))
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    ));
    udfs.push(create_udf(
        "prom_histogram_fraction",
        vec![DataType::Float64, DataType::Float64, histogram_type()],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let (lower, upper) = (floats(&arrays[0])?, floats(&arrays[1])?);
            let column = histograms(&arrays[2])?;
            let out: Float64Array = (0..lower.len())
                .map(|i| {
                    let bounds = lower.is_valid(i) && upper.is_valid(i);
                    let h = column.get(i).filter(|_| bounds)?;
                    Some(fraction(lower.value(i), upper.value(i), &h))
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    ));
    udfs
}

/// What a range function gives for a window: a number or a histogram.
#[derive(Debug, Clone, PartialEq)]
pub enum RangeValue {
    Float(f64),
    Histogram(Histogram),
}

/// Whether `func` reads native histograms (the others read float samples only): those that
/// give histograms, and those that count samples.
pub fn reads_histograms(func: RangeFunc) -> bool {
    use RangeFunc::*;
    gives_histograms(func)
        || matches!(
            func,
            CountOverTime
                | PresentOverTime
                | Changes
                | Resets
                | TsOfFirstOverTime
                | TsOfLastOverTime
        )
}

/// Whether `func` reads the floats of a window and, when the window also holds native
/// histograms, tells so with Prometheus's info ("ignored histograms in a range containing
/// both floats and histograms").
pub fn ignores_histograms_with_info(func: RangeFunc) -> bool {
    use RangeFunc::*;
    matches!(
        func,
        Deriv
            | PredictLinear
            | DoubleExponentialSmoothing
            | StddevOverTime
            | StdvarOverTime
            | MadOverTime
            | QuantileOverTime
            | MinOverTime
            | MaxOverTime
            | TsOfMinOverTime
            | TsOfMaxOverTime
    )
}

/// Whether `func` of native histograms gives histograms.
pub fn gives_histograms(func: RangeFunc) -> bool {
    use RangeFunc::*;
    matches!(
        func,
        Rate | Increase
            | Delta
            | Irate
            | Idelta
            | SumOverTime
            | AvgOverTime
            | LastOverTime
            | FirstOverTime
    )
}

/// What a range function over histograms found that Prometheus annotates.
#[derive(Debug, Default)]
pub struct WindowNotes {
    pub reconciled: Option<Reconciled>,
    /// Histograms summed with a counter reset hint and a no-reset hint.
    pub hints_collide: bool,
}

/// Custom-bucket histograms with different bounds that a range function combined on the
/// bounds they share, which Prometheus notes with an info naming the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    Aggregation,
    Subtraction,
    Addition,
}

impl Reconciled {
    /// The operation as Prometheus's info names it.
    pub fn name(self) -> &'static str {
        match self {
            Reconciled::Aggregation => "aggregation",
            Reconciled::Subtraction => "subtraction",
            Reconciled::Addition => "addition",
        }
    }

    /// Whether combining `a` and `b` reconciles their custom bounds.
    fn differ(a: &Histogram, b: &Histogram) -> bool {
        a.uses_custom_buckets() && b.uses_custom_buckets() && a.custom_values != b.custom_values
    }
}

/// One sample of a window: its time, and a histogram or a float.
pub type WindowSample<'a> = (i64, Result<&'a Histogram, f64>);

/// A range function over a window that holds native histograms (`samples` in time order,
/// staleness markers removed), as Prometheus computes it. A window mixing floats and
/// histograms gives nothing for the functions that combine values (Prometheus warns), and
/// histograms that cannot be combined (exponential and custom buckets) give nothing.
/// What Prometheus notes about the window (custom bounds reconciled, counter reset hints
/// that collide) goes to `notes`.
/// `starts` are the samples' start timestamps (0 where unknown), or empty when none is
/// known: a counter whose start time moved on was reset.
pub fn apply_range(
    func: RangeFunc,
    samples: &[WindowSample<'_>],
    starts: &[i64],
    eval_ms: i64,
    range_ms: i64,
    notes: &mut WindowNotes,
) -> Option<RangeValue> {
    use RangeFunc::*;
    let first = samples.first()?;
    let last = samples.last()?;
    // Whether sample `i`'s start time says the counter restarted after sample `i - 1`.
    let anew = |i: usize| {
        !starts.is_empty()
            && started_anew((samples[i - 1].0, starts[i - 1]), (samples[i].0, starts[i]))
    };
    let value = |s: &WindowSample<'_>| match s.1 {
        Ok(h) => RangeValue::Histogram(h.clone()),
        Err(f) => RangeValue::Float(f),
    };
    match func {
        CountOverTime => return Some(RangeValue::Float(samples.len() as f64)),
        TsOfFirstOverTime => return Some(RangeValue::Float(first.0 as f64 / 1000.0)),
        TsOfLastOverTime => return Some(RangeValue::Float(last.0 as f64 / 1000.0)),
        // The last two samples alone: floats give a float, histograms a histogram.
        Irate | Idelta => {
            let [.., (t0, a), (t1, b)] = samples else {
                return None;
            };
            let rate = func == Irate;
            let n = samples.len();
            let last_starts = starts.get(n - 2..).unwrap_or(&[]);
            return match (a, b) {
                (Ok(h0), Ok(h1)) => {
                    let reset = rate && (h1.detect_reset(h0) || anew(n - 1));
                    instant_delta((*t0, *h0), (*t1, *h1), rate, reset, notes)
                        .map(RangeValue::Histogram)
                }
                (Err(f0), Err(f1)) => func
                    .apply_with_starts(
                        &[*t0, *t1],
                        &[*f0, *f1],
                        last_starts,
                        eval_ms,
                        range_ms,
                        &[],
                    )
                    .map(RangeValue::Float),
                _ => None,
            };
        }
        PresentOverTime => return Some(RangeValue::Float(1.0)),
        LastOverTime => return Some(value(last)),
        FirstOverTime => return Some(value(first)),
        // Counted across floats and histograms alike: a switch between them is a change,
        // and a reset.
        Changes | Resets => {
            let counted =
                (1..samples.len()).filter(|&i| match (&samples[i - 1].1, &samples[i].1) {
                    (Ok(a), Ok(b)) if func == Changes => !b.same_as(a),
                    (Ok(a), Ok(b)) => b.detect_reset(a) || anew(i),
                    (Err(a), Err(b)) if func == Changes => !(a == b || (a.is_nan() && b.is_nan())),
                    (Err(a), Err(b)) => b < a || anew(i),
                    _ => true,
                });
            return Some(RangeValue::Float(counted.count() as f64));
        }
        _ => {}
    }
    let histograms: Vec<(i64, &Histogram)> = samples
        .iter()
        .filter_map(|(t, v)| v.ok().map(|h| (*t, h)))
        .collect();
    if histograms.len() != samples.len() {
        return None;
    }
    match func {
        SumOverTime | AvgOverTime => {
            let mut sum = HistogramMean::new(histograms[0].1, func == AvgOverTime);
            for (_, h) in &histograms[1..] {
                sum.add(h).ok()?;
            }
            if sum.bounds_reconciled() {
                notes.reconciled = Some(Reconciled::Aggregation);
            }
            notes.hints_collide |= sum.hints_collide();
            Some(RangeValue::Histogram(sum.finish()))
        }
        Rate | Increase | Delta => {
            let counter = func != Delta;
            let resets: Vec<bool> = (0..histograms.len())
                .map(|i| {
                    counter
                        && i > 0
                        && (histograms[i].1.detect_reset(histograms[i - 1].1) || anew(i))
                })
                .collect();
            let window = Extrapolation {
                first_t: histograms[0].0,
                last_t: histograms[histograms.len() - 1].0,
                samples: histograms.len(),
                eval_ms,
                range_ms,
                from_start: match counter && !starts.is_empty() {
                    true => start_inside((histograms[0].0, starts[0]), eval_ms - range_ms),
                    false => None,
                },
                is_rate: func == Rate,
            };
            extrapolated_rate(&histograms, &resets, counter, &window, notes)
                .map(RangeValue::Histogram)
        }
        _ => None,
    }
}

/// The increase of a window of histograms, counter resets added back for counters
/// (Prometheus's `histogramRate`), with the gauge hint.
fn histogram_increase(
    histograms: &[(i64, &Histogram)],
    resets: &[bool],
    notes: &mut WindowNotes,
) -> Option<Histogram> {
    let (_, last) = histograms.last()?;
    let mut prev = histograms[0].1.clone();
    // A reset between the first two samples: count the second from zero.
    if resets.get(1) == Some(&true)
        && let Some((_, second)) = histograms.get(1)
    {
        prev = Histogram {
            schema: second.schema,
            zero_threshold: second.zero_threshold,
            custom_values: second.custom_values.clone(),
            ..Default::default()
        };
    }
    let mut result = (*last).sub(&prev).ok()?;
    if Reconciled::differ(last, &prev) {
        notes.reconciled = Some(Reconciled::Subtraction);
    }
    // Each later reset adds back what the counter had before it.
    for i in 2..histograms.len() {
        if resets[i] {
            let before = histograms[i - 1].1;
            if Reconciled::differ(&result, before) {
                notes.reconciled = Some(Reconciled::Addition);
            }
            result = result.add(before).ok()?;
        }
    }
    result.counter_reset_hint = CounterResetHint::Gauge;
    Some(result)
}

/// `rate`, `increase` and `delta` of histograms: the increase (the counter resets
/// `resets` marks added back), extrapolated over `window` as for floats (a counter towards
/// its zero point by its count, or from its start time).
fn extrapolated_rate(
    histograms: &[(i64, &Histogram)],
    resets: &[bool],
    counter: bool,
    window: &Extrapolation,
    notes: &mut WindowNotes,
) -> Option<Histogram> {
    if histograms.len() < 2 && window.from_start.is_none() {
        return None;
    }
    let mut result = histogram_increase(histograms, resets, notes)?;
    let first = histograms[0].1;
    let factor = window.factor(counter.then_some((first.count, result.count)));
    if window.from_start.is_some() {
        result = result.add(first).ok()?;
    }
    let mut scaled = result.scale(factor);
    scaled.counter_reset_hint = CounterResetHint::Gauge;
    Some(scaled)
}

/// `irate` and `idelta` of histograms: the last two samples' difference (for `irate`, the
/// last sample alone after a reset), per second for `irate`.
fn instant_delta(
    (t0, h0): (i64, &Histogram),
    (t1, h1): (i64, &Histogram),
    rate: bool,
    reset: bool,
    notes: &mut WindowNotes,
) -> Option<Histogram> {
    let mut result = if reset {
        (*h1).clone()
    } else {
        if Reconciled::differ(h1, h0) {
            notes.reconciled = Some(Reconciled::Subtraction);
        }
        h1.sub(h0).ok()?
    };
    if rate {
        result = result.scale(1000.0 / (t1 - t0) as f64);
    }
    result.counter_reset_hint = CounterResetHint::Gauge;
    Some(result)
}

/// `prom_histogram_sum(histogram, labels)` (or `prom_histogram_avg` when `mean`): the Kahan sum
/// (or mean) of a group's native histograms, null rows (the floats') left out; null when
/// there is none, or when they cannot be added (exponential and custom buckets mixed),
/// where Prometheus gives no result. Hints that collide (a counter reset and none) give
/// Prometheus's warning, custom buckets added on the bounds they share its info, and
/// exponential and custom buckets mixed its warning naming the metric (from `labels`),
/// recorded in `notes`.
pub fn sum_udaf(mean: bool, notes: Notes) -> datafusion::logical_expr::AggregateUDF {
    let name = if mean {
        "prom_histogram_avg"
    } else {
        "prom_histogram_sum"
    };
    datafusion::logical_expr::create_udaf(
        name,
        vec![histogram_type(), DataType::Utf8],
        Arc::new(histogram_type()),
        Volatility::Immutable,
        Arc::new(move |_| {
            Ok(Box::new(SumAccumulator {
                mean,
                running: None,
                failed: false,
                notes: notes.clone(),
            }))
        }),
        Arc::new(vec![histogram_type(), DataType::Float64, DataType::Boolean]),
    )
}

/// The running sum or mean of [`sum_udaf`].
#[derive(Debug)]
struct SumAccumulator {
    mean: bool,
    running: Option<HistogramMean>,
    /// Two histograms could not be added: the group has no result.
    failed: bool,
    notes: Notes,
}

impl SumAccumulator {
    fn add(&mut self, h: &Histogram) {
        if self.failed {
            return;
        }
        match &mut self.running {
            None => self.running = Some(HistogramMean::new(h, self.mean)),
            Some(running) => self.failed = running.add(h).is_err(),
        }
    }

    /// Another partition's partial result: a sum, or a mean of `n` histograms.
    fn merge(&mut self, h: &Histogram, n: f64) {
        if self.failed {
            return;
        }
        let partial = HistogramMean::partial(h, n, self.mean);
        match &mut self.running {
            None => self.running = Some(partial),
            Some(running) => self.failed = running.merge(&partial).is_err(),
        }
    }

    fn value(&self) -> datafusion::common::Result<datafusion::common::ScalarValue> {
        let row = match (&self.running, self.failed) {
            (Some(running), false) => Some(Arc::new(running.finish())),
            _ => None,
        };
        let array = crate::storage::histogram_arrow::to_array(&[row]);
        datafusion::common::ScalarValue::try_from_array(&array, 0)
    }
}

impl datafusion::logical_expr::Accumulator for SumAccumulator {
    fn update_batch(
        &mut self,
        values: &[arrow::array::ArrayRef],
    ) -> datafusion::common::Result<()> {
        let column = histograms(&values[0])?;
        let labels = values[1]
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .ok_or_else(|| DataFusionError::Internal("expected label sets".into()))?;
        for i in 0..values[0].len() {
            if let Some(h) = column.get(i) {
                self.add(&h);
                if self.failed {
                    // Prometheus names the metric of the histogram that did not add up.
                    let metric =
                        super::labels::get(labels.value(i), crate::model::METRIC_NAME_LABEL)
                            .unwrap_or("");
                    record(
                        &self.notes.warnings,
                        format!(
                            "PromQL warning: vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?}{}",
                            self.notes.position
                        ),
                    );
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[arrow::array::ArrayRef]) -> datafusion::common::Result<()> {
        let column = histograms(&states[0])?;
        let counts = states[1]
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| DataFusionError::Internal("expected a float64 state".into()))?;
        let failed = states[2]
            .as_any()
            .downcast_ref::<arrow::array::BooleanArray>()
            .ok_or_else(|| DataFusionError::Internal("expected a boolean state".into()))?;
        for i in 0..states[0].len() {
            if failed.is_valid(i) && failed.value(i) {
                self.failed = true;
            }
            if let Some(h) = column.get(i) {
                self.merge(&h, counts.value(i));
            }
        }
        Ok(())
    }

    fn state(&mut self) -> datafusion::common::Result<Vec<datafusion::common::ScalarValue>> {
        let n = self.running.as_ref().map_or(0.0, HistogramMean::count);
        Ok(vec![
            self.value()?,
            datafusion::common::ScalarValue::Float64(Some(n)),
            datafusion::common::ScalarValue::Boolean(Some(self.failed)),
        ])
    }

    fn evaluate(&mut self) -> datafusion::common::Result<datafusion::common::ScalarValue> {
        if let Some(running) = &self.running {
            let p = &self.notes.position;
            if running.hints_collide() {
                let text = format!(
                    "PromQL warning: conflicting counter resets during histogram aggregation{p}"
                );
                record(&self.notes.warnings, text);
            }
            if running.bounds_reconciled() {
                let text = format!(
                    "PromQL info: mismatched custom buckets were reconciled during aggregation{p}"
                );
                record(&self.notes.infos, text);
            }
        }
        self.value()
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.running.as_ref().map_or(0, HistogramMean::heap_bytes)
    }
}

/// Adds `text` to a note list once.
fn record(list: &std::sync::Mutex<Vec<String>>, text: String) {
    if let Ok(mut list) = list.lock()
        && !list.contains(&text)
    {
        list.push(text);
    }
}

/// `prom_float_row(histogram)`: true on a float's row; on a native histogram's, false, and
/// `info` is recorded once (Prometheus's note that an operation ignored histograms).
pub fn float_row_udf(infos: Arc<std::sync::Mutex<Vec<String>>>, info: String) -> ScalarUDF {
    create_udf(
        "prom_float_row",
        vec![histogram_type()],
        DataType::Boolean,
        Volatility::Volatile,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let array = &arrays[0];
            if array.null_count() < array.len()
                && let Ok(mut list) = infos.lock()
                && !list.contains(&info)
            {
                list.push(info.clone());
            }
            let out: arrow::array::BooleanArray =
                (0..array.len()).map(|i| Some(array.is_null(i))).collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// `prom_unmixed(floats, histograms)`: whether a group's counts of float and histogram
/// samples do not mix both; where they do, `warning` is recorded once (Prometheus's
/// warning for an aggregation of floats and histograms, which gives no result).
pub fn unmixed_udf(warnings: Arc<std::sync::Mutex<Vec<String>>>, warning: String) -> ScalarUDF {
    create_udf(
        "prom_unmixed",
        vec![DataType::Int64, DataType::Int64],
        DataType::Boolean,
        Volatility::Volatile,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let count = |a: &arrow::array::ArrayRef| {
                a.as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .cloned()
                    .ok_or_else(|| DataFusionError::Internal("expected int64 counts".into()))
            };
            let (floats, histograms) = (count(&arrays[0])?, count(&arrays[1])?);
            let out: arrow::array::BooleanArray = (0..floats.len())
                .map(|i| Some(!(floats.value(i) > 0 && histograms.value(i) > 0)))
                .collect();
            if out.false_count() > 0
                && let Ok(mut list) = warnings.lock()
                && !list.contains(&warning)
            {
                list.push(warning.clone());
            }
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// `prom_histogram_unmixed(n, metric)`: whether a series had only one kind of histogram
/// at a step (`n` answers, from classic buckets and native histograms, is 1); where both
/// answered, Prometheus's warning naming `metric` is recorded once in `notes`, and the
/// series has no result.
pub fn classic_or_native_udf(notes: Notes) -> ScalarUDF {
    create_udf(
        "prom_histogram_unmixed",
        vec![DataType::Int64, DataType::Utf8],
        DataType::Boolean,
        Volatility::Volatile,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let counts = arrays[0]
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .ok_or_else(|| DataFusionError::Internal("expected int64 counts".into()))?;
            let names = arrays[1]
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .ok_or_else(|| DataFusionError::Internal("expected metric names".into()))?;
            let out: arrow::array::BooleanArray = (0..counts.len())
                .map(|i| {
                    let alone = counts.value(i) <= 1;
                    if !alone {
                        let name = if names.is_valid(i) { names.value(i) } else { "" };
                        record(
                            &notes.warnings,
                            format!(
                                "PromQL warning: vector contains a mix of classic and native histograms for metric name {name:?}{}",
                                notes.position
                            ),
                        );
                    }
                    Some(alone)
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// `prom_histogram_scale(histogram, factor)`: every count and the sum times `factor`.
pub fn scale_udf() -> ScalarUDF {
    histogram_by_number_udf("prom_histogram_scale", Histogram::scale)
}

/// `prom_histogram_negate(histogram, -1)`: the histogram negated, which makes it a gauge
/// (as Prometheus's unary minus does).
pub fn negate_udf() -> ScalarUDF {
    histogram_by_number_udf("prom_histogram_negate", |h, factor| {
        let mut negated = h.scale(factor);
        negated.counter_reset_hint = CounterResetHint::Gauge;
        negated
    })
}

/// `prom_histogram_unhinted(histogram)`: counter histograms with the hint `Unknown`, as
/// Prometheus hands a subquery's histograms to a range function: the subquery may skip
/// the sample that reset or repeat it, so resets are detected from the counts.
pub fn unhinted_udf() -> ScalarUDF {
    create_udf(
        "prom_histogram_unhinted",
        vec![histogram_type()],
        histogram_type(),
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let column = histograms(&arrays[0])?;
            let rows: Vec<Option<Arc<Histogram>>> = (0..arrays[0].len())
                .map(|i| {
                    let mut h = column.get(i)?;
                    if h.counter_reset_hint != CounterResetHint::Gauge {
                        h.counter_reset_hint = CounterResetHint::Unknown;
                    }
                    Some(Arc::new(h))
                })
                .collect();
            Ok(ColumnarValue::Array(
                crate::storage::histogram_arrow::to_array(&rows),
            ))
        }),
    )
}

/// `prom_histogram_text(histogram)`: the histogram as Prometheus's `String()` writes it
/// (what `count_values` counts it by), null on a float's row.
pub fn text_udf() -> ScalarUDF {
    create_udf(
        "prom_histogram_text",
        vec![histogram_type()],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let column = histograms(&arrays[0])?;
            let out: arrow::array::StringArray = (0..arrays[0].len())
                .map(|i| column.get(i).map(|h| h.to_string()))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// A UDF of a histogram column and a number column that maps each histogram with `f`.
fn histogram_by_number_udf(name: &str, f: fn(&Histogram, f64) -> Histogram) -> ScalarUDF {
    create_udf(
        name,
        vec![histogram_type(), DataType::Float64],
        histogram_type(),
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let column = histograms(&arrays[0])?;
            let number = floats(&arrays[1])?;
            let rows: Vec<Option<Arc<Histogram>>> = (0..arrays[0].len())
                .map(|i| {
                    let h = column.get(i)?;
                    number.is_valid(i).then(|| Arc::new(f(&h, number.value(i))))
                })
                .collect();
            Ok(ColumnarValue::Array(
                crate::storage::histogram_arrow::to_array(&rows),
            ))
        }),
    )
}

/// Where the quantile and fraction UDFs note a histogram with NaN observations (observations
/// in no bucket, with a NaN sum): Prometheus's info, naming the metric, at `position`.
#[derive(Clone)]
pub struct NanNotes {
    pub infos: Arc<std::sync::Mutex<Vec<String>>>,
    /// ` (line:column)` of the histogram argument, or empty.
    pub position: String,
}

impl NanNotes {
    fn note(&self, what: &str, metric: &str) {
        let text = format!(
            "PromQL info: input to {what} for metric name \"{metric}\"{}",
            self.position
        );
        if let Ok(mut list) = self.infos.lock()
            && !list.contains(&text)
        {
            list.push(text);
        }
    }
}

/// Whether some of a histogram's observations are NaN: they are counted but in no bucket,
/// and they make the sum NaN.
fn has_nan_observations(h: &Histogram) -> bool {
    let in_buckets: f64 = h.zero_count
        + h.positive_buckets.iter().map(|c| c.abs()).sum::<f64>()
        + h.negative_buckets.iter().map(|c| c.abs()).sum::<f64>();
    h.sum.is_nan() && h.count > in_buckets
}

/// `prom_native_quantile(φ, histogram, metric name)`: [`quantile`] of each histogram, null
/// on a float's row.
pub fn quantile_udf(notes: NanNotes) -> ScalarUDF {
    create_udf(
        "prom_native_quantile",
        vec![DataType::Float64, histogram_type(), DataType::Utf8],
        DataType::Float64,
        Volatility::Volatile,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let q = floats(&arrays[0])?;
            let column = histograms(&arrays[1])?;
            let names = strings(&arrays[2])?;
            let out: Float64Array = (0..q.len())
                .map(|i| {
                    let h = column.get(i)?;
                    let v = quantile(q.value(i), &h);
                    if has_nan_observations(&h) {
                        let result = if v.is_nan() { "NaN" } else { "skewed higher" };
                        let what =
                            format!("histogram_quantile has NaN observations, result is {result}");
                        notes.note(&what, names.value(i));
                    }
                    Some(v)
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// `prom_native_fraction(lower, upper, histogram, metric name)`: [`fraction`] of each
/// histogram, null on a float's row.
pub fn fraction_udf(notes: NanNotes) -> ScalarUDF {
    create_udf(
        "prom_native_fraction",
        vec![
            DataType::Float64,
            DataType::Float64,
            histogram_type(),
            DataType::Utf8,
        ],
        DataType::Float64,
        Volatility::Volatile,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let (lower, upper) = (floats(&arrays[0])?, floats(&arrays[1])?);
            let column = histograms(&arrays[2])?;
            let names = strings(&arrays[3])?;
            let out: Float64Array = (0..lower.len())
                .map(|i| {
                    let h = column.get(i)?;
                    if has_nan_observations(&h) {
                        notes.note(
                            "histogram_fraction has NaN observations, which are excluded from all fractions",
                            names.value(i),
                        );
                    }
                    Some(fraction(lower.value(i), upper.value(i), &h))
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

fn strings(array: &arrow::array::ArrayRef) -> Result<&arrow::array::StringArray, DataFusionError> {
    array
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .ok_or_else(|| DataFusionError::Internal("expected utf8 values".into()))
}

fn floats(array: &arrow::array::ArrayRef) -> Result<&Float64Array, DataFusionError> {
    array
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| DataFusionError::Internal("expected float64 values".into()))
}

fn histograms(array: &arrow::array::ArrayRef) -> Result<HistogramColumn<'_>, DataFusionError> {
    HistogramColumn::new(array.as_ref())
        .ok_or_else(|| DataFusionError::Internal("expected a histogram column".into()))
}

/// The φ-quantile of a native histogram, as Prometheus estimates it: the bucket where the
/// rank falls (counted from the low end for φ < 0.5 or a NaN sum, else from the high end),
/// interpolated linearly in custom buckets and the zero bucket, on a logarithmic scale in
/// exponential buckets. A bucket reaching into negative values, in a histogram with
/// positive buckets only, is taken to start at 0 (and the mirror case to end at 0); the
/// first custom bucket starts at 0 (its upper bound when that is not positive), the last
/// ends at its lower bound.
pub fn quantile(q: f64, h: &Histogram) -> f64 {
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if h.count == 0.0 || q.is_nan() {
        return f64::NAN;
    }
    let forward = h.sum.is_nan() || q < 0.5;
    let mut buckets = h.buckets();
    if !forward {
        buckets.reverse();
    }
    let mut rank = if forward {
        q * h.count
    } else {
        (1.0 - q) * h.count
    };
    let mut count = 0.0;
    let mut found = None;
    for b in buckets.iter().filter(|b| b.count != 0.0) {
        count += b.count;
        found = Some(*b);
        if count >= rank {
            break;
        }
    }
    let Some(mut bucket) = found else {
        return f64::NAN;
    };
    if !h.uses_custom_buckets() && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            bucket.upper = 0.0;
        }
    } else if h.uses_custom_buckets() {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return bucket.upper;
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return bucket.lower;
        }
    }
    count = count.min(h.count);
    if count < rank {
        // The rank lies beyond the buckets: NaN observations (a NaN sum), or imprecision.
        return if h.sum.is_nan() {
            f64::NAN
        } else {
            bucket.upper
        };
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    let fraction = rank / bucket.count;
    if h.uses_custom_buckets() || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return bucket.lower + (bucket.upper - bucket.lower) * fraction;
    }
    let (log_lower, log_upper) = (bucket.lower.abs().log2(), bucket.upper.abs().log2());
    if bucket.lower > 0.0 {
        (log_lower + (log_upper - log_lower) * fraction).exp2()
    } else {
        -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2()
    }
}

/// The fraction of a native histogram's observations between `lower` and `upper`, as
/// Prometheus estimates it: whole buckets inside, and the part of the buckets the bounds
/// fall in, interpolated as [`quantile`] does.
pub fn fraction(lower: f64, upper: f64, h: &Histogram) -> f64 {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, None, None);
    let mut count = 0.0;
    for mut b in h.buckets() {
        count += b.count;
        let zero_bucket = b.lower <= 0.0 && b.upper >= 0.0;
        if zero_bucket {
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        let linear = h.uses_custom_buckets() || zero_bucket;
        let below = |v: f64| -> f64 {
            if linear && b.lower == f64::NEG_INFINITY {
                return b.count;
            }
            rank + b.count * b.fraction_below(v, linear)
        };
        if lower_rank.is_none() && b.lower >= lower {
            lower_rank = Some(rank);
        }
        if upper_rank.is_none() && b.lower >= upper {
            upper_rank = Some(rank);
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        if lower_rank.is_none() && b.lower < lower && b.upper > lower {
            lower_rank = Some(below(lower));
        }
        if upper_rank.is_none() && b.lower < upper && b.upper > upper {
            upper_rank = Some(below(upper));
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        rank += b.count;
    }
    // Without NaN observations every observation is in a bucket.
    if !h.sum.is_nan() {
        count = h.count;
    } else {
        count = h.buckets().iter().map(|b| b.count).sum::<f64>().max(count);
    }
    let lower_rank = lower_rank.filter(|r| *r <= count).unwrap_or(count);
    let upper_rank = upper_rank.filter(|r| *r <= count).unwrap_or(count);
    (upper_rank - lower_rank) / h.count
}

/// The observations' variance as Prometheus estimates it: each bucket's observations at a
/// representative value (the middle of a custom bucket, 0 in the zero bucket, the geometric
/// mean of an exponential bucket's bounds), around the histogram's mean.
fn variance(h: &Histogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut sum, mut c) = (0.0, 0.0);
    for b in h.buckets().iter().filter(|b| b.count != 0.0) {
        let value = if h.uses_custom_buckets() {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let geometric = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 { -geometric } else { geometric }
        };
        let delta = value - mean;
        (sum, c) = kahan_add(b.count * delta * delta, sum, c);
    }
    (sum + c) / h.count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::histogram::Span;

    #[test]
    fn statistics_of_a_histogram() {
        // Schema 0: two observations in (1,2], two in (2,4]; zero bucket empty.
        let h = Histogram {
            schema: 0,
            count: 4.0,
            sum: 10.0,
            positive_spans: vec![Span {
                offset: 1,
                length: 2,
            }],
            positive_buckets: vec![2.0, 2.0],
            ..Default::default()
        };
        assert_eq!(HistogramStat::Count.apply(&h), 4.0);
        assert_eq!(HistogramStat::Avg.apply(&h), 2.5);
        // Representative values sqrt(2) and sqrt(8) around the mean 2.5.
        let want = (2.0 * (2f64.sqrt() - 2.5).powi(2) + 2.0 * (8f64.sqrt() - 2.5).powi(2)) / 4.0;
        assert!((HistogramStat::StdVar.apply(&h) - want).abs() < 1e-12);
        assert!((HistogramStat::StdDev.apply(&h) - want.sqrt()).abs() < 1e-12);
        // Half the observations are up to 2: the median is 2; a quarter is at 2^0.5 on the
        // logarithmic scale of (1,2].
        assert_eq!(quantile(0.5, &h), 2.0);
        assert!((quantile(0.25, &h) - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(quantile(1.5, &h), f64::INFINITY);
        assert_eq!(fraction(0.0, 2.0, &h), 0.5);
        assert_eq!(fraction(2.0, 8.0, &h), 0.5);
        assert!((fraction(2.0, 8f64.sqrt(), &h) - 0.25).abs() < 1e-12);
    }
}
