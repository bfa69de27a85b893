//! The `prometheus.yml` model, Quiver's own `storage`/`query` sections, defaults and loading.
//!
//! Field names and defaults follow Prometheus, so an existing `prometheus.yml` loads as it is.
//! Unknown fields are an error that names the field and its line.

mod duration;
pub mod http;
mod scrape;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub use duration::PromDuration;
pub use scrape::{
    AlertingConfig, AlertmanagerConfig, Authorization, BasicAuth, ByteSize, HistogramOptions,
    ScrapeConfig, ScrapeProtocol, TlsConfig,
};

/// The configuration used when no `--config.file` is given: local storage, and a scrape job
/// for Quiver's own `/metrics`, so a new user sees data at once.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("default.yml");

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub global: GlobalConfig,
    pub rule_files: Vec<String>,
    pub scrape_configs: Vec<ScrapeConfig>,
    pub alerting: AlertingConfig,
    /// Accepted so an existing prometheus.yml loads; Quiver does not forward samples (yet).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remote_write: Vec<serde_norway::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remote_read: Vec<serde_norway::Value>,
    pub storage: StorageConfig,
    pub query: QueryConfig,
    pub postgres: PostgresConfig,
    /// How OTLP metrics (`/api/v1/otlp/v1/metrics`) become Prometheus series.
    pub otlp: OtlpConfig,
    /// Directory of the configuration file; relative paths in it are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    pub scrape_interval: PromDuration,
    pub scrape_timeout: PromDuration,
    pub evaluation_interval: PromDuration,
    pub external_labels: crate::model::Labels,
    /// The scrape configs' default `scrape_protocols`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_protocols: Option<Vec<scrape::ScrapeProtocol>>,
    /// The scrape configs' default `scrape_native_histograms`.
    pub scrape_native_histograms: bool,
    /// The scrape configs' default `always_scrape_classic_histograms`.
    pub always_scrape_classic_histograms: bool,
    /// The scrape configs' default `convert_classic_histograms_to_nhcb`.
    pub convert_classic_histograms_to_nhcb: bool,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: PromDuration::from_secs(60),
            scrape_timeout: PromDuration::from_secs(10),
            evaluation_interval: PromDuration::from_secs(60),
            external_labels: Default::default(),
            scrape_protocols: None,
            scrape_native_histograms: false,
            always_scrape_classic_histograms: false,
            convert_classic_histograms_to_nhcb: false,
        }
    }
}

/// Where blocks live and how the write path behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `local` (blocks under the data directory) or `s3`.
    pub backend: Backend,
    pub s3: Option<S3Config>,
    /// Length of the time window one block covers.
    pub block_duration: PromDuration,
    /// How far behind a series' newest sample an older sample is still accepted.
    pub out_of_order_time_window: PromDuration,
    pub wal: WalConfig,
    /// Largest accepted remote-write body, compressed, in bytes.
    pub remote_write_max_body_bytes: usize,
    pub compaction: CompactionConfig,
    pub downsampling: DownsamplingConfig,
    pub cache: CacheConfig,
    pub exemplars: ExemplarsConfig,
    /// What a read-only node (`--storage.read-only`) serves; writers ignore it.
    pub query_tier: QueryTierConfig,
}

/// The in-memory exemplar store, as Prometheus's `storage.exemplars`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExemplarsConfig {
    /// Exemplars kept in all, the oldest overwritten first; 0 keeps none.
    pub max_exemplars: usize,
}

impl Default for ExemplarsConfig {
    fn default() -> Self {
        ExemplarsConfig {
            max_exemplars: 100_000,
        }
    }
}

/// The buckets a read-only query node serves as one view, and how it merges them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryTierConfig {
    /// Each writer's bucket (or prefix). Empty: this node's own `storage` backend.
    pub sources: Vec<SourceConfig>,
    /// Labels that tell HA replicas apart (Thanos's `--query.replica-label`): sources whose
    /// external labels differ only in these are one replica set, read as one copy.
    pub replica_labels: Vec<String>,
    /// How often each source's manifest is read again. Keep it, plus `query.timeout`,
    /// below the writers' `compaction.deletion_delay`.
    pub refresh_interval: PromDuration,
}

impl Default for QueryTierConfig {
    fn default() -> Self {
        QueryTierConfig {
            sources: Vec::new(),
            replica_labels: Vec::new(),
            refresh_interval: PromDuration::from_secs(30),
        }
    }
}

