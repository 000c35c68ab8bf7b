//! The README's first command, run as a newcomer runs it: the `anpr-local` binary with its
//! default arguments (the default, relative data folder) from a fresh working directory that is
//! not the repository, apart from asking for free ports so that tests can run side by side.
//! The console and the API must answer and a simulated camera must come online; Ctrl-C stops it.

mod common;

use std::time::Duration;

#[tokio::test]
async fn the_readme_run_command_works_from_a_fresh_working_directory() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let (mut child, ready) = common::spawn_binary(cwd.path(), &[]).await;
    let console = common::console_url(&ready);
    let data_dir = cwd.path().join(".local").join("anpr-local");
    assert!(
        ready.contains(&format!("(data in {};", data_dir.display())),
        "the default data folder is resolved against the working directory: {ready}"
    );
    assert!(
        data_dir.join("pki").is_dir(),
        "state written under {data_dir:?}"
    );

    let http = reqwest::Client::new();
    let page = http.get(&console).send().await.expect("GET console");
    assert_eq!(page.status(), 200, "the console answers");
    assert!(page.text().await.unwrap().contains("<html"), "an HTML page");

    // The simulated camera is online once it has reported its configuration (it does so after
    // its first subscription, through its shadow): the API shows what the camera reported.
    // The README's way to get a token: `anpr-local token USER`, same working directory, so the
    // same default data folder and its signing key.
    let token = std::process::Command::new(env!("CARGO_BIN_EXE_anpr-local"))
        .current_dir(cwd.path())
        .args(["token", "ada"])
        .output()
        .expect("anpr-local token runs");
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();

    let api = console.trim_end_matches('/');
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let cfg: serde_json::Value = http
            .get(format!("{api}/cameras/cam-001/config"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("GET config")
            .json()
            .await
            .expect("JSON");
        if cfg["reported"]
            .as_object()
            .is_some_and(|r| r.contains_key("keep_alive_secs"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cam-001 did not come online: {cfg}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Ctrl-C stops it cleanly.
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops within 30 s of Ctrl-C")
        .expect("wait");
    assert!(status.success(), "exit status {status}");
}
