//! The frame feed with the real recognizer (PP-OCR models from `scripts/fetch-models`) on two
//! real plate photos (`tests/data/`, see its README): frames dropped in the watch directory
//! become plate reads in the outbox, with their crop in the media directory. No broker needed.

use anpr_camera::Config;
use anpr_camera::agent::{OutboxHandle, open_outbox};
use anpr_camera::config::{
    CredentialsSection, MqttSection, RecognizerSection, SaveMode, UploadSection,
};
use anpr_camera::feed_link::{FeedSettings, ReadSink, SinkError};
use anpr_camera::journal::{Entry, Journal, Phase};
use anpr_frames::{FeedHandle, FeedStats, spawn};
use anpr_protocol::{CameraId, FileName, FileRequest, PlateRead, PlateReadBatch, RequestId};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const RK262AH: &str = "plate-rk262ah.jpg";
const BA302OZ: &str = "plate-ba302oz.jpg";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn models_present() {
    let dir = anpr_recognizer::default_models_dir();
    let det = dir.join(anpr_recognizer::DETECTOR_FILE);
    assert!(
        det.is_file(),
        "model {} is missing: run scripts/fetch-models (scripts/setup calls it) or set ANPR_MODELS_DIR",
        det.display()
    );
}

struct Cam {
    media: tempfile::TempDir,
    state: tempfile::TempDir,
    frames: tempfile::TempDir,
}

impl Cam {
    fn new() -> Self {
        models_present();
        Self {
            media: tempfile::tempdir().unwrap(),
            state: tempfile::tempdir().unwrap(),
            frames: tempfile::tempdir().unwrap(),
        }
    }

    /// The agent's configuration (its MQTT, S3 and credentials settings unused here) with a
    /// `[recognizer]` section grouping with `gap_ms` and `window_ms`, keeping `save`.
    fn config(&self, quota: Option<u64>, gap_ms: u64, window_ms: u64, save: SaveMode) -> Config {
        let camera = CameraId::parse("cam-frames").unwrap();
        Config::builder(camera, self.media.path(), self.state.path())
            .mqtt(MqttSection::new(
                "localhost",
                "/nonexistent/ca.pem",
                "/nonexistent/cert.pem",
                "/nonexistent/key.pem",
            ))
            .upload(UploadSection::new("media", "us-east-1"))
            .credentials(CredentialsSection::new("localhost", "anpr-camera"))
            .media_quota_bytes(quota)
            .recognizer(Some(RecognizerSection {
                group_gap_ms: gap_ms,
                group_window_ms: window_ms,
                save,
                ..RecognizerSection::new(self.frames.path())
            }))
            .build()
            .expect("valid config")
    }

    /// Drops a copy of `src` into the watch directory as `name`, the way a camera should:
    /// written under a temporary name, then renamed.
    fn drop_frame(&self, src: &Path, name: &str) {
        let tmp = self.frames.path().join(format!("{name}.tmp"));
        std::fs::copy(src, &tmp).unwrap();
        std::fs::rename(&tmp, self.frames.path().join(name)).unwrap();
    }

