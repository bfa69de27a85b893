//! The SQL tables over storage.
//!
//! Samples and series are stored apart (samples carry only a series id), so every
//! user-facing table is a view: a small in-memory table of the series involved, joined on
//! `series_id` with [`RawSamples`], which scans the head and the Parquet blocks. Filters on
//! labels land on the series side; the join's dynamic filter then limits the sample scan to
//! those series, and time filters prune blocks, row groups and pages.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, StringBuilder, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, JoinType, Result as DfResult};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemTable;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::provider_as_source;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use datafusion::prelude::{col, lit};

use crate::model::{Labels, SeriesId};
use crate::storage::block::{data_schema, labels_map_type, new_labels_builder};
use crate::storage::{Manifest, Storage, metric_selector};

use super::head_scan::{HeadScanExec, HeadScope};
use super::timerange::TimeRange;

/// Where DataFusion finds the block files: registered in the session's runtime.
pub const BLOCKS_URL: &str = "quiver://blocks/";

pub const TIMESTAMP: &str = "timestamp";
pub const VALUE: &str = "value";
pub const START_TIMESTAMP: &str = "start_timestamp";
pub const SERIES_ID: &str = "series_id";

pub(super) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

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
        let mut source = ParquetSource::new(file_schema.clone());
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
        let url = ObjectStoreUrl::parse(BLOCKS_URL)?;
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

/// The series a table needs, gathered from the head and the blocks' series files.
pub struct SeriesSet {
    pub series: BTreeMap<SeriesId, Arc<Labels>>,
}

impl SeriesSet {
    /// Series of `metric` (or of every metric) in head and blocks.
    pub async fn collect(storage: &Storage, metric: Option<&str>) -> anyhow::Result<SeriesSet> {
        Self::collect_in_range(storage, metric, i64::MIN, i64::MAX).await
    }

    /// Series of `metric` (or all) with samples between `min` and `max` (inclusive, ms),
    /// in the head or the blocks.
    pub async fn collect_in_range(
        storage: &Storage,
        metric: Option<&str>,
        min: i64,
        max: i64,
    ) -> anyhow::Result<SeriesSet> {
        let series = storage
            .select_series(&metric_selector(metric), min, max)
            .await?;
        Ok(SeriesSet { series })
    }

    /// Label names across the set, without `__name__`.
    pub fn label_names(&self) -> BTreeSet<String> {
        self.series
            .values()
            .flat_map(|l| l.without_metric_name().map(|(n, _)| n.to_string()))
            .collect()
    }
}

/// The column a label gets in a metric table: its own name, unless that collides with the
/// fixed `timestamp`/`value` columns.
pub fn label_column_name(label: &str) -> String {
    if label == TIMESTAMP || label == VALUE {
        format!("label_{label}")
    } else {
        label.to_string()
    }
}

/// The series id column inside a metric table's plan. `#` cannot appear in a label name, so
/// a label called `series_id` cannot collide with it.
const METRIC_SERIES_KEY: &str = "#series_id";

/// A metric's table: one Utf8 column per label name, `timestamp`, `value`.
pub fn metric_table(
    storage: Arc<Storage>,
    metric: &str,
    set: &SeriesSet,
) -> anyhow::Result<Arc<dyn TableProvider>> {
    let label_names: Vec<String> = set.label_names().into_iter().collect();
    let mut fields = vec![Field::new(METRIC_SERIES_KEY, DataType::UInt64, false)];
    fields.extend(
        label_names
            .iter()
            .map(|n| Field::new(label_column_name(n), DataType::Utf8, true)),
    );
    let schema = Arc::new(Schema::new(fields));
    let mut columns: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from_iter_values(
        set.series.keys().copied(),
    ))];
    for name in &label_names {
        let mut b = StringBuilder::new();
        for labels in set.series.values() {
            b.append_option(labels.get(name));
        }
        columns.push(Arc::new(b.finish()));
    }
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let mut outputs: Vec<Expr> = label_names
        .iter()
        .map(|n| {
            Expr::Column(datafusion::common::Column::new(
                Some("s"),
                label_column_name(n),
            ))
        })
        .collect();
    outputs.push(col("r.timestamp").alias(TIMESTAMP));
    outputs.push(col("r.value").alias(VALUE));
    let plan = join_view(
        storage,
        Some(metric),
        schema,
        batch,
        METRIC_SERIES_KEY,
        outputs,
    )?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// All samples: `metric`, `labels` (map), `timestamp`, `value`.
pub fn samples_table(
    storage: Arc<Storage>,
    set: &SeriesSet,
) -> anyhow::Result<Arc<dyn TableProvider>> {
    let batch = series_batch(set)?;
    let outputs = vec![
        col("s.metric").alias("metric"),
        col("s.labels").alias("labels"),
        col("r.timestamp").alias(TIMESTAMP),
        col("r.value").alias(VALUE),
    ];
    let plan = join_view(storage, None, batch.schema(), batch, SERIES_ID, outputs)?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// Every series: `series_id`, `metric`, `labels` (map).
pub fn series_table(set: &SeriesSet) -> anyhow::Result<Arc<dyn TableProvider>> {
    let batch = series_batch(set)?;
    Ok(Arc::new(MemTable::try_new(
        batch.schema(),
        vec![vec![batch]],
    )?))
}

fn series_batch(set: &SeriesSet) -> anyhow::Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(SERIES_ID, DataType::UInt64, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("labels", labels_map_type(), false),
    ]));
    let mut labels = new_labels_builder();
    for l in set.series.values() {
        for (n, v) in l.without_metric_name() {
            labels.keys().append_value(n);
            labels.values().append_value(v);
        }
        labels.append(true)?;
    }
    let metrics = StringArray::from_iter_values(
        set.series
            .values()
            .map(|l| l.metric_name().unwrap_or_default()),
    );
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(UInt64Array::from_iter_values(set.series.keys().copied())),
            Arc::new(metrics),
            Arc::new(labels.finish()),
        ],
    )?)
}

/// `series (s) JOIN raw samples (r) ON s.<series_key> = r.series_id`, projected to `outputs`.
fn join_view(
    storage: Arc<Storage>,
    metric: Option<&str>,
    series_schema: SchemaRef,
    series: RecordBatch,
    series_key: &str,
    outputs: Vec<Expr>,
) -> anyhow::Result<LogicalPlan> {
    let series_table = MemTable::try_new(series_schema, vec![vec![series]])?;
    let raw = RawSamples::new(storage, metric.map(str::to_string));
    let raw_scan =
        LogicalPlanBuilder::scan("r", provider_as_source(Arc::new(raw)), None)?.build()?;
    let plan = LogicalPlanBuilder::scan("s", provider_as_source(Arc::new(series_table)), None)?
        .join(
            raw_scan,
            JoinType::Inner,
            (
                vec![datafusion::common::Column::new(Some("s"), series_key)],
                vec![datafusion::common::Column::new(Some("r"), SERIES_ID)],
            ),
            None,
        )?
        .project(outputs)?
        .build()?;
    Ok(plan)
}
