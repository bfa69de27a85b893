//! `tls_server_config` as a rustls server configuration, with exporter-toolkit's meanings:
//! Go's client authentication policies, cipher suite and curve names, TLS versions, and the
//! client certificate's allowed SANs.

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::crypto::{self, CryptoProvider, WebPkiSupportedAlgorithms};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::server::{NoClientAuth, WebPkiClientVerifier};
use tokio_rustls::rustls::{
    self, DigitallySignedStruct, DistinguishedName, NamedGroup, RootCertStore, ServerConfig,
    SignatureScheme, SupportedCipherSuite, SupportedProtocolVersion,
};

use super::config::TlsServerConfig;
use crate::pem;

/// The server configuration for `tls`; `http2` offers `h2` by ALPN.
pub fn server_config(tls: &TlsServerConfig, http2: bool) -> anyhow::Result<Arc<ServerConfig>> {
    if tls.cert_file.as_os_str().is_empty() && tls.cert.is_empty() {
        bail!("missing one of cert or cert_file");
    }
    if tls.key_file.as_os_str().is_empty() && tls.key.is_empty() {
        bail!("missing one of key or key_file");
    }
    let (certs, key) = certificate(tls)?;
    let provider = Arc::new(provider(tls)?);
    let versions = versions(&tls.min_version, &tls.max_version)?;
    let verifier = client_verifier(tls, &provider)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .context("TLS versions and cipher suites")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("the certificate and key do not form a pair")?;
    config.ignore_client_order = tls.prefer_server_cipher_suites;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(config))
}

fn certificate(
    tls: &TlsServerConfig,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let cert_pem = if tls.cert_file.as_os_str().is_empty() {
        tls.cert.as_bytes().to_vec()
    } else {
        pem::read(&tls.cert_file, "cert_file")?
    };
    let key_pem = if tls.key_file.as_os_str().is_empty() {
        tls.key.as_bytes().to_vec()
    } else {
        pem::read(&tls.key_file, "key_file")?
    };
    Ok((
        pem::certificates(&cert_pem, "cert or cert_file")?,
        pem::private_key(&key_pem, "key or key_file")?,
    ))
}

/// The client CAs of `client_ca_file` or `client_ca`, if either is set.
fn client_roots(tls: &TlsServerConfig) -> anyhow::Result<Option<RootCertStore>> {
    let pem = if !tls.client_ca_file.as_os_str().is_empty() {
        pem::read(&tls.client_ca_file, "client_ca_file")?
    } else if !tls.client_ca.is_empty() {
        tls.client_ca.as_bytes().to_vec()
    } else {
        return Ok(None);
    };
    pem::roots(&pem, "the client CA").map(Some)
}

/// Go's `tls.ClientAuthType` by the names exporter-toolkit accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    Request,
    RequireAny,
    VerifyIfGiven,
    RequireAndVerify,
}

fn client_verifier(
    tls: &TlsServerConfig,
    provider: &Arc<CryptoProvider>,
) -> anyhow::Result<Arc<dyn ClientCertVerifier>> {
    let auth = match tls.client_auth_type.as_str() {
        "" | "NoClientCert" => ClientAuth::None,
        "RequestClientCert" => ClientAuth::Request,
        "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAny,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerify,
        other => bail!("invalid ClientAuth: {other}"),
    };
    let roots = client_roots(tls)?;
    if roots.is_some() && auth == ClientAuth::None {
        bail!("client CA's have been configured without a Client Auth Policy");
    }
    if tls.client_allowed_sans.is_some()
        && !matches!(auth, ClientAuth::RequireAny | ClientAuth::RequireAndVerify)
    {
        bail!(
            "client_allowed_sans requires client_auth_type to be one of RequireAnyClientCert or RequireAndVerifyClientCert"
        );
    }
    let verifier: Arc<dyn ClientCertVerifier> = match (auth, roots) {
        (ClientAuth::None, _) => Arc::new(NoClientAuth),
        (ClientAuth::Request | ClientAuth::RequireAny, _) => Arc::new(AnyClientCert {
            mandatory: auth == ClientAuth::RequireAny,
            algorithms: provider.signature_verification_algorithms,
        }),
        (ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify, None) => {
            bail!(
                "client_auth_type {} needs client_ca_file",
                tls.client_auth_type
            )
        }
        (_, Some(roots)) => {
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if auth == ClientAuth::VerifyIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder
                .build()
                .context("building the client certificate verifier")?
        }
    };
    match &tls.client_allowed_sans {
        None => Ok(verifier),
        Some(sans) => Ok(Arc::new(AllowedSans::new(verifier, sans)?)),
    }
}

