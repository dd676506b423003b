//! A job stopped early (after submission, or after one status poll) leaves
//! every outcome to the run that collects them, even when a batch has
//! already finished by the time it is polled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use batch_core::api::BatchStatus;
use batch_core::job::{Job, ShardLimits, StopAfter};
use common::*;

#[test]
fn a_status_poll_of_finished_batches_downloads_nothing_and_loses_nothing() {
    // Batches finish within seconds.
    let sim = SimConfig {
        validate_ms: 1_000,
        run_ms: 1_000,
        finalize_ms: 1_000,
        ..SimConfig::default()
    };
    let reqs = requests(25, Some(10));
    let (mut job, plan, shards, cfg) = job_for(&reqs, ShardLimits::new(10, 1 << 20), |c| {
        c.stop_after = StopAfter::Submitted;
    });
    let mut h = Harness::new(SimApi::new(sim), shards, UnixMillis(1_700_000_000_000));
    let submitted = h.run_with(&mut job, RunOpts::default()).done();
    let slow = submitted.shards[1].batch_id.clone().unwrap();
    h.now = h.now.saturating_add(std::time::Duration::from_secs(60));

    // A status poll once every batch has finished. The first read of shard
    // 1's batch fails with a 500, so shard 0's finished batch is read while
    // shard 1 backs off; its results must wait for the collecting run.
    let mut polled_cfg = cfg.clone();
    polled_cfg.stop_after = StopAfter::Polled;
    let mut job = Job::resume(
        polled_cfg,
        plan.clone(),
        h.checkpoint.clone().unwrap(),
        h.now,
    )
    .unwrap();
    let mut failed = false;
    let status = h
        .run_with(
            &mut job,
            RunOpts::faults(|_, r| {
                if !failed && is_poll(r) && r.uri().path().ends_with(slow.as_str()) {
                    failed = true;
                    Fault::Status(500)
                } else {
                    Fault::None
                }
            }),
        )
        .done();
    assert!(failed);
    assert!(
        status
            .shards
            .iter()
            .all(|s| s.status == Some(BatchStatus::Completed)),
        "{status:?}"
    );
    assert_eq!(
        h.sim.counters.downloads, 0,
        "a status poll downloaded results"
    );
    assert!(
        h.durable.is_empty() && h.volatile.is_empty(),
        "a status poll delivered outcomes"
    );
    assert!(status.shards.iter().all(|s| s.end.is_none()), "{status:?}");

    // The collecting run delivers every outcome once.
    let mut cfg = cfg;
    cfg.stop_after = StopAfter::Finished;
    let mut job = Job::resume(cfg, plan.clone(), h.checkpoint.clone().unwrap(), h.now).unwrap();
    let summary = h.run_with(&mut job, RunOpts::default()).done();
    assert!(summary.complete, "{summary:?}");
    assert_every_request_once(&h, &plan);
    assert_eq!(h.sim.counters.creates, 3, "one batch per shard");
}

#[test]
fn a_status_poll_reads_every_batch_now() {
    let reqs = requests(25, Some(10));
    let (mut job, plan, shards, cfg) = job_for(&reqs, ShardLimits::new(10, 1 << 20), |c| {
        c.stop_after = StopAfter::Submitted;
        c.poll_interval = std::time::Duration::from_secs(600);
    });
    let mut h = Harness::new(
        SimApi::new(SimConfig::default()),
        shards,
        UnixMillis(1_700_000_000_000),
    );
    h.run_with(&mut job, RunOpts::default()).done();
    let asked_at = h.now;
    let logged = h.log.len();
    let mut polled_cfg = cfg;
    polled_cfg.stop_after = StopAfter::Polled;
    let mut job = Job::resume(polled_cfg, plan, h.checkpoint.clone().unwrap(), h.now).unwrap();
    let status = h.run_with(&mut job, RunOpts::default()).done();
    assert!(
        status.shards.iter().all(|s| s.status.is_some()),
        "{status:?}"
    );
    let polls: Vec<_> = h.log[logged..]
        .iter()
        .filter(|l| l.path.starts_with("/v1/batches/"))
        .collect();
    assert_eq!(polls.len(), 3, "{polls:?}");
    // Not ten minutes later, at the batches' next scheduled poll.
    assert!(polls.iter().all(|l| l.at == asked_at), "{polls:?}");
}

#[test]
fn a_cancel_goes_out_now_not_at_the_next_scheduled_poll() {
    let reqs = requests(25, Some(10));
    let (mut job, plan, shards, cfg) = job_for(&reqs, ShardLimits::new(10, 1 << 20), |c| {
        c.stop_after = StopAfter::Submitted;
        c.poll_interval = std::time::Duration::from_secs(600);
    });
    let mut h = Harness::new(
        SimApi::new(SimConfig::default()),
        shards,
        UnixMillis(1_700_000_000_000),
    );
    h.run_with(&mut job, RunOpts::default()).done();
    let asked_at = h.now;
    let mut cfg = cfg;
    cfg.stop_after = StopAfter::Finished;
    let mut job = Job::resume(cfg, plan.clone(), h.checkpoint.clone().unwrap(), h.now).unwrap();
    job.cancel(h.now);
    let summary = h.run_with(&mut job, RunOpts::default()).done();
    assert!(summary.cancelled && summary.complete, "{summary:?}");
    assert_every_request_once(&h, &plan);
    let cancels: Vec<_> = h
        .log
        .iter()
        .filter(|l| l.path.ends_with("/cancel"))
        .collect();
    assert_eq!(cancels.len(), 3, "{cancels:?}");
    // Not ten minutes later, at the batches' next scheduled poll.
    assert!(cancels.iter().all(|l| l.at == asked_at), "{cancels:?}");
}
