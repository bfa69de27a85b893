//! The read-only query tier on a real S3-compatible server: writers with their own prefixes
//! and external labels (two clusters, and an HA pair), and a `--storage.read-only` node over
//! all of them: the clusters are a union, the HA pair one copy, through HTTP, SQL and the
//! PostgreSQL protocol, while a writer compacts under it; writes to it are refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const STEP_MS: i64 = 15_000;
const STEPS: i64 = 30 * 4;
const INSTANCES: usize = 5;
/// The minutes (from the start) replica 1 of the HA pair missed: replica 2 fills them.
const OUTAGE: std::ops::Range<i64> = 10..15;

/// A writer: its own prefix, external labels, 1 m blocks; `compaction` lines (or off).
fn writer_config(s3: &S3Server, prefix: &str, labels: &str, compaction: &str) -> String {
    format!(
        "global:\n  external_labels: {{{labels}}}\nstorage:\n  block_duration: 1m\n  compaction:\n{compaction}\n{}\n",
        s3_storage_yaml(s3, prefix)
    )
}

/// `minutes` of 15 s history ending now (timestamps shifted by `offset_ms`), skipping
/// the minutes `skip`: a counter per instance whose value follows the time.
async fn write_history(
    q: &Quiver,
    start: i64,
    offset_ms: i64,
    skip: std::ops::Range<i64>,
) -> usize {
    let mut written = 0;
    for step in 0..STEPS {
        if skip.contains(&(step * STEP_MS / 60_000)) {
            continue;
        }
        let ts = start + step * STEP_MS + offset_ms;
        let batch: Vec<_> = (0..INSTANCES)
            .map(|i| {
                let instance = format!("host-{i}:9100");
                let value = ((ts - start) / 1000 * (i as i64 + 1)) as f64;
                series(
                    &[
                        ("__name__", "requests_total"),
                        ("instance", &instance),
                        ("job", "api"),
                    ],
                    &[(ts, value)],
                )
            })
            .collect();
        written += batch.len();
        let (status, body) = q.remote_write(&write_request(batch)).await;
        assert_eq!(status, 204, "{body}");
    }
    written
}

fn manifest(root: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(root.join("manifest.json")).ok()?).ok()
}

async fn flushed(root: &Path, target: i64) {
    let r = root.to_path_buf();
    eventually("blocks cut", Duration::from_secs(90), || {
        let r = r.clone();
        async move {
            manifest(&r)
                .and_then(|m| m["flushed_until"].as_i64())
                .filter(|f| *f >= target)
        }
    })
    .await;
}

/// `cluster -> count(*)` through SQL over HTTP.
async fn counts_by_cluster(q: &Quiver, end: i64) -> BTreeMap<String, i64> {
    let rows = q
        .rows(&format!(
            "SELECT cluster, count(*) FROM requests_total WHERE timestamp < to_timestamp_millis({end}) GROUP BY cluster ORDER BY cluster"
        ))
        .await;
    rows.iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap()))
        .collect()
}

