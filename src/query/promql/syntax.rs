//! PromQL syntax newer than the `promql-parser` crate understands, rewritten before parsing
//! into a form it does parse:
//! - **duration expressions** (Prometheus 3.6+) in ranges, subquery steps and offsets:
//!   `[26m+4m]`, `[step()*2:5s]`, `offset -(2*1m)`, `min_of(a, b)`, `max_of(a, b)`,
//!   `step()` and `range()`. They are constant for one query, so they are folded into a
//!   plain millisecond duration here.
//! - the **`anchored` and `smoothed` modifiers** (extended range selectors): the keyword is
//!   removed and recorded as a reserved matcher on the selector it modifies; the planner
//!   reads it back with [`selector_mode`] and selection ignores it.
//! - the **trim operators** `</` and `>/` (Prometheus 3.8+), which have the comparison
//!   operators' precedence: `a </ b` becomes `label_replace(a, "__quiver_trim__", "</", "",
//!   "") < b`, a comparison of the same precedence whose left operand records the
//!   operator; the planner reads it back with [`trim_operator`]. The left operand's extent
//!   is found by precedence: back to the nearest `and`, `or`, `unless`, opening bracket or
//!   comma at the same depth (everything else binds at least as tightly and associates to
//!   the left).
//! - **regular expressions** of `=~` and `!~` matchers, written in RE2 (Go's), are
//!   rewritten into the `regex` crate's spelling of the same meaning
//!   ([`crate::gocompat::regex`]), which the crate's parser then compiles.
//!
//! Why a rewrite and not our own parser: the crate's grammar covers everything else, and
//! these additions are local (a bracket, an offset operand, a postfix keyword, an
//! operator), so a small lexer is enough to find them without re-implementing PromQL's
//! grammar.

use std::borrow::Cow;

use promql_parser::parser::token;
use promql_parser::parser::{BinaryExpr, Expr as PromExpr, VectorSelector};

use super::ops::BinaryOp;

/// The reserved label name carrying a selector's mode; no stored series has it.
pub const MODE_LABEL: &str = "__quiver_selector_mode__";

/// How a selector reads samples around its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Default)]
pub enum SelectorMode {
    #[default]
    Plain,
    /// The window starts at the last sample at or before its start (no extrapolation).
    Anchored,
    /// The window's edges are interpolated from the samples around them.
    Smoothed,
}

impl SelectorMode {
    fn keyword(self) -> &'static str {
        match self {
            SelectorMode::Plain => "plain",
            SelectorMode::Anchored => "anchored",
            SelectorMode::Smoothed => "smoothed",
        }
    }

    fn from_keyword(word: &str) -> Option<SelectorMode> {
        match word {
            "anchored" => Some(SelectorMode::Anchored),
            "smoothed" => Some(SelectorMode::Smoothed),
            _ => None,
        }
    }
}

/// The mode the rewrite recorded on `vs`.
pub fn selector_mode(vs: &VectorSelector) -> SelectorMode {
    vs.matchers
        .matchers
        .iter()
        .find(|m| m.name == MODE_LABEL)
        .and_then(|m| SelectorMode::from_keyword(&m.value))
        .unwrap_or_default()
}

/// How the query's text starts `expr` when that is a selector: a vector selector without
/// the matcher the rewrite added for its mode, and the keyword after it (`x smoothed`); a
/// range selector's vector selector and its bracket (`x[`, as its range may be written
/// `90s` or `1m30s`). None for other expressions, whose text is their own.
pub fn written_selector(expr: &PromExpr) -> Option<String> {
    let strip = |vs: &VectorSelector| {
        let mode = selector_mode(vs);
        let mut plain = vs.clone();
        plain.matchers.matchers.retain(|m| m.name != MODE_LABEL);
        (mode != SelectorMode::Plain).then_some((plain, mode.keyword()))
    };
    match expr {
        PromExpr::VectorSelector(vs) => {
            let (plain, keyword) = strip(vs)?;
            Some(format!("{} {keyword}", PromExpr::VectorSelector(plain)))
        }
        PromExpr::MatrixSelector(ms) => {
            let plain = strip(&ms.vs).map_or_else(|| ms.vs.clone(), |(plain, _)| plain);
            Some(format!("{}[", PromExpr::VectorSelector(plain)))
        }
        _ => None,
    }
}

/// The reserved label name marking a trim operator's left operand; no stored series has it.
pub const TRIM_LABEL: &str = "__quiver_trim__";

