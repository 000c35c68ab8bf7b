//! File requests (cloud → camera) and file statuses (camera → cloud).

use crate::ValidationError;
use crate::codec::Message;
use crate::ids::RequestId;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// A file's path relative to the camera's media directory, as a web user names it.
///
/// Accepted: 1..=[`FileName::MAX_LEN`] bytes; components separated by `/`, none empty, `.` or
/// `..`, none longer than 255 bytes; no leading `/`, no `\`; only letters and digits of any
/// script plus ` ._-+@=,()[]~`. Control characters, bidirectional overrides and other invisible
/// format characters are refused, as are look-alike separators (they are not alphanumeric).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct FileName(String);

const FILE_PUNCT: &[char] = &[
    ' ', '.', '_', '-', '+', '@', '=', ',', '(', ')', '[', ']', '~',
];

impl FileName {
    /// Longest accepted path, in bytes.
    pub const MAX_LEN: usize = 512;

    /// Validates a relative media path.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        const F: &str = "file";
        if s.is_empty() {
            return Err(ValidationError::new(F, "must not be empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(ValidationError::new(
                F,
                format!("longer than {} bytes", Self::MAX_LEN),
            ));
        }
        if s.starts_with('/') {
            return Err(ValidationError::new(F, "must be a relative path"));
        }
        for c in s.chars() {
            if c == '/' || c.is_alphanumeric() || FILE_PUNCT.contains(&c) {
                continue;
            }
            let what = if c.is_control() {
                "control characters are not allowed".to_owned()
            } else {
                format!("character U+{:04X} is not allowed", c as u32)
            };
            return Err(ValidationError::new(F, what));
        }
        for comp in s.split('/') {
            match comp {
                "" => return Err(ValidationError::new(F, "empty path component")),
                "." | ".." => {
                    return Err(ValidationError::new(F, "'.' and '..' are not allowed"));
                }
                c if c.len() > 255 => {
                    return Err(ValidationError::new(
                        F,
                        "path component longer than 255 bytes",
                    ));
                }
                c if c.trim() != c => {
                    return Err(ValidationError::new(
                        F,
                        "path components must not start or end with a space",
                    ));
                }
                _ => {}
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FileName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Cloud → camera on `{camera_id}/file/request`: upload this file.
///
/// Wire: `{"v":1,"id":"01JD…","file":"clips/a.mp4","at":1764086400,"exp":1764090000}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRequest {
    /// Request id; also the idempotency key on the camera (a duplicate delivery is a no-op).
    pub id: RequestId,
    /// File to upload, relative to the camera's media directory.
    pub file: FileName,
    /// When the web user asked (Unix seconds).
    pub at: u64,
    /// After this instant (Unix seconds) the camera answers `expired` instead of uploading.
    pub exp: u64,
}

impl Message for FileRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.exp < self.at {
            return Err(ValidationError::new(
                "exp",
                "expiry is before the request time",
            ));
        }
        Ok(())
    }
}

/// Why a camera refused or failed a request. Unknown codes from a newer camera decode as
/// [`ReasonCode::Other`] instead of failing the whole status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// No such file in the media directory.
    NotFound,
    /// The name resolves outside the media directory (traversal, symlink escape).
    ForbiddenPath,
    /// The name is a directory, device, FIFO or socket.
    NotRegularFile,
    /// The file exceeds the configured upload limit.
    TooLarge,
    /// Local I/O failed (disk error, permissions).
    IoError,
    /// The upload failed after its retries.
    UploadFailed,
    /// Credentials could not be obtained.
    NoCredentials,
    /// The request payload itself was invalid.
    BadRequest,
    /// The camera already has its maximum of requests in hand; ask again later.
    Busy,
    /// A code this build does not know.
    #[serde(other)]
    Other,
}

impl ReasonCode {
    /// The wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::ForbiddenPath => "forbidden_path",
            Self::NotRegularFile => "not_regular_file",
            Self::TooLarge => "too_large",
            Self::IoError => "io_error",
            Self::UploadFailed => "upload_failed",
            Self::NoCredentials => "no_credentials",
            Self::BadRequest => "bad_request",
            Self::Busy => "busy",
            Self::Other => "other",
        }
    }
}

/// The camera's progress on one request, discriminated by `s`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "s", rename_all = "snake_case")]
pub enum FileStatusKind {
    /// The camera has the request and will upload.
    Accepted,
    /// Upload under way; `pct` is 0..=100 of the file's bytes confirmed by S3.
    Uploading {
        /// Percent done.
        pct: u8,
    },
    /// The camera finished the upload (S3's own event confirms it to the cloud).
    Uploaded {
        /// File size in bytes.
        size: u64,
    },
    /// The camera tried and could not.
    Failed {
        /// Why.
        reason: ReasonCode,
    },
    /// The camera will not serve this request (bad or forbidden name).
    Rejected {
        /// Why.
        reason: ReasonCode,
    },
    /// The request arrived after its expiry; nothing was uploaded.
    Expired,
}

impl FileStatusKind {
    /// The last status of a request (uploaded, failed, rejected, expired), as opposed to
    /// `accepted` and `uploading` on the way.
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Accepted | Self::Uploading { .. })
    }

    /// Every `s` value this build knows.
    pub const KINDS: &'static [&'static str] = &[
        "accepted",
        "uploading",
        "uploaded",
        "failed",
        "rejected",
        "expired",
    ];
}

/// Camera → cloud on `{camera_id}/file/status`.
///
/// Wire: `{"v":1,"id":"01JD…","s":"uploading","pct":40}`. The camera id is never in the payload:
/// the cloud takes it from the topic, which the broker's policy ties to the certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStatus {
    /// The request this status is about.
    pub id: RequestId,
    /// The status itself.
    #[serde(flatten)]
    pub kind: FileStatusKind,
}

impl Message for FileStatus {
    const KIND: Option<(&'static str, &'static [&'static str])> =
        Some(("s", FileStatusKind::KINDS));

    fn validate(&self) -> Result<(), ValidationError> {
        if let FileStatusKind::Uploading { pct } = self.kind
            && pct > 100
        {
            return Err(ValidationError::new("pct", "must be 0..=100"));
        }
        Ok(())
    }
}

/// Camera → cloud on `{camera_id}/file/sync`, once per new broker session (CONNACK without a
/// session): the requests queued for the camera while it was away were lost with the old
/// session, so the cloud publishes those still open and not expired again.
///
/// Wire: `{"v":1}`. Nothing else: the camera id comes from the topic, and the cloud knows which
/// requests are open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSync {}

impl Message for FileSync {}
