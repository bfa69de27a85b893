//! Remote-write and OTLP load generator for the side-by-side ingest benchmarks
//! (`scripts/bench-ingest.sh`, `scripts/bench-protocols.sh`).
//!
//! It sends the same deterministic data to any receiver, Quiver or Prometheus, as remote
//! write 1.0 (the default), remote write 2.0 (`--protocol rw2`: a symbols table per request)
//! or OTLP/HTTP protobuf (`--protocol otlp`: one resource per instance, gauges with the
//! series' labels as attributes, so the stored series are the same), the way Prometheus's
//! own queue manager does:
//! - series are sharded over `--concurrency` senders;
//! - each sender sends only its own series, in time order, one request at a time.
//!
//! So no series ever has two requests in flight, and no sample arrives out of order. The senders
//! also meet at a barrier after every 15 minutes of sample time. That keeps the shards within 15
//! minutes of each other, well inside the 1 h that Prometheus accepts behind its newest sample.
//!
//! Every request body is encoded before the clock starts, so the figure measures the receiver
//! and not this program's protobuf and snappy work.
//!
//! With `--native-histograms`, the `--histogram-instances` send their observations as one
//! native histogram series each (remote write 1.0's histograms, schema 3, integer counts)
//! instead of nine classic bucket series (`scripts/bench-histograms.sh` compares the two).
//!
//! Run it with `cargo bench --bench ingest -- --url http://127.0.0.1:9090/api/v1/write`, or run
//! the built binary directly. It prints one JSON line on stdout.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use prost::Message;
use quiver::prompb::{Label, Sample, TimeSeries, WriteRequest};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

