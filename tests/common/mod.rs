//! Shared machinery of the end-to-end suite: an emulator per run, one
//! [`Transport`] trait over both clients, a recording [`JobIo`], and a
//! canonical rendering of results for byte-for-byte comparisons.
//!
//! Every scenario is written once against `&dyn Transport` and run by
//! [`both`]: the blocking client (ureq) and the async client (reqwest on
//! tokio), each against its own emulator started with the same seed, side by
//! side.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use batch_core::UnixMillis;
use batch_core::api::{ApiBase, ApiConfig, Batch, List, ShardRef};
use batch_core::input::{BatchRequest, Item, SystemPrompt};
use batch_core::job::{
    BatchJob, BatchOptions, Checkpoint, Job, JobConfig, JobEndError, JobEvent, JobIo, JobOutcome,
    JobResult, JobStatus, JobSummary, ShardLimits,
};
use batch_core::results::Outcome;
use batch_emulator::{Counters, Emulator, EmulatorHandle, FaultConfig, Timings};

/// The API key every client uses and every emulator insists on.
pub const KEY: &str = "sk-e2e-secret-value";
/// The model of every request.
pub const MODEL: &str = "gpt-4o-mini";
/// The system prompt shared by the items.
pub const SYSTEM: &str = "Answer briefly.";
/// The seed of every job (jitter and job id), so both transports send the same requests.
pub const JOB_SEED: u64 = 0x0e2e_5eed;
/// How often the jobs poll (real time).
pub const POLL: Duration = Duration::from_millis(50);
/// No job of the suite may take longer than this; past it the job stops
/// waiting, and the scenario's assertions fail instead of hanging.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// How an emulator is started for one run.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Virtual seconds per real second.
    pub speed: f64,
    /// Seed of ids, output order and probabilistic faults.
    pub seed: u64,
    /// Fault spec active from the start.
    pub faults: String,
    /// Lifecycle durations (virtual).
    pub timings: Timings,
    /// Most requests the emulator accepts in one batch.
    pub max_requests_per_batch: u64,
    /// The only key the emulator accepts.
    pub api_key: String,
    /// The largest batch input file the emulator accepts.
    pub max_batch_file_bytes: u64,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            speed: 5000.0,
            seed: 7,
            faults: String::new(),
            timings: Timings {
                per_request: Duration::from_millis(100),
                ..Timings::default()
            },
            max_requests_per_batch: 50_000,
            api_key: KEY.to_owned(),
            max_batch_file_bytes: 200 * 1024 * 1024,
        }
    }
}

impl Setup {
    /// The default setup with `faults`.
    pub fn with_faults(faults: &str) -> Setup {
        Setup {
            faults: faults.to_owned(),
            ..Setup::default()
        }
    }

    /// Starts an emulator on loopback with this setup.
    pub fn start(&self) -> EmulatorHandle {
        let faults = FaultConfig::parse(&self.faults).expect("fault spec");
        Emulator::builder()
            .speed(self.speed)
            .seed(self.seed)
            .faults(faults)
            .api_key(self.api_key.clone())
            .timings(self.timings)
            .max_requests_per_batch(self.max_requests_per_batch)
            .max_batch_file_bytes(self.max_batch_file_bytes)
            .start_blocking()
            .expect("emulator starts")
    }
}

/// An error of either transport, flattened for assertions. The strings are
/// the error's `Debug` and `Display`, kept for the secrets checks.
#[derive(Debug)]
pub enum Fail {
    /// `Error::Ended`.
    Ended {
        reason: Box<JobEndError>,
        results: Vec<JobResult>,
        /// The handle a failed submit created.
        handle: Option<Box<BatchJob>>,
        debug: String,
        display: String,
    },
    /// Any other error.
    Other { debug: String, display: String },
}

impl Fail {
    /// The `Debug` and `Display` texts.
    pub fn texts(&self) -> String {
        match self {
            Fail::Ended { debug, display, .. } | Fail::Other { debug, display } => {
                format!("{debug}\n{display}")
            }
        }
    }
}

macro_rules! fail_from {
    ($name:ident, $krate:ident) => {
        fn $name(e: $krate::Error) -> Fail {
            let debug = format!("{e:?}");
            let display = e.to_string();
            match e {
                $krate::Error::Ended {
                    reason,
                    results,
                    handle,
                    ..
                } => Fail::Ended {
                    reason,
                    results,
                    handle,
                    debug,
                    display,
                },
                _ => Fail::Other { debug, display },
            }
        }
    };
}
fail_from!(fail_blocking, batch_blocking);
fail_from!(fail_async, batch_async);

