//! The PostgreSQL wire protocol on its own port, for psql, drivers, BI tools and Grafana's
//! PostgreSQL datasource. `pgwire` speaks the protocol; `datafusion-postgres` runs simple and
//! extended queries on the same DataFusion session `/api/v1/sql` uses and encodes Arrow
//! results in PostgreSQL's text and binary formats. Quiver adds authentication from its
//! configuration, the read-only guard, SQLSTATE codes and TLS.
//!
//! (The module is not called `pgwire`, which would shadow the crate of that name.)

mod auth;
mod errors;
mod guard;
mod limits;
mod settings;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use datafusion::prelude::SessionContext;
use datafusion_postgres::DfSessionService;
use datafusion_postgres::hooks::QueryHook;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ConnectionManager, ErrorHandler, PgWireServerHandlers};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::config::Config;
use crate::metrics::PostgresMetrics;
pub use auth::Authentication;

/// How the frontend is set up.
pub struct PostgresOptions {
    pub authentication: Authentication,
    pub tls: Option<TlsAcceptor>,
    /// Refuse connections that did not negotiate TLS.
    pub require_tls: bool,
    pub metrics: PostgresMetrics,
    /// The default `statement_timeout`: Quiver's `query.timeout`.
    pub statement_timeout: Duration,
}

impl PostgresOptions {
    /// From the `postgres` section; trust without users is refused off loopback.
    pub fn from_config(
        config: &Config,
        listen: SocketAddr,
        metrics: PostgresMetrics,
    ) -> anyhow::Result<PostgresOptions> {
        let pg = &config.postgres;
        let authentication = if pg.users.is_empty() {
            if !listen.ip().is_loopback() {
                anyhow::bail!(
                    "postgres: refusing trust authentication on non-loopback address {listen}; configure postgres.users"
                );
            }
            Authentication::Trust
        } else {
            let mut users = HashMap::new();
            for user in &pg.users {
                users.insert(user.name.clone(), config.postgres_password(user)?);
            }
            Authentication::Passwords {
                method: pg.auth_method,
                users: Arc::new(users),
            }
        };
        let tls = match &pg.tls {
            Some(tls) => Some(tls_acceptor(
                &config.resolve_path(&tls.cert_file),
                &config.resolve_path(&tls.key_file),
            )?),
            None => None,
        };
        Ok(PostgresOptions {
            authentication,
            tls,
            require_tls: pg.tls.as_ref().is_some_and(|t| t.require),
            metrics,
            statement_timeout: config.query.timeout.0,
        })
    }
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<TlsAcceptor> {
    let certs = crate::pem::certificates(&crate::pem::read(cert, "cert_file")?, "cert_file")?;
    let key = crate::pem::private_key(&crate::pem::read(key, "key_file")?, "key_file")?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("postgres TLS certificate and key")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The handlers of every connection: one query service on the shared session, and a
/// start-up handler made fresh per connection.
struct Handlers {
    service: Arc<limits::Limited>,
    connections: Arc<ConnectionManager>,
    cancel: Arc<DefaultCancelHandler>,
    login: auth::LoginPolicy,
    statement_timeout_ms: u64,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.service.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.service.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(auth::StartupWithDefaults::new(
            &self.login,
            self.connections.clone(),
            self.statement_timeout_ms,
        ))
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(errors::SqlStateErrors)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// Accepts connections until the task is aborted; each runs on its own task, so a broken
/// client only ends its own connection.
pub async fn serve(listener: TcpListener, session: SessionContext, options: PostgresOptions) {
    let hooks: Vec<Arc<dyn QueryHook>> = vec![
        Arc::new(guard::ReadOnly),
        Arc::new(settings::ShowSettings),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ];
    let connections = Arc::new(ConnectionManager::new());
    let handlers = Arc::new(Handlers {
        service: Arc::new(limits::Limited {
            inner: Arc::new(DfSessionService::new_with_hooks(Arc::new(session), hooks)),
        }),
        cancel: Arc::new(DefaultCancelHandler::new(connections.clone())),
        connections,
        login: auth::LoginPolicy {
            authentication: options.authentication,
            require_tls: options.require_tls,
            failed_logins: options.metrics.failed_logins.clone(),
        },
        statement_timeout_ms: u64::try_from(options.statement_timeout.as_millis())
            .unwrap_or(u64::MAX),
    });
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a postgres connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handlers = handlers.clone();
        let tls = options.tls.clone();
        tokio::spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                tracing::debug!(peer = %peer, error = %e, "postgres connection ended with an error");
            }
        });
    }
}
