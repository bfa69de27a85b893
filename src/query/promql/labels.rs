//! Label sets inside PromQL plans.
//!
//! Every PromQL plan row carries its series' label set in one Utf8 column, `labels`, in a
//! canonical encoding: pairs sorted by name, `name US value` joined by `RS` (ASCII unit and
//! record separators). Equal label sets are equal strings, so DataFusion can group, join and
//! sort on them directly; the UDFs below derive new label sets (by/without, on/ignoring,
//! dropping `__name__`, label_replace).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, DictionaryArray, StringArray, StringBuilder};
use arrow::datatypes::{DataType, UInt32Type};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarUDF, Signature, SimpleScalarUDF, TypeSignature, Volatility,
    create_udf,
};

use crate::model::METRIC_NAME_LABEL;

const PAIR_SEP: char = '\u{1f}';
const LABEL_SEP: char = '\u{1e}';

/// Encodes sorted pairs canonically.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(LABEL_SEP);
        }
        out.push_str(name);
        out.push(PAIR_SEP);
        out.push_str(value);
    }
    out
}

/// Decodes a canonical label string into (name, value) pairs, sorted by name.
pub fn decode(encoded: &str) -> Vec<(&str, &str)> {
    if encoded.is_empty() {
        return Vec::new();
    }
    encoded
        .split(LABEL_SEP)
        .filter_map(|pair| pair.split_once(PAIR_SEP))
        .collect()
}

/// Rebuilds a label string from owned pairs (sorting them first).
pub fn encode_owned(mut pairs: Vec<(String, String)>) -> String {
    pairs.sort();
    pairs.retain(|(_, v)| !v.is_empty());
    encode(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
}

/// Labels kept by `by (names)` / `on (names)`.
pub fn keep(encoded: &str, names: &[&str]) -> String {
    encode(
        decode(encoded)
            .into_iter()
            .filter(|(n, _)| names.contains(n)),
    )
}

/// Labels kept by `without (names)` / `ignoring (names)`; the metric name always goes.
pub fn drop(encoded: &str, names: &[&str]) -> String {
    encode(
        decode(encoded)
            .into_iter()
            .filter(|(n, _)| !names.contains(n) && *n != METRIC_NAME_LABEL && *n != NAME_DROPPED),
    )
}

/// The reserved label marking a set whose metric name is to be dropped. As in Prometheus
/// 3.x, operations that drop the name only mark it: label functions and `by (__name__)` still
/// see it, and [`finish`] removes it when the query's result is assembled.
pub const NAME_DROPPED: &str = "\u{0}name_dropped";

fn is_name_or_metadata(name: &str) -> bool {
    matches!(name, METRIC_NAME_LABEL | "__type__" | "__unit__")
}

/// The label set without the metric name, the metadata labels that go with it, and the mark.
pub fn drop_name(encoded: &str) -> String {
    encode(
        decode(encoded)
            .into_iter()
            .filter(|(n, _)| !is_name_or_metadata(n) && *n != NAME_DROPPED),
    )
}

/// Marks the metric name (and its metadata labels) to be dropped at the end.
pub fn mark_name_dropped(encoded: &str) -> String {
    let pairs = decode(encoded);
    if pairs.iter().any(|(n, _)| *n == NAME_DROPPED)
        || !pairs.iter().any(|(n, _)| is_name_or_metadata(n))
    {
        return encoded.to_string();
    }
    let mut owned: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    owned.push((NAME_DROPPED.to_string(), "1".to_string()));
    encode_owned(owned)
}

/// Whether the set's name is marked to be dropped.
pub fn is_name_dropped(encoded: &str) -> bool {
    get(encoded, NAME_DROPPED).is_some()
}

/// The label set a result shows: a marked name is dropped now.
pub fn finish(encoded: &str) -> String {
    if is_name_dropped(encoded) {
        drop_name(encoded)
    } else {
        encoded.to_string()
    }
}

/// `set`, for label_replace and label_join: a new metric name is kept, mark or not.
fn set_from_label_function(encoded: &str, name: &str, value: &str) -> String {
    let set = set(encoded, name, value);
    if name == METRIC_NAME_LABEL && is_name_dropped(&set) {
        encode(decode(&set).into_iter().filter(|(n, _)| *n != NAME_DROPPED))
    } else {
        set
    }
}

/// Prometheus's hash of a label set (`Labels.Hash()`): xxHash64 of every name and value,
/// each followed by 0xff.
pub fn prometheus_hash(encoded: &str) -> u64 {
    let mut bytes = Vec::with_capacity(encoded.len() + 2);
    for (name, value) in decode(encoded) {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0xff);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0xff);
    }
    twox_hash::XxHash64::oneshot(0, &bytes)
}

