//! The one clock of the transport.

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

/// The core's virtual clock: `sleep_until` jumps forward at once, so a
/// 24-hour job runs in milliseconds in tests.
pub use batch_core::job::ManualClock;

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        self.time()
    }

    fn sleep_until(&self, deadline: UnixMillis) {
        self.advance_to(deadline);
    }
}
