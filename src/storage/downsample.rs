//! Downsampling: a long raw block gets copies at 5 m and 1 h resolution, as Thanos's
//! compactor makes them. Per series and window (aligned to the resolution) a copy holds
//! Thanos's aggregates:
//!
//! - `count`, `sum`, `min`, `max` of the window's samples (staleness markers left out);
//! - `counter`: the window's last raw value, for `rate`, `increase` and `resets` (exact
//!   unless a counter resets inside a window, when the increase before the reset in that
//!   window is lost);
//! - `timestamp`: the window's last sample's time, so rates extrapolate as on raw data.
//!
//! `data.parquet` of a copy: `metric`, `series_id`, `timestamp`, `count`, `sum`, `min`,
//! `max`, `counter`, sorted like a raw block; its `series.parquet` is the source's.

use std::sync::Arc;

use anyhow::Context;
use arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringBuilder, TimestampMillisecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use object_store::buffered::BufWriter;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::AsyncArrowWriter;
use tokio::runtime::Handle;

use crate::config::DownsamplingConfig;
use crate::model::{SeriesId, is_stale_nan};

use super::block::{self, BlockMeta, ROWS_PER_BATCH};
use super::compact::Cursor;
use super::manifest::Manifest;

pub const RES_5M: i64 = 5 * 60_000;
pub const RES_1H: i64 = 3_600_000;

/// The aggregate columns of a downsampled block, in order.
pub const AGGREGATES: [&str; 5] = ["count", "sum", "min", "max", "counter"];

pub fn schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("metric", DataType::Utf8, false),
        Field::new("series_id", DataType::UInt64, false),
        Field::new("timestamp", ts, false),
        Field::new("count", DataType::UInt64, false),
        Field::new("sum", DataType::Float64, false),
        Field::new("min", DataType::Float64, false),
        Field::new("max", DataType::Float64, false),
        Field::new("counter", DataType::Float64, false),
    ]))
}

/// The next copy to make: a raw block long enough for a resolution that has no copy at
/// it yet, and that retention would not drop at once (`keeps(resolution, block)`). 5 m
/// copies come first.
pub fn plan(
    manifest: &Manifest,
    config: &DownsamplingConfig,
    keeps: impl Fn(i64, &BlockMeta) -> bool,
) -> Option<(BlockMeta, i64)> {
    if !config.enabled {
        return None;
    }
    let wanted = [
        (RES_5M, config.after_5m.as_millis_i64()),
        (RES_1H, config.after_1h.as_millis_i64()),
    ];
    for (resolution, after) in wanted {
        for b in &manifest.blocks {
            let has_copy = manifest
                .at_resolution(resolution)
                .any(|d| d.source.as_deref() == Some(&b.id));
            if b.max_time - b.min_time >= after && !has_copy && keeps(resolution, b) {
                return Some((b.clone(), resolution));
            }
        }
    }
    None
}

/// One series' window being aggregated.
struct Window {
    id: SeriesId,
    start: i64,
    last_ts: i64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    counter: f64,
}

impl Window {
    fn new(id: SeriesId, start: i64, ts: i64, v: f64) -> Window {
        Window {
            id,
            start,
            last_ts: ts,
            count: 1,
            sum: v,
            min: v,
            max: v,
            counter: v,
        }
    }

    fn add(&mut self, ts: i64, v: f64) {
        self.last_ts = ts;
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.counter = v;
    }
}

#[derive(Default)]
struct Rows {
    metric: StringBuilder,
    ids: Vec<u64>,
    ts: Vec<i64>,
    count: Vec<u64>,
    sum: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
    counter: Vec<f64>,
}

impl Rows {
    fn push(&mut self, metric: &str, w: &Window) {
        self.metric.append_value(metric);
        self.ids.push(w.id);
        self.ts.push(w.last_ts);
        self.count.push(w.count);
        self.sum.push(w.sum);
        self.min.push(w.min);
        self.max.push(w.max);
        self.counter.push(w.counter);
    }

    fn take_batch(&mut self) -> anyhow::Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.metric.finish()),
            Arc::new(UInt64Array::from(std::mem::take(&mut self.ids))),
            Arc::new(
                TimestampMillisecondArray::from(std::mem::take(&mut self.ts)).with_timezone("UTC"),
            ),
            Arc::new(UInt64Array::from(std::mem::take(&mut self.count))),
            Arc::new(Float64Array::from(std::mem::take(&mut self.sum))),
            Arc::new(Float64Array::from(std::mem::take(&mut self.min))),
            Arc::new(Float64Array::from(std::mem::take(&mut self.max))),
            Arc::new(Float64Array::from(std::mem::take(&mut self.counter))),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}

/// Makes the `resolution` copy of `source` as block `id` and uploads it; nothing is
/// visible until the caller publishes the returned entry. Blocking, like
/// [`super::compact::merge`].
pub fn downsample(
    store: &Arc<dyn ObjectStore>,
    rt: &Handle,
    source: &BlockMeta,
    resolution: i64,
    id: String,
) -> anyhow::Result<BlockMeta> {
    let mut meta = BlockMeta {
        id,
        resolution_ms: resolution,
        source: Some(source.id.clone()),
        view: None,
        num_samples: 0,
        data_bytes: 0,
        data_file_bytes: 0,
        histogram_metrics: Default::default(),
        ..source.clone()
    };
    let data_path = meta.data_path();
    let mut writer = AsyncArrowWriter::try_new(
        BufWriter::new(store.clone(), data_path.clone()),
        schema(),
        Some(block::writer_properties()),
    )?;
    let mut cursor = Cursor::open(store, rt, source)?;
    let mut rows = Rows::default();
    let mut open: Option<(String, Window)> = None;
    while !cursor.done() {
        let (id, ts, v) = (cursor.id(), cursor.timestamp(), cursor.value());
        // Native histograms are not downsampled (yet): the aggregates are of floats.
        if !is_stale_nan(v) && !cursor.is_histogram() {
            let start = ts.div_euclid(resolution) * resolution;
            match &mut open {
                Some((_, w)) if w.id == id && w.start == start => w.add(ts, v),
                _ => {
                    if let Some((metric, w)) = open.take() {
                        rows.push(&metric, &w);
                        meta.num_samples += 1;
                    }
                    open = Some((cursor.metric().to_string(), Window::new(id, start, ts, v)));
                }
            }
        }
        if rows.ids.len() >= ROWS_PER_BATCH {
            rt.block_on(writer.write(&rows.take_batch()?))
                .with_context(|| format!("writing {data_path}"))?;
        }
        cursor.advance(rt)?;
    }
    if let Some((metric, w)) = open.take() {
        rows.push(&metric, &w);
        meta.num_samples += 1;
    }
    if !rows.ids.is_empty() {
        rt.block_on(writer.write(&rows.take_batch()?))
            .with_context(|| format!("writing {data_path}"))?;
    }
    rt.block_on(writer.close())
        .with_context(|| format!("writing {data_path}"))?;
    meta.data_file_bytes = rt
        .block_on(store.head(&data_path))
        .with_context(|| format!("reading the size of {data_path}"))?
        .size;
    let series = rt
        .block_on(async { store.get(&source.series_path()).await?.bytes().await })
        .with_context(|| format!("reading {}", source.series_path()))?;
    meta.data_bytes = meta.data_file_bytes + series.len() as u64;
    let series_path = meta.series_path();
    rt.block_on(store.put(&series_path, series.into()))
        .with_context(|| format!("writing {series_path}"))?;
    Ok(meta)
}
