//! The file-status function: the IoT rule on `+/file/status` invokes it with each camera status
//! message, which it applies to the file request and tells the web UI about
//! (`anpr_core::status`, through `anpr_core::lifecycle`). The rule on `+/file/sync` invokes it
//! when a camera starts a new broker session: the requests still open for that camera are
//! published to it again (`StatusUpdates::resend_open`).
//!
//! # Layout
//! - this module: [`handle`] (statuses, syncs and the expiry sweep), [`handle_lifecycle`]
//!   (presence events), the events' parsers, and [`rule_event`] for the rules' stand-ins.
//! - `src/main.rs`: the Lambda entry point: config, clients built once, each event to its
//!   handler.
//!
//! The sync rule (name `anpr_protocol::topics::SYNC_RULE`):
//!
//! ```sql
//! SELECT topic(1) AS camera_id, topic() AS mqtt_topic FROM '+/file/sync'
//! ```
//!
//! Every minute a schedule (`ExpirySweepSchedule`) invokes it with [`SWEEP_INPUT`]: the open
//! requests past their `expires_at` (the sparse index of open requests) become `expired` and
//! their users are notified (`StatusUpdates::expire_due`), so a request to a camera that never
//! comes back does not hang.
//!
//! The rule (name `anpr_protocol::topics::STATUS_RULE`):
//!
//! ```sql
//! SELECT topic(1) AS camera_id, topic() AS mqtt_topic, encode(*, 'base64') AS payload FROM '+/file/status'
//! ```
//!
//! The message is passed opaque (base64), as the plate rule passes its batches: none of its
//! keys can mix with the fields the rule adds, and the protocol's decoder reads exactly what
//! the camera sent. The camera id is taken from the topic, which the IoT policy ties to the
//! connecting certificate (`${iot:Connection.Thing.ThingName}/…`), never from the payload: a
//! camera cannot speak for another. The whole topic (`mqtt_topic`) must agree with
//! `camera_id`. [`rule_event`] builds the same events for the rule's stand-ins.
//!
//! Why its own binary rather than one "device events" function with plate ingestion: statuses
//! read and conditionally write request items and publish to web users (`dynamodb:GetItem`,
//! `dynamodb:PutItem` on `REQ#…` items, `iot:Publish` on `web/*`), while plate ingestion only
//! batch-writes reads; the traffic differs too (a few statuses per requested file against a
//! steady stream of plate batches). Separate functions keep least-privilege roles, separate
//! concurrency and alarms, and a failure in one path cannot throttle the other.
//!
//! The presence rule (name `anpr_protocol::topics::PRESENCE_RULE`) hands it AWS IoT's
//! lifecycle events, which [`handle_lifecycle`] records on the camera's registry item and
//! tells the camera's organisation (`anpr_core::presence`):
//!
//! ```sql
//! SELECT clientId, eventType, timestamp, versionNumber FROM '$aws/events/presence/+/+'
//! ```
//!
//! Only AWS IoT publishes under `$aws/events/`; a client cannot forge an event. A client id
//! that is no registered camera (a web console's `web-…`) changes nothing.
//!
//! Error policy: the rule invokes Lambda asynchronously (Lambda retries twice). A message that
//! cannot apply (malformed, unknown kind, unknown request, another camera's request, a
//! refused transition) is logged and dropped; a permanent AWS failure is logged with context
//! and dropped; a transient one fails the invocation so that Lambda retries.

use anpr_core::model::CameraPresence;
use anpr_core::ports::{CameraRegistry, DevicePublisher, RequestStore};
use anpr_core::presence::Presences;
use anpr_core::status::{Outcome, StatusError, StatusUpdates, UrlSigner};
use anpr_protocol::{CameraId, FileStatus, ProtocolError, ValidationError, decode, topics};

/// The expiry schedule's event (its fixed input in the template).
pub const SWEEP_INPUT: &str = r#"{"sweep":"expiry"}"#;
/// Requests one sweep expires at most; the next sweep, a minute later, continues.
pub const SWEEP_LIMIT: u32 = 500;

/// Whether the event is the expiry schedule's: exactly [`SWEEP_INPUT`] (an IoT rule event
/// always carries the camera and topic fields, so a camera cannot pass for the schedule).
pub fn is_sweep(event: &serde_json::Value) -> bool {
    serde_json::from_str::<serde_json::Value>(SWEEP_INPUT).is_ok_and(|s| &s == event)
}

/// Field the rule adds with the topic's first level.
pub const CAMERA_FIELD: &str = "camera_id";
/// Field the rule adds with the whole topic.
pub const TOPIC_FIELD: &str = "mqtt_topic";
/// Field the status rule adds with the message, base64.
pub const PAYLOAD_FIELD: &str = "payload";

