//! Request status updates: applies a device event (a camera's `file/status` message, or S3's
//! object-created event for the upload) to its file request, and tells the web UI.
//!
//! Every change goes through [`crate::lifecycle`] (the one place transitions are allowed or
//! refused) and is written with optimistic concurrency: the record is read, the decision taken,
//! and [`RequestStore::replace`] writes it only if its `version` is unchanged; a
//! [`StoreError::Conflict`] re-reads and decides again. A refused, stale or foreign event
//! changes nothing.
//!
//! After a write, a [`Notification`] is published (QoS 1) on the request's organisation's topic,
//! [`topics::org_notifications`]. A duplicate event (same state, same S3 sequencer) writes
//! nothing but publishes the current state again: the write may have succeeded and the publish
//! failed before a retry, and the web UI treats notifications idempotently (by request id and
//! state), so delivery is at least once.

use crate::error::{PublishError, StoreError};
use crate::lifecycle::{self, Decision};
use crate::model::{FileRequestRecord, StatusChange};
use crate::ports::{DevicePublisher, RequestStore};
use anpr_protocol::{
    CameraId, FileStatus, FileStatusKind, Notification, ReasonCode, RequestId, RequestState,
    encode, topics,
};

/// How many of a camera's newest requests a sync looks through at most.
pub const SYNC_SCAN_MAX: usize = 1000;
/// Page size of the sync's scan.
const SYNC_PAGE: u32 = 100;

/// How many times a write that lost a race is decided again before giving up (retryably).
pub const MAX_CONFLICT_RETRIES: u32 = 5;

pub use crate::ports::UrlSigner;

/// Presigning failed.
#[derive(Debug, thiserror::Error)]
#[error("presigning a download URL for {key} failed")]
pub struct SignError {
    /// The object key.
    pub key: String,
    /// The signer's error.
    #[source]
    pub source: crate::error::BoxError,
}

/// Tunables of the status service, read once at cold start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusConfig {
    /// Validity of the presigned download URL in a `ready` notification, seconds.
    pub download_url_secs: u64,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            download_url_secs: 900,
        }
    }
}

/// S3 reported that an object was created under a camera's upload key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    /// Camera id, from the key (`media/{camera}/…`).
    pub camera_id: CameraId,
    /// Request id, from the key.
    pub request_id: RequestId,
    /// The file part of the key (decoded).
    pub file: String,
    /// The whole (decoded) key.
    pub key: String,
    /// Object size in bytes.
    pub size: u64,
    /// Checksum as S3 reports it (the ETag, quotes removed).
    pub checksum: Option<String>,
    /// S3's event `sequencer`, to order events on the same key.
    pub sequencer: Option<String>,
    /// When S3 created the object (Unix seconds).
    pub at: u64,
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The request changed and the web UI was notified.
    Applied {
        /// The state the request is now in.
        state: RequestState,
    },
    /// Nothing new (a redelivery); nothing written, the current state notified again.
    Duplicate {
        /// The request's state.
        state: RequestState,
    },
    /// Not allowed from the request's state (late, backwards, or out of order); nothing
    /// written, nobody notified.
    Refused {
        /// The request's state.
        from: RequestState,
        /// The state the event asked for.
        to: RequestState,
    },
    /// No such request (never existed, or deleted by retention): nothing to update.
    UnknownRequest,
    /// The event's camera is not the request's camera: a camera cannot speak for another.
    WrongCamera {
        /// The camera the request was made to.
        expected: CameraId,
    },
    /// The uploaded object's file is not the requested file.
    WrongFile {
        /// The requested file.
        expected: String,
    },
}

impl Outcome {
    /// True if the request was written.
    pub fn changed(&self) -> bool {
        matches!(self, Self::Applied { .. })
    }
}

/// Why an event could not be applied. Events that are merely not applicable are an
/// [`Outcome`], not an error.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Storage failed.
    #[error("storage failed")]
    Store(#[from] StoreError),
    /// Publishing the notification failed (the request was written).
    #[error("notifying the web UI failed")]
    Publish(#[from] PublishError),
    /// The download URL could not be signed (the request was written).
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The notification could not be encoded.
    #[error("encoding the notification failed: {0}")]
    Encode(String),
    /// Writes kept losing races.
    #[error("request {0} kept changing concurrently")]
    Contended(String),
}

impl StatusError {
    /// Whether retrying the event may succeed (Lambda retries); otherwise it is logged and
    /// dropped.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(StoreError::Backend { retryable, .. }) => *retryable,
            Self::Store(StoreError::Conflict) | Self::Contended(_) => true,
            Self::Store(_) | Self::Encode(_) => false,
            Self::Publish(p) => p.retryable,
            // Presigning is local computation; a failure is a configuration problem.
            Self::Sign(_) => false,
        }
    }
}

