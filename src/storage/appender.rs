//! The write side of storage, as Prometheus's `storage.Appender`: a scrape, a remote-write
//! request or a rule evaluation collects its samples in an [`Appender`], then commits them
//! at once: validated against the head stripe by stripe, logged to the WAL as one record,
//! applied to the head, made durable per the fsync policy. Nothing of a refused commit is
//! stored.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{HistogramSample, Labels, Sample, SeriesId, SeriesSamples};

use super::wal::{WalHistogram, WalRecord, WalSample};
use super::{Storage, read};

/// Why a write was refused. Nothing of a refused write is stored.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(
        "out of bounds: sample for series {series} at {timestamp_ms} is older than the oldest writable time {min_valid}"
    )]
    OutOfBounds {
        series: String,
        timestamp_ms: i64,
        min_valid: i64,
    },
    #[error("out of order sample for series {series} at {timestamp_ms}: newest is {newest}")]
    OutOfOrder {
        series: String,
        timestamp_ms: i64,
        newest: i64,
    },
    #[error("storage error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl AppendError {
    /// Short reason for the rejected-samples counter.
    pub fn reason(&self) -> &'static str {
        match self {
            AppendError::OutOfBounds { .. } => "out_of_bounds",
            AppendError::OutOfOrder { .. } => "out_of_order",
            AppendError::Internal(_) => "internal",
        }
    }
}

/// What an accepted write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    pub samples_added: usize,
    pub series_created: usize,
    /// Samples a lenient commit skipped, and why.
    pub skipped: Skipped,
}

/// Samples a commit skipped: counts by reason, and the first of them described.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    pub out_of_bounds: usize,
    pub out_of_order: usize,
    /// How many of the skipped samples were native histograms.
    pub histograms: usize,
    pub first: Option<String>,
}

impl Skipped {
    pub fn total(&self) -> usize {
        self.out_of_bounds + self.out_of_order
    }

    fn add(&mut self, problem: &AppendError) {
        match problem {
            AppendError::OutOfBounds { .. } => self.out_of_bounds += 1,
            AppendError::OutOfOrder { .. } => self.out_of_order += 1,
            AppendError::Internal(_) => return,
        }
        self.first.get_or_insert_with(|| problem.to_string());
    }
}

/// How a commit treats an invalid sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Refuse the whole batch (remote write: the client learns and nothing is half-stored).
    AllOrNothing,
    /// Skip the sample and keep the rest (scrapes).
    SkipInvalid,
}

/// A write in progress: samples collected, nothing stored until [`Appender::commit`].
#[must_use = "an appender stores nothing until it is committed"]
pub struct Appender<'s> {
    storage: &'s Storage,
    mode: Mode,
    /// Whether a commit returns only once its samples are durable (under the `always`
    /// fsync policy).
    durable: bool,
    batch: Vec<SeriesSamples>,
}

impl Storage {
    /// An appender whose commit is all or nothing, and durable on return under the `always`
    /// fsync policy (remote write: the client learns of a refusal and may retry).
    pub fn appender(&self) -> Appender<'_> {
        Appender {
            storage: self,
            mode: Mode::AllOrNothing,
            durable: true,
            batch: Vec::new(),
        }
    }

    /// An appender whose commit stores every valid sample and skips the invalid ones,
    /// reporting them in [`AppendOutcome::skipped`], and is durable on return under the
    /// `always` fsync policy: remote write, whose sender does not retry a refusal, so one
    /// out-of-order sample must not lose the rest of its request.
    pub fn partial_appender(&self) -> Appender<'_> {
        Appender {
            mode: Mode::SkipInvalid,
            ..self.appender()
        }
    }

    /// The stored label sets made of these pairs (each sorted by name, without empty
    /// values), where the head has them, as Prometheus's appenders take a series
    /// reference: a writer that finds its series here skips building and validating a new
    /// label set, and the head keeps one copy of it.
    /// Names and values are bytes: equal to a stored set's, they are known to be UTF-8.
    pub fn known_label_sets(&self, pair_sets: &[&[(&[u8], &[u8])]]) -> Vec<Option<Arc<Labels>>> {
        self.head.find_label_sets(pair_sets)
    }

    /// The head's own copies of these label sets, where it has the series (see
    /// [`Storage::known_label_sets`]).
    pub fn stored_label_sets(&self, sets: &[Arc<Labels>]) -> Vec<Option<Arc<Labels>>> {
        self.head.stored_label_sets(sets)
    }

    /// An appender whose commit skips (and counts) out-of-bounds and out-of-order samples
    /// and keeps the rest, as a scrape does: one bad timestamp must not lose a whole
    /// target's scrape. Its samples reach stable storage with the next background sync
    /// (every `wal.fsync_interval`), not with an fsync of their own.
    pub fn lenient_appender(&self) -> Appender<'_> {
        Appender {
            mode: Mode::SkipInvalid,
            durable: false,
            ..self.appender()
        }
    }
}

