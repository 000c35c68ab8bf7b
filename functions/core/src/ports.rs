//! Ports: what the domain needs from the outside world, named by role.

use crate::access::OrgId;
use crate::audit::AuditRecord;
use crate::error::{PublishError, StoreError};
use crate::model::{Camera, CameraPresence, FileRequestRecord, Page};
use crate::plates::{PutOutcome, StoredRead, TimeRange};
use crate::status::SignError;
use anpr_protocol::shadow::Document;
use anpr_protocol::{CameraId, RequestId};
use serde_json::{Map, Value};
use std::future::Future;

/// Result of creating a request under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new request was stored.
    New,
    /// The key was used before, with this fingerprint, for this request.
    Existing {
        /// The request created the first time.
        request_id: RequestId,
        /// The body fingerprint recorded the first time.
        fingerprint: String,
    },
}

/// An idempotency key scoped to its caller, with the fingerprint of the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// `{caller}#{key}`.
    pub scoped_key: String,
    /// SHA-256 of the request's meaningful fields.
    pub fingerprint: String,
    /// When the key may be forgotten (Unix seconds).
    pub expires_at: u64,
}

/// Stores file requests.
pub trait RequestStore: Send + Sync {
    /// Stores a new request; with a key, atomically with the key, or reports the earlier one.
    fn create(
        &self,
        record: &FileRequestRecord,
        key: Option<&IdempotencyKey>,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;

    /// The request, if it exists.
    fn get(
        &self,
        id: &RequestId,
    ) -> impl Future<Output = Result<Option<FileRequestRecord>, StoreError>> + Send;

    /// Replaces the request if its stored `version` is still `expected_version`
    /// (the new record carries `expected_version + 1`); otherwise [`StoreError::Conflict`].
    fn replace(
        &self,
        record: &FileRequestRecord,
        expected_version: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Requests not terminal whose `expires_at` is before `now`, most overdue first, at most
    /// `limit` (the expiry sweep; an index of open requests in DynamoDB).
    fn open_past_expiry(
        &self,
        now: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<FileRequestRecord>, StoreError>> + Send;

    /// A camera's requests, newest first.
    fn list_by_camera(
        &self,
        camera: &CameraId,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<FileRequestRecord>, StoreError>> + Send;

    /// The request an idempotency key (`{caller}#{key}`) was first used for, and the
    /// fingerprint recorded with it, if the key is known.
    fn find_key(
        &self,
        scoped_key: &str,
    ) -> impl Future<Output = Result<Option<(RequestId, String)>, StoreError>> + Send;

    /// How many of the camera's requests are open at `now` (not terminal, `expires_at` after
    /// `now`), counting the whole history, not one page of it; it may stop counting once it
    /// reaches `enough`. By default through [`Self::list_by_camera`], page after page.
    fn count_open(
        &self,
        camera: &CameraId,
        now: u64,
        enough: u32,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send {
        async move {
            let mut open = 0u32;
            let mut cursor: Option<String> = None;
            loop {
                let page = self
                    .list_by_camera(camera, crate::requests::MAX_PAGE, cursor.as_deref())
                    .await?;
                let n = page
                    .items
                    .iter()
                    .filter(|r| !r.state.is_terminal() && r.expires_at > now)
                    .count();
                open = open.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
                match page.next_cursor {
                    Some(c) if open < enough => cursor = Some(c),
                    _ => return Ok(open),
                }
            }
        }
    }
}

/// What [`CameraRegistry::claim_connection_change`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionClaim {
    /// Recorded; `previous` is the change before (for [`CameraRegistry::release_connection_change`]).
    Claimed {
        /// The last change before this one (Unix seconds), if any.
        previous: Option<u64>,
    },
    /// The last change is too recent.
    TooSoon {
        /// When it was (Unix seconds).
        last: u64,
    },
}

/// Knows which cameras exist.
pub trait CameraRegistry: Send + Sync {
    /// The camera, if registered.
    fn get_camera(
        &self,
        id: &CameraId,
    ) -> impl Future<Output = Result<Option<Camera>, StoreError>> + Send;

    /// Records, atomically, that the camera's connection settings change at `now` (Unix
    /// seconds), unless the last change recorded is less than `min_interval` seconds before
    /// `now`. Two callers at once cannot both claim.
    fn claim_connection_change(
        &self,
        id: &CameraId,
        now: u64,
        min_interval: u64,
    ) -> impl Future<Output = Result<ConnectionClaim, StoreError>> + Send;

    /// The cameras of organisation `org`, in camera id order, `limit` at most, from `cursor`
    /// (the previous page's `next_cursor`).
    fn list_cameras(
        &self,
        org: &OrgId,
        cursor: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<Camera>, StoreError>> + Send;

    /// Records a lifecycle event of the camera, atomically, if it is newer than the one
    /// recorded ([`CameraPresence::supersedes`]): the camera as it is now, or `None` when the
    /// event is stale or a duplicate, or the camera is not registered.
    fn record_presence(
        &self,
        id: &CameraId,
        presence: CameraPresence,
    ) -> impl Future<Output = Result<Option<Camera>, StoreError>> + Send;

    /// Undoes a claim made at `now` whose change could not be written: the time goes back
    /// to `previous`, unless another claim replaced it since.
    fn release_connection_change(
        &self,
        id: &CameraId,
        now: u64,
        previous: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Publishes MQTT messages to devices and web clients (the IoT data plane in AWS).
pub trait DevicePublisher: Send + Sync {
    /// Publishes `payload` on `topic` with the given QoS (0 or 1).
    fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        qos: u8,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// The cameras' configuration shadows (the AWS IoT Device Shadow service, named shadow
/// `config`).
pub trait ConfigShadows: Send + Sync {
    /// Merges `desired` into the shadow's desired state; with `expected_version`, only if the
    /// shadow is still at that version (else [`StoreError::Conflict`]).
    fn desire(
        &self,
        camera: &CameraId,
        desired: &Map<String, Value>,
        expected_version: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The whole document, `None` if the camera has no configuration shadow yet.
    fn read(
        &self,
        camera: &CameraId,
    ) -> impl Future<Output = Result<Option<Document>, StoreError>> + Send;
}

/// Signs short-lived download URLs for objects of the media bucket.
pub trait UrlSigner: Send + Sync {
    /// A presigned `GET` URL for `key`, valid for `valid_for_secs`.
    fn presign_get(
        &self,
        key: &str,
        valid_for_secs: u64,
    ) -> impl Future<Output = Result<String, SignError>> + Send;
}

/// Stores plate reads, keyed so that writing the same read twice leaves one item.
pub trait PlateReadStore: Send + Sync {
    /// Writes every read (idempotent per read). Either all are written or an error says the
    /// call failed; nothing is dropped silently.
    fn put_reads(
        &self,
        reads: &[StoredRead],
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;

    /// A camera's reads in `range`, newest first.
    fn reads_by_camera(
        &self,
        camera: &CameraId,
        range: TimeRange,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<StoredRead>, StoreError>> + Send;

    /// Sightings of one (normalised) plate across the cameras of organisation `org` in
    /// `range`, newest first. The organisation is part of the query's key: no other
    /// organisation's read is ever read.
    fn reads_by_plate(
        &self,
        org: &OrgId,
        plate: &str,
        range: TimeRange,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<StoredRead>, StoreError>> + Send;
}

/// Stores the audit trail.
pub trait AuditLog: Send + Sync {
    /// How long this log keeps a record (seconds): each record's `expires_at` is its time
    /// plus this. [`DEFAULT_AUDIT_RETENTION_SECS`](crate::audit::DEFAULT_AUDIT_RETENTION_SECS) unless the store is told otherwise.
    fn retention_secs(&self) -> u64 {
        crate::audit::DEFAULT_AUDIT_RETENTION_SECS
    }

    /// Appends a record.
    fn append(&self, record: &AuditRecord) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One organisation's records, newest first.
    fn list(
        &self,
        org: &OrgId,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<AuditRecord>, StoreError>> + Send;
}
