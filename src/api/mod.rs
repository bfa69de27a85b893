//! HTTP routes: the Prometheus HTTP API (queries, metadata, exemplars, targets, rules,
//! alerts, status, admin), remote write and read, federation, SQL, `explain`, self-metrics,
//! health and lifecycle. Each handler reads its parameters (`params`), calls the engine or
//! storage, and answers in Prometheus's JSON envelope (`error`, `format`).

mod error;
mod exemplars;
mod federate;
mod format;
mod meta;
mod otlp;
mod params;
mod query;
mod rules;
mod sql;
mod status;
mod targets;
mod write;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use futures::future::BoxFuture;

use crate::metrics::Metrics;
use crate::query::promql::PromqlEngine;
use crate::query::sql::SqlEngine;
use crate::scrape::ScrapeManager;
use crate::storage::Storage;

pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub storage: Arc<Storage>,
    pub sql: Arc<SqlEngine>,
    pub promql: Arc<PromqlEngine>,
    /// At most `query.max_concurrency` PromQL queries run at once; the others wait.
    pub query_slots: Arc<tokio::sync::Semaphore>,
    pub metrics: Metrics,
    pub scrape: Arc<ScrapeManager>,
    pub rules: Arc<crate::rules::RuleManager>,
    pub notifier: Arc<crate::notifier::Notifier>,
    pub lifecycle: Arc<dyn Lifecycle>,
    pub options: ApiOptions,
    pub ready: Arc<AtomicBool>,
}

/// Settings of the HTTP layer fixed at start-up.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    pub remote_write_max_body_bytes: usize,
    /// Upper bound for a query's `timeout` parameter.
    pub query_timeout: std::time::Duration,
    /// RFC 3339 start time of the process, for `/api/v1/status/runtimeinfo`.
    pub start_time: String,
    /// The retention flag as given.
    pub retention: String,
    /// Command-line flags by Prometheus name, for `/api/v1/status/flags`.
    pub flags: std::collections::BTreeMap<String, String>,
    /// `--web.enable-lifecycle`: allow `/-/reload` and `/-/quit` over HTTP.
    pub enable_lifecycle: bool,
    /// `--web.enable-admin-api`: allow deleting series.
    pub enable_admin_api: bool,
    /// `--web.enable-otlp-receiver`: accept OTLP metrics.
    pub enable_otlp_receiver: bool,
    /// `--web.cors.origin`: a regex that allowed CORS origins must match in full.
    pub cors_origin: String,
}

/// Server-wide actions the API can trigger; implemented by the server wiring.
pub trait Lifecycle: Send + Sync {
    /// Re-reads the configuration; an invalid one is refused and the running one kept.
    fn reload(&self) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Starts an orderly shutdown.
    fn quit(&self);
    /// The configuration in force now and how the last (re)load went.
    fn config_status(&self) -> ConfigStatus;
}

/// What the status endpoints report of the configuration: always the running one, so they
/// tell the truth after a reload.
#[derive(Debug, Clone)]
pub struct ConfigStatus {
    pub config: Arc<crate::config::Config>,
    /// Whether the last load or reload succeeded (`reloadConfigSuccess`).
    pub last_reload_ok: bool,
    /// RFC 3339 time the running configuration was loaded (`lastConfigTime`).
    pub loaded_at: String,
}

impl ConfigStatus {
    /// `config`, successfully loaded just now.
    pub fn loaded_now(config: Arc<crate::config::Config>) -> ConfigStatus {
        ConfigStatus {
            config,
            last_reload_ok: true,
            loaded_at: crate::gocompat::time::rfc3339_nano(chrono::Utc::now()),
        }
    }
}

pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.options.cors_origin);
    Router::new()
        .route("/api/v1/write", post(write::remote_write))
        .route("/api/v1/otlp/v1/metrics", post(otlp::metrics))
        .route("/api/v1/sql", get(sql::sql).post(sql::sql))
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route(
            "/api/v1/query_exemplars",
            get(exemplars::query_exemplars).post(exemplars::query_exemplars),
        )
        .route("/api/v1/explain", get(query::explain).post(query::explain))
        .route("/api/v1/targets", get(targets::targets))
        .route(
            "/federate",
            get(federate::federate).post(federate::federate),
        )
        .route("/api/v1/read", post(federate::remote_read))
        .route(
            "/api/v1/admin/tsdb/delete_series",
            post(meta::delete_series).put(meta::delete_series),
        )
        .route(
            "/api/v1/admin/tsdb/snapshot",
            post(meta::snapshot).put(meta::snapshot),
        )
        .route(
            "/api/v1/admin/tsdb/clean_tombstones",
            post(meta::clean_tombstones).put(meta::clean_tombstones),
        )
        .route("/api/v1/series", get(meta::series).post(meta::series))
        .route("/api/v1/labels", get(meta::labels).post(meta::labels))
        .route(
            "/api/v1/label/{name}/values",
            get(meta::label_values).post(meta::label_values),
        )
        .route("/api/v1/metadata", get(meta::metadata).post(meta::metadata))
        .route("/api/v1/targets/metadata", get(meta::targets_metadata))
        .route(
            "/api/v1/format_query",
            get(meta::format_query).post(meta::format_query),
        )
        .route(
            "/api/v1/parse_query",
            get(meta::parse_query).post(meta::parse_query),
        )
        .route("/api/v1/status/buildinfo", get(meta::buildinfo))
        .route("/api/v1/status/runtimeinfo", get(meta::runtimeinfo))
        .route("/api/v1/status/flags", get(meta::flags))
        .route("/api/v1/status/config", get(meta::config))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .route("/api/v1/status/blocks", get(status::blocks))
        .route(
            "/api/v1/status/cardinality",
            get(status::cardinality).post(status::cardinality),
        )
        .route("/api/v1/status/walreplay", get(meta::walreplay))
        .route("/api/v1/rules", get(rules::rules).post(rules::rules))
        .route("/api/v1/alerts", get(rules::alerts))
        .route("/api/v1/alertmanagers", get(rules::alertmanagers))
        .route("/api/v1/scrape_pools", get(meta::scrape_pools))
        .route("/-/reload", post(reload).put(reload))
        .route("/-/quit", post(quit).put(quit))
        .route("/metrics", get(self_metrics))
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        // Handlers enforce their own, configurable body limits with clear messages.
        .layer(DefaultBodyLimit::disable())
        // gzip only: Grafana's plugin cannot decode zstd.
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
        .layer(cors)
        .with_state(state)
}

/// Writes to a read-only node (`--storage.read-only`) are refused: it serves the writers'
/// buckets and stores nothing itself.
fn writable(state: &AppState) -> Result<(), error::ApiError> {
    match state.storage.is_read_only() {
        false => Ok(()),
        true => Err(error::ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "bad_data",
            "this Quiver is a read-only query node (--storage.read-only); send writes to a writer",
        )),
    }
}

/// CORS as Prometheus does it: origins matching `--web.cors.origin` (anchored) may read.
fn cors_layer(pattern: &str) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let regex = crate::gocompat::regex::compile_anchored(pattern).ok();
    let allow = AllowOrigin::predicate(move |origin, _| {
        let origin = origin.to_str().unwrap_or("");
        regex.as_ref().is_some_and(|r| r.is_match(origin))
    });
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            HeaderName::from_static("accept"),
            HeaderName::from_static("authorization"),
            HeaderName::from_static("content-type"),
            HeaderName::from_static("origin"),
        ])
        .expose_headers([HeaderName::from_static("date")])
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

/// Ready once started (as Prometheus's); while block cuts to the object store fail, the
/// answer stays 200 (the head and WAL keep taking samples, so a load balancer must keep
/// sending them) and says what is wrong.
async fn ready(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        match state.storage.cut_failure() {
            None => "Quiver Server is Ready.\n".into_response(),
            Some(failure) => format!(
                "Quiver Server is Ready.\nWarning: cutting blocks has failed since {} ({} attempts); the head keeps the samples and the cut is retried: {}\n",
                chrono::DateTime::<chrono::Utc>::from(failure.since).to_rfc3339(),
                failure.attempts,
                failure.error
            )
            .into_response(),
        }
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}

async fn reload(State(state): State<AppState>) -> Response {
    if !state.options.enable_lifecycle {
        return (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.\n").into_response();
    }
    match state.lifecycle.reload().await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e:#}\n"),
        )
            .into_response(),
    }
}

async fn quit(State(state): State<AppState>) -> Response {
    if !state.options.enable_lifecycle {
        return (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.\n").into_response();
    }
    state.lifecycle.quit();
    "Requesting termination... Goodbye!\n".into_response()
}
