//! The driver loop: execute what the job asks for, nothing more.
//!
//! Exchanges run concurrently: each `Step::Send` becomes a thread that
//! reports the response head, its body chunks and its end over a bounded
//! channel, and the loop feeds those reports to the job in arrival order.
//! The job decides how many exchanges are in flight (one per shard at most);
//! the channel's bound keeps memory flat when the job is slower than the
//! network. `batch-async` has the same loop with tasks instead of threads.
//!
//! The job also judges every exchange (deadline, stall, size) and asks for
//! it to be dropped with `Step::Abort`. A thread blocked in a read cannot be
//! interrupted, so each has a stop flag it checks between reads; ureq's
//! per-read timeout (`ClientConfig::io_timeout`) bounds the wait for the
//! read it is in. Reports of a dropped exchange are discarded.
//!
//! A job whose credential expires asks for a new one with
//! `Step::RefreshCredential`: the loop calls the client's credential source
//! (`ClientConfig::credential`) and hands the token back.

use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};

use batch_core::api::Outgoing;
use batch_core::credential::{CredentialNeed, RefreshReason};
use batch_core::job::{ExchangeId, Job, JobError, JobIo, JobSummary, Step, TransportFailure};
use batch_core::trace;

use crate::client::Client;
use crate::clock::Clock;
use crate::convert;
use crate::error::Error;

/// The largest chunk of a response body read, and sent to the loop, at once.
const CHUNK: usize = 256 * 1024;

/// Reports queued from the exchanges to the loop at most.
pub(crate) const QUEUE: usize = 16;

/// What an exchange thread (or a [`Hints`](crate::Hints) handle) reports.
pub(crate) enum Report {
    Sent(ExchangeId, u64),
    Head(ExchangeId, http::response::Parts),
    Chunk(ExchangeId, Vec<u8>),
    End(ExchangeId),
    Failed(ExchangeId, TransportFailure),
    /// A batch changed (a webhook): poll it now.
    Hint(String),
}

impl Report {
    /// The exchange reporting, or `None` for a hint.
    fn id(&self) -> Option<ExchangeId> {
        match self {
            Report::Sent(id, _)
            | Report::Head(id, _)
            | Report::Chunk(id, _)
            | Report::End(id)
            | Report::Failed(id, _) => Some(*id),
            Report::Hint(_) => None,
        }
    }
}

/// The exchanges in flight, each with its stop flag.
type Live = HashMap<ExchangeId, Arc<AtomicBool>>;

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
    let mut live = Live::new();
    let mut traced = trace::Exchanges::new(job);
    loop {
        // Feed what has arrived before asking the job what to do next.
        while let Ok(report) = rx.try_recv() {
            feed(job, clock, io, &mut live, &mut traced, report)?;
        }
        match job.poll(clock.now()) {
            Step::Send { id, request } => {
                traced.start(job, id, &request);
                let request = prepare(request, io)?;
                let agent = client.agent().clone();
                let tx = tx.clone();
                let stop = Arc::new(AtomicBool::new(false));
                live.insert(id, Arc::clone(&stop));
                std::thread::spawn(move || exchange(&agent, id, request, &tx, &stop));
            }
            Step::Abort(id) => {
                if let Some(stop) = live.remove(&id) {
                    stop.store(true, Ordering::Relaxed);
                }
                traced.dropped(id);
            }
            Step::Wait { until, .. } if !live.is_empty() || hinted => {
                match rx.recv_timeout(clock.now().until(until)) {
                    Ok(report) => feed(job, clock, io, &mut live, &mut traced, report)?,
                    Err(RecvTimeoutError::Timeout) => clock.sleep_until(until),
                    Err(RecvTimeoutError::Disconnected) => {}
                }
            }
            Step::Wait { until, .. } => clock.sleep_until(until),
            Step::Persist(cp) => io.persist(&cp)?,
            Step::Event(ev) => {
                traced.event(&ev);
                io.event(&ev)?;
            }
            Step::Result(r) => io.result(r)?,
            Step::RefreshCredential { reason } => {
                traced.credential(&reason);
                refresh(job, client, clock, &reason);
            }
            Step::Done(summary) => return Ok(summary),
            other => return Err(Error::Setup(format!("unsupported step {other:?}"))),
        }
    }
}

