//! Root: a handle on the target root, opened once, through which every path inside it is resolved as
//! a chroot would resolve it: an absolute or `../` symbolic link points back into the root, `..` never
//! climbs above it. Reads take only regular files, without blocking, up to [`MAX_READ`] bytes; only
//! `ENOENT` means "absent". Nothing here writes files: the executor does, through [`Root::entry`];
//! only directories are made ([`Root::dir`]) and removed when empty ([`Root::remove_empty_dir`]),
//! for the few writers beside the executor (the log, the status record, install).

mod conf;
mod walk;

pub use conf::ConfFile;

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read as _};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

/// The largest file osconf reads under a root: configuration files are far smaller, and a link to
/// `/dev/zero` or a huge planted file must not exhaust memory at boot.
pub const MAX_READ: u64 = 4 << 20;

/// The largest file osconf replaces and so must keep a copy of: its own binary (`install`, a debug
/// build is some 30 MiB) is the largest; still a bound.
pub const MAX_KEEP: u64 = 128 << 20;

/// How paths are resolved inside the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2(RESOLVE_IN_ROOT)` (Linux 5.6 and later).
    Kernel,
    /// A walk component by component with `O_NOFOLLOW`, following links by hand (older kernels).
    Walk,
}

/// An I/O error with the path (on this machine) it is about.
#[derive(Debug)]
pub struct Error {
    pub path: PathBuf,
    pub error: io::Error,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

impl std::error::Error for Error {}

/// A directory entry, for operations on the entry itself (rename, unlink, readlink, create): its
/// directory, resolved inside the root and open, and its last name, not resolved.
#[derive(Debug)]
pub struct Entry {
    pub dir: OwnedFd,
    pub name: OsString,
}

/// A handle on the target root; a clone shares the one open directory.
#[derive(Debug, Clone)]
pub struct Root {
    fd: Arc<OwnedFd>,
    path: PathBuf,
    resolver: Resolver,
}

impl Root {
    /// Opens the root at `path` (a path on this machine), resolving with the kernel where it can.
    pub fn open(path: &Path) -> io::Result<Root> {
        Root::open_with(path, None)
    }

    /// Opens the root; `resolver` forces one way of resolving (tests prove both), `None` probes.
    pub fn open_with(path: &Path, resolver: Option<Resolver>) -> io::Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let resolver = resolver.or_else(forced_resolver).unwrap_or_else(|| {
            // Where the kernel lacks openat2 (ENOSYS) or a sandbox refuses it (EPERM), walk.
            match rustix::fs::openat2(
                &fd,
                ".",
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT,
            ) {
                Ok(_) => Resolver::Kernel,
                Err(_) => Resolver::Walk,
            }
        });
        Ok(Root {
            fd: Arc::new(fd),
            path: path.to_owned(),
            resolver,
        })
    }

