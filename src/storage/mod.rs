//! Durable storage: WAL + in-memory head for recent samples, Parquet blocks in an object
//! store for closed time windows, a manifest that says which blocks exist.
//!
//! Write path ([`Appender`]): validate against the head -> append to the WAL -> apply to
//! the head -> fsync per policy -> acknowledge. Read path: [`querier`]'s methods. A
//! background task cuts windows that can no longer receive samples into blocks, publishes
//! them in the manifest, then drops them from the head and checkpoints the WAL.

mod appender;
pub mod block;
pub mod cache;
mod chunk;
mod compact;
pub mod downsample;
pub mod exemplars;
mod head;
pub mod histogram_arrow;
pub mod histogram_codec;
pub mod manifest;
mod migrate;
mod object_reader;
pub mod objstore;
mod postings;
mod querier;
pub mod query_tier;
mod series;
pub mod snapshot;
pub mod wal;
mod walsync;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::config::{FsyncPolicy, StorageConfig};
use crate::metrics::StorageMetrics;
use crate::model::{Labels, SeriesId, now_ms};

pub use appender::{AppendError, AppendOutcome, Appender, Skipped};
pub use block::{BlockMeta, BlockSeries};
use head::Head;
pub use head::SeriesScope;
pub use manifest::Manifest;
pub use migrate::CURRENT_LAYOUT_VERSION;
pub use querier::{HeadReader, HeadSamples, HeadStats, metric_selector};
use querier::{Lease, Readers};
pub use query_tier::QueryTier;
pub use series::SampleColumns;
pub use wal::ReplayReport;

use wal::{CHECKPOINT_RECORD_SAMPLES, Wal, WalRecord};

/// Windows a flush cuts before it checkpoints the WAL (it also does at its end).
const CUTS_PER_CHECKPOINT: usize = 24;

/// What a storage is assembled from besides its options, store and manifest.
struct Parts {
    head: Head,
    wal: Option<Wal>,
    replay: ReplayReport,
    tier: Option<QueryTier>,
}

/// Everything needed to open a storage.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Local directory: the WAL always, and the blocks when the backend is local.
    pub data_dir: PathBuf,
    pub config: StorageConfig,
    /// Blocks entirely older than this are deleted; zero keeps everything.
    pub retention: Duration,
    /// Past this many bytes of blocks the oldest are deleted; zero for no limit.
    pub retention_size: u64,
    /// How long 5 m and 1 h copies are kept; zero keeps them forever.
    pub retention_downsampled: [Duration; 2],
}

pub struct Storage {
    /// Internally locked by stripes; see [`head`].
    head: Head,
    /// Samples older than this are refused: their window is being or has been cut. Every
    /// commit holds it for reading from validation until its samples are in the head, so
    /// a cut that raises it knows, once it holds it for writing, that no write for the
    /// window is still in flight.
    min_valid_time: RwLock<i64>,
    /// The reads of the head in progress, each with the manifest it joins the head with:
    /// a cut truncates the head only once no reader needs what it drops.
    readers: std::sync::Mutex<Readers>,
    /// None on a read-only node, which takes no samples.
    wal: Option<Wal>,
    /// On a read-only node, the writers' buckets it serves; its manifest is their merge.
    tier: Option<QueryTier>,
    /// Recorded in the manifest at each publish (`global.external_labels`).
    external_labels: RwLock<crate::model::Labels>,
    manifest: RwLock<Arc<Manifest>>,
    store: Arc<dyn ObjectStore>,
    /// `store` behind the read cache of block byte ranges, for queries.
    cached_store: Arc<cache::CachingStore>,
    series_cache: moka::future::Cache<String, Arc<BlockSeries>>,
    series_stats: cache::CacheStats,
    options: StorageOptions,
    metrics: StorageMetrics,
    /// One block cut at a time.
    flush_lock: tokio::sync::Mutex<()>,
    /// One change of the manifest at a time: each reads the current one, changes it and
    /// publishes it while holding this.
    manifest_writer: tokio::sync::Mutex<()>,
    /// One compaction (or block rewrite for a deletion) at a time.
    compact_lock: tokio::sync::Mutex<()>,
    /// Woken when a cut published a block, so compaction need not wait for its timer.
    block_cut: tokio::sync::Notify,
    /// Why cutting blocks has been failing, while it is.
    cut_failure: Mutex<Option<CutFailure>>,
    replay: ReplayReport,
    exemplars: exemplars::ExemplarStore,
}

/// Block cuts failing since `since`: the head keeps the windows (and the WAL their samples)
/// and the cut is retried with backoff.
#[derive(Debug, Clone)]
pub struct CutFailure {
    pub since: std::time::SystemTime,
    pub attempts: u32,
    pub error: String,
}

/// The longest wait between retries of a failing cut.
const CUT_BACKOFF_MAX: Duration = Duration::from_secs(120);

