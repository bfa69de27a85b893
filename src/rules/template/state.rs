//! Per-expansion state: what template functions reach through a thread-local, because gtmpl
//! functions are plain `fn` pointers (see the module docs of [`super`]).

use super::*;

/// State that template functions need but cannot capture, because gtmpl
/// functions are plain `fn(&[Value])` pointers, not closures: the query hook
/// (borrowed from the caller of [`expand`], so it need not be `'static`), the
/// external URL and the float registry. Template functions run on the thread
/// that calls [`expand`] (only gtmpl's lexer runs on its own thread), so a
/// thread-local installed for the duration of one expansion reaches them.
pub(super) struct ExpansionState {
    /// The query hook, with its lifetime erased; see [`StateGuard::install`].
    pub(super) query: Option<&'static QueryFn<'static>>,
    pub(super) external_url: String,
    /// Go `%v` texts of the floats handed to the template (see module docs).
    pub(super) floats: HashSet<String>,
}

thread_local! {
    pub(super) static STATE: RefCell<Option<ExpansionState>> = const { RefCell::new(None) };
}

/// Installs an [`ExpansionState`] for the current thread and restores the
/// previous one (normally none) when dropped, also when unwinding. Nested
/// expansions (a query hook that itself expands a template) therefore work.
pub(super) struct StateGuard {
    pub(super) previous: Option<ExpansionState>,
}

impl StateGuard {
    pub(super) fn install(query: Option<&QueryFn<'_>>, external_url: &str) -> StateGuard {
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

pub(super) fn with_state<R>(f: impl FnOnce(Option<&mut ExpansionState>) -> R) -> R {
    STATE.with(|s| f(s.borrow_mut().as_mut()))
}

/// A float as template value: its Go `%v` text, registered as a float.
pub(super) fn float_value(v: f64) -> Value {
    let s = go_format_float(v, 'g', None);
    with_state(|st| {
        if let Some(st) = st {
            st.floats.insert(s.clone());
        }
    });
    Value::String(s)
}

pub(super) fn is_registered_float(s: &str) -> bool {
    with_state(|st| st.is_some_and(|st| st.floats.contains(s)))
}

pub(super) fn labels_value(labels: &Labels) -> Value {
    Value::Map(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    )
}

pub(super) fn sample_value(s: &QuerySample) -> Value {
    let mut o = HashMap::new();
    o.insert("Labels".to_owned(), labels_value(&s.labels));
    o.insert("Value".to_owned(), float_value(s.value));
    Value::Object(o)
}

pub(super) fn context_value(ctx: &TemplateContext) -> Value {
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
