//! The Job in a deterministic simulation: every status path, faults, crashes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use batch_core::job::{JobEvent, JobOutcome, ShardLimits};
use common::*;

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
