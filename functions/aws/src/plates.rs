//! DynamoDB adapter of [`PlateReadStore`]: reads written with `BatchWriteItem` (25 per call,
//! unprocessed items retried with back-off and never dropped silently) and queried by key only.
//!
//! Items (keys from `anpr_core`'s crate docs): `PK=READS#{camera}#{shard}`,
//! `SK={t_ms:013}#{read}`, `GSI1PK=PLATE#{org}#{plate}`, `GSI1SK={t_ms:013}#{camera}#{read}`
//! (no index keys for a read of a camera without organisation: the index is sparse), the
//! table's TTL attribute ([`TTL_ATTR`]) set to the read's `expires_at`, and the read's fields.
//! The key is derived from the read, so writing a read twice leaves one item.
//!
//! # Shards
//! A camera's reads are spread over [`READ_SHARDS`] partition keys (`{shard}` is one hex digit,
//! [`read_shard`] of the sort key), so a camera draining a backlog writes to 16 partitions,
//! not one: each stays under DynamoDB's 1,000 write units/s per partition while the camera's
//! drain runs at up to 16 times that (the arithmetic is in `docs/capacity.md`). The reads of a
//! camera are read back with one query per shard, merged newest first; the cursor is the sort
//! key of the last read returned.
//!
//! # Pacing
//! A store makes at most one `BatchWriteItem` call per [`DEFAULT_MIN_CALL_INTERVAL`] (25 items
//! per 25 ms: 1,000 reads/s per Lambda execution environment, which handles one invocation at
//! a time), so the queue's capped consumer concurrency bounds the write rate of the whole fleet
//! and of any one camera.

use crate::dynamo::{decode_cursor, encode_cursor};
use crate::errors::store_backend as backend;
use crate::schema::{PK, SK, TTL_ATTR};
use anpr_core::model::Page;
use anpr_core::plates::{PlateReadStore, PutOutcome, StoredRead, TimeRange};
use anpr_core::{OrgId, StoreError};
use anpr_protocol::CameraId;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

type Item = HashMap<String, AttributeValue>;

/// Items per `BatchWriteItem` call (the DynamoDB maximum).
pub const BATCH_WRITE_MAX: usize = 25;

/// Partition keys a camera's reads are spread over.
pub const READ_SHARDS: u32 = 16;

/// Least time between two `BatchWriteItem` calls of one store (see "Pacing" above).
pub const DEFAULT_MIN_CALL_INTERVAL: Duration = Duration::from_millis(25);

/// Retry schedule for unprocessed items: attempts after the first call and the first delay
/// (doubled each time, capped at [`RetryPolicy::max_delay`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries of a call's unprocessed items before the call fails (retryably).
    pub max_retries: u32,
    /// First back-off delay.
    pub first_delay: Duration,
    /// Largest back-off delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 8,
            first_delay: Duration::from_millis(25),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// Unprocessed items remained after every retry: the call failed, nothing was dropped silently.
#[derive(Debug, thiserror::Error)]
#[error("{remaining} plate read items still unprocessed after {retries} retries")]
pub struct UnprocessedItems {
    /// Items not written.
    pub remaining: usize,
    /// Retries made.
    pub retries: u32,
}

#[derive(Serialize, Deserialize)]
struct ReadItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK", default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(rename = "GSI1SK", default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    #[serde(flatten)]
    read: StoredRead,
}

/// Prefix of a camera's reads' partition keys (`READS#{camera}`, the shard follows).
pub fn camera_reads_pk(camera: &CameraId) -> String {
    format!("READS#{camera}")
}

/// The shard (`0..READ_SHARDS`) of a read with camera sort key `sk`: FNV-1a of the key, so
/// the same read always lands in the same shard (a re-delivered read overwrites itself).
pub fn read_shard(sk: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in sk.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % READ_SHARDS
}

/// Partition key of one shard of a camera's reads: `READS#{camera}#{shard:x}`.
pub fn camera_shard_pk(camera: &CameraId, shard: u32) -> String {
    format!("READS#{camera}#{shard:x}")
}

