//! One head series: its samples as compressed chunks (see [`super::chunk`]), and the
//! columns they decode into.

use std::sync::Arc;

use crate::model::histogram_ops::read_hint;
use crate::model::{Histogram, Labels};

use super::chunk::{Chunk, SAMPLES_PER_CHUNK};
use super::histogram_codec;

/// Decoded samples of one or more series, column by column, ready to become Arrow arrays.
#[derive(Debug, Default, Clone)]
pub struct SampleColumns {
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    /// Parallel to `timestamps` once any sample had a start timestamp; empty until then, so
    /// that series without start timestamps pay nothing.
    pub start_timestamps: Vec<i64>,
    /// Parallel to `timestamps` once any sample was a native histogram (`None` for the
    /// float samples, whose `values` hold the value; a histogram's `values` entry is 0);
    /// empty until then.
    pub histograms: Vec<Option<Arc<Histogram>>>,
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
        if !self.histograms.is_empty() {
            self.histograms.push(None);
        }
    }

    fn push_histogram(&mut self, t: i64, h: Arc<Histogram>, start: i64) {
        self.histograms.resize(self.timestamps.len(), None);
        self.histograms.push(Some(h));
        // `push` adds no histogram slot now: there is one more than timestamps.
        let slots = std::mem::take(&mut self.histograms);
        self.push(t, 0.0, start);
        self.histograms = slots;
    }

    /// Appends `chunk`'s samples with `min <= ts < max`. Most reads are of float samples
    /// without start timestamps into columns that have none either: those go straight into
    /// the two vectors.
    fn extend_from_chunk(&mut self, chunk: &Chunk, min: i64, max: i64) {
        let inside = min <= chunk.min_time() && chunk.max_time() < max;
        let samples = chunk.iter();
        if inside {
            self.timestamps.reserve(samples.len());
            self.values.reserve(samples.len());
        }
        if chunk.has_start_timestamps()
            || !self.start_timestamps.is_empty()
            || !self.histograms.is_empty()
        {
            for (t, v, s) in samples.filter(|(t, _, _)| inside || (min <= *t && *t < max)) {
                self.push(t, v, s);
            }
            return;
        }
        for (t, v, _) in samples {
            if inside || (min <= t && t < max) {
                self.timestamps.push(t);
                self.values.push(v);
            }
        }
    }

    /// Fills in the unknown start timestamps (and float rows' histogram slots) of the
    /// tail, if any were ever known.
    fn finish(&mut self) {
        if !self.start_timestamps.is_empty() {
            self.start_timestamps.resize(self.timestamps.len(), 0);
        }
        if !self.histograms.is_empty() {
            self.histograms.resize(self.timestamps.len(), None);
        }
    }
}

/// A series' native histogram samples, sorted by time: each histogram's byte form (see
/// [`histogram_codec`]) end to end in one buffer. Integer histograms cost one or two bytes a
/// bucket; unlike the float chunks, samples are not coded against each other yet.
#[derive(Debug, Clone, Default)]
struct HistogramSamples {
    times: Vec<i64>,
    /// Parallel to `times` once a start timestamp is known; empty until then.
    starts: Vec<i64>,
    /// Where each sample's bytes end in `bytes`.
    ends: Vec<u32>,
    bytes: Vec<u8>,
}

impl HistogramSamples {
    fn len(&self) -> usize {
        self.times.len()
    }

    fn heap_bytes(&self) -> usize {
        self.times.capacity() * 8
            + self.starts.capacity() * 8
            + self.ends.capacity() * 4
            + self.bytes.capacity()
    }

    fn range_of(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        start..self.ends[i] as usize
    }

    fn start_at(&self, i: usize) -> i64 {
        self.starts.get(i).copied().unwrap_or(0)
    }

    /// The histogram at position `i`. The bytes were written by [`histogram_codec::encode`]
    /// in this process, so they decode; a failure would be a bug, shown as an empty
    /// histogram rather than a panic in a reader.
    fn histogram_at(&self, i: usize) -> Histogram {
        let mut bytes = &self.bytes[self.range_of(i)];
        histogram_codec::decode(&mut bytes).unwrap_or_default()
    }

