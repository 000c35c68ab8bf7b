//! What AWS wires between services, done in-process with the functions' own handler code:
//! - the IoT rule on `+/file/status` → `file_status::handle` (event: `camera_id = topic(1)`,
//!   `mqtt_topic = topic()` and the message base64, as the rule SQL builds it:
//!   `file_status::rule_event`);
//! - the sync rule on `+/file/sync` → `file_status::handle` (event: `camera_id` and
//!   `mqtt_topic` only, as its rule SQL builds it);
//! - the plate-reads rule (on `{camera}/plates`; see [`filters`] for Basic Ingest) → `plate_ingest::handle` (event: `camera_id`, `topic`, base64
//!   `payload`, as the rule SQL builds it), called directly: in AWS the rule sends the event to
//!   an SQS queue that plate-ingest consumes with a capped concurrency; there is no queue here;
//! - the presence rule on `$aws/events/presence/+/+` → `file_status::handle_lifecycle` (the
//!   lifecycle event's fields, as its rule SQL selects them; the events come from
//!   [`crate::presence_events`]);
//! - S3 ObjectCreated notifications → `upload_completed::handle`;
//! - the expiry schedule, every minute → `file_status::handle` ([`run_expiry_sweep`]).
//!
//! A handler's "retry later" is retried twice after a short pause, as Lambda retries an
//! asynchronous invocation; then the event is dropped with an error log (the on-failure
//! destination in AWS).

use crate::store::LocalDb;
use anpr_core::plates::IngestPolicy;
use anpr_core::ports::DevicePublisher;
use anpr_core::presence::Presences;
use anpr_core::status::{StatusUpdates, UrlSigner};
use anpr_protocol::topics;
use rumqttd::Notification;
use rumqttd::local::{LinkRx, LinkTx};
use std::sync::Arc;
use std::time::Duration;

/// Lambda's retries of an asynchronous invocation.
const RETRIES: u32 = 2;

/// The topic filters the rules subscribe to. rumqttd refuses filters under `$aws/rules/…`
/// (and drops the link that asks), so the simulated cameras publish plate reads to the plain
/// `{camera}/plates` (the agent's `mqtt.plate_topic` setting), which the rule sees the same.
pub fn filters() -> Vec<String> {
    vec![
        format!("+/{}", topics::FILE_STATUS),
        format!("+/{}", topics::FILE_SYNC),
        format!("+/{}", topics::PLATE_READS),
        topics::PRESENCE_EVENTS_FILTER.to_owned(),
    ]
}