/// What the rule for `topic` hands the function for a message on it, for the rules' stand-ins
/// (the local stack, tests; the template's SQL is checked against it): on a status topic the
/// topic's fields and the message base64, on a sync topic the topic's fields only.
pub fn rule_event(topic: &str, payload: &[u8]) -> serde_json::Value {
    use base64::Engine as _;
    let mut event = serde_json::Map::new();
    event.insert(
        CAMERA_FIELD.into(),
        topic.split('/').next().unwrap_or_default().into(),
    );
    event.insert(TOPIC_FIELD.into(), topic.into());
    if !topic.ends_with(&format!("/{}", topics::FILE_SYNC)) {
        event.insert(
            PAYLOAD_FIELD.into(),
            base64::engine::general_purpose::STANDARD
                .encode(payload)
                .into(),
        );
    }
    serde_json::Value::Object(event)
}

/// Why a rule event could not be turned into a camera status.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The event is not a JSON object.
    #[error("rule event is not a JSON object")]
    NotAnObject,
    /// The rule did not add the camera id (rule SQL misconfigured).
    #[error("rule event has no `camera_id` (is the rule SQL `SELECT topic(1) AS camera_id …`?)")]
    NoCamera,
    /// The rule did not add the topic (rule SQL misconfigured).
    #[error("rule event has no `mqtt_topic` (is the rule SQL `SELECT … topic() AS mqtt_topic …`?)")]
    NoTopic,
    /// The rule did not add the message as base64 (rule SQL misconfigured).
    #[error(
        "rule event has no base64 `payload` (is the rule SQL `SELECT … encode(*, 'base64') AS payload …`?)"
    )]
    NoPayload,
    /// The camera id or topic is not valid.
    #[error("invalid camera topic")]
    Camera(#[source] ValidationError),
    /// `mqtt_topic` is not a file status topic of the camera named by `camera_id`.
    #[error("topic {topic:?} does not match camera_id {camera:?}")]
    TopicMismatch {
        /// The whole topic.
        topic: String,
        /// The `camera_id` field.
        camera: String,
    },
    /// A lifecycle event lacks this field or has it of the wrong type.
    #[error("lifecycle event has no valid `{0}`")]
    Lifecycle(&'static str),
    /// The status message itself is malformed.
    #[error("malformed status message")]
    Message(#[source] ProtocolError),
}

/// Some status failed transiently: the invocation fails so that Lambda retries it.
#[derive(Debug, thiserror::Error)]
#[error("applying the status failed transiently; it will be retried")]
pub struct RetryLater(#[source] pub StatusError);

/// What handling one rule event came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// A sync: this many open requests were published to the camera again.
    Resent(usize),
    /// The expiry sweep: this many requests expired.
    Expired(usize),
    /// The status was applied (or was a duplicate, or refused): the service's outcome.
    Outcome(Outcome),
    /// A lifecycle event: recorded (`true`), or stale, a duplicate or not a camera's.
    Presence(bool),
    /// The event was malformed: logged and dropped.
    Dropped,
    /// Applying failed permanently: logged and dropped.
    Failed,
}

/// The camera (from the topic) and the status message of a rule event.
pub fn parse_event(event: &serde_json::Value) -> Result<(CameraId, FileStatus), EventError> {
    let obj = event.as_object().ok_or(EventError::NotAnObject)?;
    let camera_field = obj
        .get(CAMERA_FIELD)
        .and_then(serde_json::Value::as_str)
        .ok_or(EventError::NoCamera)?;
    let camera = CameraId::parse(camera_field).map_err(EventError::Camera)?;
    let topic = obj
        .get(TOPIC_FIELD)
        .and_then(serde_json::Value::as_str)
        .ok_or(EventError::NoTopic)?;
    let (from_topic, rest) = topics::parse_camera_topic(topic).map_err(EventError::Camera)?;
    if from_topic != camera || rest != topics::FILE_STATUS {
        return Err(EventError::TopicMismatch {
            topic: topic.to_owned(),
            camera: camera_field.to_owned(),
        });
    }
    let bytes = {
        use base64::Engine as _;
        obj.get(PAYLOAD_FIELD)
            .and_then(serde_json::Value::as_str)
            .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
            .ok_or(EventError::NoPayload)?
    };
    // The protocol's decoder applies the wire rules (size, version, kind, validation).
    let status = decode::<FileStatus>(&bytes).map_err(EventError::Message)?;
    Ok((camera, status))
}

/// The camera of a sync event (the rule on `+/file/sync`), `None` if the event is not a sync
/// (no `mqtt_topic`, or another topic). The camera id must agree with the topic.
pub fn parse_sync_event(event: &serde_json::Value) -> Option<Result<CameraId, EventError>> {
    let obj = event.as_object()?;
    let topic = obj.get(TOPIC_FIELD)?.as_str()?;
    let (from_topic, rest) = match topics::parse_camera_topic(topic) {
        Ok(x) => x,
        Err(_) => return None,
    };
    if rest != topics::FILE_SYNC {
        return None;
    }
    let camera_field = obj.get(CAMERA_FIELD).and_then(serde_json::Value::as_str);
    Some(match camera_field {
        None => Err(EventError::NoCamera),
        Some(c) if c != from_topic.as_str() => Err(EventError::TopicMismatch {
            topic: topic.to_owned(),
            camera: c.to_owned(),
        }),
        Some(_) => Ok(from_topic),
    })
}

/// Handles one rule event at cloud time `now` (Unix seconds).
pub async fn handle<S, P, U>(
    service: &StatusUpdates<S, P, U>,
    event: &serde_json::Value,
    now: u64,
) -> Result<Handled, RetryLater>
where
    S: RequestStore,
    P: DevicePublisher,
    U: UrlSigner,
{
    if is_sweep(event) {
        return match service.expire_due(now, SWEEP_LIMIT).await {
            Ok(n) => {
                tracing::info!(expired = n, "expiry sweep");
                Ok(Handled::Expired(n))
            }
            // A sweep that failed is the next one's work; retrying now would double the load.
            Err(e) => {
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "expiry sweep failed; the next one continues");
                Ok(Handled::Failed)
            }
        };
    }
    match parse_sync_event(event) {
        None => {}
        Some(Err(e)) => {
            tracing::warn!(error = %e, "sync message dropped");
            return Ok(Handled::Dropped);
        }
        Some(Ok(camera)) => {
            return match service.resend_open(&camera, now).await {
                Ok(n) => {
                    tracing::info!(camera = %camera, resent = n, "new camera session: open requests published again");
                    Ok(Handled::Resent(n))
                }
                Err(e) => failed(&camera, "sync", None, e),
            };
        }
    }
    let (camera, status) = match parse_event(event) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "status message dropped");
            return Ok(Handled::Dropped);
        }
    };
    match service.apply_camera_status(&camera, &status, now).await {
        Ok(outcome) => {
            match &outcome {
                Outcome::Applied { state } | Outcome::Duplicate { state } => {
                    tracing::info!(camera = %camera, request = %status.id, state = state.as_str(), ?outcome, "status applied");
                }
                Outcome::WrongCamera { expected } => {
                    tracing::warn!(camera = %camera, request = %status.id, owner = %expected,
                        "status for another camera's request refused");
                }
                other => {
                    tracing::info!(camera = %camera, request = %status.id, outcome = ?other, "status not applied");
                }
            }
            Ok(Handled::Outcome(outcome))
        }
        Err(e) => failed(&camera, "status", Some(&status.id), e),
    }
}

