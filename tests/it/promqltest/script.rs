//! Parser for Prometheus's PromQL test-script language (the `*.test` files).
//!
//! Written from `shared/promqltest/FORMAT.md` (§1–§5, §9). This module only
//! turns text into commands; loading data and evaluating queries belong to
//! the runner, and result comparison lives in `super::compare`.
//!
//! Besides the parser it offers two helpers the runner needs to reproduce
//! the harness's load behaviour: [`synthesize_nhcb`] (§3.6) and
//! [`HistogramLiteral::validate`] (§3.3, the checks storage makes).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use regex::Regex;

/// Bit pattern of Prometheus's staleness marker (FORMAT.md §3.2).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Schema number of native histograms with custom buckets (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// Upper bound on the slots one line (or one histogram's bucket span) may
/// expand to. It keeps `1x999999999999` from exhausting memory instead of
/// returning an error; the data files use at most `x10000`.
const MAX_SLOTS_PER_LINE: usize = 1_000_000;

/// A label set: `(name, value)` pairs sorted by name. `__name__` is an
/// ordinary entry.
pub type Labels = Vec<(String, String)>;

/// The staleness marker as a float.
pub fn stale_marker() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is the staleness marker (and not just any NaN).
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

// ---------------------------------------------------------------------------
// Data model
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
#[allow(dead_code)] // `name` is for messages; the runner names files itself.
pub struct Script {
    pub name: String,
    pub commands: Vec<Command>,
}

#[derive(Debug, Clone)]
pub enum Command {
    Load(Load),
    Clear,
    Eval(Eval),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// 1-based line of the `load` header.
    pub line: usize,
    pub interval_ms: i64,
    /// `load_with_nhcb`: the runner should also write [`synthesize_nhcb`]'s
    /// output (§3.6).
    pub with_nhcb: bool,
    /// One entry per distinct label set; a repeated label set replaces the
    /// earlier line completely (§3.4).
    pub series: Vec<LoadSeries>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoadSeries {
    /// Sorted by name, includes `__name__` if given.
    pub labels: Labels,
    /// Only non-empty slots; slot i is at i × interval.
    pub samples: Vec<(i64, SampleValue)>,
    /// Empty unless an `@st` line preceded the value line. Otherwise one
    /// entry per sample: the start-timestamp offset (ST = t + offset), or
    /// `None` for `_` ("no start timestamp", stored as 0).
    pub start_offsets: Vec<Option<i64>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SampleValue {
    /// The staleness marker is `f64::from_bits(STALE_NAN_BITS)`.
    Float(f64),
    Histogram(HistogramLiteral),
}

/// A `{{…}}` literal. Bucket counts are absolute per bucket; `offset` is the
/// index of the first entry of `buckets` (same for `n_offset`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramLiteral {
    pub schema: i32,
    pub sum: f64,
    pub count: f64,
    pub z_bucket: f64,
    pub z_bucket_w: f64,
    pub buckets: Vec<f64>,
    pub offset: i32,
    pub n_buckets: Vec<f64>,
    pub n_offset: i32,
    pub custom_values: Vec<f64>,
    /// `Some` only if the literal states it: `unknown`, `reset`,
    /// `not_reset` or `gauge`. Expected literals compare it only then (§6.5).
    pub counter_reset_hint: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Eval {
    /// 1-based line of the `eval` header.
    pub line: usize,
    pub expr: String,
    pub mode: EvalMode,
    pub expect: Expectations,
    pub expected: Expected,
    /// INDEX.md's heuristic: the expected output holds a histogram, or the
    /// expression names a metric that holds native histograms at this point
    /// of the script (including `load_with_nhcb` base names).
    pub touches_native_histograms: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalMode {
    /// With `expect range vector`, `at_ms` is already the directive's `to`
    /// time, which overrides the header's `at` (§5.4).
    Instant { at_ms: i64 },
    Range {
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Expectations {
    pub fail: Option<TextMatch>,
    pub warn: Vec<TextMatch>,
    pub info: Vec<TextMatch>,
    pub no_warn: bool,
    pub no_info: bool,
    pub ordered: bool,
    /// `expect range vector from t1 to t2 step s`, as `(t1, t2, s)` in ms.
    pub range_vector: Option<(i64, i64, i64)>,
    pub string: Option<String>,
}

#[derive(Debug, Clone)]
pub enum TextMatch {
    Any,
    Exact(String),
    /// Unanchored: matches if the pattern occurs anywhere.
    Regex(Regex),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// An empty list expects an empty vector or matrix.
    Series(Vec<ExpectedSeries>),
    Scalar(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedSeries {
    pub labels: Labels,
    /// `None` is `_` (no point at that step).
    pub values: Vec<Option<SampleValue>>,
}

impl TextMatch {
    pub fn matches(&self, text: &str) -> bool {
        match self {
            TextMatch::Any => true,
            TextMatch::Exact(s) => s == text,
            TextMatch::Regex(re) => re.is_match(text),
        }
    }
}

impl fmt::Display for TextMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextMatch::Any => write!(f, "<any>"),
            TextMatch::Exact(s) => write!(f, "msg: {s}"),
            TextMatch::Regex(re) => write!(f, "regex: {}", re.as_str()),
        }
    }
}

// ---------------------------------------------------------------------------
// Script structure (§1)
// ---------------------------------------------------------------------------

/// A parse failure located at a 1-based line.
struct ParseError {
    line: usize,
    msg: String,
}

/// Adapts a line-less error message into a [`ParseError`] at `line`.
fn at_line(line: usize) -> impl FnOnce(String) -> ParseError {
    move |msg| ParseError { line, msg }
}

/// Parses a whole `.test` file. Errors read `<name>:<line>: <reason>`.
pub fn parse_script(name: &str, text: &str) -> Result<Script, String> {
    let lines: Vec<&str> = text.split('\n').map(str::trim).collect();
    let mut commands = Vec::new();
    let mut tracker = NativeHistogramTracker::default();
    let mut i = 0;
    while i < lines.len() {
        if is_blank(lines[i]) {
            i += 1;
            continue;
        }
        let (mut command, next) =
            parse_command(&lines, i).map_err(|e| format!("{name}:{}: {}", e.line, e.msg))?;
        tracker.observe(&mut command);
        commands.push(command);
        i = next;
    }
    Ok(Script {
        name: name.to_string(),
        commands,
    })
}

/// Blank and whole-line comment lines are equivalent: both end a block (§1.3).
fn is_blank(line: &str) -> bool {
    line.is_empty() || line.starts_with('#')
}

/// Index of the first blank/comment line at or after `from` (or the end).
fn block_end(lines: &[&str], from: usize) -> usize {
    (from..lines.len())
        .find(|&j| is_blank(lines[j]))
        .unwrap_or(lines.len())
}

/// Parses the command starting at `lines[i]`; returns it and the index of
/// the line after it.
fn parse_command(lines: &[&str], i: usize) -> Result<(Command, usize), ParseError> {
    let header = lines[i];
    // Dispatch is case-insensitive on the first word; the header itself is
    // then matched case-sensitively (§1.5).
    let (word, rest) = split_word(header);
    let word = word.to_lowercase();
    if word == "clear" {
        if !rest.trim().is_empty() {
            return Err(at_line(i + 1)(format!(
                "unexpected text after clear: {rest:?}"
            )));
        }
        return Ok((Command::Clear, i + 1));
    }
    if word.starts_with("load") {
        let end = block_end(lines, i + 1);
        return Ok((Command::Load(parse_load(lines, i, end)?), end));
    }
    if word.starts_with("eval") {
        let (eval, next) = parse_eval(lines, i)?;
        return Ok((Command::Eval(eval), next));
    }
    Err(at_line(i + 1)(format!("unknown command {header:?}")))
}

/// Splits off the first whitespace-delimited word; the rest keeps its
/// leading whitespace.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(end) => (&s[..end], &s[end..]),
        None => (s, ""),
    }
}

/// Consumes `word` as the next whitespace-delimited word of `s`.
fn expect_word<'a>(s: &'a str, word: &str) -> Result<&'a str, String> {
    let (got, rest) = split_word(s);
    if got == word {
        Ok(rest)
    } else {
        Err(format!("expected {word:?}, found {got:?}"))
    }
}

// ---------------------------------------------------------------------------
// Durations (§2, §3.5)
// ---------------------------------------------------------------------------

const MS_PER_DAY: i64 = 86_400_000;

/// Duration units in the order they must appear, with their length in ms.
/// `ms` is tried before `m` when matching.
const DURATION_UNITS: [(&str, i64); 7] = [
    ("y", 365 * MS_PER_DAY),
    ("w", 7 * MS_PER_DAY),
    ("d", MS_PER_DAY),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a header time or duration token: `<digits><unit>` groups in
/// strictly decreasing unit order, or a bare `0`. Returns milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Ok(0);
    }
    match scan_duration(s)? {
        (ms, "") => Ok(ms),
        _ => Err(format!("invalid duration {s:?}")),
    }
}

/// Matches the unit at the front of `s`: `(rank in DURATION_UNITS, byte length)`.
fn match_unit(s: &str) -> Option<(usize, usize)> {
    if s.starts_with("ms") {
        return Some((6, 2));
    }
    let first = s.chars().next()?;
    DURATION_UNITS[..6]
        .iter()
        .position(|(unit, _)| unit.starts_with(first))
        .map(|rank| (rank, 1))
}

/// Reads as many `<digits><unit>` groups as possible from the front of `s`.
/// Needs at least one group; returns the total and the unread rest.
fn scan_duration(s: &str) -> Result<(i64, &str), String> {
    let mut total: i64 = 0;
    let mut last_rank: Option<usize> = None;
    let mut rest = s;
    loop {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            break;
        }
        let Some((rank, unit_len)) = match_unit(&rest[digits..]) else {
            break;
        };
        if last_rank.is_some_and(|last| rank <= last) {
            return Err(format!("duration {s:?} has units out of order or repeated"));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration {s:?} is too large"))?;
        total = n
            .checked_mul(DURATION_UNITS[rank].1)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("duration {s:?} is too large"))?;
        rest = &rest[digits + unit_len..];
        last_rank = Some(rank);
    }
    if last_rank.is_none() {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok((total, rest))
}

/// An unsigned `@st` duration at the front of `s`; unlike header durations
/// it may be a bare `0` followed by more text (as in `0-1mx4`).
fn scan_offset_magnitude(s: &str) -> Result<(i64, &str), String> {
    match scan_duration(s) {
        Ok(found) => Ok(found),
        Err(_) if s.starts_with('0') && !s[1..].starts_with(|c: char| c.is_ascii_digit()) => {
            Ok((0, &s[1..]))
        }
        Err(e) => Err(e),
    }
}

/// A signed `@st` duration at the front of `s`.
fn scan_signed_offset(s: &str) -> Result<(i64, &str), String> {
    let (negative, body) = split_sign(s);
    let (ms, rest) = scan_offset_magnitude(body)?;
    Ok((if negative { -ms } else { ms }, rest))
}

// ---------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------

/// Whether `s` is an unsigned decimal literal: digits with an optional
/// fraction and exponent, at least one mantissa digit.
fn is_unsigned_decimal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp_digits == 0 {
            return false;
        }
        i += exp_digits;
    }
    i == b.len()
}

/// Splits an optional leading sign off `s`: `(is_negative, rest)`.
fn split_sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}

/// A number token in a value sequence (§3.2): signed decimal, or `Inf` /
/// `NaN` in any case. Hex is deliberately not accepted here.
pub fn parse_series_number(s: &str) -> Option<f64> {
    let (negative, body) = split_sign(s);
    let magnitude = if body.eq_ignore_ascii_case("inf") {
        f64::INFINITY
    } else if body.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    } else if is_unsigned_decimal(body) {
        body.parse().ok()?
    } else {
        return None;
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// Whether the token is an `Inf`/`NaN` spelling rather than digits.
fn is_inf_or_nan_token(s: &str) -> bool {
    let (_, body) = split_sign(s);
    body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("nan")
}

/// An expected-scalar line (§5.2 rule 5): like a series number, plus `0x`
/// hexadecimal integers.
pub fn parse_scalar_literal(s: &str) -> Option<f64> {
    let (negative, body) = split_sign(s);
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        // from_str_radix would accept a sign after `0x`; Go's parser does not.
        if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let magnitude = u64::from_str_radix(hex, 16).ok()? as f64;
        return Some(if negative { -magnitude } else { magnitude });
    }
    parse_series_number(s)
}

