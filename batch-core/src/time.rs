//! Wall-clock time as a plain value.
//!
//! The core never reads a clock. Every function that needs the time takes a
//! [`UnixMillis`] argument supplied by the caller. Wall-clock Unix time (not
//! `Instant`) is used because a batch job spans up to 24 hours, deadlines go
//! into checkpoints that survive a restart, and they are compared with the
//! API's `created_at`/`expires_at` (Unix seconds).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, supplied by the caller.
///
/// Not required to be monotonic: the core tolerates jumps and clamps
/// backwards steps.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// The Unix epoch.
    pub const ZERO: UnixMillis = UnixMillis(0);

    /// From Unix seconds, as the API sends them (`created_at`, `expires_at`, ...).
    /// Negative values clamp to the epoch.
    pub fn from_secs(secs: i64) -> Self {
        UnixMillis(u64::try_from(secs).unwrap_or(0).saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch (rounded down).
    pub fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// The time from `self` until `later`, or zero if `later` is not after `self`.
    pub fn until(self, later: UnixMillis) -> Duration {
        Duration::from_millis(later.0.saturating_sub(self.0))
    }

    /// `self` plus `d`, saturating.
    pub fn saturating_add(self, d: Duration) -> UnixMillis {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        UnixMillis(self.0.saturating_add(ms))
    }

    /// `self` plus `ms` milliseconds, saturating.
    pub fn plus_millis(self, ms: u64) -> UnixMillis {
        UnixMillis(self.0.saturating_add(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_saturates() {
        assert_eq!(UnixMillis(5).until(UnixMillis(3)), Duration::ZERO);
        assert_eq!(UnixMillis(3).until(UnixMillis(5)), Duration::from_millis(2));
    }

    #[test]
    fn from_secs_clamps_negative() {
        assert_eq!(UnixMillis::from_secs(-5), UnixMillis::ZERO);
        assert_eq!(UnixMillis::from_secs(2), UnixMillis(2000));
    }

    #[test]
    fn add_saturates() {
        assert_eq!(
            UnixMillis(u64::MAX - 1).plus_millis(10),
            UnixMillis(u64::MAX)
        );
        assert_eq!(
            UnixMillis(1).saturating_add(Duration::from_secs(1)),
            UnixMillis(1001)
        );
    }
}
