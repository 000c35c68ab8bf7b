//! The remote configuration in the loop: the file, what runs, the persisted state
//! (`remote::RemoteStore`), and a shadow message turned into a [`Change`] for the running
//! parts. The deadline of a connection trial is the session's ([`super::session`]); this
//! module persists the trial's start, confirmation and rollback.

use super::faults::Faults;
use crate::config::Config;
use crate::remote::{self, RemoteState, RemoteStore, Step};
use anpr_protocol::clock;
use anpr_protocol::shadow as shadow_msg;
use serde_json::{Map, Value};
use std::time::Instant;
use tokio::sync::watch;

/// What the running parts must do after a shadow message.
#[derive(Debug, Default)]
pub struct Change {
    /// Apply these settings to the running parts (uploader, outbox, health).
    pub hot: Option<Config>,
    /// Reconnect with these settings (a connection trial starts).
    pub reconnect: Option<Config>,
    /// Report these keys now.
    pub report: Option<Map<String, Value>>,
}

/// The remote configuration's state.
#[derive(Debug)]
pub struct RemoteCtl {
    file: Config,
    running: Config,
    state: RemoteState,
    store: RemoteStore,
    trial_started: Instant,
    /// Where the configuration in force is published (the frame feed follows it).
    publish: watch::Sender<Config>,
}

impl RemoteCtl {
    /// Loads the persisted state; what cannot be used is set aside with an error logged, and
    /// the camera runs its file. A trial left by a restart continues ([`Self::in_trial`]).
    pub fn open(file: Config, publish: watch::Sender<Config>) -> Self {
        let store = RemoteStore::new(&file.state_dir);
        let mut state = match store.load() {
            Ok(s) => s,
            Err(e) => {
                let chain = super::faults::Chain(&e);
                tracing::error!(error = %chain, "remote configuration state unusable; running the file");
                if let Err(e) = store.quarantine() {
                    let chain = super::faults::Chain(&e);
                    tracing::error!(error = %chain, "cannot set the state aside");
                }
                RemoteState::default()
            }
        };
        let running = match remote::overlay(&file, &state.applied) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(reason = %e.reason, "remote settings invalid over this file; running the file");
                state.applied = Default::default();
                state.trial = None;
                file.clone()
            }
        };
        if state.trial.is_some() {
            tracing::warn!("a connection trial was in progress at the last stop; it continues");
        }
        publish.send_replace(running.clone());
        Self {
            file,
            running,
            state,
            store,
            trial_started: Instant::now(),
            publish,
        }
    }

    /// The configuration in force.
    pub fn running(&self) -> &Config {
        &self.running
    }

    /// A connection trial is in progress (new connection settings not yet confirmed).
    pub fn in_trial(&self) -> bool {
        self.state.trial.is_some()
    }

    /// Parses a shadow message into a step.
    pub fn on_message(&self, suffix: &str, payload: &[u8], faults: &Faults) -> Step {
        let ignore = Step::Ignore { report: Map::new() };
        match suffix {
            shadow_msg::UPDATE_DELTA => {
                match serde_json::from_slice::<shadow_msg::Delta>(payload) {
                    Ok(d) => remote::on_delta(
                        &self.file,
                        &self.state,
                        d.version,
                        &d.state,
                        shadow_time(d.timestamp),
                    ),
                    Err(e) => {
                        faults.warn("malformed shadow delta ignored", &e);
                        ignore
                    }
                }
            }
            shadow_msg::GET_ACCEPTED => {
                match serde_json::from_slice::<shadow_msg::Document>(payload) {
                    Ok(doc) => remote::on_document(
                        &self.file,
                        &self.state,
                        &doc,
                        shadow_time(doc.timestamp),
                    ),
                    Err(e) => {
                        faults.warn("malformed shadow document ignored", &e);
                        ignore
                    }
                }
            }
            shadow_msg::GET_REJECTED => {
                match serde_json::from_slice::<shadow_msg::Rejected>(payload) {
                    // No shadow yet: create it with what the camera runs.
                    Ok(r) if r.code == 404 => remote::on_document(
                        &self.file,
                        &self.state,
                        &Default::default(),
                        shadow_time(0),
                    ),
                    other => {
                        tracing::warn!(rejected = ?other, "shadow get refused");
                        ignore
                    }
                }
            }
            _ => {
                let r = serde_json::from_slice::<shadow_msg::Rejected>(payload);
                tracing::warn!(rejected = ?r, "configuration report refused by the shadow");
                faults.note(format!("shadow {suffix}: {r:?}"));
                ignore
            }
        }
    }

    fn save(&mut self, next: RemoteState, faults: &Faults) -> bool {
        match self.store.save(&next) {
            Ok(()) => {
                self.state = next;
                true
            }
            Err(e) => {
                // Not persisted, not applied: the shadow will deliver it again.
                faults.error("remote configuration not saved; not applied", &e);
                false
            }
        }
    }

    /// Persists a step and says what the running parts must do.
    pub fn carry_out(&mut self, step: Step, faults: &Faults) -> Change {
        match step {
            Step::Ignore { report } => Change {
                report: (!report.is_empty()).then_some(report),
                ..Change::default()
            },
            Step::Refuse { next, report } => {
                tracing::warn!(error = ?next.error, "desired configuration refused");
                if !self.save(next, faults) {
                    return Change::default();
                }
                Change {
                    report: Some(report),
                    ..Change::default()
                }
            }
            Step::Apply {
                next,
                cfg,
                reconnect,
                report,
            } => {
                if !self.save(next, faults) {
                    return Change::default();
                }
                tracing::info!(
                    version = self.state.version,
                    reconnect,
                    "remote configuration applied"
                );
                self.running = *cfg;
                self.publish.send_replace(self.running.clone());
                let mut change = Change {
                    hot: Some(self.running.clone()),
                    ..Change::default()
                };
                if reconnect {
                    self.trial_started = Instant::now();
                    change.reconnect = Some(self.running.clone());
                } else {
                    change.report = Some(report);
                }
                change
            }
        }
    }

    /// Connected: a trial in progress is confirmed; returns its report.
    pub fn confirm(&mut self, faults: &Faults) -> Option<Map<String, Value>> {
        self.state.trial.as_ref()?;
        let (next, report) = remote::confirm(&self.state);
        self.save(next, faults);
        tracing::info!("connection trial confirmed");
        Some(report)
    }

    /// The trial's deadline passed without a connection: back to the previous settings.
    pub fn roll_back(&mut self, faults: &Faults) -> Option<Map<String, Value>> {
        self.state.trial.as_ref()?;
        let waited = self.trial_started.elapsed().as_secs();
        let (next, report) = remote::rollback(&self.state, &self.file, waited);
        if !self.save(next, faults) {
            return None;
        }
        self.running = remote::in_force(&self.file, &self.state.applied);
        self.publish.send_replace(self.running.clone());
        tracing::warn!(waited, "no connection with the new settings; rolled back");
        faults.note("configuration rolled back: no connection");
        Some(report)
    }
}

/// The shadow service's `timestamp` of a message (Unix seconds), or the camera's clock when
/// the message has none: the time connection changes are rate-limited by.
fn shadow_time(timestamp: u64) -> u64 {
    if timestamp > 0 {
        timestamp
    } else {
        clock::now_ms() / 1000
    }
}