    /// Inserts in time order; an existing timestamp keeps the newer histogram. Returns true
    /// when a sample was added rather than replaced.
    fn insert(&mut self, ts: i64, start: i64, h: &Histogram) -> bool {
        if start != 0 && self.starts.len() < self.times.len() {
            self.starts.resize(self.times.len(), 0);
        }
        let mut encoded = Vec::new();
        histogram_codec::encode(h, &mut encoded);
        if self.times.last().is_none_or(|last| *last < ts) {
            self.times.push(ts);
            if !self.starts.is_empty() || start != 0 {
                self.starts.push(start);
            }
            self.bytes.extend_from_slice(&encoded);
            self.ends.push(self.bytes.len() as u32);
            return true;
        }
        let (at, added) = match self.times.binary_search(&ts) {
            Ok(at) => (at, false),
            Err(at) => (at, true),
        };
        let old = if added { 0 } else { self.range_of(at).len() };
        let from = if at == 0 {
            0
        } else {
            self.ends[at - 1] as usize
        };
        self.bytes.splice(from..from + old, encoded.iter().copied());
        let delta = encoded.len() as i64 - old as i64;
        if added {
            self.times.insert(at, ts);
            if !self.starts.is_empty() || start != 0 {
                self.starts.insert(at, start);
            }
            self.ends.insert(at, (from + encoded.len()) as u32);
            for end in &mut self.ends[at + 1..] {
                *end = (*end as i64 + delta) as u32;
            }
        } else {
            if let Some(slot) = self.starts.get_mut(at) {
                *slot = start;
            }
            for end in &mut self.ends[at..] {
                *end = (*end as i64 + delta) as u32;
            }
        }
        added
    }

    /// Positions of the samples with `min <= ts < max`.
    fn positions(&self, min: i64, max: i64) -> std::ops::Range<usize> {
        self.times.partition_point(|t| *t < min)..self.times.partition_point(|t| *t < max)
    }

    /// Removes the samples with `min <= ts < max`; returns how many went.
    fn remove_range(&mut self, min: i64, max: i64) -> usize {
        let range = self.positions(min, max);
        if range.is_empty() {
            return 0;
        }
        let from = if range.start == 0 {
            0
        } else {
            self.ends[range.start - 1] as usize
        };
        let to = self.ends[range.end - 1] as usize;
        self.bytes.drain(from..to);
        let removed_bytes = (to - from) as u32;
        self.times.drain(range.clone());
        if !self.starts.is_empty() {
            self.starts.drain(range.clone());
        }
        self.ends.drain(range.clone());
        for end in &mut self.ends[range.start..] {
            *end -= removed_bytes;
        }
        if self.times.is_empty() {
            *self = HistogramSamples::default();
        } else if self.bytes.capacity() > 2 * self.bytes.len() {
            self.bytes.shrink_to_fit();
            self.ends.shrink_to_fit();
            self.times.shrink_to_fit();
        }
        range.len()
    }
}

/// One series in the head: its samples in compressed chunks, sorted by time and not
/// overlapping. The last chunk takes appends until it holds [`SAMPLES_PER_CHUNK`] samples;
/// the others are closed. An out-of-order sample re-encodes the chunk it falls into.
#[derive(Debug, Clone)]
pub struct MemSeries {
    labels: Arc<Labels>,
    chunks: Vec<Chunk>,
    /// Native histogram samples; `None` for the (most common) series that never had one.
    histograms: Option<Box<HistogramSamples>>,
    /// The newest sample's time, kept beside the chunks: every write checks it before
    /// appending, and reading it from the last chunk is a cache miss per series.
    newest: Option<i64>,
    /// Created by an appender whose samples are not applied yet: truncation must not
    /// take it for an emptied series and remove it.
    pub(super) pending: bool,
}

impl MemSeries {
    pub(super) fn new(labels: Arc<Labels>) -> Self {
        MemSeries {
            labels,
            chunks: Vec::new(),
            histograms: None,
            newest: None,
            pending: true,
        }
    }

    pub fn labels(&self) -> &Arc<Labels> {
        &self.labels
    }

