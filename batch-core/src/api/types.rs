//! Wire types of the Files and Batches API (API notes §3 to §5).
//!
//! Deserialization follows what the live API sends, which is looser than the
//! spec (API notes §9):
//! - every optional field accepts both a missing key and `null`;
//! - optional file ids (`output_file_id`, `error_file_id`) that are `""`
//!   become `None`;
//! - open enums ([`BatchStatus`], [`Endpoint`], [`FilePurpose`],
//!   [`FileStatus`], [`CompletionWindow`]) keep unknown values instead of
//!   failing;
//! - unknown fields of [`Batch`] and [`FileObject`] are kept in `extra` and
//!   serialized back.
//!
//! Serialization writes unset optional response fields as `null`, as the
//! live API does, so a parse → serialize → parse round trip is lossless.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::{BatchStatus, Endpoint};

/// Deserializes `null` (or, with `#[serde(default)]`, a missing key) as `T::default()`.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Deserializes an optional id: `null`, missing and `""` all become `None`.
fn empty_id_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

/// Declares an open string enum: known wire values plus `Unknown(String)`,
/// with `as_str`, `parse` (exact match, never fails), `Display`, `FromStr`
/// and string serde.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// Any other value, kept exactly as sent.
            Unknown(String),
        }

        impl $name {
            /// Every value the spec lists, in the spec's order.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),+];

            /// The wire string, or the unknown value as sent.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )+
                    $name::Unknown(s) => s,
                }
            }

            /// Parses a wire string (exact match). Never fails: other values
            /// become `Unknown`.
            pub fn parse(s: &str) -> $name {
                match s {
                    $( $wire => $name::$variant, )+
                    _ => $name::Unknown(s.to_owned()),
                }
            }

            /// Whether this is one of the values the spec lists.
            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Unknown(_))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok($name::parse(s))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <Cow<'de, str>>::deserialize(d)?;
                Ok($name::parse(&s))
            }
        }
    };
}

open_enum! {
    /// The time frame a batch is processed within (API notes §4,
    /// `CreateBatchRequest.completion_window`; §5 `Batch.completion_window`).
    ///
    /// The spec allows only `24h`, which is the default.
    #[derive(Default)]
    pub enum CompletionWindow {
        /// `24h`
        #[default]
        Hours24 => "24h",
    }
}

open_enum! {
    /// What a file is for (API notes §3, `CreateFileRequest.purpose`, and
    /// §5, `OpenAIFile.purpose`).
    ///
    /// `evals` is accepted on upload but is missing from the spec's
    /// `OpenAIFile.purpose` enum; `assistants_output`, `batch_output` and
    /// `fine-tune-results` only appear on files the API creates.
    pub enum FilePurpose {
        /// `assistants`
        Assistants => "assistants",
        /// `assistants_output` (set by the API)
        AssistantsOutput => "assistants_output",
        /// `batch`: input files for the Batch API.
        Batch => "batch",
        /// `batch_output`: output and error files of a batch (set by the API).
        BatchOutput => "batch_output",
        /// `fine-tune`
        FineTune => "fine-tune",
        /// `fine-tune-results` (set by the API)
        FineTuneResults => "fine-tune-results",
        /// `vision`
        Vision => "vision",
        /// `user_data`
        UserData => "user_data",
        /// `evals` (upload only in the spec)
        Evals => "evals",
    }
}

open_enum! {
    /// The deprecated processing status of a file (API notes §5, `OpenAIFile.status`).
    pub enum FileStatus {
        /// `uploaded`
        Uploaded => "uploaded",
        /// `processed`
        Processed => "processed",
        /// `error`
        Error => "error",
    }
}

open_enum! {
    /// The timestamp a file expiration policy counts from (API notes §3
    /// `FileExpirationAfter.anchor`, §4 `BatchFileExpirationAfter.anchor`).
    #[derive(Default)]
    pub enum ExpiresAnchor {
        /// `created_at`: the file's creation time (for batch output files, the
        /// output file's, not the batch's).
        #[default]
        CreatedAt => "created_at",
    }
}

