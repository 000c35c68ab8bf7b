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

use anpr_protocol::{CameraId, PlateRegion, ReaderKind, topics};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The smallest part S3 accepts in a multipart upload (except the last part).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// The largest MQTT packet AWS IoT Core accepts.
pub const MAX_PACKET: u32 = 128 * 1024;
/// A connection lost this soon after CONNACK counts as a refusal (duplicate client id,
/// policy), milliseconds.
pub const IMMEDIATE_DROP_MS: u64 = 10_000;

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

/// `[outbox]`: when plate-read batches are sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSection {
    /// A batch is sent when this many reads wait (1..=10000).
    #[serde(default = "default_batch_reads")]
    pub batch_max_reads: u32,
    /// …or when its oldest read has waited this many seconds (1..=86400).
    #[serde(default = "default_batch_age")]
    pub batch_max_age_secs: u32,
    /// After a reconnect, the backlog starts draining after a random delay up to this,
    /// seconds (0..=3600); then one batch at a time, at most one per second.
    #[serde(default = "default_drain_start")]
    pub drain_start_max_secs: u32,
}

impl Default for OutboxSection {
    fn default() -> Self {
        Self {
            batch_max_reads: default_batch_reads(),
            batch_max_age_secs: default_batch_age(),
            drain_start_max_secs: default_drain_start(),
        }
    }
}

/// `[remote]`: configuration changes from the cloud (the named shadow `config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSection {
    /// Follow the shadow (subscribe to its delta, fetch it on a new session, report).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// A change of MQTT port, ALPN or keep-alive is undone if the agent cannot reach the
    /// broker within this many seconds of applying it (1..=86400).
    #[serde(default = "default_rollback")]
    pub rollback_secs: u64,
    /// A change of MQTT port, ALPN or keep-alive that comes sooner than this many seconds
    /// after the last one applied is refused (0..=604800; default
    /// [`anpr_protocol::config::MIN_CONNECTION_CHANGE_INTERVAL_SECS`], the bound the cloud
    /// enforces too; 0 = no limit, for tests).
    #[serde(default = "default_min_connection_change")]
    pub min_connection_change_secs: u64,
}

