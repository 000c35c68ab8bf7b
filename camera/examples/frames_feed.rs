//! Measures the frame feed through the whole agent (`anpr-camera run` with a `[recognizer]`
//! section, recognizer threads = 1, against the real stand-ins; moto started and
//! `ANPR_MOTO_URL` set, like the tests): a backlog of frames is dropped in the watch
//! directory at once, as if captured at 5 frames/s, and the agent drains it. Prints frames/s
//! from the first drop until the watch directory is empty again (every frame recognised,
//! grouped, its read in the outbox and its crop saved), and the memory of the agent and of the
//! frame feed's process (`anpr-frames`, next to the agent) while feeding and idle after it
//! (models loaded), and the plate reads the cloud received: with truth files beside the photos
//! (`NAME.txt`, as `anpr-camera eval` reads them), how many photos' plates were reported
//! exactly and how many reads are no photo's plate, each listed. Not a test: it prints figures.
//!
//! ```sh
//! ANPR_CAMERA_BIN=/path/to/release/anpr-camera [ANPR_MEASURE_FRAMES=DIR] [ANPR_MEASURE_COPIES=N] \
//!   [ANPR_MEASURE_PASSAGE=N] cargo run -p anpr-camera --example frames_feed
//! ```
//!
//! `ANPR_MEASURE_FRAMES`: a directory of JPEGs (default: `camera/tests/data`); each is dropped
//! `ANPR_MEASURE_COPIES` times (default 1 for a directory given, 30 for the default), the
//! photos in turn; within a turn each photo is dropped `ANPR_MEASURE_PASSAGE` times in a row
//! (default 1): a vehicle's passage of that many frames.
//! `ANPR_MEASURE_DETECTOR`, `ANPR_MEASURE_READER`: the camera's `recognizer.detector` and
//! `recognizer.reader` (default the camera's, `plate` and `ppocr`);
//! `ANPR_MEASURE_SECOND_DETECTOR`: its `recognizer.second_detector` (`plate`, `ppocr` or
//! `none`; default the camera's, `plate`);
//! `ANPR_MEASURE_CONFIRM_READER`: its `recognizer.confirm_reader` (`plate`, `ppocr` or `none`;
//! default the camera's, `plate`);
//! `ANPR_MEASURE_FAINT_LOOK`: its `recognizer.faint_look` (`true` or `false`; default the
//! camera's, `true`); `ANPR_MEASURE_REGION`: its `recognizer.region` (`auto`, `us`, `eu` or
//! `br`; default the camera's, `auto`); `ANPR_MEASURE_DETECTOR_SIDE` and
//! `ANPR_MEASURE_FINER_SIDE`: its `recognizer.detector_side` and `recognizer.finer_side`
//! (pixels; default the camera's, 960 and 1120); `ANPR_MEASURE_FINER_BELOW` and
//! `ANPR_MEASURE_REREAD_BELOW`: its `recognizer.finer_below` and `recognizer.reread_below` (a
//! score, 0..=1; default the camera's).

#[path = "../tests/common/mod.rs"]
mod common;

