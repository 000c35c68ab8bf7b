//! The frame feed in its own process: the agent starts `anpr-frames feed` (installed next to
//! `anpr-camera`) when `[recognizer]` is configured, and the two speak one JSON object per line
//! over the child's stdin and stdout. The agent never links the recognizer, so a camera pays
//! for the models only while frames arrive.
//!
//! - **Agent → feed** ([`ToFeed`], on the feed's stdin): the tunable settings in force
//!   ([`FeedSettings`], first at start and again on every remote change), the answer to each
//!   read (`ack` once the read is in the outbox on disk, or `refused` with the outbox's error),
//!   and `stop`. End of input is `stop` too: a feed whose agent died stops.
//! - **Feed → agent** ([`FromFeed`], on the feed's stdout): a plate read to queue. The feed
//!   waits for its answer before it deletes the frames the read came from, so a read is in the
//!   outbox or its frames are still in the watch directory (read again at the next start):
//!   never neither. Its logs go to stderr, which it shares with the agent.
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
use anpr_protocol::PlateRead;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
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

/// The settings the running feed follows (the rest of `[recognizer]` is read at its start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedSettings {
    /// `recognizer.min_score`.
    pub min_score: f32,
    /// `recognizer.region`.
    pub region: String,
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
            region: r.region.clone(),
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
}

impl<W: Write + Send> LinkSink<W> {
    /// Writes reads to `out` and waits for their answers on `answers`.
    pub fn new(out: W, answers: mpsc::Receiver<Result<(), String>>) -> Self {
        LinkSink { out, answers }
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
}

/// The feed's command reader (its own thread): settings to `settings`, answers to `answers`,
/// and `stop` (or the end of `input`, or an unreadable input) to `shutdown`. A line that is not
/// a command is logged and skipped. Returns when the input ends.
pub fn read_commands(
    input: impl BufRead,
    settings: &watch::Sender<FeedSettings>,
    answers: &mpsc::Sender<Result<(), String>>,
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
            Err(e) => tracing::error!(error = %e, "not a command from the agent; skipped"),
        }
    }
    let _ = shutdown.send(true);
}

/// Restart delays of a feed that died: 1 s, doubling to 60 s; back to 1 s after a feed that ran
/// for a minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Self::FIRST }
    }
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(60);

    /// The delay before the next start of a feed that ran for `ran` and died.
    pub fn after_death(&mut self, ran: Duration) -> Duration {
        if ran >= Self::MAX {
            self.next = Self::FIRST;
        }
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d
    }

    /// A feed ended normally: the next death starts from the first delay.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// How a feed process ended, as the supervisor acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Exited by itself, idle (or told to stop): start it again when a frame arrives.
    Idle,
    /// Cannot start: not again until the agent restarts.
    CannotStart,
    /// Died (a signal, a panic, another status): start it again after a back-off.
    Died,
}

impl Ending {
    /// The ending of an exit status.
    pub fn of(status: std::process::ExitStatus) -> Self {
        match status.code() {
            Some(0) => Ending::Idle,
            Some(EXIT_CANNOT_START) => Ending::CannotStart,
            _ => Ending::Died,
        }
    }
}

/// The feed's program next to `agent` (the running `anpr-camera`).
pub fn program_next_to(agent: &Path) -> PathBuf {
    agent.with_file_name(PROGRAM)
}

/// The feed could not be supervised.
#[derive(Debug, thiserror::Error)]
pub enum FeedLinkError {
    /// No `[recognizer]` section.
    #[error("no [recognizer] section in the configuration")]
    NotConfigured,
    /// `anpr-frames` is not installed next to the agent.
    #[error(
        "{} is missing: this camera has the agent without the recognizer; install the full build or remove the [recognizer] section",
        path.display()
    )]
    ProgramMissing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The supervising thread could not start.
    #[error("cannot start the frame feed's supervisor thread")]
    Thread(#[source] std::io::Error),
}

/// What the supervisor saw, readable while it runs.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Feed processes started.
    pub starts: AtomicU64,
    /// Feed processes that died (not idle, not told to stop).
    pub deaths: AtomicU64,
    /// Reads queued in the outbox.
    pub reads: AtomicU64,
    /// Reads the outbox refused.
    pub refused: AtomicU64,
    /// Lines from the feed that were not messages.
    pub malformed: AtomicU64,
}

