//! The error of a run: its kind (the one place that says which outcome exits with which code, a
//! contract image builders script against: 0 applied or nothing to do, 1 applying failed, 2 invalid
//! input, 3 a program the command runs is not installed), the path it is about, and what became of
//! the system — said once, by `Display`, at the end of the message.

use std::fmt;
use std::path::{Path, PathBuf};

/// Applied, or no os.conf found.
pub const EXIT_OK: u8 = 0;
/// Applying failed and every change was rolled back (or, for other commands, the command failed).
pub const EXIT_FAILED: u8 = 1;
/// os.conf or the command line is invalid; nothing was changed.
pub const EXIT_INVALID: u8 = 2;
/// A program the command runs is not installed (`image test`: qemu; `image inject` and `prepare`:
/// mtools or debugfs, guestfish; `osconf image`: the toolkit, osconf-image); nothing was changed.
pub const EXIT_NO_TOOL: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The command line is wrong: the usage follows the message.
    Usage,
    /// os.conf (or a file given to check) is invalid; nothing was changed.
    Invalid,
    /// Planning, applying or writing the output failed.
    Failed,
    /// A program the command needs is not installed.
    NoTool,
    /// Whoever read stdout has gone (`osconf detect | head -1`): end quietly, as a filter does.
    ClosedPipe,
}

/// What became of the system when a command failed, so that a person (or a script reading the
/// console) knows whether anything is left to repair.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Outcome {
    /// Not said: the command changes nothing whatever happens (a usage error, `detect`, `status`,
    /// `image check`), or the error is not yet at a command's boundary.
    #[default]
    Unsaid,
    /// The command failed before it changed anything.
    Unchanged,
    /// It changed things and put every one of them back.
    RolledBack,
    /// It changed things and this many could not be put back, each named on a line of its own
    /// before this one.
    NotRolledBack(usize),
}

/// What went wrong, about which path (if any), of which kind, and what became of the system.
#[derive(Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: Kind,
    pub path: Option<PathBuf>,
    pub message: String,
    pub outcome: Outcome,
    /// What the run made and could not remove (the next run does), said with the outcome:
    /// "nothing was changed but …".
    pub left: Option<String>,
    /// os.conf is still there, for the next run (apply, once os.conf was found).
    pub conf_kept: bool,
}

impl Error {
    fn new(kind: Kind, path: Option<&Path>, message: String, outcome: Outcome) -> Error {
        Error {
            kind,
            path: path.map(Path::to_owned),
            message,
            outcome,
            left: None,
            conf_kept: false,
        }
    }

    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(Kind::Usage, None, message.into(), Outcome::Unsaid)
    }

    /// Bad input; its outcome is said by the command that knows it ([`Error::unchanged`]).
    pub fn invalid(path: &Path, message: impl Into<String>) -> Error {
        Error::new(Kind::Invalid, Some(path), message.into(), Outcome::Unsaid)
    }

    /// Bad input whose place (a line, a key, a file) the caller adds: a parser's answer.
    pub fn bad(message: impl Into<String>) -> Error {
        Error::new(Kind::Invalid, None, message.into(), Outcome::Unsaid)
    }

    /// A failure; its outcome is said by the command that knows it ([`Error::unchanged`] …).
    pub fn failed(path: Option<&Path>, message: impl Into<String>) -> Error {
        Error::new(Kind::Failed, path, message.into(), Outcome::Unsaid)
    }

    /// A program is missing: found out before it was needed, so nothing was changed.
    pub fn no_tool(message: impl Into<String>) -> Error {
        Error::new(Kind::NoTool, None, message.into(), Outcome::Unchanged)
    }

    /// An I/O error about `path`, failed.
    pub fn io(path: &Path, e: &std::io::Error) -> Error {
        Error::failed(Some(path), e.to_string())
    }

    /// Writing to stdout failed: a closed pipe ends quietly, anything else is a failure.
    pub fn stdout(e: &std::io::Error) -> Error {
        let kind = match e.kind() {
            std::io::ErrorKind::BrokenPipe => Kind::ClosedPipe,
            _ => Kind::Failed,
        };
        Error::new(kind, None, format!("writing to stdout: {e}"), Outcome::Unsaid)
    }

    /// Nothing was changed.
    pub fn unchanged(self) -> Error {
        self.with_outcome(Outcome::Unchanged)
    }

    pub fn with_outcome(mut self, outcome: Outcome) -> Error {
        self.outcome = outcome;
        self
    }

    /// os.conf is kept for the next run.
    pub fn conf_kept(mut self) -> Error {
        self.conf_kept = true;
        self
    }

    /// Adds what the run could not remove.
    pub fn leaving(mut self, left: impl Into<String>) -> Error {
        let left = left.into();
        self.left = Some(match self.left.take() {
            Some(before) => format!("{before}; {left}"),
            None => left,
        });
        self
    }

    /// This error as the cause of a step of a larger one: `path: what: cause` (the cause's own path
    /// and message), keeping its kind and outcome.
    pub fn context(self, path: Option<&Path>, what: impl fmt::Display) -> Error {
        let e = self.at(path);
        Error {
            message: format!("{what}: {}", e.message),
            ..e
        }
    }

    /// This error about `path`: its own path, if any, goes into the message.
    pub fn at(self, path: Option<&Path>) -> Error {
        let message = match &self.path {
            Some(p) => format!("{}: {}", p.display(), self.message),
            None => self.message.clone(),
        };
        Error {
            path: path.map(Path::to_owned),
            message,
            ..self
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Usage | Kind::Invalid => EXIT_INVALID,
            Kind::Failed => EXIT_FAILED,
            Kind::NoTool => EXIT_NO_TOOL,
            Kind::ClosedPipe => EXIT_OK,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Unsaid => Ok(()),
            Outcome::Unchanged => f.write_str("nothing was changed"),
            Outcome::RolledBack => f.write_str("every change was rolled back"),
            Outcome::NotRolledBack(n) => {
                write!(f, "{n} change(s) could not be rolled back (see above)")
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}: ", path.display())?;
        }
        f.write_str(&self.message)?;
        let unchanged = self.outcome == Outcome::Unchanged;
        if self.outcome != Outcome::Unsaid {
            write!(f, "; {}", self.outcome)?;
        }
        match &self.left {
            Some(left) if unchanged => write!(f, " but {left}")?,
            Some(left) => write!(f, "; {left}")?,
            None => {}
        }
        match (self.conf_kept, unchanged) {
            (true, true) => f.write_str(", os.conf kept"),
            (true, false) => f.write_str("; os.conf kept"),
            (false, _) => Ok(()),
        }
    }
}

