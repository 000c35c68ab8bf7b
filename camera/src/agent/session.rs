//! The MQTT session's state, pure (after rumqttc's `state.rs`: methods "modify the state
//! without doing any network operations"). Each method takes one event (a CONNACK, a PUBACK,
//! a message handled, a timer, a lost connection, a shutdown) at an explicit time on the loop's
//! clock and returns the [`Action`]s the loop carries out, in order; the loop reports back what
//! it could queue ([`Session::queued`], [`Session::batch_queued`]). Randomness (jitter) comes
//! in as a number in `[0, 1)`.
//!
//! What it keeps: connected or not, the fleet-safe reconnect rules (`machine::Reconnect`),
//! the PUBACK tracker, the plate batch in flight and the hold on the next one, the
//! subscriptions waiting for their SUBACK (and the sync and shadow `get` that follow it), the
//! connection trial's deadline, a reconnect for new settings, and the health report's timer.

use super::remote_ctl::Change;
use crate::config::Config;
use crate::dispatch::{Effect, Outcome};
use crate::journal::Entry;
use crate::machine::{self, Reconnect, ReconnectPolicy};
use crate::mqtt;
use crate::pubacks::{Tag, Tracker};
use anpr_protocol::{FileStatus, RequestId};
use rumqttc::v5::ConnectionError;
use rumqttc::v5::mqttbytes::v5::{
    DisconnectReasonCode, PubAckReason, Publish, SubscribeReasonCode,
};
use serde_json::{Map, Value};

/// Time on the loop's clock: milliseconds since the agent started.
pub type Millis = u64;

/// A plate batch refused by the broker is sent again after this long, not in a loop.
pub const REFUSED_BATCH_HOLD_MS: Millis = 300_000;
/// The outbox is looked at most this often: the backlog drains paced.
pub const BATCH_EVERY_MS: Millis = 1000;
/// A reconnect for new settings waits this long, so the acknowledgement of the message that
/// asked for it goes out first.
pub const RECONNECT_AFTER_MS: Millis = 200;

/// What the session needs from the configuration, read once at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The reconnect rules.
    pub reconnect: ReconnectPolicy,
    /// After each CONNACK the first batch waits a random delay in `[0, this]`.
    pub drain_start_max_ms: Millis,
    /// The health report's interval.
    pub health_every_ms: Millis,
    /// How long a connection trial waits for a CONNACK before rolling back (the file's).
    pub rollback_ms: Millis,
    /// The topics subscribed to (the dispatcher's).
    pub topics: Vec<String>,
    /// Remote configuration is on: ask the shadow for changes once subscribed.
    pub remote: bool,
}

impl Settings {
    /// The settings of `cfg`, subscribing to `topics`.
    pub fn new(cfg: &Config, topics: Vec<String>) -> Self {
        Self {
            reconnect: cfg.reconnect_policy(),
            drain_start_max_ms: u64::from(cfg.outbox.drain_start_max_secs) * 1000,
            health_every_ms: cfg.health.interval_secs.saturating_mul(1000),
            rollback_ms: cfg.remote.rollback_secs.saturating_mul(1000),
            topics,
            remote: cfg.remote.enabled,
        }
    }
}

