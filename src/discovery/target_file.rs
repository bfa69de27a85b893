//! Target groups and the file_sd target file format.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::DiscoveryError;
use crate::model::is_valid_utf8_label_name;

/// Label added to every group read from a file, naming that file.
pub const FILEPATH_LABEL: &str = "__meta_filepath";

/// A group of targets sharing labels, as in `static_configs` and file_sd files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Prometheus reads target files strictly, so a typo such as `lables:` is an
// error instead of silently dropping the labels.
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    /// `host` or `host:port` strings; `[v6addr]:port` for IPv6.
    // Prometheus accepts a group without `targets`; so do we.
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Where the group came from: `"<path>:<index>"` for files, `"<index>"` for
    /// static configs. Never read from or written to the file.
    #[serde(skip)]
    pub source: String,
}

enum Format {
    Json,
    Yaml,
}

fn format_of(path: &Path) -> Option<Format> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "json" => Some(Format::Json),
        "yml" | "yaml" => Some(Format::Yaml),
        _ => None,
    }
}

/// Reads one target file: YAML if the extension is `.yml`/`.yaml`, JSON if it
/// is `.json` (case-insensitive); anything else is an error naming the file.
///
/// The file holds a list of groups. Each returned group has `source` set to
/// `"<path>:<index>"` and the label `__meta_filepath` set to the path, as
/// Prometheus does. An empty YAML file (or `null`) yields no groups.
pub fn read_target_file(path: &Path) -> Result<Vec<TargetGroup>, DiscoveryError> {
    let format = format_of(path).ok_or_else(|| DiscoveryError::UnknownExtension {
        path: path.to_path_buf(),
    })?;
    let content = std::fs::read_to_string(path).map_err(|e| DiscoveryError::io(path, e))?;
    let mut groups = match format {
        Format::Json => parse_json(path, &content)?,
        Format::Yaml => parse_yaml(path, &content)?,
    };

    let origin = format!("target file {}", path.display());
    let path_text = path.display().to_string();
    for (index, group) in groups.iter_mut().enumerate() {
        validate_group(&origin, index, group)?;
        group.source = format!("{path_text}:{index}");
        group
            .labels
            .insert(FILEPATH_LABEL.to_string(), path_text.clone());
    }
    Ok(groups)
}

// Both parsers go through Option so that `null` (and an empty YAML document)
// mean "no groups", as they do for Prometheus.
fn parse_json(path: &Path, content: &str) -> Result<Vec<TargetGroup>, DiscoveryError> {
    serde_json::from_str::<Option<Vec<TargetGroup>>>(content)
        .map(Option::unwrap_or_default)
        .map_err(|error| DiscoveryError::Json {
            path: path.to_path_buf(),
            error,
        })
}

fn parse_yaml(path: &Path, content: &str) -> Result<Vec<TargetGroup>, DiscoveryError> {
    serde_norway::from_str::<Option<Vec<TargetGroup>>>(content)
        .map(Option::unwrap_or_default)
        .map_err(|error| DiscoveryError::Yaml {
            path: path.to_path_buf(),
            line: error.location().map(|location| location.line()),
            error,
        })
}

/// Validates groups from a scrape config's `static_configs` and sets each
/// group's `source` to its index, as Prometheus does.
pub fn static_target_groups(
    mut groups: Vec<TargetGroup>,
) -> Result<Vec<TargetGroup>, DiscoveryError> {
    for (index, group) in groups.iter_mut().enumerate() {
        validate_group("static_configs", index, group)?;
        group.source = index.to_string();
    }
    Ok(groups)
}

fn validate_group(origin: &str, index: usize, group: &TargetGroup) -> Result<(), DiscoveryError> {
    for target in &group.targets {
        check_target(target).map_err(|reason| DiscoveryError::InvalidTarget {
            origin: origin.to_string(),
            group: index,
            target: target.clone(),
            reason,
        })?;
    }
    if let Some(name) = group
        .labels
        .keys()
        .find(|name| !is_valid_utf8_label_name(name))
    {
        return Err(DiscoveryError::InvalidLabelName {
            origin: origin.to_string(),
            group: index,
            name: name.clone(),
        });
    }
    Ok(())
}

