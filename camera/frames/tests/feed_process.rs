//! The `anpr-frames feed` program from the agent's side of its pipe (the real binary, the real
//! recognizer on a real photo; needs the models of `scripts/fetch-models`): a read comes out on
//! stdout and its frame stays in the watch directory until the read is answered; a feed whose
//! agent goes away before answering keeps the frame; a feed that cannot start says so with
//! exit status 3; frames without motion in the lane are deleted unread and a backlog beyond
//! `max_backlog` is thinned, both counted to the agent.

use anpr_camera::Config;
use anpr_camera::config::{CredentialsSection, MqttSection, RecognizerSection, UploadSection};
use anpr_camera::feed_link::{EXIT_CANNOT_START, FeedCounts, FromFeed, ToFeed, line};
use anpr_protocol::CameraId;
use anpr_recognizer::image;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

const PHOTO: &str = "../tests/data/plate-rk262ah.jpg";

fn photo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(PHOTO)
}

struct Camera {
    dir: tempfile::TempDir,
}

impl Camera {
    fn new() -> Self {
        Camera {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn frames(&self) -> PathBuf {
        self.dir.path().join("frames")
    }

    /// The configuration file of a camera whose passages close half a second after their last
    /// frame.
    fn config(&self, models: &Path) -> PathBuf {
        self.config_with(models, |_| {})
    }

    /// [`Camera::config`] with its `[recognizer]` section changed by `tune`.
    fn config_with(&self, models: &Path, tune: impl FnOnce(&mut RecognizerSection)) -> PathBuf {
        let d = self.dir.path();
        let mut section = RecognizerSection {
            models_dir: Some(models.to_path_buf()),
            group_gap_ms: 500,
            ..RecognizerSection::new(self.frames())
        };
        tune(&mut section);
        let cfg = Config::builder(
            CameraId::parse("cam-feed").unwrap(),
            d.join("media"),
            d.join("state"),
        )
        .mqtt(MqttSection::new(
            "localhost",
            d.join("ca.pem"),
            d.join("cert.pem"),
            d.join("key.pem"),
        ))
        .upload(UploadSection::new("media", "us-east-1"))
        .credentials(CredentialsSection::new("localhost", "anpr-camera"))
        .recognizer(Some(section))
        .build()
        .unwrap();
        std::fs::create_dir_all(d.join("media")).unwrap();
        let path = d.join("camera.toml");
        std::fs::write(&path, cfg.to_toml().unwrap()).unwrap();
        path
    }

    fn drop_frame(&self, name: &str) -> PathBuf {
        self.drop_bytes(name, &std::fs::read(photo()).unwrap(), None)
    }

    /// Writes `bytes` as the frame `name` (aside, then renamed), captured at `at` if given.
    fn drop_bytes(&self, name: &str, bytes: &[u8], at: Option<SystemTime>) -> PathBuf {
        std::fs::create_dir_all(self.frames()).unwrap();
        let tmp = self.frames().join(format!("{name}.tmp"));
        std::fs::write(&tmp, bytes).unwrap();
        if let Some(t) = at {
            std::fs::File::options()
                .write(true)
                .open(&tmp)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        let to = self.frames().join(name);
        std::fs::rename(&tmp, &to).unwrap();
        to
    }

    fn frames_left(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.frames())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn wait_gone(&self, what: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.frames_left().is_empty() {
            assert!(
                Instant::now() < deadline,
                "{what}: {:?}",
                self.frames_left()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The photo with a dark box painted over `[x, y, w, h]`, as a JPEG: the same scene with
/// something new in that part of it.
fn photo_with_box([x, y, w, h]: [u32; 4]) -> Vec<u8> {
    let mut img = anpr_recognizer::open_image(&photo()).unwrap().to_rgb8();
    for yy in y..y + h {
        for xx in x..x + w {
            img.put_pixel(xx, yy, image::Rgb([25, 25, 35]));
        }
    }
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

fn models() -> PathBuf {
    let dir = anpr_recognizer::default_models_dir();
    assert!(
        dir.join(anpr_recognizer::DETECTOR_FILE).is_file(),
        "models missing in {}: run scripts/fetch-models (scripts/setup calls it)",
        dir.display()
    );
    dir
}

/// The feed, its stdin, its stdout lines arriving on a channel, and the counts it sent.
struct Feed {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    counts: FeedCounts,
}

impl Feed {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_anpr-frames"))
            .arg("feed")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let stdin = child.stdin.take();
        Feed {
            child,
            stdin,
            lines,
            counts: FeedCounts::default(),
        }
    }

    /// The next message within `secs`, counts added to `self.counts`; `None` at the end of the
    /// output or after `secs`.
    fn next(&mut self, secs: u64) -> Option<FromFeed> {
        let l = self.lines.recv_timeout(Duration::from_secs(secs)).ok()?;
        let msg = serde_json::from_str::<FromFeed>(&l).unwrap();
        if let FromFeed::Counts(c) = msg {
            self.counts = self.counts.plus(c);
        }
        Some(msg)
    }

    /// The next read (counts on the way are added up).
    fn next_read(&mut self, secs: u64) -> anpr_protocol::PlateRead {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).as_secs() + 1;
            match self.next(left) {
                Some(FromFeed::Read { read }) => return read,
                Some(FromFeed::Counts(_)) => {}
                None => panic!("no read from the feed within {secs} s"),
            }
        }
    }

    /// Waits until the counts received satisfy `done`.
    fn wait_counts(&mut self, secs: u64, done: impl Fn(&FeedCounts) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done(&self.counts) {
            assert!(
                Instant::now() < deadline,
                "counts so far: {:?}",
                self.counts
            );
            if let Some(FromFeed::Read { read }) = self.next(1) {
                panic!("an unexpected read: {read:?}");
            }
        }
    }

    /// Stops the feed and reads what it still writes until it exits: the reads (answered as
    /// the agent would), its counts added up.
    fn stop(&mut self) -> Vec<anpr_protocol::PlateRead> {
        self.send(&ToFeed::Stop);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut reads = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => match serde_json::from_str::<FromFeed>(&l).unwrap() {
                    FromFeed::Read { read } => {
                        reads.push(read);
                        self.send(&ToFeed::Ack);
                    }
                    FromFeed::Counts(c) => self.counts = self.counts.plus(c),
                },
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    assert!(Instant::now() < deadline, "the feed did not stop");
                }
            }
        }
        let status = self.wait(30);
        assert!(status.success(), "{status:?}");
        reads
    }

    fn send(&mut self, msg: &ToFeed) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(&line(msg).unwrap()).unwrap();
        stdin.flush().unwrap();
    }

    fn wait(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "the feed did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_frame_stays_until_its_read_is_answered_then_goes_and_stop_ends_the_feed() {
    let cam = Camera::new();
    let frame = cam.drop_frame("gate.jpg");
    let mut feed = Feed::start(&cam.config(&models()));

    let read = feed.next_read(120);
    assert_eq!(read.p, "RK262AH");
    assert!(read.img.is_some(), "the crop is named");
    // Not answered yet: the frame stays, whatever the wait.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        frame.exists(),
        "the frame went before the read was answered"
    );

    feed.send(&ToFeed::Ack);
    let deadline = Instant::now() + Duration::from_secs(10);
    while frame.exists() {
        assert!(Instant::now() < deadline, "the answered read's frame stays");
        std::thread::sleep(Duration::from_millis(20));
    }
    feed.send(&ToFeed::Stop);
    let status = feed.wait(30);
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_feed_whose_agent_goes_away_before_answering_keeps_the_frame() {
    let cam = Camera::new();
    let frame = cam.drop_frame("gate.jpg");
    let mut feed = Feed::start(&cam.config(&models()));
    let read = feed.next_read(120);
    assert_eq!(read.p, "RK262AH");

    // The agent dies: its end of the pipe closes, no answer comes.
    drop(feed.stdin.take());
    let status = feed.wait(30);
    assert!(status.success(), "{status:?}");
    assert!(
        frame.exists(),
        "a read not handed over keeps its frame for the next start"
    );
}

#[test]
fn a_feed_without_its_models_exits_with_the_status_that_says_it_cannot_start() {
    let cam = Camera::new();
    let cfg = cam.config(&cam.dir.path().join("no-models"));
    let out = Command::new(env!("CARGO_BIN_EXE_anpr-frames"))
        .arg("feed")
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(EXIT_CANNOT_START));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-models"), "{err}");
    assert!(out.stdout.is_empty(), "nothing but messages on stdout");
}

/// The photo's plate is at about (77, 180), 83×19, in a 364×260 frame: the lane below y = 140.
const LANE: [u32; 4] = [0, 140, 364, 120];

#[test]
fn frames_without_motion_in_the_lane_are_deleted_unread_and_counted_and_a_change_in_it_is_read() {
    let cam = Camera::new();
    let cfg = cam.config_with(&models(), |r| r.roi = Some(LANE));
    let mut feed = Feed::start(&cfg);
    feed.send(&ToFeed::WantCounts);

    // The first frame is read (nothing to compare it with), its passage closes, its read
    // comes out.
    cam.drop_frame("gate.jpg");
    assert_eq!(feed.next_read(120).p, "RK262AH");
    feed.send(&ToFeed::Ack);
    cam.wait_gone("the read frame deleted", 10);

    // The same scene again, no passage open: deleted unread, counted, no read.
    for i in 1..=3 {
        cam.drop_frame(&format!("still-{i}.jpg"));
    }
    feed.wait_counts(60, |c| c.still == 3);
    cam.wait_gone("the still frames deleted", 10);
    // Something new above the lane (the other carriageway) is no motion in it.
    cam.drop_bytes("above.jpg", &photo_with_box([0, 0, 364, 120]), None);
    feed.wait_counts(60, |c| c.still == 4);
    cam.wait_gone("the frame changed above the lane deleted", 10);

    // Something new in the lane (beside the plate): read, and the plate comes out again.
    cam.drop_bytes("lane.jpg", &photo_with_box([220, 150, 130, 100]), None);
    assert_eq!(feed.next_read(120).p, "RK262AH");
    feed.send(&ToFeed::Ack);
    cam.wait_gone("the read frame deleted", 10);

    let reads = feed.stop();
    assert!(reads.is_empty(), "{reads:?}");
    assert_eq!(
        feed.counts,
        FeedCounts {
            still: 4,
            ..FeedCounts::default()
        }
    );
}

#[test]
fn a_backlog_beyond_the_limit_is_thinned_and_counted_and_its_passage_is_still_read() {
    let cam = Camera::new();
    // Twenty frames of one car captured at 5 frames/s a minute ago, waiting when the feed
    // starts; at most 4 waiting frames, passages closing 2 s after their last read.
    let bytes = std::fs::read(photo()).unwrap();
    let captured = SystemTime::now() - Duration::from_secs(60);
    for i in 0..20u64 {
        let at = captured + Duration::from_millis(200 * i);
        cam.drop_bytes(&format!("{i:02}.jpg"), &bytes, Some(at));
    }
    let cfg = cam.config_with(&models(), |r| {
        r.max_backlog = 4;
        r.group_gap_ms = 2000;
    });
    let mut feed = Feed::start(&cfg);
    feed.send(&ToFeed::WantCounts);

    // 16 over the limit: every 4th of them read (4), the newest 4 read, 12 deleted unread.
    let read = feed.next_read(120);
    assert_eq!(read.p, "RK262AH");
    feed.send(&ToFeed::Ack);
    cam.wait_gone("every frame deleted", 30);
    let reads = feed.stop();
    assert!(reads.is_empty(), "one passage, one read: {reads:?}");
    assert_eq!(
        feed.counts,
        FeedCounts {
            dropped: 12,
            ..FeedCounts::default()
        }
    );
}
