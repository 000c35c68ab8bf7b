//! The caller's identity: the claims the API Gateway JWT authorizer verified. A request
//! without them is refused; the API never parses or trusts a token itself.

use crate::error::ApiError;
pub use anpr_core::Caller;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lambda_http::request::RequestContext;

/// Finds the caller in the request's extensions: a [`Caller`] put there by a trusted local
/// front end, or the API Gateway v2 authorizer's JWT `sub` claim.
pub fn caller_from_parts(parts: &Parts) -> Option<Caller> {
    if let Some(c) = parts.extensions.get::<Caller>() {
        return Some(c.clone());
    }
    match parts.extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => {
            let sub = ctx
                .authorizer
                .as_ref()?
                .jwt
                .as_ref()?
                .claims
                .get("sub")?
                .trim()
                .to_owned();
            (!sub.is_empty()).then_some(Caller { sub })
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Extractor: the verified caller, or `401`.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        caller_from_parts(parts)
            .map(Authenticated)
            .ok_or(ApiError::Unauthorized)
    }
}
