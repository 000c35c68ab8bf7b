//! Uploads to S3 that resume: one PUT below the multipart threshold, multipart above it with
//! the upload id and every confirmed part checkpointed in the journal before the next part is
//! read, so a lost link, a killed process or a reboot re-sends at most the part in flight.
//! Every PUT carries the SHA-256 of its bytes, which S3 verifies (and the multipart object
//! keeps a checksum of checksums). A part is streamed from the file, never held whole in
//! memory: read once to hash it, then again while it is sent (a difference means the file
//! changed). A resumed upload is first checked against S3's own list of its parts. An optional
//! average bandwidth cap paces the parts.

use crate::config::UploadSection;
use crate::journal::{DonePart, Entry, Journal, JournalError, Multipart, Phase};
use crate::machine::{self, Plan, ProgressGate};
use crate::s3::{self, Body, CompletePart, ListedPart, S3, S3Error, Verdict};
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
    #[error("S3 {op}: {source}")]
    S3 {
        /// Which call.
        op: &'static str,
        /// What failed.
        #[source]
        source: S3Error,
    },
    /// The file changed size since the upload started; it is restarted from scratch.
    #[error("the file changed during the upload")]
    FileChanged,
    /// Asked to stop (shutdown) between two parts; the checkpoint is saved.
    #[error("stopped for shutdown; checkpoint saved")]
    Stopped,
}

impl UploadError {
    /// What S3's answer means for the next attempt ([`Verdict::Retry`] for anything not S3's).
    pub fn verdict(&self) -> Verdict {
        match self {
            Self::S3 { source, .. } => source.verdict(),
            _ => Verdict::Retry,
        }
    }

    /// Credentials could not be obtained.
    pub fn no_credentials(&self) -> bool {
        matches!(
            self,
            Self::S3 {
                source: S3Error::Credentials(_),
                ..
            }
        )
    }
}

/// Maps a failed call `op`; a file that changed while read is [`UploadError::FileChanged`].
fn s3_err(op: &'static str) -> impl FnOnce(S3Error) -> UploadError {
    move |e| match e {
        S3Error::FileChanged => UploadError::FileChanged,
        S3Error::Read(e) => UploadError::Read(e),
        source => UploadError::S3 { op, source },
    }
}

/// The identity of the open file (`machine::file_identity`).
fn identity(file: &std::fs::File, size: u64) -> Result<String, UploadError> {
    use std::os::unix::fs::MetadataExt;
    let md = file.metadata().map_err(UploadError::Read)?;
    let mtime_ns = i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec());
    Ok(machine::file_identity(md.dev(), md.ino(), size, mtime_ns))
}

