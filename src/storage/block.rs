//! Blocks: one closed time window of samples as plain Parquet in the object store.
//!
//! A block is a folder `blocks/<id>/` with two files:
//! - `data.parquet`: `metric` (utf8), `series_id` (uint64), `timestamp` (timestamp ms UTC),
//!   `value` (float64, null on a native histogram's row), `start_timestamp` (null when
//!   unknown), `histogram` (a struct, null on a float's row: see
//!   [`super::histogram_arrow`]), sorted by (metric, series_id, timestamp). Timestamps are
//!   delta-encoded, values byte-stream-split, all zstd, with page statistics so a scan for a
//!   few series reads a few pages. Blocks written before start timestamps or histograms
//!   lack those columns, and read as all null.
//! - `series.parquet`: `series_id`, `metric`, `labels` (map utf8 -> utf8, without
//!   `__name__`), one row per series in the block.
//!
//! Any Parquet reader can join the two on `series_id`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{
    Array, ArrayRef, Float64Array, MapArray, MapBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMillisecondArray, UInt64Array,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::model::{Histogram, Labels, METRIC_NAME_LABEL, SeriesId};

use super::head::Head;
use super::histogram_arrow;
use super::histogram_arrow::{HISTOGRAM_COLUMN, HistogramColumn, histogram_type};
use super::series::SampleColumns;
use super::wal::{WalHistogram, WalSample};

pub const DATA_FILE: &str = "data.parquet";
pub const SERIES_FILE: &str = "series.parquet";
pub(super) const ROWS_PER_BATCH: usize = 64 * 1024;

/// The manifest's record of one block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    pub id: String,
    /// Inclusive lower and exclusive upper bound of the window, in ms.
    pub min_time: i64,
    pub max_time: i64,
    pub num_series: u64,
    pub num_samples: u64,
    /// Size of both files together.
    pub data_bytes: u64,
    /// Exact size of `data.parquet`, which readers need to find its footer.
    pub data_file_bytes: u64,
    /// Metric name -> label names used by its series in this block.
    pub metrics: BTreeMap<String, BTreeSet<String>>,
    /// The metrics with native histogram samples in this block, so that queries of the
    /// others plan for floats only. Blocks written before histograms have none.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub histogram_metrics: BTreeSet<String>,
    /// 1 for a block cut from the head; n + 1 for one merged from blocks of level n or less.
    #[serde(default = "cut_level")]
    pub level: u32,
    /// 0 for raw samples; the window of a downsampled block's aggregates, in ms.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resolution_ms: i64,
    /// The raw block a downsampled block was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// On a read-only node, how this block's series appear in the merged view of several
    /// writers (see [`super::query_tier`]); never stored.
    #[serde(skip)]
    pub view: Option<Arc<super::query_tier::SourceView>>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// The compaction level of a block cut from the head.
pub const CUT_LEVEL: u32 = 1;

fn cut_level() -> u32 {
    CUT_LEVEL
}

impl BlockMeta {
    pub fn data_path(&self) -> Path {
        let [data, _] = self.paths();
        data
    }

    pub fn series_path(&self) -> Path {
        let [_, series] = self.paths();
        series
    }

    /// Every object of the block.
    pub fn paths(&self) -> [Path; 2] {
        block_paths(&self.id)
    }

    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        self.min_time <= max && min < self.max_time
    }
}

/// The objects of the block with this id.
pub fn block_paths(id: &str) -> [Path; 2] {
    [
        Path::from(format!("blocks/{id}/{DATA_FILE}")),
        Path::from(format!("blocks/{id}/{SERIES_FILE}")),
    ]
}

/// The block id in an object path under `blocks/`.
pub fn block_id_of(path: &Path) -> Option<&str> {
    let rest = path.as_ref().strip_prefix("blocks/")?;
    rest.split_once('/').map(|(id, _)| id)
}

