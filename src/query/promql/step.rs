//! `PromStep`: the plan node that turns raw samples into PromQL values at evaluation steps.
//!
//! Its input is rows `(labels, timestamp, value)` of raw samples (or of an inner
//! expression evaluated at finer steps, for subqueries). For every series and every step
//! `t` in `start..=end` it emits at most one row `(labels, t, value)`:
//! - instant selection: the newest sample in `(T - lookback, T]`, unless it is a
//!   staleness marker;
//! - a range function: the function over the samples in `(T - range, T]`;
//!
//! where `T` is `t` (or the `@` time) minus the offset. This is the one place PromQL's
//! time semantics live; everything else is relational and planned with DataFusion.
//!
//! A selector's input may carry more columns, found by name: the samples' start timestamps
//! (`start_timestamp`, ms, null when unknown), for the functions that read them and for
//! `start_timestamp()`, and native histograms (`histogram`, null on a float's row, whose
//! value is then null). An instant selection of such an input outputs the histogram it
//! picks in a `histogram` column of its own; range functions and smoothed selections read
//! the float samples only (native histograms in them are not evaluated yet).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, DictionaryArray, Float64Array, Int64Array, RecordBatch, StringArray, StringBuilder,
    UInt32Array,
};
use arrow::datatypes::{SchemaRef, UInt32Type};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchemaRef, DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
};

use crate::model::histogram::CounterResetHint;
use crate::model::{Histogram, is_stale_nan};
use crate::query::scan::{HISTOGRAM, START_TIMESTAMP};
use crate::storage::histogram_arrow::{self, HistogramColumn};

use super::collect::{Held, after_all_input};
use super::extended;
use super::functions::{RangeFunc, overlapping_start};
use super::native;
use super::syntax::SelectorMode;

/// Most samples one [`PromStepExec`] may load; a session config extension.
#[derive(Debug, Clone, Copy)]
pub struct MaxSamples(pub usize);

/// Prometheus's error text when a query would load too many samples.
pub const TOO_MANY_SAMPLES: &str =
    "query processing would load too many samples into memory in query execution";

/// The evaluation steps and time shifts of a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct Steps {
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub offset: i64,
    /// `@` time in ms: every step reads the data at this time.
    pub at: Option<i64>,
}

impl Steps {
    pub fn times(&self) -> impl Iterator<Item = i64> + '_ {
        let step = self.step.max(1);
        (0..)
            .map(move |i| self.start + i * step)
            .take_while(move |t| *t <= self.end)
    }

    /// The data time read at step `t`.
    fn data_time(&self, t: i64) -> i64 {
        self.at.unwrap_or(t) - self.offset
    }
}

/// What a node computes at each step.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub enum Window {
    /// The newest sample within the lookback, of which `emit` says what to output.
    /// `smoothed` interpolates the value at `T` instead (see [`super::extended`]).
    Instant {
        lookback: i64,
        emit: Emit,
        smoothed: bool,
    },
    /// A function over `(T - range, T]`. An anchored or smoothed `mode` also reads up to
    /// `lookback` around that window.
    Range {
        range: i64,
        func: RangeFunc,
        params: Vec<Param>,
        mode: SelectorMode,
        lookback: i64,
    },
}

/// What an instant selection outputs of the sample it picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum Emit {
    Value,
    /// Its timestamp in seconds (PromQL's `timestamp()`).
    SampleTime,
    /// Its start timestamp in seconds, 0 when unknown (`start_timestamp()`).
    StartTime,
    /// Its timestamp in seconds, NaN for a native histogram's (`info()`'s info series,
    /// which must be floats).
    FloatSampleTime,
}

/// Where a node's annotations go, and the position in the query of the selector they
/// cite. Annotations do not change what a node computes, so every `StepNotes` compares
/// equal.
#[derive(Debug, Clone, Default)]
pub struct StepNotes {
    pub warnings: Option<Arc<Mutex<Vec<String>>>>,
    pub infos: Option<Arc<Mutex<Vec<String>>>>,
    pub position: String,
}

impl StepNotes {
    fn warn(&self, message: String) {
        Self::record(&self.warnings, message);
    }

    fn record(list: &Option<Arc<Mutex<Vec<String>>>>, message: String) {
        if let Some(Ok(mut list)) = list.as_ref().map(|w| w.lock())
            && !list.contains(&message)
        {
            list.push(message);
        }
    }

    /// Prometheus's info for custom bucket bounds reconciled by a function of histograms.
    fn reconciled(&self, operation: native::Reconciled) {
        Self::record(
            &self.infos,
            format!(
                "PromQL info: mismatched custom buckets were reconciled during {}{}",
                operation.name(),
                self.position
            ),
        );
    }

    /// Prometheus's info for a function of floats whose window at `at` (of `range`) also
    /// held native histograms, which it ignored; `floats` are the window's float samples.
    fn mixed_window(&self, series: &str, s: &SeriesSamples, floats: usize, at: i64, range: i64) {
        let skipped = &s.skipped_histograms;
        let first_after = skipped.partition_point(|t| *t <= at - range);
        if floats == 0 || skipped.get(first_after).is_none_or(|t| *t > at) {
            return;
        }
        let metric = super::labels::get(series, crate::model::METRIC_NAME_LABEL).unwrap_or("");
        Self::record(
            &self.infos,
            format!(
                "PromQL info: ignored histograms in a range containing both floats and histograms for metric name {metric:?}{}",
                self.position
            ),
        );
    }

