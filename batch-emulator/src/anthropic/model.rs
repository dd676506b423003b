//! The stored Message Batch and the `MessageBatch` object the API answers
//! with (<https://docs.anthropic.com/en/api/retrieving-message-batches>):
//! RFC 3339 timestamps, `null` for unset ones, `results_url` once ended.

use serde::{Deserialize, Serialize};

/// How long results stay available after creation: 29 days
/// (<https://docs.anthropic.com/en/docs/build-with-claude/batch-processing>).
pub(crate) const RESULTS_KEPT_MS: u64 = 29 * 24 * 3600 * 1000;

/// `processing_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Processing {
    InProgress,
    Canceling,
    Ended,
}

impl Processing {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Processing::InProgress => "in_progress",
            Processing::Canceling => "canceling",
            Processing::Ended => "ended",
        }
    }
}

/// `request_counts`, in the documented key order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counts {
    pub(crate) processing: u64,
    pub(crate) succeeded: u64,
    pub(crate) errored: u64,
    pub(crate) canceled: u64,
    pub(crate) expired: u64,
}

/// A stored Message Batch. Times are virtual milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct MessageBatchRecord {
    pub(crate) id: String,
    pub(crate) seq: u64,
    pub(crate) status: Processing,
    pub(crate) total: u64,
    pub(crate) created_ms: u64,
    /// `created_at` + the 24 h window.
    pub(crate) expires_ms: u64,
    /// When processing starts: `created_ms` plus any stall fault.
    pub(crate) start_ms: u64,
    pub(crate) per_request_ms: u64,
    pub(crate) finalize_ms: u64,
    pub(crate) cancel_ms: u64,
    /// The `expire` fault: the batch expires half way through processing.
    pub(crate) expire_early_ms: Option<u64>,
    pub(crate) cancel_initiated_ms: Option<u64>,
    /// Requests processed when a cancel came in.
    pub(crate) processed_at_stop: Option<u64>,
    pub(crate) ended_ms: Option<u64>,
    /// The final tallies, once ended.
    pub(crate) counts: Option<Counts>,
    /// Whether the results file was written (false if writing it failed).
    pub(crate) results_written: bool,
}

/// `MessageBatch`, keys in the documented order.
#[derive(Debug, Serialize)]
pub(crate) struct MessageBatchObject<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    processing_status: &'static str,
    request_counts: Counts,
    ended_at: Option<String>,
    created_at: String,
    expires_at: String,
    cancel_initiated_at: Option<String>,
    archived_at: Option<String>,
    results_url: Option<String>,
}

/// `MessageBatchList`
/// (<https://docs.anthropic.com/en/api/listing-message-batches>).
#[derive(Debug, Serialize)]
pub(crate) struct ListPage<'a> {
    pub(crate) data: Vec<MessageBatchObject<'a>>,
    pub(crate) has_more: bool,
    pub(crate) first_id: Option<&'a str>,
    pub(crate) last_id: Option<&'a str>,
}

impl MessageBatchRecord {
    /// When processing ends if nothing stops it.
    pub(crate) fn processing_end_ms(&self) -> u64 {
        self.start_ms + self.total * self.per_request_ms + self.finalize_ms
    }

    /// When the unprocessed requests expire.
    pub(crate) fn expiry_ms(&self) -> u64 {
        self.expire_early_ms
            .map_or(self.expires_ms, |e| e.min(self.expires_ms))
    }

    /// Requests processed by virtual time `at_ms`.
    pub(crate) fn processed_at(&self, at_ms: u64) -> u64 {
        if at_ms <= self.start_ms {
            return 0;
        }
        ((at_ms - self.start_ms) / self.per_request_ms.max(1)).min(self.total)
    }

    /// When the results stop being available.
    pub(crate) fn archive_ms(&self) -> u64 {
        self.created_ms + RESULTS_KEPT_MS
    }

    /// Whether the results are gone (29 days after creation).
    pub(crate) fn archived(&self, now_ms: u64) -> bool {
        self.status == Processing::Ended && now_ms >= self.archive_ms()
    }

    /// The `results_url` under `origin` (`http://HOST:PORT`).
    pub(crate) fn results_url(&self, origin: &str) -> String {
        format!("{origin}/v1/messages/batches/{}/results", self.id)
    }

    pub(crate) fn to_api(&self, now_ms: u64, origin: &str) -> MessageBatchObject<'_> {
        let request_counts = match (self.status, self.counts) {
            (Processing::Ended, Some(c)) => c,
            _ => Counts {
                processing: self.total,
                ..Counts::default()
            },
        };
        let ended = self.status == Processing::Ended;
        MessageBatchObject {
            id: &self.id,
            kind: "message_batch",
            processing_status: self.status.as_str(),
            request_counts,
            ended_at: self.ended_ms.filter(|_| ended).map(rfc3339),
            created_at: rfc3339(self.created_ms),
            expires_at: rfc3339(self.expires_ms),
            cancel_initiated_at: self.cancel_initiated_ms.map(rfc3339),
            archived_at: self.archived(now_ms).then(|| rfc3339(self.archive_ms())),
            results_url: ended.then(|| self.results_url(origin)),
        }
    }
}

/// Unix milliseconds as an RFC 3339 UTC timestamp with microseconds, as
/// the API writes them: `2024-08-20T18:37:24.100000Z`.
pub(crate) fn rfc3339(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    let micros = (ms % 1000) * 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = batch_core::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> MessageBatchRecord {
        MessageBatchRecord {
            id: "msgbatch_01x".to_owned(),
            seq: 1,
            status: Processing::InProgress,
            total: 10,
            created_ms: 1_000,
            expires_ms: 1_000 + 86_400_000,
            start_ms: 1_000,
            per_request_ms: 1_000,
            finalize_ms: 30_000,
            cancel_ms: 60_000,
            expire_early_ms: None,
            cancel_initiated_ms: None,
            processed_at_stop: None,
            ended_ms: None,
            counts: None,
            results_written: false,
        }
    }

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(1_724_179_044_100), "2024-08-20T18:37:24.100000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn counts_stay_processing_until_the_batch_ends() {
        let mut b = record();
        let v = serde_json::to_value(b.to_api(5_000, "http://h")).expect("json");
        assert_eq!(v["request_counts"]["processing"], 10);
        assert_eq!(v["results_url"], serde_json::Value::Null);
        assert_eq!(b.processed_at(4_500), 3);
        assert_eq!(b.processed_at(999_999), 10);
        assert_eq!(b.processing_end_ms(), 41_000);
        b.status = Processing::Ended;
        b.ended_ms = Some(41_000);
        b.counts = Some(Counts {
            succeeded: 9,
            errored: 1,
            ..Counts::default()
        });
        let v = serde_json::to_value(b.to_api(50_000, "http://h")).expect("json");
        assert_eq!(v["request_counts"]["succeeded"], 9);
        assert_eq!(v["request_counts"]["processing"], 0);
        assert_eq!(
            v["results_url"],
            "http://h/v1/messages/batches/msgbatch_01x/results"
        );
        assert_eq!(v["archived_at"], serde_json::Value::Null);
        let late = serde_json::to_value(b.to_api(b.archive_ms(), "http://h")).expect("json");
        assert!(late["archived_at"].is_string());
    }
}
