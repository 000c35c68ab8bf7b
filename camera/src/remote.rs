//! Remote configuration through the device shadow `config`: what the camera runs is its
//! configuration file with the settings the cloud desired laid over it
//! ([`anpr_protocol::RemoteConfig`]).
//!
//! Every decision here is pure ([`on_delta`], [`on_document`], [`rollback`], [`confirm`]);
//! the agent loop carries them out. The state that must survive a restart, [`RemoteState`],
//! is written atomically by [`RemoteStore`] (temporary file, fsync, rename, fsync of the
//! directory) *before* anything is applied, so a power cut never leaves half a configuration.
//!
//! - A delta older than the last one acted on is ignored (shadow versions only grow), so a
//!   queued delta re-delivered after a newer `get` cannot undo it.
//! - A desired document that does not parse, or gives a configuration the camera's own
//!   validation refuses, is refused as a whole: the previous configuration stays and the
//!   reason is reported under `config_error`. The refused values are not tried again while
//!   they stay desired (the rest of a later document is); the error is cleared once none is.
//! - A change to the MQTT port, ALPN or keep-alive is a *trial*: applied by reconnecting, and
//!   rolled back if no connection is made within `remote.rollback_secs` (also across a
//!   restart: the trial is in the persisted state). Its report waits for the connection.
//! - Connection changes are rate-limited: one that comes sooner than
//!   `remote.min_connection_change_secs` (one hour by default, the bound the cloud enforces,
//!   [`anpr_protocol::config::MIN_CONNECTION_CHANGE_INTERVAL_SECS`]) after the last one applied
//!   refuses the document, naming the setting and when the next change is allowed. Times are
//!   the shadow service's (the delta's or document's `timestamp`), so the camera measures the
//!   same interval the cloud does, with a minute of slack. The refused values are not
//!   remembered: while they stay desired they are tried again with the next document.

use crate::config::Config;
use anpr_protocol::RemoteConfig;
use anpr_protocol::config::{
    CONFIG_ERROR, CONNECTION_CHANGE_SLACK_SECS, ConfigDocError, ConfigRefusal,
};
use anpr_protocol::shadow::Document;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// File name of the persisted state, in `state_dir`.
pub const STATE_FILE: &str = "remote-config.json";

/// What the camera keeps about its remote configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteState {
    /// Shadow version of the last desired document acted on (applied or refused).
    pub version: u64,
    /// The settings in force over the configuration file.
    pub applied: RemoteConfig,
    /// A connectivity change being tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<Trial>,
    /// Desired values refused (or rolled back), not tried again until the cloud changes them.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub refused: Map<String, Value>,
    /// The error reported for them (cleared, and reported `null`, once none is left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ConfigRefusal>,
    /// When the last connection change was applied (Unix seconds, the shadow service's
    /// clock): the next one is refused until `remote.min_connection_change_secs` later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_changed_at: Option<u64>,
}

/// An applied connectivity change not yet confirmed by a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    /// The settings to go back to.
    pub previous: RemoteConfig,
    /// Shadow version of the desired document tried.
    pub version: u64,
    /// The desired values tried.
    pub tried: Map<String, Value>,
    /// The report to send once connected.
    pub report: Map<String, Value>,
}

/// What to do with a desired document.
#[derive(Debug, Clone)]
pub enum Step {
    /// Nothing (stale, already applied, or already refused); report `report` if not empty.
    Ignore {
        /// Keys to report anyway (e.g. what the camera runs, when the shadow lacks it).
        report: Map<String, Value>,
    },
    /// Persist `next`, run `cfg`; reconnect first if `reconnect`, and report `report` (now,
    /// or once connected when it is a trial).
    Apply {
        /// The new state.
        next: RemoteState,
        /// The configuration to run.
        cfg: Box<Config>,
        /// The MQTT connection settings changed.
        reconnect: bool,
        /// The reported keys.
        report: Map<String, Value>,
    },
    /// Persist `next` (the previous configuration stays) and report `report`.
    Refuse {
        /// The new state.
        next: RemoteState,
        /// The reported keys (`config_error`).
        report: Map<String, Value>,
    },
}

