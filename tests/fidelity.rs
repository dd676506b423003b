//! Fidelity to the API's limits and to what the server sent, through both
//! transports: `/v1/embeddings` jobs are split into batches by their
//! embedding inputs, every outcome names its batch and its result line, and
//! the batch settings (metadata, expiries) reach the server.

use std::collections::{BTreeMap, BTreeSet};

use batch_core::Endpoint;
use batch_core::input::BatchRequest;
use batch_core::job::{BatchOptions, JobOutcome, ShardLimits};
use batch_core::jsonl::embedding_inputs;
use serde_json::{Value, json};

use crate::common::*;

const EMBEDDING_MODEL: &str = "text-embedding-3-small";

fn embed(id: &str, input: Value) -> BatchRequest {
    let line = json!({
        "custom_id": id,
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": EMBEDDING_MODEL, "input": input, "dimensions": 2}
    })
    .to_string();
    BatchRequest::parse_line("embeddings.jsonl", 1, line.as_bytes()).expect("a request line")
}

/// Seven requests of every input shape, 21 inputs in all.
fn requests() -> Vec<BatchRequest> {
    vec![
        embed("e0", json!(["a", "b", "c", "d"])),           // 4
        embed("e1", json!((1..=50).collect::<Vec<u32>>())), // one token array: 1
        embed("e2", json!([[1, 2], [3, 4], [5]])),          // 3 token arrays: 3
        embed("e3", json!("single")),                       // 1 -> 9
        embed("e4", json!(["x", "y"])),                     // 2: over 10, a new batch
        embed("e5", json!(["1", "2", "3", "4", "5", "6", "7", "8"])), // 8 -> 10
        embed("e6", json!("z")),                            // a new batch
    ]
}

#[test]
fn embeddings_are_split_by_inputs_and_results_name_their_batch_and_line() {
    let reqs = requests();
    let opts = BatchOptions::new(EMBEDDING_MODEL)
        .endpoint(Endpoint::Embeddings)
        .poll_interval(POLL)
        .max_wait(MAX_WAIT)
        .limits(ShardLimits::new(1000, 200 * 1024 * 1024).with_max_inputs(10))
        .metadata("team", "ml")
        .output_expires_after(7200)
        .file_expires_after(86_400);
    assert_eq!(opts.validate(), Ok(()));
    let runs = both(&Setup::default(), |t, emu| {
        let mut job = t
            .submit_requests(&reqs, &opts)
            .unwrap_or_else(|e| panic!("{}: submit: {e:?}", t.name()));
        let planned: Vec<u64> = job.plan().shards().iter().map(|s| s.inputs).collect();
        let results = t
            .get_results(&mut job)
            .unwrap_or_else(|e| panic!("{}: results: {e:?}", t.name()));
        let batches = t.list(Some(100), None).expect("list").data;
        // What the server stored as each batch's input file.
        let stored: BTreeMap<String, String> = batches
            .iter()
            .map(|b| {
                let path = emu.data_dir().join("files").join(&b.input_file_id);
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {}: {e}", t.name(), path.display()));
                (b.id.clone(), text)
            })
            .collect();
        (t.name(), planned, results, batches, stored, emu.counters())
    });
    for (who, planned, results, batches, stored, counters) in runs {
        assert_eq!(planned, vec![9, 10, 1], "{who}");
        assert_eq!(counters.batches_created, 3, "{who}: {counters:?}");
        assert_eq!(batches.len(), 3, "{who}");

        // The inputs of each batch, counted from the file the server holds.
        let mut per_batch: Vec<u64> = Vec::new();
        let mut batch_of: BTreeMap<String, String> = BTreeMap::new();
        for (batch_id, text) in &stored {
            let mut inputs = 0;
            for (n, line) in (1u64..).zip(text.lines()) {
                let req = BatchRequest::parse_line("stored", n, line.as_bytes()).expect("stored");
                inputs += embedding_inputs(&req);
                batch_of.insert(req.custom_id.clone(), batch_id.clone());
            }
            assert!(
                inputs <= 10,
                "{who}: batch {batch_id} holds {inputs} inputs"
            );
            per_batch.push(inputs);
        }
        per_batch.sort_unstable();
        assert_eq!(per_batch, vec![1, 9, 10], "{who}");

        // The caller's metadata sits beside the job's own keys.
        for b in &batches {
            let m = b.metadata.as_ref().expect("metadata");
            assert_eq!(m.get("team").map(String::as_str), Some("ml"), "{who}");
            assert!(m.contains_key(batch_core::job::META_JOB), "{who}: {m:?}");
        }

        // Each outcome names the batch whose file held its request, and the
        // result line it came from; the emulator answered one embedding per
        // input, as the planner counted them.
        assert_eq!(results.len(), reqs.len(), "{who}");
        let mut line_ids = BTreeSet::new();
        for (r, req) in results.iter().zip(&reqs) {
            assert_eq!(r.custom_id, req.custom_id, "{who}");
            assert_eq!(
                r.batch_id.as_ref(),
                batch_of.get(&r.custom_id),
                "{who}: {}",
                r.custom_id
            );
            let line = r.result_line().expect("a result line");
            let id = line.id.clone().expect("a line id");
            assert!(id.starts_with("batch_req_"), "{who}: {id}");
            assert!(line_ids.insert(id), "{who}: line ids are distinct");
            let JobOutcome::Succeeded(rec) = &r.outcome else {
                panic!("{who}: {} did not succeed: {:?}", r.custom_id, r.outcome);
            };
            let embeddings = rec.embeddings().expect("an embeddings body");
            assert_eq!(
                embeddings.data.len() as u64,
                embedding_inputs(req),
                "{who}: {}",
                r.custom_id
            );
        }
    }
}