use anpr_camera::config::{ConfirmReader, RecognizerSection, SecondDetector};
use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bin = std::env::var("ANPR_CAMERA_BIN").unwrap_or_else(|_| {
        let t = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        format!("{t}/release/anpr-camera")
    });
    let given = std::env::var_os("ANPR_MEASURE_FRAMES").map(PathBuf::from);
    let copies: usize = std::env::var("ANPR_MEASURE_COPIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if given.is_some() { 1 } else { 30 });
    let src_dir =
        given.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data"));
    let mut photos: Vec<PathBuf> = std::fs::read_dir(&src_dir)
        .expect("frames directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")))
        .collect();
    photos.sort();
    assert!(!photos.is_empty(), "no .jpg in {}", src_dir.display());
    let passage: usize = std::env::var("ANPR_MEASURE_PASSAGE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let frames: Vec<&PathBuf> = (0..copies)
        .flat_map(|_| photos.iter())
        .flat_map(|p| std::iter::repeat_n(p, passage))
        .collect();
    let detector = std::env::var("ANPR_MEASURE_DETECTOR")
        .map_or(Ok(Default::default()), |s| s.parse())
        .expect("ANPR_MEASURE_DETECTOR: plate or ppocr");
    let reader = std::env::var("ANPR_MEASURE_READER")
        .map_or(Ok(Default::default()), |s| s.parse())
        .expect("ANPR_MEASURE_READER: ppocr or plate");
    let second_detector: SecondDetector = std::env::var("ANPR_MEASURE_SECOND_DETECTOR")
        .map_or(Ok(SecondDetector::default()), |s| s.parse())
        .expect("ANPR_MEASURE_SECOND_DETECTOR: plate, ppocr or none");
    let confirm_reader: ConfirmReader = std::env::var("ANPR_MEASURE_CONFIRM_READER")
        .map_or(Ok(ConfirmReader::default()), |s| s.parse())
        .expect("ANPR_MEASURE_CONFIRM_READER: plate, ppocr or none");
    let faint_look: bool = std::env::var("ANPR_MEASURE_FAINT_LOOK")
        .map_or(Ok(true), |s| s.parse())
        .expect("ANPR_MEASURE_FAINT_LOOK: true or false");
    let side = |name: &str| -> Option<u32> {
        std::env::var(name)
            .ok()
            .map(|s| s.parse().unwrap_or_else(|_| panic!("{name}: pixels")))
    };

    let region = std::env::var("ANPR_MEASURE_REGION")
        .map_or(Ok(Default::default()), |s| s.parse())
        .expect("ANPR_MEASURE_REGION: auto, us, eu or br");

    let mut stack = Stack::new("cam-feed-measure").await;
    let defaults = stack.recognizer_section();
    let detector_side = side("ANPR_MEASURE_DETECTOR_SIDE").unwrap_or(defaults.detector_side);
    let finer_side = side("ANPR_MEASURE_FINER_SIDE").unwrap_or(defaults.finer_side);
    let reread_below = std::env::var("ANPR_MEASURE_REREAD_BELOW")
        .ok()
        .map(|s| {
            s.parse()
                .expect("ANPR_MEASURE_REREAD_BELOW: a score, 0..=1")
        })
        .or(defaults.reread_below);
    let finer_below = std::env::var("ANPR_MEASURE_FINER_BELOW")
        .map_or(Ok(defaults.finer_below), |s| s.parse())
        .expect("ANPR_MEASURE_FINER_BELOW: a score, 0..=1");
    stack.recognizer = Some(RecognizerSection {
        threads: 1,
        group_gap_ms: 1000,
        group_window_ms: 30_000,
        // The backlog is what is measured: every frame is read (consecutive frames are
        // different photos, so the motion gate lets each through).
        max_backlog: 0,
        detector,
        reader,
        second_detector,
        confirm_reader,
        faint_look,
        detector_side,
        finer_side,
        finer_below,
        reread_below,
        region,
        ..defaults
    });
    let mut cloud = stack.cloud().await;
    let mut agent = spawn_agent(&stack, &bin, "agent.log", "info", &[]);
    let pid = agent.id();
    cloud.wait_health(60).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let [idle_rss, idle_anon] = status_kib(pid, ["VmRSS:", "RssAnon:"]);
    let feed_sum = || -> [u64; 2] {
        children(pid).into_iter().fold([0, 0], |[r, a], c| {
            let [rr, aa] = status_kib(c, ["VmRSS:", "RssAnon:"]);
            [r + rr, a + aa]
        })
    };
    let [feed_before, _] = feed_sum();

    // Written beside the watch directory, then renamed in, with capture times 200 ms apart
    // ending 1 s ago.
    let staging = tempfile::tempdir().expect("staging");
    let n = frames.len();
    let first = SystemTime::now() - Duration::from_millis(1000 + 200 * n as u64);
    let mut staged = Vec::new();
    for (i, src) in frames.iter().enumerate() {
        let name = format!("{i:05}.jpg");
        let tmp = staging.path().join(&name);
        std::fs::copy(src, &tmp).expect("copy");
        std::fs::File::options()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.set_modified(first + Duration::from_millis(200 * i as u64)))
            .expect("mtime");
        staged.push((tmp, stack.frames.path().join(name)));
    }
    let bytes: u64 = staged
        .iter()
        .map(|(p, _)| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let start = Instant::now();
    for (tmp, dest) in &staged {
        std::fs::rename(tmp, dest).expect("rename into the watch directory");
    }
    let mut peak_rss = 0;
    let mut peak_anon = 0;
    let mut feed_peak = 0;
    let mut feed_peak_anon = 0;
    let deadline = start + Duration::from_secs(1800);
    loop {
        let [rss, anon] = status_kib(pid, ["VmRSS:", "RssAnon:"]);
        peak_rss = peak_rss.max(rss);
        peak_anon = peak_anon.max(anon);
        let [f, fa] = feed_sum();
        feed_peak = feed_peak.max(f);
        feed_peak_anon = feed_peak_anon.max(fa);
        let left = std::fs::read_dir(stack.frames.path())
            .map(|d| d.count())
            .unwrap_or(0);
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} frames still there");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let [hwm] = status_kib(pid, ["VmHWM:"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let [feed_after, feed_after_anon] = feed_sum();
    // The plate reads as the cloud receives them (the last passages close after the gap):
    // collected until none has come for 3 s.
    let mut received = usize::MAX;
    while cloud.plates.len() != received {
        received = cloud.plates.len();
        cloud.collect_for(Duration::from_secs(3)).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = agent.wait();
    let log = std::fs::read_to_string(stack.state.path().join("agent.log")).unwrap_or_default();
    let stats = log
        .lines()
        .find(|l| l.contains("frame feed stopped"))
        .unwrap_or("(no stats line in the log)");
    println!(
        "frames: {n} ({} photos x {copies}, each {passage} in a row) from {}, {:.1} kB on average",
        photos.len(),
        src_dir.display(),
        bytes as f64 / n as f64 / 1000.0
    );
    println!(
        "feed: {secs:.2} s for {n} frames = {:.2} frames/s ({:.0} ms/frame), drop to empty watch dir",
        n as f64 / secs,
        secs * 1000.0 / n as f64
    );
    println!(
        "agent RSS before the frames: {idle_rss} KiB ({idle_anon} KiB anonymous); frame feed process {feed_before} KiB (no model loaded)"
    );
    println!(
        "agent RSS while feeding: peak sampled {peak_rss} KiB ({peak_anon} KiB anonymous), VmHWM {hwm} KiB"
    );
    println!(
        "frame feed process while feeding: peak sampled {feed_peak} KiB ({feed_peak_anon} KiB anonymous); idle after, models loaded: {feed_after} KiB ({feed_after_anon} KiB anonymous)"
    );
    println!("{stats}");
    println!("{}", plates_against_truths(&cloud, &photos, &src_dir));
}

/// The plate reads received against the plates of the photos that have a truth file beside
/// them (`NAME.txt`, as `anpr-camera eval` reads): how many photos' plates were reported
/// exactly, and how many reads are no photo's plate (other text of a frame, misreads).
fn plates_against_truths(cloud: &Cloud, photos: &[PathBuf], dir: &std::path::Path) -> String {
    let reads: Vec<String> = cloud
        .plates
        .iter()
        .flat_map(|p| {
            anpr_protocol::decode::<anpr_protocol::PlateReadBatch>(p)
                .expect("a plate batch")
                .r
        })
        .map(|r| r.p)
        .collect();
    let truths = anpr_recognizer::eval::annotated_in(dir).unwrap_or_default();
    let plates: Vec<&str> = truths
        .iter()
        .filter(|(_, t)| photos.iter().any(|p| p.ends_with(&t.file)))
        .map(|(_, t)| t.plate.as_str())
        .collect();
    if plates.is_empty() {
        return format!(
            "plate reads received: {} (no truth files beside the photos)",
            reads.len()
        );
    }
    let other: Vec<&str> = reads
        .iter()
        .map(String::as_str)
        .filter(|r| !plates.contains(r))
        .collect();
    let missed: Vec<&str> = plates
        .iter()
        .copied()
        .filter(|t| !reads.iter().any(|r| r == t))
        .collect();
    let exact = plates.len() - missed.len();
    format!(
        "plate reads received: {}; photos whose plate was reported exactly: {exact} of {}; \
         reads that are no photo's plate: {}\nnot reported exactly: {}\nno photo's plate: {}",
        reads.len(),
        plates.len(),
        other.len(),
        missed.join(" "),
        other.join(" ")
    )
}
