//! Scrapes in the protobuf exposition format ([`crate::prompb::exposition`]), which is how
//! native histograms are scraped (the text formats cannot carry them). [`parse`] turns the
//! metric families into the same [`Exposition`] the text parsers
//! give, as Prometheus's protobuf parser does:
//! - counters, gauges and untyped metrics one sample each (a counter's or summary's or
//!   histogram's `created_timestamp` becomes the start timestamp, a counter's exemplar is
//!   kept);
//! - summaries `name{quantile}`, `name_sum`, `name_count`;
//! - a histogram with native buckets (any span, a zero threshold or a zero count) one
//!   native histogram sample, plus its classic series when `always_scrape_classic_histograms`
//!   asks ([`Options`]);
//! - a histogram without native buckets its classic series `name_bucket{le}` (a `+Inf`
//!   bucket added when missing), `name_sum`, `name_count`, or with
//!   `convert_classic_histograms_to_nhcb` a native histogram with custom buckets instead
//!   (and the classic series too when `always_scrape_classic_histograms`).
//!
//! Each sample's `series` range points into a key text [`parse`] returns alongside (the
//! name and label pairs, written out): the scrape loop caches what it made of a series
//! under that key, as it does for a text line.

use std::ops::Range;
use std::sync::Arc;

use super::parser::{Exposition, ParsedExemplar, ParsedSample};
use crate::gocompat::strconv::format_openmetrics_float;
use crate::model::histogram::{CounterResetHint, Histogram, Span};
use crate::model::{Metadata, MetricType};
use crate::prompb::exposition::{
    BucketSpan, COUNTER, DecodeError, Exemplar, GAUGE, GAUGE_HISTOGRAM, HISTOGRAM,
    HistogramMessage, MetricFamily, SUMMARY, Summary, Timestamp, decode,
};

pub use crate::config::HistogramOptions as Options;

/// Why a body was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("protobuf exposition: {0}")]
    Decode(#[from] DecodeError),
    #[error("protobuf exposition: a metric family without a name")]
    NoName,
    #[error("protobuf exposition: {family}: {message}")]
    Invalid { family: String, message: String },
}

/// A whole response as an [`Exposition`], with the key text its samples' `series` ranges
/// point into.
pub fn parse(body: &[u8], options: Options) -> Result<(String, Exposition), ProtobufError> {
    let mut out = Builder::default();
    for family in decode(body)? {
        out.family(family, options)?;
    }
    Ok((out.keys, out.exposition))
}

#[derive(Default)]
struct Builder {
    keys: String,
    exposition: Exposition,
}

/// One sample about to be added.
struct Emit<'a> {
    name: String,
    labels: &'a [(String, String)],
    extra: Option<(&'static str, String)>,
    value: f64,
    histogram: Option<Histogram>,
    timestamp_ms: Option<i64>,
    start_timestamp_ms: Option<i64>,
    exemplar: Option<ParsedExemplar>,
}

impl Builder {
    fn family(&mut self, family: MetricFamily, options: Options) -> Result<(), ProtobufError> {
        let name = family.name.clone().ok_or(ProtobufError::NoName)?;
        let kind = family.r#type.unwrap_or(3);
        let metric_type = match kind {
            COUNTER => MetricType::Counter,
            GAUGE => MetricType::Gauge,
            SUMMARY => MetricType::Summary,
            HISTOGRAM => MetricType::Histogram,
            GAUGE_HISTOGRAM => MetricType::GaugeHistogram,
            _ => MetricType::Unknown,
        };
        self.exposition.metadata.push(Metadata {
            metric_family: name.clone(),
            metric_type,
            help: family.help.clone().unwrap_or_default(),
            unit: family.unit.clone().unwrap_or_default(),
        });
        for metric in family.metric {
            let labels: Vec<(String, String)> = metric
                .label
                .iter()
                .map(|p| {
                    (
                        p.name.clone().unwrap_or_default(),
                        p.value.clone().unwrap_or_default(),
                    )
                })
                .collect();
            let at = metric.timestamp_ms;
            let plain = |value: f64| Emit {
                name: name.clone(),
                labels: &labels,
                extra: None,
                value,
                histogram: None,
                timestamp_ms: at,
                start_timestamp_ms: None,
                exemplar: None,
            };
            match kind {
                COUNTER => {
                    let counter = metric.counter.unwrap_or_default();
                    self.push(Emit {
                        start_timestamp_ms: counter
                            .created_timestamp
                            .as_ref()
                            .map(Timestamp::millis),
                        exemplar: counter.exemplar.as_ref().map(exemplar),
                        ..plain(counter.value.unwrap_or(0.0))
                    });
                }
                GAUGE => self.push(plain(metric.gauge.unwrap_or_default().value.unwrap_or(0.0))),
                SUMMARY => self.summary(&name, &labels, at, metric.summary.unwrap_or_default()),
                HISTOGRAM | GAUGE_HISTOGRAM => {
                    let h = metric.histogram.unwrap_or_default();
                    self.histogram(&name, &labels, at, kind == GAUGE_HISTOGRAM, h, options)
                        .map_err(|message| ProtobufError::Invalid {
                            family: name.clone(),
                            message,
                        })?;
                }
                _ => self.push(plain(
                    metric.untyped.unwrap_or_default().value.unwrap_or(0.0),
                )),
            }
        }
        Ok(())
    }