/// `RequestClientCert` and `RequireAnyClientCert`: any certificate is taken (Go verifies
/// none), but the client must still prove it holds the certificate's key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `client_allowed_sans`: the inner policy, then one of the client certificate's DNS or IP
/// SANs must be in the list.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    sans: Vec<ServerName<'static>>,
}

impl AllowedSans {
    fn new(inner: Arc<dyn ClientCertVerifier>, sans: &[String]) -> anyhow::Result<AllowedSans> {
        let sans = sans
            .iter()
            .map(|san| {
                ServerName::try_from(san.clone()).map_err(|_| {
                    anyhow!("client_allowed_sans: {san:?} is not a DNS name or IP address (Quiver matches those SANs)")
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(AllowedSans { inner, sans })
    }
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| rustls::Error::General(format!("parsing the client certificate: {e}")))?;
        if self
            .sans
            .iter()
            .any(|san| cert.verify_is_valid_for_subject_name(san).is_ok())
        {
            Ok(verified)
        } else {
            Err(rustls::Error::General(
                "could not find allowed SANs in client cert".to_owned(),
            ))
        }
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

/// Suites Go knows that rustls does not implement (CBC modes, RSA key exchange, RC4, 3DES):
/// weaker ones, left out with a warning rather than refusing a file Prometheus accepts.
const GO_ONLY_SUITES: [&str; 15] = [
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
];

/// Go's name of a suite, where Go has two.
fn go_suite_name(name: &str) -> &str {
    match name {
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        other => other,
    }
}

/// ring's provider narrowed to the configured TLS 1.2 suites (in the file's order) and
/// curves; TLS 1.3 suites stay as they are, as in Go.
fn provider(tls: &TlsServerConfig) -> anyhow::Result<CryptoProvider> {
    let mut provider = crypto::ring::default_provider();
    if !tls.cipher_suites.is_empty() {
        let all = provider.cipher_suites.clone();
        let named = |name: &str| {
            all.iter().copied().find(|s: &SupportedCipherSuite| {
                s.suite().as_str() == Some(name) && matches!(s, SupportedCipherSuite::Tls12(_))
            })
        };
        let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
        for name in &tls.cipher_suites {
            let name = go_suite_name(name);
            // rustls names suites as IANA does, as Go does.
            if let Some(suite) = named(name) {
                chosen.push(suite);
            } else if GO_ONLY_SUITES.contains(&name) {
                tracing::warn!(
                    suite = name,
                    "web config: cipher suite not supported, left out"
                );
            } else {
                bail!("unknown cipher: {name}");
            }
        }
        if chosen.is_empty() {
            bail!(
                "none of the configured cipher_suites is supported (Quiver offers ECDHE with AES-GCM or ChaCha20-Poly1305)"
            );
        }
        chosen.extend(
            all.iter()
                .copied()
                .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_))),
        );
        provider.cipher_suites = chosen;
    }
    if !tls.curve_preferences.is_empty() {
        let all = provider.kx_groups.clone();
        let mut chosen = Vec::new();
        for name in &tls.curve_preferences {
            let group = match name.as_str() {
                "CurveP256" => NamedGroup::secp256r1,
                "CurveP384" => NamedGroup::secp384r1,
                "X25519" => NamedGroup::X25519,
                "CurveP521" => {
                    tracing::warn!("web config: curve CurveP521 not supported, left out");
                    continue;
                }
                other => bail!("unknown curve: {other}"),
            };
            chosen.extend(all.iter().copied().filter(|g| g.name() == group));
        }
        if chosen.is_empty() {
            bail!("none of the configured curve_preferences is supported");
        }
        provider.kx_groups = chosen;
    }
    Ok(provider)
}

/// The versions between `min` and `max` (Go's names; rustls has no TLS 1.0 or 1.1, so a
/// minimum below 1.2 is 1.2).
fn versions(min: &str, max: &str) -> anyhow::Result<Vec<&'static SupportedProtocolVersion>> {
    let rank = |name: &str, what: &str| match name {
        "TLS10" => Ok(10),
        "TLS11" => Ok(11),
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        other => Err(anyhow!("unknown TLS version for {what}: {other}")),
    };
    let (min, max) = (rank(min, "min_version")?, rank(max, "max_version")?);
    if min > max {
        bail!("min_version is above max_version");
    }
    if max < 12 {
        bail!("max_version below TLS12: Quiver supports TLS 1.2 and 1.3 only");
    }
    let mut versions = Vec::new();
    if min <= 12 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= 13 {
        versions.push(&rustls::version::TLS13);
    }
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_go_names() {
        assert_eq!(versions("TLS12", "TLS13").unwrap().len(), 2);
        assert_eq!(versions("TLS13", "TLS13").unwrap().len(), 1);
        assert_eq!(versions("TLS10", "TLS12").unwrap().len(), 1);
        assert!(versions("TLS13", "TLS12").is_err());
        assert!(versions("TLS10", "TLS11").is_err());
        assert!(versions("SSL3", "TLS13").is_err());
    }

