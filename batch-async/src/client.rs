//! The client: a reqwest client configured not to interpret HTTP, and the seed's
//! operations built on the core's [`Job`].

use std::time::Duration;

use batch_core::api::{self, ApiBase, ApiConfig, Batch, List, ListBatches};
use batch_core::input::{BatchRequest, Item, SystemPrompt};
use batch_core::job::{
    BatchJob, BatchOptions, Job, JobError, JobEvent, JobResult, JobSummary, StopAfter,
    api_config_from_env,
};

use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::run::run;

/// How the client connects.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Base URL, key, organization, project.
    pub api: ApiConfig,
    /// Connecting (TCP and TLS) may take this long (default 30 s).
    pub connect_timeout: Duration,
    /// One read or write may stall this long (default 5 min).
    pub io_timeout: Duration,
}

impl ClientConfig {
    /// A configuration with default timeouts.
    pub fn new(api: ApiConfig) -> Self {
        ClientConfig {
            api,
            connect_timeout: Duration::from_secs(30),
            io_timeout: Duration::from_secs(300),
        }
    }
}

/// An async client for the Files and Batches API.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    api: ApiBase,
}

impl Client {
    /// A client with `config`. It never follows redirects and installs no
    /// retry policy (reqwest turns no status into an error): the core decides.
    ///
    /// # Errors
    /// Fails if the TLS backend cannot be set up.
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        // reqwest is built without a bundled crypto provider; use ring's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.io_timeout)
            .build()
            .map_err(|e| Error::Setup(e.to_string()))?;
        Ok(Client {
            http,
            api: ApiBase::new(&config.api).map_err(|e| Error::Setup(e.to_string()))?,
        })
    }

    /// A client from `OPENAI_API_KEY`, `OPENAI_BASE_URL` (default
    /// `https://api.openai.com/v1`), `OPENAI_ORG_ID` and `OPENAI_PROJECT_ID`.
    ///
    /// # Errors
    /// Fails if `OPENAI_API_KEY` is not set.
    pub fn from_env() -> Result<Client, Error> {
        let api = api_config_from_env(|k| std::env::var(k).ok())?;
        Client::new(ClientConfig::new(api))
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The API settings, checked.
    pub fn api(&self) -> &ApiBase {
        &self.api
    }

    /// Runs `job` to its end on the system clock. See [`run`].
    ///
    /// # Errors
    /// As [`run`].
    pub async fn run_job(
        &self,
        job: &mut Job,
        io: &mut impl batch_core::job::JobIo,
    ) -> Result<JobSummary, Error> {
        run(job, self, &SystemClock, io).await
    }

    /// Uploads and creates the batches for `items` and returns the handle at
    /// once, without waiting for them to run.
    ///
    /// # Errors
    /// Fails on invalid items (nothing is sent), or if the job stops.
    pub async fn submit_batch(
        &self,
        items: &[Item],
        prompt: &SystemPrompt,
        opts: &BatchOptions,
    ) -> Result<BatchJob, Error> {
        let mut handle =
            BatchJob::from_items(items, prompt, opts, seed()).map_err(JobError::from)?;
        self.drive(
            &mut handle,
            StopAfter::Submitted,
            &SystemClock,
            None,
            &mut |_| {},
        )
        .await?;
        Ok(handle)
    }

    /// Like [`submit_batch`](Self::submit_batch) for raw request lines of any endpoint.
    ///
    /// # Errors
    /// As `submit_batch`.
    pub async fn submit_requests(
        &self,
        requests: &[BatchRequest],
        opts: &BatchOptions,
    ) -> Result<BatchJob, Error> {
        let mut handle = BatchJob::from_requests(requests, opts, seed()).map_err(JobError::from)?;
        self.drive(
            &mut handle,
            StopAfter::Submitted,
            &SystemClock,
            None,
            &mut |_| {},
        )
        .await?;
        Ok(handle)
    }

    /// Polls every batch of the job once and returns the statuses and counts.
    ///
    /// # Errors
    /// Fails if the job stops (for example, the key is refused).
    pub async fn poll_status(&self, job: &mut BatchJob) -> Result<JobSummary, Error> {
        self.drive(job, StopAfter::Polled, &SystemClock, None, &mut |_| {})
            .await
    }

    /// Waits for the job's batches and returns every request's outcome, in
    /// input order.
    ///
    /// # Errors
    /// [`Error::Ended`] when a batch failed, expired or was cancelled, or the
    /// job timed out (with the partial results inside).
    pub async fn get_results(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, Error> {
        self.collect(job, &SystemClock).await
    }

    /// Like [`get_results`](Self::get_results), handing each result to
    /// `on_result` as it arrives instead of collecting them.
    ///
    /// # Errors
    /// As `get_results`.
    pub async fn stream_results(
        &self,
        job: &mut BatchJob,
        on_result: &mut (dyn FnMut(JobResult) + Send),
        on_event: &mut (dyn FnMut(&JobEvent) + Send),
    ) -> Result<JobSummary, Error> {
        let summary = self
            .drive(
                job,
                StopAfter::Finished,
                &SystemClock,
                Some(on_result),
                on_event,
            )
            .await?;
        match summary.verdict() {
            Ok(()) => Ok(summary),
            Err(reason) => Err(Error::Ended {
                reason,
                results: Vec::new(),
            }),
        }
    }

    /// Submits `items`, waits, and returns every outcome in input order.
    ///
    /// # Errors
    /// As [`submit_batch`](Self::submit_batch) and [`get_results`](Self::get_results).
    pub async fn submit_and_wait(
        &self,
        items: &[Item],
        prompt: &SystemPrompt,
        opts: &BatchOptions,
    ) -> Result<Vec<JobResult>, Error> {
        let mut handle =
            BatchJob::from_items(items, prompt, opts, seed()).map_err(JobError::from)?;
        self.collect(&mut handle, &SystemClock).await
    }

    /// Like [`submit_and_wait`](Self::submit_and_wait) on a caller's clock
    /// (a [`ManualClock`](crate::ManualClock) runs a day-long job instantly in tests).
    ///
    /// # Errors
    /// As `submit_and_wait`.
    pub async fn submit_and_wait_with_clock(
        &self,
        job: &mut BatchJob,
        clock: &impl Clock,
    ) -> Result<Vec<JobResult>, Error> {
        self.collect(job, clock).await
    }

    /// Cancels the job's batches, waits for them to stop, and returns what
    /// they had done.
    ///
    /// # Errors
    /// Fails if the job stops.
    pub async fn cancel(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, Error> {
        let mut results = Vec::new();
        let mut j = job
            .job(self.api.clone(), StopAfter::Finished, SystemClock.now())
            .map_err(JobError::from)?;
        j.cancel(SystemClock.now());
        let mut io = job.io(|r| results.push(r), |_| {});
        run(&mut j, self, &SystemClock, &mut io).await?;
        results.sort_by_key(|r| r.index);
        Ok(results)
    }

    /// One page of batches, newest first.
    ///
    /// # Errors
    /// Fails on a transport error or a non-2xx answer.
    pub async fn list(
        &self,
        limit: Option<u32>,
        after: Option<&str>,
    ) -> Result<List<Batch>, Error> {
        let request = api::list_batches(
            &self.api,
            &ListBatches {
                after: after.map(str::to_owned),
                limit,
            },
        )
        .map_err(|e| Error::Setup(e.to_string()))?;
        let (parts, _) = request.into_parts();
        let request = reqwest::Request::try_from(http::Request::from_parts(
            parts,
            reqwest::Body::from(Vec::new()),
        ))
        .map_err(|e| Error::Setup(e.to_string()))?;
        let response =
            self.http.execute(request).await.map_err(|e| {
                Error::Setup(self.api.redact(&format!("listing batches failed: {e}")))
            })?;
        let head = crate::convert::head(&response);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Error::Setup(self.api.redact(&e.to_string())))?;
        // The server's words may quote the key: it never reaches an error.
        api::parse_batch_list(&head, &bytes)
            .map_err(|e| Error::Job(JobError::Response(e.redacted(&self.api))))
    }

    async fn collect(
        &self,
        job: &mut BatchJob,
        clock: &impl Clock,
    ) -> Result<Vec<JobResult>, Error> {
        let mut results = Vec::new();
        let summary = self
            .drive(
                job,
                StopAfter::Finished,
                clock,
                Some(&mut |r| results.push(r)),
                &mut |_| {},
            )
            .await?;
        results.sort_by_key(|r| r.index);
        match summary.verdict() {
            Ok(()) => Ok(results),
            Err(reason) => Err(Error::Ended { reason, results }),
        }
    }

    async fn drive(
        &self,
        handle: &mut BatchJob,
        stop: StopAfter,
        clock: &impl Clock,
        on_result: Option<&mut (dyn FnMut(JobResult) + Send)>,
        on_event: &mut (dyn FnMut(&JobEvent) + Send),
    ) -> Result<JobSummary, Error> {
        let mut job = handle
            .job(self.api.clone(), stop, clock.now())
            .map_err(JobError::from)?;
        match on_result {
            Some(on_result) => {
                run(&mut job, self, clock, &mut handle.io(on_result, on_event)).await
            }
            // A run that stops early: outcomes that come anyway stay in the handle.
            None => run(&mut job, self, clock, &mut handle.io_holding(on_event)).await,
        }
    }
}

/// A seed for backoff jitter and job ids, from the OS's hash randomness.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6f70_656e_6169);
    h.finish()
}