/// The `K` of `xK`: a plain decimal integer, bounded so expansion can't
/// exhaust memory.
fn parse_repeat_count(s: &str) -> Result<usize, String> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("invalid repeat count {s:?}"));
    }
    match s.parse::<usize>() {
        Ok(k) if k < MAX_SLOTS_PER_LINE => Ok(k),
        _ => Err(format!("repeat count {s} is too large")),
    }
}

// ---------------------------------------------------------------------------
// String literals and label sets (§3.1)
// ---------------------------------------------------------------------------

/// Reads a PromQL string literal (`"…"`, `'…'` or `` `…` ``) at the front of
/// `s`; returns its value and the rest.
fn parse_string_literal(s: &str) -> Result<(String, &str), String> {
    match s.chars().next() {
        Some('`') => {
            let body = &s[1..];
            let end = body.find('`').ok_or("unterminated raw string")?;
            Ok((body[..end].to_string(), &body[end + 1..]))
        }
        Some(quote @ ('"' | '\'')) => parse_escaped_string(&s[1..], quote),
        _ => Err(format!("expected a string literal at {s:?}")),
    }
}

/// The body of a `"`- or `'`-quoted string, with Go-style escapes. Escapes
/// build bytes (`\xc5` is one byte), so the result is checked as UTF-8.
fn parse_escaped_string(body: &str, quote: char) -> Result<(String, &str), String> {
    let mut out: Vec<u8> = Vec::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            let value = String::from_utf8(out).map_err(|_| "string is not valid UTF-8")?;
            return Ok((value, &body[i + 1..]));
        }
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let (_, e) = chars.next().ok_or("unterminated escape")?;
        match e {
            'a' => out.push(0x07),
            'b' => out.push(0x08),
            'f' => out.push(0x0c),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(0x0b),
            '\\' | '\'' | '"' => out.push(e as u8),
            'x' => out.push(read_radix_escape(&mut chars, 2, 16)? as u8),
            'u' | 'U' => {
                let width = if e == 'u' { 4 } else { 8 };
                let code = read_radix_escape(&mut chars, width, 16)?;
                let ch = char::from_u32(code).ok_or("invalid unicode escape")?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            '0'..='7' => {
                let rest = read_radix_escape(&mut chars, 2, 8)?;
                let code = (e as u32 - '0' as u32) * 64 + rest;
                out.push(u8::try_from(code).map_err(|_| "octal escape out of range")?);
            }
            other => return Err(format!("unknown escape \\{other}")),
        }
    }
    Err("unterminated string".to_string())
}

/// Reads exactly `width` digits of `radix` from an escape sequence.
fn read_radix_escape(
    chars: &mut std::str::CharIndices<'_>,
    width: usize,
    radix: u32,
) -> Result<u32, String> {
    let mut value = 0u32;
    for _ in 0..width {
        let (_, c) = chars.next().ok_or("truncated escape")?;
        let digit = c.to_digit(radix).ok_or("invalid digit in escape")?;
        value = value * radix + digit;
    }
    Ok(value)
}

fn is_metric_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_metric_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

fn is_label_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_label_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Length of the identifier at the front of `s`.
fn identifier_len(s: &str, start: fn(u8) -> bool, rest: fn(u8) -> bool) -> usize {
    match s.as_bytes().first() {
        Some(&c) if start(c) => 1 + s.as_bytes()[1..].iter().take_while(|&&c| rest(c)).count(),
        _ => 0,
    }
}

/// Parses the label set at the front of a series line (§3.1): `name`,
/// `name{…}` or `{…}` with only `=` matchers. Returns the sorted labels and
/// the text after the closing brace (or name).
pub fn parse_label_set(line: &str) -> Result<(Labels, &str), String> {
    let mut labels: Labels = Vec::new();
    let name_len = identifier_len(line, is_metric_name_start, is_metric_name_char);
    if name_len > 0 {
        labels.push(("__name__".to_string(), line[..name_len].to_string()));
    }
    let mut rest = &line[name_len..];
    // Braces must follow the name directly: `name {{…}}` is a name followed
    // by a histogram value, not a label set.
    if rest.starts_with('{') && !rest.starts_with("{{") {
        rest = parse_braces(&rest[1..], &mut labels)?;
    } else if name_len == 0 {
        return Err(format!("expected a metric name or '{{' at {line:?}"));
    }
    labels.sort();
    if let Some(w) = labels.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("label {:?} given twice", w[0].0));
    }
    Ok((labels, rest))
}

/// Parses `a="x", b='y', …}` (after the `{`), appending to `labels`.
/// Returns the text after `}`.
fn parse_braces<'a>(mut s: &'a str, labels: &mut Labels) -> Result<&'a str, String> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let (name, quoted, after_name) = parse_label_name(s)?;
        let after_name = after_name.trim_start();
        if let Some(value_text) = after_name.strip_prefix('=') {
            if value_text.starts_with(['=', '~']) {
                return Err("only '=' matchers are allowed in a series label set".into());
            }
            let (value, rest) = parse_string_literal(value_text.trim_start())?;
            labels.push((name, value));
            s = rest;
        } else if quoted {
            // PromQL 3's `{"metric.name", …}` form: a bare quoted name.
            labels.push(("__name__".to_string(), name));
            s = after_name;
        } else {
            return Err(format!("expected '=' after label name {name:?}"));
        }
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err("expected ',' or '}' in label set".into());
        }
    }
}

/// A label name: identifier or quoted string. Returns `(name, was_quoted, rest)`.
fn parse_label_name(s: &str) -> Result<(String, bool, &str), String> {
    if s.starts_with(['"', '\'', '`']) {
        let (name, rest) = parse_string_literal(s)?;
        return Ok((name, true, rest));
    }
    let len = identifier_len(s, is_label_name_start, is_label_name_char);
    if len == 0 {
        let shown: String = s.chars().take(20).collect();
        return Err(format!("expected a label name at {shown:?}"));
    }
    Ok((s[..len].to_string(), false, &s[len..]))
}

fn label_value<'a>(labels: &'a [(String, String)], name: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Formats a label set the way the files write it: `name{a="x"}` or `{a="x"}`.
pub fn format_labels(labels: &[(String, String)]) -> String {
    let name = label_value(labels, "__name__").unwrap_or("");
    let rest: Vec<String> = labels
        .iter()
        .filter(|(n, _)| n != "__name__")
        .map(|(n, v)| format!("{n}={v:?}"))
        .collect();
    if rest.is_empty() && !name.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", rest.join(", "))
    }
}

// ---------------------------------------------------------------------------
// Value sequences (§3.2)
// ---------------------------------------------------------------------------

/// One slot per position; `None` is an empty slot.
type Slots = Vec<Option<SampleValue>>;

/// Per-slot start-timestamp offsets of an `@st` line.
type Offsets = Vec<Option<i64>>;

/// Splits a value sequence into items at whitespace, keeping each `{{…}}`
/// (which may contain spaces) inside its item.
fn split_items(s: &str) -> Result<Vec<&str>, String> {
    let bytes = s.as_bytes();
    let mut items = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            if bytes[i..].starts_with(b"{{") {
                let close =
                    find_bytes(&bytes[i..], b"}}").ok_or("unterminated histogram literal '{{'")?;
                i += close + 2;
            } else {
                i += 1;
            }
        }
        items.push(&s[start..i]);
    }
    Ok(items)
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses the value sequence after a label set. The label set must be
/// separated from it by whitespace.
pub fn parse_value_sequence(s: &str) -> Result<Slots, String> {
    if !s.is_empty() && !s.starts_with(|c: char| c.is_ascii_whitespace()) {
        return Err(format!(
            "expected whitespace after the label set, found {s:?}"
        ));
    }
    let mut slots = Vec::new();
    for item in split_items(s)? {
        slots.extend(parse_value_item(item)?);
        if slots.len() > MAX_SLOTS_PER_LINE {
            return Err("too many values on one line".into());
        }
    }
    Ok(slots)
}

/// Expands one item of a value sequence into its slots.
fn parse_value_item(item: &str) -> Result<Slots, String> {
    if item.starts_with("{{") {
        return parse_histogram_item(item);
    }
    if item == "_" {
        return Ok(vec![None]);
    }
    if let Some(k) = item.strip_prefix("_x") {
        return Ok(vec![None; parse_repeat_count(k)?]);
    }
    if item == "stale" {
        return Ok(vec![Some(SampleValue::Float(stale_marker()))]);
    }
    match item.split_once('x') {
        None => parse_series_number(item)
            .map(|v| vec![Some(SampleValue::Float(v))])
            .ok_or_else(|| format!("invalid value {item:?}")),
        Some((head, k)) => expand_float(item, head, parse_repeat_count(k)?),
    }
}

/// `NxK` (K+1 copies) or `N±DxK` (K+1 terms, accumulated like the harness).
fn expand_float(item: &str, head: &str, k: usize) -> Result<Slots, String> {
    if let Some(v) = parse_series_number(head) {
        // The harness reads `Infx3`/`NaNx3` as one word, so it is an error.
        if is_inf_or_nan_token(head) {
            return Err(format!("{item:?}: Inf/NaN cannot be repeated with xK"));
        }
        return Ok(vec![Some(SampleValue::Float(v)); k + 1]);
    }
    let (start, delta) =
        split_progression(head).ok_or_else(|| format!("invalid value {item:?}"))?;
    let mut current = start;
    let mut slots = Vec::with_capacity(k + 1);
    for _ in 0..=k {
        slots.push(Some(SampleValue::Float(current)));
        current += delta;
    }
    Ok(slots)
}

/// Splits `N+D` / `N-D` into `(N, ±D)`. D must be a plain unsigned number;
/// a sign right after an exponent `e` belongs to N.
fn split_progression(head: &str) -> Option<(f64, f64)> {
    let bytes = head.as_bytes();
    (1..bytes.len())
        .filter(|&i| matches!(bytes[i], b'+' | b'-') && !matches!(bytes[i - 1], b'e' | b'E'))
        .find_map(|i| {
            let start = parse_series_number(&head[..i])?;
            let delta_text = &head[i + 1..];
            if !is_unsigned_decimal(delta_text) {
                return None;
            }
            let delta: f64 = delta_text.parse().ok()?;
            Some((start, if bytes[i] == b'-' { -delta } else { delta }))
        })
}

// ---------------------------------------------------------------------------
// Native histogram literals (§3.3)
// ---------------------------------------------------------------------------

/// `{{H}}`, `{{H}}xK`, or `{{H}}±{{I}}xK`.
fn parse_histogram_item(item: &str) -> Result<Slots, String> {
    let (base, rest) = take_histogram(item)?;
    if rest.is_empty() {
        return Ok(vec![Some(SampleValue::Histogram(base))]);
    }
    if let Some(k) = rest.strip_prefix('x') {
        let k = parse_repeat_count(k)?;
        return Ok(vec![Some(SampleValue::Histogram(base)); k + 1]);
    }
    let (sign, rest) = match rest.as_bytes()[0] {
        b'+' => (1.0, &rest[1..]),
        b'-' => (-1.0, &rest[1..]),
        _ => return Err(format!("unexpected {rest:?} after histogram literal")),
    };
    let (increment, rest) = take_histogram(rest)?;
    let k = rest
        .strip_prefix('x')
        .ok_or_else(|| format!("histogram progression {item:?} needs xK"))?;
    let k = parse_repeat_count(k)?;
    let mut current = base;
    let mut slots = Vec::with_capacity(k + 1);
    for j in 0..=k {
        // The last sum is never used, so it is not computed.
        let next = if j < k {
            Some(combine_histograms(&current, &increment, sign)?)
        } else {
            None
        };
        slots.push(Some(SampleValue::Histogram(current)));
        match next {
            Some(n) => current = n,
            None => break,
        }
    }
    Ok(slots)
}

