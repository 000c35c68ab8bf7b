//! The audit trail: every configuration change (accepted or refused) and every plate search,
//! who asked, in which organisation, when, what, with what outcome and how many results. Kept
//! per organisation (its key holds the organisation, so one organisation's trail is never read
//! for another), deleted after a retention TTL, readable by the organisation's admins only.

use crate::access::{Caller, OrgId, Role};
use crate::error::{DomainError, StoreError};
use crate::model::Page;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How long audit records are kept by default (seconds): one year.
pub const DEFAULT_AUDIT_RETENTION_SECS: u64 = 365 * 24 * 3600;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// `PUT /cameras/{id}/config`.
    ConfigChange,
    /// `GET /plate-reads?plate=`.
    PlateSearch,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The caller's organisation (the trail it belongs to).
    pub org: OrgId,
    /// When (Unix milliseconds).
    pub at_ms: u64,
    /// Unique id (ULID), orders records of the same millisecond.
    pub id: String,
    /// The caller's `sub`.
    pub who: String,
    /// The caller's role.
    pub role: Role,
    /// What was done.
    pub action: AuditAction,
    /// The camera (configuration) or the plate as asked (search).
    pub target: String,
    /// What was asked: the configuration document, or the search's parameters.
    pub asked: serde_json::Value,
    /// The HTTP status answered.
    pub status: u16,
    /// The error code, when refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How many results were returned (plate searches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<u32>,
    /// When the store deletes it (Unix seconds, DynamoDB TTL).
    pub expires_at: u64,
}

impl AuditRecord {
    /// A record of `action` by `caller` at `now_ms`, kept `retention_secs`.
    pub fn new(
        caller: &Caller,
        action: AuditAction,
        target: impl Into<String>,
        asked: serde_json::Value,
        now_ms: u64,
        retention_secs: u64,
    ) -> Self {
        Self {
            org: caller.org.clone(),
            at_ms: now_ms,
            id: crate::model::next_ulid().to_string(),
            who: caller.sub.clone(),
            role: caller.role,
            action,
            target: target.into(),
            asked,
            status: 0,
            error: None,
            results: None,
            expires_at: now_ms / 1000 + retention_secs,
        }
    }

    /// Sort key within the organisation's trail: `{at_ms:013}#{id}`.
    pub fn sort_key(&self) -> String {
        format!("{:013}#{}", self.at_ms, self.id)
    }
}

pub use crate::ports::AuditLog;

/// The trail as the API reads it: admins of the organisation only.
pub async fn read_trail<A: AuditLog>(
    log: &A,
    caller: &Caller,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page<AuditRecord>, DomainError> {
    caller.require(Role::Admin)?;
    Ok(log.list(&caller.org, limit, cursor).await?)
}

/// [`AuditLog`] in memory, keyed like the table.
#[derive(Debug, Default, Clone)]
pub struct MemoryAuditLog {
    /// `(org, sort key)` → record.
    records: Arc<Mutex<BTreeMap<(String, String), AuditRecord>>>,
}

impl MemoryAuditLog {
    /// Every record.
    pub fn all(&self) -> Vec<AuditRecord> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

impl AuditLog for MemoryAuditLog {
    async fn append(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((record.org.to_string(), record.sort_key()), record.clone());
        Ok(())
    }

    async fn list(
        &self,
        org: &OrgId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<AuditRecord>, StoreError> {
        let g = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut items: Vec<(String, AuditRecord)> = g
            .iter()
            .filter(|((o, k), _)| o == org.as_str() && cursor.is_none_or(|c| k.as_str() < c))
            .map(|((_, k), r)| (k.clone(), r.clone()))
            .collect();
        items.reverse();
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Ok(Page {
            next_cursor: if more {
                items.last().map(|(k, _)| k.clone())
            } else {
                None
            },
            items: items.into_iter().map(|(_, r)| r).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(org: &str, role: Role) -> Caller {
        Caller {
            sub: format!("{org}-{}", role.as_str()),
            org: OrgId::parse(org).unwrap(),
            role,
        }
    }

    /// `caller`'s record of `action` on `target` at `at_ms`, kept a minute, appended to `log`.
    async fn append(
        log: &MemoryAuditLog,
        caller: &Caller,
        action: AuditAction,
        target: String,
        at_ms: u64,
    ) {
        let r = AuditRecord::new(caller, action, target, serde_json::json!({}), at_ms, 60);
        log.append(&r).await.unwrap();
    }

    #[tokio::test]
    async fn the_trail_is_read_by_its_organisations_admins_only_newest_first() {
        let log = MemoryAuditLog::default();
        let ada = caller("acme", Role::Admin);
        for i in 0..3 {
            append(
                &log,
                &ada,
                AuditAction::PlateSearch,
                format!("AB{i}"),
                1000 + i,
            )
            .await;
        }
        let gil = caller("globex", Role::Admin);
        append(
            &log,
            &gil,
            AuditAction::ConfigChange,
            "cam-101".into(),
            1000,
        )
        .await;
        let p = read_trail(&log, &ada, 2, None).await.unwrap();
        let targets: Vec<_> = p.items.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["AB2", "AB1"]);
        let rest = read_trail(&log, &ada, 2, p.next_cursor.as_deref())
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 1);
        assert!(rest.next_cursor.is_none());
        let g = read_trail(&log, &gil, 10, None).await.unwrap();
        assert_eq!(g.items.len(), 1, "globex sees its own only");
        assert!(matches!(
            read_trail(&log, &caller("acme", Role::Operator), 10, None).await,
            Err(DomainError::Forbidden(Role::Admin))
        ));
    }

    /// Two changes answered in the same millisecond (a change and its refusal) list in the
    /// order they were made, the later first.
    #[tokio::test]
    async fn records_of_one_millisecond_list_in_the_order_they_were_made() {
        let log = MemoryAuditLog::default();
        let ada = caller("acme", Role::Admin);
        for i in 0..50 {
            append(
                &log,
                &ada,
                AuditAction::ConfigChange,
                format!("change-{i:02}"),
                1000,
            )
            .await;
        }
        let p = read_trail(&log, &ada, 100, None).await.unwrap();
        let targets: Vec<_> = p.items.iter().map(|r| r.target.clone()).collect();
        let newest_first: Vec<_> = (0..50).rev().map(|i| format!("change-{i:02}")).collect();
        assert_eq!(targets, newest_first);
    }
}