/// The trim operator the rewrite recorded in `b`, with its left operand; None when `b` is
/// not a trim.
pub fn trim_operator(b: &BinaryExpr) -> Option<(&PromExpr, BinaryOp)> {
    let PromExpr::Call(call) = b.lhs.as_ref() else {
        return None;
    };
    let args = &call.args.args;
    if call.func.name != "label_replace" || args.len() != 5 {
        return None;
    }
    let string = |i: usize| match args[i].as_ref() {
        PromExpr::StringLiteral(s) => Some(s.val.as_str()),
        _ => None,
    };
    if string(1)? != TRIM_LABEL {
        return None;
    }
    let op = match (string(2)?, b.op.id()) {
        ("</", token::T_LSS) => BinaryOp::TrimUpper,
        (">/", token::T_GTR) => BinaryOp::TrimLower,
        _ => return None,
    };
    Some((args[0].as_ref(), op))
}

/// What `step()` and `range()` are for this query (0 for an instant query).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct QueryTimes {
    pub step_ms: i64,
    pub range_ms: i64,
}

/// The query with duration expressions folded and modifiers recorded; the query itself when
/// it uses neither.
pub fn rewrite(query: &str, times: QueryTimes) -> Result<Cow<'_, str>, String> {
    let tokens = lex(query);
    let edits = Rewriter {
        text: query,
        tokens: &tokens,
        times,
        edits: Vec::new(),
    }
    .run()?;
    if edits.is_empty() {
        return Ok(Cow::Borrowed(query));
    }
    Ok(Cow::Owned(apply(query, edits)))
}

/// The binary operators and opening parentheses of `query`, outside label matchers' braces
/// and strings: a bound on how deep its expression tree can be (see `query::complexity`).
pub fn operators(query: &str) -> usize {
    let mut braces = 0usize;
    let mut count = 0;
    for token in lex(query) {
        let text = &query[token.start..token.end];
        match (token.kind, text) {
            (Kind::Punct, "{") => braces += 1,
            (Kind::Punct, "}") => braces = braces.saturating_sub(1),
            _ if braces > 0 => {}
            (Kind::Punct, "(" | "+" | "-" | "*" | "/" | "%" | "^" | "<" | ">") => count += 1,
            (Kind::Punct, "=" | "!") => count += 1,
            (Kind::Ident, "and" | "or" | "unless" | "atan2") => count += 1,
            _ => {}
        }
    }
    count
}

/// The values, as the parser reads them, of `query`'s string literals whose bytes in Go are
/// not UTF-8 (`"\xff"`): the parser gives such a byte escape as the character of that code
/// point, while Prometheus sees the byte and refuses the string as a label name.
pub fn non_utf8_literals(query: &str) -> Vec<String> {
    lex(query)
        .into_iter()
        .filter(|t| t.kind == Kind::Str)
        .map(|t| &query[t.start..t.end])
        .filter(|literal| {
            crate::gocompat::strconv::unquote_bytes(literal)
                .is_some_and(|bytes| std::str::from_utf8(&bytes).is_err())
        })
        .filter_map(|literal| promql_parser::util::unquote_string(literal).ok())
        .collect()
}

/// `value`, a string literal of `query` as the parser read it, quoted as Prometheus's
/// messages quote it (Go's `%q`): a literal whose bytes are not UTF-8 shows those bytes
/// (`"a\xc5z"`), not the characters the parser made of them.
pub fn go_quoted(query: &str, value: &str) -> String {
    use crate::gocompat::strconv::{quote, quote_bytes, unquote_bytes};
    lex(query)
        .into_iter()
        .filter(|t| t.kind == Kind::Str)
        .map(|t| &query[t.start..t.end])
        .find_map(|literal| {
            let bytes = unquote_bytes(literal)?;
            let parsed = promql_parser::util::unquote_string(literal).ok()?;
            (std::str::from_utf8(&bytes).is_err() && parsed == value).then(|| quote_bytes(&bytes))
        })
        .unwrap_or_else(|| quote(value))
}

// ---- lexing ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ident,
    Number,
    Duration,
    Str,
    Punct,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// Splits PromQL into the tokens the rewrite needs; anything it does not recognise becomes a
/// one-character punctuation token, left for the real parser to reject.
fn lex(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut brackets = 0usize;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' | b'`' => {
                i = string_end(bytes, i);
                Kind::Str
            }
            b'0'..=b'9' => {
                i = number_end(bytes, i);
                number_kind(&text[start..i])
            }
            b'.' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i = number_end(bytes, i);
                Kind::Number
            }
            c if c.is_ascii_alphabetic() || c == b'_' || (c == b':' && brackets == 0) => {
                // Inside brackets a colon separates a subquery's range from its step.
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || bytes[i] == b'_'
                        || (bytes[i] == b':' && brackets == 0))
                {
                    i += 1;
                }
                Kind::Ident
            }
            _ => {
                i += punct_len(&bytes[i..]);
                match c {
                    b'[' => brackets += 1,
                    b']' => brackets = brackets.saturating_sub(1),
                    _ => {}
                }
                Kind::Punct
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: i,
        });
    }
    tokens
}

fn string_end(bytes: &[u8], open: usize) -> usize {
    let quote = bytes[open];
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote != b'`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn number_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    let hex = bytes[i..].starts_with(b"0x") || bytes[i..].starts_with(b"0X");
    while i < bytes.len() {
        let c = bytes[i];
        let exponent_sign = (c == b'+' || c == b'-')
            && !hex
            && i > start
            && matches!(bytes[i - 1], b'e' | b'E')
            && bytes[start..i - 1]
                .iter()
                .all(|b| b.is_ascii_digit() || *b == b'.');
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || exponent_sign {
            i += 1;
        } else {
            break;
        }
    }
    i
}

