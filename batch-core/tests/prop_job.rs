//! The Job under random faults, crashes, clock skew and server behaviours.
//!
//! Each case plans a random job, scripts a fault for every exchange
//! (mostly none; 429, 5xx with or without the server having acted, not
//! sent, lost after send, cut body), crashes the driver at random points
//! (before or after an exchange reaches the server, or instead of storing
//! a checkpoint), skews the clock at each restart and at wake-ups, and
//! resumes from the last persisted checkpoint until the job completes. The invariants hold whatever happened:
//! - every request ends in exactly one durable outcome, and that outcome is
//!   the one the server's behaviour decides (faults and crashes change how
//!   the job gets there, never where it ends);
//! - no result is delivered twice within one run;
//! - no shard has two live batches, and no shard file is uploaded twice;
//! - the summary's counts are the durable outcomes' counts;
//! - the job terminates within a step bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use batch_core::job::{Job, JobOutcome, OnTimeout, ShardLimits};
use common::*;
use proptest::prelude::*;

const T0: u64 = 1_700_000_000_000;
const MIN: u64 = 60_000;

#[derive(Clone, Debug)]
enum Behaviour {
    Normal,
    /// Batches stall at this fraction and expire.
    Expire(f64),
    /// The first N creates fail for the enqueued-token limit.
    TokenLimit(u32),
    /// A garbage line in each output file.
    Garbage,
    /// The server drops the result of this request.
    Drop(usize),
}

#[derive(Clone, Copy, Debug)]
enum CrashPoint {
    /// Just before the exchange is sent.
    BeforeSend,
    /// Just after the server got the exchange, before the answer is heard.
    AfterSend,
    /// Instead of storing a checkpoint.
    AtPersist,
}

#[derive(Clone, Debug)]
struct Crash {
    /// Exchanges (or checkpoints, for `AtPersist`) of the run before it crashes.
    after: u64,
    point: CrashPoint,
    /// Clock change at the restart, in ms (negative: the clock went back).
    skew_ms: i64,
}

#[derive(Clone, Debug)]
struct Scenario {
    requests: usize,
    per_shard: u64,
    max_parallel: usize,
    behaviour: Behaviour,
    /// The fault of exchange n (1-based) is `faults[n - 1]`; beyond, none.
    faults: Vec<Fault>,
    crashes: Vec<Crash>,
    /// Seed of the wake-up skew (early, late or on time).
    wake_seed: u64,
    /// The user cancels the job this long after it started.
    cancel_after_ms: Option<u64>,
    /// The job's maximum wait, and whether it cancels at it.
    max_wait: Option<(u64, bool)>,
    /// The server ignores `Range`; its files lack a final newline.
    quirks: (bool, bool),
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        80 => Just(Fault::None),
        4 => Just(Fault::Status(429)),
        4 => prop_oneof![Just(500u16), Just(502), Just(503)].prop_map(Fault::Status),
        2 => prop_oneof![Just(500u16), Just(504)].prop_map(Fault::StatusAfterAct),
        4 => Just(Fault::NotSent),
        4 => Just(Fault::LostAfterSend),
        4 => (0.05f64..0.95).prop_map(Fault::CutBody),
    ]
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        4 => Just(Behaviour::Normal),
        2 => (0.2f64..0.9).prop_map(Behaviour::Expire),
        2 => (1u32..4).prop_map(Behaviour::TokenLimit),
        1 => Just(Behaviour::Garbage),
        1 => (0usize..20).prop_map(Behaviour::Drop),
    ]
}

