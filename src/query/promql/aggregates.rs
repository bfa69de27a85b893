//! PromQL aggregation kernels applied to `array_agg(value)` per group, so the float
//! semantics (Kahan summation, NaN handling in min/max, incremental means, Prometheus's
//! quantile) match Prometheus exactly.

use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Float64Builder, ListArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, EmitTo, Expr, GroupsAccumulator,
    ScalarUDF, Signature, Volatility, create_udf, lit,
};

use super::functions::{KahanSum, Mean, average, kahan_sum, quantile, variance};
use super::ops::AggregateOp;

/// An aggregation computed from all values of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    Sum,
    Avg,
    Min,
    Max,
    Stddev,
    Stdvar,
    Quantile,
}

impl Kernel {
    /// The kernel computing an aggregation operator, for those that are one.
    pub fn of(op: AggregateOp) -> Option<Kernel> {
        Some(match op {
            AggregateOp::Sum => Kernel::Sum,
            AggregateOp::Avg => Kernel::Avg,
            AggregateOp::Min => Kernel::Min,
            AggregateOp::Max => Kernel::Max,
            AggregateOp::Stddev => Kernel::Stddev,
            AggregateOp::Stdvar => Kernel::Stdvar,
            AggregateOp::Quantile => Kernel::Quantile,
            _ => return None,
        })
    }

    /// The kernel a plan names in its `prom_aggregate` call (see [`Kernel::call`]).
    pub fn from_name(name: &str) -> Option<Kernel> {
        Some(match name {
            "sum" => Kernel::Sum,
            "avg" => Kernel::Avg,
            "min" => Kernel::Min,
            "max" => Kernel::Max,
            "stddev" => Kernel::Stddev,
            "stdvar" => Kernel::Stdvar,
            "quantile" => Kernel::Quantile,
            _ => return None,
        })
    }

    fn code(self) -> &'static str {
        match self {
            Kernel::Sum => "sum",
            Kernel::Avg => "avg",
            Kernel::Min => "min",
            Kernel::Max => "max",
            Kernel::Stddev => "stddev",
            Kernel::Stdvar => "stdvar",
            Kernel::Quantile => "quantile",
        }
    }

    pub fn apply(self, values: &[f64], param: f64) -> f64 {
        match self {
            Kernel::Sum => kahan_sum(values.iter().copied()),
            Kernel::Avg => average(values),
            Kernel::Min => extreme(values, |v, m| v < m),
            Kernel::Max => extreme(values, |v, m| v > m),
            Kernel::Stddev => variance(values).sqrt(),
            Kernel::Stdvar => variance(values),
            Kernel::Quantile => quantile(param, values.to_vec()),
        }
    }

    /// `prom_aggregate(array_agg(value), 'kernel', param)`.
    pub fn call(self, values: Expr, param: Expr) -> Expr {
        aggregate_udf().call(vec![values, lit(self.code()), param])
    }
}

impl Kernel {
    /// Whether the kernel can run as values arrive (a DataFusion groups accumulator),
    /// rather than over a collected list: the sums, means and extremes can; the variances
    /// and the quantile keep `array_agg`.
    pub fn streams(self) -> bool {
        matches!(self, Kernel::Sum | Kernel::Avg | Kernel::Min | Kernel::Max)
    }

    /// `prom_group_<kernel>(value)`: the streaming form, for kernels that [`Self::streams`].
    pub fn aggregate(self, values: Expr) -> Expr {
        AggregateUDF::from(StreamingKernel::new(self)).call(vec![values])
    }
}

/// One group's running aggregate.
#[derive(Debug, Clone, Copy)]
enum Running {
    Sum(KahanSum),
    Mean(Mean),
    /// min (`largest` false) or max; NaN until a number arrives.
    Extreme {
        value: f64,
        largest: bool,
    },
}

impl Running {
    fn new(kernel: Kernel) -> Running {
        match kernel {
            Kernel::Sum => Running::Sum(KahanSum::default()),
            Kernel::Avg => Running::Mean(Mean::default()),
            _ => Running::Extreme {
                value: f64::NAN,
                largest: kernel == Kernel::Max,
            },
        }
    }

