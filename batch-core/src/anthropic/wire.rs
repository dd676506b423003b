//! The wire types of Anthropic's Message Batches API: the `MessageBatch`
//! object, its request counts, a page of the batch list, and the error
//! envelope; and the one mapping of a `MessageBatch` into the job's view
//! of a batch ([`MessageBatch::to_batch`]).
//!
//! Sources: <https://docs.anthropic.com/en/api/creating-message-batches>,
//! <https://docs.anthropic.com/en/api/retrieving-message-batches>,
//! <https://docs.anthropic.com/en/api/listing-message-batches>,
//! <https://docs.anthropic.com/en/api/errors>.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::api::{Batch, BatchStatus, Endpoint, RequestCounts};
use crate::time::{civil_from_days, days_from_civil};

/// The key of [`Batch::extra`] that holds a mapped batch's `results_url`.
pub const RESULTS_URL: &str = "results_url";

/// A batch's `processing_status`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProcessingStatus {
    /// `in_progress`: requests are being processed.
    InProgress,
    /// `canceling`: a cancel was asked for; requests not yet started will be canceled.
    Canceling,
    /// `ended`: every request has a result; `results_url` is set.
    Ended,
    /// Any other value, kept as sent (the job keeps polling such a batch).
    Unknown(String),
}

impl ProcessingStatus {
    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            ProcessingStatus::InProgress => "in_progress",
            ProcessingStatus::Canceling => "canceling",
            ProcessingStatus::Ended => "ended",
            ProcessingStatus::Unknown(s) => s,
        }
    }

    /// Parses a wire string; never fails.
    pub fn parse(s: &str) -> ProcessingStatus {
        match s {
            "in_progress" => ProcessingStatus::InProgress,
            "canceling" => ProcessingStatus::Canceling,
            "ended" => ProcessingStatus::Ended,
            other => ProcessingStatus::Unknown(other.to_owned()),
        }
    }
}

impl fmt::Display for ProcessingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ProcessingStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProcessingStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(ProcessingStatus::parse(&s))
    }
}

/// A batch's `request_counts`: how many requests are in each state. The
/// five add up to the batch's size at every moment.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessageBatchCounts {
    /// Still processing.
    #[serde(default)]
    pub processing: u64,
    /// Finished with a message.
    #[serde(default)]
    pub succeeded: u64,
    /// Finished with an error.
    #[serde(default)]
    pub errored: u64,
    /// Canceled before they ran.
    #[serde(default)]
    pub canceled: u64,
    /// Not run before the batch's 24-hour window ended.
    #[serde(default)]
    pub expired: u64,
}

impl MessageBatchCounts {
    /// Counts with the given numbers.
    pub fn new(processing: u64, succeeded: u64, errored: u64, canceled: u64, expired: u64) -> Self {
        MessageBatchCounts {
            processing,
            succeeded,
            errored,
            canceled,
            expired,
        }
    }

    /// The batch's size: the sum of the five counts (saturating).
    pub fn total(&self) -> u64 {
        self.processing
            .saturating_add(self.succeeded)
            .saturating_add(self.errored)
            .saturating_add(self.canceled)
            .saturating_add(self.expired)
    }
}

/// A Message Batch, as create, retrieve, cancel and list return it.
///
/// Times are RFC 3339 strings as sent; [`created_at_secs`](Self::created_at_secs)
/// reads the creation time as Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessageBatch {
    /// The batch id, `msgbatch_...`.
    pub id: String,
    /// Always `message_batch`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Where processing stands.
    pub processing_status: ProcessingStatus,
    /// How many requests are in each state.
    #[serde(default)]
    pub request_counts: MessageBatchCounts,
    /// When processing ended, once it has.
    #[serde(default)]
    pub ended_at: Option<String>,
    /// When the batch was created.
    pub created_at: String,
    /// When the batch expires (24 hours after creation).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// When a cancel was asked for, if one was.
    #[serde(default)]
    pub cancel_initiated_at: Option<String>,
    /// When the batch was archived and its results made unavailable, if it was.
    #[serde(default)]
    pub archived_at: Option<String>,
    /// Where the results JSONL is, once processing ended.
    #[serde(default)]
    pub results_url: Option<String>,
}

