//! Go's `fmt` verbs over template values (`%v`, `%d`, `%f`, `%e`, `%g`, `%q`, `%x`, ...),
//! as `printf` and printing actions format them.

use super::*;

/// Go's `strconv.FormatFloat`, which the verbs below build on.
pub(super) use crate::gocompat::strconv::format_float as go_format_float;

#[derive(Default, Clone, Copy)]
pub(super) struct Spec {
    pub(super) plus: bool,
    pub(super) minus: bool,
    pub(super) sharp: bool,
    pub(super) space: bool,
    pub(super) zero: bool,
    pub(super) wid: Option<usize>,
    pub(super) prec: Option<usize>,
}

impl Spec {
    /// Go's `fmt.pad`.
    fn pad(&self, s: &str) -> String {
        let n = s.chars().count();
        match self.wid {
            Some(w) if w > n => {
                let fill = w - n;
                if self.minus {
                    format!("{s}{}", " ".repeat(fill))
                } else if self.zero {
                    format!("{}{s}", "0".repeat(fill))
                } else {
                    format!("{}{s}", " ".repeat(fill))
                }
            }
            _ => s.to_owned(),
        }
    }

    fn pad_spaces(&self, s: &str) -> String {
        Spec {
            zero: false,
            ..*self
        }
        .pad(s)
    }
}

/// Go's `fmt.fmtInteger`.
pub(super) fn fmt_integer(n: i128, base: u32, verb: char, spec: &Spec) -> String {
    let negative = n < 0;
    let u = n.unsigned_abs();
    let mut prec = 0usize;
    if let Some(p) = spec.prec {
        prec = p;
        if p == 0 && u == 0 {
            return spec.pad_spaces("");
        }
    } else if spec.zero && !spec.minus && spec.wid.is_some() {
        prec = spec.wid.unwrap_or(0);
        if negative || spec.plus || spec.space {
            prec = prec.saturating_sub(1);
        }
    }
    let mut digits = match base {
        2 => format!("{u:b}"),
        8 => format!("{u:o}"),
        16 if verb == 'X' => format!("{u:X}"),
        16 => format!("{u:x}"),
        _ => u.to_string(),
    };
    if digits.len() < prec {
        digits = format!("{}{digits}", "0".repeat(prec - digits.len()));
    }
    if spec.sharp {
        match base {
            2 => digits = format!("0b{digits}"),
            8 if !digits.starts_with('0') => digits = format!("0{digits}"),
            16 if verb == 'X' => digits = format!("0X{digits}"),
            16 => digits = format!("0x{digits}"),
            _ => {}
        }
    }
    if verb == 'O' {
        digits = format!("0o{digits}");
    }
    let sign = if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    spec.pad_spaces(&format!("{sign}{digits}"))
}

/// Go's `fmt.fmtFloat` for verbs v, e, E, f, F, g, G.
pub(super) fn fmt_float(v: f64, verb: char, spec: &Spec) -> String {
    let (verb, prec) = match verb {
        'v' => ('g', spec.prec),
        'e' | 'E' | 'f' | 'F' => (verb, Some(spec.prec.unwrap_or(6))),
        _ => (verb, spec.prec),
    };
    let mut num = go_format_float(v, verb, prec);
    if !num.starts_with(['-', '+']) {
        num.insert(0, '+');
    }
    if spec.space && num.starts_with('+') && !spec.plus {
        num.replace_range(0..1, " ");
    }
    if num[1..].starts_with("Inf") || num[1..].starts_with("NaN") {
        if num[1..].starts_with("NaN") && !spec.space && !spec.plus {
            num.remove(0);
        }
        return spec.pad_spaces(&num);
    }
    if spec.plus || !num.starts_with('+') {
        if spec.zero && !spec.minus && spec.wid.is_some_and(|w| w > num.len()) {
            let w = spec.wid.unwrap_or(0);
            let (sign, rest) = num.split_at(1);
            return format!("{sign}{}{rest}", "0".repeat(w - num.len()));
        }
        return spec.pad(&num);
    }
    spec.pad(&num[1..])
}