    fn add(&mut self, v: f64) {
        match self {
            Running::Sum(sum) => sum.add(v),
            Running::Mean(mean) => mean.add(v),
            Running::Extreme { value, largest } => {
                let better = if *largest { v > *value } else { v < *value };
                if value.is_nan() || better {
                    *value = v;
                }
            }
        }
    }

    /// Folds in the running aggregate of values that came later (another partition's).
    fn merge(&mut self, later: Running) {
        match (self, later) {
            (Running::Sum(sum), Running::Sum(other)) => sum.merge(other),
            (Running::Mean(mean), Running::Mean(other)) => mean.merge(other),
            (this @ Running::Extreme { .. }, Running::Extreme { value, .. }) => this.add(value),
            _ => {}
        }
    }

    fn value(self) -> f64 {
        match self {
            Running::Sum(sum) => sum.value(),
            Running::Mean(mean) => mean.value(),
            Running::Extreme { value, .. } => value,
        }
    }

    /// The partial aggregate's state: `(count, a, b, incremental)`.
    fn state(self) -> (f64, f64, f64, bool) {
        match self {
            Running::Sum(sum) => {
                let (a, b) = sum.parts();
                (0.0, a, b, false)
            }
            Running::Mean(mean) => mean.parts(),
            Running::Extreme { value, .. } => (0.0, value, 0.0, false),
        }
    }

    fn from_state(kernel: Kernel, (count, a, b, incremental): (f64, f64, f64, bool)) -> Running {
        match Running::new(kernel) {
            Running::Sum(_) => Running::Sum(KahanSum::from_parts(a, b)),
            Running::Mean(_) => Running::Mean(Mean::from_parts(count, a, b, incremental)),
            Running::Extreme { largest, .. } => Running::Extreme { value: a, largest },
        }
    }
}

/// A Prometheus aggregation kernel as a DataFusion aggregate function, so a group's values
/// fold into its state as they arrive instead of being collected into a list first.
#[derive(Debug, PartialEq, Eq, Hash)]
struct StreamingKernel {
    kernel: Kernel,
    name: String,
    signature: Signature,
}

impl StreamingKernel {
    fn new(kernel: Kernel) -> Self {
        StreamingKernel {
            kernel,
            name: format!("prom_group_{}", kernel.code()),
            signature: Signature::exact(vec![DataType::Float64], Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for StreamingKernel {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(OneGroup {
            kernel: self.kernel,
            running: Running::new(self.kernel),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        let field = |part: &str, data_type: DataType| {
            Arc::new(Field::new(
                format_state_name(args.name, part),
                data_type,
                true,
            ))
        };
        Ok(vec![
            field("count", DataType::Float64),
            field("a", DataType::Float64),
            field("b", DataType::Float64),
            field("incremental", DataType::Boolean),
        ])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(ManyGroups {
            kernel: self.kernel,
            groups: Vec::new(),
        }))
    }
}

fn floats(array: &ArrayRef) -> DfResult<&Float64Array> {
    array
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| DataFusionError::Internal("aggregation kernel needs floats".into()))
}

/// The rows of a partial state batch, as `(count, a, b, incremental)`.
fn state_rows(states: &[ArrayRef]) -> DfResult<Vec<(f64, f64, f64, bool)>> {
    let [count, a, b, incremental] = states else {
        return Err(DataFusionError::Internal(
            "aggregation kernel state has four columns".into(),
        ));
    };
    let (count, a, b) = (floats(count)?, floats(a)?, floats(b)?);
    let incremental = incremental
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| DataFusionError::Internal("kernel state flag is not boolean".into()))?;
    Ok((0..count.len())
        .map(|i| (count.value(i), a.value(i), b.value(i), incremental.value(i)))
        .collect())
}

fn state_arrays(states: impl Iterator<Item = (f64, f64, f64, bool)>) -> Vec<ArrayRef> {
    let (mut count, mut a, mut b, mut incremental) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (n, x, y, inc) in states {
        count.push(n);
        a.push(x);
        b.push(y);
        incremental.push(inc);
    }
    vec![
        Arc::new(Float64Array::from(count)),
        Arc::new(Float64Array::from(a)),
        Arc::new(Float64Array::from(b)),
        Arc::new(BooleanArray::from(incremental)),
    ]
}

/// The kernel over one group (DataFusion's aggregation without `GROUP BY`).
#[derive(Debug)]
struct OneGroup {
    kernel: Kernel,
    running: Running,
}

impl Accumulator for OneGroup {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let Some(values) = values.first() else {
            return Ok(());
        };
        floats(values)?
            .iter()
            .flatten()
            .for_each(|v| self.running.add(v));
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Float64(Some(self.running.value())))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let (count, a, b, incremental) = self.running.state();
        Ok(vec![
            ScalarValue::Float64(Some(count)),
            ScalarValue::Float64(Some(a)),
            ScalarValue::Float64(Some(b)),
            ScalarValue::Boolean(Some(incremental)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        for state in state_rows(states)? {
            self.running.merge(Running::from_state(self.kernel, state));
        }
        Ok(())
    }
}

/// The kernel over every group of a `GROUP BY`, one running state per group index.
struct ManyGroups {
    kernel: Kernel,
    groups: Vec<Running>,
}

impl GroupsAccumulator for ManyGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.groups
            .resize(total_num_groups, Running::new(self.kernel));
        let Some(values) = values.first() else {
            return Ok(());
        };
        let values = floats(values)?;
        for (row, group) in group_indices.iter().enumerate() {
            let filtered_out = opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row));
            if filtered_out || values.is_null(row) {
                continue;
            }
            self.groups[*group].add(values.value(row));
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let groups = emit_to.take_needed(&mut self.groups);
        Ok(Arc::new(Float64Array::from_iter_values(
            groups.into_iter().map(Running::value),
        )))
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        let groups = emit_to.take_needed(&mut self.groups);
        Ok(state_arrays(groups.into_iter().map(Running::state)))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.groups
            .resize(total_num_groups, Running::new(self.kernel));
        for (state, group) in state_rows(values)?.into_iter().zip(group_indices) {
            self.groups[*group].merge(Running::from_state(self.kernel, state));
        }
        Ok(())
    }

