//! Connection start-up: trust, or cleartext/MD5/SCRAM-SHA-256 passwords of the configured
//! users (pgwire implements the exchanges), and the ParameterStatus set clients expect
//! (`server_version`, `DateStyle`, `TimeZone`, ...).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use pgwire::api::auth::md5pass::{Md5PasswordAuthStartupHandler, hash_md5_password};
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{SCRAM_ITERATIONS, ScramAuth, gen_salted_password};
use pgwire::api::auth::{AuthSource, LoginInfo, Password, ServerParameterProvider, StartupHandler};
use pgwire::api::{ClientInfo, ConnectionManager, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::config::PgAuthMethod;
use crate::query::sql::pg_functions::SERVER_VERSION;

use super::limits::STATEMENT_TIMEOUT_KEY;

/// Who may connect, and what is counted when someone may not.
#[derive(Clone)]
pub struct LoginPolicy {
    pub authentication: Authentication,
    /// Connections that did not negotiate TLS are refused (PostgreSQL's `hostssl`).
    pub require_tls: bool,
    /// By reason: `password` (unknown user or wrong password), `tls_required`.
    pub failed_logins: prometheus::IntCounterVec,
}

/// How clients prove who they are.
#[derive(Debug, Clone)]
pub enum Authentication {
    Trust,
    Passwords {
        method: PgAuthMethod,
        users: Arc<HashMap<String, String>>,
    },
}

/// The parameters sent after authentication, as a PostgreSQL 16 server sends them.
#[derive(Debug, Default)]
pub struct Parameters;

impl ServerParameterProvider for Parameters {
    fn server_parameters<C>(&self, client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        let mut params: HashMap<String, String> = [
            ("server_version", SERVER_VERSION),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("TimeZone", "UTC"),
            ("IntervalStyle", "postgres"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("is_superuser", "off"),
            ("default_transaction_read_only", "on"),
            ("in_hot_standby", "off"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let name = client
            .metadata()
            .get("application_name")
            .cloned()
            .unwrap_or_default();
        params.insert("application_name".to_string(), name);
        if let Some(user) = client.metadata().get(pgwire::api::METADATA_USER) {
            params.insert("session_authorization".to_string(), user.clone());
        }
        Some(params)
    }
}

/// Looks up configured users; the form of the secret depends on the method.
#[derive(Debug)]
struct Users {
    method: PgAuthMethod,
    users: Arc<HashMap<String, String>>,
}

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        let Some(password) = self.users.get(user) else {
            return Err(PgWireError::InvalidPassword(user.to_string()));
        };
        Ok(match self.method {
            PgAuthMethod::Password => Password::new(None, password.as_bytes().to_vec()),
            PgAuthMethod::Md5 => {
                let salt = crate::model::random_bytes::<4>().to_vec();
                let hashed = hash_md5_password(user, password, &salt);
                Password::new(Some(salt), hashed.into_bytes())
            }
            PgAuthMethod::ScramSha256 => {
                let salt = crate::model::random_bytes::<16>().to_vec();
                let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
                Password::new(Some(salt), salted)
            }
        })
    }
}

/// Bytes from the process's randomly keyed SipHash; salts need to be unpredictable, not
/// secret.
/// Trust: accept the connection, then send the full parameter set.
struct Trust {
    manager: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for Trust {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.manager.clone())
    }

    async fn post_startup<C>(
        &self,
        client: &mut C,
        _message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // pgwire's no-auth path sends only three parameters; send the rest (later values
        // replace earlier ones on the client).
        for (name, value) in Parameters.server_parameters(client).unwrap_or_default() {
            client
                .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    name, value,
                )))
                .await?;
        }
        Ok(())
    }
}

/// One connection's start-up handler (the password exchanges keep per-connection state).
enum Startup {
    Trust(Trust),
    Cleartext(CleartextPasswordAuthStartupHandler<Users, Parameters>),
    Md5(Md5PasswordAuthStartupHandler<Users, Parameters>),
    Scram(SASLAuthStartupHandler<Parameters>),
}

impl StartupWithDefaults {
    /// A new handler for one connection.
    pub fn new(
        policy: &LoginPolicy,
        manager: Arc<ConnectionManager>,
        statement_timeout_ms: u64,
    ) -> StartupWithDefaults {
        let handler = match &policy.authentication {
            Authentication::Trust => Startup::Trust(Trust { manager }),
            Authentication::Passwords { method, users } => {
                let source = Users {
                    method: *method,
                    users: users.clone(),
                };
                match method {
                    PgAuthMethod::Password => Startup::Cleartext(
                        CleartextPasswordAuthStartupHandler::new(source, Parameters)
                            .with_connection_manager(manager),
                    ),
                    PgAuthMethod::Md5 => Startup::Md5(
                        Md5PasswordAuthStartupHandler::new(Arc::new(source), Arc::new(Parameters))
                            .with_connection_manager(manager),
                    ),
                    PgAuthMethod::ScramSha256 => {
                        let mut scram = ScramAuth::new(Arc::new(source));
                        scram.set_iterations(SCRAM_ITERATIONS);
                        Startup::Scram(
                            SASLAuthStartupHandler::new(Arc::new(Parameters))
                                .with_scram(scram)
                                .with_connection_manager(manager),
                        )
                    }
                }
            }
        };
        StartupWithDefaults {
            handler,
            require_tls: policy.require_tls,
            failed_logins: policy.failed_logins.clone(),
            statement_timeout_ms,
        }
    }

    /// Counts and logs a refused connection: the user and the peer, never a password.
    fn refused<C: ClientInfo>(&self, client: &C, reason: &str, error: &PgWireError) {
        self.failed_logins.with_label_values(&[reason]).inc();
        let user = client.metadata().get(pgwire::api::METADATA_USER);
        tracing::warn!(
            peer = %client.socket_addr(),
            user = user.map(String::as_str).unwrap_or(""),
            reason,
            error = %error,
            "postgres login refused"
        );
    }
}

/// Runs the start-up handler, then gives the session Quiver's query timeout as its
/// `statement_timeout` (a client's `SET statement_timeout` overrides it).
pub struct StartupWithDefaults {
    handler: Startup,
    require_tls: bool,
    failed_logins: prometheus::IntCounterVec,
    statement_timeout_ms: u64,
}

#[async_trait]
impl StartupHandler for StartupWithDefaults {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if self.require_tls
            && !client.is_secure()
            && matches!(message, PgWireFrontendMessage::Startup(_))
        {
            let error = PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".to_string(),
                "28000".to_string(),
                "this server requires TLS: connect with sslmode=require".to_string(),
            )));
            self.refused(client, "tls_required", &error);
            return Err(error);
        }
        let outcome = match &self.handler {
            Startup::Trust(h) => h.on_startup(client, message).await,
            Startup::Cleartext(h) => h.on_startup(client, message).await,
            Startup::Md5(h) => h.on_startup(client, message).await,
            Startup::Scram(h) => h.on_startup(client, message).await,
        };
        if let Err(error) = &outcome
            && matches!(
                error,
                PgWireError::InvalidPassword(_) | PgWireError::InvalidScramMessage(_)
            )
        {
            self.refused(client, "password", error);
        }
        outcome?;
        if matches!(client.state(), PgWireConnectionState::ReadyForQuery)
            && !client.metadata().contains_key(STATEMENT_TIMEOUT_KEY)
        {
            client.metadata_mut().insert(
                STATEMENT_TIMEOUT_KEY.to_string(),
                self.statement_timeout_ms.to_string(),
            );
        }
        Ok(())
    }
}
