//! Camera configuration routes (the device shadow's `desired` state):
//! - `GET /cameras/{camera_id}/config` → desired, reported, pending and the camera's error;
//! - `PUT /cameras/{camera_id}/config` with a partial document (only the given settings
//!   change) → `200` and the same view. `If-Match: "{version}"` (the `version` of a previous
//!   view) makes it conditional: `409` if the configuration changed since.

use crate::error::ApiError;
use crate::identity::Authenticated;
use crate::routes::{MAX_BODY_BYTES, require_json};
use anpr_core::ports::{CameraRegistry, ConfigShadows};
use anpr_core::{CameraConfigs, ConfigView};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

/// The configuration routes.
pub fn routes<C, S>(configs: CameraConfigs<C, S>) -> Router
where
    C: CameraRegistry + 'static,
    S: ConfigShadows + 'static,
{
    Router::new()
        .route(
            "/cameras/{camera_id}/config",
            get(read::<C, S>).put(update::<C, S>),
        )
        .method_not_allowed_fallback(|| async {
            (StatusCode::METHOD_NOT_ALLOWED, ApiError::NoRoute.parts().1)
        })
        .with_state(Arc::new(configs))
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

async fn read<C: CameraRegistry, S: ConfigShadows>(
    State(svc): State<Arc<CameraConfigs<C, S>>>,
    Authenticated(_): Authenticated,
    cam: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let cam = camera(cam)?;
    Ok(with_etag(svc.get(&cam).await?))
}

async fn update<C: CameraRegistry, S: ConfigShadows>(
    State(svc): State<Arc<CameraConfigs<C, S>>>,
    Authenticated(_): Authenticated,
    cam: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let cam = camera(cam)?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::TooLarge(MAX_BODY_BYTES));
    }
    require_json(&headers)?;
    let expected = parse_if_match(&headers)?;
    let doc: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
            message: format!("body is not valid JSON: {e}"),
            field: None,
        })?;
    Ok(with_etag(svc.update(&cam, &doc, expected).await?))
}
