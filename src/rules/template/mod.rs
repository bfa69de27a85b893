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
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use crate::model::Labels;
use gtmpl::{Context, Func, FuncError, Template, Value};

mod args;
mod builtins;
mod functions;
mod gofmt;
mod prepare;
mod state;
#[cfg(test)]
mod tests;

use args::*;
use builtins::*;
use functions::*;
use gofmt::*;
use prepare::*;
use state::*;

/// The variable definitions Prometheus prepends to every alerting template.
pub const TEMPLATE_DEFS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// One sample returned by the `query` template function.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QuerySample {
    pub labels: Labels,
    pub value: f64,
}

/// The data an alerting template is expanded against.
#[derive(Debug, Clone, Copy)]
pub struct TemplateContext<'a> {
    pub labels: &'a Labels,
    pub external_labels: &'a Labels,
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
