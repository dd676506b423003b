//! The basic flow, async, three jobs at once: each job has its own system
//! prompt and items, all three share one client, and `tokio::join!` waits
//! for the three `submit_and_wait` calls together. Each job's results come
//! back in its own input order, with the text and the parsed JSON.
//!
//! It runs on its own: the emulator of the Files and Batches API starts
//! in-process, so no key and no network are needed. Against OpenAI, build
//! the client with `Client::from_env()` (it reads `OPENAI_API_KEY`) and keep
//! the default poll interval.
//!
//! ```sh
//! cargo run -p batch-async --example three_jobs
//! ```
//!
//! Its test (`cargo test -p batch-async --example three_jobs`) runs the
//! same jobs and checks every outcome.

use std::io::Write;
use std::time::Duration;

use batch_async::{Client, ClientConfig, Error};
use batch_core::api::ApiConfig;
use batch_core::input::{Item, SystemPrompt};
use batch_core::job::{BatchOptions, JobResult};
use batch_emulator::Emulator;
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The three jobs: a system prompt and the user messages it applies to.
const JOBS: [(&str, &[&str]); 3] = [
    (
        "Translate the text into French.",
        &["Good morning.", "Where is the station?"],
    ),
    (
        "Summarise the text in five words.",
        &["The meeting moved to Thursday because the room was booked."],
    ),
    (
        "Answer with JSON: {\"sentiment\": \"positive\" | \"negative\"}.",
        &["I love it.", "Never again.", "Works fine."],
    ),
];

/// Runs job `n` of [`JOBS`] with `client` and returns its outcomes.
async fn job(client: &Client, n: usize) -> Result<Vec<JobResult>, Error> {
    let (prompt, messages) = JOBS[n];
    let items: Vec<Item> = messages
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let item = Item::new(format!("job{n}-{i}"), *text);
            if prompt.contains("JSON") {
                item.extra("response_format", json!({"type": "json_object"}))
            } else {
                item
            }
        })
        .collect();
    let opts = BatchOptions::new("gpt-4o-mini").poll_interval(Duration::from_millis(100));
    client
        .submit_and_wait(&items, &SystemPrompt::Text(prompt.into()), &opts)
        .await
}

/// Runs the three jobs at once against the server at `base_url`.
async fn three_jobs(base_url: &str) -> Result<[Vec<JobResult>; 3], Error> {
    let api = ApiConfig::new("sk-emulator").with_base_url(base_url);
    let client = Client::new(ClientConfig::new(api))?;
    let (a, b, c) = tokio::join!(job(&client, 0), job(&client, 1), job(&client, 2));
    Ok([a?, b?, c?])
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // 5000 virtual seconds per real second: a batch ends in well under a second.
    let emulator = Emulator::builder().speed(5000.0).start().await?;
    let jobs = three_jobs(&emulator.base_url()).await;
    emulator.shutdown().await?;
    let mut out = std::io::stdout().lock();
    for results in jobs? {
        for r in results {
            match (r.json(), r.content(), r.error()) {
                (Some(parsed), _, _) => writeln!(out, "{}: JSON {parsed}", r.custom_id())?,
                (None, Some(text), _) => writeln!(out, "{}: {text}", r.custom_id())?,
                (_, _, error) => writeln!(out, "{}: {error:?}", r.custom_id())?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_jobs_at_once_each_get_their_own_outcomes_in_order() {
        let emulator = Emulator::builder()
            .speed(5000.0)
            .start()
            .await
            .expect("the emulator starts");
        let jobs = three_jobs(&emulator.base_url())
            .await
            .expect("the jobs run");
        for (n, results) in jobs.iter().enumerate() {
            let (prompt, messages) = JOBS[n];
            assert_eq!(results.len(), messages.len(), "job {n}");
            for (i, (r, text)) in results.iter().zip(messages).enumerate() {
                assert_eq!(r.custom_id, format!("job{n}-{i}"));
                assert!(r.is_success(), "{}: {:?}", r.custom_id, r.error());
                if prompt.contains("JSON") {
                    let parsed = r.json().expect("a JSON answer");
                    assert_eq!(parsed["echo"], *text, "{}", r.custom_id);
                } else {
                    assert_eq!(r.content(), Some(format!("Echo: {text}").as_str()));
                }
            }
        }
        // One upload and one batch per job.
        let counters = emulator.counters();
        assert_eq!(counters.files_uploaded, 3);
        assert_eq!(counters.batches_created, 3);
        emulator.shutdown().await.expect("the emulator stops");
    }
}
