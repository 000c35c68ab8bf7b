//! Routes and their handlers.

use crate::download::Downloads;
use crate::error::ApiError;
use crate::identity::Authenticated;
use anpr_core::audit::AuditLog;
use anpr_core::model::{FileRequestRecord, StatusChange};
use anpr_core::plates::PlateReadStore;
use anpr_core::ports::{CameraRegistry, ConfigShadows, DevicePublisher, RequestStore};
use anpr_core::status::UrlSigner;
use anpr_core::{CameraConfigs, FileRequests, NewFileRequest, Page};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The service every handler calls, behind an `Arc`.
type Svc<S, C, P> = Arc<FileRequests<S, C, P>>;

/// What the API serves, one field per group of routes; [`app`] builds the router over it.
#[derive(Debug)]
pub struct Services<S, C, P, R, C2, H, A, U> {
    /// File requests: create, read, list ([this module](self)) and their download links.
    pub requests: FileRequests<S, C, P>,
    /// Plate read queries ([`crate::plates`]).
    pub reads: R,
    /// The cameras' remote configuration ([`crate::config`]).
    pub configs: CameraConfigs<C2, H>,
    /// The audit trail: written by the plate and configuration routes, read by
    /// [`crate::audit`].
    pub audit: A,
    /// Download links of ready requests ([`crate::download`]).
    pub downloads: Downloads<U>,
}

/// The whole API, as the Lambda serves it and the local stack serves it over plain HTTP:
/// file requests, the camera listing of [`crate::cameras`] (over the request service's
/// camera registry), plate reads, configuration, the audit trail and downloads.
pub fn app<S, C, P, R, C2, H, A, U>(services: Services<S, C, P, R, C2, H, A, U>) -> Router
where
    S: RequestStore + 'static,
    C: CameraRegistry + Clone + 'static,
    P: DevicePublisher + 'static,
    R: PlateReadStore + 'static,
    C2: CameraRegistry + 'static,
    H: ConfigShadows + 'static,
    A: AuditLog + Clone + 'static,
    U: UrlSigner + 'static,
{
    let Services {
        requests,
        reads,
        configs,
        audit,
        downloads,
    } = services;
    let cameras = requests.cameras().clone();
    let requests = Arc::new(requests);
    request_routes(requests.clone())
        .merge(crate::cameras::routes(cameras.clone()))
        .merge(crate::plates::routes(reads, cameras, audit.clone()))
        .merge(crate::config::routes(configs, audit.clone()))
        .merge(crate::audit::routes(audit))
        .merge(crate::download::routes(requests, downloads))
}

/// The file request routes, and the answers to a path or method no route serves.
fn request_routes<S, C, P>(service: Svc<S, C, P>) -> Router
where
    S: RequestStore + 'static,
    C: CameraRegistry + 'static,
    P: DevicePublisher + 'static,
{
    Router::new()
        .route(
            "/cameras/{camera_id}/file-requests",
            post(create::<S, C, P>).get(list::<S, C, P>),
        )
        .route("/file-requests/{request_id}", get(get_one::<S, C, P>))
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(service)
}

pub(crate) fn path(
    p: Result<Path<String>, PathRejection>,
    field: &'static str,
) -> Result<String, ApiError> {
    p.map(|Path(v)| v).map_err(|_| ApiError::BadRequest {
        message: format!("invalid {field} in path"),
        field: Some(field),
    })
}

/// A file request as the API shows it.
#[derive(Debug, Serialize)]
pub struct RequestView {
    request_id: String,
    camera_id: String,
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    requested_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    org: Option<String>,
    requested_at: u64,
    expires_at: u64,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    history: Vec<HistoryView>,
}