fn number_kind(text: &str) -> Kind {
    if duration_ms(text).is_some() {
        Kind::Duration
    } else {
        Kind::Number
    }
}

/// A decimal or hexadecimal number literal.
fn number_value(text: &str) -> Option<f64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16).ok().map(|v| v as f64),
        None => text.parse().ok(),
    }
}

/// A duration literal such as `1h30m` or `500ms` in milliseconds; None if `text` is not one.
fn duration_ms(text: &str) -> Option<f64> {
    const UNITS: [(&str, f64); 7] = [
        ("ms", 1.0),
        ("s", 1e3),
        ("m", 60e3),
        ("h", 3600e3),
        ("d", 86400e3),
        ("w", 7.0 * 86400e3),
        ("y", 365.0 * 86400e3),
    ];
    let mut rest = text;
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, scale) = UNITS
            .iter()
            .find(|(u, _)| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))?;
        total += n * scale;
        rest = &rest[unit.len()..];
    }
    (!text.is_empty()).then_some(total)
}

fn punct_len(rest: &[u8]) -> usize {
    const TWO: [&[u8]; 6] = [b"==", b"!=", b"<=", b">=", b"=~", b"!~"];
    if TWO.iter().any(|op| rest.starts_with(op)) {
        return 2;
    }
    // One whole UTF-8 character, so slicing the text at token bounds stays valid.
    let first = rest[0];
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
    .min(rest.len())
}

// ---- rewriting ---------------------------------------------------------------------------

/// Keywords that may follow an operand but are not one themselves.
const INFIX_KEYWORDS: [&str; 15] = [
    "and",
    "or",
    "unless",
    "atan2",
    "bool",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "fill",
    "fill_left",
    "fill_right",
];

/// What a postfix modifier seen now would apply to.
#[derive(Debug, Clone, Copy)]
enum Target {
    None,
    /// A vector selector; the matcher text goes at `insert` (`braces`: inside `{}`, with a
    /// leading comma when `comma`).
    Selector {
        insert: usize,
        braces: bool,
        comma: bool,
    },
    Subquery,
    Other,
}

struct Edit {
    start: usize,
    end: usize,
    text: String,
}

fn apply(text: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| (e.start, e.end));
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for e in edits {
        out.push_str(&text[at..e.start]);
        out.push_str(&e.text);
        at = e.end;
    }
    out.push_str(&text[at..]);
    out
}

struct Rewriter<'a> {
    text: &'a str,
    tokens: &'a [Token],
    times: QueryTimes,
    edits: Vec<Edit>,
}

impl<'a> Rewriter<'a> {
    fn run(mut self) -> Result<Vec<Edit>, String> {
        self.translate_regexes();
        self.rewrite_trims();
        let mut target = Target::None;
        let mut modified: Option<SelectorMode> = None;
        let mut i = 0;
        while i < self.tokens.len() {
            let prev_ends_operand = i > 0 && self.ends_operand(i - 1);
            let word = self.word(i);
            if self.is_punct(i, "[") {
                let close = self.matching(i, "[", "]");
                let subquery = self.rewrite_brackets(i + 1, close)?;
                if subquery {
                    target = Target::Subquery;
                }
                i = close + 1;
                continue;
            }
            if prev_ends_operand && word.eq_ignore_ascii_case("offset") {
                i = self.rewrite_offset(i + 1)?;
                continue;
            }
            if prev_ends_operand
                && let Some(mode) = SelectorMode::from_keyword(&word.to_ascii_lowercase())
            {
                self.record_mode(i, target, mode, &mut modified)?;
                i += 1;
                continue;
            }
            if word == "info" && self.is_punct(i + 1, "(") {
                self.accept_any_info_selector(i + 1);
            }
            if self.is_punct(i, "@") {
                i = self.skip_at_operand(i + 1);
                continue;
            }
            if !prev_ends_operand && self.starts_selector(i) {
                let (next, selector) = self.selector(i);
                target = selector;
                modified = None;
                i = next;
                continue;
            }
            target = if self.is_punct(i, ")") {
                Target::Other
            } else {
                Target::None
            };
            i += 1;
        }
        Ok(self.edits)
    }

