//! Jobs held in memory: the seed's vocabulary (items sharing a system prompt,
//! a job handle) on top of [`Job`], for the transports' convenience methods.
//!
//! This is not a second API over the core: it builds a [`JobPlan`] with the
//! same [`PlanBuilder`] and implements [`JobIo`] over memory. The transports
//! drive it with the same loop as any other job.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Endpoint;
use crate::api::{ApiBase, ApiConfig, BatchStatus, CompletionWindow, ShardRef};
use crate::error::{InputError, Problem};
use crate::input::{BatchRequest, Item, RequestTemplate, SystemPrompt};
use crate::job::checkpoint::Checkpoint;
use crate::job::plan::{JobPlan, PlanBuilder, ShardLimits};
use crate::job::types::{
    JobConfig, JobEvent, JobResult, JobSummary, OnTimeout, ShardEnd, StopAfter,
};
use crate::job::{Job, JobIo, ResumeError};
#[cfg(doc)]
use crate::job::{JobOp, NotProcessed};
use crate::retry::RetryPolicy;
use crate::time::UnixMillis;

/// Options of a job built from items (the seed's `opts`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BatchOptions {
    /// The model every request uses.
    pub model: String,
    /// The endpoint (default `/v1/chat/completions`).
    pub endpoint: Endpoint,
    /// How often batches are polled (default 60 s).
    pub poll_interval: Duration,
    /// How long to wait in all (default: no limit).
    pub max_wait: Option<Duration>,
    /// Cancel the batches when `max_wait` passes (default: leave them running).
    pub cancel_on_timeout: bool,
    /// Per-shard limits (default 50,000 requests, 200 MB).
    pub limits: ShardLimits,
    /// How many shards run at once (default 4).
    pub max_parallel: usize,
    /// Metadata stamped on each batch (at most 13 pairs beside the job's
    /// own three; see [`BatchOptions::validate`]).
    pub metadata: BTreeMap<String, String>,
    /// The batches' completion window (default `24h`, the only one OpenAI
    /// accepts today).
    #[serde(default)]
    pub completion_window: CompletionWindow,
    /// Expire the batches' output and error files this many seconds after
    /// they are created (3600..=2592000; default: the provider's).
    #[serde(default)]
    pub output_expires_after: Option<u64>,
    /// Expire the uploaded input files this many seconds after upload
    /// (3600..=2592000; default: the provider's, 30 days at OpenAI).
    #[serde(default)]
    pub file_expires_after: Option<u64>,
    /// How request lines write their `url` (default `/v1/chat/completions`;
    /// Azure OpenAI's dated API versions take `/chat/completions`, see
    /// [`for_provider`](Self::for_provider)).
    #[serde(default)]
    pub url_style: crate::provider::UrlStyle,
    /// The token limit of each request of Anthropic's Message Batches,
    /// which require one (an item's own `max_tokens` wins); see
    /// [`BatchJob::from_items_for`]. OpenAI's requests do not use it (set
    /// their `max_tokens` per item).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

impl BatchOptions {
    /// Options for `model` with the defaults.
    pub fn new(model: impl Into<String>) -> Self {
        BatchOptions {
            model: model.into(),
            endpoint: Endpoint::ChatCompletions,
            poll_interval: Duration::from_secs(60),
            max_wait: None,
            cancel_on_timeout: false,
            limits: ShardLimits::default(),
            max_parallel: 4,
            metadata: BTreeMap::new(),
            completion_window: CompletionWindow::default(),
            output_expires_after: None,
            file_expires_after: None,
            url_style: crate::provider::UrlStyle::Versioned,
            max_tokens: None,
        }
    }

    /// Sets the token limit of Anthropic's Message Batches requests (see
    /// [`max_tokens`](Self#structfield.max_tokens)).
    #[must_use]
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Takes `provider`'s per-file limits and url style: give it the
    /// provider of the client that runs the job (Azure OpenAI allows
    /// 100,000 requests per file, and its dated API versions want
    /// `/chat/completions` in request lines). Limits set before this call
    /// are replaced.
    #[must_use]
    pub fn for_provider(mut self, provider: &crate::provider::Provider) -> Self {
        self.limits = provider.shard_limits();
        self.url_style = provider.url_style;
        self
    }