    /// Prometheus's warnings about a window of native histograms `func` evaluates: floats
    /// and histograms mixed, exponential and custom buckets mixed, a gauge histogram given to
    /// `rate`/`increase`, a counter histogram given to `delta`. Returns false when the
    /// window mixes kinds that give no result.
    fn histogram_window(
        &self,
        series: &str,
        func: RangeFunc,
        samples: &[native::WindowSample<'_>],
    ) -> bool {
        use RangeFunc::*;
        let combines = matches!(
            func,
            Rate | Increase | Delta | Irate | Idelta | SumOverTime | AvgOverTime
        );
        if !combines {
            return true;
        }
        // `irate` and `idelta` read the last two samples alone.
        let samples = match func {
            Irate | Idelta => &samples[samples.len().saturating_sub(2)..],
            _ => samples,
        };
        // Looked up only when a warning is given.
        let metric = || super::labels::get(series, crate::model::METRIC_NAME_LABEL).unwrap_or("");
        // Checked in place: this runs for every window of histograms.
        let histograms = || samples.iter().filter_map(|(_, v)| v.ok());
        if histograms().count() < samples.len() {
            self.mixed_kinds(metric());
            return false;
        }
        // A counter that reset after its first sample counts the second from zero: the
        // first's buckets do not take part.
        let reset_first = matches!(func, Rate | Increase)
            && matches!(samples, [(_, Ok(a)), (_, Ok(b)), ..] if b.detect_reset(a));
        let combined = &samples[usize::from(reset_first)..];
        let custom = (combined.iter())
            .filter(|(_, v)| v.is_ok_and(|h| h.uses_custom_buckets()))
            .count();
        // For `irate`, a switch between exponential and custom buckets is a reset: the last
        // histogram alone is the result.
        let mixed = custom > 0 && custom < combined.len() && func != Irate;
        if mixed {
            self.mixed_schemas(metric());
        }
        let gauge = |h: &Histogram| h.counter_reset_hint == CounterResetHint::Gauge;
        if matches!(func, Rate | Increase | Irate) && histograms().any(gauge) {
            self.warn(format!(
                "PromQL warning: this native histogram metric is not a counter: {:?}{}",
                metric(),
                self.position
            ));
        }
        if matches!(func, Delta | Idelta) && !histograms().all(gauge) {
            self.warn(format!(
                "PromQL warning: this native histogram metric is not a gauge: {:?}{}",
                metric(),
                self.position
            ));
        }
        !mixed
    }

    fn mixed_schemas(&self, metric: &str) {
        self.warn(format!(
            "PromQL warning: vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?}{}",
            self.position
        ));
    }

    fn mixed_kinds(&self, metric: &str) {
        self.warn(format!(
            "PromQL warning: encountered a mix of histograms and floats for metric name {metric:?}{}",
            self.position
        ));
    }

    fn overlapping_start(&self, series: &str) {
        let metric = super::labels::get(series, crate::model::METRIC_NAME_LABEL).unwrap_or("");
        self.warn(format!(
            "PromQL warning: sample has start time that overlaps with previous sample timestamp for metric {metric:?}{}",
            self.position
        ));
    }
}

impl PartialEq for StepNotes {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for StepNotes {}

impl PartialOrd for StepNotes {
    fn partial_cmp(&self, _: &Self) -> Option<std::cmp::Ordering> {
        Some(std::cmp::Ordering::Equal)
    }
}

impl Hash for StepNotes {
    fn hash<H: Hasher>(&self, _: &mut H) {}
}

/// A range function's parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum Param {
    /// A constant, as f64 bits (for Eq/Hash).
    Const(u64),
    /// A scalar that varies by step: its rows `(param_labels(i), step time, value)` come
    /// with the input samples.
    PerStep,
}

/// The `labels` value marking the rows of per-step parameter `i` in a `PromStep` input; no
/// encoded label set starts with NUL.
pub fn param_labels(i: usize) -> String {
    format!("\u{0}param{i}")
}

/// Per-step parameter values by parameter index and step time.
type StepParams = HashMap<(usize, i64), f64>;

/// Splits the parameter rows off the series.
fn take_step_params(series: &mut Vec<(String, SeriesSamples)>) -> StepParams {
    let mut params = StepParams::new();
    series.retain(|(name, s)| {
        let Some(index) = name.strip_prefix("\u{0}param") else {
            return true;
        };
        if let Ok(i) = index.parse::<usize>() {
            for (t, v) in s.ts.iter().zip(&s.vs) {
                params.insert((i, *t), *v);
            }
        }
        false
    });
    params
}

/// The parameter values at step `t` (NaN where a per-step scalar has no value, as
/// `scalar()` of nothing is NaN).
fn params_at(params: &[Param], step_params: &StepParams, t: i64) -> Vec<f64> {
    params
        .iter()
        .enumerate()
        .map(|(i, p)| match p {
            Param::Const(bits) => f64::from_bits(*bits),
            Param::PerStep => step_params.get(&(i, t)).copied().unwrap_or(f64::NAN),
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PromStep {
    pub input: LogicalPlan,
    pub schema: DFSchemaRef,
    pub steps: Steps,
    pub window: Window,
    /// Whether the output marks `__name__` dropped (range functions and `timestamp()` drop
    /// it): done once per series here instead of once per row after.
    pub drop_name: bool,
    pub notes: StepNotes,
    /// Whether the histograms read only feed `histogram_count`/`_sum`/`_avg`: Prometheus
    /// then decodes their statistics alone, and gives a histogram whose hint is unknown
    /// the hint its counts say against the sample read before it (see [`stats_hints`]).
    pub stats_hints: bool,
}

impl PartialOrd for PromStep {
    /// Plans are ordered by what they compute; the schema is the same for every node.
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (&self.steps, &self.window, &self.input).partial_cmp(&(
            &other.steps,
            &other.window,
            &other.input,
        ))
    }
}

impl UserDefinedLogicalNodeCore for PromStep {
    fn name(&self) -> &str {
        "PromStep"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "PromStep: {}{}",
            describe(&self.steps, &self.window),
            naming(self.drop_name)
        )
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let input = only_input(inputs, "PromStep")?;
        Ok(PromStep {
            input,
            ..self.clone()
        })
    }
}

fn naming(drop_name: bool) -> &'static str {
    if drop_name { " drop __name__" } else { "" }
}

fn describe(steps: &Steps, window: &Window) -> String {
    let at = steps.at.map(|a| format!(" @{a}")).unwrap_or_default();
    let what = match window {
        Window::Instant {
            lookback,
            emit,
            smoothed,
        } => {
            format!(
                "instant lookback={lookback}ms{}{}",
                match emit {
                    Emit::Value => "",
                    Emit::SampleTime | Emit::FloatSampleTime => " timestamp()",
                    Emit::StartTime => " start_timestamp()",
                },
                if *smoothed { " smoothed" } else { "" }
            )
        }
        Window::Range {
            range, func, mode, ..
        } => match mode {
            SelectorMode::Plain => format!("{func:?} range={range}ms"),
            mode => format!("{func:?} range={range}ms {mode:?}"),
        },
    };
    format!(
        "{what} start={} end={} step={} offset={}{at}",
        steps.start, steps.end, steps.step, steps.offset
    )
}

/// The `ExecutionPlan` methods the one-input PromQL nodes share, for a struct with fields
/// `input`, `properties` and `metrics`: every row of the input must meet in one partition
/// (a series' samples, a group's rows), and the node has no expressions of its own.
macro_rules! one_input_node_methods {
    ($name:literal) => {
        fn name(&self) -> &'static str {
            $name
        }

        fn properties(&self) -> &Arc<PlanProperties> {
            &self.properties
        }

        fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
            vec![&self.input]
        }

