//! The Job in a deterministic simulation: every status path, faults, crashes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use batch_core::api::BatchStatus;
use batch_core::http::{self, Method};
use batch_core::job::{
    CHECKPOINT_VERSION, ExchangeId, Job, JobConfig, JobEndError, JobEvent, JobOutcome, JobPlan,
    OnTimeout, ResumeError, ShardEnd, ShardLimits, Step, StopAfter, UsageError,
};
use common::*;

const T0: u64 = 1_700_000_000_000;
const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;

/// 25 requests (every 10th fails) in three shards of 10, 10 and 5.
fn three_shards(
    sim: SimConfig,
    tweak: impl FnOnce(&mut JobConfig),
) -> (Job, JobPlan, Harness, JobConfig) {
    let reqs = requests(25, Some(10));
    let (job, plan, shards, cfg) = job_for(&reqs, ShardLimits::new(10, 1 << 20), tweak);
    assert_eq!(plan.shards().len(), 3);
    let h = Harness::new(SimApi::new(sim), shards, UnixMillis(T0));
    (job, plan, h, cfg)
}

fn statuses_seen(h: &Harness, shard: u32) -> Vec<BatchStatus> {
    let mut seen: Vec<BatchStatus> = Vec::new();
    for e in &h.events {
        if let JobEvent::Progress {
            shard: s, status, ..
        } = e
        {
            if *s == shard && seen.last() != Some(status) {
                seen.push(status.clone());
            }
        }
    }
    seen
}

fn retrying(h: &Harness, op: &str) -> Vec<(u32, UnixMillis)> {
    h.events
        .iter()
        .filter_map(|e| match e {
            JobEvent::Retrying {
                op: o, attempt, at, ..
            } if *o == op => Some((*attempt, *at)),
            _ => None,
        })
        .collect()
}

fn warnings(h: &Harness) -> Vec<&str> {
    h.events
        .iter()
        .filter_map(|e| match e {
            JobEvent::Warning { message, .. } => Some(message.as_str()),
            _ => None,
        })
        .collect()
}

/// Runs a job with no faults to its end and checks the invariants every run must keep.
fn run_clean(job: &mut Job, plan: &JobPlan, h: &mut Harness) -> batch_core::job::JobSummary {
    let summary = h.run_with(job, RunOpts::default()).done();
    check_invariants(h, plan, &summary);
    summary
}

fn check_invariants(h: &Harness, plan: &JobPlan, summary: &batch_core::job::JobSummary) {
    assert_every_request_once(h, plan);
    assert!(
        h.duplicates_in_run.is_empty(),
        "delivered twice in one run: {:?}",
        h.duplicates_in_run
    );
    h.assert_no_double_effects(plan);
    h.assert_summary_matches(summary);
}

#[test]
fn happy_path_three_shards() {
    let reqs = requests(25, Some(10));
    let (mut job, plan, shards, _) = job_for(&reqs, ShardLimits::new(10, 1 << 20), |_| {});
    assert_eq!(plan.shards().len(), 3);
    let mut h = Harness::new(
        SimApi::new(SimConfig::default()),
        shards,
        UnixMillis(1_700_000_000_000),
    );
    let summary = h
        .run(&mut job, &mut |_, _| Fault::None, None, 100_000)
        .unwrap();
    assert_every_request_once(&h, &plan);
    assert!(h.duplicates_in_run.is_empty());
    assert_eq!(summary.succeeded, 23);
    assert_eq!(summary.failed, 2);
    assert_eq!(summary.not_processed, 0);
    assert!(summary.complete);
    assert_eq!(h.sim.counters.uploads, 3);
    assert_eq!(h.sim.counters.creates, 3);
    let failed = &h.durable[&9];
    assert_eq!(failed.custom_id, "req-9-fail");
    match &failed.outcome {
        JobOutcome::Failed(rec) => {
            let f = rec.failure().unwrap();
            assert_eq!(f.status_code, Some(400));
            assert_eq!(f.message.as_deref(), Some("Invalid 'messages': too long."));
        }
        other => panic!("{other:?}"),
    }
    match &h.durable[&3].outcome {
        JobOutcome::Succeeded(rec) => assert_eq!(rec.content(), Some("answer to req-3")),
        other => panic!("{other:?}"),
    }
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, JobEvent::ShardFinished { .. }))
    );
}

#[test]
fn a_day_long_job_walks_every_status_in_virtual_time() {
    let sim = SimConfig {
        validate_ms: 20 * MIN,
        run_ms: 22 * HOUR,
        finalize_ms: 40 * MIN,
        ..SimConfig::default()
    };
    let (mut job, plan, mut h, _) = three_shards(sim, |_| {});
    let summary = run_clean(&mut job, &plan, &mut h);
    assert!(summary.complete);
    assert!(summary.verdict().is_ok());
    assert_eq!((summary.succeeded, summary.failed), (23, 2));
    assert!(
        h.now.as_millis() - T0 >= 23 * HOUR,
        "the virtual clock covered the whole day"
    );
    for s in 0..3 {
        assert_eq!(
            statuses_seen(&h, s),
            [
                BatchStatus::Validating,
                BatchStatus::InProgress,
                BatchStatus::Finalizing,
                BatchStatus::Completed
            ],
            "shard {s}"
        );
        assert_eq!(summary.shards[s as usize].end, Some(ShardEnd::Finished));
    }
    // One poll every 30 s, no more: about 2,820 per shard for 23.5 h.
    assert!(h.sim.counters.polls <= 3 * (23 * 120 + 120));
    // Output files for all three, error files for the two shards with a failure.
    assert_eq!(h.sim.counters.downloads, 5);
    assert_eq!(summary.usage.input_tokens, 23 * 10);
}

#[test]
fn failed_validation_reports_every_request_not_processed() {
    let sim = SimConfig {
        validation_error: Some(("invalid_url".into(), 3)),
        ..SimConfig::default()
    };
    let (mut job, plan, mut h, _) = three_shards(sim, |_| {});
    let summary = run_clean(&mut job, &plan, &mut h);
    assert_eq!(summary.not_processed, 25);
    assert_eq!(summary.succeeded + summary.failed, 0);
    assert!(summary.complete);
    for shard in plan.shards() {
        assert_eq!(
            summary.shards[shard.index as usize].status,
            Some(BatchStatus::Failed)
        );
        for index in shard.range() {
            let np = h.not_processed(index);
            if index - shard.start == 2 {
                assert_eq!(np.code, "invalid_url", "request {index}");
                assert!(np.message.contains("line 3"), "{}", np.message);
                assert!(np.message.contains("invalid line"), "{}", np.message);
            } else {
                assert_eq!(np.code, "batch_failed", "request {index}");
                assert!(np.message.contains("invalid_url"), "{}", np.message);
            }
        }
    }
    assert!(matches!(
        *summary.verdict().unwrap_err(),
        JobEndError::Failed { .. }
    ));
    // A failed batch is not created again (only the token limit is).
    assert_eq!(h.sim.counters.creates, 3);
}

