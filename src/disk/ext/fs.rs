//! An ext2/3/4 filesystem opened for reading: the geometry from the superblock (checked before
//! anything is computed from it), group descriptors (32 or 64 bytes, also under `meta_bg`) and
//! inodes, their `metadata_csum` or `gdt_csum` checksums verified (`csum`; a group's bitmaps with
//! its descriptor, once): nothing here is trusted, every number is bounded where used.

use std::io;

use super::csum;
use super::{INCOMPAT_64BIT, INCOMPAT_FILETYPE, INCOMPAT_META_BG, RO_COMPAT_SPARSE_SUPER, SUPERBLOCK_AT};
use crate::disk::tree::corrupt;
use crate::disk::{ReadAt, at, le16, le32, read_at};

const COMPAT_SPARSE_SUPER2: u32 = 0x0200;
const INCOMPAT_COMPRESSION: u32 = 0x0001;
const INCOMPAT_LARGEDIR: u32 = 0x4000;
const INCOMPAT_DIRDATA: u32 = 0x1000;
pub(super) const INCOMPAT_INLINE_DATA: u32 = 0x8000;
pub(super) const FLAG_EXTENTS: u32 = 0x0008_0000;
pub(super) const FLAG_INLINE_DATA: u32 = 0x1000_0000;
const FLAG_ENCRYPT: u32 = 0x0000_0800;
const FLAG_COMPRESSED: u32 = 0x0000_0004;

/// An open ext filesystem on `r` at byte `offset`.
pub struct Ext<R> {
    pub(super) r: R,
    pub(super) offset: u64,
    pub(super) block_size: u64,
    pub(super) blocks: u64,
    first_data_block: u64,
    blocks_per_group: u64,
    /// Bits of a group's block bitmap (`s_clusters_per_group`: its blocks without `bigalloc`).
    clusters_per_group: u64,
    inodes_per_group: u64,
    inodes: u64,
    inode_size: u64,
    desc_size: u64,
    groups: u64,
    incompat: u32,
    ro_compat: u32,
    compat: u32,
    first_meta_bg: u64,
    backup_bgs: [u64; 2],
    /// Directories read lately, by inode number, oldest first (`dir::Listing`).
    pub(super) dirs: crate::disk::recent::Recent<super::Listing>,
    /// The journal replayed into what is read (`recover`): empty unless it needed recovery.
    pub(super) replay: super::journal::Replay,
    pub(super) recovery: Option<crate::disk::Recovery>,
    /// The seed of its checksums under `metadata_csum`, which are then verified (`csum`).
    pub(super) csum: Option<u32>,
    /// The UUID seeding its descriptors' checksums under `gdt_csum` without `metadata_csum`.
    gdt_csum: Option<[u8; 16]>,
    /// The groups whose bitmaps passed their `metadata_csum` checks (each is read once).
    bitmaps_checked: std::sync::Mutex<std::collections::HashSet<u64>>,
    /// Off while a journal that needs recovery is found: before the replay a bitmap and the
    /// descriptor holding its checksum may be of two transactions (one checkpointed, one not).
    pub(super) verify_bitmaps: bool,
}

/// An inode as read: what the readers need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    pub number: u32,
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub flags: u32,
    /// `i_mtime`: seconds since the epoch (signed, as the kernel reads it without `i_mtime_extra`).
    pub mtime: i32,
    /// `i_block`: block map, extent tree root, fast link target or inline data.
    pub block: [u8; 60],
    /// The inode's in-body extended attribute area (after `i_extra_isize`), for inline data.
    pub xattrs: Vec<u8>,
    /// The seed of its extent blocks' and directory blocks' checksums (`metadata_csum`).
    pub(super) seed: Option<u32>,
}

impl Inode {
    pub fn is_dir(&self) -> bool {
        self.mode & 0xF000 == 0x4000
    }
}

impl<R: ReadAt> Ext<R> {
    /// Opens the ext filesystem at `offset`: `Ok(None)` without the magic, an error when its
    /// superblock is inconsistent or asks for features this reader cannot follow.
    /// A journal that needs recovery is replayed into what is read (`recover`).
    pub fn open(r: R, offset: u64) -> io::Result<Option<Ext<R>>> {
        let mut sb = [0u8; 1024];
        if !read_at(&r, at(offset, SUPERBLOCK_AT, 1)?, &mut sb)? || le16(&sb, 0x38) != super::MAGIC {
            return Ok(None);
        }
        let fs = Ext::from_superblock(r, offset, &sb)?;
        if le32(&sb, 0x60) & super::INCOMPAT_RECOVER == 0 {
            return Ok(Some(fs));
        }
        fs.recover(&sb).map(Some)
    }

