//! The frame feed in its own process: the agent starts `anpr-frames feed` (installed next to
//! `anpr-camera`) when `[recognizer]` is configured, and the two speak one JSON object per line
//! over the child's stdin and stdout. The agent never links the recognizer, so a camera pays
//! for the models only while frames arrive.
//!
//! - **Agent → feed** ([`ToFeed`], on the feed's stdin): the tunable settings in force
//!   ([`FeedSettings`], first at start and again on every remote change), the answer to each
//!   read (`ack` once the read is in the outbox on disk, or `refused` with the outbox's error),
//!   `want_counts` (this agent takes the feed's counts) and `stop`. End of input is `stop` too:
//!   a feed whose agent died stops.
//! - **Feed → agent** ([`FromFeed`], on the feed's stdout): a plate read to queue. The feed
//!   waits for its answer before it deletes the frames the read came from, so a read is in the
//!   outbox or its frames are still in the watch directory (read again at the next start):
//!   never neither. And, once the agent asked for them, the frames it did not read
//!   ([`FeedCounts`]: still, dropped, corrupt, failed), at most once a second, which the
//!   agent adds up for its health report ([`FeedTally`]) and does not answer. An agent that
//!   does not ask (one older than these counts answers every line it does not know with
//!   `refused`, which the feed would take for the answer to its next read) gets none. Its logs
//!   go to stderr, which it shares with the agent.
//! - **Supervision** ([`FeedSupervisor`]): the feed is started with the agent, so a bad
//!   setting or a missing model is reported at once (exit status [`EXIT_CANNOT_START`]: the
//!   agent runs on without it, as it does without `anpr-frames`). It exits by itself after
//!   `recognizer.idle_exit_secs` without frames (status 0); the agent then looks for frames
//!   in the watch directory every [`WAKE_POLL`] and starts it again when one appears. A feed
//!   that dies otherwise is started again after a back-off ([`Backoff`]).
//!
//! The messages, the sink the feed writes reads to ([`ReadSink`]: the outbox itself when the
//! feed runs in the agent's process, as in the local stack, or [`LinkSink`] over the pipe) and
//! the command reader ([`read_commands`]) are here, without the recognizer, so they are tested
//! without models.

use crate::agent::OutboxHandle;
use crate::config::Config;
pub use anpr_protocol::FeedCounts;
use anpr_protocol::PlateRead;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use tokio::sync::watch;

/// The feed's program, looked for next to the running `anpr-camera`.
pub const PROGRAM: &str = "anpr-frames";
/// The feed's exit status when it cannot start (a setting, the models, a directory): it is
/// not started again until the agent restarts.
pub const EXIT_CANNOT_START: i32 = 3;
/// How often the agent looks for a frame while the feed is not running.
pub const WAKE_POLL: Duration = Duration::from_secs(1);
/// How long a stopping feed may take to hand over its last reads before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(30);
/// Least time between two [`FromFeed::Counts`] of a feed (and one more as it stops).
pub const COUNTS_EVERY: Duration = Duration::from_secs(1);

/// The settings the running feed follows (the rest of `[recognizer]` is read at its start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedSettings {
    /// `recognizer.min_score`.
    pub min_score: f32,
    /// `recognizer.region`.
    pub region: anpr_protocol::PlateRegion,
    /// `recognizer.group_gap_ms`.
    pub group_gap_ms: u64,
    /// `recognizer.group_window_ms`.
    pub group_window_ms: u64,
    /// `media_quota_bytes`.
    pub media_quota_bytes: Option<u64>,
}

impl FeedSettings {
    /// The feed's settings in `cfg`; `None` without a `[recognizer]` section.
    pub fn of(cfg: &Config) -> Option<Self> {
        let r = cfg.recognizer.as_ref()?;
        Some(FeedSettings {
            min_score: r.min_score,
            region: r.region,
            group_gap_ms: r.group_gap_ms,
            group_window_ms: r.group_window_ms,
            media_quota_bytes: cfg.media_quota_bytes,
        })
    }
}

/// Agent → feed, one per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum ToFeed {
    /// Follow these settings.
    Settings(FeedSettings),
    /// The last read is in the outbox.
    Ack,
    /// The outbox refused the last read.
    Refused {
        /// Why.
        error: String,
    },
    /// Hand over the open passages and exit.
    Stop,
    /// This agent takes [`FromFeed::Counts`]: send them (sent once, as the feed starts).
    WantCounts,
}

/// Feed → agent, one per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "is", rename_all = "snake_case")]
pub enum FromFeed {
    /// A plate read to queue; answered by [`ToFeed::Ack`] or [`ToFeed::Refused`].
    Read {
        /// The read, as it goes on the wire.
        read: PlateRead,
    },
    /// The frames not read since the previous `counts` (only to an agent that sent
    /// [`ToFeed::WantCounts`]); not answered.
    Counts(FeedCounts),
}

/// The agent's side of the feed's counts: what the feeds reported, added up until the next
/// health report takes it.
#[derive(Debug, Default)]
pub struct FeedTally(Mutex<FeedCounts>);

impl FeedTally {
    /// Adds a feed's counts.
    pub fn add(&self, counts: FeedCounts) {
        if let Ok(mut c) = self.0.lock() {
            *c = c.plus(counts);
        }
    }

    /// The counts added since the previous call, for a health report.
    pub fn take(&self) -> FeedCounts {
        self.0
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }
}

