//! The `file_sd_configs` entry and the rules for its `files` patterns.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::DiscoveryError;
use super::target_file::TargetGroup;

const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Characters that make a path component a glob for the `glob` crate.
const GLOB_CHARS: [char; 3] = ['*', '?', '['];

/// One `file_sd_configs` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Paths of target files; the last component may be a glob such as
    /// `*.json`. Relative paths are relative to the config file's directory.
    pub files: Vec<String>,
    /// How often all files are re-read even without filesystem events.
    #[serde(default = "default_refresh_interval", with = "prom_duration")]
    pub refresh_interval: Duration,
}

fn default_refresh_interval() -> Duration {
    DEFAULT_REFRESH_INTERVAL
}

/// Reads and writes the interval as a Prometheus duration string (`5m`, `1h30m`).
mod prom_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    use crate::model::{format_duration, parse_duration};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

impl FileSdConfig {
    /// A config with the default refresh interval (5m).
    pub fn new(files: Vec<String>) -> Self {
        FileSdConfig {
            files,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
        }
    }

    /// Checks the rules Prometheus applies at config load: at least one path,
    /// each ending in `.json`, `.yml` or `.yaml`, with a glob allowed only in
    /// the last path component; and a non-zero refresh interval.
    pub fn validate(&self) -> Result<(), DiscoveryError> {
        if self.files.is_empty() {
            return Err(DiscoveryError::InvalidConfig(
                "`files` must contain at least one path".to_string(),
            ));
        }
        for pattern in &self.files {
            split_pattern(pattern).map_err(|why| {
                DiscoveryError::InvalidConfig(format!("path {pattern:?} is not valid: {why}"))
            })?;
        }
        if self.refresh_interval.is_zero() {
            return Err(DiscoveryError::InvalidConfig(
                "`refresh_interval` must be greater than zero".to_string(),
            ));
        }
        Ok(())
    }
}

/// A `files` entry resolved against the base directory.
#[derive(Debug, Clone)]
pub(super) struct FilePattern {
    /// Directory holding the matching files; this is what gets watched.
    pub dir: PathBuf,
    /// Full pattern for `glob::glob`, with `dir` escaped so that a base
    /// directory containing `[` or `*` is taken literally.
    pub glob: String,
}

/// Reads every file the config's patterns match right now, failing on the first bad one;
/// for `quiver check config`. Returns how many files were read.
pub fn check_files(config: &FileSdConfig, base_dir: &Path) -> Result<usize, DiscoveryError> {
    let mut count = 0;
    read_each(config, base_dir, |_| count += 1)?;
    Ok(count)
}

/// The target groups of every file the patterns match right now, for one-off readers (the
/// notifier's Alertmanager list) that do not watch files.
pub fn read_all(
    config: &FileSdConfig,
    base_dir: &Path,
) -> Result<Vec<TargetGroup>, DiscoveryError> {
    let mut all = Vec::new();
    read_each(config, base_dir, |groups| all.extend(groups))?;
    Ok(all)
}

fn read_each(
    config: &FileSdConfig,
    base_dir: &Path,
    mut each: impl FnMut(Vec<TargetGroup>),
) -> Result<(), DiscoveryError> {
    for pattern in &config.files {
        let resolved = FilePattern::resolve(pattern, base_dir).map_err(|why| {
            DiscoveryError::InvalidConfig(format!("path {pattern:?} is not valid: {why}"))
        })?;
        let paths = glob::glob(&resolved.glob).map_err(|e| {
            DiscoveryError::InvalidConfig(format!("path {pattern:?} is not valid: {e}"))
        })?;
        for path in paths.flatten() {
            each(super::read_target_file(&path)?);
        }
    }
    Ok(())
}

impl FilePattern {
    pub fn resolve(pattern: &str, base_dir: &Path) -> Result<FilePattern, String> {
        let (dir, name) = split_pattern(pattern)?;
        // `join` keeps absolute patterns as they are.
        let dir = base_dir.join(dir);
        let dir_text = dir
            .to_str()
            .ok_or_else(|| format!("directory {} is not valid UTF-8", dir.display()))?;
        let glob = Path::new(&glob::Pattern::escape(dir_text))
            .join(name)
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| format!("pattern under {} is not valid UTF-8", dir.display()))?;
        Ok(FilePattern { dir, glob })
    }
}

