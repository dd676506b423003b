//! Decoding throughput on a large synthetic result file.
//!
//! Builds a few megabytes of realistic result lines once, then streams them
//! over and over through a fixed read buffer, as a transport reading a
//! download would, into the bare line decoder and into the full
//! `ResultStream` (decode + parse). Prints MB/s and the largest tail buffer
//! seen; nothing is asserted.
//!
//! On the same bytes, in the same run, it also times the ceiling: the same
//! line decoder feeding a typed, borrowing serde parse of each line that
//! reads what a result needs (`id`, `custom_id`, `response.status_code`,
//! `response.request_id`, the error) and keeps the body as raw JSON. It
//! prints the project's parser as a ratio of that ceiling.
//!
//! ```sh
//! cargo run --release -p batch-core --example decode_bench -- [megabytes]
//! ```
#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::time::Instant;

use std::borrow::Cow;

use batch_core::jsonl::{LineDecoder, LineEvent};
use batch_core::results::{ResultEvent, ResultStream};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

const MAX_LINE: usize = 1 << 20;

/// About 4 MiB of lines: mostly chat completions, some errors, and (with
/// `embeddings`) every fiftieth line an embeddings line of ~60 KB.
fn block(embeddings: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut n = 0u64;
    while out.len() < 4 << 20 {
        n += 1;
        let line = match n % 50 {
            0 if embeddings => {
                let v: Vec<f64> = (0..3072)
                    .map(|i| ((i * 7919 + n) % 1000) as f64 / 1e4 - 0.05)
                    .collect();
                json!({"id": format!("batch_req_{n}"), "custom_id": format!("emb-{n}"),
                       "response": {"status_code": 200, "request_id": "req", "body": {
                           "object": "list", "model": "text-embedding-3-large",
                           "data": [{"object": "embedding", "index": 0, "embedding": v}],
                           "usage": {"prompt_tokens": 9, "total_tokens": 9}}}, "error": null})
            }
            1..=4 => json!({"id": format!("batch_req_{n}"), "custom_id": format!("req-{n}"),
                "response": {"status_code": 400, "request_id": "req", "body": {"error": {
                    "message": "Invalid value for 'temperature'.", "type": "invalid_request_error",
                    "param": "temperature", "code": "invalid_value"}}}, "error": null}),
            _ => json!({"id": format!("batch_req_{n}"), "custom_id": format!("req-{n}"),
                "response": {"status_code": 200, "request_id": "req", "body": {
                    "id": "chatcmpl-x", "object": "chat.completion", "created": 1_741_793_523,
                    "model": "gpt-4o-mini-2024-07-18",
                    "choices": [{"index": 0, "message": {"role": "assistant",
                        "content": format!("```json\n{{\"label\": \"positive\", \"score\": 0.{n:04}, \"reason\": \"The review praises the food and the service at length.\"}}\n```"),
                        "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 112, "completion_tokens": 31, "total_tokens": 143,
                              "prompt_tokens_details": {"cached_tokens": 64}}}}, "error": null}),
        };
        out.extend_from_slice(line.to_string().as_bytes());
        out.extend_from_slice(b"\n");
    }
    out
}

/// Calls `f` with successive `chunk`-byte reads of `total` bytes of
/// `block` repeated.
fn stream(block: &[u8], total: usize, chunk: usize, mut f: impl FnMut(&[u8])) {
    let mut buf = vec![0u8; chunk];
    let (mut pos, mut sent) = (0, 0);
    while sent < total {
        let want = chunk.min(total - sent);
        let mut filled = 0;
        while filled < want {
            let n = (want - filled).min(block.len() - pos);
            buf[filled..filled + n].copy_from_slice(&block[pos..pos + n]);
            filled += n;
            pos = (pos + n) % block.len();
        }
        f(&buf[..want]);
        sent += want;
    }
}

/// The ceiling's view of a result line: typed, borrowing, body left raw.
#[derive(Deserialize)]
#[allow(dead_code)]
struct TypedLine<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    custom_id: Cow<'a, str>,
    #[serde(borrow)]
    response: Option<TypedResponse<'a>>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

/// The ceiling's view of `response`.
#[derive(Deserialize)]
#[allow(dead_code)]
struct TypedResponse<'a> {
    status_code: Option<u16>,
    #[serde(borrow)]
    request_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
}

fn mb_per_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / secs
}

/// The CPU time this process has run, from `/proc/self/schedstat` (Linux;
/// nanoseconds, the first field), if it can be read.
fn cpu_secs() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// Times `f`: by the CPU time the process ran where it can be read (a
/// busy machine then slows the figure less), else by the clock.
struct Timer {
    wall: Instant,
    cpu: Option<f64>,
}

impl Timer {
    fn start() -> Self {
        Timer {
            wall: Instant::now(),
            cpu: cpu_secs(),
        }
    }

    fn secs(&self) -> f64 {
        match (self.cpu, cpu_secs()) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => self.wall.elapsed().as_secs_f64(),
        }
    }
}