pub(super) fn bad_verb(verb: char, v: &Value) -> String {
    match v {
        Value::Nil => format!("%!{verb}(<nil>)"),
        _ => format!("%!{verb}({}={})", go_type_name(v), go_sprint_one(v)),
    }
}

pub(super) fn fmt_arg(v: &Value, verb: char, spec: &Spec) -> String {
    match classify(v) {
        GoVal::Int(i) => match verb {
            'v' | 'd' => fmt_integer(i, 10, verb, spec),
            'b' => fmt_integer(i, 2, verb, spec),
            'o' | 'O' => fmt_integer(i, 8, verb, spec),
            'x' | 'X' => fmt_integer(i, 16, verb, spec),
            'c' => spec.pad(
                &u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}')
                    .to_string(),
            ),
            'q' => {
                let c = u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}');
                let mut s = String::from("'");
                crate::gocompat::strconv::push_quoted_char(&mut s, c, '\'');
                s.push('\'');
                spec.pad(&s)
            }
            'U' => spec.pad(&format!("U+{i:04X}")),
            // Float literals such as 2.0 reach us as integers (gtmpl), so
            // the float verbs accept integers.
            'e' | 'E' | 'f' | 'F' | 'g' | 'G' => fmt_float(i as f64, verb, spec),
            _ => bad_verb(verb, v),
        },
        GoVal::Float(f) => match verb {
            'v' | 'e' | 'E' | 'f' | 'F' | 'g' | 'G' => fmt_float(f, verb, spec),
            _ => bad_verb(verb, v),
        },
        GoVal::Str(s) => match verb {
            'v' | 's' => {
                let s: String = match spec.prec {
                    Some(p) => s.chars().take(p).collect(),
                    None => s.to_owned(),
                };
                spec.pad(&s)
            }
            'q' => {
                if spec.sharp
                    && !s.contains(['`', '\n', '\r'])
                    && s.chars().all(crate::gocompat::strconv::is_print)
                {
                    spec.pad(&format!("`{s}`"))
                } else {
                    spec.pad(&crate::gocompat::strconv::quote(s))
                }
            }
            'x' | 'X' => {
                let hex: Vec<String> = s
                    .bytes()
                    .map(|b| {
                        if verb == 'x' {
                            format!("{b:02x}")
                        } else {
                            format!("{b:02X}")
                        }
                    })
                    .collect();
                spec.pad(&hex.join(if spec.space { " " } else { "" }))
            }
            // Lenient: a numeric string formats as a number.
            'e' | 'E' | 'f' | 'F' | 'g' | 'G' => match go_parse_float(s) {
                Ok(f) => fmt_float(f, verb, spec),
                Err(_) => bad_verb(verb, v),
            },
            _ => bad_verb(verb, v),
        },
        GoVal::Bool(b) => match verb {
            'v' | 't' => spec.pad(if b { "true" } else { "false" }),
            _ => bad_verb(verb, v),
        },
        GoVal::Other(o) => match verb {
            'v' | 's' => spec.pad(&go_sprint_one(o)),
            _ => bad_verb(verb, v),
        },
    }
}

/// Widths and precisions above 1e6 are refused (Go refuses them too, though
/// its output differs: it then drops the rest of the format).
pub(super) const MAX_FMT_NUM: u64 = 1_000_000;

pub(super) fn parse_fmt_num(digits: &[char]) -> Option<usize> {
    digits
        .iter()
        .collect::<String>()
        .parse::<u64>()
        .ok()
        .filter(|n| *n <= MAX_FMT_NUM)
        .map(|n| n as usize)
}