/// Partition key of a read (its camera's shard).
pub fn read_pk(r: &StoredRead) -> String {
    camera_shard_pk(&r.camera_id, read_shard(&r.camera_sort_key()))
}

/// GSI1 partition key of a plate's sightings in one organisation.
pub fn plate_pk(org: &OrgId, plate: &str) -> String {
    format!("PLATE#{org}#{plate}")
}

/// The item of a read, with its keys.
pub fn to_item(r: &StoredRead) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(ReadItem {
        pk: read_pk(r),
        sk: r.camera_sort_key(),
        gsi1pk: r.org.as_ref().map(|o| plate_pk(o, &r.plate)),
        gsi1sk: r.org.as_ref().map(|_| r.plate_sort_key()),
        read: r.clone(),
    })
    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // The table's TTL attribute, whatever its name: the read is deleted after retention.
    item.insert(
        TTL_ATTR.to_owned(),
        AttributeValue::N(r.expires_at.to_string()),
    );
    Ok(item)
}

fn from_item(item: Item) -> Result<StoredRead, StoreError> {
    serde_dynamo::from_item::<_, ReadItem>(item)
        .map(|i| i.read)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// [`PlateReadStore`] on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoPlateReadStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retry: RetryPolicy,
    calls: Arc<AtomicU64>,
    min_call_interval: Duration,
    next_call: Arc<tokio::sync::Mutex<Option<tokio::time::Instant>>>,
}

impl DynamoPlateReadStore {
    /// Wraps a client built at cold start.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retry: RetryPolicy::default(),
            calls: Arc::new(AtomicU64::new(0)),
            min_call_interval: DEFAULT_MIN_CALL_INTERVAL,
            next_call: Arc::default(),
        }
    }

    /// Replaces the least time between two `BatchWriteItem` calls (zero: no pacing).
    pub fn with_min_call_interval(mut self, interval: Duration) -> Self {
        self.min_call_interval = interval;
        self
    }

    /// Waits for this store's next `BatchWriteItem` slot.
    async fn paced(&self) {
        if self.min_call_interval.is_zero() {
            return;
        }
        let mut next = self.next_call.lock().await;
        if let Some(at) = *next {
            tokio::time::sleep_until(at).await;
        }
        *next = Some(tokio::time::Instant::now() + self.min_call_interval);
    }

    /// Replaces the retry schedule of unprocessed items.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// DynamoDB calls made by this store (and its clones) so far, retries included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Writes one chunk of at most 25 requests, retrying unprocessed items with back-off.
    async fn write_chunk(&self, mut pending: Vec<WriteRequest>) -> Result<u32, StoreError> {
        let mut calls = 0u32;
        let mut delay = self.retry.first_delay;
        let mut retries = 0u32;
        loop {
            self.paced().await;
            calls += 1;
            self.calls.fetch_add(1, Ordering::Relaxed);
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(backend)?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(calls);
            }
            if retries >= self.retry.max_retries {
                return Err(StoreError::Backend {
                    retryable: true,
                    source: Box::new(UnprocessedItems {
                        remaining: pending.len(),
                        retries,
                    }),
                });
            }
            tracing::warn!(
                unprocessed = pending.len(),
                retry = retries + 1,
                "BatchWriteItem left items unprocessed; retrying"
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.retry.max_delay);
            retries += 1;
        }
    }
}

