//! Go's `regexp` (RE2), which Prometheus compiles every regular expression with, on the
//! `regex` crate: the syntax where the two disagree is rewritten into Rust's spelling of
//! RE2's meaning. Relabeling, PromQL matchers and `label_replace`, remote read, and the
//! template functions all compile through here.

use std::sync::LazyLock;

use regex::Regex;

/// Compiled patterns by kind and text: dashboards and rules send the same matchers again
/// and again (Grafana's `=~"$var"` on every panel), and compiling one costs tens of
/// microseconds to milliseconds where a lookup costs well under one. A `Regex` is shared
/// by reference counting, so a hit copies nothing.
static COMPILED: LazyLock<moka::sync::Cache<(Kind, String), Result<Regex, String>>> =
    LazyLock::new(|| moka::sync::Cache::new(4096));

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Anchored,
    Matcher,
    Plain,
}

fn cached(
    kind: Kind,
    pattern: &str,
    build: impl FnOnce() -> Result<Regex, String>,
) -> Result<Regex, String> {
    let key = (kind, pattern.to_string());
    if let Some(hit) = COMPILED.get(&key) {
        return hit;
    }
    let built = build();
    COMPILED.insert(key, built.clone());
    built
}

/// Compiles `pattern` as Prometheus compiles label matchers and relabel regexes:
/// `^(?s:pattern)$`, so it must match the whole input and `.` also matches newlines.
/// The error is the compiler's message, against the user's own text when it reproduces
/// there.
pub fn compile_anchored(pattern: &str) -> Result<Regex, String> {
    // Anchor before translating, as Prometheus anchors before parsing: an unterminated
    // `\Q` then swallows the closing `)$` and fails in both.
    cached(Kind::Anchored, pattern, || {
        checked(pattern, &translate(&format!("^(?s:{pattern})$")))
    })
}

/// Compiles a pattern already in the `regex` crate's syntax (a PromQL matcher's, which
/// the query rewrite translated) as a label matcher: `^(?s:pattern)$`.
pub fn compile_matcher(translated: &str) -> Result<Regex, String> {
    cached(Kind::Matcher, translated, || {
        Regex::new(&format!("^(?s:{translated})$")).map_err(|e| e.to_string())
    })
}

/// Compiles `pattern` as Go's `regexp.Compile` does (unanchored), for templates.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    cached(Kind::Plain, pattern, || {
        checked(pattern, &translate(pattern))
    })
}

fn checked(pattern: &str, translated: &str) -> Result<Regex, String> {
    Regex::new(translated).map_err(|err| {
        let detail = Regex::new(pattern).err().unwrap_or(err);
        detail.to_string()
    })
}

/// Rewrites RE2 syntax (what Prometheus compiles) into equivalent Rust `regex`
/// syntax where the two disagree on meaning:
/// - `\d \w \s \b` (and negations) are ASCII-only in RE2, Unicode in Rust;
/// - `\Q…\E` quoting exists only in RE2;
/// - in a class, RE2 takes `[`, `&&`, `~~` and `--` literally, Rust as set syntax;
/// - escaped punctuation is always literal in RE2 (`\<` is a word start in Rust).
pub fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars();
    let mut class = ClassState::Outside;
    while let Some(c) = chars.next() {
        if c == '\\' {
            translate_escape(&mut chars, class != ClassState::Outside, &mut out);
            if class != ClassState::Outside {
                class = ClassState::Inside;
            }
            continue;
        }
        class = match class {
            ClassState::Outside => translate_outside_class(c, &mut chars, &mut out),
            inside => translate_in_class(c, inside, &mut chars, &mut out),
        };
    }
    out
}

/// Where [`translate`] is relative to a `[...]` character class.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClassState {
    Outside,
    /// Just after `[` or `[^`, where `]` is a literal.
    Start,
    /// Just after a literal `-` inside a class.
    AfterDash,
    Inside,
}

fn translate_outside_class(
    c: char,
    chars: &mut std::str::Chars<'_>,
    out: &mut String,
) -> ClassState {
    if c == '{' && !starts_repeat(chars.as_str()) {
        // RE2 takes a brace that opens no `{n}`, `{n,}` or `{n,m}` literally.
        out.push_str(r"\{");
        return ClassState::Outside;
    }
    out.push(c);
    if c != '[' {
        return ClassState::Outside;
    }
    if chars.as_str().starts_with('^') {
        chars.next();
        out.push('^');
    }
    ClassState::Start
}

fn translate_in_class(
    c: char,
    state: ClassState,
    chars: &mut std::str::Chars<'_>,
    out: &mut String,
) -> ClassState {
    match c {
        ']' if state == ClassState::Start => out.push_str(r"\]"),
        ']' => {
            out.push(']');
            return ClassState::Outside;
        }
        '[' => match posix_class_len(chars.as_str()) {
            Some(len) => {
                out.push('[');
                for _ in 0..len {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                }
            }
            None => out.push_str(r"\["),
        },
        '&' | '~' => {
            out.push('\\');
            out.push(c);
        }
        '-' if state == ClassState::AfterDash => out.push_str(r"\-"),
        '-' => {
            out.push('-');
            return ClassState::AfterDash;
        }
        _ => out.push(c),
    }
    ClassState::Inside
}

