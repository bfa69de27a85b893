//! Blocks: old windows are cut into Parquet, stay queryable across restarts, and refuse
//! samples for windows already cut. Also on a real S3-compatible server.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// Writes 12 minutes of one sample per 10 s for 3 series, ending now.
async fn write_history(q: &Quiver) -> (i64, usize) {
    let end = now_ms();
    let start = end - 12 * 60_000;
    let mut n = 0;
    for step in 0..72 {
        let ts = start + step * 10_000;
        let batch: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|host| {
                series(
                    &[
                        ("__name__", "node_load1"),
                        ("instance", host),
                        ("job", "node"),
                    ],
                    &[(ts, step as f64)],
                )
            })
            .collect();
        n += batch.len();
        let (status, body) = q.remote_write(&write_request(batch)).await;
        assert_eq!(status, 204, "{body}");
    }
    (start, n)
}

pub fn manifest_blocks(root: &Path) -> Option<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(root.join("manifest.json")).ok()?;
    let manifest: serde_json::Value = serde_json::from_str(&text).ok()?;
    let blocks = manifest["blocks"].as_array()?.clone();
    (!blocks.is_empty()).then_some(blocks)
}

async fn check_queries(q: &Quiver, start: i64, total: usize) {
    assert_eq!(
        q.scalar("SELECT count(*) FROM node_load1").await as usize,
        total
    );
    let per_host = q
        .rows("SELECT instance, count(*), max(value) FROM node_load1 GROUP BY instance ORDER BY instance")
        .await;
    assert_eq!(per_host.len(), 3);
    assert_eq!(per_host[0][1], serde_json::json!(72));
    assert_eq!(per_host[0][2], serde_json::json!(71.0));
    // A time filter that only the oldest block can satisfy.
    let early = q
        .scalar(&format!(
            "SELECT count(*) FROM node_load1 WHERE timestamp < to_timestamp_millis({}) AND instance = 'b'",
            start + 60_000
        ))
        .await;
    assert_eq!(early, 6.0);
}

/// The manifest's blocks once the 12 minutes of history are cut into ten or more. The
/// deadline allows for a suite that runs many servers at once on two cores: three tests
/// waiting here at once once needed more than 40 s.
async fn ten_blocks(data_dir: &Path) -> Vec<serde_json::Value> {
    eventually("blocks in the manifest", Duration::from_secs(90), || {
        let d = data_dir.to_path_buf();
        async move { manifest_blocks(&d).filter(|b| b.len() >= 10) }
    })
    .await
}

/// One-minute blocks on the S3 server under `prefix`.
fn s3_block_config(s3: &S3Server, prefix: &str) -> String {
    config_without_scrapes(&format!("{BLOCK_STORAGE}\n{}", s3_storage_yaml(s3, prefix)))
}

const BLOCK_STORAGE: &str = "  block_duration: 1m\n  out_of_order_time_window: 0s";

#[tokio::test]
async fn windows_are_cut_into_blocks_and_survive_restart() {
    let mut q = Quiver::start(&config_without_scrapes(BLOCK_STORAGE)).await;
    let (start, total) = write_history(&q).await;
    let data_dir = q.data_dir();
    let blocks = ten_blocks(&data_dir).await;
    let first = blocks[0]["id"].as_str().unwrap();
    assert!(
        data_dir
            .join("blocks")
            .join(first)
            .join("data.parquet")
            .exists()
    );
    check_queries(&q, start, total).await;
    // A sample for a window that is already a block is refused.
    let (status, body) = q
        .remote_write(&write_request(vec![series(
            &[("__name__", "node_load1"), ("instance", "a")],
            &[(start, 1.0)],
        )]))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("out of bounds"), "{body}");
    q.stop();
    q.launch().await;
    check_queries(&q, start, total).await;
    // The block files are plain Parquet: the series file names the labels.
    let metric = q
        .rows("SELECT metric, labels['instance'] FROM series ORDER BY 2")
        .await;
    assert_eq!(
        metric[0],
        vec![serde_json::json!("node_load1"), serde_json::json!("a")]
    );
}

