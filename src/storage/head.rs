//! The head: recent samples in memory, per series as compressed chunks (see
//! [`super::series`]), with a label index for finding series by metric name and label.
//!
//! Locks, as Prometheus's `stripeSeries`: the series are spread by id over [`STRIPES`]
//! stripes, each behind its own lock, so appends to different series proceed in parallel
//! and a reader holds one stripe at a time. The index (labels, metrics, postings) has a lock
//! of its own, taken for writing only when series are created or removed. The order is
//! index before stripe: nothing holding a stripe lock takes the index lock.
//!
//! The head does no I/O. [`super::Storage`] validates a write against it, logs it to the WAL,
//! then applies it here, and cuts old time windows out of it into blocks.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::model::{Labels, Matcher, Selector, SeriesId};

use super::postings::Postings;
use super::series::MemSeries;
#[cfg(test)]
use super::series::SampleColumns;
use super::wal::{WalHistogram, WalRecord, WalSample};

/// Stripes of the series map: enough that concurrent appenders rarely meet on one. At most
/// 256, so a stripe number fits a byte (see [`stripe_order`]).
const STRIPES: usize = 128;
const _: () = assert!(STRIPES <= 256);

/// Series ids are hashes already: the maps keyed by them hash with a multiply (FxHash),
/// not SipHash, on every append.
type IdMap<V> = rustc_hash::FxHashMap<SeriesId, V>;

type Stripe = IdMap<MemSeries>;

/// Series of one metric and the label names they use (the metric table's columns).
#[derive(Debug, Default, Clone)]
struct MetricIndex {
    series: Postings,
    label_names: BTreeSet<String>,
}

/// A series' label set as the index keeps it: with its key ([`crate::model::write_label_key`]),
/// so a writer holding a request's bytes compares one slice rather than each name and value.
#[derive(Debug)]
struct Indexed {
    labels: Arc<Labels>,
    key: Box<[u8]>,
}

/// What finds series: their label sets, by metric, and by label pair.
#[derive(Debug, Default)]
struct Index {
    labels: IdMap<Indexed>,
    by_metric: BTreeMap<String, MetricIndex>,
    /// label name -> label value -> series; for matcher lookups.
    postings: HashMap<Arc<str>, HashMap<Arc<str>, Postings>>,
    /// Every label name and value in use, once: label sets and postings share these.
    symbols: HashSet<Arc<str>>,
}

impl Index {
    /// The id `labels` has here, or the free id it would get: its stable hash, probed
    /// forward past collisions with other label sets.
    fn resolve(&self, labels: &Labels) -> (SeriesId, bool) {
        self.probe(labels.stable_hash(), |e| *e.labels == *labels)
    }

    /// The id of the label set whose hash is `hash` and that `same` accepts, or the free id
    /// it would get: `hash`, probed forward past collisions with other label sets.
    fn probe(&self, hash: u64, same: impl Fn(&Indexed) -> bool) -> (SeriesId, bool) {
        let mut id = hash;
        loop {
            match self.labels.get(&id) {
                None => return (id, false),
                Some(l) if same(l) => return (id, true),
                Some(_) => id = id.wrapping_add(1),
            }
        }
    }

    /// The shared copy of `s`.
    fn intern(&mut self, s: &Arc<str>) -> Arc<str> {
        match self.symbols.get(s.as_ref()) {
            Some(shared) => shared.clone(),
            None => {
                self.symbols.insert(s.clone());
                s.clone()
            }
        }
    }

    /// Indexes a new series under `id`; returns its label set, with interned strings.
    fn insert(&mut self, id: SeriesId, labels: &Labels) -> Arc<Labels> {
        let labels = Arc::new(labels.interned(|s| self.intern(s)));
        let metric = labels.metric_name().unwrap_or_default().to_string();
        let index = self.by_metric.entry(metric).or_default();
        index.series.insert(id);
        for (name, value) in labels.shared_pairs() {
            if name.as_ref() != crate::model::METRIC_NAME_LABEL
                && !index.label_names.contains(name.as_ref())
            {
                index.label_names.insert(name.to_string());
            }
            self.postings
                .entry(name.clone())
                .or_default()
                .entry(value.clone())
                .or_default()
                .insert(id);
        }
        let key = labels.key().into_boxed_slice();
        self.labels.insert(
            id,
            Indexed {
                labels: labels.clone(),
                key,
            },
        );
        labels
    }

    /// Forgets the strings no label set uses any more (only this table holds them).
    fn drop_unused_symbols(&mut self) {
        self.symbols.retain(|s| Arc::strong_count(s) > 1);
    }

