use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge,
    Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    Summary, SummaryDataPoint, exemplar, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::config::OtlpConfig;

use super::{Series, TranslationStrategy, translate};

const T: u64 = 1_700_000_000_000_000_000;
const T_MS: i64 = 1_700_000_000_000;
const START: u64 = T - 60_000_000_000;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn number(attrs: Vec<KeyValue>, value: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: START,
        time_unix_nano: T,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.to_owned(),
        unit: unit.to_owned(),
        data: Some(data),
        ..Default::default()
    }
}

fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "shop.meter".to_owned(),
                    version: "1.2".to_owned(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn service() -> Vec<KeyValue> {
    vec![
        kv("service.name", "checkout"),
        kv("service.namespace", "shop"),
        kv("service.instance.id", "pod-1"),
        kv("host.name", "node-7"),
    ]
}

fn find<'a>(series: &'a [Series], name: &str, extra: &[(&str, &str)]) -> &'a Series {
    series
        .iter()
        .find(|s| {
            s.labels.iter().any(|(k, v)| k == "__name__" && v == name)
                && extra
                    .iter()
                    .all(|(ek, ev)| s.labels.iter().any(|(k, v)| k == ek && v == ev))
        })
        .unwrap_or_else(|| panic!("no series {name} {extra:?} in {series:#?}"))
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn gauges_and_counters_with_job_instance_and_start_times() {
    let req = request(
        service(),
        vec![
            metric(
                "queue.depth",
                "{items}",
                Data::Gauge(Gauge {
                    data_points: vec![number(vec![kv("queue", "q1")], 7.0)],
                }),
            ),
            metric(
                "http.requests",
                "1",
                Data::Sum(Sum {
                    data_points: vec![number(vec![kv("http.method", "GET")], 42.0)],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
            ),
            metric(
                "pool.used",
                "By",
                Data::Sum(Sum {
                    data_points: vec![number(vec![], -3.0)],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: false,
                }),
            ),
        ],
    );
    let out = translate(&req, &OtlpConfig::default());
    assert_eq!(out.rejected, 0, "{:?}", out.errors);
    let gauge = find(&out.series, "queue_depth", &[]);
    assert_eq!(
        gauge.labels,
        labels(&[
            ("__name__", "queue_depth"),
            ("instance", "pod-1"),
            ("job", "shop/checkout"),
            ("queue", "q1")
        ])
    );
    assert_eq!(gauge.samples[0].value, 7.0);
    assert_eq!(gauge.samples[0].timestamp_ms, T_MS);
    assert_eq!(
        gauge.samples[0].start_timestamp_ms, 0,
        "gauges have no start"
    );
    let counter = find(
        &out.series,
        "http_requests_total",
        &[("http_method", "GET")],
    );
    assert_eq!(counter.samples[0].value, 42.0);
    assert_eq!(counter.samples[0].start_timestamp_ms, T_MS - 60_000);
    assert_eq!(
        find(&out.series, "pool_used_bytes", &[]).samples[0].value,
        -3.0
    );
    // The resource's other attribute is on target_info, not on the series.
    let info = find(&out.series, "target_info", &[]);
    assert_eq!(
        info.labels,
        labels(&[
            ("__name__", "target_info"),
            ("host_name", "node-7"),
            ("instance", "pod-1"),
            ("job", "shop/checkout")
        ])
    );
    assert!(!gauge.labels.iter().any(|(k, _)| k == "host_name"));
}

#[test]
fn histograms_become_classic_buckets_with_exemplars_in_their_bucket() {
    let trace = vec![0xab; 16];
    let req = request(
        service(),
        vec![metric(
            "http.server.duration",
            "s",
            Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: vec![kv("route", "/pay")],
                    start_time_unix_nano: START,
                    time_unix_nano: T,
                    count: 10,
                    sum: Some(4.5),
                    bucket_counts: vec![2, 5, 3],
                    explicit_bounds: vec![0.1, 1.0],
                    exemplars: vec![Exemplar {
                        time_unix_nano: T,
                        trace_id: trace.clone(),
                        span_id: vec![0xcd; 8],
                        value: Some(exemplar::Value::AsDouble(0.5)),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        )],
    );
    let out = translate(&req, &OtlpConfig::default());
    let family = "http_server_duration_seconds";
    let bucket = |le: &str| find(&out.series, &format!("{family}_bucket"), &[("le", le)]);
    assert_eq!(bucket("0.1").samples[0].value, 2.0);
    assert_eq!(bucket("1").samples[0].value, 7.0);
    assert_eq!(bucket("+Inf").samples[0].value, 10.0);
    assert_eq!(
        find(&out.series, &format!("{family}_sum"), &[]).samples[0].value,
        4.5
    );
    assert_eq!(
        find(&out.series, &format!("{family}_count"), &[]).samples[0].value,
        10.0
    );
    assert!(bucket("0.1").exemplars.is_empty());
    let exemplars = &bucket("1").exemplars;
    assert_eq!(exemplars.len(), 1);
    assert_eq!(exemplars[0].value, 0.5);
    assert_eq!(
        exemplars[0].labels.to_pairs(),
        vec![
            ("span_id".to_owned(), "cd".repeat(8)),
            ("trace_id".to_owned(), "ab".repeat(16))
        ]
    );
}

#[test]
fn summaries_stale_points_and_refusals() {
    let req = request(
        vec![kv("service.name", "batch")],
        vec![
            metric(
                "job.latency",
                "ms",
                Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint {
                        time_unix_nano: T,
                        count: 4,
                        sum: 10.0,
                        quantile_values: vec![ValueAtQuantile {
                            quantile: 0.99,
                            value: 3.5,
                        }],
                        ..Default::default()
                    }],
                }),
            ),
            metric(
                "gone",
                "",
                Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        flags: 1,
                        ..number(vec![], 1.0)
                    }],
                }),
            ),
            metric(
                "deltas",
                "",
                Data::Sum(Sum {
                    data_points: vec![number(vec![], 1.0), number(vec![], 2.0)],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                    is_monotonic: true,
                }),
            ),
            metric(
                "exp",
                "",
                Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![ExponentialHistogramDataPoint {
                        scale: -5,
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
            ),
        ],
    );
    let out = translate(&req, &OtlpConfig::default());
    assert_eq!(
        find(
            &out.series,
            "job_latency_milliseconds",
            &[("quantile", "0.99")]
        )
        .samples[0]
            .value,
        3.5
    );
    assert_eq!(
        find(&out.series, "job_latency_milliseconds_count", &[]).samples[0].value,
        4.0
    );
    assert!(crate::model::is_stale_nan(
        find(&out.series, "gone", &[]).samples[0].value
    ));
    assert_eq!(out.rejected, 3);
    assert!(
        out.errors[0].contains("\"deltas\"") && out.errors[0].contains("DELTA"),
        "{:?}",
        out.errors
    );
    assert!(
        out.errors[1].contains("Scale must be >= -4, was -5"),
        "{:?}",
        out.errors
    );
    assert!(
        !out.series
            .iter()
            .any(|s| s.labels.iter().any(|(_, v)| v == "deltas_total"))
    );
    // Only service.name: no target_info.
    assert!(
        !out.series
            .iter()
            .any(|s| s.labels.iter().any(|(_, v)| v == "target_info"))
    );
}

