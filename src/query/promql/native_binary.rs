//! PromQL's binary operators where an operand may be a native histogram, sample by sample,
//! as Prometheus's `vectorElemBinop` defines them:
//! - histogram `+`/`-` histogram add or subtract (a difference is a gauge histogram);
//!   `==`/`!=` compare them whole;
//! - histogram `*` number, number `*` histogram and histogram `/` number scale it;
//! - histogram `</` number and `>/` number trim it ([`Histogram::trim`]);
//! - every other pairing with a histogram has no result, with Prometheus's info about
//!   incompatible sample types; `</` and `>/` between two floats likewise.
//!
//! The planner evaluates them with [`binary_udf`] over the joined operands' `value` and
//! `histogram` columns, only where an operand can carry histograms; floats alone keep their
//! vectorised plans.

use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, StructArray};
use arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

use crate::model::Histogram;
use crate::model::histogram::CounterResetHint;
use crate::storage::histogram_arrow::{HistogramColumn, histogram_type, to_array};

use super::ops::BinaryOp;

/// One operand's sample: a float, or a native histogram.
#[derive(Debug, Clone, Copy)]
pub struct Operand<'a> {
    pub float: f64,
    pub histogram: Option<&'a Histogram>,
}

impl Operand<'_> {
    fn kind(&self) -> &'static str {
        match self.histogram {
            Some(_) => "histogram",
            None => "float",
        }
    }
}

/// What Prometheus notes about one sample's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// The operator does not take these sample types (an info).
    Incompatible {
        left: &'static str,
        right: &'static str,
    },
    /// Custom-bucket histograms with different bounds were combined on their shared bounds
    /// (an info).
    Reconciled,
    /// An exponential and a custom-bucket histogram cannot be combined (a warning).
    MixedSchemas,
}

/// One sample's result: the kept float or histogram (None: no sample), and a note.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub kept: Option<(f64, Option<Histogram>)>,
    pub note: Option<Note>,
}

impl Outcome {
    fn keep(float: f64, histogram: Option<Histogram>) -> Outcome {
        Outcome {
            kept: Some((float, histogram)),
            note: None,
        }
    }

    fn none(note: Option<Note>) -> Outcome {
        Outcome { kept: None, note }
    }
}

/// `l op r` for one pair of samples. A comparison that holds keeps the left operand's
/// sample, or the right one's when `keep_right` (the vector side of `scalar op vector`, the
/// "many" side of `group_right`); with `return_bool` it gives 1 or 0 instead (an
/// incompatible pairing still gives nothing).
pub fn apply(
    op: BinaryOp,
    l: Operand<'_>,
    r: Operand<'_>,
    keep_right: bool,
    return_bool: bool,
) -> Outcome {
    let incompatible = || {
        Outcome::none(Some(Note::Incompatible {
            left: l.kind(),
            right: r.kind(),
        }))
    };
    let outcome = match (l.histogram, r.histogram) {
        (None, None) if op.is_trim() => incompatible(),
        (None, None) if op.is_comparison() => match op.on_floats(l.float, r.float) {
            Some(1.0) => kept_operand(l, r, keep_right),
            _ => Outcome::none(None),
        },
        (None, None) => match op.on_floats(l.float, r.float) {
            Some(v) => Outcome::keep(v, None),
            None => Outcome::none(None),
        },
        (None, Some(h)) => match op {
            BinaryOp::Mul => Outcome::keep(0.0, Some(h.scale(l.float))),
            _ => incompatible(),
        },
        (Some(h), None) => match op {
            BinaryOp::Mul => Outcome::keep(0.0, Some(h.scale(r.float))),
            BinaryOp::Div => Outcome::keep(0.0, Some(h.div(r.float))),
            BinaryOp::TrimUpper => Outcome::keep(0.0, Some(h.trim(r.float, true))),
            BinaryOp::TrimLower => Outcome::keep(0.0, Some(h.trim(r.float, false))),
            _ => incompatible(),
        },
        (Some(a), Some(b)) => match op {
            BinaryOp::Add | BinaryOp::Sub => combine(op, a, b),
            BinaryOp::Eq if a.same_as(b) => kept_operand(l, r, keep_right),
            BinaryOp::Ne if !a.same_as(b) => kept_operand(l, r, keep_right),
            BinaryOp::Eq | BinaryOp::Ne => Outcome::none(None),
            _ => incompatible(),
        },
    };
    if !return_bool || matches!(outcome.note, Some(Note::Incompatible { .. })) {
        return outcome;
    }
    Outcome {
        kept: Some((f64::from(u8::from(outcome.kept.is_some())), None)),
        note: outcome.note,
    }
}

