//! Anthropic's error envelope (<https://docs.anthropic.com/en/api/errors>):
//! `{"type":"error","error":{"type":…,"message":…}}`, with the HTTP status
//! each error type comes with (400 `invalid_request_error`, 401
//! `authentication_error`, 403 `permission_error`, 404 `not_found_error`,
//! 413 `request_too_large`, 429 `rate_limit_error`, 500 `api_error`, 529
//! `overloaded_error`). The layer adds `request_id`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An HTTP error answer in Anthropic's envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AnthError {
    pub(crate) status: StatusCode,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    pub(crate) retry_after: Option<u64>,
}

impl AnthError {
    pub(crate) fn new(
        status: StatusCode,
        kind: &'static str,
        message: impl Into<String>,
    ) -> AnthError {
        AnthError {
            status,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub(crate) fn invalid(message: impl Into<String>) -> AnthError {
        AnthError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 404 `not_found_error`.
    pub(crate) fn not_found(message: impl Into<String>) -> AnthError {
        AnthError::new(StatusCode::NOT_FOUND, "not_found_error", message)
    }

    /// 413 `request_too_large`.
    pub(crate) fn too_large(limit: u64) -> AnthError {
        AnthError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!(
                "Request exceeds the maximum allowed number of bytes. The maximum request size \
                 for the Message Batches API is {limit} bytes."
            ),
        )
    }

    /// 500 `api_error`.
    pub(crate) fn api_error() -> AnthError {
        AnthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "Internal server error",
        )
    }

    /// 529 `overloaded_error`.
    pub(crate) fn overloaded() -> AnthError {
        let status = StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        AnthError::new(status, "overloaded_error", "Overloaded")
    }

    /// A failure of the emulator itself (disk, state).
    pub(crate) fn internal(detail: impl std::fmt::Display) -> AnthError {
        AnthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            format!("Internal server error: {detail}"),
        )
    }

    /// The envelope as JSON.
    pub(crate) fn body(&self) -> Value {
        envelope(self.kind, &self.message)
    }
}

/// `{"type":"error","error":{"type":kind,"message":message}}`: the body of
/// an error answer, and the `error` of an `errored` result line.
pub(crate) fn envelope(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// The error type Anthropic documents for an HTTP status.
pub(crate) fn kind_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

impl IntoResponse for AnthError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_documented_types() {
        assert_eq!(kind_for_status(400), "invalid_request_error");
        assert_eq!(kind_for_status(413), "request_too_large");
        assert_eq!(kind_for_status(529), "overloaded_error");
        assert_eq!(kind_for_status(503), "api_error");
        assert_eq!(AnthError::overloaded().status.as_u16(), 529);
        assert_eq!(
            AnthError::invalid("x").body(),
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "x"}})
        );
    }
}