/// Why the persisted state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// Reading, writing, syncing or renaming failed.
    #[error("remote configuration state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a state this build wrote.
    #[error("remote configuration state {path} is corrupt: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The persisted settings no longer give a valid configuration with this file.
    #[error("remote configuration no longer valid over the configuration file: {0}")]
    Invalid(String),
}

/// `file` with `applied` laid over it, validated: the configuration the camera runs when the
/// remote settings are valid over its file ([`in_force`] falls back to the file when not).
pub fn overlay(file: &Config, applied: &RemoteConfig) -> Result<Config, ConfigRefusal> {
    let mut c = file.clone();
    let r = applied;
    if let Some(v) = r.mqtt_port {
        c.mqtt.port = v;
    }
    if let Some(v) = r.mqtt_alpn {
        c.mqtt.alpn = v;
    }
    if let Some(v) = r.keep_alive_secs {
        c.mqtt.keep_alive_secs = v;
    }
    if let Some(v) = r.health_interval_secs {
        c.health.interval_secs = v;
    }
    if let Some(v) = r.upload_max_bytes_per_sec {
        c.upload.max_bytes_per_sec = (v > 0).then_some(v);
    }
    if let Some(v) = r.upload_progress_step_pct {
        c.upload.progress_step_pct = v;
    }
    if let Some(v) = r.outbox_batch_max_reads {
        c.outbox.batch_max_reads = v;
    }
    if let Some(v) = r.outbox_batch_max_age_secs {
        c.outbox.batch_max_age_secs = v;
    }
    match c.recognizer.as_mut() {
        Some(rec) => {
            if let Some(v) = r.recognizer_min_confidence {
                rec.min_score = f32::from(v) / 100.0;
            }
            if let Some(v) = r.recognizer_region {
                rec.region = v;
            }
            if let Some(v) = r.recognizer_group_gap_ms {
                rec.group_gap_ms = u64::from(v);
            }
            if let Some(v) = r.media_quota_bytes {
                c.media_quota_bytes = (v > 0).then_some(v);
            }
        }
        None => {
            let given = [
                (
                    "recognizer_min_confidence",
                    r.recognizer_min_confidence.is_some(),
                ),
                ("recognizer_region", r.recognizer_region.is_some()),
                (
                    "recognizer_group_gap_ms",
                    r.recognizer_group_gap_ms.is_some(),
                ),
                ("media_quota_bytes", r.media_quota_bytes.is_some()),
            ];
            if let Some((name, _)) = given.iter().find(|(_, g)| *g) {
                return Err(error(
                    0,
                    Some(name),
                    "this camera runs no recognizer feed to apply it to",
                ));
            }
        }
    }
    c.validate().map_err(|e| {
        let setting = match &e {
            crate::config::ConfigError::Invalid { setting, .. } => Some(*setting),
            _ => None,
        };
        error(0, setting, &e.to_string())
    })?;
    Ok(c)
}

/// What runs with `applied` over `file`: [`overlay`], or the file alone when the settings
/// no longer validate over it (as the agent does at start).
pub fn in_force(file: &Config, applied: &RemoteConfig) -> Config {
    overlay(file, applied).unwrap_or_else(|_| file.clone())
}

/// The values of `cfg` that remote configuration can set (every one this camera has): what it
/// reports it runs.
pub fn settable(cfg: &Config) -> RemoteConfig {
    let rec = cfg.recognizer.as_ref();
    RemoteConfig {
        recognizer_min_confidence: rec
            .map(|r| (r.min_score * 100.0).round().clamp(0.0, 100.0) as u8),
        recognizer_region: rec.map(|r| r.region),
        recognizer_group_gap_ms: rec.map(|r| u32::try_from(r.group_gap_ms).unwrap_or(u32::MAX)),
        media_quota_bytes: rec.map(|_| cfg.media_quota_bytes.unwrap_or(0)),
        mqtt_port: Some(cfg.mqtt.port),
        mqtt_alpn: Some(cfg.mqtt.alpn),
        keep_alive_secs: Some(cfg.mqtt.keep_alive_secs),
        health_interval_secs: Some(cfg.health.interval_secs),
        upload_max_bytes_per_sec: Some(cfg.upload.max_bytes_per_sec.unwrap_or(0)),
        upload_progress_step_pct: Some(cfg.upload.progress_step_pct),
        outbox_batch_max_reads: Some(cfg.outbox.batch_max_reads),
        outbox_batch_max_age_secs: Some(cfg.outbox.batch_max_age_secs),
    }
}

