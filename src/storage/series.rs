//! One head series: its samples as compressed chunks (see [`super::chunk`]), and the
//! columns they decode into.

use std::sync::Arc;

use crate::model::Labels;

use super::chunk::{Chunk, SAMPLES_PER_CHUNK};

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
            newest: None,
            pending: true,
        }
    }

    pub fn labels(&self) -> &Arc<Labels> {
        &self.labels
    }

    pub fn min_time(&self) -> Option<i64> {
        self.chunks.first().map(Chunk::min_time)
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
    }

    pub(super) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Inserts in time order; an existing timestamp keeps the newer value.
    /// Returns true when a new sample was added (not a replacement).
    /// A chunk never spans two `window`s (when non-zero): cutting a block then drops whole
    /// chunks instead of re-encoding the ones that straddle its end.
    pub(super) fn insert(&mut self, ts: i64, value: f64, start: i64, window: i64) -> bool {
        let added = self.insert_sample(ts, value, start, window);
        self.newest = self.chunks.last().map(Chunk::max_time);
        added
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
    pub(super) fn remove_range(&mut self, min: i64, max: i64) -> usize {
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
        self.newest = self.chunks.last().map(Chunk::max_time);
        removed
    }
}
