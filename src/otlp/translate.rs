//! OTLP metrics to Prometheus series, as Prometheus 3.x converts them: gauges and sums to
//! float samples (monotonic cumulative sums as counters), explicit-bucket histograms to
//! classic `_bucket{le}`/`_sum`/`_count` series (or, with `convert_histograms_to_nhcb`, to
//! native histograms with custom buckets), exponential histograms to native histograms
//! (scales above 8 merged down to 8), summaries to `{quantile}`/`_sum`/`_count`,
//! point attributes to labels, `service.name`/`service.namespace` to `job` and
//! `service.instance.id` to `instance`, the other resource attributes to `target_info`,
//! start times to start timestamps, "no recorded value" to stale markers, and exemplars with
//! their trace and span ids. What cannot be stored (delta temporality, scales below -4) is
//! counted and named, not stored.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar as OtlpExemplar, ExponentialHistogramDataPoint,
    HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint, exemplar, metric::Data,
    number_data_point,
};

use crate::config::OtlpConfig;
use crate::gocompat::strconv::format_float;
use crate::model::histogram::{
    CUSTOM_BUCKETS_SCHEMA, EXPONENTIAL_SCHEMA_MAX, EXPONENTIAL_SCHEMA_MIN, Histogram, Span,
    spans_from_buckets,
};
use crate::model::{HistogramSample, Sample, stale_nan};
use crate::storage::exemplars::Exemplar;

use super::names::{Kind, label_name, metric_name};

/// The series a request becomes, and what it could not store.
#[derive(Debug, Default)]
pub struct Translated {
    pub series: Vec<Series>,
    /// Data points not stored.
    pub rejected: u64,
    /// Why, one line per metric (the first few).
    pub errors: Vec<String>,
}

/// One series: its label set (sorted by name, `__name__` included), samples in time order
/// and exemplars.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<Sample>,
    pub histograms: Vec<HistogramSample>,
    pub exemplars: Vec<Exemplar>,
}

/// How many error lines a response carries at most.
const MAX_ERRORS: usize = 10;
/// OpenMetrics's limit on an exemplar's label runes; attributes beyond it are left out.
const MAX_EXEMPLAR_RUNES: usize = 128;
/// `target_info` is written every half lookback (5 m) across a resource's samples, so it
/// is found at every point of the range.
const TARGET_INFO_INTERVAL_MS: i64 = 150_000;
const IDENTIFYING: [&str; 3] = ["service.namespace", "service.name", "service.instance.id"];
/// The zero threshold Prometheus gives histograms made from exponential histograms (OTLP's
/// own `zero_threshold` is not used, as in Prometheus).
const EXPONENTIAL_ZERO_THRESHOLD: f64 = 1e-128;

pub fn translate(request: &ExportMetricsServiceRequest, config: &OtlpConfig) -> Translated {
    let mut out = Builder::default();
    for rm in &request.resource_metrics {
        let empty = Vec::new();
        let resource = rm.resource.as_ref().map_or(&empty, |r| &r.attributes);
        let resource_labels = ResourceLabels::of(resource, config);
        let mut span: Option<(i64, i64)> = None;
        for sm in &rm.scope_metrics {
            let scope = Scope::of(sm, config);
            for metric in &sm.metrics {
                let context = Context {
                    resource: &resource_labels,
                    scope: &scope,
                    config,
                };
                if let Err((points, why)) = out.metric(metric, &context, &mut span) {
                    out.reject(points, format!("metric {:?}: {why}", metric.name));
                }
            }
        }
        if let Some(span) = span {
            out.target_info(resource, config, span);
        }
    }
    out.finish()
}

/// The instrumentation scope's labels, when `promote_scope_metadata` asks for them.
struct Scope {
    labels: Vec<(String, String)>,
}

impl Scope {
    fn of(
        sm: &opentelemetry_proto::tonic::metrics::v1::ScopeMetrics,
        config: &OtlpConfig,
    ) -> Scope {
        let mut labels = Vec::new();
        if let Some(scope) = sm
            .scope
            .as_ref()
            .filter(|s| config.promote_scope_metadata && !s.name.is_empty())
        {
            labels.push(("otel_scope_name".to_owned(), scope.name.clone()));
            labels.push(("otel_scope_version".to_owned(), scope.version.clone()));
            labels.push(("otel_scope_schema_url".to_owned(), sm.schema_url.clone()));
            for kv in &scope.attributes {
                if let Ok(name) = label_name(
                    &format!("otel_scope_{}", kv.key),
                    config.translation_strategy,
                ) {
                    labels.push((name, any_value_text(kv.value.as_ref())));
                }
            }
        }
        Scope { labels }
    }
}

