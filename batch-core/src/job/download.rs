//! Bookkeeping of one result-file download: decoding as bytes arrive,
//! where to resume after a cut-off, and whether the body was complete.
//!
//! It decides nothing about the job; it only reports records and what it
//! saw. The file is complete when the response carried as many bytes as it
//! announced; a cut-off is resumed from the end of the last complete line
//! with a `Range` request (guarded by `If-Range` with the file's `ETag`),
//! or, when the server ignores `Range`, by skipping what was already read.

use crate::jsonl::{LineDecoder, LineEvent};
use crate::results::{ResultRecord, parse_result_line};

/// What a download reports to the job.
#[derive(Debug)]
pub(super) enum DownloadEvent {
    Record(ResultRecord),
    BadLine { line: u64, custom_id: Option<String>, error: String },
    Warning(String),
}

#[derive(Debug)]
pub(super) struct Download {
    file_id: String,
    max_line_bytes: usize,
    decoder: LineDecoder,
    /// Bytes of the file consumed through the last complete line.
    offset: u64,
    /// Physical lines consumed through `offset` (for line numbers after a resume).
    lines_before: u64,
    etag: Option<String>,
    /// Bytes at the start of the current response to drop (already read).
    skip: u64,
    /// The current response's announced length.
    expected: Option<u64>,
    received: u64,
    /// Ignore the current response's body (an unusable range).
    discard: bool,
    /// The file offset of the decoder's first byte in the current response.
    decoder_base: u64,
}

impl Download {
    pub(super) fn new(file_id: String, max_line_bytes: usize) -> Download {
        Download {
            file_id,
            max_line_bytes,
            decoder: LineDecoder::new(max_line_bytes),
            offset: 0,
            lines_before: 0,
            etag: None,
            skip: 0,
            expected: None,
            received: 0,
            discard: false,
            decoder_base: 0,
        }
    }

    /// Where to ask for the file from, and the validator to send with it.
    pub(super) fn resume_point(&self) -> (u64, Option<&str>) {
        (self.offset, self.etag.as_deref())
    }

    /// A 2xx head for this download arrived.
    pub(super) fn start_response(&mut self, head: &http::response::Parts) -> Result<(), String> {
        self.received = 0;
        self.skip = 0;
        self.discard = false;
        self.decoder = LineDecoder::new(self.max_line_bytes);
        self.decoder.set_first_line(self.lines_before + 1);
        self.expected = header(head, http::header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok());
        let etag = header(head, http::header::ETAG).map(str::to_owned);
        if head.status == http::StatusCode::PARTIAL_CONTENT {
            let start = header(head, http::header::CONTENT_RANGE).and_then(parse_content_range_start);
            match start {
                Some(s) if s == self.offset => {}
                Some(s) if s < self.offset => self.skip = self.offset - s,
                _ => {
                    self.discard = true;
                    return Err(format!(
                        "file {}: the server answered a range request from byte {} with an unusable Content-Range",
                        self.file_id, self.offset
                    ));
                }
            }
        } else {
            // A full body: the file from its first byte.
            if self.offset > 0 && etag.is_some() && self.etag.is_some() && etag != self.etag {
                // The file changed since we started: read it again from the start.
                self.offset = 0;
                self.lines_before = 0;
                self.decoder.set_first_line(1);
                self.etag = etag;
                return Err(format!("file {} changed while it was being downloaded; reading it again", self.file_id));
            }
            self.skip = self.offset;
        }
        if etag.is_some() {
            self.etag = etag;
        }
        self.decoder_base = self.offset;
        Ok(())
    }

    /// A chunk of the body.
    pub(super) fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<DownloadEvent>) {
        self.received += chunk.len() as u64;
        if self.discard {
            return;
        }
        if self.skip > 0 {
            let n = usize::try_from(self.skip).unwrap_or(usize::MAX).min(chunk.len());
            chunk = &chunk[n..];
            self.skip -= n as u64;
        }
        let mut lines = self.decoder.feed(chunk);
        while let Some(ev) = lines.next_line() {
            push_line(ev, out);
        }
        drop(lines);
        self.sync_offset();
    }

    /// The body ended. Returns whether the file is now complete.
    pub(super) fn end(&mut self, out: &mut Vec<DownloadEvent>) -> bool {
        if self.discard {
            return false;
        }
        if self.expected.is_some_and(|n| self.received < n) || self.skip > 0 {
            self.interrupted();
            return false;
        }
        // The server sent everything it announced: a last line without a
        // newline is the server's choice, not a cut-off.
        if let Some(ev) = self.decoder.finish_lenient() {
            push_line(ev, out);
        }
        true
    }

    /// A 416: nothing is left after our offset; the file is complete.
    pub(super) fn finish_at_eof(&mut self, _out: &mut [DownloadEvent]) {}

    /// The response was cut off: drop the partial line; resume from the last complete one.
    pub(super) fn interrupted(&mut self) {
        self.sync_offset();
        self.decoder = LineDecoder::new(self.max_line_bytes);
        self.decoder.set_first_line(self.lines_before + 1);
    }

    fn sync_offset(&mut self) {
        if self.discard {
            return;
        }
        // complete_bytes counts from the decoder's first byte.
        self.offset = self.decoder_base + self.decoder.complete_bytes();
        self.lines_before = self.decoder.next_line_number() - 1;
    }
}

fn push_line(ev: LineEvent<'_>, out: &mut Vec<DownloadEvent>) {
    match ev {
        LineEvent::Line { number, bytes } => match parse_result_line(number, bytes) {
            Ok(rec) => out.push(DownloadEvent::Record(rec)),
            Err(bad) => out.push(DownloadEvent::BadLine { line: bad.line, custom_id: bad.custom_id, error: bad.error }),
        },
        LineEvent::TooLong { number, len } => out.push(DownloadEvent::BadLine {
            line: number,
            custom_id: None,
            error: format!("the line is longer than the limit ({len} bytes and more)"),
        }),
        _ => out.push(DownloadEvent::Warning("unexpected decoder event".into())),
    }
}

fn header(head: &http::response::Parts, name: http::header::HeaderName) -> Option<&str> {
    head.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The first byte of `bytes a-b/total`.
fn parse_content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, _) = rest.split_once('/')?;
    let (a, _) = range.split_once('-')?;
    a.trim().parse().ok()
}
