//! The values that cross the [`Job`](super::Job) boundary: configuration,
//! steps, events, results and the summary.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{ApiBase, BatchStatus, CompletionWindow, Outgoing, RequestCounts};
use crate::credential::{CredentialRefresh, RefreshReason};
use crate::job::checkpoint::Checkpoint;
use crate::results::{FinishReason, ResultRecord, Success, ToolCall, Usage, strip_fences};
use crate::retry::RetryPolicy;
use crate::time::UnixMillis;

/// Knobs of a job. Everything has a sensible default except the API settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JobConfig {
    /// Base URL, key, organization and project, checked.
    pub api: ApiBase,
    /// How often a running batch is polled (default 60 s); with
    /// [`adaptive_polling`](Self::adaptive_polling), the longest wait
    /// between two polls.
    pub poll_interval: Duration,
    /// Polls a batch when it is likely to have changed (default off): one
    /// second after it is created or changes status, then twice as long
    /// each time nothing changes, up to `poll_interval`; while it is in
    /// progress, when the pace of its `request_counts` says it will be done
    /// (at least a second, at most `poll_interval` away). A batch is then
    /// seen done seconds after it is, not up to `poll_interval` later, for
    /// a few more polls early on.
    pub adaptive_polling: bool,
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
    /// Set when the credential expires and comes from a
    /// [`CredentialSource`](crate::credential::CredentialSource): the job
    /// asks for one with [`Step::RefreshCredential`] before its first
    /// request, near its expiry, and after a `401` (default `None`: the
    /// key in `api` is used throughout, and a `401` is final).
    pub credential: Option<CredentialRefresh>,
}

