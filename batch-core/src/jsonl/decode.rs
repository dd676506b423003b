//! A chunk-tolerant JSONL line decoder with a cap on the carried line.
//!
//! [`LineDecoder`] is fed byte chunks of any size, as they come off the
//! network, and yields complete lines. It keeps only the unfinished tail of
//! the current line, never more than [`DecoderConfig::max_line_bytes`], so a
//! result file of any size is decoded in memory bounded by that cap (h11's
//! `max_incomplete_event_size`, rustls's `VecInput` limit).
//!
//! The rules, the lending contract and resuming are documented on
//! [`LineDecoder`] (this module is private; its items are re-exported by
//! [`jsonl`](super)).

use std::fmt;

/// The default cap on one line: 16 MiB.
///
/// Result lines are usually a few kilobytes, but an embeddings request with
/// many inputs produces one line holding every vector.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// What the bytes after the last `\n` mean at end of input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FinalNewline {
    /// Every line must end with `\n`. Bytes after the last one are reported
    /// as [`LineEvent::Truncated`]. Use this for downloaded result files,
    /// which the API always terminates, so a missing newline means the
    /// download was cut.
    #[default]
    Required,
    /// A missing final newline is normal; the bytes after the last `\n` are
    /// the last line. Use this for files people write (batch input files).
    Optional,
}

/// Knobs for a [`LineDecoder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DecoderConfig {
    /// The longest line, in bytes before its `\n`, that is yielded as a line.
    /// The decoder never buffers more than this.
    pub max_line_bytes: usize,
    /// How end of input is judged.
    pub final_newline: FinalNewline,
}

impl DecoderConfig {
    /// For downloaded result files: lines up to `max_line_bytes`, and an
    /// unterminated last line is [`LineEvent::Truncated`].
    pub fn strict(max_line_bytes: usize) -> Self {
        DecoderConfig {
            max_line_bytes,
            final_newline: FinalNewline::Required,
        }
    }

    /// For user input files: lines up to `max_line_bytes`, and an
    /// unterminated last line is an ordinary line.
    pub fn lenient(max_line_bytes: usize) -> Self {
        DecoderConfig {
            max_line_bytes,
            final_newline: FinalNewline::Optional,
        }
    }
}

impl Default for DecoderConfig {
    /// [`DecoderConfig::strict`] with [`DEFAULT_MAX_LINE_BYTES`].
    fn default() -> Self {
        DecoderConfig::strict(DEFAULT_MAX_LINE_BYTES)
    }
}

/// One thing the decoder found, lent from the chunk or from its tail buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineEvent<'a> {
    /// A complete, non-blank line, without its `\r\n` or `\n`.
    Line {
        /// The 1-based physical line number.
        line: u64,
        /// The line's bytes.
        bytes: &'a [u8],
    },
    /// A line longer than [`DecoderConfig::max_line_bytes`]. Reported once,
    /// when the line ends; its bytes past the cap were skipped unbuffered.
    TooLong {
        /// The 1-based physical line number.
        line: u64,
        /// The line's full length in bytes (before its `\n`).
        len: u64,
        /// The first `max_line_bytes` bytes of the line, for salvaging what
        /// it was about (a result line starts with its `custom_id`).
        prefix: &'a [u8],
    },
    /// End of input came in the middle of a line (strict mode only): the
    /// input was cut off. The partial line is not a line and was not parsed.
    Truncated {
        /// The number the line would have had.
        line: u64,
        /// How many bytes of it arrived.
        len: u64,
        /// Its first bytes, at most `max_line_bytes` of them.
        prefix: &'a [u8],
    },
}

impl LineEvent<'_> {
    /// The 1-based physical line number the event is about.
    pub fn line(&self) -> u64 {
        match *self {
            LineEvent::Line { line, .. }
            | LineEvent::TooLong { line, .. }
            | LineEvent::Truncated { line, .. } => line,
        }
    }
}