impl QueryTierConfig {
    fn validate(&self) -> anyhow::Result<()> {
        let mut names = std::collections::HashSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            let valid = !source.name.is_empty()
                && (source.name.chars()).all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                anyhow::bail!(
                    "storage.query_tier.sources[{i}]: name {:?} must be letters, digits, _ or -",
                    source.name
                );
            }
            if !names.insert(source.name.as_str()) {
                anyhow::bail!(
                    "storage.query_tier.sources: name {:?} is used twice",
                    source.name
                );
            }
            match source.backend {
                Backend::S3 if source.s3.is_none() => anyhow::bail!(
                    "storage.query_tier.sources[{i}] ({}): backend s3 needs an s3 section",
                    source.name
                ),
                Backend::Local if source.path.is_none() => anyhow::bail!(
                    "storage.query_tier.sources[{i}] ({}): backend local needs a path",
                    source.name
                ),
                _ => {}
            }
        }
        if self.refresh_interval.0 < Duration::from_millis(100) {
            anyhow::bail!("storage.query_tier.refresh_interval must be at least 100ms");
        }
        Ok(())
    }
}

/// One writer's blocks, as a read-only node reaches them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A short name (letters, digits, `_`, `-`), unique among the sources.
    pub name: String,
    pub backend: Backend,
    #[serde(default)]
    pub s3: Option<S3Config>,
    /// The writer's data directory, for a `local` source.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Labels added to every series of this source, over those the writer recorded in its
    /// manifest (its `global.external_labels`).
    #[serde(default)]
    pub external_labels: crate::model::Labels,
}

/// When compacted blocks get 5 m and 1 h resolution copies (Thanos's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownsamplingConfig {
    pub enabled: bool,
    /// A block spanning at least this long gets a 5 m copy.
    pub after_5m: PromDuration,
    /// A block spanning at least this long gets a 1 h copy.
    pub after_1h: PromDuration,
}

impl Default for DownsamplingConfig {
    fn default() -> Self {
        DownsamplingConfig {
            enabled: true,
            after_5m: PromDuration::from_secs(40 * 3600),
            after_1h: PromDuration::from_secs(10 * 86400),
        }
    }
}

/// Byte budgets of the caches for reading blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Decoded Parquet footers and page indexes.
    pub metadata_bytes: u64,
    /// Decoded series files (label sets per block).
    pub series_bytes: u64,
    /// Byte ranges read from block objects (column chunks, footers).
    pub chunk_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            metadata_bytes: 128 << 20,
            series_bytes: 256 << 20,
            chunk_bytes: 512 << 20,
        }
    }
}

/// How blocks are merged into larger ones once their time window is complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    pub enabled: bool,
    /// The lengths of the levels above the cut blocks, shortest first; each a multiple of
    /// the one before (and the first of `block_duration`). The last is the longest block.
    pub ranges: Vec<PromDuration>,
    /// How long objects of a block the manifest no longer names stay in the bucket, so a
    /// query planned against an older manifest (here or on a read-only node) still finds
    /// them. Longer than `query.timeout` plus a read-only node's manifest refresh.
    pub deletion_delay: PromDuration,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            enabled: true,
            // As Thanos: 2 h blocks become 8 h, then 2 d, then 14 d.
            ranges: vec![
                PromDuration::from_secs(8 * 3600),
                PromDuration::from_secs(2 * 86400),
                PromDuration::from_secs(14 * 86400),
            ],
            deletion_delay: PromDuration::from_secs(15 * 60),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: Backend::Local,
            s3: None,
            block_duration: PromDuration::from_secs(2 * 3600),
            out_of_order_time_window: PromDuration::from_secs(0),
            wal: WalConfig::default(),
            remote_write_max_body_bytes: 32 << 20,
            compaction: CompactionConfig::default(),
            downsampling: DownsamplingConfig::default(),
            cache: CacheConfig::default(),
            exemplars: ExemplarsConfig::default(),
            query_tier: QueryTierConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Local,
    S3,
}

/// An S3-compatible bucket. Credentials left out here come from the usual AWS environment
/// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Permit `http://` endpoints (a local S3-compatible server).
    #[serde(default)]
    pub allow_http: bool,
    /// How long one request keeps retrying (with backoff) before it fails; a cut or
    /// compaction that fails is itself retried later.
    #[serde(default = "default_s3_retry_timeout")]
    pub retry_timeout: PromDuration,
}

fn default_s3_retry_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(60))
}

