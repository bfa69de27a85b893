//! The scrape manager: one pool per `scrape_configs` job. A pool follows its service
//! discovery (static and file_sd), turns groups into targets, and keeps exactly one loop
//! per target, starting and stopping loops as targets come and go. A reload replaces only
//! the pools whose configuration changed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use tokio::sync::{oneshot, watch};

use crate::config::{Config, ScrapeConfig, ScrapeProtocol, http};
use crate::discovery::{FileDiscoverer, TargetGroup, wait_any_changed};
use crate::storage::Storage;

use super::scrapeloop::{LoopHandle, LoopSettings, StopMode, TargetStatus};
use super::target::{DroppedTarget, Target, build_targets};

/// What `/api/v1/targets` shows of one active target.
#[derive(Debug, Clone)]
pub struct ActiveTarget {
    pub target: Target,
    pub status: TargetStatus,
    pub pool: String,
}

/// Targets of one pool as last computed, shared with the API.
#[derive(Default)]
struct PoolView {
    active: Vec<(Target, Arc<RwLock<TargetStatus>>)>,
    dropped: Vec<DroppedTarget>,
}

struct Pool {
    config: ScrapeConfig,
    view: Arc<RwLock<PoolView>>,
    stop: Option<oneshot::Sender<StopMode>>,
    task: tokio::task::JoinHandle<()>,
}

impl Pool {
    async fn stop(mut self, mode: StopMode) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(mode);
        }
        if let Err(e) = (&mut self.task).await {
            tracing::error!(error = %e, "scrape pool ended abnormally");
        }
    }
}

pub struct ScrapeManager {
    storage: Arc<Storage>,
    pools: tokio::sync::Mutex<BTreeMap<String, Pool>>,
}

