//! PEM certificates and keys, read once for every TLS user: the HTTP port's web config, the
//! PostgreSQL port and the outbound clients' `tls_config`.

use std::io::BufReader;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use tokio_rustls::rustls::RootCertStore;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The file's bytes, with its path in the error.
pub fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("failed to read {what} ({})", path.display()))
}

/// Every certificate in `pem`; at least one.
pub fn certificates(pem: &[u8], what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(pem))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {what}"))?;
    if certs.is_empty() {
        bail!("no certificate found in {what}");
    }
    Ok(certs)
}

/// The first private key in `pem`.
pub fn private_key(pem: &[u8], what: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut BufReader::new(pem))
        .with_context(|| format!("parsing {what}"))?
        .ok_or_else(|| anyhow!("no private key found in {what}"))
}

/// A root store of every certificate in `pem`.
pub fn roots(pem: &[u8], what: &str) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem, what)? {
        roots
            .add(cert)
            .with_context(|| format!("adding a certificate of {what}"))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_foreign_pem_is_an_error_naming_what() {
        let err = certificates(b"", "cert_file").unwrap_err();
        assert!(err.to_string().contains("cert_file"), "{err}");
        let err = private_key(
            b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            "key_file",
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("key_file"), "{err:#}");
    }
}
