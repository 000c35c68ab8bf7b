//! Uploads to S3 that resume: one PUT below the multipart threshold, multipart above it with
//! the upload id and every confirmed part checkpointed in the journal before the next part is
//! read, so a lost link, a killed process or a reboot re-sends at most the part in flight.
//! Every PUT carries the SHA-256 of its bytes, which S3 verifies (and the multipart object
//! keeps a checksum of checksums). An optional average bandwidth cap paces the parts.

use crate::config::UploadConfig;
use crate::journal::{DonePart, Entry, Journal, JournalError, Multipart, Phase};
use crate::machine::{self, Plan, ProgressGate};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

/// An upload attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Reading the file failed.
    #[error("reading the file: {0}")]
    Read(#[source] std::io::Error),
    /// The journal could not be written (the upload is stopped rather than run unrecorded).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// S3 (or the network, or credentials) failed.
    #[error("S3 {op}: {message}")]
    S3 {
        /// Which call.
        op: &'static str,
        /// The SDK error, rendered with its sources.
        message: String,
        /// The multipart upload is gone (aborted or expired): start over.
        upload_gone: bool,
        /// Credentials could not be obtained.
        no_credentials: bool,
        /// S3 refused the call (`AccessDenied`).
        refused: bool,
    },
    /// The file changed size since the upload started; it is restarted from scratch.
    #[error("the file changed size during the upload")]
    FileChanged,
    /// Asked to stop (shutdown) between two parts; the checkpoint is saved.
    #[error("stopped for shutdown; checkpoint saved")]
    Stopped,
}

fn s3_err<E>(op: &'static str, e: aws_sdk_s3::error::SdkError<E>) -> UploadError
where
    E: std::error::Error + aws_sdk_s3::error::ProvideErrorMetadata + 'static,
{
    let code = e.as_service_error().and_then(|s| s.code()).unwrap_or("");
    let upload_gone = code == "NoSuchUpload";
    let refused = code == "AccessDenied";
    let mut message = format!("{e}");
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    let no_credentials = message.contains("credentials provider");
    UploadError::S3 {
        op,
        message: message.chars().take(400).collect(),
        upload_gone,
        no_credentials,
        refused,
    }
}

/// The identity of the open file (`machine::file_identity`).
fn identity(file: &std::fs::File, size: u64) -> Result<String, UploadError> {
    use std::os::unix::fs::MetadataExt;
    let md = file.metadata().map_err(UploadError::Read)?;
    let mtime_ns = i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec());
    Ok(machine::file_identity(md.dev(), md.ino(), size, mtime_ns))
}

/// The S3 side of the agent: client, bucket and settings.
#[derive(Debug, Clone)]
pub struct Uploader {
    s3: aws_sdk_s3::Client,
    bucket: String,
    cfg: UploadConfig,
    tuning: std::sync::Arc<Tuning>,
}

/// The settings that may change while the agent runs (remote configuration); read at each
/// part, so a new cap applies to the upload in progress.
#[derive(Debug, Default)]
struct Tuning {
    /// Bytes per second, 0 = no cap.
    max_bytes_per_sec: std::sync::atomic::AtomicU64,
    progress_step_pct: std::sync::atomic::AtomicU8,
}

/// What the uploader reports while it works.
pub trait Progress: Send {
    /// `pct` percent of the file is confirmed by S3 (already gated by the configured step).
    fn uploading(&mut self, pct: u8);
    /// Whether to stop at the next part boundary (shutdown).
    fn should_stop(&self) -> bool;
}

impl Uploader {
    /// An uploader with its S3 client.
    pub fn new(s3: aws_sdk_s3::Client, cfg: UploadConfig) -> Self {
        let tuning = Tuning::default();
        let me = Self {
            s3,
            bucket: cfg.bucket.clone(),
            cfg,
            tuning: std::sync::Arc::new(tuning),
        };
        me.tune(me.cfg.max_bytes_per_sec, me.cfg.progress_step_pct);
        me
    }

    /// Changes the rate cap (`None`: no cap) and the progress step of this uploader and its
    /// clones, the upload in progress included.
    pub fn tune(&self, max_bytes_per_sec: Option<u64>, progress_step_pct: u8) {
        use std::sync::atomic::Ordering::Relaxed;
        self.tuning
            .max_bytes_per_sec
            .store(max_bytes_per_sec.unwrap_or(0), Relaxed);
        self.tuning
            .progress_step_pct
            .store(progress_step_pct.clamp(1, 100), Relaxed);
    }