/// Reads `{{…}}` at the front of `s`; returns the literal and the rest.
fn take_histogram(s: &str) -> Result<(HistogramLiteral, &str), String> {
    let body = s
        .strip_prefix("{{")
        .ok_or_else(|| format!("expected '{{{{' at {s:?}"))?;
    let close = body.find("}}").ok_or("unterminated histogram literal")?;
    Ok((parse_histogram_body(&body[..close])?, &body[close + 2..]))
}

/// A histogram field value: a single token or the inside of `[…]`.
enum FieldValue<'a> {
    Scalar(&'a str),
    List(&'a str),
}

/// Parses the `key:value` pairs between `{{` and `}}`.
pub fn parse_histogram_body(body: &str) -> Result<HistogramLiteral, String> {
    let mut h = HistogramLiteral::default();
    let mut seen = HashSet::new();
    let mut rest = body.trim_start();
    while !rest.is_empty() {
        let colon = rest
            .find(':')
            .ok_or_else(|| format!("expected key:value in histogram at {rest:?}"))?;
        let key = &rest[..colon];
        if key.is_empty() || !key.bytes().all(|c| c.is_ascii_lowercase() || c == b'_') {
            return Err(format!("invalid histogram key {key:?}"));
        }
        if !seen.insert(key) {
            return Err(format!("histogram key {key:?} given twice"));
        }
        let (value, remaining) = split_field_value(rest[colon + 1..].trim_start())?;
        set_histogram_field(&mut h, key, value)?;
        rest = remaining.trim_start();
    }
    Ok(h)
}

/// Splits the value of one histogram field from the text after it.
fn split_field_value(s: &str) -> Result<(FieldValue<'_>, &str), String> {
    if let Some(list) = s.strip_prefix('[') {
        let close = list.find(']').ok_or("unterminated '[' in histogram")?;
        let rest = &list[close + 1..];
        if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
            return Err(format!(
                "expected whitespace after ']' in histogram, found {rest:?}"
            ));
        }
        return Ok((FieldValue::List(&list[..close]), rest));
    }
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    Ok((FieldValue::Scalar(&s[..end]), &s[end..]))
}

fn set_histogram_field(
    h: &mut HistogramLiteral,
    key: &str,
    value: FieldValue<'_>,
) -> Result<(), String> {
    match (key, value) {
        ("schema", FieldValue::Scalar(v)) => h.schema = parse_int_field(key, v)?,
        ("offset", FieldValue::Scalar(v)) => h.offset = parse_int_field(key, v)?,
        ("n_offset", FieldValue::Scalar(v)) => h.n_offset = parse_int_field(key, v)?,
        ("sum", FieldValue::Scalar(v)) => h.sum = parse_float_field(key, v)?,
        ("count", FieldValue::Scalar(v)) => h.count = parse_float_field(key, v)?,
        ("z_bucket", FieldValue::Scalar(v)) => h.z_bucket = parse_float_field(key, v)?,
        ("z_bucket_w", FieldValue::Scalar(v)) => h.z_bucket_w = parse_float_field(key, v)?,
        ("buckets", FieldValue::List(v)) => h.buckets = parse_float_list(key, v)?,
        ("n_buckets", FieldValue::List(v)) => h.n_buckets = parse_float_list(key, v)?,
        ("custom_values", FieldValue::List(v)) => h.custom_values = parse_float_list(key, v)?,
        ("counter_reset_hint", FieldValue::Scalar(v)) => {
            if !matches!(v, "unknown" | "reset" | "not_reset" | "gauge") {
                return Err(format!("invalid counter_reset_hint {v:?}"));
            }
            h.counter_reset_hint = Some(v.to_string());
        }
        (
            "schema" | "offset" | "n_offset" | "sum" | "count" | "z_bucket" | "z_bucket_w"
            | "counter_reset_hint",
            FieldValue::List(_),
        ) => {
            return Err(format!(
                "histogram key {key:?} takes a single value, not a list"
            ));
        }
        ("buckets" | "n_buckets" | "custom_values", FieldValue::Scalar(_)) => {
            return Err(format!("histogram key {key:?} takes a [list]"));
        }
        _ => return Err(format!("unknown histogram key {key:?}")),
    }
    Ok(())
}

fn parse_int_field(key: &str, v: &str) -> Result<i32, String> {
    v.parse()
        .map_err(|_| format!("histogram {key} must be an integer, got {v:?}"))
}

fn parse_float_field(key: &str, v: &str) -> Result<f64, String> {
    parse_series_number(v).ok_or_else(|| format!("histogram {key} must be a number, got {v:?}"))
}

fn parse_float_list(key: &str, v: &str) -> Result<Vec<f64>, String> {
    v.split_whitespace()
        .map(|item| parse_float_field(key, item))
        .collect()
}

impl HistogramLiteral {
    pub fn is_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// Positive buckets keyed by absolute index (offset applied).
    pub fn positive_buckets(&self) -> BTreeMap<i64, f64> {
        index_buckets(&self.buckets, self.offset)
    }

    /// Negative buckets keyed by absolute index (n_offset applied).
    pub fn negative_buckets(&self) -> BTreeMap<i64, f64> {
        index_buckets(&self.n_buckets, self.n_offset)
    }

    /// The structural checks storage makes when appending (§3.3); a runner
    /// should fail the load when this fails.
    pub fn validate(&self) -> Result<(), String> {
        let mut counts = [self.count, self.z_bucket]
            .into_iter()
            .chain(self.buckets.iter().copied())
            .chain(self.n_buckets.iter().copied());
        if counts.any(|c| c < 0.0) {
            return Err("histogram has a negative count".into());
        }
        if self.z_bucket_w < 0.0 {
            return Err("histogram has a negative zero-bucket width".into());
        }
        if self.is_custom_buckets() {
            self.validate_custom()
        } else if (-4..=8).contains(&self.schema) {
            if !self.custom_values.is_empty() {
                return Err("custom_values are only allowed with schema -53".into());
            }
            Ok(())
        } else {
            Err(format!("unknown histogram schema {}", self.schema))
        }
    }

    fn validate_custom(&self) -> Result<(), String> {
        if self.n_buckets.iter().any(|&c| c != 0.0)
            || self.z_bucket != 0.0
            || self.z_bucket_w != 0.0
        {
            return Err("custom-bucket histograms cannot have negative or zero buckets".into());
        }
        let bounds = &self.custom_values;
        if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err("custom_values must be finite and strictly ascending".into());
        }
        let last_index = i64::from(self.offset) + self.buckets.len() as i64 - 1;
        if self.offset < 0 || (!self.buckets.is_empty() && last_index > bounds.len() as i64) {
            return Err("custom-bucket histogram has buckets beyond its custom_values".into());
        }
        Ok(())
    }
}

fn index_buckets(counts: &[f64], offset: i32) -> BTreeMap<i64, f64> {
    counts
        .iter()
        .enumerate()
        .map(|(i, &c)| (i64::from(offset) + i as i64, c))
        .collect()
}

/// `base + sign × inc` at base's resolution (§3.3): the increment's buckets
/// are merged down to base's schema, which therefore must not be finer.
fn combine_histograms(
    base: &HistogramLiteral,
    inc: &HistogramLiteral,
    sign: f64,
) -> Result<HistogramLiteral, String> {
    let schema_delta = schema_delta(base, inc)?;
    let mut pos = base.positive_buckets();
    let mut neg = base.negative_buckets();
    add_reduced(&mut pos, &inc.positive_buckets(), schema_delta, sign);
    add_reduced(&mut neg, &inc.negative_buckets(), schema_delta, sign);
    let mut z_bucket = base.z_bucket + sign * inc.z_bucket;
    let z_bucket_w = base.z_bucket_w.max(inc.z_bucket_w);
    if !base.is_custom_buckets() {
        // Buckets that now lie inside the wider zero bucket move into it.
        z_bucket += fold_into_zero_bucket(&mut pos, base.schema, z_bucket_w);
        z_bucket += fold_into_zero_bucket(&mut neg, base.schema, z_bucket_w);
    }
    let (buckets, offset) = dense_buckets(&pos)?;
    let (n_buckets, n_offset) = dense_buckets(&neg)?;
    Ok(HistogramLiteral {
        schema: base.schema,
        sum: base.sum + sign * inc.sum,
        count: base.count + sign * inc.count,
        z_bucket,
        z_bucket_w,
        buckets,
        offset,
        n_buckets,
        n_offset,
        custom_values: base.custom_values.clone(),
        counter_reset_hint: combined_hint(&base.counter_reset_hint, &inc.counter_reset_hint),
    })
}

/// How many schema steps the increment must be coarsened by.
fn schema_delta(base: &HistogramLiteral, inc: &HistogramLiteral) -> Result<u32, String> {
    if base.is_custom_buckets() || inc.is_custom_buckets() {
        if base.schema != inc.schema || base.custom_values != inc.custom_values {
            return Err(
                "custom-bucket histograms can only be combined with identical custom_values".into(),
            );
        }
        return Ok(0);
    }
    u32::try_from(inc.schema - base.schema).map_err(|_| {
        format!(
            "the increment's schema {} must not be lower than the base's schema {}",
            inc.schema, base.schema
        )
    })
}

/// Adds `sign × inc` into `target`, mapping each index of a schema that is
/// `delta` steps finer onto the coarser bucket containing it. Bucket i at
/// schema s covers (b^(i−1), b^i]; at s−delta that is ⌈i / 2^delta⌉.
fn add_reduced(target: &mut BTreeMap<i64, f64>, inc: &BTreeMap<i64, f64>, delta: u32, sign: f64) {
    for (&index, &count) in inc {
        let coarse = ((index - 1) >> delta) + 1;
        *target.entry(coarse).or_insert(0.0) += sign * count;
    }
}

/// Removes the buckets whose upper bound is within the zero-bucket width;
/// returns their total count.
fn fold_into_zero_bucket(buckets: &mut BTreeMap<i64, f64>, schema: i32, width: f64) -> f64 {
    if width <= 0.0 {
        return 0.0;
    }
    let step = (-f64::from(schema)).exp2();
    let inside: Vec<i64> = buckets
        .keys()
        .copied()
        .filter(|&i| (i as f64 * step).exp2() <= width)
        .collect();
    inside.iter().filter_map(|i| buckets.remove(i)).sum()
}

/// A dense bucket vector (gaps filled with 0) and its starting offset.
fn dense_buckets(map: &BTreeMap<i64, f64>) -> Result<(Vec<f64>, i32), String> {
    let (Some((&first, _)), Some((&last, _))) = (map.first_key_value(), map.last_key_value())
    else {
        return Ok((Vec::new(), 0));
    };
    let offset = i32::try_from(first).map_err(|_| "bucket index out of range")?;
    if last - first >= MAX_SLOTS_PER_LINE as i64 {
        return Err("histogram bucket span is too large".into());
    }
    let counts = (first..=last)
        .map(|i| map.get(&i).copied().unwrap_or(0.0))
        .collect();
    Ok((counts, offset))
}

/// Hint of a sum: equal hints stay, a gauge makes a gauge, otherwise unknown.
fn combined_hint(a: &Option<String>, b: &Option<String>) -> Option<String> {
    if a == b {
        a.clone()
    } else if a.as_deref() == Some("gauge") || b.as_deref() == Some("gauge") {
        Some("gauge".to_string())
    } else {
        None
    }
}

/// Formats a float the way the files write values (`+Inf`, `NaN`, `stale`).
pub fn format_float(v: f64) -> String {
    if is_stale_marker(v) {
        "stale".to_string()
    } else if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        // Debug switches to exponent notation for extreme magnitudes.
        let s = format!("{v:?}");
        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
    }
}

