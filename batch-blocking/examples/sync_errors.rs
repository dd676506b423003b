//! What a caller sees when a job goes wrong, against the in-process
//! emulator: a duplicate `custom_id`, a wrong key, an unreachable server, a
//! full disk and a failed batch. Each error's `Display` and `Debug` are
//! printed.
//!
//! Run with `cargo run -p batch-blocking --example sync_errors`.
#![allow(clippy::print_stdout, clippy::expect_used)]

use std::time::Duration;

use batch_blocking::{Client, ClientConfig, Clock, Error, SystemClock};
use batch_core::api::{ApiBase, ApiConfig, ShardRef};
use batch_core::input::{Item, SystemPrompt};
use batch_core::job::{
    BatchJob, BatchOptions, Checkpoint, JobEvent, JobIo, JobResult, ShardLimits, StopAfter,
};
use batch_core::retry::RetryPolicy;

const KEY: &str = "sk-example-key";

fn main() {
    for (what, e) in errors() {
        show(what, &e);
    }
}

/// The five errors, each with what caused it.
fn errors() -> Vec<(&'static str, Error)> {
    let mut errors = Vec::new();
    // Batches of more than 10 requests fail validation on this server.
    let emu = batch_emulator::Emulator::builder()
        .speed(5000.0)
        .api_key(KEY)
        .max_requests_per_batch(10)
        .start_blocking()
        .expect("the emulator starts");
    let base = emu.base_url();
    let prompt = SystemPrompt::Text("Answer briefly.".into());
    let items: Vec<Item> = (0..20)
        .map(|i| Item::new(format!("q-{i}"), format!("question {i}")))
        .collect();
    let opts = BatchOptions::new("gpt-4o-mini")
        .poll_interval(Duration::from_millis(50))
        .max_wait(Duration::from_secs(60))
        .limits(ShardLimits::new(20, 1 << 20));

    let mut duplicate = items.clone();
    duplicate[2].custom_id = "q-0".into();
    let e = client(&base, KEY)
        .submit_batch(&duplicate, &prompt, &opts)
        .expect_err("a duplicate id is refused");
    errors.push(("duplicate custom_id", e));

    let e = client(&base, "sk-wrong-key")
        .submit_batch(&items, &prompt, &opts)
        .expect_err("a wrong key is refused");
    errors.push(("wrong key", e));

    let e = client(&closed_port(), KEY)
        .submit_batch(&items, &prompt, &opts)
        .expect_err("nothing listens there");
    errors.push(("unreachable server", e));

    let c = client(&base, KEY);
    let handle = BatchJob::from_items(&items, &prompt, &opts, 1).expect("valid items");
    let api = ApiBase::new(&ApiConfig::new(KEY).with_base_url(&base)).expect("api settings");
    let mut job = handle
        .job(api, StopAfter::Finished, SystemClock.now())
        .expect("a new job");
    let e = c
        .run_job(&mut job, &mut FullDisk)
        .expect_err("the disk is full");
    errors.push(("disk full", e));

    let e = c
        .submit_and_wait(&items, &prompt, &opts)
        .expect_err("the batch fails validation");
    errors.push(("failed batch", e));
    errors
}

/// A client for `base` with `key` that gives up after three attempts.
fn client(base: &str, key: &str) -> Client {
    let mut config = ClientConfig::new(ApiConfig::new(key).with_base_url(base));
    config.retry = RetryPolicy::default();
    config.retry.base_delay = Duration::from_millis(10);
    config.retry.max_attempts = 3;
    Client::new(config).expect("a client")
}

/// A base URL where nothing listens.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    format!("http://127.0.0.1:{port}/v1")
}

fn show(what: &str, e: &Error) {
    println!("{what}:");
    println!("  Display: {e}");
    let debug = format!("{e:?}");
    println!("  Debug ({} characters): {debug}", debug.len());
}

/// A [`JobIo`] on a full disk: every write fails with ENOSPC.
struct FullDisk;

impl JobIo for FullDisk {
    fn persist(&mut self, _: &Checkpoint) -> std::io::Result<()> {
        Err(std::io::Error::from_raw_os_error(28))
    }
    fn result(&mut self, _: JobResult) -> std::io::Result<()> {
        Err(std::io::Error::from_raw_os_error(28))
    }
    fn event(&mut self, _: &JobEvent) -> std::io::Result<()> {
        Ok(())
    }
    fn open_shard(&mut self, _: &ShardRef) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        Err(std::io::Error::from_raw_os_error(28))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_names_its_cause_in_one_line_and_debug_stays_short() {
        let errors = errors();
        let names: Vec<&str> = errors.iter().map(|(what, _)| *what).collect();
        assert_eq!(
            names,
            [
                "duplicate custom_id",
                "wrong key",
                "unreachable server",
                "disk full",
                "failed batch"
            ]
        );
        let cause = [
            "items:3: field `custom_id`: duplicate value \"q-0\", first used on line 1",
            "invalid_api_key",
            "not sent",
            "os error 28",
            "too_many_tasks",
        ];
        for ((what, e), cause) in errors.iter().zip(cause) {
            let display = e.to_string();
            assert!(display.contains(cause), "{what}: {display}");
            assert!(!display.contains('\n'), "{what}: {display}");
            assert!(!display.contains(KEY), "{what}: {display}");
            let debug = format!("{e:?}");
            assert!(debug.len() < 2_000, "{what}: {} characters", debug.len());
        }
        // The unreachable server is named by its address.
        let (_, unreachable) = &errors[2];
        assert!(
            unreachable.to_string().contains("127.0.0.1:"),
            "{unreachable}"
        );
        // The failed submits hand their handle back; nothing was created.
        let (_, refused) = &errors[1];
        assert!(refused.handle().is_some_and(|h| h.batch_ids().is_empty()));
    }
}
