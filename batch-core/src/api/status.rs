//! The lifecycle status of a batch (API notes §5, `Batch.status`).

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a batch is in its lifecycle (API notes §5, `Batch.status`).
///
/// Parsing never fails: it ignores ASCII case, surrounding whitespace and the
/// separators `_`, `-` and space (so `"Completed"`, `"IN_PROGRESS"` and
/// `"in-progress"` are recognised), accepts the American spellings
/// `canceled`/`canceling`, and keeps anything else as [`BatchStatus::Unknown`]
/// with the string exactly as sent.
///
/// ```text
/// validating -> in_progress -> finalizing -> completed
///      |             |                          (terminal)
///      v             v
///    failed     cancelling -> cancelled     expired
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchStatus {
    /// `validating`: the input file is being validated; the initial state after create.
    Validating,
    /// `failed`: the batch failed validation or processing; details in `errors` (terminal).
    Failed,
    /// `in_progress`: requests are being processed.
    InProgress,
    /// `finalizing`: processing is done and the result files are being written.
    Finalizing,
    /// `completed`: finished; results in `output_file_id` and `error_file_id` (terminal).
    Completed,
    /// `expired`: not finished within the completion window; partial results kept (terminal).
    Expired,
    /// `cancelling`: a cancel was requested; lasts up to 10 minutes.
    Cancelling,
    /// `cancelled`: cancelled; partial results, if any, kept (terminal).
    Cancelled,
    /// Any other value, kept exactly as sent.
    Unknown(String),
}

impl BatchStatus {
    /// Every status the spec lists, in the spec's order.
    pub const KNOWN: [BatchStatus; 8] = [
        BatchStatus::Validating,
        BatchStatus::Failed,
        BatchStatus::InProgress,
        BatchStatus::Finalizing,
        BatchStatus::Completed,
        BatchStatus::Expired,
        BatchStatus::Cancelling,
        BatchStatus::Cancelled,
    ];

    /// Parses a status string. Never fails (see the type's docs for the rules).
    pub fn parse(s: &str) -> BatchStatus {
        let mut key = [0u8; 16];
        let mut n = 0;
        for b in s.trim().bytes() {
            if matches!(b, b'_' | b'-' | b' ') {
                continue;
            }
            if n == key.len() {
                return BatchStatus::Unknown(s.to_owned());
            }
            key[n] = b.to_ascii_lowercase();
            n += 1;
        }
        match &key[..n] {
            b"validating" => BatchStatus::Validating,
            b"failed" => BatchStatus::Failed,
            b"inprogress" => BatchStatus::InProgress,
            b"finalizing" => BatchStatus::Finalizing,
            b"completed" => BatchStatus::Completed,
            b"expired" => BatchStatus::Expired,
            b"cancelling" | b"canceling" => BatchStatus::Cancelling,
            b"cancelled" | b"canceled" => BatchStatus::Cancelled,
            _ => BatchStatus::Unknown(s.to_owned()),
        }
    }

    /// The canonical wire string (`in_progress`, ...), or the unknown value as sent.
    pub fn as_str(&self) -> &str {
        match self {
            BatchStatus::Validating => "validating",
            BatchStatus::Failed => "failed",
            BatchStatus::InProgress => "in_progress",
            BatchStatus::Finalizing => "finalizing",
            BatchStatus::Completed => "completed",
            BatchStatus::Expired => "expired",
            BatchStatus::Cancelling => "cancelling",
            BatchStatus::Cancelled => "cancelled",
            BatchStatus::Unknown(s) => s,
        }
    }

    /// Whether the batch can no longer change: `failed`, `completed`,
    /// `expired` or `cancelled`.
    ///
    /// An [`Unknown`](BatchStatus::Unknown) status is not terminal, so a
    /// poller keeps polling (bounded by the batch's own deadline) rather than
    /// giving up on a status it does not know.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            BatchStatus::Failed
                | BatchStatus::Completed
                | BatchStatus::Expired
                | BatchStatus::Cancelled
        )
    }

    /// Whether this is one of the eight statuses the spec lists.
    pub fn is_known(&self) -> bool {
        !matches!(self, BatchStatus::Unknown(_))
    }
}

impl fmt::Display for BatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BatchStatus {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(BatchStatus::parse(s))
    }
}

impl From<&str> for BatchStatus {
    fn from(s: &str) -> Self {
        BatchStatus::parse(s)
    }
}

impl Serialize for BatchStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for BatchStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        Ok(BatchStatus::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_round_trip() {
        for st in BatchStatus::KNOWN {
            assert_eq!(BatchStatus::parse(st.as_str()), st);
            assert!(st.is_known());
            let json = serde_json::to_string(&st).expect("serialize");
            assert_eq!(json, format!("\"{}\"", st.as_str()));
            assert_eq!(
                serde_json::from_str::<BatchStatus>(&json).expect("parse"),
                st
            );
        }
    }

    #[test]
    fn parsing_is_tolerant() {
        assert_eq!(BatchStatus::parse("Completed"), BatchStatus::Completed);
        assert_eq!(BatchStatus::parse("IN_PROGRESS"), BatchStatus::InProgress);
        assert_eq!(
            BatchStatus::parse("  in-progress\n"),
            BatchStatus::InProgress
        );
        assert_eq!(BatchStatus::parse("InProgress"), BatchStatus::InProgress);
        assert_eq!(BatchStatus::parse("canceled"), BatchStatus::Cancelled);
        assert_eq!(BatchStatus::parse("CANCELING"), BatchStatus::Cancelling);
    }

    #[test]
    fn unknown_keeps_the_original_string() {
        let st = BatchStatus::parse(" Paused ");
        assert_eq!(st, BatchStatus::Unknown(" Paused ".into()));
        assert_eq!(st.as_str(), " Paused ");
        assert!(!st.is_known());
        assert!(!st.is_terminal());
        assert_eq!(BatchStatus::parse(""), BatchStatus::Unknown(String::new()));
        // Longer than any known key: must not be truncated into a match.
        let long = "completedcompletedcompleted";
        assert_eq!(BatchStatus::parse(long), BatchStatus::Unknown(long.into()));
        // Non-ASCII is fine and kept.
        assert_eq!(
            BatchStatus::parse("términé"),
            BatchStatus::Unknown("términé".into())
        );
    }

    #[test]
    fn terminal_states() {
        let terminal: Vec<_> = BatchStatus::KNOWN
            .into_iter()
            .filter(BatchStatus::is_terminal)
            .collect();
        assert_eq!(
            terminal,
            [
                BatchStatus::Failed,
                BatchStatus::Completed,
                BatchStatus::Expired,
                BatchStatus::Cancelled
            ]
        );
    }

    #[test]
    fn display_is_the_wire_string() {
        assert_eq!(BatchStatus::InProgress.to_string(), "in_progress");
        assert_eq!(
            "FINALIZING".parse::<BatchStatus>(),
            Ok(BatchStatus::Finalizing)
        );
    }
}