fn format_float_list(values: &[f64]) -> String {
    values
        .iter()
        .map(|&v| format_float(v))
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Display for HistogramLiteral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![format!("schema:{}", self.schema)];
        parts.push(format!("count:{}", format_float(self.count)));
        parts.push(format!("sum:{}", format_float(self.sum)));
        if self.z_bucket != 0.0 || self.z_bucket_w != 0.0 {
            parts.push(format!("z_bucket:{}", format_float(self.z_bucket)));
            parts.push(format!("z_bucket_w:{}", format_float(self.z_bucket_w)));
        }
        if !self.buckets.is_empty() {
            parts.push(format!("buckets:[{}]", format_float_list(&self.buckets)));
            parts.push(format!("offset:{}", self.offset));
        }
        if !self.n_buckets.is_empty() {
            parts.push(format!(
                "n_buckets:[{}]",
                format_float_list(&self.n_buckets)
            ));
            parts.push(format!("n_offset:{}", self.n_offset));
        }
        if !self.custom_values.is_empty() {
            parts.push(format!(
                "custom_values:[{}]",
                format_float_list(&self.custom_values)
            ));
        }
        if let Some(hint) = &self.counter_reset_hint {
            parts.push(format!("counter_reset_hint:{hint}"));
        }
        write!(f, "{{{{{}}}}}", parts.join(" "))
    }
}

impl fmt::Display for SampleValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SampleValue::Float(v) => f.write_str(&format_float(*v)),
            SampleValue::Histogram(h) => h.fmt(f),
        }
    }
}

// ---------------------------------------------------------------------------
// load blocks (§3)
// ---------------------------------------------------------------------------

fn parse_load(lines: &[&str], header: usize, end: usize) -> Result<Load, ParseError> {
    let (with_nhcb, interval_ms) = parse_load_header(lines[header]).map_err(at_line(header + 1))?;
    let mut builder = LoadBuilder::new(interval_ms);
    for (idx, text) in lines.iter().enumerate().take(end).skip(header + 1) {
        builder.add_line(text).map_err(at_line(idx + 1))?;
    }
    let series = builder.finish().map_err(at_line(end))?;
    Ok(Load {
        line: header + 1,
        interval_ms,
        with_nhcb,
        series,
    })
}

/// `load <interval>` or `load_with_nhcb <interval>`.
fn parse_load_header(line: &str) -> Result<(bool, i64), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let with_nhcb = match words.first() {
        Some(&"load") => false,
        Some(&"load_with_nhcb") => true,
        _ => return Err(format!("invalid load header {line:?}")),
    };
    match words.as_slice() {
        [_, interval] => Ok((with_nhcb, parse_duration(interval)?)),
        _ => Err(format!("expected `{} <interval>`, got {line:?}", words[0])),
    }
}

/// Accumulates the series of one load block.
struct LoadBuilder {
    interval_ms: i64,
    series: Vec<LoadSeries>,
    /// Position of each label set in `series`, so a repeat replaces it.
    index: HashMap<Labels, usize>,
    /// An `@st` line waiting for its value line.
    pending_st: Option<(Labels, Offsets)>,
}

impl LoadBuilder {
    fn new(interval_ms: i64) -> Self {
        LoadBuilder {
            interval_ms,
            series: Vec::new(),
            index: HashMap::new(),
            pending_st: None,
        }
    }

    fn add_line(&mut self, text: &str) -> Result<(), String> {
        let (labels, rest) = parse_label_set(text)?;
        if let Some(st_items) = strip_st_marker(rest) {
            if self.pending_st.is_some() {
                return Err("an @st line must be followed by its value line".into());
            }
            self.pending_st = Some((labels, parse_st_sequence(st_items)?));
            return Ok(());
        }
        let slots = parse_value_sequence(rest)?;
        let offsets = self.take_offsets(&labels, slots.len())?;
        let series = self.build_series(labels, slots, offsets)?;
        self.insert(series);
        Ok(())
    }

    /// The pending `@st` offsets, which must belong to this value line.
    fn take_offsets(
        &mut self,
        labels: &Labels,
        slot_count: usize,
    ) -> Result<Option<Offsets>, String> {
        let Some((st_labels, offsets)) = self.pending_st.take() else {
            return Ok(None);
        };
        if &st_labels != labels {
            return Err(format!(
                "@st line for {} is followed by the value line of {}",
                format_labels(&st_labels),
                format_labels(labels)
            ));
        }
        if offsets.len() != slot_count {
            return Err(format!(
                "@st line has {} slots but the value line has {slot_count}",
                offsets.len()
            ));
        }
        Ok(Some(offsets))
    }

    fn build_series(
        &self,
        labels: Labels,
        slots: Slots,
        offsets: Option<Offsets>,
    ) -> Result<LoadSeries, String> {
        let mut samples = Vec::new();
        let mut start_offsets = Vec::new();
        for (i, slot) in slots.into_iter().enumerate() {
            let Some(value) = slot else { continue };
            let t = (i as i64)
                .checked_mul(self.interval_ms)
                .ok_or("sample timestamp overflows")?;
            samples.push((t, value));
            if let Some(offsets) = &offsets {
                start_offsets.push(offsets[i]);
            }
        }
        Ok(LoadSeries {
            labels,
            samples,
            start_offsets,
        })
    }

    /// The later line for a label set replaces the earlier one (§3.4).
    fn insert(&mut self, series: LoadSeries) {
        match self.index.get(&series.labels) {
            Some(&pos) => self.series[pos] = series,
            None => {
                self.index.insert(series.labels.clone(), self.series.len());
                self.series.push(series);
            }
        }
    }

    fn finish(self) -> Result<Vec<LoadSeries>, String> {
        if let Some((labels, _)) = self.pending_st {
            return Err(format!(
                "@st line for {} has no value line",
                format_labels(&labels)
            ));
        }
        Ok(self.series)
    }
}

/// If the text after a label set starts with `@st`, the items after it.
fn strip_st_marker(rest: &str) -> Option<&str> {
    let items = rest.strip_prefix("@st")?;
    (items.is_empty() || items.starts_with(char::is_whitespace)).then_some(items)
}

/// Parses the items of an `@st` line (§3.5) into per-slot offsets.
fn parse_st_sequence(s: &str) -> Result<Offsets, String> {
    let mut slots = Vec::new();
    for item in s.split_whitespace() {
        slots.extend(parse_st_item(item)?);
        if slots.len() > MAX_SLOTS_PER_LINE {
            return Err("too many values on one line".into());
        }
    }
    Ok(slots)
}

fn parse_st_item(item: &str) -> Result<Offsets, String> {
    if item == "_" {
        return Ok(vec![None]);
    }
    if let Some(k) = item.strip_prefix("_x") {
        let k = parse_repeat_count(k)?;
        if k == 0 {
            return Err("`_x0` is not allowed on an @st line".into());
        }
        return Ok(vec![None; k]);
    }
    let invalid = |e: String| format!("invalid @st item {item:?}: {e}");
    let (start, rest) = scan_signed_offset(item).map_err(invalid)?;
    if rest.is_empty() {
        return Ok(vec![Some(start)]);
    }
    if let Some(k) = rest.strip_prefix('x') {
        return Ok(vec![Some(start); parse_repeat_count(k)? + 1]);
    }
    let (sign, rest) = match rest.as_bytes()[0] {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return Err(invalid(format!("unexpected {rest:?}"))),
    };
    let (step, rest) = scan_offset_magnitude(rest).map_err(invalid)?;
    let k = rest
        .strip_prefix('x')
        .ok_or_else(|| invalid("a progression needs xK".into()))?;
    let k = parse_repeat_count(k)?;
    (0..=k as i64)
        .map(|j| {
            j.checked_mul(sign * step)
                .and_then(|d| start.checked_add(d))
                .map(Some)
                .ok_or_else(|| invalid("offset overflows".into()))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// load_with_nhcb (§3.6)
// ---------------------------------------------------------------------------

/// Which part of a classic histogram a float series is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClassicPart {
    Bucket,
    Sum,
    Count,
}

/// Splits `foo_bucket` / `foo_sum` / `foo_count` into `("foo", part)`.
fn classic_base_name(name: &str) -> Option<(&str, ClassicPart)> {
    [
        ("_bucket", ClassicPart::Bucket),
        ("_sum", ClassicPart::Sum),
        ("_count", ClassicPart::Count),
    ]
    .into_iter()
    .find_map(|(suffix, part)| {
        let base = name.strip_suffix(suffix)?;
        (!base.is_empty()).then_some((base, part))
    })
}

/// The float series of one classic histogram, by timestamp.
#[derive(Default)]
struct ClassicGroup {
    buckets: Vec<(f64, BTreeMap<i64, f64>)>,
    sum: BTreeMap<i64, f64>,
    count: BTreeMap<i64, f64>,
}

impl ClassicGroup {
    fn timestamps(&self) -> BTreeSet<i64> {
        let bucket_ts = self.buckets.iter().flat_map(|(_, s)| s.keys());
        bucket_ts
            .chain(self.sum.keys())
            .chain(self.count.keys())
            .copied()
            .collect()
    }

    /// The NHCB at `t` (§3.6); errors on invalid cumulative counts.
    fn histogram_at(&self, t: i64) -> Result<HistogramLiteral, String> {
        let mut cumulative: Vec<(f64, f64)> = self
            .buckets
            .iter()
            .filter_map(|(bound, samples)| samples.get(&t).map(|&c| (*bound, c)))
            .collect();
        cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Numerically equal bounds are one bucket (the files give them equal counts).
        cumulative.dedup_by(|later, earlier| later.0 == earlier.0);
        let has_inf = cumulative.last().is_some_and(|(b, _)| *b == f64::INFINITY);
        // Without `_count` or a +Inf bucket, assume nothing lies above the
        // highest finite bound.
        let count = self
            .count
            .get(&t)
            .copied()
            .or_else(|| cumulative.last().map(|(_, c)| *c))
            .unwrap_or(0.0);
        if !has_inf {
            cumulative.push((f64::INFINITY, count));
        }
        validate_cumulative(&cumulative, count)?;
        let mut previous = 0.0;
        let buckets = cumulative
            .iter()
            .map(|&(_, c)| {
                let delta = c - previous;
                previous = c;
                delta
            })
            .collect();
        Ok(HistogramLiteral {
            schema: CUSTOM_BUCKETS_SCHEMA,
            sum: self.sum.get(&t).copied().unwrap_or(0.0),
            count,
            buckets,
            custom_values: cumulative[..cumulative.len() - 1]
                .iter()
                .map(|(b, _)| *b)
                .collect(),
            ..HistogramLiteral::default()
        })
    }
}

fn validate_cumulative(cumulative: &[(f64, f64)], count: f64) -> Result<(), String> {
    let mut previous = 0.0;
    for &(bound, c) in cumulative {
        if c < 0.0 || c < previous {
            return Err(format!(
                "classic histogram bucket le={bound} has invalid cumulative count {c}"
            ));
        }
        previous = c;
    }
    match cumulative.last() {
        Some(&(_, inf)) if inf != count => Err(format!(
            "classic histogram count {count} differs from its +Inf bucket {inf}"
        )),
        _ => Ok(()),
    }
}

/// The float samples of a series (histograms and staleness markers skipped).
fn float_samples(series: &LoadSeries) -> BTreeMap<i64, f64> {
    series
        .samples
        .iter()
        .filter_map(|(t, v)| match v {
            SampleValue::Float(f) if !is_stale_marker(*f) => Some((*t, *f)),
            _ => None,
        })
        .collect()
}

/// Builds the custom-bucket native histograms a `load_with_nhcb` block adds
/// on top of its float series (§3.6). Each returned series is named after
/// the base name and carries the other labels minus `le`. An error means the
/// whole load fails.
pub fn synthesize_nhcb(load: &Load) -> Result<Vec<LoadSeries>, String> {
    let mut groups: BTreeMap<Labels, ClassicGroup> = BTreeMap::new();
    for series in &load.series {
        let Some(name) = label_value(&series.labels, "__name__") else {
            continue;
        };
        let Some((base, part)) = classic_base_name(name) else {
            continue;
        };
        let group = groups
            .entry(group_labels(&series.labels, base))
            .or_default();
        let samples = float_samples(series);
        match part {
            ClassicPart::Sum => group.sum = samples,
            ClassicPart::Count => group.count = samples,
            ClassicPart::Bucket => {
                let le = label_value(&series.labels, "le")
                    .ok_or_else(|| format!("{} has no le label", format_labels(&series.labels)))?;
                match le.trim().parse::<f64>() {
                    Ok(bound) if !bound.is_nan() => group.buckets.push((bound, samples)),
                    _ => {}
                }
            }
        }
    }
    let mut out = Vec::new();
    for (labels, group) in groups {
        let series = build_nhcb_series(labels, &group)?;
        if !series.samples.is_empty() {
            out.push(series);
        }
    }
    Ok(out)
}

/// The NHCB series' labels: base name plus all other labels except `le`.
fn group_labels(labels: &Labels, base: &str) -> Labels {
    let mut out: Labels = labels
        .iter()
        .filter(|(n, _)| n != "__name__" && n != "le")
        .cloned()
        .collect();
    out.push(("__name__".to_string(), base.to_string()));
    out.sort();
    out
}

fn build_nhcb_series(labels: Labels, group: &ClassicGroup) -> Result<LoadSeries, String> {
    let samples = group
        .timestamps()
        .into_iter()
        .map(|t| Ok((t, SampleValue::Histogram(group.histogram_at(t)?))))
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| format!("{}: {e}", format_labels(&labels)))?;
    Ok(LoadSeries {
        labels,
        samples,
        start_offsets: Vec::new(),
    })
}

// ---------------------------------------------------------------------------
// eval blocks (§5)
// ---------------------------------------------------------------------------

/// Which deprecated `eval_*` spelling the header used (§5.1).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Legacy {
    None,
    Fail,
    Warn,
    Info,
    Ordered,
}

