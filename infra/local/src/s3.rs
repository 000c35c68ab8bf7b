//! The S3 stand-in: s3s-fs (an S3 server over a folder of the data directory) behind SigV4
//! with the credentials the credentials-provider stand-in hands out, plus what S3 bucket
//! notifications do in AWS: after each successful `PutObject` and
//! `CompleteMultipartUpload`, an `ObjectCreated:*` event record (the shape S3 sends to
//! Lambda) is handed to the upload-completed handler ([`crate::rules`]).
//!
//! s3s-fs 0.14.1 has no event API, so [`NotifyingFs`] implements the `S3` trait by forwarding
//! the operations an S3 client of this system uses to `s3s_fs::FileSystem` and emitting the
//! event after the two that create objects.

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// An object was created (what an S3 event record says about it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// `ObjectCreated:Put` or `ObjectCreated:CompleteMultipartUpload`.
    pub event_name: &'static str,
    /// Bucket.
    pub bucket: String,
    /// Key (not encoded).
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: Option<String>,
    /// Increasing per process start and event, hex, like S3's `sequencer`.
    pub sequencer: String,
}

impl Created {
    /// The S3 event (one record) as S3 delivers it to Lambda: key URL-encoded.
    pub fn event(&self) -> serde_json::Value {
        use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
        const KEEP: &AsciiSet = &NON_ALPHANUMERIC
            .remove(b'/')
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'~');
        let key = utf8_percent_encode(&self.key, KEEP).to_string();
        let now = aws_smithy_types_now();
        serde_json::json!({"Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": now,
            "eventName": self.event_name,
            "s3": {
                "s3SchemaVersion": "1.0",
                "bucket": {"name": self.bucket, "arn": format!("arn:aws:s3:::{}", self.bucket)},
                "object": {"key": key, "size": self.size, "eTag": self.etag, "sequencer": self.sequencer}
            }
        }]})
    }
}

fn aws_smithy_types_now() -> String {
    aws_sdk_s3::primitives::DateTime::from(std::time::SystemTime::now())
        .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default()
}

/// `s3s_fs::FileSystem` that reports created objects on a channel.
pub struct NotifyingFs {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
    events: mpsc::UnboundedSender<Created>,
    seq: AtomicU64,
}

impl std::fmt::Debug for NotifyingFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyingFs")
            .field("root", &self.root)
            .finish()
    }
}

/// The store could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("S3 store at {path}: {message}")]
pub struct StoreOpenError {
    /// Its folder.
    pub path: PathBuf,
    /// What s3s-fs said.
    pub message: String,
}

impl NotifyingFs {
    /// Serves the folder `root` (each sub-folder is a bucket); created objects go to `events`.
    pub fn new(
        root: PathBuf,
        events: mpsc::UnboundedSender<Created>,
    ) -> Result<Self, StoreOpenError> {
        let fs = s3s_fs::FileSystem::new(&root).map_err(|e| StoreOpenError {
            path: root.clone(),
            message: format!("{e:?}"),
        })?;
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Ok(Self {
            fs,
            root,
            events,
            seq: AtomicU64::new(start),
        })
    }

    fn created(&self, event_name: &'static str, bucket: &str, key: &str, etag: Option<&ETag>) {
        let size = std::fs::metadata(self.root.join(bucket).join(key))
            .map(|m| m.len())
            .unwrap_or(0);
        let _ = self.events.send(Created {
            event_name,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size,
            etag: etag.map(|e| e.value().trim_matches('"').to_owned()),
            sequencer: format!("{:016X}", self.seq.fetch_add(1, Ordering::SeqCst)),
        });
    }
}

#[async_trait::async_trait]
impl S3 for NotifyingFs {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.fs.get_bucket_location(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.fs.get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.fs.head_object(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.fs.delete_object(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.fs.list_objects(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.fs.list_objects_v2(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.fs.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.fs.upload_part(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.fs.list_parts(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.fs.abort_multipart_upload(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let out = self.fs.put_object(req).await?;
        self.created(
            "ObjectCreated:Put",
            &bucket,
            &key,
            out.output.e_tag.as_ref(),
        );
        Ok(out)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let out = self.fs.complete_multipart_upload(req).await?;
        self.created(
            "ObjectCreated:CompleteMultipartUpload",
            &bucket,
            &key,
            out.output.e_tag.as_ref(),
        );
        Ok(out)
    }
}

/// Serves `service` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, service: s3s::service::S3Service) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let conn = http
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
