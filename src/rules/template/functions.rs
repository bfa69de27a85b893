//! Prometheus's template functions (`humanize*`, `query`, `label`, `reReplaceAll`, ...).

use super::*;

pub(super) fn fn_query(args: &[Value]) -> Result<Value, FuncError> {
    want_args("query", args, 1)?;
    let q = arg_str("query", &args[0])?;
    // Copy the hook out so that no RefCell borrow is held while it runs.
    let hook = with_state(|st| st.and_then(|st| st.query));
    let Some(hook) = hook else {
        return Err(err("query", "no query engine is available here"));
    };
    let samples = hook(q).map_err(|e| err("query", e))?;
    Ok(Value::Array(samples.iter().map(sample_value).collect()))
}

pub(super) fn fn_first(args: &[Value]) -> Result<Value, FuncError> {
    want_args("first", args, 1)?;
    match &args[0] {
        Value::Array(v) => v
            .first()
            .cloned()
            .ok_or_else(|| err("first", "first() called on vector with no elements")),
        other => Err(err(
            "first",
            format!(
                "wrong type for value; expected template.queryResult; got {}",
                go_type_name(other)
            ),
        )),
    }
}

pub(super) fn fn_label(args: &[Value]) -> Result<Value, FuncError> {
    want_args("label", args, 2)?;
    let name = arg_str("label", &args[0])?;
    let (labels, _) = sample_parts("label", &args[1])?;
    Ok(Value::String(label_of(labels, name)))
}

pub(super) fn fn_value(args: &[Value]) -> Result<Value, FuncError> {
    want_args("value", args, 1)?;
    let (_, value) = sample_parts("value", &args[0])?;
    Ok(value.cloned().unwrap_or(Value::NoValue))
}

pub(super) fn fn_strvalue(args: &[Value]) -> Result<Value, FuncError> {
    want_args("strvalue", args, 1)?;
    let (labels, _) = sample_parts("strvalue", &args[0])?;
    Ok(Value::String(label_of(labels, "__value__")))
}

pub(super) fn fn_args(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Map(
        args.iter()
            .enumerate()
            .map(|(i, a)| (format!("arg{i}"), a.clone()))
            .collect(),
    ))
}

pub(super) fn compile_go_regex(func: &str, pattern: &str) -> Result<regex::Regex, FuncError> {
    crate::gocompat::regex::compile(pattern).map_err(|e| {
        let msg = e.split_whitespace().collect::<Vec<_>>().join(" ");
        err(func, format!("error parsing regexp: {msg}"))
    })
}

pub(super) fn fn_re_replace_all(args: &[Value]) -> Result<Value, FuncError> {
    want_args("reReplaceAll", args, 3)?;
    let pattern = arg_str("reReplaceAll", &args[0])?;
    let repl = arg_str("reReplaceAll", &args[1])?;
    let text = arg_str("reReplaceAll", &args[2])?;
    let re = compile_go_regex("reReplaceAll", pattern)?;
    Ok(Value::String(re.replace_all(text, repl).into_owned()))
}

pub(super) fn fn_match(args: &[Value]) -> Result<Value, FuncError> {
    want_args("match", args, 2)?;
    let pattern = arg_str("match", &args[0])?;
    let text = arg_str("match", &args[1])?;
    let re = compile_go_regex("match", pattern)?;
    Ok(Value::Bool(re.is_match(text)))
}

pub(super) fn fn_safe_html(args: &[Value]) -> Result<Value, FuncError> {
    want_args("safeHtml", args, 1)?;
    Ok(Value::String(arg_str("safeHtml", &args[0])?.to_owned()))
}

pub(super) fn fn_to_upper(args: &[Value]) -> Result<Value, FuncError> {
    want_args("toUpper", args, 1)?;
    Ok(Value::String(crate::gocompat::case::to_upper(arg_str(
        "toUpper", &args[0],
    )?)))
}

pub(super) fn fn_to_lower(args: &[Value]) -> Result<Value, FuncError> {
    want_args("toLower", args, 1)?;
    Ok(Value::String(crate::gocompat::case::to_lower(arg_str(
        "toLower", &args[0],
    )?)))
}

/// Word-break "Mid" characters (MidLetter, MidNumLet, Single_Quote).
pub(super) fn is_word_mid(c: char) -> bool {
    matches!(
        c,
        '\'' | '.'
            | ':'
            | '\u{B7}'
            | '\u{387}'
            | '\u{5F4}'
            | '\u{2018}'
            | '\u{2019}'
            | '\u{2024}'
            | '\u{2027}'
            | '\u{FE13}'
            | '\u{FE52}'
            | '\u{FE55}'
            | '\u{FF07}'
            | '\u{FF0E}'
            | '\u{FF1A}'
    )
}