struct Context<'a> {
    resource: &'a ResourceLabels,
    scope: &'a Scope,
    config: &'a OtlpConfig,
}

/// What a resource adds to each of its series, worked out once per resource: promoted
/// attributes (added where a point has no such label) and `job`/`instance` (always).
struct ResourceLabels {
    promoted: Vec<(String, String)>,
    identity: Vec<(String, String)>,
}

impl ResourceLabels {
    fn of(resource: &[KeyValue], config: &OtlpConfig) -> ResourceLabels {
        let promoted = resource
            .iter()
            .filter(|kv| {
                if config.promote_all_resource_attributes {
                    !config.ignore_resource_attributes.contains(&kv.key)
                } else {
                    config.promote_resource_attributes.contains(&kv.key)
                }
            })
            .filter_map(|kv| {
                let name = label_name(&kv.key, config.translation_strategy).ok()?;
                Some((name, any_value_text(kv.value.as_ref())))
            })
            .collect();
        let get = |key: &str| {
            resource
                .iter()
                .find(|kv| kv.key == key)
                .map(|kv| any_value_text(kv.value.as_ref()))
        };
        let mut identity = Vec::new();
        if let Some(service) = get("service.name") {
            let job = match get("service.namespace") {
                Some(namespace) => format!("{namespace}/{service}"),
                None => service,
            };
            identity.push(("job".to_owned(), job));
        }
        if let Some(instance) = get("service.instance.id") {
            identity.push(("instance".to_owned(), instance));
        }
        ResourceLabels { promoted, identity }
    }
}

#[derive(Default)]
struct Builder {
    series: Vec<Series>,
    index: HashMap<Vec<(String, String)>, usize>,
    /// The series the last native histogram went to.
    last: usize,
    rejected: u64,
    errors: Vec<String>,
}

/// A metric's failure: how many data points were lost, and why.
type Refusal = (u64, String);

