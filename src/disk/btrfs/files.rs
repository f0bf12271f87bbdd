//! Files of a Btrfs: subvolumes (the root tree's `ROOT_ITEM`s, the default one named by the root
//! tree's `default` entry), inodes, directories (`DIR_ITEM` by name hash for a lookup, `DIR_INDEX`
//! in order for a listing) and which subvolume is the root (the module's rule, `btrfs/mod.rs`).

use std::io;
use std::sync::Mutex;

use super::btree::{Key, Root, Space, damaged};
use super::csum::CSUM_TREE;
use super::{Super, crc32c_raw};
use crate::disk::tree::{self, Entry, FileType, Meta, Tree, check_name};
use crate::disk::{ReadAt, Work, le16, le32, le64};

const INODE_ITEM: u8 = 1;
const INODE_REF: u8 = 12;
const ROOT_BACKREF: u8 = 144;
const DIR_ITEM: u8 = 84;
const DIR_INDEX: u8 = 96;
const ROOT_ITEM: u8 = 132;
const ROOT_TREE_DIR: u64 = 6;
const FS_TREE: u64 = 5;
/// Subvolume ids: the top level (5) and 256 up to 2^64 − 256.
const LAST_FREE: u64 = u64::MAX - 255;
/// A dir item's fixed part: location key, transid, data length, name length, type.
const DIR_HEAD: usize = 30;
/// Where the default subvolume keeps its root, when it does not itself hold one: Ubuntu's, Fedora's.
const ROOT_SUBVOLUMES: [&str; 2] = ["@", "root"];
/// What marks a root (as `image::view` marks one).
const ROOT_MARKS: [&str; 3] = ["etc/os-release", "usr/lib/os-release", "etc/shadow"];
/// Subvolumes kept resolved.
const MAX_TREES: usize = 64;
/// Subvolumes nested in one another, and directories nested in one subvolume, followed when a
/// subvolume's path is named.
const MAX_NESTING: usize = 256;

/// An open Btrfs, rooted at the subvolume holding the root.
pub struct Btrfs<R> {
    pub(super) space: Space<R>,
    root_tree: Root,
    /// The checksum tree's root (`csum`), if the root tree has one.
    pub(super) csum_tree: Option<Root>,
    /// The subvolume that is `/`.
    top: Subvolume,
    trees: Mutex<Vec<(u64, Subvol)>>,
    work: Work,
}

/// The subvolume a reader took for `/`, as `/etc/fstab`'s `subvol=` and `subvolid=` name one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subvolume {
    pub id: u64,
    /// Its path from the top level (`@/.snapshots/1/snapshot`; empty for the top level itself);
    /// `None` when it has no back reference to say it.
    pub path: Option<String>,
    /// Whether it is the filesystem's default subvolume: what a mount without `subvol=` gives.
    pub default: bool,
}

impl Subvolume {
    fn at(id: u64) -> Subvolume {
        Subvolume {
            id,
            path: None,
            default: false,
        }
    }

    /// For messages: `subvolume @`, `subvolume 5 (the top level)`, `subvolume 257`.
    pub fn describe(&self) -> String {
        match self.path.as_deref() {
            _ if self.id == FS_TREE => "subvolume 5 (the top level)".to_owned(),
            Some(p) if !p.is_empty() => format!("subvolume {p}"),
            _ => format!("subvolume {}", self.id),
        }
    }
}

/// A subvolume: its tree and its root directory's inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Subvol {
    tree: Root,
    dir: u64,
}

/// An inode of some subvolume, as a lookup found it.
#[derive(Debug, Clone)]
pub struct Inode {
    pub(super) tree: Root,
    pub(super) number: u64,
    pub(super) mode: u32,
    uid: u32,
    gid: u32,
    pub(super) size: u64,
    /// The inode's flags: `NODATASUM` (1) says its data has no checksums.
    pub(super) flags: u64,
    /// `mtime`'s seconds (the inode item's timespec; its nanoseconds are left out, as ext's are).
    mtime: i64,
}

impl<R: ReadAt> Btrfs<R> {
    /// The Btrfs whose superblock `sb` was read from `r`, rooted where the root is.
    pub(crate) fn open(r: R, work: Work, sb: Super) -> io::Result<Btrfs<R>> {
        let root_tree = Root {
            at: sb.root,
            level: sb.root_level,
        };
        let space = Space::open(r, work.clone(), sb)?;
        let mut fs = Btrfs {
            space,
            root_tree,
            csum_tree: None,
            top: Subvolume::at(FS_TREE),
            trees: Mutex::new(Vec::new()),
            work,
        };
        let default = match fs.dir_item(root_tree, ROOT_TREE_DIR, b"default")? {
            Some((loc, _)) if loc.ty == ROOT_ITEM => loc.id,
            Some(_) => return Err(damaged("the root tree's default entry names no subvolume")),
            None => FS_TREE,
        };
        fs.csum_tree = fs.root_item(CSUM_TREE)?.map(|(root, _)| root);
        fs.top = Subvolume::at(default);
        let mut chosen = fs.holds_root()?.then_some(default);
        let top = fs.subvol(default)?;
        for name in ROOT_SUBVOLUMES {
            if chosen.is_some() {
                break;
            }
            if let Some((loc, _)) = fs.dir_item(top.tree, top.dir, name.as_bytes())?
                && loc.ty == ROOT_ITEM
            {
                fs.top.id = loc.id;
                chosen = fs.holds_root()?.then_some(loc.id);
            }
        }
        let id = chosen.unwrap_or(default);
        fs.top = Subvolume {
            id,
            path: fs.path(id)?,
            default: id == default,
        };
        Ok(fs)
    }

