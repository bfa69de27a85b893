//! The head: recent samples in memory, per series as compressed chunks (see [`super::chunk`]),
//! with a label index for finding series by metric name and label.
//!
//! The head does no I/O. [`super::Storage`] validates a write against it, logs it to the WAL,
//! then applies it here, and cuts old time windows out of it into blocks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::model::{Labels, Matcher, Selector, SeriesId};

use super::chunk::{Chunk, SAMPLES_PER_CHUNK};
use super::wal::{WalRecord, WalSample};

/// Decoded samples of one or more series, column by column, ready to become Arrow arrays.
#[derive(Debug, Default, Clone)]
pub struct SampleColumns {
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    /// Parallel to `timestamps` once any sample had a start timestamp; empty until then, so
    /// that series without start timestamps pay nothing.
    pub start_timestamps: Vec<i64>,
}

impl SampleColumns {
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    fn push(&mut self, t: i64, v: f64, start: i64) {
        if start != 0 && self.start_timestamps.len() < self.timestamps.len() {
            self.start_timestamps.resize(self.timestamps.len(), 0);
        }
        self.timestamps.push(t);
        self.values.push(v);
        if !self.start_timestamps.is_empty() || start != 0 {
            self.start_timestamps.push(start);
        }
    }

    /// Fills in the unknown start timestamps of the tail, if any were ever known.
    fn finish(&mut self) {
        if !self.start_timestamps.is_empty() {
            self.start_timestamps.resize(self.timestamps.len(), 0);
        }
    }
}

/// One series in the head: its samples in compressed chunks, sorted by time and not
/// overlapping. The last chunk takes appends until it holds [`SAMPLES_PER_CHUNK`] samples;
/// the others are closed. An out-of-order sample re-encodes the chunk it falls into.
#[derive(Debug, Clone)]
pub struct MemSeries {
    labels: Arc<Labels>,
    chunks: Vec<Chunk>,
}

impl MemSeries {
    fn new(labels: Labels) -> Self {
        MemSeries {
            labels: Arc::new(labels),
            chunks: Vec::new(),
        }
    }

    pub fn labels(&self) -> &Arc<Labels> {
        &self.labels
    }

    pub fn min_time(&self) -> Option<i64> {
        self.chunks.first().map(Chunk::min_time)
    }

    pub fn max_time(&self) -> Option<i64> {
        self.chunks.last().map(Chunk::max_time)
    }

    pub fn num_chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Heap bytes of the samples, for memory accounting.
    pub fn chunk_bytes(&self) -> usize {
        self.chunks.iter().map(Chunk::heap_bytes).sum::<usize>()
            + self.chunks.capacity() * size_of::<Chunk>()
    }

    fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Inserts in time order; an existing timestamp keeps the newer value.
    /// Returns true when a new sample was added (not a replacement).
    /// A chunk never spans two `window`s (when non-zero): cutting a block then drops whole
    /// chunks instead of re-encoding the ones that straddle its end.
    fn insert(&mut self, ts: i64, value: f64, start: i64, window: i64) -> bool {
        let same_window =
            |a: i64, b: i64| window <= 0 || a.div_euclid(window) == b.div_euclid(window);
        match self.chunks.last_mut() {
            Some(last) if ts > last.max_time() => {
                if last.len() < SAMPLES_PER_CHUNK
                    && last.is_open()
                    && same_window(last.min_time(), ts)
                {
                    last.append(ts, value, start);
                    return true;
                }
                last.close();
            }
            Some(_) => return self.insert_out_of_order(ts, value, start),
            None => {}
        }
        self.chunks.push(Chunk::from_samples(&[(ts, value, start)]));
        true
    }

    /// Re-encodes the chunk `ts` falls into (or the first one after it) with the sample.
    fn insert_out_of_order(&mut self, ts: i64, value: f64, start: i64) -> bool {
        let i = self.chunks.partition_point(|c| c.max_time() < ts);
        let mut samples = self.chunks[i].samples();
        let added = match samples.binary_search_by_key(&ts, |s| s.0) {
            Ok(at) => {
                samples[at] = (ts, value, start);
                false
            }
            Err(at) => {
                samples.insert(at, (ts, value, start));
                true
            }
        };
        self.replace_chunk(i, &samples);
        added
    }

