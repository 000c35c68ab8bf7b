//! The camera's remotely settable configuration: the document kept in the `desired` and
//! `reported` states of the camera's named device shadow `config`
//! ([`crate::topics::CONFIG_SHADOW`]).
//!
//! Only settings that cannot lock a camera out are here: never the certificate, the key, the
//! endpoint host, the credentials provider or the camera id. The MQTT port and ALPN are (a site
//! whose firewall blocks 8883 moves to 443): a change that stops the camera from reaching the
//! broker is rolled back by the camera after its deadline.
//!
//! The document is flat (one level, `snake_case`, the unit in the name) so that a shadow delta
//! is just the changed keys. Every key is optional: a partial document changes only what it
//! names. `0` means "none" where the setting is a cap or quota.
//!
//! Wire (desired, as the API writes it): `{"keep_alive_secs":600,"recognizer_min_confidence":70}`.
//! Reported, as the camera writes it: the same keys with the values it runs, plus
//! [`CONFIG_ERROR`] when it refused or rolled back a desired document.

use crate::ValidationError;
use crate::recognizer::PlateRegion;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Smallest media quota that may be set remotely (bytes; `0`, no quota, is allowed): 256 MiB
/// keeps a dozen 20 MB clips. Below it the frame feed's quota deletes clips before anyone can
/// request them (`{"media_quota_bytes": 1}` would delete every stored clip).
pub const MIN_MEDIA_QUOTA_BYTES: u64 = 256 * 1024 * 1024;
/// Slowest upload rate cap that may be set remotely (bytes per second; `0`, no cap, is
/// allowed): 32 KiB/s (about 256 kbit/s, a poor cellular uplink) still moves a 20 MB clip in
/// about 11 minutes. Below it every upload stalls past its request's expiry.
pub const MIN_UPLOAD_BYTES_PER_SEC: u64 = 32 * 1024;
/// Highest minimum confidence that may be set remotely (percent): above 95 the recognizer's
/// real reads rarely pass, so plate reads would silently stop.
pub const MAX_MIN_CONFIDENCE: u8 = 95;

/// Connection settings ([`RemoteConfig::CONNECTION_SETTINGS`]) change at most once in this
/// many seconds (one hour), in the cloud and on the camera. A change that cannot reach the
/// broker keeps the camera offline until its rollback (5 minutes by default) and a change that
/// can still drops and re-makes the session; one an hour bounds what repeated changes cost to
/// about a twelfth of the camera's time even when every change is bad.
pub const MIN_CONNECTION_CHANGE_INTERVAL_SECS: u64 = 3600;
/// How much sooner than [`MIN_CONNECTION_CHANGE_INTERVAL_SECS`] the camera still accepts a
/// change: the cloud measures the interval between two API calls, the camera between the two
/// shadow updates (whole seconds, a moment later), so the camera allows a minute of slack.
pub const CONNECTION_CHANGE_SLACK_SECS: u64 = 60;

/// Key of the reported state under which the camera explains a refused or rolled back
/// desired document (`null` once a later one is applied).
pub const CONFIG_ERROR: &str = "config_error";

/// Why a configuration document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigDocError {
    /// A key that is not a remotely settable setting (a typo, or a setting newer than this
    /// build).
    #[error("unknown setting `{0}`")]
    UnknownSetting(String),
    /// A known setting with a value of the wrong type or out of range.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The document is not a JSON object.
    #[error("the configuration must be a JSON object")]
    NotAnObject,
}

impl ConfigDocError {
    /// The setting to blame, if one is.
    pub fn setting(&self) -> Option<&str> {
        match self {
            Self::UnknownSetting(s) => Some(s),
            Self::Invalid(v) => Some(v.field),
            Self::NotAnObject => None,
        }
    }
}

