//! The feed's loop and its I/O: listing the watch directory, reading frames, handing reads
//! over, saving images, deleting frames, applying the quota. The decisions it takes are the
//! pure functions of [`super`].

use super::*;
use anpr_camera::feed_link::COUNTS_EVERY;
use motion::MotionGate;
use std::time::Instant;

#[derive(Debug)]
pub(super) struct Feed {
    watch_dir: PathBuf,
    media_dir: PathBuf,
    save: SaveMode,
    /// `recognizer.roi`: the part of each frame read.
    roi: Option<[u32; 4]>,
    /// `recognizer.motion`, and the previous frame's thumbnail.
    motion: MotionGate,
    /// `recognizer.max_backlog` (0: frames are never dropped).
    max_backlog: usize,
    quota: Option<u64>,
    journal: Journal,
    sink: Box<dyn ReadSink>,
    /// Exit after this long without frames and with no passage open (the feed's own process).
    idle_exit: Option<Duration>,
    /// The sink is gone: stop, keeping the frames of reads not handed over.
    gone: bool,
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
    /// The counts the sink took so far, and when it last took some.
    reported: FeedCounts,
    reported_at: Option<Instant>,
    quota_due: bool,
    /// `stats.frames`, readable while the feed runs.
    pub(super) progress: Arc<AtomicU64>,
    /// Settings applied, readable while the feed runs.
    pub(super) retunes: Arc<AtomicU64>,
}

impl Feed {
    /// The feed of `cfg`'s `[recognizer]` section: checks the model files are there and makes
    /// its directories; loads nothing.
    pub(super) fn new(
        cfg: &Config,
        sink: Box<dyn ReadSink>,
        idle_exit: Option<Duration>,
    ) -> Result<Feed, FramesError> {
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
        // a missing file is still reported now, while the feed starts.
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
        tracing::info!(
            watch_dir = %section.watch_dir.display(),
            models = %rc.models_dir.display(),
            threads = rc.threads,
            region = %section.region,
            motion = section.motion,
            max_backlog = section.max_backlog,
            "frame feed starting"
        );
        Ok(Feed {
            watch_dir: section.watch_dir.clone(),
            media_dir: cfg.media_dir.clone(),
            save: section.save,
            roi: section.roi,
            motion: MotionGate::new(section.motion),
            max_backlog: usize::try_from(section.max_backlog).unwrap_or(usize::MAX),
            quota: cfg.media_quota_bytes,
            journal,
            sink,
            idle_exit,
            gone: false,
            recognizer: None,
            rc,
            grouper: TemporalGrouper::new(section.group_gap_ms, section.group_window_ms),
            watch: Watch::default(),
            taken: HashSet::new(),
            held: Vec::new(),
            clock_ms: 0,
            stats: FeedStats::default(),
            reported: FeedCounts::default(),
            reported_at: None,
            quota_due: true,
            progress: Arc::new(AtomicU64::new(0)),
            retunes: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Applies new tunable settings (see [`spawn_with_settings`]).
    fn retune(&mut self, s: &FeedSettings) {
        self.rc.min_score = s.min_score.clamp(0.0, 1.0);
        self.rc.region = s.region;
        if let Some(rec) = &mut self.recognizer {
            rec.tune(s.min_score, s.region);
        }
        self.grouper.max_gap_ms = s.group_gap_ms;
        self.grouper.max_window_ms = s.group_window_ms.max(s.group_gap_ms);
        if self.quota != s.media_quota_bytes {
            self.quota = s.media_quota_bytes;
            self.quota_due = true;
        }
        tracing::info!(quota = ?self.quota, gap_ms = self.grouper.max_gap_ms, "frame feed retuned");
    }

    /// Whether a passage is open or frames are held: the feed has work even without new frames.
    fn busy(&self) -> bool {
        self.grouper.oldest_open_ms().is_some() || !self.held.is_empty()
    }

    pub(super) fn run(
        mut self,
        shutdown: &watch::Receiver<bool>,
        mut settings: impl FnMut() -> Option<FeedSettings>,
    ) -> FeedStats {
        let mut list_failing = false;
        let mut last_busy = std::time::Instant::now();
        while !*shutdown.borrow() && !self.gone {
            if let Some(s) = settings() {
                self.retune(&s);
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
                self.report_counts(false);
                if self.busy() {
                    last_busy = std::time::Instant::now();
                } else if self.idle_exit.is_some_and(|d| last_busy.elapsed() >= d) {
                    tracing::info!("no frame for a while: the frame feed exits until one arrives");
                    break;
                }
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
                        let e = anpr_camera::error_chain(&e);
                        tracing::error!(error = %e, "models could not be loaded; the frame feed stops");
                        break;
                    }
                }
            }
            let (ready, behind) = thin(ready, self.max_backlog);
            self.drop_frames(&behind);
            for f in ready {
                if *shutdown.borrow() || self.gone {
                    break;
                }
                self.frame(f);
                self.report_counts(false);
            }
            // Idle from the last frame read, not from when the backlog was taken: a backlog
            // that took longer than `idle_exit` to read must not end in an exit at once.
            last_busy = std::time::Instant::now();
        }
        if !self.gone {
            let open = self.grouper.flush();
            self.emit_all(open);
        }
        self.enforce_quota();
        self.report_counts(true);
        self.sink.finish();
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

    /// Deletes a frame; whether it is gone.
    fn remove_frame(&mut self, f: &FrameFile) -> bool {
        let path = self.watch_dir.join(&f.name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                // Left in `taken`: not read again in this run.
                tracing::error!(file = %path.display(), error = %e, "cannot delete a frame");
                return false;
            }
        }
        self.taken.remove(&f.name);
        true
    }

    /// Deletes unread the frames [`thin`] dropped, counting them.
    fn drop_frames(&mut self, frames: &[FrameFile]) {
        let Some(first) = frames.first() else { return };
        tracing::warn!(
            dropped = frames.len(),
            from = %first.name,
            max_backlog = self.max_backlog,
            "the frame feed is behind: frames deleted unread"
        );
        for f in frames {
            self.taken.insert(f.name.clone());
            if self.remove_frame(f) {
                self.stats.dropped += 1;
            }
        }
    }

    /// Hands the counts of frames not read since the last ones taken to the sink: at once with
    /// `now`, else at most every [`COUNTS_EVERY`].
    fn report_counts(&mut self, now: bool) {
        if !now && self.reported_at.is_some_and(|t| t.elapsed() < COUNTS_EVERY) {
            return;
        }
        let total = self.stats.counts();
        let counts = total.since(self.reported);
        if counts.is_zero() {
            return;
        }
        if self.sink.counts(counts) {
            tracing::debug!(?counts, "frame counts reported");
            self.reported = total;
            self.reported_at = Some(Instant::now());
        }
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
        // Only the region of interest is read; the boxes come back in frame pixels.
        let Some([rx, ry, rw, rh]) = roi_rect(self.roi, img.width(), img.height()) else {
            tracing::warn!(file = %path.display(), roi = ?self.roi, "recognizer.roi is outside the frame; deleted unread");
            self.stats.failed += 1;
            self.remove_frame(&f);
            return;
        };
        if self.motion.is_on() {
            // Whether a passage is open is decided at this frame's time: the groups whose
            // vehicle has left are closed first (as pushing its reads would).
            let closed = self.grouper.close_due(at);
            self.emit_all(closed);
            if self.gone {
                // Not read: the frame stays for the next start.
                return;
            }
            let moved = self.motion.moved(motion::thumbnail(&img, [rx, ry, rw, rh]));
            if !moved && self.grouper.oldest_open_ms().is_none() {
                tracing::trace!(file = %f.name, "no motion: deleted unread");
                if self.remove_frame(&f) {
                    self.stats.still += 1;
                }
                return;
            }
        }
        let Some(recognizer) = &self.recognizer else {
            return;
        };
        let whole = (rx, ry, rw, rh) == (0, 0, img.width(), img.height());
        let region = if whole {
            std::borrow::Cow::Borrowed(&img)
        } else {
            std::borrow::Cow::Owned(img.crop_imm(rx, ry, rw, rh))
        };
        let reads = match recognizer.recognize(&region) {
            Ok(r) => r
                .into_iter()
                .map(|r| in_frame(r, rx, ry))
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "recognition failed; frame deleted");
                self.stats.failed += 1;
                self.remove_frame(&f);
                return;
            }
        };
        drop(region);
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

