//! The frame feed (`[recognizer]`): JPEG frames dropped in `recognizer.watch_dir` →
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
//! - **Bad frames.** A file that does not decode is logged, counted and deleted; the feed goes
//!   on.
//! - The recognizer runs on this feed's own thread (the agent's runtime is single-threaded);
//!   on shutdown the open groups are flushed to the outbox.
//!
//! The decisions are pure and unit-tested: [`Watch::observe`] (which files are ready, in which
//! order), [`release`] (which held frames may go), [`read_id`], [`media_name`],
//! [`crop_rect`], [`to_wire`]; the quota is [`crate::quota`].

use crate::agent::OutboxHandle;
use crate::config::{Config, RecognizerSection, SaveMode};
use crate::journal::{Journal, JournalError};
use crate::quota;
use anpr_protocol::{FileName, PlateRead as WireRead, ReadId};
use anpr_recognizer::{
    GroupedRead, PlateRead, Recognizer, RecognizerConfig, RecognizerError, TemporalGrouper, image,
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

/// Whether a file name is a frame to read: `*.jpg` or `*.jpeg` (any case), not hidden.
pub fn is_frame_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.starts_with('.') && (lower.ends_with(".jpg") || lower.ends_with(".jpeg"))
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
    ReadId::parse(&s).unwrap_or_else(|_| crate::outbox::new_read_id())
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

/// The recognizer settings of a `[recognizer]` section.
pub fn recognizer_config(r: &RecognizerSection) -> RecognizerConfig {
    let mut rc = RecognizerConfig {
        reader: r.reader,
        threads: r.threads.max(1),
        min_score: r.min_score,
        region: r.region,
        ..RecognizerConfig::default()
    };
    if let Some(m) = &r.models_dir {
        rc.models_dir = m.clone();
    }
    rc
}

/// Starts the feed on its own thread: checks the model files are there (an error here is
/// returned) and loads them when the first frame arrives (an idle camera holds no model), then
/// reads frames until `shutdown` turns true, flushes the open groups to the outbox and returns what
/// it did.
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
    settings: watch::Receiver<Config>,
) -> Result<FeedHandle, FramesError> {
    let section = cfg.recognizer.clone().ok_or(FramesError::NotConfigured)?;
    let rc = recognizer_config(&section);
    let dir_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FramesError::Dir { path, source }
    };
    std::fs::create_dir_all(&section.watch_dir).map_err(dir_err(&section.watch_dir))?;
    let reads_dir = cfg.media_dir.join(MEDIA_SUBDIR);
    if section.save != SaveMode::None {
        std::fs::create_dir_all(&reads_dir).map_err(dir_err(&reads_dir))?;
    }
    let journal = Journal::open(&cfg.state_dir).map_err(FramesError::Journal)?;
    // The models load when the first frame arrives (an idle camera does not pay for them);
    // a missing file is still reported now, while the agent starts.
    for file in [
        anpr_recognizer::DETECTOR_FILE,
        anpr_recognizer::READER_FILE,
        anpr_recognizer::CHARSET_FILE,
    ] {
        let path = rc.models_dir.join(file);
        if !path.is_file() {
            return Err(FramesError::Recognizer(RecognizerError::ModelMissing {
                path,
            }));
        }
    }
    let feed = Feed {
        watch_dir: section.watch_dir.clone(),
        media_dir: cfg.media_dir.clone(),
        save: section.save,
        quota: cfg.media_quota_bytes,
        journal,
        outbox,
        recognizer: None,
        rc: rc.clone(),
        grouper: TemporalGrouper::new(section.group_gap_ms, section.group_window_ms),
        watch: Watch::default(),
        taken: HashSet::new(),
        held: Vec::new(),
        clock_ms: 0,
        stats: FeedStats::default(),
        quota_due: true,
        progress: Arc::new(AtomicU64::new(0)),
        retunes: Arc::new(AtomicU64::new(0)),
    };
    let frames = feed.progress.clone();
    let retunes = feed.retunes.clone();
    tracing::info!(
        watch_dir = %section.watch_dir.display(),
        models = %rc.models_dir.display(),
        threads = rc.threads,
        region = %section.region,
        "frame feed starting"
    );
    let thread = std::thread::Builder::new()
        .name("frames".into())
        .spawn(move || feed.run(shutdown, settings))
        .map_err(FramesError::Thread)?;
    Ok(FeedHandle {
        thread,
        frames,
        retunes,
    })
}

