//! # openai-batch
//!
//! The command-line tool that runs an OpenAI Batch API job of any size to
//! completion, resumably, with progress. `main.rs` only calls [`main`]; the
//! logic lives here so it can be tested.
//!
//! The tool parses and validates the input, builds the plan with the core's
//! `PlanBuilder`, keeps the job's state in a journal folder
//! (see the `journal` module), drives `batch_core::job::Job` with
//! `batch_blocking::run`, shows its events, and assembles the results in
//! input order. Every decision about what to send, when to wait and what to
//! retry inside a round is the core's.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod args;
mod commands;
mod error;
mod input;
mod interrupt;
mod job;
mod journal;
mod price;
mod progress;
mod provider;
mod render;
mod settings;
mod term;
mod token_cmd;

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::mpsc;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::error::CliError;
use crate::interrupt::{Interrupt, Signal, StopSignal};
use crate::progress::{Mode, Progress};

/// Runs the command line of this process and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let (tx, rx) = mpsc::channel::<Signal<Result<u8, CliError>>>();
    let interrupt = Interrupt::default();
    let quiet = quiet(&cli.command);
    let journal_hint = journal_hint(&cli.command);
    if let Err(e) = watch_signals(interrupt.clone(), tx.clone()) {
        term::err(&format!(
            "warning: Ctrl-C and SIGTERM cannot be handled cleanly: {e}"
        ));
    }
    let worker = {
        let interrupt = interrupt.clone();
        let tx = tx.clone();
        let hint = journal_hint.clone();
        std::thread::Builder::new()
            .name("openai-batch".into())
            .spawn(move || {
                // A panic is a bug, but it must still end the run: the
                // signal watcher holds a sender, so the channel alone
                // would never tell the supervisor.
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    dispatch(&cli.command, interrupt, tx.clone())
                }))
                .unwrap_or_else(|panic| Err(panicked(&*panic, hint.as_deref())));
                let _ = tx.send(Signal::Done(result));
            })
    };
    if let Err(e) = worker {
        term::err(&format!("error: cannot start: {e}"));
        return ExitCode::from(error::EXIT_FAILED);
    }
    drop(tx);
    loop {
        match rx.recv() {
            Ok(Signal::Stop(signal)) => {
                if !quiet {
                    term::err(&match signal {
                        StopSignal::Int => {
                            "stopping at the next safe point (Ctrl-C again to stop at once)"
                                .to_owned()
                        }
                        other => format!("{}: stopping at the next safe point", other.name()),
                    });
                }
            }
            Ok(Signal::Parked) => return interrupted(&interrupt, journal_hint.as_deref()),
            Ok(Signal::Done(Ok(code))) => return ExitCode::from(code),
            Ok(Signal::Done(Err(CliError::Interrupted))) => {
                return interrupted(&interrupt, journal_hint.as_deref());
            }
            Ok(Signal::Done(Err(e))) => return report(&e),
            Err(_) => {
                term::err("error: the command stopped unexpectedly");
                return ExitCode::from(error::EXIT_FAILED);
            }
        }
    }
}

/// What a signal does: the first sets the stop flag and tells the
/// supervisor; a second one exits at once.
fn on_signal(
    interrupt: &Interrupt,
    tx: &mpsc::Sender<Signal<Result<u8, CliError>>>,
    signal: StopSignal,
) {
    if interrupt.set(signal) {
        term::err(&format!("{} again: stopping now", signal.name()));
        std::process::exit(i32::from(signal.exit_code()));
    }
    let _ = tx.send(Signal::Stop(signal));
}

/// Handles SIGINT, SIGTERM and SIGHUP alike: each stops the run at its next
/// safe point, resumably.
#[cfg(unix)]
fn watch_signals(
    interrupt: Interrupt,
    tx: mpsc::Sender<Signal<Result<u8, CliError>>>,
) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for raw in signals.forever() {
                let signal = match raw {
                    SIGTERM => StopSignal::Term,
                    SIGHUP => StopSignal::Hup,
                    _ => StopSignal::Int,
                };
                on_signal(&interrupt, &tx, signal);
            }
        })?;
    Ok(())
}

