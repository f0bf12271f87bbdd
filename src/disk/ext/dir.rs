//! ext directories, read linearly block by block — an htree (`dir_index`) directory is one too: its
//! index lives in entries with inode 0 that a linear reader skips, as e2fsck and old kernels read it
//! — and inline ones (`inline_data`: the parent in i_block's first 4 bytes, entries after it and in
//! `system.data`). Every entry's lengths are checked against its block.

use std::io;

use super::fs::{Ext, FLAG_INLINE_DATA, Inode};
use crate::disk::tree::{Entry, FileType, MAX_DIR, Meta, Tree, corrupt};
use crate::disk::{ReadAt, le16, le32};

const ROOT_INODE: u32 = 2;

/// One directory entry: inode, name, and the type byte (0 without the `filetype` feature).
struct Dirent<'a> {
    inode: u32,
    name: &'a [u8],
    file_type: u8,
}

/// The entries of one directory block (or inline region) `b`, of directory inode `dir`.
fn entries<'a>(dir: u32, b: &'a [u8], block_size: u64, out: &mut Vec<Dirent<'a>>) -> io::Result<()> {
    let mut at = 0;
    while at + 8 <= b.len() {
        let raw = usize::from(le16(b, at + 4));
        // 64 KiB blocks store a whole-block record as 0 or 65535 (ext4_rec_len_from_disk).
        let rec = if block_size == 65536 && (raw == 0 || raw == 65535) {
            65536
        } else {
            raw
        };
        let name_len = usize::from(b[at + 6]);
        if rec < 8 || rec % 4 != 0 || at + rec > b.len() || 8 + name_len > rec {
            return Err(corrupt(format!(
                "ext: directory inode {dir}: entry at byte {at}: record length {rec}, name length {name_len}"
            )));
        }
        let inode = le32(b, at);
        if inode != 0 {
            out.push(Dirent {
                inode,
                name: &b[at + 8..at + 8 + name_len],
                file_type: b[at + 7],
            });
        }
        at += rec;
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
    /// Calls `visit` with every entry of directory `dir` (`.` and `..` included) until it says stop.
    fn each_entry(&self, dir: &Inode, visit: &mut dyn FnMut(&Dirent) -> bool) -> io::Result<()> {
        if !dir.is_dir() {
            return Err(corrupt(format!("ext: inode {} is not a directory", dir.number)));
        }
        let (data, regions): (Vec<u8>, Vec<(usize, usize)>) = if dir.flags & FLAG_INLINE_DATA != 0 {
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
        for (start, end) in regions {
            found.clear();
            entries(dir.number, &data[start..end], self.block_size, &mut found)?;
            if found.iter().any(&mut *visit) {
                break;
            }
        }
        Ok(())
    }

    fn dirent_type(&self, d: &Dirent) -> io::Result<FileType> {
        if self.has_filetype() {
            return Ok(match d.file_type {
                1 => FileType::File,
                2 => FileType::Dir,
                7 => FileType::Symlink,
                _ => FileType::Other,
            });
        }
        Ok(file_type(self.inode(d.inode)?.mode))
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
            size: n.size,
        }
    }

    fn lookup(&self, dir: &Inode, name: &[u8]) -> io::Result<Option<Inode>> {
        let mut found = None;
        self.each_entry(dir, &mut |d| {
            let hit = d.name == name;
            if hit {
                found = Some(d.inode);
            }
            hit
        })?;
        found.map(|n| self.inode(n)).transpose()
    }

    fn list(&self, dir: &Inode) -> io::Result<Vec<Entry>> {
        let mut raw = Vec::new();
        self.each_entry(dir, &mut |d| {
            if d.name != b"." && d.name != b".." {
                raw.push((d.inode, d.name.to_vec(), d.file_type));
            }
            false
        })?;
        raw.into_iter()
            .map(|(inode, name, file_type)| {
                let d = Dirent {
                    inode,
                    name: &name,
                    file_type,
                };
                Ok(Entry {
                    file_type: self.dirent_type(&d)?,
                    name: String::from_utf8_lossy(&name).into_owned(),
                })
            })
            .collect()
    }

    fn read(&self, n: &Inode, max: u64) -> io::Result<Vec<u8>> {
        self.data(n, max)
    }
}
