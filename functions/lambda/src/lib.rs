//! What every Lambda binary of the fleet shares and that needs no AWS SDK, so that a function
//! which calls no AWS API (the web authorizer) links none of it.
//!
//! # Layout
//! - [`logging`]: JSON logs for CloudWatch, one setup for every entry point.
//! - [`trust`]: the Amazon Trust Services root certificates, compiled in.

pub mod logging;
pub mod trust;
