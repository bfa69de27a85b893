//! The DataFusion session PromQL plans run in: its configuration, the physical planner for
//! Quiver's plan nodes, and the optimizer rules PromQL plans go through.
//!
//! The rules are DataFusion's own lists, less the rules that find nothing to do in the plans
//! the PromQL planner builds. Every rule walks the whole plan, and for a dashboard panel or
//! a rule evaluation over a few series DataFusion's full lists cost more than executing the
//! plan. The planner's plans are projections, filters, joins on label keys, aggregates,
//! unions and Quiver's own nodes over table scans, built close to final; they never hold
//! subqueries, `DISTINCT`, `LIMIT`, window functions or sorts. A test below plans a corpus
//! of queries with both lists and requires identical physical plans; every rule left in
//! changes some plan of that corpus.

use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use datafusion::common::DataFusionError;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SessionState, SessionStateBuilder, TaskContext};
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::optimizer::{Optimizer, OptimizerRule};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use datafusion::prelude::SessionConfig;

use super::step::{PromStep, PromStepExec};
use super::{info, planner, rank, series_join, step, unique};

/// A session PromQL plans run in. Built once per engine: every query plans against the same
/// state and runs with the same task context, where DataFusion's `SessionContext` would copy
/// its state and function registries for each query.
pub(super) struct PromSession {
    state: SessionState,
    task: Arc<TaskContext>,
}

impl PromSession {
    /// A session with `partitions` target partitions; `runtime` must have the block object
    /// store registered.
    pub(super) fn new(runtime: &Arc<RuntimeEnv>, partitions: usize, max_samples: usize) -> Self {
        let state = builder(runtime, partitions, max_samples)
            .with_optimizer_rules(optimizer_rules())
            .with_physical_optimizer_rules(physical_optimizer_rules())
            .build();
        let task = Arc::new(TaskContext::from(&state));
        PromSession { state, task }
    }

    pub(super) fn state(&self) -> &SessionState {
        &self.state
    }

    /// Optimizes, plans and runs `plan`; its result's batches.
    pub(super) async fn collect(
        &self,
        plan: &LogicalPlan,
    ) -> datafusion::common::Result<Vec<RecordBatch>> {
        let physical = self.physical(plan).await?;
        self.execute(physical).await
    }

    /// `plan` optimized and planned.
    pub(super) async fn physical(
        &self,
        plan: &LogicalPlan,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        self.state.create_physical_plan(plan).await
    }

    /// Runs a physical plan of this session; its result's batches.
    pub(super) async fn execute(
        &self,
        plan: Arc<dyn ExecutionPlan>,
    ) -> datafusion::common::Result<Vec<RecordBatch>> {
        datafusion::physical_plan::collect(plan, self.task.clone()).await
    }
}

/// The session's configuration and planner, with DataFusion's default rules.
fn builder(
    runtime: &Arc<RuntimeEnv>,
    partitions: usize,
    max_samples: usize,
) -> SessionStateBuilder {
    // Block scans spread their files themselves (`scan::block_scan`), for more reads in
    // flight than partitions; the optimizer must not regroup them.
    let mut config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_repartition_file_scans(false)
        .with_extension(Arc::new(step::MaxSamples(max_samples)));
    // The planner builds plans close to final (joins on keys, filters and projections
    // where they belong): one optimizer pass finds what there is to find, and a second,
    // DataFusion's default, doubles a small query's planning.
    config.options_mut().optimizer.max_passes = 1;
    SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime.clone())
        .with_default_features()
        .with_query_planner(Arc::new(PromQueryPlanner))
}

