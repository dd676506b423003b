//! The error envelope (API notes §8, `ErrorResponse`) and [`ApiError`],
//! the error a non-2xx response turns into.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The JSON body of an error response (API notes §8, `ErrorResponse`).
///
/// None of the nine Files and Batches operations declares it, but the API
/// sends it with every non-2xx status (API notes §9.7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The error (API notes §8, required).
    pub error: ErrorObject,
}

impl ErrorResponse {
    /// An envelope with `type` and `message` set, `param` and `code` null.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> ErrorResponse {
        ErrorResponse {
            error: ErrorObject {
                message: message.into(),
                error_type: Some(error_type.into()),
                param: None,
                code: None,
            },
        }
    }

    /// Sets `code`.
    pub fn with_code(mut self, code: impl Into<String>) -> ErrorResponse {
        self.error.code = Some(code.into());
        self
    }

    /// Sets `param`.
    pub fn with_param(mut self, param: impl Into<String>) -> ErrorResponse {
        self.error.param = Some(param.into());
        self
    }
}

/// The error inside the envelope (API notes §8, `Error`).
///
/// The spec requires all four keys, with `param` and `code` nullable.
/// Parsing is looser, as real responses are: a missing key reads as `None`
/// (or `""` for `message`), and a number or boolean where a string belongs
/// (some services send numeric codes) is kept as its JSON text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// Human-readable text (API notes §8).
    #[serde(default, deserialize_with = "lenient_string")]
    pub message: String,
    /// The error type, e.g. `invalid_request_error` (API notes §8).
    #[serde(rename = "type", default, deserialize_with = "lenient_opt_string")]
    pub error_type: Option<String>,
    /// The parameter at fault (API notes §8, nullable).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub param: Option<String>,
    /// A machine-readable code, e.g. `rate_limit_exceeded` (API notes §8, nullable).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub code: Option<String>,
}

fn scalar_text(v: Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(scalar_text(Value::deserialize(d)?))
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(scalar_text(Value::deserialize(d)?).unwrap_or_default())
}

/// An error answer from the API: a non-2xx status, with the envelope's
/// fields when the body was an [`ErrorResponse`] (API notes §8).
///
/// Built by [`ApiError::from_response`], which never fails: without an
/// envelope, `message` says what the status means and quotes the start of
/// the body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("api error {status}{label}: {message}", label = self.label())]
pub struct ApiError {
    /// The HTTP status code.
    pub status: u16,
    /// The envelope's `type`, e.g. `invalid_request_error`.
    pub error_type: Option<String>,
    /// The envelope's `code`, e.g. `rate_limit_exceeded`.
    pub code: Option<String>,
    /// The envelope's `message`, or a status-based description.
    pub message: String,
    /// The envelope's `param`.
    pub param: Option<String>,
    /// The `x-request-id` response header, for support requests.
    pub request_id: Option<String>,
}

impl ApiError {
    /// The longest body excerpt quoted in a fallback message, in bytes.
    pub const EXCERPT_MAX_BYTES: usize = 200;

