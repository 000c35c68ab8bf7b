//! The AWS IoT Device Shadow service over MQTT, without the transport: which topics are
//! requests (`$aws/things/{thing}/shadow/name/{name}/get` and `…/update`), and what the service
//! publishes in answer (`get/accepted|rejected`, `update/accepted|rejected`, and `update/delta`
//! when an update changed `desired` and it differs from `reported`), with the document rules
//! of [`anpr_core::shadow::Shadow`]. Where documents live is a [`ShadowDocs`]: in memory
//! ([`MemoryShadows`], the test harness) or in the local stack's database. Each side carries
//! the messages over its own broker connection.

use anpr_core::shadow::{Shadow, Updated};
use anpr_protocol::shadow::{self as msgs, Rejected};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

/// `update/accepted` (not in `anpr_protocol::shadow`: the camera does not subscribe to it).
pub const UPDATE_ACCEPTED: &str = "update/accepted";

/// A message to publish: topic and payload.
pub type Message = (String, Vec<u8>);

/// What a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `get`: the document.
    Get,
    /// `update`: apply a change.
    Update,
}

/// A request to the shadow service, read from its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The thing.
    pub thing: &'a str,
    /// The shadow's name.
    pub name: &'a str,
    /// The operation.
    pub op: Op,
}

impl<'a> Request<'a> {
    /// `$aws/things/{thing}/shadow/name/{name}/{get|update}` → the request; `None` for any
    /// other topic (the service's own answers included).
    pub fn parse(topic: &'a str) -> Option<Self> {
        let rest = topic.strip_prefix("$aws/things/")?;
        let (thing, rest) = rest.split_once("/shadow/name/")?;
        let (name, op) = rest.split_once('/')?;
        let op = match op {
            msgs::GET => Op::Get,
            msgs::UPDATE => Op::Update,
            _ => return None,
        };
        (!thing.is_empty() && !name.is_empty()).then_some(Self { thing, name, op })
    }

    /// The topic of an answer: `$aws/things/{thing}/shadow/name/{name}/{suffix}`.
    pub fn topic(&self, suffix: &str) -> String {
        topic(self.thing, self.name, suffix)
    }
}

/// `$aws/things/{thing}/shadow/name/{name}/{suffix}`.
pub fn topic(thing: &str, name: &str, suffix: &str) -> String {
    format!("$aws/things/{thing}/shadow/name/{name}/{suffix}")
}

/// The filters the service subscribes to for the shadows called `name` (`+`: every name).
pub fn request_filters(name: &str) -> [String; 2] {
    [topic("+", name, msgs::UPDATE), topic("+", name, msgs::GET)]
}

/// Where the service keeps its documents.
pub trait ShadowDocs {
    /// Applies an update payload to the named shadow (created by its first update), under the
    /// rules of [`Shadow::update`].
    fn update(
        &self,
        thing: &str,
        name: &str,
        payload: &Value,
        now_secs: u64,
    ) -> impl Future<Output = Result<Updated, Rejected>> + Send;

    /// The named shadow, if it exists.
    fn get(&self, thing: &str, name: &str) -> Option<Shadow>;
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// What the service publishes after an update of `thing`'s shadow `name`: `update/accepted`
/// (+ `update/delta`), or `update/rejected`.
pub fn update_answer(thing: &str, name: &str, result: &Result<Updated, Rejected>) -> Vec<Message> {
    match result {
        Ok(u) => {
            let mut out = vec![(topic(thing, name, UPDATE_ACCEPTED), encode(&u.accepted))];
            if let Some(d) = &u.delta {
                out.push((topic(thing, name, msgs::UPDATE_DELTA), encode(d)));
            }
            out
        }
        Err(r) => vec![(topic(thing, name, msgs::UPDATE_REJECTED), encode(r))],
    }
}

/// The service's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// What to publish, in order.
    pub messages: Vec<Message>,
    /// Why the request was refused (a malformed or conflicting update, a missing document).
    pub refused: Option<Rejected>,
}