impl Default for RemoteSection {
    fn default() -> Self {
        Self {
            enabled: true,
            rollback_secs: default_rollback(),
            min_connection_change_secs: default_min_connection_change(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_rollback() -> u64 {
    300
}
fn default_min_connection_change() -> u64 {
    anpr_protocol::config::MIN_CONNECTION_CHANGE_INTERVAL_SECS
}
fn default_batch_reads() -> u32 {
    1000
}
fn default_batch_age() -> u32 {
    30
}
fn default_drain_start() -> u32 {
    30
}

/// What is kept in the media directory for each plate read (`recognizer.save`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaveMode {
    /// The plate with a margin around it, as a JPEG (a few kB).
    #[default]
    Crop,
    /// The whole frame of the best read, as dropped in the watch directory.
    Frame,
    /// Nothing: the read carries no image name.
    None,
}

/// `[recognizer]`: the frame feed (watched directory → recognizer → grouping → outbox).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecognizerSection {
    /// Directory the camera drops JPEG frames into (absolute; write `NAME.jpg.tmp` then rename,
    /// or write in place: a file is taken once it has not changed for half a second).
    /// Processed frames are deleted. Must not overlap `media_dir` or `state_dir`.
    pub watch_dir: PathBuf,
    /// Folder of the model files; default: `$ANPR_MODELS_DIR`, else `.local/models`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models_dir: Option<PathBuf>,
    /// Threads per frame (1..=16).
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Reads scoring below this (0..=1) are dropped.
    #[serde(default = "default_min_score", serialize_with = "shortest_f32")]
    pub min_score: f32,
    /// Plate formats to expect: `auto`, `us`, `eu` or `br`.
    #[serde(default, deserialize_with = "region_setting")]
    pub region: PlateRegion,
    /// Which reader reads the plates: `ppocr` (PP-OCRv4) or `plate` (our own plate reader);
    /// read when the feed starts.
    #[serde(default, deserialize_with = "reader_setting")]
    pub reader: ReaderKind,
    /// Longest silence inside one vehicle's passage, ms: reads of the same plate closer than
    /// this are one plate read (the most confident).
    #[serde(default = "default_group_gap")]
    pub group_gap_ms: u64,
    /// Longest time one group stays open, ms (a parked car is reported once per window).
    #[serde(default = "default_group_window")]
    pub group_window_ms: u64,
    /// What to keep in `media_dir` for each read: `crop`, `frame` or `none`.
    #[serde(default)]
    pub save: SaveMode,
    /// The recognizer runs in its own process (`anpr-frames`, next to `anpr-camera`), which
    /// exits after this many seconds without frames (no passage open) and is started again
    /// when a frame arrives, so an idle camera holds no model in memory; 0: never exits.
    #[serde(default = "default_idle_exit")]
    pub idle_exit_secs: u64,
}

/// `[mqtt]`: the one MQTT session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    /// The account's IoT data endpoint host (`xxxx-ats.iot.REGION.amazonaws.com`).
    pub host: String,
    /// 8883 (MQTT over TLS) or 443 (with `alpn = true`, passes the strictest firewalls).
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// Offer ALPN `x-amzn-mqtt-ca`; AWS requires it for MQTT on port 443.
    #[serde(default)]
    pub alpn: bool,
    /// CA certificate(s) to trust, PEM (Amazon Root CA 1).
    pub ca_file: PathBuf,
    /// The camera's certificate, PEM.
    pub cert_file: PathBuf,
    /// The camera's private key, PEM: PKCS#1 (`RSA PRIVATE KEY`, as AWS issues it) or PKCS#8.
    pub key_file: PathBuf,
    /// MQTT keep-alive, seconds (30..=1200). Each ping costs bytes: the default is AWS's maximum.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
    /// How long the broker keeps the session (subscriptions, queued QoS 1 messages) while the
    /// camera is offline, seconds. AWS allows up to 7 days (604800) by account setting.
    #[serde(default = "default_session_expiry")]
    pub session_expiry_secs: u32,
    /// First reconnect delay, milliseconds; doubles each failure, with jitter.
    #[serde(default = "default_backoff_initial")]
    pub reconnect_initial_ms: u64,
    /// Longest reconnect delay, seconds.
    #[serde(default = "default_backoff_max")]
    pub reconnect_max_secs: u64,
    /// A connection that stayed up this long resets the back-off, seconds.
    #[serde(default = "default_reconnect_stable")]
    pub reconnect_stable_secs: u64,
    /// Least wait after a "not allowed" or "slow down" refusal (not authorized, quota or
    /// connection rate exceeded, server busy) or a drop within 10 s of CONNACK, seconds.
    #[serde(default = "default_reconnect_refused")]
    pub reconnect_refused_secs: u64,
    /// Least time between two CONNECTs, milliseconds (AWS allows 1 per second per client id).
    #[serde(default = "default_connect_interval")]
    pub connect_min_interval_ms: u64,
    /// The first CONNECT after start waits a random delay up to this, seconds.
    #[serde(default = "default_boot_jitter")]
    pub boot_jitter_secs: u64,
    /// Topic plate-read batches are published to; default: Basic Ingest of the plate rule
    /// (`$aws/rules/anpr_plate_reads/{camera_id}/plates`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plate_topic: Option<String>,
}

/// `[upload]`: S3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadSection {
    /// The media bucket.
    pub bucket: String,
    /// The bucket's region.
    pub region: String,
    /// Endpoint override (tests, S3-compatible stores); default: AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Path-style addressing (needed by some S3-compatible stores).
    #[serde(default)]
    pub force_path_style: bool,
    /// CA to trust for an `https` endpoint; default: the Amazon Trust Services roots compiled
    /// into the agent (they sign S3's certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Files of at least this many bytes go multipart (resumable part by part).
    #[serde(default = "default_threshold")]
    pub multipart_threshold_bytes: u64,
    /// Part size, bytes (at least 5 MiB): the most a lost link or a restart re-sends.
    #[serde(default = "default_part_size")]
    pub part_size_bytes: u64,
    /// Average upload rate cap, bytes per second; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes_per_sec: Option<u64>,
    /// Larger files are refused with `failed: too_large`; [`DEFAULT_MAX_FILE_BYTES`] unless
    /// set (one request cannot send an unbounded file over a metered link).
    #[serde(
        default = "default_max_file_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_file_bytes: Option<u64>,
    /// Progress is reported each time this many percent more are done (1..=100; 100 = never).
    #[serde(default = "default_progress_step")]
    pub progress_step_pct: u8,
    /// First delay before retrying a failed upload, seconds; doubles up to `retry_max_secs`.
    #[serde(default = "default_retry_initial")]
    pub retry_initial_secs: u64,
    /// Longest delay between upload retries, seconds.
    #[serde(default = "default_retry_max")]
    pub retry_max_secs: u64,
    /// Attempts before an upload is reported `failed: upload_failed` (its checkpoint is kept
    /// until the request expires, so a later duplicate still resumes).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

/// `[credentials]`: the AWS IoT credentials provider (mutual TLS with the camera's certificate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsSection {
    /// The account's credentials endpoint host (`xxxx.credentials.iot.REGION.amazonaws.com`).
    pub host: String,
    /// Its port.
    #[serde(default = "default_https_port")]
    pub port: u16,
    /// The role alias whose role the camera assumes.
    pub role_alias: String,
    /// CA to trust for the endpoint; default: `mqtt.ca_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// `[health]`: the compact health report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSection {
    /// Seconds between health reports (also sent on each connect); at least 60.
    #[serde(default = "default_health_interval")]
    pub interval_secs: u64,
}

