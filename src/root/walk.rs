//! Resolving a path inside the root without `openat2`, for kernels before 5.6 (CentOS 7 has 3.10):
//! the one chroot-like walk (`crate::walk`) over directory descriptors, each opened with
//! `O_NOFOLLOW`, links read and followed by hand against the root — an absolute target starts again
//! at the root, `..` never climbs above it, and after [`crate::walk::MAX_LINKS`] links the lookup
//! fails with `ELOOP`, as the kernel's own does.

use std::ffi::OsString;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt as _;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::walk::{Dirs, Found};

/// Resolves `path` below `root`: returns the directory that holds its last component, open, and that
/// component's name (a link there followed only when `follow_last`), or `None` for a path that ends
/// at a directory itself (`/`, `a/..`). A missing last component is not an error: the caller's
/// `openat` says `ENOENT`, or creates it.
pub fn walk(root: BorrowedFd, path: &str, follow_last: bool) -> io::Result<(OwnedFd, Option<OsString>)> {
    let Some(mut end) = crate::walk::walk(&Fds(root), path, follow_last)? else {
        return Err(Errno::NOENT.into());
    };
    let dir = end.dirs.pop().expect("the root stays");
    Ok((dir, end.last.map(|(name, _)| OsString::from_vec(name))))
}

/// The root's directories, each opened with `O_NOFOLLOW`, links read by hand.
struct Fds<'a>(BorrowedFd<'a>);

impl Dirs for Fds<'_> {
    type Dir = OwnedFd;
    type Leaf = ();

    fn root(&self) -> io::Result<OwnedFd> {
        self.0.try_clone_to_owned()
    }

    fn find(&self, dir: &OwnedFd, name: &[u8], last: bool) -> io::Result<Option<Found<OwnedFd, ()>>> {
        let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Ok(None),
            other => other?,
        };
        Ok(Some(match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => Found::Link(rustix::fs::readlinkat(dir, name, Vec::new())?.into_bytes(), ()),
            FileType::Directory if !last => {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                Found::Dir(rustix::fs::openat(dir, name, flags, Mode::empty())?)
            }
            _ => Found::Other(()),
        }))
    }

    fn step(&self, _steps: usize, _path: &str) -> io::Result<()> {
        Ok(())
    }

    fn too_many_links(&self, _path: &str) -> io::Error {
        Errno::LOOP.into()
    }

    fn not_dir(&self, _path: &str, _name: &[u8]) -> io::Error {
        Errno::NOTDIR.into()
    }
}