/// A batch (API notes §5, `Batch`, `object: "batch"`).
///
/// Optional fields accept a missing key or `null`; `output_file_id` and
/// `error_file_id` also map `""` to `None`. Unknown fields are kept in
/// [`extra`](Batch::extra).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The batch id, e.g. `batch_abc123` (API notes §5, required).
    pub id: String,
    /// Always `batch` (API notes §5, required).
    pub object: String,
    /// The endpoint every request targets, e.g. `/v1/chat/completions`
    /// (API notes §5, required; a plain string in the spec).
    pub endpoint: Endpoint,
    /// The model used, e.g. `gpt-5-2025-08-07` (API notes §5, optional).
    #[serde(default)]
    pub model: Option<String>,
    /// Why the batch failed, for example line-level validation errors
    /// (API notes §5, optional; the live API sends `null` when unset).
    #[serde(default)]
    pub errors: Option<BatchErrors>,
    /// The input file (API notes §5, required).
    pub input_file_id: String,
    /// The completion window, `24h` (API notes §5, required).
    pub completion_window: CompletionWindow,
    /// The lifecycle status (API notes §5, required).
    pub status: BatchStatus,
    /// The file with the successful requests' outputs (API notes §5,
    /// optional; `null` or `""` become `None`).
    #[serde(default, deserialize_with = "empty_id_as_none")]
    pub output_file_id: Option<String>,
    /// The file with the failed requests (API notes §5, optional; `null`
    /// or `""` become `None`).
    #[serde(default, deserialize_with = "empty_id_as_none")]
    pub error_file_id: Option<String>,
    /// When the batch was created, Unix seconds (API notes §5, required).
    pub created_at: i64,
    /// When processing started, Unix seconds (API notes §5, optional).
    #[serde(default)]
    pub in_progress_at: Option<i64>,
    /// When the batch will expire (the deadline), Unix seconds (API notes §5, optional).
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// When finalizing started, Unix seconds (API notes §5, optional).
    #[serde(default)]
    pub finalizing_at: Option<i64>,
    /// When the batch completed, Unix seconds (API notes §5, optional).
    #[serde(default)]
    pub completed_at: Option<i64>,
    /// When the batch failed, Unix seconds (API notes §5, optional).
    #[serde(default)]
    pub failed_at: Option<i64>,
    /// When the batch expired, Unix seconds (API notes §5, optional).
    #[serde(default)]
    pub expired_at: Option<i64>,
    /// When cancelling started, Unix seconds (API notes §5, optional).
    #[serde(default)]
    pub cancelling_at: Option<i64>,
    /// When the batch was cancelled, Unix seconds (API notes §5, optional).
    #[serde(default)]
    pub cancelled_at: Option<i64>,
    /// Request counts (API notes §5, optional). See [`Batch::request_counts`].
    #[serde(default)]
    pub request_counts: Option<RequestCounts>,
    /// Token usage; only on batches created after 2025-09-07 (API notes §5, optional).
    #[serde(default)]
    pub usage: Option<BatchUsage>,
    /// Up to 16 string pairs set at creation (API notes §4 `Metadata`,
    /// §5; optional and nullable).
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Fields this crate does not know, kept as sent and serialized back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Batch {
    /// A batch with the spec's required fields set and every optional field
    /// unset. Useful for tests and emulators.
    pub fn new(
        id: impl Into<String>,
        endpoint: Endpoint,
        input_file_id: impl Into<String>,
        status: BatchStatus,
        created_at: i64,
    ) -> Batch {
        Batch {
            id: id.into(),
            object: "batch".to_owned(),
            endpoint,
            model: None,
            errors: None,
            input_file_id: input_file_id.into(),
            completion_window: CompletionWindow::Hours24,
            status,
            output_file_id: None,
            error_file_id: None,
            created_at,
            in_progress_at: None,
            expires_at: None,
            finalizing_at: None,
            completed_at: None,
            failed_at: None,
            expired_at: None,
            cancelling_at: None,
            cancelled_at: None,
            request_counts: None,
            usage: None,
            metadata: None,
            extra: Map::new(),
        }
    }

    /// The request counts, or all zeros when the API sent none.
    pub fn request_counts(&self) -> RequestCounts {
        self.request_counts.unwrap_or_default()
    }

    /// Whether the batch can no longer change (see [`BatchStatus::is_terminal`]).
    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }

    /// The batch-level errors (empty when there are none).
    pub fn error_list(&self) -> &[BatchError] {
        self.errors.as_ref().map_or(&[], |e| &e.data)
    }

    /// The metadata value for `key`, if set.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata.as_ref()?.get(key).map(String::as_str)
    }
}

