//! Batches that do not complete: expired, cancelled, failed validation. The
//! requests that ran keep their results; the others are accounted for as
//! not processed, with the reason.

use std::time::Duration;

use batch_core::job::{JobEndError, JobOutcome, JobResult};
use batch_emulator::Timings;

use crate::common::*;

fn not_processed(r: &JobResult) -> Option<(&str, &str)> {
    match &r.outcome {
        JobOutcome::NotProcessed(np) => Some((np.code.as_str(), np.message.as_str())),
        _ => None,
    }
}

#[test]
fn expired_batches_keep_their_partial_results() {
    // Every batch expires half way through its requests (which half ran is
    // the same whichever shard's batch is created first).
    let items = items(600, |_| None);
    let setup = Setup::with_faults("expire");
    let outcomes = both(&setup, |t, emu| {
        let got = t.submit_and_wait(&items, &prompt(), &options(300, 2));
        (got, emu.counters())
    });
    let mut rendered = Vec::new();
    for (t, (got, counters)) in ["blocking", "async"].iter().zip(outcomes) {
        let Err(Fail::Ended {
            reason, results, ..
        }) = got
        else {
            panic!("{t}: expected the job to end with expired batches, got {got:?}");
        };
        let JobEndError::Expired {
            batch_id,
            not_processed: n,
            summary,
        } = *reason
        else {
            panic!("{t}: expected Expired, got {reason:?}");
        };
        assert_each_once(t, &results, &items);
        assert_eq!(
            summary.shards[0].batch_id.as_deref(),
            Some(batch_id.as_str())
        );
        assert_eq!(n, 150, "{t}: half of the first batch did not run");
        assert_eq!(summary.succeeded, 300, "{t}: {summary:?}");
        assert_eq!(summary.not_processed, 300, "{t}");
        assert!(summary.complete, "{t}: every request has an outcome");
        for r in &results {
            if let Some((code, message)) = not_processed(r) {
                assert!(r.index % 300 >= 150, "{t}: {} did not run", r.custom_id);
                assert_eq!(code, "batch_expired", "{t}");
                assert!(
                    message.contains("completion window expired"),
                    "{t}: {message}"
                );
            } else {
                assert!(r.index % 300 < 150, "{t}: {} ran", r.custom_id);
                assert_eq!(
                    content(r),
                    Some(format!("Echo: question {}", r.index).as_str()),
                    "{t}"
                );
            }
        }
        assert_eq!(counters.batches_created, 2, "{t}");
        assert_eq!(counters.faults_injected.get("expire"), Some(&2), "{t}");
        rendered.push(canonical(&results));
    }
    assert_eq!(
        rendered[0], rendered[1],
        "the transports' partial results differ"
    );
}

#[test]
fn a_batch_past_its_completion_window_expires_with_what_ran() {
    // A window of 400 virtual seconds: 60 s of validation, then 340 of the
    // 1,000 one-second requests run before the batch expires.
    let setup = Setup {
        speed: 4000.0,
        timings: Timings {
            per_request: Duration::from_secs(1),
            completion_window: Duration::from_secs(400),
            ..Timings::default()
        },
        ..Setup::default()
    };
    let items = items(1000, |_| None);
    let handle = plan(&items, 1000, 1);
    let reports = both(&setup, |t, emu| drive(t, emu, &handle, 1, |_| {}));
    for r in &reports {
        let who = r.transport;
        assert_each_once(who, &r.delivered, &items);
        let s = &r.summary;
        assert_eq!(
            s.shards[0].status,
            Some(batch_core::api::BatchStatus::Expired),
            "{who}"
        );
        assert_eq!(s.succeeded, 340, "{who}: {s:?}");
        assert_eq!(s.not_processed, 660, "{who}");
        assert!(s.complete, "{who}");
        let verdict = s.verdict().expect_err("an expired batch is not a success");
        assert!(
            matches!(
                *verdict,
                JobEndError::Expired {
                    not_processed: 660,
                    ..
                }
            ),
            "{who}: {verdict:?}"
        );
        let expired = r
            .delivered
            .iter()
            .filter(|x| not_processed(x).is_some_and(|(c, _)| c == "batch_expired"))
            .count();
        assert_eq!(expired, 660, "{who}");
    }
    assert_same(&reports);
}

