//! Prometheus relabeling: the `relabel_config` blocks used by `relabel_configs`,
//! `metric_relabel_configs` and friends in `prometheus.yml`.
//!
//! Behaviour follows Prometheus (`model/relabel`) as closely as a Rust port can:
//! defaults, case-insensitive action names, validation rules and messages, the
//! fully anchored `^(?s:…)$` regex, Go's `$`-template expansion, the md5 tail
//! used by `hashmod`, Go's simple case mapping for `lowercase`/`uppercase`, and
//! the label builder's "empty value means absent" and iteration order.
//!
//! Label names follow the classic (legacy) Prometheus rule `[a-zA-Z_][a-zA-Z0-9_]*`.

use std::fmt;
use std::sync::LazyLock;

use super::{Labels, LabelsBuilder, is_valid_label_name};
use md5::{Digest, Md5};
use regex::{Captures, Regex};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_REPLACEMENT: &str = "$1";

/// What a relabel rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Action {
    /// Writes the expanded `replacement` to the expanded `target_label` when `regex` matches.
    #[default]
    Replace,
    /// Drops the label set unless `regex` matches the source value.
    Keep,
    /// Drops the label set when `regex` matches the source value.
    Drop,
    /// Drops the label set unless the source value equals the value of `target_label`.
    KeepEqual,
    /// Drops the label set when the source value equals the value of `target_label`.
    DropEqual,
    /// Sets `target_label` to md5(source value) modulo `modulus`.
    HashMod,
    /// Copies every label whose name matches `regex` to the name built from `replacement`.
    LabelMap,
    /// Removes every label whose name matches `regex`.
    LabelDrop,
    /// Removes every label whose name does not match `regex`.
    LabelKeep,
    /// Sets `target_label` to the lower-cased source value.
    Lowercase,
    /// Sets `target_label` to the upper-cased source value.
    Uppercase,
}

impl Action {
    const ALL: [Action; 11] = [
        Action::Replace,
        Action::Keep,
        Action::Drop,
        Action::KeepEqual,
        Action::DropEqual,
        Action::HashMod,
        Action::LabelMap,
        Action::LabelDrop,
        Action::LabelKeep,
        Action::Lowercase,
        Action::Uppercase,
    ];

    /// The name used in `prometheus.yml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }

    /// Parses an action name the way Prometheus does: case-insensitively.
    pub fn from_name(name: &str) -> Result<Action, String> {
        let lowered = crate::gocompat::case::to_lower(name);
        Action::ALL
            .into_iter()
            .find(|action| action.as_str() == lowered)
            .ok_or_else(|| format!("unknown relabel action {name:?}"))
    }

    /// Actions that write to `target_label` and therefore need one.
    fn requires_target_label(self) -> bool {
        matches!(
            self,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        )
    }

    /// Actions whose `target_label` is used literally (no `$` expansion) and
    /// which ignore `replacement`.
    fn is_literal_target_action(self) -> bool {
        matches!(
            self,
            Action::Lowercase | Action::Uppercase | Action::KeepEqual | Action::DropEqual
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // YAML `action: ~` leaves Prometheus with an empty action, which its
        // validation rejects with this message.
        match Option::<String>::deserialize(deserializer)? {
            None => Err(D::Error::custom("relabel action cannot be empty")),
            Some(name) => Action::from_name(&name).map_err(D::Error::custom),
        }
    }
}

/// A relabel regex: the pattern as written plus its fully anchored compiled form.
///
/// Equality, `Debug` and serialization use the pattern as written.
#[derive(Clone)]
pub struct RelabelRegex {
    source: String,
    compiled: Regex,
}

impl RelabelRegex {
    /// Compiles `pattern` as Prometheus does: `^(?s:pattern)$`, so it must match
    /// the whole input and `.` also matches newlines.
    pub fn new(pattern: &str) -> Result<RelabelRegex, String> {
        match crate::gocompat::regex::compile_anchored(pattern) {
            Ok(compiled) => Ok(RelabelRegex {
                source: pattern.to_owned(),
                compiled,
            }),
            Err(detail) => Err(format!("invalid regex {pattern:?}: {detail}")),
        }
    }

    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.compiled.is_match(text)
    }

    fn captures<'t>(&self, text: &'t str) -> Option<Captures<'t>> {
        self.compiled.captures(text)
    }
}

impl Default for RelabelRegex {
    fn default() -> Self {
        RelabelRegex {
            source: DEFAULT_REGEX.to_owned(),
            compiled: DEFAULT_COMPILED.clone(),
        }
    }
}

/// The anchored default pattern, compiled once: every rule that omits `regex`
/// shares it (cloning a `Regex` is cheap).
static DEFAULT_COMPILED: LazyLock<Regex> = LazyLock::new(|| {
    // A constant pattern, not input: it cannot fail at run time, and
    // `default_regex_matches_everything` exercises it.
    Regex::new("^(?s:(.*))$").expect("the default relabel regex is valid")
});

impl PartialEq for RelabelRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for RelabelRegex {}

impl fmt::Debug for RelabelRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RelabelRegex").field(&self.source).finish()
    }
}

impl fmt::Display for RelabelRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for RelabelRegex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for RelabelRegex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Prometheus turns an explicit `regex: ~` into the empty pattern.
        let pattern = null_as_default::<D, String>(deserializer)?;
        RelabelRegex::new(&pattern).map_err(D::Error::custom)
    }
}

/// One relabel rule as written in `prometheus.yml`.
///
/// Deserializing does not validate; call [`RelabelConfig::validate`] after
/// loading, as Prometheus does while parsing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` into the source value.
    #[serde(deserialize_with = "null_as_default")]
    pub source_labels: Vec<String>,
    /// Joins the source label values.
    #[serde(deserialize_with = "null_as_default")]
    pub separator: String,
    /// Label written by replace, hashmod, lowercase and uppercase; compared by keepequal/dropequal.
    #[serde(deserialize_with = "null_as_default")]
    pub target_label: String,
    /// Pattern matched against the source value (or label names for labelmap/labeldrop/labelkeep).
    pub regex: RelabelRegex,
    /// Divisor for hashmod.
    #[serde(deserialize_with = "null_as_default")]
    pub modulus: u64,
    /// Template for replace and labelmap; `$1`, `${1}`, `$name`, `${name}`, `$$`.
    #[serde(deserialize_with = "null_as_default")]
    pub replacement: String,
    /// What the rule does.
    pub action: Action,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: DEFAULT_SEPARATOR.to_owned(),
            target_label: String::new(),
            regex: RelabelRegex::default(),
            modulus: 0,
            replacement: DEFAULT_REPLACEMENT.to_owned(),
            action: Action::Replace,
        }
    }
}