    /// Sets the completion window (see [`parse_completion_window`](crate::job::parse_completion_window)).
    #[must_use]
    pub fn completion_window(mut self, window: CompletionWindow) -> Self {
        self.completion_window = window;
        self
    }

    /// Adds the metadata pair `key` = `value` to every batch.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Expires the output and error files `seconds` after their creation.
    #[must_use]
    pub fn output_expires_after(mut self, seconds: u64) -> Self {
        self.output_expires_after = Some(seconds);
        self
    }

    /// Expires the uploaded input files `seconds` after their upload.
    #[must_use]
    pub fn file_expires_after(mut self, seconds: u64) -> Self {
        self.file_expires_after = Some(seconds);
        self
    }

    /// Sets the endpoint.
    #[must_use]
    pub fn endpoint(mut self, e: Endpoint) -> Self {
        self.endpoint = e;
        self
    }

    /// Sets the poll interval.
    #[must_use]
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }

    /// Sets the maximum wait.
    #[must_use]
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.max_wait = Some(d);
        self
    }

    /// Sets the per-shard limits.
    #[must_use]
    pub fn limits(mut self, l: ShardLimits) -> Self {
        self.limits = l;
        self
    }
}

/// The seed's job handle: the plan, the shard files in memory, the job's
/// last checkpoint, and the outcomes reported so far.
///
/// `submit_batch` returns one at once; `poll_status`, `get_results`,
/// `stream_results` and `cancel` continue from it. What each of those runs
/// and how its outcome is read is decided here (see [`JobOp`]); the
/// transports only drive the [`Job`] in between.
///
/// # Outcomes
/// The handle keeps one outcome per request, keyed by its input position.
/// An outcome is *final* once its shard has ended for good (its batch
/// reached a terminal status and its results were collected, or the shard
/// could not be submitted at all). A not-processed outcome of a shard the
/// job merely stopped waiting for (codes `job_stopped`, `gave_up`,
/// `timed_out`, `batch_unavailable`; see [`NotProcessed::is_final`]) is
/// provisional: the next call on the handle picks that shard up again and
/// its real outcome replaces the stand-in. Only collecting calls
/// (`get_results`, `stream_results`, `cancel`) report outcomes, and each
/// reports every request exactly once.
#[derive(Clone)]
pub struct BatchJob {
    plan: JobPlan,
    shards: Vec<Vec<u8>>,
    options: BatchOptions,
    checkpoint: Option<Checkpoint>,
    seed: u64,
    /// The latest outcome of each request, by input position.
    outcomes: Vec<Option<JobResult>>,
}

impl std::fmt::Debug for BatchJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchJob")
            .field("job_id", &self.plan.job_id())
            .field("requests", &self.plan.len())
            .field("shards", &self.shards.len())
            .field("batch_ids", &self.batch_ids())
            .field(
                "outcomes",
                &format_args!("{}", self.outcomes.iter().flatten().count()),
            )
            .finish_non_exhaustive()
    }
}

impl BatchJob {
    /// Encodes `items` with the shared `prompt` into shards.
    ///
    /// # Errors
    /// Fails on the first invalid item (named by its 1-based position):
    /// empty or duplicate `custom_id`, an extra field that would override
    /// the model or the messages, a line over the byte limit. Batch
    /// settings the API would refuse ([`BatchOptions::validate`]) fail first,
    /// as an error of source `options`, line 0, naming the setting.
    pub fn from_items(
        items: &[Item],
        prompt: &SystemPrompt,
        options: &BatchOptions,
        seed: u64,
    ) -> Result<BatchJob, InputError> {
        let template =
            RequestTemplate::new(options.endpoint.clone(), options.model.clone(), prompt);
        let requests = items
            .iter()
            .enumerate()
            .map(|(i, item)| template.request("items", i as u64 + 1, item));
        Self::build(requests, options, seed)
    }