    /// Subvolume `id`'s path from the top level (`@/.snapshots/1/snapshot`; empty for the top
    /// level): its `ROOT_BACKREF`, then the `INODE_REF`s of the directories it lies in; `None`
    /// when it has no back reference.
    fn path(&self, id: u64) -> io::Result<Option<String>> {
        let mut parts: Vec<String> = Vec::new();
        let mut sub = id;
        for _ in 0..MAX_NESTING {
            if sub == FS_TREE {
                parts.reverse();
                return Ok(Some(parts.join("/")));
            }
            let Some((parent, b)) = self.first(self.root_tree, sub, ROOT_BACKREF)? else {
                return Ok(None);
            };
            let name = named_at(&b, 16, "a subvolume's back reference")?;
            parts.push(name);
            let p = self.subvol(parent)?;
            let mut dir = le64(&b, 0);
            for _ in 0..MAX_NESTING {
                if dir == p.dir {
                    break;
                }
                let (up, b) = self
                    .first(p.tree, dir, INODE_REF)?
                    .ok_or_else(|| damaged(format!("directory {dir} has no reference to its parent")))?;
                parts.push(named_at(&b, 8, "an inode reference")?);
                dir = up;
            }
            sub = parent;
        }
        Err(damaged(format!(
            "subvolume {id} lies more than {MAX_NESTING} levels deep"
        )))
    }

    /// The first item of object `id` and type `ty` in `tree`: its key's offset and its data.
    fn first(&self, tree: Root, id: u64, ty: u8) -> io::Result<Option<(u64, Vec<u8>)>> {
        let mut found = None;
        self.space.items(
            tree,
            Key::new(id, ty, 0),
            Key::new(id, ty, u64::MAX),
            &mut |k, d| {
                found = Some((k.off, d.to_vec()));
                Ok(false)
            },
        )?;
        Ok(found)
    }

    /// Which subvolume is `/`.
    pub fn root_subvolume(&self) -> &Subvolume {
        &self.top
    }

    fn holds_root(&self) -> io::Result<bool> {
        for mark in ROOT_MARKS {
            if tree::resolve(self, &self.work, mark, false)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Subvolume `id`: its tree's root (from its `ROOT_ITEM`, whatever its offset) and root dir.
    fn subvol(&self, id: u64) -> io::Result<Subvol> {
        if id != FS_TREE && !(256..=LAST_FREE).contains(&id) {
            return Err(damaged(format!("{id} is not a subvolume id")));
        }
        let trees = self.trees.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, s)) = trees.iter().find(|(i, _)| *i == id) {
            return Ok(*s);
        }
        drop(trees);
        let (tree, dir) = self
            .root_item(id)?
            .ok_or_else(|| damaged(format!("subvolume {id} has no root item")))?;
        let s = Subvol { tree, dir };
        let mut trees = self.trees.lock().unwrap_or_else(|p| p.into_inner());
        if trees.len() >= MAX_TREES {
            trees.remove(0);
        }
        trees.push((id, s));
        Ok(s)
    }

    /// Tree `id`'s root (from its `ROOT_ITEM`, whatever its offset) and root directory's inode;
    /// `None` when the root tree has no such item.
    fn root_item(&self, id: u64) -> io::Result<Option<(Root, u64)>> {
        let Some((_, item)) = self.first(self.root_tree, id, ROOT_ITEM)? else {
            return Ok(None);
        };
        if item.len() < 239 {
            return Err(damaged(format!("tree {id}: its root item is cut short")));
        }
        let root = Root {
            at: le64(&item, 176),
            level: item[238],
        };
        if root.level >= super::btree::MAX_LEVEL {
            return Err(damaged(format!("tree {id}: level {}", root.level)));
        }
        Ok(Some((root, le64(&item, 168))))
    }

    /// The inode `number` of the subvolume whose tree is `tree`.
    fn inode(&self, tree: Root, number: u64) -> io::Result<Inode> {
        let item = self
            .space
            .get(tree, Key::new(number, INODE_ITEM, 0))?
            .ok_or_else(|| damaged(format!("inode {number} is named but absent")))?;
        if item.len() < 160 {
            return Err(damaged(format!("inode {number}: its item is cut short")));
        }
        Ok(Inode {
            tree,
            number,
            mode: le32(&item, 52),
            uid: le32(&item, 44),
            gid: le32(&item, 48),
            size: le64(&item, 16),
            flags: le64(&item, 64),
            mtime: le64(&item, 136) as i64,
        })
    }

