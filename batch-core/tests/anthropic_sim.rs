//! The Job on Anthropic's Message Batches, in a deterministic simulation:
//! a clean run, faults, a lost create answer and its reconcile, resume
//! from a checkpoint, expiry, cancel, and a `results_url` elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod anthropic_common;

use anthropic_common::*;
use batch_core::api::BatchStatus;
use batch_core::http::Method;
use batch_core::job::{Job, JobEvent, JobOutcome, ShardEnd};

/// 25 requests (every 10th fails) in three batches of 10, 10 and 5.
fn three_shards(sim: SimConfig) -> (Job, batch_core::job::JobPlan, Harness) {
    let (plan, shards) = plan(25, Some(10), 10);
    assert_eq!(plan.shards().len(), 3);
    let job = Job::new(config(), plan.clone(), UnixMillis(T0));
    (job, plan, Harness::new(SimApi::new(sim), shards))
}

#[test]
fn a_clean_run_delivers_every_result_once_through_one_create_per_shard() {
    let (mut job, plan, mut h) = three_shards(SimConfig::default());
    let summary = h.run(&mut job);
    assert_every_request_once(&h, &plan);
    assert_eq!(
        (summary.succeeded, summary.failed, summary.not_processed),
        (23, 2, 0)
    );
    assert!(summary.complete);
    assert_eq!(h.sim.counters.creates, 3);
    assert_eq!(h.counts(), (23, 2, 0));
    // No upload, no file: create, poll, results.
    assert!(
        h.log
            .iter()
            .all(|(_, p)| p.starts_with("/v1/messages/batches"))
    );
    // Results read the same as OpenAI's: text, finish reason, usage with cache tokens.
    let r = &h.durable[&0];
    let JobOutcome::Succeeded(rec) = &r.outcome else {
        panic!("expected a success, got {:?}", r.outcome);
    };
    assert_eq!(rec.content(), Some("answer to req-0"));
    assert_eq!(
        rec.success().and_then(|s| s.finish_reason()),
        Some(&batch_core::results::FinishReason::Stop)
    );
    assert_eq!(summary.usage.input_tokens, 23 * 10);
    assert_eq!(summary.usage.cached_tokens, 23 * 3);
    assert_eq!(summary.usage.cache_creation_tokens, 23 * 2);
    let JobOutcome::Failed(f) = &h.durable[&9].outcome else {
        panic!("expected a failure");
    };
    let f = f.failure().unwrap();
    assert_eq!(f.error_type.as_deref(), Some("invalid_request_error"));
    assert_eq!(f.message.as_deref(), Some("messages: too long"));
    for s in &summary.shards {
        assert_eq!(s.status, Some(BatchStatus::Completed));
        assert_eq!(s.end, Some(ShardEnd::Finished));
    }
}

#[test]
fn faults_on_every_operation_still_end_with_one_outcome_each_and_no_second_batch() {
    let (mut job, plan, mut h) = three_shards(SimConfig::default());
    let mut n_results = 0;
    let faults = Box::new(move |n: u64, r: &batch_core::http::Request<_>| {
        let path = r.uri().path().to_owned();
        if path.ends_with("/results") {
            n_results += 1;
            if n_results % 2 == 1 {
                return Fault::CutBody(0.5);
            }
        }
        match n % 7 {
            0 => Fault::Status(529),
            3 => Fault::Status(429),
            5 if r.method() == Method::GET => Fault::Status(500),
            _ => Fault::None,
        }
    });
    let summary = h.run_with(&mut job, faults, None, |_, _| false).done();
    assert_every_request_once(&h, &plan);
    assert_eq!(h.counts(), (23, 2, 0));
    assert!(summary.complete);
    for i in 0..25 {
        assert!(h.sim.batches_holding(plan.custom_id(i)) <= 1);
    }
}

