//! Wires the server together: storage, SQL engine, scrape loops, HTTP, and shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::Notify;

use crate::api::{self, ApiOptions, AppState, ConfigStatus, Lifecycle};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::notifier::Notifier;
use crate::query::promql::PromqlEngine;
use crate::rules::{EngineQuerier, ManagerOptions, RuleManager};
use crate::scrape::ScrapeManager;
use crate::storage::{QueryTier, Storage, StorageOptions};
use crate::web::WebConfigFile;

/// Settings from the command line.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub config_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub retention: Duration,
    /// `--storage.tsdb.retention.size` in bytes; 0 for no limit.
    pub retention_size: u64,
    /// `--retention.resolution-5m` and `--retention.resolution-1h`; zero keeps forever.
    pub retention_downsampled: [Duration; 2],
    /// `--storage.read-only`: a query node over the writers' buckets.
    pub read_only: bool,
    /// `--query.replica-label`.
    pub replica_labels: Vec<String>,
    pub listen_address: SocketAddr,
    /// `--web.enable-lifecycle`.
    pub enable_lifecycle: bool,
    /// `--web.cors.origin`.
    pub cors_origin: String,
    /// `--web.enable-admin-api`.
    pub enable_admin_api: bool,
    /// `--web.enable-otlp-receiver`.
    pub enable_otlp_receiver: bool,
    /// `--web.external-url`: where users reach Quiver (the base of alerts' generator URLs,
    /// and of the web UI's links).
    pub external_url: String,
    /// `--web.route-prefix`, normalized (`/` or `/prefix`): where every route is served.
    pub route_prefix: String,
    /// `--rules.alert.for-outage-tolerance`.
    pub outage_tolerance: Duration,
    /// `--rules.alert.for-grace-period`.
    pub grace_period: Duration,
    /// `--rules.alert.resend-delay`.
    pub resend_delay: Duration,
    /// `--alertmanager.notification-queue-capacity`.
    pub queue_capacity: usize,
    /// `--postgres.listen-address`; `None` turns the wire protocol off.
    pub postgres_listen_address: Option<SocketAddr>,
    /// `--web.max-connections`: open HTTP connections at most (0: no limit).
    pub max_connections: usize,
    /// `--web.config.file`: TLS and authentication for the HTTP port.
    pub web_config_file: Option<PathBuf>,
    /// `--web.read-timeout`: the longest wait for a request's headers (or between pieces of
    /// its body), and for an idle connection's next request.
    pub read_timeout: Duration,
}