impl std::error::Error for Error {}

/// What a stack cannot hold of a valid os.conf (ConnMan: static routes, a NIC without the default
/// route). A renderer, whose errors are `root::Error`s, says it as this payload of its `io::Error`,
/// which becomes an `Invalid` error: exit 2, as for os.conf that is wrong, because the way out is
/// the same — another os.conf (or another stack in the image) — and no retry will do, where exit 1
/// says a step failed on the way.
#[derive(Debug)]
pub struct Unfit(pub String);

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unfit {}

impl From<crate::root::Error> for Error {
    fn from(e: crate::root::Error) -> Error {
        match e.error.get_ref().and_then(|inner| inner.downcast_ref::<Unfit>()) {
            Some(unfit) => Error::invalid(&e.path, unfit.0.clone()),
            None => Error::io(&e.path, &e.error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_documented_exit_codes() {
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let full = std::io::Error::from_raw_os_error(28);
        for (e, code) in [
            (Error::usage("x"), 2),
            (Error::invalid(Path::new("/c"), "x"), 2),
            (Error::failed(None, "x"), 1),
            (Error::no_tool("x"), 3),
            (Error::stdout(&full), 1),
            (Error::stdout(&pipe), 0),
            (
                Error::from(crate::root::Error {
                    path: "/etc/x".into(),
                    error: std::io::Error::other(Unfit("x".into())),
                }),
                2,
            ),
            (
                Error::from(crate::root::Error {
                    path: "/etc/x".into(),
                    error: std::io::Error::other("x"),
                }),
                1,
            ),
        ] {
            assert_eq!(e.exit_code(), code, "{e:?}");
        }
    }

    /// Each kind says its path and what became of the system, once, at the end.
    #[test]
    fn every_kind_prints_its_path_and_outcome_once() {
        let p = Path::new("/b/os.conf");
        let said = [
            (Error::usage("unknown flag --x"), "unknown flag --x"),
            (
                Error::invalid(p, "invalid (2 errors)").unchanged(),
                "/b/os.conf: invalid (2 errors); nothing was changed",
            ),
            (
                Error::no_tool("qemu is not installed"),
                "qemu is not installed; nothing was changed",
            ),
            (
                Error::failed(Some(p), "cannot plan: no NIC")
                    .unchanged()
                    .conf_kept(),
                "/b/os.conf: cannot plan: no NIC; nothing was changed, os.conf kept",
            ),
            (
                Error::failed(Some(p), "not applied")
                    .with_outcome(Outcome::RolledBack)
                    .conf_kept(),
                "/b/os.conf: not applied; every change was rolled back; os.conf kept",
            ),
            (
                Error::failed(None, "failed x").with_outcome(Outcome::NotRolledBack(2)),
                "failed x; 2 change(s) could not be rolled back (see above)",
            ),
            (
                Error::failed(Some(p), "cannot plan")
                    .unchanged()
                    .leaving("/etc/.pwd.lock left"),
                "/b/os.conf: cannot plan; nothing was changed but /etc/.pwd.lock left",
            ),
            (
                Error::failed(None, "disk full").context(Some(p), "writing"),
                "/b/os.conf: writing: disk full",
            ),
        ];
        for (e, text) in said {
            let shown = e.to_string();
            assert_eq!(shown, text);
            for phrase in ["nothing was changed", "rolled back", "os.conf kept", "/b/os.conf"] {
                assert!(shown.matches(phrase).count() <= 1, "{shown}");
            }
        }
    }

    /// An outcome given by the command replaces none said by the step that failed; a step's path
    /// goes into the message of the command's error.
    #[test]
    fn context_keeps_the_cause_path_kind_and_outcome() {
        let e = Error::invalid(Path::new("/j"), "line 3: bad")
            .unchanged()
            .context(None, "recovering");
        assert_eq!(e.kind, Kind::Invalid);
        assert_eq!(e.to_string(), "recovering: /j: line 3: bad; nothing was changed");
    }
}