/// The status update service, generic over its ports.
#[derive(Debug, Clone)]
pub struct StatusUpdates<S, P, U> {
    store: S,
    publisher: P,
    signer: U,
    config: StatusConfig,
}

/// The state, progress and reason a camera status asks for.
pub fn requested_change(kind: &FileStatusKind) -> (RequestState, Option<u8>, Option<ReasonCode>) {
    match kind {
        FileStatusKind::Accepted => (RequestState::Accepted, None, None),
        FileStatusKind::Uploading { pct } => (RequestState::Uploading, Some(*pct), None),
        // The camera's word that it finished is progress; only S3's event makes it `ready`.
        FileStatusKind::Uploaded { .. } => (RequestState::Uploading, Some(100), None),
        FileStatusKind::Failed { reason } => (RequestState::Failed, None, Some(*reason)),
        FileStatusKind::Rejected { reason } => (RequestState::Rejected, None, Some(*reason)),
        FileStatusKind::Expired => (RequestState::Expired, None, None),
    }
}

/// Moves an open record to `expired` at `at` (the caller checked it is due).
fn expire(rec: &mut FileRequestRecord, at: u64) -> Result<(Decision, RequestState), Outcome> {
    rec.history.push(StatusChange {
        state: RequestState::Expired,
        at,
        progress: None,
        reason: None,
    });
    rec.state = RequestState::Expired;
    Ok((Decision::Apply, RequestState::Expired))
}

/// The record as a reader must see it at `now`: an open request past its expiry is shown
/// `expired` (the sweep or the next event writes the same within minutes; nothing can make it
/// anything else, see `lifecycle`).
pub fn as_seen(mut rec: FileRequestRecord, now: u64) -> FileRequestRecord {
    if lifecycle::past_expiry(rec.state, rec.expires_at, now) {
        let at = rec.expires_at.saturating_add(1);
        let _ = expire(&mut rec, at);
    }
    rec
}

impl<S: RequestStore, P: DevicePublisher, U: UrlSigner> StatusUpdates<S, P, U> {
    /// Builds the service from its ports.
    pub fn new(store: S, publisher: P, signer: U, config: StatusConfig) -> Self {
        Self {
            store,
            publisher,
            signer,
            config,
        }
    }

    /// The request store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Applies a camera's status message. `camera` comes from the MQTT topic (the broker's
    /// policy ties it to the certificate), never from the payload; `now` is the cloud clock.
    /// A request past its expiry becomes `expired` whatever the status says.
    pub async fn apply_camera_status(
        &self,
        camera: &CameraId,
        status: &FileStatus,
        now: u64,
    ) -> Result<Outcome, StatusError> {
        let (to, to_progress, reason) = requested_change(&status.kind);
        self.update(&status.id, camera, |rec| {
            if lifecycle::past_expiry(rec.state, rec.expires_at, now) {
                return expire(rec, now);
            }
            let decision = lifecycle::decide(rec.state, rec.progress, to, to_progress);
            if decision == Decision::Apply {
                if rec.state != to {
                    rec.history.push(StatusChange {
                        state: to,
                        at: now,
                        progress: to_progress,
                        reason,
                    });
                }
                rec.state = to;
                if to_progress.is_some() {
                    rec.progress = to_progress;
                }
                if reason.is_some() {
                    rec.reason = reason;
                }
            }
            Ok((decision, to))
        })
        .await
    }

    /// Applies S3's object-created event: the request becomes `ready` with the object's size,
    /// checksum and sequencer. A duplicate or older event (by sequencer) changes nothing. An
    /// object created (S3's event time) after the request's expiry makes it `expired`, not
    /// `ready` (see `lifecycle`).
    pub async fn apply_object_created(&self, obj: &ObjectCreated) -> Result<Outcome, StatusError> {
        self.update(&obj.request_id, &obj.camera_id, |rec| {
            if rec.file.as_str() != obj.file {
                return Err(Outcome::WrongFile {
                    expected: rec.file.to_string(),
                });
            }
            // An object created after the deadline does not revive the request.
            if lifecycle::past_expiry(rec.state, rec.expires_at, obj.at) {
                return expire(rec, obj.at);
            }
            let decision = lifecycle::decide_object(
                rec.state,
                rec.progress,
                rec.sequencer.as_deref(),
                obj.sequencer.as_deref(),
            );
            if decision == Decision::Apply {
                if rec.state != RequestState::Ready {
                    rec.history.push(StatusChange {
                        state: RequestState::Ready,
                        at: obj.at,
                        progress: None,
                        reason: None,
                    });
                }
                rec.state = RequestState::Ready;
                rec.progress = Some(100);
                rec.reason = None;
                rec.size = Some(obj.size);
                rec.checksum = obj.checksum.clone();
                rec.sequencer = obj.sequencer.clone();
                rec.object_key = Some(obj.key.clone());
            }
            Ok((decision, RequestState::Ready))
        })
        .await
    }

