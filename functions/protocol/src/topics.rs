//! Every MQTT topic and S3 key layout, for both sides. A topic's first level is always the
//! camera id, so one IoT policy line per direction (`${iot:Connection.Thing.ThingName}/…`)
//! confines each camera to its own topics.

use crate::ValidationError;
use crate::ids::{CameraId, RequestId};

/// Suffix of the file request topic (cloud → camera).
pub const FILE_REQUEST: &str = "file/request";
/// Suffix of the file status topic (camera → cloud).
pub const FILE_STATUS: &str = "file/status";
/// Suffix of the sync topic (camera → cloud: "new session, send my open requests again").
pub const FILE_SYNC: &str = "file/sync";
/// Suffix of the plate-reads topic (camera → cloud, through the plate-reads rule).
pub const PLATE_READS: &str = "plates";
/// Suffix of the health topic (camera → cloud).
pub const HEALTH: &str = "health";
/// Suffix of the presence topic (last will and "online" message, retained).
pub const PRESENCE: &str = "presence";
/// Default name of the IoT rule that ingests plate reads through Basic Ingest.
pub const PLATE_RULE: &str = "anpr_plate_reads";
/// Default name of the IoT rule that ingests file statuses.
pub const STATUS_RULE: &str = "anpr_file_status";
/// Default name of the IoT rule that answers sync messages.
pub const SYNC_RULE: &str = "anpr_file_sync";
/// Default name of the IoT rule that records cameras' lifecycle events (presence).
pub const PRESENCE_RULE: &str = "anpr_camera_presence";
/// Name of the camera's configuration shadow.
pub const CONFIG_SHADOW: &str = "config";
/// First level of the web UI notification topics.
pub const WEB_PREFIX: &str = "web";
/// First level of S3 keys written by cameras.
pub const MEDIA_PREFIX: &str = "media";

/// `{camera_id}/file/request`
pub fn file_request(cam: &CameraId) -> String {
    format!("{cam}/{FILE_REQUEST}")
}
/// `{camera_id}/file/status`
pub fn file_status(cam: &CameraId) -> String {
    format!("{cam}/{FILE_STATUS}")
}
/// `{camera_id}/file/sync`
pub fn file_sync(cam: &CameraId) -> String {
    format!("{cam}/{FILE_SYNC}")
}
/// `{camera_id}/plates`: the topic the plate-reads rule sees (and, locally, the one published).
pub fn plate_reads(cam: &CameraId) -> String {
    format!("{cam}/{PLATE_READS}")
}
/// `$aws/rules/{rule}/{camera_id}/plates`: the same through AWS IoT Basic Ingest, which skips
/// the message broker's messaging charge. The rule's `topic(1)` is still the camera id.
pub fn plate_reads_basic_ingest(rule: &str, cam: &CameraId) -> String {
    format!("$aws/rules/{rule}/{cam}/{PLATE_READS}")
}
/// `{camera_id}/health`
pub fn health(cam: &CameraId) -> String {
    format!("{cam}/{HEALTH}")
}
/// `{camera_id}/presence`
pub fn presence(cam: &CameraId) -> String {
    format!("{cam}/{PRESENCE}")
}
/// `web/org/{org}/notifications`: the notifications of one organisation (its file requests'
/// states, its cameras' presence), which every member of the organisation may receive and
/// nobody else: a web identity's policy allows subscribing to its own organisation's only
/// (functions/web-authorizer's policy; `infra/local`'s web access locally).
pub fn org_notifications(org: &str) -> String {
    format!("{WEB_PREFIX}/org/{}/notifications", sanitize_level(org))
}
/// The filter of AWS IoT's lifecycle events of connections (`$aws/events/presence/connected/
/// {clientId}` and `…/disconnected/{clientId}`), which the presence rule selects.
pub const PRESENCE_EVENTS_FILTER: &str = "$aws/events/presence/+/+";
/// `$aws/events/presence/{connected|disconnected}/{client_id}`: where AWS IoT publishes a
/// connection's lifecycle event (and the local broker too).
pub fn presence_event(connected: bool, client_id: &str) -> String {
    let kind = if connected {
        "connected"
    } else {
        "disconnected"
    };
    format!("$aws/events/presence/{kind}/{client_id}")
}
/// `$aws/things/{camera_id}/shadow/name/{name}` (append `/update`, `/get`, `/update/delta`…).
pub fn shadow(cam: &CameraId, name: &str) -> String {
    format!("$aws/things/{cam}/shadow/name/{name}")
}
/// `$aws/things/{camera_id}/shadow/name/config/{suffix}`, `suffix` one of [`crate::shadow`]'s
/// (`update/delta`, `get`, …).
pub fn config_shadow(cam: &CameraId, suffix: &str) -> String {
    format!("{}/{suffix}", shadow(cam, CONFIG_SHADOW))
}

/// A user or organisation id safe as one topic level: MQTT wildcards, `/` and `$` replaced by `_`.
pub fn sanitize_level(user: &str) -> String {
    user.chars()
        .map(|c| match c {
            '/' | '+' | '#' | '$' | '\0' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .take(128)
        .collect()
}

/// Splits a camera topic into the camera id (first level) and the rest.
/// Used by every cloud consumer: the camera id is taken from the topic, never the payload.
pub fn parse_camera_topic(topic: &str) -> Result<(CameraId, &str), ValidationError> {
    let topic = topic
        .strip_prefix("$aws/rules/")
        .and_then(|rest| rest.split_once('/').map(|(_, t)| t))
        .unwrap_or(topic);
    let (cam, rest) = topic
        .split_once('/')
        .ok_or_else(|| ValidationError::new("topic", "no camera id level"))?;
    Ok((CameraId::parse(cam)?, rest))
}

/// The S3 key a camera uploads a requested file to: `media/{camera_id}/{request_id}/{file}`.
/// The IAM policy of the credentials provider limits a camera to `media/${ThingName}/*`.
pub fn upload_key(cam: &CameraId, req: &RequestId, file: &crate::FileName) -> String {
    format!("{MEDIA_PREFIX}/{cam}/{req}/{file}")
}

/// The parts of an upload key: camera id, request id, file path. The file path must be a valid
/// [`crate::FileName`] too: a key no camera could have written is refused here, not later.
pub fn parse_upload_key(key: &str) -> Result<(CameraId, RequestId, &str), ValidationError> {
    let rest = key
        .strip_prefix(MEDIA_PREFIX)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| ValidationError::new("key", "not under the media prefix"))?;
    let mut parts = rest.splitn(3, '/');
    let cam = CameraId::parse(parts.next().unwrap_or_default())?;
    let req = RequestId::parse(parts.next().unwrap_or_default())?;
    let file = parts
        .next()
        .filter(|f| !f.is_empty())
        .ok_or_else(|| ValidationError::new("key", "no file name"))?;
    crate::FileName::parse(file)?;
    Ok((cam, req, file))
}
