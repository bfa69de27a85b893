//! The SQL session: DataFusion over Quiver's tables, read-only, with a timeout, a result
//! row cap and a memory limit per query. HTTP and the PostgreSQL wire protocol share one
//! [`SqlEngine`] and its session, which also carries PostgreSQL's catalogs (`pg_catalog`
//! from `datafusion-pg-catalog`, our PostgreSQL-shaped `information_schema`) and functions.
//! Functions that can build far more than they read are guarded ([`guards`]).

mod catalog;
mod guards;
pub mod information_schema;
pub mod pg_functions;
pub mod tables;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::CatalogProvider;
use datafusion::catalog::MemoryCatalogProvider;
use datafusion::common::DataFusionError;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

use crate::storage::downsample::{RES_1H, RES_5M};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;

use crate::config::QueryConfig;
use crate::metrics::QueryMetrics;
use crate::storage::Storage;

pub use catalog::{SAMPLES_TABLE, SERIES_TABLE};

pub const CATALOG: &str = "quiver";
pub const SCHEMA: &str = "public";

/// Why a SQL query failed; the API layer maps these to Prometheus error types.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The query text is wrong: syntax, unknown table or column, type errors.
    #[error("{0}")]
    BadQuery(String),
    /// The query would write or touch the server's files.
    #[error("{0}")]
    ReadOnly(String),
    #[error("query timed out after {0:?}")]
    Timeout(Duration),
    #[error("query result exceeds the limit of {0} rows")]
    TooManyRows(usize),
    #[error("query exceeds the memory limit: {0}")]
    ResourcesExhausted(String),
    #[error("{0}")]
    Execution(String),
}

/// A finished query: the schema (also for zero rows) and the batches.
#[derive(Debug)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

pub struct SqlEngine {
    ctx: SessionContext,
    limits: QueryConfig,
    metrics: QueryMetrics,
}

impl SqlEngine {
    pub fn new(
        storage: Arc<Storage>,
        limits: QueryConfig,
        metrics: QueryMetrics,
    ) -> anyhow::Result<SqlEngine> {
        let metadata_bytes = storage.cache_config().metadata_bytes;
        let metadata_cache = crate::query::scan::metadata_cache::MetadataCache::new(
            metadata_bytes,
            storage.cache_stats("metadata"),
        );
        let caches = CacheManagerConfig::default()
            .with_file_metadata_cache(Some(Arc::new(metadata_cache)))
            .with_metadata_cache_limit(metadata_bytes.try_into().unwrap_or(usize::MAX));
        let runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(caches)
            .with_memory_limit(limits.memory_limit_bytes, 1.0)
            // No spilling: a query over its memory budget fails instead of filling local disk.
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()?;
        let url = url::Url::parse(crate::query::scan::BLOCKS_URL)?;
        runtime.register_object_store(&url, storage.object_store());
        // Block scans spread their files themselves (`scan::block_scan`).
        let mut config = SessionConfig::new()
            .with_repartition_file_scans(false)
            .with_default_catalog_and_schema(CATALOG, SCHEMA)
            .with_create_default_catalog_and_schema(false)
            // Ours, in PostgreSQL's shape, replaces DataFusion's information_schema.
            .with_information_schema(false);
        // A field of a struct column (`histogram['count']`) read through a table's view
        // makes DataFusion's leaf-expression pushdown fail on the view's renamed columns
        // ("would be ambiguous", apache/datafusion#25446); the scan reads the whole struct.
        config
            .options_mut()
            .optimizer
            .enable_leaf_expression_pushdown = false;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let catalog = MemoryCatalogProvider::new();
        catalog.register_schema(
            SCHEMA,
            Arc::new(catalog::QuiverSchema::new(storage.clone())),
        )?;
        for (name, resolution) in [("res_5m", RES_5M), ("res_1h", RES_1H)] {
            let schema = catalog::DownsampledSchema::new(storage.clone(), resolution);
            catalog.register_schema(name, Arc::new(schema))?;
        }
        ctx.register_catalog(CATALOG, Arc::new(catalog));
        add_postgres_catalogs(&ctx)?;
        guards::guard_amplifying_functions(&ctx, limits.memory_limit_bytes)?;
        Ok(SqlEngine {
            ctx,
            limits,
            metrics,
        })
    }

