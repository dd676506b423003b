//! The CLI's errors and exit codes.

use batch_core::InputError;

/// Exit code: every request succeeded.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code: the job finished, and some requests failed or were not processed.
pub(crate) const EXIT_SOME_FAILED: u8 = 1;
/// Exit code: bad input or usage; nothing was sent.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code: the run failed (the API refused, an IO error, a damaged journal).
pub(crate) const EXIT_FAILED: u8 = 3;
/// Exit code: interrupted with Ctrl-C (128 + SIGINT); SIGTERM gives 143 and
/// SIGHUP 129 (see `interrupt::StopSignal`).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// Why a command did not finish.
#[derive(Debug)]
pub(crate) enum CliError {
    /// Bad usage or configuration: one sentence.
    Usage(String),
    /// Bad input lines: the first few, and how many in all.
    Input { errors: Vec<InputError>, total: u64 },
    /// The run failed: one sentence.
    Failed(String),
    /// A stop signal (Ctrl-C, SIGTERM, SIGHUP) came; the journal is consistent.
    Interrupted,
}

impl CliError {
    pub(crate) fn usage(msg: impl Into<String>) -> Self {
        CliError::Usage(msg.into())
    }

    pub(crate) fn failed(msg: impl Into<String>) -> Self {
        CliError::Failed(msg.into())
    }

    /// The process exit code for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Input { .. } => EXIT_USAGE,
            CliError::Failed(_) => EXIT_FAILED,
            CliError::Interrupted => EXIT_INTERRUPTED,
        }
    }
}

/// `error`'s message followed by its sources, each once, as one sentence.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut msg = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}
