//! The Job on Anthropic's Message Batches under random faults and crashes.
//!
//! Each case plans a random job, scripts a fault for every exchange
//! (mostly none; 429, 529, 5xx with or without the server having acted,
//! an answer that never comes, not sent, lost after send, cut body),
//! crashes the driver at random
//! points after the server acted on an exchange, and resumes from the last
//! persisted checkpoint until the job is done. Whatever happened:
//! - every request ends in exactly one durable outcome, the one the
//!   server's behaviour decides (no faults: the same outcomes);
//! - no result is delivered twice within one run;
//! - someone else's batches of the same size are never taken for the
//!   job's (their results are never delivered);
//! - no request is in two batches: a create is never repeated while the
//!   batch it may have made could exist;
//! - the summary's counts are the durable outcomes' counts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod anthropic_common;

use anthropic_common::*;
use batch_core::api::Outgoing;
use batch_core::http::{Method, Request};
use batch_core::job::{Job, JobOutcome};
use proptest::prelude::*;

fn fault_of(code: u8) -> Fault {
    match code {
        0 => Fault::Status(429),
        1 => Fault::Status(529),
        2 => Fault::Status(500),
        3 => Fault::StatusAfterAct(502),
        4 => Fault::NotSent,
        5 => Fault::LostAfterSend,
        6 => Fault::CutBody(0.3),
        7 => Fault::SilentAfterAct,
        _ => Fault::None,
    }
}

fn outcome_kind(o: &JobOutcome) -> &'static str {
    match o {
        JobOutcome::Succeeded(_) => "succeeded",
        JobOutcome::Failed(_) => "failed",
        JobOutcome::NotProcessed(_) => "not_processed",
        _ => "other",
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn faults_and_crashes_never_double_a_batch_or_an_outcome(
        n in 1usize..30,
        per_shard in 1u64..12,
        // One fault code per exchange; codes above 6 are no fault.
        faults in proptest::collection::vec(0u8..20, 0..120),
        // Crash after the server acted on the k-th exchange of a run.
        crashes in proptest::collection::vec(1u64..25, 0..3),
        // Someone else's batches of a shard's size, created just before.
        foreign in 0usize..3,
    ) {
        let (plan, shards) = plan(n, Some(7), per_shard);
        let mut sim = SimApi::new(SimConfig::default());
        for k in 0..foreign {
            let size = plan.shards()[0].requests;
            let ids = (0..size).map(|i| format!("other{k}-{i}")).collect();
            sim.add_foreign_batch(ids, T0 - MIN);
        }
        let mut h = Harness::new(sim, shards);
        let mut job = Job::new(config(), plan.clone(), UnixMillis(T0));
        let mut faults = faults.into_iter();
        let mut crashes = crashes.into_iter();
        let mut runs = 0;
        let summary = loop {
            runs += 1;
            prop_assert!(runs < 10);
            let crash_at = crashes.next();
            let mut seen = 0u64;
            let crash = crash_at.map(|k| {
                Box::new(move |_: &Request<Outgoing>| {
                    seen += 1;
                    seen == k
                }) as CrashFn<'static>
            });
            let fault_iter = &mut faults;
            let end = h.run_with(
                &mut job,
                Box::new(move |_, _| fault_iter.next().map_or(Fault::None, fault_of)),
                crash,
                |_, _| false,
            );
            match end {
                RunEnd::Done(s) => break s,
                RunEnd::Crashed => {
                    let Some(cp) = h.checkpoint.clone() else {
                        job = Job::new(config(), plan.clone(), h.now);
                        continue;
                    };
                    job = Job::resume(config(), plan.clone(), cp, h.now).unwrap();
                }
            }
        };
        // A shard stopped by retries running out is resumed, as a user would.
        let mut summary = summary;
        let mut resumes = 0;
        while !summary.complete {
            resumes += 1;
            prop_assert!(resumes < 5, "the job does not complete: {summary:?}");
            let cp = h.checkpoint.clone().unwrap();
            job = Job::resume(config(), plan.clone(), cp, h.now).unwrap();
            summary = h.run(&mut job);
        }
        assert_every_request_once(&h, &plan);
        for i in 0..plan.len() {
            prop_assert!(h.sim.batches_holding(plan.custom_id(i)) <= 1, "request {i} is in two batches");
            let r = &h.durable[&i];
            prop_assert!(r.batch_id.as_deref().is_some_and(|b| h.sim.batch_holds(b, plan.custom_id(i))));
            let want = if plan.custom_id(i).contains("fail") { "failed" } else { "succeeded" };
            prop_assert_eq!(outcome_kind(&r.outcome), want, "request {}", i);
        }
        let (s, f, np) = h.counts();
        prop_assert_eq!((summary.succeeded, summary.failed, summary.not_processed), (s, f, np));
        prop_assert!(h.log.iter().all(|(m, p)| *m != Method::POST || p.starts_with("/v1/messages/batches")));
    }
}