    fn summary(&mut self, name: &str, labels: &[(String, String)], at: Option<i64>, s: Summary) {
        let start = s.created_timestamp.as_ref().map(Timestamp::millis);
        let emit = |suffix: &str, extra: Option<(&'static str, String)>, value: f64| Emit {
            name: format!("{name}{suffix}"),
            labels,
            extra,
            value,
            histogram: None,
            timestamp_ms: at,
            start_timestamp_ms: start,
            exemplar: None,
        };
        for q in &s.quantile {
            let quantile = format_openmetrics_float(q.quantile.unwrap_or(0.0));
            self.push(emit(
                "",
                Some(("quantile", quantile)),
                q.value.unwrap_or(0.0),
            ));
        }
        self.push(emit("_sum", None, s.sample_sum.unwrap_or(0.0)));
        self.push(emit("_count", None, s.sample_count.unwrap_or(0) as f64));
    }

    fn histogram(
        &mut self,
        name: &str,
        labels: &[(String, String)],
        at: Option<i64>,
        gauge: bool,
        h: HistogramMessage,
        options: Options,
    ) -> Result<(), String> {
        let start = h.created_timestamp.as_ref().map(Timestamp::millis);
        let count = h
            .sample_count_float
            .unwrap_or(h.sample_count.unwrap_or(0) as f64);
        let sum = h.sample_sum.unwrap_or(0.0);
        let native = is_native(&h);
        let emit = |suffix: &str, value: f64, histogram: Option<Histogram>| Emit {
            name: format!("{name}{suffix}"),
            labels,
            extra: None,
            value,
            histogram,
            timestamp_ms: at,
            start_timestamp_ms: start,
            exemplar: None,
        };
        let buckets: Vec<(f64, f64)> = h
            .bucket
            .iter()
            .map(|b| {
                let cumulative = b
                    .cumulative_count_float
                    .unwrap_or(b.cumulative_count.unwrap_or(0) as f64);
                (b.upper_bound.unwrap_or(f64::INFINITY), cumulative)
            })
            .collect();
        let converted = !native && options.nhcb && !buckets.is_empty();
        if native || converted {
            let mut histogram = match native {
                true => native_histogram(&h, count, sum)?,
                false => Histogram::from_classic_buckets(&buckets, count, sum),
            };
            if gauge {
                histogram.counter_reset_hint = CounterResetHint::Gauge;
            }
            histogram
                .validate(native && h.sample_count_float.is_none())
                .map_err(|e| e.to_string())?;
            self.push(emit("", f64::NAN, Some(histogram)));
            if !options.classic || buckets.is_empty() {
                return Ok(());
            }
        }
        for (i, &(bound, cumulative)) in buckets.iter().enumerate() {
            self.push(Emit {
                extra: Some(("le", format_openmetrics_float(bound))),
                exemplar: h.bucket[i].exemplar.as_ref().map(exemplar),
                ..emit("_bucket", cumulative, None)
            });
        }
        if buckets.last().is_none_or(|(bound, _)| bound.is_finite()) {
            self.push(Emit {
                extra: Some(("le", "+Inf".into())),
                ..emit("_bucket", count, None)
            });
        }
        self.push(emit("_sum", sum, None));
        self.push(emit("_count", count, None));
        Ok(())
    }

    fn push(&mut self, e: Emit<'_>) {
        let mut labels = e.labels.to_vec();
        if let Some((name, value)) = e.extra {
            labels.retain(|(n, _)| n != name);
            labels.push((name.to_string(), value));
        }
        let series = self.key(&e.name, &labels);
        self.exposition.samples.push(ParsedSample {
            name: e.name,
            labels,
            series,
            known: false,
            value: e.value,
            timestamp_ms: e.timestamp_ms,
            start_timestamp_ms: e.start_timestamp_ms,
            exemplar: e.exemplar,
            histogram: e.histogram.map(Arc::new),
        });
    }