/// The schema of `data.parquet` as readers see it: every column, the newer ones read as
/// all null from blocks that lack them.
pub fn data_schema() -> SchemaRef {
    data_schema_with(true)
}

/// The schema a block is written with: the `histogram` column only when the block holds a
/// histogram, so a block of floats pays nothing for it (its eleven leaf columns would add
/// a few kilobytes of footer to every file).
pub(super) fn data_schema_with(histograms: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("metric", DataType::Utf8, false),
        Field::new("series_id", DataType::UInt64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        // Null on a histogram's row (blocks written before histograms have no nulls).
        Field::new("value", DataType::Float64, true),
        // Null when unknown. Blocks written before start timestamps lack the column, and
        // readers see it as all null.
        Field::new(
            "start_timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
    ];
    if histograms {
        // Null on a float's row; absent from blocks of floats only.
        fields.push(Field::new(HISTOGRAM_COLUMN, histogram_type(), true));
    }
    Arc::new(Schema::new(fields))
}

pub fn labels_map_type() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(
                vec![
                    Field::new("keys", DataType::Utf8, false),
                    Field::new("values", DataType::Utf8, true),
                ]
                .into(),
            ),
            false,
        )),
        false,
    )
}

pub(super) fn series_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("labels", labels_map_type(), false),
    ]))
}

