//! The agent's S3 client: the six calls an upload needs (PutObject, CreateMultipartUpload,
//! UploadPart, ListParts, CompleteMultipartUpload, AbortMultipartUpload) and nothing else.
//!
//! Requests are signed with SigV4 by `rusty-s3` (sans-IO: a presigned URL whose signature also
//! covers the `x-amz-checksum-*` headers, so S3 still verifies every part's SHA-256), sent over
//! one kept-alive connection by the agent's own HTTP client ([`crate::http`]) with a part's
//! bytes streamed from the file, and their XML answers read by the few lines below. Path-style
//! URLs at a custom endpoint (moto, S3-compatible stores) and virtual-hosted ones at AWS, as
//! configured. Every failure is classified ([`Verdict`]): retry, start the upload over, or
//! give up.

use crate::config::UploadSection;
use crate::creds::{CachedCredentials, CredsError};
use crate::http::{Conn, HttpError, Response};
use crate::tls;
use base64::Engine as _;
use rusty_s3::{Bucket, Method};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod signing;
mod xml;
pub use signing::{S3SetupError, Signed, bucket, sign};
pub use xml::{complete_body, parse_list_parts, parse_upload_id, root, service_error};

/// Largest response body kept (error documents, one page of ListParts).
const MAX_BODY: usize = 256 * 1024;
/// Parts asked per ListParts page (a page stays a few tens of KiB).
pub const LIST_PAGE: u16 = 100;
/// A kept connection older than this is not reused (S3 closes idle ones after about 20 s).
const KEEP_IDLE: Duration = Duration::from_secs(10);
/// File bytes read and sent at a time.
const CHUNK: usize = 64 * 1024;

/// An S3 call failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// No credentials.
    #[error(transparent)]
    Credentials(#[from] CredsError),
    /// Network, TLS or HTTP failure.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// S3 answered with an error document.
    #[error("HTTP {status} {code}: {message}")]
    Service {
        /// HTTP status.
        status: u16,
        /// S3's error code (`NoSuchUpload`, `AccessDenied`…), or `HTTP {status}` without one.
        code: String,
        /// S3's message.
        message: String,
    },
    /// A success answer without what it must hold.
    #[error("unexpected answer: {0}")]
    Malformed(&'static str),
    /// Reading the file failed.
    #[error("reading the file: {0}")]
    Read(#[source] std::io::Error),
    /// The bytes read while sending differ from those hashed before (the file changed).
    #[error("the file changed while it was sent")]
    FileChanged,
}

/// What to do after a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again later (network, throttling, S3's own errors, expired credentials).
    Retry,
    /// The multipart upload is gone (aborted or expired): start a new one.
    StartOver,
    /// S3 refused the call (`AccessDenied`).
    Refused,
    /// Trying again cannot help (the bucket does not exist, the object is too large…).
    GiveUp,
}

impl S3Error {
    /// S3's error code, if S3 answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// What to do next.
    pub fn verdict(&self) -> Verdict {
        match self.code() {
            Some("NoSuchUpload") => Verdict::StartOver,
            Some("AccessDenied") => Verdict::Refused,
            Some(
                "NoSuchBucket" | "InvalidBucketName" | "EntityTooLarge" | "KeyTooLongError"
                | "PermanentRedirect",
            ) => Verdict::GiveUp,
            _ => Verdict::Retry,
        }
    }

    /// Whether the credentials used were refused as expired or unknown: fetch new ones.
    pub fn stale_credentials(&self) -> bool {
        matches!(
            self.code(),
            Some(
                "ExpiredToken"
                    | "TokenRefreshRequired"
                    | "InvalidToken"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "AccessDenied"
            )
        )
    }
}

/// One confirmed part, as S3 lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPart {
    /// Part number (1-based).
    pub n: i32,
    /// Its ETag, as S3 gives it (quotes included); empty if the store gave none.
    pub etag: String,
    /// Its SHA-256, base64; empty if the store gave none.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// One page of ListParts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartsPage {
    /// The parts of this page.
    pub parts: Vec<ListedPart>,
    /// The marker of the next page, if the listing is truncated.
    pub next: Option<u16>,
}

/// A part for CompleteMultipartUpload.
#[derive(Debug, Clone, Copy)]
pub struct CompletePart<'a> {
    /// Part number.
    pub n: i32,
    /// Its ETag.
    pub etag: &'a str,
    /// Its SHA-256, base64.
    pub sha256: &'a str,
}

/// The body of a request.
#[derive(Debug)]
pub enum Body<'a> {
    /// None.
    Empty,
    /// These bytes.
    Bytes(Vec<u8>),
    /// `len` bytes of `file` at `off`, streamed; their SHA-256 (base64) must be `sha256`.
    File {
        /// The file.
        file: &'a mut std::fs::File,
        /// Offset.
        off: u64,
        /// Length.
        len: u64,
        /// Expected SHA-256, base64.
        sha256: &'a str,
    },
}

