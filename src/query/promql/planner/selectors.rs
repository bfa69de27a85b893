//! Selectors: the series a selector picks and their samples from the head, raw blocks and
//! downsampled copies, as vector and matrix plans.

use super::*;

/// The optional columns of selected samples.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SampleColumns {
    /// The samples' start timestamps (`start_timestamp`, ms, null when unknown).
    pub starts: bool,
    /// The native histograms (`histogram`, null on a float's row).
    pub histograms: bool,
}

impl Planner {
    /// Raw samples of the series `vs` selects with data times in `(min, max]`:
    /// `(labels, timestamp, value)`. Where the query reads downsampled data, each window's
    /// average stands for its samples.
    pub async fn raw_samples(
        &self,
        vs: &VectorSelector,
        min: i64,
        max: i64,
    ) -> Result<LogicalPlan, PromqlError> {
        self.raw_samples_with(vs, min, max, false).await
    }

    /// [`Planner::raw_samples`], with the native histograms as a `histogram` column (null on
    /// a float's row, whose value is then the one not null) when `histograms`; without it,
    /// the float samples only. Downsampled data holds floats only.
    pub async fn raw_samples_with(
        &self,
        vs: &VectorSelector,
        min: i64,
        max: i64,
        histograms: bool,
    ) -> Result<LogicalPlan, PromqlError> {
        let layers = self.downsampled_layers(min, max);
        let histograms = histograms && layers.is_empty();
        let columns = SampleColumns {
            starts: false,
            histograms,
        };
        self.selected_samples(vs, (min, max), columns, Aggregate::Avg, layers)
            .await
    }

    /// The downsampled blocks (of the query's resolution) overlapping `(min, max]`.
    pub(super) fn downsampled_layers(&self, min: i64, max: i64) -> Vec<Layer> {
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
    /// as a column when `columns.starts`, native histograms when `columns.histograms` (raw
    /// data only), and `aggregate` standing for a downsampled window's samples of `layers`.
    pub(super) async fn selected_samples(
        &self,
        vs: &VectorSelector,
        (min, max): (i64, i64),
        columns: SampleColumns,
        aggregate: Aggregate,
        layers: Vec<Layer>,
    ) -> Result<LogicalPlan, PromqlError> {
        let with_starts = columns.starts;
        let metric = metric_name(vs);
        // A metric without native histograms plans for floats only.
        let with_histograms = columns.histograms
            && layers.is_empty()
            && self.storage.may_have_histograms(metric.as_deref());
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
        self.selected_series
            .fetch_add(selected.len(), std::sync::atomic::Ordering::Relaxed);
        let (selected_ids, batch) = prepared::series_batch(&selected)?;
        if !layers.is_empty() {
            // Which blocks have downsampled copies is decided here, for this time.
            self.pin_time();
        }
        let selection = Arc::new(prepared::Selection {
            selector,
            metric: metric.clone(),
            window: (min, max),
            histograms: with_histograms,
            may_downsample: self.resolution.ms != 0 || self.resolution.fill_gaps,
        });
        let series_table = prepared::RowsTable::series(selection.clone(), batch);
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
        let raw = prepared::SelectedSamples::new(
            selection,
            RawSamples::new(self.storage.clone(), metric.clone())
                .with_series(selected_ids)
                .without_blocks(sources),
        );
        // Counting over downsampled rows adds up their counts; a raw sample counts 1 (a
        // staleness marker stays NaN, for the step node to drop).
        let raw_value = match aggregate == Aggregate::Count && !layers.is_empty() {
            true => when(isnan(col("r.value")), col("r.value"))
                .otherwise(lit(1.0))?
                .alias("value"),
            false => col("r.value"),
        };
        // A native histogram's row has no value: without the histogram column, the float
        // samples only.
        let raw_filter = match with_histograms {
            true => in_window("r"),
            false => in_window("r").and(col("r.value").is_not_null()),
        };
        let mut samples = LogicalPlanBuilder::scan("r", provider_as_source(Arc::new(raw)), None)?
            .filter(raw_filter)?
            .project(
                [col("r.series_id"), col("r.timestamp"), raw_value]
                    .into_iter()
                    .chain(with_starts.then(|| col("r.start_timestamp")))
                    .chain(with_histograms.then(|| col("r.histogram"))),
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
                }))
                .chain(with_histograms.then(|| col("r.histogram").alias(HISTOGRAM))),
            )?
            .build()?;
        Ok(plan)
    }

    /// An instant vector selector; its native histograms are kept (in a `histogram`
    /// column) when `histograms`, for the consumers that evaluate them.
    pub(super) async fn vector_selector(
        &self,
        vs: &VectorSelector,
        steps: &Steps,
        histograms: bool,
    ) -> Result<LogicalPlan, PromqlError> {
        let steps = self.with_modifiers(steps, &vs.offset, &vs.at);
        let smoothed = selector_mode(vs) == SelectorMode::Smoothed;
        let (min, mut max) = data_bounds(&steps, self.lookback);
        if smoothed {
            max += self.lookback;
        }
        let raw = self.raw_samples_with(vs, min, max, histograms).await?;
        // Only a smoothed selection of histograms has something to say (interpolating
        // across kinds of samples).
        let notes = match smoothed && histograms {
            true => StepNotes {
                warnings: Some(self.warnings.clone()),
                infos: Some(self.infos.clone()),
                position: self.position(&PromExpr::VectorSelector(vs.clone())),
            },
            false => StepNotes::default(),
        };
        let node = step_node(
            raw,
            steps,
            Window::Instant {
                lookback: self.lookback,
                emit: Emit::Value,
                smoothed,
            },
            notes,
        )?;
        Ok(self.decoded(node))
    }

    /// A bare range selector as the query result: raw samples at the single eval time,
    /// native histograms included when `histograms`.
    pub(super) async fn matrix_selector(
        &self,
        ms: &MatrixSelector,
        histograms: bool,
    ) -> Result<LogicalPlan, PromqlError> {
        let steps = self.with_modifiers(&self.steps(0, None), &ms.vs.offset, &ms.vs.at);
        let t = steps.at.unwrap_or(steps.end) - steps.offset;
        let range = duration_ms(ms.range);
        let raw = self
            .raw_samples_with(&ms.vs, t - range, t, histograms)
            .await?;
        Ok(raw)
    }

    pub(super) fn with_modifiers(
        &self,
        steps: &Steps,
        offset: &Option<Offset>,
        at: &Option<AtModifier>,
    ) -> Steps {
        let mut s = steps.clone();
        s.offset += offset_ms(offset);
        if let Some(at) = at {
            self.pin_time();
            s.at = Some(match at {
                AtModifier::Start => self.query_bounds.0,
                AtModifier::End => self.query_bounds.1,
                AtModifier::At(time) => system_time_ms(*time),
            });
        }
        s
    }
}
