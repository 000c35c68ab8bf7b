//! Decoding S3 event records into [`ObjectCreated`] events, one record at a time.
//!
//! Each record is decoded on its own, with only the fields the function uses, so one malformed
//! record never loses the others (and a stand-in that omits fields the function does not use,
//! such as `userIdentity`, still works). The fixtures under `tests/fixtures` also parse as
//! `aws_lambda_events::s3::S3Event`, which checks they have the real shape.
//!
//! Object keys arrive URL-encoded in S3 events (`application/x-www-form-urlencoded` style:
//! space as `+`, a literal `+` as `%2B`, UTF-8 percent-encoded): [`decode_key`] undoes that
//! before the key is parsed as `media/{camera}/{request}/{file}`.

use anpr_core::status::ObjectCreated;
use anpr_protocol::{ValidationError, topics};
use serde::Deserialize;

/// Why a record could not be turned into an event.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The record does not have the S3 event shape.
    #[error("malformed S3 record: {0}")]
    Malformed(#[source] serde_json::Error),
    /// The key is not valid URL encoding of UTF-8.
    #[error("object key {key:?} is not valid URL-encoded UTF-8")]
    KeyEncoding {
        /// The key as received.
        key: String,
    },
    /// The key is not an upload key (`media/{camera}/{request}/{file}`).
    #[error("object key {key:?} is not an upload key")]
    Key {
        /// The decoded key.
        key: String,
        /// What is wrong with it.
        #[source]
        source: ValidationError,
    },
    /// The record has no object size.
    #[error("record for {key:?} has no object size")]
    NoSize {
        /// The decoded key.
        key: String,
    },
}

/// One S3 event record, as far as this function reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// `ObjectCreated:Put`, `ObjectCreated:CompleteMultipartUpload`, …
    #[serde(default)]
    pub event_name: Option<String>,
    /// ISO-8601 time S3 finished the request.
    #[serde(default)]
    pub event_time: Option<String>,
    /// Bucket and object.
    pub s3: Entity,
}

/// `s3` of a record.
#[derive(Debug, Clone, Deserialize)]
pub struct Entity {
    /// The bucket.
    pub bucket: Bucket,
    /// The object.
    pub object: Object,
}

/// `s3.bucket` of a record.
#[derive(Debug, Clone, Deserialize)]
pub struct Bucket {
    /// Bucket name.
    pub name: String,
}

/// `s3.object` of a record.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    /// URL-encoded key.
    pub key: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// ETag.
    #[serde(default)]
    pub e_tag: Option<String>,
    /// Hex string ordering events on the same key.
    #[serde(default)]
    pub sequencer: Option<String>,
}

/// A record that is an object creation in the media bucket, or why it does not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectEvent {
    /// An upload completed.
    Created(ObjectCreated),
    /// Not an object creation, or not in the media bucket.
    NotApplicable(&'static str),
}

/// The records of an S3 event, each decoded on its own. An event without `Records` (such as
/// `s3:TestEvent`, sent when the notification is configured) has none.
pub fn records(event: &serde_json::Value) -> Vec<Result<Record, RecordError>> {
    event
        .get("Records")
        .and_then(serde_json::Value::as_array)
        .map(|rs| {
            rs.iter()
                .map(|r| Record::deserialize(r).map_err(RecordError::Malformed))
                .collect()
        })
        .unwrap_or_default()
}

/// Decodes an S3 event key: `+` is a space, `%XX` a byte, and the bytes must be UTF-8.
pub fn decode_key(raw: &str) -> Result<String, RecordError> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| RecordError::KeyEncoding {
            key: raw.to_owned(),
        })
}

/// Unix seconds of an ISO-8601 event time.
pub fn parse_event_time(s: &str) -> Option<u64> {
    aws_smithy_types::DateTime::from_str(s, aws_smithy_types::date_time::Format::DateTime)
        .ok()
        .and_then(|t| u64::try_from(t.secs()).ok())
}

impl Record {
    /// The object creation this record reports, if it is one in `bucket`.
    pub fn object_created(self, bucket: &str) -> Result<ObjectEvent, RecordError> {
        let name = self.event_name.as_deref().unwrap_or("");
        if !name.starts_with("ObjectCreated:") {
            return Ok(ObjectEvent::NotApplicable("not an ObjectCreated event"));
        }
        if self.s3.bucket.name != bucket {
            return Ok(ObjectEvent::NotApplicable("not the media bucket"));
        }
        let key = decode_key(&self.s3.object.key)?;
        let (camera_id, request_id, file) =
            topics::parse_upload_key(&key).map_err(|source| RecordError::Key {
                key: key.clone(),
                source,
            })?;
        let file = file.to_owned();
        let size = self
            .s3
            .object
            .size
            .ok_or_else(|| RecordError::NoSize { key: key.clone() })?;
        Ok(ObjectEvent::Created(ObjectCreated {
            camera_id,
            request_id,
            file,
            key,
            size,
            checksum: self
                .s3
                .object
                .e_tag
                .map(|t| t.trim_matches('"').to_owned())
                .filter(|t| !t.is_empty()),
            sequencer: self.s3.object.sequencer.filter(|s| !s.is_empty()),
            at: self
                .event_time
                .as_deref()
                .and_then(parse_event_time)
                .unwrap_or_else(anpr_protocol::clock::now_secs),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_decoded_like_s3_encodes_them() {
        assert_eq!(decode_key("clips/gate+1.mp4").unwrap(), "clips/gate 1.mp4");
        assert_eq!(decode_key("a%2Bb.mp4").unwrap(), "a+b.mp4");
        assert_eq!(
            decode_key("%C3%A9t%C3%A9+%E6%9D%B1.mp4").unwrap(),
            "été 東.mp4"
        );
        assert_eq!(decode_key("plain").unwrap(), "plain");
    }

    #[test]
    fn a_key_that_is_not_utf8_is_an_error_not_a_panic() {
        assert!(matches!(
            decode_key("%FF%FE"),
            Err(RecordError::KeyEncoding { .. })
        ));
        // A lone `%` is kept as is by percent decoding.
        assert_eq!(decode_key("100%").unwrap(), "100%");
    }

    #[test]
    fn event_times_parse_to_unix_seconds() {
        assert_eq!(
            parse_event_time("2026-11-25T16:00:00.123Z"),
            Some(1_795_622_400)
        );
        assert_eq!(parse_event_time("yesterday"), None);
    }

    #[test]
    fn records_decode_one_by_one() {
        let ev = serde_json::json!({"Records": [
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "x", "size": 1}}},
            {"eventName": 7},
        ]});
        let rs = records(&ev);
        assert_eq!(rs.len(), 2);
        assert!(rs[0].is_ok());
        assert!(matches!(rs[1], Err(RecordError::Malformed(_))));
        assert!(records(&serde_json::json!({"Event": "s3:TestEvent"})).is_empty());
    }
}