/// Runs until SIGINT or SIGTERM.
pub async fn run(options: ServerOptions) -> anyhow::Result<()> {
    let web = match &options.web_config_file {
        Some(file) => Some(WebConfigFile::open(file)?),
        None => None,
    };
    let config = Arc::new(load_config(&options)?);
    let metrics = Metrics::new();
    let postgres_metrics = metrics.postgres.clone();
    let storage = open_storage(&options, &config, &metrics)
        .await
        .context("opening storage")?;
    let sql = Arc::new(crate::query::sql_engine(
        storage.clone(),
        config.query.clone(),
        metrics.query.clone(),
    )?);
    let promql = Arc::new(PromqlEngine::new(
        storage.clone(),
        sql.context().runtime_env(),
        config.query.max_samples,
    ));
    let ready = Arc::new(AtomicBool::new(false));
    let scrape = ScrapeManager::new(storage.clone());
    let notifier = Notifier::new(options.queue_capacity, metrics.notifier.clone());
    notifier.apply_config(&config)?;
    let rules = RuleManager::new(
        Arc::new(EngineQuerier {
            promql: promql.clone(),
            sql: Some(sql.clone()),
        }),
        storage.clone(),
        notifier.clone(),
        metrics.rules.clone(),
        ManagerOptions {
            external_url: options.external_url.clone(),
            resend_delay: options.resend_delay,
            outage_tolerance: options.outage_tolerance,
            grace_period: options.grace_period,
        },
    );
    let controller = Arc::new(Controller {
        options: options.clone(),
        scrape: scrape.clone(),
        rules: rules.clone(),
        notifier: notifier.clone(),
        storage: storage.clone(),
        current: std::sync::Mutex::new(ConfigStatus::loaded_now(config.clone())),
        quit: Notify::new(),
    });
    let pg_sql = sql.clone();
    let state = AppState {
        storage: storage.clone(),
        sql,
        promql,
        query_slots: Arc::new(tokio::sync::Semaphore::new(
            config.query.max_concurrency.max(1),
        )),
        metrics,
        scrape: scrape.clone(),
        rules: rules.clone(),
        notifier: notifier.clone(),
        lifecycle: controller.clone(),
        options: ApiOptions {
            remote_write_max_body_bytes: config.storage.remote_write_max_body_bytes,
            query_timeout: config.query.timeout.0,
            start_time: crate::gocompat::time::rfc3339_nano(chrono::Utc::now()),
            retention: crate::model::format_duration(options.retention),
            flags: flags(&options),
            enable_lifecycle: options.enable_lifecycle,
            cors_origin: options.cors_origin.clone(),
            enable_admin_api: options.enable_admin_api,
            enable_otlp_receiver: options.enable_otlp_receiver,
        },
        ready: ready.clone(),
    };
    let listener = tokio::net::TcpListener::bind(options.listen_address)
        .await
        .with_context(|| format!("listening on {}", options.listen_address))?;
    tracing::info!(
        address = %options.listen_address,
        data = %options.data_dir.display(),
        tls = web.as_ref().is_some_and(|w| w.tls()),
        "Quiver is listening"
    );

    let mut tasks = vec![
        storage.spawn_background(),
        spawn_sighup_reloader(controller.clone()),
        notifier.spawn(),
    ];
    if let Some(web) = &web {
        tasks.push(web.spawn_watch());
    }
    if let Some(address) = options.postgres_listen_address {
        let pg_options =
            crate::postgres::PostgresOptions::from_config(&config, address, postgres_metrics)?;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("listening for postgres on {address}"))?;
        tracing::info!(address = %address, "PostgreSQL wire protocol is listening");
        tasks.push(tokio::spawn(crate::postgres::serve(
            listener,
            pg_sql.context().clone(),
            pg_options,
        )));
    }
    if !options.read_only {
        rules.apply(&config).await.context("loading rule files")?;
        scrape.apply(&config).await?;
    }
    ready.store(true, Ordering::Release);

    let quit = controller.clone();
    let listener =
        crate::web::listener::LimitedListener::new(listener, options.max_connections, web.clone());
    let mut app = api::router(state).merge(crate::ui::router(&crate::ui::path_prefix(
        &options.external_url,
    )));
    if options.route_prefix != "/" {
        // As Prometheus: every route moves under the prefix, and `/` leads there.
        let home = options.route_prefix.clone();
        app = axum::Router::new()
            .route(
                "/",
                axum::routing::get(move || async move { axum::response::Redirect::to(&home) }),
            )
            .nest(&options.route_prefix, app);
    }
    if let Some(web) = web {
        app = app.layer(axum::middleware::from_fn_with_state(
            web,
            crate::web::auth::guard,
        ));
    }
    crate::web::serve::serve(listener, app, options.read_timeout, async move {
        tokio::select! {
            _ = shutdown_signal() => {},
            _ = quit.quit.notified() => tracing::info!("shutting down on /-/quit"),
        }
    })
    .await;
    scrape.stop_all().await;
    rules.stop_all().await;
    for task in tasks {
        task.abort();
    }
    storage.close().context("syncing the WAL at shutdown")?;
    tracing::info!("Quiver stopped");
    Ok(())
}

/// The storage: a writer's (WAL, head, blocks), or with `--storage.read-only` a query
/// node's view of the writers' buckets.
async fn open_storage(
    options: &ServerOptions,
    config: &Config,
    metrics: &Metrics,
) -> anyhow::Result<Arc<Storage>> {
    let storage_options = StorageOptions {
        data_dir: options.data_dir.clone(),
        config: config.storage.clone(),
        retention: options.retention,
        retention_size: options.retention_size,
        retention_downsampled: options.retention_downsampled,
    };
    if !options.read_only {
        let storage = Storage::open(storage_options, metrics.storage.clone()).await?;
        storage.set_external_labels(config.global.external_labels.clone());
        return Ok(storage);
    }
    let mut tier_config = config.storage.query_tier.clone();
    tier_config
        .replica_labels
        .extend(options.replica_labels.iter().cloned());
    let tier = QueryTier::open(&tier_config, &config.storage, &options.data_dir, |p| {
        config.resolve_path(p)
    })?;
    Storage::open_read_only(storage_options, tier, metrics.storage.clone()).await
}