impl Storage {
    /// Opens (or creates) the storage: loads and upgrades the manifest, replays the WAL.
    pub async fn open(
        options: StorageOptions,
        metrics: StorageMetrics,
    ) -> anyhow::Result<Arc<Storage>> {
        let store = objstore::build(&options.config, &options.data_dir)?;
        Self::open_with_store(options, store, metrics).await
    }

    pub async fn open_with_store(
        options: StorageOptions,
        store: Arc<dyn ObjectStore>,
        metrics: StorageMetrics,
    ) -> anyhow::Result<Arc<Storage>> {
        let manifest = Manifest::load(&store).await?;
        let min_valid_time = manifest.flushed_until.unwrap_or(i64::MIN);
        let wal_dir = options.data_dir.join("wal");
        let (wal, records, replay) =
            Wal::open(&wal_dir, options.config.wal.clone(), metrics.clone())?;
        let head = Head::with_chunk_window(options.config.block_duration.as_millis_i64());
        // Samples logged before their series' record (a concurrent appender's samples of a
        // series another one was creating) wait for the end of the replay.
        let mut orphans = WalRecord::default();
        for record in &records {
            let (_, lost) = head.apply(&drop_flushed(record, min_valid_time));
            orphans.samples.extend(lost.samples);
            orphans.histograms.extend(lost.histograms);
        }
        let (_, lost) = head.append(&orphans);
        if !lost.samples.is_empty() || !lost.histograms.is_empty() {
            tracing::warn!(
                samples = lost.samples.len() + lost.histograms.len(),
                "WAL samples of series with no series record were dropped"
            );
        }
        // Series whose samples were all flushed already need not stay in memory.
        head.truncate_before(min_valid_time);
        metrics
            .wal_corruptions
            .inc_by(replay.truncated.len() as u64);
        metrics.head_series.set(head.num_series() as i64);
        metrics.head_samples.set(head.num_samples() as i64);
        tracing::info!(
            segments = replay.segments,
            records = replay.records,
            series = head.num_series(),
            samples = head.num_samples(),
            blocks = manifest.blocks.len(),
            "storage opened"
        );
        let parts = Parts {
            head,
            wal: Some(wal),
            replay,
            tier: None,
        };
        Ok(Self::assemble(options, store, manifest, parts, metrics))
    }

    /// Opens a read-only node over the writers' buckets of `tier`: no WAL, an empty head,
    /// the merge of their manifests (refreshed by [`Self::spawn_background`]).
    pub async fn open_read_only(
        options: StorageOptions,
        tier: QueryTier,
        metrics: StorageMetrics,
    ) -> anyhow::Result<Arc<Storage>> {
        let manifest = tier.merged_manifest().await?;
        tracing::info!(blocks = manifest.blocks.len(), "read-only storage opened");
        let store = tier.store();
        let parts = Parts {
            head: Head::with_chunk_window(options.config.block_duration.as_millis_i64()),
            wal: None,
            replay: ReplayReport::default(),
            tier: Some(tier),
        };
        Ok(Self::assemble(options, store, manifest, parts, metrics))
    }

    fn assemble(
        options: StorageOptions,
        store: Arc<dyn ObjectStore>,
        manifest: Manifest,
        parts: Parts,
        metrics: StorageMetrics,
    ) -> Arc<Storage> {
        let Parts {
            head,
            wal,
            replay,
            tier,
        } = parts;
        let min_valid_time = manifest.flushed_until.unwrap_or(i64::MIN);
        let caches = &options.config.cache;
        let series_stats = Self::stats_of(&metrics, "series");
        let cache = moka::future::Cache::builder()
            .weigher(|_k: &String, v: &Arc<BlockSeries>| {
                v.memory_size().try_into().unwrap_or(u32::MAX)
            })
            .max_capacity(caches.series_bytes)
            .eviction_listener(series_stats.eviction_listener())
            .build();
        let cached_store = Arc::new(cache::CachingStore::new(
            store.clone(),
            caches.chunk_bytes,
            Self::stats_of(&metrics, "chunks"),
        ));
        let exemplars = exemplars::ExemplarStore::new(options.config.exemplars.max_exemplars);
        let storage = Arc::new(Storage {
            head,
            exemplars,
            min_valid_time: RwLock::new(min_valid_time),
            readers: Default::default(),
            wal,
            tier,
            external_labels: RwLock::new(manifest.external_labels.clone()),
            manifest: RwLock::new(Arc::new(manifest)),
            store,
            cached_store,
            series_cache: cache,
            series_stats,
            options,
            metrics,
            flush_lock: tokio::sync::Mutex::new(()),
            manifest_writer: tokio::sync::Mutex::new(()),
            compact_lock: tokio::sync::Mutex::new(()),
            block_cut: tokio::sync::Notify::new(),
            cut_failure: Mutex::new(None),
            replay,
        });
        storage.update_bucket_metrics(&storage.manifest());
        storage
    }

