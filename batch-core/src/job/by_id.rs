//! Operations on a batch known only by its id, decided once for both
//! transports.
//!
//! Reading a batch's outcomes by id is a [`Job`](crate::job::Job) like any
//! other: its plan is [`JobPlan::for_batch`](crate::job::JobPlan::for_batch)
//! and its handle [`BatchJob::for_batch`](crate::job::BatchJob::for_batch),
//! so polling, cancelling and collecting by id go through the same
//! transitions, retries and Range resume as a job the process created.
//! What lives here is the bookkeeping of a plain file download
//! (`Client::download_file` in each transport): the file object's declared
//! size bounds the content read; and the single requests on a batch by id
//! (`Client::retrieve_batch`, `cancel_batch` and `list` in each transport)
//! in the protocol of the configured provider
//! ([`Protocol`](crate::provider::Protocol)): OpenAI's `/batches` or
//! Anthropic's `/v1/messages/batches` (see [`crate::anthropic`]), whose
//! answers read as the same [`Batch`] and [`List`].

use std::time::Duration;

use http::Request;

use crate::anthropic;
use crate::api::{
    self, ApiBase, Batch, FileObject, List, ListBatches, Outgoing, RequestError, ResponseError,
};
use crate::job::ExchangeLimits;
use crate::provider::Protocol;
use crate::time::UnixMillis;

fn message_batches(api: &ApiBase) -> bool {
    api.provider().protocol == Protocol::AnthropicMessageBatches
}

/// The request reading batch `batch_id` once: `GET /batches/{id}`, or
/// `GET /v1/messages/batches/{id}` for Message Batches. Read its answer
/// with [`parse_batch_answer`].
///
/// # Errors
/// [`RequestError::InvalidId`] if `batch_id` is not a plain path segment.
pub fn retrieve_batch_request(
    api: &ApiBase,
    batch_id: &str,
) -> Result<Request<Outgoing>, RequestError> {
    if message_batches(api) {
        anthropic::retrieve_batch(api, batch_id)
    } else {
        api::retrieve_batch(api, batch_id)
    }
}

/// The request cancelling batch `batch_id`: `POST /batches/{id}/cancel`,
/// or `POST /v1/messages/batches/{id}/cancel` for Message Batches. Read its
/// answer with [`parse_batch_answer`].
///
/// # Errors
/// As [`retrieve_batch_request`].
pub fn cancel_batch_request(
    api: &ApiBase,
    batch_id: &str,
) -> Result<Request<Outgoing>, RequestError> {
    if message_batches(api) {
        anthropic::cancel_batch(api, batch_id)
    } else {
        api::cancel_batch(api, batch_id)
    }
}

/// The request listing one page of batches, newest first, after the
/// batch `after` (the previous page's `last_id`): `GET /batches?after=`,
/// or `GET /v1/messages/batches?after_id=` for Message Batches. Read its
/// answer with [`parse_batch_list_answer`].
///
/// # Errors
/// [`RequestError`] for a `limit` out of the API's range (1 to 100 for
/// OpenAI, 1 to 1,000 for Message Batches) or an empty `after`.
pub fn list_batches_request(
    api: &ApiBase,
    limit: Option<u32>,
    after: Option<&str>,
) -> Result<Request<Outgoing>, RequestError> {
    if message_batches(api) {
        anthropic::list_batches(
            api,
            &anthropic::ListMessageBatches {
                limit,
                before_id: None,
                after_id: after.map(str::to_owned),
            },
        )
    } else {
        api::list_batches(
            api,
            &ListBatches {
                after: after.map(str::to_owned),
                limit,
            },
        )
    }
}

/// Reads the answer to [`retrieve_batch_request`] or
/// [`cancel_batch_request`] as a [`Batch`]; a Message Batch reads as the
/// job reads it ([`MessageBatch::to_batch`](anthropic::MessageBatch::to_batch)).
///
/// # Errors
/// [`ResponseError::Api`] for a non-2xx status, [`ResponseError::Decode`]
/// for a 2xx body that is not a batch.
pub fn parse_batch_answer(
    api: &ApiBase,
    head: &http::response::Parts,
    body: &[u8],
) -> Result<Batch, ResponseError> {
    if message_batches(api) {
        anthropic::parse_message_batch(head, body).map(|b| b.to_batch())
    } else {
        api::parse_batch(head, body)
    }
}

