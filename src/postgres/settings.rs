//! `SHOW name` for the server settings clients probe (`server_version`, `search_path`, ...),
//! answered as PostgreSQL 16 would, before datafusion-postgres's own SHOW handling (which
//! reports DataFusion's version).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use pgwire::api::ClientInfo;
use pgwire::api::Type;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response};
use pgwire::error::PgWireResult;

use crate::query::sql::pg_functions::setting;

/// Settings whose value never changes in a session; the others (`TimeZone`,
/// `statement_timeout`, ...) follow `SET` and stay with datafusion-postgres.
const FIXED: &[&str] = &[
    "server_version",
    "server_version_num",
    "search_path",
    "server_encoding",
    "client_encoding",
    "integer_datetimes",
    "standard_conforming_strings",
    "transaction_read_only",
    "default_transaction_read_only",
    "max_identifier_length",
    "lc_collate",
    "lc_ctype",
];

pub struct ShowSettings;

fn fixed_setting(statement: &Statement) -> Option<(String, &'static str)> {
    let Statement::ShowVariable { variable } = statement else {
        return None;
    };
    let [name] = variable.as_slice() else {
        return None;
    };
    let name = name.value.to_ascii_lowercase();
    if !FIXED.contains(&name.as_str()) {
        return None;
    }
    setting(&name).map(|value| (name, value))
}

fn show_response(name: &str, value: &str) -> PgWireResult<Response> {
    let fields = Arc::new(vec![FieldInfo::new(
        name.to_string(),
        None,
        None,
        Type::TEXT,
        FieldFormat::Text,
    )]);
    let mut encoder = DataRowEncoder::new(fields.clone());
    encoder.encode_field(&Some(value))?;
    let row = encoder.take_row();
    let rows = futures::stream::once(async move { Ok(row) });
    Ok(Response::Query(QueryResponse::new(fields, Box::pin(rows))))
}

#[async_trait]
impl QueryHook for ShowSettings {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let (name, value) = fixed_setting(statement)?;
        Some(show_response(&name, value))
    }

    async fn handle_extended_parse_query(
        &self,
        _statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        None
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let (name, value) = fixed_setting(statement)?;
        Some(show_response(&name, value))
    }
}