/// The seed's operations and the driver loop, over either transport.
pub trait Transport: Sync {
    /// `blocking` or `async`.
    fn name(&self) -> &'static str;
    /// The client's `Debug` output.
    fn client_debug(&self) -> String;
    /// The transport's clock.
    fn now(&self) -> UnixMillis;
    fn submit_batch(
        &self,
        items: &[Item],
        prompt: &SystemPrompt,
        opts: &BatchOptions,
    ) -> Result<BatchJob, Fail>;
    fn submit_requests(
        &self,
        requests: &[BatchRequest],
        opts: &BatchOptions,
    ) -> Result<BatchJob, Fail>;
    fn poll_status(&self, job: &mut BatchJob) -> Result<JobStatus, Fail>;
    fn get_results(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, Fail>;
    fn stream_results(
        &self,
        job: &mut BatchJob,
        on_result: &mut (dyn FnMut(JobResult) + Send),
        on_event: &mut (dyn FnMut(&JobEvent) + Send),
    ) -> Result<JobSummary, Fail>;
    fn submit_and_wait(
        &self,
        items: &[Item],
        prompt: &SystemPrompt,
        opts: &BatchOptions,
    ) -> Result<Vec<JobResult>, Fail>;
    fn cancel(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, Fail>;
    fn list(&self, limit: Option<u32>, after: Option<&str>) -> Result<List<Batch>, Fail>;
    /// The transport's `run` loop on the system clock.
    fn run(&self, job: &mut Job, io: &mut Recorder<'_>) -> Result<JobSummary, Fail>;
    /// A client of the same transport for the server at `base`, with `key`.
    fn with(&self, base: &str, key: &str) -> Box<dyn Transport>;
}

/// The suite's retry policy for clients: as [`job_config`]'s, so that an
/// outage past the retry budget ends in about a second.
pub fn fast_retry() -> batch_core::retry::RetryPolicy {
    let mut r = batch_core::retry::RetryPolicy::default();
    r.base_delay = Duration::from_millis(10);
    r.max_delay = Duration::from_millis(200);
    r.max_retry_after = Duration::from_millis(200);
    r.max_attempts = 12;
    r
}

/// The API settings for an emulator at `base`, with key `key`.
pub fn api_config(base: &str, key: &str) -> ApiConfig {
    ApiConfig::new(key).with_base_url(base)
}

fn timeouts<C>(mut c: C, set: impl FnOnce(&mut C)) -> C {
    set(&mut c);
    c
}

/// The blocking transport (ureq).
pub struct Blocking {
    client: batch_blocking::Client,
}

impl Blocking {
    pub fn new(base: &str, key: &str) -> Blocking {
        let config = timeouts(
            batch_blocking::ClientConfig::new(api_config(base, key)),
            |c| {
                c.connect_timeout = Duration::from_secs(5);
                c.io_timeout = Duration::from_secs(20);
                c.retry = fast_retry();
            },
        );
        Blocking {
            client: batch_blocking::Client::new(config).expect("blocking client"),
        }
    }
}

impl Transport for Blocking {
    fn name(&self) -> &'static str {
        "blocking"
    }
    fn client_debug(&self) -> String {
        format!("{:?}", self.client)
    }
    fn now(&self) -> UnixMillis {
        use batch_blocking::Clock;
        batch_blocking::SystemClock.now()
    }
    fn submit_batch(
        &self,
        items: &[Item],
        prompt: &SystemPrompt,
        opts: &BatchOptions,
    ) -> Result<BatchJob, Fail> {
        self.client
            .submit_batch(items, prompt, opts)
            .map_err(fail_blocking)
    }
    fn submit_requests(
        &self,
        requests: &[BatchRequest],
        opts: &BatchOptions,
    ) -> Result<BatchJob, Fail> {
        self.client
            .submit_requests(requests, opts)
            .map_err(fail_blocking)
    }
    fn poll_status(&self, job: &mut BatchJob) -> Result<JobStatus, Fail> {
        self.client.poll_status(job).map_err(fail_blocking)
    }
    fn get_results(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, Fail> {
        self.client.get_results(job).map_err(fail_blocking)
    }
    fn stream_results(
        &self,
        job: &mut BatchJob,
        on_result: &mut (dyn FnMut(JobResult) + Send),
        on_event: &mut (dyn FnMut(&JobEvent) + Send),
    ) -> Result<JobSummary, Fail> {
        self.client
            .stream_results(job, on_result, on_event)
            .map_err(fail_blocking)
    }
    fn submit_and_wait(
        &self,
        items: &[Item],
        prompt: &SystemPrompt,
        opts: &BatchOptions,
    ) -> Result<Vec<JobResult>, Fail> {
        self.client
            .submit_and_wait(items, prompt, opts)
            .map_err(fail_blocking)
    }
    fn cancel(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, Fail> {
        self.client.cancel(job).map_err(fail_blocking)
    }
    fn list(&self, limit: Option<u32>, after: Option<&str>) -> Result<List<Batch>, Fail> {
        self.client.list(limit, after).map_err(fail_blocking)
    }
    fn run(&self, job: &mut Job, io: &mut Recorder<'_>) -> Result<JobSummary, Fail> {
        batch_blocking::run(job, &self.client, &batch_blocking::SystemClock, io)
            .map_err(fail_blocking)
    }
    fn with(&self, base: &str, key: &str) -> Box<dyn Transport> {
        Box::new(Blocking::new(base, key))
    }
}

/// The async transport (reqwest), driven on a tokio runtime of its own.
pub struct Async {
    client: batch_async::Client,
    rt: tokio::runtime::Runtime,
}

impl Async {
    pub fn new(base: &str, key: &str) -> Async {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let config = timeouts(batch_async::ClientConfig::new(api_config(base, key)), |c| {
            c.connect_timeout = Duration::from_secs(5);
            c.io_timeout = Duration::from_secs(20);
            c.retry = fast_retry();
        });
        let client = batch_async::Client::new(config).expect("async client");
        Async { client, rt }
    }
}

impl Transport for Async {
    fn name(&self) -> &'static str {
        "async"
    }
    fn client_debug(&self) -> String {
        format!("{:?}", self.client)
    }
    fn now(&self) -> UnixMillis {
        use batch_async::Clock;
        batch_async::SystemClock.now()
    }
    fn submit_batch(
        &self,
        items: &[Item],
        prompt: &SystemPrompt,
        opts: &BatchOptions,
    ) -> Result<BatchJob, Fail> {
        self.rt
            .block_on(self.client.submit_batch(items, prompt, opts))
            .map_err(fail_async)
    }
    fn submit_requests(
        &self,
        requests: &[BatchRequest],
        opts: &BatchOptions,
    ) -> Result<BatchJob, Fail> {
        self.rt
            .block_on(self.client.submit_requests(requests, opts))
            .map_err(fail_async)
    }
    fn poll_status(&self, job: &mut BatchJob) -> Result<JobStatus, Fail> {
        self.rt
            .block_on(self.client.poll_status(job))
            .map_err(fail_async)
    }
    fn get_results(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, Fail> {
        self.rt
            .block_on(self.client.get_results(job))
            .map_err(fail_async)
    }
    fn stream_results(
        &self,
        job: &mut BatchJob,
        on_result: &mut (dyn FnMut(JobResult) + Send),
        on_event: &mut (dyn FnMut(&JobEvent) + Send),
    ) -> Result<JobSummary, Fail> {
        self.rt
            .block_on(self.client.stream_results(job, on_result, on_event))
            .map_err(fail_async)
    }
    fn submit_and_wait(
        &self,
        items: &[Item],
        prompt: &SystemPrompt,
        opts: &BatchOptions,
    ) -> Result<Vec<JobResult>, Fail> {
        self.rt
            .block_on(self.client.submit_and_wait(items, prompt, opts))
            .map_err(fail_async)
    }
    fn cancel(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, Fail> {
        self.rt
            .block_on(self.client.cancel(job))
            .map_err(fail_async)
    }
    fn list(&self, limit: Option<u32>, after: Option<&str>) -> Result<List<Batch>, Fail> {
        self.rt
            .block_on(self.client.list(limit, after))
            .map_err(fail_async)
    }
    fn run(&self, job: &mut Job, io: &mut Recorder<'_>) -> Result<JobSummary, Fail> {
        self.rt
            .block_on(batch_async::run(
                job,
                &self.client,
                &batch_async::SystemClock,
                io,
            ))
            .map_err(fail_async)
    }
    fn with(&self, base: &str, key: &str) -> Box<dyn Transport> {
        Box::new(Async::new(base, key))
    }
}

/// Runs `scenario` once per transport, each against its own emulator started
/// from `setup` (same seed), side by side. Returns `[blocking, async]`.
pub fn both<R: Send>(
    setup: &Setup,
    scenario: impl Fn(&dyn Transport, &EmulatorHandle) -> R + Sync,
) -> [R; 2] {
    both_with_key(setup, KEY, scenario)
}

/// As [`both`], with the clients using `key`.
pub fn both_with_key<R: Send>(
    setup: &Setup,
    key: &str,
    scenario: impl Fn(&dyn Transport, &EmulatorHandle) -> R + Sync,
) -> [R; 2] {
    let scenario = &scenario;
    std::thread::scope(|s| {
        let blocking = s.spawn(move || {
            let emu = setup.start();
            let t = Blocking::new(&emu.base_url(), key);
            scenario(&t, &emu)
        });
        let asynchronous = s.spawn(move || {
            let emu = setup.start();
            let t = Async::new(&emu.base_url(), key);
            scenario(&t, &emu)
        });
        let b = blocking.join();
        let a = asynchronous.join();
        match (b, a) {
            (Ok(b), Ok(a)) => [b, a],
            (Err(p), _) | (_, Err(p)) => std::panic::resume_unwind(p),
        }
    })
}

/// `n` items `req-00000`, … whose messages are `question i`, except where
/// `message` says otherwise.
pub fn items(n: usize, message: impl Fn(usize) -> Option<String>) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let text = message(i).unwrap_or_else(|| format!("question {i}"));
            Item::new(format!("req-{i:05}"), text)
        })
        .collect()
}

/// The system prompt of the suite.
pub fn prompt() -> SystemPrompt {
    SystemPrompt::Text(SYSTEM.into())
}

/// Options: the suite's model, short polls, at most `per_shard` requests per
/// shard, `parallel` shards at once, and a bounded wait.
pub fn options(per_shard: u64, parallel: usize) -> BatchOptions {
    let mut o = BatchOptions::new(MODEL)
        .poll_interval(POLL)
        .max_wait(MAX_WAIT)
        .limits(ShardLimits::new(per_shard, 200 * 1024 * 1024));
    o.max_parallel = parallel;
    o
}

/// A job handle for `items`, with the suite's fixed seed (so both transports
/// build the same plan, job id and shard bytes).
pub fn plan(items: &[Item], per_shard: u64, parallel: usize) -> BatchJob {
    BatchJob::from_items(items, &prompt(), &options(per_shard, parallel), JOB_SEED)
        .expect("valid items")
}

/// A job configuration for driving [`Job`] directly: short polls, fast
/// retries (the emulator's `Retry-After` of 1 s is capped to 200 ms), a
/// fixed seed and a bounded wait.
pub fn job_config(base: &str, parallel: usize) -> JobConfig {
    let api = ApiBase::new(&api_config(base, KEY)).expect("api settings");
    let mut cfg = JobConfig::new(api);
    cfg.poll_interval = POLL;
    cfg.max_wait = Some(MAX_WAIT);
    cfg.seed = JOB_SEED;
    cfg.max_parallel = parallel;
    cfg.retry.base_delay = Duration::from_millis(10);
    cfg.retry.max_delay = Duration::from_millis(200);
    cfg.retry.max_retry_after = Duration::from_millis(200);
    cfg.retry.max_attempts = 12;
    cfg
}

/// One delivery to the [`Recorder`], in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Result(u64),
    Event(JobEvent),
    Persist,
}

/// A [`JobIo`] that keeps everything: results, events, checkpoints, and the
/// order they came in.
pub struct Recorder<'a> {
    shards: &'a [Vec<u8>],
    pub results: Vec<JobResult>,
    pub log: Vec<Entry>,
    pub checkpoints: Vec<Checkpoint>,
}

