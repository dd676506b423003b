//! The client operations on a [`BatchJob`], decided once for both
//! transports: which [`Job`] each runs ([`BatchJob::begin`]) and how its end
//! is read ([`BatchJob::finish_submit`], [`finish_poll`](BatchJob::finish_poll),
//! [`finish_collect`](BatchJob::finish_collect)). A transport's part of an
//! operation is one call into its drive loop between the two.
//!
//! A job that stops before its operation is done is an `Err`
//! ([`ClientError::Ended`]): the key refused, the server unreachable past
//! the retry budget, the maximum wait passed, or (for collecting calls) a
//! batch that failed, expired or was cancelled.

use serde::{Deserialize, Serialize};

use crate::api::{BatchStatus, RequestCounts};
use crate::error::ClientError;
use crate::job::client_config::ClientSettings;
use crate::job::memory::{BatchJob, JobEndError};
use crate::job::types::{JobOutcome, JobResult, JobSummary, ShardEnd, ShardSummary, StopAfter};
use crate::job::{Job, JobError};
use crate::time::UnixMillis;

/// A client operation on a [`BatchJob`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobOp {
    /// Upload and create the batches, then return (`submit_batch`).
    Submit,
    /// Read every batch's status once (`poll_status`).
    Poll,
    /// Wait for every batch and collect every outcome (`get_results`,
    /// `stream_results`, `submit_and_wait`).
    Collect,
    /// Cancel the batches, wait for them to stop, and collect what they did
    /// (`cancel`).
    Cancel,
}

impl JobOp {
    /// Whether the operation reports outcomes.
    pub fn collects(self) -> bool {
        matches!(self, JobOp::Collect | JobOp::Cancel)
    }
}

/// The state of a whole job, derived across its shards' batches.
///
/// Like one batch's status: `validating` until every batch has passed
/// validation, `in_progress` while any runs, `finalizing` when all that run
/// are finalizing, `cancelling` while any is, then `completed` when every
/// batch completed, or the worst ending otherwise (`failed`, then
/// `expired`, then `cancelled`). A shard that could not be submitted counts
/// as failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobStatus {
    /// The job's id (stamped in every batch's metadata).
    pub job_id: String,
    /// The overall state.
    pub state: BatchStatus,
    /// When the job was created.
    pub created_at: UnixMillis,
    /// The number of requests.
    pub requests: u64,
    /// The batches' request counts, summed.
    pub counts: RequestCounts,
    /// The batches created so far, in shard order.
    pub batch_ids: Vec<String>,
    /// Each shard: its batch, status, counts and outcomes so far.
    pub shards: Vec<ShardSummary>,
}

impl JobStatus {
    /// The status of a job from its summary and creation time.
    pub fn from_summary(summary: &JobSummary, created_at: UnixMillis) -> JobStatus {
        let mut counts = RequestCounts::default();
        for c in summary.shards.iter().filter_map(|s| s.counts) {
            counts.total += c.total;
            counts.completed += c.completed;
            counts.failed += c.failed;
        }
        JobStatus {
            job_id: summary.job_id.clone(),
            state: overall_state(&summary.shards),
            created_at,
            requests: summary.requests,
            counts,
            batch_ids: summary
                .shards
                .iter()
                .filter_map(|s| s.batch_id.clone())
                .collect(),
            shards: summary.shards.clone(),
        }
    }

    /// Whether the job reached its end (every batch terminal, or never submitted).
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }
}

fn overall_state(shards: &[ShardSummary]) -> BatchStatus {
    use BatchStatus as S;
    let state = |s: &ShardSummary| match (&s.status, &s.end) {
        (Some(st), _) => st.clone(),
        (None, Some(ShardEnd::NotSubmitted)) => S::Failed,
        (None, _) => S::Validating,
    };
    let states: Vec<BatchStatus> = shards.iter().map(state).collect();
    let running: Vec<&BatchStatus> = states.iter().filter(|s| !s.is_terminal()).collect();
    if !running.is_empty() {
        return if running.iter().any(|s| **s == S::Cancelling) {
            S::Cancelling
        } else if running.iter().all(|s| **s == S::Validating) {
            S::Validating
        } else if running.iter().all(|s| **s == S::Finalizing) {
            S::Finalizing
        } else {
            S::InProgress
        };
    }
    for worst in [S::Failed, S::Expired, S::Cancelled] {
        if states.contains(&worst) {
            return worst;
        }
    }
    S::Completed
}

