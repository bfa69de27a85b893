//! The read-only guard of the wire protocol: only queries and session statements run, as on
//! `/api/v1/sql`. It sees each statement before anything plans it.

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use pgwire::api::ClientInfo;
use pgwire::api::results::Response;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

pub struct ReadOnly;

/// Statements that read, or only touch the session (transactions, cursors, settings).
fn allowed(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Query(_)
            | Statement::Explain { .. }
            | Statement::Set(_)
            | Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Declare { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. }
            | Statement::Discard { .. }
            | Statement::Deallocate { .. }
    )
}

fn refusal(statement: &Statement) -> Option<PgWireError> {
    if allowed(statement) {
        return None;
    }
    let text = statement.to_string();
    let verb: String = text
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    Some(PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        "25006".to_string(),
        format!(
            "cannot execute {verb} in a read-only transaction: Quiver's SQL interface is read-only"
        ),
    ))))
}

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        refusal(statement).map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        refusal(statement).map(Err)
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        refusal(statement).map(Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn verdict(sql: &str) -> bool {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        allowed(&statements[0])
    }

    #[test]
    fn reads_pass_writes_do_not() {
        assert!(verdict("SELECT 1"));
        assert!(verdict("SET statement_timeout = 1000"));
        assert!(verdict("BEGIN"));
        assert!(verdict("SHOW search_path"));
        assert!(!verdict("INSERT INTO up VALUES (1)"));
        assert!(!verdict("DROP TABLE up"));
        assert!(!verdict("CREATE TABLE t (a int)"));
        assert!(!verdict("COPY up TO STDOUT"));
        assert!(!verdict("DELETE FROM up"));
    }
}