    /// Replaces chunk `i` with `samples` (sorted), split so no chunk grows past twice the
    /// usual size; removes it when `samples` is empty. The last chunk stays open.
    fn replace_chunk(&mut self, i: usize, samples: &[(i64, f64, i64)]) {
        let was_last = i + 1 == self.chunks.len();
        let pieces: Vec<Chunk> = if samples.len() > 2 * SAMPLES_PER_CHUNK {
            samples
                .chunks(SAMPLES_PER_CHUNK)
                .map(Chunk::from_samples)
                .collect()
        } else if samples.is_empty() {
            Vec::new()
        } else {
            vec![Chunk::from_samples(samples)]
        };
        let n = pieces.len();
        self.chunks.splice(i..=i, pieces);
        let last_index = self.chunks.len().saturating_sub(1);
        for (k, chunk) in self.chunks[i..i + n].iter_mut().enumerate() {
            if !(was_last && i + k == last_index) {
                chunk.close();
            }
        }
    }

    /// True when the series has a sample with `min <= ts < max`.
    pub fn has_samples_in(&self, min: i64, max: i64) -> bool {
        self.overlapping(min, max).any(|c| {
            (min <= c.min_time() && c.min_time() < max)
                || (min <= c.max_time() && c.max_time() < max)
                || c.iter().any(|(t, _, _)| min <= t && t < max)
        })
    }

    fn overlapping(&self, min: i64, max: i64) -> impl Iterator<Item = &Chunk> {
        let first = self.chunks.partition_point(|c| c.max_time() < min);
        self.chunks[first..]
            .iter()
            .take_while(move |c| c.min_time() < max)
    }

    /// Decodes the samples with `min <= ts < max` onto the end of `out`, decoding only
    /// the chunks that overlap the range. Returns how many were added.
    pub fn read_into(&self, min: i64, max: i64, out: &mut SampleColumns) -> usize {
        let before = out.len();
        for chunk in self.overlapping(min, max) {
            let inside = min <= chunk.min_time() && chunk.max_time() < max;
            for (t, v, s) in chunk.iter() {
                if inside || (min <= t && t < max) {
                    out.push(t, v, s);
                }
            }
        }
        out.finish();
        out.len() - before
    }

    /// Every sample, in time order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, f64, i64)> + '_ {
        self.chunks.iter().flat_map(Chunk::iter)
    }

    /// Removes the samples with `min <= ts < max`; returns how many went.
    fn remove_range(&mut self, min: i64, max: i64) -> usize {
        let mut removed = 0;
        let mut i = self.chunks.partition_point(|c| c.max_time() < min);
        while i < self.chunks.len() && self.chunks[i].min_time() < max {
            let chunk = &self.chunks[i];
            if min <= chunk.min_time() && chunk.max_time() < max {
                removed += chunk.len();
                self.chunks.remove(i);
                continue;
            }
            let samples = chunk.samples();
            let kept: Vec<(i64, f64, i64)> = samples
                .iter()
                .copied()
                .filter(|(t, _, _)| *t < min || *t >= max)
                .collect();
            removed += samples.len() - kept.len();
            let pieces_before = self.chunks.len();
            self.replace_chunk(i, &kept);
            // Step past what replaced chunk i (nothing, when it emptied).
            i = i + self.chunks.len() + 1 - pieces_before;
        }
        removed
    }
}

/// Series of one metric and the label names they use (the metric table's columns).
#[derive(Debug, Default, Clone)]
pub struct MetricIndex {
    pub series: BTreeSet<SeriesId>,
    pub label_names: BTreeSet<String>,
}

#[derive(Debug, Default)]
pub struct Head {
    series: HashMap<SeriesId, MemSeries>,
    by_metric: BTreeMap<String, MetricIndex>,
    /// label name -> label value -> series; for matcher lookups.
    postings: HashMap<String, HashMap<String, BTreeSet<SeriesId>>>,
    num_samples: usize,
    min_time: Option<i64>,
    max_time: Option<i64>,
    /// Chunks do not span two windows of this length (ms; 0: no limit).
    chunk_window: i64,
}

impl Head {
    pub fn new() -> Head {
        Head::default()
    }

    /// A head whose chunks each stay inside one block window of `window` ms.
    pub fn with_chunk_window(window: i64) -> Head {
        Head {
            chunk_window: window,
            ..Head::default()
        }
    }

    /// Chunks across all series.
    pub fn num_chunks(&self) -> usize {
        self.series.values().map(MemSeries::num_chunks).sum()
    }

    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    pub fn num_samples(&self) -> usize {
        self.num_samples
    }

