//! `GET /file-requests/{request_id}/download` → `200 {"url","expires_at","size"}`: a fresh
//! presigned link to a ready request's file, for anyone who may see the request (viewer and
//! up, same organisation). A request of another organisation is `404` like every route; one
//! not ready is `409 not_ready`. The link a notification carried expires
//! (`ANPR_DOWNLOAD_URL_SECS`); after a reload the console asks here.

use crate::error::ApiError;
use crate::identity::Authenticated;
use anpr_core::FileRequests;
use anpr_core::ports::{CameraRegistry, DevicePublisher, RequestStore};
use anpr_core::status::UrlSigner;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;

/// The signer of download links and their validity.
#[derive(Debug, Clone)]
pub struct Downloads<U> {
    /// Presigns `GET` on the media bucket.
    pub signer: U,
    /// Seconds a link works.
    pub valid_for_secs: u64,
}

#[derive(Debug, Serialize)]
struct DownloadView {
    url: String,
    expires_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
}

type St<S, C, P, U> = (Arc<FileRequests<S, C, P>>, Arc<Downloads<U>>);

/// The download route over the request service shared with the other routes.
pub fn routes<S, C, P, U>(requests: Arc<FileRequests<S, C, P>>, downloads: Downloads<U>) -> Router
where
    S: RequestStore + 'static,
    C: CameraRegistry + 'static,
    P: DevicePublisher + 'static,
    U: UrlSigner + 'static,
{
    Router::new()
        .route(
            "/file-requests/{request_id}/download",
            get(download::<S, C, P, U>),
        )
        .with_state((requests, Arc::new(downloads)))
}

async fn download<S, C, P, U>(
    State((requests, downloads)): State<St<S, C, P, U>>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<DownloadView>, ApiError>
where
    S: RequestStore,
    C: CameraRegistry,
    P: DevicePublisher,
    U: UrlSigner,
{
    let id = crate::routes::path(id, "request_id")?;
    let d = requests
        .download(
            &caller,
            &id,
            anpr_protocol::clock::now_secs(),
            &downloads.signer,
            downloads.valid_for_secs,
        )
        .await?;
    Ok(Json(DownloadView {
        url: d.url,
        expires_at: d.expires_at,
        size: d.size,
    }))
}
