//! PromQL's range functions as SQL aggregates, with the very kernels PromQL uses:
//!
//! ```sql
//! SELECT instance, prom_rate(timestamp, value, TIMESTAMP '2026-01-01T00:00:00Z', INTERVAL '5 minutes')
//! FROM http_requests_total
//! WHERE timestamp > TIMESTAMP '2026-01-01T00:00:00Z' - INTERVAL '5 minutes'
//! GROUP BY instance
//! ```
//!
//! `prom_<function>(timestamp, value, eval_time, range [, parameters])` aggregates the
//! samples of a group that fall in PromQL's window `(eval_time - range, eval_time]`, so the
//! `WHERE` clause only prunes what is read. `range` is an interval or a number of seconds;
//! the parameters are those PromQL takes (`prom_quantile_over_time(..., φ)`,
//! `prom_predict_linear(..., t)`, `prom_double_exponential_smoothing(..., sf, tf)`).
//! `prom_instant(timestamp, value, eval_time [, lookback])` is an instant selector: the
//! newest sample within the lookback (5 minutes by default) unless it is a staleness marker.
//! Every function returns NULL where PromQL returns no sample.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, ListArray};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type, TimeUnit};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use crate::model::is_stale_nan;

use super::functions::RangeFunc;

/// The aggregate functions to register on a SQL session.
pub fn udafs() -> Vec<AggregateUDF> {
    RangeFunc::ALL
        .iter()
        .map(|f| PromAggregate::new(Kind::Range(*f)))
        .chain([PromAggregate::new(Kind::Instant)])
        .map(AggregateUDF::from)
        .collect()
}

