//! The one trait both transports use to reach the caller's storage.

use std::io::Read;

use crate::api::ShardRef;
use crate::job::checkpoint::Checkpoint;
use crate::job::types::{JobEvent, JobResult};

/// Where a running job keeps its state and delivers its results.
///
/// Shared by the blocking and async transports. Its calls are small and
/// synchronous; an async application that needs async sinks can put a
/// channel behind it.
pub trait JobIo {
    /// Makes every result delivered so far durable, then stores `checkpoint`
    /// durably (for example: flush and sync the results, write the checkpoint
    /// to a temporary file, sync it, rename it over the old one).
    ///
    /// # Errors
    /// Any IO error stops the job.
    fn persist(&mut self, checkpoint: &Checkpoint) -> std::io::Result<()>;

    /// Delivers one request's outcome. After a resume, a shard's results may
    /// be delivered again; they carry the same `index` and should overwrite.
    ///
    /// # Errors
    /// Any IO error stops the job.
    fn result(&mut self, result: JobResult) -> std::io::Result<()>;

    /// Reports progress or a warning.
    ///
    /// # Errors
    /// Any IO error stops the job.
    fn event(&mut self, event: &JobEvent) -> std::io::Result<()>;

    /// Opens a shard's JSONL bytes for upload. The reader must yield exactly
    /// `shard.len` bytes.
    ///
    /// # Errors
    /// Any IO error stops the job.
    fn open_shard(&mut self, shard: &ShardRef) -> std::io::Result<Box<dyn Read + Send>>;
}
