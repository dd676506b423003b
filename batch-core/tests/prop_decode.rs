//! Property tests for the line decoder and result parsing.

use batch_core::jsonl::{DecoderConfig, LineDecoder, LineEvent};
use batch_core::results::{ResultEvent, ResultStream, parse_result_line, salvage_custom_id};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::json;

/// An owned copy of a decoder event.
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
        _ => unreachable!("an event kind this test does not know"),
    }
}

/// What the decoder should yield, computed the obvious way on the whole input.
fn model(input: &[u8], cfg: DecoderConfig) -> Vec<Ev> {
    let max = cfg.max_line_bytes;
    let mut pieces: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let tail = pieces.pop().unwrap_or_default();
    let judge = |n: u64, p: &[u8]| -> Option<Ev> {
        if p.len() > max {
            return Some(Ev::TooLong(n, p.len() as u64, p[..max].to_vec()));
        }
        if p.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
            return None;
        }
        Some(Ev::Line(n, p.strip_suffix(b"\r").unwrap_or(p).to_vec()))
    };
    let mut out: Vec<Ev> = (1..)
        .zip(&pieces)
        .filter_map(|(n, p)| judge(n, p))
        .collect();
    let n = pieces.len() as u64 + 1;
    if !tail.is_empty() {
        let lenient = cfg == DecoderConfig::lenient(max);
        if lenient {
            out.extend(judge(n, tail));
        } else {
            let keep = tail.len().min(max);
            out.push(Ev::Truncated(n, tail.len() as u64, tail[..keep].to_vec()));
        }
    }
    out
}

/// Sorted cut offsets into `len` bytes.
fn cuts(idx: &[Index], len: usize) -> Vec<usize> {
    let mut c: Vec<usize> = idx.iter().map(|i| i.index(len + 1)).collect();
    c.sort_unstable();
    c
}

fn chunks<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut from = 0;
    for &c in cuts {
        out.push(&bytes[from..c]);
        from = c;
    }
    out.push(&bytes[from..]);
    out
}

/// Bytes rich in newlines, carriage returns and blanks.
fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => Just(b'\n'),
        2 => Just(b'\r'),
        2 => Just(b' '),
        1 => Just(b'\t'),
        4 => b'a'..=b'f',
        2 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..400)
}

fn config() -> impl Strategy<Value = DecoderConfig> {
    (0usize..40, any::<bool>()).prop_map(|(max, strict)| {
        if strict {
            DecoderConfig::strict(max)
        } else {
            DecoderConfig::lenient(max)
        }
    })
}

/// One result-file line (without its terminator), realistic or not.
fn result_line() -> impl Strategy<Value = Vec<u8>> {
    let text = "\\PC{0,40}";
    prop_oneof![
        (text, any::<u16>()).prop_map(|(content, n)| {
            json!({"id": format!("batch_req_{n}"), "custom_id": format!("req-{n}"),
                   "response": {"status_code": 200, "request_id": "r", "body": {
                       "object": "chat.completion", "model": "m",
                       "choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}},
                   "error": null})
            .to_string()
            .into_bytes()
        }),
        (text, 400u16..600).prop_map(|(msg, status)| {
            json!({"custom_id": msg.clone(), "response": {"status_code": status, "body": {
                "error": {"message": msg, "type": "invalid_request_error", "param": null, "code": null}}},
                "error": null})
            .to_string()
            .into_bytes()
        }),
        prop_oneof![Just("batch_expired"), Just("batch_cancelled")].prop_map(|code| {
            json!({"custom_id": "x", "response": null, "error": {"code": code, "message": "m"}})
                .to_string()
                .into_bytes()
        }),
        Just(Vec::new()),
        Just(b"  \t".to_vec()),
        prop::collection::vec(any::<u8>(), 0..60)
            .prop_map(|v| v.into_iter().filter(|&b| b != b'\n').collect()),
    ]
}

/// A result file: lines joined by `\n` or `\r\n`, maybe with a cut-off tail.
fn result_file() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec((result_line(), any::<bool>()), 0..12),
        prop::option::of(result_line()),
    )
        .prop_map(|(lines, tail)| {
            let mut out = Vec::new();
            for (line, crlf) in lines {
                out.extend_from_slice(&line);
                out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            }
            if let Some(t) = tail {
                out.extend_from_slice(&t);
            }
            out
        })
}

