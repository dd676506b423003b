//! Anthropic's Message Batches API, the job's second protocol: wire types,
//! request builders, result-line parsing and request encoding.
//!
//! A [`Job`](crate::job::Job) whose provider is
//! [`Provider::anthropic`](crate::provider::Provider::anthropic) (its
//! [`Protocol`](crate::provider::Protocol) is
//! [`AnthropicMessageBatches`](crate::provider::Protocol::AnthropicMessageBatches))
//! runs each shard as one Message Batch
//! (<https://docs.anthropic.com/en/api/creating-message-batches>):
//!
//! ```text
//!   create ──► poll ◄─┐──► download results ──► finish
//!    │  ▲       │     │      (results_url, Range resume)   │
//!    ▼  │       └─────┘                                    ▼
//!  find batch (unknown outcome:                        not-processed
//!  list, match, confirm; see below)                    outcomes for every id unseen
//! ```
//!
//! There is no upload: the requests go inline in the create body,
//! `{"requests":[..]}`, streamed from the shard ([`create_batch`]) so a
//! 256 MB body is never held in memory. A shard is at most 100,000
//! requests and 256 MB of body, framing included
//! ([`Provider::anthropic`](crate::provider::Provider::anthropic)'s limits,
//! applied by [`RequestEncoder`]). A batch's `processing_status` and
//! `request_counts` map into the job's view of a batch by
//! [`MessageBatch::to_batch`]. Its results name an outcome for every
//! request, canceled and expired ones included ([`parse_result_line`]).
//!
//! # Never paying twice: the reconcile after a lost create answer
//!
//! An OpenAI batch carries metadata naming its job, shard and attempt, so a
//! create whose answer was lost is found by listing batches. A Message
//! Batch has no metadata. The job finds it this way instead:
//!
//! 1. **Write-ahead.** Before a create is sent, the shard's checkpoint
//!    records that a create may be in flight and when it was armed
//!    (`create_armed_at`).
//! 2. **Search.** A create whose answer was lost (a cut connection, a
//!    5xx, an unreadable 2xx, a crash after arming) is looked for before
//!    anything else: `GET /v1/messages/batches`, newest first, 100 a page,
//!    following `last_id` as `after_id`, until a batch created more than
//!    15 minutes (clock skew) before the create was armed, the end of the
//!    list, or 50 pages. A *candidate* is a batch created since then
//!    whose size (`request_counts` summed) is the shard's request count,
//!    that no other shard of the job holds (as confirmed, or following it
//!    unconfirmed), and that this shard has not refuted. A batch another
//!    shard follows unconfirmed is skipped but remembered: shards of the
//!    same size whose create answers were all lost each follow a
//!    different batch, so none waits for a batch another shard is reading
//!    (whose results may be gone by the time it is this shard's turn).
//! 3. **Decide.**
//!    - No candidate, but a batch of the shard's size that another shard
//!      follows unconfirmed was skipped: it may be this shard's, and that
//!      shard's confirming read tells. The search is made again a poll
//!      interval later (when that shard has confirmed it, it is held; when
//!      it has refuted it, or stopped, it is a candidate again); nothing is
//!      created meanwhile.
//!    - No candidate and none skipped, the search complete: the create
//!      never landed, and the job creates again. This is the only way to a
//!      second create.
//!    - A candidate or more: the job follows the oldest (created nearest
//!      the create) *unconfirmed*: it polls it like its own, but never
//!      cancels it (it may be someone else's) and delivers nothing from it
//!      until it is confirmed. The job never guesses between candidates:
//!      it reads them one after another.
//!    - A search cut at 50 pages, or 32 candidates refuted in a row: the
//!      shard stops, and its requests are reported not processed
//!      (`create_unknown`, provisional) with a message naming the
//!      candidate batch ids and the shard's first and last `custom_id` to
//!      look for; a resumed job searches again.
//! 4. **Confirm.** Once the candidate has ended, its results are read
//!    once without delivering anything: it is this shard's batch when every
//!    result line names one of the shard's `custom_id`s and every one of
//!    them (the first and the last included) has a line. Then the results
//!    are read again and delivered. A line naming a `custom_id` that is not
//!    the shard's refutes it: it is someone else's (or another shard's),
//!    and the search starts again without it (refuted batches are
//!    checkpointed). Results that cannot be read, or that leave some of
//!    the shard's ids without a line and name no foreign one, confirm
//!    nothing and refute nothing: the shard stops (`batch_unconfirmed`,
//!    provisional) with a message naming the batch and what to check.
//!    A batch of exactly the shard's `custom_id`s created by someone else
//!    in the window (the same input sent by another program) cannot be
//!    told apart from the shard's own by any public field; it confirms.
//!
//! The checkpoint holds what this needs: the create's arming time
//! (`create_armed_at`), whether the followed batch is unconfirmed, and the
//! refuted batches; the request count and the first and last `custom_id`
//! come from the plan, which a resumed job is given again.
//!
//! A job cancelled while its batch is unconfirmed stops that shard
//! without cancelling the batch, and says which batch to check.
//!
//! # Results
//!
//! The results download only ever goes to the configured base URL's
//! origin: a `results_url` on another host is refused
//! ([`batch_results`]), so the key never leaves.