/// Accepts `host`, `host:port` and `[ipv6]:port`. Scheme and path belong in
/// the scrape config (`scheme`, `metrics_path`), and putting them in a target
/// is a common mistake worth a precise message.
fn check_target(target: &str) -> Result<(), &'static str> {
    if target.is_empty() {
        return Err("target is empty");
    }
    if target.contains("://") {
        return Err("a target must not include a scheme; set `scheme` in the scrape config");
    }
    if target.contains('/') {
        return Err("a target must not include a path; set `metrics_path` in the scrape config");
    }
    if target.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a target must not contain whitespace or control characters");
    }
    if target.contains(['?', '#', '@']) {
        return Err("a target must be host or host:port, without query, fragment or user info");
    }
    let (host, port) = split_host_port(target)?;
    if host.is_empty() {
        return Err("host is empty");
    }
    if let Some(port) = port {
        let digits_only = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
        if !digits_only || port.parse::<u16>().is_err() {
            return Err("port must be a number from 0 to 65535");
        }
    }
    Ok(())
}

fn split_host_port(target: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(bracketed) = target.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("missing ']' after IPv6 address")?;
        if after.is_empty() {
            return Ok((host, None));
        }
        let port = after
            .strip_prefix(':')
            .ok_or("expected ':port' after ']'")?;
        return Ok((host, Some(port)));
    }
    match target.split_once(':') {
        None => Ok((target, None)),
        Some((_, port)) if port.contains(':') => {
            Err("IPv6 addresses must be in brackets, e.g. [::1]:9090")
        }
        Some((host, port)) => Ok((host, Some(port))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use tempfile::TempDir;

    fn write(dir: &TempDir, name: &str, content: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        fs::write(&path, content).expect("write test file");
        path
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // The example from the Prometheus file_sd documentation.
    const DOCS_JSON: &str = r#"[
  {
    "targets": ["10.11.150.1:7870", "10.11.150.4:7870"],
    "labels": {
      "job": "mysql"
    }
  },
  {
    "targets": ["10.11.122.11:6001", "10.11.122.15:6002"],
    "labels": {
      "job": "postgres"
    }
  }
]"#;

    const DOCS_YAML: &str = "\
- targets:
  - '10.11.150.1:7870'
  - '10.11.150.4:7870'
  labels:
    job: mysql
- targets: ['10.11.122.11:6001', '10.11.122.15:6002']
  labels:
    job: postgres
";

    fn assert_docs_example(path: &Path, groups: &[TargetGroup]) {
        let file = path.display().to_string();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].targets, ["10.11.150.1:7870", "10.11.150.4:7870"]);
        assert_eq!(
            groups[0].labels,
            labels(&[("job", "mysql"), ("__meta_filepath", &file)])
        );
        assert_eq!(groups[0].source, format!("{file}:0"));
        assert_eq!(
            groups[1].targets,
            ["10.11.122.11:6001", "10.11.122.15:6002"]
        );
        assert_eq!(
            groups[1].labels,
            labels(&[("job", "postgres"), ("__meta_filepath", &file)])
        );
        assert_eq!(groups[1].source, format!("{file}:1"));
    }

    #[test]
    fn reads_json_docs_example() {
        let dir = TempDir::new().expect("tempdir");
        let path = write(&dir, "targets.json", DOCS_JSON);
        let groups = read_target_file(&path).expect("valid JSON file");
        assert_docs_example(&path, &groups);
    }

    #[test]
    fn reads_yaml_docs_example_with_either_extension() {
        let dir = TempDir::new().expect("tempdir");
        for name in ["targets.yml", "targets.yaml", "TARGETS.YML"] {
            let path = write(&dir, name, DOCS_YAML);
            let groups = read_target_file(&path).expect("valid YAML file");
            assert_docs_example(&path, &groups);
        }
    }

    #[test]
    fn file_path_label_overrides_one_from_the_file() {
        let dir = TempDir::new().expect("tempdir");
        let path = write(
            &dir,
            "t.yml",
            "- targets: [a:1]\n  labels: {__meta_filepath: fake}\n",
        );
        let groups = read_target_file(&path).expect("valid file");
        assert_eq!(groups[0].labels[FILEPATH_LABEL], path.display().to_string());
    }

    #[test]
    fn empty_or_null_files_have_no_groups() {
        let dir = TempDir::new().expect("tempdir");
        for (name, content) in [
            ("empty.yml", ""),
            ("comment.yml", "# nothing yet\n"),
            ("null.yml", "null\n"),
            ("null.json", "null"),
            ("list.json", "[]"),
            ("list.yaml", "[]"),
        ] {
            let path = write(&dir, name, content);
            assert_eq!(read_target_file(&path).expect(name), [], "{name}");
        }
    }

    #[test]
    fn group_without_targets_or_labels_is_accepted() {
        let dir = TempDir::new().expect("tempdir");
        let path = write(
            &dir,
            "t.json",
            r#"[{"labels": {"a": "b"}}, {"targets": ["x"]}]"#,
        );
        let groups = read_target_file(&path).expect("valid file");
        assert!(groups[0].targets.is_empty());
        assert_eq!(groups[1].labels.len(), 1, "only __meta_filepath");
    }

    #[test]
    fn rejects_unknown_extension_naming_the_file() {
        let dir = TempDir::new().expect("tempdir");
        for name in ["targets.txt", "targets", "targets.json.bak"] {
            let path = write(&dir, name, DOCS_JSON);
            let err = read_target_file(&path).expect_err(name);
            assert!(matches!(err, DiscoveryError::UnknownExtension { .. }));
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_file() {
        let dir = TempDir::new().expect("tempdir");
        let err = read_target_file(&dir.path().join("gone.json")).expect_err("missing");
        assert!(err.is_not_found());
        assert!(err.to_string().contains("gone.json"), "{err}");
    }

    #[test]
    fn rejects_bad_targets_naming_file_and_entry() {
        let dir = TempDir::new().expect("tempdir");
        for bad in [
            "http://host:9090",
            "host:9090/metrics",
            "/metrics",
            "",
            "host:",
            "host:http",
            "host:70000",
            "host:+80",
            ":9090",
            "a b:80",
            "::1",
            "[::1",
            "[::1]9090",
            "user@host:80",
            "host:80?x=1",
        ] {
            let path = write(
                &dir,
                "bad.json",
                &format!(r#"[{{"targets": ["ok:1", "{bad}"]}}]"#),
            );
            let err = read_target_file(&path).expect_err(bad);
            let message = err.to_string();
            assert!(
                matches!(err, DiscoveryError::InvalidTarget { group: 0, .. }),
                "{bad}: {message}"
            );
            assert!(message.contains("bad.json"), "{message}");
            assert!(message.contains(&format!("{bad:?}")), "{message}");
        }
    }

    #[test]
    fn accepts_host_port_like_targets() {
        for good in [
            "localhost",
            "localhost:9090",
            "10.0.0.1:80",
            "[::1]:9090",
            "[fe80::1]",
            "my_host.example.com:65535",
        ] {
            assert_eq!(check_target(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn rejects_bad_label_names_naming_the_file() {
        let dir = TempDir::new().expect("tempdir");
        // Prometheus 3.x takes any UTF-8 name ("a.b", "é"); an empty one is none.
        let content = "- targets: [a:1]\n- targets: [b:1]\n  labels: {'': x}\n";
        let path = write(&dir, "labels.yml", content);
        let err = read_target_file(&path).expect_err("an empty label name");
        let message = err.to_string();
        assert!(
            matches!(err, DiscoveryError::InvalidLabelName { group: 1, .. }),
            "{message}"
        );
        assert!(message.contains("labels.yml"), "{message}");
        for good in ["a.b", "é", "1abc"] {
            let content = format!("- targets: [a:1]\n  labels: {{'{good}': x}}\n");
            let path = write(&dir, "labels.yml", &content);
            assert!(read_target_file(&path).is_ok(), "{good}");
        }
    }

    #[test]
    fn yaml_errors_name_file_and_line() {
        let dir = TempDir::new().expect("tempdir");
        for (content, expected_line) in [
            // Syntax error: unterminated flow sequence.
            ("- targets: ['a:1'\n- targets: []\n", 2),
            // Type error: a label value that is a list.
            ("- targets: [a:1]\n  labels:\n    job: [x]\n", 3),
        ] {
            let path = write(&dir, "broken.yml", content);
            let err = read_target_file(&path).expect_err(content);
            let message = err.to_string();
            assert!(
                matches!(err, DiscoveryError::Yaml { line: Some(line), .. } if line == expected_line),
                "{message}"
            );
            assert!(message.contains("broken.yml"), "{message}");
            assert!(
                message.contains(&format!("line {expected_line}")),
                "{message}"
            );
        }
    }

    #[test]
    fn yaml_scalar_label_values_become_strings() {
        let dir = TempDir::new().expect("tempdir");
        let path = write(
            &dir,
            "t.yml",
            "- targets: [a:1]\n  labels: {port: 80, on: true}\n",
        );
        let groups = read_target_file(&path).expect("valid file");
        assert_eq!(groups[0].labels["port"], "80");
        assert_eq!(groups[0].labels["on"], "true");
    }

    #[test]
    fn yaml_unknown_field_is_an_error_with_line() {
        let dir = TempDir::new().expect("tempdir");
        let path = write(&dir, "typo.yaml", "- targets: [a:1]\n  lables: {job: x}\n");
        let err = read_target_file(&path).expect_err("unknown field");
        assert!(
            matches!(err, DiscoveryError::Yaml { line: Some(2), .. }),
            "{err}"
        );
    }

    #[test]
    fn json_errors_name_the_file() {
        let dir = TempDir::new().expect("tempdir");
        for content in ["", "{", r#"[{"targets": "a:1"}]"#, r#"{"targets": []}"#] {
            let path = write(&dir, "bad.json", content);
            let err = read_target_file(&path).expect_err(content);
            assert!(matches!(err, DiscoveryError::Json { .. }), "{err}");
            assert!(err.to_string().contains("bad.json"), "{err}");
        }
    }

    #[test]
    fn static_groups_are_validated_and_numbered() {
        let group = |targets: &[&str]| TargetGroup {
            targets: targets.iter().map(|t| t.to_string()).collect(),
            labels: BTreeMap::new(),
            source: String::new(),
        };
        let groups = static_target_groups(vec![group(&["a:1"]), group(&["b:2"])])
            .expect("valid static groups");
        assert_eq!(groups[0].source, "0");
        assert_eq!(groups[1].source, "1");
        assert!(groups[1].labels.is_empty(), "no __meta_filepath for static");

        let err = static_target_groups(vec![group(&["a:1"]), group(&["http://b"])])
            .expect_err("scheme in target");
        assert!(err.to_string().contains("static_configs, group 1"), "{err}");
    }

    #[test]
    fn source_is_not_serialized() {
        let group = TargetGroup {
            targets: vec!["a:1".into()],
            labels: labels(&[("job", "x")]),
            source: "f:0".into(),
        };
        let json = serde_json::to_string(&group).expect("serialize");
        assert_eq!(json, r#"{"targets":["a:1"],"labels":{"job":"x"}}"#);
    }
}