/// How many requests of a batch are done (API notes §5, `BatchRequestCounts`).
///
/// The spec requires all three; a missing or `null` count reads as 0.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestCounts {
    /// The number of requests in the batch (API notes §5).
    #[serde(default, deserialize_with = "null_as_default")]
    pub total: u64,
    /// The number that succeeded (API notes §5).
    #[serde(default, deserialize_with = "null_as_default")]
    pub completed: u64,
    /// The number that failed (API notes §5).
    #[serde(default, deserialize_with = "null_as_default")]
    pub failed: u64,
}

impl RequestCounts {
    /// Requests neither completed nor failed yet (saturating).
    pub fn pending(&self) -> u64 {
        self.total
            .saturating_sub(self.completed)
            .saturating_sub(self.failed)
    }
}

/// Batch-level errors (API notes §5, `Batch.errors`). Neither key is required.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchErrors {
    /// `list` by the spec's description (API notes §5).
    #[serde(default)]
    pub object: Option<String>,
    /// The errors; a missing or `null` list reads as empty (API notes §5).
    #[serde(default, deserialize_with = "null_as_default")]
    pub data: Vec<BatchError>,
}

/// One batch-level error, often about one line of the input file
/// (API notes §5, `BatchError`; no key is required).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchError {
    /// An error code, e.g. `invalid_json_line` or `duplicate_custom_id` (API notes §5).
    #[serde(default)]
    pub code: Option<String>,
    /// Human-readable text (API notes §5).
    #[serde(default)]
    pub message: Option<String>,
    /// The parameter at fault (API notes §5, nullable).
    #[serde(default)]
    pub param: Option<String>,
    /// The 1-based line of the input file (API notes §5, nullable).
    #[serde(default)]
    pub line: Option<u64>,
}

/// Token usage of a batch (API notes §5, `Batch.usage`).
///
/// The spec requires every key when the object is present; missing or `null`
/// counts and details read as 0.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BatchUsage {
    /// Input tokens (API notes §5).
    #[serde(default, deserialize_with = "null_as_default")]
    pub input_tokens: u64,
    /// Breakdown of the input tokens (API notes §5).
    #[serde(default, deserialize_with = "null_as_default")]
    pub input_tokens_details: InputTokensDetails,
    /// Output tokens (API notes §5).
    #[serde(default, deserialize_with = "null_as_default")]
    pub output_tokens: u64,
    /// Breakdown of the output tokens (API notes §5).
    #[serde(default, deserialize_with = "null_as_default")]
    pub output_tokens_details: OutputTokensDetails,
    /// All tokens (API notes §5).
    #[serde(default, deserialize_with = "null_as_default")]
    pub total_tokens: u64,
}

/// Breakdown of input tokens (API notes §5, `Batch.usage.input_tokens_details`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InputTokensDetails {
    /// Tokens served from the prompt cache (API notes §5).
    #[serde(default, deserialize_with = "null_as_default")]
    pub cached_tokens: u64,
}

/// Breakdown of output tokens (API notes §5, `Batch.usage.output_tokens_details`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    /// Reasoning tokens (API notes §5).
    #[serde(default, deserialize_with = "null_as_default")]
    pub reasoning_tokens: u64,
}

/// A file (API notes §5, `OpenAIFile`, `object: "file"`).
///
/// Unknown fields are kept in [`extra`](FileObject::extra).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileObject {
    /// The file id, e.g. `file-abc123` (API notes §5, required).
    pub id: String,
    /// Always `file` (API notes §5, required).
    pub object: String,
    /// Size in bytes (API notes §5, required).
    pub bytes: u64,
    /// When the file was created, Unix seconds (API notes §5, required).
    pub created_at: i64,
    /// When the file expires, Unix seconds (API notes §5, optional; the
    /// live API sends `null` for files that do not expire).
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// The file name given at upload (API notes §5, required).
    pub filename: String,
    /// What the file is for (API notes §5, required).
    pub purpose: FilePurpose,
    /// Deprecated processing status (API notes §5; required by the spec,
    /// but read as optional because it is deprecated).
    #[serde(default)]
    pub status: Option<FileStatus>,
    /// Deprecated status details (API notes §5, optional).
    #[serde(default)]
    pub status_details: Option<String>,
    /// Fields this crate does not know, kept as sent and serialized back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer to a file deletion (API notes §5, `DeleteFileResponse`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedFile {
    /// The deleted file's id (API notes §5, required).
    pub id: String,
    /// Always `file` (API notes §5, required).
    pub object: String,
    /// Whether the file was deleted (API notes §5, required).
    pub deleted: bool,
}

