//! The driver loop: execute what the job asks for, nothing more.

use std::io::{ErrorKind, Read};

use batch_core::api::Outgoing;
use batch_core::job::{ExchangeId, Job, JobError, JobIo, JobSummary, Step};

use crate::client::Client;
use crate::clock::Clock;
use crate::convert;
use crate::error::Error;

/// The size of the chunks a response body is read in.
const CHUNK: usize = 64 * 1024;

/// Runs `job` to its end with `client`, waiting on `clock`, storing through `io`.
///
/// # Errors
/// Fails if `io` fails, or if the job reports a driver misuse (a bug).
pub fn run(
    job: &mut Job,
    client: &Client,
    clock: &impl Clock,
    io: &mut impl JobIo,
) -> Result<JobSummary, Error> {
    loop {
        match job.poll(clock.now()) {
            Step::Send { id, request } => exchange(job, client, clock, id, request, io)?,
            Step::Wait { until, .. } => clock.sleep_until(until),
            Step::Persist(cp) => io.persist(&cp)?,
            Step::Event(ev) => io.event(&ev)?,
            Step::Result(r) => io.result(r)?,
            Step::Done(summary) => return Ok(summary),
            other => return Err(Error::Setup(format!("unsupported step {other:?}"))),
        }
    }
}

fn exchange(
    job: &mut Job,
    client: &Client,
    clock: &impl Clock,
    id: ExchangeId,
    request: http::Request<Outgoing>,
    io: &mut impl JobIo,
) -> Result<(), Error> {
    let sent = convert::send(client.agent(), request, |shard| io.open_shard(shard))?;
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            job.handle_failure(id, convert::failure_before_head(&e), clock.now())
                .map_err(JobError::from)?;
            return Ok(());
        }
    };
    let (head, body) = response.into_parts();
    job.handle_head(id, head, clock.now())
        .map_err(JobError::from)?;
    let mut reader = body.into_reader();
    let mut buf = vec![0u8; CHUNK];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                for result in job.handle_body(id, &buf[..n]).map_err(JobError::from)? {
                    io.result(result)?;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                job.handle_failure(id, convert::failure_in_body(&e), clock.now())
                    .map_err(JobError::from)?;
                return Ok(());
            }
        }
    }
    job.handle_end(id, clock.now()).map_err(JobError::from)?;
    Ok(())
}
