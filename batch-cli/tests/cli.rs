//! End-to-end tests of the `openai-batch` binary against the emulator,
//! started in-process on a loopback port. Every wait is bounded.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use batch_blocking::{Client, ClientConfig};
use batch_core::api::{self, ApiConfig, FilePurpose, ListFiles};
use batch_emulator::{Emulator, EmulatorHandle, FaultConfig, Timings};
use serde_json::Value;

const KEY: &str = "sk-secret-xyz";

mod common;
use common::{BIN, code, stderr, wait};

fn command(emu: &EmulatorHandle, args: &[&str]) -> Command {
    common::command(emu, args, KEY)
}

fn run(emu: &EmulatorHandle, args: &[&str]) -> Output {
    common::run(emu, args, KEY)
}

/// An emulator whose batches run in well under a second per few hundred requests.
fn emulator(faults: &str) -> EmulatorHandle {
    fast_emulator(faults, |b| b)
}

/// [`emulator`], with more settings.
fn fast_emulator(
    faults: &str,
    tweak: impl FnOnce(batch_emulator::EmulatorBuilder) -> batch_emulator::EmulatorBuilder,
) -> EmulatorHandle {
    tweak(Emulator::builder())
        .speed(20.0)
        .timings(Timings {
            validating: Duration::from_secs(2),
            per_request: Duration::from_millis(20),
            finalizing: Duration::from_secs(1),
            cancelling: Duration::from_secs(2),
            completion_window: Duration::from_secs(24 * 3600),
        })
        .faults(FaultConfig::parse(faults).expect("fault spec"))
        .start_blocking()
        .expect("emulator starts")
}

/// Writes `n` short lines with ids `r00000`, ...; `special` adds text to some.
fn input(dir: &Path, n: usize, special: impl Fn(usize) -> &'static str) -> PathBuf {
    let path = dir.join("in.jsonl");
    let mut f = std::fs::File::create(&path).expect("input");
    for i in 0..n {
        writeln!(
            f,
            r#"{{"custom_id":"r{i:05}","prompt":"question {i} {}"}}"#,
            special(i)
        )
        .expect("write");
    }
    path
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("results")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn ids(results: &[Value]) -> Vec<String> {
    results
        .iter()
        .map(|v| v["custom_id"].as_str().expect("custom_id").to_owned())
        .collect()
}

fn expected_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i:05}")).collect()
}

