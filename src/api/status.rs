//! Status of the stored data: `/api/v1/status/tsdb` (Prometheus's head statistics and top-N
//! tables) and Quiver's own `/api/v1/status/blocks` (the manifest's blocks) and
//! `/api/v1/status/cardinality` (the top-N tables over the head series that `match[]`
//! selects, with the values of one `focusLabel`). Both top-N endpoints count with one
//! [`Counts`] pass over the head's label sets.

use std::cmp::{Ordering, Reverse};
use std::collections::HashMap;
use std::fmt;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value, json};

use crate::model::{Labels, METRIC_NAME_LABEL, Selector};
use crate::query::promql::select::parse_selectors;
use crate::storage::BlockMeta;

use super::AppState;
use super::error::ApiError;
use super::meta::respond;
use super::params::Params;
use super::query::to_api_error;

/// Entries per list of `/api/v1/status/tsdb` without `limit`, as in Prometheus.
const TSDB_LIMIT: usize = 10;
/// Entries per list of `/api/v1/status/cardinality` without `limit`.
const CARDINALITY_LIMIT: usize = 20;

/// `/api/v1/status/tsdb`: head statistics and the top-`limit` cardinality tables.
pub async fn tsdb(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let params = Params::read(query, &headers, body).await?;
        let limit = read_limit(&params, TSDB_LIMIT)?;
        let storage = state.storage.clone();
        blocking(move || {
            let series = storage.head_labels();
            let counts = Counts::of(series.iter().map(|l| l.as_ref()));
            let head = storage.head_stats();
            json!({
                "headStats": {
                    "numSeries": head.num_series,
                    "numLabelPairs": counts.by_pair.len(),
                    "chunkCount": head.num_chunks,
                    "minTime": head.min_time.unwrap_or(0),
                    "maxTime": head.max_time.unwrap_or(0),
                },
                "seriesCountByMetricName": top(&counts.by_metric, limit),
                "labelValueCountByLabelName": top(&counts.values_by_label(), limit),
                "memoryInBytesByLabelName": top(&counts.bytes_by_label, limit),
                "seriesCountByLabelValuePair": top(&counts.by_pair, limit),
            })
        })
        .await
    }
    .await;
    respond(result)
}

/// `/api/v1/status/cardinality`: the top-`limit` tables over the head series that any
/// `match[]` selector picks (every head series without one), and with `focusLabel` the
/// series count per value of that label.
pub async fn cardinality(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let params = Params::read(query, &headers, body).await?;
        let limit = read_limit(&params, CARDINALITY_LIMIT)?;
        let selectors = parse_selectors(&params.all("match[]")).map_err(to_api_error)?;
        let focus = params.get("focusLabel").map(str::to_string);
        let storage = state.storage.clone();
        blocking(move || {
            let series = storage.head_labels();
            let counts =
                Counts::of((series.iter().map(|l| l.as_ref())).filter(|l| selected(&selectors, l)));
            let mut data = json!({
                "totalSeries": counts.series,
                "totalLabelValuePairs": counts.by_pair.len(),
                "seriesCountByMetricName": top(&counts.by_metric, limit),
                "seriesCountByLabelName": top(&counts.by_label, limit),
                "labelValueCountByLabelName": top(&counts.values_by_label(), limit),
                "seriesCountByLabelValuePair": top(&counts.by_pair, limit),
            });
            if let Some(label) = focus {
                data["seriesCountByFocusLabelValue"] = top(&counts.values_of(&label), limit);
            }
            data
        })
        .await
    }
    .await;
    respond(result)
}

/// Runs `count` on the blocking pool: it walks every head series, which at a million
/// series takes too long for an async worker.
async fn blocking(count: impl FnOnce() -> Value + Send + 'static) -> Result<Value, ApiError> {
    tokio::task::spawn_blocking(count)
        .await
        .map_err(|e| ApiError::internal(format!("counting the head series: {e}")))
}

/// Whether any selector picks the series; with none, every series is picked.
fn selected(selectors: &[Selector], labels: &Labels) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

/// `limit` as Prometheus's TSDB status reads it: a positive integer, `default` when absent.
fn read_limit(params: &Params, default: usize) -> Result<usize, ApiError> {
    match params.get("limit") {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ApiError::bad_data("limit must be a positive number")),
        },
    }
}

/// `/api/v1/status/blocks`: every block of the manifest, raw and downsampled, by start
/// time then resolution. On a read-only node, the merged view of its sources.
pub async fn blocks(State(state): State<AppState>) -> Response {
    let manifest = state.storage.manifest();
    let mut blocks: Vec<&BlockMeta> = manifest.all_blocks().collect();
    blocks.sort_by(|a, b| {
        (a.min_time, a.resolution_ms, &a.id).cmp(&(b.min_time, b.resolution_ms, &b.id))
    });
    let blocks: Vec<BlockStatus> = blocks.into_iter().map(BlockStatus::from).collect();
    respond(Ok(json!({ "blocks": blocks })))
}

