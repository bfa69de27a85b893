//! Aggregations (`sum`, `topk`, `quantile`, `count_values`, ...) by their grouping.

use super::*;
use crate::storage::histogram_arrow::histogram_type;

/// An aggregation's group of each row (the label set its `by`/`without` keeps, as column
/// `g`) and how the groups are formed.
fn group_of(a: &AggregateExpr, op: AggregateOp) -> (Expr, Grouping) {
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
        None if op.selects_series() => lit(""),
        None => l::call(l::keep_udf(), col(LABELS), &[""]),
    };
    // Grouping by __name__ keeps names whose drop is pending; the group's name is dropped
    // at the end if any input's was.
    let by_name = matches!(&a.modifier, Some(LabelModifier::Include(names))
        if names.labels.iter().any(|n| n == METRIC_NAME_LABEL));
    (group_labels, Grouping::of(a.modifier.as_ref(), by_name))
}

impl Planner {
    /// `sum`, `avg`, `count` or `group` of an expression that carries native histograms
    /// (see [`Planner::plan_keeping_histograms`]); None for other aggregations and
    /// expressions. As in Prometheus, a group of histograms sums (or averages) to a
    /// histogram, a group of floats to a float, and a group mixing them has no result;
    /// `count` and `group` count both.
    pub(super) async fn histogram_aggregate(
        &self,
        a: &AggregateExpr,
        steps: Steps,
    ) -> Option<PlanResult> {
        let op = AggregateOp::from_token(a.op).ok()?;
        if matches!(op, AggregateOp::Limitk | AggregateOp::LimitRatio) {
            return Some(self.aggregate_keeping_histograms(a, steps).await);
        }
        if !matches!(
            op,
            AggregateOp::Sum | AggregateOp::Avg | AggregateOp::Count | AggregateOp::Group
        ) {
            return None;
        }
        let input = match self.plan_keeping_histograms(&a.expr, steps).await? {
            Ok(Planned::Vector(input)) => input,
            Ok(_) => return None,
            Err(e) => return Some(Err(e)),
        };
        if !input.schema().has_column_with_unqualified_name(HISTOGRAM) {
            return None;
        }
        Some(self.aggregate_histograms(op, a, input))
    }

