//! Pre-processing of template text before gtmpl sees it: rejects the inputs gtmpl's lexer
//! and parser mishandle, decodes literals with Go's rules and applies trim markers.

use super::*;

pub(super) const MAX_NESTING: usize = 64;

/// The template text as handed to gtmpl, and the Go `%v` texts of the float
/// literals it contains (to register as floats).
pub(super) struct Prepared {
    pub(super) text: String,
    pub(super) floats: Vec<String>,
}

/// Checks the template and rewrites its literals into forms gtmpl 0.7.1
/// handles correctly, before gtmpl sees it.
///
/// Rejected (gtmpl hangs, panics or aborts the process on them):
///
/// * a non-ASCII character inside an action, outside a literal: gtmpl's lexer
///   thread panics and its parser then spins forever;
/// * an unclosed action (`{{ .x ` at the end of the text): gtmpl's parser can
///   spin forever on it;
/// * recursive `{{template}}` calls: gtmpl allows 100000 levels, which
///   overflows the stack and aborts the process;
/// * blocks or parentheses nested deeper than [`MAX_NESTING`] (the recursive
///   parser would overflow the stack).
///
/// Rewritten (decoded here with Go's rules, re-encoded for gtmpl):
///
/// * string literals, quoted and raw: gtmpl's lexer thinks `"a\\"` is
///   unterminated, it applies backslash escapes inside raw strings (so
///   `` `\d+` `` fails), it mis-decodes `\x`/`\u` escapes and loops forever
///   on `"\x4"`;
/// * character literals become their code point (`'a'` -> `97`), as in Go;
/// * trim markers (`{{- ` and ` -}}`) are applied here and removed (gtmpl's
///   lexer thread panics on a multi-byte character before `{{-`);
/// * comments are removed;
/// * float literals become registered float strings (`1.5` -> `"1.5"`,
///   `1e6` -> `"1e+06"`): gtmpl would make `-0.5` into `0` and `1e21` into
///   `18446744073709551615`;
/// * integer literals become decimal (gtmpl reads `0x1F` as 0, `010` as 10);
/// * printing actions get a final `| _goPrint` stage (see [`PRINT_FUNC`]).
///
/// Everything else is left to gtmpl's parser.
pub(super) fn prepare(name: &str, text: &str) -> Result<Prepared, String> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    let mut floats = Vec::new();
    let mut i = 0;
    // (keyword, template name it defines) of the open blocks.
    let mut stack: Vec<(String, Option<String>)> = Vec::new();
    let mut calls: Vec<(String, String)> = Vec::new();
    while let Some(off) = text[i..].find("{{") {
        let open = i + off;
        // Trim markers are applied here rather than by gtmpl, whose left trim
        // cuts a multi-byte character before `{{-` in half (its lexer thread
        // panics) and which trims Unicode white space (Go: " \t\r\n").
        let left_trim =
            b.get(open + 2) == Some(&b'-') && b.get(open + 3).is_some_and(|&c| is_go_space(c));
        let before = &text[i..open];
        out.push_str(if left_trim {
            before.trim_end_matches([' ', '\t', '\r', '\n'])
        } else {
            before
        });
        let j = if left_trim { open + 3 } else { open + 2 };
        let mut k = j;
        while b.get(k).is_some_and(|&c| is_go_space(c)) {
            k += 1;
        }
        if text[k..].starts_with("/*") {
            // A comment: dropped.
            let Some(end) = text[k + 2..].find("*/") else {
                return Err("unclosed comment".to_owned());
            };
            let after = k + 2 + end + 2;
            let mut m = after;
            while b.get(m).is_some_and(|&c| is_go_space(c)) {
                m += 1;
            }
            let right_trim = m > after && text[m..].starts_with("-}}");
            if right_trim {
                m += 1;
            }
            if !text[m..].starts_with("}}") {
                return Err("comment ends before closing delimiter".to_owned());
            }
            i = m + 2;
            if right_trim {
                while b.get(i).is_some_and(|&c| is_go_space(c)) {
                    i += 1;
                }
            }
            continue;
        }
        out.push_str("{{");
        let action = scan_action(text, j, &mut out, &mut floats)?;
        i = action.end;
        if action.right_trim {
            while b.get(i).is_some_and(|&c| is_go_space(c)) {
                i += 1;
            }
        }
        let current = stack
            .iter()
            .rev()
            .find_map(|(_, n)| n.clone())
            .unwrap_or_else(|| name.to_owned());
        match action.keyword.as_str() {
            "if" | "range" | "with" => stack.push((action.keyword, None)),
            "define" => stack.push((action.keyword, action.first_string)),
            "block" => {
                if let Some(target) = &action.first_string {
                    calls.push((current, target.clone()));
                }
                stack.push((action.keyword, action.first_string));
            }
            "template" => {
                if let Some(target) = action.first_string {
                    calls.push((current, target));
                }
            }
            "end" => {
                stack.pop();
            }
            _ => {}
        }
        if stack.len() > MAX_NESTING {
            return Err(format!("blocks nested deeper than {MAX_NESTING}"));
        }
    }
    out.push_str(&text[i..]);
    check_recursion(name, &calls)?;
    Ok(Prepared { text: out, floats })
}