#[test]
fn promotion_collisions_scope_and_strategy() {
    let config = OtlpConfig {
        promote_resource_attributes: vec!["host.name".to_owned()],
        promote_scope_metadata: true,
        ..OtlpConfig::default()
    };
    let req = request(
        service(),
        vec![metric(
            "temp",
            "Cel",
            Data::Gauge(Gauge {
                data_points: vec![number(vec![kv("a.b", "1"), kv("a_b", "2")], 20.0)],
            }),
        )],
    );
    let out = translate(&req, &config);
    let s = find(&out.series, "temp_celsius", &[]);
    assert!(
        s.labels.contains(&("a_b".to_owned(), "1;2".to_owned())),
        "{:?}",
        s.labels
    );
    assert!(
        s.labels
            .contains(&("host_name".to_owned(), "node-7".to_owned()))
    );
    assert!(
        s.labels
            .contains(&("otel_scope_name".to_owned(), "shop.meter".to_owned()))
    );
    assert!(
        s.labels
            .contains(&("otel_scope_version".to_owned(), "1.2".to_owned()))
    );

    let utf8 = OtlpConfig {
        translation_strategy: TranslationStrategy::NoUtf8EscapingWithSuffixes,
        ..OtlpConfig::default()
    };
    let out = translate(&req, &utf8);
    let s = find(&out.series, "temp_celsius", &[]);
    assert!(
        s.labels.contains(&("a.b".to_owned(), "1".to_owned())),
        "{:?}",
        s.labels
    );
}

