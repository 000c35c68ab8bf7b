//! What a browser may do on the broker's MQTT-over-WebSocket listener: the local counterpart of
//! the policy AWS IoT Core applies to a web identity (the one functions/web-authorizer returns).
//!
//! - **CONNECT**: the password is an ID token of the local issuer ([`crate::tokens`]), verified
//!   like the API verifies it (signature, issuer, audience, expiry) and mapped to the caller by
//!   the cloud's mapping; the client id must be `web-{user}-{anything}` for that token's user,
//!   so one user cannot take over another's session. Anything else: refused at CONNECT.
//! - **SUBSCRIBE**: the user's organisation's notification topic
//!   (`web/org/{org}/notifications`) and nothing else: not `#`, not a camera's topics (plate
//!   reads, presence, shadows), not another organisation's. A browser learns of cameras and
//!   reads through the API. Anything else: a failure return code.
//! - **PUBLISH**: never. A browser has nothing to say to a camera except through the API; a
//!   publish disconnects it.
//! - The listener also refuses a WebSocket handshake whose `Origin` is not the console's own
//!   (`broker::BrokerSettings::console_origins`).
//!
//! Cameras and the cloud's in-process links are not web clients: their client ids never start
//! with `web-` (a camera's is its certificate's name), and this policy leaves them alone.

use crate::tokens::{self, Issuer};
use anpr_core::access::Caller;
use anpr_protocol::topics;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Client ids of web clients start with this.
pub const WEB_CLIENT_PREFIX: &str = "web-";

/// The web clients connected (client id → caller) and what they may do.
#[derive(Debug)]
pub struct WebAccess {
    issuer: Arc<Issuer>,
    sessions: Mutex<HashMap<String, Caller>>,
}

impl WebAccess {
    /// The policy over the issuer's tokens.
    pub fn new(issuer: Arc<Issuer>) -> Arc<Self> {
        Arc::new(Self {
            issuer,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// A CONNECT on the WebSocket listener at `now` (Unix seconds): allowed when `token` is
    /// valid and `client_id` is `web-{its user}-…`.
    pub fn connect(&self, client_id: &str, token: &str, now: u64) -> bool {
        let caller = match self
            .issuer
            .verify(token, now)
            .map_err(|e| e.to_string())
            .and_then(|claims| tokens::caller(&claims).map_err(|e| e.to_string()))
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(client_id, error = %e, "WebSocket CONNECT refused: token");
                return false;
            }
        };
        let prefix = format!(
            "{WEB_CLIENT_PREFIX}{}-",
            topics::sanitize_level(&caller.sub)
        );
        if !client_id.starts_with(&prefix) || client_id.len() == prefix.len() {
            tracing::warn!(client_id, user = %caller.sub, "WebSocket CONNECT refused: the client id is not `{prefix}…`");
            return false;
        }
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(client_id.to_owned(), caller);
        true
    }

    /// The broker's topic policy: may `client_id` publish to `topic` (`publish`) or subscribe
    /// to the filter `topic`?
    pub fn allows(&self, client_id: &str, topic: &str, publish: bool) -> bool {
        if !client_id.starts_with(WEB_CLIENT_PREFIX) {
            return true;
        }
        if publish {
            return false;
        }
        let Some(caller) = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(client_id)
            .cloned()
        else {
            return false;
        };
        topic == topics::org_notifications(caller.org.as_str())
    }
}