    /// A camera started a new broker session (its `file/sync` message): the requests queued
    /// for it in the old session are gone, so every request of `camera` still open
    /// (`requested`, `accepted`, `uploading`) and not expired at `now` is published to it
    /// again, oldest first. The camera's journal makes this idempotent: a request it has in
    /// hand is ignored, one it finished is answered with its final status again (never
    /// uploaded twice). Looks through the camera's newest [`SYNC_SCAN_MAX`] requests, and no
    /// further than the first one already expired (newest first, expiry follows creation).
    /// Returns how many were published.
    pub async fn resend_open(&self, camera: &CameraId, now: u64) -> Result<usize, StatusError> {
        let mut open = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = 0usize;
        loop {
            let page = self
                .store
                .list_by_camera(camera, SYNC_PAGE, cursor.as_deref())
                .await?;
            let mut past = false;
            for rec in page.items {
                seen += 1;
                if now > rec.expires_at {
                    past = true;
                } else if !rec.state.is_terminal() {
                    open.push(rec);
                }
            }
            match page.next_cursor {
                Some(c) if !past && seen < SYNC_SCAN_MAX => cursor = Some(c),
                _ => break,
            }
        }
        for rec in open.iter().rev() {
            let payload = encode(&rec.message()).map_err(|e| StatusError::Encode(e.to_string()))?;
            self.publisher
                .publish(&topics::file_request(&rec.camera_id), payload, 1)
                .await?;
        }
        Ok(open.len())
    }

