//! Fuzz bodies (feature "fuzzing").
//!
//! Each function takes arbitrary bytes and must return normally: a parse
//! failure is fine, a panic is a bug. Besides "no panic", the bodies assert
//! the invariants that hold for any input (the same events however the input
//! is chunked, a tail buffer within its cap), so a fuzzer also finds logic
//! errors. The cargo-fuzz targets are one-line shims into these functions,
//! and `cargo test --features fuzzing` replays the checked-in corpus under
//! `tests/fuzz-corpus/<target>/` through them, so they cannot rot.
//!
//! [`job`] drives a whole [`Job`] against a server the input controls (see
//! the `driver` module's rules); [`checkpoint`] resumes a job from arbitrary
//! checkpoint JSON; [`plan`] builds plans from arbitrary request lines.

mod driver;
mod input;

use crate::Endpoint;
use crate::input::BatchRequest;
use crate::job::{
    CHECKPOINT_VERSION, Checkpoint, Job, JobConfig, JobPlan, PlanBuilder, PlanDigest, ResumeError,
    ShardLimits,
};
use crate::jsonl::{DecoderConfig, LineDecoder, LineEvent};
use crate::results::{ResultEvent, ResultStream, parse_result_line, salvage_custom_id};
use crate::time::UnixMillis;
use driver::{Setup, World, api_base, small_plan};
use input::Input;

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

/// A [`Job`] against a fuzzed server, with crashes and resumes.
///
/// The first bytes shape the job (1 to 12 requests, 1 to 4 to a shard, up
/// to 3 shards in flight, poll interval, retry and requeue limits, a maximum
/// wait, small body and line caps); the rest is a script of driver actions:
/// report the next event of an open exchange, poll the job, crash, cancel,
/// or move the clock. Each request the job sends is answered as the input
/// says: a transport failure of any kind, or any status (2xx with garbage,
/// 3xx, 4xx, 5xx, odd codes) with `Retry-After`, `retry-after-ms`, `ETag`,
/// `Content-Range` and `Content-Length` headers, a body that is empty,
/// garbage, an error envelope or plausible JSON for that request (a batch
/// with a random status, a file, a listing, a result file with random
/// lines), cut into chunks and maybe cut off. When the input runs out, a
/// well-behaved server drives the job to its end.
///
/// Asserted inside: every request has exactly one outcome at `Done`, the
/// summary counts them, no outcome is delivered twice in one run, effects
/// are written ahead, no upload or create is repeated while the first's
/// outcome is unknown without a listing read in between, checkpoints
/// survive JSON, and the job terminates.
pub fn job(data: &[u8]) {
    run_job(data, false);
}

/// [`job`], with a well-behaved server that ignores `Range` and always
/// sends the whole result file (HTTP lets a server do so).
///
/// Not a cargo-fuzz target yet: a download resumed from an offset past the
/// end of the whole file that then arrives never completes, and the job
/// retries it about once a second forever (the attempt count is reset by
/// every 2xx answer). `tests/fuzz_corpus.rs` keeps the reproducer as an
/// ignored test until the job bounds such downloads.
pub fn job_ignoring_range(data: &[u8]) {
    run_job(data, true);
}

fn run_job(data: &[u8], ignore_range: bool) {
    let mut input = Input::new(data);
    let mut setup = Setup::read(&mut input);
    setup.ignore_range = ignore_range;
    let mut world = World::new(setup);
    world.fuzz(&mut input);
    world.settle();
}