/// Whether going from `a` to `b` changes the MQTT connection.
pub fn connection_changes(a: &Config, b: &Config) -> bool {
    a.mqtt.port != b.mqtt.port
        || a.mqtt.alpn != b.mqtt.alpn
        || a.mqtt.keep_alive_secs != b.mqtt.keep_alive_secs
}

fn error(version: u64, setting: Option<&str>, reason: &str) -> ConfigRefusal {
    ConfigRefusal {
        version,
        setting: setting.map(str::to_owned),
        reason: reason.chars().take(200).collect(),
        rolled_back: false,
    }
}

fn error_value(e: &ConfigRefusal) -> Value {
    serde_json::to_value(e).unwrap_or(Value::Null)
}

/// Why a connection change at `now` comes too soon after the one at `st.connection_changed_at`,
/// if it does: the error names the first connection setting `asked` gives.
fn too_soon(
    file: &Config,
    st: &RemoteState,
    version: u64,
    asked: &RemoteConfig,
    now: u64,
) -> Option<ConfigRefusal> {
    let min = file.remote.min_connection_change_secs;
    let last = st.connection_changed_at?;
    let next = last.saturating_add(min);
    if min == 0 || now.saturating_add(CONNECTION_CHANGE_SLACK_SECS) >= next {
        return None;
    }
    let given = asked.to_object();
    let setting = RemoteConfig::CONNECTION_SETTINGS
        .iter()
        .find(|k| given.contains_key(**k))
        .copied();
    Some(error(
        version,
        setting,
        &format!(
            "connection settings change at most once every {min} s: the last change was at \
             {last}, the next is allowed from {next} (Unix seconds)"
        ),
    ))
}