/// Logical rules PromQL plans gain nothing from: they match only what those plans lack, or
/// rewrite shapes the planner already builds in their final form.
const SKIPPED_LOGICAL: &[&str] = &[
    // `x > ALL (subquery)`, `EXISTS`, `IN (subquery)`, scalar and lateral subqueries.
    "rewrite_set_comparison",
    "decorrelate_predicate_subquery",
    "scalar_subquery_to_join",
    "decorrelate_lateral_join",
    // `DISTINCT` and `count(DISTINCT x)`.
    "replace_distinct_aggregate",
    "single_distinct_aggregation_to_group_by",
    // `LIMIT`.
    "eliminate_limit",
    "push_down_limit",
    // Unions of unions, and unions of filters over one input: `or` unions two different
    // inputs once.
    "optimize_unions",
    "unions_to_filter",
    // Joins: the planner builds them on equality keys from the start, inner or left as
    // the operator says; these rules rewrite joins planned otherwise.
    "eliminate_join",
    "extract_equijoin_predicate",
    "eliminate_cross_join",
    "filter_null_join_keys",
    "eliminate_outer_join",
    // Expressions: no duplicated sort or grouping keys, no constant grouping keys, no
    // always-true or always-false filters (constants are folded while planning), no empty
    // relations to propagate, no nested field access to move.
    "eliminate_duplicated_expr",
    "eliminate_group_by_constant",
    "eliminate_filter",
    "propagate_empty_relation",
    "extract_leaf_expressions",
    "push_down_leaf_projections",
];

/// Physical rules PromQL plans gain nothing from, as [`SKIPPED_LOGICAL`].
const SKIPPED_PHYSICAL: &[&str] = &[
    // Answers `count(*)`, `min`, `max` from exact statistics, which Quiver's scans do not
    // claim.
    "aggregate_statistics",
    // Limits, top-k sorts and window functions.
    "LimitedDistinctAggregation",
    "WindowTopN",
    "LimitAggregation",
    "LimitPushPastWindows",
    "LimitPushdown",
    "TopKRepartition",
    // Sorts pushed into sources, and the root's ordering kept through the other rules:
    // PromQL plans sort nowhere.
    "PushdownSort",
    "OutputRequirements",
    "OptimizeAggregateOrder",
    // Filters into scans: Quiver's scans select by the matchers and time range they were
    // planned with, and take none of DataFusion's filters.
    "FilterPushdown",
    "FilterPushdown(Post)",
    // A buffer on a hash join's probe side: off in DataFusion's default configuration.
    "HashJoinBuffering",
    // Checks the plan against the requirements the rules above enforce, and changes
    // nothing; the test below checks the plans instead.
    "SanityCheckPlan",
];

/// DataFusion's logical optimizer rules for PromQL plans, in DataFusion's order.
fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    Optimizer::new()
        .rules
        .into_iter()
        .filter(|rule| !SKIPPED_LOGICAL.contains(&rule.name()))
        .collect()
}

/// DataFusion's physical optimizer rules for PromQL plans, in DataFusion's order.
fn physical_optimizer_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    PhysicalOptimizer::new()
        .rules
        .into_iter()
        .filter(|rule| !SKIPPED_PHYSICAL.contains(&rule.name()))
        .collect()
}

/// Plans [`PromStep`] nodes into [`PromStepExec`].
#[derive(Debug)]
struct PromQueryPlanner;

#[async_trait]
impl QueryPlanner for PromQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn datafusion::catalog::Session,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let planner =
            DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(PromStepPlanner)]);
        let plan = planner.create_physical_plan(logical_plan, session).await?;
        series_join::rewrite(plan)
    }
}

struct PromStepPlanner;

