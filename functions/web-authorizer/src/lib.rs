//! The AWS IoT custom authorizer of the web console's MQTT-over-WSS connection: the browser
//! presents the same user pool ID token the HTTP API accepts, and gets an IoT policy for its
//! own notifications only ([`policy`]). One identity from the API to the live connection.
//!
//! The token comes from the authorizer event: `token` (a header or query parameter named by the
//! authorizer's token key), else the MQTT password, else the `token` query parameter of the
//! WebSocket URL. Verification ([`token`]): RS256 with a key of the pool's JWKS ([`jwks`]),
//! fetched once per cold start and fetched again for an unknown key id (a rotation) at most
//! once a minute; issuer, audience (the app client), `token_use` `id`, expiry. The claims map
//! to the caller with the API's own mapping (`anpr_core::access::Caller`): a token without an
//! organisation or a known role is refused like the API refuses it.
//!
//! # Layout
//! - [`jwks`]: the pool's signing keys.
//! - [`token`]: one token's verification.
//! - [`policy`]: the policy a verified user gets.
//! - [`https`]: the JWKS fetched over HTTPS ([`KeySource`]).
//! - [`Authorizer`]: an authorizer event to its response.

pub mod https;
pub mod jwks;
pub mod policy;
pub mod token;

use anpr_core::access::{Caller, ClaimsError};
use base64::Engine as _;
use jwks::Jwks;
use serde_json::{Value, json};
use std::future::Future;
use token::{Expected, TokenError};

/// Seconds between two fetches of the JWKS for unknown key ids.
pub const REFETCH_MIN_SECS: u64 = 60;
/// AWS's bounds on `disconnectAfterInSeconds` and `refreshAfterInSeconds`.
pub const MIN_SESSION_SECS: u64 = 300;
/// See [`MIN_SESSION_SECS`].
pub const MAX_SESSION_SECS: u64 = 86_400;

/// The JWKS could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The HTTP exchange failed.
    #[error("fetching the JWKS: {0}")]
    Http(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The server answered something else than 200.
    #[error("fetching the JWKS: HTTP {0}")]
    Status(u16),
    /// The document is not a JWKS.
    #[error("reading the JWKS")]
    Jwks(#[source] jwks::JwksError),
    /// The URL cannot be used.
    #[error("JWKS URL {0:?}: https (or loopback http) only")]
    Url(String),
}

/// Where the pool's keys come from.
pub trait KeySource: Send + Sync {
    /// The current JWKS.
    fn fetch(&self) -> impl Future<Output = Result<Jwks, FetchError>> + Send;
}

/// Why a connection is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The event carries no token.
    #[error("no token in the event")]
    NoToken,
    /// The token is not valid.
    #[error("token refused")]
    Token(#[source] TokenError),
    /// The claims do not make a caller (no organisation, no known role).
    #[error("claims refused")]
    Claims(#[source] ClaimsError),
    /// The keys could not be had.
    #[error("signing keys unavailable")]
    Keys(#[source] FetchError),
}

#[derive(Debug, Default)]
struct Keys {
    jwks: Option<Jwks>,
    fetched_at: Option<u64>,
}

/// The authorizer: keys cached across invocations, the expected issuer and audience, the
/// scope of the policies it returns.
#[derive(Debug)]
pub struct Authorizer<K> {
    source: K,
    expected: Expected,
    scope: policy::Scope,
    keys: tokio::sync::Mutex<Keys>,
}

/// The token of an authorizer event (see the crate docs for where it is looked for).
pub fn token_of(event: &Value) -> Option<String> {
    if let Some(t) = event
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        return Some(t.to_owned());
    }
    let data = event.get("protocolData");
    if let Some(p) = data
        .and_then(|d| d.pointer("/mqtt/password"))
        .and_then(Value::as_str)
        .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
        .and_then(|p| String::from_utf8(p).ok())
        .filter(|p| !p.is_empty())
    {
        return Some(p);
    }
    let query = data
        .and_then(|d| d.pointer("/http/queryString"))
        .and_then(Value::as_str)?;
    query
        .trim_start_matches('?')
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|t| !t.is_empty())
}

impl<K: KeySource> Authorizer<K> {
    /// An authorizer over `source`'s keys.
    pub fn new(source: K, expected: Expected, scope: policy::Scope) -> Self {
        Self {
            source,
            expected,
            scope,
            keys: tokio::sync::Mutex::new(Keys::default()),
        }
    }

    async fn fetch(&self, keys: &mut Keys, now: u64) -> Result<(), AuthError> {
        let jwks = self.source.fetch().await.map_err(AuthError::Keys)?;
        keys.jwks = Some(jwks);
        keys.fetched_at = Some(now);
        Ok(())
    }

    /// Verifies `token` at `now` (Unix seconds): the caller it names.
    pub async fn verify(&self, token: &str, now: u64) -> Result<(Caller, u64), AuthError> {
        let mut keys = self.keys.lock().await;
        if keys.jwks.is_none() {
            self.fetch(&mut keys, now).await?;
        }
        let jwks = keys
            .jwks
            .as_ref()
            .unwrap_or_else(|| unreachable!("fetched above"));
        let claims = match token::verify(token, jwks, &self.expected, now) {
            Err(TokenError::UnknownKey(kid))
                if keys.fetched_at.is_none_or(|t| now >= t + REFETCH_MIN_SECS) =>
            {
                // A key the pool may have rotated in: fetched again, once.
                tracing::info!(%kid, "unknown key id: fetching the JWKS again");
                self.fetch(&mut keys, now).await?;
                let jwks = keys
                    .jwks
                    .as_ref()
                    .unwrap_or_else(|| unreachable!("fetched above"));
                token::verify(token, jwks, &self.expected, now)
            }
            other => other,
        }
        .map_err(AuthError::Token)?;
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(now);
        let caller = Caller::from_json_claims(&claims).map_err(AuthError::Claims)?;
        Ok((caller, exp))
    }

    /// The response to one authorizer event at `now`.
    pub async fn handle(&self, event: &Value, now: u64) -> Value {
        let verified = match token_of(event) {
            None => Err(AuthError::NoToken),
            Some(t) => self.verify(&t, now).await,
        };
        match verified {
            Ok((caller, exp)) => {
                let secs = exp
                    .saturating_sub(now)
                    .clamp(MIN_SESSION_SECS, MAX_SESSION_SECS);
                tracing::info!(user = %caller.sub, org = %caller.org, "web connection authorised");
                json!({
                    "isAuthenticated": true,
                    "principalId": policy::principal_id(&caller),
                    "disconnectAfterInSeconds": secs,
                    "refreshAfterInSeconds": secs,
                    "policyDocuments": [policy::document(&caller, &self.scope).to_string()],
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "web connection refused");
                json!({
                    "isAuthenticated": false,
                    "principalId": "refused",
                    "disconnectAfterInSeconds": MIN_SESSION_SECS,
                    "refreshAfterInSeconds": MIN_SESSION_SECS,
                    "policyDocuments": [],
                })
            }
        }
    }
}
