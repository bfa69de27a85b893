//! Size guards for the scalar functions whose result can be far larger than their input.
//!
//! DataFusion's memory pool sees what operators buffer (sorts, joins, aggregations), not
//! what a scalar function allocates: `repeat('x', 2000000000)` would build a 2 GB string,
//! and a table of a million rows through `repeat(s, 1000000)` much more, before any limit
//! looks. Each guarded function here first estimates, from its arguments, an upper bound of
//! the bytes its call builds for the whole batch, and refuses with `ResourcesExhausted`
//! (the error of a query over its memory limit) when that exceeds the query's memory limit.
//! Every other function's output is bounded by its inputs, so these few are enough.
//!
//! The guard wraps DataFusion's own implementation and delegates everything else to it.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, FieldRef, Int64Type, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
};
use datafusion::common::{DataFusionError, ExprSchema, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::preimage::PreimageResult;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::udf_eq::UdfEq;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ExpressionPlacement, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, StructFieldMapping,
};
use datafusion::prelude::SessionContext;

/// An upper bound of the bytes a call builds for `rows` rows, from its arguments; `None`
/// when the arguments are not of a shape it knows (the function then checks them itself).
type Estimate = fn(&[ColumnarValue], usize) -> Option<u128>;

/// The functions guarded, with their estimates.
const GUARDED: [(&str, Estimate); 9] = [
    ("repeat", repeat),
    ("lpad", pad),
    ("rpad", pad),
    ("replace", replace),
    ("regexp_replace", regexp_replace),
    ("array_repeat", array_repeat),
    ("array_resize", array_resize),
    ("range", range),
    ("generate_series", range),
];

/// Replaces each guarded function of `ctx` (and its aliases) with its guarded form, which
/// refuses a call that would build more than `limit` bytes.
pub fn guard_amplifying_functions(ctx: &SessionContext, limit: usize) -> anyhow::Result<()> {
    for (name, estimate) in GUARDED {
        let udf = ctx
            .state()
            .scalar_functions()
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("DataFusion has no function {name} to guard"))?;
        ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
            inner: udf.inner().clone().into(),
            estimate,
            limit: limit as u128,
        }));
    }
    Ok(())
}

/// A function that checks the size of what it would build before building it.
#[derive(Debug)]
struct Bounded {
    inner: UdfEq<Arc<dyn ScalarUDFImpl>>,
    /// Chosen by the inner function's name, so equality need not compare it.
    estimate: Estimate,
    limit: u128,
}

impl PartialEq for Bounded {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner && self.limit == other.limit
    }
}

impl Eq for Bounded {}

impl std::hash::Hash for Bounded {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
        self.limit.hash(state);
    }
}

impl Bounded {
    fn check(&self, args: &ScalarFunctionArgs) -> Result<()> {
        match (self.estimate)(&args.args, args.number_rows) {
            Some(bytes) if bytes > self.limit => Err(DataFusionError::ResourcesExhausted(format!(
                "{}() would build about {bytes} bytes, over the query memory limit of {} bytes",
                self.inner.name(),
                self.limit
            ))),
            _ => Ok(()),
        }
    }
}

#[warn(clippy::missing_trait_methods)]
impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        #[expect(deprecated)]
        self.inner.display_name(args)
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        let updated = self.inner.with_updated_config(config)?;
        Some(ScalarUDF::new_from_impl(Bounded {
            inner: updated.inner().clone().into(),
            estimate: self.estimate,
            limit: self.limit,
        }))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_nullable(&self, args: &[Expr], schema: &dyn ExprSchema) -> bool {
        #[expect(deprecated)]
        self.inner.is_nullable(args, schema)
    }

    fn is_strict(&self) -> bool {
        self.inner.is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check(&args)?;
        self.inner.invoke_with_args(args)
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn preimage(
        &self,
        args: &[Expr],
        lit_expr: &Expr,
        info: &SimplifyContext,
    ) -> Result<PreimageResult> {
        self.inner.preimage(args, lit_expr, info)
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.conditional_arguments(args)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.inner.propagate_constraints(interval, inputs)
    }

    fn struct_field_mapping(
        &self,
        literal_args: &[Option<ScalarValue>],
    ) -> Option<StructFieldMapping> {
        self.inner.struct_field_mapping(literal_args)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.inner.placement(args)
    }
}

// ---- Reading arguments row by row ----

/// Each row's string length in bytes (0 for null); `None` if `v` is not a string.
fn lengths(v: &ColumnarValue, rows: usize) -> Option<Vec<u128>> {
    match v {
        ColumnarValue::Scalar(s) => {
            let len = match s {
                ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => {
                    s.as_ref().map_or(0, String::len)
                }
                _ => return None,
            };
            Some(vec![len as u128; rows])
        }
        ColumnarValue::Array(a) => {
            let len = |i: usize, n: usize| if a.is_null(i) { 0 } else { n as u128 };
            Some(match a.data_type() {
                DataType::Utf8 => {
                    let s = a.as_string::<i32>();
                    (0..a.len()).map(|i| len(i, s.value(i).len())).collect()
                }
                DataType::LargeUtf8 => {
                    let s = a.as_string::<i64>();
                    (0..a.len()).map(|i| len(i, s.value(i).len())).collect()
                }
                DataType::Utf8View => {
                    let s = a.as_string_view();
                    (0..a.len()).map(|i| len(i, s.value(i).len())).collect()
                }
                _ => return None,
            })
        }
    }
}