#[derive(Debug)]
struct Link {
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Option<Child>>,
    settings: Mutex<FeedSettings>,
    stop: AtomicBool,
    counters: LinkCounters,
}

impl Link {
    /// Writes one command to the running feed, if one runs; `false` if it could not.
    fn send(&self, msg: &ToFeed) -> bool {
        let Ok(bytes) = line(msg) else { return false };
        let Ok(mut g) = self.stdin.lock() else {
            return false;
        };
        match g.as_mut() {
            Some(stdin) => stdin.write_all(&bytes).and_then(|()| stdin.flush()).is_ok(),
            None => false,
        }
    }
}

/// The agent's side: starts the feed process, queues its reads, follows it (see the module
/// documentation).
#[derive(Debug)]
pub struct FeedSupervisor {
    link: Arc<Link>,
    thread: std::thread::JoinHandle<()>,
}

impl FeedSupervisor {
    /// Starts `program feed --config config_file` now and supervises it on a thread of its own;
    /// the reads go to `outbox`. `cfg` is the configuration in force (for the settings and the
    /// watch directory).
    pub fn start(
        program: PathBuf,
        config_file: PathBuf,
        cfg: &Config,
        outbox: OutboxHandle,
    ) -> Result<Self, FeedLinkError> {
        let settings = FeedSettings::of(cfg).ok_or(FeedLinkError::NotConfigured)?;
        let watch_dir = cfg
            .recognizer
            .as_ref()
            .map(|r| r.watch_dir.clone())
            .ok_or(FeedLinkError::NotConfigured)?;
        if !program.is_file() {
            return Err(FeedLinkError::ProgramMissing { path: program });
        }
        let link = Arc::new(Link {
            stdin: Mutex::new(None),
            child: Mutex::new(None),
            settings: Mutex::new(settings),
            stop: AtomicBool::new(false),
            counters: LinkCounters::default(),
        });
        let run = Supervision {
            program,
            config_file,
            watch_dir,
            outbox,
            link: link.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("feed-link".into())
            .spawn(move || run.run())
            .map_err(FeedLinkError::Thread)?;
        Ok(FeedSupervisor { link, thread })
    }

    /// Follows `cfg` from now on (the running feed at once, a later one from its start).
    pub fn retune(&self, cfg: &Config) {
        let Some(s) = FeedSettings::of(cfg) else {
            return;
        };
        if let Ok(mut g) = self.link.settings.lock() {
            *g = s.clone();
        }
        self.link.send(&ToFeed::Settings(s));
    }

    /// What it saw so far.
    pub fn counters(&self) -> &LinkCounters {
        &self.link.counters
    }

    /// Tells the feed to stop, waits for its last reads (at most [`STOP_GRACE`], then kills it)
    /// and for the supervisor to end.
    pub fn stop(self) {
        self.link.stop.store(true, Ordering::SeqCst);
        self.link.send(&ToFeed::Stop);
        let deadline = Instant::now() + STOP_GRACE;
        while !self.thread.is_finished() {
            if Instant::now() >= deadline {
                if let Ok(mut g) = self.link.child.lock()
                    && let Some(child) = g.as_mut()
                {
                    tracing::error!("the frame feed did not stop in time; killed");
                    let _ = child.kill();
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.thread.join().is_err() {
            tracing::error!("the frame feed's supervisor panicked");
        }
    }
}

struct Supervision {
    program: PathBuf,
    config_file: PathBuf,
    watch_dir: PathBuf,
    outbox: OutboxHandle,
    link: Arc<Link>,
}

impl Supervision {
    fn stopping(&self) -> bool {
        self.link.stop.load(Ordering::SeqCst)
    }

    /// Sleeps `d`, waking early when told to stop; whether to go on.
    fn pause(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.stopping() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
        !self.stopping()
    }

    /// Whether a frame waits in the watch directory.
    fn frame_waiting(&self) -> bool {
        std::fs::read_dir(&self.watch_dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_str().is_some_and(is_frame_name))
        })
    }

    fn run(self) {
        let mut backoff = Backoff::default();
        let mut first = true;
        while !self.stopping() {
            if !first {
                while !self.frame_waiting() {
                    if !self.pause(WAKE_POLL) {
                        return;
                    }
                }
            }
            first = false;
            let started = Instant::now();
            let ending = match self.once() {
                Ok(ending) => ending,
                Err(e) => {
                    tracing::error!(program = %self.program.display(), error = %e, "cannot start the frame feed");
                    Ending::Died
                }
            };
            if let Err(e) = self.outbox.lock().map(|mut ob| ob.sync()) {
                tracing::error!(error = %e, "outbox lock poisoned");
            }
            match ending {
                Ending::Idle => {
                    backoff.reset();
                    tracing::info!("frame feed idle: stopped until a frame arrives");
                }
                Ending::CannotStart => {
                    tracing::error!(
                        "frame feed not started (see its error above); the agent runs without it"
                    );
                    return;
                }
                Ending::Died if self.stopping() => return,
                Ending::Died => {
                    self.link.counters.deaths.fetch_add(1, Ordering::Relaxed);
                    let delay = backoff.after_death(started.elapsed());
                    tracing::warn!(
                        restart_in_ms = delay.as_millis() as u64,
                        "the frame feed died; its frames stay in the watch directory"
                    );
                    if !self.pause(delay) {
                        return;
                    }
                }
            }
        }
    }

    /// Runs one feed process to its end.
    fn once(&self) -> std::io::Result<Ending> {
        let mut child = Command::new(&self.program)
            .arg("feed")
            .arg("--config")
            .arg(&self.config_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        self.link.counters.starts.fetch_add(1, Ordering::Relaxed);
        let stdout = child.stdout.take();
        let stdin = child.stdin.take();
        tracing::info!(pid = child.id(), "frame feed started");
        if let Ok(mut g) = self.link.child.lock() {
            *g = Some(child);
        }
        if let Ok(mut g) = self.link.stdin.lock() {
            *g = stdin;
        }
        let settings = self.link.settings.lock().map(|s| s.clone()).ok();
        if let Some(s) = settings {
            self.link.send(&ToFeed::Settings(s));
        }
        // Told to stop while it started: it must hear it.
        if self.stopping() {
            self.link.send(&ToFeed::Stop);
        }
        if let Some(out) = stdout {
            let mut outbox = self.outbox.clone();
            serve(BufReader::new(out), &self.link.counters, &mut outbox, |a| {
                self.link.send(&a);
            });
        }
        // Its output ended: it is exiting.
        if let Ok(mut g) = self.link.stdin.lock() {
            *g = None;
        }
        let child = self.link.child.lock().ok().and_then(|mut g| g.take());
        let status = match child {
            Some(mut c) => c.wait()?,
            None => return Ok(Ending::Died),
        };
        tracing::info!(%status, "frame feed ended");
        Ok(Ending::of(status))
    }
}

/// Queues each read of `input` in `sink` and answers it through `answer`; returns at the end of
/// `input`.
pub fn serve(
    input: impl BufRead,
    counters: &LinkCounters,
    sink: &mut dyn ReadSink,
    mut answer: impl FnMut(ToFeed),
) {
    for l in input.lines() {
        let Ok(l) = l else { break };
        let reply = match serde_json::from_str::<FromFeed>(&l) {
            Ok(FromFeed::Read { read }) => match sink.append(read) {
                Ok(()) => {
                    counters.reads.fetch_add(1, Ordering::Relaxed);
                    ToFeed::Ack
                }
                Err(e) => {
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "plate read not queued");
                    ToFeed::Refused {
                        error: e.to_string(),
                    }
                }
            },
            Err(e) => {
                // Not a read: nothing is queued, and the feed (waiting for an answer if it
                // meant one) is told so.
                counters.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "not a message from the frame feed");
                ToFeed::Refused {
                    error: format!("not a message: {e}"),
                }
            }
        };
        answer(reply);
    }
}

/// Whether a file name is a frame to read: `*.jpg` or `*.jpeg` (any case), not hidden.
pub fn is_frame_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.starts_with('.') && (lower.ends_with(".jpg") || lower.ends_with(".jpeg"))
}

#[cfg(test)]
mod tests;
