//! The values that cross the [`Job`](super::Job) boundary: configuration,
//! steps, events, results and the summary.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::{ApiBase, BatchStatus, CompletionWindow, Outgoing, RequestCounts};
use crate::job::checkpoint::Checkpoint;
use crate::results::ResultRecord;
use crate::retry::RetryPolicy;
use crate::time::UnixMillis;

/// Knobs of a job. Everything has a sensible default except the API settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JobConfig {
    /// Base URL, key, organization and project, checked.
    pub api: ApiBase,
    /// How often a running batch is polled (default 60 s).
    pub poll_interval: Duration,
    /// How long the job may wait in all before it stops waiting (default: no limit).
    pub max_wait: Option<Duration>,
    /// What to do with running batches when `max_wait` passes.
    pub on_timeout: OnTimeout,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Seed of the backoff jitter. Transports take it from the OS once;
    /// tests fix it.
    pub seed: u64,
    /// How many shards may be in flight (uploaded and not finished) at once (default 4).
    pub max_parallel: usize,
    /// The longest result line accepted (default 16 MiB).
    pub max_line_bytes: usize,
    /// The largest JSON response body buffered (default 8 MiB).
    pub max_json_body: usize,
    /// User metadata stamped on every batch (at most 13 pairs: the job uses three keys;
    /// see [`JobConfig::validate_settings`]).
    pub metadata: BTreeMap<String, String>,
    /// Expire output and error files this many seconds after creation (3600..=2592000).
    pub output_expires_after: Option<u64>,
    /// Expire each uploaded input file this many seconds after its upload
    /// (3600..=2592000; sent as `expires_after` with anchor `created_at`).
    /// `None` keeps the provider's default: OpenAI expires batch files
    /// after 30 days, while Azure OpenAI keeps them and caps how many such
    /// files may exist (500), so set it there.
    pub file_expires_after: Option<u64>,
    /// The completion window of every batch (default `24h`, the only window
    /// OpenAI accepts today; other providers allow longer ones).
    pub completion_window: CompletionWindow,
    /// The wait before a batch refused for the enqueued-token limit
    /// (`token_limit_exceeded`) is created again; doubles per refusal, capped at 30 min.
    pub requeue_delay: Duration,
    /// How many times one shard is re-created after `token_limit_exceeded`
    /// before its requests are reported as not processed (default 48).
    pub max_requeues: u32,
    /// Where the job stops.
    pub stop_after: StopAfter,
    /// How long and how slowly one exchange may run before the job cuts it.
    pub exchange: ExchangeLimits,
}

impl JobConfig {
    /// A configuration with the defaults and the given API settings.
    pub fn new(api: ApiBase) -> Self {
        JobConfig {
            api,
            poll_interval: Duration::from_secs(60),
            max_wait: None,
            on_timeout: OnTimeout::LeaveRunning,
            retry: RetryPolicy::default(),
            seed: 0,
            max_parallel: 4,
            max_line_bytes: 16 * 1024 * 1024,
            max_json_body: 8 * 1024 * 1024,
            metadata: BTreeMap::new(),
            output_expires_after: None,
            file_expires_after: None,
            completion_window: CompletionWindow::default(),
            requeue_delay: Duration::from_secs(60),
            max_requeues: 48,
            stop_after: StopAfter::Finished,
            exchange: ExchangeLimits::default(),
        }
    }
}