/// What the loop must do, in the order given.
#[derive(Debug)]
pub enum Action {
    /// Subscribe to these topics (QoS 1); if it cannot be queued, tell
    /// [`Session::subscribe_not_queued`].
    Subscribe(Vec<String>),
    /// Record these subscriptions (granted) so that a restart with the same build does not
    /// subscribe again.
    RecordSubscriptions(String),
    /// A connection came up: confirm a connection trial in progress, and report it.
    ConfirmTrial,
    /// The trial's deadline passed without a connection: roll back and report it.
    RollBack,
    /// Publish the retained presence `on` (QoS 0).
    PublishPresence,
    /// Publish the health report (QoS 0).
    PublishHealth,
    /// Publish this status (QoS 1, then [`Session::status_queued`]).
    PublishStatus(FileStatus),
    /// Publish the sync message (QoS 1, then [`Session::queued`] with [`Tag::Other`]).
    PublishSync,
    /// Ask the configuration shadow for its document.
    GetShadow,
    /// Report these configuration keys to the shadow (QoS 1, then [`Session::queued`]).
    PublishReport(Map<String, Value>),
    /// Publish the outbox's next batch if it has one (then [`Session::batch_queued`]; if it
    /// cannot be queued, put it back).
    PublishBatch,
    /// The broker took this batch: acknowledge it in the outbox.
    AckBatch(u64),
    /// The batch in flight was refused: put it back in the outbox.
    RequeueBatch,
    /// This request's final status was delivered: record it answered in the journal.
    MarkAnswered(RequestId),
    /// Hand this journaled request to the upload worker.
    Upload(Entry),
    /// A configuration shadow message for the remote configuration; what it changes comes
    /// back through [`Session::changed`].
    Shadow {
        /// The topic suffix under the shadow.
        suffix: &'static str,
        /// The payload.
        payload: Vec<u8>,
    },
    /// Apply these settings to the running parts (uploader, outbox).
    Tune(Box<Config>),
    /// Reconnect with these settings (then [`Session::redialing`] for the wait).
    Reconnect(Box<Config>),
    /// Acknowledge this message to the broker (after everything it caused).
    Ack(Box<Publish>),
    /// Count this error for the health report (already logged).
    Note(String),
    /// Why the link went down, kept as the last error of the next health report but not
    /// counted: the loop acts on it (it reconnects).
    LinkDown(String),
    /// Do not poll the connection before this time (or the connection trial's deadline, or a
    /// shutdown, whichever comes first).
    BackOff {
        /// Until when.
        until: Millis,
    },
    /// Shutdown: stop the upload worker at a part boundary, publishing its last statuses.
    StopUploads,
    /// Shutdown: publish the retained presence `off`.
    PublishOffline,
    /// Shutdown: flush the outbox to disk.
    SyncOutbox,
    /// Shutdown: say goodbye to the broker.
    Disconnect,
}

/// The session.
#[derive(Debug)]
pub struct Session {
    settings: Settings,
    link: Reconnect,
    connected: bool,
    /// This connection had its CONNACK (for the reconnect rules).
    up: bool,
    /// What the broker's DISCONNECT said, if it sent one.
    told: Option<DisconnectReasonCode>,
    tracker: Tracker,
    batch_in_flight: Option<u64>,
    batch_hold_until: Millis,
    next_batch: Millis,
    /// Subscriptions requested, recorded once granted.
    subscribing: Option<String>,
    sync_after_suback: bool,
    get_after_suback: bool,
    trial_deadline: Option<Millis>,
    reconnect: Option<(Box<Config>, Millis)>,
    health_every: Millis,
    next_health: Millis,
    stopping: bool,
}

impl Session {
    /// A session starting at `now`, not connected; `in_trial` if a connection trial was in
    /// progress at the last stop (it gets a new deadline).
    pub fn new(settings: Settings, now: Millis, in_trial: bool) -> Self {
        let health_every = settings.health_every_ms.max(1);
        Self {
            link: Reconnect::new(settings.reconnect),
            connected: false,
            up: false,
            told: None,
            tracker: Tracker::default(),
            batch_in_flight: None,
            batch_hold_until: now,
            next_batch: now,
            subscribing: None,
            sync_after_suback: false,
            get_after_suback: false,
            trial_deadline: in_trial.then(|| now + settings.rollback_ms),
            reconnect: None,
            health_every,
            next_health: now + health_every,
            stopping: false,
            settings,
        }
    }

    /// Connected (CONNACK seen, no error since).
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The connection trial's deadline, if one is running.
    pub fn trial_deadline(&self) -> Option<Millis> {
        self.trial_deadline
    }

    /// The wait before the first CONNECT: a fleet powered on together does not connect in
    /// lockstep.
    pub fn boot(&mut self, now: Millis, unit: f64) -> Millis {
        self.link.boot(now, unit)
    }

    /// CONNACK: subscribe on a new session (or when this build subscribes to other topics
    /// than `recorded`, the ones that made the session), confirm a trial, say present, report
    /// health; the backlog starts draining after a random delay.
    pub fn connack(
        &mut self,
        now: Millis,
        session_present: bool,
        recorded: &str,
        unit: f64,
    ) -> Vec<Action> {
        self.link.connected(now);
        self.up = true;
        self.told = None;
        self.connected = true;
        // A backlog starts draining at a random point, not with the whole fleet.
        let start = now + machine::drain_start_ms(self.settings.drain_start_max_ms, unit);
        self.batch_hold_until = self.batch_hold_until.max(start);
        tracing::info!(session_present, "connected");
        let mut actions = Vec::new();
        let want = self.settings.topics.join("\n");
        if !session_present || recorded != want {
            // Recorded once the broker grants them (SUBACK): a kill before that subscribes
            // again at the next start.
            self.subscribing = Some(want);
            // A new session lost what was queued in the old one: once subscribed, ask the
            // cloud for the requests still open.
            self.sync_after_suback = !session_present;
            // A change made while the session was gone is in the shadow.
            self.get_after_suback = self.settings.remote;
            actions.push(Action::Subscribe(self.settings.topics.clone()));
        }
        self.trial_deadline = None;
        actions.extend([
            Action::ConfirmTrial,
            Action::PublishPresence,
            Action::PublishHealth,
        ]);
        actions
    }