fn parse_eval(lines: &[&str], header: usize) -> Result<(Eval, usize), ParseError> {
    let line_no = header + 1;
    let (legacy, mode, expr) = parse_eval_header(lines[header]).map_err(at_line(line_no))?;
    let mut builder = EvalBuilder::new(legacy);
    let mut j = header + 1;
    while j < lines.len() && !is_blank(lines[j]) {
        let ends_block = builder.add_line(lines[j], j + 1).map_err(at_line(j + 1))?;
        j += 1;
        if ends_block {
            break;
        }
    }
    let eval = builder.finish(line_no, expr, mode)?;
    Ok((eval, j))
}

/// `eval[_kind] instant at <t> <expr>` or `… range from <a> to <b> step <s> <expr>`.
fn parse_eval_header(line: &str) -> Result<(Legacy, EvalMode, String), String> {
    let (keyword, rest) = split_word(line);
    let legacy = match keyword {
        "eval" => Legacy::None,
        "eval_fail" => Legacy::Fail,
        "eval_warn" => Legacy::Warn,
        "eval_info" => Legacy::Info,
        "eval_ordered" => Legacy::Ordered,
        _ => return Err(format!("unknown eval keyword {keyword:?}")),
    };
    let (kind, rest) = split_word(rest);
    let (mode, expr) = match kind {
        "instant" => {
            let (at, rest) = split_word(expect_word(rest, "at")?);
            (
                EvalMode::Instant {
                    at_ms: parse_duration(at)?,
                },
                rest,
            )
        }
        "range" => parse_range_header(rest)?,
        _ => return Err(format!("expected `instant` or `range`, found {kind:?}")),
    };
    if legacy == Legacy::Ordered && matches!(mode, EvalMode::Range { .. }) {
        return Err("eval_ordered is only valid for instant evals".into());
    }
    let expr = expr.trim();
    if expr.is_empty() {
        return Err("eval has no expression".into());
    }
    Ok((legacy, mode, expr.to_string()))
}

/// `from <a> to <b> step <s>` followed by the expression.
fn parse_range_header(s: &str) -> Result<(EvalMode, &str), String> {
    let (start, rest) = split_word(expect_word(s, "from")?);
    let (end, rest) = split_word(expect_word(rest, "to")?);
    let (step, rest) = split_word(expect_word(rest, "step")?);
    let (start_ms, end_ms, step_ms) = parse_time_range(start, end, step)?;
    Ok((
        EvalMode::Range {
            start_ms,
            end_ms,
            step_ms,
        },
        rest,
    ))
}

fn parse_time_range(start: &str, end: &str, step: &str) -> Result<(i64, i64, i64), String> {
    let (start_ms, end_ms, step_ms) = (
        parse_duration(start)?,
        parse_duration(end)?,
        parse_duration(step)?,
    );
    if end_ms < start_ms {
        return Err(format!("end time {end} is before start time {start}"));
    }
    if step_ms <= 0 {
        return Err("step must be positive".into());
    }
    Ok((start_ms, end_ms, step_ms))
}

/// Accumulates an eval block's body lines (§5.2).
struct EvalBuilder {
    legacy: Legacy,
    expect: Expectations,
    /// Expected series with the line each came from.
    series: Vec<(ExpectedSeries, usize)>,
    scalar: Option<f64>,
}

impl EvalBuilder {
    fn new(legacy: Legacy) -> Self {
        let mut expect = Expectations::default();
        match legacy {
            Legacy::Fail => expect.fail = Some(TextMatch::Any),
            Legacy::Warn => expect.warn.push(TextMatch::Any),
            Legacy::Info => expect.info.push(TextMatch::Any),
            Legacy::Ordered => expect.ordered = true,
            Legacy::None => {}
        }
        EvalBuilder {
            legacy,
            expect,
            series: Vec::new(),
            scalar: None,
        }
    }

    /// Classifies one body line in the §5.2 priority order. Returns whether
    /// the line ends the block.
    fn add_line(&mut self, text: &str, line: usize) -> Result<bool, String> {
        if self.legacy == Legacy::Fail && self.add_legacy_fail_message(text)? {
            return Ok(true);
        }
        let (word, rest) = split_word(text);
        if word == "expect" {
            self.add_directive(rest)?;
            return Ok(false);
        }
        if let Some(v) = parse_scalar_literal(text) {
            if !self.series.is_empty() {
                return Err("an expected scalar cannot follow expected series".into());
            }
            self.scalar = Some(v);
            return Ok(true);
        }
        self.add_series(text, line)?;
        Ok(false)
    }

    /// `expected_fail_message <text>` / `expected_fail_regexp <re>` after `eval_fail`.
    fn add_legacy_fail_message(&mut self, text: &str) -> Result<bool, String> {
        let (word, rest) = split_word(text);
        let matcher = match word {
            "expected_fail_message" => TextMatch::Exact(rest.trim().to_string()),
            "expected_fail_regexp" => TextMatch::Regex(compile_regex(rest.trim())?),
            _ => return Ok(false),
        };
        self.expect.fail = Some(matcher);
        Ok(true)
    }

    /// An `expect …` line (§5.3–§5.5); `rest` is the text after `expect`.
    fn add_directive(&mut self, rest: &str) -> Result<(), String> {
        let (kind, arg) = split_word(rest);
        let no_arg = |what: &str| -> Result<(), String> {
            match arg.trim() {
                "" => Ok(()),
                extra => Err(format!("`expect {what}` takes no argument, got {extra:?}")),
            }
        };
        match kind {
            "range" => self.set_range_vector(arg)?,
            "string" => self.set_string(arg)?,
            "fail" => {
                if self.expect.fail.is_some() {
                    return Err("more than one `expect fail`".into());
                }
                self.expect.fail = Some(parse_text_match(arg)?);
            }
            "warn" => self.expect.warn.push(parse_text_match(arg)?),
            "info" => self.expect.info.push(parse_text_match(arg)?),
            "no_warn" => {
                no_arg(kind)?;
                self.expect.no_warn = true;
            }
            "no_info" => {
                no_arg(kind)?;
                self.expect.no_info = true;
            }
            "ordered" => {
                no_arg(kind)?;
                self.expect.ordered = true;
            }
            _ => return Err(format!("unknown expect directive {kind:?}")),
        }
        Ok(())
    }

    /// `expect range vector from <t1> to <t2> step <s>` (after `range`).
    fn set_range_vector(&mut self, arg: &str) -> Result<(), String> {
        let words: Vec<&str> = arg.split_whitespace().collect();
        let ["vector", "from", t1, "to", t2, "step", s] = words.as_slice() else {
            return Err("expected `expect range vector from <t1> to <t2> step <s>`".into());
        };
        if self.expect.range_vector.is_some() {
            return Err("more than one `expect range vector`".into());
        }
        self.expect.range_vector = Some(parse_time_range(t1, t2, s)?);
        Ok(())
    }

    /// `expect string "…"` or `` expect string `…` ``.
    fn set_string(&mut self, arg: &str) -> Result<(), String> {
        let arg = arg.trim();
        if !arg.starts_with(['"', '`']) {
            return Err("expect string needs a \"double-quoted\" or `back-quoted` argument".into());
        }
        let (value, rest) = parse_string_literal(arg)?;
        if !rest.trim().is_empty() {
            return Err(format!("unexpected text after expect string: {rest:?}"));
        }
        if self.expect.string.is_some() {
            return Err("more than one `expect string`".into());
        }
        self.expect.string = Some(value);
        Ok(())
    }

    /// An expected series line; a repeated label set replaces the earlier
    /// line (the harness keys expectations by label set).
    fn add_series(&mut self, text: &str, line: usize) -> Result<(), String> {
        let (labels, rest) = parse_label_set(text)?;
        let values = parse_value_sequence(rest)?;
        if values.is_empty() {
            return Err(format!(
                "expected series {} has no value",
                format_labels(&labels)
            ));
        }
        self.series.retain(|(s, _)| s.labels != labels);
        self.series.push((ExpectedSeries { labels, values }, line));
        Ok(())
    }

    /// Checks the block as a whole and builds the [`Eval`].
    fn finish(mut self, line: usize, expr: String, mode: EvalMode) -> Result<Eval, ParseError> {
        self.check_combinations(mode).map_err(at_line(line))?;
        if self.expect.range_vector.is_none() && matches!(mode, EvalMode::Instant { .. }) {
            self.check_single_values()?;
        }
        let mode = match (mode, self.expect.range_vector) {
            // The directive's end time overrides the header's `at` (§5.4).
            (EvalMode::Instant { .. }, Some((_, t2, _))) => EvalMode::Instant { at_ms: t2 },
            _ => mode,
        };
        let expected = match self.scalar {
            Some(v) => Expected::Scalar(v),
            None => Expected::Series(self.series.drain(..).map(|(s, _)| s).collect()),
        };
        Ok(Eval {
            line,
            expr,
            mode,
            expect: self.expect,
            expected,
            touches_native_histograms: false,
        })
    }

    fn check_combinations(&self, mode: EvalMode) -> Result<(), String> {
        let e = &self.expect;
        if !e.warn.is_empty() && e.no_warn {
            return Err("`expect warn` and `expect no_warn` contradict each other".into());
        }
        if !e.info.is_empty() && e.no_info {
            return Err("`expect info` and `expect no_info` contradict each other".into());
        }
        let is_range = matches!(mode, EvalMode::Range { .. });
        if is_range && e.range_vector.is_some() {
            return Err("`expect range vector` is only valid for instant evals".into());
        }
        if is_range && e.string.is_some() {
            return Err("`expect string` is only valid for instant evals".into());
        }
        if is_range && self.scalar.is_some() {
            return Err("a range eval's scalar result is written as a `{} v…` series".into());
        }
        if e.string.is_some() && (self.scalar.is_some() || !self.series.is_empty()) {
            return Err("`expect string` cannot be combined with result lines".into());
        }
        if e.range_vector.is_some() && self.scalar.is_some() {
            return Err("`expect range vector` cannot be combined with a scalar".into());
        }
        Ok(())
    }

    /// Without `expect range vector`, an instant eval expects one value per series.
    fn check_single_values(&self) -> Result<(), ParseError> {
        for (series, line) in &self.series {
            let msg = match series.values.as_slice() {
                [Some(_)] => continue,
                [None] => "`_` is only meaningful with `expect range vector`",
                _ => "an instant eval expects one value per series (use `expect range vector`)",
            };
            return Err(ParseError {
                line: *line,
                msg: format!("{}: {msg}", format_labels(&series.labels)),
            });
        }
        Ok(())
    }
}