/// Go's `fmt.Sprintf` for the verbs templates use: v s d f F e E g G q x X o
/// O b c t U and %%, with flags `+ - # 0 space`, width, precision, `*` and
/// explicit argument indexes. Mistakes print like Go (`%!d(string=x)`,
/// `%!s(MISSING)`, `%!(EXTRA ...)`).
pub(super) fn go_sprintf(format: &str, args: &[Value]) -> String {
    let chars: Vec<char> = format.chars().collect();
    let n = chars.len();
    let mut out = String::with_capacity(format.len() + 16);
    let mut argi = 0usize;
    let mut reordered = false;
    let mut i = 0;

    // Parses an explicit argument index `[n]` at chars[*i].
    let arg_index = |i: &mut usize, argi: &mut usize, reordered: &mut bool, good: &mut bool| {
        if *i < n && chars[*i] == '[' {
            *reordered = true;
            let Some(close) = chars[*i..].iter().position(|&c| c == ']') else {
                *good = false;
                *i = n;
                return;
            };
            let num: String = chars[*i + 1..*i + close].iter().collect();
            match num.parse::<usize>() {
                Ok(k) if k >= 1 && k <= args.len() => *argi = k - 1,
                _ => *good = false,
            }
            *i += close + 1;
        }
    };
    let int_arg = |argi: &mut usize| -> Option<i64> {
        let v = args.get(*argi)?;
        *argi += 1;
        match v {
            Value::Number(num) => num.as_i64(),
            _ => None,
        }
    };

    while i < n {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let mut spec = Spec::default();
        while i < n {
            match chars[i] {
                '#' => spec.sharp = true,
                '0' => spec.zero = !spec.minus,
                '+' => spec.plus = true,
                '-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                ' ' => spec.space = true,
                _ => break,
            }
            i += 1;
        }
        let mut good = true;
        arg_index(&mut i, &mut argi, &mut reordered, &mut good);
        if i < n && chars[i] == '*' {
            i += 1;
            match int_arg(&mut argi).filter(|w| w.unsigned_abs() <= MAX_FMT_NUM) {
                Some(w) => {
                    if w < 0 {
                        spec.minus = true;
                        spec.zero = false;
                    }
                    spec.wid = Some(w.unsigned_abs() as usize);
                }
                None => out.push_str("%!(BADWIDTH)"),
            }
        } else {
            let start = i;
            while i < n && chars[i].is_ascii_digit() {
                i += 1;
            }
            if i > start {
                match parse_fmt_num(&chars[start..i]) {
                    Some(w) => spec.wid = Some(w),
                    None => out.push_str("%!(BADWIDTH)"),
                }
            }
        }
        if i < n && chars[i] == '.' {
            i += 1;
            arg_index(&mut i, &mut argi, &mut reordered, &mut good);
            if i < n && chars[i] == '*' {
                i += 1;
                match int_arg(&mut argi).filter(|p| p.unsigned_abs() <= MAX_FMT_NUM) {
                    Some(p) if p >= 0 => spec.prec = Some(p as usize),
                    Some(_) => spec.prec = None,
                    None => out.push_str("%!(BADPREC)"),
                }
            } else {
                let start = i;
                while i < n && chars[i].is_ascii_digit() {
                    i += 1;
                }
                if i == start {
                    spec.prec = Some(0);
                } else {
                    match parse_fmt_num(&chars[start..i]) {
                        Some(p) => spec.prec = Some(p),
                        None => out.push_str("%!(BADPREC)"),
                    }
                }
            }
        }
        arg_index(&mut i, &mut argi, &mut reordered, &mut good);
        if i >= n {
            out.push_str("%!(NOVERB)");
            break;
        }
        let verb = chars[i];
        i += 1;
        if verb == '%' {
            out.push('%');
        } else if !good {
            out.push_str(&format!("%!{verb}(BADINDEX)"));
        } else if argi >= args.len() {
            out.push_str(&format!("%!{verb}(MISSING)"));
        } else {
            out.push_str(&fmt_arg(&args[argi], verb, &spec));
            argi += 1;
        }
    }
    if !reordered && argi < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|a| format!("{}={}", go_type_name(a), go_sprint_one(a)))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}
