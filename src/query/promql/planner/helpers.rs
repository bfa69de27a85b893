//! Helpers of the planner's parts: grouping, bounds of the data steps need, step plans
//! and the aggregate a downsampled window stands for.

use super::*;

/// Result labels of a vector-vector operation: the `many` side's labels (name dropped for
/// arithmetic), trimmed to the matching labels for one-to-one `on`/`ignoring`, plus the
/// `group_left`/`group_right` labels copied from the `one` side.
/// `'1'` when any input of a group had its name marked dropped (column `dropped`).
pub(super) fn any_name_dropped() -> Expr {
    agg::max(l::call(l::name_dropped_udf(), col(LABELS), &[])).alias("dropped")
}

/// An aggregation's result labels: the group, marked when grouping kept a name some input
/// had marked dropped.
/// How an aggregation's rows form groups at each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Grouping {
    /// No labels survive (no modifier, or `by ()`): one group per step. Grouping on the
    /// timestamp alone lets DataFusion use its primitive-key hash table; a constant label
    /// column beside it made `count()` five times slower.
    Whole,
    /// By the group label set in column `g`; `by_name` when `by` names `__name__`.
    ByLabels { by_name: bool },
}

impl Grouping {
    pub(super) fn of(modifier: Option<&LabelModifier>, by_name: bool) -> Grouping {
        match modifier {
            None => Grouping::Whole,
            Some(LabelModifier::Include(names)) if names.labels.is_empty() => Grouping::Whole,
            Some(_) => Grouping::ByLabels { by_name },
        }
    }

    pub(super) fn keys(self) -> Vec<Expr> {
        match self {
            Grouping::Whole => vec![col(TIMESTAMP)],
            Grouping::ByLabels { .. } => vec![col("g"), col(TIMESTAMP)],
        }
    }

    /// The result's labels column after aggregating.
    pub(super) fn labels(self) -> Expr {
        match self {
            Grouping::Whole => lit("").alias(LABELS),
            Grouping::ByLabels { by_name: true } => mark_if(col("g"), col("dropped")).alias(LABELS),
            Grouping::ByLabels { by_name: false } => col("g").alias(LABELS),
        }
    }
}

/// `labels`, with the name marked dropped where `flag` is `'1'`.
pub(super) fn mark_if(labels: Expr, flag: Expr) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(l::mark_if_udf()),
        vec![labels, flag],
    ))
}