#[test]
fn expired_batch_keeps_its_partial_output() {
    let sim = SimConfig {
        stall_at: Some(0.5),
        expire_ms: 2 * HOUR,
        ..SimConfig::default()
    };
    let (mut job, plan, mut h, _) = three_shards(sim, |_| {});
    let summary = run_clean(&mut job, &plan, &mut h);
    // Shards of 10 process 5, the shard of 5 processes 2.
    for shard in plan.shards() {
        let processed = shard.requests / 2;
        for index in shard.range() {
            let r = &h.durable[&index];
            if index - shard.start < processed {
                let expect = if r.custom_id.contains("fail") {
                    "failed"
                } else {
                    "succeeded"
                };
                assert_eq!(outcome_kind(r), expect, "request {index}");
            } else {
                let np = h.not_processed(index);
                assert_eq!(np.code, "batch_expired", "request {index}");
            }
        }
        assert_eq!(
            summary.shards[shard.index as usize].status,
            Some(BatchStatus::Expired)
        );
    }
    assert_eq!(summary.succeeded, 12);
    assert_eq!(summary.failed, 0);
    assert_eq!(summary.not_processed, 13);
    assert!(summary.complete);
    match *summary.verdict().unwrap_err() {
        JobEndError::Expired { not_processed, .. } => assert_eq!(not_processed, 5),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_clock_that_jumps_back_is_clamped() {
    let (mut job, plan, mut h, _) = three_shards(SimConfig::default(), |_| {});
    let mut jumped = false;
    let opts = RunOpts {
        wake: Some(Box::new(move |until: UnixMillis| {
            if !jumped && until.as_millis() > T0 + 20 * MIN {
                jumped = true;
                UnixMillis(until.as_millis() - 2 * HOUR)
            } else {
                until
            }
        })),
        ..Default::default()
    };
    let summary = h.run_with(&mut job, opts).done();
    check_invariants(&h, &plan, &summary);
    assert!(summary.complete);
    assert_eq!((summary.succeeded, summary.failed), (23, 2));
    assert_eq!(h.sim.counters.creates, 3);
    // The job kept its own time: it did not poll through the two hours the
    // clock went back (at most one extra exchange per shard at the jump).
    let (mut job, plan, mut clean, _) = three_shards(SimConfig::default(), |_| {});
    run_clean(&mut job, &plan, &mut clean);
    assert!(
        h.sim.counters.polls <= clean.sim.counters.polls + 3,
        "{} polls against {}",
        h.sim.counters.polls,
        clean.sim.counters.polls
    );
}

/// Cancels a job with two of its three shards running; the third is never submitted.
fn check_cancelled(h: &Harness, plan: &JobPlan, summary: &batch_core::job::JobSummary) {
    check_invariants(h, plan, summary);
    assert!(summary.cancelled);
    assert!(summary.complete);
    for s in 0..2 {
        let sh = &summary.shards[s];
        assert_eq!(sh.status, Some(BatchStatus::Cancelled), "shard {s}");
        assert_eq!(sh.end, Some(ShardEnd::Finished));
        assert!(
            sh.succeeded > 0,
            "shard {s} kept its partial results: {sh:?}"
        );
        assert!(sh.not_processed > 0, "shard {s} was cut short: {sh:?}");
        for index in plan.shards()[s].range() {
            if let JobOutcome::NotProcessed(np) = &h.durable[&index].outcome {
                assert_eq!(np.code, "batch_cancelled", "request {index}");
            }
        }
    }
    let last = &summary.shards[2];
    assert_eq!(last.end, Some(ShardEnd::NotSubmitted));
    assert_eq!(last.batch_id, None);
    for index in plan.shards()[2].range() {
        assert_eq!(h.not_processed(index).code, "job_cancelled");
    }
    assert_eq!(h.sim.counters.cancels, 2);
    assert_eq!(h.sim.counters.creates, 2);
    assert_eq!(h.sim.counters.uploads, 2);
    assert!(matches!(
        *summary.verdict().unwrap_err(),
        JobEndError::Cancelled { .. }
    ));
}

#[test]
fn cancel_mid_run_on_the_same_job() {
    let (mut job, plan, mut h, _) = three_shards(SimConfig::default(), |c| c.max_parallel = 2);
    let end = h.run_with(
        &mut job,
        RunOpts {
            pause: Some(Box::new(|h: &Harness| h.now.as_millis() >= T0 + 30 * MIN)),
            ..Default::default()
        },
    );
    assert!(matches!(end, RunEnd::Paused));
    assert_eq!(statuses_seen(&h, 0).last(), Some(&BatchStatus::InProgress));
    job.cancel(h.now);
    let summary = h.run_with(&mut job, RunOpts::default()).done();
    check_cancelled(&h, &plan, &summary);
    assert_eq!(
        statuses_seen(&h, 0)[2..],
        [BatchStatus::Cancelling, BatchStatus::Cancelled]
    );
}

#[test]
fn cancel_after_a_crash_on_the_resumed_job() {
    let (mut job, plan, mut h, cfg) = three_shards(SimConfig::default(), |c| c.max_parallel = 2);
    // Two uploads, two creates, then polls every 30 s: crash after an hour of polling.
    let end = h.run_with(
        &mut job,
        RunOpts {
            crash_after: Some(4 + 50),
            ..Default::default()
        },
    );
    assert!(matches!(end, RunEnd::Crashed));
    let cp = h.checkpoint.clone().unwrap();
    assert!(cp.shards[0].batch_id.is_some() && cp.shards[1].batch_id.is_some());
    let mut job = Job::resume(cfg.clone(), plan.clone(), cp, h.now).unwrap();
    job.cancel(h.now);
    // Crash again once the cancel is recorded: the resumed job must still cancel.
    let end = h.run_with(
        &mut job,
        RunOpts {
            crash_after: Some(1),
            ..Default::default()
        },
    );
    assert!(matches!(end, RunEnd::Crashed));
    let cp = h.checkpoint.clone().unwrap();
    assert!(cp.cancel_requested);
    let mut job = Job::resume(cfg, plan.clone(), cp, h.now).unwrap();
    let summary = h.run_with(&mut job, RunOpts::default()).done();
    check_cancelled(&h, &plan, &summary);
}

#[test]
fn rate_limit_retry_after_is_honoured() {
    // One shard, so that the next exchange of a kind is the retried one.
    let reqs = requests(10, Some(10));
    let (mut job, plan, shards, _) = job_for(&reqs, ShardLimits::new(10, 1 << 20), |_| {});
    let mut h = Harness::new(SimApi::new(SimConfig::default()), shards, UnixMillis(T0));
    let mut first = std::collections::BTreeSet::new();
    let opts = RunOpts::faults(|_, r| {
        let kind = if is_create(r) {
            "create"
        } else if is_poll(r) {
            "poll"
        } else if is_download(r) {
            "download"
        } else {
            return Fault::None;
        };
        if first.insert(kind) {
            Fault::Status(429)
        } else {
            Fault::None
        }
    });
    let summary = h.run_with(&mut job, opts).done();
    check_invariants(&h, &plan, &summary);
    assert_eq!((summary.succeeded, summary.failed), (9, 1));
    for op in ["create", "poll", "download"] {
        let limited = h
            .log
            .iter()
            .find(|l| l.fault == Fault::Status(429) && op_of(l) == op)
            .unwrap_or_else(|| panic!("no 429 on {op}"));
        let retries = retrying(&h, op);
        assert_eq!(retries.len(), 1, "{op}: {retries:?}");
        let (attempt, at) = retries[0];
        assert_eq!(attempt, 2);
        assert!(
            at.as_millis() >= limited.at.as_millis() + 20_000,
            "{op}: retry at {at:?} is before Retry-After (429 at {:?})",
            limited.at
        );
        // The next exchange of the same kind on the same resource waits for it.
        let next = h
            .log
            .iter()
            .find(|l| l.n > limited.n && l.path == limited.path && l.method == limited.method)
            .unwrap();
        assert!(
            next.at >= at,
            "{op}: retried at {:?}, before {at:?}",
            next.at
        );
    }
    // A refused create did nothing: no reconciliation, no second batch.
    assert_eq!(h.sim.counters.creates, 1);
    assert_eq!(h.sim.counters.lists, 0);
}

fn op_of(l: &Logged) -> &'static str {
    match (&l.method, l.path.as_str()) {
        (&Method::POST, p) if p.ends_with("/files") => "upload",
        (&Method::POST, p) if p.ends_with("/cancel") => "cancel",
        (&Method::POST, p) if p.ends_with("/batches") => "create",
        (&Method::GET, p) if p.ends_with("/content") => "download",
        (&Method::GET, p) if p.ends_with("/files") || p.ends_with("/batches") => "list",
        (&Method::GET, _) => "poll",
        _ => "other",
    }
}

/// Applies `fault` to the first exchange of each kind in `kinds`.
fn first_of_each<'a>(
    kinds: &'a [&'a str],
    fault: Fault,
) -> impl FnMut(u64, &http::Request<batch_core::api::Outgoing>) -> Fault + 'a {
    let mut hit = std::collections::BTreeSet::new();
    move |_, r| {
        let kind = if is_upload(r) {
            "upload"
        } else if is_create(r) {
            "create"
        } else if is_poll(r) {
            "poll"
        } else if is_download(r) {
            "download"
        } else if is_list(r) {
            "list"
        } else {
            "other"
        };
        if kinds.contains(&kind) && hit.insert(kind) {
            fault.clone()
        } else {
            Fault::None
        }
    }
}