/// Shards resynchronise after this much sample time. See the module comment.
const SYNC_SPAN_MS: i64 = 15 * 60 * 1000;
const METRIC_NAMES: usize = 10;
const INSTANCES: usize = 100;
/// Bucket bounds of the classic histogram `bench_request_seconds`, and the share of each
/// step's observations at or below each bound (cumulative, so the buckets stay monotonic).
const BUCKETS: [(&str, f64); 9] = [
    ("0.005", 0.02),
    ("0.01", 0.05),
    ("0.025", 0.15),
    ("0.05", 0.3),
    ("0.1", 0.5),
    ("0.25", 0.75),
    ("0.5", 0.9),
    ("1", 0.97),
    ("+Inf", 1.0),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Protocol {
    /// Remote write 1.0 (`prometheus.WriteRequest`, snappy).
    Rw1,
    /// Remote write 2.0 (`io.prometheus.write.v2.Request`, snappy).
    Rw2,
    /// OTLP/HTTP metrics, protobuf, uncompressed (what OpenTelemetry SDKs send by default).
    Otlp,
}

#[derive(Debug, Parser)]
#[command(about = "Remote-write (1.0, 2.0) and OTLP load generator")]
struct Args {
    /// Endpoint: `/api/v1/write` for remote write, `/api/v1/otlp/v1/metrics` for OTLP.
    #[arg(long, default_value = "http://127.0.0.1:9090/api/v1/write")]
    url: String,
    /// Wire protocol of the requests.
    #[arg(long, value_enum, default_value = "rw1")]
    protocol: Protocol,
    /// Number of distinct series.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Instances that also expose the classic histogram `bench_request_seconds` (9 bucket
    /// series each, in addition to `--series`), each its own `instance`.
    #[arg(long, default_value_t = 0)]
    histogram_instances: usize,
    /// Send the histogram instances' observations as native histograms (one series per
    /// instance, `bench_request_seconds`) instead of classic buckets. Remote write 1.0 only.
    #[arg(long)]
    native_histograms: bool,
    /// Samples sent for each series, one every `--interval-ms`.
    #[arg(long, default_value_t = 240)]
    samples_per_series: usize,
    /// Samples per request. The default matches Prometheus's `max_samples_per_send`.
    #[arg(long, default_value_t = 2000)]
    batch_size: usize,
    /// Parallel senders (shards), like Prometheus's remote-write shards.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Time between two samples of one series.
    #[arg(long, default_value_t = 15_000)]
    interval_ms: i64,
    /// Timestamp of the first sample. By default the data ends one interval before now, because
    /// receivers refuse samples that are too old.
    #[arg(long, allow_negative_numbers = true)]
    start_ms: Option<i64>,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// `cargo bench` passes `--bench` to every bench binary. It is accepted and ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One encoded remote-write request, ready to send.
struct Request {
    body: Vec<u8>,
    samples: usize,
    /// Kept only for error messages, so a refusal can be traced to its data.
    first_timestamp_ms: i64,
}

/// The requests of one shard, grouped by sync span. Every shard has the same number of spans.
type ShardPlan = Vec<Vec<Request>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    validate(&args)?;
    let start_ms = args.start_ms.unwrap_or_else(|| default_start_ms(&args));

    let encode_clock = Instant::now();
    let plans = encode_all(&args, start_ms);
    let encode_seconds = encode_clock.elapsed().as_secs_f64();
    let requests: usize = plans.iter().flatten().map(Vec::len).sum();
    let bytes: usize = plans.iter().flatten().flatten().map(|r| r.body.len()).sum();
    eprintln!(
        "encoded {requests} requests ({:.1} MiB snappy) in {encode_seconds:.1}s; sending to {}",
        bytes as f64 / (1 << 20) as f64,
        args.url
    );

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_secs))
        .build()
        .context("building the HTTP client")?;
    let cpu_before = cpu_ticks();
    let clock = Instant::now();
    let (samples, mut latencies) = send_all(&client, &args.url, args.protocol, plans).await?;
    let seconds = clock.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let quantile = |q: f64| {
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(i).map(|d| d.as_secs_f64() * 1000.0)
    };
    let cpu = cpu_before.zip(cpu_ticks()).map(|(before, after)| CpuTicks {
        machine_busy: after.machine_busy.saturating_sub(before.machine_busy),
        own: after.own.saturating_sub(before.own),
    });

    let end_ms = start_ms + (args.samples_per_series as i64 - 1) * args.interval_ms;
    let report = serde_json::json!({
        "url": args.url,
        "protocol": format!("{:?}", args.protocol).to_lowercase(),
        "series": args.series,
        "histogram_series": total_series(&args) - args.series,
        "native_histograms": args.native_histograms,
        "samples_per_series": args.samples_per_series,
        "batch_size": args.batch_size,
        "concurrency": args.concurrency,
        "interval_ms": args.interval_ms,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "requests": requests,
        "request_bytes": bytes,
        "encode_seconds": encode_seconds,
        "samples": samples,
        "seconds": seconds,
        "samples_per_sec": samples as f64 / seconds,
        // Per request, from send to acknowledgement: the longest shows a stall (a block cut
        // or WAL checkpoint that ingest waited for).
        "latency_ms_p50": quantile(0.5),
        "latency_ms_p99": quantile(0.99),
        "latency_ms_max": quantile(1.0),
        // In 1/CLK_TCK s, over the sending phase only; null where /proc is missing.
        "cpu_ticks_machine_busy": cpu.map(|c| c.machine_busy),
        "cpu_ticks_self": cpu.map(|c| c.own),
    });
    println!("{report}");
    Ok(())
}

fn validate(args: &Args) -> anyhow::Result<()> {
    ensure!(args.series > 0, "--series must be at least 1");
    ensure!(
        !args.native_histograms || args.protocol == Protocol::Rw1,
        "--native-histograms needs --protocol rw1"
    );
    ensure!(
        args.samples_per_series > 0,
        "--samples-per-series must be at least 1"
    );
    ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    ensure!(args.interval_ms > 0, "--interval-ms must be at least 1");
    Ok(())
}

fn default_start_ms(args: &Args) -> i64 {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    now_ms - args.samples_per_series as i64 * args.interval_ms
}

