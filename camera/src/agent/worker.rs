//! The upload worker: serves requests one at a time in its own task, retries an attempt that
//! failed with back-off, finishes a request with its final status journaled, and stops at a
//! part boundary (checkpoint saved) when told to. Statuses go back to the loop, the only
//! publisher.

use super::faults::Faults;
use super::shutdown::Shutdown;
use crate::config::Config;
use crate::journal::{Entry, Journal, Phase};
use crate::machine;
use crate::media;
use crate::s3::Verdict;
use crate::upload::{Progress, UploadError, Uploader};
use anpr_protocol::{FileStatus, FileStatusKind, ReasonCode, RequestId, clock, topics};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the worker needs, shared with the loop (which tunes the uploader on a remote change).
#[derive(Debug)]
pub struct Worker {
    /// The configuration at start (the media directory, the upload settings).
    pub cfg: Config,
    /// The request journal.
    pub journal: Journal,
    /// The uploader.
    pub uploader: Uploader,
    /// Where errors are counted for the health report.
    pub faults: Arc<Faults>,
}

/// Where statuses go: the loop's queue.
type Statuses = mpsc::UnboundedSender<FileStatus>;

/// Serves `jobs` until the queue closes or `shutdown` is asked for.
pub async fn run(
    w: Arc<Worker>,
    mut jobs: mpsc::UnboundedReceiver<Entry>,
    shutdown: Shutdown,
    statuses: Statuses,
) {
    while let Some(entry) = jobs.recv().await {
        if shutdown.is_shutdown() {
            break;
        }
        w.serve(entry, shutdown.clone(), &statuses).await;
    }
}

/// Sends a status to the loop; the loop gone means the agent is stopping, and the journal
/// holds the final ones for the next start.
fn send(statuses: &Statuses, status: FileStatus) {
    if let Err(e) = statuses.send(status) {
        tracing::debug!(id = %e.0.id, "status not sent: the loop has stopped");
    }
}

struct StatusProgress {
    id: RequestId,
    shutdown: Shutdown,
    statuses: Statuses,
}

impl Progress for StatusProgress {
    fn uploading(&mut self, pct: u8) {
        send(
            &self.statuses,
            FileStatus {
                id: self.id.clone(),
                kind: FileStatusKind::Uploading { pct },
            },
        );
    }
    fn should_stop(&self) -> bool {
        self.shutdown.is_shutdown()
    }
}

impl Worker {
    fn journal(&self, entry: &Entry) {
        if let Err(e) = self.journal.put(entry) {
            self.faults.error("journal write failed", &e);
        }
    }

    fn finish(&self, statuses: &Statuses, mut entry: Entry, status: FileStatusKind) {
        entry.phase = Phase::Done {
            status: status.clone(),
            answered: false,
        };
        self.journal(&entry);
        send(
            statuses,
            FileStatus {
                id: entry.req.id,
                kind: status,
            },
        );
    }

    async fn serve(&self, mut entry: Entry, mut shutdown: Shutdown, statuses: &Statuses) {
        let id = entry.req.id.clone();
        let cam = self.cfg.camera();
        let key = topics::upload_key(&cam, &id, &entry.req.file);
        let mut attempt: u32 = 0;
        let mut restarted = false;
        loop {
            // Never start an upload for a request that expired while it waited.
            if let Some(status) = machine::recover(&entry.phase, &entry.req, clock::now_secs()) {
                tracing::info!(%id, "request expired before its upload started");
                return self.finish(statuses, entry, status);
            }
            let mut resolved = match media::resolve(&self.cfg.media_dir, &entry.req.file) {
                Ok(r) => r,
                Err(reason) => {
                    tracing::warn!(%id, file = %entry.req.file, reason = reason.as_str(), "request not served");
                    let kind = match reason {
                        ReasonCode::ForbiddenPath | ReasonCode::NotRegularFile => {
                            FileStatusKind::Rejected { reason }
                        }
                        _ => FileStatusKind::Failed { reason },
                    };
                    return self.finish(statuses, entry, kind);
                }
            };
            if let Some(max) = self.cfg.upload.max_file_bytes
                && resolved.size > max
            {
                let reason = ReasonCode::TooLarge;
                return self.finish(statuses, entry, FileStatusKind::Failed { reason });
            }
            let mut progress = StatusProgress {
                id: id.clone(),
                shutdown: shutdown.clone(),
                statuses: statuses.clone(),
            };
            let started = Instant::now();
            let resumed = matches!(
                entry.phase,
                Phase::Uploading {
                    multipart: Some(_),
                    ..
                }
            );
            let r = self
                .uploader
                .upload(
                    &self.journal,
                    &mut entry,
                    &mut resolved.file,
                    resolved.size,
                    &key,
                    &mut progress,
                )
                .await;
            match r {
                Ok(size) => {
                    tracing::info!(%id, size, secs = started.elapsed().as_secs_f32(), %key, "uploaded");
                    return self.finish(statuses, entry, FileStatusKind::Uploaded { size });
                }
                Err(UploadError::Stopped) => {
                    tracing::info!(%id, "upload checkpointed for shutdown");
                    return;
                }
                Err(UploadError::FileChanged) => {
                    tracing::warn!(%id, "file changed during upload; starting over");
                    entry.phase = Phase::Accepted;
                    self.journal(&entry);
                }
                Err(e)
                    if e.verdict() == Verdict::Refused
                        && machine::start_afresh(resumed, true, restarted) =>
                {
                    tracing::warn!(%id, "resumed upload refused by S3; starting it afresh");
                    restarted = true;
                    entry.phase = Phase::Accepted;
                    self.journal(&entry);
                }
                Err(e) => {
                    {
                        let chain = super::faults::Chain(&e);
                        tracing::warn!(%id, error = %chain, attempt, "upload attempt failed; will resume");
                        self.faults.note(chain);
                    }
                    let no_creds = e.no_credentials();
                    if matches!(e, UploadError::Journal(_) | UploadError::Read(_)) {
                        let reason = ReasonCode::IoError;
                        return self.finish(statuses, entry, FileStatusKind::Failed { reason });
                    }
                    attempt += 1;
                    // Trying again cannot help (no such bucket…): fail now, not after every
                    // attempt.
                    if attempt >= self.cfg.upload.max_attempts || e.verdict() == Verdict::GiveUp {
                        let reason = if no_creds {
                            ReasonCode::NoCredentials
                        } else {
                            ReasonCode::UploadFailed
                        };
                        return self.finish(statuses, entry, FileStatusKind::Failed { reason });
                    }
                    let delay = machine::backoff_ms(
                        self.cfg.upload.retry_initial_secs.saturating_mul(1000),
                        self.cfg.upload.retry_max_secs.saturating_mul(1000),
                        attempt - 1,
                        rand::random::<f64>(),
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                        _ = shutdown.recv() => return,
                    }
                }
            }
        }
    }
}
