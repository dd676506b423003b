//! The driver loop: execute what the job asks for, nothing more.
//!
//! Exchanges run concurrently: each `Step::Send` becomes a task that reports
//! the response head, its body chunks and its end over a bounded channel,
//! and the loop feeds those reports to the job in arrival order. The job
//! decides how many exchanges are in flight (one per shard at most); the
//! channel's bound keeps memory flat when the job is slower than the network.
//!
//! The job also judges every exchange (deadline, stall, size) and asks for
//! it to be dropped with `Step::Abort`: its task is aborted, which closes
//! the connection. Reports of a dropped exchange are discarded.
//!
//! A job whose credential expires asks for a new one with
//! `Step::RefreshCredential`: the loop calls the client's credential source
//! (`ClientConfig::credential`; a blocking one on tokio's blocking pool)
//! and hands the token back.

use std::collections::HashMap;

use batch_core::api::Outgoing;
use batch_core::credential::{CredentialNeed, RefreshReason};
use batch_core::job::{ExchangeId, Job, JobError, JobIo, JobSummary, Step, TransportFailure};
use batch_core::trace;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use crate::client::Client;
use crate::clock::Clock;
use crate::convert;
use crate::error::Error;

/// Reports queued from the exchanges to the loop at most.
pub(crate) const QUEUE: usize = 16;

/// What an exchange task (or a [`Hints`](crate::Hints) handle) reports.
pub(crate) enum Report {
    Sent(ExchangeId, u64),
    Head(ExchangeId, http::response::Parts),
    Chunk(ExchangeId, Bytes),
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

/// The exchanges in flight, each with the handle that aborts its task.
type Live = HashMap<ExchangeId, AbortHandle>;

/// Runs `job` to its end with `client`, waiting on `clock`, storing through `io`.
///
/// # Errors
/// Fails if `io` fails, or if the job reports a driver misuse (a bug).
/// Exchanges still in flight when it fails are aborted.
pub async fn run(
    job: &mut Job,
    client: &Client,
    clock: &impl Clock,
    io: &mut impl JobIo,
) -> Result<JobSummary, Error> {
    let (tx, rx) = mpsc::channel::<Report>(QUEUE);
    drive(job, client, clock, io, tx, rx, false).await
}

/// The loop of [`run`] and [`run_with_hints`](crate::run_with_hints). With
/// `hinted`, it waits on the channel even when no exchange is in flight, so
/// a hint wakes it.
pub(crate) async fn drive(
    job: &mut Job,
    client: &Client,
    clock: &impl Clock,
    io: &mut impl JobIo,
    tx: mpsc::Sender<Report>,
    mut rx: mpsc::Receiver<Report>,
    hinted: bool,
) -> Result<JobSummary, Error> {
    let mut tasks = JoinSet::new();
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
                let request = prepare(request, io, id, &tx)?;
                let http = client.http().clone();
                let tx = tx.clone();
                live.insert(id, tasks.spawn(exchange(http, id, request, tx)));
            }
            Step::Abort(id) => {
                if let Some(task) = live.remove(&id) {
                    task.abort();
                }
                traced.dropped(id);
            }
            Step::Wait { until, .. } if !live.is_empty() || hinted => {
                tokio::select! {
                    biased;
                    report = rx.recv() => {
                        if let Some(report) = report {
                            feed(job, clock, io, &mut live, &mut traced, report)?;
                        }
                    }
                    () = clock.sleep_until(until) => {}
                }
            }
            Step::Wait { until, .. } => clock.sleep_until(until).await,
            Step::Persist(cp) => io.persist(&cp)?,
            Step::Event(ev) => {
                traced.event(&ev);
                io.event(&ev)?;
            }
            Step::Result(r) => io.result(r)?,
            Step::RefreshCredential { reason } => {
                traced.credential(&reason);
                refresh(job, client, clock, &reason).await;
            }
            Step::Done(summary) => return Ok(summary),
            other => return Err(Error::Setup(format!("unsupported step {other:?}"))),
        }
    }
}

/// Gets a credential from the client's source (or, for a job that holds
/// none yet, the one the client's last job got) and hands it to the job;
/// a failing source stops the job with its error. Exchanges in flight go
/// on meanwhile; their reports queue up.
async fn refresh(job: &mut Job, client: &Client, clock: &impl Clock, reason: &RefreshReason) {
    let cache = client.credentials();
    let answer = match cache.for_job(client.credential_source(), reason) {
        CredentialNeed::Ready(answer) => answer,
        CredentialNeed::Call(source) => crate::client::fetch_credential(source).await,
    };
    cache.answer_job(job, answer, clock.now());
}

/// The native request, with the body resolved through `io`.
///
/// Each chunk of a streamed body is reported sent; a report that finds the
/// queue full is dropped (the job then counts a little less progress).
fn prepare(
    request: http::Request<Outgoing>,
    io: &mut impl JobIo,
    id: ExchangeId,
    tx: &mpsc::Sender<Report>,
) -> Result<reqwest::Request, Error> {
    let (parts, body) = request.into_parts();
    let tx = tx.clone();
    let body = convert::body(body, io, move |n| {
        let _ = tx.try_send(Report::Sent(id, n));
    })?;
    reqwest::Request::try_from(http::Request::from_parts(parts, body))
        .map_err(|e| Error::Setup(e.to_string()))
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

/// One exchange: send, then report the head, each chunk and the end (or the failure).
async fn exchange(
    http: reqwest::Client,
    id: ExchangeId,
    request: reqwest::Request,
    tx: mpsc::Sender<Report>,
) {
    let mut response = match http.execute(request).await {
        Ok(r) => r,
        Err(e) => {
            let _ = tx
                .send(Report::Failed(id, convert::failure_before_head(&e)))
                .await;
            return;
        }
    };
    if tx
        .send(Report::Head(id, convert::head(&response)))
        .await
        .is_err()
    {
        return;
    }
    loop {
        let report = match response.chunk().await {
            Ok(Some(chunk)) => Report::Chunk(id, chunk),
            Ok(None) => Report::End(id),
            Err(e) => Report::Failed(id, convert::failure_in_body(&e)),
        };
        let last = !matches!(report, Report::Chunk(..));
        if tx.send(report).await.is_err() || last {
            return;
        }
    }
}
