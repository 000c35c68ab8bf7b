//! The AWS IoT Device Shadow messages the camera exchanges for its named shadow `config`
//! (shapes as AWS documents them; unknown fields such as `metadata` are ignored).
//!
//! Topics under `$aws/things/{camera_id}/shadow/name/config/` ([`crate::topics::shadow`]):
//! the camera subscribes to `update/delta`, `get/accepted`, `get/rejected` and
//! `update/rejected` (not `update/accepted` or `update/documents`: they echo whole documents
//! and would cost bytes on every change) and publishes `get` (empty payload) and `update`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Suffix of the topic the shadow service publishes the difference desired − reported to.
pub const UPDATE_DELTA: &str = "update/delta";
/// Suffix of the topic a device publishes its reported state to.
pub const UPDATE: &str = "update";
/// Suffix of the topic a refused update is answered on.
pub const UPDATE_REJECTED: &str = "update/rejected";
/// Suffix of the topic a device asks for the whole document on (empty payload).
pub const GET: &str = "get";
/// Suffix of the topic the whole document is answered on.
pub const GET_ACCEPTED: &str = "get/accepted";
/// Suffix of the topic a refused get is answered on (404 when there is no shadow yet).
pub const GET_REJECTED: &str = "get/rejected";

/// `update/delta`: the desired keys that differ from reported, with the shadow's version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Shadow version after the update that caused this delta.
    pub version: u64,
    /// The differing desired keys.
    pub state: Map<String, Value>,
    /// Unix seconds, when the service sent it.
    #[serde(default)]
    pub timestamp: u64,
}

/// `get/accepted`: the whole document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// desired, reported and delta.
    #[serde(default)]
    pub state: DocumentState,
    /// Shadow version.
    #[serde(default)]
    pub version: u64,
    /// Unix seconds.
    #[serde(default)]
    pub timestamp: u64,
}

/// The states of a [`Document`]; an absent state is empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocumentState {
    /// What the cloud wants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<Map<String, Value>>,
    /// What the device runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<Map<String, Value>>,
    /// desired keys that differ from reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Map<String, Value>>,
}

/// `get/rejected`, `update/rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// HTTP-like status: 400 bad document, 404 no shadow, 409 version conflict, …
    pub code: u16,
    /// Why.
    #[serde(default)]
    pub message: String,
}

/// `update` as the device sends it: `{"state":{"reported":{…}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportedUpdate {
    /// Only `reported`.
    pub state: ReportedState,
}

/// The state of a [`ReportedUpdate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportedState {
    /// Keys to set (a `null` value deletes the key).
    pub reported: Map<String, Value>,
}

impl ReportedUpdate {
    /// The payload reporting `reported`.
    pub fn new(reported: Map<String, Value>) -> Self {
        Self {
            state: ReportedState { reported },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aws_delta_with_metadata_parses() {
        let d: Delta = serde_json::from_str(
            r#"{"version":7,"timestamp":1700000000,"state":{"keep_alive_secs":600},
                "metadata":{"keep_alive_secs":{"timestamp":1700000000}},"clientToken":"x"}"#,
        )
        .unwrap();
        assert_eq!(d.version, 7);
        assert_eq!(d.state["keep_alive_secs"], 600);
    }

    #[test]
    fn a_document_without_reported_or_delta_parses() {
        let d: Document =
            serde_json::from_str(r#"{"state":{"desired":{"a":1}},"version":2}"#).unwrap();
        assert_eq!(d.version, 2);
        assert!(d.state.reported.is_none() && d.state.delta.is_none());
    }

    #[test]
    fn a_reported_update_has_the_aws_shape() {
        let mut m = Map::new();
        m.insert("keep_alive_secs".into(), 600.into());
        assert_eq!(
            serde_json::to_string(&ReportedUpdate::new(m)).unwrap(),
            r#"{"state":{"reported":{"keep_alive_secs":600}}}"#
        );
    }
}
