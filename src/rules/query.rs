//! How rules read data: an instant PromQL query or a SQL query at an evaluation time, and the
//! raw samples needed to restore alert state. Behind a trait so `quiver test rules` and the
//! server evaluate rules the same way over their own storage.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use async_trait::async_trait;

use crate::model::Labels;
use crate::query::promql::{DEFAULT_LOOKBACK, PromValue, PromqlEngine, PromqlError};
use crate::query::sql::{SqlEngine, SqlError};

/// Why a rule's query gave no samples, told apart as the API and `quiver test rules` need.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleQueryError {
    /// The query is wrong (it does not parse, or its result is not samples): the rule is
    /// broken until someone changes it.
    #[error("{0}")]
    BadQuery(String),
    /// It could not run this time (storage, limits, time-out): a later evaluation may.
    #[error("{0}")]
    Execution(String),
}

impl From<PromqlError> for RuleQueryError {
    fn from(e: PromqlError) -> Self {
        match e {
            PromqlError::BadData(_) | PromqlError::Unsupported(_) => {
                RuleQueryError::BadQuery(e.to_string())
            }
            PromqlError::Execution(_) | PromqlError::Timeout => {
                RuleQueryError::Execution(e.to_string())
            }
        }
    }
}

impl From<SqlError> for RuleQueryError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::BadQuery(_) | SqlError::ReadOnly(_) => {
                RuleQueryError::BadQuery(e.to_string())
            }
            _ => RuleQueryError::Execution(e.to_string()),
        }
    }
}

type QueryResult<T> = Result<T, RuleQueryError>;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSample {
    /// `__name__` included when the query kept it.
    pub labels: Labels,
    pub value: f64,
}

/// A raw sample with its own timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct RawPoint {
    pub labels: Labels,
    pub timestamp_ms: i64,
    pub value: f64,
}

#[async_trait]
pub trait RuleQuerier: Send + Sync {
    /// An instant query; a scalar result is one sample without labels, as in Prometheus.
    async fn promql(&self, expr: &str, ts_ms: i64) -> QueryResult<Vec<RuleSample>>;
    /// A `sql:` rule's query: every column but `value` (and `timestamp`) is a label.
    async fn sql(&self, sql: &str) -> QueryResult<Vec<RuleSample>>;
    /// The newest raw sample in `[min, max]` of each series the selector matches.
    async fn last_raw(&self, selector: &str, min: i64, max: i64) -> QueryResult<Vec<RawPoint>>;
}

/// The server's query engines.
pub struct EngineQuerier {
    pub promql: Arc<PromqlEngine>,
    pub sql: Option<Arc<SqlEngine>>,
}

#[async_trait]
impl RuleQuerier for EngineQuerier {
    async fn promql(&self, expr: &str, ts_ms: i64) -> QueryResult<Vec<RuleSample>> {
        let value = self.promql.instant(expr, ts_ms, DEFAULT_LOOKBACK).await?;
        match value {
            PromValue::Vector(series) => Ok(series
                .into_iter()
                .filter_map(|s| {
                    let value = s.points.first()?.1;
                    Some(RuleSample {
                        labels: s.labels,
                        value,
                    })
                })
                .collect()),
            PromValue::Scalar(_, v) => Ok(vec![RuleSample {
                labels: Labels::default(),
                value: v,
            }]),
            _ => Err(RuleQueryError::BadQuery(
                "rule result is not a vector or scalar".to_string(),
            )),
        }
    }

    async fn sql(&self, sql: &str) -> QueryResult<Vec<RuleSample>> {
        let engine = self.sql.as_ref().ok_or_else(|| {
            RuleQueryError::Execution("SQL rules need the SQL engine".to_string())
        })?;
        let result = engine.query(sql).await?;
        let mut out = Vec::new();
        for batch in &result.batches {
            out.extend(sql_samples(batch).map_err(RuleQueryError::BadQuery)?);
        }
        Ok(out)
    }

    async fn last_raw(&self, selector: &str, min: i64, max: i64) -> QueryResult<Vec<RawPoint>> {
        let expr = PromqlEngine::parse(selector)?;
        let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
            return Err(RuleQueryError::BadQuery(format!(
                "not a series selector: {selector}"
            )));
        };
        // raw_series reads (min, max]; widen by one millisecond to include `min`.
        let series = self.promql.raw_series(&vs, min - 1, max).await?;
        Ok(series
            .into_iter()
            .filter_map(|s| {
                let &(timestamp_ms, value) = s.points.last()?;
                Some(RawPoint {
                    labels: s.labels,
                    timestamp_ms,
                    value,
                })
            })
            .collect())
    }
}

/// Rows of a SQL rule's result as samples: `value` must be numeric, other columns are labels.
fn sql_samples(batch: &arrow::record_batch::RecordBatch) -> Result<Vec<RuleSample>, String> {
    let schema = batch.schema();
    let value_index = schema
        .index_of("value")
        .map_err(|_| "a SQL rule must return a column named \"value\"".to_string())?;
    let values = arrow::compute::cast(batch.column(value_index), &DataType::Float64)
        .map_err(|e| format!("column \"value\" is not numeric: {e}"))?;
    let values = values.as_primitive::<Float64Type>();
    let mut label_columns = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        if i == value_index || field.name() == "timestamp" {
            continue;
        }
        let text = arrow::compute::cast(batch.column(i), &DataType::Utf8)
            .map_err(|e| format!("column {:?} cannot be a label: {e}", field.name()))?;
        label_columns.push((field.name().clone(), text));
    }
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        if values.is_null(row) {
            continue;
        }
        let labels: Labels = label_columns
            .iter()
            .filter(|(_, col)| col.is_valid(row))
            .map(|(name, col)| (name.clone(), col.as_string::<i32>().value(row).to_string()))
            .collect();
        out.push(RuleSample {
            labels,
            value: values.value(row),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use arrow::record_batch::RecordBatch;

    #[test]
    fn sql_rows_become_samples() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("job", DataType::Utf8, true),
            Field::new("code", DataType::Int64, true),
            Field::new("value", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("api"), None])),
                Arc::new(Int64Array::from(vec![200, 500])),
                Arc::new(Float64Array::from(vec![Some(1.5), Some(2.0)])),
            ],
        )
        .unwrap();
        let samples = sql_samples(&batch).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].labels.to_string(), r#"{code="200", job="api"}"#);
        assert_eq!(samples[1].labels.to_string(), r#"{code="500"}"#);
        assert_eq!(samples[1].value, 2.0);
    }

    #[test]
    fn sql_without_value_column_is_an_error() {
        let schema = Arc::new(Schema::new(vec![Field::new("job", DataType::Utf8, true)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["a"]))]).unwrap();
        assert!(sql_samples(&batch).unwrap_err().contains("value"));
    }
}