    /// Encodes `items` for a client of `provider`, in its protocol: as
    /// [`from_anthropic_items`](Self::from_anthropic_items) with the
    /// options' [`max_tokens`](BatchOptions#structfield.max_tokens) for
    /// Anthropic's Message Batches, else as [`from_items`](Self::from_items).
    /// The transports' `submit_batch` and `submit_and_wait` plan this way.
    ///
    /// # Errors
    /// As `from_items` or `from_anthropic_items`.
    pub fn from_items_for(
        provider: &crate::provider::Provider,
        items: &[Item],
        prompt: &SystemPrompt,
        options: &BatchOptions,
        seed: u64,
    ) -> Result<BatchJob, InputError> {
        if provider.protocol == crate::provider::Protocol::AnthropicMessageBatches {
            Self::from_anthropic_items(items, prompt, options.max_tokens, options, seed)
        } else {
            Self::from_items(items, prompt, options, seed)
        }
    }

    /// Encodes raw request lines for a client of `provider`, in its
    /// protocol: as [`from_anthropic_requests`](Self::from_anthropic_requests)
    /// for Anthropic's Message Batches, else as
    /// [`from_requests`](Self::from_requests).
    ///
    /// # Errors
    /// As `from_requests` or `from_anthropic_requests`.
    pub fn from_requests_for(
        provider: &crate::provider::Provider,
        requests: &[BatchRequest],
        options: &BatchOptions,
        seed: u64,
    ) -> Result<BatchJob, InputError> {
        if provider.protocol == crate::provider::Protocol::AnthropicMessageBatches {
            Self::from_anthropic_requests(requests, options, seed)
        } else {
            Self::from_requests(requests, options, seed)
        }
    }

    /// Encodes raw request lines (any endpoint) into shards.
    ///
    /// # Errors
    /// As [`from_items`](Self::from_items), plus a request whose `url` is not
    /// the options' endpoint.
    pub fn from_requests(
        requests: &[BatchRequest],
        options: &BatchOptions,
        seed: u64,
    ) -> Result<BatchJob, InputError> {
        Self::build(requests.iter().cloned().map(Ok), options, seed)
    }

    /// Encodes `items` as requests of Anthropic's Message Batches: each
    /// item's `params` hold `options.model`, `prompt` as `system`, the
    /// item's message, and `max_tokens` (the item's, else `max_tokens`;
    /// Anthropic requires one). Run the handle's jobs with an
    /// [`ApiConfig::anthropic`](crate::api::ApiConfig::anthropic) client.
    /// With the default limits, a shard is one batch of at most 100,000
    /// requests and 256 MB.
    ///
    /// # Errors
    /// As [`from_items`](Self::from_items), plus an item without a token
    /// limit (field `max_tokens`) or a `custom_id` Anthropic does not take
    /// (`^[a-zA-Z0-9_-]{1,64}$`).
    pub fn from_anthropic_items(
        items: &[Item],
        prompt: &SystemPrompt,
        max_tokens: Option<u32>,
        options: &BatchOptions,
        seed: u64,
    ) -> Result<BatchJob, InputError> {
        let template =
            crate::anthropic::MessagesTemplate::new(options.model.clone(), prompt, max_tokens);
        let requests = items
            .iter()
            .enumerate()
            .map(|(i, item)| template.request("items", i as u64 + 1, item));
        Self::build(requests, &Self::anthropic_options(options), seed)
    }

    /// Encodes Anthropic request lines (read by
    /// [`parse_request_line`](crate::anthropic::parse_request_line)) into
    /// Message Batches shards, as [`from_anthropic_items`](Self::from_anthropic_items).
    ///
    /// # Errors
    /// As `from_anthropic_items`.
    pub fn from_anthropic_requests(
        requests: &[BatchRequest],
        options: &BatchOptions,
        seed: u64,
    ) -> Result<BatchJob, InputError> {
        Self::build(
            requests.iter().cloned().map(Ok),
            &Self::anthropic_options(options),
            seed,
        )
    }

