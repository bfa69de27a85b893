//! Compaction on a real S3-compatible server: blocks cut from remote-written history merge
//! level by level, every sample stays exactly once, PromQL answers do not change, and
//! `kill -9` at random moments during compaction loses nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::blocks::manifest_blocks;
use crate::common::*;

const STEP_MS: i64 = 15_000;
const STEPS: i64 = 64 * 4;
const INSTANCES: usize = 20;

/// 64 minutes of exporter-like history at 15 s, oldest first, ending now: a counter and a
/// slowly moving gauge for 20 instances of 3 jobs.
async fn write_history(q: &Quiver) -> (i64, usize) {
    let start = (now_ms() - STEPS * STEP_MS) / STEP_MS * STEP_MS;
    let mut written = 0;
    for step in 0..STEPS {
        let mut batch = Vec::new();
        for i in 0..INSTANCES {
            let instance = format!("host-{i}:9100");
            let job = ["api", "db", "web"][i % 3];
            let ts = start + step * STEP_MS + (i as i64 * 37) % 900;
            let counter = (step * (i as i64 + 1) * 3) as f64;
            let gauge = 100.0 + ((step / 8) as f64 + i as f64).sin() * 10.0;
            batch.push(series(
                &[
                    ("__name__", "requests_total"),
                    ("instance", &instance),
                    ("job", job),
                ],
                &[(ts, counter)],
            ));
            batch.push(series(
                &[
                    ("__name__", "temperature"),
                    ("instance", &instance),
                    ("job", job),
                ],
                &[(ts, gauge)],
            ));
        }
        written += batch.len();
        let (status, body) = q.remote_write(&write_request(batch)).await;
        assert_eq!(status, 204, "{body}");
    }
    (start, written)
}

fn flushed_until(root: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(root.join("manifest.json")).ok()?;
    let manifest: Value = serde_json::from_str(&text).ok()?;
    manifest["flushed_until"].as_i64()
}

/// Every answer the test compares before and after compaction.
async fn answers(q: &Quiver, start: i64, end: i64) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for sql in [
        "SELECT count(*) FROM requests_total",
        "SELECT count(*) FROM temperature",
        "SELECT instance, count(*), min(timestamp), max(timestamp), sum(value) FROM requests_total GROUP BY instance ORDER BY instance",
    ] {
        out.insert(sql.to_string(), Value::from(q.rows(sql).await));
    }
    let (s, e) = ((start / 1000).to_string(), (end / 1000).to_string());
    for promql in [
        "sum by (job) (rate(requests_total[2m]))",
        "max_over_time(temperature[5m])",
        "count_over_time(requests_total[3m])",
    ] {
        let body = q
            .get_json(
                "/api/v1/query_range",
                &[
                    ("query", promql),
                    ("start", &s),
                    ("end", &e),
                    ("step", "60"),
                ],
            )
            .await;
        assert_eq!(body["status"], "success", "{promql}: {body}");
        out.insert(promql.to_string(), body["data"].clone());
    }
    out
}

/// Block objects (data and series files) under `root`.
fn block_objects(root: &Path) -> usize {
    let blocks = root.join("blocks");
    let Ok(dirs) = std::fs::read_dir(blocks) else {
        return 0;
    };
    dirs.flatten()
        .map(|d| {
            ["data.parquet", "series.parquet"]
                .iter()
                .filter(|f| d.path().join(f).exists())
                .count()
        })
        .sum()
}

fn storage_yaml(s3: &S3Server, compaction: &str) -> String {
    config_without_scrapes(&format!(
        "  block_duration: 1m\n  out_of_order_time_window: 0s\n  compaction:\n{compaction}\n{}",
        s3_storage_yaml(s3, "compacted")
    ))
}

/// History cut into 1 m blocks with compaction off: the answers before any compaction, and
/// the node, stopped, configured to compact (4 m and 12 m levels, 2 s deletion delay).
struct CutHistory {
    q: Quiver,
    root: std::path::PathBuf,
    start: i64,
    end: i64,
    cut: usize,
    before: BTreeMap<String, Value>,
}