    fn aggregate_histograms(
        &self,
        op: AggregateOp,
        a: &AggregateExpr,
        input: LogicalPlan,
    ) -> PlanResult {
        let (group_labels, grouping) = group_of(a, op);
        let keyed = LogicalPlanBuilder::from(input)
            .project(vec![
                col(LABELS),
                col(TIMESTAMP),
                col(VALUE),
                col(HISTOGRAM),
                group_labels.alias("g"),
            ])?
            .build()?;
        let float_op = match op {
            AggregateOp::Avg => AggregateOp::Avg,
            _ => AggregateOp::Sum,
        };
        let floats = Kernel::of(float_op)
            .ok_or_else(|| PromqlError::Unsupported(format!("aggregation {op}")))?;
        let aggregates = vec![
            agg::count(col(VALUE)).alias("nf"),
            agg::count(col(HISTOGRAM)).alias("nh"),
            floats.aggregate(col(VALUE)).alias("fv"),
            super::super::native::sum_udaf(
                op == AggregateOp::Avg,
                super::super::native_binary::Notes {
                    infos: self.infos.clone(),
                    warnings: self.warnings.clone(),
                    // Prometheus cites the aggregated expression.
                    position: self.position(&a.expr),
                },
            )
            .call(vec![col(HISTOGRAM), cast(col(LABELS), DataType::Utf8)])
            .alias("hs"),
            any_name_dropped(),
        ];
        let no_floats = col("nf").eq(lit(0i64));
        let no_histograms = col("nh").eq(lit(0i64));
        let (value, histogram) = match op {
            AggregateOp::Count => (
                cast(col("nf") + col("nh"), DataType::Float64),
                lit(ScalarValue::Null),
            ),
            AggregateOp::Group => (lit(1.0), lit(ScalarValue::Null)),
            _ => (
                when(no_histograms, col("fv")).end()?,
                when(no_floats, col("hs")).end()?,
            ),
        };
        let mut builder = LogicalPlanBuilder::from(keyed).aggregate(grouping.keys(), aggregates)?;
        if matches!(op, AggregateOp::Sum | AggregateOp::Avg) {
            let warning = format!(
                "PromQL warning: encountered a mix of histograms and floats for aggregation{}",
                self.position(&a.expr)
            );
            let unmixed = Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(super::super::native::unmixed_udf(
                    self.warnings.clone(),
                    warning,
                )),
                vec![col("nf"), col("nh")],
            ));
            builder = builder.filter(unmixed)?;
        }
        builder = builder.project(vec![
            grouping.labels(),
            col(TIMESTAMP),
            cast(value, DataType::Float64).alias(VALUE),
            histogram.alias(HISTOGRAM),
        ])?;
        if matches!(op, AggregateOp::Count | AggregateOp::Group) {
            builder = builder.project(vec![col(LABELS), col(TIMESTAMP), col(VALUE)])?;
        } else {
            builder = builder.filter(col(VALUE).is_not_null().or(col(HISTOGRAM).is_not_null()))?;
        }
        Ok(Planned::Vector(builder.build()?))
    }

    /// The input of an aggregation that does not take native histograms: its float rows;
    /// when the argument has histograms (its metric may), they are left out with
    /// Prometheus's info that the aggregation ignored them.
    async fn float_input(
        &self,
        op: AggregateOp,
        a: &AggregateExpr,
        steps: Steps,
    ) -> Result<LogicalPlan, PromqlError> {
        let ignores = matches!(
            op,
            AggregateOp::Min
                | AggregateOp::Max
                | AggregateOp::Topk
                | AggregateOp::Bottomk
                | AggregateOp::Stddev
                | AggregateOp::Stdvar
                | AggregateOp::Quantile
        );
        if ignores
            && let Some(planned) = self.plan_keeping_histograms(&a.expr, steps.clone()).await
            && let Planned::Vector(input) = planned?
            && input.schema().has_column_with_unqualified_name(HISTOGRAM)
        {
            let info = format!(
                "PromQL info: ignored histogram in {op} aggregation{}",
                self.position(&PromExpr::Aggregate(a.clone()))
            );
            let floats = Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(super::super::native::float_row_udf(
                    self.infos.clone(),
                    info,
                )),
                vec![col(HISTOGRAM)],
            ));
            return Ok(LogicalPlanBuilder::from(input)
                .filter(floats)?
                .project(vec![col(LABELS), col(TIMESTAMP), col(VALUE)])?
                .build()?);
        }
        self.vector_arg(&a.expr, steps).await
    }

    /// An aggregation whose result feeds an expression that takes floats only.
    pub(super) async fn aggregate(&self, a: &AggregateExpr, steps: Steps) -> PlanResult {
        match self.aggregate_keeping_histograms(a, steps).await? {
            Planned::Vector(plan) => Ok(Planned::Vector(floats_only(plan)?)),
            other => Ok(other),
        }
    }

    /// An aggregation; `limitk` and `limit_ratio`, which pick series without reading their
    /// values, keep native histograms (a `histogram` column) where their input has them, and
    /// `count_values` counts them by their text.
    pub(super) async fn aggregate_keeping_histograms(
        &self,
        a: &AggregateExpr,
        steps: Steps,
    ) -> PlanResult {
        let op = AggregateOp::from_token(a.op)?;
        let input = match op {
            AggregateOp::Limitk | AggregateOp::LimitRatio | AggregateOp::CountValues => {
                self.vector_arg_keeping_histograms(&a.expr, steps.clone())
                    .await?
            }
            _ => self.float_input(op, a, steps.clone()).await?,
        };
        let histogram = input
            .schema()
            .has_column_with_unqualified_name(HISTOGRAM)
            .then(|| col(HISTOGRAM));
        let (group_labels, grouping) = group_of(a, op);
        let keyed = LogicalPlanBuilder::from(input)
            .project(
                [
                    col(LABELS),
                    col(TIMESTAMP),
                    col(VALUE),
                    group_labels.alias("g"),
                ]
                .into_iter()
                .chain(histogram.clone()),
            )?
            .build()?;
        let value = match op {
            AggregateOp::Count => cast(agg::count(col(VALUE)), DataType::Float64),
            AggregateOp::Group => cast(agg::count(col(VALUE)).gt(lit(0i64)), DataType::Float64),
            AggregateOp::Topk | AggregateOp::Bottomk | AggregateOp::Limitk => {
                if const_arg(a.param.as_deref()).is_ok_and(f64::is_nan) {
                    return Err(PromqlError::Execution("Parameter value is NaN".into()));
                }
                let keyed = self.with_param(keyed, a.param.as_deref(), steps).await?;
                return self.top_bottom(keyed, op);
            }
            AggregateOp::LimitRatio => {
                let param = a.param.as_deref();
                if let (Ok(r), Some(p)) = (const_arg(param), param) {
                    if r.is_nan() {
                        return Err(PromqlError::Execution("Ratio value is NaN".into()));
                    }
                    if !(-1.0..=1.0).contains(&r) {
                        let cap = r.clamp(-1.0, 1.0);
                        self.warn(format!(
                            "ratio value should be between -1 and 1, got {}, capping to {}{}",
                            crate::query::promql::aggregates::format_float(r),
                            crate::query::promql::aggregates::format_float(cap),
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
                    .project(
                        [col(LABELS), col(TIMESTAMP), col(VALUE)]
                            .into_iter()
                            .chain(histogram),
                    )?
                    .build()?;
                return Ok(Planned::Vector(plan));
            }
            AggregateOp::CountValues => return self.count_values(keyed, a),
            AggregateOp::Sum
            | AggregateOp::Avg
            | AggregateOp::Min
            | AggregateOp::Max
            | AggregateOp::Stddev
            | AggregateOp::Stdvar
            | AggregateOp::Quantile => {
                let kernel = Kernel::of(op).ok_or_else(|| {
                    PromqlError::Unsupported(format!("aggregation {op} as a kernel"))
                })?;
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
    pub(super) fn kernel_aggregate(
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
    pub(super) fn count_values(&self, keyed: LogicalPlan, a: &AggregateExpr) -> PlanResult {
        let label = match a.param.as_deref().map(strip_parens) {
            Some(PromExpr::StringLiteral(s)) => s.val.clone(),
            _ => {
                return Err(PromqlError::BadData(
                    "count_values needs a label name".into(),
                ));
            }
        };
        if !self.is_label_name(&label) {
            return Err(PromqlError::Execution(format!(
                "invalid label name {}",
                super::super::syntax::go_quoted(&self.source, &label)
            )));
        }
        let mut formatted = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(format_value_udf()),
            vec![col(VALUE)],
        ));
        // A native histogram is counted by its text, as Prometheus writes it.
        if keyed.schema().has_column_with_unqualified_name(HISTOGRAM) {
            let text = Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(super::super::native::text_udf()),
                vec![col(HISTOGRAM)],
            ));
            formatted = datafusion::functions::core::expr_fn::coalesce(vec![text, formatted]);
        }
        let labels = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(label_set_dynamic_udf()),
            vec![col("g"), lit(label.as_str()), col("vs")],
        ));
        // Counted by the resulting label set: the value's label may overwrite a grouping
        // label, merging groups, as in Prometheus.
        let plan = LogicalPlanBuilder::from(keyed)
            .project(vec![col("g"), col(TIMESTAMP), formatted.alias("vs")])?
            .project(vec![labels.alias(LABELS), col(TIMESTAMP)])?
            .aggregate(
                vec![col(LABELS), col(TIMESTAMP)],
                vec![agg::count(lit(1)).alias("n")],
            )?
            .project(vec![
                col(LABELS),
                col(TIMESTAMP),
                cast(col("n"), DataType::Float64).alias(VALUE),
            ])?
            .build()?;
        Ok(Planned::Vector(plan))
    }

    /// Adds the aggregation parameter as column `p`: a constant, or a scalar expression's
    /// value at each step (joined on the timestamp). The result is `(labels, timestamp,
    /// value, g, p)`, and `histogram` after them when `keyed` has one.
    pub(super) async fn with_param(
        &self,
        keyed: LogicalPlan,
        param: Option<&PromExpr>,
        steps: Steps,
    ) -> Result<LogicalPlan, PromqlError> {
        let histogram = keyed
            .schema()
            .has_column_with_unqualified_name(HISTOGRAM)
            .then(|| col(HISTOGRAM));
        let columns = |p: Expr| {
            [col(LABELS), col(TIMESTAMP), col(VALUE), col("g"), p]
                .into_iter()
                .chain(histogram.clone())
                .collect::<Vec<_>>()
        };
        let Some(param) = param else {
            return Ok(LogicalPlanBuilder::from(keyed)
                .project(columns(lit(0.0).alias("p")))?
                .build()?);
        };
        match self.plan_at(param, steps).await? {
            Planned::Const(c) => Ok(LogicalPlanBuilder::from(keyed)
                .project(columns(lit(c).alias("p")))?
                .build()?),
            Planned::Scalar(plan) => {
                let scalar = LogicalPlanBuilder::from(plan)
                    .project(vec![col(TIMESTAMP).alias("pt"), col(VALUE).alias("p")])?
                    .build()?;
                Ok(LogicalPlanBuilder::from(keyed)
                    .join(scalar, JoinType::Inner, (vec![TIMESTAMP], vec!["pt"]), None)?
                    .project(columns(col("p")))?
                    .build()?)
            }
            _ => Err(PromqlError::BadData("expected a scalar parameter".into())),
        }
    }

    /// `topk`/`bottomk` rank by value; `limitk` keeps the first `k` series in label order.
    pub(super) fn top_bottom(&self, keyed: LogicalPlan, op: AggregateOp) -> PlanResult {
        let order = match op {
            AggregateOp::Bottomk => RankOrder::Smallest,
            AggregateOp::Limitk => RankOrder::Labels,
            _ => RankOrder::Largest,
        };
        // The node reads (labels, timestamp, value, g, p[, histogram]) by position.
        let histogram = keyed.schema().has_column_with_unqualified_name(HISTOGRAM);
        let input = LogicalPlanBuilder::from(keyed)
            .project(
                [
                    col(LABELS),
                    col(TIMESTAMP),
                    col(VALUE),
                    col("g"),
                    cast(col("p"), DataType::Float64).alias("p"),
                ]
                .into_iter()
                .chain(histogram.then(|| col(HISTOGRAM))),
            )?
            .build()?;
        let mut fields = vector_schema().fields().to_vec();
        if histogram {
            fields.push(Arc::new(Field::new(HISTOGRAM, histogram_type(), true)));
        }
        let schema = Arc::new(DFSchema::try_from(Schema::new(fields))?);
        Ok(Planned::Vector(ranked(input, schema, order)))
    }
}
