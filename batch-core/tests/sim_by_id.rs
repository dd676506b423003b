//! A job for a batch known only by its id (`JobPlan::for_batch`), in the
//! deterministic simulation: it starts at the poll phase, learns the
//! `custom_id`s from the batch's input file (or, when that cannot be read,
//! from the result files), reports each request once (output and error
//! files merged), names the requests without a result line, cancels, polls
//! once, and resumes after a crash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use batch_core::api::BatchStatus;
use batch_core::job::{JobConfig, JobEvent, JobPlan, ShardEnd, ShardLimits, StopAfter};
use common::*;

const T0: u64 = 1_700_000_000_000;
const HOUR: u64 = 3_600_000;

/// Submits `n` requests (every 10th fails) as one batch in `sim` and
/// returns the harness (the server lives on in it), the batch id and the
/// job's configuration.
fn submitted(n: usize, sim: SimConfig) -> (Harness, String, JobConfig) {
    let reqs = requests(n, Some(10));
    let (mut job, _, shards, cfg) = job_for(&reqs, ShardLimits::new(1000, 1 << 20), |c| {
        c.stop_after = StopAfter::Submitted;
    });
    let mut h = Harness::new(SimApi::new(sim), shards, UnixMillis(T0));
    let summary = h.run_with(&mut job, RunOpts::default()).done();
    let batch_id = summary.shards[0]
        .batch_id
        .clone()
        .expect("a batch was created");
    assert!(h.durable.is_empty(), "a submit reports no outcomes");
    let mut cfg = cfg;
    cfg.stop_after = StopAfter::Finished;
    (h, batch_id, cfg)
}

/// A fresh job that knows only `batch_id`.
fn by_id(cfg: &JobConfig, batch_id: &str, now: UnixMillis) -> (batch_core::job::Job, JobPlan) {
    let plan = JobPlan::for_batch("reader", batch_id);
    (
        batch_core::job::Job::new(cfg.clone(), plan.clone(), now),
        plan,
    )
}

/// The outcomes by `custom_id`, as `kind:content`.
fn by_custom_id(h: &Harness) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for r in h.durable.values() {
        let content = match &r.outcome {
            batch_core::job::JobOutcome::Succeeded(rec) => rec.content().unwrap_or("").to_owned(),
            _ => String::new(),
        };
        let old = m.insert(
            r.custom_id.clone(),
            format!("{}:{content}", outcome_kind(r)),
        );
        assert!(old.is_none(), "{} reported twice", r.custom_id);
    }
    m
}

