//! Go's `text/template` builtins that gtmpl lacks or gets wrong (`printf`, `print`,
//! comparisons, `and`/`or`/`not`).

use super::*;

/// A value classified the way Go's fmt and comparison functions see it.
pub(super) enum GoVal<'v> {
    Int(i128),
    Float(f64),
    Str(&'v str),
    Bool(bool),
    Other(&'v Value),
}

pub(super) fn classify(v: &Value) -> GoVal<'_> {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) => GoVal::Float(f),
            None => GoVal::Int(
                n.as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from))
                    .unwrap_or_default(),
            ),
        },
        Value::String(s) if is_registered_float(s) => {
            GoVal::Float(go_parse_float(s).unwrap_or(f64::NAN))
        }
        Value::String(s) => GoVal::Str(s),
        Value::NoValue => GoVal::Str(""),
        Value::Bool(b) => GoVal::Bool(*b),
        other => GoVal::Other(other),
    }
}

/// Go's truth: false, 0, "", nil and empty collections are false.
pub(super) fn go_truth(v: &Value) -> bool {
    match classify(v) {
        GoVal::Int(i) => i != 0,
        GoVal::Float(f) => f != 0.0,
        GoVal::Str(s) => !s.is_empty(),
        GoVal::Bool(b) => b,
        GoVal::Other(Value::Array(a)) => !a.is_empty(),
        GoVal::Other(Value::Map(m)) => !m.is_empty(),
        GoVal::Other(Value::Nil) | GoVal::Other(Value::NoValue) => false,
        GoVal::Other(_) => true,
    }
}

/// Go's `fmt.Sprint` of one value (`%v`).
pub(super) fn go_sprint_one(v: &Value) -> String {
    match v {
        Value::NoValue => String::new(),
        Value::Nil => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) => go_format_float(f, 'g', None),
            None => n.to_string(),
        },
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(go_sprint_one).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Map(m) => {
            let mut items: Vec<(&String, &Value)> = m.iter().collect();
            items.sort_by(|a, b| a.0.cmp(b.0));
            let items: Vec<String> = items
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", go_sprint_one(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
        Value::Object(o) => {
            // Go prints a struct's fields in declaration order; a *sample
            // with a leading '&'.
            const ORDER: [&str; 4] = ["Labels", "ExternalLabels", "ExternalURL", "Value"];
            let mut fields: Vec<String> = ORDER
                .iter()
                .filter_map(|k| o.get(*k).map(go_sprint_one))
                .collect();
            let mut others: Vec<(&String, &Value)> = o
                .iter()
                .filter(|(k, _)| !ORDER.contains(&k.as_str()))
                .collect();
            others.sort_by(|a, b| a.0.cmp(b.0));
            fields.extend(others.into_iter().map(|(_, v)| go_sprint_one(v)));
            let amp = if o.len() == 2 && o.contains_key("Labels") && o.contains_key("Value") {
                "&"
            } else {
                ""
            };
            format!("{amp}{{{}}}", fields.join(" "))
        }
        Value::Function(_) => "func".to_owned(),
    }
}

pub(super) fn is_go_string(v: &Value) -> bool {
    matches!(classify(v), GoVal::Str(_))
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
pub(super) fn go_sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !is_go_string(a) && !is_go_string(&args[i - 1]) {
            out.push(' ');
        }
        out.push_str(&go_sprint_one(a));
    }
    out
}

pub(super) fn fn_go_print(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(
        args.last().map(go_sprint_one).unwrap_or_default(),
    ))
}

pub(super) fn fn_print(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(go_sprint(args)))
}

pub(super) fn fn_println(args: &[Value]) -> Result<Value, FuncError> {
    let items: Vec<String> = args.iter().map(go_sprint_one).collect();
    Ok(Value::String(format!("{}\n", items.join(" "))))
}

/// text/template's `evalArgs`: one string argument as it is, else Sprint.
pub(super) fn eval_args(args: &[Value]) -> String {
    match args {
        [Value::String(s)] => s.clone(),
        _ => go_sprint(args),
    }
}

pub(super) fn fn_urlquery(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(go_query_escape(&eval_args(args))))
}

pub(super) fn fn_html(args: &[Value]) -> Result<Value, FuncError> {
    let s = eval_args(args);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Ok(Value::String(out))
}

