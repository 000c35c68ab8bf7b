//! Which cameras are online, kept from the broker's lifecycle events rather than from every web
//! client reading retained messages: AWS IoT publishes `$aws/events/presence/connected|
//! disconnected/{clientId}` for every connection (a camera's client id is its thing name), a
//! rule hands them to file-status, and [`Presences::apply`] records them on the camera's
//! registry item and tells the camera's organisation ([`topics::org_notifications`]).
//!
//! Lifecycle events arrive out of order and twice; each carries a version number that grows
//! with every connection of the client id. An event is recorded only if it supersedes the one
//! recorded ([`CameraPresence::supersedes`]), in one conditional write, so two invocations at
//! once cannot move a camera back in time. A camera taken over by a new connection of the
//! same client id (its old connection's late `disconnected`, version lower) stays online.
//!
//! `GET /cameras` lists the caller's organisation's cameras with this state
//! ([`list_cameras`]).

use crate::access::Caller;
use crate::error::DomainError;
use crate::model::{Camera, CameraPresence, Page};
use crate::ports::{CameraRegistry, DevicePublisher};
use crate::requests::page_size;
use crate::status::StatusError;
use anpr_protocol::notify::PresenceNotification;
use anpr_protocol::{CameraId, encode, topics};

/// The presence service over the camera registry and the publisher of notifications.
#[derive(Debug, Clone)]
pub struct Presences<C, P> {
    cameras: C,
    publisher: P,
}

impl<C: CameraRegistry, P: DevicePublisher> Presences<C, P> {
    /// Over clients built once at cold start.
    pub fn new(cameras: C, publisher: P) -> Self {
        Self { cameras, publisher }
    }

    /// Records the lifecycle event of `camera` if it supersedes the recorded one, and then
    /// notifies the camera's organisation. `None`: stale, duplicate, or no such camera (a web
    /// console's connection has lifecycle events too); nothing written or published.
    pub async fn apply(
        &self,
        camera: &CameraId,
        presence: CameraPresence,
    ) -> Result<Option<Camera>, StatusError> {
        let Some(cam) = self.cameras.record_presence(camera, presence).await? else {
            return Ok(None);
        };
        if let Some(org) = &cam.org {
            let msg = PresenceNotification {
                camera_id: cam.camera_id.clone(),
                online: presence.online,
                last_seen_ms: presence.at_ms,
            };
            let payload = encode(&msg).map_err(|e| StatusError::Encode(e.to_string()))?;
            self.publisher
                .publish(&topics::org_notifications(org.as_str()), payload, 1)
                .await?;
        }
        Ok(Some(cam))
    }

    /// The camera registry.
    pub fn cameras(&self) -> &C {
        &self.cameras
    }
}

/// The caller's organisation's cameras with their presence, in id order (any role may see
/// them), `limit` at most (`requests::page_size`), from `cursor`.
pub async fn list_cameras<C: CameraRegistry>(
    cameras: &C,
    caller: &Caller,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<Page<Camera>, DomainError> {
    let limit = page_size(limit)?;
    Ok(cameras.list_cameras(&caller.org, cursor, limit).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{OrgId, Role};
    use crate::memory::{MemoryCameraRegistry, MemoryPublisher};
    use anpr_protocol::decode;

    fn camera(id: &str, org: &str) -> Camera {
        Camera {
            camera_id: CameraId::parse(id).unwrap(),
            name: None,
            registered_at: 1,
            org: Some(OrgId::parse(org).unwrap()),
            presence: None,
        }
    }

    fn event(online: bool, at_ms: u64, version: u64) -> CameraPresence {
        CameraPresence {
            online,
            at_ms,
            version,
        }
    }

    fn service() -> Presences<MemoryCameraRegistry, MemoryPublisher> {
        let reg = MemoryCameraRegistry::default();
        reg.register(camera("cam-001", "acme"));
        reg.register(camera("cam-002", "acme"));
        reg.register(camera("cam-101", "globex"));
        Presences::new(reg, MemoryPublisher::default())
    }

    fn caller(org: &str) -> Caller {
        Caller {
            sub: "8a1f3c2e-user".into(),
            org: OrgId::parse(org).unwrap(),
            role: Role::Viewer,
        }
    }

    fn published(p: &Presences<MemoryCameraRegistry, MemoryPublisher>) -> Vec<(String, bool)> {
        p.publisher
            .sent()
            .into_iter()
            .map(|m| {
                let n: PresenceNotification = decode(&m.payload).unwrap();
                (m.topic, n.online)
            })
            .collect()
    }

    #[tokio::test]
    async fn a_connection_is_recorded_and_told_to_the_cameras_organisation_only() {
        let p = service();
        let cam = CameraId::parse("cam-001").unwrap();
        let got = p.apply(&cam, event(true, 5_000, 7)).await.unwrap();
        assert_eq!(got.unwrap().presence, Some(event(true, 5_000, 7)));
        assert_eq!(
            published(&p),
            vec![("web/org/acme/notifications".to_owned(), true)]
        );
    }

    #[tokio::test]
    async fn late_duplicate_and_out_of_order_events_change_nothing() {
        let p = service();
        let cam = CameraId::parse("cam-001").unwrap();
        // connection 7 connects, connection 8 takes over, then 7's disconnect arrives late
        p.apply(&cam, event(true, 1_000, 7)).await.unwrap();
        p.apply(&cam, event(true, 2_000, 8)).await.unwrap();
        assert!(
            p.apply(&cam, event(false, 2_001, 7))
                .await
                .unwrap()
                .is_none()
        );
        // a duplicate of 8's connect
        assert!(
            p.apply(&cam, event(true, 2_000, 8))
                .await
                .unwrap()
                .is_none()
        );
        let now = p.cameras.get_camera(&cam).await.unwrap().unwrap();
        assert_eq!(now.presence, Some(event(true, 2_000, 8)));
        // 8's disconnect is newer than its connect
        let off = p
            .apply(&cam, event(false, 3_000, 8))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(off.presence.map(|x| x.online), Some(false));
        // and 8's connect, delivered again after it, is older
        assert!(
            p.apply(&cam, event(true, 2_000, 8))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(published(&p).len(), 3);
    }

    #[tokio::test]
    async fn a_client_that_is_no_camera_is_ignored() {
        let p = service();
        let web = CameraId::parse("web-ada-1x2y").unwrap();
        assert!(p.apply(&web, event(true, 1, 1)).await.unwrap().is_none());
        assert!(published(&p).is_empty());
    }

    #[tokio::test]
    async fn each_organisation_lists_its_own_cameras_in_pages() {
        let p = service();
        let page = list_cameras(p.cameras(), &caller("acme"), None, Some(1))
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].camera_id.as_str(), "cam-001");
        let rest = list_cameras(
            p.cameras(),
            &caller("acme"),
            page.next_cursor.as_deref(),
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            rest.items
                .iter()
                .map(|c| c.camera_id.as_str())
                .collect::<Vec<_>>(),
            ["cam-002"]
        );
        assert_eq!(rest.next_cursor, None);
        let globex = list_cameras(p.cameras(), &caller("globex"), None, None)
            .await
            .unwrap();
        assert_eq!(globex.items.len(), 1);
        assert_eq!(globex.items[0].camera_id.as_str(), "cam-101");
        assert!(
            list_cameras(p.cameras(), &caller("acme"), None, Some(0))
                .await
                .is_err()
        );
    }
}
