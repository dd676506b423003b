//! What the binary's test files share: running `openai-batch` against an
//! emulator, with a time limit, and reading what it printed.
#![allow(dead_code)]

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use batch_emulator::EmulatorHandle;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_openai-batch");

/// The binary with `args` and `key`, no base URL from the environment, and
/// its output captured.
pub(crate) fn bare(args: &[&str], key: &str) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("OPENAI_API_KEY", key)
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_BATCH_PANIC_AFTER_SUBMIT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Provider settings a child must not inherit from the test's environment.
const PROVIDER_VARS: [&str; 11] = [
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "OPENAI_API_VERSION",
    "AZURE_OPENAI_AD_TOKEN",
    "GROQ_API_KEY",
    "GROQ_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_BATCH_PANIC_AFTER_SUBMIT",
];

/// The binary with `args`, no provider setting from the test's environment
/// but `env`, and its output captured.
pub(crate) fn with_env(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in PROVIDER_VARS {
        c.env_remove(var);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// What the binary printed, stdout then stderr.
pub(crate) fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out))
}

/// As [`bare`], pointed at `emu`.
pub(crate) fn command(emu: &EmulatorHandle, args: &[&str], key: &str) -> Command {
    let mut c = bare(args, key);
    c.args(["--base-url", &emu.base_url()]);
    c
}

/// Waits for `child` at most `limit`, killing it if it takes longer.
pub(crate) fn wait(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "the command took longer than {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `c` to its end (at most a minute).
pub(crate) fn output(c: &mut Command) -> Output {
    wait(c.spawn().expect("spawn"), Duration::from_secs(60))
}

/// Runs the binary with `args` against `emu` (at most a minute).
pub(crate) fn run(emu: &EmulatorHandle, args: &[&str], key: &str) -> Output {
    output(&mut command(emu, args, key))
}

/// The exit code (-1 for a signal).
pub(crate) fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// What the binary wrote to stderr.
pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
