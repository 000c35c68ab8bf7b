//! The agent's configuration file (TOML): every setting, its default, and its validation at
//! start with an error that names the setting. `camera/camera.example.toml` (every setting,
//! commented) and the table of `docs/camera.md` are the reference; the doc comments here are
//! the same text, and `camera/tests/config_reference.rs` checks that all three name the same
//! settings.
//!
//! A file is read with [`Config::load`] or [`Config::parse`]; a configuration is built in code
//! with [`Config::builder`] (the same defaults and checks) and written as its file with
//! `Config::to_toml` (feature `config-writer`: the tests and the local stack write files, the
//! agent only reads them). The file's sections are the `*Section` types.
//!
//! Paths follow the project's one rule for paths a user gives (docs/camera.md, "Paths"): a
//! relative path is resolved once, against the current directory of the command that reads
//! it, when the file is read ([`Config::load`], [`Config::parse`]); from then on every path in a
//! `Config` is absolute, and [`Config::validate`] refuses one that is not.
//!
//! Here: [`Config`], its loading, paths and validation, [`ConfigError`]; in `sections` the
//! file's sections, in `defaults` every default, in `builder` the [`ConfigBuilder`].

use anpr_protocol::{CameraId, DetectorKind, PlateRegion, ReaderKind, topics};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod builder;
mod defaults;
mod sections;
pub use builder::ConfigBuilder;
pub use defaults::DEFAULT_MAX_FILE_BYTES;
pub use sections::*;

/// The smallest part S3 accepts in a multipart upload (except the last part).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// The largest MQTT packet AWS IoT Core accepts.
pub const MAX_PACKET: u32 = 128 * 1024;
/// A connection lost this soon after CONNACK counts as a refusal (duplicate client id,
/// policy), milliseconds.
pub const IMMEDIATE_DROP_MS: u64 = 10_000;
/// The least `recognizer.detector_side`, pixels.
pub const MIN_DETECTOR_SIDE: u32 = 160;
/// The most `recognizer.detector_side` and `recognizer.finer_side`, pixels.
pub const MAX_DETECTOR_SIDE: u32 = 1920;

/// Why the configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// Path of the file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown setting, or a value of the wrong type.
    #[error("config file {path}: {source}")]
    Parse {
        /// Path of the file.
        path: PathBuf,
        /// The TOML error (names line and setting).
        #[source]
        source: toml::de::Error,
    },
    /// A relative path could not be resolved: the current directory is unknown.
    #[error("config: cannot resolve relative paths against the current directory: {source}")]
    CurrentDir {
        /// The I/O error of `getcwd`.
        #[source]
        source: std::io::Error,
    },
    /// A setting is out of range or inconsistent.
    #[error("config setting `{setting}`: {reason}")]
    Invalid {
        /// Dotted name of the setting.
        setting: &'static str,
        /// Why.
        reason: String,
    },
}

/// A `Config` built in code with a relative path (files are resolved when read).
const NOT_RESOLVED: &str =
    "must be an absolute path (call Config::resolve_paths, as Config::load and Config::parse do)";

/// Whether the detector's looks are ones a camera may set: `recognizer.detector_side` in
/// [`MIN_DETECTOR_SIDE`]..=[`MAX_DETECTOR_SIDE`], `recognizer.finer_side` 0 (none) or above it
/// up to [`MAX_DETECTOR_SIDE`]. Also checks `anpr-camera eval --detector-side --finer-side`.
pub fn check_detector_sides(detector_side: u32, finer_side: u32) -> Result<(), ConfigError> {
    if !(MIN_DETECTOR_SIDE..=MAX_DETECTOR_SIDE).contains(&detector_side) {
        return Err(invalid(
            "recognizer.detector_side",
            format!(
                "must be {MIN_DETECTOR_SIDE}..={MAX_DETECTOR_SIDE} (pixels, the frame's longer side)"
            ),
        ));
    }
    if finer_side != 0 && !(detector_side + 1..=MAX_DETECTOR_SIDE).contains(&finer_side) {
        return Err(invalid(
            "recognizer.finer_side",
            format!(
                "must be 0 (no finer look) or above recognizer.detector_side, up to {MAX_DETECTOR_SIDE}"
            ),
        ));
    }
    Ok(())
}

/// Whether `recognizer.reread_below` is a read's score, 0..=1. Also checks `anpr-camera eval
/// --reread-below`.
pub fn check_reread_below(score: f32) -> Result<(), ConfigError> {
    check_score("recognizer.reread_below", score, "never read again")
}

/// Whether `recognizer.finer_below` is a read's score, 0..=1. Also checks `anpr-camera eval
/// --finer-below`.
pub fn check_finer_below(score: f32) -> Result<(), ConfigError> {
    check_score(
        "recognizer.finer_below",
        score,
        "only frames without any read",
    )
}

