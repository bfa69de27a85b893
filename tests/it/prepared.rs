//! Prepared plans follow the data: a query planned once and run again later sees the series
//! that appeared and the samples that arrived since, reads blocks cut since, and is planned
//! anew once a metric it read for floats has native histograms. Each answer is compared with an engine that has
//! never seen the query.

use std::sync::Arc;
use std::time::Duration;

use quiver::config::StorageConfig;
use quiver::model::histogram::{CounterResetHint, Histogram, Span};
use quiver::model::{HistogramSample, Labels, Sample};
use quiver::query::promql::{PromValue, PromqlEngine};
use quiver::storage::Storage;

const LOOKBACK: Duration = Duration::from_secs(300);

fn labels(pairs: &[(&str, &str)]) -> Arc<Labels> {
    Arc::new(
        Labels::series(
            (pairs.iter())
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
        .expect("valid labels"),
    )
}

/// Counter samples every 15 s over `[from, to)`, for instance `instance`.
fn append(storage: &Storage, metric: &str, instance: &str, from: i64, to: i64) {
    let series = labels(&[("__name__", metric), ("instance", instance)]);
    let mut appender = storage.appender();
    for t in (from..to).step_by(15_000) {
        appender.add(&series, Sample::new(t, t as f64 / 1000.0));
    }
    appender.commit().expect("appended");
}

/// An engine that has planned nothing yet, over `storage` (with the block store registered).
fn fresh_engine(storage: &Arc<Storage>) -> PromqlEngine {
    let sql = quiver::query::sql::SqlEngine::new(
        storage.clone(),
        quiver::config::QueryConfig::default(),
        quiver::metrics::QueryMetrics::unregistered(),
    )
    .expect("sql engine");
    PromqlEngine::new(storage.clone(), sql.context().runtime_env(), 50_000_000)
}

async fn instant(engine: &PromqlEngine, query: &str, at: i64) -> PromValue {
    engine
        .instant(query, at, LOOKBACK)
        .await
        .unwrap_or_else(|e| panic!("{query} at {at}: {e}"))
}

const QUERIES: [&str; 6] = [
    "sum(rate(requests_total[5m]))",
    "requests_total",
    "count by (instance) (requests_total > 10)",
    "absent(requests_total{instance=\"c\"})",
    "requests_total / on(instance) group_left rate(requests_total[1m])",
    "vector(time()) + scalar(count(requests_total))",
];

#[tokio::test]
async fn prepared_plans_see_new_series_samples_and_histograms() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, engine) =
        crate::common::embedded_engine(dir.path(), StorageConfig::default(), 50_000_000).await;
    append(&storage, "requests_total", "a", 6_000_000, 6_600_000);
    for query in QUERIES {
        instant(&engine, query, 6_600_000).await;
    }
    assert_eq!(engine.prepared_runs(), 0, "the first evaluation plans");

    // A new series, and more samples for the old one.
    append(&storage, "requests_total", "a", 6_600_000, 7_200_000);
    append(&storage, "requests_total", "b", 6_900_000, 7_200_000);
    for query in QUERIES {
        let prepared = instant(&engine, query, 7_200_000).await;
        let fresh = instant(&fresh_engine(&storage), query, 7_200_000).await;
        assert_eq!(prepared, fresh, "{query}");
    }
    assert_eq!(engine.prepared_runs(), QUERIES.len() as u64);
    let PromValue::Vector(both) = instant(&engine, "requests_total", 7_200_000).await else {
        panic!("a vector");
    };
    assert_eq!(both.len(), 2, "the series that appeared is selected");

    // The head's samples go to a block (the first two hours), newer ones to the head: the
    // windows now span both.
    assert!(storage.flush(true).await.expect("cut") >= 1);
    append(&storage, "requests_total", "a", 7_200_000, 7_260_000);
    for query in QUERIES {
        let prepared = instant(&engine, query, 7_260_000).await;
        let fresh = instant(&fresh_engine(&storage), query, 7_260_000).await;
        assert_eq!(prepared, fresh, "{query} after a block was cut");
    }

    // The metric gets a native histogram: plans that read it for floats alone are made
    // again, and the answer has the histogram.
    let runs = engine.prepared_runs();
    let series = labels(&[("__name__", "requests_total"), ("instance", "h")]);
    let mut appender = storage.appender();
    appender.add_histogram(
        &series,
        HistogramSample {
            timestamp_ms: 7_500_000,
            start_timestamp_ms: 0,
            histogram: Arc::new(Histogram {
                schema: 0,
                count: 3.0,
                sum: 4.0,
                positive_spans: vec![Span {
                    offset: 0,
                    length: 2,
                }],
                positive_buckets: vec![1.0, 2.0],
                counter_reset_hint: CounterResetHint::NotCounterReset,
                ..Default::default()
            }),
        },
    );
    appender.commit().expect("appended");
    let prepared = instant(&engine, "requests_total", 7_500_000).await;
    let fresh = instant(&fresh_engine(&storage), "requests_total", 7_500_000).await;
    assert_eq!(prepared, fresh);
    assert_eq!(engine.prepared_runs(), runs, "planned anew");
    let PromValue::Vector(series) = prepared else {
        panic!("a vector");
    };
    assert!(
        series.iter().any(|s| !s.histograms.is_empty()),
        "{series:?}"
    );
}

/// Two evaluations of one text at once: one runs the prepared plan, the other plans anew,
/// and both answer for their own time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_evaluations_of_one_text_answer_for_their_own_times() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, engine) =
        crate::common::embedded_engine(dir.path(), StorageConfig::default(), 50_000_000).await;
    for instance in ["a", "b", "c"] {
        append(&storage, "requests_total", instance, 0, 3_600_000);
    }
    let engine = Arc::new(engine);
    let query = "sum by (instance) (increase(requests_total[5m]))";
    instant(&engine, query, 600_000).await;
    let times: Vec<i64> = (1..=16).map(|i| 600_000 + i * 180_000).collect();
    let runs = times.iter().map(|&t| {
        let engine = engine.clone();
        tokio::spawn(async move { (t, instant(&engine, query, t).await) })
    });
    let results = futures::future::join_all(runs).await;
    let fresh = fresh_engine(&storage);
    for result in results {
        let (t, value) = result.expect("task ran");
        assert_eq!(value, instant(&fresh, query, t).await, "at {t}");
    }
    assert!(engine.prepared_runs() > 0);
}
