//! Compaction: the blocks of a finished time window merged into one larger block, level by
//! level (with the default ranges, 2 h cut blocks become 8 h, then 2 d, then 14 d), as
//! Thanos's compactor does.
//!
//! [`plan`] picks the work from the manifest alone; [`merge`] streams the sources' data
//! files (each sorted by metric, series id, timestamp) through a k-way merge into the new
//! block's data file, uploaded in parts as it is encoded, so memory holds a batch per
//! source and one row group, never a whole block. Where sources overlap (two cuts of one
//! window, or two writers of one series) the merge keeps one sample per series and
//! timestamp: the first, as the head does.
//!
//! Crash safety is the caller's order of operations (see `Storage::compact_once`): write the
//! new objects, publish the manifest naming them instead of the sources, delete the sources
//! only after a delay.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{
    Array, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array,
};
use arrow::datatypes::DataType;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use parquet::arrow::{AsyncArrowWriter, ParquetRecordBatchStreamBuilder};
use tokio::runtime::Handle;

use crate::model::{Histogram, Labels, SeriesId};

use super::block::{
    self, BlockMeta, BlockSeries, DataRows, ROWS_PER_BATCH, column, data_schema_with, series_batch,
};
use super::histogram_arrow::HistogramColumn;
use super::manifest::Manifest;
use super::object_reader::ObjectReader;

/// One compaction: merge `sources` into a block covering `[min_time, max_time)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub level: u32,
    pub min_time: i64,
    pub max_time: i64,
    pub sources: Vec<BlockMeta>,
}

/// The next compaction to run, if any: the oldest window of the shortest range (in ms,
/// `ranges` shortest first) that the head has been cut past and that holds two or more
/// blocks shorter than the range. Shorter ranges go first, so a long window is merged from
/// the blocks of the level below it, not from every cut block.
pub fn plan(manifest: &Manifest, ranges: &[i64]) -> Option<Plan> {
    let flushed = manifest.flushed_until?;
    for (i, &range) in ranges.iter().enumerate() {
        let mut windows: BTreeMap<i64, Vec<&BlockMeta>> = BTreeMap::new();
        for b in &manifest.blocks {
            let start = b.min_time.div_euclid(range) * range;
            if b.max_time - b.min_time < range && b.max_time <= start + range {
                windows.entry(start).or_default().push(b);
            }
        }
        let ready = windows
            .into_iter()
            .find(|(start, blocks)| start + range <= flushed && blocks.len() >= 2);
        if let Some((start, blocks)) = ready {
            return Some(Plan {
                level: i as u32 + 2,
                min_time: start,
                max_time: start + range,
                sources: blocks.into_iter().cloned().collect(),
            });
        }
    }
    None
}

