//! PromQL AST -> DataFusion logical plan.
//!
//! Every instant-vector expression becomes a plan with the columns
//! `(labels Utf8, timestamp Int64 ms, value Float64)`, one row per series and step.
//! Selectors scan only the series their matchers select (the matching happens on the
//! series side of the scan, the samples join on `series_id`) and only the time range the
//! steps need; [`PromStep`] applies PromQL's lookback and range windows; operators,
//! aggregations and functions are ordinary relational operators and UDFs.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use arrow::array::{DictionaryArray, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DFSchema, JoinType, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::datasource::provider_as_source;
use datafusion::functions::math::expr_fn::isnan;
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    Extension, LogicalPlan, LogicalPlanBuilder, Operator, binary_expr, cast, col, lit, when,
};
use datafusion::prelude::Expr;
use futures::FutureExt;
use futures::future::BoxFuture;
use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Call, Expr as PromExpr, LabelModifier, MatrixSelector,
    Offset, SubqueryExpr, VectorMatchCardinality, VectorSelector,
};

use crate::model::{self, METRIC_NAME_LABEL, Selector, SeriesId};
use crate::query::scan::{DownsampledSamples, RawSamples, START_TIMESTAMP};
use crate::storage::Storage;
use crate::storage::downsample::{RES_1H, RES_5M};

use super::PromqlError;
use super::aggregates::{BucketKernel, BucketNotes, Kernel, format_value_udf};
use super::extended;
use super::functions::RangeFunc;
use super::info::{InfoSpec, PromInfo};
use super::labels::{self as l};
use super::rank::{RankOrder, ranked};
use super::step::{Emit, Param, PromStep, StepNotes, Steps, Window, param_labels};
use super::syntax::{MODE_LABEL, SelectorMode, selector_mode};
use super::unique::{self, Check, Violation};

pub const LABELS: &str = "labels";
pub const TIMESTAMP: &str = "timestamp";
pub const VALUE: &str = "value";

/// The schema of every vector plan.
pub fn vector_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(LABELS, DataType::Utf8, true),
        Field::new(TIMESTAMP, DataType::Int64, false),
        Field::new(VALUE, DataType::Float64, true),
    ]))
}

/// The schema of a `PromStep` node's output: [`vector_schema`] with the labels as a
/// dictionary, each batch holding a series' label set once rather than once per step.
/// Label functions read both forms.
pub fn step_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(LABELS, label_dictionary_type(), true),
        Field::new(TIMESTAMP, DataType::Int64, false),
        Field::new(VALUE, DataType::Float64, true),
    ]))
}

/// Label sets as a dictionary: `UInt32` keys into label-set strings.
pub fn label_dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8))
}

/// A planned expression.
pub enum Planned {
    /// `(labels, timestamp, value)` rows.
    Vector(LogicalPlan),
    /// A constant scalar, folded at planning time.
    Const(f64),
    /// A scalar that varies by step: rows `(labels = '', timestamp, value)`.
    Scalar(LogicalPlan),
    String(String),
    /// A range vector as raw samples in `(t - range, t]` at a single evaluation time
    /// (only valid as the whole query's result).
    Matrix(LogicalPlan),
}

/// Plans one query over `[start, end]` at `step`.
pub struct Planner {
    pub storage: Arc<Storage>,
    pub start: i64,
    pub end: i64,
    pub step: i64,
    /// The downsampled data to read where it exists.
    pub resolution: ReadResolution,
    pub lookback: i64,
    /// Warnings found while planning (and, by UDFs, while running), in Prometheus's wording.
    pub warnings: Arc<std::sync::Mutex<Vec<String>>>,
    /// Infos found while running.
    pub infos: Arc<std::sync::Mutex<Vec<String>>>,
    /// The query text, for the positions annotations cite.
    pub source: String,
    /// How many series the query's selectors picked, which sizes how it runs.
    pub selected_series: Arc<std::sync::atomic::AtomicUsize>,
}

type PlanResult = Result<Planned, PromqlError>;

/// Which data a query reads: the downsampled copies of `ms` where they exist (0: raw
/// samples only) and raw samples elsewhere; with `fill_gaps`, coarser copies too where
/// neither exists (raw data or finer copies past their retention).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadResolution {
    pub ms: i64,
    pub fill_gaps: bool,
}

/// Downsampled blocks of one resolution that a selection reads.
struct Layer {
    resolution_ms: i64,
    blocks: Vec<crate::storage::BlockMeta>,
}

impl Planner {
    pub fn plan<'a>(&'a self, expr: &'a PromExpr) -> BoxFuture<'a, PlanResult> {
        self.plan_at(expr, self.steps(0, None)).boxed()
    }

    /// Records a warning annotation.
    fn warn(&self, message: String) {
        if let Ok(mut w) = self.warnings.lock() {
            w.push(format!("PromQL warning: {message}"));
        }
    }

