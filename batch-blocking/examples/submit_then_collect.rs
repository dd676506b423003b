//! Submit in one process, collect by batch id in another: nothing passes
//! between the two but the batch ids, as when a job is submitted by one
//! program run (or machine) and its results are fetched by a later one.
//!
//! ```sh
//! cargo run -p batch-blocking --example submit_then_collect
//! ```
//!
//! starts the emulator of the Files and Batches API in-process, then runs
//! this same program twice as child processes: `submit BASE_URL` creates the
//! batches, prints their ids one per line and exits at once;
//! `collect BASE_URL BATCH_ID...` waits for each batch and prints its
//! results. Against OpenAI, build the clients with `Client::from_env()` and
//! keep the default poll interval; the ids are also in the dashboard.
//!
//! Its test (`cargo test -p batch-blocking --example submit_then_collect`)
//! runs both halves with separate clients and checks every outcome.
#![allow(clippy::print_stdout)]

use std::process::Command;
use std::time::Duration;

use batch_blocking::{Client, ClientConfig};
use batch_core::api::ApiConfig;
use batch_core::input::{Item, SystemPrompt};
use batch_core::job::{BatchJob, BatchOptions, JobResult, ShardLimits};
use batch_emulator::Emulator;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client for the server at `base_url`.
fn client(base_url: &str) -> Result<Client, batch_blocking::Error> {
    Client::new(ClientConfig::new(
        ApiConfig::new("sk-emulator").with_base_url(base_url),
    ))
}

/// Options with a poll interval to suit the emulator's fast clock.
fn options() -> BatchOptions {
    BatchOptions::new("gpt-4o-mini").poll_interval(Duration::from_millis(100))
}

/// The first half: uploads and creates the batches (two requests per batch
/// here, to get two of them) and returns their ids without waiting.
fn submit(base_url: &str) -> Result<Vec<String>, batch_blocking::Error> {
    let items: Vec<Item> = (1..=4)
        .map(|i| Item::new(format!("q{i}"), format!("question {i}")))
        .collect();
    let prompt = SystemPrompt::Text("Answer briefly.".into());
    let opts = options().limits(ShardLimits::new(2, 1 << 20));
    let job = client(base_url)?.submit_batch(&items, &prompt, &opts)?;
    Ok(job.batch_ids())
}

/// The second half: waits for batch `batch_id` and returns its outcomes.
fn collect(base_url: &str, batch_id: &str) -> Result<Vec<JobResult>, batch_blocking::Error> {
    let mut job = BatchJob::for_batch(batch_id, &options(), 1);
    client(base_url)?.get_results(&mut job)
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("submit") => {
            let base_url = args.get(1).ok_or("usage: submit BASE_URL")?;
            for id in submit(base_url)? {
                println!("{id}");
            }
        }
        Some("collect") => {
            let base_url = args.get(1).ok_or("usage: collect BASE_URL BATCH_ID...")?;
            for batch_id in &args[2..] {
                for r in collect(base_url, batch_id)? {
                    match r.content() {
                        Some(text) => println!("{batch_id} {}: {text}", r.custom_id()),
                        None => println!("{batch_id} {}: {:?}", r.custom_id(), r.status()),
                    }
                }
            }
        }
        _ => {
            // 5000 virtual seconds per real second: a batch ends in well under a second.
            let emulator = Emulator::builder().speed(5000.0).start_blocking()?;
            let base_url = emulator.base_url();
            let me = std::env::current_exe()?;
            let submitted = Command::new(&me).args(["submit", &base_url]).output()?;
            if !submitted.status.success() {
                return Err(String::from_utf8_lossy(&submitted.stderr)
                    .into_owned()
                    .into());
            }
            let ids: Vec<String> = String::from_utf8(submitted.stdout)?
                .lines()
                .map(str::to_owned)
                .collect();
            println!("submitted {} batches: {}", ids.len(), ids.join(", "));
            let collected = Command::new(&me)
                .arg("collect")
                .arg(&base_url)
                .args(&ids)
                .status()?;
            if !collected.success() {
                return Err("the collecting process failed".into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_submitted_by_one_client_are_collected_by_id_by_another() {
        let emulator = Emulator::builder()
            .speed(5000.0)
            .start_blocking()
            .expect("the emulator starts");
        let base_url = emulator.base_url();
        let ids = submit(&base_url).expect("the batches are created");
        assert_eq!(ids.len(), 2, "{ids:?}");
        let mut seen = Vec::new();
        for id in &ids {
            for r in collect(&base_url, id).expect("the batch's results") {
                assert_eq!(r.batch_id.as_deref(), Some(id.as_str()));
                assert!(r.is_success(), "{}: {:?}", r.custom_id, r.error());
                let n = r.custom_id.trim_start_matches('q');
                assert_eq!(r.content(), Some(format!("Echo: question {n}").as_str()));
                seen.push(r.custom_id);
            }
        }
        seen.sort();
        assert_eq!(seen, ["q1", "q2", "q3", "q4"], "each request once");
        let counters = emulator.counters();
        assert_eq!(counters.batches_created, 2, "collecting creates nothing");
        assert_eq!(counters.files_uploaded, 2);
    }
}
