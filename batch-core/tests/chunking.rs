//! Chunk-boundary independence, h11 style: every fixture is fed whole, byte
//! by byte, split at every single point, and split at random points; the
//! events must be identical. A file cut inside its last line must report the
//! truncation at EOF.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use batch_core::jsonl::{DecoderConfig, LineDecoder, LineEvent};
use batch_core::results::{ResultEvent, ResultStream};

const FIXTURES: [&str; 6] = [
    "chat_output.jsonl",
    "chat_output_crlf.jsonl",
    "responses_output.jsonl",
    "embeddings_output.jsonl",
    "errors.jsonl",
    "damaged_truncated.jsonl",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// A small deterministic PRNG (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Cuts `bytes` at the given sorted offsets.
fn split_at<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut from = 0;
    for &c in cuts {
        out.push(&bytes[from..c]);
        from = c;
    }
    out.push(&bytes[from..]);
    out
}

fn random_chunks<'a>(bytes: &'a [u8], rng: &mut Rng, max_chunk: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        // Empty chunks are allowed and must change nothing.
        let n = rng.below(max_chunk + 1).min(rest.len());
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
    }
    out
}

/// Runs a result stream over `chunks`, draining fully, checking the tail cap.
fn stream_events(chunks: &[&[u8]], max_line_bytes: usize) -> Vec<ResultEvent> {
    let mut stream = ResultStream::new(max_line_bytes);
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(stream.feed(chunk));
        assert!(stream.decoder().buffered_len() <= max_line_bytes);
    }
    out.extend(stream.finish());
    out
}

/// An owned copy of a decoder event.
#[derive(Debug, PartialEq, Eq)]
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

fn decoder_events(cfg: DecoderConfig, chunks: &[&[u8]]) -> Vec<Ev> {
    let mut dec = LineDecoder::with_config(cfg);
    let mut out = Vec::new();
    for chunk in chunks {
        let mut lines = dec.feed(chunk);
        while let Some(ev) = lines.next_line() {
            out.push(own(ev));
        }
        drop(lines);
        assert!(dec.buffered_len() <= cfg.max_line_bytes);
    }
    let mut end = dec.finish();
    while let Some(ev) = end.next_line() {
        out.push(own(ev));
    }
    out
}

#[test]
fn fixtures_whole_and_byte_by_byte() {
    for name in FIXTURES {
        let bytes = fixture(name);
        let whole = stream_events(&[&bytes], 1 << 20);
        assert!(!whole.is_empty(), "{name}");
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            stream_events(&bytewise, 1 << 20),
            whole,
            "{name} byte by byte"
        );
    }
}

#[test]
fn fixtures_split_at_every_single_point() {
    for name in FIXTURES {
        let bytes = fixture(name);
        let whole = stream_events(&[&bytes], 1 << 20);
        for cut in 0..=bytes.len() {
            let chunks = split_at(&bytes, &[cut]);
            assert_eq!(
                stream_events(&chunks, 1 << 20),
                whole,
                "{name} split at {cut}"
            );
        }
    }
}

#[test]
fn fixtures_split_at_random_points() {
    let mut rng = Rng(0x5EED_0001);
    for name in FIXTURES {
        let bytes = fixture(name);
        let whole = stream_events(&[&bytes], 1 << 20);
        for round in 0..300 {
            let max_chunk = [3, 17, 64, 700, 4096][round % 5];
            let chunks = random_chunks(&bytes, &mut rng, max_chunk);
            assert_eq!(
                stream_events(&chunks, 1 << 20),
                whole,
                "{name} round {round}"
            );
        }
    }
}