        fn required_input_distribution(&self) -> Vec<Distribution> {
            vec![Distribution::SinglePartition]
        }

        fn metrics(&self) -> Option<MetricsSet> {
            Some(self.metrics.clone_inner())
        }

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
        ) -> DfResult<TreeNodeRecursion> {
            Ok(TreeNodeRecursion::Continue)
        }
    };
}
pub(super) use one_input_node_methods;

/// Properties of a node that emits everything once its input is read: one partition,
/// bounded. PromQL's plan nodes all work that way.
pub(super) fn final_properties(schema: SchemaRef) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema),
        Partitioning::UnknownPartitioning(1),
        EmissionType::Final,
        Boundedness::Bounded,
    ))
}

/// The physical node.
#[derive(Debug)]
pub struct PromStepExec {
    input: Arc<dyn ExecutionPlan>,
    steps: Steps,
    window: Window,
    drop_name: bool,
    notes: StepNotes,
    stats_hints: bool,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    /// Rows out and compute time, for `explain?analyze=true`.
    metrics: ExecutionPlanMetricsSet,
}

impl PromStepExec {
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        steps: Steps,
        window: Window,
        drop_name: bool,
        notes: StepNotes,
        schema: SchemaRef,
    ) -> Self {
        let properties = final_properties(schema.clone());
        PromStepExec {
            input,
            steps,
            window,
            drop_name,
            notes,
            stats_hints: false,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// See [`PromStep::stats_hints`].
    pub fn with_stats_hints(mut self, stats_hints: bool) -> Self {
        self.stats_hints = stats_hints;
        self
    }

    /// This node over `input` with its steps `shift` ms later (for a prepared plan run at another time;
    /// an `@` time stays where it is, but plans with one are not prepared).
    pub fn shifted(&self, shift: i64, input: Arc<dyn ExecutionPlan>) -> Self {
        let mut steps = self.steps.clone();
        steps.start += shift;
        steps.end += shift;
        PromStepExec {
            input,
            steps,
            window: self.window.clone(),
            drop_name: self.drop_name,
            notes: self.notes.clone(),
            stats_hints: self.stats_hints,
            schema: self.schema.clone(),
            // The same: the nodes above keep theirs.
            properties: self.properties.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for PromStepExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "PromStepExec: {}{}",
            describe(&self.steps, &self.window),
            naming(self.drop_name)
        )
    }
}

impl ExecutionPlan for PromStepExec {
    one_input_node_methods!("PromStepExec");

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = only_input(children, "PromStepExec")?;
        Ok(Arc::new(
            PromStepExec::new(
                input,
                self.steps.clone(),
                self.window.clone(),
                self.drop_name,
                self.notes.clone(),
                self.schema.clone(),
            )
            .with_stats_hints(self.stats_hints),
        ))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let max_samples = context
            .session_config()
            .get_extension::<MaxSamples>()
            .map(|m| m.0)
            .unwrap_or(usize::MAX);
        let batch_rows = context.session_config().batch_size();
        let mut held = Held::new("PromStepExec", partition, &context);
        // As in Prometheus: a range function holds every sample of its windows, an instant
        // selection one sample per series and step (checked on the output below).
        if matches!(self.window, Window::Range { .. }) {
            held = held.with_max_rows(max_samples, too_many_samples);
        }
        let input = self.input.execute(partition, context)?;
        let steps = self.steps.clone();
        let window = self.window.clone();
        let notes = self.notes.clone();
        let drop_name = self.drop_name;
        let stats_hints = self.stats_hints;
        let schema = self.schema.clone();
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let grouping = MetricBuilder::new(&self.metrics).subset_time("grouping_time", partition);
        Ok(after_all_input(
            input,
            schema.clone(),
            baseline,
            held,
            move |batches| {
                let grouping_timer = grouping.timer();
                let histograms = match &window {
                    _ if reads_histograms(&window) => HistogramRows::Keep,
                    Window::Instant {
                        emit: Emit::SampleTime | Emit::StartTime | Emit::FloatSampleTime,
                        ..
                    } => HistogramRows::AsSamples,
                    _ => HistogramRows::Skip,
                };
                let mut series = group_series(&batches, histograms)?;
                if stats_hints {
                    for (_, s) in series.iter_mut() {
                        self::stats_hints(&mut s.hs);
                    }
                }
                grouping_timer.done();
                let step_params = take_step_params(&mut series);
                if drop_name {
                    for (name, _) in series.iter_mut() {
                        *name = super::labels::mark_name_dropped(name);
                    }
                }
                let mut output = Chunks::new(schema, batch_rows);
                evaluate(&series, &steps, &window, &step_params, &notes, &mut output)?;
                if output.rows() > max_samples {
                    return Err(too_many_samples());
                }
                Ok(output.into_batches())
            },
        ))
    }
}

fn too_many_samples() -> DataFusionError {
    DataFusionError::ResourcesExhausted(TOO_MANY_SAMPLES.to_string())
}

/// Whether a node with `window` reads native histograms: an instant selection of the value,
/// and the range functions that evaluate them (over a plain range). The others read float
/// samples only.
pub fn reads_histograms(window: &Window) -> bool {
    match window {
        Window::Instant {
            emit: Emit::Value, ..
        } => true,
        Window::Range {
            func,
            mode: SelectorMode::Plain,
            ..
        } => native::reads_histograms(*func),
        Window::Range { func, mode, .. } => extended::check(*mode, func.name()).is_ok(),
        _ => false,
    }
}

