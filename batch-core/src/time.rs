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

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar
/// (`m` 1 to 12, `d` 1 to 31), by Howard Hinnant's `days_from_civil`
/// (<https://howardhinnant.github.io/date_algorithms.html>).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month 1 to 12, day 1 to 31) `days` days after
/// 1970-01-01, by Howard Hinnant's `civil_from_days`; the inverse of
/// [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
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

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }
}
