//! Providers other than OpenAI, end to end: the emulator answers as Azure
//! OpenAI (v1 and dated API) or as a Groq-like service, and both transports
//! run the same scenarios against it (clean, faults, stop and resume,
//! expiry) with the provider presets. The emulator refuses a request that
//! does not have the provider's shape (a Bearer key where Azure wants
//! `api-key`, a dated path without `api-version`), so a finished job proves
//! every request had it.

use std::time::Duration;

use batch_core::api::{ApiBase, ApiConfig, BatchStatus, CompletionWindow};
use batch_core::job::{Checkpoint, Job, JobConfig, JobOutcome, JobSummary, StopAfter};
use batch_emulator::{Counters, Emulator, EmulatorHandle, FaultConfig, ProviderMode, Timings};

use crate::common::*;

/// A provider configuration under test.
#[derive(Copy, Clone, Debug)]
enum Mode {
    AzureV1,
    AzureDated,
    Groq,
}

const MODES: [Mode; 3] = [Mode::AzureV1, Mode::AzureDated, Mode::Groq];

impl Mode {
    fn emulator(self) -> ProviderMode {
        match self {
            Mode::AzureV1 | Mode::AzureDated => ProviderMode::Azure,
            Mode::Groq => ProviderMode::Groq,
        }
    }

    /// The preset for the emulator at `emu`, as a user would write it for
    /// the real service (the resource endpoint for Azure).
    fn config(self, emu: &EmulatorHandle) -> ApiConfig {
        let origin = format!("http://{}", emu.addr());
        match self {
            Mode::AzureV1 => ApiConfig::azure(&origin, KEY),
            Mode::AzureDated => ApiConfig::azure_dated(&origin, KEY, "2024-10-21"),
            Mode::Groq => ApiConfig::groq(KEY).with_base_url(emu.base_url()),
        }
    }
}

fn start(mode: Mode, faults: &str, speed: f64, timings: Timings) -> EmulatorHandle {
    Emulator::builder()
        .provider(mode.emulator())
        .speed(speed)
        .seed(7)
        .faults(FaultConfig::parse(faults).expect("fault spec"))
        .api_key(KEY)
        .timings(timings)
        .start_blocking()
        .expect("emulator starts")
}

fn job_config(api: &ApiConfig, parallel: usize) -> JobConfig {
    let mut cfg = JobConfig::new(ApiBase::new(api).expect("api settings"));
    cfg.poll_interval = POLL;
    cfg.max_wait = Some(MAX_WAIT);
    cfg.seed = JOB_SEED;
    cfg.max_parallel = parallel;
    cfg.retry = fast_retry();
    cfg
}

struct Outcome {
    who: String,
    results: Vec<batch_core::job::JobResult>,
    summary: JobSummary,
    counters: Counters,
}

