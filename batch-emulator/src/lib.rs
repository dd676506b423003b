//! An offline server for the OpenAI Files and Batches API.
//!
//! `batch-emulator` is a real HTTP server (axum on tokio) that answers
//! `POST/GET/DELETE /v1/files…` and `POST/GET /v1/batches…` the way the live
//! API does: the same JSON shapes (with `null` for unset fields), the same
//! error envelope, a batch lifecycle driven by a virtual clock, output and
//! error files in the real line format, and deterministic answers for every
//! endpoint a batch can target. It is the test double for clients of the
//! Batch API and the backbone of this workspace's end-to-end tests.
//!
//! It does not call OpenAI, does not check real API keys (any bearer token,
//! or one fixed key), and does not model rate limits other than by fault
//! injection.
//!
//! # Limits and models
//!
//! It keeps the Batch API's own limits by default: batch input files of at
//! most 209,715,200 bytes (200 MiB; a larger upload is a 400), 50,000
//! requests per batch and 50,000 embedding inputs per embeddings batch
//! (over either, the batch fails with `too_many_tasks`). It knows the public
//! model names and reports the dated snapshot each runs as
//! (`gpt-4o-mini` → `gpt-4o-mini-2024-07-18`); a batch naming another model
//! fails with `model_not_found`, unless
//! [`EmulatorBuilder::accept_any_model`] is on. The crate's README lists
//! each behaviour with the public evidence it follows.
//!
//! # Starting it
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use batch_emulator::{Emulator, FaultConfig};
//!
//! let emu = Emulator::builder()
//!     .speed(1000.0) // a 60 s validation takes 60 ms
//!     .faults(FaultConfig::parse("429-every=7,cut-content-every=3")?)
//!     .start()
//!     .await?;
//! let base = emu.base_url(); // http://127.0.0.1:PORT/v1
//! # let _ = base;
//! let counters = emu.counters();
//! assert_eq!(counters.batches_created, 0);
//! emu.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! From sync code, [`EmulatorHandle::start_blocking`] runs it on a thread
//! with its own runtime.
//!
//! # Time
//!
//! Every timestamp is on a virtual clock that starts at the wall clock and
//! runs `speed` times faster. Base durations (see [`Timings`]): 60 s
//! validating, 1 s per request, 30 s finalizing, 60 s cancelling, a 24 h
//! completion window. `POST /__emulator/advance` (or
//! [`RunningEmulator::advance`]) jumps the clock. A stepped clock
//! ([`EmulatorBuilder::step_per_request`]) ignores real time and moves a fixed
//! step per request, so identical request sequences get identical answers.
//!
//! # Directives
//!
//! A request line can steer its own answer with text in any of its string
//! values: `[[emulator:fail=400]]` (any 400..=599; the line lands in the
//! error file), `[[emulator:json]]` (a fenced JSON reply),
//! `[[emulator:length]]` (a cut reply, `finish_reason: "length"`) and
//! `[[emulator:flag]]` (moderations flag it).
//!
//! # Faults
//!
//! See [`FaultConfig::parse`] for the spec syntax, e.g.
//! `429-every=7,500-every=11@batches.create,cut-content-every=3,slow-body-ms=5,
//! garbage-line,stall-validating-ms=200,expire,token-limit-every=2`.
//!
//! # Webhooks
//!
//! With a [`WebhookConfig`] ([`EmulatorBuilder::webhook`], or
//! `--webhook-url URL --webhook-secret whsec_…` on the command line), every
//! batch that ends is announced to the URL as OpenAI does it: a signed
//! `batch.completed`, `batch.failed`, `batch.expired` or `batch.cancelled`
//! event, retried on non-2xx answers. [`WebhookFault`] makes deliveries late,
//! double or badly signed.
//!
//! # Anthropic mode
//!
//! [`EmulatorBuilder::provider`]`(`[`ProviderMode::Anthropic`]`)` (or
//! `--provider anthropic`) serves Anthropic's Message Batches API
//! (`/v1/messages/batches…`, `x-api-key` and `anthropic-version` headers,
//! Anthropic's error envelope, results as JSONL from `results_url`) with
//! the same clock, faults and counters; its base URL is the bare server
//! root. The crate's README describes what is emulated and from which
//! public page.
//!
//! # Private paths
//!
//! `GET /__emulator/counters`, `POST /__emulator/reset-counters`,
//! `GET|POST /__emulator/faults`, `POST /__emulator/advance`,
//! `GET /__emulator/clock`. They need no auth.
//!
//! ## References
//! Comments cite "API notes §N": section N of `docs/openai-batch-api.md`
//! in this repository, which summarises OpenAI's Files and Batch API and
//! links the public API reference each fact comes from.

mod anthropic;
mod clock;
mod config;
mod counters;
mod error;
mod faults;
mod lifecycle;
mod model;
mod models;
mod provider;
mod respond;
mod running;
mod server;
mod state;
mod util;
mod validate;
mod webhooks;

pub use config::{EmulatorConfig, Timings};
pub use counters::Counters;
pub use faults::{Fault, FaultConfig, FaultSpecError, Route, Trigger};
pub use provider::ProviderMode;
pub use running::{Emulator, EmulatorBuilder, EmulatorHandle, RunningEmulator, StartError};
pub use webhooks::{WebhookConfig, WebhookFault, WebhookFaultError};