    /// The sweep: every open request the store lists as past its expiry at `now` (at most
    /// `limit`, most overdue first) becomes `expired`, and its user is notified. A request that
    /// changed meanwhile (finished, or not due) is left alone. Returns how many expired.
    pub async fn expire_due(&self, now: u64, limit: u32) -> Result<usize, StatusError> {
        let due = self.store.open_past_expiry(now, limit).await?;
        let mut expired = 0;
        for rec in due {
            let out = self
                .update(&rec.request_id, &rec.camera_id, |r| {
                    if lifecycle::past_expiry(r.state, r.expires_at, now) {
                        expire(r, now)
                    } else {
                        Err(Outcome::Refused {
                            from: r.state,
                            to: RequestState::Expired,
                        })
                    }
                })
                .await?;
            if matches!(out, Outcome::Applied { .. }) {
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// Read, decide (`change` mutates the record and says what it decided, or returns the
    /// outcome of an event that does not apply), write with the version condition, retry on
    /// conflict; then notify.
    async fn update<F>(
        &self,
        id: &RequestId,
        camera: &CameraId,
        change: F,
    ) -> Result<Outcome, StatusError>
    where
        F: Fn(&mut FileRequestRecord) -> Result<(Decision, RequestState), Outcome>,
    {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let Some(current) = self.store.get(id).await? else {
                return Ok(Outcome::UnknownRequest);
            };
            if &current.camera_id != camera {
                return Ok(Outcome::WrongCamera {
                    expected: current.camera_id,
                });
            }
            let mut next = current.clone();
            let (decision, to) = match change(&mut next) {
                Ok(d) => d,
                Err(outcome) => return Ok(outcome),
            };
            match decision {
                Decision::Refuse => {
                    return Ok(Outcome::Refused {
                        from: current.state,
                        to,
                    });
                }
                Decision::Duplicate => {
                    self.notify(&current).await?;
                    return Ok(Outcome::Duplicate {
                        state: current.state,
                    });
                }
                Decision::Apply => {}
            }
            next.version = current.version + 1;
            match self.store.replace(&next, current.version).await {
                Ok(()) => {
                    self.notify(&next).await?;
                    return Ok(Outcome::Applied { state: next.state });
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StatusError::Contended(id.to_string()))
    }

    /// Publishes the record's current state to its organisation's notification topic.
    async fn notify(&self, rec: &FileRequestRecord) -> Result<(), StatusError> {
        let url = match (&rec.state, &rec.object_key) {
            (RequestState::Ready, Some(key)) => Some(
                self.signer
                    .presign_get(key, self.config.download_url_secs)
                    .await?,
            ),
            _ => None,
        };
        let at = rec.history.last().map_or(rec.requested_at, |h| h.at);
        let msg = Notification {
            request_id: rec.request_id.clone(),
            camera_id: rec.camera_id.clone(),
            file: rec.file.to_string(),
            state: rec.state,
            progress: if rec.state == RequestState::Uploading {
                rec.progress
            } else {
                None
            },
            size: if rec.state == RequestState::Ready {
                rec.size
            } else {
                None
            },
            url,
            reason: match rec.state {
                RequestState::Failed | RequestState::Rejected => {
                    rec.reason.map(|r| r.as_str().to_owned())
                }
                _ => None,
            },
            at,
        };
        // The organisation's topic: everyone who may see the request, and nobody else. A
        // request from before organisations is visible to nobody, so nobody is told.
        let Some(org) = &rec.org else {
            return Ok(());
        };
        let payload = encode(&msg).map_err(|e| StatusError::Encode(e.to_string()))?;
        self.publisher
            .publish(&topics::org_notifications(org.as_str()), payload, 1)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryPublisher, MemoryRequestStore, MemoryUrlSigner};
    use crate::model::Page;
    use crate::ports::{Created, IdempotencyKey};
    use anpr_protocol::{FileName, decode};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    const REQ: &str = "01JDQ2Y7ZK8M3W5T0G9H4N6P2R";

    fn cam(s: &str) -> CameraId {
        CameraId::parse(s).unwrap()
    }

    fn record() -> FileRequestRecord {
        FileRequestRecord {
            request_id: RequestId::parse(REQ).unwrap(),
            camera_id: cam("123456"),
            file: FileName::parse("clips/gate 1.mp4").unwrap(),
            note: None,
            requested_by: "user-1".into(),
            requested_at: 1000,
            expires_at: 2000,
            state: RequestState::Requested,
            progress: None,
            size: None,
            object_key: None,
            checksum: None,
            sequencer: None,
            reason: None,
            history: vec![StatusChange {
                state: RequestState::Requested,
                at: 1000,
                progress: None,
                reason: None,
            }],
            version: 1,
            retain_until: 9999,
            org: Some(crate::OrgId::parse("acme").unwrap()),
        }
    }

    type Svc<S> = StatusUpdates<S, MemoryPublisher, MemoryUrlSigner>;

    async fn service() -> (Svc<MemoryRequestStore>, MemoryRequestStore, MemoryPublisher) {
        service_over(record()).await
    }

    /// The service over a store holding `rec`.
    async fn service_over(
        rec: FileRequestRecord,
    ) -> (Svc<MemoryRequestStore>, MemoryRequestStore, MemoryPublisher) {
        let store = MemoryRequestStore::default();
        store.create(&rec, None).await.unwrap();
        let publisher = MemoryPublisher::default();
        let svc = StatusUpdates::new(
            store.clone(),
            publisher.clone(),
            MemoryUrlSigner::default(),
            StatusConfig {
                download_url_secs: 60,
            },
        );
        (svc, store, publisher)
    }

    fn status(kind: FileStatusKind) -> FileStatus {
        FileStatus {
            id: RequestId::parse(REQ).unwrap(),
            kind,
        }
    }

    fn object(seq: Option<&str>, size: u64) -> ObjectCreated {
        ObjectCreated {
            camera_id: cam("123456"),
            request_id: RequestId::parse(REQ).unwrap(),
            file: "clips/gate 1.mp4".into(),
            key: format!("media/123456/{REQ}/clips/gate 1.mp4"),
            size,
            checksum: Some("9b2cf535f27731c974343645a3985328".into()),
            sequencer: seq.map(str::to_owned),
            at: 1500,
        }
    }

    async fn stored(store: &MemoryRequestStore) -> FileRequestRecord {
        store
            .get(&RequestId::parse(REQ).unwrap())
            .await
            .unwrap()
            .unwrap()
    }

    fn notifications(p: &MemoryPublisher) -> Vec<Notification> {
        p.sent()
            .iter()
            .map(|m| {
                assert_eq!(m.topic, "web/org/acme/notifications");
                assert_eq!(m.qos, 1);
                decode(&m.payload).unwrap()
            })
            .collect()
    }

    #[tokio::test]
    async fn the_sweep_expires_an_open_request_past_its_deadline_and_notifies_its_user() {
        let (svc, store, publisher) = service().await;
        // Not due yet at the deadline itself.
        assert_eq!(svc.expire_due(2000, 100).await.unwrap(), 0);
        assert_eq!(stored(&store).await.state, RequestState::Requested);
        assert_eq!(svc.expire_due(2001, 100).await.unwrap(), 1);
        let rec = stored(&store).await;
        assert_eq!(rec.state, RequestState::Expired);
        assert_eq!(
            rec.history.last().map(|h| (h.state, h.at)),
            Some((RequestState::Expired, 2001))
        );
        let n = notifications(&publisher);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].state, RequestState::Expired);
        // Terminal now: the next sweep has nothing to do.
        assert_eq!(svc.expire_due(5000, 100).await.unwrap(), 0);
        assert_eq!(notifications(&publisher).len(), 1);
    }

    #[tokio::test]
    async fn a_request_without_organisation_changes_state_and_tells_nobody() {
        let (svc, store, publisher) = service_over(FileRequestRecord {
            org: None,
            ..record()
        })
        .await;
        assert_eq!(svc.expire_due(2001, 100).await.unwrap(), 1);
        assert_eq!(stored(&store).await.state, RequestState::Expired);
        assert!(publisher.sent().is_empty());
    }

    /// Expiry is final: an upload finishing after the deadline does not make the request
    /// `ready`, before or after the sweep ran (no flip-flop), and a read after the deadline
    /// already says `expired`.
    #[tokio::test]
    async fn after_its_deadline_a_request_is_expired_whatever_event_comes_and_stays_so() {
        let (svc, store, _) = service().await;
        assert_eq!(
            as_seen(stored(&store).await, 2001).state,
            RequestState::Expired
        );
        assert_eq!(
            as_seen(stored(&store).await, 2000).state,
            RequestState::Requested
        );
        // A late camera status: the request expires instead.
        let out = svc
            .apply_camera_status(
                &cam("123456"),
                &status(FileStatusKind::Uploading { pct: 50 }),
                2100,
            )
            .await
            .unwrap();
        assert_eq!(
            out,
            Outcome::Applied {
                state: RequestState::Expired
            }
        );
        // The object created after the deadline: refused, still expired.
        let mut late = object(Some("0A"), 9);
        late.at = 2200;
        let out = svc.apply_object_created(&late).await.unwrap();
        assert!(matches!(out, Outcome::Refused { .. }), "{out:?}");
        assert_eq!(stored(&store).await.state, RequestState::Expired);
    }

    #[tokio::test]
    async fn an_object_created_before_the_deadline_makes_the_request_ready_even_if_handled_after() {
        let (svc, store, _) = service().await;
        let mut late = object(Some("0A"), 9);
        late.at = 1999;
        svc.apply_object_created(&late).await.unwrap();
        assert_eq!(stored(&store).await.state, RequestState::Ready);
        // Without the object: created after the deadline, the request expires.
        let (svc, store, _) = service().await;
        late.at = 2001;
        let out = svc.apply_object_created(&late).await.unwrap();
        assert_eq!(
            out,
            Outcome::Applied {
                state: RequestState::Expired
            }
        );
        assert_eq!(stored(&store).await.state, RequestState::Expired);
    }

    /// A sync publishes again exactly the camera's open requests that have not expired,
    /// oldest first, on the camera's request topic; nothing terminal, expired or foreign.
    #[tokio::test]
    async fn a_sync_republishes_the_open_unexpired_requests_of_that_camera_only() {
        let store = MemoryRequestStore::default();
        let publisher = MemoryPublisher::default();
        let svc = StatusUpdates::new(
            store.clone(),
            publisher.clone(),
            MemoryUrlSigner::default(),
            StatusConfig::default(),
        );
        // Ids in creation order (ULIDs); (suffix, camera, state, requested_at).
        let rows = [
            ("0A", "123456", RequestState::Requested, 100), // expired at 1100
            ("0B", "123456", RequestState::Requested, 1000),
            ("0C", "123456", RequestState::Ready, 1100),
            ("0D", "999999", RequestState::Requested, 1200),
            ("0E", "123456", RequestState::Uploading, 1300),
            ("0F", "123456", RequestState::Accepted, 1400),
        ];
        for (sfx, c, state, at) in rows {
            let mut r = record();
            r.request_id = RequestId::parse(&format!("01JDQ2Y7ZK8M3W5T0G9H4N6P{sfx}")).unwrap();
            r.camera_id = cam(c);
            r.state = state;
            r.requested_at = at;
            r.expires_at = at + 1000;
            store.create(&r, None).await.unwrap();
        }
        let n = svc.resend_open(&cam("123456"), 1500).await.unwrap();
        assert_eq!(n, 3);
        let sent: Vec<(String, String)> = publisher
            .sent()
            .iter()
            .map(|m| {
                assert_eq!(m.qos, 1);
                let r: anpr_protocol::FileRequest = decode(&m.payload).unwrap();
                (m.topic.clone(), r.id.to_string())
            })
            .collect();
        let want: Vec<(String, String)> = ["0B", "0E", "0F"]
            .iter()
            .map(|s| {
                (
                    "123456/file/request".to_owned(),
                    format!("01JDQ2Y7ZK8M3W5T0G9H4N6P{s}"),
                )
            })
            .collect();
        assert_eq!(sent, want);
        // Nothing open: nothing published.
        let before = publisher.sent().len();
        assert_eq!(svc.resend_open(&cam("555555"), 1500).await.unwrap(), 0);
        assert_eq!(publisher.sent().len(), before);
    }

    #[tokio::test]
    async fn a_camera_status_moves_the_request_and_notifies_its_user() {
        let (svc, store, publisher) = service().await;
        let out = svc
            .apply_camera_status(&cam("123456"), &status(FileStatusKind::Accepted), 1100)
            .await
            .unwrap();
        assert_eq!(
            out,
            Outcome::Applied {
                state: RequestState::Accepted
            }
        );
        let rec = stored(&store).await;
        assert_eq!(rec.state, RequestState::Accepted);
        assert_eq!(rec.version, 2);
        assert_eq!(
            rec.history.last().map(|h| (h.state, h.at)),
            Some((RequestState::Accepted, 1100))
        );
        let n = notifications(&publisher);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].state, RequestState::Accepted);
        assert_eq!(n[0].at, 1100);
        assert_eq!(n[0].url, None);
    }