/// `prom_ratio_sample(labels, ratio)`: whether `limit_ratio(ratio, ...)` keeps the series,
/// by where its hash falls in [0, 1), as Prometheus decides.
pub fn ratio_sample_udf() -> ScalarUDF {
    create_udf(
        "prom_ratio_sample",
        vec![DataType::Utf8, DataType::Float64],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let labels = arrays[0]
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| DataFusionError::Internal("labels column is not Utf8".into()))?;
            let ratios = arrays[1]
                .as_any()
                .downcast_ref::<arrow::array::Float64Array>()
                .ok_or_else(|| DataFusionError::Internal("ratio is not Float64".into()))?;
            let keep: arrow::array::BooleanArray = (0..labels.len())
                .map(|i| {
                    if labels.is_null(i) || ratios.is_null(i) {
                        return Some(false);
                    }
                    let offset = prometheus_hash(labels.value(i)) as f64 / u64::MAX as f64;
                    let ratio = ratios.value(i);
                    Some((ratio >= 0.0 && offset < ratio) || (ratio < 0.0 && offset >= 1.0 + ratio))
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(keep)))
        }),
    )
}

pub fn get<'a>(encoded: &'a str, name: &str) -> Option<&'a str> {
    decode(encoded)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Sets (or, with an empty value, removes) one label.
pub fn set(encoded: &str, name: &str, value: &str) -> String {
    let mut pairs: Vec<(String, String)> = decode(encoded)
        .into_iter()
        .filter(|(n, _)| *n != name)
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    if !value.is_empty() {
        pairs.push((name.to_string(), value.to_string()));
    }
    encode_owned(pairs)
}

/// Whether two label strings are equal, for the row-to-row checks of plan nodes ("same
/// series as the last row?"). `==` on strings calls the C library's `memcmp`, which the
/// `promstep` benchmark measured at about 130 ns a call in `PromRank`'s row loop, even for
/// empty strings, more than the rest of a row's work; this compares 8-byte words inline.
pub fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    if std::ptr::eq(a.as_ptr(), b.as_ptr()) {
        return true;
    }
    let (a_words, b_words) = (a.chunks_exact(8), b.chunks_exact(8));
    let tails_equal = a_words
        .remainder()
        .iter()
        .zip(b_words.remainder())
        .all(|(x, y)| x == y);
    tails_equal && a_words.zip(b_words).all(|(x, y)| word(x) == word(y))
}

fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(bytes);
    u64::from_ne_bytes(w)
}

/// Names for a UDF argument: a comma-separated literal.
fn names_arg(arg: &ColumnarValue) -> DfResult<Vec<String>> {
    match arg {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(s))) => Ok(s
            .split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect()),
        ColumnarValue::Scalar(ScalarValue::Utf8(None)) => Ok(Vec::new()),
        _ => Err(DataFusionError::Plan(
            "label names must be a literal".into(),
        )),
    }
}

fn string_arg(arg: &ColumnarValue) -> DfResult<String> {
    match arg {
        ColumnarValue::Scalar(ScalarValue::Utf8(s)) => Ok(s.clone().unwrap_or_default()),
        _ => Err(DataFusionError::Plan("expected a string literal".into())),
    }
}

