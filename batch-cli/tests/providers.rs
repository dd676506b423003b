//! The `--provider` flags end to end: the binary against the emulator
//! answering as Azure OpenAI or a Groq-like service, with each ecosystem's
//! environment variables. The emulator refuses requests without the
//! provider's shape (Azure's `api-key` header, `api-version` on the dated
//! paths), so a finished run proves they had it.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use batch_blocking::{Client, ClientConfig};
use batch_core::api::{self, ApiConfig, FilePurpose, ListFiles};
use batch_emulator::{Emulator, EmulatorHandle, ProviderMode, Timings};
use serde_json::Value;

mod common;
use common::text;

const KEY: &str = "provider-secret-key-0123456789";

fn emulator(mode: ProviderMode) -> EmulatorHandle {
    Emulator::builder()
        .provider(mode)
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

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/requests.jsonl")
}

/// The binary with a clean provider environment plus `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(args, env).output().expect("run")
}

/// As [`run`], not started.
fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = common::with_env(args, env);
    if args.first() == Some(&"run") {
        c.args(["--poll-interval", "0.05"]);
    }
    c
}

fn succeeded(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .expect("results")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .filter(|v| v["outcome"] == "succeeded")
        .count()
}

#[test]
fn the_example_runs_on_the_built_in_emulator_as_each_provider() {
    let n = std::fs::read_to_string(example()).unwrap().lines().count();
    let input = example();
    for args in [
        &["--provider", "azure"][..],
        &["--provider", "azure", "--api-version", "2024-10-21"],
        &["--provider", "groq", "--completion-window", "7d"],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let mut all = vec![
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--emulator",
            "--emulator-speed",
            "20000",
        ];
        all.extend_from_slice(args);
        let o = run(&all, &[]);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        assert_eq!(succeeded(&out), n, "{args:?}");
    }
}

#[test]
fn azure_reads_its_environment_and_the_key_stays_out_of_output() {
    let emu = emulator(ProviderMode::Azure);
    let endpoint = format!("http://{}", emu.addr());
    for version in [None, Some("2024-10-21")] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let mut env = vec![
            ("AZURE_OPENAI_API_KEY", KEY),
            ("AZURE_OPENAI_ENDPOINT", endpoint.as_str()),
        ];
        if let Some(v) = version {
            env.push(("OPENAI_API_VERSION", v));
        }
        let o = run(
            &[
                "run",
                example().to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--provider",
                "azure",
            ],
            &env,
        );
        assert_eq!(o.status.code(), Some(0), "{version:?}: {}", text(&o));
        assert!(!text(&o).contains(KEY), "{}", text(&o));
        assert_eq!(succeeded(&out), 32);
    }
    let counters = emu.counters();
    assert_eq!(counters.responses.get("401"), None, "{counters:?}");
    assert_eq!(counters.responses.get("404"), None, "{counters:?}");

    // Without the endpoint the run is refused before anything is sent.
    let o = run(
        &["list", "--provider", "azure"],
        &[("AZURE_OPENAI_API_KEY", KEY)],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("AZURE_OPENAI_ENDPOINT is not set"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains(KEY));
}