/// A message as one line (no newline inside: JSON escapes them).
pub fn line<T: Serialize>(msg: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut v = serde_json::to_vec(msg)?;
    v.push(b'\n');
    Ok(v)
}

/// A read could not be handed over.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The outbox refused it (counted; the feed goes on, as when the outbox is in-process).
    #[error("the outbox refused the read: {0}")]
    Refused(String),
    /// Nobody is there to take it (the agent is gone): the feed keeps the read's frames and
    /// stops.
    #[error("the agent is gone")]
    Gone(#[source] std::io::Error),
}

/// Where the feed's plate reads go.
pub trait ReadSink: Send + std::fmt::Debug {
    /// Hands over one read; returns once it is queued (or refused).
    fn append(&mut self, read: PlateRead) -> Result<(), SinkError>;
    /// Makes what was handed over durable (the feed is stopping).
    fn finish(&mut self);
    /// Tells the feed's counts since the last ones it took; whether it took them (a sink with
    /// nobody to tell them to does not: the feed keeps adding them up).
    fn counts(&mut self, counts: FeedCounts) -> bool {
        let _ = counts;
        false
    }
}

impl ReadSink for OutboxHandle {
    fn append(&mut self, read: PlateRead) -> Result<(), SinkError> {
        let mut ob = self
            .lock()
            .map_err(|_| SinkError::Refused("outbox lock poisoned".into()))?;
        ob.append(read)
            .map_err(|e| SinkError::Refused(crate::error_chain(&e)))
    }

    fn finish(&mut self) {
        if let Ok(mut ob) = self.lock()
            && let Err(e) = ob.sync()
        {
            tracing::error!(error = %crate::error_chain(&e), "outbox sync failed");
        }
    }
}

/// The feed's side of the pipe: reads out as lines, answers in from [`read_commands`].
#[derive(Debug)]
pub struct LinkSink<W> {
    out: W,
    answers: mpsc::Receiver<Result<(), String>>,
    counts_wanted: Arc<AtomicBool>,
}

impl<W: Write + Send> LinkSink<W> {
    /// Writes reads to `out` and waits for their answers on `answers`; writes the counts once
    /// `counts_wanted` is true (set by [`read_commands`] when the agent asks for them).
    pub fn new(
        out: W,
        answers: mpsc::Receiver<Result<(), String>>,
        counts_wanted: Arc<AtomicBool>,
    ) -> Self {
        LinkSink {
            out,
            answers,
            counts_wanted,
        }
    }
}

impl<W: Write + Send + std::fmt::Debug> ReadSink for LinkSink<W> {
    fn append(&mut self, read: PlateRead) -> Result<(), SinkError> {
        let msg = line(&FromFeed::Read { read })
            .map_err(|e| SinkError::Gone(std::io::Error::other(e)))?;
        self.out
            .write_all(&msg)
            .and_then(|()| self.out.flush())
            .map_err(SinkError::Gone)?;
        match self.answers.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SinkError::Refused(e)),
            Err(_) => Err(SinkError::Gone(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the agent closed the link before answering",
            ))),
        }
    }

    fn finish(&mut self) {}

    fn counts(&mut self, counts: FeedCounts) -> bool {
        if !self.counts_wanted.load(Ordering::SeqCst) {
            return false;
        }
        let Ok(msg) = line(&FromFeed::Counts(counts)) else {
            return false;
        };
        // A broken pipe is the next read's to report (the agent is gone).
        self.out
            .write_all(&msg)
            .and_then(|()| self.out.flush())
            .is_ok()
    }
}

/// The feed's command reader (its own thread): settings to `settings`, answers to `answers`,
/// `want_counts` to `counts_wanted`, and `stop` (or the end of `input`, or an unreadable input)
/// to `shutdown`. A line that is not a command is logged and skipped. Returns when the input
/// ends.
pub fn read_commands(
    input: impl BufRead,
    settings: &watch::Sender<FeedSettings>,
    answers: &mpsc::Sender<Result<(), String>>,
    counts_wanted: &AtomicBool,
    shutdown: &watch::Sender<bool>,
) {
    for l in input.lines() {
        let l = match l {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the agent's commands; stopping");
                break;
            }
        };
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<ToFeed>(&l) {
            Ok(ToFeed::Settings(s)) => {
                let _unchanged = settings.send_replace(s);
            }
            Ok(ToFeed::Ack) => {
                let _ = answers.send(Ok(()));
            }
            Ok(ToFeed::Refused { error }) => {
                let _ = answers.send(Err(error));
            }
            Ok(ToFeed::Stop) => {
                let _ = shutdown.send(true);
            }
            Ok(ToFeed::WantCounts) => counts_wanted.store(true, Ordering::SeqCst),
            Err(e) => tracing::error!(error = %e, "not a command from the agent; skipped"),
        }
    }
    let _ = shutdown.send(true);
}

/// Whether a file name is a frame to read: `*.jpg` or `*.jpeg` (any case), not hidden.
pub fn is_frame_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.starts_with('.') && (lower.ends_with(".jpg") || lower.ends_with(".jpeg"))
}

mod supervisor;
pub use supervisor::{
    Backoff, Ending, FeedLinkError, FeedSupervisor, LinkCounters, program_next_to, serve,
};

#[cfg(test)]
mod tests;
