//! In-memory adapters of every port, for fast unit tests of the domain. Not for production:
//! nothing is persisted.

use crate::access::OrgId;
use crate::error::{PublishError, StoreError};
use crate::model::{Camera, CameraPresence, FileRequestRecord, Page};
use crate::ports::{
    CameraRegistry, ConfigShadows, ConnectionClaim, Created, DevicePublisher, IdempotencyKey,
    RequestStore,
};
use crate::shadow::{Shadow, desired_update};
use anpr_protocol::shadow::Document;
use anpr_protocol::{CameraId, RequestId};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not poison the others' view of the data.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Default)]
struct RequestsInner {
    by_id: BTreeMap<String, FileRequestRecord>,
    keys: HashMap<String, (RequestId, String)>,
}

/// [`RequestStore`] in memory.
#[derive(Debug, Default, Clone)]
pub struct MemoryRequestStore {
    inner: Arc<Mutex<RequestsInner>>,
}

impl MemoryRequestStore {
    /// Number of stored requests.
    pub fn len(&self) -> usize {
        lock(&self.inner).by_id.len()
    }
    /// True if nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RequestStore for MemoryRequestStore {
    async fn create(
        &self,
        record: &FileRequestRecord,
        key: Option<&IdempotencyKey>,
    ) -> Result<Created, StoreError> {
        let mut g = lock(&self.inner);
        if let Some(k) = key
            && let Some((id, fp)) = g.keys.get(&k.scoped_key)
        {
            return Ok(Created::Existing {
                request_id: id.clone(),
                fingerprint: fp.clone(),
            });
        }
        if g.by_id.contains_key(record.request_id.as_str()) {
            return Err(StoreError::Conflict);
        }
        g.by_id
            .insert(record.request_id.to_string(), record.clone());
        if let Some(k) = key {
            g.keys.insert(
                k.scoped_key.clone(),
                (record.request_id.clone(), k.fingerprint.clone()),
            );
        }
        Ok(Created::New)
    }

    async fn get(&self, id: &RequestId) -> Result<Option<FileRequestRecord>, StoreError> {
        Ok(lock(&self.inner).by_id.get(id.as_str()).cloned())
    }