/// One block as `/api/v1/status/blocks` shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BlockStatus<'a> {
    id: &'a str,
    min_time: i64,
    max_time: i64,
    num_series: u64,
    num_samples: u64,
    bytes: u64,
    level: u32,
    /// 0 for raw samples.
    resolution: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
}

impl<'a> From<&'a BlockMeta> for BlockStatus<'a> {
    fn from(b: &'a BlockMeta) -> Self {
        BlockStatus {
            id: &b.id,
            min_time: b.min_time,
            max_time: b.max_time,
            num_series: b.num_series,
            num_samples: b.num_samples,
            bytes: b.data_bytes,
            level: b.level,
            resolution: b.resolution_ms,
            source: b.source.as_deref(),
        }
    }
}

/// A label pair, shown and ordered as its text `name=value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Pair<'a>(&'a str, &'a str);

impl Pair<'_> {
    fn text_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        (self.0.bytes())
            .chain(std::iter::once(b'='))
            .chain(self.1.bytes())
    }
}

impl Ord for Pair<'_> {
    /// The text's order without building it; two pairs with the same text (a UTF-8 label
    /// name may hold `=`) are told apart by name, so the order agrees with `Eq`.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.text_bytes().cmp(other.text_bytes())).then_with(|| self.0.cmp(other.0))
    }
}

impl PartialOrd for Pair<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Pair<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.0, self.1)
    }
}

/// Series counts over a set of label sets, gathered in one pass. The keys borrow from the
/// label sets, so counting allocates per distinct name and pair, not per series.
#[derive(Debug, Default)]
struct Counts<'a> {
    series: usize,
    /// Series per metric name.
    by_metric: HashMap<&'a str, usize>,
    /// Series that have the label, per label name.
    by_label: HashMap<&'a str, usize>,
    /// Series per label pair (the metric name's included).
    by_pair: HashMap<Pair<'a>, usize>,
    /// Bytes of the label's values summed over the series, per label name.
    bytes_by_label: HashMap<&'a str, usize>,
}

impl<'a> Counts<'a> {
    fn of(series: impl IntoIterator<Item = &'a Labels>) -> Counts<'a> {
        let mut counts = Counts::default();
        for labels in series {
            counts.series += 1;
            for (name, value) in labels.iter() {
                if name == METRIC_NAME_LABEL {
                    *counts.by_metric.entry(value).or_default() += 1;
                }
                *counts.by_label.entry(name).or_default() += 1;
                *counts.by_pair.entry(Pair(name, value)).or_default() += 1;
                *counts.bytes_by_label.entry(name).or_default() += value.len();
            }
        }
        counts
    }

    /// Distinct values per label name: each distinct pair is one value of its name.
    fn values_by_label(&self) -> HashMap<&'a str, usize> {
        let mut values: HashMap<&'a str, usize> = HashMap::new();
        for pair in self.by_pair.keys() {
            *values.entry(pair.0).or_default() += 1;
        }
        values
    }

    /// Series per value of `label`; series without it are not counted.
    fn values_of(&self, label: &str) -> HashMap<&'a str, usize> {
        (self.by_pair.iter())
            .filter(|(pair, _)| pair.0 == label)
            .map(|(pair, n)| (pair.1, *n))
            .collect()
    }
}

/// The `limit` largest counts as `[{"name", "value"}]`, by count descending, then name.
fn top<K: Ord + fmt::Display>(counts: &HashMap<K, usize>, limit: usize) -> Value {
    let entries: Vec<Value> = top_n(counts.iter().map(|(k, n)| (k, *n)), limit)
        .into_iter()
        .map(|(name, value)| json!({"name": name.to_string(), "value": value}))
        .collect();
    Value::Array(entries)
}