async fn cut_history(s3: &S3Server) -> CutHistory {
    let root = s3.root.path().join("metrics/compacted");
    let mut q = Quiver::start(&storage_yaml(s3, "    enabled: false")).await;
    let (start, written) = write_history(&q).await;
    // Every window up to 40 minutes in is cut into a 1 m block.
    let target = start + 40 * 60_000;
    let r = root.clone();
    eventually("blocks cut", Duration::from_secs(60), || {
        let r = r.clone();
        async move { flushed_until(&r).filter(|f| *f >= target) }
    })
    .await;
    let cut = manifest_blocks(&root).unwrap().len();
    assert!(cut >= 40, "{cut} blocks");
    let end = start + STEPS * STEP_MS;
    let before = answers(&q, start, end).await;
    assert_eq!(
        before["SELECT count(*) FROM requests_total"],
        serde_json::json!([[written / 2]])
    );
    q.stop();
    q.write_config(&storage_yaml(
        s3,
        "    ranges: [4m, 12m]\n    deletion_delay: 2s",
    ));
    CutHistory {
        q,
        root,
        start,
        end,
        cut,
        before,
    }
}

/// Waits until compaction has settled: three or more 12 m blocks, nothing waiting for
/// deletion, and no object but the blocks'. Returns the blocks.
async fn settled(root: &Path) -> Vec<Value> {
    let r = root.to_path_buf();
    eventually("compaction done", Duration::from_secs(60), || {
        let r = r.clone();
        async move {
            let blocks = manifest_blocks(&r)?;
            let text = std::fs::read_to_string(r.join("manifest.json")).ok()?;
            let manifest: Value = serde_json::from_str(&text).ok()?;
            let top = blocks.iter().filter(|b| b["level"] == 3).count();
            let settled = top >= 3
                && manifest.get("deleted").is_none()
                && block_objects(&r) == 2 * blocks.len();
            settled.then_some(blocks)
        }
    })
    .await
}