/// Reads the answer to [`list_batches_request`] as a page of [`Batch`]es,
/// whose `last_id` is the next page's `after`.
///
/// # Errors
/// As [`parse_batch_answer`].
pub fn parse_batch_list_answer(
    api: &ApiBase,
    head: &http::response::Parts,
    body: &[u8],
) -> Result<List<Batch>, ResponseError> {
    if !message_batches(api) {
        return api::parse_batch_list(head, body);
    }
    let page = anthropic::parse_message_batch_page(head, body)?;
    Ok(List {
        object: "list".to_owned(),
        data: page
            .data
            .iter()
            .map(anthropic::MessageBatch::to_batch)
            .collect(),
        first_id: page.first_id,
        last_id: page.last_id,
        has_more: page.has_more,
    })
}

/// Whether the provider serves files to download by id
/// (`Client::download_file`).
///
/// # Errors
/// For Message Batches, which have no files (their results are read by
/// batch id, `batch_results`), a message saying so.
pub fn check_file_download(api: &ApiBase, file_id: &str) -> Result<(), String> {
    if message_batches(api) {
        return Err(format!(
            "Anthropic's Message Batches have no files to download (file {file_id:?}): requests go inline in the create body and results are served by batch id; read them with batch_results or stream_batch_results"
        ));
    }
    Ok(())
}

/// Checks a file's content against the size its file object declares
/// (`GET /files/{id}` first, then `GET /files/{id}/content`): a body longer
/// than declared is cut, and one shorter is reported as truncated.
///
/// Feed it every chunk's length with [`accept`](Self::accept) before writing
/// the chunk, then call [`finish`](Self::finish) at the end of the body.
///
/// Made [`watched`](Self::watched), it also holds the download to the
/// bounds a job's downloads have ([`ExchangeLimits`]): a deadline scaled to
/// the declared size, and the stall rule. Feed it the time of each chunk
/// with [`accept_at`](Self::accept_at).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDownload {
    file_id: String,
    declared: u64,
    received: u64,
    watch: Option<Watch>,
}

/// The time bounds of a watched download.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Watch {
    started: UnixMillis,
    deadline: UnixMillis,
    window: Duration,
    min_bytes: u64,
    /// The current stall window began here and has seen this many bytes.
    window_start: UnixMillis,
    window_bytes: u64,
}

impl FileDownload {
    /// A download of `file`, bounded by its `bytes`.
    pub fn new(file: &FileObject) -> FileDownload {
        FileDownload {
            file_id: file.id.clone(),
            declared: file.bytes,
            received: 0,
            watch: None,
        }
    }

    /// A download of `file` that starts at `now`, bounded by its `bytes`
    /// and by `limits`: it must end within
    /// [`ExchangeLimits::transfer_time`] of its declared size, and receive
    /// at least [`stall_min_bytes`](ExchangeLimits::stall_min_bytes) in
    /// every [`stall_window`](ExchangeLimits::stall_window).
    pub fn watched(file: &FileObject, limits: &ExchangeLimits, now: UnixMillis) -> FileDownload {
        FileDownload {
            watch: Some(Watch {
                started: now,
                deadline: now.saturating_add(limits.transfer_time(file.bytes)),
                window: limits.stall_window,
                min_bytes: limits.stall_min_bytes,
                window_start: now,
                window_bytes: 0,
            }),
            ..FileDownload::new(file)
        }
    }

    /// [`accept`](Self::accept), for a chunk that arrived at `now`; a
    /// [`watched`](Self::watched) download also judges its bounds. Call it
    /// with `len` 0 to judge them between chunks (when a read returns
    /// nothing yet).
    ///
    /// # Errors
    /// As [`accept`](Self::accept), and, for a watched download, if it is
    /// past its deadline, or the last stall window passed with too few
    /// bytes: the download must be dropped, the chunk not written.
    pub fn accept_at(&mut self, len: usize, now: UnixMillis) -> Result<(), String> {
        if let Some(w) = &mut self.watch {
            if now > w.deadline {
                return Err(format!(
                    "file {} took longer than the {} s its download may take ({} bytes)",
                    self.file_id,
                    w.started.until(w.deadline).as_secs(),
                    self.declared
                ));
            }
            if now >= w.window_start.saturating_add(w.window) {
                // Judged when a chunk comes: the window that ended holds
                // too few bytes, or a whole window since it held none.
                let silent = now >= w.window_start.saturating_add(w.window.saturating_mul(2));
                if w.window_bytes < w.min_bytes || (silent && w.min_bytes > 0) {
                    return Err(format!(
                        "file {}: the download stalled (fewer than {} bytes in {} ms)",
                        self.file_id,
                        w.min_bytes,
                        w.window.as_millis()
                    ));
                }
                w.window_start = now;
                w.window_bytes = 0;
            }
            w.window_bytes = w.window_bytes.saturating_add(len as u64);
        }
        self.accept(len)
    }

    /// The size the file object declares.
    pub fn declared(&self) -> u64 {
        self.declared
    }

