//! Reading storage, as Prometheus's `storage.Querier`: series by matchers, label names and
//! values, and the head's samples as columns. PromQL, the SQL tables, the metadata API and
//! federation read through these; the head's types stay private to storage.
//!
//! Every read that joins head and blocks takes the head and the manifest as one consistent
//! view: a sample is either in a block of that manifest or in the head at or after the
//! manifest's `flushed_until`, never both or neither.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::model::{Labels, METRIC_NAME_LABEL, Selector, SeriesId};

use super::head::SampleColumns;
use super::{Manifest, Storage};

/// Which head series a sample read covers.
#[derive(Debug, Clone, Copy)]
pub enum SeriesScope<'a> {
    /// Exactly these (a query that selected its series already).
    Ids(&'a [SeriesId]),
    /// Every series of one metric.
    Metric(&'a str),
    All,
}

/// Samples read from the head: `series[i]` is the series of row `i` of `columns`.
#[derive(Debug, Default)]
pub struct HeadSamples {
    pub series: Vec<SeriesId>,
    pub columns: SampleColumns,
}

/// The head's size, for `/api/v1/status/tsdb`.
#[derive(Debug, Clone, Default)]
pub struct HeadStats {
    pub num_series: usize,
    pub num_samples: usize,
    pub num_chunks: usize,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    /// Heap bytes of the compressed samples.
    pub chunk_bytes: usize,
}

impl Storage {
    /// Series the selector picks with a sample in `[min, max]` (ms), from the head (through
    /// its postings) and from the blocks overlapping the range (through their series files,
    /// only those holding the selector's metric when it names one).
    pub async fn select_series(
        &self,
        selector: &Selector,
        min: i64,
        max: i64,
    ) -> anyhow::Result<BTreeMap<SeriesId, Arc<Labels>>> {
        let (head, manifest) =
            self.snapshot(|head| head.select(selector, min, max.saturating_add(1)));
        let mut found: BTreeMap<SeriesId, Arc<Labels>> = head.into_iter().collect();
        let metric = selector.metric_name();
        for block in &manifest.blocks {
            if !block.overlaps(min, max) || metric.is_some_and(|m| !block.metrics.contains_key(m)) {
                continue;
            }
            let block_series = self.block_series(block).await?;
            let lists: Vec<&Vec<(SeriesId, Arc<Labels>)>> = match metric {
                Some(m) => block_series.by_metric.get(m).into_iter().collect(),
                None => block_series.by_metric.values().collect(),
            };
            for (id, labels) in lists.into_iter().flatten() {
                if !found.contains_key(id) && selector.matches(labels) {
                    found.insert(*id, labels.clone());
                }
            }
        }
        Ok(found)
    }

    /// Label names of the series with samples in `[min, max]` that any selector picks (of
    /// every series when `selectors` is empty), sorted.
    pub async fn label_names(
        &self,
        selectors: &[Selector],
        min: i64,
        max: i64,
    ) -> anyhow::Result<BTreeSet<String>> {
        if selectors.is_empty() {
            return self.label_index(None, min, max).await;
        }
        let mut out = BTreeSet::new();
        for selector in selectors {
            for labels in self.select_series(selector, min, max).await?.values() {
                out.extend(labels.iter().map(|(n, _)| n.to_string()));
            }
        }
        Ok(out)
    }

    /// Values of label `name` among the series with samples in `[min, max]` that any
    /// selector picks (among every series when `selectors` is empty), sorted.
    pub async fn label_values(
        &self,
        name: &str,
        selectors: &[Selector],
        min: i64,
        max: i64,
    ) -> anyhow::Result<BTreeSet<String>> {
        if selectors.is_empty() {
            return self.label_index(Some(name), min, max).await;
        }
        let mut out = BTreeSet::new();
        for selector in selectors {
            for labels in self.select_series(selector, min, max).await?.values() {
                out.extend(labels.get(name).map(str::to_string));
            }
        }
        Ok(out)
    }

    /// Label names (or one label's values) of every series, from the head's postings and
    /// the overlapping blocks' series files, without testing each head series.
    async fn label_index(
        &self,
        label: Option<&str>,
        min: i64,
        max: i64,
    ) -> anyhow::Result<BTreeSet<String>> {
        let (mut out, manifest) = self.snapshot(|head| {
            let mut out = BTreeSet::new();
            if head.overlaps(min, max) {
                match label {
                    None => out.extend(head.label_names().cloned()),
                    Some(name) => out.extend(head.label_values(name).cloned()),
                }
            }
            out
        });
        for block in manifest.blocks.iter().filter(|b| b.overlaps(min, max)) {
            let series = self.block_series(block).await?;
            for labels in series.by_metric.values().flatten().map(|(_, l)| l) {
                match label {
                    None => out.extend(labels.iter().map(|(n, _)| n.to_string())),
                    Some(name) => out.extend(labels.get(name).map(str::to_string)),
                }
            }
        }
        Ok(out)
    }

    /// The head's samples with `min <= ts <= max` of the series in `scope`, decoded from
    /// the chunks that overlap the range, with the manifest they are consistent with: rows
    /// older than its `flushed_until` are left to its blocks.
    pub fn read_head(
        &self,
        scope: SeriesScope<'_>,
        min: i64,
        max: i64,
    ) -> (HeadSamples, Arc<Manifest>) {
        let state = super::read(&self.head);
        let manifest = self.manifest();
        let min = min.max(manifest.flushed_until.unwrap_or(i64::MIN));
        let max = max.saturating_add(1);
        let head = &state.head;
        let ids: Vec<SeriesId> = match scope {
            SeriesScope::Ids(ids) => ids.to_vec(),
            SeriesScope::Metric(m) => head
                .metric(m)
                .map(|idx| idx.series.iter().copied().collect())
                .unwrap_or_default(),
            SeriesScope::All => head.all_series().map(|(id, _)| *id).collect(),
        };
        let mut out = HeadSamples::default();
        for id in ids {
            if let Some(s) = head.get(id) {
                let n = s.read_into(min, max, &mut out.columns);
                out.series.extend(std::iter::repeat_n(id, n));
            }
        }
        (out, manifest)
    }

    /// Metric names across head and blocks.
    pub fn metric_names(&self) -> BTreeSet<String> {
        let (mut names, manifest) =
            self.snapshot(|head| head.metrics().keys().cloned().collect::<BTreeSet<_>>());
        for block in &manifest.blocks {
            names.extend(block.metrics.keys().cloned());
        }
        names
    }

    /// Label names (without `__name__`) per metric across head and blocks: a metric
    /// table's columns, known without reading any series file.
    pub fn metric_label_names(&self) -> HashMap<String, BTreeSet<String>> {
        let (mut out, manifest) = self.snapshot(|head| {
            head.metrics()
                .iter()
                .map(|(m, idx)| (m.clone(), idx.label_names.clone()))
                .collect::<HashMap<_, _>>()
        });
        for block in &manifest.blocks {
            for (m, names) in &block.metrics {
                out.entry(m.clone())
                    .or_default()
                    .extend(names.iter().cloned());
            }
        }
        out
    }

    /// The label sets of every head series (for cardinality statistics).
    pub fn head_labels(&self) -> Vec<Arc<Labels>> {
        self.snapshot(|head| head.all_series().map(|(_, s)| s.labels().clone()).collect())
            .0
    }

    pub fn head_stats(&self) -> HeadStats {
        self.snapshot(|head| HeadStats {
            num_series: head.num_series(),
            num_samples: head.num_samples(),
            num_chunks: head.num_chunks(),
            min_time: head.min_time(),
            max_time: head.max_time(),
            chunk_bytes: head.all_series().map(|(_, s)| s.chunk_bytes()).sum(),
        })
        .0
    }
}

/// The selector that picks every series of `metric` (or every series).
pub fn metric_selector(metric: Option<&str>) -> Selector {
    match metric {
        Some(m) => Selector::new(vec![crate::model::Matcher::equal(METRIC_NAME_LABEL, m)]),
        None => Selector::all(),
    }
}