    /// The exemplars senders attached to samples (kept in memory, bounded).
    pub fn exemplars(&self) -> &exemplars::ExemplarStore {
        &self.exemplars
    }

    /// The WAL; an error on a read-only node.
    fn wal(&self) -> anyhow::Result<&Wal> {
        self.wal
            .as_ref()
            .context("this node is read-only (--storage.read-only): it takes no samples")
    }

    /// Whether this is a read-only node (`--storage.read-only`).
    pub fn is_read_only(&self) -> bool {
        self.tier.is_some()
    }

    /// Sets the external labels recorded in the manifest from the next publish on, for
    /// read-only nodes to add to this writer's series.
    pub fn set_external_labels(&self, labels: crate::model::Labels) {
        *write(&self.external_labels) = labels;
    }

    /// The object store for reading blocks in queries: byte ranges of block objects are
    /// cached (see [`cache`]).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.cached_store.clone()
    }

    /// [`Self::object_store`] with its reads counted in `fetch` (one query's).
    pub fn observed_object_store(&self, fetch: Arc<cache::FetchStats>) -> Arc<dyn ObjectStore> {
        Arc::new(self.cached_store.observed(fetch))
    }

    /// (hits, misses) of the series-file cache so far.
    pub fn series_cache_counts(&self) -> (u64, u64) {
        self.series_stats.counts()
    }

    /// Hit, miss and eviction counters for the read cache `name`.
    pub fn cache_stats(&self, name: &'static str) -> cache::CacheStats {
        Self::stats_of(&self.metrics, name)
    }

    fn stats_of(metrics: &StorageMetrics, name: &'static str) -> cache::CacheStats {
        cache::CacheStats::new(
            name,
            &metrics.cache_requests,
            &metrics.cache_evictions,
            &metrics.cache_bytes,
        )
    }

    /// The byte budgets of the read caches.
    pub fn cache_config(&self) -> &crate::config::CacheConfig {
        &self.options.config.cache
    }

    pub fn data_dir(&self) -> &Path {
        &self.options.data_dir
    }

    pub fn replay_report(&self) -> &ReplayReport {
        &self.replay
    }

    pub fn manifest(&self) -> Arc<Manifest> {
        read(&self.manifest).clone()
    }

    /// Runs `f` on the head and returns its result with the manifest, as one consistent
    /// view: every sample is either in a block of that manifest or in the head at or after
    /// `manifest.flushed_until`.
    fn snapshot<R>(&self, f: impl FnOnce(&Head, &Manifest) -> R) -> (R, Arc<Manifest>) {
        let lease = Lease::take(self);
        (f(&self.head, &lease.manifest), lease.manifest.clone())
    }

    /// Cuts every window that can no longer receive samples into a block. With `force`,
    /// also cuts the newest window (used at shutdown of benchmarks and by tests).
    /// Returns the number of blocks written.
    pub async fn flush(self: &Arc<Self>, force: bool) -> anyhow::Result<usize> {
        let _guard = self.flush_lock.lock().await;
        let mut written = 0;
        let mut flushed = None;
        while let Some((start, end)) = self.next_window(force) {
            self.cut_window(start, end).await?;
            flushed = Some(end);
            written += 1;
            // A long backfill keeps windows coming: bound the WAL meanwhile.
            if written % CUTS_PER_CHECKPOINT == 0 {
                self.checkpoint(end).await?;
                flushed = None;
            }
        }
        if let Some(end) = flushed {
            self.checkpoint(end).await?;
        }
        self.apply_retention().await?;
        Ok(written)
    }

    /// The oldest head window ready to become a block: the head reaches half a block past
    /// its end (plus the out-of-order window), as Prometheus does.
    fn next_window(&self, force: bool) -> Option<(i64, i64)> {
        let (min, max) = (self.head.min_time()?, self.head.max_time()?);
        let range = self.options.config.block_duration.as_millis_i64().max(1);
        let start = min.div_euclid(range) * range;
        let end = start + range;
        let margin = range / 2 + self.options.config.out_of_order_time_window.as_millis_i64();
        (force || max >= end + margin).then_some((start, end))
    }

    /// Cuts `[start, end)` out of the head into a block. Ingest and queries never wait on
    /// the slow parts: the window is copied one stripe at a time, encoded on a blocking
    /// thread, uploaded, published; then the head drops the window's chunks (whole chunks,
    /// as they never span two windows) behind the cut fence. The caller checkpoints the WAL.
    async fn cut_window(self: &Arc<Self>, start: i64, end: i64) -> anyhow::Result<()> {
        // Refuse new samples for the window before copying it, so none can slip in between
        // the copy and the truncation below; taking the lock for writing waits out the
        // commits already validated against the old bound.
        {
            let mut min_valid = write(&self.min_valid_time);
            *min_valid = (*min_valid).max(end);
        }
        let storage = self.clone();
        let encoded = blocking(move || {
            let data = block::BlockData::from_head(&storage.head, start, end);
            if data.is_empty() {
                return Ok(None);
            }
            data.encode(new_block_id(start)).map(Some)
        })
        .await?;
        let block = match encoded {
            Some(encoded) => {
                let meta = encoded.upload(&self.store).await?;
                self.metrics.blocks_written.inc();
                self.metrics.block_bytes_written.inc_by(meta.data_bytes);
                tracing::info!(block = %meta.id, series = meta.num_series, samples = meta.num_samples, bytes = meta.data_bytes, "block written");
                Some(meta)
            }
            None => None,
        };
        self.update_manifest(|manifest| {
            if let Some(meta) = block {
                manifest.add(meta);
            }
            manifest.flushed_until = Some(end);
            Some(())
        })
        .await?;
        self.block_cut.notify_one();

        self.readers_done_before(end).await;
        let storage = self.clone();
        blocking(move || {
            storage.head.truncate_before(end);
            storage.update_head_metrics();
            Ok(())
        })
        .await
    }

    /// Checkpoints the WAL up to `flushed_until` on the blocking pool, as Prometheus does:
    /// the closed segments are rewritten into one holding the samples at or after it and the
    /// series the head still has. Once per flush, after every window it cut: a backfill that
    /// cuts hundreds of windows rewrites the WAL once, not once per window.
    async fn checkpoint(self: &Arc<Self>, flushed_until: i64) -> anyhow::Result<()> {
        let storage = self.clone();
        blocking(move || {
            // The series the head still has; the WAL switches segments before this is read,
            // so a series created later has its record in the new segment.
            let live: std::sync::OnceLock<std::collections::HashSet<SeriesId>> =
                std::sync::OnceLock::new();
            let keep = |id: SeriesId| {
                live.get_or_init(|| {
                    storage
                        .head
                        .series_ids(SeriesScope::All)
                        .into_iter()
                        .collect()
                })
                .contains(&id)
            };
            storage
                .wal()?
                .checkpoint_closed_segments(flushed_until, &keep)
                .context("checkpointing the WAL")?;
            Ok(())
        })
        .await
    }

    /// Sets the head's series and samples gauges from the head.
    fn update_head_metrics(&self) {
        self.metrics.head_series.set(self.head.num_series() as i64);
        self.metrics
            .head_samples
            .set(self.head.num_samples() as i64);
    }

    /// Retires blocks wholly older than the retention time, then the oldest blocks while
    /// the blocks add up to more than the retention size (as Prometheus, whole blocks; the
    /// WAL and head are not counted).
    async fn apply_retention(&self) -> anyhow::Result<()> {
        let cutoff = match self.options.retention.is_zero() {
            true => i64::MIN,
            false => now_ms() - self.options.retention.as_millis() as i64,
        };
        let max_bytes = self.options.retention_size;
        let delete_after = self.delete_after();
        self.update_manifest(|manifest| {
            let mut expired = expired_blocks(&manifest.blocks, cutoff, max_bytes);
            expired.extend(
                (manifest.downsampled.iter())
                    .filter(|b| b.max_time <= self.copy_cutoff(b.resolution_ms))
                    .map(|b| b.id.clone()),
            );
            for id in &expired {
                tracing::info!(block = %id, "block past retention leaves the manifest");
            }
            let ids: Vec<&str> = expired.iter().map(String::as_str).collect();
            (!ids.is_empty() && manifest.retire(&ids, delete_after)).then_some(())
        })
        .await?;
        Ok(())
    }

    /// Downsampled copies of `resolution` ending at or before this are past retention.
    fn copy_cutoff(&self, resolution: i64) -> i64 {
        let [keep_5m, keep_1h] = self.options.retention_downsampled;
        let keep = match resolution {
            downsample::RES_5M => keep_5m,
            _ => keep_1h,
        };
        match keep.is_zero() {
            true => i64::MIN,
            false => now_ms() - keep.as_millis() as i64,
        }
    }

    /// When objects of a block retired now may be deleted.
    fn delete_after(&self) -> i64 {
        now_ms()
            + self
                .options
                .config
                .compaction
                .deletion_delay
                .as_millis_i64()
    }

    /// Changes the manifest with `change` and publishes it, unless `change` returns None.
    /// Changes are serialized, each applied to the newest manifest.
    async fn update_manifest<R>(
        &self,
        change: impl FnOnce(&mut Manifest) -> Option<R>,
    ) -> anyhow::Result<Option<R>> {
        if self.is_read_only() {
            anyhow::bail!("this node is read-only (--storage.read-only): it changes no blocks");
        }
        let _writer = self.manifest_writer.lock().await;
        let mut manifest = self.manifest().as_ref().clone();
        let Some(result) = change(&mut manifest) else {
            return Ok(None);
        };
        manifest.external_labels = read(&self.external_labels).clone();
        manifest.publish(&self.store).await?;
        self.update_bucket_metrics(&manifest);
        *write(&self.manifest) = Arc::new(manifest);
        Ok(Some(result))
    }

    fn update_bucket_metrics(&self, manifest: &Manifest) {
        let m = &self.metrics;
        m.blocks_loaded.set(manifest.blocks.len() as i64);
        for gauge in [&m.bucket_blocks, &m.bucket_objects, &m.bucket_bytes] {
            gauge.reset();
        }
        for b in manifest.all_blocks() {
            let level = b.level.to_string();
            let resolution = match b.resolution_ms {
                0 => "raw".to_string(),
                ms => crate::model::format_duration(Duration::from_millis(ms as u64)),
            };
            let labels = [resolution.as_str(), level.as_str()];
            m.bucket_blocks.with_label_values(&labels).inc();
            m.bucket_objects
                .with_label_values(&labels)
                .add(b.paths().len() as i64);
            m.bucket_bytes
                .with_label_values(&labels)
                .add(b.data_bytes as i64);
        }
    }

    /// Runs every compaction the manifest is ready for, then deletes what is due.
    /// Returns the number of blocks written.
    pub async fn compact(self: &Arc<Self>) -> anyhow::Result<usize> {
        let _compacting = self.compact_lock.lock().await;
        let ranges: Vec<i64> = match self.options.config.compaction.enabled {
            true => (self.options.config.compaction.ranges.iter())
                .map(|r| r.as_millis_i64())
                .collect(),
            false => Vec::new(),
        };
        let mut written = 0;
        while let Some(plan) = compact::plan(&self.manifest(), &ranges) {
            let started = std::time::Instant::now();
            match self.compact_once(plan).await {
                Ok(()) => {
                    written += 1;
                    self.metrics.compactions.inc();
                    let took = started.elapsed().as_secs_f64();
                    self.metrics.compaction_seconds.observe(took);
                }
                Err(e) => {
                    self.metrics.compaction_failures.inc();
                    return Err(e);
                }
            }
        }
        let downsampling = self.options.config.downsampling.clone();
        let keeps = |resolution: i64, b: &BlockMeta| b.max_time > self.copy_cutoff(resolution);
        while let Some((source, resolution)) =
            downsample::plan(&self.manifest(), &downsampling, keeps)
        {
            self.downsample_once(source, resolution).await?;
            written += 1;
        }
        self.collect_garbage().await?;
        Ok(written)
    }

    /// Makes one downsampled copy, in the same crash-safe order as a compaction.
    async fn downsample_once(&self, source: BlockMeta, resolution: i64) -> anyhow::Result<()> {
        let store = self.store.clone();
        let rt = tokio::runtime::Handle::current();
        let id = new_block_id(source.min_time);
        let from = source.clone();
        let meta =
            blocking(move || downsample::downsample(&store, &rt, &from, resolution, id)).await?;
        let new = meta.clone();
        let published = self
            .update_manifest(|manifest| {
                let live = manifest.blocks.iter().any(|b| b.id == source.id);
                live.then(|| manifest.add(new))
            })
            .await?;
        if published.is_none() {
            self.delete_objects(&meta.id).await;
            anyhow::bail!(
                "the source of {} left the manifest while downsampling",
                meta.id
            );
        }
        tracing::info!(
            block = %meta.id,
            source = %source.id,
            resolution = %crate::model::format_duration(Duration::from_millis(resolution as u64)),
            rows = meta.num_samples,
            bytes = meta.data_bytes,
            "block downsampled"
        );
        Ok(())
    }

    /// One compaction, in the order that survives a crash at any point: write the new
    /// block's objects (a crash leaves objects no manifest names, removed later by
    /// [`Self::collect_garbage`]); publish the manifest that names the new block instead of
    /// the sources (readers see the old set or the new one, each sample once either way);
    /// delete the sources only after the deletion delay, so queries planned against the
    /// old manifest still find them.
    async fn compact_once(self: &Arc<Self>, plan: compact::Plan) -> anyhow::Result<()> {
        let mut series = Vec::with_capacity(plan.sources.len());
        for source in &plan.sources {
            series.push(self.block_series(source).await?);
        }
        let store = self.store.clone();
        let rt = tokio::runtime::Handle::current();
        let id = new_block_id(plan.min_time);
        let job = plan.clone();
        let meta = blocking(move || compact::merge(&store, &rt, &job, &series, id)).await?;
        let source_ids: Vec<&str> = plan.sources.iter().map(|b| b.id.as_str()).collect();
        let delete_after = self.delete_after();
        let new = meta.clone();
        let published = self
            .update_manifest(|manifest| {
                // The sources' downsampled copies go with them; the merged block gets its own.
                let copies = manifest.copies_of(&source_ids);
                let mut retired: Vec<&str> = source_ids.clone();
                retired.extend(copies.iter().map(String::as_str));
                manifest
                    .retire(&retired, delete_after)
                    .then(|| manifest.add(new))
            })
            .await?;
        if published.is_none() {
            // A source left the manifest meanwhile (retention): this merge is stale.
            self.delete_objects(&meta.id).await;
            anyhow::bail!(
                "compaction sources changed while merging; discarded {}",
                meta.id
            );
        }
        tracing::info!(
            block = %meta.id,
            level = meta.level,
            sources = plan.sources.len(),
            series = meta.num_series,
            samples = meta.num_samples,
            bytes = meta.data_bytes,
            "blocks compacted"
        );
        Ok(())
    }

    /// Deletes the objects of retired blocks whose delay has passed, then objects under
    /// `blocks/` that no manifest entry names and that are older than the deletion delay
    /// (left by a crash between upload and publish).
    async fn collect_garbage(&self) -> anyhow::Result<()> {
        let now = now_ms();
        let due: Vec<String> = (self.manifest().deleted.iter())
            .filter(|d| d.delete_after <= now)
            .map(|d| d.id.clone())
            .collect();
        for id in &due {
            self.delete_objects(id).await;
        }
        if !due.is_empty() {
            self.update_manifest(|manifest| {
                manifest.deleted.retain(|d| !due.contains(&d.id));
                Some(())
            })
            .await?;
        }
        let delay = self.options.config.compaction.deletion_delay.0;
        let old_enough = chrono::Utc::now() - delay;
        let listed: Vec<object_store::ObjectMeta> = {
            use futures::TryStreamExt;
            self.store
                .list(Some(&object_store::path::Path::from("blocks")))
                .try_collect()
                .await
                .context("listing blocks/")?
        };
        let manifest = self.manifest();
        for object in listed {
            let known = block::block_id_of(&object.location).is_none_or(|id| manifest.knows(id));
            if !known && object.last_modified < old_enough {
                tracing::info!(path = %object.location, "deleting an object no manifest entry names");
                self.delete_object(&object.location).await;
            }
        }
        Ok(())
    }

    /// Deletes a block's objects; a failure is logged and left to a later pass.
    async fn delete_objects(&self, id: &str) {
        for path in block::block_paths(id) {
            self.delete_object(&path).await;
        }
        self.series_cache.invalidate(id).await;
    }

    async fn delete_object(&self, path: &object_store::path::Path) {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                self.metrics.objects_deleted.inc();
            }
            Err(e) => tracing::warn!(%path, error = %e, "could not delete an object; will retry"),
        }
    }

    /// Deletes the samples in `[min, max]` of every series `select` picks, from the head
    /// (then checkpoints the WAL, so the deletion survives a restart) and from the blocks
    /// (rewriting each affected block and swapping it in the manifest). Returns the number
    /// of samples deleted.
    pub async fn delete_series(
        self: &Arc<Self>,
        select: Arc<dyn Fn(&Labels) -> bool + Send + Sync>,
        min: i64,
        max: i64,
    ) -> anyhow::Result<usize> {
        let _guard = self.flush_lock.lock().await;
        let _compacting = self.compact_lock.lock().await;
        let storage = self.clone();
        let head_select = select.clone();
        let mut deleted = blocking(move || {
            // Writes wait while the head is rewritten into the WAL: one written between
            // the copy and the checkpoint would be lost with the old segments. Deletion is
            // a rare administrative act; cuts and queries do not wait for it.
            let _writes = write(&storage.min_valid_time);
            let n = storage.head.delete(&*head_select, min, max);
            if n > 0 {
                let records = storage.head.to_records(CHECKPOINT_RECORD_SAMPLES);
                storage
                    .wal()?
                    .checkpoint(&records)
                    .context("checkpointing the WAL after a deletion")?;
                storage.update_head_metrics();
            }
            Ok(n)
        })
        .await?;
        for meta in self.manifest().blocks.clone() {
            if meta.overlaps(min, max) {
                deleted += self
                    .rewrite_block_without(&meta, &*select, min, max)
                    .await?;
            }
        }
        Ok(deleted)
    }

    /// Rewrites one block without the selected samples; a no-op when it has none.
    async fn rewrite_block_without(
        &self,
        meta: &BlockMeta,
        select: &(dyn Fn(&Labels) -> bool + Send + Sync),
        min: i64,
        max: i64,
    ) -> anyhow::Result<usize> {
        let series = self.block_series(meta).await?;
        let all: Vec<(SeriesId, Arc<Labels>)> =
            series.by_metric.values().flatten().cloned().collect();
        let hit: std::collections::HashSet<SeriesId> = all
            .iter()
            .filter(|(_, l)| select(l))
            .map(|(id, _)| *id)
            .collect();
        if hit.is_empty() {
            return Ok(0);
        }
        let (samples, histograms) = block::read_samples(&self.store, meta).await?;
        let rebuilt = Head::new();
        let mut record = WalRecord {
            new_series: all
                .iter()
                .map(|(id, l)| (*id, l.as_ref().clone()))
                .collect(),
            ..WalRecord::default()
        };
        let mut deleted = 0;
        let deletes = |series: &SeriesId, ts: i64| hit.contains(series) && ts >= min && ts <= max;
        for sample in samples {
            if deletes(&sample.series, sample.timestamp_ms) {
                deleted += 1;
            } else {
                record.samples.push(sample);
            }
        }
        for h in histograms {
            if deletes(&h.series, h.timestamp_ms) {
                deleted += 1;
            } else {
                record.histograms.push(h);
            }
        }
        if deleted == 0 {
            return Ok(0);
        }
        rebuilt.apply(&record);
        rebuilt.truncate_before(i64::MIN);
        let data = block::BlockData::from_head(&rebuilt, meta.min_time, meta.max_time);
        let replacement = if data.is_empty() {
            None
        } else {
            let id = new_block_id(meta.min_time);
            let mut encoded = blocking(move || data.encode(id)).await?;
            encoded.meta.level = meta.level;
            Some(encoded.upload(&self.store).await?)
        };
        let delete_after = self.delete_after();
        self.update_manifest(|manifest| {
            let mut retired = manifest.copies_of(&[meta.id.as_str()]);
            retired.push(meta.id.clone());
            let retired: Vec<&str> = retired.iter().map(String::as_str).collect();
            manifest.retire(&retired, delete_after);
            if let Some(new_meta) = replacement {
                manifest.add(new_meta);
            }
            Some(())
        })
        .await?;
        Ok(deleted)
    }

    /// The series of one block, from the cache or the block's series file.
    pub async fn block_series(&self, meta: &BlockMeta) -> anyhow::Result<Arc<BlockSeries>> {
        if let Some(hit) = self.series_cache.get(&meta.id).await {
            self.series_stats.hit();
            return Ok(hit);
        }
        self.series_stats.miss();
        let store = self.store.clone();
        let meta_owned = meta.clone();
        let series = self
            .series_cache
            .try_get_with(meta.id.clone(), async move {
                let series = BlockSeries::load(&store, &meta_owned).await?;
                Ok::<_, anyhow::Error>(Arc::new(match &meta_owned.view {
                    Some(view) => view.apply(series),
                    None => series,
                }))
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        self.series_stats
            .set_bytes(self.series_cache.weighted_size());
        Ok(series)
    }

    /// Background work: cut blocks periodically and, under the `interval` fsync policy,
    /// sync the WAL; beside it, compact blocks. Runs until the returned handle is aborted.
    pub fn spawn_background(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let storage = self.clone();
        tokio::spawn(async move {
            match storage.tier.is_some() {
                true => storage.refresh_loop().await,
                false => {
                    tokio::join!(storage.clone().cut_loop(), storage.compaction_loop());
                }
            }
        })
    }

    /// A read-only node's background work: read the writers' manifests again every
    /// `query_tier.refresh_interval`. A failed read keeps the view it had (the writers
    /// delete replaced blocks only after their deletion delay).
    async fn refresh_loop(self: Arc<Self>) {
        let Some(tier) = &self.tier else { return };
        let every = self.options.config.query_tier.refresh_interval.0;
        loop {
            tokio::time::sleep(every).await;
            match tier.merged_manifest().await {
                Ok(manifest) if manifest != *self.manifest() => {
                    tracing::debug!(blocks = manifest.blocks.len(), "manifests refreshed");
                    self.update_bucket_metrics(&manifest);
                    *write(&self.manifest) = Arc::new(manifest);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    error = format!("{e:#}"),
                    "reading the writers' manifests failed; the previous view stays"
                ),
            }
        }
    }

    async fn cut_loop(self: Arc<Self>) {
        let fsync_every = self.options.config.wal.fsync_interval.0;
        let mut ticker = tokio::time::interval(
            fsync_every
                .max(Duration::from_millis(10))
                .min(Duration::from_secs(10)),
        );
        let mut last_flush = tokio::time::Instant::now();
        let mut retry_at = last_flush;
        let mut next_measure = last_flush + Duration::from_secs(10);
        loop {
            ticker.tick().await;
            if let Some(wal) = &self.wal
                && wal.fsync_policy() != FsyncPolicy::Never
            {
                let s = self.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || s.wal()?.sync_all()).await {
                    tracing::error!(error = %e, "WAL sync task failed");
                }
            }
            if tokio::time::Instant::now() >= next_measure {
                // A walk over every series: 50 ms at 500 000 series, so once a minute.
                next_measure = tokio::time::Instant::now() + Duration::from_secs(60);
                let s = self.clone();
                let bytes = tokio::task::spawn_blocking(move || s.head_stats().chunk_bytes);
                if let Ok(bytes) = bytes.await {
                    self.metrics.head_chunk_bytes.set(bytes as i64);
                }
            }
            if last_flush.elapsed() >= Duration::from_secs(10)
                && tokio::time::Instant::now() >= retry_at
            {
                last_flush = tokio::time::Instant::now();
                match self.flush(false).await {
                    Ok(_) => {
                        *lock(&self.cut_failure) = None;
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap_or_default();
                        self.metrics
                            .block_cut_last_success
                            .set(now.as_secs() as i64);
                    }
                    Err(e) => {
                        self.metrics.block_cut_failures.inc();
                        let mut failure = lock(&self.cut_failure);
                        let failure = failure.get_or_insert_with(|| CutFailure {
                            since: std::time::SystemTime::now(),
                            attempts: 0,
                            error: String::new(),
                        });
                        failure.attempts += 1;
                        failure.error = format!("{e:#}");
                        let wait = Duration::from_secs(10)
                            .saturating_mul(1 << failure.attempts.min(8).saturating_sub(1))
                            .min(CUT_BACKOFF_MAX);
                        retry_at = tokio::time::Instant::now() + wait;
                        tracing::error!(
                            error = failure.error,
                            attempts = failure.attempts,
                            retry_in = ?wait,
                            "cutting blocks failed; the head keeps the samples"
                        );
                    }
                }
            }
        }
    }

    /// Why cutting blocks has been failing, while it is (for `/-/ready` and the status API).
    pub fn cut_failure(&self) -> Option<CutFailure> {
        lock(&self.cut_failure).clone()
    }

    /// Compacts at start-up (finishing what a crash interrupted), after every cut, and at
    /// least every minute (or every deletion delay, when shorter) to delete what is due.
    async fn compaction_loop(self: Arc<Self>) {
        let delay = self.options.config.compaction.deletion_delay.0;
        let every = delay.clamp(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            if let Err(e) = self.compact().await {
                tracing::error!(error = format!("{e:#}"), "compaction failed; will retry");
            }
            let _ = tokio::time::timeout(every, self.block_cut.notified()).await;
        }
    }

    /// Makes the WAL durable; called on orderly shutdown.
    pub fn close(&self) -> anyhow::Result<()> {
        match &self.wal {
            Some(wal) => wal.sync_all(),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("data_dir", &self.options.data_dir)
            .finish_non_exhaustive()
    }
}

/// Blocks ending at or before `cutoff`, then the oldest of the rest while all the rest add
/// up to more than `max_bytes` (0: no limit).
fn expired_blocks(blocks: &[BlockMeta], cutoff: i64, max_bytes: u64) -> Vec<String> {
    let mut by_age: Vec<&BlockMeta> = blocks.iter().collect();
    by_age.sort_by_key(|b| (b.max_time, b.min_time));
    let mut total: u64 = blocks.iter().map(|b| b.data_bytes).sum();
    let mut out = Vec::new();
    for b in by_age {
        let too_big = max_bytes > 0 && total > max_bytes;
        if b.max_time > cutoff && !too_big {
            break;
        }
        total -= b.data_bytes;
        out.push(b.id.clone());
    }
    out
}

fn drop_flushed(record: &WalRecord, min_valid_time: i64) -> WalRecord {
    WalRecord {
        new_series: record.new_series.clone(),
        samples: record
            .samples
            .iter()
            .filter(|s| s.timestamp_ms >= min_valid_time)
            .copied()
            .collect(),
        histograms: record
            .histograms
            .iter()
            .filter(|h| h.timestamp_ms >= min_valid_time)
            .cloned()
            .collect(),
    }
}

fn new_block_id(min_time: i64) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{min_time:013}-{:08x}", nanos ^ std::process::id())
}

