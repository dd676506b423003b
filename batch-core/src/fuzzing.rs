//! Fuzz bodies (feature "fuzzing").
//!
//! Each function takes arbitrary bytes and must return normally: a parse
//! failure is fine, a panic is a bug. Besides "no panic", the bodies assert
//! the invariants that hold for any input (the same events however the input
//! is chunked, a tail buffer within its cap), so a fuzzer also finds logic
//! errors. The cargo-fuzz targets are one-line shims into these functions,
//! and `cargo test --features fuzzing` replays the checked-in corpus under
//! `tests/fuzz-corpus/<target>/` through them, so they cannot rot.

use crate::jsonl::{DecoderConfig, LineDecoder, LineEvent};
use crate::results::{ResultEvent, ResultStream, parse_result_line, salvage_custom_id};

/// One result line: [`parse_result_line`] and [`salvage_custom_id`] on the
/// raw bytes, plus every derived view of a parsed record.
pub fn result_line(data: &[u8]) {
    match parse_result_line(1, data) {
        Ok(record) => {
            assert_eq!(record.raw.as_bytes(), data, "raw must be the exact line");
            if let Some(s) = record.success() {
                let _ = s.content_unfenced();
                let _ = s.chat_completion();
                let _ = s.responses_body();
                let _ = s.completion();
                if let Some(e) = s.embeddings() {
                    let _ = e.vectors();
                }
            }
            if let Some(f) = record.failure() {
                let _ = f.to_string();
                let _ = f.is_not_processed();
            }
        }
        Err(bad) => {
            assert_eq!(bad.line, 1);
            let _ = bad.to_string();
        }
    }
    let _ = salvage_custom_id(data);
}

/// A result file fed to a [`ResultStream`] in chunks the input chooses.
///
/// Layout: byte 0 picks the line cap (`(byte / 2)²`), byte 1 the number of cut points (up to
/// 15), then two bytes per cut point, then the file. The events must equal
/// those of feeding the file whole, and the tail buffer must stay within
/// the cap.
pub fn result_stream(data: &[u8]) {
    let (max, cuts, file) = layout(data);
    let collect = |chunks: &[&[u8]]| -> Vec<ResultEvent> {
        let mut stream = ResultStream::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(stream.feed(chunk));
            assert!(stream.decoder().buffered_len() <= max, "tail over the cap");
        }
        out.extend(stream.finish());
        assert!(stream.decoder().is_at_line_boundary());
        out
    };
    let whole = collect(&[file]);
    let chunked = collect(&split(file, &cuts));
    assert_eq!(chunked, whole, "events depend on chunking");
}

/// The bare [`LineDecoder`], in the mode the input chooses, with some
/// [`Lines`](crate::jsonl::Lines) dropped before they are drained.
///
/// Layout as for [`result_stream`]; the low bit of byte 0 also picks strict
/// or lenient mode. Dropping early must not change the events.
pub fn line_decoder(data: &[u8]) {
    let (max, cuts, file) = layout(data);
    let cfg = if data.first().is_some_and(|b| b & 1 == 1) {
        DecoderConfig::lenient(max)
    } else {
        DecoderConfig::strict(max)
    };
    // `take` is how many events to read from each chunk before dropping.
    let collect = |chunks: &[&[u8]], take: usize| -> Vec<(u64, u8, Vec<u8>)> {
        let mut dec = LineDecoder::with_config(cfg);
        let mut out = Vec::new();
        let mut push = |ev: LineEvent<'_>| {
            let (kind, bytes) = match ev {
                LineEvent::Line { bytes, .. } => (0, bytes),
                LineEvent::TooLong { prefix, .. } => (1, prefix),
                LineEvent::Truncated { prefix, .. } => (2, prefix),
            };
            out.push((ev.line(), kind, bytes.to_vec()));
        };
        for chunk in chunks {
            let mut lines = dec.feed(chunk);
            for _ in 0..take {
                match lines.next_line() {
                    Some(ev) => push(ev),
                    None => break,
                }
            }
            drop(lines);
            assert!(dec.buffered_len() <= max, "tail over the cap");
        }
        let mut end = dec.finish();
        while let Some(ev) = end.next_line() {
            push(ev);
        }
        drop(end);
        assert_eq!(dec.pending_len(), 0);
        out
    };
    let whole = collect(&[file], usize::MAX);
    let chunks = split(file, &cuts);
    assert_eq!(
        collect(&chunks, usize::MAX),
        whole,
        "events depend on chunking"
    );
    assert_eq!(
        collect(&chunks, 1),
        whole,
        "dropping early lost or changed events"
    );
}

/// Splits fuzz input into (cap, sorted cut offsets, payload).
fn layout(data: &[u8]) -> (usize, Vec<usize>, &[u8]) {
    // 0 to 16,129, dense at the small end where the cap bites.
    let half = usize::from(data.first().copied().unwrap_or(0) >> 1);
    let max = half * half;
    let n = usize::from(data.get(1).copied().unwrap_or(0) % 16);
    let header_end = (2 + 2 * n).min(data.len());
    let header = data.get(2..header_end).unwrap_or_default();
    let payload = &data[header_end..];
    let mut cuts: Vec<usize> = header
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (payload.len() + 1))
        .collect();
    cuts.sort_unstable();
    (max, cuts, payload)
}

fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut from = 0;
    for &c in cuts {
        out.push(&bytes[from..c]);
        from = c;
    }
    out.push(&bytes[from..]);
    out
}

/// Response JSON: `Batch`, `FileObject`, list pages and the error envelope.
///
/// Whatever parses must serialize and parse back to the same value, and
/// [`ApiError::from_response`](crate::api::ApiError::from_response) must
/// accept any bytes with any status.
pub fn api_json(data: &[u8]) {
    use crate::api::{ApiError, Batch, ErrorResponse, FileObject, List};
    fn round_trip<
        T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
    >(
        data: &[u8],
    ) {
        if let Ok(v) = serde_json::from_slice::<T>(data) {
            let again = serde_json::to_vec(&v).expect("a parsed value serializes");
            let back: T = serde_json::from_slice(&again).expect("what we write parses back");
            assert_eq!(back, v, "round trip changed the value");
        }
    }
    round_trip::<Batch>(data);
    round_trip::<FileObject>(data);
    round_trip::<List<Batch>>(data);
    round_trip::<ErrorResponse>(data);
    let status = data.first().map_or(500, |b| 400 + u16::from(*b % 200));
    let status =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let err = ApiError::from_response(status, &http::HeaderMap::new(), data);
    let _ = err.to_string();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_reads_cap_cuts_and_payload() {
        let (max, cuts, payload) = layout(&[10, 2, 3, 0, 1, 0, b'a', b'b', b'\n']);
        assert_eq!((max, cuts, payload), (25, vec![1, 3], &b"ab\n"[..]));
        assert_eq!(layout(&[]), (0, vec![], &b""[..]));
        // A header longer than the input is cut short, not read past.
        assert_eq!(layout(&[0, 15, 1]), (0, vec![], &b""[..]));
    }

    #[test]
    fn bodies_accept_empty_and_tiny_inputs() {
        for data in [&b""[..], b"\x00", b"\xff\xff", b"\n", b"{}"] {
            result_line(data);
            result_stream(data);
            line_decoder(data);
        }
    }
}