    /// Each row as a group of its own, for when DataFusion skips partial aggregation.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        let Some(values) = values.first() else {
            return Ok(state_arrays(std::iter::empty()));
        };
        let values = floats(values)?;
        let states = (0..values.len()).map(|row| {
            let mut running = Running::new(self.kernel);
            let filtered_out = opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row));
            if !filtered_out && !values.is_null(row) {
                running.add(values.value(row));
            }
            running.state()
        });
        Ok(state_arrays(states))
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<Running>()
    }
}

/// min/max ignore NaN unless every value is NaN.
fn extreme(values: &[f64], better: impl Fn(f64, f64) -> bool) -> f64 {
    values.iter().copied().fold(
        f64::NAN,
        |m, v| if m.is_nan() || better(v, m) { v } else { m },
    )
}

fn aggregate_udf() -> ScalarUDF {
    create_udf(
        "prom_aggregate",
        vec![
            DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            DataType::Utf8,
            DataType::Float64,
        ],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let kernel = match &args[1] {
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(code))) => Kernel::from_name(code),
                _ => None,
            }
            .ok_or_else(|| {
                DataFusionError::Internal("prom_aggregate needs a kernel name".into())
            })?;
            let arrays = ColumnarValue::values_to_arrays(&[args[0].clone(), args[2].clone()])?;
            let params = arrays[1]
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| {
                    DataFusionError::Internal("prom_aggregate needs a float parameter".into())
                })?;
            let lists = arrays[0]
                .as_any()
                .downcast_ref::<ListArray>()
                .ok_or_else(|| DataFusionError::Internal("prom_aggregate needs a list".into()))?;
            let mut out = Float64Builder::with_capacity(lists.len());
            for i in 0..lists.len() {
                if lists.is_null(i) {
                    out.append_null();
                    continue;
                }
                let item = lists.value(i);
                let floats = item
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .ok_or_else(|| {
                        DataFusionError::Internal("prom_aggregate needs floats".into())
                    })?;
                let values: Vec<f64> = floats.iter().flatten().collect();
                let param = if params.is_null(i) {
                    f64::NAN
                } else {
                    params.value(i)
                };
                out.append_value(kernel.apply(&values, param));
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish())))
        }),
    )
}

