//! Anthropic's Message Batches end to end: the emulator's Anthropic mode,
//! and both transports running the same `Job` with the Anthropic preset
//! (`x-api-key`, `anthropic-version`, requests inline in the create body).
//! The scenarios are OpenAI's: clean, faults (429, 529, 5xx, cut results
//! downloads), a create whose answer is lost (committed, then a 500 or a cut
//! connection: the job must find the batch and never create again), a stop
//! and resume from the checkpoint (also from one taken before the create's
//! answer came), expiry and cancel. Each checks every request comes out
//! exactly once with the right outcome.

use std::time::Duration;

use batch_core::api::{ApiBase, ApiConfig};
use batch_core::input::Item;
use batch_core::job::{
    BatchJob, BatchOptions, Checkpoint, Job, JobConfig, JobOutcome, JobResult, JobSummary,
    ShardLimits, StopAfter,
};
use batch_emulator::{Counters, Emulator, EmulatorHandle, FaultConfig, ProviderMode, Timings};

use crate::common::*;

/// The model of every request (one the emulator's Anthropic mode serves).
const CLAUDE: &str = "claude-haiku-4-5";

fn start(faults: &str, speed: f64, timings: Timings) -> EmulatorHandle {
    Emulator::builder()
        .provider(ProviderMode::Anthropic)
        .speed(speed)
        .seed(7)
        .faults(FaultConfig::parse(faults).expect("fault spec"))
        .api_key(KEY)
        .timings(timings)
        .start_blocking()
        .expect("emulator starts")
}

/// The Anthropic preset for the emulator at `emu` (its bare origin: paths
/// carry `/v1`).
fn config(emu: &EmulatorHandle) -> ApiConfig {
    ApiConfig::anthropic(KEY).with_base_url(emu.base_url())
}

/// The plan of `items` as Message Batches of at most `per_shard` requests.
fn plan(items: &[Item], per_shard: u64) -> BatchJob {
    let opts = BatchOptions::new(CLAUDE).limits(ShardLimits::new(per_shard, 100 * 1024 * 1024));
    BatchJob::from_anthropic_items(items, &prompt(), Some(64), &opts, JOB_SEED)
        .expect("valid items")
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

fn now() -> batch_core::UnixMillis {
    use batch_blocking::Clock;
    batch_blocking::SystemClock.now()
}

struct Outcome {
    who: &'static str,
    results: Vec<JobResult>,
    summary: JobSummary,
    counters: Counters,
}

/// Runs `scenario` through both transports side by side.
fn each(scenario: impl Fn(bool) -> Outcome + Sync) -> [Outcome; 2] {
    let scenario = &scenario;
    std::thread::scope(|s| {
        let b = s.spawn(move || scenario(true));
        let a = s.spawn(move || scenario(false));
        [b, a].map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })
}

fn who(blocking: bool) -> &'static str {
    if blocking {
        "anthropic/blocking"
    } else {
        "anthropic/async"
    }
}

/// A plain run of `handle` on a new emulator with `faults`.
fn plain(blocking: bool, handle: &BatchJob, faults: &str, speed: f64, timings: Timings) -> Outcome {
    let emu = start(faults, speed, timings);
    let api = config(&emu);
    let mut job = Job::new(job_config(&api, 3), handle.plan().clone(), now());
    let mut io = Recorder::new(handle.shard_bytes());
    let summary = run_with_api(blocking, &api, &mut job, &mut io);
    Outcome {
        who: who(blocking),
        results: io.results,
        summary,
        counters: emu.counters(),
    }
}

fn not_processed(r: &JobResult) -> Option<&str> {
    match &r.outcome {
        JobOutcome::NotProcessed(np) => Some(np.code.as_str()),
        _ => None,
    }
}

/// No request was refused for its shape (`x-api-key`, `anthropic-version`).
fn assert_shape_accepted(o: &Outcome) {
    for status in ["400", "401", "404"] {
        assert_eq!(
            o.counters.responses.get(status),
            None,
            "{}: {status} answers: {:?}",
            o.who,
            o.counters.responses
        );
    }
}

/// Every request once, each the emulator's echo of its prompt.
fn assert_all_echoed(o: &Outcome, items: &[Item]) {
    assert_each_once(o.who, &o.results, items);
    assert_echoes(o.who, &o.results, items);
    assert!(o.summary.complete, "{}", o.who);
    assert_shape_accepted(o);
}