/// Answers `req` (with its `payload`) from `docs`.
pub async fn answer<D: ShadowDocs + Sync>(
    docs: &D,
    req: Request<'_>,
    payload: &[u8],
    now_secs: u64,
) -> Answer {
    let refuse = |suffix: &str, code: u16, message: String| {
        let r = Rejected { code, message };
        Answer {
            messages: vec![(req.topic(suffix), encode(&r))],
            refused: Some(r),
        }
    };
    match req.op {
        Op::Get => match docs.get(req.thing, req.name) {
            Some(s) => Answer {
                messages: vec![(req.topic(msgs::GET_ACCEPTED), encode(&s.document(now_secs)))],
                refused: None,
            },
            None => refuse(
                msgs::GET_REJECTED,
                404,
                format!("No shadow exists with name: '{}'", req.name),
            ),
        },
        Op::Update => {
            let Ok(doc) = serde_json::from_slice::<Value>(payload) else {
                return refuse(
                    msgs::UPDATE_REJECTED,
                    400,
                    "Payload contains invalid json".into(),
                );
            };
            let result = docs.update(req.thing, req.name, &doc, now_secs).await;
            Answer {
                messages: update_answer(req.thing, req.name, &result),
                refused: result.err(),
            }
        }
    }
}

/// Documents in memory, by thing and shadow name.
#[derive(Debug, Clone, Default)]
pub struct MemoryShadows {
    docs: Arc<Mutex<HashMap<(String, String), Shadow>>>,
}

impl MemoryShadows {
    /// Applies an update payload (what [`ShadowDocs::update`] does, without waiting).
    pub fn apply(
        &self,
        thing: &str,
        name: &str,
        payload: &Value,
        now_secs: u64,
    ) -> Result<Updated, Rejected> {
        let mut g = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
        g.entry((thing.to_owned(), name.to_owned()))
            .or_default()
            .update(payload, now_secs)
    }
}

impl ShadowDocs for MemoryShadows {
    fn update(
        &self,
        thing: &str,
        name: &str,
        payload: &Value,
        now_secs: u64,
    ) -> impl Future<Output = Result<Updated, Rejected>> + Send {
        std::future::ready(self.apply(thing, name, payload, now_secs))
    }

    fn get(&self, thing: &str, name: &str) -> Option<Shadow> {
        self.docs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(thing.to_owned(), name.to_owned()))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_topics_name_their_thing_shadow_and_operation() {
        let r = Request::parse("$aws/things/cam-001/shadow/name/config/update").expect("parsed");
        assert_eq!((r.thing, r.name, r.op), ("cam-001", "config", Op::Update));
        assert_eq!(
            r.topic("update/delta"),
            "$aws/things/cam-001/shadow/name/config/update/delta"
        );
        assert!(Request::parse("$aws/things/cam-001/shadow/name/config/update/accepted").is_none());
        assert!(Request::parse("cam-001/file/status").is_none());
    }

    #[tokio::test]
    async fn an_update_is_accepted_with_its_delta_and_a_get_returns_the_document() {
        let docs = MemoryShadows::default();
        let get = Request::parse("$aws/things/cam-1/shadow/name/config/get").expect("get");
        let missing = answer(&docs, get, b"", 7).await;
        assert_eq!(missing.refused.map(|r| r.code), Some(404));
        assert!(missing.messages[0].0.ends_with("/get/rejected"));

        let update = Request::parse("$aws/things/cam-1/shadow/name/config/update").expect("update");
        let a = answer(&docs, update, br#"{"state":{"desired":{"fps":5}}}"#, 7).await;
        assert_eq!(a.refused, None);
        let topics: Vec<&str> = a.messages.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics,
            [
                "$aws/things/cam-1/shadow/name/config/update/accepted",
                "$aws/things/cam-1/shadow/name/config/update/delta"
            ]
        );
        let got = answer(&docs, get, b"", 8).await;
        let doc: Value = serde_json::from_slice(&got.messages[0].1).expect("JSON");
        assert_eq!(doc["state"]["delta"]["fps"], 5);
        assert_eq!(doc["version"], 1);

        let bad = answer(&docs, update, b"{", 9).await;
        assert_eq!(bad.refused.map(|r| r.code), Some(400));
        assert!(bad.messages[0].0.ends_with("/update/rejected"));
    }
}
