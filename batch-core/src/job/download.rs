//! Bookkeeping of one result-file download: decoding as bytes arrive,
//! where to resume after a cut-off, and whether the body was complete.
//!
//! It decides nothing about the job; it only reports records and what it
//! saw. A response is complete when it carried as many bytes as it
//! announced. A cut-off is resumed from the end of the last complete line
//! with a `Range` request (guarded by `If-Range` with the file's `ETag`),
//! or, when the server ignores `Range` and sends the whole file, by skipping
//! what was already read. One decoder spans every response of the file, so
//! its offsets and line numbers are the file's. The size the file object
//! declares caps what is read: bytes past it are never decoded.

use crate::jsonl::{LineDecoder, LineEvent};
use crate::results::{BadLine, ResultRecord, parse_result_line, salvage_custom_id};

/// What a download reports to the job.
#[derive(Debug)]
pub(super) enum DownloadEvent {
    Record(Box<ResultRecord>),
    /// A line of a batch's input file, read for its `custom_id` only
    /// ([`Download::names_only`]); `None` if it has none.
    Name {
        line: u64,
        custom_id: Option<String>,
    },
    BadLine {
        line: u64,
        custom_id: Option<String>,
        error: String,
    },
}

#[derive(Debug)]
pub(super) struct Download {
    file_id: String,
    max_line_bytes: usize,
    decoder: LineDecoder,
    etag: Option<String>,
    /// Bytes at the start of the current response to drop (already read).
    skip: u64,
    /// The current response's announced length.
    expected: Option<u64>,
    received: u64,
    /// Ignore the current response's body (an unusable range).
    discard: bool,
    /// Where the file's complete lines ended when the current attempt began.
    attempt_from: u64,
    /// The file's size, as its file object declares it (`bytes`).
    declared: Option<u64>,
    /// The file offset of the current response's first byte.
    response_start: u64,
    /// Reads one result line (OpenAI's, or a Message Batch's).
    parse: LineParser,
    /// An input file: each line is read for its `custom_id` only.
    names: bool,
}

/// The one field of an input line that a names-only download reads.
#[derive(serde::Deserialize)]
struct IdOnly {
    custom_id: String,
}

/// Reads one result line into a record.
pub(super) type LineParser = fn(u64, &[u8]) -> Result<ResultRecord, BadLine>;

impl Download {
    pub(super) fn new(file_id: String, max_line_bytes: usize, declared: Option<u64>) -> Download {
        Download {
            file_id,
            max_line_bytes,
            decoder: LineDecoder::new(max_line_bytes),
            etag: None,
            skip: 0,
            expected: None,
            received: 0,
            discard: false,
            attempt_from: 0,
            declared,
            response_start: 0,
            names: false,
            parse: parse_result_line,
        }
    }

    /// Reads the file as a batch's input file: each line yields its
    /// `custom_id` ([`DownloadEvent::Name`]) instead of a result.
    pub(super) fn names_only(mut self) -> Download {
        self.names = true;
        self
    }

    /// The same download, its lines read by `parse` (a Message Batch's
    /// results: [`crate::anthropic::parse_result_line`]).
    pub(super) fn with_parser(mut self, parse: LineParser) -> Download {
        self.parse = parse;
        self
    }

    /// The file's declared size, if known.
    pub(super) fn declared(&self) -> Option<u64> {
        self.declared
    }

    /// An attempt starts: remember where, so [`advanced`](Self::advanced)
    /// can tell whether it brought anything new.
    pub(super) fn begin_attempt(&mut self) {
        self.attempt_from = self.decoder.complete_bytes();
    }

    /// Whether the current attempt added complete lines to what was read.
    pub(super) fn advanced(&self) -> bool {
        self.decoder.complete_bytes() > self.attempt_from
    }

    /// Where to ask for the file from, and the validator to send with it.
    pub(super) fn resume_point(&self) -> (u64, Option<&str>) {
        (self.decoder.complete_bytes(), self.etag.as_deref())
    }

    /// A 2xx head for this download arrived. Returns a warning to report, if any.
    pub(super) fn start_response(&mut self, head: &http::response::Parts) -> Option<String> {
        self.decoder.rewind_to_line_boundary();
        let offset = self.decoder.complete_bytes();
        self.received = 0;
        self.skip = 0;
        self.discard = false;
        self.expected =
            header(head, http::header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok());
        let etag = header(head, http::header::ETAG).map(str::to_owned);
        let mut warning = None;
        self.response_start = 0;
        if head.status == http::StatusCode::PARTIAL_CONTENT {
            let start =
                header(head, http::header::CONTENT_RANGE).and_then(parse_content_range_start);
            self.response_start = start.unwrap_or(offset);
            match start {
                Some(s) if s == offset => {}
                Some(s) if s < offset => self.skip = offset - s,
                _ => {
                    self.discard = true;
                    return Some(format!(
                        "file {}: a range request from byte {offset} got an unusable Content-Range; trying again",
                        self.file_id
                    ));
                }
            }
        } else if offset > 0 && etag.is_some() && self.etag.is_some() && etag != self.etag {
            // The file changed since we started: read it again from the start.
            // Results already delivered are not delivered twice (the job
            // tracks which requests have an outcome).
            self.decoder = LineDecoder::new(self.max_line_bytes);
            warning = Some(format!(
                "file {} changed while it was being downloaded; reading it again",
                self.file_id
            ));
        } else {
            // A full body: skip what we already have.
            self.skip = offset;
        }
        if etag.is_some() {
            self.etag = etag;
        }
        warning
    }

