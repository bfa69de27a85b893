//! Scraping: one loop per target of every `static_configs` entry, parsing the exposition
//! formats and appending through the same storage path as remote write.
//!
//! This first cut covers static targets with `job`/`instance` labels and the `up` /
//! `scrape_duration_seconds` / `scrape_samples_scraped` series; service discovery,
//! relabeling and staleness markers build on it.

pub mod parser;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::config::{Config, ScrapeConfig};
use crate::model::{Labels, METRIC_NAME_LABEL, Sample, SeriesSamples};
use crate::storage::Storage;

const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

/// A target to scrape and the labels its samples get.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub job: String,
    pub instance: String,
    pub extra_labels: Vec<(String, String)>,
    pub interval: Duration,
    pub timeout: Duration,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
}

/// Every target named by the configuration's static configs.
pub fn targets(config: &Config) -> Vec<Target> {
    let mut out = Vec::new();
    for sc in &config.scrape_configs {
        for static_config in &sc.static_configs {
            for address in &static_config.targets {
                out.push(target(config, sc, address, static_config.labels.iter()));
            }
        }
    }
    out
}

fn target<'a>(
    config: &Config,
    sc: &ScrapeConfig,
    address: &str,
    labels: impl Iterator<Item = (&'a String, &'a String)>,
) -> Target {
    Target {
        url: format!("{}://{}{}", sc.scheme, address, sc.metrics_path),
        job: sc.job_name.clone(),
        instance: address.to_string(),
        extra_labels: labels.map(|(k, v)| (k.clone(), v.clone())).collect(),
        interval: config.scrape_interval_for(sc),
        timeout: config.scrape_timeout_for(sc),
        honor_labels: sc.honor_labels,
        honor_timestamps: sc.honor_timestamps,
    }
}

/// Starts one loop per target; abort the handles to stop them.
pub fn spawn_all(storage: Arc<Storage>, targets: Vec<Target>) -> Vec<tokio::task::JoinHandle<()>> {
    let client = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the scrape HTTP client; scraping disabled");
            return Vec::new();
        }
    };
    targets
        .into_iter()
        .map(|t| tokio::spawn(scrape_loop(storage.clone(), client.clone(), t)))
        .collect()
}

async fn scrape_loop(storage: Arc<Storage>, client: reqwest::Client, target: Target) {
    // A stable offset per target spreads scrapes over the interval.
    let offset = Duration::from_millis(
        crate::model::Labels::from_trusted(vec![("url".into(), target.url.clone())]).stable_hash()
            % target.interval.as_millis().max(1) as u64,
    );
    tokio::time::sleep(offset.min(Duration::from_secs(1))).await;
    let mut ticker = tokio::time::interval(target.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        let started = Instant::now();
        let now_ms = now_ms();
        let result = scrape_once(&client, &target).await;
        let duration = started.elapsed().as_secs_f64();
        let (mut batch, up, scraped) = match result {
            Ok(exposition) => {
                let n = exposition.samples.len();
                (to_series(&target, exposition, now_ms), 1.0, n)
            }
            Err(e) => {
                tracing::debug!(target = %target.url, error = format!("{e:#}"), "scrape failed");
                (Vec::new(), 0.0, 0)
            }
        };
        for (name, value) in [
            ("up", up),
            ("scrape_duration_seconds", duration),
            ("scrape_samples_scraped", scraped as f64),
        ] {
            if let Some(s) = synthetic(&target, name, value, now_ms) {
                batch.push(s);
            }
        }
        let storage = storage.clone();
        match tokio::task::spawn_blocking(move || storage.append(&batch)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(target = %target.url, error = %e, "storing scrape failed"),
            Err(e) => tracing::error!(error = %e, "scrape append task failed"),
        }
    }
}

async fn scrape_once(
    client: &reqwest::Client,
    target: &Target,
) -> anyhow::Result<parser::Exposition> {
    let response = client
        .get(&target.url)
        .header(reqwest::header::ACCEPT, ACCEPT)
        .timeout(target.timeout)
        .send()
        .await
        .context("request failed")?
        .error_for_status()
        .context("target answered with an error status")?;
    let format = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(parser::format_from_content_type)
        .unwrap_or(parser::Format::PrometheusText);
    let body = response.text().await.context("reading body")?;
    parser::parse(&body, format).context("parsing exposition")
}

fn to_series(target: &Target, exposition: parser::Exposition, now_ms: i64) -> Vec<SeriesSamples> {
    exposition
        .samples
        .into_iter()
        .filter_map(|s| {
            let mut pairs = s.labels;
            pairs.push((METRIC_NAME_LABEL.to_string(), s.name));
            let labels = target_labels(target, pairs)?;
            let timestamp_ms = match (target.honor_timestamps, s.timestamp_ms) {
                (true, Some(ts)) => ts,
                _ => now_ms,
            };
            Some(SeriesSamples {
                labels,
                samples: vec![Sample {
                    timestamp_ms,
                    value: s.value,
                }],
            })
        })
        .collect()
}

/// Adds `job`, `instance` and the static labels; on a clash the target's labels win unless
/// `honor_labels` is set (the scraped ones are then kept as `exported_<name>` otherwise).
fn target_labels(target: &Target, mut pairs: Vec<(String, String)>) -> Option<Labels> {
    let mut own = vec![
        ("job".to_string(), target.job.clone()),
        ("instance".to_string(), target.instance.clone()),
    ];
    own.extend(target.extra_labels.iter().cloned());
    for (name, value) in own {
        match pairs.iter().position(|(n, _)| *n == name) {
            Some(_) if target.honor_labels => {}
            Some(i) => {
                let (n, v) = pairs.remove(i);
                pairs.push((format!("exported_{n}"), v));
                pairs.push((name, value));
            }
            None => pairs.push((name, value)),
        }
    }
    Labels::new(pairs).ok()
}

fn synthetic(target: &Target, name: &str, value: f64, now_ms: i64) -> Option<SeriesSamples> {
    let labels = target_labels(
        target,
        vec![(METRIC_NAME_LABEL.to_string(), name.to_string())],
    )?;
    Some(SeriesSamples {
        labels,
        samples: vec![Sample {
            timestamp_ms: now_ms,
            value,
        }],
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