/// CPU time in ticks (1/CLK_TCK s) from Linux's /proc. The script subtracts this program's
/// and the server's share from the machine's, which shows whether other work on the machine
/// took CPU during the run and skewed it.
#[derive(Debug, Clone, Copy)]
struct CpuTicks {
    /// All CPUs, busy time: user, nice, system, irq and softirq (not idle, iowait or steal).
    machine_busy: u64,
    /// This process: user and system time.
    own: u64,
}

/// `None` where /proc is missing or reads oddly, so the benchmark still runs there.
fn cpu_ticks() -> Option<CpuTicks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let machine_busy =
        fields.get(0..3)?.iter().sum::<u64>() + fields.get(5..7)?.iter().sum::<u64>();
    let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces, so count from the ')' that closes it:
    // utime and stime, fields 14 and 15, are then the 12th and 13th.
    let rest: Vec<&str> = own_stat.rsplit_once(')')?.1.split_whitespace().collect();
    let own = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
    Some(CpuTicks { machine_busy, own })
}

/// What series `index` is: one of the `--series` plain series, a histogram bucket, or a
/// native histogram.
enum SeriesKind {
    Plain(usize),
    Bucket { instance: usize, bucket: usize },
    Native { instance: usize },
}

fn series_kind(args: &Args, index: usize) -> SeriesKind {
    match index.checked_sub(args.series) {
        None => SeriesKind::Plain(index),
        Some(instance) if args.native_histograms => SeriesKind::Native { instance },
        Some(i) => SeriesKind::Bucket {
            instance: i / BUCKETS.len(),
            bucket: i % BUCKETS.len(),
        },
    }
}

fn total_series(args: &Args) -> usize {
    let per_instance = if args.native_histograms {
        1
    } else {
        BUCKETS.len()
    };
    args.series + args.histogram_instances * per_instance
}

fn label(name: &str, value: String) -> Label {
    Label {
        name: name.to_string(),
        value,
    }
}

/// Labels of series `index`, already sorted by name as the remote-write spec requires.
fn series_labels(args: &Args, index: usize) -> Vec<Label> {
    match series_kind(args, index) {
        SeriesKind::Plain(index) => plain_labels(index),
        SeriesKind::Bucket { instance, bucket } => vec![
            label("__name__", "bench_request_seconds_bucket".to_string()),
            label("instance", format!("host-{instance}")),
            label("job", "bench".to_string()),
            label("le", BUCKETS[bucket].0.to_string()),
        ],
        SeriesKind::Native { instance } => vec![
            label("__name__", "bench_request_seconds".to_string()),
            label("instance", format!("host-{instance}")),
            label("job", "bench".to_string()),
        ],
    }
}

fn plain_labels(index: usize) -> Vec<Label> {
    vec![
        label("__name__", format!("bench_metric_{}", index % METRIC_NAMES)),
        label(
            "instance",
            format!("host-{}", (index / METRIC_NAMES) % INSTANCES),
        ),
        label("job", "bench".to_string()),
        label("series_id", index.to_string()),
    ]
}

/// What a metric name's series look like, as an exporter's do: of every ten names, four
/// are counters, two slowly moving gauges (memory, temperatures, queue lengths), two
/// constants (`up`, info metrics, limits), and two gauges that jump every scrape (the hard
/// case for XOR encoding, as CPU percentages are).
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Counter,
    SlowGauge,
    Constant,
    NoisyGauge,
}

fn shape(index: usize) -> Shape {
    match index % METRIC_NAMES {
        0 | 2 | 4 | 6 => Shape::Counter,
        1 | 3 => Shape::SlowGauge,
        5 | 7 => Shape::Constant,
        _ => Shape::NoisyGauge,
    }
}

