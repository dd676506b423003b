//! The driver loop: execute what the job asks for, nothing more.
//!
//! Exchanges run concurrently: each `Step::Send` becomes a thread that
//! reports the response head, its body chunks and its end over a bounded
//! channel, and the loop feeds those reports to the job in arrival order.
//! The job decides how many exchanges are in flight (one per shard at most);
//! the channel's bound keeps memory flat when the job is slower than the
//! network. `batch-async` has the same loop with tasks instead of threads.

use std::io::{ErrorKind, Read};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};

use batch_core::api::Outgoing;
use batch_core::job::{ExchangeId, Job, JobError, JobIo, JobSummary, Step, TransportFailure};

use crate::client::Client;
use crate::clock::Clock;
use crate::convert;
use crate::error::Error;

/// The size of the chunks a response body is read in.
const CHUNK: usize = 64 * 1024;

/// Reports queued from the exchanges to the loop at most.
pub(crate) const QUEUE: usize = 16;

/// What an exchange thread (or a [`Hints`](crate::Hints) handle) reports.
pub(crate) enum Report {
    Head(ExchangeId, http::response::Parts),
    Chunk(ExchangeId, Vec<u8>),
    End(ExchangeId),
    Failed(ExchangeId, TransportFailure),
    /// A batch changed (a webhook): poll it now.
    Hint(String),
}

/// Runs `job` to its end with `client`, waiting on `clock`, storing through `io`.
///
/// # Errors
/// Fails if `io` fails, or if the job reports a driver misuse (a bug).
/// Exchanges still in flight when it fails stop at their next report.
pub fn run(
    job: &mut Job,
    client: &Client,
    clock: &impl Clock,
    io: &mut impl JobIo,
) -> Result<JobSummary, Error> {
    let (tx, rx) = mpsc::sync_channel::<Report>(QUEUE);
    drive(job, client, clock, io, tx, rx, false)
}

/// The loop of [`run`] and [`run_with_hints`](crate::run_with_hints). With
/// `hinted`, it waits on the channel even when no exchange is in flight, so
/// a hint wakes it.
pub(crate) fn drive(
    job: &mut Job,
    client: &Client,
    clock: &impl Clock,
    io: &mut impl JobIo,
    tx: SyncSender<Report>,
    rx: Receiver<Report>,
    hinted: bool,
) -> Result<JobSummary, Error> {
    let mut in_flight = 0usize;
    loop {
        // Feed what has arrived before asking the job what to do next.
        while let Ok(report) = rx.try_recv() {
            in_flight -= feed(job, clock, io, report)?;
        }
        match job.poll(clock.now()) {
            Step::Send { id, request } => {
                let request = prepare(request, io)?;
                let agent = client.agent().clone();
                let tx = tx.clone();
                in_flight += 1;
                std::thread::spawn(move || exchange(&agent, id, request, &tx));
            }
            Step::Wait { until, .. } if in_flight > 0 || hinted => {
                match rx.recv_timeout(clock.now().until(until)) {
                    Ok(report) => in_flight -= feed(job, clock, io, report)?,
                    Err(RecvTimeoutError::Timeout) => clock.sleep_until(until),
                    Err(RecvTimeoutError::Disconnected) => {}
                }
            }
            Step::Wait { until, .. } => clock.sleep_until(until),
            Step::Persist(cp) => io.persist(&cp)?,
            Step::Event(ev) => io.event(&ev)?,
            Step::Result(r) => io.result(r)?,
            Step::Done(summary) => return Ok(summary),
            other => return Err(Error::Setup(format!("unsupported step {other:?}"))),
        }
    }
}

/// The native request, with the body resolved through `io`.
fn prepare(
    request: http::Request<Outgoing>,
    io: &mut impl JobIo,
) -> Result<http::Request<convert::Body>, Error> {
    let (parts, body) = request.into_parts();
    Ok(http::Request::from_parts(
        parts,
        convert::body(body, |shard| io.open_shard(shard))?,
    ))
}

/// Hands one report to the job. Returns 1 when the exchange is over.
fn feed(
    job: &mut Job,
    clock: &impl Clock,
    io: &mut impl JobIo,
    report: Report,
) -> Result<usize, Error> {
    match report {
        Report::Head(id, head) => job
            .handle_head(id, head, clock.now())
            .map_err(JobError::from)?,
        Report::Chunk(id, chunk) => {
            for result in job.handle_body(id, &chunk).map_err(JobError::from)? {
                io.result(result)?;
            }
        }
        Report::End(id) => {
            job.handle_end(id, clock.now()).map_err(JobError::from)?;
            return Ok(1);
        }
        Report::Failed(id, failure) => {
            job.handle_failure(id, failure, clock.now())
                .map_err(JobError::from)?;
            return Ok(1);
        }
        Report::Hint(batch_id) => {
            job.handle_batch_changed(&batch_id, clock.now());
        }
    }
    Ok(0)
}

/// One exchange: send, then report the head, each chunk and the end (or the failure).
fn exchange(
    agent: &ureq::Agent,
    id: ExchangeId,
    request: http::Request<convert::Body>,
    tx: &SyncSender<Report>,
) {
    let response = match agent.run(request.map(convert::send_body)) {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Report::Failed(id, convert::failure_before_head(&e)));
            return;
        }
    };
    let (head, body) = response.into_parts();
    if tx.send(Report::Head(id, head)).is_err() {
        return;
    }
    let mut reader = body.into_reader();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let report = match reader.read(&mut buf) {
            Ok(0) => Report::End(id),
            Ok(n) => Report::Chunk(id, buf[..n].to_vec()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => Report::Failed(id, convert::failure_in_body(&e)),
        };
        let last = !matches!(report, Report::Chunk(..));
        if tx.send(report).is_err() || last {
            return;
        }
    }
}
