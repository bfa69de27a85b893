//! Prometheus-compatible expansion of alerting-rule templates (labels and
//! annotations), built on `gtmpl` (Go's `text/template` for Rust).
//!
//! What Prometheus does (rules/alerting.go, template/template.go) and what this
//! module mirrors:
//!
//! * the definitions [`TEMPLATE_DEFS`] are prepended to the user's text, so a
//!   template can say `{{ $labels.instance }}`, `{{ $value }}`,
//!   `{{ $externalLabels.cluster }}` and `{{ $externalURL }}`;
//! * the data is `{Labels, ExternalLabels, ExternalURL, Value}`; a missing label
//!   expands to the empty string (`missingkey=zero` on a `map[string]string`);
//! * the Prometheus function set (`humanize*`, `query`, `first`, `label`,
//!   `value`, `match`, `reReplaceAll`, `title`, `graphLink`, ...) with the same
//!   output text, and Go-like `printf`, `print`, `println`, `eq`/`lt`/...;
//! * floats print the way Go's `%v` prints a `float64` (`1e+06`, `100000`,
//!   `+Inf`, `NaN`).
//!
//! Workarounds for gtmpl 0.7.1 (each is explained where it is implemented):
//!
//! * **Floats are carried as Go-formatted strings.** `gtmpl_value::Number`
//!   turns every integral `f64` into an integer, truncates negative fractions
//!   (`-0.5` becomes `0`) and prints with Rust's formatting (`1000000` instead
//!   of Go's `1e+06`). So `$value`, `.Value` of query samples, `value` and
//!   `parseDuration` yield `Value::String` holding Go's `%v` text, and the
//!   strings are remembered in a per-expansion registry so that `printf`, the
//!   comparison functions, `and`/`or`/`not` and `print` treat them as numbers.
//! * **Printing.** gtmpl prints values with Rust's `Debug` (`{{ $labels }}`
//!   would give `{"job": String("node")}`, Go: `map[job:node]`) and a missing
//!   map key as `<no value>` (Prometheus: empty). Every printing action
//!   `{{ X }}` is therefore rewritten to `{{ X | _goPrint }}`, which formats
//!   with Go's `%v` and prints a missing label as "".
//! * **Function hooks.** gtmpl functions are plain `fn` pointers, so `query`,
//!   `externalURL`, `pathPrefix` and the float registry read a thread-local
//!   state that [`expand`] installs for the duration of one expansion (see
//!   [`StateGuard`]).
//! * **Pre-processing.** gtmpl's lexer and parser hang, panic or abort the
//!   process on some inputs (a non-ASCII character inside an action, an
//!   unclosed action, `"\x4"`, a multi-byte character before `{{-`,
//!   recursive `{{template}}` calls) and decode some literals wrongly
//!   (`"a\\"`, raw strings with backslashes, hex and octal numbers, `-0.5`).
//!   [`prepare`] rejects the dangerous inputs with a clear error, decodes
//!   literals with Go's rules and re-encodes them for gtmpl, and applies trim
//!   markers itself; parsing and execution also run under `catch_unwind`.
//!
//! Known differences from Prometheus (all rare in alerting rules):
//!
//! * `{{ range $k, $v := $labels }}` visits the labels in arbitrary order (Go:
//!   sorted by key); gtmpl iterates its `HashMap`.
//! * `{{ if $value }}` / `{{ with $value }}` are true for a zero value (floats
//!   are strings; gtmpl's own truth test is used by `if`/`with`). `and`, `or`
//!   and `not` use Go's truth. Write `{{ if ne $value 0.0 }}`.
//! * `and`/`or` evaluate all their arguments (Go 1.18+ stops early).
//! * Comparisons and `printf` float verbs accept numeric strings and mixed
//!   int/float operands where Go reports an error.
//! * `toTime`, `toDuration` and `now` are not provided: gtmpl cannot call
//!   methods with arguments (`(… | toTime).Format "2006"`), and the expansion
//!   time is not part of [`TemplateContext`]. `slice`, `call` on methods,
//!   `break`/`continue`, `else with` and variable assignment (`$x = 1`) are
//!   not supported by gtmpl. Non-ASCII identifiers are rejected.
//! * Parse errors carry no line number (gtmpl's are wrong), and messages are
//!   worded like Go's but without the `template: NAME:LINE:COL: executing
//!   ... at <...>:` context.
//! * `printf`'s `%x` of floats and the `#` flag for floats are not
//!   implemented; `title` follows x/text's word breaking approximately.
//! * gtmpl starts a thread per parse (its lexer); parsed templates are cached
//!   per thread (see [`CACHE`]), so repeated expansions skip that.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use gtmpl::{Context, Func, FuncError, Template, Value};

/// The variable definitions Prometheus prepends to every alerting template.
pub const TEMPLATE_DEFS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// One sample returned by the `query` template function.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QuerySample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The data an alerting template is expanded against.
#[derive(Debug, Clone, Copy)]
pub struct TemplateContext<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    pub value: f64,
}

/// The hook that runs a PromQL instant query for the `query` function.
pub type QueryFn<'a> = dyn Fn(&str) -> Result<Vec<QuerySample>, String> + 'a;

/// Why a template could not be parsed or expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// The template text is not a valid template.
    Parse { name: String, message: String },
    /// The template parsed but failed while executing (a function error, a
    /// field of a non-map, a failed query, ...).
    Execute { name: String, message: String },
}

impl TemplateError {
    /// The message without the `error parsing/executing template NAME:` prefix.
    pub fn message(&self) -> &str {
        match self {
            TemplateError::Parse { message, .. } | TemplateError::Execute { message, .. } => {
                message
            }
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, name, message) = match self {
            TemplateError::Parse { name, message } => ("parsing", name, message),
            TemplateError::Execute { name, message } => ("executing", name, message),
        };
        if name.is_empty() {
            write!(f, "error {what} template: {message}")
        } else {
            write!(f, "error {what} template {name}: {message}")
        }
    }
}

impl std::error::Error for TemplateError {}

/// Expands one alerting template (a label value or an annotation) the way
/// Prometheus does. `name` is used in error messages (Prometheus uses
/// `__alert_<rule name>`). `query` backs the `query` function; without it, a
/// template that calls `query` fails with an execution error.
///
/// Text without `{{` is returned unchanged without being parsed.
pub fn expand(
    name: &str,
    text: &str,
    ctx: &TemplateContext,
    query: Option<&QueryFn<'_>>,
) -> Result<String, TemplateError> {
    if !text.contains("{{") {
        return Ok(text.to_owned());
    }
    let compiled = compile(name, text);
    let compiled = compiled.as_ref().as_ref().map_err(Clone::clone)?;
    let _guard = StateGuard::install(query, ctx.external_url);
    with_state(|st| {
        if let Some(st) = st {
            st.floats.extend(compiled.floats.iter().cloned());
        }
    });
    let data = context_value(ctx);
    guarded(name, || {
        compiled
            .tmpl
            .render(&Context::from(data))
            .map_err(|e| TemplateError::Execute {
                name: name.to_owned(),
                message: exec_error_message(e),
            })
    })
}

/// A parsed template, ready to render.
struct Compiled {
    tmpl: Template,
    /// Go `%v` texts of its float literals, registered at each expansion.
    floats: Vec<String>,
}

type CompileResult = Rc<Result<Compiled, TemplateError>>;

const CACHE_MAX: usize = 512;

thread_local! {
    /// Parsed templates by (name, text). Rules expand the same texts at every
    /// evaluation, and parsing dominates the cost (gtmpl starts a lexer
    /// thread per parse). Cleared when it reaches [`CACHE_MAX`] entries.
    static CACHE: RefCell<HashMap<(String, String), CompileResult>> = RefCell::new(HashMap::new());
}

fn compile(name: &str, text: &str) -> CompileResult {
    let key = (name.to_owned(), text.to_owned());
    if let Some(hit) = CACHE.with(|c| c.borrow().get(&key).cloned()) {
        return hit;
    }
    let result = prepare(name, text)
        .map_err(|message| TemplateError::Parse {
            name: name.to_owned(),
            message,
        })
        .and_then(|prepared| {
            let full = format!("{TEMPLATE_DEFS}{}", prepared.text);
            let tmpl = guarded(name, || parse_template(name, full))?;
            Ok(Compiled {
                tmpl,
                floats: prepared.floats,
            })
        });
    let result = Rc::new(result);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHE_MAX {
            c.clear();
        }
        c.insert(key, Rc::clone(&result));
    });
    result
}

/// Like [`expand`], but on failure returns what Prometheus puts into the label
/// or annotation: `<error expanding template: ...>`.
pub fn expand_or_error_text(
    name: &str,
    text: &str,
    ctx: &TemplateContext,
    query: Option<&QueryFn<'_>>,
) -> String {
    expand(name, text, ctx, query).unwrap_or_else(|e| format!("<error expanding template: {e}>"))
}

/// Parses `text` (with [`TEMPLATE_DEFS`] prepended, as at expansion time)
/// without executing it, for `check rules`: unknown functions, undefined
/// variables and syntax errors are reported.
pub fn check_syntax(text: &str) -> Result<(), TemplateError> {
    if !text.contains("{{") {
        return Ok(());
    }
    let name = "";
    let prepared = prepare(name, text).map_err(|message| TemplateError::Parse {
        name: name.to_owned(),
        message,
    })?;
    let full = format!("{TEMPLATE_DEFS}{}", prepared.text);
    guarded(name, || parse_template(name, full).map(|_| ()))
}

// ---------------------------------------------------------------------------
// gtmpl plumbing
// ---------------------------------------------------------------------------

