//! The library as a product: exactly one outcome per request on every path,
//! a stopped job is an error that names its cause, and the status of a job
//! is one value.

use std::collections::BTreeMap;

use batch_core::input::Item;
use batch_core::job::{JobEndError, JobOutcome, JobResult};
use batch_emulator::{EmulatorHandle, FaultConfig};
use proptest::prelude::*;

use crate::common::*;

/// A base URL on loopback where nothing listens.
fn unreachable_base() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/v1")
}

/// Whether `r` is the request's last word (not a stand-in for a request the
/// job stopped waiting for).
fn is_final(r: &JobResult) -> bool {
    match &r.outcome {
        JobOutcome::NotProcessed(np) => np.is_final(),
        _ => true,
    }
}

/// Every index at most once in `results`, under its own `custom_id`.
fn at_most_once(who: &str, results: &[JobResult], items: &[Item]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for r in results {
        if !seen.insert(r.index) {
            return Err(format!("{who}: {} reported twice", r.custom_id));
        }
        let item = usize::try_from(r.index)
            .ok()
            .and_then(|i| items.get(i))
            .ok_or_else(|| format!("{who}: unknown index {}", r.index))?;
        if item.custom_id != r.custom_id {
            return Err(format!("{who}: index {} is {}", r.index, r.custom_id));
        }
    }
    Ok(())
}

/// Exactly once each, and every outcome final.
fn exactly_once_final(who: &str, results: &[JobResult], items: &[Item]) -> Result<(), String> {
    at_most_once(who, results, items)?;
    if results.len() != items.len() {
        return Err(format!(
            "{who}: {} outcomes for {} requests",
            results.len(),
            items.len()
        ));
    }
    match results.iter().find(|r| !is_final(r)) {
        Some(r) => Err(format!(
            "{who}: {} is not final: {:?}",
            r.custom_id, r.outcome
        )),
        None => Ok(()),
    }
}

#[test]
fn a_stopped_poll_then_get_results_gives_one_outcome_per_request() {
    let items = items(300, |i| {
        (i % 10 == 3).then(|| format!("question {i} [[emulator:fail=400]]"))
    });
    let outcomes = both(&Setup::default(), |t, emu| {
        let mut job = t
            .submit_batch(&items, &prompt(), &options(100, 3))
            .expect("submit");
        // A wrong key: the poll stops at once.
        let refused = t
            .with(&emu.base_url(), "sk-wrong-key")
            .poll_status(&mut job);
        // An outage longer than the retry budget.
        emu.set_faults(FaultConfig::parse("500-every=1").expect("fault spec"));
        let outage = t.poll_status(&mut job);
        emu.set_faults(FaultConfig::none());
        let status = t.poll_status(&mut job);
        let results = t.get_results(&mut job);
        let again = t.get_results(&mut job);
        (refused, outage, status, results, again)
    });
    let mut rendered = Vec::new();
    for (t, (refused, outage, status, results, again)) in ["blocking", "async"].iter().zip(outcomes)
    {
        let Err(Fail::Ended {
            reason,
            results: partial,
            display,
            ..
        }) = refused
        else {
            panic!("{t}: a refused key must stop the poll, got {refused:?}");
        };
        assert!(
            matches!(*reason, JobEndError::Stopped { .. }),
            "{t}: {reason:?}"
        );
        assert!(
            display.contains("401")
                && display.contains("invalid_api_key")
                && display.contains("Incorrect API key provided"),
            "{t}: {display}"
        );
        assert!(partial.is_empty(), "{t}: a poll reports no outcomes");
        let Err(Fail::Ended {
            results: partial,
            display,
            ..
        }) = outage
        else {
            panic!("{t}: an outage past the retry budget must stop the poll, got {outage:?}");
        };
        assert!(display.contains("500"), "{t}: {display}");
        assert!(partial.is_empty(), "{t}: a poll reports no outcomes");
        let status = status.expect("a poll after the outage");
        assert_eq!(status.batch_ids.len(), 3, "{t}");
        assert_eq!(status.requests, 300, "{t}");
        assert_eq!(status.shards.len(), 3, "{t}");

        let results = results.expect("results after the stops");
        assert_each_once(t, &results, &items);
        exactly_once_final(t, &results, &items).unwrap_or_else(|e| panic!("{e}"));
        let failed = results
            .iter()
            .filter(|r| matches!(r.outcome, JobOutcome::Failed(_)))
            .count();
        assert_eq!(failed, 30, "{t}");
        let again = again.expect("results again");
        assert_eq!(
            canonical(&again),
            canonical(&results),
            "{t}: a second call returns the same outcomes"
        );
        rendered.push(canonical(&results));
    }
    assert_eq!(rendered[0], rendered[1], "the transports' results differ");
}

