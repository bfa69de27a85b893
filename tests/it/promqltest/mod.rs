//! Runs Prometheus's own PromQL test scripts (`../shared/promqltest/*.test`, see FORMAT.md
//! there) against a real Quiver storage and the PromQL engine, prints a per-file table and
//! the pass rates (all evals, and the float-only ones), and fails if either pass count drops
//! below its committed baseline.

mod compare;
mod script;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quiver::config::{PromDuration, StorageConfig};
use quiver::model::histogram::{CounterResetHint, Histogram, Span};
use quiver::model::{HistogramSample, Labels, Sample, SeriesSamples};
use quiver::query::promql::{PromValue, PromqlEngine, SourceResolution};
use quiver::storage::Storage;

use compare::{Actual, Annotations, check};
use script::{
    Command, Eval, EvalMode, HistogramLiteral, Load, LoadSeries, SampleValue, parse_script,
};

/// The float-only evals that must keep passing; raise it as the engine improves.
const BASELINE_FLOAT_PASSES: usize = include!("baseline.txt");
/// The evals of every kind (floats and native histograms) that must keep passing.
const BASELINE_ALL_PASSES: usize = include!("baseline_all.txt");

const LOOKBACK: Duration = Duration::from_secs(300);

/// The shared scripts, or (for a developer narrowing a failure down) the folder named by
/// `QUIVER_PROMQLTEST_DIR`.
fn scripts_dir() -> PathBuf {
    match std::env::var_os("QUIVER_PROMQLTEST_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/promqltest"),
    }
}

/// A fresh storage that keeps everything in the head and accepts samples in any order.
struct Instance {
    _dir: tempfile::TempDir,
    storage: Arc<Storage>,
    engine: PromqlEngine,
}

async fn new_instance() -> Instance {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = StorageConfig {
        block_duration: PromDuration::from_secs(100 * 365 * 86400),
        out_of_order_time_window: PromDuration::from_secs(100 * 365 * 86400),
        ..StorageConfig::default()
    };
    let (storage, engine) = crate::common::embedded_engine(dir.path(), config, 50_000_000).await;
    Instance {
        _dir: dir,
        storage,
        engine,
    }
}

/// Writes a load block, floats and native histograms, and for `load_with_nhcb` the
/// custom-bucket histograms made of its classic ones.
fn load(instance: &Instance, block: &Load) -> Result<(), String> {
    let mut batch = Vec::new();
    let nhcb = match block.with_nhcb {
        true => script::synthesize_nhcb(block)?,
        false => Vec::new(),
    };
    for series in block.series.iter().chain(&nhcb) {
        let labels = Labels::series(series.labels.clone()).map_err(|e| e.to_string())?;
        let (mut samples, mut histograms) = (Vec::new(), Vec::new());
        for (i, (t, v)) in series.samples.iter().enumerate() {
            let start_timestamp_ms = start_timestamp(series, i, *t);
            match v {
                SampleValue::Float(f) => samples.push(Sample {
                    start_timestamp_ms,
                    ..Sample::new(*t, *f)
                }),
                SampleValue::Histogram(h) => histograms.push(HistogramSample {
                    timestamp_ms: *t,
                    start_timestamp_ms,
                    histogram: Arc::new(to_histogram(h)),
                }),
            }
        }
        batch.push(SeriesSamples {
            labels: Arc::new(labels),
            samples,
            histograms,
        });
    }
    let mut appender = instance.storage.appender();
    appender.extend(batch);
    appender.commit().map(|_| ()).map_err(|e| e.to_string())
}

/// A script's histogram literal as storage takes it: each side's buckets as one span.
fn to_histogram(h: &HistogramLiteral) -> Histogram {
    let span = |offset: i32, buckets: &[f64]| match buckets.is_empty() {
        true => Vec::new(),
        false => vec![Span {
            offset,
            length: buckets.len() as u32,
        }],
    };
    Histogram {
        counter_reset_hint: match h.counter_reset_hint.as_deref() {
            Some("reset") => CounterResetHint::CounterReset,
            Some("not_reset") => CounterResetHint::NotCounterReset,
            Some("gauge") => CounterResetHint::Gauge,
            _ => CounterResetHint::Unknown,
        },
        schema: h.schema,
        zero_threshold: h.z_bucket_w,
        zero_count: h.z_bucket,
        count: h.count,
        sum: h.sum,
        positive_spans: span(h.offset, &h.buckets),
        positive_buckets: h.buckets.clone(),
        negative_spans: span(h.n_offset, &h.n_buckets),
        negative_buckets: h.n_buckets.clone(),
        custom_values: h.custom_values.clone(),
    }
}

