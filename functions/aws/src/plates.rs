//! DynamoDB adapter of [`PlateReadStore`]: reads written with `BatchWriteItem` (25 per call,
//! unprocessed items retried with back-off and never dropped silently) and queried by key only.
//!
//! Items (keys from `anpr_core`'s crate docs): `PK=READS#{camera}`, `SK={t_ms:013}#{read}`,
//! `GSI1PK=PLATE#{org}#{plate}`, `GSI1SK={t_ms:013}#{camera}#{read}` (no index keys for a
//! read of a camera without organisation: the index is sparse), the table's TTL attribute
//! ([`TTL_ATTR`]) set to the read's `expires_at`, and the read's fields. The key is derived
//! from the read, so writing a read twice leaves one item.

use crate::dynamo::{decode_cursor, encode_cursor};
use crate::errors::store_backend as backend;
use crate::schema::{GSI1, GSI1PK, GSI1SK, PK, SK, TTL_ATTR};
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

/// Partition key of a camera's reads.
pub fn camera_reads_pk(camera: &CameraId) -> String {
    format!("READS#{camera}")
}

/// GSI1 partition key of a plate's sightings in one organisation.
pub fn plate_pk(org: &OrgId, plate: &str) -> String {
    format!("PLATE#{org}#{plate}")
}

/// The item of a read, with its keys.
pub fn to_item(r: &StoredRead) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(ReadItem {
        pk: camera_reads_pk(&r.camera_id),
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
}

impl DynamoPlateReadStore {
    /// Wraps a client built at cold start.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retry: RetryPolicy::default(),
            calls: Arc::new(AtomicU64::new(0)),
        }
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

    async fn query_page(
        &self,
        index: Option<&str>,
        (pk_attr, pk): (&str, String),
        sk_attr: &str,
        range: TimeRange,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<StoredRead>, StoreError> {
        let start = match (cursor, index) {
            (None, _) => None,
            (Some(c), None) => Some(decode_cursor(c, &[PK, SK], &[(PK, &pk)])?),
            (Some(c), Some(_)) => Some(decode_cursor(
                c,
                &[PK, SK, GSI1PK, GSI1SK],
                &[(GSI1PK, &pk)],
            )?),
        };
        self.calls.fetch_add(1, Ordering::Relaxed);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(str::to_owned))
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
            .expression_attribute_names("#pk", pk_attr)
            .expression_attribute_names("#sk", sk_attr)
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .expression_attribute_values(":lo", AttributeValue::S(range.low_key()))
            .expression_attribute_values(":hi", AttributeValue::S(range.high_key()))
            .scan_index_forward(false)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(backend)?;
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            next_cursor: out.last_evaluated_key.as_ref().and_then(encode_cursor),
        })
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
        self.query_page(
            None,
            (PK, camera_reads_pk(camera)),
            SK,
            range,
            limit,
            cursor,
        )
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
        self.query_page(
            Some(GSI1),
            (GSI1PK, plate_pk(org, plate)),
            GSI1SK,
            range,
            limit,
            cursor,
        )
        .await
    }
}
