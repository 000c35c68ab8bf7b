//! The camera's compact health report, sent on connect and on a long interval.

use crate::codec::Message;
use serde::{Deserialize, Serialize};

/// Camera → cloud on `{camera_id}/health`. Small and rare: every message costs money.
///
/// Wire: `{"v":1,"up":3600,"ver":"0.1.0","ob":0,"df":1200}`; after errors also
/// `"err":"…","errs":3`; with a frame feed that skipped or lost frames also its [`FeedCounts`]
/// (`"still":5400,"dropped":12`).
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
    /// The frame feed's frames not read since the previous report (each absent: none).
    #[serde(flatten)]
    pub feed: FeedCounts,
}

/// Frames the camera's frame feed did not read, by reason: counts over a span (since the
/// previous health report; on the feed's link to the agent, since its previous message). Each
/// is left out of the JSON when zero, so an idle camera's report does not grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedCounts {
    /// Frames without motion in the lane while no passage was open: deleted unread.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub still: u64,
    /// Frames deleted unread because the feed had fallen behind (the backlog was thinned).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
    /// Files that did not decode as images (deleted).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub corrupt: u64,
    /// Frames the recognizer or the file system failed on.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: u64,
}

impl FeedCounts {
    /// Whether every count is zero.
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// The sum of both, each count saturating.
    pub fn plus(self, other: FeedCounts) -> FeedCounts {
        FeedCounts {
            still: self.still.saturating_add(other.still),
            dropped: self.dropped.saturating_add(other.dropped),
            corrupt: self.corrupt.saturating_add(other.corrupt),
            failed: self.failed.saturating_add(other.failed),
        }
    }

    /// What was added since `earlier` (running totals in, the span's counts out; zero where a
    /// total went down).
    pub fn since(self, earlier: FeedCounts) -> FeedCounts {
        FeedCounts {
            still: self.still.saturating_sub(earlier.still),
            dropped: self.dropped.saturating_sub(earlier.dropped),
            corrupt: self.corrupt.saturating_sub(earlier.corrupt),
            failed: self.failed.saturating_sub(earlier.failed),
        }
    }
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
