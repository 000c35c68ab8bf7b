//! Every API error and its HTTP mapping, in one place. Responses are
//! `{"error":{"code","message","field"?}}` and never carry internals.

use anpr_core::{ClaimsError, DomainError, StoreError};
use anpr_protocol::ConfigDocError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// What a request can fail with at the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The domain refused or failed.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The body is not JSON, or a field has the wrong type.
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// The field, if one is to blame.
        field: Option<&'static str>,
    },
    /// No or wrong `Content-Type`.
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    /// The body exceeds the limit.
    #[error("request body exceeds {0} bytes")]
    TooLarge(usize),
    /// No verified identity in the request context.
    #[error("missing or invalid authorization")]
    Unauthorized,
    /// The verified identity names no valid organisation or role.
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such route.
    #[error("no such resource")]
    NoRoute,
    /// The route exists, the method does not.
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
}

impl From<ClaimsError> for ApiError {
    fn from(e: ClaimsError) -> Self {
        match e {
            ClaimsError::Unauthenticated => Self::Unauthorized,
            ClaimsError::Forbidden(why) => Self::Forbidden(why),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// Status, machine-readable code, message and field of the error.
    pub fn parts(&self) -> (StatusCode, &'static str, String, Option<&'static str>) {
        use StatusCode as S;
        match self {
            Self::Domain(d) => match d {
                DomainError::Invalid(v) => (S::BAD_REQUEST, "invalid_field", v.to_string(), Some(v.field)),
                DomainError::Config(ConfigDocError::Invalid(v)) => (S::BAD_REQUEST, "invalid_field", v.to_string(), Some(v.field)),
                DomainError::Config(c) => (S::BAD_REQUEST, "invalid_setting", c.to_string(), None),
                DomainError::TooManyOpenRequests { .. } => (S::TOO_MANY_REQUESTS, "too_many_open_requests", d.to_string(), None),
                DomainError::ConnectionChangeTooSoon { setting, .. } => (S::TOO_MANY_REQUESTS, "connection_change_too_soon", d.to_string(), Some(*setting)),
                DomainError::Forbidden(_) => (S::FORBIDDEN, "forbidden", d.to_string(), None),
                DomainError::CameraNotFound(_) => (S::NOT_FOUND, "camera_not_found", d.to_string(), None),
                DomainError::RequestNotFound(_) => (S::NOT_FOUND, "request_not_found", d.to_string(), None),
                DomainError::IdempotencyMismatch => (S::CONFLICT, "idempotency_key_reused", d.to_string(), Some("Idempotency-Key")),
                DomainError::Store(StoreError::Conflict) => (S::CONFLICT, "conflict", "the resource changed concurrently; retry".into(), None),
                DomainError::Publish(_) => (
                    S::SERVICE_UNAVAILABLE,
                    "camera_unreachable",
                    "the request was recorded but could not be sent to the camera; retry with the same Idempotency-Key".into(),
                    None,
                ),
                DomainError::NotReady { .. } => (S::CONFLICT, "not_ready", d.to_string(), None),
                DomainError::Sign(_) => (S::SERVICE_UNAVAILABLE, "unavailable", "the download link could not be signed; retry".into(), None),
                DomainError::Store(_) if d.is_retryable() => (S::SERVICE_UNAVAILABLE, "unavailable", "temporarily unavailable; retry".into(), None),
                DomainError::Store(_) => (S::INTERNAL_SERVER_ERROR, "internal", "internal error".into(), None),
            },
            Self::BadRequest { message, field } => (S::BAD_REQUEST, "bad_request", message.clone(), *field),
            Self::UnsupportedMediaType => (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", self.to_string(), None),
            Self::TooLarge(_) => (S::PAYLOAD_TOO_LARGE, "too_large", self.to_string(), None),
            Self::Unauthorized => (S::UNAUTHORIZED, "unauthorized", self.to_string(), None),
            Self::Forbidden(_) => (S::FORBIDDEN, "forbidden", self.to_string(), None),
            Self::NoRoute => (S::NOT_FOUND, "not_found", self.to_string(), None),
            Self::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, "method_not_allowed", self.to_string(), None),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, field) = self.parts();
        if status.is_server_error() {
            // Log the whole chain; the client sees none of it.
            let mut chain = String::new();
            let mut src: Option<&dyn std::error::Error> = Some(&self);
            while let Some(e) = src {
                chain.push_str(&format!(": {e}"));
                src = e.source();
            }
            tracing::error!(code, error = %chain, "request failed");
        }
        let body = Body {
            error: Inner {
                code,
                message,
                field,
            },
        };
        (status, axum::Json(body)).into_response()
    }
}