/// The S3 side of the agent: client and settings.
#[derive(Debug, Clone)]
pub struct Uploader {
    s3: std::sync::Arc<S3>,
    cfg: UploadSection,
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
    pub fn new(s3: S3, cfg: UploadSection) -> Self {
        let tuning = Tuning::default();
        let me = Self {
            s3: std::sync::Arc::new(s3),
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
        if resumed.is_none()
            && let Phase::Uploading {
                multipart: Some(stale),
                ..
            } = &entry.phase
        {
            // A checkpoint for another file: its parts are of no use, let S3 drop them.
            self.abort(key, &stale.upload_id).await;
        }
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
                    Some(m) => self.reconcile(journal, entry, size, key, m).await,
                    None => {
                        let upload_id = self
                            .s3
                            .create_multipart(key)
                            .await
                            .map_err(s3_err("CreateMultipartUpload"))?;
                        let m = Multipart {
                            upload_id,
                            part_size,
                            parts: Vec::new(),
                            file_id: Some(file_id),
                        };
                        entry.phase = Phase::Uploading {
                            size,
                            multipart: Some(m.clone()),
                        };
                        journal.put(entry)?;
                        Ok(m)
                    }
                };
                let mp = match mp {
                    Ok(m) => m,
                    Err(e) => return self.failed(journal, entry, key, None, e).await,
                };
                let upload_id = mp.upload_id.clone();
                let r = self
                    .multipart(journal, entry, file, size, key, mp, parts, progress)
                    .await;
                match r {
                    Err(e) => self.failed(journal, entry, key, Some(&upload_id), e).await,
                    ok => ok,
                }
            }
        }
    }

    /// A resumed multipart upload, checked against what S3 holds (ListParts): a part S3
    /// confirmed but the journal missed (a stop between S3's answer and the checkpoint) is
    /// kept, a part the journal has but S3 does not (or under another ETag) is sent again. An
    /// upload S3 no longer has is an error ([`Verdict::StartOver`]).
    async fn reconcile(
        &self,
        journal: &Journal,
        entry: &mut Entry,
        size: u64,
        key: &str,
        mut m: Multipart,
    ) -> Result<Multipart, UploadError> {
        let listed = self
            .s3
            .list_parts(key, &m.upload_id)
            .await
            .map_err(s3_err("ListParts"))?;
        let merged = merge_parts(&m.parts, &listed, |n| {
            machine::part_range(size, m.part_size, n).1
        });
        if merged != m.parts {
            tracing::info!(
                journal = m.parts.len(),
                s3 = listed.len(),
                kept = merged.len(),
                "resumed upload checked against S3's parts"
            );
            m.parts = merged;
            entry.phase = Phase::Uploading {
                size,
                multipart: Some(m.clone()),
            };
            journal.put(entry)?;
        }
        Ok(m)
    }

    /// After a failed multipart attempt: a gone upload (or a file that changed) starts over
    /// at the next attempt, the latter's parts aborted so S3 does not keep them.
    async fn failed(
        &self,
        journal: &Journal,
        entry: &mut Entry,
        key: &str,
        upload_id: Option<&str>,
        e: UploadError,
    ) -> Result<u64, UploadError> {
        let start_over = matches!(e, UploadError::FileChanged) || e.verdict() == Verdict::StartOver;
        if start_over {
            if let (UploadError::FileChanged, Some(id)) = (&e, upload_id) {
                self.abort(key, id).await;
            }
            entry.phase = Phase::Accepted;
            journal.put(entry)?;
        }
        Err(e)
    }

    /// AbortMultipartUpload, best effort (S3's lifecycle rule drops what is left anyway).
    async fn abort(&self, key: &str, upload_id: &str) {
        match self.s3.abort(key, upload_id).await {
            Ok(()) => tracing::info!(%key, "stale multipart upload aborted"),
            Err(e) => tracing::warn!(%key, error = %e, "stale multipart upload not aborted"),
        }
    }

    async fn put_single(
        &self,
        file: &mut std::fs::File,
        size: u64,
        key: &str,
    ) -> Result<(), UploadError> {
        let sha = s3::sha256_of(file, 0, size).map_err(s3_err("PutObject"))?;
        self.pace(size).await;
        self.s3
            .put_object(
                key,
                Body::File {
                    file,
                    off: 0,
                    len: size,
                    sha256: &sha,
                },
            )
            .await
            .map_err(s3_err("PutObject"))
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
            let sha = s3::sha256_of(file, off, len).map_err(s3_err("UploadPart"))?;
            self.pace(len).await;
            let etag = self
                .s3
                .upload_part(
                    key,
                    &mp.upload_id,
                    n,
                    Body::File {
                        file,
                        off,
                        len,
                        sha256: &sha,
                    },
                )
                .await
                .map_err(s3_err("UploadPart"))?;
            mp.parts.push(DonePart {
                n,
                etag,
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
        let parts: Vec<CompletePart<'_>> = parts_sorted
            .iter()
            .map(|p| CompletePart {
                n: p.n,
                etag: &p.etag,
                sha256: &p.sha256,
            })
            .collect();
        self.s3
            .complete(key, &mp.upload_id, &parts)
            .await
            .map_err(s3_err("CompleteMultipartUpload"))?;
        Ok(size)
    }

    /// Sleeps so that the average rate stays under the cap (bytes about to be sent).
    async fn pace(&self, bytes: u64) {
        let cap = self
            .tuning
            .max_bytes_per_sec
            .load(std::sync::atomic::Ordering::Relaxed);
        if cap == 0 {
            return;
        }
        let secs = bytes as f64 / cap.max(1) as f64;
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(secs.min(3600.0))).await;
        tracing::debug!(
            waited_ms = start.elapsed().as_millis() as u64,
            "bandwidth cap"
        );
    }
}