pub(super) struct ScannedAction {
    /// Byte offset just past the closing `}}`.
    pub(super) end: usize,
    pub(super) keyword: String,
    pub(super) first_string: Option<String>,
    /// The action ended with ` -}}`.
    pub(super) right_trim: bool,
}

/// Go template's white space for trim markers.
pub(super) fn is_go_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

pub(super) fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Scans one action from `start` (just past `{{` and a trim marker) to its
/// closing `}}`, appending the rewritten action to `out`.
pub(super) fn scan_action(
    text: &str,
    start: usize,
    out: &mut String,
    floats: &mut Vec<String>,
) -> Result<ScannedAction, String> {
    let mut pos = start;
    let mut keyword = String::new();
    let mut tokens = 0usize;
    let mut first_string = None;
    let mut depth = 0usize;
    let mut after_space = false;
    let mut right_trim = false;
    let mut declaration = false;
    while let Some(c) = text[pos..].chars().next() {
        let rest = &text[pos..];
        if rest.starts_with("}}") {
            let control = matches!(
                keyword.as_str(),
                "if" | "else"
                    | "end"
                    | "range"
                    | "with"
                    | "define"
                    | "template"
                    | "block"
                    | "break"
                    | "continue"
            );
            if !control && !declaration {
                // Print through Go's %v (see PRINT_FUNC).
                out.push_str(" | ");
                out.push_str(PRINT_FUNC);
            }
            out.push_str("}}");
            return Ok(ScannedAction {
                end: pos + 2,
                keyword,
                first_string,
                right_trim,
            });
        }
        let next = rest[c.len_utf8()..].chars().next();
        let was_after_space = std::mem::replace(&mut after_space, false);
        match c {
            c if c.is_ascii_whitespace() => {
                out.push(c);
                after_space = true;
                pos += 1;
                continue;
            }
            '"' | '`' => {
                let (value, len) = if c == '"' {
                    decode_go_string(rest)?
                } else {
                    let Some(end) = rest[1..].find('`') else {
                        return Err("unterminated raw quoted string".to_owned());
                    };
                    (rest[1..1 + end].replace('\r', ""), end + 2)
                };
                out.push_str(&gtmpl_quote(&value));
                if first_string.is_none() {
                    first_string = Some(value);
                }
                pos += len;
            }
            '\'' => {
                let (ch, len) = decode_go_char(rest)?;
                out.push_str(&ch.to_string());
                pos += len;
            }
            '-' if was_after_space && rest.starts_with("-}}") => {
                right_trim = true;
                pos += 1;
            }
            c if c.is_ascii_digit()
                || (matches!(c, '+' | '-' | '.')
                    && next.is_some_and(|n| n.is_ascii_digit() || (c != '.' && n == '.'))) =>
            {
                let len = number_token_len(rest);
                let tok = &rest[..len];
                if let Some(n) = parse_go_int(tok) {
                    // gtmpl reads hex as 0 and "010" as 10 (Go: 8).
                    out.push_str(&n.to_string());
                } else if let Some(f) = parse_decimal_float(tok) {
                    let s = go_format_float(f, 'g', None);
                    out.push_str(&gtmpl_quote(&s));
                    floats.push(s);
                } else {
                    out.push_str(tok);
                }
                pos += len;
            }
            c if is_word_char(c) || c == '$' || c == '.' => {
                let len = c.len_utf8()
                    + rest[c.len_utf8()..]
                        .find(|n: char| !is_word_char(n))
                        .unwrap_or(rest.len() - c.len_utf8());
                let word = &rest[..len];
                if tokens == 0 && c.is_ascii_alphabetic() {
                    keyword = word.to_owned();
                }
                out.push_str(word);
                pos += len;
            }
            ':' | '=' => {
                declaration = true;
                out.push(c);
                pos += 1;
            }
            '(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!("parentheses nested deeper than {MAX_NESTING}"));
                }
                out.push(c);
                pos += 1;
            }
            ')' => {
                depth = depth.saturating_sub(1);
                out.push(c);
                pos += 1;
            }
            c if !c.is_ascii() => {
                return Err(format!(
                    "unrecognized character in action: {} (only ASCII is supported outside literals)",
                    go_rune_u(c)
                ));
            }
            c => {
                out.push(c);
                pos += 1;
            }
        }
        tokens += 1;
    }
    // gtmpl's parser can spin forever on an unclosed action.
    Err("unclosed action".to_owned())
}