/// An error with its sources, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

#[derive(Debug)]
struct Feed {
    watch_dir: PathBuf,
    media_dir: PathBuf,
    save: SaveMode,
    quota: Option<u64>,
    journal: Journal,
    outbox: OutboxHandle,
    /// Loaded at the first frame.
    recognizer: Option<Recognizer>,
    /// The settings it loads with (kept retuned until then).
    rc: RecognizerConfig,
    grouper: TemporalGrouper,
    watch: Watch,
    /// Frames read and still in the directory (held), or that failed for an I/O reason.
    taken: HashSet<String>,
    held: Vec<HeldFrame>,
    /// The grouper's clock: never goes back.
    clock_ms: u64,
    stats: FeedStats,
    quota_due: bool,
    /// `stats.frames`, readable while the feed runs.
    progress: Arc<AtomicU64>,
    /// Settings applied, readable while the feed runs.
    retunes: Arc<AtomicU64>,
}

impl Feed {
    /// Applies the tunable settings of `cfg` (see [`spawn_with_settings`]).
    fn retune(&mut self, cfg: &Config) {
        if let Some(r) = &cfg.recognizer {
            self.rc.min_score = r.min_score.clamp(0.0, 1.0);
            self.rc.region = r.region;
            if let Some(rec) = &mut self.recognizer {
                rec.tune(r.min_score, r.region);
            }
            self.grouper.max_gap_ms = r.group_gap_ms;
            self.grouper.max_window_ms = r.group_window_ms.max(r.group_gap_ms);
        }
        if self.quota != cfg.media_quota_bytes {
            self.quota = cfg.media_quota_bytes;
            self.quota_due = true;
        }
        tracing::info!(quota = ?self.quota, gap_ms = self.grouper.max_gap_ms, "frame feed retuned");
    }

    fn run(
        mut self,
        shutdown: watch::Receiver<bool>,
        mut settings: watch::Receiver<Config>,
    ) -> FeedStats {
        let mut list_failing = false;
        while !*shutdown.borrow() {
            if settings.has_changed().unwrap_or(false) {
                let cfg = settings.borrow_and_update().clone();
                self.retune(&cfg);
                self.retunes.fetch_add(1, Ordering::Relaxed);
            }
            self.enforce_quota();
            let listing = match self.list() {
                Ok(l) => {
                    list_failing = false;
                    l
                }
                Err(e) => {
                    if !list_failing {
                        tracing::error!(dir = %self.watch_dir.display(), error = %e, "cannot list the watch directory");
                    }
                    list_failing = true;
                    std::thread::sleep(POLL);
                    continue;
                }
            };
            let ready = self
                .watch
                .observe(listing, anpr_protocol::clock::now_ms(), &self.taken);
            if ready.is_empty() {
                // Idle: groups whose vehicle is gone are due on the wall clock.
                self.clock_ms = self.clock_ms.max(anpr_protocol::clock::now_ms());
                let closed = self.grouper.close_due(self.clock_ms);
                self.emit_all(closed);
                std::thread::sleep(POLL);
                continue;
            }
            if self.recognizer.is_none() {
                let started = std::time::Instant::now();
                match Recognizer::new(&self.rc) {
                    Ok(r) => {
                        tracing::info!(
                            ms = started.elapsed().as_millis() as u64,
                            "first frame: models loaded"
                        );
                        self.recognizer = Some(r);
                    }
                    Err(e) => {
                        // As when they could not load at start: the agent runs without the feed.
                        let e = error_chain(&e);
                        tracing::error!(error = %e, "models could not be loaded; the frame feed stops");
                        break;
                    }
                }
            }
            for f in ready {
                if *shutdown.borrow() {
                    break;
                }
                self.frame(f);
            }
        }
        let open = self.grouper.flush();
        self.emit_all(open);
        self.enforce_quota();
        if let Ok(mut ob) = self.outbox.lock()
            && let Err(e) = ob.sync()
        {
            tracing::error!(error = %e, "outbox sync failed");
        }
        tracing::info!(stats = ?self.stats, "frame feed stopped");
        self.stats
    }