/// The S3 client: bucket, credentials, connection.
pub struct S3 {
    bucket: Bucket,
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    creds: CachedCredentials,
    conn: tokio::sync::Mutex<Option<(Conn, Instant)>>,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3")
            .field("bucket", &self.bucket.name())
            .field("base_url", &self.bucket.base_url().as_str())
            .finish_non_exhaustive()
    }
}

impl S3 {
    /// A client for the configured bucket, signing with `creds`.
    pub fn new(cfg: &UploadSection, creds: CachedCredentials) -> Result<Self, S3SetupError> {
        let bucket = bucket(cfg)?;
        let base = bucket.base_url();
        let host = base.host_str().unwrap_or_default().to_owned();
        let port = base.port_or_known_default().unwrap_or(443);
        let tls = if base.scheme() == "https" {
            let ca = match &cfg.ca_file {
                Some(path) => std::fs::read(path).map_err(|source| S3SetupError::Ca {
                    path: path.clone(),
                    source,
                })?,
                None => tls::AMAZON_TRUST_SERVICES_ROOTS.to_vec(),
            };
            Some(Arc::new(tls::server_auth_config(&ca)?))
        } else {
            None
        };
        Ok(Self {
            bucket,
            host,
            port,
            tls,
            creds,
            conn: tokio::sync::Mutex::new(None),
        })
    }

    /// PutObject with the body's SHA-256 checked by S3.
    pub async fn put_object(&self, key: &str, body: Body<'_>) -> Result<(), S3Error> {
        let headers = checksum_header(&body);
        self.call(Method::Put, key, Vec::new(), headers, body)
            .await?;
        Ok(())
    }

    /// CreateMultipartUpload with SHA-256 part checksums; returns the upload id.
    pub async fn create_multipart(&self, key: &str) -> Result<String, S3Error> {
        let r = self
            .call(
                Method::Post,
                key,
                vec![("uploads", String::new())],
                vec![("x-amz-checksum-algorithm", "SHA256".into())],
                Body::Empty,
            )
            .await?;
        parse_upload_id(&r.body)
    }

