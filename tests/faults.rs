//! Every fault of the emulator survived by both transports: nothing lost,
//! nothing created twice.

use batch_core::job::JobEvent;

use crate::common::*;

const N: usize = 1500;
const PER_SHARD: u64 = 500;
const SHARDS: u64 = 3;

/// Runs a 1,500-request job (three shards, two at a time) under `faults`
/// with both transports, checks the invariants every fault must keep, and
/// returns the reports for the fault's own checks.
fn survive(faults: &str) -> [Report; 2] {
    let items = items(N, |_| None);
    let handle = plan(&items, PER_SHARD, 2);
    let reports = both(&Setup::with_faults(faults), |t, emu| {
        drive(t, emu, &handle, 2, |_| {})
    });
    for r in &reports {
        let who = format!("{} under {faults}", r.transport);
        assert_each_once(&who, &r.delivered, &items);
        assert_echoes(&who, &r.sorted(), &items);
        assert!(r.summary.all_succeeded(), "{who}: {:?}", r.summary);
        assert!(!r.summary.timed_out, "{who}");
        assert_eq!(r.counters.files_uploaded, SHARDS, "{who}: {:?}", r.counters);
        assert_eq!(
            r.counters.batches_created, SHARDS,
            "{who}: {:?}",
            r.counters
        );
    }
    assert_same(&reports);
    reports
}

/// How often the emulator injected the fault `name`.
fn fired(r: &Report, name: &str) -> u64 {
    r.counters.faults_injected.get(name).copied().unwrap_or(0)
}

fn retries(r: &Report, op: &str) -> usize {
    r.events()
        .iter()
        .filter(|e| matches!(e, JobEvent::Retrying { op: o, .. } if *o == op))
        .count()
}

