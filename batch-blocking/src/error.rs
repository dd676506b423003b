//! Errors of the blocking transport: the one client error of the core.

/// What can go wrong running a job with this transport. The same type as
/// `batch_async::Error`, defined once in the core: see
/// [`ClientError`](batch_core::job::ClientError) for its variants.
pub type Error = batch_core::job::ClientError;