impl<'a> Recorder<'a> {
    pub fn new(shards: &'a [Vec<u8>]) -> Recorder<'a> {
        Recorder {
            shards,
            results: Vec::new(),
            log: Vec::new(),
            checkpoints: Vec::new(),
        }
    }

    /// Every event, in order.
    pub fn events(&self) -> Vec<JobEvent> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Entry::Event(ev) => Some(ev.clone()),
                _ => None,
            })
            .collect()
    }
}

impl JobIo for Recorder<'_> {
    fn persist(&mut self, checkpoint: &Checkpoint) -> std::io::Result<()> {
        self.checkpoints.push(checkpoint.clone());
        self.log.push(Entry::Persist);
        Ok(())
    }

    fn result(&mut self, result: JobResult) -> std::io::Result<()> {
        self.log.push(Entry::Result(result.index));
        self.results.push(result);
        Ok(())
    }

    fn event(&mut self, event: &JobEvent) -> std::io::Result<()> {
        self.log.push(Entry::Event(event.clone()));
        Ok(())
    }

    fn open_shard(&mut self, shard: &ShardRef) -> std::io::Result<Box<dyn Read + Send>> {
        let bytes = self
            .shards
            .get(usize::try_from(shard.index).unwrap_or(usize::MAX))
            .ok_or_else(|| std::io::Error::other("no such shard"))?;
        Ok(Box::new(std::io::Cursor::new(bytes.clone())))
    }
}

