//! The Job: a state machine that runs a whole batch job, from planned shards
//! to one outcome per request.
//!
//! Rules of this module:
//! 1. Every transition of the job lives in this file. The other files of
//!    `job/` hold plain data (plan, checkpoint, public types) and the
//!    download bookkeeping; none of them decides what happens next.
//! 2. Nothing here reads a clock or does IO. Time comes in as `now`; bytes
//!    come in through `handle_*`; requests leave through [`Step::Send`].
//! 3. A shard's next operation is derived from its state (file id? batch id?
//!    terminal status? files left to download?), never stored as a "next
//!    step" field. That is what makes resume from a checkpoint trivial: the
//!    checkpoint is the state.
//! 4. Every operation with an outside effect (upload, create) is armed and
//!    persisted before it is sent. An armed effect found in a checkpoint
//!    means "may have happened": the job looks for its result (files by name,
//!    batches by metadata, Message Batches by size and then by their
//!    results: see [`crate::anthropic`]) before it would do it again.
//! 5. Every exchange is bounded, and the job is the judge: an attempt cap
//!    that counts any answer not read as what was asked for (an HTML 200
//!    too), a deadline and a stall rule per exchange, and a cap on a body
//!    against the size the server declared (a result file's object is read
//!    before its content). Transports only report bytes and time, and drop
//!    what the job aborts.
//!
//! Phases of a shard:
//!
//! ```text
//!   upload ──► create ──► poll ◄─┐──► download output ──► download errors ──► finish
//!     │  ▲       │  ▲       │    │         (Range resume on cut-off)            │
//!     ▼  │       ▼  │       └────┘                                              ▼
//!  find file   find batch      (token_limit_exceeded: wait, create again)   not-processed
//!  (unknown     (unknown                                                     outcomes for
//!   outcome)     outcome)                                                    every id unseen
//! ```
//!
//! A job whose provider speaks Anthropic's Message Batches
//! ([`Protocol::AnthropicMessageBatches`]) has no upload: its shards go
//! create ──► poll ──► download results ──► finish, the create's body
//! streamed from the shard (see [`crate::anthropic`]).

mod by_id;
mod cadence;
mod checkpoint;
mod client_config;
mod download;
mod io;
mod memory;
mod ops;
mod plan;
mod settings;
mod store;
mod types;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

pub use crate::error::ClientError;
pub use by_id::{
    FileDownload, cancel_batch_request, check_file_download, list_batches_request,
    parse_batch_answer, parse_batch_list_answer, retrieve_batch_request,
};
pub use checkpoint::{CHECKPOINT_VERSION, Checkpoint, EffectState, ShardCheckpoint, Tally};
pub use client_config::{ClientConfig, ClientSettings, ManualClock, Proxy};
pub use io::JobIo;
pub use memory::{BatchJob, BatchOptions, JobEndError, MemoryIo, api_config_from_env};
pub use ops::{JobOp, JobStatus};
pub use plan::{JobPlan, Placement, PlanBuilder, PlanDigest, ShardLimits, ShardPlan};
pub use settings::{
    MAX_USER_METADATA_PAIRS, RESERVED_METADATA_KEYS, SettingsError, check_window,
    parse_completion_window, validate_expires_after, validate_metadata,
};
pub use store::{
    JobStore, OutcomeReader, OutcomesHead, STORED_JOB_VERSION, STORED_OUTCOMES_VERSION, StoreError,
    StoredJob, StoredOutcome, StoredSource, is_plain_name,
};
pub use store::{ShardHash, StoredProvider, StoredShardFile};
pub use types::{
    ExchangeContext, ExchangeId, ExchangeLimits, FailureKind, JobConfig, JobEvent, JobOutcome,
    JobResult, JobSummary, NotProcessed, OnTimeout, ShardEnd, ShardSummary, Step, StopAfter,
    TransportFailure, UsageError, UsageTotals, WaitReason,
};
pub use types::{ParseError, ParseErrorKind, ResultError, ResultStatus};

use crate::anthropic;
use crate::api::{
    self, ApiError, Batch, BatchStatus, CreateBatch, ExpiresAfter, FilePurpose, ListBatches,
    ListFiles, Outgoing, RequestCounts, ShardRef, UploadFile,
};
use crate::credential::RefreshReason;
use crate::provider::Protocol;
use crate::results::{Failure, Outcome, ResultRecord};
use crate::retry::{JitterRng, StatusClass, classify_status, retry_after};
use crate::time::UnixMillis;
use download::{Download, DownloadEvent};

/// Metadata key naming the job on each batch it creates.
pub const META_JOB: &str = "openai_batch_job";
/// Metadata key naming the shard on each batch.
pub const META_SHARD: &str = "openai_batch_shard";
/// Metadata key naming the create attempt on each batch.
pub const META_ATTEMPT: &str = "openai_batch_attempt";

/// How many pages of `GET /batches` or `GET /files` are searched when
/// looking for the result of a create or upload whose outcome is unknown.
const MAX_RECONCILE_PAGES: u32 = 50;

/// How far before a lost create's arming a Message Batch may say it was
/// created and still be a candidate (the server's clock is not ours).
const RECONCILE_SKEW_SECS: i64 = 15 * 60;

/// How many found batches a shard reads and refutes before it stops and
/// asks the user (each costs a read of that batch's results).
const MAX_REFUTED: usize = 32;

/// A whole batch job as a state machine.
///
/// # Driver contract
/// - Call [`poll`](Self::poll) and act on each [`Step`]; after any `handle_*`
///   call, call `poll` again until it returns `Send`, `Wait` or `Done`.
/// - For each `Step::Send`, report exactly one of: `handle_head` followed by
///   any number of `handle_body` and one `handle_end`; or `handle_failure`
///   (at any point, also after `handle_head`). Before the head, any number
///   of [`handle_sent`](Self::handle_sent) may report the request body
///   going out.
/// - On `Step::Abort(id)`, stop exchange `id` and report nothing more on
///   it; reports that still come are ignored. The job aborts an exchange
///   that breaks its [`ExchangeLimits`] (deadline, stall rule, declared
///   size), judged on each `poll`; a `Wait` never lets the next judgement
///   pass, so a driver that waits for reports with the `Wait`'s deadline
///   as its timeout needs nothing else.
/// - Drain every [`BodyFeed`] before the next chunk (undrained results come
///   out of `poll` as [`Step::Result`], so nothing is lost either way).
/// - `now` must not go backwards; if it does, the job clamps it. Waking up
///   early or late is harmless.
/// - On `Step::RefreshCredential`, answer with [`set_credential`](Self::set_credential)
///   or [`handle_credential_failure`](Self::handle_credential_failure)
///   before the next `poll` (see [`crate::credential`]).
/// - On `Step::Persist`, first make every result delivered so far durable,
///   then store the checkpoint. Results are keyed by request index, so a
///   resumed job that delivers a shard's results again overwrites them.
#[derive(Debug)]
pub struct Job {
    cfg: JobConfig,
    plan: JobPlan,
    created_at: UnixMillis,
    deadline: Option<UnixMillis>,
    now: UnixMillis,
    rng: JitterRng,
    next_exchange: u64,
    shards: Vec<Shard>,
    inflight: BTreeMap<ExchangeId, Inflight>,
    /// Exchanges cut by the job ([`Step::Abort`]): their late reports are ignored.
    aborted: BTreeSet<ExchangeId>,
    /// Results of a body not yet taken from a `BodyFeed`.
    fed: VecDeque<JobResult>,
    /// Events and synthesized results waiting to be returned by `poll`.
    out: VecDeque<Step>,
    dirty: bool,
    cancel_requested: bool,
    timed_out: bool,
    fatal: Option<String>,
    poisoned: bool,
    cursor: usize,
    done: bool,
    /// Batches said to have changed ([`Job::handle_batch_changed`]) before
    /// the job knew them, or while their poll was in flight: their next
    /// non-terminal answer is followed by a poll at once. Bounded by
    /// [`MAX_PENDING_HINTS`], oldest dropped.
    hints: VecDeque<String>,
    /// The credential, when it expires ([`JobConfig::credential`]).
    credential: CredentialState,
}

/// What the job knows of a credential that expires ([`JobConfig::credential`]).
#[derive(Debug, Default)]
struct CredentialState {
    /// Whether [`Job::set_credential`] gave one.
    set: bool,
    /// Counts the credentials given: an exchange remembers the one it was
    /// sent with, so a `401` on an older one is simply sent again.
    generation: u64,
    /// When to ask for the next one, before it expires.
    refresh_at: Option<UnixMillis>,
    expires_at: Option<UnixMillis>,
    /// A `401` on the current one: ask at the next poll.
    refused: bool,
    /// Asked for with [`Step::RefreshCredential`], not answered yet.
    asking: Option<RefreshReason>,
    /// The current one came after a `401`, and no answer has accepted it yet.
    after_refusal: bool,
    /// Asked for in a row without an answer accepting one in between.
    in_row: u32,
}

/// How many hints for batches the job does not know (yet) it remembers.
const MAX_PENDING_HINTS: usize = 64;

#[derive(Debug)]
struct Shard {
    plan: ShardPlan,
    file_id: Option<String>,
    upload: Effect,
    batch_id: Option<String>,
    create_attempt: u32,
    create: Effect,
    requeues: u32,
    status: Option<BatchStatus>,
    counts: Option<RequestCounts>,
    batch: Option<Batch>,
    cancel_sent: bool,
    /// Set when a status poll has happened since (re)start, for `StopAfter::Polled`.
    polled: bool,
    /// Files still to download, in order.
    downloads: VecDeque<String>,
    /// The download in progress (kept across interruptions for Range resume).
    download: Option<Download>,
    /// Which requests of the shard have an outcome.
    seen: BitSet,
    tally: Tally,
    /// No operation before this instant.
    not_before: UnixMillis,
    wait_reason: Option<WaitReason>,
    /// Consecutive failed attempts of the current operation.
    attempts: u32,
    /// When the current run of failed attempts began (set with the first).
    failing_since: UnixMillis,
    /// Reconciliation cursor (`after`) and pages searched.
    search_after: Option<String>,
    search_pages: u32,
    /// Emitting not-processed outcomes for the ids not seen: next offset in the shard.
    finishing: Option<Finishing>,
    /// The batch's first error, once it failed.
    error: Option<String>,
    end: Option<ShardEnd>,
    started: bool,
    /// When the last create was armed (checkpointed: a Message Batch is
    /// looked for among the batches created since).
    create_armed_at: Option<UnixMillis>,
    /// Message Batches: `batch_id` was found, not created, and is not yet
    /// confirmed as this shard's by its results (checkpointed).
    unconfirmed: bool,
    /// Message Batches: the candidates of a search in progress.
    candidates: Vec<anthropic::MessageBatch>,
    /// Message Batches: the search in progress skipped a batch of the
    /// shard's size that another shard follows unconfirmed.
    search_followed: bool,
    /// Message Batches: batches found after a lost create answer whose
    /// results showed they are not this shard's (checkpointed).
    refuted: Vec<String>,
    /// Message Batches: what the confirming read of an unconfirmed batch's
    /// results found so far.
    confirm: Option<Confirm>,
    /// When to poll next, with adaptive polling.
    cadence: cadence::Cadence,
}

/// The confirming read of a found Message Batch's results.
#[derive(Debug)]
struct Confirm {
    /// The shard's requests that have a line.
    seen: BitSet,
    matched: u64,
    /// The first `custom_id` that is not the shard's, if any.
    foreign: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Idle,
    /// Persisted as maybe-sent, about to be sent.
    Armed,
    InFlight,
    /// May have happened: look before doing it again.
    Unknown,
}

#[derive(Debug)]
struct Finishing {
    next: u64,
    code: String,
    message: String,
    end: ShardEnd,
    /// Per-line reasons from a failed batch's validation errors (offset in shard → reason).
    per_line: BTreeMap<u64, NotProcessed>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Upload,
    FindUpload,
    Create,
    FindBatch,
    Poll,
    Cancel,
    /// Reads a result file's object, for the size that caps its download.
    FileInfo {
        file_id: String,
    },
    Download {
        file_id: String,
    },
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Upload => "upload",
            Op::FindUpload => "find upload",
            Op::Create => "create",
            Op::FindBatch => "find batch",
            Op::Poll => "poll",
            Op::Cancel => "cancel",
            Op::FileInfo { .. } => "file info",
            Op::Download { .. } => "download",
        }
    }
    fn has_effect(&self) -> bool {
        matches!(self, Op::Upload | Op::Create)
    }
    /// Whether the operation only reads (so an odd status is worth another try).
    fn is_read(&self) -> bool {
        matches!(
            self,
            Op::FindUpload | Op::FindBatch | Op::Poll | Op::FileInfo { .. } | Op::Download { .. }
        )
    }
}

