//! Turns the HTTP client settings that scrape configs and Alertmanager configs share
//! (`tls_config`, `basic_auth`, `authorization`) into a client and an auth header, as
//! Prometheus's common HTTP client config does.

use anyhow::Context;

use super::{Authorization, BasicAuth, Config, TlsConfig};

/// A client with the TLS settings applied; `purpose` names it in errors.
pub fn build_client(
    config: &Config,
    tls: Option<&TlsConfig>,
    purpose: &str,
) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("Quiver/", env!("CARGO_PKG_VERSION")))
        .gzip(true);
    if let Some(tls) = tls {
        if let Some(ca) = &tls.ca_file {
            let pem = std::fs::read(config.resolve_path(ca))
                .with_context(|| format!("reading ca_file {}", ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).context("parsing ca_file")? {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            let mut pem = std::fs::read(config.resolve_path(cert))
                .with_context(|| format!("reading cert_file {}", cert.display()))?;
            pem.extend(
                std::fs::read(config.resolve_path(key))
                    .with_context(|| format!("reading key_file {}", key.display()))?,
            );
            builder = builder.identity(
                reqwest::Identity::from_pem(&pem).context("parsing client certificate and key")?,
            );
        }
        if tls.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
    }
    builder
        .build()
        .with_context(|| format!("building the {purpose} HTTP client"))
}

/// The `Authorization` header value for `basic_auth` or `authorization`, if either is set.
pub fn auth_header(
    config: &Config,
    basic_auth: Option<&BasicAuth>,
    authorization: Option<&Authorization>,
) -> anyhow::Result<Option<String>> {
    use base64::Engine;
    if let Some(basic) = basic_auth {
        let password = match (&basic.password, &basic.password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(file)) => read_secret(config, file)?,
            (None, None) => String::new(),
        };
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{password}", basic.username));
        return Ok(Some(format!("Basic {token}")));
    }
    if let Some(auth) = authorization {
        let credentials = match (&auth.credentials, &auth.credentials_file) {
            (Some(c), _) => c.clone(),
            (None, Some(file)) => read_secret(config, file)?,
            (None, None) => String::new(),
        };
        return Ok(Some(format!("{} {credentials}", auth.auth_type)));
    }
    Ok(None)
}

/// A secret kept in a file (relative to the configuration), without surrounding whitespace.
pub(crate) fn read_secret(config: &Config, file: &std::path::Path) -> anyhow::Result<String> {
    let path = config.resolve_path(file);
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_string())
}
