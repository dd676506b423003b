//! The client: a reqwest client configured not to interpret HTTP, and the seed's
//! operations. What each operation runs and how its end is read is decided
//! in the core ([`BatchJob::begin`] and the `finish_*` methods); this file
//! only drives the job in between.

use batch_core::api::{self, ApiBase, Batch, List};
use batch_core::credential::{
    Credential, CredentialCache, CredentialError, CredentialNeed, CredentialSource,
};
use batch_core::input::{BatchRequest, Item, SystemPrompt};
use batch_core::job::{
    BatchJob, BatchOptions, ClientConfig, ClientSettings, Job, JobError, JobEvent, JobOp,
    JobResult, JobStatus, JobSummary, Proxy, api_config_from_env,
};

use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::run::run;

/// An async client for the Files and Batches API.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    settings: ClientSettings,
    /// The last credential its source gave, for its next job.
    credentials: std::sync::Arc<CredentialCache>,
}

impl Client {
    /// A client with `config`. It never follows redirects and installs no
    /// retry policy (reqwest turns no status into an error): the core decides.
    ///
    /// It connects through [`ClientConfig::proxy`] (the environment's
    /// proxy by default), trusts the platform's roots and
    /// [`ClientConfig::extra_root_certificates`]. Every request's
    /// `User-Agent` is the API settings' one plus
    /// [`ClientConfig::user_agent_suffix`].
    ///
    /// # Errors
    /// [`Error::Setup`] if the TLS backend cannot be set up, the base URL
    /// is not usable, the proxy URL does not parse, a root certificate
    /// document holds no certificate, or no root is trusted at all
    /// (`platform_roots` off and no extra root).
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        // reqwest is built without a bundled crypto provider; use ring's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.io_timeout);
        builder = match &config.proxy {
            // reqwest reads the environment unless told otherwise.
            Proxy::FromEnvironment => builder,
            Proxy::None => builder.no_proxy(),
            Proxy::Url(url) => builder.proxy(
                reqwest::Proxy::all(url.as_str())
                    .map_err(|e| Error::Setup(format!("the proxy URL is not usable: {e}")))?,
            ),
        };
        let mut extra = Vec::new();
        for (i, pem) in config.extra_root_certificates.iter().enumerate() {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Setup(format!("extra root certificate {i} is not PEM: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Setup(format!(
                    "extra root certificate {i} holds no CERTIFICATE block"
                )));
            }
            extra.extend(certs);
        }
        builder = if config.platform_roots {
            builder.tls_certs_merge(extra)
        } else if extra.is_empty() {
            return Err(Error::Setup(
                "no root certificate is trusted: platform_roots is off and no extra root was given"
                    .into(),
            ));
        } else {
            builder.tls_certs_only(extra)
        };
        let http = builder.build().map_err(|e| Error::Setup(e.to_string()))?;
        Client::with_http(http, config)
    }

    /// A client that sends through `http`, your own, with `config`'s API
    /// settings, retry policy and exchange limits. The client's own
    /// settings stand for the rest: `config`'s timeouts, proxy and roots
    /// are not used (the `User-Agent` with its suffix is a header of every
    /// request, so it still applies).
    ///
    /// The client must follow no redirect
    /// (`redirect(reqwest::redirect::Policy::none())`): the core reads 3xx
    /// answers itself. reqwest offers no way to check this, so it is not
    /// checked; reqwest never turns a status into an error on its own.
    ///
    /// ```
    /// # fn main() -> Result<(), batch_async::Error> {
    /// use batch_async::{Client, ClientConfig};
    /// use batch_core::api::ApiConfig;
    ///
    /// # let _ = rustls::crypto::ring::default_provider().install_default();
    /// let http = reqwest::Client::builder()
    ///     .redirect(reqwest::redirect::Policy::none())
    ///     .build()
    ///     .map_err(|e| batch_async::Error::Setup(e.to_string()))?;
    /// let client = Client::with_http(http, ClientConfig::new(ApiConfig::new("sk-...")))?;
    /// # let _ = client;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Setup`] if the base URL is not usable.
    pub fn with_http(http: reqwest::Client, config: ClientConfig) -> Result<Client, Error> {
        Ok(Client {
            http,
            settings: ClientSettings::new(&config).map_err(|e| Error::Setup(e.to_string()))?,
            credentials: std::sync::Arc::default(),
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

    /// The bounds of every exchange, which `download_file` applies too.
    pub(crate) fn exchange_limits(&self) -> &batch_core::job::ExchangeLimits {
        &self.settings.exchange
    }

    pub(crate) fn credential_source(&self) -> Option<&CredentialSource> {
        self.settings.credential.as_ref()
    }

    pub(crate) fn credentials(&self) -> &CredentialCache {
        &self.credentials
    }

    /// With a credential source, puts a valid credential into `headers`
    /// (the last one the client got, else a new one from the source).
    async fn authorize(&self, headers: &mut http::HeaderMap) -> Result<(), Error> {
        let Some(need) = self.credentials.for_request(
            self.credential_source(),
            SystemClock.now(),
            self.settings.credential_refresh.margin,
        ) else {
            return Ok(());
        };
        let answer = match need {
            CredentialNeed::Ready(answer) => answer,
            CredentialNeed::Call(source) => fetch_credential(source).await,
        };
        self.credentials
            .authorize(&self.settings.api, answer, headers)
            .map_err(Error::Setup)
    }

    /// The API settings, checked.
    pub fn api(&self) -> &ApiBase {
        &self.settings.api
    }

    /// A configuration for a [`Job`] this client runs: its API settings,
    /// retry policy and exchange limits, and, with a credential source
    /// ([`ClientConfig::credential`]), credential refresh on; the rest
    /// defaults.
    pub fn job_config(&self) -> batch_core::job::JobConfig {
        self.settings.job_config()
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

    /// Uploads and creates the batches for `items` and returns the handle
    /// once every batch exists, without waiting for them to run. Shards the
    /// server refuses for good (a file over its size limit) do not stop it:
    /// their requests' outcomes come from [`get_results`](Self::get_results).
    ///
    /// The items are planned in the protocol of the client's provider
    /// ([`BatchJob::from_items_for`]): with an Anthropic configuration, as
    /// Message Batches whose requests take `opts.max_tokens` (required
    /// there, unless every item sets its own).
    ///
    /// # Errors
    /// [`Error::Job`] on invalid items (nothing is sent; the message names
    /// the item, field and problem). [`Error::Ended`] if the job stopped: the
    /// key was refused, the server stayed unreachable past the retry budget,
    /// the maximum wait passed, or no batch could be created. It carries the
    /// handle with the batches created before the stop
    /// ([`Error::into_handle`]): `get_results` or `cancel` on it follows them.
    pub async fn submit_batch(
        &self,
        items: &[Item],
        prompt: &SystemPrompt,
        opts: &BatchOptions,
    ) -> Result<BatchJob, Error> {
        let mut handle =
            BatchJob::from_items_for(self.api().provider(), items, prompt, opts, seed())?;
        let summary = self
            .drive(&mut handle, JobOp::Submit, &SystemClock, None, &mut |_| {})
            .await?;
        handle.into_submitted(summary)
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
        let mut handle =
            BatchJob::from_requests_for(self.api().provider(), requests, opts, seed())?;
        let summary = self
            .drive(&mut handle, JobOp::Submit, &SystemClock, None, &mut |_| {})
            .await?;
        handle.into_submitted(summary)
    }

    /// Polls every batch of the job once and returns the job's status: its
    /// overall state, summed request counts, batch ids and each shard's
    /// detail. It reports no outcomes and downloads nothing; a batch that
    /// failed or expired is a status here (its outcomes come from
    /// [`get_results`](Self::get_results)).
    ///
    /// # Errors
    /// [`Error::Ended`] if the job stopped: the key was refused, the server
    /// stayed unreachable past the retry budget, or the maximum wait passed.
    /// The handle stays usable: a later call continues where this one stopped.
    pub async fn poll_status(&self, job: &mut BatchJob) -> Result<JobStatus, Error> {
        let summary = self
            .drive(job, JobOp::Poll, &SystemClock, None, &mut |_| {})
            .await?;
        job.finish_poll(summary)
    }

    /// Waits for the job's batches and returns every request's outcome, in
    /// input order, exactly once. Calling it again returns the same outcomes.
    ///
    /// # Errors
    /// [`Error::Ended`] when a batch failed, expired or was cancelled, the
    /// maximum wait passed, or the job stopped (key refused, server
    /// unreachable past the retry budget), with the outcomes known at that
    /// point inside (at most one per request). A stand-in for a request the
    /// job stopped waiting for (see `NotProcessed::is_final`) is replaced by
    /// the real outcome on the next call.
    pub async fn get_results(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, Error> {
        self.collect(job, JobOp::Collect, &SystemClock).await
    }

    /// Like [`get_results`](Self::get_results), handing each outcome to
    /// `on_result` instead of collecting them (outcomes an earlier call
    /// already made final come first), and returns the summary.
    ///
    /// # Errors
    /// As `get_results`, with no results inside (they went to `on_result`).
    pub async fn stream_results(
        &self,
        job: &mut BatchJob,
        on_result: &mut (dyn FnMut(JobResult) + Send),
        on_event: &mut (dyn FnMut(&JobEvent) + Send),
    ) -> Result<JobSummary, Error> {
        let summary = self
            .drive(job, JobOp::Collect, &SystemClock, Some(on_result), on_event)
            .await?;
        job.finish_collect(JobOp::Collect, summary.clone(), true)?;
        Ok(summary)
    }

    /// Submits `items`, waits, and returns every outcome in input order.
    ///
    /// # Errors
    /// As [`submit_batch`](Self::submit_batch) and [`get_results`](Self::get_results).
    /// An [`Error::Ended`] carries the job's handle ([`Error::into_handle`]):
    /// batches still running when the job stopped (the maximum wait, an
    /// outage) are collected later with `get_results` on it.
    pub async fn submit_and_wait(
        &self,
        items: &[Item],
        prompt: &SystemPrompt,
        opts: &BatchOptions,
    ) -> Result<Vec<JobResult>, Error> {
        let mut handle =
            BatchJob::from_items_for(self.api().provider(), items, prompt, opts, seed())?;
        let summary = self
            .drive(&mut handle, JobOp::Collect, &SystemClock, None, &mut |_| {})
            .await?;
        handle.into_collected(summary)
    }

    /// Like [`submit_and_wait`](Self::submit_and_wait), handing each
    /// [`JobEvent`] to `on_event` as it happens: uploads, batches created,
    /// progress, and each retry with its reason, attempt and time (an
    /// unreachable server shows here long before the retry budget ends).
    ///
    /// # Errors
    /// As `submit_and_wait`.
    pub async fn submit_and_wait_with_events(
        &self,
        items: &[Item],
        prompt: &SystemPrompt,
        opts: &BatchOptions,
        on_event: &mut (dyn FnMut(&JobEvent) + Send),
    ) -> Result<Vec<JobResult>, Error> {
        let mut handle =
            BatchJob::from_items_for(self.api().provider(), items, prompt, opts, seed())?;
        let summary = self
            .drive(&mut handle, JobOp::Collect, &SystemClock, None, on_event)
            .await?;
        handle.into_collected(summary)
    }

    /// Like [`get_results`](Self::get_results) on a caller's clock
    /// (a [`ManualClock`](crate::ManualClock) runs a day-long job instantly in tests).
    ///
    /// # Errors
    /// As `get_results`.
    pub async fn submit_and_wait_with_clock(
        &self,
        job: &mut BatchJob,
        clock: &impl Clock,
    ) -> Result<Vec<JobResult>, Error> {
        self.collect(job, JobOp::Collect, clock).await
    }

    /// Cancels the job's batches, waits for them to stop, and returns every
    /// request's outcome (partial results, and `batch_cancelled` or
    /// `job_cancelled` for the rest), in input order, exactly once.
    ///
    /// # Errors
    /// [`Error::Ended`] if the job stopped (key refused, server unreachable
    /// past the retry budget, maximum wait), with the outcomes known so far.
    pub async fn cancel(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, Error> {
        self.collect(job, JobOp::Cancel, &SystemClock).await
    }

    /// One page of batches, newest first, in the provider's protocol
    /// (`GET /batches`, or `GET /v1/messages/batches` for Anthropic's
    /// Message Batches, whose batches read as [`Batch`]es); `after` is the
    /// previous page's `last_id`.
    ///
    /// # Errors
    /// [`Error::Transport`] if the request could not be sent or its answer
    /// not read; [`Error::Job`] with the API's status, code and message for
    /// a non-2xx answer.
    pub async fn list(
        &self,
        limit: Option<u32>,
        after: Option<&str>,
    ) -> Result<List<Batch>, Error> {
        let request = batch_core::job::list_batches_request(&self.settings.api, limit, after)
            .map_err(|e| Error::Setup(e.to_string()))?;
        let (head, bytes) = self.execute(request).await?;
        // The server's words may quote the key: it never reaches an error.
        batch_core::job::parse_batch_list_answer(&self.settings.api, &head, &bytes)
            .map_err(|e| Error::Job(JobError::Response(e.redacted(&self.settings.api))))
    }

    /// Executes one request built by the core's level-1 builders and returns
    /// the response head and its whole body (at most 16 MiB), whatever the
    /// status. It decides nothing: parse the answer with the matching
    /// `batch_core::api::parse_*` function.
    ///
    /// Only requests whose body is in memory (none, JSON, bytes) can be
    /// executed this way; shard uploads go through a [`Job`].
    ///
    /// # Errors
    /// [`Error::Transport`] if the request could not be sent or its answer
    /// not read; [`Error::Setup`] for a multipart request.
    pub async fn execute(
        &self,
        request: http::Request<api::Outgoing>,
    ) -> Result<(http::response::Parts, Vec<u8>), Error> {
        let (mut parts, body) = request.into_parts();
        self.authorize(&mut parts.headers).await?;
        let body = match body {
            api::Outgoing::Empty => reqwest::Body::from(Vec::new()),
            api::Outgoing::Json(bytes) | api::Outgoing::Bytes(bytes) => reqwest::Body::from(bytes),
            _ => {
                return Err(Error::Setup(
                    "a request that streams a shard can only be executed by a job".into(),
                ));
            }
        };
        let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
            .map_err(|e| Error::Setup(e.to_string()))?;
        let mut response = self.http.execute(request).await.map_err(|e| {
            Error::Transport(crate::convert::failure_before_head(&e).redacted(&self.settings.api))
        })?;
        let head = crate::convert::head(&response);
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            Error::Transport(crate::convert::failure_in_body(&e).redacted(&self.settings.api))
        })? {
            if bytes.len() + chunk.len() > 16 * 1024 * 1024 {
                return Err(Error::Transport(
                    batch_core::job::TransportFailure::in_body("the response body is over 16 MiB"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((head, bytes))
    }

    async fn collect(
        &self,
        job: &mut BatchJob,
        op: JobOp,
        clock: &impl Clock,
    ) -> Result<Vec<JobResult>, Error> {
        let summary = self.drive(job, op, clock, None, &mut |_| {}).await?;
        job.finish_collect(op, summary, false)
    }

    /// The transport's part of every operation: the job the core asks for,
    /// driven to its stop point over the handle's memory.
    async fn drive(
        &self,
        handle: &mut BatchJob,
        op: JobOp,
        clock: &impl Clock,
        on_result: Option<&mut (dyn FnMut(JobResult) + Send)>,
        on_event: &mut (dyn FnMut(&JobEvent) + Send),
    ) -> Result<JobSummary, Error> {
        let mut job = handle.begin(op, &self.settings, clock.now())?;
        let replay = on_result.is_some();
        let mut sink = on_result;
        let mut io = handle.io(
            replay,
            |r| {
                if let Some(f) = sink.as_mut() {
                    f(r);
                }
            },
            on_event,
        );
        run(&mut job, self, clock, &mut io).await
    }
}

/// A seed for backoff jitter and job ids, from the OS's hash randomness.
pub(crate) fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6f70_656e_6169);
    h.finish()
}

/// Calls `source`: an async one is awaited, a blocking one runs on tokio's
/// blocking pool so it does not hold up the runtime.
pub(crate) async fn fetch_credential(
    source: &CredentialSource,
) -> Result<Credential, CredentialError> {
    match source {
        CredentialSource::Async(f) => f().await,
        CredentialSource::Blocking(f) => {
            let f = std::sync::Arc::clone(f);
            tokio::task::spawn_blocking(move || f())
                .await
                .unwrap_or_else(|e| {
                    Err(CredentialError::new(format!(
                        "the credential source did not finish: {e}"
                    )))
                })
        }
        other => other.call_blocking(),
    }
}