#[test]
fn errors_name_their_cause_in_one_line_and_debug_stays_short() {
    let setup = Setup {
        // Batches over 10 requests fail validation.
        max_requests_per_batch: 10,
        ..Setup::default()
    };
    let mut dup = items(3, |_| None);
    dup[2].custom_id = dup[0].custom_id.clone();
    let twenty = items(20, |_| None);
    let outcomes = both(&setup, |t, emu| {
        let duplicate = t.submit_batch(&dup, &prompt(), &options(100, 1));
        let wrong = t.with(&emu.base_url(), "sk-wrong-key");
        let refused = wrong.submit_batch(&twenty, &prompt(), &options(100, 1));
        let list_refused = wrong.list(Some(1), None);
        let nowhere = t.with(&unreachable_base(), KEY);
        let unreachable = nowhere.submit_batch(&twenty, &prompt(), &options(100, 1));
        let list_unreachable = nowhere.list(Some(1), None);
        let failed = t.submit_and_wait(&twenty, &prompt(), &options(20, 1));
        (
            duplicate,
            refused,
            list_refused,
            unreachable,
            list_unreachable,
            failed,
        )
    });
    let mut displays = Vec::new();
    for (t, (duplicate, refused, list_refused, unreachable, list_unreachable, failed)) in
        ["blocking", "async"].iter().zip(outcomes)
    {
        let (d, _) = texts(t, duplicate);
        assert_eq!(
            d, "items:3: field `custom_id`: duplicate value \"req-00000\", first used on line 1",
            "{t}"
        );
        let (d, debug) = texts(t, refused);
        assert!(
            d.contains("401") && d.contains("invalid_api_key"),
            "{t}: {d}"
        );
        assert!(debug.starts_with("Ended"), "{t}: {debug}");
        let (d, _) = texts(t, list_refused);
        assert!(
            d.contains("401") && d.contains("invalid_api_key"),
            "{t}: {d}"
        );
        let (d, _) = texts(t, unreachable);
        assert!(d.contains("gave up") && d.contains("not sent"), "{t}: {d}");
        let (d, debug) = texts(t, list_unreachable);
        assert!(
            debug.starts_with("Transport") && d.contains("not sent"),
            "{t}: {debug}"
        );
        let (d, debug) = texts(t, failed);
        assert!(
            d.contains("failed") && d.contains("too_many_tasks"),
            "{t}: {d}"
        );
        assert!(
            debug.len() < 2_000,
            "{t}: Debug of a 20-request failure is {} characters",
            debug.len()
        );
        assert!(debug.contains("[20 results]"), "{t}: {debug}");
        displays.push(d);
    }
    for d in &displays {
        assert!(!d.contains('\n'), "{d}");
    }
}

/// An error's `Display` and `Debug`.
fn texts<T>(who: &str, r: Result<T, Fail>) -> (String, String) {
    match r.map(|_| ()) {
        Err(Fail::Ended { debug, display, .. } | Fail::Other { debug, display }) => {
            (display, debug)
        }
        Ok(()) => panic!("{who}: expected an error"),
    }
}