/// `prom_format_value(value)`: the value as Prometheus prints it (for `count_values`).
pub fn format_value_udf() -> ScalarUDF {
    create_udf(
        "prom_format_value",
        vec![DataType::Float64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let floats = arrays[0]
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| {
                    DataFusionError::Internal("prom_format_value needs floats".into())
                })?;
            let out: arrow::array::StringArray =
                floats.iter().map(|v| v.map(format_float)).collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)` with Prometheus's NaN/Inf spellings.
pub fn format_float(v: f64) -> String {
    PromFloat(v).to_string()
}

/// A float as Prometheus prints sample values: shortest round-trip decimal, `NaN`, `+Inf`,
/// `-Inf`; writes without allocating.
pub struct PromFloat(pub f64);

impl std::fmt::Display for PromFloat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v == f64::INFINITY {
            f.write_str("+Inf")
        } else if v == f64::NEG_INFINITY {
            f.write_str("-Inf")
        } else {
            write!(f, "{v}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_follow_prometheus() {
        assert_eq!(Kernel::Max.apply(&[f64::NAN, 1.0, 3.0], 0.0), 3.0);
        assert!(Kernel::Min.apply(&[f64::NAN], 0.0).is_nan());
        assert_eq!(Kernel::Sum.apply(&[1e100, 1.0, -1e100], 0.0), 1.0);
        assert_eq!(Kernel::Quantile.apply(&[1.0, 2.0, 3.0], 0.5), 2.0);
    }

    /// Running `values` through the streaming state, split in two partial states that are
    /// then merged (as two partitions would), gives the list kernel's answer.
    fn streamed(kernel: Kernel, values: &[f64], split: usize) -> f64 {
        let (first, second) = values.split_at(split);
        let mut a = Running::new(kernel);
        first.iter().for_each(|v| a.add(*v));
        let mut b = Running::new(kernel);
        second.iter().for_each(|v| b.add(*v));
        let b = Running::from_state(kernel, b.state());
        a.merge(b);
        Running::from_state(kernel, a.state()).value()
    }

    #[test]
    fn streaming_kernels_match_the_list_kernels() {
        let cases: [&[f64]; 5] = [
            &[1.0, 2.0, 3.5, -4.0],
            &[1e100, 1.0, -1e100, 1.0],
            &[f64::NAN, 3.0, 1.0],
            &[f64::MAX, f64::MAX, -f64::MAX / 2.0],
            &[f64::INFINITY, 1.0, f64::NEG_INFINITY],
        ];
        for kernel in [Kernel::Sum, Kernel::Avg, Kernel::Min, Kernel::Max] {
            for values in cases {
                let expected = kernel.apply(values, 0.0);
                let whole = streamed(kernel, values, values.len());
                assert!(
                    whole == expected || (whole.is_nan() && expected.is_nan()),
                    "{kernel:?} of {values:?}: {whole} streamed, {expected} listed"
                );
                // Merged partials agree to within rounding where the sum stays finite.
                let merged = streamed(kernel, values, 1);
                let close = (merged - expected).abs() <= 1e-9 * expected.abs().max(1.0);
                assert!(
                    close || merged == expected || (merged.is_nan() && expected.is_nan()),
                    "{kernel:?} of {values:?} merged: {merged}, listed: {expected}"
                );
            }
        }
    }
}

/// Classic-histogram functions over one group's buckets: `(upper bound, cumulative count)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketKernel {
    /// `histogram_quantile(φ, ...)`.
    Quantile,
    /// `histogram_fraction(lower, upper, ...)`.
    Fraction,
}

impl BucketKernel {
    fn code(self) -> &'static str {
        match self {
            BucketKernel::Quantile => "quantile",
            BucketKernel::Fraction => "fraction",
        }
    }

    /// `prom_buckets(array_agg(le), array_agg(value), group labels, 'kernel', p1, p2)`;
    /// what it finds wrong with the buckets goes to `notes`.
    pub fn call(
        self,
        les: Expr,
        counts: Expr,
        group: Expr,
        (p1, p2): (Expr, Expr),
        notes: BucketNotes,
    ) -> Expr {
        bucket_udf(notes).call(vec![les, counts, group, lit(self.code()), p1, p2])
    }

    /// The result, and whether the counts had to be made monotonic to get it.
    pub fn apply(self, buckets: Vec<(f64, f64)>, p1: f64, p2: f64) -> (f64, bool) {
        match self {
            BucketKernel::Quantile => bucket_quantile(p1, buckets),
            BucketKernel::Fraction => (bucket_fraction(p1, p2, buckets), false),
        }
    }
}

