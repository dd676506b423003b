//! `--provider anthropic` end to end: the binary runs Message Batches on the
//! emulator's Anthropic mode (built in, or a separate one reached through
//! `ANTHROPIC_BASE_URL` and `ANTHROPIC_API_KEY`), writes the same result
//! lines as an OpenAI run, refuses short lines without a token limit naming
//! `--max-tokens`, and survives `kill -9` between submit and results without
//! a second create. The emulator refuses requests without `x-api-key` and a
//! known `anthropic-version`, so a finished run proves they were sent.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use batch_emulator::{Emulator, EmulatorHandle, ProviderMode, Timings};
use serde_json::Value;

mod common;
use common::{BIN, code, stderr, text, wait};

const KEY: &str = "anthropic-cli-secret-key-0123456789";

/// The binary with a clean provider environment plus `env`, output captured.
fn cmd(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = common::with_env(args, env);
    if args.first() == Some(&"run") || args.first() == Some(&"results") {
        c.args(["--poll-interval", "0.05"]);
    }
    c
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    wait(
        cmd(args, env).spawn().expect("spawn"),
        Duration::from_secs(180),
    )
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("results")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// An input of `n` short lines without a token limit.
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
    lines(path)
        .iter()
        .map(|v| v["custom_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_example_runs_on_the_built_in_emulator_with_openais_line_shape() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("claude.jsonl");
    let o = run(
        &[
            "run",
            example("requests-anthropic.jsonl").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--emulator",
            "--provider",
            "anthropic",
            "--max-tokens",
            "200",
            "--system",
            "Be brief.",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("as anthropic"), "{}", text(&o));
    let got = lines(&out);
    let want: Vec<String> = (1..=6).map(|i| format!("claude-{i:03}")).collect();
    let got_ids: Vec<String> = got
        .iter()
        .map(|v| v["custom_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got_ids, want);
    for v in &got {
        assert_eq!(v["outcome"], "succeeded", "{v}");
        assert!(
            v["batch_id"].as_str().unwrap().starts_with("msgbatch_"),
            "{v}"
        );
        assert_eq!(v["message"]["type"], "message", "{v}");
        assert!(v["message"]["usage"]["input_tokens"].is_u64(), "{v}");
        let text = v["message"]["content"][0]["text"].as_str().unwrap();
        assert!(text.starts_with("Echo: "), "{v}");
    }
    assert!(text(&o).contains("at batch prices"), "{}", text(&o));

    // The OpenAI run of the OpenAI example: the same members but for the
    // provider's own answer (`response` there, `message` here).
    let openai = dir.path().join("openai.jsonl");
    let o = run(
        &[
            "run",
            example("requests.jsonl").to_str().unwrap(),
            "-o",
            openai.to_str().unwrap(),
            "--emulator",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let first = &lines(&openai)[0];
    let mut theirs = keys(first);
    assert!(theirs.remove("response") && theirs.remove("id"), "{first}");
    let mut ours = keys(&got[0]);
    assert!(ours.remove("message"), "{}", got[0]);
    assert_eq!(ours, theirs);
}

/// The shard lines a journal sent, by `custom_id`: each one's `params`.
fn sent_params(journal: &Path) -> std::collections::BTreeMap<String, Value> {
    let mut sent = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(journal.join("shards")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line.trim_start_matches(',')).unwrap();
            sent.insert(
                v["custom_id"].as_str().unwrap().to_owned(),
                v["params"].clone(),
            );
        }
    }
    sent
}

#[test]
fn the_done_when_command_runs_the_openai_example_on_the_emulator() {
    // Exactly `openai-batch run examples/requests.jsonl -o out.jsonl
    // --emulator --provider anthropic`, from a folder holding the example.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("examples")).unwrap();
    std::fs::copy(
        example("requests.jsonl"),
        dir.path().join("examples/requests.jsonl"),
    )
    .unwrap();
    let mut c = Command::new(BIN);
    c.args([
        "run",
        "examples/requests.jsonl",
        "-o",
        "out.jsonl",
        "--emulator",
        "--provider",
        "anthropic",
    ])
    .current_dir(dir.path())
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for var in ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"] {
        c.env_remove(var);
    }
    let o = wait(c.spawn().unwrap(), Duration::from_secs(180));
    assert_eq!(code(&o), 0, "{}", text(&o));
    let err = stderr(&o);
    assert!(
        err.contains("26 short lines set no max_tokens: sending max_tokens 1024"),
        "{err}"
    );
    assert!(err.contains("accepts any model name"), "{err}");
    // OpenAI's price is not Anthropic's: no estimate for an OpenAI model.
    assert!(
        err.contains("unknown (no Anthropic price known for gpt-4o-mini)"),
        "{err}"
    );
    let out = dir.path().join("out.jsonl");
    let got = lines(&out);
    assert_eq!(got.len(), 32);
    let want: Vec<String> = (1..=32).map(|i| format!("req-{i:03}")).collect();
    assert_eq!(ids(&out), want);
    for v in &got {
        assert_eq!(v["outcome"], "succeeded", "{v}");
        assert_eq!(v["message"]["type"], "message", "{v}");
        assert_eq!(v["message"]["model"], "gpt-4o-mini", "{v}");
    }
    // `list --journal` reads the batches of the job's own emulator (a new
    // one starts empty); `status` says nothing about models.
    let journal = dir.path().join("out.jsonl.journal");
    let o = run(&["list", "--journal", journal.to_str().unwrap()], &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let listed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        listed.starts_with(got[0]["batch_id"].as_str().unwrap()),
        "{listed}"
    );
    let o = run(&["status", "--journal", journal.to_str().unwrap()], &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(!stderr(&o).contains("any model"), "{}", text(&o));
    let o = run(&["list", "--emulator", "--provider", "anthropic"], &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(stderr(&o).contains("list --journal DIR"), "{}", text(&o));

    // Every fifth line sets its own token limit; the others got the default.
    let sent = sent_params(&dir.path().join("out.jsonl.journal"));
    assert_eq!(sent.len(), 32);
    for (i, id) in want.iter().enumerate() {
        let limit = if (i + 1) % 5 == 0 { 60 } else { 1024 };
        assert_eq!(sent[id]["max_tokens"], limit, "{id}");
    }

    // The same members as an OpenAI run's lines, `message` for `response`
    // (and no `id`: Anthropic's result lines have none).
    let openai = dir.path().join("openai.jsonl");
    let o = run(
        &[
            "run",
            example("requests.jsonl").to_str().unwrap(),
            "-o",
            openai.to_str().unwrap(),
            "--emulator",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let theirs = lines(&openai);
    assert_eq!(theirs.len(), 32);
    for (t, g) in theirs.iter().zip(&got) {
        let mut t_keys = keys(t);
        assert!(t_keys.remove("response") && t_keys.remove("id"), "{t}");
        t_keys.insert("message".into());
        assert_eq!(keys(g), t_keys, "{g}");
        assert_eq!(t["custom_id"], g["custom_id"]);
    }
}

#[test]
fn the_openai_example_on_anthropics_api_gets_its_model_error_per_line() {
    // Its lines name gpt-4o-mini, which Anthropic does not serve: a server
    // that checks models (as the real API does) fails every request with
    // its own error, in the same line format.
    let emu = emulator();
    let base = emu.base_url();
    let env = [
        ("ANTHROPIC_API_KEY", KEY),
        ("ANTHROPIC_BASE_URL", base.as_str()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let o = run(
        &[
            "run",
            example("requests.jsonl").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--provider",
            "anthropic",
        ],
        &env,
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(!stderr(&o).contains("accepts any model"), "{}", text(&o));
    let got = lines(&out);
    assert_eq!(got.len(), 32);
    for v in &got {
        assert_eq!(v["outcome"], "failed", "{v}");
        assert_eq!(v["error"]["type"], "not_found_error", "{v}");
    }
}

#[test]
fn short_lines_without_a_token_limit_get_the_default_and_their_own_wins() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"custom_id\":\"a\",\"model\":\"claude-haiku-4-5\",\"prompt\":\"hi\",\"max_tokens\":5}\n\
         {\"custom_id\":\"b\",\"model\":\"claude-haiku-4-5\",\"prompt\":\"hi\"}\n",
    )
    .unwrap();
    let out = dir.path().join("out.jsonl");
    let args = [
        "run",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--emulator",
        "--provider",
        "anthropic",
    ];
    let o = run(&args, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        stderr(&o).contains("1 short line sets no max_tokens: sending max_tokens 1024"),
        "{}",
        text(&o)
    );
    let sent = sent_params(&dir.path().join("out.jsonl.journal"));
    assert_eq!(sent["a"]["max_tokens"], 5);
    assert_eq!(sent["b"]["max_tokens"], 1024);
    assert_eq!(ids(&out), ["a", "b"]);
    // Resuming the finished job with the default spelled out is the same job.
    let mut spelled = args.to_vec();
    spelled.extend(["--max-tokens", "1024"]);
    let o = run(&spelled, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    // Another limit is another job.
    let mut other = args.to_vec();
    other.extend(["--max-tokens", "50"]);
    let o = run(&other, &[]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        stderr(&o).contains("started with no --max-tokens (its default, 1024)"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(dir.path().join("out.jsonl.journal")).unwrap();
    std::fs::remove_file(&out).unwrap();

    // Other providers refuse the flag; Anthropic refuses OpenAI's lines.
    let o = run(
        &[
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--emulator",
            "--max-tokens",
            "5",
        ],
        &[],
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(stderr(&o).contains("--max-tokens 5 is for --provider anthropic"));
    let full = dir.path().join("full.jsonl");
    std::fs::write(
        &full,
        "{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{}}\n",
    )
    .unwrap();
    let o = run(
        &[
            "run",
            full.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--emulator",
            "--provider",
            "anthropic",
        ],
        &[],
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        stderr(&o).contains("full.jsonl:1: field `"),
        "{}",
        stderr(&o)
    );

    // With the flag, the line without its own limit takes the flag's.
    let mut with_flag = args.to_vec();
    with_flag.extend(["--max-tokens", "7"]);
    let o = run(&with_flag, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(!stderr(&o).contains("no max_tokens"), "{}", text(&o));
    assert_eq!(ids(&out), ["a", "b"]);
    let sent = sent_params(&dir.path().join("out.jsonl.journal"));
    assert_eq!(sent["a"]["max_tokens"], 5);
    assert_eq!(sent["b"]["max_tokens"], 7);
}

fn emulator() -> EmulatorHandle {
    Emulator::builder()
        .provider(ProviderMode::Anthropic)
        .api_key(KEY)
        .speed(20.0)
        .timings(Timings {
            validating: Duration::from_secs(2),
            // 200 requests take two real seconds at speed 20.
            per_request: Duration::from_millis(200),
            finalizing: Duration::from_secs(1),
            cancelling: Duration::from_secs(2),
            completion_window: Duration::from_secs(24 * 3600),
        })
        .start_blocking()
        .expect("emulator starts")
}

/// Waits until the journal's job names a Message Batch.
fn wait_for_a_batch(journal: &Path, child: &mut std::process::Child) {
    let doc = journal.join("round-0.job.json");
    let deadline = Instant::now() + Duration::from_secs(90);
    while !std::fs::read_to_string(&doc)
        .unwrap_or_default()
        .contains("\"batch_id\":\"msgbatch_")
    {
        assert!(Instant::now() < deadline, "no batch was created in time");
        if child.try_wait().unwrap().is_some() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("the run ended before it could be killed:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn kill_9_between_submit_and_results_then_resume_creates_nothing_twice() {
    let emu = emulator();
    let base = emu.base_url();
    let env = [
        ("ANTHROPIC_API_KEY", KEY),
        ("ANTHROPIC_BASE_URL", base.as_str()),
    ];
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
            "--provider",
            "anthropic",
            "--model",
            "claude-haiku-4-5",
            "--max-tokens",
            "64",
            "--max-requests-per-batch",
            "200",
            "--parallel",
            "1",
        ],
        &env,
    )
    .spawn()
    .unwrap();
    wait_for_a_batch(&journal, &mut child);
    child.kill().expect("kill -9");
    let _ = child.wait();
    assert!(!out.exists());
    let created_before = emu.counters().batches_created;
    assert!(created_before >= 1);

    // The provider is recorded, its key is not.
    let doc = std::fs::read_to_string(journal.join("round-0.job.json")).unwrap();
    let job: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(job["provider"]["preset"], "anthropic");
    assert_eq!(job["provider"]["auth_header"], "x-api-key");
    assert!(!doc.contains(KEY));

    // `status` and `results` continue from the journal: no provider flags.
    let o = run(&["status", "--journal", journal.to_str().unwrap()], &env);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("msgbatch_"));
    let o = run(
        &[
            "results",
            "--journal",
            journal.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(!text(&o).contains(KEY));
    let expected: Vec<String> = (0..n).map(|i| format!("req-{i}")).collect();
    assert_eq!(ids(&out), expected);
    assert!(lines(&out).iter().all(|v| v["outcome"] == "succeeded"));
    let c = emu.counters();
    // Three shards: each created once, the one in flight at the kill not again.
    assert_eq!(c.batches_created, 3, "{c:?}");
    assert_eq!(c.responses.get("401"), None, "{c:?}");

    // `list` reads Message Batches.
    let o = run(&["list", "--provider", "anthropic"], &env);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains("msgbatch_"))
            .count(),
        3,
        "{}",
        text(&o)
    );
}

#[test]
fn the_anthropic_version_flag_is_sent_and_recorded() {
    let emu = emulator();
    let base = emu.base_url();
    let env = [
        ("ANTHROPIC_API_KEY", KEY),
        ("ANTHROPIC_BASE_URL", base.as_str()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path(), 3);
    let out = dir.path().join("out.jsonl");
    let args = [
        "run",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--provider",
        "anthropic",
        "--model",
        "claude-haiku-4-5",
        "--max-tokens",
        "16",
    ];
    // A version the emulator does not know is refused before anything runs.
    let mut bad = args.to_vec();
    bad.extend(["--anthropic-version", "1999-01-01"]);
    let o = run(&bad, &env);
    assert_ne!(code(&o), 0, "{}", text(&o));
    assert_eq!(emu.counters().batches_created, 0);
    std::fs::remove_dir_all(dir.path().join("out.jsonl.journal")).ok();

    let mut good = args.to_vec();
    good.extend([
        "--anthropic-version",
        "2023-06-01",
        "--anthropic-beta",
        "message-batches-2024-09-24",
    ]);
    let o = run(&good, &env);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(ids(&out), ["req-0", "req-1", "req-2"]);
    let job: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("out.jsonl.journal/round-0.job.json")).unwrap(),
    )
    .unwrap();
    let headers = job["provider"]["headers"].to_string();
    assert!(
        headers.contains("anthropic-version") && headers.contains("message-batches-2024-09-24"),
        "{headers}"
    );
    // Another version for the same journal is refused.
    let o = run(
        &[
            "results",
            "--journal",
            dir.path().join("out.jsonl.journal").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--anthropic-version",
            "2024-01-01",
        ],
        &env,
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        stderr(&o).contains("differs from the job in"),
        "{}",
        stderr(&o)
    );
    // Other providers refuse the Anthropic flags.
    let o = run(&["list", "--emulator", "--anthropic-beta", "x"], &[]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(stderr(&o).contains("--anthropic-beta is for --provider anthropic"));
}

#[test]
fn lost_create_answers_and_cut_downloads_still_give_one_batch_per_shard() {
    // Every create is committed, then answered 500, and every other results
    // download is cut. (429 and 529 are in the end-to-end suite, whose
    // clients wait milliseconds rather than the CLI's seconds.)
    let dir = tempfile::tempdir().unwrap();
    let n = 90;
    let input = input(dir.path(), n);
    let out = dir.path().join("out.jsonl");
    let o = run(
        &[
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--emulator",
            "--provider",
            "anthropic",
            "--model",
            "claude-haiku-4-5",
            "--max-tokens",
            "32",
            "--max-requests-per-batch",
            "30",
            "--emulator-speed",
            "2000",
            "--emulator-faults",
            "commit-then-500-every=1@batches.create,cut-content-every=2",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let err = stderr(&o);
    // Each shard looked for its batch (shards of the same size may first
    // follow one another's and refute it by its results).
    for shard in 0..3 {
        assert!(
            err.contains(&format!(
                "shard {shard}: the answer to this shard's create was lost"
            )),
            "{err}"
        );
    }
    assert!(err.contains("cut off; continuing from byte"), "{err}");
    let expected: Vec<String> = (0..n).map(|i| format!("req-{i}")).collect();
    assert_eq!(ids(&out), expected);
    assert!(lines(&out).iter().all(|v| v["outcome"] == "succeeded"));
    // The built-in emulator keeps its batches in the journal: one per shard.
    let batches: BTreeSet<String> =
        std::fs::read_dir(dir.path().join("out.jsonl.journal/emulator/batches"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("msgbatch_") && !name.contains(".results"))
            .collect();
    assert_eq!(batches.len(), 3, "{batches:?}");
    let used: BTreeSet<String> = lines(&out)
        .iter()
        .map(|v| format!("{}.jsonl", v["batch_id"].as_str().unwrap()))
        .collect();
    assert_eq!(used, batches);
    // The summary names each batch once, however often it was looked for.
    let listed: Vec<String> = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("batches"))
        .unwrap_or_else(|| panic!("no batches line: {err}"))
        .split(',')
        .map(|id| format!("{}.jsonl", id.trim()))
        .collect();
    assert_eq!(listed.len(), 3, "{err}");
    assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), batches);
}