pub(super) fn writer_properties() -> WriterProperties {
    let col = |name: &str| ColumnPath::from(name);
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(256 * 1024))
        .set_data_page_row_count_limit(16 * 1024)
        .set_column_dictionary_enabled(col("series_id"), false)
        .set_column_encoding(col("series_id"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(col("timestamp"), false)
        .set_column_encoding(col("timestamp"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(col("value"), false)
        .set_column_encoding(col("value"), Encoding::BYTE_STREAM_SPLIT)
        .set_column_dictionary_enabled(col("start_timestamp"), false)
        .set_column_encoding(col("start_timestamp"), Encoding::DELTA_BINARY_PACKED);
    // A native histogram's counts and bucket counts change from sample to sample:
    // byte-stream-split puts their exponents and high mantissa bytes together for zstd
    // (about 40 % smaller than dictionary encoding on exporter-like histograms). Its
    // layout fields (schema, spans, zero threshold, custom bounds) repeat, and keep the
    // dictionary.
    for leaf in HISTOGRAM_COUNT_LEAVES {
        let path = ColumnPath::new(leaf.iter().map(|part| part.to_string()).collect());
        builder = builder
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT);
    }
    builder.build()
}

/// The Parquet paths of the histogram column's counts (see [`writer_properties`]).
const HISTOGRAM_COUNT_LEAVES: [&[&str]; 5] = [
    &[HISTOGRAM_COLUMN, "count"],
    &[HISTOGRAM_COLUMN, "sum"],
    &[HISTOGRAM_COLUMN, "zero_count"],
    &[HISTOGRAM_COLUMN, "positive_buckets", "list", "item"],
    &[HISTOGRAM_COLUMN, "negative_buckets", "list", "item"],
];

/// One series' samples inside a window, copied out of the head.
struct WindowSeries {
    id: SeriesId,
    labels: Arc<Labels>,
    timestamps: Vec<i64>,
    values: Vec<f64>,
    /// Empty when every start timestamp is unknown.
    start_timestamps: Vec<i64>,
    /// Empty when every sample is a float.
    histograms: Vec<Option<Arc<Histogram>>>,
}

/// A window of head data, sorted and ready to be written as a block.
pub struct BlockData {
    min_time: i64,
    max_time: i64,
    series: Vec<WindowSeries>,
}

impl BlockData {
    /// Copies the samples with `min_time <= ts < max_time` out of the head, sorted by
    /// (metric, series id).
    pub(super) fn from_head(head: &Head, min_time: i64, max_time: i64) -> BlockData {
        let mut series: Vec<WindowSeries> = Vec::new();
        head.for_each_series(|id, s| {
            let mut columns = SampleColumns::default();
            if s.read_into(min_time, max_time, &mut columns) > 0 {
                series.push(WindowSeries {
                    id,
                    labels: s.labels().clone(),
                    timestamps: columns.timestamps,
                    values: columns.values,
                    start_timestamps: columns.start_timestamps,
                    histograms: columns.histograms,
                });
            }
        });
        series.sort_by(|a, b| {
            metric_of(&a.labels)
                .cmp(metric_of(&b.labels))
                .then(a.id.cmp(&b.id))
        });
        BlockData {
            min_time,
            max_time,
            series,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    pub fn num_samples(&self) -> usize {
        self.series.iter().map(|s| s.timestamps.len()).sum()
    }

    /// Encodes both files in memory and returns them with the block's manifest entry.
    /// CPU-bound: call it off the async runtime's workers (`spawn_blocking`).
    pub fn encode(&self, id: String) -> anyhow::Result<EncodedBlock> {
        let mut meta = BlockMeta {
            id,
            min_time: self.min_time,
            max_time: self.max_time,
            num_series: self.series.len() as u64,
            num_samples: self.num_samples() as u64,
            data_bytes: 0,
            data_file_bytes: 0,
            metrics: BTreeMap::new(),
            histogram_metrics: BTreeSet::new(),
            level: CUT_LEVEL,
            resolution_ms: 0,
            source: None,
            view: None,
        };
        for s in &self.series {
            let names = meta
                .metrics
                .entry(metric_of(&s.labels).to_string())
                .or_default();
            names.extend(s.labels.without_metric_name().map(|(n, _)| n.to_string()));
            if s.histograms.iter().any(Option::is_some) {
                meta.histogram_metrics
                    .insert(metric_of(&s.labels).to_string());
            }
        }
        let with_histograms = self.series.iter().any(|s| !s.histograms.is_empty());
        let data = encode_parquet(
            data_schema_with(with_histograms),
            self.data_batches(with_histograms),
        )
        .with_context(|| format!("encoding {}", meta.data_path()))?;
        let series = encode_parquet(
            series_schema(),
            vec![series_batch(
                self.series.iter().map(|s| (s.id, s.labels.as_ref())),
            )],
        )
        .with_context(|| format!("encoding {}", meta.series_path()))?;
        meta.data_file_bytes = data.len() as u64;
        meta.data_bytes = (data.len() + series.len()) as u64;
        Ok(EncodedBlock { meta, data, series })
    }

    fn data_batches(&self, with_histograms: bool) -> Vec<anyhow::Result<RecordBatch>> {
        let mut batches = Vec::new();
        let mut rows = DataRows::new(with_histograms);
        for s in &self.series {
            let name = metric_of(&s.labels);
            for (i, (t, v)) in s.timestamps.iter().zip(&s.values).enumerate() {
                let start = s.start_timestamps.get(i).copied().unwrap_or(0);
                let histogram = s.histograms.get(i).cloned().flatten();
                rows.push(name, s.id, *t, *v, (start != 0).then_some(start), histogram);
            }
            if rows.len() >= ROWS_PER_BATCH {
                batches.push(rows.take_batch());
            }
        }
        if rows.len() > 0 {
            batches.push(rows.take_batch());
        }
        batches
    }
}

/// The rows of `series.parquet` for these series, in the order given.
pub(super) fn series_batch<'a>(
    series: impl Iterator<Item = (SeriesId, &'a Labels)>,
) -> anyhow::Result<RecordBatch> {
    let mut labels = new_labels_builder();
    let mut ids = Vec::new();
    let mut metrics = StringBuilder::new();
    for (id, l) in series {
        for (n, v) in l.without_metric_name() {
            labels.keys().append_value(n);
            labels.values().append_value(v);
        }
        labels.append(true)?;
        ids.push(id);
        metrics.append_value(metric_of(l));
    }
    Ok(RecordBatch::try_new(
        series_schema(),
        vec![
            Arc::new(UInt64Array::from(ids)),
            Arc::new(metrics.finish()),
            Arc::new(labels.finish()),
        ],
    )?)
}

/// A map builder whose field names match [`labels_map_type`].
pub fn new_labels_builder() -> MapBuilder<StringBuilder, StringBuilder> {
    MapBuilder::new(
        Some(arrow::array::MapFieldNames {
            entry: "entries".into(),
            key: "keys".into(),
            value: "values".into(),
        }),
        StringBuilder::new(),
        StringBuilder::new(),
    )
    .with_values_field(Arc::new(Field::new("values", DataType::Utf8, true)))
}

/// The columns of `data.parquet` being gathered for the next batch.
pub(super) struct DataRows {
    /// Whether the file has the `histogram` column (see [`data_schema_with`]).
    with_histograms: bool,
    metric: StringBuilder,
    ids: Vec<u64>,
    ts: Vec<i64>,
    vals: Vec<f64>,
    starts: Vec<Option<i64>>,
    /// Empty while every row is a float.
    histograms: Vec<Option<Arc<Histogram>>>,
}

impl DataRows {
    pub(super) fn new(with_histograms: bool) -> Self {
        DataRows {
            with_histograms,
            metric: StringBuilder::new(),
            ids: Vec::new(),
            ts: Vec::new(),
            vals: Vec::new(),
            starts: Vec::new(),
            histograms: Vec::new(),
        }
    }

    /// One row; `histogram` is Some for a native histogram's row (whose `v` is ignored).
    pub(super) fn push(
        &mut self,
        metric: &str,
        id: SeriesId,
        ts: i64,
        v: f64,
        start: Option<i64>,
        histogram: Option<Arc<Histogram>>,
    ) {
        if histogram.is_some() && self.histograms.len() < self.ids.len() {
            self.histograms.resize(self.ids.len(), None);
        }
        self.metric.append_value(metric);
        self.ids.push(id);
        self.ts.push(ts);
        self.vals.push(v);
        self.starts.push(start);
        if !self.histograms.is_empty() || histogram.is_some() {
            self.histograms.push(histogram);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The gathered rows as a batch. A histogram among them in a file without the column
    /// is an error (the writer chose the schema from its sources).
    pub(super) fn take_batch(&mut self) -> anyhow::Result<RecordBatch> {
        let rows = self.ids.len();
        let histograms = std::mem::take(&mut self.histograms);
        anyhow::ensure!(
            self.with_histograms || histograms.is_empty(),
            "a native histogram for a block written without the histogram column"
        );
        let (values, histograms): (ArrayRef, ArrayRef) = if histograms.is_empty() {
            (
                Arc::new(Float64Array::from(std::mem::take(&mut self.vals))),
                histogram_arrow::null_array(rows),
            )
        } else {
            let floats = NullBuffer::from_iter(histograms.iter().map(Option::is_none));
            (
                Arc::new(Float64Array::new(
                    std::mem::take(&mut self.vals).into(),
                    Some(floats),
                )),
                histogram_arrow::to_array(&histograms),
            )
        };
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.metric.finish()),
            Arc::new(UInt64Array::from(std::mem::take(&mut self.ids))),
            Arc::new(
                TimestampMillisecondArray::from(std::mem::take(&mut self.ts)).with_timezone("UTC"),
            ),
            values,
            Arc::new(
                TimestampMillisecondArray::from(std::mem::take(&mut self.starts))
                    .with_timezone("UTC"),
            ),
        ];
        if self.with_histograms {
            columns.push(histograms);
        }
        Ok(RecordBatch::try_new(
            data_schema_with(self.with_histograms),
            columns,
        )?)
    }
}

pub(super) fn metric_of(labels: &Labels) -> &str {
    labels.metric_name().unwrap_or_default()
}

/// A block's two files, encoded and ready to upload.
pub struct EncodedBlock {
    pub meta: BlockMeta,
    data: Bytes,
    series: Bytes,
}

impl EncodedBlock {
    /// Uploads both files. Nothing is visible to readers until the caller publishes
    /// `meta` in the manifest.
    pub async fn upload(self, store: &Arc<dyn ObjectStore>) -> anyhow::Result<BlockMeta> {
        let data_path = self.meta.data_path();
        store
            .put(&data_path, self.data.into())
            .await
            .with_context(|| format!("writing {data_path}"))?;
        let series_path = self.meta.series_path();
        store
            .put(&series_path, self.series.into())
            .await
            .with_context(|| format!("writing {series_path}"))?;
        Ok(self.meta)
    }
}

pub(super) fn encode_parquet(
    schema: SchemaRef,
    batches: Vec<anyhow::Result<RecordBatch>>,
) -> anyhow::Result<Bytes> {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(writer_properties()))?;
    for batch in batches {
        writer.write(&batch?)?;
    }
    writer.close()?;
    Ok(Bytes::from(out))
}

/// Every sample of a block, floats and histograms; for rewriting a block.
pub async fn read_samples(
    store: &Arc<dyn ObjectStore>,
    meta: &BlockMeta,
) -> anyhow::Result<(Vec<WalSample>, Vec<WalHistogram>)> {
    let path = meta.data_path();
    let bytes = store
        .get(&path)
        .await
        .with_context(|| format!("fetching {path}"))?
        .bytes()
        .await
        .with_context(|| format!("fetching {path}"))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .with_context(|| format!("opening {path}"))?
        .build()?;
    let (mut out, mut histograms) = (Vec::new(), Vec::new());
    for batch in reader {
        let batch = batch.with_context(|| format!("reading {path}"))?;
        let ids = column::<UInt64Array>(&batch, 1)?;
        let ts = column::<TimestampMillisecondArray>(&batch, 2)?;
        let vs = column::<Float64Array>(&batch, 3)?;
        // Absent from blocks written before start timestamps were stored.
        let starts = match batch.num_columns() > 4 {
            true => Some(column::<TimestampMillisecondArray>(&batch, 4)?),
            false => None,
        };
        let hs = histogram_column(&batch)?;
        for i in 0..batch.num_rows() {
            let start_timestamp_ms = starts.filter(|s| s.is_valid(i)).map_or(0, |s| s.value(i));
            match hs.as_ref().and_then(|h| h.get(i)) {
                Some(h) => histograms.push(WalHistogram {
                    series: ids.value(i),
                    timestamp_ms: ts.value(i),
                    start_timestamp_ms,
                    histogram: Arc::new(h),
                }),
                None => out.push(WalSample {
                    series: ids.value(i),
                    timestamp_ms: ts.value(i),
                    value: vs.value(i),
                    start_timestamp_ms,
                }),
            }
        }
    }
    Ok((out, histograms))
}

/// The `histogram` column of a `data.parquet` batch; None for blocks written before native
/// histograms.
pub(super) fn histogram_column(batch: &RecordBatch) -> anyhow::Result<Option<HistogramColumn<'_>>> {
    match batch.num_columns() > 5 {
        true => HistogramColumn::new(batch.column(5).as_ref())
            .map(Some)
            .context("the histogram column has an unexpected type"),
        false => Ok(None),
    }
}

/// The series of one block, grouped by metric; loaded from `series.parquet` and cached.
#[derive(Debug, Default)]
pub struct BlockSeries {
    pub by_metric: HashMap<String, Vec<(SeriesId, Arc<Labels>)>>,
}

impl BlockSeries {
    pub async fn load(
        store: &Arc<dyn ObjectStore>,
        meta: &BlockMeta,
    ) -> anyhow::Result<BlockSeries> {
        let path = meta.series_path();
        // Series files are small; one GET and an in-memory decode beat ranged reads.
        let bytes = store
            .get(&path)
            .await
            .with_context(|| format!("fetching {path}"))?
            .bytes()
            .await
            .with_context(|| format!("fetching {path}"))?;
        let batches = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .with_context(|| format!("opening {path}"))?
            .build()?
            .collect::<Result<Vec<RecordBatch>, _>>()
            .with_context(|| format!("reading {path}"))?;
        let mut out = BlockSeries::default();
        for batch in batches {
            append_series_batch(&batch, &mut out).with_context(|| format!("decoding {path}"))?;
        }
        Ok(out)
    }

    pub fn memory_size(&self) -> usize {
        self.by_metric
            .values()
            .flatten()
            .map(|(_, l)| 64 + l.iter().map(|(n, v)| n.len() + v.len() + 48).sum::<usize>())
            .sum()
    }
}

fn append_series_batch(batch: &RecordBatch, out: &mut BlockSeries) -> anyhow::Result<()> {
    let ids = column::<UInt64Array>(batch, 0)?;
    let metrics = column::<StringArray>(batch, 1)?;
    let maps = column::<MapArray>(batch, 2)?;
    for row in 0..batch.num_rows() {
        let entries = maps.value(row);
        let keys = entries
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .context("label keys are not strings")?;
        let values = entries
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .context("label values are not strings")?;
        let metric = metrics.value(row).to_string();
        let mut pairs = vec![(METRIC_NAME_LABEL.to_string(), metric.clone())];
        for i in 0..keys.len() {
            pairs.push((keys.value(i).to_string(), values.value(i).to_string()));
        }
        out.by_metric
            .entry(metric)
            .or_default()
            .push((ids.value(row), Arc::new(Labels::from_trusted(pairs))));
    }
    Ok(())
}

pub(super) fn column<T: 'static>(batch: &RecordBatch, i: usize) -> anyhow::Result<&T> {
    batch
        .column(i)
        .as_any()
        .downcast_ref::<T>()
        .with_context(|| format!("unexpected type for column {i}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::histogram::Span;

    #[test]
    fn histogram_counts_are_byte_stream_split_and_read_back() {
        let rows: Vec<Option<Arc<Histogram>>> = (0..100)
            .map(|i| {
                (i % 10 != 0).then(|| {
                    Arc::new(Histogram {
                        schema: 3,
                        count: f64::from(i) * 3.0,
                        sum: f64::from(i) * 0.5,
                        positive_spans: vec![Span {
                            offset: -2,
                            length: 3,
                        }],
                        positive_buckets: vec![f64::from(i), f64::from(i), f64::from(i)],
                        ..Default::default()
                    })
                })
            })
            .collect();
        let schema = Arc::new(Schema::new(vec![Field::new(
            HISTOGRAM_COLUMN,
            histogram_type(),
            true,
        )]));
        let column = histogram_arrow::to_array(&rows);
        let batch = RecordBatch::try_new(schema.clone(), vec![column]).unwrap();
        let mut file = Vec::new();
        let mut writer =
            ArrowWriter::try_new(&mut file, schema, Some(writer_properties())).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file)).unwrap();
        let row_group = reader.metadata().row_group(0);
        for leaf in HISTOGRAM_COUNT_LEAVES {
            let path = ColumnPath::new(leaf.iter().map(|p| p.to_string()).collect());
            let chunk = (0..row_group.num_columns())
                .map(|i| row_group.column(i))
                .find(|c| c.column_path() == &path)
                .unwrap_or_else(|| panic!("no column {path}"));
            assert!(
                chunk.encodings().any(|e| e == Encoding::BYTE_STREAM_SPLIT),
                "{path}: {:?}",
                chunk.encodings().collect::<Vec<_>>()
            );
        }
        let read: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
        let column = HistogramColumn::new(read[0].column(0).as_ref()).unwrap();
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(column.get(i).map(Arc::new), row.clone(), "row {i}");
        }
    }
}