/// Each row's value as an integer (`None` for null); `None` if `v` is not a number.
fn integers(v: &ColumnarValue, rows: usize) -> Option<Vec<Option<i64>>> {
    match v {
        ColumnarValue::Scalar(s) => {
            if !s.data_type().is_numeric() {
                return None;
            }
            let n = match s.cast_to(&DataType::Int64).ok()? {
                ScalarValue::Int64(n) => n,
                _ => return None,
            };
            Some(vec![n; rows])
        }
        ColumnarValue::Array(a) => {
            if !a.data_type().is_numeric() {
                return None;
            }
            let ints = cast(a, &DataType::Int64).ok()?;
            Some(ints.as_primitive::<Int64Type>().iter().collect())
        }
    }
}

/// Each row as nanoseconds (dates and timestamps) or as its integer value (numbers).
fn points(v: &ColumnarValue, rows: usize) -> Option<Vec<Option<i64>>> {
    let nanos = DataType::Timestamp(TimeUnit::Nanosecond, None);
    match v.data_type() {
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => {
            let a = v.to_array(rows).ok()?;
            let ns = cast(&a, &nanos).ok()?;
            let ns = cast(&ns, &DataType::Int64).ok()?;
            Some(ns.as_primitive::<Int64Type>().iter().collect())
        }
        _ => integers(v, rows),
    }
}

/// Each row's step: an integer, or an interval as its shortest length in nanoseconds (a
/// month counts as 28 days, so the count of steps is an upper bound).
fn steps(v: &ColumnarValue, rows: usize) -> Option<Vec<Option<i64>>> {
    const DAY: i128 = 86_400_000_000_000;
    if !matches!(v.data_type(), DataType::Interval(_)) {
        return integers(v, rows);
    }
    let a = v.to_array(rows).ok()?;
    let a = cast(&a, &DataType::Interval(IntervalUnit::MonthDayNano)).ok()?;
    let a = a.as_primitive::<IntervalMonthDayNanoType>();
    Some(
        a.iter()
            .map(|i| {
                i.map(|i| {
                    let ns =
                        i.months as i128 * 28 * DAY + i.days as i128 * DAY + i.nanoseconds as i128;
                    ns.clamp(i64::MIN as i128, i64::MAX as i128) as i64
                })
            })
            .collect(),
    )
}

fn arg(args: &[ColumnarValue], i: usize) -> Option<&ColumnarValue> {
    args.get(i)
}

fn positive(n: Option<i64>) -> u128 {
    n.map_or(0, |n| n.max(0) as u128)
}

// ---- The estimates ----

/// `repeat(s, n)`: `len(s) × n` a row.
fn repeat(args: &[ColumnarValue], rows: usize) -> Option<u128> {
    let s = lengths(arg(args, 0)?, rows)?;
    let n = integers(arg(args, 1)?, rows)?;
    Some(s.iter().zip(&n).map(|(s, n)| s * positive(*n)).sum())
}

/// `lpad(s, n [, fill])`: `n` characters of at most four bytes a row.
fn pad(args: &[ColumnarValue], rows: usize) -> Option<u128> {
    let n = integers(arg(args, 1)?, rows)?;
    Some(n.iter().map(|n| positive(*n) * 4).sum())
}

/// `replace(s, from, to)`: at most `len(s) / len(from)` replacements (`len(s) + 1` for an
/// empty `from`) of `len(to)` bytes each, besides `s` itself.
fn replace(args: &[ColumnarValue], rows: usize) -> Option<u128> {
    let s = lengths(arg(args, 0)?, rows)?;
    let from = lengths(arg(args, 1)?, rows)?;
    let to = lengths(arg(args, 2)?, rows)?;
    Some(
        (0..s.len().min(from.len()).min(to.len()))
            .map(|i| s[i] + (s[i] + 1) / from[i].max(1) * to[i])
            .sum(),
    )
}

/// `regexp_replace(s, pattern, replacement [, flags])`: at most `len(s) + 1` matches
/// (empty ones included), each replaced by `replacement`, whose `$` references add at most
/// the whole of `s` each.
fn regexp_replace(args: &[ColumnarValue], rows: usize) -> Option<u128> {
    let s = lengths(arg(args, 0)?, rows)?;
    let replacement = arg(args, 2)?;
    let to = lengths(replacement, rows)?;
    let references = match replacement {
        ColumnarValue::Scalar(v) => v.to_string().matches('$').count() as u128,
        // Per row it would take reading every value; one `$` a byte is the bound.
        ColumnarValue::Array(_) => u128::MAX,
    };
    Some(
        s.iter()
            .zip(&to)
            .map(|(s, to)| {
                let refs = references.min(*to);
                s + (s + 1) * to + refs.saturating_mul(*s)
            })
            .fold(0u128, u128::saturating_add),
    )
}

