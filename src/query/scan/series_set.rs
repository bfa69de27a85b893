//! `SeriesSet`: the series a table or a query needs, from the head and the blocks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::model::{Labels, SeriesId};
use crate::storage::{Storage, metric_selector};

/// The series a table needs, gathered from the head and the blocks' series files.
pub struct SeriesSet {
    pub series: BTreeMap<SeriesId, Arc<Labels>>,
}

impl SeriesSet {
    /// Series of `metric` (or of every metric) in head and blocks.
    pub async fn collect(storage: &Storage, metric: Option<&str>) -> anyhow::Result<SeriesSet> {
        Self::collect_in_range(storage, metric, i64::MIN, i64::MAX).await
    }

    /// Series of `metric` (or all) with samples between `min` and `max` (inclusive, ms),
    /// in the head or the blocks.
    pub async fn collect_in_range(
        storage: &Storage,
        metric: Option<&str>,
        min: i64,
        max: i64,
    ) -> anyhow::Result<SeriesSet> {
        let series = storage
            .select_series(&metric_selector(metric), min, max)
            .await?;
        Ok(SeriesSet { series })
    }

    /// Label names across the set, without `__name__`.
    pub fn label_names(&self) -> BTreeSet<String> {
        self.series
            .values()
            .flat_map(|l| l.without_metric_name().map(|(n, _)| n.to_string()))
            .collect()
    }
}
