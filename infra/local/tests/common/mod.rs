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
    let (cert, key) = stack.pki.camera(client_id).expect("client certificate");
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
    let v: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/local/token", stack.api_url))
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
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", token(stack, user).await)
            .parse()
            .expect("header value"),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .expect("client")
}
