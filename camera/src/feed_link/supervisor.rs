//! The agent's side of the link: starting the feed's process, answering its reads, starting
//! it again when a frame arrives or after it died.

use super::{
    EXIT_CANNOT_START, FeedSettings, FeedTally, FromFeed, PROGRAM, ReadSink, STOP_GRACE, ToFeed,
    WAKE_POLL, is_frame_name, line,
};
use crate::agent::OutboxHandle;
use crate::config::Config;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// The frames the feeds did not read, until the health report takes them
    /// ([`Agent::builder`](crate::agent::Agent::builder)`.feed_counts`).
    pub feed: Arc<FeedTally>,
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
            // What it handed over is made durable (a failed sync is logged, as in-process).
            self.outbox.clone().finish();
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
        self.link.send(&ToFeed::WantCounts);
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

/// Queues each read of `input` in `sink` and answers it through `answer`, adds each count of
/// frames not read to `counters.feed` (not answered); returns at the end of `input`.
pub fn serve(
    input: impl BufRead,
    counters: &LinkCounters,
    sink: &mut dyn ReadSink,
    mut answer: impl FnMut(ToFeed),
) {
    for l in input.lines() {
        let Ok(l) = l else { break };
        let reply = match serde_json::from_str::<FromFeed>(&l) {
            Ok(FromFeed::Counts(c)) => {
                counters.feed.add(c);
                continue;
            }
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
