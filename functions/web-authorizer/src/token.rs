//! Verifying a user pool ID token: RS256 only, a known key id, the pool's issuer, the app
//! client as audience, `token_use` `id`, and its validity period.
//!
//! ID tokens, not access tokens: the organisation is a custom attribute (`custom:org`), which
//! Cognito puts in ID tokens only, and the HTTP API's JWT authorizer accepts the same token
//! (its audience is the app client).

use crate::jwks::Jwks;
use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use serde_json::{Map, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Clock skew tolerated on `iat` and `nbf`, seconds.
pub const LEEWAY_SECS: u64 = 60;

/// What a valid token must say.
#[derive(Debug, Clone)]
pub struct Expected {
    /// `iss`: `https://cognito-idp.{region}.amazonaws.com/{user pool id}`.
    pub issuer: String,
    /// `aud`: the app client id.
    pub audience: String,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with JSON header and claims.
    #[error("not a JWT")]
    Malformed,
    /// Not signed with RS256 (`none`, HS256, … are never accepted).
    #[error("algorithm {0:?} is not RS256")]
    Algorithm(String),
    /// The header names no key.
    #[error("the token names no key id")]
    NoKeyId,
    /// The key id is not among the pool's keys.
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    /// The signature does not verify with the named key.
    #[error("the signature does not verify")]
    Signature,
    /// Another issuer.
    #[error("issuer {0:?} is not the user pool")]
    Issuer(String),
    /// Another audience.
    #[error("the audience is not the app client")]
    Audience,
    /// Not an ID token.
    #[error("token_use {0:?}: an ID token is expected")]
    TokenUse(String),
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf` or `iat` (beyond the leeway).
    #[error("the token is not yet valid")]
    NotYetValid,
}

fn json(part: &str) -> Result<Map<String, Value>, TokenError> {
    B64.decode(part)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)
}

/// The key id a token's header names, after checking that its algorithm is RS256.
pub fn key_id(token: &str) -> Result<String, TokenError> {
    let header = json(token.split('.').next().unwrap_or_default())?;
    match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => {}
        other => return Err(TokenError::Algorithm(other.unwrap_or_default().to_owned())),
    }
    header
        .get("kid")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(TokenError::NoKeyId)
}

/// Verifies `token` at `now` (Unix seconds) against `keys` and `expected`; its claims.
pub fn verify(
    token: &str,
    keys: &Jwks,
    expected: &Expected,
    now: u64,
) -> Result<Map<String, Value>, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let kid = key_id(token)?;
    let key = keys.key(&kid).ok_or(TokenError::UnknownKey(kid))?;
    let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
    RsaPublicKeyComponents {
        n: &key.n[..],
        e: &key.e[..],
    }
    .verify(
        &RSA_PKCS1_2048_8192_SHA256,
        format!("{h}.{p}").as_bytes(),
        &sig,
    )
    .map_err(|_| TokenError::Signature)?;
    let claims = json(p)?;
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if iss != expected.issuer {
        return Err(TokenError::Issuer(iss.to_owned()));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == expected.audience,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(&expected.audience)),
        _ => false,
    };
    if !aud_ok {
        return Err(TokenError::Audience);
    }
    let token_use = claims
        .get("token_use")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if token_use != "id" {
        return Err(TokenError::TokenUse(token_use.to_owned()));
    }
    match claims.get("exp").and_then(Value::as_u64) {
        Some(exp) if exp > now => {}
        _ => return Err(TokenError::Expired),
    }
    for claim in ["nbf", "iat"] {
        if claims
            .get(claim)
            .and_then(Value::as_u64)
            .is_some_and(|t| t > now + LEEWAY_SECS)
        {
            return Err(TokenError::NotYetValid);
        }
    }
    Ok(claims)
}
