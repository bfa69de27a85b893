//! `GET/POST /api/v1/sql`: SQL over HTTP. The statement comes in the `query` parameter (URL
//! or form body; a `text/plain` or `application/sql` body is taken as the statement itself).
//! Results as JSON (default), CSV or an Arrow IPC stream, chosen by `format` or `Accept`.

use std::collections::HashMap;

use axum::body::{Body, to_bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::query::sql::{QueryResult, SqlError};

use super::AppState;
use super::error::ApiError;
use super::format::{self, OutputFormat};

/// Largest accepted request body (the statement text), in bytes.
const MAX_SQL_BODY: usize = 1 << 20;

pub async fn sql(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match run(&state, query, &headers, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn run(
    state: &AppState,
    query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = request_params(query, headers, body).await?;
    let statement = params
        .get("query")
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| ApiError::bad_data("missing parameter \"query\" (the SQL statement)"))?;
    let output = OutputFormat::choose(params.get("format").map(String::as_str), headers)
        .map_err(ApiError::bad_data)?;
    let result = state.sql.query(statement).await.map_err(to_api_error)?;
    render(output, &result)
}

/// Merges URL parameters with a form body, as Prometheus does; a plain-text body is the
/// statement.
async fn request_params(
    query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<HashMap<String, String>, ApiError> {
    let mut params: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let bytes = to_bytes(body, MAX_SQL_BODY).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bad_data",
            format!("request body exceeds {MAX_SQL_BODY} bytes"),
        )
    })?;
    if bytes.is_empty() {
        return Ok(params);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        params.extend(url::form_urlencoded::parse(&bytes).into_owned());
    } else if content_type.starts_with("text/plain") || content_type.starts_with("application/sql")
    {
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| ApiError::bad_data("SQL body is not valid UTF-8"))?;
        params.insert("query".into(), text);
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_data",
            format!(
                "unsupported Content-Type {content_type:?}: send a form (query=...) or text/plain SQL"
            ),
        ));
    }
    Ok(params)
}

fn to_api_error(e: SqlError) -> ApiError {
    match e {
        SqlError::BadQuery(_) | SqlError::ReadOnly(_) => ApiError::bad_data(e.to_string()),
        SqlError::Timeout(_) => ApiError::timeout(e.to_string()),
        SqlError::TooManyRows(_) | SqlError::ResourcesExhausted(_) | SqlError::Execution(_) => {
            ApiError::execution(e.to_string())
        }
    }
}

fn render(output: OutputFormat, result: &QueryResult) -> Result<Response, ApiError> {
    let internal = |e: anyhow::Error| ApiError::internal(format!("encoding result: {e:#}"));
    let (content_type, body) = match output {
        OutputFormat::Json => (
            "application/json",
            format::to_json(result).map_err(internal)?,
        ),
        OutputFormat::Csv => (
            "text/csv; charset=utf-8",
            format::to_csv(result).map_err(internal)?,
        ),
        OutputFormat::Arrow => (
            "application/vnd.apache.arrow.stream",
            format::to_arrow_ipc(result).map_err(internal)?,
        ),
    };
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}