impl Builder {
    fn reject(&mut self, points: u64, why: String) {
        self.rejected += points;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(why);
        }
    }

    fn finish(mut self) -> Translated {
        for s in &mut self.series {
            s.samples.sort_by_key(|x| x.timestamp_ms);
            s.histograms.sort_by_key(|x| x.timestamp_ms);
        }
        Translated {
            series: self.series,
            rejected: self.rejected,
            errors: self.errors,
        }
    }

    /// The series of `labels`, created on first use.
    fn series_of(&mut self, labels: Vec<(String, String)>) -> &mut Series {
        let i = self.index_of(labels);
        &mut self.series[i]
    }

    /// The position of the series of `labels`, created on first use.
    fn index_of(&mut self, labels: Vec<(String, String)>) -> usize {
        match self.index.get(&labels) {
            Some(&i) => i,
            None => {
                self.series.push(Series {
                    labels: labels.clone(),
                    samples: Vec::new(),
                    histograms: Vec::new(),
                    exemplars: Vec::new(),
                });
                self.index.insert(labels, self.series.len() - 1);
                self.series.len() - 1
            }
        }
    }

    fn add(&mut self, labels: Vec<(String, String)>, sample: Sample) -> &mut Series {
        let series = self.series_of(labels);
        series.samples.push(sample);
        series
    }

    fn metric(
        &mut self,
        metric: &Metric,
        context: &Context<'_>,
        span: &mut Option<(i64, i64)>,
    ) -> Result<(), Refusal> {
        let strategy = context.config.translation_strategy;
        let Some(data) = &metric.data else {
            return Err((0, "has no data".to_owned()));
        };
        let cumulative = |temporality: i32, points: usize| -> Result<(), Refusal> {
            match AggregationTemporality::try_from(temporality) {
                Ok(AggregationTemporality::Cumulative) => Ok(()),
                Ok(t) => Err((
                    points as u64,
                    format!(
                        "{} temporality is not stored (Prometheus takes cumulative metrics; convert deltas in the OpenTelemetry Collector with deltatocumulative)",
                        t.as_str_name()
                    ),
                )),
                Err(_) => Err((points as u64, format!("unknown temporality {temporality}"))),
            }
        };
        let name = |kind: Kind, points: usize| {
            metric_name(&metric.name, &metric.unit, kind, strategy).map_err(|e| (points as u64, e))
        };
        match data {
            Data::Gauge(g) => {
                let family = name(Kind::Gauge, g.data_points.len())?;
                self.numbers(&family, &g.data_points, context, span, false)
            }
            Data::Sum(s) => {
                cumulative(s.aggregation_temporality, s.data_points.len())?;
                let kind = if s.is_monotonic {
                    Kind::Counter
                } else {
                    Kind::Other
                };
                let family = name(kind, s.data_points.len())?;
                self.numbers(&family, &s.data_points, context, span, true)
            }
            Data::Histogram(h) => {
                cumulative(h.aggregation_temporality, h.data_points.len())?;
                let family = name(Kind::Other, h.data_points.len())?;
                for point in &h.data_points {
                    if context.config.convert_histograms_to_nhcb {
                        let histogram = custom_buckets_histogram(point);
                        self.native(&family, histogram, point_times(point), context, span)?;
                        self.series_of_last()
                            .exemplars
                            .extend(exemplars(&point.exemplars));
                    } else {
                        self.histogram(&family, point, context, span)?;
                    }
                }
                Ok(())
            }
            Data::ExponentialHistogram(h) => {
                cumulative(h.aggregation_temporality, h.data_points.len())?;
                let family = name(Kind::Other, h.data_points.len())?;
                for point in &h.data_points {
                    let histogram = exponential_histogram(point).map_err(|e| (1, e))?;
                    let times = (
                        point.time_unix_nano,
                        point.start_time_unix_nano,
                        point.attributes.as_slice(),
                    );
                    self.native(&family, histogram, times, context, span)?;
                    self.series_of_last()
                        .exemplars
                        .extend(exemplars(&point.exemplars));
                }
                Ok(())
            }
            Data::Summary(s) => {
                let family = name(Kind::Other, s.data_points.len())?;
                for point in &s.data_points {
                    self.summary(&family, point, context, span)?;
                }
                Ok(())
            }
        }
    }

    fn numbers(
        &mut self,
        family: &str,
        points: &[NumberDataPoint],
        context: &Context<'_>,
        span: &mut Option<(i64, i64)>,
        with_start: bool,
    ) -> Result<(), Refusal> {
        for point in points {
            let labels = labels(context, &point.attributes, family, None).map_err(|e| (1, e))?;
            let value = match point.value {
                Some(number_data_point::Value::AsDouble(v)) => v,
                Some(number_data_point::Value::AsInt(v)) => v as f64,
                None => 0.0,
            };
            let time = millis(point.time_unix_nano);
            widen(span, time);
            let sample = sample(
                time,
                value,
                point.flags,
                with_start.then_some(point.start_time_unix_nano),
            );
            let exemplars = exemplars(&point.exemplars);
            self.add(labels, sample).exemplars.extend(exemplars);
        }
        Ok(())
    }

    fn histogram(
        &mut self,
        family: &str,
        point: &HistogramDataPoint,
        context: &Context<'_>,
        span: &mut Option<(i64, i64)>,
    ) -> Result<(), Refusal> {
        let at = stamp(
            span,
            point.time_unix_nano,
            point.start_time_unix_nano,
            point.flags,
        );
        let base = |suffix: &str, extra: Option<(&str, String)>| {
            labels(
                context,
                &point.attributes,
                &format!("{family}{suffix}"),
                extra,
            )
            .map_err(|e| (1, e))
        };
        if let Some(sum) = point.sum {
            let l = base("_sum", None)?;
            self.add(l, at(sum));
        }
        let l = base("_count", None)?;
        self.add(l, at(point.count as f64));
        let mut cumulative = 0u64;
        let mut buckets: Vec<(f64, usize)> = Vec::with_capacity(point.explicit_bounds.len() + 1);
        for (bound, count) in point.explicit_bounds.iter().zip(&point.bucket_counts) {
            cumulative = cumulative.saturating_add(*count);
            let l = base("_bucket", Some(("le", format_float(*bound, 'f', None))))?;
            self.add(l.clone(), at(cumulative as f64));
            buckets.push((*bound, self.index[&l]));
        }
        let l = base("_bucket", Some(("le", "+Inf".to_owned())))?;
        self.add(l.clone(), at(point.count as f64));
        buckets.push((f64::INFINITY, self.index[&l]));
        // Each exemplar goes with the first bucket that holds its value.
        for e in exemplars(&point.exemplars) {
            if let Some((_, i)) = buckets.iter().find(|(bound, _)| e.value <= *bound) {
                self.series[*i].exemplars.push(e);
            }
        }
        Ok(())
    }

    /// A native histogram sample of `family` at the point's time, with its start time.
    fn native(
        &mut self,
        family: &str,
        histogram: Histogram,
        (time_nanos, start_nanos, attributes): (u64, u64, &[KeyValue]),
        context: &Context<'_>,
        span: &mut Option<(i64, i64)>,
    ) -> Result<(), Refusal> {
        let labels = labels(context, attributes, family, None).map_err(|e| (1, e))?;
        let time = millis(time_nanos);
        widen(span, time);
        let sample = HistogramSample {
            timestamp_ms: time,
            start_timestamp_ms: millis(start_nanos),
            histogram: std::sync::Arc::new(histogram),
        };
        let i = self.index_of(labels);
        self.series[i].histograms.push(sample);
        self.last = i;
        Ok(())
    }

    /// The series the last native histogram went to.
    fn series_of_last(&mut self) -> &mut Series {
        &mut self.series[self.last]
    }

    fn summary(
        &mut self,
        family: &str,
        point: &SummaryDataPoint,
        context: &Context<'_>,
        span: &mut Option<(i64, i64)>,
    ) -> Result<(), Refusal> {
        let at = stamp(
            span,
            point.time_unix_nano,
            point.start_time_unix_nano,
            point.flags,
        );
        let l = labels(context, &point.attributes, &format!("{family}_sum"), None)
            .map_err(|e| (1, e))?;
        self.add(l, at(point.sum));
        let l = labels(context, &point.attributes, &format!("{family}_count"), None)
            .map_err(|e| (1, e))?;
        self.add(l, at(point.count as f64));
        for q in &point.quantile_values {
            let extra = Some(("quantile", format_float(q.quantile, 'f', None)));
            let l = labels(context, &point.attributes, family, extra).map_err(|e| (1, e))?;
            self.add(l, at(q.value));
        }
        Ok(())
    }

    /// `target_info` for a resource with attributes beyond the identifying ones, from its
    /// first to its last sample.
    fn target_info(
        &mut self,
        resource: &[KeyValue],
        config: &OtlpConfig,
        (first, last): (i64, i64),
    ) {
        let identifying = |k: &str| IDENTIFYING.contains(&k);
        if resource.iter().all(|kv| identifying(&kv.key)) {
            return;
        }
        let kept: Vec<KeyValue> = resource
            .iter()
            .filter(|kv| config.keep_identifying_resource_attributes || !identifying(&kv.key))
            .cloned()
            .collect();
        let no_promotion = OtlpConfig {
            promote_resource_attributes: Vec::new(),
            promote_all_resource_attributes: false,
            ..config.clone()
        };
        let scope = Scope { labels: Vec::new() };
        let resource_labels = ResourceLabels::of(resource, &no_promotion);
        let context = Context {
            resource: &resource_labels,
            scope: &scope,
            config: &no_promotion,
        };
        let Ok(labels) = labels(&context, &kept, "target_info", None) else {
            return;
        };
        if !labels.iter().any(|(n, _)| n == "job" || n == "instance") {
            return;
        }
        let mut t = first;
        while t < last {
            self.add(labels.clone(), Sample::new(t, 1.0));
            t += TARGET_INFO_INTERVAL_MS;
        }
        self.add(labels, Sample::new(last, 1.0));
    }
}

