//! Embedded persistence for the local stack: file requests (with idempotency keys), the camera
//! registry, plate reads and the cameras' configuration shadows, in one append-only JSON-lines
//! log under the data folder.
//!
//! Each write is applied to the domain's in-memory adapters (`anpr_core::memory`,
//! `anpr_core::plates::MemoryPlateReadStore`), so the semantics (conditional replace,
//! idempotency, pagination) are exactly the ones the domain's unit tests check, then appended
//! to the log and `fsync`ed before the call returns. On start the log is replayed through the
//! same adapters. A torn last line (a crash mid-write: no newline) is cut off the file at open,
//! so the next write starts on a line of its own; a corrupt complete line is skipped with a
//! warning. Neither stops the stack.

use anpr_core::OrgId;
use anpr_core::StoreError;
use anpr_core::audit::{AuditLog, AuditRecord, MemoryAuditLog};
use anpr_core::memory::MemoryRequestStore;
use anpr_core::model::{Camera, CameraPresence, FileRequestRecord, Page};
use anpr_core::plates::{MemoryPlateReadStore, PlateReadStore, PutOutcome, StoredRead, TimeRange};
use anpr_core::ports::{CameraRegistry, ConnectionClaim, Created, IdempotencyKey, RequestStore};
use anpr_core::shadow::{Shadow, Updated};
use anpr_protocol::shadow::Rejected;
use anpr_protocol::{CameraId, RequestId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The log could not be opened or read.
#[derive(Debug, thiserror::Error)]
#[error("database log {path}: {source}")]
pub struct OpenError {
    /// The log file.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

#[derive(Debug, Serialize, Deserialize)]
struct Key {
    scoped_key: String,
    fingerprint: String,
    expires_at: u64,
}

/// One logged write.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Create {
        record: Box<FileRequestRecord>,
        key: Option<Key>,
    },
    Replace {
        record: Box<FileRequestRecord>,
        expected: u64,
    },
    Camera {
        camera: Camera,
    },
    Reads {
        reads: Vec<StoredRead>,
    },
    Audit {
        record: Box<AuditRecord>,
    },
    /// A camera's last connection change time after a claim or a release (`None`: none).
    ConnectionChange {
        camera: String,
        at: Option<u64>,
    },
    /// The whole shadow after an accepted update.
    Shadow {
        camera: String,
        desired: serde_json::Map<String, serde_json::Value>,
        reported: serde_json::Map<String, serde_json::Value>,
        version: u64,
    },
}