/// A result's histogram as a literal: each side's buckets from its first to its last,
/// gaps between spans as empty buckets.
fn to_literal(h: &Histogram) -> HistogramLiteral {
    let side = |spans: &[Span], counts: &[f64]| -> (i32, Vec<f64>) {
        let mut out = Vec::new();
        let mut first = None;
        let mut next = 0i32;
        let mut counts = counts.iter();
        for (k, s) in spans.iter().enumerate() {
            let start = if k == 0 { s.offset } else { next + s.offset };
            if first.is_none() {
                first = Some(start);
            } else {
                out.extend(std::iter::repeat_n(0.0, (start - next) as usize));
            }
            for _ in 0..s.length {
                out.push(counts.next().copied().unwrap_or(0.0));
            }
            next = start + s.length as i32;
        }
        (first.unwrap_or(0), out)
    };
    let (offset, buckets) = side(&h.positive_spans, &h.positive_buckets);
    let (n_offset, n_buckets) = side(&h.negative_spans, &h.negative_buckets);
    HistogramLiteral {
        schema: h.schema,
        sum: h.sum,
        count: h.count,
        z_bucket: h.zero_count,
        z_bucket_w: h.zero_threshold,
        buckets,
        offset,
        n_buckets,
        n_offset,
        custom_values: h.custom_values.clone(),
        counter_reset_hint: Some(
            match h.counter_reset_hint {
                CounterResetHint::Unknown => "unknown",
                CounterResetHint::CounterReset => "reset",
                CounterResetHint::NotCounterReset => "not_reset",
                CounterResetHint::Gauge => "gauge",
            }
            .to_string(),
        ),
    }
}

/// Sample `i`'s start timestamp from its `@st` offset (§3.5): 0 when unknown.
fn start_timestamp(series: &LoadSeries, i: usize, t: i64) -> i64 {
    series
        .start_offsets
        .get(i)
        .copied()
        .flatten()
        .map_or(0, |offset| t + offset)
}

/// How much later than an evaluation its expression is planned first.
const PREPARED_AT: i64 = 61_003;

async fn evaluate(instance: &Instance, eval: &Eval) -> Result<(Actual, Annotations), String> {
    let result = match eval.mode {
        EvalMode::Instant { at_ms } => {
            let at = eval
                .expect
                .range_vector
                .map(|(_, t2, _)| t2)
                .unwrap_or(at_ms);
            // Planned first at another time, so the evaluation runs the prepared plan moved
            // to its own time, as a rule's evaluations after its first do.
            let _ = instance
                .engine
                .instant_annotated(
                    &eval.expr,
                    at + PREPARED_AT,
                    LOOKBACK,
                    SourceResolution::Raw,
                )
                .await;
            instance
                .engine
                .instant_annotated(&eval.expr, at, LOOKBACK, SourceResolution::Raw)
                .await
        }
        EvalMode::Range {
            start_ms,
            end_ms,
            step_ms,
        } => {
            let _ = instance
                .engine
                .range_annotated(
                    &eval.expr,
                    start_ms + PREPARED_AT,
                    end_ms + PREPARED_AT,
                    step_ms,
                    LOOKBACK,
                    SourceResolution::Raw,
                )
                .await;
            instance
                .engine
                .range_annotated(
                    &eval.expr,
                    start_ms,
                    end_ms,
                    step_ms,
                    LOOKBACK,
                    SourceResolution::Raw,
                )
                .await
        }
    };
    let evaluation = result.map_err(|e| e.to_string())?;
    let annotations = Annotations {
        warnings: evaluation.warnings,
        infos: evaluation.infos,
    };
    Ok((to_actual(evaluation.value), annotations))
}

fn to_actual(value: PromValue) -> Actual {
    match value {
        PromValue::Vector(series) => Actual::Vector(
            series
                .into_iter()
                .map(|s| {
                    let value = match (s.points.first(), s.histograms.first()) {
                        (None, Some((_, h))) => SampleValue::Histogram(to_literal(h)),
                        (point, _) => SampleValue::Float(point.map_or(f64::NAN, |p| p.1)),
                    };
                    (s.labels.to_pairs(), value)
                })
                .collect(),
        ),
        PromValue::Matrix(series) => Actual::Matrix(
            series
                .into_iter()
                .map(|s| {
                    let mut points: Vec<(i64, SampleValue)> = (s.points.into_iter())
                        .map(|(t, v)| (t, SampleValue::Float(v)))
                        .chain(
                            (s.histograms.iter())
                                .map(|(t, h)| (*t, SampleValue::Histogram(to_literal(h)))),
                        )
                        .collect();
                    points.sort_by_key(|p| p.0);
                    (s.labels.to_pairs(), points)
                })
                .collect(),
        ),
        PromValue::Scalar(_, v) => Actual::Scalar(v),
        PromValue::String(_, s) => Actual::String(s),
    }
}

