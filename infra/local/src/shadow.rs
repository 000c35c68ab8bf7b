//! The AWS IoT Device Shadow service stand-in, for the cameras' named shadow `config`, with the
//! shadow rules of `anpr_core::shadow::Shadow` (merge, version, delta) and the documents kept in
//! the local database:
//! - the API side ([`LocalShadows`], the `ConfigShadows` port that `UpdateThingShadow` /
//!   `GetThingShadow` implement in AWS): a desired change is stored, then `update/accepted` and,
//!   when something differs from `reported`, `update/delta` are published to the camera;
//! - the device side ([`run_device_side`]): a camera's `…/config/update` (reported state) and
//!   `…/config/get` messages are answered on `update/accepted|rejected` (+ `update/delta` when
//!   `desired` changed) and `get/accepted|rejected`, as the shadow service does over MQTT.

use crate::broker::LinkPublisher;
use crate::store::LocalDb;
use anpr_core::StoreError;
use anpr_core::ports::{ConfigShadows, DevicePublisher};
use anpr_protocol::shadow::{self as msgs, Document, Rejected};
use anpr_protocol::{CameraId, topics};
use rumqttd::Notification;
use rumqttd::local::{LinkRx, LinkTx};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// `update/accepted` (not in `anpr_protocol::shadow`: the camera does not subscribe to it).
pub const UPDATE_ACCEPTED: &str = "update/accepted";

/// [`ConfigShadows`] over the local shadow service.
#[derive(Debug, Clone)]
pub struct LocalShadows {
    db: LocalDb,
    publisher: LinkPublisher,
    heard_from: Arc<Mutex<HashSet<String>>>,
}

impl LocalShadows {
    /// The service over `db`, publishing to cameras through `publisher`.
    pub fn new(db: LocalDb, publisher: LinkPublisher) -> Self {
        Self {
            db,
            publisher,
            heard_from: Arc::default(),
        }
    }

    /// Whether `camera` has sent a shadow message since this process started. The agent asks
    /// for its shadow right after the SUBACK of a new session (and the embedded broker's
    /// sessions do not outlive the process), so this says the camera is subscribed.
    pub fn heard_from(&self, camera: &str) -> bool {
        self.heard_from
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(camera)
    }

    /// Applies an update payload and publishes what the shadow service publishes.
    async fn apply(&self, camera: &CameraId, payload: &Value) -> Result<(), Rejected> {
        let updated = self
            .db
            .update_shadow(camera.as_str(), payload, anpr_protocol::clock::now_secs())
            .await;
        match updated {
            Ok(u) => {
                self.send(camera, UPDATE_ACCEPTED, &u.accepted).await;
                if let Some(delta) = u.delta {
                    let v = serde_json::to_value(&delta).unwrap_or_default();
                    self.send(camera, msgs::UPDATE_DELTA, &v).await;
                }
                Ok(())
            }
            Err(r) => {
                let v = serde_json::to_value(&r).unwrap_or_default();
                self.send(camera, msgs::UPDATE_REJECTED, &v).await;
                Err(r)
            }
        }
    }

    async fn send(&self, camera: &CameraId, suffix: &str, v: &Value) {
        let topic = topics::config_shadow(camera, suffix);
        let bytes = serde_json::to_vec(v).unwrap_or_default();
        if let Err(e) = self.publisher.publish(&topic, bytes, 1).await {
            tracing::warn!(%topic, error = %e, "shadow message not published");
        }
    }

    fn document(&self, camera: &CameraId) -> Option<Document> {
        self.db
            .shadow(camera.as_str())
            .map(|s| s.document(anpr_protocol::clock::now_secs()))
    }
}

impl ConfigShadows for LocalShadows {
    async fn desire(
        &self,
        camera: &CameraId,
        desired: &Map<String, Value>,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let payload = anpr_core::shadow::desired_update(desired, expected_version);
        self.apply(camera, &payload).await.map_err(StoreError::from)
    }

    async fn read(&self, camera: &CameraId) -> Result<Option<Document>, StoreError> {
        Ok(self.document(camera))
    }
}

/// The filters the device side listens on.
pub fn filters() -> [String; 2] {
    [
        format!(
            "$aws/things/+/shadow/name/{}/{}",
            topics::CONFIG_SHADOW,
            msgs::UPDATE
        ),
        format!(
            "$aws/things/+/shadow/name/{}/{}",
            topics::CONFIG_SHADOW,
            msgs::GET
        ),
    ]
}

/// `$aws/things/{camera}/shadow/name/config/{update|get}` → the camera and the operation.
fn parse(topic: &str) -> Option<(CameraId, &str)> {
    let rest = topic.strip_prefix("$aws/things/")?;
    let (camera, rest) = rest.split_once('/')?;
    let op = rest.strip_prefix(&format!("shadow/name/{}/", topics::CONFIG_SHADOW))?;
    Some((CameraId::parse(camera).ok()?, op))
}

/// Answers the cameras' shadow messages until the link closes.
pub async fn run_device_side(mut tx: LinkTx, mut rx: LinkRx, shadows: LocalShadows) {
    for f in filters() {
        if let Err(e) = tx.subscribe(f.clone()) {
            tracing::error!(filter = %f, error = %e, "shadow subscription failed");
        }
    }
    loop {
        let fwd = match rx.next().await {
            Ok(Some(Notification::Forward(fwd))) => fwd,
            Ok(Some(Notification::Unschedule)) => {
                if rx.wake().await.is_err() {
                    return;
                }
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::error!(error = %e, "shadow link closed");
                return;
            }
        };
        let topic = String::from_utf8_lossy(&fwd.publish.topic).into_owned();
        let Some((camera, op)) = parse(&topic) else {
            continue;
        };
        shadows
            .heard_from
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(camera.to_string());
        match op {
            msgs::UPDATE => {
                let payload = match serde_json::from_slice::<Value>(&fwd.publish.payload) {
                    Ok(v) => v,
                    Err(_) => {
                        let r = json!({"code": 400, "message": "Payload contains invalid json"});
                        shadows.send(&camera, msgs::UPDATE_REJECTED, &r).await;
                        continue;
                    }
                };
                if let Err(r) = shadows.apply(&camera, &payload).await {
                    tracing::info!(camera = %camera, code = r.code, message = %r.message, "shadow update rejected");
                } else {
                    tracing::info!(camera = %camera, "shadow updated by the camera");
                }
            }
            msgs::GET => match shadows.document(&camera) {
                Some(doc) => {
                    let v = serde_json::to_value(&doc).unwrap_or_default();
                    shadows.send(&camera, msgs::GET_ACCEPTED, &v).await;
                }
                None => {
                    let r = json!({"code": 404, "message": "No shadow exists with name: 'config'"});
                    shadows.send(&camera, msgs::GET_REJECTED, &r).await;
                }
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_topics_name_their_camera_and_operation() {
        let (cam, op) = parse("$aws/things/cam-001/shadow/name/config/update").expect("parsed");
        assert_eq!((cam.as_str(), op), ("cam-001", "update"));
        assert!(parse("$aws/things/cam-001/shadow/name/other/update").is_none());
        assert!(parse("cam-001/file/status").is_none());
    }
}
