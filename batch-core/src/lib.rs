//! # batch-core
//!
//! A pure, sans-IO protocol core for OpenAI's asynchronous Batch API.
//!
//! ## In scope
//! - Wire types for everything the Files and Batches API exchanges ([`api`]).
//! - The input model (items sharing a system prompt, or raw request lines for
//!   any endpoint) and a validating JSONL encoder ([`input`], [`jsonl`]).
//! - A chunk-tolerant JSONL line decoder and result-line parsing ([`jsonl`],
//!   [`results`]): a result file is decoded as it streams, in memory bounded
//!   by its longest line.
//! - Verifying and parsing the webhooks OpenAI sends when a batch ends
//!   ([`webhook`]); a verified event becomes
//!   [`Job::handle_batch_changed`](job::Job::handle_batch_changed).
//!
//! ## Out of scope
//! This crate does no IO. It does not open sockets, read files, read the
//! clock, sleep or spawn threads. Time is passed in as [`UnixMillis`];
//! bytes are passed in as slices. Transports (`batch-blocking`,
//! `batch-async`) execute what the core asks for.
//!
//! ## References
//! Comments cite "API notes §N": section N of `docs/openai-batch-api.md`
//! in this repository, which summarises OpenAI's Files and Batch API and
//! links the public API reference each fact comes from.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub use http;

pub mod api;
mod error;
pub mod input;
pub mod job;
pub mod jsonl;
pub mod provider;
pub mod results;
pub mod retry;
mod time;
pub mod trace;
pub mod webhook;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use api::Endpoint;
pub use error::{InputError, Problem};
pub use time::UnixMillis;