impl ScrapeManager {
    pub fn new(storage: Arc<Storage>) -> Arc<ScrapeManager> {
        Arc::new(ScrapeManager {
            storage,
            pools: tokio::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// Makes the running pools match `config`: unchanged jobs keep running, changed ones are
    /// restarted, removed ones stop and mark their series stale.
    pub async fn apply(&self, config: &Config) -> anyhow::Result<()> {
        let mut pools = self.pools.lock().await;
        let wanted: BTreeMap<&str, &ScrapeConfig> = config
            .scrape_configs
            .iter()
            .map(|sc| (sc.job_name.as_str(), sc))
            .collect();
        let names: Vec<String> = pools.keys().cloned().collect();
        for name in names {
            let keep = wanted
                .get(name.as_str())
                .is_some_and(|sc| pools[&name].config == **sc);
            if !keep && let Some(pool) = pools.remove(&name) {
                let mode = if wanted.contains_key(name.as_str()) {
                    StopMode::Silent
                } else {
                    StopMode::MarkStale
                };
                pool.stop(mode).await;
            }
        }
        for (name, sc) in wanted {
            if !pools.contains_key(name) {
                let pool = self
                    .start_pool(config, sc)
                    .with_context(|| format!("starting scrape pool {name:?}"))?;
                pools.insert(name.to_string(), pool);
            }
        }
        Ok(())
    }

    /// Stops every pool, marking all scraped series stale.
    pub async fn stop_all(&self) {
        let mut pools = self.pools.lock().await;
        for (_, pool) in std::mem::take(&mut *pools) {
            pool.stop(StopMode::Silent).await;
        }
    }

    /// Active targets of every pool, in pool order.
    pub async fn active_targets(&self) -> Vec<ActiveTarget> {
        let pools = self.pools.lock().await;
        let mut out = Vec::new();
        for (name, pool) in pools.iter() {
            let view = read(&pool.view);
            for (target, status) in &view.active {
                out.push(ActiveTarget {
                    target: target.clone(),
                    status: read(status).clone(),
                    pool: name.clone(),
                });
            }
        }
        out
    }

    /// Dropped targets per pool.
    pub async fn dropped_targets(&self) -> Vec<(String, DroppedTarget)> {
        let pools = self.pools.lock().await;
        let mut out = Vec::new();
        for (name, pool) in pools.iter() {
            for d in &read(&pool.view).dropped {
                out.push((name.clone(), d.clone()));
            }
        }
        out
    }

    /// Names of the pools, for `/api/v1/scrape_pools`.
    pub async fn pool_names(&self) -> Vec<String> {
        self.pools.lock().await.keys().cloned().collect()
    }

    fn start_pool(&self, config: &Config, sc: &ScrapeConfig) -> anyhow::Result<Pool> {
        let settings = loop_settings(config, sc)?;
        let mut discoverers = Vec::new();
        let mut receivers = Vec::new();
        for sd in &sc.file_sd_configs {
            let (discoverer, rx) = FileDiscoverer::spawn(sd.clone(), &config.base_dir);
            discoverers.push(discoverer);
            receivers.push(rx);
        }
        let view = Arc::new(RwLock::new(PoolView::default()));
        let (stop_tx, stop_rx) = oneshot::channel();
        let runner = PoolRunner {
            storage: self.storage.clone(),
            config: Arc::new(config.clone()),
            settings,
            static_groups: sc.static_configs.clone(),
            receivers,
            view: view.clone(),
            loops: HashMap::new(),
            _discoverers: discoverers,
        };
        let task = tokio::spawn(runner.run(stop_rx));
        Ok(Pool {
            config: sc.clone(),
            view,
            stop: Some(stop_tx),
            task,
        })
    }
}

/// The task behind one pool.
struct PoolRunner {
    storage: Arc<Storage>,
    config: Arc<Config>,
    settings: LoopSettings,
    static_groups: Vec<TargetGroup>,
    receivers: Vec<watch::Receiver<Vec<TargetGroup>>>,
    view: Arc<RwLock<PoolView>>,
    loops: HashMap<u64, LoopHandle>,
    _discoverers: Vec<FileDiscoverer>,
}

impl PoolRunner {
    async fn run(mut self, mut stop: oneshot::Receiver<StopMode>) {
        self.sync().await;
        loop {
            let changed = wait_any_changed(&mut self.receivers);
            tokio::select! {
                mode = &mut stop => {
                    let mode = mode.unwrap_or(StopMode::MarkStale);
                    for (_, handle) in self.loops.drain() {
                        handle.stop(mode).await;
                    }
                    return;
                }
                alive = changed => {
                    if !alive {
                        // Every discoverer is gone; keep the current targets until stopped.
                        self.receivers.clear();
                    }
                    self.sync().await;
                }
            }
        }
    }

    /// Recomputes targets from discovery and starts or stops loops to match.
    async fn sync(&mut self) {
        let mut groups = self.static_groups.clone();
        for rx in &self.receivers {
            groups.extend(rx.borrow().iter().cloned());
        }
        let sc = self.settings.config.clone();
        let (targets, dropped) = build_targets(&self.config, &sc, &groups);
        let wanted: HashMap<u64, Target> = targets.into_iter().map(|t| (t.key(), t)).collect();
        let gone: Vec<u64> = self
            .loops
            .keys()
            .filter(|k| !wanted.contains_key(k))
            .copied()
            .collect();
        for key in gone {
            if let Some(handle) = self.loops.remove(&key) {
                tracing::info!(target = %handle.target.url, "target gone; marking its series stale");
                handle.stop(StopMode::MarkStale).await;
            }
        }
        for (key, target) in wanted {
            self.loops.entry(key).or_insert_with(|| {
                LoopHandle::spawn(self.storage.clone(), self.settings.clone(), target)
            });
        }
        let mut active: Vec<(Target, Arc<RwLock<TargetStatus>>)> = self
            .loops
            .values()
            .map(|h| (h.target.clone(), h.status.clone()))
            .collect();
        active.sort_by(|a, b| a.0.labels.cmp(&b.0.labels));
        if let Ok(mut view) = self.view.write() {
            *view = PoolView { active, dropped };
        }
    }
}

/// The HTTP client and auth header of one scrape config.
fn loop_settings(config: &Config, sc: &ScrapeConfig) -> anyhow::Result<LoopSettings> {
    Ok(LoopSettings {
        config: Arc::new(sc.clone()),
        client: http::build_client(config, sc.tls_config.as_ref(), "scrape")?,
        auth_header: http::auth_header(config, sc.basic_auth.as_ref(), sc.authorization.as_ref())?,
        accept: ScrapeProtocol::accept_header(&config.scrape_protocols_for(sc)),
        histograms: config.histogram_options_for(sc),
    })
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}
