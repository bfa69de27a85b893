//! One target's scrape loop: fetch on a fixed, per-target offset in the interval, parse,
//! apply limits and `metric_relabel_configs`, write samples plus the report series (`up`,
//! `scrape_duration_seconds`, ...), and staleness markers for series that went away.

use std::collections::hash_map::Entry;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use tokio::sync::oneshot;

use crate::config::ScrapeConfig;
use crate::model::relabel::relabel;
use crate::model::{HistogramSample, Labels, METRIC_NAME_LABEL, Sample, SeriesSamples, stale_nan};
use crate::storage::Storage;
use crate::storage::exemplars::Exemplar;

use super::parser::{self, Exposition};
use super::protobuf;
use super::target::Target;
use crate::model::Metadata;

/// Maps and sets keyed by a label set's stable hash, which needs no second hashing.
type HashMap<K, V> = rustc_hash::FxHashMap<K, V>;
type HashSet<K> = rustc_hash::FxHashSet<K>;

/// The health of a target as `/api/v1/targets` reports it.
#[derive(Debug, Clone, Default)]
pub struct TargetStatus {
    /// "up", "down" or "unknown" (not scraped yet).
    pub health: &'static str,
    pub last_error: String,
    pub last_scrape: Option<SystemTime>,
    pub last_scrape_duration: f64,
    /// Metadata from the last successful scrape, for the metadata APIs.
    pub metadata: Vec<Metadata>,
}

/// Per-scrape-config settings a loop needs.
#[derive(Clone)]
pub struct LoopSettings {
    pub config: Arc<ScrapeConfig>,
    pub client: reqwest::Client,
    /// Authorization header value, if any.
    pub auth_header: Option<String>,
    /// The `Accept` header: the config's `scrape_protocols`, weighed.
    pub accept: String,
    /// What the config does with histograms.
    pub histograms: protobuf::Options,
}

/// A response body in the format its Content-Type names.
enum Body {
    Text(String, parser::Format),
    Protobuf(Vec<u8>),
}

/// How a loop ends: with staleness markers for everything it wrote (the target is gone),
/// or silently (the same target continues in a new loop after a reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    MarkStale,
    Silent,
}

/// A running loop.
pub struct LoopHandle {
    pub target: Target,
    pub status: Arc<RwLock<TargetStatus>>,
    stop: Option<oneshot::Sender<StopMode>>,
    task: tokio::task::JoinHandle<()>,
}

impl LoopHandle {
    pub fn spawn(storage: Arc<Storage>, settings: LoopSettings, target: Target) -> LoopHandle {
        let status = Arc::new(RwLock::new(TargetStatus {
            health: "unknown",
            ..Default::default()
        }));
        let (stop_tx, stop_rx) = oneshot::channel();
        let scrape = ScrapeLoop {
            storage,
            settings,
            target: target.clone(),
            status: status.clone(),
            previous: HashMap::default(),
            cache: SeriesCache::default(),
        };
        let task = tokio::spawn(scrape.run(stop_rx));
        LoopHandle {
            target,
            status,
            stop: Some(stop_tx),
            task,
        }
    }

    /// Stops the loop and waits until its last write is done.
    pub async fn stop(mut self, mode: StopMode) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(mode);
        }
        if let Err(e) = (&mut self.task).await {
            tracing::error!(error = %e, "scrape loop ended abnormally");
        }
    }
}

impl Drop for LoopHandle {
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

/// Why a scrape failed; the message becomes the target's `lastError`.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("{0:#}")]
    Fetch(anyhow::Error),
    #[error("{0}")]
    Parse(String),
    #[error("sample limit exceeded: {got} samples, limit {limit}")]
    SampleLimit { got: usize, limit: usize },
    #[error("{0}")]
    LabelLimit(String),
    #[error("invalid series: {0}")]
    InvalidSeries(String),
    /// The samples could not be stored (for example the disk is full), as Prometheus reports
    /// an appender error for the target.
    #[error("storing the scraped samples: {0}")]
    Store(String),
}

/// What earlier scrapes of this target made of each exposed series, keyed by the series
/// as exposed (its name and label set as the target wrote them, byte for byte, so a known
/// series' labels are not even parsed): the final label set, or None when
/// `metric_relabel_configs` dropped it. Saves merging, relabeling, validating and sorting
/// labels again on every scrape, as Prometheus's scrape cache does.
#[derive(Default)]
pub(super) struct SeriesCache {
    /// Keyed by what the target exposes: a seeded hasher, resistant to crafted collisions.
    entries: std::collections::HashMap<String, CachedSeries, ahash::RandomState>,
    generation: u64,
    /// Entries whose label set is still the one this loop built, not the head's copy.
    uncanonical: Vec<String>,
}

