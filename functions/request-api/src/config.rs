//! Camera configuration routes (the device shadow's `desired` state):
//! - `GET /cameras/{camera_id}/config` → desired, reported, pending and the camera's error;
//! - `PUT /cameras/{camera_id}/config` with a partial document (only the given settings
//!   change) → `200` and the same view. `If-Match: "{version}"` (the `version` of a previous
//!   view) makes it conditional: `409` if the configuration changed since. Admins only;
//!   every `PUT` (accepted or refused) is recorded in the audit trail. A connection setting
//!   changed within the hour after the last change is `429 connection_change_too_soon`,
//!   naming the setting and when the next change is allowed.

use crate::error::ApiError;
use crate::identity::Authenticated;
use crate::routes::{MAX_BODY_BYTES, require_json};
use anpr_core::audit::{AuditAction, AuditLog};
use anpr_core::ports::{CameraRegistry, ConfigShadows};
use anpr_core::{CameraConfigs, ConfigView};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

/// The routes' state: the configuration service and the audit trail.
struct Configs<C, S, A> {
    configs: CameraConfigs<C, S>,
    audit: A,
}

/// The configuration routes; every `PUT`, accepted or refused, is recorded in the audit trail.
pub fn routes<C, S, A>(configs: CameraConfigs<C, S>, audit: A) -> Router
where
    C: CameraRegistry + 'static,
    S: ConfigShadows + 'static,
    A: AuditLog + 'static,
{
    Router::new()
        .route(
            "/cameras/{camera_id}/config",
            get(read::<C, S, A>).put(update::<C, S, A>),
        )
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(Arc::new(Configs { configs, audit }))
}

fn camera(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(v)| v).map_err(|_| ApiError::BadRequest {
        message: "invalid camera_id in path".into(),
        field: Some("camera_id"),
    })
}

fn with_etag(view: ConfigView) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", view.version)).ok();
    let mut resp = Json(view).into_response();
    if let Some(e) = etag {
        resp.headers_mut().insert(header::ETAG, e);
    }
    resp
}

/// `If-Match: "7"` (or `7`) → `Some(7)`.
pub fn parse_if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .map(|s| s.trim().trim_matches('"'))
        .and_then(|s| s.parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest {
            message: "If-Match must be the configuration's version, e.g. \"7\"".into(),
            field: Some("If-Match"),
        })
}

async fn read<C: CameraRegistry, S: ConfigShadows, A: AuditLog>(
    State(st): State<Arc<Configs<C, S, A>>>,
    Authenticated(caller): Authenticated,
    cam: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let cam = camera(cam)?;
    Ok(with_etag(st.configs.get(&caller, &cam).await?))
}

async fn update<C: CameraRegistry, S: ConfigShadows, A: AuditLog>(
    State(st): State<Arc<Configs<C, S, A>>>,
    Authenticated(caller): Authenticated,
    cam: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = cam.as_ref().map(|Path(c)| c.clone()).unwrap_or_default();
    let asked = serde_json::from_slice(&body).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&body).chars().take(256).collect())
    });
    let outcome = apply(&st.configs, &caller, cam, &headers, &body).await;
    let view = crate::audit::record(
        &st.audit,
        &caller,
        AuditAction::ConfigChange,
        &target,
        asked,
        outcome,
        |_| None,
    )
    .await?;
    Ok(with_etag(view))
}

async fn apply<C: CameraRegistry, S: ConfigShadows>(
    svc: &CameraConfigs<C, S>,
    caller: &anpr_core::Caller,
    cam: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<ConfigView, ApiError> {
    let cam = camera(cam)?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::TooLarge(MAX_BODY_BYTES));
    }
    require_json(headers)?;
    let expected = parse_if_match(headers)?;
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest {
            message: format!("body is not valid JSON: {e}"),
            field: None,
        })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(svc.update(caller, &cam, &doc, expected, now).await?)
}
