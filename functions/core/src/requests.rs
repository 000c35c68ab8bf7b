//! The file request service: create (validate, record, publish), get, list.

use crate::access::{Role, visible_camera};
use crate::error::{DomainError, StoreError};
use crate::model::{Caller, FileRequestRecord, Page, StatusChange};
use crate::ports::{CameraRegistry, Created, DevicePublisher, IdempotencyKey, RequestStore};
use anpr_protocol::{CameraId, FileName, RequestId, RequestState, ValidationError, encode, topics};
use sha2::{Digest, Sha256};

/// Longest note accepted, in characters.
pub const MAX_NOTE_CHARS: usize = 500;
/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;
/// Largest page size.
pub const MAX_PAGE: u32 = 100;
/// Page size when none is asked for.
pub const DEFAULT_PAGE: u32 = 20;
/// Default of [`RequestsConfig::max_open_per_camera`]: ten 20 MB clips (200 MB) at most
/// waiting on one camera's link.
pub const DEFAULT_MAX_OPEN_PER_CAMERA: u32 = 10;

/// Tunables of the service, read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestsConfig {
    /// How long a camera may take to serve a request before it is `expired` (seconds).
    pub request_expiry_secs: u64,
    /// How long request items are kept (DynamoDB TTL, seconds).
    pub retention_secs: u64,
    /// How long an idempotency key is remembered (seconds).
    pub idempotency_secs: u64,
    /// Most requests a camera may have open (not finished, not expired) at once: one user
    /// cannot queue unlimited uploads over a metered link.
    pub max_open_per_camera: u32,
}

impl Default for RequestsConfig {
    fn default() -> Self {
        Self {
            request_expiry_secs: 24 * 3600,
            retention_secs: 30 * 24 * 3600,
            idempotency_secs: 24 * 3600,
            max_open_per_camera: DEFAULT_MAX_OPEN_PER_CAMERA,
        }
    }
}

/// A web user's request for a file, as received (unvalidated).
#[derive(Debug, Clone, Default)]
pub struct NewFileRequest {
    /// Path relative to the camera's media directory.
    pub file: String,
    /// Optional free text.
    pub note: Option<String>,
    /// Optional `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

/// A signed download link ([`FileRequests::download`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// Presigned `GET` URL of the object.
    pub url: String,
    /// When it stops working (Unix seconds).
    pub expires_at: u64,
    /// The object's size in bytes, as recorded.
    pub size: Option<u64>,
}

/// The file request service, generic over its ports.
#[derive(Debug, Clone)]
pub struct FileRequests<S, C, P> {
    store: S,
    cameras: C,
    publisher: P,
    config: RequestsConfig,
}

fn validate_note(note: Option<String>) -> Result<Option<String>, ValidationError> {
    let Some(note) = note else { return Ok(None) };
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ValidationError {
            field: "note",
            reason: format!("longer than {MAX_NOTE_CHARS} characters"),
        });
    }
    if note
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ValidationError {
            field: "note",
            reason: "control characters are not allowed".into(),
        });
    }
    Ok(Some(note))
}

fn validate_key(key: &str) -> Result<(), ValidationError> {
    // A comma cannot be told apart from the header sent twice (API Gateway joins repeated
    // headers with ','), so it is refused rather than taken as a second, new key.
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic() && b != b',')
    {
        return Err(ValidationError {
            field: "Idempotency-Key",
            reason: format!(
                "must be one key of 1..={MAX_IDEMPOTENCY_KEY} visible ASCII characters other than ',' (sent once)"
            ),
        });
    }
    Ok(())
}

fn fingerprint(camera: &CameraId, file: &FileName, note: Option<&str>) -> String {
    let mut h = Sha256::new();
    for part in [camera.as_str(), file.as_str(), note.unwrap_or("")] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Parses a page size: default when absent, 1..=[`MAX_PAGE`].
pub fn page_size(limit: Option<u32>) -> Result<u32, ValidationError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ValidationError {
            field: "limit",
            reason: format!("must be 1..={MAX_PAGE}"),
        }),
    }
}

