//! Short-lived AWS credentials from the AWS IoT credentials provider, obtained with the
//! camera's own certificate (mutual TLS): `GET /role-aliases/{alias}/credentials` with header
//! `x-amzn-iot-thingname`. [`CachedCredentials`] keeps the last set and asks again shortly
//! before it expires (or when S3 says it has), so every S3 request is signed with valid ones.
//!
//! Over the agent's own HTTP client ([`crate::http`]): no second HTTP stack in the binary.

use crate::http::{self, HttpError};
use crate::tls::{self, TlsError};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Largest credentials response read.
const MAX_RESPONSE: usize = 64 * 1024;
/// Credentials expiring sooner than this are fetched again before use: a part upload signed
/// with them has time to finish.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// Fetching credentials failed.
#[derive(Debug, thiserror::Error)]
pub enum CredsError {
    /// TLS setup failed (certificate or key unreadable).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Network, TLS or HTTP error.
    #[error("credentials provider: {0}")]
    Http(#[from] HttpError),
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

/// A set of temporary AWS credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expires: SystemTime,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials from their parts.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: impl Into<String>,
        expires: SystemTime,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: session_token.into(),
            expires,
        }
    }
    /// The access key id.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }
    /// The secret access key.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }
    /// The session token.
    pub fn session_token(&self) -> &str {
        &self.session_token
    }
    /// When they expire.
    pub fn expires(&self) -> SystemTime {
        self.expires
    }
    /// Whether they are still good at `now` for at least [`REFRESH_BEFORE_EXPIRY`].
    pub fn fresh_at(&self, now: SystemTime) -> bool {
        now + REFRESH_BEFORE_EXPIRY < self.expires
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
        let mut conn = http::Conn::open(&self.host, self.port, Some(&self.tls)).await?;
        let req = format!(
            "GET /role-aliases/{}/credentials HTTP/1.1\r\nHost: {}\r\nx-amzn-iot-thingname: {}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
            self.role_alias, self.host, self.thing
        );
        conn.write(req.as_bytes()).await?;
        let resp = conn.response(MAX_RESPONSE).await?;
        parse_answer(resp.status, &resp.body)
    }
}

/// The provider's answer: its status and JSON body.
fn parse_answer(status: u16, body: &[u8]) -> Result<Credentials, CredsError> {
    if status != 200 {
        return Err(CredsError::Status {
            status,
            body: String::from_utf8_lossy(body).chars().take(200).collect(),
        });
    }
    let a: Answer =
        serde_json::from_slice(body).map_err(|e| CredsError::Malformed(e.to_string()))?;
    let expires = a
        .credentials
        .expiration
        .parse::<jiff::Timestamp>()
        .map(SystemTime::from)
        .map_err(|_| CredsError::Malformed("expiration is not an RFC 3339 time".into()))?;
    Ok(Credentials::new(
        a.credentials.access_key_id,
        a.credentials.secret_access_key,
        a.credentials.session_token,
        expires,
    ))
}

/// The credentials in use: fetched when first needed, again shortly before they expire or
/// when S3 refused them as expired ([`CachedCredentials::forget`]).
#[derive(Debug)]
pub struct CachedCredentials {
    provider: Option<IotCredentials>,
    current: tokio::sync::Mutex<Option<Credentials>>,
}

impl CachedCredentials {
    /// A cache over `provider`, empty.
    pub fn new(provider: IotCredentials) -> Self {
        Self {
            provider: Some(provider),
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// Always `creds`, never fetched (a local S3 stand-in that does not check them).
    pub fn fixed(creds: Credentials) -> Self {
        Self {
            provider: None,
            current: tokio::sync::Mutex::new(Some(creds)),
        }
    }

    /// Credentials good for at least [`REFRESH_BEFORE_EXPIRY`], fetched if needed.
    pub async fn get(&self) -> Result<Credentials, CredsError> {
        let mut cur = self.current.lock().await;
        let Some(provider) = &self.provider else {
            return cur
                .clone()
                .ok_or_else(|| CredsError::Malformed("no credentials".into()));
        };
        if let Some(c) = cur.as_ref()
            && c.fresh_at(SystemTime::now())
        {
            return Ok(c.clone());
        }
        let c = provider.fetch().await?;
        tracing::debug!(expires = ?c.expires(), "credentials fetched");
        *cur = Some(c.clone());
        Ok(c)
    }

    /// Drops the credentials held: the next [`get`](Self::get) fetches new ones.
    pub async fn forget(&self) {
        if self.provider.is_some() {
            *self.current.lock().await = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(resp: &[u8]) -> Result<Credentials, CredsError> {
        let mut r = resp;
        let resp = http::read_response(&mut r, &mut Vec::new(), MAX_RESPONSE).await?;
        parse_answer(resp.status, &resp.body)
    }

    #[tokio::test]
    async fn an_aws_shaped_answer_becomes_expiring_credentials() {
        let body = br#"{"credentials":{"accessKeyId":"AK","secretAccessKey":"SK","sessionToken":"T","expiration":"2030-01-01T00:00:00Z"}}"#;
        let mut resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n".to_vec();
        resp.extend_from_slice(body);
        let c = parse(&resp).await.unwrap();
        assert_eq!(c.access_key_id(), "AK");
        assert_eq!(c.session_token(), "T");
        assert_eq!(
            c.expires(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000)
        );
    }

    #[tokio::test]
    async fn a_refusal_keeps_its_status_and_a_chunked_body_is_read() {
        let e = parse(b"HTTP/1.1 403 Forbidden\r\n\r\n{\"message\":\"no\"}")
            .await
            .unwrap_err();
        assert!(matches!(e, CredsError::Status { status: 403, .. }), "{e}");
        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"cre\r\n0\r\n\r\n";
        assert!(matches!(parse(resp).await, Err(CredsError::Malformed(_))));
    }

    #[test]
    fn credentials_are_fetched_again_five_minutes_before_they_expire() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let c = Credentials::new("AK", "SK", "T", t0 + Duration::from_secs(3600));
        assert!(c.fresh_at(t0));
        assert!(c.fresh_at(t0 + Duration::from_secs(3600 - 301)));
        assert!(!c.fresh_at(t0 + Duration::from_secs(3600 - 300)));
        assert!(!c.fresh_at(t0 + Duration::from_secs(7200)));
    }
}
