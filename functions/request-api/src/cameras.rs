//! `GET /cameras?limit=&cursor=` → `{"items": [{"camera_id", "name"?, "online", "last_seen_ms"?}],
//! "next_cursor"?}`: the caller's organisation's cameras, in id order, with their online
//! state as the broker's lifecycle events last said (`anpr_core::presence`); `online` is
//! `false` for a camera never seen. Any role may list them; another organisation's are never
//! listed.

use crate::error::ApiError;
use crate::identity::Authenticated;
use crate::routes::parse_page_query;
use anpr_core::ports::CameraRegistry;
use anpr_core::presence::list_cameras;
use anpr_core::{Camera, DomainError, StoreError};
use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;

/// A camera as the API shows it.
#[derive(Debug, Serialize)]
struct CameraView {
    camera_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    online: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen_ms: Option<u64>,
}

impl From<Camera> for CameraView {
    fn from(c: Camera) -> Self {
        Self {
            camera_id: c.camera_id.to_string(),
            name: c.name,
            online: c.presence.is_some_and(|p| p.online),
            last_seen_ms: c.presence.map(|p| p.at_ms),
        }
    }
}

#[derive(Debug, Serialize)]
struct CamerasPage {
    items: Vec<CameraView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// The camera listing over the camera registry.
pub fn routes<C: CameraRegistry + 'static>(cameras: C) -> Router {
    Router::new()
        .route("/cameras", get(list::<C>))
        .with_state(Arc::new(cameras))
}

async fn list<C: CameraRegistry>(
    State(cameras): State<Arc<C>>,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Json<CamerasPage>, ApiError> {
    let q = parse_page_query(raw.as_deref())?;
    match list_cameras(&*cameras, &caller, q.cursor.as_deref(), q.limit).await {
        Ok(p) => Ok(Json(CamerasPage {
            items: p.items.into_iter().map(Into::into).collect(),
            next_cursor: p.next_cursor,
        })),
        Err(DomainError::Store(StoreError::BadCursor)) => Err(ApiError::BadRequest {
            message: "invalid pagination cursor".into(),
            field: Some("cursor"),
        }),
        Err(e) => Err(e.into()),
    }
}