/// A random number source seeded by the clock.
fn random() -> impl FnMut() -> u64 {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

#[tokio::test]
async fn blocks_compact_on_s3_without_losing_or_doubling_a_sample_through_kill_9() {
    let s3 = start_s3();
    let CutHistory {
        mut q,
        root,
        start,
        end,
        cut,
        before,
    } = cut_history(&s3).await;
    // Compaction on, and kill -9 at random moments while it runs.
    let mut next = random();
    let mut kills = Vec::new();
    for _ in 0..6 {
        q.launch().await;
        let after_ms = next() % 600;
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        q.kill9();
        kills.push(after_ms);
    }
    q.launch().await;
    let blocks = settled(&root).await;
    assert!(
        blocks.len() * 3 < cut,
        "kills after {kills:?} ms: {} blocks from {cut}",
        blocks.len()
    );
    for b in &blocks {
        let span = b["max_time"].as_i64().unwrap() - b["min_time"].as_i64().unwrap();
        let expected = match b["level"].as_u64().unwrap() {
            1 => 60_000,
            2 => 240_000,
            3 => 720_000,
            other => panic!("level {other}"),
        };
        assert_eq!(span, expected, "{b}");
    }
    assert_eq!(
        answers(&q, start, end).await,
        before,
        "kills after {kills:?} ms"
    );
    let log = q.log();
    eprintln!(
        "kill -9 after {kills:?} ms; {} compactions logged over the runs, {} leftovers collected",
        log.matches("blocks compacted").count(),
        log.matches("no manifest entry names").count()
    );
    // A repeated dashboard query reads no block object again: footers, column chunks
    // and series files all come from the caches.
    let query = [
        ("query", "sum by (job) (rate(requests_total[5m]))"),
        ("start", &*(start / 1000).to_string()),
        ("end", &*(end / 1000).to_string()),
        ("step", "60"),
    ]
    .map(|(k, v)| (k, v.to_string()));
    let run = || async {
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = q.get_json("/api/v1/query_range", &query).await;
        assert_eq!(body["status"], "success", "{body}");
    };
    run().await;
    let cold = cache_counts(&q.metrics_text().await);
    run().await;
    let warm = cache_counts(&q.metrics_text().await);
    for cache in ["chunks", "metadata", "series"] {
        let (hits, misses) = (warm[&(cache, "hit")], warm[&(cache, "miss")]);
        assert_eq!(
            misses,
            cold[&(cache, "miss")],
            "{cache}: {cold:?} then {warm:?}"
        );
        assert!(
            hits > cold[&(cache, "hit")],
            "{cache}: {cold:?} then {warm:?}"
        );
    }
    let metrics = q.metrics_text().await;
    let top_level = metrics
        .lines()
        .find(|l| l.starts_with("quiver_bucket_blocks{level=\"3\",resolution=\"raw\"}"));
    assert!(top_level.is_some(), "{metrics}");
    q.stop();
}

#[tokio::test]
async fn compaction_survives_an_s3_outage_without_losing_or_doubling_a_sample() {
    let mut s3 = start_s3();
    let CutHistory {
        mut q,
        root,
        start,
        end,
        before,
        ..
    } = cut_history(&s3).await;
    // The bucket goes away at a random moment of the first compactions, for 4 s.
    q.launch().await;
    let after_ms = random()() % 500;
    tokio::time::sleep(Duration::from_millis(after_ms)).await;
    s3.stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    s3.restart();
    settled(&root).await;
    assert_eq!(
        answers(&q, start, end).await,
        before,
        "outage after {after_ms} ms"
    );
    let metrics = q.metrics_text().await;
    let failed = metrics
        .lines()
        .find_map(|l| l.strip_prefix("quiver_compactions_failed_total "))
        .unwrap_or("0");
    eprintln!("S3 outage after {after_ms} ms: {failed} compactions failed and were retried");
    q.stop();
}

/// `quiver_cache_requests_total` by (cache, result).
fn cache_counts(metrics: &str) -> BTreeMap<(&'static str, &'static str), f64> {
    let mut out = BTreeMap::new();
    for cache in ["chunks", "metadata", "series"] {
        for result in ["hit", "miss"] {
            let prefix =
                format!("quiver_cache_requests_total{{cache=\"{cache}\",result=\"{result}\"}} ");
            let value = metrics
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .map_or(0.0, |v| v.trim().parse().unwrap());
            out.insert((cache, result), value);
        }
    }
    out
}

#[tokio::test]
async fn downsampled_copies_are_sql_tables_whose_aggregates_match_raw() {
    let config = config_without_scrapes(
        "  block_duration: 1m\n  out_of_order_time_window: 0s\n  compaction:\n    ranges: [5m, 15m]\n    deletion_delay: 1s\n  downsampling:\n    after_5m: 15m\n    after_1h: 15m",
    );
    let mut q = Quiver::start(&config).await;
    let (start, _) = write_history(&q).await;
    let root = q.data_dir();
    let covered = eventually("downsampled copies", Duration::from_secs(60), || {
        let root = root.clone();
        async move {
            let text = std::fs::read_to_string(root.join("manifest.json")).ok()?;
            let manifest: Value = serde_json::from_str(&text).ok()?;
            let copies = manifest["downsampled"].as_array()?;
            let five: Vec<(i64, i64)> = copies
                .iter()
                .filter(|b| b["resolution_ms"] == 300_000)
                .map(|b| {
                    (
                        b["min_time"].as_i64().unwrap(),
                        b["max_time"].as_i64().unwrap(),
                    )
                })
                .collect();
            (five.len() >= 3 && copies.len() == 2 * five.len()).then_some(five)
        }
    })
    .await;
    let (min, max) = (
        covered.iter().map(|c| c.0).min().unwrap(),
        covered.iter().map(|c| c.1).max().unwrap(),
    );
    assert!(min >= start - 15 * 60_000, "{covered:?}");
    // Copies made after `covered` was read are left out by time.
    let within = format!(
        "timestamp >= to_timestamp_millis({min}) AND timestamp < to_timestamp_millis({max})"
    );
    let raw = q
        .rows(&format!(
            "SELECT instance, count(*), sum(value), min(value), max(value) FROM requests_total \
             WHERE {within} GROUP BY instance ORDER BY instance"
        ))
        .await;
    for schema in ["res_5m", "res_1h"] {
        let down = q
            .rows(&format!(
                "SELECT instance, sum(\"count\"), sum(\"sum\"), min(\"min\"), max(\"max\") \
                 FROM {schema}.requests_total WHERE {within} GROUP BY instance ORDER BY instance"
            ))
            .await;
        assert_eq!(down.len(), INSTANCES, "{schema}");
        for (d, r) in down.iter().zip(&raw) {
            assert_eq!(
                (&d[0], &d[1], &d[3], &d[4]),
                (&r[0], &r[1], &r[3], &r[4]),
                "{schema}"
            );
            let (ds, rs) = (d[2].as_f64().unwrap(), r[2].as_f64().unwrap());
            assert!((ds - rs).abs() <= 1e-9 * rs.abs(), "{schema}: {ds} vs {rs}");
        }
    }
    // A 5 m row per series and window: its timestamp is the window's last sample's.
    let rows = q
        .rows(&format!(
            "SELECT count(*), min(\"count\"), max(\"count\") FROM res_5m.temperature \
             WHERE instance = 'host-0:9100' AND {within}"
        ))
        .await;
    // A 15 m block holds three 5 m windows (the oldest block may be partly filled); a
    // window holds at most 20 samples.
    let windows = rows[0][0].as_u64().unwrap() as usize;
    let full = 3 * covered.len();
    assert!(
        (full - 3..=full).contains(&windows),
        "{rows:?} from {covered:?}"
    );
    assert_eq!(rows[0][2], serde_json::json!(20));
    // The same over the PostgreSQL protocol, with psql.
    let psql = |sql: &str| {
        let out = std::process::Command::new("psql")
            .arg("-X")
            .arg(format!(
                "host=127.0.0.1 port={} user=u dbname=quiver sslmode=disable",
                q.pg_port
            ))
            .args(["-At", "-c", sql])
            .output()
            .expect("running psql");
        assert!(out.status.success(), "{sql}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        psql(&format!(
            "SELECT count(*) FROM res_5m.temperature WHERE instance = 'host-0:9100' AND {within}"
        )),
        rows[0][0].to_string()
    );
    assert_eq!(
        psql(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables WHERE table_schema LIKE 'res_%' ORDER BY 1"
        ),
        "res_1h.requests_total\nres_1h.temperature\nres_5m.requests_total\nres_5m.temperature"
    );
    let tables = q
        .rows("SELECT table_name FROM information_schema.tables WHERE table_schema = 'res_1h' ORDER BY 1")
        .await;
    assert_eq!(
        tables,
        vec![
            vec![serde_json::json!("requests_total")],
            vec![serde_json::json!("temperature")]
        ]
    );

    // The copies' time from the first sample on: the oldest may start before the history.
    promql_reads_downsampled_data(&mut q, &root, (min.max(start), max)).await;
}

