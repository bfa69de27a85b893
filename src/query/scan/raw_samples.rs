//! `RawSamples`: `series_id`, `timestamp`, `value`, `start_timestamp` of one metric (or
//! all), from the head (read in `execute()` by [`super::head_scan`]) and the Parquet blocks
//! (one `DataSourceExec` whose predicate prunes blocks, row groups and pages).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use datafusion::prelude::{col, lit};

use crate::model::SeriesId;
use crate::storage::block::data_schema;
use crate::storage::{Manifest, Storage};

use super::head_scan::{HeadScanExec, HeadScope};
use super::timerange::TimeRange;
use super::{BLOCKS_URL, SERIES_ID, START_TIMESTAMP, TIMESTAMP, VALUE, timestamp_type};

/// Up to this many series, a block scan tests row groups' `series_id` statistics against
/// each of them; beyond it, the list costs more to test than it saves.
const PRUNE_BY_SERIES: usize = 64;

/// `series_id`, `timestamp`, `value`, `start_timestamp` (null when unknown) of one metric
/// (or all), from head and blocks.
#[derive(Debug)]
pub struct RawSamples {
    storage: Arc<Storage>,
    metric: Option<String>,
    /// The only series to read, when the caller already knows them (a PromQL selector).
    series: Option<Arc<[SeriesId]>>,
    schema: SchemaRef,
}

impl RawSamples {
    pub fn new(storage: Arc<Storage>, metric: Option<String>) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new(SERIES_ID, DataType::UInt64, false),
            Field::new(TIMESTAMP, timestamp_type(), false),
            Field::new(VALUE, DataType::Float64, false),
            Field::new(START_TIMESTAMP, timestamp_type(), true),
        ]));
        RawSamples {
            storage,
            metric,
            series: None,
            schema,
        }
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
        let files: Vec<PartitionedFile> = manifest
            .blocks
            .iter()
            .filter(|b| b.overlaps(range.min, range.max))
            .filter(|b| {
                self.metric
                    .as_ref()
                    .is_none_or(|m| b.metrics.contains_key(m))
            })
            .map(|b| PartitionedFile::new(b.data_path().to_string(), b.data_file_bytes))
            .collect();
        if files.is_empty() {
            return Ok(None);
        }
        let file_schema = data_schema();
        let mut predicates: Vec<Expr> = filters.to_vec();
        if let Some(m) = &self.metric {
            // Prunes row groups and pages of other metrics; rows of other metrics that share
            // a page are dropped by the join on series_id.
            predicates.push(col("metric").eq(lit(m.as_str())));
        }
        if let Some(ids) = self
            .series
            .as_ref()
            .filter(|ids| ids.len() <= PRUNE_BY_SERIES)
        {
            let ids = ids.iter().map(|id| lit(*id)).collect();
            predicates.push(col(SERIES_ID).in_list(ids, false));
        }
        // Footers and page indexes come from the runtime's metadata cache (see
        // `metadata_cache`), byte ranges through the store's cache.
        let url = ObjectStoreUrl::parse(BLOCKS_URL)?;
        let runtime = state.runtime_env();
        let readers = CachedParquetFileReaderFactory::new(
            runtime.object_store(&url)?,
            runtime.cache_manager.get_file_metadata_cache(),
        );
        let mut source = ParquetSource::new(file_schema.clone())
            .with_parquet_file_reader_factory(Arc::new(readers));
        if let Some(predicate) = conjunction(predicates) {
            let df_schema = DFSchema::try_from(file_schema.as_ref().clone())?;
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        // Raw column i is file column i + 1 (the file also has `metric` first).
        let file_projection: Vec<usize> = match projection {
            Some(p) => p.iter().map(|i| i + 1).collect(),
            None => vec![1, 2, 3, 4],
        };
        let partitions = state.config().target_partitions().max(1);
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions.min(files.len())];
        for (i, f) in files.into_iter().enumerate() {
            let n = groups.len();
            groups[i % n].push(f);
        }
        let config = FileScanConfigBuilder::new(url, Arc::new(source))
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(Some(file_projection))?
            .build();
        Ok(Some(DataSourceExec::from_data_source(config)))
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
        Ok(filters
            .iter()
            .map(|f| {
                if TimeRange::understands(f, TIMESTAMP) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
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