    /// Where `expr` starts in the query, as Prometheus cites it: ` (line:column)`. The parser
    /// keeps no positions, so this finds the expression's text; the first occurrence is taken.
    fn position(&self, expr: &PromExpr) -> String {
        let text = expr.to_string();
        let Some(offset) = self.source.find(&text) else {
            return String::new();
        };
        let before = &self.source[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!(" ({line}:{column})")
    }

    /// Warns, as Prometheus does, about a constant quantile outside [0, 1].
    fn check_quantile(&self, q: f64, expr: &PromExpr) {
        if q.is_nan() || !(0.0..=1.0).contains(&q) {
            self.warn(format!(
                "quantile value should be between 0 and 1, got {}{}",
                super::aggregates::format_float(q),
                self.position(expr)
            ));
        }
    }

    fn steps(&self, offset: i64, at: Option<i64>) -> Steps {
        Steps {
            start: self.start,
            end: self.end,
            step: self.step,
            offset,
            at,
        }
    }

    fn plan_at<'a>(&'a self, expr: &'a PromExpr, steps: Steps) -> BoxFuture<'a, PlanResult> {
        async move {
            match expr {
                PromExpr::NumberLiteral(n) => Ok(Planned::Const(n.val)),
                PromExpr::StringLiteral(s) => Ok(Planned::String(s.val.clone())),
                PromExpr::Paren(p) => self.plan_at(&p.expr, steps).await,
                PromExpr::Unary(u) => {
                    let inner = self.plan_at(&u.expr, steps).await?;
                    map_value(inner, |v| Expr::Negative(Box::new(v)), true)
                }
                PromExpr::VectorSelector(vs) => {
                    self.vector_selector(vs, &steps).await.map(Planned::Vector)
                }
                PromExpr::MatrixSelector(ms) => self.matrix_selector(ms).await.map(Planned::Matrix),
                PromExpr::Call(call) => self.call(call, steps).await,
                PromExpr::Binary(b) => self.binary(b, steps).await,
                PromExpr::Aggregate(a) => self.aggregate(a, steps).await,
                PromExpr::Subquery(_) => Err(PromqlError::Unsupported(
                    "a subquery is only supported as a range function argument".into(),
                )),
                PromExpr::Extension(_) => {
                    Err(PromqlError::Unsupported("extension expressions".into()))
                }
            }
        }
        .boxed()
    }

    // ---- selectors -------------------------------------------------------------------

    /// Raw samples of the series `vs` selects with data times in `(min, max]`:
    /// `(labels, timestamp, value)`. Where the query reads downsampled data, each window's
    /// average stands for its samples.
    pub async fn raw_samples(
        &self,
        vs: &VectorSelector,
        min: i64,
        max: i64,
    ) -> Result<LogicalPlan, PromqlError> {
        let layers = self.downsampled_layers(min, max);
        self.selected_samples(vs, (min, max), false, Aggregate::Avg, layers)
            .await
    }

    /// The downsampled blocks (of the query's resolution) overlapping `(min, max]`.
    fn downsampled_layers(&self, min: i64, max: i64) -> Vec<Layer> {
        let ReadResolution { ms, fill_gaps } = self.resolution;
        if ms == 0 && !fill_gaps {
            return Vec::new();
        }
        let manifest = self.storage.manifest();
        let overlapping = |b: &&crate::storage::BlockMeta| b.overlaps(min.saturating_add(1), max);
        // Time some finer data answers for: raw blocks, then the layers taken.
        let mut covered: Vec<(i64, i64)> = (manifest.blocks.iter().filter(overlapping))
            .map(|b| (b.min_time, b.max_time))
            .collect();
        let mut layers = Vec::new();
        for resolution_ms in [RES_5M, RES_1H] {
            // The chosen resolution replaces raw blocks; a coarser one only fills gaps.
            let chosen = resolution_ms == ms;
            if resolution_ms < ms || (!chosen && !fill_gaps) {
                continue;
            }
            let blocks: Vec<crate::storage::BlockMeta> = (manifest.at_resolution(resolution_ms))
                .filter(overlapping)
                .filter(|b| chosen || !covered.iter().any(|&(lo, hi)| b.overlaps(lo, hi - 1)))
                .cloned()
                .collect();
            covered.extend(blocks.iter().map(|b| (b.min_time, b.max_time)));
            if !blocks.is_empty() {
                layers.push(Layer {
                    resolution_ms,
                    blocks,
                });
            }
        }
        layers
    }

    /// [`Planner::raw_samples`], with the samples' start timestamps (ms, null when unknown)
    /// as a fourth column when `with_starts`, and `aggregate` standing for a downsampled
    /// window's samples of `layers`.
    async fn selected_samples(
        &self,
        vs: &VectorSelector,
        (min, max): (i64, i64),
        with_starts: bool,
        aggregate: Aggregate,
        layers: Vec<Layer>,
    ) -> Result<LogicalPlan, PromqlError> {
        let metric = metric_name(vs);
        let storage_error = |e: anyhow::Error| PromqlError::Execution(format!("{e:#}"));
        // The series with a sample in the window; storage finds them through its postings
        // and the blocks' series files.
        let selector = to_selector(vs);
        let mut selected = self
            .storage
            .select_series(&selector, min.saturating_add(1), max)
            .await
            .map_err(storage_error)?;
        for layer in &layers {
            let bounds = (min.saturating_add(1), max);
            let more = self
                .storage
                .select_series_in(&selector, bounds, &layer.blocks)
                .await
                .map_err(storage_error)?;
            for (id, labels) in more {
                selected.entry(id).or_insert(labels);
            }
        }
        let mut ids = Vec::with_capacity(selected.len());
        let mut labels = Vec::with_capacity(selected.len());
        for (id, series) in &selected {
            ids.push(*id);
            labels.push(l::encode(series.iter()));
        }
        // A dictionary, so the join hands each sample a key instead of a copy of its
        // series' label string; `PromStep` groups samples by that key.
        let schema = Arc::new(Schema::new(vec![
            Field::new("series_id", DataType::UInt64, false),
            Field::new(LABELS, label_dictionary_type(), false),
        ]));
        self.selected_series
            .fetch_add(ids.len(), std::sync::atomic::Ordering::Relaxed);
        let selected_ids: Arc<[SeriesId]> = ids.as_slice().into();
        let keys = UInt32Array::from_iter_values(0..labels.len() as u32);
        let labels = DictionaryArray::new(keys, Arc::new(StringArray::from(labels)));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(UInt64Array::from(ids)), Arc::new(labels)],
        )?;
        let series_table = MemTable::try_new(schema, vec![vec![batch]])?;
        let ts = |ms: i64| {
            lit(ScalarValue::TimestampMillisecond(
                Some(ms),
                Some("UTC".into()),
            ))
        };
        let in_window = |table: &str| {
            let t = col(format!("{table}.timestamp"));
            t.clone().gt(ts(min)).and(t.lt_eq(ts(max)))
        };
        // The raw samples, less the blocks whose downsampled copies are read instead.
        let sources: Arc<[String]> = (layers.iter())
            .flat_map(|l| &l.blocks)
            .filter_map(|b| b.source.clone())
            .collect();
        let raw = RawSamples::new(self.storage.clone(), metric.clone())
            .with_series(selected_ids)
            .without_blocks(sources);
        // Counting over downsampled rows adds up their counts; a raw sample counts 1 (a
        // staleness marker stays NaN, for the step node to drop).
        let raw_value = match aggregate == Aggregate::Count && !layers.is_empty() {
            true => when(isnan(col("r.value")), col("r.value"))
                .otherwise(lit(1.0))?
                .alias("value"),
            false => col("r.value"),
        };
        let mut samples = LogicalPlanBuilder::scan("r", provider_as_source(Arc::new(raw)), None)?
            .filter(in_window("r"))?
            .project(
                [col("r.series_id"), col("r.timestamp"), raw_value]
                    .into_iter()
                    .chain(with_starts.then(|| col("r.start_timestamp"))),
            )?;
        for layer in layers {
            let ids: Arc<[String]> = layer.blocks.iter().map(|b| b.id.clone()).collect();
            let windows =
                DownsampledSamples::new(self.storage.clone(), metric.clone(), layer.resolution_ms)
                    .only_blocks(ids);
            let starts = lit(ScalarValue::TimestampMillisecond(None, Some("UTC".into())));
            let down = LogicalPlanBuilder::scan("d", provider_as_source(Arc::new(windows)), None)?
                .filter(in_window("d"))?
                .project(
                    [
                        col("d.series_id").alias("series_id"),
                        col("d.timestamp").alias("timestamp"),
                        aggregate.value("d").alias("value"),
                    ]
                    .into_iter()
                    .chain(with_starts.then(|| starts.alias("start_timestamp"))),
                )?
                .build()?;
            samples = samples.union(down)?;
        }
        let samples = samples.alias("r")?.build()?;
        let plan = LogicalPlanBuilder::scan("s", provider_as_source(Arc::new(series_table)), None)?
            .join(
                samples,
                JoinType::Inner,
                (vec!["s.series_id"], vec!["r.series_id"]),
                None,
            )?
            .project(
                [
                    col("s.labels").alias(LABELS),
                    cast(col("r.timestamp"), DataType::Int64).alias(TIMESTAMP),
                    col("r.value").alias(VALUE),
                ]
                .into_iter()
                .chain(with_starts.then(|| {
                    cast(col("r.start_timestamp"), DataType::Int64).alias(START_TIMESTAMP)
                })),
            )?
            .build()?;
        Ok(plan)
    }

    async fn vector_selector(
        &self,
        vs: &VectorSelector,
        steps: &Steps,
    ) -> Result<LogicalPlan, PromqlError> {
        let steps = self.with_modifiers(steps, &vs.offset, &vs.at);
        let smoothed = selector_mode(vs) == SelectorMode::Smoothed;
        let (min, mut max) = data_bounds(&steps, self.lookback);
        if smoothed {
            max += self.lookback;
        }
        let raw = self.raw_samples(vs, min, max).await?;
        step_node(
            raw,
            steps,
            Window::Instant {
                lookback: self.lookback,
                emit: Emit::Value,
                smoothed,
            },
            StepNotes::default(),
        )
    }

    /// A bare range selector as the query result: raw samples at the single eval time.
    async fn matrix_selector(&self, ms: &MatrixSelector) -> Result<LogicalPlan, PromqlError> {
        let steps = self.with_modifiers(&self.steps(0, None), &ms.vs.offset, &ms.vs.at);
        let t = steps.at.unwrap_or(steps.end) - steps.offset;
        let range = duration_ms(ms.range);
        let raw = self.raw_samples(&ms.vs, t - range, t).await?;
        Ok(raw)
    }

    fn with_modifiers(
        &self,
        steps: &Steps,
        offset: &Option<Offset>,
        at: &Option<AtModifier>,
    ) -> Steps {
        let mut s = steps.clone();
        s.offset += offset_ms(offset);
        if let Some(at) = at {
            s.at = Some(match at {
                AtModifier::Start => self.start,
                AtModifier::End => self.end,
                AtModifier::At(time) => system_time_ms(*time),
            });
        }
        s
    }

    // ---- functions -------------------------------------------------------------------

    async fn call(&self, call: &Call, steps: Steps) -> PlanResult {
        let name = call.func.name;
        let args: Vec<&PromExpr> = call.args.args.iter().map(|a| a.as_ref()).collect();
        if let Some(func) = RangeFunc::from_name(name) {
            return self.range_function(func, &args, steps).await;
        }
        match name {
            "time" => Ok(Planned::Scalar(
                self.steps_plan(&steps, |t| lit(t as f64 / 1000.0))?,
            )),
            "pi" => Ok(Planned::Const(std::f64::consts::PI)),
            "vector" => match self.plan_at(args[0], steps.clone()).await? {
                Planned::Const(c) => Ok(Planned::Vector(self.steps_plan(&steps, move |_| lit(c))?)),
                Planned::Scalar(p) => Ok(Planned::Vector(p)),
                _ => Err(PromqlError::BadData("vector() needs a scalar".into())),
            },
            "scalar" => {
                let inner = self.vector_arg(args[0], steps.clone()).await?;
                Ok(Planned::Scalar(self.scalar_of(inner, &steps)?))
            }
            "timestamp" => {
                if let PromExpr::VectorSelector(vs) = strip_parens(args[0]) {
                    return self.selected_sample(vs, steps, Emit::SampleTime).await;
                }
                let inner = self.vector_arg(args[0], steps.clone()).await?;
                let plan = LogicalPlanBuilder::from(inner)
                    .project(vec![
                        l::call(l::drop_name_udf(), col(LABELS), &[]).alias(LABELS),
                        col(TIMESTAMP),
                        (cast(col(TIMESTAMP), DataType::Float64) / lit(1000.0)).alias(VALUE),
                    ])?
                    .build()?;
                Ok(Planned::Vector(plan))
            }
            "start_timestamp" => self.start_timestamp(args[0], steps).await,
            "info" => self.info(&args, steps).await,
            "label_replace" => {
                let inner = self.vector_arg(args[0], steps).await?;
                let s = string_args(&args[1..])?;
                if !crate::model::is_valid_label_name(&s[0]) {
                    return Err(PromqlError::Execution(format!(
                        "invalid destination label name in label_replace(): {}",
                        s[0]
                    )));
                }
                crate::gocompat::regex::compile_anchored(&s[3]).map_err(|_| {
                    PromqlError::Execution(format!(
                        "invalid regular expression in label_replace(): {}",
                        s[3]
                    ))
                })?;
                let labels = l::call(l::replace_udf(), col(LABELS), &[&s[0], &s[1], &s[2], &s[3]]);
                Ok(Planned::Vector(replace_labels(inner, labels)?))
            }
            "label_join" => {
                let inner = self.vector_arg(args[0], steps).await?;
                let s = string_args(&args[1..])?;
                let sources = s[2..].join(",");
                let labels = l::call(l::join_udf(), col(LABELS), &[&s[0], &s[1], &sources]);
                Ok(Planned::Vector(replace_labels(inner, labels)?))
            }
            "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => {
                if self.step > 0 {
                    self.warn(format!(
                        "sort is ineffective for range queries since results are always ordered by labels{}",
                        self.position(&PromExpr::Call(call.clone()))
                    ));
                }
                // Ordering is applied when the result is assembled.
                self.plan_at(args[0], steps).await
            }
            "absent" => self.absent(args[0], steps).await,
            "absent_over_time" => self.absent_over_time(args[0], steps).await,
            "histogram_quantile" => {
                let q = const_arg(Some(args[0]))?;
                self.check_quantile(q, args[0]);
                self.buckets(BucketKernel::Quantile, args[1], q, 0.0, steps)
                    .await
            }
            "histogram_quantiles" => self.histogram_quantiles(&args, steps).await,
            "histogram_fraction" => {
                let (lower, upper) = (const_arg(Some(args[0]))?, const_arg(Some(args[1]))?);
                self.buckets(BucketKernel::Fraction, args[2], lower, upper, steps)
                    .await
            }
            "start" => Ok(Planned::Const(self.start as f64 / 1000.0)),
            "end" => Ok(Planned::Const(self.end as f64 / 1000.0)),
            "range" => Ok(Planned::Const((self.end - self.start) as f64 / 1000.0)),
            "step" => Ok(Planned::Const(self.step as f64 / 1000.0)),
            "min_of" | "max_of" => {
                let values: Vec<f64> = args
                    .iter()
                    .map(|a| const_arg(Some(*a)))
                    .collect::<Result<_, _>>()?;
                // Go's math.Min/Max: NaN wins.
                let pick = |a: f64, b: f64| {
                    if a.is_nan() || b.is_nan() {
                        f64::NAN
                    } else if name == "min_of" {
                        a.min(b)
                    } else {
                        a.max(b)
                    }
                };
                Ok(Planned::Const(
                    values.into_iter().reduce(pick).unwrap_or(f64::NAN),
                ))
            }
            "minute" | "hour" | "day_of_month" | "day_of_week" | "day_of_year"
            | "days_in_month" | "month" | "year" => {
                let inner = match args.first() {
                    Some(a) => self.plan_at(a, steps).await?,
                    None => Planned::Vector(self.steps_plan(&steps, |t| lit(t as f64 / 1000.0))?),
                };
                let udf = super::aggregates::date_udf(name);
                map_value(inner, move |v| udf.call(vec![v]), true)
            }
            "clamp" | "clamp_min" | "clamp_max" => {
                let inner = self.plan_at(args[0], steps).await?;
                let bound = |i: usize| const_arg(args.get(i).copied());
                let (lo, hi) = match name {
                    "clamp" => (bound(1)?, bound(2)?),
                    "clamp_min" => (bound(1)?, f64::INFINITY),
                    _ => (f64::NEG_INFINITY, bound(1)?),
                };
                if lo > hi {
                    return Ok(Planned::Vector(self.empty_vector()?));
                }
                map_value(inner, move |v| clamp_expr(v, lo, hi), true)
            }
            "round" => {
                let inner = self.plan_at(args[0], steps).await?;
                let to = match args.get(1) {
                    Some(a) => const_arg(Some(*a))?,
                    None => 1.0,
                };
                map_value(inner, move |v| round_expr(v, to), true)
            }
            other => match math_function(other) {
                Some(f) => {
                    let inner = self.plan_at(args[0], steps).await?;
                    map_value(inner, f, true)
                }
                None => Err(PromqlError::Unsupported(format!("function {other}()"))),
            },
        }
    }

    async fn range_function(
        &self,
        func: RangeFunc,
        args: &[&PromExpr],
        steps: Steps,
    ) -> PlanResult {
        // The range argument is the first one, except for quantile_over_time(φ, r) and
        // the smoothing parameters that follow it.
        let (range_arg, params): (&PromExpr, Vec<&PromExpr>) = match func {
            RangeFunc::QuantileOverTime => (args[1], vec![args[0]]),
            _ => (args[0], args[1..].to_vec()),
        };
        let param_exprs = params;
        let params: Vec<Param> = param_exprs
            .iter()
            .map(|p| match const_arg(Some(*p)) {
                Ok(v) => Param::Const(v.to_bits()),
                Err(_) => Param::PerStep,
            })
            .collect();
        if func == RangeFunc::QuantileOverTime
            && let Some(Param::Const(q)) = params.first()
        {
            self.check_quantile(f64::from_bits(*q), args[0]);
        }
        let outer_steps = steps.clone();
        let mut mode = SelectorMode::Plain;
        let mut func = func;
        let (input, range, steps) = match strip_parens(range_arg) {
            PromExpr::MatrixSelector(ms) => {
                mode = selector_mode(&ms.vs);
                extended::check(mode, func.name()).map_err(PromqlError::BadData)?;
                let steps = self.with_modifiers(&steps, &ms.vs.offset, &ms.vs.at);
                let range = duration_ms(ms.range);
                let (min, max) = match mode {
                    SelectorMode::Plain => data_bounds(&steps, range),
                    SelectorMode::Anchored => data_bounds(&steps, range + self.lookback),
                    SelectorMode::Smoothed => {
                        let (min, max) = data_bounds(&steps, range + self.lookback);
                        (min, max + self.lookback)
                    }
                };
                let with_starts = mode == SelectorMode::Plain && func.uses_start_timestamps();
                let aggregate = Aggregate::for_function(func);
                // Read once: the choice of function depends on what is read.
                let layers = self.downsampled_layers(min, max);
                if aggregate == Aggregate::Count && !layers.is_empty() {
                    // A downsampled row stands for `count` samples: add them up.
                    func = RangeFunc::SumOverTime;
                }
                let raw = self
                    .selected_samples(&ms.vs, (min, max), with_starts, aggregate, layers)
                    .await?;
                (raw, range, steps)
            }
            PromExpr::Subquery(sq) => self.subquery(sq, &steps).await?,
            _ => {
                return Err(PromqlError::BadData(format!(
                    "expected a range vector in call to {func:?}"
                )));
            }
        };
        let input = self
            .with_step_params(input, &param_exprs, &params, outer_steps)
            .await?;
        let notes = StepNotes {
            warnings: Some(self.warnings.clone()),
            position: self.position(range_arg),
        };
        let window = Window::Range {
            range,
            func,
            params,
            mode,
            lookback: self.lookback,
        };
        step_node_naming(input, (steps, window), !func.keeps_name(), notes).map(Planned::Vector)
    }

    /// Adds the rows of the parameters that vary by step to a range function's input,
    /// labelled so `PromStep` tells them apart (see [`param_labels`]).
    async fn with_step_params(
        &self,
        input: LogicalPlan,
        exprs: &[&PromExpr],
        params: &[Param],
        steps: Steps,
    ) -> Result<LogicalPlan, PromqlError> {
        if !params.contains(&Param::PerStep) {
            return Ok(input);
        }
        // The parameter rows' labels are plain strings; so must the input's be.
        let mut plan = LogicalPlanBuilder::from(input).project(vec![
            cast(col(LABELS), DataType::Utf8).alias(LABELS),
            col(TIMESTAMP),
            col(VALUE),
        ])?;
        for (i, (expr, param)) in exprs.iter().zip(params).enumerate() {
            if *param != Param::PerStep {
                continue;
            }
            let rows = match self.plan_at(expr, steps.clone()).await? {
                Planned::Scalar(p) => p,
                _ => {
                    return Err(PromqlError::BadData(
                        "expected a scalar as a range function parameter".into(),
                    ));
                }
            };
            let rows = LogicalPlanBuilder::from(rows)
                .project(vec![
                    lit(param_labels(i)).alias(LABELS),
                    col(TIMESTAMP),
                    col(VALUE),
                ])?
                .build()?;
            plan = plan.union(rows)?;
        }
        Ok(plan.build()?)
    }

    /// What `emit` says of the sample `vs` selects at each step, without the metric name.
    async fn selected_sample(&self, vs: &VectorSelector, steps: Steps, emit: Emit) -> PlanResult {
        let steps = self.with_modifiers(&steps, &vs.offset, &vs.at);
        let bounds = data_bounds(&steps, self.lookback);
        let layers = self.downsampled_layers(bounds.0, bounds.1);
        let raw = self
            .selected_samples(vs, bounds, emit == Emit::StartTime, Aggregate::Avg, layers)
            .await?;
        let window = Window::Instant {
            lookback: self.lookback,
            emit,
            smoothed: false,
        };
        step_node_naming(raw, (steps, window), true, StepNotes::default()).map(Planned::Vector)
    }

    /// `start_timestamp(v)`: when each selected sample's counter started. Only a selector
    /// has start timestamps; any other expression yields nothing, as in Prometheus.
    async fn start_timestamp(&self, arg: &PromExpr, steps: Steps) -> PlanResult {
        match strip_parens(arg) {
            PromExpr::VectorSelector(vs) => self.selected_sample(vs, steps, Emit::StartTime).await,
            other => {
                // Planned anyway, so its errors surface.
                self.vector_arg(other, steps).await?;
                self.empty_vector().map(Planned::Vector)
            }
        }
    }

    /// `info(v, {selector})`: `v` and the info series it names, read at the time the first
    /// selector of `v` reads (its `@` and offset), joined per step by [`PromInfo`].
    async fn info(&self, args: &[&PromExpr], steps: Steps) -> PlanResult {
        let base = self.vector_arg(args[0], steps.clone()).await?;
        let selector = match args.get(1).map(|a| strip_parens(a)) {
            None => None,
            Some(PromExpr::VectorSelector(vs)) => {
                let mut matchers = vs.matchers.matchers.clone();
                if let Some(name) = &vs.name {
                    matchers.push(Matcher::new(MatchOp::Equal, METRIC_NAME_LABEL, name));
                }
                Some(matchers)
            }
            Some(_) => {
                return Err(PromqlError::BadData(
                    "expected label selectors as the second argument to info()".into(),
                ));
            }
        };
        let spec = InfoSpec::new(selector.as_deref());
        let (at, offset) = info_reference(args[0]).unwrap_or((None, None));
        let info_steps = self.with_modifiers(&steps, &offset, &at);
        let selector = VectorSelector::new(None, Matchers::new(spec.selector_matchers()));
        let (min, max) = data_bounds(&info_steps, self.lookback);
        let raw = self.raw_samples(&selector, min, max).await?;
        let info = step_node(
            raw,
            info_steps,
            Window::Instant {
                lookback: self.lookback,
                emit: Emit::SampleTime,
                smoothed: false,
            },
            StepNotes::default(),
        )?;
        let schema = Arc::new(DFSchema::try_from(vector_schema().as_ref().clone())?);
        Ok(Planned::Vector(LogicalPlan::Extension(Extension {
            node: Arc::new(PromInfo {
                base,
                info,
                schema,
                spec,
            }),
        })))
    }

    /// Plans a subquery's inner expression at its own steps; returns the rows, the range
    /// and the outer steps (with the subquery's offset and `@`).
    async fn subquery(
        &self,
        sq: &SubqueryExpr,
        steps: &Steps,
    ) -> Result<(LogicalPlan, i64, Steps), PromqlError> {
        let outer = self.with_modifiers(steps, &sq.offset, &sq.at);
        let range = duration_ms(sq.range);
        let step = sq.step.map(duration_ms).unwrap_or(60_000).max(1);
        let (first, last) = data_bounds(&outer, 0);
        // Inner steps are aligned to multiples of the subquery step, as in Prometheus.
        let inner_start = (first - range).div_euclid(step) * step + step;
        let inner = Planner {
            storage: self.storage.clone(),
            start: inner_start,
            end: last,
            step,
            resolution: self.resolution,
            lookback: self.lookback,
            warnings: Default::default(),
            infos: self.infos.clone(),
            source: self.source.clone(),
            selected_series: self.selected_series.clone(),
        };
        let inner_steps = inner.steps(0, None);
        let planned = inner.plan_at(&sq.expr, inner_steps.clone()).await?;
        let rows = match planned {
            Planned::Vector(p) | Planned::Scalar(p) => p,
            Planned::Const(c) => inner.steps_plan(&inner_steps, move |_| lit(c))?,
            _ => {
                return Err(PromqlError::BadData(
                    "subquery needs an instant vector or scalar".into(),
                ));
            }
        };
        Ok((rows, range, outer))
    }

    async fn vector_arg(&self, expr: &PromExpr, steps: Steps) -> Result<LogicalPlan, PromqlError> {
        match self.plan_at(expr, steps).await? {
            Planned::Vector(p) => Ok(p),
            _ => Err(PromqlError::BadData("expected an instant vector".into())),
        }
    }

    /// `scalar(v)`: the value if exactly one series has one at the step, else NaN.
    fn scalar_of(&self, vector: LogicalPlan, steps: &Steps) -> Result<LogicalPlan, PromqlError> {
        let per_step = LogicalPlanBuilder::from(vector)
            .aggregate(
                vec![col(TIMESTAMP)],
                vec![
                    agg::count(col(VALUE)).alias("n"),
                    agg::max(col(VALUE)).alias("v"),
                ],
            )?
            .project(vec![col(TIMESTAMP).alias("t"), col("n"), col("v")])?
            .build()?;
        let all = self.steps_plan(steps, |_| lit(0.0))?;
        let plan = LogicalPlanBuilder::from(all)
            .join(per_step, JoinType::Left, (vec![TIMESTAMP], vec!["t"]), None)?
            .project(vec![
                lit("").alias(LABELS),
                col(TIMESTAMP),
                when(col("n").eq(lit(1i64)), col("v"))
                    .otherwise(lit(f64::NAN))?
                    .alias(VALUE),
            ])?
            .build()?;
        Ok(plan)
    }

    /// `absent(v)`: 1 at steps where `v` has no series, with the labels of `v`'s equality
    /// matchers.
    async fn absent(&self, arg: &PromExpr, steps: Steps) -> PlanResult {
        let inner = self.vector_arg(arg, steps.clone()).await?;
        let labels = match strip_parens(arg) {
            PromExpr::VectorSelector(vs) => absent_labels(vs),
            PromExpr::MatrixSelector(ms) => absent_labels(&ms.vs),
            _ => String::new(),
        };
        self.steps_without(inner, labels, &steps)
    }

    /// 1, labelled `labels`, at every step where `present` has no row: `absent()`.
    fn steps_without(&self, present: LogicalPlan, labels: String, steps: &Steps) -> PlanResult {
        let times = LogicalPlanBuilder::from(present)
            .aggregate(vec![col(TIMESTAMP)], Vec::<Expr>::new())?
            .project(vec![col(TIMESTAMP).alias("t")])?
            .build()?;
        let all = self.steps_plan(steps, |_| lit(1.0))?;
        let plan = LogicalPlanBuilder::from(all)
            .join(
                times,
                JoinType::LeftAnti,
                (vec![TIMESTAMP], vec!["t"]),
                None,
            )?
            .project(vec![lit(labels).alias(LABELS), col(TIMESTAMP), col(VALUE)])?
            .build()?;
        Ok(Planned::Vector(plan))
    }

    /// `absent_over_time(v[r])`: 1 where no series had a sample in the range.
    async fn absent_over_time(&self, arg: &PromExpr, steps: Steps) -> PlanResult {
        let labels = match strip_parens(arg) {
            PromExpr::MatrixSelector(ms) => absent_labels(&ms.vs),
            _ => String::new(),
        };
        let present = match self
            .range_function(RangeFunc::CountOverTime, &[arg], steps.clone())
            .await?
        {
            Planned::Vector(p) => p,
            _ => {
                return Err(PromqlError::Execution(
                    "absent_over_time: unexpected plan".into(),
                ));
            }
        };
        self.steps_without(present, labels, &steps)
    }

    /// `histogram_quantile` / `histogram_fraction` over classic `_bucket` series: group by
    /// the labels without `le`, then compute from the group's (le, count) pairs.
    /// `histogram_quantiles(v, "label", φ...)`: one `histogram_quantile` per φ, told apart
    /// by `label`.
    async fn histogram_quantiles(&self, args: &[&PromExpr], steps: Steps) -> PlanResult {
        let label = string_args(&args[1..2])?.remove(0);
        let mut union: Option<LogicalPlanBuilder> = None;
        for arg in &args[2..] {
            let q = const_arg(Some(*arg))?;
            self.check_quantile(q, arg);
            let Planned::Vector(plan) = self
                .buckets(BucketKernel::Quantile, args[0], q, 0.0, steps.clone())
                .await?
            else {
                continue;
            };
            let labelled = LogicalPlanBuilder::from(plan)
                .project(vec![
                    l::call(l::set_udf(), col(LABELS), &[&label, &open_metrics_float(q)])
                        .alias(LABELS),
                    col(TIMESTAMP),
                    col(VALUE),
                ])?
                .build()?;
            union = Some(match union {
                None => LogicalPlanBuilder::from(labelled),
                Some(u) => u.union(labelled)?,
            });
        }
        match union {
            Some(u) => Ok(Planned::Vector(u.build()?)),
            None => Ok(Planned::Vector(self.empty_vector()?)),
        }
    }

    async fn buckets(
        &self,
        kernel: BucketKernel,
        arg: &PromExpr,
        p1: f64,
        p2: f64,
        steps: Steps,
    ) -> PlanResult {
        let inner = self.vector_arg(arg, steps).await?;
        let le = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(label_get_udf()),
            vec![col(LABELS), lit("le")],
        ));
        // Grouped with the metric name, which goes afterwards: two histograms that differ
        // only by name then collide, as in Prometheus.
        let name = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(label_get_udf()),
            vec![col(LABELS), lit(METRIC_NAME_LABEL)],
        ));
        let group = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(label_set_dynamic_udf()),
            vec![
                l::call(l::drop_udf(), col(LABELS), &["le"]),
                lit(METRIC_NAME_LABEL),
                name,
            ],
        ));
        let plan = LogicalPlanBuilder::from(inner)
            .project(vec![
                group.alias("g"),
                col(TIMESTAMP),
                col(VALUE),
                le.alias("le"),
            ])?
            .aggregate(
                vec![col("g"), col(TIMESTAMP)],
                vec![
                    agg::array_agg(col("le")).alias("les"),
                    agg::array_agg(col(VALUE)).alias("counts"),
                ],
            )?
            .project(vec![
                l::call(l::drop_name_udf(), col("g"), &[]).alias(LABELS),
                col(TIMESTAMP),
                kernel
                    .call(
                        col("les"),
                        col("counts"),
                        col("g"),
                        (p1, p2),
                        BucketNotes {
                            warnings: self.warnings.clone(),
                            infos: self.infos.clone(),
                            position: self.position(arg),
                        },
                    )
                    .alias(VALUE),
            ])?
            .filter(col(VALUE).is_not_null())?
            .build()?;
        Ok(Planned::Vector(plan))
    }

    /// One row per step: `(labels = '', t, value(t))`.
    fn steps_plan(
        &self,
        steps: &Steps,
        value: impl Fn(i64) -> Expr,
    ) -> Result<LogicalPlan, PromqlError> {
        let rows: Vec<Vec<Expr>> = steps
            .times()
            .map(|t| vec![lit(""), lit(t), value(steps.at.unwrap_or(t) - steps.offset)])
            .collect();
        if rows.is_empty() {
            return self.empty_vector();
        }
        let plan = LogicalPlanBuilder::values(rows)?
            .project(vec![
                col("column1").alias(LABELS),
                col("column2").alias(TIMESTAMP),
                cast(col("column3"), DataType::Float64).alias(VALUE),
            ])?
            .build()?;
        Ok(plan)
    }

    fn empty_vector(&self) -> Result<LogicalPlan, PromqlError> {
        let schema = DFSchema::try_from(vector_schema().as_ref().clone())?;
        Ok(LogicalPlanBuilder::empty(false).build().map(|_| {
            LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(schema),
            })
        })?)
    }

    // ---- operators -------------------------------------------------------------------

    async fn binary(&self, b: &BinaryExpr, steps: Steps) -> PlanResult {
        let op = b.op.to_string();
        let lhs = self.plan_at(&b.lhs, steps.clone()).await?;
        let rhs = self.plan_at(&b.rhs, steps.clone()).await?;
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let comparison = b.op.is_comparison_operator();
        match (lhs, rhs) {
            (Planned::Const(a), Planned::Const(c)) => {
                let v = scalar_op(&op, a, c)
                    .ok_or_else(|| PromqlError::BadData(format!("operator {op} on scalars")))?;
                // The parser only admits scalar comparisons with `bool`, giving 0 or 1.
                let _ = (comparison, return_bool);
                Ok(Planned::Const(v))
            }
            (Planned::Vector(a), Planned::Vector(c)) => self.vector_vector(a, c, b, &op),
            (Planned::Vector(v), other) => {
                self.vector_scalar(v, other, &op, return_bool, false, &steps)
            }
            (other, Planned::Vector(v)) if !matches!(other, Planned::Vector(_)) => {
                self.vector_scalar(v, other, &op, return_bool, true, &steps)
            }
            (Planned::Scalar(a), Planned::Const(c)) => {
                map_value(Planned::Scalar(a), move |v| arith(&op, v, lit(c)), false)
            }
            (Planned::Const(c), Planned::Scalar(a)) => {
                map_value(Planned::Scalar(a), move |v| arith(&op, lit(c), v), false)
            }
            (Planned::Scalar(a), Planned::Scalar(c)) => {
                let joined = join_on_time(a, c)?;
                let plan = LogicalPlanBuilder::from(joined)
                    .project(vec![
                        lit("").alias(LABELS),
                        col("l.timestamp").alias(TIMESTAMP),
                        arith(&op, col("l.value"), col("r.value")).alias(VALUE),
                    ])?
                    .build()?;
                Ok(Planned::Scalar(plan))
            }
            _ => Err(PromqlError::BadData(format!("invalid operands for {op}"))),
        }
    }

    /// A vector with a scalar (constant or per step) on one side.
    fn vector_scalar(
        &self,
        vector: LogicalPlan,
        scalar: Planned,
        op: &str,
        return_bool: bool,
        scalar_on_left: bool,
        _steps: &Steps,
    ) -> PlanResult {
        let comparison = is_comparison(op);
        let (input, scalar_expr) = match scalar {
            Planned::Const(c) => (vector, lit(c)),
            Planned::Scalar(s) => {
                let s = LogicalPlanBuilder::from(s)
                    .project(vec![col(TIMESTAMP).alias("st"), col(VALUE).alias("sv")])?
                    .build()?;
                let joined = LogicalPlanBuilder::from(vector)
                    .join(s, JoinType::Inner, (vec![TIMESTAMP], vec!["st"]), None)?
                    .project(vec![col(LABELS), col(TIMESTAMP), col(VALUE), col("sv")])?
                    .build()?;
                (joined, col("sv"))
            }
            _ => return Err(PromqlError::BadData(format!("invalid operand for {op}"))),
        };
        let (left, right) = if scalar_on_left {
            (scalar_expr, col(VALUE))
        } else {
            (col(VALUE), scalar_expr)
        };
        let result = arith(op, left, right);
        let plan = if comparison && !return_bool {
            // A filter: the vector's samples where the comparison holds, values unchanged.
            LogicalPlanBuilder::from(input)
                .filter(result)?
                .project(vec![col(LABELS), col(TIMESTAMP), col(VALUE)])?
                .build()?
        } else {
            let value = if comparison {
                cast(result, DataType::Float64)
            } else {
                result
            };
            LogicalPlanBuilder::from(input)
                .project(vec![
                    l::call(l::drop_name_udf(), col(LABELS), &[]).alias(LABELS),
                    col(TIMESTAMP),
                    value.alias(VALUE),
                ])?
                .build()?
        };
        Ok(Planned::Vector(plan))
    }

    fn vector_vector(
        &self,
        lhs: LogicalPlan,
        rhs: LogicalPlan,
        b: &BinaryExpr,
        op: &str,
    ) -> PlanResult {
        let modifier = b.modifier.as_ref();
        let matching = modifier.and_then(|m| m.matching.as_ref());
        let key = |labels: Expr| match matching {
            Some(LabelModifier::Include(names)) => {
                l::call(l::keep_udf(), labels, &[&names.labels.join(",")])
            }
            Some(LabelModifier::Exclude(names)) => {
                l::call(l::drop_udf(), labels, &[&names.labels.join(",")])
            }
            None => l::call(l::drop_udf(), labels, &[""]),
        };
        // The "one" side of a match must not repeat a match group (set operators excepted).
        let one_side = match modifier.map(|m| &m.card) {
            _ if matches!(op, "and" | "or" | "unless") => None,
            Some(VectorMatchCardinality::OneToMany(_)) => Some("l"),
            _ => Some("r"),
        };
        let side = |plan: LogicalPlan, alias: &str| -> Result<LogicalPlan, PromqlError> {
            let keyed = LogicalPlanBuilder::from(plan)
                .project(vec![
                    col(LABELS),
                    col(TIMESTAMP),
                    col(VALUE),
                    key(col(LABELS)).alias("k"),
                ])?
                .build()?;
            let keyed = if one_side == Some(alias) {
                let side_name = if alias == "l" { "left" } else { "right" };
                unique::checked(
                    keyed,
                    Check {
                        key: 3,
                        timestamp: 1,
                        labels: 0,
                        violation: Violation::OneSide(side_name),
                    },
                )
            } else {
                keyed
            };
            Ok(LogicalPlanBuilder::from(keyed).alias(alias)?.build()?)
        };
        let (l_side, r_side) = (side(lhs, "l")?, side(rhs, "r")?);
        let on = (vec!["l.timestamp", "l.k"], vec!["r.timestamp", "r.k"]);
        let project_lhs = vec![
            col("l.labels").alias(LABELS),
            col("l.timestamp").alias(TIMESTAMP),
            col("l.value").alias(VALUE),
        ];
        match op {
            "and" => {
                let plan = LogicalPlanBuilder::from(l_side)
                    .join(r_side, JoinType::LeftSemi, on, None)?
                    .project(project_lhs)?
                    .build()?;
                return Ok(Planned::Vector(plan));
            }
            "unless" => {
                let plan = LogicalPlanBuilder::from(l_side)
                    .join(r_side, JoinType::LeftAnti, on, None)?
                    .project(project_lhs)?
                    .build()?;
                return Ok(Planned::Vector(plan));
            }
            "or" => {
                let left_plain = LogicalPlanBuilder::from(l_side.clone())
                    .project(project_lhs)?
                    .build()?;
                let right_only = LogicalPlanBuilder::from(r_side)
                    .join(
                        l_side,
                        JoinType::LeftAnti,
                        (vec!["r.timestamp", "r.k"], vec!["l.timestamp", "l.k"]),
                        None,
                    )?
                    .project(vec![
                        col("r.labels").alias(LABELS),
                        col("r.timestamp").alias(TIMESTAMP),
                        col("r.value").alias(VALUE),
                    ])?
                    .build()?;
                let plan = LogicalPlanBuilder::from(left_plain)
                    .union(right_only)?
                    .build()?;
                return Ok(Planned::Vector(plan));
            }
            _ => {}
        }
        let comparison = is_comparison(op);
        let return_bool = modifier.is_some_and(|m| m.return_bool);
        let drops_name = !comparison || return_bool;
        let card = modifier.map(|m| &m.card);
        // Result labels: the "many" side's labels (lhs unless group_right), trimmed to
        // the matching labels for one-to-one `on`, plus included labels from the other side.
        let (many, one) = match card {
            Some(VectorMatchCardinality::OneToMany(_)) => ("r", "l"),
            _ => ("l", "r"),
        };
        let mut fill = modifier
            .map(|m| (m.fill_values.lhs, m.fill_values.rhs))
            .unwrap_or((None, None));
        if many == "r" {
            // As in Prometheus, group_right swaps the sides, fill values included.
            fill = (fill.1, fill.0);
        }
        let side_labels = |side: &str, other: &str, filled: bool| {
            let own = col(format!("{side}.labels"));
            if !filled {
                return own;
            }
            // A side filled in carries the present side's matching labels.
            datafusion::functions::core::expr_fn::coalesce(vec![
                own,
                matching_labels(col(format!("{other}.labels")), matching),
            ])
        };
        let (l_filled, r_filled) = (fill.0.is_some(), fill.1.is_some());
        let side = |name: &str| {
            if name == "l" {
                side_labels("l", "r", l_filled)
            } else {
                side_labels("r", "l", r_filled)
            }
        };
        let labels = result_labels(side(many), side(one), card, matching, drops_name);
        let side_value = |side: &str, fill: Option<f64>| match fill {
            Some(v) => datafusion::functions::core::expr_fn::coalesce(vec![
                col(format!("{side}.value")),
                lit(v),
            ]),
            None => col(format!("{side}.value")),
        };
        let (lv, rv) = (side_value("l", fill.0), side_value("r", fill.1));
        let many_value = if many == "l" { lv.clone() } else { rv.clone() };
        let join_type = match fill {
            (Some(_), Some(_)) => JoinType::Full,
            (Some(_), None) => JoinType::Right,
            (None, Some(_)) => JoinType::Left,
            (None, None) => JoinType::Inner,
        };
        let timestamp = datafusion::functions::core::expr_fn::coalesce(vec![
            col("l.timestamp"),
            col("r.timestamp"),
        ]);
        let result = arith(op, lv, rv);
        // Each match group pairs at most once (one-to-one), and each result label set is
        // made once (many-to-one); checked before a comparison filters rows away.
        let (check_key, violation) = match card {
            Some(VectorMatchCardinality::ManyToOne(_))
            | Some(VectorMatchCardinality::OneToMany(_)) => (labels.clone(), Violation::Grouping),
            _ => (
                datafusion::functions::core::expr_fn::coalesce(vec![col("l.k"), col("r.k")]),
                Violation::OneToOne,
            ),
        };
        let joined = LogicalPlanBuilder::from(l_side)
            .join(r_side, join_type, on, None)?
            .project(vec![
                labels.alias(LABELS),
                timestamp.alias(TIMESTAMP),
                check_key.alias("check_key"),
                col("l.value"),
                col("r.value"),
            ])?
            .build()?;
        let joined = LogicalPlanBuilder::from(unique::checked(
            joined,
            Check {
                key: 2,
                timestamp: 1,
                labels: 0,
                violation,
            },
        ));
        let plan = if comparison && !return_bool {
            joined
                .filter(result)?
                .project(vec![col(LABELS), col(TIMESTAMP), many_value.alias(VALUE)])?
                .build()?
        } else {
            let value = if comparison {
                cast(result, DataType::Float64)
            } else {
                result
            };
            joined
                .project(vec![col(LABELS), col(TIMESTAMP), value.alias(VALUE)])?
                .build()?
        };
        Ok(Planned::Vector(plan))
    }

    // ---- aggregations ----------------------------------------------------------------

    async fn aggregate(&self, a: &AggregateExpr, steps: Steps) -> PlanResult {
        let op = a.op.to_string();
        let input = self.vector_arg(&a.expr, steps.clone()).await?;
        let group_labels = match &a.modifier {
            Some(LabelModifier::Include(names)) => {
                l::call(l::keep_udf(), col(LABELS), &[&names.labels.join(",")])
            }
            Some(LabelModifier::Exclude(names)) => {
                l::call(l::drop_udf(), col(LABELS), &[&names.labels.join(",")])
            }
            // Grouping on a literal slows DataFusion's hash aggregation down (2.5x for
            // count()), while its window functions prefer it (4x for topk): each gets its
            // own.
            None if matches!(op.as_str(), "topk" | "bottomk" | "limitk") => lit(""),
            None => l::call(l::keep_udf(), col(LABELS), &[""]),
        };
        let keyed = LogicalPlanBuilder::from(input)
            .project(vec![
                col(LABELS),
                col(TIMESTAMP),
                col(VALUE),
                group_labels.alias("g"),
            ])?
            .build()?;
        // Grouping by __name__ keeps names whose drop is pending; the group's name is
        // dropped at the end if any input's was.
        let by_name = matches!(&a.modifier, Some(LabelModifier::Include(names))
            if names.labels.iter().any(|n| n == METRIC_NAME_LABEL));
        let grouping = Grouping::of(a.modifier.as_ref(), by_name);
        let value = match op.as_str() {
            "count" => cast(agg::count(col(VALUE)), DataType::Float64),
            "group" => cast(agg::count(col(VALUE)).gt(lit(0i64)), DataType::Float64),
            "topk" | "bottomk" | "limitk" => {
                if const_arg(a.param.as_deref()).is_ok_and(f64::is_nan) {
                    return Err(PromqlError::Execution("Parameter value is NaN".into()));
                }
                let keyed = self.with_param(keyed, a.param.as_deref(), steps).await?;
                return self.top_bottom(keyed, &op);
            }
            "limit_ratio" => {
                let param = a.param.as_deref();
                if let (Ok(r), Some(p)) = (const_arg(param), param) {
                    if r.is_nan() {
                        return Err(PromqlError::Execution("Ratio value is NaN".into()));
                    }
                    if !(-1.0..=1.0).contains(&r) {
                        let cap = r.clamp(-1.0, 1.0);
                        self.warn(format!(
                            "ratio value should be between -1 and 1, got {}, capping to {}{}",
                            super::aggregates::format_float(r),
                            super::aggregates::format_float(cap),
                            self.position(p)
                        ));
                    }
                }
                let keyed = self.with_param(keyed, param, steps).await?;
                let sampled = Expr::ScalarFunction(ScalarFunction::new_udf(
                    Arc::new(l::ratio_sample_udf()),
                    vec![col(LABELS), col("p")],
                ));
                let plan = LogicalPlanBuilder::from(keyed)
                    .filter(sampled)?
                    .project(vec![col(LABELS), col(TIMESTAMP), col(VALUE)])?
                    .build()?;
                return Ok(Planned::Vector(plan));
            }
            "count_values" => return self.count_values(keyed, a),
            other => match Kernel::from_name(other) {
                Some(kernel) => {
                    let param = if kernel == Kernel::Quantile {
                        a.param.as_deref()
                    } else {
                        None
                    };
                    if let (Ok(q), Some(p)) = (const_arg(param), param) {
                        self.check_quantile(q, p);
                    }
                    let keyed = self.with_param(keyed, param, steps).await?;
                    return self.kernel_aggregate(keyed, kernel, grouping);
                }
                None => return Err(PromqlError::Unsupported(format!("aggregation {other}"))),
            },
        };
        let plan = LogicalPlanBuilder::from(keyed)
            .aggregate(
                grouping.keys(),
                vec![value.alias(VALUE), any_name_dropped()],
            )?
            .project(vec![
                grouping.labels(),
                col(TIMESTAMP),
                cast(col(VALUE), DataType::Float64).alias(VALUE),
            ])?
            .build()?;
        Ok(Planned::Vector(plan))
    }

    /// Aggregates each group's values with a Prometheus kernel (parameter column `p`).
    fn kernel_aggregate(
        &self,
        keyed: LogicalPlan,
        kernel: Kernel,
        grouping: Grouping,
    ) -> PlanResult {
        // A streaming kernel folds values as they arrive; the others collect each group's
        // values (and its parameter `p`) and apply the kernel to the list.
        let (aggregates, value) = if kernel.streams() {
            (vec![kernel.aggregate(col(VALUE)).alias(VALUE)], col(VALUE))
        } else {
            (
                vec![
                    agg::array_agg(col(VALUE)).alias("vals"),
                    agg::max(col("p")).alias("p"),
                ],
                kernel.call(col("vals"), col("p")).alias(VALUE),
            )
        };
        let plan = LogicalPlanBuilder::from(keyed)
            .aggregate(
                grouping.keys(),
                aggregates.into_iter().chain([any_name_dropped()]),
            )?
            .project(vec![grouping.labels(), col(TIMESTAMP), value])?
            .build()?;
        Ok(Planned::Vector(plan))
    }

    /// `count_values("label", v)`: how many series have each value, the value as a label.
    fn count_values(&self, keyed: LogicalPlan, a: &AggregateExpr) -> PlanResult {
        let label = match a.param.as_deref().map(strip_parens) {
            Some(PromExpr::StringLiteral(s)) => s.val.clone(),
            _ => {
                return Err(PromqlError::BadData(
                    "count_values needs a label name".into(),
                ));
            }
        };
        if !crate::model::is_valid_label_name(&label) {
            return Err(PromqlError::Execution(format!(
                "invalid label name {label:?}"
            )));
        }
        let formatted = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(format_value_udf()),
            vec![col(VALUE)],
        ));
        let labels = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(label_set_dynamic_udf()),
            vec![col("g"), lit(label.as_str()), col("vs")],
        ));
        let plan = LogicalPlanBuilder::from(keyed)
            .project(vec![col("g"), col(TIMESTAMP), formatted.alias("vs")])?
            .aggregate(
                vec![col("g"), col(TIMESTAMP), col("vs")],
                vec![agg::count(lit(1)).alias("n")],
            )?
            .project(vec![
                labels.alias(LABELS),
                col(TIMESTAMP),
                cast(col("n"), DataType::Float64).alias(VALUE),
            ])?
            .build()?;
        Ok(Planned::Vector(plan))
    }

    /// Adds the aggregation parameter as column `p`: a constant, or a scalar expression's
    /// value at each step (joined on the timestamp).
    async fn with_param(
        &self,
        keyed: LogicalPlan,
        param: Option<&PromExpr>,
        steps: Steps,
    ) -> Result<LogicalPlan, PromqlError> {
        let Some(param) = param else {
            return Ok(LogicalPlanBuilder::from(keyed)
                .project(vec![
                    col(LABELS),
                    col(TIMESTAMP),
                    col(VALUE),
                    col("g"),
                    lit(0.0).alias("p"),
                ])?
                .build()?);
        };
        match self.plan_at(param, steps).await? {
            Planned::Const(c) => Ok(LogicalPlanBuilder::from(keyed)
                .project(vec![
                    col(LABELS),
                    col(TIMESTAMP),
                    col(VALUE),
                    col("g"),
                    lit(c).alias("p"),
                ])?
                .build()?),
            Planned::Scalar(plan) => {
                let scalar = LogicalPlanBuilder::from(plan)
                    .project(vec![col(TIMESTAMP).alias("pt"), col(VALUE).alias("p")])?
                    .build()?;
                Ok(LogicalPlanBuilder::from(keyed)
                    .join(scalar, JoinType::Inner, (vec![TIMESTAMP], vec!["pt"]), None)?
                    .project(vec![
                        col(LABELS),
                        col(TIMESTAMP),
                        col(VALUE),
                        col("g"),
                        col("p"),
                    ])?
                    .build()?)
            }
            _ => Err(PromqlError::BadData("expected a scalar parameter".into())),
        }
    }

    /// `topk`/`bottomk` rank by value; `limitk` keeps the first `k` series in label order.
    fn top_bottom(&self, keyed: LogicalPlan, op: &str) -> PlanResult {
        let order = match op {
            "bottomk" => RankOrder::Smallest,
            "limitk" => RankOrder::Labels,
            _ => RankOrder::Largest,
        };
        // The node reads (labels, timestamp, value, g, p) by position.
        let input = LogicalPlanBuilder::from(keyed)
            .project(vec![
                col(LABELS),
                col(TIMESTAMP),
                col(VALUE),
                col("g"),
                cast(col("p"), DataType::Float64).alias("p"),
            ])?
            .build()?;
        let schema = Arc::new(DFSchema::try_from(vector_schema().as_ref().clone())?);
        Ok(Planned::Vector(ranked(input, schema, order)))
    }
}