impl fmt::Debug for LineEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LineEvent::Line { line, bytes } => f
                .debug_struct("Line")
                .field("line", &line)
                .field("bytes", &String::from_utf8_lossy(bytes))
                .finish(),
            LineEvent::TooLong { line, len, prefix } => f
                .debug_struct("TooLong")
                .field("line", &line)
                .field("len", &len)
                .field("prefix_len", &prefix.len())
                .finish(),
            LineEvent::Truncated { line, len, prefix } => f
                .debug_struct("Truncated")
                .field("line", &line)
                .field("len", &len)
                .field("prefix_len", &prefix.len())
                .finish(),
        }
    }
}

/// Splits a byte stream into lines, chunk by chunk, in bounded memory.
///
/// # Rules
///
/// - A line ends at `\n`. The `\n` and one `\r` before it are stripped.
/// - Lines are numbered from 1 by physical position, as an editor shows them.
///   Blank lines (empty, or only spaces, tabs and `\r`) are skipped but still
///   counted, so the numbers in errors match what a user sees.
/// - A line's length is the number of bytes before its `\n` (a `\r` counts).
///   A line longer than the cap is reported once, as [`LineEvent::TooLong`],
///   when it ends. Its bytes past the cap are counted and dropped, never
///   buffered; the event lends the first `max_line_bytes` bytes as a prefix.
/// - End of input is an event with meaning: [`LineDecoder::finish`] reports
///   the bytes after the last `\n`. With [`FinalNewline::Required`] (the
///   default, for downloaded result files) they are [`LineEvent::Truncated`],
///   never parsed. With [`FinalNewline::Optional`] (for user input files,
///   where a missing final newline is normal) they are a last line.
/// - The events are the same however the input is split into chunks.
///
/// # Lending
///
/// [`LineDecoder::feed`] returns a [`Lines`] that lends each line: from the
/// chunk when the line lies inside it, or from the internal tail buffer for
/// the one line that straddles chunks. Nothing is copied for lines inside a
/// chunk. Drain it with [`Lines::next_line`] until `None` before feeding the
/// next chunk. If a `Lines` is dropped early, the undrained rest of its
/// chunk is kept and yielded first by the next `feed` or `finish`: no line is
/// lost and no state is torn. Those kept bytes are the only memory that can
/// grow past the cap, and only when the caller stops draining
/// ([`LineDecoder::pending_len`] shows them).
///
/// # Resuming a cut-off download
///
/// [`LineDecoder::complete_bytes`] is the offset just after the last complete
/// line handled, and [`LineDecoder::is_at_line_boundary`] says whether any
/// partial line is held. After a connection dies mid-file, call
/// [`LineDecoder::rewind_to_line_boundary`] and fetch the rest with
/// `Range: bytes=<complete_bytes>-`; a strict `finish` that reports
/// truncation rewinds the same way. A new decoder can take over from a
/// checkpoint with [`LineDecoder::resume_at`].
///
/// # Example
///
/// ```
/// use batch_core::jsonl::{LineDecoder, LineEvent};
///
/// let mut dec = LineDecoder::new(1024);
/// let mut seen = Vec::new();
/// for chunk in [&b"{\"a\":1}\n{\"b\""[..], &b":2}\r\n\n{\"c\""[..]] {
///     let mut lines = dec.feed(chunk);
///     while let Some(ev) = lines.next_line() {
///         if let LineEvent::Line { line, bytes } = ev {
///             seen.push((line, String::from_utf8_lossy(bytes).into_owned()));
///         }
///     }
/// }
/// let mut end = dec.finish();
/// assert!(matches!(end.next_line(), Some(LineEvent::Truncated { line: 4, len: 4, .. })));
/// drop(end);
/// assert_eq!(seen, [(1, "{\"a\":1}".to_owned()), (2, "{\"b\":2}".to_owned())]);
/// ```
#[derive(Clone, Debug)]
pub struct LineDecoder {
    cfg: DecoderConfig,
    /// Bytes of the current, unfinished line (at most `max_line_bytes`).
    /// While skipping an overlong line, its prefix.
    tail: Vec<u8>,
    /// The tail was lent out by the last event; clear it before going on.
    release_tail: bool,
    /// `Some(length so far)` while skipping a line longer than the cap.
    overlong: Option<u64>,
    /// The number of the line in progress (the next one to end).
    line: u64,
    /// Stream offset of the next byte to be processed.
    consumed: u64,
    /// Stream offset just after the last complete line.
    complete: u64,
    /// Undrained bytes kept when a [`Lines`] was dropped early.
    pending: Vec<u8>,
    /// How much of `pending` has been processed.
    pending_pos: usize,
}

