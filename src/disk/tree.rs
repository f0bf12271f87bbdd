//! Files inside a filesystem image, read without mounting it: the types a reader returns and the
//! one path walk every filesystem shares — resolved inside that filesystem as a chroot would (`..`
//! stops at its root, an absolute link target starts again from it), with bounds on links followed
//! and steps taken, so a hostile image can neither escape nor loop; every component walked is paid
//! to the command's [`Work`], so many lookups cannot add up to a long walk either. It never writes.

use std::io;

use super::work::Work;

/// At most this many symbolic links are followed in one lookup (Linux's `MAXSYMLINKS`: ELOOP).
const MAX_LINKS: usize = 40;
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
    pub size: u64,
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
/// when `follow_last`, the last one too; `None` only when a name is absent.
pub(crate) fn resolve<T: Tree>(
    t: &T,
    work: &Work,
    path: &str,
    follow_last: bool,
) -> io::Result<Option<T::Node>> {
    let mut stack = vec![t.root()?];
    let mut pending: Vec<Vec<u8>> = components(path.as_bytes());
    let (mut links, mut steps) = (0, 0);
    while let Some(name) = pending.pop() {
        steps += 1;
        work.pay(1, 0)?;
        if steps > MAX_STEPS {
            return Err(corrupt(format!("{path}: more than {MAX_STEPS} path components")));
        }
        match name.as_slice() {
            b"." => continue,
            b".." => {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            _ => {}
        }
        let dir = stack.last().expect("the root stays");
        if t.meta(dir).file_type != FileType::Dir {
            return Err(corrupt(format!(
                "{path}: a component before {:?} is not a directory",
                String::from_utf8_lossy(&name)
            )));
        }
        let Some(node) = t.lookup(dir, &name)? else {
            return Ok(None);
        };
        if t.meta(&node).file_type == FileType::Symlink && (follow_last || !pending.is_empty()) {
            links += 1;
            if links > MAX_LINKS {
                return Err(corrupt(format!("{path}: more than {MAX_LINKS} links (a loop?)")));
            }
            let target = t.read(&node, MAX_LINK)?;
            if target.first() == Some(&b'/') {
                stack.truncate(1);
            }
            pending.extend(components(&target));
            continue;
        }
        stack.push(node);
    }
    Ok(stack.pop())
}

/// The non-empty components of `path`, last first (a stack to pop).
fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(<[u8]>::to_vec)
        .collect()
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
    t.read(&node, max).map(Some)
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
