//! Wires the server together: storage, SQL engine, scrape loops, HTTP, and shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::query::sql::SqlEngine;
use crate::scrape;
use crate::storage::{Storage, StorageOptions};

/// Settings from the command line.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub config_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub retention: Duration,
    pub listen_address: SocketAddr,
}

/// Runs until SIGINT or SIGTERM.
pub async fn run(options: ServerOptions) -> anyhow::Result<()> {
    let mut config = crate::config::load_or_default(options.config_file.as_ref())?;
    if options.config_file.is_none() {
        point_self_scrape_at(&mut config, options.listen_address);
    }
    let config = Arc::new(config);
    let metrics = Metrics::new();
    let storage = Storage::open(
        StorageOptions {
            data_dir: options.data_dir.clone(),
            config: config.storage.clone(),
            retention: options.retention,
        },
        metrics.storage.clone(),
    )
    .await
    .context("opening storage")?;
    let sql = Arc::new(SqlEngine::new(
        storage.clone(),
        config.query.clone(),
        metrics.query.clone(),
    )?);
    let ready = Arc::new(AtomicBool::new(false));
    let state = AppState {
        storage: storage.clone(),
        sql,
        metrics,
        config: config.clone(),
        ready: ready.clone(),
    };
    let listener = tokio::net::TcpListener::bind(options.listen_address)
        .await
        .with_context(|| format!("listening on {}", options.listen_address))?;
    tracing::info!(address = %options.listen_address, data = %options.data_dir.display(), "Quiver is listening");

    let mut tasks = vec![storage.spawn_background()];
    tasks.extend(scrape::spawn_all(storage.clone(), scrape::targets(&config)));
    ready.store(true, Ordering::Release);

    let served = axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    for task in tasks {
        task.abort();
    }
    storage.close().context("syncing the WAL at shutdown")?;
    tracing::info!("Quiver stopped");
    served.context("HTTP server failed")
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
