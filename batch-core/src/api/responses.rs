//! Level-1 response parsers: one pure function per operation (API notes §2).
//!
//! Each takes the response head and the whole (small, JSON) body. A non-2xx
//! status becomes [`ResponseError::Api`] with the parsed error envelope
//! (API notes §8); a 2xx body that is not the expected JSON becomes
//! [`ResponseError::Decode`]. File contents (`GET /files/{id}/content`) are
//! not parsed here: they are streamed as raw JSONL.

use serde::de::DeserializeOwned;

use super::error_body::excerpt;
use super::{ApiError, Batch, DeletedFile, FileObject, List};

/// A response that did not yield the expected object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The status was not 2xx; the API's error (API notes §8). Boxed to
    /// keep `Result`s small.
    #[error(transparent)]
    Api(Box<ApiError>),
    /// The status was 2xx but the body is not the expected JSON.
    #[error("cannot decode {what} from a {status} response: {detail}")]
    Decode {
        /// The HTTP status code.
        status: u16,
        /// The object expected, e.g. `batch`.
        what: &'static str,
        /// The JSON error, with line and column.
        detail: String,
        /// The start of the body, lossy and capped (see [`ApiError::EXCERPT_MAX_BYTES`]).
        excerpt: String,
    },
}

impl From<ApiError> for ResponseError {
    fn from(e: ApiError) -> Self {
        ResponseError::Api(Box::new(e))
    }
}

impl ResponseError {
    /// This error with the API key removed from every text the server sent
    /// (see [`ApiBase::redact`](super::ApiBase::redact)).
    #[must_use]
    pub fn redacted(self, api: &super::ApiBase) -> ResponseError {
        match self {
            ResponseError::Api(e) => ResponseError::Api(Box::new(e.redacted(api))),
            ResponseError::Decode {
                status,
                what,
                detail,
                excerpt,
            } => ResponseError::Decode {
                status,
                what,
                detail: api.redact(&detail),
                excerpt: api.redact(&excerpt),
            },
        }
    }
}

fn parse<T: DeserializeOwned>(
    what: &'static str,
    head: &http::response::Parts,
    body: &[u8],
) -> Result<T, ResponseError> {
    if !head.status.is_success() {
        return Err(parse_api_error(head, body).into());
    }
    serde_json::from_slice(body).map_err(|e| ResponseError::Decode {
        status: head.status.as_u16(),
        what,
        detail: e.to_string(),
        excerpt: excerpt(body, ApiError::EXCERPT_MAX_BYTES),
    })
}

/// The error of a non-2xx response: the envelope, or a status-based
/// fallback (see [`ApiError::from_response`]). Never fails.
pub fn parse_api_error(head: &http::response::Parts, body: &[u8]) -> ApiError {
    ApiError::from_response(head.status, &head.headers, body)
}

/// Parses the answer to `create_batch`, `retrieve_batch` or `cancel_batch`: a
/// [`Batch`] (API notes §5).
///
/// # Errors
/// [`ResponseError::Api`] for a non-2xx status, [`ResponseError::Decode`] for
/// a 2xx body that is not a batch.
pub fn parse_batch(head: &http::response::Parts, body: &[u8]) -> Result<Batch, ResponseError> {
    parse("batch", head, body)
}

/// Parses the answer to `upload_file` or `retrieve_file`: a [`FileObject`]
/// (API notes §5, `OpenAIFile`).
///
/// # Errors
/// As [`parse_batch`].
pub fn parse_file(head: &http::response::Parts, body: &[u8]) -> Result<FileObject, ResponseError> {
    parse("file", head, body)
}

/// Parses the answer to `delete_file`: a [`DeletedFile`] (API notes §5,
/// `DeleteFileResponse`).
///
/// # Errors
/// As [`parse_batch`].
pub fn parse_deleted_file(
    head: &http::response::Parts,
    body: &[u8],
) -> Result<DeletedFile, ResponseError> {
    parse("deleted file", head, body)
}

/// Parses the answer to `list_batches`: a page of batches (API notes §5,
/// `ListBatchesResponse`).
///
/// # Errors
/// As [`parse_batch`].
pub fn parse_batch_list(
    head: &http::response::Parts,
    body: &[u8],
) -> Result<List<Batch>, ResponseError> {
    parse("batch list", head, body)
}

/// Parses the answer to `list_files`: a page of files (API notes §5,
/// `ListFilesResponse`).
///
/// # Errors
/// As [`parse_batch`].
pub fn parse_file_list(
    head: &http::response::Parts,
    body: &[u8],
) -> Result<List<FileObject>, ResponseError> {
    parse("file list", head, body)
}