impl Appender<'_> {
    /// Adds one sample; consecutive samples of one label set make one series entry.
    pub fn add(&mut self, labels: &Arc<Labels>, sample: Sample) {
        match self.batch.last_mut() {
            Some(last) if Arc::ptr_eq(&last.labels, labels) || last.labels == *labels => {
                last.samples.push(sample)
            }
            _ => self.batch.push(SeriesSamples {
                labels: labels.clone(),
                samples: vec![sample],
                histograms: Vec::new(),
            }),
        }
    }

    /// Adds one native histogram sample; consecutive samples of one label set make one
    /// series entry. The histogram should have passed [`crate::model::Histogram::validate`].
    pub fn add_histogram(&mut self, labels: &Arc<Labels>, sample: HistogramSample) {
        match self.batch.last_mut() {
            Some(last) if Arc::ptr_eq(&last.labels, labels) || last.labels == *labels => {
                last.histograms.push(sample)
            }
            _ => self.batch.push(SeriesSamples {
                labels: labels.clone(),
                samples: Vec::new(),
                histograms: vec![sample],
            }),
        }
    }

    /// Adds a series' samples.
    pub fn add_series(&mut self, series: SeriesSamples) {
        self.batch.push(series);
    }

    /// Samples (floats and histograms) collected so far.
    pub fn len(&self) -> usize {
        self.batch
            .iter()
            .map(|s| s.samples.len() + s.histograms.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores what was collected. Blocks on the WAL (and on fsync under the `always`
    /// policy): call it from a blocking-capable thread, never an async worker.
    pub fn commit(self) -> Result<AppendOutcome, AppendError> {
        self.storage.commit(&self.batch, self.mode, self.durable)
    }

    /// Drops what was collected; nothing was stored.
    pub fn rollback(self) {}
}

impl Extend<SeriesSamples> for Appender<'_> {
    fn extend<I: IntoIterator<Item = SeriesSamples>>(&mut self, iter: I) {
        self.batch.extend(iter);
    }
}

impl Storage {
    fn commit(
        &self,
        batch: &[SeriesSamples],
        mode: Mode,
        durable: bool,
    ) -> Result<AppendOutcome, AppendError> {
        let (seq, mut outcome, skipped) = {
            let min_valid = read(&self.min_valid_time);
            let (checked, skipped) = self.validate(*min_valid, batch, mode).inspect_err(|e| {
                let n = batch
                    .iter()
                    .map(|s| (s.samples.len() + s.histograms.len()) as u64)
                    .sum();
                self.metrics
                    .samples_rejected
                    .with_label_values(&[e.reason()])
                    .inc_by(n);
            })?;
            if checked.is_empty() {
                return Ok(AppendOutcome {
                    skipped,
                    ..AppendOutcome::default()
                });
            }
            let (seq, outcome) = self.store(&checked, durable)?;
            (seq, outcome, skipped)
        };
        outcome.skipped = skipped;
        // A scrape has no client waiting for an acknowledgement: its samples are made
        // durable by the background sync within `fsync_interval` instead of one fsync each.
        if durable {
            self.wal()?.sync(seq)?;
        }
        Ok(outcome)
    }

    /// Logs and applies validated samples; returns the WAL sequence number to sync to.
    /// A `durable` write's fsync starts as soon as it is logged, and runs while its samples
    /// are applied.
    fn store(
        &self,
        checked: &[Checked<'_>],
        durable: bool,
    ) -> Result<(u64, AppendOutcome), AppendError> {
        // Only series the head lacks take the index's write lock. They are created
        // before their record is logged; until their samples arrive they are marked
        // pending, so truncation leaves them be.
        let mut ids: Vec<(SeriesId, bool)> = Vec::with_capacity(checked.len());
        let missing: Vec<&Arc<Labels>> = checked
            .iter()
            .filter(|c| c.id.is_none())
            .map(|c| c.labels)
            .collect();
        let mut created = self.head.get_or_create(&missing).into_iter();
        for c in checked {
            match c.id {
                Some(id) => ids.push((id, false)),
                None => ids.push(created.next().unwrap_or_default()),
            }
        }
        let mut record = WalRecord::default();
        for (c, (id, created)) in checked.iter().zip(&ids) {
            if *created {
                record.new_series.push((*id, c.labels.as_ref().clone()));
            }
            record.samples.extend(c.samples.iter().map(|s| WalSample {
                series: *id,
                timestamp_ms: s.timestamp_ms,
                value: s.value,
                start_timestamp_ms: s.start_timestamp_ms,
            }));
            record
                .histograms
                .extend(c.histograms.iter().map(|h| WalHistogram {
                    series: *id,
                    timestamp_ms: h.timestamp_ms,
                    start_timestamp_ms: h.start_timestamp_ms,
                    histogram: h.histogram.clone(),
                }));
        }
        let mut seq = match self.wal().and_then(|wal| wal.append(&record)) {
            Ok(seq) => seq,
            Err(e) => {
                let created: Vec<SeriesId> = ids.iter().filter(|c| c.1).map(|c| c.0).collect();
                self.head.forget(&created);
                return Err(e.into());
            }
        };
        if durable && let Ok(wal) = self.wal() {
            wal.begin_sync(seq);
        }
        let (mut added, orphans) = self.head.append(&record);
        if !orphans.samples.is_empty() || !orphans.histograms.is_empty() {
            // A cut emptied and removed these series after validation found them (all
            // their samples were in the window it cut): create them again, log their
            // labels, and apply their samples.
            let labels: HashMap<SeriesId, &Arc<Labels>> = checked
                .iter()
                .zip(&ids)
                .map(|(c, (id, _))| (*id, c.labels))
                .collect();
            let (again, extra) = self.recreate(&labels, orphans)?;
            seq = again;
            added += extra;
        }
        self.metrics.samples_appended.inc_by(added as u64);
        self.update_head_metrics();
        Ok((
            seq,
            AppendOutcome {
                samples_added: added,
                series_created: record.new_series.len(),
                skipped: Skipped::default(),
            },
        ))
    }

    /// Creates the series of `orphans` again (see [`Storage::commit`]), logs them and their
    /// samples, and applies the samples. Returns the record's WAL sequence number and the
    /// samples added.
    fn recreate(
        &self,
        labels: &HashMap<SeriesId, &Arc<Labels>>,
        orphans: WalRecord,
    ) -> Result<(u64, usize), AppendError> {
        let mut ids: Vec<SeriesId> = orphans
            .samples
            .iter()
            .map(|s| s.series)
            .chain(orphans.histograms.iter().map(|h| h.series))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let sets: Vec<&Arc<Labels>> = ids
            .iter()
            .filter_map(|id| labels.get(id).copied())
            .collect();
        let mut record = WalRecord::default();
        let mut renamed: HashMap<SeriesId, SeriesId> = HashMap::new();
        for ((old, set), (new, _)) in ids.iter().zip(&sets).zip(self.head.get_or_create(&sets)) {
            record.new_series.push((new, set.as_ref().clone()));
            renamed.insert(*old, new);
        }
        record.samples = orphans
            .samples
            .into_iter()
            .filter_map(|s| {
                let series = *renamed.get(&s.series)?;
                Some(WalSample { series, ..s })
            })
            .collect();
        record.histograms = orphans
            .histograms
            .into_iter()
            .filter_map(|h| {
                let series = *renamed.get(&h.series)?;
                Some(WalHistogram { series, ..h })
            })
            .collect();
        let seq = self.wal()?.append(&record)?;
        Ok((seq, self.head.append(&record).0))
    }

    /// Checks every sample against the head (stripe by stripe, no head-wide lock) and
    /// returns the series with the samples to keep.
    fn validate<'b>(
        &self,
        min_valid: i64,
        batch: &'b [SeriesSamples],
        mode: Mode,
    ) -> Result<(Vec<Checked<'b>>, Skipped), AppendError> {
        let window = self.options.config.out_of_order_time_window.as_millis_i64();
        let label_sets: Vec<&Labels> = batch.iter().map(|s| s.labels.as_ref()).collect();
        let ids = self.head.lookup(&label_sets);
        let newest_of = self.head.newest_of(&ids);
        let mut out = Vec::with_capacity(batch.len());
        let mut skipped = Skipped::default();
        let mut skipped_histograms = 0;
        for ((series, id), newest) in batch.iter().zip(ids).zip(newest_of) {
            if series.samples.is_empty() && series.histograms.is_empty() {
                continue;
            }
            let problem = |timestamp_ms: i64| {
                if timestamp_ms < min_valid {
                    Some(AppendError::OutOfBounds {
                        series: series.labels.to_string(),
                        timestamp_ms,
                        min_valid,
                    })
                } else {
                    newest
                        .filter(|n| timestamp_ms < n.saturating_sub(window))
                        .map(|newest| AppendError::OutOfOrder {
                            series: series.labels.to_string(),
                            timestamp_ms,
                            newest,
                        })
                }
            };
            let valid = |timestamp_ms: i64| {
                timestamp_ms >= min_valid
                    && newest.is_none_or(|n| timestamp_ms >= n.saturating_sub(window))
            };
            let mut keep = |timestamp_ms: i64| -> Result<bool, AppendError> {
                match (problem(timestamp_ms), mode) {
                    (None, _) => Ok(true),
                    (Some(problem), Mode::AllOrNothing) => Err(problem),
                    (Some(problem), Mode::SkipInvalid) => {
                        self.metrics
                            .samples_rejected
                            .with_label_values(&[problem.reason()])
                            .inc();
                        skipped.add(&problem);
                        Ok(false)
                    }
                }
            };
            // The common case, every sample valid, borrows the batch's samples.
            let samples = if series.samples.iter().all(|s| valid(s.timestamp_ms)) {
                Cow::Borrowed(series.samples.as_slice())
            } else {
                let mut kept = Vec::with_capacity(series.samples.len());
                for sample in &series.samples {
                    if keep(sample.timestamp_ms)? {
                        kept.push(*sample);
                    }
                }
                Cow::Owned(kept)
            };
            let histograms = if series.histograms.iter().all(|h| valid(h.timestamp_ms)) {
                Cow::Borrowed(series.histograms.as_slice())
            } else {
                let mut kept = Vec::with_capacity(series.histograms.len());
                for h in &series.histograms {
                    if keep(h.timestamp_ms)? {
                        kept.push(h.clone());
                    }
                }
                skipped_histograms += series.histograms.len() - kept.len();
                Cow::Owned(kept)
            };
            if !samples.is_empty() || !histograms.is_empty() {
                out.push(Checked {
                    labels: &series.labels,
                    id,
                    samples,
                    histograms,
                });
            }
        }
        skipped.histograms = skipped_histograms;
        Ok((out, skipped))
    }
}

/// One series of a write, with the samples validation kept.
struct Checked<'b> {
    labels: &'b Arc<Labels>,
    /// The series' id when the head has it.
    id: Option<SeriesId>,
    samples: Cow<'b, [Sample]>,
    histograms: Cow<'b, [HistogramSample]>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{PromDuration, StorageConfig};
    use crate::metrics::StorageMetrics;
    use crate::storage::StorageOptions;

    async fn storage(dir: &std::path::Path) -> Arc<Storage> {
        let options = StorageOptions {
            data_dir: dir.to_path_buf(),
            config: StorageConfig {
                block_duration: PromDuration::from_secs(60),
                out_of_order_time_window: PromDuration::from_secs(0),
                ..StorageConfig::default()
            },
            retention: Duration::ZERO,
            retention_size: 0,
            retention_downsampled: [Duration::ZERO; 2],
        };
        Storage::open(options, StorageMetrics::unregistered())
            .await
            .unwrap()
    }

    fn labels(job: &str) -> Arc<Labels> {
        Arc::new(Labels::from_trusted(vec![
            ("__name__".into(), "m".into()),
            ("job".into(), job.into()),
        ]))
    }

    #[tokio::test]
    async fn all_or_nothing_refuses_a_whole_commit_and_lenient_keeps_the_good_samples() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage(dir.path()).await;
        let (a, b) = (labels("a"), labels("b"));
        let mut first = storage.appender();
        first.add(&a, Sample::new(10_000, 1.0));
        first.add(&a, Sample::new(20_000, 2.0));
        let outcome = first.commit().unwrap();
        assert_eq!((outcome.samples_added, outcome.series_created), (2, 1));

        // Out of order for `a` (older than its newest, no out-of-order window).
        let batch = |app: &mut Appender<'_>| {
            app.add(&b, Sample::new(15_000, 5.0));
            app.add(&a, Sample::new(15_000, 9.0));
            app.add(&a, Sample::new(30_000, 3.0));
        };
        let mut strict = storage.appender();
        batch(&mut strict);
        let error = strict.commit().unwrap_err();
        assert!(
            matches!(error, AppendError::OutOfOrder { newest: 20_000, .. }),
            "{error}"
        );
        assert_eq!(
            storage.head_stats().num_samples,
            2,
            "nothing of the refused commit"
        );
        assert_eq!(storage.head_stats().num_series, 1);

        let mut lenient = storage.lenient_appender();
        batch(&mut lenient);
        let outcome = lenient.commit().unwrap();
        assert_eq!((outcome.samples_added, outcome.series_created), (2, 1));
        assert_eq!(storage.head_stats().num_samples, 4);
        assert_eq!(
            (outcome.skipped.out_of_order, outcome.skipped.out_of_bounds),
            (1, 0)
        );
        let first = outcome.skipped.first.unwrap_or_default();
        assert!(
            first.contains("out of order") && first.contains("15000"),
            "{first}"
        );

        // The partial appender keeps the valid samples and reports the rest, as lenient
        // does, and is durable on return.
        let mut partial = storage.partial_appender();
        partial.add(&a, Sample::new(25_000, 7.0));
        partial.add(&b, Sample::new(50_000, 8.0));
        let outcome = partial.commit().unwrap();
        assert_eq!(outcome.samples_added, 1);
        assert_eq!(outcome.skipped.total(), 1);
        assert_eq!(storage.head_stats().num_samples, 5);

        let mut dropped = storage.appender();
        dropped.add(&a, Sample::new(40_000, 4.0));
        dropped.rollback();
        assert_eq!(storage.head_stats().num_samples, 5);
    }

    #[tokio::test]
    async fn samples_of_a_cut_window_are_out_of_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage(dir.path()).await;
        let a = labels("a");
        let mut app = storage.appender();
        app.add(&a, Sample::new(10_000, 1.0));
        app.commit().unwrap();
        assert_eq!(storage.flush(true).await.unwrap(), 1);
        let mut late = storage.appender();
        late.add(&a, Sample::new(59_999, 1.0));
        let error = late.commit().unwrap_err();
        assert!(
            matches!(
                error,
                AppendError::OutOfBounds {
                    min_valid: 60_000,
                    ..
                }
            ),
            "{error}"
        );
        let mut next = storage.lenient_appender();
        next.add(&a, Sample::new(59_999, 1.0));
        next.add(&a, Sample::new(60_000, 2.0));
        assert_eq!(next.commit().unwrap().samples_added, 1);
    }

    /// A cut can empty and remove a series between a commit's validation (which found it)
    /// and the commit's apply: the commit creates it again, logs its labels with the
    /// samples, and a restart replays them.
    #[tokio::test]
    async fn a_series_removed_between_validation_and_apply_is_created_again_and_logged() {
        let dir = tempfile::tempdir().unwrap();
        let a = labels("a");
        {
            let storage = storage(dir.path()).await;
            let mut first = storage.appender();
            first.add(&a, Sample::new(10_000, 1.0));
            first.commit().unwrap();
            let batch = vec![SeriesSamples {
                labels: a.clone(),
                samples: vec![Sample::new(70_000, 2.0)],
                histograms: Vec::new(),
            }];
            let (checked, _) = storage.validate(0, &batch, Mode::AllOrNothing).unwrap();
            assert!(checked[0].id.is_some(), "validation found the series");
            // What a cut of [0, 60 s) does to the head meanwhile.
            storage.head.truncate_before(60_000);
            assert_eq!(storage.head_stats().num_series, 0);
            // ... and its checkpoint, which drops the series' record with its old samples.
            storage
                .wal()
                .unwrap()
                .checkpoint_closed_segments(60_000, &|_| false)
                .unwrap();
            let (_, outcome) = storage.store(&checked, false).unwrap();
            assert_eq!((outcome.samples_added, outcome.series_created), (1, 0));
            assert_eq!(storage.head_stats().num_samples, 1);
            assert_eq!(storage.head_stats().num_series, 1);
            storage.close().unwrap();
        }
        // The WAL has the series record for the second sample: the replay finds its series.
        let storage = storage(dir.path()).await;
        let reader = storage.head_reader();
        let ids = reader.series_ids(crate::storage::SeriesScope::All);
        let samples = reader.read(&ids, 60_000, i64::MAX);
        assert_eq!(samples.columns.timestamps, vec![70_000]);
    }
}
