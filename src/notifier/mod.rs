//! Sends alerts to Alertmanagers (API v2), as Prometheus's notifier does: external labels and
//! `alert_relabel_configs` applied, a bounded queue that drops the oldest alerts when full,
//! batches posted to every configured Alertmanager, and a failed batch retried with backoff
//! so a down Alertmanager never blocks rule evaluation.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use prometheus::{IntCounterVec, IntGauge};
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::{AlertmanagerConfig, Config, http};
use crate::discovery::{FileDiscoverer, TargetGroup};
use crate::model::Labels;
use crate::model::relabel::{RelabelConfig, relabel};

/// Prometheus's `--alertmanager.notification-queue-capacity` default.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// Most alerts in one POST, as in Prometheus.
const MAX_BATCH: usize = 256;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// An alert as Alertmanager receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub labels: Labels,
    pub annotations: Vec<(String, String)>,
    pub starts_at_ms: i64,
    pub ends_at_ms: Option<i64>,
    pub generator_url: String,
}

/// Instruments of the notifier.
#[derive(Clone)]
pub struct NotifierMetrics {
    pub sent: IntCounterVec,
    pub errors: IntCounterVec,
    pub dropped: prometheus::IntCounter,
    pub queue_length: IntGauge,
    pub queue_capacity: IntGauge,
    pub alertmanagers: IntGauge,
}

/// One Alertmanager endpoint with its client.
#[derive(Clone)]
struct Endpoint {
    url: String,
    client: reqwest::Client,
    auth_header: Option<String>,
    timeout: Duration,
}

#[derive(Default)]
struct Settings {
    external_labels: Labels,
    relabel: Vec<RelabelConfig>,
    endpoints: Vec<Endpoint>,
}

pub struct Notifier {
    queue: Mutex<VecDeque<Notification>>,
    capacity: usize,
    wake: Notify,
    settings: RwLock<Arc<Settings>>,
    metrics: NotifierMetrics,
    /// Follows the Alertmanagers' `file_sd_configs` of the running configuration.
    discovery: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Notifier {
    pub fn new(capacity: usize, metrics: NotifierMetrics) -> Arc<Notifier> {
        metrics.queue_capacity.set(capacity as i64);
        Arc::new(Notifier {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            wake: Notify::new(),
            settings: RwLock::new(Arc::new(Settings::default())),
            metrics,
            discovery: Mutex::new(None),
        })
    }

    /// Takes the `alerting` section and external labels of a (re)loaded configuration. The
    /// Alertmanagers' target files are read now (an unreadable one fails the load) and
    /// then watched, as scrape targets' are: a change applies within about a second.
    pub fn apply_config(self: &Arc<Self>, config: &Config) -> anyhow::Result<()> {
        let file_groups = config
            .alerting
            .alertmanagers
            .iter()
            .map(|am| {
                let mut groups = Vec::new();
                for sd in &am.file_sd_configs {
                    groups.extend(crate::discovery::read_all(sd, &config.base_dir)?);
                }
                Ok(groups)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let endpoints = all_endpoints(config, file_groups)?;
        self.set_settings(Settings {
            external_labels: config.global.external_labels.clone(),
            relabel: config.alerting.alert_relabel_configs.clone(),
            endpoints,
        });
        let watcher = (config.alerting.alertmanagers.iter())
            .any(|am| !am.file_sd_configs.is_empty())
            .then(|| tokio::spawn(watch_alertmanagers(Arc::downgrade(self), config.clone())));
        let previous = std::mem::replace(
            &mut *self.discovery.lock().unwrap_or_else(|p| p.into_inner()),
            watcher,
        );
        if let Some(previous) = previous {
            previous.abort();
        }
        Ok(())
    }

    fn set_settings(&self, settings: Settings) {
        self.metrics
            .alertmanagers
            .set(settings.endpoints.len() as i64);
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(settings);
    }

    /// Replaces the Alertmanager endpoints, keeping the other settings.
    fn set_endpoints(&self, endpoints: Vec<Endpoint>) {
        let current = self.current();
        self.set_settings(Settings {
            external_labels: current.external_labels.clone(),
            relabel: current.relabel.clone(),
            endpoints,
        });
    }

    /// The Alertmanager URLs alerts go to, for `/api/v1/alertmanagers`.
    pub fn alertmanager_urls(&self) -> Vec<String> {
        self.current()
            .endpoints
            .iter()
            .map(|e| e.url.clone())
            .collect()
    }

    fn current(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Queues alerts after external labels and relabeling; never waits.
    pub fn send(&self, alerts: Vec<Notification>) {
        let settings = self.current();
        let prepared: Vec<Notification> = alerts
            .into_iter()
            .filter_map(|a| prepare(a, &settings))
            .collect();
        if prepared.is_empty() {
            return;
        }
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.extend(prepared);
        self.drop_overflow(&mut queue);
        drop(queue);
        self.wake.notify_one();
    }

    fn drop_overflow(&self, queue: &mut VecDeque<Notification>) {
        let overflow = queue.len().saturating_sub(self.capacity);
        if overflow > 0 {
            queue.drain(..overflow);
            self.metrics.dropped.inc_by(overflow as u64);
            tracing::warn!(
                dropped = overflow,
                "alert queue full; dropped the oldest alerts"
            );
        }
        self.metrics.queue_length.set(queue.len() as i64);
    }

    /// Puts a batch that reached no Alertmanager back at the front, within capacity (the
    /// oldest alerts, the requeued ones included, go first).
    fn requeue(&self, batch: Vec<Notification>) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        for alert in batch.into_iter().rev() {
            queue.push_front(alert);
        }
        self.drop_overflow(&mut queue);
    }

    fn next_batch(&self) -> Vec<Notification> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let n = queue.len().min(MAX_BATCH);
        let batch: Vec<Notification> = queue.drain(..n).collect();
        self.metrics.queue_length.set(queue.len() as i64);
        batch
    }

    /// Queued alerts not yet delivered.
    pub fn queue_len(&self) -> usize {
        self.queue.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// The delivery loop; runs until the task is aborted.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let notifier = self.clone();
        tokio::spawn(async move { notifier.run().await })
    }

    async fn run(&self) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let batch = self.next_batch();
            if batch.is_empty() {
                self.wake.notified().await;
                continue;
            }
            let settings = self.current();
            if settings.endpoints.is_empty() {
                // Nowhere to send: Prometheus drops alerts when no Alertmanager is configured.
                continue;
            }
            if self.deliver(&settings, &batch).await {
                backoff = Duration::from_millis(500);
            } else {
                self.requeue(batch);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// Posts one batch to every Alertmanager; true when at least one accepted it.
    async fn deliver(&self, settings: &Settings, batch: &[Notification]) -> bool {
        let body = match serde_json::to_vec(&batch.iter().map(wire).collect::<Vec<_>>()) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "encoding alerts");
                return true;
            }
        };
        let posts = settings
            .endpoints
            .iter()
            .map(|endpoint| self.post(endpoint, body.clone(), batch.len()));
        futures::future::join_all(posts)
            .await
            .into_iter()
            .any(|ok| ok)
    }