/// Merges the plan's sources into a new block `id` and uploads its objects; nothing is
/// visible until the caller publishes the returned entry. `series` holds each source's
/// series, in the order of `plan.sources`. Blocking: run it on a blocking thread; it waits
/// for object store I/O through `rt`.
pub fn merge(
    store: &Arc<dyn ObjectStore>,
    rt: &Handle,
    plan: &Plan,
    series: &[Arc<BlockSeries>],
    id: String,
) -> anyhow::Result<BlockMeta> {
    let mut meta = BlockMeta {
        id,
        min_time: plan.min_time,
        max_time: plan.max_time,
        num_series: 0,
        num_samples: 0,
        data_bytes: 0,
        data_file_bytes: 0,
        metrics: BTreeMap::new(),
        histogram_metrics: plan
            .sources
            .iter()
            .flat_map(|s| s.histogram_metrics.iter().cloned())
            .collect(),
        level: plan.level,
        resolution_ms: 0,
        source: None,
        view: None,
    };
    for source in &plan.sources {
        for (metric, names) in &source.metrics {
            meta.metrics
                .entry(metric.clone())
                .or_default()
                .extend(names.iter().cloned());
        }
    }
    let mut cursors = Vec::with_capacity(plan.sources.len());
    for source in &plan.sources {
        cursors.push(Cursor::open(store, rt, source)?);
    }
    let data_path = meta.data_path();
    let with_histograms = cursors.iter().any(Cursor::has_histogram_column);
    let mut writer = AsyncArrowWriter::try_new(
        BufWriter::new(store.clone(), data_path.clone()),
        data_schema_with(with_histograms),
        Some(block::writer_properties()),
    )?;
    let written = merge_cursors(&mut cursors, rt, with_histograms, |rows| {
        let batch = rows.take_batch()?;
        rt.block_on(writer.write(&batch))
            .with_context(|| format!("writing {data_path}"))
    })
    .with_context(|| format!("merging into {data_path}"))?;
    rt.block_on(writer.close())
        .with_context(|| format!("writing {data_path}"))?;
    meta.num_samples = written.samples;
    meta.num_series = written.series.len() as u64;
    meta.data_file_bytes = rt
        .block_on(store.head(&data_path))
        .with_context(|| format!("reading the size of {data_path}"))?
        .size;

    let labels = labels_by_id(series);
    let mut rows: Vec<(SeriesId, &Labels)> = Vec::with_capacity(written.series.len());
    for id in &written.series {
        let l = labels
            .get(id)
            .with_context(|| format!("series {id} has samples but no labels in the sources"))?;
        rows.push((*id, l));
    }
    let series_bytes =
        block::encode_parquet(block::series_schema(), vec![series_batch(rows.into_iter())])?;
    meta.data_bytes = meta.data_file_bytes + series_bytes.len() as u64;
    let series_path = meta.series_path();
    rt.block_on(store.put(&series_path, series_bytes.into()))
        .with_context(|| format!("writing {series_path}"))?;
    Ok(meta)
}

/// Every source series' labels by id; the first source naming an id wins.
fn labels_by_id(series: &[Arc<BlockSeries>]) -> HashMap<SeriesId, &Labels> {
    let mut out = HashMap::new();
    for block in series {
        for (id, labels) in block.by_metric.values().flatten() {
            out.entry(*id).or_insert(labels.as_ref());
        }
    }
    out
}

/// What a merge wrote.
struct Written {
    samples: u64,
    /// Each series once, in the data file's order.
    series: Vec<SeriesId>,
}

/// Merges the cursors' rows in (metric, series id, timestamp) order into `DataRows`,
/// handing each full batch to `flush`. Of rows with the same series and timestamp only
/// the first (by cursor order) is kept.
fn merge_cursors(
    cursors: &mut [Cursor],
    rt: &Handle,
    with_histograms: bool,
    mut flush: impl FnMut(&mut DataRows) -> anyhow::Result<()>,
) -> anyhow::Result<Written> {
    let mut rows = DataRows::new(with_histograms);
    let mut written = Written {
        samples: 0,
        series: Vec::new(),
    };
    let mut last: Option<(SeriesId, i64)> = None;
    loop {
        // The cursor with the smallest row, and the next smallest among the others: rows
        // of the first can be taken without comparing again until they reach the second.
        let mut first: Option<usize> = None;
        let mut second: Option<usize> = None;
        for i in 0..cursors.len() {
            if cursors[i].done() {
                continue;
            }
            match first {
                None => first = Some(i),
                Some(f) if Cursor::cmp(&cursors[i], &cursors[f]) == Ordering::Less => {
                    second = first;
                    first = Some(i);
                }
                Some(_) => {
                    if second
                        .is_none_or(|s| Cursor::cmp(&cursors[i], &cursors[s]) == Ordering::Less)
                    {
                        second = Some(i);
                    }
                }
            }
        }
        let Some(f) = first else { break };
        loop {
            let c = &cursors[f];
            let key = (c.id(), c.timestamp());
            if last != Some(key) {
                if last.is_none_or(|(id, _)| id != key.0) {
                    written.series.push(key.0);
                }
                c.push_row(&mut rows);
                written.samples += 1;
                last = Some(key);
                if rows.len() >= ROWS_PER_BATCH {
                    flush(&mut rows)?;
                }
            }
            cursors[f].advance(rt)?;
            let c = &cursors[f];
            if c.done() || second.is_some_and(|s| Cursor::cmp(c, &cursors[s]) != Ordering::Less) {
                break;
            }
        }
    }
    if rows.len() > 0 {
        flush(&mut rows)?;
    }
    Ok(written)
}

