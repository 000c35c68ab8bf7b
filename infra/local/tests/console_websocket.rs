//! The broker's MQTT-over-WebSocket listener (the console's live connection) from the
//! attacker's side, with a hand-made MQTT 3.1.1 client over a real WebSocket: a page of another
//! origin, a missing, expired, foreign-signed or borrowed token are refused; a signed-in user
//! may subscribe to their own organisation's notifications only (no camera topic, not even
//! their own organisation's; no lifecycle events; no other organisation's), and may publish
//! nothing (the publish that would reach a camera is refused, and the camera's topic
//! shows it never arrived).

mod common;

use anpr_local::{Options, Running};
use async_tungstenite::tungstenite::client::IntoClientRequest as _;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use ws_stream_tungstenite::WsStream;

type Io = WsStream<async_tungstenite::tokio::TokioAdapter<tokio::net::TcpStream>>;

/// `len` as MQTT's remaining length.
fn remaining(mut len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            return out;
        }
    }
}

fn string(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first];
    p.extend(remaining(body.len()));
    p.extend_from_slice(body);
    p
}

/// A browser's connection, at the MQTT level.
struct Browser {
    io: Io,
}

impl Browser {
    /// The WebSocket handshake with `origin` (as a page of that origin sends it); the HTTP
    /// refusal, if any, as an error.
    async fn open(stack: &Running, origin: &str) -> Result<Self, String> {
        let mut req = stack
            .ws_url
            .as_str()
            .into_client_request()
            .expect("request");
        req.headers_mut()
            .insert("sec-websocket-protocol", "mqtt".parse().expect("header"));
        req.headers_mut()
            .insert("origin", origin.parse().expect("header"));
        match async_tungstenite::tokio::connect_async(req).await {
            Ok((ws, _)) => Ok(Self {
                io: WsStream::new(ws),
            }),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        // A write to a connection the broker closed may fail: the next read says so.
        let _ = self.io.write_all(bytes).await;
        let _ = self.io.flush().await;
    }

    /// The next packet (first byte, body), `None` once the broker closed the connection.
    async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        let read = async {
            let first = self.io.read_u8().await.ok()?;
            let (mut len, mut mult) = (0usize, 1usize);
            loop {
                let b = self.io.read_u8().await.ok()?;
                len += usize::from(b & 0x7f) * mult;
                mult *= 128;
                if b & 0x80 == 0 {
                    break;
                }
            }
            let mut body = vec![0; len];
            self.io.read_exact(&mut body).await.ok()?;
            Some((first, body))
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the broker answers or closes within 10 s")
    }

    /// CONNECT (clean session, keep-alive 30 s) with `login` as user name and password: the
    /// CONNACK return code, or `None` if the broker closed the connection instead.
    async fn connect(&mut self, client_id: &str, login: Option<(&str, &str)>) -> Option<u8> {
        let mut body = string("MQTT");
        body.extend([4, if login.is_some() { 0xc2 } else { 0x02 }, 0, 30]);
        body.extend(string(client_id));
        if let Some((user, password)) = login {
            body.extend(string(user));
            body.extend(string(password));
        }
        self.send(&packet(0x10, &body)).await;
        match self.next().await? {
            (0x20, b) if b.len() == 2 => Some(b[1]),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// SUBSCRIBE to each filter (QoS 1): the SUBACK's return codes.
    async fn subscribe(&mut self, filters: &[&str]) -> Vec<u8> {
        let mut body = vec![0, 1];
        for f in filters {
            body.extend(string(f));
            body.push(1);
        }
        self.send(&packet(0x82, &body)).await;
        loop {
            match self.next().await.expect("the connection stays open") {
                (0x90, b) => return b[2..].to_vec(),
                _ => continue, // retained messages of the filters granted
            }
        }
    }

    /// PUBLISH at QoS 1.
    async fn publish(&mut self, topic: &str, payload: &[u8]) {
        let mut body = string(topic);
        body.extend([0, 2]);
        body.extend_from_slice(payload);
        self.send(&packet(0x32, &body)).await;
    }
}

fn origin(stack: &Running) -> String {
    stack.console_url.trim_end_matches('/').to_owned()
}

fn token(stack: &Running, user: &str, now: u64) -> String {
    anpr_local::tokens::Issuer::open(&stack.data_dir)
        .expect("the stack's issuer")
        .token_for(user, now)
        .expect("a token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_without_a_valid_token_of_its_own_or_from_another_origin_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stack = common::start_ready(Options::ephemeral(dir.path().to_owned())).await;

    let refused = Browser::open(&stack, "http://evil.example").await;
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("403")),
        "a page of another origin: {:?}",
        refused.err()
    );

    let other_key = tempfile::tempdir().expect("tempdir");
    let foreign = anpr_local::tokens::Issuer::open(other_key.path())
        .expect("another issuer")
        .token_for("ada", anpr_protocol::clock::now_secs())
        .expect("a token");
    let expired = token(
        &stack,
        "ada",
        anpr_protocol::clock::now_secs() - 2 * anpr_local::tokens::TOKEN_TTL_SECS,
    );
    let valid = token(&stack, "ada", anpr_protocol::clock::now_secs());
    let mut tampered = valid.clone();
    tampered.insert(tampered.rfind('.').expect("a JWT") + 1, 'A');
    for (what, client_id, login) in [
        ("no credentials", "web-ada-1", None),
        (
            "a token of another issuer",
            "web-ada-1",
            Some(foreign.as_str()),
        ),
        ("an expired token", "web-ada-1", Some(expired.as_str())),
        ("a tampered token", "web-ada-1", Some(tampered.as_str())),
        (
            "ada's token under otto's client id",
            "web-otto-1",
            Some(valid.as_str()),
        ),
        (
            "ada's token under a camera's client id",
            "cam-001",
            Some(valid.as_str()),
        ),
    ] {
        let mut b = Browser::open(&stack, &origin(&stack))
            .await
            .expect("handshake");
        let code = b.connect(client_id, login.map(|t| ("ada", t))).await;
        assert!(code.is_none_or(|c| c != 0), "{what}: CONNACK {code:?}");
    }

    let mut b = Browser::open(&stack, &origin(&stack))
        .await
        .expect("handshake");
    assert_eq!(b.connect("web-ada-1", Some(("ada", &valid))).await, Some(0));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_browser_subscribes_to_its_organisations_notifications_only_and_publishes_nothing()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    let stack = common::start_ready(Options::ephemeral(dir.path().to_owned())).await;

    // gil, admin of globex: acme's notifications and cameras are not his to watch, and even
    // his own organisation's cameras he sees through the API only.
    let mut gil = Browser::open(&stack, &origin(&stack))
        .await
        .expect("handshake");
    let t = token(&stack, "gil", anpr_protocol::clock::now_secs());
    assert_eq!(gil.connect("web-gil-7", Some(("gil", &t))).await, Some(0));
    let filters = [
        "#",
        "+/presence",
        "cam-001/presence",
        "cam-001/plates",
        "$aws/things/cam-001/shadow/name/config/update/accepted",
        "web/ada/notifications",
        "web/+/notifications",
        "web/org/acme/notifications",
        "web/org/+/notifications",
        "web/#",
        "web/org/globex/notifications",
        "cam-101/presence",
        "cam-101/plates",
        "$aws/events/presence/+/+",
        "$aws/events/presence/connected/cam-101",
        "$aws/things/cam-101/shadow/name/config/update/accepted",
    ];
    let codes = gil.subscribe(&filters).await;
    let granted: Vec<&str> = filters
        .iter()
        .zip(&codes)
        .filter(|(_, c)| **c != 0x80)
        .map(|(f, _)| *f)
        .collect();
    assert_eq!(
        granted,
        ["web/org/globex/notifications"],
        "return codes {codes:?}"
    );

    // ada, admin of acme, publishes a well-formed file request to her own camera: refused (the
    // connection is closed), and the camera's request topic never carries it. The marker
    // published after it on the same topic proves the order.
    let (observer, mut seen) = common::subscriber(&stack, "observer", "cam-001/file/request").await;
    let mut ada = Browser::open(&stack, &origin(&stack))
        .await
        .expect("handshake");
    let t = token(&stack, "ada", anpr_protocol::clock::now_secs());
    assert_eq!(ada.connect("web-ada-7", Some(("ada", &t))).await, Some(0));
    let forged = format!(
        r#"{{"v":1,"id":"01WEBFORGED000000000000000","file":"clips/drive-by.png","at":{},"exp":{}}}"#,
        anpr_protocol::clock::now_secs(),
        anpr_protocol::clock::now_secs() + 600
    );
    ada.publish("cam-001/file/request", forged.as_bytes()).await;
    let answer = ada.next().await;
    assert!(
        matches!(answer, None | Some((0xe0, _))),
        "the broker disconnects a publishing browser (no PUBACK): {answer:?}"
    );
    observer
        .publish(
            "cam-001/file/request",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            "marker",
        )
        .await
        .expect("publish the marker");
    let first = tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .expect("the marker arrives")
        .expect("observer connected");
    assert_eq!(
        first, b"marker",
        "the browser's publish reached the camera's topic"
    );
    stack.stop().await;
}
