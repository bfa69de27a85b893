//! Reading storage, as Prometheus's `storage.Querier`: series by matchers, label names and
//! values, and the head's samples as columns. PromQL, the SQL tables, the metadata API and
//! federation read through these; the head's types stay private to storage.
//!
//! Every read that joins head and blocks takes the head and the manifest as one consistent
//! view: a sample is either in a block of that manifest or in the head at or after the
//! manifest's `flushed_until`, never both or neither.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use crate::model::{Labels, METRIC_NAME_LABEL, Selector, SeriesId};

use super::head::SeriesScope;
use super::series::SampleColumns;
use super::{BlockMeta, Manifest, Storage};

/// Samples read from the head: `series[i]` is the series of row `i` of `columns`.
#[derive(Debug, Default)]
pub struct HeadSamples {
    pub series: Vec<SeriesId>,
    pub columns: SampleColumns,
}

impl HeadSamples {
    /// Room for `rows` more float samples.
    pub fn reserve(&mut self, rows: usize) {
        self.series.reserve(rows);
        self.columns.timestamps.reserve(rows);
        self.columns.values.reserve(rows);
    }
}

/// The reads of the head in progress: each reader's id and the `flushed_until` of the
/// manifest it joins the head with.
#[derive(Debug, Default)]
pub(super) struct Readers {
    next_id: u64,
    open: BTreeMap<u64, i64>,
}

fn readers(storage: &Storage) -> MutexGuard<'_, Readers> {
    storage.readers.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registration of one read with the manifest it uses, removed on drop. The manifest is
/// read under the registry's lock, and a cut checks the registry after publishing its
/// manifest: either the reader has the new manifest, or the cut sees it and waits.
pub(super) struct Lease<'s> {
    storage: &'s Storage,
    id: u64,
    pub(super) manifest: Arc<Manifest>,
}

impl<'s> Lease<'s> {
    pub(super) fn take(storage: &'s Storage) -> Lease<'s> {
        let (id, manifest) = register(storage);
        Lease {
            storage,
            id,
            manifest,
        }
    }
}

/// Registers a reader of the current manifest; returns its id and the manifest.
fn register(storage: &Storage) -> (u64, Arc<Manifest>) {
    let mut registry = readers(storage);
    let manifest = storage.manifest();
    let id = registry.next_id;
    registry.next_id += 1;
    registry
        .open
        .insert(id, manifest.flushed_until.unwrap_or(i64::MIN));
    (id, manifest)
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        readers(self.storage).open.remove(&self.id);
    }
}

/// A read of the head that happens after it is planned, as a query plan reads in
/// `execute()`: while it lives, the head keeps every sample its manifest leaves to the
/// head (a cut that publishes a newer manifest waits for it before truncating), so head
/// and manifest stay one consistent view however late the read comes.
pub struct HeadReader {
    storage: Arc<Storage>,
    id: u64,
    manifest: Arc<Manifest>,
}

impl std::fmt::Debug for HeadReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadReader")
            .field("flushed_until", &self.manifest.flushed_until)
            .finish_non_exhaustive()
    }
}

impl HeadReader {
    /// The manifest whose blocks complete this reader's head.
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    /// The ids of the head's series in `scope`.
    pub fn series_ids(&self, scope: SeriesScope<'_>) -> Vec<SeriesId> {
        self.storage.head.series_ids(scope)
    }

    /// The samples with `min <= ts <= max` of `ids`, decoded from the chunks that overlap
    /// the range; rows older than the manifest's `flushed_until` are left to its blocks.
    pub fn read(&self, ids: &[SeriesId], min: i64, max: i64) -> HeadSamples {
        let mut out = HeadSamples::default();
        self.read_into(ids, min, max, &mut out);
        out
    }

    /// [`Self::read`] onto the end of `out`, so a scan fills one batch's columns without
    /// copying them from part to part.
    pub fn read_into(&self, ids: &[SeriesId], min: i64, max: i64, out: &mut HeadSamples) {
        let min = min.max(self.manifest.flushed_until.unwrap_or(i64::MIN));
        let max = max.saturating_add(1);
        for &id in ids {
            let n = self
                .storage
                .head
                .with_series(id, |s| s.read_into(min, max, &mut out.columns));
            if let Some(n) = n {
                out.series.extend(std::iter::repeat_n(id, n));
            }
        }
    }
}

impl Drop for HeadReader {
    fn drop(&mut self) {
        readers(&self.storage).open.remove(&self.id);
    }
}

/// The head's size, for `/api/v1/status/tsdb`.
#[derive(Debug, Clone, Default)]
pub struct HeadStats {
    pub num_series: usize,
    pub num_samples: usize,
    pub num_chunks: usize,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    /// Heap bytes of the compressed samples.
    pub chunk_bytes: usize,
}