/// The SQL name of a range function.
pub fn sql_name(func: RangeFunc) -> String {
    format!("prom_{}", func.name())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
enum Kind {
    Range(RangeFunc),
    #[default]
    Instant,
}

impl Kind {
    /// Arguments after `(timestamp, value, eval_time)`: the window and the parameters.
    fn extra_args(self) -> (usize, usize) {
        match self {
            Kind::Instant => (0, 1),
            Kind::Range(RangeFunc::PredictLinear | RangeFunc::QuantileOverTime) => (2, 2),
            Kind::Range(RangeFunc::DoubleExponentialSmoothing) => (3, 3),
            Kind::Range(_) => (1, 1),
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PromAggregate {
    kind: Kind,
    name: String,
    signature: Signature,
}

impl PromAggregate {
    fn new(kind: Kind) -> PromAggregate {
        let name = match kind {
            Kind::Range(f) => sql_name(f),
            Kind::Instant => "prom_instant".to_string(),
        };
        PromAggregate {
            kind,
            name,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

const DEFAULT_LOOKBACK_MS: i64 = 300_000;

fn is_time(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(..) | DataType::Int64 | DataType::Int32 | DataType::Null
    )
}

/// Times become milliseconds: timestamps of any unit via `Timestamp(ms)`, integers as ms.
fn time_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
        _ => DataType::Int64,
    }
}

impl AggregateUDFImpl for PromAggregate {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> DfResult<Vec<DataType>> {
        let (min_extra, max_extra) = self.kind.extra_args();
        let extra = args.len().saturating_sub(3);
        if args.len() < 3 || extra < min_extra || extra > max_extra {
            return Err(DataFusionError::Plan(format!(
                "{} takes (timestamp, value, eval_time{}), got {} arguments",
                self.name,
                match self.kind {
                    Kind::Instant => ", [lookback]".to_string(),
                    _ => ", range".to_string() + &", parameter".repeat(min_extra - 1),
                },
                args.len()
            )));
        }
        if !is_time(&args[0]) || !is_time(&args[2]) {
            return Err(DataFusionError::Plan(format!(
                "{}: timestamp and eval_time must be timestamps, got {} and {}",
                self.name, args[0], args[2]
            )));
        }
        let mut types = vec![time_type(&args[0]), DataType::Float64, time_type(&args[2])];
        for (i, t) in args[3..].iter().enumerate() {
            types.push(match t {
                DataType::Interval(_) if i == 0 => t.clone(),
                _ => DataType::Float64,
            });
        }
        Ok(types)
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        let list = |name: &str, item: DataType| {
            let item = Arc::new(Field::new_list_field(item, true));
            Arc::new(Field::new(
                format!("{}[{name}]", args.name),
                DataType::List(item),
                true,
            ))
        };
        Ok(vec![
            list("timestamps", DataType::Int64),
            list("values", DataType::Float64),
            list("window", DataType::Int64),
            list("parameters", DataType::Float64),
        ])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(Samples {
            kind: self.kind,
            ..Samples::default()
        }))
    }
}

/// The samples of one group inside its window, and the window (eval time, range).
#[derive(Debug, Default)]
struct Samples {
    kind: Kind,
    ts: Vec<i64>,
    vs: Vec<f64>,
    eval: Option<i64>,
    range: i64,
    params: Vec<f64>,
}

fn ms_values(array: &ArrayRef) -> DfResult<Int64Array> {
    let cast = arrow::compute::cast(array, &DataType::Int64)?;
    Ok(cast.as_primitive::<Int64Type>().clone())
}

/// A window length in ms from an interval or a number of seconds.
fn range_ms(array: &ArrayRef, row: usize) -> DfResult<i64> {
    match ScalarValue::try_from_array(array, row)? {
        ScalarValue::IntervalMonthDayNano(Some(i)) => {
            if i.months != 0 {
                return Err(DataFusionError::Execution(
                    "a PromQL range cannot be given in months".into(),
                ));
            }
            Ok(i64::from(i.days) * 86_400_000 + i.nanoseconds / 1_000_000)
        }
        ScalarValue::IntervalDayTime(Some(i)) => {
            Ok(i64::from(i.days) * 86_400_000 + i64::from(i.milliseconds))
        }
        ScalarValue::IntervalYearMonth(_) => Err(DataFusionError::Execution(
            "a PromQL range cannot be given in months".into(),
        )),
        other => match other.cast_to(&DataType::Float64)? {
            ScalarValue::Float64(Some(seconds)) => Ok((seconds * 1000.0).round() as i64),
            _ => Err(DataFusionError::Execution(
                "the range must not be NULL".into(),
            )),
        },
    }
}

impl Samples {
    fn kind(&self) -> Kind {
        self.kind
    }

    /// The window `(eval - range, eval]` a row asks for.
    fn window_of(&self, values: &[ArrayRef], row: usize) -> DfResult<i64> {
        match self.kind() {
            Kind::Instant if values.len() > 3 => range_ms(&values[3], row),
            Kind::Instant => Ok(DEFAULT_LOOKBACK_MS),
            Kind::Range(_) => range_ms(&values[3], row),
        }
    }

    fn params_of(&self, values: &[ArrayRef], row: usize) -> DfResult<Vec<f64>> {
        let first = match self.kind() {
            Kind::Instant => return Ok(Vec::new()),
            Kind::Range(_) => 4,
        };
        values[first..]
            .iter()
            .map(|a| {
                let v = a.as_primitive::<Float64Type>();
                Ok(if v.is_null(row) {
                    f64::NAN
                } else {
                    v.value(row)
                })
            })
            .collect()
    }

    fn result(&self) -> Option<f64> {
        let eval = self.eval?;
        let mut order: Vec<usize> = (0..self.ts.len()).collect();
        order.sort_by_key(|i| self.ts[*i]);
        match self.kind() {
            Kind::Instant => {
                let newest = *order.last()?;
                let v = self.vs[newest];
                (!is_stale_nan(v)).then_some(v)
            }
            Kind::Range(func) => {
                let live: Vec<usize> = order
                    .into_iter()
                    .filter(|i| !is_stale_nan(self.vs[*i]))
                    .collect();
                let ts: Vec<i64> = live.iter().map(|i| self.ts[*i]).collect();
                let vs: Vec<f64> = live.iter().map(|i| self.vs[*i]).collect();
                func.apply(&ts, &vs, eval, self.range, &self.params)
            }
        }
    }
}

impl Accumulator for Samples {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let ts = ms_values(&values[0])?;
        let vs = values[1].as_primitive::<Float64Type>();
        let evals = ms_values(&values[2])?;
        for row in 0..ts.len() {
            if ts.is_null(row) || vs.is_null(row) || evals.is_null(row) {
                continue;
            }
            let (t, eval) = (ts.value(row), evals.value(row));
            if self.eval.is_none() {
                self.eval = Some(eval);
                self.range = self.window_of(values, row)?;
                self.params = self.params_of(values, row)?;
            }
            if t > eval - self.range && t <= eval {
                self.ts.push(t);
                self.vs.push(vs.value(row));
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Float64(self.result()))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.ts.capacity() * 8 + self.vs.capacity() * 8
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let ints = |v: &[i64]| {
            let values: Vec<ScalarValue> = v.iter().map(|x| ScalarValue::Int64(Some(*x))).collect();
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Int64))
        };
        let floats = |v: &[f64]| {
            let values: Vec<ScalarValue> =
                v.iter().map(|x| ScalarValue::Float64(Some(*x))).collect();
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Float64))
        };
        let window = match self.eval {
            Some(eval) => vec![eval, self.range],
            None => Vec::new(),
        };
        Ok(vec![
            ints(&self.ts),
            floats(&self.vs),
            ints(&window),
            floats(&self.params),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let list = |i: usize| -> DfResult<&ListArray> {
            states[i].as_list_opt::<i32>().ok_or_else(|| {
                DataFusionError::Internal(format!("prom aggregate state {i} is not a list"))
            })
        };
        let (ts, vs, window, params) = (list(0)?, list(1)?, list(2)?, list(3)?);
        for row in 0..ts.len() {
            let w = window.value(row);
            let w = w.as_primitive::<Int64Type>();
            if w.len() == 2 && self.eval.is_none() {
                self.eval = Some(w.value(0));
                self.range = w.value(1);
                let p = params.value(row);
                self.params = p.as_primitive::<Float64Type>().values().to_vec();
            }
            let t = ts.value(row);
            let v = vs.value(row);
            self.ts
                .extend_from_slice(t.as_primitive::<Int64Type>().values());
            self.vs
                .extend_from_slice(v.as_primitive::<Float64Type>().values());
        }
        Ok(())
    }
}

/// The values of one Float64 column, for tests.
#[cfg(test)]
fn floats(batch: &arrow::array::RecordBatch, column: &str) -> Vec<Option<f64>> {
    let col = batch.column_by_name(column).expect("column");
    let col: &arrow::array::Float64Array = col.as_primitive();
    (0..col.len())
        .map(|i| (!col.is_null(i)).then(|| col.value(i)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn query(sql: &str) -> arrow::array::RecordBatch {
        let ctx = SessionContext::new();
        for f in udafs() {
            ctx.register_udaf(f);
        }
        ctx.sql(
            "CREATE TABLE s AS SELECT * FROM (VALUES \
             ('a', 0, 0.0), ('a', 15000, 10.0), ('a', 30000, 20.0), ('a', 45000, 5.0), \
             ('a', 60000, 15.0), ('b', 60000, 1.0)) AS t(k, ms, v)",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
    }

    #[tokio::test]
    async fn range_functions_match_the_promql_kernels() {
        let batch = query(
            "SELECT k, prom_increase(to_timestamp_millis(ms), v, to_timestamp_millis(60000), INTERVAL '1 minute') AS inc, \
             prom_count_over_time(ms, v, 60000, 60) AS n, \
             prom_quantile_over_time(ms, v, 60000, 60, 0.5) AS q \
             FROM s GROUP BY k ORDER BY k",
        )
        .await;
        let ts = [15_000, 30_000, 45_000, 60_000];
        let vs = [10.0, 20.0, 5.0, 15.0];
        let want = RangeFunc::Increase.apply(&ts, &vs, 60_000, 60_000, &[]);
        assert_eq!(floats(&batch, "inc"), vec![want, None]);
        assert_eq!(floats(&batch, "n"), vec![Some(4.0), Some(1.0)]);
        assert_eq!(floats(&batch, "q"), vec![Some(12.5), Some(1.0)]);
    }

    #[tokio::test]
    async fn instant_selection_uses_the_lookback() {
        let batch = query(
            "SELECT k, prom_instant(ms, v, 50000) AS now, prom_instant(ms, v, 50000, 4) AS short \
             FROM s GROUP BY k ORDER BY k",
        )
        .await;
        assert_eq!(floats(&batch, "now"), vec![Some(5.0), None]);
        assert_eq!(floats(&batch, "short"), vec![None, None]);
    }

    #[tokio::test]
    async fn wrong_arity_is_a_plan_error() {
        let ctx = SessionContext::new();
        for f in udafs() {
            ctx.register_udaf(f);
        }
        let err = ctx.sql("SELECT prom_rate(1, 2.0)").await.unwrap_err();
        assert!(err.to_string().contains("prom_rate takes"), "{err}");
    }
}
