//! The `openai-batch` binary keeps what the server sent and sends what it
//! was asked to: result lines carry the server's `id`, `batch_id` and error
//! objects; the batch flags (`--completion-window`, `--metadata`,
//! `--output-expires-after`, `--file-expires-after`) reach the server, and bad
//! ones are refused before anything is written or sent. Against the
//! emulator, started in-process on a loopback port; every wait is bounded.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use batch_blocking::{Client, ClientConfig};
use batch_core::api::{self, ApiConfig, FileObject, FilePurpose, ListFiles};
use batch_emulator::{Emulator, EmulatorHandle, FaultConfig, Timings};
use serde_json::Value;
use serde_json::value::RawValue;

const KEY: &str = "sk-secret-fidelity";

mod common;
use common::{BIN, code, stderr};

fn run(emu: &EmulatorHandle, args: &[&str]) -> Output {
    common::run(emu, args, KEY)
}

fn emulator() -> EmulatorHandle {
    Emulator::builder()
        .speed(20.0)
        .timings(Timings {
            validating: Duration::from_secs(2),
            per_request: Duration::from_millis(20),
            finalizing: Duration::from_secs(1),
            cancelling: Duration::from_secs(2),
            completion_window: Duration::from_secs(24 * 3600),
        })
        .faults(FaultConfig::none())
        .api_key(KEY)
        .start_blocking()
        .expect("emulator starts")
}

/// `n` short lines `r00000`, ...; line `fail` asks the emulator to fail with 400.
fn input(dir: &Path, n: usize, fail: usize) -> PathBuf {
    let path = dir.join("in.jsonl");
    let mut f = std::fs::File::create(&path).expect("input");
    for i in 0..n {
        let extra = if i == fail {
            " [[emulator:fail=400]]"
        } else {
            ""
        };
        writeln!(
            f,
            r#"{{"custom_id":"r{i:05}","prompt":"question {i}{extra}"}}"#
        )
        .expect("write");
    }
    path
}

fn client(emu: &EmulatorHandle) -> Client {
    Client::new(ClientConfig::new(
        ApiConfig::new(KEY).with_base_url(emu.base_url()),
    ))
    .expect("client")
}

fn files(c: &Client) -> Vec<FileObject> {
    let query = ListFiles {
        purpose: None,
        limit: Some(1000),
        order: None,
        after: None,
    };
    let (head, body) = c
        .execute(api::list_files(c.api(), &query).expect("request"))
        .expect("list files");
    api::parse_file_list(&head, &body).expect("files").data
}

fn content(c: &Client, file_id: &str) -> String {
    let request = api::file_content(c.api(), file_id, None).expect("request");
    let (_, body) = c.execute(request).expect("content");
    String::from_utf8(body.to_vec()).expect("utf-8")
}

/// The raw text of `key` in a JSON object's text.
fn raw_member(line: &str, pointer: &[&str]) -> String {
    let mut text = line.to_owned();
    for key in pointer {
        let map: std::collections::HashMap<String, Box<RawValue>> =
            serde_json::from_str(&text).expect("an object");
        text = map
            .get(*key)
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .get()
            .to_owned();
    }
    text
}

