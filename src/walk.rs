//! Walk: the one chroot-like path walk, for a directory tree on this machine (`root/walk.rs`, by
//! file descriptors, on kernels without openat2) and a filesystem inside a disk image (`disk::tree`,
//! by inodes): `..` never climbs above the root, an absolute link target starts again from it, and
//! at most [`MAX_LINKS`] links are followed in one lookup. What a name is, each tree says ([`Dirs`]).

use std::io;

/// Links followed in one lookup before giving up, as Linux's `MAXSYMLINKS` (`ELOOP`).
pub const MAX_LINKS: usize = 40;

/// What a name in a directory is.
pub enum Found<D, L> {
    /// A directory to walk on.
    Dir(D),
    /// A symbolic link: its target, and the link itself.
    Link(Vec<u8>, L),
    /// Anything else — or a directory ending the path, which need not be opened.
    Other(L),
}

/// A tree to walk: directories of type `Dir`, other entries seen as `Leaf`.
pub trait Dirs {
    type Dir;
    type Leaf;
    /// The root, where `/` and a `..` at the top lead.
    fn root(&self) -> io::Result<Self::Dir>;
    /// What `name` in `dir` is, a link not followed; `None` when absent. `last`: it ends the path.
    fn find(
        &self,
        dir: &Self::Dir,
        name: &[u8],
        last: bool,
    ) -> io::Result<Option<Found<Self::Dir, Self::Leaf>>>;
    /// Called before each component (link targets' included) with how many this lookup walked.
    fn step(&self, steps: usize, path: &str) -> io::Result<()>;
    /// More than [`MAX_LINKS`] links in one lookup.
    fn too_many_links(&self, path: &str) -> io::Error;
    /// A component other than the last, `name`, is not a directory.
    fn not_dir(&self, path: &str, name: &[u8]) -> io::Error;
}

/// Where a walk ends: the directories from the root to the one holding the last component, and
/// that component (`None` when the path ends at a directory itself: `/`, `a/..`) with what it is
/// (`None`: absent).
pub struct End<T: Dirs + ?Sized> {
    pub dirs: Vec<T::Dir>,
    pub last: Option<(Vec<u8>, Option<Entry<T>>)>,
}

/// What a name in `T` is.
pub type Entry<T> = Found<<T as Dirs>::Dir, <T as Dirs>::Leaf>;

/// Walks `path` (relative paths from the root) in `t`; a link as the last component is followed
/// only when `follow_last`. `None` when a directory on the way is absent.
pub fn walk<T: Dirs>(t: &T, path: &str, follow_last: bool) -> io::Result<Option<End<T>>> {
    let mut dirs = vec![t.root()?];
    let mut todo = components(path.as_bytes());
    let (mut links, mut steps) = (0, 0);
    while let Some(name) = todo.pop() {
        steps += 1;
        t.step(steps, path)?;
        if name == b".." {
            if dirs.len() > 1 {
                dirs.pop();
            }
            continue;
        }
        let last = todo.is_empty();
        let cur = dirs.last().expect("the root stays");
        match t.find(cur, &name, last)? {
            None if last => {
                return Ok(Some(End {
                    dirs,
                    last: Some((name, None)),
                }));
            }
            None => return Ok(None),
            Some(Found::Link(target, _)) if !last || follow_last => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(t.too_many_links(path));
                }
                if target.first() == Some(&b'/') {
                    dirs.truncate(1);
                }
                todo.extend(components(&target));
            }
            Some(found) if last => {
                return Ok(Some(End {
                    dirs,
                    last: Some((name, Some(found))),
                }));
            }
            Some(Found::Dir(d)) => dirs.push(d),
            Some(_) => return Err(t.not_dir(path, &name)),
        }
    }
    Ok(Some(End { dirs, last: None }))
}

/// The names of a path without empty and `.` ones, last first (a stack to pop).
fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .rev()
        .map(<[u8]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_skip_empty_and_dot() {
        assert_eq!(components(b"//a/./b//.."), [&b".."[..], b"b", b"a"]);
    }
}