struct CachedSeries {
    labels: Option<(Arc<Labels>, u64)>,
    seen: u64,
}

impl SeriesCache {
    /// Swaps label sets this loop built for the head's own copies once the head has the
    /// series: the cache then holds no second copy of the strings, and the head finds the
    /// series by a pointer comparison instead of comparing every label.
    fn adopt_stored_label_sets(&mut self, storage: &Storage) {
        if self.uncanonical.is_empty() {
            return;
        }
        let pending: Vec<(String, Arc<Labels>)> = std::mem::take(&mut self.uncanonical)
            .into_iter()
            .filter_map(|k| {
                let labels = self.entries.get(&k)?.labels.as_ref()?.0.clone();
                Some((k, labels))
            })
            .collect();
        let sets: Vec<Arc<Labels>> = pending.iter().map(|(_, l)| l.clone()).collect();
        for ((key, _), stored) in pending.into_iter().zip(storage.stored_label_sets(&sets)) {
            match (stored, self.entries.get_mut(&key)) {
                (
                    Some(copy),
                    Some(CachedSeries {
                        labels: Some((labels, _)),
                        ..
                    }),
                ) => *labels = copy,
                (None, Some(_)) => self.uncanonical.push(key),
                _ => {}
            }
        }
    }

    /// Forgets series not exposed in the last two scrapes, so churn does not grow it.
    fn evict_stale(&mut self) {
        let keep_after = self.generation.saturating_sub(1);
        self.entries.retain(|_, e| e.seen >= keep_after);
        self.generation += 1;
    }
}

struct ScrapeLoop {
    storage: Arc<Storage>,
    settings: LoopSettings,
    target: Target,
    status: Arc<RwLock<TargetStatus>>,
    /// Series written by the last scrape without explicit timestamps, by label hash;
    /// those that do not come back get a staleness marker.
    previous: HashMap<u64, Arc<Labels>>,
    cache: SeriesCache,
}

/// What one scrape produced, ready to append.
struct ScrapeOutput {
    series: Vec<SeriesSamples>,
    /// `series[i].labels.stable_hash()`, computed once per series.
    hashes: Vec<u64>,
    scraped: usize,
    post_relabel: usize,
    metadata: Vec<Metadata>,
    /// The OpenMetrics exemplars of kept samples, with their series.
    exemplars: Vec<(Arc<Labels>, Exemplar)>,
}

