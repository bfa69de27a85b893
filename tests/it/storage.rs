//! Storage through the library API: layout migrations and the embedded default server.

use std::sync::Arc;
use std::time::Duration;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use quiver::config::{PromDuration, QueryConfig, StorageConfig};
use quiver::metrics::{QueryMetrics, StorageMetrics};
use quiver::model::{Labels, Sample, SeriesSamples};
use quiver::query::sql::SqlEngine;
use quiver::storage::{CURRENT_LAYOUT_VERSION, SeriesScope, Storage, StorageOptions};

use crate::common::*;

fn options(dir: &std::path::Path) -> StorageOptions {
    StorageOptions {
        data_dir: dir.to_path_buf(),
        config: StorageConfig {
            block_duration: PromDuration::from_secs(60),
            ..StorageConfig::default()
        },
        retention: Duration::ZERO,
        retention_size: 0,
        retention_downsampled: [Duration::ZERO; 2],
    }
}

/// The one series these tests write: `m{k="v"}`.
fn series_m() -> Arc<Labels> {
    Arc::new(
        Labels::series(vec![
            ("__name__".into(), "m".into()),
            ("k".into(), "v".into()),
        ])
        .unwrap(),
    )
}

async fn count(storage: Arc<Storage>) -> f64 {
    let engine = SqlEngine::new(
        storage,
        QueryConfig::default(),
        QueryMetrics::unregistered(),
    )
    .unwrap();
    let result = engine.query("SELECT count(*) AS n FROM m").await.unwrap();
    let column = result.batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap();
    column.value(0) as f64
}

/// Rewrites manifest.json as layout 0 had it: no version, no flushed_until, blocks without
/// their metric summary and data file size.
async fn downgrade_to_layout_0(store: &Arc<dyn ObjectStore>) {
    let path = Path::from("manifest.json");
    let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let object = manifest.as_object_mut().unwrap();
    object.remove("layout_version");
    object.remove("flushed_until");
    for block in manifest["blocks"].as_array_mut().unwrap() {
        block.as_object_mut().unwrap().remove("metrics");
        block.as_object_mut().unwrap().remove("data_file_bytes");
    }
    store
        .put(
            &path,
            PutPayload::from(serde_json::to_vec(&manifest).unwrap()),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn layout_0_is_migrated_at_start_and_newer_layouts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    {
        let storage = Storage::open_with_store(
            options(dir.path()),
            store.clone(),
            StorageMetrics::unregistered(),
        )
        .await
        .unwrap();
        let samples = (0..300).map(|i| Sample::new(i * 1000, i as f64)).collect();
        let mut appender = storage.appender();
        appender.add_series(SeriesSamples {
            labels: series_m(),
            samples,
            histograms: Vec::new(),
        });
        appender.commit().unwrap();
        assert!(storage.flush(true).await.unwrap() >= 5);
        assert_eq!(count(storage).await, 300.0);
    }
    // Drop the WAL so only blocks remain, then make the manifest look like layout 0.
    std::fs::remove_dir_all(dir.path().join("wal")).unwrap();
    downgrade_to_layout_0(&store).await;

    let storage = Storage::open_with_store(
        options(dir.path()),
        store.clone(),
        StorageMetrics::unregistered(),
    )
    .await
    .unwrap();
    let manifest = storage.manifest();
    assert_eq!(manifest.layout_version, CURRENT_LAYOUT_VERSION);
    assert_eq!(manifest.flushed_until, Some(300_000));
    assert!(
        manifest
            .blocks
            .iter()
            .all(|b| b.metrics.contains_key("m") && b.data_file_bytes > 0)
    );
    assert_eq!(count(storage).await, 300.0);
    // The upgrade was saved.
    let saved = store
        .get(&Path::from("manifest.json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&saved).contains("\"layout_version\": 1"));

    // A manifest from the future is refused with a clear reason.
    let mut future: serde_json::Value = serde_json::from_slice(&saved).unwrap();
    future["layout_version"] = serde_json::json!(99);
    store
        .put(
            &Path::from("manifest.json"),
            PutPayload::from(serde_json::to_vec(&future).unwrap()),
        )
        .await
        .unwrap();
    let err = Storage::open_with_store(
        options(dir.path()),
        store.clone(),
        StorageMetrics::unregistered(),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("newer Quiver"), "{err:#}");
}

#[tokio::test]
async fn default_configuration_scrapes_itself() {
    // No --config.file: the embedded default, with the self-scrape following the port.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = Process::spawn(
        "quiver",
        std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
            .current_dir(dir.path())
            .arg(format!("--web.listen-address=127.0.0.1:{port}")),
        &dir.path().join("quiver.log"),
    );
    let client = reqwest::Client::new();
    let sql = |q: &'static str| {
        client
            .get(format!("http://127.0.0.1:{port}/api/v1/sql"))
            .query(&[("query", q)])
            .send()
    };
    let up = eventually("self-scrape", Duration::from_secs(30), || async {
        let body: serde_json::Value = sql("SELECT value FROM up WHERE job = 'quiver'")
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        body["data"]["rows"][0][0].as_f64()
    })
    .await;
    assert_eq!(up, 1.0);
    let body: serde_json::Value =
        sql("SELECT max(value) FROM quiver_tsdb_head_samples_appended_total")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert!(body["data"]["rows"][0][0].as_f64().is_some(), "{body}");
    assert!(
        dir.path().join("data/wal").is_dir(),
        "default data directory is ./data"
    );
    let metrics = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "quiver_tsdb_head_samples_appended_total",
        "quiver_tsdb_samples_rejected_total",
        "quiver_tsdb_wal_storage_size_bytes",
        "quiver_tsdb_wal_fsyncs_total",
        "quiver_tsdb_head_series",
        "quiver_tsdb_blocks_written_total",
        "quiver_sql_queries_total",
        "quiver_sql_query_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(family), "/metrics lacks {family}");
    }
}