/// SplitMix64 over (series, step). It gives values that look random but are the same on every
/// run, so both servers receive identical data.
fn mix(series: usize, step: usize) -> u64 {
    let mut z = (series as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(step as u64)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A scrape's timestamp: on the interval grid, late by a few milliseconds of jitter that
/// differs per target and scrape, as real scrape loops' timestamps are.
fn scrape_timestamp(args: &Args, start_ms: i64, series: usize, step: usize) -> i64 {
    let instance = match series_kind(args, series) {
        SeriesKind::Plain(index) => (index / METRIC_NAMES) % INSTANCES,
        SeriesKind::Bucket { instance, .. } | SeriesKind::Native { instance } => instance,
    };
    let jitter = (mix(usize::MAX / 2 - instance, step) % 25) as i64;
    start_ms + step as i64 * args.interval_ms + jitter
}

/// Next value of a series. Counters grow by a whole number in 0..100, as request or byte
/// counters do; slow gauges move by a small step now and then; constants never change;
/// noisy gauges jump to a two-decimal value in 0..100 every time. A bucket grows by its
/// share of the step's 0..100 observations of its instance.
fn next_value(args: &Args, series: usize, step: usize, previous: f64) -> f64 {
    let series = match series_kind(args, series) {
        SeriesKind::Plain(series) => series,
        SeriesKind::Bucket { instance, bucket } => {
            let observations = (mix(usize::MAX - instance, step) % 100) as f64;
            return previous + (observations * BUCKETS[bucket].1).floor();
        }
        SeriesKind::Native { .. } => return previous,
    };
    let h = mix(series, step);
    match shape(series) {
        Shape::Counter => previous + (h % 100) as f64,
        Shape::SlowGauge if step == 0 => (1 + series % 64) as f64 * 1024.0 * 1024.0,
        Shape::SlowGauge if h.is_multiple_of(8) => {
            previous + ((h >> 8) % 64) as f64 * 4096.0 - 128.0 * 1024.0
        }
        Shape::SlowGauge => previous,
        Shape::Constant => (series % 4) as f64,
        Shape::NoisyGauge => (h % 10_000) as f64 / 100.0,
    }
}

/// Encodes every shard's requests, in parallel because encoding millions of samples takes a
/// few seconds.
fn encode_all(args: &Args, start_ms: i64) -> Vec<ShardPlan> {
    let total = total_series(args);
    let shards = args.concurrency.min(total);
    let labels: Vec<Vec<Label>> = (0..total).map(|i| series_labels(args, i)).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..shards)
            .map(|shard| {
                let members: Vec<usize> = (shard..total).step_by(shards).collect();
                let labels = &labels;
                scope.spawn(move || encode_shard(args, start_ms, &members, labels))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("encoding thread panicked"))
            .collect()
    })
}

/// Encodes one shard: all its series at step 0, then all at step 1, and so on. Each request
/// carries one sample per TimeSeries entry, which is what Prometheus sends when it keeps up.
fn encode_shard(args: &Args, start_ms: i64, members: &[usize], labels: &[Vec<Label>]) -> ShardPlan {
    let steps_per_span = (SYNC_SPAN_MS / args.interval_ms).max(1) as usize;
    let mut values = vec![0.0_f64; members.len()];
    // Each native histogram series' cumulative counts by bucket index, and sum.
    let mut natives: Vec<(std::collections::BTreeMap<i32, u64>, f64)> =
        vec![Default::default(); members.len()];
    let mut plan = ShardPlan::new();
    for span_start in (0..args.samples_per_series).step_by(steps_per_span) {
        let span_end = (span_start + steps_per_span).min(args.samples_per_series);
        let mut requests = Vec::new();
        let mut batch = Vec::with_capacity(args.batch_size);
        for step in span_start..span_end {
            for (slot, &series) in members.iter().enumerate() {
                let timestamp = scrape_timestamp(args, start_ms, series, step);
                let entry = match series_kind(args, series) {
                    SeriesKind::Native { instance } => {
                        let (buckets, sum) = &mut natives[slot];
                        *sum += native::observe(instance, step, buckets);
                        TimeSeries {
                            labels: labels[series].clone(),
                            samples: Vec::new(),
                            histograms: vec![native::histogram(buckets, *sum, timestamp)],
                        }
                    }
                    _ => {
                        values[slot] = next_value(args, series, step, values[slot]);
                        TimeSeries {
                            labels: labels[series].clone(),
                            samples: vec![Sample {
                                value: values[slot],
                                timestamp,
                            }],
                            histograms: Vec::new(),
                        }
                    }
                };
                batch.push(entry);
                if batch.len() == args.batch_size {
                    requests.push(encode_request(args.protocol, std::mem::take(&mut batch)));
                }
            }
        }
        // A span's last, short batch is sent before the barrier instead of waiting for the
        // next span.
        if !batch.is_empty() {
            requests.push(encode_request(args.protocol, batch));
        }
        plan.push(requests);
    }
    plan
}

