//! Replays the checked-in fuzz corpus (tests/fuzz-corpus/<target>/) through
//! the fuzz bodies, so the targets are exercised on every test run.
#![cfg(feature = "fuzzing")]
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::path::PathBuf;

use batch_core::fuzzing;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no corpus for {target}");
    for path in paths {
        let data =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        body(&data);
    }
}

#[test]
fn result_line_corpus() {
    replay("result_line", fuzzing::result_line);
}

#[test]
fn result_stream_corpus() {
    replay("result_stream", fuzzing::result_stream);
}

#[test]
fn api_json_corpus() {
    replay("api_json", fuzzing::api_json);
}

#[test]
fn line_decoder_corpus() {
    replay("line_decoder", fuzzing::line_decoder);
}

#[test]
fn job_corpus() {
    replay("job", fuzzing::job);
}

/// Replays a reproducer from `tests/fuzz-findings/`.
fn finding(name: &str, body: fn(&[u8])) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-findings")
        .join(name);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    body(&data);
}

/// Found by the `job` target: a download resumed from an offset (here
/// byte 1801, left by a cut-off body) is answered with a whole file shorter
/// than that offset, as a server that ignores `Range` sends it. The answer
/// is a 2xx, so it resets the shard's attempt count; it is also incomplete
/// (fewer bytes than the offset to skip), so the download is retried, and
/// the job asked for the same range about once a second forever. Now a
/// download attempt that adds no complete line counts as a failed attempt,
/// under the same cap as any other, so the job ends.
#[test]
fn finding_download_past_end_terminates() {
    finding("job_download_past_end", fuzzing::job_ignoring_range);
}

/// Found against the `checkpoint` body: a checkpoint whose shard has
/// `create_attempt` 4294967295 and no batch makes the resumed job overflow
/// when it arms the next create (a panic with overflow checks, attempt 0 in
/// the batch metadata without). The attempt number now saturates.
#[test]
fn finding_create_attempt_max_resumes() {
    finding("checkpoint_create_attempt_max", fuzzing::checkpoint);
}

/// Found against the `checkpoint` body: two finished shards whose saved
/// tallies sum past `u64::MAX` make `Job::summary` overflow (a panic with
/// overflow checks, wrong counts without). `Job::resume` now refuses a
/// finished shard whose tally is more than its requests, and token sums
/// saturate.
#[test]
fn finding_tally_sum_overflow_resumes() {
    finding("checkpoint_tally_sum_overflow", fuzzing::checkpoint);
}

#[test]
fn checkpoint_corpus() {
    replay("checkpoint", fuzzing::checkpoint);
}

#[test]
fn plan_corpus() {
    replay("plan", fuzzing::plan);
}

#[test]
fn fixtures_through_every_body() {
    // The realistic fixtures, as single lines and as streams with a few
    // different caps and cut points.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for entry in std::fs::read_dir(&dir).expect("fixtures") {
        let file = std::fs::read(entry.expect("entry").path()).expect("fixture");
        for line in file.split(|&b| b == b'\n') {
            fuzzing::result_line(line);
        }
        for header in [
            &[255u8, 3, 1, 0, 200, 0, 201, 0][..],
            &[61, 1, 77, 1],
            &[0, 0],
            &[33, 2, 5, 0, 9, 0],
        ] {
            let data = [header, &file[..]].concat();
            fuzzing::result_stream(&data);
            fuzzing::line_decoder(&data);
        }
    }
}
