//! The upload-completed function: S3 `ObjectCreated:*` events of the media bucket → the file
//! request is `ready` (size, checksum, time, sequencer) → the request's organisation is told on
//! `web/org/{org}/notifications` with a short-lived presigned download URL.
//!
//! # Layout
//! - this module: [`handle`], one S3 event's records applied, and its [`Summary`].
//! - [`records`]: S3 event records decoded one at a time, object keys URL-decoded.
//! - `src/main.rs`: the Lambda entry point: config, clients built once, each event to
//!   [`handle`].
//!
//! The function owns the S3 side only: decoding the event ([`records`]), the object key
//! (URL-decoded, then `anpr_protocol::topics::parse_upload_key`), and sorting each record's
//! result into applied / not applicable / failed permanently / failed transiently. The state
//! change itself is `anpr_core::status`, through `anpr_core::lifecycle`.
//!
//! Error policy (S3 invokes the function asynchronously; Lambda retries a failed invocation
//! twice, then the event goes to the on-failure destination):
//! - a record that cannot apply (key outside the layout, unknown request, another camera's
//!   request, malformed record, older sequencer) is logged and skipped: retrying cannot help;
//! - a permanent AWS failure (missing table, access denied, corrupt item) is logged with the
//!   key and request, and skipped;
//! - a transient one (throttling, 5xx, timeout, lost race) fails the invocation after every
//!   record was tried, so Lambda retries the event; records already applied are duplicates
//!   then, and change nothing.

pub mod records;

use anpr_core::ports::{DevicePublisher, RequestStore};
use anpr_core::status::{ObjectCreated, Outcome, StatusError, StatusUpdates, UrlSigner};
use records::{ObjectEvent, RecordError};

/// What one invocation did, record by record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Records that changed a request.
    pub applied: usize,
    /// Redeliveries: nothing changed, the state was notified again.
    pub duplicates: usize,
    /// Records that do not apply (other event types, other buckets, keys outside the layout,
    /// unknown or foreign requests, out-of-order events).
    pub skipped: usize,
    /// Records that failed permanently (logged, not retried).
    pub failed: usize,
}

/// Some records failed transiently: the invocation fails so that Lambda retries the event.
#[derive(Debug, thiserror::Error)]
#[error("{count} record(s) failed transiently; the event will be retried")]
pub struct RetryLater {
    /// How many records.
    pub count: usize,
    /// The first failure.
    #[source]
    pub first: StatusError,
}

/// Handles one S3 event (the Lambda payload, or an S3 notification body read from SQS).
/// `bucket` is the media bucket: records of other buckets are skipped.
pub async fn handle<S, P, U>(
    service: &StatusUpdates<S, P, U>,
    bucket: &str,
    event: &serde_json::Value,
) -> Result<Summary, RetryLater>
where
    S: RequestStore,
    P: DevicePublisher,
    U: UrlSigner,
{
    let mut summary = Summary::default();
    let mut transient: Vec<StatusError> = Vec::new();
    for (index, record) in records::records(event).into_iter().enumerate() {
        let obj = match record.and_then(|r| r.object_created(bucket)) {
            Ok(ObjectEvent::Created(obj)) => obj,
            Ok(ObjectEvent::NotApplicable(why)) => {
                tracing::info!(index, why, "record skipped");
                summary.skipped += 1;
                continue;
            }
            Err(e @ RecordError::Key { .. }) => {
                tracing::warn!(index, error = %e, "object key outside the upload layout: skipped");
                summary.skipped += 1;
                continue;
            }
            Err(e) => {
                tracing::error!(index, error = %e, "malformed S3 record: skipped");
                summary.failed += 1;
                continue;
            }
        };
        match apply(service, &obj).await {
            Ok(Outcome::Applied { .. }) => summary.applied += 1,
            Ok(Outcome::Duplicate { .. }) => summary.duplicates += 1,
            Ok(_) => summary.skipped += 1,
            Err(e) if e.is_retryable() => {
                tracing::warn!(index, key = %obj.key, request = %obj.request_id, error = %e,
                    source = ?std::error::Error::source(&e), "transient failure: the event will be retried");
                transient.push(e);
            }
            Err(e) => {
                tracing::error!(index, key = %obj.key, request = %obj.request_id, error = %e,
                    source = ?std::error::Error::source(&e), "permanent failure: not retried");
                summary.failed += 1;
            }
        }
    }
    let count = transient.len();
    match transient.into_iter().next() {
        Some(first) => Err(RetryLater { count, first }),
        None => Ok(summary),
    }
}

async fn apply<S, P, U>(
    service: &StatusUpdates<S, P, U>,
    obj: &ObjectCreated,
) -> Result<Outcome, StatusError>
where
    S: RequestStore,
    P: DevicePublisher,
    U: UrlSigner,
{
    let outcome = service.apply_object_created(obj).await?;
    match &outcome {
        Outcome::Applied { state } => {
            tracing::info!(request = %obj.request_id, camera = %obj.camera_id, size = obj.size,
                state = state.as_str(), "request updated and user notified");
        }
        Outcome::Duplicate { .. } => {
            tracing::info!(request = %obj.request_id, "duplicate object event: notified again");
        }
        other => {
            tracing::warn!(request = %obj.request_id, camera = %obj.camera_id, key = %obj.key,
                outcome = ?other, "object event not applied");
        }
    }
    Ok(outcome)
}
