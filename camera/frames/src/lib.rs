//! `anpr-frames`: the camera's recognizer as a package and a program of its own, so the agent
//! (`anpr-camera`) never links tract. The frame feed (`[recognizer]`): JPEG frames dropped in `recognizer.watch_dir` →
//! recognizer → [`TemporalGrouper`] (one read per vehicle) → the plate-read outbox, with the
//! plate's crop (or the whole frame) saved in `media_dir/reads/` under the name the read
//! carries (`img`), so that it can be requested later; then the media quota.
//!
//! - **Taking a frame.** The directory is polled every [`POLL`]. A `*.jpg`/`*.jpeg` file (not
//!   starting with `.`) is taken once it is not empty and has not changed (size and mtime) for
//!   [`SETTLE_MS`]; write `NAME.jpg.tmp` and rename it, or write in place. Frames are taken in
//!   (mtime, name) order. The frame's time is its mtime (never earlier than the previous
//!   frame's), so a backlog is grouped as it was captured.
//! - **Nothing read twice, nothing lost.** A frame without a plate is deleted once read; a
//!   frame with one is kept until every group it may belong to has been written to the
//!   outbox (see [`TemporalGrouper::oldest_open_ms`]), then deleted. After a crash or restart
//!   the frames still there are read again, so a passage in progress is not lost. A read
//!   already in the outbox may come out a second time; the read id is derived from its best
//!   frame, so when that frame was still there the cloud stores it once.
//! - **Only frames with motion.** With `recognizer.motion` (see [`motion`]), a frame whose
//!   lane did not change since the previous frame is deleted unread while no passage is open
//!   (counted `still`); while one is open every frame is read (a vehicle that stopped).
//! - **Dropping rather than falling behind.** When more than `recognizer.max_backlog` frames
//!   are ready, the oldest are thinned ([`thin`]): deleted unread but for an evenly spaced
//!   sample, so a passage in them is still seen (counted `dropped`). Frames already read and
//!   held for an open passage are never among them.
//! - **Bad frames.** A file that does not decode is logged, counted and deleted; the feed goes
//!   on.
//! - **Counts.** The frames not read (still, dropped, corrupt, failed) go to the agent
//!   ([`ReadSink::counts`], at most every [`anpr_camera::feed_link::COUNTS_EVERY`]), which
//!   reports them in its health report.
//! - **Where it runs.** The agent binary runs the feed as a process of its own
//!   (`anpr-frames feed`, [`run_feed`]; see [`anpr_camera::feed_link`]), which exits when idle, so the
//!   agent never holds the models. The local stack runs it on a thread of the agent's process
//!   ([`spawn`]). Either way, on shutdown the open groups are flushed to the outbox; a read the
//!   agent did not take (it is gone) keeps its frames in the watch directory.
//!
//! The decisions are pure and unit-tested: [`Watch::observe`] (which files are ready, in which
//! order), [`thin`] (which of them are dropped), [`motion::MotionGate`] (which moved),
//! [`release`] (which held frames may go), [`read_id`], [`media_name`], [`crop_rect`],
//! [`to_wire`]; the quota is [`anpr_camera::quota`].
//!
//! # Layout
//! - this module: the feed's pure decisions, [`spawn`] (in the caller's process) and
//!   [`run_feed`] (the program's feed).
//! - [`motion`]: the motion gate's thumbnails and comparison.
//! - `feed`: the feed's loop and its I/O (listing, reading, handing over, saving, deleting).
//! - `src/main.rs`: the `anpr-frames` program: `feed` (started by the agent, speaking
//!   [`anpr_camera::feed_link`] on stdin/stdout), `recognize` and `eval`.

use anpr_camera::agent::OutboxHandle;
use anpr_camera::config::{Config, RecognizerSection, SaveMode};
pub use anpr_camera::feed_link::is_frame_name;
use anpr_camera::feed_link::{FeedCounts, FeedSettings, ReadSink, SinkError};
use anpr_camera::journal::{Journal, JournalError};
use anpr_camera::quota;
use anpr_protocol::{FileName, PlateRead as WireRead, ReadId};
use anpr_recognizer::{
    ClosedGroup, GroupedRead, PlateRead, Recognizer, RecognizerConfig, RecognizerError,
    TemporalGrouper, image,
};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};
use tokio::sync::watch;

/// How often the watch directory is listed.
pub const POLL: Duration = Duration::from_millis(200);
/// A frame is taken once it has not changed for this long (ms).
pub const SETTLE_MS: u64 = 500;
/// Subdirectory of `media_dir` the crops and frames of plate reads are saved in.
pub const MEDIA_SUBDIR: &str = "reads";