/// Handles Ctrl-C (and the console's close and shutdown events).
#[cfg(not(unix))]
fn watch_signals(
    interrupt: Interrupt,
    tx: mpsc::Sender<Signal<Result<u8, CliError>>>,
) -> std::io::Result<()> {
    ctrlc::set_handler(move || on_signal(&interrupt, &tx, StopSignal::Int))
        .map_err(std::io::Error::other)
}

/// The error of a worker that panicked (the panic message itself was
/// already printed by the panic hook).
fn panicked(panic: &(dyn std::any::Any + Send), journal: Option<&str>) -> CliError {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    let resume = match journal {
        Some(j) => format!("; the journal {j} is consistent: run the same command again to resume"),
        None => String::new(),
    };
    CliError::failed(format!(
        "openai-batch stopped on an internal error ({what}){resume}"
    ))
}

fn interrupted(interrupt: &Interrupt, journal: Option<&str>) -> ExitCode {
    let signal = interrupt.signal().unwrap_or(StopSignal::Int);
    let cancel = match journal {
        Some(j) => format!("`openai-batch cancel --journal {j}`"),
        None => "`openai-batch cancel --journal DIR`".to_owned(),
    };
    let what = match signal {
        StopSignal::Int => "interrupted".to_owned(),
        other => format!("stopped by {}", other.name()),
    };
    term::err(&format!(
        "{what}: batches already submitted keep running; run the same command again to \
         resume, or {cancel} to cancel them"
    ));
    ExitCode::from(signal.exit_code())
}

fn report(e: &CliError) -> ExitCode {
    match e {
        CliError::Input { errors, total } => {
            for err in errors {
                term::err(&format!("error: {err}"));
            }
            let shown = errors.len() as u64;
            if *total > shown {
                term::err(&format!("error: ... and {} more", total - shown));
            }
            term::err(&format!(
                "error: the input has {total} invalid line{}; nothing was sent",
                if *total == 1 { "" } else { "s" }
            ));
        }
        CliError::Usage(m) | CliError::Failed(m) => term::err(&format!("error: {m}")),
        CliError::Interrupted => {}
    }
    ExitCode::from(e.exit_code())
}

fn quiet(c: &Command) -> bool {
    match c {
        Command::Run(a) => a.drive.quiet,
        Command::Results(a) => a.quiet,
        Command::Submit(a) => a.quiet,
        _ => false,
    }
}

fn journal_hint(c: &Command) -> Option<String> {
    let p = match c {
        Command::Run(a) => Some(
            a.drive
                .journal
                .clone()
                .unwrap_or_else(|| commands::default_journal(&a.output)),
        ),
        Command::Results(a) => Some(a.journal.clone()),
        Command::Submit(a) => Some(
            a.journal
                .clone()
                .unwrap_or_else(|| commands::default_journal(&a.input)),
        ),
        Command::Cancel(a) => a.journal.clone(),
        Command::Status(a) => a.journal.clone(),
        Command::List(a) => a.journal.clone(),
    };
    p.map(|p| p.display().to_string())
}

fn dispatch(
    command: &Command,
    interrupt: Interrupt,
    supervisor: mpsc::Sender<Signal<Result<u8, CliError>>>,
) -> Result<u8, CliError> {
    let mode = if quiet(command) {
        Mode::Quiet
    } else if term::stderr_is_tty() {
        Mode::Bars
    } else {
        Mode::Plain
    };
    let ctx = job::Ctx {
        interrupt,
        supervisor,
        progress: Rc::new(RefCell::new(Progress::new(mode))),
        started: std::time::Instant::now(),
    };
    match command {
        Command::Run(a) => commands::run(&ctx, a),
        Command::Submit(a) => commands::submit(&ctx, a),
        Command::Status(a) => commands::status(&ctx, a),
        Command::Results(a) => commands::results(&ctx, a),
        Command::Cancel(a) => commands::cancel(&ctx, a),
        Command::List(a) => commands::list(&ctx, a),
    }
}
