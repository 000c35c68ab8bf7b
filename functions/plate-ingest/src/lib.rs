//! plate-ingest: the Lambda that stores cameras' plate read batches. The IoT rule receives
//! them through AWS IoT Basic Ingest and sends each as one message to an SQS queue (the
//! buffer: a fleet-wide burst waits there instead of being dropped); plate-ingest consumes the
//! queue in batches at a capped concurrency ([`handle_sqs`]), validates each message and stores
//! its reads with `BatchWriteItem`.
//!
//! # Layout
//! - this module: [`handle`] (one rule event), [`handle_sqs`] (a queue batch), their
//!   configuration ([`IngestConfig`]) and reports.
//! - `src/main.rs`: the Lambda entry point: config, the DynamoDB client built once, each SQS
//!   batch to [`handle_sqs`].
//!
//! # The event
//! The rule (`anpr_plate_reads`, see `docs/plate-reads.md`) is
//!
//! ```sql
//! SELECT topic(1) AS camera_id, topic() AS topic, encode(*, 'base64') AS payload
//! FROM '+/plates'
//! ```
//!
//! Cameras publish to `$aws/rules/anpr_plate_reads/{camera}/plates`; with Basic Ingest the
//! rule's topic functions see the topic without the `$aws/rules/anpr_plate_reads/` prefix, so
//! `topic(1)` is the camera id, which the IoT policy ties to the certificate. The payload is
//! passed as base64 bytes, not merged into the event, so that nothing in it can shadow
//! `camera_id` and a malformed payload still reaches the function (to be refused and logged)
//! instead of failing inside the rule. So the event is:
//!
//! ```json
//! {"camera_id":"123456","topic":"123456/plates","payload":"eyJ2IjoxLCJyIjpbXX0="}
//! ```
//!
//! The rule's SQS action sends that JSON as the message body, so an SQS message's body is
//! this event ([`handle_sqs`] hands each body to [`handle`]).
//!
//! # Outcomes
//! - A batch whose envelope is wrong (event shape, camera id, base64, size, JSON, version) is
//!   refused as a whole: logged, reported, not retried (a retry cannot fix it): its message is
//!   deleted from the queue.
//! - Otherwise each read is checked ([`anpr_core::plates::prepare`]); valid ones are stored,
//!   the others reported with their index and reason.
//! - A storage failure fails that message only: it is listed in the answer's
//!   `batchItemFailures` (the event source mapping has `ReportBatchItemFailures`), so SQS
//!   delivers it again after its visibility timeout, and after `maxReceiveCount` deliveries
//!   moves it to the dead-letter queue (alarmed; `anpr-stack replay-plate-reads` moves it
//!   back). Writes are idempotent per read, so a redelivered message stores nothing twice.
//! - Messages not started when the invocation nears its deadline are reported as failures
//!   too: they go back to the queue untouched instead of being cut off by the timeout.

use anpr_core::StoreError;
use anpr_core::plates::{IngestPolicy, PlateReadStore, Prepared, RejectedRead, prepare};
use anpr_core::ports::CameraRegistry;
use anpr_protocol::{CameraId, MAX_MQTT_PAYLOAD, PlateReadBatch, ProtocolError, topics};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Environment variable: how far ahead of the cloud clock a read's time may be (seconds).
pub const ENV_MAX_FUTURE_SKEW: &str = "ANPR_MAX_FUTURE_SKEW_SECS";

/// Configuration of the function, read once at cold start.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// DynamoDB table (`ANPR_TABLE_NAME`).
    pub table: String,
    /// Retention (`ANPR_READ_RETENTION_SECS`, default 90 days) and clock skew
    /// (`ANPR_MAX_FUTURE_SKEW_SECS`, default 600).
    pub policy: IngestPolicy,
}

fn positive_secs(name: &'static str, default: u64) -> Result<u64, anpr_aws::EnvError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| anpr_aws::EnvError::Invalid {
                name,
                reason: format!("{v:?} is not a positive number of seconds"),
            }),
    }
}

