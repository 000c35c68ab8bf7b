//! The AWS IoT credentials provider stand-in: HTTPS with mutual TLS (client certificates of a
//! [`Pki`]), `GET /role-aliases/{alias}/credentials` with `x-amzn-iot-thingname`, answered in
//! AWS's JSON shape only when the header names the thing whose certificate was presented (AWS
//! checks the thing–certificate attachment; here: the thing's certificate in the PKI folder).
//! Every thing gets the same [`Issued`] keys, valid for an hour (AWS's default duration).

use crate::pki::Pki;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long handed-out credentials are valid.
pub const VALIDITY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The stand-in's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CredsError {
    /// A PEM file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The key file holds no private key.
    #[error("{0}: no private key")]
    NoKey(PathBuf),
    /// A certificate or key was refused.
    #[error("credentials provider TLS setup: {what}")]
    Tls {
        /// What was refused.
        what: &'static str,
        /// The error.
        #[source]
        source: rustls::Error,
    },
    /// The client certificate verifier could not be built.
    #[error("credentials provider TLS setup: client verifier")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
}

/// Credentials handed out to every thing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Issued {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

fn certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, CredsError> {
    let read = |source| CredsError::Read {
        path: path.to_owned(),
        source,
    };
    let pem = std::fs::read(path).map_err(read)?;
    rustls_pemfile::certs(&mut BufReader::new(&pem[..]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)
}

/// The mutual-TLS acceptor: the PKI's server certificate, client certificates of its CA.
pub fn acceptor(pki: &Pki) -> Result<tokio_rustls::TlsAcceptor, CredsError> {
    let provider = crate::crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(&pki.ca_path())? {
        roots
            .add(c)
            .map_err(|source| CredsError::Tls { what: "CA", source })?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(CredsError::Verifier)?;
    let key_path = pki.server_key();
    let read = |source| CredsError::Read {
        path: key_path.clone(),
        source,
    };
    let key_pem = std::fs::read(&key_path).map_err(read)?;
    let key = rustls_pemfile::private_key(&mut BufReader::new(&key_pem[..]))
        .map_err(read)?
        .ok_or_else(|| CredsError::NoKey(key_path.clone()))?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| CredsError::Tls {
            what: "protocol versions",
            source,
        })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&pki.server_cert())?, key)
        .map_err(|source| CredsError::Tls {
            what: "server certificate",
            source,
        })?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// The credentials provider of one role alias, counting what it granted and refused.
#[derive(Debug)]
pub struct CredsProvider {
    pki: Pki,
    role_alias: String,
    issued: Issued,
    granted: AtomicU64,
    refused: AtomicU64,
}

impl CredsProvider {
    /// Hands out `issued` for `role_alias` to the things of `pki`.
    pub fn new(pki: Pki, role_alias: &str, issued: Issued) -> Self {
        Self {
            pki,
            role_alias: role_alias.to_owned(),
            issued,
            granted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// The role alias served.
    pub fn role_alias(&self) -> &str {
        &self.role_alias
    }
    /// Credentials handed out so far.
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::SeqCst)
    }
    /// Requests refused so far (bad or no certificate, thing or alias).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// Serves connections of `listener` until the task is dropped.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
    ) {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (this, acceptor) = (self.clone(), acceptor.clone());
            tokio::spawn(async move { this.connection(tcp, acceptor).await });
        }
    }

    async fn connection(&self, tcp: tokio::net::TcpStream, acceptor: tokio_rustls::TlsAcceptor) {
        let handshake =
            tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await;
        let Ok(Ok(mut tls)) = handshake else {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return;
        };
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first().cloned());
        let mut buf = Vec::new();
        let mut chunk = [0u8; 2048];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16384 {
            match tls.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let (status, body) = self.answer(&head, peer.as_ref(), std::time::SystemTime::now());
        let counter = if status == 200 {
            &self.granted
        } else {
            &self.refused
        };
        counter.fetch_add(1, Ordering::SeqCst);
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tls.write_all(resp.as_bytes()).await;
        let _ = tls.shutdown().await;
    }

    /// The status and JSON body answering a request head from the holder of `peer`.
    fn answer(
        &self,
        head: &str,
        peer: Option<&rustls::pki_types::CertificateDer<'_>>,
        now: std::time::SystemTime,
    ) -> (u16, String) {
        let mut lines = head.lines();
        let path = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("");
        if path != format!("/role-aliases/{}/credentials", self.role_alias) {
            return (404, r#"{"message":"Role alias does not exist"}"#.into());
        }
        let thing = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("x-amzn-iot-thingname"))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        // A valid thing name, so that it never names a file outside the PKI folder.
        let attached = anpr_protocol::CameraId::parse(&thing).is_ok()
            && peer.is_some_and(|p| {
                certs(&self.pki.cert_of(&thing))
                    .ok()
                    .and_then(|c| c.into_iter().next())
                    .as_ref()
                    == Some(p)
            });
        if !attached {
            return (
                403,
                r#"{"message":"Certificate is not attached to the thing"}"#.into(),
            );
        }
        let expiration = aws_smithy_types::DateTime::from(now + VALIDITY)
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap_or_default();
        let body = serde_json::json!({"credentials": {
            "accessKeyId": self.issued.access_key_id,
            "secretAccessKey": self.issued.secret_access_key,
            "sessionToken": format!("local-session-{thing}"),
            "expiration": expiration,
        }});
        (200, body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(dir: &Path) -> (CredsProvider, Vec<u8>, Vec<u8>) {
        let pki = Pki::open(dir, "test CA").expect("PKI");
        let a = pki.issue("cam-a").expect("cam-a");
        let b = pki.issue("cam-b").expect("cam-b");
        let issued = Issued {
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
        };
        let der = |id: &crate::pki::ClientIdentity| certs(&id.cert_path).expect("cert")[0].to_vec();
        (CredsProvider::new(pki, "cams", issued), der(&a), der(&b))
    }

    fn head(alias: &str, thing: &str) -> String {
        format!(
            "GET /role-aliases/{alias}/credentials HTTP/1.1\r\nx-amzn-iot-thingname: {thing}\r\n\r\n"
        )
    }

    #[test]
    fn credentials_go_only_to_the_thing_whose_certificate_was_presented() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let (p, a, b) = provider(tmp.path());
        let (a, b) = (
            rustls::pki_types::CertificateDer::from(a),
            rustls::pki_types::CertificateDer::from(b),
        );
        let now = std::time::SystemTime::UNIX_EPOCH;
        let (status, body) = p.answer(&head("cams", "cam-a"), Some(&a), now);
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["credentials"]["accessKeyId"], "AKID");
        assert_eq!(v["credentials"]["secretAccessKey"], "secret");
        assert_eq!(v["credentials"]["expiration"], "1970-01-01T01:00:00Z");
        assert_eq!(p.answer(&head("cams", "cam-a"), Some(&b), now).0, 403);
        assert_eq!(p.answer(&head("cams", "cam-a"), None, now).0, 403);
        assert_eq!(p.answer(&head("cams", "../ca"), Some(&a), now).0, 403);
        assert_eq!(p.answer(&head("other", "cam-a"), Some(&a), now).0, 404);
    }
}