/// Runs the IoT rules on the messages of `rx` (whose `tx` subscribes to [`filters`]).
pub async fn run_iot_rules<P, U>(
    mut tx: LinkTx,
    mut rx: LinkRx,
    status: Arc<StatusUpdates<LocalDb, P, U>>,
    presences: Arc<Presences<LocalDb, P>>,
    db: LocalDb,
    policy: IngestPolicy,
) where
    P: DevicePublisher + 'static,
    U: UrlSigner + 'static,
{
    for f in filters() {
        if let Err(e) = tx.subscribe(f.clone()) {
            tracing::error!(filter = %f, error = %e, "rule subscription failed");
        }
    }
    loop {
        let n = match rx.next().await {
            Ok(Some(n)) => n,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, "rules link closed");
                return;
            }
        };
        let fwd = match n {
            Notification::Forward(fwd) => fwd,
            // The router pauses a link that has taken a batch until it says it is ready.
            Notification::Unschedule => {
                if let Err(e) = rx.wake().await {
                    tracing::error!(error = %e, "rules link closed");
                    return;
                }
                continue;
            }
            _ => continue,
        };
        let topic = String::from_utf8_lossy(&fwd.publish.topic).into_owned();
        let payload = fwd.publish.payload.to_vec();
        if topic.starts_with(crate::presence_events::EVENTS_PREFIX) {
            // The rule's SQL selects the event's fields; the handler reads only those.
            let Ok(event) = serde_json::from_slice::<serde_json::Value>(&payload) else {
                tracing::warn!(%topic, "lifecycle event is not JSON: dropped");
                continue;
            };
            let presences = presences.clone();
            tokio::spawn(async move {
                for attempt in 0..=RETRIES {
                    match file_status::handle_lifecycle(&presences, &event).await {
                        Ok(_) => return,
                        Err(e) if attempt < RETRIES => {
                            tracing::warn!(error = %e, attempt, "presence will be retried");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => tracing::error!(error = %e, "presence failed after retries"),
                    }
                }
            });
            continue;
        }
        let Ok((camera, rest)) = topics::parse_camera_topic(&topic) else {
            tracing::warn!(%topic, "message on a rule topic without a valid camera id: dropped");
            continue;
        };
        if rest == topics::FILE_STATUS || rest == topics::FILE_SYNC {
            let status = status.clone();
            tokio::spawn(async move {
                let event = file_status::rule_event(&topic, &payload);
                for attempt in 0..=RETRIES {
                    let now = anpr_protocol::clock::now_ms() / 1000;
                    match file_status::handle(&status, &event, now).await {
                        Ok(_) => return,
                        Err(e) if attempt < RETRIES => {
                            tracing::warn!(error = %e, attempt, "file-status will be retried");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => tracing::error!(error = %e, "file-status failed after retries"),
                    }
                }
            });
        } else if rest == topics::PLATE_READS {
            let db = db.clone();
            tokio::spawn(async move {
                let event = serde_json::to_value(plate_ingest::RuleEvent::new(&camera, &payload))
                    .unwrap_or_default();
                for attempt in 0..=RETRIES {
                    match plate_ingest::handle(
                        &db,
                        &db,
                        &policy,
                        &event,
                        anpr_protocol::clock::now_ms(),
                    )
                    .await
                    {
                        Ok(report) => {
                            tracing::info!(camera = %camera, stored = report.stored, rejected = report.rejected.len(), "plate reads ingested");
                            return;
                        }
                        Err(e) if attempt < RETRIES => {
                            tracing::warn!(error = %e, attempt, "plate-ingest will be retried");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => tracing::error!(error = %e, "plate-ingest failed after retries"),
                    }
                }
            });
        }
    }
}

/// The expiry schedule (`ExpirySweepSchedule` in the template): every minute, the sweep
/// event to `file_status::handle`.
pub async fn run_expiry_sweep<P, U>(status: Arc<StatusUpdates<LocalDb, P, U>>)
where
    P: DevicePublisher + 'static,
    U: UrlSigner + 'static,
{
    let Ok(event) = serde_json::from_str::<serde_json::Value>(file_status::SWEEP_INPUT) else {
        return;
    };
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        if let Err(e) =
            file_status::handle(&status, &event, anpr_protocol::clock::now_ms() / 1000).await
        {
            tracing::warn!(error = %e, "expiry sweep failed");
        }
    }
}

/// Keeps a publish-only link's receiving half drained (acknowledgements, wake-ups).
pub async fn drain(mut rx: LinkRx) {
    loop {
        match rx.next().await {
            Ok(Some(Notification::Unschedule)) => {
                if rx.wake().await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Delivers S3 ObjectCreated events to the upload-completed handler.
pub async fn run_s3_notifications<P, U>(
    mut events: tokio::sync::mpsc::UnboundedReceiver<crate::s3::Created>,
    status: Arc<StatusUpdates<LocalDb, P, U>>,
    bucket: String,
) where
    P: DevicePublisher + 'static,
    U: UrlSigner + 'static,
{
    while let Some(created) = events.recv().await {
        let event = created.event();
        let (status, bucket) = (status.clone(), bucket.clone());
        tokio::spawn(async move {
            for attempt in 0..=RETRIES {
                match upload_completed::handle(&status, &bucket, &event).await {
                    Ok(summary) => {
                        tracing::info!(key = %created.key, ?summary, "object-created handled");
                        return;
                    }
                    Err(e) if attempt < RETRIES => {
                        tracing::warn!(error = %e, attempt, "upload-completed will be retried");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => tracing::error!(error = %e, "upload-completed failed after retries"),
                }
            }
        });
    }
}