impl<S: RequestStore, C: CameraRegistry, P: DevicePublisher> FileRequests<S, C, P> {
    /// Builds the service from its ports.
    pub fn new(store: S, cameras: C, publisher: P, config: RequestsConfig) -> Self {
        Self {
            store,
            cameras,
            publisher,
            config,
        }
    }

    /// The request store (for adapters composing further services).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The publisher.
    pub fn publisher(&self) -> &P {
        &self.publisher
    }

    /// Validates, records and publishes a file request. Returns the record and whether it was
    /// created now (`false`: an earlier request under the same idempotency key).
    ///
    /// A retry under the same key of a request still `requested` publishes it again: the
    /// camera drops duplicates by request id, so a lost publish is never lost for good.
    pub async fn create(
        &self,
        caller: &Caller,
        camera: &str,
        new: NewFileRequest,
        now: u64,
    ) -> Result<(FileRequestRecord, bool), DomainError> {
        caller.require(Role::Operator)?;
        let camera_id = CameraId::parse(camera)?;
        let file = FileName::parse(&new.file)?;
        let note = validate_note(new.note)?;
        if let Some(k) = &new.idempotency_key {
            validate_key(k)?;
        }
        let org = visible_camera(&self.cameras, caller, &camera_id).await?.org;
        let fp = fingerprint(&camera_id, &file, note.as_deref());
        let key = new.idempotency_key.as_ref().map(|k| IdempotencyKey {
            scoped_key: format!("{}#{k}", caller.sub),
            fingerprint: fp.clone(),
            expires_at: now + self.config.idempotency_secs,
        });
        let max = self.config.max_open_per_camera;
        if self.store.count_open(&camera_id, now, max).await? >= max {
            // At the limit, a retry of a request already made (same key, same body) is
            // answered as before: it is one of the open requests, not one more. The key is
            // looked up only here, so a request under the limit costs no extra read.
            let earlier = match &key {
                Some(k) => self.store.find_key(&k.scoped_key).await?,
                None => None,
            };
            let Some((request_id, fingerprint)) = earlier else {
                return Err(DomainError::TooManyOpenRequests { max });
            };
            return self.replay(&request_id, &fingerprint, &fp).await;
        }
        let record = FileRequestRecord {
            request_id: RequestId::parse(&crate::model::next_ulid().to_string())?,
            camera_id,
            file,
            note,
            requested_by: caller.sub.clone(),
            org,
            requested_at: now,
            expires_at: now + self.config.request_expiry_secs,
            state: RequestState::Requested,
            progress: None,
            size: None,
            object_key: None,
            checksum: None,
            sequencer: None,
            reason: None,
            history: vec![StatusChange {
                state: RequestState::Requested,
                at: now,
                progress: None,
                reason: None,
            }],
            version: 1,
            retain_until: now + self.config.retention_secs,
        };
        match self.store.create(&record, key.as_ref()).await? {
            Created::New => {
                self.publish_request(&record).await?;
                Ok((record, true))
            }
            Created::Existing {
                request_id,
                fingerprint,
            } => self.replay(&request_id, &fingerprint, &fp).await,
        }
    }

    /// The answer to a retry under an idempotency key first used for `request_id` with
    /// `fingerprint`: the earlier request if the body is the same (published again while it
    /// is still `requested`: the camera drops duplicates by id), else a mismatch.
    async fn replay(
        &self,
        request_id: &RequestId,
        fingerprint: &str,
        fp: &str,
    ) -> Result<(FileRequestRecord, bool), DomainError> {
        if fingerprint != fp {
            return Err(DomainError::IdempotencyMismatch);
        }
        let existing = self.store.get(request_id).await?.ok_or_else(|| {
            StoreError::Corrupt(format!("idempotency key points at missing {request_id}"))
        })?;
        if existing.state == RequestState::Requested {
            self.publish_request(&existing).await?;
        }
        Ok((existing, false))
    }

