//! A [`Job`] driven by hand: the whole driver contract in one small,
//! blocking loop, one exchange at a time, with `ureq` for HTTP, the system
//! clock for time, and a [`JobIo`] that keeps everything in memory.
//!
//! The transports (`batch-blocking`, `batch-async`) run this same loop with
//! exchanges in flight concurrently; read this one first. The rules it
//! follows are listed on [`Job`] and in the crate docs of `batch-core`.
//!
//! It runs on its own: the emulator of the Files and Batches API starts
//! in-process, and its requests are split in two shards so the loop runs
//! two batches.
//!
//! ```sh
//! cargo run -p batch-core --example drive_by_hand
//! ```
//!
//! Its test (`cargo test -p batch-core --example drive_by_hand`) runs the
//! same loop and checks every outcome and the calls the server saw.
// A driver reads the clock and sleeps; the core itself never does.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stdout
)]

use std::io::Read;
use std::time::{Duration, SystemTime};

use batch_core::UnixMillis;
use batch_core::api::{ApiBase, ApiConfig, Outgoing, ShardRef};
use batch_core::http;
use batch_core::input::{Item, SystemPrompt};
use batch_core::job::{
    BatchJob, BatchOptions, Checkpoint, ExchangeId, FailureKind, Job, JobEvent, JobIo, JobResult,
    JobSummary, ShardLimits, Step, StopAfter, TransportFailure,
};
use batch_emulator::{Counters, Emulator};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The clock a driver reads: wall-clock milliseconds.
fn now() -> UnixMillis {
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    UnixMillis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
}

/// Where the job's output goes: checkpoints, results and events, in memory.
/// A real program writes results and checkpoints to disk (results first).
struct Memory {
    shards: Vec<Vec<u8>>,
    checkpoints: usize,
    results: Vec<JobResult>,
    events: Vec<JobEvent>,
}

impl JobIo for Memory {
    fn persist(&mut self, _checkpoint: &Checkpoint) -> std::io::Result<()> {
        self.checkpoints += 1;
        Ok(())
    }

    fn result(&mut self, result: JobResult) -> std::io::Result<()> {
        self.results.push(result);
        Ok(())
    }

    fn event(&mut self, event: &JobEvent) -> std::io::Result<()> {
        self.events.push(event.clone());
        Ok(())
    }

    fn open_shard(&mut self, shard: &ShardRef) -> std::io::Result<Box<dyn Read + Send>> {
        let bytes = self.shards[shard.index as usize].clone();
        Ok(Box::new(std::io::Cursor::new(bytes)))
    }
}

/// The loop: ask the job, do what it says, tell it what happened.
fn drive(job: &mut Job, io: &mut Memory, agent: &ureq::Agent) -> Result<JobSummary, BoxError> {
    loop {
        match job.poll(now()) {
            Step::Send { id, request } => exchange(job, io, agent, id, request)?,
            Step::Wait { until, .. } => {
                // Nothing is in flight while we wait, so sleeping is all there is.
                std::thread::sleep(now().until(until));
            }
            Step::Persist(checkpoint) => io.persist(&checkpoint)?,
            Step::Event(event) => io.event(&event)?,
            Step::Result(result) => io.result(result)?,
            Step::Done(summary) => return Ok(summary),
            // One exchange at a time: none is in flight when the job could
            // ask to abort it. A concurrent driver stops exchange `id` here.
            Step::Abort(_) => {}
            other => return Err(format!("a step this driver does not know: {other:?}").into()),
        }
    }
}

/// One exchange: send, then report the head, each chunk and the end, or
/// the failure.
fn exchange(
    job: &mut Job,
    io: &mut Memory,
    agent: &ureq::Agent,
    id: ExchangeId,
    request: http::Request<Outgoing>,
) -> Result<(), BoxError> {
    let (parts, body) = request.into_parts();
    // The core describes the body; a shard upload streams the shard's bytes
    // between the multipart head and tail.
    let body = match body {
        Outgoing::Empty => ureq::SendBody::none(),
        Outgoing::Json(bytes) | Outgoing::Bytes(bytes) => {
            ureq::SendBody::from_owned_reader(std::io::Cursor::new(bytes))
        }
        Outgoing::Multipart {
            head, shard, tail, ..
        } => ureq::SendBody::from_owned_reader(
            std::io::Cursor::new(head)
                .chain(io.open_shard(&shard)?)
                .chain(std::io::Cursor::new(tail)),
        ),
        other => return Err(format!("a body this driver does not know: {other:?}").into()),
    };
    let response = match agent.run(http::Request::from_parts(parts, body)) {
        Ok(response) => response,
        Err(e) => {
            // Unsure whether the server saw it? Say so: the job looks for
            // the upload or batch before it would make it again.
            let failure = TransportFailure::new(FailureKind::OutcomeUnknown, e.to_string());
            job.handle_failure(id, failure, now())?;
            return Ok(());
        }
    };
    let (head, body) = response.into_parts();
    job.handle_head(id, head, now())?;
    let mut reader = body.into_reader();
    let mut chunk = vec![0; 64 * 1024];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(job.handle_end(id, now())?),
            Ok(n) => {
                // The drain rule: every result decoded from this chunk goes
                // out before the next chunk comes in.
                for result in job.handle_body(id, &chunk[..n])? {
                    io.result(result)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                job.handle_failure(id, TransportFailure::in_body(e.to_string()), now())?;
                return Ok(());
            }
        }
    }
}