    /// Writes the series' key (name and label pairs, each length-prefixed so no two series
    /// share one) and returns where it is.
    fn key(&mut self, name: &str, labels: &[(String, String)]) -> Range<usize> {
        use std::fmt::Write;
        let start = self.keys.len();
        let _ = write!(self.keys, "{}:{name}", name.len());
        for (n, v) in labels {
            let _ = write!(self.keys, "|{}:{n}{}:{v}", n.len(), v.len());
        }
        start..self.keys.len()
    }
}

/// Whether a histogram message has native buckets (Prometheus's test: a span, a zero
/// threshold or a zero count; an exporter sends a no-op span for an empty one).
fn is_native(h: &HistogramMessage) -> bool {
    !h.positive_span.is_empty()
        || !h.negative_span.is_empty()
        || h.zero_threshold.unwrap_or(0.0) > 0.0
        || h.zero_count.unwrap_or(0) > 0
        || h.zero_count_float.unwrap_or(0.0) > 0.0
}

fn native_histogram(h: &HistogramMessage, count: f64, sum: f64) -> Result<Histogram, String> {
    let integer = h.sample_count_float.is_none();
    let spans = |wire: &[BucketSpan]| -> Vec<Span> {
        wire.iter()
            .map(|s| Span {
                offset: s.offset.unwrap_or(0),
                length: s.length.unwrap_or(0),
            })
            .collect()
    };
    let side = |deltas: &[i64], counts: &[f64]| -> Vec<f64> {
        match integer {
            true => crate::prompb::histogram::cumulate(deltas),
            false => counts.to_vec(),
        }
    };
    let zero_count = match integer {
        true => h.zero_count.unwrap_or(0) as f64,
        false => h.zero_count_float.unwrap_or(0.0),
    };
    Ok(Histogram {
        counter_reset_hint: CounterResetHint::Unknown,
        schema: h.schema.unwrap_or(0),
        zero_threshold: h.zero_threshold.unwrap_or(0.0),
        zero_count,
        count,
        sum,
        positive_spans: spans(&h.positive_span),
        positive_buckets: side(&h.positive_delta, &h.positive_count),
        negative_spans: spans(&h.negative_span),
        negative_buckets: side(&h.negative_delta, &h.negative_count),
        custom_values: Vec::new(),
    })
}