/// Appended as the last stage of every action that prints (`{{ X }}` becomes
/// `{{ X | _goPrint }}`), because gtmpl prints values with Rust's `Debug`
/// (`{"job": String("node")}` for `{{ $labels }}`, Go: `map[job:node]`) and
/// prints a missing map key as `<no value>` (Prometheus, with
/// `missingkey=zero` on a `map[string]string`: empty).
const PRINT_FUNC: &str = "_goPrint";

/// Functions added to (or replacing) gtmpl's builtins.
const FUNCS: &[(&str, Func)] = &[
    (PRINT_FUNC, fn_go_print),
    // Prometheus' functions.
    ("query", fn_query),
    ("first", fn_first),
    ("label", fn_label),
    ("value", fn_value),
    ("strvalue", fn_strvalue),
    ("args", fn_args),
    ("reReplaceAll", fn_re_replace_all),
    ("safeHtml", fn_safe_html),
    ("match", fn_match),
    ("title", fn_title),
    ("toUpper", fn_to_upper),
    ("toLower", fn_to_lower),
    ("graphLink", fn_graph_link),
    ("tableLink", fn_table_link),
    ("sortByLabel", fn_sort_by_label),
    ("stripPort", fn_strip_port),
    ("stripDomain", fn_strip_domain),
    ("humanize", fn_humanize),
    ("humanize1024", fn_humanize1024),
    ("humanizeDuration", fn_humanize_duration),
    ("humanizePercentage", fn_humanize_percentage),
    ("humanizeTimestamp", fn_humanize_timestamp),
    ("pathPrefix", fn_path_prefix),
    ("externalURL", fn_external_url),
    ("parseDuration", fn_parse_duration),
    ("urlQueryEscape", fn_url_query_escape),
    // Go text/template builtins that gtmpl lacks or gets wrong for our value
    // representation.
    ("printf", fn_printf),
    ("print", fn_print),
    ("println", fn_println),
    ("eq", fn_eq),
    ("ne", fn_ne),
    ("lt", fn_lt),
    ("le", fn_le),
    ("gt", fn_gt),
    ("ge", fn_ge),
    ("and", fn_and),
    ("or", fn_or),
    ("not", fn_not),
    ("len", fn_len),
    ("urlquery", fn_urlquery),
    ("html", fn_html),
    ("js", fn_js),
];

fn parse_template(name: &str, full: String) -> Result<Template, TemplateError> {
    let mut tmpl = Template::with_name(name);
    tmpl.add_funcs(FUNCS);
    tmpl.parse(full).map_err(|e| TemplateError::Parse {
        name: name.to_owned(),
        message: parse_error_message(e),
    })?;
    Ok(tmpl)
}

/// Runs `f`, turning a panic inside gtmpl into an error (Prometheus recovers
/// from panics during expansion too).
fn guarded<T>(
    name: &str,
    f: impl FnOnce() -> Result<T, TemplateError>,
) -> Result<T, TemplateError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(TemplateError::Execute {
                name: name.to_owned(),
                message: format!("panic in template engine: {msg}"),
            })
        }
    }
}

fn parse_error_message(e: gtmpl::error::ParseError) -> String {
    // gtmpl's line numbers are unreliable (its lexer counts every text item as
    // a line), so the location is left out.
    match e {
        gtmpl::error::ParseError::WithContext(_, msg) => msg,
        other => other.to_string(),
    }
}

