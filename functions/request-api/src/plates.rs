//! Plate read queries: a camera's reads by time and one plate's sightings across cameras, both
//! newest first, paginated, each a single DynamoDB `Query` on a key (never a scan), and only
//! within the caller's organisation: a camera of another organisation (or none) is `404` (one
//! registry read), and a plate search's key holds the caller's organisation.
//!
//! - `GET /cameras/{camera_id}/plate-reads?from=&to=&limit=&cursor=`
//! - `GET /plate-reads?plate=AB123CD&from=&to=&limit=&cursor=`
//!
//! `from` and `to` are Unix milliseconds (inclusive; default: everything); `limit` is 1..=100
//! (default 20); `cursor` is the `next_cursor` of the previous page. The plate is normalised
//! with the same function as on ingestion, so `ab-123 cd` finds `AB123CD`. A read's `img` is
//! a file on the camera that `POST /cameras/{camera_id}/file-requests` can fetch.

use crate::error::ApiError;
use crate::identity::Authenticated;
use anpr_core::access::visible_camera;
use anpr_core::audit::{AuditAction, AuditLog};
use anpr_core::plates::{PlateReadStore, StoredRead, TimeRange};
use anpr_core::ports::CameraRegistry;
use anpr_core::requests::{DEFAULT_PAGE, MAX_PAGE};
use anpr_core::{DomainError, Page, Role, StoreError};
use anpr_protocol::{CameraId, normalize_plate};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;

/// The routes' state: the read store, the camera registry and the audit trail.
struct Reads<R, C, A> {
    reads: R,
    cameras: C,
    audit: A,
}

/// The plate read routes over a store, the camera registry and the audit trail (every plate
/// search is recorded).
pub fn routes<R, C, A>(reads: R, cameras: C, audit: A) -> Router
where
    R: PlateReadStore + 'static,
    C: CameraRegistry + 'static,
    A: AuditLog + 'static,
{
    Router::new()
        .route(
            "/cameras/{camera_id}/plate-reads",
            get(by_camera::<R, C, A>),
        )
        .route("/plate-reads", get(by_plate::<R, C, A>))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(Arc::new(Reads {
            reads,
            cameras,
            audit,
        }))
}

/// A stored read as the API shows it.
#[derive(Debug, Serialize)]
pub struct ReadView {
    camera_id: String,
    read_id: String,
    /// When it was seen, Unix milliseconds (camera clock).
    t_ms: u64,
    /// Normalised plate.
    plate: String,
    /// As read by the camera.
    plate_raw: String,
    confidence: u8,
    /// Image or clip on the camera (requestable with a file request).
    #[serde(skip_serializing_if = "Option::is_none")]
    img: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bb: Option<[u32; 4]>,
}

impl From<StoredRead> for ReadView {
    fn from(r: StoredRead) -> Self {
        Self {
            camera_id: r.camera_id.to_string(),
            read_id: r.read_id.to_string(),
            t_ms: r.t_ms,
            plate: r.plate,
            plate_raw: r.plate_raw,
            confidence: r.confidence,
            img: r.img.map(|f| f.to_string()),
            bb: r.bb,
        }
    }
}

/// A page of reads.
#[derive(Debug, Serialize)]
pub struct ReadPage {
    items: Vec<ReadView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Parsed query parameters.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReadQuery {
    /// `plate`, as given.
    pub plate: Option<String>,
    /// Time range.
    pub range: Option<TimeRange>,
    /// Page size.
    pub limit: u32,
    /// Cursor.
    pub cursor: Option<String>,
}

fn bad(message: impl Into<String>, field: &'static str) -> ApiError {
    ApiError::BadRequest {
        message: message.into(),
        field: Some(field),
    }
}

/// Parses `plate`, `from`, `to`, `limit`, `cursor`; names the field on error.
pub fn parse_read_query(raw: Option<&str>) -> Result<ReadQuery, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|_| ApiError::BadRequest {
            message: "malformed query string".into(),
            field: None,
        })?;
    let mut q = ReadQuery {
        limit: DEFAULT_PAGE,
        ..ReadQuery::default()
    };
    let (mut from, mut to) = (None, None);
    let ms = |v: &str, f: &'static str| {
        v.parse::<u64>()
            .ok()
            .filter(|n| *n <= TimeRange::ALL.to_ms)
            .ok_or_else(|| bad(format!("{f} must be Unix milliseconds"), f))
    };
    for (k, v) in pairs {
        match k.as_str() {
            "plate" => q.plate = Some(v),
            "from" => from = Some(ms(&v, "from")?),
            "to" => to = Some(ms(&v, "to")?),
            "limit" => {
                q.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| bad(format!("limit must be 1..={MAX_PAGE}"), "limit"))?;
            }
            "cursor" => q.cursor = Some(v),
            _ => {}
        }
    }
    let range = TimeRange {
        from_ms: from.unwrap_or(TimeRange::ALL.from_ms),
        to_ms: to.unwrap_or(TimeRange::ALL.to_ms),
    };
    if range.from_ms > range.to_ms {
        return Err(bad("from is after to", "from"));
    }
    q.range = Some(range);
    Ok(q)
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::BadCursor => bad("invalid pagination cursor", "cursor"),
        e => ApiError::Domain(DomainError::Store(e)),
    }
}