/// The journal's parts after comparing them with S3's listing: a journal part stays if S3
/// lists it under the same ETag (or without one: some stores list none); a listed part the
/// journal lacks is added if S3 gave its ETag and SHA-256 and it has the expected size
/// (`part_len(n)`). Sorted by part number.
pub fn merge_parts(
    journal: &[DonePart],
    listed: &[ListedPart],
    part_len: impl Fn(i32) -> u64,
) -> Vec<DonePart> {
    let mut out: Vec<DonePart> = journal
        .iter()
        .filter(|p| {
            listed
                .iter()
                .any(|l| l.n == p.n && (l.etag.is_empty() || l.etag == p.etag))
        })
        .cloned()
        .collect();
    for l in listed {
        if !out.iter().any(|p| p.n == l.n)
            && !l.etag.is_empty()
            && !l.sha256.is_empty()
            && l.size == part_len(l.n)
        {
            out.push(DonePart {
                n: l.n,
                etag: l.etag.clone(),
                sha256: l.sha256.clone(),
            });
        }
    }
    out.sort_by_key(|p| p.n);
    out.dedup_by_key(|p| p.n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(n: i32, etag: &str) -> DonePart {
        DonePart {
            n,
            etag: etag.into(),
            sha256: format!("sha{n}"),
        }
    }

    fn listed(n: i32, etag: &str, sha: &str, size: u64) -> ListedPart {
        ListedPart {
            n,
            etag: etag.into(),
            sha256: sha.into(),
            size,
        }
    }

    #[test]
    fn a_part_s3_confirmed_but_the_journal_missed_is_kept_not_sent_again() {
        let merged = merge_parts(
            &[done(1, "\"a\"")],
            &[
                listed(1, "\"a\"", "sha1", 10),
                listed(2, "\"b\"", "sha2", 10),
            ],
            |_| 10,
        );
        assert_eq!(merged, vec![done(1, "\"a\""), done(2, "\"b\"")]);
    }

    #[test]
    fn a_part_s3_lacks_is_sent_again_and_s3s_later_copy_of_a_part_replaces_the_journals() {
        let merged = merge_parts(
            &[done(1, "\"a\""), done(2, "\"b\""), done(3, "\"c\"")],
            &[
                listed(1, "\"a\"", "sha1", 10),
                listed(2, "\"x\"", "shax", 10),
            ],
            |_| 10,
        );
        let x = DonePart {
            n: 2,
            etag: "\"x\"".into(),
            sha256: "shax".into(),
        };
        assert_eq!(merged, vec![done(1, "\"a\""), x]);
        // Without S3's checksum that copy cannot be completed: part 2 is sent again.
        let merged = merge_parts(
            &[done(1, "\"a\""), done(2, "\"b\"")],
            &[listed(1, "\"a\"", "sha1", 10), listed(2, "\"x\"", "", 10)],
            |_| 10,
        );
        assert_eq!(merged, vec![done(1, "\"a\"")]);
    }

    #[test]
    fn a_listed_part_without_etag_checksum_or_of_another_size_is_not_adopted() {
        let merged = merge_parts(
            &[done(1, "\"a\"")],
            &[
                // A store that lists parts without ETags: the journal's part stays.
                listed(1, "", "", 10),
                listed(2, "", "sha2", 10),
                listed(3, "\"c\"", "", 10),
                listed(4, "\"d\"", "sha4", 7),
            ],
            |_| 10,
        );
        assert_eq!(merged, vec![done(1, "\"a\"")]);
    }
}
