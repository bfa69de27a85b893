//! Reading samples and series for both query engines: the `RawSamples` table over the head
//! and the blocks, the head's scan node, the series a query needs, and the column names the
//! SQL tables and the PromQL-to-SQL translation share. PromQL and SQL both import this
//! module; neither imports the other's tables.

mod block_scan;
pub mod downsampled;
mod head_scan;
pub mod metadata_cache;
pub mod raw_samples;
pub mod series_set;
pub mod timerange;

use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreUrl};
use datafusion::execution::runtime_env::RuntimeEnv;
use object_store::ObjectStore;

pub use downsampled::DownsampledSamples;
pub use raw_samples::RawSamples;
pub use series_set::SeriesSet;

/// Where DataFusion finds the block files: registered in the session's runtime.
pub const BLOCKS_URL: &str = "quiver://blocks/";

/// `shared` (its memory pool, spill files and metadata caches) with the blocks read through
/// `blocks` instead: for one query whose reads are counted.
pub fn runtime_reading_blocks_from(
    shared: &RuntimeEnv,
    blocks: Arc<dyn ObjectStore>,
) -> datafusion::common::Result<Arc<RuntimeEnv>> {
    let runtime = RuntimeEnv {
        memory_pool: shared.memory_pool.clone(),
        disk_manager: shared.disk_manager.clone(),
        cache_manager: shared.cache_manager.clone(),
        object_store_registry: Arc::new(DefaultObjectStoreRegistry::new()),
    };
    runtime.register_object_store(ObjectStoreUrl::parse(BLOCKS_URL)?.as_ref(), blocks);
    Ok(Arc::new(runtime))
}

pub const TIMESTAMP: &str = "timestamp";
pub const VALUE: &str = "value";
pub const START_TIMESTAMP: &str = "start_timestamp";
pub const SERIES_ID: &str = "series_id";
pub use crate::storage::histogram_arrow::HISTOGRAM_COLUMN as HISTOGRAM;

pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The column a label gets in a metric table: its own name, unless that collides with the
/// fixed `timestamp`/`value` columns.
pub fn label_column_name(label: &str) -> String {
    if label == TIMESTAMP || label == VALUE {
        format!("label_{label}")
    } else {
        label.to_string()
    }
}