    /// Each `</` and `>/` as a comparison whose left operand records it (see the module
    /// comment). Nested trims each wrap their own left operand, so two insertions at one
    /// place are the same text and their order does not matter.
    fn rewrite_trims(&mut self) {
        for i in 0..self.tokens.len().saturating_sub(1) {
            let comparison = match () {
                _ if self.is_punct(i, "<") => "<",
                _ if self.is_punct(i, ">") => ">",
                _ => continue,
            };
            if !self.is_punct(i + 1, "/") || self.tokens[i].end != self.tokens[i + 1].start {
                continue;
            }
            let start = self.left_operand_start(i);
            self.edits.push(Edit {
                start,
                end: start,
                text: "label_replace(".into(),
            });
            self.edits.push(Edit {
                start: self.tokens[i].start,
                end: self.tokens[i + 1].end,
                text: format!(", \"{TRIM_LABEL}\", \"{comparison}/\", \"\", \"\") {comparison}"),
            });
        }
    }

    /// Where the left operand of a comparison-precedence operator at token `op` starts: after
    /// the nearest opening bracket, comma or set operator (and its `on`/`ignoring` list) at
    /// the same depth, or at the start.
    fn left_operand_start(&self, op: usize) -> usize {
        let mut depth = 0usize;
        let mut j = op;
        while j > 0 {
            j -= 1;
            if self.tokens[j].kind == Kind::Punct {
                match self.token_text(j) {
                    ")" | "]" | "}" => depth += 1,
                    "(" | "[" | "{" if depth == 0 => return self.tokens[j + 1].start,
                    "(" | "[" | "{" => depth -= 1,
                    "," if depth == 0 => return self.tokens[j + 1].start,
                    _ => {}
                }
                continue;
            }
            let word = self.word(j).to_ascii_lowercase();
            if depth == 0 && matches!(word.as_str(), "and" | "or" | "unless") {
                let mut k = j + 1;
                let matching = self.word(k).to_ascii_lowercase();
                if matches!(matching.as_str(), "on" | "ignoring") && self.is_punct(k + 1, "(") {
                    k = self.matching(k + 1, "(", ")") + 1;
                }
                return self.tokens.get(k).map_or(self.text.len(), |t| t.start);
            }
        }
        self.tokens.first().map_or(0, |t| t.start)
    }

    /// The string after each `=~` and `!~`, in Rust's regex syntax where RE2's differs.
    fn translate_regexes(&mut self) {
        for i in 1..self.tokens.len() {
            let t = self.tokens[i];
            let after_regex_op = self.is_punct(i - 1, "=~") || self.is_punct(i - 1, "!~");
            if t.kind != Kind::Str || !after_regex_op {
                continue;
            }
            let Some(pattern) = crate::gocompat::strconv::unquote(self.token_text(i)) else {
                continue;
            };
            let translated = crate::gocompat::regex::translate(&pattern);
            if translated != pattern {
                self.edits.push(Edit {
                    start: t.start,
                    end: t.end,
                    text: crate::gocompat::strconv::quote(&translated),
                });
            }
        }
    }