#[derive(Debug)]
struct Inflight {
    shard: usize,
    op: Op,
    head: Option<http::response::Parts>,
    body: Vec<u8>,
    too_large: bool,
    /// Past this instant the exchange is cut.
    deadline: UnixMillis,
    /// How long it was allowed, for the message when it is cut.
    allowed: Duration,
    /// Whether the stall rule applies yet (an upload's answer has not
    /// begun while its body goes out, unless the driver reports it going).
    watch_stall: bool,
    /// The request body's length, and how much of it the driver reported sent.
    to_send: u64,
    sent: u64,
    /// The current stall window began here and has seen this many bytes.
    window_start: UnixMillis,
    window_bytes: u64,
    /// The credential it was sent with ([`CredentialState::generation`]).
    credential: u64,
}

/// Why the job cut an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Deadline,
    Stalled,
    TooLarge,
}

/// Results decoded from one body chunk, lent to the transport.
///
/// Drain it with [`next_result`](Self::next_result) before feeding the next
/// chunk. Results left in it are not lost: `poll` returns them as
/// [`Step::Result`].
#[must_use = "drain the feed before reading the next chunk"]
#[derive(Debug)]
pub struct BodyFeed<'a> {
    job: &'a mut Job,
}

impl BodyFeed<'_> {
    /// The next result decoded from the chunk, if any.
    pub fn next_result(&mut self) -> Option<JobResult> {
        self.job.fed.pop_front()
    }
}

impl Iterator for BodyFeed<'_> {
    type Item = JobResult;
    fn next(&mut self) -> Option<JobResult> {
        self.next_result()
    }
}

/// Why a job could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The input is invalid; nothing was sent. Displayed as the input
    /// error itself: `items:3: field `custom_id`: duplicate value ...`.
    #[error(transparent)]
    Input(#[from] crate::error::InputError),
    /// The checkpoint cannot be resumed.
    #[error("cannot resume: {0}")]
    Resume(ResumeError),
    /// The driver called the job out of order.
    #[error("driver contract violated: {0}")]
    Usage(UsageError),
    /// A single request could not be built or its answer was refused.
    /// Displayed as the API's status, code and message.
    #[error(transparent)]
    Response(#[from] crate::api::ResponseError),
    /// No API key was given.
    #[error("OPENAI_API_KEY is not set")]
    MissingKey,
}

impl From<ResumeError> for JobError {
    fn from(e: ResumeError) -> Self {
        JobError::Resume(e)
    }
}

impl From<UsageError> for JobError {
    fn from(e: UsageError) -> Self {
        JobError::Usage(e)
    }
}

/// Why a checkpoint cannot be resumed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// The checkpoint was written by another format version.
    #[error("checkpoint version {found} is not supported (expected {expected})")]
    Version {
        /// Found.
        found: u32,
        /// Supported.
        expected: u32,
    },
    /// The plan given is not the plan the checkpoint was made for.
    #[error(
        "the input does not match the checkpoint (job {job_id}): it changed since the job started"
    )]
    PlanMismatch {
        /// The job.
        job_id: String,
    },
    /// A finished shard's saved counts are more than its requests: the
    /// checkpoint was damaged.
    #[error(
        "the checkpoint of job {job_id} is damaged: shard {shard} counts {counted} outcomes for {requests} requests"
    )]
    Damaged {
        /// The job.
        job_id: String,
        /// The shard.
        shard: u32,
        /// Outcomes its tally counts.
        counted: u64,
        /// Its requests.
        requests: u64,
    },
}

impl Job {
    /// A new job for `plan`, started at `now`.
    pub fn new(cfg: JobConfig, plan: JobPlan, now: UnixMillis) -> Job {
        let mut shards: Vec<Shard> = plan
            .shards()
            .iter()
            .map(|p| Shard::new(p.clone()))
            .collect();
        // A by-id plan's one shard starts at the poll phase.
        if let (Some(batch_id), Some(sh)) = (plan.batch_id(), shards.first_mut()) {
            sh.batch_id = Some(batch_id.to_owned());
        }
        let deadline = cfg.max_wait.map(|w| now.saturating_add(w));
        let rng = JitterRng::new(cfg.seed);
        Job {
            cfg,
            plan,
            created_at: now,
            deadline,
            now,
            rng,
            next_exchange: 1,
            shards,
            inflight: BTreeMap::new(),
            aborted: BTreeSet::new(),
            fed: VecDeque::new(),
            out: VecDeque::new(),
            dirty: true,
            cancel_requested: false,
            timed_out: false,
            fatal: None,
            poisoned: false,
            cursor: 0,
            done: false,
            hints: VecDeque::new(),
            credential: CredentialState::default(),
        }
    }

    /// Continues a job from its last persisted checkpoint, given the same plan.
    ///
    /// Shards whose results were all delivered stay finished. Shards that
    /// were stopped (timeout, repeated failures) are picked up again. An
    /// upload or create that may have been sent is looked for before it is
    /// done again. A shard interrupted while downloading downloads its
    /// results again (they are keyed by request index, so a sink overwrites
    /// them). Waits (backoff, requeue, the next poll) and the job's deadline
    /// survive: with a `max_wait` in `cfg`, the deadline recorded in the
    /// checkpoint still holds, unless it has passed, in which case the new
    /// `max_wait` counts from `now`.
    ///
    /// # Errors
    /// Fails if the checkpoint's version is unknown or `plan` is not the
    /// plan it was made for.
    pub fn resume(
        cfg: JobConfig,
        plan: JobPlan,
        cp: Checkpoint,
        now: UnixMillis,
    ) -> Result<Job, ResumeError> {
        if cp.version != CHECKPOINT_VERSION {
            return Err(ResumeError::Version {
                found: cp.version,
                expected: CHECKPOINT_VERSION,
            });
        }
        if cp.job_id != plan.job_id()
            || cp.plan != plan.digest()
            || cp.shards.len() != plan.shards().len()
        {
            return Err(ResumeError::PlanMismatch { job_id: cp.job_id });
        }
        let mut job = Job::new(cfg, plan, now);
        if job.deadline.is_some() {
            if let Some(saved) = cp.deadline.filter(|d| *d > now) {
                job.deadline = Some(saved);
            }
        }
        job.created_at = cp.created_at;
        job.rng = cp.rng;
        job.cancel_requested = cp.cancel_requested;
        // A status poll reads every batch now, not at its next scheduled poll.
        let poll_now = job.cfg.stop_after == StopAfter::Polled;
        let anthropic = job.anthropic();
        for (shard, saved) in job.shards.iter_mut().zip(cp.shards) {
            shard.file_id = saved.file_id;
            shard.upload = effect_from(saved.upload);
            shard.batch_id = saved.batch_id;
            shard.create_attempt = saved.create_attempt;
            shard.create = effect_from(saved.create);
            shard.requeues = saved.requeues;
            shard.status = saved.status;
            shard.counts = saved.counts;
            shard.cancel_sent = saved.cancel_sent;
            if !poll_now {
                shard.not_before = saved.not_before;
                if shard.batch_id.is_some() {
                    // The next poll of a running batch comes no later than the
                    // resumed job's poll interval (which may be shorter).
                    shard.not_before = shard
                        .not_before
                        .min(now.saturating_add(job.cfg.poll_interval));
                }
            }
            shard.error = saved.error;
            shard.create_armed_at = saved.create_armed_at;
            shard.unconfirmed = saved.unconfirmed;
            shard.refuted = saved.refuted;
            shard.started = shard.file_id.is_some()
                || shard.upload != Effect::Idle
                || (anthropic && (shard.batch_id.is_some() || shard.create != Effect::Idle));
            match saved.end {
                Some(ShardEnd::Stopped) | None => {
                    // Resumed: if the batch had reached a terminal status, polling
                    // it again finds that status and the files to download.
                    shard.status = shard.status.take().filter(|s| !s.is_terminal());
                }
                Some(end) => {
                    let t = &saved.tally;
                    let counted = t
                        .succeeded
                        .saturating_add(t.failed)
                        .saturating_add(t.not_processed);
                    if counted > shard.plan.requests {
                        return Err(ResumeError::Damaged {
                            job_id: cp.job_id,
                            shard: shard.plan.index,
                            counted,
                            requests: shard.plan.requests,
                        });
                    }
                    shard.end = Some(end);
                    shard.tally = saved.tally;
                }
            }
        }
        Ok(job)
    }

    /// The plan this job runs.
    pub fn plan(&self) -> &JobPlan {
        &self.plan
    }

    /// The job's configuration.
    pub fn config(&self) -> &JobConfig {
        &self.cfg
    }

    /// Asks the job to cancel: batches already created are cancelled (their
    /// partial results are still collected), shards not yet submitted are
    /// reported as not processed.
    pub fn cancel(&mut self, now: UnixMillis) {
        self.tick(now);
        if !self.cancel_requested {
            self.cancel_requested = true;
            self.dirty = true;
            self.hurry_polls();
        }
    }

    /// Brings forward every shard that only waits for its next poll (not a
    /// backoff), so that a cancel goes out now.
    fn hurry_polls(&mut self) {
        let now = self.now;
        for sh in &mut self.shards {
            if matches!(sh.wait_reason, None | Some(WaitReason::PollBatch { .. })) {
                sh.not_before = sh.not_before.min(now);
            }
        }
    }

    /// An outside source (a verified webhook, see [`crate::webhook`]) says
    /// that batch `batch_id` changed: its shard's next poll is due now
    /// instead of at the next poll interval. With webhooks, the poll interval
    /// can be long (a safety net) without delaying results.
    ///
    /// Returns whether the batch is one of this job's. Ids of other batches
    /// are ignored (one webhook endpoint hears about every batch of the
    /// project), except that the job remembers a few of them in case one is
    /// the answer to a create still in flight. Duplicate and late hints are
    /// harmless: a batch already known to have ended, or one backing off
    /// after a failed request, is left as it is, and a hint that comes while
    /// the batch's poll is in flight is followed by a second poll if that
    /// answer still shows it running. Nothing here is persisted.
    ///
    /// Call after: a verified webhook arrives; then call [`poll`](Self::poll).
    pub fn handle_batch_changed(&mut self, batch_id: &str, now: UnixMillis) -> bool {
        self.tick(now);
        let now = self.now;
        let mut matched = false;
        let mut remember = false;
        for (i, sh) in self.shards.iter_mut().enumerate() {
            if sh.batch_id.as_deref() != Some(batch_id) || sh.end.is_some() {
                continue;
            }
            matched = true;
            if sh.status.as_ref().is_some_and(BatchStatus::is_terminal) {
                continue;
            }
            if self.inflight.values().any(|e| e.shard == i) {
                remember = true;
            } else if matches!(sh.wait_reason, None | Some(WaitReason::PollBatch { .. })) {
                sh.not_before = sh.not_before.min(now);
            }
        }
        if (remember || !matched) && !self.hints.iter().any(|h| h == batch_id) {
            if self.hints.len() == MAX_PENDING_HINTS {
                self.hints.pop_front();
            }
            self.hints.push_back(batch_id.to_owned());
        }
        matched
    }

    /// What exchange `id`, in flight, is for: its shard, its operation and
    /// its attempt. For logs and traces; `None` once it ended.
    pub fn exchange_context(&self, id: ExchangeId) -> Option<ExchangeContext> {
        let ex = self.inflight.get(&id)?;
        let sh = self.shards.get(ex.shard)?;
        Some(ExchangeContext {
            shard: sh.plan.index,
            op: ex.op.name(),
            attempt: sh.attempts + 1,
        })
    }

