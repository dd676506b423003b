//! When to poll a running batch next, with [`JobConfig::adaptive_polling`]
//! on: soon after it is created or changes status, then less often while
//! nothing changes, and, while it is in progress, when its request counts
//! say it should be done. `poll_interval` is the longest wait.
//!
//! [`JobConfig::adaptive_polling`]: crate::job::JobConfig::adaptive_polling

use std::time::Duration;

use crate::api::{BatchStatus, RequestCounts};
use crate::time::UnixMillis;

/// The first wait after a batch is created or changes status (or
/// `poll_interval`, if that is shorter).
pub(crate) const FIRST_POLL: Duration = Duration::from_secs(1);

/// One shard's polling rhythm. Not kept in the checkpoint: a resumed job
/// starts it over.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cadence {
    /// The last wait chosen by backing off.
    step: Duration,
    /// When the batch was first seen in progress, and how many of its
    /// requests were done then.
    mark: Option<(UnixMillis, u64)>,
}

impl Cadence {
    /// The wait before the next poll of a batch just seen at `now` in
    /// `status` with `counts`; `changed` if its status is not the one seen
    /// before.
    pub(crate) fn next(
        &mut self,
        changed: bool,
        status: &BatchStatus,
        counts: &RequestCounts,
        now: UnixMillis,
        longest: Duration,
    ) -> Duration {
        let first = FIRST_POLL.min(longest);
        if *status == BatchStatus::InProgress && counts.total > 0 {
            let done = counts.completed.saturating_add(counts.failed);
            match self.mark {
                None => self.mark = Some((now, done)),
                Some((then, before)) if done > before && done < counts.total => {
                    // At the pace seen so far, the rest takes this long.
                    let ms = then.until(now).as_millis();
                    let left = u128::from(counts.total - done) * ms / u128::from(done - before);
                    self.step = first;
                    let left = Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX));
                    return left.clamp(first, longest);
                }
                Some(_) => {}
            }
        }
        self.step = if changed {
            first
        } else {
            (self.step * 2).clamp(first, longest)
        };
        self.step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(total: u64, completed: u64) -> RequestCounts {
        RequestCounts {
            total,
            completed,
            failed: 0,
        }
    }

    #[test]
    fn backs_off_from_a_second_and_resets_on_a_change() {
        let mut c = Cadence::default();
        let max = Duration::from_secs(60);
        let t = UnixMillis::from_secs(1_000);
        let none = counts(0, 0);
        let waits: Vec<u64> = [true, false, false, false, false, false, false, false]
            .iter()
            .map(|&changed| {
                c.next(changed, &BatchStatus::Validating, &none, t, max)
                    .as_secs()
            })
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        let w = c.next(true, &BatchStatus::Finalizing, &none, t, max);
        assert_eq!(w, Duration::from_secs(1));
        // Never longer than the longest wait, nor than it for the first.
        let mut c = Cadence::default();
        let short = Duration::from_millis(500);
        assert_eq!(
            c.next(true, &BatchStatus::Validating, &none, t, short),
            short
        );
    }

    #[test]
    fn polls_when_the_counts_say_the_batch_is_done() {
        let mut c = Cadence::default();
        let max = Duration::from_secs(60);
        let at = |s: i64| UnixMillis::from_secs(s);
        let running = BatchStatus::InProgress;
        // First seen in progress at 100 s with 0 of 1,000 done: no pace yet.
        assert_eq!(
            c.next(true, &running, &counts(1_000, 0), at(100), max)
                .as_secs(),
            1
        );
        // 100 done in 10 s: 900 more take 90 s, longer than the longest wait.
        assert_eq!(
            c.next(false, &running, &counts(1_000, 100), at(110), max),
            max
        );
        // 950 done at 195 s: 50 more take 5 s.
        assert_eq!(
            c.next(false, &running, &counts(1_000, 950), at(195), max)
                .as_secs(),
            5
        );
        // 999 done: no sooner than a second.
        assert_eq!(
            c.next(false, &running, &counts(1_000, 999), at(199), max)
                .as_secs(),
            1
        );
    }
}
