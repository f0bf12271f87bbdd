//! os.conf from a path or from bytes to a validated `Config`: the one way apply, plan, check,
//! `image inject` and `image test` read it, every problem printed with the path, line and key.
//!
//! It sits below the commands that use it (`app`, `image`, `imagetest`) and above `reader` and
//! `model`; it reads only the file it is given and changes nothing.

use std::fmt::Display;
use std::fs::File;
use std::path::Path;

use crate::error::Error;
use crate::model::{self, Config};
use crate::output::say;
use crate::reader;
use crate::secret::Secret;

/// Reads and validates the os.conf at `path`.
pub fn load(path: &Path) -> Result<Config, Error> {
    let bytes = read(path)?;
    validate(path, bytes.expose())
}

/// The bytes of os.conf from `file`, already open (found at `path`), for [`validate`].
pub fn read_from(path: &Path, file: File) -> Result<Secret<Vec<u8>>, Error> {
    reader::read_bytes(file).map_err(|e| invalid(path, &[e]))
}

/// The bytes of the os.conf at `path` (at most `reader::MAX_SIZE`), for a caller that validates
/// them with [`validate`] and then uses the very bytes it validated.
pub fn read(path: &Path) -> Result<Secret<Vec<u8>>, Error> {
    let file = open(path).map_err(|e| Error::invalid(path, e.to_string()).unchanged())?;
    read_from(path, file)
}

/// Validates os.conf's bytes (read from `path`): the config, its warnings printed; or every error
/// printed with its line and key, and an `Invalid` error (exit 2).
pub fn validate(path: &Path, bytes: &[u8]) -> Result<Config, Error> {
    match reader::parse(bytes).and_then(|raw| model::validate(&raw)) {
        Ok(v) => {
            v.warnings
                .iter()
                .for_each(|w| say(format!("{}: warning: {w}", path.display())));
            Ok(v.config)
        }
        Err(errors) => Err(invalid(path, &errors)),
    }
}

/// Prints each error after the path; the error that ends the command.
fn invalid(path: &Path, errors: &[impl Display]) -> Error {
    errors
        .iter()
        .for_each(|e| say(format!("{}: {e}", path.display())));
    Error::invalid(path, format!("invalid ({} errors)", errors.len())).unchanged()
}

/// Opens os.conf without blocking (a FIFO planted there must not hang the boot) and only if it is a
/// regular file.
fn open(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}
