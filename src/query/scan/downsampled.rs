//! `DownsampledSamples`: `series_id`, `timestamp` and the aggregates (`count`, `sum`,
//! `min`, `max`, `counter`) of one metric at one resolution, from the downsampled blocks.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use crate::storage::Storage;
use crate::storage::downsample;

use super::TIMESTAMP;
use super::block_scan::BlockScan;
use super::timerange::TimeRange;

#[derive(Debug)]
pub struct DownsampledSamples {
    storage: Arc<Storage>,
    metric: Option<String>,
    resolution_ms: i64,
    /// The only blocks to read, when the caller chose them.
    only: Option<Arc<[String]>>,
    schema: SchemaRef,
}

impl DownsampledSamples {
    pub fn new(storage: Arc<Storage>, metric: Option<String>, resolution_ms: i64) -> Self {
        // The data file without its leading `metric` column.
        let file = downsample::schema();
        let schema = Arc::new(
            file.project(&(1..file.fields().len()).collect::<Vec<_>>())
                .expect("the downsampled schema has a metric column first"),
        );
        DownsampledSamples {
            storage,
            metric,
            resolution_ms,
            only: None,
            schema,
        }
    }

    /// Reads only the blocks `ids`.
    pub fn only_blocks(mut self, ids: Arc<[String]>) -> Self {
        self.only = Some(ids);
        self
    }
}

#[async_trait]
impl TableProvider for DownsampledSamples {
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
        let columns: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let scan = BlockScan {
            metric: self.metric.as_deref(),
            series: None,
            range: TimeRange::from_filters(filters, TIMESTAMP),
            file_schema: downsample::schema(),
            file_projection: columns.iter().map(|i| i + 1).collect(),
        };
        let manifest = self.storage.manifest();
        let blocks = (manifest.at_resolution(self.resolution_ms))
            .filter(|b| self.only.as_ref().is_none_or(|ids| ids.contains(&b.id)));
        match scan.plan(state, blocks, filters)? {
            Some(plan) => Ok(plan),
            None => Ok(Arc::new(EmptyExec::new(Arc::new(
                self.schema.project(&columns)?,
            )))),
        }
    }
}
