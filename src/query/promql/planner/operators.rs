//! Binary operators: vector/scalar arithmetic and comparison, vector matching with
//! `on`/`ignoring`/`group_*`, and set operators.

use super::super::native_binary::{self, Notes};
use super::super::syntax::trim_operator;
use super::*;
use crate::storage::histogram_arrow::histogram_type;

impl Planner {
    /// `-v` for an expression `v` that carries native histograms: histograms and floats
    /// negated, the metric name dropped. None for other expressions.
    pub(super) async fn histogram_negated(
        &self,
        u: &promql_parser::parser::UnaryExpr,
        steps: Steps,
    ) -> Option<PlanResult> {
        let input = match self.plan_keeping_histograms(&u.expr, steps).await? {
            Ok(Planned::Vector(input)) => input,
            Ok(_) => return None,
            Err(e) => return Some(Err(e)),
        };
        if !input.schema().has_column_with_unqualified_name(HISTOGRAM) {
            return None;
        }
        let negated = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(super::super::native::negate_udf()),
            vec![col(HISTOGRAM), lit(-1.0)],
        ));
        let plan = LogicalPlanBuilder::from(input)
            .project(vec![
                l::call(l::drop_name_udf(), col(LABELS), &[]).alias(LABELS),
                col(TIMESTAMP),
                Expr::Negative(Box::new(col(VALUE))).alias(VALUE),
                negated.alias(HISTOGRAM),
            ])
            .and_then(|p| p.build());
        Some(plan.map(Planned::Vector).map_err(Into::into))
    }

    /// `expr` planned as a binary operator's operand: with its native histograms where
    /// storage holds any and the expression can carry them (see
    /// [`Planner::plan_keeping_histograms`]). The future is built and boxed in this
    /// function's frame: a deep expression's recursion through [`Planner::binary`] then
    /// costs no more stack than a pointer per level (in a debug build a future built in
    /// `binary` would take its whole size in every level's frame).
    #[inline(never)]
    fn operand<'a>(&'a self, expr: &'a PromExpr, steps: Steps) -> BoxFuture<'a, PlanResult> {
        match strip_parens(expr) {
            PromExpr::Binary(b) => self.binary_keeping_histograms(b, steps).boxed(),
            _ if self.any_histograms => {
                let keeping = self.plan_keeping_histograms(expr, steps.clone()).boxed();
                async move {
                    match keeping.await {
                        Some(planned) => planned,
                        None => self.plan_at(expr, steps).await,
                    }
                }
                .boxed()
            }
            _ => self.plan_at(expr, steps),
        }
    }

    /// A binary operator whose result feeds an expression that takes floats only: the
    /// native histograms it may give are left out.
    pub(super) async fn binary(&self, b: &BinaryExpr, steps: Steps) -> PlanResult {
        match Box::pin(self.binary_keeping_histograms(b, steps)).await? {
            Planned::Vector(plan) => Ok(Planned::Vector(floats_only(plan)?)),
            other => Ok(other),
        }
    }

    /// A binary operator. Where an operand carries native histograms (or the operator is a
    /// trim, which takes nothing else), each matched pair of samples is evaluated by
    /// [`native_binary::apply`] and the result carries a `histogram` column; otherwise
    /// the operator is planned over floats as vectorised expressions.
    pub(super) async fn binary_keeping_histograms(
        &self,
        b: &BinaryExpr,
        steps: Steps,
    ) -> PlanResult {
        let (op, lhs_expr) = match trim_operator(b) {
            Some((operand, op)) => (op, operand),
            None => (BinaryOp::from_token(b.op)?, b.lhs.as_ref()),
        };
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        if op.is_trim() && return_bool {
            return Err(PromqlError::BadData(
                "bool modifier can only be used on comparison operators".into(),
            ));
        }
        // Trimming reads the buckets.
        let forced;
        let planner = match op.is_trim() {
            true => {
                forced = self.decoding(HistogramDecoding::FullForced);
                &forced
            }
            false => self,
        };
        let lhs = planner.operand(lhs_expr, steps.clone()).await?;
        let rhs = planner.operand(&b.rhs, steps.clone()).await?;
        let carries = |p: &Planned| matches!(p, Planned::Vector(v) if v.schema().has_column_with_unqualified_name(HISTOGRAM));
        let native = (op.is_trim() || carries(&lhs) || carries(&rhs)).then(|| Notes {
            infos: self.infos.clone(),
            warnings: self.warnings.clone(),
            position: self.position(&PromExpr::Binary(b.clone())),
        });
        match (lhs, rhs) {
            (Planned::Const(_), Planned::Const(_)) if op.is_trim() => Err(PromqlError::BadData(
                format!("operator {op} not allowed for scalar operations"),
            )),
            (Planned::Const(a), Planned::Const(c)) => {
                // The parser only admits scalar comparisons with `bool`, giving 0 or 1.
                let v = op
                    .on_floats(a, c)
                    .ok_or_else(|| PromqlError::BadData(format!("operator {op} on scalars")))?;
                Ok(Planned::Const(v))
            }
            (Planned::Vector(a), Planned::Vector(c)) => self.vector_vector(a, c, b, op, native),
            (Planned::Vector(v), other) => {
                self.vector_scalar(v, other, op, return_bool, false, native)
            }
            (other, Planned::Vector(v)) if !matches!(other, Planned::Vector(_)) => {
                self.vector_scalar(v, other, op, return_bool, true, native)
            }
            _ if op.is_trim() => Err(PromqlError::BadData(format!(
                "operator {op} not allowed for scalar operations"
            ))),
            // Between scalars a comparison needs `bool` and gives 1 or 0.
            (Planned::Scalar(a), Planned::Const(c)) => map_value(
                Planned::Scalar(a),
                move |v| scalar_arith(op, v, lit(c)),
                false,
            ),
            (Planned::Const(c), Planned::Scalar(a)) => map_value(
                Planned::Scalar(a),
                move |v| scalar_arith(op, lit(c), v),
                false,
            ),
            (Planned::Scalar(a), Planned::Scalar(c)) => {
                let joined = join_on_time(a, c)?;
                let plan = LogicalPlanBuilder::from(joined)
                    .project(vec![
                        lit("").alias(LABELS),
                        col("l.timestamp").alias(TIMESTAMP),
                        scalar_arith(op, col("l.value"), col("r.value")).alias(VALUE),
                    ])?
                    .build()?;
                Ok(Planned::Scalar(plan))
            }
            _ => Err(PromqlError::BadData(format!("invalid operands for {op}"))),
        }
    }

    /// A vector with a scalar (constant or per step) on one side; `native` when the vector
    /// may hold native histograms (see [`Planner::binary_keeping_histograms`]).
    pub(super) fn vector_scalar(
        &self,
        vector: LogicalPlan,
        scalar: Planned,
        op: BinaryOp,
        return_bool: bool,
        scalar_on_left: bool,
        native: Option<Notes>,
    ) -> PlanResult {
        let comparison = op.is_comparison();
        let vector = match native {
            Some(_) => with_histogram_column(vector)?,
            None => vector,
        };
        let mut columns = vec![col(LABELS), col(TIMESTAMP), col(VALUE)];
        if native.is_some() {
            columns.push(col(HISTOGRAM));
        }
        let (input, scalar_expr) = match scalar {
            Planned::Const(c) => (vector, lit(c)),
            Planned::Scalar(s) => {
                let s = LogicalPlanBuilder::from(s)
                    .project(vec![col(TIMESTAMP).alias("st"), col(VALUE).alias("sv")])?
                    .build()?;
                let joined = LogicalPlanBuilder::from(vector)
                    .join(s, JoinType::Inner, (vec![TIMESTAMP], vec!["st"]), None)?
                    .project(columns.iter().cloned().chain([col("sv")]))?
                    .build()?;
                (joined, col("sv"))
            }
            _ => return Err(PromqlError::BadData(format!("invalid operand for {op}"))),
        };
        let labels = match op.drops_name(return_bool) {
            true => l::call(l::drop_name_udf(), col(LABELS), &[]),
            false => col(LABELS),
        };
        if let Some(notes) = native {
            let (lh, rh, lv, rv) = match scalar_on_left {
                true => (null_histogram(), col(HISTOGRAM), scalar_expr, col(VALUE)),
                false => (col(HISTOGRAM), null_histogram(), col(VALUE), scalar_expr),
            };
            let udf = native_binary::binary_udf(op, scalar_on_left, return_bool, notes);
            return native_result(
                input,
                labels.alias(LABELS),
                col(TIMESTAMP),
                udf,
                [lh, rh, lv, rv],
            );
        }
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
                    labels.alias(LABELS),
                    col(TIMESTAMP),
                    value.alias(VALUE),
                ])?
                .build()?
        };
        Ok(Planned::Vector(plan))
    }

    pub(super) fn vector_vector(
        &self,
        lhs: LogicalPlan,
        rhs: LogicalPlan,
        b: &BinaryExpr,
        op: BinaryOp,
        native: Option<Notes>,
    ) -> PlanResult {
        let (lhs, rhs) = match native {
            Some(_) => (with_histogram_column(lhs)?, with_histogram_column(rhs)?),
            None => (lhs, rhs),
        };
        // The histogram column of side `s` (`l` or `r`), when the plan carries one.
        let carries = native.is_some();
        let histogram = |s: &str| carries.then(|| col(format!("{s}.{HISTOGRAM}")));
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
            _ if op.is_set() => None,
            Some(VectorMatchCardinality::OneToMany(_)) => Some("l"),
            _ => Some("r"),
        };
        let side = |plan: LogicalPlan, alias: &str| -> Result<LogicalPlan, PromqlError> {
            let keyed = LogicalPlanBuilder::from(plan)
                .project(
                    [
                        col(LABELS),
                        col(TIMESTAMP),
                        col(VALUE),
                        key(col(LABELS)).alias("k"),
                    ]
                    .into_iter()
                    .chain(carries.then(|| col(HISTOGRAM))),
                )?
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
        let project_side = |s: &str| -> Vec<Expr> {
            [
                col(format!("{s}.labels")).alias(LABELS),
                col(format!("{s}.timestamp")).alias(TIMESTAMP),
                col(format!("{s}.value")).alias(VALUE),
            ]
            .into_iter()
            .chain(histogram(s).map(|h| h.alias(HISTOGRAM)))
            .collect()
        };
        let project_lhs = project_side("l");
        match op {
            BinaryOp::And => {
                let plan = LogicalPlanBuilder::from(l_side)
                    .join(r_side, JoinType::LeftSemi, on, None)?
                    .project(project_lhs)?
                    .build()?;
                return Ok(Planned::Vector(plan));
            }
            BinaryOp::Unless => {
                let plan = LogicalPlanBuilder::from(l_side)
                    .join(r_side, JoinType::LeftAnti, on, None)?
                    .project(project_lhs)?
                    .build()?;
                return Ok(Planned::Vector(plan));
            }
            BinaryOp::Or => {
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
                    .project(project_side("r"))?
                    .build()?;
                let plan = LogicalPlanBuilder::from(left_plain)
                    .union(right_only)?
                    .build()?;
                return Ok(Planned::Vector(plan));
            }
            _ => {}
        }
        let comparison = op.is_comparison();
        let return_bool = modifier.is_some_and(|m| m.return_bool);
        let drops_name = op.drops_name(return_bool);
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
        let result = arith(op, lv.clone(), rv.clone());
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
            .project(
                [
                    labels.alias(LABELS),
                    timestamp.alias(TIMESTAMP),
                    check_key.alias("check_key"),
                    col("l.value"),
                    col("r.value"),
                ]
                .into_iter()
                .chain(histogram("l"))
                .chain(histogram("r")),
            )?
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
        if let (Some(notes), Some(lh), Some(rh)) = (native, histogram("l"), histogram("r")) {
            let udf = native_binary::binary_udf(op, many == "r", return_bool, notes);
            let input = joined.build()?;
            return native_result(input, col(LABELS), col(TIMESTAMP), udf, [lh, rh, lv, rv]);
        }
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
}