/// Runs CPU- or disk-bound work on tokio's blocking pool, off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("a storage task on the blocking pool failed")?
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(id: &str, min: i64, max: i64, bytes: u64) -> BlockMeta {
        BlockMeta {
            id: id.into(),
            min_time: min,
            max_time: max,
            num_series: 1,
            num_samples: 1,
            data_bytes: bytes,
            data_file_bytes: bytes,
            metrics: Default::default(),
            histogram_metrics: Default::default(),
            level: block::CUT_LEVEL,
            resolution_ms: 0,
            source: None,
            view: None,
        }
    }

    #[test]
    fn retention_by_time_and_size_takes_whole_blocks_oldest_first() {
        let blocks = [
            block("c", 20, 30, 100),
            block("a", 0, 10, 100),
            block("b", 10, 20, 300),
        ];
        assert!(expired_blocks(&blocks, i64::MIN, 0).is_empty());
        assert_eq!(expired_blocks(&blocks, 10, 0), ["a"]);
        assert_eq!(expired_blocks(&blocks, 9, 0), Vec::<String>::new());
        // 500 bytes in all: under 500 keeps everything, 499 drops the oldest, 399 two.
        assert!(expired_blocks(&blocks, i64::MIN, 500).is_empty());
        assert_eq!(expired_blocks(&blocks, i64::MIN, 499), ["a"]);
        assert_eq!(expired_blocks(&blocks, i64::MIN, 399), ["a", "b"]);
        assert_eq!(expired_blocks(&blocks, 20, 1000), ["a", "b"]);
    }
}
