//! Decoding and encoding with the wire rules of the crate: size limit, schema version, tolerated
//! unknown fields, and unknown message kinds reported as such.

use crate::{MAX_MQTT_PAYLOAD, ValidationError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The schema version this crate writes, and the newest it reads.
pub const SCHEMA_VERSION: u16 = 1;

/// Why a payload could not be decoded (or encoded).
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Larger than the MQTT payload limit of AWS IoT Core.
    #[error("payload of {size} bytes exceeds the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    /// Not JSON, not an object, or fields of the wrong type.
    #[error("malformed message: {0}")]
    Malformed(#[source] serde_json::Error),
    /// The top level is valid JSON but not an object.
    #[error("malformed message: expected a JSON object")]
    NotAnObject,
    /// No `v` field, or not a number.
    #[error("message has no schema version `v`")]
    MissingVersion,
    /// Written by a newer major schema than this build reads.
    #[error("schema version {found} is newer than the supported {supported}")]
    UnsupportedVersion { found: u64, supported: u16 },
    /// The discriminating field names a kind this build does not know (a newer peer, most likely).
    #[error("unknown message kind {kind:?} in field `{field}`")]
    UnknownKind { field: &'static str, kind: String },
    /// A field is well-formed JSON but violates a validation rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

/// A message type of the protocol: how it is discriminated, if it is.
pub trait Message: Serialize + DeserializeOwned {
    /// The field naming the message's kind, with the kinds this build knows.
    const KIND: Option<(&'static str, &'static [&'static str])> = None;

    /// Checks that hold across fields (ranges, lengths) after the types parsed.
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

#[derive(Serialize)]
struct Envelope<'a, T> {
    v: u16,
    #[serde(flatten)]
    body: &'a T,
}

/// Encodes a message with the current schema version. Fails if it would exceed the MQTT limit.
pub fn encode<T: Message>(msg: &T) -> Result<Vec<u8>, ProtocolError> {
    let bytes = serde_json::to_vec(&Envelope {
        v: SCHEMA_VERSION,
        body: msg,
    })
    .map_err(ProtocolError::Malformed)?;
    if bytes.len() > MAX_MQTT_PAYLOAD {
        return Err(ProtocolError::TooLarge {
            size: bytes.len(),
            max: MAX_MQTT_PAYLOAD,
        });
    }
    Ok(bytes)
}

/// Decodes a message: size limit first, then JSON, schema version, kind, types, validation.
/// Never panics, whatever the input.
pub fn decode<T: Message>(bytes: &[u8]) -> Result<T, ProtocolError> {
    if bytes.len() > MAX_MQTT_PAYLOAD {
        return Err(ProtocolError::TooLarge {
            size: bytes.len(),
            max: MAX_MQTT_PAYLOAD,
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(ProtocolError::Malformed)?;
    let obj = value.as_object().ok_or(ProtocolError::NotAnObject)?;
    let v = obj
        .get("v")
        .and_then(serde_json::Value::as_u64)
        .ok_or(ProtocolError::MissingVersion)?;
    if v > u64::from(SCHEMA_VERSION) || v == 0 {
        return Err(ProtocolError::UnsupportedVersion {
            found: v,
            supported: SCHEMA_VERSION,
        });
    }
    if let Some((field, known)) = T::KIND
        && let Some(kind) = obj.get(field).and_then(serde_json::Value::as_str)
        && !known.contains(&kind)
    {
        return Err(ProtocolError::UnknownKind {
            field,
            kind: kind.chars().take(64).collect(),
        });
    }
    let msg: T = serde_json::from_value(value).map_err(ProtocolError::Malformed)?;
    msg.validate()?;
    Ok(msg)
}
