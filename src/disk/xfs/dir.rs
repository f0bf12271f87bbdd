//! XFS directories and link targets, and the [`Tree`] the path walk reads. A directory is shortform
//! (in the inode) or made of directory blocks: its entries all lie in the data blocks of the first
//! 32 GiB of its address space whatever its form (block, leaf, node — the leaf and free-space
//! blocks above are indexes of those entries), so those blocks are read in order, and the hash
//! indexes never consulted. Remote link targets carry a header per block on v5.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use super::inode::{Format, Inode};
use super::{Xfs, be16, be32, be64};
use crate::disk::ReadAt;
use crate::disk::tree::{Entry, FileType, MAX_DIR, MAX_LINK, Meta, Tree, check_name, corrupt};

/// Where a directory's leaf blocks start, in bytes (`XFS_DIR2_LEAF_OFFSET`).
const LEAF_OFFSET: u64 = 32 << 30;
const BLOCK_MAGICS: [u32; 2] = [0x5844_3242, 0x5844_4233]; // XD2B, XDB3
const DATA_MAGICS: [u32; 2] = [0x5844_3244, 0x5844_4433]; // XD2D, XDD3
const SYMLINK_MAGIC: u32 = 0x5853_4C4D; // XSLM
const SYMLINK_HEADER: usize = 56;
/// Directories kept read (a path walk passes through the same few again and again).
const KEPT: usize = 16;

/// The cache of directories read, for a new reader.
pub(super) fn kept() -> crate::disk::recent::Recent<Listing> {
    crate::disk::recent::Recent::new(KEPT, None)
}
/// The empty-space tag of a data block entry.
const FREE_TAG: u16 = 0xFFFF;

/// A directory's entries (`.` and `..` left out): name, inode number, file type byte (0: unknown).
#[derive(Debug, Default)]
pub struct Listing {
    entries: Vec<(Vec<u8>, u64, u8)>,
}

impl Listing {
    fn find(&self, name: &[u8]) -> Option<u64> {
        self.entries.iter().find(|e| e.0 == name).map(|e| e.1)
    }

    /// Adds `name`, refusing what no directory can hold; the dots only where `dots` says.
    fn push(&mut self, dir: u64, name: &[u8], ino: u64, ftype: u8, dots: bool) -> io::Result<()> {
        check_name(name, dots).map_err(|why| {
            corrupt(format!(
                "xfs: directory inode {dir}: the name {:?} {why}",
                String::from_utf8_lossy(name)
            ))
        })?;
        if name != b"." && name != b".." {
            self.entries.push((name.to_vec(), ino, ftype));
        }
        Ok(())
    }
}

impl<R: ReadAt> Xfs<R> {
    /// The entries of directory `dir`, from the kept ones when it was read lately.
    fn listing(&self, dir: &Inode) -> io::Result<Arc<Listing>> {
        if let Some(hit) = self.dirs.get(dir.number) {
            return Ok(hit);
        }
        if !dir.is_dir() {
            return Err(corrupt(format!("xfs: inode {} is not a directory", dir.number)));
        }
        let listing = Arc::new(match dir.format {
            Format::Local => self.shortform(dir)?,
            Format::Extents | Format::Btree => self.blocks_listing(dir)?,
            Format::Dev => {
                return Err(corrupt(format!(
                    "xfs: directory inode {} has no data",
                    dir.number
                )));
            }
        });
        self.dirs.put(dir.number, listing.clone());
        Ok(listing)
    }