/// The bounds of one exchange. The job judges every exchange in flight
/// each time [`Job::poll`](super::Job::poll) is called (its `Wait` wakes the
/// driver in time) and cuts one that breaks a bound: it returns
/// [`Step::Abort`] for it and treats it as a transport failure, so it is
/// retried with backoff under [`RetryPolicy`]'s attempt cap like any other
/// failure. A cut create or upload is looked for before it is sent again; a
/// cut download resumes with `Range` from its last complete line.
///
/// Bounds:
/// - a deadline: [`json_deadline`](Self::json_deadline) for every exchange
///   but uploads and downloads; for those, [`transfer_grace`](Self::transfer_grace)
///   plus the bytes to move at [`transfer_rate`](Self::transfer_rate) (the
///   shard's size for an upload; what is left of the file, by the size its
///   file object declares, for a download);
/// - a stall rule: fewer than [`stall_min_bytes`](Self::stall_min_bytes)
///   within any [`stall_window`](Self::stall_window), counting the request
///   body going out when the driver reports it
///   ([`Job::handle_sent`](super::Job::handle_sent), as both transports
///   do), then the answer; once the body is all out, the answer must begin
///   within a window. An upload whose driver does not report its body is
///   judged by the stall rule only once its answer began;
/// - a size cap: a download stops at the size its file object declares (what
///   came up to there is kept), and a JSON answer at `JobConfig::max_json_body`.
///
/// With the defaults, a silent server costs 30 s per attempt (for an
/// upload, 30 s once its body is out), so an operation is given up after
/// 12 attempts in about 12 × 30 s plus the backoff (1 + 2 + ... + 120 s ≈
/// 10 min at most, 5 min at least): 11 to 16 minutes. A 200 MB download is allowed 2 min + 200 MB at 64 KiB/s ≈
/// 53 min per attempt, and each cut resumes where it stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExchangeLimits {
    /// The deadline of an exchange that is not an upload or a download:
    /// polls, creates, cancels, look-ups (default 2 min).
    pub json_deadline: Duration,
    /// The slowest average rate, in bytes per second, an upload or a
    /// download is allowed: its deadline is `transfer_grace` plus its size
    /// at this rate (default 64 KiB/s, a slow link).
    pub transfer_rate: u64,
    /// Added to the deadline of an upload or a download (default 2 min).
    pub transfer_grace: Duration,
    /// The window of the stall rule (default 30 s).
    pub stall_window: Duration,
    /// An exchange that receives fewer bytes than this within a
    /// `stall_window` is stalled (default 1 KiB: a trickle of a byte every
    /// few seconds is cut within one window).
    pub stall_min_bytes: u64,
    /// The size assumed for a download whose file object could not be read,
    /// to scale its deadline (default 200 MB, the largest input file).
    pub assumed_file_bytes: u64,
}

impl Default for ExchangeLimits {
    fn default() -> Self {
        ExchangeLimits {
            json_deadline: Duration::from_secs(120),
            transfer_rate: 64 * 1024,
            transfer_grace: Duration::from_secs(120),
            stall_window: Duration::from_secs(30),
            stall_min_bytes: 1024,
            assumed_file_bytes: 200_000_000,
        }
    }
}

impl ExchangeLimits {
    /// How long moving `bytes` may take: `transfer_grace` plus `bytes` at
    /// `transfer_rate`.
    pub fn transfer_time(&self, bytes: u64) -> Duration {
        let rate = self.transfer_rate.max(1);
        self.transfer_grace
            .saturating_add(Duration::from_millis(bytes.saturating_mul(1000) / rate))
    }
}

/// What happens to running batches when the job's `max_wait` passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum OnTimeout {
    /// Stop waiting and leave them running; their requests are reported as
    /// not processed (`timed_out`), and a resumed job picks them up again.
    LeaveRunning,
    /// Cancel them, wait for `cancelled`, and collect their partial results.
    Cancel,
}

/// Where a job stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StopAfter {
    /// Once every shard's batch is created: [`Step::Done`] comes with the
    /// batch ids, and the job can be resumed later to collect the results.
    Submitted,
    /// Once every shard's batch has been polled once (a status report).
    Polled,
    /// Once every request has an outcome.
    Finished,
}

/// Identifies one HTTP exchange the job asked for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExchangeId(pub u64);

/// What one exchange in flight is for ([`Job::exchange_context`](super::Job::exchange_context)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExchangeContext {
    /// The shard it works for.
    pub shard: u32,
    /// The operation: `upload`, `create`, `poll`, `download`, ...
    pub op: &'static str,
    /// Its attempt at that operation (1 = the first try).
    pub attempt: u32,
}

