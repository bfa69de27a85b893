//! A read cache in front of the object store for block objects: byte ranges of
//! `blocks/<id>/…` objects (Parquet footers, page indexes, column chunks) kept in a moka
//! cache bounded in bytes. Block objects never change once written (a rewrite is a new
//! block id), so an entry is never stale; deleted blocks' entries age out.
//!
//! Everything else (the manifest, writes, listings) passes straight through.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use prometheus::{IntCounterVec, IntGaugeVec};

/// Hit, miss and eviction counters and the size of one named cache.
#[derive(Clone)]
pub struct CacheStats {
    name: &'static str,
    requests: IntCounterVec,
    evictions: IntCounterVec,
    bytes: IntGaugeVec,
}

impl CacheStats {
    pub fn new(
        name: &'static str,
        requests: &IntCounterVec,
        evictions: &IntCounterVec,
        bytes: &IntGaugeVec,
    ) -> Self {
        CacheStats {
            name,
            requests: requests.clone(),
            evictions: evictions.clone(),
            bytes: bytes.clone(),
        }
    }

    pub fn hit(&self) {
        self.requests.with_label_values(&[self.name, "hit"]).inc();
    }

    pub fn miss(&self) {
        self.requests.with_label_values(&[self.name, "miss"]).inc();
    }

    pub fn evicted(&self) {
        self.evictions.with_label_values(&[self.name]).inc();
    }

    /// A moka eviction listener that counts the entries evicted for space.
    pub fn eviction_listener<K, V>(
        &self,
    ) -> impl Fn(Arc<K>, V, moka::notification::RemovalCause) + Send + Sync + 'static {
        let stats = self.clone();
        move |_, _, cause| {
            if cause == moka::notification::RemovalCause::Size {
                stats.evicted();
            }
        }
    }

    /// (hits, misses) counted so far.
    pub fn counts(&self) -> (u64, u64) {
        let get = |r: &str| self.requests.with_label_values(&[self.name, r]).get();
        (get("hit"), get("miss"))
    }

    pub fn set_bytes(&self, bytes: u64) {
        self.bytes
            .with_label_values(&[self.name])
            .set(bytes.try_into().unwrap_or(i64::MAX));
    }
}

/// What one query read of block objects, for `explain?analyze=true`: the objects and
/// bytes fetched from the bucket, and the reads the cache served.
#[derive(Debug, Default)]
pub struct FetchStats {
    objects: std::sync::Mutex<std::collections::BTreeSet<Path>>,
    requests: AtomicU64,
    bytes: AtomicU64,
    hits: AtomicU64,
    hit_bytes: AtomicU64,
}

impl FetchStats {
    fn fetched(&self, location: &Path, bytes: u64) {
        if let Ok(mut objects) = self.objects.lock() {
            objects.insert(location.clone());
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn served(&self, bytes: u64) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        self.hit_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// One line: objects, requests and bytes from the bucket; reads from the cache.
    pub fn summary(&self) -> String {
        let objects = self.objects.lock().map_or(0, |o| o.len());
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        format!(
            "block objects: {objects} fetched from the bucket in {} requests, {} bytes; {} reads, {} bytes, from the cache",
            get(&self.requests),
            get(&self.bytes),
            get(&self.hits),
            get(&self.hit_bytes),
        )
    }
}

type Key = (Path, u64, u64);

#[derive(Clone)]
struct Chunk {
    bytes: Bytes,
    /// The object's metadata, when the range came from a `get_opts` that returns it.
    meta: Option<ObjectMeta>,
}

#[derive(Clone)]
pub struct CachingStore {
    inner: Arc<dyn ObjectStore>,
    chunks: moka::future::Cache<Key, Chunk>,
    stats: CacheStats,
    /// Counts this handle's reads (one query's), when set.
    observer: Option<Arc<FetchStats>>,
}

impl CachingStore {
    pub fn new(inner: Arc<dyn ObjectStore>, capacity_bytes: u64, stats: CacheStats) -> Self {
        let chunks = moka::future::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|k: &Key, v: &Chunk| {
                (v.bytes.len() + k.0.as_ref().len() + 64)
                    .try_into()
                    .unwrap_or(u32::MAX)
            })
            .eviction_listener(stats.eviction_listener())
            .build();
        CachingStore {
            inner,
            chunks,
            stats,
            observer: None,
        }
    }

    /// The same cache, with this handle's reads counted in `observer`.
    pub fn observed(&self, observer: Arc<FetchStats>) -> CachingStore {
        CachingStore {
            observer: Some(observer),
            ..self.clone()
        }
    }

    fn fetched(&self, location: &Path, bytes: u64) {
        if let Some(o) = &self.observer {
            o.fetched(location, bytes);
        }
    }

    fn served(&self, bytes: u64) {
        if let Some(o) = &self.observer {
            o.served(bytes);
        }
    }

    fn cacheable(location: &Path) -> bool {
        location.as_ref().starts_with("blocks/")
    }

    async fn insert(&self, key: Key, chunk: Chunk) {
        self.chunks.insert(key, chunk).await;
        self.stats.set_bytes(self.chunks.weighted_size());
    }
}

impl fmt::Display for CachingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cached({})", self.inner)
    }
}

impl fmt::Debug for CachingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CachingStore({:?})", self.inner)
    }
}

fn plain_range(options: &GetOptions) -> Option<Range<u64>> {
    let plain = options.if_match.is_none()
        && options.if_none_match.is_none()
        && options.if_modified_since.is_none()
        && options.if_unmodified_since.is_none()
        && options.version.is_none()
        && !options.head;
    match (&options.range, plain) {
        (Some(GetRange::Bounded(r)), true) => Some(r.clone()),
        _ => None,
    }
}

