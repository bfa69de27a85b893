//! `info(v, {selector})`: enriches each series of `v` with the data labels of the info
//! series (`target_info` by default) that share its identifying labels (`instance`, `job`).
//!
//! The base vector and the info series (selected at the same steps, with their sample
//! timestamps as values) are the two inputs of one plan node, [`PromInfo`]: matching is per
//! step and picks, per info metric, the newest info sample, which is not a relational join.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchemaRef, DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, PlanProperties,
};
use futures::StreamExt;
use promql_parser::label::{MatchOp, Matcher};

use crate::model::METRIC_NAME_LABEL;

use super::collect::{Held, collect_all};
use super::labels as l;
use super::step::{LabelColumn, column, final_properties};
use super::syntax::MODE_LABEL;

/// Labels that tie a series to its info series.
const IDENTIFYING_LABELS: [&str; 2] = ["instance", "job"];

/// What the second argument of `info()` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InfoSpec {
    /// Matchers on `__name__` that pick the info metrics.
    pub name_matchers: Vec<Matcher>,
    /// Matchers on data labels: only these labels are added, and a series without any
    /// info series is dropped unless all of them accept an empty value.
    pub data_matchers: Vec<Matcher>,
}

impl InfoSpec {
    /// From the selector given as the second argument (None: all labels of `target_info`).
    pub fn new(selector: Option<&[Matcher]>) -> InfoSpec {
        let matchers: Vec<Matcher> = selector
            .unwrap_or_default()
            .iter()
            .filter(|m| m.name != MODE_LABEL)
            .cloned()
            .collect();
        let (names, data): (Vec<Matcher>, Vec<Matcher>) = matchers
            .into_iter()
            .partition(|m| m.name == METRIC_NAME_LABEL);
        InfoSpec {
            name_matchers: effective_name_matchers(names),
            data_matchers: data,
        }
    }

    /// The matchers selecting the info series.
    pub fn selector_matchers(&self) -> Vec<Matcher> {
        self.name_matchers
            .iter()
            .chain(&self.data_matchers)
            .cloned()
            .collect()
    }

    /// Base series that are info series themselves pass through unchanged.
    fn is_info_series(&self, name: &str) -> bool {
        self.name_matchers.iter().all(|m| m.is_match(name))
    }
}

/// As in Prometheus: the given `__name__` matchers when one of them is positive, else a
/// `.+_info` matcher plus the negative ones, else `target_info`.
fn effective_name_matchers(matchers: Vec<Matcher>) -> Vec<Matcher> {
    let positive = |m: &Matcher| matches!(m.op, MatchOp::Equal | MatchOp::Re(_));
    if matchers.iter().any(positive) {
        return matchers;
    }
    if matchers.is_empty() {
        return vec![Matcher::new(
            MatchOp::Equal,
            METRIC_NAME_LABEL,
            "target_info",
        )];
    }
    let any_info = regex::Regex::new("^(?:.+_info)$").expect("a constant regex");
    let mut all = vec![Matcher::new(
        MatchOp::Re(any_info),
        METRIC_NAME_LABEL,
        ".+_info",
    )];
    all.extend(matchers);
    all
}

/// The logical node: input 0 is the base vector, input 1 the info series with their sample
/// times (seconds) as values, both at the query's steps.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PromInfo {
    pub base: LogicalPlan,
    pub info: LogicalPlan,
    pub schema: DFSchemaRef,
    pub spec: InfoSpec,
}

impl PartialOrd for PromInfo {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (&self.base, &self.info).partial_cmp(&(&other.base, &other.info))
    }
}

impl UserDefinedLogicalNodeCore for PromInfo {
    fn name(&self) -> &str {
        "PromInfo"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.base, &self.info]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PromInfo: {}", describe(&self.spec))
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let [base, info]: [LogicalPlan; 2] = inputs
            .try_into()
            .map_err(|_| DataFusionError::Internal("PromInfo needs two inputs".into()))?;
        Ok(PromInfo {
            base,
            info,
            ..self.clone()
        })
    }
}

fn describe(spec: &InfoSpec) -> String {
    let show = |ms: &[Matcher]| {
        ms.iter()
            .map(|m| format!("{}{}{:?}", m.name, m.op, m.value))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "info metrics {{{}}} data labels {{{}}}",
        show(&spec.name_matchers),
        show(&spec.data_matchers)
    )
}

/// The physical node.
#[derive(Debug)]
pub struct PromInfoExec {
    base: Arc<dyn ExecutionPlan>,
    info: Arc<dyn ExecutionPlan>,
    spec: InfoSpec,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl PromInfoExec {
    pub fn new(
        base: Arc<dyn ExecutionPlan>,
        info: Arc<dyn ExecutionPlan>,
        spec: InfoSpec,
        schema: SchemaRef,
    ) -> Self {
        let properties = final_properties(schema.clone());
        PromInfoExec {
            base,
            info,
            spec,
            schema,
            properties,
        }
    }
}

impl DisplayAs for PromInfoExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PromInfoExec: {}", describe(&self.spec))
    }
}

