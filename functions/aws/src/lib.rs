//! AWS adapters of the domain's ports, and the typed configuration every Lambda reads once at
//! cold start.
//!
//! # Layout
//! - [`config`]: environment → typed config → SDK clients.
//! - [`http`]: the HTTPS client (Amazon roots compiled in) and the SDK config built on it.
//! - [`dynamo`]: `DynamoRequestStore`, `DynamoCameraRegistry` (one table, keys in
//!   `anpr_core`'s crate docs).
//! - [`schema`]: the table definition shared by tests, the local stack and the SAM
//!   template's contract test.
//! - [`plates`]: `DynamoPlateReadStore`, plate reads batch-written and queried by key.
//! - [`audit`]: `DynamoAuditLog`, the organisations' audit trails.
//! - [`iot`]: `IotDataPublisher`, publishing through the IoT data plane.
//! - [`shadow`]: `IotConfigShadows`, the cameras' configuration shadows.
//! - [`s3`]: `S3UrlSigner`, presigned download URLs of the media bucket.
//! - [`errors`]: SDK errors classified as retryable or permanent.
//! - [`logging`]: JSON logs for CloudWatch (`anpr-lambda`'s, re-exported).

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
pub use config::{AwsClients, EnvError, FunctionConfig};
pub use dynamo::{DynamoCameraRegistry, DynamoRequestStore};
pub use iot::IotDataPublisher;
pub use plates::DynamoPlateReadStore;
pub use s3::S3UrlSigner;
pub use shadow::IotConfigShadows;
