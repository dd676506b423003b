//! The basic flow, blocking: a shared system prompt, a few items, one call
//! to `submit_and_wait`, and each result's text and parsed JSON.
//!
//! It runs on its own: the emulator of the Files and Batches API starts
//! in-process, so no key and no network are needed. Against OpenAI, build
//! the client with `Client::from_env()` (it reads `OPENAI_API_KEY`) and keep
//! the default poll interval.
//!
//! ```sh
//! cargo run -p batch-blocking --example seed_flow
//! ```
//!
//! Its test (`cargo test -p batch-blocking --example seed_flow`) runs the
//! same flow and checks every outcome.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use batch_blocking::{Client, ClientConfig};
use batch_core::api::ApiConfig;
use batch_core::input::{Item, StructuredPrompt, SystemPrompt};
use batch_core::job::{BatchOptions, JobResult};
use batch_emulator::Emulator;
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The reviews to label, by `custom_id`.
const REVIEWS: [(&str, &str); 3] = [
    ("review-1", "Arrived on time and works as described."),
    (
        "review-2",
        "Broke after two days; the seller never answered.",
    ),
    ("review-3", "Fine for the price."),
];

fn main() -> Result<(), BoxError> {
    // 5000 virtual seconds per real second: a batch ends in well under a second.
    let emulator = Emulator::builder().speed(5000.0).start_blocking()?;
    for r in seed_flow(&emulator.base_url())? {
        match r.error() {
            None => println!(
                "{}: text {:?}, JSON {}",
                r.custom_id(),
                r.content().unwrap_or_default(),
                r.json().map(|j| j.to_string()).unwrap_or_default(),
            ),
            Some(e) => println!("{}: {e}", r.custom_id()),
        }
    }
    Ok(())
}

/// Submits the reviews to the server at `base_url`, waits for the batch and
/// returns one outcome per review, in input order.
fn seed_flow(base_url: &str) -> Result<Vec<JobResult>, batch_blocking::Error> {
    let api = ApiConfig::new("sk-emulator").with_base_url(base_url);
    let client = Client::new(ClientConfig::new(api))?;
    // One system prompt shared by every request.
    let prompt = SystemPrompt::Structured(
        StructuredPrompt::new()
            .role("a support analyst")
            .aim("label each customer review")
            .output_format("JSON with keys `label` and `reason`"),
    );
    let items: Vec<Item> = REVIEWS
        .iter()
        .map(|(id, text)| {
            Item::new(*id, *text).extra("response_format", json!({"type": "json_object"}))
        })
        .collect();
    let opts = BatchOptions::new("gpt-4o-mini").poll_interval(Duration::from_millis(100));
    client.submit_and_wait(&items, &prompt, &opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_review_gets_its_answer_as_text_and_json() {
        let emulator = Emulator::builder()
            .speed(5000.0)
            .start_blocking()
            .expect("the emulator starts");
        let results = seed_flow(&emulator.base_url()).expect("the job runs");
        assert_eq!(results.len(), REVIEWS.len());
        for (r, (id, text)) in results.iter().zip(REVIEWS) {
            assert_eq!(r.custom_id, id);
            assert!(r.is_success(), "{id}: {:?}", r.outcome);
            // The emulator answers a JSON request with the user text echoed.
            let parsed = r.json().expect("a JSON answer");
            assert_eq!(parsed["echo"], text, "{id}");
            let text: serde_json::Value =
                serde_json::from_str(r.content().expect("a text")).expect("JSON text");
            assert_eq!(&text, parsed, "{id}: `json()` is the text, parsed");
        }
        let counters = emulator.counters();
        assert_eq!(counters.batches_created, 1);
        assert_eq!(counters.files_uploaded, 1);
    }
}