impl ScrapeLoop {
    async fn run(mut self, mut stop: oneshot::Receiver<StopMode>) {
        let interval = self.target.interval;
        // A stable offset per target spreads the scrapes of a pool over the interval.
        let offset = Duration::from_millis(self.target.key() % interval.as_millis().max(1) as u64);
        let first = tokio::time::Instant::now() + offset;
        let mut ticker = tokio::time::interval_at(first, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                mode = &mut stop => {
                    if mode.unwrap_or(StopMode::MarkStale) == StopMode::MarkStale {
                        self.mark_all_stale().await;
                    }
                    return;
                }
                _ = ticker.tick() => self.scrape_and_store().await,
            }
        }
    }

    async fn scrape_and_store(&mut self) {
        let started = Instant::now();
        let wall = SystemTime::now();
        let now_ms = crate::model::now_ms();
        let result = self.scrape(now_ms).await;
        let duration = started.elapsed().as_secs_f64();
        let mut exemplars = Vec::new();
        let (mut batch, report, current, error) = match result {
            Ok(mut output) => {
                exemplars = std::mem::take(&mut output.exemplars);
                let mut current = HashSet::default();
                let mut added = 0;
                for (series, hash) in output.series.iter().zip(&output.hashes) {
                    let now = series.samples.iter().all(|x| x.timestamp_ms == now_ms)
                        && series.histograms.iter().all(|h| h.timestamp_ms == now_ms);
                    if !now || !current.insert(*hash) {
                        continue;
                    }
                    // Kept up to date with the series cache, which moves to the head's
                    // own copy of a label set, so no older copy stays alive here.
                    match self.previous.entry(*hash) {
                        Entry::Occupied(mut e) => {
                            if !Arc::ptr_eq(e.get(), &series.labels) {
                                e.insert(series.labels.clone());
                            }
                        }
                        Entry::Vacant(e) => {
                            added += 1;
                            e.insert(series.labels.clone());
                        }
                    }
                }
                let report = Report {
                    up: 1.0,
                    duration,
                    scraped: output.scraped,
                    post_relabel: output.post_relabel,
                    added,
                };
                self.set_metadata(output.metadata);
                (output.series, report, current, None)
            }
            Err(e) => (
                Vec::new(),
                Report::down(duration),
                HashSet::default(),
                Some(e),
            ),
        };
        batch.extend(self.stale_markers(&current, now_ms));
        batch.extend(self.report_series(&report, now_ms));
        let stored = self.append(batch).await;
        if stored.is_ok() {
            // In memory, bounded: a short lock, no I/O. Out-of-order ones (the target
            // repeats an exemplar with an older time) are refused by the store.
            for (labels, exemplar) in exemplars {
                let _ = self.storage.exemplars().add(&labels, exemplar);
            }
        }
        self.previous.retain(|h, _| current.contains(h));
        self.update_status(
            wall,
            duration,
            error.or(stored.err().map(ScrapeError::Store)),
        );
    }

    async fn scrape(&mut self, now_ms: i64) -> Result<ScrapeOutput, ScrapeError> {
        let body = self.fetch().await.map_err(ScrapeError::Fetch)?;
        let entries = &self.cache.entries;
        // The text a sample's `series` range points into: the body itself, or the keys
        // the protobuf parser writes.
        let (body, exposition) = match body {
            // Converting classic histograms needs every bucket's labels: no cached series
            // is skipped.
            Body::Text(text, format) if self.settings.histograms.nhcb => {
                let exposition =
                    parser::parse(&text, format).map_err(|e| ScrapeError::Parse(e.to_string()))?;
                super::nhcb::convert(&text, exposition, self.settings.histograms.classic)
            }
            Body::Text(text, format) => {
                let exposition =
                    parser::parse_with(&text, format, &mut |series| entries.contains_key(series))
                        .map_err(|e| ScrapeError::Parse(e.to_string()))?;
                (text, exposition)
            }
            Body::Protobuf(bytes) => protobuf::parse(&bytes, self.settings.histograms)
                .map_err(|e| ScrapeError::Parse(e.to_string()))?,
        };
        let output = process(
            &self.target,
            &self.settings.config,
            &body,
            exposition,
            now_ms,
            &mut self.cache,
        );
        self.cache.evict_stale();
        self.cache.adopt_stored_label_sets(&self.storage);
        output
    }

    async fn fetch(&self) -> anyhow::Result<Body> {
        let mut request = self
            .settings
            .client
            .get(&self.target.url)
            .header(reqwest::header::ACCEPT, &self.settings.accept)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                self.target.timeout.as_secs_f64().to_string(),
            )
            .timeout(self.target.timeout);
        if let Some(auth) = &self.settings.auth_header {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        let mut response = request.send().await.context("request failed")?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!("server returned HTTP status {status}");
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let limit = self.settings.config.body_size_limit.map(|b| b.0 as usize);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.context("reading body")? {
            body.extend_from_slice(&chunk);
            if let Some(limit) = limit
                && body.len() > limit
            {
                anyhow::bail!("body size limit exceeded: more than {limit} bytes");
            }
        }
        if crate::prompb::exposition::is_content_type(&content_type) {
            return Ok(Body::Protobuf(body));
        }
        let format = parser::format_from_content_type(&content_type);
        let text = String::from_utf8(body).context("body is not valid UTF-8")?;
        Ok(Body::Text(text, format))
    }

    fn stale_markers(&self, current: &HashSet<u64>, now_ms: i64) -> Vec<SeriesSamples> {
        self.previous
            .iter()
            .filter(|(h, _)| !current.contains(h))
            .map(|(_, labels)| SeriesSamples {
                labels: labels.clone(),
                samples: vec![Sample::new(now_ms, stale_nan())],
                histograms: Vec::new(),
            })
            .collect()
    }

    fn report_series(&self, report: &Report, now_ms: i64) -> Vec<SeriesSamples> {
        report
            .values()
            .into_iter()
            .filter_map(|(name, value)| self.own_series(name, value, now_ms))
            .collect()
    }

    fn own_series(&self, name: &str, value: f64, now_ms: i64) -> Option<SeriesSamples> {
        let labels = self.target.labels.with(METRIC_NAME_LABEL, name);
        Some(SeriesSamples {
            labels: Arc::new(labels),
            samples: vec![Sample::new(now_ms, value)],
            histograms: Vec::new(),
        })
    }

    /// The target went away: everything it wrote, report series included, goes stale.
    async fn mark_all_stale(&mut self) {
        let now_ms = crate::model::now_ms();
        let mut batch = self.stale_markers(&HashSet::default(), now_ms);
        batch.extend(
            Report::NAMES
                .iter()
                .filter_map(|name| self.own_series(name, stale_nan(), now_ms)),
        );
        let _ = self.append(batch).await;
        self.previous.clear();
    }

    /// Stores `batch`; the error, if it could not be, is the target's to report.
    async fn append(&self, batch: Vec<SeriesSamples>) -> Result<(), String> {
        let storage = self.storage.clone();
        let commit = move || {
            let mut appender = storage.lenient_appender();
            appender.extend(batch);
            appender.commit()
        };
        let error = match tokio::task::spawn_blocking(commit).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => format!("{e:#}"),
            Err(e) => format!("the append task failed: {e}"),
        };
        tracing::warn!(target = %self.target.url, error, "storing scrape failed");
        Err(error)
    }

    fn set_metadata(&self, metadata: Vec<Metadata>) {
        if let Ok(mut status) = self.status.write() {
            status.metadata = metadata;
        }
    }

    fn update_status(&self, wall: SystemTime, duration: f64, error: Option<ScrapeError>) {
        if let Some(e) = &error {
            tracing::debug!(target = %self.target.url, error = %e, "scrape failed");
        }
        if let Ok(mut status) = self.status.write() {
            status.health = if error.is_none() { "up" } else { "down" };
            status.last_error = error.map(|e| e.to_string()).unwrap_or_default();
            status.last_scrape = Some(wall);
            status.last_scrape_duration = duration;
        }
    }
}

