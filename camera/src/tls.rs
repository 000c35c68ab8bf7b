//! TLS client configuration from PEM files: the trusted CA, the camera's certificate and its
//! key in PKCS#1 (`RSA PRIVATE KEY`, as AWS IoT issues it), PKCS#8 or SEC1 form, with optional
//! ALPN. One builder for both MQTT and the credentials provider.

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

/// The crypto provider: aws-lc-rs, the one the AWS SDK uses, named explicitly so that
/// rustls never has to guess when several providers are compiled into one binary.
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider())
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
    let mut roots = rustls::RootCertStore::empty();
    for c in certs("CA", ca_pem)? {
        roots.add(c)?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs("certificate", cert_pem)?, private_key(key_pem)?)?;
    if let Some(p) = alpn {
        cfg.alpn_protocols = vec![p.to_vec()];
    }
    Ok(cfg)
}
