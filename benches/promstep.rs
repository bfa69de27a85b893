//! Cost of `PromStepExec`, the node that applies PromQL's lookback and range windows, on
//! the shape a dashboard query gives it: `--series` series of one metric, one sample every
//! 15 s, evaluated every 15 s over one hour, as an instant selection and as `rate(...[5m])`;
//! then of `PromRankExec` choosing `topk(5, ...)` of the `rate` rows at every step.
//!
//! The input is already in memory (labels as the selector's dictionary), so the figure is
//! the node's own work: grouping rows into series, then one value per series and step.
//!
//! Run it with `cargo bench --bench promstep`, or `cargo bench --bench promstep --
//! --series 2000 --iterations 50`. It prints a markdown table on stdout.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arrow::array::{
    DictionaryArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use clap::Parser;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::SessionContext;
use quiver::query::promql::functions::RangeFunc;
use quiver::query::promql::planner::{step_schema, vector_schema};
use quiver::query::promql::rank::{PromRankExec, RankOrder};
use quiver::query::promql::step::{Emit, PromStepExec, StepNotes, Steps, Window};
use quiver::query::promql::syntax::SelectorMode;

#[derive(Debug, Parser)]
#[command(about = "Cost of PromQL's step node")]
struct Args {
    /// Series in the input.
    #[arg(long, default_value_t = 200)]
    series: usize,
    /// Timed runs per window; the median is reported.
    #[arg(long, default_value_t = 30)]
    iterations: usize,
    /// `cargo bench` passes `--bench` to every bench binary. It is accepted and ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const STEP_MS: i64 = 15_000;
const HOUR_MS: i64 = 3_600_000;
const LOOKBACK_MS: i64 = 300_000;

/// Samples from 5 minutes before the first step to the last, as the selector reads them.
fn input(series: usize) -> anyhow::Result<RecordBatch> {
    let per_series = ((HOUR_MS + LOOKBACK_MS) / STEP_MS) as usize;
    let names: Vec<String> = (0..series)
        .map(|i| format!("__name__\u{1}bench_metric\u{2}instance\u{1}host-{i}\u{2}job\u{1}bench"))
        .collect();
    let mut keys = Vec::with_capacity(series * per_series);
    let mut ts = Vec::with_capacity(series * per_series);
    let mut vs = Vec::with_capacity(series * per_series);
    for s in 0..series {
        for i in 0..per_series {
            keys.push(s as u32);
            ts.push(i as i64 * STEP_MS + 7_000);
            vs.push((s * 7 + i * 13) as f64);
        }
    }
    let label_type = DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8));
    let schema = Arc::new(Schema::new(vec![
        Field::new("labels", label_type, false),
        Field::new("timestamp", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
    ]));
    let labels = DictionaryArray::new(UInt32Array::from(keys), Arc::new(StringArray::from(names)));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(labels),
            Arc::new(Int64Array::from(ts)),
            Arc::new(Float64Array::from(vs)),
        ],
    )
    .context("building the input batch")
}

async fn time_window(
    batch: &RecordBatch,
    window: Window,
    iterations: usize,
) -> anyhow::Result<(Duration, Duration, Vec<RecordBatch>)> {
    let ctx = SessionContext::new();
    let steps = Steps {
        start: LOOKBACK_MS,
        end: LOOKBACK_MS + HOUR_MS,
        step: STEP_MS,
        offset: 0,
        at: None,
    };
    let mut times = Vec::with_capacity(iterations);
    let mut grouping = Vec::with_capacity(iterations);
    let mut output = Vec::new();
    for _ in 0..iterations {
        let source =
            MemorySourceConfig::try_new_exec(&[vec![batch.clone()]], batch.schema(), None)?;
        let node: Arc<dyn ExecutionPlan> = Arc::new(PromStepExec::new(
            source,
            steps.clone(),
            window.clone(),
            false,
            StepNotes::default(),
            step_schema(),
        ));
        let clock = Instant::now();
        let out = collect(node.clone(), ctx.task_ctx()).await?;
        times.push(clock.elapsed());
        grouping.push(grouping_time(node.as_ref()));
        output = black_box(out);
    }
    times.sort();
    grouping.sort();
    Ok((times[times.len() / 2], grouping[grouping.len() / 2], output))
}