/// Decides what to do with a desired document (a delta's `state`, or a document's `delta`)
/// of shadow version `version` received at `now` (Unix seconds, the shadow service's
/// `timestamp`), given the file and the current state.
pub fn on_delta(
    file: &Config,
    st: &RemoteState,
    version: u64,
    delta: &Map<String, Value>,
    now: u64,
) -> Step {
    let nothing = Step::Ignore { report: Map::new() };
    if version <= st.version {
        return nothing;
    }
    // Values refused before and still desired are not tried again; the rest of the
    // document is. Refused values no longer desired are forgotten.
    let still_refused: Map<String, Value> = st
        .refused
        .iter()
        .filter(|(k, v)| delta.get(*k) == Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let fresh: Map<String, Value> = delta
        .iter()
        .filter(|(k, _)| !still_refused.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if fresh.is_empty() {
        return nothing;
    }
    let refuse = |e: ConfigRefusal| {
        let mut next = st.clone();
        next.version = version;
        next.refused = still_refused.clone();
        next.refused.extend(fresh.clone());
        let mut report = Map::new();
        report.insert(CONFIG_ERROR.into(), error_value(&e));
        next.error = Some(e);
        Step::Refuse { next, report }
    };
    let asked = match RemoteConfig::from_object(&fresh) {
        Ok(a) => a,
        Err(e) => {
            let setting = match &e {
                ConfigDocError::UnknownSetting(s) => Some(s.as_str()),
                ConfigDocError::Invalid(v) => Some(v.field),
                ConfigDocError::NotAnObject => None,
            };
            return refuse(error(version, setting, &e.to_string()));
        }
    };
    let mut merged = st.applied.clone();
    merged.merge(&asked);
    let cfg = match overlay(file, &merged) {
        Ok(c) => c,
        Err(mut e) => {
            e.version = version;
            return refuse(e);
        }
    };
    let before = in_force(file, &st.applied);
    let reconnect = connection_changes(&before, &cfg);
    if reconnect && let Some(e) = too_soon(file, st, version, &asked, now) {
        // Refused as a whole, like an invalid document, but not remembered as refused: the
        // values are fine, only early.
        let mut next = st.clone();
        next.version = version;
        next.refused = still_refused;
        let mut report = Map::new();
        report.insert(CONFIG_ERROR.into(), error_value(&e));
        next.error = Some(e);
        return Step::Refuse { next, report };
    }
    let mut next = st.clone();
    next.version = version;
    next.applied = merged;
    next.refused = still_refused;
    if reconnect {
        next.connection_changed_at = Some(now);
    }
    let mut report = asked.to_object();
    if next.refused.is_empty() && next.error.is_some() {
        next.error = None;
        report.insert(CONFIG_ERROR.into(), Value::Null);
    }
    if reconnect {
        next.trial = Some(Trial {
            previous: st.applied.clone(),
            version,
            tried: fresh,
            report: report.clone(),
        });
    }
    Step::Apply {
        next,
        cfg: Box::new(cfg),
        reconnect,
        report,
    }
}

/// Decides what to do with the whole document (`get/accepted`) received at `now`: its delta
/// as [`on_delta`], and the running values the shadow's `reported` lacks or has wrong,
/// reported so the cloud sees what the camera runs.
pub fn on_document(file: &Config, st: &RemoteState, doc: &Document, now: u64) -> Step {
    let step = match &doc.state.delta {
        Some(d) if !d.is_empty() => on_delta(file, st, doc.version, d, now),
        _ => Step::Ignore { report: Map::new() },
    };
    let cfg_now = match &step {
        Step::Apply { cfg, .. } => (**cfg).clone(),
        _ => in_force(file, &st.applied),
    };
    let shadow_reported = doc.state.reported.clone().unwrap_or_default();
    let mut missing: Map<String, Value> = settable(&cfg_now)
        .to_object()
        .into_iter()
        .filter(|(k, v)| shadow_reported.get(k) != Some(v))
        .collect();
    let error_now = match &step {
        Step::Refuse { next, .. } | Step::Apply { next, .. } => next.error.clone(),
        Step::Ignore { .. } => st.error.clone(),
    };
    let shadow_error = shadow_reported.get(CONFIG_ERROR).cloned();
    let want_error = error_now.as_ref().map(error_value);
    if shadow_error != want_error {
        missing.insert(CONFIG_ERROR.into(), want_error.unwrap_or(Value::Null));
    }
    match step {
        Step::Ignore { .. } => Step::Ignore { report: missing },
        Step::Apply {
            mut next,
            cfg,
            reconnect,
            mut report,
        } => {
            if let Some(t) = &mut next.trial {
                // Connection settings are reported only once a connection proves them.
                t.report.extend(missing);
                t.report.extend(report.clone());
                report = t.report.clone();
            } else {
                report.extend(missing);
            }
            Step::Apply {
                next,
                cfg,
                reconnect,
                report,
            }
        }
        Step::Refuse { next, mut report } => {
            for (k, v) in missing {
                report.entry(k).or_insert(v);
            }
            Step::Refuse { next, report }
        }
    }
}

/// The trial failed to connect within its deadline: back to the previous settings, the tried
/// values refused. Returns the state and the report to send once connected again.
pub fn rollback(
    st: &RemoteState,
    file: &Config,
    waited_secs: u64,
) -> (RemoteState, Map<String, Value>) {
    let Some(t) = &st.trial else {
        return (st.clone(), Map::new());
    };
    let mut next = st.clone();
    next.applied = t.previous.clone();
    next.trial = None;
    next.refused.extend(t.tried.clone());
    let setting = t.tried.keys().next().cloned();
    let e = ConfigRefusal {
        version: t.version,
        setting,
        reason: format!("no connection to the broker within {waited_secs} s; rolled back"),
        rolled_back: true,
    };
    let cfg = in_force(file, &next.applied);
    let mut report: Map<String, Value> = settable(&cfg)
        .to_object()
        .into_iter()
        .filter(|(k, _)| t.tried.contains_key(k) || t.report.contains_key(k))
        .collect();
    report.insert(CONFIG_ERROR.into(), error_value(&e));
    next.error = Some(e);
    (next, report)
}

/// The trial connected: it stays. Returns the state and the report it was holding.
pub fn confirm(st: &RemoteState) -> (RemoteState, Map<String, Value>) {
    let mut next = st.clone();
    let report = next.trial.take().map(|t| t.report).unwrap_or_default();
    (next, report)
}

mod store;
pub use store::RemoteStore;

#[cfg(test)]
mod tests;
