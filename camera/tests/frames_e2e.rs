//! The whole camera: the `anpr-camera run` binary with a `[recognizer]` section, against the
//! Mosquitto stand-in of IoT Core, the credentials stand-in and moto's S3 (run through
//! `scripts/test`, which starts moto). A frame dropped in the watch directory arrives on the
//! plate topic as a plate read, and the crop it names is then requested and uploaded.
#![cfg(feature = "recognizer")]

mod common;

use anpr_camera::config::RecognizerSection;
use anpr_protocol::PlateReadBatch;
use common::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_dropped_in_the_watch_dir_reaches_the_plate_topic_and_its_crop_can_be_requested() {
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

    let photo =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plate-rk262ah.jpg");
    let tmp = stack.frames.path().join("gate.jpg.tmp");
    std::fs::copy(&photo, &tmp).unwrap();
    std::fs::rename(&tmp, stack.frames.path().join("gate.jpg")).unwrap();

    // The outbox sends a batch when its oldest read is 30 s old (or 1000 reads wait).
    let deadline = Instant::now() + Duration::from_secs(120);
    while cloud.plates.is_empty() {
        assert!(Instant::now() < deadline, "no plate batch published");
        cloud.drain(1).await;
    }
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