mod input;
mod requests;
mod results;
mod wire;

pub use input::{
    MAX_CUSTOM_ID_LEN, MessagesTemplate, RequestEncoder, check_custom_id, messages_endpoint,
    parse_request_line,
};
pub use requests::{
    BATCHES_PATH, CREATE_FRAMING, CREATE_HEAD, CREATE_TAIL, ListMessageBatches, batch_results,
    cancel_batch, create_batch, create_batch_bytes, delete_batch, list_batches, retrieve_batch,
};
pub use results::{CANCELED_CODE, EXPIRED_CODE, parse_result_line};
pub use wire::{
    ErrorDetail, ErrorEnvelope, MessageBatch, MessageBatchCounts, MessageBatchPage,
    ProcessingStatus, RESULTS_URL, format_rfc3339, parse_rfc3339,
};

use serde::de::DeserializeOwned;

use crate::api::{ApiError, ResponseError, parse_api_error};

/// The Messages API path, the "endpoint" a Message Batch's requests read as.
pub const MESSAGES_PATH: &str = "/v1/messages";

/// The default `anthropic-version` header value.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// The default base URL (without a version: paths carry `/v1`).
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// The most requests one Message Batch holds.
pub const MAX_REQUESTS: u64 = 100_000;

/// The largest create body, in bytes (256 MB, read as 256 × 1000 × 1000
/// to stay under the limit whichever megabyte is meant).
pub const MAX_BODY_BYTES: u64 = 256 * 1000 * 1000;

/// Parses the answer to create, retrieve or cancel: a [`MessageBatch`].
///
/// # Errors
/// [`ResponseError::Api`] for a non-2xx status (Anthropic's error
/// envelope reads as OpenAI's: `error.type` and `error.message`),
/// [`ResponseError::Decode`] for a 2xx body that is not a batch.
pub fn parse_message_batch(
    head: &http::response::Parts,
    body: &[u8],
) -> Result<MessageBatch, ResponseError> {
    parse("message batch", head, body)
}

/// Parses the answer to [`list_batches`]: a [`MessageBatchPage`].
///
/// # Errors
/// As [`parse_message_batch`].
pub fn parse_message_batch_page(
    head: &http::response::Parts,
    body: &[u8],
) -> Result<MessageBatchPage, ResponseError> {
    parse("message batch list", head, body)
}

fn parse<T: DeserializeOwned>(
    what: &'static str,
    head: &http::response::Parts,
    body: &[u8],
) -> Result<T, ResponseError> {
    if !head.status.is_success() {
        return Err(parse_api_error(head, body).into());
    }
    serde_json::from_slice(body).map_err(|e| ResponseError::Decode {
        status: head.status.as_u16(),
        what,
        detail: e.to_string(),
        excerpt: String::from_utf8_lossy(&body[..body.len().min(ApiError::EXCERPT_MAX_BYTES)])
            .into_owned(),
    })
}