macro_rules! remote_config {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty ),* $(,)?) => {
        /// The remotely settable settings; `None` = not part of this document.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RemoteConfig {
            $( $(#[$doc])* #[serde(default, skip_serializing_if = "Option::is_none")] pub $name: Option<$ty>, )*
        }

        impl RemoteConfig {
            /// Every setting's wire name.
            pub const SETTINGS: &'static [&'static str] = &[$(stringify!($name)),*];

            /// Parses a (partial) document key by key, so that an error names its setting;
            /// then validates the ranges. `null` values are refused: a setting is changed by
            /// giving its new value.
            pub fn from_object(obj: &Map<String, Value>) -> Result<Self, ConfigDocError> {
                if let Some(k) = obj.keys().find(|k| !Self::SETTINGS.contains(&k.as_str())) {
                    return Err(ConfigDocError::UnknownSetting(k.chars().take(64).collect()));
                }
                let c = Self {
                    $( $name: setting(obj, stringify!($name))?, )*
                };
                c.validate()?;
                Ok(c)
            }

            /// Copies every setting `other` has over this one.
            pub fn merge(&mut self, other: &Self) {
                $( if other.$name.is_some() { self.$name = other.$name.clone(); } )*
            }

            /// The settings of `self` whose value differs from (or is missing in) `other`.
            pub fn differing_from(&self, other: &Self) -> Self {
                Self {
                    $( $name: if self.$name != other.$name { self.$name.clone() } else { None }, )*
                }
            }

            /// Whether no setting is given.
            pub fn is_empty(&self) -> bool {
                true $( && self.$name.is_none() )*
            }
        }
    };
}

remote_config! {
    /// MQTT port: 8883, or 443 with `mqtt_alpn` (connectivity: rolled back if it fails).
    mqtt_port: u16,
    /// Offer ALPN `x-amzn-mqtt-ca` (needed on 443).
    mqtt_alpn: bool,
    /// MQTT keep-alive, seconds, 30..=1200 (connectivity: takes effect by reconnecting).
    keep_alive_secs: u64,
    /// Seconds between health reports, 60..=604800.
    health_interval_secs: u64,
    /// Average upload rate cap, bytes per second; 0 = no cap, else at least
    /// [`MIN_UPLOAD_BYTES_PER_SEC`].
    upload_max_bytes_per_sec: u64,
    /// Upload progress is reported every this many percent, 1..=100.
    upload_progress_step_pct: u8,
    /// A plate-read batch is sent when this many reads wait, 1..=10000.
    outbox_batch_max_reads: u32,
    /// …or when its oldest read has waited this long, seconds, 1..=86400.
    outbox_batch_max_age_secs: u32,
    /// Plate reads below this confidence (percent, 0..=[`MAX_MIN_CONFIDENCE`]) are not kept.
    recognizer_min_confidence: u8,
    /// Plate formats to expect.
    recognizer_region: PlateRegion,
    /// Frames of one vehicle closer than this (milliseconds, 100..=60000) give one read.
    recognizer_group_gap_ms: u32,
    /// Disk quota of the media directory, bytes; 0 = none, else at least
    /// [`MIN_MEDIA_QUOTA_BYTES`]. Oldest files go first, never one being uploaded.
    media_quota_bytes: u64,
}

fn setting<T: DeserializeOwned>(
    obj: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<T>, ConfigDocError> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::Null) => Err(ValidationError::new(
            name,
            "null is not a value: give the setting's new value",
        )
        .into()),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| ValidationError::new(name, type_reason(&e)).into()),
    }
}

