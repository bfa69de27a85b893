//! Label matchers, as Prometheus's `labels.Matcher`: what storage's querier takes to find
//! series. The query languages build them (PromQL from its selectors); storage only runs them.

use regex::Regex;

use super::{Labels, METRIC_NAME_LABEL};

/// How a matcher compares a label's value. A missing label has the value "".
#[derive(Debug, Clone)]
pub enum MatchKind {
    Equal,
    NotEqual,
    /// An anchored regular expression (`^(?:…)$`), already compiled.
    Regex(Regex),
    NotRegex(Regex),
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub kind: MatchKind,
    /// The text the matcher was written with (for equality, the value compared).
    pub value: String,
}

impl Matcher {
    pub fn equal(name: &str, value: &str) -> Matcher {
        Matcher {
            name: name.to_string(),
            kind: MatchKind::Equal,
            value: value.to_string(),
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        match &self.kind {
            MatchKind::Equal => self.value == value,
            MatchKind::NotEqual => self.value != value,
            MatchKind::Regex(r) => r.is_match(value),
            MatchKind::NotRegex(r) => !r.is_match(value),
        }
    }

    /// An equality matcher with a non-empty value: only series that have the label with
    /// that value match, so its postings list bounds the candidates.
    pub fn is_postings_lookup(&self) -> bool {
        matches!(self.kind, MatchKind::Equal) && !self.value.is_empty()
    }
}

/// What a selector picks: series that satisfy every matcher of at least one alternative
/// (PromQL's `or` inside braces gives several; an ordinary selector has one).
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub alternatives: Vec<Vec<Matcher>>,
}

impl Selector {
    pub fn new(matchers: Vec<Matcher>) -> Selector {
        Selector {
            alternatives: vec![matchers],
        }
    }

    /// Every series (no alternative means no constraint).
    pub fn all() -> Selector {
        Selector::default()
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        if self.alternatives.is_empty() {
            return true;
        }
        self.alternatives.iter().any(|alt| {
            alt.iter()
                .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
        })
    }

    /// The metric name every alternative requires, when they agree on one.
    pub fn metric_name(&self) -> Option<&str> {
        let mut names = self.alternatives.iter().map(|alt| {
            alt.iter()
                .find(|m| m.name == METRIC_NAME_LABEL && m.is_postings_lookup())
                .map(|m| m.value.as_str())
        });
        let first = names.next()??;
        names.all(|n| n == Some(first)).then_some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_trusted(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn missing_labels_match_as_empty_and_alternatives_or() {
        let up_a = labels(&[("__name__", "up"), ("job", "a")]);
        let re = |p: &str| Regex::new(&format!("^(?:{p})$")).unwrap();
        let sel = Selector::new(vec![
            Matcher::equal("__name__", "up"),
            Matcher {
                name: "env".into(),
                kind: MatchKind::Equal,
                value: String::new(),
            },
        ]);
        assert!(sel.matches(&up_a));
        assert_eq!(sel.metric_name(), Some("up"));
        let not_b = Selector::new(vec![Matcher {
            name: "job".into(),
            kind: MatchKind::NotRegex(re("b.*")),
            value: "b.*".into(),
        }]);
        assert!(not_b.matches(&up_a));
        assert_eq!(not_b.metric_name(), None);
        let either = Selector {
            alternatives: vec![
                vec![Matcher::equal("job", "x")],
                vec![Matcher {
                    name: "job".into(),
                    kind: MatchKind::Regex(re("a|c")),
                    value: "a|c".into(),
                }],
            ],
        };
        assert!(either.matches(&up_a));
        assert!(Selector::all().matches(&up_a));
    }
}
