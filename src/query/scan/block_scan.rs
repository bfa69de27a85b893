//! The Parquet scan of a set of blocks' data files, shared by the raw and the downsampled
//! tables: blocks outside the time range or without the metric are skipped, and the
//! metric, series and time predicates prune row groups and pages.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, Operator, binary_expr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::union::UnionExec;
use datafusion::prelude::{col, lit};

use crate::model::SeriesId;
use crate::storage::BlockMeta;

use super::timerange::TimeRange;
use super::{BLOCKS_URL, SERIES_ID};

/// Up to this many series, a block scan tests row groups' `series_id` statistics against
/// each of them; beyond it, the list costs more to test than it saves.
const PRUNE_BY_SERIES: usize = 64;

/// Block files are read by at least this many partitions (when there is enough to read):
/// reading from S3 waits on the network, so more reads in flight than cores pays off.
const IO_PARTITIONS: usize = 8;

/// A file is split between partitions in pieces of at least this many bytes (each reads
/// the row groups whose middle falls in its piece).
const MIN_PIECE_BYTES: u64 = 8 << 20;

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
        // Blocks by the salt of their series ids: zero but on a read-only node over
        // writers with external labels (see `storage::query_tier`).
        let mut by_salt: BTreeMap<u64, Vec<(String, u64)>> = BTreeMap::new();
        for b in blocks
            .filter(|b| b.overlaps(self.range.min, self.range.max))
            .filter(|b| self.metric.is_none_or(|m| b.metrics.contains_key(m)))
        {
            let salt = b.view.as_ref().map_or(0, |v| v.salt);
            let file = (b.data_path().to_string(), b.data_file_bytes);
            by_salt.entry(salt).or_default().push(file);
        }
        let mut plans = Vec::with_capacity(by_salt.len());
        for (salt, files) in by_salt {
            plans.push(self.plan_files(state, &files, salt, filters)?);
        }
        match plans.len() {
            0 => Ok(None),
            1 => Ok(plans.pop()),
            _ => Ok(Some(UnionExec::try_new(plans)?)),
        }
    }

    /// The scan of `files`, whose series ids are XORed with `salt` in the merged view.
    fn plan_files(
        &self,
        state: &dyn Session,
        files: &[(String, u64)],
        salt: u64,
        filters: &[Expr],
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut predicates: Vec<Expr> = filters.to_vec();
        if let Some(m) = self.metric {
            predicates.push(col("metric").eq(lit(m)));
        }
        if let Some(ids) = self.series.filter(|ids| ids.len() <= PRUNE_BY_SERIES) {
            let ids = ids.iter().map(|id| lit(*id ^ salt)).collect();
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
        let df_schema = DFSchema::try_from(self.file_schema.as_ref().clone())?;
        if let Some(predicate) = conjunction(predicates) {
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        let partitions = state.config().target_partitions().max(IO_PARTITIONS);
        let groups = spread(files, partitions);
        let config = FileScanConfigBuilder::new(url, Arc::new(source))
            .with_file_groups(groups)
            .with_projection_indices(Some(self.file_projection.clone()))?
            .build();
        let scan = DataSourceExec::from_data_source(config);
        let projected = scan.schema();
        if salt == 0 || projected.index_of(SERIES_ID).is_err() {
            return Ok(scan);
        }
        // The merged view's ids: the file's XORed with the salt.
        let out_schema = DFSchema::try_from(projected.as_ref().clone())?;
        let exprs = (projected.fields().iter())
            .map(|f| {
                let column = col(f.name().as_str());
                let expr = match f.name() == SERIES_ID {
                    true => binary_expr(column, Operator::BitwiseXor, lit(salt)),
                    false => column,
                };
                Ok(ProjectionExpr {
                    expr: state.create_physical_expr(expr, &out_schema)?,
                    alias: f.name().clone(),
                })
            })
            .collect::<DfResult<Vec<_>>>()?;
        Ok(Arc::new(ProjectionExec::try_new(exprs, scan)?))
    }
}

/// The files (path, size) spread over at most `partitions` groups: large files are cut into
/// byte ranges of at least [`MIN_PIECE_BYTES`] so one big block is read by several
/// partitions, then the pieces are dealt out round robin.
fn spread(files: &[(String, u64)], partitions: usize) -> Vec<FileGroup> {
    let total: u64 = files.iter().map(|(_, size)| size).sum();
    let piece = (total / partitions as u64).max(MIN_PIECE_BYTES);
    let mut pieces = Vec::new();
    for (path, size) in files {
        let n = size.div_ceil(piece).max(1);
        let step = size.div_ceil(n);
        for i in 0..n {
            let (start, end) = (i * step, ((i + 1) * step).min(*size));
            pieces.push(match n {
                1 => PartitionedFile::new(path.clone(), *size),
                _ => PartitionedFile::new_with_range(path.clone(), *size, start as i64, end as i64),
            });
        }
    }
    let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions.min(pieces.len())];
    for (i, p) in pieces.into_iter().enumerate() {
        let n = groups.len();
        groups[i % n].push(p);
    }
    groups.into_iter().map(FileGroup::new).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_files_are_cut_into_pieces_and_small_ones_kept_whole() {
        let mb = 1 << 20;
        let files = vec![("a".to_string(), 100 * mb), ("b".to_string(), mb)];
        let groups = spread(&files, 8);
        assert_eq!(groups.len(), 8);
        let pieces: Vec<&PartitionedFile> = groups.iter().flat_map(|g| g.iter()).collect();
        let a: Vec<(i64, i64)> = (pieces.iter())
            .filter(|p| p.object_meta.location.as_ref() == "a")
            .map(|p| p.range.as_ref().map(|r| (r.start, r.end)).unwrap())
            .collect();
        // 101 MiB over 8 partitions: pieces of about 12.6 MiB, the last shorter.
        assert_eq!(a.len(), 8);
        assert_eq!(a.first().unwrap().0, 0);
        assert_eq!(a.last().unwrap().1, 100 * mb as i64);
        assert!(a.windows(2).all(|w| w[0].1 == w[1].0), "{a:?}");
        let b: Vec<&&PartitionedFile> = pieces
            .iter()
            .filter(|p| p.object_meta.location.as_ref() == "b")
            .collect();
        assert!(b.len() == 1 && b[0].range.is_none());
        // Small data: one piece per file, one group per piece.
        assert_eq!(spread(&files[1..], 8).len(), 1);
    }
}
