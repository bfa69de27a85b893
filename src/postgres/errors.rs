//! DataFusion's errors as PostgreSQL ErrorResponses with the SQLSTATE a client can act on
//! (`42P01` undefined table, `42601` syntax error, ...) instead of pgwire's catch-all `XX000`.

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
use pgwire::api::{ClientInfo, ErrorHandler};
use pgwire::error::{ErrorInfo, PgWireError};

pub struct SqlStateErrors;

impl ErrorHandler for SqlStateErrors {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        let PgWireError::ApiError(inner) = error else {
            return;
        };
        let (code, message) = if let Some(e) = inner.downcast_ref::<DataFusionError>() {
            (sqlstate(e), e.find_root().to_string())
        } else if inner.downcast_ref::<ParserError>().is_some() {
            ("42601", inner.to_string())
        } else {
            ("XX000", inner.to_string())
        };
        tracing::debug!(code, message = %message, "query failed");
        *error = PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".to_string(),
            code.to_string(),
            message,
        )));
    }
}

/// The SQLSTATE for a DataFusion error.
pub fn sqlstate(e: &DataFusionError) -> &'static str {
    let root = e.find_root();
    let text = root.to_string();
    match root {
        DataFusionError::SQL(..) => "42601",
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::SchemaError(..) if text.contains("No field named") => "42703",
        DataFusionError::SchemaError(..) => "42P01",
        DataFusionError::Plan(m) if m.contains("not found") && m.contains("table") => "42P01",
        DataFusionError::Plan(m) if m.contains("Invalid function") => "42883",
        DataFusionError::Plan(m) if m.contains("read-only") => "25006",
        DataFusionError::Plan(m) if m.contains("unrecognized configuration parameter") => "42704",
        DataFusionError::Plan(_) => "42000",
        DataFusionError::ArrowError(a, _) if a.to_string().contains("Divide by zero") => "22012",
        DataFusionError::ArrowError(..) => "22000",
        DataFusionError::Execution(m) if m.contains("Divide by zero") => "22012",
        DataFusionError::Execution(_) => "22000",
        _ => "XX000",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_errors_get_their_sqlstate() {
        let plan = |m: &str| DataFusionError::Plan(m.to_string());
        assert_eq!(
            sqlstate(&plan("table 'quiver.public.nope' not found")),
            "42P01"
        );
        assert_eq!(sqlstate(&plan("Invalid function 'nope'")), "42883");
        assert_eq!(
            sqlstate(&DataFusionError::NotImplemented("x".into())),
            "0A000"
        );
        assert_eq!(
            sqlstate(&DataFusionError::ResourcesExhausted("x".into())),
            "53200"
        );
    }
}
