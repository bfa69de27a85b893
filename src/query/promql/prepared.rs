//! Prepared plans: a query's physical plan, kept by its text (with its step and span) and
//! run again at later evaluation times. Rules and dashboards send the same expressions again
//! and again, and for a query over a few series DataFusion's optimizer and physical planner
//! cost several times what running the plan does.
//!
//! A plan can run at another time when everything in it that depends on the time is one of
//! the things this module moves: the selections (a selector's series and samples, picked
//! again from storage for the new window), the step times of expressions made per step
//! (`time()`, `vector(1)`, `absent`), the steps of [`PromStepExec`], and timestamp literals
//! in filters (a selection's own time window is applied under it, and so rebuilt with it).
//! The planner marks a plan that holds anything else, such as an `@` time, a
//! subquery's aligned steps or `start()`, as tied to its time
//! ([`super::planner::Planner::pin_time`]); such plans are not kept. Every other node is
//! reset with DataFusion's [`ExecutionPlan::reset_state`], which is how DataFusion runs a
//! plan again.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{
    DictionaryArray, Int64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::{
    ChildStats, ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan,
    ExecutionPlanProperties, PlanProperties, ReplaceChildrenOptions, Statistics, StatisticsArgs,
};

use crate::model::{Labels, Selector, SeriesId};
use crate::query::scan::RawSamples;
use crate::storage::Storage;
use crate::storage::downsample::{RES_1H, RES_5M};

use super::PromqlError;
use super::labels as l;
use super::planner::{LABELS, TIMESTAMP, label_dictionary_type};
use super::step::{PromStepExec, only_input};
use super::time_window::{TimeWindowExec, Window as TimeWindow};

/// What one selector picked when its query was planned, and how to pick again.
#[derive(Debug)]
pub struct Selection {
    pub selector: Selector,
    pub metric: Option<String>,
    /// Data times `(min, max]` the plan reads, at the time it was planned for.
    pub window: (i64, i64),
    /// Whether the samples' native histograms are read. A plan made while its metric had
    /// none reads floats only, so it is made again once the metric has some.
    pub histograms: bool,
    /// Whether the query may read downsampled copies: its plan read none (a plan that
    /// does is tied to its time), so it is made again once its window has some.
    pub may_downsample: bool,
}

/// The `(series_id, labels)` rows of the series a selection picked: their ids, and their
/// label sets as a dictionary, so the join hands each sample a key instead of a copy of
/// its series' label string (`PromStep` groups samples by that key).
pub fn series_batch(
    selected: &BTreeMap<SeriesId, Arc<Labels>>,
) -> DfResult<(Arc<[SeriesId]>, RecordBatch)> {
    let mut ids = Vec::with_capacity(selected.len());
    let mut labels = Vec::with_capacity(selected.len());
    for (id, series) in selected {
        ids.push(*id);
        labels.push(l::encode(series.iter()));
    }
    let selected_ids: Arc<[SeriesId]> = ids.as_slice().into();
    let keys = UInt32Array::from_iter_values(0..labels.len() as u32);
    let labels = DictionaryArray::new(keys, Arc::new(StringArray::from(labels)));
    let schema = Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new(LABELS, label_dictionary_type(), false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(UInt64Array::from(ids)), Arc::new(labels)],
    )?;
    Ok((selected_ids, batch))
}

/// Rows a prepared plan makes again for each run, in memory.
#[derive(Debug, Clone)]
enum Rows {
    /// A selection's series: the `s` side of a selector's join, picked again.
    Series(Arc<Selection>),
    /// A query's step times (first, last, step), moved.
    Steps((i64, i64, i64)),
}

/// [`Rows`] as a table whose scan sits under a [`RebindExec`].
#[derive(Debug)]
pub struct RowsTable {
    rows: Rows,
    batch: RecordBatch,
}

impl RowsTable {
    /// A selection's series, as [`series_batch`] gives them.
    pub fn series(selection: Arc<Selection>, batch: RecordBatch) -> Self {
        RowsTable {
            rows: Rows::Series(selection),
            batch,
        }
    }

    /// One `timestamp` (Int64, ms) row per step, for the expressions whose value is made at
    /// each step (`time()`, `vector(1)`, `absent`).
    pub fn step_times(start: i64, end: i64, step: i64) -> DfResult<Self> {
        Ok(RowsTable {
            rows: Rows::Steps((start, end, step)),
            batch: step_times_batch((start, end, step))?,
        })
    }
}

