//! Errors about the caller's input (named by source, line and field), and
//! the one error type of the transports' clients ([`ClientError`]).

use std::fmt;

use crate::job::{BatchJob, JobEndError, JobError, JobResult, TransportFailure};

/// A problem with one input request, found before anything is sent.
///
/// `file` is whatever name the caller gave the source (a path, `"items"`, ...),
/// `line` is 1-based, and `field` names the JSON field at fault
/// (`custom_id`, `url`, `body.model`, `extra.model`, ...). `field` is empty
/// when the problem concerns the whole line (invalid JSON, a size limit).
///
/// Displayed as `{file}:{line}: field `{field}`: {problem}`, or
/// `{file}:{line}: {problem}` when `field` is empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    /// The name of the input source.
    pub file: String,
    /// The 1-based line (or item) number.
    pub line: u64,
    /// The field at fault, or empty for the whole line.
    pub field: String,
    /// What is wrong with it.
    pub problem: Problem,
}

impl InputError {
    /// Builds an error for `file`, `line` and `field`.
    pub fn new(
        file: impl Into<String>,
        line: u64,
        field: impl Into<String>,
        problem: Problem,
    ) -> Self {
        InputError {
            file: file.into(),
            line,
            field: field.into(),
            problem,
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}:{}: {}", self.file, self.line, self.problem)
        } else {
            write!(
                f,
                "{}:{}: field `{}`: {}",
                self.file, self.line, self.field, self.problem
            )
        }
    }
}

// The problem is part of the message, so it is not also reported as a source
// (an error chain would print it twice).
impl std::error::Error for InputError {}

/// What is wrong with an input field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The field is required but absent.
    #[error("is missing")]
    Missing,
    /// The field is present but empty.
    #[error("is empty")]
    Empty,
    /// The `custom_id` was already used on an earlier line.
    #[error("duplicate value {value:?}, first used on line {first_line}")]
    Duplicate {
        /// The repeated value.
        value: String,
        /// The line where it first appeared.
        first_line: u64,
    },
    /// The request's `url` is not the batch's endpoint.
    #[error("is {found:?} but the batch endpoint is {expected:?}")]
    EndpointMismatch {
        /// The batch's endpoint.
        expected: String,
        /// The line's url.
        found: String,
    },
    /// The line names another model than earlier lines (one model per batch).
    #[error("is {found:?} but earlier lines use {expected:?} (one model per batch)")]
    MixedModels {
        /// The model of the earlier lines.
        expected: String,
        /// This line's model.
        found: String,
    },
    /// The file would exceed the request-count limit.
    #[error("would exceed the limit of {max} requests per file")]
    TooManyRequests {
        /// The configured limit.
        max: u64,
    },
    /// The file would exceed the byte-size limit.
    #[error("would exceed the limit of {max} bytes per file")]
    TooManyBytes {
        /// The configured limit.
        max: u64,
    },
    /// The file would exceed the limit of embedding inputs per batch
    /// (`/v1/embeddings` only).
    #[error("would exceed the limit of {max} embedding inputs per file")]
    TooManyInputs {
        /// The configured limit.
        max: u64,
    },
    /// One embeddings request holds more inputs than a whole batch may
    /// (`/v1/embeddings` only): split its `input` array over several lines.
    #[error("holds {inputs} embedding inputs, more than the {max} one batch may hold")]
    InputsOverLimit {
        /// How many inputs the request holds.
        inputs: u64,
        /// The configured limit per batch.
        max: u64,
    },
    /// The line is not valid JSON, or not a JSON object. The text names the
    /// column where parsing stopped when there is one.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The value has the wrong type or an unacceptable value.
    #[error("{0}")]
    Invalid(String),
    /// An extra body field would silently override what the job sets.
    #[error("would override the {0} set by the job")]
    Overrides(String),
    /// An extra body field repeats a setting the item already makes
    /// (`extra.temperature` next to the item's temperature).
    #[error("conflicts with the item's {0}")]
    Conflicts(String),
    /// The item sets something the endpoint has no place for (a temperature
    /// for `/v1/embeddings`, a system prompt for `/v1/moderations`).
    #[error("is not accepted by {endpoint}")]
    NotAccepted {
        /// The batch's endpoint.
        endpoint: String,
    },
    /// Items cannot be turned into requests for this endpoint; the input has
    /// to be written as raw request lines.
    #[error("items cannot target {endpoint}: write raw request lines for it")]
    NeedsRawRequest {
        /// The batch's endpoint.
        endpoint: String,
    },
    /// A top-level key that a batch request line does not have.
    #[error("is not a field of a batch request line")]
    UnknownField,
}

