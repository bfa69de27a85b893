//! Durability: every acknowledged sample survives `kill -9` at any moment of ingest, and
//! nothing is duplicated by the replay.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

/// Round `round` of writer `worker`: its `width` series `w<worker>_s<n>` at `ts`, valued
/// `round * 100 + n` (what [`check_acknowledged`] expects).
fn round_request(worker: usize, ts: i64, round: i64, width: usize) -> quiver::prompb::WriteRequest {
    let samples: Vec<_> = (0..width)
        .map(|s| {
            let name = format!("w{worker}_s{s}");
            series(
                &[("__name__", "crash_metric"), ("series", &name)],
                &[(ts, (round * 100 + s as i64) as f64)],
            )
        })
        .collect();
    write_request(samples)
}

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
        let body = snappy(&prost::Message::encode_to_vec(&round_request(
            worker, ts, round, width,
        )));
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

/// A small tmpfs mounted over a folder (the test command runs as root), unmounted on drop.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: &std::path::Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (the test command runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a process of a failed test may still hold files there.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// One remote write of `width` series at `ts`; the HTTP status (0: no answer).
async fn write_round(q: &Quiver, worker: usize, ts: i64, round: i64, width: usize) -> u16 {
    q.remote_write(&round_request(worker, ts, round, width))
        .await
        .0
}

#[tokio::test]
async fn a_full_disk_refuses_writes_keeps_queries_and_recovers_by_itself() {
    let mut q = Quiver::start(&config_without_scrapes("")).await;
    q.stop();
    // Quiver scrapes itself every second, so scrapes meet the full disk too.
    q.write_config(&format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{}']\nstorage:\n  wal:\n    fsync: always\n    segment_size_bytes: 1048576\n",
        q.port
    ));
    let disk = SmallDisk::mount(&q.data_dir(), "8m");
    q.launch().await;
    // Leave about 1.5 MiB free.
    let filler = disk.path.join("filler");
    std::fs::write(&filler, vec![0u8; 6 << 20]).unwrap();

    let acked = Mutex::new(BTreeMap::new());
    let base = now_ms() - 30_000;
    let mut round = 0i64;
    let mut refused = 0;
    // Once the disk is full, writes go to new series (worker 1): their creation fails
    // with the write, and must be logged when a later write succeeds.
    let worker = |refused: usize| usize::from(refused > 0);
    while refused < 5 {
        assert!(round < 200_000, "the disk never filled");
        let ts = base + round;
        match write_round(&q, worker(refused), ts, round, 50).await {
            204 => {
                acked
                    .lock()
                    .unwrap()
                    .insert((worker(refused), ts), round as f64);
            }
            status if status >= 500 => refused += 1,
            status => panic!("unexpected status {status} while filling the disk"),
        }
        round += 1;
    }
    let full_at = acked.lock().unwrap().len();
    eprintln!("disk full after {full_at} acknowledged writes");
    // Queries keep working, and see every acknowledged sample.
    let stored = q.scalar("SELECT count(*) FROM crash_metric").await as usize;
    assert!(
        stored >= full_at * 50,
        "{stored} stored, {full_at} writes acknowledged"
    );
    let promql = q
        .get_json("/api/v1/query", &[("query", "count(crash_metric)")])
        .await;
    assert_eq!(promql["status"], "success", "{promql}");
    // The scrape records the failure.
    let error = eventually(
        "the scrape reports the full disk",
        Duration::from_secs(20),
        || {
            let q = &q;
            async move {
                let targets = q.get_json("/api/v1/targets", &[]).await;
                let target = &targets["data"]["activeTargets"][0];
                let error = target["lastError"].as_str()?.to_owned();
                (target["health"] == "down" && !error.is_empty()).then_some(error)
            }
        },
    )
    .await;
    eprintln!("scrape error on a full disk: {error}");

    // Space comes back: ingestion resumes without a restart.
    std::fs::remove_file(&filler).unwrap();
    eventually("writes accepted again", Duration::from_secs(20), || {
        let (q, acked) = (&q, &acked);
        round += 1;
        let (ts, r) = (base + round, round);
        async move {
            (write_round(q, 1, ts, r, 50).await == 204).then(|| {
                acked.lock().unwrap().insert((1, ts), r as f64);
            })
        }
    })
    .await;
    for _ in 0..20 {
        round += 1;
        assert_eq!(write_round(&q, 1, base + round, round, 50).await, 204);
        acked
            .lock()
            .unwrap()
            .insert((1, base + round), round as f64);
    }
    eventually("the scrape recovers", Duration::from_secs(20), || {
        let q = &q;
        async move {
            let targets = q.get_json("/api/v1/targets", &[]).await;
            (targets["data"]["activeTargets"][0]["health"] == "up").then_some(())
        }
    })
    .await;
    // Nothing acknowledged is lost or doubled, across a restart (the WAL replays cleanly).
    q.stop();
    q.launch().await;
    assert!(
        !q.log().contains("no series record"),
        "samples logged for series the WAL never named: {}",
        q.log()
    );
    check_acknowledged(&q, &acked, 50).await;
    q.stop();
    drop(disk);
}
