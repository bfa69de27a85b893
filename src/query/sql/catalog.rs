//! The `public` schema: a table per metric, plus `samples` and `series`, resolved against
//! storage each time a query names them, so new metrics appear without registration.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult};

use crate::storage::{Storage, metric_selector};

use super::tables::{downsampled_table, metric_table, samples_table, series_table};
use crate::query::scan::SeriesSet;

pub const SAMPLES_TABLE: &str = "samples";
pub const SERIES_TABLE: &str = "series";

#[derive(Debug)]
pub struct QuiverSchema {
    storage: Arc<Storage>,
}

impl QuiverSchema {
    pub fn new(storage: Arc<Storage>) -> Self {
        QuiverSchema { storage }
    }
}

#[async_trait]
impl SchemaProvider for QuiverSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.storage.metric_names().into_iter().collect();
        names.push(SAMPLES_TABLE.to_string());
        names.push(SERIES_TABLE.to_string());
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let storage = self.storage.clone();
        let external = |e: anyhow::Error| DataFusionError::External(e.into());
        let table = match name {
            SAMPLES_TABLE => {
                let set = SeriesSet::collect(&storage, None).await.map_err(external)?;
                samples_table(storage, &set).map_err(external)?
            }
            SERIES_TABLE => {
                let set = SeriesSet::collect(&storage, None).await.map_err(external)?;
                series_table(&set).map_err(external)?
            }
            name => {
                let Some(metric) = resolve_metric(&storage, name) else {
                    return Ok(None);
                };
                let metric = metric.as_str();
                let set = SeriesSet::collect(&storage, Some(metric))
                    .await
                    .map_err(external)?;
                if set.series.is_empty() {
                    return Ok(None);
                }
                metric_table(storage, metric, &set).map_err(external)?
            }
        };
        Ok(Some(table))
    }

    fn table_exist(&self, name: &str) -> bool {
        name == SAMPLES_TABLE
            || name == SERIES_TABLE
            || resolve_metric(&self.storage, name).is_some()
    }
}

/// A schema of downsampled data (`res_5m`, `res_1h`): a table per metric with its label
/// columns, `timestamp` and the aggregates.
#[derive(Debug)]
pub struct DownsampledSchema {
    storage: Arc<Storage>,
    resolution_ms: i64,
}

impl DownsampledSchema {
    pub fn new(storage: Arc<Storage>, resolution_ms: i64) -> Self {
        DownsampledSchema {
            storage,
            resolution_ms,
        }
    }

    fn resolve(&self, name: &str) -> Option<String> {
        resolve_name(
            self.storage.downsampled_metric_names(self.resolution_ms),
            name,
        )
    }
}

#[async_trait]
impl SchemaProvider for DownsampledSchema {
    fn table_names(&self) -> Vec<String> {
        let names = self.storage.downsampled_metric_names(self.resolution_ms);
        names.into_iter().collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(metric) = self.resolve(name) else {
            return Ok(None);
        };
        let external = |e: anyhow::Error| DataFusionError::External(e.into());
        let selector = metric_selector(Some(&metric));
        let series = self
            .storage
            .select_downsampled_series(&selector, (i64::MIN, i64::MAX), self.resolution_ms)
            .await
            .map_err(external)?;
        let set = SeriesSet { series };
        let table = downsampled_table(self.storage.clone(), &metric, &set, self.resolution_ms)
            .map_err(external)?;
        Ok(Some(table))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }
}

/// The metric a table name refers to. SQL folds unquoted names to lower case, so
/// `node_memory_MemTotal_bytes` arrives as `node_memory_memtotal_bytes`; when no metric has
/// that exact name, a metric that matches it ignoring case (and only one) is meant.
fn resolve_metric(storage: &Storage, name: &str) -> Option<String> {
    resolve_name(storage.metric_names(), name)
}

fn resolve_name(names: std::collections::BTreeSet<String>, name: &str) -> Option<String> {
    if names.contains(name) {
        return Some(name.to_string());
    }
    let mut matches = names.into_iter().filter(|m| m.eq_ignore_ascii_case(name));
    match (matches.next(), matches.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}