/// Runs `scenario` for every mode and both transports, side by side.
fn each(scenario: impl Fn(Mode, bool) -> Outcome + Sync) -> Vec<Outcome> {
    let scenario = &scenario;
    std::thread::scope(|s| {
        let runs: Vec<_> = MODES
            .iter()
            .flat_map(|m| [(*m, true), (*m, false)])
            .map(|(m, b)| s.spawn(move || scenario(m, b)))
            .collect();
        runs.into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

fn who(mode: Mode, blocking: bool) -> String {
    format!("{mode:?}/{}", if blocking { "blocking" } else { "async" })
}

fn succeeded(o: &Outcome) -> usize {
    o.results
        .iter()
        .filter(|r| matches!(r.outcome, JobOutcome::Succeeded(_)))
        .count()
}

/// No request was refused for its shape (auth or missing `api-version`).
fn assert_shape_accepted(o: &Outcome) {
    for status in ["401", "404"] {
        assert_eq!(
            o.counters.responses.get(status),
            None,
            "{}: {status} answers: {:?}",
            o.who,
            o.counters.responses
        );
    }
}

#[test]
fn clean_jobs_finish_on_every_provider() {
    let items = items(30, |_| None);
    let handle = plan(&items, 10, 2);
    for o in each(|mode, blocking| {
        let emu = start(mode, "", 5000.0, Timings::default());
        let api = mode.config(&emu);
        let mut job = Job::new(job_config(&api, 2), handle.plan().clone(), now());
        let mut io = Recorder::new(handle.shard_bytes());
        let summary = run_with_api(blocking, &api, &mut job, &mut io);
        Outcome {
            who: who(mode, blocking),
            results: io.results,
            summary,
            counters: emu.counters(),
        }
    }) {
        assert_each_once(&o.who, &o.results, &items);
        assert_eq!(succeeded(&o), 30, "{}", o.who);
        assert!(o.summary.complete, "{}", o.who);
        assert_eq!(o.counters.batches_created, 3, "{}", o.who);
        assert_shape_accepted(&o);
    }
}

#[test]
fn faults_are_retried_on_every_provider() {
    let items = items(30, |_| None);
    let handle = plan(&items, 10, 3);
    for o in each(|mode, blocking| {
        let emu = start(
            mode,
            "429-every=3,500-every=5@batches.get,cut-content-every=2",
            5000.0,
            Timings::default(),
        );
        let api = mode.config(&emu);
        let mut job = Job::new(job_config(&api, 3), handle.plan().clone(), now());
        let mut io = Recorder::new(handle.shard_bytes());
        let summary = run_with_api(blocking, &api, &mut job, &mut io);
        Outcome {
            who: who(mode, blocking),
            results: io.results,
            summary,
            counters: emu.counters(),
        }
    }) {
        assert_each_once(&o.who, &o.results, &items);
        assert_eq!(succeeded(&o), 30, "{}", o.who);
        assert!(o.counters.faults_total() > 0, "{}", o.who);
        assert_eq!(o.counters.batches_created, 3, "{}: exactly once", o.who);
        assert_shape_accepted(&o);
    }
}

#[test]
fn a_stopped_job_resumes_with_a_new_client_on_every_provider() {
    let items = items(20, |_| None);
    let handle = plan(&items, 10, 2);
    for o in each(|mode, blocking| {
        let emu = start(mode, "", 5000.0, Timings::default());
        let api = mode.config(&emu);
        // First process: submit, then stop (as if killed after its last
        // checkpoint).
        let mut cfg = job_config(&api, 2);
        cfg.stop_after = StopAfter::Submitted;
        let mut job = Job::new(cfg, handle.plan().clone(), now());
        let mut io = Recorder::new(handle.shard_bytes());
        run_with_api(blocking, &api, &mut job, &mut io);
        let checkpoint: Checkpoint = io.checkpoints.last().cloned().expect("a checkpoint");
        assert!(io.results.is_empty());
        // Second process: the same plan and checkpoint, a new client.
        let mut job = Job::resume(
            job_config(&api, 2),
            handle.plan().clone(),
            checkpoint,
            now(),
        )
        .expect("resume");
        let mut io = Recorder::new(handle.shard_bytes());
        let summary = run_with_api(blocking, &api, &mut job, &mut io);
        Outcome {
            who: who(mode, blocking),
            results: io.results,
            summary,
            counters: emu.counters(),
        }
    }) {
        assert_each_once(&o.who, &o.results, &items);
        assert_eq!(succeeded(&o), 20, "{}", o.who);
        assert_eq!(o.counters.files_uploaded, 2, "{}: no upload twice", o.who);
        assert_eq!(o.counters.batches_created, 2, "{}: no batch twice", o.who);
        assert_shape_accepted(&o);
    }
}

/// Requests of one virtual hour each: 40 of them take longer than `24h`.
fn slow() -> Timings {
    Timings {
        per_request: Duration::from_secs(3600),
        ..Timings::default()
    }
}

#[test]
fn past_24h_groq_expires_azure_does_not_and_7d_finishes() {
    let items = items(40, |_| None);
    let handle = plan(&items, 40, 1);
    let outcomes = each(|mode, blocking| {
        let emu = start(mode, "", 1_000_000.0, slow());
        let api = mode.config(&emu);
        let mut job = Job::new(job_config(&api, 1), handle.plan().clone(), now());
        let mut io = Recorder::new(handle.shard_bytes());
        let summary = run_with_api(blocking, &api, &mut job, &mut io);
        Outcome {
            who: who(mode, blocking),
            results: io.results,
            summary,
            counters: emu.counters(),
        }
    });
    for o in &outcomes {
        assert_each_once(&o.who, &o.results, &items);
        assert!(o.summary.complete, "{}", o.who);
        if o.who.starts_with("Groq") {
            // 60 s of validation, then 23 whole hours of requests fit in 24h.
            assert_eq!(
                o.summary.shards[0].status,
                Some(BatchStatus::Expired),
                "{}",
                o.who
            );
            assert_eq!(succeeded(o), 23, "{}", o.who);
            assert_eq!(o.summary.not_processed, 17, "{}", o.who);
        } else {
            // Azure OpenAI does not expire batches that run long.
            assert_eq!(
                o.summary.shards[0].status,
                Some(BatchStatus::Completed),
                "{}",
                o.who
            );
            assert_eq!(succeeded(o), 40, "{}", o.who);
        }
    }

    // With a 7-day window the same Groq job finishes, through both transports.
    for blocking in [true, false] {
        let emu = start(Mode::Groq, "", 1_000_000.0, slow());
        let api = Mode::Groq.config(&emu);
        let mut cfg = job_config(&api, 1);
        cfg.completion_window = CompletionWindow::parse("7d");
        assert_eq!(cfg.validate_settings(), Ok(()));
        let mut job = Job::new(cfg, handle.plan().clone(), now());
        let mut io = Recorder::new(handle.shard_bytes());
        let summary = run_with_api(blocking, &api, &mut job, &mut io);
        assert_eq!(summary.succeeded, 40, "7d/{blocking}: {summary:?}");
        assert_eq!(summary.shards[0].status, Some(BatchStatus::Completed));
    }
}

#[test]
fn the_emulator_refuses_requests_without_the_providers_shape() {
    let items = items(2, |_| None);
    let handle = plan(&items, 10, 1);
    // A Bearer key (OpenAI's shape) against Azure, and the dated paths
    // without `api-version`: refused with 401 and 404, never retried into
    // success.
    let emu = start(Mode::AzureV1, "", 5000.0, Timings::default());
    let origin = format!("http://{}", emu.addr());
    let wrong = [
        ApiConfig::new(KEY).with_base_url(format!("{origin}/openai/v1")),
        ApiConfig::azure(&origin, KEY).with_base_url(format!("{origin}/openai")),
    ];
    for (api, status) in wrong.iter().zip(["401", "404"]) {
        emu.reset_counters();
        let mut job = Job::new(job_config(api, 1), handle.plan().clone(), now());
        let mut io = Recorder::new(handle.shard_bytes());
        let client = batch_blocking::Client::new(batch_core::job::ClientConfig::new(api.clone()))
            .expect("client");
        let got = batch_blocking::run(&mut job, &client, &batch_blocking::SystemClock, &mut io);
        let succeeded = got.as_ref().map_or(0, |s| s.succeeded);
        assert_eq!(succeeded, 0, "{status}: {got:?}");
        let counters = emu.counters();
        assert!(
            counters.responses.get(status).is_some_and(|n| *n > 0),
            "{status}: {:?}",
            counters.responses
        );
        assert_eq!(counters.files_uploaded, 0);
        // The key never leaves in what the job reports.
        let text = format!("{got:?}{:?}", io.events());
        assert!(!text.contains(KEY), "{text}");
    }
}

fn now() -> batch_core::UnixMillis {
    use batch_blocking::Clock;
    batch_blocking::SystemClock.now()
}

#[test]
fn dated_azure_jobs_write_request_lines_without_v1() {
    // Azure's batch guide for dated API versions: `"url": "/chat/completions"`.
    let items = items(6, |_| None);
    let provider = batch_core::api::Provider::azure_dated("2024-10-21");
    // The provider's url style; the suite's small shards.
    let opts = options(3, 2)
        .for_provider(&provider)
        .limits(batch_core::job::ShardLimits::new(3, 200 * 1024 * 1024));
    let handle = batch_core::job::BatchJob::from_items(&items, &prompt(), &opts, JOB_SEED)
        .expect("valid items");
    for shard in handle.shard_bytes() {
        let text = String::from_utf8_lossy(shard);
        assert_eq!(
            text.matches("\"url\":\"/chat/completions\"").count(),
            text.lines().count(),
            "{text}"
        );
    }
    for blocking in [true, false] {
        let emu = start(Mode::AzureDated, "", 5000.0, Timings::default());
        let api = Mode::AzureDated.config(&emu);
        let mut job = Job::new(job_config(&api, 2), handle.plan().clone(), now());
        let mut io = Recorder::new(handle.shard_bytes());
        let summary = run_with_api(blocking, &api, &mut job, &mut io);
        assert_each_once("dated", &io.results, &items);
        assert_eq!(summary.succeeded, 6, "{summary:?}");
        assert_eq!(emu.counters().batches_created, 2);
    }
}
