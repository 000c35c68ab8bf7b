//! The file's sections (`[mqtt]`, `[upload]`, …), each with the settings it requires in its
//! `new` and every other at its default.

use super::defaults::*;
use super::*;

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

/// A setting's value from the name the configuration file takes (for the command line and the
/// measurement example); `what` names the setting in the error.
fn by_name<T: serde::de::DeserializeOwned>(name: &str, what: &str) -> Result<T, String> {
    use serde::de::IntoDeserializer;
    T::deserialize(name.into_deserializer())
        .map_err(|e: serde::de::value::Error| format!("{what}: {e}"))
}

/// A reader that reads each weak crop too, a read it reads alike taken as sure
/// (`recognizer.confirm_reader`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfirmReader {
    /// Our own plate reader (the recognizer's default; none when it is `reader` itself).
    #[default]
    Plate,
    /// PP-OCRv4's reader (none when it is `reader` itself).
    Ppocr,
    /// None: a weak read stays weak until another look reads it better.
    None,
}

impl std::str::FromStr for ConfirmReader {
    type Err = String;
    /// By the name the configuration file takes (`plate`, `ppocr` or `none`).
    fn from_str(s: &str) -> Result<Self, String> {
        by_name(s, "confirm reader")
    }
}

impl ConfirmReader {
    /// The reader it names, if any.
    pub fn kind(self) -> Option<ReaderKind> {
        match self {
            Self::Plate => Some(ReaderKind::Plate),
            Self::Ppocr => Some(ReaderKind::Ppocr),
            Self::None => None,
        }
    }
}

/// A second detector whose regions are read too on a frame whose best read is weak
/// (`recognizer.second_detector`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecondDetector {
    /// Our own plate detector (the recognizer's default; none when it is `detector` itself).
    #[default]
    Plate,
    /// PP-OCRv4's text detector (none when it is `detector` itself).
    Ppocr,
    /// None: weak frames are read in the first detector's regions only.
    None,
}

impl std::str::FromStr for SecondDetector {
    type Err = String;
    /// By the name the configuration file takes (`plate`, `ppocr` or `none`).
    fn from_str(s: &str) -> Result<Self, String> {
        by_name(s, "second detector")
    }
}

impl SecondDetector {
    /// The detector it names, if any.
    pub fn kind(self) -> Option<DetectorKind> {
        match self {
            Self::Plate => Some(DetectorKind::Plate),
            Self::Ppocr => Some(DetectorKind::Ppocr),
            Self::None => None,
        }
    }
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
    /// Which detector finds the plates in a frame: `plate` (our own plate detector, the
    /// default) or `ppocr` (PP-OCRv4, all text); read when the feed starts.
    #[serde(default, deserialize_with = "detector_setting")]
    pub detector: DetectorKind,
    /// A second detector, `plate`, `ppocr` or `none`: on a frame whose best read is weak
    /// (below `reread_below`), its regions are read too (plates the first detector missed or
    /// cut); the same as `detector`: none (the default, `plate`, is none beside the default
    /// detector). Read when the feed starts.
    #[serde(default)]
    pub second_detector: SecondDetector,
    /// A second reader, `plate`, `ppocr` or `none`, that reads each weak crop too: a plate it
    /// reads alike is taken as sure, and its frame takes no further look (docs/recognizer.md,
    /// "Two readers agreeing"); the same as `reader`: none. Read when the feed starts.
    #[serde(default)]
    pub confirm_reader: ConfirmReader,
    /// A last look at a frame still without a read scoring 0.5 after the other looks, with
    /// its local contrast evened out: plates in shadow that no detector sees as they are
    /// (docs/recognizer.md, "Faint plates"); costs time on those frames only. Read when the
    /// feed starts.
    #[serde(default = "default_true")]
    pub faint_look: bool,
    /// The longer side, in pixels, a frame is scaled to for the detector's first look (then to
    /// multiples of 32; 160..=1920): larger finds smaller plates, at more time. Read when the
    /// feed starts.
    #[serde(default = "default_detector_side")]
    pub detector_side: u32,
    /// The longer side of the detector's finer look at a frame whose best read is still below
    /// `finer_below` after the second detector's look; larger than `detector_side` (up to
    /// 1920), or 0: no finer look. With the defaults (our detector at 960, the finer look at
    /// 1120 only on frames without any read), a 1280×720 frame is read in under 100 ms on one
    /// core (docs/recognizer.md, "One look at 960 px", "A finer look at a frame without a
    /// read"). Read when the feed starts.
    #[serde(default = "default_finer_side")]
    pub finer_side: u32,
    /// The score (0..=1) below which a frame's best read takes the finer look; 0: only a
    /// frame without any read (the default); PP-OCR's thorough pipeline: 0.5. Read when the
    /// feed starts.
    #[serde(default, serialize_with = "shortest_f32")]
    pub finer_below: f32,
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
    /// The part of each frame plates are looked for in, `[x, y, width, height]` in pixels
    /// (the lane): the rest of the frame is not read (faster, and no plate of the next lane or
    /// of a parked car); absent: the whole frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roi: Option<[u32; 4]>,
    /// Motion gate (0..=1): a frame is read only when at least this share of the lane (`roi`,
    /// else the frame) changed since the previous frame, or while a passage is open; other
    /// frames are deleted unread (counted `still`). 0: every frame is read.
    #[serde(default = "default_motion", serialize_with = "shortest_f32")]
    pub motion: f32,
    /// Most frames waiting to be read before the feed thins them: the newest this many are all
    /// read, of the older ones an evenly spaced sample (every second frame or sparser, at most
    /// this many) and the rest deleted unread (counted `dropped`). 0: never.
    #[serde(default = "default_max_backlog")]
    pub max_backlog: u32,
    /// A passage's most confident read scoring below this (0..=1) is read again from its
    /// frame, the crop narrowed and widened, keeping the best: more accurate, a few more reads
    /// per weak passage (docs/recognizer.md); also the score below which `second_detector`
    /// looks at a frame; 0: never; absent: the recognizer's default (0.55).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reread_below: Option<f32>,
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
            detector: DetectorKind::default(),
            second_detector: SecondDetector::default(),
            confirm_reader: ConfirmReader::default(),
            faint_look: true,
            detector_side: default_detector_side(),
            finer_side: default_finer_side(),
            finer_below: 0.0,
            group_gap_ms: default_group_gap(),
            group_window_ms: default_group_window(),
            save: SaveMode::default(),
            idle_exit_secs: default_idle_exit(),
            roi: None,
            motion: default_motion(),
            max_backlog: default_max_backlog(),
            reread_below: None,
        }
    }
}