/// Something a [`List`] holds, with an id that serves as a page cursor.
pub trait ListItem {
    /// The object's id.
    fn id(&self) -> &str;
}

impl ListItem for Batch {
    fn id(&self) -> &str {
        &self.id
    }
}

impl ListItem for FileObject {
    fn id(&self) -> &str {
        &self.id
    }
}

/// One page of a list (API notes §5, `ListBatchesResponse` and
/// `ListFilesResponse`).
///
/// `first_id` and `last_id` are optional for batches and required for files
/// in the spec; both read as optional here, and `""` becomes `None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>", serialize = "T: Serialize"))]
pub struct List<T> {
    /// Always `list` (API notes §5).
    pub object: String,
    /// The items of this page; `null` reads as empty (API notes §5).
    #[serde(default, deserialize_with = "null_as_default")]
    pub data: Vec<T>,
    /// The id of the first item (API notes §5).
    #[serde(default, deserialize_with = "empty_id_as_none")]
    pub first_id: Option<String>,
    /// The id of the last item, the cursor for the next page (API notes §5).
    #[serde(default, deserialize_with = "empty_id_as_none")]
    pub last_id: Option<String>,
    /// Whether more items follow (API notes §5); missing reads as `false`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub has_more: bool,
}

impl<T> List<T> {
    /// A page holding `data`, with `first_id`/`last_id` taken from its items.
    pub fn new(data: Vec<T>, has_more: bool) -> List<T>
    where
        T: ListItem,
    {
        List {
            object: "list".to_owned(),
            first_id: data.first().map(|t| t.id().to_owned()),
            last_id: data.last().map(|t| t.id().to_owned()),
            data,
            has_more,
        }
    }

    /// The `after` cursor for the next page, or `None` when this is the last
    /// page (or when the page gives no cursor, which would otherwise loop).
    pub fn next_after(&self) -> Option<&str>
    where
        T: ListItem,
    {
        if !self.has_more {
            return None;
        }
        self.last_id
            .as_deref()
            .or_else(|| self.data.last().map(ListItem::id))
            .filter(|id| !id.is_empty())
    }
}

/// A file expiration policy (API notes §3 `FileExpirationAfter`, §4
/// `BatchFileExpirationAfter`): expire `seconds` after `anchor`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExpiresAfter {
    /// The anchor; only `created_at` exists (API notes §3, §4).
    pub anchor: ExpiresAnchor,
    /// Seconds after the anchor, 3600 (1 h) to 2592000 (30 d) (API notes §3, §4).
    pub seconds: u64,
}

impl ExpiresAfter {
    /// The smallest allowed `seconds` (1 hour).
    pub const MIN_SECONDS: u64 = 3600;
    /// The largest allowed `seconds` (30 days).
    pub const MAX_SECONDS: u64 = 2_592_000;

    /// Expire `seconds` after the file's creation.
    pub fn after_creation(seconds: u64) -> ExpiresAfter {
        ExpiresAfter {
            anchor: ExpiresAnchor::CreatedAt,
            seconds,
        }
    }

    /// Checks `seconds` against the spec's range.
    ///
    /// # Errors
    /// [`ParamError::OutOfRange`] if `seconds` is not in
    /// [`MIN_SECONDS`](Self::MIN_SECONDS)`..=`[`MAX_SECONDS`](Self::MAX_SECONDS).
    pub fn validate(&self, param: &'static str) -> Result<(), ParamError> {
        check_range(param, self.seconds, Self::MIN_SECONDS, Self::MAX_SECONDS)
    }
}