impl LineDecoder {
    /// A strict decoder (see [`DecoderConfig::strict`]) capping lines at
    /// `max_line_bytes`.
    pub fn new(max_line_bytes: usize) -> Self {
        LineDecoder::with_config(DecoderConfig::strict(max_line_bytes))
    }

    /// A decoder with the given configuration.
    pub fn with_config(cfg: DecoderConfig) -> Self {
        LineDecoder::resume_at(cfg, 0, 0)
    }

    /// A decoder that continues a stream from a line boundary, for example
    /// after a restart: `complete_bytes` and `lines_seen` are the values
    /// [`complete_bytes`](Self::complete_bytes) and
    /// [`lines_seen`](Self::lines_seen) had. Feed it the bytes from offset
    /// `complete_bytes` on; line numbers continue from `lines_seen + 1`.
    pub fn resume_at(cfg: DecoderConfig, complete_bytes: u64, lines_seen: u64) -> Self {
        LineDecoder {
            cfg,
            tail: Vec::new(),
            release_tail: false,
            overlong: None,
            line: lines_seen.saturating_add(1),
            consumed: complete_bytes,
            complete: complete_bytes,
            pending: Vec::new(),
            pending_pos: 0,
        }
    }

    /// The configuration this decoder was built with.
    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// Takes the next chunk. Drain the returned [`Lines`] with
    /// [`Lines::next_line`] until it returns `None`.
    ///
    /// Lines left over from an earlier `Lines` that was dropped early come
    /// first. An empty chunk is allowed and is not end of input.
    pub fn feed<'a>(&'a mut self, chunk: &'a [u8]) -> Lines<'a> {
        Lines {
            dec: self,
            chunk,
            pos: 0,
            eof: false,
        }
    }

    /// Signals end of input and returns the last events: any lines left over
    /// from an undrained [`Lines`], then what the bytes after the last `\n`
    /// amount to (see [`FinalNewline`]).
    ///
    /// Afterwards the decoder is at a line boundary. In strict mode a
    /// truncated last line is dropped and the decoder rewound to
    /// [`complete_bytes`](Self::complete_bytes), so the rest can be fetched
    /// and fed from there. Calling `finish` again yields nothing new.
    pub fn finish(&mut self) -> Lines<'_> {
        Lines {
            dec: self,
            chunk: &[],
            pos: 0,
            eof: true,
        }
    }

    /// Drops any partial line (and any undrained kept bytes) and rewinds to
    /// just after the last complete line. Returns how many bytes were
    /// dropped. Use it when a download is cut off, before feeding the bytes
    /// of a `Range: bytes=<complete_bytes>-` request.
    pub fn rewind_to_line_boundary(&mut self) -> u64 {
        let dropped = self.consumed - self.complete;
        self.tail.clear();
        self.release_tail = false;
        self.overlong = None;
        self.pending = Vec::new();
        self.pending_pos = 0;
        self.consumed = self.complete;
        dropped
    }

    /// The stream offset of the next byte to be processed: every byte
    /// handled so far, including a partial line held in the tail. Bytes kept
    /// undrained (see [`pending_len`](Self::pending_len)) are not counted yet.
    pub fn bytes_consumed(&self) -> u64 {
        self.consumed
    }

    /// The stream offset just after the last complete line handled: where a
    /// resumed download (`Range: bytes=<n>-`) must start.
    pub fn complete_bytes(&self) -> u64 {
        self.complete
    }

    /// How many physical lines have ended so far, blank and overlong ones
    /// included (and, in lenient mode after [`finish`](Self::finish), the
    /// unterminated last one).
    pub fn lines_seen(&self) -> u64 {
        self.line - 1
    }

    /// Whether no partial line is held: everything processed so far ended at
    /// a newline.
    pub fn is_at_line_boundary(&self) -> bool {
        self.consumed == self.complete
    }

    /// How many bytes of a partial line are buffered. Never more than
    /// [`DecoderConfig::max_line_bytes`].
    pub fn buffered_len(&self) -> usize {
        if self.release_tail {
            0
        } else {
            self.tail.len()
        }
    }

    /// How many bytes were kept because a [`Lines`] was dropped before it was
    /// drained. Zero when the caller always drains.
    pub fn pending_len(&self) -> usize {
        self.pending.len() - self.pending_pos
    }
}