    async fn publish_request(&self, record: &FileRequestRecord) -> Result<(), DomainError> {
        let payload = encode(&record.message()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.publisher
            .publish(&topics::file_request(&record.camera_id), payload, 1)
            .await?;
        Ok(())
    }

    /// One request with its history, as seen at `now` (past its expiry and still open:
    /// `expired`, [`crate::status::as_seen`]), if it belongs to the caller's organisation
    /// (else not found).
    pub async fn get(
        &self,
        caller: &Caller,
        id: &str,
        now: u64,
    ) -> Result<FileRequestRecord, DomainError> {
        caller.require(Role::Viewer)?;
        let id = RequestId::parse(id)?;
        self.store
            .get(&id)
            .await?
            .filter(|r| caller.owns(r.org.as_ref()))
            .map(|r| crate::status::as_seen(r, now))
            .ok_or_else(|| DomainError::RequestNotFound(id.to_string()))
    }

    /// A fresh download link for request `id`, valid for `valid_for_secs`: only for a
    /// request the caller may see ([`Self::get`]) that is `ready` (its object in the media
    /// bucket). The link a notification carried expires; this one is signed on demand.
    pub async fn download<U: crate::status::UrlSigner>(
        &self,
        caller: &Caller,
        id: &str,
        now: u64,
        signer: &U,
        valid_for_secs: u64,
    ) -> Result<Download, DomainError> {
        let rec = self.get(caller, id, now).await?;
        let key = match (&rec.state, &rec.object_key) {
            (RequestState::Ready, Some(key)) => key.clone(),
            (state, _) => {
                return Err(DomainError::NotReady {
                    id: rec.request_id.to_string(),
                    state: state.as_str(),
                });
            }
        };
        Ok(Download {
            url: signer.presign_get(&key, valid_for_secs).await?,
            expires_at: now + valid_for_secs,
            size: rec.size,
        })
    }

    /// The camera registry.
    pub fn cameras(&self) -> &C {
        &self.cameras
    }

    /// A camera's requests, newest first, as seen at `now` (like [`Self::get`]). An
    /// unregistered camera, or one of another organisation, is `CameraNotFound`.
    pub async fn list(
        &self,
        caller: &Caller,
        camera: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
        now: u64,
    ) -> Result<Page<FileRequestRecord>, DomainError> {
        let camera_id = CameraId::parse(camera)?;
        let limit = page_size(limit)?;
        caller.require(Role::Viewer)?;
        visible_camera(&self.cameras, caller, &camera_id).await?;
        match self.store.list_by_camera(&camera_id, limit, cursor).await {
            Err(StoreError::BadCursor) => Err(ValidationError {
                field: "cursor",
                reason: "not a cursor this API issued".into(),
            }
            .into()),
            other => {
                let mut page = other?;
                page.items = page
                    .items
                    .into_iter()
                    .map(|r| crate::status::as_seen(r, now))
                    .collect();
                Ok(page)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::OrgId;
    use crate::memory::{MemoryCameraRegistry, MemoryPublisher, MemoryRequestStore};
    use crate::model::Camera;
    use anpr_protocol::{FileRequest, decode};

    type Svc = FileRequests<MemoryRequestStore, MemoryCameraRegistry, MemoryPublisher>;

    fn service() -> (Svc, MemoryRequestStore, MemoryPublisher) {
        let store = MemoryRequestStore::default();
        let cams = MemoryCameraRegistry::default();
        cams.register(Camera {
            camera_id: CameraId::parse("123456").unwrap(),
            name: None,
            registered_at: 0,
            org: Some(OrgId::parse("acme").unwrap()),
            presence: None,
        });
        let publisher = MemoryPublisher::default();
        let svc = FileRequests::new(
            store.clone(),
            cams,
            publisher.clone(),
            RequestsConfig::default(),
        );
        (svc, store, publisher)
    }

    fn caller() -> Caller {
        Caller {
            sub: "user-1".into(),
            org: OrgId::parse("acme").unwrap(),
            role: Role::Operator,
        }
    }

    fn req(file: &str, key: Option<&str>) -> NewFileRequest {
        NewFileRequest {
            file: file.into(),
            note: None,
            idempotency_key: key.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn a_valid_request_is_recorded_and_published_with_qos_1() {
        let (svc, store, publisher) = service();
        let (rec, created) = svc
            .create(&caller(), "123456", req("clips/a.mp4", None), 1000)
            .await
            .unwrap();
        assert!(created);
        assert_eq!(store.len(), 1);
        let sent = publisher.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].topic, "123456/file/request");
        assert_eq!(sent[0].qos, 1);
        let msg: FileRequest = decode(&sent[0].payload).unwrap();
        assert_eq!(msg.id, rec.request_id);
        assert_eq!(msg.exp, 1000 + 24 * 3600);
    }

    #[tokio::test]
    async fn an_unknown_camera_is_not_found_and_nothing_is_written() {
        let (svc, store, publisher) = service();
        let err = svc
            .create(&caller(), "999", req("a.mp4", None), 1)
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::CameraNotFound(_)));
        assert!(store.is_empty());
        assert!(publisher.sent().is_empty());
    }

    #[tokio::test]
    async fn another_organisation_sees_nothing_and_a_viewer_creates_nothing() {
        let (svc, store, publisher) = service();
        let (rec, _) = svc
            .create(&caller(), "123456", req("a.mp4", None), 1)
            .await
            .unwrap();
        let stranger = Caller {
            sub: "user-9".into(),
            org: OrgId::parse("globex").unwrap(),
            role: Role::Admin,
        };
        let id = rec.request_id.to_string();
        assert!(matches!(
            svc.get(&stranger, &id, 0).await,
            Err(DomainError::RequestNotFound(_))
        ));
        assert!(matches!(
            svc.list(&stranger, "123456", None, None, 0).await,
            Err(DomainError::CameraNotFound(_))
        ));
        assert!(matches!(
            svc.create(&stranger, "123456", req("b.mp4", None), 2).await,
            Err(DomainError::CameraNotFound(_))
        ));
        let viewer = Caller {
            role: Role::Viewer,
            ..caller()
        };
        assert!(matches!(
            svc.create(&viewer, "123456", req("b.mp4", None), 2).await,
            Err(DomainError::Forbidden(Role::Operator))
        ));
        assert_eq!(
            svc.get(&viewer, &id, 0).await.unwrap().request_id,
            rec.request_id
        );
        assert_eq!(store.len(), 1);
        assert_eq!(publisher.sent().len(), 1);
    }

    #[tokio::test]
    async fn a_camera_with_its_maximum_of_open_requests_refuses_more_until_one_finishes() {
        let (svc, store, publisher) = service();
        let max = RequestsConfig::default().max_open_per_camera;
        let mut first = None;
        for i in 0..max {
            let (r, _) = svc
                .create(&caller(), "123456", req(&format!("f{i}.mp4"), None), 100)
                .await
                .unwrap();
            first.get_or_insert(r);
        }
        let err = svc
            .create(&caller(), "123456", req("more.mp4", None), 100)
            .await
            .unwrap_err();
        assert!(
            matches!(err, DomainError::TooManyOpenRequests { max: m } if m == max),
            "{err}"
        );
        assert_eq!(store.len(), max as usize);
        assert_eq!(publisher.sent().len(), max as usize);
        // One finishes: there is room again.
        let mut done = first.unwrap();
        let v = done.version;
        done.state = RequestState::Ready;
        done.version = v + 1;
        store.replace(&done, v).await.unwrap();
        svc.create(&caller(), "123456", req("more.mp4", None), 101)
            .await
            .unwrap();
        // And expired ones do not count.
        let later = 100 + RequestsConfig::default().request_expiry_secs + 1;
        svc.create(&caller(), "123456", req("late.mp4", None), later)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn at_the_limit_a_retry_replays_and_open_requests_behind_a_long_history_count() {
        let (svc, store, publisher) = service();
        let max = RequestsConfig::default().max_open_per_camera;
        // The open ones first, then 150 finished ones: the open ones are no longer among the
        // newest hundred, yet they count.
        let mut open = Vec::new();
        for i in 0..max {
            let key = format!("k{i}");
            let (r, _) = svc
                .create(
                    &caller(),
                    "123456",
                    req(&format!("o{i}.mp4"), Some(&key)),
                    100,
                )
                .await
                .unwrap();
            open.push(r);
        }
        for i in 0..150 {
            let mut r = open[0].clone();
            r.request_id = RequestId::parse(&ulid::Ulid::new().to_string()).unwrap();
            r.file = FileName::parse(&format!("done{i}.mp4")).unwrap();
            r.state = RequestState::Ready;
            store.create(&r, None).await.unwrap();
        }
        let err = svc
            .create(&caller(), "123456", req("more.mp4", None), 100)
            .await
            .unwrap_err();
        assert!(
            matches!(err, DomainError::TooManyOpenRequests { .. }),
            "{err}"
        );
        let sent = publisher.sent().len();
        let (again, created) = svc
            .create(&caller(), "123456", req("o3.mp4", Some("k3")), 100)
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(again.request_id, open[3].request_id, "the original answer");
        assert_eq!(
            publisher.sent().len(),
            sent + 1,
            "still requested: sent again"
        );
        let err = svc
            .create(&caller(), "123456", req("other.mp4", Some("k3")), 100)
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::IdempotencyMismatch), "{err}");
        let err = svc
            .create(&caller(), "123456", req("new.mp4", Some("k-new")), 100)
            .await
            .unwrap_err();
        assert!(
            matches!(err, DomainError::TooManyOpenRequests { .. }),
            "{err}"
        );
        assert_eq!(store.len(), max as usize + 150, "nothing written");
    }

    #[tokio::test]
    async fn a_repeated_key_joined_with_a_comma_is_refused() {
        let (svc, store, _) = service();
        match svc
            .create(&caller(), "123456", req("a.mp4", Some("k1,k1")), 1)
            .await
        {
            Err(DomainError::Invalid(v)) => assert_eq!(v.field, "Idempotency-Key"),
            other => panic!("{other:?}"),
        }
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn a_traversal_name_is_refused_naming_the_file_field() {
        let (svc, store, _) = service();
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            "a\u{202e}4pm.exe",
            "a\0b",
            "",
        ] {
            let err = svc
                .create(&caller(), "123456", req(bad, None), 1)
                .await
                .unwrap_err();
            match err {
                DomainError::Invalid(v) => assert_eq!(v.field, "file", "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn a_retry_with_the_same_key_returns_the_same_request() {
        let (svc, store, _) = service();
        let (a, c1) = svc
            .create(&caller(), "123456", req("a.mp4", Some("k1")), 1)
            .await
            .unwrap();
        let (b, c2) = svc
            .create(&caller(), "123456", req("a.mp4", Some("k1")), 2)
            .await
            .unwrap();
        assert!(c1 && !c2);
        assert_eq!(a.request_id, b.request_id);
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn the_same_key_with_another_body_is_a_mismatch() {
        let (svc, store, _) = service();
        svc.create(&caller(), "123456", req("a.mp4", Some("k1")), 1)
            .await
            .unwrap();
        let err = svc
            .create(&caller(), "123456", req("b.mp4", Some("k1")), 2)
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::IdempotencyMismatch));
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn keys_are_scoped_to_their_caller() {
        let (svc, store, _) = service();
        svc.create(&caller(), "123456", req("a.mp4", Some("k1")), 1)
            .await
            .unwrap();
        let other = Caller {
            sub: "user-2".into(),
            ..caller()
        };
        let (_, created) = svc
            .create(&other, "123456", req("a.mp4", Some("k1")), 1)
            .await
            .unwrap();
        assert!(created);
        assert_eq!(store.len(), 2);
    }

    #[tokio::test]
    async fn a_failed_publish_is_republished_by_the_retry() {
        let (svc, store, publisher) = service();
        publisher.set_failing(true);
        let err = svc
            .create(&caller(), "123456", req("a.mp4", Some("k")), 1)
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Publish(_)));
        assert!(err.is_retryable());
        assert_eq!(store.len(), 1, "the request is kept");
        publisher.set_failing(false);
        let (_, created) = svc
            .create(&caller(), "123456", req("a.mp4", Some("k")), 2)
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(publisher.sent().len(), 1);
    }

    #[tokio::test]
    async fn listing_is_newest_first_and_paginates_to_the_end() {
        let (svc, _, _) = service();
        let mut ids = Vec::new();
        for i in 0..5 {
            let (r, _) = svc
                .create(&caller(), "123456", req(&format!("f{i}.mp4"), None), i)
                .await
                .unwrap();
            ids.push(r.request_id);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        ids.reverse();
        let mut got = Vec::new();
        let mut cursor = None;
        loop {
            let page = svc
                .list(&caller(), "123456", Some(2), cursor.as_deref(), 0)
                .await
                .unwrap();
            got.extend(page.items.into_iter().map(|r| r.request_id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(got, ids);
    }

    #[tokio::test]
    async fn bad_page_sizes_and_cursors_name_their_field() {
        let (svc, _, _) = service();
        for (limit, cursor, field) in [
            (Some(0), None, "limit"),
            (Some(101), None, "limit"),
            (None, Some("../x"), "cursor"),
        ] {
            match svc
                .list(&caller(), "123456", limit, cursor, 0)
                .await
                .unwrap_err()
            {
                DomainError::Invalid(v) => assert_eq!(v.field, field),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_download_link_is_signed_for_a_ready_request_the_caller_may_see_only() {
        let (svc, store, _) = service();
        let signer = crate::memory::MemoryUrlSigner::default();
        let (rec, _) = svc
            .create(&caller(), "123456", req("clips/a.mp4", None), 100)
            .await
            .unwrap();
        let id = rec.request_id.to_string();
        let err = svc
            .download(&caller(), &id, 110, &signer, 60)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                DomainError::NotReady {
                    state: "requested",
                    ..
                }
            ),
            "{err:?}"
        );
        // S3's event made it ready.
        let mut ready = rec.clone();
        ready.state = RequestState::Ready;
        ready.size = Some(42);
        ready.object_key = Some("media/123456/x/clips/a.mp4".into());
        store.replace(&ready, rec.version).await.unwrap();
        let d = svc
            .download(&caller(), &id, 120, &signer, 60)
            .await
            .unwrap();
        assert_eq!(d.url, "memory://media/123456/x/clips/a.mp4?expires_in=60");
        assert_eq!((d.expires_at, d.size), (180, Some(42)));
        // A viewer of the organisation may download; another organisation's admin cannot
        // even learn the request exists.
        let viewer = Caller {
            role: Role::Viewer,
            ..caller()
        };
        assert!(svc.download(&viewer, &id, 120, &signer, 60).await.is_ok());
        let other = Caller {
            sub: "mallory".into(),
            org: OrgId::parse("globex").unwrap(),
            role: Role::Admin,
        };
        assert!(matches!(
            svc.download(&other, &id, 120, &signer, 60).await,
            Err(DomainError::RequestNotFound(_))
        ));
        signer.set_failing(true);
        assert!(matches!(
            svc.download(&caller(), &id, 120, &signer, 60).await,
            Err(DomainError::Sign(_))
        ));
    }
}
