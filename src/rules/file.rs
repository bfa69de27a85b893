//! Rule files in Prometheus's format: parsing, validation with the file and line of each
//! problem, and expansion of the `rule_files` globs.
//!
//! The checks follow Prometheus's `rulefmt`, so the files `promtool check rules` accepts are
//! the ones Quiver accepts, plus Quiver's `sql:` extension.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::PromDuration;
// Names are checked by Prometheus 3.x's UTF-8 scheme, as `promtool check rules` 3.x does.
use crate::model::is_valid_utf8_label_name;

/// One rule group as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub name: String,
    /// The file the group came from, as given (shown by `/api/v1/rules`).
    pub file: String,
    /// `None`: the global `evaluation_interval`.
    pub interval: Option<Duration>,
    pub query_offset: Option<Duration>,
    /// Most series an evaluation of one rule may produce; 0 means no limit.
    pub limit: usize,
    /// Added to every rule's labels (the rule's own labels win).
    pub labels: BTreeMap<String, String>,
    pub rules: Vec<RuleSpec>,
}

/// One recording or alerting rule as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub kind: RuleKind,
    /// The metric name (recording) or alert name (alerting).
    pub name: String,
    pub query: RuleQuery,
    pub hold: Duration,
    pub keep_firing_for: Duration,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Recording,
    Alerting,
}

/// What a rule evaluates.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleQuery {
    PromQL(String),
    /// Quiver's extension: label columns plus a `value` column.
    Sql(String),
}

impl RuleQuery {
    pub fn text(&self) -> &str {
        match self {
            RuleQuery::PromQL(q) | RuleQuery::Sql(q) => q,
        }
    }
}

/// A rule file that failed to load, with every problem found.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct RuleFileError {
    pub file: String,
    pub problems: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    interval: Option<PromDuration>,
    #[serde(default)]
    query_offset: Option<PromDuration>,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    record: Option<String>,
    alert: Option<String>,
    /// A scalar of any YAML type: `expr: 1` is as valid as `expr: up == 0`.
    expr: Option<serde_norway::Value>,
    sql: Option<String>,
    #[serde(rename = "for")]
    hold: Option<PromDuration>,
    keep_firing_for: Option<PromDuration>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Reads and validates one rule file.
pub fn load_file(path: &Path) -> Result<Vec<GroupSpec>, RuleFileError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| RuleFileError {
        file: file.clone(),
        problems: vec![format!("{file}: {e}")],
    })?;
    parse_file(&text, &file)
}

/// Parses and validates rule-file text; `file` names it in errors and in the result.
pub fn parse_file(text: &str, file: &str) -> Result<Vec<GroupSpec>, RuleFileError> {
    let raw: RawFile = serde_norway::from_str(text).map_err(|e| RuleFileError {
        file: file.to_string(),
        problems: vec![format!("{file}: {e}")],
    })?;
    let lines = RuleLines::scan(text);
    let mut problems = Vec::new();
    let mut groups = Vec::new();
    let mut seen_groups = HashSet::new();
    let mut rule_index = 0usize;
    for group in raw.groups {
        if group.name.is_empty() {
            problems.push(format!("{file}: Groupname must not be empty"));
        } else if !seen_groups.insert(group.name.clone()) {
            problems.push(format!(
                "{file}: {:?}: groupname: \"{}\" is repeated in the same file",
                group.name, group.name
            ));
        }
        for (name, _) in group.labels.iter() {
            if !is_valid_utf8_label_name(name) {
                problems.push(format!(
                    "{file}: group {:?}: invalid label name: {name}",
                    group.name
                ));
            }
        }
        let mut rules = Vec::new();
        for (i, raw_rule) in group.rules.into_iter().enumerate() {
            let line = lines.line_of(rule_index);
            rule_index += 1;
            let at = match line {
                Some(l) => format!("{file}:{l}"),
                None => file.to_string(),
            };
            let label = raw_rule
                .record
                .clone()
                .or_else(|| raw_rule.alert.clone())
                .unwrap_or_default();
            match validate_rule(raw_rule) {
                Ok(rule) => rules.push(rule),
                Err(errs) => problems.extend(errs.into_iter().map(|e| {
                    format!(
                        "{at}: group {:?}, rule {}, {:?}: {e}",
                        group.name,
                        i + 1,
                        label
                    )
                })),
            }
        }
        groups.push(GroupSpec {
            name: group.name,
            file: file.to_string(),
            interval: group.interval.map(|d| d.0),
            query_offset: group.query_offset.map(|d| d.0),
            limit: group.limit,
            labels: group.labels,
            rules,
        });
    }
    if problems.is_empty() {
        Ok(groups)
    } else {
        Err(RuleFileError {
            file: file.to_string(),
            problems,
        })
    }
}