/// Applies `f` to every label string of the first argument, which is plain text or (from a
/// selector or `PromStep`) a dictionary; the answer is plain text.
fn map_labels(arg: &ColumnarValue, f: impl Fn(&str) -> Option<String>) -> DfResult<ColumnarValue> {
    match arg {
        ColumnarValue::Array(array) => {
            if let Some(dictionary) = array.as_any().downcast_ref::<DictionaryArray<UInt32Type>>() {
                return map_dictionary(dictionary, f).map(ColumnarValue::Array);
            }
            let strings = array
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| DataFusionError::Internal("labels column is not Utf8".into()))?;
            let mut out = StringBuilder::with_capacity(strings.len(), strings.value_data().len());
            // Rows of one series come together (a series has a row per step), so the last
            // answer is usually the next one too.
            let mut last: Option<(&str, Option<String>)> = None;
            for i in 0..strings.len() {
                if strings.is_null(i) {
                    out.append_null();
                    continue;
                }
                let input = strings.value(i);
                match &last {
                    Some((prev, answer)) if same_text(prev, input) => {
                        out.append_option(answer.as_deref())
                    }
                    _ => {
                        let answer = f(input);
                        out.append_option(answer.as_deref());
                        last = Some((input, answer));
                    }
                }
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
        }
        ColumnarValue::Scalar(ScalarValue::Utf8(s)) => Ok(ColumnarValue::Scalar(
            ScalarValue::Utf8(s.as_deref().and_then(f)),
        )),
        ColumnarValue::Scalar(ScalarValue::Dictionary(_, value)) => match value.as_ref() {
            ScalarValue::Utf8(s) => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
                s.as_deref().and_then(f),
            ))),
            _ => Err(DataFusionError::Internal(
                "labels dictionary does not hold Utf8".into(),
            )),
        },
        _ => Err(DataFusionError::Internal(
            "labels argument is not Utf8".into(),
        )),
    }
}

/// [`map_labels`] over a dictionary: `f` runs once per label set, not once per row.
fn map_dictionary(
    dictionary: &DictionaryArray<UInt32Type>,
    f: impl Fn(&str) -> Option<String>,
) -> DfResult<ArrayRef> {
    let values = dictionary
        .values()
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| DataFusionError::Internal("label dictionary values are not Utf8".into()))?;
    let answers: Vec<Option<String>> = values.iter().map(|v| v.and_then(&f)).collect();
    let bytes: usize = answers.iter().flatten().map(String::len).sum();
    let rows = dictionary.len();
    let per_row = bytes / answers.len().max(1);
    let mut out = StringBuilder::with_capacity(rows, rows * per_row);
    for key in dictionary.keys() {
        match key.and_then(|k| answers.get(k as usize)) {
            Some(answer) => out.append_option(answer.as_deref()),
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// A UDF of a label set (plain or dictionary text) and `arity - 1` more text arguments,
/// returning text.
fn labels_udf(
    name: &str,
    arity: usize,
    f: impl Fn(&[ColumnarValue]) -> DfResult<ColumnarValue> + Send + Sync + 'static,
) -> ScalarUDF {
    let with_first = |first: DataType| {
        let mut types = vec![first];
        types.extend(std::iter::repeat_n(DataType::Utf8, arity.saturating_sub(1)));
        TypeSignature::Exact(types)
    };
    let signature = Signature::one_of(
        vec![
            with_first(DataType::Utf8),
            with_first(DataType::Dictionary(
                Box::new(DataType::UInt32),
                Box::new(DataType::Utf8),
            )),
        ],
        Volatility::Immutable,
    );
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        name,
        signature,
        DataType::Utf8,
        Arc::new(f),
    ))
}

/// `prom_labels_keep(labels, 'a,b')`.
pub fn keep_udf() -> ScalarUDF {
    labels_udf("prom_labels_keep", 2, |args| {
        let names = names_arg(&args[1])?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        map_labels(&args[0], |l| Some(keep(l, &names)))
    })
}

/// `prom_labels_drop(labels, 'a,b')`: also drops `__name__`.
pub fn drop_udf() -> ScalarUDF {
    labels_udf("prom_labels_drop", 2, |args| {
        let names = names_arg(&args[1])?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        map_labels(&args[0], |l| Some(drop(l, &names)))
    })
}

/// `prom_drop_name(labels)`.
pub fn drop_name_udf() -> ScalarUDF {
    labels_udf("prom_drop_name", 1, |args| {
        map_labels(&args[0], |l| Some(mark_name_dropped(l)))
    })
}