    fn remove(&mut self, id: SeriesId) {
        let Some(Indexed { labels, .. }) = self.labels.remove(&id) else {
            return;
        };
        let metric = labels.metric_name().unwrap_or_default();
        if let Some(index) = self.by_metric.get_mut(metric) {
            index.series.remove(id);
            if index.series.is_empty() {
                self.by_metric.remove(metric);
            }
        }
        for (name, value) in labels.iter() {
            if let Some(values) = self.postings.get_mut(name) {
                if let Some(ids) = values.get_mut(value) {
                    ids.remove(id);
                    if ids.is_empty() {
                        values.remove(value);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(name);
                }
            }
        }
        // The metric's label names may now be unused: an extra all-null column is harmless,
        // and the set is rebuilt at the next restart.
    }

    /// Series that satisfy every equality matcher of `matchers` (all series when there is
    /// none): the intersection of their postings, the shortest list walked.
    fn candidates(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        let mut lists: Vec<&Postings> = Vec::new();
        for m in matchers.iter().filter(|m| m.is_postings_lookup()) {
            match self
                .postings
                .get(m.name.as_str())
                .and_then(|v| v.get(m.value.as_str()))
            {
                Some(list) => lists.push(list),
                None => return Vec::new(),
            }
        }
        if lists.is_empty() {
            return self.labels.keys().copied().collect();
        }
        lists.sort_by_key(|l| l.len());
        lists[0]
            .iter()
            .filter(|id| lists[1..].iter().all(|l| l.contains(*id)))
            .collect()
    }
}

/// Which head series a read covers.
#[derive(Debug, Clone, Copy)]
pub enum SeriesScope<'a> {
    /// Exactly these (a query that selected its series already).
    Ids(&'a [SeriesId]),
    /// Every series of one metric.
    Metric(&'a str),
    All,
}

#[derive(Debug)]
pub struct Head {
    stripes: Box<[RwLock<Stripe>]>,
    index: RwLock<Index>,
    /// The metrics that have had native histogram samples (never shrinks until restart):
    /// queries of the others plan for floats only. A leaf lock, taken under a stripe's.
    histogram_metrics: RwLock<HashSet<String>>,
    num_samples: AtomicUsize,
    /// `i64::MAX` / `i64::MIN` while the head is empty.
    min_time: AtomicI64,
    max_time: AtomicI64,
    /// Chunks do not span two windows of this length (ms; 0: no limit).
    chunk_window: i64,
}

impl Default for Head {
    fn default() -> Self {
        Head::with_chunk_window(0)
    }
}

impl Head {
    pub fn new() -> Head {
        Head::default()
    }

    /// A head whose chunks each stay inside one block window of `window` ms.
    pub fn with_chunk_window(window: i64) -> Head {
        Head {
            stripes: (0..STRIPES).map(|_| RwLock::default()).collect(),
            index: RwLock::default(),
            histogram_metrics: RwLock::default(),
            num_samples: AtomicUsize::new(0),
            min_time: AtomicI64::new(i64::MAX),
            max_time: AtomicI64::new(i64::MIN),
            chunk_window: window,
        }
    }

    fn stripe_of(id: SeriesId) -> usize {
        // Ids are hashes already; their low bits spread evenly.
        (id as usize) % STRIPES
    }

    fn stripe(&self, id: SeriesId) -> RwLockReadGuard<'_, Stripe> {
        read(&self.stripes[Self::stripe_of(id)])
    }

    fn stripe_mut(&self, id: SeriesId) -> RwLockWriteGuard<'_, Stripe> {
        write(&self.stripes[Self::stripe_of(id)])
    }

    pub fn num_series(&self) -> usize {
        read(&self.index).labels.len()
    }

    pub fn num_samples(&self) -> usize {
        self.num_samples.load(Ordering::Relaxed)
    }

    pub fn min_time(&self) -> Option<i64> {
        Some(self.min_time.load(Ordering::Acquire)).filter(|t| *t != i64::MAX)
    }

    pub fn max_time(&self) -> Option<i64> {
        Some(self.max_time.load(Ordering::Acquire)).filter(|t| *t != i64::MIN)
    }

