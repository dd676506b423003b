//! `Job::handle_batch_changed`: a hint (a verified webhook) makes a batch's
//! next poll due now, so a long poll interval does not delay results.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use batch_core::job::{Job, JobEvent, ShardLimits, Step};
use common::*;

const T0: u64 = 1_700_000_000_000;
const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;
/// The poll interval of every job here: far longer than a batch runs
/// (validation 1 min, processing 1 h, finalizing 2 min in the simulation).
const POLL: u64 = 10 * HOUR;

fn one_shard() -> (Job, batch_core::job::JobPlan, Harness) {
    let reqs = requests(8, Some(4));
    let (job, plan, shards, _) = job_for(&reqs, ShardLimits::new(100, 1 << 20), |c| {
        c.poll_interval = Duration::from_millis(POLL);
    });
    assert_eq!(plan.shards().len(), 1);
    let h = Harness::new(SimApi::new(SimConfig::default()), shards, UnixMillis(T0));
    (job, plan, h)
}

fn submitted(h: &Harness) -> Option<String> {
    h.events.iter().find_map(|e| match e {
        JobEvent::Submitted { batch_id, .. } => Some(batch_id.clone()),
        _ => None,
    })
}

fn polls(h: &Harness) -> Vec<UnixMillis> {
    h.log
        .iter()
        .filter(|l| l.method == batch_core::http::Method::GET && l.path.contains("/batches/"))
        .map(|l| l.at)
        .collect()
}

/// Runs until the first wait after the batch was created.
fn run_until_submitted(job: &mut Job, h: &mut Harness) -> String {
    let end = h.run_with(
        job,
        RunOpts {
            pause: Some(Box::new(|h: &Harness| submitted(h).is_some())),
            ..Default::default()
        },
    );
    assert!(matches!(end, RunEnd::Paused), "{end:?}");
    submitted(h).unwrap()
}

#[test]
fn without_a_hint_the_first_poll_waits_the_whole_interval() {
    // The control: this is the delay the hint removes.
    let (mut job, plan, mut h) = one_shard();
    run_until_submitted(&mut job, &mut h);
    let created = h.now;
    h.run_with(&mut job, RunOpts::default()).done();
    assert_eq!(polls(&h)[0], created.plus_millis(POLL));
    assert_every_request_once(&h, &plan);
}

#[test]
fn a_hint_polls_the_ended_batch_at_once_and_the_job_finishes() {
    let (mut job, plan, mut h) = one_shard();
    let batch_id = run_until_submitted(&mut job, &mut h);
    assert!(polls(&h).is_empty());
    // The batch ends a little after an hour; the webhook comes at 2 h.
    h.now = UnixMillis(T0 + 2 * HOUR);
    assert!(job.handle_batch_changed(&batch_id, h.now));
    let summary = h.run_with(&mut job, RunOpts::default()).done();
    assert!(summary.complete, "{summary:?}");
    assert_eq!(summary.succeeded + summary.failed, 8);
    // One poll, at the moment of the hint, and the job ended long before
    // the poll it had scheduled.
    assert_eq!(polls(&h), vec![UnixMillis(T0 + 2 * HOUR)]);
    assert!(h.now < UnixMillis(T0 + POLL), "{:?}", h.now);
    assert_every_request_once(&h, &plan);
}

#[test]
fn duplicate_foreign_and_late_hints_are_harmless() {
    let (mut job, plan, mut h) = one_shard();
    let batch_id = run_until_submitted(&mut job, &mut h);
    h.now = UnixMillis(T0 + 2 * HOUR);
    // The same event delivered twice, and one about a batch of someone else.
    assert!(job.handle_batch_changed(&batch_id, h.now));
    assert!(job.handle_batch_changed(&batch_id, h.now));
    assert!(!job.handle_batch_changed("batch_not_ours", h.now));
    let summary = h.run_with(&mut job, RunOpts::default()).done();
    assert!(summary.complete);
    assert_eq!(polls(&h).len(), 1, "one poll for two deliveries");
    // A late delivery after the job ended changes nothing.
    assert!(!job.handle_batch_changed(&batch_id, h.now));
    assert!(matches!(job.poll(h.now), Step::Done(_)));
    assert_eq!(polls(&h).len(), 1);
    assert_every_request_once(&h, &plan);
}

#[test]
fn a_hint_for_a_running_batch_costs_one_poll_and_the_schedule_resumes() {
    let (mut job, plan, mut h) = one_shard();
    let batch_id = run_until_submitted(&mut job, &mut h);
    // A hint while the batch still runs (a spurious or early webhook).
    h.now = UnixMillis(T0 + 30 * MIN);
    assert!(job.handle_batch_changed(&batch_id, h.now));
    h.run_with(&mut job, RunOpts::default()).done();
    let p = polls(&h);
    assert_eq!(p[0], UnixMillis(T0 + 30 * MIN));
    // The next poll is a whole interval after the hinted one.
    assert_eq!(p[1], UnixMillis(T0 + 30 * MIN + POLL));
    assert_every_request_once(&h, &plan);
}

#[test]
fn a_hint_that_comes_before_the_create_answer_is_kept() {
    let (mut job, plan, mut h) = one_shard();
    // The simulation numbers ids in order: the upload is `file-000001`, the
    // batch `batch_000002`. The webhook overtakes the create's answer.
    assert!(!job.handle_batch_changed("batch_000002", h.now));
    let batch_id = run_until_submitted(&mut job, &mut h);
    assert_eq!(batch_id, "batch_000002");
    // The remembered hint made the poll due at once after the create.
    assert_eq!(polls(&h), vec![UnixMillis(T0)]);
    h.run_with(&mut job, RunOpts::default()).done();
    assert_every_request_once(&h, &plan);
}

#[test]
fn a_hint_during_a_poll_in_flight_is_followed_by_another_poll() {
    let (mut job, plan, mut h) = one_shard();
    let batch_id = run_until_submitted(&mut job, &mut h);
    // A poll that left before the batch ended...
    h.now = UnixMillis(T0 + 30 * MIN);
    assert!(job.handle_batch_changed(&batch_id, h.now));
    let (id, request) = loop {
        match job.poll(h.now) {
            Step::Send { id, request } => break (id, request),
            Step::Persist(_) | Step::Event(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(is_poll(&request));
    let answer = h.sim.handle(&request, &h.shards, h.now);
    // ...and the webhook saying it ended arrives while the poll is in flight.
    h.now = UnixMillis(T0 + 2 * HOUR);
    assert!(job.handle_batch_changed(&batch_id, h.now));
    job.handle_head(id, answer.head, h.now).unwrap();
    for _ in job.handle_body(id, &answer.body).unwrap() {}
    job.handle_end(id, h.now).unwrap();
    // The stale answer ("in progress") is followed by a poll now, not in 10 h.
    let summary = h.run_with(&mut job, RunOpts::default()).done();
    assert!(summary.complete);
    assert_eq!(polls(&h), vec![UnixMillis(T0 + 2 * HOUR)]);
    assert!(h.now < UnixMillis(T0 + POLL));
    assert_eq!(
        summary.succeeded + summary.failed + summary.not_processed,
        plan.len()
    );
}
