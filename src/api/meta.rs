//! Metadata and status endpoints of the Prometheus HTTP API: series, label names and
//! values, metric metadata, build info, flags, runtime status and WAL replay, and the
//! shape of the exemplars endpoint (exemplars are not stored). The status of the stored
//! data (TSDB, blocks, cardinality) is in `status`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::query::promql::select::{self, select_series};

use super::AppState;
use super::error::ApiError;
use super::params::Params;
use super::query::to_api_error;

pub(super) fn success(data: Value) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

pub(super) fn respond(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(data) => success(data),
        Err(e) => e.into_response(),
    }
}

/// `start`/`end` (default: all time) and `match[]` of a metadata request.
struct Selection {
    matchers: Vec<String>,
    start: i64,
    end: i64,
    limit: Option<usize>,
}

impl Selection {
    fn read(params: &Params) -> Result<Selection, ApiError> {
        let limit = match params.get("limit") {
            None => None,
            Some(text) => match text.parse::<usize>() {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(ApiError::bad_data(format!(
                        "invalid parameter \"limit\": cannot parse {text:?}"
                    )));
                }
            },
        };
        Ok(Selection {
            matchers: params.all("match[]"),
            start: params.time_ms("start", i64::MIN)?,
            end: params.time_ms("end", i64::MAX)?,
            limit,
        })
    }
}

fn truncate<T>(mut items: Vec<T>, limit: Option<usize>) -> Vec<T> {
    if let Some(n) = limit {
        items.truncate(n);
    }
    items
}

pub async fn series(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let params = Params::read(query, &headers, body).await?;
        let selection = Selection::read(&params)?;
        if selection.matchers.is_empty() {
            return Err(ApiError::bad_data("no match[] parameter provided"));
        }
        let series = select_series(
            &state.storage,
            &selection.matchers,
            selection.start,
            selection.end,
        )
        .await
        .map_err(to_api_error)?;
        let items: Vec<Value> = series
            .iter()
            .map(|labels| {
                Value::Object(
                    labels
                        .iter()
                        .map(|(n, v)| (n.to_string(), Value::String(v.to_string())))
                        .collect(),
                )
            })
            .collect();
        Ok(Value::Array(truncate(items, selection.limit)))
    }
    .await;
    respond(result)
}

pub async fn labels(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let params = Params::read(query, &headers, body).await?;
        let selection = Selection::read(&params)?;
        let names = label_set(&state, &selection, None).await?;
        let names: Vec<Value> = names.into_iter().map(Value::String).collect();
        Ok(Value::Array(truncate(names, selection.limit)))
    }
    .await;
    respond(result)
}

pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let name = decode_label_name(&name)?;
        let params = Params::read(query, &headers, body).await?;
        let selection = Selection::read(&params)?;
        let values = label_set(&state, &selection, Some(&name)).await?;
        let values: Vec<Value> = values.into_iter().map(Value::String).collect();
        Ok(Value::Array(truncate(values, selection.limit)))
    }
    .await;
    respond(result)
}

/// Label names (`label` None) or one label's values across the selected series.
async fn label_set(
    state: &AppState,
    selection: &Selection,
    label: Option<&str>,
) -> Result<BTreeSet<String>, ApiError> {
    select::label_set(
        &state.storage,
        label,
        &selection.matchers,
        selection.start,
        selection.end,
    )
    .await
    .map_err(to_api_error)
}

/// Label names in the path may use Prometheus's `U__` encoding for UTF-8 names, or be
/// written as they are (any name Prometheus 3.x takes); a `U__` name that does not decode
/// is taken as written, as Prometheus's `UnescapeName` does.
fn decode_label_name(raw: &str) -> Result<String, ApiError> {
    let name = raw
        .strip_prefix("U__")
        .and_then(unescape_value_encoding)
        .unwrap_or_else(|| raw.to_string());
    match crate::model::is_valid_utf8_label_name(&name) {
        true => Ok(name),
        false => Err(ApiError::bad_data(format!("invalid label name: {raw:?}"))),
    }
}