fn all_retries(r: &Report) -> Vec<String> {
    r.events()
        .iter()
        .filter_map(|e| match e {
            JobEvent::Retrying { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn rate_limits_with_retry_after_are_waited_out() {
    for r in survive("429-every=4,retry-after=1") {
        let who = r.transport;
        let fired = fired(&r, "429-every");
        assert!(fired > 0, "{who}: {:?}", r.counters);
        assert_eq!(r.counters.responses.get("429"), Some(&fired), "{who}");
        // Each 429 was waited out once and tried again.
        let reasons = all_retries(&r);
        assert_eq!(reasons.len() as u64, fired, "{who}: {reasons:?}");
        assert!(
            reasons.iter().all(|m| m.contains("429")),
            "{who}: {reasons:?}"
        );
    }
}

#[test]
fn server_errors_are_retried() {
    for r in survive("500-every=5") {
        let who = r.transport;
        let fired = fired(&r, "500-every");
        assert!(fired > 0, "{who}: {:?}", r.counters);
        assert_eq!(r.counters.responses.get("500"), Some(&fired), "{who}");
        assert_eq!(all_retries(&r).len() as u64, fired, "{who}");
    }
}

#[test]
fn a_committed_batch_create_answered_500_is_found_not_made_again() {
    for r in survive("commit-then-500-every=1@batches.create") {
        let who = r.transport;
        assert_eq!(fired(&r, "commit-then-500"), SHARDS, "{who}");
        // One create per shard, then a search of the list finds it.
        assert_eq!(on(&r.counters, "batches.create"), SHARDS, "{who}");
        assert!(
            on(&r.counters, "batches.list") >= SHARDS,
            "{who}: {:?}",
            r.counters
        );
        assert_eq!(retries(&r, "create"), SHARDS as usize, "{who}");
    }
}

#[test]
fn a_committed_batch_create_cut_off_is_found_not_made_again() {
    for r in survive("commit-then-cut-every=1@batches.create") {
        let who = r.transport;
        assert_eq!(fired(&r, "commit-then-cut"), SHARDS, "{who}");
        assert_eq!(on(&r.counters, "batches.create"), SHARDS, "{who}");
        assert!(
            on(&r.counters, "batches.list") >= SHARDS,
            "{who}: {:?}",
            r.counters
        );
        assert_eq!(retries(&r, "create"), SHARDS as usize, "{who}");
    }
}

#[test]
fn a_committed_upload_answered_500_is_found_not_uploaded_again() {
    for r in survive("commit-then-500-every=1@files.create") {
        let who = r.transport;
        assert_eq!(fired(&r, "commit-then-500"), SHARDS, "{who}");
        assert_eq!(on(&r.counters, "files.create"), SHARDS, "{who}");
        assert!(
            on(&r.counters, "files.list") >= SHARDS,
            "{who}: {:?}",
            r.counters
        );
        assert_eq!(retries(&r, "upload"), SHARDS as usize, "{who}");
    }
}

#[test]
fn a_committed_upload_cut_off_is_found_not_uploaded_again() {
    for r in survive("commit-then-cut-every=1@files.create") {
        let who = r.transport;
        assert_eq!(fired(&r, "commit-then-cut"), SHARDS, "{who}");
        assert_eq!(on(&r.counters, "files.create"), SHARDS, "{who}");
        assert!(
            on(&r.counters, "files.list") >= SHARDS,
            "{who}: {:?}",
            r.counters
        );
        assert_eq!(retries(&r, "upload"), SHARDS as usize, "{who}");
    }
}

#[test]
fn commits_answered_badly_on_both_routes_at_once() {
    for r in survive("commit-then-cut-every=2,commit-then-500-every=3") {
        let who = r.transport;
        assert!(
            fired(&r, "commit-then-cut") + fired(&r, "commit-then-500") >= 2,
            "{who}"
        );
        assert_eq!(on(&r.counters, "files.create"), SHARDS, "{who}");
        assert_eq!(on(&r.counters, "batches.create"), SHARDS, "{who}");
    }
}

#[test]
fn cut_off_downloads_resume_with_range() {
    for r in survive("cut-content-every=2") {
        let who = r.transport;
        let cuts = fired(&r, "cut-content");
        assert!(cuts > 0, "{who}: {:?}", r.counters);
        let resumed = r
            .events()
            .into_iter()
            .filter(|e| matches!(e, JobEvent::DownloadResumed { offset, .. } if *offset > 0))
            .count();
        assert_eq!(resumed as u64, cuts, "{who}");
        // Each resumed download asked for the rest only, and got it.
        assert_eq!(r.counters.responses.get("206"), Some(&cuts), "{who}");
    }
}

#[test]
fn slow_bodies_are_read_to_the_end() {
    for r in survive("slow-body-ms=2") {
        assert_eq!(fired(&r, "slow-body"), SHARDS, "{}", r.transport);
    }
}

#[test]
fn a_garbage_line_is_reported_and_the_others_kept() {
    for r in survive("garbage-line") {
        let who = r.transport;
        // One garbage line per output file, one output file per shard.
        assert_eq!(r.summary.bad_lines, SHARDS, "{who}");
        let warnings = r
            .events()
            .into_iter()
            .filter(|e| {
                matches!(e, JobEvent::Warning { message, .. } if message.contains("could not be read"))
            })
            .count();
        assert_eq!(warnings as u64, SHARDS, "{who}");
    }
}

#[test]
fn a_long_validation_is_polled_through() {
    for r in survive("stall-validating-ms=300") {
        let who = r.transport;
        assert_eq!(fired(&r, "stall-validating"), SHARDS, "{who}");
        let validating = r
            .events()
            .into_iter()
            .filter(|e| {
                matches!(
                    e,
                    JobEvent::Progress {
                        status: batch_core::api::BatchStatus::Validating,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(validating as u64, SHARDS, "{who}");
    }
}

#[test]
fn every_fault_at_once() {
    let faults = "429-every=11,502-every=13,commit-then-500-every=2,commit-then-cut-every=3,\
                  cut-content-every=2,slow-body-ms=1,garbage-line-every=2,stall-validating-ms=50";
    for r in survive(faults) {
        assert!(
            r.counters.faults_total() > 5,
            "{}: {:?}",
            r.transport,
            r.counters
        );
    }
}
