//! The audit trail's route and the one helper the audited routes record through.
//! - `GET /audit?limit=&cursor=` → the caller's organisation's records, newest first; admins
//!   only.
//!
//! Configuration changes (accepted or refused) and plate searches are recorded by their
//! routes with [`record`]. A search whose record cannot be written is answered `503` without
//! its results; a change (already written to the shadow) too, telling the caller its record
//! is missing.

use crate::error::ApiError;
use crate::identity::Authenticated;
use crate::routes::parse_page_query;
use anpr_core::Caller;
use anpr_core::audit::{AuditAction, AuditLog, AuditRecord, read_trail};
use anpr_core::requests::page_size;
use anpr_core::{DomainError, StoreError};
use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;

/// The audit route over a log.
pub fn routes<A: AuditLog + 'static>(log: A) -> Router {
    Router::new()
        .route("/audit", get(list::<A>))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(Arc::new(log))
}

/// Records `action` on `target` by `caller`, with the route's outcome; returns the outcome,
/// or `503` if a successful outcome could not be recorded.
pub async fn record<A: AuditLog, T>(
    log: &A,
    caller: &Caller,
    action: AuditAction,
    target: &str,
    asked: serde_json::Value,
    outcome: Result<T, ApiError>,
    results: impl FnOnce(&T) -> Option<u32>,
) -> Result<T, ApiError> {
    let mut r = AuditRecord::new(
        caller,
        action,
        target.chars().take(128).collect::<String>(),
        asked,
        anpr_protocol::clock::now_ms(),
        log.retention_secs(),
    );
    match &outcome {
        Ok(v) => {
            r.status = 200;
            r.results = results(v);
        }
        Err(e) => {
            let (status, code, _, _) = e.parts();
            r.status = status.as_u16();
            r.error = Some(code.to_owned());
        }
    }
    match (log.append(&r).await, outcome) {
        (Ok(()), outcome) => outcome,
        (Err(e), Ok(_)) => Err(ApiError::Domain(DomainError::Store(e))),
        (Err(e), Err(original)) => {
            tracing::error!(error = %e, "audit record of a refused call not written");
            Err(original)
        }
    }
}

#[derive(Serialize)]
struct TrailPage {
    items: Vec<AuditRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

async fn list<A: AuditLog>(
    State(log): State<Arc<A>>,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Json<TrailPage>, ApiError> {
    let q = parse_page_query(raw.as_deref())?;
    let limit = page_size(q.limit).map_err(|e| ApiError::Domain(e.into()))?;
    match read_trail(&*log, &caller, limit, q.cursor.as_deref()).await {
        Ok(p) => Ok(Json(TrailPage {
            items: p.items,
            next_cursor: p.next_cursor,
        })),
        Err(DomainError::Store(StoreError::BadCursor)) => Err(ApiError::BadRequest {
            message: "invalid pagination cursor".into(),
            field: Some("cursor"),
        }),
        Err(e) => Err(e.into()),
    }
}