fn crash() -> impl Strategy<Value = Crash> {
    let point = prop_oneof![
        Just(CrashPoint::BeforeSend),
        Just(CrashPoint::AfterSend),
        Just(CrashPoint::AtPersist),
    ];
    (0u64..40, point, -30 * 60_000i64..3 * 3_600_000).prop_map(|(after, point, skew_ms)| Crash {
        after,
        point,
        skew_ms,
    })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        1usize..=20,
        1u64..=8,
        1usize..=4,
        behaviour(),
        prop::collection::vec(fault(), 0..160),
        prop::collection::vec(crash(), 0..4),
        any::<u64>(),
        prop::option::weighted(0.2, 0u64..90 * MIN),
        prop::option::weighted(0.2, (10 * MIN..120 * MIN, any::<bool>())),
        (prop::bool::weighted(0.2), prop::bool::weighted(0.2)),
    )
        .prop_map(
            |(
                requests,
                per_shard,
                max_parallel,
                behaviour,
                faults,
                crashes,
                wake_seed,
                cancel_after_ms,
                max_wait,
                quirks,
            )| {
                Scenario {
                    requests,
                    per_shard,
                    max_parallel,
                    behaviour,
                    faults,
                    crashes,
                    wake_seed,
                    cancel_after_ms,
                    max_wait,
                    quirks,
                }
            },
        )
}

/// The outcome the server's behaviour decides for request `index`, placed
/// at `offset` of a shard of `len` requests: (kind, not-processed code).
fn expected(
    b: &Behaviour,
    custom_id: &str,
    index: usize,
    offset: u64,
    len: u64,
) -> (&'static str, Option<&'static str>) {
    let processed = match b {
        Behaviour::Expire(f) => offset < (len as f64 * f) as u64,
        _ => true,
    };
    if !processed {
        return ("not_processed", Some("batch_expired"));
    }
    if matches!(b, Behaviour::Drop(d) if *d == index) {
        return ("not_processed", Some("missing_result"));
    }
    if custom_id.contains("fail") {
        ("failed", None)
    } else {
        ("succeeded", None)
    }
}

