//! Where osconf's text goes: a command's product (help, plan, detect, generated files) to stdout,
//! messages to stderr prefixed `osconf:`. Never panics: a failed stdout write is an `Error` (a closed
//! pipe ends the run quietly); stderr is best effort, so a broken console never stops or changes a run
//! — the exit code keeps telling what happened to the system.

use std::fmt::Display;
use std::io::Write as _;

use crate::error::{Error, Kind};

/// Writes `text` to stdout and flushes it, so that an error is seen here and not lost at exit.
pub fn print(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::stdout(&e))
}

/// One message line on stderr; a failure to write it is ignored (see the module's note).
pub fn say(msg: impl Display) {
    let msg = msg.to_string();
    let _ = writeln!(std::io::stderr().lock(), "osconf: {msg}");
    crate::log::tee(&msg);
}

/// The end of a run: the error said (with `usage` after a command-line error; nothing for a closed
/// pipe) and the exit code its kind maps to.
pub fn finish(outcome: Result<(), Error>, usage: fn() -> String) -> std::process::ExitCode {
    let Err(e) = outcome else {
        return std::process::ExitCode::SUCCESS;
    };
    match e.kind {
        Kind::ClosedPipe => {}
        Kind::Usage => say(format_args!("{e}\n\n{}", usage())),
        Kind::Invalid | Kind::Failed | Kind::NoTool => say(&e),
    }
    std::process::ExitCode::from(e.exit_code())
}