// ---- helpers ---------------------------------------------------------------------------

/// Result labels of a vector-vector operation: the `many` side's labels (name dropped for
/// arithmetic), trimmed to the matching labels for one-to-one `on`/`ignoring`, plus the
/// `group_left`/`group_right` labels copied from the `one` side.
/// `'1'` when any input of a group had its name marked dropped (column `dropped`).
fn any_name_dropped() -> Expr {
    agg::max(l::call(l::name_dropped_udf(), col(LABELS), &[])).alias("dropped")
}

/// An aggregation's result labels: the group, marked when grouping kept a name some input
/// had marked dropped.
/// How an aggregation's rows form groups at each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grouping {
    /// No labels survive (no modifier, or `by ()`): one group per step. Grouping on the
    /// timestamp alone lets DataFusion use its primitive-key hash table; a constant label
    /// column beside it made `count()` five times slower.
    Whole,
    /// By the group label set in column `g`; `by_name` when `by` names `__name__`.
    ByLabels { by_name: bool },
}

impl Grouping {
    fn of(modifier: Option<&LabelModifier>, by_name: bool) -> Grouping {
        match modifier {
            None => Grouping::Whole,
            Some(LabelModifier::Include(names)) if names.labels.is_empty() => Grouping::Whole,
            Some(_) => Grouping::ByLabels { by_name },
        }
    }