pub(super) fn is_combining_mark(c: char) -> bool {
    matches!(c as u32, 0x300..=0x36F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F | 0x200D)
}

/// `cases.Title(language.AmericanEnglish, cases.NoLower)`: the first cased
/// letter of each word is title-cased, the rest is left alone. Words are
/// delimited with x/text's approximation of Unicode word breaking.
pub(super) fn go_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut mid_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let was_mid = is_word_mid(c);
        if c.is_lowercase() || c.is_uppercase() {
            if !mid_word {
                let mut up = c.to_uppercase();
                if let Some(first) = up.next() {
                    out.push(first);
                }
                // "ß" -> "Ss", "ﬁ" -> "Fi": title case of a multi-char mapping.
                for rest in up {
                    out.extend(rest.to_lowercase());
                }
                mid_word = true;
            } else {
                out.push(c);
            }
        } else {
            out.push(c);
            let is_letter = c.is_alphanumeric() || c == '_' || is_combining_mark(c);
            if !is_letter && !was_mid {
                mid_word = false;
            }
        }
        if was_mid && chars.peek().is_some_and(|&n| is_word_mid(n)) {
            mid_word = false;
        }
    }
    out
}

pub(super) fn fn_title(args: &[Value]) -> Result<Value, FuncError> {
    want_args("title", args, 1)?;
    Ok(Value::String(go_title(arg_str("title", &args[0])?)))
}

/// Go's `url.QueryEscape`.
pub(super) fn go_query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub(super) fn fn_graph_link(args: &[Value]) -> Result<Value, FuncError> {
    want_args("graphLink", args, 1)?;
    let expr = arg_str("graphLink", &args[0])?;
    Ok(Value::String(format!(
        "/graph?g0.expr={}&g0.tab=0",
        go_query_escape(expr)
    )))
}

pub(super) fn fn_table_link(args: &[Value]) -> Result<Value, FuncError> {
    want_args("tableLink", args, 1)?;
    let expr = arg_str("tableLink", &args[0])?;
    Ok(Value::String(format!(
        "/graph?g0.expr={}&g0.tab=1",
        go_query_escape(expr)
    )))
}

pub(super) fn fn_url_query_escape(args: &[Value]) -> Result<Value, FuncError> {
    want_args("urlQueryEscape", args, 1)?;
    Ok(Value::String(go_query_escape(arg_str(
        "urlQueryEscape",
        &args[0],
    )?)))
}

pub(super) fn fn_sort_by_label(args: &[Value]) -> Result<Value, FuncError> {
    want_args("sortByLabel", args, 2)?;
    let label = arg_str("sortByLabel", &args[0])?;
    let Value::Array(samples) = &args[1] else {
        return Err(err(
            "sortByLabel",
            format!(
                "wrong type for value; expected template.queryResult; got {}",
                go_type_name(&args[1])
            ),
        ));
    };
    let mut keyed = Vec::with_capacity(samples.len());
    for s in samples {
        let (labels, _) = sample_parts("sortByLabel", s)?;
        keyed.push((label_of(labels, label), s.clone()));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0)); // stable, like sort.Stable
    Ok(Value::Array(keyed.into_iter().map(|(_, s)| s).collect()))
}

/// Go's `net.SplitHostPort`.
pub(super) fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    let i = hostport.rfind(':')?;
    let (host, j, k);
    if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        if end + 1 != i {
            return None;
        }
        host = &hostport[1..end];
        j = 1;
        k = end + 1;
    } else {
        host = &hostport[..i];
        if host.contains(':') {
            return None;
        }
        j = 0;
        k = 0;
    }
    if hostport[j..].contains('[') || hostport[k..].contains(']') {
        return None;
    }
    Some((host, &hostport[i + 1..]))
}

pub(super) fn fn_strip_port(args: &[Value]) -> Result<Value, FuncError> {
    want_args("stripPort", args, 1)?;
    let hp = arg_str("stripPort", &args[0])?;
    Ok(Value::String(match split_host_port(hp) {
        Some((host, _)) => host.to_owned(),
        None => hp.to_owned(),
    }))
}

