//! The web console driven in headless Chromium (Debian's `chromium` and `chromium-driver`,
//! installed by `scripts/setup`) through WebDriver, against the local stack started in this
//! process: a person's story, click by click, including the page's WebSocket dropped and
//! refused for a while (through a relay in front of the listener). A screenshot of the console at the end is saved
//! as a test artifact under the target directory (`target/tmp/console-e2e.png`).
//!
//! Like every test that needs a stand-in, it fails (never skips) when chromedriver is missing:
//! run it through `scripts/test`. `ANPR_CHROMEDRIVER` and `ANPR_CHROMIUM` override the paths.

mod common;

use anpr_local::{Options, Running};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The W3C WebDriver web element identifier key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session, ended on drop.
struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    async fn start() -> Self {
        let driver_bin =
            std::env::var("ANPR_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let chromium =
            std::env::var("ANPR_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {driver_bin} ({e}): run the tests through scripts/test, which installs chromium-driver")
            });
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let mut b = Browser {
            driver,
            base: base.clone(),
            http,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while b.http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1800"]
            }
        }}});
        let v = b.call("POST", "/session", Some(caps)).await;
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_owned();
        b.base = format!("{base}/session/{id}");
        b
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let resp = req.send().await.expect("WebDriver call");
        let v: Value = resp.json().await.expect("WebDriver JSON");
        if v["value"].get("error").is_some() {
            panic!("WebDriver {method} {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call("POST", &format!("/element/{e}/clear"), None)
            .await;
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call("POST", &format!("/element/{e}/click"), None)
            .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Waits until `script` (a JS expression) is truthy; returns its value.
    async fn until(&self, what: &str, secs: u64, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.js(&format!("return ({script});")).await;
            if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
                return v;
            }
            if Instant::now() > deadline {
                let page = self.js("return document.body.innerText").await;
                panic!("{what}: not within {secs} s; the page shows:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// On the hosted UI's sign-in page (the local stand-in of Cognito's), picks `user`, and
    /// waits until the console is back, signed in as them and loaded.
    async fn sign_in(&self, user: &str) {
        let link = format!("a[data-user=\"{user}\"]");
        self.until(
            "the hosted UI's sign-in page",
            20,
            &format!("location.pathname === '/local/oauth2/authorize' && document.querySelector('{link}')"),
        )
        .await;
        self.click(&link).await;
        self.until(
            &format!("signed in as {user}"),
            20,
            &format!(
                "document.body.dataset.user === '{user}' && document.body.dataset.ready === 'true'"
            ),
        )
        .await;
    }

    async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine as _;
        let v = self.call("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 screenshot"))
            .expect("screenshot decodes");
        std::fs::write(path, png).expect("screenshot written");
    }
}

/// The network between the browser and the WebSocket listener: a TCP relay that can close
/// every connection and refuse new ones until it is restored, and counts the bytes it carries
/// (browser → broker, broker → browser).
struct Relay {
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
}

/// Copies `from` to `to`, counting into `n`, until either side closes.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    n: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(k) = from.read(&mut buf).await {
        if k == 0 || to.write_all(&buf[..k]).await.is_err() {
            break;
        }
        n.fetch_add(k as u64, Ordering::SeqCst);
    }
}

impl Relay {
    /// Relays connections accepted on `listener` to `upstream` on the loopback interface.
    fn start(listener: tokio::net::TcpListener, upstream: u16) -> Self {
        let up = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicU64::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let (up2, conns2, sent2, received2) =
            (up.clone(), conns.clone(), sent.clone(), received.clone());
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the browser sees the connection closed
                }
                let (sent, received) = (sent2.clone(), received2.clone());
                let task = tokio::spawn(async move {
                    if let Ok(server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        let (down_r, down_w) = down.into_split();
                        let (server_r, server_w) = server.into_split();
                        tokio::select! {
                            () = pipe(down_r, server_w, sent) => {}
                            () = pipe(server_r, down_w, received) => {}
                        }
                    }
                });
                conns2.lock().unwrap().push(task.abort_handle());
            }
        });
        Self {
            up,
            conns,
            sent,
            received,
        }
    }

    /// Closes every relayed connection and refuses new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Bytes carried so far: (browser → broker, broker → browser).
    fn bytes(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::SeqCst),
            self.received.load(Ordering::SeqCst),
        )
    }
}

/// The console's keep-alive in this test.
const KEEPALIVE_SECS: u16 = 4;

