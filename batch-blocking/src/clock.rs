//! The one clock of the transport.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use batch_core::UnixMillis;

/// Where the driver loop gets the time and how it waits.
pub trait Clock {
    /// The current wall-clock time.
    fn now(&self) -> UnixMillis;
    /// Returns once `now() >= deadline` (returns at once if it already is).
    fn sleep_until(&self, deadline: UnixMillis);
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixMillis {
        // This is the one sanctioned clock read of the transport.
        #[allow(clippy::disallowed_methods)]
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        UnixMillis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn sleep_until(&self, deadline: UnixMillis) {
        // Trust the clock, not the timer: re-check after every sleep.
        loop {
            let left = self.now().until(deadline);
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left);
        }
    }
}

/// A virtual clock whose `sleep_until` jumps forward at once, so a 24-hour
/// job runs in milliseconds in tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: Mutex<UnixMillis>,
}

impl ManualClock {
    /// A clock that reads `start`.
    pub fn new(start: UnixMillis) -> Self {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = now.saturating_add(d);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sleep_until(&self, deadline: UnixMillis) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = (*now).max(deadline);
    }
}