#[test]
fn server_errors_are_retried() {
    let (mut job, plan, mut h, _) = three_shards(SimConfig::default(), |_| {});
    let kinds = ["upload", "create", "poll", "download", "list"];
    let summary = h
        .run_with(
            &mut job,
            RunOpts::faults(first_of_each(&kinds, Fault::Status(500))),
        )
        .done();
    check_invariants(&h, &plan, &summary);
    assert_eq!((summary.succeeded, summary.failed), (23, 2));
    assert!(summary.complete);
    for op in ["upload", "create", "poll", "download"] {
        assert!(!retrying(&h, op).is_empty(), "{op} was not retried");
    }
    // A 500 on an upload or create may hide one that happened: the job looked
    // before doing it again (the first look-up got a 500 too, which the
    // server never saw).
    assert_eq!(h.log.iter().filter(|l| op_of(l) == "list").count(), 3);
    assert_eq!(h.sim.counters.lists, 2);
    assert_eq!(retrying(&h, "find upload").len(), 1);
    assert_eq!(h.sim.counters.uploads, 3);
    assert_eq!(h.sim.counters.creates, 3);
}

#[test]
fn a_server_error_that_hid_a_success_is_reconciled() {
    let (mut job, plan, mut h, _) = three_shards(SimConfig::default(), |_| {});
    let summary = h
        .run_with(
            &mut job,
            RunOpts::faults(first_of_each(
                &["upload", "create"],
                Fault::StatusAfterAct(502),
            )),
        )
        .done();
    check_invariants(&h, &plan, &summary);
    assert_eq!((summary.succeeded, summary.failed), (23, 2));
    // Both effects happened behind the 502: found, not done again.
    assert_eq!(h.sim.counters.uploads, 3);
    assert_eq!(h.sim.counters.creates, 3);
    assert_eq!(h.sim.counters.lists, 2);
}

#[test]
fn not_sent_is_retried_without_reconciling() {
    let (mut job, plan, mut h, _) = three_shards(SimConfig::default(), |_| {});
    let kinds = ["upload", "create", "poll", "download"];
    let summary = h
        .run_with(
            &mut job,
            RunOpts::faults(first_of_each(&kinds, Fault::NotSent)),
        )
        .done();
    check_invariants(&h, &plan, &summary);
    assert_eq!((summary.succeeded, summary.failed), (23, 2));
    for op in kinds {
        let r = retrying(&h, op);
        assert_eq!(r.len(), 1, "{op}: {r:?}");
    }
    // Nothing reached the server, so nothing had to be looked for.
    assert_eq!(h.sim.counters.lists, 0);
    assert_eq!(h.sim.counters.uploads, 3);
    assert_eq!(h.sim.counters.creates, 3);
}

