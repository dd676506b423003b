//! End-to-end tests of the `openai-batch` binary's defences: what it
//! refuses before anything is sent, how it stops, and what it leaves behind.
//! Each test asserts the exit code, the message, and the state left (the
//! journal, the input, what the emulator received). Every wait is bounded.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use batch_emulator::{Emulator, EmulatorBuilder, EmulatorHandle, FaultConfig, Timings};
use serde_json::Value;

const KEY: &str = "sk-secret-xyz";

mod common;
use common::{code, stderr, wait};

fn bare(args: &[&str]) -> Command {
    common::bare(args, KEY)
}

fn output(c: &mut Command) -> Output {
    common::output(c)
}

fn command(emu: &EmulatorHandle, args: &[&str]) -> Command {
    common::command(emu, args, KEY)
}

fn run(emu: &EmulatorHandle, args: &[&str]) -> Output {
    common::run(emu, args, KEY)
}

/// An emulator whose batches run in well under a second per few hundred
/// requests, started in-process on a loopback port.
fn emulator() -> EmulatorHandle {
    fast(Emulator::builder(), 20.0)
}

fn fast(b: EmulatorBuilder, speed: f64) -> EmulatorHandle {
    b.speed(speed)
        .timings(Timings {
            validating: Duration::from_secs(2),
            per_request: Duration::from_millis(20),
            finalizing: Duration::from_secs(1),
            cancelling: Duration::from_secs(2),
            completion_window: Duration::from_secs(24 * 3600),
        })
        .faults(FaultConfig::parse("").expect("fault spec"))
        .start_blocking()
        .expect("emulator starts")
}

/// Writes `n` short lines with ids `r00000`, ... to `dir/name`.
fn input_named(dir: &Path, name: &str, n: usize) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).expect("input");
    for i in 0..n {
        writeln!(f, r#"{{"custom_id":"r{i:05}","prompt":"question {i}"}}"#).expect("write");
    }
    path
}

fn input(dir: &Path, n: usize) -> PathBuf {
    input_named(dir, "in.jsonl", n)
}

fn ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("results")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a JSON line");
            v["custom_id"].as_str().expect("custom_id").to_owned()
        })
        .collect()
}

fn expected_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i:05}")).collect()
}

/// Asserts that a refused command sent nothing and made no journal.
fn assert_nothing_done(emu: &EmulatorHandle, journal: &Path) {
    let c = emu.counters();
    assert_eq!(c.files_uploaded, 0, "nothing is uploaded");
    assert_eq!(c.batches_created, 0, "nothing is created");
    assert!(
        !journal.exists(),
        "no journal is made: {}",
        journal.display()
    );
}

/// Sends `signal` (`-TERM`, ...) to `child` with `kill`.
#[cfg(unix)]
fn signal(child: &Child, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
}