/// `topk(5, ...)` over `rows` (a `PromStep` output): the node's input adds the group key
/// (one group) and `k` to every row.
async fn time_topk(rows: &[RecordBatch], iterations: usize) -> anyhow::Result<(Duration, usize)> {
    let ctx = SessionContext::new();
    let mut keyed = Vec::with_capacity(rows.len());
    let mut schema = None;
    for batch in rows {
        let n = batch.num_rows();
        let fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .chain([
                Field::new("g", DataType::Utf8, false),
                Field::new("p", DataType::Float64, false),
            ])
            .collect();
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(StringArray::from(vec![""; n])));
        columns.push(Arc::new(Float64Array::from(vec![5.0; n])));
        let with_key = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        schema = Some(with_key.schema());
        keyed.push(with_key);
    }
    let schema = schema.context("no rows to rank")?;
    let mut times = Vec::with_capacity(iterations);
    let mut out_rows = 0;
    for _ in 0..iterations {
        let source = MemorySourceConfig::try_new_exec(&[keyed.clone()], schema.clone(), None)?;
        let node: Arc<dyn ExecutionPlan> = Arc::new(PromRankExec::new(
            source,
            RankOrder::Largest,
            vector_schema(),
        ));
        let clock = Instant::now();
        let out = collect(node, ctx.task_ctx()).await?;
        times.push(clock.elapsed());
        out_rows = black_box(out).iter().map(RecordBatch::num_rows).sum();
    }
    times.sort();
    Ok((times[times.len() / 2], out_rows))
}

/// The part of a run spent grouping rows into series, from the node's metrics.
fn grouping_time(node: &dyn ExecutionPlan) -> Duration {
    let nanos = node
        .metrics()
        .and_then(|m| m.sum_by_name("grouping_time"))
        .map_or(0, |v| v.as_usize());
    Duration::from_nanos(nanos as u64)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let batch = input(args.series)?;
    println!(
        "PromStepExec over {} series x {} samples, 241 steps (median of {} runs)\n",
        args.series,
        batch.num_rows() / args.series.max(1),
        args.iterations
    );
    println!(
        "| window | ms | of which grouping, ms | output rows | ns per input row |\n|---|---:|---:|---:|---:|"
    );
    let windows = [
        (
            "instant selection",
            Window::Instant {
                lookback: LOOKBACK_MS,
                emit: Emit::Value,
                smoothed: false,
            },
        ),
        (
            "rate([5m])",
            Window::Range {
                range: LOOKBACK_MS,
                func: RangeFunc::Rate,
                params: Vec::new(),
                mode: SelectorMode::Plain,
                lookback: LOOKBACK_MS,
            },
        ),
    ];
    let mut rate_rows = Vec::new();
    for (name, window) in windows {
        let (median, grouping, output) = time_window(&batch, window, args.iterations).await?;
        let rows: usize = output.iter().map(RecordBatch::num_rows).sum();
        rate_rows = output;
        println!(
            "| {name} | {:.3} | {:.3} | {rows} | {:.1} |",
            median.as_secs_f64() * 1000.0,
            grouping.as_secs_f64() * 1000.0,
            median.as_nanos() as f64 / batch.num_rows() as f64
        );
    }
    let (median, kept) = time_topk(&rate_rows, args.iterations).await?;
    let rows: usize = rate_rows.iter().map(RecordBatch::num_rows).sum();
    println!(
        "| PromRankExec: topk(5, rate) | {:.3} | | {kept} | {:.1} |",
        median.as_secs_f64() * 1000.0,
        median.as_nanos() as f64 / rows.max(1) as f64
    );
    Ok(())
}
