//! Operations on a batch known only by its id: a batch this process never
//! created (from a log, another process, the dashboard). Reading and
//! cancelling it are single requests; polling and collecting it run a
//! by-id job ([`BatchJob::for_batch`]) through the same drive loop as every
//! other operation, so they retry, resume cut downloads and report each
//! request once.

use tokio::io::{AsyncWrite, AsyncWriteExt};

use batch_core::api::{self, Batch, ResponseError};
use batch_core::job::{
    BatchJob, BatchOptions, FileDownload, JobError, JobEvent, JobResult, JobStatus, JobSummary,
    cancel_batch_request, check_file_download, parse_batch_answer, retrieve_batch_request,
};

use crate::client::{Client, seed};
use crate::clock::{Clock, SystemClock};
use crate::error::Error;

impl Client {
    /// Reads batch `batch_id` (`GET /batches/{id}`, API notes §2; `GET
    /// /v1/messages/batches/{id}` for Anthropic's Message Batches, read as
    /// a [`Batch`]) once.
    ///
    /// # Errors
    /// [`Error::Job`] with the API's status, code and message for a non-2xx
    /// answer (a 404 for an unknown id) or an answer that is not a batch;
    /// [`Error::Transport`] if the request could not be carried out;
    /// [`Error::Setup`] for an id that is not a plain path segment.
    pub async fn retrieve_batch(&self, batch_id: &str) -> Result<Batch, Error> {
        let request = retrieve_batch_request(self.api(), batch_id)
            .map_err(|e| Error::Setup(e.to_string()))?;
        let (head, bytes) = self.execute(request).await?;
        parse_batch_answer(self.api(), &head, &bytes).map_err(|e| self.refused(e))
    }

    /// Asks the server to cancel batch `batch_id` (`POST
    /// /batches/{id}/cancel`, or its Message Batches twin) and returns the batch as it answered, usually
    /// `cancelling`. It does not wait: the batch becomes `cancelled` within
    /// minutes, and [`batch_results`](Self::batch_results) then collects
    /// what it ran. To cancel, wait and collect in one call, use
    /// [`cancel`](Self::cancel) on [`BatchJob::for_batch`].
    ///
    /// # Errors
    /// As [`retrieve_batch`](Self::retrieve_batch); a batch that already
    /// ended answers 409, an [`Error::Job`].
    pub async fn cancel_batch(&self, batch_id: &str) -> Result<Batch, Error> {
        let request =
            cancel_batch_request(self.api(), batch_id).map_err(|e| Error::Setup(e.to_string()))?;
        let (head, bytes) = self.execute(request).await?;
        parse_batch_answer(self.api(), &head, &bytes).map_err(|e| self.refused(e))
    }

    /// Polls batch `batch_id` once, with retries, and returns its status as
    /// a one-shard job's ([`JobStatus`]: state, request counts, and the
    /// batch's input file in its shard).
    ///
    /// # Errors
    /// [`Error::Ended`] if the key was refused or the server stayed
    /// unreachable past the retry budget, or the batch does not exist.
    pub async fn poll_batch(&self, batch_id: &str) -> Result<JobStatus, Error> {
        self.poll_status(&mut by_id(batch_id)).await
    }

    /// Waits for batch `batch_id` to end and returns its outcomes, one per
    /// request of its input file, in input order: the output and error
    /// files merged, and requests without a result line not processed with
    /// why (see [`BatchJob::for_batch`]). It polls every 60 seconds; for another interval
    /// or a maximum wait, call [`get_results`](Self::get_results) on
    /// `BatchJob::for_batch(id, &options, seed)`.
    ///
    /// # Errors
    /// As [`get_results`](Self::get_results): [`Error::Ended`] when the
    /// batch failed, expired or was cancelled (its outcomes inside), or the
    /// job stopped.
    pub async fn batch_results(&self, batch_id: &str) -> Result<Vec<JobResult>, Error> {
        self.get_results(&mut by_id(batch_id)).await
    }