    /// A directory held in the inode: count, count of 8-byte numbers, parent, then the entries.
    fn shortform(&self, dir: &Inode) -> io::Result<Listing> {
        let n = dir.number;
        let f = dir.fork.get(..dir.size as usize).ok_or_else(|| {
            corrupt(format!(
                "xfs: directory inode {n}: {} bytes in its fork",
                dir.size
            ))
        })?;
        let short = |what: &str| corrupt(format!("xfs: directory inode {n}: {what} runs past its bytes"));
        let (count, wide) = (
            *f.first().ok_or_else(|| short("the header"))?,
            f.get(1) != Some(&0),
        );
        let ino_len = if wide { 8 } else { 4 };
        let mut p = 2 + ino_len;
        let mut out = Listing::default();
        for _ in 0..count {
            let len = usize::from(*f.get(p).ok_or_else(|| short("an entry"))?);
            let name_at = p + 3;
            let ftype_len = usize::from(self.ftype);
            let end = name_at + len + ftype_len + ino_len;
            let e = f.get(p..end).ok_or_else(|| short("an entry"))?;
            let name = &e[3..3 + len];
            let ftype = if self.ftype { e[3 + len] } else { 0 };
            let ino_at = 3 + len + ftype_len;
            let ino = if wide {
                be64(e, ino_at)
            } else {
                u64::from(be32(e, ino_at))
            };
            out.push(n, name, ino, ftype, false)?;
            p = end;
        }
        Ok(out)
    }

    /// A directory of blocks: every data block below the leaf offset, in order.
    fn blocks_listing(&self, dir: &Inode) -> io::Result<Listing> {
        let n = dir.number;
        let dir_blocks = 1u64 << self.dir_block_log;
        let data_end = LEAF_OFFSET >> self.block_log;
        let mut blocks = BTreeMap::new();
        let mut bytes = 0u64;
        for e in self.extents(dir)?.into_iter().filter(|e| e.offset < data_end) {
            let count = e.count.min(data_end - e.offset);
            bytes += count << self.block_log;
            if bytes > MAX_DIR {
                return Err(corrupt(format!(
                    "xfs: directory inode {n} is over {MAX_DIR} bytes"
                )));
            }
            if e.unwritten {
                return Err(corrupt(format!(
                    "xfs: directory inode {n} has an unwritten extent"
                )));
            }
            let got = self.read_blocks(e.block, count)?;
            for (i, b) in got.chunks_exact(self.block_size() as usize).enumerate() {
                blocks.insert(e.offset + i as u64, b.to_vec());
            }
        }
        let mut out = Listing::default();
        let mut first = true;
        for (&at, _) in blocks.range(..).filter(|(at, _)| *at % dir_blocks == 0) {
            let mut b = Vec::with_capacity((dir_blocks << self.block_log) as usize);
            for i in 0..dir_blocks {
                let part = blocks.get(&(at + i)).ok_or_else(|| {
                    corrupt(format!(
                        "xfs: directory inode {n}: directory block {at} has a hole"
                    ))
                })?;
                b.extend_from_slice(part);
            }
            self.data_block(dir, at, &b, first, &mut out)?;
            first = false;
        }
        Ok(out)
    }

    /// The entries of one directory data block (a block-form directory's one block too, whose end
    /// holds its leaf entries and tail).
    fn data_block(&self, dir: &Inode, at: u64, b: &[u8], first: bool, out: &mut Listing) -> io::Result<()> {
        let n = dir.number;
        let what = || format!("directory inode {n}'s block {at}");
        let v = usize::from(self.v5);
        let magic = be32(b, 0);
        let end = if magic == BLOCK_MAGICS[v] {
            let leaves = u64::from(be32(b, b.len() - 8));
            (b.len() as u64 - 8)
                .checked_sub(leaves * 8)
                .ok_or_else(|| corrupt(format!("xfs: {} lists {leaves} leaf entries", what())))?
                as usize
        } else if magic == DATA_MAGICS[v] {
            b.len()
        } else {
            return Err(corrupt(format!("xfs: no directory block magic in {}", what())));
        };
        self.verify(b, 4, what)?;
        if self.v5 && be64(b, 40) != n {
            return Err(corrupt(format!(
                "xfs: {} belongs to inode {}",
                what(),
                be64(b, 40)
            )));
        }
        let mut p = if self.v5 { 64 } else { 16 };
        let mut index = 0;
        while p < end {
            let short = || corrupt(format!("xfs: {}: an entry at byte {p} runs past its end", what()));
            if be16(b, p) == FREE_TAG {
                let len = usize::from(be16(b.get(p..p + 4).ok_or_else(short)?, 2));
                if len < 8 || len % 8 != 0 || p + len > end {
                    return Err(corrupt(format!(
                        "xfs: {}: free space of {len} bytes at {p}",
                        what()
                    )));
                }
                p += len;
                continue;
            }
            let len = usize::from(*b.get(p + 8).ok_or_else(short)?);
            let ftype_len = usize::from(self.ftype);
            let size = (8 + 1 + len + ftype_len + 2).next_multiple_of(8);
            let e = b.get(p..p + size).filter(|_| p + size <= end).ok_or_else(short)?;
            let ftype = if self.ftype { e[9 + len] } else { 0 };
            let dots = first && index < 2 && &e[9..9 + len] == [&b"."[..], b".."][index];
            out.push(n, &e[9..9 + len], be64(e, 0), ftype, dots)?;
            index += 1;
            p += size;
        }
        Ok(())
    }