    fn token_text(&self, i: usize) -> &'a str {
        let t = self.tokens[i];
        &self.text[t.start..t.end]
    }

    fn word(&self, i: usize) -> &'a str {
        if self.tokens[i].kind == Kind::Ident {
            self.token_text(i)
        } else {
            ""
        }
    }

    fn is_punct(&self, i: usize, p: &str) -> bool {
        i < self.tokens.len() && self.tokens[i].kind == Kind::Punct && self.token_text(i) == p
    }

    fn ends_operand(&self, i: usize) -> bool {
        match self.tokens[i].kind {
            Kind::Number | Kind::Duration | Kind::Str => true,
            Kind::Ident => {
                let w = self.token_text(i).to_ascii_lowercase();
                !INFIX_KEYWORDS.contains(&w.as_str())
            }
            Kind::Punct => matches!(self.token_text(i), ")" | "]" | "}"),
        }
    }

    /// A metric name not called as a function, or a bare `{`.
    fn starts_selector(&self, i: usize) -> bool {
        match self.tokens[i].kind {
            Kind::Ident => !self.is_punct(i + 1, "("),
            Kind::Punct => self.token_text(i) == "{",
            _ => false,
        }
    }

    /// Skips a selector starting at `i`; returns the next token and where a matcher goes.
    fn selector(&self, i: usize) -> (usize, Target) {
        let brace = if self.is_punct(i, "{") {
            Some(i)
        } else if self.is_punct(i + 1, "{") {
            Some(i + 1)
        } else {
            None
        };
        let Some(open) = brace else {
            return (
                i + 1,
                Target::Selector {
                    insert: self.tokens[i].end,
                    braces: false,
                    comma: false,
                },
            );
        };
        let close = self.matching(open, "{", "}");
        if close >= self.tokens.len() {
            return (close, Target::None);
        }
        let comma = close > open + 1 && !self.is_punct(close - 1, ",");
        (
            close + 1,
            Target::Selector {
                insert: self.tokens[close].start,
                braces: true,
                comma,
            },
        )
    }

    /// The index of the token closing the bracket opened at `open` (or the token count).
    fn matching(&self, open: usize, opening: &str, closing: &str) -> usize {
        let mut depth = 0usize;
        for j in open..self.tokens.len() {
            if self.is_punct(j, opening) {
                depth += 1;
            } else if self.is_punct(j, closing) {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
        }
        self.tokens.len()
    }

    /// Folds the range (and subquery step) between `from` and `to`; tells whether it is a
    /// subquery.
    fn rewrite_brackets(&mut self, from: usize, to: usize) -> Result<bool, String> {
        let mut depth = 0i32;
        let mut colon = None;
        for j in from..to {
            match (self.tokens[j].kind, self.token_text(j)) {
                (Kind::Punct, "(") => depth += 1,
                (Kind::Punct, ")") => depth -= 1,
                (Kind::Punct, ":") if depth == 0 && colon.is_none() => colon = Some(j),
                _ => {}
            }
        }
        match colon {
            Some(c) => {
                self.fold_positive(from, c, "range")?;
                self.fold_positive(c + 1, to, "subquery step")?;
                Ok(true)
            }
            None => {
                self.fold_positive(from, to, "range")?;
                Ok(false)
            }
        }
    }

    /// Replaces the duration expression in `from..to` by its value, unless it already is a
    /// plain duration (or empty, as a subquery's default step).
    fn fold_positive(&mut self, from: usize, to: usize, what: &str) -> Result<(), String> {
        if from >= to || (to == from + 1 && self.tokens[from].kind == Kind::Duration) {
            return Ok(());
        }
        let seconds = self.evaluate(from, to)?;
        let ms = (seconds * 1000.0).round();
        if ms.is_nan() || ms <= 0.0 {
            return Err(format!(
                "{what} duration must be greater than 0, got {}",
                self.span_text(from, to)
            ));
        }
        self.replace(from, to, format!("{ms}ms"));
        Ok(())
    }

    /// Folds an offset's operand starting at `from`; returns the token after it.
    fn rewrite_offset(&mut self, from: usize) -> Result<usize, String> {
        let mut j = from;
        while self.is_punct(j, "+") || self.is_punct(j, "-") {
            j += 1;
        }
        if j >= self.tokens.len() {
            return Ok(j);
        }
        let plain_duration = self.tokens[j].kind == Kind::Duration && j <= from + 1;
        let end = if self.is_punct(j, "(") {
            self.matching(j, "(", ")") + 1
        } else if self.tokens[j].kind == Kind::Ident && self.is_punct(j + 1, "(") {
            self.matching(j + 1, "(", ")") + 1
        } else {
            j + 1
        };
        let end = end.min(self.tokens.len());
        if plain_duration {
            return Ok(end);
        }
        let seconds = self.evaluate(from, end)?;
        let ms = (seconds * 1000.0).round();
        if ms == 0.0 {
            // The parser refuses `offset 0ms`; no offset is the same thing.
            self.replace(from - 1, end, String::new());
        } else {
            self.replace(from, end, format!("{ms}ms"));
        }
        Ok(end)
    }

    /// `info(v, {data=~".*"})` may select with matchers that all accept the empty value,
    /// which the parser refuses for any other selector: give it a reserved non-empty one.
    fn accept_any_info_selector(&mut self, open: usize) {
        let close = self.matching(open, "(", ")");
        let mut depth = 0i32;
        for j in open + 1..close.min(self.tokens.len()) {
            match self.token_text(j) {
                "(" | "{" | "[" => depth += 1,
                ")" | "}" | "]" => depth -= 1,
                "," if depth == 0 && self.is_punct(j + 1, "{") => {
                    let brace_close = self.matching(j + 1, "{", "}");
                    if brace_close < self.tokens.len() {
                        let comma = brace_close > j + 2 && !self.is_punct(brace_close - 1, ",");
                        let at = self.tokens[brace_close].start;
                        let matcher = format!("{MODE_LABEL}=\"plain\"");
                        self.edits.push(Edit {
                            start: at,
                            end: at,
                            text: if comma {
                                format!(",{matcher}")
                            } else {
                                matcher
                            },
                        });
                    }
                    return;
                }
                _ => {}
            }
        }
    }

    /// `@ <number>` or `@ start()`/`@ end()`.
    fn skip_at_operand(&self, from: usize) -> usize {
        let mut j = from;
        while self.is_punct(j, "+") || self.is_punct(j, "-") {
            j += 1;
        }
        if self.tokens.get(j).is_some_and(|t| t.kind == Kind::Ident) && self.is_punct(j + 1, "(") {
            return self.matching(j + 1, "(", ")") + 1;
        }
        j + 1
    }

    fn record_mode(
        &mut self,
        at: usize,
        target: Target,
        mode: SelectorMode,
        modified: &mut Option<SelectorMode>,
    ) -> Result<(), String> {
        let keyword = mode.keyword();
        let Target::Selector {
            insert,
            braces,
            comma,
        } = target
        else {
            return Err(match target {
                Target::Subquery => format!("{keyword} modifier is not supported for subqueries"),
                _ => format!("{keyword} modifier not implemented"),
            });
        };
        if modified.is_some() {
            return Err("anchored and smoothed modifiers cannot be used together".into());
        }
        *modified = Some(mode);
        let matcher = format!("{MODE_LABEL}=\"{keyword}\"");
        let text = match (braces, comma) {
            (false, _) => format!("{{{matcher}}}"),
            (true, true) => format!(",{matcher}"),
            (true, false) => matcher,
        };
        self.edits.push(Edit {
            start: insert,
            end: insert,
            text,
        });
        let t = self.tokens[at];
        self.edits.push(Edit {
            start: t.start,
            end: t.end,
            text: String::new(),
        });
        Ok(())
    }

    fn span_text(&self, from: usize, to: usize) -> &'a str {
        &self.text[self.tokens[from].start..self.tokens[to - 1].end]
    }

    fn replace(&mut self, from: usize, to: usize, text: String) {
        self.edits.push(Edit {
            start: self.tokens[from].start,
            end: self.tokens[to - 1].end,
            text,
        });
    }

    /// The value in seconds of the duration expression in `from..to`.
    fn evaluate(&self, from: usize, to: usize) -> Result<f64, String> {
        let mut eval = DurationExpr {
            rewriter: self,
            pos: from,
            end: to,
            depth: 0,
        };
        let value = eval.sum()?;
        if eval.pos != to {
            return Err(format!(
                "unexpected {:?} in duration expression {:?}",
                self.token_text(eval.pos),
                self.span_text(from, to)
            ));
        }
        Ok(value)
    }
}