    fn list(&self) -> std::io::Result<Vec<FrameFile>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.watch_dir)?.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !is_frame_name(&name) {
                continue;
            }
            // Not following symlinks: a frame is a regular file of the directory.
            let Ok(md) = e.metadata() else { continue };
            if !md.is_file() {
                continue;
            }
            let mtime_ns = md
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            out.push(FrameFile {
                name,
                size: md.len(),
                mtime_ns,
            });
        }
        Ok(out)
    }

    fn remove_frame(&mut self, f: &FrameFile) {
        let path = self.watch_dir.join(&f.name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                // Left in `taken`: not read again in this run.
                tracing::error!(file = %path.display(), error = %e, "cannot delete a read frame");
                return;
            }
        }
        self.taken.remove(&f.name);
    }

    fn frame(&mut self, f: FrameFile) {
        let path = self.watch_dir.join(&f.name);
        self.taken.insert(f.name.clone());
        let img = match anpr_recognizer::open_image(&path) {
            Ok(img) => img,
            Err(RecognizerError::Image { source, .. }) => {
                tracing::warn!(file = %path.display(), error = %source, "frame does not decode; deleted");
                self.stats.corrupt += 1;
                self.remove_frame(&f);
                return;
            }
            Err(RecognizerError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                self.taken.remove(&f.name);
                return;
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "frame unreadable; skipped until restart");
                self.stats.failed += 1;
                return;
            }
        };
        let at = self.clock_ms.max(f.mtime_ms());
        self.clock_ms = at;
        let Some(recognizer) = &self.recognizer else {
            return;
        };
        let reads = match recognizer.recognize(&img) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "recognition failed; frame deleted");
                self.stats.failed += 1;
                self.remove_frame(&f);
                return;
            }
        };
        drop(img);
        self.stats.frames += 1;
        self.progress.store(self.stats.frames, Ordering::Relaxed);
        self.stats.reads += reads.len() as u64;
        tracing::debug!(file = %f.name, reads = reads.len(), "frame read");
        let closed = self.grouper.push(at, &reads);
        if reads.is_empty() {
            self.remove_frame(&f);
        } else {
            self.held.push(HeldFrame {
                file: f,
                at_ms: at,
                reads,
            });
        }
        self.emit_all(closed);
    }

    fn emit_all(&mut self, groups: Vec<GroupedRead>) {
        if groups.is_empty() {
            return;
        }
        for g in groups {
            self.emit(&g);
        }
        for h in release(&mut self.held, self.grouper.oldest_open_ms()) {
            self.remove_frame(&h.file);
        }
    }

    fn emit(&mut self, g: &GroupedRead) {
        let best_frame = self
            .held
            .iter()
            .find(|h| h.at_ms == g.best_at_ms && h.reads.contains(&g.best))
            .map(|h| h.file.clone());
        let id = match &best_frame {
            Some(f) => read_id(f, &g.best.text),
            None => crate::outbox::new_read_id(),
        };
        let img = match (&best_frame, self.save) {
            (Some(f), SaveMode::Crop | SaveMode::Frame) => {
                let name = media_name(g.best_at_ms, &g.best.text, &id);
                name.filter(|n| match self.save_media(f, &g.best, n) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(file = %n, error = %e, "cannot save the read's image");
                        false
                    }
                })
            }
            _ => None,
        };
        if img.is_some() {
            self.stats.saved += 1;
            self.quota_due = true;
        }
        let wire = to_wire(g, id, img);
        tracing::info!(
            plate = %wire.p, confidence = wire.c, frames = g.count,
            img = wire.img.as_ref().map(ToString::to_string), "plate read"
        );
        let r = match self.outbox.lock() {
            Ok(mut ob) => ob.append(wire).map_err(|e| e.to_string()),
            Err(_) => Err("outbox lock poisoned".to_owned()),
        };
        match r {
            Ok(()) => self.stats.plate_reads += 1,
            Err(e) => {
                tracing::error!(error = %e, "plate read not queued");
                self.stats.outbox_errors += 1;
            }
        }
    }

    /// Writes the crop or the frame to `media_dir/{name}` (temporary file, then rename).
    fn save_media(
        &self,
        frame: &FrameFile,
        read: &PlateRead,
        name: &FileName,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let src = self.watch_dir.join(&frame.name);
        let bytes = match self.save {
            SaveMode::Frame => std::fs::read(&src)?,
            _ => {
                let img = anpr_recognizer::open_image(&src)?;
                let [x, y, w, h] =
                    crop_rect(&read.bbox, img.width(), img.height()).ok_or("empty plate box")?;
                let crop = img.crop_imm(x, y, w, h).to_rgb8();
                let mut out = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                    .encode_image(&crop)?;
                out
            }
        };
        let dest = self.media_dir.join(name.as_str());
        let file_name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or("no file name")?;
        let tmp = dest.with_file_name(format!(".{file_name}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_data()?;
        }
        std::fs::rename(&tmp, &dest)?;
        Ok(())
    }

    fn enforce_quota(&mut self) {
        let Some(quota) = self.quota else { return };
        if !self.quota_due {
            return;
        }
        self.quota_due = false;
        match quota::enforce(&self.media_dir, &self.journal, quota) {
            Ok(r) if !r.deleted.is_empty() || r.failed > 0 => {
                self.stats.quota_deleted += r.deleted.len() as u64;
                tracing::info!(
                    deleted = r.deleted.len(),
                    freed = r.freed,
                    failed = r.failed,
                    before = r.total_before,
                    quota,
                    "media quota applied"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "media quota not applied"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpr_recognizer::BBox;

    fn ff(name: &str, size: u64, mtime_ms: u64) -> FrameFile {
        FrameFile {
            name: name.into(),
            size,
            mtime_ns: u128::from(mtime_ms) * 1_000_000,
        }
    }

    fn names(v: &[FrameFile]) -> Vec<&str> {
        v.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn only_jpeg_frames_are_taken_never_temporary_or_hidden_files() {
        for ok in ["a.jpg", "B.JPG", "c.jpeg", "2026-11-25T10:00:00.123.jpg"] {
            assert!(is_frame_name(ok), "{ok}");
        }
        for no in ["a.jpg.tmp", "a.tmp", ".a.jpg", "a.png", "a.jpg.part", "jpg"] {
            assert!(!is_frame_name(no), "{no}");
        }
    }

    #[test]
    fn a_frame_still_being_written_waits_until_it_stops_changing() {
        let mut w = Watch::default();
        let none = HashSet::new();
        // Written just now, growing.
        assert!(
            w.observe(vec![ff("a.jpg", 10, 1000)], 1000, &none)
                .is_empty()
        );
        assert!(
            w.observe(vec![ff("a.jpg", 20, 1200)], 1200, &none)
                .is_empty()
        );
        assert!(
            w.observe(vec![ff("a.jpg", 20, 1200)], 1400, &none)
                .is_empty()
        );
        // Unchanged for SETTLE_MS since 1200.
        let r = w.observe(vec![ff("a.jpg", 20, 1200)], 1200 + SETTLE_MS, &none);
        assert_eq!(names(&r), ["a.jpg"]);
    }

    #[test]
    fn an_empty_file_is_never_taken_and_an_old_one_is_taken_at_once() {
        let mut w = Watch::default();
        let none = HashSet::new();
        let r = w.observe(
            vec![ff("empty.jpg", 0, 0), ff("old.jpg", 5, 0)],
            60_000,
            &none,
        );
        assert_eq!(names(&r), ["old.jpg"]);
    }

    #[test]
    fn a_frame_with_a_clock_skewed_future_mtime_is_taken_once_it_stops_changing() {
        let mut w = Watch::default();
        let none = HashSet::new();
        let future = 10_000_000;
        assert!(
            w.observe(vec![ff("f.jpg", 5, future)], 1000, &none)
                .is_empty()
        );
        let r = w.observe(vec![ff("f.jpg", 5, future)], 1000 + SETTLE_MS, &none);
        assert_eq!(names(&r), ["f.jpg"]);
    }

    #[test]
    fn frames_are_taken_in_mtime_then_name_order_and_taken_ones_are_skipped() {
        let mut w = Watch::default();
        let taken = HashSet::from(["held.jpg".to_owned()]);
        let r = w.observe(
            vec![
                ff("c.jpg", 5, 300),
                ff("b.jpg", 5, 100),
                ff("a.jpg", 5, 300),
                ff("held.jpg", 5, 50),
                ff("z.jpg.tmp", 5, 10),
            ],
            60_000,
            &taken,
        );
        assert_eq!(names(&r), ["b.jpg", "a.jpg", "c.jpg"]);
    }

    fn read(text: &str, confidence: f32) -> PlateRead {
        PlateRead {
            text: text.into(),
            confidence,
            bbox: BBox::new(100.4, 50.6, 80.0, 20.0),
            char_confidences: vec![confidence; text.len()],
            format: None,
            raw_text: text.into(),
        }
    }

    fn held(name: &str, at_ms: u64) -> HeldFrame {
        HeldFrame {
            file: ff(name, 5, at_ms),
            at_ms,
            reads: vec![read("ABC1234", 0.9)],
        }
    }

    #[test]
    fn held_frames_are_released_once_no_open_group_can_need_them() {
        let mut h = vec![held("a", 100), held("b", 200), held("c", 300)];
        assert!(release(&mut h, Some(100)).is_empty());
        let gone = release(&mut h, Some(300));
        assert_eq!(gone.len(), 2);
        assert_eq!(h.len(), 1);
        assert_eq!(release(&mut h, None).len(), 1);
        assert!(h.is_empty());
    }

    #[test]
    fn the_grouper_and_release_together_keep_a_passage_s_frames_until_its_read_is_out() {
        // The decisions the feed makes, without the files: three frames of one car, then
        // silence.
        let mut g = TemporalGrouper::new(1000, 30_000);
        let mut h = Vec::new();
        let mut out = Vec::new();
        for (name, t, c) in [("1.jpg", 0, 0.6), ("2.jpg", 200, 0.9), ("3.jpg", 400, 0.7)] {
            let reads = vec![read("ABC1234", c)];
            out.extend(g.push(t, &reads));
            h.push(HeldFrame {
                file: ff(name, 5, t),
                at_ms: t,
                reads,
            });
            assert!(
                release(&mut h, g.oldest_open_ms()).is_empty(),
                "kept while open"
            );
        }
        out.extend(g.close_due(2000));
        assert_eq!(out.len(), 1, "one read per passage");
        let best = h
            .iter()
            .find(|f| f.at_ms == out[0].best_at_ms && f.reads.contains(&out[0].best))
            .map(|f| f.file.name.clone());
        assert_eq!(
            best.as_deref(),
            Some("2.jpg"),
            "the best frame is still held"
        );
        assert_eq!(release(&mut h, g.oldest_open_ms()).len(), 3);
    }

    #[test]
    fn the_read_id_depends_on_the_best_frame_and_text_only() {
        let a = read_id(&ff("a.jpg", 5, 100), "ABC1234");
        assert_eq!(a, read_id(&ff("a.jpg", 5, 100), "ABC1234"));
        assert_eq!(a.as_str().len(), 12);
        assert_ne!(a, read_id(&ff("a.jpg", 5, 101), "ABC1234"));
        assert_ne!(a, read_id(&ff("b.jpg", 5, 100), "ABC1234"));
        assert_ne!(a, read_id(&ff("a.jpg", 5, 100), "ABC1235"));
    }

    #[test]
    fn a_saved_image_has_a_name_a_file_request_can_ask_for() {
        let id = read_id(&ff("a.jpg", 5, 100), "ABC1234");
        let n = media_name(1_764_086_400_123, "ABC1234", &id).unwrap();
        assert_eq!(n.as_str(), format!("reads/1764086400123-ABC1234-{id}.jpg"));
        let wire = format!(r#""{n}""#);
        let back: FileName = serde_json::from_str(&wire).unwrap();
        assert_eq!(back, n);
        // Odd text never makes an invalid name.
        let odd = media_name(1, "../Ä b/", &id).unwrap();
        assert_eq!(odd.as_str(), format!("reads/1-b-{id}.jpg"));
        assert!(media_name(1, "", &id).is_some());
    }

    #[test]
    fn the_crop_is_the_plate_with_a_margin_clipped_to_the_frame() {
        let b = BBox::new(100.0, 50.0, 80.0, 20.0);
        assert_eq!(crop_rect(&b, 640, 480), Some([90, 40, 100, 40]));
        let edge = BBox::new(-5.0, 470.0, 30.0, 20.0);
        assert_eq!(crop_rect(&edge, 640, 480), Some([0, 460, 35, 20]));
        assert_eq!(crop_rect(&BBox::new(700.0, 10.0, 5.0, 5.0), 640, 480), None);
        assert_eq!(
            crop_rect(&BBox::new(f32::NAN, 0.0, 5.0, 5.0), 640, 480),
            None
        );
    }

    #[test]
    fn the_wire_read_has_the_best_read_its_time_percent_and_whole_pixel_box() {
        let g = GroupedRead {
            best: read("ABC1234", 0.876),
            best_at_ms: 1234,
            first_seen_ms: 1000,
            last_seen_ms: 1500,
            count: 3,
        };
        let id = ReadId::parse("abc").unwrap();
        let img = FileName::parse("reads/x.jpg").ok();
        let w = to_wire(&g, id.clone(), img.clone());
        assert_eq!(
            w,
            WireRead {
                id,
                t: 1234,
                p: "ABC1234".into(),
                c: 88,
                img,
                bb: Some([100, 51, 80, 20]),
            }
        );
    }

    /// A region or reader the recognizer does not know cannot reach it: the configuration's
    /// types are the recognizer's, and the file's parser refuses other names
    /// (`config::tests::bad_recognizer_settings_are_refused_naming_the_setting`).
    #[test]
    fn the_recognizer_gets_the_settings_of_the_section() {
        let mut s = RecognizerSection {
            models_dir: Some("/m".into()),
            threads: 2,
            min_score: 0.4,
            region: anpr_recognizer::PlateRegion::Br,
            reader: anpr_recognizer::ReaderKind::Plate,
            group_gap_ms: 1,
            group_window_ms: 2,
            ..RecognizerSection::new("/f")
        };
        let rc = recognizer_config(&s);
        assert_eq!(
            (rc.threads, rc.min_score, rc.region, rc.models_dir),
            (
                2,
                0.4,
                anpr_recognizer::PlateRegion::Br,
                PathBuf::from("/m")
            )
        );
        assert_eq!(rc.reader, anpr_recognizer::ReaderKind::Plate);
        s.reader = anpr_recognizer::ReaderKind::Ppocr;
        assert_eq!(
            recognizer_config(&s).reader,
            anpr_recognizer::ReaderKind::Ppocr
        );
    }
}