async fn storage_with_one_series(dir: &std::path::Path, samples: i64) -> Arc<Storage> {
    let storage = Storage::open(options(dir), StorageMetrics::unregistered())
        .await
        .unwrap();
    let mut appender = storage.appender();
    appender.add_series(SeriesSamples {
        labels: series_m(),
        samples: (0..samples)
            .map(|i| Sample::new(i * 1000, i as f64))
            .collect(),
        histograms: Vec::new(),
    });
    appender.commit().unwrap();
    storage
}

/// A read planned before a cut (as a query plan reads the head in `execute()`) joins the
/// head with the manifest it was planned with: the cut publishes its block but keeps the
/// window in the head until the reader is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_read_planned_before_a_cut_still_sees_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let storage = storage_with_one_series(dir.path(), 300).await;
    let reader = storage.head_reader();
    let ids = reader.series_ids(SeriesScope::All);
    let flush = tokio::spawn({
        let storage = storage.clone();
        async move { storage.flush(true).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !flush.is_finished(),
        "the cut must wait for the reader before truncating the head"
    );
    assert!(storage.manifest().flushed_until.is_some());
    assert_eq!(reader.read(&ids, i64::MIN, i64::MAX).series.len(), 300);
    drop(reader);
    assert!(flush.await.unwrap().unwrap() >= 5);
    let after = storage.head_reader();
    let ids = after.series_ids(SeriesScope::All);
    assert!(after.read(&ids, i64::MIN, i64::MAX).series.is_empty());
    drop(after);
    assert_eq!(count(storage).await, 300.0);
}

/// SQL queries racing block cuts count every sample exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_during_cuts_see_every_sample_once() {
    let dir = tempfile::tempdir().unwrap();
    let storage = storage_with_one_series(dir.path(), 1200).await;
    let engine = SqlEngine::new(
        storage.clone(),
        QueryConfig::default(),
        QueryMetrics::unregistered(),
    )
    .unwrap();
    let flush = tokio::spawn({
        let storage = storage.clone();
        async move { storage.flush(true).await }
    });
    let mut queries = 0;
    while !flush.is_finished() || queries < 5 {
        let result = engine
            .query("SELECT count(*) AS n, sum(value) AS s FROM m")
            .await
            .unwrap();
        let batch = &result.batches[0];
        let n = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0);
        let sum = batch
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .unwrap()
            .value(0);
        assert_eq!((n, sum), (1200, (0..1200).sum::<i64>() as f64));
        queries += 1;
    }
    assert!(flush.await.unwrap().unwrap() >= 20);
}