fn compile_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("invalid regex {pattern:?}: {e}"))
}

/// The optional `msg: <text>` / `regex: <pattern>` of fail/warn/info.
fn parse_text_match(arg: &str) -> Result<TextMatch, String> {
    let arg = arg.trim();
    if arg.is_empty() {
        Ok(TextMatch::Any)
    } else if let Some(text) = arg.strip_prefix("msg:") {
        Ok(TextMatch::Exact(text.trim().to_string()))
    } else if let Some(pattern) = arg.strip_prefix("regex:") {
        Ok(TextMatch::Regex(compile_regex(pattern.trim())?))
    } else {
        Err(format!("expected `msg:` or `regex:`, got {arg:?}"))
    }
}

// ---------------------------------------------------------------------------
// Native-histogram heuristic (INDEX.md)
// ---------------------------------------------------------------------------

/// Tracks which metric names hold native histograms as the script proceeds.
#[derive(Default)]
struct NativeHistogramTracker {
    metrics: HashSet<String>,
}

impl NativeHistogramTracker {
    fn observe(&mut self, command: &mut Command) {
        match command {
            Command::Clear => self.metrics.clear(),
            Command::Load(load) => self.note_load(load),
            Command::Eval(eval) => {
                eval.touches_native_histograms =
                    expects_histogram(&eval.expected) || self.mentioned_in(&eval.expr);
            }
        }
    }

    fn note_load(&mut self, load: &Load) {
        for series in &load.series {
            let Some(name) = label_value(&series.labels, "__name__") else {
                continue;
            };
            if series
                .samples
                .iter()
                .any(|(_, v)| matches!(v, SampleValue::Histogram(_)))
            {
                self.metrics.insert(name.to_string());
            }
            // Approximation: every classic-histogram part in an NHCB block
            // yields a histogram under its base name.
            if load.with_nhcb
                && let Some((base, _)) = classic_base_name(name)
            {
                self.metrics.insert(base.to_string());
            }
        }
    }

    fn mentioned_in(&self, expr: &str) -> bool {
        !self.metrics.is_empty()
            && metric_references(expr).iter().any(|r| match r {
                NameRef::Exact(name) => self.metrics.contains(name),
                NameRef::Regex(pattern) => match Regex::new(&format!("^(?:{pattern})$")) {
                    Ok(re) => self.metrics.iter().any(|m| re.is_match(m)),
                    Err(_) => false,
                },
            })
    }
}

fn expects_histogram(expected: &Expected) -> bool {
    match expected {
        Expected::Scalar(_) => false,
        Expected::Series(series) => series
            .iter()
            .flat_map(|s| &s.values)
            .any(|v| matches!(v, Some(SampleValue::Histogram(_)))),
    }
}

/// A possible metric name in an expression.
#[derive(Debug, PartialEq)]
enum NameRef {
    Exact(String),
    /// A `__name__=~"…"` pattern (anchored when used).
    Regex(String),
}

/// Identifier tokens and `__name__` matchers of a PromQL expression, found
/// by a light scan: string contents, numbers and durations are skipped.
/// Label names and function names are included too; that only matters if
/// one equals a histogram metric's name, which is fine for a heuristic.
fn metric_references(expr: &str) -> Vec<NameRef> {
    let bytes = expr.as_bytes();
    let mut refs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'#' {
            break; // a PromQL comment runs to the end of the line
        } else if matches!(c, b'"' | b'\'' | b'`') {
            match skip_string_literal(bytes, i) {
                Some(end) => i = end,
                None => break,
            }
        } else if c.is_ascii_digit() || c == b'.' {
            // Numbers and durations such as `5m` or `1e3` are not names.
            i += bytes[i..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'.' || **b == b'_')
                .count();
        } else if is_metric_name_start(c) {
            let len = identifier_len(&expr[i..], is_metric_name_start, is_metric_name_char);
            let ident = &expr[i..i + len];
            i += len;
            if ident == "__name__" {
                refs.extend(name_matcher(&expr[i..]));
            } else {
                refs.push(NameRef::Exact(ident.to_string()));
            }
        } else {
            i += 1;
        }
    }
    refs
}