/// When the WAL is flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// fsync before every acknowledgement of a remote write (concurrent writers share one
    /// fsync); scraped samples, which nobody waits for, are synced every `fsync_interval`.
    Always,
    /// fsync in the background every `fsync_interval`; a power loss may lose that much, a
    /// process crash loses nothing.
    Interval,
    /// Leave it to the operating system.
    Never,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    pub fsync: FsyncPolicy,
    pub fsync_interval: PromDuration,
    /// A segment file is closed and a new one started past this size.
    pub segment_size_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            fsync: FsyncPolicy::Always,
            fsync_interval: PromDuration::from_secs(1),
            segment_size_bytes: 128 << 20,
        }
    }
}

/// Limits that keep one query from taking the server down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    pub timeout: PromDuration,
    /// Largest number of rows a SQL query may return.
    pub max_result_rows: usize,
    /// Memory DataFusion may use for one query's operators, in bytes.
    pub memory_limit_bytes: usize,
    /// Most samples one PromQL selection may load (Prometheus's `--query.max-samples`).
    pub max_samples: usize,
    /// PromQL queries run at once; more wait (Prometheus's `--query.max-concurrency`).
    pub max_concurrency: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            timeout: PromDuration::from_secs(120),
            max_result_rows: 1_000_000,
            memory_limit_bytes: 1 << 30,
            max_samples: 50_000_000,
            max_concurrency: 20,
        }
    }
}

/// The PostgreSQL wire protocol frontend (`--postgres.listen-address` says where).
///
/// Prometheus's `otlp:` section: how OTLP metrics are named and labelled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// Resource attributes added as labels to every series of the resource.
    pub promote_resource_attributes: Vec<String>,
    /// Every resource attribute as a label, except `ignore_resource_attributes`.
    pub promote_all_resource_attributes: bool,
    pub ignore_resource_attributes: Vec<String>,
    pub translation_strategy: crate::otlp::TranslationStrategy,
    /// Keep `service.name`, `service.namespace` and `service.instance.id` on `target_info`.
    pub keep_identifying_resource_attributes: bool,
    /// Explicit-bucket histograms as native histograms with custom buckets (schema -53)
    /// instead of classic `_bucket` series.
    pub convert_histograms_to_nhcb: bool,
    /// `otel_scope_name`, `otel_scope_version`, `otel_scope_schema_url` and the scope's
    /// attributes as labels.
    pub promote_scope_metadata: bool,
}

impl OtlpConfig {
    fn validate(&self) -> anyhow::Result<()> {
        let mut seen = std::collections::HashSet::new();
        for attr in &self.promote_resource_attributes {
            if attr.trim().is_empty() {
                anyhow::bail!("otlp.promote_resource_attributes: empty attribute name");
            }
            if !seen.insert(attr.trim()) {
                anyhow::bail!("otlp.promote_resource_attributes: duplicate attribute {attr:?}");
            }
        }
        if self.promote_all_resource_attributes && !self.promote_resource_attributes.is_empty() {
            anyhow::bail!(
                "otlp: promote_all_resource_attributes and promote_resource_attributes are mutually exclusive"
            );
        }
        if !self.ignore_resource_attributes.is_empty() && !self.promote_all_resource_attributes {
            anyhow::bail!(
                "otlp: ignore_resource_attributes is only valid with promote_all_resource_attributes"
            );
        }
        Ok(())
    }
}

