//! Native histograms as an Arrow column: one nullable struct per row (null on float rows),
//! the layout of the `histogram` column of `data.parquet` and of the raw samples both query
//! engines read.
//!
//! ```text
//! histogram: struct<
//!   counter_reset_hint: uint8,  schema: int32,
//!   zero_threshold, zero_count, count, sum: float64,
//!   positive_spans: list<struct<offset: int32, length: uint32>>, positive_buckets: list<float64>,
//!   negative_spans: ...,                                          negative_buckets: ...,
//!   custom_values: list<float64>>
//! ```
//! Bucket counts are absolute, as in Prometheus's float histograms: a reader (SQL, another
//! Parquet tool) needs no delta decoding. In blocks the counts are byte-stream-split and
//! the layout fields dictionary-encoded (see `block::writer_properties`). Float rows store a null struct, which
//! costs their definition levels only; its fields are null there too, so that SQL's
//! `histogram['count']` is null on a float's row (DataFusion's field access does not
//! carry the struct's nulls down).

use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, ListArray, StructArray, UInt8Array,
    UInt32Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Fields, Float64Type, Int32Type, UInt8Type, UInt32Type};

use crate::model::Histogram;
use crate::model::histogram::{CounterResetHint, Span};

/// The name of the column in blocks and in the raw samples.
pub const HISTOGRAM_COLUMN: &str = "histogram";

fn span_fields() -> Fields {
    Fields::from(vec![
        Field::new("offset", DataType::Int32, false),
        Field::new("length", DataType::UInt32, false),
    ])
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(item, false)))
}

fn fields() -> &'static Fields {
    static FIELDS: OnceLock<Fields> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let spans = list_of(DataType::Struct(span_fields()));
        let floats = list_of(DataType::Float64);
        Fields::from(vec![
            Field::new("counter_reset_hint", DataType::UInt8, true),
            Field::new("schema", DataType::Int32, true),
            Field::new("zero_threshold", DataType::Float64, true),
            Field::new("zero_count", DataType::Float64, true),
            Field::new("count", DataType::Float64, true),
            Field::new("sum", DataType::Float64, true),
            Field::new("positive_spans", spans.clone(), true),
            Field::new("positive_buckets", floats.clone(), true),
            Field::new("negative_spans", spans, true),
            Field::new("negative_buckets", floats.clone(), true),
            Field::new("custom_values", floats, true),
        ])
    })
}

/// The column's type.
pub fn histogram_type() -> DataType {
    DataType::Struct(fields().clone())
}

/// Gathers one list column: offsets and the items of every row.
#[derive(Default)]
struct ListParts<T> {
    offsets: Vec<i32>,
    items: Vec<T>,
}

impl<T: Clone> ListParts<T> {
    fn new(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        ListParts {
            offsets,
            items: Vec::new(),
        }
    }

    fn push(&mut self, items: &[T]) {
        self.items.extend_from_slice(items);
        self.offsets.push(self.items.len() as i32);
    }

    fn finish(self, values: ArrayRef, nulls: &NullBuffer) -> ArrayRef {
        let field = Arc::new(Field::new_list_field(values.data_type().clone(), false));
        Arc::new(ListArray::new(
            field,
            OffsetBuffer::new(self.offsets.into()),
            values,
            Some(nulls.clone()),
        ))
    }
}

fn floats(mut parts: ListParts<f64>, nulls: &NullBuffer) -> ArrayRef {
    let values: ArrayRef = Arc::new(Float64Array::from(std::mem::take(&mut parts.items)));
    parts.finish(values, nulls)
}

fn spans(parts: ListParts<Span>, nulls: &NullBuffer) -> ArrayRef {
    let offsets: Int32Array = parts.items.iter().map(|s| s.offset).collect();
    let lengths: UInt32Array = parts.items.iter().map(|s| s.length).collect();
    let values: ArrayRef = Arc::new(StructArray::new(
        span_fields(),
        vec![Arc::new(offsets), Arc::new(lengths)],
        None,
    ));
    parts.finish(values, nulls)
}

/// The column for these rows: a struct per histogram, null for `None` (a float sample).
pub fn to_array(rows: &[Option<Arc<Histogram>>]) -> ArrayRef {
    let n = rows.len();
    let mut hints = Vec::with_capacity(n);
    let mut schemas = Vec::with_capacity(n);
    let mut scalars: [Vec<f64>; 4] = std::array::from_fn(|_| Vec::with_capacity(n));
    let (mut pos_spans, mut neg_spans) = (ListParts::new(n), ListParts::new(n));
    let (mut pos, mut neg, mut custom) = (ListParts::new(n), ListParts::new(n), ListParts::new(n));
    let empty = Histogram::default();
    for row in rows {
        let h = row.as_deref().unwrap_or(&empty);
        hints.push(h.counter_reset_hint.code());
        schemas.push(h.schema);
        for (column, v) in scalars
            .iter_mut()
            .zip([h.zero_threshold, h.zero_count, h.count, h.sum])
        {
            column.push(v);
        }
        pos_spans.push(&h.positive_spans);
        pos.push(&h.positive_buckets);
        neg_spans.push(&h.negative_spans);
        neg.push(&h.negative_buckets);
        custom.push(&h.custom_values);
    }
    let [zero_threshold, zero_count, count, sum] = scalars;
    let nulls = NullBuffer::from_iter(rows.iter().map(Option::is_some));
    let n = Some(nulls.clone());
    let float = |v: Vec<f64>| -> ArrayRef { Arc::new(Float64Array::new(v.into(), n.clone())) };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt8Array::new(hints.into(), n.clone())),
        Arc::new(Int32Array::new(schemas.into(), n.clone())),
        float(zero_threshold),
        float(zero_count),
        float(count),
        float(sum),
        spans(pos_spans, &nulls),
        floats(pos, &nulls),
        spans(neg_spans, &nulls),
        floats(neg, &nulls),
        floats(custom, &nulls),
    ];
    Arc::new(StructArray::new(fields().clone(), columns, Some(nulls)))
}