#[test]
fn a_clean_job_runs_as_message_batches() {
    let items = items(250, |_| None);
    let handle = plan(&items, 100);
    assert_eq!(handle.plan().shards().len(), 3);
    let outcomes = each(|b| plain(b, &handle, "", 5000.0, Timings::default()));
    for o in &outcomes {
        assert_all_echoed(o, &items);
        assert_eq!(o.counters.batches_created, 3, "{}", o.who);
        assert_eq!(o.counters.files_uploaded, 0, "{}: no files", o.who);
        for r in &o.results {
            let JobOutcome::Succeeded(rec) = &r.outcome else {
                unreachable!()
            };
            let s = rec.success().expect("a success");
            assert!(s.usage.is_some(), "{}: usage of {}", o.who, r.custom_id);
            assert!(
                r.batch_id
                    .as_deref()
                    .is_some_and(|b| b.starts_with("msgbatch_")),
                "{}",
                o.who
            );
        }
    }
    let [b, a] = &outcomes;
    assert_eq!(
        canonical(&sorted(&b.results)),
        canonical(&sorted(&a.results))
    );
}

fn sorted(results: &[JobResult]) -> Vec<JobResult> {
    let mut r = results.to_vec();
    r.sort_by_key(|r| r.index);
    r
}

#[test]
fn rate_limits_overload_server_errors_and_cut_downloads_are_retried() {
    let items = items(90, |_| None);
    let handle = plan(&items, 30);
    for o in each(|b| {
        plain(
            b,
            &handle,
            // Every other create, poll and results request is refused, so
            // each fault fires whatever the timing (each shard is created,
            // polled and downloaded at least once).
            "429-every=2@batches.create,529-every=2@batches.get,500-every=2@batches.results,cut-content-every=2",
            5000.0,
            Timings::default(),
        )
    }) {
        assert_all_echoed(&o, &items);
        for fault in ["429", "529", "500"] {
            assert!(
                o.counters.faults_injected.keys().any(|k| k.contains(fault)),
                "{}: no {fault}: {:?}",
                o.who,
                o.counters.faults_injected
            );
        }
        assert!(o.counters.faults_total() > 3, "{}", o.who);
        assert_eq!(o.counters.batches_created, 3, "{}: exactly once", o.who);
    }
}

#[test]
fn a_create_whose_answer_is_lost_is_found_and_never_sent_again() {
    // Every create is committed, then answered 500 (or cut off half way):
    // the job must find each batch by listing, confirm it by its results,
    // and never create a second.
    let items = items(60, |_| None);
    let handle = plan(&items, 20);
    for faults in [
        "commit-then-500-every=1@batches.create",
        "commit-then-cut-every=1@batches.create",
    ] {
        for o in each(|b| plain(b, &handle, faults, 5000.0, Timings::default())) {
            assert_each_once(o.who, &o.results, &items);
            assert_echoes(o.who, &o.results, &items);
            assert!(o.summary.complete, "{}: {faults}", o.who);
            assert_eq!(o.counters.faults_total(), 3, "{}: {faults}", o.who);
            assert_eq!(
                o.counters.batches_created, 3,
                "{}: {faults}: a batch was created twice",
                o.who
            );
            assert!(
                on(&o.counters, "batches.list") >= 3,
                "{}: {faults}: the batches were not looked for",
                o.who
            );
        }
    }
}

#[test]
fn a_stopped_job_resumes_from_its_checkpoint_with_a_new_client() {
    let items = items(40, |_| None);
    let handle = plan(&items, 20);
    for o in each(|blocking| {
        let emu = start("", 5000.0, Timings::default());
        let api = config(&emu);
        // First process: submit, then stop (as if killed after its last
        // checkpoint).
        let mut cfg = job_config(&api, 2);
        cfg.stop_after = StopAfter::Submitted;
        let mut job = Job::new(cfg, handle.plan().clone(), now());
        let mut io = Recorder::new(handle.shard_bytes());
        run_with_api(blocking, &api, &mut job, &mut io);
        assert!(io.results.is_empty());
        let checkpoint: Checkpoint = io.checkpoints.last().cloned().expect("a checkpoint");
        assert!(checkpoint.shards.iter().all(|s| s.batch_id.is_some()));
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
            who: who(blocking),
            results: io.results,
            summary,
            counters: emu.counters(),
        }
    }) {
        assert_all_echoed(&o, &items);
        assert_eq!(o.counters.batches_created, 2, "{}: no batch twice", o.who);
    }
}