#[derive(Default)]
struct Tally {
    evals: usize,
    passed: usize,
    float_evals: usize,
    float_passed: usize,
    /// Evals that ran a plan prepared at another time.
    prepared_runs: u64,
    failures: Vec<String>,
}

async fn run_file(path: &Path) -> Tally {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("?")
        .to_string();
    let text = std::fs::read_to_string(path).expect("reading test file");
    let mut tally = Tally::default();
    let script = match parse_script(&name, &text) {
        Ok(s) => s,
        Err(e) => {
            tally.failures.push(format!("{name}: cannot parse: {e}"));
            return tally;
        }
    };
    let mut instance = new_instance().await;
    let mut load_error: Option<String> = None;
    for command in &script.commands {
        match command {
            Command::Clear => {
                tally.prepared_runs += instance.engine.prepared_runs();
                instance = new_instance().await;
                load_error = None;
            }
            Command::Load(block) => {
                if let Err(e) = load(&instance, block) {
                    load_error = Some(format!("load at line {} failed: {e}", block.line));
                }
            }
            Command::Eval(eval) => {
                tally.evals += 1;
                let float_only = !eval.touches_native_histograms;
                if float_only {
                    tally.float_evals += 1;
                }
                let verdict = match &load_error {
                    Some(e) => Err(e.clone()),
                    None => {
                        let outcome = evaluate(&instance, eval).await;
                        check(eval, &outcome)
                    }
                };
                match verdict {
                    Ok(()) => {
                        tally.passed += 1;
                        if float_only {
                            tally.float_passed += 1;
                        }
                    }
                    Err(reason) => {
                        let kind = if float_only {
                            "float"
                        } else {
                            "native-histogram"
                        };
                        tally.failures.push(format!(
                            "[{kind}] {name}:{} {}: {reason}",
                            eval.line, eval.expr
                        ));
                    }
                }
            }
        }
    }
    tally.prepared_runs += instance.engine.prepared_runs();
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_promql_test_suite() {
    let dir = scripts_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test files in {}", dir.display());
    let mut total = Tally::default();
    let mut report = String::from(
        "\n| file | evals | passed | float-only evals | float-only passed |\n|---|---:|---:|---:|---:|\n",
    );
    for file in &files {
        let t = run_file(file).await;
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        report.push_str(&format!(
            "| {name} | {} | {} | {} | {} |\n",
            t.evals, t.passed, t.float_evals, t.float_passed
        ));
        total.evals += t.evals;
        total.passed += t.passed;
        total.float_evals += t.float_evals;
        total.float_passed += t.float_passed;
        total.prepared_runs += t.prepared_runs;
        total.failures.extend(t.failures);
    }
    let pct = |a: usize, b: usize| {
        if b == 0 {
            0.0
        } else {
            100.0 * a as f64 / b as f64
        }
    };
    report.push_str(&format!(
        "| **total** | {} | {} ({:.1}%) | {} | {} ({:.1}%) |\n",
        total.evals,
        total.passed,
        pct(total.passed, total.evals),
        total.float_evals,
        total.float_passed,
        pct(total.float_passed, total.float_evals)
    ));
    println!("{report}");
    let failures_path = std::env::temp_dir().join("quiver-promqltest-failures.txt");
    let _ = std::fs::write(&failures_path, total.failures.join("\n"));
    println!("failing evals listed in {}", failures_path.display());
    println!(
        "PromQL test suite: {} of {} float-only evals pass (baseline {BASELINE_FLOAT_PASSES}); {} of {} evals of every kind (baseline {BASELINE_ALL_PASSES})",
        total.float_passed, total.float_evals, total.passed, total.evals
    );
    println!(
        "{} of {} evals ran the plan prepared {PREPARED_AT} ms later, moved to their time",
        total.prepared_runs, total.evals
    );
    // Expressions tied to their time (`@`, subqueries, `start()`, `end()`) plan anew.
    assert!(
        total.prepared_runs as f64 >= 0.5 * total.evals as f64,
        "too few evals ran a prepared plan"
    );
    assert!(
        total.float_passed >= BASELINE_FLOAT_PASSES,
        "PromQL float-only pass count fell below the baseline: {} < {BASELINE_FLOAT_PASSES}",
        total.float_passed
    );
    assert!(
        total.passed >= BASELINE_ALL_PASSES,
        "PromQL pass count fell below the baseline: {} < {BASELINE_ALL_PASSES}",
        total.passed
    );
}