    /// What a directory entry's location names: an inode here, or a subvolume's root directory.
    fn located(&self, tree: Root, loc: Key) -> io::Result<Inode> {
        match loc.ty {
            INODE_ITEM => self.inode(tree, loc.id),
            ROOT_ITEM => {
                let s = self.subvol(loc.id)?;
                self.inode(s.tree, s.dir)
            }
            ty => Err(damaged(format!(
                "a directory entry points at an item of type {ty}"
            ))),
        }
    }

    /// The entry `name` of directory `dir` in `tree`, by its name hash: (location, type byte).
    fn dir_item(&self, tree: Root, dir: u64, name: &[u8]) -> io::Result<Option<(Key, u8)>> {
        let Some(item) = self
            .space
            .get(tree, Key::new(dir, DIR_ITEM, u64::from(name_hash(name))))?
        else {
            return Ok(None);
        };
        // Names whose hashes collide share one item, one entry after another.
        let mut rest = &item[..];
        while !rest.is_empty() {
            let (loc, ty, found, len) = dir_entry(rest)?;
            if found == name {
                return Ok(Some((loc, ty)));
            }
            rest = &rest[len..];
        }
        Ok(None)
    }
}

/// One entry at the start of `b`: (location, type byte, name, bytes it takes), the name checked.
fn dir_entry(b: &[u8]) -> io::Result<(Key, u8, &[u8], usize)> {
    if b.len() < DIR_HEAD {
        return Err(damaged("a directory entry is cut short"));
    }
    let (data_len, name_len) = (usize::from(le16(b, 25)), usize::from(le16(b, 27)));
    let len = DIR_HEAD + name_len + data_len;
    let name = b
        .get(DIR_HEAD..DIR_HEAD + name_len)
        .filter(|_| len <= b.len())
        .ok_or_else(|| damaged("a directory entry's name runs past its item"))?;
    check_name(name, false).map_err(|why| {
        damaged(format!(
            "directory entry {:?} {why}",
            String::from_utf8_lossy(name)
        ))
    })?;
    Ok((Key::parse(b), b[29], name, len))
}

/// The name stored at `at` of `b` as a 16-bit length and its bytes, checked (`what` holds it).
fn named_at(b: &[u8], at: usize, what: &str) -> io::Result<String> {
    let name = b
        .get(at..at + 2)
        .map(|l| usize::from(le16(l, 0)))
        .and_then(|len| b.get(at + 2..at + 2 + len))
        .ok_or_else(|| damaged(format!("{what} is cut short")))?;
    check_name(name, false).map_err(|why| damaged(format!("{what}: a name that {why}")))?;
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// Btrfs's hash of a directory entry's name: CRC-32C from seed `!1`, not inverted.
pub(crate) fn name_hash(name: &[u8]) -> u32 {
    crc32c_raw(!1, name)
}

fn file_type(mode: u32) -> FileType {
    match mode & 0o170000 {
        0o100000 => FileType::File,
        0o040000 => FileType::Dir,
        0o120000 => FileType::Symlink,
        _ => FileType::Other,
    }
}

impl<R: ReadAt> Tree for Btrfs<R> {
    type Node = Inode;

    fn root(&self) -> io::Result<Inode> {
        let s = self.subvol(self.top.id)?;
        let root = self.inode(s.tree, s.dir)?;
        if file_type(root.mode) != FileType::Dir {
            return Err(damaged(format!(
                "the root of {} is not a directory",
                self.top.describe()
            )));
        }
        Ok(root)
    }

    fn meta(&self, n: &Inode) -> Meta {
        Meta {
            file_type: file_type(n.mode),
            mode: n.mode & 0o7777,
            uid: n.uid,
            gid: n.gid,
            size: n.size,
            mtime: Some(n.mtime),
        }
    }

    fn lookup(&self, dir: &Inode, name: &[u8]) -> io::Result<Option<Inode>> {
        self.dir_item(dir.tree, dir.number, name)?
            .map(|(loc, _)| self.located(dir.tree, loc))
            .transpose()
    }

    fn list(&self, dir: &Inode) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let (lo, hi) = (
            Key::new(dir.number, DIR_INDEX, 0),
            Key::new(dir.number, DIR_INDEX, u64::MAX),
        );
        self.space.items(dir.tree, lo, hi, &mut |_, data| {
            let (loc, ty, name, len) = dir_entry(data)?;
            bytes += len as u64;
            if bytes > tree::MAX_DIR {
                return Err(damaged(format!(
                    "directory {} is over {} bytes",
                    dir.number,
                    tree::MAX_DIR
                )));
            }
            let file_type = match (loc.ty, ty) {
                (ROOT_ITEM, _) | (_, 2) => FileType::Dir,
                (_, 1) => FileType::File,
                (_, 7) => FileType::Symlink,
                _ => FileType::Other,
            };
            out.push(Entry {
                name: String::from_utf8_lossy(name).into_owned(),
                file_type,
            });
            Ok(true)
        })?;
        Ok(out)
    }

    fn read(&self, n: &Inode, max: u64) -> io::Result<Vec<u8>> {
        self.data(n, max)
    }
}