fn kept_operand(l: Operand<'_>, r: Operand<'_>, keep_right: bool) -> Outcome {
    let side = if keep_right { r } else { l };
    Outcome::keep(side.float, side.histogram.cloned())
}

fn combine(op: BinaryOp, a: &Histogram, b: &Histogram) -> Outcome {
    let result = match op {
        BinaryOp::Add => a.add(b),
        _ => a.sub(b).map(|mut h| {
            h.counter_reset_hint = CounterResetHint::Gauge;
            h
        }),
    };
    match result {
        Ok(mut h) => {
            h.compact();
            let reconciled = a.uses_custom_buckets() && a.custom_values != b.custom_values;
            Outcome {
                kept: Some((0.0, Some(h))),
                note: reconciled.then_some(Note::Reconciled),
            }
        }
        Err(_) => Outcome::none(Some(Note::MixedSchemas)),
    }
}

/// Where [`binary_udf`] records its notes, as the planner's annotation lists take them.
#[derive(Debug, Clone)]
pub struct Notes {
    pub infos: Arc<Mutex<Vec<String>>>,
    pub warnings: Arc<Mutex<Vec<String>>>,
    /// Where the operator's expression starts, ` (line:column)`, or empty.
    pub position: String,
}

impl Notes {
    fn record(&self, op: BinaryOp, note: Note) {
        let p = &self.position;
        let (list, text) = match note {
            Note::Incompatible { left, right } => (
                &self.infos,
                format!(
                    "PromQL info: incompatible sample types encountered for binary operator \"{op}\": {left} {op} {right}{p}"
                ),
            ),
            Note::Reconciled => {
                let during = match op {
                    BinaryOp::Sub => "subtraction",
                    _ => "addition",
                };
                (
                    &self.infos,
                    format!(
                        "PromQL info: mismatched custom buckets were reconciled during {during}{p}"
                    ),
                )
            }
            Note::MixedSchemas => (
                &self.warnings,
                format!(
                    "PromQL warning: vector contains a mix of histograms with exponential and custom buckets schemas{p}"
                ),
            ),
        };
        if let Ok(mut list) = list.lock()
            && !list.contains(&text)
        {
            list.push(text);
        }
    }
}

/// The fields of [`binary_udf`]'s result: whether the row has a sample, its float and its
/// histogram.
pub fn result_fields() -> Fields {
    Fields::from(vec![
        Field::new(KEEP, DataType::Boolean, false),
        Field::new(VALUE, DataType::Float64, true),
        Field::new(HISTOGRAM, histogram_type(), true),
    ])
}

pub const KEEP: &str = "keep";
pub const VALUE: &str = "value";
pub const HISTOGRAM: &str = "histogram";

