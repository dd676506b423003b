//! The one place that writes to the terminal. It writes with `writeln!` on
//! the locked streams and ignores write errors, so a closed pipe (`| head`)
//! never panics.

use std::io::{self, IsTerminal, Write};

/// Writes one line to stdout (results of single operations, `--json`).
pub(crate) fn out(line: &str) {
    let mut o = io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

/// Writes one line to stderr (progress, notes, the summary, errors).
pub(crate) fn err(line: &str) {
    let mut e = io::stderr().lock();
    let _ = writeln!(e, "{line}");
}

/// Whether stderr is a terminal (progress bars) or a pipe (plain lines).
pub(crate) fn stderr_is_tty() -> bool {
    io::stderr().is_terminal()
}
