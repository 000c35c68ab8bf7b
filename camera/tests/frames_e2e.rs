//! The whole camera: the `anpr-camera run` binary with a `[recognizer]` section, against the
//! Mosquitto stand-in of IoT Core, the credentials stand-in and moto's S3 (run through
//! `scripts/test`, which starts moto). A frame dropped in the watch directory arrives on the
//! plate topic as a plate read, and the crop it names is then requested and uploaded; the
//! frames the feed deleted unread are counted in the next health report.

mod common;

use anpr_camera::config::RecognizerSection;
use anpr_protocol::{FeedCounts, Health, PlateReadBatch};
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_dropped_in_the_watch_dir_reaches_the_plate_topic_and_its_crop_can_be_requested() {
    assert_feed_installed();
    let det = anpr_recognizer::default_models_dir().join(anpr_recognizer::DETECTOR_FILE);
    assert!(
        det.is_file(),
        "model {} is missing: run scripts/fetch-models (scripts/setup calls it) or set ANPR_MODELS_DIR",
        det.display()
    );
    let mut stack = Stack::new("cam-feed").await;
    stack.recognizer = Some(RecognizerSection {
        group_gap_ms: 500,
        group_window_ms: 10_000,
        ..stack.recognizer_section()
    });
    let mut cloud = stack.cloud().await;
    let mut agent = spawn_agent(
        &stack,
        env!("CARGO_BIN_EXE_anpr-camera"),
        "agent.log",
        "info",
        &[],
    );
    cloud.wait_health(30).await;

    drop_frame(&stack, "gate.jpg");

    // The outbox sends a batch when its oldest read is 30 s old (or 1000 reads wait).
    cloud
        .wait_until(120, "a plate batch", |c| !c.plates.is_empty())
        .await;
    let batch: PlateReadBatch = anpr_protocol::decode(&cloud.plates[0]).unwrap();
    assert_eq!(batch.r.len(), 1, "{batch:?}");
    let read = &batch.r[0];
    assert_eq!(read.p, "RK262AH");
    let img = read.img.clone().expect("the read names its crop");
    assert!(
        !stack.frames.path().join("gate.jpg").exists(),
        "the frame is gone once read"
    );

    // The web user asks for the crop of that read.
    let id = "01CROPREQUEST0000000000000";
    cloud.request(id, img.as_str()).await;
    cloud.wait_status(id, 60, is_uploaded).await;
    let saved = std::fs::read(stack.media.path().join(img.as_str())).unwrap();
    assert_eq!(
        stack.object(&stack.key(id, img.as_str())).await.as_deref(),
        Some(&saved[..]),
        "the crop in S3 is the one saved"
    );

    let exit = sigterm_and_wait(&mut agent, 30).await;
    assert!(exit.success(), "clean exit: {exit:?}");
    let log = std::fs::read_to_string(stack.state.path().join("agent.log")).unwrap();
    assert!(log.contains("frame feed stopped"), "{log}");
    assert!(log.contains("plate_reads: 1"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_the_feed_deleted_unread_is_counted_in_the_next_health_report_and_only_there() {
    assert_feed_installed();
    let mut stack = Stack::new("cam-feedcounts").await;
    stack.recognizer = Some(RecognizerSection {
        group_gap_ms: 500,
        group_window_ms: 10_000,
        ..stack.recognizer_section()
    });
    let mut cloud = stack.cloud().await;
    let mut agent = spawn_agent(
        &stack,
        env!("CARGO_BIN_EXE_anpr-camera"),
        "agent.log",
        "info,anpr_frames=debug",
        &[],
    );
    let first: Health = anpr_protocol::decode(&cloud.wait_health(30).await).unwrap();
    assert!(first.feed.is_zero(), "{first:?}");

    // A frame read (its passage closed, its read in the outbox), then the same scene again:
    // no motion, no passage open, deleted unread.
    drop_frame(&stack, "gate.jpg");
    wait_gone(&stack, "gate.jpg", 120).await;
    drop_frame(&stack, "again.jpg");
    wait_gone(&stack, "again.jpg", 60).await;
    wait_log(&stack, 30, "the counts handed to the agent", |l| {
        l.contains("frame counts reported")
    })
    .await;

    // A health report goes out on each connection: the link is cut, the agent reconnects.
    stack.mqtt_proxy.cut();
    stack.mqtt_proxy.restore();
    let report: Health = anpr_protocol::decode(&cloud.wait_health(60).await).unwrap();
    assert_eq!(
        report.feed,
        FeedCounts {
            still: 1,
            ..FeedCounts::default()
        },
        "{report:?}"
    );
    // Counted since the previous report: the next one has none.
    stack.mqtt_proxy.cut();
    stack.mqtt_proxy.restore();
    let next: Health = anpr_protocol::decode(&cloud.wait_health(60).await).unwrap();
    assert!(next.feed.is_zero(), "{next:?}");

    let exit = sigterm_and_wait(&mut agent, 30).await;
    assert!(exit.success(), "clean exit: {exit:?}");
    let log = std::fs::read_to_string(stack.state.path().join("agent.log")).unwrap();
    assert!(log.contains("still: 1"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_models_are_missing_still_serves_and_logs_how_to_fetch_them() {
    let mut stack = Stack::new("cam-nomodels").await;
    stack.recognizer = Some(stack.recognizer_section());
    stack.media_file("a.jpg", 1000);
    let mut cloud = stack.cloud().await;
    let mut agent = spawn_agent(
        &stack,
        env!("CARGO_BIN_EXE_anpr-camera"),
        "agent.log",
        "info",
        &[("ANPR_MODELS_DIR", "/nonexistent/models")],
    );
    cloud.wait_health(30).await;
    cloud.request("01NOMODELS0000000000000000", "a.jpg").await;
    cloud
        .wait_status("01NOMODELS0000000000000000", 60, is_uploaded)
        .await;
    agent.kill().unwrap();
    agent.wait().unwrap();
    let log = std::fs::read_to_string(stack.state.path().join("agent.log")).unwrap();
    assert!(log.contains("frame feed not started"), "{log}");
    assert!(log.contains("scripts/fetch-models"), "{log}");
}

/// `anpr-frames` next to the agent, as a camera installs them (`cargo test --workspace` builds
/// both: each package has integration tests).
fn assert_feed_installed() {
    let program =
        anpr_camera::feed_link::program_next_to(Path::new(env!("CARGO_BIN_EXE_anpr-camera")));
    assert!(
        program.is_file(),
        "{} is missing: build the workspace (`cargo test --workspace` or `cargo build --workspace`)",
        program.display()
    );
}

/// The pid of the last frame feed the agent started, from its log (`frame feed started pid=N`).
fn last_feed_pid(log: &str) -> Option<u32> {
    log.lines()
        .rev()
        .find(|l| l.contains("frame feed started"))
        .and_then(|l| l.split("pid=").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
}

/// Waits until `done(log)` holds for the agent's log, failing after `secs`.
async fn wait_log(stack: &Stack, secs: u64, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let log = std::fs::read_to_string(stack.state.path().join("agent.log")).unwrap_or_default();
        if done(&log) {
            return log;
        }
        assert!(Instant::now() < deadline, "{what}: not seen in time\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the frame `name` has left the watch directory, failing after `secs`.
async fn wait_gone(stack: &Stack, name: &str, secs: u64) {
    let path = stack.frames.path().join(name);
    let deadline = Instant::now() + Duration::from_secs(secs);
    while path.exists() {
        assert!(
            Instant::now() < deadline,
            "{name} still in the watch directory"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn drop_frame(stack: &Stack, name: &str) {
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plate-rk262ah.jpg");
    let tmp = stack.frames.path().join(format!("{name}.tmp"));
    std::fs::copy(&photo, &tmp).unwrap();
    std::fs::rename(&tmp, stack.frames.path().join(name)).unwrap();
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frame_feed_killed_while_it_holds_a_passage_is_started_again_and_the_read_arrives_once()
{
    assert_feed_installed();
    let mut stack = Stack::new("cam-feedkill").await;
    // The passage stays open 10 s after its frame (the frame's time is when it was written, so
    // a slow read eats into it): the feed is killed inside that window.
    stack.recognizer = Some(RecognizerSection {
        group_gap_ms: 10_000,
        group_window_ms: 30_000,
        ..stack.recognizer_section()
    });
    let mut cloud = stack.cloud().await;
    let mut agent = spawn_agent(
        &stack,
        env!("CARGO_BIN_EXE_anpr-camera"),
        "agent.log",
        "info,anpr_frames=debug",
        &[],
    );
    cloud.wait_health(30).await;
    let log = wait_log(&stack, 30, "the feed started", |l| {
        last_feed_pid(l).is_some()
    })
    .await;
    let first = last_feed_pid(&log).unwrap();

    drop_frame(&stack, "gate.jpg");
    wait_log(&stack, 120, "the frame read", |l| l.contains("frame read")).await;
    let status = std::process::Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        stack.frames.path().join("gate.jpg").exists(),
        "a held frame stays while its passage is open"
    );

    // Started again after its back-off; it reads the frame again and hands the read over.
    let log = wait_log(&stack, 60, "a second feed", |l| {
        last_feed_pid(l).is_some_and(|p| p != first)
    })
    .await;
    assert!(log.contains("the frame feed died"), "{log}");
    cloud
        .wait_until(120, "a plate batch", |c| !c.plates.is_empty())
        .await;
    cloud.collect_for(Duration::from_secs(2)).await;
    let reads: Vec<_> = cloud
        .plates
        .iter()
        .flat_map(|p| anpr_protocol::decode::<PlateReadBatch>(p).unwrap().r)
        .collect();
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0].p, "RK262AH");
    assert!(!stack.frames.path().join("gate.jpg").exists());

    let exit = sigterm_and_wait(&mut agent, 30).await;
    assert!(exit.success(), "clean exit: {exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_frame_feed_exits_and_is_started_again_by_the_next_frame() {
    assert_feed_installed();
    let mut stack = Stack::new("cam-feedidle").await;
    stack.recognizer = Some(RecognizerSection {
        group_gap_ms: 500,
        group_window_ms: 10_000,
        idle_exit_secs: 1,
        ..stack.recognizer_section()
    });
    let mut cloud = stack.cloud().await;
    let mut agent = spawn_agent(
        &stack,
        env!("CARGO_BIN_EXE_anpr-camera"),
        "agent.log",
        "info",
        &[],
    );
    cloud.wait_health(30).await;
    let log = wait_log(&stack, 30, "the idle feed's exit", |l| {
        l.contains("stopped until a frame arrives")
    })
    .await;
    let first = last_feed_pid(&log).expect("a feed was started with the agent");
    assert!(!alive(first), "the idle feed is gone");
    assert!(alive(agent.id()), "the agent runs on");

    drop_frame(&stack, "later.jpg");
    let log = wait_log(&stack, 60, "a feed started by the frame", |l| {
        last_feed_pid(l).is_some_and(|p| p != first)
    })
    .await;
    assert_eq!(log.matches("frame feed started").count(), 2, "{log}");
    cloud
        .wait_until(120, "a plate batch", |c| !c.plates.is_empty())
        .await;
    let batch: PlateReadBatch = anpr_protocol::decode(&cloud.plates[0]).unwrap();
    assert_eq!(batch.r[0].p, "RK262AH");

    let exit = sigterm_and_wait(&mut agent, 30).await;
    assert!(exit.success(), "clean exit: {exit:?}");
}

#[test]
fn an_agent_installed_without_the_recognizer_refuses_a_recognizer_section_at_check_saying_why() {
    assert_feed_installed();
    let dir = tempfile::tempdir().unwrap();
    // The agent alone, as a camera without the recognizer has it.
    let agent = dir.path().join("anpr-camera");
    std::fs::copy(env!("CARGO_BIN_EXE_anpr-camera"), &agent).unwrap();
    let stack_dir = tempfile::tempdir().unwrap();
    let frames = stack_dir.path().join("frames");
    let d = stack_dir.path().display();
    let text = format!(
        "camera_id = \"cam-1\"\nmedia_dir = \"{d}/media\"\nstate_dir = \"{d}/state\"\n\
         [mqtt]\nhost = \"abc-ats.iot.eu-west-1.amazonaws.com\"\nca_file = \"{d}/ca.pem\"\n\
         cert_file = \"{d}/cert.pem\"\nkey_file = \"{d}/key.pem\"\n\
         [upload]\nbucket = \"media\"\nregion = \"eu-west-1\"\n\
         [credentials]\nhost = \"abc.credentials.iot.eu-west-1.amazonaws.com\"\nrole_alias = \"anpr-camera\"\n\
         [recognizer]\nwatch_dir = \"{}\"\n",
        frames.display()
    );
    let cfg = stack_dir.path().join("camera.toml");
    std::fs::write(&cfg, &text).unwrap();

    let out = std::process::Command::new(&agent)
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("anpr-frames"), "{err}");
    assert!(err.contains("remove the [recognizer] section"), "{err}");

    // The full install (the program next to it) accepts the same file.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anpr-camera"))
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
