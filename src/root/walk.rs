//! Resolving a path inside the root without `openat2`, for kernels before 5.6 (CentOS 7 has 3.10):
//! one component at a time, each opened with `O_NOFOLLOW`, links read and followed by hand against the
//! root — an absolute target starts again at the root, `..` never climbs above it, and after
//! [`MAX_LINKS`] links the lookup fails with `ELOOP`, as the kernel's own does.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt as _;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Links followed in one lookup before giving up, as Linux's `MAXSYMLINKS`.
pub const MAX_LINKS: usize = 40;

/// Resolves `path` below `root`: returns the directory that holds its last component, open, and that
/// component's name (a link there followed only when `follow_last`), or `None` for a path that ends
/// at a directory itself (`/`, `a/..`). A missing last component is not an error: the caller's
/// `openat` says `ENOENT`, or creates it.
pub fn walk(root: BorrowedFd, path: &str, follow_last: bool) -> io::Result<(OwnedFd, Option<OsString>)> {
    let mut dirs: Vec<OwnedFd> = Vec::new();
    let mut todo: VecDeque<OsString> = components(path.as_bytes()).collect();
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            dirs.pop();
            continue;
        }
        let cur = dirs.last().map_or(root, AsFd::as_fd);
        let last = todo.is_empty();
        let st = match rustix::fs::statat(cur, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) if last => return Ok((dup(cur)?, Some(name))),
            other => other?,
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink if !last || follow_last => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Errno::LOOP.into());
                }
                let target = rustix::fs::readlinkat(cur, &name, Vec::new())?.into_bytes();
                if target.first() == Some(&b'/') {
                    dirs.clear();
                }
                for part in components(&target).collect::<Vec<_>>().into_iter().rev() {
                    todo.push_front(part);
                }
            }
            _ if last => return Ok((dup(cur)?, Some(name))),
            FileType::Directory => {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                dirs.push(rustix::fs::openat(cur, &name, flags, Mode::empty())?);
            }
            _ => return Err(Errno::NOTDIR.into()),
        }
    }
    let cur = dirs.pop();
    Ok((cur.map_or_else(|| dup(root), Ok)?, None))
}

/// The names of a path, without empty and `.` ones.
fn components(path: &[u8]) -> impl Iterator<Item = OsString> + '_ {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsString::from_vec(c.to_vec()))
}

fn dup(fd: BorrowedFd) -> io::Result<OwnedFd> {
    fd.try_clone_to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_skip_empty_and_dot() {
        let names: Vec<OsString> = components(b"//a/./b//..").collect();
        assert_eq!(names, ["a", "b", ".."]);
    }
}
