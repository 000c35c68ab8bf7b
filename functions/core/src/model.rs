//! Domain records.

use anpr_protocol::{CameraId, FileName, FileRequest, ReasonCode, RequestId, RequestState};
use serde::{Deserialize, Serialize};

pub use crate::access::Caller;
use crate::access::OrgId;

/// A new ULID, later than every one this process made before, even within one millisecond
/// (the random part counts up): records keyed by a ULID (file requests, audit records) list
/// in the order they were made. Across processes (Lambda instances) only the millisecond
/// orders them.
pub fn next_ulid() -> ulid::Ulid {
    use std::sync::{Mutex, PoisonError};
    static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
    GENERATOR
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .generate()
        // The random part, counting up from a random start, overflows within one millisecond
        // practically never; that millisecond's order is then lost, not the id.
        .unwrap_or_else(|_| ulid::Ulid::new())
}

/// A registered camera (written by provisioning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Camera {
    /// Its id (thing name).
    pub camera_id: CameraId,
    /// Human label.
    #[serde(default)]
    pub name: Option<String>,
    /// When it was provisioned (Unix seconds).
    #[serde(default)]
    pub registered_at: u64,
    /// The organisation it belongs to; `None` (an item from before organisations): visible
    /// to nobody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgId>,
    /// Its connection as the last lifecycle event applied says (`None`: none seen yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<CameraPresence>,
}

/// A camera's connection, from the broker's lifecycle events (`crate::presence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraPresence {
    /// Connected.
    pub online: bool,
    /// When it connected or disconnected (Unix milliseconds, broker clock).
    pub at_ms: u64,
    /// The event's version number (grows with every connection of the client id; a
    /// connection's `connected` and `disconnected` share it).
    pub version: u64,
}

impl CameraPresence {
    /// Whether this event comes after `recorded` (lifecycle events arrive out of order and
    /// twice): a later connection (higher version), or the disconnection of the connection
    /// recorded as connected. A duplicate or an older event does not.
    pub fn supersedes(&self, recorded: Option<&CameraPresence>) -> bool {
        match recorded {
            None => true,
            Some(r) => {
                self.version > r.version || (self.version == r.version && r.online && !self.online)
            }
        }
    }
}

/// One entry of a request's status history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// The state entered.
    pub state: RequestState,
    /// When (Unix seconds, cloud clock).
    pub at: u64,
    /// Upload percent, for `uploading`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    /// Reason code, for `failed` / `rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ReasonCode>,
}

/// A file request as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRequestRecord {
    /// Id (ULID).
    pub request_id: RequestId,
    /// Target camera.
    pub camera_id: CameraId,
    /// Requested file, relative to the camera's media directory.
    pub file: FileName,
    /// Free text from the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `sub` of the user who asked.
    pub requested_by: String,
    /// The organisation of the camera (and of the user) when it was asked; `None` (an item
    /// from before organisations): visible to nobody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgId>,
    /// When (Unix seconds).
    pub requested_at: u64,
    /// After this the camera answers `expired` (Unix seconds).
    pub expires_at: u64,
    /// Current state.
    pub state: RequestState,
    /// Latest upload percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    /// Object size once ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Object key once ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_key: Option<String>,
    /// Object checksum (as S3 reports it: ETag or SHA-256) once ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// S3 event sequencer of the object event applied, to order duplicate events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    /// Latest failure reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ReasonCode>,
    /// Every state change, oldest first.
    pub history: Vec<StatusChange>,
    /// Optimistic-concurrency version, incremented on every write.
    pub version: u64,
    /// Retention: the store deletes the item after this (Unix seconds, DynamoDB TTL).
    pub retain_until: u64,
}

impl FileRequestRecord {
    /// The message that asks the camera for the file (on its `file/request` topic).
    pub fn message(&self) -> FileRequest {
        FileRequest {
            id: self.request_id.clone(),
            file: self.file.clone(),
            at: self.requested_at,
            exp: self.expires_at,
        }
    }
}

/// A page of results and the cursor for the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    /// Items, in the order the query defines.
    pub items: Vec<T>,
    /// Opaque cursor; `None` on the last page.
    pub next_cursor: Option<String>,
}
