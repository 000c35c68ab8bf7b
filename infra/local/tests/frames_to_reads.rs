//! With the `recognizer` feature: the simulated camera's frames (the sample plate photo dropped
//! into its watched folder) go through the real frame feed and on-device recognizer, and the
//! reads arrive in the cloud's plate-read store through the agent's outbox and the plate rule.
//! The feature is on by default, so `scripts/test` (`cargo test --workspace`) runs it; the models come
//! from `scripts/fetch-models` (`.local/models`, or `ANPR_MODELS_DIR`).
#![cfg(feature = "recognizer")]

mod common;

use anpr_local::Options;
use std::time::{Duration, Instant};

fn models_dir() -> std::path::PathBuf {
    std::env::var_os("ANPR_MODELS_DIR")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.local/models")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frames_dropped_into_the_simulated_camera_become_plate_reads_in_the_cloud() {
    let models = models_dir();
    assert!(
        models.join("ch_PP-OCRv4_det_f16.onnx").exists(),
        "no models in {}: run scripts/fetch-models (scripts/test does)",
        models.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = Options::ephemeral(dir.path().to_owned());
    opts.plate_interval_secs = 1;
    opts.models_dir = Some(models);
    let stack = anpr_local::start(opts).await.expect("start");
    let http = common::signed_in(&stack, "vic").await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let read = loop {
        let page = common::get_json(
            &http,
            &format!("{}/cameras/cam-001/plate-reads", stack.api_url),
        )
        .await;
        if let Some(r) = page["items"].as_array().and_then(|i| i.first()) {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "no plate read within 120 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The sample photo's plate (`camera/recognizer/tests/fixtures/synthetic_plate.jpg`, the
    // text the recognizer's own pipeline test reads in it), with the saved crop named.
    assert_eq!(read["plate"], "ABC1234", "{read}");
    let img = read["img"].as_str().expect("the read names its crop");
    assert!(dir.path().join("media").join(img).exists(), "{img}");
    stack.stop().await;
}