    /// `options` for Message Batches: the `/v1/messages` endpoint, and
    /// Anthropic's limits unless others were set.
    fn anthropic_options(options: &BatchOptions) -> BatchOptions {
        let mut o = options.clone();
        o.endpoint = crate::anthropic::messages_endpoint();
        if o.limits == ShardLimits::default() {
            o.limits = crate::provider::Provider::anthropic().shard_limits();
        }
        o
    }

    fn build(
        requests: impl Iterator<Item = Result<BatchRequest, InputError>>,
        options: &BatchOptions,
        seed: u64,
    ) -> Result<BatchJob, InputError> {
        // Settings the API would refuse are refused here, before anything is sent.
        options.validate().map_err(|e| {
            InputError::new("options", 0, e.setting(), Problem::Invalid(e.to_string()))
        })?;
        let job_id = format!("job-{seed:016x}");
        let mut builder = if options.endpoint == crate::anthropic::messages_endpoint() {
            PlanBuilder::anthropic(job_id, options.limits.clone(), "items")
        } else {
            PlanBuilder::new(
                job_id,
                options.endpoint.clone(),
                options.limits.clone(),
                "items",
            )
            .url_style(options.url_style)
        };
        let mut shards: Vec<Vec<u8>> = Vec::new();
        let mut line = Vec::new();
        for (i, req) in requests.enumerate() {
            let req = req?;
            let placed = builder.push(i as u64 + 1, &req, &mut line)?;
            if placed.new_shard {
                shards.push(Vec::new());
            }
            if let Some(s) = shards.last_mut() {
                s.extend_from_slice(&line);
            }
        }
        let plan = builder.finish()?;
        let outcomes = vec![None; usize::try_from(plan.len()).unwrap_or(0)];
        Ok(BatchJob {
            plan,
            shards,
            options: options.clone(),
            checkpoint: None,
            seed,
            outcomes,
        })
    }

    /// A handle for a batch this process did not create, known only by
    /// its id (from a log, another process, the dashboard): its job starts
    /// at the poll phase, and `poll_status`, `get_results`,
    /// `stream_results` and `cancel` work on it as on a submitted handle.
    ///
    /// Its plan is open ([`JobPlan::for_batch`]): once the batch has ended,
    /// the job reads the batch's input file for every request's
    /// `custom_id`, so outcomes are numbered in input order and a request
    /// without a result line (a batch cancelled while validating, a line
    /// refused by validation, an expired batch) still gets one, not
    /// processed with why. If the input file cannot be read (deleted,
    /// expired, or refused by the provider), ids are learned from the
    /// result lines instead (output file, then error file; a request is
    /// reported once), and ids without one are counted as missing in the
    /// summary (`requests` is the batch's `request_counts.total`). The
    /// job's id is the batch's id. `options` gives the poll interval and
    /// maximum wait; its model and batch settings are unused.
    pub fn for_batch(batch_id: &str, options: &BatchOptions, seed: u64) -> BatchJob {
        BatchJob {
            plan: JobPlan::for_batch(batch_id, batch_id),
            shards: Vec::new(),
            options: options.clone(),
            checkpoint: None,
            seed,
            outcomes: Vec::new(),
        }
    }

    /// The seed of the job id and backoff jitter.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Continues from `checkpoint` (a stored handle being loaded).
    pub(crate) fn restore_checkpoint(&mut self, checkpoint: Checkpoint) {
        self.checkpoint = Some(checkpoint);
    }

    /// The plan.
    pub fn plan(&self) -> &JobPlan {
        &self.plan
    }

    /// The shard files, in order.
    pub fn shard_bytes(&self) -> &[Vec<u8>] {
        &self.shards
    }