    /// The subscribe request could not be queued: nothing waits for its SUBACK.
    pub fn subscribe_not_queued(&mut self) {
        self.subscribing = None;
        self.sync_after_suback = false;
        self.get_after_suback = false;
    }

    /// SUBACK: every refusal is counted; granted subscriptions are recorded; then the sync
    /// and the shadow `get` the subscription was waiting for.
    pub fn suback(&mut self, codes: &[SubscribeReasonCode]) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut granted = true;
        for code in codes {
            if !matches!(code, SubscribeReasonCode::Success(_)) {
                tracing::error!(code = ?code, "subscription refused by the broker");
                actions.push(Action::Note(format!("subscribe refused: {code:?}")));
                granted = false;
            }
        }
        if let Some(want) = self.subscribing.take()
            && granted
        {
            actions.push(Action::RecordSubscriptions(want));
        }
        if std::mem::take(&mut self.sync_after_suback) {
            actions.push(Action::PublishSync);
        }
        if std::mem::take(&mut self.get_after_suback) {
            actions.push(Action::GetShadow);
        }
        actions
    }

    /// A QoS 1 publish tagged `tag` was queued; its PUBACK will be matched to it.
    pub fn queued(&mut self, tag: Tag) {
        self.tracker.expect(tag);
    }

    /// A status was queued: a final one is marked answered on its PUBACK.
    pub fn status_queued(&mut self, s: &FileStatus) {
        let tag = if s.kind.is_final() {
            Tag::Final(s.id.clone())
        } else {
            Tag::Other
        };
        self.queued(tag);
    }

    /// The outbox's batch `seq` was queued: no other until its PUBACK.
    pub fn batch_queued(&mut self, seq: u64) {
        self.queued(Tag::Batch(seq));
        self.batch_in_flight = Some(seq);
    }

    /// The client sent a publish with packet id `pkid`.
    pub fn sent(&mut self, pkid: u16) {
        self.tracker.sent(pkid);
    }

    /// PUBACK for packet `pkid`: a delivered final status is answered, a delivered batch
    /// acknowledged; a refused one is counted, and a refused batch waits
    /// [`REFUSED_BATCH_HOLD_MS`] before it is sent again.
    pub fn puback(&mut self, now: Millis, pkid: u16, reason: PubAckReason) -> Vec<Action> {
        let delivered = matches!(
            reason,
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers
        );
        match self.tracker.acked(pkid) {
            Some(Tag::Final(id)) if delivered => vec![Action::MarkAnswered(id)],
            Some(Tag::Final(id)) => {
                // Published again at the next start, not in a loop.
                tracing::error!(%id, reason = ?reason, "final status refused by the broker");
                vec![Action::Note(format!("status refused: {reason:?}"))]
            }
            Some(Tag::Batch(seq)) => {
                self.batch_in_flight = None;
                if delivered {
                    return vec![Action::AckBatch(seq)];
                }
                // Refused (e.g. not authorised): sent again later, not in a loop.
                tracing::error!(reason = ?reason, "plate batch refused by the broker");
                self.batch_hold_until = now + REFUSED_BATCH_HOLD_MS;
                vec![
                    Action::Note(format!("plate batch refused: {reason:?}")),
                    Action::RequeueBatch,
                ]
            }
            Some(Tag::Other) | None => Vec::new(),
        }
    }

    /// A message was dispatched (`outcome`): its effects become actions, then its
    /// acknowledgement (only now: the journal holds the request).
    pub fn incoming(&mut self, publish: Publish, outcome: Outcome) -> Vec<Action> {
        let mut actions = Vec::new();
        match outcome {
            Outcome::Handled(effects) => {
                actions.extend(effects.into_iter().map(|e| match e {
                    Effect::Status(s) => Action::PublishStatus(s),
                    Effect::Upload(entry) => Action::Upload(entry),
                    Effect::Error(msg) => Action::Note(msg),
                    Effect::Shadow { suffix, payload } => Action::Shadow { suffix, payload },
                }));
            }
            Outcome::Unknown { first: true } => {
                let topic = String::from_utf8_lossy(&publish.topic);
                tracing::warn!(%topic, "message on a topic with no handler (reported once)");
                actions.push(Action::Note(format!("no handler for {topic}")));
            }
            Outcome::Unknown { first: false } => {}
        }
        actions.push(Action::Ack(Box::new(publish)));
        actions
    }

    /// The remote configuration changed: settings for the running parts, a health interval
    /// restarted, a reconnect (a connection trial starts) and a report.
    pub fn changed(&mut self, now: Millis, change: Change) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Some(c) = change.hot {
            let every = c.health.interval_secs.saturating_mul(1000).max(1);
            if every != self.health_every {
                self.health_every = every;
                self.next_health = now + every;
            }
            actions.push(Action::Tune(Box::new(c)));
        }
        if let Some(c) = change.reconnect {
            self.reconnect = Some((Box::new(c), now + RECONNECT_AFTER_MS));
            self.trial_deadline = Some(now + self.settings.rollback_ms);
        }
        if let Some(report) = change.report {
            actions.push(Action::PublishReport(report));
        }
        actions
    }

    /// The client now uses the new settings: the connection starts over after the returned
    /// wait (never two CONNECTs closer than the policy allows).
    pub fn redialing(&mut self, now: Millis) -> Millis {
        self.connected = false;
        self.up = false;
        self.link.redial(now)
    }

    /// The broker sent DISCONNECT: its reason decides the back-off when the connection ends.
    pub fn disconnect(&mut self, reason: DisconnectReasonCode) {
        tracing::warn!(reason = ?reason, "broker disconnected us");
        self.told = Some(reason);
    }

    /// The connection failed or was lost: back off by the fleet-safe rules.
    pub fn link_lost(&mut self, now: Millis, err: &ConnectionError, unit: f64) -> Vec<Action> {
        self.connected = false;
        let why = mqtt::link_down(err, std::mem::take(&mut self.up), self.told.take());
        let delay = self.link.down(now, why, unit);
        let error = super::faults::Chain(err);
        tracing::warn!(%error, ?why, delay_ms = delay, "MQTT connection lost; reconnecting after back-off");
        vec![
            Action::LinkDown(format!("mqtt: {error}")),
            Action::BackOff { until: now + delay },
        ]
    }

    /// The timers due at `now`: the health report, a reconnect for new settings, a trial's
    /// rollback (only while not connected), the next plate batch.
    pub fn tick(&mut self, now: Millis) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.stopping {
            return actions;
        }
        if now >= self.next_health {
            self.next_health = now + self.health_every;
            actions.push(Action::PublishHealth);
        }
        if self.reconnect.as_ref().is_some_and(|(_, at)| now >= *at)
            && let Some((cfg, _)) = self.reconnect.take()
        {
            actions.push(Action::Reconnect(cfg));
        }
        if !self.connected && self.trial_deadline.is_some_and(|d| now >= d) {
            self.trial_deadline = None;
            actions.push(Action::RollBack);
        }
        if self.batch_at().is_some_and(|at| now >= at) {
            self.next_batch = now + BATCH_EVERY_MS;
            actions.push(Action::PublishBatch);
        }
        actions
    }

    /// When [`Self::tick`] has something to do next.
    pub fn next_wake(&self) -> Option<Millis> {
        if self.stopping {
            return None;
        }
        [
            Some(self.next_health),
            self.reconnect.as_ref().map(|(_, at)| *at),
            self.trial_deadline.filter(|_| !self.connected),
            self.batch_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When the next batch may go: connected, none in flight, not held.
    fn batch_at(&self) -> Option<Millis> {
        (self.connected && self.batch_in_flight.is_none())
            .then(|| self.batch_hold_until.max(self.next_batch))
    }

    /// Shutdown: the worker stops first (its last statuses still go out), then the goodbye.
    pub fn shutdown(&mut self) -> Vec<Action> {
        self.stopping = true;
        vec![
            Action::StopUploads,
            Action::PublishOffline,
            Action::SyncOutbox,
            Action::Disconnect,
        ]
    }
}

#[cfg(test)]
mod tests;