/// What the transport must do next. After any `handle_*` call, call
/// [`Job::poll`](super::Job::poll) until it returns `Send`, `Wait` or `Done`.
#[must_use]
#[derive(Debug)]
#[non_exhaustive]
pub enum Step {
    /// Execute this exchange, then report with `handle_head`, `handle_body`
    /// and `handle_end`, or with `handle_failure`.
    Send {
        /// The exchange to report on.
        id: ExchangeId,
        /// The request to send. `Outgoing::Multipart` names a shard to stream.
        request: http::Request<Outgoing>,
    },
    /// Stop exchange `id` now and drop it: it broke one of its
    /// [`ExchangeLimits`] (deadline, stall rule, declared size), and the job
    /// has already counted it as failed. Reports on it that come later are
    /// ignored by the job (no `UsageError`), so a transport that cannot
    /// stop at once may still send some, or none.
    Abort(ExchangeId),
    /// Nothing to do before `until` (absolute). Waking early is harmless.
    Wait {
        /// When to call `poll` again.
        until: UnixMillis,
        /// Why: for logs and progress.
        reason: WaitReason,
    },
    /// Make every result delivered so far durable, then store this checkpoint
    /// durably, before calling `poll` again (write-ahead for crash-safe resume).
    Persist(Checkpoint),
    /// Progress and warnings.
    Event(JobEvent),
    /// An outcome that did not come from a body (requests not processed, and
    /// results left undrained in a [`BodyFeed`](super::BodyFeed)).
    Result(JobResult),
    /// Terminal: every request has exactly one outcome (unless the job was
    /// configured to stop earlier, see [`StopAfter`]).
    Done(JobSummary),
}

/// Why the job waits.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitReason {
    /// Polling a running batch.
    PollBatch {
        /// The shard.
        shard: u32,
    },
    /// Backing off after a transient failure.
    Backoff {
        /// The shard.
        shard: u32,
        /// The attempt about to be made.
        attempt: u32,
    },
    /// The server asked us to wait (429 with `Retry-After`).
    RateLimit {
        /// The shard.
        shard: u32,
    },
    /// Waiting for room in the enqueued-token limit before creating again.
    Requeue {
        /// The shard.
        shard: u32,
    },
    /// Exchanges are in flight (only with a transport that runs them concurrently).
    InFlight,
}

/// How a transport failed to carry out an exchange.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct TransportFailure {
    /// What is known about whether the server saw the request.
    pub kind: FailureKind,
    /// The transport's own words, for logs (must not hold secrets).
    pub detail: String,
}

impl TransportFailure {
    /// A failure of `kind` described by `detail`.
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        TransportFailure {
            kind,
            detail: detail.into(),
        }
    }

    /// A failure before the response head arrived, classified the same way
    /// by every transport: without a connection to the server (the name
    /// did not resolve, the connection was refused or timed out, the URL
    /// cannot be used) nothing was sent; once connected, the server may
    /// have seen the request.
    pub fn before_head(connected: bool, detail: impl Into<String>) -> Self {
        let kind = if connected {
            FailureKind::OutcomeUnknown
        } else {
            FailureKind::NotSent
        };
        TransportFailure::new(kind, detail)
    }

    /// The response head arrived, then the body was cut off.
    pub fn in_body(detail: impl Into<String>) -> Self {
        TransportFailure::new(FailureKind::BodyInterrupted, detail)
    }

    /// This failure with the API key removed from its detail (see
    /// [`ApiBase::redact`]).
    #[must_use]
    pub fn redacted(self, api: &ApiBase) -> Self {
        TransportFailure {
            kind: self.kind,
            detail: api.redact(&self.detail),
        }
    }
}

/// What is known about a failed exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FailureKind {
    /// Nothing reached the server (DNS, connection refused, TLS before send).
    NotSent,
    /// The request may have reached the server (timeout or reset after sending).
    OutcomeUnknown,
    /// The response head arrived, then the body was cut off.
    BodyInterrupted,
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailureKind::NotSent => "not sent",
            FailureKind::OutcomeUnknown => "outcome unknown",
            FailureKind::BodyInterrupted => "body interrupted",
        })
    }
}

