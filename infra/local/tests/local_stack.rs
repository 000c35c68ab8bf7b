//! The one-process local stack, started in this test process on free ports and a temporary
//! data folder: a web user's request travels to the simulated camera (the real agent) and back
//! as `ready` with a URL that downloads exactly the camera's file; plate reads arrive; the
//! state survives a restart.

mod common;

use anpr_local::{Options, Running};
use anpr_protocol::{Notification, RequestState, decode, topics};
use common::{get_json, start_ready, subscriber};
use rumqttc::v5::AsyncClient;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Subscribes to the demo user's notifications over the broker's TLS listener, as a client
/// with a certificate of the local CA.
async fn notifications(stack: &Running) -> (AsyncClient, mpsc::UnboundedReceiver<Vec<u8>>) {
    subscriber(
        stack,
        "test-observer",
        &topics::web_notifications(anpr_local::DEMO_USER),
    )
    .await
}

async fn request(http: &reqwest::Client, stack: &Running, file: &str) -> String {
    let resp = http
        .post(format!("{}/cameras/cam-001/file-requests", stack.api_url))
        .json(&json!({ "file": file }))
        .send()
        .await
        .expect("POST file request");
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.expect("JSON");
    body["request_id"].as_str().expect("request_id").to_owned()
}

async fn until_ready(
    rx: &mut mpsc::UnboundedReceiver<Vec<u8>>,
    id: &str,
) -> (Notification, Vec<RequestState>) {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let bytes = tokio::time::timeout(left, rx.recv())
            .await
            .expect("ready within 60 s")
            .expect("notifications connection open");
        let n: Notification = decode(&bytes).expect("a protocol notification");
        if n.request_id.as_str() != id {
            continue;
        }
        seen.push(n.state);
        if n.state == RequestState::Ready {
            return (n, seen);
        }
        assert_ne!(n.state, RequestState::Failed, "request failed: {n:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_requested_clip_is_announced_ready_with_a_url_that_downloads_the_cameras_exact_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stack = start_ready(Options::ephemeral(dir.path().to_owned())).await;
    let (_client, mut rx) = notifications(&stack).await;
    let http = reqwest::Client::new();

    let id = request(&http, &stack, anpr_local::cameras::CLIP).await;
    let (ready, seen) = until_ready(&mut rx, &id).await;

    assert!(seen.contains(&RequestState::Accepted), "{seen:?}");
    assert!(seen.contains(&RequestState::Uploading), "{seen:?}");
    let original = std::fs::read(dir.path().join("media").join(anpr_local::cameras::CLIP))
        .expect("the camera's file");
    assert_eq!(ready.size, Some(original.len() as u64));
    let url = ready.url.expect("a download URL");
    let downloaded = http.get(&url).send().await.expect("GET the URL");
    assert_eq!(downloaded.status(), 200);
    assert!(
        downloaded.bytes().await.expect("body") == original,
        "downloaded bytes differ"
    );

    let got: Value = get_json(&http, &format!("{}/file-requests/{id}", stack.api_url)).await;
    assert_eq!(got["state"], "ready");
    let states: Vec<&str> = got["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["state"].as_str())
        .collect();
    assert_eq!(states.first(), Some(&"requested"));
    assert_eq!(states.last(), Some(&"ready"));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_and_plate_reads_survive_a_restart_of_the_stack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let http = reqwest::Client::new();
    let stack = start_ready(Options::ephemeral(dir.path().to_owned())).await;
    let (_client, mut rx) = notifications(&stack).await;
    let id = request(&http, &stack, anpr_local::cameras::IMAGE).await;
    until_ready(&mut rx, &id).await;
    // The simulated detector reads a plate every 2 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let reads_before = loop {
        let page: Value = get_json(
            &http,
            &format!("{}/cameras/cam-001/plate-reads", stack.api_url),
        )
        .await;
        let n = page["items"].as_array().map_or(0, Vec::len);
        if n > 0 {
            break n;
        }
        assert!(Instant::now() < deadline, "no plate read within 30 s");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    stack.stop().await;

    let mut opts = Options::ephemeral(dir.path().to_owned());
    opts.plate_interval_secs = 0;
    let again = start_ready(opts).await;
    let got: Value = get_json(&http, &format!("{}/file-requests/{id}", again.api_url)).await;
    assert_eq!(got["state"], "ready", "{got}");
    let page: Value = get_json(
        &http,
        &format!("{}/cameras/cam-001/plate-reads?limit=100", again.api_url),
    )
    .await;
    assert!(
        page["items"].as_array().map_or(0, Vec::len) >= reads_before,
        "{page}"
    );
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_and_its_configuration_are_served_from_the_api_origin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = Options::ephemeral(dir.path().to_owned());
    opts.plate_interval_secs = 0;
    let stack = start_ready(opts).await;
    let http = reqwest::Client::new();
    let page = http.get(&stack.console_url).send().await.expect("GET /");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("text").contains("<html"));
    let cfg: Value = get_json(&http, &format!("{}/config.json", stack.api_url)).await;
    assert_eq!(cfg["mqtt_url"], stack.ws_url.as_str());
    assert_eq!(cfg["cameras"][0]["id"], "cam-001");
    assert_eq!(cfg["notifications_topic"], "web/demo-user/notifications");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_desired_setting_reaches_the_simulated_camera_through_its_shadow_and_is_reported_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = Options::ephemeral(dir.path().to_owned());
    opts.plate_interval_secs = 0;
    let stack = start_ready(opts).await;
    let camera = anpr_protocol::CameraId::parse("cam-001").expect("id");
    // What the shadow service sends the camera, observed on the broker.
    let delta_topic = topics::config_shadow(&camera, anpr_protocol::shadow::UPDATE_DELTA);
    let (_observer, mut deltas) = subscriber(&stack, "test-observer", &delta_topic).await;
    let http = reqwest::Client::new();
    let url = format!("{}/cameras/cam-001/config", stack.api_url);

    let resp = http
        .put(&url)
        .json(&json!({"upload_progress_step_pct": 20}))
        .send()
        .await
        .expect("PUT config");
    assert_eq!(resp.status(), 200);
    let view: Value = resp.json().await.expect("JSON");
    assert_eq!(view["desired"]["upload_progress_step_pct"], 20, "{view}");

    let delta = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let bytes = deltas.recv().await.expect("connection open");
            let d: anpr_protocol::shadow::Delta =
                serde_json::from_slice(&bytes).expect("a shadow delta");
            if d.state.contains_key("upload_progress_step_pct") {
                return d;
            }
        }
    })
    .await
    .expect("a delta within 10 s");
    assert_eq!(delta.state["upload_progress_step_pct"], 20);

    // The agent applies it and reports what it runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    let version = loop {
        let view: Value = get_json(&http, &url).await;
        if view["reported"]["upload_progress_step_pct"] == 20 {
            assert_eq!(view["pending"], json!({}), "{view}");
            break view["version"].as_u64().expect("version");
        }
        assert!(Instant::now() < deadline, "report not seen: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // A stale If-Match is a conflict, and a bad value names its setting.
    let stale = http
        .put(&url)
        .header("if-match", format!("\"{}\"", version - 1))
        .json(&json!({"upload_progress_step_pct": 50}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(stale.status(), 409);
    let bad: Value = http
        .put(&url)
        .json(&json!({"keep_alive_secs": 5}))
        .send()
        .await
        .expect("PUT")
        .json()
        .await
        .expect("JSON");
    assert!(bad.to_string().contains("keep_alive_secs"), "{bad}");
    stack.stop().await;
}