#[test]
fn lost_create_is_found_not_created_again() {
    let (mut job, plan, mut h, _) = three_shards(SimConfig::default(), |_| {});
    let summary = h
        .run_with(
            &mut job,
            RunOpts::faults(first_of_each(&["create"], Fault::LostAfterSend)),
        )
        .done();
    check_invariants(&h, &plan, &summary);
    assert_eq!((summary.succeeded, summary.failed), (23, 2));
    // The lost create reached the server: three creates in all, one per shard.
    assert_eq!(h.sim.counters.creates, 3);
    assert_eq!(h.sim.batch_count(), 3);
    assert!(h.sim.counters.lists >= 1);
    for s in 0..3 {
        assert_eq!(h.sim.live_batches_for_shard(s), 1);
    }
    let submitted = h
        .events
        .iter()
        .filter(|e| matches!(e, JobEvent::Submitted { .. }))
        .count();
    assert_eq!(submitted, 3);
}

#[test]
fn lost_upload_is_found_not_uploaded_again() {
    let (mut job, plan, mut h, _) = three_shards(SimConfig::default(), |_| {});
    let summary = h
        .run_with(
            &mut job,
            RunOpts::faults(first_of_each(&["upload"], Fault::LostAfterSend)),
        )
        .done();
    check_invariants(&h, &plan, &summary);
    assert_eq!((summary.succeeded, summary.failed), (23, 2));
    assert_eq!(h.sim.counters.uploads, 3);
    assert!(h.sim.counters.lists >= 1);
    assert_eq!(h.sim.counters.creates, 3);
}

#[test]
fn cut_create_and_upload_bodies_are_reconciled() {
    let (mut job, plan, mut h, _) = three_shards(SimConfig::default(), |_| {});
    let summary = h
        .run_with(
            &mut job,
            RunOpts::faults(first_of_each(&["upload", "create"], Fault::CutBody(0.3))),
        )
        .done();
    check_invariants(&h, &plan, &summary);
    assert_eq!(h.sim.counters.uploads, 3);
    assert_eq!(h.sim.counters.creates, 3);
    assert!(summary.complete);
}

#[test]
fn cut_download_resumes_with_range() {
    let (mut job, plan, mut h, _) = three_shards(SimConfig::default(), |_| {});
    // Cut every first response of each download half way.
    let mut seen = std::collections::BTreeSet::new();
    let opts = RunOpts::faults(|_, r| {
        if is_download(r) && seen.insert(r.uri().path().to_owned()) {
            Fault::CutBody(0.5)
        } else {
            Fault::None
        }
    });
    let summary = h.run_with(&mut job, opts).done();
    check_invariants(&h, &plan, &summary);
    assert_eq!((summary.succeeded, summary.failed), (23, 2));
    let resumed: Vec<(String, u64)> = h
        .events
        .iter()
        .filter_map(|e| match e {
            JobEvent::DownloadResumed {
                file_id, offset, ..
            } => Some((file_id.clone(), *offset)),
            _ => None,
        })
        .collect();
    // Three output files are long enough to hold a line in their first half.
    assert!(resumed.len() >= 3, "{resumed:?}");
    for (file_id, offset) in &resumed {
        assert!(*offset > 0);
        let ranged = h
            .log
            .iter()
            .find(|l| l.path.contains(file_id.as_str()) && l.range.is_some())
            .unwrap_or_else(|| panic!("no range request for {file_id}"));
        assert_eq!(ranged.range.as_deref(), Some(&*format!("bytes={offset}-")));
    }
    assert!(h.sim.counters.downloads >= 6 + 3);
}

/// Cuts each download's first response at `frac`, with the server's quirks in `sim`.
fn cut_downloads(sim: SimConfig, frac: f64) -> (Harness, batch_core::job::JobSummary) {
    let (mut job, plan, mut h, _) = three_shards(sim, |_| {});
    let mut seen = std::collections::BTreeSet::new();
    let opts = RunOpts::faults(|_, r| {
        if is_download(r) && seen.insert(r.uri().path().to_owned()) {
            Fault::CutBody(frac)
        } else {
            Fault::None
        }
    });
    let summary = h.run_with(&mut job, opts).done();
    check_invariants(&h, &plan, &summary);
    assert_eq!((summary.succeeded, summary.failed), (23, 2));
    assert_eq!(summary.bad_lines, 0);
    (h, summary)
}

#[test]
fn cut_download_from_a_server_ignoring_range_skips_what_it_has() {
    let sim = SimConfig {
        ignore_range: true,
        ..SimConfig::default()
    };
    let (h, _) = cut_downloads(sim, 0.6);
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, JobEvent::DownloadResumed { .. }))
    );
}

#[test]
fn files_without_a_final_newline_lose_no_line() {
    for frac in [0.5, 0.99, 1.0] {
        let sim = SimConfig {
            no_final_newline: true,
            ..SimConfig::default()
        };
        cut_downloads(sim, frac);
    }
    let sim = SimConfig {
        no_final_newline: true,
        ..SimConfig::default()
    };
    let (mut job, plan, mut h, _) = three_shards(sim, |_| {});
    let summary = run_clean(&mut job, &plan, &mut h);
    assert_eq!((summary.succeeded, summary.failed), (23, 2));
}

#[test]
fn a_download_cut_after_its_last_byte_is_complete() {
    // Every byte arrived but the connection failed before the end: the
    // resumed request is past the end (416), and nothing is lost.
    let (h, _) = cut_downloads(SimConfig::default(), 1.0);
    assert!(h.log.iter().any(|l| l.range.is_some()));
}

#[test]
fn overlong_result_lines_are_salvaged_even_across_a_cut() {
    for cut in [None, Some(0.5), Some(0.97)] {
        let (mut job, plan, mut h, _) = three_shards(SimConfig::default(), |c| {
            c.max_line_bytes = 120;
        });
        let mut seen = std::collections::BTreeSet::new();
        let opts = RunOpts::faults(|_, r| match cut {
            Some(frac) if is_download(r) && seen.insert(r.uri().path().to_owned()) => {
                Fault::CutBody(frac)
            }
            _ => Fault::None,
        });
        let summary = h.run_with(&mut job, opts).done();
        check_invariants(&h, &plan, &summary);
        assert_eq!(summary.not_processed, 25, "{cut:?}");
        for index in 0..25 {
            let np = h.not_processed(index);
            assert_eq!(np.code, "unreadable_result", "{cut:?}");
            assert!(np.message.contains("120-byte limit"), "{}", np.message);
        }
        assert_eq!(summary.bad_lines, 25, "{cut:?}");
    }
}