/// Prometheus's value encoding of a name: `__` is `_`, `_<hex>_` the character of that code
/// point, anything else itself; None when it does not decode.
fn unescape_value_encoding(encoded: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = encoded;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("__") {
            out.push('_');
            rest = after;
        } else if let Some(after) = rest.strip_prefix('_') {
            let end = after.find('_')?;
            let code = u32::from_str_radix(&after[..end], 16)
                .ok()
                .and_then(char::from_u32)?;
            out.push(code);
            rest = &after[end + 1..];
        } else {
            let c = rest.chars().next()?;
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    Some(out)
}

/// `/api/v1/metadata`: metric metadata from the latest scrapes of every target.
pub async fn metadata(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let params = Params::read(query, &headers, body).await?;
        let limit = params
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0);
        let per_metric = params
            .get("limit_per_metric")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0);
        let wanted = params.get("metric");
        let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for target in state.scrape.active_targets().await {
            for m in &target.status.metadata {
                if wanted.is_some_and(|w| w != m.metric_family) {
                    continue;
                }
                let entry = json!({"type": m.metric_type.name(), "help": m.help, "unit": m.unit});
                let list = out.entry(m.metric_family.clone()).or_default();
                if !list.contains(&entry) && per_metric.is_none_or(|n| list.len() < n) {
                    list.push(entry);
                }
            }
        }
        let mut data = serde_json::Map::new();
        for (name, list) in out {
            if limit.is_some_and(|l| data.len() >= l) {
                break;
            }
            data.insert(name, Value::Array(list));
        }
        Ok(Value::Object(data))
    }
    .await;
    respond(result)
}

/// `/api/v1/targets/metadata`.
pub async fn targets_metadata(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let params = Params::read(query, &headers, body).await?;
        let metric = params.get("metric");
        let limit = params
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0);
        let mut items = Vec::new();
        for target in state.scrape.active_targets().await {
            let labels = &target.target.labels;
            for m in &target.status.metadata {
                if metric.is_some_and(|w| w != m.metric_family) {
                    continue;
                }
                items.push(json!({
                    "target": labels,
                    "metric": m.metric_family,
                    "type": m.metric_type.name(),
                    "help": m.help,
                    "unit": m.unit,
                }));
            }
        }
        Ok(Value::Array(truncate(items, limit)))
    }
    .await;
    respond(result)
}

/// `/api/v1/status/buildinfo`, without a `features` map (that would make Grafana treat
/// the server as Mimir).
pub async fn buildinfo() -> Response {
    success(json!({
        "version": crate::PROMETHEUS_COMPAT_VERSION,
        "revision": env!("CARGO_PKG_VERSION"),
        "branch": "quiver",
        "buildUser": "quiver",
        "buildDate": "",
        "goVersion": concat!("quiver-", env!("CARGO_PKG_VERSION")),
    }))
}

pub async fn runtimeinfo(State(state): State<AppState>) -> Response {
    let manifest = state.storage.manifest();
    let config = state.lifecycle.config_status();
    success(json!({
        "startTime": state.options.start_time,
        "CWD": std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default(),
        "reloadConfigSuccess": config.last_reload_ok,
        "lastConfigTime": config.loaded_at,
        "corruptionCount": state.storage.replay_report().truncated.len(),
        "goroutineCount": 0,
        "GOMAXPROCS": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "GOMEMLIMIT": 0,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": state.options.retention,
        "blocks": manifest.blocks.len(),
    }))
}

pub async fn flags(State(state): State<AppState>) -> Response {
    success(json!(state.options.flags))
}

pub async fn config(State(state): State<AppState>) -> Response {
    let running = state.lifecycle.config_status().config;
    match serde_norway::to_string(running.as_ref()) {
        Ok(yaml) => success(json!({ "yaml": yaml })),
        Err(e) => ApiError::internal(format!("serializing the configuration: {e}")).into_response(),
    }
}

