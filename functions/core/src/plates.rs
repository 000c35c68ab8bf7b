//! Plate reads in the cloud: what is stored for each read, the ingestion rules that turn a
//! camera's batch into stored reads (or refusals), the [`PlateReadStore`] port and its
//! in-memory adapter.
//!
//! # Ingestion rules (documented in `docs/plate-reads.md`)
//! - The camera is the one of the MQTT topic (the IoT rule's `topic(1)`); a batch never names
//!   its camera, and anything in the payload claiming otherwise is ignored.
//! - Each read is checked on its own; a batch with bad reads stores the good ones.
//! - Plate text is normalised with [`anpr_protocol::normalize_plate`] (the query side uses the
//!   same function); a read whose text normalises to nothing is refused.
//! - A read more than [`IngestPolicy::max_future_skew_ms`] ahead of the cloud clock is refused
//!   (`future_timestamp`): it cannot be corrected without breaking the idempotency of its key.
//! - A read older than the retention period is refused (`expired`): storing it would keep
//!   personal data longer than allowed, and its TTL would delete it at once anyway.
//! - A read id seen twice in one batch is stored once (`duplicate_in_batch`).
//! - A read's key is `(camera, t_ms, read id)`, so a re-delivered read overwrites itself:
//!   exactly once in effect.

use crate::access::OrgId;
use crate::error::StoreError;
use crate::model::Page;
use anpr_protocol::{CameraId, FileName, PlateRead, ReadId, normalize_plate};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// A plate read as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRead {
    /// The camera that saw it (from the topic).
    pub camera_id: CameraId,
    /// Id minted on the camera.
    pub read_id: ReadId,
    /// When it was seen (Unix milliseconds, camera clock).
    pub t_ms: u64,
    /// Normalised plate text (`AB123CD`).
    pub plate: String,
    /// Plate text exactly as the camera read it.
    pub plate_raw: String,
    /// Confidence 0..=100.
    pub confidence: u8,
    /// Image or clip on the camera, requestable through the file-request flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub img: Option<FileName>,
    /// Plate box x, y, width, height.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bb: Option<[u32; 4]>,
    /// When the cloud received it (Unix milliseconds).
    pub received_ms: u64,
    /// When the store deletes it (Unix seconds, DynamoDB TTL).
    pub expires_at: u64,
    /// The camera's organisation when the read arrived; part of the plate index's partition
    /// key. `None` (a camera without organisation): found by no plate search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgId>,
}

impl StoredRead {
    /// Sort key within a camera's reads: `{t_ms:013}#{read}`.
    pub fn camera_sort_key(&self) -> String {
        format!("{:013}#{}", self.t_ms, self.read_id)
    }
    /// Sort key within a plate's sightings: `{t_ms:013}#{camera}#{read}`.
    pub fn plate_sort_key(&self) -> String {
        format!("{:013}#{}#{}", self.t_ms, self.camera_id, self.read_id)
    }
}

/// A closed time range in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// First millisecond included.
    pub from_ms: u64,
    /// Last millisecond included.
    pub to_ms: u64,
}

impl TimeRange {
    /// Everything representable in a 13-digit key (until the year 2286).
    pub const ALL: TimeRange = TimeRange {
        from_ms: 0,
        to_ms: 9_999_999_999_999,
    };

    /// Lowest sort key in range (`{from:013}#`).
    pub fn low_key(&self) -> String {
        format!("{:013}#", self.from_ms)
    }
    /// Highest sort key in range (`{to:013}#~`; `~` sorts after every id character).
    pub fn high_key(&self) -> String {
        format!("{:013}#~", self.to_ms.min(Self::ALL.to_ms))
    }
}

/// How many reads a store call wrote and how many backend calls it took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutOutcome {
    /// Items written (a re-delivered read counts: it overwrote itself).
    pub written: usize,
    /// Backend calls made, retries included.
    pub calls: u32,
}

