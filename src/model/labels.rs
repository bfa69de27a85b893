//! Label sets: sorted, validated name/value pairs that identify a series.

use std::fmt;
use std::sync::Arc;

/// The reserved label that carries the metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// Why a label set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("empty label set")]
    Empty,
    #[error("series has no metric name (label __name__)")]
    MissingMetricName,
    #[error("invalid label name {0:?}")]
    InvalidLabelName(String),
    #[error("duplicate label name {0:?}")]
    DuplicateLabelName(String),
}

/// A series' labels, sorted by name, names unique, empty values removed.
///
/// Sorting makes equality and hashing independent of the order a client sent the labels in;
/// dropping empty values follows Prometheus, where `a=""` means "label absent". Names and
/// values are shared strings, so the head can keep one copy of each (see
/// [`Labels::interned`]) and cloning a label set copies no text. The stable hash is
/// computed once, when the set is built: the head finds a series by it on every write.
#[derive(Clone)]
pub struct Labels {
    pairs: Vec<(Arc<str>, Arc<str>)>,
    hash: u64,
}

impl Labels {
    fn from_pairs(pairs: Vec<(Arc<str>, Arc<str>)>) -> Labels {
        let hash = stable_hash_of(pairs.iter().map(|(n, v)| (n.as_ref(), v.as_ref())));
        Labels { pairs, hash }
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Labels) -> bool {
        std::ptr::eq(self, other) || (self.hash == other.hash && self.pairs == other.pairs)
    }
}

impl Eq for Labels {}

impl std::hash::Hash for Labels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Ordered by pairs, as Prometheus orders series.
impl Ord for Labels {
    fn cmp(&self, other: &Labels) -> std::cmp::Ordering {
        self.pairs.cmp(&other.pairs)
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Labels) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Default for Labels {
    fn default() -> Labels {
        Labels::from_pairs(Vec::new())
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Labels").field(&self.pairs).finish()
    }
}

impl Labels {
    /// Builds a validated label set, as Prometheus 3.x validates what it stores (its UTF-8
    /// scheme): a metric name, any non-empty label names. Names that the classic rules
    /// refuse (`http.method`, `my-metric`) are kept as they are; the text exposition
    /// escapes them where it must (see [`escape_name`]).
    pub fn new(pairs: Vec<(String, String)>) -> Result<Self, LabelError> {
        if pairs.is_empty() {
            return Err(LabelError::Empty);
        }
        let mut pairs: Vec<(String, String)> =
            pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        for window in pairs.windows(2) {
            if window[0].0 == window[1].0 {
                return Err(LabelError::DuplicateLabelName(window[0].0.clone()));
            }
        }
        for (name, _) in &pairs {
            if !is_valid_utf8_label_name(name) {
                return Err(LabelError::InvalidLabelName(name.clone()));
            }
        }
        let labels = Labels::from_pairs(shared(pairs));
        match labels.metric_name() {
            None => Err(LabelError::MissingMetricName),
            Some(_) => Ok(labels),
        }
    }

    /// Builds a label set from pairs already known to be valid (for example read back from
    /// our own storage). Sorts, but does not validate.
    pub fn from_trusted(mut pairs: Vec<(String, String)>) -> Self {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        Labels::from_pairs(shared(pairs))
    }

    /// The same label set with every name and value taken from `intern`, which returns the
    /// one shared copy of a string: a store of many series keeps each string once.
    pub fn interned(&self, mut intern: impl FnMut(&Arc<str>) -> Arc<str>) -> Labels {
        Labels {
            pairs: self
                .pairs
                .iter()
                .map(|(n, v)| (intern(n), intern(v)))
                .collect(),
            hash: self.hash,
        }
    }

    /// The names and values as the shared strings they are.
    pub fn shared_pairs(&self) -> impl Iterator<Item = (&Arc<str>, &Arc<str>)> {
        self.pairs.iter().map(|(n, v)| (n, v))
    }

    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME_LABEL)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|(n, _)| n.as_ref().cmp(name))
            .ok()
            .map(|i| self.pairs[i].1.as_ref())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
    }

    /// Labels other than `__name__`.
    pub fn without_metric_name(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter().filter(|(n, _)| *n != METRIC_NAME_LABEL)
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// A 64-bit hash of the label set that is stable across processes and releases, so ids
    /// written to the WAL and to blocks keep their meaning after a restart.
    pub fn stable_hash(&self) -> u64 {
        self.hash
    }

    /// The set's key ([`write_label_key`]).
    pub fn key(&self) -> Vec<u8> {
        let mut key = Vec::new();
        write_label_key(
            self.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            &mut key,
        );
        key
    }
}

/// [`Labels::stable_hash`] of the label set made of `pairs` (sorted by name, no empty
/// values), computed without building it.
pub fn stable_hash_of<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    stable_hash_of_bytes(pairs.map(|(n, v)| (n.as_bytes(), v.as_bytes())))
}