#[test]
fn too_long_lines_are_chunk_independent_too() {
    // A cap below most fixture lines: TooLong events, prefixes and the
    // salvaged custom_ids must not depend on where chunks fall.
    let mut rng = Rng(0x5EED_0002);
    for name in FIXTURES {
        let bytes = fixture(name);
        let whole = stream_events(&[&bytes], 300);
        assert!(
            whole
                .iter()
                .any(|e| matches!(e, ResultEvent::TooLong { .. })),
            "{name} has no line over 300 bytes"
        );
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(stream_events(&bytewise, 300), whole, "{name} byte by byte");
        for round in 0..100 {
            let chunks = random_chunks(&bytes, &mut rng, 1 + round * 7);
            assert_eq!(stream_events(&chunks, 300), whole, "{name} round {round}");
        }
        for cfg in [DecoderConfig::strict(300), DecoderConfig::lenient(300)] {
            let whole = decoder_events(cfg, &[&bytes]);
            for round in 0..50 {
                let chunks = random_chunks(&bytes, &mut rng, 1 + round * 13);
                assert_eq!(
                    decoder_events(cfg, &chunks),
                    whole,
                    "{name} {cfg:?} round {round}"
                );
            }
        }
    }
}

#[test]
fn cut_inside_the_last_line_reports_truncation_at_eof() {
    let mut rng = Rng(0x5EED_0003);
    for name in FIXTURES {
        let full = fixture(name);
        let whole = stream_events(&[&full], 1 << 20);
        // Cut at every byte of the last complete line (for the damaged
        // fixture, the last line before its own truncated one).
        let end = full.iter().rposition(|&b| b == b'\n').expect("a newline") + 1;
        let start = full[..end - 1]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let last_line = full[..start].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        let kept: Vec<&ResultEvent> = whole.iter().filter(|e| e.line() < last_line).collect();
        for cut in start + 1..end {
            let chunks = random_chunks(&full[..cut], &mut rng, 97);
            let got = stream_events(&chunks, 1 << 20);
            let (last, before) = got.split_last().expect("events");
            assert_eq!(
                before.iter().collect::<Vec<_>>(),
                kept,
                "{name} cut at {cut}"
            );
            let ResultEvent::Truncated { line, len, .. } = last else {
                panic!("{name} cut at {cut}: last event {last:?}")
            };
            assert_eq!(
                (*line, *len as usize),
                (last_line, cut - start),
                "{name} cut at {cut}"
            );
        }
        // Cut right after a newline: nothing is truncated.
        let got = stream_events(&[&full[..end]], 1 << 20);
        assert!(
            !got.iter()
                .any(|e| matches!(e, ResultEvent::Truncated { .. })),
            "{name}"
        );
    }
}

#[test]
fn dropping_event_iterators_early_loses_nothing() {
    let mut rng = Rng(0x5EED_0004);
    for name in FIXTURES {
        let bytes = fixture(name);
        let whole = stream_events(&[&bytes], 1 << 20);
        for round in 0..100 {
            let mut stream = ResultStream::new(1 << 20);
            let mut got = Vec::new();
            for chunk in random_chunks(&bytes, &mut rng, 1 + round * 11) {
                // Take only some of the events, then drop the iterator.
                let take = rng.below(3);
                got.extend(stream.feed(chunk).take(take));
            }
            got.extend(stream.finish());
            assert_eq!(got, whole, "{name} round {round}");
            assert_eq!(stream.decoder().pending_len(), 0);
        }
    }
}

#[test]
fn resuming_after_a_cut_at_any_point_gives_the_whole_file() {
    // The connection dies at byte `cut`; the rest is fetched from
    // complete_bytes() (a Range request) and fed to the same stream.
    for name in FIXTURES {
        let full = fixture(name);
        let whole = stream_events(&[&full], 1 << 20);
        for cut in (0..=full.len()).step_by(7) {
            let mut stream = ResultStream::new(1 << 20);
            let mut got: Vec<ResultEvent> = stream.feed(&full[..cut]).collect();
            stream.rewind_to_line_boundary();
            let from = usize::try_from(stream.decoder().complete_bytes()).expect("offset");
            assert!(
                from <= cut && (from == 0 || full[from - 1] == b'\n'),
                "{name} cut at {cut}"
            );
            got.extend(stream.feed(&full[from..]));
            got.extend(stream.finish());
            assert_eq!(got, whole, "{name} cut at {cut}");
        }
    }
}
