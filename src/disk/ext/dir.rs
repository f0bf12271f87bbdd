//! ext directories, read linearly block by block — an htree (`dir_index`) directory is one too: its
//! index lives in entries with inode 0 that a linear reader skips, as e2fsck and old kernels read it
//! — and inline ones (`inline_data`: the parent in i_block's first 4 bytes, entries after it and in
//! `system.data`). Every entry's lengths are checked against its block, and its name: one holding
//! `/` or NUL, an empty one, or `.`/`..` anywhere but the first two entries of the first block is
//! damage (e2fsck's rule), never a name that a caller could join onto a path; so is an entry other
//! than those two that names the root directory (a tree that contains itself).
//!
//! A directory read is kept, its names sorted (`Listing`), for the lookups that follow: a path
//! walk asks the same directories again and again (every file of /etc is looked up from the root),
//! which would otherwise read a directory of n entries n times.

use std::io;
use std::sync::Arc;

use super::csum;
use super::fs::{Ext, FLAG_INLINE_DATA, Inode};
use crate::disk::tree::{Entry, FileType, MAX_DIR, Meta, Tree, check_name, corrupt};
use crate::disk::{ReadAt, le32};

const ROOT_INODE: u32 = 2;

/// One directory as read: its bytes and its entries, in their order and sorted by name.
pub(crate) struct Listing {
    data: Vec<u8>,
    /// (where the name starts in `data`, its length, inode, type byte: 0 without `filetype`).
    entries: Vec<(usize, u8, u32, u8)>,
    /// Indices into `entries`, sorted by name (directory order among equal names).
    sorted: Vec<u32>,
}

impl Listing {
    /// Its bytes as read: what the reader's cache of directories weighs it by.
    pub(crate) fn size(&self) -> usize {
        self.data.len()
    }

    fn name(&self, i: usize) -> &[u8] {
        let (at, len, ..) = self.entries[i];
        &self.data[at..at + usize::from(len)]
    }

    /// The inode of the first entry named `name`.
    fn find(&self, name: &[u8]) -> Option<u32> {
        let i = self.sorted.partition_point(|&i| self.name(i as usize) < name);
        let &i = self.sorted.get(i)?;
        (self.name(i as usize) == name).then(|| self.entries[i as usize].2)
    }
}

/// The entries of one directory block (or inline region) `data[start..end]`, of directory inode
/// `dir`; `first`: the directory's first block, which starts with `.` and `..`.
fn entries(
    dir: u32,
    data: &[u8],
    (start, end): (usize, usize),
    block_size: u64,
    first: bool,
    out: &mut Vec<(usize, u8, u32, u8)>,
) -> io::Result<()> {
    let b = &data[start..end];
    let mut at = 0;
    let mut index = 0;
    while at + 8 <= b.len() {
        let rec = super::rec_len(b, at, block_size);
        let name_len = usize::from(b[at + 6]);
        if rec < 8 || !rec.is_multiple_of(4) || at + rec > b.len() || 8 + name_len > rec {
            return Err(corrupt(format!(
                "ext: directory inode {dir}: entry at byte {at}: record length {rec}, name length {name_len}"
            )));
        }
        let inode = le32(b, at);
        let name = &b[at + 8..at + 8 + name_len];
        if inode != 0 {
            let dots = first && index < 2 && name.len() == index + 1;
            // Only `.` and `..` name the root directory: any other entry would make it its own
            // descendant, a tree without end.
            let why = check_name(name, dots)
                .err()
                .or((inode == ROOT_INODE && !dots).then_some("links the root directory"));
            if let Some(why) = why {
                return Err(corrupt(format!(
                    "ext: directory inode {dir}: entry at byte {at}: the name {:?} {why}",
                    String::from_utf8_lossy(name)
                )));
            }
            out.push((start + at + 8, b[at + 6], inode, b[at + 7]));
        }
        at += rec;
        index += 1;
    }
    Ok(())
}

fn file_type(mode: u16) -> FileType {
    match mode & 0xF000 {
        0x8000 => FileType::File,
        0x4000 => FileType::Dir,
        0xA000 => FileType::Symlink,
        _ => FileType::Other,
    }
}

