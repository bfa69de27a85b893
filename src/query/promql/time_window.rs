//! `TimeWindowExec`: the rows of its input whose timestamp lies in a window, the exact time
//! filter of a selector's samples. DataFusion's `FilterExec` works out statistics and plan
//! properties from its predicate when it is built, which costs more than running a small
//! query; a selection builds its scan, and this filter, again on every run of a prepared
//! plan (see [`super::prepared`]), so the filter is this plain node instead.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, TimestampMillisecondType};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;

use super::step::only_input;

/// Timestamps (ms) a window keeps: above `after` (or at it, when `from_inclusive`) and at or
/// below `until` (or below it, when not `until_inclusive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    after: i64,
    from_inclusive: bool,
    until: i64,
    until_inclusive: bool,
}

impl Window {
    /// The window `filters` on `column` keep, when each is a plain comparison of the column
    /// with a millisecond timestamp; None for anything else (the caller filters with
    /// DataFusion instead).
    pub fn from_filters(filters: &[Expr], column: &str) -> Option<Window> {
        let mut window = Window {
            after: i64::MIN,
            from_inclusive: true,
            until: i64::MAX,
            until_inclusive: true,
        };
        for filter in filters {
            let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
                return None;
            };
            let (op, ms) = match (column_named(left, column), millis(right)) {
                (true, Some(ms)) => (*op, ms),
                _ => match (column_named(right, column), millis(left)) {
                    (true, Some(ms)) => (op.swap()?, ms),
                    _ => return None,
                },
            };
            match op {
                Operator::Gt | Operator::GtEq if ms >= window.after => {
                    window.from_inclusive =
                        op == Operator::GtEq && (ms != window.after || window.from_inclusive);
                    window.after = ms;
                }
                Operator::Lt | Operator::LtEq if ms <= window.until => {
                    window.until_inclusive =
                        op == Operator::LtEq && (ms != window.until || window.until_inclusive);
                    window.until = ms;
                }
                Operator::Gt | Operator::GtEq | Operator::Lt | Operator::LtEq => {}
                _ => return None,
            }
        }
        Some(window)
    }

    fn keeps(&self, t: i64) -> bool {
        let above = t > self.after || (self.from_inclusive && t == self.after);
        let below = t < self.until || (self.until_inclusive && t == self.until);
        above && below
    }
}

fn column_named(expr: &Expr, column: &str) -> bool {
    matches!(expr, Expr::Column(c) if c.name == column)
}

fn millis(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(ScalarValue::TimestampMillisecond(Some(ms), _), _) => Some(*ms),
        _ => None,
    }
}

/// Keeps the rows of its input whose column `column` (milliseconds) lies in a [`Window`].
#[derive(Debug)]
pub struct TimeWindowExec {
    input: Arc<dyn ExecutionPlan>,
    column: usize,
    window: Window,
}

impl TimeWindowExec {
    /// None when `column` is not a millisecond timestamp column of `input`.
    pub fn new(input: Arc<dyn ExecutionPlan>, column: &str, window: Window) -> Option<Self> {
        let schema = input.schema();
        let (index, field) = schema.column_with_name(column)?;
        matches!(
            field.data_type(),
            DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, _)
        )
        .then_some(TimeWindowExec {
            input,
            column: index,
            window,
        })
    }
}

impl DisplayAs for TimeWindowExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let w = &self.window;
        write!(
            f,
            "TimeWindowExec: {}{}, {}{}",
            if w.from_inclusive { "[" } else { "(" },
            w.after,
            w.until,
            if w.until_inclusive { "]" } else { ")" }
        )
    }
}

impl ExecutionPlan for TimeWindowExec {
    fn name(&self) -> &'static str {
        "TimeWindowExec"
    }

    /// Its input's: a filter keeps the partitioning and the columns.
    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(TimeWindowExec {
            input: only_input(children, "TimeWindowExec")?,
            column: self.column,
            window: self.window,
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let (column, window) = (self.column, self.window);
        let filtered = input.map(move |batch| keep_window(&batch?, column, window));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.input.schema(),
            filtered,
        )))
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
}

fn keep_window(batch: &RecordBatch, column: usize, window: Window) -> DfResult<RecordBatch> {
    let times = batch
        .column(column)
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(|| DataFusionError::Internal("time window over a non-timestamp".into()))?;
    if times.null_count() == 0 && times.values().iter().all(|t| window.keeps(*t)) {
        return Ok(batch.clone());
    }
    let mask: BooleanArray = times
        .iter()
        .map(|t| Some(t.is_some_and(|t| window.keeps(t))))
        .collect();
    Ok(filter_record_batch(batch, &mask)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    fn ts(ms: i64) -> Expr {
        lit(ScalarValue::TimestampMillisecond(
            Some(ms),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn windows_keep_what_the_comparisons_keep() {
        let w = Window::from_filters(
            &[
                col("r.timestamp").gt(ts(10)),
                col("timestamp").lt_eq(ts(20)),
            ],
            "timestamp",
        )
        .unwrap();
        assert!(!w.keeps(10) && w.keeps(11) && w.keeps(20) && !w.keeps(21));
        // Literal first, and the tighter of two bounds on one side, exclusive on a tie.
        let w = Window::from_filters(
            &[
                ts(20).gt(col("timestamp")),
                col("timestamp").gt_eq(ts(5)),
                col("timestamp").gt(ts(5)),
            ],
            "timestamp",
        )
        .unwrap();
        assert!(!w.keeps(5) && w.keeps(6) && w.keeps(19) && !w.keeps(20));
        // Anything but a plain comparison with a timestamp is DataFusion's to filter.
        assert!(Window::from_filters(&[col("value").gt(ts(1))], "timestamp").is_none());
        assert!(Window::from_filters(&[col("timestamp").gt(lit(1i64))], "timestamp").is_none());
        assert!(Window::from_filters(&[col("timestamp").not_eq(ts(1))], "timestamp").is_none());
    }
}