    fn progress_step(&self) -> u8 {
        self.tuning
            .progress_step_pct
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The S3 client for the configured region/endpoint, with the given credentials provider.
    pub fn client(
        cfg: &UploadConfig,
        creds: impl aws_credential_types::provider::ProvideCredentials + 'static,
    ) -> aws_sdk_s3::Client {
        let mut b = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(cfg.region.clone()))
            .credentials_provider(creds)
            .force_path_style(cfg.force_path_style)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            );
        if let Some(url) = &cfg.endpoint_url {
            b = b.endpoint_url(url);
        }
        aws_sdk_s3::Client::from_conf(b.build())
    }

    /// Uploads `file` (of `size` bytes at open) for the journal entry `entry` to `key`,
    /// resuming from the entry's checkpoint. Returns the size uploaded.
    pub async fn upload(
        &self,
        journal: &Journal,
        entry: &mut Entry,
        file: &mut std::fs::File,
        size: u64,
        key: &str,
        progress: &mut dyn Progress,
    ) -> Result<u64, UploadError> {
        // A checkpoint for another file (another size, or a replacement of the same size) is
        // stale: start over.
        let file_id = identity(file, size)?;
        let resumed = match &entry.phase {
            Phase::Uploading {
                size: s,
                multipart: Some(m),
            } if *s == size && machine::can_resume(m.file_id.as_deref(), &file_id) => {
                Some(m.clone())
            }
            _ => None,
        };
        match machine::plan(
            size,
            self.cfg.multipart_threshold_bytes,
            self.cfg.part_size_bytes,
            resumed.as_ref().map(|m| m.part_size),
        ) {
            Plan::Single => {
                entry.phase = Phase::Uploading {
                    size,
                    multipart: None,
                };
                journal.put(entry)?;
                self.put_single(file, size, key).await?;
                Ok(size)
            }
            Plan::Multipart { part_size, parts } => {
                let mp = match resumed {
                    Some(m) => m,
                    None => {
                        let out = self
                            .s3
                            .create_multipart_upload()
                            .bucket(&self.bucket)
                            .key(key)
                            .checksum_algorithm(ChecksumAlgorithm::Sha256)
                            .send()
                            .await
                            .map_err(|e| s3_err("CreateMultipartUpload", e))?;
                        let m = Multipart {
                            upload_id: out.upload_id().unwrap_or_default().to_owned(),
                            part_size,
                            parts: Vec::new(),
                            file_id: Some(file_id),
                        };
                        entry.phase = Phase::Uploading {
                            size,
                            multipart: Some(m.clone()),
                        };
                        journal.put(entry)?;
                        m
                    }
                };
                let r = self
                    .multipart(journal, entry, file, size, key, mp, parts, progress)
                    .await;
                if let Err(UploadError::S3 {
                    upload_gone: true, ..
                }) = &r
                {
                    // Start over next attempt.
                    entry.phase = Phase::Accepted;
                    journal.put(entry)?;
                }
                r
            }
        }
    }

    async fn put_single(
        &self,
        file: &mut std::fs::File,
        size: u64,
        key: &str,
    ) -> Result<(), UploadError> {
        let body = read_range(file, 0, size)?;
        self.pace(body.len()).await;
        let sha = sha256_b64(&body);
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_sha256(sha)
            .content_length(i64::try_from(body.len()).unwrap_or(i64::MAX))
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_err("PutObject", e))?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn multipart(
        &self,
        journal: &Journal,
        entry: &mut Entry,
        file: &mut std::fs::File,
        size: u64,
        key: &str,
        mut mp: Multipart,
        parts: u32,
        progress: &mut dyn Progress,
    ) -> Result<u64, UploadError> {
        let done_nums: Vec<i32> = mp.parts.iter().map(|p| p.n).collect();
        let done_bytes = |mp: &Multipart| -> u64 {
            mp.parts
                .iter()
                .map(|p| machine::part_range(size, mp.part_size, p.n).1)
                .sum()
        };
        let mut gate = ProgressGate::new(
            self.progress_step(),
            machine::percent(done_bytes(&mp), size),
        );
        for n in machine::parts_to_send(parts, &done_nums) {
            if progress.should_stop() {
                return Err(UploadError::Stopped);
            }
            let (off, len) = machine::part_range(size, mp.part_size, n);
            let body = read_range(file, off, len)?;
            self.pace(body.len()).await;
            let sha = sha256_b64(&body);
            let out = self
                .s3
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&mp.upload_id)
                .part_number(n)
                .checksum_sha256(&sha)
                .content_length(i64::try_from(len).unwrap_or(i64::MAX))
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| s3_err("UploadPart", e))?;
            mp.parts.push(DonePart {
                n,
                etag: out.e_tag().unwrap_or_default().to_owned(),
                sha256: sha,
            });
            entry.phase = Phase::Uploading {
                size,
                multipart: Some(mp.clone()),
            };
            journal.put(entry)?;
            if let Some(pct) = gate.update(done_bytes(&mp), size) {
                progress.uploading(pct);
            }
        }
        let mut parts_sorted = mp.parts.clone();
        parts_sorted.sort_by_key(|p| p.n);
        parts_sorted.dedup_by_key(|p| p.n);
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts_sorted
                    .iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(p.n)
                            .e_tag(&p.etag)
                            .checksum_sha256(&p.sha256)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        self.s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&mp.upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(|e| s3_err("CompleteMultipartUpload", e))?;
        Ok(size)
    }

    /// Sleeps so that the average rate stays under the cap (bytes about to be sent).
    async fn pace(&self, bytes: usize) {
        let cap = self
            .tuning
            .max_bytes_per_sec
            .load(std::sync::atomic::Ordering::Relaxed);
        if cap == 0 {
            return;
        }
        let secs = u64::try_from(bytes).unwrap_or(u64::MAX) as f64 / cap.max(1) as f64;
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(secs.min(3600.0))).await;
        tracing::debug!(
            waited_ms = start.elapsed().as_millis() as u64,
            "bandwidth cap"
        );
    }
}

/// Reads `len` bytes at `off`; a file that shrank is reported as changed.
fn read_range(file: &mut std::fs::File, off: u64, len: u64) -> Result<Vec<u8>, UploadError> {
    file.seek(SeekFrom::Start(off)).map_err(UploadError::Read)?;
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.by_ref()
        .take(len)
        .read_to_end(&mut buf)
        .map_err(UploadError::Read)?;
    if u64::try_from(buf.len()).unwrap_or(0) != len {
        return Err(UploadError::FileChanged);
    }
    Ok(buf)
}

/// SHA-256 of `b`, base64 (the form S3's `x-amz-checksum-sha256` takes).
pub fn sha256_b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b))
}
