//! Series selection by `match[]` selectors, for the metadata APIs (series, labels, label
//! values), federation and series deletion: PromQL's selector syntax turned into storage's
//! matchers, then storage's querier does the selecting.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use promql_parser::parser::{Expr as PromExpr, VectorSelector};

use crate::model::{Labels, Selector};
use crate::storage::Storage;

use super::PromqlError;
use super::planner::to_selector;

/// Parses a `match[]` value; it must be a plain vector selector.
pub fn parse_selector(text: &str) -> Result<VectorSelector, PromqlError> {
    match promql_parser::parser::parse(text).map_err(PromqlError::BadData)? {
        PromExpr::VectorSelector(vs) => Ok(vs),
        _ => Err(PromqlError::BadData(format!(
            "invalid parameter \"match[]\": {text:?} is not a vector selector"
        ))),
    }
}

/// Parses every `match[]` value into storage's selector.
pub fn parse_selectors(texts: &[String]) -> Result<Vec<Selector>, PromqlError> {
    texts
        .iter()
        .map(|t| parse_selector(t).map(|vs| to_selector(&vs)))
        .collect()
}

fn storage_error(e: anyhow::Error) -> PromqlError {
    PromqlError::Execution(format!("{e:#}"))
}

/// Series with samples in `[min, max]` matching any of the selectors (all series when none),
/// sorted by label set.
pub async fn select_series(
    storage: &Storage,
    selectors: &[String],
    min: i64,
    max: i64,
) -> Result<Vec<Arc<Labels>>, PromqlError> {
    let mut selectors = parse_selectors(selectors)?;
    if selectors.is_empty() {
        selectors.push(Selector::all());
    }
    let mut found = BTreeMap::new();
    for selector in &selectors {
        found.extend(
            storage
                .select_series(selector, min, max)
                .await
                .map_err(storage_error)?,
        );
    }
    let mut series: Vec<Arc<Labels>> = found.into_values().collect();
    series.sort();
    series.dedup();
    Ok(series)
}

/// Label names (`label` None) or one label's values among the series with samples in
/// `[min, max]` that any selector picks (every series when there is none).
pub async fn label_set(
    storage: &Storage,
    label: Option<&str>,
    selectors: &[String],
    min: i64,
    max: i64,
) -> Result<BTreeSet<String>, PromqlError> {
    let selectors = parse_selectors(selectors)?;
    match label {
        None => storage.label_names(&selectors, min, max).await,
        Some(name) => storage.label_values(name, &selectors, min, max).await,
    }
    .map_err(storage_error)
}
