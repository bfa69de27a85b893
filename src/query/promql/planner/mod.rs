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

use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DFSchema, JoinType, ScalarValue};
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

use crate::model::{self, METRIC_NAME_LABEL, Selector};
use crate::query::scan::{DownsampledSamples, HISTOGRAM, RawSamples, START_TIMESTAMP};
use crate::storage::Storage;
use crate::storage::downsample::{RES_1H, RES_5M};

use super::PromqlError;
use super::aggregates::{BucketKernel, BucketNotes, Kernel, format_value_udf};
use super::extended;
use super::functions::RangeFunc;
use super::info::{InfoSpec, PromInfo};
use super::labels::{self as l};
use super::native::HistogramStat;
use super::ops::{AggregateOp, BinaryOp};
use super::prepared;
use super::rank::{RankOrder, ranked};
use super::step::{Emit, Param, PromStep, StepNotes, Steps, Window, param_labels};
use super::syntax::{MODE_LABEL, SelectorMode, selector_mode};
use super::unique::{self, Check, Violation};

mod aggregations;
mod functions;
mod helpers;
mod operators;
mod selectors;

pub use helpers::*;
use selectors::SampleColumns;

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

/// [`step_schema`] with the native histograms an instant selection picked (`histogram`,
/// null on a float's row, whose value is then the one not null).
pub fn step_schema_with_histograms() -> SchemaRef {
    let mut fields: Vec<Field> = step_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(
        crate::query::scan::HISTOGRAM,
        crate::storage::histogram_arrow::histogram_type(),
        true,
    ));
    Arc::new(Schema::new(fields))
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

/// How the selectors being planned decode native histograms, as Prometheus decides from
/// the expressions above them (`detectHistogramStatsDecoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistogramDecoding {
    #[default]
    Full,
    /// Under `histogram_count`, `histogram_sum` or `histogram_avg`: the statistics alone,
    /// with hints from the counts (see `PromStep::stats_hints`).
    Stats,
    /// Under a subquery, a quantile or fraction, or a trim: in full, whatever is below.
    FullForced,
}

/// Plans one query over `[start, end]` at `step`.
#[derive(Clone)]
pub struct Planner {
    pub storage: Arc<Storage>,
    pub start: i64,
    pub end: i64,
    pub step: i64,
    /// The query's own start and end, which `@ start()` and `@ end()` name (a subquery's
    /// planner has other `start` and `end`).
    pub query_bounds: (i64, i64),
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
    /// Whether storage held any native histogram when the query was planned (read once:
    /// without one, no expression is planned for histograms).
    pub any_histograms: bool,
    pub decoding: HistogramDecoding,
    /// Set when the plan holds something of its evaluation time that a prepared plan
    /// cannot move (see [`super::prepared`]).
    pub time_pinned: Arc<std::sync::atomic::AtomicBool>,
}

type PlanResult = Result<Planned, PromqlError>;

