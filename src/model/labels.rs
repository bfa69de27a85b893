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
    /// A validated label set, as Prometheus 3.x validates names (its UTF-8 scheme): sorted
    /// by name, names non-empty and unique, empty values dropped (`a=""` means the label is
    /// absent). Names that the classic rules refuse (`http.method`, `my-metric`) are kept
    /// as they are; the text exposition escapes them where it must (see [`escape_name`]).
    /// Alerts, targets and query results are label sets without a metric name; a stored
    /// series is checked with [`Labels::series`].
    pub fn new(pairs: Vec<(String, String)>) -> Result<Self, LabelError> {
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
        Ok(Labels::from_pairs(shared(pairs)))
    }

    /// A series' label set, as storage takes it: [`Labels::new`] with a metric name.
    pub fn series(pairs: Vec<(String, String)>) -> Result<Self, LabelError> {
        if pairs.is_empty() {
            return Err(LabelError::Empty);
        }
        Labels::new(pairs)?.check_series()
    }

    /// This set if it can identify a stored series: not empty, with a metric name and
    /// valid names (a relabeled set can hold a name `labelmap` made up).
    pub fn check_series(self) -> Result<Self, LabelError> {
        if self.is_empty() {
            return Err(LabelError::Empty);
        }
        if let Some((name, _)) = self.iter().find(|(n, _)| !is_valid_utf8_label_name(n)) {
            return Err(LabelError::InvalidLabelName(name.to_string()));
        }
        match self.metric_name() {
            None => Err(LabelError::MissingMetricName),
            Some(_) => Ok(self),
        }
    }

    /// Builds a label set from pairs already known to be valid (for example read back from
    /// our own storage). Sorts, but does not validate.
    pub fn from_trusted(mut pairs: Vec<(String, String)>) -> Self {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        Labels::from_pairs(shared(pairs))
    }

    /// A builder that starts from this set ([`LabelsBuilder`]).
    pub fn builder(&self) -> LabelsBuilder {
        LabelsBuilder::new(self.to_pairs())
    }

    /// This set with `name` set to `value` (removed when `value` is empty).
    pub fn with(&self, name: &str, value: &str) -> Labels {
        let mut b = self.builder();
        b.set(name, value.to_string());
        b.labels()
    }

    /// This set less the labels named in `names`.
    pub fn without(&self, names: &[&str]) -> Labels {
        self.filtered(|n| !names.contains(&n))
    }

    /// Only the labels named in `names`.
    pub fn keep(&self, names: &[&str]) -> Labels {
        self.filtered(|n| names.contains(&n))
    }

    /// This set less `__name__`.
    pub fn drop_metric_name(&self) -> Labels {
        self.without(&[METRIC_NAME_LABEL])
    }

    fn filtered(&self, keep: impl Fn(&str) -> bool) -> Labels {
        Labels::from_pairs(
            (self.pairs.iter())
                .filter(|(n, _)| keep(n))
                .cloned()
                .collect(),
        )
    }

    /// The pairs as owned strings, sorted by name.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// The set as a map from name to value.
    pub fn to_map(&self) -> std::collections::BTreeMap<String, String> {
        self.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
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

/// Collects pairs in any order: sorted by name, the last of a repeated name wins and
/// empty values are dropped, as Prometheus's `labels.Builder` does. Names are not
/// checked; use [`Labels::new`] for input a client controls.
impl FromIterator<(String, String)> for Labels {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Labels {
        LabelsBuilder::new(pairs.into_iter().collect()).labels()
    }
}

/// A JSON or YAML object from name to value, as Prometheus's API writes a label set.
impl serde::Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// From an object of name to value, validated as [`Labels::new`] validates.
impl<'de> serde::Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Labels, D::Error> {
        let map = std::collections::BTreeMap::<String, String>::deserialize(deserializer)?;
        Labels::new(map.into_iter().collect()).map_err(serde::de::Error::custom)
    }
}

/// A label set under modification, as Prometheus's `labels.Builder`: set and delete by
/// name, then [`LabelsBuilder::labels`] for the sorted result.
///
/// The split into sorted `base` plus `added` in write order matters to relabeling: it
/// fixes the order in which `labelmap` visits labels ([`LabelsBuilder::snapshot`]), and so
/// which source wins when two labels map to the same name (the later one).
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    /// The input labels, sorted by name, unique, no empty values.
    base: Vec<(String, String)>,
    /// Base labels removed since; a name can also be re-added to `added`.
    deleted: Vec<String>,
    /// Labels written since, in the order they were first written.
    added: Vec<(String, String)>,
}

