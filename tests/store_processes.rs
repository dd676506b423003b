//! A job handle that survives the process: `submit_batch` in one OS process,
//! `BatchJob::save` to a `FileStore`; `BatchJob::load` and `get_results` in
//! another (on the other transport), against one emulator that outlives
//! both. The outcomes equal what each batch gives when read by its id.
//!
//! The second process stores the outcomes it collected; then every result
//! file is deleted on the server, and a third process loads the handle and
//! gets every outcome once again on both transports, from the store alone.
//!
//! The processes are this test binary run again on its `#[ignore]`d
//! helpers `child_submit`, `child_collect` and `child_reload`, which act
//! only when the parent sets `STORE_TEST_BASE` and `STORE_TEST_DIR`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use batch_core::api::ApiConfig;
use batch_core::input::{Item, SystemPrompt};
use batch_core::job::{
    BatchJob, BatchOptions, ClientConfig, JobOutcome, JobResult, JobStore, ShardLimits,
};
use batch_emulator::{Emulator, Timings};
use batch_store::FileStore;

const KEY: &str = "sk-store-test-key";
const NAME: &str = "three-shards";
const ITEMS: usize = 10;

fn config(base: &str) -> ClientConfig {
    let mut c = ClientConfig::new(ApiConfig::new(KEY).with_base_url(base));
    c.connect_timeout = Duration::from_secs(5);
    c.io_timeout = Duration::from_secs(20);
    c
}

fn options() -> BatchOptions {
    BatchOptions::new("gpt-4o-mini")
        .poll_interval(Duration::from_millis(50))
        .max_wait(Duration::from_secs(60))
        .limits(ShardLimits::new(4, 1 << 20))
}

/// `custom_id` → `kind:content`, each id once.
fn render(results: &[JobResult]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for r in results {
        let line = match &r.outcome {
            JobOutcome::Succeeded(rec) => format!("succeeded:{}", rec.content().unwrap_or("")),
            JobOutcome::Failed(_) => "failed:".to_owned(),
            other => format!("other:{other:?}"),
        };
        assert!(
            m.insert(r.custom_id.clone(), line).is_none(),
            "{} twice",
            r.custom_id
        );
    }
    m
}

fn child_env() -> Option<(String, String)> {
    Some((
        std::env::var("STORE_TEST_BASE").ok()?,
        std::env::var("STORE_TEST_DIR").ok()?,
    ))
}

/// Process A: submits a three-shard job and stores the handle.
#[test]
#[ignore = "a helper process of submit_in_one_process_collect_in_another"]
fn child_submit() {
    let Some((base, dir)) = child_env() else {
        return;
    };
    let client = batch_blocking::Client::new(config(&base)).expect("client");
    let items: Vec<Item> = (0..ITEMS)
        .map(|i| Item::new(format!("item-{i:02}"), format!("question {i}")))
        .collect();
    let handle = client
        .submit_batch(&items, &SystemPrompt::Text("Answer.".into()), &options())
        .expect("submitted");
    assert_eq!(handle.batch_ids().len(), 3);
    let store = FileStore::open(&dir).expect("store");
    handle.save(&store, NAME).expect("saved");
}

/// Process B: loads the handle and collects every outcome (async transport).
#[test]
#[ignore = "a helper process of submit_in_one_process_collect_in_another"]
fn child_collect() {
    let Some((base, dir)) = child_env() else {
        return;
    };
    let store = FileStore::open(&dir).expect("store");
    let mut handle = BatchJob::load(&store, NAME).expect("loaded");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = batch_async::Client::new(config(&base)).expect("client");
    let results = rt
        .block_on(client.get_results(&mut handle))
        .expect("collected");
    write_tsv(&Path::new(&dir).join("results.tsv"), &results);
    handle.save(&store, NAME).expect("saved again");
}

/// Process C: loads the handle the collecting process saved, after its
/// result files were deleted, and gets every outcome on each transport.
#[test]
#[ignore = "a helper process of submit_in_one_process_collect_in_another"]
fn child_reload() {
    let Some((base, dir)) = child_env() else {
        return;
    };
    let store = FileStore::open(&dir).expect("store");
    let mut blocking = BatchJob::load(&store, NAME).expect("loaded");
    let results = batch_blocking::Client::new(config(&base))
        .expect("client")
        .get_results(&mut blocking)
        .expect("collected from the store (blocking)");
    write_tsv(&Path::new(&dir).join("reload-blocking.tsv"), &results);
    let mut asynchronous = BatchJob::load(&store, NAME).expect("loaded");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = batch_async::Client::new(config(&base)).expect("client");
    let results = rt
        .block_on(client.get_results(&mut asynchronous))
        .expect("collected from the store (async)");
    write_tsv(&Path::new(&dir).join("reload-async.tsv"), &results);
}

