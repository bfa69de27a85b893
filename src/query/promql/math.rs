//! Per-sample math whose float semantics are Go's, where DataFusion's kernels differ:
//! DataFusion's `sqrt` fails on a negative number and its comparisons order NaN above every
//! number, while Prometheus follows Go's `math`, which returns NaN and never fails.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

use crate::gocompat;

/// `prom_sqrt(v)`: NaN for a negative `v`, as Go's `math.Sqrt`.
pub fn sqrt_udf() -> ScalarUDF {
    create_udf(
        "prom_sqrt",
        vec![DataType::Float64],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let v = floats(&arrays[0])?;
            let out: Float64Array = v.iter().map(|v| v.map(f64::sqrt)).collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// `prom_clamp(v, min, max)`: `math.Max(min, math.Min(max, v))`, as Prometheus's `clamp`
/// (NaN stays NaN), or null, meaning no sample, where `max < min`.
pub fn clamp_udf() -> ScalarUDF {
    create_udf(
        "prom_clamp",
        vec![DataType::Float64; 3],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let (v, lo, hi) = (
                floats(&arrays[0])?,
                floats(&arrays[1])?,
                floats(&arrays[2])?,
            );
            let out: Float64Array = (0..v.len())
                .map(|i| {
                    let (v, lo, hi) = (value(v, i)?, value(lo, i)?, value(hi, i)?);
                    (hi >= lo || hi.is_nan() || lo.is_nan())
                        .then(|| gocompat::math::max(lo, gocompat::math::min(hi, v)))
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

fn floats(array: &ArrayRef) -> DfResult<&Float64Array> {
    array
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| DataFusionError::Internal("expected float64 values".into()))
}

fn value(array: &Float64Array, i: usize) -> Option<f64> {
    array.is_valid(i).then(|| array.value(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::*;

    async fn eval(sql: &str) -> Vec<Option<f64>> {
        let ctx = SessionContext::new();
        ctx.register_udf(sqrt_udf());
        ctx.register_udf(clamp_udf());
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        batches
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_any().downcast_ref::<Float64Array>().unwrap();
                (0..a.len()).map(|i| value(a, i)).collect::<Vec<_>>()
            })
            .collect()
    }

    #[tokio::test]
    async fn go_semantics() {
        let v = eval("SELECT prom_sqrt(x) FROM (VALUES (4.0), (-1.0)) AS t(x)").await;
        assert_eq!(v[0], Some(2.0));
        assert!(v[1].unwrap().is_nan());
        let v = eval(
            "SELECT prom_clamp(x, 0.0, 1.0) FROM (VALUES (-3.0), (0.5), (7.0), ('NaN'::double)) AS t(x)",
        )
        .await;
        assert_eq!(&v[..3], &[Some(0.0), Some(0.5), Some(1.0)]);
        assert!(v[3].unwrap().is_nan());
        assert_eq!(eval("SELECT prom_clamp(0.5, 2.0, 1.0)").await, [None]);
    }
}