    fn keys(self) -> Vec<Expr> {
        match self {
            Grouping::Whole => vec![col(TIMESTAMP)],
            Grouping::ByLabels { .. } => vec![col("g"), col(TIMESTAMP)],
        }
    }

    /// The result's labels column after aggregating.
    fn labels(self) -> Expr {
        match self {
            Grouping::Whole => lit("").alias(LABELS),
            Grouping::ByLabels { by_name: true } => mark_if(col("g"), col("dropped")).alias(LABELS),
            Grouping::ByLabels { by_name: false } => col("g").alias(LABELS),
        }
    }
}

/// `labels`, with the name marked dropped where `flag` is `'1'`.
fn mark_if(labels: Expr, flag: Expr) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(l::mark_if_udf()),
        vec![labels, flag],
    ))
}

/// The labels a filled-in sample gets from the sample it matches: the `on` labels, or all
/// but the `ignoring` ones and `__name__`.
fn matching_labels(labels: Expr, matching: Option<&LabelModifier>) -> Expr {
    match matching {
        Some(LabelModifier::Include(names)) => {
            l::call(l::keep_udf(), labels, &[&names.labels.join(",")])
        }
        Some(LabelModifier::Exclude(names)) => {
            l::call(l::drop_udf(), labels, &[&names.labels.join(",")])
        }
        None => l::call(l::drop_name_udf(), labels, &[]),
    }
}

