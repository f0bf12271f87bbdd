//! The error of a run and the one place that says which outcome exits with which code (a contract image
//! builders script against): 0 applied or nothing to do, 1 applying failed, 2 invalid input, 3 a
//! program the command runs is not installed.

use std::fmt;
use std::path::{Path, PathBuf};

/// Applied, or no os.conf found.
pub const EXIT_OK: u8 = 0;
/// Applying failed and every change was rolled back (or, for other commands, the command failed).
pub const EXIT_FAILED: u8 = 1;
/// os.conf or the command line is invalid; nothing was changed.
pub const EXIT_INVALID: u8 = 2;
/// A program the command runs is not installed (`image test`: qemu; `image inject` and `prepare`:
/// mtools or debugfs; `osconf image`: the toolkit, osconf-image); nothing was done.
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

/// What went wrong, about which path (if any), and of which kind.
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub path: Option<PathBuf>,
    pub message: String,
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Usage,
            path: None,
            message: message.into(),
        }
    }

    pub fn invalid(path: &Path, message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Invalid,
            path: Some(path.to_owned()),
            message: message.into(),
        }
    }

    pub fn failed(path: Option<&Path>, message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Failed,
            path: path.map(Path::to_owned),
            message: message.into(),
        }
    }

    pub fn no_tool(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::NoTool,
            path: None,
            message: message.into(),
        }
    }

    /// Writing to stdout failed: a closed pipe ends quietly, anything else is a failure.
    pub fn stdout(e: &std::io::Error) -> Error {
        let kind = match e.kind() {
            std::io::ErrorKind::BrokenPipe => Kind::ClosedPipe,
            _ => Kind::Failed,
        };
        Error {
            kind,
            path: None,
            message: format!("writing to stdout: {e}"),
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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}: {}", path.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

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
        ] {
            assert_eq!(e.exit_code(), code, "{e:?}");
        }
        assert_eq!(Error::invalid(Path::new("/c"), "bad").to_string(), "/c: bad");
    }
}