pub use crate::ports::PlateReadStore;

/// Tunables of ingestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestPolicy {
    /// How long reads are kept (seconds): the TTL, and the age beyond which a read is refused.
    pub retention_secs: u64,
    /// How far ahead of the cloud clock a read's time may be (camera clock drift).
    pub max_future_skew_ms: u64,
}

impl Default for IngestPolicy {
    fn default() -> Self {
        Self {
            retention_secs: 90 * 24 * 3600,
            max_future_skew_ms: 10 * 60 * 1000,
        }
    }
}

/// Why one read of a batch was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The read did not parse (missing or mistyped field, bad id, confidence > 100).
    Malformed,
    /// The plate text is empty or has characters no plate has.
    InvalidPlate,
    /// Its time is further ahead of the cloud clock than allowed.
    FutureTimestamp,
    /// Its time is older than the retention period.
    Expired,
    /// The same read id appeared earlier in the same batch (stored once).
    DuplicateInBatch,
}

/// One refused read of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedRead {
    /// Index in the batch's `r` array.
    pub index: usize,
    /// The read id, if it parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_id: Option<String>,
    /// Why.
    pub reason: RejectReason,
    /// Details for the log.
    pub detail: String,
}

/// A batch split into reads to store and reads refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prepared {
    /// Valid reads, normalised, with keys and TTL.
    pub accepted: Vec<StoredRead>,
    /// Refused reads.
    pub rejected: Vec<RejectedRead>,
}

impl Prepared {
    /// Stamps the accepted reads with the camera's organisation (from the registry, looked up
    /// after the CPU-only checks of [`prepare`]).
    pub fn assign_org(&mut self, org: Option<&OrgId>) {
        for r in &mut self.accepted {
            r.org = org.cloned();
        }
    }
}