#[derive(Debug, Serialize)]
struct HistoryView {
    state: &'static str,
    at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

impl From<FileRequestRecord> for RequestView {
    fn from(r: FileRequestRecord) -> Self {
        Self {
            request_id: r.request_id.to_string(),
            camera_id: r.camera_id.to_string(),
            file: r.file.to_string(),
            note: r.note,
            requested_by: r.requested_by,
            org: r.org.map(String::from),
            requested_at: r.requested_at,
            expires_at: r.expires_at,
            state: r.state.as_str(),
            progress: r.progress,
            size: r.size,
            reason: r.reason.map(|c| c.as_str()),
            history: r
                .history
                .into_iter()
                .map(
                    |StatusChange {
                         state,
                         at,
                         progress,
                         reason,
                     }| HistoryView {
                        state: state.as_str(),
                        at,
                        progress,
                        reason: reason.map(|c| c.as_str()),
                    },
                )
                .collect(),
        }
    }
}

pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

fn bad(message: impl Into<String>, field: Option<&'static str>) -> ApiError {
    ApiError::BadRequest {
        message: message.into(),
        field,
    }
}

/// Parses the create body field by field so that a wrong type names its field.
fn parse_create_body(body: &[u8]) -> Result<(String, Option<String>), ApiError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("body is not valid JSON: {e}"), None))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("body must be a JSON object", None))?;
    let file = match obj.get("file") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err(bad("file must be a string", Some("file"))),
        None => return Err(bad("file is required", Some("file"))),
    };
    let note = match obj.get("note") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("note must be a string", Some("note"))),
    };
    Ok((file, note))
}

async fn create<S, C, P>(
    State(svc): State<Svc<S, C, P>>,
    Authenticated(caller): Authenticated,
    camera: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError>
where
    S: RequestStore,
    C: CameraRegistry,
    P: DevicePublisher,
{
    let camera = path(camera, "camera_id")?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::TooLarge(MAX_BODY_BYTES));
    }
    require_json(&headers)?;
    let (file, note) = parse_create_body(&body)?;
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    bad(
                        "Idempotency-Key must be visible ASCII",
                        Some("Idempotency-Key"),
                    )
                })?
                .to_owned(),
        ),
    };
    let new = NewFileRequest {
        file,
        note,
        idempotency_key,
    };
    let (record, created) = svc
        .create(&caller, &camera, new, anpr_protocol::clock::now_secs())
        .await?;
    let mut resp = (StatusCode::ACCEPTED, Json(RequestView::from(record))).into_response();
    if !created {
        resp.headers_mut().insert(
            "idempotent-replayed",
            header::HeaderValue::from_static("true"),
        );
    }
    Ok(resp)
}

async fn get_one<S, C, P>(
    State(svc): State<Svc<S, C, P>>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<RequestView>, ApiError>
where
    S: RequestStore,
    C: CameraRegistry,
    P: DevicePublisher,
{
    let id = path(id, "request_id")?;
    Ok(Json(
        svc.get(&caller, &id, anpr_protocol::clock::now_secs())
            .await?
            .into(),
    ))
}

/// Query parameters of list endpoints.
#[derive(Debug, Default)]
pub struct PageQuery {
    /// Page size.
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// Parses `limit` and `cursor`, naming the field on error; unknown parameters are ignored.
pub fn parse_page_query(raw: Option<&str>) -> Result<PageQuery, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|_| bad("malformed query string", None))?;
    let mut q = PageQuery::default();
    for (k, v) in pairs {
        match k.as_str() {
            "limit" => {
                q.limit = Some(
                    v.parse()
                        .map_err(|_| bad("limit must be a whole number", Some("limit")))?,
                )
            }
            "cursor" => q.cursor = Some(v),
            _ => {}
        }
    }
    Ok(q)
}

#[derive(Debug, Serialize)]
struct PageView {
    items: Vec<RequestView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

async fn list<S, C, P>(
    State(svc): State<Svc<S, C, P>>,
    Authenticated(caller): Authenticated,
    camera: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<PageView>, ApiError>
where
    S: RequestStore,
    C: CameraRegistry,
    P: DevicePublisher,
{
    let camera = path(camera, "camera_id")?;
    let q = parse_page_query(raw.as_deref())?;
    let Page { items, next_cursor } = svc
        .list(
            &caller,
            &camera,
            q.limit,
            q.cursor.as_deref(),
            anpr_protocol::clock::now_secs(),
        )
        .await?;
    Ok(Json(PageView {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}
