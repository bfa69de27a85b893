//! Series selection by `match[]` selectors, for the metadata APIs (series, labels, label
//! values) and federation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use promql_parser::label::MatchOp;
use promql_parser::parser::{Expr as PromExpr, VectorSelector};

use crate::model::{Labels, METRIC_NAME_LABEL, SeriesId};
use crate::query::sql::tables::SeriesSet;
use crate::storage::{Head, Storage};

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
/// Head series are found by intersecting the postings of the equality matchers, block series
/// by testing each series of the selected metric.
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
        storage.with_head(|head, _| {
            for id in head_candidates(head, &vs) {
                if let Some(s) = head.get(id)
                    && !s.range(min, max.saturating_add(1)).is_empty()
                    && selector_matches(&vs, &s.labels.iter().collect::<Vec<_>>())
                {
                    found.insert(id, s.labels.clone());
                }
            }
        });
        let set =
            SeriesSet::collect_blocks_in_range(storage, metric_name(&vs).as_deref(), min, max)
                .await
                .map_err(internal)?;
        for (id, labels) in set.series {
            if selector_matches(&vs, &labels.iter().collect::<Vec<_>>()) {
                found.insert(id, labels);
            }
        }
    }
    let mut series: Vec<Arc<Labels>> = found.into_values().collect();
    series.sort();
    series.dedup();
    Ok(series)
}

/// The equality matchers of a selector (its metric name included), non-empty values only.
fn equality_matchers(vs: &VectorSelector) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = vs
        .matchers
        .matchers
        .iter()
        .filter(|m| matches!(m.op, MatchOp::Equal) && !m.value.is_empty())
        .map(|m| (m.name.as_str(), m.value.as_str()))
        .collect();
    if let Some(name) = &vs.name {
        out.push((METRIC_NAME_LABEL, name.as_str()));
    }
    out
}

/// Head series that satisfy every equality matcher: the intersection of their postings,
/// walking the smallest list. Without equality matchers, every head series.
fn head_candidates(head: &Head, vs: &VectorSelector) -> Vec<SeriesId> {
    if !vs.matchers.or_matchers.is_empty() {
        return head.all_series().map(|(id, _)| *id).collect();
    }
    let mut lists: Vec<&BTreeSet<SeriesId>> = Vec::new();
    for (name, value) in equality_matchers(vs) {
        match head.postings(name, value) {
            Some(list) => lists.push(list),
            None => return Vec::new(),
        }
    }
    if lists.is_empty() {
        return head.all_series().map(|(id, _)| *id).collect();
    }
    lists.sort_by_key(|l| l.len());
    lists[0]
        .iter()
        .filter(|id| lists[1..].iter().all(|l| l.contains(id)))
        .copied()
        .collect()
}

/// Values of `label` among head series matching selectors made only of equality matchers,
/// without visiting series: a value counts if its postings meet every matcher's postings.
/// None when a selector has other matchers (the caller then selects series).
pub fn head_label_values_by_postings(
    head: &Head,
    label: &str,
    selectors: &[VectorSelector],
) -> Option<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for vs in selectors {
        let only_equality = vs.matchers.or_matchers.is_empty()
            && vs
                .matchers
                .matchers
                .iter()
                .all(|m| matches!(m.op, MatchOp::Equal) && !m.value.is_empty());
        if !only_equality {
            return None;
        }
        let mut lists: Vec<&BTreeSet<SeriesId>> = Vec::new();
        let mut missing = false;
        for (name, value) in equality_matchers(vs) {
            match head.postings(name, value) {
                Some(list) => lists.push(list),
                None => missing = true,
            }
        }
        if missing {
            continue;
        }
        for value in head.label_values(label) {
            let Some(list) = head.postings(label, value) else {
                continue;
            };
            let mut all: Vec<&BTreeSet<SeriesId>> = lists.clone();
            all.push(list);
            all.sort_by_key(|l| l.len());
            if all[0]
                .iter()
                .any(|id| all[1..].iter().all(|l| l.contains(id)))
            {
                out.insert(value.clone());
            }
        }
    }
    Some(out)
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

/// Values of `label` among the series the selectors pick, when every selector is made of
/// equality matchers: head values from postings, block values from the blocks' series.
/// None when a selector needs other matchers.
pub async fn label_values_matching(
    storage: &Storage,
    label: &str,
    selectors: &[String],
    min: i64,
    max: i64,
) -> Result<Option<BTreeSet<String>>, PromqlError> {
    let parsed = selectors
        .iter()
        .map(|s| parse_selector(s))
        .collect::<Result<Vec<_>, _>>()?;
    let head_values = storage.with_head(|head, _| {
        let overlaps = head
            .min_time()
            .zip(head.max_time())
            .is_some_and(|(lo, hi)| lo <= max && min <= hi);
        if overlaps {
            head_label_values_by_postings(head, label, &parsed)
        } else if parsed.iter().all(|vs| {
            head_label_values_by_postings(head, label, std::slice::from_ref(vs)).is_some()
        }) {
            Some(BTreeSet::new())
        } else {
            None
        }
    });
    let Some(mut values) = head_values else {
        return Ok(None);
    };
    for vs in &parsed {
        let set = SeriesSet::collect_blocks_in_range(storage, metric_name(vs).as_deref(), min, max)
            .await
            .map_err(|e| PromqlError::Execution(format!("{e:#}")))?;
        for labels in set.series.values() {
            if selector_matches(vs, &labels.iter().collect::<Vec<_>>())
                && let Some(v) = labels.get(label)
            {
                values.insert(v.to_string());
            }
        }
    }
    Ok(Some(values))
}