#[test]
fn garbage_line_is_reported_and_the_rest_kept() {
    let sim = SimConfig {
        garbage_line: true,
        ..SimConfig::default()
    };
    let (mut job, plan, mut h, _) = three_shards(sim, |_| {});
    let summary = run_clean(&mut job, &plan, &mut h);
    assert_eq!((summary.succeeded, summary.failed), (23, 2));
    assert_eq!(summary.not_processed, 0);
    assert_eq!(summary.bad_lines, 3);
    let bad = warnings(&h)
        .into_iter()
        .filter(|w| w.contains("could not be read"))
        .count();
    assert_eq!(bad, 3);
}

#[test]
fn dropped_result_is_reported_missing() {
    let sim = SimConfig {
        drop_ids: ["req-4".to_owned(), "req-17".to_owned()].into(),
        ..SimConfig::default()
    };
    let (mut job, plan, mut h, _) = three_shards(sim, |_| {});
    let summary = run_clean(&mut job, &plan, &mut h);
    assert_eq!((summary.succeeded, summary.failed), (21, 2));
    for index in [4, 17] {
        let np = h.not_processed(index);
        assert_eq!(np.code, "missing_result");
    }
    let counted = warnings(&h)
        .into_iter()
        .filter(|w| w.contains("reports 10 finished requests but its files held 9"))
        .count();
    assert_eq!(counted, 2);
}

#[test]
fn token_limit_is_requeued_then_succeeds() {
    let sim = SimConfig {
        token_limit_creates: 2,
        ..SimConfig::default()
    };
    let (mut job, plan, mut h, _) = three_shards(sim, |_| {});
    let summary = run_clean(&mut job, &plan, &mut h);
    assert_eq!((summary.succeeded, summary.failed), (23, 2));
    assert!(summary.complete);
    assert!(summary.verdict().is_ok());
    let requeued: Vec<(u32, UnixMillis)> = h
        .events
        .iter()
        .filter_map(|e| match e {
            JobEvent::Requeued { shard, at, reason } => {
                assert!(reason.contains("token_limit_exceeded"), "{reason}");
                Some((*shard, *at))
            }
            _ => None,
        })
        .collect();
    assert_eq!(requeued.len(), 2, "{requeued:?}");
    assert_eq!(h.sim.counters.creates, 5);
    for (shard, at) in requeued {
        // The shard is created twice, the second time not before the requeue time.
        let creates: Vec<&Logged> = h
            .log
            .iter()
            .filter(|l| op_of(l) == "create" && l.shard == Some(shard))
            .collect();
        assert_eq!(creates.len(), 2, "shard {shard}");
        assert!(creates[1].at >= at, "shard {shard} created again too early");
        assert_eq!(h.sim.live_batches_for_shard(shard), 1);
    }
}

#[test]
fn max_wait_leave_running_times_out_and_resumes() {
    let (mut job, plan, mut h, cfg) = three_shards(SimConfig::default(), |c| {
        c.max_wait = Some(Duration::from_secs(30 * 60));
    });
    let summary = h.run_with(&mut job, RunOpts::default()).done();
    check_invariants(&h, &plan, &summary);
    assert!(summary.timed_out);
    assert!(!summary.complete);
    assert_eq!(summary.not_processed, 25);
    for index in 0..25 {
        assert_eq!(h.not_processed(index).code, "timed_out");
    }
    assert!(matches!(
        *summary.verdict().unwrap_err(),
        JobEndError::TimedOut { .. }
    ));
    assert_eq!(h.sim.counters.cancels, 0);
    // The batches kept running; a resumed job collects them without creating any.
    let mut cfg = cfg;
    cfg.max_wait = None;
    let mut job = Job::resume(cfg, plan.clone(), h.checkpoint.clone().unwrap(), h.now).unwrap();
    let summary = run_clean(&mut job, &plan, &mut h);
    assert!(summary.complete && !summary.timed_out);
    assert_eq!((summary.succeeded, summary.failed), (23, 2));
    assert_eq!(h.sim.counters.creates, 3);
    assert_eq!(h.sim.counters.uploads, 3);
}

#[test]
fn max_wait_with_cancel_collects_partial_results() {
    let (mut job, plan, mut h, _) = three_shards(SimConfig::default(), |c| {
        c.max_wait = Some(Duration::from_secs(30 * 60));
        c.on_timeout = OnTimeout::Cancel;
    });
    let summary = h.run_with(&mut job, RunOpts::default()).done();
    check_invariants(&h, &plan, &summary);
    assert!(summary.timed_out && summary.cancelled);
    assert!(summary.complete);
    assert_eq!(h.sim.counters.cancels, 3);
    assert!(summary.succeeded > 0 && summary.not_processed > 0);
    for s in &summary.shards {
        assert_eq!(s.status, Some(BatchStatus::Cancelled));
    }
    assert!(matches!(
        *summary.verdict().unwrap_err(),
        JobEndError::Cancelled { .. }
    ));
}

#[test]
fn max_wait_cancel_survives_a_crash_after_the_first_cancel() {
    let setup = || {
        three_shards(SimConfig::default(), |c| {
            c.max_wait = Some(Duration::from_secs(30 * 60));
            c.on_timeout = OnTimeout::Cancel;
        })
    };
    let (mut job, _, mut h, _) = setup();
    h.run_with(&mut job, RunOpts::default()).done();
    let first_cancel = h.log.iter().find(|l| op_of(l) == "cancel").unwrap().n;

    // Again, dying just after the server got the first cancel.
    let (mut job, plan, mut h, cfg) = setup();
    let end = h.run_with(
        &mut job,
        RunOpts {
            crash_after: Some(first_cancel - 1),
            crash_mode: CrashMode::AfterSend,
            ..Default::default()
        },
    );
    assert!(matches!(end, RunEnd::Crashed));
    let cp = h.checkpoint.clone().unwrap();
    assert!(
        cp.cancel_requested,
        "the cancel decision was persisted first"
    );
    let mut job = Job::resume(cfg, plan.clone(), cp, h.now).unwrap();
    let summary = h.run_with(&mut job, RunOpts::default()).done();
    check_invariants(&h, &plan, &summary);
    assert!(summary.cancelled && summary.complete);
    for s in &summary.shards {
        assert_eq!(s.status, Some(BatchStatus::Cancelled));
    }
}