impl IngestConfig {
    /// Reads `ANPR_TABLE_NAME` (required), `ANPR_READ_RETENTION_SECS` and
    /// `ANPR_MAX_FUTURE_SKEW_SECS`.
    pub fn from_env() -> Result<Self, anpr_aws::EnvError> {
        use anpr_aws::config::{ENV_READ_RETENTION, ENV_TABLE};
        let table = std::env::var(ENV_TABLE)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or(anpr_aws::EnvError::Missing(ENV_TABLE))?;
        let d = IngestPolicy::default();
        Ok(Self {
            table,
            policy: IngestPolicy {
                retention_secs: positive_secs(ENV_READ_RETENTION, d.retention_secs)?,
                max_future_skew_ms: positive_secs(
                    ENV_MAX_FUTURE_SKEW,
                    d.max_future_skew_ms / 1000,
                )?
                .saturating_mul(1000),
            },
        })
    }
}

/// The event the IoT rule sends (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleEvent {
    /// `topic(1)`: the publishing camera.
    pub camera_id: String,
    /// `topic()`: the topic without the Basic Ingest prefix, cross-checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// `encode(*, 'base64')`: the MQTT payload.
    pub payload: String,
}

impl RuleEvent {
    /// The event the rule produces for `payload` published by `camera`.
    pub fn new(camera: &CameraId, payload: &[u8]) -> Self {
        Self {
            camera_id: camera.to_string(),
            topic: Some(topics::plate_reads(camera)),
            payload: base64::engine::general_purpose::STANDARD.encode(payload),
        }
    }
}