#[async_trait]
impl ObjectStore for CachingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let Some(range) = plain_range(&options).filter(|_| Self::cacheable(location)) else {
            let result = self.inner.get_opts(location, options).await?;
            self.fetched(location, result.range.end - result.range.start);
            return Ok(result);
        };
        let key = (location.clone(), range.start, range.end);
        if let Some(Chunk {
            bytes,
            meta: Some(meta),
        }) = self.chunks.get(&key).await
        {
            self.stats.hit();
            self.served(bytes.len() as u64);
            let range = range.start..range.start + bytes.len() as u64;
            return Ok(GetResult {
                payload: GetResultPayload::Stream(
                    futures::stream::once(async { Ok(bytes) }).boxed(),
                ),
                meta,
                range,
                attributes: Default::default(),
            });
        }
        self.stats.miss();
        let result = self.inner.get_opts(location, options).await?;
        let (meta, got, attributes) = (
            result.meta.clone(),
            result.range.clone(),
            result.attributes.clone(),
        );
        let bytes = result.bytes().await?;
        self.fetched(location, bytes.len() as u64);
        let chunk = Chunk {
            bytes: bytes.clone(),
            meta: Some(meta.clone()),
        };
        self.insert(key, chunk).await;
        Ok(GetResult {
            payload: GetResultPayload::Stream(futures::stream::once(async { Ok(bytes) }).boxed()),
            meta,
            range: got,
            attributes,
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        if !Self::cacheable(location) {
            let fetched = self.inner.get_ranges(location, ranges).await?;
            (fetched.iter()).for_each(|b| self.fetched(location, b.len() as u64));
            return Ok(fetched);
        }
        let mut out: Vec<Option<Bytes>> = Vec::with_capacity(ranges.len());
        let mut missing = Vec::new();
        for r in ranges {
            let cached = self.chunks.get(&(location.clone(), r.start, r.end)).await;
            match cached {
                Some(chunk) => {
                    self.stats.hit();
                    self.served(chunk.bytes.len() as u64);
                    out.push(Some(chunk.bytes));
                }
                None => {
                    self.stats.miss();
                    missing.push(r.clone());
                    out.push(None);
                }
            }
        }
        if !missing.is_empty() {
            let fetched = self.inner.get_ranges(location, &missing).await?;
            (fetched.iter()).for_each(|b| self.fetched(location, b.len() as u64));
            let mut fetched = missing.into_iter().zip(fetched);
            for slot in out.iter_mut().filter(|s| s.is_none()) {
                if let Some((r, bytes)) = fetched.next() {
                    let chunk = Chunk {
                        bytes: bytes.clone(),
                        meta: None,
                    };
                    self.insert((location.clone(), r.start, r.end), chunk).await;
                    *slot = Some(bytes);
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;
    use prometheus::Opts;

    use super::*;

    fn stats() -> (CacheStats, IntCounterVec) {
        let requests = IntCounterVec::new(Opts::new("r", "r"), &["cache", "result"]).unwrap();
        let evictions = IntCounterVec::new(Opts::new("e", "e"), &["cache"]).unwrap();
        let bytes = IntGaugeVec::new(Opts::new("b", "b"), &["cache"]).unwrap();
        (
            CacheStats::new("chunks", &requests, &evictions, &bytes),
            requests,
        )
    }

    #[tokio::test]
    async fn block_ranges_are_fetched_once_and_the_rest_passes_through() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let data: Vec<u8> = (0..=255).collect();
        let block = Path::from("blocks/b1/data.parquet");
        inner.put(&block, data.clone().into()).await.unwrap();
        inner
            .put(&Path::from("manifest.json"), vec![1u8].into())
            .await
            .unwrap();
        let (stats, requests) = stats();
        let store = CachingStore::new(inner.clone(), 1 << 20, stats);
        let count = |result: &str| requests.with_label_values(&["chunks", result]).get();

        assert_eq!(store.get_range(&block, 10..20).await.unwrap(), data[10..20]);
        assert_eq!(store.get_range(&block, 10..20).await.unwrap(), data[10..20]);
        assert_eq!((count("hit"), count("miss")), (1, 1));
        let got = store.get_ranges(&block, &[10..20, 30..40]).await.unwrap();
        assert_eq!(got, [&data[10..20], &data[30..40]]);
        assert_eq!((count("hit"), count("miss")), (2, 2));
        // The manifest changes: never cached.
        store.get(&Path::from("manifest.json")).await.unwrap();
        inner
            .put(&Path::from("manifest.json"), vec![2u8].into())
            .await
            .unwrap();
        let now = store
            .get(&Path::from("manifest.json"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(now.as_ref(), [2u8]);
        assert_eq!((count("hit"), count("miss")), (2, 2));
        // Served from the cache once the object is gone.
        inner.delete(&block).await.unwrap();
        assert_eq!(store.get_range(&block, 10..20).await.unwrap(), data[10..20]);
        assert!(store.get_range(&block, 50..60).await.is_err());
    }

    #[tokio::test]
    async fn an_observed_handle_counts_its_own_fetches_and_hits() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let block = Path::from("blocks/b1/data.parquet");
        inner.put(&block, vec![7u8; 100].into()).await.unwrap();
        let (stats, _) = stats();
        let store = CachingStore::new(inner, 1 << 20, stats);
        store.get_range(&block, 0..10).await.unwrap();
        let fetch = Arc::new(FetchStats::default());
        let query = store.observed(fetch.clone());
        query.get_range(&block, 0..10).await.unwrap();
        query.get_ranges(&block, &[0..10, 20..50]).await.unwrap();
        assert_eq!(
            fetch.summary(),
            "block objects: 1 fetched from the bucket in 1 requests, 30 bytes; 2 reads, 20 bytes, from the cache"
        );
    }
}
