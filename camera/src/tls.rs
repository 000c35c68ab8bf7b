//! TLS client configuration from PEM files: the trusted CA, the camera's certificate and its
//! key in PKCS#1 (`RSA PRIVATE KEY`, as AWS IoT issues it), PKCS#8 or SEC1 form, with optional
//! ALPN. One builder for MQTT, the credentials provider and S3 (which trusts the Amazon Trust
//! Services roots, compiled in, unless `upload.ca_file` names another CA).

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::BufReader;

/// The TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// PEM could not be read.
    #[error("cannot read {what} PEM: {source}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("{0} PEM holds no usable item")]
    Empty(&'static str),
    /// rustls refused the material.
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The roots that sign every AWS endpoint the agent calls (S3 included): the five Amazon Trust
/// Services roots, the same file the Lambdas compile in (`functions/lambda/certs/README.md`).
pub const AMAZON_TRUST_SERVICES_ROOTS: &[u8] =
    include_bytes!("../../functions/lambda/certs/amazon-trust-services.pem");

/// The crypto provider: ring, the smaller of rustls' two (docs/measured.md), named explicitly
/// so that rustls never has to guess when a test build links several providers.
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(what: &'static str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(pem))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { what, source })?;
    if certs.is_empty() {
        return Err(TlsError::Empty(what));
    }
    Ok(certs)
}

/// Reads the first private key of a PEM: PKCS#1, PKCS#8 or SEC1.
pub fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut BufReader::new(pem))
        .map_err(|source| TlsError::Pem {
            what: "private key",
            source,
        })?
        .ok_or(TlsError::Empty("private key"))
}

/// A rustls client configuration trusting `ca_pem`, authenticating with `cert_pem`/`key_pem`.
pub fn client_config(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
    alpn: Option<&[u8]>,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(certs("certificate", cert_pem)?, private_key(key_pem)?)?;
    if let Some(p) = alpn {
        cfg.alpn_protocols = vec![p.to_vec()];
    }
    Ok(cfg)
}

/// A rustls client configuration trusting `ca_pem`, without a client certificate (S3), for
/// HTTP/1.1.
pub fn server_auth_config(ca_pem: &[u8]) -> Result<rustls::ClientConfig, TlsError> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

fn roots(ca_pem: &[u8]) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs("CA", ca_pem)? {
        roots.add(c)?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_compiled_in_amazon_roots_make_a_configuration() {
        let cfg = super::server_auth_config(super::AMAZON_TRUST_SERVICES_ROOTS).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
