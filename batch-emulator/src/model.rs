//! Server-side records and the exact JSON shapes the API answers with.
//!
//! Records keep virtual milliseconds; API objects carry Unix seconds, with
//! `null` for every unset optional field, as the live API sends them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::faults::BatchFaults;

/// Purposes accepted on upload (API notes §3).
pub(crate) const UPLOAD_PURPOSES: [&str; 6] = [
    "assistants",
    "batch",
    "fine-tune",
    "vision",
    "user_data",
    "evals",
];

/// A stored file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FileRecord {
    pub(crate) id: String,
    pub(crate) seq: u64,
    pub(crate) bytes: u64,
    pub(crate) created_at: i64,
    pub(crate) expires_at: Option<i64>,
    pub(crate) filename: String,
    pub(crate) purpose: String,
    /// Strong entity tag, quoted, e.g. `"1f2e…-2a"`.
    pub(crate) etag: String,
}

/// `OpenAIFile` (API notes §5).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FileObject<'a> {
    id: &'a str,
    object: &'static str,
    bytes: u64,
    created_at: i64,
    expires_at: Option<i64>,
    filename: &'a str,
    purpose: &'a str,
    status: &'static str,
    status_details: Option<&'a str>,
}

impl FileRecord {
    pub(crate) fn to_api(&self) -> FileObject<'_> {
        FileObject {
            id: &self.id,
            object: "file",
            bytes: self.bytes,
            created_at: self.created_at,
            expires_at: self.expires_at,
            filename: &self.filename,
            purpose: &self.purpose,
            status: "processed",
            status_details: None,
        }
    }
}

/// `Batch.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Validating,
    Failed,
    InProgress,
    Finalizing,
    Completed,
    Expired,
    Cancelling,
    Cancelled,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Validating => "validating",
            Status::Failed => "failed",
            Status::InProgress => "in_progress",
            Status::Finalizing => "finalizing",
            Status::Completed => "completed",
            Status::Expired => "expired",
            Status::Cancelling => "cancelling",
            Status::Cancelled => "cancelled",
        }
    }

    pub(crate) fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Failed | Status::Completed | Status::Expired | Status::Cancelled
        )
    }
}

/// One item of `Batch.errors.data` (`BatchError`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BatchErrorItem {
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) param: Option<String>,
    pub(crate) line: Option<u64>,
}

/// `Batch.usage`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Usage {
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
}

/// Virtual-time durations of one batch, fixed when it is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BatchTimings {
    pub(crate) validate_ms: u64,
    pub(crate) per_request_ms: u64,
    pub(crate) finalize_ms: u64,
    pub(crate) cancel_ms: u64,
    pub(crate) window_ms: u64,
}

/// A stored batch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BatchRecord {
    pub(crate) id: String,
    pub(crate) seq: u64,
    pub(crate) endpoint: String,
    pub(crate) model: Option<String>,
    pub(crate) input_file_id: String,
    pub(crate) completion_window: String,
    pub(crate) status: Status,
    pub(crate) output_file_id: Option<String>,
    pub(crate) error_file_id: Option<String>,
    pub(crate) errors: Option<Vec<BatchErrorItem>>,
    pub(crate) created_ms: u64,
    pub(crate) in_progress_ms: Option<u64>,
    pub(crate) expires_ms: u64,
    /// The batch is not expired when it passes `expires_ms` (Azure OpenAI).
    #[serde(default)]
    pub(crate) never_expires: bool,
    pub(crate) finalizing_ms: Option<u64>,
    pub(crate) completed_ms: Option<u64>,
    pub(crate) failed_ms: Option<u64>,
    pub(crate) expired_ms: Option<u64>,
    pub(crate) cancelling_ms: Option<u64>,
    pub(crate) cancelled_ms: Option<u64>,
    /// Number of requests, known after validation.
    pub(crate) total: u64,
    /// Processing positions (0-based, input order) of requests that fail.
    pub(crate) fail_positions: Vec<u64>,
    /// Requests processed when the batch stopped early (cancel).
    pub(crate) processed_at_stop: Option<u64>,
    /// Final counts, set when the batch reaches a terminal state with files.
    pub(crate) final_counts: Option<(u64, u64)>,
    pub(crate) usage: Usage,
    pub(crate) metadata: Option<BTreeMap<String, String>>,
    pub(crate) output_expires_after: Option<i64>,
    pub(crate) timings: BatchTimings,
    /// Extra validation time from a stall fault, in virtual ms.
    pub(crate) stall_ms: u64,
    pub(crate) faults: BatchFaults,
}

