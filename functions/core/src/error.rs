//! Errors of the domain and of its ports.

use anpr_protocol::{ConfigDocError, ValidationError};

/// A boxed source error from an adapter.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A storage port failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost a race (the item changed since it was read).
    #[error("the item changed concurrently")]
    Conflict,
    /// The pagination cursor is not one this store issued.
    #[error("invalid pagination cursor")]
    BadCursor,
    /// The stored item could not be mapped to the domain type.
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
    /// The backend failed; `retryable` says whether trying again may succeed.
    #[error("storage backend failed")]
    Backend {
        /// Whether the failure is transient (throttling, timeout, 5xx).
        retryable: bool,
        /// The adapter's error.
        #[source]
        source: BoxError,
    },
}

/// The device publisher port failed.
#[derive(Debug, thiserror::Error)]
#[error("publishing to {topic} failed")]
pub struct PublishError {
    /// The topic.
    pub topic: String,
    /// Whether trying again may succeed.
    pub retryable: bool,
    /// The adapter's error.
    #[source]
    pub source: BoxError,
}

/// What a domain operation can fail with. Mapped to HTTP in one place in request-api.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Bad input; names the field.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A configuration document was refused; names the setting.
    #[error(transparent)]
    Config(#[from] ConfigDocError),
    /// The camera is not registered.
    #[error("camera {0} is not registered")]
    CameraNotFound(String),
    /// The camera already has its maximum of open requests.
    #[error("the camera already has {max} open file requests; wait for one to finish")]
    TooManyOpenRequests {
        /// The limit.
        max: u32,
    },
    /// A connection setting was changed less than
    /// [`anpr_protocol::config::MIN_CONNECTION_CHANGE_INTERVAL_SECS`] ago.
    #[error(
        "{setting}: connection settings change at most once every {interval} s; the last \
         change was at {last}, the next is allowed from {next} (Unix seconds), in {} s",
        next.saturating_sub(*now)
    )]
    ConnectionChangeTooSoon {
        /// The connection setting asked for.
        setting: &'static str,
        /// The bound, seconds.
        interval: u64,
        /// When the last change was accepted (Unix seconds).
        last: u64,
        /// When the next change is allowed (Unix seconds).
        next: u64,
        /// When this one was asked (Unix seconds).
        now: u64,
    },
    /// The caller's role is below the one the operation needs.
    #[error("this needs the {} role", .0.as_str())]
    Forbidden(crate::access::Role),
    /// No such request.
    #[error("file request {0} not found")]
    RequestNotFound(String),
    /// The idempotency key was used before with a different request body.
    #[error("idempotency key was already used for a different request")]
    IdempotencyMismatch,
    /// Storage failed.
    #[error("storage failed")]
    Store(#[from] StoreError),
    /// Publishing to the device failed; the request is recorded and a retry with the same
    /// idempotency key publishes it again.
    #[error("could not publish the request to the camera")]
    Publish(#[from] PublishError),
    /// The request's file is not in the media bucket (yet, or any more).
    #[error("file request {id} is {state}: only a ready request's file can be downloaded")]
    NotReady {
        /// The request.
        id: String,
        /// Its state.
        state: &'static str,
    },
    /// A download link could not be signed.
    #[error("could not sign the download link")]
    Sign(#[from] crate::status::SignError),
}

impl DomainError {
    /// Whether a caller (or Lambda) may retry.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(StoreError::Backend { retryable, .. }) => *retryable,
            Self::Store(StoreError::Conflict) => true,
            Self::Publish(p) => p.retryable,
            _ => false,
        }
    }
}
