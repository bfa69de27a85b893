//! Go's `strconv`: `Unquote` as PromQL's lexer reads literals (`"…"`, `'…'` with Go's
//! escapes, raw `` `…` ``), `Quote` (templates' `%q`, error messages), `FormatFloat` (templates,
//! OpenMetrics floats), and `unicode.IsPrint`.

/// The value of a quoted string literal; None when it is not one (the parser reports it).
/// Go's `strconv.ParseBool`: `1 t T TRUE true True` and `0 f F FALSE false False`.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

pub fn unquote(literal: &str) -> Option<String> {
    String::from_utf8(unquote_bytes(literal)?).ok()
}

/// The bytes of a quoted string literal, as Go's `strconv.Unquote` gives them: `\x` and
/// octal escapes are single bytes, so the value need not be UTF-8 (`"\xff"`). None when
/// it is not a literal.
pub fn unquote_bytes(literal: &str) -> Option<Vec<u8>> {
    let quote = literal.chars().next()?;
    let body = literal.strip_prefix(quote)?.strip_suffix(quote)?;
    if quote == '`' {
        return (!body.contains('`')).then(|| body.as_bytes().to_vec());
    }
    if quote != '"' && quote != '\'' {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    let push = |out: &mut Vec<u8>, c: char| {
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    };
    while let Some(c) = chars.next() {
        if c == quote || c == '\n' {
            return None;
        }
        if c != '\\' {
            push(&mut out, c);
            continue;
        }
        let escaped = chars.next()?;
        let simple = match escaped {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0C'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0B'),
            '\\' => Some('\\'),
            '"' | '\'' if escaped == quote => Some(escaped),
            _ => None,
        };
        if let Some(s) = simple {
            push(&mut out, s);
            continue;
        }
        let (digits, radix) = match escaped {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            _ => return None,
        };
        let mut code = match escaped {
            '0'..='7' => escaped.to_digit(8)?,
            _ => 0,
        };
        for _ in 0..digits {
            code = code * radix + chars.next()?.to_digit(radix)?;
        }
        if escaped == 'x' || escaped.is_ascii_digit() {
            // A byte, not a character.
            out.push(u8::try_from(code).ok()?);
        } else {
            push(&mut out, char::from_u32(code)?);
        }
    }
    Some(out)
}

/// Go's `unicode.IsPrint`, approximately: graphic characters and ASCII space.
pub fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c as u32, 0xAD | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB)
        || (0xE000..=0xF8FF).contains(&(c as u32)))
}

/// Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_quoted_char(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Go's `strconv.Quote` of a string holding `bytes`: UTF-8 runs as characters, each byte
/// that is not UTF-8 as `\xNN`.
pub fn quote_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_quoted_char(&mut out, c, '"');
        }
        for b in chunk.invalid() {
            out.push_str(&format!(r"\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

pub fn push_quoted_char(out: &mut String, c: char, quote: char) {
    match c {
        c if c == quote || c == '\\' => {
            out.push('\\');
            out.push(c);
        }
        '\x07' => out.push_str(r"\a"),
        '\x08' => out.push_str(r"\b"),
        '\x0c' => out.push_str(r"\f"),
        '\n' => out.push_str(r"\n"),
        '\r' => out.push_str(r"\r"),
        '\t' => out.push_str(r"\t"),
        '\x0b' => out.push_str(r"\v"),
        c if is_print(c) => out.push(c),
        c if (c as u32) < 0x80 => out.push_str(&format!(r"\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!(r"\u{:04x}", c as u32)),
        c => out.push_str(&format!(r"\U{:08x}", c as u32)),
    }
}

/// The decimal digits of a finite, non-negative `v` (no trailing zeros) and
/// the position of the decimal point, like Go's `decimalSlice`. `sig` is the
/// number of significant digits to round to; `None` is the shortest
/// representation that round-trips.
fn decimal_digits(v: f64, sig: Option<usize>) -> (Vec<u8>, i32) {
    if v == 0.0 {
        return (Vec::new(), 0);
    }
    let s = match sig {
        None => format!("{v:e}"),
        Some(n) => format!("{:.*e}", n.max(1) - 1, v),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits.is_empty() {
        return (Vec::new(), 0);
    }
    (digits, exp + 1)
}

fn fmt_e(digits: &[u8], dp: i32, prec: i32, upper: bool) -> String {
    let mut out = String::new();
    out.push(digits.first().map_or('0', |&d| d as char));
    if prec > 0 {
        out.push('.');
        let mut i = 1;
        let m = digits.len().min(prec as usize + 1);
        if i < m {
            out.extend(digits[i..m].iter().map(|&d| d as char));
            i = m;
        }
        while i <= prec as usize {
            out.push('0');
            i += 1;
        }
    }
    out.push(if upper { 'E' } else { 'e' });
    let exp = if digits.is_empty() { 0 } else { dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        out.push('0');
    }
    out.push_str(&e.to_string());
    out
}

fn fmt_f(digits: &[u8], dp: i32, prec: i32) -> String {
    let mut out = String::new();
    if dp > 0 {
        let m = digits.len().min(dp as usize);
        out.extend(digits[..m].iter().map(|&d| d as char));
        for _ in m..dp as usize {
            out.push('0');
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            let j = dp + i - 1;
            let ch = if j >= 0 && (j as usize) < digits.len() {
                digits[j as usize] as char
            } else {
                '0'
            };
            out.push(ch);
        }
    }
    out
}

/// Go's `strconv.FormatFloat(v, verb, prec, 64)` for verbs e, E, f, F, g, G
/// (`prec` None = shortest), with the sign only when negative (and for Inf).
pub fn format_float(v: f64, verb: char, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let neg = v.is_sign_negative();
    let a = v.abs();
    let body = match verb {
        'e' | 'E' => {
            let (digits, dp) = match prec {
                Some(p) => decimal_digits(a, Some(p + 1)),
                None => decimal_digits(a, None),
            };
            let p = prec.map_or(digits.len() as i32 - 1, |p| p as i32).max(0);
            fmt_e(&digits, dp, p, verb == 'E')
        }
        'f' | 'F' => match prec {
            Some(p) => format!("{a:.p$}"),
            None => {
                let (digits, dp) = decimal_digits(a, None);
                fmt_f(&digits, dp, (digits.len() as i32 - dp).max(0))
            }
        },
        _ => {
            let shortest = prec.is_none();
            let mut p = prec.unwrap_or(0).max(if shortest { 0 } else { 1 });
            let (digits, dp) = decimal_digits(a, if shortest { None } else { Some(p) });
            let nd = digits.len();
            if shortest {
                p = nd;
            }
            let mut eprec = p as i32;
            if eprec > nd as i32 && nd as i32 >= dp {
                eprec = nd as i32;
            }
            if shortest {
                eprec = 6;
            }
            let exp = dp - 1;
            if exp < -4 || exp >= eprec {
                let pp = p.min(nd) as i32;
                fmt_e(&digits, dp, pp - 1, verb == 'G')
            } else {
                let pp = if p as i32 > dp { nd as i32 } else { p as i32 };
                fmt_f(&digits, dp, (pp - dp).max(0))
            }
        }
    };
    if neg { format!("-{body}") } else { body }
}

/// A float as OpenMetrics writes it (Prometheus's `formatOpenMetricsFloat`): Go's shortest
/// form, with `.0` added when it has neither `.` nor an exponent (`1.0`, `0.5`, `1e+06`).
pub fn format_openmetrics_float(v: f64) -> String {
    let text = format_float(v, 'g', None);
    match v.is_finite() && !text.contains(['.', 'e']) {
        true => format!("{text}.0"),
        false => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escapes_and_raw_strings_read_as_go_reads_them() {
        assert_eq!(unquote(r#""a\\d\"b""#).as_deref(), Some(r#"a\d"b"#));
        assert_eq!(unquote(r"'it\'s'").as_deref(), Some("it's"));
        assert_eq!(
            unquote(r#""\x41\u00e9\U0001F600\101\n""#).as_deref(),
            Some("Aé😀A\n")
        );
        assert_eq!(unquote(r"`a\d`").as_deref(), Some(r"a\d"));
        // Not literals Go accepts: the parser reports them.
        for bad in [r#""\q""#, r#""a"#, "\"a\nb\"", r#""it's\'""#, r#""\400""#] {
            assert_eq!(unquote_bytes(bad), None, "{bad}");
        }
        // Byte escapes are bytes: a UTF-8 sequence, or not UTF-8 at all.
        assert_eq!(unquote(r#""\xc3\xbf\303\277""#).as_deref(), Some("ÿÿ"));
        assert_eq!(unquote_bytes(r#""\xff""#), Some(vec![0xff]));
        assert_eq!(unquote(r#""\xff""#), None);
    }

    #[test]
    fn openmetrics_floats_as_prometheus_writes_them() {
        for (v, text) in [
            (0.0, "0.0"),
            (1.0, "1.0"),
            (-1.0, "-1.0"),
            (0.25, "0.25"),
            (1e6, "1e+06"),
            (123456.0, "123456.0"),
            (f64::INFINITY, "+Inf"),
            (1e-5, "1e-05"),
        ] {
            assert_eq!(format_openmetrics_float(v), text, "{v}");
        }
    }

    #[test]
    fn quoted_values_read_back_the_same() {
        for value in [r"a\d", "x`y\"z\\", "tab\there\n"] {
            assert_eq!(unquote(&quote(value)).as_deref(), Some(value), "{value}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_quoted_as_escapes() {
        assert_eq!(quote_bytes(b"a\xc5z"), r#""a\xc5z""#);
        assert_eq!(quote_bytes("é\n".as_bytes()), r#""é\n""#);
        assert_eq!(
            unquote_bytes(&quote_bytes(b"\xff!")),
            Some(b"\xff!".to_vec())
        );
    }
}