fn stream_events(chunks: &[&[u8]], max: usize) -> Vec<ResultEvent> {
    let mut stream = ResultStream::new(max);
    let mut out = Vec::new();
    for c in chunks {
        out.extend(stream.feed(c));
        assert!(stream.decoder().buffered_len() <= max);
    }
    out.extend(stream.finish());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes, any chunking, any cap: the decoder yields what the model
    /// says, never buffers more than the cap, and ends at a line boundary.
    #[test]
    fn decoder_matches_the_model(input in line_bytes(), cfg in config(),
                                 idx in prop::collection::vec(any::<Index>(), 0..12)) {
        let mut dec = LineDecoder::with_config(cfg);
        let mut got = Vec::new();
        for chunk in chunks(&input, &cuts(&idx, input.len())) {
            let mut lines = dec.feed(chunk);
            while let Some(ev) = lines.next_line() {
                got.push(own(ev));
            }
            drop(lines);
            prop_assert!(dec.buffered_len() <= cfg.max_line_bytes);
        }
        let before_finish = dec.complete_bytes();
        let mut end = dec.finish();
        while let Some(ev) = end.next_line() {
            got.push(own(ev));
        }
        drop(end);
        prop_assert_eq!(got, model(&input, cfg));
        prop_assert!(dec.is_at_line_boundary());
        prop_assert_eq!(dec.buffered_len(), 0);
        let last_nl = input.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) as u64;
        prop_assert_eq!(before_finish, last_nl);
        let newlines = input.iter().filter(|&&b| b == b'\n').count() as u64;
        if cfg == DecoderConfig::strict(cfg.max_line_bytes) || last_nl == input.len() as u64 {
            prop_assert_eq!(dec.complete_bytes(), last_nl);
            prop_assert_eq!(dec.lines_seen(), newlines);
        } else {
            prop_assert_eq!(dec.complete_bytes(), input.len() as u64);
            prop_assert_eq!(dec.lines_seen(), newlines + 1);
        }
    }

    /// Draining only part of each chunk's lines before dropping the iterator
    /// yields the same lines in the end.
    #[test]
    fn early_drops_lose_nothing(input in line_bytes(), cfg in config(),
                                idx in prop::collection::vec(any::<Index>(), 0..12),
                                takes in prop::collection::vec(0usize..3, 13)) {
        let mut dec = LineDecoder::with_config(cfg);
        let mut got = Vec::new();
        for (chunk, take) in chunks(&input, &cuts(&idx, input.len())).into_iter().zip(takes) {
            let mut lines = dec.feed(chunk);
            for _ in 0..take {
                match lines.next_line() {
                    Some(ev) => got.push(own(ev)),
                    None => break,
                }
            }
            drop(lines);
            prop_assert!(dec.buffered_len() <= cfg.max_line_bytes);
        }
        let mut end = dec.finish();
        while let Some(ev) = end.next_line() {
            got.push(own(ev));
        }
        drop(end);
        prop_assert_eq!(got, model(&input, cfg));
        prop_assert_eq!(dec.pending_len(), 0);
    }

    /// Every split of a result file gives the same events as feeding it whole.
    #[test]
    fn result_file_split_anywhere_gives_the_same_events(
        file in result_file(), idx in prop::collection::vec(any::<Index>(), 0..16),
        max in prop_oneof![Just(1usize << 20), 20usize..400],
    ) {
        let whole = stream_events(&[&file], max);
        let split = stream_events(&chunks(&file, &cuts(&idx, file.len())), max);
        prop_assert_eq!(&split, &whole);
        let bytewise: Vec<&[u8]> = file.chunks(1).collect();
        prop_assert_eq!(stream_events(&bytewise, max), whole);
    }

    /// Arbitrary bytes never panic the parser; a parsed line keeps its bytes
    /// and its top-level custom_id.
    #[test]
    fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), line in any::<u64>()) {
        match parse_result_line(line, &bytes) {
            Ok(r) => {
                prop_assert_eq!(r.raw.as_bytes(), &bytes[..]);
                prop_assert_eq!(r.line, line);
                let v: serde_json::Value = serde_json::from_slice(&bytes).expect("it parsed");
                prop_assert_eq!(v["custom_id"].as_str(), Some(r.custom_id.as_str()));
            }
            Err(bad) => prop_assert_eq!(bad.line, line),
        }
        let _ = salvage_custom_id(&bytes);
    }

    /// Mutated realistic lines never panic the parser either.
    #[test]
    fn parser_never_panics_on_damaged_lines(line in result_line(), at in any::<Index>(), byte in any::<u8>(), cut in any::<Index>()) {
        let mut damaged = line.clone();
        if !damaged.is_empty() {
            let i = at.index(damaged.len());
            damaged[i] = byte;
            damaged.truncate(cut.index(damaged.len() + 1).max(i));
        }
        let _ = parse_result_line(1, &damaged);
    }

    /// The salvaged custom_id of a line cut anywhere after the id is the id,
    /// whatever characters (and escapes) it holds.
    #[test]
    fn salvage_recovers_any_custom_id(id in r#"\PC{0,30}|["\\/\x00-\x1fé😀]{0,10}"#, cut in any::<Index>()) {
        let line = json!({"custom_id": id, "response": {"status_code": 200, "body": {"x": 1}}}).to_string();
        let key_end = line.find("\"response\"").expect("key");
        let cut = key_end + cut.index(line.len() - key_end + 1);
        let salvaged = salvage_custom_id(&line.as_bytes()[..cut]);
        prop_assert_eq!(salvaged.as_deref(), Some(id.as_str()));
        // And through the parser, when the cut makes the line invalid.
        if let Err(bad) = parse_result_line(1, &line.as_bytes()[..cut]) {
            prop_assert_eq!(bad.custom_id.as_deref(), Some(id.as_str()));
        }
    }
}