/// YAML `key: ~` (or `key:`) means "zero value" to Prometheus's YAML decoder,
/// while a missing key keeps the default; serde needs the `Option` to tell.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

impl RelabelConfig {
    /// Checks the rule with Prometheus's rules and messages.
    ///
    /// Like Prometheus, `labelmap` only has its `replacement` checked: extra
    /// `source_labels` or `target_label` there are ignored, not rejected.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_source_labels()?;
        self.validate_target_label()?;
        self.validate_action_specific_fields()
    }

    fn validate_source_labels(&self) -> Result<(), String> {
        // Prometheus rejects these while decoding the label name list.
        match self
            .source_labels
            .iter()
            .find(|name| !is_valid_label_name(name))
        {
            Some(name) => Err(format!("{name:?} is not a valid label name")),
            None => Ok(()),
        }
    }

    fn validate_target_label(&self) -> Result<(), String> {
        let action = self.action;
        let target = self.target_label.as_str();
        if action == Action::HashMod && self.modulus == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".to_owned());
        }
        if action.requires_target_label() && target.is_empty() {
            return Err(format!(
                "relabel configuration for {action} action requires 'target_label' value"
            ));
        }
        let target_ok = match action {
            // `$` references are expanded at apply time; the template must at
            // least look like a label name, and the result is checked then.
            Action::Replace if target.contains('$') => is_valid_label_template(target),
            Action::Replace | Action::HashMod => is_valid_label_name(target),
            _ if action.is_literal_target_action() => is_valid_label_name(target),
            _ => true,
        };
        if !target_ok {
            return Err(format!(
                "{target:?} is invalid 'target_label' for {action} action"
            ));
        }
        Ok(())
    }

    fn validate_action_specific_fields(&self) -> Result<(), String> {
        let action = self.action;
        let default_replacement = self.replacement == DEFAULT_REPLACEMENT;
        if action.is_literal_target_action() && !default_replacement {
            return Err(format!("'replacement' can not be set for {action} action"));
        }
        if action == Action::LabelMap && !is_valid_label_template(&self.replacement) {
            return Err(format!(
                "{:?} is invalid 'replacement' for {action} action",
                self.replacement
            ));
        }
        let default_modulus_and_separator =
            self.modulus == 0 && self.separator == DEFAULT_SEPARATOR;
        if matches!(action, Action::KeepEqual | Action::DropEqual)
            && !(self.regex.as_str() == DEFAULT_REGEX
                && default_modulus_and_separator
                && default_replacement)
        {
            return Err(format!(
                "{action} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(action, Action::LabelDrop | Action::LabelKeep)
            && !(self.source_labels.is_empty()
                && self.target_label.is_empty()
                && default_modulus_and_separator
                && default_replacement)
        {
            return Err(format!(
                "{action} action requires only 'regex', and no other fields"
            ));
        }
        Ok(())
    }
}

/// Applies `rules` in order to a label set (sorted or not).
///
/// Returns `None` when a rule drops the set. Otherwise returns the labels
/// sorted by name, without empty values (an empty value means "absent").
/// If the input repeats a name, the last occurrence wins.
///
/// Like Prometheus, `labelmap` writes the expanded name without checking it,
/// so the result can hold an invalid label name; callers validate names
/// afterwards (Prometheus rejects such a target or sample downstream).
pub fn relabel(labels: Vec<(String, String)>, rules: &[RelabelConfig]) -> Option<Labels> {
    let mut builder = LabelsBuilder::new(labels);
    for rule in rules {
        if !apply_rule(rule, &mut builder) {
            return None;
        }
    }
    Some(builder.labels())
}

/// Applies one rule; returns false when the label set must be dropped.
fn apply_rule(rule: &RelabelConfig, labels: &mut LabelsBuilder) -> bool {
    let value = source_value(rule, labels);
    match rule.action {
        Action::Keep => return rule.regex.is_match(&value),
        Action::Drop => return !rule.regex.is_match(&value),
        Action::KeepEqual => return labels.get(&rule.target_label) == value,
        Action::DropEqual => return labels.get(&rule.target_label) != value,
        Action::Replace => apply_replace(rule, &value, labels),
        Action::Lowercase => {
            labels.set(&rule.target_label, crate::gocompat::case::to_lower(&value));
        }
        Action::Uppercase => {
            labels.set(&rule.target_label, crate::gocompat::case::to_upper(&value));
        }
        Action::HashMod => apply_hashmod(rule, &value, labels),
        Action::LabelMap => apply_labelmap(rule, labels),
        Action::LabelDrop => {
            labels.retain_names(|name| !rule.regex.is_match(name));
        }
        Action::LabelKeep => {
            labels.retain_names(|name| rule.regex.is_match(name));
        }
    }
    true
}

/// The values of `source_labels` (missing ones as "") joined by `separator`.
fn source_value(rule: &RelabelConfig, labels: &LabelsBuilder) -> String {
    let values: Vec<&str> = rule
        .source_labels
        .iter()
        .map(|name| labels.get(name))
        .collect();
    values.join(&rule.separator)
}

fn apply_replace(rule: &RelabelConfig, value: &str, labels: &mut LabelsBuilder) {
    let Some(captures) = rule.regex.captures(value) else {
        return;
    };
    let target = expand_template(&rule.target_label, &captures);
    // A `$` template can expand to something that is not a label name (say
    // "1abc" or ""): Prometheus then leaves the labels alone.
    if !is_valid_label_name(&target) {
        return;
    }
    // An empty expansion deletes the target: `set` treats "" as removal.
    let replacement = expand_template(&rule.replacement, &captures);
    labels.set(&target, replacement);
}

fn apply_hashmod(rule: &RelabelConfig, value: &str, labels: &mut LabelsBuilder) {
    // Validation forbids modulus 0; an unvalidated rule is skipped rather than
    // dividing by zero.
    if let Some(bucket) = md5_tail(value).checked_rem(rule.modulus) {
        labels.set(&rule.target_label, bucket.to_string());
    }
}

/// The last 8 bytes of md5(value) as a big-endian integer: the hash Prometheus
/// has used for `hashmod` since its early versions, so shards stay put.
fn md5_tail(value: &str) -> u64 {
    let digest = Md5::digest(value.as_bytes());
    digest
        .iter()
        .skip(8)
        .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte))
}

