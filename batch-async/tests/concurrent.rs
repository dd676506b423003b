//! The async transport runs a sharded job's exchanges concurrently against a
//! real server on loopback (the emulator).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batch_async::{Client, ClientConfig};
use batch_core::api::ApiConfig;
use batch_core::input::{Item, SystemPrompt};
use batch_core::job::{BatchOptions, JobEvent, JobOutcome, ShardLimits};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_job_runs_its_shards_side_by_side() {
    let emu = batch_emulator::Emulator::builder()
        .speed(2000.0)
        .start()
        .await
        .unwrap();
    let api = ApiConfig::new("sk-test").with_base_url(emu.base_url());
    let client = Client::new(ClientConfig::new(api)).unwrap();
    let items: Vec<Item> = (0..120)
        .map(|i| Item::new(format!("q-{i}"), format!("question {i}")))
        .collect();
    let opts = BatchOptions::new("gpt-4o-mini")
        .poll_interval(Duration::from_millis(50))
        .limits(ShardLimits::new(40, 1 << 20));
    let mut handle = batch_core::job::BatchJob::from_items(
        &items,
        &SystemPrompt::Text("Be brief.".into()),
        &opts,
        3,
    )
    .unwrap();
    let mut results = Vec::new();
    let mut events = Vec::new();
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        client.stream_results(&mut handle, &mut |r| results.push(r), &mut |e| {
            events.push(e.clone())
        }),
    )
    .await
    .expect("the job finished in time")
    .unwrap();
    assert_eq!(summary.succeeded, 120);
    results.sort_by_key(|r| r.index);
    assert_eq!(results.len(), 120);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.custom_id, format!("q-{i}"));
        match &r.outcome {
            JobOutcome::Succeeded(rec) => {
                assert_eq!(rec.content(), Some(format!("Echo: question {i}").as_str()))
            }
            other => panic!("{other:?}"),
        }
    }
    // All three shards were submitted before the first one finished.
    let first_finish = events
        .iter()
        .position(|e| matches!(e, JobEvent::ShardFinished { .. }))
        .unwrap();
    let submitted_before = events[..first_finish]
        .iter()
        .filter(|e| matches!(e, JobEvent::Submitted { .. }))
        .count();
    assert_eq!(submitted_before, 3);
    let c = emu.counters();
    assert_eq!((c.files_uploaded, c.batches_created), (3, 3));
}