fn memory_exec(
    batch: &RecordBatch,
    projection: Option<&Vec<usize>>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let exec: Arc<dyn ExecutionPlan> = MemorySourceConfig::try_new_exec(
        &[vec![batch.clone()]],
        batch.schema(),
        projection.cloned(),
    )?;
    Ok(exec)
}

fn step_times_batch((start, end, step): (i64, i64, i64)) -> DfResult<RecordBatch> {
    let step = step.max(1);
    let times = (0..).map(|i| start + i * step).take_while(|t| *t <= end);
    let schema = Arc::new(Schema::new(vec![Field::new(
        TIMESTAMP,
        DataType::Int64,
        false,
    )]));
    Ok(RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from_iter_values(times))],
    )?)
}

#[async_trait]
impl TableProvider for RowsTable {
    fn schema(&self) -> SchemaRef {
        self.batch.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let slot = Slot::Rows {
            rows: self.rows.clone(),
            projection: projection.cloned(),
        };
        let exec = memory_exec(&self.batch, projection)?;
        Ok(Arc::new(RebindExec::new(slot, exec)))
    }
}

/// A selection's samples from head and blocks: the `r` side of a selector's join.
#[derive(Debug)]
pub struct SelectedSamples {
    selection: Arc<Selection>,
    raw: RawSamples,
}

impl SelectedSamples {
    pub fn new(selection: Arc<Selection>, raw: RawSamples) -> Self {
        SelectedSamples { selection, raw }
    }
}

#[async_trait]
impl TableProvider for SelectedSamples {
    fn schema(&self) -> SchemaRef {
        self.raw.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// The time range is applied exactly, here, under the selection's [`RebindExec`]: the
    /// plan above holds no time of its own to move.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        let raw = self.raw.supports_filters_pushdown(filters)?;
        Ok((raw.into_iter())
            .map(|pushdown| match pushdown {
                TableProviderFilterPushDown::Inexact => TableProviderFilterPushDown::Exact,
                other => other,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let slot = Slot::Samples {
            selection: self.selection.clone(),
            projection: projection.cloned(),
            filters: filters.to_vec(),
        };
        let scan = samples_exec(&self.raw, state, projection, filters).await?;
        Ok(Arc::new(RebindExec::new(slot, scan)))
    }
}

/// `raw`'s scan with `filters` applied exactly (the scan itself only prunes by them): a
/// time window, or anything else DataFusion's way.
async fn samples_exec(
    raw: &RawSamples,
    state: &dyn Session,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let scan = raw.scan(state, projection, filters, None).await?;
    if let Some(window) = TimeWindow::from_filters(filters, TIMESTAMP)
        && let Some(exec) = TimeWindowExec::new(scan.clone(), TIMESTAMP, window)
    {
        return Ok(Arc::new(exec));
    }
    let Some(predicate) = datafusion::logical_expr::utils::conjunction(
        (filters.iter())
            .map(|f| datafusion::logical_expr::expr_rewriter::unnormalize_col(f.clone())),
    ) else {
        return Ok(scan);
    };
    let schema = DFSchema::try_from(scan.schema().as_ref().clone())?;
    let predicate = state.create_physical_expr(predicate, &schema)?;
    Ok(Arc::new(FilterExec::try_new(predicate, scan)?))
}

/// How a [`RebindExec`]'s input is made again for a new time.
#[derive(Debug, Clone)]
enum Slot {
    Rows {
        rows: Rows,
        projection: Option<Vec<usize>>,
    },
    Samples {
        selection: Arc<Selection>,
        projection: Option<Vec<usize>>,
        filters: Vec<Expr>,
    },
}

impl Slot {
    fn selection(&self) -> Option<&Arc<Selection>> {
        match self {
            Slot::Rows {
                rows: Rows::Series(selection),
                ..
            }
            | Slot::Samples { selection, .. } => Some(selection),
            Slot::Rows {
                rows: Rows::Steps(_),
                ..
            } => None,
        }
    }
}

/// Passes its input through, and says which selection the input reads, so a prepared plan
/// can put a fresh scan in its place.
#[derive(Debug)]
pub struct RebindExec {
    slot: Slot,
    input: Arc<dyn ExecutionPlan>,
    /// Its input's when planned, kept for the fresh inputs of later runs (whose
    /// partitions are checked to be the same), so the nodes above keep theirs.
    properties: Arc<PlanProperties>,
}

impl RebindExec {
    fn new(slot: Slot, input: Arc<dyn ExecutionPlan>) -> Self {
        let properties = input.properties().clone();
        RebindExec {
            slot,
            input,
            properties,
        }
    }

    /// Whether it holds a selection's series (`series_id` and labels, one row per id).
    pub fn holds_series(&self) -> bool {
        matches!(
            self.slot,
            Slot::Rows {
                rows: Rows::Series(_),
                ..
            }
        )
    }

    /// `input` in place of this node's, with this node's properties.
    fn with_input(&self, input: Arc<dyn ExecutionPlan>) -> Self {
        RebindExec {
            slot: self.slot.clone(),
            input,
            properties: self.properties.clone(),
        }
    }
}

impl DisplayAs for RebindExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let what = match &self.slot {
            Slot::Rows {
                rows: Rows::Series(_),
                ..
            } => "series",
            Slot::Samples { .. } => "samples",
            Slot::Rows {
                rows: Rows::Steps(times),
                ..
            } => {
                return write!(f, "Steps: {} to {} every {} ms", times.0, times.1, times.2);
            }
        };
        if let Some(selection) = self.slot.selection() {
            write!(
                f,
                "Selection: {what} of {:?}, data times ({}, {}]",
                selection.metric.as_deref().unwrap_or(""),
                selection.window.0,
                selection.window.1
            )?;
        }
        Ok(())
    }
}

impl ExecutionPlan for RebindExec {
    fn name(&self) -> &'static str {
        "RebindExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = only_input(children, "RebindExec")?;
        Ok(Arc::new(RebindExec::new(self.slot.clone(), input)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }

    /// Its input's: the physical planner sizes joins by them (a selection's series are
    /// the small side of its join).
    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        match input_stats.first() {
            Some(stats) => Ok(stats.clone()),
            None => Ok(Arc::new(Statistics::new_unknown(&self.schema()))),
        }
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
}

/// What a prepared query's result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    Vector,
    Scalar,
    Matrix,
}

/// Where a prepared plan is kept: the query text and what else shapes its plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PreparedKey {
    pub text: String,
    pub lookback_ms: i64,
    pub resolution: super::planner::ReadResolution,
    /// The step (0 for an instant query) and `end - start`.
    pub step: i64,
    pub span: i64,
}