fn result_labels(
    many: Expr,
    one: Expr,
    card: Option<&VectorMatchCardinality>,
    matching: Option<&LabelModifier>,
    drops_name: bool,
) -> Expr {
    let get = |side: &Expr, name: &str| {
        Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(label_get_udf()),
            vec![side.clone(), lit(name.to_string())],
        ))
    };
    let set = |labels: Expr, name: &str, value: Expr| {
        Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(label_set_dynamic_udf()),
            vec![labels, lit(name.to_string()), value],
        ))
    };
    let mut labels = many.clone();
    let trimmed = match card {
        Some(VectorMatchCardinality::ManyToOne(include))
        | Some(VectorMatchCardinality::OneToMany(include)) => {
            for name in &include.labels {
                labels = set(labels, name, get(&one, name));
            }
            labels
        }
        _ => match matching {
            // As in Prometheus, one-to-one matching `on` keeps only the matching labels,
            // even for a filtering comparison.
            Some(LabelModifier::Include(names)) => {
                l::call(l::keep_udf(), labels, &[&names.labels.join(",")])
            }
            Some(LabelModifier::Exclude(names)) => {
                let trimmed = l::call(l::drop_udf(), labels, &[&names.labels.join(",")]);
                if drops_name {
                    trimmed
                } else {
                    // `drop` also removes __name__ and its mark; filtering comparisons keep
                    // both.
                    let named = set(trimmed, METRIC_NAME_LABEL, get(&many, METRIC_NAME_LABEL));
                    mark_if(named, l::call(l::name_dropped_udf(), many.clone(), &[]))
                }
            }
            None => labels,
        },
    };
    // Marked last, so the metadata labels that trimming kept are dropped with the name.
    if drops_name {
        l::call(l::drop_name_udf(), trimmed, &[])
    } else {
        trimmed
    }
}

