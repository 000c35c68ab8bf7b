//! Helpers shared by the local stack's tests.
#![allow(dead_code)] // each test file uses some of them

use anpr_local::Running;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A client of the broker's TLS listener (certificate of the local CA) subscribed to `filter`.
pub async fn subscriber(
    stack: &Running,
    client_id: &str,
    filter: &str,
) -> (AsyncClient, mpsc::UnboundedReceiver<Vec<u8>>) {
    let id = stack.pki.camera(client_id).expect("client certificate");
    let (cert, key) = (id.cert_path, id.key_path);
    let tls = anpr_camera::tls::client_config(
        &std::fs::read(stack.pki.ca_path()).expect("CA"),
        &std::fs::read(cert).expect("cert"),
        &std::fs::read(key).expect("key"),
        None,
    )
    .expect("TLS config");
    let mut o = MqttOptions::new(client_id, "localhost", stack.mqtt_port);
    o.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(Arc::new(tls)),
    ));
    o.set_max_packet_size(Some(256 * 1024));
    let (client, mut ev) = AsyncClient::new(o, 16);
    client
        .subscribe(filter, QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("connecting to the local broker: {other:?}"),
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(e) = ev.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = e
                && tx.send(p.payload.to_vec()).is_err()
            {
                return;
            }
        }
    });
    (client, rx)
}

/// Starts the stack on `opts` and waits until every simulated camera has subscribed.
pub async fn start_ready(opts: anpr_local::Options) -> Running {
    let stack = anpr_local::start(opts).await.expect("local stack starts");
    assert!(
        stack.cameras_ready(Duration::from_secs(60)).await,
        "the simulated camera subscribed"
    );
    stack
}

/// `GET url` answered with JSON.
pub async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    http.get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// A token for demo user `user` from the stack's local-only `POST /local/token`.
pub async fn token(stack: &Running, user: &str) -> String {
    token_at(&stack.api_url, user).await
}

/// A token for demo user `user` from the local-only `POST {api}/local/token` of a stack at
/// `api` (one started as a process, say).
pub async fn token_at(api: &str, user: &str) -> String {
    let v: serde_json::Value = reqwest::Client::new()
        .post(format!("{api}/local/token"))
        .json(&serde_json::json!({ "user": user }))
        .send()
        .await
        .expect("POST /local/token")
        .json()
        .await
        .expect("JSON");
    v["token"].as_str().expect("a token").to_owned()
}

/// An HTTP client signed in as demo user `user` (every request carries its bearer token).
pub async fn signed_in(stack: &Running, user: &str) -> reqwest::Client {
    bearer_client(&token(stack, user).await)
}

/// An HTTP client whose every request carries `token` as its bearer token.
pub fn bearer_client(token: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header value"),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .expect("client")
}

/// The `anpr-local` binary started in `cwd` with `args` and every port free (port 0), its
/// stdout read until its ready line: the child and that line ([`console_url`] reads it).
/// Killed when dropped.
pub async fn spawn_binary(cwd: &std::path::Path, args: &[&str]) -> (tokio::process::Child, String) {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_anpr-local"))
        .current_dir(cwd)
        .args([
            "--http",
            "127.0.0.1:0",
            "--mqtt-port",
            "0",
            "--ws-port",
            "0",
            "--s3-port",
            "0",
            "--creds-port",
            "0",
        ])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("anpr-local starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.expect("reading stdout") {
            if line.starts_with("anpr-local ready") {
                return line;
            }
        }
        panic!("anpr-local exited before it was ready");
    })
    .await
    .expect("anpr-local ready within 120 s");
    // Its later output is not read: drained so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, ready)
}

/// The console's URL (`http://host:port/`, the API's origin too) in the ready line
/// "anpr-local ready in N ms: console URL  (data in DIR; cameras …)".
pub fn console_url(ready: &str) -> String {
    ready
        .split_whitespace()
        .skip_while(|w| *w != "console")
        .nth(1)
        .expect("the ready line names the console URL")
        .to_owned()
}
