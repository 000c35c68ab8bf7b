//! The camera's compact health report, sent on connect and on a long interval.

use crate::codec::Message;
use serde::{Deserialize, Serialize};

/// Camera → cloud on `{camera_id}/health`. Small and rare: every message costs money.
///
/// Wire: `{"v":1,"up":3600,"ver":"0.1.0","ob":0,"df":1200}`; after errors also
/// `"err":"…","errs":3`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Seconds since the agent started.
    pub up: u64,
    /// Agent version.
    pub ver: String,
    /// Plate reads waiting in the outbox.
    pub ob: u64,
    /// Free disk in the media directory's file system, MiB.
    pub df: u64,
    /// Last error, short, if any since the previous report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<String>,
    /// Errors since the previous report (absent: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub errs: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Message for Health {}

/// Camera → cloud on `{camera_id}/presence`, retained: `on: false` is the camera's MQTT last
/// will (and is sent on a clean stop), `on: true` is sent on connect. The cloud may equally use
/// AWS IoT lifecycle events; this is what a subscriber to the camera's topics sees.
///
/// Wire: `{"v":1,"on":false}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// Whether the camera is connected.
    pub on: bool,
}

impl Message for Presence {}