fn write_tsv(path: &Path, results: &[JobResult]) {
    let text: String = render(results)
        .into_iter()
        .map(|(id, line)| format!("{id}\t{line}\n"))
        .collect();
    std::fs::write(path, text).expect("written");
}

fn read_tsv(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).expect("results");
    text.lines()
        .map(|l| {
            let (id, rest) = l.split_once('\t').expect("a tab");
            (id.to_owned(), rest.to_owned())
        })
        .collect()
}

fn run_child(test: &str, base: &str, dir: &Path) {
    let out = Command::new(std::env::current_exe().expect("this test binary"))
        .args([test, "--exact", "--ignored", "--test-threads=1"])
        .env("STORE_TEST_BASE", base)
        .env("STORE_TEST_DIR", dir)
        .output()
        .expect("the child runs");
    assert!(
        out.status.success(),
        "{test} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 passed"), "{test} did not run: {stdout}");
}

#[test]
fn submit_in_one_process_collect_in_another() {
    let emu = Emulator::builder()
        .speed(5000.0)
        .seed(11)
        .api_key(KEY.to_owned())
        .timings(Timings {
            per_request: Duration::from_millis(100),
            ..Timings::default()
        })
        .start_blocking()
        .expect("emulator");
    let base = emu.base_url();
    let dir = tempfile::tempdir().expect("tempdir");

    run_child("child_submit", &base, dir.path());
    let store = FileStore::open(dir.path()).expect("store");
    assert_eq!(store.list().expect("list"), [NAME]);
    let stored = store.load(NAME).expect("load").expect("stored");
    let cp = stored.checkpoint.as_ref().expect("a checkpoint");
    let batch_ids: Vec<String> = cp
        .shards
        .iter()
        .filter_map(|s| s.batch_id.clone())
        .collect();
    assert_eq!(batch_ids.len(), 3, "three batches were created");

    run_child("child_collect", &base, dir.path());
    let collected = read_tsv(&dir.path().join("results.tsv"));
    assert_eq!(collected.len(), ITEMS, "every request once");
    assert!(
        collected.values().all(|v| v.starts_with("succeeded:")),
        "{collected:?}"
    );

    // The same outcomes, read batch by batch by id with a third client.
    let reader = batch_blocking::Client::new(config(&base)).expect("client");
    let mut by_id = BTreeMap::new();
    for id in &batch_ids {
        let results = reader.batch_results(id).expect("by id");
        by_id.extend(render(&results));
    }
    assert_eq!(by_id, collected);

    // No batch was created twice: the second process only collected.
    let listed = reader.list(Some(100), None).expect("list");
    assert_eq!(listed.data.len(), 3);

    // The result files go (deleted, as an expiry would); the stored
    // outcomes stay, one document per shard.
    for id in &batch_ids {
        let batch = reader.retrieve_batch(id).expect("batch");
        for file in [batch.output_file_id, batch.error_file_id]
            .into_iter()
            .flatten()
        {
            let req = batch_core::api::delete_file(reader.api(), &file).expect("request");
            let (head, _) = reader.execute(req).expect("deleted");
            assert!(head.status.is_success(), "{file}: {}", head.status);
            assert!(reader.download_file(&file, &mut Vec::new()).is_err());
        }
    }
    for shard in 0..3 {
        assert!(store.outcomes_path(NAME, shard).expect("path").exists());
    }
    let content_before = emu.counters().requests_on("files.content");
    run_child("child_reload", &base, dir.path());
    for who in ["blocking", "async"] {
        let reloaded = read_tsv(&dir.path().join(format!("reload-{who}.tsv")));
        assert_eq!(
            reloaded, collected,
            "{who}: every outcome once, as collected"
        );
    }
    assert_eq!(
        emu.counters().requests_on("files.content"),
        content_before,
        "nothing was downloaded again"
    );
    assert_eq!(reader.list(Some(100), None).expect("list").data.len(), 3);
}
