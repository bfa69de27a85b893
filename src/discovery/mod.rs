//! Static and file-based service discovery, following Prometheus's
//! `static_configs` and `file_sd_configs`.
//!
//! * [`TargetGroup`] is the unit of discovery: targets sharing a label set.
//! * [`read_target_file`] parses one file_sd target file (JSON or YAML).
//! * [`FileSdConfig`] is the `file_sd_configs` entry; [`FileSdConfig::validate`]
//!   enforces Prometheus's rules for the `files` globs.
//! * [`FileDiscoverer`] keeps the groups of one `FileSdConfig` up to date,
//!   reacting to filesystem events and re-reading on `refresh_interval`.
//!

mod config;
mod discoverer;
mod error;
mod target_file;

pub use config::{FileSdConfig, check_files, read_all};
pub use discoverer::{FileDiscoverer, wait_any_changed};
pub use error::DiscoveryError;
pub use target_file::{FILEPATH_LABEL, TargetGroup, read_target_file, static_target_groups};
