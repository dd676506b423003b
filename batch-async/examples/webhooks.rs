//! Webhooks instead of polling: an axum app that receives OpenAI's batch
//! webhooks, verifies them, and tells a running job to look at its batch at
//! once.
//!
//! The job polls only once an hour (a safety net in case a delivery is
//! lost); its results still come the moment the batch ends, because the
//! `batch.completed` webhook makes the job poll right then.
//!
//! This example is self-contained: it starts the emulator in-process with
//! webhooks pointed at its own receiver, so it needs no key and no network.
//! Run it with `cargo run -p batch-async --example webhooks`. Against the
//! real API, you would register the receiver's public HTTPS URL in the
//! dashboard (<https://platform.openai.com/docs/guides/webhooks>), put the
//! `whsec_…` secret it shows in `OPENAI_WEBHOOK_SECRET`, and build the client
//! with `Client::from_env()`.
//!
//! Its test (`cargo test -p batch-async --example webhooks`) runs the same
//! code and checks that the job finished on the webhook: one status poll in
//! all, with an hour-long poll interval.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use batch_async::{Client, ClientConfig, Clock, Hints, SystemClock};
use batch_core::api::ApiConfig;
use batch_core::input::{Item, SystemPrompt};
use batch_core::job::{BatchJob, BatchOptions, JobResult, StopAfter};
use batch_core::webhook::{Verifier, WebhookSecret};
use batch_emulator::{Counters, Emulator, WebhookConfig};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What every webhook request handler shares.
#[derive(Clone)]
struct App {
    verifier: Verifier,
    hints: Hints,
}

/// `POST /webhooks/openai`: verify, then tell the job. Answer 2xx only for a
/// message we accept; anything else is retried by the sender.
async fn receive(State(app): State<App>, headers: HeaderMap, body: Bytes) -> StatusCode {
    match app.verifier.unwrap(&headers, &body, SystemClock.now()) {
        Ok(event) => {
            if let Some(batch_id) = event.batch_id() {
                // An error only means the job has already ended.
                let _ = app.hints.batch_changed(batch_id).await;
            }
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// What a run produced.
struct Outcome {
    results: Vec<JobResult>,
    counters: Counters,
}

/// Starts the receiver and the emulator, runs one job to its end with an
/// hour-long poll interval, and returns its results.
async fn run_demo() -> Result<Outcome, BoxError> {
    // The secret the sender signs with (the dashboard shows it as `whsec_…`).
    let secret = WebhookSecret::from_bytes(b"example webhook secret, not a real one".to_vec())?;

    // 1. The web app's socket, bound first so the emulator knows where to send.
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = format!("http://{}/webhooks/openai", listener.local_addr()?);

    // 2. The emulator, announcing every batch that ends to that URL.
    let emulator = Emulator::builder()
        .speed(1000.0)
        .webhook(WebhookConfig::new(url, secret.clone()))
        .start()
        .await?;

    // 3. A job that polls its batch once an hour.
    let client = Client::new(ClientConfig::new(
        ApiConfig::new("sk-example").with_base_url(emulator.base_url()),
    ))?;
    let items: Vec<Item> = ["What is 2 + 2?", "Name a prime number.", "Say hello."]
        .iter()
        .enumerate()
        .map(|(i, q)| Item::new(format!("q{i}"), *q))
        .collect();
    let prompt = SystemPrompt::Text("Answer briefly.".into());
    let opts = BatchOptions::new("gpt-4o-mini").poll_interval(Duration::from_secs(3600));
    let mut handle = BatchJob::from_items(&items, &prompt, &opts, 2024)?;
    let mut job = handle.job(client.api().clone(), StopAfter::Finished, SystemClock.now())?;

    // 4. The web app: verified batch events become hints for the job.
    let (hints, inbox) = batch_async::hints();
    let app = Router::new()
        .route("/webhooks/openai", post(receive))
        .with_state(App {
            verifier: Verifier::new(secret),
            hints,
        });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // 5. Drive the job; it sleeps until its hourly poll or a webhook.
    let mut results = Vec::new();
    let ran = {
        let mut io = handle.io(false, |r| results.push(r), |_| {});
        batch_async::run_with_hints(&mut job, &client, &SystemClock, &mut io, inbox).await
    };

    server.abort();
    let counters = emulator.counters();
    emulator.shutdown().await?;
    let summary = ran?;
    summary.verdict()?;
    results.sort_by_key(|r| r.index);
    Ok(Outcome { results, counters })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let outcome = run_demo().await?;
    let mut out = std::io::stdout().lock();
    for r in &outcome.results {
        match r.content() {
            Some(text) => writeln!(out, "{}: {text}", r.custom_id())?,
            None => writeln!(out, "{}: {:?}", r.custom_id(), r.status())?,
        }
    }
    writeln!(
        out,
        "status polls: {} (poll interval: 1 hour)",
        outcome.counters.requests_on("batches.get")
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_job_finishes_on_the_webhook_not_on_its_hourly_poll() {
        // A guard against a hang (the next scheduled poll is an hour away).
        let outcome = tokio::time::timeout(Duration::from_secs(120), run_demo())
            .await
            .expect("the job ended on the webhook, long before its hourly poll")
            .expect("the demo ran");
        assert_eq!(outcome.results.len(), 3);
        for (i, r) in outcome.results.iter().enumerate() {
            assert_eq!(r.custom_id, format!("q{i}"));
            assert!(
                r.is_success() && r.content().is_some_and(|c| c.starts_with("Echo: ")),
                "{r:?}"
            );
        }
        // One status poll in all: the one the webhook asked for.
        assert_eq!(outcome.counters.requests_on("batches.get"), 1);
        assert!(outcome.counters.webhooks_delivered >= 1);
    }
}