/// What can go wrong with a client operation of either transport
/// (`batch_blocking::Error` and `batch_async::Error` are this type).
///
/// Every variant's `Display` is one line that names the cause: the file,
/// line and field of an input error; the HTTP status, the API's code and
/// message of a refusal; the OS error of a failed write. `Debug` is short:
/// [`Ended`](Self::Ended) shows its reason and how many results it carries,
/// not the results.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The job could not run (invalid input, a checkpoint that does not
    /// belong to the plan, a refused single request, a missing key).
    #[error(transparent)]
    Job(#[from] JobError),
    /// The job stopped before every request had its final outcome: a batch
    /// failed, expired or was cancelled, the maximum wait passed, the key
    /// was refused, or the server stayed unreachable past the retry budget.
    /// `results` holds the outcomes known at that point, in input order, at
    /// most one per request (empty when they were streamed to a callback, or
    /// for an operation that does not collect outcomes).
    ///
    /// `handle` is the job's handle when the operation had created it
    /// (`submit_batch`, `submit_requests`): the batches created before the
    /// stop are in it, so `get_results` or `cancel` on it can follow (take
    /// it with [`ClientError::into_handle`]). `None` for operations on a
    /// handle the caller holds, which keeps its state itself.
    #[error("{reason}")]
    Ended {
        /// Why.
        reason: Box<JobEndError>,
        /// The partial results.
        results: Vec<JobResult>,
        /// The handle the failed operation created, if it created one.
        handle: Option<Box<BatchJob>>,
    },
    /// Writing results or a checkpoint, or reading a shard, failed.
    #[error("writing results or checkpoint failed: {0}")]
    Io(std::io::Error),
    /// A single request could not be carried out (see `Client::execute`).
    #[error("the request could not be completed: {0}")]
    Transport(TransportFailure),
    /// The HTTP client could not be set up.
    #[error("the HTTP client could not be set up: {0}")]
    Setup(String),
}

impl ClientError {
    /// The job handle this error carries: the one a failed `submit_batch`
    /// or `submit_requests` created, with every batch it created before it
    /// stopped. Call `get_results` on it to collect them (a shard left
    /// without a batch is submitted again), or `cancel` to stop them.
    /// `None` for every other error.
    pub fn into_handle(self) -> Option<BatchJob> {
        match self {
            ClientError::Ended { handle, .. } => handle.map(|h| *h),
            _ => None,
        }
    }

    /// The job handle this error carries, if any (see
    /// [`into_handle`](Self::into_handle)).
    pub fn handle(&self) -> Option<&BatchJob> {
        match self {
            ClientError::Ended { handle, .. } => handle.as_deref(),
            _ => None,
        }
    }
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(e)
    }
}

impl From<TransportFailure> for ClientError {
    fn from(e: TransportFailure) -> Self {
        ClientError::Transport(e)
    }
}

impl From<InputError> for ClientError {
    fn from(e: InputError) -> Self {
        ClientError::Job(JobError::Input(e))
    }
}

impl fmt::Debug for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Job(e) => f.debug_tuple("Job").field(e).finish(),
            ClientError::Ended {
                reason,
                results,
                handle,
            } => f
                .debug_struct("Ended")
                .field("reason", reason)
                .field("results", &format_args!("[{} results]", results.len()))
                .field("handle", handle)
                .finish(),
            ClientError::Io(e) => f.debug_tuple("Io").field(e).finish(),
            ClientError::Transport(e) => f.debug_tuple("Transport").field(e).finish(),
            ClientError::Setup(e) => f.debug_tuple("Setup").field(e).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_error_names_the_os_error_and_the_input_line() {
        let e = ClientError::from(std::io::Error::from_raw_os_error(28));
        assert!(
            e.to_string()
                .starts_with("writing results or checkpoint failed: "),
            "{e}"
        );
        assert!(e.to_string().contains("os error 28"), "{e}");
        let e = ClientError::from(InputError::new(
            "items",
            3,
            "custom_id",
            Problem::Duplicate {
                value: "a".into(),
                first_line: 1,
            },
        ));
        assert_eq!(
            e.to_string(),
            "items:3: field `custom_id`: duplicate value \"a\", first used on line 1"
        );
    }

    #[test]
    fn display_names_the_field_when_there_is_one() {
        let e = InputError::new("in.jsonl", 3, "custom_id", Problem::Empty);
        assert_eq!(e.to_string(), "in.jsonl:3: field `custom_id`: is empty");
        let e = InputError::new(
            "in.jsonl",
            7,
            "",
            Problem::InvalidJson("expected value at column 1".into()),
        );
        assert_eq!(
            e.to_string(),
            "in.jsonl:7: invalid JSON: expected value at column 1"
        );
    }
}
