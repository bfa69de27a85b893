//! PromQL reads regular expressions as Prometheus does, in Go's RE2: where RE2 and the
//! `regex` crate disagree on a pattern's meaning (ASCII `\d` and `\w`, `[` in a class,
//! escaped punctuation, `\Q…\E`, a brace that opens no repetition, `.` and newlines), the
//! matchers and `label_replace` give RE2's answer.

use std::sync::Arc;
use std::time::Duration;

use quiver::config::StorageConfig;
use quiver::model::{Labels, Sample};
use quiver::query::promql::{PromValue, PromqlEngine};

const VALUES: [&str; 7] = ["a1", "a\u{0661}", "a{b}", "x\ny", "[", "<x>", "café"];

async fn engine(dir: &std::path::Path) -> PromqlEngine {
    let (storage, engine) =
        crate::common::embedded_engine(dir, StorageConfig::default(), 1_000_000).await;
    let mut appender = storage.appender();
    for v in VALUES {
        let labels = Labels::series(vec![
            ("__name__".to_string(), "m".to_string()),
            ("v".to_string(), v.to_string()),
        ])
        .expect("valid labels");
        appender.add(&Arc::new(labels), Sample::new(60_000, 1.0));
    }
    appender.commit().expect("appended");
    engine
}

/// `(labels, value)` of each series of an instant query at 2 m.
async fn instant(engine: &PromqlEngine, query: &str) -> Vec<(Vec<(String, String)>, f64)> {
    match engine
        .instant(query, 120_000, Duration::from_secs(300))
        .await
    {
        Ok(PromValue::Vector(series)) => (series.into_iter())
            .map(|s| (s.labels.to_pairs(), s.points[0].1))
            .collect(),
        other => panic!("{query}: {other:?}"),
    }
}

#[tokio::test]
async fn matchers_and_label_replace_read_patterns_as_re2() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    for (query, matches) in [
        // RE2's \d and \w are ASCII: the Arabic-Indic digit is neither.
        (r#"count(m{v=~"a\\d"})"#, 1.0),
        (r#"count(m{v!~"a\\w+"})"#, 6.0),
        (r#"count(m{v=~"a{b}"})"#, 1.0),
        // Prometheus 3: `.` in a matcher matches a newline.
        (r#"count(m{v=~"x.y"})"#, 1.0),
        // `[` inside a class, escaped punctuation and \Q…\E are literals in RE2.
        (r#"count(m{v=~"[[]"})"#, 1.0),
        (r#"count(m{v=~"\\<x\\>"})"#, 1.0),
        (r#"count(m{v=~"\\Q[\\E|caf."})"#, 2.0),
        (r#"count(m{v=~`\d|\pL+\x{E9}`})"#, 1.0),
    ] {
        let got = instant(&engine, query).await;
        assert_eq!(got.len(), 1, "{query}: {got:?}");
        assert_eq!(got[0].1, matches, "{query}");
    }
    let replaced = instant(
        &engine,
        r#"count by (d) (label_replace(m, "d", "$1", "v", "a(\\d)"))"#,
    )
    .await;
    let counts: Vec<(String, f64)> = replaced
        .into_iter()
        .map(|(labels, n)| {
            let d = labels
                .iter()
                .find(|(k, _)| k == "d")
                .map(|(_, v)| v.clone());
            (d.unwrap_or_default(), n)
        })
        .collect();
    assert_eq!(counts, [("".to_string(), 6.0), ("1".to_string(), 1.0)]);
}