/// An explicit-bucket point's time, start time and attributes.
fn point_times(point: &HistogramDataPoint) -> (u64, u64, &[KeyValue]) {
    (
        point.time_unix_nano,
        point.start_time_unix_nano,
        point.attributes.as_slice(),
    )
}

/// An exponential histogram as a native histogram, as Prometheus converts it: the scale is
/// the schema (scales above 8 are merged down to 8, below -4 refused), OTLP's bucket `i`
/// (`(base^i, base^(i+1)]`) is Prometheus's `i + 1`, and "no recorded value" is a stale
/// marker (a NaN sum with the staleness bits).
fn exponential_histogram(point: &ExponentialHistogramDataPoint) -> Result<Histogram, String> {
    let scale = point.scale;
    if scale < EXPONENTIAL_SCHEMA_MIN {
        return Err(format!(
            "cannot convert exponential to native histogram. Scale must be >= {EXPONENTIAL_SCHEMA_MIN}, was {scale}"
        ));
    }
    let scale_down = (scale - EXPONENTIAL_SCHEMA_MAX).max(0) as u32;
    let side = |buckets: Option<
        &opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets,
    >| {
        buckets.map_or((Vec::new(), Vec::new()), |b| {
            bucket_layout(&b.bucket_counts, b.offset, scale_down, 1)
        })
    };
    let (positive_spans, positive_buckets) = side(point.positive.as_ref());
    let (negative_spans, negative_buckets) = side(point.negative.as_ref());
    let mut h = Histogram {
        schema: scale.min(EXPONENTIAL_SCHEMA_MAX),
        zero_threshold: EXPONENTIAL_ZERO_THRESHOLD,
        zero_count: point.zero_count as f64,
        count: point.count as f64,
        sum: point.sum.unwrap_or(0.0),
        positive_spans,
        positive_buckets,
        negative_spans,
        negative_buckets,
        ..Default::default()
    };
    if point.flags & 1 == 1 {
        h.sum = stale_nan();
    }
    Ok(h)
}

