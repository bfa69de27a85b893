//! `PromUnique`: the matching-cardinality checks of binary operators. Rows pass through
//! unchanged unless two share a key at one timestamp, which fails the query with
//! Prometheus's error: a duplicate on the "one" side of a match, a one-to-one match hit
//! twice, or a many-to-one result label set produced twice. The checks come before a
//! comparison filters rows away, as in Prometheus.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchemaRef, DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, PlanProperties,
};
use rustc_hash::FxHashMap;

use super::collect::{Held, after_all_input};
use super::labels as l;
use super::step::{LabelColumn, column, final_properties, one_input_node_methods, only_input};

/// Which rule a duplicate breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum Violation {
    /// Two series of the "one" side (`"left"` or `"right"`) share a match group.
    OneSide(&'static str),
    /// A one-to-one match group matched more than once.
    OneToOne,
    /// A many-to-one match produced one result label set twice.
    Grouping,
}

/// Columns (by index) a check reads: the key, the timestamp and the labels it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub struct Check {
    pub key: usize,
    pub timestamp: usize,
    pub labels: usize,
    pub violation: Violation,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct PromUnique {
    pub input: LogicalPlan,
    pub check: Check,
}

/// `input` with `check` applied.
pub fn checked(input: LogicalPlan, check: Check) -> LogicalPlan {
    LogicalPlan::Extension(Extension {
        node: Arc::new(PromUnique { input, check }),
    })
}

impl UserDefinedLogicalNodeCore for PromUnique {
    fn name(&self) -> &str {
        "PromUnique"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PromUnique: {:?}", self.check.violation)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let input = only_input(inputs, "PromUnique")?;
        Ok(PromUnique {
            input,
            check: self.check,
        })
    }

    fn necessary_children_exprs(&self, _output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        // The check reads columns by index: keep them all.
        None
    }
}

/// The physical node.
#[derive(Debug)]
pub struct PromUniqueExec {
    input: Arc<dyn ExecutionPlan>,
    check: Check,
    properties: Arc<PlanProperties>,
    /// Rows and compute time, for `explain?analyze=true`.
    metrics: ExecutionPlanMetricsSet,
}

impl PromUniqueExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, check: Check) -> Self {
        let properties = final_properties(input.schema());
        PromUniqueExec {
            input,
            check,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for PromUniqueExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PromUniqueExec: {:?}", self.check.violation)
    }
}

impl ExecutionPlan for PromUniqueExec {
    one_input_node_methods!("PromUniqueExec");

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = only_input(children, "PromUniqueExec")?;
        Ok(Arc::new(PromUniqueExec::new(input, self.check)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let held = Held::new("PromUniqueExec", partition, &context);
        let input = self.input.execute(partition, context)?;
        let schema: SchemaRef = self.input.schema();
        let check = self.check;
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        Ok(after_all_input(
            input,
            schema,
            baseline,
            held,
            move |batches| {
                verify(&batches, check)?;
                Ok(batches)
            },
        ))
    }
}

/// Fails on the first key seen twice at one timestamp. Keys borrow from the batches: this
/// runs over every row of a binary operation.
fn verify(batches: &[RecordBatch], check: Check) -> DfResult<()> {
    // An unkeyed hash, as Prometheus's own matching uses (xxHash of the label set): this
    // map takes every row of a binary operation, and SipHash made it the slowest step.
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    let mut seen: FxHashMap<(&str, i64), &str> =
        FxHashMap::with_capacity_and_hasher(rows, Default::default());
    for batch in batches {
        let keys = column::<StringArray>(batch, check.key)?;
        let labels = LabelColumn::of(batch, check.labels)?;
        let ts = column::<Int64Array>(batch, check.timestamp)?;
        for i in 0..batch.num_rows() {
            if keys.is_null(i) || ts.is_null(i) {
                continue;
            }
            let series = labels.text(i).unwrap_or("");
            let key = keys.value(i);
            if let Some(first) = seen.insert((key, ts.value(i)), series) {
                let message = message(check.violation, key, first, series);
                return Err(DataFusionError::Execution(message));
            }
        }
    }
    Ok(())
}

fn message(violation: Violation, key: &str, a: &str, b: &str) -> String {
    match violation {
        Violation::OneSide(side) => {
            let (a, b) = (display(a), display(b));
            let (first, second) = if a <= b { (a, b) } else { (b, a) };
            format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{first}, {second}];many-to-many matching not allowed: matching labels must be unique on one side",
                display(key)
            )
        }
        Violation::OneToOne => "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
        Violation::Grouping => {
            "multiple matches for labels: grouping labels must ensure unique matches".into()
        }
    }
}

/// A label set as Prometheus prints one: `{a="1", b="2"}`.
fn display(encoded: &str) -> String {
    let pairs: Vec<String> = l::decode(encoded)
        .into_iter()
        .map(|(n, v)| format!("{n}={v:?}"))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_on_the_one_side_are_named_in_order() {
        let a = l::encode([("__name__", "dup"), ("label", "beta")]);
        let b = l::encode([("__name__", "dup"), ("label", "alpha")]);
        let m = message(Violation::OneSide("right"), "", &a, &b);
        assert_eq!(
            m,
            "found duplicate series for the match group {} on the right hand-side of the operation: [{__name__=\"dup\", label=\"alpha\"}, {__name__=\"dup\", label=\"beta\"}];many-to-many matching not allowed: matching labels must be unique on one side"
        );
    }
}