/// Range query `promql` over `[start, end]` at `step` seconds, reading `resolution`:
/// one value per series label set and time.
async fn promql_at(
    q: &Quiver,
    promql: &str,
    (start, end, step): (i64, i64, i64),
    resolution: &str,
) -> Result<BTreeMap<(String, i64), f64>, Value> {
    let body = q
        .get_json(
            "/api/v1/query_range",
            &[
                ("query", promql),
                ("start", &(start / 1000).to_string()),
                ("end", &(end / 1000).to_string()),
                ("step", &step.to_string()),
                ("max_source_resolution", resolution),
            ],
        )
        .await;
    if body["status"] != "success" {
        return Err(body);
    }
    let mut out = BTreeMap::new();
    for series in body["data"]["result"].as_array().unwrap() {
        for point in series["values"].as_array().unwrap() {
            let t = point[0].as_f64().unwrap() as i64;
            let v: f64 = point[1].as_str().unwrap().parse().unwrap();
            out.insert((series["metric"].to_string(), t), v);
        }
    }
    Ok(out)
}

/// PromQL over the covered range `[min, max)`: answers from 5 m data are close to raw ones,
/// and come from the copies alone (they still answer once the raw blocks' files are gone).
async fn promql_reads_downsampled_data(q: &mut Quiver, root: &Path, (min, max): (i64, i64)) {
    // Evaluation times whose 30 m ranges lie inside the covered time.
    let span = (min + 30 * 60_000, max - 1000, 60);
    let checks = [
        ("sum by (job) (rate(requests_total[30m]))", 0.05),
        ("avg by (job) (avg_over_time(temperature[30m]))", 0.05),
        ("max by (job) (max_over_time(temperature[30m]))", 0.02),
        ("sum by (job) (count_over_time(temperature[30m]))", 0.2),
    ];
    let mut from_copies = Vec::new();
    for (promql, tolerance) in checks {
        let raw = promql_at(q, promql, span, "raw").await.unwrap();
        let down = promql_at(q, promql, span, "5m").await.unwrap();
        assert!(!raw.is_empty(), "{promql}");

        assert_eq!(raw.len(), down.len(), "{promql}: {raw:?} vs {down:?}");
        for (key, r) in &raw {
            let d = down[key];
            assert!(
                (d - r).abs() <= tolerance * r.abs() + 1e-9,
                "{promql} at {key:?}: 5m {d} vs raw {r}"
            );
        }
        from_copies.push((promql, down));
    }
    // explain?analyze=true shows the copies' files being read.
    let text = std::fs::read_to_string(root.join("manifest.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    let copy = manifest["downsampled"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["resolution_ms"] == 300_000 && c["max_time"].as_i64().unwrap() <= span.1)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, e) = ((span.0 / 1000).to_string(), (span.1 / 1000).to_string());
    let explain = [
        ("query", "sum(rate(requests_total[30m]))"),
        ("start", &s),
        ("end", &e),
        ("step", "60"),
        ("analyze", "true"),
        ("max_source_resolution", "5m"),
    ];
    let body = q.get_json("/api/v1/explain", &explain).await;
    let analyzed = body["data"]["analyzed"].as_str().unwrap_or_default();
    assert!(analyzed.contains(&copy), "{copy} not in {body}");
    // It counts the query's reads of block objects: run again, all come from the cache.
    let reads = |analyzed: &str| -> (u64, u64) {
        let line = analyzed
            .lines()
            .find(|l| l.starts_with("block objects: "))
            .unwrap_or_else(|| panic!("no block objects line: {analyzed}"));
        let numbers: Vec<u64> = (line.split(|c: char| !c.is_ascii_digit()))
            .filter_map(|n| n.parse().ok())
            .collect();
        (numbers[1], numbers[3])
    };
    let (fetched, cached) = reads(analyzed);
    assert!(fetched + cached > 0, "{analyzed}");
    let again = q.get_json("/api/v1/explain", &explain).await;
    let again = again["data"]["analyzed"].as_str().unwrap_or_default();
    assert_eq!(reads(again), (0, fetched + cached), "{analyzed}\n{again}");
    assert!(again.contains("series files: "), "{again}");
    // A bad resolution is the client's error.
    let bad = promql_at(q, "up", span, "7 parsecs").await.unwrap_err();
    assert_eq!(bad["errorType"], "bad_data", "{bad}");

    // auto at a 1 m step reads raw data, not the copies beside it.
    let (by_job, five_by_job) = (from_copies[0].0, from_copies[0].1.clone());
    let raw_by_job = promql_at(q, by_job, span, "raw").await.unwrap();
    assert_eq!(
        promql_at(q, by_job, span, "auto").await.unwrap(),
        raw_by_job
    );

    // Raw data past 20 m expires, and 1 h copies at once; 5 m answers stay as they were.
    let raw_before = promql_at(q, "sum(rate(requests_total[30m]))", span, "raw")
        .await
        .unwrap();
    q.stop();
    q.extra_args.extend([
        "--retention.resolution-raw=20m".to_string(),
        "--retention.resolution-1h=1s".to_string(),
    ]);
    q.launch().await;
    let cutoff = now_ms() - 20 * 60_000;
    let dir = root.to_path_buf();
    eventually(
        "raw blocks and 1 h copies expired",
        Duration::from_secs(30),
        || {
            let dir = dir.clone();
            async move {
                let text = std::fs::read_to_string(dir.join("manifest.json")).ok()?;
                let manifest: Value = serde_json::from_str(&text).ok()?;
                let oldest = manifest["blocks"][0]["min_time"].as_i64()?;
                let copies = manifest["downsampled"].as_array()?;
                let only_5m = copies.iter().all(|c| c["resolution_ms"] == 300_000);
                let gone = manifest.get("deleted").is_none();
                (oldest >= cutoff - 15 * 60_000 && only_5m && gone).then_some(())
            }
        },
    )
    .await;
    for (promql, before) in from_copies {
        let after = promql_at(q, promql, span, "5m").await.unwrap();
        assert_eq!(after, before, "{promql}");
    }
    let raw_after = promql_at(q, "sum(rate(requests_total[30m]))", span, "raw")
        .await
        .unwrap();
    assert_ne!(
        raw_after, raw_before,
        "the raw data of the early range is gone"
    );
    // auto fills the expired range from the 5 m copies: every time is answered (raw data
    // alone now misses some), windows after the oldest raw block as raw data did, the
    // others close to it.
    let text = std::fs::read_to_string(root.join("manifest.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    let oldest_raw = manifest["blocks"][0]["min_time"].as_i64().unwrap();
    let auto = promql_at(q, by_job, span, "auto").await.unwrap();
    let raw_only = promql_at(q, by_job, span, "raw").await.unwrap();
    assert_eq!(
        auto.keys().collect::<Vec<_>>(),
        five_by_job.keys().collect::<Vec<_>>()
    );
    let mut filled = 0;
    for ((key, t), v) in &auto {
        let raw = raw_by_job[&(key.clone(), *t)];
        if t * 1000 - 30 * 60_000 >= oldest_raw {
            assert_eq!(*v, raw, "{key} at {t}");
        } else {
            // A window across the edge mixes 5 m points and raw ones: `rate` extrapolates
            // by the mean interval, which the raw points shorten, so it may miss up to one
            // resolution of the range (README): 5 m of 30 m, 17 %.
            assert!(
                (v - raw).abs() <= 0.2 * raw.abs(),
                "{key} at {t}: {v} vs {raw}"
            );
            filled += usize::from(raw_only.get(&(key.clone(), *t)) != Some(v));
        }
    }
    assert!(filled > 0, "{auto:?}");
    let flags = q.get_json("/api/v1/status/flags", &[]).await;
    assert_eq!(flags["data"]["retention.resolution-1h"], "1s");
}
