//! Where osconf's two programs find each other and the tools they run: the agent (`osconf`, what
//! runs at boot) hands `osconf image …` to the image toolkit (`osconf-image`), and `image prepare`
//! puts the agent into an image; each looks for the other beside itself, then in `PATH`.
//!
//! It only looks and execs; it reads no file's contents.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// The agent's file name: what runs at boot, what `install` and `image prepare` put in an image.
pub const AGENT: &str = "osconf";
/// The image toolkit's file name: `osconf image …` runs it.
pub const TOOLKIT: &str = "osconf-image";

/// `name` in a directory of `PATH`, when there is an executable regular file of that name.
pub fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| executable(p))
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where a program was looked for and not found, said inside the missing tool's error.
struct Looked(String);

impl std::fmt::Display for Looked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `name` beside the running binary, else in `PATH`; where it was looked for, when nowhere. The
/// running binary is `/proc/self/exe`, or where `argv[0]` says when there is no `/proc` (a chroot).
fn sibling(name: &str) -> Result<PathBuf, Looked> {
    let exe = std::env::current_exe().ok().or_else(|| {
        let argv0 = PathBuf::from(std::env::args_os().next()?);
        argv0
            .parent()
            .is_some_and(|p| !p.as_os_str().is_empty())
            .then_some(argv0)
    });
    let beside = exe.as_ref().map(|e| e.with_file_name(name));
    if let Some(b) = beside.filter(|b| executable(b)) {
        return Ok(b);
    }
    match (in_path(name), exe) {
        (Some(found), _) => Ok(found),
        (None, Some(exe)) => Err(Looked(format!("looked beside {} and in PATH", exe.display()))),
        (None, None) => Err(Looked("looked in PATH".to_owned())),
    }
}

/// The agent binary, for `image prepare` to put into an image (never the toolkit itself).
pub fn agent() -> Result<PathBuf, Error> {
    sibling(AGENT).map_err(|looked| {
        Error::no_tool(format!(
            "the osconf agent is not installed ({looked}): image prepare puts it into the image; it \
             ships beside {TOOLKIT} in the .deb, the .rpm and the tarball"
        ))
    })
}

/// `osconf image ARGS…` in the agent: replaces this process with `osconf-image ARGS…` (the command
/// line as typed after `image`, already checked by the same parser). Returns only on failure:
/// exit 3 naming what to install when the toolkit is nowhere.
pub fn exec_toolkit(args: impl IntoIterator<Item = OsString>) -> Error {
    use std::os::unix::process::CommandExt as _;
    let program = match sibling(TOOLKIT) {
        Ok(p) => p,
        Err(looked) => {
            return Error::no_tool(format!(
                "osconf image needs the image toolkit, {TOOLKIT}, which is not installed ({looked}): \
                 it ships beside {AGENT} in the .deb, the .rpm and the tarball (scripts/package); \
                 osconf install puts only the agent into an image"
            ));
        }
    };
    // exec: the toolkit's exit code and output are the command's own.
    let e = std::process::Command::new(&program).args(args).exec();
    Error::failed(Some(&program), format!("cannot run it: {e}")).unchanged()
}
