//! The request API: HTTP routes over the domain's file request service.
//!
//! The same [`router`] serves API Gateway events through `lambda_http` (see `main.rs`) and, for
//! the local stack, plain HTTP. Handlers decode, call one domain function, encode; errors are
//! mapped to HTTP in one place ([`error::ApiError`]).
//!
//! Routes:
//! - `GET /cameras?limit=&cursor=` → the organisation's cameras with their online state
//!   ([`cameras`])
//! - `POST /cameras/{camera_id}/file-requests` `{"file": "...", "note"?: "..."}` → `202`
//! - `GET /file-requests/{request_id}` → the request and its status history
//! - `GET /file-requests/{request_id}/download` → a fresh link to a ready request's file
//!   ([`download`])
//! - `GET /cameras/{camera_id}/file-requests?limit=&cursor=` → newest first, paginated
//! - `GET /cameras/{camera_id}/plate-reads?from=&to=&limit=&cursor=` and
//!   `GET /plate-reads?plate=&from=&to=&limit=&cursor=` → plate reads, newest first ([`plates`])
//! - `GET|PUT /cameras/{camera_id}/config` → the camera's remote configuration ([`config`])
//! - `GET /audit?limit=&cursor=` → the organisation's audit trail, admins only ([`audit`])
//!
//! Every route takes the caller (organisation and role) from the verified claims
//! ([`identity`]); see `docs/access.md`.

pub mod audit;
pub mod cameras;
pub mod config;
pub mod download;
pub mod error;
pub mod identity;
pub mod plates;
pub mod routes;

pub use download::Downloads;
pub use error::ApiError;
pub use identity::Caller;
pub use routes::{MAX_BODY_BYTES, app, router, router_with_plate_reads};