#[async_trait]
impl ExtensionPlanner for PromStepPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn datafusion::catalog::Session,
        _planning_ctx: &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext,
    ) -> datafusion::common::Result<Option<Arc<dyn ExecutionPlan>>> {
        if let Some(check) = node.as_any().downcast_ref::<unique::PromUnique>() {
            let [input] = physical_inputs else {
                return Err(DataFusionError::Internal(
                    "PromUnique needs one input".into(),
                ));
            };
            return Ok(Some(Arc::new(unique::PromUniqueExec::new(
                input.clone(),
                check.check,
            ))));
        }
        if let Some(rank) = node.as_any().downcast_ref::<rank::PromRank>() {
            let [input] = physical_inputs else {
                return Err(DataFusionError::Internal("PromRank needs one input".into()));
            };
            return Ok(Some(Arc::new(rank::PromRankExec::new(
                input.clone(),
                rank.order,
                Arc::new(rank.schema.as_arrow().clone()),
            ))));
        }
        if let Some(info) = node.as_any().downcast_ref::<info::PromInfo>() {
            let [base, info_series] = physical_inputs else {
                return Err(DataFusionError::Internal(
                    "PromInfo needs two inputs".into(),
                ));
            };
            return Ok(Some(Arc::new(info::PromInfoExec::new(
                base.clone(),
                info_series.clone(),
                info.spec.clone(),
                planner::vector_schema(),
            ))));
        }
        let Some(step) = node.as_any().downcast_ref::<PromStep>() else {
            return Ok(None);
        };
        let input = physical_inputs
            .first()
            .cloned()
            .ok_or_else(|| DataFusionError::Internal("PromStep without input".into()))?;
        Ok(Some(Arc::new(
            PromStepExec::new(
                input,
                step.steps.clone(),
                step.window.clone(),
                step.drop_name,
                step.notes.clone(),
                Arc::new(step.schema.as_arrow().clone()),
            )
            .with_stats_hints(step.stats_hints),
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use datafusion::physical_plan::displayable;
    use promql_parser::parser::value::ValueType;

    use super::*;
    use crate::config::StorageConfig;
    use crate::model::{Labels, Sample, SeriesSamples};
    use crate::query::promql::planner::Planned;
    use crate::query::promql::{DEFAULT_LOOKBACK, PromqlEngine, SourceResolution};
    use crate::storage::{Storage, StorageOptions};

    fn names<'a>(rules: impl Iterator<Item = &'a str>) -> Vec<String> {
        rules.map(str::to_string).collect()
    }

    #[test]
    fn every_skipped_rule_exists_in_datafusion() {
        // A renamed rule would silently stay in the list; a removed one is harmless but the
        // list should say what it skips.
        let logical: Vec<String> = names(Optimizer::new().rules.iter().map(|r| r.name()));
        for name in SKIPPED_LOGICAL {
            assert!(
                logical.iter().any(|l| l == name),
                "no logical rule {name}: {logical:?}"
            );
        }
        let physical: Vec<String> = names(PhysicalOptimizer::new().rules.iter().map(|r| r.name()));
        for name in SKIPPED_PHYSICAL {
            assert!(
                physical.iter().any(|p| p == name),
                "no physical rule {name}: {physical:?}"
            );
        }
        assert!(optimizer_rules().len() < logical.len());
        assert!(physical_optimizer_rules().len() < physical.len());
    }

    /// Queries covering every kind of plan the planner builds.
    const CORPUS: &[&str] = &[
        "up",
        "up{job=\"a\"}",
        "up offset 5m",
        "up @ 100",
        "rate(http_requests_total[5m])",
        "sum(rate(http_requests_total[5m]))",
        "sum by (job) (rate(http_requests_total{code=~\"2..\"}[5m]))",
        "avg without (instance) (up)",
        "count_values(\"v\", up)",
        "quantile(0.9, up)",
        "topk(2, up)",
        "bottomk by (job) (1, up)",
        "stddev(up)",
        "count(up) by (job)",
        "up * 2",
        "up + on (job) group_left sum by (job) (up)",
        "up / ignoring (instance) up",
        "up and on (job) http_requests_total",
        "up or http_requests_total",
        "up unless http_requests_total",
        "up > bool 0",
        "time() - up",
        "scalar(sum(up))",
        "vector(1)",
        "absent(nothing)",
        "absent_over_time(nothing[5m])",
        "label_replace(up, \"x\", \"$1\", \"job\", \"(.*)\")",
        "label_join(up, \"x\", \",\", \"job\", \"instance\")",
        "histogram_quantile(0.9, sum by (le) (rate(request_seconds_bucket[5m])))",
        "max_over_time(up[10m:1m])",
        "sum(rate(http_requests_total[5m])) / sum(rate(http_requests_total[10m]))",
        "clamp(up, 0, 1)",
        "round(up, 0.5)",
        "sort_desc(up)",
        "timestamp(up)",
        "changes(up[5m]) > 0",
        "predict_linear(up[10m], 3600)",
        "deriv(up[10m])",
        "up[5m]",
        "group by (job) (up) * on (job) group_right sum by (job, instance) (up)",
        "-up",
        "info(up)",
        "limitk(1, up)",
        "count(count by (job) (up))",
    ];

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn skipped_rules_leave_every_corpus_plan_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(
            StorageOptions {
                data_dir: dir.path().to_path_buf(),
                config: StorageConfig::default(),
                retention: Duration::ZERO,
                retention_size: 0,
                retention_downsampled: [Duration::ZERO; 2],
            },
            crate::metrics::StorageMetrics::unregistered(),
        )
        .await
        .unwrap();
        let series = |pairs: &[(&str, &str)]| {
            let labels = Labels::new(
                pairs
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
            )
            .unwrap();
            SeriesSamples {
                labels: Arc::new(labels),
                samples: (0..40).map(|i| Sample::new(i * 15_000, i as f64)).collect(),
                histograms: Vec::new(),
            }
        };
        let mut appender = storage.appender();
        for (job, instance) in [("a", "x"), ("a", "y"), ("b", "x")] {
            appender.add_series(series(&[
                ("__name__", "up"),
                ("job", job),
                ("instance", instance),
            ]));
            for code in ["200", "500"] {
                appender.add_series(series(&[
                    ("__name__", "http_requests_total"),
                    ("job", job),
                    ("instance", instance),
                    ("code", code),
                ]));
            }
            for le in ["0.1", "1", "+Inf"] {
                appender.add_series(series(&[
                    ("__name__", "request_seconds_bucket"),
                    ("job", job),
                    ("instance", instance),
                    ("le", le),
                ]));
            }
        }
        appender.commit().unwrap();

        let runtime = Arc::new(RuntimeEnv::default());
        let engine = PromqlEngine::new(storage.clone(), runtime.clone(), 1_000_000);
        for partitions in [1, 2] {
            let full = builder(&runtime, partitions, 1_000_000).build();
            let session = PromSession::new(&runtime, partitions, 1_000_000);
            let trimmed = session.state();
            for query in CORPUS {
                let expr = PromqlEngine::parse(query).unwrap();
                let mut spans = vec![(600_000, 600_000, 0)];
                if expr.value_type() != ValueType::Matrix {
                    spans.push((300_000, 600_000, 15_000));
                }
                for span in spans {
                    let resolution = SourceResolution::Raw.pick(span.2);
                    let planner = engine.planner(query, span, DEFAULT_LOOKBACK, resolution);
                    let plan = match planner.plan(&expr).await.unwrap() {
                        Planned::Vector(p) | Planned::Scalar(p) | Planned::Matrix(p) => p,
                        Planned::Const(_) | Planned::String(_) => continue,
                    };
                    let shown = |physical: Arc<dyn ExecutionPlan>| {
                        displayable(physical.as_ref()).indent(true).to_string()
                    };
                    let trimmed_plan = shown(trimmed.create_physical_plan(&plan).await.unwrap());
                    assert_eq!(
                        shown(full.create_physical_plan(&plan).await.unwrap()),
                        trimmed_plan,
                        "{query} at {span:?} in {partitions} partition(s)"
                    );
                    // Selectors join their series and samples without a hash join.
                    assert!(
                        !trimmed_plan.contains(
                            "HashJoinExec: mode=CollectLeft, join_type=Inner, on=[(series_id"
                        ),
                        "{query}: {trimmed_plan}"
                    );
                    if *query == "up" {
                        assert!(trimmed_plan.contains("SeriesJoinExec"), "{trimmed_plan}");
                    }
                }
            }
        }
        storage.close().unwrap();
    }
}