/// Whether `setting`, a bar a read's score is held against, is 0..=1; the error says what 0
/// means for it (`zero`).
fn check_score(setting: &'static str, score: f32, zero: &str) -> Result<(), ConfigError> {
    if !(0.0..=1.0).contains(&score) {
        return Err(invalid(
            setting,
            format!("must be 0..=1 (a read's score; 0: {zero})"),
        ));
    }
    Ok(())
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The camera id: AWS IoT thing name, MQTT client id and certificate CN.
    pub camera_id: CameraId,
    /// Directory whose files may be requested; nothing outside it is ever uploaded.
    pub media_dir: PathBuf,
    /// Directory for the agent's own state (request journal, upload checkpoints, outbox).
    pub state_dir: PathBuf,
    /// Largest total size of `media_dir`, bytes; beyond it the oldest files are deleted after
    /// each saved crop or frame, never one an unfinished request refers to. None: no quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_quota_bytes: Option<u64>,
    /// MQTT connection to AWS IoT Core.
    pub mqtt: MqttSection,
    /// Uploads to S3.
    pub upload: UploadSection,
    /// The AWS IoT credentials provider.
    pub credentials: CredentialsSection,
    /// Health reports.
    #[serde(default)]
    pub health: HealthSection,
    /// Plate-read batching.
    #[serde(default)]
    pub outbox: OutboxSection,
    /// Remote configuration through the device shadow.
    #[serde(default)]
    pub remote: RemoteSection,
    /// On-device recognition of the frames dropped in a watched directory; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recognizer: Option<RecognizerSection>,
}

/// `a` and `b` are the same directory or one is inside the other (compared as written, and
/// canonicalised when both exist).
fn overlaps(a: &Path, b: &Path) -> bool {
    if a.starts_with(b) || b.starts_with(a) {
        return true;
    }
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a.starts_with(&b) || b.starts_with(&a),
        _ => false,
    }
}