/// What is done before a call.
#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    /// The call is made by a client with a wrong key.
    WrongKey,
    /// Every API request answers 500 during the call.
    Outage,
    /// The call is made by a client of a server that is not there.
    Unreachable,
    /// A new client continues from the handle as it was before the last call
    /// (the process died before it kept what the last call returned).
    Restart,
}

/// A client operation on the handle.
#[derive(Clone, Copy, Debug)]
enum Call {
    Poll,
    Get,
    Stream,
    Cancel,
    /// A new job for the same items, submitted and waited for in one call.
    SubmitAndWait,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        3 => Just(Fault::None),
        1 => Just(Fault::WrongKey),
        1 => Just(Fault::Outage),
        1 => Just(Fault::Unreachable),
        1 => Just(Fault::Restart),
    ]
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        2 => Just(Call::Poll),
        2 => Just(Call::Get),
        1 => Just(Call::Stream),
        1 => Just(Call::Cancel),
        1 => Just(Call::SubmitAndWait),
    ]
}

/// The outcomes a sequence has seen as final, by index, rendered.
type Finals = BTreeMap<u64, String>;

/// Records the final outcomes of `results`; a final outcome seen before
/// must not change.
fn record(who: &str, finals: &mut Finals, results: &[JobResult]) -> Result<(), String> {
    for r in results.iter().filter(|r| is_final(r)) {
        let line = canonical(std::slice::from_ref(r));
        match finals.get(&r.index) {
            Some(old) if *old != line => {
                return Err(format!("{who}: final outcome changed:\n{old}{line}"));
            }
            Some(_) => {}
            None => {
                finals.insert(r.index, line);
            }
        }
    }
    Ok(())
}

/// A client of `t`'s transport for a call made under `fault` (an outage is
/// switched on here and off after the call).
fn client_for(
    t: &dyn Transport,
    emu: &EmulatorHandle,
    fault: Fault,
) -> Result<Box<dyn Transport>, String> {
    Ok(match fault {
        Fault::WrongKey => t.with(&emu.base_url(), "sk-wrong-key"),
        Fault::Unreachable => t.with(&unreachable_base(), KEY),
        Fault::Outage => {
            emu.set_faults(FaultConfig::parse("500-every=1").map_err(|e| e.to_string())?);
            t.with(&emu.base_url(), KEY)
        }
        Fault::None | Fault::Restart => t.with(&emu.base_url(), KEY),
    })
}

