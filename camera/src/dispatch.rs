//! Message dispatch: a registry of handlers by topic, open to message kinds not yet thought of
//! (shadow deltas, configuration, commands are registered by their modules the same way as
//! file requests). A handler turns a payload into [`Effect`]s the agent loop carries out.
//! A message on a topic nobody registered is logged and reported once per topic, and never
//! stops the agent.

use crate::journal::{Entry, Journal, Phase};
use crate::machine::{self, Decision, Refusal};
use anpr_protocol::{CameraId, FileStatus, FileStatusKind, ReasonCode};
use std::collections::BTreeSet;

/// What a handler asks the agent loop to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Publish a file status (QoS 1) on the camera's status topic.
    Status(FileStatus),
    /// Queue this journaled request for upload.
    Upload(Entry),
    /// Something went wrong that the next health report should mention.
    Error(String),
    /// A message of the configuration shadow (`suffix`: `update/delta`, `get/accepted`, …),
    /// for the agent's remote configuration.
    Shadow {
        /// Topic suffix under the shadow, one of [`anpr_protocol::shadow`]'s.
        suffix: &'static str,
        /// The payload.
        payload: Vec<u8>,
    },
}

/// A handler: payload and current time (Unix seconds) in, effects out.
pub type Handler = Box<dyn FnMut(&[u8], u64) -> Vec<Effect> + Send>;

/// What dispatching one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A handler took it.
    Handled(Vec<Effect>),
    /// No handler for this topic; `first` is true the first time this topic is seen (report
    /// it then, stay quiet after).
    Unknown {
        /// First sighting of this topic.
        first: bool,
    },
}

/// The registry.
pub struct Dispatcher {
    cam: CameraId,
    handlers: Vec<(String, Handler)>,
    unknown: BTreeSet<String>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("cam", &self.cam)
            .field("topics", &self.topics())
            .field("unknown", &self.unknown)
            .finish()
    }
}

impl Dispatcher {
    /// An empty registry for camera `cam`.
    pub fn new(cam: CameraId) -> Self {
        Self {
            cam,
            handlers: Vec::new(),
            unknown: BTreeSet::new(),
        }
    }

    /// Registers a handler for `{camera_id}/{suffix}` (e.g. `file/request`).
    pub fn register(&mut self, suffix: &str, h: Handler) {
        let topic = format!("{}/{suffix}", self.cam);
        self.register_topic(topic, h);
    }

    /// Registers a handler for a full topic (e.g. a shadow delta under `$aws/things/…`). The
    /// topic must belong to this camera, or the broker's policy refuses the subscription.
    pub fn register_topic(&mut self, topic: String, h: Handler) {
        self.handlers.retain(|(t, _)| *t != topic);
        self.handlers.push((topic, h));
    }

    /// The topics to subscribe to (QoS 1), in registration order.
    pub fn topics(&self) -> Vec<String> {
        self.handlers.iter().map(|(t, _)| t.clone()).collect()
    }

    /// Hands a message to its handler.
    pub fn dispatch(&mut self, topic: &str, payload: &[u8], now_secs: u64) -> Outcome {
        match self.handlers.iter_mut().find(|(t, _)| t == topic) {
            Some((_, h)) => Outcome::Handled(h(payload, now_secs)),
            None => {
                let first = self.unknown.len() < 64 && self.unknown.insert(topic.to_owned());
                Outcome::Unknown { first }
            }
        }
    }
}

/// The configuration shadow's handler for messages on `suffix`: handed to the agent as is.
pub fn shadow_handler(suffix: &'static str) -> Handler {
    Box::new(move |payload, _| {
        vec![Effect::Shadow {
            suffix,
            payload: payload.to_vec(),
        }]
    })
}

/// The file request handler: parse, consult the journal, decide, journal, answer.
/// The journal is written before the effects are returned, and the agent acknowledges the
/// message only after that, so a crash never loses an accepted request.
pub fn file_request_handler(journal: Journal) -> Handler {
    Box::new(move |payload, now| on_file_request(&journal, payload, now))
}