/// Splits a `files` entry into its directory and file-name pattern, enforcing
/// the extension and glob-placement rules.
fn split_pattern(pattern: &str) -> Result<(&Path, &str), String> {
    let path = Path::new(pattern);
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .filter(|_| !pattern.ends_with(std::path::is_separator))
        .ok_or("it does not end in a file name")?;
    let dir = path.parent().unwrap_or(Path::new(""));
    if dir.to_string_lossy().contains(GLOB_CHARS) {
        return Err("only the last path component may contain a glob".to_string());
    }
    let lower = name.to_ascii_lowercase();
    if ![".json", ".yml", ".yaml"]
        .iter()
        .any(|ext| lower.ends_with(ext))
    {
        return Err("the file name must end in .json, .yml or .yaml".to_string());
    }
    glob::Pattern::new(name).map_err(|e| format!("bad glob: {e}"))?;
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(files: &[&str]) -> FileSdConfig {
        FileSdConfig::new(files.iter().map(|f| f.to_string()).collect())
    }

    #[test]
    fn deserializes_with_default_interval() {
        let parsed: FileSdConfig =
            serde_norway::from_str("files: ['targets/*.json']\n").expect("valid config");
        assert_eq!(parsed, config(&["targets/*.json"]));
        assert_eq!(parsed.refresh_interval, Duration::from_secs(300));
    }

    #[test]
    fn deserializes_refresh_interval_and_round_trips() {
        let yaml = "files:\n- a.yml\n- /etc/sd/*.yaml\nrefresh_interval: 1h30m\n";
        let parsed: FileSdConfig = serde_norway::from_str(yaml).expect("valid config");
        assert_eq!(parsed.refresh_interval, Duration::from_secs(5400));
        assert_eq!(parsed.files, ["a.yml", "/etc/sd/*.yaml"]);
        let written = serde_norway::to_string(&parsed).expect("serialize");
        assert!(written.contains("refresh_interval: 1h30m"), "{written}");
        let reparsed: FileSdConfig = serde_norway::from_str(&written).expect("reparse");
        assert_eq!(reparsed, parsed);
    }

    #[test]
    fn rejects_unknown_fields_and_bad_durations() {
        let unknown = serde_norway::from_str::<FileSdConfig>("files: [a.json]\nrefresh: 5m\n");
        assert!(unknown.is_err());
        let bad = serde_norway::from_str::<FileSdConfig>("files: [a.json]\nrefresh_interval: 5\n")
            .expect_err("bad duration");
        assert!(bad.to_string().contains("duration"), "{bad}");
    }

    #[test]
    fn validate_accepts_prometheus_style_paths() {
        for files in [
            &["targets.json"][..],
            &["*.json", "sd/*.yml", "/abs/dir/nodes-*.yaml"],
            &["dir/a?.JSON", "dir/[ab].yml", "dir/*.YAML"],
        ] {
            assert!(config(files).validate().is_ok(), "{files:?}");
        }
    }

    #[test]
    fn validate_rejects_globs_outside_last_component() {
        for pattern in ["*/a.json", "dir/*/a.json", "a?/b.yml", "[ab]/c.yaml"] {
            let err = config(&[pattern]).validate().expect_err(pattern);
            let message = err.to_string();
            assert!(
                message.contains("only the last path component"),
                "{message}"
            );
            assert!(message.contains(pattern), "{message}");
        }
    }

    #[test]
    fn validate_rejects_other_extensions() {
        for pattern in ["targets.txt", "dir/*", "*.json.bak", "dir/", "*.js[o]n", ""] {
            let err = config(&["ok.json", pattern]).validate().expect_err(pattern);
            assert!(err.to_string().contains(&format!("{pattern:?}")), "{err}");
        }
    }

    #[test]
    fn validate_rejects_empty_files_and_zero_interval() {
        assert!(config(&[]).validate().is_err());
        let mut zero = config(&["a.json"]);
        zero.refresh_interval = Duration::ZERO;
        let err = zero.validate().expect_err("zero interval");
        assert!(err.to_string().contains("refresh_interval"), "{err}");
    }

    #[test]
    fn validate_rejects_malformed_glob() {
        let err = config(&["[.json"])
            .validate()
            .expect_err("unclosed bracket");
        assert!(err.to_string().contains("bad glob"), "{err}");
    }

    #[test]
    fn resolve_joins_relative_and_keeps_absolute_paths() {
        let base = Path::new("/etc/quiver");
        let relative = FilePattern::resolve("sd/*.json", base).expect("resolve");
        assert_eq!(relative.dir, Path::new("/etc/quiver/sd"));
        assert_eq!(relative.glob, "/etc/quiver/sd/*.json");
        let absolute = FilePattern::resolve("/srv/t.yml", base).expect("resolve");
        assert_eq!(absolute.dir, Path::new("/srv"));
        let bare = FilePattern::resolve("t.yml", base).expect("resolve");
        assert_eq!(bare.dir, base);
    }

    #[test]
    fn resolve_escapes_glob_characters_in_base_dir() {
        let pattern = FilePattern::resolve("*.json", Path::new("/tmp/[x]")).expect("resolve");
        assert_eq!(pattern.glob, "/tmp/[[]x[]]/*.json");
    }
}