fn validate_rule(raw: RawRule) -> Result<RuleSpec, Vec<String>> {
    let mut errs = Vec::new();
    // As Prometheus's rulefmt: an empty name is no name.
    let named = |n: &Option<String>| n.clone().filter(|n| !n.is_empty());
    let (kind, name) = match (named(&raw.record), named(&raw.alert)) {
        (Some(_), Some(_)) => {
            errs.push("only one of 'record' and 'alert' must be set".to_string());
            (RuleKind::Recording, String::new())
        }
        (Some(r), None) => (RuleKind::Recording, r),
        (None, Some(a)) => (RuleKind::Alerting, a),
        (None, None) => {
            errs.push("one of 'record' or 'alert' must be set".to_string());
            (RuleKind::Recording, String::new())
        }
    };
    let query = match (expr_text(raw.expr.as_ref()), raw.sql) {
        (Some(_), Some(_)) => {
            errs.push("only one of 'expr' and 'sql' may be set".to_string());
            None
        }
        (Some(expr), None) => {
            if let Err(e) = crate::query::promql::PromqlEngine::parse(&expr) {
                errs.push(format!("could not parse expression: {e}"));
            }
            Some(RuleQuery::PromQL(expr))
        }
        (None, Some(sql)) => {
            if let Err(e) = check_sql(&sql) {
                errs.push(format!("could not parse SQL: {e}"));
            }
            Some(RuleQuery::Sql(sql))
        }
        (None, None) => {
            errs.push("field 'expr' must be set in rule".to_string());
            None
        }
    };
    if kind == RuleKind::Recording {
        if !raw.annotations.is_empty() {
            errs.push("invalid field 'annotations' in recording rule".to_string());
        }
        if raw.hold.is_some() {
            errs.push("invalid field 'for' in recording rule".to_string());
        }
        if raw.keep_firing_for.is_some() {
            errs.push("invalid field 'keep_firing_for' in recording rule".to_string());
        }
        if !name.is_empty() && !is_valid_utf8_label_name(&name) {
            errs.push(format!("invalid recording rule name: {name}"));
        }
    }
    for (label, value) in &raw.labels {
        if !is_valid_utf8_label_name(label) {
            errs.push(format!("invalid label name: {label}"));
        }
        if kind == RuleKind::Alerting
            && let Err(e) = super::template::check_syntax(value)
        {
            errs.push(format!("template: __alert_{name}: {}", e.message()));
        }
    }
    if kind == RuleKind::Recording && raw.labels.contains_key("__name__") {
        errs.push("invalid recording rule label name: __name__".to_string());
    }
    for (annotation, value) in &raw.annotations {
        if !is_valid_utf8_label_name(annotation) {
            errs.push(format!("invalid annotation name: {annotation}"));
        }
        if let Err(e) = super::template::check_syntax(value) {
            errs.push(format!("template: __alert_{name}: {}", e.message()));
        }
    }
    match (errs.is_empty(), query) {
        (true, Some(query)) => Ok(RuleSpec {
            kind,
            name,
            query,
            hold: raw.hold.map(|d| d.0).unwrap_or_default(),
            keep_firing_for: raw.keep_firing_for.map(|d| d.0).unwrap_or_default(),
            labels: raw.labels,
            annotations: raw.annotations,
        }),
        _ => Err(errs),
    }
}

/// `expr` as text, whatever YAML scalar it was written as.
fn expr_text(value: Option<&serde_norway::Value>) -> Option<String> {
    let text = match value? {
        serde_norway::Value::String(s) => s.clone(),
        serde_norway::Value::Number(n) => n.to_string(),
        serde_norway::Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!text.trim().is_empty()).then_some(text)
}

/// A `sql:` rule must be one read-only query.
fn check_sql(sql: &str) -> Result<(), String> {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let statements = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| e.to_string())?;
    match statements.as_slice() {
        [Statement::Query(_)] => Ok(()),
        [_] => Err("only a SELECT query is allowed".to_string()),
        _ => Err("exactly one statement is allowed".to_string()),
    }
}

/// Line numbers of the `record:`/`alert:` keys, in file order, so a problem in the n-th rule
/// can name its line (the YAML parser does not keep positions for valid documents).
struct RuleLines(Vec<usize>);

impl RuleLines {
    fn scan(text: &str) -> RuleLines {
        let lines = text
            .lines()
            .enumerate()
            .filter(|(_, line)| {
                let key = line.trim_start().trim_start_matches("- ").trim_start();
                key.starts_with("record:") || key.starts_with("alert:")
            })
            .map(|(i, _)| i + 1)
            .collect();
        RuleLines(lines)
    }

    fn line_of(&self, rule_index: usize) -> Option<usize> {
        self.0.get(rule_index).copied()
    }
}