pub(super) fn fn_js(args: &[Value]) -> Result<Value, FuncError> {
    let s = eval_args(args);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\'' => out.push_str(r"\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str(r"\u003C"),
            '>' => out.push_str(r"\u003E"),
            '&' => out.push_str(r"\u0026"),
            '=' => out.push_str(r"\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if c.is_ascii() || crate::gocompat::strconv::is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    Ok(Value::String(out))
}

pub(super) fn fn_len(args: &[Value]) -> Result<Value, FuncError> {
    want_args("len", args, 1)?;
    let n = match &args[0] {
        Value::String(s) => s.len(),
        Value::NoValue => 0,
        Value::Array(a) => a.len(),
        Value::Map(m) => m.len(),
        other => {
            return Err(err("len", format!("len of type {}", go_type_name(other))));
        }
    };
    Ok(Value::from(n))
}

pub(super) fn fn_and(args: &[Value]) -> Result<Value, FuncError> {
    if args.is_empty() {
        return Err(FuncError::AtLeastXArgs("and".into(), 1));
    }
    Ok(args
        .iter()
        .find(|a| !go_truth(a))
        .unwrap_or(&args[args.len() - 1])
        .clone())
}

pub(super) fn fn_or(args: &[Value]) -> Result<Value, FuncError> {
    if args.is_empty() {
        return Err(FuncError::AtLeastXArgs("or".into(), 1));
    }
    Ok(args
        .iter()
        .find(|a| go_truth(a))
        .unwrap_or(&args[args.len() - 1])
        .clone())
}

pub(super) fn fn_not(args: &[Value]) -> Result<Value, FuncError> {
    want_args("not", args, 1)?;
    Ok(Value::Bool(!go_truth(&args[0])))
}

/// Compares two values like Go's `eq`/`lt`, a little more leniently: integers
/// and floats compare numerically (Go refuses `int` vs `float64`), and a
/// string that parses as a number compares numerically with a number (our
/// floats are strings). `Ok(None)` means unordered (NaN).
pub(super) fn go_compare(
    func: &str,
    a: &Value,
    b: &Value,
    ordered: bool,
) -> Result<Option<Ordering>, FuncError> {
    let num = |v: &GoVal| match v {
        GoVal::Int(i) => Some(*i as f64),
        GoVal::Float(f) => Some(*f),
        GoVal::Str(s) => go_parse_float(s).ok(),
        _ => None,
    };
    let (ca, cb) = (classify(a), classify(b));
    match (&ca, &cb) {
        (GoVal::Int(x), GoVal::Int(y)) => Ok(Some(x.cmp(y))),
        (GoVal::Str(x), GoVal::Str(y)) => Ok(Some(x.cmp(y))),
        (GoVal::Bool(x), GoVal::Bool(y)) if !ordered => Ok(Some(x.cmp(y))),
        (GoVal::Bool(_), GoVal::Bool(_)) => Err(err(func, "invalid type for comparison")),
        (GoVal::Other(Value::Nil), GoVal::Other(Value::Nil)) if !ordered => {
            Ok(Some(Ordering::Equal))
        }
        (
            GoVal::Int(_) | GoVal::Float(_) | GoVal::Str(_),
            GoVal::Int(_) | GoVal::Float(_) | GoVal::Str(_),
        ) => match (num(&ca), num(&cb)) {
            (Some(x), Some(y)) => Ok(x.partial_cmp(&y)),
            _ => Err(err(func, "incompatible types for comparison")),
        },
        _ if ordered => Err(err(func, "invalid type for comparison")),
        _ => Err(err(func, "incompatible types for comparison")),
    }
}

pub(super) fn fn_eq(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() < 2 {
        return Err(err("eq", "missing argument for comparison"));
    }
    for b in &args[1..] {
        if go_compare("eq", &args[0], b, false)? == Some(Ordering::Equal) {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

pub(super) fn fn_ne(args: &[Value]) -> Result<Value, FuncError> {
    want_args("ne", args, 2)?;
    Ok(Value::Bool(
        go_compare("ne", &args[0], &args[1], false)? != Some(Ordering::Equal),
    ))
}

pub(super) fn ordered_cmp(
    func: &str,
    args: &[Value],
    ok: fn(Ordering) -> bool,
) -> Result<Value, FuncError> {
    want_args(func, args, 2)?;
    Ok(Value::Bool(
        go_compare(func, &args[0], &args[1], true)?.is_some_and(ok),
    ))
}

pub(super) fn fn_lt(args: &[Value]) -> Result<Value, FuncError> {
    ordered_cmp("lt", args, |o| o == Ordering::Less)
}

pub(super) fn fn_le(args: &[Value]) -> Result<Value, FuncError> {
    ordered_cmp("le", args, |o| o != Ordering::Greater)
}

pub(super) fn fn_gt(args: &[Value]) -> Result<Value, FuncError> {
    ordered_cmp("gt", args, |o| o == Ordering::Greater)
}

pub(super) fn fn_ge(args: &[Value]) -> Result<Value, FuncError> {
    ordered_cmp("ge", args, |o| o != Ordering::Less)
}

pub(super) fn fn_printf(args: &[Value]) -> Result<Value, FuncError> {
    let Some(first) = args.first() else {
        return Err(FuncError::AtLeastXArgs("printf".into(), 1));
    };
    let format = arg_str("printf", first)?;
    Ok(Value::String(go_sprintf(format, &args[1..])))
}
