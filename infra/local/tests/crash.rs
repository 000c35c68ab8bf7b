//! The whole local stack killed with SIGKILL while file requests are in flight on both
//! simulated cameras (small images and the 20 MB clip) and plate reads flow, then started
//! again on the same data folder: every request ends `ready` with the camera's exact bytes,
//! and every plate read is stored once. What the restart must keep: the request and read
//! store (its log), the cameras' journals and outboxes, the S3 stand-in's multipart uploads
//! and the local credentials they are bound to (`creds/issued.json`).

mod common;

use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const CAMERAS: [&str; 2] = ["cam-001", "cam-002"];

/// Every plate-read id the API lists for `camera`, page after page.
async fn read_ids(http: &reqwest::Client, api: &str, camera: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{api}/cameras/{camera}/plate-reads?limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = common::get_json(http, &url).await;
        for r in page["items"].as_array().expect("items") {
            ids.push(r["read_id"].as_str().expect("read_id").to_owned());
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            return ids;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_killed_with_requests_in_flight_finishes_them_all_after_a_restart() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let data = cwd.path().join("data");
    let data_arg = data.to_str().expect("UTF-8 path");
    let args = [
        "--data-dir",
        data_arg,
        "--camera",
        CAMERAS[0],
        "--camera",
        CAMERAS[1],
        "--plate-interval",
        "1",
    ];
    let (mut child, ready) = common::spawn_binary(cwd.path(), &args).await;
    let api = common::console_url(&ready).trim_end_matches('/').to_owned();
    let http = common::bearer_client(&common::token_at(&api, "ada").await);

    // Both cameras online (they reported their configuration), their reads stored, then three
    // requests each.
    let deadline = Instant::now() + Duration::from_secs(60);
    for cam in CAMERAS {
        while !common::get_json(&http, &format!("{api}/cameras/{cam}/config")).await["reported"]
            .as_object()
            .is_some_and(|r| r.contains_key("keep_alive_secs"))
        {
            assert!(Instant::now() < deadline, "{cam} did not come online");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Plate reads flowing (stored in the cloud) for both, so some are stored before the kill.
    for cam in CAMERAS {
        while read_ids(&http, &api, cam).await.is_empty() {
            assert!(Instant::now() < deadline, "{cam}: no plate read stored");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut requests = Vec::new();
    for cam in CAMERAS {
        for file in [
            anpr_local::cameras::CLIP,
            anpr_local::cameras::IMAGE,
            anpr_local::cameras::CLIP,
        ] {
            let resp = http
                .post(format!("{api}/cameras/{cam}/file-requests"))
                .json(&json!({ "file": file }))
                .send()
                .await
                .expect("POST a file request");
            assert_eq!(resp.status(), 202);
            let body: Value = resp.json().await.expect("JSON");
            let id = body["request_id"].as_str().expect("request_id").to_owned();
            requests.push((cam, file, id));
        }
    }
    // Killed as soon as an upload is under way (the others queued, accepted or done).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut states = Vec::new();
    'wait: loop {
        states.clear();
        for (_, _, id) in &requests {
            let r = common::get_json(&http, &format!("{api}/file-requests/{id}")).await;
            states.push(r["state"].as_str().unwrap_or_default().to_owned());
        }
        if states.iter().any(|s| s == "uploading") {
            break 'wait;
        }
        assert!(Instant::now() < deadline, "no upload started: {states:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reads_before: HashSet<String> = {
        let mut ids = HashSet::new();
        for cam in CAMERAS {
            ids.extend(read_ids(&http, &api, cam).await);
        }
        ids
    };
    let issued = std::fs::read(data.join("creds").join("issued.json")).expect("local credentials");
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("killed");
    let unfinished = states.iter().filter(|s| *s != "ready").count();
    assert!(unfinished > 0, "killed with work in flight: {states:?}");
    eprintln!("killed with {unfinished} of 6 requests not ready: {states:?}");

    let (_again, ready) = common::spawn_binary(cwd.path(), &args).await;
    // The same credentials (multipart uploads in the S3 stand-in are bound to them), owner-only.
    let path = data.join("creds").join("issued.json");
    assert_eq!(std::fs::read(&path).expect("local credentials"), issued);
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let api = common::console_url(&ready).trim_end_matches('/').to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    for (cam, file, id) in &requests {
        let r = loop {
            let r = common::get_json(&http, &format!("{api}/file-requests/{id}")).await;
            if r["state"] == "ready" {
                break r;
            }
            assert_ne!(r["state"], "failed", "{r}");
            assert!(
                Instant::now() < deadline,
                "not ready after the restart: {r}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // The object as the S3 stand-in stores it (s3s-fs: `{root}/{bucket}/{key}`).
        let key = format!("media/{cam}/{id}/{file}");
        let object = std::fs::read(data.join("s3").join(anpr_local::BUCKET).join(&key))
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        let original = std::fs::read(data.join("media").join(file)).expect("the camera's file");
        assert_eq!(r["size"], json!(original.len()), "{r}");
        assert!(
            object == original,
            "{cam} {file}: the object differs from the camera's file"
        );
    }
    // Plate reads: none lost, none twice.
    for cam in CAMERAS {
        let ids = read_ids(&http, &api, cam).await;
        let distinct: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(ids.len(), distinct.len(), "{cam}: a read stored twice");
    }
    let mut after = HashSet::new();
    for cam in CAMERAS {
        after.extend(read_ids(&http, &api, cam).await);
    }
    assert!(
        reads_before.is_subset(&after),
        "reads stored before the kill are still there"
    );
    assert!(
        !reads_before.is_empty(),
        "plate reads flowed before the kill"
    );
}
