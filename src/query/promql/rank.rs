//! `PromRank`: the plan node behind `topk`, `bottomk` and `limitk`.
//!
//! Its input is rows `(labels, timestamp, value, g, p)`, and optionally `histogram`: a
//! series' sample at a step, its group's key and the `k` of that step. The output is
//! `(labels, timestamp, value)`, with the kept rows' `histogram` when the input has one
//! (`limitk` keeps native histograms; `topk`/`bottomk` are given floats only). For every `(g, timestamp)` it keeps the first `k`
//! rows in the aggregation's order. A sorting window function would order every group in
//! full; this picks the few rows Prometheus keeps with a partial selection, as its heap does.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, StringBuilder,
};
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchemaRef, Result as DfResult};
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

/// Which rows of a group come first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum RankOrder {
    /// `topk`: largest values first, NaN last.
    Largest,
    /// `bottomk`: smallest values first, NaN last.
    Smallest,
    /// `limitk`: label sets in order.
    Labels,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PromRank {
    pub input: LogicalPlan,
    pub schema: DFSchemaRef,
    pub order: RankOrder,
}

/// `input` ranked in `order`, with the `(labels, timestamp, value)` schema `schema`.
pub fn ranked(input: LogicalPlan, schema: DFSchemaRef, order: RankOrder) -> LogicalPlan {
    LogicalPlan::Extension(Extension {
        node: Arc::new(PromRank {
            input,
            schema,
            order,
        }),
    })
}

impl PartialOrd for PromRank {
    /// Ordered by what the node computes; the schema is the same for every node.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (&self.order, &self.input).partial_cmp(&(&other.order, &other.input))
    }
}

impl UserDefinedLogicalNodeCore for PromRank {
    fn name(&self) -> &str {
        "PromRank"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PromRank: {:?}", self.order)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let input = only_input(inputs, "PromRank")?;
        Ok(PromRank {
            input,
            ..self.clone()
        })
    }

    fn necessary_children_exprs(&self, _output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        // The node reads its five input columns by index: keep them all.
        None
    }
}

/// The physical node.
#[derive(Debug)]
pub struct PromRankExec {
    input: Arc<dyn ExecutionPlan>,
    order: RankOrder,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    /// Rows out and compute time, for `explain?analyze=true`.
    metrics: ExecutionPlanMetricsSet,
}

impl PromRankExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, order: RankOrder, schema: SchemaRef) -> Self {
        let properties = final_properties(schema.clone());
        PromRankExec {
            input,
            order,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for PromRankExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PromRankExec: {:?}", self.order)
    }
}