/// `prom_binary(left histogram, right histogram, left value, right value)`: [`apply`] on
/// each row, as a struct of [`result_fields`]. A null value reads as NaN.
pub fn binary_udf(op: BinaryOp, keep_right: bool, return_bool: bool, notes: Notes) -> ScalarUDF {
    create_udf(
        "prom_binary",
        vec![
            histogram_type(),
            histogram_type(),
            DataType::Float64,
            DataType::Float64,
        ],
        DataType::Struct(result_fields()),
        Volatility::Volatile,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let column = |i: usize| {
                HistogramColumn::new(arrays[i].as_ref())
                    .ok_or_else(|| DataFusionError::Internal("expected a histogram column".into()))
            };
            let float = |i: usize| {
                arrays[i]
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .ok_or_else(|| DataFusionError::Internal("expected float64 values".into()))
            };
            let (lh, rh, lv, rv) = (column(0)?, column(1)?, float(2)?, float(3)?);
            let value = |a: &Float64Array, i: usize| match a.is_valid(i) {
                true => a.value(i),
                false => f64::NAN,
            };
            let rows = arrays[0].len();
            let mut keep = Vec::with_capacity(rows);
            let mut values = Vec::with_capacity(rows);
            let mut histograms = Vec::with_capacity(rows);
            for i in 0..rows {
                let (a, b) = (lh.get(i), rh.get(i));
                let l = Operand {
                    float: value(lv, i),
                    histogram: a.as_ref(),
                };
                let r = Operand {
                    float: value(rv, i),
                    histogram: b.as_ref(),
                };
                let outcome = apply(op, l, r, keep_right, return_bool);
                if let Some(note) = outcome.note {
                    notes.record(op, note);
                }
                let (float, histogram) = outcome.kept.clone().unzip();
                let histogram = histogram.flatten();
                keep.push(outcome.kept.is_some());
                // A histogram's row has no float value, as a selector's has none.
                values.push(float.filter(|_| histogram.is_none()));
                histograms.push(histogram.map(Arc::new));
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(BooleanArray::from(keep)),
                Arc::new(Float64Array::from(values)),
                to_array(&histograms),
            ];
            let out = StructArray::try_new(result_fields(), columns, None)?;
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(v: f64) -> Operand<'static> {
        Operand {
            float: v,
            histogram: None,
        }
    }

    fn hist(h: &Histogram) -> Operand<'_> {
        Operand {
            float: f64::NAN,
            histogram: Some(h),
        }
    }

    fn histogram(count: f64) -> Histogram {
        Histogram {
            count,
            sum: count,
            zero_count: count,
            zero_threshold: 0.001,
            ..Histogram::default()
        }
    }

    #[test]
    fn floats_compute_and_compare_as_before() {
        let sum = apply(BinaryOp::Add, float(1.0), float(2.0), false, false);
        assert_eq!(sum.kept, Some((3.0, None)));
        let holds = apply(BinaryOp::Lt, float(1.0), float(2.0), false, false);
        assert_eq!(holds.kept, Some((1.0, None)));
        let vector_on_right = apply(BinaryOp::Lt, float(1.0), float(2.0), true, false);
        assert_eq!(vector_on_right.kept, Some((2.0, None)));
        let fails = apply(BinaryOp::Gt, float(1.0), float(2.0), false, true);
        assert_eq!(fails.kept, Some((0.0, None)));
    }

    #[test]
    fn histograms_take_only_their_operators() {
        let h = histogram(4.0);
        let scaled = apply(BinaryOp::Mul, float(2.0), hist(&h), false, false);
        assert_eq!(scaled.kept.and_then(|k| k.1).map(|h| h.count), Some(8.0));
        let halved = apply(BinaryOp::Div, hist(&h), float(2.0), false, false);
        assert_eq!(halved.kept.and_then(|k| k.1).map(|h| h.count), Some(2.0));
        let plus = apply(BinaryOp::Add, hist(&h), float(2.0), false, false);
        assert_eq!(
            plus,
            Outcome::none(Some(Note::Incompatible {
                left: "histogram",
                right: "float"
            }))
        );
        // `bool` does not turn an incompatible pairing into 0.
        let compared = apply(BinaryOp::Gt, hist(&h), float(2.0), false, true);
        assert_eq!(compared.kept, None);
        let trimmed_floats = apply(BinaryOp::TrimUpper, float(1.0), float(2.0), false, false);
        assert_eq!(trimmed_floats.kept, None);
    }

    #[test]
    fn histograms_add_subtract_and_compare_whole() {
        let (a, b) = (histogram(4.0), histogram(1.0));
        let diff = apply(BinaryOp::Sub, hist(&a), hist(&b), false, false);
        let diff = diff.kept.and_then(|k| k.1).expect("a difference");
        assert_eq!(diff.count, 3.0);
        assert_eq!(diff.counter_reset_hint, CounterResetHint::Gauge);
        let same = apply(BinaryOp::Eq, hist(&a), hist(&a.clone()), false, false);
        assert_eq!(same.kept.and_then(|k| k.1), Some(a.clone()));
        let differ = apply(BinaryOp::Eq, hist(&a), hist(&b), false, true);
        assert_eq!(differ.kept, Some((0.0, None)));
    }
}