/// What a failed sync, status or presence comes to: a transient failure fails the invocation
/// (Lambda retries it), a permanent one is logged with its source and dropped.
fn failed(
    camera: &CameraId,
    what: &'static str,
    request: Option<&anpr_protocol::RequestId>,
    e: StatusError,
) -> Result<Handled, RetryLater> {
    let source = std::error::Error::source(&e);
    if e.is_retryable() {
        tracing::warn!(camera = %camera, what, request = ?request, error = %e, ?source,
            "transient failure: will be retried");
        Err(RetryLater(e))
    } else {
        tracing::error!(camera = %camera, what, request = ?request, error = %e, ?source,
            "permanent failure: dropped");
        Ok(Handled::Failed)
    }
}

/// Whether the event is a lifecycle event of the presence rule (it has `eventType` and
/// `clientId`, which no status, sync or schedule event has).
pub fn is_lifecycle(event: &serde_json::Value) -> bool {
    event.get(EVENT_TYPE_FIELD).is_some() && event.get(CLIENT_ID_FIELD).is_some()
}

/// Field of a lifecycle event naming the client.
pub const CLIENT_ID_FIELD: &str = "clientId";
/// Field of a lifecycle event naming its kind (`connected`, `disconnected`).
pub const EVENT_TYPE_FIELD: &str = "eventType";