/// What one run of a job through [`Transport::run`] left behind.
#[derive(Debug)]
pub struct Report {
    pub transport: &'static str,
    /// Every result, in delivery order.
    pub delivered: Vec<JobResult>,
    pub log: Vec<Entry>,
    pub checkpoints: usize,
    pub summary: JobSummary,
    pub counters: Counters,
}

impl Report {
    /// The results in input order (each index once, checked by [`assert_each_once`]).
    pub fn sorted(&self) -> Vec<JobResult> {
        let mut r = self.delivered.clone();
        r.sort_by_key(|r| r.index);
        r
    }

    pub fn events(&self) -> Vec<JobEvent> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Entry::Event(ev) => Some(ev.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Drives a job for `handle`'s plan with the transport's `run` loop, with
/// [`job_config`] adjusted by `tweak`, and reads the emulator's counters at
/// the end.
pub fn drive(
    t: &dyn Transport,
    emu: &EmulatorHandle,
    handle: &BatchJob,
    parallel: usize,
    tweak: impl FnOnce(&mut JobConfig),
) -> Report {
    let mut cfg = job_config(&emu.base_url(), parallel);
    tweak(&mut cfg);
    let mut job = Job::new(cfg, handle.plan().clone(), t.now());
    let mut io = Recorder::new(handle.shard_bytes());
    let summary = t
        .run(&mut job, &mut io)
        .unwrap_or_else(|e| panic!("{}: run failed: {e:?}", t.name()));
    Report {
        transport: t.name(),
        delivered: io.results,
        log: io.log,
        checkpoints: io.checkpoints.len(),
        summary,
        counters: emu.counters(),
    }
}

/// Asserts that `results` hold exactly one outcome for each of `items`, under
/// its own index and `custom_id`.
pub fn assert_each_once(who: &str, results: &[JobResult], items: &[Item]) {
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    for r in results {
        *seen.entry(r.index).or_default() += 1;
        let item = usize::try_from(r.index)
            .ok()
            .and_then(|i| items.get(i))
            .unwrap_or_else(|| panic!("{who}: result for unknown index {}", r.index));
        assert_eq!(
            r.custom_id, item.custom_id,
            "{who}: custom_id of {}",
            r.index
        );
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{who}: results delivered twice: {twice:?}"
    );
    let missing: Vec<usize> = (0..items.len())
        .filter(|i| !seen.contains_key(&(*i as u64)))
        .collect();
    assert!(
        missing.is_empty(),
        "{who}: {} requests without an outcome, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

/// One line per result: index, custom_id, outcome kind, status code, and the
/// content (plus parsed JSON) or the error's code and message.
pub fn canonical(results: &[JobResult]) -> String {
    let mut out = String::new();
    for r in results {
        let rest = match &r.outcome {
            JobOutcome::Succeeded(rec) => match &rec.outcome {
                Outcome::Succeeded(s) => format!(
                    "succeeded\t{}\t{:?}\t{}",
                    s.status_code.unwrap_or(0),
                    s.content(),
                    s.json()
                        .map_or_else(|| "-".to_owned(), serde_json::Value::to_string)
                ),
                other => format!("succeeded?\t{other:?}"),
            },
            JobOutcome::Failed(rec) => match &rec.outcome {
                Outcome::Failed(f) => format!(
                    "failed\t{}\t{:?}\t{:?}",
                    f.status_code.unwrap_or(0),
                    f.code,
                    f.message
                ),
                other => format!("failed?\t{other:?}"),
            },
            JobOutcome::NotProcessed(np) => {
                format!("not_processed\t0\t{:?}\t{:?}", np.code, np.message)
            }
            other => format!("other\t{other:?}"),
        };
        out.push_str(&format!("{}\t{}\t{rest}\n", r.index, r.custom_id));
    }
    mask_ids(&out)
}

/// `text` with the emulator's batch and file ids replaced by `batch_*` and
/// `file-*`. They come from one sequence per emulator, so they match between
/// two runs only when both allocate them in the same order, which depends on
/// timing (a finished batch allocates its result files' ids).
pub fn mask_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = [("batch_", 32, true), ("file-", 22, false)]
            .into_iter()
            .filter_map(|(prefix, len, hex)| rest.find(prefix).map(|at| (at, prefix, len, hex)))
            .min_by_key(|(at, ..)| *at);
        let Some((at, prefix, len, hex)) = next else {
            out.push_str(rest);
            return out;
        };
        let id = &rest[at + prefix.len()..];
        let fits = id.len() >= len
            && id.as_bytes()[..len].iter().all(|b| {
                if hex {
                    b.is_ascii_hexdigit()
                } else {
                    b.is_ascii_alphanumeric()
                }
            });
        out.push_str(&rest[..at]);
        out.push_str(prefix);
        if fits {
            out.push('*');
            rest = &id[len..];
        } else {
            rest = id;
        }
    }
}

/// `summary` without the emulator's ids (see [`mask_ids`]).
pub fn without_ids(summary: &JobSummary) -> JobSummary {
    let mut s = summary.clone();
    for shard in &mut s.shards {
        shard.file_id = shard.file_id.as_ref().map(|_| "file-*".to_owned());
        shard.batch_id = shard.batch_id.as_ref().map(|_| "batch_*".to_owned());
    }
    s
}

/// The content of a succeeded result, if it is one.
pub fn content(r: &JobResult) -> Option<&str> {
    match &r.outcome {
        JobOutcome::Succeeded(rec) => rec.content(),
        _ => None,
    }
}

/// Asserts every result succeeded with the emulator's echo of its message.
pub fn assert_echoes(who: &str, results: &[JobResult], items: &[Item]) {
    for r in results {
        let item = &items[usize::try_from(r.index).expect("index")];
        assert_eq!(
            content(r),
            Some(format!("Echo: {}", item.message).as_str()),
            "{who}: result {} is {:?}",
            r.custom_id,
            r.outcome
        );
    }
}

/// Asserts that the two transports' results render to the same bytes, and
/// their summaries are equal.
pub fn assert_same(reports: &[Report; 2]) {
    let [b, a] = reports;
    let (cb, ca) = (canonical(&b.sorted()), canonical(&a.sorted()));
    if cb != ca {
        let first = cb
            .lines()
            .zip(ca.lines())
            .find(|(x, y)| x != y)
            .map(|(x, y)| format!("blocking: {x}\nasync:    {y}"));
        panic!("the transports' results differ; first difference:\n{first:?}");
    }
    assert_eq!(
        without_ids(&b.summary),
        without_ids(&a.summary),
        "the transports' summaries differ"
    );
}

/// A route's request count.
pub fn on(c: &Counters, route: &str) -> u64 {
    c.requests_on(route)
}

/// Runs `job` to its stop on a client built from `config`: the blocking
/// transport when `blocking`, else the async one on a runtime of its own.
pub fn run_on(
    blocking: bool,
    config: batch_core::job::ClientConfig,
    job: &mut Job,
    io: &mut impl JobIo,
) -> JobSummary {
    if blocking {
        let client = batch_blocking::Client::new(config).expect("client");
        batch_blocking::run(job, &client, &batch_blocking::SystemClock, io).expect("blocking run")
    } else {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = batch_async::Client::new(config).expect("client");
        rt.block_on(batch_async::run(
            job,
            &client,
            &batch_async::SystemClock,
            io,
        ))
        .expect("async run")
    }
}

/// [`run_on`] with a client of `api`, fast retries and a 20 s read timeout.
pub fn run_with_api(
    blocking: bool,
    api: &ApiConfig,
    job: &mut Job,
    io: &mut impl JobIo,
) -> JobSummary {
    let mut config = batch_core::job::ClientConfig::new(api.clone());
    config.retry = fast_retry();
    config.io_timeout = Duration::from_secs(20);
    run_on(blocking, config, job, io)
}