    #[test]
    fn cipher_suites_and_curves_by_go_names() {
        let mut tls = TlsServerConfig {
            cipher_suites: vec![
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".into(),
                "TLS_RSA_WITH_AES_128_CBC_SHA".into(),
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305".into(),
            ],
            curve_preferences: vec!["X25519".into(), "CurveP521".into()],
            ..TlsServerConfig::default()
        };
        let p = provider(&tls).unwrap();
        let tls12: Vec<_> = p
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
            .map(|s| s.suite().as_str().unwrap())
            .collect();
        assert_eq!(
            tls12,
            [
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
            ]
        );
        assert!(
            p.cipher_suites
                .iter()
                .any(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
        );
        assert_eq!(p.kx_groups.len(), 1);
        tls.cipher_suites = vec!["TLS_MADE_UP".into()];
        assert!(
            provider(&tls)
                .unwrap_err()
                .to_string()
                .contains("unknown cipher")
        );
        tls.cipher_suites = vec!["TLS_RSA_WITH_AES_128_CBC_SHA".into()];
        assert!(provider(&tls).is_err());
    }

    #[test]
    fn client_auth_policies_are_checked() {
        let provider = Arc::new(crypto::ring::default_provider());
        let tls = |auth: &str| TlsServerConfig {
            client_auth_type: auth.into(),
            ..TlsServerConfig::default()
        };
        assert!(client_verifier(&tls("Bogus"), &provider).is_err());
        assert!(client_verifier(&tls("RequireAndVerifyClientCert"), &provider).is_err());
        let any = client_verifier(&tls("RequireAnyClientCert"), &provider).unwrap();
        assert!(any.client_auth_mandatory());
        let request = client_verifier(&tls("RequestClientCert"), &provider).unwrap();
        assert!(request.offer_client_auth() && !request.client_auth_mandatory());
        let none = client_verifier(&tls(""), &provider).unwrap();
        assert!(!none.offer_client_auth());
        let mut sans = tls("VerifyClientCertIfGiven");
        sans.client_allowed_sans = Some(vec!["client.example".into()]);
        assert!(client_verifier(&sans, &provider).is_err());
        let mut sans = tls("RequireAnyClientCert");
        sans.client_allowed_sans = Some(vec!["user@example.com".into()]);
        assert!(client_verifier(&sans, &provider).is_err());
    }
}