fn step_node(
    input: LogicalPlan,
    steps: Steps,
    window: Window,
    notes: StepNotes,
) -> Result<LogicalPlan, PromqlError> {
    step_node_naming(input, (steps, window), false, notes)
}

/// [`step_node`] whose output marks `__name__` dropped when `drop_name`.
fn step_node_naming(
    input: LogicalPlan,
    (steps, window): (Steps, Window),
    drop_name: bool,
    notes: StepNotes,
) -> Result<LogicalPlan, PromqlError> {
    let schema = Arc::new(DFSchema::try_from(step_schema().as_ref().clone())?);
    Ok(LogicalPlan::Extension(Extension {
        node: Arc::new(PromStep {
            input,
            schema,
            steps,
            window,
            drop_name,
            notes,
        }),
    }))
}

/// Data times `(min, max]` the steps read, widened by `window`.
fn data_bounds(steps: &Steps, window: i64) -> (i64, i64) {
    let times: Vec<i64> = steps
        .times()
        .map(|t| steps.at.unwrap_or(t) - steps.offset)
        .collect();
    let min = times.iter().copied().min().unwrap_or(0);
    let max = times.iter().copied().max().unwrap_or(0);
    (min - window, max)
}

pub fn metric_name(vs: &VectorSelector) -> Option<String> {
    if let Some(name) = &vs.name {
        return Some(name.clone());
    }
    vs.matchers
        .matchers
        .iter()
        .find(|m| m.name == METRIC_NAME_LABEL && matches!(m.op, MatchOp::Equal))
        .map(|m| m.value.clone())
}