/// Whether a node with `window` outputs native histograms (in a `histogram` column) when
/// its input has them.
pub fn carries_histograms(window: &Window) -> bool {
    match window {
        Window::Range { func, .. } => native::gives_histograms(*func) && reads_histograms(window),
        _ => reads_histograms(window),
    }
}

/// One series' samples, sorted by time.
#[derive(Default)]
struct SeriesSamples {
    ts: Vec<i64>,
    vs: Vec<f64>,
    /// Start timestamps parallel to `ts` (0 where unknown), or empty when none is known.
    starts: Vec<i64>,
    /// Native histograms parallel to `ts` (None on a float's row, whose `vs` entry is the
    /// value; a histogram's is 0), or empty when the series has none.
    hs: Vec<Option<Arc<Histogram>>>,
    /// Whether any value is a staleness marker; most series have none, and their windows
    /// need not be searched for one.
    has_stale: bool,
    /// Times of the native histograms left out of a node that reads floats only, in time
    /// order: a window holding floats and one of them gives Prometheus's info.
    skipped_histograms: Vec<i64>,
}

/// A batch's label sets: plain strings (an inner expression's rows), or a selector's or
/// `PromStep`'s dictionary, whose rows share one string per series.
pub(super) enum LabelColumn<'a> {
    Plain(&'a StringArray),
    Dictionary {
        keys: &'a UInt32Array,
        values: &'a StringArray,
    },
}

impl<'a> LabelColumn<'a> {
    /// Column `i` of a PromQL plan node's input, read as label sets.
    pub(super) fn of(batch: &'a RecordBatch, i: usize) -> DfResult<Self> {
        if let Some(dictionary) = batch
            .column(i)
            .as_any()
            .downcast_ref::<DictionaryArray<UInt32Type>>()
        {
            let values = dictionary.values().as_any().downcast_ref::<StringArray>();
            let values = values.ok_or_else(|| {
                DataFusionError::Internal("label dictionary values are not strings".into())
            })?;
            return Ok(LabelColumn::Dictionary {
                keys: dictionary.keys(),
                values,
            });
        }
        column::<StringArray>(batch, i).map(LabelColumn::Plain)
    }

    /// Row `i`'s label set and, for a dictionary, its key; None for a null row.
    fn get(&self, i: usize) -> Option<(&'a str, Option<usize>)> {
        match self {
            LabelColumn::Plain(strings) => strings.is_valid(i).then(|| (strings.value(i), None)),
            LabelColumn::Dictionary { keys, values } => keys.is_valid(i).then(|| {
                let key = keys.value(i) as usize;
                (values.value(key), Some(key))
            }),
        }
    }

    /// Row `i`'s label set; None for a null row.
    pub(super) fn text(&self, i: usize) -> Option<&'a str> {
        self.get(i).map(|(text, _)| text)
    }
}

/// The hints Prometheus's statistics-only decoding (`HistogramStatsIterator`) gives a
/// series' histograms (`hs`, in time order): one read back with an unknown hint gets
/// `CounterReset` or `NotCounterReset` from its counts against the histogram before it;
/// the first keeps its unknown hint.
fn stats_hints(hs: &mut [Option<Arc<Histogram>>]) {
    for i in 1..hs.len() {
        let (before, rest) = hs.split_at_mut(i);
        let (Some(previous), Some(h)) = (&before[i - 1], &mut rest[0]) else {
            continue;
        };
        if h.counter_reset_hint == CounterResetHint::Unknown {
            let hint = match h.counts_reset(previous) {
                true => CounterResetHint::CounterReset,
                false => CounterResetHint::NotCounterReset,
            };
            Arc::make_mut(h).counter_reset_hint = hint;
        }
    }
}

/// What a node does with the rows of native histograms in its input.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HistogramRows {
    /// Evaluates them.
    Keep,
    /// Counts them as samples whose value it does not read (their times).
    AsSamples,
    /// Leaves them out (noting their times, see `skipped_histograms`).
    Skip,
}

/// The series met so far, in the order met, and where each is by its label set.
#[derive(Default)]
struct Grouped {
    index: HashMap<String, usize>,
    out: Vec<(String, SeriesSamples)>,
}

impl Grouped {
    /// The slot of the series `name`, added (with room for `reserve` samples) if new.
    fn slot(&mut self, name: &str, reserve: usize) -> usize {
        if let Some(slot) = self.index.get(name) {
            return *slot;
        }
        self.index.insert(name.to_string(), self.out.len());
        let mut samples = SeriesSamples::default();
        samples.ts.reserve(reserve);
        samples.vs.reserve(reserve);
        self.out.push((name.to_string(), samples));
        self.out.len() - 1
    }
}

