//! `anpr-fleet-sim`: N simulated cameras in one process against the Mosquitto stand-in of AWS
//! IoT Core (`anpr-test-support`: TLS client certificates, the IoT-like ACL, persistence).
//!
//! Each camera has its own certificate and MQTT 5 session built by the agent's own
//! [`anpr_camera::mqtt::options`] from an agent configuration (persistent session, last will,
//! keep-alive, in-flight cap), the agent's real disk outbox ([`anpr_camera::outbox::Outbox`]) for
//! plate reads, and the protocol's message types for file requests and statuses. The cloud side
//! is two `cloud-backend` sessions that play the IoT rules, one each (a plate backlog does not
//! delay statuses): plate batches go through
//! `plate_ingest::handle` into the in-memory store, statuses are timed, and an `uploaded`
//! status counts as `ready` once the object is in S3 (moto) with the announced size.
//!
//! Profiles ([`profile::Profile`]): idle, quiet (1 file request and 200 reads a day), busy
//! (20 requests and 5,000 reads a day), with time compression. Every (re)connect passes a
//! connect-rate limiter ([`limiter::TokenBucket`]) standing in for the account's CONNECT quota:
//! an attempt without a token is counted as refused and the camera backs off.
//!
//! # Layout
//! - [`profile`]: per-day rates of a profile, compressed (pure).
//! - [`limiter`]: token bucket and back-off (pure).
//! - [`stats`]: counters and percentiles.
//! - [`camera`]: one simulated camera's task.
//! - [`cloud`]: the cloud side (requests, statuses, plate rule).
//! - [`run`]: the composition: broker, identities, cameras, progress, storm, summary.

pub mod camera;
pub mod cloud;
pub mod limiter;
pub mod profile;
pub mod run;
pub mod stats;
