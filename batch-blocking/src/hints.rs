//! Hints from outside the driver loop: "batch X changed, poll it now".
//!
//! A webhook handler (see `batch_core::webhook`) runs on another thread than
//! the loop that drives a job. [`hints`] makes a pair: the [`Hints`] handle,
//! cloneable and `Send`, for the handler, and the [`HintInbox`] for
//! [`run_with_hints`]. Each hint goes down the same channel as the
//! exchanges' reports, so the loop wakes for it even while it waits for the
//! next poll, and hands it to
//! [`Job::handle_batch_changed`](batch_core::job::Job::handle_batch_changed).
//! `batch-async` has the same module.

use std::sync::mpsc::{self, Receiver, SyncSender};

use batch_core::job::{Job, JobIo, JobSummary};

use crate::client::Client;
use crate::clock::Clock;
use crate::error::Error;
use crate::run::{self, QUEUE, Report};

/// A new hint channel: the handle for whoever hears about batches, and the
/// inbox for [`run_with_hints`].
pub fn hints() -> (Hints, HintInbox) {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    (Hints { tx: tx.clone() }, HintInbox { tx, rx })
}

/// Tells a running job that a batch changed. Clone it freely; hand it to
/// web handlers on other threads.
#[derive(Clone, Debug)]
pub struct Hints {
    tx: SyncSender<Report>,
}

impl Hints {
    /// Says that batch `batch_id` changed (a verified webhook's
    /// [`batch_id`](batch_core::webhook::WebhookEvent::batch_id)); the job
    /// polls it at once if it is one of its batches. Blocks only while the
    /// loop's queue is full.
    ///
    /// # Errors
    /// Fails with [`JobEnded`] once the run the inbox went to has returned.
    pub fn batch_changed(&self, batch_id: impl Into<String>) -> Result<(), JobEnded> {
        self.tx
            .send(Report::Hint(batch_id.into()))
            .map_err(|_| JobEnded)
    }
}

/// The loop's end of a hint channel; give it to [`run_with_hints`].
#[derive(Debug)]
pub struct HintInbox {
    tx: SyncSender<Report>,
    rx: Receiver<Report>,
}

/// The job a [`Hints`] handle points at is no longer running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the job is no longer running")]
pub struct JobEnded;

/// [`run`](crate::run), also taking hints from `inbox`: while the job waits,
/// the loop wakes for a hint as it does for a response, and the batch named
/// is polled at once. With webhooks feeding the hints, the job's poll
/// interval can be long (a safety net for lost deliveries) without delaying
/// its results.
///
/// The loop waits on the hint channel for real time (up to the job's next
/// deadline, then on `clock`), so use it with a clock that follows real
/// time.
///
/// # Errors
/// As [`run`](crate::run).
pub fn run_with_hints(
    job: &mut Job,
    client: &Client,
    clock: &impl Clock,
    io: &mut impl JobIo,
    inbox: HintInbox,
) -> Result<JobSummary, Error> {
    run::drive(job, client, clock, io, inbox.tx, inbox.rx, true)
}