    #[tokio::test]
    async fn the_happy_path_ends_ready_with_size_checksum_and_a_download_url() {
        let (svc, store, publisher) = service().await;
        let c = cam("123456");
        for (kind, t) in [
            (FileStatusKind::Accepted, 1100),
            (FileStatusKind::Uploading { pct: 10 }, 1110),
            (FileStatusKind::Uploading { pct: 60 }, 1120),
            (FileStatusKind::Uploaded { size: 42 }, 1130),
        ] {
            assert!(
                svc.apply_camera_status(&c, &status(kind), t)
                    .await
                    .unwrap()
                    .changed()
            );
        }
        let out = svc
            .apply_object_created(&object(Some("0A"), 42))
            .await
            .unwrap();
        assert_eq!(
            out,
            Outcome::Applied {
                state: RequestState::Ready
            }
        );
        let rec = stored(&store).await;
        assert_eq!(rec.state, RequestState::Ready);
        assert_eq!(rec.size, Some(42));
        assert_eq!(
            rec.checksum.as_deref(),
            Some("9b2cf535f27731c974343645a3985328")
        );
        assert_eq!(rec.sequencer.as_deref(), Some("0A"));
        let states: Vec<_> = rec.history.iter().map(|h| h.state).collect();
        use RequestState::*;
        assert_eq!(
            states,
            [Requested, Accepted, Uploading, Ready],
            "progress updates add no history"
        );
        assert_eq!(rec.version, 6);
        let n = notifications(&publisher);
        let progress: Vec<_> = n.iter().map(|n| (n.state, n.progress)).collect();
        assert_eq!(
            progress,
            [
                (Accepted, None),
                (Uploading, Some(10)),
                (Uploading, Some(60)),
                (Uploading, Some(100)),
                (Ready, None)
            ]
        );
        let ready = n.last().unwrap();
        assert_eq!(ready.size, Some(42));
        assert_eq!(ready.at, 1500);
        assert_eq!(
            ready.url.as_deref(),
            Some(format!("memory://media/123456/{REQ}/clips/gate 1.mp4?expires_in=60").as_str())
        );
    }