fn page(p: Page<StoredRead>) -> Json<ReadPage> {
    Json(ReadPage {
        items: p.items.into_iter().map(Into::into).collect(),
        next_cursor: p.next_cursor,
    })
}

async fn by_camera<R: PlateReadStore, C: CameraRegistry, A: AuditLog>(
    State(st): State<Arc<Reads<R, C, A>>>,
    Authenticated(caller): Authenticated,
    camera: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ReadPage>, ApiError> {
    let camera = camera
        .map(|Path(c)| c)
        .map_err(|_| bad("invalid camera_id in path", "camera_id"))?;
    let camera = CameraId::parse(&camera).map_err(|e| ApiError::Domain(e.into()))?;
    let q = parse_read_query(raw.as_deref())?;
    caller.require(Role::Viewer)?;
    visible_camera(&st.cameras, &caller, &camera).await?;
    let p = st
        .reads
        .reads_by_camera(
            &camera,
            q.range.unwrap_or(TimeRange::ALL),
            q.limit,
            q.cursor.as_deref(),
        )
        .await
        .map_err(store_error)?;
    Ok(page(p))
}

async fn by_plate<R: PlateReadStore, C: CameraRegistry, A: AuditLog>(
    State(st): State<Arc<Reads<R, C, A>>>,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Json<ReadPage>, ApiError> {
    let asked: serde_json::Map<String, serde_json::Value> =
        serde_urlencoded::from_str::<Vec<(String, String)>>(raw.as_deref().unwrap_or(""))
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k != "cursor")
            .map(|(k, v)| (k, serde_json::Value::String(v.chars().take(64).collect())))
            .collect();
    let target = asked
        .get("plate")
        .and_then(|p| p.as_str())
        .unwrap_or_default()
        .to_owned();
    let outcome = search(&st.reads, &caller, raw.as_deref()).await;
    crate::audit::record(
        &st.audit,
        &caller,
        AuditAction::PlateSearch,
        &target,
        serde_json::Value::Object(asked),
        outcome,
        |p| u32::try_from(p.items.len()).ok(),
    )
    .await
    .map(Json)
}

async fn search<R: PlateReadStore>(
    reads: &R,
    caller: &anpr_core::Caller,
    raw: Option<&str>,
) -> Result<ReadPage, ApiError> {
    let q = parse_read_query(raw)?;
    let plate = q
        .plate
        .as_deref()
        .ok_or_else(|| bad("plate is required", "plate"))?;
    let plate = normalize_plate(plate).map_err(|e| ApiError::Domain(e.into()))?;
    caller.require(Role::Viewer)?;
    let p = reads
        .reads_by_plate(
            &caller.org,
            &plate,
            q.range.unwrap_or(TimeRange::ALL),
            q.limit,
            q.cursor.as_deref(),
        )
        .await
        .map_err(store_error)?;
    Ok(page(p).0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_checked_and_name_their_field() {
        let q = parse_read_query(Some("plate=ab+12&from=5&to=9&limit=3&cursor=x")).unwrap();
        assert_eq!(q.plate.as_deref(), Some("ab 12"));
        assert_eq!(
            q.range,
            Some(TimeRange {
                from_ms: 5,
                to_ms: 9
            })
        );
        assert_eq!((q.limit, q.cursor.as_deref()), (3, Some("x")));
        let field = |raw: &str| match parse_read_query(Some(raw)) {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("{raw}: {other:?}"),
        };
        assert_eq!(field("from=yesterday"), Some("from"));
        assert_eq!(field("to=-1"), Some("to"));
        assert_eq!(field("limit=0"), Some("limit"));
        assert_eq!(field("limit=101"), Some("limit"));
        assert_eq!(field("from=10&to=9"), Some("from"));
    }
}