pub(super) fn fn_strip_domain(args: &[Value]) -> Result<Value, FuncError> {
    want_args("stripDomain", args, 1)?;
    let hp = arg_str("stripDomain", &args[0])?;
    let (host, port) = split_host_port(hp).unwrap_or((hp, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(Value::String(hp.to_owned()));
    }
    let host = host.split('.').next().unwrap_or_default();
    Ok(Value::String(if port.is_empty() {
        host.to_owned()
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }))
}

pub(super) fn g4(v: f64) -> String {
    go_format_float(v, 'g', Some(4))
}

pub(super) fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    if v.abs() >= 1.0 {
        let mut prefix = "";
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
        return format!("{}{prefix}", g4(v));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}", g4(v))
}

pub(super) fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", g4(v))
}

pub(super) fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let mut sign = "";
        if v < 0.0 {
            sign = "-";
            v = -v;
        }
        let duration = v as i64;
        let seconds = duration % 60;
        let minutes = (duration / 60) % 60;
        let hours = (duration / 60 / 60) % 24;
        let days = duration / 60 / 60 / 24;
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", g4(v));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

pub(super) fn humanize_timestamp(v: f64) -> Result<String, String> {
    if v.is_nan() || v.is_infinite() {
        return Ok(g4(v));
    }
    let ts = v * 1e9;
    if ts > i64::MAX as f64 || ts < i64::MIN as f64 {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            go_format_float(v, 'g', None)
        ));
    }
    // model.TimeFromUnixNano: millisecond precision, truncated towards zero.
    let millis = (ts as i64) / 1_000_000;
    Ok(crate::gocompat::time::string(millis))
}

pub(super) fn fn_humanize(args: &[Value]) -> Result<Value, FuncError> {
    want_args("humanize", args, 1)?;
    Ok(Value::String(humanize(arg_float("humanize", &args[0])?)))
}

pub(super) fn fn_humanize1024(args: &[Value]) -> Result<Value, FuncError> {
    want_args("humanize1024", args, 1)?;
    Ok(Value::String(humanize1024(arg_float(
        "humanize1024",
        &args[0],
    )?)))
}

pub(super) fn fn_humanize_duration(args: &[Value]) -> Result<Value, FuncError> {
    want_args("humanizeDuration", args, 1)?;
    Ok(Value::String(humanize_duration(arg_float(
        "humanizeDuration",
        &args[0],
    )?)))
}

pub(super) fn fn_humanize_percentage(args: &[Value]) -> Result<Value, FuncError> {
    want_args("humanizePercentage", args, 1)?;
    let v = arg_float("humanizePercentage", &args[0])?;
    Ok(Value::String(format!("{}%", g4(v * 100.0))))
}

pub(super) fn fn_humanize_timestamp(args: &[Value]) -> Result<Value, FuncError> {
    want_args("humanizeTimestamp", args, 1)?;
    let v = arg_float("humanizeTimestamp", &args[0])?;
    humanize_timestamp(v)
        .map(Value::String)
        .map_err(|e| err("humanizeTimestamp", e))
}

/// The path of a URL, as Go's `url.Parse(u).Path` (percent-decoded).
pub(super) fn url_path(u: &str) -> String {
    let u = u.split('#').next().unwrap_or_default();
    let u = u.split('?').next().unwrap_or_default();
    let scheme_end = u.find(':').filter(|&i| {
        let s = &u[..i];
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let path = match scheme_end {
        Some(i) => {
            let rest = &u[i + 1..];
            if let Some(auth) = rest.strip_prefix("//") {
                auth.find('/').map_or("", |p| &auth[p..])
            } else if rest.starts_with('/') {
                rest
            } else {
                ""
            }
        }
        None => u,
    };
    percent_decode(path)
}

pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (
                (b[i + 1] as char).to_digit(16),
                (b[i + 2] as char).to_digit(16),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn fn_path_prefix(args: &[Value]) -> Result<Value, FuncError> {
    want_args("pathPrefix", args, 0)?;
    let url = with_state(|st| st.map(|st| st.external_url.clone()).unwrap_or_default());
    Ok(Value::String(url_path(&url)))
}

pub(super) fn fn_external_url(args: &[Value]) -> Result<Value, FuncError> {
    want_args("externalURL", args, 0)?;
    let url = with_state(|st| st.map(|st| st.external_url.clone()).unwrap_or_default());
    Ok(Value::String(url))
}

pub(super) fn fn_parse_duration(args: &[Value]) -> Result<Value, FuncError> {
    want_args("parseDuration", args, 1)?;
    let s = arg_str("parseDuration", &args[0])?;
    let ns = crate::gocompat::duration::parse(s).map_err(|e| err("parseDuration", e))?;
    Ok(float_value(ns as f64 / 1e9))
}