    /// True when the head holds samples that may fall in `[min, max]`.
    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        self.min_time()
            .zip(self.max_time())
            .is_some_and(|(lo, hi)| lo <= max && min <= hi)
    }

    /// Runs `f` on every series, one stripe (read-locked) at a time.
    pub fn for_each_series(&self, mut f: impl FnMut(SeriesId, &MemSeries)) {
        for stripe in self.stripes.iter() {
            for (id, series) in read(stripe).iter() {
                f(*id, series);
            }
        }
    }

    /// Runs `f` on one series, if the head has it.
    pub fn with_series<R>(&self, id: SeriesId, f: impl FnOnce(&MemSeries) -> R) -> Option<R> {
        self.stripe(id).get(&id).map(f)
    }

    /// The newest sample time of each series (None where the head lacks it or it has no
    /// sample), one stripe lock for all the series of a stripe.
    pub fn newest_of(&self, ids: &[Option<SeriesId>]) -> Vec<Option<i64>> {
        let mut newest = vec![None; ids.len()];
        let known: Vec<(usize, SeriesId)> = ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| Some((i, (*id)?)))
            .collect();
        let order = stripe_order(known.len(), |k| known[k].1);
        for group in
            order.chunk_by(|&a, &b| Self::stripe_of(known[a].1) == Self::stripe_of(known[b].1))
        {
            let stripe = self.stripe(known[group[0]].1);
            for &(i, id) in group.iter().map(|&k| &known[k]) {
                newest[i] = stripe.get(&id).and_then(MemSeries::max_time);
            }
        }
        newest
    }

    /// The ids of the series with these label sets, where the head has them.
    pub fn lookup(&self, label_sets: &[&Labels]) -> Vec<Option<SeriesId>> {
        let index = read(&self.index);
        label_sets
            .iter()
            .map(|l| match index.resolve(l) {
                (id, true) => Some(id),
                _ => None,
            })
            .collect()
    }

    /// The head's own copies of the label sets made of these pairs (names and values as
    /// bytes, each set sorted by name, no empty values), where it has them: a writer that
    /// finds its series here needs to build no label set of its own.
    pub fn find_label_sets(&self, pair_sets: &[&[(&[u8], &[u8])]]) -> Vec<Option<Arc<Labels>>> {
        let index = read(&self.index);
        let mut key = Vec::new();
        pair_sets
            .iter()
            .map(|pairs| {
                key.clear();
                crate::model::write_label_key(pairs.iter().copied(), &mut key);
                let hash = crate::model::stable_hash_of_key(&key);
                match index.probe(hash, |e| *e.key == *key) {
                    (id, true) => index.labels.get(&id).map(|e| e.labels.clone()),
                    _ => None,
                }
            })
            .collect()
    }

    /// The head's own copies of these label sets, where it has them.
    pub fn stored_label_sets(&self, sets: &[Arc<Labels>]) -> Vec<Option<Arc<Labels>>> {
        let index = read(&self.index);
        sets.iter()
            .map(|labels| match index.resolve(labels) {
                (id, true) => index.labels.get(&id).map(|e| e.labels.clone()),
                _ => None,
            })
            .collect()
    }

    /// The ids of these label sets, creating the series the head lacks (empty, and marked
    /// pending until [`Head::append`] gives them samples). `true` marks a series this call
    /// created: the caller logs its labels.
    pub fn get_or_create(&self, label_sets: &[&Arc<Labels>]) -> Vec<(SeriesId, bool)> {
        let mut index = write(&self.index);
        label_sets
            .iter()
            .map(|l| {
                let (id, exists) = index.resolve(l);
                if !exists {
                    let labels = index.insert(id, l);
                    self.stripe_mut(id).insert(id, MemSeries::new(labels));
                }
                (id, !exists)
            })
            .collect()
    }

    /// Adds series under the ids a log gave them (replay); existing ids are left alone.
    fn add_series(&self, series: &[(SeriesId, Labels)]) {
        if series.is_empty() {
            return;
        }
        let mut index = write(&self.index);
        for (id, labels) in series {
            if index.labels.contains_key(id) {
                continue;
            }
            let labels = index.insert(*id, labels);
            let mut series = MemSeries::new(labels);
            series.pending = false;
            self.stripe_mut(*id).insert(*id, series);
        }
    }

    /// Inserts validated samples, one stripe lock at a time; a series that received any
    /// is no longer pending. Samples of series the head lacks are pushed onto `orphans`.
    /// Returns how many samples were added (not replacing one at the same time).
    fn insert_samples(&self, samples: &[WalSample], orphans: &mut Vec<WalSample>) -> usize {
        self.insert_each(
            samples,
            |s| (s.series, s.timestamp_ms),
            |series, s| {
                series.insert(
                    s.timestamp_ms,
                    s.value,
                    s.start_timestamp_ms,
                    self.chunk_window,
                )
            },
            |s| orphans.push(*s),
        )
    }

    /// [`Head::insert_samples`] for native histogram samples.
    fn insert_histograms(
        &self,
        histograms: &[WalHistogram],
        orphans: &mut Vec<WalHistogram>,
    ) -> usize {
        self.insert_each(
            histograms,
            |h| (h.series, h.timestamp_ms),
            |series, h| {
                if !series.has_histograms() {
                    self.note_histogram_metric(series.labels());
                }
                series.insert_histogram(h.timestamp_ms, &h.histogram, h.start_timestamp_ms)
            },
            |h| orphans.push(h.clone()),
        )
    }

    fn note_histogram_metric(&self, labels: &Labels) {
        let metric = labels.metric_name().unwrap_or_default();
        if !read(&self.histogram_metrics).contains(metric) {
            write(&self.histogram_metrics).insert(metric.to_string());
        }
    }

    /// Whether series of `metric` (any metric, for None) have had native histograms.
    pub fn has_histograms(&self, metric: Option<&str>) -> bool {
        let metrics = read(&self.histogram_metrics);
        match metric {
            Some(m) => metrics.contains(m),
            None => !metrics.is_empty(),
        }
    }

    /// Inserts `items` (each of a series at a time) grouped by stripe, one write lock per
    /// stripe, keeping the head's time range and sample count.
    fn insert_each<T>(
        &self,
        items: &[T],
        key: impl Fn(&T) -> (SeriesId, i64),
        mut insert: impl FnMut(&mut MemSeries, &T) -> bool,
        mut orphan: impl FnMut(&T),
    ) -> usize {
        // Stable: a series' samples keep their order, so a later write of a time wins.
        let order = stripe_order(items.len(), |i| key(&items[i]).0);
        let mut added = 0;
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for group in order.chunk_by(|a, b| {
            Self::stripe_of(key(&items[*a]).0) == Self::stripe_of(key(&items[*b]).0)
        }) {
            let mut stripe = self.stripe_mut(key(&items[group[0]]).0);
            for &i in group {
                let item = &items[i];
                let (id, ts) = key(item);
                let Some(series) = stripe.get_mut(&id) else {
                    orphan(item);
                    continue;
                };
                series.pending = false;
                if insert(series, item) {
                    added += 1;
                }
                lo = lo.min(ts);
                hi = hi.max(ts);
            }
            // Under the stripe lock, so truncation's recomputation of the minimum, which
            // visits this stripe after resetting it, cannot miss these samples.
            self.min_time.fetch_min(lo, Ordering::AcqRel);
            self.max_time.fetch_max(hi, Ordering::AcqRel);
        }
        self.num_samples.fetch_add(added, Ordering::Relaxed);
        added
    }

    /// Applies validated samples (the record's series are not read). Returns the samples
    /// added and those whose series the head no longer has (truncation removed it after
    /// the writer looked it up), as a record without series.
    pub fn append(&self, record: &WalRecord) -> (usize, WalRecord) {
        let mut orphans = WalRecord::default();
        let added = self.insert_samples(&record.samples, &mut orphans.samples)
            + self.insert_histograms(&record.histograms, &mut orphans.histograms);
        (added, orphans)
    }

    /// Undoes the creation of series an appender made but could not log (its WAL write
    /// failed, say on a full disk): those still empty are removed, so the next write of the
    /// same labels creates them again and logs their labels. Left in place, later samples
    /// would be logged for a series the WAL never names, and lost at replay.
    pub fn forget(&self, ids: &[SeriesId]) {
        if ids.is_empty() {
            return;
        }
        let mut index = write(&self.index);
        for id in ids {
            let mut stripe = self.stripe_mut(*id);
            if let Some(series) = stripe.get_mut(id) {
                series.pending = false;
                if series.is_empty() {
                    stripe.remove(id);
                    index.remove(*id);
                }
            }
        }
        index.drop_unused_symbols();
    }

    /// Applies a logged record, as replay does. Returns the samples added, and the samples
    /// whose series the head does not know (yet: a concurrent appender may have logged its
    /// samples of a new series before the creator logged the series).
    pub fn apply(&self, record: &WalRecord) -> (usize, WalRecord) {
        self.add_series(&record.new_series);
        self.append(record)
    }

    /// The series `selector` picks that have a sample with `min <= ts < max`. Candidates
    /// come from the postings of each alternative's equality matchers; only they are tested
    /// against every matcher.
    pub fn select(&self, selector: &Selector, min: i64, max: i64) -> Vec<(SeriesId, Arc<Labels>)> {
        let picked: Vec<(SeriesId, Arc<Labels>)> = {
            let index = read(&self.index);
            let mut ids: BTreeSet<SeriesId> = BTreeSet::new();
            if selector.alternatives.is_empty() {
                ids.extend(index.labels.keys());
            }
            for alternative in &selector.alternatives {
                ids.extend(index.candidates(alternative));
            }
            ids.into_iter()
                .filter_map(|id| {
                    let labels = &index.labels.get(&id)?.labels;
                    selector.matches(labels).then(|| (id, labels.clone()))
                })
                .collect()
        };
        picked
            .into_iter()
            .filter(|(id, _)| {
                self.with_series(*id, |s| s.has_samples_in(min, max))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// The ids of the series in `scope`.
    pub fn series_ids(&self, scope: SeriesScope<'_>) -> Vec<SeriesId> {
        let index = read(&self.index);
        match scope {
            SeriesScope::Ids(ids) => ids.to_vec(),
            SeriesScope::Metric(m) => index
                .by_metric
                .get(m)
                .map(|idx| idx.series.iter().collect())
                .unwrap_or_default(),
            SeriesScope::All => index.labels.keys().copied().collect(),
        }
    }

    /// Label names in use, from the postings index.
    pub fn label_names(&self) -> Vec<String> {
        read(&self.index)
            .postings
            .keys()
            .map(|k| k.to_string())
            .collect()
    }

    pub fn label_values(&self, name: &str) -> Vec<String> {
        read(&self.index)
            .postings
            .get(name)
            .map(|v| v.keys().map(|k| k.to_string()).collect())
            .unwrap_or_default()
    }

    pub fn metric_names(&self) -> Vec<String> {
        read(&self.index).by_metric.keys().cloned().collect()
    }

    /// Label names (without `__name__`) per metric.
    pub fn metric_label_names(&self) -> HashMap<String, BTreeSet<String>> {
        read(&self.index)
            .by_metric
            .iter()
            .map(|(m, idx)| (m.clone(), idx.label_names.clone()))
            .collect()
    }

    /// Every series' label set.
    pub fn all_labels(&self) -> Vec<Arc<Labels>> {
        read(&self.index)
            .labels
            .values()
            .map(|e| e.labels.clone())
            .collect()
    }

    /// Deletes the samples in `[min, max]` of the series `select` picks, then the series
    /// left empty. Returns how many samples went.
    pub fn delete(&self, select: &dyn Fn(&Labels) -> bool, min: i64, max: i64) -> usize {
        let mut deleted = 0;
        for stripe in self.stripes.iter() {
            for series in write(stripe).values_mut() {
                if select(series.labels()) {
                    deleted += series.remove_range(min, max.saturating_add(1));
                }
            }
        }
        self.num_samples.fetch_sub(deleted, Ordering::Relaxed);
        self.remove_empty_series();
        deleted
    }

    /// Drops every sample older than `before`, then every series left with no samples.
    pub fn truncate_before(&self, before: i64) {
        // Reset first: an append that lands in a stripe already visited lowers it itself.
        self.min_time.store(i64::MAX, Ordering::Release);
        for stripe in self.stripes.iter() {
            let mut stripe = write(stripe);
            let mut removed = 0;
            let mut lowest = i64::MAX;
            for series in stripe.values_mut() {
                if series.min_time().is_some_and(|t| t < before) {
                    removed += series.remove_range(i64::MIN, before);
                }
                if let Some(t) = series.min_time() {
                    lowest = lowest.min(t);
                }
            }
            self.num_samples.fetch_sub(removed, Ordering::Relaxed);
            self.min_time.fetch_min(lowest, Ordering::AcqRel);
        }
        self.remove_empty_series();
    }

    /// Removes the series with no samples that no appender is about to fill. They are
    /// found under stripe read locks; only they are checked again and removed under the
    /// index lock, which series creation and selection wait for.
    fn remove_empty_series(&self) {
        let is_removable = |s: &MemSeries| s.is_empty() && !s.pending;
        let mut candidates: Vec<SeriesId> = Vec::new();
        self.for_each_series(|id, s| {
            if is_removable(s) {
                candidates.push(id);
            }
        });
        if candidates.is_empty() {
            return;
        }
        let mut index = write(&self.index);
        for id in candidates {
            let mut stripe = self.stripe_mut(id);
            if stripe.get(&id).is_some_and(is_removable) {
                stripe.remove(&id);
                index.remove(id);
            }
        }
        index.drop_unused_symbols();
    }

    /// The head's whole content as WAL records, for a checkpoint.
    pub fn to_records(&self, max_samples_per_record: usize) -> Vec<WalRecord> {
        let mut records = Vec::new();
        let mut current = WalRecord::default();
        self.for_each_series(|id, series| {
            current
                .new_series
                .push((id, series.labels().as_ref().clone()));
            for (ts, v, start) in series.iter() {
                current.samples.push(WalSample {
                    series: id,
                    timestamp_ms: ts,
                    value: v,
                    start_timestamp_ms: start,
                });
            }
            for (ts, start, h) in series.histogram_iter() {
                current.histograms.push(WalHistogram {
                    series: id,
                    timestamp_ms: ts,
                    start_timestamp_ms: start,
                    histogram: Arc::new(h),
                });
            }
            if current.samples.len() + current.histograms.len() >= max_samples_per_record {
                records.push(std::mem::take(&mut current));
            }
        });
        if !current.new_series.is_empty() {
            records.push(current);
        }
        records
    }
}

/// The positions `0..n` grouped by the stripe of the series id at each, stripes in order and
/// positions in order within a stripe: a stable counting sort, linear in `n`.
fn stripe_order(n: usize, id_at: impl Fn(usize) -> SeriesId) -> Vec<usize> {
    let stripes: Vec<u8> = (0..n).map(|i| Head::stripe_of(id_at(i)) as u8).collect();
    let mut next = [0usize; STRIPES];
    for &stripe in &stripes {
        next[stripe as usize] += 1;
    }
    let mut start = 0;
    for slot in &mut next {
        let count = *slot;
        *slot = start;
        start += count;
    }
    let mut order = vec![0; n];
    for (i, &stripe) in stripes.iter().enumerate() {
        order[next[stripe as usize]] = i;
        next[stripe as usize] += 1;
    }
    order
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str, job: &str) -> Labels {
        Labels::from_trusted(vec![
            ("__name__".into(), name.into()),
            ("job".into(), job.into()),
        ])
    }

    fn record(id: SeriesId, l: Labels, samples: &[(i64, f64)]) -> WalRecord {
        WalRecord {
            new_series: vec![(id, l)],
            samples: samples.iter().map(|&(t, v)| sample(id, t, v)).collect(),
            histograms: Vec::new(),
        }
    }

    /// A record of float samples only, of series the head has.
    fn floats(samples: &[WalSample]) -> WalRecord {
        WalRecord {
            samples: samples.to_vec(),
            ..WalRecord::default()
        }
    }

    fn sample(id: SeriesId, t: i64, v: f64) -> WalSample {
        WalSample {
            series: id,
            timestamp_ms: t,
            value: v,
            start_timestamp_ms: 0,
        }
    }

    fn columns(head: &Head, id: SeriesId) -> SampleColumns {
        head.with_series(id, |s| {
            let mut out = SampleColumns::default();
            s.read_into(i64::MIN, i64::MAX, &mut out);
            out
        })
        .expect("series in the head")
    }

    #[test]
    fn out_of_order_and_duplicates_keep_one_sorted_value() {
        let head = Head::new();
        head.apply(&record(
            1,
            labels("up", "a"),
            &[(10, 1.0), (30, 3.0), (20, 2.0), (30, 4.0)],
        ));
        let s = columns(&head, 1);
        assert_eq!(s.timestamps, vec![10, 20, 30]);
        assert_eq!(s.values, vec![1.0, 2.0, 4.0]);
        assert_eq!(head.num_samples(), 3);
    }

    #[test]
    fn start_timestamps_stay_parallel_and_cost_nothing_until_known() {
        let head = Head::new();
        head.apply(&record(1, labels("c", "a"), &[(10, 1.0), (20, 2.0)]));
        assert!(columns(&head, 1).start_timestamps.is_empty());
        let mut later = record(1, labels("c", "a"), &[(15, 1.5), (30, 3.0)]);
        later.samples[0].start_timestamp_ms = 12;
        head.apply(&later);
        let s = columns(&head, 1);
        assert_eq!(s.timestamps, vec![10, 15, 20, 30]);
        assert_eq!(s.start_timestamps, vec![0, 12, 0, 0]);
        // The very first sample of a series may carry one too.
        let mut first = record(2, labels("c", "b"), &[(5, 1.0)]);
        first.samples[0].start_timestamp_ms = 4;
        head.apply(&first);
        assert_eq!(columns(&head, 2).start_timestamps, vec![4]);
        head.truncate_before(16);
        assert!(columns(&head, 1).start_timestamps.is_empty());
    }

    /// Many samples in and out of order across chunk boundaries, against a plain sorted
    /// map as the model: reads, truncation and deletion agree with it.
    #[test]
    fn chunks_agree_with_a_sorted_model() {
        let mut next = crate::testutil::xorshift(0x2545_f491_4f6c_dd1d);
        let head = Head::new();
        let mut model: BTreeMap<i64, (f64, i64)> = BTreeMap::new();
        let mut t = 0i64;
        let mut samples = Vec::new();
        for _ in 0..2000 {
            let ts = if next().is_multiple_of(10) {
                t - (next() % 5000) as i64
            } else {
                t += 15_000;
                t
            };
            let v = (next() % 1000) as f64 / 4.0;
            let start = if next().is_multiple_of(50) { 77 } else { 0 };
            samples.push(WalSample {
                series: 1,
                timestamp_ms: ts,
                value: v,
                start_timestamp_ms: start,
            });
            model.insert(ts, (v, start));
        }
        for part in samples.chunks(37) {
            head.apply(&WalRecord {
                new_series: vec![(1, labels("m", "a"))],
                samples: part.to_vec(),
                histograms: Vec::new(),
            });
        }
        let check = |head: &Head, model: &BTreeMap<i64, (f64, i64)>| {
            let got = columns(head, 1);
            assert_eq!(got.timestamps, model.keys().copied().collect::<Vec<_>>());
            assert_eq!(
                got.values,
                model.values().map(|(v, _)| *v).collect::<Vec<_>>()
            );
            let starts: Vec<i64> = model.values().map(|(_, s)| *s).collect();
            if starts.iter().any(|s| *s != 0) {
                assert_eq!(got.start_timestamps, starts);
            }
            assert_eq!(head.num_samples(), model.len());
            assert_eq!(
                head.with_series(1, MemSeries::max_time).unwrap(),
                model.keys().last().copied()
            );
            let (lo, hi) = (
                model.keys().nth(100).unwrap(),
                model.keys().nth(900).unwrap(),
            );
            head.with_series(1, |s| {
                let mut part = SampleColumns::default();
                s.read_into(*lo, *hi, &mut part);
                assert_eq!(part.len(), 800);
                assert!(s.has_samples_in(*lo, lo + 1));
                assert!(!s.has_samples_in(lo + 1, lo + 2) || model.contains_key(&(lo + 1)));
            });
        };
        check(&head, &model);
        assert!(head.with_series(1, MemSeries::num_chunks).unwrap() >= model.len() / 240);

        let cut = *model.keys().nth(333).unwrap();
        head.truncate_before(cut);
        model.retain(|t, _| *t >= cut);
        check(&head, &model);
        assert_eq!(head.min_time(), Some(cut));

        let (a, b) = (
            *model.keys().nth(200).unwrap(),
            *model.keys().nth(450).unwrap(),
        );
        let deleted = head.delete(&|_| true, a, b);
        let before = model.len();
        model.retain(|t, _| *t < a || *t > b);
        assert_eq!(deleted, before - model.len());
        check(&head, &model);

        // Deleting the newest samples moves the newest time back.
        let tail = *model.keys().nth(model.len() - 5).unwrap();
        head.delete(&|_| true, tail, i64::MAX);
        model.retain(|t, _| *t < tail);
        check(&head, &model);
    }

    #[test]
    fn truncate_drops_old_samples_and_empty_series() {
        let head = Head::new();
        head.apply(&record(1, labels("up", "a"), &[(10, 1.0), (30, 3.0)]));
        head.apply(&record(2, labels("up", "b"), &[(5, 1.0)]));
        head.truncate_before(20);
        assert_eq!(head.num_series(), 1);
        assert_eq!(head.num_samples(), 1);
        assert_eq!(head.min_time(), Some(30));
        assert_eq!(head.label_values("job"), vec!["a".to_string()]);
        assert_eq!(head.series_ids(SeriesScope::Metric("up")), vec![1]);
    }

    #[test]
    fn a_created_series_survives_truncation_until_its_samples_arrive() {
        let head = Head::new();
        let l = Arc::new(labels("up", "new"));
        let [(id, created)] = head.get_or_create(&[&l])[..] else {
            panic!("one series")
        };
        assert!(created);
        head.truncate_before(100);
        assert_eq!(head.lookup(&[&l]), vec![Some(id)]);
        assert_eq!(head.append(&floats(&[sample(id, 200, 1.0)])).0, 1);
        assert_eq!(head.get_or_create(&[&l]), vec![(id, false)]);
        // Forgotten without samples (its log write failed), an empty series goes at once,
        // so the next write of its labels creates, and logs, it again.
        let other = Arc::new(labels("up", "failed"));
        let ids: Vec<SeriesId> = head.get_or_create(&[&other]).iter().map(|c| c.0).collect();
        head.forget(&ids);
        assert_eq!(head.lookup(&[&other]), vec![None]);
        assert_eq!(head.num_series(), 1);
        assert!(head.get_or_create(&[&other])[0].1);
        // One that meanwhile received samples stays.
        head.forget(&[id]);
        assert_eq!(head.lookup(&[&l]), vec![Some(id)]);
    }

    #[test]
    fn label_strings_are_stored_once_and_forgotten_with_their_last_series() {
        let head = Head::new();
        let a = Arc::new(labels("up", "shared"));
        let b = Arc::new(labels("down", "shared"));
        let ids = head.get_or_create(&[&a, &b]);
        head.append(&floats(&[
            sample(ids[0].0, 10, 1.0),
            sample(ids[1].0, 20, 1.0),
        ]));
        let stored: Vec<Arc<Labels>> = ids
            .iter()
            .map(|(id, _)| head.with_series(*id, |s| s.labels().clone()).unwrap())
            .collect();
        let job = |l: &Labels| {
            l.shared_pairs()
                .find(|(n, _)| n.as_ref() == "job")
                .unwrap()
                .1
                .clone()
        };
        assert!(Arc::ptr_eq(&job(&stored[0]), &job(&stored[1])));
        // A string still held elsewhere (the writer's label set) is kept while it is.
        drop((stored, a, b));
        head.truncate_before(15);
        assert!(read(&head.index).symbols.contains("down"));
        assert!(!read(&head.index).symbols.contains("up"));
        head.truncate_before(i64::MAX);
        assert!(read(&head.index).symbols.is_empty());
    }

    #[test]
    fn stripe_order_groups_by_stripe_and_keeps_order_within_one() {
        let ids: Vec<SeriesId> = vec![5, 133, 7, 5 + 2 * STRIPES as u64, 0, 128, 7];
        let order = stripe_order(ids.len(), |i| ids[i]);
        let mut expected: Vec<usize> = (0..ids.len()).collect();
        expected.sort_by_key(|&i| Head::stripe_of(ids[i]));
        assert_eq!(order, expected);
        assert!(stripe_order(0, |i| ids[i]).is_empty());
    }

    #[test]
    fn colliding_ids_are_probed() {
        let head = Head::new();
        let a = labels("up", "a");
        let b = Arc::new(labels("up", "b"));
        // Put a on b's id to simulate a hash collision.
        head.apply(&record(b.stable_hash(), a.clone(), &[(1, 1.0)]));
        assert_eq!(
            head.get_or_create(&[&b]),
            vec![(b.stable_hash().wrapping_add(1), true)]
        );
        assert_eq!(
            head.lookup(&[&b]),
            vec![Some(b.stable_hash().wrapping_add(1))]
        );
    }

    fn histogram(count: f64) -> Arc<crate::model::Histogram> {
        use crate::model::histogram::Span;
        Arc::new(crate::model::Histogram {
            schema: 0,
            count,
            sum: count * 2.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 1,
            }],
            positive_buckets: vec![count],
            ..Default::default()
        })
    }

    fn histogram_sample(id: SeriesId, t: i64, count: f64, start: i64) -> WalHistogram {
        WalHistogram {
            series: id,
            timestamp_ms: t,
            start_timestamp_ms: start,
            histogram: histogram(count),
        }
    }

    /// A series holds floats and histograms over time: reads merge them in time order, a
    /// later write of a time wins whichever kind it is, and truncation, deletion and the
    /// checkpoint's records cover both.
    #[test]
    fn histogram_samples_interleave_with_floats() {
        let head = Head::new();
        let mut first = record(1, labels("h", "a"), &[(10, 1.0), (40, 4.0)]);
        first.histograms = vec![
            histogram_sample(1, 20, 2.0, 5),
            histogram_sample(1, 50, 5.0, 0),
            // Out of order, between the floats.
            histogram_sample(1, 30, 3.0, 0),
        ];
        assert_eq!(head.apply(&first).0, 5);
        let c = columns(&head, 1);
        assert_eq!(c.timestamps, vec![10, 20, 30, 40, 50]);
        let counts: Vec<Option<f64>> = c
            .histograms
            .iter()
            .map(|h| h.as_ref().map(|h| h.count))
            .collect();
        assert_eq!(counts, vec![None, Some(2.0), Some(3.0), None, Some(5.0)]);
        assert_eq!(c.start_timestamps, vec![0, 5, 0, 0, 0]);
        assert_eq!(c.values[0], 1.0);
        assert_eq!(head.with_series(1, |s| s.max_time()).flatten(), Some(50));

        // A float replaces the histogram at 30; a histogram the float at 40.
        let mut second = floats(&[sample(1, 30, 33.0)]);
        second.histograms = vec![histogram_sample(1, 40, 44.0, 0)];
        assert_eq!(head.append(&second).0, 0, "both replace");
        let c = columns(&head, 1);
        assert_eq!(c.timestamps, vec![10, 20, 30, 40, 50]);
        assert_eq!(c.values[2], 33.0);
        assert!(c.histograms[2].is_none());
        assert_eq!(c.histograms[3].as_ref().map(|h| h.count), Some(44.0));
        assert_eq!(head.num_samples(), 5);

        // The checkpoint's records replay to the same series.
        let copy = Head::new();
        for r in head.to_records(1000) {
            copy.apply(&r);
        }
        let (a, b) = (columns(&head, 1), columns(&copy, 1));
        assert_eq!((a.timestamps, a.histograms), (b.timestamps, b.histograms));

        // Truncation and deletion drop histograms too; a series of histograms only goes
        // when its last one does.
        head.truncate_before(25);
        assert_eq!(columns(&head, 1).timestamps, vec![30, 40, 50]);
        assert_eq!(head.min_time(), Some(30));
        let only_histograms = WalRecord {
            new_series: vec![(2, labels("h", "b"))],
            histograms: vec![histogram_sample(2, 60, 1.0, 0)],
            ..WalRecord::default()
        };
        head.apply(&only_histograms);
        assert_eq!(head.num_series(), 2);
        let c = columns(&head, 2);
        assert_eq!((c.timestamps.len(), c.histograms.len()), (1, 1));
        assert!(c.histograms[0].is_some());
        assert_eq!(head.delete(&|l| l.get("job") == Some("b"), 0, 100), 1);
        assert_eq!(head.num_series(), 1);
        assert_eq!(head.num_samples(), 3);
    }

    #[test]
    fn replay_returns_samples_of_series_not_yet_logged() {
        let head = Head::new();
        let (added, orphans) = head.apply(&floats(&[sample(9, 10, 1.0)]));
        assert_eq!((added, orphans.samples.len()), (0, 1));
        head.apply(&record(9, labels("up", "late"), &[]));
        assert_eq!(head.apply(&orphans).0, 1);
    }

    /// Appenders on many threads, over shared and own series, beside truncation and reads:
    /// every sample at or after the cut is there at the end, counted once.
    #[test]
    fn concurrent_appends_truncation_and_reads_agree() {
        let head = Arc::new(Head::new());
        let threads = 4;
        let per_thread = 2_000i64;
        std::thread::scope(|scope| {
            for thread in 0..threads {
                let head = head.clone();
                scope.spawn(move || {
                    for i in 0..per_thread {
                        let shared = Arc::new(labels("shared", &format!("s{}", i % 50)));
                        let own = Arc::new(labels("own", &format!("t{thread}-{}", i % 20)));
                        let ids = head.get_or_create(&[&shared, &own]);
                        // Distinct times per thread, so no two threads write one sample.
                        let t = 1_000 + i * 10 + thread;
                        head.append(&floats(&[
                            sample(ids[0].0, t, 1.0),
                            sample(ids[1].0, t, 2.0),
                        ]));
                    }
                });
            }
            let head = head.clone();
            scope.spawn(move || {
                for _ in 0..50 {
                    head.truncate_before(1_000);
                    let selected = head.select(&Selector::all(), i64::MIN, i64::MAX);
                    assert!(selected.len() <= 50 + 20 * threads as usize);
                }
            });
        });
        assert_eq!(head.num_samples(), (threads * per_thread * 2) as usize);
        assert_eq!(head.num_series(), 50 + 20 * threads as usize);
        let mut total = 0;
        head.for_each_series(|_, s| total += s.iter().count());
        assert_eq!(total, head.num_samples());
        assert_eq!(head.min_time(), Some(1_000));
        head.truncate_before(i64::MAX);
        assert_eq!((head.num_series(), head.num_samples()), (0, 0));
    }
}