/// The camera and its presence from a lifecycle event.
pub fn parse_lifecycle_event(
    event: &serde_json::Value,
) -> Result<(CameraId, CameraPresence), EventError> {
    let obj = event.as_object().ok_or(EventError::NotAnObject)?;
    let field = |name: &'static str| obj.get(name).ok_or(EventError::Lifecycle(name));
    let client = field(CLIENT_ID_FIELD)?
        .as_str()
        .ok_or(EventError::Lifecycle(CLIENT_ID_FIELD))?;
    let camera = CameraId::parse(client).map_err(EventError::Camera)?;
    let online = match field(EVENT_TYPE_FIELD)?.as_str() {
        Some("connected") => true,
        Some("disconnected") => false,
        _ => return Err(EventError::Lifecycle(EVENT_TYPE_FIELD)),
    };
    let number = |name: &'static str| field(name)?.as_u64().ok_or(EventError::Lifecycle(name));
    Ok((
        camera,
        CameraPresence {
            online,
            at_ms: number("timestamp")?,
            version: number("versionNumber")?,
        },
    ))
}

/// What the presence rule hands the function for a connection's lifecycle event, for the
/// rule's stand-ins (the local broker's events; tests).
pub fn lifecycle_event(
    client_id: &str,
    online: bool,
    at_ms: u64,
    version: u64,
) -> serde_json::Value {
    serde_json::json!({
        CLIENT_ID_FIELD: client_id,
        EVENT_TYPE_FIELD: if online { "connected" } else { "disconnected" },
        "timestamp": at_ms,
        "versionNumber": version,
    })
}