    /// The root as given, on this machine.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn resolver(&self) -> Resolver {
        self.resolver
    }

    /// The root directory itself, open for reading (a `syncfs` target).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Where a target path (`/etc/hosts`) lies on this machine, for messages only: the real file is
    /// whatever resolving inside the root finds.
    pub fn host_path(&self, path: &str) -> PathBuf {
        self.path.join(path.trim_start_matches('/'))
    }

    /// Wraps an error with the path it is about.
    pub fn error(&self, path: &str, error: io::Error) -> Error {
        Error {
            path: self.host_path(path),
            error,
        }
    }

    /// Opens `path` with `flags`; a link at the last component is followed only when `follow`.
    pub fn open_in(&self, path: &str, flags: OFlags, follow: bool) -> io::Result<OwnedFd> {
        // openat2 refuses with O_PATH any flag but O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC.
        let flags = match flags.contains(OFlags::PATH) {
            true => flags | OFlags::CLOEXEC,
            false => flags | OFlags::CLOEXEC | OFlags::NOCTTY,
        };
        match self.resolver {
            Resolver::Kernel => {
                let flags = if follow { flags } else { flags | OFlags::NOFOLLOW };
                let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
                let mut tries = 0;
                loop {
                    match rustix::fs::openat2(&self.fd, relative(path), flags, Mode::empty(), resolve) {
                        // A rename or mount raced with the lookup: the kernel asks for a retry.
                        Err(Errno::AGAIN) if tries < 8 => tries += 1,
                        other => return Ok(other?),
                    }
                }
            }
            Resolver::Walk => {
                let (dir, last) = walk::walk(self.fd.as_fd(), path, follow)?;
                Ok(match last {
                    Some(name) => rustix::fs::openat(&dir, &name, flags | OFlags::NOFOLLOW, Mode::empty())?,
                    None => rustix::fs::openat(&dir, ".", flags, Mode::empty())?,
                })
            }
        }
    }

    /// The entry at `path`: its directory (resolved inside the root, links followed) and its name.
    /// `path` must end in a name (not `/`, `.` or `..`).
    pub fn entry(&self, path: &str) -> io::Result<Entry> {
        let (parent, name) = split(path)?;
        let dir = self.open_in(parent, OFlags::RDONLY | OFlags::DIRECTORY, true)?;
        Ok(Entry { dir, name })
    }

    /// What is at `path` itself (a link is not followed); `None` when nothing is.
    pub fn lstat(&self, path: &str) -> io::Result<Option<Stat>> {
        absent_as_none(
            self.open_in(path, OFlags::PATH, false)
                .and_then(|fd| Ok(rustix::fs::fstat(fd)?)),
        )
    }

    /// The bytes of the regular file at `path` (links followed inside the root); `None` when absent.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        self.read_up_to(path, MAX_READ)
    }

    /// [`Root::read`] with another bound.
    pub fn read_up_to(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
        self.open_regular(path, true, limit)
            .and_then(|f| f.map(|(file, _)| read_bounded(file, limit)).transpose())
            .map_err(|e| self.error(path, e))
    }

    /// Opens the regular file at `path` for reading, with its status; `None` when nothing is there.
    /// Its type is checked before it is opened (opening a device can have effects: a watchdog arms),
    /// and opening never blocks (a FIFO). With `follow` false a link there is an error.
    fn open_regular(&self, path: &str, follow: bool, limit: u64) -> io::Result<Option<(File, Stat)>> {
        let Some(before) = absent_as_none(
            self.open_in(path, OFlags::PATH, follow)
                .and_then(|fd| Ok(rustix::fs::fstat(fd)?)),
        )?
        else {
            return Ok(None);
        };
        check_regular(&before, limit)?;
        let file = File::from(self.open_in(path, OFlags::RDONLY | OFlags::NONBLOCK, follow)?);
        let st = rustix::fs::fstat(&file)?;
        if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino) {
            return Err(io::Error::other("replaced while being opened"));
        }
        Ok(Some((file, st)))
    }

    /// The target written in the link at `path`; `None` when nothing or something else is there.
    pub fn read_link(&self, path: &str) -> io::Result<Option<PathBuf>> {
        let fd = match absent_as_none(self.open_in(path, OFlags::PATH, false))? {
            Some(fd) => fd,
            None => return Ok(None),
        };
        if FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) != FileType::Symlink {
            return Ok(None);
        }
        // An empty name reads the link the O_PATH descriptor stands for (Linux 2.6.39 and later).
        let target = rustix::fs::readlinkat(&fd, "", Vec::new())?;
        Ok(Some(PathBuf::from(OsString::from_vec(target.into_bytes()))))
    }

    /// The directory at `dir` (links followed inside the root) as a root of its own, for paths
    /// that must stay below it (the first partition under `/boot`).
    pub fn subdir(&self, dir: &str) -> io::Result<Root> {
        Ok(Root {
            fd: Arc::new(self.open_in(dir, OFlags::RDONLY | OFlags::DIRECTORY, true)?),
            path: self.host_path(dir),
            resolver: self.resolver,
        })
    }

    /// The directory at `dir`, open (links followed inside the root); `None` when it is missing
    /// and not to be created. With `create`, each missing directory on the way is made (0755).
    pub fn dir(&self, dir: &str, create: bool) -> io::Result<Option<OwnedFd>> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY;
        if create {
            let mut at = String::new();
            for part in dir.split('/').filter(|p| !p.is_empty()) {
                at = format!("{at}/{part}");
                let entry = self.entry(&at)?;
                match rustix::fs::mkdirat(&entry.dir, &entry.name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        absent_as_none(self.open_in(dir, flags, true))
    }

    /// Removes the directory `dir` (itself, not what a link there points at) when it is empty:
    /// `Ok(false)` when it is not, or is gone already.
    pub fn remove_empty_dir(&self, dir: &str) -> io::Result<bool> {
        let Some(entry) = absent_as_none(self.entry(dir))? else {
            return Ok(false);
        };
        match rustix::fs::unlinkat(&entry.dir, &entry.name, rustix::fs::AtFlags::REMOVEDIR) {
            Ok(()) => Ok(true),
            Err(Errno::NOTEMPTY | Errno::EXIST | Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The names in directory `dir` (links followed inside the root), unsorted; empty when absent.
    pub fn list(&self, dir: &str) -> io::Result<Vec<OsString>> {
        let Some(fd) = absent_as_none(self.open_in(dir, OFlags::RDONLY | OFlags::DIRECTORY, true))? else {
            return Ok(Vec::new());
        };
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&fd)? {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name));
            }
        }
        Ok(names)
    }
}

/// In test builds with the `test-hooks` feature, `OSCONF_TEST_RESOLVER=walk` forces the walk, so the
/// binary's tests prove the fallback of old kernels too.
fn forced_resolver() -> Option<Resolver> {
    #[cfg(feature = "test-hooks")]
    if std::env::var_os("OSCONF_TEST_RESOLVER").is_some_and(|v| v == "walk") {
        return Some(Resolver::Walk);
    }
    None
}

/// A target path (`/etc/hosts`) relative to the root (`etc/hosts`; `.` for the root itself).
fn relative(path: &str) -> &str {
    match path.trim_start_matches('/') {
        "" => ".",
        rel => rel,
    }
}

/// `/etc/hosts` → (`/etc`, `hosts`).
fn split(path: &str) -> io::Result<(&str, OsString)> {
    let path = path.trim_end_matches('/');
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    if matches!(name, "" | "." | "..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path does not end in a file name",
        ));
    }
    Ok((parent, OsString::from(name)))
}

/// Only `ENOENT` means "absent"; every other error stays an error.
pub fn absent_as_none<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Refuses anything but a regular file no larger than `limit` bytes.
pub fn check_regular(st: &Stat, limit: u64) -> io::Result<()> {
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile if st.st_size as u64 > limit => return Err(too_large(limit)),
        FileType::RegularFile => return Ok(()),
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice | FileType::BlockDevice => "a device",
        FileType::Unknown => "of an unknown kind",
    };
    Err(io::Error::other(format!("not a regular file ({kind})")))
}

/// Reads an open file, failing if it holds more than `limit` bytes (it may grow after `fstat`).
pub fn read_bounded(file: File, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

fn too_large(limit: u64) -> io::Error {
    io::Error::other(format!("larger than {} MiB; refusing to read it", limit >> 20))
}

#[cfg(test)]
mod tests;