/// An explicit-bucket histogram as a native histogram with custom buckets (schema -53): the
/// explicit bounds are the custom values; leading empty buckets are left out.
fn custom_buckets_histogram(point: &HistogramDataPoint) -> Histogram {
    let first = point.bucket_counts.iter().take_while(|c| **c == 0).count();
    let (positive_spans, positive_buckets) =
        bucket_layout(&point.bucket_counts[first..], first as i32, 0, 0);
    let mut h = Histogram {
        schema: CUSTOM_BUCKETS_SCHEMA,
        count: point.count as f64,
        sum: point.sum.unwrap_or(0.0),
        positive_spans,
        positive_buckets,
        custom_values: point.explicit_bounds.clone(),
        ..Default::default()
    };
    if point.flags & 1 == 1 {
        h.sum = stale_nan();
    }
    h
}

/// Spans and absolute counts of consecutive buckets starting at index `offset`, each moved
/// to index `(i >> scale_down) + shift` (buckets that land on one index are added up). Empty
/// buckets are gaps: a gap of more than two indexes starts a new span, a shorter one is
/// written as empty buckets, as Prometheus lays buckets out.
fn bucket_layout(
    counts: &[u64],
    offset: i32,
    scale_down: u32,
    shift: i32,
) -> (Vec<Span>, Vec<f64>) {
    let mut merged: Vec<(i32, u64)> = Vec::new();
    for (i, &count) in counts.iter().enumerate() {
        let index = (offset.saturating_add(i as i32) >> scale_down) + shift;
        match merged.last_mut() {
            Some((last, total)) if *last == index => *total = total.saturating_add(count),
            _ => merged.push((index, count)),
        }
    }
    spans_from_buckets(
        (merged.into_iter())
            .filter(|(_, count)| *count > 0)
            .map(|(index, count)| (index, count as f64)),
        2,
    )
}

/// The sample maker of one cumulative data point (its time counted in the resource's span):
/// every series the point becomes has the same time, start and flags.
fn stamp(
    span: &mut Option<(i64, i64)>,
    time_nanos: u64,
    start_nanos: u64,
    flags: u32,
) -> impl Fn(f64) -> Sample {
    let time = millis(time_nanos);
    widen(span, time);
    move |value| sample(time, value, flags, Some(start_nanos))
}