/// The body of `POST /batches` (API notes §4, `CreateBatchRequest`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBatch {
    /// An uploaded file with purpose `batch` (API notes §4, required).
    pub input_file_id: String,
    /// The endpoint of every request in the file (API notes §4, required).
    pub endpoint: Endpoint,
    /// The completion window, `24h` (API notes §4, required; defaults to `24h`).
    #[serde(default)]
    pub completion_window: CompletionWindow,
    /// Up to 16 pairs; keys at most 64 characters, values at most 512
    /// (API notes §4 `Metadata`; optional, nullable; omitted when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// When the output and error files expire (API notes §4; optional,
    /// omitted when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_expires_after: Option<ExpiresAfter>,
}

impl CreateBatch {
    /// At most this many metadata pairs (API notes §4).
    pub const METADATA_MAX_PAIRS: usize = 16;
    /// At most this many characters per metadata key (API notes §4).
    pub const METADATA_MAX_KEY_CHARS: usize = 64;
    /// At most this many characters per metadata value (API notes §4).
    pub const METADATA_MAX_VALUE_CHARS: usize = 512;

    /// A request for `input_file_id` and `endpoint`, with a `24h` window,
    /// no metadata and no output expiration.
    pub fn new(input_file_id: impl Into<String>, endpoint: Endpoint) -> CreateBatch {
        CreateBatch {
            input_file_id: input_file_id.into(),
            endpoint,
            completion_window: CompletionWindow::Hours24,
            metadata: None,
            output_expires_after: None,
        }
    }

    /// Checks the limits the spec states only in prose, which the API
    /// enforces but a schema validator does not.
    ///
    /// # Errors
    /// - [`ParamError::Empty`] if `input_file_id` is empty;
    /// - [`ParamError::TooManyMetadataPairs`] if `metadata` has more than 16 pairs;
    /// - [`ParamError::MetadataKeyTooLong`] / [`ParamError::MetadataValueTooLong`]
    ///   if a key has more than 64 or a value more than 512 characters;
    /// - [`ParamError::OutOfRange`] if `output_expires_after.seconds` is not
    ///   in 3600..=2592000.
    pub fn validate(&self) -> Result<(), ParamError> {
        if self.input_file_id.is_empty() {
            return Err(ParamError::Empty {
                param: "input_file_id",
            });
        }
        if let Some(metadata) = &self.metadata {
            validate_metadata(metadata)?;
        }
        if let Some(expires) = &self.output_expires_after {
            expires.validate("output_expires_after.seconds")?;
        }
        Ok(())
    }
}

/// Checks a metadata map against the spec's prose limits (API notes §4 `Metadata`).
///
/// # Errors
/// See [`CreateBatch::validate`].
pub fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), ParamError> {
    if metadata.len() > CreateBatch::METADATA_MAX_PAIRS {
        return Err(ParamError::TooManyMetadataPairs {
            count: metadata.len(),
        });
    }
    for (key, value) in metadata {
        let chars = key.chars().count();
        if chars > CreateBatch::METADATA_MAX_KEY_CHARS {
            return Err(ParamError::MetadataKeyTooLong {
                key: key.clone(),
                chars,
            });
        }
        let chars = value.chars().count();
        if chars > CreateBatch::METADATA_MAX_VALUE_CHARS {
            return Err(ParamError::MetadataValueTooLong {
                key: key.clone(),
                chars,
            });
        }
    }
    Ok(())
}

pub(crate) fn check_range(
    param: &'static str,
    value: u64,
    min: u64,
    max: u64,
) -> Result<(), ParamError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ParamError::OutOfRange {
            param,
            value,
            min,
            max,
        })
    }
}

