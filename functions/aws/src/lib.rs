//! AWS adapters of the domain's ports, and the typed configuration every Lambda reads once at
//! cold start.
//!
//! - [`dynamo`]: `DynamoRequestStore`, `DynamoCameraRegistry` (one table, keys in
//!   `anpr_core`'s crate docs) and [`schema`], the table definition shared by tests, the local
//!   stack and the SAM template's contract test.
//! - [`iot`]: `IotDataPublisher`, publishing through the IoT data plane.
//! - [`shadow`]: `IotConfigShadows`, the cameras' configuration shadows.
//! - [`audit`]: `DynamoAuditLog`, the organisations' audit trails.
//! - [`s3`]: `S3UrlSigner`, presigned download URLs of the media bucket.
//! - [`config`]: environment → typed config → SDK clients.
//! - [`http`]: the HTTPS client (Amazon roots compiled in) and the SDK config built on it.

pub mod audit;
pub mod config;
pub mod dynamo;
pub mod errors;
pub mod http;
pub mod iot;
pub use anpr_lambda::logging;
pub mod plates;
pub mod s3;
pub mod schema;
pub mod shadow;

pub use audit::DynamoAuditLog;
pub use config::{AwsClients, ConfigError, FunctionConfig};
pub use dynamo::{DynamoCameraRegistry, DynamoRequestStore};
pub use iot::IotDataPublisher;
pub use plates::DynamoPlateReadStore;
pub use s3::S3UrlSigner;
pub use shadow::IotConfigShadows;
