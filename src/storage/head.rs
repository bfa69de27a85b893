//! The head: recent samples in memory, per series as parallel timestamp/value columns, with
//! a label index for finding series by metric name and label.
//!
//! The head does no I/O. [`super::Storage`] validates a write against it, logs it to the WAL,
//! then applies it here, and cuts old time windows out of it into blocks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::model::{Labels, SeriesId};

use super::wal::{WalRecord, WalSample};

/// One series in the head. Timestamps are sorted and unique; `values[i]` belongs to
/// `timestamps[i]`.
#[derive(Debug, Clone)]
pub struct MemSeries {
    pub labels: Arc<Labels>,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    /// Start timestamps parallel to `timestamps`, or empty while every one is unknown (0):
    /// most sources send none, and those series should not pay for them.
    pub start_timestamps: Vec<i64>,
}

impl MemSeries {
    fn new(labels: Labels) -> Self {
        MemSeries {
            labels: Arc::new(labels),
            timestamps: Vec::new(),
            values: Vec::new(),
            start_timestamps: Vec::new(),
        }
    }

    /// The start timestamp of sample `i` (0 when unknown).
    pub fn start_timestamp(&self, i: usize) -> i64 {
        self.start_timestamps.get(i).copied().unwrap_or(0)
    }

    pub fn max_time(&self) -> Option<i64> {
        self.timestamps.last().copied()
    }

    /// Inserts in time order; an existing timestamp keeps the newer value.
    /// Returns true when a new sample was added (not a replacement).
    fn insert(&mut self, ts: i64, value: f64, start: i64) -> bool {
        let tracks_starts = start != 0 || !self.start_timestamps.is_empty();
        if tracks_starts {
            self.start_timestamps.resize(self.timestamps.len(), 0);
        }
        let at = match self.timestamps.last() {
            Some(&last) if ts <= last => self.timestamps.binary_search(&ts),
            _ => Err(self.timestamps.len()),
        };
        match at {
            Ok(i) => {
                self.values[i] = value;
                if tracks_starts {
                    self.start_timestamps[i] = start;
                }
                false
            }
            Err(i) => {
                self.timestamps.insert(i, ts);
                self.values.insert(i, value);
                if tracks_starts {
                    self.start_timestamps.insert(i, start);
                }
                true
            }
        }
    }

    /// Removes the samples at `range`, keeping the columns parallel.
    fn drain(&mut self, range: std::ops::Range<usize>) {
        self.timestamps.drain(range.clone());
        self.values.drain(range.clone());
        if !self.start_timestamps.is_empty() {
            self.start_timestamps.drain(range);
        }
    }

    /// Index range of samples with `min <= ts < max`.
    pub fn range(&self, min: i64, max: i64) -> std::ops::Range<usize> {
        let start = self.timestamps.partition_point(|&t| t < min);
        let end = self.timestamps.partition_point(|&t| t < max);
        start..end.max(start)
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
}

impl Head {
    pub fn new() -> Head {
        Head::default()
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
                && series.insert(s.timestamp_ms, s.value, s.start_timestamp_ms)
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
            let r = series.range(min, max.saturating_add(1));
            deleted += r.len();
            series.drain(r);
            if series.timestamps.is_empty() {
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
            let cut = series.timestamps.partition_point(|&t| t < before);
            if cut > 0 {
                series.drain(0..cut);
                self.num_samples -= cut;
            }
            if series.timestamps.is_empty() {
                emptied.push(*id);
            }
        }
        for id in emptied {
            self.remove_series(id);
        }
        self.min_time = self
            .series
            .values()
            .filter_map(|s| s.timestamps.first().copied())
            .min();
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
            for (i, (ts, v)) in series.timestamps.iter().zip(&series.values).enumerate() {
                current.samples.push(WalSample {
                    series: *id,
                    timestamp_ms: *ts,
                    value: *v,
                    start_timestamp_ms: series.start_timestamp(i),
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

    #[test]
    fn out_of_order_and_duplicates_keep_one_sorted_value() {
        let mut head = Head::new();
        head.apply(&record(
            1,
            labels("up", "a"),
            &[(10, 1.0), (30, 3.0), (20, 2.0), (30, 4.0)],
        ));
        let s = head.get(1).unwrap();
        assert_eq!(s.timestamps, vec![10, 20, 30]);
        assert_eq!(s.values, vec![1.0, 2.0, 4.0]);
        assert_eq!(head.num_samples(), 3);
    }

    #[test]
    fn start_timestamps_stay_parallel_and_cost_nothing_until_known() {
        let mut head = Head::new();
        head.apply(&record(1, labels("c", "a"), &[(10, 1.0), (20, 2.0)]));
        assert!(head.get(1).unwrap().start_timestamps.is_empty());
        let mut later = record(1, labels("c", "a"), &[(15, 1.5), (30, 3.0)]);
        later.samples[0].start_timestamp_ms = 12;
        head.apply(&later);
        let s = head.get(1).unwrap();
        assert_eq!(s.timestamps, vec![10, 15, 20, 30]);
        assert_eq!(s.start_timestamps, vec![0, 12, 0, 0]);
        // The very first sample of a series may carry one too.
        let mut first = record(2, labels("c", "b"), &[(5, 1.0)]);
        first.samples[0].start_timestamp_ms = 4;
        head.apply(&first);
        assert_eq!(head.get(2).unwrap().start_timestamps, vec![4]);
        head.truncate_before(16);
        assert_eq!(head.get(1).unwrap().start_timestamps, vec![0, 0]);
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
