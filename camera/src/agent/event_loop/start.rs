//! Start-up: the agent's parts built once from the configuration, the work left by the last
//! stop resumed (unfinished uploads queued, unacknowledged final statuses queued first), the
//! upload worker started and the handlers registered.

use super::{Io, Session, Settings, Shutdown};
use crate::agent::faults::Faults;
use crate::agent::remote_ctl::RemoteCtl;
use crate::agent::worker::{self, Worker};
use crate::agent::{AgentError, OutboxHandle};
use crate::config::Config;
use crate::creds::{CachedCredentials, IotCredentials};
use crate::dispatch::{self, Dispatcher};
use crate::feed_link::FeedTally;
use crate::journal::{Entry, Journal, Phase};
use crate::machine;
use crate::mqtt;
use crate::s3::S3;
use crate::upload::Uploader;
use anpr_protocol::shadow as shadow_msg;
use anpr_protocol::{FileStatus, clock, topics};
use rumqttc::v5::AsyncClient;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// Builds the parts, resumes the journal's unfinished work, starts the worker.
pub(super) fn start(
    cfg: Config,
    outbox: OutboxHandle,
    shutdown: Shutdown,
    running: watch::Sender<Config>,
    feed_counts: Arc<FeedTally>,
) -> Result<(Io, Session), AgentError> {
    let cam = cfg.camera();
    std::fs::create_dir_all(&cfg.state_dir).map_err(|source| AgentError::Media {
        path: cfg.state_dir.clone(),
        source,
    })?;
    let rc = RemoteCtl::open(cfg.clone(), running);
    let file = cfg;
    let cfg = rc.running().clone();
    std::fs::read_dir(&cfg.media_dir).map_err(|source| AgentError::Media {
        path: cfg.media_dir.clone(),
        source,
    })?;
    let journal = Journal::open(&cfg.state_dir)?;
    let pruned = journal.prune(clock::now_secs(), 8 * 24 * 3600);
    let opts = mqtt::options(&cfg)?;
    let c = &cfg.credentials;
    let ca = mqtt::read(c.ca_file.as_ref().unwrap_or(&cfg.mqtt.ca_file))?;
    let creds = IotCredentials::new(
        &c.host,
        c.port,
        &c.role_alias,
        cam.as_str(),
        &ca,
        &mqtt::read(&cfg.mqtt.cert_file)?,
        &mqtt::read(&cfg.mqtt.key_file)?,
    )?;
    let s3 = S3::new(&cfg.upload, CachedCredentials::new(creds))?;
    let uploader = Uploader::new(s3, cfg.upload.clone());
    let (client, ev) = AsyncClient::new(opts, 64);
    let faults = Arc::new(Faults::default());
    let mut io = Io {
        cam: cam.clone(),
        client,
        ev,
        shutdown,
        worker: Arc::new(Worker {
            cfg: cfg.clone(),
            journal: journal.clone(),
            uploader,
            faults: faults.clone(),
        }),
        outbox,
        faults,
        feed_counts,
        rc,
        dispatcher: Dispatcher::new(cam.clone()),
        jobs: None,
        statuses: mpsc::unbounded_channel().1,
        stop_uploads: watch::channel(false).0,
        worker_task: None,
        subs_file: cfg.state_dir.join("subscriptions"),
        plate_topic: cfg.plate_topic(),
        started: Instant::now(),
        t0: tokio::time::Instant::now(),
        cfg,
    };
    if let Some(mut ob) = io.lock_outbox() {
        ob.set_batching(
            io.cfg.outbox.batch_max_reads as usize,
            u64::from(io.cfg.outbox.batch_max_age_secs) * 1000,
        );
    }
    tracing::info!(camera = %cam, pruned, "agent starting");

    // Work left over from before a restart: resume it first.
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel::<Entry>();
    let (leftover, corrupt) = journal.unfinished()?;
    for e in corrupt {
        io.faults.error("skipping corrupt journal entry", &e);
    }
    for mut entry in leftover {
        match machine::recover(&entry.phase, &entry.req, clock::now_secs()) {
            Some(status) => {
                entry.phase = Phase::Done {
                    status,
                    answered: false,
                };
                if let Err(e) = journal.put(&entry) {
                    io.faults.error("journal write failed", &e);
                }
            }
            None => {
                tracing::info!(id = %entry.req.id, "resuming request from the journal");
                queue_upload(&jobs_tx, entry, &io.faults);
            }
        }
    }
    // Statuses go out through the loop, once connected, in the order they were decided.
    let (status_tx, status_rx) = mpsc::unbounded_channel::<FileStatus>();
    // Final statuses whose PUBACK did not arrive before the last stop (a kill between the
    // journal write and the acknowledgement) go first; the PUBACK marks them answered.
    match journal.unanswered() {
        Ok(statuses) => {
            for s in statuses {
                tracing::info!(id = %s.id, "final status not acknowledged before the restart: publishing it again");
                // The receiver is in hand: the send cannot fail.
                status_tx.send(s).ok();
            }
        }
        Err(e) => io
            .faults
            .error("journal unreadable: unanswered statuses", &e),
    }
    let (stop_tx, stop) = Shutdown::channel();
    io.worker_task = Some(tokio::spawn(worker::run(
        io.worker.clone(),
        jobs_rx,
        stop,
        status_tx,
    )));
    io.jobs = Some(jobs_tx);
    io.statuses = status_rx;
    io.stop_uploads = stop_tx;

    io.dispatcher.register(
        topics::FILE_REQUEST,
        dispatch::file_request_handler(journal),
    );
    if io.cfg.remote.enabled {
        for suffix in [
            shadow_msg::UPDATE_DELTA,
            shadow_msg::GET_ACCEPTED,
            shadow_msg::GET_REJECTED,
            shadow_msg::UPDATE_REJECTED,
        ] {
            io.dispatcher.register_topic(
                topics::config_shadow(&cam, suffix),
                dispatch::shadow_handler(suffix),
            );
        }
    }
    let mut settings = Settings::new(&io.cfg, io.dispatcher.topics());
    // The trial's deadline is the file's, whatever the remote settings say.
    settings.rollback_ms = file.remote.rollback_secs.saturating_mul(1000);
    let session = Session::new(settings, io.now(), io.rc.in_trial());
    Ok((io, session))
}

/// Hands a request to the worker; a worker gone (it panicked) leaves the request in the
/// journal for the next start.
pub(super) fn queue_upload(jobs: &mpsc::UnboundedSender<Entry>, entry: Entry, faults: &Faults) {
    if let Err(e) = jobs.send(entry) {
        tracing::error!(id = %e.0.req.id, "the upload worker has stopped; the request waits for the next start");
        faults.note("upload worker stopped");
    }
}