fn type_reason(e: &serde_json::Error) -> String {
    // serde_json's message names the value and the expected type ("invalid type: string
    // \"x\", expected u16"); keep that, drop the position (meaningless in a sub-value).
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn range<T: PartialOrd + std::fmt::Display + Copy>(
    v: Option<T>,
    name: &'static str,
    lo: T,
    hi: T,
) -> Result<(), ValidationError> {
    match v {
        Some(x) if x < lo || x > hi => Err(ValidationError::new(
            name,
            format!("must be {lo}..={hi}, got {x}"),
        )),
        _ => Ok(()),
    }
}

/// `0` ("none") or at least `floor`.
fn zero_or_at_least(v: Option<u64>, name: &'static str, floor: u64) -> Result<(), ValidationError> {
    match v {
        Some(x) if x != 0 && x < floor => Err(ValidationError::new(
            name,
            format!("must be 0 (none) or at least {floor}, got {x}"),
        )),
        _ => Ok(()),
    }
}

impl RemoteConfig {
    /// The settings that change the MQTT connection (applied by reconnecting): changed at
    /// most once per [`MIN_CONNECTION_CHANGE_INTERVAL_SECS`].
    pub const CONNECTION_SETTINGS: &'static [&'static str] =
        &["mqtt_port", "mqtt_alpn", "keep_alive_secs"];

    /// Checks every given setting's range, and the rules between settings given together.
    pub fn validate(&self) -> Result<(), ValidationError> {
        range(self.mqtt_port, "mqtt_port", 1, u16::MAX)?;
        range(self.keep_alive_secs, "keep_alive_secs", 30, 1200)?;
        range(
            self.health_interval_secs,
            "health_interval_secs",
            60,
            604_800,
        )?;
        range(
            self.upload_progress_step_pct,
            "upload_progress_step_pct",
            1,
            100,
        )?;
        range(
            self.outbox_batch_max_reads,
            "outbox_batch_max_reads",
            1,
            10_000,
        )?;
        range(
            self.outbox_batch_max_age_secs,
            "outbox_batch_max_age_secs",
            1,
            86_400,
        )?;
        range(
            self.recognizer_min_confidence,
            "recognizer_min_confidence",
            0,
            MAX_MIN_CONFIDENCE,
        )?;
        zero_or_at_least(
            self.media_quota_bytes,
            "media_quota_bytes",
            MIN_MEDIA_QUOTA_BYTES,
        )?;
        zero_or_at_least(
            self.upload_max_bytes_per_sec,
            "upload_max_bytes_per_sec",
            MIN_UPLOAD_BYTES_PER_SEC,
        )?;
        range(
            self.recognizer_group_gap_ms,
            "recognizer_group_gap_ms",
            100,
            60_000,
        )?;
        if self.mqtt_port == Some(443) && self.mqtt_alpn == Some(false) {
            return Err(ValidationError::new(
                "mqtt_alpn",
                "AWS IoT Core needs ALPN on port 443: set mqtt_alpn to true",
            ));
        }
        Ok(())
    }

    /// The document as a JSON object (only the given settings).
    pub fn to_object(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// Parses a JSON value that must be an object (see [`RemoteConfig::from_object`]).
    pub fn from_value(v: &Value) -> Result<Self, ConfigDocError> {
        v.as_object()
            .ok_or(ConfigDocError::NotAnObject)
            .and_then(Self::from_object)
    }
}

/// Why the camera did not (or no longer does) run a desired document: the value of
/// [`CONFIG_ERROR`] in the reported state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRefusal {
    /// Shadow version of the desired document refused.
    pub version: u64,
    /// The setting to blame, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
    /// Why, short.
    pub reason: String,
    /// True when it was applied, then undone because the camera could not reach the broker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rolled_back: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_partial_document_sets_only_what_it_names() {
        let c = RemoteConfig::from_object(&obj(
            json!({"keep_alive_secs": 600, "recognizer_region": "eu"}),
        ))
        .unwrap();
        assert_eq!(c.keep_alive_secs, Some(600));
        assert_eq!(c.recognizer_region, Some(PlateRegion::Eu));
        assert_eq!(c.mqtt_port, None);
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"keep_alive_secs":600,"recognizer_region":"eu"}"#
        );
    }

    #[test]
    fn an_unknown_setting_is_refused_by_name() {
        let e = RemoteConfig::from_object(&obj(json!({"keep_alive": 600}))).unwrap_err();
        assert_eq!(e, ConfigDocError::UnknownSetting("keep_alive".into()));
        assert_eq!(e.setting(), Some("keep_alive"));
    }

    #[test]
    fn a_wrong_type_names_its_setting_and_the_expected_type() {
        let e = RemoteConfig::from_object(&obj(json!({"mqtt_port": "8883"}))).unwrap_err();
        assert_eq!(e.setting(), Some("mqtt_port"));
        assert!(e.to_string().contains("expected u16"), "{e}");
        let e = RemoteConfig::from_object(&obj(json!({"recognizer_region": "mars"}))).unwrap_err();
        assert_eq!(e.setting(), Some("recognizer_region"));
    }

    #[test]
    fn out_of_range_values_are_refused_naming_the_setting() {
        for (doc, setting) in [
            (json!({"keep_alive_secs": 5}), "keep_alive_secs"),
            (json!({"keep_alive_secs": 1201}), "keep_alive_secs"),
            (json!({"health_interval_secs": 59}), "health_interval_secs"),
            (
                json!({"upload_progress_step_pct": 0}),
                "upload_progress_step_pct",
            ),
            (
                json!({"recognizer_min_confidence": 101}),
                "recognizer_min_confidence",
            ),
            (json!({"mqtt_port": 0}), "mqtt_port"),
            (json!({"media_quota_bytes": 1}), "media_quota_bytes"),
            (
                json!({"media_quota_bytes": MIN_MEDIA_QUOTA_BYTES - 1}),
                "media_quota_bytes",
            ),
            (
                json!({"upload_max_bytes_per_sec": 1}),
                "upload_max_bytes_per_sec",
            ),
            (
                json!({"recognizer_min_confidence": 100}),
                "recognizer_min_confidence",
            ),
            (json!({"mqtt_port": 70000}), "mqtt_port"),
            (json!({"mqtt_port": 443, "mqtt_alpn": false}), "mqtt_alpn"),
            (json!({"keep_alive_secs": null}), "keep_alive_secs"),
        ] {
            let e = RemoteConfig::from_object(&obj(doc.clone())).unwrap_err();
            assert_eq!(e.setting(), Some(setting), "{doc}: {e}");
        }
    }

    #[test]
    fn the_bounds_themselves_and_none_are_accepted() {
        let c = RemoteConfig::from_object(&obj(json!({
            "media_quota_bytes": MIN_MEDIA_QUOTA_BYTES,
            "upload_max_bytes_per_sec": MIN_UPLOAD_BYTES_PER_SEC,
            "recognizer_min_confidence": MAX_MIN_CONFIDENCE,
        })))
        .unwrap();
        assert_eq!(c.media_quota_bytes, Some(MIN_MEDIA_QUOTA_BYTES));
        let none = json!({"media_quota_bytes": 0, "upload_max_bytes_per_sec": 0});
        assert!(RemoteConfig::from_object(&obj(none)).is_ok());
    }

    #[test]
    fn merging_keeps_earlier_settings_and_overrides_named_ones() {
        let mut a = RemoteConfig {
            keep_alive_secs: Some(600),
            media_quota_bytes: Some(1),
            ..Default::default()
        };
        a.merge(&RemoteConfig {
            keep_alive_secs: Some(900),
            ..Default::default()
        });
        assert_eq!(a.keep_alive_secs, Some(900));
        assert_eq!(a.media_quota_bytes, Some(1));
        let d = a.differing_from(&RemoteConfig {
            keep_alive_secs: Some(900),
            ..Default::default()
        });
        assert_eq!(d.to_object(), obj(json!({"media_quota_bytes": 1})));
        assert!(RemoteConfig::default().is_empty());
    }

    #[test]
    fn a_non_object_document_is_refused() {
        assert_eq!(
            RemoteConfig::from_value(&json!([1])).unwrap_err(),
            ConfigDocError::NotAnObject
        );
    }
}
