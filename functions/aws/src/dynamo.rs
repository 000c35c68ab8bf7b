//! DynamoDB adapters: the request store and the camera registry. Items are mapped with
//! serde_dynamo; keys follow the design in `anpr_core`'s crate docs.

use crate::errors::store_backend as backend;
use crate::schema::{
    GSI1, GSI1PK, GSI1SK, GSI2, GSI2PK, GSI2SK, OPEN_PARTITION, PK, SK, TTL_ATTR, open_sort_key,
};
use anpr_core::OrgId;
use anpr_core::StoreError;
use anpr_core::model::{Camera, CameraPresence, FileRequestRecord, Page};
use anpr_core::ports::{CameraRegistry, ConnectionClaim, Created, IdempotencyKey, RequestStore};
use anpr_protocol::{CameraId, RequestId};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

fn corrupt(e: serde_dynamo::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// Key of a request item.
pub fn request_key(id: &RequestId) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(format!("REQ#{id}"))),
        (SK.to_owned(), AttributeValue::S("REQ".to_owned())),
    ])
}

/// Key of a camera registry item.
pub fn camera_key(id: &CameraId) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(format!("CAM#{id}"))),
        (SK.to_owned(), AttributeValue::S("CAM".to_owned())),
    ])
}

#[derive(Serialize, Deserialize)]
struct RequestItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK")]
    gsi1pk: String,
    #[serde(rename = "GSI1SK")]
    gsi1sk: String,
    /// Open-requests index keys, only while the request is not terminal (a sparse index).
    #[serde(rename = "GSI2PK", default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(rename = "GSI2SK", default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    #[serde(rename = "ttl")]
    ttl: u64,
    #[serde(flatten)]
    record: FileRequestRecord,
}

fn to_item(r: &FileRequestRecord) -> Result<Item, StoreError> {
    let open = !r.state.is_terminal();
    serde_dynamo::to_item(RequestItem {
        pk: format!("REQ#{}", r.request_id),
        sk: "REQ".into(),
        gsi1pk: format!("CAMREQ#{}", r.camera_id),
        gsi1sk: r.request_id.to_string(),
        gsi2pk: open.then(|| OPEN_PARTITION.to_owned()),
        gsi2sk: open.then(|| open_sort_key(r.expires_at, r.request_id.as_str())),
        ttl: r.retain_until,
        record: r.clone(),
    })
    .map_err(corrupt)
}

fn from_item(item: Item) -> Result<FileRequestRecord, StoreError> {
    serde_dynamo::from_item::<_, RequestItem>(item)
        .map(|i| i.record)
        .map_err(corrupt)
}

/// Encodes a `LastEvaluatedKey` of string attributes as an opaque cursor.
pub fn encode_cursor(key: &Item) -> Option<String> {
    let flat: HashMap<&str, &str> = key
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.as_str(), s.as_str())))
        .collect();
    let json = serde_json::to_vec(&flat).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
}

/// Decodes a cursor into an `ExclusiveStartKey`, accepting only the `expected` attributes and
/// requiring `pinned` ones to hold the given values (so a cursor cannot leave its query).
pub fn decode_cursor(
    cursor: &str,
    expected: &[&str],
    pinned: &[(&str, &str)],
) -> Result<Item, StoreError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::BadCursor)?;
    let flat: HashMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
    if flat.len() != expected.len() || !expected.iter().all(|k| flat.contains_key(*k)) {
        return Err(StoreError::BadCursor);
    }
    if !pinned
        .iter()
        .all(|(k, v)| flat.get(*k).is_some_and(|x| x == v))
    {
        return Err(StoreError::BadCursor);
    }
    Ok(flat
        .into_iter()
        .map(|(k, v)| (k, AttributeValue::S(v)))
        .collect())
}

/// One page of one partition's items, for [`query_page`].
pub(crate) struct PartitionPage<'a> {
    /// On [`GSI1`] (`GSI1PK` = `pk`) rather than the table (`PK` = `pk`).
    pub on_index: bool,
    /// The partition key's value.
    pub pk: String,
    /// Lowest sort key first (else highest first).
    pub forward: bool,
    /// Most items.
    pub limit: u32,
    /// The previous page's cursor, which must be a key of this same partition.
    pub cursor: Option<&'a str>,
    /// Only sort keys between these two, inclusive (`SK`, or `GSI1SK` on the index).
    pub sort_between: Option<(String, String)>,
}

