//! Stop signals (Ctrl-C, SIGTERM, SIGHUP): a flag the work checks at safe
//! points, and a clock whose waits end when it is set.
//!
//! The command runs on a worker thread; the main thread supervises it. On the
//! first stop signal the flag is set. The worker then stops at its next safe
//! point: the journal's next call returns an `Interrupted` error, or, if the
//! job is waiting (nothing in flight, everything written), the clock tells
//! the supervisor it is parked there and never returns. Either way the
//! supervisor prints how to resume and exits with 128 + the signal's number
//! (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP). A second signal exits
//! at once (the journal is crash-safe at every moment anyway).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use batch_blocking::{Clock, SystemClock};
use batch_core::UnixMillis;

/// A signal that stops a run cleanly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopSignal {
    /// SIGINT: Ctrl-C.
    Int,
    /// SIGTERM: `kill`, a service manager, a container stopping.
    Term,
    /// SIGHUP: the terminal went away.
    Hup,
}

impl StopSignal {
    /// The exit code of a run it stopped: 128 + the signal's number.
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            StopSignal::Int => 130,
            StopSignal::Term => 143,
            StopSignal::Hup => 129,
        }
    }

    /// How the user would name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            StopSignal::Int => "Ctrl-C",
            StopSignal::Term => "SIGTERM",
            StopSignal::Hup => "SIGHUP",
        }
    }

    fn from_exit_code(code: u8) -> Option<StopSignal> {
        [StopSignal::Int, StopSignal::Term, StopSignal::Hup]
            .into_iter()
            .find(|s| s.exit_code() == code)
    }
}

/// What the worker and the signal handler tell the supervisor.
#[derive(Debug)]
pub(crate) enum Signal<T> {
    /// A stop signal arrived (the first one).
    Stop(StopSignal),
    /// The worker stopped at a wait because of a stop signal.
    Parked,
    /// The worker finished.
    Done(T),
}

/// The stop flag, shared by the signal handler, the clock and the journal:
/// the exit code of the first stop signal, 0 before one.
#[derive(Clone, Debug, Default)]
pub(crate) struct Interrupt(Arc<AtomicU8>);

impl Interrupt {
    /// Records `signal`; returns true if a stop signal had come before.
    pub(crate) fn set(&self, signal: StopSignal) -> bool {
        self.0
            .compare_exchange(0, signal.exit_code(), Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst) != 0
    }

    /// The first stop signal, if one came.
    pub(crate) fn signal(&self) -> Option<StopSignal> {
        StopSignal::from_exit_code(self.0.load(Ordering::SeqCst))
    }

    /// `Err(Interrupted)` once a stop signal came.
    pub(crate) fn check(&self) -> std::io::Result<()> {
        match self.signal() {
            Some(s) => Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                format!("interrupted by {}", s.name()),
            )),
            None => Ok(()),
        }
    }
}

/// How often a wait looks at the flag and ticks the progress display.
const SLICE: Duration = Duration::from_millis(100);

/// The system clock, with waits that end at a stop signal and tick the display.
pub(crate) struct CliClock<'a> {
    interrupt: Interrupt,
    parked: Box<dyn Fn() + 'a>,
    tick: Box<dyn Fn() + 'a>,
}

impl<'a> CliClock<'a> {
    /// A clock that calls `tick` every slice of a wait and, on a stop signal,
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
