//! Errors of the blocking transport: the core's, plus local IO.

use batch_core::job::{JobEndError, JobError, JobResult, TransportFailure};

/// What can go wrong running a job with this transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The job could not run (bad input, the API refused, driver misuse).
    #[error(transparent)]
    Job(#[from] JobError),
    /// The job ran, but a batch did not complete (failed, expired,
    /// cancelled, timed out). The results it did get are inside, in input
    /// order (empty when they were streamed to a callback).
    #[error("{reason}")]
    Ended {
        /// Why.
        reason: Box<JobEndError>,
        /// Every request's outcome, including the partial results.
        results: Vec<JobResult>,
    },
    /// Writing results or a checkpoint, or reading a shard, failed.
    #[error("writing results or checkpoint failed")]
    Io(#[from] std::io::Error),
    /// A single request could not be carried out (see `Client::execute`).
    #[error("the request could not be completed: {0}")]
    Transport(#[from] TransportFailure),
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be set up: {0}")]
    Setup(String),
}