/// The feed could not start.
#[derive(Debug, thiserror::Error)]
pub enum FramesError {
    /// The configuration has no `[recognizer]` section.
    #[error("no [recognizer] section in the configuration")]
    NotConfigured,
    /// A directory could not be created or listed.
    #[error("directory {path} is unusable")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The models could not be loaded.
    #[error("cannot start the recognizer")]
    Recognizer(#[source] RecognizerError),
    /// The request journal (for the quota) could not be opened.
    #[error("cannot open the request journal")]
    Journal(#[source] JournalError),
    /// The thread could not be started.
    #[error("cannot start the frame feed thread")]
    Thread(#[source] std::io::Error),
}

/// What the feed did, returned when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// Frames recognised.
    pub frames: u64,
    /// Plate reads in those frames (before grouping).
    pub reads: u64,
    /// Plate reads written to the outbox (after grouping).
    pub plate_reads: u64,
    /// Frames without motion while no passage was open (deleted unread).
    pub still: u64,
    /// Frames dropped from a backlog beyond `recognizer.max_backlog` (deleted unread).
    pub dropped: u64,
    /// Files that did not decode (deleted).
    pub corrupt: u64,
    /// Frames the recognizer or the file system failed on.
    pub failed: u64,
    /// Crops or frames saved in the media directory.
    pub saved: u64,
    /// Files the media quota deleted.
    pub quota_deleted: u64,
    /// Reads the outbox refused (logged).
    pub outbox_errors: u64,
    /// Passages whose most confident read scored more when read again
    /// ([`anpr_recognizer::Recognizer::read_again`]).
    pub read_again: u64,
}

impl FeedStats {
    /// The frames not read, as the agent's health report counts them.
    pub fn counts(&self) -> FeedCounts {
        FeedCounts {
            still: self.still,
            dropped: self.dropped,
            corrupt: self.corrupt,
            failed: self.failed,
        }
    }
}

/// The running feed.
#[derive(Debug)]
pub struct FeedHandle {
    thread: std::thread::JoinHandle<FeedStats>,
    frames: Arc<AtomicU64>,
    retunes: Arc<AtomicU64>,
}

impl FeedHandle {
    /// Frames recognised so far (files that did not decode not included).
    pub fn frames_read(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// New settings applied so far (each value the `settings` channel of
    /// [`spawn_with_settings`] delivered and the feed applied before its next listing).
    pub fn retunes(&self) -> u64 {
        self.retunes.load(Ordering::Relaxed)
    }

    /// Whether the feed's thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the feed to stop (after `shutdown` turned true); what it did, or `None` if
    /// its thread panicked.
    pub fn join(self) -> Option<FeedStats> {
        self.thread.join().ok()
    }
}

/// A candidate frame file in the watch directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameFile {
    /// File name (no directory).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the Unix epoch.
    pub mtime_ns: u128,
}

impl FrameFile {
    /// Modification time, ms since the Unix epoch.
    pub fn mtime_ms(&self) -> u64 {
        u64::try_from(self.mtime_ns / 1_000_000).unwrap_or(u64::MAX)
    }
}

/// Which frames of the watch directory are ready, poll after poll.
#[derive(Debug, Default)]
pub struct Watch {
    /// name → (size, mtime, first time seen so).
    seen: HashMap<String, (u64, u128, u64)>,
}

impl Watch {
    /// Takes the listing of one poll at `now_ms`; returns the frames ready to read, in
    /// (mtime, name) order, leaving out those in `taken` (already read, held).
    pub fn observe(
        &mut self,
        listing: Vec<FrameFile>,
        now_ms: u64,
        taken: &HashSet<String>,
    ) -> Vec<FrameFile> {
        let mut seen = HashMap::with_capacity(listing.len());
        let mut ready = Vec::new();
        for f in listing {
            if !is_frame_name(&f.name) || taken.contains(&f.name) {
                continue;
            }
            let since = match self.seen.get(&f.name) {
                Some(&(size, mtime, since)) if size == f.size && mtime == f.mtime_ns => since,
                _ => now_ms,
            };
            seen.insert(f.name.clone(), (f.size, f.mtime_ns, since));
            let unchanged_for = now_ms.saturating_sub(since);
            let untouched_for = now_ms.saturating_sub(f.mtime_ms());
            if f.size > 0 && (unchanged_for >= SETTLE_MS || untouched_for >= SETTLE_MS) {
                ready.push(f);
            }
        }
        self.seen = seen;
        ready.sort_by(|a, b| (a.mtime_ns, &a.name).cmp(&(b.mtime_ns, &b.name)));
        ready
    }
}

/// A frame with plate reads, kept in the watch directory until its groups are emitted.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldFrame {
    /// The file.
    pub file: FrameFile,
    /// Its time on the grouper's clock.
    pub at_ms: u64,
    /// Its reads.
    pub reads: Vec<PlateRead>,
}

/// Splits the frames ready to read (oldest first, as [`Watch::observe`] returns them: frames
/// already read and held are not among them) into those to read and those to drop, when more
/// than `max_backlog` wait (0: never). The newest `max_backlog` are all read; of the older ones
/// (the excess) every k-th is read, the oldest first, k = excess ÷ `max_backlog` rounded up
/// and at least 2: at least one in two is dropped, and at most `max_backlog` are kept, so a
/// round reads at most twice `max_backlog` frames however far behind the feed is, and a passage
/// in the excess is still sampled.
pub fn thin(ready: Vec<FrameFile>, max_backlog: usize) -> (Vec<FrameFile>, Vec<FrameFile>) {
    if max_backlog == 0 || ready.len() <= max_backlog {
        return (ready, Vec::new());
    }
    let excess = ready.len() - max_backlog;
    let every = excess.div_ceil(max_backlog).max(2);
    let (mut read, mut dropped) = (Vec::new(), Vec::new());
    for (i, f) in ready.into_iter().enumerate() {
        if i >= excess || i % every == 0 {
            read.push(f);
        } else {
            dropped.push(f);
        }
    }
    (read, dropped)
}

/// Removes from `held` and returns the frames no open group can still need: all when no group
/// is open, else those older than the oldest open group.
pub fn release(held: &mut Vec<HeldFrame>, oldest_open_ms: Option<u64>) -> Vec<HeldFrame> {
    let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(held)
        .into_iter()
        .partition(|h| oldest_open_ms.is_none_or(|t| h.at_ms < t));
    *held = kept;
    gone
}

/// The read id of a grouped read: derived from its best frame (name, size, mtime) and text, so
/// the same frames read again after a restart give the same id (the cloud keeps it once).
pub fn read_id(frame: &FrameFile, text: &str) -> ReadId {
    let mut h = Sha256::new();
    h.update(frame.name.as_bytes());
    h.update([0]);
    h.update(frame.size.to_le_bytes());
    h.update(frame.mtime_ns.to_le_bytes());
    h.update([0]);
    h.update(text.as_bytes());
    let digest = h.finalize();
    let s = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..9]);
    ReadId::parse(&s).unwrap_or_else(|_| anpr_camera::outbox::new_read_id())
}

