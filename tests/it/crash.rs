//! Durability: every acknowledged sample survives `kill -9` at any moment of ingest, and
//! nothing is duplicated by the replay.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

/// Writes batches of `width` series until the server stops answering; records what was
/// acknowledged. Round `r` writes at `base + r * step_ms`.
async fn writer(
    q_url: String,
    worker: usize,
    acked: Arc<Mutex<BTreeMap<(usize, i64), f64>>>,
    base: i64,
    step_ms: i64,
    width: usize,
) {
    let client = reqwest::Client::new();
    for round in 0i64.. {
        let ts = base + round * step_ms;
        let samples: Vec<_> = (0..width)
            .map(|s| {
                let name = format!("w{worker}_s{s}");
                series(
                    &[("__name__", "crash_metric"), ("series", &name)],
                    &[(ts, (round * 100 + s as i64) as f64)],
                )
            })
            .collect();
        let body = snappy(&prost::Message::encode_to_vec(&write_request(samples)));
        let response = client
            .post(format!("{q_url}/api/v1/write"))
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .body(body)
            .send()
            .await;
        match response {
            Ok(r) if r.status().as_u16() == 204 => {
                acked.lock().unwrap().insert((worker, ts), round as f64);
            }
            // Refused (a window already cut): nothing was stored; go on with the next round.
            Ok(r) if r.status().as_u16() == 400 => {}
            _ => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_samples_survive_kill_9_without_duplicates() {
    let mut q = Quiver::start(&config_without_scrapes("  wal:\n    fsync: always")).await;
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let base = now_ms() - 60_000;
    for cycle in 0..3 {
        let mut writers = Vec::new();
        for worker in 0..4 {
            let w = cycle * 4 + worker;
            writers.push(tokio::spawn(writer(
                q.url(""),
                w,
                acked.clone(),
                base,
                1,
                50,
            )));
        }
        // Kill at a different point of each cycle, while requests are in flight.
        tokio::time::sleep(Duration::from_millis(700 + 300 * cycle as u64)).await;
        q.kill9();
        for w in writers {
            w.await.unwrap();
        }
        q.launch().await;
    }
    check_acknowledged(&q, &acked, 50).await;
}

/// Every acknowledged sample of the writers' `width` series is stored once, with its value,
/// and nothing is stored twice.
async fn check_acknowledged(q: &Quiver, acked: &Mutex<BTreeMap<(usize, i64), f64>>, width: usize) {
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "the test wrote too little to mean anything: {}",
        acked.len()
    );
    let rows = q
        .rows("SELECT series, CAST(timestamp AS BIGINT), value FROM crash_metric ORDER BY 1, 2")
        .await;
    let mut stored: BTreeMap<(String, i64), f64> = BTreeMap::new();
    for row in &rows {
        let key = (
            row[0].as_str().unwrap().to_string(),
            row[1].as_i64().unwrap(),
        );
        assert!(
            stored
                .insert(key.clone(), row[2].as_f64().unwrap())
                .is_none(),
            "duplicate sample {key:?}"
        );
    }
    for ((worker, ts), round) in &acked {
        for s in 0..width {
            let key = (format!("w{worker}_s{s}"), *ts);
            let value = stored
                .get(&key)
                .unwrap_or_else(|| panic!("acknowledged sample {key:?} lost"));
            assert_eq!(*value, round * 100.0 + s as f64);
        }
    }
    let distinct = q
        .scalar("SELECT count(*) FROM (SELECT DISTINCT series, timestamp FROM crash_metric)")
        .await;
    assert_eq!(distinct as usize, rows.len());
}

/// The newest WAL segment file of a data directory.
fn newest_segment(data_dir: &std::path::Path) -> std::path::PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(data_dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
        .collect();
    segments.sort();
    segments.pop().expect("a non-empty WAL segment")
}

#[tokio::test]
async fn torn_wal_tail_is_reported_and_cut_without_losing_earlier_records() {
    let mut q = Quiver::start(&config_without_scrapes("  wal:\n    fsync: always")).await;
    let t = now_ms();
    for i in 0..10 {
        let s = series(
            &[("__name__", "torn"), ("i", &i.to_string())],
            &[(t, i as f64)],
        );
        assert_eq!(q.remote_write(&write_request(vec![s])).await.0, 204);
    }
    q.kill9();
    // A write that was cut off mid-frame: a plausible header, then too few bytes.
    let segment = newest_segment(&q.data_dir());
    let mut bytes = std::fs::read(&segment).unwrap();
    let intact = bytes.len();
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9]);
    std::fs::write(&segment, &bytes).unwrap();
    q.launch().await;
    assert_eq!(q.scalar("SELECT count(*) FROM torn").await, 10.0);
    assert!(q.log().contains("torn or corrupt tail"), "{}", q.log());
    let metrics = q.metrics_text().await;
    assert!(
        metrics.contains("quiver_tsdb_wal_corruptions_total 1"),
        "{metrics}"
    );
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len() as usize,
        intact,
        "the torn tail was cut off"
    );

    // New writes after the repair are durable too.
    let s = series(&[("__name__", "torn"), ("i", "10")], &[(t, 10.0)]);
    assert_eq!(q.remote_write(&write_request(vec![s])).await.0, 204);
    q.kill9();
    q.launch().await;
    assert_eq!(q.scalar("SELECT count(*) FROM torn").await, 11.0);
}

/// kill -9 while blocks are cut and the WAL is checkpointed under concurrent ingest: with
/// one-minute blocks and twelve minutes of history arriving, each background cut (every
/// 10 s) writes many blocks and checkpoints after each. Every acknowledged sample survives,
/// once, whether it ended in a block or in the replayed head.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_samples_survive_kill_9_during_cuts_and_checkpoints() {
    let storage = "  block_duration: 1m\n  out_of_order_time_window: 0s\n  wal:\n    fsync: always";
    let mut q = Quiver::start(&config_without_scrapes(storage)).await;
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let base = now_ms() - 12 * 60_000;
    for cycle in 0..3u64 {
        let mut writers = Vec::new();
        for worker in 0..4 {
            let w = cycle as usize * 4 + worker;
            // Each cycle's writers start where the previous cycle's cuts cannot have reached.
            let start = base + cycle as i64 * 4 * 60_000;
            writers.push(tokio::spawn(writer(
                q.url(""),
                w,
                acked.clone(),
                start,
                100,
                // Ten series a request: writes enough to meet the cuts, rows few enough to
                // check in one query at the end.
                10,
            )));
        }
        // The first background cut starts 10 s after launch.
        tokio::time::sleep(Duration::from_millis(10_200 + 400 * cycle)).await;
        q.kill9();
        for w in writers {
            w.await.unwrap();
        }
        q.launch().await;
    }
    let data_dir = q.data_dir();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data_dir.join("manifest.json")).unwrap())
            .unwrap();
    assert!(
        manifest["blocks"].as_array().is_some_and(|b| !b.is_empty()),
        "no block was cut, so the kills did not meet a cut: {manifest}"
    );
    check_acknowledged(&q, &acked, 10).await;
}
