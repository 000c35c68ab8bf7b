//! The camera agent: one thrifty MQTT session to AWS IoT Core, on-demand resumable uploads
//! to S3, nothing listening. See `docs/camera.md`.
//!
//! # Layout
//! - [`config`]: the TOML file.
//! - [`machine`]: every decision, pure.
//! - [`journal`]: persisted request state and upload checkpoints.
//! - [`dispatch`]: handlers by topic.
//! - [`media`]: safe name resolution.
//! - [`upload`]: resumable uploads.
//! - [`s3`]: the S3 calls, signed.
//! - [`http`]: the HTTP/1.1 client under S3 and the credentials.
//! - [`creds`]: the IoT credentials provider.
//! - [`tls`] and [`mqtt`]: the session's TLS and MQTT options.
//! - [`health`]: figures for the health report.
//! - [`policy`]: the camera role's IAM policy (tested by the contract tests' evaluator).
//! - [`remote`]: configuration from the device shadow.
//! - [`storm`]: a fleet's reconnect storm, simulated.
//! - [`pubacks`]: PUBACKs matched to what was published.
//! - [`outbox`]: the plate-read store-and-forward queue.
//! - [`agent`]: the agent, started by `Agent::builder`: the session's state machine
//!   ([`agent::session`]), the I/O loop around it, the upload worker, the remote
//!   configuration trial, the stop signal ([`agent::Shutdown`]).
//! - [`feed_link`]: the link to the frame feed, a process of its own (package `anpr-frames`):
//!   started, supervised and answered by the agent.
//! - [`logs`]: the binaries' structured logs.
//! - [`quota`]: the media directory's disk quota.

pub mod agent;
pub mod config;
pub mod creds;
pub mod dispatch;
pub mod feed_link;
pub mod health;
pub mod http;
pub mod journal;
pub mod logs;
pub mod machine;
pub mod media;
pub mod mqtt;
pub mod outbox;
pub mod policy;
pub mod pubacks;
pub mod quota;
pub mod remote;
pub mod s3;
pub mod storm;
pub mod tls;
pub mod upload;

pub use config::Config;

/// An error with its sources, on one line (`outer: cause: root cause`, a cause the message
/// already shows not repeated), for logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    agent::ErrorChain(e).to_string()
}
