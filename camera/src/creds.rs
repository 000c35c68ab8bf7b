//! Short-lived AWS credentials from the AWS IoT credentials provider, obtained with the
//! camera's own certificate (mutual TLS): `GET /role-aliases/{alias}/credentials` with header
//! `x-amzn-iot-thingname`. Plugged into the S3 client as its credentials provider, so the SDK
//! caches them and asks again shortly before they expire.
//!
//! A minimal HTTP/1.1 client over tokio-rustls: no second HTTP stack in the binary.

use crate::tls::{self, TlsError};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, error::CredentialsError};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest credentials response read.
const MAX_RESPONSE: u64 = 64 * 1024;

/// Fetching credentials failed.
#[derive(Debug, thiserror::Error)]
pub enum CredsError {
    /// TLS setup failed (certificate or key unreadable).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Network or TLS handshake error.
    #[error("credentials provider I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The endpoint answered something else than 200.
    #[error("credentials provider answered HTTP {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// The answer was not the expected JSON.
    #[error("credentials provider answer malformed: {0}")]
    Malformed(String),
    /// No answer in time.
    #[error("credentials provider timed out")]
    Timeout,
}

/// The credentials provider endpoint and the camera's identity.
#[derive(Clone)]
pub struct IotCredentials {
    host: String,
    port: u16,
    role_alias: String,
    thing: String,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for IotCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IotCredentials")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("role_alias", &self.role_alias)
            .field("thing", &self.thing)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer {
    credentials: Creds,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Creds {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

impl IotCredentials {
    /// A provider for `thing` at `host:port` with role alias `role_alias`, using the given
    /// CA, certificate and key PEM.
    pub fn new(
        host: &str,
        port: u16,
        role_alias: &str,
        thing: &str,
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<Self, CredsError> {
        let tls = tls::client_config(ca_pem, cert_pem, key_pem, None)?;
        Ok(Self {
            host: host.to_owned(),
            port,
            role_alias: role_alias.to_owned(),
            thing: thing.to_owned(),
            tls: Arc::new(tls),
        })
    }

    /// Fetches a fresh set of credentials.
    pub async fn fetch(&self) -> Result<Credentials, CredsError> {
        tokio::time::timeout(Duration::from_secs(30), self.fetch_inner())
            .await
            .map_err(|_| CredsError::Timeout)?
    }

    async fn fetch_inner(&self) -> Result<Credentials, CredsError> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| CredsError::Malformed(format!("host name: {e}")))?;
        let mut s = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?;
        let req = format!(
            "GET /role-aliases/{}/credentials HTTP/1.1\r\nHost: {}\r\nx-amzn-iot-thingname: {}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
            self.role_alias, self.host, self.thing
        );
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        let r = (&mut s).take(MAX_RESPONSE).read_to_end(&mut buf).await;
        // Servers often close without close_notify; what was read counts.
        if let Err(e) = r
            && buf.is_empty()
        {
            return Err(e.into());
        }
        parse_response(&buf)
    }
}

/// Parses an HTTP/1.1 response carrying the provider's JSON.
fn parse_response(buf: &[u8]) -> Result<Credentials, CredsError> {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| CredsError::Malformed("no HTTP header end".into()))?;
    let head = String::from_utf8_lossy(&buf[..split]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CredsError::Malformed("no HTTP status".into()))?;
    let mut body = buf[split + 4..].to_vec();
    if head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"))
    {
        body = dechunk(&body).ok_or_else(|| CredsError::Malformed("bad chunked body".into()))?;
    }
    if status != 200 {
        return Err(CredsError::Status {
            status,
            body: String::from_utf8_lossy(&body).chars().take(200).collect(),
        });
    }
    let a: Answer =
        serde_json::from_slice(&body).map_err(|e| CredsError::Malformed(e.to_string()))?;
    let exp = aws_smithy_types::DateTime::from_str(
        &a.credentials.expiration,
        aws_smithy_types::date_time::Format::DateTime,
    )
    .ok()
    .and_then(|d| SystemTime::try_from(d).ok())
    .ok_or_else(|| CredsError::Malformed("expiration is not an RFC 3339 time".into()))?;
    Ok(Credentials::new(
        a.credentials.access_key_id,
        a.credentials.secret_access_key,
        Some(a.credentials.session_token),
        Some(exp),
        "iot-credentials-provider",
    ))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_txt = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_txt.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

impl ProvideCredentials for IotCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            self.fetch().await.map_err(CredentialsError::provider_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aws_shaped_answer_becomes_expiring_credentials() {
        let body = br#"{"credentials":{"accessKeyId":"AK","secretAccessKey":"SK","sessionToken":"T","expiration":"2030-01-01T00:00:00Z"}}"#;
        let mut resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n".to_vec();
        resp.extend_from_slice(body);
        let c = parse_response(&resp).unwrap();
        assert_eq!(c.access_key_id(), "AK");
        assert_eq!(c.session_token(), Some("T"));
        assert!(c.expiry().is_some());
    }

    #[test]
    fn a_refusal_keeps_its_status_and_a_chunked_body_is_read() {
        let e = parse_response(b"HTTP/1.1 403 Forbidden\r\n\r\n{\"message\":\"no\"}").unwrap_err();
        assert!(matches!(e, CredsError::Status { status: 403, .. }), "{e}");
        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"cre\r\n0\r\n\r\n";
        assert!(matches!(
            parse_response(resp),
            Err(CredsError::Malformed(_))
        ));
    }
}
