//! Go's `strconv.Unquote` and `strconv.Quote` (PromQL's string literals, templates' `%q`
//! and error messages), and `unicode.IsPrint`; Unquote as PromQL's lexer reads literals
//! (`"…"`, `'…'` with Go's escapes, and raw `` `…` ``).

/// The value of a quoted string literal; None when it is not one (the parser reports it).
pub fn unquote(literal: &str) -> Option<String> {
    let quote = literal.chars().next()?;
    let body = literal.strip_prefix(quote)?.strip_suffix(quote)?;
    if quote == '`' {
        return (!body.contains('`')).then(|| body.to_string());
    }
    if quote != '"' && quote != '\'' {
        return None;
    }
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == quote || c == '\n' {
            return None;
        }
        if c != '\\' {
            out.push(c);
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
            out.push(s);
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
            // A byte: only an ASCII one stands for a character on its own.
            if code > 0x7F {
                return None;
            }
        }
        out.push(char::from_u32(code)?);
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
        for bad in [r#""\q""#, r#""\xff""#, r#""a"#, "\"a\nb\"", r#""it's\'""#] {
            assert_eq!(unquote(bad), None, "{bad}");
        }
    }

    #[test]
    fn quoted_values_read_back_the_same() {
        for value in [r"a\d", "x`y\"z\\", "tab\there\n"] {
            assert_eq!(unquote(&quote(value)).as_deref(), Some(value), "{value}");
        }
    }
}