#[test]
fn a_lost_create_answer_is_reconciled_without_a_second_create() {
    let (mut job, plan, mut h) = three_shards(SimConfig::default());
    // Every create acts and its answer is lost.
    let faults = Box::new(|_, r: &batch_core::http::Request<_>| {
        if r.method() == Method::POST && r.uri().path() == "/v1/messages/batches" {
            Fault::LostAfterSend
        } else {
            Fault::None
        }
    });
    let summary = h.run_with(&mut job, faults, None, |_, _| false).done();
    assert_every_request_once(&h, &plan);
    assert_eq!(h.counts(), (23, 2, 0));
    assert!(summary.complete);
    assert_eq!(h.sim.counters.creates, 3, "one create per shard");
    assert_eq!(h.creates_logged(), 3);
    assert!(h.sim.counters.lists >= 3);
    // Shards 0 and 1 have the same size: one may first follow the other's
    // batch, refute it by its results, and go on to its own.
    let w = h.warnings();
    assert!(
        w.iter().filter(|m| m.contains("may be it")).count() >= 3,
        "{w:?}"
    );
    assert_eq!(
        w.iter().filter(|m| m.contains("is this shard's")).count(),
        3,
        "{w:?}"
    );
}

#[test]
fn equal_shards_that_all_lose_their_create_answers_each_follow_their_own_batch() {
    // Three shards of 10: every create acts and its answer is lost. Each
    // shard skips the batches the others already follow or hold, so no
    // two shards wait on one batch (whose results might be gone by the
    // time the second reads them), and each ends with its own.
    let (plan, shards) = plan(30, None, 10);
    assert_eq!(plan.shards().len(), 3);
    let mut job = Job::new(config(), plan.clone(), UnixMillis(T0));
    let mut h = Harness::new(SimApi::new(SimConfig::default()), shards);
    let faults = Box::new(|_, r: &batch_core::http::Request<_>| {
        if r.method() == Method::POST && r.uri().path() == "/v1/messages/batches" {
            Fault::LostAfterSend
        } else {
            Fault::None
        }
    });
    let summary = h.run_with(&mut job, faults, None, |_, _| false).done();
    assert_every_request_once(&h, &plan);
    assert_eq!(h.counts(), (30, 0, 0));
    assert!(summary.complete);
    assert_eq!(h.sim.counters.creates, 3, "no second create");
    assert_eq!(h.creates_logged(), 3);
    assert_eq!(h.sim.batch_count(), 3);
    // No batch is followed by two shards at once, nor after a shard
    // confirmed it. (A shard may follow another's batch first, refute it
    // by its results, and go on: which shard searches first is not fixed.)
    let w = h.warnings();
    let mut following: std::collections::BTreeMap<String, &str> = Default::default();
    let batch_of = |m: &str, after: &str| -> String {
        let rest = &m[m.find(after).unwrap() + after.len()..];
        rest.split(' ').next().unwrap().to_owned()
    };
    for m in &w {
        if m.contains("may be it") {
            let b = batch_of(m, "; batch ");
            assert!(
                following.insert(b.clone(), "followed").is_none(),
                "{b} followed while another shard follows or holds it: {w:?}"
            );
        } else if m.contains("is not this shard's") {
            let b = batch_of(m, "batch ");
            assert_eq!(following.remove(&b), Some("followed"), "{w:?}");
        } else if m.contains("is this shard's") {
            let b = batch_of(m, "batch ");
            assert_eq!(following.insert(b, "held"), Some("followed"), "{w:?}");
        }
    }
    assert_eq!(
        w.iter().filter(|m| m.contains("is this shard's")).count(),
        3,
        "{w:?}"
    );
    let mut ids = Vec::new();
    for (k, s) in summary.shards.iter().enumerate() {
        assert_eq!(s.end, Some(ShardEnd::Finished), "shard {k}");
        let batch = s.batch_id.clone().unwrap();
        let first = plan.shards()[k].start;
        for ix in first..first + 10 {
            assert!(h.sim.batch_holds(&batch, plan.custom_id(ix)));
            assert_eq!(h.durable[&ix].batch_id.as_deref(), Some(batch.as_str()));
        }
        ids.push(batch);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three distinct batches");
}

#[test]
fn a_create_refused_without_acting_is_looked_for_then_sent_again() {
    let (mut job, plan, mut h) = three_shards(SimConfig::default());
    let mut first = true;
    let faults = Box::new(move |_, r: &batch_core::http::Request<_>| {
        if first && r.method() == Method::POST && r.uri().path() == "/v1/messages/batches" {
            first = false;
            // A 500 may hide a batch that was made: the job must look first.
            Fault::Status(500)
        } else {
            Fault::None
        }
    });
    let summary = h.run_with(&mut job, faults, None, |_, _| false).done();
    assert_every_request_once(&h, &plan);
    assert!(summary.complete);
    assert_eq!(h.sim.counters.creates, 3);
    assert_eq!(h.creates_logged(), 4, "the refused create was sent again");
    assert!(h.sim.counters.lists >= 1, "it looked before sending again");
}

#[test]
fn a_single_foreign_batch_of_the_same_size_is_refuted_by_its_results() {
    let (plan, shards) = plan(10, None, 10);
    let mut sim = SimApi::new(SimConfig::default());
    // Someone else's batch of 10, created just after the job started.
    let foreign: Vec<String> = (0..10).map(|i| format!("other-{i}")).collect();
    let foreign_id = sim.add_foreign_batch(foreign, T0 + 1000);
    let mut h = Harness::new(sim, shards);
    let mut job = Job::new(config(), plan.clone(), UnixMillis(T0));
    let mut first = true;
    let faults = Box::new(move |_, r: &batch_core::http::Request<_>| {
        if first && r.method() == Method::POST && r.uri().path() == "/v1/messages/batches" {
            first = false;
            Fault::Status(503)
        } else {
            Fault::None
        }
    });
    let summary = h.run_with(&mut job, faults, None, |_, _| false).done();
    assert_every_request_once(&h, &plan);
    assert_eq!(h.counts(), (10, 0, 0));
    assert!(summary.complete);
    assert_eq!(h.sim.counters.creates, 1);
    let ours = summary.shards[0].batch_id.clone().unwrap();
    assert_ne!(ours, foreign_id);
    assert!(
        h.warnings()
            .iter()
            .any(|m| m.contains(&foreign_id) && m.contains("not this shard's"))
    );
    for r in h.durable.values() {
        assert!(r.custom_id.starts_with("req-"));
        assert_eq!(r.batch_id.as_deref(), Some(ours.as_str()));
    }
}

/// A lost create with `extra` foreign batches of the same size: one at
/// each of `foreign_at` (ms).
fn lost_create_among_foreign(
    foreign_at: &[u64],
) -> (
    Harness,
    batch_core::job::JobPlan,
    batch_core::job::JobSummary,
    Vec<String>,
) {
    let (plan, shards) = plan(10, None, 10);
    let mut sim = SimApi::new(SimConfig::default());
    let mut foreign_ids = Vec::new();
    for (k, at) in foreign_at.iter().enumerate() {
        let ids: Vec<String> = (0..10).map(|i| format!("other{k}-{i}")).collect();
        foreign_ids.push(sim.add_foreign_batch(ids, *at));
    }
    let mut h = Harness::new(sim, shards);
    let mut job = Job::new(config(), plan.clone(), UnixMillis(T0 + 2000));
    h.now = UnixMillis(T0 + 2000);
    let faults = Box::new(|_, r: &batch_core::http::Request<_>| {
        if r.method() == Method::POST && r.uri().path() == "/v1/messages/batches" {
            Fault::LostAfterSend
        } else {
            Fault::None
        }
    });
    let summary = h.run_with(&mut job, faults, None, |_, _| false).done();
    (h, plan, summary, foreign_ids)
}

#[test]
fn candidates_are_read_one_by_one_until_the_shards_own_is_confirmed() {
    // Two foreign batches of the same size, created just before the
    // create (within the clock-skew margin): the oldest is read first and
    // refuted, then the next, then the shard's own is confirmed.
    let (h, plan, summary, foreign) = lost_create_among_foreign(&[T0, T0 + 1000]);
    assert_every_request_once(&h, &plan);
    assert!(summary.complete);
    assert_eq!(h.counts(), (10, 0, 0));
    assert_eq!(h.sim.counters.creates, 1, "never created again");
    let ours = summary.shards[0].batch_id.clone().unwrap();
    assert!(!foreign.contains(&ours));
    let w = h.warnings();
    let refuted: Vec<usize> = foreign
        .iter()
        .map(|f| {
            w.iter()
                .position(|m| m.starts_with(&format!("batch {f} is not this shard's")))
                .unwrap_or_else(|| panic!("{f} not refuted: {w:?}"))
        })
        .collect();
    assert!(refuted[0] < refuted[1], "the oldest is read first: {w:?}");
    let confirmed = w
        .iter()
        .position(|m| m.starts_with(&format!("batch {ours} is this shard's")))
        .unwrap();
    assert!(confirmed > refuted[1]);
    for r in h.durable.values() {
        assert_eq!(r.batch_id.as_deref(), Some(ours.as_str()));
    }
}

#[test]
fn a_batch_that_neither_confirms_nor_refutes_stops_the_shard_and_names_it() {
    // The shard's own batch loses a result line: its results name no
    // foreign id, but not every request either.
    let (plan, shards) = plan(10, None, 10);
    let sim = SimConfig {
        drop_result: Some("req-4".into()),
        ..SimConfig::default()
    };
    let mut h = Harness::new(SimApi::new(sim), shards);
    let mut job = Job::new(config(), plan.clone(), UnixMillis(T0));
    let faults = Box::new(|_, r: &batch_core::http::Request<_>| {
        if r.method() == Method::POST && r.uri().path() == "/v1/messages/batches" {
            Fault::LostAfterSend
        } else {
            Fault::None
        }
    });
    let summary = h.run_with(&mut job, faults, None, |_, _| false).done();
    assert_every_request_once(&h, &plan);
    assert_eq!(h.sim.counters.creates, 1, "never created again");
    assert_eq!(summary.shards[0].end, Some(ShardEnd::Stopped));
    let np = match &h.durable[&0].outcome {
        JobOutcome::NotProcessed(np) => np.clone(),
        other => panic!("expected not processed, got {other:?}"),
    };
    assert!(!np.is_final());
    assert_eq!(np.code, "batch_unconfirmed");
    assert!(np.message.contains("msgbatch_000001"), "{}", np.message);
    assert!(np.message.contains("9 of the shard's 10"), "{}", np.message);
    // Resumed once the server has every line, the job confirms the batch
    // and delivers.
    h.sim.cfg.drop_result = None;
    let cp = h.checkpoint.clone().unwrap();
    let mut job = Job::resume(config(), plan.clone(), cp, h.now).unwrap();
    let summary = h.run(&mut job);
    assert!(summary.complete);
    assert_eq!(h.counts(), (10, 0, 0));
    assert_eq!(h.sim.counters.creates, 1);
}

#[test]
fn a_crash_after_the_create_resumes_from_the_checkpoint_without_a_second_create() {
    let (mut job, plan, mut h) = three_shards(SimConfig::default());
    let mut creates = 0;
    let crash = Box::new(move |r: &batch_core::http::Request<_>| {
        if r.method() == Method::POST && r.uri().path() == "/v1/messages/batches" {
            creates += 1;
            creates == 2
        } else {
            false
        }
    });
    let end = h.run_with(
        &mut job,
        Box::new(|_, _| Fault::None),
        Some(crash),
        |_, _| false,
    );
    assert!(matches!(end, RunEnd::Crashed));
    let cp = h.checkpoint.clone().unwrap();
    assert!(cp.shards.iter().any(|s| s.create_armed_at.is_some()));
    let mut job = Job::resume(config(), plan.clone(), cp, h.now).unwrap();
    let summary = h.run(&mut job);
    assert_every_request_once(&h, &plan);
    assert!(summary.complete);
    assert_eq!(h.counts(), (23, 2, 0));
    assert_eq!(
        h.sim.counters.creates, 3,
        "the crashed create was found, not repeated"
    );
}

#[test]
fn a_crash_while_polling_resumes_and_keeps_the_batches() {
    let (mut job, plan, mut h) = three_shards(SimConfig::default());
    let mut polls = 0;
    let crash = Box::new(move |r: &batch_core::http::Request<_>| {
        if r.method() == Method::GET && r.uri().path().starts_with("/v1/messages/batches/") {
            polls += 1;
            polls == 10
        } else {
            false
        }
    });
    let end = h.run_with(
        &mut job,
        Box::new(|_, _| Fault::None),
        Some(crash),
        |_, _| false,
    );
    assert!(matches!(end, RunEnd::Crashed));
    let cp = h.checkpoint.clone().unwrap();
    let mut job = Job::resume(config(), plan.clone(), cp, h.now).unwrap();
    let summary = h.run(&mut job);
    assert_every_request_once(&h, &plan);
    assert!(summary.complete);
    assert_eq!(h.sim.counters.creates, 3);
    assert_eq!(h.sim.counters.lists, 0, "nothing was unknown");
}

#[test]
fn expired_requests_are_not_processed_with_why() {
    let sim = SimConfig {
        stall_at: Some(0.5),
        ..SimConfig::default()
    };
    let (mut job, plan, mut h) = three_shards(sim);
    let summary = h.run(&mut job);
    assert_every_request_once(&h, &plan);
    assert!(summary.complete);
    // Half of each batch ran (5 + 5 + 2), the rest expired.
    assert_eq!(summary.not_processed, 13);
    let expired: Vec<_> = h
        .durable
        .values()
        .filter_map(|r| match &r.outcome {
            JobOutcome::NotProcessed(np) => Some(np),
            _ => None,
        })
        .collect();
    assert!(
        expired
            .iter()
            .all(|np| np.code == "batch_expired" && np.is_final())
    );
    assert!(
        summary
            .shards
            .iter()
            .all(|s| s.status == Some(BatchStatus::Expired))
    );
}

#[test]
fn a_cancel_cancels_each_batch_and_collects_what_ran() {
    let (mut job, plan, mut h) = three_shards(SimConfig::default());
    let cancel_at = T0 + 30 * MIN;
    let summary = h
        .run_with(
            &mut job,
            Box::new(|_, _| Fault::None),
            None,
            move |job, now| {
                if now.as_millis() >= cancel_at && !job.summary().cancelled {
                    job.cancel(now);
                    return true;
                }
                false
            },
        )
        .done();
    assert_every_request_once(&h, &plan);
    assert!(summary.cancelled);
    assert_eq!(h.sim.counters.cancels, 3);
    let (s, f, n) = h.counts();
    assert!(s > 0 && n > 0, "{s} {f} {n}");
    for r in h.durable.values() {
        if let JobOutcome::NotProcessed(np) = &r.outcome {
            assert_eq!(np.code, "batch_cancelled");
        }
    }
    assert!(
        summary
            .shards
            .iter()
            .all(|s| s.status == Some(BatchStatus::Cancelled))
    );
}

#[test]
fn a_results_url_on_another_host_is_refused_and_the_key_stays_home() {
    let sim = SimConfig {
        results_origin: Some("https://elsewhere.invalid".into()),
        ..SimConfig::default()
    };
    let (mut job, plan, mut h) = three_shards(sim);
    let summary = h.run(&mut job);
    assert_every_request_once(&h, &plan);
    assert!(
        h.sim.urls.iter().all(|u| u.starts_with(BASE)),
        "{:?}",
        h.sim.urls
    );
    assert_eq!(h.sim.counters.results, 0);
    assert_eq!(summary.not_processed, 25);
    assert!(h.warnings().iter().any(|m| m.contains("elsewhere.invalid")));
    let progress = h
        .events
        .iter()
        .filter(|e| matches!(e, JobEvent::Progress { .. }))
        .count();
    assert!(progress >= 3);
}

#[test]
fn the_library_handle_plans_message_batches_from_items() {
    use batch_core::input::{Item, SystemPrompt};
    use batch_core::job::{BatchJob, BatchOptions, StopAfter};
    let items: Vec<Item> = (0..12)
        .map(|i| Item::new(format!("item-{i}"), format!("question {i}")))
        .collect();
    let options = BatchOptions::new("claude-sim");
    let prompt = SystemPrompt::Text("be brief".into());
    // Anthropic requires max_tokens: the item is named.
    let err = BatchJob::from_anthropic_items(&items, &prompt, None, &options, 7).unwrap_err();
    assert_eq!((err.line, err.field.as_str()), (1, "max_tokens"));
    let handle = BatchJob::from_anthropic_items(&items, &prompt, Some(32), &options, 7).unwrap();
    assert_eq!(handle.shard_bytes().len(), 1, "one batch holds them all");
    let mut h = Harness::new(
        SimApi::new(SimConfig::default()),
        handle.shard_bytes().to_vec(),
    );
    let mut job = handle
        .job(api(), StopAfter::Finished, UnixMillis(T0))
        .unwrap();
    let summary = h.run(&mut job);
    assert!(summary.complete);
    assert_eq!(h.counts(), (12, 0, 0));
    assert_every_request_once(&h, handle.plan());
    assert_eq!(h.sim.counters.creates, 1);
}

#[test]
fn submit_then_collect_in_a_later_run_and_read_a_batch_by_its_id() {
    use batch_core::job::{JobPlan, StopAfter};
    let (mut job_plan, shards) = plan(10, Some(5), 10);
    let mut h = Harness::new(SimApi::new(SimConfig::default()), shards);
    let mut submit = config();
    submit.stop_after = StopAfter::Submitted;
    let mut job = Job::new(submit, job_plan.clone(), UnixMillis(T0));
    let summary = h.run(&mut job);
    assert!(!summary.complete);
    assert_eq!(h.durable.len(), 0, "nothing collected at submit");
    let batch_id = summary.shards[0].batch_id.clone().unwrap();
    // A later run collects from the checkpoint, without creating again.
    let cp = h.checkpoint.clone().unwrap();
    h.now = UnixMillis(T0 + 2 * HOUR);
    let mut job = Job::resume(config(), job_plan.clone(), cp, h.now).unwrap();
    let summary = h.run(&mut job);
    assert!(summary.complete);
    assert_every_request_once(&h, &job_plan);
    assert_eq!(h.counts(), (8, 2, 0));
    assert_eq!(h.sim.counters.creates, 1);
    // The same batch read by its id alone: ids are learned from its results.
    job_plan = JobPlan::for_batch("by-id", batch_id.clone());
    let mut by_id = Harness::new(SimApi::default(), Vec::new());
    std::mem::swap(&mut by_id.sim, &mut h.sim);
    by_id.now = h.now;
    let mut job = Job::new(config(), job_plan, by_id.now);
    let summary = by_id.run(&mut job);
    assert_eq!(summary.requests, 10);
    assert_eq!((summary.succeeded, summary.failed), (8, 2));
    assert!(summary.complete);
    assert!(
        by_id
            .durable
            .values()
            .all(|r| r.batch_id.as_deref() == Some(batch_id.as_str()))
    );
}

#[test]
fn a_create_that_never_answers_is_cut_by_its_deadline_and_then_found() {
    let (mut job, plan, mut h) = three_shards(SimConfig::default());
    let mut first = true;
    let faults = Box::new(move |_, r: &batch_core::http::Request<_>| {
        if first && r.method() == Method::POST && r.uri().path() == "/v1/messages/batches" {
            first = false;
            Fault::SilentAfterAct
        } else {
            Fault::None
        }
    });
    let summary = h.run_with(&mut job, faults, None, |_, _| false).done();
    assert_every_request_once(&h, &plan);
    assert!(summary.complete);
    assert_eq!(h.aborted.len(), 1, "the silent create was cut");
    // Cut at its deadline: the exchange limits' time for a body of its size.
    let (_, at) = h.aborted[0];
    assert!(
        at.as_millis() > T0 && at.as_millis() <= T0 + 10 * MIN,
        "{at:?}"
    );
    assert_eq!(h.sim.counters.creates, 3, "found, not created again");
}