/// `prom_mark_if(labels, flag)`: marks the name dropped when `flag` is `'1'` (an aggregation
/// by `__name__` whose inputs had marked names).
pub fn mark_if_udf() -> ScalarUDF {
    create_udf(
        "prom_mark_if",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let strings = |i: usize| {
                arrays[i]
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| DataFusionError::Internal("prom_mark_if needs text".into()))
            };
            let (labels, flags) = (strings(0)?, strings(1)?);
            let out: StringArray = (0..labels.len())
                .map(|i| {
                    (!labels.is_null(i)).then(|| {
                        if !flags.is_null(i) && flags.value(i) == "1" {
                            mark_name_dropped(labels.value(i))
                        } else {
                            labels.value(i).to_string()
                        }
                    })
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// `prom_name_dropped(labels)`: `'1'` when the set's name is marked dropped, else `''`.
pub fn name_dropped_udf() -> ScalarUDF {
    labels_udf("prom_name_dropped", 1, |args| {
        map_labels(&args[0], |l| {
            Some(if is_name_dropped(l) { "1" } else { "" }.to_string())
        })
    })
}

/// `prom_label_set(labels, 'name', 'value')` with literal name and value.
pub fn set_udf() -> ScalarUDF {
    labels_udf("prom_label_set", 3, |args| {
        let name = string_arg(&args[1])?;
        let value = string_arg(&args[2])?;
        map_labels(&args[0], |l| Some(set(l, &name, &value)))
    })
}

/// `prom_label_replace(labels, dst, replacement, src, regex)`, PromQL's `label_replace`.
pub fn replace_udf() -> ScalarUDF {
    labels_udf("prom_label_replace", 5, |args| {
        let dst = string_arg(&args[1])?;
        let replacement = string_arg(&args[2])?;
        let src = string_arg(&args[3])?;
        let pattern = string_arg(&args[4])?;
        let regex = crate::gocompat::regex::compile_anchored(&pattern).map_err(|e| {
            DataFusionError::Plan(format!(
                "invalid regular expression in label_replace(): {pattern}: {e}"
            ))
        })?;
        map_labels(&args[0], |l| {
            let source = get(l, &src).unwrap_or("");
            match regex.captures(source) {
                Some(caps) => {
                    let mut value = String::new();
                    caps.expand(&replacement, &mut value);
                    Some(set_from_label_function(l, &dst, &value))
                }
                None => Some(l.to_string()),
            }
        })
    })
}

/// `prom_label_join(labels, dst, separator, 'src1,src2')`, PromQL's `label_join`.
pub fn join_udf() -> ScalarUDF {
    labels_udf("prom_label_join", 4, |args| {
        let dst = string_arg(&args[1])?;
        let sep = string_arg(&args[2])?;
        let sources = names_arg(&args[3])?;
        map_labels(&args[0], |l| {
            let value: Vec<&str> = sources.iter().map(|s| get(l, s).unwrap_or("")).collect();
            Some(set_from_label_function(l, &dst, &value.join(&sep)))
        })
    })
}

/// Calls a label UDF on `labels` with literal string arguments.
pub fn call(udf: ScalarUDF, labels: Expr, literals: &[&str]) -> Expr {
    let mut args = vec![labels];
    args.extend(
        literals
            .iter()
            .map(|s| Expr::Literal(ScalarValue::Utf8(Some(s.to_string())), None)),
    );
    udf.call(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_hash_is_xxhash64_of_prometheus_bytes() {
        // XXH64 of no bytes, seed 0: the algorithm's published test vector.
        assert_eq!(prometheus_hash(""), 0xef46_db37_51d8_e999);
        let bytes = b"__name__\xffup\xffjob\xffnode\xff";
        let encoded = encode([("__name__", "up"), ("job", "node")]);
        assert_eq!(
            prometheus_hash(&encoded),
            twox_hash::XxHash64::oneshot(0, bytes)
        );
    }

    #[test]
    fn round_trip_and_derivations() {
        let l = encode([("__name__", "up"), ("instance", "a:1"), ("job", "x")]);
        assert_eq!(
            decode(&l),
            vec![("__name__", "up"), ("instance", "a:1"), ("job", "x")]
        );
        assert_eq!(keep(&l, &["job"]), encode([("job", "x")]));
        assert_eq!(drop(&l, &["job"]), encode([("instance", "a:1")]));
        assert_eq!(drop_name(&l), encode([("instance", "a:1"), ("job", "x")]));
        assert_eq!(
            set(&l, "job", ""),
            encode([("__name__", "up"), ("instance", "a:1")])
        );
        assert_eq!(
            set(&l, "a", "1"),
            encode([
                ("__name__", "up"),
                ("a", "1"),
                ("instance", "a:1"),
                ("job", "x")
            ])
        );
        assert!(decode("").is_empty());
    }

    #[test]
    fn same_text_compares_every_byte() {
        let long = "__name__\u{1f}up\u{1e}instance\u{1f}a:1";
        assert!(same_text("", ""));
        let copy = String::from(long);
        assert!(same_text(long, copy.as_str()));
        assert!(!same_text(long, &long.replace("a:1", "a:2")));
        assert!(!same_text("job\u{1f}x", "job\u{1f}y"));
        assert!(!same_text("abc", "abcd"));
    }
}