/// The input's rows grouped by series, rows of native histograms as `histograms_rows` says.
fn group_series(
    batches: &[RecordBatch],
    histograms_rows: HistogramRows,
) -> DfResult<Vec<(String, SeriesSamples)>> {
    let mut grouped = Grouped::default();
    let mut skipped: Vec<(&str, i64)> = Vec::new();
    let total_rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    for batch in batches {
        let labels = LabelColumn::of(batch, 0)?;
        // A selector's dictionary holds every series it selected, which share the rows
        // about evenly: reserve that much for each instead of growing it step by step.
        let reserve = match &labels {
            LabelColumn::Dictionary { values, .. } => {
                (total_rows / values.len().max(1)).min(1 << 16)
            }
            LabelColumn::Plain(_) => 0,
        };
        // A dictionary key's slot, once its label set has been looked up in this batch.
        let mut slot_of_key: Vec<Option<usize>> = match &labels {
            LabelColumn::Dictionary { values, .. } => vec![None; values.len()],
            LabelColumn::Plain(_) => Vec::new(),
        };
        let ts = column::<Int64Array>(batch, 1)?;
        let vs = column::<Float64Array>(batch, 2)?;
        let starts = match batch.schema().index_of(START_TIMESTAMP) {
            Ok(i) => Some(column::<Int64Array>(batch, i)?).filter(|s| s.null_count() < s.len()),
            Err(_) => None,
        };
        let histograms = match batch.schema().index_of(HISTOGRAM) {
            Ok(i) if batch.column(i).null_count() < batch.num_rows() => Some(
                HistogramColumn::new(batch.column(i).as_ref()).ok_or_else(|| {
                    DataFusionError::Internal("the histogram column has an unexpected type".into())
                })?,
            ),
            _ => None,
        };
        // A selector's plain float samples: copied a series' run of rows at a time.
        if let (LabelColumn::Dictionary { keys, values }, None, None) =
            (&labels, &starts, &histograms)
            && keys.null_count() == 0
            && ts.null_count() == 0
        {
            let keys = keys.values();
            let mut start = 0;
            while let Some(&key) = keys.get(start) {
                let run = keys[start..].iter().take_while(|k| **k == key).count();
                let end = start + run;
                let slot = match slot_of_key.get(key as usize).copied().flatten() {
                    Some(slot) => slot,
                    None => {
                        let slot = grouped.slot(values.value(key as usize), reserve);
                        if let Some(known) = slot_of_key.get_mut(key as usize) {
                            *known = Some(slot);
                        }
                        slot
                    }
                };
                let samples = &mut grouped.out[slot].1;
                samples.ts.extend_from_slice(&ts.values()[start..end]);
                samples.vs.extend_from_slice(&vs.values()[start..end]);
                if !samples.starts.is_empty() {
                    samples.starts.resize(samples.ts.len(), 0);
                }
                if !samples.hs.is_empty() {
                    samples.hs.resize(samples.ts.len(), None);
                }
                start = end;
            }
            continue;
        }
        // Scans return a series' samples together: look the labels up once per run.
        let mut current: Option<(&str, usize)> = None;
        for i in 0..batch.num_rows() {
            let Some((name, key)) = labels.get(i).filter(|_| ts.is_valid(i)) else {
                continue;
            };
            let mut stand_in = None;
            let histogram = match &histograms {
                Some(column) if column.is_histogram(i) => match histograms_rows {
                    HistogramRows::Keep => column.get(i).map(Arc::new),
                    HistogramRows::AsSamples => {
                        // Kept as a marker; its value stands in (a staleness marker
                        // stays one).
                        let h = column.get(i);
                        stand_in = h.as_ref().map(|h| match is_stale_nan(h.sum) {
                            true => h.sum,
                            false => 0.0,
                        });
                        h.map(Arc::new)
                    }
                    HistogramRows::Skip => {
                        skipped.push((name, ts.value(i)));
                        continue;
                    }
                },
                _ => None,
            };
            let known = key.and_then(|k| slot_of_key[k]);
            let slot = match (known, current) {
                (Some(slot), _) => slot,
                (None, Some((prev, slot))) if super::labels::same_text(prev, name) => slot,
                _ => {
                    let slot = grouped.slot(name, reserve);
                    current = Some((name, slot));
                    if let Some(k) = key {
                        slot_of_key[k] = Some(slot);
                    }
                    slot
                }
            };
            let samples = &mut grouped.out[slot].1;
            if let Some(starts) = starts.filter(|s| s.is_valid(i)) {
                samples.starts.resize(samples.ts.len(), 0);
                samples.starts.push(starts.value(i));
            } else if !samples.starts.is_empty() {
                samples.starts.push(0);
            }
            if histogram.is_some() && samples.hs.len() < samples.ts.len() {
                samples.hs.resize(samples.ts.len(), None);
            }
            samples.ts.push(ts.value(i));
            samples.vs.push(match stand_in {
                Some(v) => v,
                None if histogram.is_some() => 0.0,
                None => vs.value(i),
            });
            if !samples.hs.is_empty() || histogram.is_some() {
                samples.hs.push(histogram);
            }
        }
    }
    let Grouped { index, mut out } = grouped;
    for (name, t) in skipped {
        if let Some(slot) = index.get(name) {
            out[*slot].1.skipped_histograms.push(t);
        }
    }
    for (_, s) in out.iter_mut() {
        if !s.hs.is_empty() {
            s.hs.resize(s.ts.len(), None);
        }
        s.skipped_histograms.sort_unstable();
        sort_by_time(s);
        s.has_stale = s.vs.iter().any(|v| is_stale_nan(*v));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn sort_by_time(s: &mut SeriesSamples) {
    if s.ts.windows(2).all(|w| w[0] <= w[1]) {
        return;
    }
    let mut idx: Vec<usize> = (0..s.ts.len()).collect();
    idx.sort_by_key(|i| s.ts[*i]);
    s.ts = idx.iter().map(|i| s.ts[*i]).collect();
    s.vs = idx.iter().map(|i| s.vs[*i]).collect();
    if !s.starts.is_empty() {
        s.starts.resize(s.ts.len(), 0);
        s.starts = idx.iter().map(|i| s.starts[*i]).collect();
    }
    if !s.hs.is_empty() {
        s.hs = idx.iter().map(|i| s.hs[*i].clone()).collect();
    }
}

/// The one input a single-input plan node is rebuilt with.
pub(super) fn only_input<T>(mut inputs: Vec<T>, node: &str) -> DfResult<T> {
    match (inputs.pop(), inputs.is_empty()) {
        (Some(input), true) => Ok(input),
        _ => Err(DataFusionError::Internal(format!("{node} needs one input"))),
    }
}

/// Column `i` of a PromQL plan node's input, as the array type the node expects.
pub(super) fn column<T: 'static>(batch: &RecordBatch, i: usize) -> DfResult<&T> {
    batch.column(i).as_any().downcast_ref::<T>().ok_or_else(|| {
        DataFusionError::Internal(format!("plan node input column {i} has an unexpected type"))
    })
}

fn evaluate(
    series: &[(String, SeriesSamples)],
    steps: &Steps,
    window: &Window,
    step_params: &StepParams,
    notes: &StepNotes,
    out: &mut Chunks,
) -> DfResult<()> {
    let params_by_step: Vec<(i64, Vec<f64>)> = match window {
        Window::Range { params, .. } => steps
            .times()
            .map(|t| (t, params_at(params, step_params, t)))
            .collect(),
        Window::Instant { .. } => steps.times().map(|t| (t, Vec::new())).collect(),
    };
    for (name, s) in series {
        let mut cursor = Cursor::default();
        if let Window::Range { func, .. } = window
            && matches!(func, RangeFunc::Rate | RangeFunc::Increase)
            && overlapping_start(&s.ts, &s.starts)
        {
            notes.overlapping_start(name);
        }
        out.start_series();
        for (t, params) in &params_by_step {
            let t = *t;
            if !s.hs.is_empty()
                && let Window::Range {
                    range,
                    func,
                    mode,
                    lookback,
                    ..
                } = window
                && *mode != SelectorMode::Plain
                && reads_histograms(window)
            {
                let at = steps.data_time(t);
                let ahead = if *mode == SelectorMode::Smoothed {
                    *lookback
                } else {
                    0
                };
                let (start, end) = cursor.window(&s.ts, at - range - lookback, at + ahead);
                if s.hs[start..end].iter().any(Option::is_some)
                    && matches!(func, RangeFunc::Changes | RangeFunc::Resets)
                {
                    // Counted across floats and histograms, from the anchor on.
                    let samples = window_samples(s, start, end);
                    let starts = window_starts(s, start, end);
                    let ts: Vec<i64> = samples.iter().map(|(t, _)| *t).collect();
                    if let Some(first) = extended::anchor_index(&ts, at - range)
                        && let Some(native::RangeValue::Float(v)) = native::apply_range(
                            *func,
                            &samples[first..],
                            starts.get(first..).unwrap_or(&[]),
                            at,
                            *range,
                            &mut native::WindowNotes::default(),
                        )
                    {
                        out.push(name, t, v)?;
                    }
                    continue;
                }
                if s.hs[start..end].iter().any(Option::is_some) {
                    // The samples the edges are taken from, and those between.
                    let samples = window_samples(s, start, end);
                    let ts: Vec<i64> = samples.iter().map(|(t, _)| *t).collect();
                    let first = extended::anchor_index(&ts, at - range).unwrap_or(ts.len());
                    let last = match mode {
                        SelectorMode::Smoothed => ts.partition_point(|x| *x < at),
                        _ => ts.len() - 1,
                    };
                    let used = samples.get(first..=last.min(ts.len() - 1)).unwrap_or(&[]);
                    if !notes.histogram_window(name, *func, used) {
                        continue;
                    }
                    // Only a window of histograms alone has a result.
                    if let Some((ts, hs)) = live_histograms(s, start, end) {
                        match extended::apply_histograms(*func, &ts, &hs, at, *range, *mode) {
                            Some(extended::HistogramResult::Histogram(h)) => {
                                out.push_histogram(name, t, Arc::new(h))?
                            }
                            Some(extended::HistogramResult::Count(v)) => out.push(name, t, v)?,
                            None => {}
                        }
                    }
                    continue;
                }
            }
            if !s.hs.is_empty()
                && let Window::Instant {
                    lookback,
                    smoothed: true,
                    ..
                } = window
                && reads_histograms(window)
            {
                let at = steps.data_time(t);
                let (start, end) = cursor.window(&s.ts, at - lookback, at + lookback);
                if s.hs[start..end].iter().any(Option::is_some) {
                    // Interpolating between a float and a histogram, or exponential and
                    // custom buckets, gives nothing but Prometheus's warning.
                    let samples = window_samples(s, start, end);
                    let next = samples.partition_point(|(x, _)| *x < at);
                    if next > 0
                        && let Some(&(t_after, after)) = samples.get(next)
                        && t_after != at
                    {
                        let before = samples[next - 1].1;
                        let metric =
                            super::labels::get(name, crate::model::METRIC_NAME_LABEL).unwrap_or("");
                        match (before, after) {
                            (Ok(a), Ok(b))
                                if a.uses_custom_buckets() != b.uses_custom_buckets() =>
                            {
                                notes.mixed_schemas(metric);
                                continue;
                            }
                            (Ok(_), Err(_)) | (Err(_), Ok(_)) => {
                                notes.mixed_kinds(metric);
                                continue;
                            }
                            _ => {}
                        }
                    }
                    if let Some((ts, hs)) = live_histograms(s, start, end)
                        && let Some(h) = extended::smoothed_instant(
                            &ts,
                            &hs,
                            at,
                            hs.iter()
                                .all(|h| h.counter_reset_hint != CounterResetHint::Gauge),
                        )
                    {
                        out.push_histogram(name, t, Arc::new(h))?;
                    }
                    continue;
                }
            }
            if !s.hs.is_empty()
                && let Window::Range { range, func, .. } = window
                && reads_histograms(window)
            {
                let at = steps.data_time(t);
                let (start, end) = cursor.window(&s.ts, at - range, at);
                if s.hs[start..end].iter().any(Option::is_some) {
                    let samples = window_samples(s, start, end);
                    notes.histogram_window(name, *func, &samples);
                    let mut found = native::WindowNotes::default();
                    let starts = window_starts(s, start, end);
                    let value =
                        native::apply_range(*func, &samples, &starts, at, *range, &mut found);
                    if let Some(operation) = found.reconciled {
                        notes.reconciled(operation);
                    }
                    if found.hints_collide {
                        notes.warn(format!(
                            "PromQL warning: conflicting counter resets during histogram aggregation{}",
                            notes.position
                        ));
                    }
                    match value {
                        Some(native::RangeValue::Float(v)) => out.push(name, t, v)?,
                        Some(native::RangeValue::Histogram(h)) => {
                            out.push_histogram(name, t, Arc::new(h))?
                        }
                        None => {}
                    }
                    continue;
                }
            }
            if !s.hs.is_empty()
                && matches!(
                    window,
                    Window::Instant {
                        smoothed: false,
                        ..
                    }
                )
                && reads_histograms(window)
            {
                if let Some(picked) = instant_pick(s, &mut cursor, steps.data_time(t), window) {
                    match &s.hs[picked] {
                        Some(h) => out.push_histogram(name, t, h.clone())?,
                        None => out.push(name, t, s.vs[picked])?,
                    }
                }
                continue;
            }
            if !s.skipped_histograms.is_empty()
                && let Window::Range { range, func, .. } = window
                && native::ignores_histograms_with_info(*func)
            {
                let at = steps.data_time(t);
                let floats =
                    s.ts.partition_point(|x| *x <= at) - s.ts.partition_point(|x| *x <= at - range);
                notes.mixed_window(name, s, floats, at, *range);
            }
            if let Some(v) = value_at(s, &mut cursor, steps.data_time(t), t, window, params) {
                out.push(name, t, v)?;
            }
        }
    }
    out.finish_chunk()
}

/// The output of a [`PromStepExec`], cut into batches of at most `batch_rows` rows.
///
/// Each batch carries its labels as a dictionary of just the series it holds: a row costs
/// a key instead of a copy of its label set, and a batch stays self-contained (no batch
/// shares a buffer with another, so memory accounting counts each byte once).
pub(super) struct Chunks {
    schema: SchemaRef,
    batch_rows: usize,
    names: StringBuilder,
    keys: Vec<u32>,
    ts: Vec<i64>,
    vs: Vec<f64>,
    /// Native histograms parallel to `ts` once one is pushed (None on a float's row).
    hs: Vec<Option<Arc<Histogram>>>,
    /// The current series' key in the chunk being built, once it has a row there.
    key: Option<u32>,
    batches: Vec<RecordBatch>,
}

impl Chunks {
    pub(super) fn new(schema: SchemaRef, batch_rows: usize) -> Self {
        Chunks {
            schema,
            batch_rows: batch_rows.max(1),
            names: StringBuilder::new(),
            keys: Vec::new(),
            ts: Vec::new(),
            vs: Vec::new(),
            hs: Vec::new(),
            key: None,
            batches: Vec::new(),
        }
    }

    /// A row holding a native histogram (the schema must have the `histogram` column).
    fn push_histogram(&mut self, name: &str, t: i64, h: Arc<Histogram>) -> DfResult<()> {
        self.push(name, t, 0.0)?;
        self.hs.resize(self.ts.len() - 1, None);
        self.hs.push(Some(h));
        Ok(())
    }

    /// The rows that follow belong to another series.
    fn start_series(&mut self) {
        self.key = None;
    }

    fn push(&mut self, name: &str, t: i64, v: f64) -> DfResult<()> {
        if self.keys.len() == self.batch_rows {
            self.finish_chunk()?;
        }
        let key = match self.key {
            Some(key) => key,
            None => {
                self.names.append_value(name);
                let key = (arrow::array::ArrayBuilder::len(&self.names) - 1) as u32;
                self.key = Some(key);
                key
            }
        };
        self.keys.push(key);
        self.ts.push(t);
        self.vs.push(v);
        if !self.hs.is_empty() {
            self.hs.push(None);
        }
        Ok(())
    }

    fn finish_chunk(&mut self) -> DfResult<()> {
        self.key = None;
        if self.keys.is_empty() {
            return Ok(());
        }
        let rows = self.keys.len();
        let keys = UInt32Array::from(std::mem::take(&mut self.keys));
        let labels = DictionaryArray::<UInt32Type>::try_new(keys, Arc::new(self.names.finish()))?;
        let mut hs = std::mem::take(&mut self.hs);
        let value_nulls = (!hs.is_empty()).then(|| {
            hs.resize(rows, None);
            arrow::buffer::NullBuffer::from_iter(hs.iter().map(Option::is_none))
        });
        let mut columns: Vec<arrow::array::ArrayRef> = vec![
            Arc::new(labels),
            Arc::new(Int64Array::from(std::mem::take(&mut self.ts))),
            Arc::new(Float64Array::new(
                std::mem::take(&mut self.vs).into(),
                value_nulls,
            )),
        ];
        if self.schema.index_of(HISTOGRAM).is_ok() {
            columns.push(match hs.is_empty() {
                true => histogram_arrow::null_array(rows),
                false => histogram_arrow::to_array(&hs),
            });
        } else if !hs.is_empty() {
            return Err(DataFusionError::Internal(
                "a native histogram for a plan node without a histogram column".into(),
            ));
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.batches.push(batch);
        Ok(())
    }

    /// Output rows so far.
    fn rows(&self) -> usize {
        self.batches
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>()
            + self.keys.len()
    }

    fn into_batches(self) -> Vec<RecordBatch> {
        self.batches
    }
}

/// The index of the sample an instant selection picks at data time `at`: the newest with
/// `at - lookback < ts <= at`, unless it is a staleness marker (a float's, or a histogram's
/// stale sum).
fn instant_pick(s: &SeriesSamples, cursor: &mut Cursor, at: i64, window: &Window) -> Option<usize> {
    let Window::Instant { lookback, .. } = window else {
        return None;
    };
    let end = cursor.end.first_after(&s.ts, at);
    if end == 0 || s.ts[end - 1] <= at - lookback {
        return None;
    }
    let i = end - 1;
    let stale = match s.hs.get(i) {
        Some(Some(h)) => is_stale_nan(h.sum),
        _ => is_stale_nan(s.vs[i]),
    };
    (!stale).then_some(i)
}

/// The value of one series at data time `at`, for the step at `step_time` whose range
/// function parameters are `params`.
fn value_at(
    s: &SeriesSamples,
    cursor: &mut Cursor,
    at: i64,
    step_time: i64,
    window: &Window,
    params: &[f64],
) -> Option<f64> {
    match window {
        Window::Instant {
            lookback,
            smoothed: true,
            ..
        } => {
            let (ts, vs) = live_samples(s, cursor, at - lookback, at + lookback);
            extended::smoothed_instant(&ts, &vs, at, false)
        }
        Window::Instant {
            lookback,
            emit,
            smoothed: false,
        } => {
            // Newest sample with at - lookback < ts <= at.
            let end = cursor.end.first_after(&s.ts, at);
            if end == 0 || s.ts[end - 1] <= at - lookback {
                return None;
            }
            let v = s.vs[end - 1];
            if is_stale_nan(v) {
                return None;
            }
            Some(match emit {
                Emit::Value => v,
                Emit::SampleTime => s.ts[end - 1] as f64 / 1000.0,
                Emit::FloatSampleTime => match s.hs.get(end - 1) {
                    Some(Some(_)) => f64::NAN,
                    _ => s.ts[end - 1] as f64 / 1000.0,
                },
                Emit::StartTime => s.starts.get(end - 1).copied().unwrap_or(0) as f64 / 1000.0,
            })
        }
        Window::Range {
            range,
            func,
            mode: SelectorMode::Plain,
            ..
        } if func.uses_start_timestamps() && !s.starts.is_empty() => {
            let (ts, vs, starts) = live_samples_with_starts(s, at - range, at);
            func.apply_with_starts(&ts, &vs, &starts, at, *range, params)
        }
        Window::Range {
            range,
            func,
            mode: SelectorMode::Plain,
            ..
        } => {
            let (ts, vs) = live_samples(s, cursor, at - range, at);
            if ts.is_empty() {
                return None;
            }
            // As in Prometheus, predict_linear predicts from the step's time even when `@`
            // or an offset moved the window.
            let eval_time = if *func == RangeFunc::PredictLinear {
                step_time
            } else {
                at
            };
            func.apply(&ts, &vs, eval_time, *range, params)
        }
        Window::Range {
            range,
            func,
            mode,
            lookback,
            ..
        } => {
            let ahead = if *mode == SelectorMode::Smoothed {
                *lookback
            } else {
                0
            };
            let (ts, vs) = live_samples(s, cursor, at - range - lookback, at + ahead);
            extended::apply(*func, &ts, &vs, at, *range, *mode)
        }
    }
}

/// Rows `start..end` of a series as floats and histograms, staleness markers left out.
fn window_samples(s: &SeriesSamples, start: usize, end: usize) -> Vec<native::WindowSample<'_>> {
    (start..end)
        .filter_map(|i| match &s.hs[i] {
            Some(h) if is_stale_nan(h.sum) => None,
            Some(h) => Some((s.ts[i], Ok(h.as_ref()))),
            None if is_stale_nan(s.vs[i]) => None,
            None => Some((s.ts[i], Err(s.vs[i]))),
        })
        .collect()
}

/// The start timestamps of [`window_samples`]'s samples, or none when the series has none.
fn window_starts(s: &SeriesSamples, start: usize, end: usize) -> Vec<i64> {
    if s.starts.is_empty() {
        return Vec::new();
    }
    (start..end)
        .filter(|&i| match &s.hs[i] {
            Some(h) => !is_stale_nan(h.sum),
            None => !is_stale_nan(s.vs[i]),
        })
        .map(|i| s.starts.get(i).copied().unwrap_or(0))
        .collect()
}

/// Rows `start..end` of a series when they are all native histograms (staleness markers
/// left out), with their times; None when floats are among them.
fn live_histograms(
    s: &SeriesSamples,
    start: usize,
    end: usize,
) -> Option<(Vec<i64>, Vec<Histogram>)> {
    let mut ts = Vec::with_capacity(end - start);
    let mut hs = Vec::with_capacity(end - start);
    for i in start..end {
        match &s.hs[i] {
            Some(h) if is_stale_nan(h.sum) => {}
            Some(h) => {
                ts.push(s.ts[i]);
                hs.push(h.as_ref().clone());
            }
            None if is_stale_nan(s.vs[i]) => {}
            None => return None,
        }
    }
    Some((ts, hs))
}

/// The samples with `lo < t <= hi`, staleness markers left out; borrowed when the window
/// has none, which is the common case.
fn live_samples<'a>(
    s: &'a SeriesSamples,
    cursor: &mut Cursor,
    lo: i64,
    hi: i64,
) -> (Cow<'a, [i64]>, Cow<'a, [f64]>) {
    let (start, end) = cursor.window(&s.ts, lo, hi);
    let (ts, vs) = (&s.ts[start..end], &s.vs[start..end]);
    if !s.has_stale || !vs.iter().any(|v| is_stale_nan(*v)) {
        return (Cow::Borrowed(ts), Cow::Borrowed(vs));
    }
    let (ts, vs): (Vec<i64>, Vec<f64>) = ts
        .iter()
        .zip(vs)
        .filter(|(_, v)| !is_stale_nan(**v))
        .map(|(t, v)| (*t, *v))
        .unzip();
    (Cow::Owned(ts), Cow::Owned(vs))
}