impl ExecutionPlan for PromInfoExec {
    fn name(&self) -> &'static str {
        "PromInfoExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.base, &self.info]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition, Distribution::SinglePartition]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let [base, info]: [Arc<dyn ExecutionPlan>; 2] = children
            .try_into()
            .map_err(|_| DataFusionError::Internal("PromInfoExec needs two children".into()))?;
        Ok(Arc::new(PromInfoExec::new(
            base,
            info,
            self.spec.clone(),
            self.schema.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let mut held = Held::new("PromInfoExec", partition, &context);
        let base = self.base.execute(partition, context.clone())?;
        let info = self.info.execute(partition, context)?;
        let spec = self.spec.clone();
        let schema = self.schema.clone();
        let output = futures::stream::once(async move {
            let base = collect_all(base, &mut held).await?;
            let info = collect_all(info, &mut held).await?;
            let rows = enrich(&rows_of(&base)?, &rows_of(&info)?, &spec)
                .map_err(DataFusionError::Execution)?;
            to_batch(rows, schema)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            output.boxed(),
        )))
    }
}

/// One `(labels, timestamp, value)` row.
type Row = (String, i64, f64);

fn rows_of(batches: &[RecordBatch]) -> DfResult<Vec<Row>> {
    let mut rows = Vec::new();
    for batch in batches {
        let labels = LabelColumn::of(batch, 0)?;
        let ts = column::<Int64Array>(batch, 1)?;
        let vs = column::<Float64Array>(batch, 2)?;
        for i in 0..batch.num_rows() {
            if let Some(text) = labels.text(i).filter(|_| !ts.is_null(i)) {
                rows.push((text.to_string(), ts.value(i), vs.value(i)));
            }
        }
    }
    Ok(rows)
}

fn to_batch(rows: Vec<Row>, schema: SchemaRef) -> DfResult<RecordBatch> {
    let labels: StringArray = rows.iter().map(|r| Some(r.0.as_str())).collect();
    let ts: Int64Array = rows.iter().map(|r| Some(r.1)).collect();
    let vs: Float64Array = rows.iter().map(|r| Some(r.2)).collect();
    Ok(RecordBatch::try_new(
        schema,
        vec![Arc::new(labels), Arc::new(ts), Arc::new(vs)],
    )?)
}

/// The key matching a series to an info series of metric `name`.
fn signature(name: &str, labels: &str) -> String {
    let mut sig = name.to_string();
    for id in IDENTIFYING_LABELS {
        sig.push('\u{ff}');
        sig.push_str(l::get(labels, id).unwrap_or(""));
    }
    sig
}

/// The newest info sample per signature at one step.
fn newest_info<'a>(info: &[&'a Row]) -> Result<HashMap<String, &'a Row>, String> {
    let mut by_sig: HashMap<String, &Row> = HashMap::new();
    for row in info {
        let name = l::get(&row.0, METRIC_NAME_LABEL).unwrap_or("");
        let sig = signature(name, &row.0);
        match by_sig.get(&sig) {
            Some(existing) if existing.2 == row.2 => {
                return Err(format!(
                    "found duplicate series for info metric: existing {} @ {}, new {} @ {}",
                    existing.0,
                    (existing.2 * 1000.0) as i64,
                    row.0,
                    (row.2 * 1000.0) as i64
                ));
            }
            Some(existing) if existing.2 > row.2 => {}
            _ => {
                by_sig.insert(sig, row);
            }
        }
    }
    Ok(by_sig)
}

