//! The seed's operations, one by one: submit and come back later.

use batch_core::job::{JobOutcome, JobStatus};

use crate::common::*;

#[test]
fn submit_poll_get_results_list_and_submit_and_wait() {
    let items = items(900, |i| {
        (i % 9 == 4).then(|| format!("question {i} [[emulator:fail=400]]"))
    });
    let more = items_named("more", 120);
    let outcomes = both(&Setup::default(), |t, emu| {
        // Submit: returns with the batch ids as soon as they exist.
        let mut job = t
            .submit_batch(&items, &prompt(), &options(300, 3))
            .unwrap_or_else(|e| panic!("{}: submit: {e:?}", t.name()));
        let ids = job.batch_ids();
        let after_submit = emu.counters();
        // Poll: one status read per batch, nothing downloaded.
        let status: JobStatus = t.poll_status(&mut job).expect("poll");
        let after_poll = emu.counters();
        // Results: waits, downloads, every outcome once.
        let results = t.get_results(&mut job).expect("results");
        let after_results = emu.counters();
        // List: the batches are there, newest first, with the job's metadata.
        let page = t.list(Some(2), None).expect("list");
        let rest = t
            .list(Some(10), page.last_id.as_deref())
            .expect("list after");
        // The whole thing in one call.
        let waited = t
            .submit_and_wait(&more, &prompt(), &options(1000, 1))
            .expect("submit and wait");
        (
            ids,
            after_submit,
            status,
            after_poll,
            results,
            after_results,
            page,
            rest,
            waited,
            emu.counters(),
        )
    });
    let mut rendered = Vec::new();
    for (t, o) in ["blocking", "async"].iter().zip(outcomes) {
        let (
            ids,
            after_submit,
            status,
            after_poll,
            results,
            after_results,
            page,
            rest,
            waited,
            end,
        ) = o;
        assert_eq!(ids.len(), 3, "{t}");
        assert!(
            ids.iter().all(|id| id.starts_with("batch_")),
            "{t}: {ids:?}"
        );
        assert_eq!(after_submit.batches_created, 3, "{t}");
        assert_eq!(after_submit.files_uploaded, 3, "{t}");
        assert_eq!(
            on(&after_submit, "batches.get"),
            0,
            "{t}: submit does not wait"
        );
        assert_eq!(on(&after_submit, "files.content"), 0, "{t}");

        assert_eq!(status.shards.len(), 3, "{t}");
        for (s, id) in status.shards.iter().zip(&ids) {
            assert_eq!(s.batch_id.as_ref(), Some(id), "{t}");
            assert!(s.status.is_some(), "{t}: shard {} has no status", s.shard);
        }
        assert_eq!(on(&after_poll, "batches.get"), 3, "{t}");
        let polling_downloaded = on(&after_poll, "files.content");

        assert_each_once(t, &results, &items);
        assert_eq!(polling_downloaded, 0, "{t}: polling downloads nothing");
        assert!(
            results.windows(2).all(|w| w[0].index < w[1].index),
            "{t}: input order"
        );
        assert_eq!(
            after_results.batches_created, 3,
            "{t}: nothing created again"
        );
        assert_eq!(after_results.files_uploaded, 3, "{t}");
        let failed = results
            .iter()
            .filter(|r| matches!(r.outcome, batch_core::job::JobOutcome::Failed(_)))
            .count();
        assert_eq!(failed, 100, "{t}");

        let listed: Vec<&str> = page
            .data
            .iter()
            .chain(&rest.data)
            .map(|b| b.id.as_str())
            .collect();
        let mut expected: Vec<&str> = ids.iter().map(String::as_str).rev().collect();
        expected.sort_unstable();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, expected, "{t}: list holds the job's batches");
        assert_eq!(page.data.len(), 2, "{t}");
        assert!(page.has_more, "{t}");
        assert!(!rest.has_more, "{t}");
        for b in page.data.iter().chain(&rest.data) {
            let meta = b.metadata.as_ref().expect("metadata");
            assert!(
                meta.contains_key(batch_core::job::META_JOB),
                "{t}: {meta:?}"
            );
        }

        assert_each_once(t, &waited, &more);
        assert_echoes(t, &waited, &more);
        assert_eq!(end.batches_created, 4, "{t}");
        rendered.push(canonical(&results) + &canonical(&waited));
    }
    assert_eq!(rendered[0], rendered[1], "the transports' results differ");
}

fn items_named(prefix: &str, n: usize) -> Vec<batch_core::input::Item> {
    (0..n)
        .map(|i| batch_core::input::Item::new(format!("{prefix}-{i}"), format!("question {i}")))
        .collect()
}

