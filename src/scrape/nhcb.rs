//! `convert_classic_histograms_to_nhcb` for the text formats: the classic series of each
//! histogram family (`_bucket{le}`, `_count`, `_sum` of one label set) become one native
//! histogram with custom buckets ([`Histogram::from_classic_buckets`]), in the place of the
//! family's first series of that label set; the classic series stay too when
//! `always_scrape_classic_histograms` asks. (The protobuf format is converted as it is read,
//! in [`super::protobuf`].)
//!
//! A converted sample has no text of its own in the body, so its cache key is written after
//! a copy of the body: [`convert`] returns that text, which the samples' `series` ranges
//! point into.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::parser::{Exposition, ParsedSample};
use crate::model::histogram::Histogram;
use crate::model::{Metadata, MetricType};

/// One label set's classic series of a histogram family.
#[derive(Default)]
struct Group {
    /// Index of the group's first sample in the exposition.
    first: usize,
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: Option<f64>,
    timestamp_ms: Option<i64>,
    start_timestamp_ms: Option<i64>,
}

/// What part of a histogram family a sample is.
enum Part {
    Bucket(f64),
    Count,
    Sum,
}

/// The family and part a sample belongs to, when it is a classic histogram's series.
fn part_of<'a>(
    sample: &'a ParsedSample,
    histograms: &HashMap<&str, ()>,
) -> Option<(&'a str, Part)> {
    let name = sample.name.as_str();
    let (family, part) = if let Some(f) = name.strip_suffix("_bucket") {
        let le = sample.labels.iter().find(|(n, _)| n == "le")?;
        (f, Part::Bucket(le.1.parse::<f64>().ok()?))
    } else if let Some(f) = name.strip_suffix("_count") {
        (f, Part::Count)
    } else if let Some(f) = name.strip_suffix("_sum") {
        (f, Part::Sum)
    } else {
        return None;
    };
    histograms.contains_key(family).then_some((family, part))
}

/// The exposition with its classic histograms converted, and the text its samples' `series`
/// ranges point into. Samples must have been parsed with their labels (not `known`).
pub fn convert(body: &str, exposition: Exposition, keep_classic: bool) -> (String, Exposition) {
    let histograms: HashMap<&str, ()> = exposition
        .metadata
        .iter()
        .filter(|m: &&Metadata| m.metric_type == MetricType::Histogram)
        .map(|m| (m.metric_family.as_str(), ()))
        .collect();
    if histograms.is_empty() {
        return (body.to_string(), exposition);
    }
    // (family, labels without `le`) -> its classic series.
    let mut groups: BTreeMap<(String, Vec<(String, String)>), Group> = BTreeMap::new();
    let mut classic = vec![false; exposition.samples.len()];
    for (i, sample) in exposition.samples.iter().enumerate() {
        let Some((family, part)) = part_of(sample, &histograms) else {
            continue;
        };
        classic[i] = true;
        let mut labels: Vec<(String, String)> = sample
            .labels
            .iter()
            .filter(|(n, _)| n != "le")
            .cloned()
            .collect();
        labels.sort();
        let group = groups
            .entry((family.to_string(), labels))
            .or_insert_with(|| Group {
                first: i,
                ..Group::default()
            });
        match part {
            Part::Bucket(bound) => group.buckets.push((bound, sample.value)),
            Part::Count => group.count = Some(sample.value),
            Part::Sum => group.sum = Some(sample.value),
        }
        group.timestamp_ms = group.timestamp_ms.or(sample.timestamp_ms);
        group.start_timestamp_ms = group.start_timestamp_ms.or(sample.start_timestamp_ms);
    }
    let mut keys = body.to_string();
    let mut converted: BTreeMap<usize, Vec<ParsedSample>> = BTreeMap::new();
    for ((family, labels), mut group) in groups {
        if group.buckets.is_empty() {
            continue;
        }
        group
            .buckets
            .sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        let inf = group
            .buckets
            .last()
            .filter(|(bound, _)| bound.is_infinite())
            .map(|(_, c)| *c);
        let count = group.count.or(inf).unwrap_or(0.0);
        let histogram =
            Histogram::from_classic_buckets(&group.buckets, count, group.sum.unwrap_or(0.0));
        let start = keys.len();
        keys.push_str(&format!("\u{0}nhcb:{family}{labels:?}"));
        converted
            .entry(group.first)
            .or_default()
            .push(ParsedSample {
                name: family,
                labels,
                series: start..keys.len(),
                known: false,
                value: f64::NAN,
                timestamp_ms: group.timestamp_ms,
                start_timestamp_ms: group.start_timestamp_ms,
                exemplar: None,
                histogram: Some(Arc::new(histogram)),
            });
    }
    let Exposition { samples, metadata } = exposition;
    let mut out = Vec::with_capacity(samples.len());
    for (i, sample) in samples.into_iter().enumerate() {
        if let Some(native) = converted.remove(&i) {
            out.extend(native);
        }
        if !classic[i] || keep_classic {
            out.push(sample);
        }
    }
    (
        keys,
        Exposition {
            samples: out,
            metadata,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::parser::{Format, parse};

    const TEXT: &str = "# TYPE rpc histogram\n\
        rpc_bucket{code=\"200\",le=\"0.1\"} 2\n\
        rpc_bucket{code=\"200\",le=\"1.0\"} 5\n\
        rpc_bucket{code=\"200\",le=\"+Inf\"} 6\n\
        rpc_sum{code=\"200\"} 3.5\n\
        rpc_count{code=\"200\"} 6\n\
        # TYPE up gauge\n\
        up 1\n";

    #[test]
    fn classic_histograms_become_custom_buckets() {
        let exposition = parse(TEXT, Format::PrometheusText).unwrap();
        let (keys, converted) = convert(TEXT, exposition.clone(), false);
        let names: Vec<&str> = converted.samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["rpc", "up"]);
        let h = converted.samples[0].histogram.as_deref().unwrap();
        assert_eq!((h.count, h.sum), (6.0, 3.5));
        assert_eq!(h.custom_values, [0.1, 1.0]);
        assert_eq!(h.positive_buckets, [2.0, 3.0, 1.0]);
        assert_eq!(
            converted.samples[0].labels,
            [("code".to_string(), "200".to_string())]
        );
        // Its key is its own, after the body; the others keep theirs.
        assert!(converted.samples[0].series.start >= TEXT.len());
        assert_eq!(&keys[converted.samples[1].series.clone()], "up");

        let (_, both) = convert(TEXT, exposition, true);
        assert_eq!(both.samples.len(), 7);
        assert_eq!(both.samples[0].name, "rpc");
    }
}