impl LabelsBuilder {
    /// Starts from `labels` in any order; if a name repeats, the last occurrence wins, and
    /// empty values count as absent.
    pub fn new(mut labels: Vec<(String, String)>) -> LabelsBuilder {
        // Stable sort keeps input order among equal names, so the last wins.
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        let mut base: Vec<(String, String)> = Vec::with_capacity(labels.len());
        for (name, value) in labels {
            match base.last_mut() {
                Some(last) if last.0 == name => last.1 = value,
                _ => base.push((name, value)),
            }
        }
        base.retain(|(_, value)| !value.is_empty());
        LabelsBuilder {
            base,
            deleted: Vec::new(),
            added: Vec::new(),
        }
    }

    /// The current value of `name`, or "" when absent.
    pub fn get(&self, name: &str) -> &str {
        if let Some((_, value)) = self.added.iter().find(|(n, _)| n == name) {
            return value;
        }
        if self.deleted.iter().any(|n| n == name) {
            return "";
        }
        match self.base.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(index) => &self.base[index].1,
            Err(_) => "",
        }
    }

    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: &str, value: String) -> &mut Self {
        if value.is_empty() {
            return self.del(name);
        }
        match self.added.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value,
            None => self.added.push((name.to_owned(), value)),
        }
        self
    }

    /// Removes `name`.
    pub fn del(&mut self, name: &str) -> &mut Self {
        self.added.retain(|(n, _)| n != name);
        if !self.deleted.iter().any(|n| n == name) {
            self.deleted.push(name.to_owned());
        }
        self
    }

    /// The current labels: untouched base labels (sorted), then written ones in write
    /// order.
    pub fn snapshot(&self) -> Vec<(String, String)> {
        let untouched = self.base.iter().filter(|(name, _)| {
            !self.deleted.contains(name) && !self.added.iter().any(|(n, _)| n == name)
        });
        untouched.chain(self.added.iter()).cloned().collect()
    }

    /// Removes every current label whose name fails `keep`.
    pub fn retain_names(&mut self, keep: impl Fn(&str) -> bool) -> &mut Self {
        for (name, _) in self.snapshot() {
            if !keep(&name) {
                self.del(&name);
            }
        }
        self
    }

    /// The labels as built, sorted by name. Names are not checked: relabeling's `labelmap`
    /// can write one that is not valid, which [`Labels::check_series`] refuses.
    pub fn labels(self) -> Labels {
        if self.deleted.is_empty() && self.added.is_empty() {
            return Labels::from_pairs(shared(self.base));
        }
        let mut labels = self.snapshot();
        labels.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Labels::from_pairs(shared(labels))
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
        assert_eq!(Labels::series(vec![]), Err(LabelError::Empty));
        assert_eq!(
            Labels::series(pairs(&[("job", "a")])),
            Err(LabelError::MissingMetricName)
        );
        // Alerts, targets and results are label sets without a metric name.
        assert_eq!(Labels::new(pairs(&[("job", "a")])).map(|l| l.len()), Ok(1));
        assert_eq!(Labels::new(vec![]).map(|l| l.len()), Ok(0));
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
    fn helpers_work_as_prometheus_labels_do() {
        let l = Labels::new(pairs(&[("__name__", "up"), ("job", "a"), ("zone", "x")])).unwrap();
        assert_eq!(l.with("job", "b").get("job"), Some("b"));
        assert_eq!(l.with("job", "").get("job"), None);
        assert_eq!(
            l.with("a", "1").to_pairs()[0],
            ("__name__".into(), "up".into())
        );
        assert_eq!(l.without(&["job", "nope"]).to_string(), "up{zone=\"x\"}");
        assert_eq!(l.keep(&["job"]).to_string(), "{job=\"a\"}");
        assert_eq!(l.drop_metric_name().metric_name(), None);
        // Built any way, equal sets hash alike.
        assert_eq!(l.with("q", "1").without(&["q"]), l);
        assert_eq!(
            l.with("q", "1").without(&["q"]).stable_hash(),
            l.stable_hash()
        );
        let collected: Labels = [("zone", "x"), ("job", "old"), ("job", "a"), ("e", "")]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .chain([("__name__".to_string(), "up".to_string())])
            .collect();
        assert_eq!(collected, l);
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"__name__":"up","job":"a","zone":"x"}"#
        );
        let back: Labels =
            serde_json::from_str(r#"{"zone":"x","job":"a","__name__":"up"}"#).unwrap();
        assert_eq!(back, l);
        assert!(serde_json::from_str::<Labels>(r#"{"":"x"}"#).is_err());
        let mut b = l.builder();
        b.set("job", "c".into()).del("zone").set("b", "2".into());
        assert_eq!(b.get("job"), "c");
        assert_eq!(b.labels().to_string(), "up{b=\"2\", job=\"c\"}");
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