/// The report series of one scrape.
struct Report {
    up: f64,
    duration: f64,
    scraped: usize,
    post_relabel: usize,
    added: usize,
}

impl Report {
    const NAMES: [&'static str; 5] = [
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ];

    fn down(duration: f64) -> Report {
        Report {
            up: 0.0,
            duration,
            scraped: 0,
            post_relabel: 0,
            added: 0,
        }
    }

    fn values(&self) -> [(&'static str, f64); 5] {
        [
            (Self::NAMES[0], self.up),
            (Self::NAMES[1], self.duration),
            (Self::NAMES[2], self.scraped as f64),
            (Self::NAMES[3], self.post_relabel as f64),
            (Self::NAMES[4], self.added as f64),
        ]
    }
}

/// Turns parsed samples into series to store: target labels, `metric_relabel_configs`,
/// then the limits. Any limit breach fails the whole scrape, so nothing of it is stored.
/// Series seen before come from `cache` without that work.
fn process(
    target: &Target,
    config: &ScrapeConfig,
    body: &str,
    exposition: Exposition,
    now_ms: i64,
    cache: &mut SeriesCache,
) -> Result<ScrapeOutput, ScrapeError> {
    let scraped = exposition.samples.len();
    let mut series = Vec::with_capacity(scraped);
    let mut hashes = Vec::with_capacity(scraped);
    let mut exemplars = Vec::new();
    let generation = cache.generation;
    for sample in exposition.samples {
        let text = body.get(sample.series.clone()).unwrap_or_default();
        let final_labels = match cache.entries.get_mut(text) {
            Some(entry) => {
                entry.seen = generation;
                entry.labels.clone()
            }
            // The parser skips the labels only of series the cache has.
            None if sample.known => continue,
            None => {
                let key = text.to_string();
                let labels = final_labels(target, config, sample.name, sample.labels)?;
                let labels = labels.map(|l| {
                    let h = l.stable_hash();
                    (Arc::new(l), h)
                });
                if labels.is_some() {
                    cache.uncanonical.push(key.clone());
                }
                cache.entries.insert(
                    key,
                    CachedSeries {
                        labels: labels.clone(),
                        seen: generation,
                    },
                );
                labels
            }
        };
        let Some((labels, hash)) = final_labels else {
            continue;
        };
        let timestamp_ms = match (config.honor_timestamps, sample.timestamp_ms) {
            (true, Some(ts)) => ts,
            _ => now_ms,
        };
        hashes.push(hash);
        if let Some(e) = sample.exemplar {
            exemplars.push((
                labels.clone(),
                Exemplar {
                    labels: e.labels.into_iter().collect(),
                    value: e.value,
                    // Without its own time, an exemplar takes its sample's, as in Prometheus.
                    timestamp_ms: e.timestamp_ms.unwrap_or(timestamp_ms),
                },
            ));
        }
        let start_timestamp_ms = sample.start_timestamp_ms.unwrap_or(0);
        series.push(match sample.histogram {
            Some(histogram) => SeriesSamples {
                labels,
                samples: Vec::new(),
                histograms: vec![HistogramSample {
                    timestamp_ms,
                    start_timestamp_ms,
                    histogram,
                }],
            },
            None => SeriesSamples {
                labels,
                samples: vec![Sample {
                    start_timestamp_ms,
                    ..Sample::new(timestamp_ms, sample.value)
                }],
                histograms: Vec::new(),
            },
        });
    }
    if config.sample_limit > 0 && series.len() > config.sample_limit {
        return Err(ScrapeError::SampleLimit {
            got: series.len(),
            limit: config.sample_limit,
        });
    }
    Ok(ScrapeOutput {
        post_relabel: series.len(),
        series,
        hashes,
        scraped,
        metadata: exposition.metadata,
        exemplars,
    })
}

/// A scraped series' final labels (None when metric relabeling drops it), checked
/// against the label limits.
fn final_labels(
    target: &Target,
    config: &ScrapeConfig,
    name: String,
    mut pairs: Vec<(String, String)>,
) -> Result<Option<Labels>, ScrapeError> {
    pairs.push((METRIC_NAME_LABEL.to_string(), name));
    let merged = merge_target_labels(target, pairs, config.honor_labels);
    let Some(relabeled) = relabel(merged, &config.metric_relabel_configs) else {
        return Ok(None);
    };
    check_label_limits(config, &relabeled)?;
    relabeled
        .check_series()
        .map(Some)
        .map_err(|e| ScrapeError::InvalidSeries(e.to_string()))
}

/// Adds the target's labels to a scraped sample. On a clash the target wins and the
/// scraped value is kept as `exported_<name>`, unless `honor_labels` keeps the scraped one.
fn merge_target_labels(
    target: &Target,
    mut pairs: Vec<(String, String)>,
    honor_labels: bool,
) -> Vec<(String, String)> {
    for (name, value) in target.labels.iter() {
        match pairs.iter().position(|(n, _)| n == name) {
            Some(_) if honor_labels => {}
            Some(i) => {
                let (_, scraped_value) = pairs.remove(i);
                if !scraped_value.is_empty() {
                    pairs.push((format!("exported_{name}"), scraped_value));
                }
                pairs.push((name.to_string(), value.to_string()));
            }
            None => pairs.push((name.to_string(), value.to_string())),
        }
    }
    pairs
}

fn check_label_limits(config: &ScrapeConfig, labels: &Labels) -> Result<(), ScrapeError> {
    let count = labels.len();
    let metric_name = |labels: &Labels| labels.metric_name().unwrap_or("").to_string();
    if config.label_limit > 0 && count > config.label_limit {
        return Err(ScrapeError::LabelLimit(format!(
            "label_limit exceeded (metric: {}, number of labels: {count}, limit: {})",
            metric_name(labels),
            config.label_limit
        )));
    }
    for (name, value) in labels.iter() {
        if config.label_name_length_limit > 0 && name.len() > config.label_name_length_limit {
            return Err(ScrapeError::LabelLimit(format!(
                "label_name_length_limit exceeded (metric: {}, label name: {name}, length: {}, limit: {})",
                metric_name(labels),
                name.len(),
                config.label_name_length_limit
            )));
        }
        if config.label_value_length_limit > 0 && value.len() > config.label_value_length_limit {
            return Err(ScrapeError::LabelLimit(format!(
                "label_value_length_limit exceeded (metric: {}, label name: {name}, value length: {}, limit: {})",
                metric_name(labels),
                value.len(),
                config.label_value_length_limit
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn setup(extra: &str) -> (Target, ScrapeConfig) {
        let yaml = format!(
            "scrape_configs:\n- job_name: j\n{extra}  static_configs:\n  - targets: ['h:1']\n"
        );
        let config = Config::from_yaml(&yaml, "t").unwrap();
        let sc = config.scrape_configs[0].clone();
        let (targets, _) = super::super::target::build_targets(&config, &sc, &sc.static_configs);
        (targets[0].clone(), sc)
    }

    fn parse(text: &str) -> Exposition {
        parser::parse(text, parser::Format::PrometheusText).unwrap()
    }

    #[test]
    fn target_labels_win_unless_honored() {
        let (target, sc) = setup("");
        let out = process(
            &target,
            &sc,
            "m{job=\"x\",a=\"1\"} 1\n",
            parse("m{job=\"x\",a=\"1\"} 1\n"),
            5,
            &mut SeriesCache::default(),
        )
        .unwrap();
        let labels = &out.series[0].labels;
        assert_eq!(labels.get("job"), Some("j"));
        assert_eq!(labels.get("exported_job"), Some("x"));
        assert_eq!(labels.get("instance"), Some("h:1"));
        let (target, sc) = setup("  honor_labels: true\n");
        let out = process(
            &target,
            &sc,
            "m{job=\"x\"} 1\n",
            parse("m{job=\"x\"} 1\n"),
            5,
            &mut SeriesCache::default(),
        )
        .unwrap();
        assert_eq!(out.series[0].labels.get("job"), Some("x"));
    }

    #[test]
    fn metric_relabeling_and_sample_limit() {
        let (target, sc) = setup(
            "  sample_limit: 1\n  metric_relabel_configs:\n  - source_labels: [__name__]\n    regex: drop_me\n    action: drop\n",
        );
        let out = process(
            &target,
            &sc,
            "drop_me 1\nkeep 2\n",
            parse("drop_me 1\nkeep 2\n"),
            5,
            &mut SeriesCache::default(),
        )
        .unwrap();
        assert_eq!((out.scraped, out.post_relabel), (2, 1));
        let err = process(
            &target,
            &sc,
            "a 1\nb 2\n",
            parse("a 1\nb 2\n"),
            5,
            &mut SeriesCache::default(),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("sample limit exceeded"));
    }

    #[test]
    fn label_limits_fail_the_scrape() {
        let (target, sc) = setup("  label_limit: 3\n  label_value_length_limit: 4\n");
        assert!(
            process(
                &target,
                &sc,
                "m{a=\"1\",b=\"2\"} 1\n",
                parse("m{a=\"1\",b=\"2\"} 1\n"),
                5,
                &mut SeriesCache::default()
            )
            .is_err()
        );
        let (target, sc) = setup("  label_value_length_limit: 4\n");
        let err = process(
            &target,
            &sc,
            "m{a=\"12345\"} 1\n",
            parse("m{a=\"12345\"} 1\n"),
            5,
            &mut SeriesCache::default(),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("label_value_length_limit"));
    }

    #[test]
    fn a_second_scrape_reads_cached_series_without_their_labels_and_gets_the_same_series() {
        let (target, sc) = setup(
            "  metric_relabel_configs:\n  - source_labels: [__name__]\n    regex: dropped\n    action: drop\n",
        );
        let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nm{job=\"x\",a=\"1\"} 2\ndropped 3\n";
        let mut cache = SeriesCache::default();
        let scrape = |cache: &mut SeriesCache| {
            let entries = &cache.entries;
            let exposition = parser::parse_with(body, parser::Format::PrometheusText, &mut |s| {
                entries.contains_key(s)
            })
            .unwrap();
            let known = exposition.samples.iter().filter(|s| s.known).count();
            let out = process(&target, &sc, body, exposition, 5, cache).unwrap();
            let labels: Vec<String> = out.series.iter().map(|s| s.labels.to_string()).collect();
            (known, labels, out.hashes)
        };
        let first = scrape(&mut cache);
        let second = scrape(&mut cache);
        assert_eq!((first.0, second.0), (0, 3));
        assert_eq!(first.1, second.1);
        assert_eq!(first.2, second.2);
        assert_eq!(
            first.1,
            [
                "h_bucket{instance=\"h:1\", job=\"j\", le=\"1.0\"}",
                "m{a=\"1\", exported_job=\"x\", instance=\"h:1\", job=\"j\"}"
            ]
        );
    }

    #[test]
    fn timestamps_are_honored_only_when_configured() {
        let (target, sc) = setup("");
        let out = process(
            &target,
            &sc,
            "m 1 1000\n",
            parse("m 1 1000\n"),
            5,
            &mut SeriesCache::default(),
        )
        .unwrap();
        assert_eq!(out.series[0].samples[0].timestamp_ms, 1000);
        let (target, sc) = setup("  honor_timestamps: false\n");
        let out = process(
            &target,
            &sc,
            "m 1 1000\n",
            parse("m 1 1000\n"),
            5,
            &mut SeriesCache::default(),
        )
        .unwrap();
        assert_eq!(out.series[0].samples[0].timestamp_ms, 5);
    }
}