/// `file` is inside `dir` (compared as written, and canonicalised when both exist).
fn inside(file: &Path, dir: &Path) -> bool {
    if file.starts_with(dir) {
        return true;
    }
    match (std::fs::canonicalize(file), std::fs::canonicalize(dir)) {
        (Ok(f), Ok(d)) => f.starts_with(&d),
        _ => false,
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_owned(),
                source,
            },
            other => other,
        })
    }

    /// Parses and validates configuration text; relative paths in it are resolved against the
    /// current directory (once, here).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::new(),
            source,
        })?;
        cfg.resolved_and_valid()
    }

    /// A configuration built in code ([`ConfigBuilder`]): the required settings here and in
    /// [`ConfigBuilder::mqtt`], [`ConfigBuilder::upload`] and [`ConfigBuilder::credentials`],
    /// every other at the default a file that omits it gets.
    pub fn builder(
        camera_id: CameraId,
        media_dir: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
    ) -> ConfigBuilder {
        ConfigBuilder {
            camera_id,
            media_dir: media_dir.into(),
            state_dir: state_dir.into(),
            mqtt: None,
            upload: None,
            credentials: None,
            health: HealthSection::default(),
            outbox: OutboxSection::default(),
            remote: RemoteSection::default(),
            media_quota_bytes: None,
            recognizer: None,
        }
    }

    /// The configuration as the text of its file: [`Config::parse`] of it gives it back.
    /// Every setting is written, defaults included. Feature `config-writer` (the tests and the
    /// local stack write files; the agent only reads them).
    #[cfg(feature = "config-writer")]
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// Relative paths resolved against the current directory, then validated.
    fn resolved_and_valid(mut self) -> Result<Self, ConfigError> {
        if self.paths_mut().iter().any(|p| p.is_relative()) {
            let cwd =
                std::env::current_dir().map_err(|source| ConfigError::CurrentDir { source })?;
            self.resolve_paths(&cwd);
        }
        self.validate()?;
        Ok(self)
    }

    /// Makes every relative path of the configuration absolute against `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in self.paths_mut() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// Every path setting, by name, as the command resolved it (`anpr-camera check-config`
    /// prints them so an installer sees what the agent will use).
    pub fn paths(&self) -> Vec<(&'static str, &Path)> {
        let mut out = vec![
            ("media_dir", self.media_dir.as_path()),
            ("state_dir", self.state_dir.as_path()),
            ("mqtt.ca_file", self.mqtt.ca_file.as_path()),
            ("mqtt.cert_file", self.mqtt.cert_file.as_path()),
            ("mqtt.key_file", self.mqtt.key_file.as_path()),
        ];
        if let Some(ca) = &self.credentials.ca_file {
            out.push(("credentials.ca_file", ca.as_path()));
        }
        if let Some(ca) = &self.upload.ca_file {
            out.push(("upload.ca_file", ca.as_path()));
        }
        if let Some(r) = &self.recognizer {
            out.push(("recognizer.watch_dir", r.watch_dir.as_path()));
            if let Some(m) = &r.models_dir {
                out.push(("recognizer.models_dir", m.as_path()));
            }
        }
        out
    }

    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        let mut out = vec![
            &mut self.media_dir,
            &mut self.state_dir,
            &mut self.mqtt.ca_file,
            &mut self.mqtt.cert_file,
            &mut self.mqtt.key_file,
        ];
        if let Some(ca) = &mut self.credentials.ca_file {
            out.push(ca);
        }
        if let Some(ca) = &mut self.upload.ca_file {
            out.push(ca);
        }
        if let Some(r) = &mut self.recognizer {
            out.push(&mut r.watch_dir);
            if let Some(m) = &mut r.models_dir {
                out.push(m);
            }
        }
        out
    }

    /// Checks ranges and consistency; the error names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.media_dir.is_absolute() {
            return Err(invalid("media_dir", NOT_RESOLVED));
        }
        if !self.state_dir.is_absolute() {
            return Err(invalid("state_dir", NOT_RESOLVED));
        }
        if self.state_dir.starts_with(&self.media_dir) {
            return Err(invalid("state_dir", "must not be inside media_dir"));
        }
        let m = &self.mqtt;
        // Anything in the media directory can be requested (and so uploaded): never the
        // camera's private key or certificate.
        for (name, path) in [
            ("mqtt.key_file", &m.key_file),
            ("mqtt.cert_file", &m.cert_file),
        ] {
            if inside(path, &self.media_dir) {
                return Err(invalid(
                    name,
                    "must not be inside media_dir (any file there can be requested)",
                ));
            }
        }
        if m.host.trim().is_empty() {
            return Err(invalid("mqtt.host", "must not be empty"));
        }
        if m.port == 443 && !m.alpn {
            return Err(invalid(
                "mqtt.alpn",
                "AWS IoT Core needs ALPN x-amzn-mqtt-ca for MQTT on port 443: set alpn = true",
            ));
        }
        if !(30..=1200).contains(&m.keep_alive_secs) {
            return Err(invalid(
                "mqtt.keep_alive_secs",
                "must be 30..=1200 (AWS limits)",
            ));
        }
        if m.reconnect_initial_ms == 0 || m.reconnect_max_secs == 0 {
            return Err(invalid(
                "mqtt.reconnect_initial_ms",
                "back-off must be positive",
            ));
        }
        if m.reconnect_initial_ms > m.reconnect_max_secs * 1000 {
            return Err(invalid(
                "mqtt.reconnect_initial_ms",
                "must not exceed mqtt.reconnect_max_secs",
            ));
        }
        if m.connect_min_interval_ms < 1000 {
            return Err(invalid(
                "mqtt.connect_min_interval_ms",
                "must be at least 1000 (AWS allows one CONNECT per second per client id)",
            ));
        }
        if m.reconnect_stable_secs == 0 {
            return Err(invalid("mqtt.reconnect_stable_secs", "must be positive"));
        }
        if m.reconnect_refused_secs > 86_400 || m.boot_jitter_secs > 86_400 {
            return Err(invalid(
                "mqtt.reconnect_refused_secs",
                "reconnect_refused_secs and boot_jitter_secs must be at most 86400",
            ));
        }
        let u = &self.upload;
        if u.bucket.trim().is_empty() {
            return Err(invalid("upload.bucket", "must not be empty"));
        }
        if u.region.trim().is_empty() {
            return Err(invalid("upload.region", "must not be empty"));
        }
        if u.part_size_bytes < MIN_PART_SIZE {
            return Err(invalid(
                "upload.part_size_bytes",
                "S3 needs at least 5 MiB (5242880)",
            ));
        }
        if u.multipart_threshold_bytes < u.part_size_bytes {
            return Err(invalid(
                "upload.multipart_threshold_bytes",
                "must be at least upload.part_size_bytes",
            ));
        }
        if u.max_bytes_per_sec == Some(0) {
            return Err(invalid(
                "upload.max_bytes_per_sec",
                "must be positive (omit for no cap)",
            ));
        }
        if !(1..=100).contains(&u.progress_step_pct) {
            return Err(invalid("upload.progress_step_pct", "must be 1..=100"));
        }
        if u.retry_initial_secs == 0 || u.retry_initial_secs > u.retry_max_secs {
            return Err(invalid(
                "upload.retry_initial_secs",
                "must be positive and at most upload.retry_max_secs",
            ));
        }
        if u.max_attempts == 0 {
            return Err(invalid("upload.max_attempts", "must be at least 1"));
        }
        if self.credentials.host.trim().is_empty() {
            return Err(invalid("credentials.host", "must not be empty"));
        }
        if self.credentials.role_alias.trim().is_empty()
            || self.credentials.role_alias.contains('/')
        {
            return Err(invalid(
                "credentials.role_alias",
                "must be a non-empty name without '/'",
            ));
        }
        if !(60..=604_800).contains(&self.health.interval_secs) {
            return Err(invalid("health.interval_secs", "must be 60..=604800"));
        }
        if !(1..=10_000).contains(&self.outbox.batch_max_reads) {
            return Err(invalid("outbox.batch_max_reads", "must be 1..=10000"));
        }
        if !(1..=86_400).contains(&self.outbox.batch_max_age_secs) {
            return Err(invalid("outbox.batch_max_age_secs", "must be 1..=86400"));
        }
        if self.outbox.drain_start_max_secs > 3600 {
            return Err(invalid("outbox.drain_start_max_secs", "must be 0..=3600"));
        }
        if !(1..=86_400).contains(&self.remote.rollback_secs) {
            return Err(invalid("remote.rollback_secs", "must be 1..=86400"));
        }
        if self.remote.min_connection_change_secs > 604_800 {
            return Err(invalid(
                "remote.min_connection_change_secs",
                "must be 0..=604800",
            ));
        }
        if self.media_quota_bytes == Some(0) {
            return Err(invalid(
                "media_quota_bytes",
                "must be positive (omit for no quota)",
            ));
        }
        if let Some(r) = &self.recognizer {
            self.validate_recognizer(r)?;
        }
        Ok(())
    }

    fn validate_recognizer(&self, r: &RecognizerSection) -> Result<(), ConfigError> {
        if !r.watch_dir.is_absolute() {
            return Err(invalid("recognizer.watch_dir", NOT_RESOLVED));
        }
        if overlaps(&r.watch_dir, &self.media_dir) {
            return Err(invalid(
                "recognizer.watch_dir",
                "must not be media_dir, inside it or around it (frames are deleted once read)",
            ));
        }
        if overlaps(&r.watch_dir, &self.state_dir) {
            return Err(invalid(
                "recognizer.watch_dir",
                "must not be state_dir, inside it or around it",
            ));
        }
        if r.models_dir.as_ref().is_some_and(|m| !m.is_absolute()) {
            return Err(invalid("recognizer.models_dir", NOT_RESOLVED));
        }
        if !(1..=16).contains(&r.threads) {
            return Err(invalid("recognizer.threads", "must be 1..=16"));
        }
        if !(0.0..=1.0).contains(&r.min_score) {
            return Err(invalid("recognizer.min_score", "must be 0..=1"));
        }
        if r.group_gap_ms == 0 {
            return Err(invalid("recognizer.group_gap_ms", "must be positive"));
        }
        if !(0.0..=1.0).contains(&r.motion) {
            return Err(invalid(
                "recognizer.motion",
                "must be 0..=1 (a share of the lane; 0: every frame is read)",
            ));
        }
        if let Some(score) = r.reread_below {
            check_reread_below(score)?;
        }
        check_finer_below(r.finer_below)?;
        check_detector_sides(r.detector_side, r.finer_side)?;
        if r.roi.is_some_and(|[_, _, w, h]| w == 0 || h == 0) {
            return Err(invalid(
                "recognizer.roi",
                "[x, y, width, height]: width and height must be positive",
            ));
        }
        if r.group_window_ms < r.group_gap_ms {
            return Err(invalid(
                "recognizer.group_window_ms",
                "must be at least recognizer.group_gap_ms",
            ));
        }
        Ok(())
    }

    /// The camera id.
    pub fn camera(&self) -> CameraId {
        self.camera_id.clone()
    }

    /// The topic plate-read batches go to.
    pub fn plate_topic(&self) -> String {
        self.mqtt
            .plate_topic
            .clone()
            .unwrap_or_else(|| topics::plate_reads_basic_ingest(topics::PLATE_RULE, &self.camera()))
    }

    /// The reconnect rules of the `[mqtt]` settings.
    pub fn reconnect_policy(&self) -> crate::machine::ReconnectPolicy {
        let m = &self.mqtt;
        crate::machine::ReconnectPolicy {
            initial_ms: m.reconnect_initial_ms,
            max_ms: m.reconnect_max_secs.saturating_mul(1000),
            stable_ms: m.reconnect_stable_secs.saturating_mul(1000),
            refused_ms: m.reconnect_refused_secs.saturating_mul(1000),
            immediate_drop_ms: IMMEDIATE_DROP_MS,
            min_interval_ms: m.connect_min_interval_ms,
            boot_jitter_ms: m.boot_jitter_secs.saturating_mul(1000),
        }
    }

    /// MQTT keep-alive as a duration.
    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.mqtt.keep_alive_secs)
    }
}

#[cfg(test)]
pub(crate) mod tests;