fn exemplar(e: &Exemplar) -> ParsedExemplar {
    ParsedExemplar {
        labels: e
            .label
            .iter()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.value.clone().unwrap_or_default(),
                )
            })
            .collect(),
        value: e.value.unwrap_or(0.0),
        timestamp_ms: e.timestamp.as_ref().map(Timestamp::millis),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::exposition::*;

    fn pair(name: &str, value: &str) -> LabelPair {
        LabelPair {
            name: Some(name.into()),
            value: Some(value.into()),
        }
    }

    fn family(name: &str, kind: i32, metric: Metric) -> MetricFamily {
        MetricFamily {
            name: Some(name.into()),
            help: Some(format!("{name} help")),
            r#type: Some(kind),
            metric: vec![metric],
            unit: None,
        }
    }

    fn classic() -> HistogramMessage {
        HistogramMessage {
            sample_count: Some(4),
            sample_sum: Some(3.5),
            bucket: vec![
                Bucket {
                    cumulative_count: Some(1),
                    upper_bound: Some(0.5),
                    ..Default::default()
                },
                Bucket {
                    cumulative_count: Some(3),
                    upper_bound: Some(1.0),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn native() -> HistogramMessage {
        HistogramMessage {
            schema: Some(0),
            zero_threshold: Some(0.001),
            zero_count: Some(1),
            positive_span: vec![BucketSpan {
                offset: Some(0),
                length: Some(2),
            }],
            positive_delta: vec![1, 1],
            ..classic()
        }
    }

    fn names(e: &Exposition) -> Vec<String> {
        e.samples
            .iter()
            .map(|s| {
                let le = s.labels.iter().find(|(n, _)| n == "le");
                match le {
                    Some((_, v)) => format!("{}{{le={v}}}={}", s.name, s.value),
                    None if s.histogram.is_some() => format!("{}=histogram", s.name),
                    None => format!("{}={}", s.name, s.value),
                }
            })
            .collect()
    }

    #[test]
    fn counters_gauges_and_summaries_become_their_series() {
        let body = encode(&[
            family(
                "requests_total",
                COUNTER,
                Metric {
                    label: vec![pair("code", "200")],
                    counter: Some(Counter {
                        value: Some(7.0),
                        exemplar: Some(Exemplar {
                            label: vec![pair("trace_id", "abc")],
                            value: Some(1.0),
                            timestamp: None,
                        }),
                        created_timestamp: Some(Timestamp {
                            seconds: 10,
                            nanos: 5_000_000,
                        }),
                    }),
                    ..Default::default()
                },
            ),
            family(
                "temperature",
                GAUGE,
                Metric {
                    gauge: Some(Gauge { value: Some(21.5) }),
                    timestamp_ms: Some(1234),
                    ..Default::default()
                },
            ),
            family(
                "latency",
                SUMMARY,
                Metric {
                    summary: Some(Summary {
                        sample_count: Some(3),
                        sample_sum: Some(1.5),
                        quantile: vec![Quantile {
                            quantile: Some(0.5),
                            value: Some(0.4),
                        }],
                        created_timestamp: None,
                    }),
                    ..Default::default()
                },
            ),
        ]);
        let (keys, e) = parse(&body, Options::default()).unwrap();
        assert_eq!(
            names(&e),
            [
                "requests_total=7",
                "temperature=21.5",
                "latency=0.4",
                "latency_sum=1.5",
                "latency_count=3"
            ]
        );
        let counter = &e.samples[0];
        assert_eq!(counter.start_timestamp_ms, Some(10_005));
        assert_eq!(counter.exemplar.as_ref().map(|x| x.value), Some(1.0));
        assert_eq!(e.samples[1].timestamp_ms, Some(1234));
        assert_eq!(e.samples[2].labels, [("quantile".into(), "0.5".into())]);
        assert_eq!(e.metadata[0].metric_type, MetricType::Counter);
        // Every series has its own key.
        let mut seen: Vec<&str> = e.samples.iter().map(|s| &keys[s.series.clone()]).collect();
        seen.dedup();
        assert_eq!(seen.len(), e.samples.len());
    }

    #[test]
    fn histograms_are_native_classic_or_converted_as_configured() {
        let body = encode(&[
            family(
                "native",
                HISTOGRAM,
                Metric {
                    histogram: Some(native()),
                    ..Default::default()
                },
            ),
            family(
                "classic",
                HISTOGRAM,
                Metric {
                    histogram: Some(classic()),
                    ..Default::default()
                },
            ),
        ]);
        let (_, plain) = parse(&body, Options::default()).unwrap();
        assert_eq!(
            names(&plain),
            [
                "native=histogram",
                "classic_bucket{le=0.5}=1",
                "classic_bucket{le=1.0}=3",
                "classic_bucket{le=+Inf}=4",
                "classic_sum=3.5",
                "classic_count=4"
            ]
        );
        let h = plain.samples[0].histogram.as_deref().unwrap();
        assert_eq!(
            (h.count, h.zero_count, &h.positive_buckets[..]),
            (4.0, 1.0, &[1.0, 2.0][..])
        );

        let both = Options {
            classic: true,
            nhcb: true,
        };
        let (_, converted) = parse(&body, both).unwrap();
        assert_eq!(
            names(&converted)[..2],
            ["native=histogram", "native_bucket{le=0.5}=1"]
        );
        assert_eq!(names(&converted)[6], "classic=histogram");
        let nhcb = converted.samples[6].histogram.as_deref().unwrap();
        assert_eq!(nhcb.custom_values, [0.5, 1.0]);
        assert_eq!(nhcb.positive_buckets, [1.0, 2.0, 1.0]);
        assert_eq!(names(&converted).len(), 12);
    }

    #[test]
    fn broken_bodies_are_refused() {
        let body = encode(&[family("x", GAUGE, Metric::default())]);
        assert!(matches!(
            parse(&body[..body.len() - 1], Options::default()),
            Err(ProtobufError::Decode(DecodeError::Truncated { .. }))
        ));
        assert!(parse(&[0xff], Options::default()).is_err());
        // A native histogram whose buckets do not add up to its count.
        let mut bad = native();
        bad.sample_count = Some(100);
        let body = encode(&[family(
            "bad",
            HISTOGRAM,
            Metric {
                histogram: Some(bad),
                ..Default::default()
            },
        )]);
        assert!(matches!(
            parse(&body, Options::default()),
            Err(ProtobufError::Invalid { .. })
        ));
    }
}