/// Exponential histograms become native histograms as Prometheus converts them: OTLP's
/// bucket `i` is Prometheus's `i + 1`, scales above 8 are merged down to 8, long runs of
/// empty buckets start new spans, "no recorded value" is a stale sum; explicit-bucket
/// histograms become custom-bucket histograms with `convert_histograms_to_nhcb`.
#[test]
fn exponential_and_nhcb_histograms_become_native_histograms() {
    use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
    let point = |scale: i32, offset: i32, counts: Vec<u64>, flags: u32| {
        let count = counts.iter().sum::<u64>() + 1;
        ExponentialHistogramDataPoint {
            start_time_unix_nano: START,
            time_unix_nano: T,
            scale,
            count,
            sum: Some(12.5),
            zero_count: 1,
            positive: Some(Buckets {
                offset,
                bucket_counts: counts,
            }),
            flags,
            ..Default::default()
        }
    };
    let exp = |name: &str, p: ExponentialHistogramDataPoint| {
        metric(
            name,
            "s",
            Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![p],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        )
    };
    let explicit = metric(
        "sizes",
        "By",
        Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                start_time_unix_nano: START,
                time_unix_nano: T,
                count: 5,
                sum: Some(700.0),
                bucket_counts: vec![0, 0, 3, 2],
                explicit_bounds: vec![10.0, 100.0, 1000.0],
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
    );
    let req = request(
        vec![kv("service.name", "api")],
        vec![
            exp("latency", point(2, -1, vec![1, 2, 0, 0, 0, 0, 3], 0)),
            exp("fine", point(10, 3, vec![1, 1, 1, 1, 1], 0)),
            exp("gone", point(0, 0, vec![], 1)),
            explicit,
        ],
    );
    let config = OtlpConfig {
        convert_histograms_to_nhcb: true,
        ..OtlpConfig::default()
    };
    let out = translate(&req, &config);
    assert_eq!(out.rejected, 0, "{:?}", out.errors);
    let h = |name: &str| find(&out.series, name, &[]).histograms[0].clone();
    let latency = h("latency_seconds");
    assert_eq!(latency.timestamp_ms, T_MS);
    assert_eq!(latency.start_timestamp_ms, T_MS - 60_000);
    let l = &latency.histogram;
    assert_eq!(
        (l.schema, l.count, l.zero_count, l.sum),
        (2, 7.0, 1.0, 12.5)
    );
    assert_eq!(l.zero_threshold, 1e-128);
    // Indexes 0 and 1, four empty ones (a new span), then 6.
    assert_eq!(
        l.positive_spans,
        vec![
            crate::model::histogram::Span {
                offset: 0,
                length: 2
            },
            crate::model::histogram::Span {
                offset: 4,
                length: 1
            }
        ]
    );
    assert_eq!(l.positive_buckets, vec![1.0, 2.0, 3.0]);
    l.validate(true).unwrap();
    // Scale 10 to 8: indexes 3..=7 become (3>>2)+1 = 1 (3), (4..=7>>2)+1 = 2 (4 of them).
    let fine = h("fine_seconds");
    assert_eq!(fine.histogram.schema, 8);
    assert_eq!(
        fine.histogram.positive_spans,
        vec![crate::model::histogram::Span {
            offset: 1,
            length: 2
        }]
    );
    assert_eq!(fine.histogram.positive_buckets, vec![1.0, 4.0]);
    assert!(crate::model::is_stale_nan(h("gone_seconds").histogram.sum));
    // Explicit buckets as custom buckets: the two leading empty buckets are left out.
    let sizes = h("sizes_bytes");
    let s = &sizes.histogram;
    assert_eq!(s.schema, crate::model::histogram::CUSTOM_BUCKETS_SCHEMA);
    assert_eq!(s.custom_values, vec![10.0, 100.0, 1000.0]);
    assert_eq!(
        s.positive_spans,
        vec![crate::model::histogram::Span {
            offset: 2,
            length: 2
        }]
    );
    assert_eq!(s.positive_buckets, vec![3.0, 2.0]);
    s.validate(true).unwrap();
    assert!(
        !out.series
            .iter()
            .any(|s| s.labels.iter().any(|(_, v)| v == "sizes_bytes_bucket"))
    );
}
