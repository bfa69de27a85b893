//! Layout 0 -> 1.
//!
//! Layout 0 (the pre-release format) had a manifest with only `blocks`, each entry without
//! the `metrics` summary, and no `flushed_until`. Layout 1 adds:
//! - `layout_version`,
//! - `flushed_until`, the end of the newest block,
//! - per block, `metrics`: metric name -> label names, read from the block's series file,
//! - per block, `data_file_bytes`: the size of `data.parquet`, read from the object store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::Context;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Value, json};

use crate::storage::block::{BlockMeta, BlockSeries};

pub fn upgrade(
    store: Arc<dyn ObjectStore>,
    manifest: Value,
) -> BoxFuture<'static, anyhow::Result<Value>> {
    async move {
        let mut manifest = manifest;
        let blocks = manifest
            .get_mut("blocks")
            .and_then(Value::as_array_mut)
            .context("layout 0 manifest has no blocks array")?;
        let mut newest_end: Option<i64> = None;
        for block in blocks.iter_mut() {
            let needs_size = block.get("data_file_bytes").is_none();
            let needs_metrics = block.get("metrics").is_none();
            if needs_size {
                block["data_file_bytes"] = json!(0);
            }
            if needs_metrics {
                block["metrics"] = json!({});
            }
            let meta: BlockMeta = serde_json::from_value(block.clone())
                .context("layout 0 block entry is malformed")?;
            if needs_size {
                block["data_file_bytes"] = json!(store.head(&meta.data_path()).await?.size);
            }
            if needs_metrics {
                block["metrics"] = serde_json::to_value(metric_label_names(&store, &meta).await?)?;
            }
            if let Some(end) = block.get("max_time").and_then(Value::as_i64) {
                newest_end = Some(newest_end.map_or(end, |n| n.max(end)));
            }
        }
        if manifest.get("flushed_until").is_none() {
            manifest["flushed_until"] = json!(newest_end);
        }
        Ok(manifest)
    }
    .boxed()
}

/// Metric name -> label names, from a block's series file.
async fn metric_label_names(
    store: &Arc<dyn ObjectStore>,
    meta: &BlockMeta,
) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let series = BlockSeries::load(store, meta).await?;
    let mut metrics: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (metric, list) in &series.by_metric {
        let names = metrics.entry(metric.clone()).or_default();
        for (_, labels) in list {
            names.extend(labels.without_metric_name().map(|(n, _)| n.to_string()));
        }
    }
    Ok(metrics)
}