fn main() {
    let megabytes: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let block = block(true);
    // Whole blocks only, so the file ends at a line boundary.
    let total = (megabytes << 20).div_ceil(block.len()) * block.len();
    println!(
        "synthetic result file: {:.0} MiB ({} passes over a {:.1} MiB block of lines), cap {} KiB",
        total as f64 / 1048576.0,
        total / block.len(),
        block.len() as f64 / 1048576.0,
        MAX_LINE >> 10
    );

    for chunk in [64 << 10, 1500] {
        let mut dec = LineDecoder::new(MAX_LINE);
        let (mut lines, mut peak) = (0u64, 0usize);
        let start = Instant::now();
        stream(&block, total, chunk, |c| {
            let mut it = dec.feed(c);
            while it.next_line().is_some() {
                lines += 1;
            }
            drop(it);
            peak = peak.max(dec.buffered_len());
        });
        assert!(
            dec.finish().next_line().is_none(),
            "the file ends at a line boundary"
        );
        let secs = start.elapsed().as_secs_f64();
        println!(
            "line decoder, {:>5}-byte chunks: {:>8.0} MB/s, {lines} lines, peak tail {peak} bytes",
            chunk,
            mb_per_s(total, secs)
        );
    }

    // The two parsers take turns, five rounds each over the whole file,
    // timed by the CPU time the process ran (where Linux tells it), and
    // the best round of each counts, so load elsewhere on the machine skews
    // the ratio less. That time advances in scheduler ticks (4 ms here), so
    // a round must be long: 128 MiB or more keeps the tick under 5 % of it.
    let mixed = compare(&block, total);
    // The same without embeddings lines: small lines only, where the cost
    // of a record (its allocations, the copy of its line) weighs most.
    println!("chat and error lines only:");
    let chat = self::block(false);
    let chat_total = total.div_ceil(chat.len()) * chat.len();
    let small = compare(&chat, chat_total);
    println!(
        "result stream at {mixed:.0} % of the typed ceiling ({small:.0} % on chat and error lines only)"
    );
}

/// Times both parsers on `total` bytes of `block` repeated, taking turns
/// over five rounds; prints the best round of each and returns ours as a
/// percentage of the ceiling.
fn compare(block: &[u8], total: usize) -> f64 {
    let (mut ours, mut ceiling) = (0f64, 0f64);
    for _ in 0..5 {
        ours = ours.max(time_result_stream(block, total));
        ceiling = ceiling.max(time_ceiling(block, total));
    }
    let clock = if cpu_secs().is_some() {
        "CPU time"
    } else {
        "wall time"
    };
    println!(
        "best of five ({clock}): result stream {ours:.0} MB/s, typed ceiling {ceiling:.0} MB/s"
    );
    100.0 * ours / ceiling
}

/// Streams `total` bytes through the project's `ResultStream`; MB/s.
fn time_result_stream(block: &[u8], total: usize) -> f64 {
    let mut rs = ResultStream::new(MAX_LINE);
    let (mut ok, mut failed, mut other, mut peak) = (0u64, 0u64, 0u64, 0usize);
    let start = Timer::start();
    stream(block, total, 64 << 10, |c| {
        for ev in rs.feed(c) {
            match ev {
                ResultEvent::Record(r) if r.is_success() => ok += 1,
                ResultEvent::Record(_) => failed += 1,
                _ => other += 1,
            }
        }
        peak = peak.max(rs.decoder().buffered_len());
    });
    other += rs.finish().count() as u64;
    let secs = start.secs();
    let speed = mb_per_s(total, secs);
    println!(
        "result stream (decode + parse), 65536-byte chunks: {speed:.0} MB/s, {:.0} records/s \
         ({ok} ok, {failed} failed, {other} other), peak tail {peak} bytes",
        (ok + failed) as f64 / secs
    );
    speed
}

/// Streams `total` bytes through the same decoder into the typed,
/// borrowing parse (the ceiling); MB/s.
fn time_ceiling(block: &[u8], total: usize) -> f64 {
    let mut dec = LineDecoder::new(MAX_LINE);
    let (mut ok, mut failed, mut bad) = (0u64, 0u64, 0u64);
    let start = Timer::start();
    stream(block, total, 64 << 10, |c| {
        let mut it = dec.feed(c);
        while let Some(ev) = it.next_line() {
            let LineEvent::Line { bytes, .. } = ev else {
                bad += 1;
                continue;
            };
            let parsed = std::str::from_utf8(bytes)
                .ok()
                .and_then(|t| serde_json::from_str::<TypedLine<'_>>(t).ok());
            match parsed {
                Some(l) => match l.response.and_then(|r| r.status_code) {
                    Some(200..=299) if l.error.is_none() => ok += 1,
                    _ => failed += 1,
                },
                None => bad += 1,
            }
        }
    });
    let speed = mb_per_s(total, start.secs());
    println!(
        "typed borrowing ceiling (decode + parse), 65536-byte chunks: {speed:.0} MB/s \
         ({ok} ok, {failed} failed, {bad} bad)"
    );
    speed
}