    /// The options the handle was built with.
    pub fn options(&self) -> &BatchOptions {
        &self.options
    }

    /// The last checkpoint, once the job has started.
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        self.checkpoint.as_ref()
    }

    /// The ids of the batches created so far.
    pub fn batch_ids(&self) -> Vec<String> {
        self.checkpoint
            .iter()
            .flat_map(|cp| cp.shards.iter().filter_map(|s| s.batch_id.clone()))
            .collect()
    }

    /// The outcomes known so far, in input order, at most one per request:
    /// final ones and, for shards the job stopped waiting for, provisional
    /// stand-ins (see the type's docs).
    pub fn outcomes(&self) -> impl Iterator<Item = &JobResult> {
        self.outcomes.iter().flatten()
    }

    /// The outcomes the handle holds for shard `shard`, in input order.
    pub(crate) fn shard_outcomes(&self, shard: u32) -> impl Iterator<Item = &JobResult> {
        // A by-id handle's one shard holds every outcome (its plan learns
        // ids in the job that reads them, not in the handle).
        let open = self.plan.is_open().then_some(0..self.outcomes.len());
        let range = self
            .plan
            .shards()
            .get(usize::try_from(shard).unwrap_or(usize::MAX))
            .filter(|_| open.is_none())
            .map_or(open.unwrap_or(0..0), |s| {
                let start = usize::try_from(s.start).unwrap_or(usize::MAX);
                let end = usize::try_from(s.start + s.requests).unwrap_or(usize::MAX);
                start.min(self.outcomes.len())..end.min(self.outcomes.len())
            });
        self.outcomes[range]
            .iter()
            .flatten()
            .filter(move |r| r.shard == shard)
    }

    /// Takes `results` as the outcomes of shard `shard` (a handle being
    /// loaded with its stored outcomes). A by-id handle learns their
    /// `custom_id`s in index order. Returns `false`, changing nothing in a
    /// planned handle, if they do not fit the plan: an index outside the
    /// shard, a `custom_id` that differs from the plan's, or a gap.
    pub(crate) fn restore_outcomes(&mut self, shard: u32, mut results: Vec<JobResult>) -> bool {
        results.sort_by_key(|r| r.index);
        let open = self.plan.is_open();
        if open {
            if shard != 0 || !self.plan.is_empty() {
                return false;
            }
            for (k, r) in results.iter().enumerate() {
                if r.index != k as u64 || r.shard != 0 {
                    return false;
                }
            }
            for r in &results {
                let _ = self.plan.learn(&r.custom_id);
            }
        } else {
            let Some(sp) = self
                .plan
                .shards()
                .get(usize::try_from(shard).unwrap_or(usize::MAX))
            else {
                return false;
            };
            let fits = |r: &JobResult| {
                r.shard == shard
                    && sp.range().contains(&r.index)
                    && self.plan.custom_id(r.index) == r.custom_id
            };
            if !results.iter().all(fits) {
                return false;
            }
            let mut last = None;
            if results
                .iter()
                .any(|r| last.replace(r.index) == Some(r.index))
            {
                return false;
            }
        }
        let len = usize::try_from(self.plan.len()).unwrap_or(0);
        if self.outcomes.len() < len {
            self.outcomes.resize(len, None);
        }
        for r in results {
            if let Some(slot) = usize::try_from(r.index)
                .ok()
                .and_then(|i| self.outcomes.get_mut(i))
            {
                *slot = Some(r);
            }
        }
        true
    }

    /// Whether shard `shard` has ended for good in the last checkpoint, so
    /// its outcomes are final and a resumed job does not report them again.
    pub fn shard_is_final(&self, shard: u32) -> bool {
        self.checkpoint
            .as_ref()
            .and_then(|cp| cp.shards.get(usize::try_from(shard).ok()?))
            .is_some_and(|s| matches!(s.end, Some(ShardEnd::Finished | ShardEnd::NotSubmitted)))
    }

    /// A [`Job`] continuing from the last checkpoint (or new), stopping at `stop`.
    ///
    /// # Errors
    /// Fails only if the checkpoint does not belong to this plan (a bug).
    pub fn job(&self, api: ApiBase, stop: StopAfter, now: UnixMillis) -> Result<Job, ResumeError> {
        self.job_with(api, RetryPolicy::default(), stop, now)
    }

    /// As [`job`](Self::job), retrying transient failures with `retry`.
    ///
    /// # Errors
    /// As `job`.
    pub fn job_with(
        &self,
        api: ApiBase,
        retry: RetryPolicy,
        stop: StopAfter,
        now: UnixMillis,
    ) -> Result<Job, ResumeError> {
        let mut cfg = JobConfig::new(api);
        cfg.retry = retry;
        self.job_from(cfg, stop, now)
    }

    /// A [`Job`] with `cfg`'s API settings, retry policy and exchange
    /// limits, and this handle's options, continuing from the last
    /// checkpoint (or new), stopping at `stop`.
    pub(crate) fn job_from(
        &self,
        mut cfg: JobConfig,
        stop: StopAfter,
        now: UnixMillis,
    ) -> Result<Job, ResumeError> {
        cfg.poll_interval = self.options.poll_interval;
        cfg.max_wait = self.options.max_wait;
        cfg.on_timeout = if self.options.cancel_on_timeout {
            OnTimeout::Cancel
        } else {
            OnTimeout::LeaveRunning
        };
        cfg.max_parallel = self.options.max_parallel;
        cfg.metadata = self.options.metadata.clone();
        cfg.completion_window = self.options.completion_window.clone();
        cfg.output_expires_after = self.options.output_expires_after;
        cfg.file_expires_after = self.options.file_expires_after;
        cfg.seed = self.seed;
        cfg.stop_after = stop;
        match &self.checkpoint {
            None => Ok(Job::new(cfg, self.plan.clone(), now)),
            Some(cp) => Job::resume(cfg, self.plan.clone(), cp.clone(), now),
        }
    }

    /// A [`JobIo`] over this handle: shards from memory, checkpoints and
    /// outcomes into the handle, each new outcome also to `on_result`, and
    /// events to `on_event`.
    ///
    /// With `replay`, the final outcomes the handle already holds (which a
    /// resumed job does not report again) go to `on_result` first, so a
    /// streaming caller sees every request once.
    pub fn io<'a, R: FnMut(JobResult), E: FnMut(&JobEvent)>(
        &'a mut self,
        replay: bool,
        mut on_result: R,
        on_event: E,
    ) -> MemoryIo<'a, R, E> {
        if replay {
            let finals: Vec<JobResult> = self
                .outcomes
                .iter()
                .flatten()
                .filter(|r| self.shard_is_final(r.shard))
                .cloned()
                .collect();
            for r in finals {
                on_result(r);
            }
        }
        MemoryIo {
            shards: &self.shards,
            checkpoint: &mut self.checkpoint,
            outcomes: &mut self.outcomes,
            on_result,
            on_event,
        }
    }
}

