//! The `--provider` flags end to end: the binary against the emulator
//! answering as Azure OpenAI or a Groq-like service, with each ecosystem's
//! environment variables. The emulator refuses requests without the
//! provider's shape (Azure's `api-key` header, `api-version` on the dated
//! paths), so a finished run proves they had it.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use batch_emulator::{Emulator, EmulatorHandle, ProviderMode, Timings};
use serde_json::Value;

const KEY: &str = "provider-secret-key-0123456789";
const BIN: &str = env!("CARGO_BIN_EXE_openai-batch");

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
    let mut c = Command::new(BIN);
    c.args(args).stdin(Stdio::null());
    if args.first() == Some(&"run") {
        c.args(["--poll-interval", "0.05"]);
    }
    for var in [
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_ENDPOINT",
        "OPENAI_API_VERSION",
        "GROQ_API_KEY",
        "GROQ_BASE_URL",
    ] {
        c.env_remove(var);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
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