/// Gets a credential from the client's source (or, for a job that holds
/// none yet, the one the client's last job got) and hands it to the job;
/// a failing source stops the job with its error. Exchanges in flight wait
/// meanwhile (their reports queue up).
fn refresh(job: &mut Job, client: &Client, clock: &impl Clock, reason: &RefreshReason) {
    let cache = client.credentials();
    let answer = match cache.for_job(client.credential_source(), reason) {
        CredentialNeed::Ready(answer) => answer,
        CredentialNeed::Call(source) => source.call_blocking(),
    };
    cache.answer_job(job, answer, clock.now());
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

/// Hands one report to the job, unless its exchange was dropped; the
/// exchange leaves `live` with its last report.
fn feed(
    job: &mut Job,
    clock: &impl Clock,
    io: &mut impl JobIo,
    live: &mut Live,
    traced: &mut trace::Exchanges,
    report: Report,
) -> Result<(), Error> {
    if report.id().is_some_and(|id| !live.contains_key(&id)) {
        return Ok(());
    }
    match report {
        Report::Sent(id, n) => {
            traced.sent(id, n);
            job.handle_sent(id, n, clock.now())
                .map_err(JobError::from)?;
        }
        Report::Head(id, head) => {
            traced.head(id, &head);
            job.handle_head(id, head, clock.now())
                .map_err(JobError::from)?;
        }
        Report::Chunk(id, chunk) => {
            traced.received(id, chunk.len());
            for result in job.handle_body(id, &chunk).map_err(JobError::from)? {
                io.result(result)?;
            }
        }
        Report::End(id) => {
            live.remove(&id);
            traced.end(id);
            job.handle_end(id, clock.now()).map_err(JobError::from)?;
        }
        Report::Failed(id, failure) => {
            live.remove(&id);
            traced.failed(id, &failure);
            job.handle_failure(id, failure, clock.now())
                .map_err(JobError::from)?;
        }
        Report::Hint(batch_id) => {
            job.handle_batch_changed(&batch_id, clock.now());
        }
    }
    Ok(())
}

/// A request body that reports each piece read from it (sent), and fails
/// once its exchange is dropped, which ends the upload.
struct Sending {
    inner: Box<dyn Read + Send>,
    id: ExchangeId,
    tx: SyncSender<Report>,
    stop: Arc<AtomicBool>,
}

impl Read for Sending {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("the exchange was dropped"));
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            let _ = self.tx.send(Report::Sent(self.id, n as u64));
        }
        Ok(n)
    }
}

/// One exchange: send, then report the head, each chunk and the end (or the
/// failure). Once `stop` is set it reports nothing more and closes the
/// connection.
fn exchange(
    agent: &ureq::Agent,
    id: ExchangeId,
    request: http::Request<convert::Body>,
    tx: &SyncSender<Report>,
    stop: &Arc<AtomicBool>,
) {
    let request = request.map(|body| match body {
        convert::Body::Reader(inner) => convert::Body::Reader(Box::new(Sending {
            inner,
            id,
            tx: tx.clone(),
            stop: Arc::clone(stop),
        })),
        none @ convert::Body::None => none,
    });
    let uri = request.uri().clone();
    let response = match agent.run(request.map(convert::send_body)) {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Report::Failed(id, convert::failure_before_head(&e, &uri)));
            return;
        }
    };
    let (head, body) = response.into_parts();
    if tx.send(Report::Head(id, head)).is_err() {
        return;
    }
    let mut reader = body.into_reader();
    // Each read is sent on at once: bytes are never held while the next
    // read waits on the server, so the job's stall rule counts every byte
    // when it arrives. A read returns what the connection's buffer holds
    // (up to 128 KiB with ureq's default), so a fast download still goes
    // to the loop in large chunks.
    let mut buf = vec![0u8; CHUNK];
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
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