/// Storage's selector for a PromQL vector selector: its metric name as a `__name__`
/// matcher, without the reserved matcher that carries `anchored`/`smoothed`.
pub fn to_selector(vs: &VectorSelector) -> Selector {
    // As Prometheus 3: `.` in a matcher matches newlines too (the parser's compiled form
    // does not; it stays when the value does not compile so, as `{a}` the parser escaped).
    let dotall = |value: &str, parsed: &regex::Regex| {
        crate::gocompat::regex::compile_matcher(value).unwrap_or_else(|_| parsed.clone())
    };
    let convert = |ms: &[Matcher]| -> Vec<model::Matcher> {
        let mut out: Vec<model::Matcher> = ms
            .iter()
            .filter(|m| m.name != MODE_LABEL)
            .map(|m| model::Matcher {
                name: m.name.clone(),
                value: m.value.clone(),
                kind: match &m.op {
                    MatchOp::Equal => model::MatchKind::Equal,
                    MatchOp::NotEqual => model::MatchKind::NotEqual,
                    MatchOp::Re(r) => model::MatchKind::Regex(dotall(&m.value, r)),
                    MatchOp::NotRe(r) => model::MatchKind::NotRegex(dotall(&m.value, r)),
                },
            })
            .collect();
        if let Some(name) = &vs.name {
            out.push(model::Matcher::equal(METRIC_NAME_LABEL, name));
        }
        out
    };
    if vs.matchers.or_matchers.is_empty() {
        Selector::new(convert(&vs.matchers.matchers))
    } else {
        Selector {
            alternatives: vs.matchers.or_matchers.iter().map(|g| convert(g)).collect(),
        }
    }
}

/// Labels `absent()` reports: those with exactly one matcher, an equality one.
fn absent_labels(vs: &VectorSelector) -> String {
    let matchers = &vs.matchers.matchers;
    let pairs: Vec<(String, String)> = matchers
        .iter()
        .filter(|m| {
            matches!(m.op, MatchOp::Equal) && m.name != METRIC_NAME_LABEL && m.name != MODE_LABEL
        })
        .filter(|m| matchers.iter().filter(|o| o.name == m.name).count() == 1)
        .map(|m| (m.name.clone(), m.value.clone()))
        .collect();
    l::encode_owned(pairs)
}

/// The `@` and offset that pin when `info()` reads its info series: those of the first
/// selector in `expr`, plus the offsets of the subqueries around it up to one with an `@`.
fn info_reference(expr: &PromExpr) -> Option<(Option<AtModifier>, Option<Offset>)> {
    match expr {
        PromExpr::VectorSelector(vs) => Some((vs.at.clone(), vs.offset.clone())),
        PromExpr::MatrixSelector(ms) => Some((ms.vs.at.clone(), ms.vs.offset.clone())),
        PromExpr::Subquery(sq) => {
            let (at, offset) = info_reference(&sq.expr)?;
            if at.is_some() {
                return Some((at, offset));
            }
            let total = offset_ms(&offset) + offset_ms(&sq.offset);
            Some((sq.at.clone(), offset_of_ms(total)))
        }
        PromExpr::Paren(p) => info_reference(&p.expr),
        PromExpr::Unary(u) => info_reference(&u.expr),
        PromExpr::Call(c) => c.args.args.iter().find_map(|a| info_reference(a)),
        PromExpr::Aggregate(a) => a
            .param
            .as_deref()
            .and_then(info_reference)
            .or_else(|| info_reference(&a.expr)),
        PromExpr::Binary(b) => info_reference(&b.lhs).or_else(|| info_reference(&b.rhs)),
        _ => None,
    }
}

fn offset_of_ms(ms: i64) -> Option<Offset> {
    let d = Duration::from_millis(ms.unsigned_abs());
    match ms {
        0 => None,
        ms if ms > 0 => Some(Offset::Pos(d)),
        _ => Some(Offset::Neg(d)),
    }
}

/// A float as OpenMetrics writes it in a label: `1.0`, `0.25`, `+Inf`, `NaN`.
fn open_metrics_float(v: f64) -> String {
    match v {
        v if v.is_nan() => "NaN".into(),
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        v if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.1}"),
        v => v.to_string(),
    }
}

pub(super) fn strip_parens(expr: &PromExpr) -> &PromExpr {
    match expr {
        PromExpr::Paren(p) => strip_parens(&p.expr),
        other => other,
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(super) fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        Some(Offset::Pos(d)) => duration_ms(*d),
        Some(Offset::Neg(d)) => -duration_ms(*d),
        None => 0,
    }
}

pub(super) fn system_time_ms(t: std::time::SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => duration_ms(d),
        Err(e) => -duration_ms(e.duration()),
    }
}

/// A parameter that is a constant expression (`0.5`, `-1`, `1./6.`), evaluated now.
pub(super) fn const_arg(expr: Option<&PromExpr>) -> Result<f64, PromqlError> {
    match expr.map(strip_parens) {
        Some(PromExpr::NumberLiteral(n)) => Ok(n.val),
        Some(PromExpr::Unary(u)) => const_arg(Some(&u.expr)).map(|v| -v),
        Some(PromExpr::Binary(b)) => {
            let (l, r) = (const_arg(Some(&b.lhs))?, const_arg(Some(&b.rhs))?);
            scalar_op(&b.op.to_string(), l, r)
                .ok_or_else(|| PromqlError::Unsupported("a non-constant scalar parameter".into()))
        }
        _ => Err(PromqlError::Unsupported(
            "a non-constant scalar parameter".into(),
        )),
    }
}