fn exec_error_message(e: gtmpl::error::ExecError) -> String {
    use gtmpl::error::ExecError;
    match e {
        ExecError::NoFiledFor(field, _) => format!("can't evaluate field {field}"),
        ExecError::OnlyMapsAndObjectsHaveFields => {
            "can't evaluate a field of a value that is not a map".to_owned()
        }
        ExecError::InvalidRange(v) => format!("range can't iterate over {}", go_sprint_one(&v)),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Per-expansion state (thread-local)
// ---------------------------------------------------------------------------

/// State that template functions need but cannot capture, because gtmpl
/// functions are plain `fn(&[Value])` pointers, not closures: the query hook
/// (borrowed from the caller of [`expand`], so it need not be `'static`), the
/// external URL and the float registry. Template functions run on the thread
/// that calls [`expand`] (only gtmpl's lexer runs on its own thread), so a
/// thread-local installed for the duration of one expansion reaches them.
struct ExpansionState {
    /// The query hook, with its lifetime erased; see [`StateGuard::install`].
    query: Option<&'static QueryFn<'static>>,
    external_url: String,
    /// Go `%v` texts of the floats handed to the template (see module docs).
    floats: HashSet<String>,
}

thread_local! {
    static STATE: RefCell<Option<ExpansionState>> = const { RefCell::new(None) };
}

/// Installs an [`ExpansionState`] for the current thread and restores the
/// previous one (normally none) when dropped, also when unwinding. Nested
/// expansions (a query hook that itself expands a template) therefore work.
struct StateGuard {
    previous: Option<ExpansionState>,
}

impl StateGuard {
    fn install(query: Option<&QueryFn<'_>>, external_url: &str) -> StateGuard {
        // SAFETY: the reference is only stored in this thread's STATE while
        // this guard lives; the guard is a local of `expand`, which holds the
        // borrow of `query` for its whole body, and `Drop` removes the
        // reference (LIFO, also on panic) before `expand` returns. Template
        // functions only copy the reference out of STATE while the expansion
        // runs, inside `expand`'s dynamic extent.
        let query: Option<&'static QueryFn<'static>> = query
            .map(|q| unsafe { std::mem::transmute::<&QueryFn<'_>, &'static QueryFn<'static>>(q) });
        let state = ExpansionState {
            query,
            external_url: external_url.to_owned(),
            floats: HashSet::new(),
        };
        let previous = STATE.with(|s| s.replace(Some(state)));
        StateGuard { previous }
    }
}

impl Drop for StateGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = STATE.try_with(|s| *s.borrow_mut() = previous);
    }
}

fn with_state<R>(f: impl FnOnce(Option<&mut ExpansionState>) -> R) -> R {
    STATE.with(|s| f(s.borrow_mut().as_mut()))
}

/// A float as template value: its Go `%v` text, registered as a float.
fn float_value(v: f64) -> Value {
    let s = go_format_float(v, 'g', None);
    with_state(|st| {
        if let Some(st) = st {
            st.floats.insert(s.clone());
        }
    });
    Value::String(s)
}

fn is_registered_float(s: &str) -> bool {
    with_state(|st| st.is_some_and(|st| st.floats.contains(s)))
}

fn labels_value(labels: &BTreeMap<String, String>) -> Value {
    Value::Map(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn sample_value(s: &QuerySample) -> Value {
    let mut o = HashMap::new();
    o.insert("Labels".to_owned(), labels_value(&s.labels));
    o.insert("Value".to_owned(), float_value(s.value));
    Value::Object(o)
}

fn context_value(ctx: &TemplateContext) -> Value {
    let mut o = HashMap::new();
    o.insert("Labels".to_owned(), labels_value(ctx.labels));
    o.insert(
        "ExternalLabels".to_owned(),
        labels_value(ctx.external_labels),
    );
    o.insert(
        "ExternalURL".to_owned(),
        Value::String(ctx.external_url.to_owned()),
    );
    o.insert("Value".to_owned(), float_value(ctx.value));
    Value::Object(o)
}

// ---------------------------------------------------------------------------
// Pre-processing
// ---------------------------------------------------------------------------

const MAX_NESTING: usize = 64;

/// The template text as handed to gtmpl, and the Go `%v` texts of the float
/// literals it contains (to register as floats).
struct Prepared {
    text: String,
    floats: Vec<String>,
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
fn prepare(name: &str, text: &str) -> Result<Prepared, String> {
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

struct ScannedAction {
    /// Byte offset just past the closing `}}`.
    end: usize,
    keyword: String,
    first_string: Option<String>,
    /// The action ended with ` -}}`.
    right_trim: bool,
}

/// Go template's white space for trim markers.
fn is_go_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Scans one action from `start` (just past `{{` and a trim marker) to its
/// closing `}}`, appending the rewritten action to `out`.
fn scan_action(
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
fn number_token_len(s: &str) -> usize {
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
fn parse_go_int(tok: &str) -> Option<i128> {
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
fn parse_decimal_float(tok: &str) -> Option<f64> {
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

fn hex_value(digits: &str) -> Option<u32> {
    if digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        u32::from_str_radix(digits, 16).ok()
    } else {
        None
    }
}

/// Decodes one Go escape (after the backslash) from `chars`, appending the
/// bytes to `out`.
fn decode_escape(
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
fn decode_go_string(s: &str) -> Result<(String, usize), String> {
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
fn decode_go_char(s: &str) -> Result<(u32, usize), String> {
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
fn gtmpl_quote(v: &str) -> String {
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
fn go_rune_u(c: char) -> String {
    if crate::gocompat::strconv::is_print(c) {
        format!("U+{:04X} '{c}'", c as u32)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

fn check_recursion(root: &str, calls: &[(String, String)]) -> Result<(), String> {
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

// ---------------------------------------------------------------------------
// Argument helpers
// ---------------------------------------------------------------------------

fn err(func: &str, msg: impl fmt::Display) -> FuncError {
    FuncError::Generic(format!("error calling {func}: {msg}"))
}

fn want_args(func: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() != n {
        return Err(FuncError::Generic(format!(
            "wrong number of args for {func}: want {n} got {}",
            args.len()
        )));
    }
    Ok(())
}

/// Go's type name of a value, for error messages.
fn go_type_name(v: &Value) -> &'static str {
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
fn arg_str<'v>(func: &str, v: &'v Value) -> Result<&'v str, FuncError> {
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

fn number_to_f64(n: &gtmpl_value::Number) -> f64 {
    n.as_f64()
        .or_else(|| n.as_i64().map(|i| i as f64))
        .or_else(|| n.as_u64().map(|u| u as f64))
        .unwrap_or(f64::NAN)
}

/// Go's `strconv.ParseFloat(s, 64)`, with its error text.
fn go_parse_float(s: &str) -> Result<f64, String> {
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
fn arg_float(func: &str, v: &Value) -> Result<f64, FuncError> {
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

type SampleParts<'v> = (Option<&'v HashMap<String, Value>>, Option<&'v Value>);

/// The `Labels` map and `Value` of a query sample.
fn sample_parts<'v>(func: &str, v: &'v Value) -> Result<SampleParts<'v>, FuncError> {
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

fn label_of(labels: Option<&HashMap<String, Value>>, name: &str) -> String {
    match labels.and_then(|l| l.get(name)) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::NoValue) | None => String::new(),
        Some(other) => go_sprint_one(other),
    }
}

// ---------------------------------------------------------------------------
// Prometheus template functions
// ---------------------------------------------------------------------------

fn fn_query(args: &[Value]) -> Result<Value, FuncError> {
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

fn fn_first(args: &[Value]) -> Result<Value, FuncError> {
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

fn fn_label(args: &[Value]) -> Result<Value, FuncError> {
    want_args("label", args, 2)?;
    let name = arg_str("label", &args[0])?;
    let (labels, _) = sample_parts("label", &args[1])?;
    Ok(Value::String(label_of(labels, name)))
}

fn fn_value(args: &[Value]) -> Result<Value, FuncError> {
    want_args("value", args, 1)?;
    let (_, value) = sample_parts("value", &args[0])?;
    Ok(value.cloned().unwrap_or(Value::NoValue))
}

fn fn_strvalue(args: &[Value]) -> Result<Value, FuncError> {
    want_args("strvalue", args, 1)?;
    let (labels, _) = sample_parts("strvalue", &args[0])?;
    Ok(Value::String(label_of(labels, "__value__")))
}

fn fn_args(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Map(
        args.iter()
            .enumerate()
            .map(|(i, a)| (format!("arg{i}"), a.clone()))
            .collect(),
    ))
}

fn compile_go_regex(func: &str, pattern: &str) -> Result<regex::Regex, FuncError> {
    crate::gocompat::regex::compile(pattern).map_err(|e| {
        let msg = e.split_whitespace().collect::<Vec<_>>().join(" ");
        err(func, format!("error parsing regexp: {msg}"))
    })
}

fn fn_re_replace_all(args: &[Value]) -> Result<Value, FuncError> {
    want_args("reReplaceAll", args, 3)?;
    let pattern = arg_str("reReplaceAll", &args[0])?;
    let repl = arg_str("reReplaceAll", &args[1])?;
    let text = arg_str("reReplaceAll", &args[2])?;
    let re = compile_go_regex("reReplaceAll", pattern)?;
    Ok(Value::String(re.replace_all(text, repl).into_owned()))
}

fn fn_match(args: &[Value]) -> Result<Value, FuncError> {
    want_args("match", args, 2)?;
    let pattern = arg_str("match", &args[0])?;
    let text = arg_str("match", &args[1])?;
    let re = compile_go_regex("match", pattern)?;
    Ok(Value::Bool(re.is_match(text)))
}

fn fn_safe_html(args: &[Value]) -> Result<Value, FuncError> {
    want_args("safeHtml", args, 1)?;
    Ok(Value::String(arg_str("safeHtml", &args[0])?.to_owned()))
}

fn fn_to_upper(args: &[Value]) -> Result<Value, FuncError> {
    want_args("toUpper", args, 1)?;
    Ok(Value::String(crate::gocompat::case::to_upper(arg_str(
        "toUpper", &args[0],
    )?)))
}

fn fn_to_lower(args: &[Value]) -> Result<Value, FuncError> {
    want_args("toLower", args, 1)?;
    Ok(Value::String(crate::gocompat::case::to_lower(arg_str(
        "toLower", &args[0],
    )?)))
}

/// Word-break "Mid" characters (MidLetter, MidNumLet, Single_Quote).
fn is_word_mid(c: char) -> bool {
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

fn is_combining_mark(c: char) -> bool {
    matches!(c as u32, 0x300..=0x36F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F | 0x200D)
}

/// `cases.Title(language.AmericanEnglish, cases.NoLower)`: the first cased
/// letter of each word is title-cased, the rest is left alone. Words are
/// delimited with x/text's approximation of Unicode word breaking.
fn go_title(s: &str) -> String {
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

fn fn_title(args: &[Value]) -> Result<Value, FuncError> {
    want_args("title", args, 1)?;
    Ok(Value::String(go_title(arg_str("title", &args[0])?)))
}

/// Go's `url.QueryEscape`.
fn go_query_escape(s: &str) -> String {
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

fn fn_graph_link(args: &[Value]) -> Result<Value, FuncError> {
    want_args("graphLink", args, 1)?;
    let expr = arg_str("graphLink", &args[0])?;
    Ok(Value::String(format!(
        "/graph?g0.expr={}&g0.tab=0",
        go_query_escape(expr)
    )))
}

fn fn_table_link(args: &[Value]) -> Result<Value, FuncError> {
    want_args("tableLink", args, 1)?;
    let expr = arg_str("tableLink", &args[0])?;
    Ok(Value::String(format!(
        "/graph?g0.expr={}&g0.tab=1",
        go_query_escape(expr)
    )))
}

fn fn_url_query_escape(args: &[Value]) -> Result<Value, FuncError> {
    want_args("urlQueryEscape", args, 1)?;
    Ok(Value::String(go_query_escape(arg_str(
        "urlQueryEscape",
        &args[0],
    )?)))
}

fn fn_sort_by_label(args: &[Value]) -> Result<Value, FuncError> {
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
fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
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

fn fn_strip_port(args: &[Value]) -> Result<Value, FuncError> {
    want_args("stripPort", args, 1)?;
    let hp = arg_str("stripPort", &args[0])?;
    Ok(Value::String(match split_host_port(hp) {
        Some((host, _)) => host.to_owned(),
        None => hp.to_owned(),
    }))
}

fn fn_strip_domain(args: &[Value]) -> Result<Value, FuncError> {
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

fn g4(v: f64) -> String {
    go_format_float(v, 'g', Some(4))
}

fn humanize(mut v: f64) -> String {
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

fn humanize1024(mut v: f64) -> String {
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

fn humanize_duration(mut v: f64) -> String {
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

fn humanize_timestamp(v: f64) -> Result<String, String> {
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

fn fn_humanize(args: &[Value]) -> Result<Value, FuncError> {
    want_args("humanize", args, 1)?;
    Ok(Value::String(humanize(arg_float("humanize", &args[0])?)))
}

fn fn_humanize1024(args: &[Value]) -> Result<Value, FuncError> {
    want_args("humanize1024", args, 1)?;
    Ok(Value::String(humanize1024(arg_float(
        "humanize1024",
        &args[0],
    )?)))
}

fn fn_humanize_duration(args: &[Value]) -> Result<Value, FuncError> {
    want_args("humanizeDuration", args, 1)?;
    Ok(Value::String(humanize_duration(arg_float(
        "humanizeDuration",
        &args[0],
    )?)))
}

fn fn_humanize_percentage(args: &[Value]) -> Result<Value, FuncError> {
    want_args("humanizePercentage", args, 1)?;
    let v = arg_float("humanizePercentage", &args[0])?;
    Ok(Value::String(format!("{}%", g4(v * 100.0))))
}

fn fn_humanize_timestamp(args: &[Value]) -> Result<Value, FuncError> {
    want_args("humanizeTimestamp", args, 1)?;
    let v = arg_float("humanizeTimestamp", &args[0])?;
    humanize_timestamp(v)
        .map(Value::String)
        .map_err(|e| err("humanizeTimestamp", e))
}

/// The path of a URL, as Go's `url.Parse(u).Path` (percent-decoded).
fn url_path(u: &str) -> String {
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

fn percent_decode(s: &str) -> String {
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

fn fn_path_prefix(args: &[Value]) -> Result<Value, FuncError> {
    want_args("pathPrefix", args, 0)?;
    let url = with_state(|st| st.map(|st| st.external_url.clone()).unwrap_or_default());
    Ok(Value::String(url_path(&url)))
}

fn fn_external_url(args: &[Value]) -> Result<Value, FuncError> {
    want_args("externalURL", args, 0)?;
    let url = with_state(|st| st.map(|st| st.external_url.clone()).unwrap_or_default());
    Ok(Value::String(url))
}

fn fn_parse_duration(args: &[Value]) -> Result<Value, FuncError> {
    want_args("parseDuration", args, 1)?;
    let s = arg_str("parseDuration", &args[0])?;
    let ns = crate::gocompat::duration::parse(s).map_err(|e| err("parseDuration", e))?;
    Ok(float_value(ns as f64 / 1e9))
}

// ---------------------------------------------------------------------------
// Go builtins
// ---------------------------------------------------------------------------

/// A value classified the way Go's fmt and comparison functions see it.
enum GoVal<'v> {
    Int(i128),
    Float(f64),
    Str(&'v str),
    Bool(bool),
    Other(&'v Value),
}

fn classify(v: &Value) -> GoVal<'_> {
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
fn go_truth(v: &Value) -> bool {
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
fn go_sprint_one(v: &Value) -> String {
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

fn is_go_string(v: &Value) -> bool {
    matches!(classify(v), GoVal::Str(_))
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
fn go_sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !is_go_string(a) && !is_go_string(&args[i - 1]) {
            out.push(' ');
        }
        out.push_str(&go_sprint_one(a));
    }
    out
}

fn fn_go_print(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(
        args.last().map(go_sprint_one).unwrap_or_default(),
    ))
}

fn fn_print(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(go_sprint(args)))
}

fn fn_println(args: &[Value]) -> Result<Value, FuncError> {
    let items: Vec<String> = args.iter().map(go_sprint_one).collect();
    Ok(Value::String(format!("{}\n", items.join(" "))))
}

/// text/template's `evalArgs`: one string argument as it is, else Sprint.
fn eval_args(args: &[Value]) -> String {
    match args {
        [Value::String(s)] => s.clone(),
        _ => go_sprint(args),
    }
}

fn fn_urlquery(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(go_query_escape(&eval_args(args))))
}

fn fn_html(args: &[Value]) -> Result<Value, FuncError> {
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

fn fn_js(args: &[Value]) -> Result<Value, FuncError> {
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

fn fn_len(args: &[Value]) -> Result<Value, FuncError> {
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

fn fn_and(args: &[Value]) -> Result<Value, FuncError> {
    if args.is_empty() {
        return Err(FuncError::AtLeastXArgs("and".into(), 1));
    }
    Ok(args
        .iter()
        .find(|a| !go_truth(a))
        .unwrap_or(&args[args.len() - 1])
        .clone())
}

fn fn_or(args: &[Value]) -> Result<Value, FuncError> {
    if args.is_empty() {
        return Err(FuncError::AtLeastXArgs("or".into(), 1));
    }
    Ok(args
        .iter()
        .find(|a| go_truth(a))
        .unwrap_or(&args[args.len() - 1])
        .clone())
}

fn fn_not(args: &[Value]) -> Result<Value, FuncError> {
    want_args("not", args, 1)?;
    Ok(Value::Bool(!go_truth(&args[0])))
}

/// Compares two values like Go's `eq`/`lt`, a little more leniently: integers
/// and floats compare numerically (Go refuses `int` vs `float64`), and a
/// string that parses as a number compares numerically with a number (our
/// floats are strings). `Ok(None)` means unordered (NaN).
fn go_compare(
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

fn fn_eq(args: &[Value]) -> Result<Value, FuncError> {
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

fn fn_ne(args: &[Value]) -> Result<Value, FuncError> {
    want_args("ne", args, 2)?;
    Ok(Value::Bool(
        go_compare("ne", &args[0], &args[1], false)? != Some(Ordering::Equal),
    ))
}

fn ordered_cmp(func: &str, args: &[Value], ok: fn(Ordering) -> bool) -> Result<Value, FuncError> {
    want_args(func, args, 2)?;
    Ok(Value::Bool(
        go_compare(func, &args[0], &args[1], true)?.is_some_and(ok),
    ))
}

fn fn_lt(args: &[Value]) -> Result<Value, FuncError> {
    ordered_cmp("lt", args, |o| o == Ordering::Less)
}

fn fn_le(args: &[Value]) -> Result<Value, FuncError> {
    ordered_cmp("le", args, |o| o != Ordering::Greater)
}

fn fn_gt(args: &[Value]) -> Result<Value, FuncError> {
    ordered_cmp("gt", args, |o| o == Ordering::Greater)
}

fn fn_ge(args: &[Value]) -> Result<Value, FuncError> {
    ordered_cmp("ge", args, |o| o != Ordering::Less)
}

fn fn_printf(args: &[Value]) -> Result<Value, FuncError> {
    let Some(first) = args.first() else {
        return Err(FuncError::AtLeastXArgs("printf".into(), 1));
    };
    let format = arg_str("printf", first)?;
    Ok(Value::String(go_sprintf(format, &args[1..])))
}

// ---------------------------------------------------------------------------
// Go fmt
// ---------------------------------------------------------------------------

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
fn go_format_float(v: f64, verb: char, prec: Option<usize>) -> String {
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

#[derive(Default, Clone, Copy)]
struct Spec {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    wid: Option<usize>,
    prec: Option<usize>,
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
fn fmt_integer(n: i128, base: u32, verb: char, spec: &Spec) -> String {
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
fn fmt_float(v: f64, verb: char, spec: &Spec) -> String {
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

fn bad_verb(verb: char, v: &Value) -> String {
    match v {
        Value::Nil => format!("%!{verb}(<nil>)"),
        _ => format!("%!{verb}({}={})", go_type_name(v), go_sprint_one(v)),
    }
}

fn fmt_arg(v: &Value, verb: char, spec: &Spec) -> String {
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
const MAX_FMT_NUM: u64 = 1_000_000;

fn parse_fmt_num(digits: &[char]) -> Option<usize> {
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
fn go_sprintf(format: &str, args: &[Value]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const EXT_URL: &str = "http://testhost:9090/path/prefix";

    /// Expands `text` with value 1.5, a few labels and no query engine.
    fn run(text: &str) -> Result<String, TemplateError> {
        run_value(text, 1.5)
    }

    fn run_value(text: &str, value: f64) -> Result<String, TemplateError> {
        let l = labels(&[("instance", "host1:9100"), ("job", "node")]);
        let e = labels(&[("cluster", "eu1")]);
        let ctx = TemplateContext {
            labels: &l,
            external_labels: &e,
            external_url: EXT_URL,
            value,
        };
        expand("test", text, &ctx, None)
    }

    fn ok(text: &str) -> String {
        match run(text) {
            Ok(s) => s,
            Err(e) => panic!("{text:?} failed: {e}"),
        }
    }

    fn with_query(text: &str, result: Vec<QuerySample>) -> Result<String, TemplateError> {
        let l = labels(&[("instance", "a")]);
        let e = BTreeMap::new();
        let ctx = TemplateContext {
            labels: &l,
            external_labels: &e,
            external_url: EXT_URL,
            value: 0.0,
        };
        let hook = move |_q: &str| -> Result<Vec<QuerySample>, String> { Ok(result.clone()) };
        expand("test", text, &ctx, Some(&hook))
    }

    fn sample(pairs: &[(&str, &str)], value: f64) -> QuerySample {
        QuerySample {
            labels: labels(pairs),
            value,
        }
    }

    /// Each input is fed through `{{ range . }}`-like per-value calls.
    fn each(func: &str, inputs: &[&str]) -> String {
        inputs
            .iter()
            .map(|i| ok(&format!("{{{{ {func} {i} }}}}:")))
            .collect()
    }

    #[test]
    fn plain_text_is_returned_unchanged() {
        assert_eq!(ok("plain text"), "plain text");
        assert_eq!(ok(""), "");
        // Not parsed at all: an invalid action-like text without "{{" is fine.
        assert_eq!(ok("}} {"), "}} {");
        assert_eq!(check_syntax("no template here"), Ok(()));
    }

    #[test]
    fn simple_values() {
        assert_eq!(ok("{{ 1 }}"), "1");
        assert_eq!(ok(r#"{{ "<b>" }}"#), "<b>");
        assert_eq!(ok("{{ true }}"), "true");
    }

    #[test]
    fn labels_value_and_external_labels() {
        assert_eq!(
            ok("{{ $labels.instance }} of {{ $labels.job }} is {{ $value }}"),
            "host1:9100 of node is 1.5"
        );
        assert_eq!(ok("{{ .Labels.job }}/{{ .Value }}"), "node/1.5");
        assert_eq!(ok("{{ $externalLabels.cluster }}"), "eu1");
        assert_eq!(ok("{{ .ExternalLabels.cluster }}"), "eu1");
        assert_eq!(ok("{{ $externalURL }}"), EXT_URL);
        assert_eq!(ok("{{ index $labels \"job\" }}"), "node");
        assert_eq!(ok("{{ $labels.job | toUpper }}"), "NODE");
        assert_eq!(ok("{{ len $labels }}"), "2");
    }

    #[test]
    fn missing_label_is_empty() {
        assert_eq!(ok("[{{ $labels.nope }}]"), "[]");
        assert_eq!(ok("[{{ $externalLabels.nope }}]"), "[]");
        assert_eq!(ok("[{{ index $labels \"nope\" }}]"), "[]");
        assert_eq!(ok("[{{ $labels.nope | toUpper }}]"), "[]");
        assert_eq!(ok("{{ if $labels.nope }}yes{{ else }}no{{ end }}"), "no");
        assert_eq!(ok("{{ with $labels.job }}{{ . }}{{ end }}"), "node");
        assert_eq!(ok(r#"{{ eq $labels.nope "" }}"#), "true");
        assert_eq!(ok(r#"[{{ printf "%s" $labels.nope }}]"#), "[]");
    }

    #[test]
    fn unknown_field_of_data_is_an_error() {
        let e = run("{{ .Foo }}").unwrap_err();
        assert!(matches!(e, TemplateError::Execute { .. }), "{e}");
        assert!(e.to_string().contains("can't evaluate field Foo"), "{e}");
    }

    #[test]
    fn value_prints_like_go() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (0.5, "0.5"),
            (-0.5, "-0.5"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (1e21, "1e+21"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123.456, "123.456"),
            (1353755652.0, "1.353755652e+09"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (0.0, "0"),
            (-0.0, "-0"),
            (0.1 + 0.2, "0.30000000000000004"),
        ];
        for (v, want) in cases {
            assert_eq!(run_value("{{ $value }}", *v).unwrap(), *want, "value {v}");
        }
    }

    #[test]
    fn humanize() {
        assert_eq!(
            each("humanize", &["0.0", "1.0", "1234567.0", ".12"]),
            "0:1:1.235M:120m:"
        );
        assert_eq!(
            each(
                "humanize",
                &[r#""0.0""#, r#""1.0""#, r#""1234567.0""#, r#"".12""#]
            ),
            "0:1:1.235M:120m:"
        );
        assert_eq!(
            each(
                "humanize",
                &["0", "-1", "1", "1234567", "9223372036854775807"]
            ),
            "0:-1:1:1.235M:9.223E:"
        );
        assert_eq!(each("humanize", &["18446744073709551615"]), "18.45E:");
        assert_eq!(ok("{{ humanize 1234567 }}"), "1.235M");
        assert_eq!(ok("{{ humanize 0.0012 }}"), "1.2m");
        assert_eq!(ok("{{ humanize 0 }}"), "0");
        assert_eq!(
            run_value("{{ $value | humanize }}", 1234567.0).unwrap(),
            "1.235M"
        );
        assert_eq!(
            run_value("{{ humanize $value }}", -0.0012).unwrap(),
            "-1.2m"
        );
        assert_eq!(run_value("{{ humanize $value }}", 1e-30).unwrap(), "1e-06y");
        let e = run(r#"{{ humanize "one" }}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"error executing template test: error calling humanize: strconv.ParseFloat: parsing "one": invalid syntax"#
        );
    }

    #[test]
    fn humanize1024() {
        assert_eq!(
            each("humanize1024", &["0.0", "1.0", "1048576.0", ".12"]),
            "0:1:1Mi:0.12:"
        );
        assert_eq!(
            each(
                "humanize1024",
                &[r#""0.0""#, r#""1.0""#, r#""1048576.0""#, r#"".12""#]
            ),
            "0:1:1Mi:0.12:"
        );
        assert_eq!(
            each(
                "humanize1024",
                &["0", "-1", "1", "1234567", "9223372036854775807"]
            ),
            "0:-1:1:1.177Mi:8Ei:"
        );
        assert_eq!(each("humanize1024", &["18446744073709551615"]), "16Ei:");
        assert_eq!(ok("{{ humanize1024 1048576 }}"), "1Mi");
        assert!(run(r#"{{ humanize1024 "one" }}"#).unwrap_err().to_string().contains(
            r#"error calling humanize1024: strconv.ParseFloat: parsing "one": invalid syntax"#
        ));
    }

    #[test]
    fn humanize_duration() {
        let floats = [
            "0", "1", "60", "3600", "86400", "90000", "-183845", "899.99",
        ];
        assert_eq!(
            floats
                .iter()
                .map(|v| run_value("{{ humanizeDuration $value }}:", v.parse().unwrap()).unwrap())
                .collect::<String>(),
            "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 3h 4m 5s:14m 59s:"
        );
        assert_eq!(
            each(
                "humanizeDuration",
                &[r#""0""#, r#""1""#, r#""60""#, r#""3600""#, r#""86400""#]
            ),
            "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:"
        );
        assert_eq!(
            each(
                "humanizeDuration",
                &[".1", ".0001", ".12345", "60.1", "60.5", "1.2345", "12.345"]
            ),
            "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:"
        );
        assert_eq!(
            each(
                "humanizeDuration",
                &[
                    r#"".1""#,
                    r#"".0001""#,
                    r#"".12345""#,
                    r#""60.1""#,
                    r#""60.5""#,
                    r#""1.2345""#,
                    r#""12.345""#
                ]
            ),
            "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:"
        );
        assert_eq!(
            each("humanizeDuration", &["0", "-1", "1", "1234567"]),
            "0s:-1s:1s:14d 6h 56m 7s:"
        );
        assert_eq!(ok("{{ humanizeDuration 3661 }}"), "1h 1m 1s");
        assert_eq!(ok("{{ humanizeDuration 0.5 }}"), "500ms");
        assert!(run(r#"{{ humanizeDuration "one" }}"#).is_err());
    }

    #[test]
    fn humanize_inf_and_nan() {
        let t = "{{ humanize $value }}:{{ humanize1024 $value }}:{{ humanizeDuration $value }}:{{ humanizeTimestamp $value }}:";
        let got: String = [f64::INFINITY, f64::NEG_INFINITY, f64::NAN]
            .iter()
            .map(|v| run_value(t, *v).unwrap())
            .collect();
        assert_eq!(
            got,
            "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:"
        );
        assert_eq!(
            each("humanize", &[r#""+Inf""#, r#""-Inf""#, r#""NaN""#]),
            "+Inf:-Inf:NaN:"
        );
    }

    #[test]
    fn humanize_percentage() {
        assert_eq!(
            ok(
                "{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | humanizePercentage }}:{{ 1.23456 | humanizePercentage }}"
            ),
            "-22.22%:0%:12.35%:123.5%"
        );
        assert_eq!(
            ok(
                r#"{{ "-0.22222" | humanizePercentage }}:{{ "0.0" | humanizePercentage }}:{{ "0.1234567" | humanizePercentage }}:{{ "1.23456" | humanizePercentage }}"#
            ),
            "-22.22%:0%:12.35%:123.5%"
        );
        assert_eq!(
            each(
                "humanizePercentage",
                &["0", "-1", "1", "1234567", "9223372036854775807"]
            ),
            "0%:-100%:100%:1.235e+08%:9.223e+20%:"
        );
        assert_eq!(
            each("humanizePercentage", &["18446744073709551615"]),
            "1.845e+21%:"
        );
        assert_eq!(ok("{{ humanizePercentage 0.1234 }}"), "12.34%");
        assert!(run(r#"{{ "one" | humanizePercentage }}"#).unwrap_err().to_string().contains(
            r#"error calling humanizePercentage: strconv.ParseFloat: parsing "one": invalid syntax"#
        ));
    }

    #[test]
    fn humanize_timestamp() {
        assert_eq!(
            each(
                "humanizeTimestamp",
                &["0", "-1", "1", "1234567", "9223372036"]
            ),
            "1970-01-01 00:00:00 +0000 UTC:1969-12-31 23:59:59 +0000 UTC:1970-01-01 00:00:01 +0000 UTC:1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:"
        );
        assert_eq!(
            ok("{{ 1435065584.128 | humanizeTimestamp }}"),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(
            ok(r#"{{ "1435065584.128" | humanizeTimestamp }}"#),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(
            run_value("{{ humanizeTimestamp $value }}", 1435065584.128).unwrap(),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(
            run_value("{{ humanizeTimestamp $value }}", -0.5).unwrap(),
            "1969-12-31 23:59:59.5 +0000 UTC"
        );
        let e = run("{{ humanizeTimestamp -9223372036854775808 }}").unwrap_err();
        assert!(e.to_string().ends_with(
            "error calling humanizeTimestamp: -9.223372036854776e+18 cannot be represented as a nanoseconds timestamp since it overflows int64"
        ), "{e}");
        let e = run("{{ humanizeTimestamp 18446744073709551615 }}").unwrap_err();
        assert!(e.to_string().ends_with(
            "1.8446744073709552e+19 cannot be represented as a nanoseconds timestamp since it overflows int64"
        ), "{e}");
    }

    #[test]
    fn string_functions() {
        assert_eq!(ok(r#"{{ "aa bb CC" | title }}"#), "Aa Bb CC");
        assert_eq!(
            ok(r#"{{ "hello-world foo.bar it's 1st ß" | title }}"#),
            "Hello-World Foo.bar It's 1St Ss"
        );
        assert_eq!(ok(r#"{{ "aa bb CC" | toUpper }}"#), "AA BB CC");
        assert_eq!(ok(r#"{{ "aA bB CC" | toLower }}"#), "aa bb cc");
        assert_eq!(ok(r#"{{ "<b>" | safeHtml }}"#), "<b>");
        assert_eq!(
            ok(r#"{{ html "<a href='x'>&" }}"#),
            "&lt;a href=&#39;x&#39;&gt;&amp;"
        );
        assert_eq!(ok(r#"{{ js "it's <x>" }}"#), r"it\'s \u003Cx\u003E");
        assert_eq!(ok(r#"{{ urlquery "a b&c" }}"#), "a+b%26c");
        assert_eq!(
            ok(r#"{{ urlQueryEscape "up{job=\"a b\"}" }}"#),
            "up%7Bjob%3D%22a+b%22%7D"
        );
    }

    #[test]
    fn regex_functions() {
        assert_eq!(
            ok(r#"{{ match "a+" "aa" }} {{ match "a+" "b" }}"#),
            "true false"
        );
        // Unanchored, like regexp.MatchString.
        assert_eq!(ok(r#"{{ match "b" "abc" }}"#), "true");
        assert_eq!(ok(r#"{{ reReplaceAll "(a)b" "x$1" "ab" }}"#), "xa");
        assert_eq!(
            ok(r#"{{ reReplaceAll "(.*):.*" "$1" $labels.instance }}"#),
            "host1"
        );
        assert_eq!(
            ok(r#"{{ reReplaceAll "(?P<h>[^:]+):(\\d+)" "${h} port $2" $labels.instance }}"#),
            "host1 port 9100"
        );
        // Go's \d is ASCII-only.
        assert_eq!(ok(r#"{{ match "^\\d+$" "١٢" }}"#), "false");
        assert_eq!(ok(r#"{{ match "^[\\d]+$" "42" }}"#), "true");
        // A '[' inside a class is a literal in Go.
        assert_eq!(ok(r#"{{ match "^[[a]+$" "[a[" }}"#), "true");
        assert_eq!(ok(r#"{{ match "^[[:digit:]x]+$" "1x2" }}"#), "true");
        let e = run(r#"{{ match "(" "x" }}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("error calling match: error parsing regexp"),
            "{e}"
        );
        assert!(run(r#"{{ reReplaceAll "(" "x" "y" }}"#).is_err());
    }

    #[test]
    fn strip_port_and_domain() {
        let cases = [
            ("foo.example.com", "foo.example.com", "foo"),
            ("foo.example.com:12345", "foo.example.com", "foo:12345"),
            ("192.0.2.1", "192.0.2.1", "192.0.2.1"),
            ("192.0.2.1:12345", "192.0.2.1", "192.0.2.1:12345"),
            ("2001:0DB8::1", "2001:0DB8::1", "2001:0DB8::1"),
            (
                "[2001:0DB8::1]:12345",
                "2001:0DB8::1",
                "[2001:0DB8::1]:12345",
            ),
            (
                "[2001:0DB8::1]::12345",
                "[2001:0DB8::1]::12345",
                "[2001:0DB8::1]::12345",
            ),
        ];
        for (input, port, domain) in cases {
            assert_eq!(
                ok(&format!("{{{{ {input:?} | stripPort }}}}")),
                port,
                "{input}"
            );
            assert_eq!(
                ok(&format!("{{{{ {input:?} | stripDomain }}}}")),
                domain,
                "{input}"
            );
        }
        assert_eq!(ok("{{ $labels.instance | stripPort }}"), "host1");
    }

    #[test]
    fn links_and_urls() {
        assert_eq!(ok(r#"{{ graphLink "up" }}"#), "/graph?g0.expr=up&g0.tab=0");
        assert_eq!(ok(r#"{{ tableLink "up" }}"#), "/graph?g0.expr=up&g0.tab=1");
        assert_eq!(
            ok(r#"{{ graphLink "rate(x[5m]) > 0" }}"#),
            "/graph?g0.expr=rate%28x%5B5m%5D%29+%3E+0&g0.tab=0"
        );
        assert_eq!(ok("{{ pathPrefix }}"), "/path/prefix");
        assert_eq!(ok("{{ externalURL }}"), EXT_URL);
        assert_eq!(url_path("http://h:9090"), "");
        assert_eq!(url_path("https://h/a%20b/?x=1#f"), "/a b/");
        assert_eq!(url_path("/relative/p"), "/relative/p");
    }

    #[test]
    fn parse_duration() {
        assert_eq!(
            ok(r#"{{ printf "%0.2f" (parseDuration "1h2m10ms") }}"#),
            "3720.01"
        );
        assert_eq!(
            ok(r#"{{ printf "%0.2f" (parseDuration "-1h2m10ms") }}"#),
            "-3720.01"
        );
        assert_eq!(ok(r#"{{ parseDuration "1d" }}"#), "86400");
        assert_eq!(ok(r#"{{ parseDuration "0" }}"#), "0");
        assert_eq!(
            ok(r#"{{ parseDuration "90s" | humanizeDuration }}"#),
            "1m 30s"
        );
        let e = run(r#"{{ parseDuration "1x" }}"#).unwrap_err();
        assert!(
            e.to_string()
                .ends_with(r#"unknown unit "x" in duration "1x""#),
            "{e}"
        );
        let e = run(r#"{{ parseDuration "1m1h" }}"#).unwrap_err();
        assert!(
            e.to_string()
                .ends_with(r#"not a valid duration string: "1m1h""#),
            "{e}"
        );
        assert!(
            run(r#"{{ parseDuration "" }}"#)
                .unwrap_err()
                .to_string()
                .ends_with("empty duration string")
        );
    }

    #[test]
    fn args_and_define() {
        assert_eq!(
            ok(r#"{{define "x"}}{{.arg0}} {{.arg1}}{{end}}{{template "x" (args 1 "2")}}"#),
            "1 2"
        );
        assert_eq!(
            ok(r#"{{define "inst"}}{{ .instance }}{{end}}{{template "inst" $labels}}"#),
            "host1:9100"
        );
    }

    #[test]
    fn query_first_value_label() {
        let up = vec![sample(&[("__name__", "metric"), ("instance", "a")], 11.0)];
        assert_eq!(
            with_query(
                r#"{{ query "metric{instance='a'}" | first | value }}"#,
                up.clone()
            )
            .unwrap(),
            "11"
        );
        assert_eq!(
            with_query(
                r#"{{ query "1.5" | first | value }}"#,
                vec![sample(&[], 1.5)]
            )
            .unwrap(),
            "1.5"
        );
        assert_eq!(
            with_query(
                r#"{{ query "metric" | first | label "instance" }}"#,
                up.clone()
            )
            .unwrap(),
            "a"
        );
        assert_eq!(
            with_query(
                r#"[{{ query "metric" | first | label "foo" }}]"#,
                up.clone()
            )
            .unwrap(),
            "[]"
        );
        assert_eq!(
            with_query(
                r#"[{{ $x := query "metric" | first }}{{ $x.Labels.foo }}]"#,
                up.clone()
            )
            .unwrap(),
            "[]"
        );
        assert_eq!(
            with_query(
                r#"{{ query "metric" | first | strvalue }}"#,
                vec![sample(&[("__value__", "a")], 11.0)]
            )
            .unwrap(),
            "a"
        );
        assert_eq!(
            with_query(
                r#"{{ with query "up" }}{{ . | first | value | humanize }}{{ end }}"#,
                vec![sample(&[], 1234567.0)]
            )
            .unwrap(),
            "1.235M"
        );
        assert_eq!(
            with_query(r#"{{ with query "up" }}yes{{ else }}none{{ end }}"#, vec![]).unwrap(),
            "none"
        );
        // The query text reaches the hook; labels of the alert can build it.
        let l = labels(&[("instance", "h:1")]);
        let e = BTreeMap::new();
        let ctx = TemplateContext {
            labels: &l,
            external_labels: &e,
            external_url: "",
            value: 0.0,
        };
        let hook =
            |q: &str| -> Result<Vec<QuerySample>, String> { Ok(vec![sample(&[("q", q)], 1.0)]) };
        assert_eq!(
            expand("t", r#"{{ with printf "up{instance=%q}" $labels.instance | query }}{{ . | first | label "q" }}{{ end }}"#, &ctx, Some(&hook)).unwrap(),
            r#"up{instance="h:1"}"#
        );
    }

    #[test]
    fn range_and_sort_by_label() {
        let res = vec![
            sample(&[("__name__", "metric"), ("instance", "b")], 21.0),
            sample(&[("__name__", "metric"), ("instance", "a")], 11.0),
        ];
        assert_eq!(
            with_query(
                r#"{{ range query "metric" | sortByLabel "instance" }}{{.Labels.instance}}:{{.Value}}: {{end}}"#,
                res.clone()
            )
            .unwrap(),
            "a:11: b:21: "
        );
        assert_eq!(
            with_query(
                r#"{{ range query "up" }}{{ .Labels.instance }} {{ .Value }};{{ end }}"#,
                res.clone()
            )
            .unwrap(),
            "b 21;a 11;"
        );
        assert_eq!(
            with_query(
                r#"{{ range $i, $s := query "up" }}{{ $i }}={{ $s | value }} {{ end }}"#,
                res
            )
            .unwrap(),
            "0=21 1=11 "
        );
    }

    #[test]
    fn query_errors() {
        let e = with_query(r#"{{ query "missing" | first }}"#, vec![]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "error executing template test: error calling first: first() called on vector with no elements"
        );
        assert!(with_query(r#"{{ (query "missing").banana }}"#, vec![]).is_err());
        // No hook installed.
        let e = run(r#"{{ query "up" }}"#).unwrap_err();
        assert!(e.to_string().contains("error calling query"), "{e}");
        // A failing hook.
        let l = BTreeMap::new();
        let ctx = TemplateContext {
            labels: &l,
            external_labels: &l,
            external_url: "",
            value: 0.0,
        };
        let hook =
            |_: &str| -> Result<Vec<QuerySample>, String> { Err("parse error at char 3".into()) };
        let e = expand("t", r#"{{ query "up{" }}"#, &ctx, Some(&hook)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "error executing template t: error calling query: parse error at char 3"
        );
    }

    #[test]
    fn hook_is_removed_after_expansion_and_nesting_works() {
        let l = BTreeMap::new();
        let ctx = TemplateContext {
            labels: &l,
            external_labels: &l,
            external_url: "",
            value: 0.0,
        };
        let inner_ctx = ctx;
        // A hook that itself expands a template (with its own hook).
        let outer = |q: &str| -> Result<Vec<QuerySample>, String> {
            let inner =
                |_: &str| -> Result<Vec<QuerySample>, String> { Ok(vec![sample(&[], 7.0)]) };
            let v = expand(
                "inner",
                "{{ query \"x\" | first | value }}",
                &inner_ctx,
                Some(&inner),
            )
            .map_err(|e| e.to_string())?;
            Ok(vec![sample(&[("inner", &v), ("q", q)], 1.0)])
        };
        assert_eq!(
            expand(
                "outer",
                r#"{{ query "up" | first | label "inner" }} {{ query "up" | first | label "q" }}"#,
                &ctx,
                Some(&outer)
            )
            .unwrap(),
            "7 up"
        );
        assert!(STATE.with(|s| s.borrow().is_none()));
        // Without a hook the next expansion cannot reach the old one.
        assert!(expand("t", r#"{{ query "up" }}"#, &ctx, None).is_err());
    }

    #[test]
    fn printf_formats() {
        assert_eq!(ok(r#"{{ printf "%s-%d" "a" 5 }}"#), "a-5");
        assert_eq!(ok(r#"{{ printf "%.2f" $value }}"#), "1.50");
        assert_eq!(
            run_value(r#"{{ printf "%.2f" $value }}"#, 1e6).unwrap(),
            "1000000.00"
        );
        assert_eq!(
            run_value(r#"{{ printf "%.1f%%" $value }}"#, 99.95).unwrap(),
            "100.0%"
        );
        assert_eq!(ok(r#"{{ printf "%v|%v|%v" $value 3 "x" }}"#), "1.5|3|x");
        assert_eq!(ok(r#"{{ printf "%q" "a\"b" }}"#), r#""a\"b""#);
        assert_eq!(
            ok(r#"{{ printf "%5s|%-5s|%05d|%x|%X|%o|%b" "ab" "cd" 42 255 255 8 5 }}"#),
            "   ab|cd   |00042|ff|FF|10|101"
        );
        assert_eq!(
            ok(r#"{{ printf "%+d|% d|%+.1e|%g|%G" 5 5 1234.5 0.000012 1e20 }}"#),
            "+5| 5|+1.2e+03|1.2e-05|1E+20"
        );
        assert_eq!(
            ok(r#"{{ printf "%8.3f|%-8.2f|%08.3f" 3.14159 2.5 -3.14159 }}"#),
            "   3.142|2.50    |-003.142"
        );
        assert_eq!(ok(r#"{{ printf "%e" 1 }}"#), "1.000000e+00");
        assert_eq!(ok(r#"{{ printf "%t %v" true false }}"#), "true false");
        assert_eq!(ok(r#"{{ printf "%c%c" 72 105 }}"#), "Hi");
        assert_eq!(ok(r#"{{ printf "%[2]s %[1]s" "a" "b" }}"#), "b a");
        assert_eq!(ok(r#"{{ printf "%*d|%.*f" 4 7 1 2.25 }}"#), "   7|2.2");
        assert_eq!(ok(r#"{{ printf "%.3s" "abcdef" }}"#), "abc");
        assert_eq!(ok(r#"{{ printf "%s" $labels.job }}"#), "node");
        // Mistakes print like Go.
        assert_eq!(ok(r#"{{ printf "%d" "x" }}"#), "%!d(string=x)");
        assert_eq!(ok(r#"{{ printf "%d" $value }}"#), "%!d(float64=1.5)");
        assert_eq!(ok(r#"{{ printf "%s" 5 }}"#), "%!s(int=5)");
        assert_eq!(ok(r#"{{ printf "%s %s" "a" }}"#), "a %!s(MISSING)");
        assert_eq!(ok(r#"{{ printf "%s" "a" "b" }}"#), "a%!(EXTRA string=b)");
        assert_eq!(ok(r#"{{ printf "100%%" }}"#), "100%");
        assert_eq!(ok(r#"{{ printf "%" }}"#), "%!(NOVERB)");
        assert_eq!(ok(r#"{{ printf "%99999999d" 1 }}"#), "%!(BADWIDTH)1");
        assert_eq!(
            ok(r#"{{ printf "%.99999999f" 1.5 }}"#),
            "%!(BADPREC)1.500000"
        );
        // As a pipeline stage the piped value is the last argument.
        assert_eq!(ok(r#"{{ $value | printf "%.3f" }}"#), "1.500");
        assert_eq!(ok(r#"{{ "x" | printf "%s-%s" "a" }}"#), "a-x");
    }

    #[test]
    fn go_float_formatting() {
        let f = |v: f64, verb: char, p: Option<usize>| go_format_float(v, verb, p);
        assert_eq!(f(12345.0, 'g', Some(4)), "1.234e+04"); // round half to even
        assert_eq!(f(100000.0, 'g', Some(4)), "1e+05");
        assert_eq!(f(1200.0, 'g', Some(4)), "1200");
        assert_eq!(f(0.0001234, 'g', Some(4)), "0.0001234");
        assert_eq!(f(0.12, 'g', Some(4)), "0.12");
        assert_eq!(f(0.0, 'e', Some(2)), "0.00e+00");
        assert_eq!(f(1e-7, 'e', None), "1e-07");
        assert_eq!(f(123.0, 'e', Some(0)), "1e+02");
        assert_eq!(f(2.5, 'f', Some(0)), "2");
        assert_eq!(f(1e100, 'g', None), "1e+100");
        assert_eq!(f(5e-324, 'g', None), "5e-324");
        assert_eq!(f(f64::MAX, 'g', None), "1.7976931348623157e+308");
    }

    #[test]
    fn comparisons_and_logic() {
        assert_eq!(
            ok(r#"{{ if gt $value 1.0 }}high{{ else }}low{{ end }}"#),
            "high"
        );
        assert_eq!(ok(r#"{{ if lt $value 2 }}lt{{ end }}"#), "lt");
        assert_eq!(ok(r#"{{ if eq $value 1.5 }}eq{{ end }}"#), "eq");
        assert_eq!(
            run_value(r#"{{ if ge $value 100 }}big{{ end }}"#, 1e6).unwrap(),
            "big"
        );
        // Two floats compare numerically, not as text.
        let res = vec![sample(&[], 9.0)];
        let l = BTreeMap::new();
        let ctx = TemplateContext {
            labels: &l,
            external_labels: &l,
            external_url: "",
            value: 10.0,
        };
        let hook = move |_: &str| -> Result<Vec<QuerySample>, String> { Ok(res.clone()) };
        assert_eq!(
            expand(
                "t",
                r#"{{ if gt $value (query "x" | first | value) }}more{{ end }}"#,
                &ctx,
                Some(&hook)
            )
            .unwrap(),
            "more"
        );
        assert_eq!(ok(r#"{{ if eq $labels.job "node" }}node{{ end }}"#), "node");
        assert_eq!(
            ok(r#"{{ if eq $labels.job "a" "b" "node" }}any{{ end }}"#),
            "any"
        );
        assert_eq!(ok(r#"{{ if ne $labels.job "x" }}ne{{ end }}"#), "ne");
        assert_eq!(ok(r#"{{ if lt "a" "b" }}lex{{ end }}"#), "lex");
        assert_eq!(
            ok(r#"{{ and 1 0 }} {{ or 0 "" "x" }} {{ not true }}"#),
            "0 x false"
        );
        assert_eq!(run_value(r#"{{ not $value }}"#, 0.0).unwrap(), "true");
        assert!(run(r#"{{ lt true false }}"#).is_err());
        assert!(run(r#"{{ eq "abc" 1 }}"#).is_err());
        assert_eq!(
            run_value(r#"{{ if gt $value 0.0 }}x{{ else }}nan{{ end }}"#, f64::NAN).unwrap(),
            "nan"
        );
    }

    #[test]
    fn print_and_println() {
        assert_eq!(ok(r#"{{ print "a" 1 2 "b" }}"#), "a1 2b");
        assert_eq!(ok(r#"{{ print $value 2 }}"#), "1.5 2");
        assert_eq!(ok(r#"{{ println "a" 1 }}"#), "a 1\n");
    }

    #[test]
    fn syntax_errors() {
        let e = run("{{").unwrap_err();
        assert!(matches!(e, TemplateError::Parse { .. }), "{e}");
        assert!(
            e.to_string().starts_with("error parsing template test: "),
            "{e}"
        );
        assert!(check_syntax("{{").is_err());
        assert!(check_syntax("{{ $labels.instance }} {{ $value | humanize }}").is_ok());
        assert!(check_syntax("{{ $externalLabels.x }}{{ $externalURL }}").is_ok());
        assert!(check_syntax(r#"{{ with query "up" }}{{ . | first | value }}{{ end }}"#).is_ok());
        let e = check_syntax("{{ nosuchfunc 1 }}").unwrap_err();
        assert!(
            e.to_string().contains("function nosuchfunc not defined"),
            "{e}"
        );
        let e = check_syntax("{{ $undefined }}").unwrap_err();
        assert!(
            e.to_string().contains("undefined variable $undefined"),
            "{e}"
        );
        assert!(check_syntax("{{ if true }}x").is_err());
        assert!(check_syntax("{{ end }}").is_err());
        assert!(check_syntax("{{ .Labels.x ").is_err());
        assert_eq!(check_syntax("{{ if true }}x{{ end }}"), Ok(()));
        assert!(check_syntax("{{ }}").is_err());
        assert!(check_syntax("{{-}}").is_err());
        assert!(check_syntax("{{ | toUpper }}").is_err());
        assert!(check_syntax("{{ 1abc }}").is_err());
    }

    #[test]
    fn inputs_that_break_gtmpl_are_rejected() {
        let e = check_syntax("{{ é }}").unwrap_err();
        assert!(
            e.to_string()
                .contains("unrecognized character in action: U+00E9 'é'"),
            "{e}"
        );
        let e = check_syntax("{{ \u{a0}}}").unwrap_err();
        assert!(e.to_string().contains("U+00A0"), "{e}");
        assert!(check_syntax(r#"{{ "a\x4" }}"#).is_err());
        assert!(check_syntax(r#"{{ "\é" }}"#).is_err());
        assert!(check_syntax(r#"{{ "\q" }}"#).is_err());
        assert!(check_syntax(r#"{{ "\xff" }}"#).is_err()); // not UTF-8
        assert!(check_syntax("{{ .Labels.x ").is_err());
        assert!(check_syntax("{{ `unterminated }}").is_err());
        let e =
            check_syntax(r#"{{define "a"}}{{template "a"}}{{end}}{{template "a"}}"#).unwrap_err();
        assert!(
            e.to_string().contains("recursive template invocation"),
            "{e}"
        );
        let e = run(r#"{{define "a"}}{{template "b"}}{{end}}{{define "b"}}{{ if true }}{{template "a"}}{{end}}{{end}}{{template "a"}}"#).unwrap_err();
        assert!(e.to_string().contains("recursive"), "{e}");
        assert!(
            check_syntax(&format!(
                "{}x{}",
                "{{ if true }}".repeat(100),
                "{{ end }}".repeat(100)
            ))
            .is_err()
        );
        assert!(
            check_syntax(&format!(
                "{{{{ {}1{} }}}}",
                "(".repeat(100),
                ")".repeat(100)
            ))
            .is_err()
        );
        // Non-ASCII text, strings, raw strings, char constants and comments are fine.
        assert_eq!(
            ok(r#"é {{ "héllo" }} {{ `wörld` }} {{ 'é' }}{{/* ünïcode */}}!"#),
            "é héllo wörld 233!"
        );
        assert_eq!(
            ok(r#"{{ "tab\tquote\" backslash\\" }}"#),
            "tab\tquote\" backslash\\"
        );
    }

    #[test]
    fn literals_are_decoded_like_go() {
        // Escapes gtmpl gets wrong: \x, \u, \U, octal, \a, \v, a final backslash.
        assert_eq!(
            ok(r#"{{ "\u0041 more \x41\x42 text \101 \U0001F600" }}"#),
            "A more AB text A \u{1F600}"
        );
        assert_eq!(
            ok(r#"{{ "a\\" }}|{{ "\\\\" }}|{{ "\a\v" }}"#),
            "a\\|\\\\|\x07\x0b"
        );
        assert_eq!(ok(r#"{{ printf "%s-%s" "x\\" "y" }}"#), "x\\-y");
        // Raw strings keep backslashes, as in Go.
        assert_eq!(ok(r#"{{ `a\d+\` }}"#), r"a\d+\");
        assert_eq!(
            ok(r#"{{ reReplaceAll `(\d+)\.(\d+)` "$1,$2" "3.14" }}"#),
            "3,14"
        );
        assert_eq!(ok("{{ `multi\nline` }}"), "multi\nline");
        // Character constants are their code point.
        assert_eq!(
            ok(r#"{{ 'a' }} {{ '\n' }} {{ '\'' }} {{ '\\' }} {{ '\x41' }} {{ '\u00e9' }}"#),
            "97 10 39 92 65 233"
        );
        // Float literals keep Go's float semantics.
        assert_eq!(
            ok("{{ -0.5 }} {{ 1e6 }} {{ 2.0 }} {{ 1e21 }} {{ .5 }} {{ +1.5 }}"),
            "-0.5 1e+06 2 1e+21 0.5 1.5"
        );
        assert_eq!(
            ok("{{ 12345678901234567890123 }}"),
            "1.2345678901234568e+22"
        );
        assert_eq!(ok(r#"{{ printf "%d %v" 2.0 3 }}"#), "%!d(float64=2) 3");
        assert_eq!(
            ok("{{ -1 }} {{ 010 }} {{ 0x1F }} {{ 0b101 }} {{ 1_000 }} {{ 18446744073709551615 }}"),
            "-1 8 31 5 1000 18446744073709551615"
        );
        // Trim markers still work next to numbers.
        assert_eq!(ok("a  {{- 1 -}}  b {{-2}}"), "a1b -2");
    }

    #[test]
    fn trim_markers_and_comments() {
        assert_eq!(
            ok("été \n {{- $labels.job -}} \n\t élevée"),
            "éténodeélevée"
        );
        assert_eq!(ok("x {{- /* note */ -}} y"), "xy");
        assert_eq!(ok("x {{/* note */}} y"), "x  y");
        assert_eq!(ok("x\n{{- if true }}\n  a\n{{- end }}\n"), "x\n  a\n");
        // Only Go's white space is trimmed (not U+00A0).
        assert_eq!(ok("x\u{a0} {{- 1 }}"), "x\u{a0}1");
        assert!(check_syntax("{{/* unclosed }}").is_err());
        assert_eq!(ok("{{- \" trim \" -}}  x"), " trim x");
        assert_eq!(ok("{{ \"}}\" }}"), "}}");
    }

    #[test]
    fn expand_or_error_text_formats_like_prometheus() {
        let l = BTreeMap::new();
        let ctx = TemplateContext {
            labels: &l,
            external_labels: &l,
            external_url: "",
            value: 0.0,
        };
        assert_eq!(
            expand_or_error_text("__alert_X", r#"{{ humanize "one" }}"#, &ctx, None),
            r#"<error expanding template: error executing template __alert_X: error calling humanize: strconv.ParseFloat: parsing "one": invalid syntax>"#
        );
        assert!(
            expand_or_error_text("__alert_X", "{{", &ctx, None)
                .starts_with("<error expanding template: error parsing template __alert_X: ")
        );
        assert_eq!(
            expand_or_error_text("__alert_X", "ok {{ 1 }}", &ctx, None),
            "ok 1"
        );
    }

    #[test]
    fn error_type_is_std_error() {
        fn takes(_: &dyn std::error::Error) {}
        let e = check_syntax("{{").unwrap_err();
        takes(&e);
        assert!(e.to_string().starts_with("error parsing template: "), "{e}");
        assert!(!e.message().is_empty());
    }

    #[test]
    fn realistic_alerting_templates() {
        let l = labels(&[
            ("instance", "node1:9100"),
            ("job", "node"),
            ("namespace", "prod"),
            ("pod", "api-0"),
            ("container", "api"),
        ]);
        let e = labels(&[("cluster", "eu1")]);
        let ctx = TemplateContext {
            labels: &l,
            external_labels: &e,
            external_url: "https://prom.example.com",
            value: 4.0 / 3.0,
        };
        let hook = |q: &str| -> Result<Vec<QuerySample>, String> {
            match q {
                "node_uname_info{instance='node1:9100'}" => {
                    Ok(vec![sample(&[("nodename", "node1.example.com")], 1.0)])
                }
                "up" => Ok(vec![
                    sample(&[("instance", "a:1")], 1.0),
                    sample(&[("instance", "b:1")], 0.0),
                ]),
                _ => Ok(vec![]),
            }
        };
        let x = |t: &str| expand("__alert_Test", t, &ctx, Some(&hook)).unwrap();
        assert_eq!(
            x("Disk almost full\n  VALUE = {{ $value }}\n  LABELS = {{ $labels }}"),
            "Disk almost full\n  VALUE = 1.3333333333333333\n  LABELS = map[container:api instance:node1:9100 job:node namespace:prod pod:api-0]"
        );
        assert_eq!(
            x(
                "Pod {{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.container }}) is restarting {{ printf \"%.2f\" $value }} times / 10 minutes."
            ),
            "Pod prod/api-0 (api) is restarting 1.33 times / 10 minutes."
        );
        assert_eq!(x("{{ $value | humanizePercentage }} used"), "133.3% used");
        assert_eq!(x("{{ $value | humanize1024 }}B"), "1.333B");
        assert_eq!(
            x(
                "{{ with printf \"node_uname_info{instance='%s'}\" $labels.instance | query }}{{ . | first | label \"nodename\" }}{{ end }}"
            ),
            "node1.example.com"
        );
        assert_eq!(
            x("{{ if gt $value 1.0 }}critical{{ else }}warning{{ end }}"),
            "critical"
        );
        assert_eq!(
            x(
                "{{- range $i, $s := query \"up\" }}{{ if $i }}, {{ end }}{{ $s.Labels.instance | stripPort }}={{ $s.Value }}{{ end -}}"
            ),
            "a=1, b=0"
        );
        assert_eq!(
            x(
                "[{{ $externalLabels.cluster }}] {{ $labels.instance }} down, see {{ $externalURL }}{{ graphLink \"up == 0\" }}"
            ),
            "[eu1] node1:9100 down, see https://prom.example.com/graph?g0.expr=up+%3D%3D+0&g0.tab=0"
        );
        assert_eq!(
            x("{{ $labels.instance | reReplaceAll \":[0-9]+$\" \"\" | toUpper }}"),
            "NODE1"
        );
    }

    #[test]
    fn cached_templates_are_reused_correctly() {
        let t = r#"{{ $value }} {{ printf "%d" 2.0 }} {{ if gt $value 1.0 }}big{{ end }}"#;
        assert_eq!(run_value(t, 0.5).unwrap(), "0.5 %!d(float64=2) ");
        assert_eq!(run_value(t, 5.0).unwrap(), "5 %!d(float64=2) big");
        for _ in 0..2 {
            assert!(run("{{ humanize }}").is_err());
            assert!(run("{{").is_err());
        }
        // The same text under another name is parsed for that name.
        let l = BTreeMap::new();
        let ctx = TemplateContext {
            labels: &l,
            external_labels: &l,
            external_url: "",
            value: 0.0,
        };
        let e = expand("other", "{{", &ctx, None).unwrap_err();
        assert!(
            e.to_string().starts_with("error parsing template other:"),
            "{e}"
        );
    }

    #[test]
    fn values_print_like_go() {
        assert_eq!(ok("{{ $labels }}"), "map[instance:host1:9100 job:node]");
        assert_eq!(
            ok("LABELS = {{ $labels }}"),
            "LABELS = map[instance:host1:9100 job:node]"
        );
        assert_eq!(
            ok("{{ . }}"),
            "{map[instance:host1:9100 job:node] map[cluster:eu1] http://testhost:9090/path/prefix 1.5}"
        );
        assert_eq!(
            with_query(
                r#"{{ query "up" | first }}"#,
                vec![sample(&[("a", "b")], 2.0)]
            )
            .unwrap(),
            "&{map[a:b] 2}"
        );
        assert_eq!(ok(r#"{{ args 1 "x" }}"#), "map[arg0:1 arg1:x]");
        // Literal text is never altered.
        assert_eq!(ok("<no value>{{ 1 }}"), "<no value>1");
        assert_eq!(ok("{{ $x := 5 }}[{{ $x }}]"), "[5]");
        assert_eq!(ok("{{ $.Labels.job }}"), "node");
    }
}