/// Recursive descent over a duration expression, in seconds. Precedence as in PromQL:
/// `+ -` < `* / %` < unary sign < `^` (right-associative).
struct DurationExpr<'r, 'a> {
    rewriter: &'r Rewriter<'a>,
    pos: usize,
    end: usize,
    depth: usize,
}

/// Deeper duration expressions are refused rather than risking the stack.
const MAX_DEPTH: usize = 200;

impl DurationExpr<'_, '_> {
    fn peek_punct(&self, p: &str) -> bool {
        self.pos < self.end && self.rewriter.is_punct(self.pos, p)
    }

    fn expect_punct(&mut self, p: &str) -> Result<(), String> {
        if !self.peek_punct(p) {
            return Err(format!("expected {p:?} in duration expression"));
        }
        self.pos += 1;
        Ok(())
    }

    fn sum(&mut self) -> Result<f64, String> {
        let mut value = self.product()?;
        loop {
            if self.peek_punct("+") {
                self.pos += 1;
                value += self.product()?;
            } else if self.peek_punct("-") {
                self.pos += 1;
                value -= self.product()?;
            } else {
                return Ok(value);
            }
        }
    }

    fn product(&mut self) -> Result<f64, String> {
        let mut value = self.unary()?;
        loop {
            if self.peek_punct("*") {
                self.pos += 1;
                value *= self.unary()?;
            } else if self.peek_punct("/") {
                self.pos += 1;
                let divisor = self.unary()?;
                if divisor == 0.0 {
                    return Err("division by zero in duration expression".into());
                }
                value /= divisor;
            } else if self.peek_punct("%") {
                self.pos += 1;
                let divisor = self.unary()?;
                if divisor == 0.0 {
                    return Err("modulo by zero in duration expression".into());
                }
                value %= divisor;
            } else {
                return Ok(value);
            }
        }
    }

