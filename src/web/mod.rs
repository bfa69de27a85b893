//! The HTTP port's transport and gate, from Prometheus's web configuration file
//! (`--web.config.file`, exporter-toolkit's format): TLS with client certificates, basic
//! authentication, response headers and a rate limit. The file and the certificates it
//! names are watched, so a rotated certificate or a changed user list applies to the next
//! connection or request without a restart; whether the port speaks TLS at all, and HTTP/2,
//! are fixed at start, as in exporter-toolkit.

pub mod auth;
pub mod config;
pub mod listener;
pub mod serve;
mod stream;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use axum::http::{HeaderName, HeaderValue};
use tokio_rustls::rustls::ServerConfig;

use self::config::WebConfig;

/// A loaded configuration, ready to apply.
pub struct Active {
    pub config: WebConfig,
    /// The TLS server configuration, when the port speaks TLS.
    pub tls: Option<Arc<ServerConfig>>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub limiter: Option<auth::Limiter>,
}

impl Active {
    /// Loads `path`; `tls` says whether the port speaks TLS (as decided at start).
    fn load(path: &Path, tls: bool, http2: bool) -> anyhow::Result<Active> {
        let config = WebConfig::load(path)?;
        let tls = match (tls, config.tls_server_config.is_enabled()) {
            (true, true) => Some(tls::server_config(&config.tls_server_config, http2)?),
            (false, false) => None,
            (true, false) => bail!("TLS config is not present (TLS was on at start)"),
            (false, true) => bail!("tls_server_config was added after start: restart to serve TLS"),
        };
        let headers = config
            .http_server_config
            .headers
            .iter()
            .map(|(name, value)| {
                Ok((
                    HeaderName::from_bytes(name.as_bytes())?,
                    HeaderValue::from_str(value)?,
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        let limiter = auth::Limiter::new(&config.rate_limit);
        Ok(Active {
            config,
            tls,
            headers,
            limiter,
        })
    }
}

/// What identifies a file's version: modification time, length and inode.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// The web configuration file in force, re-read when it or a file it names changes.
pub struct WebConfigFile {
    path: PathBuf,
    tls: bool,
    http2: bool,
    active: RwLock<Arc<Active>>,
    /// The stamps of the file and its TLS files as last loaded or last failed.
    stamps: Mutex<Vec<(PathBuf, Stamp)>>,
    verdicts: auth::Verdicts,
}

impl WebConfigFile {
    /// Loads the file at start; an invalid file stops the server, as in Prometheus.
    pub fn open(path: &Path) -> anyhow::Result<Arc<WebConfigFile>> {
        let first = WebConfig::load(path)?;
        let tls = first.tls_server_config.is_enabled();
        let http2 = first.http_server_config.http2;
        let active = Active::load(path, tls, http2)
            .with_context(|| format!("web config file {}", path.display()))?;
        let web = WebConfigFile {
            path: path.to_path_buf(),
            tls,
            http2,
            stamps: Mutex::new(stamps(path, &active.config)),
            active: RwLock::new(Arc::new(active)),
            verdicts: auth::Verdicts::new(),
        };
        Ok(Arc::new(web))
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<Active> {
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the port speaks TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// Re-reads the file if it or a file it names changed since the last attempt. A file
    /// that fails to load leaves the previous configuration in force, with an error logged
    /// once per version of the files. Blocking: call off the async workers.
    pub fn refresh(&self) -> anyhow::Result<bool> {
        let mut known = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        // Taken before loading, so a write racing the load shows as a change next time.
        let now: Vec<(PathBuf, Stamp)> = known.iter().map(|(p, _)| (p.clone(), stamp(p))).collect();
        if now == *known {
            return Ok(false);
        }
        match Active::load(&self.path, self.tls, self.http2) {
            Ok(active) => {
                let mut next = now;
                for (path, s) in stamps(&self.path, &active.config) {
                    if !next.iter().any(|(p, _)| *p == path) {
                        next.push((path, s));
                    }
                }
                *known = next;
                *self.active.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(active);
                Ok(true)
            }
            Err(e) => {
                *known = now;
                Err(e.context(format!(
                    "reloading web config file {} (the previous one stays in force)",
                    self.path.display()
                )))
            }
        }
    }

    /// Checks the files once a second on a blocking thread; rotation applies to the
    /// connections and requests after the check.
    pub fn spawn_watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let web = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let w = web.clone();
                match tokio::task::spawn_blocking(move || w.refresh()).await {
                    Ok(Ok(true)) => {
                        tracing::info!(file = %web.path.display(), "web config reloaded")
                    }
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::error!(error = format!("{e:#}"), "web config"),
                    Err(e) => tracing::error!(error = %e, "web config watcher"),
                }
            }
        })
    }
}

/// The stamps of the web config file (first) and the TLS files it names.
fn stamps(path: &Path, config: &WebConfig) -> Vec<(PathBuf, Stamp)> {
    std::iter::once(path.to_path_buf())
        .chain(config.tls_server_config.files())
        .map(|p| {
            let s = stamp(&p);
            (p, s)
        })
        .collect()
}

/// `quiver check web-config`: loads the file and its TLS material as the server would.
pub fn check(path: &Path) -> anyhow::Result<Vec<String>> {
    let config = WebConfig::load(path)?;
    let mut report = Vec::new();
    if config.tls_server_config.is_enabled() {
        tls::server_config(&config.tls_server_config, config.http_server_config.http2)
            .context("tls_server_config")?;
        report.push("TLS: enabled".to_owned());
    }
    if !config.basic_auth_users.is_empty() {
        report.push(format!(
            "basic authentication: {} users",
            config.basic_auth_users.len()
        ));
    }
    Ok(report)
}
