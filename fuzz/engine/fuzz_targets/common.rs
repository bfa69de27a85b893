//! A small fixed dataset in a scratch storage, with both engines over it, made once per
//! fuzzing process.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use quiver::config::{QueryConfig, StorageConfig};
use quiver::metrics::{QueryMetrics, StorageMetrics};
use quiver::model::{Labels, Sample, SeriesSamples};
use quiver::query::promql::PromqlEngine;
use quiver::query::sql::SqlEngine;
use quiver::storage::{Storage, StorageOptions};

#[allow(dead_code)] // each target uses one engine
pub struct Engines {
    pub runtime: tokio::runtime::Runtime,
    pub sql: SqlEngine,
    pub promql: PromqlEngine,
    _dir: tempfile::TempDir,
}

pub fn engines() -> &'static Engines {
    static ENGINES: OnceLock<Engines> = OnceLock::new();
    ENGINES.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_stack_size(32 << 20)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = runtime.block_on(async {
            let options = StorageOptions {
                data_dir: dir.path().to_path_buf(),
                config: StorageConfig::default(),
                retention: Duration::ZERO,
                retention_size: 0,
                retention_downsampled: [Duration::ZERO; 2],
            };
            Storage::open(options, StorageMetrics::unregistered())
                .await
                .expect("storage")
        });
        let mut batch = Vec::new();
        for (name, job, le) in [
            ("http_requests_total", "api", ""),
            ("http_requests_total", "web", ""),
            ("node_load1", "node", ""),
            ("latency_bucket", "api", "0.5"),
            ("latency_bucket", "api", "+Inf"),
        ] {
            let mut pairs = vec![
                ("__name__".to_string(), name.to_string()),
                ("job".to_string(), job.to_string()),
            ];
            if !le.is_empty() {
                pairs.push(("le".to_string(), le.to_string()));
            }
            let labels = Labels::new(pairs).expect("labels");
            let samples = (0..40).map(|i| Sample::new(i * 15_000, (i * 3) as f64)).collect();
            batch.push(SeriesSamples {
                labels: Arc::new(labels),
                samples,
            });
        }
        let mut appender = storage.appender();
        appender.extend(batch);
        appender.commit().expect("commit");
        let limits = QueryConfig {
            timeout: quiver::config::PromDuration(Duration::from_secs(2)),
            memory_limit_bytes: 64 << 20,
            ..QueryConfig::default()
        };
        let sql = SqlEngine::new(storage.clone(), limits, QueryMetrics::unregistered())
            .expect("sql engine");
        let promql = PromqlEngine::new(storage, sql.context().runtime_env(), 1_000_000);
        Engines {
            runtime,
            sql,
            promql,
            _dir: dir,
        }
    })
}