    pub fn min_time(&self) -> Option<i64> {
        let floats = self.chunks.first().map(Chunk::min_time);
        let histograms = self
            .histograms
            .as_ref()
            .and_then(|h| h.times.first().copied());
        match (floats, histograms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn max_time(&self) -> Option<i64> {
        self.newest
    }

    pub fn num_chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Heap bytes of the samples, for memory accounting.
    pub fn chunk_bytes(&self) -> usize {
        self.chunks.iter().map(Chunk::heap_bytes).sum::<usize>()
            + self.chunks.capacity() * size_of::<Chunk>()
            + self.histograms.as_ref().map_or(0, |h| h.heap_bytes())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.histograms.is_none()
    }

    pub(super) fn has_histograms(&self) -> bool {
        self.histograms.is_some()
    }

    /// The newest time of either kind of sample.
    fn update_newest(&mut self) {
        let floats = self.chunks.last().map(Chunk::max_time);
        let histograms = self
            .histograms
            .as_ref()
            .and_then(|h| h.times.last().copied());
        self.newest = floats.max(histograms);
    }

    /// Inserts a native histogram sample in time order; a float sample at the same time is
    /// replaced by it, as a later write of a timestamp wins. Returns true when a sample was
    /// added rather than replaced.
    pub(super) fn insert_histogram(&mut self, ts: i64, h: &Histogram, start: i64) -> bool {
        let replaced_float = self.chunks.last().is_some_and(|c| c.max_time() >= ts)
            && self.remove_float_range(ts, ts.saturating_add(1)) > 0;
        let added = self
            .histograms
            .get_or_insert_with(Box::default)
            .insert(ts, start, h);
        self.update_newest();
        added && !replaced_float
    }

    /// Inserts in time order; an existing timestamp keeps the newer value.
    /// Returns true when a new sample was added (not a replacement).
    /// A chunk never spans two `window`s (when non-zero): cutting a block then drops whole
    /// chunks instead of re-encoding the ones that straddle its end.
    pub(super) fn insert(&mut self, ts: i64, value: f64, start: i64, window: i64) -> bool {
        let replaced_histogram = self.remove_histogram_range(ts, ts.saturating_add(1)) > 0;
        let added = self.insert_sample(ts, value, start, window);
        self.update_newest();
        added && !replaced_histogram
    }

    fn remove_histogram_range(&mut self, min: i64, max: i64) -> usize {
        let Some(h) = self.histograms.as_mut() else {
            return 0;
        };
        let removed = h.remove_range(min, max);
        if h.len() == 0 {
            self.histograms = None;
        }
        removed
    }

    fn insert_sample(&mut self, ts: i64, value: f64, start: i64, window: i64) -> bool {
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
        if self
            .histograms
            .as_ref()
            .is_some_and(|h| !h.positions(min, max).is_empty())
        {
            return true;
        }
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

    /// Whether a float sample lies strictly between `after` and `before`.
    fn has_float_between(&self, after: i64, before: i64) -> bool {
        self.overlapping(after.saturating_add(1), before)
            .flat_map(Chunk::iter)
            .any(|(t, _, _)| after < t && t < before)
    }

    /// Decodes the samples with `min <= ts < max` onto the end of `out`, decoding only
    /// the chunks that overlap the range. Returns how many were added.
    /// Float and histogram samples are merged in time order; histograms carry the counter
    /// reset hint Prometheus would read them back with.
    pub fn read_into(&self, min: i64, max: i64, out: &mut SampleColumns) -> usize {
        let before = out.len();
        let histograms = self
            .histograms
            .as_ref()
            .map(|h| (h, h.positions(min, max)))
            .filter(|(_, range)| !range.is_empty());
        let Some((h, range)) = histograms else {
            for chunk in self.overlapping(min, max) {
                out.extend_from_chunk(chunk, min, max);
            }
            out.finish();
            return out.len() - before;
        };
        let mut floats = self
            .overlapping(min, max)
            .flat_map(move |chunk| {
                let inside = min <= chunk.min_time() && chunk.max_time() < max;
                chunk
                    .iter()
                    .filter(move |(t, _, _)| inside || (min <= *t && *t < max))
            })
            .peekable();
        // The sample before each histogram, when it is a histogram: the hint a histogram
        // is read with depends on it (see `read_hint`).
        let mut previous = match range.start {
            0 => None,
            i if self.has_float_between(h.times[i - 1], h.times[i]) => None,
            i => Some(Arc::new(h.histogram_at(i - 1))),
        };
        for i in range {
            let t = h.times[i];
            while let Some((ft, v, s)) = floats.next_if(|f| f.0 < t) {
                out.push(ft, v, s);
                previous = None;
            }
            let mut histogram = h.histogram_at(i);
            histogram.counter_reset_hint = read_hint(&histogram, previous.as_deref());
            let histogram = Arc::new(histogram);
            out.push_histogram(t, histogram.clone(), h.start_at(i));
            previous = Some(histogram);
        }
        for (t, v, s) in floats {
            out.push(t, v, s);
        }
        out.finish();
        out.len() - before
    }

    /// Every float sample, in time order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, f64, i64)> + '_ {
        self.chunks.iter().flat_map(Chunk::iter)
    }

    /// Every histogram sample `(time, start time, histogram)`, in time order.
    pub fn histogram_iter(&self) -> impl Iterator<Item = (i64, i64, Histogram)> + '_ {
        self.histograms
            .iter()
            .flat_map(|h| (0..h.len()).map(|i| (h.times[i], h.start_at(i), h.histogram_at(i))))
    }

    /// Removes the samples with `min <= ts < max`; returns how many went.
    pub(super) fn remove_range(&mut self, min: i64, max: i64) -> usize {
        let removed = self.remove_histogram_range(min, max) + self.remove_float_range(min, max);
        self.update_newest();
        removed
    }

    fn remove_float_range(&mut self, min: i64, max: i64) -> usize {
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