/// An all-null column of `rows` rows (a batch of float samples only).
pub fn null_array(rows: usize) -> ArrayRef {
    arrow::array::new_null_array(&histogram_type(), rows)
}

/// Reads histograms back from a column of [`histogram_type`].
pub struct HistogramColumn<'a> {
    array: &'a StructArray,
}

impl<'a> HistogramColumn<'a> {
    /// The column's reader, or None when `array` is not of [`histogram_type`] (compared
    /// by field names: a list's item field may be named differently by another writer).
    pub fn new(array: &'a dyn Array) -> Option<Self> {
        let array = array.as_struct_opt()?;
        let names = |f: &Fields| f.iter().map(|f| f.name().clone()).collect::<Vec<_>>();
        (names(array.fields()) == names(fields())).then_some(HistogramColumn { array })
    }

    pub fn is_histogram(&self, row: usize) -> bool {
        self.array.is_valid(row)
    }

    /// The histogram at `row`, None on a float row.
    pub fn get(&self, row: usize) -> Option<Histogram> {
        if !self.array.is_valid(row) {
            return None;
        }
        let c = |i: usize| self.array.column(i);
        let f = |i: usize| c(i).as_primitive::<Float64Type>().value(row);
        let float_list = |i: usize| -> Vec<f64> {
            let list = c(i).as_list::<i32>().value(row);
            list.as_primitive::<Float64Type>().values().to_vec()
        };
        let span_list = |i: usize| -> Vec<Span> {
            let list = c(i).as_list::<i32>().value(row);
            let spans = list.as_struct();
            let offsets = spans.column(0).as_primitive::<Int32Type>();
            let lengths = spans.column(1).as_primitive::<UInt32Type>();
            offsets
                .values()
                .iter()
                .zip(lengths.values().iter())
                .map(|(&offset, &length)| Span { offset, length })
                .collect()
        };
        Some(Histogram {
            counter_reset_hint: CounterResetHint::from_code(u64::from(
                c(0).as_primitive::<UInt8Type>().value(row),
            )),
            schema: c(1).as_primitive::<Int32Type>().value(row),
            zero_threshold: f(2),
            zero_count: f(3),
            count: f(4),
            sum: f(5),
            positive_spans: span_list(6),
            positive_buckets: float_list(7),
            negative_spans: span_list(8),
            negative_buckets: float_list(9),
            custom_values: float_list(10),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::histogram::CUSTOM_BUCKETS_SCHEMA;

    #[test]
    fn histograms_and_float_rows_round_trip() {
        let a = Histogram {
            schema: 2,
            zero_threshold: 0.001,
            zero_count: 1.0,
            count: 6.0,
            sum: 9.5,
            positive_spans: vec![
                Span {
                    offset: -1,
                    length: 2,
                },
                Span {
                    offset: 1,
                    length: 1,
                },
            ],
            positive_buckets: vec![1.0, 2.0, 1.0],
            negative_spans: vec![Span {
                offset: 0,
                length: 1,
            }],
            negative_buckets: vec![1.0],
            counter_reset_hint: CounterResetHint::Gauge,
            ..Default::default()
        };
        let b = Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 2.0,
            sum: 1.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            positive_buckets: vec![1.0, 1.0],
            custom_values: vec![0.5],
            ..Default::default()
        };
        let rows = vec![
            Some(Arc::new(a.clone())),
            None,
            Some(Arc::new(b.clone())),
            None,
        ];
        let array = to_array(&rows);
        assert_eq!(array.data_type(), &histogram_type());
        assert_eq!(array.null_count(), 2);
        let column = HistogramColumn::new(array.as_ref()).unwrap();
        assert_eq!(column.get(0), Some(a));
        assert_eq!(column.get(1), None);
        assert_eq!(column.get(2), Some(b));
        assert!(!column.is_histogram(3));
        // A slice reads the same rows.
        let sliced = array.slice(2, 1);
        assert_eq!(
            HistogramColumn::new(sliced.as_ref())
                .unwrap()
                .get(0)
                .map(|h| h.schema),
            Some(CUSTOM_BUCKETS_SCHEMA)
        );
        assert_eq!(null_array(3).null_count(), 3);
        assert!(HistogramColumn::new(&Float64Array::from(vec![1.0])).is_none());
    }
}