/// Runs a five-request job, in two shards, against the server at
/// `base_url`; returns its summary and what the driver collected.
fn run(base_url: &str) -> Result<(JobSummary, Memory), BoxError> {
    let items: Vec<Item> = (1..=5)
        .map(|i| Item::new(format!("q{i}"), format!("What is {i} + {i}?")))
        .collect();
    let prompt = SystemPrompt::Text("Answer with a number.".into());
    let opts = BatchOptions::new("gpt-4o-mini")
        .poll_interval(Duration::from_millis(100))
        .limits(ShardLimits::new(3, 1 << 20));
    // The handle plans the shards and encodes their files.
    let handle = BatchJob::from_items(&items, &prompt, &opts, 42)?;
    let api = ApiBase::new(&ApiConfig::new("sk-emulator").with_base_url(base_url))?;
    let mut job = handle.job(api, StopAfter::Finished, now())?;
    let mut io = Memory {
        shards: handle.shard_bytes().to_vec(),
        checkpoints: 0,
        results: Vec::new(),
        events: Vec::new(),
    };
    // The job reads statuses itself: ureq must hand every answer back as
    // it came, and leave retries and redirects to the job.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let summary = drive(&mut job, &mut io, &agent)?;
    io.results.sort_by_key(|r| r.index);
    Ok((summary, io))
}

/// Starts the emulator, runs the job, and returns what it produced and the
/// calls the server counted.
fn demo() -> Result<(JobSummary, Memory, Counters), BoxError> {
    // 5000 virtual seconds per real second: a batch ends in well under a second.
    let emulator = Emulator::builder().speed(5000.0).start_blocking()?;
    let (summary, io) = run(&emulator.base_url())?;
    Ok((summary, io, emulator.counters()))
}

fn main() -> Result<(), BoxError> {
    let (summary, io, counters) = demo()?;
    for r in &io.results {
        match r.content() {
            Some(text) => println!(
                "{} (shard {}, {}): {text}",
                r.custom_id(),
                r.shard,
                r.batch_id.as_deref().unwrap_or("-"),
            ),
            None => println!("{}: {:?}", r.custom_id(), r.status()),
        }
    }
    println!(
        "{} succeeded of {}; {} checkpoints, {} events; server: {} uploads, {} batches, {} status polls",
        summary.succeeded,
        summary.requests,
        io.checkpoints,
        io.events.len(),
        counters.files_uploaded,
        counters.batches_created,
        counters.requests_on("batches.get"),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_driven_job_collects_every_outcome_from_two_batches() {
        let (summary, io, counters) = demo().expect("the job runs");
        assert!(summary.all_succeeded(), "{summary:?}");
        assert_eq!(summary.requests, 5);
        let ids: Vec<&str> = io.results.iter().map(|r| r.custom_id.as_str()).collect();
        assert_eq!(ids, ["q1", "q2", "q3", "q4", "q5"], "each request once");
        for (i, r) in io.results.iter().enumerate() {
            assert_eq!(r.shard, u32::from(i >= 3), "{}", r.custom_id);
            assert!(r.is_success(), "{}: {:?}", r.custom_id, r.error());
            let n = i + 1;
            assert_eq!(
                r.content(),
                Some(format!("Echo: What is {n} + {n}?").as_str())
            );
        }
        let batches: std::collections::BTreeSet<_> =
            io.results.iter().map(|r| r.batch_id.clone()).collect();
        assert_eq!(batches.len(), 2, "two batches: {batches:?}");
        assert!(io.checkpoints > 0, "the job asked to persist");
        assert_eq!(counters.files_uploaded, 2);
        assert_eq!(counters.batches_created, 2);
    }
}