#[tokio::test]
async fn blocks_live_in_s3_and_a_fresh_node_reads_them() {
    let s3 = start_s3();
    let config = s3_block_config(&s3, "team-a/prod");
    let mut q = Quiver::start(&config).await;
    let (start, total) = write_history(&q).await;
    let bucket_root = s3.root.path().join("metrics/team-a/prod");
    ten_blocks(&bucket_root).await;
    assert!(
        !q.data_dir().join("blocks").exists(),
        "blocks must go to S3, not local disk"
    );
    check_queries(&q, start, total).await;
    q.stop();

    // A new node with an empty local directory sees the blocks (not the other node's WAL).
    let mut fresh = Quiver::start(&config).await;
    let in_blocks = fresh.scalar("SELECT count(*) FROM node_load1").await;
    assert!(
        in_blocks >= 30.0 * 3.0 && in_blocks < total as f64,
        "{in_blocks}"
    );
    fresh.stop();

    // Wrong credentials fail clearly at the first block access, not silently.
    let bad = config.replace("secret_access_key: testsecret", "secret_access_key: wrong");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(&path, bad).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg(format!("--config.file={}", path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("manifest"), "{stderr}");
}

#[tokio::test]
async fn retention_size_retires_the_oldest_blocks_first() {
    let config = config_without_scrapes(&format!(
        "{BLOCK_STORAGE}\n  compaction:\n    deletion_delay: 1s"
    ));
    let q = Quiver::start_with_args(&config, &["--storage.tsdb.retention.size=12KB"]).await;
    let (start, total) = write_history(&q).await;
    let data_dir = q.data_dir();
    // Cuts go on until the head holds about 1.5 windows; retention keeps what fits 12 KiB.
    let blocks = eventually("oldest blocks retired", Duration::from_secs(60), || {
        let d = data_dir.clone();
        async move {
            let blocks = manifest_blocks(&d)?;
            let oldest = blocks[0]["min_time"].as_i64()?;
            (oldest > start + 60_000).then_some(blocks)
        }
    })
    .await;
    let bytes: i64 = blocks
        .iter()
        .map(|b| b["data_bytes"].as_i64().unwrap())
        .sum();
    assert!(
        bytes <= 12 * 1024,
        "{bytes} bytes in {} blocks",
        blocks.len()
    );
    assert!(blocks.len() >= 2, "{blocks:?}");
    let kept = q.scalar("SELECT count(*) FROM node_load1").await as usize;
    assert!(kept < total, "{kept} of {total}");
    // The retired blocks' objects go once the deletion delay has passed.
    eventually("retired objects deleted", Duration::from_secs(30), || {
        let d = data_dir.clone();
        let live = blocks.len();
        async move {
            // Folders of blocks retired since may still be there, but not many.
            let dirs = std::fs::read_dir(d.join("blocks")).ok()?.count();
            (dirs <= live + 2).then_some(())
        }
    })
    .await;
    let flags = q.get_json("/api/v1/status/flags", &[]).await;
    assert_eq!(flags["data"]["storage.tsdb.retention.size"], "12288B");
}

/// POSTs to the snapshot endpoint; returns the status and the JSON body.
async fn snapshot(q: &Quiver, form: &[(&str, String)]) -> (u16, serde_json::Value) {
    let r = q
        .client
        .post(q.url("/api/v1/admin/tsdb/snapshot"))
        .form(form)
        .send()
        .await
        .expect("snapshot request");
    (r.status().as_u16(), r.json().await.expect("JSON body"))
}

/// A fresh Quiver whose data directory is a copy of `snapshot` (nothing shared with the
/// server that wrote it).
async fn restore(snapshot: &Path) -> Quiver {
    let mut q = Quiver::start(&config_without_scrapes(BLOCK_STORAGE)).await;
    q.stop();
    let data = q.data_dir();
    std::fs::remove_dir_all(&data).expect("removing the fresh data dir");
    let status = Command::new("cp")
        .arg("-a")
        .arg(snapshot)
        .arg(&data)
        .status()
        .expect("cp");
    assert!(status.success());
    q.launch().await;
    q
}

/// `POST /api/v1/admin/tsdb/snapshot`: a copy of blocks and head that a fresh Quiver
/// serves as it was; `skip_head` leaves the head out; samples written after the snapshot
/// are not in it; without `--web.enable-admin-api` it is refused, as a bad flag value is.
#[tokio::test]
async fn a_snapshot_restores_into_a_fresh_server() {
    let q = Quiver::start_with_args(
        &config_without_scrapes(BLOCK_STORAGE),
        &["--web.enable-admin-api"],
    )
    .await;
    let (start, total) = write_history(&q).await;
    let data_dir = q.data_dir();
    let blocks = ten_blocks(&data_dir).await;
    let in_blocks: u64 = blocks
        .iter()
        .map(|b| b["num_samples"].as_u64().unwrap())
        .sum();
    assert!(
        (in_blocks as usize) < total,
        "some samples stay in the head"
    );

    let (status, body) = snapshot(&q, &[]).await;
    assert_eq!(status, 200, "{body}");
    let full = body["data"]["name"].as_str().unwrap().to_string();
    assert!(
        full.len() > 17 && full.contains('T') && full.contains('-'),
        "{full}"
    );
    // Blocks may be cut between the two snapshots: count what the second one found.
    let (status, body) = snapshot(&q, &[("skip_head", "true".to_string())]).await;
    assert_eq!(status, 200, "{body}");
    let blocks_only = body["data"]["name"].as_str().unwrap().to_string();
    assert_ne!(full, blocks_only);
    let (status, body) = snapshot(&q, &[("skip_head", "maybe".to_string())]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errorType"], "bad_data");

    // Written after the snapshots: in neither.
    let late = series(
        &[
            ("__name__", "node_load1"),
            ("instance", "late"),
            ("job", "node"),
        ],
        &[(now_ms(), 1.0)],
    );
    assert_eq!(q.remote_write(&write_request(vec![late])).await.0, 204);

    let restored = restore(&data_dir.join("snapshots").join(&full)).await;
    check_queries(&restored, start, total).await;
    assert_eq!(
        restored
            .scalar("SELECT count(*) FROM node_load1 WHERE instance = 'late'")
            .await,
        0.0
    );
    // PromQL sees the same series as the original, head samples included.
    let vector = restored
        .get_json("/api/v1/query", &[("query", "count(node_load1)")])
        .await;
    assert_eq!(vector["data"]["result"][0]["value"][1], "3", "{vector}");

    let skipped_dir = data_dir.join("snapshots").join(&blocks_only);
    let kept: u64 = manifest_blocks(&skipped_dir)
        .unwrap_or_default()
        .iter()
        .map(|b| b["num_samples"].as_u64().unwrap())
        .sum();
    let skipped = restore(&skipped_dir).await;
    let served = skipped.scalar("SELECT count(*) FROM node_load1").await as u64;
    assert_eq!(
        served, kept,
        "a skip_head snapshot serves exactly its blocks"
    );
    assert!((served as usize) < total);

    // Without the flag, the endpoint is refused.
    let plain = Quiver::start(&config_without_scrapes(BLOCK_STORAGE)).await;
    let (status, body) = snapshot(&plain, &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["errorType"], "unavailable");
}

/// A snapshot on S3 goes under the bucket prefix's `snapshots/<name>/` (server-side copies
/// of the blocks, the head written as blocks); a fresh node whose prefix is that folder
/// serves every sample the writer had.
#[tokio::test]
async fn a_snapshot_on_s3_restores_under_its_prefix() {
    let s3 = start_s3();
    let config = s3_block_config(&s3, "team-a/prod");
    let q = Quiver::start_with_args(&config, &["--web.enable-admin-api"]).await;
    let (start, total) = write_history(&q).await;
    let bucket_root = s3.root.path().join("metrics/team-a/prod");
    ten_blocks(&bucket_root).await;
    let (status, body) = snapshot(&q, &[]).await;
    assert_eq!(status, 200, "{body}");
    let name = body["data"]["name"].as_str().unwrap();
    assert!(
        bucket_root
            .join("snapshots")
            .join(name)
            .join("manifest.json")
            .exists()
    );
    let restored = Quiver::start(&s3_block_config(
        &s3,
        &format!("team-a/prod/snapshots/{name}"),
    ))
    .await;
    check_queries(&restored, start, total).await;
}

/// Quiver's own counter `name` (0 when absent).
async fn counter(q: &Quiver, name: &str) -> f64 {
    let text = q.metrics_text().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn blocks_due_while_s3_is_down_stay_in_the_head_and_upload_once_it_is_back() {
    let mut s3 = start_s3();
    let config = config_without_scrapes(&format!(
        "{BLOCK_STORAGE}\n{}\n    retry_timeout: 1s",
        s3_storage_yaml(&s3, "outage")
    ));
    let q = Quiver::start(&config).await;
    s3.stop();
    // Twelve minutes arrive while the bucket is away: every write is acknowledged (the WAL
    // is local), and the windows due cannot be uploaded.
    let (start, total) = write_history(&q).await;
    let warning = eventually("a failed cut reported", Duration::from_secs(60), || {
        let q = &q;
        async move {
            let r = q.client.get(q.url("/-/ready")).send().await.ok()?;
            let status = r.status();
            let body = r.text().await.ok()?;
            (status == 200 && body.contains("Warning: cutting blocks has failed")).then_some(body)
        }
    })
    .await;
    eprintln!("{warning}");
    assert!(counter(&q, "quiver_tsdb_block_cuts_failed_total").await >= 1.0);
    // Queries keep working from the head meanwhile.
    check_queries(&q, start, total).await;

    s3.restart();
    let bucket = s3.root.path().join("metrics/outage");
    let blocks = eventually(
        "the blocks uploaded once S3 is back",
        Duration::from_secs(90),
        || {
            let bucket = bucket.clone();
            async move { manifest_blocks(&bucket).filter(|b| b.len() >= 10) }
        },
    )
    .await;
    assert!(blocks.len() >= 10, "{blocks:?}");
    let ready = q.client.get(q.url("/-/ready")).send().await.unwrap();
    eventually("the warning gone", Duration::from_secs(30), || {
        let q = &q;
        async move {
            let body = q
                .client
                .get(q.url("/-/ready"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            (!body.contains("Warning")).then_some(())
        }
    })
    .await;
    assert_eq!(ready.status(), 200);
    assert!(counter(&q, "quiver_tsdb_block_cut_last_success_timestamp_seconds").await > 0.0);
    // Every acknowledged sample is there once, now from the blocks.
    check_queries(&q, start, total).await;
}

#[tokio::test]
async fn a_corrupt_block_or_manifest_is_named_and_nothing_else_is_lost() {
    let mut q = Quiver::start(&config_without_scrapes(BLOCK_STORAGE)).await;
    let (start, total) = write_history(&q).await;
    let data_dir = q.data_dir();
    let blocks = ten_blocks(&data_dir).await;
    q.stop();

    // The oldest block's data file loses its second half (a torn upload, a bad disk).
    let victim = blocks
        .iter()
        .min_by_key(|b| b["min_time"].as_i64().unwrap())
        .unwrap();
    let (id, victim_end) = (
        victim["id"].as_str().unwrap().to_owned(),
        victim["max_time"].as_i64().unwrap(),
    );
    let file = data_dir.join("blocks").join(&id).join("data.parquet");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    q.launch().await;

    // A query that needs the block fails, naming it, in PromQL's and SQL's conventions.
    let (status, body) = q.sql_raw("SELECT count(*) FROM node_load1").await;
    assert_ne!(status, 200, "{body}");
    assert!(
        body.to_string().contains(&id),
        "the error must name the object: {body}"
    );
    let range = q
        .get_json(
            "/api/v1/query_range",
            &[
                ("query", "count(node_load1)"),
                ("start", &(start / 1000).to_string()),
                ("end", &(now_ms() / 1000).to_string()),
                ("step", "60"),
            ],
        )
        .await;
    assert_eq!(range["status"], "error", "{range}");
    assert!(range["error"].as_str().unwrap().contains(&id), "{range}");
    // The rest is still queryable, every sample of it.
    let after = q
        .scalar(&format!(
            "SELECT count(*) FROM node_load1 WHERE timestamp > to_timestamp_millis({victim_end})"
        ))
        .await;
    let expected = 3 * (0..72).filter(|k| start + k * 10_000 > victim_end).count();
    assert_eq!(after as usize, expected, "samples after the damaged block");
    assert!(expected > 0 && expected < total);
    q.stop();

    // A manifest that no longer parses stops the start, naming it; it is not replaced by an
    // empty one (which would drop every block).
    let manifest = data_dir.join("manifest.json");
    let good = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, &good[..good.len() / 3]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg(format!("--config.file={}", q.config_path.display()))
        .arg(format!("--storage.tsdb.path={}", data_dir.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .arg("--postgres.listen-address=")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started over a corrupt manifest: {stderr}"
    );
    assert!(stderr.contains("manifest.json"), "{stderr}");
    assert_eq!(
        std::fs::read(&manifest).unwrap(),
        &good[..good.len() / 3],
        "the damaged manifest must be left for the operator"
    );
}
