//! PromQL: parsed with `promql-parser`, planned into DataFusion logical plans
//! ([`planner`]), executed by DataFusion with Quiver's [`step::PromStepExec`] node, and
//! assembled into Prometheus's result types.

pub mod aggregates;
mod bounds;
mod collect;
pub mod extended;
pub mod functions;
pub mod info;
pub mod labels;
pub mod math;
pub mod native;
pub mod native_binary;
pub mod ops;
pub mod planner;
mod prepared;
pub mod rank;
pub mod select;
mod series_join;
mod session;
pub mod sql_functions;
pub mod step;
pub mod syntax;
mod time_window;
pub mod to_sql;
pub mod unique;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::common::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::LogicalPlan;
use promql_parser::parser::Expr as PromExpr;
use promql_parser::parser::value::ValueType;

use crate::storage::Storage;

use planner::{Planned, Planner};
use session::PromSession;

/// PromQL's default lookback delta.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(300);

/// Why a query failed; maps onto Prometheus's `errorType`s.
#[derive(Debug, thiserror::Error)]
pub enum PromqlError {
    #[error("{0}")]
    BadData(String),
    #[error("{0}")]
    Execution(String),
    #[error("not supported yet: {0}")]
    Unsupported(String),
    #[error("query timed out")]
    Timeout,
}

impl From<arrow::error::ArrowError> for PromqlError {
    fn from(e: arrow::error::ArrowError) -> Self {
        PromqlError::Execution(e.to_string())
    }
}

impl From<DataFusionError> for PromqlError {
    fn from(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::ResourcesExhausted(m) if m == step::TOO_MANY_SAMPLES => {
                PromqlError::Execution(m.clone())
            }
            // Our plan nodes fail with Prometheus's own wording; keep it unprefixed.
            DataFusionError::Execution(m) => PromqlError::Execution(m.clone()),
            _ => PromqlError::Execution(e.to_string()),
        }
    }
}

/// What `/api/v1/explain` shows.
#[derive(Debug)]
pub struct Explanation {
    /// The optimized DataFusion logical plan.
    pub plan: String,
    /// The equivalent SQL, or why the query has none.
    pub sql: Result<String, String>,
}

/// One series of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: crate::model::Labels,
    /// (timestamp ms, value); exactly one point (or histogram) for instant vectors.
    pub points: Vec<(i64, f64)>,
    /// (timestamp ms, native histogram), for the expressions that evaluate them (a
    /// selector that is the query's result); empty otherwise.
    pub histograms: Vec<(i64, Arc<crate::model::Histogram>)>,
}

/// A result with the annotations Prometheus would attach.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub value: PromValue,
    /// `PromQL warning: ...` texts.
    pub warnings: Vec<String>,
    /// `PromQL info: ...` texts.
    pub infos: Vec<String>,
}

/// A query result in Prometheus's value types.
#[derive(Debug, Clone, PartialEq)]
pub enum PromValue {
    Vector(Vec<Series>),
    Matrix(Vec<Series>),
    Scalar(i64, f64),
    String(i64, String),
}

/// Below this many selected series a query runs in one partition: a second one then costs
/// more in repartitioning than it saves (about 1 ms of 10 on the benchmark's light
/// queries).
const SMALL_QUERY_SERIES: usize = 300;

/// Evaluates PromQL over a storage.
pub struct PromqlEngine {
    storage: Arc<Storage>,
    /// Two partitions, for queries over many series.
    ctx: PromSession,
    /// One partition, for small queries.
    small: PromSession,
    /// Parsed queries by text and `step()`/`range()`: rules and dashboards send the same
    /// text again and again, and parsing it (with a regex compiled for each `=~` matcher)
    /// is a tenth of a small query's cost.
    parsed: moka::sync::Cache<(String, syntax::QueryTimes), Arc<PromExpr>>,
    /// Instant queries' physical plans by text, to run again at other times (see
    /// [`prepared`]).
    prepared: moka::sync::Cache<prepared::PreparedKey, Arc<prepared::PreparedPlan>>,
    /// Evaluations that ran a prepared plan.
    prepared_runs: std::sync::atomic::AtomicU64,
}