/// Where a lent slice lives.
#[derive(Clone, Copy)]
enum Src {
    Chunk,
    Pending,
    Tail,
}

/// An event found by [`Lines::next_line`], as positions, turned into slices
/// once all mutation is done.
enum Found {
    Line {
        line: u64,
        src: Src,
        start: usize,
        end: usize,
    },
    TooLong {
        line: u64,
        len: u64,
        src: Src,
        start: usize,
        end: usize,
    },
    Truncated {
        line: u64,
        len: u64,
    },
}

/// The lines of one chunk (or of end of input), lent one at a time.
///
/// Returned by [`LineDecoder::feed`] and [`LineDecoder::finish`]. Call
/// [`next_line`](Self::next_line) until it returns `None`. Dropping it
/// early loses nothing: the undrained rest of the chunk is kept and
/// yielded first next time.
#[must_use = "drain the lines with `next_line` before feeding the next chunk"]
#[derive(Debug)]
pub struct Lines<'a> {
    dec: &'a mut LineDecoder,
    chunk: &'a [u8],
    pos: usize,
    eof: bool,
}

impl Lines<'_> {
    /// The next event, or `None` when this chunk is used up (or, after
    /// [`LineDecoder::finish`], when the input is).
    pub fn next_line(&mut self) -> Option<LineEvent<'_>> {
        let found = self.advance()?;
        let (chunk, dec) = (self.chunk, &*self.dec);
        let slice = |src: Src, start: usize, end: usize| lend(chunk, dec, src, start, end);
        Some(match found {
            Found::Line {
                line,
                src,
                start,
                end,
            } => LineEvent::Line {
                line,
                bytes: slice(src, start, end),
            },
            Found::TooLong {
                line,
                len,
                src,
                start,
                end,
            } => LineEvent::TooLong {
                line,
                len,
                prefix: slice(src, start, end),
            },
            Found::Truncated { line, len } => LineEvent::Truncated {
                line,
                len,
                prefix: &dec.tail,
            },
        })
    }

    /// Runs the decoder to the next event and says where its bytes are.
    fn advance(&mut self) -> Option<Found> {
        let dec = &mut *self.dec;
        if dec.release_tail {
            dec.tail.clear();
            dec.release_tail = false;
        }
        let max = dec.cfg.max_line_bytes;
        loop {
            let (src, base, data): (Src, usize, &[u8]) = if dec.pending_pos < dec.pending.len() {
                (
                    Src::Pending,
                    dec.pending_pos,
                    &dec.pending[dec.pending_pos..],
                )
            } else if self.pos < self.chunk.len() {
                (Src::Chunk, self.pos, &self.chunk[self.pos..])
            } else {
                break;
            };
            let Some(i) = memchr::memchr(b'\n', data) else {
                // No newline in what is left: it all belongs to the current line.
                let n = data.len();
                match src {
                    Src::Pending => dec.pending_pos += n,
                    _ => self.pos += n,
                }
                dec.consumed += n as u64;
                if let Some(len) = dec.overlong.as_mut() {
                    *len += n as u64;
                } else if dec.tail.len() + n > max {
                    let so_far = (dec.tail.len() + n) as u64;
                    let take = max - dec.tail.len();
                    push_tail(&mut dec.tail, &data[..take], max);
                    dec.overlong = Some(so_far);
                } else {
                    push_tail(&mut dec.tail, data, max);
                }
                continue;
            };
            // A line ends at base + i.
            let line = dec.line;
            dec.line += 1;
            match src {
                Src::Pending => dec.pending_pos += i + 1,
                _ => self.pos += i + 1,
            }
            dec.consumed += (i + 1) as u64;
            dec.complete = dec.consumed;
            if let Some(len) = dec.overlong.take() {
                dec.release_tail = true;
                let end = dec.tail.len();
                return Some(Found::TooLong {
                    line,
                    len: len + i as u64,
                    src: Src::Tail,
                    start: 0,
                    end,
                });
            }
            if dec.tail.is_empty() {
                // The whole line lies in `data`: lend it from there.
                if i > max {
                    return Some(Found::TooLong {
                        line,
                        len: i as u64,
                        src,
                        start: base,
                        end: base + max,
                    });
                }
                let line_bytes = &data[..i];
                if is_blank(line_bytes) {
                    continue;
                }
                let end = base + strip_cr(line_bytes).len();
                return Some(Found::Line {
                    line,
                    src,
                    start: base,
                    end,
                });
            }
            // The line straddles chunks: finish it in the tail.
            let total = dec.tail.len() + i;
            let piece = &data[..i];
            if total > max {
                let take = max - dec.tail.len();
                push_tail(&mut dec.tail, &piece[..take], max);
                dec.release_tail = true;
                let end = dec.tail.len();
                return Some(Found::TooLong {
                    line,
                    len: total as u64,
                    src: Src::Tail,
                    start: 0,
                    end,
                });
            }
            push_tail(&mut dec.tail, piece, max);
            if is_blank(&dec.tail) {
                dec.tail.clear();
                continue;
            }
            dec.release_tail = true;
            let end = strip_cr(&dec.tail).len();
            return Some(Found::Line {
                line,
                src: Src::Tail,
                start: 0,
                end,
            });
        }
        // Everything fed has been processed; release what was kept.
        if !dec.pending.is_empty() {
            dec.pending = Vec::new();
            dec.pending_pos = 0;
        }
        if !self.eof {
            return None;
        }
        self.end_of_input()
    }

    /// Judges the bytes after the last newline at end of input.
    fn end_of_input(&mut self) -> Option<Found> {
        let dec = &mut *self.dec;
        let len = match dec.overlong {
            Some(len) => len,
            None if !dec.tail.is_empty() => dec.tail.len() as u64,
            None => return None,
        };
        let line = dec.line;
        let overlong = dec.overlong.take().is_some();
        dec.release_tail = true;
        match dec.cfg.final_newline {
            FinalNewline::Required => {
                // Not a line: rewind so the rest can be fetched and fed.
                dec.consumed = dec.complete;
                Some(Found::Truncated { line, len })
            }
            FinalNewline::Optional => {
                dec.line += 1;
                dec.complete = dec.consumed;
                let end = dec.tail.len();
                if overlong {
                    Some(Found::TooLong {
                        line,
                        len,
                        src: Src::Tail,
                        start: 0,
                        end,
                    })
                } else if is_blank(&dec.tail) {
                    None
                } else {
                    let end = strip_cr(&dec.tail).len();
                    Some(Found::Line {
                        line,
                        src: Src::Tail,
                        start: 0,
                        end,
                    })
                }
            }
        }
    }
}

