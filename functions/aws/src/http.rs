//! The one HTTPS client of the AWS SDK clients, and the SDK config built on it.
//!
//! The SDK's default client trusts the system root store, which it reads and parses when the
//! first client is built: hundreds of PEM files on a Debian host, which dominated a Lambda's
//! cold init. Every AWS endpoint these functions call is signed by Amazon Trust Services, so the
//! trust store here is those five public roots, compiled in (`anpr_lambda::trust`). Set
//! [`ENV_NATIVE_ROOTS`]`=true` to trust the system store as well.

use aws_smithy_http_client::HttpClientError;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::EnvError;

/// Environment variable: `true` adds the system's root certificates to the trust store.
pub const ENV_NATIVE_ROOTS: &str = "ANPR_TLS_NATIVE_ROOTS";

pub use anpr_lambda::trust::AMAZON_TRUST_SERVICES_ROOTS;

/// Builds the HTTPS client (rustls with aws-lc, like the SDK default) trusting the Amazon roots,
/// and the system store too when `native_roots` is set.
pub fn https_client(native_roots: bool) -> Result<SharedHttpClient, HttpClientError> {
    let trust = TrustStore::empty()
        .with_native_roots(native_roots)
        .with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS);
    let context = TlsContext::builder().with_trust_store(trust).build()?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https())
}

/// The SDK config from the default provider chain (env, profile, Lambda role) on
/// [`https_client`]. `AWS_ENDPOINT_URL` (honoured by the SDK) points it at a local stand-in.
pub async fn sdk_config() -> Result<aws_config::SdkConfig, EnvError> {
    let native = std::env::var(ENV_NATIVE_ROOTS).is_ok_and(|v| v == "true");
    let client = https_client(native).map_err(EnvError::Tls)?;
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(client)
        .load()
        .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_roots_are_the_five_amazon_trust_services_certificates() {
        let certs: Vec<_> = rustls_pemfile::certs(&mut &AMAZON_TRUST_SERVICES_ROOTS[..])
            .collect::<Result<_, _>>()
            .expect("every PEM block decodes");
        assert_eq!(certs.len(), 5);
        let text = String::from_utf8_lossy(AMAZON_TRUST_SERVICES_ROOTS);
        assert!(!text.contains("PRIVATE KEY"));
        assert!(https_client(false).is_ok());
    }
}
