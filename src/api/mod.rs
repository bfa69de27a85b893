//! HTTP routes: remote write, SQL, self-metrics and health. (The Prometheus query API joins
//! here as the PromQL engine lands.)

mod error;
mod format;
mod sql;
mod write;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::query::sql::SqlEngine;
use crate::storage::Storage;

pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub storage: Arc<Storage>,
    pub sql: Arc<SqlEngine>,
    pub metrics: Metrics,
    pub config: Arc<Config>,
    pub ready: Arc<AtomicBool>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/write", post(write::remote_write))
        .route("/api/v1/sql", get(sql::sql).post(sql::sql))
        .route("/metrics", get(self_metrics))
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        // Handlers enforce their own, configurable body limits with clear messages.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn self_metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn healthy() -> &'static str {
    "Quiver Server is Healthy.\n"
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        "Quiver Server is Ready.\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}
