//! Start timestamps: kept with their samples through the WAL, the head and Parquet blocks
//! (blocks written before them still read), and used by PromQL's `rate`, `increase`,
//! `resets` and `start_timestamp()`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use quiver::config::StorageConfig;
use quiver::model::{Labels, Sample, SeriesSamples};
use quiver::query::promql::{PromValue, PromqlEngine};
use quiver::storage::Storage;

const LOOKBACK: Duration = Duration::from_secs(300);
const EVAL_MS: i64 = 360_000;

async fn open(dir: &Path) -> (Arc<Storage>, PromqlEngine) {
    crate::common::embedded_engine(dir, StorageConfig::default(), 1_000_000).await
}

/// A counter restarted between 3m and 4m whose values never fall: only the start
/// timestamps (30s, then 3m30s) tell of the restart.
fn restarted_counter() -> Vec<SeriesSamples> {
    let samples = [(10.0, 30_000), (20.0, 30_000), (30.0, 30_000)]
        .into_iter()
        .chain([(40.0, 210_000), (50.0, 210_000), (60.0, 210_000)])
        .enumerate()
        .map(|(i, (value, start))| Sample {
            start_timestamp_ms: start,
            ..Sample::new(60_000 * (i as i64 + 1), value)
        })
        .collect();
    let labels = Labels::series(vec![
        ("__name__".to_string(), "jobs_total".to_string()),
        ("job".to_string(), "batch".to_string()),
    ])
    .expect("valid labels");
    vec![SeriesSamples {
        labels: Arc::new(labels),
        samples,
        histograms: Vec::new(),
    }]
}

async fn value(engine: &PromqlEngine, query: &str) -> f64 {
    match engine.instant(query, EVAL_MS, LOOKBACK).await {
        Ok(PromValue::Vector(series)) if series.len() == 1 => series[0].points[0].1,
        other => panic!("{query}: expected one series, got {other:?}"),
    }
}

/// What the restarted counter must answer wherever its samples live.
async fn assert_restart_seen(engine: &PromqlEngine, where_: &str) {
    // (60 - 20) + 30 carried over the restart, extrapolated by a quarter to the window's
    // start; reading the values alone would give 50.
    assert_eq!(
        value(engine, "increase(jobs_total[5m])").await,
        87.5,
        "{where_}"
    );
    assert_eq!(
        value(engine, "resets(jobs_total[5m])").await,
        1.0,
        "{where_}"
    );
    assert_eq!(
        value(engine, "start_timestamp(jobs_total)").await,
        210.0,
        "{where_}"
    );
    // At 4m the last two samples straddle the restart: 40 counted from zero over a minute.
    let irate = value(engine, "irate(jobs_total[5m] @ 240)").await;
    assert!(
        (irate - 40.0 / 60.0).abs() < 1e-12,
        "{where_}: irate {irate}"
    );
}

#[tokio::test]
async fn start_timestamps_survive_wal_replay_and_blocks() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let (storage, engine) = open(dir.path()).await;
        let mut appender = storage.appender();
        appender.extend(restarted_counter());
        appender.commit().expect("append");
        assert_restart_seen(&engine, "head").await;
        storage.close().expect("close");
    }
    {
        let (storage, engine) = open(dir.path()).await;
        assert_restart_seen(&engine, "head replayed from the WAL").await;
        assert_eq!(storage.flush(true).await.expect("cut"), 1);
        assert_restart_seen(&engine, "block").await;
        storage.close().expect("close");
    }
    let (_storage, engine) = open(dir.path()).await;
    assert_restart_seen(&engine, "block after a restart").await;
}

#[tokio::test]
async fn blocks_without_start_timestamps_still_answer() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let (storage, _engine) = open(dir.path()).await;
        let mut appender = storage.appender();
        appender.extend(restarted_counter());
        appender.commit().expect("append");
        storage.flush(true).await.expect("cut");
        storage.close().expect("close");
    }
    drop_start_timestamp_column(dir.path());
    let (_storage, engine) = open(dir.path()).await;
    // Without start timestamps the restart is invisible, as it is to Prometheus.
    assert_eq!(value(&engine, "increase(jobs_total[5m])").await, 50.0);
    assert_eq!(value(&engine, "resets(jobs_total[5m])").await, 0.0);
    assert_eq!(value(&engine, "start_timestamp(jobs_total)").await, 0.0);
    assert_eq!(value(&engine, "sum_over_time(jobs_total[5m])").await, 200.0);
}

/// Rewrites every block's `data.parquet` in the layout written before start timestamps
/// existed (no `start_timestamp` column) and records the new sizes in the manifest.
fn drop_start_timestamp_column(root: &Path) {
    let manifest_path = root.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path).expect("manifest");
    let mut manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest json");
    let blocks = manifest["blocks"].as_array_mut().expect("blocks");
    assert!(!blocks.is_empty(), "a block was cut");
    for block in blocks {
        let id = block["id"].as_str().expect("block id").to_string();
        let path = root.join("blocks").join(id).join("data.parquet");
        let file = std::fs::File::open(&path).expect("data file");
        let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet")
            .build()
            .expect("reader")
            .collect::<Result<_, _>>()
            .expect("batches");
        let old: Vec<RecordBatch> = batches
            .iter()
            .map(|b| b.project(&[0, 1, 2, 3]).expect("project"))
            .collect();
        assert_eq!(batches[0].schema().field(4).name(), "start_timestamp");
        let out = std::fs::File::create(&path).expect("rewrite");
        let mut writer = ArrowWriter::try_new(out, old[0].schema(), None).expect("writer");
        for batch in &old {
            writer.write(batch).expect("write");
        }
        writer.close().expect("close");
        let size = std::fs::metadata(&path).expect("size").len();
        block["data_file_bytes"] = serde_json::json!(size);
    }
    std::fs::write(&manifest_path, manifest.to_string()).expect("manifest written");
}
