//! The ANPR cloud's domain: what a file request is, how its state may change, and the services
//! the Lambda functions call. Storage and messaging are behind narrow ports ([`ports`]); AWS
//! adapters live in `anpr-aws`, in-memory ones in [`memory`] for fast unit tests.
//!
//! # Layout
//! - [`model`]: domain records: cameras, file requests and their history, pages.
//! - [`lifecycle`]: the file request life cycle, every state change allowed or refused.
//! - [`requests`]: the file request service ([`FileRequests`]): create, get, list.
//! - [`status`]: camera statuses and S3 uploads applied to requests, and the web UI told.
//! - [`presence`]: which cameras are online, from the broker's lifecycle events.
//! - [`plates`]: plate reads: what is stored, the ingestion rules, the in-memory store.
//! - [`shadow`]: camera configuration through the device shadow ([`CameraConfigs`], [`Shadow`]).
//! - [`access`]: organisations, roles and the verified claims they come from ([`Caller`]).
//! - [`audit`]: the audit trail of configuration changes and plate searches.
//! - [`ports`]: what the domain needs from outside, named by role.
//! - [`memory`]: in-memory adapters of the ports, for unit tests.
//! - [`error`]: errors of the domain and of its ports.
//!
//! # DynamoDB key design (one table)
//! Every access pattern is a `GetItem` or a `Query`; none is a scan.
//!
//! | item | `PK` | `SK` | `GSI1PK` | `GSI1SK` |
//! |---|---|---|---|---|
//! | camera registry entry | `CAM#{camera}` | `CAM` | `ORGCAM#{org}` | `{camera}` |
//! | file request | `REQ#{request}` | `REQ` | `CAMREQ#{camera}` | `{request}` (ULID: time order) |
//! | idempotency key | `IDEM#{caller}#{key}` | `IDEM` | – | – |
//! | audit record | `AUDIT#{org}` | `{at_ms:013}#{ulid}` | – | – |
//! | plate read | `READS#{camera}#{shard}` | `{t_ms:013}#{read}` | `PLATE#{org}#{plate}` | `{t_ms:013}#{camera}#{read}` |
//!
//! - request by id: `GetItem(REQ#id, REQ)`;
//! - requests of a camera, newest first: `Query GSI1 GSI1PK=CAMREQ#cam, ScanIndexForward=false`;
//! - open requests of a camera, counted (the open-request limit): the same `Query` with
//!   `Select=COUNT`, filtered on the open-requests index key and `expires_at`, paged to the end;
//! - cameras of an organisation, in id order (`GET /cameras`): `Query GSI1
//!   GSI1PK=ORGCAM#{org}`; their online state is on the registry item (`presence`), written by
//!   a conditional `UpdateItem` per lifecycle event ([`presence`]);
//! - the time of a camera's last connection change (`connection_changed_at` on its registry
//!   item): claimed by a conditional `UpdateItem(CAM#cam, CAM)`;
//! - plate reads of a camera by time: `Query PK=READS#cam#{shard}, SK BETWEEN from AND to` for
//!   each of the 16 shards (`{shard}` one hex digit, a hash of the sort key: one camera's
//!   backlog drain spreads over 16 partitions), merged newest first;
//! - sightings of one plate across one organisation's cameras, newest first:
//!   `Query GSI1 GSI1PK=PLATE#{org}#p, SK range`. The organisation is part of the partition
//!   key, so a query cannot reach another organisation's reads; reads of a camera without an
//!   organisation get no index keys and are found by no plate search.
//!
//! A read's key is derived from the read itself (camera, time, id), so a re-delivered read
//! overwrites itself instead of adding a second item. Items carry `ttl` (the TTL attribute, Unix seconds).

pub mod access;
pub mod audit;
pub mod error;
pub mod lifecycle;
pub mod memory;
pub mod model;
pub mod plates;
pub mod ports;
pub mod presence;
pub mod requests;
pub mod shadow;
pub mod status;

pub use access::{Caller, ClaimsError, OrgId, Role};
pub use error::{DomainError, PublishError, StoreError};
pub use model::{Camera, FileRequestRecord, Page, StatusChange};
pub use requests::{FileRequests, NewFileRequest, RequestsConfig};
pub use shadow::{CameraConfigs, ConfigView, Shadow};