/// Annotations the bucket kernels add while a query runs: where they go and the position
/// of the histogram argument they cite.
#[derive(Debug, Clone)]
pub struct BucketNotes {
    pub warnings: Arc<Mutex<Vec<String>>>,
    pub infos: Arc<Mutex<Vec<String>>>,
    pub position: String,
}

impl BucketNotes {
    fn add(list: &Mutex<Vec<String>>, message: String) {
        if let Ok(mut list) = list.lock()
            && !list.contains(&message)
        {
            list.push(message);
        }
    }

    fn bad_le(&self, le: &str, metric: &str) {
        Self::add(
            &self.warnings,
            format!(
                "PromQL warning: bucket label \"le\" is missing or has a malformed value of {le:?}{}{}",
                for_metric(metric),
                self.position
            ),
        );
    }

    fn forced_monotonic(&self, metric: &str) {
        Self::add(
            &self.infos,
            format!(
                "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile){}{}",
                for_metric(metric),
                self.position
            ),
        );
    }
}

fn for_metric(metric: &str) -> String {
    if metric.is_empty() {
        String::new()
    } else {
        format!(" for metric name {metric:?}")
    }
}

/// Sorts by upper bound and merges buckets with the same bound; None without a +Inf bucket.
fn prepare_buckets(mut buckets: Vec<(f64, f64)>) -> Option<Vec<(f64, f64)>> {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return None;
    }
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for (upper, count) in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == upper => last.1 += count,
            _ => merged.push((upper, count)),
        }
    }
    Some(merged)
}

/// Makes cumulative counts monotonic, treating tiny decreases as float noise.
/// Makes cumulative counts non-decreasing; tells whether a real decrease (not float noise)
/// had to be fixed.
fn ensure_monotonic(buckets: &mut [(f64, f64)]) -> bool {
    let Some(first) = buckets.first() else {
        return false;
    };
    let mut forced = false;
    let mut prev = first.1;
    for bucket in buckets.iter_mut().skip(1) {
        let curr = bucket.1;
        if curr == prev {
            continue;
        }
        let close = (curr - prev).abs() / (curr.abs() + prev.abs()) < 1e-12;
        if close || curr < prev {
            forced |= !close;
            bucket.1 = prev;
            continue;
        }
        prev = curr;
    }
    forced
}

fn bucket_quantile(q: f64, buckets: Vec<(f64, f64)>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    let Some(mut buckets) = prepare_buckets(buckets) else {
        return (f64::NAN, false);
    };
    let forced = ensure_monotonic(&mut buckets);
    (quantile_of_monotonic(q, &buckets), forced)
}

