//! The JWKS over HTTPS: hyper with rustls on aws-lc (the SDK's stack), trusting the Amazon
//! roots compiled into `anpr_lambda::trust` (Cognito's endpoints chain to them). Plain HTTP only to
//! a loopback address (tests).

use crate::jwks::Jwks;
use crate::{FetchError, KeySource};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;

/// Largest JWKS accepted.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// The pool's JWKS at one URL.
#[derive(Debug, Clone)]
pub struct HttpsKeys {
    url: hyper::Uri,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

fn http_err(e: impl std::error::Error + Send + Sync + 'static) -> FetchError {
    FetchError::Http(Box::new(e))
}

impl HttpsKeys {
    /// The JWKS at `url`: `https://…`, or `http://` to a loopback address.
    pub fn new(url: &str) -> Result<Self, FetchError> {
        let uri: hyper::Uri = url.parse().map_err(|_| FetchError::Url(url.to_owned()))?;
        let loopback = matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if loopback => {}
            _ => return Err(FetchError::Url(url.to_owned())),
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut &anpr_lambda::trust::AMAZON_TRUST_SERVICES_ROOTS[..])
        {
            roots.add(cert.map_err(http_err)?).map_err(http_err)?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(http_err)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            url: uri,
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }
}

impl KeySource for HttpsKeys {
    async fn fetch(&self) -> Result<Jwks, FetchError> {
        let resp = self.client.get(self.url.clone()).await.map_err(http_err)?;
        if resp.status() != hyper::StatusCode::OK {
            return Err(FetchError::Status(resp.status().as_u16()));
        }
        let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(FetchError::Http)?
            .to_bytes();
        Jwks::parse(&body).map_err(FetchError::Jwks)
    }
}