    #[tokio::test]
    async fn a_status_from_another_camera_is_refused_and_changes_nothing() {
        let (svc, store, publisher) = service().await;
        for kind in [FileStatusKind::Accepted, FileStatusKind::Expired] {
            let out = svc
                .apply_camera_status(&cam("654321"), &status(kind), 1100)
                .await
                .unwrap();
            assert_eq!(
                out,
                Outcome::WrongCamera {
                    expected: cam("123456")
                }
            );
        }
        let mut foreign = object(None, 1);
        foreign.camera_id = cam("654321");
        assert!(matches!(
            svc.apply_object_created(&foreign).await.unwrap(),
            Outcome::WrongCamera { .. }
        ));
        assert_eq!(stored(&store).await, record());
        assert!(publisher.sent().is_empty());
    }

    #[tokio::test]
    async fn a_duplicate_object_event_changes_nothing_twice_and_notifies_again() {
        let (svc, store, publisher) = service().await;
        let ev = object(Some("0055B988B5C2B3F0C6"), 42);
        assert!(svc.apply_object_created(&ev).await.unwrap().changed());
        let after_first = stored(&store).await;
        let out = svc.apply_object_created(&ev).await.unwrap();
        assert_eq!(
            out,
            Outcome::Duplicate {
                state: RequestState::Ready
            }
        );
        assert_eq!(stored(&store).await, after_first);
        let n = notifications(&publisher);
        assert_eq!(n.len(), 2);
        assert_eq!(n[0], n[1]);
    }

