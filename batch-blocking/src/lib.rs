//! # batch-blocking
//!
//! The blocking transport for [`batch_core`]: it executes the HTTP exchanges
//! a [`Job`](batch_core::job::Job) asks for with `ureq`, sleeps when the job
//! says wait, and hands results and checkpoints to a
//! [`JobIo`](batch_core::job::JobIo). It decides nothing: no status
//! comparisons, no JSON, no retries. Those live in `batch-core`.
//!
//! `batch-async` is the same crate for async code, with the same file names
//! and public names.
//!
//! ## Settings
//!
//! [`ClientConfig`] holds what real networks need, read the same way by both
//! transports: the retry policy (attempts, base delay, cap, and a total time
//! budget, `retry.max_elapsed`), the per-request bounds (`exchange`: a
//! total deadline, a stall rule, a size cap), connect and read timeouts, the
//! proxy (the environment's by default; a URL; or
//! [`Proxy::None`](batch_core::job::Proxy::None), which ignores the
//! environment), the platform's roots plus extra PEM root certificates, and
//! a user-agent suffix. Bring your own HTTP client with `Client::with_agent`.
//! `submit_and_wait_with_events` reports the job's events (uploads,
//! batches, progress, each retry) as they happen.
//!
//! ## Tracing
//!
//! With the `tracing` cargo feature, every drive loop opens a `job` span
//! (`job_id`, `shards`) and every request a child `exchange` span (`id`,
//! `shard`, `op`, `attempt`, `method`, `path` without the query, `status`,
//! `bytes_sent`, `bytes_received`), closed by an `exchange ended`,
//! `exchange failed` (with its kind) or `exchange dropped` event; each job
//! event is a `job event` event (its `Debug` form: a retry's reason may
//! quote the server, with the key removed as everywhere the job reports).
//! No header, body or query is recorded, so the key never is.
//!
//! ```no_run
//! use batch_blocking::Client;
//! use batch_core::input::{Item, SystemPrompt};
//! use batch_core::job::BatchOptions;
//!
//! let client = Client::from_env()?;
//! let items = vec![Item::new("q1", "What is 2 + 2?")];
//! let prompt = SystemPrompt::Text("Answer briefly.".into());
//! let opts = BatchOptions::new("gpt-4o-mini");
//! let results = client.submit_and_wait(&items, &prompt, &opts)?;
//! for r in &results {
//!     match r.error() {
//!         None => println!("{}: {}", r.custom_id(), r.content().unwrap_or_default()),
//!         Some(e) => println!("{} did not succeed: {e}", r.custom_id()),
//!     }
//! }
//! # Ok::<(), batch_blocking::Error>(())
//! ```
//!
//! Typed requests and structured output: build each request line with
//! [`ChatRequest`](batch_core::input::ChatRequest) (or `ResponsesRequest`,
//! `EmbeddingsRequest`), and read each reply into your own type with
//! [`JobResult::parse`](batch_core::job::JobResult::parse).
//!
//! ```no_run
//! use batch_blocking::Client;
//! use batch_core::input::{ChatRequest, JsonSchema, ResponseFormat};
//! use batch_core::job::BatchOptions;
//! use serde_json::json;
//!
//! #[derive(serde::Deserialize)]
//! struct Verdict { label: String }
//!
//! let client = Client::from_env()?;
//! let schema = json!({"type": "object", "properties": {"label": {"type": "string"}},
//!                     "required": ["label"], "additionalProperties": false});
//! let base = ChatRequest::new("", "gpt-4o-mini")
//!     .system("Label the message as spam or ham.")
//!     .response_format(ResponseFormat::json_schema(JsonSchema::new("verdict", schema).strict(true)));
//! let requests = ["Win a prize!", "Lunch at noon?"]
//!     .iter()
//!     .enumerate()
//!     .map(|(i, text)| base.clone().custom_id(format!("m{i}")).user(*text).build())
//!     .collect::<Result<Vec<_>, _>>()?;
//! let mut job = client.submit_requests(&requests, &BatchOptions::new("gpt-4o-mini"))?;
//! for r in client.get_results(&mut job)? {
//!     match r.parse::<Verdict>() {
//!         Ok(v) => println!("{}: {}", r.custom_id(), v.label),
//!         Err(e) => println!("{e}"),
//!     }
//! }
//! # Ok::<(), batch_blocking::Error>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod by_id;
mod client;
mod clock;
mod convert;
mod error;
mod hints;
mod run;
mod trace;

pub use batch_core::job::ClientConfig;
pub use client::Client;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use hints::{HintInbox, Hints, JobEnded, hints, run_with_hints};
pub use run::run;

pub use batch_core;
