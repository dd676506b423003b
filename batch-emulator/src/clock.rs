//! The emulator's virtual clock: wall-clock time at start-up, then running
//! `speed` times faster than real time, plus any explicit jumps.
//!
//! Every timestamp the API reports (`created_at`, `expires_at`, …) is on this
//! clock, so the objects stay consistent with each other at any speed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug)]
pub(crate) struct VirtualClock {
    started: Instant,
    base_ms: u64,
    /// 0 for a stepped clock, which only moves by `advance_ms`.
    speed: f64,
    offset_ms: AtomicU64,
}

impl VirtualClock {
    /// Starts at the later of the wall clock and `not_before_ms` (the last
    /// virtual time a previous run persisted), so time never goes backwards
    /// across restarts.
    /// `start_ms` replaces the wall clock as the starting point; `stepped`
    /// makes the clock ignore real time.
    pub(crate) fn new(
        speed: f64,
        start_ms: Option<u64>,
        stepped: bool,
        not_before_ms: u64,
    ) -> VirtualClock {
        let wall = start_ms.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0)
        });
        let speed = if stepped {
            0.0
        } else if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        VirtualClock {
            started: Instant::now(),
            base_ms: wall.max(not_before_ms),
            speed,
            offset_ms: AtomicU64::new(0),
        }
    }

    /// Virtual seconds per real second; 0 for a stepped clock.
    /// Virtual seconds per real second; 0 for a stepped clock.
    pub(crate) fn speed(&self) -> f64 {
        self.speed
    }

    /// Virtual Unix milliseconds.
    pub(crate) fn now_ms(&self) -> u64 {
        let real = self.started.elapsed().as_secs_f64() * 1000.0;
        let scaled = (real * self.speed).min(u64::MAX as f64 / 4.0) as u64;
        self.base_ms
            .saturating_add(scaled)
            .saturating_add(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Jumps virtual time forward.
    pub(crate) fn advance_ms(&self, ms: u64) {
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Converts a real duration in ms to virtual ms.
    /// A stepped clock counts it one to one.
    pub(crate) fn real_to_virtual_ms(&self, real_ms: u64) -> u64 {
        let speed = if self.speed > 0.0 { self.speed } else { 1.0 };
        (real_ms as f64 * speed).min(u64::MAX as f64 / 4.0) as u64
    }
}