/// Weight the prepared-plan cache holds at most (see [`prepared::PreparedPlan::weight`]).
const PREPARED_CACHE_WEIGHT: u64 = 64 << 20;

/// Bytes of query text the parsed-query cache holds at most (each entry counts its text
/// and 1 KiB for the syntax tree).
const PARSED_CACHE_BYTES: u64 = 16 << 20;

impl PromqlEngine {
    /// `runtime` must have the block object store registered (share the SQL engine's).
    pub fn new(
        storage: Arc<Storage>,
        runtime: Arc<RuntimeEnv>,
        max_samples: usize,
    ) -> PromqlEngine {
        PromqlEngine {
            storage,
            ctx: PromSession::new(&runtime, 2, max_samples),
            small: PromSession::new(&runtime, 1, max_samples),
            parsed: moka::sync::Cache::builder()
                .max_capacity(PARSED_CACHE_BYTES)
                .weigher(|(text, _): &(String, syntax::QueryTimes), _| {
                    u32::try_from(text.len() + 1024).unwrap_or(u32::MAX)
                })
                .build(),
            prepared: moka::sync::Cache::builder()
                .max_capacity(PREPARED_CACHE_WEIGHT)
                .weigher(|_, plan: &Arc<prepared::PreparedPlan>| plan.weight())
                .build(),
            prepared_runs: Default::default(),
        }
    }

    /// The session a planned query runs in: see [`SMALL_QUERY_SERIES`].
    fn context_for(&self, planner: &Planner) -> &PromSession {
        let series = planner
            .selected_series
            .load(std::sync::atomic::Ordering::Relaxed);
        if series < SMALL_QUERY_SERIES {
            &self.small
        } else {
            &self.ctx
        }
    }

    /// Parses PromQL with Prometheus's error texts, as for an instant query (`step()` and
    /// `range()` are 0).
    pub fn parse(query: &str) -> Result<PromExpr, PromqlError> {
        Self::parse_for(query, syntax::QueryTimes::default())
    }

    /// Parses PromQL for a query whose `step()` and `range()` are `times`.
    pub fn parse_for(query: &str, times: syntax::QueryTimes) -> Result<PromExpr, PromqlError> {
        crate::query::complexity::check(syntax::operators(query)).map_err(PromqlError::BadData)?;
        let text = syntax::rewrite(query, times).map_err(PromqlError::BadData)?;
        let expr = promql_parser::parser::parse(&text).map_err(PromqlError::BadData)?;
        bounds::check(&expr).map_err(PromqlError::BadData)?;
        Ok(expr)
    }

    /// [`PromqlEngine::parse_for`], remembered: the same text parses to the same tree.
    fn parse_cached(
        &self,
        query: &str,
        times: syntax::QueryTimes,
    ) -> Result<Arc<PromExpr>, PromqlError> {
        let key = (query.to_string(), times);
        if let Some(expr) = self.parsed.get(&key) {
            return Ok(expr);
        }
        let expr = Arc::new(Self::parse_for(query, times)?);
        self.parsed.insert(key, expr.clone());
        Ok(expr)
    }

    /// An instant query at `time_ms`.
    pub async fn instant(
        &self,
        query: &str,
        time_ms: i64,
        lookback: Duration,
    ) -> Result<PromValue, PromqlError> {
        self.instant_annotated(query, time_ms, lookback, SourceResolution::Raw)
            .await
            .map(|e| e.value)
    }

