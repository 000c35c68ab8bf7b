//! The AWS IoT Device Shadow service stand-in for the cameras' named shadow `config`: the
//! service's topics and answers of [`anpr_stand_ins::shadow`] (shared with the tests), the
//! documents kept in the local database, the messages carried by an in-process broker link:
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
use anpr_core::shadow::{Shadow, Updated};
use anpr_protocol::shadow::{Document, Rejected};
use anpr_protocol::{CameraId, topics};
use anpr_stand_ins::shadow::{self as service, Message, Op, Request, ShadowDocs};
use rumqttd::Notification;
use rumqttd::local::{LinkRx, LinkTx};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

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
        let now = anpr_protocol::clock::now_secs();
        let result = self.db.update_shadow(camera.as_str(), payload, now).await;
        self.send(service::update_answer(
            camera.as_str(),
            topics::CONFIG_SHADOW,
            &result,
        ))
        .await;
        result.map(|_| ())
    }

    async fn send(&self, messages: Vec<Message>) {
        for (topic, bytes) in messages {
            if let Err(e) = self.publisher.publish(&topic, bytes, 1).await {
                tracing::warn!(%topic, error = %e, "shadow message not published");
            }
        }
    }
}

/// The documents of the shadow `config` (the only one the device side listens to), in the
/// local database; an update of another name is refused.
impl ShadowDocs for LocalShadows {
    async fn update(
        &self,
        thing: &str,
        name: &str,
        payload: &Value,
        now_secs: u64,
    ) -> Result<Updated, Rejected> {
        if name != topics::CONFIG_SHADOW {
            return Err(Rejected {
                code: 400,
                message: format!("Only the shadow '{}' is kept here", topics::CONFIG_SHADOW),
            });
        }
        self.db.update_shadow(thing, payload, now_secs).await
    }

    fn get(&self, thing: &str, name: &str) -> Option<Shadow> {
        (name == topics::CONFIG_SHADOW)
            .then(|| self.db.shadow(thing))
            .flatten()
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
        Ok(self
            .db
            .shadow(camera.as_str())
            .map(|s| s.document(anpr_protocol::clock::now_secs())))
    }
}

/// A camera's request to its shadow `config`: the camera and the request.
fn parse(topic: &str) -> Option<(CameraId, Request<'_>)> {
    let req = Request::parse(topic)?;
    let camera = CameraId::parse(req.thing).ok()?;
    (req.name == topics::CONFIG_SHADOW).then_some((camera, req))
}

/// Answers the cameras' shadow messages until the link closes.
pub async fn run_device_side(mut tx: LinkTx, mut rx: LinkRx, shadows: LocalShadows) {
    for f in service::request_filters(topics::CONFIG_SHADOW) {
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
        let Some((camera, req)) = parse(&topic) else {
            continue;
        };
        shadows
            .heard_from
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(camera.to_string());
        let now = anpr_protocol::clock::now_secs();
        let answer = service::answer(&shadows, req, &fwd.publish.payload, now).await;
        if req.op == Op::Update {
            match &answer.refused {
                Some(r) => {
                    tracing::info!(camera = %camera, code = r.code, message = %r.message, "shadow update rejected");
                }
                None => tracing::info!(camera = %camera, "shadow updated by the camera"),
            }
        }
        shadows.send(answer.messages).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_topics_name_their_camera_and_operation() {
        let (cam, req) = parse("$aws/things/cam-001/shadow/name/config/update").expect("parsed");
        assert_eq!((cam.as_str(), req.op), ("cam-001", Op::Update));
        assert!(parse("$aws/things/cam-001/shadow/name/other/update").is_none());
        assert!(parse("cam-001/file/status").is_none());
    }
}