/// Flags by their Prometheus names, as `/api/v1/status/flags` shows them.
fn flags(options: &ServerOptions) -> std::collections::BTreeMap<String, String> {
    let mut flags = std::collections::BTreeMap::new();
    let config = options
        .config_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    flags.insert("config.file".to_string(), config);
    flags.insert(
        "storage.tsdb.path".to_string(),
        options.data_dir.display().to_string(),
    );
    flags.insert(
        "storage.tsdb.retention.time".to_string(),
        crate::model::format_duration(options.retention),
    );
    flags.insert(
        "storage.tsdb.retention.size".to_string(),
        format!("{}B", options.retention_size),
    );
    for (name, keep) in ["5m", "1h"].iter().zip(options.retention_downsampled) {
        flags.insert(
            format!("retention.resolution-{name}"),
            crate::model::format_duration(keep),
        );
    }
    flags.insert(
        "storage.read-only".to_string(),
        options.read_only.to_string(),
    );
    flags.insert(
        "query.replica-label".to_string(),
        options.replica_labels.join(","),
    );
    flags.insert(
        "web.listen-address".to_string(),
        options.listen_address.to_string(),
    );
    flags.insert(
        "web.enable-lifecycle".to_string(),
        options.enable_lifecycle.to_string(),
    );
    for (name, on) in [
        ("web.enable-admin-api", options.enable_admin_api),
        ("web.enable-otlp-receiver", options.enable_otlp_receiver),
    ] {
        flags.insert(name.to_string(), on.to_string());
    }
    flags.insert("web.external-url".to_string(), options.external_url.clone());
    flags.insert("web.route-prefix".to_string(), options.route_prefix.clone());
    flags.insert(
        "web.max-connections".to_string(),
        options.max_connections.to_string(),
    );
    flags.insert(
        "web.read-timeout".to_string(),
        crate::model::format_duration(options.read_timeout),
    );
    flags.insert(
        "web.config.file".to_string(),
        options
            .web_config_file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_default(),
    );
    flags
}

fn load_config(options: &ServerOptions) -> anyhow::Result<Config> {
    let mut config = crate::config::load_or_default(options.config_file.as_ref())?;
    if options.config_file.is_none() {
        point_self_scrape_at(&mut config, options.listen_address);
    }
    for warning in config.ignored_sections() {
        tracing::warn!("{warning}");
    }
    Ok(config)
}

/// Reloads and quits on request; owns the current configuration.
struct Controller {
    options: ServerOptions,
    scrape: Arc<ScrapeManager>,
    rules: Arc<RuleManager>,
    notifier: Arc<Notifier>,
    storage: Arc<Storage>,
    /// The running configuration and how the last reload went.
    current: std::sync::Mutex<ConfigStatus>,
    quit: Notify,
}

impl Controller {
    async fn reload_now(&self) -> anyhow::Result<()> {
        let config = load_config(&self.options).context("loading the new configuration")?;
        let previous = self.config_status().config;
        if previous.storage != config.storage || previous.query != config.query {
            tracing::warn!("storage and query settings change only at restart");
        }
        if !self.options.read_only {
            // Rules first: a broken rule file fails the whole reload before anything changed.
            self.rules
                .apply(&config)
                .await
                .context("loading rule files")?;
            self.notifier.apply_config(&config)?;
            self.scrape.apply(&config).await?;
            self.storage
                .set_external_labels(config.global.external_labels.clone());
        }
        if let Ok(mut current) = self.current.lock() {
            *current = ConfigStatus::loaded_now(Arc::new(config));
        }
        tracing::info!("configuration reloaded");
        Ok(())
    }
}

impl Lifecycle for Controller {
    fn reload(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        async move {
            let result = self.reload_now().await;
            if result.is_err()
                && let Ok(mut current) = self.current.lock()
            {
                current.last_reload_ok = false;
            }
            if let Err(e) = &result {
                tracing::error!(
                    error = format!("{e:#}"),
                    "reload failed; keeping the running configuration"
                );
            }
            result
        }
        .boxed()
    }

    fn quit(&self) {
        self.quit.notify_one();
    }

    fn config_status(&self) -> ConfigStatus {
        match self.current.lock() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// SIGHUP reloads the configuration, as with Prometheus.
fn spawn_sighup_reloader(controller: Arc<Controller>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut hangups =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGHUP; reload only over HTTP");
                    return;
                }
            };
        while hangups.recv().await.is_some() {
            let _ = controller.reload().await;
        }
    })
}

/// The embedded default scrapes Quiver itself; follow `--web.listen-address`.
fn point_self_scrape_at(config: &mut Config, address: SocketAddr) {
    for sc in config
        .scrape_configs
        .iter_mut()
        .filter(|sc| sc.job_name == "quiver")
    {
        for sc_static in &mut sc.static_configs {
            sc_static.targets = vec![address.to_string()];
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