    fn frames_left(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.frames.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

struct Running {
    feed: FeedHandle,
    stop: tokio::sync::watch::Sender<bool>,
    outbox: OutboxHandle,
}

impl Running {
    fn start(cfg: &Config) -> Self {
        let outbox = open_outbox(cfg).unwrap();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let feed = spawn(cfg, outbox.clone(), rx).expect("feed starts");
        Self { feed, stop, outbox }
    }

    fn wait(&self, what: &str, secs: u64, cond: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond(self) {
            assert!(!self.feed.is_finished(), "the feed stopped by itself");
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn depth(&self) -> u64 {
        self.outbox.lock().unwrap().depth()
    }

    /// Stops the feed; its stats and every read in the outbox.
    fn stop(self, cfg: &Config) -> (FeedStats, Vec<PlateRead>) {
        self.stop.send(true).unwrap();
        let stats = self.feed.join().expect("the feed did not panic");
        drop(self.outbox);
        (stats, outbox_reads(cfg))
    }
}

/// The reads in the outbox, oldest first (reopened: reads found on disk are due at once).
fn outbox_reads(cfg: &Config) -> Vec<PlateRead> {
    let ob = open_outbox(cfg).unwrap();
    let mut ob = ob.lock().unwrap();
    let depth = ob.depth();
    let Some(b) = ob.next_batch(0) else {
        return Vec::new();
    };
    let batch: PlateReadBatch = anpr_protocol::decode(&b.payload).unwrap();
    assert_eq!(batch.r.len() as u64, depth, "every read in one batch");
    batch.r
}

#[test]
fn the_same_plate_dropped_three_times_in_a_row_becomes_one_plate_read_with_its_crop_saved() {
    let cam = Cam::new();
    let cfg = cam.config(None, 1500, 60_000, SaveMode::Crop);
    let run = Running::start(&cfg);
    for i in 1..=3 {
        cam.drop_frame(&data(RK262AH), &format!("frame-{i}.jpg"));
    }
    run.wait("one read in the outbox", 120, |r| r.depth() >= 1);
    // The frames leave the watch directory once their read is out.
    run.wait("the frames deleted", 30, |_| cam.frames_left().is_empty());
    // "Only one read" is checked once a later event proves a second would have come: a frame
    // of another plate, dropped now, is read only after its own group gap, which is longer
    // than what is left of the first group's.
    cam.drop_frame(&data(BA302OZ), "frame-4.jpg");
    run.wait("the later plate's read", 120, |r| r.depth() >= 2);
    let (stats, reads) = run.stop(&cfg);

    assert_eq!(stats.frames, 4, "{stats:?}");
    assert_eq!(stats.plate_reads, 2, "{stats:?}");
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert_eq!(reads[1].p, "BA302OZ", "{reads:?}");
    let r = &reads[0];
    assert_eq!(r.p, "RK262AH");
    assert!(r.c >= 50, "confidence {}", r.c);
    let img = r.img.as_ref().expect("the read names its crop");
    assert!(img.as_str().starts_with("reads/"), "{img}");
    let resolved = anpr_camera::media::resolve(&cfg.media_dir, img).expect("requestable");
    let crop = anpr_recognizer::open_image(&resolved.path).expect("the crop is a JPEG");
    let frame = anpr_recognizer::open_image(&data(RK262AH)).unwrap();
    let [x, y, w, h] = r.bb.expect("box");
    assert!(
        x + w <= frame.width() && y + h <= frame.height() && w > 2 * h,
        "plate box {:?} in a {}x{} frame",
        r.bb,
        frame.width(),
        frame.height()
    );
    assert!(
        crop.width() >= w && crop.width() < frame.width() / 2 && crop.height() >= h,
        "crop {}x{} for box {:?}",
        crop.width(),
        crop.height(),
        r.bb
    );
    // The read's time is the best frame's (its mtime), not the time it was recognised.
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(r.t <= now_ms && r.t + 120_000 > now_ms, "t {}", r.t);
}

#[test]
fn a_garbage_jpg_is_deleted_and_counted_and_the_frames_around_it_are_still_read() {
    let cam = Cam::new();
    let cfg = cam.config(None, 300, 5000, SaveMode::Frame);
    // A file still being written under a temporary name is left alone.
    std::fs::write(cam.frames.path().join("partial.jpg.tmp"), b"\xff\xd8").unwrap();
    let run = Running::start(&cfg);
    cam.drop_frame(&data(BA302OZ), "1.jpg");
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(
        cam.frames.path().join("2.jpg"),
        b"\xff\xd8\xff\xe0 not a jpeg at all",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    cam.drop_frame(&data(RK262AH), "3.jpg");
    run.wait("two reads", 120, |r| r.depth() >= 2);
    run.wait("frames deleted", 30, |_| {
        cam.frames_left() == ["partial.jpg.tmp"]
    });
    let (stats, reads) = run.stop(&cfg);

    assert_eq!(stats.corrupt, 1, "{stats:?}");
    assert_eq!(stats.frames, 2, "{stats:?}");
    let plates: Vec<&str> = reads.iter().map(|r| r.p.as_str()).collect();
    assert_eq!(plates, ["BA302OZ", "RK262AH"], "in frame order");
    // save = "frame": the whole frame, byte for byte.
    let saved = cfg.media_dir.join(reads[0].img.as_ref().unwrap().as_str());
    assert_eq!(
        std::fs::read(saved).unwrap(),
        std::fs::read(data(BA302OZ)).unwrap()
    );
}

#[test]
fn a_passage_still_open_at_shutdown_is_flushed_to_the_outbox_and_a_frame_left_before_start_is_read()
{
    let cam = Cam::new();
    // A long gap: the group would stay open for a minute.
    let cfg = cam.config(None, 60_000, 60_000, SaveMode::None);
    cam.drop_frame(&data(BA302OZ), "left-over.jpg");
    let run = Running::start(&cfg);
    run.wait("the frame read", 120, |r| r.feed.frames_read() >= 1);
    assert_eq!(run.depth(), 0, "the passage is still open");
    assert_eq!(
        cam.frames_left(),
        ["left-over.jpg"],
        "its frame is kept until its read is out"
    );
    let (stats, reads) = run.stop(&cfg);
    assert_eq!(stats.plate_reads, 1, "{stats:?}");
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].p, "BA302OZ");
    assert_eq!(reads[0].img, None, "save = none");
    assert!(cam.frames_left().is_empty());
}

#[test]
fn the_quota_deletes_the_oldest_media_but_never_a_file_the_journal_says_is_being_uploaded() {
    let cam = Cam::new();
    let media = cam.media.path();
    let old = SystemTime::now() - Duration::from_secs(3600);
    let write_old = |name: &str, len: usize, age: Duration| {
        let p = media.join(name);
        std::fs::write(&p, vec![1u8; len]).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old - age)
            .unwrap();
    };
    // The oldest file is being uploaded; exactly at the quota before any crop is saved.
    write_old("uploading.mp4", 40_000, Duration::from_secs(600));
    write_old("old.mp4", 15_000, Duration::ZERO);
    let journal = Journal::open(cam.state.path()).unwrap();
    journal
        .put(&Entry {
            req: FileRequest {
                id: RequestId::parse("01UPLOADING000000000000000").unwrap(),
                file: FileName::parse("uploading.mp4").unwrap(),
                at: 1,
                exp: u64::MAX / 2,
            },
            phase: Phase::Uploading {
                size: 40_000,
                multipart: None,
            },
        })
        .unwrap();
    let cfg = cam.config(Some(55_000), 300, 5000, SaveMode::Crop);
    let run = Running::start(&cfg);
    cam.drop_frame(&data(RK262AH), "f.jpg");
    run.wait("a read", 120, |r| r.depth() >= 1);
    run.wait("the old file deleted", 30, |_| {
        !media.join("old.mp4").exists()
    });
    let (stats, reads) = run.stop(&cfg);

    assert!(
        media.join("uploading.mp4").is_file(),
        "the upload's file is kept"
    );
    assert_eq!(stats.quota_deleted, 1, "{stats:?}");
    let crop = media.join(reads[0].img.as_ref().unwrap().as_str());
    assert!(
        crop.is_file(),
        "the new crop is kept: the quota is met without it"
    );
}

#[test]
fn a_new_minimum_confidence_from_the_agent_retunes_the_running_feed() {
    let cam = Cam::new();
    let cfg = cam.config(None, 300, 5000, SaveMode::Crop);
    let outbox = open_outbox(&cfg).unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let (settings_tx, settings) = tokio::sync::watch::channel(cfg.clone());
    let feed = anpr_frames::spawn_with_settings(&cfg, outbox.clone(), rx, settings).unwrap();
    let run = Running { feed, stop, outbox };

    // What the agent sends when the cloud sets recognizer_min_confidence = 100: no read of a
    // real photo scores a perfect 1.0, so the frame gives no read. (The other photo: the same
    // one twice in a row, with no passage open, would be a still frame, deleted unread.)
    let mut strict = cfg.clone();
    strict.recognizer.as_mut().unwrap().min_score = 1.0;
    settings_tx.send_replace(strict);
    run.wait("the strict setting applied", 30, |r| r.feed.retunes() >= 1);
    cam.drop_frame(&data(BA302OZ), "strict.jpg");
    run.wait("the frame read", 120, |r| r.feed.frames_read() >= 1);
    run.wait("the frame deleted", 30, |_| cam.frames_left().is_empty());
    assert_eq!(run.depth(), 0, "a read below the new minimum was kept");

    // Back to the file's setting: the same plate is read again.
    settings_tx.send_replace(cfg.clone());
    run.wait("the file's setting applied", 30, |r| r.feed.retunes() >= 2);
    cam.drop_frame(&data(RK262AH), "relaxed.jpg");
    run.wait("one read in the outbox", 120, |r| r.depth() >= 1);
    let (_, reads) = run.stop(&cfg);
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].p, "RK262AH");
}