    fn emit_all(&mut self, groups: Vec<ClosedGroup>) {
        if groups.is_empty() {
            return;
        }
        for mut g in groups {
            if self.gone {
                // Not handed over: its frames stay in the watch directory for the next start.
                return;
            }
            let best_frame = self
                .held
                .iter()
                .find(|h| g.is_best_of(h.at_ms, &h.reads))
                .map(|h| h.file.clone());
            if let Some(f) = &best_frame {
                self.read_again(&mut g, f);
            }
            self.emit(&g.emit(), best_frame);
        }
        if self.gone {
            return;
        }
        for h in release(&mut self.held, self.grouper.oldest_open_ms()) {
            self.remove_frame(&h.file);
        }
    }

    /// A weak passage's most confident read, read again from its frame (still held) once the
    /// passage is over ([`Recognizer::read_again`]): the cost of reading again is paid once per
    /// passage, not on every frame.
    fn read_again(&mut self, g: &mut ClosedGroup, frame: &FrameFile) {
        let Some(recognizer) = &self.recognizer else {
            return;
        };
        let (best, _) = g.best();
        if !recognizer.may_read_again(best) {
            return;
        }
        let path = self.watch_dir.join(&frame.name);
        let again = anpr_recognizer::open_image(&path)
            .and_then(|img| recognizer.read_again(&img.into_rgb8(), best));
        match again {
            Ok(Some(better)) => {
                tracing::debug!(file = %frame.name, read = %best.text, again = %better.text, "passage read again");
                self.stats.read_again += 1;
                g.replace_best(better);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read the passage's best frame again; its read stands");
            }
        }
    }

    /// Hands a passage's read over, with the image of `best_frame` (the frame of its most
    /// confident read, still held) if one is saved.
    fn emit(&mut self, g: &GroupedRead, best_frame: Option<FrameFile>) {
        let id = match &best_frame {
            Some(f) => read_id(f, &g.best.text),
            None => anpr_camera::outbox::new_read_id(),
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
        match self.sink.append(wire) {
            Ok(()) => self.stats.plate_reads += 1,
            Err(SinkError::Refused(e)) => {
                tracing::error!(error = %e, "plate read not queued");
                self.stats.outbox_errors += 1;
            }
            Err(e @ SinkError::Gone(_)) => {
                tracing::error!(error = %anpr_camera::error_chain(&e), "plate read not handed over; the frame feed stops and keeps its frames");
                self.gone = true;
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