/// Whether `rest` (after a `{`) is the rest of a counted repetition: `n}`, `n,}`, `n,m}`.
fn starts_repeat(rest: &str) -> bool {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let n = digits(rest);
    if n == 0 {
        return false;
    }
    let rest = &rest[n..];
    match rest.strip_prefix(',') {
        Some(after) => after[digits(after)..].starts_with('}'),
        None => rest.starts_with('}'),
    }
}

/// Length of `:name:]` or `:^name:]` (the rest of a POSIX class after its `[`).
fn posix_class_len(rest: &str) -> Option<usize> {
    let body = rest.strip_prefix(':')?;
    let end = body.find(":]")?;
    let name = &body[..end];
    let name = name.strip_prefix('^').unwrap_or(name);
    let well_formed = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic());
    well_formed.then_some(1 + end + 2)
}

fn translate_escape(chars: &mut std::str::Chars<'_>, in_class: bool, out: &mut String) {
    let Some(escaped) = chars.next() else {
        // A trailing backslash: leave it for the compiler to reject.
        out.push('\\');
        return;
    };
    if let Some(ascii_class) = ascii_perl_class(escaped, in_class) {
        out.push_str(ascii_class);
    } else if escaped == 'Q' && !in_class {
        let rest = chars.as_str();
        let (literal, after) = match rest.find(r"\E") {
            Some(end) => (&rest[..end], &rest[end + 2..]),
            None => (rest, ""),
        };
        out.push_str(&regex::escape(literal));
        *chars = after.chars();
    } else if escaped.is_ascii() && !escaped.is_ascii_alphanumeric() {
        // RE2: an escaped ASCII non-word char is that char. Rust gives some of
        // them other meanings (`\<`, `\>`) or rejects them, so spell it as hex.
        out.push_str(&format!("\\x{{{:02X}}}", u32::from(escaped)));
    } else {
        out.push('\\');
        out.push(escaped);
        // `\x{263a}`, `\p{Greek}`, `\P{Greek}`: the braces belong to the escape.
        let rest = chars.as_str();
        if matches!(escaped, 'x' | 'p' | 'P')
            && rest.starts_with('{')
            && let Some(end) = rest.find('}')
        {
            out.push_str(&rest[..=end]);
            *chars = rest[end + 1..].chars();
        }
    }
}

/// RE2's ASCII meaning of `\d \D \w \W \s \S \b \B`; inside a class the
/// positive ones become ranges and the negated ones nested classes.
fn ascii_perl_class(escaped: char, in_class: bool) -> Option<&'static str> {
    let translated = match (escaped, in_class) {
        ('d', false) => "[0-9]",
        ('d', true) => "0-9",
        ('D', _) => "[^0-9]",
        ('w', false) => "[0-9A-Za-z_]",
        ('w', true) => "0-9A-Za-z_",
        ('W', _) => "[^0-9A-Za-z_]",
        ('s', false) => r"[\t\n\x0C\r\x20]",
        ('s', true) => r"\t\n\x0C\r\x20",
        ('S', _) => r"[^\t\n\x0C\r\x20]",
        ('b', false) => r"(?-u:\b)",
        ('B', false) => r"(?-u:\B)",
        _ => return None,
    };
    Some(translated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braces_that_open_no_repetition_are_literal_as_in_re2() {
        let re = compile_anchored("a{bbb}c").unwrap();
        assert!(re.is_match("a{bbb}c"));
        assert!(compile_anchored("x{2}").unwrap().is_match("xx"));
        assert!(compile_anchored("x{1,}").unwrap().is_match("xxx"));
        assert!(compile_anchored("x{1,2}").unwrap().is_match("xx"));
        assert!(compile_anchored("x{,2}").unwrap().is_match("x{,2}"));
        assert!(compile_anchored("{}").unwrap().is_match("{}"));
        // Braces of an escape are the escape's.
        assert!(compile_anchored(r"\x{263a}").unwrap().is_match("\u{263a}"));
        assert!(compile_anchored(r"\p{Greek}+").unwrap().is_match("αβ"));
        assert!(compile_anchored(r"\x{5B}").unwrap().is_match("["));
    }

    #[test]
    fn anchored_matches_whole_values_across_newlines_and_unanchored_finds() {
        let whole = compile_anchored("a.b").unwrap();
        assert!(whole.is_match("a\nb"));
        assert!(!whole.is_match("xa-b"));
        let find = compile(r"\d+").unwrap();
        assert_eq!(find.find("ab12c").map(|m| m.as_str()), Some("12"));
        // RE2's `\d` is ASCII: an Arabic-Indic digit is not one.
        assert!(!find.is_match("\u{0663}"));
    }

    #[test]
    fn errors_name_the_users_pattern_not_the_translation() {
        let err = compile_anchored("a(b").unwrap_err();
        assert!(!err.contains("(?s:"), "{err}");
        assert!(compile(r"\Qunterminated").is_ok());
    }
}