/// Applies the ingestion rules to reads that parsed. `parse_failures` are reads that did not
/// parse at all (index, detail), reported as [`RejectReason::Malformed`].
pub fn prepare(
    camera: &CameraId,
    reads: Vec<(usize, PlateRead)>,
    parse_failures: Vec<(usize, String)>,
    now_ms: u64,
    policy: &IngestPolicy,
) -> Prepared {
    let mut out = Prepared {
        accepted: Vec::with_capacity(reads.len()),
        rejected: parse_failures
            .into_iter()
            .map(|(index, detail)| RejectedRead {
                index,
                read_id: None,
                reason: RejectReason::Malformed,
                detail,
            })
            .collect(),
    };
    let oldest_ms = now_ms.saturating_sub(policy.retention_secs.saturating_mul(1000));
    let newest_ms = now_ms.saturating_add(policy.max_future_skew_ms);
    let mut seen = HashSet::with_capacity(reads.len());
    for (index, read) in reads {
        let reject = |reason, detail: String| RejectedRead {
            index,
            read_id: Some(read.id.to_string()),
            reason,
            detail,
        };
        if read.c > 100 {
            out.rejected.push(reject(
                RejectReason::Malformed,
                "confidence above 100".into(),
            ));
            continue;
        }
        if read.t > newest_ms {
            out.rejected.push(reject(
                RejectReason::FutureTimestamp,
                format!(
                    "t={} is more than {} ms ahead of {now_ms}",
                    read.t, policy.max_future_skew_ms
                ),
            ));
            continue;
        }
        if read.t < oldest_ms {
            out.rejected.push(reject(
                RejectReason::Expired,
                format!(
                    "t={} is older than the retention of {} s",
                    read.t, policy.retention_secs
                ),
            ));
            continue;
        }
        let plate = match normalize_plate(&read.p) {
            Ok(p) => p,
            Err(e) => {
                out.rejected
                    .push(reject(RejectReason::InvalidPlate, e.to_string()));
                continue;
            }
        };
        if !seen.insert(read.id.clone()) {
            out.rejected.push(reject(
                RejectReason::DuplicateInBatch,
                "read id already in this batch".into(),
            ));
            continue;
        }
        out.accepted.push(StoredRead {
            camera_id: camera.clone(),
            read_id: read.id,
            t_ms: read.t,
            plate,
            plate_raw: read.p,
            confidence: read.c,
            img: read.img,
            bb: read.bb,
            received_ms: now_ms,
            expires_at: read.t / 1000 + policy.retention_secs,
            org: None,
        });
    }
    out.rejected.sort_by_key(|r| r.index);
    out
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// [`PlateReadStore`] in memory, keyed like the DynamoDB table.
#[derive(Debug, Default, Clone)]
pub struct MemoryPlateReadStore {
    /// `(camera, camera sort key)` → read.
    by_camera: Arc<Mutex<BTreeMap<(String, String), StoredRead>>>,
}

impl MemoryPlateReadStore {
    /// Number of stored reads.
    pub fn len(&self) -> usize {
        lock(&self.by_camera).len()
    }
    /// True if nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Every stored read.
    pub fn all(&self) -> Vec<StoredRead> {
        lock(&self.by_camera).values().cloned().collect()
    }
}

/// Newest-first page over reads sorted ascending by `key`, starting below `cursor`.
fn page_desc(
    mut items: Vec<(String, StoredRead)>,
    limit: u32,
    cursor: Option<&str>,
) -> Page<StoredRead> {
    items.sort_by(|a, b| b.0.cmp(&a.0));
    let mut page: Vec<(String, StoredRead)> = items
        .into_iter()
        .filter(|(k, _)| cursor.is_none_or(|c| k.as_str() < c))
        .take(limit as usize + 1)
        .collect();
    let next_cursor = if page.len() > limit as usize {
        page.truncate(limit as usize);
        page.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    Page {
        items: page.into_iter().map(|(_, r)| r).collect(),
        next_cursor,
    }
}

impl PlateReadStore for MemoryPlateReadStore {
    async fn put_reads(&self, reads: &[StoredRead]) -> Result<PutOutcome, StoreError> {
        let mut g = lock(&self.by_camera);
        for r in reads {
            g.insert((r.camera_id.to_string(), r.camera_sort_key()), r.clone());
        }
        Ok(PutOutcome {
            written: reads.len(),
            calls: reads.len().div_ceil(25) as u32,
        })
    }

    async fn reads_by_camera(
        &self,
        camera: &CameraId,
        range: TimeRange,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<StoredRead>, StoreError> {
        let (lo, hi) = (range.low_key(), range.high_key());
        let items = lock(&self.by_camera)
            .iter()
            .filter(|((c, k), _)| c == camera.as_str() && *k >= lo && *k <= hi)
            .map(|((_, k), r)| (k.clone(), r.clone()))
            .collect();
        Ok(page_desc(items, limit, cursor))
    }

    async fn reads_by_plate(
        &self,
        org: &OrgId,
        plate: &str,
        range: TimeRange,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<StoredRead>, StoreError> {
        let (lo, hi) = (range.low_key(), range.high_key());
        let items = lock(&self.by_camera)
            .values()
            .filter(|r| r.plate == plate && r.org.as_ref() == Some(org))
            .map(|r| (r.plate_sort_key(), r.clone()))
            .filter(|(k, _)| *k >= lo && *k <= hi)
            .collect();
        Ok(page_desc(items, limit, cursor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_086_400_000;

    fn read(id: &str, t: u64, p: &str) -> PlateRead {
        PlateRead {
            id: ReadId::parse(id).unwrap(),
            t,
            p: p.into(),
            c: 90,
            img: None,
            bb: None,
        }
    }

    fn cam(s: &str) -> CameraId {
        CameraId::parse(s).unwrap()
    }

    #[test]
    fn valid_reads_are_normalised_and_get_a_ttl_from_their_time() {
        let p = prepare(
            &cam("c1"),
            vec![(0, read("a", NOW - 5000, "ab-123 cd"))],
            vec![],
            NOW,
            &IngestPolicy::default(),
        );
        assert!(p.rejected.is_empty());
        let r = &p.accepted[0];
        assert_eq!(r.plate, "AB123CD");
        assert_eq!(r.plate_raw, "ab-123 cd");
        assert_eq!(r.expires_at, (NOW - 5000) / 1000 + 90 * 24 * 3600);
        assert_eq!(r.camera_sort_key(), format!("{:013}#a", NOW - 5000));
    }

    #[test]
    fn future_ancient_bad_plate_and_duplicate_reads_are_refused_and_the_rest_kept() {
        let policy = IngestPolicy {
            retention_secs: 3600,
            max_future_skew_ms: 1000,
        };
        let reads = vec![
            (0, read("ok1", NOW, "AB1")),
            (1, read("fut", NOW + 1001, "AB2")),
            (2, read("old", NOW - 3_600_001, "AB3")),
            (3, read("bad", NOW, "--")),
            (5, read("ok1", NOW, "AB1")),
            (6, read("edge", NOW + 1000, "AB4")),
        ];
        let p = prepare(
            &cam("c1"),
            reads,
            vec![(4, "missing field `t`".into())],
            NOW,
            &policy,
        );
        let ids: Vec<_> = p.accepted.iter().map(|r| r.read_id.as_str()).collect();
        assert_eq!(ids, ["ok1", "edge"]);
        let reasons: Vec<_> = p.rejected.iter().map(|r| (r.index, r.reason)).collect();
        assert_eq!(
            reasons,
            [
                (1, RejectReason::FutureTimestamp),
                (2, RejectReason::Expired),
                (3, RejectReason::InvalidPlate),
                (4, RejectReason::Malformed),
                (5, RejectReason::DuplicateInBatch),
            ]
        );
    }

    #[tokio::test]
    async fn the_memory_store_keeps_one_item_per_read_and_pages_newest_first() {
        let store = MemoryPlateReadStore::default();
        let reads: Vec<_> = (0..5)
            .map(|i| (i, read(&format!("r{i}"), NOW + i as u64, "AB1")))
            .collect();
        let mut p = prepare(
            &cam("c1"),
            reads,
            vec![],
            NOW + 10,
            &IngestPolicy::default(),
        );
        let acme = OrgId::parse("acme").unwrap();
        p.assign_org(Some(&acme));
        store.put_reads(&p.accepted).await.unwrap();
        store.put_reads(&p.accepted).await.unwrap();
        assert_eq!(store.len(), 5);
        let first = store
            .reads_by_camera(&cam("c1"), TimeRange::ALL, 2, None)
            .await
            .unwrap();
        let ids: Vec<_> = first.items.iter().map(|r| r.read_id.as_str()).collect();
        assert_eq!(ids, ["r4", "r3"]);
        let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let mut cursor = first.next_cursor;
        while let Some(c) = cursor {
            let next = store
                .reads_by_camera(&cam("c1"), TimeRange::ALL, 2, Some(&c))
                .await
                .unwrap();
            ids.extend(next.items.iter().map(|r| r.read_id.to_string()));
            cursor = next.next_cursor;
        }
        assert_eq!(ids, ["r4", "r3", "r2", "r1", "r0"]);
        let range = TimeRange {
            from_ms: NOW + 1,
            to_ms: NOW + 3,
        };
        let sightings = store
            .reads_by_plate(&acme, "AB1", range, 10, None)
            .await
            .unwrap();
        let ids: Vec<_> = sightings.items.iter().map(|r| r.read_id.as_str()).collect();
        assert_eq!(ids, ["r3", "r2", "r1"]);
        assert!(sightings.next_cursor.is_none());
        let globex = OrgId::parse("globex").unwrap();
        let none = store.reads_by_plate(&globex, "AB1", range, 10, None);
        assert!(none.await.unwrap().items.is_empty());
    }
}