#[test]
fn an_auth_failure_stops_the_job_and_a_resume_continues() {
    let (mut job, plan, mut h, cfg) = three_shards(SimConfig::default(), |_| {});
    let summary = h
        .run_with(
            &mut job,
            RunOpts::faults(first_of_each(&["poll"], Fault::Status(401))),
        )
        .done();
    check_invariants(&h, &plan, &summary);
    assert!(!summary.complete);
    let error = summary.error.clone().unwrap();
    assert!(error.contains("authentication failed"), "{error}");
    for index in 0..25 {
        assert_eq!(h.not_processed(index).code, "job_stopped");
    }
    assert!(matches!(
        *summary.verdict().unwrap_err(),
        JobEndError::Stopped { .. }
    ));
    // Its batches run on; a resumed job (with a good key) collects them.
    let mut job = Job::resume(cfg, plan.clone(), h.checkpoint.clone().unwrap(), h.now).unwrap();
    let summary = run_clean(&mut job, &plan, &mut h);
    assert!(summary.complete && summary.error.is_none());
    assert_eq!((summary.succeeded, summary.failed), (23, 2));
    assert_eq!(h.sim.counters.creates, 3);
    assert_eq!(h.sim.counters.uploads, 3);
}

#[test]
fn stop_after_submitted_then_resume_to_the_end() {
    for stop in [StopAfter::Submitted, StopAfter::Polled] {
        let (mut job, plan, mut h, cfg) = three_shards(SimConfig::default(), |c| {
            c.stop_after = stop;
        });
        let summary = h.run_with(&mut job, RunOpts::default()).done();
        assert!(!summary.complete, "{stop:?}");
        assert!(h.durable.is_empty(), "{stop:?}: no outcome yet");
        assert_eq!(h.sim.counters.creates, 3);
        assert!(summary.shards.iter().all(|s| s.batch_id.is_some()));
        if stop == StopAfter::Polled {
            assert!(summary.shards.iter().all(|s| s.status.is_some()));
        }
        let mut cfg = cfg;
        cfg.stop_after = StopAfter::Finished;
        let mut job = Job::resume(cfg, plan.clone(), h.checkpoint.clone().unwrap(), h.now).unwrap();
        let summary = run_clean(&mut job, &plan, &mut h);
        assert!(summary.complete, "{stop:?}");
        assert_eq!(h.sim.counters.creates, 3);
        assert_eq!(h.sim.counters.uploads, 3);
    }
}