/// One request in the chosen protocol: remote write as protobuf then snappy in the raw
/// block format (not the framed stream format); OTLP as plain protobuf.
fn encode_request(protocol: Protocol, timeseries: Vec<TimeSeries>) -> Request {
    let samples = timeseries
        .iter()
        .map(|ts| ts.samples.len() + ts.histograms.len())
        .sum();
    let first_timestamp_ms = timeseries.first().map_or(0, |ts| {
        ts.samples
            .first()
            .map(|s| s.timestamp)
            .or_else(|| ts.histograms.first().map(|h| h.timestamp))
            .unwrap_or(0)
    });
    let snappy = |raw: Vec<u8>| {
        snap::raw::Encoder::new()
            .compress_vec(&raw)
            .expect("snappy accepts any input below 4 GiB")
    };
    let body = match protocol {
        Protocol::Rw1 => snappy(
            WriteRequest {
                timeseries,
                metadata: Vec::new(),
            }
            .encode_to_vec(),
        ),
        Protocol::Rw2 => snappy(v2::encode(timeseries)),
        Protocol::Otlp => otlp::encode(timeseries),
    };
    Request {
        body,
        samples,
        first_timestamp_ms,
    }
}

/// The native form of the classic histogram: the same observations per step and instance,
/// each classic bucket's share spread evenly over the schema-3 buckets (bounds 2^(i/8))
/// inside it, as an instrumented application with native histograms would record them.
mod native {
    use std::collections::BTreeMap;

    use quiver::model::histogram::{Histogram, spans_from_buckets};
    use quiver::prompb::histogram::Histogram as WireHistogram;

    use super::{BUCKETS, mix};

    const SCHEMA: i32 = 3;
    /// Where the first classic bucket starts, and where observations above 1 s end.
    const LOWEST: f64 = 0.001;
    const HIGHEST: f64 = 2.0;

    /// The native bucket indexes inside `(lower, upper]`.
    fn indexes(lower: f64, upper: f64) -> std::ops::RangeInclusive<i32> {
        let scale = f64::from(1 << SCHEMA);
        let first = (lower.log2() * scale).floor() as i32 + 1;
        let last = (upper.log2() * scale).ceil() as i32;
        first..=last.max(first)
    }

    /// Adds one step's observations of `instance` to `buckets`; returns their sum.
    pub fn observe(instance: usize, step: usize, buckets: &mut BTreeMap<i32, u64>) -> f64 {
        // The same draw as the classic buckets' (see `next_value`).
        let observations = (mix(usize::MAX - instance, step) % 100) as f64;
        let mut below = 0u64;
        let mut lower = LOWEST;
        let mut sum = 0.0;
        for (bound, share) in BUCKETS {
            let upper = bound.parse::<f64>().unwrap_or(HIGHEST).min(HIGHEST);
            let cumulative = (observations * share).floor() as u64;
            let count = cumulative - below;
            below = cumulative;
            let range = indexes(lower, upper);
            let width = range.clone().count() as u64;
            for (k, index) in range.enumerate() {
                let here = count / width + u64::from((k as u64) < count % width);
                if here > 0 {
                    *buckets.entry(index).or_insert(0) += here;
                }
            }
            sum += count as f64 * (lower * upper).sqrt();
            lower = upper;
        }
        sum
    }

