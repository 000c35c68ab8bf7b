//! The single definition, for cloud and camera alike, of every message and topic.
//!
//! Serde only: no AWS, no tokio, so it builds for an ARM camera.
//!
//! Wire rules that hold for every message:
//! - JSON, with short field names: the camera pays for every byte on mobile data.
//! - Every message carries a schema version in `v`. A message of a newer major version than
//!   this crate knows is refused with [`ProtocolError::UnsupportedVersion`]; unknown fields are
//!   tolerated (a newer minor revision may add fields).
//! - Timestamps are Unix seconds (`u64`) unless the field says milliseconds.
//! - No payload exceeds [`MAX_MQTT_PAYLOAD`], the AWS IoT Core limit.
//!
//! # Layout
//! - [`ids`]: camera, request and read identifiers.
//! - [`file`](mod@file): file requests (cloud → camera) and file statuses (camera → cloud).
//! - [`plates`]: plate reads (camera → cloud, batched) and plate text normalisation.
//! - [`notify`]: notifications to the web UI.
//! - [`health`]: the camera's health report.
//! - [`config`]: the camera's remotely settable configuration.
//! - [`shadow`]: the device shadow messages that carry it.
//! - [`topics`]: every MQTT topic and S3 key layout.
//! - [`codec`]: decode and encode with the rules above.
//! - [`clock`]: the wall clock, in Unix seconds and milliseconds.
//! - [`recognizer`]: plate regions and readers, the recognizer's vocabulary.

pub mod clock;
pub mod codec;
pub mod config;
pub mod file;
pub mod health;
pub mod ids;
pub mod notify;
pub mod plates;
pub mod recognizer;
pub mod shadow;
pub mod topics;

pub use codec::{ProtocolError, SCHEMA_VERSION, decode, encode};
pub use config::{ConfigDocError, RemoteConfig};
pub use file::{FileName, FileRequest, FileStatus, FileStatusKind, FileSync, ReasonCode};
pub use health::{FeedCounts, Health, Presence};
pub use ids::{CameraId, ReadId, RequestId};
pub use notify::{Notification, RequestState};
pub use plates::{PlateRead, PlateReadBatch, normalize_plate};
pub use recognizer::{DetectorKind, PlateRegion, ReaderKind};

/// Largest MQTT payload AWS IoT Core accepts (128 KiB).
pub const MAX_MQTT_PAYLOAD: usize = 128 * 1024;

/// Why a value was refused by validation. Carries the offending field's wire name so the API
/// can answer `400` naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ValidationError {
    /// Wire name of the field that failed.
    pub field: &'static str,
    /// Human-readable reason (no internals).
    pub reason: String,
}

impl ValidationError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}