pub async fn walreplay(State(state): State<AppState>) -> Response {
    let report = state.storage.replay_report();
    success(json!({"min": 0, "max": report.segments, "current": report.segments}))
}

pub async fn scrape_pools(State(state): State<AppState>) -> Response {
    success(json!({"scrapePools": state.scrape.pool_names().await}))
}

/// `/api/v1/parse_query`: the query's syntax tree as JSON, in the shape Prometheus's UI
/// reads (node `type`s `vectorSelector`, `binaryExpr`, `aggregation`, ...).
pub async fn parse_query(RawQuery(query): RawQuery, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let params = Params::read(query, &headers, body).await?;
        let expr = crate::query::promql::PromqlEngine::parse(params.require("query")?)
            .map_err(to_api_error)?;
        serde_json::to_value(&expr)
            .map_err(|e| ApiError::internal(format!("encoding the syntax tree: {e}")))
    }
    .await;
    respond(result)
}

/// `/api/v1/format_query`: the query pretty-printed.
pub async fn format_query(RawQuery(query): RawQuery, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let params = Params::read(query, &headers, body).await?;
        let expr = crate::query::promql::PromqlEngine::parse(params.require("query")?)
            .map_err(to_api_error)?;
        Ok(Value::String(expr.prettify()))
    }
    .await;
    respond(result)
}

/// `POST /api/v1/admin/tsdb/delete_series` (with `--web.enable-admin-api`): deletes the
/// selected series' samples in `[start, end]` from head and blocks at once.
pub async fn delete_series(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let params = admin_params(&state, query, &headers, body).await?;
        let selection = Selection::read(&params)?;
        if selection.matchers.is_empty() {
            return Err(ApiError::bad_data("no match[] parameter provided"));
        }
        let selectors = select::parse_selectors(&selection.matchers).map_err(to_api_error)?;
        let select: Arc<dyn Fn(&crate::model::Labels) -> bool + Send + Sync> =
            Arc::new(move |labels| selectors.iter().any(|s| s.matches(labels)));
        let deleted = state
            .storage
            .delete_series(select, selection.start, selection.end)
            .await
            .map_err(|e| ApiError::internal(format!("{e:#}")))?;
        tracing::info!(deleted, "deleted series samples");
        Ok(())
    }
    .await;
    match result {
        Ok(()) => axum::http::StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/v1/admin/tsdb/snapshot` (with `--web.enable-admin-api`): a consistent copy of
/// the data under `snapshots/<name>/` of the data directory (or of the bucket's prefix),
/// which a Quiver started on it serves; `skip_head=true` leaves out what is not yet in blocks.
pub async fn snapshot(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let params = admin_params(&state, query, &headers, body).await?;
        let skip_head = params.flag("skip_head")?;
        let info = state
            .storage
            .write_snapshot(skip_head)
            .await
            .map_err(|e| ApiError::internal(format!("create snapshot: {e:#}")))?;
        Ok(json!({ "name": info.name }))
    }
    .await;
    respond(result)
}

/// `POST /api/v1/admin/tsdb/clean_tombstones`: deletions are applied to blocks at once,
/// so there is nothing left to clean.
pub async fn clean_tombstones(State(state): State<AppState>) -> Response {
    match admin_enabled(&state) {
        Ok(()) => axum::http::StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// The parameters of an admin request that changes storage, once the admin API is enabled
/// and this node is writable.
async fn admin_params(
    state: &AppState,
    query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Params, ApiError> {
    admin_enabled(state)?;
    super::writable(state)?;
    Params::read(query, headers, body).await
}

fn admin_enabled(state: &AppState) -> Result<(), ApiError> {
    if state.options.enable_admin_api {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "admin APIs disabled",
        ))
    }
}
