use std::io;
use std::path::{Path, PathBuf};

/// Errors from reading target files and validating discovery configs.
///
/// Every message names the file (or config section) it is about, because the
/// usual consumer is a log line read by someone who has many target files.
/// Messages embed the underlying error text rather than chaining it through
/// `source()`, so a single `%err` in a log line says everything.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("cannot read target file {}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },

    #[error(
        "target file {}: unsupported file extension, expected .json, .yml or .yaml",
        path.display()
    )]
    UnknownExtension { path: PathBuf },

    #[error("target file {}: invalid JSON: {error}", path.display())]
    Json {
        path: PathBuf,
        error: serde_json::Error,
    },

    // serde_norway's message already ends in "at line L column C".
    #[error("target file {}: invalid YAML: {error}", path.display())]
    Yaml {
        path: PathBuf,
        /// 1-based line of the error, when the YAML parser knows it.
        line: Option<usize>,
        error: serde_norway::Error,
    },

    /// `origin` is "target file <path>" or "static_configs".
    #[error("{origin}, group {group}: invalid target {target:?}: {reason}")]
    InvalidTarget {
        origin: String,
        group: usize,
        target: String,
        reason: &'static str,
    },

    #[error("{origin}, group {group}: invalid label name {name:?}")]
    InvalidLabelName {
        origin: String,
        group: usize,
        name: String,
    },

    #[error("invalid file_sd_config: {0}")]
    InvalidConfig(String),
}

impl DiscoveryError {
    /// True when the file vanished between listing and reading it, which the
    /// discoverer treats as a deletion rather than a failure worth logging.
    pub(super) fn is_not_found(&self) -> bool {
        matches!(self, DiscoveryError::Io { error, .. } if error.kind() == io::ErrorKind::NotFound)
    }

    pub(super) fn io(path: &Path, error: io::Error) -> Self {
        DiscoveryError::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}
