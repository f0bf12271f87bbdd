//! os.conf, found and opened through handles: the directory that holds it stays open, so that removing
//! os.conf after a successful run unlinks the very entry that was read, wherever the path points by
//! then. A link at os.conf or at its directory (`aliyun_custom_image`) is refused, never followed:
//! anyone holding the disk image can plant one, and following it would delete the file at its end.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::{Root, absent_as_none, check_regular};

/// os.conf, open.
#[derive(Debug)]
pub struct ConfFile {
    /// The directory holding it.
    pub dir: OwnedFd,
    pub name: OsString,
    /// Where it is on this machine, for messages.
    pub path: PathBuf,
    pub file: File,
}

impl ConfFile {
    /// `<base>/<dir>/<name>` (e.g. `boot/aliyun_custom_image`, `os.conf`): the parents of `dir`
    /// resolved inside `base`, the last component of `dir` and the file itself never followed.
    /// `None` when either is absent.
    pub fn find(base: &Root, dir: &str, name: &str) -> io::Result<Option<ConfFile>> {
        let Some(entry) = absent_as_none(base.entry(dir))? else {
            return Ok(None);
        };
        let Some(dir_fd) = absent_as_none(open_dir(entry.dir.as_fd(), &entry.name))? else {
            return Ok(None);
        };
        ConfFile::open_in(dir_fd, OsStr::new(name), base.host_path(dir).join(name))
    }

    /// os.conf at a path on this machine (`--config FILE`, a partition's mount point): the
    /// directory's own parents are followed as given, the directory and the file are not.
    pub fn at(path: &Path) -> io::Result<Option<ConfFile>> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let Some(dir_fd) = absent_as_none(open_dir(rustix::fs::CWD, dir.as_os_str()))? else {
            return Ok(None);
        };
        ConfFile::open_in(dir_fd, name, path.to_owned())
    }

    fn open_in(dir: OwnedFd, name: &OsStr, path: PathBuf) -> io::Result<Option<ConfFile>> {
        let st = match absent_as_none(
            rustix::fs::statat(&dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from),
        )? {
            Some(st) => st,
            None => return Ok(None),
        };
        check_regular(&st, super::MAX_READ).map_err(|e| refusing_links(e, &st))?;
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC;
        let file = File::from(rustix::fs::openat(&dir, name, flags, Mode::empty()).map_err(refusing_loop)?);
        let now = rustix::fs::fstat(&file)?;
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
            return Err(io::Error::other("replaced while being opened"));
        }
        Ok(Some(ConfFile {
            dir,
            name: name.to_owned(),
            path,
            file,
        }))
    }
}

/// Opens a directory without following a link at its last component.
fn open_dir(at: std::os::fd::BorrowedFd, name: &OsStr) -> io::Result<OwnedFd> {
    let st = rustix::fs::statat(at, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink {
        return Err(io::Error::other(LINK_REFUSED));
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(at, name, flags, Mode::empty()).map_err(refusing_loop)
}

const LINK_REFUSED: &str = "a symbolic link; refusing to follow it";

/// `O_NOFOLLOW` met a link.
fn refusing_loop(e: Errno) -> io::Error {
    match e {
        Errno::LOOP => io::Error::other(LINK_REFUSED),
        e => e.into(),
    }
}

/// A link is refused (an error of applying: exit 1); a directory, FIFO, device or huge file is not
/// an os.conf at all (bad input: [`io::ErrorKind::InvalidData`], exit 2).
fn refusing_links(e: io::Error, st: &rustix::fs::Stat) -> io::Error {
    match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::Symlink => io::Error::other(LINK_REFUSED),
        _ => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
    }
}