/// The media name of a read's crop or frame: `reads/{t}-{plate}-{id}.jpg`.
pub fn media_name(t_ms: u64, text: &str, id: &ReadId) -> Option<FileName> {
    let plate: String = text
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    let plate = if plate.is_empty() {
        "plate".into()
    } else {
        plate
    };
    FileName::parse(&format!("{MEDIA_SUBDIR}/{t_ms}-{plate}-{id}.jpg")).ok()
}

/// The rectangle saved as the crop of a plate box: the box with half its height of margin on
/// every side, within the frame; `None` if nothing is left.
pub fn crop_rect(bbox: &anpr_recognizer::BBox, width: u32, height: u32) -> Option<[u32; 4]> {
    if ![bbox.x, bbox.y, bbox.w, bbox.h]
        .iter()
        .all(|v| v.is_finite())
    {
        return None;
    }
    let m = 0.5 * bbox.h.max(0.0);
    let x0 = (bbox.x - m).floor().max(0.0);
    let y0 = (bbox.y - m).floor().max(0.0);
    let x1 = (bbox.x + bbox.w + m).ceil().min(width as f32);
    let y1 = (bbox.y + bbox.h + m).ceil().min(height as f32);
    if !(x1 - x0 >= 1.0 && y1 - y0 >= 1.0) {
        return None;
    }
    Some([x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32])
}

/// The part of a `width`×`height` frame the recognizer reads: `roi` (`[x, y, w, h]`) clamped to
/// the frame, or the whole frame without one; `None` when none of it is in the frame.
pub fn roi_rect(roi: Option<[u32; 4]>, width: u32, height: u32) -> Option<[u32; 4]> {
    let [x, y, w, h] = roi.unwrap_or([0, 0, width, height]);
    let x1 = x.saturating_add(w).min(width);
    let y1 = y.saturating_add(h).min(height);
    (x < x1 && y < y1).then(|| [x, y, x1 - x, y1 - y])
}