    async fn post(&self, endpoint: &Endpoint, body: Vec<u8>, count: usize) -> bool {
        let mut request = endpoint
            .client
            .post(&endpoint.url)
            .timeout(endpoint.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(auth) = &endpoint.auth_header {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        let outcome = match request.send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("bad response status {}", response.status())),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => {
                self.metrics
                    .sent
                    .with_label_values(&[&endpoint.url])
                    .inc_by(count as u64);
                true
            }
            Err(e) => {
                self.metrics
                    .errors
                    .with_label_values(&[&endpoint.url])
                    .inc_by(count as u64);
                tracing::warn!(alertmanager = %endpoint.url, error = %e, count, "error sending alerts");
                false
            }
        }
    }
}

/// External labels (where the alert lacks them), then `alert_relabel_configs`.
fn prepare(mut alert: Notification, settings: &Settings) -> Option<Notification> {
    let mut labels = alert.labels.to_pairs();
    for (name, value) in settings.external_labels.iter() {
        if alert.labels.get(name).is_none() {
            labels.push((name.to_string(), value.to_string()));
        }
    }
    let labels = relabel(labels, &settings.relabel)?;
    if labels.is_empty() {
        return None;
    }
    alert.labels = labels;
    Some(alert)
}

/// Keeps the endpoints of the Alertmanagers found through `file_sd_configs` current until
/// the next configuration replaces this task (or the notifier is gone).
async fn watch_alertmanagers(notifier: std::sync::Weak<Notifier>, config: Config) {
    let mut discoverers = Vec::new();
    // Per receiver, the `alertmanagers` entry it serves.
    let mut owners = Vec::new();
    let mut receivers = Vec::new();
    for (i, am) in config.alerting.alertmanagers.iter().enumerate() {
        for sd in &am.file_sd_configs {
            let (discoverer, rx) = FileDiscoverer::spawn(sd.clone(), &config.base_dir);
            discoverers.push(discoverer);
            owners.push(i);
            receivers.push(rx);
        }
    }
    while crate::discovery::wait_any_changed(&mut receivers).await {
        let Some(notifier) = notifier.upgrade() else {
            return;
        };
        let mut file_groups = vec![Vec::new(); config.alerting.alertmanagers.len()];
        for (owner, rx) in owners.iter().zip(receivers.iter_mut()) {
            file_groups[*owner].extend(rx.borrow_and_update().iter().cloned());
        }
        match all_endpoints(&config, file_groups) {
            Ok(endpoints) => {
                tracing::info!(
                    alertmanagers = endpoints.len(),
                    "Alertmanager targets changed"
                );
                notifier.set_endpoints(endpoints);
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "Alertmanager targets changed but are invalid; keeping the current ones"
            ),
        }
    }
}