/// The labels a filled-in sample gets from the sample it matches: the `on` labels, or all
/// but the `ignoring` ones and `__name__`.
pub(super) fn matching_labels(labels: Expr, matching: Option<&LabelModifier>) -> Expr {
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

pub(super) fn result_labels(
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

pub(super) fn step_node(
    input: LogicalPlan,
    steps: Steps,
    window: Window,
    notes: StepNotes,
) -> Result<LogicalPlan, PromqlError> {
    step_node_naming(input, (steps, window), false, notes)
}

/// [`step_node`] whose output marks `__name__` dropped when `drop_name`.
pub(super) fn step_node_naming(
    input: LogicalPlan,
    (steps, window): (Steps, Window),
    drop_name: bool,
    notes: StepNotes,
) -> Result<LogicalPlan, PromqlError> {
    let histograms = input
        .schema()
        .has_column_with_unqualified_name(crate::query::scan::HISTOGRAM)
        && crate::query::promql::step::carries_histograms(&window);
    let schema = match histograms {
        true => super::step_schema_with_histograms(),
        false => step_schema(),
    };
    let schema = Arc::new(DFSchema::try_from(schema.as_ref().clone())?);
    Ok(LogicalPlan::Extension(Extension {
        node: Arc::new(PromStep {
            input,
            schema,
            steps,
            window,
            drop_name,
            notes,
            stats_hints: false,
        }),
    }))
}

/// Data times `(min, max]` the steps read, widened by `window`.
pub(super) fn data_bounds(steps: &Steps, window: i64) -> (i64, i64) {
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
pub(super) fn absent_labels(vs: &VectorSelector) -> String {
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
pub(super) fn info_reference(expr: &PromExpr) -> Option<(Option<AtModifier>, Option<Offset>)> {
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

pub(super) fn offset_of_ms(ms: i64) -> Option<Offset> {
    let d = Duration::from_millis(ms.unsigned_abs());
    match ms {
        0 => None,
        ms if ms > 0 => Some(Offset::Pos(d)),
        _ => Some(Offset::Neg(d)),
    }
}

/// A float as OpenMetrics writes it in a label: `1.0`, `0.25`, `+Inf`, `NaN`.
pub(super) fn open_metrics_float(v: f64) -> String {
    match v {
        v if v.is_nan() => "NaN".into(),
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        v if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.1}"),
        v => v.to_string(),
    }
}

pub(in crate::query::promql) fn strip_parens(expr: &PromExpr) -> &PromExpr {
    match expr {
        PromExpr::Paren(p) => strip_parens(&p.expr),
        other => other,
    }
}

pub(super) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(in crate::query::promql) fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        Some(Offset::Pos(d)) => duration_ms(*d),
        Some(Offset::Neg(d)) => -duration_ms(*d),
        None => 0,
    }
}

pub(in crate::query::promql) fn system_time_ms(t: std::time::SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => duration_ms(d),
        Err(e) => -duration_ms(e.duration()),
    }
}

/// A parameter that is a constant expression (`0.5`, `-1`, `1./6.`), evaluated now.
pub(in crate::query::promql) fn const_arg(expr: Option<&PromExpr>) -> Result<f64, PromqlError> {
    match expr.map(strip_parens) {
        Some(PromExpr::NumberLiteral(n)) => Ok(n.val),
        Some(PromExpr::Unary(u)) => const_arg(Some(&u.expr)).map(|v| -v),
        Some(PromExpr::Binary(b)) => {
            let (l, r) = (const_arg(Some(&b.lhs))?, const_arg(Some(&b.rhs))?);
            BinaryOp::from_token(b.op)?
                .on_floats(l, r)
                .ok_or_else(|| PromqlError::Unsupported("a non-constant scalar parameter".into()))
        }
        _ => Err(PromqlError::Unsupported(
            "a non-constant scalar parameter".into(),
        )),
    }
}

pub(super) fn string_args(args: &[&PromExpr]) -> Result<Vec<String>, PromqlError> {
    args.iter()
        .map(|a| match strip_parens(a) {
            PromExpr::StringLiteral(s) => Ok(s.val.clone()),
            _ => Err(PromqlError::BadData("expected a string argument".into())),
        })
        .collect()
}

pub(super) fn replace_labels(plan: LogicalPlan, labels: Expr) -> Result<LogicalPlan, PromqlError> {
    Ok(LogicalPlanBuilder::from(plan)
        .project(vec![labels.alias(LABELS), col(TIMESTAMP), col(VALUE)])?
        .build()?)
}

/// Applies `f` to the value column (or folds a constant); `drops_name` for functions and
/// arithmetic, which remove the metric name.
pub(super) fn map_value(
    planned: Planned,
    f: impl Fn(Expr) -> Expr,
    drops_name: bool,
) -> PlanResult {
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
pub(super) fn fold_constant(expr: Expr) -> Result<f64, PromqlError> {
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

/// The DataFusion expression for a PromQL arithmetic or comparison operator.
pub(super) fn arith(op: BinaryOp, a: Expr, b: Expr) -> Expr {
    let f = |o: Operator| binary_expr(a.clone(), o, b.clone());
    match op {
        BinaryOp::Add => f(Operator::Plus),
        BinaryOp::Sub => f(Operator::Minus),
        BinaryOp::Mul => f(Operator::Multiply),
        BinaryOp::Div => f(Operator::Divide),
        BinaryOp::Mod => f(Operator::Modulo),
        BinaryOp::Pow => datafusion::functions::math::expr_fn::power(a, b),
        BinaryOp::Atan2 => datafusion::functions::math::expr_fn::atan2(a, b),
        BinaryOp::Eq => f(Operator::Eq).and(not_nan(a)),
        BinaryOp::Ne => f(Operator::NotEq).or(is_nan(a)),
        BinaryOp::Gt => ordered(f(Operator::Gt), a, b),
        BinaryOp::Lt => ordered(f(Operator::Lt), a, b),
        BinaryOp::Ge => ordered(f(Operator::GtEq), a, b),
        BinaryOp::Le => ordered(f(Operator::LtEq), a, b),
        // Set operators are joins, and trims act on histograms
        // (`super::super::native_binary`): neither computes a value here.
        BinaryOp::And
        | BinaryOp::Or
        | BinaryOp::Unless
        | BinaryOp::TrimUpper
        | BinaryOp::TrimLower => f(Operator::Plus),
    }
}

/// [`arith`] between two scalars, where a comparison (always with `bool`) gives 1 or 0.
pub(super) fn scalar_arith(op: BinaryOp, a: Expr, b: Expr) -> Expr {
    let result = arith(op, a, b);
    if op.is_comparison() {
        cast(result, DataType::Float64)
    } else {
        result
    }
}

// DataFusion orders floats totally (NaN equals NaN and sorts above everything); PromQL
// compares as IEEE 754 does, where every comparison with NaN but `!=` is false.

pub(super) fn is_nan(v: Expr) -> Expr {
    datafusion::functions::math::expr_fn::isnan(v)
}

pub(super) fn not_nan(v: Expr) -> Expr {
    Expr::Not(Box::new(is_nan(v)))
}

pub(super) fn ordered(comparison: Expr, a: Expr, b: Expr) -> Expr {
    comparison.and(not_nan(a)).and(not_nan(b))
}

pub(super) fn math_function(name: &str) -> Option<fn(Expr) -> Expr> {
    use datafusion::functions::math::expr_fn as m;
    Some(match name {
        "abs" => m::abs,
        "ceil" => m::ceil,
        "floor" => m::floor,
        "exp" => m::exp,
        "ln" => m::ln,
        "log2" => m::log2,
        "log10" => m::log10,
        // DataFusion's fails on a negative number; Go's gives NaN.
        "sqrt" => |v| crate::query::promql::math::sqrt_udf().call(vec![v]),
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

/// Prometheus's `round(v, to)`, given `1 / to`: it rounds half up through the inverse,
/// `floor(v * (1/to) + 0.5) / (1/to)`.
pub(super) fn round_expr(v: Expr, inverse: Expr) -> Expr {
    datafusion::functions::math::expr_fn::floor(v * inverse.clone() + lit(0.5)) / inverse
}

impl Planner {
    /// A vector with scalar parameters beside each sample, for functions whose parameters
    /// may be computed per step (`clamp(v, scalar(...), 1)`): each constant parameter is a
    /// literal, each per-step one a column joined on the timestamp. Returns the plan
    /// (labels, timestamp, value and those columns) and the parameters' expressions.
    pub(super) async fn with_scalars(
        &self,
        vector: Planned,
        params: &[&PromExpr],
        steps: &Steps,
    ) -> Result<(LogicalPlan, Vec<Expr>), PromqlError> {
        let Planned::Vector(plan) = vector else {
            return Err(PromqlError::BadData("expected an instant vector".into()));
        };
        self.beside(plan, &[LABELS, TIMESTAMP, VALUE], params, steps)
            .await
    }

    /// [`Planner::with_scalars`] for any plan with a timestamp column: keeps the columns
    /// `keep` and adds the parameters'.
    pub(super) async fn beside(
        &self,
        mut plan: LogicalPlan,
        keep: &[&str],
        params: &[&PromExpr],
        steps: &Steps,
    ) -> Result<(LogicalPlan, Vec<Expr>), PromqlError> {
        let mut columns: Vec<Expr> = keep.iter().map(|c| col(*c)).collect();
        let mut exprs = Vec::with_capacity(params.len());
        for (i, param) in params.iter().enumerate() {
            match self.plan_at(param, steps.clone()).await? {
                Planned::Const(c) => exprs.push(lit(c)),
                Planned::Scalar(scalar) => {
                    let (time, value) = (format!("pt{i}"), format!("p{i}"));
                    let scalar = LogicalPlanBuilder::from(scalar)
                        .project(vec![col(TIMESTAMP).alias(&time), col(VALUE).alias(&value)])?
                        .build()?;
                    columns.push(col(&value));
                    plan = LogicalPlanBuilder::from(plan)
                        .join(scalar, JoinType::Inner, (vec![TIMESTAMP], vec![time]), None)?
                        .project(columns.clone())?
                        .build()?;
                    exprs.push(col(&value));
                }
                _ => return Err(PromqlError::BadData("expected a scalar parameter".into())),
            }
        }
        Ok((plan, exprs))
    }
}

pub(super) fn join_on_time(a: LogicalPlan, b: LogicalPlan) -> Result<LogicalPlan, PromqlError> {
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
pub(super) fn label_get_udf() -> datafusion::logical_expr::ScalarUDF {
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
pub(super) fn label_set_dynamic_udf() -> datafusion::logical_expr::ScalarUDF {
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
pub(super) enum Aggregate {
    Avg,
    Sum,
    Min,
    Max,
    Count,
    Counter,
}

impl Aggregate {
    pub(super) fn for_function(func: RangeFunc) -> Aggregate {
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
    pub(super) fn value(self, table: &str) -> Expr {
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

/// `plan`'s float samples, its native histograms (if it carries any) left out.
pub(crate) fn floats_only(plan: LogicalPlan) -> Result<LogicalPlan, PromqlError> {
    if !plan.schema().has_column_with_unqualified_name(HISTOGRAM) {
        return Ok(plan);
    }
    Ok(LogicalPlanBuilder::from(plan)
        .filter(col(HISTOGRAM).is_null())?
        .project(vec![col(LABELS), col(TIMESTAMP), col(VALUE)])?
        .build()?)
}
