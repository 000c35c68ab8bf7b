//! Plate reads (camera → cloud, batched) and plate text normalisation.

use crate::ValidationError;
use crate::codec::Message;
use crate::file::FileName;
use crate::ids::ReadId;
use serde::{Deserialize, Serialize};

/// Longest normalised plate text accepted.
pub const MAX_PLATE_LEN: usize = 16;

/// Normalises plate text the same way on write and on query: ASCII letters upper-cased, spaces,
/// dashes, dots and any other separator dropped. `"ab-123 cd"` → `"AB123CD"`.
///
/// Returns an error if nothing plate-like remains, if a non-ASCII letter or digit is present,
/// or if the result is longer than [`MAX_PLATE_LEN`].
pub fn normalize_plate(raw: &str) -> Result<String, ValidationError> {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
        } else if c == ' ' || c == '-' || c == '.' || c == '·' || c == '_' {
            continue;
        } else {
            return Err(ValidationError::new(
                "plate",
                format!("character U+{:04X} is not allowed in a plate", c as u32),
            ));
        }
    }
    if out.is_empty() {
        return Err(ValidationError::new("plate", "no letters or digits"));
    }
    if out.len() > MAX_PLATE_LEN {
        return Err(ValidationError::new(
            "plate",
            format!("longer than {MAX_PLATE_LEN} characters"),
        ));
    }
    Ok(out)
}

/// One plate read, as sent inside a [`PlateReadBatch`]. Compact: the camera id is the topic's,
/// the time is milliseconds, confidence a percentage.
///
/// Wire: `{"id":"0kq3h7x2m1","t":1764086400123,"p":"AB123CD","c":97,"img":"reads/x.jpg"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlateRead {
    /// Id minted on the camera; the cloud drops a second read with the same id.
    pub id: ReadId,
    /// When the vehicle was seen (Unix milliseconds, camera clock).
    pub t: u64,
    /// Plate text as read (normalised by the cloud before storing).
    pub p: String,
    /// Confidence, 0..=100.
    pub c: u8,
    /// Image or clip of the sighting in the camera's media directory, requestable later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub img: Option<FileName>,
    /// Plate box in the frame: x, y, width, height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bb: Option<[u32; 4]>,
}

/// Camera → cloud on the plate-reads topic (Basic Ingest in AWS): a batch of reads.
///
/// Wire: `{"v":1,"r":[{…},{…}]}`. Reads are validated one by one on ingest so a batch with
/// some bad reads still stores the good ones; see [`PlateReadBatch::decode_lenient`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlateReadBatch {
    /// The reads.
    pub r: Vec<PlateRead>,
}

impl Message for PlateReadBatch {}

/// One read of a batch that failed to decode, with its index in the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRead {
    /// Position in the batch's `r` array.
    pub index: usize,
    /// Why it was refused.
    pub reason: String,
}

impl PlateReadBatch {
    /// Decodes a batch keeping every read that is valid on its own and reporting the others,
    /// instead of failing the whole batch for one bad read. The envelope (size, JSON, version,
    /// `r` being an array) must still be right.
    pub fn decode_lenient(
        bytes: &[u8],
    ) -> Result<(Vec<PlateRead>, Vec<RejectedRead>), crate::ProtocolError> {
        #[derive(Serialize, Deserialize)]
        struct Raw {
            r: Vec<serde_json::Value>,
        }
        impl Message for Raw {}
        let raw: Raw = crate::decode(bytes)?;
        let mut ok = Vec::with_capacity(raw.r.len());
        let mut bad = Vec::new();
        for (index, v) in raw.r.into_iter().enumerate() {
            match serde_json::from_value::<PlateRead>(v) {
                Ok(read) if read.c <= 100 => ok.push(read),
                Ok(_) => bad.push(RejectedRead {
                    index,
                    reason: "confidence above 100".into(),
                }),
                Err(e) => bad.push(RejectedRead {
                    index,
                    reason: e.to_string(),
                }),
            }
        }
        Ok((ok, bad))
    }
}