#[derive(Debug)]
struct Inner {
    log: tokio::sync::Mutex<std::fs::File>,
    requests: MemoryRequestStore,
    reads: MemoryPlateReadStore,
    audit: MemoryAuditLog,
    cameras: std::sync::Mutex<BTreeMap<String, Camera>>,
    shadows: std::sync::Mutex<BTreeMap<String, Shadow>>,
    /// Camera → when its connection settings last changed (kept in memory: a restart of
    /// the local stack forgets them).
    connection_changes: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

/// The local database; cheap to clone. Implements [`RequestStore`], [`CameraRegistry`] and
/// [`PlateReadStore`].
#[derive(Debug, Clone)]
pub struct LocalDb {
    inner: Arc<Inner>,
}

#[derive(Debug, thiserror::Error)]
#[error("writing the database log failed")]
struct LogWrite(#[source] std::io::Error);

fn backend(e: std::io::Error) -> StoreError {
    StoreError::Backend {
        retryable: true,
        source: Box::new(LogWrite(e)),
    }
}

impl LocalDb {
    /// Opens (or creates) the log at `path` and replays it.
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        let err = |source| OpenError {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(err)?;
        let db = LocalDb {
            inner: Arc::new(Inner {
                log: tokio::sync::Mutex::new(file),
                requests: MemoryRequestStore::default(),
                reads: MemoryPlateReadStore::default(),
                audit: MemoryAuditLog::default(),
                cameras: std::sync::Mutex::new(BTreeMap::new()),
                shadows: std::sync::Mutex::new(BTreeMap::new()),
                connection_changes: std::sync::Mutex::default(),
            }),
        };
        let data = std::fs::read(path).map_err(err)?;
        // A crash mid-append leaves a last line without its newline: cut it, or the next
        // append would be glued to it and lost with it at the next replay.
        let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete < data.len() {
            tracing::warn!(path = %path.display(), bytes = data.len() - complete, "cutting a torn last line off the database log");
            let log = db
                .inner
                .log
                .try_lock()
                .map_err(|_| err(std::io::Error::other("the log is in use while opening")))?;
            log.set_len(complete as u64).map_err(err)?;
            log.sync_data().map_err(err)?;
        }
        let (mut applied, mut skipped) = (0usize, 0usize);
        for (n, line) in data[..complete].lines().enumerate() {
            let line = line.map_err(err)?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Op>(&line) {
                Ok(op) => {
                    db.apply(op).await;
                    applied += 1;
                }
                Err(e) => {
                    tracing::warn!(line = n + 1, error = %e, "skipping an unreadable database log line");
                    skipped += 1;
                }
            }
        }
        tracing::info!(path = %path.display(), applied, skipped, "database log replayed");
        Ok(db)
    }

    /// Applies a logged write to memory (replay); the outcome was decided when it was logged.
    async fn apply(&self, op: Op) {
        let i = &self.inner;
        let _ = match op {
            Op::Create { record, key } => {
                let key = key.map(|k| IdempotencyKey {
                    scoped_key: k.scoped_key,
                    fingerprint: k.fingerprint,
                    expires_at: k.expires_at,
                });
                i.requests.create(&record, key.as_ref()).await.map(|_| ())
            }
            Op::Replace { record, expected } => i.requests.replace(&record, expected).await,
            Op::Camera { camera } => {
                self.put_camera(camera);
                Ok(())
            }
            Op::ConnectionChange { camera, at } => {
                let mut g = i
                    .connection_changes
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match at {
                    Some(t) => g.insert(camera, t),
                    None => g.remove(&camera),
                };
                Ok(())
            }
            Op::Reads { reads } => i.reads.put_reads(&reads).await.map(|_| ()),
            Op::Audit { record } => i.audit.append(&record).await,
            Op::Shadow {
                camera,
                desired,
                reported,
                version,
            } => {
                i.shadows
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(
                        camera,
                        Shadow {
                            desired,
                            reported,
                            version,
                        },
                    );
                Ok(())
            }
        };
    }

    fn put_camera(&self, camera: Camera) {
        self.inner
            .cameras
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(camera.camera_id.to_string(), camera);
    }

    fn append(file: &mut std::fs::File, op: &Op) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(op).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        line.push(b'\n');
        file.write_all(&line).map_err(backend)?;
        file.sync_data().map_err(backend)
    }

    /// Registers (or renames) a camera.
    pub async fn register_camera(&self, camera: Camera) -> Result<(), StoreError> {
        let mut log = self.inner.log.lock().await;
        Self::append(
            &mut log,
            &Op::Camera {
                camera: camera.clone(),
            },
        )?;
        self.put_camera(camera);
        Ok(())
    }

    /// Applies a shadow `update` request payload to the camera's configuration shadow with the
    /// shadow service's rules (`anpr_core::shadow::Shadow`), logging the result; `Err` is the
    /// shadow service's refusal (`update/rejected`), or the log failing (500).
    pub async fn update_shadow(
        &self,
        camera: &str,
        payload: &serde_json::Value,
        now_secs: u64,
    ) -> Result<Updated, Rejected> {
        let mut log = self.inner.log.lock().await;
        let mut next = self.shadow(camera).unwrap_or_default();
        let updated = next.update(payload, now_secs)?;
        Self::append(
            &mut log,
            &Op::Shadow {
                camera: camera.to_owned(),
                desired: next.desired.clone(),
                reported: next.reported.clone(),
                version: next.version,
            },
        )
        .map_err(|e| Rejected {
            code: 500,
            message: format!("storing the shadow failed: {e}"),
        })?;
        self.inner
            .shadows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(camera.to_owned(), next);
        Ok(updated)
    }

    /// The camera's configuration shadow, if it has one.
    pub fn shadow(&self, camera: &str) -> Option<Shadow> {
        self.inner
            .shadows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(camera)
            .cloned()
    }

    /// Every registered camera, by id.
    pub fn cameras(&self) -> Vec<Camera> {
        self.inner
            .cameras
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

impl RequestStore for LocalDb {
    async fn create(
        &self,
        record: &FileRequestRecord,
        key: Option<&IdempotencyKey>,
    ) -> Result<Created, StoreError> {
        let mut log = self.inner.log.lock().await;
        let created = self.inner.requests.create(record, key).await?;
        if created == Created::New {
            Self::append(
                &mut log,
                &Op::Create {
                    record: Box::new(record.clone()),
                    key: key.map(|k| Key {
                        scoped_key: k.scoped_key.clone(),
                        fingerprint: k.fingerprint.clone(),
                        expires_at: k.expires_at,
                    }),
                },
            )?;
        }
        Ok(created)
    }

    async fn get(&self, id: &RequestId) -> Result<Option<FileRequestRecord>, StoreError> {
        self.inner.requests.get(id).await
    }

    async fn replace(
        &self,
        record: &FileRequestRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let mut log = self.inner.log.lock().await;
        self.inner
            .requests
            .replace(record, expected_version)
            .await?;
        Self::append(
            &mut log,
            &Op::Replace {
                record: Box::new(record.clone()),
                expected: expected_version,
            },
        )
    }

    async fn open_past_expiry(
        &self,
        now: u64,
        limit: u32,
    ) -> Result<Vec<FileRequestRecord>, StoreError> {
        self.inner.requests.open_past_expiry(now, limit).await
    }

    async fn list_by_camera(
        &self,
        camera: &CameraId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<FileRequestRecord>, StoreError> {
        self.inner
            .requests
            .list_by_camera(camera, limit, cursor)
            .await
    }

    async fn find_key(&self, scoped_key: &str) -> Result<Option<(RequestId, String)>, StoreError> {
        self.inner.requests.find_key(scoped_key).await
    }
}

impl AuditLog for LocalDb {
    async fn append(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let mut log = self.inner.log.lock().await;
        Self::append(
            &mut log,
            &Op::Audit {
                record: Box::new(record.clone()),
            },
        )?;
        self.inner.audit.append(record).await
    }

    async fn list(
        &self,
        org: &OrgId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<AuditRecord>, StoreError> {
        self.inner.audit.list(org, limit, cursor).await
    }
}

impl CameraRegistry for LocalDb {
    /// Decided and logged under the log's lock, so the hour's bound survives a restart.
    async fn claim_connection_change(
        &self,
        id: &CameraId,
        now: u64,
        min_interval: u64,
    ) -> Result<ConnectionClaim, StoreError> {
        let mut log = self.inner.log.lock().await;
        let claim =
            anpr_core::memory::claim_in(&self.inner.connection_changes, id, now, min_interval);
        if let ConnectionClaim::Claimed { previous } = claim {
            let logged = Self::append(
                &mut log,
                &Op::ConnectionChange {
                    camera: id.to_string(),
                    at: Some(now),
                },
            );
            if let Err(e) = logged {
                // Not durable: not claimed.
                anpr_core::memory::release_in(&self.inner.connection_changes, id, now, previous);
                return Err(e);
            }
        }
        Ok(claim)
    }

    async fn release_connection_change(
        &self,
        id: &CameraId,
        now: u64,
        previous: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut log = self.inner.log.lock().await;
        anpr_core::memory::release_in(&self.inner.connection_changes, id, now, previous);
        let at = self
            .inner
            .connection_changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id.as_str())
            .copied();
        Self::append(
            &mut log,
            &Op::ConnectionChange {
                camera: id.to_string(),
                at,
            },
        )
    }

    async fn get_camera(&self, id: &CameraId) -> Result<Option<Camera>, StoreError> {
        Ok(self
            .inner
            .cameras
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id.as_str())
            .cloned())
    }

    async fn list_cameras(
        &self,
        org: &OrgId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Camera>, StoreError> {
        Ok(anpr_core::memory::cameras_page(
            self.cameras(),
            org,
            cursor,
            limit,
        ))
    }

    /// Under the log's lock, so two events at once are applied one after the other; logged
    /// before it is applied in memory, like every write here.
    async fn record_presence(
        &self,
        id: &CameraId,
        presence: CameraPresence,
    ) -> Result<Option<Camera>, StoreError> {
        let mut log = self.inner.log.lock().await;
        let Some(mut camera) = self.get_camera(id).await? else {
            return Ok(None);
        };
        let Some(updated) = anpr_core::memory::record_presence_in(&mut camera, presence) else {
            return Ok(None);
        };
        Self::append(
            &mut log,
            &Op::Camera {
                camera: updated.clone(),
            },
        )?;
        self.put_camera(updated.clone());
        Ok(Some(updated))
    }
}

impl PlateReadStore for LocalDb {
    async fn put_reads(&self, reads: &[StoredRead]) -> Result<PutOutcome, StoreError> {
        let mut log = self.inner.log.lock().await;
        let out = self.inner.reads.put_reads(reads).await?;
        Self::append(
            &mut log,
            &Op::Reads {
                reads: reads.to_vec(),
            },
        )?;
        Ok(out)
    }

    async fn reads_by_camera(
        &self,
        camera: &CameraId,
        range: TimeRange,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<StoredRead>, StoreError> {
        self.inner
            .reads
            .reads_by_camera(camera, range, limit, cursor)
            .await
    }

    async fn reads_by_plate(
        &self,
        org: &OrgId,
        plate: &str,
        range: TimeRange,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<StoredRead>, StoreError> {
        self.inner
            .reads
            .reads_by_plate(org, plate, range, limit, cursor)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpr_protocol::{FileName, RequestState};

    fn record(id: &RequestId) -> FileRequestRecord {
        FileRequestRecord {
            request_id: id.clone(),
            camera_id: CameraId::parse("cam-1").expect("camera id"),
            file: FileName::parse("clips/a.png").expect("file"),
            note: None,
            requested_by: "demo-user".into(),
            requested_at: 1,
            expires_at: 2,
            state: RequestState::Requested,
            progress: None,
            size: None,
            object_key: None,
            checksum: None,
            sequencer: None,
            reason: None,
            history: vec![],
            version: 1,
            retain_until: 3,
            org: None,
        }
    }

    #[tokio::test]
    async fn writes_survive_reopening_and_a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.log");
        let id = RequestId::parse(&ulid::Ulid::new().to_string()).expect("request id");
        {
            let db = LocalDb::open(&path).await.expect("open");
            db.create(&record(&id), None).await.expect("create");
            let mut next = record(&id);
            next.state = RequestState::Accepted;
            next.version = 2;
            db.replace(&next, 1).await.expect("replace");
            db.register_camera(Camera {
                camera_id: CameraId::parse("cam-1").expect("id"),
                name: Some("one".into()),
                registered_at: 0,
                org: None,
                presence: None,
            })
            .await
            .expect("camera");
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"op\":\"repl"))
            .expect("torn write");
        let db = LocalDb::open(&path).await.expect("reopen");
        let got = db.get(&id).await.expect("get").expect("present");
        assert_eq!((got.state, got.version), (RequestState::Accepted, 2));
        assert_eq!(db.cameras().len(), 1);
        // A stale replace is still refused after the replay.
        assert!(matches!(
            db.replace(&record(&id), 1).await,
            Err(StoreError::Conflict)
        ));
    }

    #[tokio::test]
    async fn a_connection_change_is_remembered_across_a_restart_and_a_release_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.log");
        let (a, b) = (
            CameraId::parse("cam-001").unwrap(),
            CameraId::parse("cam-002").unwrap(),
        );
        {
            let db = LocalDb::open(&path).await.expect("open");
            assert_eq!(
                db.claim_connection_change(&a, 10_000, 3600).await.unwrap(),
                ConnectionClaim::Claimed { previous: None }
            );
            // b's change is claimed, then given back (its shadow write failed).
            db.claim_connection_change(&b, 10_000, 3600).await.unwrap();
            db.release_connection_change(&b, 10_000, None)
                .await
                .unwrap();
        }
        let db = LocalDb::open(&path).await.expect("reopen");
        assert_eq!(
            db.claim_connection_change(&a, 10_100, 3600).await.unwrap(),
            ConnectionClaim::TooSoon { last: 10_000 },
            "the bound was forgotten at the restart"
        );
        assert_eq!(
            db.claim_connection_change(&b, 10_100, 3600).await.unwrap(),
            ConnectionClaim::Claimed { previous: None }
        );
    }

    /// A crash mid-write leaves a fragment without its newline; the first write after the
    /// restart must not be glued to it (and lost at the next replay).
    #[tokio::test]
    async fn the_first_write_after_a_torn_line_survives_the_next_replay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.log");
        let (first, second) = (
            RequestId::parse(&ulid::Ulid::new().to_string()).expect("request id"),
            RequestId::parse(&ulid::Ulid::new().to_string()).expect("request id"),
        );
        {
            let db = LocalDb::open(&path).await.expect("open");
            db.create(&record(&first), None).await.expect("create");
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"op\":\"repl"))
            .expect("torn write");
        {
            let db = LocalDb::open(&path).await.expect("reopen after the crash");
            db.create(&record(&second), None)
                .await
                .expect("create after the crash");
        }
        let db = LocalDb::open(&path).await.expect("reopen again");
        assert!(db.get(&first).await.expect("get").is_some());
        assert!(
            db.get(&second).await.expect("get").is_some(),
            "the write after the torn line was lost at replay; log:\n{}",
            std::fs::read_to_string(&path).unwrap_or_default()
        );
        let log = std::fs::read_to_string(&path).expect("log");
        assert!(
            log.ends_with('\n') && !log.contains("\"repl"),
            "log:\n{log}"
        );
    }
}