/// A request parameter outside the limits the spec states.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// A required string is empty.
    #[error("`{param}` is empty")]
    Empty {
        /// The parameter, e.g. `input_file_id`.
        param: &'static str,
    },
    /// More metadata pairs than allowed.
    #[error("metadata has {count} pairs, at most 16 are allowed")]
    TooManyMetadataPairs {
        /// How many pairs there are.
        count: usize,
    },
    /// A metadata key is too long.
    #[error("metadata key {key:?} has {chars} characters, at most 64 are allowed")]
    MetadataKeyTooLong {
        /// The key.
        key: String,
        /// Its length in characters.
        chars: usize,
    },
    /// A metadata value is too long.
    #[error("metadata value for key {key:?} has {chars} characters, at most 512 are allowed")]
    MetadataValueTooLong {
        /// The key whose value is too long.
        key: String,
        /// The value's length in characters.
        chars: usize,
    },
    /// A number outside its allowed range.
    #[error("`{param}` is {value}, allowed are {min} to {max}")]
    OutOfRange {
        /// The parameter, e.g. `output_expires_after.seconds`.
        param: &'static str,
        /// The value given.
        value: u64,
        /// The smallest allowed value.
        min: u64,
        /// The largest allowed value.
        max: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal_batch() -> Value {
        json!({
            "id": "batch_1",
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "input_file_id": "file-in",
            "completion_window": "24h",
            "status": "validating",
            "created_at": 1_711_471_533
        })
    }

    #[test]
    fn minimal_batch_parses_with_everything_optional_unset() {
        let b: Batch = serde_json::from_value(minimal_batch()).expect("parse");
        assert_eq!(
            b,
            Batch::new(
                "batch_1",
                Endpoint::ChatCompletions,
                "file-in",
                BatchStatus::Validating,
                1_711_471_533
            )
        );
        assert_eq!(b.request_counts(), RequestCounts::default());
        assert!(b.error_list().is_empty());
    }

    #[test]
    fn missing_required_field_is_an_error() {
        for key in ["id", "status", "created_at", "input_file_id", "endpoint"] {
            let mut v = minimal_batch();
            v.as_object_mut().expect("object").remove(key);
            assert!(
                serde_json::from_value::<Batch>(v).is_err(),
                "{key} missing must fail"
            );
        }
    }

    #[test]
    fn file_ids_empty_or_null_are_none() {
        let mut v = minimal_batch();
        v["output_file_id"] = json!("");
        v["error_file_id"] = Value::Null;
        let b: Batch = serde_json::from_value(v).expect("parse");
        assert_eq!(b.output_file_id, None);
        assert_eq!(b.error_file_id, None);
        let mut v = minimal_batch();
        v["output_file_id"] = json!("file-out");
        let b: Batch = serde_json::from_value(v).expect("parse");
        assert_eq!(b.output_file_id.as_deref(), Some("file-out"));
    }

    #[test]
    fn unset_fields_serialize_as_null_and_extra_is_kept() {
        let mut v = minimal_batch();
        v["brand_new_field"] = json!({"x": 1});
        let b: Batch = serde_json::from_value(v).expect("parse");
        assert_eq!(b.extra.get("brand_new_field"), Some(&json!({"x": 1})));
        let out = serde_json::to_value(&b).expect("serialize");
        assert_eq!(out["brand_new_field"], json!({"x": 1}));
        assert_eq!(out["output_file_id"], Value::Null);
        assert_eq!(out["completed_at"], Value::Null);
        assert_eq!(out["status"], json!("validating"));
    }

    #[test]
    fn request_counts_tolerate_nulls() {
        let c: RequestCounts =
            serde_json::from_value(json!({"total": 5, "completed": null})).expect("parse");
        assert_eq!(
            c,
            RequestCounts {
                total: 5,
                completed: 0,
                failed: 0
            }
        );
        assert_eq!(c.pending(), 5);
        let c = RequestCounts {
            total: 3,
            completed: 2,
            failed: 4,
        };
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn usage_tolerates_missing_details() {
        let u: BatchUsage = serde_json::from_value(json!({
            "input_tokens": 10, "output_tokens": 4, "total_tokens": 14,
            "output_tokens_details": null
        }))
        .expect("parse");
        assert_eq!(u.input_tokens_details.cached_tokens, 0);
        assert_eq!(u.output_tokens_details.reasoning_tokens, 0);
        assert_eq!(u.total_tokens, 14);
    }

    #[test]
    fn open_enums_keep_unknown_values() {
        assert_eq!(FilePurpose::parse("batch"), FilePurpose::Batch);
        assert_eq!(
            FilePurpose::parse("fine-tune-results"),
            FilePurpose::FineTuneResults
        );
        assert_eq!(FilePurpose::parse("evals"), FilePurpose::Evals);
        assert_eq!(
            FilePurpose::parse("Batch"),
            FilePurpose::Unknown("Batch".into())
        );
        for p in FilePurpose::KNOWN {
            assert_eq!(&FilePurpose::parse(p.as_str()), p);
        }
        assert_eq!(FileStatus::parse("processed"), FileStatus::Processed);
        assert_eq!(FileStatus::parse("deleted").to_string(), "deleted");
        assert_eq!(CompletionWindow::default().as_str(), "24h");
        assert_eq!(
            CompletionWindow::parse("48h"),
            CompletionWindow::Unknown("48h".into())
        );
    }

    #[test]
    fn next_after_follows_the_cursor() {
        let b = |id: &str| Batch::new(id, Endpoint::Embeddings, "f", BatchStatus::Completed, 0);
        let page = List::new(vec![b("batch_a"), b("batch_b")], true);
        assert_eq!(page.first_id.as_deref(), Some("batch_a"));
        assert_eq!(page.next_after(), Some("batch_b"));
        let mut no_ids = page.clone();
        no_ids.last_id = None;
        assert_eq!(no_ids.next_after(), Some("batch_b"));
        let last = List::new(vec![b("batch_c")], false);
        assert_eq!(last.next_after(), None);
        let empty: List<Batch> = List::new(vec![], true);
        assert_eq!(empty.next_after(), None);
    }

    #[test]
    fn create_batch_serializes_without_unset_options() {
        let body = CreateBatch::new("file-in", Endpoint::ChatCompletions);
        assert_eq!(
            serde_json::to_string(&body).expect("serialize"),
            r#"{"input_file_id":"file-in","endpoint":"/v1/chat/completions","completion_window":"24h"}"#
        );
        let parsed: CreateBatch =
            serde_json::from_str(r#"{"input_file_id":"file-in","endpoint":"/v1/embeddings"}"#)
                .expect("parse");
        assert_eq!(parsed.completion_window, CompletionWindow::Hours24);
    }

    #[test]
    fn create_batch_validation() {
        let mut body = CreateBatch::new("file-in", Endpoint::ChatCompletions);
        assert_eq!(body.validate(), Ok(()));

        let mut md: BTreeMap<String, String> = (0..16)
            .map(|i| (format!("k{i}"), "v".repeat(512)))
            .collect();
        md.insert("k".repeat(64), String::new());
        md.remove("k0");
        body.metadata = Some(md.clone());
        assert_eq!(body.validate(), Ok(()));

        md.insert("extra".into(), "v".into());
        body.metadata = Some(md.clone());
        assert_eq!(
            body.validate(),
            Err(ParamError::TooManyMetadataPairs { count: 17 })
        );

        // Characters, not bytes: 64 two-byte characters are fine.
        let key: String = "é".repeat(64);
        body.metadata = Some(BTreeMap::from([(key.clone(), "v".into())]));
        assert_eq!(body.validate(), Ok(()));
        let key = format!("{key}x");
        body.metadata = Some(BTreeMap::from([(key.clone(), "v".into())]));
        assert_eq!(
            body.validate(),
            Err(ParamError::MetadataKeyTooLong { key, chars: 65 })
        );

        body.metadata = Some(BTreeMap::from([("k".into(), "v".repeat(513))]));
        assert_eq!(
            body.validate(),
            Err(ParamError::MetadataValueTooLong {
                key: "k".into(),
                chars: 513
            })
        );

        body.metadata = None;
        for (secs, ok) in [
            (3599, false),
            (3600, true),
            (2_592_000, true),
            (2_592_001, false),
        ] {
            body.output_expires_after = Some(ExpiresAfter::after_creation(secs));
            assert_eq!(body.validate().is_ok(), ok, "seconds = {secs}");
        }
        assert_eq!(
            body.validate(),
            Err(ParamError::OutOfRange {
                param: "output_expires_after.seconds",
                value: 2_592_001,
                min: 3600,
                max: 2_592_000
            })
        );

        let empty = CreateBatch::new("", Endpoint::ChatCompletions);
        assert_eq!(
            empty.validate(),
            Err(ParamError::Empty {
                param: "input_file_id"
            })
        );
    }

    #[test]
    fn param_error_display_is_lowercase() {
        let e = ParamError::TooManyMetadataPairs { count: 17 };
        assert_eq!(
            e.to_string(),
            "metadata has 17 pairs, at most 16 are allowed"
        );
    }
}
