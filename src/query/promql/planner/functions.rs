//! Function calls: range functions, `absent`, histograms, subqueries, `info` and the
//! functions that are plain UDFs over a vector.

use super::*;

impl Planner {
    pub(super) async fn call(&self, call: &Call, steps: Steps) -> PlanResult {
        let name = call.func.name;
        let args: Vec<&PromExpr> = call.args.args.iter().map(|a| a.as_ref()).collect();
        if let Some(func) = RangeFunc::from_name(name) {
            return self.range_function(func, &args, steps).await;
        }
        match name {
            "time" => Ok(Planned::Scalar(self.steps_plan(&steps, seconds)?)),
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
                if !self.is_label_name(&s[0]) {
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
                if !self.is_label_name(&s[0]) {
                    return Err(PromqlError::Execution(format!(
                        "invalid destination label name in label_join(): {}",
                        s[0]
                    )));
                }
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
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
            | "histogram_stdvar" => {
                let stat = HistogramStat::from_name(name)
                    .ok_or_else(|| PromqlError::BadData(format!("unknown function {name}")))?;
                self.histogram_stat(stat, args[0], steps).await
            }
            "histogram_quantile" => {
                if let Ok(q) = const_arg(Some(args[0])) {
                    self.check_quantile(q, args[0]);
                }
                let classic = self
                    .buckets(BucketKernel::Quantile, args[1], &args[..1], steps.clone())
                    .await?;
                self.with_native_histograms(classic, args[1], &args[..1], steps)
                    .await
            }
            "histogram_quantiles" => self.histogram_quantiles(&args, steps).await,
            "histogram_fraction" => {
                let classic = self
                    .buckets(BucketKernel::Fraction, args[2], &args[..2], steps.clone())
                    .await?;
                self.with_native_histograms(classic, args[2], &args[..2], steps)
                    .await
            }
            "start" => {
                self.pin_time();
                Ok(Planned::Const(self.start as f64 / 1000.0))
            }
            "end" => {
                self.pin_time();
                Ok(Planned::Const(self.end as f64 / 1000.0))
            }
            "range" => Ok(Planned::Const((self.end - self.start) as f64 / 1000.0)),
            "step" => Ok(Planned::Const(self.step as f64 / 1000.0)),
            "min_of" | "max_of" => {
                let values: Vec<f64> = args
                    .iter()
                    .map(|a| const_arg(Some(*a)))
                    .collect::<Result<_, _>>()?;
                // Go's math.Min/Max: NaN wins.
                let pick = if name == "min_of" {
                    crate::gocompat::math::min
                } else {
                    crate::gocompat::math::max
                };
                Ok(Planned::Const(
                    values.into_iter().reduce(pick).unwrap_or(f64::NAN),
                ))
            }
            "minute" | "hour" | "day_of_month" | "day_of_week" | "day_of_year"
            | "days_in_month" | "month" | "year" => {
                let inner = match args.first() {
                    Some(a) => self.plan_at(a, steps).await?,
                    None => Planned::Vector(self.steps_plan(&steps, seconds)?),
                };
                let udf = crate::query::promql::aggregates::date_udf(name);
                map_value(inner, move |v| udf.call(vec![v]), true)
            }
            "clamp" | "clamp_min" | "clamp_max" => {
                let inner = self.plan_at(args[0], steps.clone()).await?;
                let bounds = |ps: &[Expr]| match name {
                    "clamp" => (ps[0].clone(), ps[1].clone()),
                    "clamp_min" => (ps[0].clone(), lit(f64::INFINITY)),
                    _ => (lit(f64::NEG_INFINITY), ps[0].clone()),
                };
                let consts: Result<Vec<f64>, _> =
                    args[1..].iter().map(|a| const_arg(Some(*a))).collect();
                if let Ok(consts) = consts {
                    let consts: Vec<Expr> = consts.into_iter().map(lit).collect();
                    let (lo, hi) = bounds(&consts);
                    if fold_constant(lo.clone())? > fold_constant(hi.clone())? {
                        return Ok(Planned::Vector(self.empty_vector()?));
                    }
                    let clamp = crate::query::promql::math::clamp_udf();
                    return map_value(
                        inner,
                        move |v| clamp.call(vec![v, lo.clone(), hi.clone()]),
                        true,
                    );
                }
                // Bounds computed per step: a step whose maximum is below its minimum has
                // no sample.
                let (plan, params) = self.with_scalars(inner, &args[1..], &steps).await?;
                let (lo, hi) = bounds(&params);
                let clamp = crate::query::promql::math::clamp_udf();
                Ok(Planned::Vector(
                    LogicalPlanBuilder::from(plan)
                        .project(vec![
                            l::call(l::drop_name_udf(), col(LABELS), &[]).alias(LABELS),
                            col(TIMESTAMP),
                            clamp.call(vec![col(VALUE), lo, hi]).alias(VALUE),
                        ])?
                        .filter(col(VALUE).is_not_null())?
                        .build()?,
                ))
            }
            "round" => {
                let inner = self.plan_at(args[0], steps.clone()).await?;
                let Some(to) = args.get(1) else {
                    return map_value(inner, move |v| round_expr(v, lit(1.0)), true);
                };
                if let Ok(to) = const_arg(Some(*to)) {
                    return map_value(inner, move |v| round_expr(v, lit(1.0 / to)), true);
                }
                let (plan, params) = self.with_scalars(inner, &args[1..2], &steps).await?;
                let inverse = lit(1.0) / params[0].clone();
                Ok(Planned::Vector(
                    LogicalPlanBuilder::from(plan)
                        .project(vec![
                            l::call(l::drop_name_udf(), col(LABELS), &[]).alias(LABELS),
                            col(TIMESTAMP),
                            round_expr(col(VALUE), inverse).alias(VALUE),
                        ])?
                        .build()?,
                ))
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

    pub(super) async fn range_function(
        &self,
        func: RangeFunc,
        args: &[&PromExpr],
        steps: Steps,
    ) -> PlanResult {
        // The functions that ignore histograms with an info read them to tell.
        let histograms =
            self.any_histograms && super::super::native::ignores_histograms_with_info(func);
        self.range_function_with(func, args, steps, histograms)
            .await
    }

    /// [`Planner::range_function`], reading native histograms too when `histograms` (and
    /// the function evaluates them over a plain range selector).
    pub(super) async fn range_function_with(
        &self,
        func: RangeFunc,
        args: &[&PromExpr],
        steps: Steps,
        histograms: bool,
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
                let with_histograms = histograms
                    && match mode {
                        // Also read by the functions that ignore them with an info.
                        SelectorMode::Plain => {
                            super::super::native::reads_histograms(func)
                                || super::super::native::ignores_histograms_with_info(func)
                        }
                        _ => extended::check(mode, func.name()).is_ok(),
                    };
                let aggregate = Aggregate::for_function(func);
                // Read once: the choice of function depends on what is read.
                let layers = self.downsampled_layers(min, max);
                if aggregate == Aggregate::Count && !layers.is_empty() {
                    // A downsampled row stands for `count` samples: add them up.
                    func = RangeFunc::SumOverTime;
                }
                let raw = self
                    .selected_samples(
                        &ms.vs,
                        (min, max),
                        SampleColumns {
                            starts: with_starts,
                            histograms: with_histograms,
                        },
                        aggregate,
                        layers,
                    )
                    .await?;
                (raw, range, steps)
            }
            PromExpr::Subquery(sq) => {
                let with_histograms = histograms && super::super::native::reads_histograms(func);
                self.subquery(sq, &steps, with_histograms).await?
            }
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
            infos: Some(self.infos.clone()),
            position: self.position(range_arg),
        };
        let window = Window::Range {
            range,
            func,
            params,
            mode,
            lookback: self.lookback,
        };
        // Anchored and smoothed selections read histograms in full.
        let over_selector = matches!(strip_parens(range_arg), PromExpr::MatrixSelector(_))
            && mode == SelectorMode::Plain;
        let node = step_node_naming(input, (steps, window), !func.keeps_name(), notes)?;
        Ok(Planned::Vector(match over_selector {
            true => self.decoded(node),
            false => node,
        }))
    }

    /// Adds the rows of the parameters that vary by step to a range function's input,
    /// labelled so `PromStep` tells them apart (see [`param_labels`]).
    pub(super) async fn with_step_params(
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
    pub(super) async fn selected_sample(
        &self,
        vs: &VectorSelector,
        steps: Steps,
        emit: Emit,
    ) -> PlanResult {
        let steps = self.with_modifiers(&steps, &vs.offset, &vs.at);
        let bounds = data_bounds(&steps, self.lookback);
        let layers = self.downsampled_layers(bounds.0, bounds.1);
        let raw = self
            .selected_samples(
                vs,
                bounds,
                SampleColumns {
                    starts: emit == Emit::StartTime,
                    // A histogram's sample has a time and start time too.
                    histograms: self.any_histograms,
                },
                Aggregate::Avg,
                layers,
            )
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
    pub(super) async fn start_timestamp(&self, arg: &PromExpr, steps: Steps) -> PlanResult {
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
    pub(super) async fn info(&self, args: &[&PromExpr], steps: Steps) -> PlanResult {
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
        let raw = self
            .raw_samples_with(&selector, min, max, self.any_histograms)
            .await?;
        let info = step_node(
            raw,
            info_steps,
            Window::Instant {
                lookback: self.lookback,
                emit: Emit::FloatSampleTime,
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

    /// Plans a subquery's inner expression at its own steps, with its native histograms
    /// when `histograms` and it can carry them; returns the rows, the range and the outer
    /// steps (with the subquery's offset and `@`).
    pub(super) async fn subquery(
        &self,
        sq: &SubqueryExpr,
        steps: &Steps,
        histograms: bool,
    ) -> Result<(LogicalPlan, i64, Steps), PromqlError> {
        let outer = self.with_modifiers(steps, &sq.offset, &sq.at);
        let range = duration_ms(sq.range);
        let step = sq.step.map(duration_ms).unwrap_or(60_000).max(1);
        let (first, last) = data_bounds(&outer, 0);
        // Inner steps are aligned to multiples of the subquery step, as in Prometheus: the
        // plan holds steps of this time.
        self.pin_time();
        let inner_start = (first - range).div_euclid(step) * step + step;
        let inner = Planner {
            storage: self.storage.clone(),
            start: inner_start,
            end: last,
            step,
            query_bounds: self.query_bounds,
            resolution: self.resolution,
            lookback: self.lookback,
            warnings: Default::default(),
            infos: self.infos.clone(),
            source: self.source.clone(),
            selected_series: self.selected_series.clone(),
            any_histograms: self.any_histograms,
            time_pinned: self.time_pinned.clone(),
            // Prometheus decodes histograms under a subquery in full.
            decoding: HistogramDecoding::FullForced,
        };
        let inner_steps = inner.steps(0, None);
        let keeping = match histograms {
            true => Box::pin(inner.plan_keeping_histograms(&sq.expr, inner_steps.clone())).await,
            false => None,
        };
        let planned = match keeping {
            Some(planned) => planned?,
            None => inner.plan_at(&sq.expr, inner_steps.clone()).await?,
        };
        let rows = match planned {
            Planned::Vector(p) | Planned::Scalar(p) => p,
            Planned::Const(c) => inner.steps_plan(&inner_steps, move |_| lit(c))?,
            _ => {
                return Err(PromqlError::BadData(
                    "subquery needs an instant vector or scalar".into(),
                ));
            }
        };
        let rows = match rows.schema().has_column_with_unqualified_name(HISTOGRAM) {
            true => unhinted(rows)?,
            false => rows,
        };
        Ok((rows, range, outer))
    }

    /// `histogram_quantile(φ, v)` or `histogram_fraction(lower, upper, v)` (by the number of
    /// `params`) of the native histograms of `v`, added to `classic`, the answer from
    /// classic buckets: when `v` is a selector (other expressions carry no histograms yet)
    /// and the parameters are constants.
    async fn with_native_histograms(
        &self,
        classic: Planned,
        arg: &PromExpr,
        params: &[&PromExpr],
        steps: Steps,
    ) -> PlanResult {
        let Planned::Vector(classic) = classic else {
            return Ok(classic);
        };
        let Ok(values) = params
            .iter()
            .map(|p| const_arg(Some(*p)))
            .collect::<Result<Vec<f64>, _>>()
        else {
            return Ok(Planned::Vector(classic));
        };
        let native = match self
            .decoding(HistogramDecoding::FullForced)
            .plan_keeping_histograms(arg, steps)
            .await
        {
            Some(planned) => planned?,
            None => return Ok(Planned::Vector(classic)),
        };
        let Planned::Vector(native) = native else {
            return Ok(Planned::Vector(classic));
        };
        if !native.schema().has_column_with_unqualified_name(HISTOGRAM) {
            return Ok(Planned::Vector(classic));
        }
        let notes = super::super::native::NanNotes {
            infos: self.infos.clone(),
            position: self.position(arg),
        };
        let udf = match values.len() {
            1 => super::super::native::quantile_udf(notes),
            _ => super::super::native::fraction_udf(notes),
        };
        let name = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(label_get_udf()),
            vec![col(LABELS), lit(METRIC_NAME_LABEL)],
        ));
        let args: Vec<Expr> = (values.iter().map(|v| lit(*v)))
            .chain([col(HISTOGRAM), cast(name.clone(), DataType::Utf8)])
            .collect();
        let native = LogicalPlanBuilder::from(native)
            .filter(col(HISTOGRAM).is_not_null())?
            .project(vec![
                cast(
                    l::call(l::drop_name_udf(), col(LABELS), &[]),
                    DataType::Utf8,
                )
                .alias(LABELS),
                col(TIMESTAMP),
                Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf), args)).alias(VALUE),
                cast(name, DataType::Utf8).alias("metric"),
            ])?
            .build()?;
        // A series answered by classic buckets and a native histogram at one step has no
        // result, and a warning (Prometheus's "mix of classic and native histograms").
        let classic = LogicalPlanBuilder::from(classic)
            .project(vec![
                col(LABELS),
                col(TIMESTAMP),
                col(VALUE),
                lit(ScalarValue::Utf8(None)).alias("metric"),
            ])?
            .build()?;
        let unmixed =
            super::super::native::classic_or_native_udf(super::super::native_binary::Notes {
                infos: self.infos.clone(),
                warnings: self.warnings.clone(),
                position: self.position(arg),
            });
        let plan = LogicalPlanBuilder::from(classic)
            .union(native)?
            .aggregate(
                vec![col(LABELS), col(TIMESTAMP)],
                vec![
                    agg::count(lit(1i64)).alias("n"),
                    // The one answer (a max would turn -Inf into f64::MIN).
                    agg::sum(col(VALUE)).alias("v"),
                    agg::max(col("metric")).alias("m"),
                ],
            )?
            .filter(Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(unmixed),
                vec![col("n"), col("m")],
            )))?
            .project(vec![col(LABELS), col(TIMESTAMP), col("v").alias(VALUE)])?
            .build()?;
        Ok(Planned::Vector(plan))
    }

    /// `histogram_count(v)` and its kin: a number of each native histogram of `v` (a
    /// selector's keep their histograms; other expressions have none yet), float samples
    /// left out, the metric name dropped.
    pub(super) async fn histogram_stat(
        &self,
        stat: HistogramStat,
        arg: &PromExpr,
        steps: Steps,
    ) -> PlanResult {
        let under = self.decoding(HistogramDecoding::Stats);
        let planned = match under.plan_keeping_histograms(arg, steps.clone()).await {
            Some(planned) => planned?,
            None => under.plan_at(arg, steps).await?,
        };
        let Planned::Vector(plan) = planned else {
            return Err(PromqlError::BadData("expected an instant vector".into()));
        };
        let value = match plan.schema().has_column_with_unqualified_name(HISTOGRAM) {
            true => Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(stat.udf()),
                vec![col(HISTOGRAM)],
            )),
            false => lit(ScalarValue::Float64(None)),
        };
        let plan = LogicalPlanBuilder::from(plan)
            .project(vec![
                l::call(l::drop_name_udf(), col(LABELS), &[]).alias(LABELS),
                col(TIMESTAMP),
                value.alias(VALUE),
            ])?
            .filter(col(VALUE).is_not_null())?
            .build()?;
        Ok(Planned::Vector(plan))
    }

    pub(super) async fn vector_arg(
        &self,
        expr: &PromExpr,
        steps: Steps,
    ) -> Result<LogicalPlan, PromqlError> {
        match self.plan_at(expr, steps).await? {
            Planned::Vector(p) => Ok(p),
            _ => Err(PromqlError::BadData("expected an instant vector".into())),
        }
    }

    /// [`Planner::vector_arg`] with the native histograms of an expression that can carry
    /// them (a `histogram` column), for functions that take any sample.
    pub(super) async fn vector_arg_keeping_histograms(
        &self,
        expr: &PromExpr,
        steps: Steps,
    ) -> Result<LogicalPlan, PromqlError> {
        match self.plan_keeping_histograms(expr, steps.clone()).await {
            Some(planned) => match planned? {
                Planned::Vector(p) => Ok(p),
                _ => Err(PromqlError::BadData("expected an instant vector".into())),
            },
            None => self.vector_arg(expr, steps).await,
        }
    }

    /// `scalar(v)`: the value if exactly one series has one at the step, else NaN.
    pub(super) fn scalar_of(
        &self,
        vector: LogicalPlan,
        steps: &Steps,
    ) -> Result<LogicalPlan, PromqlError> {
        let per_step = LogicalPlanBuilder::from(vector)
            .aggregate(
                vec![col(TIMESTAMP)],
                vec![
                    agg::count(col(VALUE)).alias("n"),
                    // The one answer (a max would turn -Inf into f64::MIN).
                    agg::sum(col(VALUE)).alias("v"),
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
    pub(super) async fn absent(&self, arg: &PromExpr, steps: Steps) -> PlanResult {
        // A native histogram is a sample too.
        let inner = self
            .vector_arg_keeping_histograms(arg, steps.clone())
            .await?;
        let labels = match strip_parens(arg) {
            PromExpr::VectorSelector(vs) => absent_labels(vs),
            PromExpr::MatrixSelector(ms) => absent_labels(&ms.vs),
            _ => String::new(),
        };
        self.steps_without(inner, labels, &steps)
    }

    /// 1, labelled `labels`, at every step where `present` has no row: `absent()`.
    pub(super) fn steps_without(
        &self,
        present: LogicalPlan,
        labels: String,
        steps: &Steps,
    ) -> PlanResult {
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
    pub(super) async fn absent_over_time(&self, arg: &PromExpr, steps: Steps) -> PlanResult {
        let labels = match strip_parens(arg) {
            PromExpr::MatrixSelector(ms) => absent_labels(&ms.vs),
            _ => String::new(),
        };
        // Histogram samples count as presence.
        let present = match self
            .range_function_with(
                RangeFunc::CountOverTime,
                &[arg],
                steps.clone(),
                self.any_histograms,
            )
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

    /// `histogram_quantiles(v, "label", φ...)`: one `histogram_quantile` per φ (of classic
    /// buckets and native histograms), told apart by `label`.
    pub(super) async fn histogram_quantiles(&self, args: &[&PromExpr], steps: Steps) -> PlanResult {
        let label = string_args(&args[1..2])?.remove(0);
        let mut union: Option<LogicalPlanBuilder> = None;
        for arg in &args[2..] {
            let q = const_arg(Some(*arg))?;
            self.check_quantile(q, arg);
            let classic = self
                .buckets(BucketKernel::Quantile, args[0], &[*arg], steps.clone())
                .await?;
            let Planned::Vector(plan) = self
                .with_native_histograms(classic, args[0], &[*arg], steps.clone())
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

    /// `histogram_quantile` / `histogram_fraction` over classic `_bucket` series: group by
    /// the labels without `le`, then compute from the group's (le, count) pairs.
    pub(super) async fn buckets(
        &self,
        kernel: BucketKernel,
        arg: &PromExpr,
        params: &[&PromExpr],
        steps: Steps,
    ) -> PlanResult {
        let inner = self.vector_arg(arg, steps.clone()).await?;
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
            .build()?;
        // The parameters (φ, or the bounds), constant or computed per step.
        let (plan, mut p) = self
            .beside(plan, &["g", TIMESTAMP, "les", "counts"], params, &steps)
            .await?;
        p.resize(2, lit(0.0));
        let plan = LogicalPlanBuilder::from(plan)
            .project(vec![
                l::call(l::drop_name_udf(), col("g"), &[]).alias(LABELS),
                col(TIMESTAMP),
                kernel
                    .call(
                        col("les"),
                        col("counts"),
                        col("g"),
                        (p[0].clone(), p[1].clone()),
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

    /// One row per step: `(labels = '', t, value(data time of t))`, `value` given the
    /// data time (ms, Int64) as an expression.
    pub(super) fn steps_plan(
        &self,
        steps: &Steps,
        value: impl Fn(Expr) -> Expr,
    ) -> Result<LogicalPlan, PromqlError> {
        if steps.times().next().is_none() {
            return self.empty_vector();
        }
        let data_time = match steps.at {
            Some(at) => lit(at - steps.offset),
            None if steps.offset == 0 => col(TIMESTAMP),
            None => col(TIMESTAMP) - lit(steps.offset),
        };
        let times = prepared::RowsTable::step_times(steps.start, steps.end, steps.step)?;
        let plan = LogicalPlanBuilder::scan("steps", provider_as_source(Arc::new(times)), None)?
            .project(vec![
                lit("").alias(LABELS),
                col(TIMESTAMP),
                cast(value(data_time), DataType::Float64).alias(VALUE),
            ])?
            .build()?;
        Ok(plan)
    }

    pub(super) fn empty_vector(&self) -> Result<LogicalPlan, PromqlError> {
        let schema = DFSchema::try_from(vector_schema().as_ref().clone())?;
        Ok(LogicalPlanBuilder::empty(false).build().map(|_| {
            LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(schema),
            })
        })?)
    }
}

/// A time in ms as seconds, as `time()` gives it.
fn seconds(ms: Expr) -> Expr {
    cast(ms, DataType::Float64) / lit(1000.0)
}

/// `rows` with their histograms' counter reset hints forgotten (see
/// [`super::super::native::unhinted_udf`]).
fn unhinted(rows: LogicalPlan) -> Result<LogicalPlan, PromqlError> {
    let columns: Vec<Expr> = (rows.schema().fields().iter())
        .map(|f| match f.name().as_str() {
            HISTOGRAM => Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(super::super::native::unhinted_udf()),
                vec![col(HISTOGRAM)],
            ))
            .alias(HISTOGRAM),
            name => col(name),
        })
        .collect();
    Ok(LogicalPlanBuilder::from(rows).project(columns)?.build()?)
}
