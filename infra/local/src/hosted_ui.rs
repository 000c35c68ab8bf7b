//! The local stand-in for the Cognito hosted UI: the console signs in here exactly as it signs
//! in to Cognito in AWS (`infra/local/console/auth.js`), by the OAuth 2.0 authorization code
//! flow with PKCE, at the same paths under `/local` instead of the pool's domain:
//!
//! - `GET /local/oauth2/authorize?response_type=code&client_id&redirect_uri&state&
//!   code_challenge_method=S256&code_challenge`: a page listing the demo users
//!   ([`crate::tokens::DEMO_USERS`]) in place of the password form; picking one
//!   (`GET /local/oauth2/approve?user=…&…`) redirects to `redirect_uri?code=…&state=…`.
//! - `POST /local/oauth2/token` (form): `grant_type=authorization_code` with `code`,
//!   `client_id`, `redirect_uri` and `code_verifier` (RFC 7636: `BASE64URL(SHA-256(verifier))`
//!   must be the challenge) → `{id_token, refresh_token, expires_in, token_type}`; a code works
//!   once, for five minutes. `grant_type=refresh_token` → a new `id_token`.
//! - `GET /local/logout?client_id&logout_uri` → back to `logout_uri`.
//!
//! As Cognito, it accepts only its app client ([`crate::tokens::AUDIENCE`]), only the
//! registered callback URLs (the console's own, as the template's `CallbackURLs`), only S256;
//! errors are OAuth's `{"error": "invalid_request" | "invalid_grant" | …}`. Not faithful: no
//! access token (the console sends the ID token, as it does to the API in AWS), refresh tokens
//! last as long as the process.

use crate::tokens::{self, Issuer};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How long an authorization code may be exchanged (seconds).
pub const CODE_TTL_SECS: u64 = 300;

/// Where the console's `config.json` points `auth.domain_url` locally.
pub const DOMAIN_PATH: &str = "/local";

#[derive(Debug)]
struct Grant {
    user: String,
    challenge: String,
    redirect_uri: String,
    expires_at: u64,
}

/// The hosted UI's state: codes not yet exchanged and refresh tokens issued.
#[derive(Debug)]
pub struct HostedUi {
    issuer: Arc<Issuer>,
    callback_urls: Vec<String>,
    codes: Mutex<HashMap<String, Grant>>,
    refresh_tokens: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    // aws-lc's generator does not fail on a working system; a zero token would still be
    // single-use and short-lived.
    let _ = SystemRandom::new().fill(&mut b);
    B64.encode(b)
}

/// `BASE64URL(SHA-256(verifier))`, the S256 challenge of a PKCE verifier (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    B64.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref())
}

fn oauth_error(code: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({"error": code, "error_description": description})),
    )
        .into_response()
}

fn params(raw: Option<&str>) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw.unwrap_or(""))
        .map(|v| v.into_iter().collect())
        .unwrap_or_default()
}