impl ExecutionPlan for PromRankExec {
    one_input_node_methods!("PromRankExec");

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = only_input(children, "PromRankExec")?;
        Ok(Arc::new(PromRankExec::new(
            input,
            self.order,
            self.schema.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let held = Held::new("PromRankExec", partition, &context);
        let input = self.input.execute(partition, context)?;
        let order = self.order;
        let schema = self.schema.clone();
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        Ok(after_all_input(
            input,
            self.schema.clone(),
            baseline,
            held,
            move |batches| Ok(vec![rank(&batches, order, schema)?]),
        ))
    }
}

/// The input column of native histograms, after `(labels, timestamp, value, g, p)`.
const HISTOGRAM_INPUT: usize = 5;

/// One input row: its series (an index into [`SeriesNames`]), value, and the `k` of its step.
struct Row {
    /// Where the row is in the input: batch, row.
    at: (usize, usize),
    series: u32,
    timestamp: i64,
    /// NaN where the input has none (a native histogram's row), for ranking.
    value: f64,
    /// Whether the input has a value (it stays null in the output otherwise).
    valued: bool,
    k: f64,
}

/// The rows each `(g, timestamp)` keeps, in input order within a group's ranking.
fn rank(batches: &[RecordBatch], order: RankOrder, schema: SchemaRef) -> DfResult<RecordBatch> {
    let mut groups = Groups::default();
    let mut names = SeriesNames::default();
    for (b, batch) in batches.iter().enumerate() {
        let labels = LabelColumn::of(batch, 0)?;
        let ts = column::<Int64Array>(batch, 1)?;
        let vs = column::<Float64Array>(batch, 2)?;
        let keys = column::<StringArray>(batch, 3)?;
        let ks = column::<Float64Array>(batch, 4)?;
        for i in 0..batch.num_rows() {
            let Some(row_labels) = labels.text(i) else {
                continue;
            };
            if ts.is_null(i) || keys.is_null(i) || ks.is_null(i) {
                continue;
            }
            let row = Row {
                at: (b, i),
                series: names.index(row_labels),
                timestamp: ts.value(i),
                value: if vs.is_null(i) { f64::NAN } else { vs.value(i) },
                valued: vs.is_valid(i),
                k: ks.value(i),
            };
            groups.rows(keys.value(i), row.timestamp).push(row);
        }
    }
    let label_order = names.label_order();
    let mut out_labels = StringBuilder::new();
    let mut out_ts = Vec::new();
    let mut out_vs = Vec::new();
    let mut out_at = Vec::new();
    for rows in groups.rows.iter_mut() {
        let keep = kept(rows.first().map_or(0.0, |r| r.k), rows.len());
        if keep == 0 {
            continue;
        }
        let compare = |a: &Row, b: &Row| compare(order, a, b, &label_order);
        if keep < rows.len() {
            rows.select_nth_unstable_by(keep - 1, compare);
            rows.truncate(keep);
        }
        for row in rows.iter() {
            out_labels.append_value(names.name(row.series));
            out_ts.push(row.timestamp);
            out_vs.push(row.valued.then_some(row.value));
            out_at.push(row.at);
        }
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(out_labels.finish()),
        Arc::new(Int64Array::from(out_ts)),
        Arc::new(Float64Array::from(out_vs)),
    ];
    if schema.fields().len() == 4 {
        // The kept rows' native histograms, taken from wherever they are in the input.
        let histograms: Vec<&dyn Array> = batches
            .iter()
            .map(|b| b.column(HISTOGRAM_INPUT).as_ref())
            .collect();
        columns.push(match histograms.is_empty() {
            true => arrow::array::new_empty_array(schema.field(3).data_type()),
            false => arrow::compute::interleave(&histograms, &out_at)?,
        });
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The distinct label sets of the input, numbered as they first appear. Ties are broken by
/// label order, and many rows tie (series whose counters did not move all have a rate of
/// 0): comparing two numbers instead of two long label strings keeps that cheap.
#[derive(Default)]
struct SeriesNames<'a> {
    names: Vec<&'a str>,
    index: HashMap<&'a str, u32>,
    last: Option<(&'a str, u32)>,
}

impl<'a> SeriesNames<'a> {
    fn index(&mut self, labels: &'a str) -> u32 {
        // A series' rows come together, sharing one dictionary string: the same pointer.
        if let Some((last, i)) = self.last
            && std::ptr::eq(last, labels)
        {
            return i;
        }
        let next = self.names.len() as u32;
        let i = *self.index.entry(labels).or_insert(next);
        if i == next {
            self.names.push(labels);
        }
        self.last = Some((labels, i));
        i
    }

    fn name(&self, series: u32) -> &'a str {
        self.names[series as usize]
    }

    /// Each series' position in label order.
    fn label_order(&self) -> Vec<u32> {
        let mut sorted: Vec<u32> = (0..self.names.len() as u32).collect();
        sorted.sort_unstable_by_key(|i| self.names[*i as usize]);
        let mut position = vec![0; sorted.len()];
        for (rank, series) in sorted.into_iter().enumerate() {
            position[series as usize] = rank as u32;
        }
        position
    }
}

/// The rows of every `(g, timestamp)`. Rows arrive a series at a time, step after step:
/// the group key rarely changes from one row to the next and is looked up only when it
/// does, and `(group, timestamp)` hashes as two integers.
#[derive(Default)]
struct Groups<'a> {
    group_of_key: HashMap<&'a str, usize>,
    last_key: Option<(&'a str, usize)>,
    slot_of: FxHashMap<(usize, i64), usize>,
    rows: Vec<Vec<Row>>,
}

impl<'a> Groups<'a> {
    fn rows(&mut self, key: &'a str, timestamp: i64) -> &mut Vec<Row> {
        let group = match self.last_key {
            Some((last, group)) if l::same_text(last, key) => group,
            _ => {
                let next = self.group_of_key.len();
                let group = *self.group_of_key.entry(key).or_insert(next);
                self.last_key = Some((key, group));
                group
            }
        };
        let next = self.rows.len();
        let slot = *self.slot_of.entry((group, timestamp)).or_insert(next);
        if slot == next {
            self.rows.push(Vec::new());
        }
        &mut self.rows[slot]
    }
}

/// How many of `len` rows a group keeps for parameter `k`: rows ranked `1..=k`.
fn kept(k: f64, len: usize) -> usize {
    if k.is_nan() || k < 1.0 {
        0
    } else if k >= len as f64 {
        len
    } else {
        k as usize
    }
}

/// The aggregation's order; equal rows fall back to their label sets (`label_order`, a
/// series' position among them), so the choice among ties does not depend on how rows
/// arrived.
fn compare(order: RankOrder, a: &Row, b: &Row, label_order: &[u32]) -> Ordering {
    let by_value = |ascending: bool| {
        let (x, y) = if ascending {
            (a.value, b.value)
        } else {
            (b.value, a.value)
        };
        // NaN ranks last either way.
        a.value
            .is_nan()
            .cmp(&b.value.is_nan())
            .then_with(|| x.partial_cmp(&y).unwrap_or(Ordering::Equal))
    };
    match order {
        RankOrder::Largest => by_value(false),
        RankOrder::Smallest => by_value(true),
        RankOrder::Labels => Ordering::Equal,
    }
    .then_with(|| label_order[a.series as usize].cmp(&label_order[b.series as usize]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_counts_whole_ranks() {
        assert_eq!(kept(2.0, 5), 2);
        assert_eq!(kept(2.7, 5), 2);
        assert_eq!(kept(9.0, 5), 5);
        assert_eq!(kept(0.5, 5), 0);
        assert_eq!(kept(-1.0, 5), 0);
        assert_eq!(kept(f64::NAN, 5), 0);
    }

    #[test]
    fn nan_ranks_last_for_both_directions() {
        let row = |series, value| Row {
            at: (0, 0),
            series,
            timestamp: 0,
            value,
            valued: true,
            k: 1.0,
        };
        let (nan, one, two) = (row(0, f64::NAN), row(1, 1.0), row(2, 2.0));
        let order = [0, 1, 2];
        let cases = [
            (RankOrder::Largest, &two, &one, Ordering::Less),
            (RankOrder::Largest, &one, &nan, Ordering::Less),
            (RankOrder::Smallest, &one, &two, Ordering::Less),
            (RankOrder::Smallest, &two, &nan, Ordering::Less),
            (RankOrder::Labels, &two, &one, Ordering::Greater),
        ];
        for (rank_order, a, b, expected) in cases {
            assert_eq!(
                compare(rank_order, a, b, &order),
                expected,
                "{rank_order:?}"
            );
        }
    }

    #[test]
    fn ties_fall_back_to_label_order_not_arrival() {
        let mut names = SeriesNames::default();
        let (b, a, c) = (names.index("b"), names.index("a"), names.index("c"));
        assert_eq!(names.index("a"), a);
        let order = names.label_order();
        let row = |series| Row {
            at: (0, 0),
            series,
            timestamp: 0,
            value: 1.0,
            valued: true,
            k: 1.0,
        };
        assert_eq!(
            compare(RankOrder::Largest, &row(a), &row(b), &order),
            Ordering::Less
        );
        assert_eq!(
            compare(RankOrder::Smallest, &row(c), &row(b), &order),
            Ordering::Greater
        );
        assert_eq!(names.name(c), "c");
    }
}