impl Drop for Lines<'_> {
    /// Keeps the undrained rest of the chunk so the next `feed` yields it.
    fn drop(&mut self) {
        let dec = &mut *self.dec;
        if dec.release_tail {
            dec.tail.clear();
            dec.release_tail = false;
        }
        let rest = &self.chunk[self.pos..];
        if rest.is_empty() {
            return;
        }
        if dec.pending_pos > 0 {
            dec.pending.drain(..dec.pending_pos);
            dec.pending_pos = 0;
        }
        dec.pending.extend_from_slice(rest);
    }
}

/// The bytes an event refers to.
fn lend<'s>(chunk: &'s [u8], dec: &'s LineDecoder, src: Src, start: usize, end: usize) -> &'s [u8] {
    match src {
        Src::Chunk => &chunk[start..end],
        Src::Pending => &dec.pending[start..end],
        Src::Tail => &dec.tail[start..end],
    }
}

/// Appends to a tail buffer without letting its capacity grow past `max`.
fn push_tail(tail: &mut Vec<u8>, bytes: &[u8], max: usize) {
    let need = tail.len() + bytes.len();
    if need > tail.capacity() {
        let target = need.max(tail.capacity() * 2).min(max).max(need);
        tail.reserve_exact(target - tail.len());
    }
    tail.extend_from_slice(bytes);
}