fn warnings(h: &Harness) -> Vec<String> {
    h.events
        .iter()
        .filter_map(|e| match e {
            JobEvent::Warning { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_batch_read_by_id_gives_the_outcomes_its_creator_gets() {
    // The creator's own view: the same requests run to the end.
    let reqs = requests(25, Some(10));
    let (mut full, _, shards, _) = job_for(&reqs, ShardLimits::new(1000, 1 << 20), |_| {});
    let mut creator = Harness::new(SimApi::new(SimConfig::default()), shards, UnixMillis(T0));
    let expected_summary = creator.run_with(&mut full, RunOpts::default()).done();
    let expected = by_custom_id(&creator);

    let (mut h, batch_id, cfg) = submitted(25, SimConfig::default());
    let (uploads, creates) = (h.sim.counters.uploads, h.sim.counters.creates);
    let (mut job, _) = by_id(&cfg, &batch_id, h.now);
    let summary = h.run_with(&mut job, RunOpts::default()).done();

    assert_eq!(by_custom_id(&h), expected);
    assert_eq!(h.durable.len(), 25);
    // Indexes are dense, in the order the ids were learned.
    assert_eq!(
        h.durable.keys().copied().collect::<Vec<_>>(),
        (0..25).collect::<Vec<u64>>()
    );
    for (i, r) in &h.durable {
        assert_eq!(job.plan().custom_id(*i), r.custom_id);
        assert_eq!(r.batch_id.as_deref(), Some(batch_id.as_str()));
    }
    assert_eq!(summary.requests, 25);
    assert_eq!(summary.succeeded, expected_summary.succeeded);
    assert_eq!(summary.failed, expected_summary.failed);
    assert!(summary.complete, "{summary:?}");
    assert_eq!(summary.shards[0].status, Some(BatchStatus::Completed));
    assert!(
        summary.shards[0].file_id.is_some(),
        "the input file is learned from the batch"
    );
    // Reading by id has no outside effect.
    assert_eq!(h.sim.counters.uploads, uploads);
    assert_eq!(h.sim.counters.creates, creates);
    assert!(h.sim.counters.polls >= 1);
}

#[test]
fn requests_without_a_result_line_are_named_from_the_input_file() {
    let sim = SimConfig {
        drop_ids: ["req-4".to_owned(), "req-7".to_owned()]
            .into_iter()
            .collect(),
        ..SimConfig::default()
    };
    let (mut h, batch_id, cfg) = submitted(25, sim);
    let (mut job, _) = by_id(&cfg, &batch_id, h.now);
    let summary = h.run_with(&mut job, RunOpts::default()).done();
    assert_eq!(h.durable.len(), 25);
    // Numbered in input order: request i is `req-i` (or `req-i-fail`).
    for (i, r) in &h.durable {
        assert!(
            r.custom_id == format!("req-{i}") || r.custom_id == format!("req-{i}-fail"),
            "{i}: {}",
            r.custom_id
        );
    }
    assert_eq!(h.not_processed(4).code, "missing_result");
    assert_eq!(h.not_processed(7).code, "missing_result");
    assert_eq!(summary.requests, 25);
    assert_eq!(summary.not_processed, 2);
    assert!(summary.complete, "{summary:?}");
}

#[test]
fn without_its_input_file_requests_without_a_result_line_are_counted_missing() {
    let sim = SimConfig {
        drop_ids: ["req-4".to_owned(), "req-7".to_owned()]
            .into_iter()
            .collect(),
        ..SimConfig::default()
    };
    let (mut h, batch_id, cfg) = submitted(25, sim);
    // The input file is gone (deleted, expired): every read of it is a 404.
    let input = h.checkpoint.as_ref().expect("a checkpoint").shards[0]
        .file_id
        .clone()
        .expect("an input file");
    let (mut job, _) = by_id(&cfg, &batch_id, h.now);
    let summary = h
        .run_with(
            &mut job,
            RunOpts::faults(|_, req| {
                if req.uri().path().contains(&input) {
                    Fault::Status(404)
                } else {
                    Fault::None
                }
            }),
        )
        .done();
    assert_eq!(h.durable.len(), 23);
    assert!(!by_custom_id(&h).contains_key("req-4"));
    assert_eq!(summary.requests, 25, "the batch's total, not the ids seen");
    assert_eq!(
        summary.succeeded + summary.failed + summary.not_processed,
        23
    );
    assert!(!summary.complete);
    assert!(
        warnings(&h).iter().any(|w| w.contains(
            "holds 25 requests but its input and result files named 23: 2 have no outcome"
        )),
        "{:?}",
        warnings(&h)
    );
}

#[test]
fn a_request_in_both_files_is_reported_once() {
    let (mut h, batch_id, cfg) = submitted(25, SimConfig::default());
    // The error file is replaced by one that repeats req-3 (already in the
    // output file) beside the two failures it really holds.
    let compact = |id: &str| {
        format!(
            r#"{{"id":"r","custom_id":"{id}","response":{{"status_code":400,"request_id":"q","body":{{"error":{{"message":"bad","type":"invalid_request_error"}}}}}},"error":null}}"#
        )
    };
    let body = format!(
        "{}\n{}\n{}\n",
        compact("req-3"),
        compact("req-9-fail"),
        compact("req-19-fail")
    )
    .into_bytes();
    let mut files_read: Vec<String> = Vec::new();
    let (mut job, _) = by_id(&cfg, &batch_id, h.now);
    let summary = h
        .run_with(
            &mut job,
            RunOpts::faults(|_, req| {
                if !is_download(req) {
                    return Fault::None;
                }
                let path = req.uri().path().to_owned();
                if !files_read.contains(&path) {
                    files_read.push(path.clone());
                }
                if files_read.len() == 3 && files_read[2] == path {
                    Fault::Reply {
                        status: 200,
                        headers: vec![("content-length", body.len().to_string())],
                        body: body.clone(),
                    }
                } else {
                    Fault::None
                }
            }),
        )
        .done();
    assert_eq!(
        files_read.len(),
        3,
        "input, output and error files: {files_read:?}"
    );
    let outcomes = by_custom_id(&h);
    assert_eq!(outcomes.len(), 25);
    assert_eq!(
        outcomes["req-3"], "succeeded:answer to req-3",
        "the first line is kept"
    );
    assert_eq!(outcomes["req-9-fail"], "failed:");
    assert_eq!(summary.requests, 25);
    assert!(summary.complete);
    assert!(
        warnings(&h)
            .iter()
            .any(|w| w.contains("repeats custom_id \"req-3\"")),
        "{:?}",
        warnings(&h)
    );
}

#[test]
fn a_batch_is_polled_and_cancelled_by_id() {
    let (mut h, batch_id, cfg) = submitted(25, SimConfig::default());
    // One status read, nothing downloaded.
    let mut poll_cfg = cfg.clone();
    poll_cfg.stop_after = StopAfter::Polled;
    let (mut poll, _) = by_id(&poll_cfg, &batch_id, h.now);
    let downloads = h.sim.counters.downloads;
    let status = h.run_with(&mut poll, RunOpts::default()).done();
    assert_eq!(
        status.shards[0].batch_id.as_deref(),
        Some(batch_id.as_str())
    );
    assert!(
        status.shards[0]
            .status
            .as_ref()
            .is_some_and(|s| !s.is_terminal())
    );
    assert_eq!(status.shards[0].counts.map(|c| c.total), Some(25));
    assert_eq!(status.requests, 25);
    assert_eq!(h.sim.counters.downloads, downloads);
    assert!(h.durable.is_empty());

    // Halfway through its run, a fresh job cancels it and collects what ran.
    h.now = UnixMillis(h.now.0 + 60_000 + HOUR / 2);
    let (mut job, _) = by_id(&cfg, &batch_id, h.now);
    job.cancel(h.now);
    let summary = h.run_with(&mut job, RunOpts::default()).done();
    assert_eq!(h.sim.counters.cancels, 1);
    assert_eq!(summary.shards[0].status, Some(BatchStatus::Cancelled));
    assert_eq!(summary.shards[0].end, Some(ShardEnd::Finished));
    let outcomes = by_custom_id(&h);
    assert_eq!(outcomes.len(), 25, "ran or cancelled, each once");
    let cancelled = outcomes
        .values()
        .filter(|o| o.starts_with("not_processed"))
        .count() as u64;
    assert!(cancelled > 0 && cancelled < 25, "{cancelled} not processed");
    assert_eq!(summary.not_processed, cancelled);
    assert!(summary.complete);
}

#[test]
fn a_by_id_job_resumes_from_its_checkpoint_after_a_crash() {
    let (mut h, batch_id, cfg) = submitted(25, SimConfig::default());
    h.now = UnixMillis(h.now.0 + 2 * HOUR);
    let (mut job, plan) = by_id(&cfg, &batch_id, h.now);
    // Poll, file info, then die before the first download.
    let end = h.run_with(
        &mut job,
        RunOpts {
            crash_after: Some(3),
            ..RunOpts::default()
        },
    );
    assert!(matches!(end, RunEnd::Crashed), "{end:?}");
    let cp = h.checkpoint.clone().expect("a checkpoint was stored");
    assert_eq!(cp.plan, plan.digest());
    // Another process: the same plan (only the id), the stored checkpoint.
    let mut resumed = batch_core::job::Job::resume(
        cfg.clone(),
        JobPlan::for_batch("reader", &batch_id),
        cp,
        h.now,
    )
    .expect("resumes");
    let summary = h.run_with(&mut resumed, RunOpts::default()).done();
    assert_eq!(by_custom_id(&h).len(), 25);
    assert!(summary.complete);
    // A plan for another batch is not this job's.
    let other = batch_core::job::Job::resume(
        cfg,
        JobPlan::for_batch("reader", "batch_other"),
        h.checkpoint.clone().unwrap(),
        h.now,
    );
    assert!(other.is_err());
}

#[test]
fn a_batch_that_failed_validation_is_read_by_id_as_failed() {
    let sim = SimConfig {
        validation_error: Some(("invalid_request".to_owned(), 3)),
        ..SimConfig::default()
    };
    let (mut h, batch_id, cfg) = submitted(5, sim);
    let (mut job, _) = by_id(&cfg, &batch_id, h.now);
    let summary = h.run_with(&mut job, RunOpts::default()).done();
    assert_eq!(summary.shards[0].status, Some(BatchStatus::Failed));
    // No result file names a request; the input file names all five, and
    // the line that failed validation carries its own reason.
    assert_eq!(h.durable.len(), 5);
    assert_eq!(h.not_processed(2).code, "invalid_request");
    assert!(
        h.not_processed(2).message.contains("line 3"),
        "{}",
        h.not_processed(2).message
    );
    for i in [0, 1, 3, 4] {
        assert_eq!(h.not_processed(i).code, "batch_failed");
    }
    assert!(summary.complete);
    let err = summary.verdict().expect_err("a failed batch");
    assert!(err.to_string().contains(&batch_id), "{err}");
}
