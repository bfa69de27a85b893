//! `RawSamples`: `series_id`, `timestamp`, `value`, `start_timestamp`, `histogram` of one
//! metric (or all), from the head (read in `execute()` by [`super::head_scan`]) and the Parquet blocks
//! (one `DataSourceExec` whose predicate prunes blocks, row groups and pages).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;

use crate::model::SeriesId;
use crate::storage::block::data_schema;
use crate::storage::histogram_arrow::histogram_type;
use crate::storage::{Manifest, Storage};

use super::block_scan::BlockScan;
use super::head_scan::{HeadScanExec, HeadScope};
use super::timerange::TimeRange;
use super::{HISTOGRAM, SERIES_ID, START_TIMESTAMP, TIMESTAMP, VALUE, timestamp_type};

/// `series_id`, `timestamp`, `value` (null on a native histogram's row), `start_timestamp`
/// (null when unknown), `histogram` (null on a float's row) of one metric (or all), from
/// head and blocks.
#[derive(Debug)]
pub struct RawSamples {
    storage: Arc<Storage>,
    metric: Option<String>,
    /// The only series to read, when the caller already knows them (a PromQL selector).
    series: Option<Arc<[SeriesId]>>,
    /// Blocks not to read: their time is read from downsampled copies instead.
    skip_blocks: Arc<[String]>,
    schema: SchemaRef,
}

impl RawSamples {
    pub fn new(storage: Arc<Storage>, metric: Option<String>) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new(SERIES_ID, DataType::UInt64, false),
            Field::new(TIMESTAMP, timestamp_type(), false),
            Field::new(VALUE, DataType::Float64, true),
            Field::new(START_TIMESTAMP, timestamp_type(), true),
            Field::new(HISTOGRAM, histogram_type(), true),
        ]));
        RawSamples {
            storage,
            metric,
            series: None,
            skip_blocks: Arc::new([]),
            schema,
        }
    }

    /// Leaves out the raw blocks `ids` (whose downsampled copies the caller reads).
    pub fn without_blocks(mut self, ids: Arc<[String]>) -> Self {
        self.skip_blocks = ids;
        self
    }

    /// Reads only `series`: the head copies just their samples, and blocks
    /// skip row groups holding none of a few of them. Rows of other series may still come
    /// from blocks, so the caller keeps its own filter (PromQL joins on the ids anyway).
    pub fn with_series(mut self, series: Arc<[SeriesId]>) -> Self {
        self.series = Some(series);
        self
    }

    fn blocks_exec(
        &self,
        state: &dyn Session,
        manifest: &Manifest,
        range: TimeRange,
        filters: &[Expr],
        projection: Option<&Vec<usize>>,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        // Raw column i is file column i + 1 (the file also has `metric` first).
        let file_projection: Vec<usize> = match projection {
            Some(p) => p.iter().map(|i| i + 1).collect(),
            None => vec![1, 2, 3, 4, 5],
        };
        let scan = BlockScan {
            metric: self.metric.as_deref(),
            series: self.series.as_deref(),
            range,
            file_schema: data_schema(),
            file_projection,
        };
        let blocks = (manifest.blocks.iter()).filter(|b| !self.skip_blocks.contains(&b.id));
        scan.plan(state, blocks, filters)
    }
}

#[async_trait]
impl TableProvider for RawSamples {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(TimeRange::pushdown(filters, TIMESTAMP))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let range = TimeRange::from_filters(filters, TIMESTAMP);
        // The head is read when the plan runs; the reader keeps it consistent with the
        // manifest whose blocks are planned here.
        let reader = Arc::new(self.storage.head_reader());
        let scope = match (&self.series, &self.metric) {
            (Some(ids), _) => HeadScope::Ids(ids.clone()),
            (None, Some(m)) => HeadScope::Metric(m.clone()),
            (None, None) => HeadScope::All,
        };
        let columns: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&columns)?);
        let partitions = state.config().target_partitions();
        let head = HeadScanExec::new(reader.clone(), scope, range, columns, schema, partitions);
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = vec![Arc::new(head)];
        if let Some(blocks) =
            self.blocks_exec(state, reader.manifest(), range, filters, projection)?
        {
            inputs.push(blocks);
        }
        UnionExec::try_new(inputs)
    }
}