#[test]
fn results_keep_ids_batches_and_errors_and_batch_flags_reach_the_server() {
    let emu = emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 12;
    let failing = 5;
    let input = input(dir.path(), n, failing);
    let out = dir.path().join("results.jsonl");
    let args = [
        "run",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        "gpt-4o-mini",
        "--max-requests-per-batch",
        "5",
        "--poll-interval",
        "0.05",
        "--completion-window",
        "24h",
        "--metadata",
        "team=ml",
        "--metadata",
        "run=nightly=7",
        "--output-expires-after",
        "7200",
        "--file-expires-after",
        "86400",
    ];
    let o = run(&emu, &args);
    assert_eq!(code(&o), 1, "one request fails: {}", stderr(&o));

    // What the server holds: three batches with the flags' settings.
    let c = client(&emu);
    let batches = c.list(Some(100), None).expect("list").data;
    assert_eq!(batches.len(), 3);
    let batch_ids: BTreeSet<String> = batches.iter().map(|b| b.id.clone()).collect();
    for b in &batches {
        let m = b.metadata.as_ref().expect("metadata");
        assert_eq!(m.get("team").map(String::as_str), Some("ml"));
        assert_eq!(m.get("run").map(String::as_str), Some("nightly=7"));
        assert!(m.contains_key("openai_batch_job"), "{m:?}");
        assert_eq!(b.completion_window.as_str(), "24h");
    }
    let files = files(&c);
    let inputs: Vec<_> = files
        .iter()
        .filter(|f| f.purpose == FilePurpose::Batch)
        .collect();
    assert_eq!(inputs.len(), 3);
    for f in &inputs {
        assert_eq!(f.expires_at, Some(f.created_at + 86_400), "{f:?}");
    }
    let outputs: Vec<_> = files
        .iter()
        .filter(|f| f.purpose != FilePurpose::Batch)
        .collect();
    assert!(!outputs.is_empty());
    for f in &outputs {
        assert_eq!(f.expires_at, Some(f.created_at + 7200), "{f:?}");
    }

    // Every result line names its server line and batch.
    let text = std::fs::read_to_string(&out).expect("results");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), n);
    let mut seen_ids = BTreeSet::new();
    for line in &lines {
        let v: Value = serde_json::from_str(line).expect("json");
        let id = v["id"].as_str().expect("an id");
        assert!(id.starts_with("batch_req_"), "{line}");
        assert!(seen_ids.insert(id.to_owned()), "ids are distinct: {id}");
        assert!(batch_ids.contains(v["batch_id"].as_str().expect("a batch")));
    }

    // The failure's error object is the server's, byte for byte: the same
    // text as `response.body.error` in the batch's error file.
    let failed = lines[failing];
    let v: Value = serde_json::from_str(failed).expect("json");
    assert_eq!(v["outcome"], "failed");
    let batch = batches
        .iter()
        .find(|b| b.id == v["batch_id"].as_str().unwrap())
        .expect("its batch");
    let error_file = content(&c, batch.error_file_id.as_deref().expect("an error file"));
    let server_line = error_file
        .lines()
        .find(|l| l.contains(&format!("\"r{failing:05}\"")))
        .expect("the line in the error file");
    assert_eq!(raw_member(server_line, &["id"]), format!("{}", v["id"]));
    assert_eq!(
        raw_member(failed, &["error"]),
        raw_member(server_line, &["response", "body", "error"])
    );
    let error: Value = serde_json::from_str(&raw_member(failed, &["error"])).expect("object");
    assert!(error.get("type").is_some() && error.get("message").is_some());

    // The same command resumes; other batch flags are refused.
    let o = run(&emu, &args);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let mut other = args.to_vec();
    other[13] = "team=other";
    let o = run(&emu, &other);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--metadata \"team=ml\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_batch_flags_are_refused_before_anything_is_written_or_sent() {
    let emu = emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = input(dir.path(), 3, usize::MAX);
    let journal = dir.path().join("job");
    let cases: [(&[&str], &str); 5] = [
        (&["--metadata", "openai_batch_shard=9"], "--metadata"),
        (&["--metadata", "no-equals-sign"], "--metadata"),
        (&["--completion-window", "one day"], "--completion-window"),
        (&["--output-expires-after", "59"], "--output-expires-after"),
        (&["--file-expires-after", "9999999"], "--file-expires-after"),
    ];
    for (flags, named) in cases {
        let mut args = vec![
            "submit",
            input.to_str().unwrap(),
            "--journal",
            journal.to_str().unwrap(),
            "--model",
            "m",
        ];
        args.extend_from_slice(flags);
        let o = run(&emu, &args);
        assert_eq!(code(&o), 2, "{flags:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(named), "{flags:?}: {}", stderr(&o));
        assert!(!journal.exists(), "{flags:?} left a journal");
    }
    let counters = emu.counters();
    assert_eq!((counters.files_uploaded, counters.batches_created), (0, 0));
}

#[test]
fn submit_names_the_journal_to_follow_up_with() {
    let emu = emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = input(dir.path(), 4, usize::MAX);
    let journal = dir.path().join("my job");
    let j = journal.to_str().unwrap();
    let o = run(
        &emu,
        &[
            "submit",
            input.to_str().unwrap(),
            "--journal",
            j,
            "--model",
            "m",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("submitted 1 batch;"), "{err}");
    assert!(
        err.contains(&format!("`openai-batch status --journal {j}`")),
        "{err}"
    );
    assert!(
        err.contains(&format!("`openai-batch results --journal {j} -o")),
        "{err}"
    );
}

#[test]
fn help_shows_the_emulator_and_batch_flags() {
    let o = Command::new(BIN)
        .args(["run", "--help"])
        .output()
        .expect("help");
    assert_eq!(code(&o), 0);
    let help = String::from_utf8_lossy(&o.stdout);
    // The example the help gives is a spec the emulator takes.
    assert!(help.contains("`429-every=7,expire`"), "{help}");
    assert!(FaultConfig::parse("429-every=7,expire").is_ok());
    for flag in [
        "--emulator-speed",
        "--emulator-faults",
        "--completion-window",
        "--metadata",
        "--output-expires-after",
        "--file-expires-after",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
