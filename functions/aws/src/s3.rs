//! S3: the [`UrlSigner`] port as SigV4 presigned `GET` URLs of the media bucket
//! (`s3:GetObject` on `media/*` for the signing role; the URL carries the role's authority).

use anpr_core::status::{SignError, UrlSigner};
use aws_sdk_s3::presigning::PresigningConfig;
use std::time::Duration;

/// [`UrlSigner`] presigning `GetObject` on one bucket.
#[derive(Debug, Clone)]
pub struct S3UrlSigner {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3UrlSigner {
    /// Wraps a client built at cold start.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// The bucket signed for.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

impl UrlSigner for S3UrlSigner {
    async fn presign_get(&self, key: &str, valid_for_secs: u64) -> Result<String, SignError> {
        let sign_err = |e: Box<dyn std::error::Error + Send + Sync>| SignError {
            key: key.to_owned(),
            source: e,
        };
        let config = PresigningConfig::expires_in(Duration::from_secs(valid_for_secs))
            .map_err(|e| sign_err(Box::new(e)))?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| sign_err(Box::new(e)))?;
        Ok(req.uri().to_owned())
    }
}