impl MessageBatch {
    /// A batch in `status` with `counts`, created at `created_at` (RFC 3339),
    /// every optional field unset. For tests and emulators.
    pub fn new(
        id: impl Into<String>,
        status: ProcessingStatus,
        counts: MessageBatchCounts,
        created_at: impl Into<String>,
    ) -> MessageBatch {
        MessageBatch {
            id: id.into(),
            kind: "message_batch".into(),
            processing_status: status,
            request_counts: counts,
            ended_at: None,
            created_at: created_at.into(),
            expires_at: None,
            cancel_initiated_at: None,
            archived_at: None,
            results_url: None,
        }
    }

    /// `created_at` as Unix seconds, if it is an RFC 3339 time.
    pub fn created_at_secs(&self) -> Option<i64> {
        parse_rfc3339(&self.created_at)
    }

    /// The job's status for this batch:
    ///
    /// | `processing_status` | counts, cancel | status |
    /// | --- | --- | --- |
    /// | `in_progress` | | `in_progress` |
    /// | `canceling` | | `cancelling` |
    /// | `ended` | a cancel was asked for, or any request `canceled` | `cancelled` |
    /// | `ended` | otherwise, any request `expired` | `expired` |
    /// | `ended` | otherwise | `completed` |
    /// | anything else | | kept as sent (not terminal: polled again) |
    ///
    /// Every terminal status means the same thing to the job: the results
    /// are ready, and they name an outcome for every request (canceled
    /// and expired ones included).
    pub fn status(&self) -> BatchStatus {
        let c = &self.request_counts;
        match &self.processing_status {
            ProcessingStatus::InProgress => BatchStatus::InProgress,
            ProcessingStatus::Canceling => BatchStatus::Cancelling,
            ProcessingStatus::Ended if self.cancel_initiated_at.is_some() || c.canceled > 0 => {
                BatchStatus::Cancelled
            }
            ProcessingStatus::Ended if c.expired > 0 => BatchStatus::Expired,
            ProcessingStatus::Ended => BatchStatus::Completed,
            ProcessingStatus::Unknown(s) => BatchStatus::Unknown(s.clone()),
        }
    }

    /// The job's counts: `total` is the batch's size, `completed` the
    /// succeeded requests and `failed` the errored ones (canceled and
    /// expired requests are neither: they were not processed).
    pub fn counts(&self) -> RequestCounts {
        let c = &self.request_counts;
        RequestCounts {
            total: c.total(),
            completed: c.succeeded,
            failed: c.errored,
        }
    }

    /// This batch as the job sees every batch: its id, the mapped
    /// [`status`](Self::status) and [`counts`](Self::counts), its creation
    /// and expiry times in Unix seconds, the endpoint `/v1/messages`, and
    /// no files: the results come from `results_url`, kept in the batch's
    /// `extra` under [`RESULTS_URL`].
    pub fn to_batch(&self) -> Batch {
        let mut b = Batch::new(
            self.id.clone(),
            Endpoint::Unknown(super::MESSAGES_PATH.to_owned()),
            "",
            self.status(),
            self.created_at_secs().unwrap_or(0),
        );
        b.object = "message_batch".into();
        b.request_counts = Some(self.counts());
        b.expires_at = self.expires_at.as_deref().and_then(parse_rfc3339);
        b.cancelling_at = self.cancel_initiated_at.as_deref().and_then(parse_rfc3339);
        if let Some(url) = &self.results_url {
            b.extra
                .insert(RESULTS_URL.into(), serde_json::Value::from(url.as_str()));
        }
        let ended = self.ended_at.as_deref().and_then(parse_rfc3339);
        match b.status {
            BatchStatus::Cancelled => b.cancelled_at = ended,
            BatchStatus::Expired => b.expired_at = ended,
            BatchStatus::Completed => b.completed_at = ended,
            _ => {}
        }
        b
    }
}