fn string_args(args: &[&PromExpr]) -> Result<Vec<String>, PromqlError> {
    args.iter()
        .map(|a| match strip_parens(a) {
            PromExpr::StringLiteral(s) => Ok(s.val.clone()),
            _ => Err(PromqlError::BadData("expected a string argument".into())),
        })
        .collect()
}

fn replace_labels(plan: LogicalPlan, labels: Expr) -> Result<LogicalPlan, PromqlError> {
    Ok(LogicalPlanBuilder::from(plan)
        .project(vec![labels.alias(LABELS), col(TIMESTAMP), col(VALUE)])?
        .build()?)
}

/// Applies `f` to the value column (or folds a constant); `drops_name` for functions and
/// arithmetic, which remove the metric name.
fn map_value(planned: Planned, f: impl Fn(Expr) -> Expr, drops_name: bool) -> PlanResult {
    match planned {
        Planned::Const(c) => {
            let folded = fold_constant(f(lit(c)))?;
            Ok(Planned::Const(folded))
        }
        Planned::Vector(p) => {
            let labels = if drops_name {
                l::call(l::drop_name_udf(), col(LABELS), &[])
            } else {
                col(LABELS)
            };
            let plan = LogicalPlanBuilder::from(p)
                .project(vec![
                    labels.alias(LABELS),
                    col(TIMESTAMP),
                    f(col(VALUE)).alias(VALUE),
                ])?
                .build()?;
            Ok(Planned::Vector(plan))
        }
        Planned::Scalar(p) => {
            let plan = LogicalPlanBuilder::from(p)
                .project(vec![
                    col(LABELS),
                    col(TIMESTAMP),
                    f(col(VALUE)).alias(VALUE),
                ])?
                .build()?;
            Ok(Planned::Scalar(plan))
        }
        _ => Err(PromqlError::BadData(
            "expected a number or an instant vector".into(),
        )),
    }
}

/// Evaluates a constant expression now.
fn fold_constant(expr: Expr) -> Result<f64, PromqlError> {
    let props = datafusion::optimizer::simplify_expressions::ExprSimplifier::new(
        datafusion::optimizer::simplify_expressions::SimplifyContext::default(),
    );
    match props.simplify(expr)? {
        Expr::Literal(ScalarValue::Float64(Some(v)), _) => Ok(v),
        Expr::Literal(ScalarValue::Float64(None), _) => Ok(f64::NAN),
        other => Err(PromqlError::Unsupported(format!(
            "constant folding of {other}"
        ))),
    }
}

fn scalar_op(op: &str, a: f64, b: f64) -> Option<f64> {
    Some(match op {
        "+" => a + b,
        "-" => a - b,
        "*" => a * b,
        "/" => a / b,
        "%" => a % b,
        "^" => a.powf(b),
        "atan2" => a.atan2(b),
        "==" => f64::from(a == b),
        "!=" => f64::from(a != b),
        ">" => f64::from(a > b),
        "<" => f64::from(a < b),
        ">=" => f64::from(a >= b),
        "<=" => f64::from(a <= b),
        _ => return None,
    })
}

fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

/// The DataFusion expression for a PromQL arithmetic or comparison operator.
fn arith(op: &str, a: Expr, b: Expr) -> Expr {
    let f = |o: Operator| binary_expr(a.clone(), o, b.clone());
    match op {
        "+" => f(Operator::Plus),
        "-" => f(Operator::Minus),
        "*" => f(Operator::Multiply),
        "/" => f(Operator::Divide),
        "%" => f(Operator::Modulo),
        "^" => datafusion::functions::math::expr_fn::power(a, b),
        "atan2" => datafusion::functions::math::expr_fn::atan2(a, b),
        "==" => f(Operator::Eq).and(not_nan(a)),
        "!=" => f(Operator::NotEq).or(is_nan(a)),
        ">" => ordered(f(Operator::Gt), a, b),
        "<" => ordered(f(Operator::Lt), a, b),
        ">=" => ordered(f(Operator::GtEq), a, b),
        "<=" => ordered(f(Operator::LtEq), a, b),
        _ => f(Operator::Plus),
    }
}

// DataFusion orders floats totally (NaN equals NaN and sorts above everything); PromQL
// compares as IEEE 754 does, where every comparison with NaN but `!=` is false.

fn is_nan(v: Expr) -> Expr {
    datafusion::functions::math::expr_fn::isnan(v)
}

fn not_nan(v: Expr) -> Expr {
    Expr::Not(Box::new(is_nan(v)))
}

fn ordered(comparison: Expr, a: Expr, b: Expr) -> Expr {
    comparison.and(not_nan(a)).and(not_nan(b))
}

fn math_function(name: &str) -> Option<fn(Expr) -> Expr> {
    use datafusion::functions::math::expr_fn as m;
    Some(match name {
        "abs" => m::abs,
        "ceil" => m::ceil,
        "floor" => m::floor,
        "exp" => m::exp,
        "ln" => m::ln,
        "log2" => m::log2,
        "log10" => m::log10,
        "sqrt" => m::sqrt,
        "sgn" => m::signum,
        "sin" => m::sin,
        "cos" => m::cos,
        "tan" => m::tan,
        "asin" => m::asin,
        "acos" => m::acos,
        "atan" => m::atan,
        "sinh" => m::sinh,
        "cosh" => m::cosh,
        "tanh" => m::tanh,
        "asinh" => m::asinh,
        "acosh" => m::acosh,
        "atanh" => m::atanh,
        "deg" => m::degrees,
        "rad" => m::radians,
        _ => return None,
    })
}

fn clamp_expr(v: Expr, lo: f64, hi: f64) -> Expr {
    when(v.clone().lt(lit(lo)), lit(lo))
        .when(v.clone().gt(lit(hi)), lit(hi))
        .otherwise(v)
        .unwrap_or_else(|e| lit(e.to_string()))
}

fn round_expr(v: Expr, to: f64) -> Expr {
    // Prometheus rounds half up through the inverse: floor(v * (1/to) + 0.5) / (1/to).
    let inverse = 1.0 / to;
    datafusion::functions::math::expr_fn::floor(v * lit(inverse) + lit(0.5)) / lit(inverse)
}

fn join_on_time(a: LogicalPlan, b: LogicalPlan) -> Result<LogicalPlan, PromqlError> {
    let a = LogicalPlanBuilder::from(a).alias("l")?.build()?;
    let b = LogicalPlanBuilder::from(b).alias("r")?.build()?;
    Ok(LogicalPlanBuilder::from(a)
        .join(
            b,
            JoinType::Inner,
            (vec!["l.timestamp"], vec!["r.timestamp"]),
            None,
        )?
        .build()?)
}

/// `prom_label_get(labels, name)` (name a literal).
fn label_get_udf() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    create_udf(
        "prom_label_get",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let name = match &args[1] {
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(n))) => n.clone(),
                _ => String::new(),
            };
            let arrays = ColumnarValue::values_to_arrays(&args[..1])?;
            let labels = arrays[0]
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| {
                    datafusion::error::DataFusionError::Internal("labels not Utf8".into())
                })?;
            let mut out = arrow::array::StringBuilder::with_capacity(
                arrow::array::Array::len(labels),
                labels.value_data().len(),
            );
            for s in labels.iter() {
                out.append_option(s.map(|s| l::get(s, &name).unwrap_or("")));
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish())))
        }),
    )
}

/// `prom_label_set_dynamic(labels, name, value)` with a per-row value.
fn label_set_dynamic_udf() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    create_udf(
        "prom_label_set_dynamic",
        vec![DataType::Utf8, DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let name = match &args[1] {
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(n))) => n.clone(),
                _ => String::new(),
            };
            let arrays = ColumnarValue::values_to_arrays(&[args[0].clone(), args[2].clone()])?;
            let labels = arrays[0].as_any().downcast_ref::<StringArray>();
            let values = arrays[1].as_any().downcast_ref::<StringArray>();
            let (Some(labels), Some(values)) = (labels, values) else {
                return Err(datafusion::error::DataFusionError::Internal(
                    "labels not Utf8".into(),
                ));
            };
            let mut out = arrow::array::StringBuilder::with_capacity(
                arrow::array::Array::len(labels),
                labels.value_data().len(),
            );
            // A series' rows come together: reuse the last answer while the input repeats.
            let mut last: Option<((&str, &str), String)> = None;
            for (s, v) in labels.iter().zip(values.iter()) {
                let Some(s) = s else {
                    out.append_null();
                    continue;
                };
                let key = (s, v.unwrap_or(""));
                match &last {
                    Some((prev, answer)) if *prev == key => out.append_value(answer),
                    _ => {
                        let answer = l::set(s, &name, key.1);
                        out.append_value(&answer);
                        last = Some((key, answer));
                    }
                }
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish())))
        }),
    )
}

/// What a downsampled window's row stands for in a selector's samples (Thanos's choice
/// per function): its `counter` for counter functions, its `max`, `min`, `sum` or `count`
/// for the matching `*_over_time`, and its average otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Avg,
    Sum,
    Min,
    Max,
    Count,
    Counter,
}

impl Aggregate {
    fn for_function(func: RangeFunc) -> Aggregate {
        match func {
            RangeFunc::Rate | RangeFunc::Increase | RangeFunc::Irate | RangeFunc::Resets => {
                Aggregate::Counter
            }
            RangeFunc::MaxOverTime => Aggregate::Max,
            RangeFunc::MinOverTime => Aggregate::Min,
            RangeFunc::SumOverTime => Aggregate::Sum,
            RangeFunc::CountOverTime => Aggregate::Count,
            _ => Aggregate::Avg,
        }
    }

    /// The value column of `table`'s downsampled rows.
    fn value(self, table: &str) -> Expr {
        let c = |name: &str| col(format!("{table}.{name}"));
        match self {
            Aggregate::Avg => c("sum") / cast(c("count"), DataType::Float64),
            Aggregate::Sum => c("sum"),
            Aggregate::Min => c("min"),
            Aggregate::Max => c("max"),
            Aggregate::Count => cast(c("count"), DataType::Float64),
            Aggregate::Counter => c("counter"),
        }
    }
}