/// Joins every base row with the info rows of its step.
fn enrich(base: &[Row], info: &[Row], spec: &InfoSpec) -> Result<Vec<Row>, String> {
    let info_names: BTreeSet<&str> = info
        .iter()
        .map(|r| l::get(&r.0, METRIC_NAME_LABEL).unwrap_or(""))
        .collect();
    let mut info_by_step: BTreeMap<i64, Vec<&Row>> = BTreeMap::new();
    for row in info {
        info_by_step.entry(row.1).or_default().push(row);
    }
    let data_labels: HashSet<&str> = spec.data_matchers.iter().map(|m| m.name.as_str()).collect();
    let all_accept_empty = spec.data_matchers.iter().all(|m| m.is_match(""));
    let mut newest_by_step = HashMap::new();
    let mut out = Vec::with_capacity(base.len());
    let mut seen = HashSet::new();
    for row in base {
        let name = l::get(&row.0, METRIC_NAME_LABEL).unwrap_or("");
        let labels = if spec.is_info_series(name) {
            Some(row.0.clone())
        } else {
            let newest = match newest_by_step.entry(row.1) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let step_info = info_by_step.get(&row.1).map(Vec::as_slice).unwrap_or(&[]);
                    // A native histogram's sample has no time as its value (see
                    // `Emit::FloatSampleTime`).
                    if step_info.iter().any(|r| r.2.is_nan()) {
                        return Err("info sample should be float".into());
                    }
                    e.insert(newest_info(step_info)?)
                }
            };
            let matched: Vec<&Row> = info_names
                .iter()
                .filter_map(|n| newest.get(&signature(n, &row.0)).copied())
                .collect();
            if matched.is_empty() && !all_accept_empty {
                None
            } else {
                Some(with_data_labels(&row.0, &matched, &data_labels)?)
            }
        };
        let Some(labels) = labels else { continue };
        if !seen.insert((labels.clone(), row.1)) {
            return Err("vector cannot contain metrics with the same labelset".into());
        }
        out.push((labels, row.1, row.2));
    }
    Ok(out)
}

/// The base labels plus the info series' data labels it lacks.
fn with_data_labels(
    base: &str,
    matched: &[&Row],
    data_labels: &HashSet<&str>,
) -> Result<String, String> {
    let mut added: BTreeMap<&str, &str> = BTreeMap::new();
    for info in matched {
        for (name, value) in l::decode(&info.0) {
            if name == METRIC_NAME_LABEL || (!data_labels.is_empty() && !data_labels.contains(name))
            {
                continue;
            }
            if added.get(name).is_some_and(|v| *v != value) {
                return Err(format!("conflicting label: {name}"));
            }
            if l::get(base, name).is_some() {
                continue;
            }
            added.insert(name, value);
        }
    }
    let mut pairs: Vec<(String, String)> = l::decode(base)
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    pairs.extend(
        added
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_string())),
    );
    Ok(l::encode_owned(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> String {
        l::encode(pairs.iter().copied())
    }

    /// The matchers of `text` as the second argument of `info()`, where all may accept "".
    fn selector(text: &str) -> Vec<Matcher> {
        let query = format!("info(m, {text})");
        let expr = super::super::PromqlEngine::parse(&query).unwrap();
        let promql_parser::parser::Expr::Call(call) = expr else {
            panic!("not a call")
        };
        let promql_parser::parser::Expr::VectorSelector(vs) = call.args.args[1].as_ref() else {
            panic!("not a selector")
        };
        vs.matchers.matchers.clone()
    }

    fn base() -> Vec<Row> {
        vec![(
            labels(&[("__name__", "metric"), ("instance", "a"), ("job", "1")]),
            0,
            7.0,
        )]
    }

    fn target_info(data: &str, sample_secs: f64) -> Row {
        (
            labels(&[
                ("__name__", "target_info"),
                ("data", data),
                ("instance", "a"),
                ("job", "1"),
            ]),
            0,
            sample_secs,
        )
    }

    #[test]
    fn adds_the_newest_info_series_labels() {
        let spec = InfoSpec::new(None);
        let out = enrich(
            &base(),
            &[target_info("old", 1.0), target_info("new", 2.0)],
            &spec,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(l::get(&out[0].0, "data"), Some("new"));
        assert_eq!(out[0].2, 7.0);
    }

    #[test]
    fn a_series_without_info_is_kept_unless_a_matcher_needs_a_value() {
        let keep = InfoSpec::new(Some(&selector(r#"{__name__="x", data=~".*"}"#)));
        assert_eq!(enrich(&base(), &[], &keep).unwrap().len(), 1);
        let drop = InfoSpec::new(Some(&selector(r#"{data=~".+"}"#)));
        assert!(enrich(&base(), &[], &drop).unwrap().is_empty());
    }

    #[test]
    fn only_named_data_labels_are_added() {
        let spec = InfoSpec::new(Some(&selector(r#"{other=~".*"}"#)));
        let out = enrich(&base(), &[target_info("x", 1.0)], &spec).unwrap();
        assert_eq!(l::get(&out[0].0, "data"), None);
    }

    #[test]
    fn equal_timestamps_conflict() {
        let err = enrich(
            &base(),
            &[target_info("a", 1.0), target_info("b", 1.0)],
            &InfoSpec::new(None),
        )
        .unwrap_err();
        assert!(
            err.starts_with("found duplicate series for info metric"),
            "{err}"
        );
    }

    #[test]
    fn negative_name_matchers_imply_info_metrics() {
        let spec = InfoSpec::new(Some(&selector(r#"{__name__!="target_info"}"#)));
        assert_eq!(spec.name_matchers.len(), 2);
        assert!(spec.is_info_series("build_info"));
        assert!(!spec.is_info_series("target_info"));
    }
}