#[test]
fn a_cancelled_batch_returns_what_ran_and_marks_the_rest() {
    // One-second requests at speed 1000: 3,000 of them would take 3 s, and
    // the batch is cancelled as soon as the first have run.
    let setup = Setup {
        speed: 1000.0,
        timings: Timings::default(),
        ..Setup::default()
    };
    let items = items(3000, |_| None);
    let [b, a] = both(&setup, |t, emu| {
        let mut job = t
            .submit_batch(&items, &prompt(), &options(5000, 1))
            .unwrap_or_else(|e| panic!("{}: submit: {e:?}", t.name()));
        assert_eq!(job.batch_ids().len(), 1);
        let mut started = false;
        for _ in 0..200 {
            let status = t.poll_status(&mut job).expect("poll");
            if status.shards[0].counts.is_some_and(|c| c.completed > 0) {
                started = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(started, "{}: the batch never started", t.name());
        let results = t
            .cancel(&mut job)
            .unwrap_or_else(|e| panic!("{}: cancel: {e:?}", t.name()));
        (t.name(), results, emu.counters())
    });
    for (t, results, counters) in [b, a] {
        assert_each_once(t, &results, &items);
        let cancelled: Vec<_> = results
            .iter()
            .filter_map(|r| not_processed(r).map(|np| (r.index, np)))
            .collect();
        let succeeded = results.len() - cancelled.len();
        assert!(succeeded > 0, "{t}: nothing ran before the cancel");
        assert!(!cancelled.is_empty(), "{t}: the cancel came too late");
        for (i, (code, message)) in &cancelled {
            assert_eq!(*code, "batch_cancelled", "{t}: request {i}");
            assert!(message.contains("cancelled"), "{t}: {message}");
        }
        for r in results.iter().filter(|r| not_processed(r).is_none()) {
            assert_eq!(
                content(r),
                Some(format!("Echo: question {}", r.index).as_str()),
                "{t}"
            );
        }
        assert_eq!(counters.batches_created, 1, "{t}");
        assert_eq!(counters.batches_cancelled, 1, "{t}");
        assert_eq!(on(&counters, "batches.cancel"), 1, "{t}");
    }
}

#[test]
fn a_batch_the_server_refuses_in_validation_ends_the_job_with_its_reason() {
    // The client allows 300 requests per shard; this server takes 250 per
    // batch, so both batches fail validation at line 251.
    let setup = Setup {
        max_requests_per_batch: 250,
        ..Setup::default()
    };
    let items = items(600, |_| None);
    let outcomes = both(&setup, |t, emu| {
        (
            t.submit_and_wait(&items, &prompt(), &options(300, 2)),
            emu.counters(),
        )
    });
    let mut rendered = Vec::new();
    for (t, (got, counters)) in ["blocking", "async"].iter().zip(outcomes) {
        let Err(Fail::Ended {
            reason,
            results,
            display,
            ..
        }) = got
        else {
            panic!("{t}: expected a failed batch, got {got:?}");
        };
        let JobEndError::Failed {
            batch_id,
            message,
            summary,
        } = &*reason
        else {
            panic!("{t}: expected Failed, got {reason:?}");
        };
        assert!(batch_id.starts_with("batch_"), "{t}: {batch_id}");
        assert!(
            message.contains("too_many_tasks") && message.contains("line 251"),
            "{t}: the reason does not say why: {message}"
        );
        assert!(
            display.contains(batch_id.as_str()) && display.contains("too_many_tasks"),
            "{t}: {display}"
        );
        assert_eq!(summary.not_processed, 600, "{t}");
        assert!(summary.complete, "{t}");
        assert_each_once(t, &results, &items);
        for r in &results {
            let (code, message) = not_processed(r).expect("nothing ran");
            let line = r.index % 300 + 1;
            if line == 251 {
                assert_eq!(code, "too_many_tasks", "{t}");
                assert!(
                    message.contains("maximum of 250 requests"),
                    "{t}: {message}"
                );
            } else {
                assert_eq!(code, "batch_failed", "{t}");
                assert!(message.contains("too_many_tasks"), "{t}: {message}");
            }
        }
        assert_eq!(counters.batches_created, 2, "{t}");
        assert_eq!(
            on(&counters, "files.content"),
            0,
            "{t}: a failed batch has no files"
        );
        rendered.push(canonical(&results));
    }
    assert_eq!(rendered[0], rendered[1], "the transports' reports differ");
}