impl JobConfig {
    /// A configuration with the defaults and the given API settings.
    pub fn new(api: ApiBase) -> Self {
        JobConfig {
            api,
            poll_interval: Duration::from_secs(60),
            adaptive_polling: false,
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
            credential: None,
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
    /// Get a fresh credential from the user's
    /// [`CredentialSource`](crate::credential::CredentialSource) and hand it
    /// over with [`Job::set_credential`](super::Job::set_credential) (or the
    /// source's failure with
    /// [`Job::handle_credential_failure`](super::Job::handle_credential_failure))
    /// before calling `poll` again. Only with [`JobConfig::credential`] set.
    /// Exchanges in flight go on meanwhile; nothing new is sent until the
    /// answer.
    RefreshCredential {
        /// Why: for logs.
        reason: RefreshReason,
    },
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
    /// Its `custom_id`. Empty when the result has no server line and the
    /// plan was built [`without_ids`](crate::job::PlanBuilder::without_ids):
    /// the caller then reads it from its shard file, by `shard` and `index`.
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

/// Reading a result in one step: every accessor below works on any outcome
/// and answers `None` (or an empty slice) where it does not apply.
///
/// ```
/// # use batch_core::job::{JobResult, ResultStatus};
/// # fn show(result: &JobResult) {
/// match result.status() {
///     ResultStatus::Succeeded { content } => println!("{}: {}", result.custom_id(), content.unwrap_or("")),
///     ResultStatus::Failed { code, message, .. } => {
///         println!("{} failed: {} {}", result.custom_id(), code.unwrap_or("-"), message.unwrap_or(""))
///     }
///     ResultStatus::NotProcessed { code, is_final, .. } => {
///         println!("{} not processed ({code}; final: {is_final})", result.custom_id())
///     }
/// }
/// # }
/// ```
impl JobResult {
    /// The request's `custom_id`.
    pub fn custom_id(&self) -> &str {
        &self.custom_id
    }

    /// Whether the request ran and the API answered 2xx.
    pub fn is_success(&self) -> bool {
        matches!(self.outcome, JobOutcome::Succeeded(_))
    }

    /// Whether this outcome is the request's last word: `true` for a
    /// succeeded or failed request and for a final not-processed code;
    /// `false` for a provisional one (see [`ResultStatus`]), which a resumed
    /// job replaces with the real outcome.
    pub fn is_final(&self) -> bool {
        match &self.outcome {
            JobOutcome::Succeeded(_) | JobOutcome::Failed(_) => true,
            JobOutcome::NotProcessed(np) => np.is_final(),
        }
    }

    /// What became of the request, as one enum with the three cases and
    /// their details; the table on [`ResultStatus`] lists every code.
    pub fn status(&self) -> ResultStatus<'_> {
        match &self.outcome {
            JobOutcome::Succeeded(rec) => ResultStatus::Succeeded {
                content: rec.content(),
            },
            JobOutcome::Failed(rec) => {
                let f = rec.failure();
                ResultStatus::Failed {
                    code: f.and_then(|f| f.code.as_deref()),
                    message: f.and_then(|f| f.message.as_deref()),
                    status_code: f.and_then(|f| f.status_code),
                }
            }
            JobOutcome::NotProcessed(np) => ResultStatus::NotProcessed {
                code: &np.code,
                message: &np.message,
                is_final: np.is_final(),
            },
        }
    }

    /// The success's record, if the request succeeded.
    fn success(&self) -> Option<&Success> {
        match &self.outcome {
            JobOutcome::Succeeded(rec) => rec.success(),
            _ => None,
        }
    }

    /// The generated text of a success: the chat message's `content`, the
    /// Responses API's `output_text` parts joined, or a completion's `text`.
    /// `None` for a failure, a request not processed, an embeddings body, or
    /// a reply with no text (a refusal, or only tool calls).
    pub fn content(&self) -> Option<&str> {
        match &self.outcome {
            JobOutcome::Succeeded(rec) => rec.content(),
            _ => None,
        }
    }

    /// [`content`](Self::content) with a surrounding markdown code fence
    /// (`` ```json ... ``` ``) removed and trimmed (see
    /// [`strip_fences`](crate::results::strip_fences)).
    pub fn content_unfenced(&self) -> Option<&str> {
        self.content().map(strip_fences)
    }

    /// The content parsed as JSON, fences removed; `None` when there is no
    /// content or it is not JSON. To read it into a type of your own, use
    /// [`parse`](Self::parse).
    pub fn json(&self) -> Option<&Value> {
        match &self.outcome {
            JobOutcome::Succeeded(rec) => rec.json(),
            _ => None,
        }
    }

    /// The content, fences removed, deserialized into `T`: the usual way to
    /// read a structured-output (`json_schema`) reply.
    ///
    /// ```
    /// # use batch_core::job::JobResult;
    /// #[derive(serde::Deserialize)]
    /// struct Verdict { label: String, score: f64 }
    ///
    /// # fn read(result: &JobResult) -> Result<(), batch_core::job::ParseError> {
    /// let verdict: Verdict = result.parse()?;
    /// println!("{}: {} ({})", result.custom_id(), verdict.label, verdict.score);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// A [`ParseError`] naming the `custom_id` and why
    /// ([`ParseErrorKind`]): the request did not succeed, the reply has no
    /// text, the text is not JSON, or the JSON does not match `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ParseError> {
        let fail = |kind| ParseError {
            custom_id: self.custom_id.clone(),
            kind,
        };
        if !self.is_success() {
            let why = match self.status() {
                ResultStatus::Failed { code, message, .. } => {
                    format!("it failed: {}", join_code(code, message))
                }
                ResultStatus::NotProcessed { code, message, .. } => {
                    format!("it was not processed: {code}: {message}")
                }
                ResultStatus::Succeeded { .. } => String::new(),
            };
            return Err(fail(ParseErrorKind::NotSucceeded(why)));
        }
        let Some(text) = self.content_unfenced() else {
            return Err(fail(ParseErrorKind::NoContent));
        };
        serde_json::from_str(text).map_err(|e| {
            let kind = match e.classify() {
                serde_json::error::Category::Data => ParseErrorKind::Mismatch(e.to_string()),
                _ => ParseErrorKind::NotJson(e.to_string()),
            };
            fail(kind)
        })
    }

    /// Why generation stopped (`stop`, `length`, tool calls, ...), for a
    /// success whose body says.
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.success()?.finish_reason()
    }

