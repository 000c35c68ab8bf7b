//! The request API: HTTP routes over the domain's services.
//!
//! The same [`app`], built over its [`Services`], serves API Gateway events through
//! `lambda_http` (`src/main.rs`) and, for the local stack, plain HTTP. Handlers decode, call
//! one domain function, encode; errors are mapped to HTTP in one place ([`error::ApiError`]).
//! Every route takes the caller (organisation and role) from the verified claims
//! ([`identity`]); see `docs/access.md`.
//!
//! # Layout
//! - [`routes`]: [`app`] over its [`Services`], and the file request routes:
//!   `POST /cameras/{camera_id}/file-requests` `{"file": "...", "note"?: "..."}` → `202`;
//!   `GET /file-requests/{request_id}` → the request and its status history;
//!   `GET /cameras/{camera_id}/file-requests?limit=&cursor=` → newest first, paginated.
//! - [`cameras`]: `GET /cameras?limit=&cursor=` → the organisation's cameras with their online
//!   state.
//! - [`plates`]: `GET /cameras/{camera_id}/plate-reads?from=&to=&limit=&cursor=` and
//!   `GET /plate-reads?plate=&from=&to=&limit=&cursor=` → plate reads, newest first.
//! - [`config`]: `GET|PUT /cameras/{camera_id}/config` → the camera's remote configuration.
//! - [`audit`]: `GET /audit?limit=&cursor=` → the organisation's audit trail, admins only; and
//!   the record the audited routes write.
//! - [`download`]: `GET /file-requests/{request_id}/download` → a fresh link to a ready
//!   request's file.
//! - [`identity`]: the caller from the verified claims.
//! - [`error`]: every API error and its HTTP mapping.
//! - `src/main.rs`: the Lambda entry point: config, clients built once, [`app`] served.

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
pub use routes::{MAX_BODY_BYTES, Services, app};
