//! The `anpr-camera` binary as a process: killed with SIGKILL half-way through an upload it
//! resumes from its checkpoint after a restart; killed between a request's final status and
//! that status's PUBACK it answers again at the next start; SIGTERM stops it cleanly.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_killed_at_half_resumes_after_restart_and_resends_at_most_one_part() {
    let mut stack = Stack::new("cam-kill").await;
    // Paced so that "half-way" lasts long enough to be caught.
    stack.max_bytes_per_sec = Some(20_971_520);
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
async fn a_file_replaced_by_one_of_the_same_size_between_kill_and_restart_is_uploaded_whole_not_spliced()
 {
    let mut stack = Stack::new("cam-splice").await;
    stack.max_bytes_per_sec = Some(20_971_520);
    let size = 20 * MIB;
    let old = stack.media_file("clip.mp4", size);
    let mut cloud = stack.cloud().await;
    let bin = env!("CARGO_BIN_EXE_anpr-camera");
    let mut agent = spawn_agent(&stack, bin, "first.log", "info", &[]);
    cloud.wait_health(30).await;
    let before = stack.s3_proxy.up_bytes();
    let id = "01SPLICE000000000000000000";
    cloud.request(id, "clip.mp4").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stack.s3_proxy.up_bytes() - before < size as u64 / 2 {
        assert!(Instant::now() < deadline, "the upload never reached half");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    agent.kill().unwrap();
    agent.wait().unwrap();
    assert_eq!(
        journal_entry(&stack, id)["phase"]["phase"],
        "uploading",
        "killed with parts confirmed"
    );

    // Another recording of exactly the same size takes the name (a new file renamed over it,
    // as a camera's recorder does).
    let new: Vec<u8> = old.iter().map(|b| b ^ 0x5a).collect();
    let path = stack.media.path().join("clip.mp4");
    let tmp = stack.media.path().join("clip.mp4.tmp");
    std::fs::write(&tmp, &new).unwrap();
    std::fs::rename(&tmp, &path).unwrap();

    let mut agent = spawn_agent(&stack, bin, "second.log", "info", &[]);
    cloud.wait_status(id, 120, is_uploaded).await;
    let object = stack.object(&stack.key(id, "clip.mp4")).await.unwrap();
    assert_eq!(object.len(), size);
    assert!(
        object == new,
        "the object is the new file whole (parts of the old one spliced in: {})",
        object
            .chunks(MIB)
            .zip(old.chunks(MIB))
            .filter(|(a, b)| a == b)
            .count()
    );
    agent.kill().unwrap();
    agent.wait().unwrap();
}

/// The journal entry of request `id` as JSON (`null` while there is none).
fn journal_entry(stack: &Stack, id: &str) -> serde_json::Value {
    let path = stack
        .state
        .path()
        .join("requests")
        .join(format!("{id}.json"));
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_status_whose_puback_a_kill_cut_off_is_published_again_at_the_next_start() {
    let stack = Stack::new("cam-final").await;
    let body = stack.media_file("clip.mp4", 64 * 1024);
    let mut cloud = stack.cloud().await;
    let bin = env!("CARGO_BIN_EXE_anpr-camera");
    let mut agent = spawn_agent(&stack, bin, "first.log", "info", &[]);
    cloud.wait_health(30).await;

    // From now on every chunk between the camera and the broker waits 1 s, each way, one
    // after the other: the PUBACK of the final status cannot be back within 2 s of it.
    stack.mqtt_proxy.set_delay(Duration::from_secs(1));
    let id = "01FINALKILL000000000000000";
    cloud.request(id, "clip.mp4").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while journal_entry(&stack, id)["phase"]["phase"] != "done" {
        assert!(Instant::now() < deadline, "the request never finished");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    agent.kill().unwrap(); // SIGKILL as soon as the journal says done.
    agent.wait().unwrap();
    let at_kill = journal_entry(&stack, id);
    assert_eq!(at_kill["phase"]["status"]["s"], "uploaded", "{at_kill}");
    assert_eq!(
        at_kill["phase"]["answered"], false,
        "killed before the PUBACK: {at_kill}"
    );

    stack.mqtt_proxy.set_delay(Duration::ZERO);
    let mut agent = spawn_agent(&stack, bin, "second.log", "info", &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while journal_entry(&stack, id)["phase"]["answered"] != true {
        assert!(
            Instant::now() < deadline,
            "the final status was not answered again; log:\n{}",
            std::fs::read_to_string(stack.state.path().join("second.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The new process's PUBACK marked it: the status reached the broker, so the cloud has it.
    cloud.wait_status(id, 30, is_uploaded).await;
    let log = std::fs::read_to_string(stack.state.path().join("second.log")).unwrap();
    assert!(
        log.contains("final status not acknowledged before the restart"),
        "{log}"
    );
    assert_eq!(
        stack.object(&stack.key(id, "clip.mp4")).await.as_deref(),
        Some(&body[..])
    );
    let exit = sigterm_and_wait(&mut agent, 20).await;
    assert!(exit.success(), "{exit:?}");

    // Answered: a third start publishes nothing more for it (its log says so; counting
    // statuses would race the first process's delayed chunks still in the proxy, which may
    // also carry a health report: the third agent's own connection is read from its log).
    let mut agent = spawn_agent(&stack, bin, "third.log", "info", &[]);
    let third = stack.state.path().join("third.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&third).is_ok_and(|l| l.contains("connected")) {
        assert!(Instant::now() < deadline, "the third start never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exit = sigterm_and_wait(&mut agent, 20).await;
    assert!(exit.success(), "{exit:?}");
    let log = std::fs::read_to_string(stack.state.path().join("third.log")).unwrap();
    assert!(
        !log.contains("final status not acknowledged before the restart"),
        "{log}"
    );
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
