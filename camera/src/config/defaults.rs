//! The default of every setting a file may omit, and the serde helpers of the sections.

use super::*;

pub(super) fn default_mqtt_port() -> u16 {
    8883
}
pub(super) fn default_https_port() -> u16 {
    443
}
pub(super) fn default_keep_alive() -> u64 {
    1200
}
pub(super) fn default_session_expiry() -> u32 {
    7 * 24 * 3600
}
pub(super) fn default_backoff_initial() -> u64 {
    1000
}
pub(super) fn default_backoff_max() -> u64 {
    300
}
pub(super) fn default_reconnect_stable() -> u64 {
    60
}
pub(super) fn default_reconnect_refused() -> u64 {
    60
}
pub(super) fn default_connect_interval() -> u64 {
    2000
}
pub(super) fn default_boot_jitter() -> u64 {
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

pub(super) fn default_max_file_bytes() -> Option<u64> {
    Some(DEFAULT_MAX_FILE_BYTES)
}
pub(super) fn default_threshold() -> u64 {
    8 * 1024 * 1024
}
pub(super) fn default_part_size() -> u64 {
    8 * 1024 * 1024
}
pub(super) fn default_progress_step() -> u8 {
    25
}
pub(super) fn default_retry_initial() -> u64 {
    5
}
pub(super) fn default_retry_max() -> u64 {
    600
}
pub(super) fn default_attempts() -> u32 {
    20
}
pub(super) fn default_health_interval() -> u64 {
    6 * 3600
}
pub(super) fn default_threads() -> usize {
    1
}
pub(super) fn default_min_score() -> f32 {
    0.2
}
pub(super) fn default_group_gap() -> u64 {
    2000
}
pub(super) fn default_group_window() -> u64 {
    30_000
}
pub(super) fn default_idle_exit() -> u64 {
    60
}
/// `recognizer.motion`: 1 % of the lane. A vehicle entering it changes far more (its plate
/// alone, 150×40 pixels in a 1280×360 lane, is 1.3 %), and a still scene far less: each
/// thumbnail pixel averages a block of about 20×20 frame pixels, which sensor noise and JPEG
/// artefacts do not move by the 16 grey levels that count a pixel as changed. A frame judged
/// still by mistake while a vehicle is in view costs nothing once its passage is open (every
/// frame is read then); a frame judged moving by mistake costs only its reading.
pub(super) fn default_motion() -> f32 {
    0.01
}
/// `recognizer.detector_side`: the recognizer's own first look (`RecognizerConfig`'s
/// `detector_max_side`; `anpr-frames` checks they agree).
pub(super) fn default_detector_side() -> u32 {
    960
}
/// `recognizer.finer_side`: the recognizer's own finer look (`detector_retry_max_side`).
pub(super) fn default_finer_side() -> u32 {
    1120
}
/// `recognizer.max_backlog`: 10 s of frames at 5 frames/s.
pub(super) fn default_max_backlog() -> u32 {
    50
}

/// An `f32` written as its shortest decimal (`0.2`, not `0.20000000298023224`, what the
/// `f64` of TOML would show); it reads back as the same `f32`.
pub(super) fn shortest_f32<S: serde::Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(v.to_string().parse().unwrap_or(f64::from(*v)))
}

/// `recognizer.region`: one of the names of [`PlateRegion`], as written (lowercase).
pub(super) fn region_setting<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<PlateRegion, D::Error> {
    one_of(d, "recognizer.region", "region", &PlateRegion::ALL)
}

/// `recognizer.reader`: one of the names of [`ReaderKind`], as written (lowercase).
pub(super) fn reader_setting<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<ReaderKind, D::Error> {
    one_of(d, "recognizer.reader", "reader", &ReaderKind::ALL)
}

/// `recognizer.detector`: one of the names of [`DetectorKind`], as written (lowercase).
pub(super) fn detector_setting<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<DetectorKind, D::Error> {
    one_of(d, "recognizer.detector", "detector", &DetectorKind::ALL)
}

/// A setting whose value is one of `all`, by name; the error names the setting and lists the
/// names (the parser's own message would not name the setting).
pub(super) fn one_of<'de, D, T>(d: D, setting: &str, what: &str, all: &[T]) -> Result<T, D::Error>
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
