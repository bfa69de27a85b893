//! The web configuration file of Prometheus's exporter-toolkit (`--web.config.file`), so the
//! one file serves Prometheus, node_exporter, Alertmanager and Quiver: parsed strictly (an
//! unknown key is an error, as Go's `UnmarshalStrict` makes it), with exporter-toolkit's
//! defaults and checks. Paths are relative to the file's folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    pub tls_server_config: TlsServerConfig,
    pub http_server_config: HttpServerConfig,
    /// User name to bcrypt hash; empty: no basic authentication.
    pub basic_auth_users: BTreeMap<String, String>,
    /// Paths answered without authentication.
    pub auth_excluded_paths: Vec<String>,
    pub rate_limit: RateLimit,
}

/// `tls_server_config`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsServerConfig {
    /// Inline PEM certificate (instead of `cert_file`).
    pub cert: String,
    /// Inline PEM key (instead of `key_file`).
    pub key: String,
    /// Inline PEM client CA (instead of `client_ca_file`).
    pub client_ca: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_auth_type: String,
    pub client_ca_file: PathBuf,
    pub client_allowed_sans: Option<Vec<String>>,
    pub min_version: String,
    pub max_version: String,
    /// Go's cipher suite names, for TLS 1.2 (TLS 1.3's are not configurable, as in Go).
    pub cipher_suites: Vec<String>,
    pub prefer_server_cipher_suites: bool,
    pub curve_preferences: Vec<String>,
}

impl Default for TlsServerConfig {
    fn default() -> Self {
        TlsServerConfig {
            cert: String::new(),
            key: String::new(),
            client_ca: String::new(),
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            client_auth_type: String::new(),
            client_ca_file: PathBuf::new(),
            client_allowed_sans: None,
            min_version: "TLS12".to_owned(),
            max_version: "TLS13".to_owned(),
            cipher_suites: Vec::new(),
            prefer_server_cipher_suites: true,
            curve_preferences: Vec::new(),
        }
    }
}

/// `http_server_config`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpServerConfig {
    /// Offer HTTP/2 over TLS (fixed at start, as in exporter-toolkit).
    pub http2: bool,
    /// Response headers, from exporter-toolkit's allowed set.
    pub headers: BTreeMap<String, String>,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            http2: true,
            headers: BTreeMap::new(),
        }
    }
}

/// `rate_limit`: a token bucket over all requests; an `interval` of zero turns it off.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    pub burst: u32,
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    let nanos = crate::gocompat::duration::parse(&text).map_err(serde::de::Error::custom)?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| serde::de::Error::custom(format!("invalid duration {text}")))
}

/// The headers exporter-toolkit lets a file set, with the values it accepts (`None`: any).
const HEADERS: [(&str, Option<&[&str]>); 5] = [
    ("Content-Security-Policy", None),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-XSS-Protection", None),
    ("Strict-Transport-Security", None),
];

impl TlsServerConfig {
    /// Whether any TLS setting is present (exporter-toolkit's `IsEnabled`): the port then
    /// serves HTTPS only.
    pub fn is_enabled(&self) -> bool {
        !self.cert_file.as_os_str().is_empty()
            || !self.cert.is_empty()
            || !self.key_file.as_os_str().is_empty()
            || !self.key.is_empty()
            || !self.client_ca_file.as_os_str().is_empty()
            || !self.client_ca.is_empty()
            || !self.client_auth_type.is_empty()
    }

    /// The files the TLS settings read (for noticing a rotation).
    pub fn files(&self) -> Vec<PathBuf> {
        [&self.cert_file, &self.key_file, &self.client_ca_file]
            .into_iter()
            .filter(|p| !p.as_os_str().is_empty())
            .cloned()
            .collect()
    }
}

