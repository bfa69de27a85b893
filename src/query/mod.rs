//! Query engines over storage: PromQL (translated to DataFusion plans) and SQL, both reading
//! through `scan`.

pub mod complexity;
pub mod promql;
pub mod scan;
pub mod sql;

use std::sync::Arc;

use crate::config::QueryConfig;
use crate::metrics::QueryMetrics;
use crate::storage::Storage;

/// The SQL engine with PromQL's range functions as SQL aggregates (`prom_rate`, ...), which
/// the metric tables and `explain`'s equivalent SQL use, and PromQL's functions of native
/// histograms over the `histogram` column (`prom_histogram_quantile`, ...). Neither engine
/// imports the other; this is where they meet.
pub fn sql_engine(
    storage: Arc<Storage>,
    limits: QueryConfig,
    metrics: QueryMetrics,
) -> anyhow::Result<sql::SqlEngine> {
    let engine = sql::SqlEngine::new(storage, limits, metrics)?;
    engine.register_udafs(promql::sql_functions::udafs());
    engine.register_udfs(promql::native::sql_udfs());
    Ok(engine)
}
