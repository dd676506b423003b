//! The client: a ureq agent configured not to interpret HTTP, and the seed's
//! operations. What each operation runs and how its end is read is decided
//! in the core ([`BatchJob::begin`] and the `finish_*` methods); this file
//! only drives the job in between.

use batch_core::api::{self, ApiBase, Batch, List};
use batch_core::credential::{CredentialCache, CredentialNeed, CredentialSource};
use batch_core::input::{BatchRequest, Item, SystemPrompt};
use batch_core::job::{
    BatchJob, BatchOptions, ClientConfig, ClientSettings, Job, JobError, JobEvent, JobOp,
    JobResult, JobStatus, JobSummary, Proxy, api_config_from_env,
};

use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::run::run;

/// A blocking client for the Files and Batches API.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    settings: ClientSettings,
    /// The last credential its source gave, for its next job.
    credentials: std::sync::Arc<CredentialCache>,
}

impl Client {
    /// A client with `config`. The agent never turns statuses into errors,
    /// never follows redirects and never retries: the core decides.
    ///
    /// It connects through [`ClientConfig::proxy`] (the environment's
    /// proxy by default), trusts the platform's roots and
    /// [`ClientConfig::extra_root_certificates`]. Every request's
    /// `User-Agent` is the API settings' one plus
    /// [`ClientConfig::user_agent_suffix`].
    ///
    /// # Errors
    /// [`Error::Setup`] if the base URL is not usable, the proxy URL does
    /// not parse, a root certificate document holds no certificate, or no
    /// root is trusted at all (`platform_roots` off and no extra root).
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let proxy = match &config.proxy {
            Proxy::FromEnvironment => ureq::Proxy::try_from_env(),
            Proxy::None => None,
            Proxy::Url(url) => Some(
                ureq::Proxy::new(url)
                    .map_err(|e| Error::Setup(format!("the proxy URL is not usable: {e}")))?,
            ),
        };
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(root_certs(&config)?)
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_per_read(Some(config.io_timeout))
            .timeout_per_write(Some(config.io_timeout))
            .proxy(proxy)
            .tls_config(tls)
            .build()
            .into();
        Client::with_agent(agent, config)
    }

    /// A client that sends through `agent`, your own, with `config`'s API
    /// settings, retry policy and exchange limits. The agent's own
    /// settings stand for the rest: `config`'s timeouts, proxy and roots
    /// are not used (the `User-Agent` with its suffix is a header of every
    /// request, so it still applies).
    ///
    /// The agent must hand every status back as a response
    /// (`http_status_as_error(false)`) and follow no redirect
    /// (`max_redirects(0)` with `max_redirects_will_error(false)`): the core
    /// reads 3xx and 4xx answers itself. Both are checked.
    ///
    /// ```
    /// # fn main() -> Result<(), batch_blocking::Error> {
    /// use batch_blocking::{Client, ClientConfig};
    /// use batch_core::api::ApiConfig;
    ///
    /// let agent: ureq::Agent = ureq::Agent::config_builder()
    ///     .http_status_as_error(false)
    ///     .max_redirects(0)
    ///     .max_redirects_will_error(false)
    ///     .build()
    ///     .into();
    /// let client = Client::with_agent(agent, ClientConfig::new(ApiConfig::new("sk-...")))?;
    /// # let _ = client;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Setup`] if the agent breaks one of those rules or the base
    /// URL is not usable.
    pub fn with_agent(agent: ureq::Agent, config: ClientConfig) -> Result<Client, Error> {
        let c = agent.config();
        if c.http_status_as_error() {
            return Err(Error::Setup(
                "the agent turns statuses into errors: build it with http_status_as_error(false)"
                    .into(),
            ));
        }
        if c.max_redirects() != 0 || c.max_redirects_will_error() {
            return Err(Error::Setup(
                "the agent follows redirects: build it with max_redirects(0) and max_redirects_will_error(false)"
                    .into(),
            ));
        }
        Ok(Client {
            agent,
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

    pub(crate) fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// With a credential source, puts a valid credential into `headers`
    /// (the last one the client got, else a new one from the source).
    fn authorize(&self, headers: &mut http::HeaderMap) -> Result<(), Error> {
        let Some(need) = self.credentials.for_request(
            self.credential_source(),
            SystemClock.now(),
            self.settings.credential_refresh.margin,
        ) else {
            return Ok(());
        };
        let answer = match need {
            CredentialNeed::Ready(answer) => answer,
            CredentialNeed::Call(source) => source.call_blocking(),
        };
        self.credentials
            .authorize(&self.settings.api, answer, headers)
            .map_err(Error::Setup)
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
    pub fn run_job(
        &self,
        job: &mut Job,
        io: &mut impl batch_core::job::JobIo,
    ) -> Result<JobSummary, Error> {
        run(job, self, &SystemClock, io)
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
    pub fn submit_batch(
        &self,
        items: &[Item],
        prompt: &SystemPrompt,
        opts: &BatchOptions,
    ) -> Result<BatchJob, Error> {
        let mut handle =
            BatchJob::from_items_for(self.api().provider(), items, prompt, opts, seed())?;
        let summary = self.drive(&mut handle, JobOp::Submit, &SystemClock, None, &mut |_| {})?;
        handle.into_submitted(summary)
    }

    /// Like [`submit_batch`](Self::submit_batch) for raw request lines of any endpoint.
    ///
    /// # Errors
    /// As `submit_batch`.
    pub fn submit_requests(
        &self,
        requests: &[BatchRequest],
        opts: &BatchOptions,
    ) -> Result<BatchJob, Error> {
        let mut handle =
            BatchJob::from_requests_for(self.api().provider(), requests, opts, seed())?;
        let summary = self.drive(&mut handle, JobOp::Submit, &SystemClock, None, &mut |_| {})?;
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
    pub fn poll_status(&self, job: &mut BatchJob) -> Result<JobStatus, Error> {
        let summary = self.drive(job, JobOp::Poll, &SystemClock, None, &mut |_| {})?;
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
    pub fn get_results(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, Error> {
        self.collect(job, JobOp::Collect, &SystemClock)
    }

    /// Like [`get_results`](Self::get_results), handing each outcome to
    /// `on_result` instead of collecting them (outcomes an earlier call
    /// already made final come first), and returns the summary.
    ///
    /// # Errors
    /// As `get_results`, with no results inside (they went to `on_result`).
    pub fn stream_results(
        &self,
        job: &mut BatchJob,
        on_result: &mut dyn FnMut(JobResult),
        on_event: &mut dyn FnMut(&JobEvent),
    ) -> Result<JobSummary, Error> {
        let summary = self.drive(job, JobOp::Collect, &SystemClock, Some(on_result), on_event)?;
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
    pub fn submit_and_wait(
        &self,
        items: &[Item],
        prompt: &SystemPrompt,
        opts: &BatchOptions,
    ) -> Result<Vec<JobResult>, Error> {
        let mut handle =
            BatchJob::from_items_for(self.api().provider(), items, prompt, opts, seed())?;
        let summary = self.drive(&mut handle, JobOp::Collect, &SystemClock, None, &mut |_| {})?;
        handle.into_collected(summary)
    }

    /// Like [`submit_and_wait`](Self::submit_and_wait), handing each
    /// [`JobEvent`] to `on_event` as it happens: uploads, batches created,
    /// progress, and each retry with its reason, attempt and time (an
    /// unreachable server shows here long before the retry budget ends).
    ///
    /// # Errors
    /// As `submit_and_wait`.
    pub fn submit_and_wait_with_events(
        &self,
        items: &[Item],
        prompt: &SystemPrompt,
        opts: &BatchOptions,
        on_event: &mut dyn FnMut(&JobEvent),
    ) -> Result<Vec<JobResult>, Error> {
        let mut handle =
            BatchJob::from_items_for(self.api().provider(), items, prompt, opts, seed())?;
        let summary = self.drive(&mut handle, JobOp::Collect, &SystemClock, None, on_event)?;
        handle.into_collected(summary)
    }

    /// Like [`get_results`](Self::get_results) on a caller's clock
    /// (a [`ManualClock`](crate::ManualClock) runs a day-long job instantly in tests).
    ///
    /// # Errors
    /// As `get_results`.
    pub fn submit_and_wait_with_clock(
        &self,
        job: &mut BatchJob,
        clock: &impl Clock,
    ) -> Result<Vec<JobResult>, Error> {
        self.collect(job, JobOp::Collect, clock)
    }

    /// Cancels the job's batches, waits for them to stop, and returns every
    /// request's outcome (partial results, and `batch_cancelled` or
    /// `job_cancelled` for the rest), in input order, exactly once.
    ///
    /// # Errors
    /// [`Error::Ended`] if the job stopped (key refused, server unreachable
    /// past the retry budget, maximum wait), with the outcomes known so far.
    pub fn cancel(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, Error> {
        self.collect(job, JobOp::Cancel, &SystemClock)
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
    pub fn list(&self, limit: Option<u32>, after: Option<&str>) -> Result<List<Batch>, Error> {
        let request = batch_core::job::list_batches_request(&self.settings.api, limit, after)
            .map_err(|e| Error::Setup(e.to_string()))?;
        let (head, bytes) = self.execute(request)?;
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
    pub fn execute(
        &self,
        request: http::Request<api::Outgoing>,
    ) -> Result<(http::response::Parts, Vec<u8>), Error> {
        let (mut parts, body) = request.into_parts();
        self.authorize(&mut parts.headers)?;
        let body = crate::convert::body(body, |_| {
            Err(std::io::Error::other(
                "a request that streams a shard can only be executed by a job",
            ))
        })
        .map_err(|e| Error::Setup(e.to_string()))?;
        let uri = parts.uri.clone();
        let response = self
            .agent
            .run(http::Request::from_parts(
                parts,
                crate::convert::send_body(body),
            ))
            .map_err(|e| {
                Error::Transport(
                    crate::convert::failure_before_head(&e, &uri).redacted(&self.settings.api),
                )
            })?;
        let (head, body) = response.into_parts();
        let bytes = body
            .into_with_config()
            .limit(16 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| {
                Error::Transport(crate::convert::failure_in_body(&e).redacted(&self.settings.api))
            })?;
        Ok((head, bytes))
    }

    fn collect(
        &self,
        job: &mut BatchJob,
        op: JobOp,
        clock: &impl Clock,
    ) -> Result<Vec<JobResult>, Error> {
        let summary = self.drive(job, op, clock, None, &mut |_| {})?;
        job.finish_collect(op, summary, false)
    }

    /// The transport's part of every operation: the job the core asks for,
    /// driven to its stop point over the handle's memory.
    fn drive(
        &self,
        handle: &mut BatchJob,
        op: JobOp,
        clock: &impl Clock,
        on_result: Option<&mut dyn FnMut(JobResult)>,
        on_event: &mut dyn FnMut(&JobEvent),
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
        run(&mut job, self, clock, &mut io)
    }
}

/// The roots that verify servers: the platform's verifier alone when
/// nothing is added (the common case), else the platform's store read once
/// plus the extra roots, or the extra roots alone.
fn root_certs(config: &ClientConfig) -> Result<ureq::tls::RootCerts, Error> {
    if config.extra_root_certificates.is_empty() {
        if config.platform_roots {
            return Ok(ureq::tls::RootCerts::PlatformVerifier);
        }
        return Err(Error::Setup(
            "no root certificate is trusted: platform_roots is off and no extra root was given"
                .into(),
        ));
    }
    let mut certs = Vec::new();
    if config.platform_roots {
        // Certificates the store could not read are skipped, as the
        // platform's verifier does.
        let native = rustls_native_certs::load_native_certs();
        certs.extend(
            native
                .certs
                .iter()
                .map(|der| ureq::tls::Certificate::from_der(der).to_owned()),
        );
    }
    for (i, pem) in config.extra_root_certificates.iter().enumerate() {
        let before = certs.len();
        for item in ureq::tls::parse_pem(pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                Ok(_) => {}
                Err(e) => {
                    return Err(Error::Setup(format!(
                        "extra root certificate {i} is not PEM: {e}"
                    )));
                }
            }
        }
        if certs.len() == before {
            return Err(Error::Setup(format!(
                "extra root certificate {i} holds no CERTIFICATE block"
            )));
        }
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

/// A seed for backoff jitter and job ids, from the OS's hash randomness.
pub(crate) fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6f70_656e_6169);
    h.finish()
}