/// Reads one source's data file a batch at a time.
pub(super) struct Cursor {
    stream: ParquetRecordBatchStream<ObjectReader>,
    batch: Option<Columns>,
    row: usize,
    /// Whether the source file has the `histogram` column.
    histograms: bool,
}

struct Columns {
    metric: StringArray,
    ids: UInt64Array,
    timestamps: TimestampMillisecondArray,
    values: Float64Array,
    /// Absent from blocks written before start timestamps were stored.
    starts: Option<TimestampMillisecondArray>,
    /// The `histogram` column; absent from blocks written before native histograms.
    histograms: Option<arrow::array::StructArray>,
}

impl Columns {
    fn of(batch: &RecordBatch) -> anyhow::Result<Columns> {
        let metric = batch.column(0);
        let metric = match metric.data_type() {
            DataType::Utf8 => metric.clone(),
            _ => arrow::compute::cast(metric, &DataType::Utf8)?,
        };
        Ok(Columns {
            metric: metric
                .as_any()
                .downcast_ref::<StringArray>()
                .context("metric column is not a string")?
                .clone(),
            ids: column::<UInt64Array>(batch, 1)?.clone(),
            timestamps: column::<TimestampMillisecondArray>(batch, 2)?.clone(),
            values: column::<Float64Array>(batch, 3)?.clone(),
            starts: match batch.num_columns() > 4 {
                true => Some(column::<TimestampMillisecondArray>(batch, 4)?.clone()),
                false => None,
            },
            histograms: match block::histogram_column(batch)? {
                Some(_) => Some(column::<arrow::array::StructArray>(batch, 5)?.clone()),
                None => None,
            },
        })
    }
}

impl Cursor {
    pub(super) fn open(
        store: &Arc<dyn ObjectStore>,
        rt: &Handle,
        meta: &BlockMeta,
    ) -> anyhow::Result<Cursor> {
        let path = meta.data_path();
        let reader = ObjectReader::new(store.clone(), path.clone(), meta.data_file_bytes);
        let builder = rt
            .block_on(ParquetRecordBatchStreamBuilder::new(reader))
            .with_context(|| format!("opening {path}"))?;
        let histograms = builder.schema().fields().len() > 5;
        let stream = builder
            .with_batch_size(8192)
            .build()
            .with_context(|| format!("opening {path}"))?;
        let mut cursor = Cursor {
            stream,
            batch: None,
            row: 0,
            histograms,
        };
        cursor
            .next_batch(rt)
            .with_context(|| format!("reading {path}"))?;
        Ok(cursor)
    }

    /// Loads the next non-empty batch, or leaves `batch` empty at the end.
    fn next_batch(&mut self, rt: &Handle) -> anyhow::Result<()> {
        self.row = 0;
        self.batch = None;
        while let Some(batch) = rt.block_on(self.stream.next()) {
            let batch = batch?;
            if batch.num_rows() > 0 {
                self.batch = Some(Columns::of(&batch)?);
                return Ok(());
            }
        }
        Ok(())
    }

    pub(super) fn advance(&mut self, rt: &Handle) -> anyhow::Result<()> {
        self.row += 1;
        if self.batch.as_ref().is_some_and(|b| self.row >= b.ids.len()) {
            self.next_batch(rt)?;
        }
        Ok(())
    }

    pub(super) fn has_histogram_column(&self) -> bool {
        self.histograms
    }

    pub(super) fn done(&self) -> bool {
        self.batch.is_none()
    }

    fn columns(&self) -> &Columns {
        self.batch
            .as_ref()
            .expect("a cursor is read only while not done")
    }

    pub(super) fn metric(&self) -> &str {
        self.columns().metric.value(self.row)
    }

    pub(super) fn id(&self) -> SeriesId {
        self.columns().ids.value(self.row)
    }

    pub(super) fn timestamp(&self) -> i64 {
        self.columns().timestamps.value(self.row)
    }

    pub(super) fn value(&self) -> f64 {
        self.columns().values.value(self.row)
    }

    /// The native histogram at the current row, None on a float row.
    pub(super) fn histogram(&self) -> Option<Histogram> {
        let histograms = self.columns().histograms.as_ref()?;
        HistogramColumn::new(histograms)?.get(self.row)
    }