impl BatchJob {
    /// The [`Job`] to drive for `op`, continuing from the handle's last
    /// checkpoint. Drive it with [`io`](Self::io)`(op.collects(), ..)`, then
    /// read its end with the matching `finish_*`.
    ///
    /// # Errors
    /// Fails only if the checkpoint does not belong to this plan (a bug).
    pub fn begin(
        &self,
        op: JobOp,
        config: &ClientSettings,
        now: UnixMillis,
    ) -> Result<Job, ClientError> {
        let stop = match op {
            JobOp::Submit => StopAfter::Submitted,
            JobOp::Poll => StopAfter::Polled,
            JobOp::Collect | JobOp::Cancel => StopAfter::Finished,
        };
        let mut job = self
            .job_from(config.job_config(), stop, now)
            .map_err(JobError::from)?;
        if op == JobOp::Cancel {
            job.cancel(now);
        }
        Ok(job)
    }

    /// The end of a [`JobOp::Submit`] run: `Ok` once at least one batch
    /// exists and nothing stopped the job. Shards whose upload or create was
    /// refused for good keep their (final) outcomes for `get_results`.
    ///
    /// # Errors
    /// [`ClientError::Ended`] if the job stopped (key refused, server
    /// unreachable past the retry budget, maximum wait) or no batch could be
    /// created; its results are the final outcomes known so far.
    pub fn finish_submit(&self, summary: JobSummary) -> Result<(), ClientError> {
        if let Some(reason) = self.stop_reason(&summary) {
            return Err(self.ended(reason, false));
        }
        if summary.shards.iter().all(|s| s.batch_id.is_none()) {
            let reason = summary
                .verdict()
                .err()
                .unwrap_or_else(|| Box::new(stopped("no batch was created".into(), &summary)));
            return Err(self.ended(reason, false));
        }
        Ok(())
    }

    /// As [`finish_submit`](Self::finish_submit), for a handle the
    /// operation created (`submit_batch`): `Ok` gives the handle back, and
    /// a [`ClientError::Ended`] carries it (see
    /// [`ClientError::into_handle`]), with the batches created before the
    /// stop, so the caller can still collect or cancel them.
    ///
    /// # Errors
    /// As `finish_submit`.
    pub fn into_submitted(self, summary: JobSummary) -> Result<BatchJob, ClientError> {
        match self.finish_submit(summary) {
            Ok(()) => Ok(self),
            Err(e) => Err(self.kept_in(e)),
        }
    }

    /// As [`finish_collect`](Self::finish_collect) of a [`JobOp::Collect`]
    /// run, for a handle the operation created (`submit_and_wait`): a
    /// [`ClientError::Ended`] carries the handle (see
    /// [`ClientError::into_handle`]), so batches still running when the
    /// job stopped (the maximum wait, an outage) can be collected later.
    ///
    /// # Errors
    /// As `finish_collect`.
    pub fn into_collected(self, summary: JobSummary) -> Result<Vec<JobResult>, ClientError> {
        self.finish_collect(JobOp::Collect, summary, false)
            .map_err(|e| self.kept_in(e))
    }

    /// `e` carrying this handle, when it is a [`ClientError::Ended`].
    fn kept_in(self, e: ClientError) -> ClientError {
        match e {
            ClientError::Ended {
                reason, results, ..
            } => ClientError::Ended {
                reason,
                results,
                handle: Some(Box::new(self)),
            },
            e => e,
        }
    }

    /// The end of a [`JobOp::Poll`] run: the job's status. A batch that
    /// failed, expired or was cancelled is a status here, not an error.
    ///
    /// # Errors
    /// [`ClientError::Ended`] if the job stopped (key refused, server
    /// unreachable past the retry budget, maximum wait); its results are
    /// the final outcomes known so far.
    pub fn finish_poll(&self, summary: JobSummary) -> Result<JobStatus, ClientError> {
        if let Some(reason) = self.stop_reason(&summary) {
            return Err(self.ended(reason, false));
        }
        let created = self
            .checkpoint()
            .map_or(UnixMillis::ZERO, |cp| cp.created_at);
        Ok(JobStatus::from_summary(&summary, created))
    }

    /// The end of a [`JobOp::Collect`] or [`JobOp::Cancel`] run: every
    /// request's outcome, in input order, exactly once. With `streamed`,
    /// the outcomes went to a callback and the `Ok` and `Err` values carry
    /// none.
    ///
    /// # Errors
    /// [`ClientError::Ended`] if the job stopped, or (for `Collect`) a batch
    /// failed, expired or was cancelled; its results are the outcomes known
    /// at that point, at most one per request (provisional ones included,
    /// see [`BatchJob`]).
    pub fn finish_collect(
        &self,
        op: JobOp,
        summary: JobSummary,
        streamed: bool,
    ) -> Result<Vec<JobResult>, ClientError> {
        let reason = self.stop_reason(&summary).or_else(|| match op {
            // A cancel that ran its course is what was asked for.
            JobOp::Cancel => None,
            _ => summary.verdict().err(),
        });
        match reason {
            Some(reason) => Err(self.ended(reason, !streamed)),
            None if streamed => Ok(Vec::new()),
            None => Ok(self.outcomes().cloned().collect()),
        }
    }