fn outcomes(results: &[Value], outcome: &str) -> usize {
    results.iter().filter(|v| v["outcome"] == outcome).count()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Names with how often each occurs.
type Counted = Vec<(String, usize)>;

/// What the server holds: how many batches each shard of the job has, and
/// how many times each shard file was uploaded. (Listing, not the emulator's
/// counters: a handler cut short by the killed client commits the object but
/// may skip its counter.)
fn server_objects(emu: &EmulatorHandle) -> (Counted, Counted) {
    let client = Client::new(ClientConfig::new(
        ApiConfig::new(KEY).with_base_url(emu.base_url()),
    ))
    .expect("client");
    let mut batches = std::collections::BTreeMap::<String, usize>::new();
    for b in client.list(Some(100), None).expect("list batches").data {
        let shard = b
            .metadata
            .as_ref()
            .and_then(|m| m.get("openai_batch_shard").cloned())
            .unwrap_or_default();
        *batches.entry(shard).or_default() += 1;
    }
    let query = ListFiles {
        purpose: Some(FilePurpose::Batch),
        limit: Some(1000),
        order: None,
        after: None,
    };
    let request = api::list_files(client.api(), &query).expect("request");
    let (head, body) = client.execute(request).expect("list files");
    let mut files = std::collections::BTreeMap::<String, usize>::new();
    for f in api::parse_file_list(&head, &body).expect("files").data {
        *files.entry(f.filename).or_default() += 1;
    }
    (batches.into_iter().collect(), files.into_iter().collect())
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_job_of_thousands_runs_across_shards_in_input_order() {
    let emu = emulator("");
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 3000;
    let input = input(dir.path(), n, |_| "");
    let out = dir.path().join("results.jsonl");
    let o = run(
        &emu,
        &[
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--model",
            "gpt-4o-mini",
            "--max-requests-per-batch",
            "400",
            "--parallel",
            "4",
            "--poll-interval",
            "0.05",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let results = lines(&out);
    assert_eq!(ids(&results), expected_ids(n));
    assert_eq!(outcomes(&results, "succeeded"), n);
    assert_eq!(results[0]["response"]["status_code"], 200);
    assert!(results[0]["response"]["body"]["choices"].is_array());
    let c = emu.counters();
    assert_eq!(c.batches_created, 8);
    assert_eq!(c.files_uploaded, 8);
    let err = stderr(&o);
    assert!(err.contains("3000 requests in"), "{err}");
    assert!(err.contains("succeeded      3000"), "{err}");
    assert!(err.contains("cost estimate  $"), "{err}");
    // No download was cut off (an empty chunked body on a GET used to make
    // the server drop the connection mid-download).
    assert!(!err.contains("cut off"), "{err}");
    // The key never appears: not in the output, not in the journal.
    assert!(!contains(&o.stdout, KEY) && !contains(&o.stderr, KEY));
    for f in files(&dir.path().join("results.jsonl.journal")) {
        let bytes = std::fs::read(&f).expect("read");
        assert!(!contains(&bytes, KEY), "the key is in {}", f.display());
    }
}

#[test]
fn bad_input_names_file_line_and_field_and_sends_nothing() {
    let emu = emulator("");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("bad.jsonl");
    std::fs::write(
        &input,
        concat!(
            "{\"custom_id\":\"a\",\"prompt\":\"x\"}\n",
            "{\"custom_id\":\"a\",\"prompt\":\"y\"}\n",
            "\n",
            "{\"custom_id\":\"b\",\"prompt\":\"x\",\"temperature\":\"warm\"}\n",
            "not json\n",
            "{\"custom_id\":\"c\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\"}\n",
        ),
    )
    .expect("write");
    let out = dir.path().join("r.jsonl");
    let o = run(
        &emu,
        &[
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--model",
            "m",
        ],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let err = stderr(&o);
    let name = input.to_str().unwrap();
    for expected in [
        format!("{name}:2: field `custom_id`: duplicate value \"a\", first used on line 1"),
        format!("{name}:4: field `temperature`: must be a number"),
        format!("{name}:5: invalid JSON"),
        format!("{name}:6: field `body`: is missing"),
        "the input has 4 invalid lines; nothing was sent".to_owned(),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(!err.contains("panicked"));
    assert_eq!(emu.counters().requests_total, 0);
    assert!(!out.exists());
    assert!(!dir.path().join("r.jsonl.journal").exists());
}

#[test]
fn usage_errors_exit_2_and_a_missing_key_is_one_sentence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = input(dir.path(), 3, |_| "");
    let o = Command::new(BIN)
        .args(["run", input.to_str().unwrap(), "-o"])
        .arg(dir.path().join("o.jsonl"))
        .args(["--model", "m"])
        .env_remove("OPENAI_API_KEY")
        .output()
        .expect("run");
    assert_eq!(code(&o), 2);
    assert_eq!(
        stderr(&o).lines().last(),
        Some(
            "error: OPENAI_API_KEY is not set: export your API key, or pass --emulator to run \
             against the built-in emulator"
        )
    );
    // Found before the input is sharded: nothing is left behind.
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(!dir.path().join("o.jsonl.journal").exists());
    let o = Command::new(BIN).args(["run"]).output().expect("run");
    assert_eq!(code(&o), 2);
}

#[test]
fn a_killed_run_resumes_without_creating_anything_twice() {
    let emu = emulator("");
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 2000;
    let input = input(dir.path(), n, |_| "");
    let out = dir.path().join("results.jsonl");
    let args = [
        "run",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        "gpt-4o-mini",
        "--max-requests-per-batch",
        "400",
        "--parallel",
        "2",
        "--poll-interval",
        "0.05",
    ];
    let mut child = command(&emu, &args).spawn().expect("spawn");
    let checkpoint = dir.path().join("results.jsonl.journal/round-0.job.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&checkpoint).unwrap_or_default();
        if text.contains("\"batch_id\":\"batch_") {
            break;
        }
        assert!(Instant::now() < deadline, "no batch was created in time");
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    assert!(!out.exists(), "the killed run did not finish");
    let (before, _) = server_objects(&emu);
    assert!(!before.is_empty() && before.len() < 5, "{before:?}");

    let o = run(&emu, &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming job"));
    let results = lines(&out);
    assert_eq!(ids(&results), expected_ids(n));
    assert_eq!(outcomes(&results, "succeeded"), n);
    let (batches, files) = server_objects(&emu);
    assert_eq!(batches.len(), 5, "{batches:?}");
    assert!(
        batches.iter().all(|(_, n)| *n == 1),
        "each shard's batch is created once: {batches:?}"
    );
    assert_eq!(files.len(), 5, "{files:?}");
    assert!(
        files.iter().all(|(_, n)| *n == 1),
        "each shard's file is uploaded once: {files:?}"
    );

    // Running it once more changes nothing and writes the same results.
    let first = std::fs::read(&out).expect("results");
    let o = run(&emu, &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).expect("results"), first);
    assert_eq!(server_objects(&emu), (batches, files));
}

#[test]
fn an_expired_batch_gives_partial_results_and_exit_1() {
    let emu = emulator("expire");
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 200;
    let input = input(dir.path(), n, |_| "");
    let out = dir.path().join("results.jsonl");
    let o = run(
        &emu,
        &[
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--model",
            "gpt-4o-mini",
            "--poll-interval",
            "0.05",
        ],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let results = lines(&out);
    assert_eq!(ids(&results), expected_ids(n));
    let done = outcomes(&results, "succeeded");
    let expired: Vec<&Value> = results
        .iter()
        .filter(|v| v["outcome"] == "not_processed")
        .collect();
    assert!(done > 0 && !expired.is_empty(), "{done} succeeded");
    assert_eq!(done + expired.len(), n);
    assert!(
        expired
            .iter()
            .all(|v| v["error"]["code"] == "batch_expired" && v.get("response").is_none())
    );
}

#[test]
fn retry_failed_resubmits_what_did_not_run_but_not_permanent_failures() {
    // The second batch created expires half way; the third does not.
    let emu = emulator("expire-every=2");
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 200;
    let input = input(dir.path(), n, |i| {
        if i == 3 { "[[emulator:fail=400]]" } else { "" }
    });
    let out = dir.path().join("results.jsonl");
    let o = run(
        &emu,
        &[
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--model",
            "gpt-4o-mini",
            "--max-requests-per-batch",
            "100",
            "--parallel",
            "1",
            "--poll-interval",
            "0.05",
            "--retry-failed",
            "1",
        ],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let results = lines(&out);
    assert_eq!(ids(&results), expected_ids(n));
    assert_eq!(outcomes(&results, "not_processed"), 0);
    assert_eq!(outcomes(&results, "failed"), 1);
    assert_eq!(outcomes(&results, "succeeded"), n - 1);
    let failed = &results[3];
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["response"]["status_code"], 400);
    assert_eq!(failed["error"]["type"], "invalid_request_error");
    // Round 1 ran: one more batch, holding only the expired requests.
    assert_eq!(emu.counters().batches_created, 3);
    let map = dir.path().join("results.jsonl.journal/rounds/1/map.bin");
    let retried = std::fs::metadata(&map).expect("round 1").len() / 8;
    assert!(retried > 0 && retried < 100, "{retried} retried");
    assert!(stderr(&o).contains("2 rounds"));
}

#[test]
fn submit_status_and_results_work_one_step_at_a_time() {
    let emu = emulator("");
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 300;
    let input = input(dir.path(), n, |_| "");
    let journal = dir.path().join("job");
    let j = journal.to_str().unwrap();
    let o = run(
        &emu,
        &[
            "submit",
            input.to_str().unwrap(),
            "--journal",
            j,
            "--model",
            "gpt-4o-mini",
            "--max-requests-per-batch",
            "100",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let batch_ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(batch_ids.len(), 3);
    assert!(batch_ids.iter().all(|b| b.starts_with("batch_")));

    let o = run(&emu, &["status", "--journal", j, "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let status: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(status.as_array().map(Vec::len), Some(3));
    assert_eq!(status[0]["batch"]["id"], batch_ids[0].as_str());

    let o = run(&emu, &["status", &batch_ids[1]]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&batch_ids[1]));

    let out = dir.path().join("results.jsonl");
    let o = run(
        &emu,
        &[
            "results",
            "--journal",
            j,
            "-o",
            out.to_str().unwrap(),
            "--poll-interval",
            "0.05",
            "--json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).expect("json summary");
    assert_eq!(summary["succeeded"], n);
    assert_eq!(ids(&lines(&out)), expected_ids(n));
    assert_eq!(emu.counters().batches_created, 3);

    let o = run(&emu, &["list", "--limit", "5", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let list: Value = serde_json::from_slice(&o.stdout).expect("json list");
    assert_eq!(list.as_array().map(Vec::len), Some(3));
}

#[test]
fn cancel_by_journal_stops_the_batches_and_results_collects_the_rest() {
    let emu = emulator("stall-validating-ms=30000");
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 100;
    let input = input(dir.path(), n, |_| "");
    let journal = dir.path().join("job");
    let j = journal.to_str().unwrap();
    let o = run(
        &emu,
        &[
            "submit",
            input.to_str().unwrap(),
            "--journal",
            j,
            "--model",
            "gpt-4o-mini",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(&emu, &["cancel", "--journal", j]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("cancel"));
    assert_eq!(emu.counters().batches_cancelled, 1);
    let out = dir.path().join("results.jsonl");
    let o = run(
        &emu,
        &[
            "results",
            "--journal",
            j,
            "-o",
            out.to_str().unwrap(),
            "--poll-interval",
            "0.05",
        ],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let results = lines(&out);
    assert_eq!(results.len(), n);
    assert!(
        results
            .iter()
            .all(|v| v["outcome"] == "not_processed" && v["error"]["code"] == "batch_cancelled")
    );
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_cleanly_and_the_same_command_resumes() {
    let emu = emulator("");
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 1200;
    let input = input(dir.path(), n, |_| "");
    let out = dir.path().join("results.jsonl");
    let args = [
        "run",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        "gpt-4o-mini",
        "--max-requests-per-batch",
        "400",
        "--parallel",
        "1",
        "--poll-interval",
        "0.05",
    ];
    let child = command(&emu, &args).spawn().expect("spawn");
    let checkpoint = dir.path().join("results.jsonl.journal/round-0.job.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&checkpoint)
        .unwrap_or_default()
        .contains("\"batch_id\":\"batch_")
    {
        assert!(Instant::now() < deadline, "no batch was created in time");
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let o = wait(child, Duration::from_secs(30));
    assert_eq!(code(&o), 130, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("run the same command again to resume")
            && err.contains("openai-batch cancel --journal"),
        "{err}"
    );
    assert!(!out.exists());
    let o = run(&emu, &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(ids(&lines(&out)), expected_ids(n));
    assert_eq!(emu.counters().batches_created, 3);
}

#[test]
fn the_emulator_flag_needs_no_key_and_a_changed_input_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = input(dir.path(), 20, |_| "");
    let out = dir.path().join("results.jsonl");
    let args = [
        "run",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        "gpt-4o-mini",
        "--emulator",
        "--emulator-speed",
        "1000",
        "--poll-interval",
        "0.05",
        "--max-requests-per-batch",
        "100000",
    ];
    let o = Command::new(BIN)
        .args(args)
        .env_remove("OPENAI_API_KEY")
        .output()
        .expect("run");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("built-in emulator"));
    // The emulator keeps the API's limits and says so.
    assert!(
        stderr(&o).contains("above the Batch API's limit of 50000"),
        "{}",
        stderr(&o)
    );
    assert_eq!(lines(&out).len(), 20);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .and_then(|mut f| f.write_all(b"{\"custom_id\":\"extra\",\"prompt\":\"x\"}\n"))
        .expect("append");
    let o = Command::new(BIN)
        .args(args)
        .env_remove("OPENAI_API_KEY")
        .output()
        .expect("run");
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("changed since the job"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_full_queue_is_waited_out_not_failed() {
    // The second batch created is refused with token_limit_exceeded.
    let emu = emulator("token-limit-every=2");
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 200;
    let input = input(dir.path(), n, |_| "");
    let out = dir.path().join("results.jsonl");
    let o = run(
        &emu,
        &[
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--model",
            "gpt-4o-mini",
            "--max-requests-per-batch",
            "100",
            "--poll-interval",
            "0.05",
            "--requeue-delay",
            "0.2",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the batch queue is full"),
        "{}",
        stderr(&o)
    );
    let results = lines(&out);
    assert_eq!(ids(&results), expected_ids(n));
    assert_eq!(outcomes(&results, "succeeded"), n);
    assert_eq!(emu.counters().batches_created, 3);
}

#[test]
fn a_refused_key_fails_the_run_with_one_sentence_and_no_key() {
    let emu = Emulator::builder()
        .speed(20.0)
        .api_key("sk-the-right-one")
        .start_blocking()
        .expect("emulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = input(dir.path(), 10, |_| "");
    let out = dir.path().join("results.jsonl");
    let o = run(
        &emu,
        &[
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--model",
            "m",
            "--poll-interval",
            "0.05",
        ],
    );
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let err = stderr(&o);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: authentication failed") && last.contains("run the same command"),
        "{err}"
    );
    assert!(!contains(&o.stderr, KEY) && !contains(&o.stdout, KEY));
    assert!(!out.exists());
    assert_eq!(emu.counters().files_uploaded, 0);
}

#[test]
fn every_fault_is_survived_with_nothing_lost_or_created_twice() {
    let emu = emulator(
        "retry-after=0,429-every=6,500-every=9,commit-then-500-every=2@batches.create,\
         commit-then-cut-every=3@files.create,cut-content-every=2,garbage-line,slow-body-ms=1",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 600;
    let input = input(dir.path(), n, |_| "");
    let out = dir.path().join("results.jsonl");
    let o = run(
        &emu,
        &[
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--model",
            "gpt-4o-mini",
            "--max-requests-per-batch",
            "200",
            "--poll-interval",
            "0.05",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let results = lines(&out);
    assert_eq!(ids(&results), expected_ids(n));
    assert_eq!(outcomes(&results, "succeeded"), n);
    let faults = emu.counters().faults_injected;
    assert!(faults.len() >= 4, "faults fired: {faults:?}");
    // The test's own look at what the server holds must not meet the faults.
    emu.set_faults(FaultConfig::none());
    let (batches, files) = server_objects(&emu);
    assert_eq!(batches.len(), 3, "{batches:?}");
    assert!(
        batches.iter().all(|(_, count)| *count == 1),
        "a shard's batch was created twice: {batches:?}"
    );
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(
        files.iter().all(|(_, count)| *count == 1),
        "a shard was uploaded twice: {files:?}"
    );
}

#[test]
fn a_batch_failing_validation_is_reported_line_by_line() {
    let emu = fast_emulator("", |b| b.max_requests_per_batch(100));
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 150;
    let input = input(dir.path(), n, |_| "");
    let out = dir.path().join("results.jsonl");
    let o = run(
        &emu,
        &[
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--model",
            "gpt-4o-mini",
            "--poll-interval",
            "0.05",
        ],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let results = lines(&out);
    assert_eq!(ids(&results), expected_ids(n));
    assert_eq!(outcomes(&results, "not_processed"), n);
    // The line the server named carries its error; the others say the batch failed.
    assert_eq!(
        results[100]["error"]["code"], "too_many_tasks",
        "{}",
        results[100]
    );
    assert!(
        results[100]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 101")
    );
    assert_eq!(results[0]["error"]["code"], "batch_failed");
    let err = stderr(&o);
    assert!(err.contains("too_many_tasks"), "{err}");
}

#[test]
fn a_journal_in_use_is_refused_and_a_lock_file_left_behind_is_not() {
    let emu = emulator("");
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 20;
    let input = input(dir.path(), n, |_| "");
    let out = dir.path().join("results.jsonl");
    let journal = dir.path().join("results.jsonl.journal");
    std::fs::create_dir_all(&journal).expect("journal");
    let args = [
        "run",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        "gpt-4o-mini",
        "--poll-interval",
        "0.05",
    ];
    // A live process (this test) holds the journal's OS lock: the run is refused.
    let lock = std::fs::File::create(journal.join("lock")).expect("lock");
    lock.try_lock().expect("take the lock");
    std::fs::write(journal.join("lock"), std::process::id().to_string()).expect("pid");
    let o = run(&emu, &args);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("is in use by process {}", std::process::id())),
        "{}",
        stderr(&o)
    );
    assert_eq!(emu.counters().files_uploaded, 0);
    // A lock file left behind (its owner gone, here: its lock released)
    // does not hold the journal.
    drop(lock);
    let o = run(&emu, &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(ids(&lines(&out)), expected_ids(n));
}

#[test]
fn the_built_in_emulator_keeps_the_real_request_limit() {
    // A shard limit above the API's 50,000 is not hidden by --emulator: the
    // batch fails validation at the first request over the limit.
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 50_001;
    let input = input(dir.path(), n, |_| "");
    let out = dir.path().join("results.jsonl");
    let o = Command::new(BIN)
        .args([
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--model",
            "gpt-4o-mini",
            "--emulator",
            "--emulator-speed",
            "1000",
            "--poll-interval",
            "0.05",
            "--max-requests-per-batch",
            "60000",
            "--quiet",
        ])
        .env_remove("OPENAI_API_KEY")
        .output()
        .expect("run");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let results = lines(&out);
    assert_eq!(results.len(), n);
    assert_eq!(outcomes(&results, "not_processed"), n);
    assert_eq!(
        results[n - 1]["error"]["code"],
        "too_many_tasks",
        "{}",
        results[n - 1]
    );
    assert_eq!(results[0]["error"]["code"], "batch_failed");
}