/// Without `users`, connections are trusted, which Quiver allows only on a loopback address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// `scram-sha-256` (default), `md5` or `password` (cleartext, use with TLS).
    pub auth_method: PgAuthMethod,
    pub users: Vec<PgUser>,
    pub tls: Option<PgTls>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PgAuthMethod {
    #[default]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "md5")]
    Md5,
    #[serde(rename = "password")]
    Password,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgUser {
    pub name: String,
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Refuse connections that do not negotiate TLS (PostgreSQL's `hostssl`).
    #[serde(default)]
    pub require: bool,
}

impl Config {
    /// The password of a configured PostgreSQL user (from `password` or `password_file`).
    pub fn postgres_password(&self, user: &PgUser) -> anyhow::Result<String> {
        match (&user.password, &user.password_file) {
            (Some(p), _) => Ok(p.clone()),
            (None, Some(file)) => http::read_secret(self, file),
            (None, None) => anyhow::bail!("postgres user {:?} has no password", user.name),
        }
    }

    /// Parses and validates YAML; `origin` names the source in error messages.
    pub fn from_yaml(text: &str, origin: &str) -> anyhow::Result<Config> {
        let config: Config = serde_norway::from_str(text)
            .map_err(|e| anyhow::anyhow!("{origin}: {e}"))
            .context("parsing configuration")?;
        config
            .validate()
            .with_context(|| format!("{origin}: invalid configuration"))?;
        Ok(config)
    }

    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading configuration file {}", path.display()))?;
        let mut config = Self::from_yaml(&text, &path.display().to_string())?;
        config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(config)
    }

    /// The embedded default configuration.
    pub fn embedded_default() -> Config {
        // The embedded text is part of the binary and covered by a test, so this cannot fail
        // for a user.
        Self::from_yaml(DEFAULT_CONFIG_YAML, "embedded default configuration")
            .expect("embedded default configuration is valid")
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.otlp.validate()?;
        let mut jobs = std::collections::HashSet::new();
        for sc in &self.scrape_configs {
            if sc.job_name.is_empty() {
                anyhow::bail!("scrape config has an empty job_name");
            }
            if !jobs.insert(sc.job_name.as_str()) {
                anyhow::bail!(
                    "found multiple scrape configs with job name {:?}",
                    sc.job_name
                );
            }
            if sc.scheme != "http" && sc.scheme != "https" {
                anyhow::bail!("job {:?}: unknown scheme {:?}", sc.job_name, sc.scheme);
            }
            if !sc.metrics_path.starts_with('/') {
                anyhow::bail!("job {:?}: metrics_path must start with /", sc.job_name);
            }
            for (i, rule) in sc.relabel_configs.iter().enumerate() {
                rule.validate().map_err(|e| {
                    anyhow::anyhow!("job {:?}: relabel_configs[{i}]: {e}", sc.job_name)
                })?;
            }
            for (i, rule) in sc.metric_relabel_configs.iter().enumerate() {
                rule.validate().map_err(|e| {
                    anyhow::anyhow!("job {:?}: metric_relabel_configs[{i}]: {e}", sc.job_name)
                })?;
            }
            crate::discovery::static_target_groups(sc.static_configs.clone())
                .map_err(|e| anyhow::anyhow!("job {:?}: {e}", sc.job_name))?;
            for (i, sd) in sc.file_sd_configs.iter().enumerate() {
                sd.validate().map_err(|e| {
                    anyhow::anyhow!("job {:?}: file_sd_configs[{i}]: {e}", sc.job_name)
                })?;
            }
            if sc.basic_auth.is_some() && sc.authorization.is_some() {
                anyhow::bail!(
                    "job {:?}: at most one of basic_auth and authorization may be configured",
                    sc.job_name
                );
            }
            let protocols = self.scrape_protocols_for(sc);
            if protocols.is_empty() {
                anyhow::bail!("job {:?}: scrape_protocols cannot be empty", sc.job_name);
            }
            for (i, p) in protocols.iter().enumerate() {
                if protocols[..i].contains(p) {
                    anyhow::bail!(
                        "job {:?}: duplicated protocol in scrape_protocols, got {:?}",
                        sc.job_name,
                        protocols
                    );
                }
            }
            if self.scrape_timeout_for(sc) > self.scrape_interval_for(sc) {
                anyhow::bail!(
                    "job {:?}: scrape_timeout greater than scrape_interval",
                    sc.job_name
                );
            }
        }
        for (i, rule) in self.alerting.alert_relabel_configs.iter().enumerate() {
            rule.validate()
                .map_err(|e| anyhow::anyhow!("alerting.alert_relabel_configs[{i}]: {e}"))?;
        }
        for (i, am) in self.alerting.alertmanagers.iter().enumerate() {
            if am.api_version != "v2" {
                anyhow::bail!("alerting.alertmanagers[{i}]: only api_version v2 is supported");
            }
        }
        if self.storage.backend == Backend::S3 && self.storage.s3.is_none() {
            anyhow::bail!("storage.backend is s3 but there is no storage.s3 section");
        }
        if self.storage.block_duration.0 < Duration::from_secs(1) {
            anyhow::bail!("storage.block_duration must be at least 1s");
        }
        let mut shorter = self.storage.block_duration;
        for (i, range) in self.storage.compaction.ranges.iter().enumerate() {
            if range.0 <= shorter.0 || range.0.as_millis() % shorter.0.as_millis() != 0 {
                anyhow::bail!(
                    "storage.compaction.ranges[{i}] ({range}) must be a multiple of {shorter}, longer than it"
                );
            }
            shorter = *range;
        }
        self.storage.query_tier.validate()
    }

    /// Sections the configuration has that Quiver reads but does not act on, each with what
    /// it means for the user: a Prometheus configuration loads unchanged, but nothing it
    /// asks for may be silently left undone.
    pub fn ignored_sections(&self) -> Vec<String> {
        let mut ignored = Vec::new();
        let urls = |entries: &[serde_norway::Value]| {
            entries
                .iter()
                .map(|e| {
                    e.get("url")
                        .and_then(|u| u.as_str())
                        .unwrap_or("?")
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.remote_write.is_empty() {
            ignored.push(format!(
                "remote_write: {} endpoint(s) configured ({}), but Quiver does not forward \
                 samples: nothing is sent to them",
                self.remote_write.len(),
                urls(&self.remote_write)
            ));
        }
        if !self.remote_read.is_empty() {
            ignored.push(format!(
                "remote_read: {} endpoint(s) configured ({}), but Quiver does not read from \
                 them: queries answer from local data only",
                self.remote_read.len(),
                urls(&self.remote_read)
            ));
        }
        ignored
    }

    /// Checks the files the configuration refers to (file_sd target files), as
    /// `quiver check config` does; returns a line per file group checked.
    pub fn check_referenced_files(&self) -> anyhow::Result<Vec<String>> {
        let mut report = Vec::new();
        for sc in &self.scrape_configs {
            for sd in &sc.file_sd_configs {
                let n = crate::discovery::check_files(sd, &self.base_dir)
                    .map_err(|e| anyhow::anyhow!("job {:?}: {e}", sc.job_name))?;
                report.push(format!(
                    "job {:?}: {n} file_sd target file(s) valid",
                    sc.job_name
                ));
            }
        }
        Ok(report)
    }

    /// A path from the configuration, resolved against the configuration file's directory.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    pub fn scrape_interval_for(&self, sc: &ScrapeConfig) -> Duration {
        sc.scrape_interval.unwrap_or(self.global.scrape_interval).0
    }

    /// The formats a job asks for: its own list, the global one, or Prometheus's default
    /// (protobuf first when the job scrapes native histograms).
    pub fn scrape_protocols_for(&self, sc: &ScrapeConfig) -> Vec<scrape::ScrapeProtocol> {
        if let Some(own) = sc
            .scrape_protocols
            .as_ref()
            .or(self.global.scrape_protocols.as_ref())
        {
            return own.clone();
        }
        match sc
            .scrape_native_histograms
            .unwrap_or(self.global.scrape_native_histograms)
        {
            true => scrape::ScrapeProtocol::PROTO_FIRST.to_vec(),
            false => scrape::ScrapeProtocol::DEFAULT.to_vec(),
        }
    }

    /// What a job does with histograms: keep classic series next to native ones, convert
    /// classic-only ones to custom buckets.
    pub fn histogram_options_for(&self, sc: &ScrapeConfig) -> HistogramOptions {
        HistogramOptions {
            classic: sc
                .always_scrape_classic_histograms
                .unwrap_or(self.global.always_scrape_classic_histograms),
            nhcb: sc
                .convert_classic_histograms_to_nhcb
                .unwrap_or(self.global.convert_classic_histograms_to_nhcb),
        }
    }

    pub fn scrape_timeout_for(&self, sc: &ScrapeConfig) -> Duration {
        let timeout = sc.scrape_timeout.unwrap_or(self.global.scrape_timeout).0;
        // Prometheus clamps an inherited timeout to the job's interval.
        if sc.scrape_timeout.is_none() {
            timeout.min(self.scrape_interval_for(sc))
        } else {
            timeout
        }
    }
}

/// Resolves the `--config.file` flag: a path, or the embedded default when none is given.
pub fn load_or_default(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p),
        None => Ok(Config::embedded_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded_default();
        assert_eq!(c.scrape_configs[0].job_name, "quiver");
        assert_eq!(c.storage.backend, Backend::Local);
    }

    #[test]
    fn unknown_field_names_field_and_line() {
        let err = Config::from_yaml("global:\n  scrape_intervall: 1m\n", "x.yml").unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("scrape_intervall"), "{text}");
        assert!(text.contains("line 2"), "{text}");
        assert!(text.contains("x.yml"), "{text}");
    }

    #[test]
    fn defaults_match_prometheus() {
        let c = Config::from_yaml("scrape_configs:\n- job_name: a\n", "t").unwrap();
        let sc = &c.scrape_configs[0];
        assert_eq!(c.scrape_interval_for(sc), Duration::from_secs(60));
        assert_eq!(c.scrape_timeout_for(sc), Duration::from_secs(10));
        assert_eq!(sc.metrics_path, "/metrics");
        assert!(sc.honor_timestamps);
    }

    #[test]
    fn s3_backend_needs_section() {
        assert!(Config::from_yaml("storage:\n  backend: s3\n", "t").is_err());
        let c = Config::from_yaml(
            "storage:\n  backend: s3\n  s3:\n    bucket: b\n    endpoint: http://127.0.0.1:9000\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.storage.s3.unwrap().bucket, "b");
    }

    #[test]
    fn compaction_ranges_are_multiples_of_the_block_before() {
        let c = Config::from_yaml("", "t").unwrap();
        let ranges: Vec<String> = c
            .storage
            .compaction
            .ranges
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(ranges, ["8h", "2d", "2w"]);
        let ok = "storage:\n  block_duration: 1m\n  compaction:\n    ranges: [4m, 12m]\n";
        assert!(Config::from_yaml(ok, "t").is_ok());
        for bad in ["[90s]", "[1m]", "[4m, 10m]", "[12m, 4m]"] {
            let yaml =
                format!("storage:\n  block_duration: 1m\n  compaction:\n    ranges: {bad}\n");
            let err = Config::from_yaml(&yaml, "t").unwrap_err();
            assert!(
                format!("{err:#}").contains("storage.compaction.ranges"),
                "{bad}: {err:#}"
            );
        }
    }

    #[test]
    fn query_tier_sources_are_named_once_and_complete() {
        let ok = "storage:\n  query_tier:\n    replica_labels: [replica]\n    sources:\n      - name: eu-1\n        backend: local\n        path: ../eu\n        external_labels: {cluster: eu}\n      - name: us\n        backend: s3\n        s3: {bucket: m, prefix: us}\n";
        let c = Config::from_yaml(ok, "t").unwrap();
        assert_eq!(c.storage.query_tier.sources.len(), 2);
        assert_eq!(c.storage.query_tier.refresh_interval.to_string(), "30s");
        for (bad, says) in [
            ("[{name: a/b, backend: local, path: x}]", "must be letters"),
            (
                "[{name: a, backend: local, path: x}, {name: a, backend: local, path: y}]",
                "used twice",
            ),
            ("[{name: a, backend: s3}]", "needs an s3 section"),
            ("[{name: a, backend: local}]", "needs a path"),
        ] {
            let yaml = format!("storage:\n  query_tier:\n    sources: {bad}\n");
            let err = format!("{:#}", Config::from_yaml(&yaml, "t").unwrap_err());
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn scrape_protocols_are_negotiated_as_in_prometheus() {
        let yaml = "global:\n  convert_classic_histograms_to_nhcb: true\nscrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_native_histograms: true\n    scrape_classic_histograms: true\n  - job_name: c\n    scrape_protocols: [PrometheusText0.0.4]\n    convert_classic_histograms_to_nhcb: false\n";
        let c = Config::from_yaml(yaml, "t").unwrap();
        let accept =
            |i: usize| ScrapeProtocol::accept_header(&c.scrape_protocols_for(&c.scrape_configs[i]));
        assert_eq!(
            accept(0),
            "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.6,\
             application/openmetrics-text;version=0.0.1;q=0.5,\
             text/plain;version=1.0.0;escaping=underscores;q=0.4,\
             text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        );
        assert!(accept(1).starts_with(
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,"
        ));
        assert_eq!(accept(2), "text/plain;version=0.0.4;q=0.6,*/*;q=0.5");
        let options: Vec<HistogramOptions> = c
            .scrape_configs
            .iter()
            .map(|sc| c.histogram_options_for(sc))
            .collect();
        assert_eq!(
            options,
            [
                HistogramOptions {
                    classic: false,
                    nhcb: true
                },
                HistogramOptions {
                    classic: true,
                    nhcb: true
                },
                HistogramOptions {
                    classic: false,
                    nhcb: false
                },
            ]
        );
        for bad in [
            "scrape_protocols: []",
            "scrape_protocols: [PrometheusProto, PrometheusProto]",
            "scrape_protocols: [Protobuf]",
        ] {
            let yaml = format!("scrape_configs:\n  - job_name: x\n    {bad}\n");
            assert!(Config::from_yaml(&yaml, "t").is_err(), "{bad}");
        }
    }
}
