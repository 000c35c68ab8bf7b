//! The caller's identity: the claims the API Gateway JWT authorizer verified, mapped to a
//! [`Caller`] by the domain's one mapping ([`Caller::from_claims`]). A request without them is
//! refused (`401`), one whose claims name no valid organisation or role too (`403`); the API
//! never parses or trusts a token itself.

use crate::error::ApiError;
pub use anpr_core::Caller;
use anpr_core::ClaimsError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lambda_http::request::RequestContext;

/// Finds the caller in the request's extensions: a [`Caller`] put there by a trusted local
/// front end (which verified the token and used the same mapping), or the API Gateway v2
/// authorizer's JWT claims.
pub fn caller_from_parts(parts: &Parts) -> Result<Caller, ClaimsError> {
    if let Some(c) = parts.extensions.get::<Caller>() {
        return Ok(c.clone());
    }
    match parts.extensions.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            let claims = ctx
                .authorizer
                .as_ref()
                .and_then(|a| a.jwt.as_ref())
                .map(|j| &j.claims)
                .ok_or(ClaimsError::Unauthenticated)?;
            Caller::from_claims(|k| claims.get(k).map(String::as_str))
        }
        _ => Err(ClaimsError::Unauthenticated),
    }
}

/// Extractor: the verified caller, or `401` / `403`.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        caller_from_parts(parts)
            .map(Authenticated)
            .map_err(ApiError::from)
    }
}
