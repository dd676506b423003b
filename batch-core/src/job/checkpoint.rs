//! The durable state of a job, written before every step with an outside
//! effect, from which [`Job::resume`](super::Job::resume) continues.
//!
//! It is small (a few hundred bytes per shard): request ids are not in it,
//! they come from the plan, which the resumed job is given again and which
//! must match the recorded [`PlanDigest`].

use serde::{Deserialize, Serialize};

use crate::api::{BatchStatus, RequestCounts};
use crate::job::plan::PlanDigest;
use crate::job::types::{ShardEnd, UsageTotals};
use crate::retry::JitterRng;
use crate::time::UnixMillis;

/// The version written by this crate.
pub const CHECKPOINT_VERSION: u32 = 1;

/// A serializable snapshot of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version ([`CHECKPOINT_VERSION`]).
    pub version: u32,
    /// The job's id.
    pub job_id: String,
    /// The plan it runs.
    pub plan: PlanDigest,
    /// When the job was first created.
    pub created_at: UnixMillis,
    /// When the job stops waiting, if it has a maximum wait.
    pub deadline: Option<UnixMillis>,
    /// The jitter generator's state.
    pub rng: JitterRng,
    /// Whether cancellation was requested.
    pub cancel_requested: bool,
    /// Each shard.
    pub shards: Vec<ShardCheckpoint>,
}

/// What is known of an operation with an outside effect (an upload, a create).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EffectState {
    /// Not sent.
    NotSent,
    /// It may have been sent, and its answer was not recorded: look for its
    /// result before doing it again.
    MaybeSent,
}

/// The durable state of one shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardCheckpoint {
    /// The uploaded file.
    pub file_id: Option<String>,
    /// Whether an upload may be in flight without a recorded answer.
    pub upload: EffectState,
    /// The batch.
    pub batch_id: Option<String>,
    /// The last create attempt stamped in the batch metadata.
    pub create_attempt: u32,
    /// Whether a create may be in flight without a recorded answer.
    pub create: EffectState,
    /// How often the batch was re-created after `token_limit_exceeded`.
    pub requeues: u32,
    /// The last status seen.
    pub status: Option<BatchStatus>,
    /// The last counts seen.
    pub counts: Option<RequestCounts>,
    /// Whether a cancel was sent for the batch.
    pub cancel_sent: bool,
    /// How it ended, once its results were all delivered.
    pub end: Option<ShardEnd>,
    /// No operation before this instant (a backoff, a requeue wait, the
    /// next poll): waits survive a restart.
    #[serde(default)]
    pub not_before: UnixMillis,
    /// The batch's first error, when it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Its tallies, once ended.
    pub tally: Tally,
    /// When the last create was armed: a Message Batch whose create answer
    /// was lost is looked for among the batches created since (see
    /// [`crate::anthropic`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_armed_at: Option<UnixMillis>,
    /// The batch was found after a lost create answer and is not yet
    /// confirmed as this shard's by its results (Message Batches only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unconfirmed: bool,
    /// Batches found after a lost create answer whose results showed they
    /// are not this shard's (Message Batches only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refuted: Vec<String>,
}

/// Per-shard counts of outcomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Succeeded.
    pub succeeded: u64,
    /// Failed.
    pub failed: u64,
    /// Not processed.
    pub not_processed: u64,
    /// Unreadable result lines.
    pub bad_lines: u64,
    /// Tokens.
    pub usage: UsageTotals,
}
