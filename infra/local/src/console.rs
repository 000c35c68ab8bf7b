//! The web console's files (`infra/local/console/`, compiled into the binary so nothing is
//! fetched at run time) and its `config.json`: where the request API and the MQTT-over-
//! WebSocket endpoint are, and how a person signs in (the hosted UI: Cognito's in AWS, the
//! local stand-in of [`crate::hosted_ui`] here). The console lists the signed-in
//! user's cameras from `GET /cameras` and subscribes to their organisation's notifications.
//! Deployed as a static site for the AWS stack (`scripts/deploy-console`), the same files are
//! served with a `config.json` written from the stack's outputs: the API Gateway URL, the IoT
//! endpoint's WebSocket URL and the Cognito hosted UI ([`ConsoleAuth`]).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

/// Sign-in through the Cognito hosted UI (authorization code with PKCE): the pool's domain in
/// AWS, the local stand-in (`crate::hosted_ui`) locally.
#[derive(Debug, Clone, Serialize)]
pub struct ConsoleAuth {
    /// The hosted UI's base URL (`https://{domain}.auth.{region}.amazoncognito.com`; locally
    /// `/local` on the console's origin).
    pub domain_url: String,
    /// The user pool app client (public, no secret).
    pub client_id: String,
    /// The IoT custom authorizer the WebSocket connection names (unused locally).
    pub authorizer: String,
}

/// The console's keep-alive unless told otherwise: a PINGREQ a minute while idle.
pub const DEFAULT_KEEPALIVE_SECS: u16 = 120;

/// `config.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ConsoleConfig {
    /// Base URL of the request API (empty: same origin).
    pub api_url: String,
    /// MQTT over WebSocket URL.
    pub mqtt_url: String,
    /// The live connection's MQTT keep-alive (the console pings every half of it): what an idle
    /// console costs (docs/measured.md).
    pub mqtt_keepalive_secs: u16,
    /// How a person signs in.
    pub auth: ConsoleAuth,
    /// Files the simulated cameras have, offered in the request form.
    pub sample_files: Vec<String>,
}

const INDEX: &str = include_str!("../console/index.html");
const APP: &str = include_str!("../console/app.js");
const MQTT: &str = include_str!("../console/mqtt.js");
const AUTH: &str = include_str!("../console/auth.js");
const STYLE: &str = include_str!("../console/style.css");

fn file(ct: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, ct),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// The console's routes.
pub fn routes(config: ConsoleConfig) -> Router {
    let json = serde_json::to_string(&config).unwrap_or_else(|_| "{}".into());
    Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/app.js",
            get(|| async { file("text/javascript; charset=utf-8", APP) }),
        )
        .route(
            "/mqtt.js",
            get(|| async { file("text/javascript; charset=utf-8", MQTT) }),
        )
        .route(
            "/auth.js",
            get(|| async { file("text/javascript; charset=utf-8", AUTH) }),
        )
        .route(
            "/style.css",
            get(|| async { file("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/config.json",
            get(move || {
                let json = json.clone();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "application/json"),
                            (header::CACHE_CONTROL, "no-cache"),
                        ],
                        json,
                    )
                }
            }),
        )
}
