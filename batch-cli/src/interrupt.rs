//! Ctrl-C: a flag the work checks at safe points, and a clock whose waits
//! end when it is set.
//!
//! The command runs on a worker thread; the main thread supervises it. On the
//! first Ctrl-C the flag is set. The worker then stops at its next safe
//! point: the journal's next call returns an `Interrupted` error, or, if the
//! job is waiting (nothing in flight, everything written), the clock tells
//! the supervisor it is parked there and never returns. Either way the
//! supervisor prints how to resume and exits with 130. A second Ctrl-C exits
//! at once (the journal is crash-safe at every moment anyway).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use batch_blocking::{Clock, SystemClock};
use batch_core::UnixMillis;

/// What the worker and the Ctrl-C handler tell the supervisor.
#[derive(Debug)]
pub(crate) enum Signal<T> {
    /// Ctrl-C was pressed (the first time).
    CtrlC,
    /// The worker stopped at a wait because of Ctrl-C.
    Parked,
    /// The worker finished.
    Done(T),
}

/// The Ctrl-C flag, shared by the handler, the clock and the journal.
#[derive(Clone, Debug, Default)]
pub(crate) struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    pub(crate) fn set(&self) -> bool {
        self.0.swap(true, Ordering::SeqCst)
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `Err(Interrupted)` once Ctrl-C was pressed.
    pub(crate) fn check(&self) -> std::io::Result<()> {
        if self.is_set() {
            Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "interrupted by Ctrl-C",
            ))
        } else {
            Ok(())
        }
    }
}

/// How often a wait looks at the flag and ticks the progress display.
const SLICE: Duration = Duration::from_millis(100);

/// The system clock, with waits that end at Ctrl-C and tick the display.
pub(crate) struct CliClock<'a> {
    interrupt: Interrupt,
    parked: Box<dyn Fn() + 'a>,
    tick: Box<dyn Fn() + 'a>,
}

impl<'a> CliClock<'a> {
    /// A clock that calls `tick` every slice of a wait and, on Ctrl-C,
    /// calls `parked` and then never returns from the wait.
    pub(crate) fn new(
        interrupt: Interrupt,
        parked: Box<dyn Fn() + 'a>,
        tick: Box<dyn Fn() + 'a>,
    ) -> Self {
        CliClock {
            interrupt,
            parked,
            tick,
        }
    }
}

impl Clock for CliClock<'_> {
    fn now(&self) -> UnixMillis {
        SystemClock.now()
    }

    fn sleep_until(&self, deadline: UnixMillis) {
        loop {
            if self.interrupt.is_set() {
                (self.parked)();
                loop {
                    std::thread::park();
                }
            }
            let left = self.now().until(deadline);
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(SLICE));
            (self.tick)();
        }
    }
}

/// Sends [`Signal::Parked`] to the supervisor.
pub(crate) fn parked_notifier<'a, T: Send + 'a>(tx: Sender<Signal<T>>) -> Box<dyn Fn() + 'a> {
    Box::new(move || {
        let _ = tx.send(Signal::Parked);
    })
}