    /// The bytes accepted so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Accounts for a chunk of `len` bytes.
    ///
    /// # Errors
    /// Fails, naming the file and its declared size, if the body now holds
    /// more than the file object declares; the chunk must not be written.
    pub fn accept(&mut self, len: usize) -> Result<(), String> {
        let total = self.received.saturating_add(len as u64);
        if total > self.declared {
            return Err(format!(
                "file {} sent more than the {} bytes its file object declares",
                self.file_id, self.declared
            ));
        }
        self.received = total;
        Ok(())
    }

    /// The end of the body: the number of bytes received.
    ///
    /// # Errors
    /// Fails if the body ended before the declared size (a cut connection
    /// the server did not report).
    pub fn finish(&self) -> Result<u64, String> {
        if self.received < self.declared {
            return Err(format!(
                "file {} ended after {} of its {} bytes",
                self.file_id, self.received, self.declared
            ));
        }
        Ok(self.received)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(bytes: u64) -> FileObject {
        serde_json::from_value(serde_json::json!({
            "id": "file-1", "object": "file", "bytes": bytes, "created_at": 1,
            "filename": "out.jsonl", "purpose": "batch_output"
        }))
        .expect("a file object")
    }

    fn limits() -> ExchangeLimits {
        ExchangeLimits {
            transfer_grace: Duration::from_secs(10),
            transfer_rate: 1000,
            stall_window: Duration::from_secs(2),
            stall_min_bytes: 100,
            ..ExchangeLimits::default()
        }
    }

    /// A watched download must end within its size-scaled deadline.
    #[test]
    fn a_watched_download_ends_by_its_deadline() {
        // 10 s of grace plus 5,000 bytes at 1,000 a second: 15 s.
        let t0 = UnixMillis(1_000_000);
        let mut d = FileDownload::watched(&file(5000), &limits(), t0);
        for s in 0..15 {
            assert_eq!(
                d.accept_at(300, t0.plus_millis(s * 1000)),
                Ok(()),
                "second {s}"
            );
        }
        assert_eq!(d.accept_at(100, t0.plus_millis(15_000)), Ok(()));
        let late = d
            .accept_at(100, t0.plus_millis(15_001))
            .expect_err("past its deadline");
        assert!(late.contains("took longer than the 15 s"), "{late}");
        // An unwatched download has no clock.
        let mut d = FileDownload::new(&file(5000));
        assert_eq!(d.accept_at(100, UnixMillis(u64::MAX)), Ok(()));
    }

    /// Fewer bytes than the minimum in a window, or a whole window of
    /// silence before a chunk, is a stall; a steady flow is not.
    #[test]
    fn a_watched_download_is_cut_when_it_stalls() {
        let t0 = UnixMillis(1_000_000);
        // A steady 100 bytes every second: 200 per 2 s window.
        let mut d = FileDownload::watched(&file(100_000), &limits(), t0);
        for s in 1..=8 {
            assert_eq!(d.accept_at(100, t0.plus_millis(s * 1000)), Ok(()));
        }
        // A trickle: 10 bytes a second is 20 per window.
        let mut d = FileDownload::watched(&file(100_000), &limits(), t0);
        let mut cut = None;
        for s in 1..=8 {
            if let Err(e) = d.accept_at(10, t0.plus_millis(s * 1000)) {
                cut = Some((s, e));
                break;
            }
        }
        let (s, e) = cut.expect("the trickle is cut");
        assert_eq!(s, 2, "cut at the end of the first window");
        assert!(
            e.contains("stalled (fewer than 100 bytes in 2000 ms)"),
            "{e}"
        );
        // Plenty, then a pause of over two windows, then plenty again.
        let mut d = FileDownload::watched(&file(100_000), &limits(), t0);
        assert_eq!(d.accept_at(5000, t0.plus_millis(500)), Ok(()));
        assert_eq!(d.accept_at(5000, t0.plus_millis(2100)), Ok(()));
        let e = d
            .accept_at(5000, t0.plus_millis(6200))
            .expect_err("a silent window");
        assert!(e.contains("stalled"), "{e}");
    }

    #[test]
    fn the_declared_size_bounds_the_body() {
        let mut d = FileDownload::new(&file(10));
        assert_eq!(d.accept(4), Ok(()));
        assert_eq!(d.accept(6), Ok(()));
        assert_eq!(d.finish(), Ok(10));
        let err = d.accept(1).expect_err("over");
        assert!(err.contains("more than the 10 bytes"), "{err}");
        assert_eq!(d.received(), 10);
    }

    #[test]
    fn a_short_body_is_truncated() {
        let mut d = FileDownload::new(&file(10));
        assert_eq!(d.accept(3), Ok(()));
        let err = d.finish().expect_err("short");
        assert!(err.contains("after 3 of its 10 bytes"), "{err}");
    }
}