    /// Why the job stopped before its stop point, if it did: a job-wide
    /// error, the maximum wait, or a shard the job gave up on.
    fn stop_reason(&self, summary: &JobSummary) -> Option<Box<JobEndError>> {
        if let Some(message) = &summary.error {
            return Some(Box::new(stopped(message.clone(), summary)));
        }
        if summary.timed_out && !summary.cancelled {
            return summary.verdict().err();
        }
        let shard = summary
            .shards
            .iter()
            .find(|s| s.end == Some(ShardEnd::Stopped))?;
        let why = self
            .outcomes()
            .filter(|r| r.shard == shard.shard)
            .find_map(|r| match &r.outcome {
                JobOutcome::NotProcessed(np) if !np.is_final() => Some(np.message.clone()),
                _ => None,
            })
            .or_else(|| shard.error.clone())
            .unwrap_or_else(|| "the job stopped waiting for it".into());
        Some(Box::new(stopped(
            format!("shard {}: {why}", shard.shard),
            summary,
        )))
    }

    fn ended(&self, reason: Box<JobEndError>, provisional: bool) -> ClientError {
        let results = self
            .outcomes()
            .filter(|r| provisional || self.shard_is_final(r.shard))
            .cloned()
            .collect();
        ClientError::Ended {
            reason,
            results,
            handle: None,
        }
    }
}

fn stopped(message: String, summary: &JobSummary) -> JobEndError {
    JobEndError::Stopped {
        message,
        summary: summary.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(status: Option<BatchStatus>, end: Option<ShardEnd>) -> ShardSummary {
        ShardSummary {
            shard: 0,
            requests: 1,
            file_id: None,
            batch_id: None,
            status,
            counts: None,
            end,
            succeeded: 0,
            failed: 0,
            not_processed: 0,
            error: None,
        }
    }

    fn state(shards: &[(Option<BatchStatus>, Option<ShardEnd>)]) -> BatchStatus {
        let shards: Vec<ShardSummary> = shards
            .iter()
            .map(|(s, e)| shard(s.clone(), e.clone()))
            .collect();
        overall_state(&shards)
    }

    #[test]
    fn the_job_state_is_derived_across_shards() {
        use BatchStatus as S;
        // Anything still running decides; a shard waiting for its batch validates.
        assert_eq!(
            state(&[(Some(S::Completed), None), (None, None)]),
            S::Validating
        );
        assert_eq!(
            state(&[(Some(S::Validating), None), (Some(S::InProgress), None)]),
            S::InProgress
        );
        assert_eq!(
            state(&[(Some(S::Finalizing), None), (Some(S::Completed), None)]),
            S::Finalizing
        );
        assert_eq!(
            state(&[(Some(S::InProgress), None), (Some(S::Cancelling), None)]),
            S::Cancelling
        );
        // All ended: completed only when every batch completed; else the worst.
        assert_eq!(
            state(&[(Some(S::Completed), None), (Some(S::Completed), None)]),
            S::Completed
        );
        assert_eq!(
            state(&[(Some(S::Cancelled), None), (Some(S::Expired), None)]),
            S::Expired
        );
        assert_eq!(
            state(&[
                (Some(S::Completed), None),
                (None, Some(ShardEnd::NotSubmitted))
            ]),
            S::Failed
        );
    }

    #[test]
    fn counts_are_summed_and_batch_ids_listed_in_shard_order() {
        let mut a = shard(Some(BatchStatus::InProgress), None);
        a.batch_id = Some("batch_a".into());
        a.counts = Some(RequestCounts {
            total: 10,
            completed: 4,
            failed: 1,
        });
        let mut b = shard(Some(BatchStatus::Completed), Some(ShardEnd::Finished));
        b.shard = 1;
        b.batch_id = Some("batch_b".into());
        b.counts = Some(RequestCounts {
            total: 5,
            completed: 5,
            failed: 0,
        });
        let summary = JobSummary {
            job_id: "job-1".into(),
            requests: 15,
            succeeded: 5,
            failed: 0,
            not_processed: 0,
            usage: crate::job::UsageTotals::default(),
            bad_lines: 0,
            shards: vec![a, b],
            timed_out: false,
            cancelled: false,
            complete: false,
            error: None,
        };
        let status = JobStatus::from_summary(&summary, UnixMillis(7));
        assert_eq!(status.state, BatchStatus::InProgress);
        assert_eq!(
            status.counts,
            RequestCounts {
                total: 15,
                completed: 9,
                failed: 1
            }
        );
        assert_eq!(status.batch_ids, ["batch_a", "batch_b"]);
        assert_eq!(status.created_at, UnixMillis(7));
        assert_eq!(status.requests, 15);
        assert!(!status.is_terminal());
    }
}
