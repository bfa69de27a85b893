//! `GET /api/v1/targets`: active and dropped targets in Prometheus's JSON shape.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use crate::model::format_duration;
use crate::scrape::{ActiveTarget, DroppedTarget};

use super::AppState;

pub async fn targets(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Json<Value> {
    let wanted = params
        .get("state")
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_else(|| "any".into());
    let pool_filter = params.get("scrapePool");
    let in_pool = |pool: &str| pool_filter.is_none_or(|p| p == pool);
    let active: Vec<Value> = if wanted == "any" || wanted == "active" {
        state
            .scrape
            .active_targets()
            .await
            .iter()
            .filter(|t| in_pool(&t.pool))
            .map(active_json)
            .collect()
    } else {
        Vec::new()
    };
    let dropped_all = state.scrape.dropped_targets().await;
    let mut dropped_counts: BTreeMap<String, usize> = BTreeMap::new();
    for (pool, _) in &dropped_all {
        *dropped_counts.entry(pool.clone()).or_default() += 1;
    }
    let dropped: Vec<Value> = if wanted == "any" || wanted == "dropped" {
        dropped_all
            .iter()
            .filter(|(pool, _)| in_pool(pool))
            .map(|(pool, d)| dropped_json(pool, d))
            .collect()
    } else {
        Vec::new()
    };
    Json(json!({
        "status": "success",
        "data": {
            "activeTargets": active,
            "droppedTargets": dropped,
            "droppedTargetCounts": dropped_counts,
        }
    }))
}

fn active_json(t: &ActiveTarget) -> Value {
    let last_scrape = t
        .status
        .last_scrape
        .map(|ts| crate::gocompat::time::rfc3339_nano(chrono::DateTime::<chrono::Utc>::from(ts)))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    json!({
        "discoveredLabels": t.target.discovered,
        "labels": t.target.labels,
        "scrapePool": t.pool,
        "scrapeUrl": t.target.url,
        "globalUrl": t.target.url,
        "lastError": t.status.last_error,
        "lastScrape": last_scrape,
        "lastScrapeDuration": t.status.last_scrape_duration,
        "health": t.status.health,
        "scrapeInterval": format_duration(t.target.interval),
        "scrapeTimeout": format_duration(t.target.timeout),
    })
}

/// A target relabeling dropped, with its pool as Prometheus 3 reports it.
fn dropped_json(pool: &str, d: &DroppedTarget) -> Value {
    json!({ "discoveredLabels": d.discovered, "scrapePool": pool })
}