    async fn replace(
        &self,
        record: &FileRequestRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let mut g = lock(&self.inner);
        match g.by_id.get_mut(record.request_id.as_str()) {
            Some(cur) if cur.version == expected_version => {
                *cur = record.clone();
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn open_past_expiry(
        &self,
        now: u64,
        limit: u32,
    ) -> Result<Vec<FileRequestRecord>, StoreError> {
        let g = lock(&self.inner);
        let mut due: Vec<FileRequestRecord> = g
            .by_id
            .values()
            .filter(|r| !r.state.is_terminal() && r.expires_at < now)
            .cloned()
            .collect();
        due.sort_by_key(|r| r.expires_at);
        due.truncate(limit as usize);
        Ok(due)
    }

    async fn list_by_camera(
        &self,
        camera: &CameraId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<FileRequestRecord>, StoreError> {
        let g = lock(&self.inner);
        if let Some(c) = cursor {
            RequestId::parse(c).map_err(|_| StoreError::BadCursor)?;
        }
        // Ids are ULIDs: reverse key order is newest first.
        let mut items: Vec<FileRequestRecord> = g
            .by_id
            .values()
            .rev()
            .filter(|r| &r.camera_id == camera)
            .filter(|r| cursor.is_none_or(|c| r.request_id.as_str() < c))
            .take(limit as usize + 1)
            .cloned()
            .collect();
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|r| r.request_id.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn find_key(&self, scoped_key: &str) -> Result<Option<(RequestId, String)>, StoreError> {
        Ok(lock(&self.inner).keys.get(scoped_key).cloned())
    }
}

/// [`CameraRegistry`] in memory.
#[derive(Debug, Default, Clone)]
pub struct MemoryCameraRegistry {
    cameras: Arc<Mutex<HashMap<String, Camera>>>,
    /// Camera → when its connection settings last changed (Unix seconds).
    connection_changes: Arc<Mutex<HashMap<String, u64>>>,
}

/// [`CameraRegistry::claim_connection_change`] over a map of last changes, for the in-memory
/// and local adapters: one lock, so the check and the write are one step.
pub fn claim_in(
    changes: &Mutex<HashMap<String, u64>>,
    id: &CameraId,
    now: u64,
    min_interval: u64,
) -> ConnectionClaim {
    let mut g = lock(changes);
    match g.get(id.as_str()).copied() {
        Some(last) if now < last.saturating_add(min_interval) => ConnectionClaim::TooSoon { last },
        previous => {
            g.insert(id.to_string(), now);
            ConnectionClaim::Claimed { previous }
        }
    }
}

/// [`CameraRegistry::release_connection_change`] over the same map.
pub fn release_in(
    changes: &Mutex<HashMap<String, u64>>,
    id: &CameraId,
    now: u64,
    previous: Option<u64>,
) {
    let mut g = lock(changes);
    if g.get(id.as_str()) == Some(&now) {
        match previous {
            Some(p) => g.insert(id.to_string(), p),
            None => g.remove(id.as_str()),
        };
    }
}

impl MemoryCameraRegistry {
    /// Registers a camera.
    pub fn register(&self, camera: Camera) {
        lock(&self.cameras).insert(camera.camera_id.to_string(), camera);
    }
}

impl CameraRegistry for MemoryCameraRegistry {
    async fn get_camera(&self, id: &CameraId) -> Result<Option<Camera>, StoreError> {
        Ok(lock(&self.cameras).get(id.as_str()).cloned())
    }

    async fn claim_connection_change(
        &self,
        id: &CameraId,
        now: u64,
        min_interval: u64,
    ) -> Result<ConnectionClaim, StoreError> {
        Ok(claim_in(&self.connection_changes, id, now, min_interval))
    }

    async fn release_connection_change(
        &self,
        id: &CameraId,
        now: u64,
        previous: Option<u64>,
    ) -> Result<(), StoreError> {
        release_in(&self.connection_changes, id, now, previous);
        Ok(())
    }

    async fn list_cameras(
        &self,
        org: &OrgId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Camera>, StoreError> {
        Ok(cameras_page(
            lock(&self.cameras).values().cloned(),
            org,
            cursor,
            limit,
        ))
    }

    async fn record_presence(
        &self,
        id: &CameraId,
        presence: CameraPresence,
    ) -> Result<Option<Camera>, StoreError> {
        Ok(lock(&self.cameras)
            .get_mut(id.as_str())
            .and_then(|c| record_presence_in(c, presence)))
    }
}

/// [`CameraRegistry::list_cameras`] over all the cameras, for the in-memory and local
/// adapters: the organisation's, in id order, after `cursor` (the last id of the previous
/// page).
pub fn cameras_page(
    all: impl IntoIterator<Item = Camera>,
    org: &OrgId,
    cursor: Option<&str>,
    limit: u32,
) -> Page<Camera> {
    let mut items: Vec<Camera> = all
        .into_iter()
        .filter(|c| c.org.as_ref() == Some(org))
        .filter(|c| cursor.is_none_or(|after| c.camera_id.as_str() > after))
        .collect();
    items.sort_by(|a, b| a.camera_id.as_str().cmp(b.camera_id.as_str()));
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| items.last().map(|c| c.camera_id.to_string()))
        .flatten();
    Page { items, next_cursor }
}

/// [`CameraRegistry::record_presence`] on one camera, for the in-memory and local adapters.
pub fn record_presence_in(camera: &mut Camera, presence: CameraPresence) -> Option<Camera> {
    presence.supersedes(camera.presence.as_ref()).then(|| {
        camera.presence = Some(presence);
        camera.clone()
    })
}

/// A message the [`MemoryPublisher`] was asked to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Topic.
    pub topic: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// QoS.
    pub qos: u8,
}

/// [`DevicePublisher`] that records what it is given; can be told to fail.
#[derive(Debug, Default, Clone)]
pub struct MemoryPublisher {
    sent: Arc<Mutex<Vec<Published>>>,
    failing: Arc<Mutex<bool>>,
}

impl MemoryPublisher {
    /// Everything published so far.
    pub fn sent(&self) -> Vec<Published> {
        lock(&self.sent).clone()
    }
    /// Makes the next publishes fail (retryably) until set back.
    pub fn set_failing(&self, failing: bool) {
        *lock(&self.failing) = failing;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("memory publisher told to fail")]
struct ToldToFail;

impl DevicePublisher for MemoryPublisher {
    async fn publish(&self, topic: &str, payload: Vec<u8>, qos: u8) -> Result<(), PublishError> {
        if *lock(&self.failing) {
            return Err(PublishError {
                topic: topic.to_owned(),
                retryable: true,
                source: Box::new(ToldToFail),
            });
        }
        lock(&self.sent).push(Published {
            topic: topic.to_owned(),
            payload,
            qos,
        });
        Ok(())
    }
}

/// [`crate::status::UrlSigner`] that "signs" `memory://{key}?expires_in={secs}`; can be told to
/// fail.
#[derive(Debug, Default, Clone)]
pub struct MemoryUrlSigner {
    failing: Arc<Mutex<bool>>,
}

impl MemoryUrlSigner {
    /// Makes the next signatures fail until set back.
    pub fn set_failing(&self, failing: bool) {
        *lock(&self.failing) = failing;
    }
}

impl crate::status::UrlSigner for MemoryUrlSigner {
    async fn presign_get(
        &self,
        key: &str,
        valid_for_secs: u64,
    ) -> Result<String, crate::status::SignError> {
        if *lock(&self.failing) {
            return Err(crate::status::SignError {
                key: key.to_owned(),
                source: Box::new(ToldToFail),
            });
        }
        Ok(format!("memory://{key}?expires_in={valid_for_secs}"))
    }
}

/// [`ConfigShadows`] in memory, with the shadow service's rules ([`Shadow`]).
#[derive(Debug, Default, Clone)]
pub struct MemoryShadows {
    shadows: Arc<Mutex<HashMap<String, Shadow>>>,
}

impl MemoryShadows {
    /// The camera's shadow, if it has one.
    pub fn get(&self, camera: &str) -> Option<Shadow> {
        lock(&self.shadows).get(camera).cloned()
    }

    /// What a camera does: merges `reported` into its shadow.
    pub fn report(&self, camera: &str, reported: Map<String, Value>) {
        let mut g = lock(&self.shadows);
        let s = g.entry(camera.to_owned()).or_default();
        let payload = serde_json::json!({ "state": { "reported": reported } });
        // A reported-only update of a well-formed payload cannot be refused.
        let _ = s.update(&payload, 0);
    }
}

impl ConfigShadows for MemoryShadows {
    async fn desire(
        &self,
        camera: &CameraId,
        desired: &Map<String, Value>,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut g = lock(&self.shadows);
        let s = g.entry(camera.to_string()).or_default();
        s.update(&desired_update(desired, expected_version), 0)?;
        Ok(())
    }

    async fn read(&self, camera: &CameraId) -> Result<Option<Document>, StoreError> {
        Ok(lock(&self.shadows)
            .get(camera.as_str())
            .map(|s| s.document(0)))
    }
}