    #[tokio::test]
    async fn an_older_object_event_never_overwrites_a_newer_one() {
        let (svc, store, publisher) = service().await;
        svc.apply_object_created(&object(Some("0055B988B5C2B3F0C7"), 42))
            .await
            .unwrap();
        let out = svc
            .apply_object_created(&object(Some("55B988B5C2B3F0C6"), 7))
            .await
            .unwrap();
        assert_eq!(
            out,
            Outcome::Refused {
                from: RequestState::Ready,
                to: RequestState::Ready
            }
        );
        assert_eq!(stored(&store).await.size, Some(42));
        // A newer write of the object updates size and checksum, still ready, no new history.
        let out = svc
            .apply_object_created(&object(Some("0055B988B5C2B3F0C8"), 43))
            .await
            .unwrap();
        assert_eq!(
            out,
            Outcome::Applied {
                state: RequestState::Ready
            }
        );
        let rec = stored(&store).await;
        assert_eq!((rec.size, rec.version, rec.history.len()), (Some(43), 3, 2));
        assert_eq!(notifications(&publisher).len(), 2);
    }

    #[tokio::test]
    async fn a_late_camera_status_after_ready_is_refused_and_nobody_is_notified() {
        let (svc, store, publisher) = service().await;
        svc.apply_object_created(&object(None, 42)).await.unwrap();
        for kind in [
            FileStatusKind::Uploading { pct: 90 },
            FileStatusKind::Accepted,
            FileStatusKind::Failed {
                reason: ReasonCode::UploadFailed,
            },
        ] {
            let out = svc
                .apply_camera_status(&cam("123456"), &status(kind), 1600)
                .await
                .unwrap();
            assert!(
                matches!(
                    out,
                    Outcome::Refused {
                        from: RequestState::Ready,
                        ..
                    }
                ),
                "{out:?}"
            );
        }
        assert_eq!(stored(&store).await.version, 2);
        assert_eq!(notifications(&publisher).len(), 1);
    }

    #[tokio::test]
    async fn ready_wins_over_an_earlier_failure_and_clears_the_reason() {
        let (svc, store, publisher) = service().await;
        let failed = status(FileStatusKind::Failed {
            reason: ReasonCode::UploadFailed,
        });
        svc.apply_camera_status(&cam("123456"), &failed, 1100)
            .await
            .unwrap();
        assert_eq!(
            notifications(&publisher)[0].reason.as_deref(),
            Some("upload_failed")
        );
        svc.apply_object_created(&object(None, 42)).await.unwrap();
        let rec = stored(&store).await;
        assert_eq!((rec.state, rec.reason), (RequestState::Ready, None));
        assert_eq!(rec.history[1].reason, Some(ReasonCode::UploadFailed));
    }

    #[tokio::test]
    async fn an_object_under_another_file_name_is_refused() {
        let (svc, store, _) = service().await;
        let mut ev = object(None, 1);
        ev.file = "clips/other.mp4".into();
        let out = svc.apply_object_created(&ev).await.unwrap();
        assert_eq!(
            out,
            Outcome::WrongFile {
                expected: "clips/gate 1.mp4".into()
            }
        );
        assert_eq!(stored(&store).await, record());
    }

    #[tokio::test]
    async fn an_unknown_request_is_an_outcome_not_an_error() {
        let (svc, _, publisher) = service().await;
        let mut s = status(FileStatusKind::Accepted);
        s.id = RequestId::parse("01JDQ2Y7ZK8M3W5T0G9H4N6P2S").unwrap();
        let out = svc
            .apply_camera_status(&cam("123456"), &s, 1)
            .await
            .unwrap();
        assert_eq!(out, Outcome::UnknownRequest);
        assert!(publisher.sent().is_empty());
    }