impl<R: ReadAt> Ext<R> {
    /// Directory `dir`'s entries (`.` and `..` included), read once and kept for later lookups.
    fn listing(&self, dir: &Inode) -> io::Result<Arc<Listing>> {
        if let Some(hit) = self.dirs.get(u64::from(dir.number)) {
            return Ok(hit);
        }
        if !dir.is_dir() {
            return Err(corrupt(format!("ext: inode {} is not a directory", dir.number)));
        }
        let inline = dir.flags & FLAG_INLINE_DATA != 0;
        let (data, regions): (Vec<u8>, Vec<(usize, usize)>) = if inline {
            let mut data = dir.block.to_vec();
            data.extend(self.inline_rest(dir)?);
            let (head, all) = (dir.block.len(), data.len());
            (data, vec![(4, head), (head, all)])
        } else {
            let data = self.data(dir, MAX_DIR)?;
            let bs = self.block_size as usize;
            let regions = (0..data.len())
                .step_by(bs)
                .map(|s| (s, (s + bs).min(data.len())))
                .collect();
            (data, regions)
        };
        let mut found = Vec::new();
        let bs = self.block_size as usize;
        for region in regions {
            if let (Some(seed), false, true) = (dir.seed, inline, region.1 - region.0 == bs) {
                csum::dir_block(
                    seed,
                    dir.number,
                    dir.flags,
                    region.0 / bs,
                    &data[region.0..region.1],
                )?;
            }
            // An inline directory stores no `.` and `..` at all (its parent is i_block's first word).
            let first = region.0 == 0 && !inline;
            entries(dir.number, &data, region, self.block_size, first, &mut found)?;
        }
        let mut listing = Listing {
            data,
            entries: found,
            sorted: Vec::new(),
        };
        let mut sorted: Vec<u32> = (0..listing.entries.len() as u32).collect();
        sorted.sort_by(|&a, &b| listing.name(a as usize).cmp(listing.name(b as usize)));
        listing.sorted = sorted;
        let listing = Arc::new(listing);
        self.dirs.put(u64::from(dir.number), listing.clone());
        Ok(listing)
    }

    fn dirent_type(&self, inode: u32, type_byte: u8) -> io::Result<FileType> {
        if self.has_filetype() {
            return Ok(match type_byte {
                1 => FileType::File,
                2 => FileType::Dir,
                7 => FileType::Symlink,
                _ => FileType::Other,
            });
        }
        Ok(file_type(self.inode(inode)?.mode))
    }
}

impl<R: ReadAt> Tree for Ext<R> {
    type Node = Inode;

    fn root(&self) -> io::Result<Inode> {
        let root = self.inode(ROOT_INODE)?;
        if !root.is_dir() {
            return Err(corrupt("ext: the root inode is not a directory"));
        }
        Ok(root)
    }

    fn meta(&self, n: &Inode) -> Meta {
        Meta {
            file_type: file_type(n.mode),
            mode: u32::from(n.mode & 0o7777),
            uid: n.uid,
            gid: n.gid,
            size: n.size,
            mtime: Some(i64::from(n.mtime)),
        }
    }

    fn lookup(&self, dir: &Inode, name: &[u8]) -> io::Result<Option<Inode>> {
        self.listing(dir)?.find(name).map(|n| self.inode(n)).transpose()
    }

    fn list(&self, dir: &Inode) -> io::Result<Vec<Entry>> {
        let listing = self.listing(dir)?;
        let mut out = Vec::new();
        for (i, &(_, _, inode, type_byte)) in listing.entries.iter().enumerate() {
            let name = listing.name(i);
            if name != b"." && name != b".." {
                out.push(Entry {
                    file_type: self.dirent_type(inode, type_byte)?,
                    name: String::from_utf8_lossy(name).into_owned(),
                });
            }
        }
        Ok(out)
    }

    fn read(&self, n: &Inode, max: u64) -> io::Result<Vec<u8>> {
        self.data(n, max)
    }
}
