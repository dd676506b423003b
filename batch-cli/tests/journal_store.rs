//! The journal as a job store: the job is a stored job with its shard files
//! beside it, the provider settings are recorded (never the key), a job
//! continues from the journal alone (no input file, no provider flags), and
//! a journal written by the earlier format (`plan.json`) still resumes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use batch_emulator::{Emulator, EmulatorHandle, ProviderMode, Timings};
use serde_json::Value;

mod common;
use common::{code, text, wait};

const KEY: &str = "journal-store-secret-key-0123456789";

/// The binary with a clean provider environment plus `env`, output captured.
fn cmd(args: &[&str], env: &[(&str, &str)]) -> Command {
    common::with_env(args, env)
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    wait(
        cmd(args, env).spawn().expect("spawn"),
        Duration::from_secs(120),
    )
}

/// An input of `n` short lines.
fn input(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("input.jsonl");
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "{{\"custom_id\":\"req-{i}\",\"prompt\":\"question {i}\"}}\n"
        ));
    }
    std::fs::write(&path, s).unwrap();
    path
}

fn ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["custom_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn expected_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("req-{i}")).collect()
}

/// The stored job of round 0.
fn stored_job(journal: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(journal.join("round-0.job.json")).unwrap()).unwrap()
}

/// Waits until the journal's job names a batch (something to resume).
fn wait_for_a_batch(journal: &Path, child: &mut std::process::Child) {
    let doc = journal.join("round-0.job.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&doc)
        .unwrap_or_default()
        .contains("\"batch_id\":\"batch_")
    {
        assert!(Instant::now() < deadline, "no batch was created in time");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_job_is_a_stored_job_with_its_shards_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let n = 250;
    let input = input(dir.path(), n);
    let out = dir.path().join("out.jsonl");
    let o = run(
        &[
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--model",
            "gpt-4o-mini",
            "--max-requests-per-batch",
            "100",
            "--emulator",
            "--emulator-speed",
            "20000",
            "--poll-interval",
            "0.05",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let journal = dir.path().join("out.jsonl.journal");
    for gone in ["plan.json", "checkpoint.json"] {
        assert!(!journal.join(gone).exists(), "{gone}");
    }
    let job = stored_job(&journal);
    assert_eq!(job["version"], 1);
    assert_eq!(job["source"]["kind"], "shard_files");
    let shards = job["source"]["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3);
    let mut total = 0;
    for s in shards {
        let file = journal.join(s["file"].as_str().unwrap());
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(bytes.len() as u64, s["bytes"].as_u64().unwrap());
        total += s["requests"].as_u64().unwrap();
    }
    assert_eq!(total, n as u64);
    // The library's store reads the same document.
    let store = batch_store::FileStore::open(&journal).unwrap();
    use batch_store::JobStore;
    assert_eq!(store.list().unwrap(), ["round-0"]);
    let stored = store.load("round-0").unwrap().unwrap();
    assert_eq!(stored.job_id, job["job_id"].as_str().unwrap());
    assert!(stored.checkpoint.is_some());
    let provider = stored.provider.expect("the provider is recorded");
    assert_eq!(provider.preset, "openai");
    assert_eq!(provider.auth_header, None);
}

#[test]
fn results_need_neither_the_input_file_nor_the_provider_flags_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let n = 600;
    let input = input(dir.path(), n);
    let out = dir.path().join("out.jsonl");
    let journal = dir.path().join("out.jsonl.journal");
    let mut child = cmd(
        &[
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--model",
            "gpt-4o-mini",
            "--max-requests-per-batch",
            "200",
            "--parallel",
            "1",
            "--emulator",
            "--emulator-speed",
            "200",
            "--poll-interval",
            "0.05",
            "--provider",
            "azure",
            "--api-version",
            "2024-10-21",
        ],
        &[],
    )
    .spawn()
    .unwrap();
    wait_for_a_batch(&journal, &mut child);
    child.kill().expect("kill -9");
    let _ = child.wait();
    assert!(!out.exists());

    // The provider is recorded without a key.
    let job = stored_job(&journal);
    assert_eq!(job["provider"]["preset"], "azure");
    assert_eq!(job["provider"]["api_version"], "2024-10-21");
    assert_eq!(job["provider"]["auth_header"], "api-key");
    let doc = std::fs::read_to_string(journal.join("round-0.job.json")).unwrap();
    assert!(!doc.contains("sk-emulator"), "{doc}");

    // A flag that says otherwise than the journal is refused.
    for flags in [
        &["--provider", "openai"][..],
        &["--api-version", "2025-01-01-preview"],
    ] {
        let mut args = vec![
            "results",
            "--journal",
            journal.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        let o = run(&args, &[]);
        assert_eq!(code(&o), 2, "{flags:?}: {}", text(&o));
        assert!(
            text(&o).contains("differs from the job in")
                && (text(&o).contains("--provider azure")
                    || text(&o).contains("--api-version 2024-10-21")),
            "{}",
            text(&o)
        );
        assert!(!out.exists());
    }

    // The input is gone; the journal alone finishes the job, as Azure's
    // dated API (the emulator refuses requests without api-version).
    std::fs::remove_file(&input).unwrap();
    let o = run(
        &[
            "results",
            "--journal",
            journal.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--poll-interval",
            "0.05",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("as azure"), "{}", text(&o));
    assert_eq!(ids(&out), expected_ids(n));

    // `status` needs no flags either.
    let o = run(&["status", "--journal", journal.to_str().unwrap()], &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 3);
}

#[test]
fn results_after_the_input_is_deleted_write_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    let n = 120;
    let input = input(dir.path(), n);
    let first = dir.path().join("first.jsonl");
    let o = run(
        &[
            "run",
            input.to_str().unwrap(),
            "-o",
            first.to_str().unwrap(),
            "--model",
            "gpt-4o-mini",
            "--max-requests-per-batch",
            "50",
            "--emulator",
            "--emulator-speed",
            "20000",
            "--poll-interval",
            "0.05",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    std::fs::remove_file(&input).unwrap();
    let again = dir.path().join("again.jsonl");
    let journal = dir.path().join("first.jsonl.journal");
    let o = run(
        &[
            "results",
            "--journal",
            journal.to_str().unwrap(),
            "-o",
            again.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&first).unwrap()
    );
    // An edited shard file is refused, naming the file.
    let shard = journal.join("shards/shard-00001.jsonl");
    let text_before = std::fs::read_to_string(&shard).unwrap();
    std::fs::write(&shard, text_before.replace("req-51", "req-x1")).unwrap();
    let o = run(
        &[
            "results",
            "--journal",
            journal.to_str().unwrap(),
            "-o",
            again.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code(&o), 3, "{}", text(&o));
    assert!(
        text(&o).contains("shard-00001.jsonl changed after it was planned"),
        "{}",
        text(&o)
    );
}

fn azure_emulator() -> EmulatorHandle {
    Emulator::builder()
        .provider(ProviderMode::Azure)
        .api_key(KEY)
        .speed(200.0)
        .timings(Timings {
            validating: Duration::from_secs(2),
            per_request: Duration::from_millis(20),
            finalizing: Duration::from_secs(1),
            cancelling: Duration::from_secs(2),
            completion_window: Duration::from_secs(24 * 3600),
        })
        .start_blocking()
        .expect("emulator starts")
}

#[test]
fn a_credential_header_is_recorded_by_name_and_asked_for_again() {
    let emu = azure_emulator();
    let endpoint = format!("http://{}", emu.addr());
    let env = [
        ("AZURE_OPENAI_API_KEY", KEY),
        ("AZURE_OPENAI_ENDPOINT", endpoint.as_str()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path(), 30);
    let journal = dir.path().join("j");
    let o = run(
        &[
            "submit",
            input.to_str().unwrap(),
            "--journal",
            journal.to_str().unwrap(),
            "--model",
            "gpt-4o-mini",
            "--provider",
            "azure",
            "--api-version",
            "2024-10-21",
            "--header",
            "X-Gateway-Token:gateway-secret-value",
            "--header",
            "X-Team:research",
            "--query",
            "tenant=blue",
        ],
        &env,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let doc = std::fs::read_to_string(journal.join("round-0.job.json")).unwrap();
    assert!(!doc.contains("gateway-secret-value") && !doc.contains(KEY));
    let job = stored_job(&journal);
    assert_eq!(
        job["provider"]["headers"],
        serde_json::json!([["X-Gateway-Token", null], ["X-Team", "research"]])
    );
    assert_eq!(
        job["provider"]["query"],
        serde_json::json!([["tenant", "blue"]])
    );
    assert_eq!(job["provider"]["base_url"], format!("{endpoint}/openai"));

    let out = dir.path().join("out.jsonl");
    let results = |extra: &[&str]| {
        let mut args = vec![
            "results",
            "--journal",
            journal.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--poll-interval",
            "0.05",
        ];
        args.extend_from_slice(extra);
        // The key only: the endpoint is the journal's.
        run(&args, &[("AZURE_OPENAI_API_KEY", KEY)])
    };
    let o = results(&[]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        text(&o).contains("pass --header X-Gateway-Token:VALUE again"),
        "{}",
        text(&o)
    );
    let o = results(&["--query", "tenant=red"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("--query tenant=blue"), "{}", text(&o));
    let o = results(&["--header", "X-Gateway-Token:gateway-secret-value"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(ids(&out), expected_ids(30));
    assert!(!text(&o).contains("gateway-secret-value"));
    let counters = emu.counters();
    assert_eq!(counters.responses.get("401"), None, "{counters:?}");
    assert_eq!(counters.responses.get("404"), None, "{counters:?}");
}

/// Copies the fixture journal `name` into `to`.
fn copy_fixture(name: &str, to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let mut stack = vec![(from, to.to_path_buf())];
    while let Some((src, dst)) = stack.pop() {
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(&src).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push((e.path(), dst.join(e.file_name())));
            } else {
                std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
            }
        }
    }
}

#[test]
fn a_journal_of_the_earlier_format_is_converted_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    copy_fixture("journal-v1-finished", &journal);
    assert!(journal.join("plan.json").exists());
    // `status` reads it as it is.
    let o = run(&["status", "--journal", journal.to_str().unwrap()], &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(journal.join("plan.json").exists());

    let out = dir.path().join("out.jsonl");
    let o = run(
        &[
            "results",
            "--journal",
            journal.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let want = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/journal-v1-finished.results.jsonl");
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(want).unwrap());
    // Converted: the old files are gone, the stored job names the shards.
    assert!(!journal.join("plan.json").exists());
    assert!(!journal.join("checkpoint.json").exists());
    let job = stored_job(&journal);
    assert_eq!(job["source"]["shards"].as_array().unwrap().len(), 3);
    // And it goes on working as a journal of this format.
    let again = dir.path().join("again.jsonl");
    let o = run(
        &[
            "results",
            "--journal",
            journal.to_str().unwrap(),
            "-o",
            again.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&out).unwrap());
}

#[test]
fn a_killed_journal_of_the_earlier_format_resumes_with_every_request_once() {
    // Made by the earlier format's `run --parallel 1`, killed (-9) once
    // the first of its three batches was created.
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    copy_fixture("journal-v1-killed", &journal);
    let out = dir.path().join("out.jsonl");
    let o = run(
        &[
            "results",
            "--journal",
            journal.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--poll-interval",
            "0.05",
        ],
        &[],
    );
    // The first batch may have finished or expired on the emulator's clock
    // since the fixture was made; either way each request comes out once.
    assert!(matches!(code(&o), 0 | 1), "{}", text(&o));
    assert!(text(&o).contains("resuming job ob-"), "{}", text(&o));
    assert_eq!(ids(&out), expected_ids(7));
    let job = stored_job(&journal);
    let shards = job["checkpoint"]["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3);
    assert!(
        shards.iter().all(|s| s["batch_id"].is_string()),
        "{shards:?}"
    );
}

#[test]
fn cancel_and_results_take_the_recorded_provider_and_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path(), 40);
    let journal = dir.path().join("j");
    let o = run(
        &[
            "submit",
            input.to_str().unwrap(),
            "--journal",
            journal.to_str().unwrap(),
            "--model",
            "llama-3.1-8b-instant",
            "--emulator",
            "--emulator-speed",
            "5",
            "--provider",
            "groq",
            "--completion-window",
            "7d",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    // OpenAI takes only 24h: these finish only as the recorded groq.
    let o = run(&["cancel", "--journal", journal.to_str().unwrap()], &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("as groq"), "{}", text(&o));
    let out = dir.path().join("out.jsonl");
    let o = run(
        &[
            "results",
            "--journal",
            journal.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--poll-interval",
            "0.05",
        ],
        &[],
    );
    assert!(matches!(code(&o), 0 | 1), "{}", text(&o));
    assert_eq!(ids(&out), expected_ids(40));
}