/// Index just past the string literal starting at `start`. Escapes are
/// skipped, not decoded, so a literal like `"a\xc5z"` (not UTF-8 once
/// decoded) does not stop the scan.
fn skip_string_literal(bytes: &[u8], start: usize) -> Option<usize> {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote != b'`' => i += 2,
            c if c == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The value of a `__name__` matcher (`= "x"` or `=~ "re"`) at the front of `s`.
fn name_matcher(s: &str) -> Option<NameRef> {
    let s = s.trim_start();
    let (is_regex, rest) = if let Some(rest) = s.strip_prefix("=~") {
        (true, rest)
    } else if let Some(rest) = s.strip_prefix('=') {
        if rest.starts_with('=') {
            return None;
        }
        (false, rest)
    } else {
        return None;
    };
    let (value, _) = parse_string_literal(rest.trim_start()).ok()?;
    Some(if is_regex {
        NameRef::Regex(value)
    } else {
        NameRef::Exact(value)
    })
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Script {
        parse_script("t.test", text).unwrap_or_else(|e| panic!("parse failed: {e}"))
    }

    fn parse_err(text: &str) -> String {
        match parse_script("t.test", text) {
            Ok(s) => panic!("expected an error, parsed {:?}", s.commands),
            Err(e) => e,
        }
    }

    fn only_load(script: &Script) -> &Load {
        match script.commands.as_slice() {
            [Command::Load(load)] => load,
            other => panic!("expected one load, got {other:?}"),
        }
    }

    fn evals(script: &Script) -> Vec<&Eval> {
        script
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::Eval(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    fn only_eval(script: &Script) -> &Eval {
        match evals(script).as_slice() {
            [e] => e,
            other => panic!("expected one eval, got {}", other.len()),
        }
    }

    fn floats(series: &LoadSeries) -> Vec<(i64, f64)> {
        series
            .samples
            .iter()
            .map(|(t, v)| match v {
                SampleValue::Float(f) => (*t, *f),
                SampleValue::Histogram(_) => panic!("unexpected histogram"),
            })
            .collect()
    }

    fn hist(v: &Option<SampleValue>) -> &HistogramLiteral {
        match v {
            Some(SampleValue::Histogram(h)) => h,
            other => panic!("expected histogram, got {other:?}"),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        let mut l: Labels = pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        l.sort();
        l
    }

    fn series_values(eval: &Eval) -> Vec<Vec<Option<SampleValue>>> {
        match &eval.expected {
            Expected::Series(s) => s.iter().map(|s| s.values.clone()).collect(),
            Expected::Scalar(_) => panic!("expected series"),
        }
    }

    // --- §1 structure ---

    #[test]
    fn indentation_is_ignored_and_indented_eval_is_a_command() {
        let s = parse("load 1m\n   m 1\n\n  eval instant at 0 m\n\t m 1\n");
        assert_eq!(evals(&s).len(), 1);
        assert_eq!(evals(&s)[0].line, 4);
    }

    #[test]
    fn comment_ends_a_block_and_means_empty_result() {
        // `foo 1` after the comment is a new command, hence an error.
        let err = parse_err("eval instant at 5m absent_metric\n    # empty\n    foo 1\n");
        assert!(err.contains(":3:"), "{err}");
        let s = parse("eval instant at 5m absent_metric\n    # empty\n");
        assert_eq!(only_eval(&s).expected, Expected::Series(vec![]));
    }

    #[test]
    fn hash_later_in_a_line_is_not_a_comment() {
        let s = parse("eval instant at 0 foo # not a comment\n");
        assert_eq!(only_eval(&s).expr, "foo # not a comment");
    }

    #[test]
    fn dispatch_is_case_insensitive_but_headers_are_not() {
        assert!(matches!(parse("CLEAR\n").commands[0], Command::Clear));
        let err = parse_err("Load 1m\n  m 1\n");
        assert!(err.contains("t.test:1:"), "{err}");
        let err = parse_err("bogus 1m\n");
        assert!(err.contains("unknown command"), "{err}");
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse_err("load 1m\n  m 1\n  m 1-1\n");
        assert!(err.starts_with("t.test:3:"), "{err}");
    }

    // --- §2 durations ---

    #[test]
    fn durations_follow_prometheus_syntax() {
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("50m"), Ok(3_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000));
        assert_eq!(parse_duration("20s500ms"), Ok(20_500));
        assert_eq!(parse_duration("10s53ms"), Ok(10_053));
        assert_eq!(parse_duration("1y1w1d"), Ok((365 + 7 + 1) * MS_PER_DAY));
        assert_eq!(parse_duration("1111111s"), Ok(1_111_111_000));
        for bad in ["", "5", "1.5m", "-1m", "30s1m", "1m1m", "5x", "1m "] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn eval_header_times() {
        let s = parse("eval instant at 1m30s foo\n\neval range from 0 to 10m step 1m30s bar + 1\n");
        let e = evals(&s);
        assert_eq!(e[0].mode, EvalMode::Instant { at_ms: 90_000 });
        assert_eq!(
            e[1].mode,
            EvalMode::Range {
                start_ms: 0,
                end_ms: 600_000,
                step_ms: 90_000
            }
        );
        assert_eq!(e[1].expr, "bar + 1");
    }

    #[test]
    fn range_end_before_start_or_zero_step_is_an_error() {
        assert!(parse_err("eval range from 5m to 1m step 1m foo\n").contains("before"));
        assert!(parse_err("eval range from 0 to 1m step 0 foo\n").contains("step"));
    }

    // --- §3.1 label sets ---

    #[test]
    fn label_set_forms_and_quotes() {
        let (l, rest) = parse_label_set(r#"foo{b='x', a=`y\z`, c="q\"\n"} 1"#).unwrap();
        assert_eq!(
            l,
            labels(&[
                ("__name__", "foo"),
                ("a", r"y\z"),
                ("b", "x"),
                ("c", "q\"\n")
            ])
        );
        assert_eq!(rest, " 1");
        let (l, _) = parse_label_set(r#"{__name__="foo", a="x"} 1"#).unwrap();
        assert_eq!(l, labels(&[("__name__", "foo"), ("a", "x")]));
        let (l, _) = parse_label_set("{} 1").unwrap();
        assert!(l.is_empty());
        let (l, _) = parse_label_set("foo{} 1").unwrap();
        assert_eq!(l, labels(&[("__name__", "foo")]));
        let (l, _) = parse_label_set(r#"{"my.metric", a="b",} 1"#).unwrap();
        assert_eq!(l, labels(&[("__name__", "my.metric"), ("a", "b")]));
        let (l, _) = parse_label_set(r#"x{a="\u00e9\x41\101"}"#).unwrap();
        assert_eq!(l, labels(&[("__name__", "x"), ("a", "éAA")]));
    }

    #[test]
    fn label_set_errors() {
        for bad in [
            r#"foo{a!="x"} 1"#,
            r#"foo{a=~"x"} 1"#,
            r#"foo{a="x""#,
            "1 2",
            r#"foo{a="1",a="2"}"#,
            r#"foo{__name__="bar"}"#,
            r#"{a="\xc5"}"#,
        ] {
            assert!(parse_label_set(bad).is_err(), "{bad} should fail");
        }
    }

    // --- §3.2 value sequences ---

    fn values(seq: &str) -> Vec<Option<f64>> {
        parse_value_sequence(&format!(" {seq}"))
            .unwrap_or_else(|e| panic!("{seq}: {e}"))
            .into_iter()
            .map(|v| {
                v.map(|v| match v {
                    SampleValue::Float(f) => f,
                    SampleValue::Histogram(_) => panic!("histogram"),
                })
            })
            .collect()
    }

    #[test]
    fn repeat_adds_one_extra_value() {
        assert_eq!(values("5x2"), vec![Some(5.0); 3]);
        assert_eq!(
            values("0+10x5"),
            [0.0, 10.0, 20.0, 30.0, 40.0, 50.0].map(Some).to_vec()
        );
        assert_eq!(values("10-2x2"), [10.0, 8.0, 6.0].map(Some).to_vec());
        assert_eq!(values("1x0"), vec![Some(1.0)]);
    }

    #[test]
    fn blank_repeat_gives_exactly_k_slots() {
        assert_eq!(values("_x3"), vec![None; 3]);
        assert_eq!(values("1 _ 2"), vec![Some(1.0), None, Some(2.0)]);
    }

    #[test]
    fn hex_is_not_recognised_in_series_values() {
        assert_eq!(values("0x5"), vec![Some(0.0); 6]);
        assert!(parse_value_sequence(" 0xff").is_err());
    }

    #[test]
    fn number_forms() {
        let v = values("3 -2 +4 1.5 .5 2. 1e3 12.34E+6 -9.988465674311579e+307");
        let want = [
            3.0,
            -2.0,
            4.0,
            1.5,
            0.5,
            2.0,
            1e3,
            12.34e6,
            -9.988_465_674_311_58e307,
        ];
        assert_eq!(v, want.map(Some).to_vec());
        let v = values("Inf +Inf -Inf inf -inF");
        assert_eq!(
            v,
            [
                f64::INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY
            ]
            .map(Some)
            .to_vec()
        );
        assert!(values("NaN nan -NaN").iter().all(|v| v.unwrap().is_nan()));
        assert_eq!(values("1e-3+1e2x1"), vec![Some(0.001), Some(100.001)]);
    }

    #[test]
    fn stale_is_the_marker_bit_pattern() {
        let v = values("1 stale");
        assert_eq!(v[1].unwrap().to_bits(), STALE_NAN_BITS);
        assert!(!is_stale_marker(f64::NAN));
    }

    #[test]
    fn value_traps_are_errors() {
        for bad in [
            "NaNx3", "Infx3", "stalex3", "1-1", "1+Infx3", "1+ 1x3", "1x", "1x-1", "abc", "1x2.5",
            "0x",
        ] {
            assert!(
                parse_value_sequence(&format!(" {bad}")).is_err(),
                "{bad} should fail"
            );
        }
        // `1 -1` is two values.
        assert_eq!(values("1 -1"), vec![Some(1.0), Some(-1.0)]);
    }

    #[test]
    fn items_concatenate_across_runs() {
        let v = values("0+30x2 300-80x1");
        assert_eq!(v, [0.0, 30.0, 60.0, 300.0, 220.0].map(Some).to_vec());
    }

    #[test]
    fn progression_accumulates_like_the_harness() {
        let v = values("0+0.1x3");
        let mut expected = 0.0;
        for slot in v {
            assert_eq!(slot.unwrap().to_bits(), f64::to_bits(expected));
            expected += 0.1;
        }
    }

    #[test]
    fn load_timestamps_and_gaps() {
        let s = parse("load 1m\n  m{a=\"b\"} 1 _ 3 _x2 5\n");
        let load = only_load(&s);
        assert_eq!(load.interval_ms, 60_000);
        assert_eq!(
            floats(&load.series[0]),
            vec![(0, 1.0), (120_000, 3.0), (300_000, 5.0)]
        );
        assert_eq!(
            load.series[0].labels,
            labels(&[("__name__", "m"), ("a", "b")])
        );
    }

    #[test]
    fn each_load_block_restarts_at_zero() {
        let s = parse("load 1m\n  a 1 2\n\nload 1m\n  a _ _ 3\n");
        let Command::Load(second) = &s.commands[1] else {
            panic!()
        };
        assert_eq!(floats(&second.series[0]), vec![(120_000, 3.0)]);
    }

    #[test]
    fn same_label_set_twice_last_line_wins() {
        let s = parse("load 1m\n  d{p=\"d\", t=\"x\"} Inf\n  other 1\n  d{t=\"x\",p=\"d\"} -Inf\n");
        let load = only_load(&s);
        assert_eq!(load.series.len(), 2);
        assert_eq!(floats(&load.series[0]), vec![(0, f64::NEG_INFINITY)]);
    }

    // --- §3.3 histograms ---

    #[test]
    fn histogram_literal_fields() {
        let s = parse(
            "load 1m\n  h {{schema:1 sum:-4.5 count:3 z_bucket:1 z_bucket_w:0.001 buckets:[1 2] offset:-1 n_buckets:[ 4 ] n_offset:2 counter_reset_hint:gauge}} {{}}\n",
        );
        let series = &only_load(&s).series[0];
        let SampleValue::Histogram(h) = &series.samples[0].1 else {
            panic!()
        };
        assert_eq!(
            *h,
            HistogramLiteral {
                schema: 1,
                sum: -4.5,
                count: 3.0,
                z_bucket: 1.0,
                z_bucket_w: 0.001,
                buckets: vec![1.0, 2.0],
                offset: -1,
                n_buckets: vec![4.0],
                n_offset: 2,
                custom_values: vec![],
                counter_reset_hint: Some("gauge".into()),
            }
        );
        let SampleValue::Histogram(empty) = &series.samples[1].1 else {
            panic!()
        };
        assert_eq!(*empty, HistogramLiteral::default());
    }

    #[test]
    fn histogram_literal_errors() {
        for bad in [
            "{{schema:0 schema:1}}",
            "{{foo:1}}",
            "{{schema:1.5}}",
            "{{buckets:1}}",
            "{{count:[1]}}",
            "{{counter_reset_hint:maybe}}",
            "{{sum:1",
            "{{buckets:[1 2}}",
        ] {
            assert!(
                parse_value_sequence(&format!(" {bad}")).is_err(),
                "{bad} should fail"
            );
        }
    }

    #[test]
    fn histogram_repeat_and_progression() {
        let slots = parse_value_sequence(" {{schema:0 count:4 sum:6 buckets:[1 2 1]}}+{{schema:0 count:2 sum:3 buckets:[1 1]}}x2 {{count:1}}x1").unwrap();
        assert_eq!(slots.len(), 5);
        let last = hist(&slots[2]);
        assert_eq!((last.count, last.sum), (8.0, 12.0));
        assert_eq!(
            last.positive_buckets(),
            BTreeMap::from([(0, 3.0), (1, 4.0), (2, 1.0)])
        );
        assert_eq!(hist(&slots[4]).count, 1.0);
        let slots =
            parse_value_sequence(" {{count:10 buckets:[5 5]}}-{{count:1 buckets:[1]}}x1").unwrap();
        assert_eq!(hist(&slots[1]).buckets, vec![4.0, 5.0]);
    }

    #[test]
    fn histogram_progression_reduces_finer_increment() {
        // Schema-1 buckets 1 and 2 both lie in schema-0 bucket 1: (1, 2].
        let slots = parse_value_sequence(
            " {{schema:0 buckets:[1] offset:1}}+{{schema:1 buckets:[1 1] offset:1}}x1",
        )
        .unwrap();
        let h = hist(&slots[1]);
        assert_eq!(h.schema, 0);
        assert_eq!(h.positive_buckets(), BTreeMap::from([(1, 3.0)]));
        let err = parse_value_sequence(" {{schema:1}}+{{schema:0}}x1").unwrap_err();
        assert!(err.contains("schema"), "{err}");
    }

    #[test]
    fn histogram_progression_hints() {
        let slots = parse_value_sequence(" {{counter_reset_hint:gauge}}+{{counter_reset_hint:gauge}}x1 {{counter_reset_hint:reset}}+{{}}x1").unwrap();
        assert_eq!(hist(&slots[1]).counter_reset_hint.as_deref(), Some("gauge"));
        assert_eq!(hist(&slots[2]).counter_reset_hint.as_deref(), Some("reset"));
        assert_eq!(hist(&slots[3]).counter_reset_hint, None);
    }

    #[test]
    fn floats_and_histograms_mix_in_one_line() {
        let slots = parse_value_sequence(" 1 {{sum:2}} _ 3").unwrap();
        assert!(matches!(slots[1], Some(SampleValue::Histogram(_))));
        assert!(slots[2].is_none());
    }

    #[test]
    fn histogram_validation() {
        let ok = parse_histogram_body("schema:-53 custom_values:[1 2] buckets:[1 0 3]").unwrap();
        assert!(ok.validate().is_ok());
        for bad in [
            "schema:9",
            "count:-1",
            "schema:-53 custom_values:[2 1]",
            "schema:0 custom_values:[1]",
            "schema:-53 z_bucket:1",
            "schema:-53 custom_values:[1] buckets:[1 1 1]",
        ] {
            assert!(
                parse_histogram_body(bad).unwrap().validate().is_err(),
                "{bad} should be invalid"
            );
        }
    }

    // --- §3.5 @st ---

    #[test]
    fn st_lines_give_offsets_per_sample() {
        let s =
            parse("load 1m\n  c{job=\"x\"}@st  _  -30s  -1mx2\n  c{job=\"x\"}     _  5     5x2\n");
        let series = &only_load(&s).series[0];
        assert_eq!(series.samples.len(), 4);
        assert_eq!(
            series.start_offsets,
            vec![Some(-30_000), Some(-60_000), Some(-60_000), Some(-60_000)]
        );
    }

    #[test]
    fn st_progressions_and_forms() {
        assert_eq!(
            parse_st_sequence("-30s-1mx2 0-1mx1 +1m 1ms -0ms _x2 -59999ms -1m30s+30sx1").unwrap(),
            vec![
                Some(-30_000),
                Some(-90_000),
                Some(-150_000),
                Some(0),
                Some(-60_000),
                Some(60_000),
                Some(1),
                Some(0),
                None,
                None,
                Some(-59_999),
                Some(-90_000),
                Some(-60_000),
            ]
        );
        for bad in ["5", "-1x", "1m-", "_x0", "1m30", "abc"] {
            assert!(parse_st_sequence(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn st_offsets_skip_empty_value_slots() {
        let s = parse("load 1m\n  s@st _ -1m -1s _\n  s    _ 5   _   2\n");
        let series = &only_load(&s).series[0];
        assert_eq!(floats(series), vec![(60_000, 5.0), (180_000, 2.0)]);
        assert_eq!(series.start_offsets, vec![Some(-60_000), None]);
    }

    #[test]
    fn st_line_errors() {
        assert!(parse_err("load 1m\n  a@st 0 0\n  b 1 1\n").contains("followed by"));
        assert!(parse_err("load 1m\n  a@st 0 0\n  a 1\n").contains("slots"));
        assert!(parse_err("load 1m\n  a@st 0 0\n").contains("no value line"));
        assert!(parse_err("load 1m\n  a@st 0\n\n  a 1\n").contains(":2:"));
    }

    // --- §3.6 load_with_nhcb ---

    #[test]
    fn nhcb_is_synthesised_from_classic_series() {
        let s = parse(
            "load_with_nhcb 1m\n  lat_bucket{le=\"0.5\"} 1 2\n  lat_bucket{le=\"1e0\"} 3 5\n  lat_bucket{le=\"+Inf\"} 4 6\n  lat_sum 2.5 4\n  lat_count 4 6\n",
        );
        let load = only_load(&s);
        assert!(load.with_nhcb);
        let nhcb = synthesize_nhcb(load).unwrap();
        assert_eq!(nhcb.len(), 1);
        assert_eq!(nhcb[0].labels, labels(&[("__name__", "lat")]));
        let SampleValue::Histogram(h) = &nhcb[0].samples[1].1 else {
            panic!()
        };
        assert_eq!(nhcb[0].samples[1].0, 60_000);
        assert_eq!((h.schema, h.sum, h.count), (-53, 4.0, 6.0));
        assert_eq!(h.custom_values, vec![0.5, 1.0]);
        assert_eq!(h.buckets, vec![2.0, 3.0, 1.0]);
    }

    #[test]
    fn nhcb_adds_inf_bucket_and_collapses_equal_bounds() {
        let s = parse(
            "load_with_nhcb 1m\n  x_bucket{le=\"0.2\",j=\"a\"} 1\n  x_bucket{le=\"2e-1\",j=\"a\"} 1\n  x_count{j=\"a\"} 3\n",
        );
        let nhcb = synthesize_nhcb(only_load(&s)).unwrap();
        assert_eq!(nhcb[0].labels, labels(&[("__name__", "x"), ("j", "a")]));
        let SampleValue::Histogram(h) = &nhcb[0].samples[0].1 else {
            panic!()
        };
        assert_eq!(
            (h.custom_values.clone(), h.buckets.clone()),
            (vec![0.2], vec![1.0, 2.0])
        );
    }

    #[test]
    fn nhcb_rejects_decreasing_or_inconsistent_counts() {
        let s = parse("load_with_nhcb 1m\n  y_bucket{le=\"1\"} 5\n  y_bucket{le=\"+Inf\"} 3\n");
        assert!(synthesize_nhcb(only_load(&s)).is_err());
        let s = parse("load_with_nhcb 1m\n  y_bucket{le=\"+Inf\"} 3\n  y_count 4\n");
        assert!(synthesize_nhcb(only_load(&s)).is_err());
        let s = parse("load_with_nhcb 1m\n  y_bucket 3\n");
        assert!(synthesize_nhcb(only_load(&s)).is_err());
    }

    // --- §5 eval ---

    #[test]
    fn instant_eval_with_series_and_directives() {
        let s = parse(
            "eval instant at 1m quantile(2, temp)\n    expect warn regex: between 0 and 1\n    expect no_info\n    {} +Inf\n",
        );
        let e = only_eval(&s);
        assert_eq!(e.expr, "quantile(2, temp)");
        assert!(e.expect.no_info && !e.expect.no_warn);
        assert!(
            e.expect.warn[0]
                .matches("PromQL warning: quantile value should be between 0 and 1, got 2 (1:10)")
        );
        assert_eq!(
            series_values(e),
            vec![vec![Some(SampleValue::Float(f64::INFINITY))]]
        );
    }

    #[test]
    fn text_match_forms() {
        let s = parse(
            "eval instant at 0 x\n  expect fail msg:invalid label name \"a\\xc5z\"\n  expect warn\n  expect info msg: PromQL info: foo (1:1)\n",
        );
        let e = only_eval(&s);
        assert!(
            matches!(&e.expect.fail, Some(TextMatch::Exact(t)) if t == "invalid label name \"a\\xc5z\"")
        );
        assert!(matches!(e.expect.warn[0], TextMatch::Any));
        assert!(e.expect.info[0].matches("PromQL info: foo (1:1)"));
        assert!(!e.expect.info[0].matches("PromQL info: foo (1:2)"));
        assert!(parse_err("eval instant at 0 x\n  expect fail bogus\n").contains("msg:"));
        assert!(parse_err("eval instant at 0 x\n  expect warn regex: (\n").contains("regex"));
    }

    #[test]
    fn invalid_directive_combinations() {
        assert!(
            parse_err("eval instant at 0 x\n  expect warn\n  expect no_warn\n")
                .contains("contradict")
        );
        assert!(
            parse_err("eval instant at 0 x\n  expect no_info\n  expect info\n")
                .contains("contradict")
        );
        assert!(
            parse_err("eval instant at 0 x\n  expect fail\n  expect fail\n")
                .contains("more than one")
        );
        assert!(parse_err("eval_fail instant at 0 x\n  expect fail\n").contains("more than one"));
        assert!(parse_err("eval instant at 0 x\n  expect sometimes\n").contains("unknown"));
        assert!(
            parse_err("eval instant at 0 x\n  expect ordered please\n").contains("no argument")
        );
    }

    #[test]
    fn scalar_line_ends_the_block() {
        let s = parse("eval instant at 0 1+1\n  2\n\neval instant at 0 x\n  0x10\n");
        let e = evals(&s);
        assert_eq!(e[0].expected, Expected::Scalar(2.0));
        assert_eq!(e[1].expected, Expected::Scalar(16.0));
        let err = parse_err("eval instant at 0 1+1\n  2\n  3\n");
        assert!(err.contains(":3:"), "{err}");
        for (line, want) in [
            ("NaN", f64::NAN),
            ("-Inf", f64::NEG_INFINITY),
            ("+Inf", f64::INFINITY),
            ("1e-3", 0.001),
            ("-0x1F", -31.0),
        ] {
            let s = parse(&format!("eval instant at 0 x\n  {line}\n"));
            let Expected::Scalar(v) = only_eval(&s).expected else {
                panic!()
            };
            assert!(
                v.to_bits() == want.to_bits() || (v.is_nan() && want.is_nan()),
                "{line}"
            );
        }
    }

    #[test]
    fn metric_named_like_a_keyword_needs_braces() {
        let s = parse("eval instant at 0 expect\n  expect{} 1\n");
        assert_eq!(series_values(only_eval(&s)).len(), 1);
    }

    #[test]
    fn instant_eval_allows_one_value_per_series() {
        let err = parse_err("eval instant at 0 x\n  x 1\n  y 1 2\n");
        assert!(err.contains(":3:") && err.contains("one value"), "{err}");
        assert!(parse_err("eval instant at 0 x\n  x _\n").contains("`_`"));
        assert!(parse_err("eval instant at 0 x\n  x\n").contains("no value"));
    }

    #[test]
    fn range_eval_series_with_expansions() {
        let s = parse(
            "eval range from 0 to 3m step 1m temp\n  temp{room=\"hall\"} 1+1x3\n  temp{room=\"lab\"} 10x1 _ 20\n  {} _x2 1 2\n",
        );
        let v = series_values(only_eval(&s));
        assert_eq!(v[0].len(), 4);
        assert_eq!(
            v[1],
            vec![
                Some(SampleValue::Float(10.0)),
                Some(SampleValue::Float(10.0)),
                None,
                Some(SampleValue::Float(20.0))
            ]
        );
        assert_eq!(v[2][..2], [None, None]);
    }

    #[test]
    fn expect_range_vector_overrides_at_and_allows_many_values() {
        let s = parse(
            "eval instant at 5m m[1m]\n  expect range vector from 10s to 1m step 10s\n  m{env=\"a\"} 2 3 _ 5x1\n",
        );
        let e = only_eval(&s);
        assert_eq!(e.mode, EvalMode::Instant { at_ms: 60_000 });
        assert_eq!(e.expect.range_vector, Some((10_000, 60_000, 10_000)));
        assert_eq!(series_values(e)[0].len(), 5);
        let s =
            parse("eval instant at 1m none[1m]\n  expect range vector from 10s to 1m step 10s\n");
        assert_eq!(only_eval(&s).expected, Expected::Series(vec![]));
        assert!(
            parse_err(
                "eval range from 0 to 1m step 1m x\n  expect range vector from 0 to 1m step 1m\n"
            )
            .contains("instant")
        );
        assert!(
            parse_err("eval instant at 0 x\n  expect range vector from 1m to 0 step 1m\n")
                .contains("before")
        );
    }

    #[test]
    fn expect_string_forms() {
        for (line, want) in [
            ("expect string `Foo`", "Foo"),
            ("expect string \" Foo \"", " Foo "),
            ("expect string \"\"", ""),
            ("expect string \"a\\tb\"", "a\tb"),
        ] {
            let s = parse(&format!("eval instant at 0 x\n\t{line}\n"));
            assert_eq!(only_eval(&s).expect.string.as_deref(), Some(want), "{line}");
        }
        assert!(parse_err("eval instant at 0 x\n expect string Foo\n").contains("quoted"));
        assert!(parse_err("eval instant at 0 x\n expect string \"a\" b\n").contains("after"));
        assert!(
            parse_err("eval range from 0 to 1m step 1m x\n expect string \"a\"\n")
                .contains("instant")
        );
    }

    #[test]
    fn deprecated_eval_spellings() {
        let s = parse(
            "eval_fail instant at 0 a\n\neval_warn instant at 0 b\n\neval_info range from 0 to 1m step 1m c\n\neval_ordered instant at 0 d\n",
        );
        let e = evals(&s);
        assert!(matches!(e[0].expect.fail, Some(TextMatch::Any)));
        assert_eq!(e[1].expect.warn.len(), 1);
        assert_eq!(e[2].expect.info.len(), 1);
        assert!(e[3].expect.ordered);
        assert!(parse_err("eval_ordered range from 0 to 1m step 1m x\n").contains("instant"));
        assert!(parse_err("eval_sometimes instant at 0 x\n").contains("unknown eval"));
    }

    #[test]
    fn legacy_fail_message_lines_end_the_block() {
        let s = parse(
            "eval_fail instant at 0 a\n  expected_fail_message boom bang\n\neval_fail instant at 0 b\n  expected_fail_regexp bo+m\n",
        );
        let e = evals(&s);
        assert!(matches!(&e[0].expect.fail, Some(TextMatch::Exact(t)) if t == "boom bang"));
        assert!(e[1].expect.fail.as_ref().unwrap().matches("a booom"));
        // Without eval_fail the keyword is just a (bad) series line.
        assert!(parse_script("t", "eval instant at 0 a\n  expected_fail_message x\n").is_err());
    }

    #[test]
    fn repeated_expected_series_keeps_the_later_line() {
        let s = parse(
            "eval range from 0 to 1m step 1m x\n  {a=\"1\"} 1 1\n  {a=\"2\"} 2 2\n  {a=\"1\"} 0 0\n",
        );
        let Expected::Series(series) = &only_eval(&s).expected else {
            panic!()
        };
        assert_eq!(series.len(), 2);
        assert_eq!(series[1].labels, labels(&[("a", "1")]));
        assert_eq!(series[1].values[0], Some(SampleValue::Float(0.0)));
    }

    #[test]
    fn eval_header_errors() {
        assert!(parse_err("eval instant 5m x\n").contains("\"at\""));
        assert!(parse_err("eval instant at 5m\n").contains("no expression"));
        assert!(parse_err("eval sometime at 5m x\n").contains("instant"));
        assert!(parse_err("eval range from 0 to 1m x\n").contains("step"));
        assert!(parse_err("eval instant at -5m x\n").contains("duration"));
    }

    #[test]
    fn bad_input_never_panics() {
        for text in [
            "load",
            "load 1m\n {",
            "load 1m\n a{{",
            "eval",
            "eval range",
            "load 1m\n a {{schema:0}}+",
            "load 1m\n a@st",
            "eval instant at 0 x\n expect",
            "eval instant at 0 x\n expect range",
            "load 1m\n a \u{e9}x3 é",
            "load 1m\n a 1e",
            "load 1m\n a 99999999999999999999x1",
            "load 1m\n a {{}}+{{}}x99999999999",
        ] {
            let _ = parse_script("t", text);
        }
    }

    // --- native-histogram heuristic ---

    #[test]
    fn nh_heuristic_tracks_loads_expectations_and_clear() {
        let s = parse(concat!(
            "load 1m\n  h {{count:1}}\n  f 1\n\n",
            "eval instant at 0 rate(h[5m])\n\n",
            "eval instant at 0 f + \"h\"\n\n",
            "eval instant at 0 {__name__=~\"h|z\"}\n\n",
            "eval instant at 0 f\n  f {{count:1}}\n\n",
            "load_with_nhcb 1m\n  lat_bucket{le=\"1\"} 1\n\n",
            "eval instant at 0 histogram_count(lat)\n\n",
            "clear\n\n",
            "eval instant at 0 h\n",
        ));
        let flags: Vec<bool> = evals(&s)
            .iter()
            .map(|e| e.touches_native_histograms)
            .collect();
        assert_eq!(flags, vec![true, false, true, true, true, false]);
    }

    #[test]
    fn metric_reference_scan_skips_strings_and_durations() {
        let refs = metric_references(
            r#"label_replace(m5[5m] offset 1h, "dst", "x", "", "") + {__name__="n"}"#,
        );
        let names: Vec<&NameRef> = refs.iter().collect();
        assert!(names.contains(&&NameRef::Exact("m5".into())));
        assert!(names.contains(&&NameRef::Exact("n".into())));
        assert!(!names.contains(&&NameRef::Exact("dst".into())));
        assert!(!names.contains(&&NameRef::Exact("m".into())));
        // A literal that is not UTF-8 once decoded must not end the scan.
        let refs = metric_references(r#"count_values("a\xc5z", version)"#);
        assert!(refs.contains(&NameRef::Exact("version".into())));
    }
}