    /// The cumulative histogram as remote write sends it.
    pub fn histogram(buckets: &BTreeMap<i32, u64>, sum: f64, timestamp: i64) -> WireHistogram {
        let (positive_spans, positive_buckets) =
            spans_from_buckets(buckets.iter().map(|(i, c)| (*i, *c as f64)), 2);
        let h = Histogram {
            schema: SCHEMA,
            zero_threshold: 1e-128,
            count: buckets.values().sum::<u64>() as f64,
            sum,
            positive_spans,
            positive_buckets,
            ..Histogram::default()
        };
        WireHistogram::from_integer(&h, timestamp)
    }
}

/// Remote write 2.0 requests.
mod v2 {
    use std::collections::HashMap;

    use prost::Message;
    use quiver::prompb::TimeSeries as V1Series;
    use quiver::prompb::v2::{Request, Sample, TimeSeries};

    /// The series with their strings interned in the request's symbols table (the empty
    /// string first, as the spec requires).
    pub fn encode(series: Vec<V1Series>) -> Vec<u8> {
        let mut symbols = vec![String::new()];
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut intern = |s: &str| -> u32 {
            if let Some(&i) = index.get(s) {
                return i;
            }
            symbols.push(s.to_owned());
            index.insert(s.to_owned(), symbols.len() as u32 - 1);
            symbols.len() as u32 - 1
        };
        let timeseries = series
            .into_iter()
            .map(|ts| TimeSeries {
                labels_refs: ts
                    .labels
                    .iter()
                    .flat_map(|l| [intern(&l.name), intern(&l.value)])
                    .collect(),
                samples: ts
                    .samples
                    .iter()
                    .map(|s| Sample {
                        value: s.value,
                        timestamp: s.timestamp,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        Request {
            symbols,
            timeseries,
        }
        .encode_to_vec()
    }
}

/// OTLP metrics: one resource per `instance` (`service.name` = the `job`,
/// `service.instance.id` = the instance), one gauge per metric name, the other labels as
/// point attributes. Prometheus's translation gives back exactly the remote-write series.
mod otlp {
    use std::collections::BTreeMap;

    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data,
        number_data_point,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    use quiver::prompb::TimeSeries;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.to_owned())),
            }),
            ..Default::default()
        }
    }

    pub fn encode(series: Vec<TimeSeries>) -> Vec<u8> {
        // (job, instance) -> metric name -> points
        let mut resources: BTreeMap<(String, String), BTreeMap<String, Vec<NumberDataPoint>>> =
            BTreeMap::new();
        for ts in series {
            let get = |name: &str| {
                ts.labels
                    .iter()
                    .find(|l| l.name == name)
                    .map(|l| l.value.clone())
                    .unwrap_or_default()
            };
            let key = (get("job"), get("instance"));
            let attributes: Vec<KeyValue> = ts
                .labels
                .iter()
                .filter(|l| !matches!(l.name.as_str(), "__name__" | "job" | "instance"))
                .map(|l| kv(&l.name, &l.value))
                .collect();
            let points = resources
                .entry(key)
                .or_default()
                .entry(get("__name__"))
                .or_default();
            for s in &ts.samples {
                points.push(NumberDataPoint {
                    attributes: attributes.clone(),
                    time_unix_nano: s.timestamp as u64 * 1_000_000,
                    value: Some(number_data_point::Value::AsDouble(s.value)),
                    ..Default::default()
                });
            }
        }
        let resource_metrics = resources
            .into_iter()
            .map(|((job, instance), metrics)| ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", &job),
                        kv("service.instance.id", &instance),
                    ],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: metrics
                        .into_iter()
                        .map(|(name, data_points)| Metric {
                            name,
                            data: Some(Data::Gauge(Gauge { data_points })),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        ExportMetricsServiceRequest { resource_metrics }.encode_to_vec()
    }
}

/// Sends every shard's plan on its own task. Returns the number of samples acknowledged.
/// The first failure aborts the run, because a benchmark with refused samples would be wrong.
async fn send_all(
    client: &reqwest::Client,
    url: &str,
    protocol: Protocol,
    plans: Vec<ShardPlan>,
) -> anyhow::Result<(u64, Vec<Duration>)> {
    let barrier = Arc::new(Barrier::new(plans.len()));
    let mut tasks = JoinSet::new();
    for (shard, plan) in plans.into_iter().enumerate() {
        let (client, url, barrier) = (client.clone(), url.to_string(), barrier.clone());
        tasks.spawn(async move {
            send_shard(&client, &url, protocol, plan, &barrier)
                .await
                .with_context(|| format!("shard {shard}"))
        });
    }
    let mut acknowledged = 0;
    let mut latencies = Vec::new();
    // Returning early drops the JoinSet, which aborts the other shards. Left running, they
    // would wait at the barrier forever.
    while let Some(joined) = tasks.join_next().await {
        let (samples, shard_latencies) = joined.context("sender task panicked")??;
        acknowledged += samples;
        latencies.extend(shard_latencies);
    }
    Ok((acknowledged, latencies))
}

async fn send_shard(
    client: &reqwest::Client,
    url: &str,
    protocol: Protocol,
    plan: ShardPlan,
    barrier: &Barrier,
) -> anyhow::Result<(u64, Vec<Duration>)> {
    let mut acknowledged = 0;
    let mut latencies = Vec::new();
    for span in plan {
        for request in span {
            let (samples, first) = (request.samples, request.first_timestamp_ms);
            let sent = Instant::now();
            send_request(client, url, protocol, request.body)
                .await
                .with_context(|| {
                    format!("request of {samples} samples starting at t={first} ms")
                })?;
            latencies.push(sent.elapsed());
            acknowledged += samples as u64;
        }
        barrier.wait().await;
    }
    Ok((acknowledged, latencies))
}

/// Sends one request with the headers Prometheus's remote-write client (or an OpenTelemetry
/// exporter) sends. Any non-2xx answer, or an OTLP answer with a partial success, is an error
/// that includes the body, which names the reason for a refusal.
async fn send_request(
    client: &reqwest::Client,
    url: &str,
    protocol: Protocol,
    body: Vec<u8>,
) -> anyhow::Result<()> {
    let request = client
        .post(url)
        .header(reqwest::header::USER_AGENT, "quiver-bench-ingest/0.1");
    let request = match protocol {
        Protocol::Rw1 => request
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .header(reqwest::header::CONTENT_ENCODING, "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0"),
        Protocol::Rw2 => request
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            )
            .header(reqwest::header::CONTENT_ENCODING, "snappy")
            .header("X-Prometheus-Remote-Write-Version", "2.0.0"),
        Protocol::Otlp => request.header(reqwest::header::CONTENT_TYPE, "application/x-protobuf"),
    };
    let response = request
        .body(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let text = response
        .bytes()
        .await
        .map_err(|e| anyhow::anyhow!("POST {url}: body unreadable: {e}"))?;
    if !status.is_success() {
        bail!(
            "POST {url} answered {status}: {}",
            String::from_utf8_lossy(&text).trim()
        );
    }
    if protocol == Protocol::Otlp {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
        let answer = ExportMetricsServiceResponse::decode(text.as_ref())
            .context("decoding the OTLP answer")?;
        if let Some(partial) = answer
            .partial_success
            .filter(|p| p.rejected_data_points > 0)
        {
            bail!(
                "POST {url}: {} data points rejected: {}",
                partial.rejected_data_points,
                partial.error_message
            );
        }
    }
    Ok(())
}