/// Expands `rule_files` globs against the configuration's directory, in a stable order.
pub fn expand_rule_files(patterns: &[String], base_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for pattern in patterns {
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base_dir.join(pattern)
        };
        let text = full.to_string_lossy();
        let mut matched: Vec<PathBuf> = glob::glob(&text)
            .map_err(|e| anyhow::anyhow!("rule_files pattern {pattern:?}: {e}"))?
            .filter_map(Result::ok)
            .collect();
        matched.sort();
        for file in matched {
            if !files.contains(&file) {
                files.push(file);
            }
        }
    }
    Ok(files)
}

/// Loads every file the patterns match; all problems of all files are reported together.
pub fn load_rule_files(patterns: &[String], base_dir: &Path) -> anyhow::Result<Vec<GroupSpec>> {
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    for file in expand_rule_files(patterns, base_dir)? {
        match load_file(&file) {
            Ok(g) => groups.extend(g),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        Ok(groups)
    } else {
        anyhow::bail!("{}", problems.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
groups:
  - name: example
    interval: 30s
    labels:
      team: db
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: MySQLDown
        expr: mysql_up == 0
        for: 5m
        keep_firing_for: 1m
        labels:
          severity: critical
        annotations:
          summary: "MySQL {{ $labels.instance }} is down"
      - record: one
        expr: 1
      - record: from_sql
        sql: SELECT job, count(*) AS value FROM up GROUP BY job
"#;

    #[test]
    fn a_valid_file_loads() {
        let groups = parse_file(GOOD, "good.yml").unwrap();
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(g.interval, Some(Duration::from_secs(30)));
        assert_eq!(g.labels["team"], "db");
        assert_eq!(g.rules.len(), 4);
        assert_eq!(g.rules[1].kind, RuleKind::Alerting);
        assert_eq!(g.rules[1].hold, Duration::from_secs(300));
        assert_eq!(g.rules[2].query, RuleQuery::PromQL("1".into()));
        assert!(matches!(g.rules[3].query, RuleQuery::Sql(_)));
    }

    fn problems(text: &str) -> String {
        parse_file(text, "bad.yml").unwrap_err().to_string()
    }

    #[test]
    fn bad_expression_names_file_line_group_and_rule() {
        let text = "groups:\n  - name: g\n    rules:\n      - record: x\n        expr: sum(\n";
        let msg = problems(text);
        assert!(
            msg.starts_with("bad.yml:4: group \"g\", rule 1, \"x\""),
            "{msg}"
        );
        assert!(msg.contains("could not parse expression"), "{msg}");
    }

    #[test]
    fn recording_rule_restrictions() {
        let text = "groups:\n  - name: g\n    rules:\n      - record: x\n        expr: up\n        for: 1m\n        annotations: {a: b}\n";
        let msg = problems(text);
        assert!(
            msg.contains("invalid field 'for' in recording rule"),
            "{msg}"
        );
        assert!(msg.contains("invalid field 'annotations'"), "{msg}");
        // Any UTF-8 name is one, as for promtool 3.x.
        let text = "groups:\n- name: g\n  labels: {'g.l': x}\n  rules:\n  - record: 'a name'\n    expr: up\n    labels: {'http.method': GET}\n";
        assert!(parse_file(text, "utf8.yml").is_ok());
    }

    #[test]
    fn structural_errors() {
        assert!(
            problems("groups:\n- name: g\n  rules:\n  - expr: up\n")
                .contains("one of 'record' or 'alert'")
        );
        assert!(
            problems("groups:\n- name: g\n  rules:\n  - record: a\n    alert: b\n    expr: up\n")
                .contains("only one of")
        );
        assert!(
            problems("groups:\n- name: g\n  rules:\n  - record: a\n")
                .contains("'expr' must be set")
        );
        assert!(problems("groups:\n- name: g\n- name: g\n").contains("repeated"));
        assert!(problems("groups:\n- name: g\n  bogus: 1\n").contains("unknown field"));
        assert!(problems("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      s: '{{ $labels.x '\n").contains("template"));
        assert!(
            problems("groups:\n- name: g\n  rules:\n  - record: a\n    sql: DROP TABLE up\n")
                .contains("only a SELECT")
        );
    }

    #[test]
    fn globs_expand_in_order_without_duplicates() {
        let dir = std::env::temp_dir().join(format!("quiver-rule-glob-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for f in ["b.yml", "a.yml", "sub/c.yml"] {
            std::fs::write(dir.join(f), "groups: []\n").unwrap();
        }
        let files = expand_rule_files(
            &[
                "*.yml".to_string(),
                "a.yml".to_string(),
                "sub/*.yml".to_string(),
            ],
            &dir,
        )
        .unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.yml", "b.yml", "sub/c.yml"]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
