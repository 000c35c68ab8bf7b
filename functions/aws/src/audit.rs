//! DynamoDB adapter of [`AuditLog`]: items `PK=AUDIT#{org}`, `SK={at_ms:013}#{id}`, the
//! table's TTL attribute set to the record's `expires_at`. One organisation's trail is one
//! partition: a `Query` on it never reads another organisation's records.

use crate::errors::store_backend as backend;
use crate::schema::TTL_ATTR;
use anpr_core::audit::{AuditLog, AuditRecord};
use anpr_core::model::Page;
use anpr_core::{OrgId, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct AuditItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(flatten)]
    record: AuditRecord,
}

/// Partition key of an organisation's trail.
pub fn audit_pk(org: &OrgId) -> String {
    format!("AUDIT#{org}")
}

/// [`AuditLog`] on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoAuditLog {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention_secs: u64,
}

impl DynamoAuditLog {
    /// Wraps a client built at cold start; records are kept
    /// [`anpr_core::audit::DEFAULT_AUDIT_RETENTION_SECS`] unless [`Self::with_retention`].
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retention_secs: anpr_core::audit::DEFAULT_AUDIT_RETENTION_SECS,
        }
    }

    /// Keeps records `secs` (the DynamoDB TTL of each): `ANPR_AUDIT_RETENTION_SECS`,
    /// [`crate::FunctionConfig::audit_retention_secs`].
    pub fn with_retention(mut self, secs: u64) -> Self {
        self.retention_secs = secs;
        self
    }
}

impl AuditLog for DynamoAuditLog {
    fn retention_secs(&self) -> u64 {
        self.retention_secs
    }

    async fn append(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let mut item: std::collections::HashMap<String, AttributeValue> =
            serde_dynamo::to_item(AuditItem {
                pk: audit_pk(&record.org),
                sk: record.sort_key(),
                record: record.clone(),
            })
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        item.insert(
            TTL_ATTR.to_owned(),
            AttributeValue::N(record.expires_at.to_string()),
        );
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list(
        &self,
        org: &OrgId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<AuditRecord>, StoreError> {
        let pk = audit_pk(org);
        crate::dynamo::query_page(
            &self.client,
            &self.table,
            crate::dynamo::PartitionPage {
                on_index: false,
                pk,
                forward: false,
                limit,
                cursor,
                sort_between: None,
            },
            |i| {
                serde_dynamo::from_item::<_, AuditItem>(i)
                    .map(|a| a.record)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            },
        )
        .await
    }
}
