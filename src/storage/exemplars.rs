//! Exemplars: example samples (a trace id, a value, a time) that senders attach to a
//! series, kept in a bounded in-memory store as Prometheus's exemplar storage keeps them:
//! at most `limit` exemplars in all, the oldest added overwritten first; per series, an
//! exemplar older than the newest one is refused as out of order and a repeat of the
//! newest is ignored. They are not logged to the WAL, so a restart forgets them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::model::{Labels, Selector};

/// One exemplar: its own labels (`trace_id`, ...), value and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: i64,
}

/// Why an exemplar was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExemplarError {
    #[error("out of order exemplar")]
    OutOfOrder,
    #[error("exemplar storage is disabled (storage.exemplars.max_exemplars is 0)")]
    Disabled,
    /// Prometheus's limit on an exemplar's labels: 128 UTF-8 characters in names and values.
    #[error("exemplar labels exceed 128 characters")]
    LabelsTooLong,
}

/// Prometheus's `exemplar.ExemplarMaxLabelSetLength`.
const MAX_LABEL_CHARS: usize = 128;

pub struct ExemplarStore {
    limit: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    by_series: HashMap<Arc<Labels>, VecDeque<Exemplar>>,
    /// Every stored exemplar's series, oldest added first: the next one to overwrite.
    order: VecDeque<Arc<Labels>>,
}

impl ExemplarStore {
    /// A store of at most `limit` exemplars (0: none are kept).
    pub fn new(limit: usize) -> ExemplarStore {
        ExemplarStore {
            limit,
            state: Mutex::new(State::default()),
        }
    }

    /// Adds `exemplar` to `series`. A repeat of the series' newest exemplar is accepted and
    /// not stored again.
    pub fn add(&self, series: &Arc<Labels>, exemplar: Exemplar) -> Result<(), ExemplarError> {
        if self.limit == 0 {
            return Err(ExemplarError::Disabled);
        }
        let chars: usize = exemplar
            .labels
            .iter()
            .map(|(n, v)| n.chars().count() + v.chars().count())
            .sum();
        if chars > MAX_LABEL_CHARS {
            return Err(ExemplarError::LabelsTooLong);
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(newest) = state.by_series.get(series).and_then(|e| e.back()) {
            if *newest == exemplar {
                return Ok(());
            }
            if exemplar.timestamp_ms < newest.timestamp_ms {
                return Err(ExemplarError::OutOfOrder);
            }
        }
        if state.order.len() >= self.limit {
            state.evict_oldest();
        }
        state
            .by_series
            .entry(series.clone())
            .or_default()
            .push_back(exemplar);
        state.order.push_back(series.clone());
        Ok(())
    }

    /// The exemplars with times in `[min_ms, max_ms]` of the series any selector matches,
    /// by series (sorted by label set), oldest first.
    pub fn select(
        &self,
        selectors: &[Selector],
        min_ms: i64,
        max_ms: i64,
    ) -> Vec<(Arc<Labels>, Vec<Exemplar>)> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(Arc<Labels>, Vec<Exemplar>)> = state
            .by_series
            .iter()
            .filter(|(labels, _)| selectors.iter().any(|s| s.matches(labels)))
            .map(|(labels, exemplars)| {
                let within = exemplars
                    .iter()
                    .filter(|e| (min_ms..=max_ms).contains(&e.timestamp_ms))
                    .cloned()
                    .collect();
                (labels.clone(), within)
            })
            .filter(|(_, exemplars): &(_, Vec<Exemplar>)| !exemplars.is_empty())
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Exemplars stored.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .order
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl State {
    fn evict_oldest(&mut self) {
        let Some(series) = self.order.pop_front() else {
            return;
        };
        if let Some(exemplars) = self.by_series.get_mut(&series) {
            exemplars.pop_front();
            if exemplars.is_empty() {
                self.by_series.remove(&series);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Matcher;

    fn series(job: &str) -> Arc<Labels> {
        Arc::new(Labels::from_trusted(vec![
            ("__name__".into(), "m".into()),
            ("job".into(), job.into()),
        ]))
    }

    fn exemplar(trace: &str, t: i64) -> Exemplar {
        Exemplar {
            labels: Labels::new(vec![("trace_id".into(), trace.into())]).unwrap(),
            value: t as f64,
            timestamp_ms: t,
        }
    }

    #[test]
    fn bounded_oldest_first_in_order_per_series() {
        let store = ExemplarStore::new(3);
        let (a, b) = (series("a"), series("b"));
        store.add(&a, exemplar("1", 10)).unwrap();
        store.add(&b, exemplar("2", 5)).unwrap();
        // A repeat is accepted and not stored twice; an older one is refused.
        store.add(&a, exemplar("1", 10)).unwrap();
        assert_eq!(
            store.add(&a, exemplar("0", 9)),
            Err(ExemplarError::OutOfOrder)
        );
        store.add(&a, exemplar("3", 20)).unwrap();
        assert_eq!(store.len(), 3);
        // Full: the oldest added (a's first) goes.
        store.add(&b, exemplar("4", 30)).unwrap();
        assert_eq!(store.len(), 3);
        let all = store.select(&[Selector::all()], i64::MIN, i64::MAX);
        let traces: Vec<(String, Vec<i64>)> = all
            .iter()
            .map(|(l, e)| {
                (
                    l.get("job").unwrap_or("").to_string(),
                    e.iter().map(|e| e.timestamp_ms).collect(),
                )
            })
            .collect();
        assert_eq!(
            traces,
            [("a".to_string(), vec![20]), ("b".to_string(), vec![5, 30])]
        );
        // Selected by matchers and time.
        let only_b = Selector::new(vec![Matcher::equal("job", "b")]);
        let picked = store.select(&[only_b], 0, 10);
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].1, vec![exemplar("2", 5)]);
    }

    #[test]
    fn limits() {
        assert_eq!(
            ExemplarStore::new(0).add(&series("a"), exemplar("1", 1)),
            Err(ExemplarError::Disabled)
        );
        let long = Exemplar {
            labels: Labels::new(vec![("trace_id".into(), "x".repeat(121))]).unwrap(),
            value: 1.0,
            timestamp_ms: 1,
        };
        assert_eq!(
            ExemplarStore::new(5).add(&series("a"), long),
            Err(ExemplarError::LabelsTooLong)
        );
    }
}