    /// The session, for other frontends that plan on the same tables.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Adds aggregate functions to every session (PromQL's `prom_*` range functions, which
    /// the query module wires in: SQL does not import PromQL).
    pub fn register_udafs(&self, udafs: impl IntoIterator<Item = AggregateUDF>) {
        for udaf in udafs {
            self.ctx.register_udaf(udaf);
        }
    }

    /// Adds scalar functions to every session (those of native histograms, which the query
    /// module wires in).
    pub fn register_udfs(&self, udfs: impl IntoIterator<Item = ScalarUDF>) {
        for udf in udfs {
            self.ctx.register_udf(udf);
        }
    }

    /// Runs one read-only statement within the configured limits.
    pub async fn query(&self, sql: &str) -> Result<QueryResult, SqlError> {
        let started = Instant::now();
        let timeout = self.limits.timeout.0;
        let result = match tokio::time::timeout(timeout, self.run(sql)).await {
            Ok(r) => r,
            Err(_) => Err(SqlError::Timeout(timeout)),
        };
        let outcome = if result.is_ok() { "success" } else { "error" };
        self.metrics.sql_queries.with_label_values(&[outcome]).inc();
        self.metrics
            .sql_query_seconds
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn run(&self, sql: &str) -> Result<QueryResult, SqlError> {
        crate::query::complexity::check_sql(sql).map_err(SqlError::BadQuery)?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = self
            .ctx
            .sql_with_options(sql, options)
            .await
            .map_err(classify_planning)?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let mut stream = df.execute_stream().await.map_err(classify_execution)?;
        let mut batches = Vec::new();
        let mut rows = 0usize;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(classify_execution)?;
            rows += batch.num_rows();
            if rows > self.limits.max_result_rows {
                return Err(SqlError::TooManyRows(self.limits.max_result_rows));
            }
            batches.push(batch);
        }
        Ok(QueryResult { schema, batches })
    }
}

/// `information_schema`, `pg_catalog` and the PostgreSQL functions clients call.
fn add_postgres_catalogs(ctx: &SessionContext) -> anyhow::Result<()> {
    let catalogs = ctx.state().catalog_list().clone();
    let info = information_schema::PgInformationSchema::new(&catalogs);
    ctx.catalog(CATALOG)
        .ok_or_else(|| anyhow::anyhow!("catalog {CATALOG} is missing"))?
        .register_schema(information_schema::INFORMATION_SCHEMA, Arc::new(info))?;
    datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog(
        ctx,
        CATALOG,
        datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider,
    )
    .map_err(|e| anyhow::anyhow!("setting up pg_catalog: {e}"))?;
    ctx.register_udf(pg_functions::current_setting_udf());
    ctx.register_udf(pg_functions::version_udf());
    ctx.register_udf(pg_functions::time_bucket_udf());
    Ok(())
}

fn classify_planning(e: DataFusionError) -> SqlError {
    let message = e.to_string();
    // DataFusion reports refused statement kinds as plan errors naming the option.
    if message.contains("not supported")
        && (message.contains("DDL") || message.contains("DML") || message.contains("Statement"))
    {
        return SqlError::ReadOnly(format!("read-only: {}", strip_prefix(&message)));
    }
    match e.find_root() {
        DataFusionError::ResourcesExhausted(m) => SqlError::ResourcesExhausted(m.clone()),
        _ => SqlError::BadQuery(strip_prefix(&message)),
    }
}

fn classify_execution(e: DataFusionError) -> SqlError {
    match e.find_root() {
        DataFusionError::ResourcesExhausted(m) => SqlError::ResourcesExhausted(m.clone()),
        _ => SqlError::Execution(strip_prefix(&e.to_string())),
    }
}

/// DataFusion prefixes messages with its error kind ("Error during planning: ..."); keep
/// the part a user can act on.
fn strip_prefix(message: &str) -> String {
    message.trim().to_string()
}