    /// Like [`batch_results`](Self::batch_results), handing each outcome to
    /// `on_result` as its line is read, and returns the summary (whose
    /// `requests` is the batch's total, so a shortfall shows as an
    /// incomplete summary).
    ///
    /// # Errors
    /// As `batch_results`, with no results inside (they went to `on_result`).
    pub async fn stream_batch_results(
        &self,
        batch_id: &str,
        on_result: &mut (dyn FnMut(JobResult) + Send),
        on_event: &mut (dyn FnMut(&JobEvent) + Send),
    ) -> Result<JobSummary, Error> {
        self.stream_results(&mut by_id(batch_id), on_result, on_event)
            .await
    }

    /// Streams file `file_id`'s content (a batch's output or error file, or
    /// an input file) into `out`, and returns its length. The file object is
    /// read first: the content may not exceed its declared size, and a body
    /// that ends short is an error. Memory stays flat (one network chunk at a time).
    /// The download is held to the client's exchange limits
    /// ([`ClientConfig::exchange`](batch_core::job::ClientConfig::exchange)),
    /// as a job's downloads are: it must end within the deadline its
    /// declared size allows, and is cut if it stalls; a single read that
    /// waits longer than `io_timeout` fails too.
    ///
    /// # Errors
    /// [`Error::Job`] for a non-2xx answer (a 404 for an unknown file);
    /// [`Error::Transport`] if the connection failed, the body broke the
    /// declared size, or the download passed its deadline or stalled;
    /// [`Error::Io`] if writing to `out` failed;
    /// [`Error::Setup`] for Anthropic's Message Batches, which have no
    /// files (read their results with `batch_results`).
    pub async fn download_file(
        &self,
        file_id: &str,
        out: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<u64, Error> {
        check_file_download(self.api(), file_id).map_err(Error::Setup)?;
        let request =
            api::retrieve_file(self.api(), file_id).map_err(|e| Error::Setup(e.to_string()))?;
        let (head, bytes) = self.execute(request).await?;
        let file = api::parse_file(&head, &bytes).map_err(|e| self.refused(e))?;
        let mut check = FileDownload::watched(&file, self.exchange_limits(), SystemClock.now());
        let request = api::file_content(self.api(), file_id, None)
            .map_err(|e| Error::Setup(e.to_string()))?;
        let (parts, _) = request.into_parts();
        let request = reqwest::Request::try_from(http::Request::from_parts(
            parts,
            reqwest::Body::from(Vec::new()),
        ))
        .map_err(|e| Error::Setup(e.to_string()))?;
        let mut response = self.http().execute(request).await.map_err(|e| {
            Error::Transport(crate::convert::failure_before_head(&e).redacted(self.api()))
        })?;
        let head = crate::convert::head(&response);
        let broken = |e: reqwest::Error| {
            Error::Transport(crate::convert::failure_in_body(&e).redacted(self.api()))
        };
        if !head.status.is_success() {
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(broken)? {
                if bytes.len() >= 64 * 1024 {
                    break;
                }
                bytes.extend_from_slice(&chunk);
            }
            return Err(self.refused(api::parse_api_error(&head, &bytes).into()));
        }
        while let Some(chunk) = response.chunk().await.map_err(broken)? {
            check
                .accept_at(chunk.len(), SystemClock.now())
                .map_err(in_body)?;
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        check.finish().map_err(in_body)
    }

    /// A refused single request: the server's words may quote the key, so
    /// they are redacted before they reach an error.
    fn refused(&self, e: ResponseError) -> Error {
        Error::Job(JobError::Response(e.redacted(self.api())))
    }
}

/// A by-id handle with the default options (60-second polls, no maximum wait).
fn by_id(batch_id: &str) -> BatchJob {
    BatchJob::for_batch(batch_id, &BatchOptions::new(""), seed())
}

fn in_body(message: String) -> Error {
    Error::Transport(batch_core::job::TransportFailure::in_body(message))
}