/// The annotations a plan's nodes and functions write while they run, and those found
/// while it was planned, which every run starts from.
pub struct Annotations {
    pub warnings: Arc<Mutex<Vec<String>>>,
    pub infos: Arc<Mutex<Vec<String>>>,
    planned: (Vec<String>, Vec<String>),
}

impl Annotations {
    pub fn new(warnings: Arc<Mutex<Vec<String>>>, infos: Arc<Mutex<Vec<String>>>) -> Self {
        let planned = (copy(&warnings), copy(&infos));
        Annotations {
            warnings,
            infos,
            planned,
        }
    }

    fn restart(&self) {
        *self.warnings.lock().unwrap_or_else(|p| p.into_inner()) = self.planned.0.clone();
        *self.infos.lock().unwrap_or_else(|p| p.into_inner()) = self.planned.1.clone();
    }

    /// The warnings and infos of the run.
    pub fn collected(&self) -> (Vec<String>, Vec<String>) {
        (copy(&self.warnings), copy(&self.infos))
    }
}

fn copy(list: &Mutex<Vec<String>>) -> Vec<String> {
    list.lock().map(|l| l.clone()).unwrap_or_default()
}

/// A physical plan made for one evaluation time, to run at others.
pub struct PreparedPlan {
    /// The evaluation time it was planned for.
    base: i64,
    /// Reset, and without its scans (see [`without_scans`]).
    plan: Arc<dyn ExecutionPlan>,
    /// Whether it runs in the one-partition session.
    pub small: bool,
    pub kind: ResultKind,
    /// Whether storage held any native histogram when it was planned.
    any_histograms: bool,
    pub annotations: Annotations,
    /// How many series its selections picked when planned, for the cache's weight.
    series: usize,
    /// Taken while one evaluation runs it: its annotations are written in place.
    busy: AtomicBool,
}

/// A prepared plan one evaluation has to itself until it is dropped.
pub struct Claim<'a>(&'a PreparedPlan);

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

impl std::ops::Deref for Claim<'_> {
    type Target = PreparedPlan;

    fn deref(&self) -> &PreparedPlan {
        self.0
    }
}