    pub(super) fn is_histogram(&self) -> bool {
        self.columns()
            .histograms
            .as_ref()
            .is_some_and(|h| h.is_valid(self.row))
    }

    fn cmp(a: &Cursor, b: &Cursor) -> Ordering {
        a.metric()
            .cmp(b.metric())
            .then(a.id().cmp(&b.id()))
            .then(a.timestamp().cmp(&b.timestamp()))
    }

    fn push_row(&self, rows: &mut DataRows) {
        let c = self.columns();
        let i = self.row;
        let start = c
            .starts
            .as_ref()
            .filter(|s| s.is_valid(i))
            .map(|s| s.value(i));
        rows.push(
            c.metric.value(i),
            c.ids.value(i),
            c.timestamps.value(i),
            c.values.value(i),
            start,
            self.histogram().map(Arc::new),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::path::Path;

    use super::*;
    use crate::config::{PromDuration, StorageConfig};
    use crate::metrics::StorageMetrics;
    use crate::model::Sample;
    use crate::storage::block::{BlockData, CUT_LEVEL, read_samples};
    use crate::storage::downsample::{RES_1H as RES_1H_MS, RES_5M as RES_5M_MS};
    use crate::storage::head::Head;
    use crate::storage::wal::{WalHistogram, WalRecord, WalSample};
    use crate::storage::{Storage, StorageOptions};

    const MIN: i64 = 60_000;

    fn block(id: &str, min: i64, max: i64, level: u32) -> BlockMeta {
        BlockMeta {
            id: id.into(),
            min_time: min * MIN,
            max_time: max * MIN,
            num_series: 1,
            num_samples: 1,
            data_bytes: 1,
            data_file_bytes: 1,
            metrics: BTreeMap::new(),
            histogram_metrics: Default::default(),
            level,
            resolution_ms: 0,
            source: None,
            view: None,
        }
    }

    fn manifest(flushed: i64, blocks: Vec<BlockMeta>) -> Manifest {
        Manifest {
            flushed_until: Some(flushed * MIN),
            blocks,
            ..Manifest::default()
        }
    }

    fn ids(plan: &Plan) -> Vec<&str> {
        plan.sources.iter().map(|b| b.id.as_str()).collect()
    }

    #[test]
    fn plans_the_oldest_complete_window_of_the_shortest_range_first() {
        let ranges = [4 * MIN, 12 * MIN];
        let blocks: Vec<BlockMeta> = (0..10)
            .map(|i| block(&format!("b{i}"), i, i + 1, CUT_LEVEL))
            .collect();
        // Cut up to minute 10: [0, 4) and [4, 8) are complete, [8, 12) is not.
        let first = plan(&manifest(10, blocks.clone()), &ranges).unwrap();
        assert_eq!(
            (first.level, first.min_time, first.max_time),
            (2, 0, 4 * MIN)
        );
        assert_eq!(ids(&first), ["b0", "b1", "b2", "b3"]);

        // With [0, 4) and [4, 8) merged, nothing is ready until minute 12 is cut.
        let mut merged = vec![block("m0", 0, 4, 2), block("m1", 4, 8, 2)];
        merged.extend(blocks[8..].iter().cloned());
        assert_eq!(plan(&manifest(10, merged.clone()), &ranges), None);
        merged.push(block("b10", 10, 11, CUT_LEVEL));
        merged.push(block("b11", 11, 12, CUT_LEVEL));
        let next = plan(&manifest(12, merged.clone()), &ranges).unwrap();
        assert_eq!(ids(&next), ["b8", "b9", "b10", "b11"]);
        let top = plan(
            &manifest(
                12,
                vec![merged[0].clone(), merged[1].clone(), block("m2", 8, 12, 2)],
            ),
            &ranges,
        )
        .unwrap();
        assert_eq!((top.level, top.min_time, top.max_time), (3, 0, 12 * MIN));
        assert_eq!(ids(&top), ["m0", "m1", "m2"]);
    }

    #[test]
    fn a_lone_block_a_full_length_block_or_no_ranges_plan_nothing() {
        let ranges = [4 * MIN];
        assert_eq!(
            plan(&manifest(20, vec![block("a", 0, 1, 1)]), &ranges),
            None
        );
        let full = vec![block("a", 0, 4, 2), block("b", 4, 8, 2)];
        assert_eq!(plan(&manifest(20, full), &ranges), None);
        let two = vec![block("a", 0, 1, 1), block("b", 1, 2, 1)];
        assert_eq!(plan(&manifest(20, two.clone()), &[]), None);
        assert!(plan(&manifest(20, two), &ranges).is_some());
    }

    async fn storage(dir: &std::path::Path, store: Arc<dyn ObjectStore>) -> Arc<Storage> {
        storage_with(dir, store, |_| {}).await
    }

    async fn storage_with(
        dir: &std::path::Path,
        store: Arc<dyn ObjectStore>,
        adjust: impl FnOnce(&mut StorageConfig),
    ) -> Arc<Storage> {
        let mut config = StorageConfig {
            block_duration: PromDuration::from_secs(60),
            out_of_order_time_window: PromDuration::from_secs(0),
            ..StorageConfig::default()
        };
        config.compaction.ranges = vec![PromDuration::from_secs(240), PromDuration::from_secs(720)];
        config.compaction.deletion_delay = PromDuration::from_secs(0);
        adjust(&mut config);
        let options = StorageOptions {
            data_dir: dir.to_path_buf(),
            config,
            retention: Duration::ZERO,
            retention_size: 0,
            retention_downsampled: [Duration::ZERO; 2],
        };
        Storage::open_with_store(options, store, StorageMetrics::unregistered())
            .await
            .unwrap()
    }

    fn labels(job: &str) -> Arc<Labels> {
        Arc::new(Labels::from_trusted(vec![
            (
                "__name__".into(),
                if job == "z" { "other" } else { "m" }.into(),
            ),
            ("job".into(), job.into()),
        ]))
    }

    async fn all_samples(store: &Arc<dyn ObjectStore>, manifest: &Manifest) -> Vec<WalSample> {
        let mut out = Vec::new();
        for b in &manifest.blocks {
            let (samples, _) = read_samples(store, b).await.unwrap();
            assert_eq!(samples.len() as u64, b.num_samples, "{}", b.id);
            assert!(
                samples
                    .iter()
                    .all(|s| b.overlaps(s.timestamp_ms, s.timestamp_ms))
            );
            out.extend(samples);
        }
        out.sort_by_key(|s| (s.series, s.timestamp_ms));
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn levels_merge_every_sample_once_and_the_sources_go() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let storage = storage(dir.path(), store.clone()).await;
        let series = [labels("a"), labels("b"), labels("z")];
        // 30 minutes at 10 s; "b" starts late, so some windows lack it.
        for step in 0..180 {
            let mut app = storage.appender();
            for (i, l) in series.iter().enumerate() {
                if i != 1 || step >= 100 {
                    let sample = Sample {
                        start_timestamp_ms: if i == 2 { 5 } else { 0 },
                        ..Sample::new(step * 10_000, step as f64 + i as f64 / 10.0)
                    };
                    app.add(l, sample);
                }
            }
            app.commit().unwrap();
        }
        storage.flush(true).await.unwrap();
        let cut = storage.manifest();
        assert_eq!(cut.blocks.len(), 30);
        let before = all_samples(&store, &cut).await;
        assert_eq!(before.len(), 180 * 2 + 80);

        // What a crash between upload and publish leaves: objects no manifest entry names.
        let crashed = Path::from("blocks/0000000000000-crashed/data.parquet");
        store.put(&crashed, vec![1u8; 10].into()).await.unwrap();
        assert_eq!(storage.compact().await.unwrap(), 7 + 2);
        assert!(
            store.head(&crashed).await.is_err(),
            "the leftover is removed"
        );
        let after = storage.manifest();
        let shape: Vec<(i64, i64, u32)> = (after.blocks.iter())
            .map(|b| (b.min_time / MIN, b.max_time / MIN, b.level))
            .collect();
        assert_eq!(
            shape,
            [
                (0, 12, 3),
                (12, 24, 3),
                (24, 28, 2),
                (28, 29, 1),
                (29, 30, 1)
            ],
            "[24, 36) is not complete: minute 30 is the last cut"
        );
        assert_eq!(all_samples(&store, &after).await, before);
        assert_eq!(after.blocks[0].metrics, cut.blocks[0].metrics);
        assert_eq!(after.blocks[0].num_series, 2, "\"b\" starts at minute 16");
        assert_eq!(after.blocks[1].num_series, 3);
        // A zero deletion delay: the sources are gone already, objects and entries.
        assert!(after.deleted.is_empty());
        let objects: Vec<_> = store.list(None).try_collect().await.unwrap();
        let blocks = objects
            .iter()
            .filter(|o| block::block_id_of(&o.location).is_some());
        assert_eq!(blocks.count(), 2 * after.blocks.len());
        // The merged blocks' series files name every series.
        let series_files = storage.block_series(&after.blocks[1]).await.unwrap();
        assert_eq!(series_files.by_metric["m"].len(), 2);
        assert_eq!(storage.compact().await.unwrap(), 0, "nothing more is ready");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sources_stay_readable_until_the_deletion_delay_passes() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let storage = storage(dir.path(), store.clone()).await;
        for step in 0..24 {
            let mut app = storage.appender();
            app.add(&labels("a"), Sample::new(step * 10_000, 1.0));
            app.commit().unwrap();
        }
        storage.flush(true).await.unwrap();
        let old = storage.manifest();
        // A long delay, and a leftover too new to be called one.
        let mut config = storage.options.config.clone();
        config.compaction.deletion_delay = PromDuration::from_secs(3600);
        let options = StorageOptions {
            config,
            ..storage.options.clone()
        };
        drop(storage);
        let storage =
            Storage::open_with_store(options, store.clone(), StorageMetrics::unregistered())
                .await
                .unwrap();
        let fresh = Path::from("blocks/0000000000000-uploading/data.parquet");
        store.put(&fresh, vec![1u8; 10].into()).await.unwrap();
        assert_eq!(storage.compact().await.unwrap(), 1);
        let new = storage.manifest();
        assert_eq!(new.blocks.len(), 1);
        let retired: Vec<&str> = new.deleted.iter().map(|d| d.id.as_str()).collect();
        let sources: Vec<&str> = old.blocks.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(retired, sources);
        // A query planned against the old manifest still reads every sample.
        assert_eq!(
            all_samples(&store, &old).await,
            all_samples(&store, &new).await
        );
        assert!(store.head(&fresh).await.is_ok());
        // The retired entries survive a restart (the manifest is the record).
        assert_eq!(Manifest::load(&store).await.unwrap().deleted.len(), 4);
    }

    /// (series, timestamp, count, sum, min, max, counter) of a downsampled block.
    type Aggregates = (SeriesId, i64, u64, f64, f64, f64, f64);

    async fn aggregates(store: &Arc<dyn ObjectStore>, meta: &BlockMeta) -> Vec<Aggregates> {
        let bytes = store
            .get(&meta.data_path())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        let mut out = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let f = |i: usize| column::<Float64Array>(&batch, i).unwrap().clone();
            let (ids, ts) = (
                column::<UInt64Array>(&batch, 1).unwrap(),
                column::<TimestampMillisecondArray>(&batch, 2).unwrap(),
            );
            let count = column::<UInt64Array>(&batch, 3).unwrap();
            let (sum, min, max, counter) = (f(4), f(5), f(6), f(7));
            for i in 0..batch.num_rows() {
                out.push((
                    ids.value(i),
                    ts.value(i),
                    count.value(i),
                    sum.value(i),
                    min.value(i),
                    max.value(i),
                    counter.value(i),
                ));
            }
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_blocks_get_5m_and_1h_copies_with_thanos_aggregates() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let storage = storage_with(dir.path(), store.clone(), |c| {
            c.downsampling.after_5m = PromDuration::from_secs(720);
            c.downsampling.after_1h = PromDuration::from_secs(720);
        })
        .await;
        // 24 minutes at 15 s: a counter that resets at minute 7, a gauge with a staleness
        // marker at minute 3.
        let (counter, gauge) = (labels("a"), labels("b"));
        let mut raw = Vec::new();
        for step in 0..96i64 {
            let ts = step * 15_000;
            let c = if step < 28 {
                step as f64 * 10.0
            } else {
                (step - 28) as f64
            };
            let g = if step == 12 {
                crate::model::stale_nan()
            } else {
                (step % 7) as f64
            };
            let mut app = storage.appender();
            app.add(&counter, Sample::new(ts, c));
            app.add(&gauge, Sample::new(ts, g));
            app.commit().unwrap();
            raw.push((ts, c, g));
        }
        storage.flush(true).await.unwrap();
        storage.compact().await.unwrap();
        let manifest = storage.manifest();
        let sources: Vec<&BlockMeta> = manifest.blocks.iter().filter(|b| b.level == 3).collect();
        assert_eq!(sources.len(), 2);
        assert_eq!(manifest.downsampled.len(), 4, "{:?}", manifest.downsampled);
        let five: Vec<&BlockMeta> = manifest.at_resolution(RES_5M_MS).collect();
        assert_eq!(five[0].source.as_deref(), Some(sources[0].id.as_str()));
        assert_eq!((five[0].min_time, five[0].max_time), (0, 12 * MIN));

        // The first 5 m window of the first block, by hand.
        let all = aggregates(&store, five[0]).await;
        let a_id = counter.stable_hash();
        let got: Vec<Aggregates> = all.iter().filter(|r| r.0 == a_id).copied().collect();
        let first: Vec<&(i64, f64, f64)> = raw.iter().filter(|r| r.0 < 5 * MIN).collect();
        let sum: f64 = first.iter().map(|r| r.1).sum();
        assert_eq!(got[0], (a_id, 285_000, 20, sum, 0.0, 190.0, 190.0));
        // Minutes 5–10 hold the reset: the counter aggregate is the window's last value.
        assert_eq!((got[1].1, got[1].5, got[1].6), (585_000, 270.0, 11.0));
        // The gauge's staleness marker is left out of its first window.
        let b_first = all.iter().find(|r| r.0 != a_id).unwrap();
        assert_eq!(b_first.2, 19);
        assert!(!b_first.3.is_nan());
        // One 1 h window covers a whole 12 m block: every sample of it.
        let hour: Vec<&BlockMeta> = manifest.at_resolution(RES_1H_MS).collect();
        let rows = aggregates(&store, hour[1]).await;
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].1, rows[0].2), (95 * 15_000, 48));
        assert_eq!(
            storage.compact().await.unwrap(),
            0,
            "every copy is made once"
        );
    }

    fn window(store_samples: &[(SeriesId, i64, f64)], min: i64, max: i64) -> BlockData {
        window_with(store_samples, &[], min, max)
    }

    /// A window with float samples and native histograms `(series, time, count)`.
    fn window_with(
        store_samples: &[(SeriesId, i64, f64)],
        histograms: &[(SeriesId, i64, f64)],
        min: i64,
        max: i64,
    ) -> BlockData {
        let head = Head::new();
        let new_series: Vec<(SeriesId, Labels)> = [1, 2]
            .iter()
            .map(|id| {
                (
                    *id,
                    labels(if *id == 1 { "a" } else { "b" }).as_ref().clone(),
                )
            })
            .collect();
        let samples = store_samples
            .iter()
            .map(|&(series, timestamp_ms, value)| WalSample {
                series,
                timestamp_ms,
                value,
                start_timestamp_ms: 0,
            })
            .collect();
        let histograms = histograms
            .iter()
            .map(|&(series, timestamp_ms, count)| WalHistogram {
                series,
                timestamp_ms,
                start_timestamp_ms: 0,
                histogram: Arc::new(Histogram {
                    count,
                    sum: count,
                    positive_spans: vec![crate::model::histogram::Span {
                        offset: 1,
                        length: 1,
                    }],
                    positive_buckets: vec![count],
                    ..Default::default()
                }),
            })
            .collect();
        head.apply(&WalRecord {
            new_series,
            samples,
            histograms,
        });
        head.truncate_before(i64::MIN);
        BlockData::from_head(&head, min, max)
    }

    /// Merges `sources` (of the window [0, 1 min)) into one level-2 block.
    async fn merge_into_one(store: &Arc<dyn ObjectStore>, sources: Vec<BlockMeta>) -> BlockMeta {
        let mut series = Vec::new();
        for s in &sources {
            series.push(Arc::new(BlockSeries::load(store, s).await.unwrap()));
        }
        let plan = Plan {
            level: 2,
            min_time: 0,
            max_time: MIN,
            sources,
        };
        let (s, rt) = (store.clone(), Handle::current());
        tokio::task::spawn_blocking(move || merge(&s, &rt, &plan, &series, "out".into()))
            .await
            .unwrap()
            .unwrap()
    }

    /// Native histograms go through a cut block and a merge: rows in time order with the
    /// floats, null values on their rows, the first source winning a tie of either kind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn histograms_survive_cut_and_merge() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let older = window_with(
            &[(1, 1_000, 1.0)],
            &[(1, 2_000, 5.0), (2, 1_000, 7.0)],
            0,
            MIN,
        );
        let newer = window_with(&[(1, 2_000, 99.0)], &[(1, 3_000, 6.0)], 0, MIN);
        let mut sources = Vec::new();
        for (i, data) in [older, newer].into_iter().enumerate() {
            let encoded = data.encode(format!("src{i}")).unwrap();
            sources.push(encoded.upload(&store).await.unwrap());
        }
        let (floats, histograms) = read_samples(&store, &sources[0]).await.unwrap();
        assert_eq!((floats.len(), histograms.len()), (1, 2));
        // A block of floats only is written without the histogram column.
        let floats_only = window(&[(1, 1_000, 1.0)], 0, MIN)
            .encode("f".into())
            .unwrap();
        let meta = floats_only.upload(&store).await.unwrap();
        let bytes = store
            .get(&meta.data_path())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let builder =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        assert_eq!(builder.schema().fields().len(), 5);
        // The manifest says which metrics have histograms, for the planner.
        assert!(meta.histogram_metrics.is_empty());
        assert_eq!(sources[0].histogram_metrics.len(), 1);
        let meta = merge_into_one(&store, sources).await;
        assert_eq!(meta.num_samples, 4);
        assert_eq!(meta.histogram_metrics.len(), 1);
        let (floats, histograms) = read_samples(&store, &meta).await.unwrap();
        let floats: Vec<(SeriesId, i64, f64)> = floats
            .iter()
            .map(|s| (s.series, s.timestamp_ms, s.value))
            .collect();
        assert_eq!(floats, [(1, 1_000, 1.0)]);
        let histograms: Vec<(SeriesId, i64, f64)> = histograms
            .iter()
            .map(|h| (h.series, h.timestamp_ms, h.histogram.count))
            .collect();
        assert_eq!(
            histograms,
            [(1, 2_000, 5.0), (1, 3_000, 6.0), (2, 1_000, 7.0)],
            "the older block's histogram wins the tie at 2 s"
        );
        assert_eq!(histograms.len() + floats.len(), meta.num_samples as usize);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overlapping_blocks_merge_vertically_one_sample_per_series_and_time() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let older = window(&[(1, 1_000, 1.0), (1, 2_000, 2.0), (2, 1_000, 7.0)], 0, MIN);
        let newer = window(&[(1, 2_000, 99.0), (1, 3_000, 3.0), (2, 500, 6.0)], 0, MIN);
        let mut sources = Vec::new();
        for (i, data) in [older, newer].into_iter().enumerate() {
            let encoded = data.encode(format!("src{i}")).unwrap();
            sources.push(encoded.upload(&store).await.unwrap());
        }
        let meta = merge_into_one(&store, sources).await;
        assert_eq!((meta.num_series, meta.num_samples, meta.level), (2, 5, 2));
        let got: Vec<(SeriesId, i64, f64)> = read_samples(&store, &meta)
            .await
            .unwrap()
            .0
            .iter()
            .map(|s| (s.series, s.timestamp_ms, s.value))
            .collect();
        assert_eq!(
            got,
            [
                (1, 1_000, 1.0),
                (1, 2_000, 2.0),
                (1, 3_000, 3.0),
                (2, 500, 6.0),
                (2, 1_000, 7.0)
            ],
            "the first source's sample wins a tie"
        );
        let ids: HashSet<SeriesId> = got.iter().map(|s| s.0).collect();
        assert_eq!(ids.len(), 2);
    }
}
