//! Identifiers: camera ids (= AWS IoT thing name = MQTT client id = certificate CN), request ids
//! and plate read ids. All are validated on construction and on deserialisation.

use crate::ValidationError;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

fn id_chars_ok(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

macro_rules! validated_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted id, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates and wraps an id: 1..=`MAX_LEN` characters of `[A-Za-z0-9_-]`.
            pub fn parse(s: &str) -> Result<Self, ValidationError> {
                if s.is_empty() {
                    return Err(ValidationError::new($field, "must not be empty"));
                }
                if s.len() > Self::MAX_LEN {
                    return Err(ValidationError::new(
                        $field,
                        format!("longer than {} characters", Self::MAX_LEN),
                    ));
                }
                if !id_chars_ok(s) {
                    return Err(ValidationError::new(
                        $field,
                        "only letters A-Z a-z, digits, '-' and '_' are allowed",
                    ));
                }
                Ok(Self(s.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_id!(
    /// A camera's id: its AWS IoT thing name, MQTT client id and certificate CN. It is the first
    /// level of every camera topic and of its S3 key prefix, so it is kept to a safe alphabet.
    CameraId,
    "camera_id",
    64
);
validated_id!(
    /// A file request's id, minted by the cloud (a ULID: 26 characters, sortable by time).
    RequestId,
    "request_id",
    40
);
validated_id!(
    /// A plate read's id, minted by the camera so the cloud can drop duplicates.
    ReadId,
    "read_id",
    32
);