impl WebConfig {
    /// Reads and checks `path` (the TLS material is checked by [`super::tls`]).
    pub fn load(path: &Path) -> anyhow::Result<WebConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading web config file {}", path.display()))?;
        let mut config = WebConfig::parse(&text)
            .with_context(|| format!("parsing web config file {}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = &mut config.tls_server_config;
        for file in [
            &mut tls.cert_file,
            &mut tls.key_file,
            &mut tls.client_ca_file,
        ] {
            if !file.as_os_str().is_empty() && file.is_relative() {
                *file = dir.join(&*file);
            }
        }
        Ok(config)
    }

    /// Parses and checks the text of a web configuration file.
    pub fn parse(text: &str) -> anyhow::Result<WebConfig> {
        // An empty file is an empty configuration, as in Go's YAML.
        let config: WebConfig = if text.trim().is_empty() {
            WebConfig::default()
        } else {
            serde_norway::from_str(text)?
        };
        config.check_headers()?;
        config.check_users()?;
        if config.rate_limit.interval > Duration::ZERO && config.rate_limit.burst == 0 {
            bail!("rate_limit: burst must be at least 1 when an interval is set");
        }
        Ok(config)
    }

    fn check_headers(&self) -> anyhow::Result<()> {
        for (name, value) in &self.http_server_config.headers {
            let Some((_, allowed)) = HEADERS.iter().find(|(h, _)| h == name) else {
                bail!("HTTP header {name:?} can not be configured");
            };
            if let Some(allowed) = allowed
                && !allowed.iter().any(|a| a.eq_ignore_ascii_case(value))
            {
                bail!("invalid value for {name}. Expected one of: {allowed:?}, but got: {value:?}");
            }
            if axum::http::HeaderValue::from_str(value).is_err() {
                bail!("invalid value for {name}: {value:?} is not a valid header value");
            }
        }
        Ok(())
    }

    /// Every hash must be a bcrypt hash (exporter-toolkit's `validateUsers`).
    fn check_users(&self) -> anyhow::Result<()> {
        for (user, hash) in &self.basic_auth_users {
            if !super::auth::is_bcrypt_hash(hash) {
                bail!("basic_auth_users: the password of {user:?} is not a bcrypt hash");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_exporter_toolkit() {
        let c = WebConfig::parse("").unwrap();
        assert!(!c.tls_server_config.is_enabled());
        assert_eq!(c.tls_server_config.min_version, "TLS12");
        assert!(c.tls_server_config.prefer_server_cipher_suites);
        assert!(c.http_server_config.http2);
        let c = WebConfig::parse("tls_server_config:\n  client_auth_type: NoClientCert\n").unwrap();
        assert!(c.tls_server_config.is_enabled());
    }

    #[test]
    fn unknown_keys_headers_and_hashes_are_refused() {
        let err = WebConfig::parse("tls_config:\n  cert_file: a\n").unwrap_err();
        assert!(format!("{err:#}").contains("tls_config"), "{err:#}");
        let err = WebConfig::parse("http_server_config:\n  headers:\n    Server: x\n").unwrap_err();
        assert!(err.to_string().contains("can not be configured"), "{err}");
        let err = WebConfig::parse("http_server_config:\n  headers:\n    X-Frame-Options: allow\n")
            .unwrap_err();
        assert!(err.to_string().contains("Expected one of"), "{err}");
        let ok = "http_server_config:\n  headers:\n    X-Frame-Options: SameOrigin\n";
        WebConfig::parse(ok).unwrap();
        let err = WebConfig::parse("basic_auth_users:\n  alice: secret\n").unwrap_err();
        assert!(err.to_string().contains("not a bcrypt hash"), "{err}");
        let hash = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";
        let c = WebConfig::parse(&format!("basic_auth_users:\n  alice: {hash}\n")).unwrap();
        assert_eq!(c.basic_auth_users["alice"], hash);
        let err = WebConfig::parse("rate_limit:\n  interval: 1s\n").unwrap_err();
        assert!(err.to_string().contains("burst"), "{err}");
        let c = WebConfig::parse("rate_limit:\n  interval: 100ms\n  burst: 5\n").unwrap();
        assert_eq!(c.rate_limit.interval, Duration::from_millis(100));
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(
            &path,
            "tls_server_config:\n  cert_file: c.pem\n  key_file: /abs/k.pem\n",
        )
        .unwrap();
        let c = WebConfig::load(&path).unwrap();
        assert_eq!(c.tls_server_config.cert_file, dir.path().join("c.pem"));
        assert_eq!(c.tls_server_config.key_file, PathBuf::from("/abs/k.pem"));
    }
}