/// Waits until `pid` holds the journal (its signal handlers are in place).
#[cfg(unix)]
fn wait_for_owner(journal: &Path, pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(journal.join("lock")).unwrap_or_default() != pid.to_string() {
        assert!(
            Instant::now() < deadline,
            "the run did not take the journal in time"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the job's checkpoint names a batch (something to resume).
#[cfg(unix)]
fn wait_for_a_batch(journal: &Path) {
    let checkpoint = journal.join("round-0.job.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&checkpoint)
        .unwrap_or_default()
        .contains("\"batch_id\":\"batch_")
    {
        assert!(Instant::now() < deadline, "no batch was created in time");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn out_of_range_durations_are_usage_errors_before_a_journal_is_made() {
    let emu = emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = input(dir.path(), 5);
    let out = dir.path().join("results.jsonl");
    let journal = dir.path().join("results.jsonl.journal");
    for (flag, value) in [
        ("--poll-interval", "1e300"),
        ("--max-wait", "1e300"),
        ("--poll-interval", "NaN"),
        ("--max-wait", "-1"),
        ("--poll-interval", "0"),
    ] {
        let o = run(
            &emu,
            &[
                "run",
                input.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--model",
                "gpt-4o-mini",
                &format!("{flag}={value}"),
            ],
        );
        assert_eq!(code(&o), 2, "{flag} {value}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!(
                "error: {flag} must be a positive number of seconds"
            )),
            "{flag} {value}: {}",
            stderr(&o)
        );
        assert_nothing_done(&emu, &journal);
    }
}

#[test]
fn a_panic_ends_the_run_with_exit_3_and_a_resumable_journal() {
    let emu = emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 30;
    let input = input(dir.path(), n);
    let out = dir.path().join("results.jsonl");
    let args = [
        "run",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        "gpt-4o-mini",
        "--max-requests-per-batch",
        "10",
        "--poll-interval",
        "0.05",
    ];
    // Before the fix the process hung here for ever; `wait` bounds it.
    let o = output(command(&emu, &args).env("OPENAI_BATCH_PANIC_AFTER_SUBMIT", "1"));
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("error: openai-batch stopped on an internal error")
            && err.contains("run the same command again to resume"),
        "{err}"
    );
    assert!(!out.exists());
    assert!(emu.counters().batches_created >= 1);
    let o = run(&emu, &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(ids(&out), expected_ids(n));
    assert_eq!(
        emu.counters().batches_created,
        3,
        "each shard's batch is created once"
    );
}

#[cfg(unix)]
#[test]
fn sigterm_and_sighup_stop_cleanly_like_ctrl_c_and_the_run_resumes() {
    let emu = emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 1200;
    let input = input(dir.path(), n);
    let out = dir.path().join("results.jsonl");
    let journal = dir.path().join("results.jsonl.journal");
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
    for (sig, exit, name) in [("-TERM", 143, "SIGTERM"), ("-HUP", 129, "SIGHUP")] {
        let child = command(&emu, &args).spawn().expect("spawn");
        wait_for_owner(&journal, child.id());
        wait_for_a_batch(&journal);
        signal(&child, sig);
        let o = wait(child, Duration::from_secs(30));
        let err = stderr(&o);
        if code(&o) == 0 {
            // The job finished before the signal came: nothing left to stop.
            break;
        }
        assert_eq!(code(&o), exit, "{name}: {err}");
        assert!(
            err.contains(&format!("stopped by {name}"))
                && err.contains("run the same command again to resume"),
            "{err}"
        );
        assert!(!out.exists());
    }
    let o = run(&emu, &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(ids(&out), expected_ids(n));
    assert_eq!(emu.counters().batches_created, 3, "nothing created twice");
}

#[cfg(unix)]
#[test]
fn an_output_that_is_the_input_is_refused_by_identity() {
    let emu = emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = input(dir.path(), 5);
    let before = std::fs::read(&input).expect("input");
    let link = dir.path().join("link.jsonl");
    std::fs::hard_link(&input, &link).expect("hard link");
    let cases = [
        // Another spelling of the same path.
        ("./in.jsonl", dir.path().join("in.jsonl.journal")),
        // Another name of the same file.
        ("link.jsonl", dir.path().join("link.jsonl.journal")),
        // The temporary file the results are written to first.
        ("in", dir.path().join("in.journal")),
    ];
    let partial = dir.path().join("in.partial");
    std::fs::hard_link(&input, &partial).expect("hard link");
    for (output, journal) in cases {
        let o = output_in(
            dir.path(),
            &emu,
            &["run", "in.jsonl", "-o", output, "--model", "gpt-4o-mini"],
        );
        assert_eq!(code(&o), 2, "{output}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("is the input file"),
            "{output}: {}",
            stderr(&o)
        );
        assert_eq!(
            std::fs::read(&input).expect("input"),
            before,
            "input intact"
        );
        assert_nothing_done(&emu, &journal);
    }
    assert!(partial.exists(), "the probe never removes another file");
}

/// Runs in `dir` as the current folder.
#[cfg(unix)]
fn output_in(dir: &Path, emu: &EmulatorHandle, args: &[&str]) -> Output {
    output(command(emu, args).current_dir(dir))
}

#[test]
fn an_output_that_cannot_be_written_is_refused_before_anything_is_uploaded() {
    let emu = emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = input(dir.path(), 5);
    let journal = dir.path().join("elsewhere.journal");
    // A folder that does not exist, a "folder" that is a file, and a folder.
    let no_folder = dir.path().join("missing/results.jsonl");
    let under_a_file = input.join("results.jsonl");
    let a_folder = dir.path().to_owned();
    for out in [&no_folder, &under_a_file, &a_folder] {
        let o = run(
            &emu,
            &[
                "run",
                input.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--journal",
                journal.to_str().unwrap(),
                "--model",
                "gpt-4o-mini",
            ],
        );
        assert_eq!(code(&o), 2, "{}: {}", out.display(), stderr(&o));
        assert!(
            stderr(&o).contains(&format!("cannot write the results to {}", out.display())),
            "{}",
            stderr(&o)
        );
        assert_nothing_done(&emu, &journal);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = dir.path().join("read-only");
        std::fs::create_dir(&ro).expect("folder");
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).expect("chmod");
        // Permissions do not bind a superuser; the check only means
        // something where they do.
        let bound = std::fs::File::create(ro.join("probe")).is_err();
        if bound {
            let out = ro.join("results.jsonl");
            let o = run(
                &emu,
                &[
                    "run",
                    input.to_str().unwrap(),
                    "-o",
                    out.to_str().unwrap(),
                    "--journal",
                    journal.to_str().unwrap(),
                    "--model",
                    "gpt-4o-mini",
                ],
            );
            assert_eq!(code(&o), 2, "{}", stderr(&o));
            assert!(stderr(&o).contains("cannot write the results to"));
            assert_nothing_done(&emu, &journal);
        }
    }
}

#[test]
fn two_runs_started_together_never_both_drive_the_journal() {
    // Slow batches, so the winner holds the journal while the other starts.
    let emu = fast(Emulator::builder(), 2.0);
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 10;
    let input = input(dir.path(), n);
    let trials = 3;
    for t in 0..trials {
        let out = dir.path().join(format!("results-{t}.jsonl"));
        let journal = dir.path().join(format!("results-{t}.jsonl.journal"));
        // A lock file left behind by a process killed with -9: its pid is
        // gone, and an empty one was read as stale before.
        std::fs::create_dir_all(&journal).expect("journal");
        std::fs::write(journal.join("lock"), if t == 0 { "" } else { "4000000" })
            .expect("stale lock");
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
        let a = command(&emu, &args).spawn().expect("spawn");
        let b = command(&emu, &args).spawn().expect("spawn");
        let (a_pid, b_pid) = (a.id(), b.id());
        let a = wait(a, Duration::from_secs(60));
        let b = wait(b, Duration::from_secs(60));
        let mut codes = [code(&a), code(&b)];
        codes.sort_unstable();
        assert_eq!(codes, [0, 2], "{}\n{}", stderr(&a), stderr(&b));
        let (loser, winner_pid) = if code(&a) == 2 {
            (&a, b_pid)
        } else {
            (&b, a_pid)
        };
        assert!(
            stderr(loser).contains(&format!("is in use by process {winner_pid}")),
            "{}",
            stderr(loser)
        );
        assert_eq!(ids(&out), expected_ids(n));
    }
    assert_eq!(
        emu.counters().batches_created,
        trials,
        "one batch per job: the loser sent nothing"
    );
}

/// This machine's address on its default route, if it has one.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn plain_http_beyond_loopback_needs_an_explicit_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 5;
    let input = input(dir.path(), n);
    let out = dir.path().join("results.jsonl");
    let journal = dir.path().join("results.jsonl.journal");
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
    // A documentation address (RFC 5737): never reached, the run is refused first.
    for base in [
        "http://192.0.2.77:9/v1",
        "http://api.example.com/v1",
        "HTTP://[2001:db8::1]/v1",
    ] {
        let o = output(bare(&args).args(["--base-url", base]));
        assert_eq!(code(&o), 2, "{base}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("plain http://")
                && stderr(&o).contains("--allow-insecure-http")
                && !stderr(&o).contains(KEY),
            "{}",
            stderr(&o)
        );
        assert!(!journal.exists());
    }
    let o = output(
        bare(&args)
            .env("OPENAI_BASE_URL", "http://192.0.2.77:9/v1")
            .arg("--quiet"),
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(!journal.exists());
    // Loopback by name is fine without the flag.
    let emu = emulator();
    let local = format!("http://localhost:{}/v1", emu.addr().port());
    let o = output(bare(&args).args(["--base-url", &local]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(ids(&out), expected_ids(n));
    // With the flag, a non-loopback http:// address is used.
    if let Some(ip) = non_loopback_ip() {
        let remote = fast(Emulator::builder().host(ip), 20.0);
        let out = dir.path().join("remote.jsonl");
        let base = format!("http://{}/v1", remote.addr());
        let args = [
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--model",
            "gpt-4o-mini",
            "--poll-interval",
            "0.05",
            "--base-url",
            &base,
        ];
        let o = output(&mut bare(&args));
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        assert_eq!(remote.counters().files_uploaded, 0);
        let o = output(bare(&args).arg("--allow-insecure-http"));
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(ids(&out), expected_ids(n));
        assert_eq!(remote.counters().files_uploaded, 1);
    }
}

#[cfg(unix)]
#[test]
fn journal_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let emu = emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 30;
    let input = input(dir.path(), n);
    let out = dir.path().join("results.jsonl");
    let journal = dir.path().join("results.jsonl.journal");
    // Enough rounds and shards that every kind of journal file exists.
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
            "10",
            "--poll-interval",
            "0.05",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut seen = Vec::new();
    let mut stack = vec![journal.clone()];
    while let Some(d) = stack.pop() {
        let mode = std::fs::metadata(&d).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mode = e.metadata().expect("meta").permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", p.display());
                seen.push(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    for name in [
        "round-0.job.json",
        "summary.json",
        "results.spill",
        "results.index",
        "lock",
        "shard-00002.jsonl",
    ] {
        assert!(seen.iter().any(|s| s == name), "{name} in {seen:?}");
    }
}

#[test]
fn resuming_against_another_base_url_warns() {
    let first = emulator();
    let second = emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 5;
    let input = input(dir.path(), n);
    let out = dir.path().join("results.jsonl");
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
    let o = run(&first, &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    // The same base URL, spelled with a trailing slash: no warning.
    let o = output(bare(&args).args(["--base-url", &format!("{}/", first.base_url())]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let o = run(&second, &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "warning: the job in this journal was created on {}, but this run talks to {}",
            first.base_url(),
            second.base_url()
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(ids(&out), expected_ids(n));
    assert_eq!(second.counters().files_uploaded, 0);
}

#[cfg(unix)]
#[test]
fn a_system_prompt_file_without_end_is_refused() {
    let emu = emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = input(dir.path(), 5);
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
            "--system",
            "@/dev/zero",
        ],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot read the system prompt from /dev/zero: it is over 1 MiB"),
        "{}",
        stderr(&o)
    );
    assert_nothing_done(&emu, &dir.path().join("results.jsonl.journal"));
}

#[cfg(unix)]
#[test]
fn an_input_that_is_not_a_regular_file_is_named_for_what_it_is() {
    let emu = emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("results.jsonl");
    let journal = dir.path().join("results.jsonl.journal");
    let folder = dir.path().join("folder.jsonl");
    std::fs::create_dir(&folder).expect("folder");
    let fifo = dir.path().join("fifo.jsonl");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let args = |input: &Path| {
        vec![
            "run".to_owned(),
            input.to_str().unwrap().to_owned(),
            "-o".to_owned(),
            out.to_str().unwrap().to_owned(),
            "--model".to_owned(),
            "m".to_owned(),
        ]
    };
    let o = run(
        &emu,
        &args(&folder).iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "{} is a folder, not a JSONL file",
            folder.display()
        )),
        "{}",
        stderr(&o)
    );
    assert_nothing_done(&emu, &journal);
    for input in [fifo.as_path(), Path::new("/dev/stdin")] {
        let mut c = command(
            &emu,
            &args(input).iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let mut child = c.stdin(Stdio::piped()).spawn().expect("spawn");
        let stdin = child.stdin.take();
        let o = wait(child, Duration::from_secs(60));
        drop(stdin);
        assert_eq!(code(&o), 2, "{}: {}", input.display(), stderr(&o));
        assert!(
            stderr(&o).contains("is not a regular file (a pipe, a device or standard input)")
                && stderr(&o).contains("save it to a file"),
            "{}",
            stderr(&o)
        );
        assert_nothing_done(&emu, &journal);
    }
    // A missing file is still called that.
    let o = run(
        &emu,
        &args(&dir.path().join("nope.jsonl"))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("no such file"), "{}", stderr(&o));
}

#[test]
fn a_url_with_dot_segments_is_refused_naming_file_line_and_field() {
    let emu = emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("full.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"custom_id":"a","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[]}}"#,
            "\n",
            r#"{"custom_id":"b","url":"/v1/../admin","body":{"model":"gpt-4o-mini","messages":[]}}"#,
            "\n",
        ),
    )
    .expect("input");
    let out = dir.path().join("results.jsonl");
    let o = run(
        &emu,
        &["run", input.to_str().unwrap(), "-o", out.to_str().unwrap()],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let source = input.display().to_string();
    assert!(
        stderr(&o).contains(&format!("{source}:2: field `url`:"))
            && stderr(&o).contains("path segment"),
        "{}",
        stderr(&o)
    );
    assert_nothing_done(&emu, &dir.path().join("results.jsonl.journal"));
}

#[test]
fn a_damaged_index_fails_assembly_naming_the_slot_instead_of_writing_a_wrong_file() {
    let emu = emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 5;
    let input = input(dir.path(), n);
    let out = dir.path().join("results.jsonl");
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
    let o = run(&emu, &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Point slot 2 at slot 1's result: one id twice, another lost.
    let index = dir.path().join("results.jsonl.journal/results.index");
    let mut bytes = std::fs::read(&index).expect("index");
    let first: Vec<u8> = bytes[..16].to_vec();
    bytes[16..32].copy_from_slice(&first);
    std::fs::write(&index, &bytes).expect("damage");
    std::fs::remove_file(&out).expect("remove results");
    let o = run(&emu, &args);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "the journal is damaged: the result of request 2 (\"r00001\"): slot 2 of \
             results.index holds the result of \"r00000\""
        ),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "no wrong results file is written");
}

/// A loopback server that takes connections and never answers; its port.
fn silent_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

/// The lines `child` writes to stderr, as they come.
fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn a_silent_server_still_gets_a_progress_line_every_period() {
    let port = silent_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = input(dir.path(), 20);
    let out = dir.path().join("results.jsonl");
    let mut child = bare(&[
        "run",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        "gpt-4o-mini",
        "--base-url",
        &format!("http://127.0.0.1:{port}/v1"),
        "--progress-every",
        "0.3",
    ])
    .spawn()
    .expect("spawn");
    let rx = stderr_lines(&mut child);
    let mut beats = 0;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while beats < 3 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if line.contains("job: 0/20 requests processed; 0 shards running, 0/1 done") {
                beats += 1;
            }
            seen.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        beats >= 3,
        "heartbeat lines while the server is silent: {seen:?}"
    );
    assert!(!out.exists());
}

#[test]
fn a_silent_server_is_cut_after_the_stall_timeout_and_retried() {
    let port = silent_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = input(dir.path(), 20);
    let out = dir.path().join("results.jsonl");
    let started = Instant::now();
    let mut child = bare(&[
        "run",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        "gpt-4o-mini",
        "--base-url",
        &format!("http://127.0.0.1:{port}/v1"),
        "--stall-timeout",
        "1",
    ])
    .spawn()
    .expect("spawn");
    let rx = stderr_lines(&mut child);
    let mut seen = Vec::new();
    let mut cut = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while cut.is_none() && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if line.contains("stalled") {
                cut = Some(started.elapsed());
            }
            seen.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let cut = cut.unwrap_or_else(|| panic!("no stalled exchange reported: {seen:?}"));
    // The default stall window is 30 s: a cut this early is the flag's.
    assert!(cut < Duration::from_secs(25), "cut after {cut:?}: {seen:?}");
    assert!(!out.exists());
}