    /// Builds the error from a response's status, headers and body.
    ///
    /// The body is parsed as an [`ErrorResponse`] envelope (whatever the
    /// `Content-Type`). If it is not one, `message` is the status's reason
    /// phrase, followed by a lossy excerpt of the body (control characters
    /// and runs of whitespace collapsed to one space, capped at
    /// [`EXCERPT_MAX_BYTES`](Self::EXCERPT_MAX_BYTES)) when the body is not
    /// blank. `request_id` comes from the `x-request-id` header.
    pub fn from_response(
        status: http::StatusCode,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> ApiError {
        let request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let reason = status
            .canonical_reason()
            .unwrap_or("unexpected status")
            .to_owned();

        match serde_json::from_slice::<ErrorResponse>(body) {
            Ok(ErrorResponse { error }) => ApiError {
                status: status.as_u16(),
                message: if error.message.trim().is_empty() {
                    reason
                } else {
                    error.message
                },
                error_type: error.error_type,
                code: error.code,
                param: error.param,
                request_id,
            },
            Err(_) => {
                let excerpt = excerpt(body, Self::EXCERPT_MAX_BYTES);
                let message = if excerpt.is_empty() {
                    reason
                } else {
                    format!("{reason}: {excerpt}")
                };
                ApiError {
                    status: status.as_u16(),
                    error_type: None,
                    code: None,
                    message,
                    param: None,
                    request_id,
                }
            }
        }
    }

    /// This error with the API key removed from every text the server sent
    /// (see [`ApiBase::redact`](super::ApiBase::redact)).
    #[must_use]
    pub fn redacted(self, api: &super::ApiBase) -> ApiError {
        let opt = |s: Option<String>| s.map(|s| api.redact(&s));
        ApiError {
            status: self.status,
            error_type: opt(self.error_type),
            code: opt(self.code),
            message: api.redact(&self.message),
            param: opt(self.param),
            request_id: opt(self.request_id),
        }
    }

    /// The `(code)` or, without a code, `(type)` part of the Display text.
    fn label(&self) -> String {
        match self.code.as_deref().or(self.error_type.as_deref()) {
            Some(l) if !l.is_empty() => format!(" ({l})"),
            _ => String::new(),
        }
    }
}

/// A short, printable, lossy excerpt of `body`: at most `max` bytes of it,
/// invalid UTF-8 replaced, control characters and whitespace runs collapsed
/// to one space, trimmed; `...` marks a cut.
pub(crate) fn excerpt(body: &[u8], max: usize) -> String {
    let cut = body.len() > max;
    let text = String::from_utf8_lossy(&body[..body.len().min(max)]);
    let mut out = String::with_capacity(text.len() + 3);
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    if cut {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, StatusCode};

    fn headers(request_id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "x-request-id",
            HeaderValue::from_str(request_id).expect("header"),
        );
        h
    }

    #[test]
    fn envelope_fields_are_taken() {
        let body = br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        let e = ApiError::from_response(StatusCode::TOO_MANY_REQUESTS, &headers("req_1"), body);
        assert_eq!(
            e,
            ApiError {
                status: 429,
                error_type: Some("requests".into()),
                code: Some("rate_limit_exceeded".into()),
                message: "Rate limit reached".into(),
                param: None,
                request_id: Some("req_1".into()),
            }
        );
        assert_eq!(
            e.to_string(),
            "api error 429 (rate_limit_exceeded): Rate limit reached"
        );
    }

    #[test]
    fn numeric_code_and_missing_keys_are_tolerated() {
        let body = br#"{"error":{"message":"boom","code":503}}"#;
        let e = ApiError::from_response(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new(), body);
        assert_eq!(e.code.as_deref(), Some("503"));
        assert_eq!(e.error_type, None);
        assert_eq!(e.request_id, None);
    }

    #[test]
    fn label_falls_back_to_type_then_nothing() {
        let body = br#"{"error":{"message":"No key","type":"invalid_request_error","param":null,"code":null}}"#;
        let e = ApiError::from_response(StatusCode::UNAUTHORIZED, &HeaderMap::new(), body);
        assert_eq!(
            e.to_string(),
            "api error 401 (invalid_request_error): No key"
        );
        let e = ApiError::from_response(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"");
        assert_eq!(e.to_string(), "api error 502: Bad Gateway");
    }

    #[test]
    fn empty_envelope_message_uses_the_reason() {
        let body = br#"{"error":{"message":"","type":"server_error","param":null,"code":null}}"#;
        let e = ApiError::from_response(StatusCode::INTERNAL_SERVER_ERROR, &HeaderMap::new(), body);
        assert_eq!(e.message, "Internal Server Error");
        assert_eq!(e.error_type.as_deref(), Some("server_error"));
    }

    #[test]
    fn excerpt_is_capped_collapsed_and_lossy() {
        assert_eq!(excerpt(b"  a \r\n\t b  ", 100), "a b");
        assert_eq!(excerpt(b"abcdef", 3), "abc...");
        assert_eq!(excerpt(b"\xff\xfeok", 100), "\u{fffd}\u{fffd}ok");
        // A cut through a multi-byte character is lossy, never a panic.
        assert_eq!(excerpt("é".as_bytes(), 1), "\u{fffd}...");
        assert_eq!(excerpt(b"\0\x07", 10), "");
    }

    #[test]
    fn envelope_serializes_all_four_keys() {
        let env = ErrorResponse::new("invalid_request_error", "bad").with_param("limit");
        assert_eq!(
            serde_json::to_string(&env).expect("serialize"),
            r#"{"error":{"message":"bad","type":"invalid_request_error","param":"limit","code":null}}"#
        );
    }
}