/// Handles one lifecycle event of the presence rule.
pub async fn handle_lifecycle<C, P>(
    presences: &Presences<C, P>,
    event: &serde_json::Value,
) -> Result<Handled, RetryLater>
where
    C: CameraRegistry,
    P: DevicePublisher,
{
    let (camera, presence) = match parse_lifecycle_event(event) {
        Ok(x) => x,
        Err(e) => {
            tracing::debug!(error = %e, "lifecycle event not of a camera: dropped");
            return Ok(Handled::Dropped);
        }
    };
    match presences.apply(&camera, presence).await {
        Ok(Some(_)) => {
            tracing::info!(camera = %camera, online = presence.online, version = presence.version, "presence recorded");
            Ok(Handled::Presence(true))
        }
        Ok(None) => Ok(Handled::Presence(false)),
        Err(e) => failed(&camera, "presence", None, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "01JDQ2Y7ZK8M3W5T0G9H4N6P2R";

    /// The status rule's event for `payload` on `topic`, then `edit` applied to it.
    fn status_event(
        topic: &str,
        payload: &str,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> serde_json::Value {
        let mut e = rule_event(topic, payload.as_bytes());
        edit(&mut e);
        e
    }

    fn accepted() -> String {
        format!(r#"{{"v":1,"id":"{ID}","s":"accepted"}}"#)
    }

    #[test]
    fn the_camera_comes_from_the_rule_not_the_message() {
        let (cam, st) =
            parse_event(&rule_event("cam1/file/status", accepted().as_bytes())).unwrap();
        assert_eq!(cam.as_str(), "cam1");
        assert_eq!(st.id.as_str(), ID);
        // A message naming another camera (or carrying the rule's own field names) changes
        // nothing: it is opaque to the rule and unknown fields to the decoder.
        let forged = format!(
            r#"{{"v":1,"id":"{ID}","s":"accepted","camera_id":"cam2","mqtt_topic":"cam2/file/status"}}"#
        );
        let (cam, _) = parse_event(&rule_event("cam1/file/status", forged.as_bytes())).unwrap();
        assert_eq!(cam.as_str(), "cam1");
    }

    #[test]
    fn a_topic_that_disagrees_with_camera_id_is_refused() {
        let e = status_event("cam1/file/status", &accepted(), |e| {
            e["camera_id"] = json!("cam2")
        });
        assert!(matches!(
            parse_event(&e),
            Err(EventError::TopicMismatch { .. })
        ));
        let e = status_event("cam1/plates", &accepted(), |_| {});
        assert!(matches!(
            parse_event(&e),
            Err(EventError::TopicMismatch { .. })
        ));
        assert!(parse_event(&status_event("cam1/file/status", &accepted(), |_| {})).is_ok());
    }

    #[test]
    fn a_sync_event_names_its_camera_by_the_topic_and_a_disagreeing_one_is_refused() {
        let ok = rule_event("cam1/file/sync", b"{\"v\":1}");
        assert_eq!(
            ok,
            json!({"camera_id":"cam1","mqtt_topic":"cam1/file/sync"})
        );
        assert_eq!(parse_sync_event(&ok).unwrap().unwrap().as_str(), "cam1");
        let bad = json!({"camera_id":"cam2","mqtt_topic":"cam1/file/sync"});
        assert!(matches!(
            parse_sync_event(&bad),
            Some(Err(EventError::TopicMismatch { .. }))
        ));
        // Status events are not syncs.
        assert!(parse_sync_event(&rule_event("cam1/file/status", accepted().as_bytes())).is_none());
        assert!(parse_sync_event(&json!({"camera_id":"cam1"})).is_none());
    }

    #[test]
    fn only_the_schedules_exact_input_is_a_sweep() {
        assert!(is_sweep(&json!({"sweep":"expiry"})));
        assert!(!is_sweep(
            &json!({"sweep":"expiry","camera_id":"cam1","mqtt_topic":"cam1/file/status"})
        ));
        assert!(!is_sweep(&json!({"sweep":"other"})));
    }

    #[test]
    fn a_lifecycle_event_names_the_camera_by_its_client_id_and_is_told_from_the_others() {
        let e = lifecycle_event("cam-001", false, 1_573_002_340_451, 3);
        assert!(is_lifecycle(&e));
        let (cam, p) = parse_lifecycle_event(&e).unwrap();
        assert_eq!(cam.as_str(), "cam-001");
        assert_eq!(
            p,
            CameraPresence {
                online: false,
                at_ms: 1_573_002_340_451,
                version: 3
            }
        );
        assert!(!is_lifecycle(&rule_event("cam-001/file/sync", b"")));
        assert!(!is_lifecycle(&serde_json::from_str(SWEEP_INPUT).unwrap()));
        for (bad, field) in [
            (
                json!({"clientId": "cam-001", "eventType": "subscribed", "timestamp": 1, "versionNumber": 1}),
                "eventType",
            ),
            (
                json!({"clientId": "cam-001", "eventType": "connected", "timestamp": "1", "versionNumber": 1}),
                "timestamp",
            ),
            (
                json!({"clientId": "cam-001", "eventType": "connected", "timestamp": 1}),
                "versionNumber",
            ),
        ] {
            match parse_lifecycle_event(&bad) {
                Err(EventError::Lifecycle(f)) => assert_eq!(f, field),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(
            parse_lifecycle_event(&lifecycle_event("a/b", true, 1, 1)),
            Err(EventError::Camera(_))
        ));
    }

    #[test]
    fn malformed_events_name_what_is_wrong() {
        let topic = "c/file/status";
        assert!(matches!(
            parse_event(&json!([1])),
            Err(EventError::NotAnObject)
        ));
        let e = status_event(topic, &accepted(), |e| {
            e.as_object_mut().unwrap().remove("camera_id");
        });
        assert!(matches!(parse_event(&e), Err(EventError::NoCamera)));
        let e = status_event(topic, &accepted(), |e| {
            e.as_object_mut().unwrap().remove("mqtt_topic");
        });
        assert!(matches!(parse_event(&e), Err(EventError::NoTopic)));
        // The old rule's shape (payload keys merged with the rule's fields) is refused.
        let merged = json!({"v":1,"id":ID,"s":"accepted","camera_id":"c","mqtt_topic":topic});
        assert!(matches!(parse_event(&merged), Err(EventError::NoPayload)));
        let e = status_event(topic, &accepted(), |e| e["payload"] = json!("not base64!"));
        assert!(matches!(parse_event(&e), Err(EventError::NoPayload)));
        let e = status_event(topic, &accepted(), |e| e["camera_id"] = json!("a/b"));
        assert!(matches!(parse_event(&e), Err(EventError::Camera(_))));
        let e = status_event(
            topic,
            &format!(r#"{{"v":1,"id":"{ID}","s":"teleported"}}"#),
            |_| {},
        );
        assert!(matches!(
            parse_event(&e),
            Err(EventError::Message(ProtocolError::UnknownKind { .. }))
        ));
        let e = status_event(
            topic,
            &format!(r#"{{"v":1,"id":"{ID}","s":"uploading","pct":101}}"#),
            |_| {},
        );
        assert!(matches!(
            parse_event(&e),
            Err(EventError::Message(ProtocolError::Invalid(_)))
        ));
        let e = status_event(topic, &format!(r#"{{"id":"{ID}","s":"accepted"}}"#), |_| {});
        assert!(matches!(
            parse_event(&e),
            Err(EventError::Message(ProtocolError::MissingVersion))
        ));
        let e = status_event(topic, "not json", |_| {});
        assert!(matches!(parse_event(&e), Err(EventError::Message(_))));
    }
}