/// The `limit` largest `(name, count)`s by count descending, then name ascending. Only
/// the kept entries are sorted: a label with a million values costs a selection, not a
/// sort.
fn top_n<K: Ord>(counts: impl IntoIterator<Item = (K, usize)>, limit: usize) -> Vec<(K, usize)> {
    let order = |a: &(K, usize), b: &(K, usize)| (Reverse(a.1), &a.0).cmp(&(Reverse(b.1), &b.0));
    if limit == 0 {
        return Vec::new();
    }
    let mut entries: Vec<(K, usize)> = counts.into_iter().collect();
    if entries.len() > limit {
        entries.select_nth_unstable_by(limit - 1, order);
        entries.truncate(limit);
    }
    entries.sort_unstable_by(order);
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_trusted(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn names(entries: &Value) -> Vec<(String, u64)> {
        (entries.as_array().expect("a list").iter())
            .map(|e| {
                let name = e["name"].as_str().expect("a name").to_string();
                (name, e["value"].as_u64().expect("a count"))
            })
            .collect()
    }

    fn owned(entries: &[(&str, u64)]) -> Vec<(String, u64)> {
        entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn top_n_orders_by_count_then_name_and_truncates() {
        let counts = [("b", 2), ("a", 2), ("c", 5), ("d", 1), ("e", 2)];
        assert_eq!(
            top_n(counts, 3),
            vec![("c", 5), ("a", 2), ("b", 2)],
            "ties by name"
        );
        assert_eq!(top_n(counts, 10).len(), 5);
        assert_eq!(top_n(counts, 5), top_n(counts, 100));
        assert_eq!(top_n(counts, 1), vec![("c", 5)]);
        assert!(top_n(counts, 0).is_empty());
        assert!(top_n(Vec::<(&str, usize)>::new(), 3).is_empty());
    }

    #[test]
    fn pairs_order_as_their_text() {
        // As tuples ("a", _) < ("a.b", _); as text "a.b=1" < "a=x" ('.' < '=').
        let mut pairs = [Pair("a", "x"), Pair("a.b", "1"), Pair("a", "w")];
        pairs.sort();
        let text: Vec<String> = pairs.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["a.b=1", "a=w", "a=x"]);
        assert_ne!(Pair("a=b", "c").cmp(&Pair("a", "b=c")), Ordering::Equal);
    }

    #[test]
    fn counts_series_labels_values_and_pairs() {
        let series = [
            labels(&[("__name__", "up"), ("job", "a"), ("instance", "1")]),
            labels(&[("__name__", "up"), ("job", "a"), ("instance", "2")]),
            labels(&[("__name__", "up"), ("job", "b")]),
            labels(&[("__name__", "errors"), ("job", "a"), ("code", "500")]),
        ];
        let counts = Counts::of(&series);
        assert_eq!(counts.series, 4);
        assert_eq!(counts.by_pair.len(), 7);
        assert_eq!(
            names(&top(&counts.by_metric, 10)),
            owned(&[("up", 3), ("errors", 1)])
        );
        assert_eq!(
            names(&top(&counts.by_label, 10)),
            owned(&[("__name__", 4), ("job", 4), ("instance", 2), ("code", 1)])
        );
        assert_eq!(
            names(&top(&counts.values_by_label(), 10)),
            owned(&[("__name__", 2), ("instance", 2), ("job", 2), ("code", 1)])
        );
        assert_eq!(
            names(&top(&counts.by_pair, 3)),
            owned(&[("__name__=up", 3), ("job=a", 3), ("__name__=errors", 1)])
        );
        assert_eq!(
            names(&top(&counts.bytes_by_label, 2)),
            owned(&[("__name__", 12), ("job", 4)])
        );
        // Series without the focus label are not counted.
        assert_eq!(
            names(&top(&counts.values_of("instance"), 10)),
            owned(&[("1", 1), ("2", 1)])
        );
        assert!(counts.values_of("missing").is_empty());
    }

    #[test]
    fn series_are_selected_by_any_selector() {
        let series = labels(&[("__name__", "up"), ("job", "a")]);
        assert!(selected(&[], &series), "no selector picks every series");
        let pick = |texts: &[&str]| {
            let texts: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
            selected(&parse_selectors(&texts).expect("valid selectors"), &series)
        };
        assert!(pick(&["up"]));
        assert!(pick(&[r#"{job="b"}"#, r#"{job=~"a|c"}"#]));
        assert!(!pick(&[r#"up{job="b"}"#, "down"]));
        assert!(parse_selectors(&["up{".to_string()]).is_err());
        assert!(parse_selectors(&["sum(up)".to_string()]).is_err());
    }

    #[tokio::test]
    async fn limits_are_positive_integers() {
        let params = async |query: &str| {
            Params::read(Some(query.to_string()), &HeaderMap::new(), Body::empty())
                .await
                .expect("parameters")
        };
        assert_eq!(read_limit(&params("").await, 10).unwrap(), 10);
        assert_eq!(read_limit(&params("limit=").await, 10).unwrap(), 10);
        assert_eq!(read_limit(&params("limit=3").await, 10).unwrap(), 3);
        for bad in ["limit=0", "limit=-1", "limit=1.5", "limit=ten"] {
            let e = read_limit(&params(bad).await, 10).expect_err(bad);
            assert_eq!(e.error_type, "bad_data");
            assert_eq!(e.message, "limit must be a positive number");
        }
    }
}
