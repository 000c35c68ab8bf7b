//! AWS IoT's lifecycle events, from the local broker: every connection the broker registers or
//! removes (the vendored rumqttd's `LifecycleHook`) is published as IoT Core publishes it, on
//! `$aws/events/presence/connected|disconnected/{clientId}` with `clientId`, `eventType`,
//! `timestamp` (ms) and `versionNumber`, which grows with every connection of a client id; a
//! connection's disconnect carries its connect's number. The presence rule's stand-in
//! ([`crate::rules`]) hands them to file-status's `handle_lifecycle`, the code AWS runs, so
//! `GET /cameras` shows online state from the same code here as there.
//!
//! Version numbers start from the clock in microseconds at start, so a restarted stack's
//! connections are newer than any recorded before. Only the broker's own link may publish
//! under `$aws/events/` ([`may_publish`]), as on IoT Core.

use crate::broker::LinkPublisher;
use anpr_core::ports::DevicePublisher;
use anpr_protocol::topics;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Topics under this prefix are the broker's own.
pub const EVENTS_PREFIX: &str = "$aws/events/";

/// A connection registered (`true`) or removed, with its client id.
#[derive(Debug)]
pub struct Change {
    client_id: String,
    connected: bool,
    at_ms: u64,
}

/// The hook for the broker's router and the receiver of what it tells.
pub fn hook() -> (rumqttd::LifecycleHook, mpsc::UnboundedReceiver<Change>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let hook = rumqttd::LifecycleHook(Arc::new(move |client_id: &str, connected: bool| {
        // Unbounded and non-blocking: the router's thread never waits on it.
        let _ = tx.send(Change {
            client_id: client_id.to_owned(),
            connected,
            at_ms: anpr_protocol::clock::now_ms(),
        });
    }));
    (hook, rx)
}

/// Whether `client` may publish to `topic` as far as the broker's reserved topics go: only
/// the broker's own link (`publisher_link`) publishes under [`EVENTS_PREFIX`].
pub fn may_publish(client: &str, topic: &str, publisher_link: &str) -> bool {
    !topic.starts_with(EVENTS_PREFIX) || client == publisher_link
}

/// Publishes each change as AWS IoT's lifecycle event, numbering connections.
pub async fn run(mut changes: mpsc::UnboundedReceiver<Change>, publisher: LinkPublisher) {
    let mut next_version = anpr_protocol::clock::now_ms().saturating_mul(1000);
    let mut open: HashMap<String, u64> = HashMap::new();
    while let Some(c) = changes.recv().await {
        let version = if c.connected {
            next_version += 1;
            open.insert(c.client_id.clone(), next_version);
            next_version
        } else {
            match open.remove(&c.client_id) {
                Some(v) => v,
                None => continue,
            }
        };
        let event = file_status::lifecycle_event(&c.client_id, c.connected, c.at_ms, version);
        let topic = topics::presence_event(c.connected, &c.client_id);
        let payload = serde_json::to_vec(&event).unwrap_or_default();
        if let Err(e) = publisher.publish(&topic, payload, 0).await {
            tracing::warn!(error = %e, client = %c.client_id, "lifecycle event not published");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_brokers_own_link_publishes_lifecycle_events() {
        let topic = topics::presence_event(true, "cam-002");
        assert!(may_publish(
            "anpr-local-iot-data",
            &topic,
            "anpr-local-iot-data"
        ));
        assert!(!may_publish("cam-001", &topic, "anpr-local-iot-data"));
        assert!(may_publish(
            "cam-001",
            "cam-001/file/status",
            "anpr-local-iot-data"
        ));
    }
}