/// [`live_samples`] with the samples' start timestamps, for a series that has some.
fn live_samples_with_starts(s: &SeriesSamples, lo: i64, hi: i64) -> (Vec<i64>, Vec<f64>, Vec<i64>) {
    let (start, end) = Cursor::default().window(&s.ts, lo, hi);
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for i in (start..end).filter(|i| !is_stale_nan(s.vs[*i])) {
        out.0.push(s.ts[i]);
        out.1.push(s.vs[i]);
        out.2.push(s.starts[i]);
    }
    out
}

/// Where a series' previous window started and ended. Steps move forward in time, so the
/// next window's edges are usually a sample or two further on: walking there beats a
/// binary search per step.
#[derive(Default)]
struct Cursor {
    start: Edge,
    end: Edge,
}

impl Cursor {
    /// The index range of the samples with `lo < t <= hi`.
    fn window(&mut self, ts: &[i64], lo: i64, hi: i64) -> (usize, usize) {
        let start = self.start.first_after(ts, lo);
        let end = self.end.first_after(ts, hi).max(start);
        (start, end)
    }
}

/// One edge of a window: the index of the first sample after the last bound asked for.
#[derive(Default)]
struct Edge(usize);

impl Edge {
    /// How many samples to walk before a binary search is cheaper.
    const WALK: usize = 8;