/// `plan` with a `histogram` column: its own, or a null one.
fn with_histogram_column(plan: LogicalPlan) -> Result<LogicalPlan, PromqlError> {
    if plan.schema().has_column_with_unqualified_name(HISTOGRAM) {
        return Ok(plan);
    }
    Ok(LogicalPlanBuilder::from(plan)
        .project(vec![
            col(LABELS),
            col(TIMESTAMP),
            col(VALUE),
            null_histogram().alias(HISTOGRAM),
        ])?
        .build()?)
}

/// A null of the histogram column's type.
fn null_histogram() -> Expr {
    cast(lit(ScalarValue::Null), histogram_type())
}

/// `plan`'s rows through [`native_binary::binary_udf`] (`udf` of `args`): those with a
/// result, as `labels`, `timestamp`, the result's value and histogram.
fn native_result(
    plan: LogicalPlan,
    labels: Expr,
    timestamp: Expr,
    udf: datafusion::logical_expr::ScalarUDF,
    args: [Expr; 4],
) -> PlanResult {
    const RESULT: &str = "binary_result";
    let field = |name: &str| datafusion::functions::core::expr_fn::get_field(col(RESULT), name);
    let call = Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf), args.to_vec()));
    let plan = LogicalPlanBuilder::from(plan)
        .project(vec![labels, timestamp, call.alias(RESULT)])?
        .filter(field(native_binary::KEEP))?
        .project(vec![
            col(LABELS),
            col(TIMESTAMP),
            field(native_binary::VALUE).alias(VALUE),
            field(native_binary::HISTOGRAM).alias(HISTOGRAM),
        ])?
        .build()?;
    Ok(Planned::Vector(plan))
}
