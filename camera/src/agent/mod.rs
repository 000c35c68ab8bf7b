//! The agent: one MQTT session to AWS IoT Core driven by a pure state machine and a thin I/O
//! loop. It reconnects by the fleet-safe rules of `machine::Reconnect`, subscribes only when
//! the broker has no session, drains the outbox backlog paced from a random start, hands
//! messages to the dispatcher, runs uploads one at a time in a worker task, sends the health
//! report on connect and on its interval, and shuts down gracefully (the upload stops at a
//! part boundary with its checkpoint saved).
//!
//! One way to start it: [`Agent::builder`], then [`Builder::run`] with a [`Shutdown`].
//!
//! # Layout
//! - [`session`]: the session's state, pure: events in, [`session::Action`]s out.
//! - `event_loop`: I/O turned into events and actions into I/O; its `start` builds the parts
//!   and resumes the work left by the last stop.
//! - `remote_ctl`: the remote configuration (device shadow) as the loop runs it.
//! - `worker`: the upload worker.
//! - `publish`: one function per message the agent publishes ([`publish_sync`] is public).
//! - `faults`: errors the agent cannot act on, logged with their sources and counted.
//! - [`shutdown`]: the stop signal.

mod event_loop;
mod faults;
mod publish;
mod remote_ctl;
pub mod session;
pub mod shutdown;
mod worker;

pub use faults::Chain as ErrorChain;
pub use publish::publish_sync;
pub use shutdown::Shutdown;

use crate::config::Config;
use crate::creds::CredsError;
use crate::feed_link::FeedTally;
use crate::journal::JournalError;
use crate::mqtt::MqttSetupError;
use crate::outbox::{Outbox, OutboxConfig, OutboxError};
use crate::s3::S3SetupError;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// MQTT options (TLS material) could not be built.
    #[error(transparent)]
    Mqtt(#[from] MqttSetupError),
    /// The credentials provider client could not be built.
    #[error(transparent)]
    Creds(#[from] CredsError),
    /// The S3 client could not be built.
    #[error(transparent)]
    S3(#[from] S3SetupError),
    /// The journal could not be opened.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The plate-read outbox could not be opened.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The media directory is unusable.
    #[error("media directory {path}: {source}")]
    Media {
        /// The directory.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The plate-read outbox, shared between the producer (the recognition pipeline appends) and
/// the agent (publishes batches, acknowledges them on PUBACK).
pub type OutboxHandle = Arc<Mutex<Outbox>>;

/// Opens the outbox at `{state_dir}/outbox` with the configured batching.
pub fn open_outbox(cfg: &Config) -> Result<OutboxHandle, AgentError> {
    let oc = OutboxConfig {
        batch_max_reads: cfg.outbox.batch_max_reads as usize,
        batch_max_age_ms: u64::from(cfg.outbox.batch_max_age_secs) * 1000,
        ..OutboxConfig::default()
    };
    let ob = Outbox::open(&cfg.state_dir.join("outbox"), oc)?;
    Ok(Arc::new(Mutex::new(ob)))
}

/// The agent; see [`Agent::builder`].
#[derive(Debug)]
pub struct Agent;

impl Agent {
    /// An agent for `cfg`: by default with its own outbox (`{state_dir}/outbox`) and nobody
    /// told the configuration in force.
    pub fn builder(cfg: Config) -> Builder {
        Builder {
            cfg,
            outbox: None,
            settings: None,
            feed_counts: None,
        }
    }
}

/// How an agent starts: its configuration, and optionally a shared outbox, a listener of the
/// configuration in force and the frame feed's counts.
#[derive(Debug)]
pub struct Builder {
    cfg: Config,
    outbox: Option<OutboxHandle>,
    settings: Option<watch::Sender<Config>>,
    feed_counts: Option<Arc<FeedTally>>,
}

impl Builder {
    /// Publish the batches of `outbox`, which a recognition pipeline appends to.
    pub fn outbox(mut self, outbox: OutboxHandle) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// Tell `settings` the configuration in force (the file with the remote settings over it)
    /// at start and after every remote change, for the parts the agent does not run itself
    /// (the frame feed).
    pub fn settings(mut self, settings: watch::Sender<Config>) -> Self {
        self.settings = Some(settings);
        self
    }

    /// Report in each health report the frames the frame feed did not read since the previous
    /// one, as `counts` adds them up (`FeedSupervisor::counters().feed`).
    pub fn feed_counts(mut self, counts: Arc<FeedTally>) -> Self {
        self.feed_counts = Some(counts);
        self
    }

    /// Runs the agent until `shutdown`. Returns an error only if it cannot start.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), AgentError> {
        let outbox = match self.outbox {
            Some(o) => o,
            None => open_outbox(&self.cfg)?,
        };
        let settings = self
            .settings
            .unwrap_or_else(|| watch::channel(self.cfg.clone()).0);
        let feed_counts = self.feed_counts.unwrap_or_default();
        event_loop::run(self.cfg, outbox, shutdown, settings, feed_counts).await
    }
}