/// `Batch` (API notes §5), field order as the API sends it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct BatchObject<'a> {
    id: &'a str,
    object: &'static str,
    endpoint: &'a str,
    model: Option<&'a str>,
    errors: Option<ErrorList<'a>>,
    input_file_id: &'a str,
    completion_window: &'a str,
    status: &'static str,
    output_file_id: Option<&'a str>,
    error_file_id: Option<&'a str>,
    created_at: i64,
    in_progress_at: Option<i64>,
    expires_at: Option<i64>,
    finalizing_at: Option<i64>,
    completed_at: Option<i64>,
    failed_at: Option<i64>,
    expired_at: Option<i64>,
    cancelling_at: Option<i64>,
    cancelled_at: Option<i64>,
    request_counts: RequestCounts,
    usage: UsageObject,
    metadata: Option<&'a BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Serialize)]
struct ErrorList<'a> {
    object: &'static str,
    data: &'a [BatchErrorItem],
}

/// `BatchRequestCounts`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct RequestCounts {
    pub(crate) total: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
}

#[derive(Clone, Copy, Debug, Serialize)]
struct UsageObject {
    input_tokens: u64,
    input_tokens_details: CachedTokens,
    output_tokens: u64,
    output_tokens_details: ReasoningTokens,
    total_tokens: u64,
}

#[derive(Clone, Copy, Debug, Serialize)]
struct CachedTokens {
    cached_tokens: u64,
}

#[derive(Clone, Copy, Debug, Serialize)]
struct ReasoningTokens {
    reasoning_tokens: u64,
}

pub(crate) fn secs(ms: u64) -> i64 {
    i64::try_from(ms / 1000).unwrap_or(i64::MAX)
}

impl BatchRecord {
    /// Requests processed by virtual time `now_ms` while in progress.
    pub(crate) fn processed_at(&self, now_ms: u64) -> u64 {
        match self.in_progress_ms {
            Some(start) if now_ms > start => {
                let per = self.timings.per_request_ms.max(1);
                ((now_ms - start) / per).min(self.total)
            }
            _ => 0,
        }
    }

    /// Failures among the first `processed` requests.
    pub(crate) fn failed_among(&self, processed: u64) -> u64 {
        self.fail_positions
            .iter()
            .filter(|p| **p < processed)
            .count() as u64
    }

    pub(crate) fn request_counts(&self, now_ms: u64) -> RequestCounts {
        if let Some((completed, failed)) = self.final_counts {
            return RequestCounts {
                total: self.total,
                completed,
                failed,
            };
        }
        let processed = match self.status {
            Status::Validating | Status::Failed => 0,
            Status::InProgress => self.processed_at(now_ms),
            Status::Finalizing | Status::Completed => self.total,
            Status::Cancelling | Status::Cancelled | Status::Expired => {
                self.processed_at_stop.unwrap_or(0)
            }
        };
        let failed = self.failed_among(processed);
        RequestCounts {
            total: self.total,
            completed: processed - failed,
            failed,
        }
    }

    pub(crate) fn to_api(&self, now_ms: u64) -> BatchObject<'_> {
        BatchObject {
            id: &self.id,
            object: "batch",
            endpoint: &self.endpoint,
            model: self.model.as_deref(),
            errors: self.errors.as_deref().map(|data| ErrorList {
                object: "list",
                data,
            }),
            input_file_id: &self.input_file_id,
            completion_window: &self.completion_window,
            status: self.status.as_str(),
            output_file_id: self.output_file_id.as_deref(),
            error_file_id: self.error_file_id.as_deref(),
            created_at: secs(self.created_ms),
            in_progress_at: self.in_progress_ms.map(secs),
            expires_at: Some(secs(self.expires_ms)),
            finalizing_at: self.finalizing_ms.map(secs),
            completed_at: self.completed_ms.map(secs),
            failed_at: self.failed_ms.map(secs),
            expired_at: self.expired_ms.map(secs),
            cancelling_at: self.cancelling_ms.map(secs),
            cancelled_at: self.cancelled_ms.map(secs),
            request_counts: self.request_counts(now_ms),
            usage: UsageObject {
                input_tokens: self.usage.input_tokens,
                input_tokens_details: CachedTokens { cached_tokens: 0 },
                output_tokens: self.usage.output_tokens,
                output_tokens_details: ReasoningTokens {
                    reasoning_tokens: 0,
                },
                total_tokens: self.usage.input_tokens + self.usage.output_tokens,
            },
            metadata: self.metadata.as_ref(),
        }
    }
}

/// `ListBatchesResponse` / `ListFilesResponse`.
#[derive(Debug, Serialize)]
pub(crate) struct ListObject<T> {
    pub(crate) object: &'static str,
    pub(crate) data: Vec<T>,
    pub(crate) first_id: Option<String>,
    pub(crate) last_id: Option<String>,
    pub(crate) has_more: bool,
}

/// `DeleteFileResponse`.
#[derive(Debug, Serialize)]
pub(crate) struct DeletedFile<'a> {
    pub(crate) id: &'a str,
    pub(crate) object: &'static str,
    pub(crate) deleted: bool,
}
