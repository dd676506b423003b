//! A `submit_batch` that fails after some batches were created hands its
//! job handle back inside the error: the batches it created are neither
//! lost nor created twice, and `get_results` or `cancel` on the handle
//! follows them, on both transports.

use batch_core::job::{BatchJob, JobOutcome, JobResult};
use batch_emulator::FaultConfig;

use crate::common::*;

/// Submits 20 items in two shards while the server creates one batch and
/// then refuses every other create (500) past the retry budget. Returns the
/// handle the error carries and the shard that got the batch (the two
/// shards are created side by side, so either may be first).
fn submit_one_of_two(t: &dyn Transport, emu: &batch_emulator::EmulatorHandle) -> (BatchJob, u32) {
    let who = t.name();
    emu.set_faults(FaultConfig::parse("500-after=1@batches.create").expect("fault spec"));
    let items = items(20, |_| None);
    let err = t
        .submit_batch(&items, &prompt(), &options(10, 2))
        .expect_err("the second shard's create is refused");
    emu.set_faults(FaultConfig::none());
    let Fail::Ended {
        handle, display, ..
    } = err
    else {
        panic!("{who}: a stopped submit is Ended, got {err:?}");
    };
    assert!(
        display.contains("gave up") && display.contains("500"),
        "{who}: {display}"
    );
    let handle = *handle.unwrap_or_else(|| panic!("{who}: the error carries the handle"));
    assert_eq!(handle.batch_ids().len(), 1, "{who}: one batch was created");
    let cp = handle.checkpoint().expect("a checkpoint");
    let with_batch = cp
        .shards
        .iter()
        .position(|s| s.batch_id.is_some())
        .expect("a shard with a batch");
    (handle, u32::try_from(with_batch).expect("a shard number"))
}

fn codes(results: &[JobResult], shard: u32) -> Vec<String> {
    results
        .iter()
        .filter(|r| r.shard == shard)
        .map(|r| match &r.outcome {
            JobOutcome::Succeeded(_) => "succeeded".to_owned(),
            JobOutcome::Failed(_) => "failed".to_owned(),
            JobOutcome::NotProcessed(np) => np.code.clone(),
            _ => "other".to_owned(),
        })
        .collect()
}

#[test]
fn a_failed_submit_keeps_its_batches_for_get_results() {
    let items = items(20, |_| None);
    let outcomes = both(&Setup::default(), |t, emu| {
        let (mut handle, _) = submit_one_of_two(t, emu);
        let created = handle.batch_ids();
        let results = t.get_results(&mut handle).expect("collected");
        let listed = t.list(Some(100), None).expect("list").data;
        (created, handle.batch_ids(), results, listed.len())
    });
    for (who, (created, after, results, listed)) in ["blocking", "async"].iter().zip(outcomes) {
        assert_each_once(who, &results, &items);
        assert!(
            results
                .iter()
                .all(|r| matches!(r.outcome, JobOutcome::Succeeded(_))),
            "{who}: every request ran"
        );
        // The batch the failed submit created is kept; the other shard got
        // its batch now, and nothing was created twice.
        assert_eq!(after.len(), 2, "{who}");
        assert!(after.contains(&created[0]), "{who}: {after:?} {created:?}");
        assert_eq!(listed, 2, "{who}: two batches on the server");
    }
}

#[test]
fn a_failed_submit_keeps_its_batches_for_cancel() {
    let items = items(20, |_| None);
    let outcomes = both(&Setup::default(), |t, emu| {
        let (mut handle, with_batch) = submit_one_of_two(t, emu);
        let results = t.cancel(&mut handle).expect("cancelled");
        let listed = t.list(Some(100), None).expect("list").data;
        (results, with_batch, listed.len())
    });
    for (who, (results, with_batch, listed)) in ["blocking", "async"].iter().zip(outcomes) {
        assert_each_once(who, &results, &items);
        // The shard without a batch is cancelled before it is created.
        let without = 1 - with_batch;
        assert!(
            codes(&results, without)
                .iter()
                .all(|c| c == "job_cancelled"),
            "{who}: {:?}",
            codes(&results, without)
        );
        // The created batch was followed to its end: each request ran or
        // was cancelled with it.
        assert!(
            codes(&results, with_batch)
                .iter()
                .all(|c| c == "succeeded" || c == "batch_cancelled"),
            "{who}: {:?}",
            codes(&results, with_batch)
        );
        assert_eq!(listed, 1, "{who}: no batch was created by the cancel");
    }
}

#[test]
fn a_stopped_submit_and_wait_keeps_its_batches() {
    let items = items(20, |_| None);
    let outcomes = both(&Setup::default(), |t, emu| {
        emu.set_faults(FaultConfig::parse("500-after=1@batches.create").expect("fault spec"));
        let err = t
            .submit_and_wait(&items, &prompt(), &options(10, 2))
            .expect_err("the second shard's create is refused");
        emu.set_faults(FaultConfig::none());
        let Fail::Ended {
            handle, results, ..
        } = err
        else {
            panic!("{}: a stopped job is Ended, got {err:?}", t.name());
        };
        let mut handle = *handle.expect("the error carries the handle");
        let later = t.get_results(&mut handle).expect("collected later");
        let listed = t.list(Some(100), None).expect("list").data.len();
        (results, later, listed)
    });
    for (who, (partial, later, listed)) in ["blocking", "async"].iter().zip(outcomes) {
        // The stop gave what it had; the handle then gave every request once.
        assert!(partial.len() <= 20, "{who}");
        assert_each_once(who, &later, &items);
        assert!(later.iter().all(JobResult::is_success), "{who}");
        assert_eq!(listed, 2, "{who}: no batch was created twice");
    }
}
