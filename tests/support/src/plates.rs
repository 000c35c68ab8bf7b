//! The plate-read path's cloud side as tests play it: the IoT rule's event for a message, a
//! fresh store in moto, and what the store holds for a camera.

use anpr_aws::{DynamoCameraRegistry, DynamoPlateReadStore};
use anpr_core::plates::{PlateReadStore, TimeRange};
use anpr_protocol::CameraId;

/// The IoT rule, as the harness plays it: what AWS would hand the plate-ingest Lambda for a
/// message on `topic`. `topic()` and `topic(1)` see the topic without the Basic Ingest prefix.
pub fn rule_event(topic: &str, payload: &[u8]) -> serde_json::Value {
    use base64::Engine as _;
    let rule_topic = topic
        .strip_prefix("$aws/rules/")
        .and_then(|t| t.split_once('/'))
        .map_or(topic, |(_, rest)| rest);
    let camera = rule_topic.split('/').next().unwrap_or_default();
    serde_json::json!({
        "camera_id": camera,
        "topic": rule_topic,
        "payload": base64::engine::general_purpose::STANDARD.encode(payload),
    })
}

/// A fresh table in moto: the read store and the camera registry plate-ingest reads
/// organisations from.
pub async fn fresh_store() -> (DynamoPlateReadStore, DynamoCameraRegistry) {
    let clients = crate::moto::clients();
    let table = crate::moto::fresh_table(&clients.dynamo).await;
    (
        DynamoPlateReadStore::new(clients.dynamo.clone(), &table),
        DynamoCameraRegistry::new(clients.dynamo, table),
    )
}

/// Every read id stored for `camera`, through the camera query (newest first, paginated).
/// Pages are large: each page queries all 16 shards for a page's worth, so small pages read
/// the same items many times over and keep moto busy for tens of seconds at 3,000 reads.
pub async fn stored_ids(store: &DynamoPlateReadStore, camera: &CameraId) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .reads_by_camera(camera, TimeRange::ALL, 5000, cursor.as_deref())
            .await
            .expect("query the reads of a camera");
        ids.extend(page.items.into_iter().map(|r| r.read_id.to_string()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            return ids;
        }
    }
}