fn widen(span: &mut Option<(i64, i64)>, t: i64) {
    *span = Some(span.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
}

fn millis(nanos: u64) -> i64 {
    (nanos / 1_000_000) as i64
}

/// A sample; "no recorded value" is a stale marker; a start time of 0 is unknown.
fn sample(time: i64, value: f64, flags: u32, start_nanos: Option<u64>) -> Sample {
    let no_value = flags & 1 == 1;
    Sample {
        start_timestamp_ms: start_nanos.map_or(0, millis),
        ..Sample::new(time, if no_value { stale_nan() } else { value })
    }
}

/// A data point's label set, as Prometheus builds it: its attributes (keys translated, the
/// values of keys that translate alike joined by `;` in key order), promoted resource
/// attributes where the point has no such label, scope labels, `job` and `instance` from
/// the resource, then `extra` and `__name__`. Empty values are left out, as label sets
/// hold none.
fn labels(
    context: &Context<'_>,
    attributes: &[KeyValue],
    name: &str,
    extra: Option<(&str, String)>,
) -> Result<Vec<(String, String)>, String> {
    let config = context.config;
    let strategy = config.translation_strategy;
    let mut sorted: Vec<&KeyValue> = attributes.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut map: HashMap<String, String> = HashMap::with_capacity(sorted.len() + 4);
    for kv in sorted {
        let key = label_name(&kv.key, strategy)?;
        let value = any_value_text(kv.value.as_ref());
        map.entry(key)
            .and_modify(|v| {
                v.push(';');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    for (k, v) in &context.resource.promoted {
        if !map.contains_key(k) {
            map.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in context
        .scope
        .labels
        .iter()
        .chain(&context.resource.identity)
    {
        map.insert(k.clone(), v.clone());
    }
    if let Some((k, v)) = extra {
        map.insert(k.to_owned(), v);
    }
    map.insert("__name__".to_owned(), name.to_owned());
    let mut labels: Vec<(String, String)> =
        map.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    labels.sort();
    Ok(labels)
}

/// An attribute's value as text, as the OpenTelemetry Collector's `AsString` gives it:
/// strings as they are, numbers and booleans as JSON writes them, bytes in base64, arrays
/// and maps as JSON.
fn any_value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(v) => match v {
            any_value::Value::StringValue(s) => s.clone(),
            other => match any_value_json(other) {
                serde_json::Value::String(s) => s,
                json => json.to_string(),
            },
        },
    }
}

fn any_value_json(value: &any_value::Value) -> serde_json::Value {
    use base64::Engine;
    use serde_json::Value as J;
    match value {
        any_value::Value::StringValue(s) => J::String(s.clone()),
        any_value::Value::BoolValue(b) => J::Bool(*b),
        any_value::Value::IntValue(i) => J::from(*i),
        any_value::Value::DoubleValue(d) => serde_json::Number::from_f64(*d)
            .map(J::Number)
            .unwrap_or_else(|| J::String(format_float(*d, 'g', None))),
        any_value::Value::BytesValue(b) => {
            J::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        any_value::Value::ArrayValue(a) => J::Array(
            a.values
                .iter()
                .map(|v| v.value.as_ref().map_or(J::Null, any_value_json))
                .collect(),
        ),
        // An index into a profiles dictionary, which metrics do not carry.
        any_value::Value::StringValueStrindex(_) => J::String(String::new()),
        any_value::Value::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|kv| {
                    let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                    (kv.key.clone(), v.map_or(J::Null, any_value_json))
                })
                .collect(),
        ),
    }
}

/// Exemplars with `trace_id` and `span_id` (hex) and, within OpenMetrics's 128 runes, the
/// filtered attributes.
fn exemplars(list: &[OtlpExemplar]) -> Vec<Exemplar> {
    list.iter()
        .map(|e| {
            let value = match e.value {
                Some(exemplar::Value::AsDouble(v)) => v,
                Some(exemplar::Value::AsInt(v)) => v as f64,
                None => 0.0,
            };
            let mut labels = Vec::new();
            let mut runes = 0;
            for (key, id) in [("trace_id", &e.trace_id), ("span_id", &e.span_id)] {
                if !id.is_empty() {
                    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                    runes += key.len() + hex.len();
                    labels.push((key.to_owned(), hex));
                }
            }
            let attributes: Vec<(String, String)> = e
                .filtered_attributes
                .iter()
                .map(|kv| (kv.key.clone(), any_value_text(kv.value.as_ref())))
                .collect();
            let attribute_runes: usize = attributes
                .iter()
                .map(|(k, v)| k.chars().count() + v.chars().count())
                .sum();
            if runes + attribute_runes <= MAX_EXEMPLAR_RUNES {
                labels.extend(attributes);
            }
            Exemplar {
                labels: labels.into_iter().collect(),
                value,
                timestamp_ms: millis(e.time_unix_nano),
            }
        })
        .collect()
}