    /// The filesystem the superblock `sb` describes.
    pub(super) fn from_superblock(r: R, offset: u64, sb: &[u8]) -> io::Result<Ext<R>> {
        let incompat = le32(sb, 0x60);
        let log_block = le32(sb, 0x18);
        if log_block > 6 {
            return Err(corrupt(format!("ext: block size 2^{} KiB", log_block)));
        }
        let bad_features = incompat & (INCOMPAT_COMPRESSION | INCOMPAT_DIRDATA | super::INCOMPAT_JOURNAL_DEV);
        if bad_features != 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "ext: incompatible features {bad_features:#x} (compression, dirdata or a journal device) are not read"
                ),
            ));
        }
        let wide = incompat & INCOMPAT_64BIT != 0;
        let block_size = 1024u64 << log_block;
        let blocks = u64::from(le32(sb, 0x04)) | if wide { u64::from(le32(sb, 0x150)) << 32 } else { 0 };
        let inode_size = if le32(sb, 0x4C) == 0 {
            128
        } else {
            u64::from(le16(sb, 0x58))
        };
        let desc_size = if wide { u64::from(le16(sb, 0xFE)) } else { 32 };
        let fs = Ext {
            r,
            offset,
            block_size,
            blocks,
            first_data_block: u64::from(le32(sb, 0x14)),
            blocks_per_group: u64::from(le32(sb, 0x20)),
            clusters_per_group: u64::from(le32(sb, 0x24)),
            inodes_per_group: u64::from(le32(sb, 0x28)),
            inodes: u64::from(le32(sb, 0x00)),
            inode_size,
            desc_size,
            groups: 0,
            incompat,
            ro_compat: le32(sb, 0x64),
            compat: le32(sb, 0x5C),
            first_meta_bg: u64::from(le32(sb, 0x104)),
            backup_bgs: [u64::from(le32(sb, 0x24C)), u64::from(le32(sb, 0x250))],
            dirs: kept_dirs(),
            replay: Default::default(),
            recovery: None,
            csum: csum::seed(sb),
            gdt_csum: csum::gdt_uuid(sb),
            bitmaps_checked: Default::default(),
            verify_bitmaps: true,
        };
        if fs.csum.is_some() {
            csum::superblock(sb)?;
        }
        fs.checked()
    }

    /// The superblock's numbers, checked against each other.
    fn checked(mut self) -> io::Result<Ext<R>> {
        let bad = |what: String| Err(corrupt(format!("ext superblock: {what}")));
        if self.blocks_per_group == 0 || self.blocks_per_group > 8 * self.block_size {
            return bad(format!("{} blocks per group", self.blocks_per_group));
        }
        // A group's block bitmap is one block.
        if self.csum.is_some()
            && (self.clusters_per_group == 0 || self.clusters_per_group > 8 * self.block_size)
        {
            return bad(format!("{} clusters per group", self.clusters_per_group));
        }
        if self.inodes_per_group == 0 || self.inodes_per_group > 8 * self.block_size {
            return bad(format!("{} inodes per group", self.inodes_per_group));
        }
        if !self.inode_size.is_power_of_two() || self.inode_size < 128 || self.inode_size > self.block_size {
            return bad(format!("inode size {}", self.inode_size));
        }
        if !self.desc_size.is_power_of_two() || self.desc_size < 32 || self.desc_size > 1024 {
            return bad(format!("group descriptor size {}", self.desc_size));
        }
        if self.first_data_block >= self.blocks {
            return bad(format!(
                "first data block {} of {}",
                self.first_data_block, self.blocks
            ));
        }
        if at(self.offset, self.blocks, self.block_size).is_err() {
            return bad(format!("{} blocks of {} bytes", self.blocks, self.block_size));
        }
        self.groups = (self.blocks - self.first_data_block).div_ceil(self.blocks_per_group);
        if self.inodes > self.groups.saturating_mul(self.inodes_per_group) {
            return bad(format!("{} inodes in {} groups", self.inodes, self.groups));
        }
        Ok(self)
    }

    pub(super) fn has_filetype(&self) -> bool {
        self.incompat & INCOMPAT_FILETYPE != 0
    }

    /// The filesystem's bytes from `byte` on as the image holds them; false past the image's end.
    pub(super) fn read_raw(&self, byte: u64, buf: &mut [u8]) -> io::Result<bool> {
        read_at(&self.r, at(self.offset, byte, 1)?, buf)
    }

    /// Reads `buf.len()` bytes from block `block` on; the blocks must lie inside the filesystem.
    pub(super) fn read_blocks(&self, block: u64, buf: &mut [u8]) -> io::Result<()> {
        let count = (buf.len() as u64).div_ceil(self.block_size);
        if block.checked_add(count).is_none_or(|end| end > self.blocks) {
            return Err(corrupt(format!(
                "ext: block {block} (+{count}) is beyond the filesystem's {} blocks",
                self.blocks
            )));
        }
        if !self.read(at(0, block, self.block_size)?, buf)? {
            return Err(corrupt(format!(
                "ext: block {block} is beyond the end of the image"
            )));
        }
        Ok(())
    }

    pub(super) fn block(&self, block: u64) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; self.block_size as usize];
        self.read_blocks(block, &mut buf)?;
        Ok(buf)
    }

    /// Whether group `g` holds a superblock backup (and so, under meta_bg, pushes its descriptor
    /// block one further).
    fn has_super(&self, g: u64) -> bool {
        if g == 0 {
            return true;
        }
        if self.compat & COMPAT_SPARSE_SUPER2 != 0 {
            return self.backup_bgs.contains(&g);
        }
        if self.ro_compat & RO_COMPAT_SPARSE_SUPER == 0 || g == 1 {
            return true;
        }
        [3u64, 5, 7].iter().any(|&base| {
            let mut p = base;
            while p < g {
                p *= base;
            }
            p == g
        })
    }

    /// Where group `g`'s descriptor is, in bytes from the filesystem's start.
    fn descriptor_at(&self, g: u64) -> io::Result<u64> {
        let per_block = self.block_size / self.desc_size;
        let index = g / per_block;
        let block = if self.incompat & INCOMPAT_META_BG != 0 && index >= self.first_meta_bg {
            let first = index * per_block;
            at(self.first_data_block, first, self.blocks_per_group)? + u64::from(self.has_super(first))
        } else {
            self.first_data_block + 1 + index
        };
        at((g % per_block) * self.desc_size, block, self.block_size)
    }

    /// Inode `number` (1-based), refused when outside the filesystem's range or not in use.
    pub fn inode(&self, number: u32) -> io::Result<Inode> {
        let n = u64::from(number);
        if n == 0 || n > self.inodes {
            return Err(corrupt(format!(
                "ext: inode {number} out of range 1..={}",
                self.inodes
            )));
        }
        let (g, index) = ((n - 1) / self.inodes_per_group, (n - 1) % self.inodes_per_group);
        let mut desc = vec![0u8; self.desc_size as usize];
        if !self.read(self.descriptor_at(g)?, &mut desc)? {
            return Err(corrupt(format!(
                "ext: group {g}'s descriptor is beyond the end of the image"
            )));
        }
        if let Some(seed) = self.csum {
            csum::descriptor(seed, g, &desc)?;
            if self.verify_bitmaps {
                self.bitmaps(seed, g, &desc)?;
            }
        } else if let Some(uuid) = &self.gdt_csum {
            csum::gdt_descriptor(uuid, g, &desc)?;
        }
        let mut table = u64::from(le32(&desc, 0x08));
        if self.incompat & INCOMPAT_64BIT != 0 && desc.len() >= 64 {
            table |= u64::from(le32(&desc, 0x28)) << 32;
        }
        let byte = index * self.inode_size;
        let mut raw = vec![0u8; self.inode_size as usize];
        let block = table
            .checked_add(byte / self.block_size)
            .filter(|b| *b < self.blocks)
            .ok_or_else(|| {
                corrupt(format!(
                    "ext: group {g}'s inode table at block {table} is outside the filesystem"
                ))
            })?;
        if !self.read(at(byte % self.block_size, block, self.block_size)?, &mut raw)? {
            return Err(corrupt(format!(
                "ext: inode {number} is beyond the end of the image"
            )));
        }
        let mode = le16(&raw, 0);
        let links = le16(&raw, 0x1A);
        if mode == 0 || (links == 0 && le32(&raw, 0x14) != 0) {
            return Err(corrupt(format!("ext: inode {number} is not in use")));
        }
        if let Some(seed) = self.csum {
            csum::inode(seed, number, &raw)?;
        }
        let flags = le32(&raw, 0x20);
        if flags & (FLAG_ENCRYPT | FLAG_COMPRESSED) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("ext: inode {number} is encrypted or compressed"),
            ));
        }
        let is_file = mode & 0xF000 == 0x8000;
        let high = if is_file || self.incompat & INCOMPAT_LARGEDIR != 0 {
            u64::from(le32(&raw, 0x6C)) << 32
        } else {
            0
        };
        let xattrs = if self.inode_size > 128 {
            let extra = u64::from(le16(&raw, 0x80));
            let start = (128 + extra).min(self.inode_size) as usize;
            raw[start..].to_vec()
        } else {
            Vec::new()
        };
        Ok(Inode {
            number,
            mode,
            uid: u32::from(le16(&raw, 0x02)) | u32::from(le16(&raw, 0x78)) << 16,
            gid: u32::from(le16(&raw, 0x18)) | u32::from(le16(&raw, 0x7A)) << 16,
            size: u64::from(le32(&raw, 0x04)) | high,
            flags,
            mtime: le32(&raw, 0x10) as i32,
            block: raw[0x28..0x64].try_into().expect("60 bytes"),
            xattrs,
            seed: self.csum.map(|s| csum::inode_seed(s, number, &raw)),
        })
    }

    /// Group `g`'s block and inode bitmaps (`desc` its descriptor, checked) against their
    /// `metadata_csum` checksums, the first time the group is met. The reader needs no bitmap, but
    /// one that fails is a damaged filesystem as the kernel sees it (it refuses to allocate in that
    /// group, e2fsck repairs it), so checking what the reader meets says so, as for the rest.
    fn bitmaps(&self, seed: u32, g: u64, desc: &[u8]) -> io::Result<()> {
        let lock = || self.bitmaps_checked.lock().unwrap_or_else(|p| p.into_inner());
        if lock().contains(&g) {
            return Ok(());
        }
        let wide = self.incompat & INCOMPAT_64BIT != 0 && desc.len() >= 64;
        for (inodes, lo, hi, bits) in [
            (false, 0x00, 0x20, self.clusters_per_group),
            (true, 0x04, 0x24, self.inodes_per_group),
        ] {
            if !csum::bitmap_written(desc, inodes) {
                continue;
            }
            let block = u64::from(le32(desc, lo)) | if wide { u64::from(le32(desc, hi)) << 32 } else { 0 };
            let mut buf = vec![0u8; (bits / 8) as usize];
            self.read_blocks(block, &mut buf)?;
            csum::bitmap(seed, g, desc, inodes, block, &buf)?;
        }
        lock().insert(g);
        Ok(())
    }

    /// The inode's inline data beyond `i_block`: the in-body extended attribute `system.data`.
    pub(super) fn inline_rest(&self, inode: &Inode) -> io::Result<Vec<u8>> {
        if self.incompat & INCOMPAT_INLINE_DATA == 0 {
            return Err(corrupt(format!(
                "ext: inode {} has inline data without the inline_data feature",
                inode.number
            )));
        }
        let x = &inode.xattrs;
        if x.len() < 4 || le32(x, 0) != 0xEA02_0000 {
            return Ok(Vec::new());
        }
        let area = &x[4..];
        let mut at = 0;
        while at + 16 <= area.len() && le32(area, at) != 0 {
            let (name_len, index) = (usize::from(area[at]), area[at + 1]);
            let (value_at, value_inode, size) = (
                usize::from(le16(area, at + 2)),
                le32(area, at + 4),
                le32(area, at + 8) as usize,
            );
            let name = area.get(at + 16..at + 16 + name_len).ok_or_else(|| {
                corrupt(format!(
                    "ext: inode {}: an extended attribute runs past the inode",
                    inode.number
                ))
            })?;
            // Index 7 is the `system.` prefix.
            if index == 7 && name == b"data" && value_inode == 0 {
                return area
                    .get(value_at..value_at + size)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| {
                        corrupt(format!(
                            "ext: inode {}: inline data runs past the inode",
                            inode.number
                        ))
                    });
            }
            at += (16 + name_len).next_multiple_of(4);
        }
        Ok(Vec::new())
    }
}

/// Directories kept at most, and their bytes at most (a directory is at most 32 MiB).
const KEPT_DIRS: usize = 32;
const KEPT_BYTES: usize = 64 << 20;

/// The cache of directories read, for a new reader.
fn kept_dirs() -> crate::disk::recent::Recent<super::Listing> {
    let bytes: fn(&super::Listing) -> usize = super::Listing::size;
    crate::disk::recent::Recent::new(KEPT_DIRS, Some((bytes, KEPT_BYTES)))
}
