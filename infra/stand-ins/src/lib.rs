//! `anpr-stand-ins`: the stand-ins for AWS services that the local stack (`anpr-local`) and the
//! test harness (`anpr-test-support`) share, so both behave alike. What differs between the
//! two stays with them: the broker (rumqttd embedded in `anpr-local`, Mosquitto started per
//! test) and how each reaches it.
//!
//! # Layout
//!
//! - [`pki`]: the throw-away certificate authority in a folder: the CA, the server certificate
//!   for `localhost` / `127.0.0.1` (broker and credentials provider), client certificates with
//!   CN = thing name; every private key written owner-only.
//! - [`creds`]: the AWS IoT credentials provider: HTTPS with mutual TLS, credentials handed out
//!   only for the thing whose certificate was presented.
//! - [`shadow`]: the AWS IoT Device Shadow service over MQTT without the transport: the request
//!   topics, the answers (`get/accepted|rejected`, `update/accepted|rejected|delta`) under the
//!   document rules of `anpr_core::shadow::Shadow`, and an in-memory store of documents.
//!
//! TLS here runs on aws-lc-rs, named explicitly ([`crypto_provider`]): a build that also
//! compiles in ring (the camera's) never depends on the process-wide default.

pub mod creds;
pub mod pki;
pub mod shadow;

/// The rustls crypto provider of the stand-ins' TLS (aws-lc-rs, the AWS SDK's).
pub fn crypto_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