#[test]
fn a_job_killed_after_arming_a_create_finds_the_batch_it_made() {
    // The first process runs to its end, but the second resumes from the
    // checkpoint written before the first create was sent (as if killed
    // between sending it and recording its answer): the batch exists, and
    // the job must find it rather than create another.
    let items = items(30, |_| None);
    let handle = plan(&items, 30);
    for o in each(|blocking| {
        let emu = start("", 5000.0, Timings::default());
        let api = config(&emu);
        let mut job = Job::new(job_config(&api, 1), handle.plan().clone(), now());
        let mut io = Recorder::new(handle.shard_bytes());
        run_with_api(blocking, &api, &mut job, &mut io);
        assert_eq!(io.results.len(), 30);
        let armed = io
            .checkpoints
            .iter()
            .find(|c| c.shards[0].create_armed_at.is_some() && c.shards[0].batch_id.is_none())
            .cloned()
            .expect("a checkpoint with the create armed and no answer");
        let mut job =
            Job::resume(job_config(&api, 1), handle.plan().clone(), armed, now()).expect("resume");
        let mut io = Recorder::new(handle.shard_bytes());
        let summary = run_with_api(blocking, &api, &mut job, &mut io);
        Outcome {
            who: who(blocking),
            results: io.results,
            summary,
            counters: emu.counters(),
        }
    }) {
        assert_all_echoed(&o, &items);
        assert_eq!(o.counters.batches_created, 1, "{}: created twice", o.who);
    }
}

#[test]
fn an_expired_batch_marks_what_did_not_run() {
    let items = items(40, |_| None);
    let handle = plan(&items, 40);
    for o in each(|b| plain(b, &handle, "expire", 5000.0, Timings::default())) {
        assert_each_once(o.who, &o.results, &items);
        assert!(o.summary.complete, "{}", o.who);
        let expired = o
            .results
            .iter()
            .filter(|r| not_processed(r) == Some(batch_core::anthropic::EXPIRED_CODE))
            .count();
        assert!(expired > 0, "{}: nothing expired", o.who);
        for r in &o.results {
            match not_processed(r) {
                Some(code) => assert_eq!(code, batch_core::anthropic::EXPIRED_CODE, "{}", o.who),
                None => assert_eq!(
                    content(r),
                    Some(format!("Echo: question {}", r.index).as_str()),
                    "{}",
                    o.who
                ),
            }
        }
        assert_eq!(o.counters.batches_created, 1, "{}", o.who);
    }
}

#[test]
fn a_cancelled_job_returns_what_ran_and_marks_the_rest() {
    // One-second requests at speed 200: 2,000 of them take ten real
    // seconds, and the job is cancelled as soon as its batch exists.
    let timings = Timings {
        per_request: Duration::from_secs(1),
        ..Timings::default()
    };
    let items = items(2000, |_| None);
    let handle = plan(&items, 2000);
    for o in each(|blocking| {
        let emu = start("", 200.0, timings);
        let api = config(&emu);
        let mut cfg = job_config(&api, 1);
        cfg.stop_after = StopAfter::Submitted;
        let mut job = Job::new(cfg, handle.plan().clone(), now());
        let mut io = Recorder::new(handle.shard_bytes());
        run_with_api(blocking, &api, &mut job, &mut io);
        let checkpoint = io.checkpoints.last().cloned().expect("a checkpoint");
        let mut job = Job::resume(
            job_config(&api, 1),
            handle.plan().clone(),
            checkpoint,
            now(),
        )
        .expect("resume");
        job.cancel(now());
        let mut io = Recorder::new(handle.shard_bytes());
        let summary = run_with_api(blocking, &api, &mut job, &mut io);
        Outcome {
            who: who(blocking),
            results: io.results,
            summary,
            counters: emu.counters(),
        }
    }) {
        assert_each_once(o.who, &o.results, &items);
        let cancelled = o
            .results
            .iter()
            .filter(|r| not_processed(r).is_some())
            .count();
        assert!(cancelled > 0, "{}: the cancel came too late", o.who);
        for r in &o.results {
            match not_processed(r) {
                Some(code) => assert_eq!(code, batch_core::anthropic::CANCELED_CODE, "{}", o.who),
                None => assert_eq!(
                    content(r),
                    Some(format!("Echo: question {}", r.index).as_str()),
                    "{}",
                    o.who
                ),
            }
        }
        assert_eq!(o.counters.batches_created, 1, "{}", o.who);
        assert_eq!(o.counters.batches_cancelled, 1, "{}", o.who);
        assert_shape_accepted(&o);
    }
}
