//! Signing: the bucket's URLs from the configuration and a call signed by `rusty-s3` into the
//! request the HTTP client sends.

use crate::config::UploadSection;
use crate::creds::Credentials;
use crate::tls::TlsError;
use rusty_s3::{Bucket, Method, UrlStyle};

/// Lifetime of a request's signature: it is signed just before it is sent.
const SIGNATURE_SECS: u64 = 900;

/// A signed request, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// HTTP method.
    pub method: &'static str,
    /// Path and query (the presigned URL's).
    pub target: String,
    /// `Host` header value.
    pub host: String,
    /// Headers covered by the signature, sent as they are.
    pub headers: Vec<(&'static str, String)>,
}

impl Signed {
    /// The request head for a body of `len` bytes.
    pub fn head(&self, len: u64) -> String {
        let mut h = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            self.method, self.target, self.host
        );
        for (k, v) in &self.headers {
            h.push_str(k);
            h.push_str(": ");
            h.push_str(v);
            h.push_str("\r\n");
        }
        h.push_str(&format!("Content-Length: {len}\r\n\r\n"));
        h
    }
}

/// The bucket's URLs from the configuration: the AWS endpoint of the region unless
/// `endpoint_url` is set; virtual-hosted unless `force_path_style`.
pub fn bucket(cfg: &UploadSection) -> Result<Bucket, S3SetupError> {
    let endpoint = cfg
        .endpoint_url
        .clone()
        .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", cfg.region));
    let url = endpoint
        .parse()
        .map_err(|e| S3SetupError::Endpoint(format!("{endpoint}: {e}")))?;
    let style = if cfg.force_path_style {
        UrlStyle::Path
    } else {
        UrlStyle::VirtualHost
    };
    Bucket::new(url, style, cfg.bucket.clone(), cfg.region.clone())
        .map_err(|e| S3SetupError::Endpoint(format!("{endpoint}: {e:?}")))
}

/// The S3 client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum S3SetupError {
    /// The endpoint (or the bucket name in a virtual-hosted URL) is not usable.
    #[error("upload endpoint {0}")]
    Endpoint(String),
    /// The CA could not be read or used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// `upload.ca_file` could not be read.
    #[error("cannot read upload.ca_file {path}: {source}")]
    Ca {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Signs a call to `key` at `now` with `creds`. `query` and `headers` (lowercase names) are
/// sorted here.
pub fn sign(
    bucket: &Bucket,
    creds: &Credentials,
    now: jiff::Timestamp,
    method: Method,
    key: &str,
    mut query: Vec<(&'static str, String)>,
    mut headers: Vec<(&'static str, String)>,
) -> Signed {
    query.sort();
    headers.sort();
    let url = rusty_s3::signing::sign(
        &now,
        method,
        bucket.object_url(key),
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token()),
        bucket.region(),
        SIGNATURE_SECS,
        query.iter().map(|(k, v)| (*k, v.as_str())),
        headers.iter().map(|(k, v)| (*k, v.as_str())),
    );
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let mut target = url.path().to_owned();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    Signed {
        method: match method {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
        },
        target,
        host,
        headers,
    }
}
