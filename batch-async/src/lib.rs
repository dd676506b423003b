//! # batch-async
//!
//! The async transport for [`batch_core`]: it executes the HTTP exchanges a
//! [`Job`](batch_core::job::Job) asks for with `reqwest`, sleeps (on tokio)
//! when the job says wait, and hands results and checkpoints to a
//! [`JobIo`](batch_core::job::JobIo). It decides nothing: no status
//! comparisons, no JSON, no retries. Those live in `batch-core`.
//!
//! `batch-blocking` is the same crate for blocking code, with the same file
//! names and public names.
//!
//! ```no_run
//! use batch_async::Client;
//! use batch_core::input::{Item, SystemPrompt};
//! use batch_core::job::BatchOptions;
//!
//! # async fn demo() -> Result<(), batch_async::Error> {
//! let client = Client::from_env()?;
//! let items = vec![Item::new("q1", "What is 2 + 2?")];
//! let prompt = SystemPrompt::Text("Answer briefly.".into());
//! let opts = BatchOptions::new("gpt-4o-mini");
//! let results = client.submit_and_wait(&items, &prompt, &opts).await?;
//! for r in &results {
//!     println!("{}: {:?}", r.custom_id, r.outcome);
//! }
//! # Ok(())
//! # }
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

pub use batch_core::job::ClientConfig;
pub use client::Client;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use hints::{HintInbox, Hints, JobEnded, hints, run_with_hints};
pub use run::run;

pub use batch_core;
