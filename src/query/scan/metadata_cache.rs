//! Decoded Parquet footers and page indexes of block files, in a moka cache bounded in
//! bytes: DataFusion's file-metadata cache interface, so its Parquet reader asks here before
//! fetching a footer. Blocks never change once written, so an entry is never stale.

use std::time::Duration;

use datafusion::common::{HashMap, TableReference};
use datafusion::execution::cache::cache_manager::CachedFileMetadataEntry;
use datafusion::execution::cache::{Cache, CacheEntryInfo};
use object_store::path::Path;

use crate::storage::cache::CacheStats;

pub struct MetadataCache {
    entries: moka::sync::Cache<Path, CachedFileMetadataEntry>,
    limit: u64,
    stats: CacheStats,
}

impl MetadataCache {
    pub fn new(limit: u64, stats: CacheStats) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(limit)
            .weigher(|k: &Path, v: &CachedFileMetadataEntry| {
                (k.as_ref().len() + v.file_metadata.memory_size())
                    .try_into()
                    .unwrap_or(u32::MAX)
            })
            .eviction_listener(stats.eviction_listener())
            .build();
        MetadataCache {
            entries,
            limit,
            stats,
        }
    }
}

impl Cache<Path, CachedFileMetadataEntry> for MetadataCache {
    fn get(&self, key: &Path) -> Option<CachedFileMetadataEntry> {
        let found = self.entries.get(key);
        match found {
            Some(_) => self.stats.hit(),
            None => self.stats.miss(),
        }
        found
    }

    fn put(&self, key: &Path, value: CachedFileMetadataEntry) -> Option<CachedFileMetadataEntry> {
        let previous = self.entries.get(key);
        self.entries.insert(key.clone(), value);
        self.stats.set_bytes(self.entries.weighted_size());
        previous
    }

    fn remove(&self, k: &Path) -> Option<CachedFileMetadataEntry> {
        self.entries.remove(k)
    }

    fn contains_key(&self, k: &Path) -> bool {
        self.entries.contains_key(k)
    }

    fn len(&self) -> usize {
        self.entries.entry_count().try_into().unwrap_or(usize::MAX)
    }

    fn clear(&self) {
        self.entries.invalidate_all();
    }

    fn name(&self) -> String {
        "quiver block metadata".into()
    }

    fn cache_limit(&self) -> usize {
        self.limit.try_into().unwrap_or(usize::MAX)
    }

    /// The budget is `storage.cache.metadata_bytes`, fixed at start.
    fn update_cache_limit(&self, _limit: usize) {}

    fn cache_ttl(&self) -> Option<Duration> {
        None
    }

    fn update_cache_ttl(&self, _ttl: Option<Duration>) {}

    fn drop_table_entries(&self, _table_ref: &TableReference) -> datafusion::common::Result<()> {
        Ok(())
    }

    fn list_entries(&self) -> HashMap<Path, CacheEntryInfo<CachedFileMetadataEntry>> {
        self.entries
            .iter()
            .map(|(k, v)| {
                let size_bytes = v.file_metadata.memory_size();
                let info = CacheEntryInfo {
                    value: v,
                    size_bytes,
                    hits: 0,
                    expires: None,
                };
                (k.as_ref().clone(), info)
            })
            .collect()
    }
}
