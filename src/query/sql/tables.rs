//! The SQL tables over storage.
//!
//! Samples and series are stored apart (samples carry only a series id), so every
//! user-facing table is a view: a small in-memory table of the series involved, joined on
//! `series_id` with [`RawSamples`], which scans the head and the Parquet blocks. Filters on
//! labels land on the series side; the join's dynamic filter then limits the sample scan to
//! those series, and time filters prune blocks, row groups and pages.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, StringBuilder, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::catalog::view::ViewTable;
use datafusion::common::JoinType;
use datafusion::datasource::memory::MemTable;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::col;

use crate::query::scan::{
    DownsampledSamples, HISTOGRAM, RawSamples, SERIES_ID, START_TIMESTAMP, SeriesSet, TIMESTAMP,
    VALUE, label_column_name,
};
use crate::storage::Storage;
use crate::storage::block::{labels_map_type, new_labels_builder};
use crate::storage::downsample::AGGREGATES;

/// The series id column inside a metric table's plan. `#` cannot appear in a label name, so
/// a label called `series_id` cannot collide with it.
const METRIC_SERIES_KEY: &str = "#series_id";

/// A metric's table: one Utf8 column per label name, `timestamp`, `value`.
pub fn metric_table(
    storage: Arc<Storage>,
    metric: &str,
    set: &SeriesSet,
) -> anyhow::Result<Arc<dyn TableProvider>> {
    let raw = RawSamples::new(storage, Some(metric.to_string()));
    metric_view(Arc::new(raw), set, &[VALUE])
}

/// A metric's table at a resolution: one Utf8 column per label name, `timestamp` (of each
/// window's last sample) and the aggregates `count`, `sum`, `min`, `max`, `counter`.
pub fn downsampled_table(
    storage: Arc<Storage>,
    metric: &str,
    set: &SeriesSet,
    resolution_ms: i64,
) -> anyhow::Result<Arc<dyn TableProvider>> {
    let samples = DownsampledSamples::new(storage, Some(metric.to_string()), resolution_ms);
    metric_view(Arc::new(samples), set, &AGGREGATES)
}

/// The series of `set` as label columns, joined with `samples` (which has `series_id` and
/// `timestamp`), projected to the labels, `timestamp` and `values`.
fn metric_view(
    samples: Arc<dyn TableProvider>,
    set: &SeriesSet,
    values: &[&str],
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
    outputs.extend(values.iter().map(|v| col(format!("r.{v}")).alias(*v)));
    let plan = join_view(samples, schema, batch, METRIC_SERIES_KEY, outputs)?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// All samples: `metric`, `labels` (map), `timestamp`, `value` (null on a native
/// histogram's row), `start_timestamp` (null when unknown), `histogram` (the native
/// histogram, null on a float's row).
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
        col(format!("r.{START_TIMESTAMP}")).alias(START_TIMESTAMP),
        col(format!("r.{HISTOGRAM}")).alias(HISTOGRAM),
    ];
    let raw = Arc::new(RawSamples::new(storage, None));
    let plan = join_view(raw, batch.schema(), batch, SERIES_ID, outputs)?;
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

/// `series (s) JOIN samples (r) ON s.<series_key> = r.series_id`, projected to `outputs`.
fn join_view(
    samples: Arc<dyn TableProvider>,
    series_schema: SchemaRef,
    series: RecordBatch,
    series_key: &str,
    outputs: Vec<Expr>,
) -> anyhow::Result<LogicalPlan> {
    let series_table = MemTable::try_new(series_schema, vec![vec![series]])?;
    let raw_scan = LogicalPlanBuilder::scan("r", provider_as_source(samples), None)?.build()?;
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