    /// Token usage of a success, normalised across endpoints.
    pub fn usage(&self) -> Option<Usage> {
        self.success()?.usage
    }

    /// The tool (function) calls the model made; empty when it made none.
    /// Each has the call's id, the function name and its arguments as the
    /// JSON text the model wrote.
    pub fn tool_calls(&self) -> &[ToolCall] {
        match self.finish_reason() {
            Some(FinishReason::ToolCalls(calls)) => calls,
            Some(FinishReason::FunctionCall(Some(call))) => std::slice::from_ref(call),
            _ => &[],
        }
    }

    /// The model's refusal text, if it refused.
    pub fn refusal(&self) -> Option<&str> {
        self.success()?.refusal()
    }

    /// The embedding vectors of a `/v1/embeddings` success, in input order
    /// (base64 ones decoded); `None` for any other body, or if a vector is
    /// missing or undecodable.
    pub fn embeddings(&self) -> Option<Vec<Vec<f32>>> {
        match &self.outcome {
            JobOutcome::Succeeded(rec) => rec.embeddings()?.vectors(),
            _ => None,
        }
    }

    /// Why the request did not succeed: the error's code and message for a
    /// failed or not-processed request, `None` for a success.
    pub fn error(&self) -> Option<ResultError<'_>> {
        match self.status() {
            ResultStatus::Succeeded { .. } => None,
            ResultStatus::Failed {
                code,
                message,
                status_code,
            } => Some(ResultError {
                code,
                message,
                status_code,
                processed: true,
            }),
            ResultStatus::NotProcessed { code, message, .. } => Some(ResultError {
                code: Some(code),
                message: Some(message),
                status_code: None,
                processed: false,
            }),
        }
    }

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

/// What became of a request, as [`JobResult::status`] reports it: the three
/// cases, each with its details, in one enum.
///
/// # Codes
///
/// A failed request carries the API's own error `code` (for example
/// `model_not_found`, `invalid_api_key`, `rate_limit_exceeded`,
/// `missing_required_parameter`, or none: a 5xx `server_error` often has
/// no code); the HTTP status is in `status_code`. A request not processed
/// carries one of these codes:
///
/// | code | final | meaning |
/// | --- | --- | --- |
/// | `batch_expired` | yes | the batch reached its completion window before the request ran |
/// | `batch_cancelled` | yes | the batch was cancelled before the request ran |
/// | `batch_failed` | yes | the batch failed (for example its input file was refused) |
/// | `token_limit_exceeded` | yes | the batch was refused for the enqueued-token limit more times than `max_requeues` allows |
/// | the batch's validation code for the line (e.g. `invalid_request`) | yes | the batch failed validation at this request's line |
/// | `missing_result` | yes | the batch finished without a result line for the request |
/// | `unreadable_result` | yes | the request's result line could not be read |
/// | `upload_failed` | yes | the shard's input file could not be uploaded |
/// | `create_failed` | yes | the shard's batch could not be created |
/// | `job_cancelled` | yes | the job was cancelled before the request's batch existed |
/// | `not_processed` | yes | the batch ended the request with an error line that had no code |
/// | `job_stopped` | no | a job-wide error stopped the job (a refused key, a driver misuse) |
/// | `gave_up` | no | retries ran out (the server stayed unreachable) |
/// | `timed_out` | no | the job's maximum wait passed |
/// | `batch_unavailable` | no | the batch could not be read |
/// | `create_unknown` | no | Message Batches: a create's answer was lost and the batch it may have made could not be told apart from others (the message names them) |
/// | `batch_unconfirmed` | no | Message Batches: a batch found after a lost create answer could not be confirmed as the shard's by its results (the message names it) |
///
/// A code that is not final is provisional: the job stopped waiting, and a
/// resumed job can still deliver the request's real outcome (see
/// [`NotProcessed::PROVISIONAL`]).
///
/// The three cases are the whole model, so a `match` needs no catch-all arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultStatus<'a> {
    /// The request ran and the API answered 2xx.
    Succeeded {
        /// The generated text, if any (see [`JobResult::content`]).
        content: Option<&'a str>,
    },
    /// The request ran and failed.
    Failed {
        /// The API's error code, if it sent one.
        code: Option<&'a str>,
        /// The API's error message, if it sent one.
        message: Option<&'a str>,
        /// The HTTP status of the request's response, if it got one.
        status_code: Option<u16>,
    },
    /// The request did not run, or its outcome is not known yet.
    NotProcessed {
        /// Why: a code from the table above.
        code: &'a str,
        /// A sentence for people.
        message: &'a str,
        /// Whether this is the request's last word (`false` for the
        /// provisional codes).
        is_final: bool,
    },
}