/// One file request payload (see [`file_request_handler`]).
pub fn on_file_request(journal: &Journal, payload: &[u8], now: u64) -> Vec<Effect> {
    let req = match machine::parse_file_request(payload) {
        Ok(r) => r,
        Err(Refusal::Reject { id, reason, detail }) => {
            tracing::warn!(%id, reason = reason.as_str(), %detail, "file request refused");
            return vec![
                Effect::Status(FileStatus {
                    id,
                    kind: FileStatusKind::Rejected { reason },
                }),
                Effect::Error(format!("bad request: {detail}")),
            ];
        }
        Err(Refusal::Unanswerable { detail }) => {
            tracing::warn!(%detail, "file request without a usable id dropped");
            return vec![Effect::Error(format!("bad request: {detail}"))];
        }
    };
    let known = match journal.get(&req.id) {
        Ok(e) => e.map(|e| e.phase),
        Err(e) => {
            tracing::error!(error = %e, "journal read failed; treating the request as new");
            None
        }
    };
    let open = match known {
        Some(_) => 0,
        None => match journal.unfinished() {
            Ok((entries, _)) => entries.len(),
            Err(e) => {
                tracing::error!(error = %e, "journal read failed; counting no request in hand");
                0
            }
        },
    };
    let mut effects = Vec::new();
    match machine::decide(known.as_ref(), &req, now, open) {
        Decision::Accept => {
            let entry = Entry {
                req,
                phase: Phase::Accepted,
            };
            match journal.put(&entry) {
                Ok(()) => {
                    effects.push(Effect::Status(FileStatus {
                        id: entry.req.id.clone(),
                        kind: FileStatusKind::Accepted,
                    }));
                    effects.push(Effect::Upload(entry));
                }
                Err(e) => {
                    effects.push(Effect::Status(FileStatus {
                        id: entry.req.id.clone(),
                        kind: FileStatusKind::Failed {
                            reason: ReasonCode::IoError,
                        },
                    }));
                    effects.push(Effect::Error(format!("journal: {e}")));
                }
            }
        }
        Decision::Expire => {
            let entry = Entry {
                req,
                phase: Phase::Done {
                    status: FileStatusKind::Expired,
                    answered: false,
                },
            };
            if let Err(e) = journal.put(&entry) {
                effects.push(Effect::Error(format!("journal: {e}")));
            }
            effects.push(Effect::Status(FileStatus {
                id: entry.req.id,
                kind: FileStatusKind::Expired,
            }));
        }
        Decision::Repeat(kind) => {
            tracing::info!(id = %req.id, "duplicate of a finished request: status repeated");
            effects.push(Effect::Status(FileStatus { id: req.id, kind }));
        }
        Decision::Ignore => {
            tracing::info!(id = %req.id, "duplicate of a request in hand: ignored");
        }
        Decision::Busy => {
            tracing::warn!(id = %req.id, open, "request refused: too many in hand");
            effects.push(Effect::Status(FileStatus {
                id: req.id,
                kind: FileStatusKind::Rejected {
                    reason: ReasonCode::Busy,
                },
            }));
        }
    }
    effects
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam() -> CameraId {
        CameraId::parse("cam-1").unwrap()
    }

    #[test]
    fn a_message_on_an_unknown_topic_is_reported_once_and_nothing_breaks() {
        let mut d = Dispatcher::new(cam());
        d.register(
            "file/request",
            Box::new(|_, _| vec![Effect::Error("x".into())]),
        );
        assert_eq!(d.topics(), vec!["cam-1/file/request".to_owned()]);
        assert_eq!(
            d.dispatch("cam-1/reboot", b"{}", 0),
            Outcome::Unknown { first: true }
        );
        assert_eq!(
            d.dispatch("cam-1/reboot", b"{}", 0),
            Outcome::Unknown { first: false }
        );
        assert_eq!(
            d.dispatch("cam-1/file/request", b"{}", 0),
            Outcome::Handled(vec![Effect::Error("x".into())])
        );
    }

    #[test]
    fn a_request_delivered_twice_is_uploaded_once_also_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let p = br#"{"v":1,"id":"r1","file":"a.mp4","at":10,"exp":100}"#;
        let first = on_file_request(&j, p, 20);
        assert!(matches!(
            first[0],
            Effect::Status(FileStatus {
                kind: FileStatusKind::Accepted,
                ..
            })
        ));
        assert!(matches!(first[1], Effect::Upload(_)));
        assert!(on_file_request(&j, p, 21).is_empty());
        // "Restart": a new journal handle on the same directory, after the upload finished.
        let j2 = Journal::open(dir.path()).unwrap();
        let mut e = j2
            .get(&anpr_protocol::RequestId::parse("r1").unwrap())
            .unwrap()
            .unwrap();
        e.phase = Phase::Done {
            status: FileStatusKind::Uploaded { size: 3 },
            answered: false,
        };
        j2.put(&e).unwrap();
        let again = on_file_request(&j2, p, 500);
        assert_eq!(
            again,
            vec![Effect::Status(FileStatus {
                id: e.req.id,
                kind: FileStatusKind::Uploaded { size: 3 }
            })]
        );
    }

    #[test]
    fn requests_beyond_the_open_limit_are_rejected_busy_until_one_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let p = |i: usize| format!(r#"{{"v":1,"id":"q{i}","file":"a.mp4","at":10,"exp":100}}"#);
        for i in 0..machine::MAX_OPEN_REQUESTS {
            assert!(matches!(
                on_file_request(&j, p(i).as_bytes(), 20)[1],
                Effect::Upload(_)
            ));
        }
        let over = on_file_request(&j, p(999).as_bytes(), 20);
        assert_eq!(
            over,
            vec![Effect::Status(FileStatus {
                id: anpr_protocol::RequestId::parse("q999").unwrap(),
                kind: FileStatusKind::Rejected {
                    reason: ReasonCode::Busy
                },
            })]
        );
        let id = anpr_protocol::RequestId::parse("q0").unwrap();
        let mut e = j.get(&id).unwrap().unwrap();
        e.phase = Phase::Done {
            status: FileStatusKind::Uploaded { size: 1 },
            answered: false,
        };
        j.put(&e).unwrap();
        assert!(matches!(
            on_file_request(&j, p(999).as_bytes(), 21)[1],
            Effect::Upload(_)
        ));
    }

    #[test]
    fn an_expired_request_is_answered_expired_and_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let p = br#"{"v":1,"id":"r2","file":"a.mp4","at":10,"exp":100}"#;
        let out = on_file_request(&j, p, 101);
        assert!(matches!(
            &out[..],
            [Effect::Status(FileStatus {
                kind: FileStatusKind::Expired,
                ..
            })]
        ));
        assert_eq!(
            on_file_request(&j, p, 50),
            out,
            "the journal answers the duplicate"
        );
    }
}