/// Arbitrary checkpoint JSON resumed with a small plan.
///
/// Layout: byte 0 shapes the plan (bits 0-2: 1 to 8 requests; bits 3-4: 1
/// to 4 to a shard) and, with bit 7 set, makes the checkpoint match it
/// (version, job id, plan digest, shard count) so that the fuzzer reaches
/// past the identity checks; the rest is the checkpoint JSON the CLI would
/// store in its journal's `round-0.job.json`. Whatever parses must survive a
/// JSON round trip;
/// [`Job::resume`] must refuse exactly the checkpoints of another version
/// or plan; a resumed job must run to its end against a well-behaved
/// server, giving every request of an unfinished shard exactly one outcome.
pub fn checkpoint(data: &[u8]) {
    let flags = data.first().copied().unwrap_or(0);
    let json = data.get(1..).unwrap_or_default();
    let Ok(mut cp) = serde_json::from_slice::<Checkpoint>(json) else {
        return;
    };
    let again = serde_json::to_vec(&cp).expect("a checkpoint serializes");
    let back: Checkpoint = serde_json::from_slice(&again).expect("what we write parses back");
    assert_eq!(back, cp, "a checkpoint changed in a JSON round trip");

    let plan = small_plan(
        1 + u64::from(flags & 7),
        1 + u64::from((flags >> 3) & 3),
        flags,
    );
    let mut cfg = JobConfig::new(api_base());
    cfg.retry.max_attempts = 4;
    let now = UnixMillis(1_700_000_000_000);
    if flags & 0x80 != 0 {
        let fresh = Job::new(cfg.clone(), plan.clone(), now).checkpoint();
        cp.version = CHECKPOINT_VERSION;
        cp.job_id = fresh.job_id;
        cp.plan = fresh.plan;
        cp.shards.truncate(fresh.shards.len());
        let have = cp.shards.len();
        cp.shards.extend(fresh.shards.into_iter().skip(have));
    }
    let matches = cp.version == CHECKPOINT_VERSION
        && cp.job_id == plan.job_id()
        && cp.plan == plan.digest()
        && cp.shards.len() == plan.shards().len();
    match Job::resume(cfg.clone(), plan.clone(), cp.clone(), now) {
        Err(ResumeError::Version { found, .. }) => assert_ne!(found, CHECKPOINT_VERSION),
        Err(ResumeError::PlanMismatch { .. }) => {
            assert!(!matches, "a checkpoint of this very plan was refused");
        }
        Err(ResumeError::Damaged {
            shard,
            counted,
            requests,
            ..
        }) => {
            assert!(matches, "a damaged checkpoint of another plan");
            assert!(
                counted > requests,
                "shard {shard} refused with fitting counts"
            );
        }
        Ok(job) => {
            assert!(
                matches,
                "a checkpoint of another version or plan was resumed"
            );
            let mut world = World::with_job(plan, cfg, job, now, Some(cp));
            world.settle();
        }
    }
}

