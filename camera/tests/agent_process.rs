//! The `anpr-camera` binary as a process: killed with SIGKILL half-way through an upload it
//! resumes from its checkpoint after a restart; SIGTERM stops it cleanly.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_killed_at_half_resumes_after_restart_and_resends_at_most_one_part() {
    let mut stack = Stack::new("cam-kill").await;
    // Paced so that "half-way" lasts long enough to be caught.
    stack.extra_config = "max_bytes_per_sec = 20971520".into();
    let size = 30 * MIB;
    let body = stack.media_file("clip.mp4", size);
    let mut cloud = stack.cloud().await;
    let mut agent = spawn_agent(
        &stack,
        env!("CARGO_BIN_EXE_anpr-camera"),
        "first.log",
        "info",
        &[],
    );
    cloud.wait_health(30).await;

    let before = stack.s3_proxy.up_bytes();
    let id = "01KILLED000000000000000000";
    cloud.request(id, "clip.mp4").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stack.s3_proxy.up_bytes() - before < size as u64 / 2 {
        assert!(Instant::now() < deadline, "the upload never reached half");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    agent.kill().unwrap(); // SIGKILL: no chance to checkpoint anything more.
    agent.wait().unwrap();
    let at_kill = stack.s3_proxy.up_bytes() - before;
    assert!(
        at_kill < size as u64,
        "killed before the end ({at_kill} bytes)"
    );
    let journal = std::fs::read_dir(stack.state.path().join("requests"))
        .unwrap()
        .count();
    assert_eq!(journal, 1, "the request is journaled");

    let mut agent = spawn_agent(
        &stack,
        env!("CARGO_BIN_EXE_anpr-camera"),
        "second.log",
        "info",
        &[],
    );
    cloud.wait_status(id, 120, is_uploaded).await;
    let sent = stack.s3_proxy.up_bytes() - before;
    let part = 5 * MIB as u64;
    assert!(
        sent <= size as u64 + part + 256 * 1024,
        "at most one part re-sent: {sent} bytes for {size}"
    );
    assert_eq!(
        stack.object(&stack.key(id, "clip.mp4")).await.as_deref(),
        Some(&body[..])
    );
    let log = std::fs::read_to_string(stack.state.path().join("second.log")).unwrap();
    assert!(log.contains("resuming request from the journal"), "{log}");
    agent.kill().unwrap();
    agent.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_agent_cleanly_and_marks_it_offline() {
    let stack = Stack::new("cam-term").await;
    let mut cloud = stack.cloud().await;
    let mut agent = spawn_agent(
        &stack,
        env!("CARGO_BIN_EXE_anpr-camera"),
        "agent.log",
        "info",
        &[],
    );
    cloud.wait_health(30).await;
    let exit = sigterm_and_wait(&mut agent, 20).await;
    assert!(exit.success(), "clean exit: {exit:?}");
    let log = std::fs::read_to_string(stack.state.path().join("agent.log")).unwrap();
    assert!(log.contains("stopped"), "{log}");
    // The agent's goodbye (QoS 1, before its DISCONNECT) is the last thing it sent.
    cloud
        .wait_until(10, "presence offline after a clean stop", |c| {
            c.presence.last() == Some(&anpr_camera::mqtt::presence_payload(false))
        })
        .await;
}

#[test]
fn a_bad_config_file_is_refused_at_start_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "camera_id = \"cam 1\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_anpr-camera"))
        .args(["check-config", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("camera_id"), "{err}");
}