impl Default for HealthSection {
    fn default() -> Self {
        Self {
            interval_secs: default_health_interval(),
        }
    }
}

impl MqttSection {
    /// The `[mqtt]` section with its required settings; every other at its default (the
    /// value a file that omits it gets).
    pub fn new(
        host: impl Into<String>,
        ca_file: impl Into<PathBuf>,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        Self {
            host: host.into(),
            port: default_mqtt_port(),
            alpn: false,
            ca_file: ca_file.into(),
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            keep_alive_secs: default_keep_alive(),
            session_expiry_secs: default_session_expiry(),
            reconnect_initial_ms: default_backoff_initial(),
            reconnect_max_secs: default_backoff_max(),
            reconnect_stable_secs: default_reconnect_stable(),
            reconnect_refused_secs: default_reconnect_refused(),
            connect_min_interval_ms: default_connect_interval(),
            boot_jitter_secs: default_boot_jitter(),
            plate_topic: None,
        }
    }
}

impl UploadSection {
    /// The `[upload]` section with its required settings; every other at its default.
    pub fn new(bucket: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            region: region.into(),
            endpoint_url: None,
            force_path_style: false,
            ca_file: None,
            multipart_threshold_bytes: default_threshold(),
            part_size_bytes: default_part_size(),
            max_bytes_per_sec: None,
            max_file_bytes: default_max_file_bytes(),
            progress_step_pct: default_progress_step(),
            retry_initial_secs: default_retry_initial(),
            retry_max_secs: default_retry_max(),
            max_attempts: default_attempts(),
        }
    }
}

impl CredentialsSection {
    /// The `[credentials]` section with its required settings; every other at its default.
    pub fn new(host: impl Into<String>, role_alias: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port: default_https_port(),
            role_alias: role_alias.into(),
            ca_file: None,
        }
    }
}

impl RecognizerSection {
    /// The `[recognizer]` section with its required setting; every other at its default.
    pub fn new(watch_dir: impl Into<PathBuf>) -> Self {
        Self {
            watch_dir: watch_dir.into(),
            models_dir: None,
            threads: default_threads(),
            min_score: default_min_score(),
            region: PlateRegion::default(),
            reader: ReaderKind::default(),
            group_gap_ms: default_group_gap(),
            group_window_ms: default_group_window(),
            save: SaveMode::default(),
            idle_exit_secs: default_idle_exit(),
        }
    }
}

fn default_mqtt_port() -> u16 {
    8883
}
fn default_https_port() -> u16 {
    443
}
fn default_keep_alive() -> u64 {
    1200
}
fn default_session_expiry() -> u32 {
    7 * 24 * 3600
}
fn default_backoff_initial() -> u64 {
    1000
}
fn default_backoff_max() -> u64 {
    300
}
fn default_reconnect_stable() -> u64 {
    60
}
fn default_reconnect_refused() -> u64 {
    60
}
fn default_connect_interval() -> u64 {
    2000
}
fn default_boot_jitter() -> u64 {
    30
}
/// The reconnect rules of an `[mqtt]` section that sets none of them.
impl Default for crate::machine::ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial_ms: default_backoff_initial(),
            max_ms: default_backoff_max() * 1000,
            stable_ms: default_reconnect_stable() * 1000,
            refused_ms: default_reconnect_refused() * 1000,
            immediate_drop_ms: IMMEDIATE_DROP_MS,
            min_interval_ms: default_connect_interval(),
            boot_jitter_ms: default_boot_jitter() * 1000,
        }
    }
}