/// Length of the number token at the start of `s` (Go's lexer accepts a
/// sign, alphanumerics, `_`, `.` and a sign after an exponent).
pub(super) fn number_token_len(s: &str) -> usize {
    let b = s.as_bytes();
    let hex = {
        let t = s.trim_start_matches(['+', '-']);
        t.starts_with("0x") || t.starts_with("0X")
    };
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    while i < b.len() {
        let c = b[i];
        let exponent_sign = matches!(c, b'+' | b'-')
            && i > 0
            && if hex {
                matches!(b[i - 1], b'p' | b'P')
            } else {
                matches!(b[i - 1], b'e' | b'E')
            };
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || exponent_sign {
            i += 1;
        } else {
            break;
        }
    }
    i.max(1)
}

/// A Go integer literal (decimal, `0x`, `0o`, `0b`, leading-zero octal, `_`
/// separators) that fits in an `i64` or `u64`.
pub(super) fn parse_go_int(tok: &str) -> Option<i128> {
    let (neg, body) = match tok.as_bytes().first() {
        Some(b'-') => (true, &tok[1..]),
        Some(b'+') => (false, &tok[1..]),
        _ => (false, tok),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    let digits = digits.replace('_', "");
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i128::from_str_radix(&digits, radix).ok()?;
    let v = if neg { -v } else { v };
    (v >= i128::from(i64::MIN) && v <= i128::from(u64::MAX)).then_some(v)
}

/// A plain decimal float literal (`1.5`, `-.5`, `1e6`, `12345678901234567890`).
pub(super) fn parse_decimal_float(tok: &str) -> Option<f64> {
    let body = tok.trim_start_matches(['+', '-']);
    if body.len() + 1 < tok.len()
        || !body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        || !body
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    tok.parse::<f64>().ok().filter(|f| f.is_finite())
}

pub(super) fn hex_value(digits: &str) -> Option<u32> {
    if digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        u32::from_str_radix(digits, 16).ok()
    } else {
        None
    }
}