fn quantile_of_monotonic(q: f64, buckets: &[(f64, f64)]) -> f64 {
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 || observations.is_nan() {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = buckets[..buckets.len() - 1].partition_point(|bucket| bucket.1 < rank);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

fn bucket_fraction(lower: f64, upper: f64, buckets: Vec<(f64, f64)>) -> f64 {
    let Some(buckets) = prepare_buckets(buckets) else {
        return f64::NAN;
    };
    let count = buckets[buckets.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for (i, &(upper_bound, bucket_count)) in buckets.iter().enumerate() {
        let lower_bound = if i > 0 {
            buckets[i - 1].0
        } else if upper_bound > 0.0 {
            0.0
        } else {
            f64::NEG_INFINITY
        };
        // A bucket reaching down to -Inf has no width to interpolate in: all of it counts
        // as below any value inside it (as in Prometheus).
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                bucket_count
            } else {
                rank + (bucket_count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = bucket_count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

fn bucket_udf(notes: BucketNotes) -> ScalarUDF {
    let list = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, true)));
    create_udf(
        "prom_buckets",
        vec![
            list(DataType::Utf8),
            list(DataType::Float64),
            DataType::Utf8,
            DataType::Utf8,
            DataType::Float64,
            DataType::Float64,
        ],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let kernel = match &args[3] {
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(c))) if c == "fraction" => {
                    BucketKernel::Fraction
                }
                _ => BucketKernel::Quantile,
            };
            // Constant, or one per row when computed per step.
            let params = ColumnarValue::values_to_arrays(&args[4..6])?;
            let param = |i: usize, row: usize| {
                let array = params[i].as_any().downcast_ref::<Float64Array>()?;
                let row = if array.len() == 1 { 0 } else { row };
                (row < array.len() && array.is_valid(row)).then(|| array.value(row))
            };
            let arrays = ColumnarValue::values_to_arrays(&args[..3])?;
            let internal = || DataFusionError::Internal("prom_buckets needs lists".into());
            let les = arrays[0]
                .as_any()
                .downcast_ref::<ListArray>()
                .ok_or_else(internal)?;
            let counts = arrays[1]
                .as_any()
                .downcast_ref::<ListArray>()
                .ok_or_else(internal)?;
            let groups = arrays[2]
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .ok_or_else(internal)?;
            let mut out = Float64Builder::with_capacity(les.len());
            for i in 0..les.len() {
                let le_values = les.value(i);
                let le_strings = le_values
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .ok_or_else(internal)?;
                let count_values = counts.value(i);
                let floats = count_values
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .ok_or_else(internal)?;
                let metric = super::labels::get(groups.value(i), "__name__").unwrap_or("");
                let mut buckets = Vec::with_capacity(le_strings.len());
                for (le, count) in le_strings.iter().zip(floats.iter()) {
                    let le = le.unwrap_or("");
                    match (parse_le(le), count) {
                        (Some(bound), Some(count)) => buckets.push((bound, count)),
                        (None, _) => notes.bad_le(le, metric),
                        _ => {}
                    }
                }
                if buckets.is_empty() {
                    // No bucket with a usable `le`: Prometheus returns nothing for the group.
                    out.append_null();
                    continue;
                }
                let (p1, p2) = (param(0, i), param(1, i));
                let (value, forced) =
                    kernel.apply(buckets, p1.unwrap_or(f64::NAN), p2.unwrap_or(f64::NAN));
                if forced {
                    notes.forced_monotonic(metric);
                }
                out.append_value(value);
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish())))
        }),
    )
}

/// An `le` label value as a bound (`+Inf`, `1e3`, ...); None when it is not a number.
fn parse_le(text: &str) -> Option<f64> {
    match text.trim().to_ascii_lowercase().as_str() {
        "+inf" | "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse::<f64>().ok().filter(|v| !v.is_nan()),
    }
}

/// PromQL's date functions (`hour()`, `month()`, ...) on Unix seconds, in UTC.
pub fn date_udf(name: &str) -> ScalarUDF {
    use chrono::{DateTime, Datelike, Timelike};
    let which = name.to_string();
    create_udf(
        &format!("prom_{name}"),
        vec![DataType::Float64],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let floats = arrays[0]
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| DataFusionError::Internal("date function needs floats".into()))?;
            let out: Float64Array = floats
                .iter()
                .map(|v| {
                    let v = v?;
                    if !v.is_finite() {
                        return Some(f64::NAN);
                    }
                    let t = DateTime::from_timestamp(v.floor() as i64, 0)?;
                    Some(match which.as_str() {
                        "minute" => f64::from(t.minute()),
                        "hour" => f64::from(t.hour()),
                        "day_of_month" => f64::from(t.day()),
                        "day_of_week" => f64::from(t.weekday().num_days_from_sunday()),
                        "day_of_year" => f64::from(t.ordinal()),
                        "days_in_month" => f64::from(days_in_month(t.year(), t.month())),
                        "month" => f64::from(t.month()),
                        _ => f64::from(t.year()),
                    })
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    chrono::NaiveDate::from_ymd_opt(next_year, next_month, 1)
        .and_then(|d| d.pred_opt())
        .map(|d| chrono::Datelike::day(&d))
        .unwrap_or(31)
}
