//! Notifications to the web UI, published by the cloud on its organisation's topic
//! ([`crate::topics::org_notifications`]) the web app subscribes to over MQTT-over-WebSocket:
//! a file request changed state ([`Notification`]), a camera came online or went offline
//! ([`PresenceNotification`]).

use crate::codec::Message;
use crate::ids::{CameraId, RequestId};
use serde::{Deserialize, Serialize};

/// A file request's state as the cloud tracks it.
///
/// Life cycle: `requested → accepted → uploading → ready`, or `failed` / `rejected` / `expired`.
/// The allowed transitions live in one place, `anpr_core::lifecycle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Recorded and published to the camera's topic.
    Requested,
    /// The camera has it.
    Accepted,
    /// The camera is uploading.
    Uploading,
    /// The object is in S3 (confirmed by S3's own event).
    Ready,
    /// The camera tried and could not.
    Failed,
    /// The camera refused it.
    Rejected,
    /// It expired before the camera could serve it.
    Expired,
}

impl RequestState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Accepted => "accepted",
            Self::Uploading => "uploading",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }

    /// True for states no event may leave.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Ready | Self::Failed | Self::Rejected | Self::Expired
        )
    }
}

/// Cloud → web UI: a request changed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The request.
    pub request_id: RequestId,
    /// Its camera.
    pub camera_id: CameraId,
    /// The requested file.
    pub file: String,
    /// The new state.
    pub state: RequestState,
    /// Upload progress, percent, while `uploading`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    /// Object size in bytes, when `ready`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Presigned GET URL of the object, when `ready` (short validity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Reason code, when `failed` or `rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the state changed (Unix seconds).
    pub at: u64,
}

impl Message for Notification {}

/// Cloud → web UI: a camera connected or disconnected (from AWS IoT's lifecycle events, in
/// the order of their version numbers). The console tells it from a [`Notification`] by its
/// `online` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceNotification {
    /// The camera.
    pub camera_id: CameraId,
    /// Connected now.
    pub online: bool,
    /// When it connected or disconnected (Unix milliseconds, broker clock).
    pub last_seen_ms: u64,
}

impl Message for PresenceNotification {}
