//! Runs the rule groups of the current configuration: one task per group on its interval,
//! reloads that keep the state of unchanged rules, and the group list the API reads.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::oneshot;

use super::file::load_rule_files;
use super::group::{EvalEnv, Group, RestoreSettings};
use super::query::RuleQuerier;
use crate::config::Config;
use crate::metrics::RuleMetrics;
use crate::model::Labels;
use crate::notifier::Notifier;
use crate::storage::Storage;

/// Settings from the command line (Prometheus's `--rules.*` flags).
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    pub external_url: String,
    pub resend_delay: Duration,
    pub outage_tolerance: Duration,
    pub grace_period: Duration,
}

struct Running {
    group: Arc<Group>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// What every group task shares.
struct Shared {
    querier: Arc<dyn RuleQuerier>,
    storage: Arc<Storage>,
    notifier: Arc<Notifier>,
    metrics: RuleMetrics,
    options: ManagerOptions,
    external_labels: RwLock<Labels>,
}

pub struct RuleManager {
    shared: Arc<Shared>,
    running: tokio::sync::Mutex<Vec<Running>>,
    /// Snapshot for readers (the API) that must not wait on a reload.
    groups: RwLock<Vec<Arc<Group>>>,
    /// The first load restores alert `for` state; later reloads carry state over instead.
    first_load: std::sync::atomic::AtomicBool,
}

impl RuleManager {
    pub fn new(
        querier: Arc<dyn RuleQuerier>,
        storage: Arc<Storage>,
        notifier: Arc<Notifier>,
        metrics: RuleMetrics,
        options: ManagerOptions,
    ) -> Arc<RuleManager> {
        Arc::new(RuleManager {
            shared: Arc::new(Shared {
                querier,
                storage,
                notifier,
                metrics,
                options,
                external_labels: RwLock::new(Labels::default()),
            }),
            running: tokio::sync::Mutex::new(Vec::new()),
            groups: RwLock::new(Vec::new()),
            first_load: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// Loads the configuration's rule files and restarts the groups. On any error in any
    /// file nothing changes: the running rules keep running.
    pub async fn apply(&self, config: &Config) -> anyhow::Result<()> {
        let specs = load_rule_files(&config.rule_files, &config.base_dir)?;
        let default_interval = config.global.evaluation_interval.0;
        *self
            .shared
            .external_labels
            .write()
            .unwrap_or_else(|p| p.into_inner()) = config.global.external_labels.clone();
        let restore = self
            .first_load
            .swap(false, std::sync::atomic::Ordering::AcqRel);
        let mut running = self.running.lock().await;
        let old: Vec<Running> = std::mem::take(&mut *running);
        let mut old_groups = Vec::new();
        for r in old {
            let _ = r.stop.send(());
            let _ = r.task.await;
            old_groups.push(r.group);
        }
        let mut new_groups = Vec::new();
        for spec in specs {
            let group = Arc::new(Group::new(spec, default_interval));
            if let Some(previous) = old_groups.iter().find(|g| g.key() == group.key()) {
                group.take_state_from(previous);
            }
            new_groups.push(group);
        }
        let now = crate::model::now_ms();
        for gone in old_groups
            .iter()
            .filter(|g| !new_groups.iter().any(|n| n.key() == g.key()))
        {
            gone.mark_all_stale(now, &self.shared.storage);
        }
        for group in &new_groups {
            let (stop, stopped) = oneshot::channel();
            let task = tokio::spawn(run_group(
                group.clone(),
                self.shared.clone(),
                stopped,
                restore,
            ));
            running.push(Running {
                group: group.clone(),
                stop,
                task,
            });
        }
        tracing::info!(groups = new_groups.len(), "rule groups loaded");
        *self.groups.write().unwrap_or_else(|p| p.into_inner()) = new_groups;
        Ok(())
    }

    /// The running groups, in file order.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub async fn stop_all(&self) {
        let mut running = self.running.lock().await;
        for r in running.drain(..) {
            let _ = r.stop.send(());
            let _ = r.task.await;
        }
    }
}

/// Evaluates one group on its interval until stopped. Evaluation times are aligned to the
/// interval with a per-group offset (as in Prometheus) so groups spread over the interval
/// and restarts keep the same grid.
async fn run_group(
    group: Arc<Group>,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
    mut restore: bool,
) {
    let interval_ms = i64::try_from(group.interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let offset =
        i64::try_from(xxhash_rust::xxh3::xxh3_64(group.key().as_bytes()) % interval_ms as u64)
            .unwrap_or(0);
    let key = group.key();
    // Create the group's counters at 0 so dashboards see them before anything happens.
    for counter in [
        &shared.metrics.iterations_missed,
        &shared.metrics.evaluation_failures,
        &shared.metrics.evaluations,
    ] {
        counter.with_label_values(&[&key]);
    }
    let mut next = next_tick(crate::model::now_ms(), interval_ms, offset);
    loop {
        let wait = Duration::from_millis(u64::try_from(next - crate::model::now_ms()).unwrap_or(0));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut stop => return,
        }
        let ts = next - i64::try_from(group.query_offset().as_millis()).unwrap_or(0);
        shared.metrics.iterations.with_label_values(&[&key]).inc();
        let external_labels = shared
            .external_labels
            .read()
            .map(|l| l.clone())
            .unwrap_or_default();
        let env = EvalEnv {
            querier: shared.querier.as_ref(),
            storage: &shared.storage,
            external_labels: &external_labels,
            external_url: &shared.options.external_url,
            resend_delay: shared.options.resend_delay,
            notifier: Some(&shared.notifier),
            metrics: Some(&shared.metrics),
            restore: restore.then_some(RestoreSettings {
                outage_tolerance: shared.options.outage_tolerance,
                grace_period: shared.options.grace_period,
            }),
        };
        group.evaluate(ts, &env).await;
        restore = false;
        let after = crate::model::now_ms();
        let following = next_tick(after, interval_ms, offset);
        let missed = (following - next) / interval_ms - 1;
        if missed > 0 {
            shared
                .metrics
                .iterations_missed
                .with_label_values(&[&key])
                .inc_by(missed as u64);
            shared
                .metrics
                .iterations
                .with_label_values(&[&key])
                .inc_by(missed as u64);
            tracing::warn!(group = %group.spec.name, missed, "rule group evaluation took longer than its interval");
        }
        next = following;
    }
}

/// The first tick strictly after `now` on the grid `offset + k * interval`.
fn next_tick(now: i64, interval: i64, offset: i64) -> i64 {
    let base = now - offset;
    (base.div_euclid(interval) + 1) * interval + offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_follow_the_grid() {
        assert_eq!(next_tick(0, 1000, 250), 250);
        assert_eq!(next_tick(250, 1000, 250), 1250);
        assert_eq!(next_tick(1249, 1000, 250), 1250);
        assert_eq!(next_tick(5_000, 1000, 0), 6_000);
    }
}