/// One page of a `Query` of one partition ([`PartitionPage`]), each item mapped by `decode`.
/// The listings of requests, cameras and the audit trail and the plate search share it.
pub(crate) async fn query_page<T>(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    q: PartitionPage<'_>,
    decode: impl Fn(Item) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError> {
    let PartitionPage {
        on_index,
        pk,
        forward,
        limit,
        cursor,
        sort_between,
    } = q;
    let (pk_attr, sk_attr, keys): (&str, &str, &[&str]) = if on_index {
        (GSI1PK, GSI1SK, &[PK, SK, GSI1PK, GSI1SK])
    } else {
        (PK, SK, &[PK, SK])
    };
    let start = cursor
        .map(|c| decode_cursor(c, keys, &[(pk_attr, &pk)]))
        .transpose()?;
    let query = client
        .query()
        .table_name(table)
        .set_index_name(on_index.then(|| GSI1.to_owned()))
        .expression_attribute_names("#pk", pk_attr)
        .expression_attribute_values(":pk", AttributeValue::S(pk));
    let query = match sort_between {
        None => query.key_condition_expression("#pk = :pk"),
        Some((lo, hi)) => query
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
            .expression_attribute_names("#sk", sk_attr)
            .expression_attribute_values(":lo", AttributeValue::S(lo))
            .expression_attribute_values(":hi", AttributeValue::S(hi)),
    };
    let out = query
        .scan_index_forward(forward)
        .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
        .set_exclusive_start_key(start)
        .send()
        .await
        .map_err(backend)?;
    let items = out
        .items
        .unwrap_or_default()
        .into_iter()
        .map(decode)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page {
        items,
        next_cursor: out.last_evaluated_key.as_ref().and_then(encode_cursor),
    })
}

/// [`RequestStore`] on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoRequestStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoRequestStore {
    /// Wraps a client built at cold start.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get_key(&self, scoped_key: &str) -> Result<Option<(RequestId, String)>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(format!("IDEM#{scoped_key}")))
            .key(SK, AttributeValue::S("IDEM".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let id = item
            .get("request_id")
            .and_then(|v| v.as_s().ok())
            .and_then(|s| RequestId::parse(s).ok())
            .ok_or_else(|| StoreError::Corrupt("idempotency item without request_id".into()))?;
        let fp = item
            .get("fingerprint")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        Ok(Some((id, fp)))
    }
}