/// A [`JobIo`] over memory; see [`BatchJob::io`].
pub struct MemoryIo<'a, R, E> {
    shards: &'a [Vec<u8>],
    checkpoint: &'a mut Option<Checkpoint>,
    outcomes: &'a mut Vec<Option<JobResult>>,
    on_result: R,
    on_event: E,
}

impl<R, E> std::fmt::Debug for MemoryIo<'_, R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryIo")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl<R: FnMut(JobResult), E: FnMut(&JobEvent)> JobIo for MemoryIo<'_, R, E> {
    fn persist(&mut self, checkpoint: &Checkpoint) -> std::io::Result<()> {
        *self.checkpoint = Some(checkpoint.clone());
        Ok(())
    }

    fn result(&mut self, result: JobResult) -> std::io::Result<()> {
        // Keyed by position: a shard reported again (after a stop) replaces
        // its earlier outcomes.
        // A by-id job numbers its requests as it learns them.
        if let Ok(i) = usize::try_from(result.index) {
            if i >= self.outcomes.len() {
                self.outcomes.resize(i + 1, None);
            }
        }
        if let Some(slot) = usize::try_from(result.index)
            .ok()
            .and_then(|i| self.outcomes.get_mut(i))
        {
            *slot = Some(result.clone());
        }
        (self.on_result)(result);
        Ok(())
    }