    pub fn min_time(&self) -> Option<i64> {
        self.min_time
    }

    pub fn max_time(&self) -> Option<i64> {
        self.max_time
    }

    pub fn get(&self, id: SeriesId) -> Option<&MemSeries> {
        self.series.get(&id)
    }

    pub fn metrics(&self) -> &BTreeMap<String, MetricIndex> {
        &self.by_metric
    }

    pub fn metric(&self, name: &str) -> Option<&MetricIndex> {
        self.by_metric.get(name)
    }

    pub fn postings(&self, name: &str, value: &str) -> Option<&BTreeSet<SeriesId>> {
        self.postings.get(name).and_then(|values| values.get(value))
    }

    /// Label names in use, from the postings index.
    pub fn label_names(&self) -> impl Iterator<Item = &String> {
        self.postings.keys()
    }

    pub fn label_values(&self, name: &str) -> impl Iterator<Item = &String> {
        self.postings.get(name).into_iter().flat_map(|v| v.keys())
    }

    pub fn all_series(&self) -> impl Iterator<Item = (&SeriesId, &MemSeries)> {
        self.series.iter()
    }

    /// True when the head holds samples that may fall in `[min, max]`.
    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        self.min_time
            .zip(self.max_time)
            .is_some_and(|(lo, hi)| lo <= max && min <= hi)
    }

    /// The series `selector` picks that have a sample with `min <= ts < max`. Candidates
    /// come from the postings of each alternative's equality matchers (the shortest list
    /// walked, the others probed); only they are tested against every matcher.
    pub fn select(&self, selector: &Selector, min: i64, max: i64) -> Vec<(SeriesId, Arc<Labels>)> {
        let mut ids: BTreeSet<SeriesId> = BTreeSet::new();
        if selector.alternatives.is_empty() {
            ids.extend(self.series.keys());
        }
        for alternative in &selector.alternatives {
            ids.extend(self.candidates(alternative));
        }
        ids.into_iter()
            .filter_map(|id| {
                let s = self.series.get(&id)?;
                (selector.matches(&s.labels) && s.has_samples_in(min, max))
                    .then(|| (id, s.labels.clone()))
            })
            .collect()
    }

    /// Series that satisfy every equality matcher of `matchers` (all series when there is
    /// none): the intersection of their postings.
    fn candidates(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        let mut lists: Vec<&BTreeSet<SeriesId>> = Vec::new();
        for m in matchers.iter().filter(|m| m.is_postings_lookup()) {
            match self.postings(&m.name, &m.value) {
                Some(list) => lists.push(list),
                None => return Vec::new(),
            }
        }
        if lists.is_empty() {
            return self.series.keys().copied().collect();
        }
        lists.sort_by_key(|l| l.len());
        lists[0]
            .iter()
            .filter(|id| lists[1..].iter().all(|l| l.contains(id)))
            .copied()
            .collect()
    }

    /// The id the series has, or would get: its stable hash, probed forward past
    /// collisions with other label sets (including ones `pending` is about to add).
    pub fn resolve_id(
        &self,
        labels: &Labels,
        pending: &HashMap<SeriesId, Labels>,
    ) -> (SeriesId, bool) {
        let mut id = labels.stable_hash();
        loop {
            let existing = self
                .series
                .get(&id)
                .map(|s| s.labels.as_ref())
                .or_else(|| pending.get(&id));
            match existing {
                None => return (id, false),
                Some(l) if l == labels => return (id, self.series.contains_key(&id)),
                Some(_) => id = id.wrapping_add(1),
            }
        }
    }

    /// Applies a record that has already been validated and logged.
    pub fn apply(&mut self, record: &WalRecord) -> usize {
        for (id, labels) in &record.new_series {
            self.add_series(*id, labels.clone());
        }
        let mut added = 0;
        for s in &record.samples {
            if let Some(series) = self.series.get_mut(&s.series)
                && series.insert(
                    s.timestamp_ms,
                    s.value,
                    s.start_timestamp_ms,
                    self.chunk_window,
                )
            {
                added += 1;
                self.min_time = Some(
                    self.min_time
                        .map_or(s.timestamp_ms, |t| t.min(s.timestamp_ms)),
                );
                self.max_time = Some(
                    self.max_time
                        .map_or(s.timestamp_ms, |t| t.max(s.timestamp_ms)),
                );
            }
        }
        self.num_samples += added;
        added
    }

    fn add_series(&mut self, id: SeriesId, labels: Labels) {
        if self.series.contains_key(&id) {
            return;
        }
        let metric = labels.metric_name().unwrap_or_default().to_string();
        let index = self.by_metric.entry(metric).or_default();
        index.series.insert(id);
        for (name, value) in labels.iter() {
            if name != crate::model::METRIC_NAME_LABEL {
                index.label_names.insert(name.to_string());
            }
            self.postings
                .entry(name.to_string())
                .or_default()
                .entry(value.to_string())
                .or_default()
                .insert(id);
        }
        self.series.insert(id, MemSeries::new(labels));
    }

    /// Deletes the samples in `[min, max]` of the series `select` picks, then the series
    /// left empty. Returns how many samples went.
    pub fn delete(&mut self, select: &dyn Fn(&Labels) -> bool, min: i64, max: i64) -> usize {
        let mut deleted = 0;
        let mut emptied = Vec::new();
        for (id, series) in self.series.iter_mut() {
            if !select(&series.labels) {
                continue;
            }
            deleted += series.remove_range(min, max.saturating_add(1));
            if series.is_empty() {
                emptied.push(*id);
            }
        }
        self.num_samples -= deleted;
        for id in emptied {
            self.remove_series(id);
        }
        deleted
    }

    /// Drops every sample older than `before`, then every series left with no samples.
    pub fn truncate_before(&mut self, before: i64) {
        let mut emptied = Vec::new();
        for (id, series) in self.series.iter_mut() {
            if series.min_time().is_some_and(|t| t < before) {
                self.num_samples -= series.remove_range(i64::MIN, before);
            }
            if series.is_empty() {
                emptied.push(*id);
            }
        }
        for id in emptied {
            self.remove_series(id);
        }
        self.min_time = self.series.values().filter_map(MemSeries::min_time).min();
        if self.min_time.is_none() {
            self.max_time = None;
        }
    }

    fn remove_series(&mut self, id: SeriesId) {
        let Some(series) = self.series.remove(&id) else {
            return;
        };
        let metric = series.labels.metric_name().unwrap_or_default().to_string();
        if let Some(index) = self.by_metric.get_mut(&metric) {
            index.series.remove(&id);
            if index.series.is_empty() {
                self.by_metric.remove(&metric);
            }
        }
        for (name, value) in series.labels.iter() {
            if let Some(values) = self.postings.get_mut(name) {
                if let Some(ids) = values.get_mut(value) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        values.remove(value);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(name);
                }
            }
        }
        // Label names of the metric may now be unused; recompute them lazily is not worth it:
        // an extra all-null column is harmless, and the set is rebuilt at the next restart.
    }

    /// The head's whole content as WAL records, for a checkpoint.
    pub fn to_records(&self, max_samples_per_record: usize) -> Vec<WalRecord> {
        let mut records = Vec::new();
        let mut current = WalRecord::default();
        for (id, series) in &self.series {
            current
                .new_series
                .push((*id, series.labels.as_ref().clone()));
            for (ts, v, start) in series.iter() {
                current.samples.push(WalSample {
                    series: *id,
                    timestamp_ms: ts,
                    value: v,
                    start_timestamp_ms: start,
                });
            }
            if current.samples.len() >= max_samples_per_record {
                records.push(std::mem::take(&mut current));
            }
        }
        if !current.new_series.is_empty() {
            records.push(current);
        }
        records
    }
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
            samples: samples
                .iter()
                .map(|&(t, v)| WalSample {
                    series: id,
                    timestamp_ms: t,
                    value: v,
                    start_timestamp_ms: 0,
                })
                .collect(),
        }
    }

    fn columns(s: &MemSeries) -> SampleColumns {
        let mut out = SampleColumns::default();
        s.read_into(i64::MIN, i64::MAX, &mut out);
        out
    }

    #[test]
    fn out_of_order_and_duplicates_keep_one_sorted_value() {
        let mut head = Head::new();
        head.apply(&record(
            1,
            labels("up", "a"),
            &[(10, 1.0), (30, 3.0), (20, 2.0), (30, 4.0)],
        ));
        let s = columns(head.get(1).unwrap());
        assert_eq!(s.timestamps, vec![10, 20, 30]);
        assert_eq!(s.values, vec![1.0, 2.0, 4.0]);
        assert_eq!(head.num_samples(), 3);
    }

    #[test]
    fn start_timestamps_stay_parallel_and_cost_nothing_until_known() {
        let mut head = Head::new();
        head.apply(&record(1, labels("c", "a"), &[(10, 1.0), (20, 2.0)]));
        assert!(columns(head.get(1).unwrap()).start_timestamps.is_empty());
        let mut later = record(1, labels("c", "a"), &[(15, 1.5), (30, 3.0)]);
        later.samples[0].start_timestamp_ms = 12;
        head.apply(&later);
        let s = columns(head.get(1).unwrap());
        assert_eq!(s.timestamps, vec![10, 15, 20, 30]);
        assert_eq!(s.start_timestamps, vec![0, 12, 0, 0]);
        // The very first sample of a series may carry one too.
        let mut first = record(2, labels("c", "b"), &[(5, 1.0)]);
        first.samples[0].start_timestamp_ms = 4;
        head.apply(&first);
        assert_eq!(columns(head.get(2).unwrap()).start_timestamps, vec![4]);
        head.truncate_before(16);
        assert!(columns(head.get(1).unwrap()).start_timestamps.is_empty());
    }

    /// Many samples in and out of order across chunk boundaries, against a plain sorted
    /// map as the model: reads, truncation and deletion agree with it.
    #[test]
    fn chunks_agree_with_a_sorted_model() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut head = Head::new();
        let mut model: BTreeMap<i64, (f64, i64)> = BTreeMap::new();
        let mut t = 0i64;
        let mut samples = Vec::new();
        for _ in 0..2000 {
            let ts = if next() % 10 == 0 {
                t - (next() % 5000) as i64
            } else {
                t += 15_000;
                t
            };
            let v = (next() % 1000) as f64 / 4.0;
            let start = if next() % 50 == 0 { 77 } else { 0 };
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
            });
        }
        let check = |head: &Head, model: &BTreeMap<i64, (f64, i64)>| {
            let s = head.get(1).unwrap();
            let got = columns(s);
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
            let (lo, hi) = (
                model.keys().nth(100).unwrap(),
                model.keys().nth(900).unwrap(),
            );
            let mut part = SampleColumns::default();
            s.read_into(*lo, *hi, &mut part);
            assert_eq!(part.len(), 800);
            assert!(s.has_samples_in(*lo, lo + 1));
            assert!(!s.has_samples_in(lo + 1, lo + 2) || model.contains_key(&(lo + 1)));
        };
        check(&head, &model);
        assert!(head.get(1).unwrap().num_chunks() >= model.len() / 240);

        let cut = *model.keys().nth(333).unwrap();
        head.truncate_before(cut);
        model.retain(|t, _| *t >= cut);
        check(&head, &model);

        let (a, b) = (
            *model.keys().nth(200).unwrap(),
            *model.keys().nth(450).unwrap(),
        );
        let deleted = head.delete(&|_| true, a, b);
        let before = model.len();
        model.retain(|t, _| *t < a || *t > b);
        assert_eq!(deleted, before - model.len());
        check(&head, &model);
    }

    #[test]
    fn truncate_drops_old_samples_and_empty_series() {
        let mut head = Head::new();
        head.apply(&record(1, labels("up", "a"), &[(10, 1.0), (30, 3.0)]));
        head.apply(&record(2, labels("up", "b"), &[(5, 1.0)]));
        head.truncate_before(20);
        assert_eq!(head.num_series(), 1);
        assert_eq!(head.num_samples(), 1);
        assert_eq!(head.min_time(), Some(30));
        assert!(head.postings("job", "b").is_none());
        assert_eq!(head.metric("up").unwrap().series.len(), 1);
    }

    #[test]
    fn colliding_ids_are_probed() {
        let mut head = Head::new();
        let a = labels("up", "a");
        let b = labels("up", "b");
        // Force b onto a's id to simulate a hash collision.
        let id = a.stable_hash();
        head.apply(&record(id, a.clone(), &[(1, 1.0)]));
        let mut pending = HashMap::new();
        pending.insert(b.stable_hash(), a.clone());
        let (resolved, exists) = head.resolve_id(&b, &pending);
        assert_eq!(resolved, b.stable_hash() + 1);
        assert!(!exists);
        assert_eq!(head.resolve_id(&a, &HashMap::new()), (id, true));
    }
}
