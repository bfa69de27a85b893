//! Argument helpers shared by the template functions: arity checks and conversions.

use super::*;

pub(super) fn err(func: &str, msg: impl fmt::Display) -> FuncError {
    FuncError::Generic(format!("error calling {func}: {msg}"))
}

pub(super) fn want_args(func: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() != n {
        return Err(FuncError::Generic(format!(
            "wrong number of args for {func}: want {n} got {}",
            args.len()
        )));
    }
    Ok(())
}

/// Go's type name of a value, for error messages.
pub(super) fn go_type_name(v: &Value) -> &'static str {
    match v {
        Value::String(s) if is_registered_float(s) => "float64",
        Value::NoValue | Value::String(_) => "string",
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) => {
            if n.as_f64().is_some() {
                "float64"
            } else {
                "int"
            }
        }
        Value::Map(_) => "map[string]string",
        Value::Object(o) if o.contains_key("Labels") && o.contains_key("Value") => {
            "*template.sample"
        }
        Value::Object(_) => "struct",
        Value::Array(_) => "template.queryResult",
        Value::Function(_) => "func",
    }
}

/// A string parameter. A missing label (`NoValue`) is the empty string.
pub(super) fn arg_str<'v>(func: &str, v: &'v Value) -> Result<&'v str, FuncError> {
    match v {
        Value::String(s) => Ok(s),
        Value::NoValue => Ok(""),
        other => Err(err(
            func,
            format!(
                "wrong type for value; expected string; got {}",
                go_type_name(other)
            ),
        )),
    }
}

pub(super) fn number_to_f64(n: &gtmpl_value::Number) -> f64 {
    n.as_f64()
        .or_else(|| n.as_i64().map(|i| i as f64))
        .or_else(|| n.as_u64().map(|u| u as f64))
        .unwrap_or(f64::NAN)
}

/// Go's `strconv.ParseFloat(s, 64)`, with its error text.
pub(super) fn go_parse_float(s: &str) -> Result<f64, String> {
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    let special = matches!(body, "inf" | "infinity" | "nan");
    let valid_chars = s
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !(special || valid_chars) {
        return Err(format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            crate::gocompat::strconv::quote(s)
        ));
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_infinite() && !special => Err(format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            crate::gocompat::strconv::quote(s)
        )),
        Ok(v) => Ok(v),
        Err(_) => Err(format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            crate::gocompat::strconv::quote(s)
        )),
    }
}

/// Prometheus' `ConvertToFloat`: numbers as they are, strings parsed.
pub(super) fn arg_float(func: &str, v: &Value) -> Result<f64, FuncError> {
    match v {
        Value::Number(n) => Ok(number_to_f64(n)),
        Value::String(s) => go_parse_float(s).map_err(|e| err(func, e)),
        Value::NoValue => go_parse_float("").map_err(|e| err(func, e)),
        other => Err(err(
            func,
            format!("can't convert {} to float", go_type_name(other)),
        )),
    }
}

pub(super) type SampleParts<'v> = (Option<&'v HashMap<String, Value>>, Option<&'v Value>);

/// The `Labels` map and `Value` of a query sample.
pub(super) fn sample_parts<'v>(func: &str, v: &'v Value) -> Result<SampleParts<'v>, FuncError> {
    match v {
        Value::Object(o) | Value::Map(o) => {
            let labels = match o.get("Labels") {
                Some(Value::Map(m)) | Some(Value::Object(m)) => Some(m),
                _ => None,
            };
            Ok((labels, o.get("Value")))
        }
        other => Err(err(
            func,
            format!(
                "wrong type for value; expected *template.sample; got {}",
                go_type_name(other)
            ),
        )),
    }
}

pub(super) fn label_of(labels: Option<&HashMap<String, Value>>, name: &str) -> String {
    match labels.and_then(|l| l.get(name)) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::NoValue) | None => String::new(),
        Some(other) => go_sprint_one(other),
    }
}