impl RequestStore for DynamoRequestStore {
    async fn create(
        &self,
        record: &FileRequestRecord,
        key: Option<&IdempotencyKey>,
    ) -> Result<Created, StoreError> {
        let item = to_item(record)?;
        let put = |item: Item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(PK)")
                .build()
                .expect("table and item are set")
        };
        let Some(k) = key else {
            return match self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(PK)")
                .send()
                .await
            {
                Ok(_) => Ok(Created::New),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    Err(StoreError::Conflict)
                }
                Err(e) => Err(backend(e)),
            };
        };
        let idem: Item = HashMap::from([
            (
                PK.into(),
                AttributeValue::S(format!("IDEM#{}", k.scoped_key)),
            ),
            (SK.into(), AttributeValue::S("IDEM".into())),
            (
                "request_id".into(),
                AttributeValue::S(record.request_id.to_string()),
            ),
            (
                "fingerprint".into(),
                AttributeValue::S(k.fingerprint.clone()),
            ),
            (TTL_ATTR.into(), AttributeValue::N(k.expires_at.to_string())),
        ]);
        let res = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put(item)).build())
            .transact_items(TransactWriteItem::builder().put(put(idem)).build())
            .send()
            .await;
        match res {
            Ok(_) => Ok(Created::New),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_transaction_canceled_exception()) =>
            {
                // The key item exists (the request id is fresh, so it is the key's condition
                // that failed): report the earlier request.
                match self.get_key(&k.scoped_key).await? {
                    Some((request_id, fingerprint)) => Ok(Created::Existing {
                        request_id,
                        fingerprint,
                    }),
                    None => Err(StoreError::Conflict),
                }
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn get(&self, id: &RequestId) -> Result<Option<FileRequestRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(request_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        out.item.map(from_item).transpose()
    }

    async fn replace(
        &self,
        record: &FileRequestRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)?))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", AttributeValue::N(expected_version.to_string()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn open_past_expiry(
        &self,
        now: u64,
        limit: u32,
    ) -> Result<Vec<FileRequestRecord>, StoreError> {
        // Sort keys below `{now}#` are those of requests expiring before `now`.
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI2)
            .key_condition_expression("#pk = :pk AND #sk < :sk")
            .expression_attribute_names("#pk", GSI2PK)
            .expression_attribute_names("#sk", GSI2SK)
            .expression_attribute_values(":pk", AttributeValue::S(OPEN_PARTITION.to_owned()))
            .expression_attribute_values(":sk", AttributeValue::S(open_sort_key(now, "")))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(backend)?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn list_by_camera(
        &self,
        camera: &CameraId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<FileRequestRecord>, StoreError> {
        let pk = format!("CAMREQ#{camera}");
        query_page(
            &self.client,
            &self.table,
            PartitionPage {
                on_index: true,
                pk,
                forward: false,
                limit,
                cursor,
                sort_between: None,
            },
            from_item,
        )
        .await
    }

    async fn find_key(&self, scoped_key: &str) -> Result<Option<(RequestId, String)>, StoreError> {
        self.get_key(scoped_key).await
    }

    /// One `Query` of the camera's requests (index [`GSI1`], newest first) counting only the
    /// open ones (`Select=COUNT`, filtered on the open-requests index key, which only open
    /// requests carry, and on `expires_at`), page after page (1 MB each) until the end of
    /// the camera's history or `enough`: no open request is missed however many finished
    /// ones are newer.
    async fn count_open(
        &self,
        camera: &CameraId,
        now: u64,
        enough: u32,
    ) -> Result<u32, StoreError> {
        let mut open = 0u32;
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI1)
                .key_condition_expression("#pk = :pk")
                .filter_expression("attribute_exists(#open) AND #exp > :now")
                .expression_attribute_names("#pk", GSI1PK)
                .expression_attribute_names("#open", GSI2PK)
                .expression_attribute_names("#exp", "expires_at")
                .expression_attribute_values(":pk", AttributeValue::S(format!("CAMREQ#{camera}")))
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .scan_index_forward(false)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            open = open.saturating_add(u32::try_from(out.count).unwrap_or(0));
            match out.last_evaluated_key {
                Some(k) if open < enough => start = Some(k),
                _ => return Ok(open),
            }
        }
    }
}

/// [`CameraRegistry`] on DynamoDB (items written by provisioning).
#[derive(Debug, Clone)]
pub struct DynamoCameraRegistry {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

#[derive(Serialize, Deserialize)]
struct CameraItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    /// `ORGCAM#{org}`: the organisation's cameras (`GET /cameras`); none without one.
    #[serde(rename = "GSI1PK", default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(rename = "GSI1SK", default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    #[serde(flatten)]
    camera: Camera,
}

/// The attribute of a camera registry item holding its presence ([`Camera::presence`]).
pub const PRESENCE_ATTR: &str = "presence";

fn org_cameras_key(org: &OrgId) -> String {
    format!("ORGCAM#{org}")
}

