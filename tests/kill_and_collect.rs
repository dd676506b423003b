//! The seed's flow as a new user writes it, sync and async: a program
//! submits, saves its handle and waits for its results, and is killed
//! (`kill -9`) while it waits. Another process collects every outcome, once
//! by loading the saved handle and once by the batch ids alone, on the
//! other transport.
//!
//! The killed programs are this test binary run again on its `#[ignore]`d
//! helpers `sync_program` and `async_program`, which act only when the
//! parent sets `KILL_TEST_BASE` and `KILL_TEST_DIR`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use batch_core::api::ApiConfig;
use batch_core::input::{Item, SystemPrompt};
use batch_core::job::{BatchJob, BatchOptions, ClientConfig, JobResult, StoreError};
use batch_emulator::{Emulator, Timings};
use batch_store::FileStore;

const KEY: &str = "sk-kill-test-key";
const NAME: &str = "reviews";
const ITEMS: usize = 12;

fn config(base: &str) -> ClientConfig {
    let mut c = ClientConfig::new(ApiConfig::new(KEY).with_base_url(base));
    c.connect_timeout = Duration::from_secs(5);
    c.io_timeout = Duration::from_secs(20);
    c
}

fn items() -> Vec<Item> {
    (0..ITEMS)
        .map(|i| Item::new(format!("review-{i:02}"), format!("Rate review {i}.")))
        .collect()
}

fn prompt() -> SystemPrompt {
    SystemPrompt::Text("Rate each review from 1 to 5.".into())
}

fn options() -> BatchOptions {
    BatchOptions::new("gpt-4o-mini")
        .poll_interval(Duration::from_millis(100))
        .max_wait(Duration::from_secs(600))
}

fn child_env() -> Option<(String, String)> {
    Some((
        std::env::var("KILL_TEST_BASE").ok()?,
        std::env::var("KILL_TEST_DIR").ok()?,
    ))
}

/// Tells the parent the job is saved and names its batches, then waits.
fn announce(handle: &BatchJob) {
    for id in handle.batch_ids() {
        println!("BATCH {id}");
    }
    println!("SAVED");
}

/// The sync program: submit, save, wait for the results (killed meanwhile).
#[test]
#[ignore = "a helper process of a_killed_program_s_results_are_collected_elsewhere"]
fn sync_program() {
    let Some((base, dir)) = child_env() else {
        return;
    };
    let client = batch_blocking::Client::new(config(&base)).expect("client");
    let mut handle = client
        .submit_batch(&items(), &prompt(), &options())
        .expect("submitted");
    handle
        .save(&FileStore::open(&dir).expect("store"), NAME)
        .expect("saved");
    announce(&handle);
    let _ = client.get_results(&mut handle);
}

/// The async program: the same on the async transport.
#[test]
#[ignore = "a helper process of a_killed_program_s_results_are_collected_elsewhere"]
fn async_program() {
    let Some((base, dir)) = child_env() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = batch_async::Client::new(config(&base)).expect("client");
        let mut handle = client
            .submit_batch(&items(), &prompt(), &options())
            .await
            .expect("submitted");
        handle
            .save(&FileStore::open(&dir).expect("store"), NAME)
            .expect("saved");
        announce(&handle);
        let _ = client.get_results(&mut handle).await;
    });
}

/// Runs `program` until it has saved its job, kills it with SIGKILL, and
/// returns the batch ids it printed.
fn run_and_kill(program: &str, base: &str, dir: &Path) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().expect("this test binary"))
        .args([program, "--exact", "--ignored", "--nocapture"])
        .env("KILL_TEST_BASE", base)
        .env("KILL_TEST_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the program starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut ids = Vec::new();
    let mut saved = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line");
        if let Some(id) = line.strip_prefix("BATCH ") {
            ids.push(id.to_owned());
        }
        if line == "SAVED" {
            saved = true;
            break;
        }
    }
    assert!(saved, "{program} ended before it saved its job");
    child.kill().expect("kill -9");
    let status = child.wait().expect("reaped");
    assert!(!status.success(), "{program} was killed: {status:?}");
    ids
}

/// `custom_id` → content, each id once, every request succeeded.
fn contents(who: &str, results: &[JobResult]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for r in results {
        let text = r
            .content()
            .unwrap_or_else(|| panic!("{who}: {} did not succeed: {:?}", r.custom_id, r.error()));
        let old = m.insert(r.custom_id().to_owned(), text.to_owned());
        assert!(old.is_none(), "{who}: {} twice", r.custom_id);
    }
    assert_eq!(m.len(), ITEMS, "{who}: every request once");
    m
}

#[test]
fn a_killed_program_s_results_are_collected_elsewhere() {
    // A batch takes a few real seconds: the programs are killed while
    // they wait for it.
    let emu = Emulator::builder()
        .speed(5000.0)
        .api_key(KEY)
        .timings(Timings {
            per_request: Duration::from_secs(1000),
            ..Timings::default()
        })
        .start_blocking()
        .expect("emulator");
    let base = emu.base_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let blocking = batch_blocking::Client::new(config(&base)).expect("client");
    let asynchronous = batch_async::Client::new(config(&base)).expect("client");

    for program in ["sync_program", "async_program"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = run_and_kill(program, &base, dir.path());
        assert_eq!(ids.len(), 1, "{program}: one batch");
        let store = FileStore::open(dir.path()).expect("store");

        // The saved handle, on the other transport.
        let mut handle = BatchJob::load(&store, NAME).expect("loaded");
        assert_eq!(handle.batch_ids(), ids, "{program}");
        let loaded = if program == "sync_program" {
            rt.block_on(asynchronous.get_results(&mut handle))
        } else {
            blocking.get_results(&mut handle)
        }
        .expect("the loaded handle collects");
        let loaded = contents(program, &loaded);
        assert!(
            loaded.values().all(|c| c.starts_with("Echo: Rate review")),
            "{program}: {loaded:?}"
        );

        // The batch id alone, on the same transport as the killed program.
        let by_id = if program == "sync_program" {
            blocking.batch_results(&ids[0])
        } else {
            rt.block_on(asynchronous.batch_results(&ids[0]))
        }
        .expect("collected by id");
        assert_eq!(contents(program, &by_id), loaded, "{program}");
        // In input order, as submitted.
        let order: Vec<&str> = by_id.iter().map(JobResult::custom_id).collect();
        let expected: Vec<String> = items().into_iter().map(|i| i.custom_id).collect();
        assert_eq!(order, expected, "{program}");

        // What a mistyped name tells the user.
        let missing = BatchJob::load(&store, "reveiws").expect_err("no such job");
        assert!(matches!(missing, StoreError::NotFound(_)));
        assert_eq!(missing.to_string(), "no job named \"reveiws\" in the store");
    }
    // One batch per program: nothing was submitted twice.
    assert_eq!(emu.counters().batches_created, 2);
}
