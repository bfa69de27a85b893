//! Encodings of a SQL result: JSON in Prometheus's envelope, CSV with a header line, and the
//! Arrow IPC stream format.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use crate::query::sql::QueryResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Json,
    Csv,
    Arrow,
}

impl OutputFormat {
    /// `format` wins; otherwise the first `Accept` type we know; otherwise JSON.
    pub fn choose(format: Option<&str>, headers: &HeaderMap) -> Result<OutputFormat, String> {
        if let Some(f) = format {
            return match f.to_ascii_lowercase().as_str() {
                "json" => Ok(OutputFormat::Json),
                "csv" => Ok(OutputFormat::Csv),
                "arrow" => Ok(OutputFormat::Arrow),
                other => Err(format!("unknown format {other:?}: use json, csv or arrow")),
            };
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        for media in accept
            .split(',')
            .map(|m| m.split(';').next().unwrap_or("").trim())
        {
            match media {
                "application/json" => return Ok(OutputFormat::Json),
                "text/csv" => return Ok(OutputFormat::Csv),
                "application/vnd.apache.arrow.stream" => return Ok(OutputFormat::Arrow),
                _ => {}
            }
        }
        Ok(OutputFormat::Json)
    }
}

fn display_options() -> FormatOptions<'static> {
    FormatOptions::default().with_null("")
}

/// `{"status":"success","data":{"columns":[{"name","type"}],"rows":[[...]]}}`.
/// Floats that JSON cannot carry are written as Prometheus writes them: "NaN", "+Inf", "-Inf".
pub fn to_json(result: &QueryResult) -> anyhow::Result<Vec<u8>> {
    let columns: Vec<Value> = result
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    let mut rows: Vec<Vec<Value>> = Vec::with_capacity(result.num_rows());
    for batch in &result.batches {
        let cells: Vec<Vec<Value>> = batch
            .columns()
            .iter()
            .map(json_column)
            .collect::<anyhow::Result<_>>()?;
        for row in 0..batch.num_rows() {
            rows.push(cells.iter().map(|c| c[row].clone()).collect());
        }
    }
    let body = json!({"status": "success", "data": {"columns": columns, "rows": rows}});
    Ok(serde_json::to_vec(&body)?)
}

fn json_column(array: &ArrayRef) -> anyhow::Result<Vec<Value>> {
    let n = array.len();
    let value_at =
        |i: usize, f: &dyn Fn(usize) -> Value| if array.is_null(i) { Value::Null } else { f(i) };
    let values = match array.data_type() {
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            (0..n)
                .map(|i| value_at(i, &|i| float_json(a.value(i))))
                .collect()
        }
        DataType::Float32 => {
            let a = array.as_primitive::<Float32Type>();
            (0..n)
                .map(|i| value_at(i, &|i| float_json(f64::from(a.value(i)))))
                .collect()
        }
        DataType::Boolean => {
            let a = array.as_boolean();
            (0..n)
                .map(|i| value_at(i, &|i| Value::Bool(a.value(i))))
                .collect()
        }
        t if t.is_integer() => {
            let formatter = ArrayFormatter::try_new(array.as_ref(), &display_options())?;
            (0..n)
                .map(|i| {
                    value_at(i, &|i| {
                        let text = formatter.value(i).to_string();
                        serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text))
                    })
                })
                .collect()
        }
        _ => {
            let formatter = ArrayFormatter::try_new(array.as_ref(), &display_options())?;
            (0..n)
                .map(|i| value_at(i, &|i| Value::String(formatter.value(i).to_string())))
                .collect()
        }
    };
    Ok(values)
}

fn float_json(v: f64) -> Value {
    if v.is_nan() {
        Value::String("NaN".into())
    } else if v == f64::INFINITY {
        Value::String("+Inf".into())
    } else if v == f64::NEG_INFINITY {
        Value::String("-Inf".into())
    } else {
        json!(v)
    }
}

/// RFC 4180 CSV, header line first; every type printed with Arrow's display rules
/// (timestamps as RFC 3339).
pub fn to_csv(result: &QueryResult) -> anyhow::Result<Vec<u8>> {
    let mut out = String::new();
    let header: Vec<String> = result
        .schema
        .fields()
        .iter()
        .map(|f| csv_field(f.name()))
        .collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for batch in &result.batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &display_options()))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| csv_field(&f.value(row).to_string()))
                .collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
    }
    Ok(out.into_bytes())
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The Arrow IPC stream format: schema message, then one record batch message per batch.
pub fn to_arrow_ipc(result: &QueryResult) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    {
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut buf, &result.schema)?;
        for batch in &result.batches {
            writer.write(batch)?;
        }
        writer.finish()?;
    }
    Ok(buf)
}
