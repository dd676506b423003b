//! The driver loop: execute what the job asks for, nothing more.

use batch_core::api::Outgoing;
use batch_core::job::{ExchangeId, Job, JobError, JobIo, JobSummary, Step};

use crate::client::Client;
use crate::clock::Clock;
use crate::convert;
use crate::error::Error;

/// Runs `job` to its end with `client`, waiting on `clock`, storing through `io`.
///
/// # Errors
/// Fails if `io` fails, or if the job reports a driver misuse (a bug).
pub async fn run(
    job: &mut Job,
    client: &Client,
    clock: &impl Clock,
    io: &mut impl JobIo,
) -> Result<JobSummary, Error> {
    loop {
        match job.poll(clock.now()) {
            Step::Send { id, request } => exchange(job, client, clock, id, request, io).await?,
            Step::Wait { until, .. } => clock.sleep_until(until).await,
            Step::Persist(cp) => io.persist(&cp)?,
            Step::Event(ev) => io.event(&ev)?,
            Step::Result(r) => io.result(r)?,
            Step::Done(summary) => return Ok(summary),
            other => return Err(Error::Setup(format!("unsupported step {other:?}"))),
        }
    }
}

async fn exchange(
    job: &mut Job,
    client: &Client,
    clock: &impl Clock,
    id: ExchangeId,
    request: http::Request<Outgoing>,
    io: &mut impl JobIo,
) -> Result<(), Error> {
    let (parts, body) = request.into_parts();
    let body = convert::body(body, io)?;
    let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
        .map_err(|e| Error::Setup(e.to_string()))?;
    let mut response = match client.http().execute(request).await {
        Ok(r) => r,
        Err(e) => {
            job.handle_failure(id, convert::failure_before_head(&e), clock.now())
                .map_err(JobError::from)?;
            return Ok(());
        }
    };
    job.handle_head(id, convert::head(&response), clock.now())
        .map_err(JobError::from)?;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                for result in job.handle_body(id, &chunk).map_err(JobError::from)? {
                    io.result(result)?;
                }
            }
            Ok(None) => break,
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