/// Decodes one Go escape (after the backslash) from `chars`, appending the
/// bytes to `out`.
pub(super) fn decode_escape(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    quote: char,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let Some((_, e)) = chars.next() else {
        return Err("unterminated escape sequence".to_owned());
    };
    let mut take = |n: usize| -> String { chars.by_ref().take(n).map(|(_, c)| c).collect() };
    let simple = match e {
        'a' => Some(7u8),
        'b' => Some(8),
        'f' => Some(12),
        'n' => Some(b'\n'),
        'r' => Some(b'\r'),
        't' => Some(b'\t'),
        'v' => Some(11),
        '\\' => Some(b'\\'),
        c if c == quote => Some(c as u8),
        _ => None,
    };
    if let Some(byte) = simple {
        out.push(byte);
        return Ok(());
    }
    let bad = || format!("invalid escape sequence \\{e} in literal");
    match e {
        '0'..='7' => {
            let digits = format!("{e}{}", take(2));
            let v = u32::from_str_radix(&digits, 8)
                .ok()
                .filter(|v| *v <= 255 && digits.len() == 3)
                .ok_or_else(bad)?;
            out.push(v as u8);
        }
        'x' => {
            let v = hex_value(&take(2)).ok_or_else(bad)?;
            out.push(v as u8);
        }
        'u' | 'U' => {
            let digits = take(if e == 'u' { 4 } else { 8 });
            let c = hex_value(&digits)
                .filter(|_| digits.len() == if e == 'u' { 4 } else { 8 })
                .and_then(char::from_u32)
                .ok_or_else(bad)?;
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        _ => return Err(bad()),
    }
    Ok(())
}

/// Decodes a Go double-quoted string literal at the start of `s`; returns
/// the value and the literal's length in bytes.
pub(super) fn decode_go_string(s: &str) -> Result<(String, usize), String> {
    let mut chars = s.char_indices().peekable();
    chars.next(); // the opening quote
    let mut bytes = Vec::new();
    loop {
        match chars.next() {
            None | Some((_, '\n')) => return Err("unterminated quoted string".to_owned()),
            Some((i, '"')) => {
                let value = String::from_utf8(bytes)
                    .map_err(|_| "string literal is not valid UTF-8".to_owned())?;
                return Ok((value, i + 1));
            }
            Some((_, '\\')) => decode_escape(&mut chars, '"', &mut bytes)?,
            Some((_, c)) => {
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// Decodes a Go character literal at the start of `s` to its code point;
/// returns it and the literal's length in bytes.
pub(super) fn decode_go_char(s: &str) -> Result<(u32, usize), String> {
    let mut chars = s.char_indices().peekable();
    chars.next(); // the opening quote
    let value = match chars.next() {
        Some((_, '\\')) => {
            let mut bytes = Vec::new();
            decode_escape(&mut chars, '\'', &mut bytes)?;
            match std::str::from_utf8(&bytes).ok().and_then(|s| {
                let mut it = s.chars();
                it.next().filter(|_| it.next().is_none())
            }) {
                Some(c) => c as u32,
                // \xff, \377: a byte value.
                None if bytes.len() == 1 => u32::from(bytes[0]),
                None => return Err("malformed character constant".to_owned()),
            }
        }
        Some((_, '\n' | '\'')) | None => return Err("malformed character constant".to_owned()),
        Some((_, c)) => c as u32,
    };
    match chars.next() {
        Some((i, '\'')) => Ok((value, i + 1)),
        _ => Err("malformed character constant".to_owned()),
    }
}

/// Encodes a string as a double-quoted literal that gtmpl 0.7.1 lexes and
/// decodes back to exactly `v`. Its lexer treats the quote after `\\` as
/// escaped, so a final backslash is written as `\x5c` (gtmpl decodes `\x`
/// correctly only at the very end of a literal, which is where it is used).
pub(super) fn gtmpl_quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str(r"\\"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            '\x08' => out.push_str(r"\b"),
            '\x0c' => out.push_str(r"\f"),
            c => out.push(c),
        }
    }
    if v.ends_with('\\') {
        out.truncate(out.len() - 2);
        out.push_str(r"\x5c");
    }
    out.push('"');
    out
}

/// Go's `%#U` of a rune, e.g. `U+00E9 'é'`.
pub(super) fn go_rune_u(c: char) -> String {
    if crate::gocompat::strconv::is_print(c) {
        format!("U+{:04X} '{c}'", c as u32)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

pub(super) fn check_recursion(root: &str, calls: &[(String, String)]) -> Result<(), String> {
    let mut graph: HashMap<&str, Vec<&str>> = HashMap::new();
    for (from, to) in calls {
        graph.entry(from.as_str()).or_default().push(to.as_str());
    }
    // Iterative DFS with colours: 1 = on the current path, 2 = done.
    let mut colour: HashMap<&str, u8> = HashMap::new();
    let mut stack: Vec<(&str, usize)> = vec![(root, 0)];
    colour.insert(root, 1);
    while let Some((node, idx)) = stack.pop() {
        let next = graph.get(node).and_then(|v| v.get(idx)).copied();
        match next {
            None => {
                colour.insert(node, 2);
            }
            Some(child) => {
                stack.push((node, idx + 1));
                match colour.get(child) {
                    Some(1) => {
                        return Err(format!(
                            "recursive template invocation of {child:?} is not supported"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        colour.insert(child, 1);
                        stack.push((child, 0));
                    }
                }
            }
        }
    }
    Ok(())
}