/// [`stable_hash_of`] with names and values as bytes.
pub fn stable_hash_of_bytes<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> u64 {
    // One-shot xxh3 over the bytes laid end to end equals the streaming hash of the same
    // pieces, and is several times faster than feeding it four small slices a label.
    thread_local! {
        static BYTES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BYTES.with_borrow_mut(|bytes| {
        bytes.clear();
        write_label_key(pairs, bytes);
        let hash = stable_hash_of_key(bytes);
        if bytes.capacity() > 64 * 1024 {
            *bytes = Vec::new();
        }
        hash
    })
}

/// Appends the label set's key to `out`: each name and value followed by a `0xff` byte,
/// which no UTF-8 text holds. Equal keys are equal label sets, and the stable hash is the
/// key's hash ([`stable_hash_of_key`]).
pub fn write_label_key<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>, out: &mut Vec<u8>) {
    for (name, value) in pairs {
        out.extend_from_slice(name);
        out.push(0xff);
        out.extend_from_slice(value);
        out.push(0xff);
    }
}

/// [`Labels::stable_hash`] of the label set whose key ([`write_label_key`]) is `key`.
pub fn stable_hash_of_key(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

fn shared(pairs: Vec<(String, String)>) -> Vec<(Arc<str>, Arc<str>)> {
    pairs
        .into_iter()
        .map(|(n, v)| (Arc::from(n), Arc::from(v)))
        .collect()
}

impl fmt::Display for Labels {
    /// Prometheus's notation: `name{a="1", b="2"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{{", self.metric_name().unwrap_or(""))?;
        for (i, (name, value)) in self.without_metric_name().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{name}={value:?}")?;
        }
        write!(f, "}}")
    }
}

/// A label value quoted for `name{a="v"}` notation, which the text exposition format and
/// PromQL string literals share: backslash, double quote and newline are escaped.
pub fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, Prometheus's classic label name rule, which relabeling still applies
/// (Prometheus 3.x applies it only under its `legacy` validation scheme).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Prometheus 3.x's rule for label and metric names (its UTF-8 validation scheme), which
/// storage and PromQL (`label_replace`, `label_join`, `count_values`) apply: any
/// non-empty UTF-8 string.
pub fn is_valid_utf8_label_name(name: &str) -> bool {
    !name.is_empty()
}

/// A metric or label name as the text exposition writes it under Prometheus's
/// `underscores` escaping: each character the classic rules do not allow (a digit only
/// after the first) becomes `_`; a classic name is unchanged.
pub fn escape_name(name: &str) -> std::borrow::Cow<'_, str> {
    let legacy = |i: usize, c: char| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
    };
    if name.chars().enumerate().all(|(i, c)| legacy(i, c)) {
        return std::borrow::Cow::Borrowed(name);
    }
    name.chars()
        .enumerate()
        .map(|(i, c)| if legacy(i, c) { c } else { '_' })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_stable_hash_is_the_streaming_xxh3_of_name_and_value_pieces() {
        // Ids in the WAL and in blocks were written with this definition: it must not move.
        let l = Labels::new(pairs(&[("job", "a"), ("__name__", "up")])).unwrap();
        let mut streaming = xxhash_rust::xxh3::Xxh3::new();
        for piece in ["__name__", "up", "job", "a"] {
            streaming.update(piece.as_bytes());
            streaming.update(&[0xff]);
        }
        assert_eq!(l.stable_hash(), streaming.digest());
    }

    #[test]
    fn sorts_and_drops_empty_values() {
        let l = Labels::new(pairs(&[("job", "a"), ("__name__", "up"), ("x", "")])).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l.to_string(), "up{job=\"a\"}");
    }

    #[test]
    fn rejects_bad_sets() {
        assert_eq!(Labels::new(vec![]), Err(LabelError::Empty));
        assert_eq!(
            Labels::new(pairs(&[("job", "a")])),
            Err(LabelError::MissingMetricName)
        );
        assert!(matches!(
            Labels::new(pairs(&[("__name__", "up"), ("", "a")])),
            Err(LabelError::InvalidLabelName(_))
        ));
        assert!(matches!(
            Labels::new(pairs(&[("__name__", "up"), ("a", "1"), ("a", "2")])),
            Err(LabelError::DuplicateLabelName(_))
        ));
        // Prometheus 3.x stores names the classic rules refuse.
        let utf8 = Labels::new(pairs(&[("__name__", "9up.total"), ("http.method", "GET")]));
        assert_eq!(utf8.map(|l| l.len()), Ok(2));
    }

    #[test]
    fn names_are_escaped_with_underscores() {
        assert_eq!(escape_name("http_requests_total"), "http_requests_total");
        assert_eq!(escape_name("my.metric-name"), "my_metric_name");
        assert_eq!(escape_name("9lives"), "_lives");
        assert_eq!(escape_name("a:b9"), "a:b9");
        assert_eq!(escape_name("café"), "caf_");
    }

    #[test]
    fn hash_ignores_input_order() {
        let a = Labels::new(pairs(&[("__name__", "up"), ("a", "1"), ("b", "2")])).unwrap();
        let b = Labels::new(pairs(&[("b", "2"), ("a", "1"), ("__name__", "up")])).unwrap();
        assert_eq!(a.stable_hash(), b.stable_hash());
        let c = Labels::new(pairs(&[("__name__", "up"), ("a", "12")])).unwrap();
        let d = Labels::new(pairs(&[("__name__", "up"), ("a1", "2")])).unwrap();
        assert_ne!(c.stable_hash(), d.stable_hash());
    }
}