#[test]
fn only_the_lane_is_read_and_its_plate_box_comes_back_in_frame_pixels() {
    // The photo's plate is at about (77, 180), 83×19, in a 364×260 frame.
    // A lane above the plate: the frame is read, no plate found, the frame deleted.
    let cam = Cam::new();
    let mut cfg = cam.config(None, 500, 10_000, SaveMode::None);
    cfg.recognizer.as_mut().unwrap().roi = Some([0, 0, 364, 120]);
    let run = Running::start(&cfg);
    cam.drop_frame(&data(RK262AH), "above.jpg");
    run.wait("the frame read", 120, |r| r.feed.frames_read() >= 1);
    run.wait("the frame deleted", 30, |_| cam.frames_left().is_empty());
    let (stats, reads) = run.stop(&cfg);
    assert_eq!((stats.frames, stats.reads), (1, 0), "{stats:?}");
    assert!(reads.is_empty(), "{reads:?}");

    // The lane with the plate: read, its box in the frame's pixels, not the lane's.
    let cam = Cam::new();
    let mut cfg = cam.config(None, 500, 10_000, SaveMode::None);
    cfg.recognizer.as_mut().unwrap().roi = Some([0, 140, 364, 120]);
    let run = Running::start(&cfg);
    cam.drop_frame(&data(RK262AH), "lane.jpg");
    run.wait("the lane's read", 120, |r| r.depth() >= 1);
    let (_, reads) = run.stop(&cfg);
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0].p, "RK262AH");
    let [x, y, w, h] = reads[0].bb.expect("box");
    assert!(
        (170..=190).contains(&y) && (65..=90).contains(&x) && w > 2 * h,
        "box {:?}: in frame pixels the plate is at about (77, 180)",
        reads[0].bb
    );
}

