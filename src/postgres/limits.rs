//! The statement timeout and CancelRequest for the whole query, execution included; and
//! the complexity limit every statement text passes before it is parsed
//! (`query::complexity`), for simple and extended queries alike.
//!
//! DataFusion runs lazily: datafusion-postgres returns a row stream and the work happens
//! while pgwire sends it, after pgwire's own cancel and timeout checks (which watch only the
//! planning step) are over. This wrapper puts the deadline and the connection's cancel
//! signal on the row stream itself; dropping the stream stops DataFusion's execution.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{Sink, StreamExt};
use pgwire::api::Type;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, ConnectionHandle};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use tokio::time::Instant;

use datafusion_postgres::DfSessionService;

/// Client metadata key datafusion-postgres keeps the statement timeout under (ms).
pub const STATEMENT_TIMEOUT_KEY: &str = "statement_timeout_ms";

pub struct Limited {
    pub inner: Arc<DfSessionService>,
}

fn canceled(reason: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        "57014".to_string(),
        format!("canceling statement due to {reason}"),
    )))
}

/// The complexity limit as PostgreSQL's `statement_too_complex` (54001).
fn check_complexity(sql: &str) -> PgWireResult<()> {
    crate::query::complexity::check_sql(sql).map_err(|message| {
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".to_string(),
            "54001".to_string(),
            message,
        )))
    })
}

/// datafusion-postgres's parser for extended queries, behind the complexity limit.
pub struct CheckedParser<P>(Arc<P>);

#[async_trait]
impl<P: QueryParser + Send + Sync> QueryParser for CheckedParser<P> {
    type Statement = P::Statement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        check_complexity(sql)?;
        self.0.parse_sql(client, sql, types).await
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.0.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.0.get_result_schema(stmt, column_format)
    }
}

/// When the statement must be done by, from the session's `statement_timeout` (0: never).
fn deadline<C: ClientInfo>(client: &C) -> Option<Instant> {
    let ms: u64 = client.metadata().get(STATEMENT_TIMEOUT_KEY)?.parse().ok()?;
    (ms > 0).then(|| Instant::now() + Duration::from_millis(ms))
}

fn connection_handle<C: ClientInfo>(client: &C) -> Option<Arc<ConnectionHandle>> {
    client
        .session_extensions()
        .get::<Arc<ConnectionHandle>>()
        .map(|h| (*h).clone())
}

/// Wraps a query response's rows with the deadline and the cancel signal.
fn limit(
    response: Response,
    deadline: Option<Instant>,
    handle: Option<Arc<ConnectionHandle>>,
) -> Response {
    let Response::Query(query) = response else {
        return response;
    };
    let command_tag = query.command_tag().to_string();
    let row_schema = query.row_schema();
    let data_rows = query.data_rows;
    struct State {
        rows: pgwire::api::results::SendableRowStream,
        cancel: Option<futures::channel::oneshot::Receiver<()>>,
        handle: Option<Arc<ConnectionHandle>>,
        done: bool,
    }
    let state = State {
        rows: data_rows,
        cancel: None,
        handle,
        done: false,
    };
    let rows = futures::stream::unfold(state, move |mut st| async move {
        if st.done {
            return None;
        }
        // Subscribe on the first row, once pgwire's own wait for the planning is over;
        // subscribing replaces (and so releases) pgwire's receiver.
        if let Some(handle) = st.handle.take() {
            st.cancel = Some(handle.start_query().await);
        }
        let cancel = async {
            match st.cancel.as_mut() {
                // A dropped sender (the next statement subscribed) is no cancel.
                Some(rx) => match rx.await {
                    Ok(()) => (),
                    Err(_) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        let expiry = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let item = tokio::select! {
            row = st.rows.next() => row,
            _ = cancel => Some(Err(canceled("user request"))),
            _ = expiry => Some(Err(canceled("statement timeout"))),
        };
        match item {
            Some(Err(e)) => {
                st.done = true;
                Some((Err(e), st))
            }
            Some(ok) => Some((ok, st)),
            None => None,
        }
    });
    let mut limited = QueryResponse::new(row_schema, Box::pin(rows));
    limited.set_command_tag(&command_tag);
    Response::Query(limited)
}

#[async_trait]
impl SimpleQueryHandler for Limited {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        check_complexity(query)?;
        let deadline = deadline(client);
        let handle = connection_handle(client);
        let responses = SimpleQueryHandler::do_query(self.inner.as_ref(), client, query).await?;
        Ok(responses
            .into_iter()
            .map(|r| limit(r, deadline, handle.clone()))
            .collect())
    }
}

#[async_trait]
impl ExtendedQueryHandler for Limited {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = CheckedParser<<DfSessionService as ExtendedQueryHandler>::QueryParser>;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::new(CheckedParser(self.inner.query_parser()))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let deadline = deadline(client);
        let handle = connection_handle(client);
        let response =
            ExtendedQueryHandler::do_query(self.inner.as_ref(), client, portal, max_rows).await?;
        Ok(limit(response, deadline, handle))
    }
}