/// HTML-escapes text for the sign-in page.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl HostedUi {
    /// The stand-in over the local issuer, redirecting only to `callback_urls`.
    pub fn new(issuer: Arc<Issuer>, callback_urls: Vec<String>) -> Arc<Self> {
        Arc::new(Self {
            issuer,
            callback_urls,
            codes: Mutex::new(HashMap::new()),
            refresh_tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The authorize request's parameters, checked as Cognito checks them: the redirect URI,
    /// or the OAuth error code and description.
    fn authorize_request<'a>(
        &self,
        p: &'a HashMap<String, String>,
    ) -> Result<&'a str, (&'static str, &'static str)> {
        let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
        if get("response_type") != "code" {
            return Err(("unsupported_response_type", "response_type must be code"));
        }
        if get("client_id") != tokens::AUDIENCE {
            return Err(("invalid_client", "unknown client_id"));
        }
        if !self.callback_urls.iter().any(|u| u == get("redirect_uri")) {
            return Err((
                "invalid_request",
                "redirect_uri is not a callback URL of the client",
            ));
        }
        if get("code_challenge_method") != "S256" || get("code_challenge").len() != 43 {
            return Err((
                "invalid_request",
                "PKCE with code_challenge_method=S256 is required",
            ));
        }
        Ok(get("redirect_uri"))
    }

    fn sign_in_page(&self, raw: &str) -> Response {
        let items: String = tokens::DEMO_USERS
            .iter()
            .map(|u| {
                format!(
                    r#"<li><a data-user="{n}" href="{DOMAIN_PATH}/oauth2/approve?user={n}&amp;{q}">{n}</a> ({r}, {o})</li>"#,
                    n = esc(u.name),
                    r = u.role.as_str(),
                    o = esc(u.org),
                    q = esc(raw),
                )
            })
            .collect();
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in</title></head>\
             <body><h1>Sign in to the ANPR fleet console</h1>\
             <p>The local stack's stand-in for the Cognito hosted UI: pick a demo user.</p>\
             <ul>{items}</ul></body></html>"
        ))
        .into_response()
    }

    fn approve(&self, p: &HashMap<String, String>, now: u64) -> Response {
        let redirect = match self.authorize_request(p) {
            Ok(r) => r.to_owned(),
            Err((code, why)) => return oauth_error(code, why),
        };
        let Some(user) = p.get("user").and_then(|u| tokens::demo_user(u)) else {
            return oauth_error("access_denied", "no such user");
        };
        let code = random_token();
        lock(&self.codes).insert(
            code.clone(),
            Grant {
                user: user.name.to_owned(),
                challenge: p.get("code_challenge").cloned().unwrap_or_default(),
                redirect_uri: redirect.clone(),
                expires_at: now + CODE_TTL_SECS,
            },
        );
        let mut q = vec![("code", code)];
        if let Some(s) = p.get("state") {
            q.push(("state", s.clone()));
        }
        let location = format!(
            "{redirect}?{}",
            serde_urlencoded::to_string(&q).unwrap_or_default()
        );
        (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
    }

    fn token(&self, form: &HashMap<String, String>, now: u64) -> Response {
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
        if get("client_id") != tokens::AUDIENCE {
            return oauth_error("invalid_client", "unknown client_id");
        }
        let (user, refresh) = match get("grant_type") {
            "authorization_code" => {
                // One use, whatever comes of it.
                let Some(g) = lock(&self.codes).remove(get("code")) else {
                    return oauth_error("invalid_grant", "unknown or used code");
                };
                if now > g.expires_at {
                    return oauth_error("invalid_grant", "the code expired");
                }
                if g.redirect_uri != get("redirect_uri") {
                    return oauth_error(
                        "invalid_grant",
                        "redirect_uri differs from the authorize request's",
                    );
                }
                if s256(get("code_verifier")) != g.challenge {
                    return oauth_error(
                        "invalid_grant",
                        "code_verifier does not match the code_challenge",
                    );
                }
                let refresh = random_token();
                lock(&self.refresh_tokens).insert(refresh.clone(), g.user.clone());
                (g.user, Some(refresh))
            }
            "refresh_token" => match lock(&self.refresh_tokens).get(get("refresh_token")) {
                Some(u) => (u.clone(), None),
                None => return oauth_error("invalid_grant", "unknown refresh token"),
            },
            _ => return oauth_error("unsupported_grant_type", "grant_type"),
        };
        match self.issuer.token_for(&user, now) {
            Ok(id_token) => {
                let mut body = serde_json::json!({
                    "id_token": id_token,
                    "expires_in": tokens::TOKEN_TTL_SECS,
                    "token_type": "Bearer",
                });
                if let Some(r) = refresh {
                    body["refresh_token"] = r.into();
                }
                ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
            }
            Err(e) => {
                tracing::error!(error = %e, "signing a token failed");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }

    fn logout(&self, p: &HashMap<String, String>) -> Response {
        let to = p.get("logout_uri").map(String::as_str).unwrap_or_default();
        if p.get("client_id").map(String::as_str) != Some(tokens::AUDIENCE)
            || !self.callback_urls.iter().any(|u| u == to)
        {
            return oauth_error(
                "invalid_request",
                "logout_uri is not a sign-out URL of the client",
            );
        }
        (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response()
    }
}

/// The hosted UI's routes.
pub fn routes(ui: Arc<HostedUi>) -> Router {
    let now = anpr_protocol::clock::now_secs;
    Router::new()
        .route(
            "/local/oauth2/authorize",
            get(
                |State(ui): State<Arc<HostedUi>>, RawQuery(raw): RawQuery| async move {
                    let p = params(raw.as_deref());
                    match ui.authorize_request(&p) {
                        Ok(_) => ui.sign_in_page(raw.as_deref().unwrap_or_default()),
                        Err((code, why)) => oauth_error(code, why),
                    }
                },
            ),
        )
        .route(
            "/local/oauth2/approve",
            get(
                move |State(ui): State<Arc<HostedUi>>, RawQuery(raw): RawQuery| async move {
                    ui.approve(&params(raw.as_deref()), now())
                },
            ),
        )
        .route(
            "/local/oauth2/token",
            post(
                move |State(ui): State<Arc<HostedUi>>, body: Bytes| async move {
                    let form = params(std::str::from_utf8(&body).ok());
                    ui.token(&form, now())
                },
            ),
        )
        .route(
            "/local/logout",
            get(
                |State(ui): State<Arc<HostedUi>>, RawQuery(raw): RawQuery| async move {
                    ui.logout(&params(raw.as_deref()))
                },
            ),
        )
        .with_state(ui)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_base64url_of_the_verifiers_sha256() {
        // Computed independently: python3 -c "import hashlib, base64;
        // print(base64.urlsafe_b64encode(hashlib.sha256(b'dBjf…H-M').digest()).rstrip(b'='))"
        assert_eq!(
            s256("dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFzWH-M"),
            "dTPfLm4Koir9oNj40KzBOjL_4YSiMS_l5IERIJuqqos"
        );
    }
}