/// Default of `upload.max_file_bytes`: 2 GiB, a long clip; set a larger value to allow more.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 2 * 1024 * 1024 * 1024;

fn default_max_file_bytes() -> Option<u64> {
    Some(DEFAULT_MAX_FILE_BYTES)
}
fn default_threshold() -> u64 {
    8 * 1024 * 1024
}
fn default_part_size() -> u64 {
    8 * 1024 * 1024
}
fn default_progress_step() -> u8 {
    25
}
fn default_retry_initial() -> u64 {
    5
}
fn default_retry_max() -> u64 {
    600
}
fn default_attempts() -> u32 {
    20
}
fn default_health_interval() -> u64 {
    6 * 3600
}
fn default_threads() -> usize {
    1
}
fn default_min_score() -> f32 {
    0.2
}
fn default_group_gap() -> u64 {
    2000
}
fn default_group_window() -> u64 {
    30_000
}
fn default_idle_exit() -> u64 {
    60
}

/// An `f32` written as its shortest decimal (`0.2`, not `0.20000000298023224`, what the
/// `f64` of TOML would show); it reads back as the same `f32`.
fn shortest_f32<S: serde::Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(v.to_string().parse().unwrap_or(f64::from(*v)))
}

/// `recognizer.region`: one of the names of [`PlateRegion`], as written (lowercase).
fn region_setting<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PlateRegion, D::Error> {
    one_of(d, "recognizer.region", "region", &PlateRegion::ALL)
}

/// `recognizer.reader`: one of the names of [`ReaderKind`], as written (lowercase).
fn reader_setting<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ReaderKind, D::Error> {
    one_of(d, "recognizer.reader", "reader", &ReaderKind::ALL)
}