    /// Every level of nesting passes here, so this is where depth is bounded.
    fn unary(&mut self) -> Result<f64, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("duration expression nested too deeply".into());
        }
        let value = self.signed();
        self.depth -= 1;
        value
    }

    fn signed(&mut self) -> Result<f64, String> {
        if self.peek_punct("-") {
            self.pos += 1;
            return Ok(-self.unary()?);
        }
        if self.peek_punct("+") {
            self.pos += 1;
            return self.unary();
        }
        self.power()
    }

    fn power(&mut self) -> Result<f64, String> {
        let base = self.primary()?;
        if self.peek_punct("^") {
            self.pos += 1;
            let exponent = self.unary()?;
            return Ok(base.powf(exponent));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<f64, String> {
        if self.pos >= self.end {
            return Err("unexpected end of duration expression".into());
        }
        let r = self.rewriter;
        let token = r.tokens[self.pos];
        let text = r.token_text(self.pos);
        match token.kind {
            Kind::Number => {
                self.pos += 1;
                number_value(text)
                    .ok_or_else(|| format!("bad number {text:?} in duration expression"))
            }
            Kind::Duration => {
                self.pos += 1;
                duration_ms(text)
                    .map(|ms| ms / 1000.0)
                    .ok_or_else(|| format!("bad duration {text:?}"))
            }
            Kind::Punct if text == "(" => {
                self.pos += 1;
                let v = self.sum()?;
                self.expect_punct(")")?;
                Ok(v)
            }
            Kind::Ident => self.call(text),
            _ => Err(format!("unexpected {text:?} in duration expression")),
        }
    }

    fn call(&mut self, name: &str) -> Result<f64, String> {
        self.pos += 1;
        self.expect_punct("(")?;
        let times = self.rewriter.times;
        let value = match name.to_ascii_lowercase().as_str() {
            "step" => times.step_ms as f64 / 1000.0,
            "range" => times.range_ms as f64 / 1000.0,
            f @ ("min_of" | "max_of") => {
                let a = self.sum()?;
                self.expect_punct(",")?;
                let b = self.sum()?;
                if f == "min_of" {
                    crate::gocompat::math::min(a, b)
                } else {
                    crate::gocompat::math::max(a, b)
                }
            }
            _ => return Err(format!("unknown function {name:?} in duration expression")),
        };
        self.expect_punct(")")?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_that_are_not_utf8_in_go() {
        let query =
            r#"label_replace(m, "\xff", "\xc3\xbf", "ÿ", '\377') + count_values(`\xff`, m)"#;
        // "\xc3\xbf" is UTF-8 (ÿ) in Go and the raw string is text; "\xff" and '\377' are not.
        assert_eq!(non_utf8_literals(query), ["\u{ff}", "\u{ff}"]);
    }

    #[test]
    fn operators_bound_the_depth_outside_matchers_and_strings() {
        assert_eq!(operators("up"), 0);
        assert_eq!(
            operators("sum by (job) (rate(x{a=~\"(b|c)+\"}[5m])) > 1"),
            4
        );
        assert_eq!(operators("x{a=\"1+2\", b!=\"(\"} + y"), 1);
        assert_eq!(operators(&["up"; 10].join(" or ")), 9);
    }

    fn range_query(q: &str) -> String {
        rewrite(
            q,
            QueryTimes {
                step_ms: 5000,
                range_ms: 10_000,
            },
        )
        .unwrap()
        .into_owned()
    }

    #[test]
    fn plain_queries_are_untouched() {
        for q in [
            "rate(foo[5m])",
            "sum by (job) (rate(foo{a=\"[1m]\"}[5m:1m] offset 5m))",
            "foo offset -5m",
            "foo @ start() offset 1h",
            "job:rate5m[1h]",
        ] {
            assert!(
                matches!(rewrite(q, QueryTimes::default()).unwrap(), Cow::Borrowed(_)),
                "{q}"
            );
        }
    }

    #[test]
    fn re2_regexes_are_spelled_as_the_regex_crate_reads_them() {
        assert_eq!(range_query(r#"up{job=~"a\\d"}"#), r#"up{job=~"a[0-9]"}"#);
        assert_eq!(range_query(r#"up{job!~`x{y}`}"#), r#"up{job!~"x\\{y}"}"#);
        assert_eq!(
            range_query(r#"{__name__=~"[[]"}"#),
            r#"{__name__=~"[\\[]"}"#
        );
        // Patterns whose meaning is the same are left as written.
        for q in [r#"up{job=~"api|web.*"}"#, r#"up{job="a\\d"}"#] {
            assert!(
                matches!(rewrite(q, QueryTimes::default()).unwrap(), Cow::Borrowed(_)),
                "{q}"
            );
        }
    }

    #[test]
    fn ranges_and_steps_are_folded() {
        assert_eq!(range_query("changes(x[26m+4m])"), "changes(x[1800000ms])");
        assert_eq!(range_query("changes(x[1800])"), "changes(x[1800000ms])");
        assert_eq!(
            range_query("changes(x[2m*(10+5)])"),
            "changes(x[1800000ms])"
        );
        assert_eq!(
            range_query("changes(x[30m1s-30m1s % 1m])"),
            "changes(x[1800000ms])"
        );
        assert_eq!(range_query("s(x[29s+1s:5s+5s])"), "s(x[30000ms:10000ms])");
        assert_eq!(range_query("c(x[1+(STep()-5)*2])"), "c(x[1000ms])");
        assert_eq!(
            range_query("c(x[max_of(min_of(step()+1,1h),1ms)])"),
            "c(x[6000ms])"
        );
        assert_eq!(range_query("c(x[range()])"), "c(x[10000ms])");
        assert_eq!(range_query("x[5m:]"), "x[5m:]");
    }

    #[test]
    fn offsets_take_one_operand() {
        assert_eq!(range_query("x offset 100 + 2"), "x offset 100000ms + 2");
        assert_eq!(range_query("x offset (100 + 2)"), "x offset 102000ms");
        assert_eq!(range_query("x offset -2 * 2"), "x offset -2000ms * 2");
        assert_eq!(range_query("x offset (-2 ^ 2)"), "x offset -4000ms");
        assert_eq!(
            range_query("x offset step()*0 + 1"),
            "x offset 5000ms*0 + 1"
        );
        assert_eq!(range_query("x offset (step()*0) + 1"), "x  + 1");
        assert_eq!(range_query("x offset -step()*2"), "x offset -5000ms*2");
        assert_eq!(
            range_query("x offset min_of(step(), 1s)^0"),
            "x offset 1000ms^0"
        );
        assert_eq!(
            range_query("x offset -(min_of(step(), 2s)-5)+8000"),
            "x offset 3000ms+8000"
        );
    }

    #[test]
    fn modifiers_become_reserved_matchers() {
        assert_eq!(
            range_query("increase(metric[1m] anchored)"),
            format!("increase(metric{{{MODE_LABEL}=\"anchored\"}}[1m] )")
        );
        assert_eq!(
            range_query("rate(m{a=\"b\"}[5s] smoothed)"),
            format!("rate(m{{a=\"b\",{MODE_LABEL}=\"smoothed\"}}[5s] )")
        );
        assert_eq!(
            range_query("metric offset -100 smoothed + 0"),
            format!("metric{{{MODE_LABEL}=\"smoothed\"}} offset -100000ms  + 0")
        );
        assert_eq!(
            range_query("metric @ 100 smoothed"),
            format!("metric{{{MODE_LABEL}=\"smoothed\"}} @ 100 ")
        );
        // A metric may be called `anchored`.
        assert_eq!(range_query("anchored + smoothed"), "anchored + smoothed");
    }

    #[test]
    fn info_selectors_may_match_empty_values() {
        assert_eq!(
            range_query(r#"info(m, {data=~".*"})"#),
            format!(r#"info(m, {{data=~".*",{MODE_LABEL}="plain"}})"#)
        );
        assert_eq!(range_query("info(m)"), "info(m)");
    }

    #[test]
    fn misplaced_modifiers_are_errors() {
        let err = |q| rewrite(q, QueryTimes::default()).unwrap_err();
        assert_eq!(
            err("rate(x[5m:1m] anchored)"),
            "anchored modifier is not supported for subqueries"
        );
        assert_eq!(err("(x) smoothed"), "smoothed modifier not implemented");
        assert_eq!(
            err("x[1m] anchored smoothed"),
            "anchored and smoothed modifiers cannot be used together"
        );
        assert!(err("x[0s+0s]").contains("greater than 0"));
        let deep = format!("x[{}1m{}]", "(".repeat(10_000), ")".repeat(10_000));
        assert!(err(&deep).contains("too deeply"));
        let signs = format!("x offset {}1m", "-".repeat(10_000));
        assert!(err(&signs).contains("too deeply"));
    }

    #[test]
    fn parsed_mode_is_read_back() {
        let q = range_query("rate(m[5m] smoothed)");
        let expr = promql_parser::parser::parse(&q).unwrap();
        let promql_parser::parser::Expr::Call(call) = expr else {
            panic!("not a call")
        };
        let promql_parser::parser::Expr::MatrixSelector(ms) = call.args.args[0].as_ref() else {
            panic!("not a matrix selector")
        };
        assert_eq!(selector_mode(&ms.vs), SelectorMode::Smoothed);
    }

    #[test]
    fn trims_wrap_their_left_operand_by_precedence() {
        let trim = |op: &str| format!(", \"{TRIM_LABEL}\", \"{op}/\", \"\", \"\") {op}");
        assert_eq!(
            range_query("h </ 2"),
            format!("label_replace(h {} 2", trim("<"))
        );
        // Arithmetic binds tighter; `and` looser; brackets and commas delimit.
        assert_eq!(
            range_query("x and on(a) -h * 2 >/ 1 + 1"),
            format!("x and on(a) label_replace(-h * 2 {} 1 + 1", trim(">"))
        );
        assert_eq!(
            range_query("histogram_count(h{a=\"b\"} </ 2)"),
            format!(
                "histogram_count(label_replace(h{{a=\"b\"}} {} 2)",
                trim("<")
            )
        );
        // A chain trims the result of the previous trim.
        assert_eq!(
            range_query("h </ 2 >/ 1"),
            format!(
                "label_replace(label_replace(h {} 2 {} 1",
                trim("<"),
                trim(">")
            )
        );
        // `<` and `/` apart are a comparison and a division.
        assert_eq!(range_query("a < /b/"), "a < /b/");
    }

    #[test]
    fn the_planner_reads_the_trim_back() {
        let query = range_query("h >/ on(x) f");
        let expr = promql_parser::parser::parse(&query).unwrap();
        let PromExpr::Binary(b) = expr else {
            panic!("not a binary expression: {expr:?}")
        };
        let (operand, op) = trim_operator(&b).expect("a trim");
        assert_eq!(op, BinaryOp::TrimLower);
        assert_eq!(operand.to_string(), "h");
        assert!(b.modifier.is_some());
    }
}