/// The driver called the job out of order. The job is stuck after this:
/// `poll` returns `Done` with the error in the summary.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The exchange id is not in flight.
    #[error("exchange {0:?} is not in flight")]
    UnknownExchange(ExchangeId),
    /// A body or end arrived before the head.
    #[error("exchange {0:?} got a body before its head")]
    BodyBeforeHead(ExchangeId),
    /// A second head arrived.
    #[error("exchange {0:?} got a second head")]
    HeadTwice(ExchangeId),
    /// The job already failed from an earlier misuse.
    #[error("the job is stopped after an earlier usage error")]
    Poisoned,
}

/// Progress and warnings.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum JobEvent {
    /// A shard's file was uploaded (or found after an unknown outcome).
    Uploaded {
        /// The shard.
        shard: u32,
        /// The file id.
        file_id: String,
    },
    /// A shard's batch exists (created, or found by its metadata).
    Submitted {
        /// The shard.
        shard: u32,
        /// The batch id.
        batch_id: String,
    },
    /// A batch's status or request counts changed.
    Progress {
        /// The shard.
        shard: u32,
        /// The batch id.
        batch_id: String,
        /// The status now.
        status: BatchStatus,
        /// The counts now.
        counts: RequestCounts,
    },
    /// A transient failure; the operation is tried again at `at`.
    Retrying {
        /// The shard.
        shard: u32,
        /// The operation, e.g. `upload` or `poll`.
        op: &'static str,
        /// The attempt about to be made.
        attempt: u32,
        /// When.
        at: UnixMillis,
        /// What went wrong.
        reason: String,
    },
    /// The batch was refused for the enqueued-token limit; it is created
    /// again at `at`.
    Requeued {
        /// The shard.
        shard: u32,
        /// When it is created again.
        at: UnixMillis,
        /// The server's message.
        reason: String,
    },
    /// A cut-off download continues from byte `offset`.
    DownloadResumed {
        /// The shard.
        shard: u32,
        /// The file.
        file_id: String,
        /// The byte offset it continues from.
        offset: u64,
    },
    /// Something odd that does not stop the job (a garbage result line, an
    /// unknown or repeated `custom_id`, a count mismatch).
    Warning {
        /// The shard.
        shard: u32,
        /// What happened.
        message: String,
    },
    /// A shard is finished: every one of its requests has an outcome.
    ShardFinished {
        /// The shard.
        shard: u32,
        /// Its summary.
        summary: ShardSummary,
    },
}

/// One request's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct JobResult {
    /// The request's position in the input, from 0.
    pub index: u64,
    /// The shard it went in.
    pub shard: u32,
    /// The batch the outcome belongs to: the one whose output or error file
    /// held its result line, or, for an outcome the job made up
    /// (`missing_result`, `timed_out`, ...), the shard's batch. `None` when
    /// the shard never got a batch (`upload_failed`, `job_cancelled` before
    /// creation, ...).
    pub batch_id: Option<String>,
    /// Its `custom_id`.
    pub custom_id: String,
    /// What became of it.
    pub outcome: JobOutcome,
    /// The server's result line behind a [`JobOutcome::NotProcessed`] that
    /// came from one (the `batch_expired` or `batch_cancelled` lines of an
    /// expired or cancelled batch), kept for its `id` and `error`. `None`
    /// otherwise: a succeeded or failed outcome holds its line itself. Use
    /// [`result_line`](Self::result_line) for the line of any outcome.
    pub server_line: Option<Box<ResultRecord>>,
}

impl JobResult {
    /// The server's result line this outcome came from, if it came from one:
    /// the record of a succeeded or failed outcome, or the
    /// [`server_line`](Self::server_line) of a not-processed one. Its
    /// [`id`](ResultRecord::id) is the line's `batch_req_...` id.
    pub fn result_line(&self) -> Option<&ResultRecord> {
        match &self.outcome {
            JobOutcome::Succeeded(rec) | JobOutcome::Failed(rec) => Some(rec),
            JobOutcome::NotProcessed(_) => self.server_line.as_deref(),
        }
    }
}