    fn event(&mut self, event: &JobEvent) -> std::io::Result<()> {
        (self.on_event)(event);
        Ok(())
    }

    fn open_shard(&mut self, shard: &ShardRef) -> std::io::Result<Box<dyn Read + Send>> {
        let bytes = usize::try_from(shard.index)
            .ok()
            .and_then(|i| self.shards.get(i))
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no shard {}", shard.index),
                )
            })?;
        Ok(Box::new(std::io::Cursor::new(bytes.clone())))
    }
}

/// Why a job that ran did not complete every request: a batch failed,
/// expired or was cancelled, or the job stopped waiting.
#[derive(Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum JobEndError {
    /// A batch failed (validation errors, for example).
    #[error("batch {batch_id} failed: {message}")]
    Failed {
        /// The batch.
        batch_id: String,
        /// The batch's first error.
        message: String,
        /// What the job had at its end.
        summary: JobSummary,
    },
    /// A batch expired before all its requests ran; partial results were collected.
    #[error("batch {batch_id} expired with {not_processed} requests not processed")]
    Expired {
        /// The batch.
        batch_id: String,
        /// Requests that did not run.
        not_processed: u64,
        /// What the job had at its end.
        summary: JobSummary,
    },
    /// A batch was cancelled; partial results were collected.
    #[error("batch {batch_id} was cancelled with {not_processed} requests not processed")]
    Cancelled {
        /// The batch.
        batch_id: String,
        /// Requests that did not run.
        not_processed: u64,
        /// What the job had at its end.
        summary: JobSummary,
    },
    /// The job stopped waiting at its maximum wait; batches may still be running.
    #[error("stopped waiting after the maximum wait with {not_processed} requests unfinished")]
    TimedOut {
        /// Requests without a result.
        not_processed: u64,
        /// What the job had at its end.
        summary: JobSummary,
    },
    /// The job stopped before every request had an outcome.
    #[error("the job stopped: {message}")]
    Stopped {
        /// Why.
        message: String,
        /// What the job had at its end.
        summary: JobSummary,
    },
}

impl JobEndError {
    /// What the job had at its end.
    pub fn summary(&self) -> &JobSummary {
        match self {
            JobEndError::Failed { summary, .. }
            | JobEndError::Expired { summary, .. }
            | JobEndError::Cancelled { summary, .. }
            | JobEndError::TimedOut { summary, .. }
            | JobEndError::Stopped { summary, .. } => summary,
        }
    }
}