impl DynamoCameraRegistry {
    /// Wraps a client built at cold start.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Registers a camera (provisioning, tests, local stack).
    pub async fn register(&self, camera: &Camera) -> Result<(), StoreError> {
        let item = serde_dynamo::to_item(CameraItem {
            pk: format!("CAM#{}", camera.camera_id),
            sk: "CAM".into(),
            gsi1pk: camera.org.as_ref().map(org_cameras_key),
            gsi1sk: camera.org.as_ref().map(|_| camera.camera_id.to_string()),
            camera: camera.clone(),
        })
        .map_err(corrupt)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// Attribute of a camera registry item: when its connection settings last changed (Unix
/// seconds), written only by [`CameraRegistry::claim_connection_change`].
pub const CONNECTION_CHANGED_AT: &str = "connection_changed_at";

impl CameraRegistry for DynamoCameraRegistry {
    /// One conditional `UpdateItem` on the registry item (`SET` the time if there is none or
    /// it is at least `min_interval` old); on refusal one `GetItem` reads the time to name it.
    async fn claim_connection_change(
        &self,
        id: &CameraId,
        now: u64,
        min_interval: u64,
    ) -> Result<ConnectionClaim, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(camera_key(id)))
            .update_expression("SET #t = :now")
            .condition_expression(
                "attribute_exists(#pk) AND (attribute_not_exists(#t) OR #t <= :cutoff)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#t", CONNECTION_CHANGED_AT)
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(
                ":cutoff",
                AttributeValue::N(now.saturating_sub(min_interval).to_string()),
            )
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld)
            .send()
            .await;
        let number = |item: Option<&Item>| {
            item.and_then(|i| i.get(CONNECTION_CHANGED_AT))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u64>().ok())
        };
        match res {
            Ok(out) => Ok(ConnectionClaim::Claimed {
                previous: number(out.attributes.as_ref()),
            }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                let out = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(camera_key(id)))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(backend)?;
                match number(out.item.as_ref()) {
                    Some(last) => Ok(ConnectionClaim::TooSoon { last }),
                    // No item (the caller read it a moment ago): it is gone.
                    None => Err(StoreError::Conflict),
                }
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn release_connection_change(
        &self,
        id: &CameraId,
        now: u64,
        previous: Option<u64>,
    ) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(camera_key(id)))
            .condition_expression("#t = :now")
            .expression_attribute_names("#t", CONNECTION_CHANGED_AT)
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()));
        let req = match previous {
            Some(p) => req
                .update_expression("SET #t = :prev")
                .expression_attribute_values(":prev", AttributeValue::N(p.to_string())),
            None => req.update_expression("REMOVE #t"),
        };
        match req.send().await {
            Ok(_) => Ok(()),
            // Another claim replaced it since: that one stands.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(backend(e)),
        }
    }

    /// One `Query` of index [`GSI1`] under `ORGCAM#{org}`, in camera id order.
    async fn list_cameras(
        &self,
        org: &OrgId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Camera>, StoreError> {
        let pk = org_cameras_key(org);
        query_page(
            &self.client,
            &self.table,
            PartitionPage {
                on_index: true,
                pk,
                forward: true,
                limit,
                cursor,
                sort_between: None,
            },
            |i| {
                serde_dynamo::from_item::<_, CameraItem>(i)
                    .map(|c| c.camera)
                    .map_err(corrupt)
            },
        )
        .await
    }

    /// One conditional `UpdateItem`: the presence is set only on a registered camera whose
    /// recorded presence it supersedes (a higher version; or the same version's disconnect
    /// after its connect). A refused condition is a stale event: `None`.
    async fn record_presence(
        &self,
        id: &CameraId,
        presence: CameraPresence,
    ) -> Result<Option<Camera>, StoreError> {
        let value = serde_dynamo::to_attribute_value(presence).map_err(corrupt)?;
        let mut condition =
            "attribute_exists(#pk) AND (attribute_not_exists(#pr) OR #pr.#ver < :ver".to_owned();
        if !presence.online {
            condition.push_str(" OR (#pr.#ver = :ver AND #pr.#on = :true)");
        }
        condition.push(')');
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(camera_key(id)))
            .update_expression("SET #pr = :p")
            .condition_expression(condition)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#pr", PRESENCE_ATTR)
            .expression_attribute_names("#ver", "version")
            .expression_attribute_values(":p", value)
            .expression_attribute_values(":ver", AttributeValue::N(presence.version.to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        if !presence.online {
            req = req
                .expression_attribute_names("#on", "online")
                .expression_attribute_values(":true", AttributeValue::Bool(true));
        }
        match req.send().await {
            Ok(out) => out
                .attributes
                .map(|i| {
                    serde_dynamo::from_item::<_, CameraItem>(i)
                        .map(|c| c.camera)
                        .map_err(corrupt)
                })
                .transpose(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn get_camera(&self, id: &CameraId) -> Result<Option<Camera>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(camera_key(id)))
            .send()
            .await
            .map_err(backend)?;
        out.item
            .map(|i| {
                serde_dynamo::from_item::<_, CameraItem>(i)
                    .map(|c| c.camera)
                    .map_err(corrupt)
            })
            .transpose()
    }
}
