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
//! size bounds the content read.

use crate::api::FileObject;

/// Checks a file's content against the size its file object declares
/// (`GET /files/{id}` first, then `GET /files/{id}/content`): a body longer
/// than declared is cut, and one shorter is reported as truncated.
///
/// Feed it every chunk's length with [`accept`](Self::accept) before writing
/// the chunk, then call [`finish`](Self::finish) at the end of the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDownload {
    file_id: String,
    declared: u64,
    received: u64,
}

impl FileDownload {
    /// A download of `file`, bounded by its `bytes`.
    pub fn new(file: &FileObject) -> FileDownload {
        FileDownload {
            file_id: file.id.clone(),
            declared: file.bytes,
            received: 0,
        }
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