/// Why a request did not succeed, from [`JobResult::error`].
///
/// Displayed as `code: message` (with the HTTP status first when the
/// request got a response), for logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResultError<'a> {
    /// The code: the API's error code for a failed request (when it sent
    /// one), or a not-processed code (always set; see [`ResultStatus`]).
    pub code: Option<&'a str>,
    /// The message, when there is one.
    pub message: Option<&'a str>,
    /// The HTTP status of a failed request's response.
    pub status_code: Option<u16>,
    /// Whether the request ran (`true`: it failed; `false`: not processed).
    pub processed: bool,
}

impl std::fmt::Display for ResultError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(s) = self.status_code {
            write!(f, "status {s}: ")?;
        }
        f.write_str(&join_code(self.code, self.message))
    }
}

/// `code: message`, with whichever part exists.
fn join_code(code: Option<&str>, message: Option<&str>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_owned(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => "no error code or message".to_owned(),
    }
}

/// [`JobResult::parse`] could not read the reply into the caller's type.
///
/// Displayed as `result "q1": the reply is not JSON: expected value at line 1 column 1`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("result {custom_id:?}: {kind}")]
#[non_exhaustive]
pub struct ParseError {
    /// The result's `custom_id`.
    pub custom_id: String,
    /// Why.
    pub kind: ParseErrorKind,
}

/// Why [`JobResult::parse`] failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The request failed or was not processed; the text says how.
    #[error("there is no reply to parse: {0}")]
    NotSucceeded(String),
    /// The request succeeded without generated text (a refusal, only tool
    /// calls, or an embeddings body).
    #[error("the reply has no text")]
    NoContent,
    /// The text (fences removed) is not JSON; serde's reason.
    #[error("the reply is not JSON: {0}")]
    NotJson(String),
    /// The text is JSON that does not match the type; serde's reason.
    #[error("the reply does not match the type: {0}")]
    Mismatch(String),
}

/// What became of one request. Every request ends in exactly one of these.
/// [`JobResult::status`] reads it in one step.
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
    /// `batch_unavailable` (the batch could not be read), and for Message
    /// Batches `create_unknown` (a create's answer was lost and the batch
    /// it may have made cannot be told apart from others) and
    /// `batch_unconfirmed` (a batch found after a lost create answer could
    /// not be confirmed as the shard's; see [`crate::anthropic`]). The table on
    /// [`ResultStatus`] says what each one means.
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

impl NotProcessed {
    /// The codes of outcomes that stand in for a request the job stopped
    /// waiting for; a resumed job replaces them with the real outcome.
    pub const PROVISIONAL: [&'static str; 6] = [
        "job_stopped",
        "gave_up",
        "timed_out",
        "batch_unavailable",
        "create_unknown",
        "batch_unconfirmed",
    ];

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
    /// Input tokens written to the prompt cache, where reported
    /// (Anthropic's `cache_creation_input_tokens`).
    #[serde(default)]
    pub cache_creation_tokens: u64,
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
