//! Binary operators: vector/scalar arithmetic and comparison, vector matching with
//! `on`/`ignoring`/`group_*`, and set operators.

use super::*;

impl Planner {
    /// `v * n`, `n * v` or `v / n` for a number `n` and an expression `v` that carries native
    /// histograms (see [`Planner::plan_keeping_histograms`]): histograms scaled, floats
    /// computed as usual, the metric name dropped. None for other expressions.
    pub(super) async fn histogram_scaled(
        &self,
        b: &BinaryExpr,
        steps: Steps,
    ) -> Option<PlanResult> {
        let op = BinaryOp::from_token(b.op).ok()?;
        let (n, n_on_left) = match (const_arg(Some(&b.lhs)), const_arg(Some(&b.rhs))) {
            (Err(_), Ok(n)) => (n, false),
            (Ok(n), Err(_)) => (n, true),
            _ => return None,
        };
        let vector: &PromExpr = if n_on_left { &b.rhs } else { &b.lhs };
        let udf = match (op, n_on_left) {
            (BinaryOp::Mul, _) => super::super::native::scale_udf(),
            (BinaryOp::Div, false) => super::super::native::div_udf(),
            _ => return None,
        };
        let input = match self.plan_keeping_histograms(vector, steps).await? {
            Ok(Planned::Vector(input)) => input,
            Ok(_) => return None,
            Err(e) => return Some(Err(e)),
        };
        if !input.schema().has_column_with_unqualified_name(HISTOGRAM) {
            return None;
        }
        let value = match n_on_left {
            true => arith(op, lit(n), col(VALUE)),
            false => arith(op, col(VALUE), lit(n)),
        };
        let scaled = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(udf),
            vec![col(HISTOGRAM), lit(n)],
        ));
        let plan = LogicalPlanBuilder::from(input)
            .project(vec![
                l::call(l::drop_name_udf(), col(LABELS), &[]).alias(LABELS),
                col(TIMESTAMP),
                value.alias(VALUE),
                scaled.alias(HISTOGRAM),
            ])
            .and_then(|p| p.build());
        Some(plan.map(Planned::Vector).map_err(Into::into))
    }

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
            Arc::new(super::super::native::scale_udf()),
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

    /// An operand of `op` whose native histograms the operator cannot take, when it has
    /// some: its float rows, the histograms left out with Prometheus's info about
    /// incompatible sample types. None when the operand has no histogram column (or storage
    /// none at all): the caller plans it for floats. `other_vector` tells whether the other
    /// operand is a vector too: `==` and `!=` between two vectors compare histograms, which
    /// is not done yet, so they are left out without the info (None).
    async fn float_operand(
        &self,
        expr: &PromExpr,
        op: BinaryOp,
        histogram_on_left: bool,
        other_vector: bool,
        steps: Steps,
    ) -> Option<PlanResult> {
        let equality = matches!(op, BinaryOp::Eq | BinaryOp::Ne) && other_vector;
        if op.is_set() || equality || matches!(strip_parens(expr), PromExpr::NumberLiteral(_)) {
            return None;
        }
        let input = match self.plan_keeping_histograms(expr, steps).await? {
            Ok(Planned::Vector(input)) => input,
            Ok(_) => return None,
            Err(e) => return Some(Err(e)),
        };
        if !input.schema().has_column_with_unqualified_name(HISTOGRAM) {
            return None;
        }
        let other = if other_vector { "histogram" } else { "float" };
        let (left, right) = match histogram_on_left {
            true => ("histogram", other),
            false => (other, "histogram"),
        };
        let info = format!(
            "PromQL info: incompatible sample types encountered for binary operator \"{op}\": {left} {op} {right}"
        );
        let floats = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(super::super::native::float_row_udf(
                self.infos.clone(),
                info,
            )),
            vec![col(HISTOGRAM)],
        ));
        let plan = LogicalPlanBuilder::from(input)
            .filter(floats)
            .and_then(|p| p.project(vec![col(LABELS), col(TIMESTAMP), col(VALUE)]))
            .and_then(|p| p.build());
        Some(plan.map(Planned::Vector).map_err(Into::into))
    }

    /// [`Planner::float_operand`], its future built and boxed in this function's frame: a
    /// deep expression's recursion through [`Planner::binary`] then costs no more stack
    /// than before histograms (in a debug build a future built in `binary` would take its
    /// whole size in every level's frame).
    #[inline(never)]
    fn float_operand_boxed<'a>(
        &'a self,
        expr: &'a PromExpr,
        op: BinaryOp,
        histogram_on_left: bool,
        other_vector: bool,
        steps: Steps,
    ) -> BoxFuture<'a, Option<PlanResult>> {
        self.float_operand(expr, op, histogram_on_left, other_vector, steps)
            .boxed()
    }

    pub(super) async fn binary(&self, b: &BinaryExpr, steps: Steps) -> PlanResult {
        let op = BinaryOp::from_token(b.op)?;
        let vector = |e: &PromExpr| !matches!(strip_parens(e), PromExpr::NumberLiteral(_));
        let (left_vector, right_vector) = (vector(&b.lhs), vector(&b.rhs));
        // Only where storage holds histograms (see `float_operand_boxed`).
        let histograms = self.any_histograms;
        let lhs = match histograms {
            true => {
                self.float_operand_boxed(&b.lhs, op, true, right_vector, steps.clone())
                    .await
            }
            false => None,
        };
        let lhs = match lhs {
            Some(planned) => planned?,
            None => self.plan_at(&b.lhs, steps.clone()).await?,
        };
        let rhs = match histograms {
            true => {
                self.float_operand_boxed(&b.rhs, op, false, left_vector, steps.clone())
                    .await
            }
            false => None,
        };
        let rhs = match rhs {
            Some(planned) => planned?,
            None => self.plan_at(&b.rhs, steps.clone()).await?,
        };
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        match (lhs, rhs) {
            (Planned::Const(a), Planned::Const(c)) => {
                // The parser only admits scalar comparisons with `bool`, giving 0 or 1.
                let v = op
                    .on_floats(a, c)
                    .ok_or_else(|| PromqlError::BadData(format!("operator {op} on scalars")))?;
                Ok(Planned::Const(v))
            }
            (Planned::Vector(a), Planned::Vector(c)) => self.vector_vector(a, c, b, op),
            (Planned::Vector(v), other) => {
                self.vector_scalar(v, other, op, return_bool, false, &steps)
            }
            (other, Planned::Vector(v)) if !matches!(other, Planned::Vector(_)) => {
                self.vector_scalar(v, other, op, return_bool, true, &steps)
            }
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

    /// A vector with a scalar (constant or per step) on one side.
    pub(super) fn vector_scalar(
        &self,
        vector: LogicalPlan,
        scalar: Planned,
        op: BinaryOp,
        return_bool: bool,
        scalar_on_left: bool,
        _steps: &Steps,
    ) -> PlanResult {
        let comparison = op.is_comparison();
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

    pub(super) fn vector_vector(
        &self,
        lhs: LogicalPlan,
        rhs: LogicalPlan,
        b: &BinaryExpr,
        op: BinaryOp,
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
            _ if op.is_set() => None,
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
        let comparison = op.is_comparison();
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
}
