//! Measures the agent's bytes on the wire and its memory, against the real stand-ins (run
//! with moto started and `ANPR_MOTO_URL` set, like the tests). Not a test: it prints figures.
//!
//! ```sh
//! ANPR_CAMERA_BIN=/path/to/anpr-camera cargo run -p anpr-camera --example wire_bytes
//! ```
//!
//! With `ANPR_MEASURE_RECOGNIZER=1` the agent runs with a `[recognizer]` section (a binary built
//! with the recognizer; the models must be there, `ANPR_MODELS_DIR`) and no frame arrives: the
//! idle figure is what the frame feed costs before its first frame. `ANPR_MEASURE_IDLE_SECS`
//! (default 95) is how long the idle figure is measured.
//!
//! Bytes are TCP payload bytes (TLS records) counted by a loopback proxy in front of the
//! broker and of S3, both directions; IP/TCP headers are not included.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;

use std::time::{Duration, Instant};

/// (VmRSS, VmHWM) in KiB.
fn rss(pid: u32) -> (u64, u64) {
    let [rss, hwm] = status_kib(pid, ["VmRSS:", "VmHWM:"]);
    (rss, hwm)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bin = std::env::var("ANPR_CAMERA_BIN").unwrap_or_else(|_| {
        let t = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        format!("{t}/debug/anpr-camera")
    });
    let idle_secs: u64 = std::env::var("ANPR_MEASURE_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(95);
    let mut stack = Stack::new("cam-measure").await;
    if std::env::var_os("ANPR_MEASURE_RECOGNIZER").is_some() {
        stack.recognizer = Some(stack.recognizer_section());
        println!("with a [recognizer] section, no frames");
    }
    let mut cloud = stack.cloud().await;
    // The device shadow service's stand-in: the agent fetches its configuration shadow on a
    // new session (404 the first time, then it reports what it runs).
    let shadows = anpr_test_support::shadow::ShadowService::start(&stack.broker).await;

    // 1. First connect: no session on the broker (TLS, CONNECT, SUBSCRIBE, presence, health).
    let mut agent = spawn_agent(&stack, &bin, "agent.log", "warn", &[]);
    cloud.wait_health(30).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = stack.mqtt_proxy.total_bytes();
    println!("first connect, no session present: {first} bytes");

    // 2. Reconnect with the session present: the link drops and comes back.
    stack.mqtt_proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.mqtt_proxy.reset_counts();
    stack.mqtt_proxy.restore();
    cloud.wait_health(30).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let re = stack.mqtt_proxy.total_bytes();
    println!("reconnect, session present: {re} bytes");

    // 3. Idle: keep-alive pings only (keep_alive_secs = 30 in this stack).
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.mqtt_proxy.reset_counts();
    let t0 = Instant::now();
    // The resident set, and its split into anonymous memory (heap, stacks) and file-backed
    // pages (the binary's code and read-only data actually touched, shared libraries).
    let [idle_rss, anon, file] = status_kib(agent.id(), ["VmRSS:", "RssAnon:", "RssFile:"]);
    for feed in children(agent.id()) {
        let [f_rss, f_anon, f_file] = status_kib(feed, ["VmRSS:", "RssAnon:", "RssFile:"]);
        println!(
            "the frame feed's process (pid {feed}), idle, no model loaded: RSS {f_rss} KiB ({f_anon} anonymous + {f_file} file-backed)"
        );
    }
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    if stack.recognizer.is_some() {
        let feeds = children(agent.id());
        let [rss_now] = status_kib(agent.id(), ["VmRSS:"]);
        println!(
            "after {idle_secs} s idle: frame feed processes running: {}; agent RSS {rss_now} KiB",
            feeds.len()
        );
    }
    let idle = stack.mqtt_proxy.total_bytes();
    let secs = t0.elapsed().as_secs_f64();
    let pings = (secs / 30.0).floor().max(1.0);
    let per_ping = idle as f64 / pings;
    println!(
        "idle: {idle} bytes in {secs:.0} s = {pings} keep-alive exchanges, {per_ping:.0} bytes each; \
         at the default keep_alive_secs = 1200: {:.0} bytes/day (72 pings)",
        per_ping * 72.0
    );
    println!("agent RSS idle: {idle_rss} KiB (RssAnon: {anon} kB, RssFile: {file} kB)");

    // 4. File request round trip, excluding the file body (MQTT side only).
    stack.media_file("small.jpg", 1000);
    stack.mqtt_proxy.reset_counts();
    cloud
        .request("01MEASURE0ROUNDTRIP0000000", "small.jpg")
        .await;
    cloud
        .wait_status("01MEASURE0ROUNDTRIP0000000", 30, is_uploaded)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "file request round trip (request in, accepted + uploaded out, PUBACKs), MQTT side: {} bytes",
        stack.mqtt_proxy.total_bytes()
    );

    // 4b. Configuration change round trip: the delta in, the report out, their PUBACKs.
    stack.mqtt_proxy.reset_counts();
    shadows
        .desire(
            "cam-measure",
            "config",
            serde_json::json!({"upload_max_bytes_per_sec": 250000}),
        )
        .await;
    shadows
        .wait_for("cam-measure", "config", 30, |s| {
            s.reported.get("upload_max_bytes_per_sec") == Some(&serde_json::json!(250000))
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "configuration change round trip (delta in, report out, PUBACKs): {} bytes",
        stack.mqtt_proxy.total_bytes()
    );
    shadows
        .desire(
            "cam-measure",
            "config",
            serde_json::json!({"upload_max_bytes_per_sec": 0}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 5. A 50 MB upload: all bytes to and from S3 over the file's bytes; memory meanwhile.
    let size = 50 * 1000 * 1000;
    stack.media_file("big.mp4", size);
    stack.s3_proxy.reset_counts();
    stack.mqtt_proxy.reset_counts();
    cloud.request("01MEASURE0BIGUPLOAD0000000", "big.mp4").await;
    let pid = agent.id();
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        for _ in 0..6000 {
            peak = peak.max(rss(pid).0);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak
    });
    cloud
        .wait_status("01MEASURE0BIGUPLOAD0000000", 300, is_uploaded)
        .await;
    let s3 = stack.s3_proxy.total_bytes();
    let (_, hwm) = rss(agent.id());
    sampler.abort();
    println!(
        "50 MB upload: {s3} bytes to/from S3 for {size} file bytes = {:.3}% overhead; \
         MQTT side during it: {} bytes",
        (s3 as f64 - size as f64) * 100.0 / size as f64,
        stack.mqtt_proxy.total_bytes()
    );
    println!("agent peak RSS (VmHWM) after the 50 MB upload: {hwm} KiB");
    agent.kill().ok();
    agent.wait().ok();
}