#[test]
fn a_refused_create_is_reported_not_processed_and_not_ok() {
    let (mut job, plan, mut h, _) = three_shards(SimConfig::default(), |_| {});
    let summary = h
        .run_with(
            &mut job,
            RunOpts::faults(first_of_each(&["create"], Fault::Status(400))),
        )
        .done();
    check_invariants(&h, &plan, &summary);
    // Shard 0's create was refused; the others ran.
    assert_eq!(summary.shards[0].end, Some(ShardEnd::NotSubmitted));
    for index in plan.shards()[0].range() {
        let np = h.not_processed(index);
        assert_eq!(np.code, "create_failed");
        assert!(np.message.contains("simulated failure"), "{}", np.message);
    }
    assert_eq!((summary.succeeded, summary.failed), (14, 1));
    assert!(summary.complete);
    let err = summary.verdict().unwrap_err();
    match &*err {
        JobEndError::Stopped { message, .. } => {
            assert!(message.contains("shard 0"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_job_cancelled_before_any_batch_is_not_ok() {
    let (mut job, plan, mut h, _) = three_shards(SimConfig::default(), |_| {});
    job.cancel(UnixMillis(T0));
    let summary = run_clean(&mut job, &plan, &mut h);
    assert!(summary.cancelled && summary.complete);
    assert_eq!(summary.not_processed, 25);
    for index in 0..25 {
        assert_eq!(h.not_processed(index).code, "job_cancelled");
    }
    assert_eq!(h.sim.counters.uploads + h.sim.counters.creates, 0);
    assert!(matches!(
        *summary.verdict().unwrap_err(),
        JobEndError::Stopped { .. }
    ));
}

/// Every upload or every create answers 500.
fn effect_failing_forever(op: &'static str) {
    let (mut job, plan, mut h, cfg) = three_shards(SimConfig::default(), |_| {});
    let opts = RunOpts {
        max_steps: 20_000,
        ..RunOpts::faults(move |_, r| {
            if (op == "create" && is_create(r)) || (op == "upload" && is_upload(r)) {
                Fault::Status(500)
            } else {
                Fault::None
            }
        })
    };
    let summary = h.run_with(&mut job, opts).done();
    check_invariants(&h, &plan, &summary);
    assert!(!summary.complete);
    for index in 0..25 {
        let np = h.not_processed(index);
        assert_eq!(np.code, "gave_up", "{op}");
        assert!(np.message.contains(op), "{}", np.message);
    }
    // The look-ups in between (a 500 may hide an upload or create that
    // happened) do not reset the count: the backoff grows to the policy's
    // limit, then the shard is given up.
    let mut per_shard = std::collections::BTreeMap::<u32, Vec<u32>>::new();
    for e in &h.events {
        if let JobEvent::Retrying {
            shard,
            op: o,
            attempt,
            ..
        } = e
        {
            if *o == op {
                per_shard.entry(*shard).or_default().push(*attempt);
            }
        }
    }
    let max = cfg.retry.max_attempts;
    for (shard, attempts) in per_shard {
        assert_eq!(attempts, (2..=max).collect::<Vec<_>>(), "shard {shard}");
    }
    assert_eq!(
        h.sim.counters.uploads + h.sim.counters.creates,
        if op == "create" { 3 } else { 0 }
    );
}

#[test]
fn create_failing_forever_is_given_up_with_growing_backoff() {
    effect_failing_forever("create");
}

#[test]
fn upload_failing_forever_is_given_up_with_growing_backoff() {
    effect_failing_forever("upload");
}

/// A whole run with no faults: how many exchanges it takes.
fn clean_exchanges() -> u64 {
    let (mut job, plan, mut h, _) = small_job();
    run_clean(&mut job, &plan, &mut h);
    h.exchanges
}

fn small_job() -> (Job, JobPlan, Harness, JobConfig) {
    let reqs = requests(7, Some(3));
    let (job, plan, shards, cfg) = job_for(&reqs, ShardLimits::new(3, 1 << 20), |c| {
        c.poll_interval = Duration::from_secs(600);
        c.max_parallel = 2;
    });
    assert_eq!(plan.shards().len(), 3);
    let sim = SimConfig {
        validate_ms: 5 * MIN,
        run_ms: 20 * MIN,
        finalize_ms: 5 * MIN,
        ..SimConfig::default()
    };
    let h = Harness::new(SimApi::new(sim), shards, UnixMillis(T0));
    (job, plan, h, cfg)
}

/// Where a run dies.
#[derive(Clone, Copy, Debug)]
enum CrashAt {
    /// After this many exchanges (before or after the next reaches the server).
    Exchange(u64, CrashMode),
    /// Instead of storing this run's n-th checkpoint.
    Persist(u64),
}

/// Crashes at `first`, then again at `again` in each resumed run (for
/// `repeats` runs), then runs to the end.
fn crash_and_resume(first: CrashAt, again: CrashAt, repeats: u32) {
    let (mut job, plan, mut h, cfg) = small_job();
    let mut crash = Some(first);
    let mut runs = 0;
    let summary = loop {
        runs += 1;
        assert!(runs < 100);
        let mut opts = RunOpts {
            max_steps: 200_000,
            ..Default::default()
        };
        match crash {
            Some(CrashAt::Exchange(n, mode)) => {
                opts.crash_after = Some(n);
                opts.crash_mode = mode;
            }
            Some(CrashAt::Persist(n)) => opts.crash_at_persist = Some(n),
            None => {}
        }
        let end = h.run_with(&mut job, opts);
        h.assert_no_double_effects(&plan);
        match end {
            RunEnd::Done(s) => break s,
            RunEnd::Crashed => {
                job = match h.checkpoint.clone() {
                    Some(cp) => Job::resume(cfg.clone(), plan.clone(), cp, h.now).unwrap(),
                    None => Job::new(cfg.clone(), plan.clone(), h.now),
                };
                crash = (runs <= repeats).then_some(again);
            }
            RunEnd::Paused => unreachable!(),
        }
    };
    let ctx = format!("crash at {first:?}, then at {again:?} x{repeats}");
    assert!(summary.complete, "{ctx}: {summary:?}");
    check_invariants(&h, &plan, &summary);
    assert_eq!((summary.succeeded, summary.failed), (5, 2), "{ctx}");
    for s in plan.shards() {
        assert_eq!(h.sim.live_batches_for_shard(s.index), 1, "{ctx}");
        assert_eq!(
            h.sim
                .uploads_named(&batch_core::job::shard_filename(plan.job_id(), s.index)),
            1,
            "{ctx}"
        );
    }
}

fn clean_persists() -> u64 {
    let (mut job, plan, mut h, _) = small_job();
    run_clean(&mut job, &plan, &mut h);
    h.persists
}

#[test]
fn crash_at_every_exchange_then_resume() {
    let n = clean_exchanges();
    assert!(n >= 15, "{n}");
    for mode in [CrashMode::BeforeSend, CrashMode::AfterSend] {
        for k in 0..=n {
            crash_and_resume(CrashAt::Exchange(k, mode), CrashAt::Exchange(0, mode), 0);
        }
    }
}

#[test]
fn crash_at_every_checkpoint_then_resume() {
    let n = clean_persists();
    assert!(n >= 15, "{n}");
    for k in 0..=n {
        crash_and_resume(CrashAt::Persist(k), CrashAt::Persist(0), 0);
    }
}

#[test]
fn repeated_crashes_then_resume() {
    let n = clean_exchanges();
    for mode in [CrashMode::BeforeSend, CrashMode::AfterSend] {
        for k in 1..=n {
            let at = CrashAt::Exchange(k, mode);
            crash_and_resume(at, at, 4);
        }
    }
    let n = clean_persists();
    for k in 1..=n {
        let at = CrashAt::Persist(k);
        crash_and_resume(at, at, 4);
    }
}

#[test]
fn checkpoints_round_trip_and_resume_checks_the_plan() {
    let (mut job, plan, mut h, cfg) = three_shards(SimConfig::default(), |_| {});
    let end = h.run_with(
        &mut job,
        RunOpts {
            crash_after: Some(8),
            ..Default::default()
        },
    );
    assert!(matches!(end, RunEnd::Crashed));
    let cp = h.checkpoint.clone().unwrap();
    let json = serde_json::to_string(&cp).unwrap();
    assert_eq!(
        serde_json::from_str::<batch_core::job::Checkpoint>(&json).unwrap(),
        cp
    );

    // Another input under the same job id.
    let other = requests(24, Some(10));
    let (_, other_plan, _, _) = job_for(&other, ShardLimits::new(10, 1 << 20), |_| {});
    assert_eq!(other_plan.job_id(), plan.job_id());
    let err = Job::resume(cfg.clone(), other_plan, cp.clone(), h.now).unwrap_err();
    assert!(matches!(err, ResumeError::PlanMismatch { .. }), "{err:?}");
    // The same input split differently.
    let (_, resplit, _, _) = job_for(
        &requests(25, Some(10)),
        ShardLimits::new(5, 1 << 20),
        |_| {},
    );
    let err = Job::resume(cfg.clone(), resplit, cp.clone(), h.now).unwrap_err();
    assert!(matches!(err, ResumeError::PlanMismatch { .. }), "{err:?}");
    let mut old = cp.clone();
    old.version = CHECKPOINT_VERSION + 1;
    let err = Job::resume(cfg.clone(), plan.clone(), old, h.now).unwrap_err();
    assert!(matches!(err, ResumeError::Version { .. }), "{err:?}");

    let mut job = Job::resume(cfg, plan.clone(), cp, h.now).unwrap();
    let summary = run_clean(&mut job, &plan, &mut h);
    assert!(summary.complete);
    assert_eq!(h.sim.counters.creates, 3);
}

/// Polls a new job until it asks for its first exchange.
fn first_send(job: &mut Job) -> (ExchangeId, UnixMillis) {
    let now = UnixMillis(T0);
    for _ in 0..100 {
        match job.poll(now) {
            Step::Send { id, .. } => return (id, now),
            Step::Done(s) => panic!("done early: {s:?}"),
            _ => {}
        }
    }
    panic!("no exchange asked for");
}

fn ok_head() -> http::response::Parts {
    http::Response::builder()
        .status(200)
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn assert_ends_in_misuse(job: &mut Job, now: UnixMillis) {
    let mut summary = None;
    for _ in 0..10 {
        if let Step::Done(s) = job.poll(now) {
            summary = Some(s);
            break;
        }
    }
    let summary = summary.expect("the job ends after a misuse");
    let error = summary.error.clone().expect("the error is in the summary");
    assert!(error.contains("driver misuse"), "{error}");
    assert!(job.is_done());
    assert!(summary.verdict().is_err());
}

#[test]
fn body_for_an_unknown_exchange_is_a_usage_error() {
    let (mut job, ..) = three_shards(SimConfig::default(), |_| {});
    let (id, now) = first_send(&mut job);
    let unknown = ExchangeId(id.0 + 100);
    let err = job.handle_body(unknown, b"{}").map(|_| ()).unwrap_err();
    assert_eq!(err, UsageError::UnknownExchange(unknown));
    // Sticky: the real exchange is refused too.
    assert_eq!(
        job.handle_head(id, ok_head(), now).unwrap_err(),
        UsageError::Poisoned
    );
    assert_ends_in_misuse(&mut job, now);
}

#[test]
fn a_second_head_is_a_usage_error() {
    let (mut job, ..) = three_shards(SimConfig::default(), |_| {});
    let (id, now) = first_send(&mut job);
    job.handle_head(id, ok_head(), now).unwrap();
    assert_eq!(
        job.handle_head(id, ok_head(), now).unwrap_err(),
        UsageError::HeadTwice(id)
    );
    assert_ends_in_misuse(&mut job, now);
}

#[test]
fn a_body_before_its_head_is_a_usage_error() {
    let (mut job, ..) = three_shards(SimConfig::default(), |_| {});
    let (id, now) = first_send(&mut job);
    let err = job.handle_body(id, b"{").map(|_| ()).unwrap_err();
    assert_eq!(err, UsageError::BodyBeforeHead(id));
    assert_ends_in_misuse(&mut job, now);
}

#[test]
fn token_limit_that_never_clears_is_reported_with_its_code() {
    let sim = SimConfig {
        token_limit_creates: 1_000,
        ..SimConfig::default()
    };
    let (mut job, plan, mut h, _) = three_shards(sim, |c| c.max_requeues = 1);
    let summary = run_clean(&mut job, &plan, &mut h);
    assert_eq!(summary.not_processed, 25);
    for index in 0..25 {
        assert_eq!(h.not_processed(index).code, "token_limit_exceeded");
    }
    match *summary.verdict().unwrap_err() {
        JobEndError::Failed { ref message, .. } => {
            assert!(message.contains("token_limit_exceeded"), "{message}")
        }
        ref other => panic!("{other:?}"),
    }
}

#[test]
fn a_requeue_wait_survives_a_crash() {
    let sim = SimConfig {
        token_limit_creates: 1,
        ..SimConfig::default()
    };
    let (mut job, plan, mut h, cfg) = three_shards(sim, |c| c.max_parallel = 1);
    // Stop at the first wait after the requeue was decided and persisted.
    let end = h.run_with(
        &mut job,
        RunOpts {
            pause: Some(Box::new(|h: &Harness| {
                h.events
                    .iter()
                    .any(|e| matches!(e, JobEvent::Requeued { .. }))
            })),
            ..RunOpts::default()
        },
    );
    assert!(matches!(end, RunEnd::Paused));
    let at = h
        .events
        .iter()
        .find_map(|e| match e {
            JobEvent::Requeued { at, .. } => Some(*at),
            _ => None,
        })
        .unwrap();
    // The process dies; a new one resumes from the checkpoint at once.
    let mut job = Job::resume(cfg, plan.clone(), h.checkpoint.clone().unwrap(), h.now).unwrap();
    let summary = run_clean(&mut job, &plan, &mut h);
    assert!(summary.complete);
    let creates: Vec<&Logged> = h.log.iter().filter(|l| op_of(l) == "create").collect();
    assert!(
        creates[1].at >= at,
        "the shard was created again before its requeue time"
    );
}

#[test]
fn a_deadline_survives_a_crash() {
    let (mut job, plan, mut h, cfg) = three_shards(SimConfig::default(), |c| {
        c.max_wait = Some(Duration::from_secs(30 * 60));
    });
    let start = h.now;
    let end = h.run_with(
        &mut job,
        RunOpts {
            pause: Some(Box::new(move |h: &Harness| {
                h.now >= start.plus_millis(20 * 60_000)
            })),
            ..RunOpts::default()
        },
    );
    assert!(matches!(end, RunEnd::Paused));
    // Resumed with the same max_wait: the original deadline still holds.
    let mut job = Job::resume(cfg, plan.clone(), h.checkpoint.clone().unwrap(), h.now).unwrap();
    let summary = h.run_with(&mut job, RunOpts::default()).done();
    assert!(summary.timed_out);
    assert!(
        h.now < start.plus_millis(31 * 60_000),
        "the wait restarted at the resume"
    );
}

#[test]
fn stop_after_submitted_respects_parallelism_and_returns_at_once() {
    let (mut job, plan, mut h, cfg) = three_shards(SimConfig::default(), |c| {
        c.stop_after = StopAfter::Submitted;
        c.max_parallel = 2;
    });
    let start = h.now;
    let summary = h.run_with(&mut job, RunOpts::default()).done();
    // Two shards fit the parallel limit; the third waits for a slot, and the
    // job does not wait for a batch to finish before returning.
    assert_eq!(h.sim.counters.creates, 2);
    assert!(
        h.now < start.plus_millis(10 * 60_000),
        "waited for a batch to finish"
    );
    assert_eq!(
        summary
            .shards
            .iter()
            .filter(|s| s.batch_id.is_some())
            .count(),
        2
    );
    let mut cfg = cfg;
    cfg.stop_after = StopAfter::Finished;
    let mut job = Job::resume(cfg, plan.clone(), h.checkpoint.clone().unwrap(), h.now).unwrap();
    let summary = run_clean(&mut job, &plan, &mut h);
    assert!(summary.complete);
    assert_eq!(h.sim.counters.creates, 3);
}