    /// An instant query with its annotations. Its step is 0, which `step()` returns.
    pub async fn instant_annotated(
        &self,
        query: &str,
        time_ms: i64,
        lookback: Duration,
        resolution: SourceResolution,
    ) -> Result<Evaluation, PromqlError> {
        let expr = self.parse_cached(query, syntax::QueryTimes::default())?;
        let span = (time_ms, time_ms, 0);
        self.evaluate(query, &expr, span, lookback, resolution, true)
            .await
    }

    /// A range query; `step_ms` > 0.
    pub async fn range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        lookback: Duration,
    ) -> Result<PromValue, PromqlError> {
        let raw = SourceResolution::Raw;
        self.range_annotated(query, start_ms, end_ms, step_ms, lookback, raw)
            .await
            .map(|e| e.value)
    }

    /// A range query with its annotations; `resolution` picks the downsampled data it may
    /// read.
    pub async fn range_annotated(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        lookback: Duration,
        resolution: SourceResolution,
    ) -> Result<Evaluation, PromqlError> {
        let times = syntax::QueryTimes {
            step_ms,
            range_ms: end_ms - start_ms,
        };
        let expr = self.parse_cached(query, times)?;
        if expr.value_type() != ValueType::Vector && expr.value_type() != ValueType::Scalar {
            return Err(PromqlError::BadData(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                value_type_name(expr.value_type())
            )));
        }
        let span = (start_ms, end_ms, step_ms);
        self.evaluate(query, &expr, span, lookback, resolution, false)
            .await
    }

    /// Raw samples (staleness markers included) of the series `selector` selects with
    /// timestamps in `(min, max]`, for remote read and federation.
    /// Raw samples of the series `selector` picks in `(min, max]`, native histograms
    /// included (for remote read and federation).
    pub async fn raw_series(
        &self,
        selector: &promql_parser::parser::VectorSelector,
        min: i64,
        max: i64,
    ) -> Result<Vec<Series>, PromqlError> {
        let raw = SourceResolution::Raw.pick(0);
        let planner = self.planner("", (min, max, 1), DEFAULT_LOOKBACK, raw);
        let plan = planner.raw_samples_with(selector, min, max, true).await?;
        self.run(plan, &planner).await
    }

    /// The optimized DataFusion plan an instant query at `time_ms` runs as, and the SQL
    /// over the metric tables that gives the same result (or why there is none), for
    /// `/api/v1/explain`.
    pub async fn explain(&self, query: &str, time_ms: i64) -> Result<Explanation, PromqlError> {
        let expr = Self::parse(query)?;
        let raw = SourceResolution::Raw.pick(0);
        let planner = self.planner(query, (time_ms, time_ms, 0), DEFAULT_LOOKBACK, raw);
        let plan = match planner.plan(&expr).await? {
            Planned::Vector(plan) | Planned::Scalar(plan) | Planned::Matrix(plan) => {
                let optimized = self.ctx.state().optimize(&plan)?;
                optimized.display_indent().to_string()
            }
            Planned::Const(c) => format!("constant {c}"),
            Planned::String(s) => format!("string {s:?}"),
        };
        let sql = self.equivalent_sql(&expr, time_ms).await;
        Ok(Explanation { plan, sql })
    }

    /// Runs the query over `[start, end]` every `step` (an instant query when `step` is 0)
    /// and shows where its time went: planning and execution, then the physical plan with
    /// each operator's rows and compute time. For `/api/v1/explain?analyze=true`.
    pub async fn analyze(
        &self,
        query: &str,
        (start, end, step): (i64, i64, i64),
        resolution: SourceResolution,
    ) -> Result<String, PromqlError> {
        let began = std::time::Instant::now();
        let series_before = self.storage.series_cache_counts();
        let times = syntax::QueryTimes {
            step_ms: step,
            range_ms: end - start,
        };
        let expr = Self::parse_for(query, times)?;
        let planner = self.planner(
            query,
            (start, end, step),
            DEFAULT_LOOKBACK,
            resolution.pick(step),
        );
        let plan = match planner.plan(&expr).await? {
            Planned::Vector(plan) | Planned::Scalar(plan) | Planned::Matrix(plan) => plan,
            Planned::Const(_) | Planned::String(_) => {
                return Ok("a constant: nothing to execute\n".to_string());
            }
        };
        let translated = began.elapsed();
        let ctx = self.context_for(&planner);
        // This query's reads of block objects are counted on their way through the cache.
        let fetch = Arc::new(crate::storage::cache::FetchStats::default());
        let runtime = crate::query::scan::runtime_reading_blocks_from(
            ctx.state().runtime_env(),
            self.storage.observed_object_store(fetch.clone()),
        )?;
        let state = SessionStateBuilder::new_from_existing(ctx.state().clone())
            .with_runtime_env(runtime)
            .build();
        let task = Arc::new(datafusion::execution::TaskContext::from(&state));
        let optimized = state.optimize(&plan)?;
        let logical_optimized = began.elapsed();
        let physical = state
            .query_planner()
            .create_physical_plan(&optimized, &state)
            .await?;
        let planned = began.elapsed();
        let batches = datafusion::physical_plan::collect(physical.clone(), task).await?;
        let executed = began.elapsed() - planned;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let operators = datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
            physical.as_ref(),
        )
        .indent(true);
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let series_after = self.storage.series_cache_counts();
        let series_files = format!(
            "series files: {} loaded from the bucket, {} from the cache (node-wide while this ran)",
            series_after.1 - series_before.1,
            series_after.0 - series_before.0,
        );
        Ok(format!(
            "planning: {:.3} ms (PromQL to a logical plan {:.3} ms, optimizing it {:.3} ms, physical planning {:.3} ms)\nexecution: {:.3} ms\nrows: {rows}\n{}\n{series_files}\n{operators}",
            ms(planned),
            ms(translated),
            ms(logical_optimized - translated),
            ms(planned - logical_optimized),
            ms(executed),
            fetch.summary(),
        ))
    }

    async fn equivalent_sql(&self, expr: &PromExpr, time_ms: i64) -> Result<String, String> {
        let mut metrics: BTreeSet<String> = BTreeSet::new();
        to_sql::metric_names(expr, &mut metrics);
        let mut columns = BTreeMap::new();
        for metric in metrics {
            let set = crate::query::scan::SeriesSet::collect(&self.storage, Some(&metric))
                .await
                .map_err(|e| format!("{e:#}"))?;
            let names = set
                .label_names()
                .iter()
                .map(|l| crate::query::scan::label_column_name(l))
                .collect();
            columns.insert(metric, names);
        }
        to_sql::Translator {
            time_ms,
            lookback_ms: DEFAULT_LOOKBACK.as_millis() as i64,
            columns,
        }
        .translate(expr)
    }

    /// A planner for `source` (the query text annotations cite) over `[start, end]`
    /// every `step`, reading the data `resolution` says.
    fn planner(
        &self,
        source: &str,
        (start, end, step): (i64, i64, i64),
        lookback: Duration,
        resolution: planner::ReadResolution,
    ) -> Planner {
        Planner {
            storage: self.storage.clone(),
            start,
            end,
            step,
            query_bounds: (start, end),
            resolution,
            lookback: lookback.as_millis() as i64,
            warnings: Default::default(),
            infos: Default::default(),
            source: source.to_string(),
            selected_series: Default::default(),
            any_histograms: self.storage.may_have_histograms(None),
            decoding: Default::default(),
            time_pinned: Default::default(),
        }
    }

    async fn evaluate(
        &self,
        source: &str,
        expr: &PromExpr,
        (start, end, step): (i64, i64, i64),
        lookback: Duration,
        resolution: SourceResolution,
        instant: bool,
    ) -> Result<Evaluation, PromqlError> {
        let resolution = resolution.pick(step);
        let key = prepared::PreparedKey {
            text: source.to_string(),
            lookback_ms: lookback.as_millis() as i64,
            resolution,
            step,
            span: end - start,
        };
        if let Some(evaluation) =
            (self.evaluate_prepared(&key, expr, (start, end, step), instant)).await?
        {
            return Ok(evaluation);
        }
        let planner = self.planner(source, (start, end, step), lookback, resolution);
        let planned = planner.plan_query(expr).await?;
        let (kind, plan) = match planned {
            Planned::Const(c) if instant => {
                return Ok(Evaluation {
                    value: PromValue::Scalar(start, c),
                    warnings: Self::collected(&planner.warnings),
                    infos: Self::collected(&planner.infos),
                });
            }
            Planned::Const(c) => {
                let points = step_times(start, end, step).map(|t| (t, c)).collect();
                let series = vec![Series {
                    labels: Default::default(),
                    points,
                    histograms: Vec::new(),
                }];
                return Ok(Evaluation {
                    value: PromValue::Matrix(series),
                    warnings: Self::collected(&planner.warnings),
                    infos: Self::collected(&planner.infos),
                });
            }
            Planned::String(s) => {
                return Ok(Evaluation {
                    value: PromValue::String(start, s),
                    warnings: Self::collected(&planner.warnings),
                    infos: Self::collected(&planner.infos),
                });
            }
            Planned::Scalar(plan) => (prepared::ResultKind::Scalar, plan),
            Planned::Matrix(plan) => (prepared::ResultKind::Matrix, plan),
            Planned::Vector(plan) => (prepared::ResultKind::Vector, plan),
        };
        let session = self.context_for(&planner);
        let physical = session.physical(&plan).await?;
        if planner.movable_in_time()
            && let Some(plan) = prepared::PreparedPlan::new(
                start,
                physical.clone(),
                std::ptr::eq(session, &self.small),
                kind,
                planner.any_histograms,
                prepared::Annotations::new(planner.warnings.clone(), planner.infos.clone()),
                planner
                    .selected_series
                    .load(std::sync::atomic::Ordering::Relaxed),
            )?
        {
            self.prepared.insert(key, Arc::new(plan));
        }
        let series = series_of(&session.execute(physical).await?)?;
        // Read after running: plan nodes and UDFs add annotations while they execute.
        Ok(Evaluation {
            value: result_value(kind, series, expr, (start, end, step), instant)?,
            warnings: Self::collected(&planner.warnings),
            infos: Self::collected(&planner.infos),
        })
    }

    /// A query run with the plan kept for its text and span, moved to `start`; None when
    /// there is none, another evaluation is running it, or storage changed in a way the
    /// plan cannot follow (the caller then plans anew, and keeps that plan).
    async fn evaluate_prepared(
        &self,
        key: &prepared::PreparedKey,
        expr: &PromExpr,
        span: (i64, i64, i64),
        instant: bool,
    ) -> Result<Option<Evaluation>, PromqlError> {
        let Some(entry) = self.prepared.get(key) else {
            return Ok(None);
        };
        let Some(claim) = entry.claim() else {
            return Ok(None);
        };
        let session = if claim.small { &self.small } else { &self.ctx };
        // A plan made for a few series runs in one partition: once its selections pick
        // many, it is planned again for two.
        let most_series = claim.small.then_some(SMALL_QUERY_SERIES);
        let state = session.state();
        let moved = prepared::PreparedPlan::at(&claim, span.0, &self.storage, state, most_series);
        let Some(plan) = moved.await? else {
            return Ok(None);
        };
        let series = series_of(&session.execute(plan).await?)?;
        let value = result_value(claim.kind, series, expr, span, instant)?;
        (self.prepared_runs).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (warnings, infos) = claim.annotations.collected();
        Ok(Some(Evaluation {
            value,
            warnings,
            infos,
        }))
    }

    /// How many evaluations ran a prepared plan (see [`prepared`]).
    pub fn prepared_runs(&self) -> u64 {
        self.prepared_runs
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn collected(list: &std::sync::Mutex<Vec<String>>) -> Vec<String> {
        list.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Executes a `(labels, timestamp, value[, histogram])` plan and groups rows into series
    /// sorted by labels, points by time.
    async fn run(&self, plan: LogicalPlan, planner: &Planner) -> Result<Vec<Series>, PromqlError> {
        let batches = self.context_for(planner).collect(&plan).await?;
        series_of(&batches)
    }
}

/// A result of `kind` from its series: stale points dropped from range vectors, a vector
/// checked for repeated label sets and sorted as `expr` says, a scalar's value at `start`.
fn result_value(
    kind: prepared::ResultKind,
    mut series: Vec<Series>,
    expr: &PromExpr,
    (start, _, _): (i64, i64, i64),
    instant: bool,
) -> Result<PromValue, PromqlError> {
    match kind {
        prepared::ResultKind::Scalar if instant => {
            let v = series
                .first()
                .and_then(|s| s.points.first())
                .map(|p| p.1)
                .unwrap_or(f64::NAN);
            Ok(PromValue::Scalar(start, v))
        }
        prepared::ResultKind::Scalar => Ok(PromValue::Matrix(series)),
        prepared::ResultKind::Matrix => {
            for s in &mut series {
                s.points.retain(|(_, v)| !crate::model::is_stale_nan(*v));
                s.histograms
                    .retain(|(_, h)| !crate::model::is_stale_nan(h.sum));
            }
            series.retain(|s| !s.points.is_empty() || !s.histograms.is_empty());
            Ok(PromValue::Matrix(series))
        }
        prepared::ResultKind::Vector => {
            check_unique_labels(&series)?;
            if instant {
                apply_sort(&mut series, sort_order(expr));
                Ok(PromValue::Vector(series))
            } else {
                Ok(PromValue::Matrix(series))
            }
        }
    }
}

/// Rows of `(labels, timestamp, value[, histogram])` grouped into series sorted by labels,
/// points by time.
fn series_of(batches: &[RecordBatch]) -> Result<Vec<Series>, PromqlError> {
    let mut by_labels: BTreeMap<String, Points> = BTreeMap::new();
    for batch in batches {
        append_rows(batch, &mut by_labels)?;
    }
    // Names marked dropped go now; series that become equal merge (two values at one
    // step are then an error for vectors, see `check_unique_labels`).
    let mut finished: BTreeMap<String, Points> = BTreeMap::new();
    for (encoded, points) in by_labels {
        let entry = finished.entry(labels::finish(&encoded)).or_default();
        entry.floats.extend(points.floats);
        entry.histograms.extend(points.histograms);
    }
    Ok(finished
        .into_iter()
        .map(|(encoded, mut points)| {
            points.floats.sort_by_key(|p| p.0);
            points.histograms.sort_by_key(|p| p.0);
            Series {
                labels: crate::model::Labels::from_trusted(
                    labels::decode(&encoded)
                        .into_iter()
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect(),
                ),
                points: points.floats,
                histograms: points.histograms,
            }
        })
        .collect())
}

/// One series' rows of a result.
#[derive(Default)]
struct Points {
    floats: Vec<(i64, f64)>,
    histograms: Vec<(i64, Arc<crate::model::Histogram>)>,
}

fn append_rows(batch: &RecordBatch, out: &mut BTreeMap<String, Points>) -> Result<(), PromqlError> {
    let internal = || PromqlError::Execution("unexpected result columns".into());
    // A bare selector's rows carry their labels as a dictionary.
    let labels = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)
        .map_err(|e| PromqlError::Execution(e.to_string()))?;
    let labels = labels
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(internal)?;
    let ts = batch
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(internal)?;
    let vs = batch
        .column(2)
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(internal)?;
    let histograms = match batch.schema().index_of(crate::query::scan::HISTOGRAM) {
        Ok(i) => Some(
            crate::storage::histogram_arrow::HistogramColumn::new(batch.column(i).as_ref())
                .ok_or_else(internal)?,
        ),
        Err(_) => None,
    };
    for i in 0..batch.num_rows() {
        let points = match out.get_mut(labels.value(i)) {
            Some(points) => points,
            None => out.entry(labels.value(i).to_string()).or_default(),
        };
        if let Some(h) = histograms.as_ref().and_then(|h| h.get(i)) {
            points.histograms.push((ts.value(i), Arc::new(h)));
            continue;
        }
        let v = if vs.is_null(i) { f64::NAN } else { vs.value(i) };
        points.floats.push((ts.value(i), v));
    }
    Ok(())
}