    /// The target of link `ino`: in its fork, or in blocks (each with a header on v5).
    fn link_target(&self, ino: &Inode) -> io::Result<Vec<u8>> {
        if ino.size > MAX_LINK {
            return Err(corrupt(format!(
                "xfs: link inode {} is {} bytes long",
                ino.number, ino.size
            )));
        }
        if ino.format == Format::Local || !self.v5 {
            return self.data(ino, ino.size);
        }
        let mut out = Vec::new();
        for e in self.extents(ino)? {
            for i in 0..e.count.min(4) {
                let b = self.read_blocks(e.block + i, 1)?;
                let what = || format!("link inode {}'s block {}", ino.number, e.offset + i);
                if be32(&b, 0) != SYMLINK_MAGIC {
                    return Err(corrupt(format!("xfs: no link block magic in {}", what())));
                }
                self.verify(&b, 12, what)?;
                let len = be32(&b, 8) as usize;
                let part = b
                    .get(SYMLINK_HEADER..SYMLINK_HEADER + len)
                    .ok_or_else(|| corrupt(format!("xfs: {} holds {len} bytes", what())))?;
                out.extend_from_slice(part);
                if out.len() as u64 >= ino.size {
                    out.truncate(ino.size as usize);
                    return Ok(out);
                }
            }
        }
        Err(corrupt(format!(
            "xfs: link inode {}: its blocks hold less than its size",
            ino.number
        )))
    }
}

fn file_type(mode: u16) -> FileType {
    match mode & 0xF000 {
        0x8000 => FileType::File,
        0x4000 => FileType::Dir,
        0xA000 => FileType::Symlink,
        _ => FileType::Other,
    }
}

impl<R: ReadAt> Tree for Xfs<R> {
    type Node = Inode;

    fn root(&self) -> io::Result<Inode> {
        let root = self.inode(self.root_number())?;
        if !root.is_dir() {
            return Err(corrupt("xfs: the root inode is not a directory"));
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
            mtime: Some(n.mtime),
        }
    }

    fn lookup(&self, dir: &Inode, name: &[u8]) -> io::Result<Option<Inode>> {
        self.listing(dir)?.find(name).map(|n| self.inode(n)).transpose()
    }

    fn list(&self, dir: &Inode) -> io::Result<Vec<Entry>> {
        let listing = self.listing(dir)?;
        let mut out = Vec::with_capacity(listing.entries.len());
        for (name, ino, ftype) in &listing.entries {
            let file_type = match ftype {
                1 => FileType::File,
                2 => FileType::Dir,
                7 => FileType::Symlink,
                3..=6 => FileType::Other,
                _ => file_type(self.inode(*ino)?.mode),
            };
            out.push(Entry {
                name: String::from_utf8_lossy(name).into_owned(),
                file_type,
            });
        }
        Ok(out)
    }

    fn read(&self, n: &Inode, max: u64) -> io::Result<Vec<u8>> {
        if file_type(n.mode) == FileType::Symlink {
            return self.link_target(n);
        }
        if n.size > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "xfs: inode {}: {} bytes, more than the {max} read",
                    n.number, n.size
                ),
            ));
        }
        self.data(n, n.size)
    }
}