async fn rates_by_cluster(q: &Quiver, at: i64) -> BTreeMap<String, f64> {
    let body = q
        .get_json(
            "/api/v1/query",
            &[
                ("query", "sum by (cluster) (rate(requests_total[5m]))"),
                ("time", &(at / 1000).to_string()),
            ],
        )
        .await;
    assert_eq!(body["status"], "success", "{body}");
    (body["data"]["result"].as_array().unwrap().iter())
        .map(|r| {
            let cluster = r["metric"]["cluster"].as_str().unwrap_or("").to_string();
            (cluster, r["value"][1].as_str().unwrap().parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_node_unions_clusters_and_deduplicates_an_ha_pair() {
    let s3 = start_s3();
    let bucket = s3.root.path().join("metrics");
    let off = "    enabled: false";
    // eu compacts while the reader reads it; a short deletion delay makes it delete too.
    let compacting = "    ranges: [4m, 12m]\n    deletion_delay: 20s";
    let writers = [
        ("eu", "cluster: eu", compacting),
        ("us", "cluster: us", off),
        ("ha1", "cluster: ha, replica: \"1\"", off),
        ("ha2", "cluster: ha, replica: \"2\"", off),
    ];
    let mut nodes = Vec::new();
    for (prefix, labels, compaction) in writers {
        nodes.push(Quiver::start(&writer_config(&s3, prefix, labels, compaction)).await);
    }
    let start = (now_ms() - STEPS * STEP_MS) / 60_000 * 60_000;
    let mut written = BTreeMap::new();
    for (i, (prefix, _, _)) in writers.iter().enumerate() {
        let (offset, skip) = match *prefix {
            // The replicas scrape a second apart; replica 1 was down for a while.
            "ha1" => (0, OUTAGE),
            "ha2" => (1000, 0..0),
            _ => (0, 0..0),
        };
        written.insert(*prefix, write_history(&nodes[i], start, offset, skip).await);
    }
    // Compare the first 25 minutes, which every writer has cut into blocks.
    let end = start + 25 * 60_000;
    for (prefix, _, _) in writers {
        flushed(&bucket.join(prefix), end).await;
    }
    let per_minute = (INSTANCES * 4) as i64;
    let full = 25 * per_minute;

    // Each source: the writer's `storage` lines, indented into a list entry.
    let sources: String = writers
        .iter()
        .map(|(prefix, _, _)| {
            let lines: String = (s3_storage_yaml(&s3, prefix).lines())
                .map(|l| format!("    {l}\n"))
                .collect();
            format!("    - name: {prefix}\n{lines}")
        })
        .collect();
    let reader_config = format!(
        "postgres:\n  users:\n    - name: grafana\n      password: s3cret\nstorage:\n  query_tier:\n    refresh_interval: 1s\n    sources:\n{sources}"
    );
    let reader = Quiver::start_with_args(
        &reader_config,
        &[
            "--storage.read-only",
            "--query.replica-label=replica",
            "--web.enable-admin-api",
        ],
    )
    .await;

    // Two clusters with the same series stay two; the HA pair is one copy, the outage of
    // replica 1 filled from replica 2.
    let expected: BTreeMap<String, i64> = [("eu", full), ("ha", full), ("us", full)]
        .map(|(c, n)| (c.to_string(), n))
        .into();
    assert_eq!(counts_by_cluster(&reader, end).await, expected);
    let found = reader
        .get_json("/api/v1/series", &[("match[]", "requests_total")])
        .await;
    let found = found["data"].as_array().unwrap();
    assert_eq!(found.len(), 3 * INSTANCES, "{found:?}");
    assert!(
        found
            .iter()
            .all(|s| s.get("replica").is_none() && s["cluster"].is_string())
    );
    let values = reader.get_json("/api/v1/label/cluster/values", &[]).await;
    assert_eq!(values["data"], serde_json::json!(["eu", "ha", "us"]));

    // PromQL: each cluster's rate equals what its own writer answers.
    let at = start + 20 * 60_000;
    let rates = rates_by_cluster(&reader, at).await;
    // A writer's own series lack its external labels.
    let own = rates_by_cluster(&nodes[0], at).await[""];
    assert_eq!(rates.len(), 3, "{rates:?}");
    for cluster in ["eu", "us", "ha"] {
        let (got, want) = (rates[cluster], own);
        assert!(
            (got - want).abs() <= want * 1e-9,
            "{cluster}: {got} vs {want}"
        );
    }

    // The PostgreSQL protocol serves the same view.
    let out = Command::new("psql")
        .arg("-X")
        .arg(format!(
            "host=127.0.0.1 port={} user=grafana dbname=quiver sslmode=disable",
            reader.pg_port
        ))
        .args(["-At", "-c"])
        .arg(format!(
            "SELECT cluster, count(*) FROM requests_total WHERE timestamp < to_timestamp_millis({end}) GROUP BY cluster ORDER BY cluster"
        ))
        .env("PGPASSWORD", "s3cret")
        .output()
        .expect("running psql");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        format!("eu|{full}\nha|{full}\nus|{full}"),
        "{out:?}"
    );

    // The eu writer compacts and deletes its sources meanwhile; the reader, refreshing its
    // manifests, answers the same.
    let eu = bucket.join("eu");
    eventually(
        "eu compacted to 12 m blocks",
        Duration::from_secs(90),
        || {
            let eu = eu.clone();
            async move {
                let m = manifest(&eu)?;
                let blocks = m["blocks"].as_array()?;
                let deleted = m["deleted"].as_array().map_or(0, |d| d.len());
                blocks
                    .iter()
                    .any(|b| b["level"] == 3)
                    .then_some(())
                    .filter(|_| deleted == 0)
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counts_by_cluster(&reader, end).await, expected);
    assert_eq!(rates_by_cluster(&reader, at).await, rates);

    // Writes go to the writers.
    let (status, body) = reader
        .remote_write(&write_request(vec![series(
            &[("__name__", "x")],
            &[(now_ms(), 1.0)],
        )]))
        .await;
    assert_eq!(status, 405, "{body}");
    assert!(body.contains("read-only"), "{body}");
    let r = reader
        .client
        .post(reader.url("/api/v1/admin/tsdb/delete_series"))
        .query(&[("match[]", "requests_total")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(counts_by_cluster(&reader, end).await, expected);
    let flags = reader.get_json("/api/v1/status/flags", &[]).await;
    assert_eq!(flags["data"]["storage.read-only"], "true");
    assert_eq!(flags["data"]["query.replica-label"], "replica");
    assert!(written.values().all(|n| *n > 0));
}