fn apply_labelmap(rule: &RelabelConfig, labels: &mut LabelsBuilder) {
    // Iterate over a snapshot so labels written here are not mapped again.
    for (name, value) in labels.snapshot() {
        if let Some(captures) = rule.regex.captures(&name) {
            let new_name = expand_template(&rule.replacement, &captures);
            labels.set(&new_name, value);
        }
    }
}

/// Expands `$1`, `${1}`, `$name`, `${name}` and `$$` in `template` the way Go's
/// `Regexp.Expand` does, which is what Prometheus configs are written against:
/// a name is as long as possible (`$1x` means `${1x}`), unknown or unmatched
/// groups expand to "", and a malformed reference leaves the `$` as text.
fn expand_template(template: &str, captures: &Captures<'_>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match parse_group_reference(rest) {
            Some((group, after)) => {
                out.push_str(group.lookup(captures));
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
    out
}

/// A capture group named in a replacement template.
enum GroupRef<'a> {
    Index(usize),
    Name(&'a str),
}

impl GroupRef<'_> {
    fn lookup<'t>(&self, captures: &Captures<'t>) -> &'t str {
        let found = match self {
            GroupRef::Index(index) => captures.get(*index),
            GroupRef::Name(name) => captures.name(name),
        };
        found.map_or("", |m| m.as_str())
    }
}

/// Parses the reference after a `$`; returns it and the text following it.
fn parse_group_reference(text: &str) -> Option<(GroupRef<'_>, &str)> {
    let (braced, body) = match text.strip_prefix('{') {
        Some(inner) => (true, inner),
        None => (false, text),
    };
    let name_len = body
        .char_indices()
        .find(|&(_, c)| !is_template_name_char(c))
        .map_or(body.len(), |(index, _)| index);
    if name_len == 0 {
        return None;
    }
    let (name, mut after) = body.split_at(name_len);
    if braced {
        after = after.strip_prefix('}')?;
    }
    Some((group_ref(name), after))
}

/// Go counts letters and digits in the Unicode sense here; Rust's
/// alphanumeric is the closest standard predicate.
fn is_template_name_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Purely ASCII-numeric names without a leading zero are group numbers; Go
/// treats anything else (including "01") as a group name.
fn group_ref(name: &str) -> GroupRef<'_> {
    let numeric = name.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = name.len() > 1 && name.starts_with('0');
    match name.parse::<usize>() {
        Ok(index) if numeric && !leading_zero => GroupRef::Index(index),
        // Too large for usize: no such group either way, so "" results.
        _ => GroupRef::Name(name),
    }
}

fn is_ascii_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A label name that may contain `$name` / `${name}` references, as Prometheus
/// accepts for replace's `target_label` and labelmap's `replacement`: word
/// characters and references, not starting with a digit, no other `$` use.
fn is_valid_label_template(template: &str) -> bool {
    let bytes = template.as_bytes();
    if bytes.is_empty() || bytes[0].is_ascii_digit() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_ascii_word(bytes[i]) {
            i += 1;
            continue;
        }
        if bytes[i] != b'$' {
            return false;
        }
        match template_reference_len(&bytes[i + 1..]) {
            Some(len) => i += 1 + len,
            None => return false,
        }
    }
    true
}