impl Storage {
    /// A reader of the head and the blocks of the current manifest, for a read planned now
    /// and done later.
    pub fn head_reader(self: &Arc<Self>) -> HeadReader {
        let (id, manifest) = register(self);
        HeadReader {
            storage: self.clone(),
            id,
            manifest,
        }
    }

    /// Waits until no reader joins the head with a manifest older than `end` (the end of a
    /// window just published as a block), so the window can leave the head. Readers live
    /// as long as a query, bounded by the query timeout; a long wait is logged.
    pub(super) async fn readers_done_before(&self, end: i64) {
        let started = Instant::now();
        let mut warned = started;
        loop {
            let waiting = readers(self).open.values().filter(|f| **f < end).count();
            if waiting == 0 {
                return;
            }
            if warned.elapsed() >= Duration::from_secs(30) {
                warned = Instant::now();
                tracing::warn!(
                    readers = waiting,
                    waited_s = started.elapsed().as_secs(),
                    "block cut waits for head readers to finish before truncating the head"
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Series the selector picks with a sample in `[min, max]` (ms), from the head (through
    /// its postings) and from the blocks overlapping the range (through their series files,
    /// only those holding the selector's metric when it names one).
    pub async fn select_series(
        &self,
        selector: &Selector,
        min: i64,
        max: i64,
    ) -> anyhow::Result<BTreeMap<SeriesId, Arc<Labels>>> {
        let (head, manifest) =
            self.snapshot(|head, _| head.select(selector, min, max.saturating_add(1)));
        let mut found: BTreeMap<SeriesId, Arc<Labels>> = head.into_iter().collect();
        self.select_in_blocks(manifest.blocks.iter(), selector, (min, max), &mut found)
            .await?;
        Ok(found)
    }

    /// Series the selector picks in the downsampled blocks of one resolution that overlap
    /// `[min, max]`.
    pub async fn select_downsampled_series(
        &self,
        selector: &Selector,
        (min, max): (i64, i64),
        resolution_ms: i64,
    ) -> anyhow::Result<BTreeMap<SeriesId, Arc<Labels>>> {
        let manifest = self.manifest();
        let mut found = BTreeMap::new();
        let blocks = manifest.at_resolution(resolution_ms);
        self.select_in_blocks(blocks, selector, (min, max), &mut found)
            .await?;
        Ok(found)
    }

    /// Series the selector picks in those of `blocks` (downsampled ones, chosen by the
    /// caller) that overlap `[min, max]`.
    pub async fn select_series_in(
        &self,
        selector: &Selector,
        range: (i64, i64),
        blocks: &[BlockMeta],
    ) -> anyhow::Result<BTreeMap<SeriesId, Arc<Labels>>> {
        let mut found = BTreeMap::new();
        self.select_in_blocks(blocks.iter(), selector, range, &mut found)
            .await?;
        Ok(found)
    }

    /// Adds the series the selector picks in those of `blocks` overlapping `[min, max]`
    /// (through their series files; only blocks holding the selector's metric when it
    /// names one) to `found`, the first label set of an id winning.
    async fn select_in_blocks<'a>(
        &self,
        blocks: impl Iterator<Item = &'a BlockMeta>,
        selector: &Selector,
        (min, max): (i64, i64),
        found: &mut BTreeMap<SeriesId, Arc<Labels>>,
    ) -> anyhow::Result<()> {
        let metric = selector.metric_name();
        let wanted = blocks
            .filter(|b| b.overlaps(min, max) && metric.is_none_or(|m| b.metrics.contains_key(m)));
        // The series files load concurrently (a cold query on S3 waits on each), then are
        // read in block order, so the first label set of an id still wins.
        let loaded = futures::future::try_join_all(wanted.map(|b| self.block_series(b))).await?;
        for block_series in loaded {
            let lists: Vec<&Vec<(SeriesId, Arc<Labels>)>> = match metric {
                Some(m) => block_series.by_metric.get(m).into_iter().collect(),
                None => block_series.by_metric.values().collect(),
            };
            for (id, labels) in lists.into_iter().flatten() {
                if !found.contains_key(id) && selector.matches(labels) {
                    found.insert(*id, labels.clone());
                }
            }
        }
        Ok(())
    }

    /// Metric names in the downsampled blocks of one resolution.
    pub fn downsampled_metric_names(&self, resolution_ms: i64) -> BTreeSet<String> {
        let manifest = self.manifest();
        manifest
            .at_resolution(resolution_ms)
            .flat_map(|b| b.metrics.keys().cloned())
            .collect()
    }

    /// Label names of the series with samples in `[min, max]` that any selector picks (of
    /// every series when `selectors` is empty), sorted.
    pub async fn label_names(
        &self,
        selectors: &[Selector],
        min: i64,
        max: i64,
    ) -> anyhow::Result<BTreeSet<String>> {
        if selectors.is_empty() {
            return self.label_index(None, min, max).await;
        }
        let mut out = BTreeSet::new();
        for selector in selectors {
            for labels in self.select_series(selector, min, max).await?.values() {
                out.extend(labels.iter().map(|(n, _)| n.to_string()));
            }
        }
        Ok(out)
    }

    /// Values of label `name` among the series with samples in `[min, max]` that any
    /// selector picks (among every series when `selectors` is empty), sorted.
    pub async fn label_values(
        &self,
        name: &str,
        selectors: &[Selector],
        min: i64,
        max: i64,
    ) -> anyhow::Result<BTreeSet<String>> {
        if selectors.is_empty() {
            return self.label_index(Some(name), min, max).await;
        }
        let mut out = BTreeSet::new();
        for selector in selectors {
            for labels in self.select_series(selector, min, max).await?.values() {
                out.extend(labels.get(name).map(str::to_string));
            }
        }
        Ok(out)
    }

    /// Label names (or one label's values) of every series, from the head's postings and
    /// the overlapping blocks' series files, without testing each head series.
    async fn label_index(
        &self,
        label: Option<&str>,
        min: i64,
        max: i64,
    ) -> anyhow::Result<BTreeSet<String>> {
        let (mut out, manifest) = self.snapshot(|head, _| {
            let mut out = BTreeSet::new();
            if head.overlaps(min, max) {
                match label {
                    None => out.extend(head.label_names()),
                    Some(name) => out.extend(head.label_values(name)),
                }
            }
            out
        });
        for block in manifest.blocks.iter().filter(|b| b.overlaps(min, max)) {
            let series = self.block_series(block).await?;
            for labels in series.by_metric.values().flatten().map(|(_, l)| l) {
                match label {
                    None => out.extend(labels.iter().map(|(n, _)| n.to_string())),
                    Some(name) => out.extend(labels.get(name).map(str::to_string)),
                }
            }
        }
        Ok(out)
    }

    /// Metric names across head and blocks.
    pub fn metric_names(&self) -> BTreeSet<String> {
        let (names, manifest) = self.snapshot(|head, _| head.metric_names());
        let mut names: BTreeSet<String> = names.into_iter().collect();
        for block in &manifest.blocks {
            names.extend(block.metrics.keys().cloned());
        }
        names
    }

    /// Label names (without `__name__`) per metric across head and blocks: a metric
    /// table's columns, known without reading any series file.
    pub fn metric_label_names(&self) -> HashMap<String, BTreeSet<String>> {
        let (mut out, manifest) = self.snapshot(|head, _| head.metric_label_names());
        for block in &manifest.blocks {
            for (m, names) in &block.metrics {
                out.entry(m.clone())
                    .or_default()
                    .extend(names.iter().cloned());
            }
        }
        out
    }

    /// Whether series of `metric` (of any metric, for None) may have native histogram
    /// samples, in the head or in a block: a query of a metric without any plans for floats
    /// only.
    pub fn may_have_histograms(&self, metric: Option<&str>) -> bool {
        if self.head.has_histograms(metric) {
            return true;
        }
        let manifest = self.manifest();
        manifest.blocks.iter().any(|b| match metric {
            Some(m) => b.histogram_metrics.contains(m),
            None => !b.histogram_metrics.is_empty(),
        })
    }

    /// The label sets of every head series (for cardinality statistics).
    pub fn head_labels(&self) -> Vec<Arc<Labels>> {
        self.head.all_labels()
    }

    pub fn head_stats(&self) -> HeadStats {
        let (mut num_chunks, mut chunk_bytes) = (0, 0);
        self.head.for_each_series(|_, s| {
            num_chunks += s.num_chunks();
            chunk_bytes += s.chunk_bytes();
        });
        HeadStats {
            num_series: self.head.num_series(),
            num_samples: self.head.num_samples(),
            num_chunks,
            min_time: self.head.min_time(),
            max_time: self.head.max_time(),
            chunk_bytes,
        }
    }
}

/// The selector that picks every series of `metric` (or every series).
pub fn metric_selector(metric: Option<&str>) -> Selector {
    match metric {
        Some(m) => Selector::new(vec![crate::model::Matcher::equal(METRIC_NAME_LABEL, m)]),
        None => Selector::all(),
    }
}