/// Short: the variant, its reason, and the summary's counts and batch ids
/// (not every shard's detail).
impl std::fmt::Debug for JobEndError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, batch_id, detail) = match self {
            JobEndError::Failed {
                batch_id, message, ..
            } => ("Failed", Some(batch_id), message.clone()),
            JobEndError::Expired {
                batch_id,
                not_processed,
                ..
            } => (
                "Expired",
                Some(batch_id),
                format!("{not_processed} not processed"),
            ),
            JobEndError::Cancelled {
                batch_id,
                not_processed,
                ..
            } => (
                "Cancelled",
                Some(batch_id),
                format!("{not_processed} not processed"),
            ),
            JobEndError::TimedOut { not_processed, .. } => {
                ("TimedOut", None, format!("{not_processed} unfinished"))
            }
            JobEndError::Stopped { message, .. } => ("Stopped", None, message.clone()),
        };
        let s = self.summary();
        let mut d = f.debug_struct(name);
        if let Some(b) = batch_id {
            d.field("batch_id", b);
        }
        d.field("detail", &detail)
            .field("job_id", &s.job_id)
            .field("requests", &s.requests)
            .field("succeeded", &s.succeeded)
            .field("failed", &s.failed)
            .field("not_processed", &s.not_processed)
            .field(
                "batch_ids",
                &s.shards
                    .iter()
                    .filter_map(|sh| sh.batch_id.as_deref())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl JobSummary {
    /// `Ok` when every shard's batch completed; otherwise why not, for
    /// callers that want the seed's "clear errors for failed, cancelled,
    /// expired and timed-out batches". Per-request failures inside a
    /// completed batch are outcomes, not errors.
    ///
    /// # Errors
    /// The first shard that did not complete, as a [`JobEndError`].
    pub fn verdict(&self) -> Result<(), Box<JobEndError>> {
        let summary = || self.clone();
        if let Some(message) = &self.error {
            return Err(Box::new(JobEndError::Stopped {
                message: message.clone(),
                summary: summary(),
            }));
        }
        if self.timed_out && !self.cancelled {
            return Err(Box::new(JobEndError::TimedOut {
                not_processed: self.requests - self.succeeded - self.failed,
                summary: summary(),
            }));
        }
        for s in &self.shards {
            let batch_id = s.batch_id.clone().unwrap_or_default();
            match &s.status {
                Some(BatchStatus::Completed) => {}
                Some(BatchStatus::Failed) => {
                    return Err(Box::new(JobEndError::Failed {
                        batch_id,
                        message: s.error.clone().unwrap_or_else(|| "no reason given".into()),
                        summary: summary(),
                    }));
                }
                Some(BatchStatus::Expired) => {
                    return Err(Box::new(JobEndError::Expired {
                        batch_id,
                        not_processed: s.not_processed,
                        summary: summary(),
                    }));
                }
                Some(BatchStatus::Cancelled) => {
                    return Err(Box::new(JobEndError::Cancelled {
                        batch_id,
                        not_processed: s.not_processed,
                        summary: summary(),
                    }));
                }
                _ => {
                    // No batch, or one that never finished: its requests
                    // were not processed, so the job did not complete.
                    let message = match (&s.end, self.cancelled) {
                        (Some(ShardEnd::NotSubmitted), true) => {
                            format!(
                                "the job was cancelled before shard {} was submitted",
                                s.shard
                            )
                        }
                        (Some(ShardEnd::NotSubmitted), false) => format!(
                            "shard {} could not be submitted (see its requests' outcomes)",
                            s.shard
                        ),
                        _ => format!("shard {} ended without a completed batch", s.shard),
                    };
                    return Err(Box::new(JobEndError::Stopped {
                        message,
                        summary: summary(),
                    }));
                }
            }
        }
        Ok(())
    }
}

/// Reads `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_ORG_ID` (or
/// `OPENAI_ORGANIZATION`) and `OPENAI_PROJECT_ID` through `var`, which the
/// transport points at the process environment.
///
/// # Errors
/// Fails if the key is missing or empty.
pub fn api_config_from_env(
    var: impl Fn(&str) -> Option<String>,
) -> Result<ApiConfig, crate::job::JobError> {
    let key = var("OPENAI_API_KEY")
        .filter(|k| !k.trim().is_empty())
        .ok_or(crate::job::JobError::MissingKey)?;
    let mut cfg = ApiConfig::new(key);
    if let Some(base) = var("OPENAI_BASE_URL").filter(|b| !b.trim().is_empty()) {
        cfg = cfg.with_base_url(base);
    }
    if let Some(org) = var("OPENAI_ORG_ID")
        .or_else(|| var("OPENAI_ORGANIZATION"))
        .filter(|s| !s.is_empty())
    {
        cfg = cfg.with_organization(org);
    }
    if let Some(project) = var("OPENAI_PROJECT_ID").filter(|s| !s.is_empty()) {
        cfg = cfg.with_project(project);
    }
    Ok(cfg)
}