/// Submits a job under `first`, runs `steps` on it and checks, after every
/// call, that outcomes are reported at most once (exactly once on success)
/// and that final outcomes never change (except what a restart from an
/// older handle forgets); at the end, one call without faults reports every
/// request exactly once with its final outcome.
fn sequence(
    t: &dyn Transport,
    emu: &EmulatorHandle,
    items: &[Item],
    first: Fault,
    steps: &[(Fault, Call)],
    max_wait: std::time::Duration,
) -> Result<(), String> {
    let mut opts = options(20, 2);
    opts.max_wait = Some(max_wait);
    // The submission itself under `first`: a stop is an error that reports
    // final outcomes only and carries the handle, which goes on from there
    // (the batches it created are followed, the rest submitted later).
    let first_client = client_for(t, emu, first)?;
    let submitted = first_client.submit_batch(items, &prompt(), &opts);
    emu.set_faults(FaultConfig::none());
    let mut job = match submitted {
        Ok(job) => job,
        Err(Fail::Ended {
            results, handle, ..
        }) => {
            let who = format!("{} submit ({first:?})", t.name());
            at_most_once(&who, &results, items)?;
            if let Some(r) = results.iter().find(|r| !is_final(r)) {
                return Err(format!("{who}: a stand-in outcome: {r:?}"));
            }
            *handle.ok_or_else(|| format!("{who}: a stopped submit carries its handle"))?
        }
        Err(other) => return Err(format!("{}: submit: {other:?}", t.name())),
    };
    let mut before = job.clone();
    let mut finals = Finals::new();
    let mut finals_before = Finals::new();
    for (n, &(fault, call)) in steps.iter().enumerate() {
        let who = format!("{} step {n} ({fault:?}, {call:?})", t.name());
        if let Fault::Restart = fault {
            // What the lost process saw is lost with it.
            job = before.clone();
            finals = finals_before.clone();
        }
        let client = client_for(t, emu, fault)?;
        before = job.clone();
        finals_before = finals.clone();
        let outcome = match call {
            Call::Poll => client.poll_status(&mut job).map(|_| None),
            Call::Get => client.get_results(&mut job).map(Some),
            Call::Cancel => client.cancel(&mut job).map(Some),
            Call::SubmitAndWait => {
                // Another job: its outcomes are checked on their own.
                let got = client.submit_and_wait(items, &prompt(), &opts);
                emu.set_faults(FaultConfig::none());
                match got {
                    Ok(results) => exactly_once_final(&who, &results, items)?,
                    Err(Fail::Ended { results, .. }) => at_most_once(&who, &results, items)?,
                    Err(other) => return Err(format!("{who}: {other:?}")),
                }
                continue;
            }
            Call::Stream => {
                let mut streamed = Vec::new();
                let got = client.stream_results(&mut job, &mut |r| streamed.push(r), &mut |_| {});
                at_most_once(&who, &streamed, items)?;
                record(&who, &mut finals, &streamed)?;
                got.map(|_| Some(streamed))
            }
        };
        emu.set_faults(FaultConfig::none());
        match outcome {
            Ok(Some(results)) => {
                exactly_once_final(&who, &results, items)?;
                record(&who, &mut finals, &results)?;
            }
            Ok(None) => {}
            Err(Fail::Ended { results, .. }) => {
                at_most_once(&who, &results, items)?;
                if matches!(call, Call::Poll) && results.iter().any(|r| !is_final(r)) {
                    return Err(format!("{who}: a poll reported a stand-in outcome"));
                }
                record(&who, &mut finals, &results)?;
            }
            Err(other) => return Err(format!("{who}: {other:?}")),
        }
    }
    // Without faults, a collecting call ends with every request's final outcome.
    let who = format!("{} at the end", t.name());
    for _ in 0..50 {
        match t.get_results(&mut job) {
            Ok(results) => {
                exactly_once_final(&who, &results, items)?;
                return record(&who, &mut finals, &results);
            }
            Err(Fail::Ended {
                reason, results, ..
            }) => match *reason {
                // A short maximum wait: wait again.
                JobEndError::TimedOut { .. } => continue,
                // A batch failed or was cancelled, or the job was cancelled
                // before a shard was submitted: still every request once,
                // with its final outcome (a job stopped without a fault
                // would leave stand-ins).
                _ => {
                    exactly_once_final(&who, &results, items)
                        .map_err(|e| format!("{e} (ended: {reason})"))?;
                    return record(&who, &mut finals, &results);
                }
            },
            Err(other) => return Err(format!("{who}: {other:?}")),
        }
    }
    Err(format!("{who}: never finished"))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 6,
        max_shrink_iters: 8,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random sequences of calls with faults between them, through both
    /// transports: every call reports each request at most once, a
    /// successful collecting call exactly once with final outcomes, and a
    /// final outcome never changes.
    #[test]
    fn every_sequence_of_calls_reports_each_request_once(
        first in fault(),
        steps in proptest::collection::vec((fault(), call()), 1..6),
        short_wait in any::<bool>(),
    ) {
        let items = items(60, |i| {
            (i % 7 == 2).then(|| format!("question {i} [[emulator:fail=400]]"))
        });
        let max_wait = if short_wait {
            std::time::Duration::from_millis(150)
        } else {
            MAX_WAIT
        };
        let [b, a] = both(&Setup::default(), |t, emu| {
            sequence(t, emu, &items, first, &steps, max_wait)
        });
        prop_assert_eq!(b, Ok(()));
        prop_assert_eq!(a, Ok(()));
    }
}