    /// The index of the first sample with `t > bound`.
    fn first_after(&mut self, ts: &[i64], bound: i64) -> usize {
        let from = self.0.min(ts.len());
        let moved_back = from > 0 && ts[from - 1] > bound;
        let mut i = from;
        if !moved_back {
            while i < ts.len() && i - from < Self::WALK && ts[i] <= bound {
                i += 1;
            }
        }
        if moved_back || (i - from == Self::WALK && i < ts.len() && ts[i] <= bound) {
            i = ts.partition_point(|&t| t <= bound);
        }
        self.0 = i;
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_agree_with_a_binary_search_whichever_way_bounds_move() {
        let ts: Vec<i64> = (0..200).map(|i| i * 15 + (i % 7)).collect();
        let mut edge = Edge::default();
        // Forward in small and large strides, then backwards, then past both ends.
        let bounds = (0..3_200)
            .step_by(7)
            .chain((0..3_200).step_by(400))
            .chain((0..3_200).rev().step_by(13))
            .chain([-5, 10_000, -1, 2_999, 3_000]);
        for bound in bounds {
            assert_eq!(
                edge.first_after(&ts, bound),
                ts.partition_point(|&t| t <= bound),
                "bound {bound}"
            );
        }
        assert_eq!(Edge::default().first_after(&[], 5), 0);
    }
}
