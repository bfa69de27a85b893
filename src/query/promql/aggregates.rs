//! PromQL aggregation kernels applied to `array_agg(value)` per group, so the float
//! semantics (Kahan summation, NaN handling in min/max, incremental means, Prometheus's
//! quantile) match Prometheus exactly.

use std::sync::Arc;

use arrow::array::{Array, Float64Array, Float64Builder, ListArray};
use arrow::datatypes::{DataType, Field};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, Expr, ScalarUDF, Volatility, create_udf, lit};

use super::functions::{average, kahan_sum, quantile, variance};

/// An aggregation computed from all values of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub fn call(self, values: Expr, param: f64) -> Expr {
        aggregate_udf().call(vec![values, lit(self.code()), lit(param)])
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
            let param = match &args[2] {
                ColumnarValue::Scalar(ScalarValue::Float64(Some(p))) => *p,
                _ => f64::NAN,
            };
            let arrays = ColumnarValue::values_to_arrays(&args[..1])?;
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
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
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
}
