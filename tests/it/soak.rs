//! Sustained mixed load: remote write from several senders, scrapes of a real
//! node_exporter and of Quiver itself, recording and alerting rules, PromQL and SQL queries,
//! all at once, with one-minute blocks (cut from about two minutes in). No error other than the ones limits
//! promise, memory that stops growing, and every acknowledged sample present afterwards.
//!
//! The suite runs it for 45 s; `scripts/soak.sh` runs it for longer (QUIVER_SOAK_SECONDS)
//! and the README reports that run's figures.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

const SENDERS: usize = 4;
/// Series per sender; each request carries one sample of each.
const WIDTH: usize = 200;

/// What the load's clients saw.
#[derive(Default)]
struct Tally {
    acked_requests: AtomicU64,
    queries: AtomicU64,
    /// Answers no limit promises: the test fails on any.
    unexpected: Mutex<Vec<String>>,
}

impl Tally {
    fn unexpected(&self, what: String) {
        self.unexpected.lock().unwrap().push(what);
    }
}

/// One sender: a request of `WIDTH` series every few milliseconds, at strictly rising
/// timestamps near now; records what was acknowledged.
async fn sender(
    q: Arc<Quiver>,
    worker: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    acked: Arc<Mutex<BTreeMap<(usize, i64), f64>>>,
) {
    let mut last = 0i64;
    let mut round = 0i64;
    while !stop.load(Ordering::Relaxed) {
        let ts = now_ms().max(last + 1);
        last = ts;
        let batch: Vec<_> = (0..WIDTH)
            .map(|s| {
                series(
                    &[
                        ("__name__", "soak_requests_total"),
                        ("sender", &worker.to_string()),
                        ("path", &format!("/api/{s}")),
                    ],
                    &[(ts, (round * 10 + s as i64) as f64)],
                )
            })
            .collect();
        let (status, body) = q.remote_write(&write_request(batch)).await;
        if status == 204 {
            acked.lock().unwrap().insert((worker, ts), round as f64);
            tally.acked_requests.fetch_add(1, Ordering::Relaxed);
        } else {
            tally.unexpected(format!("remote write {status}: {body}"));
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// PromQL (instant and range) and SQL over HTTP in turn, as dashboards do.
async fn querier(q: Arc<Quiver>, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let promql = [
        "sum by (sender) (rate(soak_requests_total[1m]))",
        "topk(5, soak_requests_total)",
        "sender:soak_requests:rate1m",
        "count(up)",
        "rate(node_cpu_seconds_total[1m])",
        "histogram_quantile(0.9, sum by (le) (rate(quiver_sql_query_duration_seconds_bucket[1m])))",
    ];
    let sql = [
        "SELECT sender, count(*) FROM soak_requests_total WHERE timestamp > now() - INTERVAL '30 seconds' GROUP BY sender",
        "SELECT count(DISTINCT path) FROM soak_requests_total",
        "SELECT metric, count(*) FROM series GROUP BY metric ORDER BY 2 DESC LIMIT 5",
    ];
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let now = now_ms() / 1000;
        let outcome = match i % 3 {
            0 => {
                let query = promql[i % promql.len()];
                let body = q.get_json("/api/v1/query", &[("query", query)]).await;
                (body["status"] == "success")
                    .then_some(())
                    .ok_or(format!("{query}: {body}"))
            }
            1 => {
                let query = promql[(i / 3) % promql.len()];
                let (start, end) = ((now - 120).to_string(), now.to_string());
                let body = q
                    .get_json(
                        "/api/v1/query_range",
                        &[
                            ("query", query),
                            ("start", &start),
                            ("end", &end),
                            ("step", "5"),
                        ],
                    )
                    .await;
                (body["status"] == "success")
                    .then_some(())
                    .ok_or(format!("{query}: {body}"))
            }
            _ => {
                let query = sql[(i / 3) % sql.len()];
                let (status, body) = q.sql_raw(query).await;
                (status == 200)
                    .then_some(())
                    .ok_or(format!("{query}: {status} {body}"))
            }
        };
        match outcome {
            Ok(()) => {
                tally.queries.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tally.unexpected(e),
        }
        i += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sustained_mixed_load_loses_nothing_and_keeps_memory_bounded() {
    let seconds: u64 = std::env::var("QUIVER_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(45);
    let (_node, node_port, _node_dir) = start_node_exporter();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: soak\n    interval: 1s\n    rules:\n      - record: sender:soak_requests:rate1m\n        expr: sum by (sender) (rate(soak_requests_total[1m]))\n      - alert: SoakBusy\n        expr: sum(sender:soak_requests:rate1m) > 0\n",
    )
    .unwrap();
    let port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [\"{}\"]\nscrape_configs:\n  - job_name: node\n    static_configs: [{{targets: ['127.0.0.1:{node_port}']}}]\n  - job_name: quiver\n    static_configs: [{{targets: ['127.0.0.1:PORT']}}]\nstorage:\n  block_duration: 1m\n  out_of_order_time_window: 0s\n  wal:\n    fsync: always\n",
        rules.display()
    );
    let mut q = Quiver::start(&config.replace("PORT", &port.to_string())).await;
    // The self-scrape names the port Quiver got.
    q.write_config(&config.replace("PORT", &q.port.to_string()));
    q.stop();
    q.launch().await;
    let q = Arc::new(q);

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let mut tasks = Vec::new();
    for worker in 0..SENDERS {
        tasks.push(tokio::spawn(sender(
            q.clone(),
            worker,
            stop.clone(),
            tally.clone(),
            acked.clone(),
        )));
    }
    for _ in 0..2 {
        tasks.push(tokio::spawn(querier(
            q.clone(),
            stop.clone(),
            tally.clone(),
        )));
    }
    let started = Instant::now();
    let mut rss = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss.push(q.rss_bytes());
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();

    let unexpected = tally.unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "{} unexpected answers, first: {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)]
    );
    let requests = tally.acked_requests.load(Ordering::Relaxed);
    let queries = tally.queries.load(Ordering::Relaxed);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let (first_half, second_half) = rss.split_at(rss.len() / 2);
    let peak_first = first_half.iter().copied().max().unwrap_or(0);
    let peak_second = second_half.iter().copied().max().unwrap_or(0);
    eprintln!(
        "soak {elapsed:.0} s: {:.0} samples/s acknowledged ({requests} requests of {WIDTH}), {:.1} queries/s, RSS peak {:.0} MiB in the first half, {:.0} MiB in the second, {:.0} MiB at the end",
        (requests as f64 * WIDTH as f64) / elapsed,
        queries as f64 / elapsed,
        mib(peak_first),
        mib(peak_second),
        mib(*rss.last().unwrap())
    );
    assert!(
        requests > 100 && queries > 20,
        "{requests} writes, {queries} queries"
    );
    // One-minute blocks are cut while the load runs, so the head stays about two minutes
    // long: memory levels off instead of growing with the run.
    assert!(
        peak_second <= peak_first + peak_first / 2 + (64 << 20),
        "memory kept growing: {:.0} then {:.0} MiB",
        mib(peak_first),
        mib(peak_second)
    );
    let metrics = q.metrics_text().await;
    let evaluations = metrics
        .lines()
        .filter(|l| l.starts_with("quiver_rule_evaluations_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert!(
        evaluations >= seconds as f64,
        "{evaluations} rule evaluations"
    );

    // Every acknowledged sample is stored once, whether in a block or the head.
    let acked = acked.lock().unwrap().clone();
    let rows = q
        .rows("SELECT sender, count(*), count(DISTINCT timestamp), min(timestamp) FROM soak_requests_total WHERE path = '/api/0' GROUP BY sender ORDER BY sender")
        .await;
    assert_eq!(rows.len(), SENDERS, "{rows:?}");
    for (worker, row) in rows.iter().enumerate() {
        let expected = acked.keys().filter(|(w, _)| *w == worker).count();
        assert_eq!(
            row[1].as_u64(),
            Some(expected as u64),
            "sender {worker}: {row:?}"
        );
        assert_eq!(
            row[2].as_u64(),
            Some(expected as u64),
            "sender {worker} duplicates: {row:?}"
        );
    }
    let total = q.scalar("SELECT count(*) FROM soak_requests_total").await as usize;
    assert_eq!(total, acked.len() * WIDTH);
    let blocks = metrics
        .lines()
        .find_map(|l| l.strip_prefix("quiver_tsdb_blocks_written_total "))
        .map_or(0.0, |v| v.trim().parse().unwrap());
    eprintln!("{blocks} blocks cut during the load");
}