/// What became of one request. Every request ends in exactly one of these.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum JobOutcome {
    /// The request ran and the API answered 2xx; the record holds the body.
    Succeeded(Box<ResultRecord>),
    /// The request ran and failed; the record holds the server's reason.
    Failed(Box<ResultRecord>),
    /// The request was not processed; `reason` says why.
    NotProcessed(NotProcessed),
}

/// Why a request was not processed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotProcessed {
    /// A stable code. Final (the request will not run):
    /// `batch_expired`, `batch_cancelled`, `batch_failed`, `missing_result`,
    /// `unreadable_result`, `upload_failed`, `create_failed`,
    /// `job_cancelled`, `token_limit_exceeded`, or the code of the batch's
    /// validation error for that line. Provisional (the job stopped waiting;
    /// resuming it can still deliver the real outcome, see
    /// [`is_final`](Self::is_final)): `job_stopped` (a job-wide error such
    /// as a refused key), `gave_up` (retries exhausted, e.g. the server
    /// unreachable), `timed_out` (the maximum wait passed),
    /// `batch_unavailable` (the batch could not be read).
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

impl NotProcessed {
    /// The codes of outcomes that stand in for a request the job stopped
    /// waiting for; a resumed job replaces them with the real outcome.
    pub const PROVISIONAL: [&'static str; 4] =
        ["job_stopped", "gave_up", "timed_out", "batch_unavailable"];

    /// Whether this is the request's last word: `false` for the
    /// [`PROVISIONAL`](Self::PROVISIONAL) codes.
    pub fn is_final(&self) -> bool {
        !Self::PROVISIONAL.contains(&self.code.as_str())
    }
}

/// Token usage summed over succeeded requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotals {
    /// Input (prompt) tokens.
    pub input_tokens: u64,
    /// Output (completion) tokens.
    pub output_tokens: u64,
    /// Cached input tokens, where reported.
    pub cached_tokens: u64,
    /// Reasoning tokens, where reported.
    pub reasoning_tokens: u64,
}

/// How a shard ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ShardEnd {
    /// Its batch reached a terminal status and its results were collected.
    Finished,
    /// It never got a batch: cancelled, or the upload or create was refused.
    NotSubmitted,
    /// The job stopped waiting for it (timed out, or gave up after repeated
    /// failures). A resumed job picks it up again.
    Stopped,
}

/// One shard at the end (or at the stop point) of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardSummary {
    /// The shard.
    pub shard: u32,
    /// Its number of requests.
    pub requests: u64,
    /// Its uploaded file, if any.
    pub file_id: Option<String>,
    /// Its batch, if any.
    pub batch_id: Option<String>,
    /// The batch's last known status.
    pub status: Option<BatchStatus>,
    /// The batch's last known request counts.
    pub counts: Option<RequestCounts>,
    /// How it ended, if it has.
    pub end: Option<ShardEnd>,
    /// Requests that succeeded.
    pub succeeded: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Requests not processed.
    pub not_processed: u64,
    /// The batch's first error, when it failed.
    pub error: Option<String>,
}

/// The end of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobSummary {
    /// The job's id.
    pub job_id: String,
    /// The number of requests.
    pub requests: u64,
    /// Requests that succeeded.
    pub succeeded: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Requests not processed.
    pub not_processed: u64,
    /// Tokens used by succeeded and failed requests.
    pub usage: UsageTotals,
    /// Result lines that could not be read.
    pub bad_lines: u64,
    /// Each shard.
    pub shards: Vec<ShardSummary>,
    /// Whether the job stopped waiting at its `max_wait`.
    pub timed_out: bool,
    /// Whether the job was cancelled.
    pub cancelled: bool,
    /// Whether every request has an outcome (false when stopped early by
    /// [`StopAfter`], or after a timeout).
    pub complete: bool,
    /// Why the job stopped early, when a job-wide error stopped it
    /// (an authentication failure, a driver misuse).
    pub error: Option<String>,
}

impl JobSummary {
    /// Whether every request succeeded.
    pub fn all_succeeded(&self) -> bool {
        self.complete && self.succeeded == self.requests
    }
}
