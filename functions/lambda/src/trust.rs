//! The trust store of the functions' HTTPS clients: Amazon Root CA 1–4 and Starfield Services
//! Root CA G2 (`certs/README.md`), which sign every AWS endpoint the functions call (the SDK's
//! clients through `anpr_aws::http`, the web authorizer's JWKS fetch from Cognito). Compiled
//! in: reading the system store took most of a cold start (docs/measured.md).

/// Amazon Root CA 1–4 and Starfield Services Root CA G2, PEM.
pub const AMAZON_TRUST_SERVICES_ROOTS: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");
