//! Errors about the caller's input: named by source, line and field.

/// A problem with one input request, found before anything is sent.
///
/// `file` is whatever name the caller gave the source (a path, `"items"`, ...),
/// `line` is 1-based, and `field` names the JSON field at fault
/// (`custom_id`, `url`, `body.model`, ...).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: field `{field}`: {problem}")]
pub struct InputError {
    /// The name of the input source.
    pub file: String,
    /// The 1-based line (or item) number.
    pub line: u64,
    /// The field at fault.
    pub field: String,
    /// What is wrong with it.
    pub problem: Problem,
}

impl InputError {
    /// Builds an error for `file`, `line` and `field`.
    pub fn new(file: impl Into<String>, line: u64, field: impl Into<String>, problem: Problem) -> Self {
        InputError { file: file.into(), line, field: field.into(), problem }
    }
}

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
    /// The line is not valid JSON, or not of the expected shape.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The value has the wrong type or an unacceptable value.
    #[error("{0}")]
    Invalid(String),
    /// An extra body field would silently override what the job sets.
    #[error("would override the {0} set by the job")]
    Overrides(String),
}