/// A read of the region at (`x`, `y`) of the frame, its box moved to frame pixels.
pub fn in_frame(mut read: PlateRead, x: u32, y: u32) -> PlateRead {
    read.bbox.x += x as f32;
    read.bbox.y += y as f32;
    read
}

/// The wire read of a group: its best read, at its frame's time, confidence in percent, box in
/// whole pixels.
pub fn to_wire(group: &GroupedRead, id: ReadId, img: Option<FileName>) -> WireRead {
    let b = &group.best.bbox;
    let px = |v: f32| v.max(0.0).round() as u32;
    WireRead {
        id,
        t: group.best_at_ms,
        p: group.best.text.clone(),
        c: (group.best.confidence * 100.0).round().clamp(0.0, 100.0) as u8,
        img,
        bb: Some([px(b.x), px(b.y), px(b.w), px(b.h)]),
    }
}

/// The recognizer settings of a `[recognizer]` section. The feed reads a weak passage's most
/// confident read again once, when the passage closes, rather than every weak crop of every
/// frame (`reread_each_crop` off; [`anpr_recognizer::Recognizer::read_again`]).
pub fn recognizer_config(r: &RecognizerSection) -> RecognizerConfig {
    let mut rc = RecognizerConfig {
        reader: r.reader,
        detector: r.detector,
        second_detector: r.second_detector.kind(),
        confirm_reader: r.confirm_reader.kind(),
        faint_look: r.faint_look,
        detector_max_side: r.detector_side,
        detector_retry_max_side: r.finer_side,
        finer_below_score: r.finer_below,
        threads: r.threads.max(1),
        min_score: r.min_score,
        region: r.region,
        reread_each_crop: false,
        ..RecognizerConfig::default()
    };
    if let Some(m) = &r.models_dir {
        rc.models_dir = m.clone();
    }
    if let Some(score) = r.reread_below {
        rc.reread_below_score = score;
    }
    rc
}

/// Starts the feed on its own thread, in this process: checks the model files are there (an
/// error here is returned) and loads them when the first frame arrives (an idle camera holds no
/// model), then reads frames until `shutdown` turns true, flushes the open groups to the outbox
/// and returns what it did. (The agent binary runs the feed as its own process instead:
/// [`run_feed`], through [`anpr_camera::feed_link`].)
pub fn spawn(
    cfg: &Config,
    outbox: OutboxHandle,
    shutdown: watch::Receiver<bool>,
) -> Result<FeedHandle, FramesError> {
    let (_keep, settings) = watch::channel(cfg.clone());
    spawn_with_settings(cfg, outbox, shutdown, settings)
}

/// [`spawn`], following the configuration in force: each new value of `settings` (the agent
/// sends one when remote configuration changes it) retunes the running feed — minimum score,
/// region, grouping gap and media quota — without reloading the models.
pub fn spawn_with_settings(
    cfg: &Config,
    outbox: OutboxHandle,
    shutdown: watch::Receiver<bool>,
    mut settings: watch::Receiver<Config>,
) -> Result<FeedHandle, FramesError> {
    let feed = Feed::new(cfg, Box::new(outbox), None)?;
    let frames = feed.progress.clone();
    let retunes = feed.retunes.clone();
    let follow = move || {
        settings
            .has_changed()
            .unwrap_or(false)
            .then(|| FeedSettings::of(&settings.borrow_and_update()))
            .flatten()
    };
    let thread = std::thread::Builder::new()
        .name("frames".into())
        .spawn(move || feed.run(&shutdown, follow))
        .map_err(FramesError::Thread)?;
    Ok(FeedHandle {
        thread,
        frames,
        retunes,
    })
}

/// Runs the feed on this thread, handing its reads to `sink`, until `shutdown` turns true or
/// (with `idle_exit`) nothing happened for that long with no passage open; follows each new
/// value of `settings`. This is `anpr-frames feed`, the process the agent starts.
pub fn run_feed(
    cfg: &Config,
    sink: Box<dyn ReadSink>,
    shutdown: &watch::Receiver<bool>,
    mut settings: watch::Receiver<FeedSettings>,
    idle_exit: Option<Duration>,
) -> Result<FeedStats, FramesError> {
    let feed = Feed::new(cfg, sink, idle_exit)?;
    let follow = move || {
        settings
            .has_changed()
            .unwrap_or(false)
            .then(|| settings.borrow_and_update().clone())
    };
    Ok(feed.run(shutdown, follow))
}

mod feed;
pub mod motion;
use feed::Feed;

#[cfg(test)]
mod tests;
