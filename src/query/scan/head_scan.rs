//! `HeadScanExec`: the head's samples, read when the plan runs, not when it is made. Planning
//! takes a [`HeadReader`] (so the head keeps what the plan's manifest leaves to it); the
//! stream decodes a few series at a time, straight into Arrow arrays, so a broad scan never
//! holds the whole head's samples at once and `EXPLAIN` reads nothing.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, RecordBatch, RecordBatchOptions, TimestampMillisecondArray,
    UInt64Array, new_null_array,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};

use crate::model::SeriesId;
use crate::storage::histogram_arrow;
use crate::storage::{HeadReader, HeadSamples, SampleColumns, SeriesScope};

use super::timerange::TimeRange;
use super::timestamp_type;

/// Which series a head scan reads.
#[derive(Debug, Clone)]
pub enum HeadScope {
    Ids(Arc<[SeriesId]>),
    Metric(String),
    All,
}

impl HeadScope {
    fn as_scope(&self) -> SeriesScope<'_> {
        match self {
            HeadScope::Ids(ids) => SeriesScope::Ids(ids),
            HeadScope::Metric(m) => SeriesScope::Metric(m),
            HeadScope::All => SeriesScope::All,
        }
    }
}

/// The physical node: `partitions` partitions, each reading the series whose id falls to it
/// (ids are hashes, so they spread evenly and a series never moves), in batches of about the
/// session's batch size. As many partitions as the session targets means DataFusion adds no
/// round-robin repartition (which would buffer batches) above the scan.
#[derive(Debug)]
pub struct HeadScanExec {
    reader: Arc<HeadReader>,
    scope: HeadScope,
    range: TimeRange,
    /// Columns of the raw-samples schema to produce, in order.
    columns: Vec<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl HeadScanExec {
    /// `schema` is the projected schema; `columns` the raw-samples columns it holds
    /// (0 series id, 1 timestamp, 2 value, 3 start timestamp).
    pub fn new(
        reader: Arc<HeadReader>,
        scope: HeadScope,
        range: TimeRange,
        columns: Vec<usize>,
        schema: SchemaRef,
        partitions: usize,
    ) -> Self {
        let partitions = partitions.max(1);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        HeadScanExec {
            reader,
            scope,
            range,
            columns,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for HeadScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let scope = match &self.scope {
            HeadScope::Ids(ids) => format!("{} series", ids.len()),
            HeadScope::Metric(m) => format!("metric={m}"),
            HeadScope::All => "all series".into(),
        };
        write!(
            f,
            "HeadScanExec: {scope}, time=[{}, {}]",
            self.range.min, self.range.max
        )
    }
}

impl ExecutionPlan for HeadScanExec {
    fn name(&self) -> &'static str {
        "HeadScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "HeadScanExec takes no children".into(),
            ))
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let partitions = self.properties.output_partitioning().partition_count();
        if partition >= partitions {
            return Err(DataFusionError::Internal(format!(
                "HeadScanExec has {partitions} partitions, not {partition}"
            )));
        }
        let batch_rows = context.session_config().batch_size().max(1);
        let mut ids = self.reader.series_ids(self.scope.as_scope());
        let n = partitions as u64;
        ids.retain(|id| id % n == partition as u64);
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let mut state = Scan {
            reader: self.reader.clone(),
            ids,
            next: 0,
            range: self.range,
            columns: self.columns.clone(),
            schema: self.schema.clone(),
            batch_rows,
        };
        let batches = futures::stream::iter(std::iter::from_fn(move || {
            let timer = baseline.elapsed_compute().timer();
            let batch = state.next_batch();
            timer.done();
            if let Some(Ok(b)) = &batch {
                baseline.record_output(b.num_rows());
            }
            batch
        }));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            batches,
        )))
    }
}

/// The stream's progress through the series.
struct Scan {
    reader: Arc<HeadReader>,
    ids: Vec<SeriesId>,
    next: usize,
    range: TimeRange,
    columns: Vec<usize>,
    schema: SchemaRef,
    batch_rows: usize,
}

impl Scan {
    /// Decodes series until a batch's worth of rows (or the last series) is read. A series
    /// is never split, so one batch may pass the size by a series' samples.
    fn next_batch(&mut self) -> Option<DfResult<RecordBatch>> {
        let mut samples = HeadSamples::default();
        let first = self.next;
        while self.next < self.ids.len() && samples.series.len() < self.batch_rows {
            // A few series at a time keeps each stripe lock short.
            let end = (self.next + 16).min(self.ids.len());
            self.reader.read_into(
                &self.ids[self.next..end],
                self.range.min,
                self.range.max,
                &mut samples,
            );
            if self.next == first {
                // Room for the rest of the batch at the first series' rate, rather than
                // growing the columns step by step.
                let per_series = samples.series.len() / (end - first).max(1);
                let expected = per_series * (self.ids.len() - first);
                let target = expected.min(self.batch_rows) + per_series;
                samples.reserve(target.saturating_sub(samples.series.len()));
            }
            self.next = end;
        }
        if samples.series.is_empty() {
            return None;
        }
        Some(to_batch(samples, &self.columns, self.schema.clone()))
    }
}

/// One batch of the projected columns. Each column is moved into its array, not copied.
pub fn to_batch(
    samples: HeadSamples,
    columns: &[usize],
    schema: SchemaRef,
) -> DfResult<RecordBatch> {
    let rows = samples.series.len();
    let HeadSamples { series, columns: c } = samples;
    let SampleColumns {
        timestamps,
        values,
        start_timestamps,
        histograms,
    } = c;
    let (mut series, mut timestamps, mut values, mut start_timestamps) = (
        Some(series),
        Some(timestamps),
        Some(values),
        Some(start_timestamps),
    );
    // A histogram's row has a null value.
    let value_nulls = (!histograms.is_empty())
        .then(|| NullBuffer::from_iter(histograms.iter().map(Option::is_none)));
    let mut histograms = Some(histograms);
    // A column projected twice (which DataFusion does not do) would come out empty the
    // second time and fail the batch's length check below.
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for column in columns {
        arrays.push(match *column {
            0 => Arc::new(UInt64Array::from(series.take().unwrap_or_default())),
            1 => Arc::new(
                TimestampMillisecondArray::from(timestamps.take().unwrap_or_default())
                    .with_timezone("UTC"),
            ),
            2 => Arc::new(Float64Array::new(
                values.take().unwrap_or_default().into(),
                value_nulls.clone(),
            )),
            3 => start_timestamp_array(start_timestamps.take().unwrap_or_default(), rows),
            _ => match histograms.take().unwrap_or_default() {
                h if h.is_empty() => histogram_arrow::null_array(rows),
                h => histogram_arrow::to_array(&h),
            },
        });
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(schema, arrays, &options)?)
}

/// The start timestamps of the head's selected samples: null where unknown (0), and all
/// null, without a buffer, when none of them had one (`starts` is then empty).
fn start_timestamp_array(starts: Vec<i64>, rows: usize) -> ArrayRef {
    if starts.iter().all(|s| *s == 0) {
        return new_null_array(&timestamp_type(), rows);
    }
    let valid = NullBuffer::from_iter(starts.iter().map(|st| *st != 0));
    Arc::new(TimestampMillisecondArray::new(starts.into(), Some(valid)).with_timezone("UTC"))
}
