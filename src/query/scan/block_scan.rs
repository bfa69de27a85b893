//! The Parquet scan of a set of blocks' data files, shared by the raw and the downsampled
//! tables: blocks outside the time range or without the metric are skipped, and the
//! metric, series and time predicates prune row groups and pages.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{col, lit};

use crate::model::SeriesId;
use crate::storage::BlockMeta;

use super::timerange::TimeRange;
use super::{BLOCKS_URL, SERIES_ID};

/// Up to this many series, a block scan tests row groups' `series_id` statistics against
/// each of them; beyond it, the list costs more to test than it saves.
const PRUNE_BY_SERIES: usize = 64;

pub struct BlockScan<'a> {
    /// Only this metric's rows (others sharing a page are dropped by the caller's join).
    pub metric: Option<&'a str>,
    /// Only these series, when the caller knows them.
    pub series: Option<&'a [SeriesId]>,
    pub range: TimeRange,
    /// The data file's schema (its first column is `metric`).
    pub file_schema: SchemaRef,
    /// The file columns to read, in the order the caller's schema has them.
    pub file_projection: Vec<usize>,
}

impl BlockScan<'_> {
    /// A `DataSourceExec` over those of `blocks` that can hold matching rows, spread over
    /// the session's partitions; None when no block can.
    pub fn plan<'b>(
        &self,
        state: &dyn Session,
        blocks: impl Iterator<Item = &'b BlockMeta>,
        filters: &[Expr],
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let files: Vec<PartitionedFile> = blocks
            .filter(|b| b.overlaps(self.range.min, self.range.max))
            .filter(|b| self.metric.is_none_or(|m| b.metrics.contains_key(m)))
            .map(|b| PartitionedFile::new(b.data_path().to_string(), b.data_file_bytes))
            .collect();
        if files.is_empty() {
            return Ok(None);
        }
        let mut predicates: Vec<Expr> = filters.to_vec();
        if let Some(m) = self.metric {
            predicates.push(col("metric").eq(lit(m)));
        }
        if let Some(ids) = self.series.filter(|ids| ids.len() <= PRUNE_BY_SERIES) {
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
        let mut source = ParquetSource::new(self.file_schema.clone())
            .with_parquet_file_reader_factory(Arc::new(readers));
        if let Some(predicate) = conjunction(predicates) {
            let df_schema = DFSchema::try_from(self.file_schema.as_ref().clone())?;
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        let partitions = state.config().target_partitions().max(1);
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions.min(files.len())];
        for (i, f) in files.into_iter().enumerate() {
            let n = groups.len();
            groups[i % n].push(f);
        }
        let config = FileScanConfigBuilder::new(url, Arc::new(source))
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(Some(self.file_projection.clone()))?
            .build();
        Ok(Some(DataSourceExec::from_data_source(config)))
    }
}