/// Two series with one label set at one step is Prometheus's "same labelset" error.
fn check_unique_labels(series: &[Series]) -> Result<(), PromqlError> {
    for s in series {
        let mut times: Vec<i64> = (s.points.iter().map(|p| p.0))
            .chain(s.histograms.iter().map(|p| p.0))
            .collect();
        times.sort_unstable();
        if times.windows(2).any(|w| w[0] == w[1]) {
            return Err(PromqlError::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

fn step_times(start: i64, end: i64, step: i64) -> impl Iterator<Item = i64> {
    let step = step.max(1);
    (0..)
        .map(move |i| start + i * step)
        .take_while(move |t| *t <= end)
}

/// How an instant vector result is ordered.
#[derive(Debug, Clone, PartialEq)]
enum Sort {
    None,
    ByValue {
        descending: bool,
    },
    ByLabels {
        names: Vec<String>,
        descending: bool,
    },
}

fn sort_order(expr: &PromExpr) -> Sort {
    match expr {
        PromExpr::Paren(p) => sort_order(&p.expr),
        PromExpr::Aggregate(a) => match ops::AggregateOp::from_token(a.op) {
            Ok(ops::AggregateOp::Topk) => Sort::ByValue { descending: true },
            Ok(ops::AggregateOp::Bottomk) => Sort::ByValue { descending: false },
            _ => Sort::None,
        },
        PromExpr::Call(call) => match call.func.name {
            "sort" => Sort::ByValue { descending: false },
            "sort_desc" => Sort::ByValue { descending: true },
            "sort_by_label" | "sort_by_label_desc" => Sort::ByLabels {
                names: call.args.args[1..]
                    .iter()
                    .filter_map(|a| match a.as_ref() {
                        PromExpr::StringLiteral(s) => Some(s.val.clone()),
                        _ => None,
                    })
                    .collect(),
                descending: call.func.name.ends_with("_desc"),
            },
            _ => Sort::None,
        },
        _ => Sort::None,
    }
}

fn apply_sort(series: &mut [Series], sort: Sort) {
    let value = |s: &Series| s.points.first().map(|p| p.1).unwrap_or(f64::NAN);
    match sort {
        Sort::None => {}
        Sort::ByValue { descending } => series.sort_by(|a, b| {
            let (x, y) = (value(a), value(b));
            // NaN sorts last either way, as in Prometheus.
            match (x.is_nan(), y.is_nan()) {
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ if descending => y.total_cmp(&x),
                _ => x.total_cmp(&y),
            }
        }),
        Sort::ByLabels { names, descending } => series.sort_by(|a, b| {
            let get = |s: &Series, n: &str| s.labels.get(n).unwrap_or_default().to_string();
            let mut ord = std::cmp::Ordering::Equal;
            for n in &names {
                ord = ord.then_with(|| natural_cmp(&get(a, n), &get(b, n)));
            }
            let ord = ord.then_with(|| a.labels.cmp(&b.labels));
            if descending { ord.reverse() } else { ord }
        }),
    }
}

/// Natural order: runs of digits compare by number (`cpu2` < `cpu10`).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let xn = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let yn = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (xd, yd) = (&x[..xn], &y[..yn]);
                let strip = |d: &[u8]| {
                    let zeros = d.iter().take_while(|c| **c == b'0').count();
                    d[zeros..].to_vec()
                };
                let (xs, ys) = (strip(xd), strip(yd));
                let ord = xs.len().cmp(&ys.len()).then_with(|| xs.cmp(&ys));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
                x = &x[xn..];
                y = &y[yn..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

/// Thanos's `max_source_resolution`: the coarsest downsampled data a query may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceResolution {
    /// Raw samples only (`0s`, `raw`).
    Raw,
    /// Data downsampled to at most this many ms (`5m`, `1h`).
    Max(i64),
    /// At most a fifth of the step (`auto`, the default): a dashboard over 90 days at a
    /// 1 h step reads 5 m data, at a 6 h step 1 h data; where neither that data nor finer
    /// exists (past its retention), coarser data answers.
    Auto,
}

impl SourceResolution {
    pub fn parse(text: &str) -> Result<SourceResolution, String> {
        match text {
            "" | "auto" => Ok(SourceResolution::Auto),
            "raw" => Ok(SourceResolution::Raw),
            _ => match crate::model::parse_duration(text) {
                Ok(d) if d.is_zero() => Ok(SourceResolution::Raw),
                Ok(d) => Ok(SourceResolution::Max(d.as_millis() as i64)),
                Err(e) => Err(format!(
                    "invalid max_source_resolution {text:?}: {e}; expected auto, raw, 0s, 5m or 1h"
                )),
            },
        }
    }

    /// The data to read for a query with this step (0: instant).
    pub fn pick(self, step_ms: i64) -> planner::ReadResolution {
        let limit = match self {
            SourceResolution::Raw => 0,
            SourceResolution::Max(ms) => ms,
            SourceResolution::Auto => step_ms / 5,
        };
        use crate::storage::downsample::{RES_1H, RES_5M};
        planner::ReadResolution {
            ms: [RES_1H, RES_5M]
                .into_iter()
                .find(|r| *r <= limit)
                .unwrap_or(0),
            fill_gaps: self == SourceResolution::Auto,
        }
    }
}

pub fn value_type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Vector => "vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
    }
}

#[cfg(test)]
mod tests {
    use super::SourceResolution;

    #[test]
    fn max_source_resolution_picks_the_coarsest_data_allowed() {
        let parse = |t: &str| SourceResolution::parse(t).unwrap();
        assert_eq!(parse(""), SourceResolution::Auto);
        assert_eq!(parse("raw"), SourceResolution::Raw);
        assert_eq!(parse("0s"), SourceResolution::Raw);
        assert_eq!(parse("5m"), SourceResolution::Max(300_000));
        assert!(SourceResolution::parse("5 minutes").is_err());
        let (m5, h1) = (300_000, 3_600_000);
        let ms = |r: &str, step: i64| parse(r).pick(step).ms;
        // auto: at most a fifth of the step; instant queries read raw data.
        assert_eq!(ms("auto", 0), 0);
        assert_eq!(ms("auto", 60_000), 0);
        assert_eq!(ms("auto", 25 * 60_000), m5);
        assert_eq!(ms("auto", 3_600_000), m5);
        assert_eq!(ms("auto", 5 * 3_600_000), h1);
        assert_eq!(ms("5m", 0), m5);
        assert_eq!(ms("30m", 0), m5);
        assert_eq!(ms("1h", 15_000), h1);
        assert_eq!(ms("1m", 86_400_000), 0);
        assert_eq!(ms("raw", 86_400_000), 0);
        // Only auto lets coarser data fill where finer data has expired; the others are
        // maxima.
        assert!(parse("auto").pick(0).fill_gaps);
        assert!(!parse("5m").pick(0).fill_gaps && !parse("raw").pick(0).fill_gaps);
    }
}