/// Whether a line holds only spaces, tabs and carriage returns.
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// The line without one trailing `\r`.
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owned copy of a [`LineEvent`], for comparisons.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Ev {
        Line(u64, Vec<u8>),
        TooLong(u64, u64, Vec<u8>),
        Truncated(u64, u64, Vec<u8>),
    }

    fn own(ev: LineEvent<'_>) -> Ev {
        match ev {
            LineEvent::Line { line, bytes } => Ev::Line(line, bytes.to_vec()),
            LineEvent::TooLong { line, len, prefix } => Ev::TooLong(line, len, prefix.to_vec()),
            LineEvent::Truncated { line, len, prefix } => Ev::Truncated(line, len, prefix.to_vec()),
        }
    }

    fn drain(lines: &mut Lines<'_>, out: &mut Vec<Ev>) {
        while let Some(ev) = lines.next_line() {
            out.push(own(ev));
        }
    }

    fn run(cfg: DecoderConfig, chunks: &[&[u8]]) -> Vec<Ev> {
        let mut dec = LineDecoder::with_config(cfg);
        let mut out = Vec::new();
        for c in chunks {
            drain(&mut dec.feed(c), &mut out);
            assert!(dec.buffered_len() <= cfg.max_line_bytes);
        }
        drain(&mut dec.finish(), &mut out);
        out
    }

    fn line(n: u64, s: &str) -> Ev {
        Ev::Line(n, s.as_bytes().to_vec())
    }

    #[test]
    fn splits_lines_and_strips_terminators() {
        let evs = run(DecoderConfig::strict(100), &[b"a\r\nbb\n\n  \t\r\nccc\n"]);
        assert_eq!(evs, [line(1, "a"), line(2, "bb"), line(5, "ccc")]);
    }

    #[test]
    fn keeps_inner_carriage_returns_and_spaces() {
        let evs = run(DecoderConfig::strict(100), &[b" a\rb \r\r\n"]);
        assert_eq!(evs, [line(1, " a\rb \r")]);
    }

    #[test]
    fn joins_a_line_that_straddles_chunks() {
        let evs = run(
            DecoderConfig::strict(100),
            &[b"ab", b"c", b"d\r", b"\nef\n"],
        );
        assert_eq!(evs, [line(1, "abcd"), line(2, "ef")]);
    }

    #[test]
    fn lends_from_the_chunk_when_the_line_is_inside_it() {
        let chunk = b"x\nyz\n".to_vec();
        let mut dec = LineDecoder::new(10);
        let mut lines = dec.feed(&chunk);
        let Some(LineEvent::Line { bytes, .. }) = lines.next_line() else {
            panic!("no line")
        };
        assert_eq!(bytes.as_ptr(), chunk.as_ptr(), "line 1 was copied");
        let Some(LineEvent::Line { bytes, .. }) = lines.next_line() else {
            panic!("no line")
        };
        assert_eq!(bytes.as_ptr(), chunk[2..].as_ptr(), "line 2 was copied");
        assert!(lines.next_line().is_none());
    }

    #[test]
    fn strict_end_reports_truncation_and_rewinds() {
        let mut dec = LineDecoder::new(100);
        let mut out = Vec::new();
        drain(&mut dec.feed(b"one\ntwo\nthr"), &mut out);
        assert_eq!(dec.bytes_consumed(), 11);
        assert_eq!(dec.complete_bytes(), 8);
        assert!(!dec.is_at_line_boundary());
        assert_eq!(dec.buffered_len(), 3);
        drain(&mut dec.finish(), &mut out);
        assert_eq!(
            out,
            [
                line(1, "one"),
                line(2, "two"),
                Ev::Truncated(3, 3, b"thr".to_vec())
            ]
        );
        assert!(dec.is_at_line_boundary());
        assert_eq!(dec.bytes_consumed(), 8);
        assert_eq!(dec.lines_seen(), 2);
        assert_eq!(dec.buffered_len(), 0);
        // The rest of the file, fetched from offset 8, continues the numbering.
        drain(&mut dec.feed(b"three\n"), &mut out);
        assert_eq!(out.last(), Some(&line(3, "three")));
        assert_eq!(dec.complete_bytes(), 14);
        // Finishing again yields nothing.
        assert!(dec.finish().next_line().is_none());
    }

    #[test]
    fn lenient_end_yields_the_unterminated_line() {
        let evs = run(DecoderConfig::lenient(100), &[b"one\ntwo\r"]);
        assert_eq!(evs, [line(1, "one"), line(2, "two")]);
        let mut dec = LineDecoder::with_config(DecoderConfig::lenient(100));
        let mut out = Vec::new();
        drain(&mut dec.feed(b"a\nb"), &mut out);
        drain(&mut dec.finish(), &mut out);
        assert_eq!(dec.lines_seen(), 2);
        assert_eq!(dec.complete_bytes(), 3);
        assert!(dec.is_at_line_boundary());
    }

    #[test]
    fn blank_unterminated_tail_is_skipped_when_lenient_and_truncation_when_strict() {
        assert_eq!(
            run(DecoderConfig::lenient(100), &[b"a\n  "]),
            [line(1, "a")]
        );
        assert_eq!(
            run(DecoderConfig::strict(100), &[b"a\n  "]),
            [line(1, "a"), Ev::Truncated(2, 2, b"  ".to_vec())]
        );
    }

    #[test]
    fn empty_input_and_clean_end_report_nothing() {
        assert!(run(DecoderConfig::strict(10), &[]).is_empty());
        assert!(run(DecoderConfig::strict(10), &[b"", b""]).is_empty());
        assert_eq!(run(DecoderConfig::strict(10), &[b"a\n"]), [line(1, "a")]);
    }

    #[test]
    fn too_long_line_is_reported_once_with_its_prefix_and_length() {
        let input = b"ok\n0123456789abcdef\nnext\n";
        let whole = run(DecoderConfig::strict(4), &[input]);
        assert_eq!(
            whole,
            [
                line(1, "ok"),
                Ev::TooLong(2, 16, b"0123".to_vec()),
                line(3, "next")
            ]
        );
        let bytewise: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(DecoderConfig::strict(4), &bytewise), whole);
    }

    #[test]
    fn line_exactly_at_the_cap_is_a_line() {
        assert_eq!(
            run(DecoderConfig::strict(4), &[b"abcd\n"]),
            [line(1, "abcd")]
        );
        assert_eq!(
            run(DecoderConfig::strict(4), &[b"ab", b"cd\n"]),
            [line(1, "abcd")]
        );
        // The `\r` counts towards the cap.
        assert_eq!(
            run(DecoderConfig::strict(4), &[b"abcd\r\n"]),
            [Ev::TooLong(1, 5, b"abcd".to_vec())]
        );
    }

    #[test]
    fn overlong_unterminated_tail_is_truncation_when_strict_and_too_long_when_lenient() {
        let input: &[&[u8]] = &[b"a\n", b"0123456789"];
        assert_eq!(
            run(DecoderConfig::strict(4), input),
            [line(1, "a"), Ev::Truncated(2, 10, b"0123".to_vec())]
        );
        assert_eq!(
            run(DecoderConfig::lenient(4), input),
            [line(1, "a"), Ev::TooLong(2, 10, b"0123".to_vec())]
        );
    }

    #[test]
    fn skipping_an_overlong_line_never_buffers_past_the_cap() {
        let mut dec = LineDecoder::new(8);
        let big = vec![b'x'; 10_000];
        for piece in big.chunks(333) {
            let mut lines = dec.feed(piece);
            assert!(lines.next_line().is_none());
            drop(lines);
            assert!(dec.buffered_len() <= 8);
        }
        let mut out = Vec::new();
        drain(&mut dec.feed(b"\nz\n"), &mut out);
        assert_eq!(out, [Ev::TooLong(1, 10_000, vec![b'x'; 8]), line(2, "z")]);
    }

    #[test]
    fn zero_cap_reports_every_non_empty_line_as_too_long() {
        assert_eq!(
            run(DecoderConfig::strict(0), &[b"a\n\nb\n"]),
            [Ev::TooLong(1, 1, vec![]), Ev::TooLong(3, 1, vec![])]
        );
    }

    #[test]
    fn dropping_lines_early_keeps_the_rest_for_the_next_feed() {
        let mut dec = LineDecoder::new(100);
        let mut out = Vec::new();
        {
            let mut lines = dec.feed(b"1\n2\n3");
            out.push(own(lines.next_line().expect("line 1")));
        }
        assert_eq!(dec.pending_len(), 3);
        // Dropped again before anything is read: still nothing lost.
        drop(dec.feed(b"\n4\n"));
        assert_eq!(dec.pending_len(), 6);
        {
            let mut lines = dec.feed(b"5\n");
            out.push(own(lines.next_line().expect("line 2")));
        }
        drain(&mut dec.feed(b""), &mut out);
        drain(&mut dec.finish(), &mut out);
        assert_eq!(
            out,
            [
                line(1, "1"),
                line(2, "2"),
                line(3, "3"),
                line(4, "4"),
                line(5, "5")
            ]
        );
        assert_eq!(dec.pending_len(), 0);
        assert_eq!(dec.complete_bytes(), 10);
    }

    #[test]
    fn finish_yields_kept_lines_before_the_end_event() {
        let mut dec = LineDecoder::new(100);
        drop(dec.feed(b"a\nb"));
        let mut out = Vec::new();
        drain(&mut dec.finish(), &mut out);
        assert_eq!(out, [line(1, "a"), Ev::Truncated(2, 1, b"b".to_vec())]);
    }

    #[test]
    fn rewind_drops_the_partial_line() {
        let mut dec = LineDecoder::new(100);
        let mut out = Vec::new();
        drain(&mut dec.feed(b"a\nbc"), &mut out);
        assert_eq!(dec.rewind_to_line_boundary(), 2);
        assert!(dec.is_at_line_boundary());
        assert_eq!(dec.bytes_consumed(), 2);
        drain(&mut dec.feed(b"bcd\n"), &mut out);
        assert_eq!(out, [line(1, "a"), line(2, "bcd")]);
    }

    #[test]
    fn resume_at_continues_offsets_and_numbers() {
        let mut dec = LineDecoder::resume_at(DecoderConfig::strict(100), 500, 41);
        let mut out = Vec::new();
        drain(&mut dec.feed(b"x\n"), &mut out);
        assert_eq!(out, [line(42, "x")]);
        assert_eq!(dec.complete_bytes(), 502);
    }

    #[test]
    fn tail_capacity_stays_within_the_cap() {
        let mut dec = LineDecoder::new(1000);
        for _ in 0..10 {
            assert!(dec.feed(&[b'y'; 99]).next_line().is_none());
        }
        assert_eq!(dec.buffered_len(), 990);
        assert!(
            dec.tail.capacity() <= 1000,
            "capacity {}",
            dec.tail.capacity()
        );
    }
}