    #[tokio::test]
    async fn a_failed_notification_is_retryable_and_the_retry_notifies() {
        let (svc, store, publisher) = service().await;
        publisher.set_failing(true);
        let err = svc
            .apply_object_created(&object(None, 42))
            .await
            .unwrap_err();
        assert!(matches!(err, StatusError::Publish(_)));
        assert!(err.is_retryable());
        assert_eq!(
            stored(&store).await.state,
            RequestState::Ready,
            "the write is kept"
        );
        publisher.set_failing(false);
        let out = svc.apply_object_created(&object(None, 42)).await.unwrap();
        assert_eq!(
            out,
            Outcome::Duplicate {
                state: RequestState::Ready
            }
        );
        assert_eq!(notifications(&publisher).len(), 1);
    }

    #[tokio::test]
    async fn a_signing_failure_is_permanent() {
        let store = MemoryRequestStore::default();
        store.create(&record(), None).await.unwrap();
        let signer = MemoryUrlSigner::default();
        signer.set_failing(true);
        let svc = StatusUpdates::new(
            store,
            MemoryPublisher::default(),
            signer,
            StatusConfig::default(),
        );
        let err = svc
            .apply_object_created(&object(None, 42))
            .await
            .unwrap_err();
        assert!(matches!(err, StatusError::Sign(_)));
        assert!(!err.is_retryable());
    }

    /// A store whose first `replace` loses a race: another writer moves the request to
    /// `accepted` just before.
    #[derive(Clone)]
    struct RacingStore {
        inner: MemoryRequestStore,
        raced: Arc<AtomicBool>,
    }

    impl RequestStore for RacingStore {
        async fn create(
            &self,
            r: &FileRequestRecord,
            k: Option<&IdempotencyKey>,
        ) -> Result<Created, StoreError> {
            self.inner.create(r, k).await
        }
        async fn get(&self, id: &RequestId) -> Result<Option<FileRequestRecord>, StoreError> {
            self.inner.get(id).await
        }
        async fn replace(&self, r: &FileRequestRecord, expected: u64) -> Result<(), StoreError> {
            if !self.raced.swap(true, Ordering::SeqCst) {
                let mut other = self
                    .inner
                    .get(&r.request_id)
                    .await?
                    .ok_or(StoreError::Conflict)?;
                other.state = RequestState::Accepted;
                other.history.push(StatusChange {
                    state: RequestState::Accepted,
                    at: 1050,
                    progress: None,
                    reason: None,
                });
                other.version += 1;
                self.inner.replace(&other, other.version - 1).await?;
            }
            self.inner.replace(r, expected).await
        }
        async fn open_past_expiry(
            &self,
            now: u64,
            limit: u32,
        ) -> Result<Vec<FileRequestRecord>, StoreError> {
            self.inner.open_past_expiry(now, limit).await
        }
        async fn list_by_camera(
            &self,
            c: &CameraId,
            l: u32,
            cur: Option<&str>,
        ) -> Result<Page<FileRequestRecord>, StoreError> {
            self.inner.list_by_camera(c, l, cur).await
        }
        async fn find_key(&self, k: &str) -> Result<Option<(RequestId, String)>, StoreError> {
            self.inner.find_key(k).await
        }
    }

    #[tokio::test]
    async fn a_lost_race_is_decided_again_on_the_fresh_record() {
        let inner = MemoryRequestStore::default();
        inner.create(&record(), None).await.unwrap();
        let store = RacingStore {
            inner: inner.clone(),
            raced: Arc::default(),
        };
        let svc = StatusUpdates::new(
            store,
            MemoryPublisher::default(),
            MemoryUrlSigner::default(),
            StatusConfig::default(),
        );
        let out = svc
            .apply_camera_status(
                &cam("123456"),
                &status(FileStatusKind::Uploading { pct: 5 }),
                1100,
            )
            .await
            .unwrap();
        assert_eq!(
            out,
            Outcome::Applied {
                state: RequestState::Uploading
            }
        );
        let rec = stored(&inner).await;
        let states: Vec<_> = rec.history.iter().map(|h| h.state).collect();
        assert_eq!(
            states,
            [
                RequestState::Requested,
                RequestState::Accepted,
                RequestState::Uploading
            ]
        );
        assert_eq!(rec.version, 3);
    }
}
