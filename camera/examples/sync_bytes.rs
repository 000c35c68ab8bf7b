//! Measures what the sync message (`{camera}/file/sync`, sent once per new broker session)
//! adds to a reconnect without a session, on the wire: a session made with the agent's own MQTT
//! options (TLS, MQTT 5, the camera's certificate) through a counting proxy to Mosquitto, then
//! the agent's own `publish_sync` and its PUBACK, counted alone. Run with moto started and
//! `ANPR_MOTO_URL` set, like the tests. Not a test: it prints figures.
//!
//! ```sh
//! cargo run -p anpr-camera --example sync_bytes
//! ```
//!
//! Bytes are TCP payload bytes (TLS records), both directions; IP/TCP headers not included.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event};
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let stack = Stack::new("cam-sync-bytes").await;
    let cfg = stack.config();
    let opts = anpr_camera::mqtt::options(&cfg).expect("the agent's MQTT options");
    let (client, mut ev) = AsyncClient::new(opts, 16);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("connecting: {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.mqtt_proxy.reset_counts();
    anpr_camera::agent::publish_sync(&client, &cfg.camera())
        .await
        .expect("sync queued");
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("waiting for the PUBACK: {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let topic = anpr_protocol::topics::file_sync(&cfg.camera());
    let payload = anpr_protocol::encode(&anpr_protocol::FileSync {}).expect("encodes");
    println!(
        "sync message: topic {topic:?} ({} B), payload {} B; on the wire with its PUBACK: {} B up, {} B down, {} B in all",
        topic.len(),
        payload.len(),
        stack.mqtt_proxy.up_bytes(),
        stack.mqtt_proxy.down_bytes(),
        stack.mqtt_proxy.total_bytes()
    );
}