impl PreparedPlan {
    /// `plan`, made for `base`, to run at other times; None when some leaf of it reads
    /// data but is not a selection's (the physical optimizer replaced one, say): such a
    /// plan would keep reading what it read at `base`.
    pub fn new(
        base: i64,
        plan: Arc<dyn ExecutionPlan>,
        small: bool,
        kind: ResultKind,
        any_histograms: bool,
        annotations: Annotations,
        series: usize,
    ) -> DfResult<Option<Self>> {
        if !leaves_are_selections(&plan) {
            return Ok(None);
        }
        Ok(Some(PreparedPlan {
            base,
            plan: without_scans(&plan)?,
            small,
            kind,
            any_histograms,
            annotations,
            series,
            busy: AtomicBool::new(false),
        }))
    }

    /// The plan for this evaluation alone, or None while another evaluation runs it.
    pub fn claim(&self) -> Option<Claim<'_>> {
        (self
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok())
        .then_some(Claim(self))
    }

    /// The plan moved to start at `time`, its selections picked again from `storage`;
    /// None when storage changed in a way the plan cannot follow (a metric it read for
    /// floats alone now has native histograms), or its selections now pick more than
    /// `most_series` series in all. Starts the run's annotations.
    pub async fn at(
        claim: &Claim<'_>,
        time: i64,
        storage: &Arc<Storage>,
        state: &dyn Session,
        most_series: Option<usize>,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>, PromqlError> {
        if !claim.any_histograms && storage.may_have_histograms(None) {
            return Ok(None);
        }
        let shift = time - claim.base;
        // The nodes to replace, by identity.
        let mut slots: Vec<(usize, &RebindExec)> = Vec::new();
        claim.plan.apply(|node| {
            if let Some(rebind) = node.downcast_ref::<RebindExec>() {
                slots.push((node_id(node), rebind));
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        // Each selection picked again, once, over its window moved to `time`.
        let mut picked: HashMap<usize, (Arc<[SeriesId]>, RecordBatch)> = HashMap::new();
        let mut series = 0;
        for (_, rebind) in &slots {
            let Some(selection) = rebind.slot.selection() else {
                continue;
            };
            let key = Arc::as_ptr(selection) as usize;
            if picked.contains_key(&key) {
                continue;
            }
            if !selection.histograms && storage.may_have_histograms(selection.metric.as_deref()) {
                return Ok(None);
            }
            let (min, max) = (selection.window.0 + shift, selection.window.1 + shift);
            if selection.may_downsample && downsampled_in(storage, min, max) {
                return Ok(None);
            }
            let selected = storage
                .select_series(&selection.selector, min.saturating_add(1), max)
                .await
                .map_err(|e| PromqlError::Execution(format!("{e:#}")))?;
            series += selected.len();
            if most_series.is_some_and(|most| series >= most) {
                return Ok(None);
            }
            picked.insert(key, series_batch(&selected)?);
        }
        let mut fresh: HashMap<usize, Arc<dyn ExecutionPlan>> = HashMap::new();
        for (id, rebind) in slots {
            let picked = |selection: &Arc<Selection>| &picked[&(Arc::as_ptr(selection) as usize)];
            let input = match &rebind.slot {
                Slot::Rows { rows, projection } => {
                    let batch = match rows {
                        Rows::Series(selection) => picked(selection).1.clone(),
                        Rows::Steps(times) => {
                            step_times_batch((times.0 + shift, times.1 + shift, times.2))?
                        }
                    };
                    memory_exec(&batch, projection.as_ref())?
                }
                Slot::Samples {
                    selection,
                    projection,
                    filters,
                } => {
                    let ids = &picked(selection).0;
                    let filters = (filters.iter())
                        .map(|f| shift_filter(f, shift))
                        .collect::<DfResult<Vec<Expr>>>()?;
                    let raw = RawSamples::new(storage.clone(), selection.metric.clone())
                        .with_series(ids.clone());
                    samples_exec(&raw, state, projection.as_ref(), &filters).await?
                }
            };
            let partitions = rebind.properties.output_partitioning().partition_count();
            if input.output_partitioning().partition_count() != partitions {
                // Blocks came or went: the plan's partitioning was worked out for others.
                return Ok(None);
            }
            fresh.insert(id, Arc::new(rebind.with_input(input)));
        }
        let plan = moved(&claim.plan, shift, &mut fresh)?;
        if !fresh.is_empty() {
            // A scan not reached would read what it read when planned: plan anew.
            return Ok(None);
        }
        claim.annotations.restart();
        Ok(Some(plan))
    }

    /// The cache's weight of this plan: its selected series and a little for the rest.
    pub fn weight(&self) -> u32 {
        u32::try_from(self.series.saturating_mul(64).saturating_add(4096)).unwrap_or(u32::MAX)
    }
}

/// Whether storage holds downsampled copies with data in `(min, max]`.
fn downsampled_in(storage: &Storage, min: i64, max: i64) -> bool {
    let manifest = storage.manifest();
    [RES_5M, RES_1H].into_iter().any(|resolution| {
        (manifest.at_resolution(resolution)).any(|b| b.overlaps(min.saturating_add(1), max))
    })
}

/// Whether every leaf of `plan` is under a selection's [`RebindExec`] or reads nothing
/// (an empty relation).
fn leaves_are_selections(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if plan.downcast_ref::<RebindExec>().is_some() {
        return true;
    }
    let children = plan.children();
    if children.is_empty() {
        return plan.downcast_ref::<EmptyExec>().is_some();
    }
    children.into_iter().all(leaves_are_selections)
}

/// `plan` reset, each selection's scan replaced by an empty one with its partitions: a kept
/// plan must hold no scan, for a scan of the head holds a reader, and storage waits for
/// the head's readers before the samples of a new block leave the head.
fn without_scans(plan: &Arc<dyn ExecutionPlan>) -> DfResult<Arc<dyn ExecutionPlan>> {
    if let Some(rebind) = plan.downcast_ref::<RebindExec>() {
        let partitions = plan.output_partitioning().partition_count();
        let empty = EmptyExec::new(rebind.input.schema()).with_partitions(partitions);
        return Ok(Arc::new(rebind.with_input(Arc::new(empty))));
    }
    let children = (plan.children().into_iter())
        .map(without_scans)
        .collect::<DfResult<Vec<_>>>()?;
    let keep = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep);
    plan.clone().replace_children(children, keep)?.reset_state()
}

/// A node's identity while a plan is rewritten.
fn node_id(node: &Arc<dyn ExecutionPlan>) -> usize {
    Arc::as_ptr(node) as *const () as usize
}

/// A node of a prepared plan at the new time, its children first: a selection's fresh scan
/// in place of the old, steps and filter times moved by `shift`, any other node reset. The
/// properties DataFusion worked out when planning are kept rather than worked out again,
/// which would cost more than the rest of a small query: the plan's shape and schemas do
/// not change, and the fresh scans have the partitions the old ones had.
fn moved(
    node: &Arc<dyn ExecutionPlan>,
    shift: i64,
    fresh: &mut HashMap<usize, Arc<dyn ExecutionPlan>>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    if let Some(scan) = fresh.remove(&node_id(node)) {
        return Ok(scan);
    }
    let children = (node.children().into_iter())
        .map(|child| moved(child, shift, fresh))
        .collect::<DfResult<Vec<_>>>()?;
    if let Some(step) = node.downcast_ref::<PromStepExec>() {
        let input = only_input(children, "PromStepExec")?;
        return Ok(Arc::new(step.shifted(shift, input)));
    }
    if let Some(filter) = node.downcast_ref::<FilterExec>() {
        let predicate = shift_literals(filter.predicate().clone(), shift)?;
        if predicate.transformed {
            let filter = FilterExecBuilder::from(filter)
                .with_input(only_input(children, "FilterExec")?)
                .with_predicate(predicate.data)
                .build()?;
            return Ok(Arc::new(filter));
        }
    }
    let keep = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep);
    node.clone().replace_children(children, keep)?.reset_state()
}

/// `expr` with its timestamp literals moved by `shift` ms.
fn shift_literals(
    expr: Arc<dyn PhysicalExpr>,
    shift: i64,
) -> DfResult<Transformed<Arc<dyn PhysicalExpr>>> {
    expr.transform(|e| {
        if let Some(literal) = e.downcast_ref::<Literal>()
            && let ScalarValue::TimestampMillisecond(Some(t), tz) = literal.value()
        {
            let moved = ScalarValue::TimestampMillisecond(Some(t + shift), tz.clone());
            return Ok(Transformed::yes(
                Arc::new(Literal::new(moved)) as Arc<dyn PhysicalExpr>
            ));
        }
        Ok(Transformed::no(e))
    })
}

/// A scan's filter with its timestamp literals moved by `shift` ms.
fn shift_filter(filter: &Expr, shift: i64) -> DfResult<Expr> {
    filter
        .clone()
        .transform(|e| match e {
            Expr::Literal(ScalarValue::TimestampMillisecond(Some(t), tz), meta) => {
                Ok(Transformed::yes(Expr::Literal(
                    ScalarValue::TimestampMillisecond(Some(t + shift), tz),
                    meta,
                )))
            }
            e => Ok(Transformed::no(e)),
        })
        .map(|t| t.data)
}
