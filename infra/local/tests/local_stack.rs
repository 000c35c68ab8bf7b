//! The one-process local stack, started in this test process on free ports and a temporary
//! data folder: a web user's request travels to the simulated camera (the real agent) and back
//! as `ready` with a URL that downloads exactly the camera's file; plate reads arrive; the
//! state survives a restart.

mod common;

use anpr_local::{Options, Running};
use anpr_protocol::{Notification, RequestState, decode, topics};
use common::{get_json, signed_in, start_ready, subscriber};
use rumqttc::v5::AsyncClient;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Subscribes to the demo user's organisation's notifications over the broker's TLS listener, as a client
/// with a certificate of the local CA.
async fn notifications(stack: &Running) -> (AsyncClient, mpsc::UnboundedReceiver<Vec<u8>>) {
    subscriber(
        stack,
        "test-observer",
        &topics::org_notifications(
            anpr_local::tokens::demo_user(anpr_local::DEMO_USER)
                .expect("the demo user")
                .org,
        ),
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
    let http = signed_in(&stack, anpr_local::DEMO_USER).await;

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
    let stack = start_ready(Options::ephemeral(dir.path().to_owned())).await;
    // The token stays valid across the restart: the signing key is kept in the data folder.
    let http = signed_in(&stack, anpr_local::DEMO_USER).await;
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
    // Cameras come from the API, per organisation; people sign in through the hosted UI's
    // stand-in, as in AWS.
    assert!(
        cfg.get("cameras").is_none() && cfg.get("users").is_none(),
        "{cfg}"
    );
    assert_eq!(cfg["auth"]["domain_url"], "/local");
    assert_eq!(cfg["auth"]["client_id"], anpr_local::tokens::AUDIENCE);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosted_ui_stand_in_gives_a_token_only_for_the_code_and_verifier_of_its_own_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = Options::ephemeral(dir.path().to_owned());
    opts.plate_interval_secs = 0;
    let stack = start_ready(opts).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let base = format!("{}/local", stack.api_url);
    let callback = stack.console_url.clone();
    let verifier = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFzWH-M";
    let authorize = |redirect: &str, method: &str| {
        format!(
            "{base}/oauth2/authorize?{}",
            serde_urlencoded::to_string([
                ("response_type", "code"),
                ("client_id", anpr_local::tokens::AUDIENCE),
                ("redirect_uri", redirect),
                ("state", "s-1"),
                ("code_challenge_method", method),
                (
                    "code_challenge",
                    "dTPfLm4Koir9oNj40KzBOjL_4YSiMS_l5IERIJuqqos"
                ),
            ])
            .unwrap()
        )
    };
    // A page of another site as the callback, or PKCE without S256: refused before sign-in.
    for (redirect, method) in [
        ("http://evil.example/", "S256"),
        (callback.as_str(), "plain"),
    ] {
        let r = http.get(authorize(redirect, method)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{redirect} {method}");
    }
    let page = http
        .get(authorize(&callback, "S256"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("data-user=\"gil\""), "{page}");
    // Picking gil redirects to the console with a code and the state.
    let approve =
        authorize(&callback, "S256").replace("/oauth2/authorize?", "/oauth2/approve?user=gil&");
    let code = || async {
        let r = http.get(&approve).send().await.unwrap();
        assert_eq!(r.status(), 302);
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with(&callback), "{location}");
        let q: std::collections::HashMap<String, String> =
            serde_urlencoded::from_str(location.split_once('?').unwrap().1).unwrap();
        assert_eq!(q["state"], "s-1");
        q["code"].clone()
    };
    let form = |pairs: &[(&str, &str)]| {
        http.post(format!("{base}/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(pairs).unwrap())
            .send()
    };
    let exchange = |code: String, verifier: &'static str| {
        let callback = callback.clone();
        let form = &form;
        async move {
            form(&[
                ("grant_type", "authorization_code"),
                ("client_id", anpr_local::tokens::AUDIENCE),
                ("code", &code),
                ("redirect_uri", &callback),
                ("code_verifier", verifier),
            ])
            .await
            .unwrap()
        }
    };
    // Another verifier (someone who saw the code but not the page's secret): refused, and the
    // code is spent.
    let stolen = code().await;
    let r = exchange(
        stolen.clone(),
        "another-verifier-0000000000000000000000000000",
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(
        exchange(stolen, verifier).await.status(),
        400,
        "a code works once"
    );
    // A fresh code with the right verifier: gil's ID token, which the API accepts as gil's.
    let t: Value = exchange(code().await, verifier).await.json().await.unwrap();
    let id_token = t["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("an ID token: {t}"));
    let cams: Value = http
        .get(format!("{}/cameras", stack.api_url))
        .bearer_auth(id_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cams["items"][0]["camera_id"], "cam-101", "{cams}");
    // The refresh token gives a new ID token; a made-up one nothing.
    let refresh = |token: String| {
        let form = &form;
        async move {
            form(&[
                ("grant_type", "refresh_token"),
                ("client_id", anpr_local::tokens::AUDIENCE),
                ("refresh_token", &token),
            ])
            .await
            .unwrap()
        }
    };
    let r = refresh(t["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["id_token"].is_string());
    assert_eq!(refresh("made-up".into()).await.status(), 400);
    stack.stop().await;
}

/// `(camera, online)` of `GET /cameras` as `user`.
async fn cameras_of(stack: &Running, user: &str) -> Vec<(String, bool)> {
    let page = get_json(
        &signed_in(stack, user).await,
        &format!("{}/cameras", stack.api_url),
    )
    .await;
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|c| {
            (
                c["camera_id"].as_str().unwrap_or_default().to_owned(),
                c["online"].as_bool().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_organisation_lists_its_own_cameras_online_as_the_brokers_lifecycle_events_say() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = Options::ephemeral(dir.path().to_owned());
    opts.plate_interval_secs = 0;
    let stack = start_ready(opts).await;
    // The simulated camera connects: its lifecycle event makes it online.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ada = cameras_of(&stack, "ada").await;
    while ada != [("cam-001".into(), true), ("cam-002".into(), false)] {
        assert!(Instant::now() < deadline, "acme's cameras: {ada:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        ada = cameras_of(&stack, "ada").await;
    }
    assert_eq!(cameras_of(&stack, "vic").await, ada, "any role lists them");
    assert_eq!(
        cameras_of(&stack, "gil").await,
        [("cam-101".to_owned(), false)]
    );
    // The stack stops (the broker with it) and starts again without simulating the camera:
    // no connection survives a broker's restart, so it is offline.
    let data = dir.path().to_owned();
    stack.stop().await;
    let mut opts = Options::ephemeral(data);
    opts.plate_interval_secs = 0;
    opts.cameras = vec![];
    let again = start_ready(opts).await;
    assert_eq!(
        cameras_of(&again, "ada").await,
        [("cam-001".to_owned(), false), ("cam-002".to_owned(), false)]
    );
    again.stop().await;
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
    let http = signed_in(&stack, "ada").await;
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

    // Connection settings change at most once an hour: the second change is refused, naming
    // the setting, and the refusal is in the organisation's audit trail.
    let first = http
        .put(&url)
        .json(&json!({"keep_alive_secs": 600}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(first.status(), 200);
    let again = http
        .put(&url)
        .json(&json!({"keep_alive_secs": 900}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(again.status(), 429);
    let again: Value = again.json().await.expect("JSON");
    assert_eq!(
        again["error"]["code"], "connection_change_too_soon",
        "{again}"
    );
    assert_eq!(again["error"]["field"], "keep_alive_secs", "{again}");
    let view: Value = get_json(&http, &url).await;
    assert_eq!(
        view["desired"]["keep_alive_secs"], 600,
        "not written: {view}"
    );
    let trail: Value = get_json(&http, &format!("{}/audit", stack.api_url)).await;
    assert_eq!(trail["items"][0]["status"], 429, "{trail}");
    assert_eq!(
        trail["items"][0]["asked"],
        json!({"keep_alive_secs": 900}),
        "{trail}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_are_verified_and_every_route_answers_only_the_callers_organisation() {
    use anpr_local::tokens::{AUDIENCE, ISSUER, Issuer};
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = Options::ephemeral(dir.path().to_owned());
    opts.plate_interval_secs = 0;
    let stack = start_ready(opts).await;
    let (_observer, mut published) =
        subscriber(&stack, "test-observer", "cam-001/file/request").await;
    let mut t = std::collections::HashMap::new();
    for u in ["ada", "otto", "vic", "gil"] {
        t.insert(u, common::token(&stack, u).await);
    }
    // Tokens the stack must refuse: signed with its key but expired or without organisation,
    // signed with another key, and vic's token with the role changed after signing.
    let issuer = Issuer::open(dir.path()).expect("the stack's key");
    let now = anpr_protocol::clock::now_secs();
    let claims = |exp: u64, org: bool| {
        let mut c = json!({"sub": "ada", "cognito:groups": ["admin"], "iss": ISSUER,
                           "aud": AUDIENCE, "iat": now, "exp": exp});
        if org {
            c["custom:org"] = json!("acme");
        }
        c
    };
    let expired = issuer.sign(&claims(now - 1, true)).expect("sign");
    let no_org = issuer.sign(&claims(now + 600, false)).expect("sign");
    let other_dir = tempfile::tempdir().expect("tempdir");
    let foreign = Issuer::open(other_dir.path())
        .expect("another key")
        .token_for("ada", now)
        .expect("sign");
    let tampered = {
        let parts: Vec<&str> = t["vic"].split('.').collect();
        let mut c: Value =
            serde_json::from_slice(&b64.decode(parts[1]).expect("b64")).expect("json");
        c["cognito:groups"] = json!(["admin"]);
        let payload = b64.encode(serde_json::to_vec(&c).expect("json"));
        format!("{}.{payload}.{}", parts[0], parts[2])
    };

    let http = reqwest::Client::new();
    let api = stack.api_url.clone();
    let send = |method: &str, path: &str, body: Option<Value>, token: Option<&str>| {
        let mut r = http.request(method.parse().expect("method"), format!("{api}{path}"));
        if let Some(b) = body {
            r = r.json(&b);
        }
        if let Some(tok) = token {
            r = r.bearer_auth(tok);
        }
        async move {
            let resp = r.send().await.expect("HTTP");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let file = || Some(json!({"file": anpr_local::cameras::IMAGE}));
    let (s, b) = send(
        "POST",
        "/cameras/cam-001/file-requests",
        file(),
        Some(&t["otto"]),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    let id = b["request_id"].as_str().expect("id").to_owned();
    let one = format!("/file-requests/{id}");
    let setting = || Some(json!({"upload_progress_step_pct": 25}));
    // (method, path, body, token, expected status)
    type Case<'a> = (&'a str, &'a str, Option<Value>, Option<&'a str>, u16);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/cameras/cam-001/file-requests",
            file(),
            Some(&t["vic"]),
            403,
        ),
        (
            "POST",
            "/cameras/cam-001/file-requests",
            file(),
            Some(&t["gil"]),
            404,
        ),
        ("POST", "/cameras/cam-001/file-requests", file(), None, 401),
        (
            "POST",
            "/cameras/cam-001/file-requests",
            file(),
            Some(&expired),
            401,
        ),
        (
            "POST",
            "/cameras/cam-001/file-requests",
            file(),
            Some(&foreign),
            401,
        ),
        (
            "POST",
            "/cameras/cam-001/file-requests",
            file(),
            Some(&tampered),
            401,
        ),
        (
            "POST",
            "/cameras/cam-001/file-requests",
            file(),
            Some(&no_org),
            403,
        ),
        (
            "POST",
            "/cameras/cam-001/file-requests",
            file(),
            Some("not-a-token"),
            401,
        ),
        ("GET", &one, None, Some(&t["vic"]), 200),
        ("GET", &one, None, Some(&t["gil"]), 404),
        ("GET", &one, None, None, 401),
        (
            "GET",
            "/cameras/cam-001/file-requests",
            None,
            Some(&t["vic"]),
            200,
        ),
        (
            "GET",
            "/cameras/cam-001/file-requests",
            None,
            Some(&t["gil"]),
            404,
        ),
        (
            "GET",
            "/cameras/cam-001/plate-reads",
            None,
            Some(&t["vic"]),
            200,
        ),
        (
            "GET",
            "/cameras/cam-001/plate-reads",
            None,
            Some(&t["gil"]),
            404,
        ),
        (
            "GET",
            "/cameras/cam-001/plate-reads",
            None,
            Some(&expired),
            401,
        ),
        (
            "GET",
            "/cameras/cam-101/plate-reads",
            None,
            Some(&t["gil"]),
            200,
        ),
        (
            "GET",
            "/cameras/cam-101/plate-reads",
            None,
            Some(&t["ada"]),
            404,
        ),
        (
            "GET",
            "/plate-reads?plate=AB12CDE",
            None,
            Some(&t["vic"]),
            200,
        ),
        ("GET", "/plate-reads?plate=AB12CDE", None, None, 401),
        ("GET", "/cameras/cam-001/config", None, Some(&t["vic"]), 200),
        ("GET", "/cameras/cam-001/config", None, Some(&t["gil"]), 404),
        (
            "PUT",
            "/cameras/cam-001/config",
            setting(),
            Some(&t["otto"]),
            403,
        ),
        (
            "PUT",
            "/cameras/cam-001/config",
            setting(),
            Some(&t["gil"]),
            404,
        ),
        (
            "PUT",
            "/cameras/cam-001/config",
            setting(),
            Some(&tampered),
            401,
        ),
        ("PUT", "/cameras/cam-001/config", setting(), None, 401),
    ];
    for (method, path, body, token, want) in cases {
        let (s, b) = send(method, path, body, token).await;
        assert_eq!(s, want, "{method} {path}: {b}");
        if s >= 400 {
            assert!(b["error"]["code"].is_string(), "{method} {path}: {b}");
        }
    }
    // Nothing written or sent by the refused calls: one request, one publish, no desired
    // setting.
    let (_, list) = send(
        "GET",
        "/cameras/cam-001/file-requests",
        None,
        Some(&t["ada"]),
    )
    .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    let (_, cfg) = send("GET", "/cameras/cam-001/config", None, Some(&t["ada"])).await;
    assert!(
        cfg["desired"].get("upload_progress_step_pct").is_none(),
        "{cfg}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut n = 0;
    while published.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 1, "only otto's request reached the camera");
    let (s, _) = send("PUT", "/cameras/cam-001/config", setting(), Some(&t["ada"])).await;
    assert_eq!(s, 200);
    stack.stop().await;
}
