//! From discovered target groups to scrape targets: Prometheus's label population and
//! `relabel_configs`, producing the target's final labels, URL, interval and timeout.

use std::time::Duration;

use crate::config::{Config, ScrapeConfig};
use crate::discovery::TargetGroup;
use crate::model::relabel::relabel;
use crate::model::{Labels, LabelsBuilder, format_duration, parse_duration};

const ADDRESS: &str = "__address__";
const SCHEME: &str = "__scheme__";
const METRICS_PATH: &str = "__metrics_path__";
const SCRAPE_INTERVAL: &str = "__scrape_interval__";
const SCRAPE_TIMEOUT: &str = "__scrape_timeout__";
const PARAM_PREFIX: &str = "__param_";

/// A target that will be scraped.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Final labels (job, instance, ...), sorted, no `__` labels.
    pub labels: Labels,
    /// The labels discovery produced, before relabeling.
    pub discovered: Labels,
    pub url: String,
    pub job: String,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Target {
    /// Identity of a target within its pool: its labels and URL.
    pub fn key(&self) -> u64 {
        self.labels.with("\u{0}url", &self.url).stable_hash()
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name)
    }
}

/// A target relabeling dropped, kept for `/api/v1/targets`.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedTarget {
    pub discovered: Labels,
}

/// Turns every group's targets into active or dropped targets for one scrape config.
pub fn build_targets(
    config: &Config,
    sc: &ScrapeConfig,
    groups: &[TargetGroup],
) -> (Vec<Target>, Vec<DroppedTarget>) {
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    for group in groups {
        for address in &group.targets {
            let discovered = discovered_labels(config, sc, group, address);
            match finish_target(sc, &discovered) {
                Ok(Some(target)) => active.push(target),
                Ok(None) => dropped.push(DroppedTarget { discovered }),
                Err(e) => {
                    tracing::warn!(job = %sc.job_name, target = %address, error = %e, "dropping invalid target");
                    dropped.push(DroppedTarget { discovered });
                }
            }
        }
    }
    active.sort_by(|a, b| a.labels.cmp(&b.labels));
    active.dedup_by(|a, b| a.key() == b.key());
    (active, dropped)
}

/// The group's labels, the address, and the job's defaults for anything not already set.
fn discovered_labels(
    config: &Config,
    sc: &ScrapeConfig,
    group: &TargetGroup,
    address: &str,
) -> Labels {
    let mut labels = LabelsBuilder::new(
        (group.labels.iter())
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect(),
    );
    labels.set(ADDRESS, address.to_string());
    let defaults = [
        ("job", sc.job_name.clone()),
        (
            SCRAPE_INTERVAL,
            format_duration(config.scrape_interval_for(sc)),
        ),
        (
            SCRAPE_TIMEOUT,
            format_duration(config.scrape_timeout_for(sc)),
        ),
        (METRICS_PATH, sc.metrics_path.clone()),
        (SCHEME, sc.scheme.clone()),
    ];
    for (name, value) in defaults {
        if labels.get(name).is_empty() {
            labels.set(name, value);
        }
    }
    for (name, values) in &sc.params {
        let name = format!("{PARAM_PREFIX}{name}");
        if let Some(first) = values.first()
            && labels.get(&name).is_empty()
        {
            labels.set(&name, first.clone());
        }
    }
    labels.labels()
}

/// Applies `relabel_configs` and derives the URL and final labels; `None` when dropped.
fn finish_target(sc: &ScrapeConfig, discovered: &Labels) -> Result<Option<Target>, String> {
    let Some(relabeled) = relabel(discovered.to_pairs(), &sc.relabel_configs) else {
        return Ok(None);
    };
    let get = |name: &str| relabeled.get(name).unwrap_or_default().to_string();
    let address = get(ADDRESS);
    if address.is_empty() {
        return Ok(None);
    }
    if address.contains('/') {
        return Err(format!("{address:?} is not a valid hostname"));
    }
    let interval =
        parse_duration(&get(SCRAPE_INTERVAL)).map_err(|e| format!("__scrape_interval__: {e}"))?;
    let timeout =
        parse_duration(&get(SCRAPE_TIMEOUT)).map_err(|e| format!("__scrape_timeout__: {e}"))?;
    if interval.is_zero() || timeout > interval {
        return Err("scrape timeout must be positive and at most the interval".to_string());
    }
    let url = target_url(&get(SCHEME), &address, &get(METRICS_PATH), &relabeled);
    let mut labels: Labels = (relabeled.iter())
        .filter(|(n, _)| !n.starts_with("__"))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    if labels.get("instance").is_none() {
        labels = labels.with("instance", &address);
    }
    Ok(Some(Target {
        job: (labels.get("job").map(str::to_string)).unwrap_or_else(|| sc.job_name.clone()),
        labels,
        discovered: discovered.clone(),
        url,
        interval,
        timeout,
    }))
}

fn target_url(scheme: &str, address: &str, path: &str, labels: &Labels) -> String {
    let mut url = format!("{scheme}://{address}{path}");
    let params: Vec<(&str, &str)> = labels
        .iter()
        .filter_map(|(n, v)| n.strip_prefix(PARAM_PREFIX).map(|p| (p, v)))
        .collect();
    if !params.is_empty() {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        url.push(if path.contains('?') { '&' } else { '?' });
        url.push_str(&query);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        Config::from_yaml(yaml, "test").unwrap()
    }

    #[test]
    fn populates_defaults_and_instance() {
        let c = config(
            "scrape_configs:\n- job_name: node\n  params:\n    module: [cpu]\n  static_configs:\n  - targets: ['h1:9100']\n    labels: {env: prod}\n",
        );
        let sc = &c.scrape_configs[0];
        let (active, dropped) = build_targets(&c, sc, &sc.static_configs);
        assert!(dropped.is_empty());
        let t = &active[0];
        assert_eq!(t.url, "http://h1:9100/metrics?module=cpu");
        assert_eq!(
            t.labels.to_string(),
            r#"{env="prod", instance="h1:9100", job="node"}"#
        );
        assert_eq!(t.discovered.get("__scheme__"), Some("http"));
        assert_eq!(t.interval, Duration::from_secs(60));
    }

    #[test]
    fn relabeling_can_drop_and_rewrite() {
        let c = config(
            "scrape_configs:\n- job_name: j\n  relabel_configs:\n  - source_labels: [env]\n    regex: dev\n    action: drop\n  - source_labels: [__address__]\n    regex: '(.*):.*'\n    target_label: instance\n  - target_label: __metrics_path__\n    replacement: /probe\n  static_configs:\n  - targets: ['a:1']\n    labels: {env: dev}\n  - targets: ['b:2']\n    labels: {env: prod}\n",
        );
        let sc = &c.scrape_configs[0];
        let (active, dropped) = build_targets(&c, sc, &sc.static_configs);
        assert_eq!(dropped.len(), 1);
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].label("instance"), Some("b"));
        assert_eq!(active[0].url, "http://b:2/probe");
    }
}
