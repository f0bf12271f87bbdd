//! Files inside a filesystem image, read without mounting it: the types a reader returns and the
//! one path walk every filesystem shares — resolved inside that filesystem as a chroot would (`..`
//! stops at its root, an absolute link target starts again from it), with bounds on links followed
//! and steps taken, so a hostile image can neither escape nor loop; every component walked is paid
//! to the command's [`Work`], so many lookups cannot add up to a long walk either. It never writes.

use std::io;

use super::work::Work;
use crate::walk::{self, Found};

/// At most this many path components are walked in one lookup, link targets included.
const MAX_STEPS: usize = 4096;
/// The longest link target read (`PATH_MAX`).
pub(crate) const MAX_LINK: u64 = 4096;
/// The largest file `read_file` returns; a bigger one is an error, never a huge allocation.
pub const MAX_FILE: u64 = 64 << 20;
/// The largest directory read.
pub(crate) const MAX_DIR: u64 = 32 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileType {
    File,
    Dir,
    Symlink,
    /// A device, FIFO or socket.
    Other,
}

/// What a lookup tells about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub file_type: FileType,
    /// Permission bits (FAT, which has none: 0o755, as Linux's vfat shows them by default).
    pub mode: u32,
    pub uid: u32,
    /// The group (FAT, which has none: 0).
    pub gid: u32,
    pub size: u64,
    /// The modification time in seconds since the epoch (FAT's: its local time read as UTC, in
    /// 2-second steps); `None` where there is none (FAT's root directory, a date no calendar has).
    pub mtime: Option<i64>,
}

/// One name in a directory (`.` and `..` left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name (ext: its bytes, invalid UTF-8 replaced; FAT: the long name, else the 8.3 name).
    pub name: String,
    pub file_type: FileType,
}

/// A filesystem whose directories can be walked. Errors are `InvalidData` naming what is corrupt.
pub(crate) trait Tree {
    type Node: Clone;
    fn root(&self) -> io::Result<Self::Node>;
    fn meta(&self, node: &Self::Node) -> Meta;
    /// The entry `name` of directory `dir`, if there is one.
    fn lookup(&self, dir: &Self::Node, name: &[u8]) -> io::Result<Option<Self::Node>>;
    fn list(&self, dir: &Self::Node) -> io::Result<Vec<Entry>>;
    /// The contents of a regular file (or a link's target), at most `max` bytes or an error.
    fn read(&self, node: &Self::Node, max: u64) -> io::Result<Vec<u8>>;
}

pub(crate) use super::corrupt;

/// Why a name read from a directory cannot be one, if it cannot: empty, holding `/` or NUL, or
/// `.`/`..` where `dots` (that very one, in its place) is false. Every filesystem's reader asks.
pub(crate) fn check_name(name: &[u8], dots: bool) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.contains(&b'/') {
        return Err("holds a slash");
    }
    if name.contains(&0) {
        return Err("holds a NUL byte");
    }
    if (name == b"." || name == b"..") && !dots {
        return Err("is a dot entry out of its place");
    }
    Ok(())
}

/// The node `path` names (relative paths are taken from the root), following links on the way and,
/// when `follow_last`, the last one too; `None` only when a name is absent. The walk is the one
/// `crate::walk` does for a root on this machine.
pub(crate) fn resolve<T: Tree>(
    t: &T,
    work: &Work,
    path: &str,
    follow_last: bool,
) -> io::Result<Option<T::Node>> {
    let Some(mut end) = walk::walk(&Walker { t, work }, path, follow_last)? else {
        return Ok(None);
    };
    Ok(match end.last {
        None => end.dirs.pop(),
        Some((_, None)) => None,
        Some((_, Some(Found::Dir(n) | Found::Link(_, n) | Found::Other(n)))) => Some(n),
    })
}

/// A [`Tree`] as the walk sees it, each component paid to the command's [`Work`].
struct Walker<'a, T> {
    t: &'a T,
    work: &'a Work,
}

impl<T: Tree> walk::Dirs for Walker<'_, T> {
    type Dir = T::Node;
    type Leaf = T::Node;

    fn root(&self) -> io::Result<T::Node> {
        self.t.root()
    }

    fn find(&self, dir: &T::Node, name: &[u8], _last: bool) -> io::Result<Option<Found<T::Node, T::Node>>> {
        let t = self.t;
        if t.meta(dir).file_type != FileType::Dir {
            return Err(corrupt(format!(
                "a component before {:?} is not a directory",
                String::from_utf8_lossy(name)
            )));
        }
        let Some(node) = t.lookup(dir, name)? else {
            return Ok(None);
        };
        Ok(Some(match t.meta(&node).file_type {
            FileType::Dir => Found::Dir(node),
            FileType::Symlink => Found::Link(t.read(&node, MAX_LINK)?, node),
            _ => Found::Other(node),
        }))
    }

    fn step(&self, steps: usize, path: &str) -> io::Result<()> {
        self.work.pay(1, 0)?;
        if steps > MAX_STEPS {
            return Err(corrupt(format!("{path}: more than {MAX_STEPS} path components")));
        }
        Ok(())
    }

    fn too_many_links(&self, path: &str) -> io::Error {
        corrupt(format!("{path}: more than {} links (a loop?)", walk::MAX_LINKS))
    }

    fn not_dir(&self, path: &str, name: &[u8]) -> io::Error {
        corrupt(format!(
            "{path}: a component before {:?} is not a directory",
            String::from_utf8_lossy(name)
        ))
    }
}

/// The node at `path` when it is of type `want`, `None` when absent, an error when it is another.
fn resolve_as<T: Tree>(
    t: &T,
    work: &Work,
    path: &str,
    follow: bool,
    want: FileType,
) -> io::Result<Option<T::Node>> {
    let Some(node) = resolve(t, work, path, follow)? else {
        return Ok(None);
    };
    let found = t.meta(&node).file_type;
    if found != want {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{path}: a {found:?}, not a {want:?}"),
        ));
    }
    Ok(Some(node))
}

/// The regular file at `path` (links followed), `None` when absent; anything but a regular file, or
/// one larger than `max`, is an error.
pub(crate) fn read_file<T: Tree>(t: &T, work: &Work, path: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
    let Some(node) = resolve_as(t, work, path, true, FileType::File)? else {
        return Ok(None);
    };
    let size = t.meta(&node).size;
    if size > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{path}: {size} bytes, more than the {max} read"),
        ));
    }
    t.read(&node, max)
        .map(Some)
        .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
}

/// The entries of the directory at `path` (links followed), `None` when absent.
pub(crate) fn list_dir<T: Tree>(t: &T, work: &Work, path: &str) -> io::Result<Option<Vec<Entry>>> {
    resolve_as(t, work, path, true, FileType::Dir)?
        .map(|n| t.list(&n))
        .transpose()
}

/// What `path` is; `follow` decides whether a last component that is a link is followed.
pub(crate) fn metadata<T: Tree>(t: &T, work: &Work, path: &str, follow: bool) -> io::Result<Option<Meta>> {
    Ok(resolve(t, work, path, follow)?.map(|n| t.meta(&n)))
}

/// A link's target, `None` when absent; an error when `path` is not a link.
pub(crate) fn read_link<T: Tree>(t: &T, work: &Work, path: &str) -> io::Result<Option<Vec<u8>>> {
    resolve_as(t, work, path, false, FileType::Symlink)?
        .map(|n| t.read(&n, MAX_LINK))
        .transpose()
}