    /// UploadPart `n`; returns its ETag.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        n: i32,
        body: Body<'_>,
    ) -> Result<String, S3Error> {
        let headers = checksum_header(&body);
        let r = self
            .call(
                Method::Put,
                key,
                vec![
                    ("partNumber", n.to_string()),
                    ("uploadId", upload_id.to_owned()),
                ],
                headers,
                body,
            )
            .await?;
        r.header("etag")
            .map(str::to_owned)
            .ok_or(S3Error::Malformed("UploadPart answer without an ETag"))
    }

    /// Every part S3 holds for the upload (all pages of ListParts).
    pub async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<ListedPart>, S3Error> {
        self.list_parts_paged(key, upload_id, LIST_PAGE).await
    }

    /// [`list_parts`](Self::list_parts), asking `page` parts at a time.
    pub async fn list_parts_paged(
        &self,
        key: &str,
        upload_id: &str,
        page: u16,
    ) -> Result<Vec<ListedPart>, S3Error> {
        let mut out = Vec::new();
        let mut marker: Option<u16> = None;
        loop {
            let mut query = vec![
                ("max-parts", page.to_string()),
                ("uploadId", upload_id.to_owned()),
            ];
            if let Some(m) = marker {
                query.push(("part-number-marker", m.to_string()));
            }
            let r = self
                .call(Method::Get, key, query, Vec::new(), Body::Empty)
                .await?;
            let page = parse_list_parts(&r.body)?;
            out.extend(page.parts);
            match page.next {
                // A marker that does not advance would loop forever.
                Some(next) if Some(next) != marker => marker = Some(next),
                _ => return Ok(out),
            }
        }
    }

    /// CompleteMultipartUpload with each part's ETag and SHA-256.
    pub async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletePart<'_>],
    ) -> Result<(), S3Error> {
        let r = self
            .call(
                Method::Post,
                key,
                vec![("uploadId", upload_id.to_owned())],
                Vec::new(),
                Body::Bytes(complete_body(parts).into_bytes()),
            )
            .await?;
        // S3 may answer 200 and still fail the completion: the error is in the body.
        if root(&r.body) == Some("Error") {
            return Err(service_error(200, &r.body));
        }
        Ok(())
    }

    /// AbortMultipartUpload: S3 drops the parts.
    pub async fn abort(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        self.call(
            Method::Delete,
            key,
            vec![("uploadId", upload_id.to_owned())],
            Vec::new(),
            Body::Empty,
        )
        .await?;
        Ok(())
    }

    /// Signs and sends one call; a 2xx answer is returned, anything else is an error. A
    /// request that fails on a reused connection before any answer is sent once more on a new
    /// one; credentials S3 calls expired are dropped, for the next attempt to fetch new ones.
    async fn call(
        &self,
        method: Method,
        key: &str,
        query: Vec<(&'static str, String)>,
        headers: Vec<(&'static str, String)>,
        mut body: Body<'_>,
    ) -> Result<Response, S3Error> {
        let creds = self.creds.get().await?;
        let mut slot = self.conn.lock().await;
        let mut kept = slot
            .take()
            .filter(|(_, at)| at.elapsed() < KEEP_IDLE)
            .map(|(c, _)| c);
        loop {
            let reused = kept.is_some();
            let mut conn = match kept.take() {
                Some(c) => c,
                None => Conn::open(&self.host, self.port, self.tls.as_ref()).await?,
            };
            let signed = sign(
                &self.bucket,
                &creds,
                jiff::Timestamp::now(),
                method,
                key,
                query.clone(),
                headers.clone(),
            );
            match exchange(&mut conn, &signed, &mut body).await {
                Ok(r) => {
                    if r.keep_alive {
                        *slot = Some((conn, Instant::now()));
                    }
                    if (200..300).contains(&r.status) {
                        return Ok(r);
                    }
                    let e = service_error(r.status, &r.body);
                    if e.stale_credentials() {
                        self.creds.forget().await;
                    }
                    return Err(e);
                }
                Err(Failure::BeforeAnswer(_)) if reused => {
                    tracing::debug!("kept S3 connection was closed; sending again on a new one");
                }
                Err(Failure::BeforeAnswer(e) | Failure::Other(e)) => return Err(e),
            }
        }
    }
}

/// A failed exchange: before any byte of the answer (safe to send again), or not.
enum Failure {
    BeforeAnswer(S3Error),
    Other(S3Error),
}

async fn exchange(
    conn: &mut Conn,
    signed: &Signed,
    body: &mut Body<'_>,
) -> Result<Response, Failure> {
    let len = match body {
        Body::Empty => 0,
        Body::Bytes(b) => b.len() as u64,
        Body::File { len, .. } => *len,
    };
    let before = |e: HttpError| Failure::BeforeAnswer(e.into());
    conn.write(signed.head(len).as_bytes())
        .await
        .map_err(before)?;
    match body {
        Body::Empty => {}
        Body::Bytes(b) => conn.write(b).await.map_err(before)?,
        Body::File {
            file,
            off,
            len,
            sha256,
        } => {
            file.seek(SeekFrom::Start(*off))
                .map_err(|e| Failure::Other(S3Error::Read(e)))?;
            let mut h = Sha256::new();
            let mut left = *len;
            let mut buf = vec![0u8; CHUNK];
            while left > 0 {
                let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
                let n = file
                    .read(&mut buf[..want])
                    .map_err(|e| Failure::Other(S3Error::Read(e)))?;
                if n == 0 {
                    // The file shrank: the request cannot be finished.
                    return Err(Failure::Other(S3Error::FileChanged));
                }
                h.update(&buf[..n]);
                conn.write(&buf[..n]).await.map_err(before)?;
                left -= n as u64;
            }
            if b64(&h.finalize()) != **sha256 {
                // S3 refuses the part (its checksum does not match); say why.
                return Err(Failure::Other(S3Error::FileChanged));
            }
        }
    }
    conn.response(MAX_BODY).await.map_err(|e| match e {
        HttpError::Malformed("connection closed before a response") => before(e),
        e => Failure::Other(e.into()),
    })
}

/// The body's SHA-256 for S3 to verify, and the algorithm's name (which S3-compatible stores
/// such as moto need to keep the checksum).
fn checksum_header(body: &Body<'_>) -> Vec<(&'static str, String)> {
    let sha = match body {
        Body::File { sha256, .. } => (*sha256).to_owned(),
        Body::Bytes(b) => b64(&Sha256::digest(b)),
        Body::Empty => return Vec::new(),
    };
    vec![
        ("x-amz-checksum-sha256", sha),
        ("x-amz-sdk-checksum-algorithm", "SHA256".into()),
    ]
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// SHA-256 (base64, the form of `x-amz-checksum-sha256`) of `len` bytes of `file` at `off`,
/// read in pieces; a file that ends sooner changed.
pub fn sha256_of(file: &mut std::fs::File, off: u64, len: u64) -> Result<String, S3Error> {
    file.seek(SeekFrom::Start(off)).map_err(S3Error::Read)?;
    let mut h = Sha256::new();
    let mut left = len;
    let mut buf = vec![0u8; CHUNK];
    while left > 0 {
        let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        let n = file.read(&mut buf[..want]).map_err(S3Error::Read)?;
        if n == 0 {
            return Err(S3Error::FileChanged);
        }
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(b64(&h.finalize()))
}

#[cfg(test)]
mod tests;