/// A sink noting when each read arrives.
#[derive(Debug)]
struct Timed(Arc<Mutex<Vec<Instant>>>);

impl ReadSink for Timed {
    fn append(&mut self, _read: PlateRead) -> Result<(), SinkError> {
        self.0.lock().unwrap().push(Instant::now());
        Ok(())
    }
    fn finish(&mut self) {}
}

#[test]
fn a_feed_that_read_a_backlog_for_longer_than_its_idle_time_still_waits_that_long_before_it_exits()
{
    let cam = Cam::new();
    let cfg = cam.config(None, 500, 10_000, SaveMode::None);
    for i in 0..8 {
        cam.drop_frame(&data(RK262AH), &format!("f{i}.jpg"));
    }
    let arrived = Arc::new(Mutex::new(Vec::new()));
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let (_keep, settings) = tokio::sync::watch::channel(FeedSettings::of(&cfg).unwrap());
    let idle = Duration::from_secs(1);
    let start = Instant::now();
    let stats = anpr_frames::run_feed(
        &cfg,
        Box::new(Timed(arrived.clone())),
        &shutdown,
        settings,
        Some(idle),
    )
    .unwrap();
    let exited = Instant::now();
    assert_eq!((stats.frames, stats.plate_reads), (8, 1), "{stats:?}");
    let read_out = *arrived.lock().unwrap().last().expect("the passage's read");
    assert!(
        read_out - start > idle,
        "the backlog (and the models' loading) must take longer than the idle time for this \
         test to mean anything: {:?}",
        read_out - start
    );
    // The passage's read goes out in the first idle round after the backlog; the exit comes
    // `idle` after the backlog's last frame, not at once.
    assert!(
        exited - read_out >= idle / 2,
        "exited {:?} after the passage's read (idle time {idle:?})",
        exited - read_out
    );
}
