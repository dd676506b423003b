//! Large result files are fed to the job in chunks, and results reach the
//! caller while the download is still going.

use std::sync::Mutex;

use batch_core::job::{JobEvent, JobResult};
use batch_emulator::FaultConfig;

use crate::common::*;

#[derive(Debug)]
enum Seen {
    Result,
    Resumed(u64),
    ShardFinished,
}

#[test]
fn twenty_thousand_results_stream_out_of_one_download() {
    let n = 20_000;
    let items = items(n, |_| None);
    let setup = Setup {
        speed: 20_000.0,
        timings: batch_emulator::Timings {
            per_request: std::time::Duration::from_millis(10),
            ..batch_emulator::Timings::default()
        },
        // The first download is cut half way; the fault is lifted once the
        // job has noticed, so the download resumes from where it stopped.
        faults: "cut-content-every=1".into(),
        ..Setup::default()
    };
    let outcomes = both(&setup, |t, emu| {
        let mut job = t
            .submit_batch(&items, &prompt(), &options(50_000, 1))
            .expect("submit");
        let log = Mutex::new(Vec::new());
        let results: Mutex<Vec<JobResult>> = Mutex::new(Vec::new());
        let summary = t
            .stream_results(
                &mut job,
                &mut |r| {
                    log.lock().expect("log").push(Seen::Result);
                    results.lock().expect("results").push(r);
                },
                &mut |ev| match ev {
                    JobEvent::DownloadResumed { offset, .. } => {
                        emu.set_faults(FaultConfig::none());
                        log.lock().expect("log").push(Seen::Resumed(*offset));
                    }
                    JobEvent::ShardFinished { .. } => {
                        log.lock().expect("log").push(Seen::ShardFinished);
                    }
                    _ => {}
                },
            )
            .unwrap_or_else(|e| panic!("{}: {e:?}", t.name()));
        (
            summary,
            log.into_inner().expect("log"),
            results.into_inner().expect("results"),
            emu.counters(),
        )
    });
    let mut rendered = Vec::new();
    for (t, (summary, log, mut results, counters)) in ["blocking", "async"].iter().zip(outcomes) {
        assert!(summary.all_succeeded(), "{t}: {summary:?}");
        assert_eq!(summary.shards.len(), 1, "{t}");
        assert_each_once(t, &results, &items);
        // Results before the cut: they came out of the first, cut-off
        // response, so its body was fed as it arrived, not read whole.
        let resumed_at = log
            .iter()
            .position(|s| matches!(s, Seen::Resumed(_)))
            .unwrap_or_else(|| panic!("{t}: the download was not resumed: {counters:?}"));
        let before_cut = log[..resumed_at]
            .iter()
            .filter(|s| matches!(s, Seen::Result))
            .count();
        assert!(before_cut > 0, "{t}: no result before the cut");
        assert!(before_cut < n, "{t}: every result before a cut half way");
        let Seen::Resumed(offset) = log[resumed_at] else {
            unreachable!()
        };
        assert!(offset > 0, "{t}");
        // And the first result long before the shard finished.
        let first = log.iter().position(|s| matches!(s, Seen::Result));
        let finished = log.iter().position(|s| matches!(s, Seen::ShardFinished));
        assert!(first < finished, "{t}: {first:?} {finished:?}");
        assert_eq!(finished, Some(log.len() - 1), "{t}");
        assert_eq!(counters.faults_injected.get("cut-content"), Some(&1), "{t}");
        assert_eq!(counters.responses.get("206"), Some(&1), "{t}");
        results.sort_by_key(|r| r.index);
        assert_echoes(t, &results, &items);
        rendered.push(canonical(&results));
    }
    assert_eq!(rendered[0], rendered[1], "the transports' results differ");
}