    /// Whether the job has returned [`Step::Done`].
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// A snapshot of the durable state.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            job_id: self.plan.job_id().to_owned(),
            plan: self.plan.digest(),
            created_at: self.created_at,
            deadline: self.deadline,
            rng: self.rng.clone(),
            cancel_requested: self.cancel_requested,
            shards: self.shards.iter().map(Shard::checkpoint).collect(),
        }
    }

    /// The summary so far.
    pub fn summary(&self) -> JobSummary {
        let mut s = JobSummary {
            job_id: self.plan.job_id().to_owned(),
            requests: self.plan.len(),
            succeeded: 0,
            failed: 0,
            not_processed: 0,
            usage: UsageTotals::default(),
            bad_lines: 0,
            shards: Vec::with_capacity(self.shards.len()),
            timed_out: self.timed_out,
            cancelled: self.cancel_requested,
            complete: false,
            error: self.fatal.clone(),
        };
        for sh in &self.shards {
            s.succeeded += sh.tally.succeeded;
            s.failed += sh.tally.failed;
            s.not_processed += sh.tally.not_processed;
            s.bad_lines += sh.tally.bad_lines;
            // Token counts come from the server: they saturate, never wrap.
            let u = &mut s.usage;
            u.input_tokens = u.input_tokens.saturating_add(sh.tally.usage.input_tokens);
            u.output_tokens = u.output_tokens.saturating_add(sh.tally.usage.output_tokens);
            u.cached_tokens = u.cached_tokens.saturating_add(sh.tally.usage.cached_tokens);
            u.reasoning_tokens = u
                .reasoning_tokens
                .saturating_add(sh.tally.usage.reasoning_tokens);
            u.cache_creation_tokens = u
                .cache_creation_tokens
                .saturating_add(sh.tally.usage.cache_creation_tokens);
            s.shards.push(sh.summary());
        }
        if self.plan.is_open() {
            // The batch says how many requests it holds; ids without a
            // result line are unknown, so they count as missing.
            s.requests = s.shards.iter().map(|sh| sh.requests).sum();
        }
        s.complete = s.succeeded + s.failed + s.not_processed == s.requests
            && self
                .shards
                .iter()
                .all(|sh| matches!(sh.end, Some(ShardEnd::Finished | ShardEnd::NotSubmitted)));
        s
    }

    /// The next thing the transport must do.
    ///
    /// Call after: creating or resuming the job, any `handle_*`, a `Wait`
    /// elapsing, and after acting on any other step.
    pub fn poll(&mut self, now: UnixMillis) -> Step {
        self.tick(now);
        if self.done {
            return Step::Done(self.summary());
        }
        // Before the persist below: a timeout that cancels is recorded
        // before the first cancel is sent.
        self.check_deadline();
        self.judge_exchanges();
        if let Some(r) = self.fed.pop_front() {
            return Step::Result(r);
        }
        if let Some(step) = self.out.pop_front() {
            return step;
        }
        if self.dirty {
            self.dirty = false;
            return Step::Persist(self.checkpoint());
        }
        if self.poisoned {
            return self.finish_job();
        }
        // Emit not-processed outcomes of finishing shards, one per poll.
        for i in 0..self.shards.len() {
            if let Some(step) = self.finishing_step(i) {
                return step;
            }
        }
        if self.stop_point_reached() {
            return self.finish_job();
        }
        if let Some(step) = self.credential_step() {
            return step;
        }
        if self.credential.asking.is_some() {
            // Nothing new goes out before the credential comes.
            let until = self
                .next_judgement()
                .unwrap_or(UnixMillis(u64::MAX))
                .min(self.now.saturating_add(self.cfg.poll_interval));
            return Step::Wait {
                until: until.max(self.now),
                reason: WaitReason::InFlight,
            };
        }
        self.start_shards();
        let n = self.shards.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            if let Some(step) = self.shard_step(i) {
                self.cursor = (i + 1) % n;
                return step;
            }
        }
        // Anything left to emit from a shard that just decided to finish?
        if let Some(step) = self.out.pop_front() {
            return step;
        }
        if self.dirty {
            self.dirty = false;
            return Step::Persist(self.checkpoint());
        }
        if self.stop_point_reached() {
            return self.finish_job();
        }
        let mut next: Option<(UnixMillis, WaitReason)> = None;
        for (i, sh) in self.shards.iter().enumerate() {
            if sh.end.is_some() || !sh.started || self.shard_busy(i) || self.holds(sh) {
                continue;
            }
            let reason = sh.wait_reason.clone().unwrap_or(WaitReason::PollBatch {
                shard: sh.plan.index,
            });
            if next.as_ref().is_none_or(|(t, _)| sh.not_before < *t) {
                next = Some((sh.not_before, reason));
            }
        }
        if let (Some(deadline), false) = (self.deadline, self.timed_out) {
            if next.as_ref().is_none_or(|(t, _)| deadline < *t) {
                next = Some((deadline, WaitReason::InFlight));
            }
        }
        // Wake in time to judge every exchange in flight.
        if let Some(judge) = self.next_judgement() {
            if next.as_ref().is_none_or(|(t, _)| judge < *t) {
                next = Some((judge, WaitReason::InFlight));
            }
        }
        match next {
            Some((until, reason)) => Step::Wait {
                until: until.max(self.now),
                reason,
            },
            None => Step::Wait {
                until: self.now.saturating_add(self.cfg.poll_interval),
                reason: WaitReason::InFlight,
            },
        }
    }

    /// `bytes` more of the request body of exchange `id` went out.
    ///
    /// Optional: a driver that reports its request bodies lets the stall
    /// rule judge an upload while its body goes out (a server that stops
    /// reading is cut within a [`stall_window`](ExchangeLimits::stall_window)),
    /// and, once the whole body is out, the wait for the answer to begin.
    /// Without these reports an upload is judged by its deadline until its
    /// answer begins. Reports after the head are ignored.
    ///
    /// # Errors
    /// Fails if `id` is not in flight.
    pub fn handle_sent(
        &mut self,
        id: ExchangeId,
        bytes: u64,
        now: UnixMillis,
    ) -> Result<(), UsageError> {
        self.tick(now);
        self.check_poisoned()?;
        if self.aborted.contains(&id) {
            return Ok(());
        }
        let Some(ex) = self.inflight.get_mut(&id) else {
            return self.misuse(UsageError::UnknownExchange(id));
        };
        if ex.head.is_some() {
            return Ok(());
        }
        ex.watch_stall = true;
        ex.sent = ex.sent.saturating_add(bytes);
        ex.window_bytes = ex.window_bytes.saturating_add(bytes);
        if ex.sent >= ex.to_send {
            // All of it is out: the answer must begin within a window.
            ex.window_start = self.now;
            ex.window_bytes = 0;
        }
        Ok(())
    }

    /// The response head of exchange `id` arrived.
    ///
    /// A report on an exchange the job aborted ([`Step::Abort`]) is ignored,
    /// here and in the other `handle_*` calls.
    ///
    /// # Errors
    /// Fails if `id` is not in flight or already has a head.
    pub fn handle_head(
        &mut self,
        id: ExchangeId,
        head: http::response::Parts,
        now: UnixMillis,
    ) -> Result<(), UsageError> {
        self.tick(now);
        self.check_poisoned()?;
        if self.aborted.contains(&id) {
            return Ok(());
        }
        let Some(ex) = self.inflight.get_mut(&id) else {
            return self.misuse(UsageError::UnknownExchange(id));
        };
        if ex.head.is_some() {
            return self.misuse(UsageError::HeadTwice(id));
        }
        let shard_idx = ex.shard;
        let op = ex.op.clone();
        let is_download = matches!(op, Op::Download { .. }) && head.status.is_success();
        ex.head = Some(head);
        // The answer began: the stall rule judges it from here.
        ex.watch_stall = true;
        ex.window_start = self.now;
        ex.window_bytes = 0;
        if is_download {
            let head = self
                .inflight
                .get(&id)
                .and_then(|e| e.head.as_ref())
                .expect("head just stored");
            let sh = &mut self.shards[shard_idx];
            let dl = sh.download.as_mut().expect("a download op has a download");
            if let Some(message) = dl.start_response(head) {
                self.warn(shard_idx, message);
            }
        }
        Ok(())
    }

    /// A chunk of the body of exchange `id` arrived.
    ///
    /// # Errors
    /// Fails if `id` is not in flight, has no head yet, or has ended.
    pub fn handle_body(
        &mut self,
        id: ExchangeId,
        chunk: &[u8],
    ) -> Result<BodyFeed<'_>, UsageError> {
        self.check_poisoned()?;
        if self.aborted.contains(&id) {
            return Ok(BodyFeed { job: self });
        }
        let Some(ex) = self.inflight.get_mut(&id) else {
            return self
                .misuse(UsageError::UnknownExchange(id))
                .map(|()| unreachable!());
        };
        let Some(head) = ex.head.as_ref() else {
            return self
                .misuse(UsageError::BodyBeforeHead(id))
                .map(|()| unreachable!());
        };
        ex.window_bytes = ex.window_bytes.saturating_add(chunk.len() as u64);
        let shard_idx = ex.shard;
        if matches!(ex.op, Op::Download { .. }) && head.status.is_success() {
            let mut events = Vec::new();
            let past = self.shards[shard_idx]
                .download
                .as_mut()
                .is_some_and(|dl| dl.feed(chunk, &mut events));
            self.take_download_events(shard_idx, events);
            if past {
                self.download_past_declared(id);
            }
        } else if ex.too_large || ex.body.len() + chunk.len() > self.cfg.max_json_body {
            // Cut at the next poll; nothing more is kept.
            ex.too_large = true;
        } else {
            ex.body.extend_from_slice(chunk);
        }
        Ok(BodyFeed { job: self })
    }

    /// The body of exchange `id` is complete.
    ///
    /// # Errors
    /// Fails if `id` is not in flight or has no head.
    pub fn handle_end(&mut self, id: ExchangeId, now: UnixMillis) -> Result<(), UsageError> {
        self.tick(now);
        self.check_poisoned()?;
        if self.aborted.remove(&id) {
            return Ok(());
        }
        let Some(ex) = self.inflight.remove(&id) else {
            return self.misuse(UsageError::UnknownExchange(id));
        };
        let Some(head) = ex.head else {
            return self.misuse(UsageError::BodyBeforeHead(id));
        };
        let Inflight {
            shard,
            op,
            body,
            too_large,
            credential,
            ..
        } = ex;
        if self.credential_refused(shard, &op, head.status, credential) {
            return Ok(());
        }
        self.complete(shard, op, head, &body, too_large);
        Ok(())
    }

    /// Exchange `id` failed in the transport (before a head, or mid-body).
    ///
    /// # Errors
    /// Fails if `id` is not in flight.
    pub fn handle_failure(
        &mut self,
        id: ExchangeId,
        failure: TransportFailure,
        now: UnixMillis,
    ) -> Result<(), UsageError> {
        self.tick(now);
        self.check_poisoned()?;
        if self.aborted.remove(&id) {
            return Ok(());
        }
        let Some(ex) = self.inflight.remove(&id) else {
            return self.misuse(UsageError::UnknownExchange(id));
        };
        let kind = if ex.head.is_some() && failure.kind == FailureKind::NotSent {
            FailureKind::BodyInterrupted
        } else {
            failure.kind
        };
        let detail = self.redact(&failure.detail);
        self.transport_failed(ex.shard, ex.op, kind, &detail, ex.head.as_ref());
        Ok(())
    }

    /// The credential to send from now on, valid until `expires_at` (if
    /// known), in answer to [`Step::RefreshCredential`] (or before the
    /// first `poll`, to start with one). A request refused with `401` is
    /// sent again with it. A token that cannot be sent in a header stops
    /// the job, as a failing source does.
    pub fn set_credential(
        &mut self,
        token: crate::api::ApiKey,
        expires_at: Option<UnixMillis>,
        now: UnixMillis,
    ) {
        self.tick(now);
        let now = self.now;
        let reason = self.credential.asking.take();
        if let Err(e) = self.cfg.api.set_key(token) {
            self.stop_for_credential(format!(
                "the credential source gave a token that cannot be sent: {e}"
            ));
            return;
        }
        let margin = self
            .cfg
            .credential
            .as_ref()
            .map_or(Duration::ZERO, |c| c.margin);
        let c = &mut self.credential;
        c.set = true;
        c.refused = false;
        c.generation += 1;
        c.expires_at = expires_at;
        c.after_refusal = reason == Some(RefreshReason::Refused);
        c.refresh_at = expires_at.map(|t| {
            let early = UnixMillis(
                t.as_millis()
                    .saturating_sub(u64::try_from(margin.as_millis()).unwrap_or(u64::MAX)),
            );
            if early > now {
                early
            } else {
                // Already within the margin: replace it half way to its expiry.
                UnixMillis(now.as_millis() + t.as_millis().saturating_sub(now.as_millis()) / 2)
            }
        });
    }

    /// The credential source failed: the job stops, as it does when a key
    /// is refused (every request still gets one outcome; a later run can
    /// resume it).
    pub fn handle_credential_failure(
        &mut self,
        error: &crate::credential::CredentialError,
        now: UnixMillis,
    ) {
        self.tick(now);
        self.credential.asking = None;
        self.stop_for_credential(format!("the credential source failed: {error}"));
    }

    // ----- internals: credentials -----

    fn stop_for_credential(&mut self, message: String) {
        if self.fatal.is_none() {
            self.fatal = Some(self.redact(&message));
        }
        self.dirty = true;
    }

    /// Asks for a credential when the job has none, when the one it has
    /// nears its expiry, or after a `401`.
    fn credential_step(&mut self) -> Option<Step> {
        let max_in_row = self.cfg.credential.as_ref()?.max_in_row;
        if self.fatal.is_some() || self.credential.asking.is_some() {
            return None;
        }
        let now = self.now;
        let c = &mut self.credential;
        let reason = if !c.set {
            RefreshReason::Initial
        } else if c.refused {
            RefreshReason::Refused
        } else if c.refresh_at.is_some_and(|t| now >= t) {
            RefreshReason::Expiring {
                expires_at: c.expires_at.unwrap_or(now),
            }
        } else {
            return None;
        };
        c.refused = false;
        c.in_row += 1;
        if c.in_row > max_in_row {
            let n = c.in_row - 1;
            self.stop_for_credential(format!(
                "gave up on the credential: {n} credentials in a row were refused or about to expire"
            ));
            return None;
        }
        c.asking = Some(reason.clone());
        Some(Step::RefreshCredential { reason })
    }

    /// A `401` on a request sent with a credential the job can replace:
    /// the request is sent again (with a new credential, asked for unless
    /// it already changed), and `true` is returned. A `401` on a credential
    /// that came after a `401` is final, as is one without
    /// [`JobConfig::credential`]: `false`, and the answer is read as usual.
    fn credential_refused(
        &mut self,
        i: usize,
        op: &Op,
        status: http::StatusCode,
        sent_with: u64,
    ) -> bool {
        if self.cfg.credential.is_none() {
            return false;
        }
        let c = &mut self.credential;
        if status != http::StatusCode::UNAUTHORIZED {
            if sent_with == c.generation {
                c.after_refusal = false;
                c.in_row = 0;
            }
            return false;
        }
        if sent_with == c.generation && c.asking.is_none() {
            if c.after_refusal {
                return false;
            }
            c.refused = true;
        }
        // The server did not act: the same request goes again, not counted
        // as a failed attempt.
        self.restore_effect(i, op);
        let sh = &mut self.shards[i];
        sh.not_before = self.now;
        sh.wait_reason = None;
        true
    }

    // ----- internals: time, misuse, persistence -----

    /// Whether the job speaks Anthropic's Message Batches protocol.
    fn anthropic(&self) -> bool {
        self.cfg.api.provider().protocol == Protocol::AnthropicMessageBatches
    }

    fn tick(&mut self, now: UnixMillis) {
        self.now = self.now.max(now);
    }

    fn check_poisoned(&self) -> Result<(), UsageError> {
        if self.poisoned {
            Err(UsageError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn misuse(&mut self, e: UsageError) -> Result<(), UsageError> {
        self.poisoned = true;
        self.fatal = Some(format!("driver misuse: {e}"));
        Err(e)
    }

    fn shard_busy(&self, i: usize) -> bool {
        self.inflight.values().any(|e| e.shard == i)
    }

    // ----- bounded exchanges -----

    /// Cuts every exchange in flight that broke a bound of
    /// [`ExchangeLimits`]: past its deadline, stalled, or over the size cap.
    fn judge_exchanges(&mut self) {
        let now = self.now;
        let window = self.cfg.exchange.stall_window;
        let min_bytes = self.cfg.exchange.stall_min_bytes;
        let mut cuts = Vec::new();
        for (id, ex) in &mut self.inflight {
            if ex.too_large {
                cuts.push((*id, Cut::TooLarge));
            } else if now >= ex.deadline {
                cuts.push((*id, Cut::Deadline));
            } else if ex.watch_stall && now >= ex.window_start.saturating_add(window) {
                if ex.window_bytes < min_bytes {
                    cuts.push((*id, Cut::Stalled));
                } else {
                    ex.window_start = now;
                    ex.window_bytes = 0;
                }
            }
        }
        for (id, why) in cuts {
            self.cut(id, why);
        }
    }

    /// When the next exchange in flight must be judged, if any is.
    fn next_judgement(&self) -> Option<UnixMillis> {
        let window = self.cfg.exchange.stall_window;
        self.inflight
            .values()
            .map(|ex| {
                if ex.watch_stall {
                    ex.deadline.min(ex.window_start.saturating_add(window))
                } else {
                    ex.deadline
                }
            })
            .min()
    }

    /// Drops exchange `id`: the transport is told to stop it, and it counts
    /// as a transport failure (an answer cut before or in its body).
    fn cut(&mut self, id: ExchangeId, why: Cut) {
        let Some(ex) = self.inflight.remove(&id) else {
            return;
        };
        self.aborted.insert(id);
        self.out.push_back(Step::Abort(id));
        let limits = &self.cfg.exchange;
        let detail = match why {
            Cut::Deadline => format!(
                "no complete answer within {} s (the exchange's deadline)",
                ex.allowed.as_secs_f64()
            ),
            Cut::Stalled => format!(
                "stalled: fewer than {} bytes of answer in {} s",
                limits.stall_min_bytes,
                limits.stall_window.as_secs_f64()
            ),
            Cut::TooLarge => format!(
                "the answer was larger than {} bytes",
                self.cfg.max_json_body
            ),
        };
        let kind = if ex.head.is_some() {
            FailureKind::BodyInterrupted
        } else {
            FailureKind::OutcomeUnknown
        };
        self.transport_failed(ex.shard, ex.op, kind, &detail, ex.head.as_ref());
    }

    /// A download went past the size its file object declares: stop it,
    /// and keep what came up to that size.
    fn download_past_declared(&mut self, id: ExchangeId) {
        let Some(ex) = self.inflight.remove(&id) else {
            return;
        };
        self.aborted.insert(id);
        self.out.push_back(Step::Abort(id));
        let i = ex.shard;
        let Op::Download { file_id } = ex.op else {
            return;
        };
        let mut events = Vec::new();
        let sh = &mut self.shards[i];
        let (complete, size) = sh.download.as_mut().map_or((false, 0), |dl| {
            (dl.end_at_declared(&mut events), dl.declared().unwrap_or(0))
        });
        self.take_download_events(i, events);
        if complete {
            let sh = &mut self.shards[i];
            sh.attempts = 0;
            sh.download = None;
            sh.downloads.pop_front();
            sh.not_before = self.now;
            self.warn(
                i,
                format!(
                    "file {file_id}: the server sent more than the {size} bytes its file object declares; the rest was not read"
                ),
            );
        } else {
            let detail = format!("the body went past the file's declared {size} bytes");
            self.transport_failed(
                i,
                Op::Download { file_id },
                FailureKind::BodyInterrupted,
                &detail,
                ex.head.as_ref(),
            );
        }
    }

    fn warn(&mut self, i: usize, message: String) {
        self.out.push_back(Step::Event(JobEvent::Warning {
            shard: self.shards[i].plan.index,
            message: self.cfg.api.redact(&message),
        }));
    }

    /// Queues an event; every text in it that may quote the server is
    /// redacted (the key never leaves the job).
    fn event(&mut self, mut ev: JobEvent) {
        match &mut ev {
            JobEvent::Retrying { reason, .. } | JobEvent::Requeued { reason, .. } => {
                *reason = self.cfg.api.redact(reason);
            }
            JobEvent::Warning { message, .. } => *message = self.cfg.api.redact(message),
            _ => {}
        }
        self.out.push_back(Step::Event(ev));
    }

    /// `text` without the API key (see [`ApiBase::redact`](crate::api::ApiBase::redact)).
    fn redact(&self, text: &str) -> String {
        self.cfg.api.redact(text)
    }

    fn finish_job(&mut self) -> Step {
        self.done = true;
        Step::Done(self.summary())
    }

    fn stop_point_reached(&self) -> bool {
        if !self.inflight.is_empty() || !self.out.is_empty() || !self.fed.is_empty() {
            return false;
        }
        let all_ended = self.shards.iter().all(|s| s.end.is_some());
        if all_ended {
            return true;
        }
        // A shard that cannot start yet (every parallel slot is taken by a
        // running batch) does not hold back an early stop: a job stopped
        // after submission has submitted all that parallelism allows.
        let room = self.active_shards() < self.cfg.max_parallel.max(1);
        let waiting = |s: &Shard| !s.started && !room;
        match self.cfg.stop_after {
            StopAfter::Finished => false,
            StopAfter::Submitted => self
                .shards
                .iter()
                .all(|s| s.end.is_some() || s.batch_id.is_some() || waiting(s)),
            StopAfter::Polled => self
                .shards
                .iter()
                .all(|s| s.end.is_some() || (s.batch_id.is_some() && s.polled) || waiting(s)),
        }
    }

    /// Whether the job stops before collecting outcomes (after submission
    /// or a status poll).
    fn stops_early(&self) -> bool {
        self.cfg.stop_after != StopAfter::Finished
    }

    /// Whether `sh` waits for nothing: its batch finished, and this job
    /// stops early, so it leaves the outcomes to the run that collects them.
    fn holds(&self, sh: &Shard) -> bool {
        self.stops_early() && sh.status.as_ref().is_some_and(BatchStatus::is_terminal)
    }

    fn active_shards(&self) -> usize {
        self.shards
            .iter()
            .filter(|s| s.started && s.end.is_none() && s.finishing.is_none())
            .count()
    }

    fn check_deadline(&mut self) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if self.timed_out || self.now < deadline {
            return;
        }
        self.timed_out = true;
        match self.cfg.on_timeout {
            OnTimeout::Cancel => {
                self.cancel_requested = true;
                self.hurry_polls();
            }
            OnTimeout::LeaveRunning => {}
        }
        self.dirty = true;
    }

    /// Opens new shards while fewer than `max_parallel` are in flight.
    fn start_shards(&mut self) {
        let active = self.active_shards();
        let mut room = self.cfg.max_parallel.max(1).saturating_sub(active);
        for sh in &mut self.shards {
            if room == 0 {
                break;
            }
            if !sh.started && sh.end.is_none() && sh.finishing.is_none() {
                sh.started = true;
                sh.not_before = self.now;
                room -= 1;
            }
        }
    }

    // ----- the transitions -----

    /// Decides what shard `i` does next, if anything now.
    fn shard_step(&mut self, i: usize) -> Option<Step> {
        if self.shard_busy(i) {
            return None;
        }
        let anthropic = self.anthropic();
        let now = self.now;
        let cancel = self.cancel_requested;
        let stopping = self.timed_out && self.cfg.on_timeout == OnTimeout::LeaveRunning;
        let early = self.stops_early();
        let fatal = self.fatal.clone();
        let sh = &mut self.shards[i];
        if sh.end.is_some() || sh.finishing.is_some() {
            return None;
        }
        if !sh.started {
            if cancel {
                self.begin_finishing(
                    i,
                    "job_cancelled",
                    "the job was cancelled before this request was submitted".into(),
                    ShardEnd::NotSubmitted,
                );
            } else if let Some(msg) = fatal {
                self.begin_finishing(i, "job_stopped", msg, ShardEnd::Stopped);
            }
            return None;
        }
        let effect_unknown = sh.upload == Effect::Unknown || sh.create == Effect::Unknown;
        if let Some(msg) = fatal {
            self.begin_finishing(i, "job_stopped", msg, ShardEnd::Stopped);
            return None;
        }
        if stopping && !effect_unknown {
            let message = match &sh.batch_id {
                Some(b) => format!(
                    "stopped waiting after the maximum wait; batch {b} is still {}",
                    status_str(sh.status.as_ref())
                ),
                None => {
                    "stopped waiting after the maximum wait before the batch was created".to_owned()
                }
            };
            self.begin_finishing(i, "timed_out", message, ShardEnd::Stopped);
            return None;
        }
        if cancel && sh.unconfirmed {
            // A found batch may be someone else's: it is never cancelled.
            let message = format!(
                "the job was cancelled while batch {} was not yet confirmed as this shard's (a create's answer was lost, and it was found by its size); it was not cancelled: check its results and cancel it yourself if it is this job's",
                sh.batch_id.as_deref().unwrap_or_default()
            );
            self.begin_finishing(i, "batch_unconfirmed", message, ShardEnd::Stopped);
            return None;
        }
        if cancel && sh.batch_id.is_none() && !effect_unknown {
            self.begin_finishing(
                i,
                "job_cancelled",
                "the job was cancelled before this request's batch was created".into(),
                ShardEnd::NotSubmitted,
            );
            return None;
        }
        // A cancel goes out at once, not at the next poll; only a backoff
        // after a failed attempt holds it back.
        let cancel_now = cancel
            && !sh.cancel_sent
            && sh.batch_id.is_some()
            && sh.status.as_ref().is_some_and(|s| !s.is_terminal())
            && !matches!(
                sh.wait_reason,
                Some(WaitReason::Backoff { .. } | WaitReason::RateLimit { .. })
            );
        if now < sh.not_before && !cancel_now {
            return None;
        }
        let op = if !anthropic && sh.file_id.is_none() && sh.batch_id.is_none() {
            if sh.upload == Effect::Unknown {
                Op::FindUpload
            } else {
                Op::Upload
            }
        } else if sh.batch_id.is_none() {
            if sh.create == Effect::Unknown {
                Op::FindBatch
            } else {
                Op::Create
            }
        } else if sh.status.as_ref().is_none_or(|s| !s.is_terminal()) {
            if cancel && !sh.cancel_sent && sh.status.is_some() {
                Op::Cancel
            } else {
                Op::Poll
            }
        } else if early {
            // A finished batch's outcomes belong to the run that collects them.
            return None;
        } else if let Some(file_id) = sh.downloads.front().cloned() {
            // The file object first: its size caps the download.
            if sh.download.is_some() {
                Op::Download { file_id }
            } else {
                Op::FileInfo { file_id }
            }
        } else {
            self.finish_after_results(i);
            return None;
        };
        // Write-ahead: arm and persist before an operation with an outside effect.
        if op.has_effect() {
            let effect = if op == Op::Upload {
                &mut sh.upload
            } else {
                &mut sh.create
            };
            if *effect == Effect::Idle {
                *effect = Effect::Armed;
                if op == Op::Create {
                    sh.create_attempt = sh.create_attempt.saturating_add(1);
                    sh.create_armed_at = Some(now);
                }
                self.dirty = false;
                return Some(Step::Persist(self.checkpoint()));
            }
        }
        Some(self.send(i, op))
    }

    fn send(&mut self, i: usize, op: Op) -> Step {
        let request = match self.build(i, &op) {
            Ok(r) => r,
            Err(message) => {
                // A request we cannot even build (an invalid id from the server) is final.
                self.op_failed_final(i, &op, message);
                return self.poll(self.now);
            }
        };
        let limits = &self.cfg.exchange;
        // A body streamed from the shard (an upload, a Message Batch's
        // create) is given time to go out, and its answer to begin.
        let streamed = matches!(request.body(), Outgoing::Multipart { .. });
        let sh = &mut self.shards[i];
        let allowed = match &op {
            _ if streamed => limits.transfer_time(sh.plan.bytes),
            Op::Download { .. } => {
                let (size, from) = sh
                    .download
                    .as_ref()
                    .map_or((None, 0), |d| (d.declared(), d.resume_point().0));
                let size = size.unwrap_or(limits.assumed_file_bytes);
                limits.transfer_time(size.saturating_sub(from))
            }
            _ => limits.json_deadline,
        };
        match op {
            Op::Upload => sh.upload = Effect::InFlight,
            Op::Create => sh.create = Effect::InFlight,
            _ => {}
        }
        let id = ExchangeId(self.next_exchange);
        self.next_exchange += 1;
        let now = self.now;
        let to_send = match request.body() {
            Outgoing::Json(b) | Outgoing::Bytes(b) => b.len() as u64,
            Outgoing::Multipart { len, .. } => *len,
            _ => 0,
        };
        self.inflight.insert(
            id,
            Inflight {
                shard: i,
                // The stall rule waits for an upload's answer to begin.
                watch_stall: op != Op::Upload && !streamed,
                op,
                head: None,
                body: Vec::new(),
                too_large: false,
                deadline: now.saturating_add(allowed),
                allowed,
                window_start: now,
                window_bytes: 0,
                to_send,
                sent: 0,
                credential: self.credential.generation,
            },
        );
        Step::Send { id, request }
    }

    fn build(&mut self, i: usize, op: &Op) -> Result<http::Request<Outgoing>, String> {
        if self.anthropic() {
            return self.build_anthropic(i, op);
        }
        let api = &self.cfg.api;
        let seed = self.rng.next_u64();
        let sh = &mut self.shards[i];
        let shard_ref = ShardRef {
            index: sh.plan.index,
            len: sh.plan.bytes,
        };
        let built = match op {
            Op::Upload => {
                let mut upload = UploadFile::batch_input(
                    shard_filename(self.plan.job_id(), sh.plan.index),
                    seed,
                );
                upload.expires_after = self
                    .cfg
                    .file_expires_after
                    .map(ExpiresAfter::after_creation);
                api::upload_file(api, &upload, shard_ref)
            }
            Op::FindUpload => {
                let query = ListFiles {
                    purpose: Some(FilePurpose::Batch),
                    limit: Some(1000),
                    order: None,
                    after: sh.search_after.clone(),
                };
                api::list_files(api, &query)
            }
            Op::Create => {
                let mut metadata = self.cfg.metadata.clone();
                metadata.insert(META_JOB.into(), self.plan.job_id().into());
                metadata.insert(META_SHARD.into(), sh.plan.index.to_string());
                metadata.insert(META_ATTEMPT.into(), sh.create_attempt.to_string());
                let mut body = CreateBatch::new(
                    sh.file_id.clone().unwrap_or_default(),
                    self.plan.endpoint().clone(),
                );
                body.metadata = Some(metadata);
                body.completion_window = self.cfg.completion_window.clone();
                body.output_expires_after = self
                    .cfg
                    .output_expires_after
                    .map(ExpiresAfter::after_creation);
                api::create_batch(api, &body)
            }
            Op::FindBatch => api::list_batches(
                api,
                &ListBatches {
                    after: sh.search_after.clone(),
                    limit: Some(100),
                },
            ),
            Op::Poll => api::retrieve_batch(api, sh.batch_id.as_deref().unwrap_or_default()),
            Op::Cancel => api::cancel_batch(api, sh.batch_id.as_deref().unwrap_or_default()),
            Op::FileInfo { file_id } => api::retrieve_file(api, file_id),
            Op::Download { file_id } => {
                let names = self.plan.is_open() && sh.file_id.as_ref() == Some(file_id);
                let dl = sh.download.get_or_insert_with(|| {
                    new_download(file_id.clone(), self.cfg.max_line_bytes, None, names)
                });
                dl.begin_attempt();
                let (offset, etag) = dl.resume_point();
                let etag = etag.map(str::to_owned);
                api::file_content(api, file_id, (offset > 0).then_some(offset)).map(|mut req| {
                    if let Some(v) = etag.and_then(|e| http::HeaderValue::from_str(&e).ok()) {
                        req.headers_mut().insert(http::header::IF_RANGE, v);
                    }
                    req
                })
            }
        };
        built.map_err(|e| e.to_string())
    }

    /// The request of `op` in Anthropic's Message Batches protocol.
    fn build_anthropic(&mut self, i: usize, op: &Op) -> Result<http::Request<Outgoing>, String> {
        let api = &self.cfg.api;
        let max_line = self.cfg.max_line_bytes;
        let sh = &mut self.shards[i];
        let batch_id = sh.batch_id.as_deref().unwrap_or_default();
        let built = match op {
            Op::Create => anthropic::create_batch(
                api,
                ShardRef {
                    index: sh.plan.index,
                    len: sh.plan.bytes,
                },
            ),
            Op::FindBatch => anthropic::list_batches(
                api,
                &anthropic::ListMessageBatches {
                    limit: Some(100),
                    before_id: None,
                    after_id: sh.search_after.clone(),
                },
            ),
            Op::Poll => anthropic::retrieve_batch(api, batch_id),
            Op::Cancel => anthropic::cancel_batch(api, batch_id),
            Op::Download { file_id } => {
                let dl = sh
                    .download
                    .get_or_insert_with(|| results_download(file_id, max_line));
                dl.begin_attempt();
                let (offset, etag) = dl.resume_point();
                let etag = etag.map(str::to_owned);
                let url = file_id.contains("://").then_some(file_id.as_str());
                anthropic::batch_results(api, batch_id, url, Some(offset)).map(|mut req| {
                    if let Some(v) = etag.and_then(|e| http::HeaderValue::from_str(&e).ok()) {
                        req.headers_mut().insert(http::header::IF_RANGE, v);
                    }
                    req
                })
            }
            Op::Upload | Op::FindUpload | Op::FileInfo { .. } => {
                return Err(format!(
                    "{} is not part of the Message Batches protocol",
                    op.name()
                ));
            }
        };
        built.map_err(|e| e.to_string())
    }

    /// A page of the search for a Message Batch whose create answer was
    /// lost (see the reconcile in [`crate::anthropic`]).
    fn search_page(&mut self, i: usize, page: anthropic::MessageBatchPage) {
        // Batches other shards hold as confirmed are theirs, and are never
        // candidates. One another shard follows unconfirmed may still be
        // this shard's: it is skipped while followed (two shards following
        // one batch would leave one of them without its own), and waited
        // for if nothing else is left.
        let held: BTreeSet<String> = self
            .shards
            .iter()
            .enumerate()
            .filter(|(k, s)| *k != i && !s.unconfirmed)
            .filter_map(|(_, s)| s.batch_id.clone())
            .collect();
        let followed: BTreeSet<String> = self
            .shards
            .iter()
            .enumerate()
            .filter(|(k, s)| *k != i && s.unconfirmed && s.end.is_none() && s.finishing.is_none())
            .filter_map(|(_, s)| s.batch_id.clone())
            .collect();
        let poll_interval = self.cfg.poll_interval;
        let now = self.now;
        let sh = &mut self.shards[i];
        let armed = sh.create_armed_at.unwrap_or(self.created_at);
        let floor = i64::try_from(armed.as_secs())
            .unwrap_or(i64::MAX)
            .saturating_sub(RECONCILE_SKEW_SECS);
        let mut older = false;
        for b in &page.data {
            if b.created_at_secs().is_some_and(|c| c < floor) {
                // Newest first: the rest are older too.
                older = true;
                break;
            }
            if b.request_counts.total() == sh.plan.requests
                && !held.contains(&b.id)
                && !sh.refuted.contains(&b.id)
                && !sh.candidates.iter().any(|c| c.id == b.id)
            {
                if followed.contains(&b.id) {
                    sh.search_followed = true;
                } else {
                    sh.candidates.push(b.clone());
                }
            }
        }
        let more = page.has_more && !older && !page.data.is_empty();
        if more && sh.search_pages + 1 < MAX_RECONCILE_PAGES {
            sh.search_pages += 1;
            sh.search_after = page
                .last_id
                .clone()
                .or_else(|| page.data.last().map(|b| b.id.clone()));
            return;
        }
        let candidates = std::mem::take(&mut sh.candidates);
        let waits = std::mem::take(&mut sh.search_followed);
        sh.search_after = None;
        sh.search_pages = 0;
        let since = anthropic::format_rfc3339(floor);
        let first = self.plan.custom_id(sh.plan.start).to_owned();
        let last = self
            .plan
            .custom_id(sh.plan.start + sh.plan.requests.saturating_sub(1))
            .to_owned();
        let ids = || {
            candidates
                .iter()
                .map(|b| b.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let requests = sh.plan.requests;
        if more {
            let message = format!(
                "the answer to this shard's create was lost, and {MAX_RECONCILE_PAGES} pages of batches did not reach those created before {since}; batches of {requests} requests among them: [{}]. Check whether one holds this shard's requests (its first custom_id is {first:?}, its last {last:?}); resuming the job searches again",
                ids()
            );
            self.begin_finishing(i, "create_unknown", message, ShardEnd::Stopped);
            return;
        }
        if candidates.is_empty() && waits {
            // Only batches other shards follow unconfirmed are left: one may
            // be this shard's, and is known once they have read it. The
            // search is made again a poll interval later; never a create.
            sh.not_before = now.saturating_add(poll_interval);
            sh.wait_reason = Some(WaitReason::PollBatch {
                shard: sh.plan.index,
            });
            return;
        }
        if candidates.is_empty() {
            // The create never landed: it is sent again.
            sh.create = Effect::Idle;
            sh.refuted.clear();
            self.dirty = true;
            return;
        }
        if sh.refuted.len() >= MAX_REFUTED {
            let message = format!(
                "the answer to this shard's create was lost; {} batches of {requests} requests created since {since} were read and are not this shard's, and more are left: [{}]. Check whether one holds this shard's requests (its first custom_id is {first:?}, its last {last:?}); resuming the job searches again",
                sh.refuted.len(),
                ids()
            );
            self.begin_finishing(i, "create_unknown", message, ShardEnd::Stopped);
            return;
        }
        // The oldest candidate was created nearest the create: it is
        // followed first; a refuted one sends the job back to the search.
        let others = ids();
        let found = candidates.into_iter().last().expect("a candidate");
        sh.create = Effect::Idle;
        sh.attempts = 0;
        sh.unconfirmed = true;
        let id = found.id.clone();
        self.warn(
            i,
            format!(
                "the answer to this shard's create was lost; batch {id} (created since {since}, {requests} requests; candidates: [{others}]) may be it: it is followed, and confirmed by its results before any is delivered"
            ),
        );
        self.dirty = true;
        self.adopt_batch(i, found.to_batch());
    }

    /// A line of a found batch's results names `custom_id`.
    fn confirm_record(&mut self, i: usize, custom_id: &str) {
        let index = self.plan.index_of(custom_id);
        let sh = &mut self.shards[i];
        let range = sh.plan.range();
        let start = sh.plan.start;
        let Some(c) = sh.confirm.as_mut() else {
            return;
        };
        match index.filter(|ix| range.contains(ix)) {
            Some(ix) => {
                if !c.seen.get(ix - start) {
                    c.seen.set(ix - start);
                    c.matched += 1;
                }
            }
            None => {
                if c.foreign.is_none() {
                    c.foreign = Some(custom_id.to_owned());
                }
            }
        }
    }

    /// The confirming read of a found batch's results is over: confirm it
    /// (read its results again, delivering them), refute it (create
    /// again), or stop the shard when the results say neither.
    fn conclude_confirmation(&mut self, i: usize) {
        let now = self.now;
        let max_line = self.cfg.max_line_bytes;
        let sh = &mut self.shards[i];
        let Some(c) = sh.confirm.take() else {
            return;
        };
        let batch_id = sh.batch_id.clone().unwrap_or_default();
        self.dirty = true;
        if let Some(foreign) = c.foreign {
            sh.batch_id = None;
            sh.status = None;
            sh.counts = None;
            sh.batch = None;
            sh.unconfirmed = false;
            // Back to the search, without this batch: another candidate
            // may be the shard's; none left means the create never landed.
            sh.refuted.push(batch_id.clone());
            sh.create = Effect::Unknown;
            sh.downloads.clear();
            sh.download = None;
            sh.not_before = now;
            sh.wait_reason = None;
            self.warn(
                i,
                format!(
                    "batch {batch_id} is not this shard's: its results name {foreign:?}, which is not one of the shard's requests; the search for the shard's batch goes on"
                ),
            );
            return;
        }
        if c.matched == sh.plan.requests {
            sh.unconfirmed = false;
            sh.refuted.clear();
            let marker = results_marker(sh.batch.as_ref(), &batch_id);
            sh.download = Some(results_download(&marker, max_line));
            sh.downloads = VecDeque::from([marker]);
            sh.not_before = now;
            self.warn(
                i,
                format!(
                    "batch {batch_id} is this shard's: its results name every one of the shard's requests and no other; they are read again and delivered"
                ),
            );
            return;
        }
        let first = self.plan.custom_id(sh.plan.start).to_owned();
        let last = self
            .plan
            .custom_id(sh.plan.start + sh.plan.requests.saturating_sub(1))
            .to_owned();
        let message = format!(
            "batch {batch_id} may be this shard's (found by its size after a create's answer was lost), but its results name only {} of the shard's {} requests and no other, so it is neither confirmed nor refuted; check its results (this shard's first custom_id is {first:?}, its last {last:?})",
            c.matched, sh.plan.requests
        );
        self.begin_finishing(i, "batch_unconfirmed", message, ShardEnd::Stopped);
    }

    /// A response arrived in full.
    fn complete(
        &mut self,
        i: usize,
        op: Op,
        head: http::response::Parts,
        body: &[u8],
        too_large: bool,
    ) {
        let class = classify_status(head.status);
        if class != StatusClass::Success {
            let mut err =
                ApiError::from_response(head.status, &head.headers, body).redacted(&self.cfg.api);
            if head.status.is_redirection() {
                if let Some(to) = head
                    .headers
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                {
                    err.message = format!("{} (Location: {})", err.message, self.redact(to));
                }
            }
            self.api_failed(i, op, class, err, &head);
            return;
        }
        if too_large {
            self.op_failed_final(
                i,
                &op,
                format!(
                    "the response to {} was larger than {} bytes",
                    op.name(),
                    self.cfg.max_json_body
                ),
            );
            return;
        }
        let now = self.now;
        let anthropic = self.anthropic();
        let sh = &mut self.shards[i];
        sh.wait_reason = None;
        // Only an answer that reads as what was asked for ends a run of
        // failed attempts: a 2xx whose body cannot be decoded (an HTML page
        // from a proxy) is a failed attempt like a 5xx, with the same backoff
        // and the same cap. A look-up after an unknown outcome is part of
        // retrying the upload or create: only finding what it looks for ends
        // the run, so an effect that keeps failing still backs off and is
        // given up.
        match op {
            Op::Create if anthropic => match anthropic::parse_message_batch(&head, body) {
                Ok(batch) => {
                    let sh = &mut self.shards[i];
                    sh.create = Effect::Idle;
                    sh.attempts = 0;
                    sh.unconfirmed = false;
                    sh.refuted.clear();
                    self.adopt_batch(i, batch.to_batch());
                }
                Err(e) => self.effect_unknown(
                    i,
                    &Op::Create,
                    format!("unreadable create response: {}", describe(&e)),
                ),
            },
            Op::FindBatch if anthropic => match anthropic::parse_message_batch_page(&head, body) {
                Ok(page) => self.search_page(i, page),
                Err(e) => self.retry_later(i, &Op::FindBatch, describe(&e), None),
            },
            Op::Poll | Op::Cancel if anthropic => {
                match anthropic::parse_message_batch(&head, body) {
                    Ok(batch) => {
                        self.shards[i].attempts = 0;
                        if op == Op::Cancel {
                            self.shards[i].cancel_sent = true;
                            self.dirty = true;
                        }
                        self.observe(i, batch.to_batch());
                    }
                    Err(e) => self.retry_later(i, &op, describe(&e), None),
                }
            }
            Op::Upload => match api::parse_file(&head, body) {
                Ok(file) => {
                    let sh = &mut self.shards[i];
                    sh.attempts = 0;
                    sh.file_id = Some(file.id.clone());
                    sh.upload = Effect::Idle;
                    let shard = sh.plan.index;
                    self.dirty = true;
                    self.event(JobEvent::Uploaded {
                        shard,
                        file_id: file.id,
                    });
                }
                Err(e) => self.effect_unknown(
                    i,
                    &Op::Upload,
                    format!("unreadable upload response: {}", describe(&e)),
                ),
            },
            Op::FindUpload => match api::parse_file_list(&head, body) {
                Ok(page) => {
                    let sh = &mut self.shards[i];
                    let name = shard_filename(self.plan.job_id(), sh.plan.index);
                    let found = page
                        .data
                        .iter()
                        .find(|f| f.filename == name && f.bytes == sh.plan.bytes);
                    if let Some(f) = found {
                        sh.file_id = Some(f.id.clone());
                        sh.upload = Effect::Idle;
                        sh.attempts = 0;
                        sh.search_after = None;
                        sh.search_pages = 0;
                        self.dirty = true;
                        let ev = JobEvent::Uploaded {
                            shard: sh.plan.index,
                            file_id: f.id.clone(),
                        };
                        self.event(ev);
                    } else if page.has_more
                        && sh.search_pages + 1 < MAX_RECONCILE_PAGES
                        && page.data.last().is_some()
                    {
                        sh.search_pages += 1;
                        sh.search_after = page
                            .last_id
                            .clone()
                            .or_else(|| page.data.last().map(|f| f.id.clone()));
                    } else {
                        // Never landed: upload again.
                        sh.upload = Effect::Idle;
                        sh.search_after = None;
                        sh.search_pages = 0;
                    }
                }
                Err(e) => self.retry_later(i, &Op::FindUpload, describe(&e), None),
            },
            Op::Create => match api::parse_batch(&head, body) {
                Ok(batch) => {
                    self.shards[i].create = Effect::Idle;
                    self.shards[i].attempts = 0;
                    self.adopt_batch(i, batch);
                }
                Err(e) => self.effect_unknown(
                    i,
                    &Op::Create,
                    format!("unreadable create response: {}", describe(&e)),
                ),
            },
            Op::FindBatch => match api::parse_batch_list(&head, body) {
                Ok(page) => {
                    let job_id = self.plan.job_id().to_owned();
                    let created_floor =
                        i64::try_from(self.created_at.as_secs()).unwrap_or(i64::MAX) - 3600;
                    let sh = &mut self.shards[i];
                    let shard_s = sh.plan.index.to_string();
                    let attempt_s = sh.create_attempt.to_string();
                    let found = page.data.iter().find(|b| {
                        b.metadata.as_ref().is_some_and(|m| {
                            m.get(META_JOB) == Some(&job_id)
                                && m.get(META_SHARD) == Some(&shard_s)
                                && m.get(META_ATTEMPT) == Some(&attempt_s)
                        })
                    });
                    if let Some(b) = found.cloned() {
                        sh.create = Effect::Idle;
                        sh.attempts = 0;
                        sh.search_after = None;
                        sh.search_pages = 0;
                        self.adopt_batch(i, b);
                    } else {
                        let older = page
                            .data
                            .last()
                            .is_some_and(|b| b.created_at < created_floor);
                        if page.has_more
                            && !older
                            && sh.search_pages + 1 < MAX_RECONCILE_PAGES
                            && !page.data.is_empty()
                        {
                            sh.search_pages += 1;
                            sh.search_after = page
                                .last_id
                                .clone()
                                .or_else(|| page.data.last().map(|b| b.id.clone()));
                        } else {
                            sh.create = Effect::Idle;
                            sh.search_after = None;
                            sh.search_pages = 0;
                        }
                    }
                }
                Err(e) => self.retry_later(i, &Op::FindBatch, describe(&e), None),
            },
            Op::Poll | Op::Cancel => match api::parse_batch(&head, body) {
                Ok(batch) => {
                    self.shards[i].attempts = 0;
                    if op == Op::Cancel {
                        self.shards[i].cancel_sent = true;
                        self.dirty = true;
                    }
                    self.observe(i, batch);
                }
                Err(e) => self.retry_later(i, &op, describe(&e), None),
            },
            Op::FileInfo { file_id } => match api::parse_file(&head, body) {
                Ok(file) => {
                    let names = self.reads_names(i, &file_id);
                    let sh = &mut self.shards[i];
                    sh.attempts = 0;
                    sh.not_before = now;
                    sh.download = Some(new_download(
                        file_id,
                        self.cfg.max_line_bytes,
                        Some(file.bytes),
                        names,
                    ));
                }
                Err(e) => self.retry_later(i, &Op::FileInfo { file_id }, describe(&e), None),
            },
            Op::Download { file_id } => {
                let sh = &mut self.shards[i];
                let mut events = Vec::new();
                let complete = sh.download.as_mut().is_some_and(|dl| dl.end(&mut events));
                self.take_download_events(i, events);
                let sh = &mut self.shards[i];
                if complete {
                    sh.attempts = 0;
                    sh.download = None;
                    sh.downloads.pop_front();
                    sh.not_before = now;
                } else {
                    // A short body that still brought more of the file is progress.
                    if sh.download.as_ref().is_some_and(Download::advanced) {
                        sh.attempts = 0;
                    }
                    let offset = sh.download.as_ref().map_or(0, |d| d.resume_point().0);
                    self.retry_later(
                        i,
                        &Op::Download {
                            file_id: file_id.clone(),
                        },
                        "the body ended before its announced length".into(),
                        None,
                    );
                    let shard = self.shards[i].plan.index;
                    self.event(JobEvent::DownloadResumed {
                        shard,
                        file_id,
                        offset,
                    });
                }
            }
        }
    }

    /// A batch was created or found: record it and start polling.
    fn adopt_batch(&mut self, i: usize, batch: Batch) {
        let sh = &mut self.shards[i];
        sh.batch_id = Some(batch.id.clone());
        sh.cancel_sent = false;
        sh.not_before = self.now.saturating_add(self.cfg.poll_interval);
        self.dirty = true;
        let shard = sh.plan.index;
        self.event(JobEvent::Submitted {
            shard,
            batch_id: batch.id.clone(),
        });
        self.observe(i, batch);
    }

    /// A fresh view of the shard's batch.
    fn observe(&mut self, i: usize, batch: Batch) {
        let now = self.now;
        let poll_interval = self.cfg.poll_interval;
        let sh = &mut self.shards[i];
        sh.polled = true;
        if sh.file_id.is_none() {
            // A by-id job learns its input file from the batch.
            sh.file_id = Some(batch.input_file_id.clone()).filter(|f| !f.is_empty());
        }
        let status = batch.status.clone();
        let counts = batch.request_counts.unwrap_or_default();
        let wait = if self.cfg.adaptive_polling {
            let changed = sh.status.as_ref() != Some(&status);
            sh.cadence
                .next(changed, &status, &counts, now, poll_interval)
        } else {
            poll_interval
        };
        if sh.status.as_ref() != Some(&status) || sh.counts.as_ref() != Some(&counts) {
            let ev = JobEvent::Progress {
                shard: sh.plan.index,
                batch_id: batch.id.clone(),
                status: status.clone(),
                counts,
            };
            sh.status = Some(status.clone());
            sh.counts = Some(counts);
            self.event(ev);
        }
        let hinted = match self.hints.iter().position(|h| *h == batch.id) {
            Some(k) => self.hints.remove(k).is_some(),
            None => false,
        };
        let sh = &mut self.shards[i];
        if !status.is_terminal() {
            sh.batch = Some(batch);
            sh.not_before = if hinted {
                now
            } else {
                now.saturating_add(wait)
            };
            sh.wait_reason = Some(WaitReason::PollBatch {
                shard: sh.plan.index,
            });
            return;
        }
        if status == BatchStatus::Failed
            && is_token_limit(&batch)
            && !self.cancel_requested
            && !self.plan.is_open()
            && sh.requeues < self.cfg.max_requeues
        {
            sh.requeues += 1;
            let shift = sh.requeues.saturating_sub(1).min(16);
            let delay = self
                .cfg
                .requeue_delay
                .saturating_mul(1 << shift)
                .min(Duration::from_secs(1800));
            let at = now.saturating_add(delay);
            sh.batch_id = None;
            sh.status = None;
            sh.counts = None;
            sh.batch = None;
            sh.not_before = at;
            sh.wait_reason = Some(WaitReason::Requeue {
                shard: sh.plan.index,
            });
            self.dirty = true;
            let reason = first_error_message(&batch)
                .unwrap_or_else(|| "enqueued token limit reached".into());
            let shard = self.shards[i].plan.index;
            self.event(JobEvent::Requeued { shard, at, reason });
            return;
        }
        if self.cfg.api.provider().protocol == Protocol::AnthropicMessageBatches {
            // One results file, named by the batch's `results_url`; a found
            // batch's results are read first to confirm it.
            let marker = results_marker(Some(&batch), &batch.id);
            sh.download = Some(results_download(&marker, self.cfg.max_line_bytes));
            sh.downloads = VecDeque::from([marker]);
            if sh.unconfirmed {
                sh.confirm = Some(Confirm {
                    seen: BitSet::new(sh.plan.requests),
                    matched: 0,
                    foreign: None,
                });
            }
            sh.batch = Some(batch);
            sh.not_before = now;
            self.dirty = true;
            return;
        }
        if status == BatchStatus::Failed {
            sh.error = first_error_message(&batch).map(|m| self.cfg.api.redact(&m));
        }
        // A by-id job reads the batch's input file first, for the
        // custom_ids of every request in input order: requests without a
        // result line (a batch cancelled while validating, a line refused
        // by validation) are named too.
        let names = match self.plan.is_open() {
            true => sh.file_id.clone(),
            false => None,
        };
        sh.downloads = [
            names,
            batch.output_file_id.clone(),
            batch.error_file_id.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        sh.batch = Some(batch);
        sh.not_before = now;
        self.dirty = true;
    }

    /// Every result file of a terminal batch is read: account for the rest.
    fn finish_after_results(&mut self, i: usize) {
        if self.shards[i].confirm.is_some() {
            self.conclude_confirmation(i);
            return;
        }
        let sh = &self.shards[i];
        let seen_results = sh.tally.succeeded + sh.tally.failed;
        let learned = sh.plan.requests;
        if let Some(counts) = sh.counts {
            let reported = counts.completed + counts.failed;
            if reported > seen_results {
                let msg = format!(
                    "the batch reports {reported} finished requests but its files held {seen_results}"
                );
                self.warn(i, msg);
            }
            if self.plan.is_open() && counts.total > learned {
                let missing = counts.total - learned;
                let msg = format!(
                    "the batch holds {} requests but its input and result files named {learned}: {missing} have no outcome (their custom_ids are unknown)",
                    counts.total
                );
                self.warn(i, msg);
            }
        }
        let sh = &self.shards[i];
        let batch = sh.batch.as_ref();
        let status = sh.status.clone();
        let batch_id = sh.batch_id.clone().unwrap_or_default();
        let (code, message) = match status {
            Some(BatchStatus::Expired) => (
                "batch_expired",
                format!("batch {batch_id} expired before this request was processed"),
            ),
            Some(BatchStatus::Cancelled) => (
                "batch_cancelled",
                format!("batch {batch_id} was cancelled before this request was processed"),
            ),
            Some(BatchStatus::Failed) => {
                let why = batch
                    .and_then(first_error_message)
                    .unwrap_or_else(|| "no reason given".into());
                let code = if batch.is_some_and(is_token_limit) {
                    "token_limit_exceeded"
                } else {
                    "batch_failed"
                };
                (code, format!("batch {batch_id} failed: {why}"))
            }
            _ => (
                "missing_result",
                format!("batch {batch_id} finished without a result line for this request"),
            ),
        };
        let mut per_line = BTreeMap::new();
        if let Some(errors) = batch.and_then(|b| b.errors.as_ref()) {
            for e in &errors.data {
                if let Some(line) = e.line.filter(|l| *l >= 1) {
                    per_line.insert(line - 1, NotProcessed {
                        code: e.code.clone().unwrap_or_else(|| "batch_failed".into()),
                        message: self.cfg.api.redact(&format!(
                            "batch {batch_id} failed validation at line {line} of its input file: {}",
                            e.message.clone().unwrap_or_default()
                        )),
                    });
                }
            }
        }
        self.begin_finishing(i, code, message, ShardEnd::Finished);
        if let Some(f) = self.shards[i].finishing.as_mut() {
            f.per_line = per_line;
        }
    }

    fn begin_finishing(&mut self, i: usize, code: &str, message: String, end: ShardEnd) {
        let message = self.redact(&message);
        let open = self.plan.is_open();
        let sh = &mut self.shards[i];
        if open && end == ShardEnd::Stopped && sh.error.is_none() {
            // A by-id shard may know no request to carry the reason.
            sh.error = Some(message.clone());
        }
        sh.download = None;
        sh.finishing = Some(Finishing {
            next: 0,
            code: code.to_owned(),
            message,
            end,
            per_line: BTreeMap::new(),
        });
    }

    /// The next not-processed outcome of a finishing shard, or its end.
    fn finishing_step(&mut self, i: usize) -> Option<Step> {
        let sh = &mut self.shards[i];
        let fin = sh.finishing.as_mut()?;
        while fin.next < sh.plan.requests {
            let offset = fin.next;
            fin.next += 1;
            if sh.seen.get(offset) {
                continue;
            }
            sh.seen.set(offset);
            sh.tally.not_processed += 1;
            let reason = fin
                .per_line
                .get(&offset)
                .cloned()
                .unwrap_or_else(|| NotProcessed {
                    code: fin.code.clone(),
                    message: fin.message.clone(),
                });
            let index = sh.plan.start + offset;
            return Some(Step::Result(JobResult {
                index,
                shard: sh.plan.index,
                batch_id: sh.batch_id.clone(),
                custom_id: self.plan.custom_id(index).to_owned(),
                outcome: JobOutcome::NotProcessed(reason),
                server_line: None,
            }));
        }
        let fin = sh.finishing.take().expect("finishing");
        sh.end = Some(fin.end);
        self.dirty = true;
        let summary = sh.summary();
        Some(Step::Event(JobEvent::ShardFinished {
            shard: summary.shard,
            summary,
        }))
    }

    fn take_download_events(&mut self, i: usize, events: Vec<DownloadEvent>) {
        for ev in events {
            match ev {
                DownloadEvent::Record(rec) => self.accept_record(i, *rec),
                DownloadEvent::Name { line, custom_id } => match custom_id {
                    Some(id) => self.learn_id(i, &id),
                    None => {
                        let file = self.shards[i].file_id.clone().unwrap_or_default();
                        self.warn(
                            i,
                            format!("line {line} of input file {file} has no custom_id"),
                        );
                    }
                },
                DownloadEvent::BadLine {
                    line,
                    custom_id,
                    error,
                } => {
                    if self.shards[i].confirm.is_some() {
                        if let Some(id) = custom_id.as_deref() {
                            self.confirm_record(i, id);
                        }
                        continue;
                    }
                    if let Some(id) = custom_id.as_deref() {
                        self.learn_id(i, id);
                    }
                    let sh = &mut self.shards[i];
                    sh.tally.bad_lines += 1;
                    let salvage = custom_id
                        .as_deref()
                        .and_then(|id| self.plan.index_of(id))
                        .filter(|ix| sh.plan.range().contains(ix));
                    match salvage {
                        Some(index) if !sh.seen.get(index - sh.plan.start) => {
                            sh.seen.set(index - sh.plan.start);
                            sh.tally.not_processed += 1;
                            let r = JobResult {
                                index,
                                shard: sh.plan.index,
                                batch_id: sh.batch_id.clone(),
                                custom_id: self.plan.custom_id(index).to_owned(),
                                outcome: JobOutcome::NotProcessed(NotProcessed {
                                    code: "unreadable_result".into(),
                                    message: self.cfg.api.redact(&format!(
                                        "its result line {line} could not be read: {error}"
                                    )),
                                }),
                                server_line: None,
                            };
                            self.fed.push_back(r);
                        }
                        _ => {
                            let file = sh.downloads.front().cloned().unwrap_or_default();
                            self.warn(
                                i,
                                format!("line {line} of file {file} could not be read: {error}"),
                            );
                        }
                    }
                }
            }
        }
    }

    /// Whether shard `i`'s download of `file_id` reads names: a by-id
    /// job's read of its batch's input file.
    fn reads_names(&self, i: usize, file_id: &str) -> bool {
        self.plan.is_open() && self.shards[i].file_id.as_deref() == Some(file_id)
    }

    /// In a by-id job, learns `custom_id` from a result line (a new id
    /// widens the shard by one request); a planned job's ids are fixed.
    fn learn_id(&mut self, i: usize, custom_id: &str) {
        if let Some((index, true)) = self.plan.learn(custom_id) {
            let sh = &mut self.shards[i];
            sh.plan.requests = sh.plan.requests.max(index + 1);
            sh.seen.grow(sh.plan.requests);
        }
    }

    fn accept_record(&mut self, i: usize, rec: ResultRecord) {
        if self.shards[i].confirm.is_some() {
            // A found batch's results are not delivered before it is confirmed.
            self.confirm_record(i, &rec.custom_id);
            return;
        }
        self.learn_id(i, &rec.custom_id);
        let sh = &mut self.shards[i];
        let Some(index) = self
            .plan
            .index_of(&rec.custom_id)
            .filter(|ix| sh.plan.range().contains(ix))
        else {
            let msg = format!(
                "result line {} has custom_id {:?}, which is not in this shard",
                rec.line, rec.custom_id
            );
            self.warn(i, msg);
            return;
        };
        let offset = index - sh.plan.start;
        if sh.seen.get(offset) {
            let msg = format!(
                "result line {} repeats custom_id {:?}; the first result is kept",
                rec.line, rec.custom_id
            );
            self.warn(i, msg);
            return;
        }
        sh.seen.set(offset);
        // The server's copy of the id: the plan's may not be kept.
        let custom_id = rec.custom_id.clone();
        let mut server_line = None;
        let outcome = match &rec.outcome {
            Outcome::Succeeded(s) => {
                if let Some(u) = s.usage.as_ref() {
                    add_usage(&mut sh.tally.usage, u);
                }
                sh.tally.succeeded += 1;
                JobOutcome::Succeeded(Box::new(rec))
            }
            Outcome::Failed(f) if f.is_not_processed() => {
                sh.tally.not_processed += 1;
                let np = not_processed_from(f, &self.cfg.api);
                server_line = Some(Box::new(rec));
                JobOutcome::NotProcessed(np)
            }
            Outcome::Failed(_) => {
                sh.tally.failed += 1;
                JobOutcome::Failed(Box::new(rec))
            }
        };
        let r = JobResult {
            index,
            shard: sh.plan.index,
            batch_id: sh.batch_id.clone(),
            custom_id,
            outcome,
            server_line,
        };
        self.fed.push_back(r);
    }

    /// A non-2xx answer.
    fn api_failed(
        &mut self,
        i: usize,
        op: Op,
        class: StatusClass,
        err: ApiError,
        head: &http::response::Parts,
    ) {
        let status = head.status.as_u16();
        if status == 401 || status == 403 {
            // The key or its permissions are wrong: nothing else will work either.
            self.fatal = Some(self.redact(&format!("authentication failed: {err}")));
            self.restore_effect(i, &op);
            return;
        }
        if matches!(op, Op::Download { .. }) && status == 416 {
            // Our offset is at (or past) the end: what we have is the whole file.
            let sh = &mut self.shards[i];
            sh.attempts = 0;
            sh.download = None;
            sh.downloads.pop_front();
            return;
        }
        if op == Op::Cancel && status == 409 {
            // The batch already ended (the API's answer to cancelling a
            // finished batch): read it now, then collect what it has.
            let sh = &mut self.shards[i];
            sh.cancel_sent = true;
            sh.attempts = 0;
            sh.not_before = self.now;
            sh.wait_reason = None;
            self.dirty = true;
            let batch = sh.batch_id.clone().unwrap_or_default();
            self.warn(
                i,
                format!("batch {batch} had already ended when it was cancelled: {err}"),
            );
            return;
        }
        if class == StatusClass::Final && op.is_read() {
            // A status a read should never get (a proxy's redirect, a
            // passing 404): try a few times before giving the read up.
            let cap = self.cfg.retry.odd_status_attempts.max(1);
            let sh = &mut self.shards[i];
            if sh.attempts + 1 < cap {
                self.retry_later(i, &op, format!("the server answered {err}"), None);
            } else {
                let n = sh.attempts + 1;
                let message = format!("gave up after {n} attempts: the server answered {err}");
                self.op_failed_final(i, &op, message);
            }
            return;
        }
        match class {
            StatusClass::Transient => {
                let floor = retry_after(&head.headers, self.now);
                // A 429 means the server did not act; a 5xx on a create may hide one that did.
                if op.has_effect() && status != 429 {
                    self.set_effect(i, &op, Effect::Unknown);
                } else {
                    self.restore_effect(i, &op);
                }
                self.retry_later(i, &op, err.to_string(), floor);
            }
            _ => {
                self.restore_effect(i, &op);
                if op == Op::Cancel {
                    // The batch can no longer be cancelled (already finishing):
                    // read it now and keep polling.
                    let sh = &mut self.shards[i];
                    sh.cancel_sent = true;
                    sh.attempts = 0;
                    sh.not_before = self.now;
                    sh.wait_reason = None;
                    self.dirty = true;
                    self.warn(i, format!("cancel was refused: {err}"));
                    return;
                }
                self.op_failed_final(i, &op, err.to_string());
            }
        }
    }

    fn transport_failed(
        &mut self,
        i: usize,
        op: Op,
        kind: FailureKind,
        detail: &str,
        head: Option<&http::response::Parts>,
    ) {
        match kind {
            FailureKind::NotSent => {
                self.restore_effect(i, &op);
                self.retry_later(i, &op, format!("not sent: {detail}"), None);
            }
            FailureKind::OutcomeUnknown | FailureKind::BodyInterrupted => {
                if let Op::Download { file_id } = &op {
                    let got_head = head.is_some_and(|h| h.status.is_success());
                    let sh = &mut self.shards[i];
                    let offset = sh.download.as_mut().map_or(0, |d| {
                        d.interrupted();
                        d.resume_point().0
                    });
                    // Progress resets the attempt count: a flaky link that keeps
                    // delivering more of the file is not given up on; one that
                    // delivers nothing new is.
                    if got_head && sh.download.as_ref().is_some_and(Download::advanced) {
                        sh.attempts = 0;
                    }
                    let shard = sh.plan.index;
                    self.retry_later(i, &op, format!("download interrupted: {detail}"), None);
                    if offset > 0 {
                        self.event(JobEvent::DownloadResumed {
                            shard,
                            file_id: file_id.clone(),
                            offset,
                        });
                    }
                    return;
                }
                if op.has_effect() {
                    self.set_effect(i, &op, Effect::Unknown);
                    self.dirty = true;
                }
                self.retry_later(i, &op, format!("{kind}: {detail}"), None);
            }
        }
    }

    /// The answer to an effect was lost: look for its result next.
    fn effect_unknown(&mut self, i: usize, op: &Op, message: String) {
        self.set_effect(i, op, Effect::Unknown);
        self.dirty = true;
        self.retry_later(i, op, message, None);
    }

    fn set_effect(&mut self, i: usize, op: &Op, e: Effect) {
        let sh = &mut self.shards[i];
        match op {
            Op::Upload => sh.upload = e,
            Op::Create => sh.create = e,
            _ => {}
        }
    }

    /// The server answered and did not act (or we never sent): the effect is idle again.
    fn restore_effect(&mut self, i: usize, op: &Op) {
        self.set_effect(i, op, Effect::Idle);
        self.dirty = true;
    }

    /// Schedules another attempt, or gives up after the policy's limit.
    fn retry_later(&mut self, i: usize, op: &Op, reason: String, floor: Option<UnixMillis>) {
        let now = self.now;
        let anthropic = self.anthropic();
        let sh = &mut self.shards[i];
        if sh.attempts == 0 {
            sh.failing_since = now;
        }
        sh.attempts += 1;
        let at = if self.cfg.retry.allows(sh.attempts) {
            let mut at = self
                .cfg
                .retry
                .retry_at(sh.attempts, floor, &mut self.rng, now);
            if *op == Op::Upload || (*op == Op::Create && anthropic) {
                // A whole shard (an upload, a Message Batch's create) is not
                // sent again at a second's interval: the next attempt waits
                // at least a second per MiB of it.
                let pause = Duration::from_secs(sh.plan.bytes / (1024 * 1024));
                at = at.max(now.saturating_add(pause));
            }
            Some(at).filter(|at| self.cfg.retry.within_budget(sh.failing_since, *at))
        } else {
            None
        };
        let Some(at) = at else {
            let sh = &mut self.shards[i];
            let budget = match self.cfg.retry.max_elapsed {
                Some(b) if self.cfg.retry.allows(sh.attempts) => {
                    format!(" (its retry budget of {b:?} ran out)")
                }
                _ => String::new(),
            };
            let message = format!(
                "gave up on {} after {} attempts{budget}: {reason}",
                op.name(),
                sh.attempts
            );
            sh.attempts = 0;
            self.begin_finishing(i, "gave_up", message, ShardEnd::Stopped);
            self.dirty = true;
            return;
        };
        let sh = &mut self.shards[i];
        sh.not_before = at;
        sh.wait_reason = Some(if floor.is_some() {
            WaitReason::RateLimit {
                shard: sh.plan.index,
            }
        } else {
            WaitReason::Backoff {
                shard: sh.plan.index,
                attempt: sh.attempts + 1,
            }
        });
        let ev = JobEvent::Retrying {
            shard: sh.plan.index,
            op: op.name(),
            attempt: sh.attempts + 1,
            at,
            reason,
        };
        self.event(ev);
    }

    /// The operation cannot succeed: report the shard's requests.
    fn op_failed_final(&mut self, i: usize, op: &Op, message: String) {
        let sh = &mut self.shards[i];
        sh.attempts = 0;
        if matches!(op, Op::Download { .. }) && sh.confirm.take().is_some() {
            let batch = sh.batch_id.clone().unwrap_or_default();
            let message = format!(
                "batch {batch} may be this shard's (found by its size after a create's answer was lost), but its results could not be read to confirm it ({message}); check it"
            );
            self.begin_finishing(i, "batch_unconfirmed", message, ShardEnd::Stopped);
            self.dirty = true;
            return;
        }
        match op {
            Op::Upload | Op::FindUpload => {
                self.begin_finishing(
                    i,
                    "upload_failed",
                    format!("the shard's file could not be uploaded: {message}"),
                    ShardEnd::NotSubmitted,
                );
            }
            Op::Create | Op::FindBatch => {
                self.begin_finishing(
                    i,
                    "create_failed",
                    format!("the shard's batch could not be created: {message}"),
                    ShardEnd::NotSubmitted,
                );
            }
            Op::Poll | Op::Cancel => {
                let batch = sh.batch_id.clone().unwrap_or_default();
                self.begin_finishing(
                    i,
                    "batch_unavailable",
                    format!("batch {batch} could not be read: {message}"),
                    ShardEnd::Stopped,
                );
            }
            Op::FileInfo { file_id } => {
                // Download it anyway, without the size cap (its deadline
                // still holds).
                let msg = format!(
                    "the size of file {file_id} is unknown ({message}); it is downloaded without a size cap"
                );
                self.warn(i, msg);
                let names = self.reads_names(i, file_id);
                let sh = &mut self.shards[i];
                sh.not_before = self.now;
                sh.download = Some(new_download(
                    file_id.clone(),
                    self.cfg.max_line_bytes,
                    None,
                    names,
                ));
            }
            Op::Download { file_id } => {
                let msg = format!("file {file_id} could not be downloaded: {message}");
                self.warn(i, msg);
                let sh = &mut self.shards[i];
                sh.download = None;
                sh.downloads.pop_front();
            }
        }
        self.dirty = true;
    }
}

impl Shard {
    fn new(plan: ShardPlan) -> Shard {
        let n = plan.requests;
        Shard {
            plan,
            file_id: None,
            upload: Effect::Idle,
            batch_id: None,
            create_attempt: 0,
            create: Effect::Idle,
            requeues: 0,
            status: None,
            counts: None,
            batch: None,
            cancel_sent: false,
            polled: false,
            downloads: VecDeque::new(),
            download: None,
            seen: BitSet::new(n),
            tally: Tally::default(),
            not_before: UnixMillis::ZERO,
            cadence: cadence::Cadence::default(),
            wait_reason: None,
            attempts: 0,
            failing_since: UnixMillis::ZERO,
            search_after: None,
            search_pages: 0,
            finishing: None,
            error: None,
            end: None,
            started: false,
            create_armed_at: None,
            unconfirmed: false,
            candidates: Vec::new(),
            search_followed: false,
            refuted: Vec::new(),
            confirm: None,
        }
    }

    fn checkpoint(&self) -> ShardCheckpoint {
        ShardCheckpoint {
            file_id: self.file_id.clone(),
            upload: effect_to(self.upload),
            batch_id: self.batch_id.clone(),
            create_attempt: self.create_attempt,
            create: effect_to(self.create),
            requeues: self.requeues,
            status: self.status.clone(),
            counts: self.counts,
            cancel_sent: self.cancel_sent,
            end: self.end.clone(),
            not_before: self.not_before,
            error: self.error.clone(),
            tally: if self.end.is_some() {
                self.tally
            } else {
                Tally::default()
            },
            create_armed_at: self.create_armed_at,
            unconfirmed: self.unconfirmed,
            refuted: self.refuted.clone(),
        }
    }

    fn summary(&self) -> ShardSummary {
        ShardSummary {
            shard: self.plan.index,
            // Equal for a planned shard; a by-id shard learns its ids as
            // results come, and the batch's total says how many to expect.
            requests: self.plan.requests.max(self.counts.map_or(0, |c| c.total)),
            file_id: self.file_id.clone(),
            batch_id: self.batch_id.clone(),
            status: self.status.clone(),
            counts: self.counts,
            end: self.end.clone(),
            succeeded: self.tally.succeeded,
            failed: self.tally.failed,
            not_processed: self.tally.not_processed,
            error: self.error.clone(),
        }
    }
}

fn effect_to(e: Effect) -> EffectState {
    match e {
        Effect::Idle => EffectState::NotSent,
        Effect::Armed | Effect::InFlight | Effect::Unknown => EffectState::MaybeSent,
    }
}

fn effect_from(e: EffectState) -> Effect {
    match e {
        EffectState::NotSent => Effect::Idle,
        EffectState::MaybeSent => Effect::Unknown,
    }
}

/// A download of `file_id`; with `names`, of a batch's input file, read
/// for its `custom_id`s.
fn new_download(file_id: String, max_line: usize, declared: Option<u64>, names: bool) -> Download {
    let dl = Download::new(file_id, max_line, declared);
    if names { dl.names_only() } else { dl }
}

/// Where a Message Batch's results are: its `results_url`, or its id (the
/// documented path on the base URL) when it named none.
fn results_marker(batch: Option<&Batch>, batch_id: &str) -> String {
    batch
        .and_then(|b| b.extra.get(anthropic::RESULTS_URL))
        .and_then(serde_json::Value::as_str)
        .filter(|u| !u.is_empty())
        .unwrap_or(batch_id)
        .to_owned()
}

/// A download of a Message Batch's results (no declared size).
fn results_download(marker: &str, max_line_bytes: usize) -> Download {
    Download::new(marker.to_owned(), max_line_bytes, None).with_parser(anthropic::parse_result_line)
}

/// The name a shard's file is uploaded under; reconciliation finds it by this name.
pub fn shard_filename(job_id: &str, shard: u32) -> String {
    format!("{job_id}-shard-{shard:05}.jsonl")
}

fn status_str(s: Option<&BatchStatus>) -> String {
    s.map_or_else(
        || "in an unknown state".to_owned(),
        |s| s.as_str().to_owned(),
    )
}

fn is_token_limit(batch: &Batch) -> bool {
    batch.errors.as_ref().is_some_and(|e| {
        e.data
            .iter()
            .any(|d| d.code.as_deref() == Some("token_limit_exceeded"))
    })
}

/// A response that did not read as expected, in words, with the start of
/// the body (an HTML page from a proxy says what went wrong).
fn describe(e: &api::ResponseError) -> String {
    match e {
        api::ResponseError::Decode { excerpt, .. } if !excerpt.is_empty() => {
            format!("{e}; the body starts: {excerpt}")
        }
        _ => e.to_string(),
    }
}

fn first_error_message(batch: &Batch) -> Option<String> {
    let e = batch.errors.as_ref()?.data.first()?;
    let code = e.code.as_deref().unwrap_or("error");
    let msg = e.message.as_deref().unwrap_or("");
    Some(match e.line {
        Some(line) => format!("{code} at line {line}: {msg}"),
        None => format!("{code}: {msg}"),
    })
}

fn not_processed_from(f: &Failure, api: &crate::api::ApiBase) -> NotProcessed {
    NotProcessed {
        code: f.code.clone().unwrap_or_else(|| "not_processed".into()),
        message: f.message.as_deref().map_or_else(
            || "the batch ended before this request ran".into(),
            |m| api.redact(m),
        ),
    }
}

fn add_usage(t: &mut UsageTotals, u: &crate::results::Usage) {
    // The server's numbers: they saturate, never wrap.
    let add = |sum: &mut u64, n: Option<u64>| *sum = sum.saturating_add(n.unwrap_or(0));
    add(&mut t.input_tokens, u.input_tokens);
    add(&mut t.output_tokens, u.output_tokens);
    add(&mut t.cached_tokens, u.cached_tokens);
    add(&mut t.reasoning_tokens, u.reasoning_tokens);
    add(&mut t.cache_creation_tokens, u.cache_creation_tokens);
}

/// A fixed-size set of small integers.
#[derive(Debug, Clone)]
struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    fn new(n: u64) -> BitSet {
        BitSet {
            words: vec![0; usize::try_from(n.div_ceil(64)).unwrap_or(0)],
        }
    }
    fn get(&self, i: u64) -> bool {
        let (w, b) = (usize::try_from(i / 64).unwrap_or(usize::MAX), i % 64);
        self.words.get(w).is_some_and(|x| x & (1 << b) != 0)
    }
    /// Makes room for `n` members (never shrinks).
    fn grow(&mut self, n: u64) {
        let words = usize::try_from(n.div_ceil(64)).unwrap_or(0);
        if words > self.words.len() {
            self.words.resize(words, 0);
        }
    }
    fn set(&mut self, i: u64) {
        let (w, b) = (usize::try_from(i / 64).unwrap_or(usize::MAX), i % 64);
        if let Some(x) = self.words.get_mut(w) {
            *x |= 1 << b;
        }
    }
}