fn run(sc: &Scenario) -> Result<(), TestCaseError> {
    let reqs = requests(sc.requests, Some(4));
    let (job, plan, shards, cfg) = job_for(&reqs, ShardLimits::new(sc.per_shard, 1 << 20), |c| {
        c.poll_interval = Duration::from_secs(120);
        c.max_parallel = sc.max_parallel;
        c.requeue_delay = Duration::from_secs(120);
        if let Some((ms, cancel)) = sc.max_wait {
            c.max_wait = Some(Duration::from_millis(ms));
            if cancel {
                c.on_timeout = OnTimeout::Cancel;
            }
        }
    });
    let mut sim = SimConfig {
        validate_ms: 2 * MIN,
        run_ms: 40 * MIN,
        finalize_ms: 3 * MIN,
        ignore_range: sc.quirks.0,
        no_final_newline: sc.quirks.1,
        ..SimConfig::default()
    };
    match &sc.behaviour {
        Behaviour::Normal => {}
        Behaviour::Expire(f) => {
            sim.stall_at = Some(*f);
            sim.expire_ms = 2 * 60 * MIN;
        }
        Behaviour::TokenLimit(n) => sim.token_limit_creates = *n,
        Behaviour::Garbage => sim.garbage_line = true,
        Behaviour::Drop(i) => {
            if let Some(r) = reqs.get(*i) {
                sim.drop_ids.insert(r.custom_id.clone());
            }
        }
    }
    let mut h = Harness::new(SimApi::new(sim), shards, UnixMillis(T0));
    let mut job = job;
    let mut crashes = sc.crashes.iter();
    let mut rng = batch_core::retry::JitterRng::new(sc.wake_seed);
    let mut runs = 0;
    let summary = loop {
        runs += 1;
        prop_assert!(runs <= 300, "the job did not complete within 300 runs");
        let crash = crashes.next();
        let faults = &sc.faults;
        let rng = &mut rng;
        let opts = RunOpts {
            fault: Box::new(move |n, _| {
                usize::try_from(n - 1)
                    .ok()
                    .and_then(|i| faults.get(i))
                    .cloned()
                    .unwrap_or(Fault::None)
            }),
            crash_after: crash
                .filter(|c| !matches!(c.point, CrashPoint::AtPersist))
                .map(|c| c.after),
            crash_mode: if crash.is_some_and(|c| matches!(c.point, CrashPoint::AfterSend)) {
                CrashMode::AfterSend
            } else {
                CrashMode::BeforeSend
            },
            crash_at_persist: crash
                .filter(|c| matches!(c.point, CrashPoint::AtPersist))
                .map(|c| c.after),
            // The user's cancel, until a checkpoint records it.
            pause: sc.cancel_after_ms.map(|ms| -> PauseFn<'_> {
                Box::new(move |h: &Harness| {
                    h.now.as_millis() >= T0 + ms
                        && !h.checkpoint.as_ref().is_some_and(|cp| cp.cancel_requested)
                })
            }),
            // Mostly on time; sometimes early (the job must wait again),
            // sometimes late.
            wake: Some(Box::new(move |until: UnixMillis| match rng.below(10) {
                0 => UnixMillis(until.as_millis().saturating_sub(rng.below(10_000))),
                1 | 2 => until.plus_millis(rng.below(90_000)),
                _ => until,
            })),
            max_steps: 400_000,
        };
        let end = h.run_with(&mut job, opts);
        h.assert_no_double_effects(&plan);
        if let RunEnd::Done(s) = &end {
            // Stopped early or not, every request has an outcome at `Done`.
            assert_every_request_once(&h, &plan);
            h.assert_summary_matches(s);
        }
        match end {
            RunEnd::Done(s) if s.complete => break s,
            RunEnd::Done(s) => {
                // A shard was given up or stopped: a resumed job picks it up.
                prop_assert!(s.error.is_none(), "{:?}", s.error);
                job = Job::resume(
                    cfg.clone(),
                    plan.clone(),
                    h.checkpoint.clone().unwrap(),
                    h.now,
                )
                .unwrap();
            }
            RunEnd::Crashed => {
                let skew = crash.map_or(0, |c| c.skew_ms);
                h.now = UnixMillis(h.now.as_millis().saturating_add_signed(skew));
                job = match h.checkpoint.clone() {
                    Some(cp) => Job::resume(cfg.clone(), plan.clone(), cp, h.now).unwrap(),
                    None => Job::new(cfg.clone(), plan.clone(), h.now),
                };
            }
            RunEnd::Paused => job.cancel(h.now),
        }
    };
    let cancelled = summary.cancelled;
    prop_assert_eq!(cancelled, h.checkpoint.as_ref().unwrap().cancel_requested);
    if cancelled {
        prop_assert!(sc.cancel_after_ms.is_some() || matches!(sc.max_wait, Some((_, true))));
    }

    assert_every_request_once(&h, &plan);
    prop_assert!(
        h.duplicates_in_run.is_empty(),
        "delivered twice in one run: {:?}",
        h.duplicates_in_run
    );
    h.assert_summary_matches(&summary);
    prop_assert_eq!(summary.requests, sc.requests as u64);
    for s in plan.shards() {
        for index in s.range() {
            let r = &h.durable[&index];
            let want = expected(
                &sc.behaviour,
                &r.custom_id,
                usize::try_from(index).unwrap(),
                index - s.start,
                s.requests,
            );
            let got_code = match &r.outcome {
                JobOutcome::NotProcessed(np) => Some(np.code.as_str()),
                _ => None,
            };
            if let Some(code) = got_code.filter(|c| cancelled && Some(*c) != want.1) {
                // Cut short by the cancel: not run (a batch refused for the
                // token limit is not created again once cancelled).
                let allowed = ["batch_cancelled", "job_cancelled", "batch_failed"];
                prop_assert!(
                    allowed.contains(&code),
                    "request {} ({}): {:?}",
                    index,
                    &r.custom_id,
                    r.outcome
                );
                continue;
            }
            prop_assert_eq!(
                (outcome_kind(r), got_code),
                want,
                "request {} ({}) in shard {}",
                index,
                &r.custom_id,
                s.index
            );
        }
        // Cancelled before its batch was created, a shard has none.
        let live = h.sim.live_batches_for_shard(s.index);
        prop_assert!(
            live == 1 || (cancelled && live == 0),
            "{} live batches",
            live
        );
    }
    if matches!(sc.behaviour, Behaviour::Garbage) && !cancelled {
        prop_assert!(summary.bad_lines >= 1);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_request_once_whatever_happens(sc in scenario()) {
        run(&sc)?;
    }
}
