//! The happy path: a job of a few thousand requests in several shards.

use crate::common::*;

#[test]
fn three_thousand_requests_in_three_shards_complete_identically() {
    let items = items(3000, |_| None);
    let handle = plan(&items, 1000, 2);
    assert_eq!(handle.plan().shards().len(), 3);
    let reports = both(&Setup::default(), |t, emu| {
        drive(t, emu, &handle, 2, |_| {})
    });
    for r in &reports {
        let who = r.transport;
        let results = r.sorted();
        assert_each_once(who, &r.delivered, &items);
        assert_echoes(who, &results, &items);
        assert!(r.summary.all_succeeded(), "{who}: {:?}", r.summary);
        assert_eq!(r.summary.succeeded, 3000, "{who}");
        assert_eq!(r.summary.bad_lines, 0, "{who}");
        assert_eq!(r.counters.files_uploaded, 3, "{who}: {:?}", r.counters);
        assert_eq!(r.counters.batches_created, 3, "{who}: {:?}", r.counters);
        assert_eq!(on(&r.counters, "files.create"), 3, "{who}");
        assert_eq!(on(&r.counters, "batches.create"), 3, "{who}");
        assert!(r.summary.usage.input_tokens > 0, "{who}");
    }
    assert_same(&reports);
}

/// Every 7th item asks the emulator to fail it with 400 (it lands in the
/// error file), every 5th asks for a fenced JSON reply.
fn mixed_message(i: usize) -> Option<String> {
    if i % 7 == 3 {
        Some(format!("question {i} [[emulator:fail=400]]"))
    } else if i % 5 == 1 {
        Some(format!("question {i} [[emulator:json]]"))
    } else {
        None
    }
}

#[test]
fn failures_come_from_the_error_file_and_json_is_parsed_beside_the_content() {
    let items = items(1200, mixed_message);
    let handle = plan(&items, 500, 3);
    let reports = both(&Setup::default(), |t, emu| {
        drive(t, emu, &handle, 3, |_| {})
    });
    for r in &reports {
        let who = r.transport;
        assert_each_once(who, &r.delivered, &items);
        let (mut failed, mut json) = (0, 0);
        for res in r.sorted() {
            let i = usize::try_from(res.index).expect("index");
            match &res.outcome {
                batch_core::job::JobOutcome::Failed(rec) => {
                    assert_eq!(i % 7, 3, "{who}: {} failed", res.custom_id);
                    let f = rec.failure().expect("a failure");
                    assert_eq!(f.status_code, Some(400), "{who}: {f:?}");
                    assert_eq!(
                        f.message.as_deref(),
                        Some(
                            "The emulator failed this request with status 400, as its content asked."
                        ),
                        "{who}"
                    );
                    assert_eq!(
                        f.error_type.as_deref(),
                        Some("invalid_request_error"),
                        "{who}"
                    );
                    failed += 1;
                }
                batch_core::job::JobOutcome::Succeeded(rec) if i % 5 == 1 => {
                    let content = rec.content().expect("content");
                    assert!(content.starts_with("```json"), "{who}: {content}");
                    let v = rec.json().expect("parsed JSON beside the content");
                    assert_eq!(v["echo"], format!("question {i}"), "{who}");
                    assert_eq!(v["words"], 2, "{who}");
                    json += 1;
                }
                batch_core::job::JobOutcome::Succeeded(rec) => {
                    assert_eq!(rec.content(), Some(format!("Echo: question {i}").as_str()));
                    assert!(rec.json().is_none(), "{who}: plain text parsed as JSON");
                }
                other => panic!("{who}: {} ended as {other:?}", res.custom_id),
            }
        }
        let expect_failed = (0..1200).filter(|i| i % 7 == 3).count() as u64;
        assert_eq!(failed, expect_failed, "{who}");
        assert!(json > 0, "{who}");
        assert_eq!(r.summary.failed, expect_failed, "{who}");
        assert_eq!(r.summary.succeeded, 1200 - expect_failed, "{who}");
        assert!(r.summary.complete, "{who}");
        // An output and an error file per shard.
        assert_eq!(
            r.counters.result_files_written, 6,
            "{who}: {:?}",
            r.counters
        );
    }
    assert_same(&reports);
}
