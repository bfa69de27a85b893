//! Series selection by `match[]` selectors, for the metadata APIs (series, labels, label
//! values) and federation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use promql_parser::parser::Expr as PromExpr;

use crate::model::{Labels, SeriesId};
use crate::query::sql::tables::SeriesSet;
use crate::storage::Storage;

use super::PromqlError;
use super::planner::{metric_name, selector_matches};

/// Parses a `match[]` value; it must be a plain vector selector.
pub fn parse_selector(text: &str) -> Result<promql_parser::parser::VectorSelector, PromqlError> {
    match promql_parser::parser::parse(text).map_err(PromqlError::BadData)? {
        PromExpr::VectorSelector(vs) => Ok(vs),
        _ => Err(PromqlError::BadData(format!(
            "invalid parameter \"match[]\": {text:?} is not a vector selector"
        ))),
    }
}

/// Series with samples in `[min, max]` matching any of the selectors (all series when none).
pub async fn select_series(
    storage: &Storage,
    selectors: &[String],
    min: i64,
    max: i64,
) -> Result<Vec<Arc<Labels>>, PromqlError> {
    let internal = |e: anyhow::Error| PromqlError::Execution(format!("{e:#}"));
    let mut found: BTreeMap<SeriesId, Arc<Labels>> = BTreeMap::new();
    if selectors.is_empty() {
        let set = SeriesSet::collect_in_range(storage, None, min, max)
            .await
            .map_err(internal)?;
        found.extend(set.series);
    }
    for text in selectors {
        let vs = parse_selector(text)?;
        let set = SeriesSet::collect_in_range(storage, metric_name(&vs).as_deref(), min, max)
            .await
            .map_err(internal)?;
        for (id, labels) in set.series {
            let pairs: Vec<(&str, &str)> = labels.iter().collect();
            if selector_matches(&vs, &pairs) {
                found.insert(id, labels);
            }
        }
    }
    let mut series: Vec<Arc<Labels>> = found.into_values().collect();
    series.sort();
    series.dedup();
    Ok(series)
}

/// Label names, or the values of one label, of all series with samples in `[min, max]`,
/// read from the head's postings and the blocks' series without touching every series.
pub async fn label_index(
    storage: &Storage,
    label: Option<&str>,
    min: i64,
    max: i64,
) -> Result<BTreeSet<String>, PromqlError> {
    let mut out = BTreeSet::new();
    let manifest = storage.with_head(|head, manifest| {
        let head_overlaps = head
            .min_time()
            .zip(head.max_time())
            .is_some_and(|(lo, hi)| lo <= max && min <= hi);
        if head_overlaps {
            match label {
                None => out.extend(head.label_names().cloned()),
                Some(name) => out.extend(head.label_values(name).cloned()),
            }
        }
        manifest.clone()
    });
    for block in manifest.blocks.iter().filter(|b| b.overlaps(min, max)) {
        let series = storage
            .block_series(block)
            .await
            .map_err(|e| PromqlError::Execution(format!("{e:#}")))?;
        for labels in series.by_metric.values().flatten().map(|(_, l)| l) {
            match label {
                None => out.extend(labels.iter().map(|(n, _)| n.to_string())),
                Some(name) => out.extend(labels.get(name).map(str::to_string)),
            }
        }
    }
    Ok(out)
}