/// A plan built from arbitrary request lines, as the CLI builds it from a
/// user's input file.
///
/// A job's plan is never stored: the CLI keeps only its [`PlanDigest`] (in
/// the journal's `round-0.job.json`) and rebuilds the plan from the shard
/// files on every run, so this target fuzzes the builder rather than a decoder. Layout:
/// byte 0 picks the requests per shard (1 to 8), bytes 1-2 the bytes per
/// shard (64 to 4,159), byte 3 the endpoint; the rest is the input file.
///
/// Asserted: each accepted request is placed at the next index, in the
/// current shard or a new one, and encoded into one line that parses back
/// to the same `custom_id`; a finished plan holds exactly the accepted ids,
/// finds each by its id, and has contiguous shards within the limits whose
/// byte counts are their lines'; `finish` fails only for no requests or a
/// repeated id; the digest is deterministic, survives JSON, and differs
/// exactly when the shard boundaries do; and a job's checkpoint resumes
/// with the plan it was made for, not with a differently sharded one.
pub fn plan(data: &[u8]) {
    let mut input = Input::new(data);
    let max_requests = 1 + input.below(8);
    let max_bytes = 64 + u64::from(input.u16()) % 4096;
    let endpoint = match input.byte() % 4 {
        0 => Endpoint::ChatCompletions,
        1 => Endpoint::Embeddings,
        2 => Endpoint::Responses,
        _ => Endpoint::parse("/v1/custom"),
    };
    let file = input.rest();
    let limits = ShardLimits::new(max_requests, max_bytes);
    let (built, ids) = build_plan(file, &endpoint, &limits);
    let Ok(plan) = built else {
        let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert!(
            ids.is_empty() || unique.len() < ids.len(),
            "a plan of unique ids was refused"
        );
        return;
    };
    assert_eq!(plan.len(), ids.len() as u64);
    for (i, id) in (0u64..).zip(&ids) {
        assert_eq!(plan.custom_id(i), id);
        assert_eq!(plan.index_of(id), Some(i), "an id not found by itself");
    }
    assert_eq!(plan.index_of("\u{0}not-an-id"), None);
    let mut next = 0;
    for (k, s) in plan.shards().iter().enumerate() {
        assert_eq!(s.index as usize, k);
        assert_eq!(s.start, next, "shards are not contiguous");
        assert!(s.requests >= 1 && s.requests <= max_requests, "{s:?}");
        assert!(s.bytes <= max_bytes, "{s:?} over {max_bytes} bytes");
        next += s.requests;
    }
    assert_eq!(next, plan.len());

    let digest = plan.digest();
    let (again, _) = build_plan(file, &endpoint, &limits);
    assert_eq!(again.map(|p| p.digest()).ok(), Some(digest.clone()));
    let text = serde_json::to_string(&digest).expect("a digest serializes");
    let back: PlanDigest = serde_json::from_str(&text).expect("a digest parses back");
    assert_eq!(back, digest);

    // The same lines with one more request to a shard.
    let other_limits = ShardLimits::new(max_requests + 1, max_bytes);
    if let (Ok(other), _) = build_plan(file, &endpoint, &other_limits) {
        assert_eq!(
            other.digest() == digest,
            other.shards() == plan.shards(),
            "the digest does not follow the shard boundaries"
        );
        let cfg = JobConfig::new(api_base());
        let now = UnixMillis(1_700_000_000_000);
        let cp = Job::new(cfg.clone(), plan.clone(), now).checkpoint();
        assert!(Job::resume(cfg.clone(), plan.clone(), cp.clone(), now).is_ok());
        let resumed = Job::resume(cfg, other.clone(), cp, now);
        assert_eq!(resumed.is_ok(), other.shards() == plan.shards());
    }
}

/// Builds a plan from `file` as the CLI does (blank lines skipped, bad
/// lines left out), checking every placement; returns the plan and the ids
/// accepted, in order.
fn build_plan(
    file: &[u8],
    endpoint: &Endpoint,
    limits: &ShardLimits,
) -> (Result<JobPlan, crate::InputError>, Vec<String>) {
    let mut builder = PlanBuilder::new("job-fuzz", endpoint.clone(), limits.clone(), "fuzz");
    let mut ids: Vec<String> = Vec::new();
    let mut shard_bytes = Vec::new();
    let mut out = Vec::new();
    for (line_no, line) in (1u64..).zip(file.split(|&b| b == b'\n')) {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(req) = BatchRequest::parse_line("fuzz", line_no, line) else {
            continue;
        };
        let Ok(placed) = builder.push(line_no, &req, &mut out) else {
            continue;
        };
        assert_eq!(
            placed.index,
            ids.len() as u64,
            "a request placed out of order"
        );
        if placed.new_shard {
            shard_bytes.push(0u64);
        }
        assert_eq!(
            placed.shard as usize + 1,
            shard_bytes.len(),
            "a request placed outside the current shard"
        );
        assert_eq!(
            out.last(),
            Some(&b'\n'),
            "an encoded line without its newline"
        );
        let encoded = BatchRequest::parse_line("encoded", 1, &out).expect("an encoded line parses");
        assert_eq!(encoded.custom_id, req.custom_id);
        if let Some(b) = shard_bytes.last_mut() {
            *b += out.len() as u64;
        }
        ids.push(req.custom_id);
    }
    let built = builder.finish();
    if let Ok(plan) = &built {
        let planned: Vec<u64> = plan.shards().iter().map(|s| s.bytes).collect();
        assert_eq!(
            planned, shard_bytes,
            "shard sizes are not their lines' sizes"
        );
    }
    (built, ids)
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
            job(data);
            checkpoint(data);
            plan(data);
        }
    }
}