#[test]
fn groq_takes_a_longer_window_and_openai_refuses_it() {
    let emu = emulator(ProviderMode::Groq);
    let base = emu.base_url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let o = run(
        &[
            "run",
            example().to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--provider",
            "groq",
            "--completion-window",
            "7d",
        ],
        &[("GROQ_API_KEY", KEY), ("GROQ_BASE_URL", base.as_str())],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(succeeded(&out), 32);
    assert!(!text(&o).contains(KEY));

    let out = dir.path().join("openai.jsonl");
    let o = run(
        &[
            "run",
            example().to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--emulator",
            "--completion-window",
            "7d",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("\"7d\" is not accepted by openai (allowed: 24h)"),
        "{}",
        text(&o)
    );
    // Refused before anything is planned: no journal is left behind.
    assert!(!dir.path().join("openai.jsonl.journal").exists());
}

#[test]
fn bad_provider_flags_are_usage_errors_that_do_not_echo_values() {
    for (flags, needle) in [
        (
            &["--header", "X-Api-Key hidden-value"][..],
            "expected NAME:VALUE",
        ),
        (&["--query", "novalue"], "expected NAME=VALUE"),
        (
            &["--api-version", "2024-10-21"],
            "--api-version 2024-10-21 is for",
        ),
    ] {
        let mut args = vec!["list"];
        args.extend_from_slice(flags);
        let o = run(&args, &[("OPENAI_API_KEY", KEY)]);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {}", text(&o));
        assert!(text(&o).contains(needle), "{flags:?}: {}", text(&o));
        assert!(!text(&o).contains("hidden-value"), "{}", text(&o));
    }
}

/// An emulator in `mode` whose batches validate for 3 real seconds: a run
/// is still waiting for its batch when it is killed.
fn slow_emulator(mode: ProviderMode) -> EmulatorHandle {
    Emulator::builder()
        .provider(mode)
        .api_key(KEY)
        .speed(1.0)
        .timings(Timings {
            validating: Duration::from_secs(3),
            per_request: Duration::from_millis(10),
            finalizing: Duration::from_millis(500),
            cancelling: Duration::from_secs(1),
            completion_window: Duration::from_secs(24 * 3600),
        })
        .start_blocking()
        .expect("emulator starts")
}

/// How many batches and uploaded files the server holds, by shard and by
/// file name (read by listing: a handler cut short by the killed client
/// commits its object but may skip its counter).
fn server_objects(api: ApiConfig) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let client = Client::new(ClientConfig::new(api)).expect("client");
    let mut batches = BTreeMap::new();
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
    let mut files = BTreeMap::new();
    for f in api::parse_file_list(&head, &body).expect("files").data {
        *files.entry(f.filename).or_default() += 1;
    }
    (batches, files)
}

/// `kill -9` between submit and results, then the same command again: per
/// provider (Azure's v1 and dated layouts, Groq with a 48h window), the
/// resumed run finds the batch it made, creates and uploads nothing twice,
/// and writes one result per request. (The journal does not record the
/// provider yet: the resumed run gets the same flags.)
#[test]
fn a_killed_run_resumes_on_every_provider_without_creating_twice() {
    let cases: [(&str, ProviderMode, &[&str]); 3] = [
        ("azure", ProviderMode::Azure, &["--provider", "azure"]),
        (
            "azure-dated",
            ProviderMode::Azure,
            &["--provider", "azure", "--api-version", "2024-10-21"],
        ),
        (
            "groq",
            ProviderMode::Groq,
            &["--provider", "groq", "--completion-window", "48h"],
        ),
    ];
    std::thread::scope(|s| {
        let runs: Vec<_> = cases
            .iter()
            .map(|(name, mode, flags)| s.spawn(move || killed_and_resumed(name, *mode, flags)))
            .collect();
        for h in runs {
            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        }
    });
}

fn killed_and_resumed(name: &str, mode: ProviderMode, flags: &[&str]) {
    let emu = slow_emulator(mode);
    let origin = format!("http://{}", emu.addr());
    let base = emu.base_url();
    let (env, listing): (Vec<(&str, &str)>, ApiConfig) = match mode {
        ProviderMode::Azure => (
            vec![
                ("AZURE_OPENAI_API_KEY", KEY),
                ("AZURE_OPENAI_ENDPOINT", origin.as_str()),
            ],
            ApiConfig::azure(&origin, KEY),
        ),
        _ => (
            vec![("GROQ_API_KEY", KEY), ("GROQ_BASE_URL", base.as_str())],
            ApiConfig::groq(KEY).with_base_url(base.clone()),
        ),
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let input = example();
    let mut args = vec!["run", input.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend_from_slice(flags);

    let mut child = command(&args, &env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let checkpoint = dir.path().join("out.jsonl.journal/round-0.job.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&checkpoint).unwrap_or_default();
        if text.contains("\"batch_id\":\"batch_") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: no batch was created in time"
        );
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "{name}: the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    assert!(!out.exists(), "{name}: the killed run did not finish");
    let (before, _) = server_objects(listing.clone());
    assert_eq!(before.len(), 1, "{name}: {before:?}");

    let o = command(&args, &env).output().expect("resume");
    assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o));
    assert!(text(&o).contains("resuming job"), "{name}: {}", text(&o));
    assert!(!text(&o).contains(KEY), "{name}: {}", text(&o));
    let results: Vec<Value> = std::fs::read_to_string(&out)
        .expect("results")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let mut ids: Vec<&str> = results
        .iter()
        .map(|v| v["custom_id"].as_str().expect("custom_id"))
        .collect();
    ids.sort_unstable();
    let expected: Vec<String> = (1..=32).map(|i| format!("req-{i:03}")).collect();
    assert_eq!(ids, expected, "{name}: one result per request");
    assert_eq!(succeeded(&out), 32, "{name}");
    let (batches, files) = server_objects(listing);
    assert_eq!(batches.len(), 1, "{name}: {batches:?}");
    assert!(
        batches.values().all(|n| *n == 1),
        "{name}: created twice: {batches:?}"
    );
    assert_eq!(files.len(), 1, "{name}: {files:?}");
    assert!(
        files.values().all(|n| *n == 1),
        "{name}: uploaded twice: {files:?}"
    );
    let counters = emu.counters();
    assert!(counters.batches_created <= 1, "{name}: {counters:?}");
}

/// `--azure-ad-token-cmd` and `AZURE_OPENAI_AD_TOKEN`: Microsoft Entra ID
/// tokens as Bearer, against the emulator's Azure mode with Entra tokens
/// on. The token stays out of every output; a failing command is a clear
/// error that names it and says why.
#[test]
fn azure_takes_entra_tokens_from_a_command_or_the_environment() {
    let emu = Emulator::builder()
        .provider(ProviderMode::Azure)
        .api_key(KEY)
        .entra_tokens(Duration::from_secs(24 * 3600))
        .speed(200.0)
        .timings(Timings {
            validating: Duration::from_secs(2),
            per_request: Duration::from_millis(20),
            finalizing: Duration::from_secs(1),
            cancelling: Duration::from_secs(2),
            completion_window: Duration::from_secs(24 * 3600),
        })
        .start_blocking()
        .expect("emulator starts");
    let endpoint = format!("http://{}", emu.addr());
    let token = emu.entra_issuer().issue().token;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token.txt");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let cat = format!("cat '{}'", token_file.display());

    /// A case: its name, its flags, its environment.
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let cases: [Case<'_>; 2] = [
        (
            "command",
            vec!["--azure-ad-token-cmd", cat.as_str()],
            vec![],
        ),
        (
            "environment",
            vec![],
            vec![("AZURE_OPENAI_AD_TOKEN", token.as_str())],
        ),
    ];
    for (name, flags, mut env) in cases {
        emu.reset_counters();
        let out = dir.path().join(format!("{name}.jsonl"));
        let input = example();
        let mut args = vec![
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--provider",
            "azure",
        ];
        args.extend(flags);
        // No key: the token alone must do.
        env.push(("AZURE_OPENAI_ENDPOINT", endpoint.as_str()));
        let o = command(&args, &env).output().expect("run");
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o));
        assert_eq!(succeeded(&out), 32, "{name}");
        assert!(!text(&o).contains(&token), "{name}: {}", text(&o));
        // Nor is it in the journal or the results.
        let journal = dir.path().join(format!("{name}.jsonl.journal"));
        let mut stored = vec![out.clone()];
        let mut folders = vec![journal];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                } else {
                    stored.push(path);
                }
            }
        }
        assert!(stored.len() > 2, "{stored:?}");
        for path in stored {
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("emu-entra."),
                "{name}: a token in {}",
                path.display()
            );
        }
        let counters = emu.counters();
        assert_eq!(counters.responses.get("401"), None, "{name}: {counters:?}");
    }

    // A command that fails: the job stops with its reason, before anything
    // is uploaded, and exits non-zero.
    emu.reset_counters();
    let out = dir.path().join("failed.jsonl");
    let o = command(
        &[
            "run",
            example().to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--provider",
            "azure",
            "--azure-ad-token-cmd",
            "echo 'please run az login' >&2; exit 1",
        ],
        &[("AZURE_OPENAI_ENDPOINT", endpoint.as_str())],
    )
    .output()
    .expect("run");
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("--azure-ad-token-cmd exited with status 1: please run az login"),
        "{}",
        text(&o)
    );
    assert_eq!(emu.counters().files_uploaded, 0);
}
