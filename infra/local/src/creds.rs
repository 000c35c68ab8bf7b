//! The AWS IoT credentials provider stand-in: HTTPS with mutual TLS (client certificates of
//! the local CA), `GET /role-aliases/{alias}/credentials` with `x-amzn-iot-thingname`, answered
//! in AWS's JSON shape only when the header names the thing whose certificate was presented
//! (AWS checks the thing–certificate attachment). The credentials it hands out are the ones the
//! S3 stand-in verifies SigV4 against, generated on the first start of a data folder and kept
//! (owner-only) across restarts.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The stand-in could not start.
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
    /// The TLS material was refused.
    #[error("credentials provider TLS setup: {0}")]
    Tls(String),
}

/// Credentials handed out to every camera.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Issued {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

fn certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, CredsError> {
    let pem = std::fs::read(path).map_err(|source| CredsError::Read {
        path: path.to_owned(),
        source,
    })?;
    rustls_pemfile::certs(&mut BufReader::new(&pem[..]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CredsError::Read {
            path: path.to_owned(),
            source,
        })
}

/// Builds the mutual-TLS acceptor from the PKI directory.
pub fn acceptor(pki: &crate::pki::Pki) -> Result<tokio_rustls::TlsAcceptor, CredsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(&pki.ca_path())? {
        roots
            .add(c)
            .map_err(|e| CredsError::Tls(format!("CA: {e}")))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .map_err(|e| CredsError::Tls(format!("client verifier: {e}")))?;
    let key_path = pki.server_key();
    let key_pem = std::fs::read(&key_path).map_err(|source| CredsError::Read {
        path: key_path.clone(),
        source,
    })?;
    let key = rustls_pemfile::private_key(&mut BufReader::new(&key_pem[..]))
        .map_err(|source| CredsError::Read {
            path: key_path.clone(),
            source,
        })?
        .ok_or_else(|| CredsError::Tls("no key in server.key".into()))?;
    let cfg = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&pki.server_cert())?, key)
        .map_err(|e| CredsError::Tls(format!("server certificate: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Serves the stand-in on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    pki_dir: PathBuf,
    role_alias: String,
    issued: Issued,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, dir, alias, issued) = (
            acceptor.clone(),
            pki_dir.clone(),
            role_alias.clone(),
            issued.clone(),
        );
        tokio::spawn(async move {
            let Ok(Ok(mut tls)) =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                    .await
            else {
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
            let (status, body) = answer(&head, peer.as_ref(), &dir, &alias, &issued);
            let resp = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(resp.as_bytes()).await;
            let _ = tls.shutdown().await;
        });
    }
}

fn answer(
    head: &str,
    peer: Option<&rustls::pki_types::CertificateDer<'_>>,
    dir: &Path,
    alias: &str,
    issued: &Issued,
) -> (u16, String) {
    let mut lines = head.lines();
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("");
    if path != format!("/role-aliases/{alias}/credentials") {
        return (404, r#"{"message":"Role alias does not exist"}"#.into());
    }
    let thing = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("x-amzn-iot-thingname"))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let valid_name = anpr_protocol::CameraId::parse(&thing).is_ok();
    let attached = valid_name
        && peer.is_some_and(|p| {
            certs(&dir.join(format!("{thing}.pem")))
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
    let expiration = aws_sdk_s3::primitives::DateTime::from(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
    )
    .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
    .unwrap_or_default();
    let body = serde_json::json!({"credentials": {
        "accessKeyId": issued.access_key_id,
        "secretAccessKey": issued.secret_access_key,
        "sessionToken": format!("local-session-{thing}"),
        "expiration": expiration,
    }});
    (200, body.to_string())
}