/// The stack, its console told to reach the WebSocket listener through a [`Relay`].
async fn start_stack(dir: &std::path::Path) -> (Running, Relay) {
    let relay_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("relay port");
    let relay_port = relay_listener.local_addr().expect("relay address").port();
    let mut opts = Options::ephemeral(dir.to_owned());
    opts.plate_interval_secs = 1;
    opts.console_ws_url = Some(format!("ws://127.0.0.1:{relay_port}/mqtt"));
    // A short keep-alive, so that the idle cost is measured in seconds (one PINGREQ every
    // KEEPALIVE / 2); the default is anpr_local::console::DEFAULT_KEEPALIVE_SECS.
    opts.console_keepalive_secs = KEEPALIVE_SECS;
    let stack = common::start_ready(opts).await;
    let ws_port = stack
        .ws_url
        .trim_start_matches("ws://")
        .split(['/', ':'])
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("the listener's port");
    (stack, Relay::start(relay_listener, ws_port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_requests_a_clip_watches_it_travel_gets_the_exact_file_and_sees_a_changed_setting_reported()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    let (stack, relay) = start_stack(dir.path()).await;
    let browser = Browser::start().await;
    browser.goto(&stack.console_url).await;
    // Signed in as the viewer (through the hosted UI's stand-in, by the code flow with PKCE), a
    // request is refused (403) with the API's message.
    browser.sign_in("vic").await;
    browser
        .type_into("#file-input", anpr_local::cameras::CLIP)
        .await;
    browser.click("#request-submit").await;
    browser
        .until(
            "the viewer's request refused",
            10,
            "document.querySelector('#request-error').textContent.includes('operator')",
        )
        .await;
    // Signed out, then in as the admin of the camera's organisation.
    browser.click("#sign-out").await;
    browser.sign_in("ada").await;
    browser
        .until(
            "the console signed in as ada and connected to MQTT over WebSocket",
            20,
            "document.body.dataset.user === 'ada' && document.body.dataset.mqtt === 'online'",
        )
        .await;
    browser
        .until(
            "the camera shown online (GET /cameras, from the broker's lifecycle events)",
            20,
            "document.querySelector('#cameras tr[data-camera-id=\"cam-001\"] td:nth-child(3)')?.textContent === 'online'",
        )
        .await;
    let live_ms = browser.js("return document.body.dataset.liveMs").await;
    // A figure for docs/measured.md, not an assertion (debug build, shared machine).
    println!("measured: console opened -> signed in and live (MQTT online): {live_ms} ms");
    // Each organisation lists its own cameras only: acme's two, one simulated (online) and
    // one registered only (offline).
    let cameras = "[...document.querySelectorAll('#cameras tr[data-camera-id]')].map(r => r.dataset.cameraId + ':' + r.querySelector('td:nth-child(3)').textContent).join(',')";
    assert_eq!(
        browser.js(&format!("return {cameras}")).await,
        "cam-001:online,cam-002:offline"
    );
    // gil, admin of globex, in a second browser session: globex's camera only, and nothing of
    // acme's requests while he is live.
    let other = Browser::start().await;
    other.goto(&stack.console_url).await;
    other.sign_in("gil").await;
    other
        .until(
            "the second console live",
            20,
            "document.body.dataset.mqtt === 'online'",
        )
        .await;
    assert_eq!(
        other.js(&format!("return {cameras}")).await,
        "cam-101:offline"
    );

    // Every status the page announces, in order.
    browser
        .js("window.__seen = []; new MutationObserver(() => window.__seen.push(document.querySelector('#status-announcer').textContent)).observe(document.querySelector('#status-announcer'), {childList: true, characterData: true, subtree: true}); return true;")
        .await;
    browser
        .type_into("#file-input", anpr_local::cameras::CLIP)
        .await;
    let clicked = Instant::now();
    browser.click("#request-submit").await;
    let url = browser
        .until(
            "the request shown ready with a download link",
            90,
            "document.querySelector('#requests tr[data-state=\"ready\"] a.download')?.href",
        )
        .await;
    // A figure for docs/measured.md, not an assertion (debug build, shared machine).
    println!(
        "click \"Request\" -> link shown ready: {} ms",
        clicked.elapsed().as_millis()
    );
    // The other organisation's console, live all along, never heard of it.
    assert_eq!(
        other
            .js("return [document.body.dataset.mqtt, document.querySelectorAll('#requests tr[data-request-id]').length, document.querySelector('#status-announcer').textContent]")
            .await,
        json!(["online", 0, ""]),
        "gil's console shows acme's request"
    );
    let seen = browser.js("return window.__seen.join('\\n')").await;
    let seen = seen.as_str().unwrap_or_default();
    // Each status shown, in the order the request went through them.
    let first = |step: &str| {
        seen.lines()
            .position(|l| l.ends_with(step) || l.contains(&format!(": {step} ")))
    };
    let order: Vec<Option<usize>> = ["accepted", "uploading", "ready"]
        .iter()
        .map(|s| first(s))
        .collect();
    assert!(
        order.iter().all(Option::is_some) && order.windows(2).all(|w| w[0] < w[1]),
        "accepted, uploading, ready in this order: {order:?} in\n{seen}"
    );

    // A file the camera does not have: the request fails, and the page says why.
    browser
        .type_into("#file-input", "clips/no-such-clip.png")
        .await;
    browser.click("#request-submit").await;
    browser
        .until(
            "the missing file's request shown failed",
            60,
            "document.querySelector('#requests tr[data-state=\"failed\"]') !== null",
        )
        .await;
    let seen = browser.js("return window.__seen.join('\\n')").await;
    let seen = seen.as_str().unwrap_or_default();
    assert!(
        seen.lines()
            .any(|l| l.starts_with("clips/no-such-clip.png from cam-001: failed (")),
        "the failure and its reason announced: {seen}"
    );

    let original = std::fs::read(dir.path().join("media").join(anpr_local::cameras::CLIP))
        .expect("the camera's file");
    let got = reqwest::get(url.as_str().expect("href"))
        .await
        .expect("GET the link")
        .bytes()
        .await
        .expect("body");
    assert_eq!(got.len(), original.len());
    assert!(
        got == original,
        "the downloaded file differs from the camera's"
    );

    // After a reload the ready request still offers a working download (a fresh link from
    // the API: the notification that carried the first one is gone).
    browser.goto(&stack.console_url).await;
    let reloaded = browser
        .until(
            "the ready request listed again with a link after a reload",
            30,
            "document.body.dataset.ready === 'true' && document.querySelector('#requests tr[data-state=\"ready\"] a.download')?.href",
        )
        .await;
    let got = reqwest::get(reloaded.as_str().expect("href"))
        .await
        .expect("GET the link after the reload")
        .bytes()
        .await
        .expect("body");
    assert!(
        got == original,
        "the link after a reload downloads the camera's file"
    );
    assert_eq!(
        other
            .js("return document.querySelectorAll('#requests tr[data-request-id]').length")
            .await,
        json!(0),
        "gil's console lists acme's requests"
    );
    // Ends the session (the browser closes; dropping only the driver could leave it running).
    other.call("DELETE", "", None).await;
    drop(other);

    browser
        .click("#requests tr[data-state=\"ready\"] button.view")
        .await;
    browser
        .until(
            "the clip displayed",
            30,
            "(() => { const i = document.querySelector('#viewer img'); return i && i.complete && i.naturalWidth === 640; })()",
        )
        .await;

    // Plate reads arrive, and a search finds a plate however it is typed.
    browser
        .until(
            "plate reads in the feed",
            30,
            "document.querySelectorAll('#reads tbody tr').length",
        )
        .await;
    browser.type_into("#plate-input", "ab-12 cde").await;
    browser.click("#search-form button[type=submit]").await;
    let plates = browser
        .until(
            "search results",
            15,
            "document.querySelector('#reads-caption').textContent.includes('sighting(s) of ab-12 cde') && [...document.querySelectorAll('#reads tbody tr td:nth-child(3)')].map(t => t.textContent).join(',')",
        )
        .await;
    let plates = plates.as_str().unwrap_or_default();
    assert!(
        !plates.is_empty() && plates.split(',').all(|p| p == "AB12CDE"),
        "search for ab-12 cde showed {plates}"
    );

    // The configuration editor: a desired setting goes to the simulated camera through its
    // device shadow; the agent applies it and its report arrives live.
    browser
        .click("#config-setting option[value=\"upload_progress_step_pct\"]")
        .await;
    browser.type_into("#config-value", "20").await;
    browser.click("#config-save").await;
    browser
        .until(
            "the camera's report of the new setting shown",
            20,
            "(() => { const r = document.querySelector('#config-table tr[data-setting=\"upload_progress_step_pct\"]'); return r && r.dataset.pending === 'false' && r.querySelector('td.desired').textContent === '20' && r.querySelector('td.reported').textContent === '20'; })()",
        )
        .await;

    // The page's WebSocket drops and is refused for a while; meanwhile a request travels to
    // `ready` without the page hearing of it. Once the link is back the page shows it ready.
    relay.cut();
    browser
        .until(
            "MQTT shown offline after the drop",
            20,
            "document.body.dataset.mqtt !== 'online'",
        )
        .await;
    let known = browser
        .js("return [...document.querySelectorAll('#requests tr[data-request-id]')].map(r => r.dataset.requestId)")
        .await;
    browser
        .type_into("#file-input", anpr_local::cameras::CLIP)
        .await;
    browser.click("#request-submit").await;
    let id = browser
        .until(
            "the request made while offline listed",
            15,
            &format!(
                "(() => {{ const known = {known}; const r = [...document.querySelectorAll('#requests tr[data-request-id]')].find(r => !known.includes(r.dataset.requestId)); return r && r.dataset.requestId; }})()"
            ),
        )
        .await;
    let id = id.as_str().expect("a request id").to_owned();
    let ada = common::signed_in(&stack, "ada").await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let v: Value = ada
            .get(format!("{}/file-requests/{id}", stack.api_url))
            .send()
            .await
            .expect("GET the request")
            .json()
            .await
            .expect("JSON");
        if v["state"] == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row_state =
        format!("document.querySelector('#requests tr[data-request-id=\"{id}\"]')?.dataset.state");
    let shown = browser.js(&format!("return {row_state}")).await;
    assert_ne!(
        shown,
        "ready",
        "the page cannot know yet: its link is down (mqtt {})",
        browser.js("return document.body.dataset.mqtt").await
    );
    relay.restore();
    browser
        .until(
            "the console back online and the request shown ready",
            30,
            &format!("document.body.dataset.mqtt === 'online' && {row_state} === 'ready'"),
        )
        .await;
    // Its link, which only the missed notification would have carried, comes from the API's
    // download route, and downloads the camera's file.
    let caught_up = browser
        .until(
            "a download link for the request caught up",
            30,
            &format!(
                "document.querySelector('#requests tr[data-request-id=\"{id}\"] a.download')?.href"
            ),
        )
        .await;
    let got = reqwest::get(caught_up.as_str().expect("href"))
        .await
        .expect("GET the caught-up link")
        .bytes()
        .await
        .expect("body");
    let original = std::fs::read(dir.path().join("media").join(anpr_local::cameras::CLIP))
        .expect("the camera's file");
    assert!(
        got == original,
        "the caught-up link downloads the camera's file"
    );

    // A notification whose link is `javascript:` (as a forged or buggy publisher could send)
    // shows the request, never the link.
    let (publisher, _rx) = common::subscriber(&stack, "forger", "forger/none").await;
    let forged = json!({
        "v": 1,
        "request_id": "01JAVASCR1PT0000000000000A",
        "camera_id": "cam-001",
        "file": "clips/forged.mp4",
        "state": "ready",
        "url": "javascript:document.title='pwned'",
        "at": 1_700_000_000u64,
    });
    publisher
        .publish(
            anpr_protocol::topics::org_notifications("acme"),
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            forged.to_string(),
        )
        .await
        .expect("publish the forged notification");
    let row =
        "document.querySelector('#requests tr[data-request-id=\"01JAVASCR1PT0000000000000A\"]')";
    browser
        .until(
            "the forged notification's request shown",
            20,
            &format!("{row}?.dataset.state === 'ready'"),
        )
        .await;
    let links = browser
        .js(&format!(
            "return {row}.querySelectorAll('a').length + {row}.querySelectorAll('button').length"
        ))
        .await;
    assert_eq!(
        links,
        json!(0),
        "a javascript: URL rendered as a link or a view button"
    );

    // What the idle live connection costs: the bytes through the relay over a window with
    // nothing to tell (plate reads and cameras come over HTTP; no request in flight). A figure
    // for docs/measured.md, scaled to the default keep-alive; the assertion is only that the
    // keep-alive does flow.
    let (s0, r0) = relay.bytes();
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(u64::from(KEEPALIVE_SECS) * 3)).await;
    let (s1, r1) = relay.bytes();
    let secs = window.elapsed().as_secs_f64();
    let pings = secs / (f64::from(KEEPALIVE_SECS) / 2.0);
    let per_ping = (s1 - s0 + r1 - r0) as f64 / pings;
    let per_hour =
        per_ping * 3600.0 / (f64::from(anpr_local::console::DEFAULT_KEEPALIVE_SECS) / 2.0);
    println!(
        "measured: idle live connection: {} B up, {} B down in {secs:.1} s (keep-alive {KEEPALIVE_SECS} s) = {per_ping:.1} B per PINGREQ/PINGRESP over WebSocket; at the default keep-alive {} s: {per_hour:.0} B per idle hour",
        s1 - s0,
        r1 - r0,
        anpr_local::console::DEFAULT_KEEPALIVE_SECS
    );
    assert!(s1 > s0 && r1 > r0, "no keep-alive while idle");

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-e2e.png");
    browser.screenshot(&shot).await;
    println!("screenshot: {}", shot.display());
    browser.call("DELETE", "", None).await;
    stack.stop().await;
}
