//! # batch-core
//!
//! A pure, sans-IO protocol core for OpenAI's asynchronous Batch API.
//!
//! Most programs do not use this crate directly: `batch-blocking` and
//! `batch-async` run whole jobs with one call (`Client::submit_and_wait`).
//! Use it to write a transport of your own, to test against it without a
//! network, or to build and parse single requests.
//!
//! ## In scope
//! - Wire types for everything the Files and Batches API exchanges ([`api`]).
//! - The input model (items sharing a system prompt, or raw request lines for
//!   any endpoint) and a validating JSONL encoder ([`input`], [`jsonl`]).
//! - A chunk-tolerant JSONL line decoder and result-line parsing ([`jsonl`],
//!   [`results`]): a result file is decoded as it streams, in memory bounded
//!   by its longest line.
//! - The [`Job`](job::Job) state machine that runs a whole job, sharded over
//!   as many batches as the API's limits need, from input to one outcome per
//!   request: uploads, creates, polls, downloads, retries with backoff
//!   ([`retry`]), crash-safe checkpoints and resume ([`job`]).
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
//! ## The driver contract
//! A driver owns a [`Job`](job::Job), an HTTP client, a clock and a
//! [`JobIo`](job::JobIo) (where checkpoints and results go). It asks the job
//! what to do with [`Job::poll`](job::Job::poll) and acts on the
//! [`Step`](job::Step) it gets; the full rules are on [`Job`](job::Job).
//! In short:
//!
//! - **Call order.** `poll`, act on the step, `poll` again. For each
//!   [`Step::Send`](job::Step::Send), report exactly one of: the response
//!   head ([`handle_head`](job::Job::handle_head)), any number of body
//!   chunks ([`handle_body`](job::Job::handle_body)) and the end
//!   ([`handle_end`](job::Job::handle_end)); or a transport failure
//!   ([`handle_failure`](job::Job::handle_failure)) at any point. Before
//!   the head, [`handle_sent`](job::Job::handle_sent) may report request
//!   body bytes going out (optional; it lets the job judge a stalled
//!   upload). A [`Step::Abort`](job::Step::Abort) drops an exchange the
//!   job judged too slow or too large; report nothing more on it.
//! - **Drain rule.** `handle_body` lends a [`BodyFeed`](job::BodyFeed) of
//!   the results decoded from that chunk; hand each to
//!   [`JobIo::result`](job::JobIo::result) before the next chunk. (Results
//!   left in it come out of `poll` as [`Step::Result`](job::Step::Result),
//!   so nothing is lost either way.)
//! - **Time rule.** Pass the current time as `now` on every call; it must
//!   not go backwards (the job clamps it if it does). On
//!   [`Step::Wait`](job::Step::Wait), sleep until `until` or until a report
//!   arrives; waking early or late is harmless.
//! - **Persist rule.** On [`Step::Persist`](job::Step::Persist), make every
//!   result delivered so far durable, then store the checkpoint
//!   ([`JobIo::persist`](job::JobIo::persist)); a crashed job resumes from
//!   it with [`Job::resume`](job::Job::resume) without paying twice.
//! - **Credentials.** A job whose credential expires
//!   ([`JobConfig::credential`](job::JobConfig::credential)) returns
//!   [`Step::RefreshCredential`](job::Step::RefreshCredential) when it needs
//!   a token: get one from the user's source and hand it over with
//!   [`Job::set_credential`](job::Job::set_credential) (or the failure with
//!   [`Job::handle_credential_failure`](job::Job::handle_credential_failure))
//!   before calling `poll` again (see [`credential`]).
//! - **Uploads.** A shard upload's body is
//!   [`Outgoing::Multipart`](api::Outgoing::Multipart): stream the shard's
//!   bytes from [`JobIo::open_shard`](job::JobIo::open_shard) between its
//!   `head` and `tail`.
//!
//! ## The loop, by hand
//! The example below runs a one-request job to its end against a fake
//! server written in a dozen lines: `answer` plays upload, create, poll and
//! download for one shard. A real driver sends each request over HTTP
//! instead (the loops in `batch-blocking` and `batch-async` are this loop,
//! with exchanges running concurrently).
//!
//! ```
//! use batch_core::UnixMillis;
//! use batch_core::api::{ApiBase, ApiConfig, Outgoing};
//! use batch_core::http::{self, Request, Response};
//! use batch_core::input::{Item, SystemPrompt};
//! use batch_core::job::{BatchJob, BatchOptions, JobIo, Step, StopAfter};
//!
//! /// The fake server: one upload, one batch, one output file.
//! fn answer(req: &Request<Outgoing>) -> (http::response::Parts, Vec<u8>) {
//!     const OUT: &str = r#"{"id":"batch_req_1","custom_id":"q1","response":{"status_code":200,"request_id":"req_1","body":{"object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"4"},"finish_reason":"stop"}]}},"error":null}
//! "#;
//!     let file = |id: &str, bytes: usize| format!(
//!         r#"{{"id":"{id}","object":"file","bytes":{bytes},"created_at":1,"filename":"f.jsonl","purpose":"batch"}}"#);
//!     let batch = |status: &str, out: &str| format!(
//!         r#"{{"id":"batch_1","object":"batch","endpoint":"/v1/chat/completions","input_file_id":"file-in","completion_window":"24h","status":"{status}","output_file_id":{out},"created_at":1}}"#);
//!     let body = match (req.method().as_str(), req.uri().path()) {
//!         ("POST", "/v1/files") => file("file-in", 200),
//!         ("POST", "/v1/batches") => batch("validating", "null"),
//!         ("GET", "/v1/batches/batch_1") => batch("completed", r#""file-out""#),
//!         ("GET", "/v1/files/file-out") => file("file-out", OUT.len()),
//!         ("GET", "/v1/files/file-out/content") => OUT.to_owned(),
//!         (method, path) => panic!("unexpected {method} {path}"),
//!     };
//!     let response = Response::builder().header("content-length", body.len()).body(());
//!     (response.expect("a valid head").into_parts().0, body.into_bytes())
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let items = [Item::new("q1", "What is 2 + 2?")];
//! let prompt = SystemPrompt::Text("Answer with a number.".into());
//! let opts = BatchOptions::new("gpt-4o-mini");
//! let mut handle = BatchJob::from_items(&items, &prompt, &opts, 1)?;
//! let api = ApiBase::new(&ApiConfig::new("sk-test").with_base_url("http://fake.invalid/v1"))?;
//! let mut now = UnixMillis::from_secs(1_700_000_000);
//! let mut job = handle.job(api, StopAfter::Finished, now)?;
//! // Checkpoints and results go to memory; a real program writes them to disk.
//! let mut io = handle.io(false, |_| {}, |_| {});
//! let summary = loop {
//!     match job.poll(now) {
//!         Step::Send { id, request } => {
//!             let (head, body) = answer(&request);
//!             job.handle_head(id, head, now)?;
//!             for result in job.handle_body(id, &body)? {
//!                 io.result(result)?; // the drain rule
//!             }
//!             job.handle_end(id, now)?;
//!         }
//!         Step::Wait { until, .. } => now = until, // a real driver sleeps
//!         Step::Persist(checkpoint) => io.persist(&checkpoint)?,
//!         Step::Result(result) => io.result(result)?,
//!         Step::Event(event) => io.event(&event)?,
//!         Step::Done(summary) => break summary,
//!         // Abort: nothing is ever in flight between two polls here.
//!         _ => {}
//!     }
//! };
//! drop(io);
//! assert!(summary.all_succeeded());
//! for r in handle.outcomes() {
//!     println!("{}: {}", r.custom_id(), r.content().unwrap_or_default());
//! }
//! # let contents: Vec<_> = handle.outcomes().map(|r| r.content().map(str::to_owned)).collect();
//! # assert_eq!(contents, [Some("4".to_owned())]);
//! # Ok(())
//! # }
//! ```
//!
//! ## Phases of a shard
//! Each shard of a job goes through these phases; an upload or create
//! whose answer was lost is looked for before it is done again, and a
//! download cut off resumes with `Range`:
//!
//! ```text
//!   upload ──► create ──► poll ◄─┐──► download output ──► download errors ──► finish
//!     │  ▲       │  ▲       │    │         (Range resume on cut-off)            │
//!     ▼  │       ▼  │       └────┘                                              ▼
//!  find file   find batch      (token_limit_exceeded: wait, create again)   not-processed
//!  (unknown     (unknown                                                     outcomes for
//!   outcome)     outcome)                                                    every id unseen
//! ```
//!
//! ## References
//! Comments cite "API notes §N": section N of `docs/openai-batch-api.md`
//! in this repository, which summarises OpenAI's Files and Batch API and
//! links the public API reference each fact comes from.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub use http;

pub mod anthropic;
pub mod api;
pub mod credential;
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
pub use time::{UnixMillis, civil_from_days, days_from_civil};
