//! Counters that tests read to prove what happened (and what did not
//! happen twice).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the emulator has seen and done since start or the last reset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Counters {
    /// Every request under `/v1`, matched or not.
    pub requests_total: u64,
    /// Requests per route (`files.create`, `batches.get`, …; `unmatched` for
    /// unknown paths).
    pub requests: BTreeMap<String, u64>,
    /// Responses per HTTP status code.
    pub responses: BTreeMap<String, u64>,
    /// Files created by uploads (not output files).
    pub files_uploaded: u64,
    /// Bytes received in uploaded files.
    pub bytes_uploaded: u64,
    /// Files deleted.
    pub files_deleted: u64,
    /// Batches created.
    pub batches_created: u64,
    /// Batches a cancel moved to `cancelling` (Anthropic: `canceling`).
    pub batches_cancelled: u64,
    /// Message Batches deleted (Anthropic mode).
    #[serde(default)]
    pub batches_deleted: u64,
    /// Output and error files written by finished batches (Anthropic: one
    /// results file per ended batch).
    pub result_files_written: u64,
    /// Body bytes of file content actually sent.
    pub bytes_served: u64,
    /// Faults that fired, by kind (`429-every`, `cut-content`, …).
    pub faults_injected: BTreeMap<String, u64>,
    /// Webhook deliveries attempted (retries and duplicates included).
    #[serde(default)]
    pub webhook_attempts: u64,
    /// Webhook deliveries the receiver answered with a 2xx.
    #[serde(default)]
    pub webhooks_delivered: u64,
}

impl Counters {
    /// Total of all `faults_injected`.
    pub fn faults_total(&self) -> u64 {
        self.faults_injected.values().sum()
    }

    /// Requests seen on one route, by its short name.
    pub fn requests_on(&self, route: &str) -> u64 {
        self.requests.get(route).copied().unwrap_or(0)
    }

    pub(crate) fn fault(&mut self, name: &str) {
        *self.faults_injected.entry(name.to_owned()).or_default() += 1;
    }
}
