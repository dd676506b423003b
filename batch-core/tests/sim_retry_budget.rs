//! The retry policy's time budget (`RetryPolicy::max_elapsed`), in the
//! simulation: an operation that keeps failing is given up once its next
//! retry would start past the budget, counted from its first failure, long
//! before the attempt cap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use batch_core::http::Method;
use batch_core::job::{ShardEnd, ShardLimits};
use common::*;

const T0: u64 = 1_700_000_000_000;

#[test]
fn a_time_budget_gives_up_before_the_attempt_cap() {
    let reqs = requests(10, Some(10));
    let (mut job, plan, shards, _) = job_for(&reqs, ShardLimits::new(10, 1 << 20), |cfg| {
        cfg.retry.max_attempts = 1000;
        cfg.retry.base_delay = Duration::from_secs(1);
        cfg.retry.max_delay = Duration::from_secs(8);
        cfg.retry.max_elapsed = Some(Duration::from_secs(60));
    });
    let mut h = Harness::new(SimApi::new(SimConfig::default()), shards, UnixMillis(T0));
    let opts = RunOpts::faults(|_, r| {
        if is_upload(r) {
            Fault::Reply {
                status: 503,
                headers: vec![],
                body: br#"{"error":{"message":"down","type":"server_error"}}"#.to_vec(),
            }
        } else {
            Fault::None
        }
    });
    let summary = h.run_with(&mut job, opts).done();
    assert_every_request_once(&h, &plan);
    let uploads: Vec<u64> = h
        .log
        .iter()
        .filter(|l| l.method == Method::POST && l.path.ends_with("/files"))
        .map(|l| l.at.as_millis())
        .collect();
    let first = uploads[0];
    let last = uploads[uploads.len() - 1];
    // Retries came for the whole budget (backoff of at most 8 s), none after it.
    assert!(uploads.len() > 8, "{uploads:?}");
    assert!(uploads.len() < 1000, "{uploads:?}");
    assert!(
        last - first <= 60_000,
        "a retry past the budget: {uploads:?}"
    );
    assert!(last - first > 60_000 - 8_000, "given up early: {uploads:?}");
    let message = &h.not_processed(0).message;
    assert!(message.contains("retry budget of 60s ran out"), "{message}");
    assert_eq!(summary.shards[0].end, Some(ShardEnd::Stopped));
}