/// Which data a query reads: the downsampled copies of `ms` where they exist (0: raw
/// samples only) and raw samples elsewhere; with `fill_gaps`, coarser copies too where
/// neither exists (raw data or finer copies past their retention).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    /// Plans a whole query: a selector (or a range function of one) that is the query's
    /// result keeps its native histograms (the other expressions evaluate float samples
    /// only, for now).
    pub async fn plan_query(&self, expr: &PromExpr) -> PlanResult {
        match self
            .plan_keeping_histograms(expr, self.steps(0, None))
            .await
        {
            Some(planned) => planned,
            None => self.plan(expr).await,
        }
    }

    /// `expr` planned with its native histograms when it is a selector or a range function
    /// that evaluates them over a range selector (in parentheses or not); None for other
    /// expressions, and when storage holds no native histogram at all. Callers that get
    /// None (or a plan without a `histogram` column) plan the expression for floats, so an
    /// expression over histogram-free metrics may be planned twice while storage holds
    /// histograms of other metrics.
    pub(super) async fn plan_keeping_histograms(
        &self,
        expr: &PromExpr,
        steps: Steps,
    ) -> Option<PlanResult> {
        // Without a native histogram anywhere, nothing is planned twice.
        if !self.any_histograms {
            return None;
        }
        match expr {
            PromExpr::Paren(p) => Box::pin(self.plan_keeping_histograms(&p.expr, steps)).await,
            PromExpr::VectorSelector(vs) => Some(
                self.vector_selector(vs, &steps, true)
                    .await
                    .map(Planned::Vector),
            ),
            PromExpr::MatrixSelector(ms) => {
                Some(self.matrix_selector(ms, true).await.map(Planned::Matrix))
            }
            PromExpr::Aggregate(a) => Box::pin(self.histogram_aggregate(a, steps)).await,
            PromExpr::Binary(b) => Some(Box::pin(self.binary_keeping_histograms(b, steps)).await),
            PromExpr::Unary(u) => Box::pin(self.histogram_negated(u, steps)).await,
            // A subquery that is the query's result.
            PromExpr::Subquery(sq) => Some(
                Box::pin(self.subquery(sq, &steps, true))
                    .await
                    .map(|(rows, _, _)| Planned::Matrix(rows)),
            ),
            PromExpr::Call(call) => {
                let func = RangeFunc::from_name(call.func.name)?;
                let args: Vec<&PromExpr> = call.args.args.iter().map(|a| a.as_ref()).collect();
                let range_arg = args.first()?;
                let range = strip_parens(range_arg);
                let over_range =
                    matches!(range, PromExpr::MatrixSelector(_) | PromExpr::Subquery(_));
                if !over_range || !super::native::reads_histograms(func) {
                    return None;
                }
                Some(self.range_function_with(func, &args, steps, true).await)
            }
            _ => None,
        }
    }

    /// This planner for the expressions under one that decodes histograms as `decoding`
    /// says (a forced full decoding stays).
    pub(super) fn decoding(&self, decoding: HistogramDecoding) -> Planner {
        let decoding = match self.decoding {
            HistogramDecoding::FullForced => HistogramDecoding::FullForced,
            _ => decoding,
        };
        Planner {
            decoding,
            ..self.clone()
        }
    }

    /// `plan`, a selector's step node, reading histograms with the hints of statistics-only
    /// decoding when this planner decodes so.
    pub(super) fn decoded(&self, plan: LogicalPlan) -> LogicalPlan {
        match &plan {
            LogicalPlan::Extension(e) if self.decoding == HistogramDecoding::Stats => {
                match e.node.as_any().downcast_ref::<super::step::PromStep>() {
                    Some(step) => LogicalPlan::Extension(Extension {
                        node: Arc::new(super::step::PromStep {
                            stats_hints: true,
                            ..step.clone()
                        }),
                    }),
                    None => plan,
                }
            }
            _ => plan,
        }
    }

    /// Records a warning annotation.
    pub(super) fn warn(&self, message: String) {
        if let Ok(mut w) = self.warnings.lock() {
            w.push(format!("PromQL warning: {message}"));
        }
    }

    /// Where `expr` starts in the query, as Prometheus cites it: ` (line:column)`. The parser
    /// keeps no positions, so this finds the expression's text; the first occurrence is taken.
    pub(super) fn position(&self, expr: &PromExpr) -> String {
        let text = super::syntax::written_selector(expr).unwrap_or_else(|| expr.to_string());
        let Some(offset) = self.source.find(&text) else {
            return String::new();
        };
        let before = &self.source[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!(" ({line}:{column})")
    }

    /// Whether `name`, a string argument of this query, is a label name PromQL accepts:
    /// Prometheus 3.x takes any non-empty UTF-8 string.
    pub(super) fn is_label_name(&self, name: &str) -> bool {
        crate::model::is_valid_utf8_label_name(name)
            && !super::syntax::non_utf8_literals(&self.source)
                .iter()
                .any(|s| s == name)
    }

    /// Warns, as Prometheus does, about a constant quantile outside [0, 1].
    pub(super) fn check_quantile(&self, q: f64, expr: &PromExpr) {
        if q.is_nan() || !(0.0..=1.0).contains(&q) {
            self.warn(format!(
                "quantile value should be between 0 and 1, got {}{}",
                super::aggregates::format_float(q),
                self.position(expr)
            ));
        }
    }

    /// Marks the plan as tied to its evaluation time: it is not kept to run at others.
    pub(super) fn pin_time(&self) {
        (self.time_pinned).store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the plan can run at another evaluation time (see [`super::prepared`]).
    pub fn movable_in_time(&self) -> bool {
        !self.time_pinned.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn steps(&self, offset: i64, at: Option<i64>) -> Steps {
        Steps {
            start: self.start,
            end: self.end,
            step: self.step,
            offset,
            at,
        }
    }

    pub(super) fn plan_at<'a>(
        &'a self,
        expr: &'a PromExpr,
        steps: Steps,
    ) -> BoxFuture<'a, PlanResult> {
        async move {
            match expr {
                PromExpr::NumberLiteral(n) => Ok(Planned::Const(n.val)),
                PromExpr::StringLiteral(s) => Ok(Planned::String(s.val.clone())),
                PromExpr::Paren(p) => self.plan_at(&p.expr, steps).await,
                PromExpr::Unary(u) => {
                    let inner = self.plan_at(&u.expr, steps).await?;
                    map_value(inner, |v| Expr::Negative(Box::new(v)), true)
                }
                // Selected with any native histograms, which are left out only after the
                // step picked each series' newest sample: a histogram newer than a float
                // hides it, as in Prometheus.
                PromExpr::VectorSelector(vs) => self
                    .vector_selector(vs, &steps, true)
                    .await
                    .and_then(floats_only)
                    .map(Planned::Vector),
                PromExpr::MatrixSelector(ms) => {
                    self.matrix_selector(ms, false).await.map(Planned::Matrix)
                }
                PromExpr::Call(call) => self.call(call, steps).await,
                PromExpr::Binary(b) => self.binary(b, steps).await,
                PromExpr::Aggregate(a) => self.aggregate(a, steps).await,
                // The query's result (only an instant query may have a range vector
                // as its result): the inner expression at the subquery's steps.
                PromExpr::Subquery(sq) => {
                    let (rows, _, _) = self.subquery(sq, &steps, false).await?;
                    Ok(Planned::Matrix(rows))
                }
                PromExpr::Extension(_) => {
                    Err(PromqlError::Unsupported("extension expressions".into()))
                }
            }
        }
        .boxed()
    }
}