/// The endpoints of every `alertmanagers` entry, given the groups its files hold.
fn all_endpoints(
    config: &Config,
    file_groups: Vec<Vec<TargetGroup>>,
) -> anyhow::Result<Vec<Endpoint>> {
    let mut endpoints = Vec::new();
    for (i, (am, groups)) in config
        .alerting
        .alertmanagers
        .iter()
        .zip(file_groups)
        .enumerate()
    {
        endpoints.extend(
            endpoints_of(config, am, groups)
                .with_context(|| format!("alerting.alertmanagers[{i}]"))?,
        );
    }
    Ok(endpoints)
}

/// The Alertmanager addresses of one `alertmanagers` entry (its static targets and
/// `file_groups`), after its `relabel_configs`.
fn endpoints_of(
    config: &Config,
    am: &AlertmanagerConfig,
    file_groups: Vec<TargetGroup>,
) -> anyhow::Result<Vec<Endpoint>> {
    let client = http::build_client(config, am.tls_config.as_ref(), "Alertmanager")?;
    let auth_header = http::auth_header(config, am.basic_auth.as_ref(), am.authorization.as_ref())?;
    let mut groups = crate::discovery::static_target_groups(am.static_configs.clone())?;
    groups.extend(file_groups);
    let path = format!("{}/api/v2/alerts", am.path_prefix.trim_end_matches('/'));
    let mut endpoints = Vec::new();
    for group in groups {
        for target in &group.targets {
            let mut labels: Vec<(String, String)> = (group.labels.iter())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.push(("__address__".into(), target.clone()));
            labels.push(("__scheme__".into(), am.scheme.clone()));
            labels.push(("__alerts_path__".into(), path.clone()));
            let Some(labels) = relabel(labels, &am.relabel_configs) else {
                continue;
            };
            let get = |name: &str| labels.get(name).unwrap_or_default().to_string();
            endpoints.push(Endpoint {
                url: format!(
                    "{}://{}{}",
                    get("__scheme__"),
                    get("__address__"),
                    get("__alerts_path__")
                ),
                client: client.clone(),
                auth_header: auth_header.clone(),
                timeout: am.timeout.0,
            });
        }
    }
    Ok(endpoints)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireAlert {
    labels: Labels,
    annotations: BTreeMap<String, String>,
    starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: String,
}

fn wire(alert: &Notification) -> WireAlert {
    WireAlert {
        labels: alert.labels.clone(),
        annotations: alert.annotations.iter().cloned().collect(),
        starts_at: crate::gocompat::time::rfc3339(alert.starts_at_ms),
        ends_at: alert.ends_at_ms.map(crate::gocompat::time::rfc3339),
        generator_url: alert.generator_url.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> NotifierMetrics {
        crate::metrics::Metrics::new().notifier
    }

    fn alert(name: &str) -> Notification {
        Notification {
            labels: Labels::new(vec![("alertname".into(), name.into())]).unwrap(),
            annotations: vec![],
            starts_at_ms: 0,
            ends_at_ms: None,
            generator_url: String::new(),
        }
    }

    #[test]
    fn external_labels_and_relabeling_apply_before_queueing() {
        let config = Config::from_yaml(
            r#"
global:
  external_labels: {cluster: eu, alertname: ignored}
alerting:
  alert_relabel_configs:
    - source_labels: [alertname]
      regex: Drop.*
      action: drop
"#,
            "test",
        )
        .unwrap();
        let n = Notifier::new(10, metrics());
        n.apply_config(&config).unwrap();
        n.send(vec![alert("A"), alert("DropMe")]);
        let batch = n.next_batch();
        assert_eq!(batch.len(), 1);
        assert_eq!(
            batch[0].labels.to_string(),
            r#"{alertname="A", cluster="eu"}"#
        );
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_them() {
        let m = metrics();
        let n = Notifier::new(3, m.clone());
        n.send((0..5).map(|i| alert(&format!("A{i}"))).collect());
        assert_eq!(n.queue_len(), 3);
        assert_eq!(m.dropped.get(), 2);
        assert_eq!(n.next_batch()[0].labels.get("alertname"), Some("A2"));
    }

    #[test]
    fn endpoints_follow_scheme_prefix_and_relabeling() {
        let config = Config::from_yaml(
            r#"
alerting:
  alertmanagers:
    - path_prefix: /am/
      static_configs:
        - targets: ["127.0.0.1:9093", "127.0.0.2:9093"]
      relabel_configs:
        - source_labels: [__address__]
          regex: "127.0.0.2:.*"
          action: drop
"#,
            "test",
        )
        .unwrap();
        let n = Notifier::new(10, metrics());
        n.apply_config(&config).unwrap();
        assert_eq!(
            n.alertmanager_urls(),
            vec!["http://127.0.0.1:9093/am/api/v2/alerts".to_string()]
        );
    }

    #[test]
    fn wire_format_matches_alertmanager_api_v2() {
        let mut a = alert("A");
        a.ends_at_ms = Some(1_000);
        let json = serde_json::to_value(wire(&a)).unwrap();
        assert_eq!(json["startsAt"], "1970-01-01T00:00:00Z");
        assert_eq!(json["endsAt"], "1970-01-01T00:00:01Z");
        assert_eq!(json["labels"]["alertname"], "A");
        assert!(json.get("generatorURL").is_some());
    }
}