/// Bytes of one element of `v`, at least eight (an offset or a number).
fn element_bytes(v: &ColumnarValue) -> u128 {
    let bytes = match v {
        ColumnarValue::Scalar(s) => s.size(),
        ColumnarValue::Array(a) => a.get_array_memory_size() / a.len().max(1),
    };
    bytes.max(8) as u128
}

/// `array_repeat(element, count)`: `count` copies a row.
fn array_repeat(args: &[ColumnarValue], rows: usize) -> Option<u128> {
    let element = element_bytes(arg(args, 0)?);
    let n = integers(arg(args, 1)?, rows)?;
    Some(n.iter().map(|n| positive(*n) * element).sum())
}

/// `array_resize(array, size [, value])`: `size` elements a row.
fn array_resize(args: &[ColumnarValue], rows: usize) -> Option<u128> {
    let n = integers(arg(args, 1)?, rows)?;
    let element = args.get(2).map_or(8, element_bytes);
    Some(n.iter().map(|n| positive(*n) * element).sum())
}

/// `range([start,] stop [, step])` and `generate_series`: `(stop - start) / step` elements
/// of eight bytes a row (steps of 1 by default, or a day for dates).
fn range(args: &[ColumnarValue], rows: usize) -> Option<u128> {
    let (start, stop) = match args.len() {
        1 => (vec![Some(0); rows], points(&args[0], rows)?),
        _ => (points(&args[0], rows)?, points(&args[1], rows)?),
    };
    let step = match args.get(2) {
        Some(step) => steps(step, rows)?,
        None => vec![Some(1); rows],
    };
    let mut total = 0u128;
    for i in 0..rows.min(start.len()).min(stop.len()).min(step.len()) {
        let (Some(a), Some(b), Some(s)) = (start[i], stop[i], step[i]) else {
            continue;
        };
        if s == 0 {
            continue;
        }
        let span = (b as i128 - a as i128).unsigned_abs();
        total += (span / s.unsigned_abs() as u128 + 1) * 8;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(limit: usize) -> SessionContext {
        let ctx = SessionContext::new();
        guard_amplifying_functions(&ctx, limit).unwrap();
        ctx
    }

    async fn run(ctx: &SessionContext, sql: &str) -> Result<usize> {
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(batches.iter().map(|b| b.num_rows()).sum())
    }

    fn exhausted(e: &DataFusionError) -> bool {
        matches!(e.find_root(), DataFusionError::ResourcesExhausted(_))
    }

    #[tokio::test]
    async fn calls_over_the_limit_are_refused_before_building_anything() {
        let ctx = session(10 << 20);
        for sql in [
            "SELECT length(repeat('x', 2000000000))",
            "SELECT length(lpad('x', 2000000000))",
            "SELECT length(rpad('x', 2000000000, 'ab'))",
            "SELECT length(replace(repeat('a', 100000), 'a', repeat('b', 1000)))",
            "SELECT length(regexp_replace(repeat('a', 10000), '', repeat('b', 2000), 'g'))",
            "SELECT cardinality(array_repeat(1, 2000000000))",
            "SELECT cardinality(array_resize([1], 2000000000))",
            "SELECT cardinality(range(2000000000))",
            "SELECT cardinality(generate_series(1, 2000000000))",
            "SELECT cardinality(range(DATE '1970-01-01', DATE '2100-01-01', INTERVAL '1 second'))",
            // Per row: small calls, but a million rows of them in one batch.
            "SELECT sum(length(repeat('x', 1000 + v))) FROM generate_series(1, 100000) t(v)",
        ] {
            let e = run(&ctx, sql).await.expect_err(sql);
            assert!(exhausted(&e), "{sql}: {e}");
            assert!(e.to_string().contains("memory limit"), "{sql}: {e}");
        }
    }

    #[tokio::test]
    async fn ordinary_calls_are_untouched() {
        let ctx = session(10 << 20);
        for sql in [
            "SELECT repeat('ab', 3) = 'ababab'",
            "SELECT lpad('7', 3, '0') = '007' AND rpad('7', 3) = '7  '",
            "SELECT replace('a.b.c', '.', '::') = 'a::b::c'",
            "SELECT regexp_replace('host-01', '-(\\d+)', '_$1') = 'host_01'",
            "SELECT cardinality(array_repeat('x', 5)) = 5",
            "SELECT cardinality(array_resize([1, 2], 4, 0)) = 4",
            "SELECT cardinality(range(10)) = 10 AND cardinality(generate_series(1, 10, 3)) = 4",
            "SELECT cardinality(range(DATE '2024-01-01', DATE '2024-02-01', INTERVAL '1 day')) = 31",
            "SELECT repeat(s, 2) FROM (VALUES ('a'), (NULL)) t(s)",
        ] {
            assert!(
                run(&ctx, sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    > 0
            );
        }
        let batches = ctx
            .sql("SELECT repeat('ab', 3) AS r, generate_series(1, 3) AS g")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(
            text.contains("ababab") && text.contains("[1, 2, 3]"),
            "{text}"
        );
    }
}
