//! Turns the HTTP client settings that scrape configs and Alertmanager configs share
//! (`tls_config`, `basic_auth`, `authorization`) into a client and an auth header, as
//! Prometheus's common HTTP client config does.

use std::sync::Arc;

use anyhow::Context;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::{Authorization, BasicAuth, Config, TlsConfig};
use crate::pem;

/// A client with the TLS settings applied; `purpose` names it in errors.
pub fn build_client(
    config: &Config,
    tls: Option<&TlsConfig>,
    purpose: &str,
) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("Quiver/", env!("CARGO_PKG_VERSION")))
        .gzip(true);
    if let Some(tls) = tls
        && let Some(name) = &tls.server_name
        && !tls.insecure_skip_verify
    {
        let rustls = named_server_config(config, tls, name)
            .with_context(|| format!("tls_config of the {purpose} client"))?;
        builder = builder.use_preconfigured_tls(rustls);
    } else if let Some(tls) = tls {
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

/// `tls_config` with `server_name`: the server's certificate is verified for that name
/// instead of the target's host (as Go's `tls.Config.ServerName` does), against `ca_file` or
/// the web's roots, with the client certificate if one is configured.
fn named_server_config(
    config: &Config,
    tls: &TlsConfig,
    name: &str,
) -> anyhow::Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &tls.ca_file {
        Some(ca) => pem::roots(&pem::read(&config.resolve_path(ca), "ca_file")?, "ca_file")?,
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("building the certificate verifier")?;
    let name = ServerName::try_from(name.to_owned())
        .with_context(|| format!("server_name {name:?} is not a DNS name or IP address"))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NamedServer { inner, name }));
    Ok(match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let certs = pem::certificates(
                &pem::read(&config.resolve_path(cert), "cert_file")?,
                "cert_file",
            )?;
            let key = pem::private_key(
                &pem::read(&config.resolve_path(key), "key_file")?,
                "key_file",
            )?;
            builder
                .with_client_auth_cert(certs, key)
                .context("the client certificate and key do not form a pair")?
        }
        _ => builder.with_no_client_auth(),
    })
}

/// Verifies the server's certificate for a configured name rather than the one dialled.
#[derive(Debug)]
struct NamedServer {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
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