impl PlateReadStore for DynamoPlateReadStore {
    async fn put_reads(&self, reads: &[StoredRead]) -> Result<PutOutcome, StoreError> {
        // One item per key: BatchWriteItem refuses a call with the same key twice.
        let mut by_key: HashMap<(String, String), &StoredRead> = HashMap::new();
        for r in reads {
            by_key.insert((r.camera_id.to_string(), r.camera_sort_key()), r);
        }
        let mut requests = Vec::with_capacity(by_key.len());
        for r in by_key.into_values() {
            let put = PutRequest::builder()
                .set_item(Some(to_item(r)?))
                .build()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let written = requests.len();
        let mut calls = 0;
        let mut rest = requests;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(BATCH_WRITE_MAX));
            calls += self.write_chunk(rest).await?;
            rest = tail;
        }
        Ok(PutOutcome { written, calls })
    }

    async fn reads_by_camera(
        &self,
        camera: &CameraId,
        range: TimeRange,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<StoredRead>, StoreError> {
        // The cursor is the sort key of the last read returned; the next page is what sorts
        // below it, in every shard: each shard is queried up to it (inclusive, so the range
        // stays a BETWEEN) for one more than a page, the read at the cursor itself dropped.
        let base = camera_reads_pk(camera);
        let after = match cursor {
            None => None,
            Some(c) => {
                let key = decode_cursor(c, &[PK, SK], &[(PK, &base)])?;
                match key.get(SK).and_then(|v| v.as_s().ok()) {
                    Some(sk) => Some(sk.clone()),
                    None => return Err(StoreError::BadCursor),
                }
            }
        };
        let lo = range.low_key();
        let hi = match &after {
            Some(sk) if *sk < range.high_key() => sk.clone(),
            _ => range.high_key(),
        };
        if hi < lo {
            // A cursor from below the range (the range changed between pages): nothing left.
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        let limit = limit.max(1);
        let per_shard = i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX);
        let mut queries = tokio::task::JoinSet::new();
        for shard in 0..READ_SHARDS {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(
                    ":pk",
                    AttributeValue::S(camera_shard_pk(camera, shard)),
                )
                .expression_attribute_values(":lo", AttributeValue::S(lo.clone()))
                .expression_attribute_values(":hi", AttributeValue::S(hi.clone()))
                .scan_index_forward(false)
                .limit(per_shard);
            self.calls.fetch_add(1, Ordering::Relaxed);
            queries.spawn(query.send());
        }
        let mut reads = Vec::new();
        let mut more = false;
        while let Some(done) = queries.join_next().await {
            let out = done
                .map_err(|e| StoreError::Backend {
                    retryable: true,
                    source: Box::new(e),
                })?
                .map_err(backend)?;
            more |= out.last_evaluated_key.is_some();
            for item in out.items.unwrap_or_default() {
                let read = from_item(item)?;
                let sk = read.camera_sort_key();
                if after.as_ref() != Some(&sk) {
                    reads.push((sk, read));
                }
            }
        }
        reads.sort_by(|a, b| b.0.cmp(&a.0));
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        more |= reads.len() > limit;
        reads.truncate(limit);
        let next_cursor = match reads.last() {
            Some((sk, _)) if more => {
                let key: Item = [
                    (PK.to_owned(), AttributeValue::S(base)),
                    (SK.to_owned(), AttributeValue::S(sk.clone())),
                ]
                .into_iter()
                .collect();
                encode_cursor(&key)
            }
            _ => None,
        };
        Ok(Page {
            items: reads.into_iter().map(|(_, r)| r).collect(),
            next_cursor,
        })
    }

    async fn reads_by_plate(
        &self,
        org: &OrgId,
        plate: &str,
        range: TimeRange,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<StoredRead>, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        crate::dynamo::query_page(
            &self.client,
            &self.table,
            crate::dynamo::PartitionPage {
                on_index: true,
                pk: plate_pk(org, plate),
                forward: false,
                limit,
                cursor,
                sort_between: Some((range.low_key(), range.high_key())),
            },
            from_item,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shard_of_a_read_is_fixed_by_its_key_and_spreads_a_backlog_evenly() {
        // FNV-1a 32-bit of "a" is 0xe40c292c: the shard is its low hex digit.
        assert_eq!(read_shard("a"), 0xe40c_292c % READ_SHARDS);
        assert_eq!(
            read_shard("1764086400123#r1"),
            read_shard("1764086400123#r1")
        );
        // A backlog of 1,600 reads, 4 per second: every shard gets 100 ± 35.
        let mut per = [0u32; READ_SHARDS as usize];
        for i in 0..1600u64 {
            let sk = format!("{:013}#r{i}", 1_764_086_400_000 + i / 4 * 1000);
            per[read_shard(&sk) as usize] += 1;
        }
        assert!(per.iter().all(|n| (65..=135).contains(n)), "{per:?}");
        let cam = CameraId::parse("cam-1").unwrap();
        assert_eq!(camera_shard_pk(&cam, 10), "READS#cam-1#a");
    }
}