#[test]
fn raw_requests_to_another_endpoint_and_bodies_the_server_refuses() {
    use batch_core::Endpoint;
    use batch_core::input::BatchRequest;
    use batch_core::job::JobOutcome;
    // Embeddings; every fourth request lacks its `input`, which the client
    // lets through (it checks ids, url and model) and the server refuses
    // when it runs the request.
    let requests: Vec<BatchRequest> = (0..200)
        .map(|i| {
            let mut body = serde_json::Map::new();
            body.insert("model".into(), "text-embedding-3-small".into());
            if i % 4 != 0 {
                body.insert("input".into(), format!("text {i}").into());
            }
            BatchRequest::new(format!("emb-{i}"), Endpoint::Embeddings, body)
        })
        .collect();
    let mut opts = options(100, 2).endpoint(Endpoint::Embeddings);
    opts.model = "text-embedding-3-small".into();
    let outcomes = both(&Setup::default(), |t, _emu| {
        let mut job = t.submit_requests(&requests, &opts).expect("submit");
        t.get_results(&mut job).expect("results")
    });
    let mut rendered = Vec::new();
    for (t, results) in ["blocking", "async"].iter().zip(outcomes) {
        assert_eq!(results.len(), 200, "{t}");
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.custom_id, format!("emb-{i}"), "{t}");
            match &r.outcome {
                JobOutcome::Failed(rec) => {
                    assert_eq!(i % 4, 0, "{t}: {} failed", r.custom_id);
                    let f = rec.failure().expect("failure");
                    assert_eq!(f.status_code, Some(400), "{t}");
                    assert_eq!(f.code.as_deref(), Some("missing_required_parameter"), "{t}");
                    assert_eq!(f.param.as_deref(), Some("input"), "{t}");
                }
                JobOutcome::Succeeded(rec) => {
                    assert_ne!(i % 4, 0, "{t}: {} succeeded", r.custom_id);
                    let e = rec.embeddings().expect("an embeddings body");
                    assert_eq!(e.data.len(), 1, "{t}");
                }
                other => panic!("{t}: {other:?}"),
            }
        }
        rendered.push(canonical(&results));
    }
    assert_eq!(rendered[0], rendered[1], "the transports' results differ");
}

#[test]
fn outcomes_decided_while_submitting_reach_get_results() {
    // The third shard's file is over this server's size limit: its upload
    // is refused during submit, which ends the shard there and then.
    let items = items(300, |i| {
        (i >= 200).then(|| format!("question {i} {}", "x".repeat(200)))
    });
    let setup = Setup {
        max_batch_file_bytes: 30_000,
        ..Setup::default()
    };
    let outcomes = both(&setup, |t, emu| {
        let mut job = t
            .submit_batch(&items, &prompt(), &options(100, 3))
            .expect("submit");
        let ids = job.batch_ids();
        let status = t.poll_status(&mut job).expect("poll");
        let got = t.get_results(&mut job);
        (ids, status, got, emu.counters())
    });
    let mut rendered = Vec::new();
    for (t, (ids, status, got, counters)) in ["blocking", "async"].iter().zip(outcomes) {
        assert_eq!(ids.len(), 2, "{t}");
        assert_eq!(status.shards[2].batch_id, None, "{t}");
        let Err(Fail::Ended {
            reason, results, ..
        }) = got
        else {
            panic!("{t}: a shard was refused, yet {got:?}");
        };
        assert!(reason.to_string().contains("shard 2"), "{t}: {reason}");
        assert_each_once(t, &results, &items);
        for r in &results {
            match &r.outcome {
                JobOutcome::NotProcessed(np) => {
                    assert!(r.index >= 200, "{t}: {}", r.custom_id);
                    assert_eq!(np.code, "upload_failed", "{t}");
                    assert!(
                        np.message.contains("File is too large"),
                        "{t}: {}",
                        np.message
                    );
                }
                other => {
                    assert!(r.index < 200, "{t}: {other:?}");
                    assert!(matches!(other, JobOutcome::Succeeded(_)), "{t}: {other:?}");
                }
            }
        }
        assert_eq!(counters.files_uploaded, 2, "{t}");
        assert_eq!(counters.batches_created, 2, "{t}");
        rendered.push(canonical(&results));
    }
    assert_eq!(rendered[0], rendered[1], "the transports' results differ");
}

/// Cancelling a batch that has already completed: the API answers 409, and
/// the client reads the batch and collects its results instead of failing.
#[test]
fn cancel_of_a_completed_batch_collects_its_results() {
    let items = items(20, |_| None);
    let outcomes = both(&Setup::default(), |t, emu| {
        let mut job = t
            .submit_batch(&items, &prompt(), &options(100, 1))
            .expect("submit");
        // The batch completes on the server while the handle still holds
        // the status it had at submission.
        let mut waits = 0;
        while t.list(Some(1), None).expect("list").data[0].status
            != batch_core::api::BatchStatus::Completed
        {
            waits += 1;
            assert!(waits < 400, "{}: the batch never completed", t.name());
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let results = t.cancel(&mut job).expect("cancel of a completed batch");
        (results, emu.counters())
    });
    for (t, (results, counters)) in ["blocking", "async"].iter().zip(outcomes) {
        assert_each_once(t, &results, &items);
        assert!(
            results
                .iter()
                .all(|r| matches!(r.outcome, JobOutcome::Succeeded(_))),
            "{t}: every request of the completed batch succeeded"
        );
        assert_eq!(
            on(&counters, "batches.cancel"),
            1,
            "{t}: one cancel, answered 409"
        );
    }
}