    /// A chunk of the body. Returns `true` when the body went past the
    /// file's declared size: the bytes past it are dropped, and the caller
    /// must stop the response and [`end_at_declared`](Self::end_at_declared).
    pub(super) fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<DownloadEvent>) -> bool {
        let mut past = false;
        if let Some(size) = self.declared {
            let room = size.saturating_sub(self.response_start.saturating_add(self.received));
            if chunk.len() as u64 > room {
                chunk = &chunk[..usize::try_from(room).unwrap_or(usize::MAX)];
                past = true;
            }
        }
        self.received += chunk.len() as u64;
        if self.discard {
            return past;
        }
        if self.skip > 0 {
            let n = usize::try_from(self.skip)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            chunk = &chunk[n..];
            self.skip -= n as u64;
        }
        let mut lines = self.decoder.feed(chunk);
        while let Some(ev) = lines.next_line() {
            push_line(ev, self.max_line_bytes, self.names, self.parse, out);
        }
        past
    }

    /// The body reached the declared size (and went on). Returns whether
    /// the file is complete: every declared byte was read from a usable
    /// response. Otherwise the caller resumes as after a cut-off.
    pub(super) fn end_at_declared(&mut self, out: &mut Vec<DownloadEvent>) -> bool {
        if self.discard || self.skip > 0 {
            self.decoder.rewind_to_line_boundary();
            return false;
        }
        let mut lines = self.decoder.finish();
        while let Some(ev) = lines.next_line() {
            push_line(ev, self.max_line_bytes, self.names, self.parse, out);
        }
        true
    }

    /// The body ended. Returns whether the file is now complete.
    pub(super) fn end(&mut self, out: &mut Vec<DownloadEvent>) -> bool {
        if self.discard || self.skip > 0 || self.expected.is_some_and(|n| self.received < n) {
            self.decoder.rewind_to_line_boundary();
            return false;
        }
        // The server sent all it announced: a last line without a newline is
        // the server's choice, not a cut-off, so it is read as a line.
        let mut lines = self.decoder.finish();
        while let Some(ev) = lines.next_line() {
            push_line(ev, self.max_line_bytes, self.names, self.parse, out);
        }
        true
    }

    /// The response was cut off: drop the partial line; resume from the last complete one.
    pub(super) fn interrupted(&mut self) {
        self.decoder.rewind_to_line_boundary();
    }
}

fn push_line(
    ev: LineEvent<'_>,
    max: usize,
    names: bool,
    parse: LineParser,
    out: &mut Vec<DownloadEvent>,
) {
    if names {
        let (line, custom_id) = match ev {
            LineEvent::Line { line, bytes } => (
                line,
                serde_json::from_slice::<IdOnly>(bytes)
                    .ok()
                    .map(|l| l.custom_id)
                    .or_else(|| salvage_custom_id(bytes)),
            ),
            LineEvent::Truncated { line, prefix, .. } | LineEvent::TooLong { line, prefix, .. } => {
                (line, salvage_custom_id(prefix))
            }
        };
        out.push(DownloadEvent::Name { line, custom_id });
        return;
    }
    match ev {
        LineEvent::Line { line, bytes } => out.push(match parse(line, bytes) {
            Ok(rec) => DownloadEvent::Record(Box::new(rec)),
            Err(bad) => bad_line(bad),
        }),
        LineEvent::Truncated { line, len, prefix }
            if usize::try_from(len).is_ok_and(|l| l == prefix.len()) =>
        {
            out.push(match parse(line, prefix) {
                Ok(rec) => DownloadEvent::Record(Box::new(rec)),
                Err(bad) => bad_line(bad),
            });
        }
        LineEvent::Truncated { line, prefix, .. } | LineEvent::TooLong { line, prefix, .. } => out
            .push(DownloadEvent::BadLine {
                line,
                custom_id: salvage_custom_id(prefix),
                error: format!("the line is longer than the {max}-byte limit"),
            }),
    }
}

fn bad_line(bad: BadLine) -> DownloadEvent {
    DownloadEvent::BadLine {
        line: bad.line,
        custom_id: bad.custom_id,
        error: bad.error,
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

#[cfg(test)]
mod tests {
    use super::parse_content_range_start;

    #[test]
    fn content_range_start() {
        assert_eq!(parse_content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(parse_content_range_start("bytes */200"), None);
        assert_eq!(parse_content_range_start("items 1-2/3"), None);
    }
}