/// A setting whose value is one of `all`, by name; the error names the setting and lists the
/// names (the parser's own message would not name the setting).
fn one_of<'de, D, T>(d: D, setting: &str, what: &str, all: &[T]) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Copy + std::fmt::Display,
{
    let name = String::deserialize(d)?;
    all.iter()
        .copied()
        .find(|v| v.to_string() == name)
        .ok_or_else(|| {
            let names: Vec<String> = all.iter().map(ToString::to_string).collect();
            serde::de::Error::custom(format!(
                "config setting `{setting}`: unknown {what} {name:?}: one of {}",
                names.join(", ")
            ))
        })
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

/// Builds a [`Config`] in code (tests, the local stack): [`Config::builder`] with the
/// required settings, a method per section, then [`ConfigBuilder::build`], which checks what
/// [`Config::parse`] checks.
#[derive(Debug, Clone)]
#[must_use]
pub struct ConfigBuilder {
    camera_id: CameraId,
    media_dir: PathBuf,
    state_dir: PathBuf,
    mqtt: Option<MqttSection>,
    upload: Option<UploadSection>,
    credentials: Option<CredentialsSection>,
    health: HealthSection,
    outbox: OutboxSection,
    remote: RemoteSection,
    media_quota_bytes: Option<u64>,
    recognizer: Option<RecognizerSection>,
}

impl ConfigBuilder {
    /// `[mqtt]` (required).
    pub fn mqtt(mut self, mqtt: MqttSection) -> Self {
        self.mqtt = Some(mqtt);
        self
    }

    /// `[upload]` (required).
    pub fn upload(mut self, upload: UploadSection) -> Self {
        self.upload = Some(upload);
        self
    }

    /// `[credentials]` (required).
    pub fn credentials(mut self, credentials: CredentialsSection) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// `[health]`.
    pub fn health(mut self, health: HealthSection) -> Self {
        self.health = health;
        self
    }

    /// `[outbox]`.
    pub fn outbox(mut self, outbox: OutboxSection) -> Self {
        self.outbox = outbox;
        self
    }

    /// `[remote]`.
    pub fn remote(mut self, remote: RemoteSection) -> Self {
        self.remote = remote;
        self
    }

    /// `media_quota_bytes` (`None`: no quota, the default).
    pub fn media_quota_bytes(mut self, bytes: Option<u64>) -> Self {
        self.media_quota_bytes = bytes;
        self
    }

    /// `[recognizer]` (`None`: no frame feed, the default).
    pub fn recognizer(mut self, recognizer: Option<RecognizerSection>) -> Self {
        self.recognizer = recognizer;
        self
    }

    /// The configuration: relative paths resolved against the current directory, then
    /// validated as a file is; a missing required section is refused naming it.
    pub fn build(self) -> Result<Config, ConfigError> {
        let missing = |section: &'static str| invalid(section, "required section missing");
        Config {
            camera_id: self.camera_id,
            media_dir: self.media_dir,
            state_dir: self.state_dir,
            mqtt: self.mqtt.ok_or_else(|| missing("mqtt"))?,
            upload: self.upload.ok_or_else(|| missing("upload"))?,
            credentials: self.credentials.ok_or_else(|| missing("credentials"))?,
            health: self.health,
            outbox: self.outbox,
            remote: self.remote,
            media_quota_bytes: self.media_quota_bytes,
            recognizer: self.recognizer,
        }
        .resolved_and_valid()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The smallest valid file (also the base of other modules' tests).
    pub(crate) const MINIMAL: &str = r#"
camera_id = "cam-1"
media_dir = "/var/lib/anpr/media"
state_dir = "/var/lib/anpr/state"
[mqtt]
host = "abc-ats.iot.eu-west-1.amazonaws.com"
ca_file = "/etc/anpr/ca.pem"
cert_file = "/etc/anpr/cert.pem"
key_file = "/etc/anpr/key.pem"
[upload]
bucket = "media"
region = "eu-west-1"
[credentials]
host = "abc.credentials.iot.eu-west-1.amazonaws.com"
role_alias = "anpr-camera"
"#;

    #[test]
    fn a_minimal_file_gets_the_thrifty_defaults() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(
            c.reconnect_policy(),
            crate::machine::ReconnectPolicy::default()
        );
        assert_eq!(c.mqtt.port, 8883);
        assert_eq!(c.mqtt.keep_alive_secs, 1200);
        assert_eq!(c.upload.part_size_bytes, 8 * 1024 * 1024);
        assert_eq!(c.upload.max_file_bytes, Some(DEFAULT_MAX_FILE_BYTES));
        assert_eq!(c.health.interval_secs, 6 * 3600);
        assert_eq!(c.plate_topic(), "$aws/rules/anpr_plate_reads/cam-1/plates");
    }

    const RECOGNIZER: &str = "\n[recognizer]\nwatch_dir = \"/var/lib/anpr/frames\"\n";

    #[test]
    fn without_a_recognizer_section_nothing_is_recognized_and_there_is_no_quota() {
        let c = Config::parse(MINIMAL).unwrap();
        assert!(c.recognizer.is_none());
        assert_eq!(c.media_quota_bytes, None);
    }

    #[test]
    fn a_zero_media_quota_is_refused_naming_the_setting() {
        let text = MINIMAL.replacen("camera_id", "media_quota_bytes = 0\ncamera_id", 1);
        let e = Config::parse(&text).unwrap_err();
        assert!(e.to_string().contains("media_quota_bytes"), "{e}");
        let ok = MINIMAL.replacen("camera_id", "media_quota_bytes = 1000000\ncamera_id", 1);
        assert_eq!(
            Config::parse(&ok).unwrap().media_quota_bytes,
            Some(1_000_000)
        );
    }

    #[test]
    fn a_recognizer_section_with_only_the_watch_dir_gets_the_defaults() {
        let c = Config::parse(&format!("{MINIMAL}{RECOGNIZER}")).unwrap();
        let r = c.recognizer.unwrap();
        assert_eq!(r.watch_dir, PathBuf::from("/var/lib/anpr/frames"));
        assert_eq!(r.models_dir, None);
        assert_eq!(r.threads, 1);
        assert_eq!(r.min_score, 0.2);
        assert_eq!(r.region.as_str(), "auto");
        assert_eq!(r.reader.name(), "ppocr");
        assert_eq!((r.group_gap_ms, r.group_window_ms), (2000, 30_000));
        assert_eq!(r.save, SaveMode::Crop);
        assert_eq!(r.idle_exit_secs, 60);
    }

    #[test]
    fn every_recognizer_setting_is_read() {
        let text = format!(
            "{MINIMAL}{RECOGNIZER}models_dir = \"/opt/models\"\nthreads = 2\nmin_score = 0.5\n\
             region = \"br\"\nreader = \"plate\"\ngroup_gap_ms = 500\ngroup_window_ms = 4000\nsave = \"frame\"\n\
             idle_exit_secs = 0\n"
        );
        let r = Config::parse(&text).unwrap().recognizer.unwrap();
        assert_eq!(r.models_dir, Some(PathBuf::from("/opt/models")));
        assert_eq!((r.threads, r.min_score), (2, 0.5));
        assert_eq!(r.region.as_str(), "br");
        assert_eq!(r.reader.name(), "plate");
        assert_eq!((r.group_gap_ms, r.group_window_ms), (500, 4000));
        assert_eq!(r.save, SaveMode::Frame);
        assert_eq!(r.idle_exit_secs, 0);
        let none = format!("{MINIMAL}{RECOGNIZER}save = \"none\"\n");
        assert_eq!(
            Config::parse(&none).unwrap().recognizer.unwrap().save,
            SaveMode::None
        );
    }

    /// The file takes every region and reader the recognizer knows (one definition,
    /// `anpr_protocol::{PlateRegion, ReaderKind}`), by its name, and only in lowercase.
    #[test]
    fn every_region_and_reader_the_recognizer_knows_is_accepted_by_name() {
        for region in PlateRegion::ALL {
            let text = format!("{MINIMAL}{RECOGNIZER}region = \"{region}\"\n");
            let r = Config::parse(&text).unwrap().recognizer.unwrap();
            assert_eq!(r.region, region);
        }
        for reader in ReaderKind::ALL {
            let text = format!("{MINIMAL}{RECOGNIZER}reader = \"{reader}\"\n");
            let r = Config::parse(&text).unwrap().recognizer.unwrap();
            assert_eq!(r.reader, reader);
        }
        let e = Config::parse(&format!("{MINIMAL}{RECOGNIZER}region = \"EU\"\n")).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown region \"EU\": one of auto, us, eu, br"),
            "{e}"
        );
    }

    #[test]
    fn bad_recognizer_settings_are_refused_naming_the_setting() {
        let cases = [
            (
                "watch_dir = \"/var/lib/anpr/media\"",
                "recognizer.watch_dir",
            ),
            (
                "watch_dir = \"/var/lib/anpr/media/in\"",
                "recognizer.watch_dir",
            ),
            ("watch_dir = \"/var/lib/anpr\"", "recognizer.watch_dir"),
            (
                "watch_dir = \"/var/lib/anpr/state/f\"",
                "recognizer.watch_dir",
            ),
            ("watch_dir = \"/f\"\nthreads = 0", "recognizer.threads"),
            ("watch_dir = \"/f\"\nthreads = 64", "recognizer.threads"),
            (
                "watch_dir = \"/f\"\nmin_score = 1.5",
                "recognizer.min_score",
            ),
            (
                "watch_dir = \"/f\"\nmin_score = -0.1",
                "recognizer.min_score",
            ),
            (
                "watch_dir = \"/f\"\nmin_score = nan",
                "recognizer.min_score",
            ),
            ("watch_dir = \"/f\"\nregion = \"mars\"", "recognizer.region"),
            (
                "watch_dir = \"/f\"\nreader = \"tesseract\"",
                "recognizer.reader",
            ),
            (
                "watch_dir = \"/f\"\ngroup_gap_ms = 0",
                "recognizer.group_gap_ms",
            ),
            (
                "watch_dir = \"/f\"\ngroup_gap_ms = 5000\ngroup_window_ms = 1000",
                "recognizer.group_window_ms",
            ),
            ("watch_dir = \"/f\"\nsave = \"video\"", "save"),
            ("watch_dir = \"/f\"\nbogus = 1", "bogus"),
            ("threads = 1", "watch_dir"),
        ];
        for (lines, setting) in cases {
            let e = Config::parse(&format!("{MINIMAL}\n[recognizer]\n{lines}\n")).unwrap_err();
            assert!(e.to_string().contains(setting), "{lines}: {e}");
        }
    }

    /// A key or certificate the media directory holds could be requested by anyone who may
    /// request files: refused at load, as written or through a symlinked path.
    #[test]
    fn a_key_or_certificate_inside_the_media_directory_is_refused() {
        for (from, to, setting) in [
            (
                "key_file = \"/etc/anpr/key.pem\"",
                "key_file = \"/var/lib/anpr/media/keys/key.pem\"",
                "mqtt.key_file",
            ),
            (
                "cert_file = \"/etc/anpr/cert.pem\"",
                "cert_file = \"/var/lib/anpr/media/cert.pem\"",
                "mqtt.cert_file",
            ),
        ] {
            assert!(MINIMAL.contains(from));
            let e = Config::parse(&MINIMAL.replace(from, to)).unwrap_err();
            assert!(e.to_string().contains(setting), "{e}");
        }
        // The same directory reached through a symlink.
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("media");
        std::fs::create_dir(&media).unwrap();
        std::fs::write(media.join("key.pem"), "k").unwrap();
        std::os::unix::fs::symlink(&media, dir.path().join("alias")).unwrap();
        let text = MINIMAL
            .replace("/var/lib/anpr/media", &media.display().to_string())
            .replace(
                "/etc/anpr/key.pem",
                &dir.path().join("alias/key.pem").display().to_string(),
            );
        let e = Config::parse(&text).unwrap_err();
        assert!(e.to_string().contains("mqtt.key_file"), "{e}");
    }

    #[test]
    fn an_unknown_setting_is_refused_naming_it() {
        let e = Config::parse(&format!("{MINIMAL}\nbogus = 1\n")).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn port_443_without_alpn_is_refused_with_the_fix() {
        let text = MINIMAL.replace("[mqtt]\n", "[mqtt]\nport = 443\n");
        let e = Config::parse(&text).unwrap_err();
        assert!(e.to_string().contains("mqtt.alpn"), "{e}");
        let ok = MINIMAL.replace("[mqtt]\n", "[mqtt]\nport = 443\nalpn = true\n");
        assert!(Config::parse(&ok).is_ok());
    }

    #[test]
    fn out_of_range_values_are_refused_naming_the_setting() {
        let cases = [
            (
                "[mqtt]\n",
                "[mqtt]\nkeep_alive_secs = 5000\n",
                "mqtt.keep_alive_secs",
            ),
            (
                "[upload]\n",
                "[upload]\npart_size_bytes = 1000\n",
                "upload.part_size_bytes",
            ),
            (
                "[upload]\n",
                "[upload]\nprogress_step_pct = 0\n",
                "upload.progress_step_pct",
            ),
            (
                "camera_id = \"cam-1\"",
                "camera_id = \"cam/1\"",
                "camera_id",
            ),
        ];
        for (from, to, setting) in cases {
            let e = Config::parse(&MINIMAL.replace(from, to)).unwrap_err();
            assert!(e.to_string().contains(setting), "{setting}: {e}");
        }
    }

    #[test]
    fn relative_paths_are_resolved_once_against_the_current_directory() {
        let text = MINIMAL
            .replace("\"/var/lib/anpr/media\"", "\"data/media\"")
            .replace("\"/etc/anpr/key.pem\"", "\"../keys/key.pem\"");
        let cwd = std::env::current_dir().unwrap();
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.media_dir, cwd.join("data/media"));
        assert_eq!(c.mqtt.key_file, cwd.join("../keys/key.pem"));
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/anpr/state"));
        assert!(c.paths().iter().all(|(_, p)| p.is_absolute()));

        let mut built = c.clone();
        built.media_dir = PathBuf::from("media");
        let e = built.validate().unwrap_err();
        assert!(e.to_string().contains("media_dir"), "{e}");
        built.resolve_paths(Path::new("/srv/cam"));
        assert_eq!(built.media_dir, PathBuf::from("/srv/cam/media"));
        built.validate().unwrap();
    }

    /// The required settings of [`MINIMAL`], in code.
    fn minimal_builder() -> ConfigBuilder {
        Config::builder(
            CameraId::parse("cam-1").unwrap(),
            "/var/lib/anpr/media",
            "/var/lib/anpr/state",
        )
        .mqtt(MqttSection::new(
            "abc-ats.iot.eu-west-1.amazonaws.com",
            "/etc/anpr/ca.pem",
            "/etc/anpr/cert.pem",
            "/etc/anpr/key.pem",
        ))
        .upload(UploadSection::new("media", "eu-west-1"))
        .credentials(CredentialsSection::new(
            "abc.credentials.iot.eu-west-1.amazonaws.com",
            "anpr-camera",
        ))
    }

    /// Every setting given, none at its default.
    fn every_setting() -> Config {
        let recognizer = RecognizerSection {
            models_dir: Some("/opt/anpr/models".into()),
            threads: 3,
            min_score: 0.45,
            region: PlateRegion::Br,
            reader: ReaderKind::Plate,
            group_gap_ms: 1500,
            group_window_ms: 20_000,
            save: SaveMode::Frame,
            idle_exit_secs: 0,
            ..RecognizerSection::new("/var/lib/anpr/frames")
        };
        let m = minimal_builder().build().unwrap();
        minimal_builder()
            .mqtt(MqttSection {
                port: 443,
                alpn: true,
                keep_alive_secs: 600,
                session_expiry_secs: 3600,
                reconnect_initial_ms: 500,
                reconnect_max_secs: 120,
                reconnect_stable_secs: 30,
                reconnect_refused_secs: 90,
                connect_min_interval_ms: 1500,
                boot_jitter_secs: 10,
                plate_topic: Some("cam-1/plates".into()),
                ..m.mqtt
            })
            .upload(UploadSection {
                endpoint_url: Some("https://s3.example.test:9000".into()),
                force_path_style: true,
                ca_file: Some("/etc/anpr/s3-ca.pem".into()),
                multipart_threshold_bytes: 16 * 1024 * 1024,
                part_size_bytes: 6 * 1024 * 1024,
                max_bytes_per_sec: Some(262_144),
                max_file_bytes: Some(1 << 30),
                progress_step_pct: 10,
                retry_initial_secs: 2,
                retry_max_secs: 60,
                max_attempts: 7,
                ..m.upload
            })
            .credentials(CredentialsSection {
                port: 8443,
                ca_file: Some("/etc/anpr/creds-ca.pem".into()),
                ..m.credentials
            })
            .health(HealthSection {
                interval_secs: 3600,
            })
            .outbox(OutboxSection {
                batch_max_reads: 50,
                batch_max_age_secs: 5,
                drain_start_max_secs: 0,
            })
            .remote(RemoteSection {
                enabled: false,
                rollback_secs: 60,
                min_connection_change_secs: 0,
            })
            .media_quota_bytes(Some(2_000_000_000))
            .recognizer(Some(recognizer))
            .build()
            .unwrap()
    }

    /// The builder's defaults are the file's: one set of defaults.
    #[test]
    fn the_builder_with_the_required_settings_gives_what_the_minimal_file_gives() {
        assert_eq!(
            minimal_builder().build().unwrap(),
            Config::parse(MINIMAL).unwrap()
        );
        assert_eq!(
            RecognizerSection::new("/var/lib/anpr/frames"),
            toml::from_str::<RecognizerSection>("watch_dir = \"/var/lib/anpr/frames\"").unwrap()
        );
    }

    #[test]
    fn the_builder_checks_what_the_parser_checks_and_names_a_missing_section() {
        let camera = || CameraId::parse("cam-1").unwrap();
        let e = Config::builder(camera(), "/m", "/s")
            .upload(UploadSection::new("b", "r"))
            .credentials(CredentialsSection::new("h", "a"))
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("`mqtt`"), "{e}");
        let e = minimal_builder()
            .outbox(OutboxSection {
                batch_max_reads: 0,
                ..OutboxSection::default()
            })
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("outbox.batch_max_reads"), "{e}");
        // Relative paths are resolved as in a file.
        let c = Config::builder(camera(), "media", "/s")
            .mqtt(MqttSection::new("h", "/ca", "/cert", "/key"))
            .upload(UploadSection::new("b", "r"))
            .credentials(CredentialsSection::new("h", "a"))
            .build()
            .unwrap();
        assert_eq!(c.media_dir, std::env::current_dir().unwrap().join("media"));
    }

    #[test]
    fn a_config_written_as_its_file_reads_back_the_same() {
        let full = every_setting();
        assert!(full.recognizer.is_some());
        for c in [Config::parse(MINIMAL).unwrap(), full] {
            let text = c.to_toml().unwrap();
            assert_eq!(Config::parse(&text).unwrap(), c, "{text}");
        }
        // Every setting is written, defaults included.
        let text = Config::parse(MINIMAL).unwrap().to_toml().unwrap();
        for line in ["keep_alive_secs = 1200", "[outbox]", "enabled = true"] {
            assert!(text.contains(line), "{line}: {text}");
        }
        // A score as written by a person, not as the f64 of an f32.
        let text = every_setting().to_toml().unwrap();
        assert!(text.contains("\nmin_score = 0.45\n"), "{text}");
    }
}