/// Length of `{word+}` or `word+` at the start of `bytes`.
fn template_reference_len(bytes: &[u8]) -> Option<usize> {
    let braced = bytes.first() == Some(&b'{');
    let start = usize::from(braced);
    let word_len = bytes[start..]
        .iter()
        .take_while(|&&b| is_ascii_word(b))
        .count();
    if word_len == 0 {
        return None;
    }
    if braced {
        (bytes.get(start + word_len) == Some(&b'}')).then_some(start + word_len + 1)
    } else {
        Some(word_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Parses a YAML list of rules and checks that each one validates.
    fn rules(yaml: &str) -> Vec<RelabelConfig> {
        let rules: Vec<RelabelConfig> = serde_norway::from_str(yaml).unwrap();
        for rule in &rules {
            rule.validate().unwrap();
        }
        rules
    }

    fn run(input: &[(&str, &str)], yaml: &str) -> Option<Vec<(String, String)>> {
        relabel(labels(input), &rules(yaml)).map(|l| l.to_pairs())
    }

    fn parse_error(yaml: &str) -> String {
        serde_norway::from_str::<RelabelConfig>(yaml)
            .unwrap_err()
            .to_string()
    }

    fn validation_error(yaml: &str) -> String {
        serde_norway::from_str::<RelabelConfig>(yaml)
            .unwrap()
            .validate()
            .unwrap_err()
    }

    /// md5 tail computed independently of `md5_tail`, straight from the rule.
    fn reference_hashmod(value: &str, modulus: u64) -> u64 {
        let digest = Md5::digest(value.as_bytes());
        let tail: [u8; 8] = digest[8..16].try_into().unwrap();
        u64::from_be_bytes(tail) % modulus
    }

    // ---- YAML parsing -------------------------------------------------------

    #[test]
    fn yaml_applies_prometheus_defaults() {
        let rule: RelabelConfig = serde_norway::from_str("target_label: foo").unwrap();
        assert_eq!(rule.source_labels, Vec::<String>::new());
        assert_eq!(rule.separator, ";");
        assert_eq!(rule.regex.as_str(), "(.*)");
        assert_eq!(rule.modulus, 0);
        assert_eq!(rule.replacement, "$1");
        assert_eq!(rule.action, Action::Replace);
        assert_eq!(rule.target_label, "foo");
        let expected = RelabelConfig {
            target_label: "foo".to_owned(),
            ..RelabelConfig::default()
        };
        assert_eq!(rule, expected);
    }

    #[test]
    fn yaml_reads_all_fields() {
        let rule: RelabelConfig = serde_norway::from_str(
            "source_labels: [a, b]\nseparator: ','\ntarget_label: t\nregex: 'x(.*)'\n\
             modulus: 7\nreplacement: 'y$1'\naction: hashmod\n",
        )
        .unwrap();
        assert_eq!(rule.source_labels, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(rule.separator, ",");
        assert_eq!(rule.target_label, "t");
        assert_eq!(rule.regex.as_str(), "x(.*)");
        assert_eq!(rule.modulus, 7);
        assert_eq!(rule.replacement, "y$1");
        assert_eq!(rule.action, Action::HashMod);
    }

    #[test]
    fn yaml_action_names_are_case_insensitive() {
        for (name, action) in [
            ("replace", Action::Replace),
            ("KEEP", Action::Keep),
            ("Drop", Action::Drop),
            ("KeepEqual", Action::KeepEqual),
            ("dropEqual", Action::DropEqual),
            ("HashMod", Action::HashMod),
            ("LabelMap", Action::LabelMap),
            ("labelDROP", Action::LabelDrop),
            ("LABELKEEP", Action::LabelKeep),
            ("Lowercase", Action::Lowercase),
            ("UpperCase", Action::Uppercase),
        ] {
            let rule: RelabelConfig = serde_norway::from_str(&format!("action: {name}")).unwrap();
            assert_eq!(rule.action, action, "{name}");
            assert_eq!(Action::from_name(action.as_str()), Ok(action));
        }
    }

    #[test]
    fn yaml_rejects_unknown_and_empty_actions() {
        assert!(
            parse_error("action: explode").contains(r#"unknown relabel action "explode""#),
            "{}",
            parse_error("action: explode")
        );
        assert!(parse_error("action: ''").contains(r#"unknown relabel action """#));
        assert!(parse_error("action: ~").contains("relabel action cannot be empty"));
    }

    #[test]
    fn yaml_rejects_unknown_fields() {
        let err = parse_error("source_labels: [a]\ntarget_labels: b\n");
        assert!(err.contains("unknown field `target_labels`"), "{err}");
    }

    #[test]
    fn yaml_rejects_invalid_regex_with_clear_message() {
        let err = parse_error("regex: '(foo'");
        assert!(err.contains(r#"invalid regex "(foo""#), "{err}");
        let err = RelabelRegex::new("a{2,1}").unwrap_err();
        assert!(err.starts_with(r#"invalid regex "a{2,1}""#), "{err}");
    }

    #[test]
    fn yaml_accepts_unquoted_scalars_as_strings() {
        // `regex: true` is in Prometheus's own Kubernetes example config.
        let rule: RelabelConfig =
            serde_norway::from_str("regex: true\nreplacement: 9100\nseparator: 010").unwrap();
        assert_eq!(rule.regex.as_str(), "true");
        assert_eq!(rule.replacement, "9100");
        assert_eq!(rule.separator, "010");
    }

    #[test]
    fn yaml_null_fields_become_zero_values() {
        let rule: RelabelConfig =
            serde_norway::from_str("regex: ~\nreplacement:\nseparator: null\nsource_labels: ~")
                .unwrap();
        assert_eq!(rule.regex.as_str(), "");
        assert!(rule.regex.is_match(""));
        assert!(!rule.regex.is_match("x"));
        assert_eq!(rule.replacement, "");
        assert_eq!(rule.separator, "");
        assert!(rule.source_labels.is_empty());
    }

    #[test]
    fn yaml_round_trips_through_serialize() {
        let yaml = "source_labels: [a, b]\nregex: 'true'\ntarget_label: t\naction: LabelMap\n\
                    replacement: 'x_$1'\n";
        let rule: RelabelConfig = serde_norway::from_str(yaml).unwrap();
        let written = serde_norway::to_string(&rule).unwrap();
        assert!(written.contains("action: labelmap"), "{written}");
        let reread: RelabelConfig = serde_norway::from_str(&written).unwrap();
        assert_eq!(reread, rule);
        assert_eq!(format!("{:?}", rule.regex), r#"RelabelRegex("true")"#);
    }

    // ---- validation ---------------------------------------------------------

    #[test]
    fn validation_accepts_documented_configs() {
        rules(
            r#"
- source_labels: [__meta_kubernetes_service_annotation_prometheus_io_scrape]
  action: keep
  regex: true
- source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
  action: replace
  regex: ([^:]+)(?::\d+)?;(\d+)
  replacement: $1:$2
  target_label: __address__
- action: labelmap
  regex: __meta_kubernetes_node_label_(.+)
- source_labels: [__address__]
  modulus: 8
  target_label: __tmp_hash
  action: hashmod
- source_labels: [__meta_kubernetes_pod_container_port_number]
  target_label: __meta_kubernetes_pod_annotation_prometheus_io_port
  action: keepequal
- regex: kernelVersion
  action: labeldrop
- source_labels: [instance]
  target_label: ${1}_x
- source_labels: [job]
  target_label: job_lower
  action: lowercase
"#,
        );
    }

    #[test]
    fn validation_requires_target_label() {
        for action in [
            "replace",
            "hashmod",
            "lowercase",
            "uppercase",
            "keepequal",
            "dropequal",
        ] {
            let yaml = format!("action: {action}\nsource_labels: [a]\nmodulus: 2");
            assert_eq!(
                validation_error(&yaml),
                format!("relabel configuration for {action} action requires 'target_label' value")
            );
        }
    }

    #[test]
    fn validation_requires_hashmod_modulus() {
        assert_eq!(
            validation_error("action: hashmod\nsource_labels: [a]\ntarget_label: b"),
            "relabel configuration for hashmod requires non-zero modulus"
        );
    }

    #[test]
    fn validation_checks_target_label_names() {
        assert_eq!(
            validation_error("target_label: 1foo"),
            r#""1foo" is invalid 'target_label' for replace action"#
        );
        assert_eq!(
            validation_error("target_label: foo-bar"),
            r#""foo-bar" is invalid 'target_label' for replace action"#
        );
        // `$` templates must look like label names made of references.
        for bad in ["foo-$1", "$", "$$", "${1", "${}", "1$x", "a$-"] {
            assert_eq!(
                validation_error(&format!("target_label: '{bad}'")),
                format!("{bad:?} is invalid 'target_label' for replace action")
            );
        }
        for good in ["$1", "${1}", "${1}_x", "x_$1", "$name", "$1$2", "_${a}b"] {
            let yaml = format!("target_label: '{good}'");
            let rule: RelabelConfig = serde_norway::from_str(&yaml).unwrap();
            assert_eq!(rule.validate(), Ok(()), "{good}");
        }
        // Only replace expands the target label.
        assert_eq!(
            validation_error("action: lowercase\ntarget_label: '$1'"),
            r#""$1" is invalid 'target_label' for lowercase action"#
        );
        assert_eq!(
            validation_error("action: hashmod\nmodulus: 3\ntarget_label: '$1'"),
            r#""$1" is invalid 'target_label' for hashmod action"#
        );
    }

    #[test]
    fn validation_checks_source_label_names() {
        assert_eq!(
            validation_error("source_labels: [ok, 'not-ok']\ntarget_label: x"),
            r#""not-ok" is not a valid label name"#
        );
    }

    #[test]
    fn validation_forbids_replacement_for_case_and_equal_actions() {
        for action in ["lowercase", "uppercase", "keepequal", "dropequal"] {
            assert_eq!(
                validation_error(&format!(
                    "action: {action}\ntarget_label: t\nreplacement: x"
                )),
                format!("'replacement' can not be set for {action} action")
            );
        }
    }

    #[test]
    fn validation_checks_labelmap_replacement() {
        assert_eq!(
            validation_error("action: labelmap\nreplacement: 'a-$1'"),
            r#""a-$1" is invalid 'replacement' for labelmap action"#
        );
        assert_eq!(
            validation_error("action: labelmap\nreplacement: ''"),
            r#""" is invalid 'replacement' for labelmap action"#
        );
    }

    #[test]
    fn validation_keepequal_takes_only_source_and_target() {
        for extra in ["regex: a", "separator: ','", "modulus: 2"] {
            for action in ["keepequal", "dropequal"] {
                assert_eq!(
                    validation_error(&format!("action: {action}\ntarget_label: t\n{extra}")),
                    format!(
                        "{action} action requires only 'source_labels' and `target_label`, and no other fields"
                    )
                );
            }
        }
    }

    #[test]
    fn validation_labeldrop_takes_only_regex() {
        for extra in [
            "source_labels: [a]",
            "target_label: t",
            "separator: ','",
            "modulus: 2",
            "replacement: x",
        ] {
            for action in ["labeldrop", "labelkeep"] {
                assert_eq!(
                    validation_error(&format!("action: {action}\nregex: a\n{extra}")),
                    format!("{action} action requires only 'regex', and no other fields")
                );
            }
        }
    }

    // ---- regex --------------------------------------------------------------

    #[test]
    fn default_regex_matches_everything() {
        let regex = RelabelRegex::default();
        assert_eq!(regex.as_str(), "(.*)");
        for text in ["", "x", "a\nb", "ünïcødé"] {
            assert!(regex.is_match(text), "{text:?}");
        }
    }

    #[test]
    fn regex_is_fully_anchored() {
        let rule = "- source_labels: [a]\n  regex: foo\n  action: keep\n";
        assert!(run(&[("a", "foo")], rule).is_some());
        assert!(run(&[("a", "foobar")], rule).is_none());
        assert!(run(&[("a", "barfoo")], rule).is_none());
        assert!(run(&[("a", "foo\n")], rule).is_none());
        // Alternation stays inside the anchors.
        let alternation = "- source_labels: [a]\n  regex: foo|bar\n  action: keep\n";
        assert!(run(&[("a", "bar")], alternation).is_some());
        assert!(run(&[("a", "foobar")], alternation).is_none());
    }

    #[test]
    fn regex_dot_matches_newline() {
        let out = run(
            &[("a", "line1\nline2")],
            "- source_labels: [a]\n  regex: 'line1.(.*)'\n  target_label: b\n",
        )
        .unwrap();
        assert_eq!(out, labels(&[("a", "line1\nline2"), ("b", "line2")]));
        assert!(RelabelRegex::new(".*").unwrap().is_match("x\ny\n"));
        // `$` is end of text, not end of line.
        assert!(!RelabelRegex::new("x$").unwrap().is_match("x\ny"));
    }

    #[test]
    fn regex_perl_classes_are_ascii_like_re2() {
        let digits = RelabelRegex::new(r"\d+").unwrap();
        assert!(digits.is_match("0123456789"));
        assert!(!digits.is_match("١٢٣")); // Arabic-Indic digits
        let word = RelabelRegex::new(r"\w+").unwrap();
        assert!(word.is_match("a_Z9"));
        assert!(!word.is_match("café"));
        let space = RelabelRegex::new(r"a\sb").unwrap();
        assert!(space.is_match("a b") && space.is_match("a\tb"));
        assert!(!space.is_match("a\u{a0}b") && !space.is_match("a\u{b}b"));
        let not_digit = RelabelRegex::new(r"\D").unwrap();
        assert!(not_digit.is_match("١") && !not_digit.is_match("1"));
        let class = RelabelRegex::new(r"[\d\s.]+").unwrap();
        assert!(class.is_match("1 .2") && !class.is_match("١"));
        let negated_in_class = RelabelRegex::new(r"[\Wx]+").unwrap();
        assert!(negated_in_class.is_match("x-é") && !negated_in_class.is_match("a"));
        let boundary = RelabelRegex::new(r".*\bfoo").unwrap();
        assert!(boundary.is_match("a foo") && boundary.is_match("éfoo"));
        assert!(!boundary.is_match("afoo"));
        // The pattern as written is what is kept and shown.
        assert_eq!(digits.as_str(), r"\d+");
    }

    #[test]
    fn regex_re2_only_syntax_is_literal() {
        let quoted = RelabelRegex::new(r"\Qa.b*\E+").unwrap();
        // As in RE2, a repetition after `\E` applies to the last quoted char.
        assert!(quoted.is_match("a.b*") && quoted.is_match("a.b***"));
        assert!(!quoted.is_match("axb*") && !quoted.is_match("a.b*a.b*"));
        assert!(RelabelRegex::new(r"[[]").unwrap().is_match("["));
        assert!(RelabelRegex::new(r"[]a]").unwrap().is_match("]"));
        let set_ops = RelabelRegex::new(r"[a&&b]+").unwrap();
        assert!(set_ops.is_match("a&b") && !set_ops.is_match("c"));
        assert!(RelabelRegex::new(r"[a~~b]").unwrap().is_match("~"));
        assert!(RelabelRegex::new(r"\<x\>").unwrap().is_match("<x>"));
        assert!(RelabelRegex::new(r"a\ \_\-\.").unwrap().is_match("a _-."));
        assert!(RelabelRegex::new(r"[\-\]]+").unwrap().is_match("-]"));
        // Unterminated `\Q` swallows the anchors' `)`, as in Prometheus.
        assert!(RelabelRegex::new(r"\Qfoo").is_err());
        assert!(RelabelRegex::new(r"[[:alpha:]]+").unwrap().is_match("abc"));
        assert!(RelabelRegex::new(r"[^[:digit:]]").unwrap().is_match("a"));
        assert!(RelabelRegex::new(r"\pL+").unwrap().is_match("café"));
        assert!(RelabelRegex::new(r"(?i)ABC").unwrap().is_match("abc"));
    }

    // ---- replace ------------------------------------------------------------

    #[test]
    fn replace_documented_address_rewrite() {
        let rule = r#"
- source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
  action: replace
  regex: ([^:]+)(?::\d+)?;(\d+)
  replacement: $1:$2
  target_label: __address__
"#;
        let out = run(
            &[
                ("__address__", "10.0.0.1:8080"),
                (
                    "__meta_kubernetes_pod_annotation_prometheus_io_port",
                    "9100",
                ),
            ],
            rule,
        )
        .unwrap();
        assert_eq!(
            out[0],
            ("__address__".to_owned(), "10.0.0.1:9100".to_owned())
        );
        // Without the annotation the regex does not match: nothing changes.
        let out = run(&[("__address__", "10.0.0.1:8080")], rule).unwrap();
        assert_eq!(out, labels(&[("__address__", "10.0.0.1:8080")]));
    }

    #[test]
    fn replace_defaults_copy_joined_source_value() {
        let out = run(
            &[("b", "2"), ("a", "1")],
            "- source_labels: [a, missing, b]\n  target_label: joined\n",
        )
        .unwrap();
        assert_eq!(out, labels(&[("a", "1"), ("b", "2"), ("joined", "1;;2")]));
        let out = run(
            &[("a", "1"), ("b", "2")],
            "- source_labels: [a, b]\n  separator: ''\n  target_label: joined\n",
        )
        .unwrap();
        assert_eq!(out[2], ("joined".to_owned(), "12".to_owned()));
    }

    #[test]
    fn replace_sets_static_value_without_source_labels() {
        let out = run(
            &[("job", "node")],
            "- target_label: env\n  replacement: prod\n",
        )
        .unwrap();
        assert_eq!(out, labels(&[("env", "prod"), ("job", "node")]));
    }

    #[test]
    fn replace_without_match_changes_nothing() {
        let out = run(
            &[("a", "xyz"), ("t", "old")],
            "- source_labels: [a]\n  regex: 'abc(.*)'\n  target_label: t\n",
        )
        .unwrap();
        assert_eq!(out, labels(&[("a", "xyz"), ("t", "old")]));
    }

    #[test]
    fn replace_expansion_forms() {
        let cases = [
            ("$1", "ab"),
            ("${1}", "ab"),
            ("$2", "12"),
            ("${first}-${second}", "ab-12"),
            ("$first-$second", "ab-12"),
            ("$$1", "$1"),
            ("$$$1", "$ab"),
            ("${1}x", "abx"),
            ("$1x", ""),      // name is as long as possible: ${1x}, unknown
            ("$10", ""),      // group 10 does not exist
            ("$01", ""),      // leading zero: a name, not group 1
            ("$9", ""),       // out of range
            ("$nope", ""),    // unknown name
            ("a$", "a$"),     // malformed: `$` kept
            ("a$-b", "a$-b"), // malformed: `$` kept
            ("${1", "${1"),   // unclosed brace: kept as text
            ("${}", "${}"),
            ("${1.2}", "${1.2}"),
            ("[$0]", "[ab;12]"),
            ("static", "static"),
        ];
        for (replacement, expected) in cases {
            let yaml = format!(
                "- source_labels: [a, b]\n  regex: '(?P<first>[a-z]+);(?P<second>[0-9]+)'\n  \
                 target_label: out\n  replacement: '{replacement}'\n"
            );
            let out = run(&[("a", "ab"), ("b", "12")], &yaml).unwrap();
            let got = out
                .iter()
                .find(|(n, _)| n == "out")
                .map_or("", |(_, v)| v.as_str());
            assert_eq!(got, expected, "replacement {replacement:?}");
        }
    }

    #[test]
    fn replace_unmatched_optional_group_expands_empty() {
        let out = run(
            &[("a", "x")],
            "- source_labels: [a]\n  regex: '(x)(y)?'\n  target_label: out\n  replacement: '$1<$2>'\n",
        )
        .unwrap();
        assert_eq!(out[1], ("out".to_owned(), "x<>".to_owned()));
    }

    #[test]
    fn replace_expands_target_label() {
        let out = run(
            &[("kv", "color=blue")],
            "- source_labels: [kv]\n  regex: '(\\w+)=(\\w+)'\n  target_label: 'tag_${1}'\n  \
             replacement: $2\n",
        )
        .unwrap();
        assert_eq!(out, labels(&[("kv", "color=blue"), ("tag_color", "blue")]));
    }

    #[test]
    fn replace_skips_invalid_expanded_target_label() {
        let rule =
            "- source_labels: [a]\n  regex: '(.*)'\n  target_label: '$1'\n  replacement: v\n";
        for value in ["1abc", "has-dash", "dots.too"] {
            let out = run(&[("a", value)], rule).unwrap();
            assert_eq!(out, labels(&[("a", value)]), "{value}");
        }
        // An empty expansion is not a label name either.
        let out = run(&[("x", "1")], rule).unwrap();
        assert_eq!(out, labels(&[("x", "1")]));
        let out = run(&[("a", "ok_name")], rule).unwrap();
        assert_eq!(out, labels(&[("a", "ok_name"), ("ok_name", "v")]));
    }

    #[test]
    fn replace_with_empty_result_deletes_target() {
        let out = run(
            &[("a", "x"), ("t", "old")],
            "- source_labels: [a]\n  target_label: t\n  replacement: ''\n",
        )
        .unwrap();
        assert_eq!(out, labels(&[("a", "x")]));
        // Copying a missing label onto an existing one removes it too.
        let out = run(
            &[("t", "old")],
            "- source_labels: [missing]\n  target_label: t\n",
        )
        .unwrap();
        assert!(out.is_empty());
        // With an expanded target, the expanded name is the one deleted.
        let out = run(
            &[("a", "t;"), ("t", "old")],
            "- source_labels: [a]\n  regex: '(\\w+);(.*)'\n  target_label: '$1'\n  \
             replacement: '$2'\n",
        )
        .unwrap();
        assert_eq!(out, labels(&[("a", "t;")]));
    }

    // ---- keep / drop --------------------------------------------------------

    #[test]
    fn keep_documented_scrape_annotation() {
        let rule = "- source_labels: [__meta_kubernetes_service_annotation_prometheus_io_scrape]\n  \
                    action: keep\n  regex: true\n";
        let annotated = [(
            "__meta_kubernetes_service_annotation_prometheus_io_scrape",
            "true",
        )];
        assert_eq!(run(&annotated, rule), Some(labels(&annotated)));
        assert!(
            run(
                &[(
                    "__meta_kubernetes_service_annotation_prometheus_io_scrape",
                    "false"
                )],
                rule
            )
            .is_none()
        );
        // A missing label has the value "", which `true` does not match.
        assert!(run(&[("other", "x")], rule).is_none());
    }

    #[test]
    fn drop_documented_metric_names() {
        let rule = "- source_labels: [__name__]\n  \
                    regex: '(container_tasks_state|container_memory_failures_total)'\n  \
                    action: drop\n";
        assert!(run(&[("__name__", "container_tasks_state")], rule).is_none());
        assert!(run(&[("__name__", "container_memory_failures_total")], rule).is_none());
        let kept = [("__name__", "container_tasks_state_total")];
        assert_eq!(run(&kept, rule), Some(labels(&kept)));
    }

    #[test]
    fn drop_on_missing_label_matches_empty_value() {
        let rule = "- source_labels: [team]\n  regex: ''\n  action: drop\n";
        assert!(run(&[("job", "x")], rule).is_none());
        assert!(run(&[("job", "x"), ("team", "")], rule).is_none());
        assert!(run(&[("job", "x"), ("team", "a")], rule).is_some());
    }

    #[test]
    fn keepequal_and_dropequal_compare_with_target_label() {
        let keep = "- source_labels: [__meta_kubernetes_pod_container_port_number]\n  \
                    target_label: __meta_kubernetes_pod_annotation_prometheus_io_port\n  \
                    action: keepequal\n";
        let drop = keep.replace("keepequal", "dropequal");
        let same = [
            ("__meta_kubernetes_pod_container_port_number", "9100"),
            (
                "__meta_kubernetes_pod_annotation_prometheus_io_port",
                "9100",
            ),
        ];
        let different = [
            ("__meta_kubernetes_pod_container_port_number", "9100"),
            (
                "__meta_kubernetes_pod_annotation_prometheus_io_port",
                "8080",
            ),
        ];
        assert!(run(&same, keep).is_some());
        assert!(run(&different, keep).is_none());
        assert!(run(&same, &drop).is_none());
        assert!(run(&different, &drop).is_some());
        // Both missing: "" == "".
        assert!(run(&[("x", "1")], keep).is_some());
        // Multiple sources are joined before comparing.
        let joined = "- source_labels: [a, b]\n  target_label: c\n  action: keepequal\n";
        assert!(run(&[("a", "1"), ("b", "2"), ("c", "1;2")], joined).is_some());
    }

    // ---- hashmod ------------------------------------------------------------

    #[test]
    fn hashmod_uses_last_eight_md5_bytes() {
        // Constants from `md5sum` + big-endian arithmetic outside this code.
        assert_eq!(md5_tail("foo"), 17_145_033_699_835_028_696);
        assert_eq!(md5_tail(""), 16_825_458_760_271_544_958);
        for (value, modulus) in [("foo", 1000), ("baz", 1000), ("10.0.0.1:9100", 8), ("", 3)] {
            let yaml = format!(
                "- source_labels: [a]\n  modulus: {modulus}\n  target_label: h\n  action: hashmod\n"
            );
            let out = run(&[("a", value)], &yaml).unwrap();
            let expected = reference_hashmod(value, modulus).to_string();
            assert_eq!(out.last().unwrap().1, expected, "{value:?}");
        }
        let baz = run(
            &[("c", "baz")],
            "- source_labels: [c]\n  modulus: 1000\n  target_label: h\n  action: hashmod\n",
        )
        .unwrap();
        assert_eq!(baz, labels(&[("c", "baz"), ("h", "976")]));
    }

    #[test]
    fn hashmod_sharding_pipeline_keeps_one_shard() {
        let yaml = |shard: u64| {
            format!(
                "- source_labels: [__address__]\n  modulus: 8\n  target_label: __tmp_hash\n  \
                 action: hashmod\n- source_labels: [__tmp_hash]\n  regex: '{shard}'\n  action: keep\n"
            )
        };
        let address = [("__address__", "10.0.0.1:9100")];
        let kept: Vec<u64> = (0..8)
            .filter(|&s| run(&address, &yaml(s)).is_some())
            .collect();
        assert_eq!(kept, vec![5]);
        assert_eq!(reference_hashmod("10.0.0.1:9100", 8), 5);
    }

    #[test]
    fn hashmod_with_zero_modulus_does_not_panic() {
        let rule = RelabelConfig {
            source_labels: vec!["a".to_owned()],
            target_label: "h".to_owned(),
            action: Action::HashMod,
            ..RelabelConfig::default()
        };
        assert!(rule.validate().is_err());
        let out = relabel(labels(&[("a", "x")]), &[rule]).unwrap();
        assert_eq!(out.to_pairs(), labels(&[("a", "x")]));
    }

    // ---- labelmap / labeldrop / labelkeep -----------------------------------

    #[test]
    fn labelmap_documented_node_labels() {
        let out = run(
            &[
                ("__meta_kubernetes_node_label_zone", "eu-1"),
                ("__meta_kubernetes_node_label_role", "worker"),
                ("__meta_kubernetes_node_name", "n1"),
                ("job", "node"),
            ],
            "- action: labelmap\n  regex: __meta_kubernetes_node_label_(.+)\n",
        )
        .unwrap();
        assert_eq!(
            out,
            labels(&[
                ("__meta_kubernetes_node_label_role", "worker"),
                ("__meta_kubernetes_node_label_zone", "eu-1"),
                ("__meta_kubernetes_node_name", "n1"),
                ("job", "node"),
                ("role", "worker"),
                ("zone", "eu-1"),
            ])
        );
    }

    #[test]
    fn labelmap_expands_replacement_against_name() {
        let out = run(
            &[("__meta_a_b", "1"), ("x_y_z", "2")],
            "- action: labelmap\n  regex: '__meta_(\\w+?)_(\\w+)'\n  replacement: '${2}_$1'\n",
        )
        .unwrap();
        assert_eq!(
            out,
            labels(&[("__meta_a_b", "1"), ("b_a", "1"), ("x_y_z", "2")])
        );
    }

    #[test]
    fn labelmap_collision_last_in_builder_order_wins() {
        let map = "- action: labelmap\n  regex: '[ab]_(x)'\n";
        // Untouched labels are visited in name order: b_x comes last.
        let out = run(&[("b_x", "2"), ("a_x", "1")], map).unwrap();
        assert_eq!(out[2], ("x".to_owned(), "2".to_owned()));
        // A label written by an earlier rule is visited after untouched ones.
        let rewrite_then_map = format!("- target_label: a_x\n  replacement: '3'\n{map}");
        let out = run(&[("b_x", "2"), ("a_x", "1")], &rewrite_then_map).unwrap();
        assert_eq!(out, labels(&[("a_x", "3"), ("b_x", "2"), ("x", "3")]));
    }

    #[test]
    fn labeldrop_and_labelkeep_match_whole_names() {
        let input = [
            ("__name__", "up"),
            ("kernelVersion", "6.1"),
            ("kernelVersionMajor", "6"),
            ("job", "node"),
        ];
        let dropped = run(&input, "- regex: kernelVersion\n  action: labeldrop\n").unwrap();
        assert_eq!(
            dropped,
            labels(&[
                ("__name__", "up"),
                ("job", "node"),
                ("kernelVersionMajor", "6")
            ])
        );
        let kept = run(&input, "- regex: '__name__|job'\n  action: labelkeep\n").unwrap();
        assert_eq!(kept, labels(&[("__name__", "up"), ("job", "node")]));
        let prefix = run(&input, "- regex: 'kernel.*'\n  action: labeldrop\n").unwrap();
        assert_eq!(prefix, labels(&[("__name__", "up"), ("job", "node")]));
    }

    // ---- lowercase / uppercase ----------------------------------------------

    #[test]
    fn lowercase_and_uppercase_write_target() {
        let out = run(
            &[("a", "MiXeD"), ("b", "Case")],
            "- source_labels: [a, b]\n  target_label: lower\n  action: lowercase\n\
             - source_labels: [a]\n  target_label: upper\n  action: uppercase\n",
        )
        .unwrap();
        assert_eq!(
            out,
            labels(&[
                ("a", "MiXeD"),
                ("b", "Case"),
                ("lower", "mixed;case"),
                ("upper", "MIXED"),
            ])
        );
    }

    #[test]
    fn lowercase_of_empty_source_deletes_target() {
        let out = run(
            &[("t", "old")],
            "- source_labels: [missing]\n  target_label: t\n  action: lowercase\n",
        )
        .unwrap();
        assert!(out.is_empty());
    }

    // ---- whole pipeline -----------------------------------------------------

    #[test]
    fn output_is_sorted_without_empty_values_and_last_duplicate_wins() {
        let out = relabel(
            labels(&[("z", "1"), ("e", ""), ("a", "old"), ("a", "new")]),
            &[],
        )
        .unwrap();
        assert_eq!(out.to_pairs(), labels(&[("a", "new"), ("z", "1")]));
    }

    #[test]
    fn empty_input_values_are_absent_for_labelmap() {
        // Prometheus's builder treats them as deleted, so they map nowhere.
        let out = run(
            &[("__meta_x", ""), ("x", "keep")],
            "- action: labelmap\n  regex: '__meta_(.*)'\n",
        )
        .unwrap();
        assert_eq!(out, labels(&[("x", "keep")]));
    }

    #[test]
    fn rules_apply_in_order_through_temporary_labels() {
        let out = run(
            &[("__address__", "host:9100"), ("__meta_env", "Prod")],
            "- source_labels: [__meta_env]\n  target_label: __tmp_env\n  action: lowercase\n\
             - source_labels: [__tmp_env, __address__]\n  regex: '(\\w+);([^:]+):\\d+'\n  \
               target_label: instance\n  replacement: '$2.$1'\n\
             - regex: '__tmp_.*'\n  action: labeldrop\n",
        )
        .unwrap();
        assert_eq!(
            out,
            labels(&[
                ("__address__", "host:9100"),
                ("__meta_env", "Prod"),
                ("instance", "host.prod"),
            ])
        );
    }

    #[test]
    fn drop_stops_processing() {
        let rules = rules(
            "- source_labels: [a]\n  regex: x\n  action: drop\n\
             - target_label: never\n  replacement: set\n",
        );
        assert_eq!(relabel(labels(&[("a", "x")]), &rules), None);
        let out = relabel(labels(&[("a", "y")]), &rules).unwrap();
        assert_eq!(out.to_pairs(), labels(&[("a", "y"), ("never", "set")]));
    }

    /// Every string of up to `max_len` chars from `alphabet`.
    fn all_strings(alphabet: &[char], max_len: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut previous = vec![String::new()];
        for _ in 0..max_len {
            let next: Vec<String> = previous
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            all.extend(next.iter().cloned());
            previous = next;
        }
        all
    }

    #[test]
    fn odd_patterns_and_templates_never_panic() {
        let pattern_chars = [
            '\\', '[', ']', '^', '-', '$', '(', ')', 'Q', 'E', ':', 'd', '&',
        ];
        for pattern in all_strings(&pattern_chars, 3) {
            if let Ok(regex) = RelabelRegex::new(&pattern) {
                regex.is_match(&pattern);
            }
        }
        let template_chars = ['$', '{', '}', '0', '1', 'a', '_', 'é', '-'];
        let any = RelabelRegex::new("(?P<a>.)(.*)").unwrap();
        let captures = any.captures("xyz").unwrap();
        for template in all_strings(&template_chars, 4) {
            let expanded = expand_template(&template, &captures);
            if !template.contains('$') {
                assert_eq!(expanded, template);
            }
            is_valid_label_template(&template);
            let rule = RelabelConfig {
                source_labels: vec!["a".to_owned()],
                target_label: template.clone(),
                replacement: template.clone(),
                ..RelabelConfig::default()
            };
            let labelmap = RelabelConfig {
                action: Action::LabelMap,
                ..rule.clone()
            };
            relabel(labels(&[("a", "v")]), &[rule, labelmap]);
        }
    }

    #[test]
    fn label_template_validation_helper() {
        assert!(is_valid_label_template("$1"));
        assert!(is_valid_label_template("a${b}c$d"));
        assert!(!is_valid_label_template(""));
        assert!(!is_valid_label_template("9a"));
        assert!(!is_valid_label_template("a$"));
        assert!(!is_valid_label_template("a${b"));
        assert!(!is_valid_label_template("é"));
    }
}
