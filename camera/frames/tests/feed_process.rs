//! The `anpr-frames feed` program from the agent's side of its pipe (the real binary, the real
//! recognizer on a real photo; needs the models of `scripts/fetch-models`): a read comes out on
//! stdout and its frame stays in the watch directory until the read is answered; a feed whose
//! agent goes away before answering keeps the frame; a feed that cannot start says so with
//! exit status 3.

use anpr_camera::Config;
use anpr_camera::config::{CredentialsSection, MqttSection, RecognizerSection, UploadSection};
use anpr_camera::feed_link::{EXIT_CANNOT_START, FromFeed, ToFeed, line};
use anpr_protocol::CameraId;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
        let d = self.dir.path();
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
        .recognizer(Some(RecognizerSection {
            models_dir: Some(models.to_path_buf()),
            group_gap_ms: 500,
            ..RecognizerSection::new(self.frames())
        }))
        .build()
        .unwrap();
        std::fs::create_dir_all(d.join("media")).unwrap();
        let path = d.join("camera.toml");
        std::fs::write(&path, cfg.to_toml().unwrap()).unwrap();
        path
    }

    fn drop_frame(&self, name: &str) -> PathBuf {
        std::fs::create_dir_all(self.frames()).unwrap();
        let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/plate-rk262ah.jpg");
        let tmp = self.frames().join(format!("{name}.tmp"));
        std::fs::copy(&photo, &tmp).unwrap();
        let to = self.frames().join(name);
        std::fs::rename(&tmp, &to).unwrap();
        to
    }
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

/// The feed, its stdin, and its stdout lines arriving on a channel.
struct Feed {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
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
        }
    }

    fn next_read(&self, secs: u64) -> anpr_protocol::PlateRead {
        let l = self
            .lines
            .recv_timeout(Duration::from_secs(secs))
            .expect("a read from the feed");
        match serde_json::from_str::<FromFeed>(&l).unwrap() {
            FromFeed::Read { read } => read,
        }
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
