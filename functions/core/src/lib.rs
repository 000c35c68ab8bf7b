//! The ANPR cloud's domain: what a file request is, how its state may change, and the services
//! the Lambda functions call. Storage and messaging are behind narrow ports ([`ports`]); AWS
//! adapters live in `anpr-aws`, in-memory ones in [`memory`] for fast unit tests.
//!
//! # DynamoDB key design (one table)
//! Every access pattern is a `GetItem` or a `Query`; none is a scan.
//!
//! | item | `PK` | `SK` | `GSI1PK` | `GSI1SK` |
//! |---|---|---|---|---|
//! | camera registry entry | `CAM#{camera}` | `CAM` | – | – |
//! | file request | `REQ#{request}` | `REQ` | `CAMREQ#{camera}` | `{request}` (ULID: time order) |
//! | idempotency key | `IDEM#{caller}#{key}` | `IDEM` | – | – |
//! | plate read | `READS#{camera}` | `{t_ms:013}#{read}` | `PLATE#{plate}` | `{t_ms:013}#{camera}#{read}` |
//!
//! - request by id: `GetItem(REQ#id, REQ)`;
//! - requests of a camera, newest first: `Query GSI1 GSI1PK=CAMREQ#cam, ScanIndexForward=false`;
//! - plate reads of a camera by time: `Query PK=READS#cam, SK BETWEEN from AND to`;
//! - sightings of one plate across cameras, newest first: `Query GSI1 GSI1PK=PLATE#p, SK range`.
//!
//! A read's key is derived from the read itself (camera, time, id), so a re-delivered read
//! overwrites itself instead of adding a second item. Items carry `ttl` (the TTL attribute, Unix seconds).

pub mod error;
pub mod lifecycle;
pub mod memory;
pub mod model;
pub mod plates;
pub mod ports;
pub mod requests;
pub mod shadow;
pub mod status;

pub use error::{DomainError, PublishError, StoreError};
pub use model::{Caller, Camera, FileRequestRecord, Page, StatusChange};
pub use requests::{FileRequests, NewFileRequest, RequestsConfig};
pub use shadow::{CameraConfigs, ConfigView, Shadow};