/// One page of `GET /v1/messages/batches`: newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessageBatchPage {
    /// The batches of this page, most recently created first.
    #[serde(default)]
    pub data: Vec<MessageBatch>,
    /// Whether more batches follow in this direction.
    #[serde(default)]
    pub has_more: bool,
    /// The first id of `data`: the `before_id` of the previous (newer) page.
    #[serde(default)]
    pub first_id: Option<String>,
    /// The last id of `data`: the `after_id` of the next (older) page.
    #[serde(default)]
    pub last_id: Option<String>,
}

/// Anthropic's error envelope: `{"type":"error","error":{"type":..,"message":..}}`.
///
/// The job reads error answers with [`ApiError::from_response`](crate::api::ApiError::from_response),
/// which reads this envelope's `error.type` and `error.message` as it reads
/// OpenAI's; this type is for emulators and tests that write one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorEnvelope {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The error.
    pub error: ErrorDetail,
}

/// The error inside an [`ErrorEnvelope`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorDetail {
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `request_too_large`, `rate_limit_error`,
    /// `api_error` or `overloaded_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Human-readable text.
    #[serde(default)]
    pub message: String,
}

impl ErrorEnvelope {
    /// An envelope for an error of type `kind` with `message`.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> ErrorEnvelope {
        ErrorEnvelope {
            kind: "error".into(),
            error: ErrorDetail {
                kind: kind.into(),
                message: message.into(),
            },
        }
    }
}

/// Parses an RFC 3339 time (`2024-08-20T18:37:24.100435Z`,
/// `2024-08-20T18:37:24+02:00`) to Unix seconds; fractions are dropped.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let o = rest.get(1..)?;
            let (h, m) = o.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
            sign * (h * 3600 + m * 60)
        }
    };
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec - offset)
}

/// Formats Unix seconds as RFC 3339 in UTC (`2024-08-20T18:37:24Z`).
pub fn format_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_reads_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-08-20T18:37:24.100435Z"),
            Some(1_724_179_044)
        );
        assert_eq!(
            parse_rfc3339("2024-08-20T20:37:24+02:00"),
            Some(1_724_179_044)
        );
        assert_eq!(format_rfc3339(1_724_179_044), "2024-08-20T18:37:24Z");
        for t in [0, 951_782_400, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&format_rfc3339(t)), Some(t));
        }
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2024-08-20T18:37:24"), None);
    }

    #[test]
    fn status_mapping() {
        let b = |status, counts, cancel: bool| {
            let mut m = MessageBatch::new("msgbatch_1", status, counts, "2024-08-20T18:37:24Z");
            if cancel {
                m.cancel_initiated_at = Some("2024-08-20T18:40:00Z".into());
            }
            m.status()
        };
        let c = MessageBatchCounts::new;
        assert_eq!(
            b(ProcessingStatus::InProgress, c(3, 0, 0, 0, 0), false),
            BatchStatus::InProgress
        );
        assert_eq!(
            b(ProcessingStatus::Canceling, c(3, 0, 0, 0, 0), true),
            BatchStatus::Cancelling
        );
        assert_eq!(
            b(ProcessingStatus::Ended, c(0, 2, 1, 0, 0), false),
            BatchStatus::Completed
        );
        assert_eq!(
            b(ProcessingStatus::Ended, c(0, 0, 0, 3, 0), true),
            BatchStatus::Cancelled
        );
        assert_eq!(
            b(ProcessingStatus::Ended, c(0, 3, 0, 0, 0), true),
            BatchStatus::Cancelled
        );
        assert_eq!(
            b(ProcessingStatus::Ended, c(0, 1, 0, 0, 2), false),
            BatchStatus::Expired
        );
        assert!(
            !b(
                ProcessingStatus::parse("archiving"),
                c(0, 0, 0, 0, 0),
                false
            )
            .is_terminal()
        );
    }
}
