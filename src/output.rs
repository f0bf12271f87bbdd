//! Where osconf's text goes: a command's product (help, plan, detect, a report, JSON, generated
//! files) to stdout — every command returns it as [`Said`] and [`finish`] alone prints it —, and
//! messages (what a run does, step by step, for the console at boot) to stderr prefixed `osconf:`. Never panics: a failed stdout write is an `Error` (a closed
//! pipe ends the run quietly); stderr is best effort, so a broken console never stops or changes a run
//! — the exit code keeps telling what happened to the system.

use std::fmt::Display;
use std::io::Write as _;

use crate::error::{Error, Kind};

/// What a command has to say on stdout, and how it ended after saying it (a report of failed
/// checks is printed, then the command fails).
#[derive(Debug)]
pub struct Said {
    pub text: String,
    pub end: Result<(), Error>,
}

impl Said {
    /// Nothing on stdout (apply, install: their messages went to stderr as they happened).
    pub fn nothing() -> Said {
        Said::text(String::new())
    }

    pub fn text(text: impl Into<String>) -> Said {
        Said {
            text: text.into(),
            end: Ok(()),
        }
    }

    /// `text`, then the command fails with `e`.
    pub fn failing(text: impl Into<String>, e: Error) -> Said {
        Said {
            text: text.into(),
            end: Err(e),
        }
    }
}

/// Writes `text` to stdout and flushes it, so that an error is seen here and not lost at exit.
fn print(text: &str) -> Result<(), Error> {
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

/// The end of a run: what the command has to say printed, then its error said (with `usage` after
/// a command-line error; nothing for a closed pipe) and the exit code its kind maps to.
pub fn finish(outcome: Result<Said, Error>, usage: fn() -> String) -> std::process::ExitCode {
    let outcome = outcome.and_then(|said| match said.text.is_empty() {
        true => said.end,
        false => print(&said.text).and(said.end),
    });
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