/// Why a whole batch was refused (nothing of it stored; retrying cannot help).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The event is not the rule's shape.
    #[error("event is not a plate rule event: {0}")]
    BadEvent(#[source] serde_json::Error),
    /// `camera_id` is not a valid camera id.
    #[error("invalid camera id from the topic")]
    BadCamera(#[source] anpr_protocol::ValidationError),
    /// `topic` names another camera than `camera_id`, or is not a plate-reads topic.
    #[error("topic {topic:?} does not match camera {camera}")]
    TopicMismatch {
        /// The event's topic.
        topic: String,
        /// The event's camera id.
        camera: String,
    },
    /// `payload` is not base64.
    #[error("payload is not base64")]
    NotBase64(#[source] base64::DecodeError),
    /// The payload is not a valid batch envelope (size, JSON, version, `r`).
    #[error("payload refused")]
    Envelope(#[source] ProtocolError),
}

/// What happened to one event; logged and returned as the invocation's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    /// The camera, if the event named a valid one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera_id: Option<String>,
    /// Reads written (idempotent: a re-delivered read counts again but is still one item).
    pub stored: usize,
    /// Reads refused, with index and reason.
    pub rejected: Vec<RejectedRead>,
    /// Why the whole batch was refused, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// DynamoDB calls made (the registry read included).
    pub calls: u32,
}

/// The invocation failed and should be retried (storage failed).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Writing the reads failed; nothing is lost, the retried invocation writes them again.
    #[error("storing plate reads failed")]
    Store(#[from] StoreError),
}

/// Decodes and checks one event without touching storage: the CPU part of ingestion.
pub fn prepare_event(
    event: &serde_json::Value,
    now_ms: u64,
    policy: &IngestPolicy,
) -> Result<(CameraId, Prepared), Refusal> {
    let ev = RuleEvent::deserialize(event).map_err(Refusal::BadEvent)?;
    let camera = CameraId::parse(&ev.camera_id).map_err(Refusal::BadCamera)?;
    if let Some(topic) = &ev.topic {
        let matches = topics::parse_camera_topic(topic)
            .is_ok_and(|(c, rest)| c == camera && rest == topics::PLATE_READS);
        if !matches {
            return Err(Refusal::TopicMismatch {
                topic: topic.chars().take(200).collect(),
                camera: camera.to_string(),
            });
        }
    }
    // Refuse before allocating when the base64 text alone is too long for the MQTT limit.
    if ev.payload.len() > MAX_MQTT_PAYLOAD.div_ceil(3) * 4 {
        return Err(Refusal::Envelope(ProtocolError::TooLarge {
            size: ev.payload.len() / 4 * 3,
            max: MAX_MQTT_PAYLOAD,
        }));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(ev.payload.as_bytes())
        .map_err(Refusal::NotBase64)?;
    Ok((
        camera.clone(),
        prepare_payload(&camera, &bytes, now_ms, policy)?,
    ))
}

/// Decodes a batch payload leniently and applies the ingestion rules.
pub fn prepare_payload(
    camera: &CameraId,
    payload: &[u8],
    now_ms: u64,
    policy: &IngestPolicy,
) -> Result<Prepared, Refusal> {
    let (ok, bad) = PlateReadBatch::decode_lenient(payload).map_err(Refusal::Envelope)?;
    let total = ok.len() + bad.len();
    let mut bad_idx = bad.iter().map(|b| b.index).peekable();
    let mut ok_iter = ok.into_iter();
    let mut parsed = Vec::with_capacity(total - bad.len());
    for index in 0..total {
        if bad_idx.peek() == Some(&index) {
            bad_idx.next();
        } else if let Some(read) = ok_iter.next() {
            parsed.push((index, read));
        }
    }
    let failures = bad.into_iter().map(|b| (b.index, b.reason)).collect();
    Ok(prepare(camera, parsed, failures, now_ms, policy))
}

/// Handles one rule event: prepare, look up the camera's organisation (one registry read,
/// only when there is something to store), store the valid reads under it, report. Reads of
/// a camera that is not registered or has no organisation are stored without one: kept, but
/// found by no plate search and shown to nobody until the camera is given an organisation.
pub async fn handle<S: PlateReadStore, C: CameraRegistry>(
    store: &S,
    cameras: &C,
    policy: &IngestPolicy,
    event: &serde_json::Value,
    now_ms: u64,
) -> Result<IngestReport, IngestError> {
    let (camera, mut prepared) = match prepare_event(event, now_ms, policy) {
        Ok(p) => p,
        Err(refusal) => {
            let mut chain = refusal.to_string();
            let mut src = std::error::Error::source(&refusal);
            while let Some(e) = src {
                chain.push_str(&format!(": {e}"));
                src = e.source();
            }
            let camera_id = event
                .get("camera_id")
                .and_then(serde_json::Value::as_str)
                .map(|c| c.chars().take(64).collect::<String>());
            tracing::warn!(camera = ?camera_id, reason = %chain, "plate read batch refused");
            return Ok(IngestReport {
                camera_id,
                refused: Some(chain),
                ..IngestReport::default()
            });
        }
    };
    let (outcome, lookups) = if prepared.accepted.is_empty() {
        (Default::default(), 0)
    } else {
        let org = cameras.get_camera(&camera).await?.and_then(|c| c.org);
        if org.is_none() {
            tracing::warn!(camera = %camera, "camera has no organisation: its reads are stored but found by no one");
        }
        prepared.assign_org(org.as_ref());
        (store.put_reads(&prepared.accepted).await?, 1)
    };
    if !prepared.rejected.is_empty() {
        tracing::warn!(
            camera = %camera,
            stored = outcome.written,
            rejected = prepared.rejected.len(),
            details = ?prepared.rejected,
            "plate reads refused"
        );
    }
    Ok(IngestReport {
        camera_id: Some(camera.to_string()),
        stored: outcome.written,
        rejected: prepared.rejected,
        refused: None,
        calls: outcome.calls + lookups,
    })
}

/// An SQS event as Lambda's event source mapping delivers it (the fields plate-ingest reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqsEvent {
    /// The messages of the batch.
    #[serde(rename = "Records")]
    pub records: Vec<SqsMessage>,
}

/// One SQS message of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqsMessage {
    /// The id SQS gave the message (what a batch item failure names).
    #[serde(rename = "messageId")]
    pub message_id: String,
    /// The message body: the rule's event ([`RuleEvent`]) as JSON.
    pub body: String,
}

/// The answer to an SQS batch: the messages to deliver again (`ReportBatchItemFailures`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// Messages that were not handled; SQS deletes every other message of the batch.
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

/// One message to deliver again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFailure {
    /// The message's `messageId`.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// Time kept in reserve at the end of an invocation: a message is not started later than this
/// before the deadline (one message of 1,139 reads takes ~1.2 s at the store's pacing; the
/// rest is room for the back-off of a throttled write).
pub const DEADLINE_RESERVE_MS: u64 = 4_000;

/// Handles one SQS batch: each message's body is a rule event, handled by [`handle`] in turn.
/// Messages whose reads could not all be stored, and messages not started because the
/// invocation's deadline (`deadline_ms`, Unix ms) is within [`DEADLINE_RESERVE_MS`], are
/// returned as batch item failures; refused messages (malformed body or envelope) are logged
/// and not returned (a redelivery cannot fix them). Also returns each message's report.
pub async fn handle_sqs<S: PlateReadStore, C: CameraRegistry>(
    store: &S,
    cameras: &C,
    policy: &IngestPolicy,
    event: &SqsEvent,
    deadline_ms: u64,
) -> (BatchResponse, Vec<IngestReport>) {
    let mut response = BatchResponse::default();
    let mut reports = Vec::with_capacity(event.records.len());
    for message in &event.records {
        let fail = |response: &mut BatchResponse| {
            response.batch_item_failures.push(ItemFailure {
                item_identifier: message.message_id.clone(),
            })
        };
        let now = anpr_protocol::clock::now_ms();
        if now.saturating_add(DEADLINE_RESERVE_MS) > deadline_ms {
            tracing::warn!(message = %message.message_id, "too close to the deadline: returned to the queue");
            fail(&mut response);
            continue;
        }
        let body = match serde_json::from_str::<serde_json::Value>(&message.body) {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(message = %message.message_id, reason = %e, "plate read message is not JSON: dropped");
                reports.push(IngestReport {
                    refused: Some(format!("message body is not JSON: {e}")),
                    ..IngestReport::default()
                });
                continue;
            }
        };
        match handle(store, cameras, policy, &body, now).await {
            Ok(report) => reports.push(report),
            Err(err) => {
                tracing::error!(message = %message.message_id, error = ?err, "plate reads not stored; the message goes back to the queue");
                fail(&mut response);
            }
        }
    }
    (response, reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpr_core::memory::MemoryCameraRegistry;
    use anpr_core::plates::{MemoryPlateReadStore, RejectReason};

    fn cams() -> MemoryCameraRegistry {
        let c = MemoryCameraRegistry::default();
        c.register(anpr_core::Camera {
            camera_id: CameraId::parse("cam1").unwrap(),
            name: None,
            registered_at: 0,
            org: Some(anpr_core::OrgId::parse("acme").unwrap()),
            presence: None,
        });
        c
    }
    use serde_json::json;

    const NOW: u64 = 1_764_086_400_000;

    fn event(camera: &str, payload: &str) -> serde_json::Value {
        json!({
            "camera_id": camera,
            "topic": format!("{camera}/plates"),
            "payload": base64::engine::general_purpose::STANDARD.encode(payload),
        })
    }

    #[tokio::test]
    async fn a_batch_with_one_bad_read_stores_the_others_and_reports_it() {
        let store = MemoryPlateReadStore::default();
        let payload = format!(
            r#"{{"v":1,"r":[{{"id":"a1","t":{NOW},"p":"ab 12","c":90}},{{"id":"a2","p":"X"}},{{"id":"a3","t":{NOW},"p":"CD-34","c":70,"img":"reads/a3.jpg"}}]}}"#
        );
        let report = handle(
            &store,
            &cams(),
            &IngestPolicy::default(),
            &event("cam1", &payload),
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(report.stored, 2);
        assert_eq!(report.rejected.len(), 1);
        assert_eq!(report.rejected[0].index, 1);
        assert_eq!(report.rejected[0].reason, RejectReason::Malformed);
        let mut plates: Vec<_> = store.all().into_iter().map(|r| r.plate).collect();
        plates.sort();
        assert_eq!(plates, ["AB12", "CD34"]);
    }

    #[tokio::test]
    async fn the_camera_comes_from_the_topic_and_a_payload_claim_is_ignored() {
        let store = MemoryPlateReadStore::default();
        let payload = format!(
            r#"{{"v":1,"camera_id":"victim","cam":"victim","r":[{{"id":"a1","t":{NOW},"p":"AB12","c":90}}]}}"#
        );
        let report = handle(
            &store,
            &cams(),
            &IngestPolicy::default(),
            &event("cam1", &payload),
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(report.stored, 1);
        assert_eq!(store.all()[0].camera_id.as_str(), "cam1");
        let org = store.all()[0].org.clone().map(String::from);
        assert_eq!(org.as_deref(), Some("acme"), "the registry's organisation");
    }

    #[tokio::test]
    async fn envelopes_that_cannot_be_fixed_are_refused_without_error_or_storage() {
        let store = MemoryPlateReadStore::default();
        let policy = IngestPolicy::default();
        let big = format!(
            r#"{{"v":1,"r":[],"pad":"{}"}}"#,
            "x".repeat(MAX_MQTT_PAYLOAD)
        );
        let mismatched = json!({"camera_id": "cam1", "topic": "cam2/plates", "payload": "e30="});
        let cases = [
            json!({"nope": 1}),
            json!({"camera_id": "bad/cam", "payload": "e30="}),
            mismatched,
            json!({"camera_id": "cam1", "payload": "%%%"}),
            event("cam1", "not json"),
            event("cam1", r#"{"v":2,"r":[]}"#),
            event("cam1", r#"{"v":1,"r":{}}"#),
            event("cam1", &big),
        ];
        for ev in cases {
            let report = handle(&store, &cams(), &policy, &ev, NOW).await.unwrap();
            assert!(report.refused.is_some(), "{ev} should be refused");
            assert_eq!(report.stored, 0);
        }
        assert!(store.is_empty());
    }

    /// A store whose writes number `fail` (0-based) fail retryably; the others go to memory.
    #[derive(Default)]
    struct Flaky {
        inner: MemoryPlateReadStore,
        fail: Vec<u32>,
        calls: std::sync::atomic::AtomicU32,
    }

    impl PlateReadStore for Flaky {
        async fn put_reads(
            &self,
            reads: &[anpr_core::plates::StoredRead],
        ) -> Result<anpr_core::plates::PutOutcome, StoreError> {
            let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if self.fail.contains(&n) {
                return Err(StoreError::Backend {
                    retryable: true,
                    source: "throttled".into(),
                });
            }
            self.inner.put_reads(reads).await
        }
        async fn reads_by_camera(
            &self,
            camera: &CameraId,
            range: anpr_core::plates::TimeRange,
            limit: u32,
            cursor: Option<&str>,
        ) -> Result<anpr_core::model::Page<anpr_core::plates::StoredRead>, StoreError> {
            self.inner
                .reads_by_camera(camera, range, limit, cursor)
                .await
        }
        async fn reads_by_plate(
            &self,
            org: &anpr_core::OrgId,
            plate: &str,
            range: anpr_core::plates::TimeRange,
            limit: u32,
            cursor: Option<&str>,
        ) -> Result<anpr_core::model::Page<anpr_core::plates::StoredRead>, StoreError> {
            self.inner
                .reads_by_plate(org, plate, range, limit, cursor)
                .await
        }
    }

    fn message(id: &str, body: String) -> SqsMessage {
        SqsMessage {
            message_id: id.into(),
            body,
        }
    }

    /// A batch of reads at one time: the same id in two messages is the same read.
    fn reads(ids: &[&str]) -> String {
        static T: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let t = *T.get_or_init(|| anpr_protocol::clock::now_ms() - 1000);
        let r: Vec<String> = ids
            .iter()
            .map(|id| format!(r#"{{"id":"{id}","t":{t},"p":"AB12","c":90}}"#))
            .collect();
        format!(r#"{{"v":1,"r":[{}]}}"#, r.join(","))
    }

    #[tokio::test]
    async fn a_message_not_stored_is_reported_for_redelivery_and_a_malformed_one_is_dropped() {
        // The second write (m2's) fails.
        let store = Flaky {
            fail: vec![1],
            ..Flaky::default()
        };
        let batch = SqsEvent {
            records: vec![
                message("m1", event("cam1", &reads(&["a1", "a2"])).to_string()),
                message("m2", event("cam1", &reads(&["b1"])).to_string()),
                message("m3", "not json {".into()),
                message("m4", event("cam1", "not a batch").to_string()),
                message("m5", event("cam1", &reads(&["a2", "c1"])).to_string()),
            ],
        };
        let far = anpr_protocol::clock::now_ms() + 60_000;
        let policy = IngestPolicy::default();
        let (first, reports) = handle_sqs(&store, &cams(), &policy, &batch, far).await;
        assert_eq!(
            first.batch_item_failures,
            [ItemFailure {
                item_identifier: "m2".into()
            }],
            "only m2 goes back to the queue: the malformed m3 and m4 are dropped"
        );
        let refused = reports.iter().filter(|r| r.refused.is_some()).count();
        assert_eq!((reports.len(), refused), (4, 2), "{reports:?}");
        let ids = |s: &Flaky| {
            let mut ids: Vec<_> = s
                .inner
                .all()
                .into_iter()
                .map(|r| r.read_id.to_string())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(&store), ["a1", "a2", "c1"]);
        // SQS delivers m2 again (and m1, as if its deletion had been lost): each read once.
        let again = SqsEvent {
            records: vec![batch.records[1].clone(), batch.records[0].clone()],
        };
        let (ok, _) = handle_sqs(&store, &cams(), &policy, &again, far).await;
        assert!(ok.batch_item_failures.is_empty());
        assert_eq!(ids(&store), ["a1", "a2", "b1", "c1"]);
    }

    #[tokio::test]
    async fn messages_not_started_before_the_deadline_go_back_to_the_queue_untouched() {
        let store = MemoryPlateReadStore::default();
        let batch = SqsEvent {
            records: vec![
                message("m1", event("cam1", &reads(&["a1"])).to_string()),
                message("m2", event("cam1", &reads(&["b1"])).to_string()),
            ],
        };
        let (r, reports) = handle_sqs(
            &store,
            &cams(),
            &IngestPolicy::default(),
            &batch,
            anpr_protocol::clock::now_ms() + DEADLINE_RESERVE_MS / 2,
        )
        .await;
        let ids: Vec<_> = r
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        assert_eq!(ids, ["m1", "m2"]);
        assert!(reports.is_empty());
        assert!(store.is_empty());
    }

    #[test]
    fn the_answer_is_the_shape_lambda_reads_and_the_event_the_shape_it_sends() {
        let response = BatchResponse {
            batch_item_failures: vec![ItemFailure {
                item_identifier: "id-1".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({"batchItemFailures": [{"itemIdentifier": "id-1"}]})
        );
        // An SQS event as Lambda delivers it (fields plate-ingest does not read are ignored).
        let ev: SqsEvent = serde_json::from_value(json!({"Records": [{
            "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
            "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
            "body": "{\"camera_id\":\"cam1\"}",
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
            "awsRegion": "us-east-2"
        }]}))
        .unwrap();
        assert_eq!(ev.records[0].body, r#"{"camera_id":"cam1"}"#);
    }
}
